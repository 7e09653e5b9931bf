/* The header used from C99 in one process: a round trip, and the boundary's error
 * codes (NULL, misaligned, short buffer, closed and mistyped handles, loans out of
 * order, a timeout, bad create options, metadata reads). Compiled with -std=c99
 * -Wall -Wextra -Werror -pedantic by capi/tests/run.sh.
 *
 *   abi_check NAME */
#include <stdio.h>
#include <string.h>

#include "tensorlane.h"

static int failures = 0;

static void expect(const char *what, tl_status got, tl_status want) {
    if (got != want) {
        fprintf(stderr, "abi_check: %s: %s, expected %s (%s)\n", what, tl_status_name(got),
                tl_status_name(want), tl_last_error_message());
        failures++;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: abi_check NAME\n");
        return 2;
    }
    const char *name = argv[1];
    tl_spec spec = {TL_F32, 1, {4, 0, 0, 0, 0, 0, 0, 0}};
    tl_queue_producer *producer = NULL;
    tl_queue_consumer *consumer = NULL, *other = NULL;
    float in[4] = {1, 2, 3, 4}, out[4] = {0};
    union {
        uint64_t align;
        unsigned char bytes[64];
    } raw;
    tl_frame *misaligned = (tl_frame *)(void *)(raw.bytes + 1);

    expect("create", tl_queue_producer_create(name, &spec, 2, &producer), TL_OK);
    expect("open", tl_queue_consumer_open(name, &spec, &consumer), TL_OK);
    expect("null name", tl_queue_consumer_open(NULL, NULL, &other), TL_ERR_NULL_POINTER);
    /* The consumer role is taken; a failed open sets the handle to NULL. */
    other = (tl_queue_consumer *)(void *)&raw;
    expect("second consumer", tl_queue_consumer_open(name, NULL, &other), TL_ERR_ROLE_TAKEN);
    if (other != NULL) {
        fprintf(stderr, "abi_check: a failed open left a handle\n");
        failures++;
    }
    expect("null handle", tl_queue_producer_push(NULL, in, sizeof in, 0, NULL),
           TL_ERR_NULL_POINTER);
    expect("short buffer", tl_queue_producer_push(producer, in, 3 * sizeof(float), 0, NULL),
           TL_ERR_BUFFER_SIZE);
    expect("push", tl_queue_producer_push(producer, in, sizeof in, 0, NULL), TL_OK);
    expect("commit without a loan", tl_queue_producer_commit(producer, NULL), TL_ERR_LOAN_STATE);
    expect("negative timeout", tl_queue_producer_push(producer, in, sizeof in, -5, NULL),
           TL_ERR_INVALID_ARGUMENT);
    expect("mistyped handle",
           tl_queue_consumer_pop((tl_queue_consumer *)(void *)producer, out, sizeof out, 0, NULL),
           TL_ERR_WRONG_HANDLE);
    expect("close producer", tl_queue_producer_close(producer), TL_OK);
    expect("closed handle", tl_queue_producer_push(producer, in, sizeof in, 0, NULL),
           TL_ERR_CLOSED);
    if (strstr(tl_last_error_message(), "closed") == NULL) {
        fprintf(stderr, "abi_check: message %s\n", tl_last_error_message());
        failures++;
    }

    expect("pop", tl_queue_consumer_pop(consumer, out, sizeof out, 0, NULL), TL_OK);
    expect("drained", tl_queue_consumer_pop(consumer, out, sizeof out, TL_FOREVER, NULL),
           TL_ERR_WRITER_GONE);
    expect("close consumer", tl_queue_consumer_close(consumer), TL_OK);

    tl_stream_writer *writer = NULL;
    tl_stream_reader *reader = NULL;
    char stream[256];
    snprintf(stream, sizeof stream, "%s-stream", name);
    expect("stream create", tl_stream_writer_create(stream, &spec, 3, &writer), TL_OK);
    expect("stream open", tl_stream_reader_open(stream, NULL, &reader), TL_OK);
    expect("write", tl_stream_writer_write(writer, in, sizeof in, NULL), TL_OK);
    expect("misaligned frame", tl_stream_reader_read(reader, out, sizeof out, misaligned),
           TL_ERR_MISALIGNED);
    tl_frame frame;
    expect("read_new", tl_stream_reader_read_new(reader, out, sizeof out, TL_FOREVER, &frame),
           TL_OK);
    if (memcmp(in, out, sizeof in) != 0 || frame.seq != 1) {
        fprintf(stderr, "abi_check: read back the wrong value\n");
        failures++;
    }
    expect("timeout", tl_stream_reader_read_new(reader, out, sizeof out, 1000000, NULL),
           TL_ERR_TIMEOUT);
    expect("close writer", tl_stream_writer_close(writer), TL_OK);
    expect("writer gone", tl_stream_reader_read_new(reader, out, sizeof out, TL_FOREVER, NULL),
           TL_ERR_WRITER_GONE);
    expect("close reader", tl_stream_reader_close(reader), TL_OK);
    expect("unlink stream", tl_unlink(stream), TL_OK);

    /* Options: a struct of another size, a bad clock code or flag, a NULL metadata
     * array, a NULL key; then the options work and the metadata reads back. */
    tl_metadata_entry entries[2] = {{"units", "m/s"}, {NULL, "x"}};
    tl_create_options options;
    expect("options init", tl_create_options_init(&options), TL_OK);
    options.struct_size = sizeof options - 1;
    expect("options of another size",
           tl_stream_writer_create_with(stream, &spec, 3, &options, &writer),
           TL_ERR_INVALID_ARGUMENT);
    expect("options init again", tl_create_options_init(&options), TL_OK);
    options.clock = 7;
    expect("clock code", tl_stream_writer_create_with(stream, &spec, 3, &options, &writer),
           TL_ERR_INVALID_ARGUMENT);
    options.clock = TL_CLOCK_NONE;
    options.prefault = 2;
    expect("flag", tl_stream_writer_create_with(stream, &spec, 3, &options, &writer),
           TL_ERR_INVALID_ARGUMENT);
    options.prefault = 1;
    options.metadata_len = 2;
    expect("NULL metadata", tl_stream_writer_create_with(stream, &spec, 3, &options, &writer),
           TL_ERR_NULL_POINTER);
    options.metadata = entries;
    expect("NULL key", tl_stream_writer_create_with(stream, &spec, 3, &options, &writer),
           TL_ERR_NULL_POINTER);
    options.metadata_len = 1;
    expect("create with options",
           tl_stream_writer_create_with(stream, &spec, 3, &options, &writer), TL_OK);
    tl_open_options open;
    expect("open options init", tl_open_options_init(&open), TL_OK);
    open.expect = &spec;
    expect("open with options", tl_stream_reader_open_with(stream, &open, &reader), TL_OK);
    char units[4];
    size_t needed = 0;
    uint32_t clock = 0;
    expect("short value buffer", tl_metadata_get(reader, "units", units, 3, &needed),
           TL_ERR_BUFFER_SIZE);
    expect("value", tl_metadata_get(reader, "units", units, needed, &needed), TL_OK);
    expect("absent key", tl_metadata_get(reader, "frame", units, sizeof units, NULL),
           TL_ERR_NOT_FOUND);
    expect("clock", tl_lane_clock(writer, &clock), TL_OK);
    if (needed != 4 || strcmp(units, "m/s") != 0 || clock != TL_CLOCK_NONE) {
        fprintf(stderr, "abi_check: read back units %s (%zu bytes), clock %u\n", units,
                needed, (unsigned)clock);
        failures++;
    }
    expect("close reader", tl_stream_reader_close(reader), TL_OK);
    expect("metadata of a closed handle", tl_metadata_count(reader, &needed), TL_ERR_CLOSED);
    expect("close writer", tl_stream_writer_close(writer), TL_OK);
    expect("unlink stream", tl_unlink(stream), TL_OK);
    expect("unlink queue", tl_unlink(name), TL_OK);
    expect("unlink again", tl_unlink(name), TL_ERR_NOT_FOUND);
    if (failures == 0) printf("ok\n");
    return failures == 0 ? 0 : 1;
}
