/* A C reader of a lane written by another process (the Rust peer or the C
 * queue_writer, in CI): float64 [2, 3] tensors whose every element is the item's
 * index.
 *
 *   reader queue NAME COUNT [CHECK...]   pop COUNT items (copies and zero-copy
 *                                        loans), check each, then wait for
 *                                        TL_ERR_WRITER_GONE
 *   reader stream NAME COUNT [CHECK...]  read new values until the writer is gone,
 *                                        check each, and that the last one is
 *                                        COUNT - 1
 *
 * Each CHECK is KEY=VALUE, a metadata pair the lane must hold, or clock=realtime,
 * clock=monotonic or clock=none, the clock it must be stamped by; with
 * clock=realtime every item's timestamp must also be within a minute of now.
 *
 * The lane may not exist yet when it starts: opening is retried for 10 seconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorlane.h"

static int fail(const char *what, tl_status status) {
    fprintf(stderr, "reader: %s: %s: %s\n", what, tl_status_name(status),
            tl_last_error_message());
    return 1;
}

static int check(const char *what, const double *tensor, const tl_frame *frame) {
    for (int k = 0; k < 6; k++) {
        if (tensor[k] != (double)(frame->seq - 1)) {
            fprintf(stderr, "reader: %s seq %llu holds %g at %d\n", what,
                    (unsigned long long)frame->seq, tensor[k], k);
            return 1;
        }
    }
    return 0;
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static const int64_t TEN_SECONDS = 10 * 1000 * 1000 * 1000LL;

/* The checks of the command line; `realtime` is set by clock=realtime. */
static char **checks = NULL;
static int check_count = 0;
static int realtime = 0;

/* Checks the lane of `lane` (any handle) against the command line's checks. */
static int check_lane(const void *lane) {
    for (int i = 0; i < check_count; i++) {
        const char *eq = strchr(checks[i], '=');
        if (eq == NULL) {
            fprintf(stderr, "reader: %s is no KEY=VALUE\n", checks[i]);
            return 1;
        }
        char key[64];
        size_t key_len = (size_t)(eq - checks[i]);
        if (key_len >= sizeof key) {
            fprintf(stderr, "reader: key of %s too long\n", checks[i]);
            return 1;
        }
        memcpy(key, checks[i], key_len);
        key[key_len] = '\0';
        const char *want = eq + 1;
        if (strcmp(key, "clock") == 0) {
            static const char *names[] = {"?", "monotonic", "realtime", "none"};
            uint32_t clock = 0;
            tl_status status = tl_lane_clock(lane, &clock);
            if (status != TL_OK) return fail("clock", status);
            const char *got = clock <= TL_CLOCK_NONE ? names[clock] : "?";
            if (strcmp(got, want) != 0) {
                fprintf(stderr, "reader: the lane's clock is %s, not %s\n", got, want);
                return 1;
            }
            realtime = clock == TL_CLOCK_REALTIME;
            continue;
        }
        /* First ask for the size, then copy. */
        size_t needed = 0;
        tl_status status = tl_metadata_get(lane, key, NULL, 0, &needed);
        if (status == TL_ERR_NOT_FOUND) {
            fprintf(stderr, "reader: the lane has no metadata %s\n", key);
            return 1;
        }
        if (status != TL_ERR_BUFFER_SIZE) return fail("metadata size", status);
        char *value = malloc(needed);
        if (value == NULL) return 1;
        status = tl_metadata_get(lane, key, value, needed, &needed);
        if (status != TL_OK) return fail("metadata", status);
        int same = strcmp(value, want) == 0;
        if (!same) fprintf(stderr, "reader: metadata %s is %s, not %s\n", key, value, want);
        free(value);
        if (!same) return 1;
    }
    return 0;
}

/* With clock=realtime: `frame` was stamped within a minute before now. */
static int check_stamp(const tl_frame *frame) {
    if (!realtime) return 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
    if (frame->timestamp_ns > now_ns || now_ns - frame->timestamp_ns > 60000000000ULL) {
        fprintf(stderr, "reader: seq %llu stamped %llu, not within a minute of now (%llu)\n",
                (unsigned long long)frame->seq, (unsigned long long)frame->timestamp_ns,
                (unsigned long long)now_ns);
        return 1;
    }
    return 0;
}

static int read_queue(const char *name, long count) {
    tl_spec spec = {.dtype = TL_F64, .ndim = 2, .shape = {2, 3}};
    tl_open_options options;
    tl_status status = tl_open_options_init(&options);
    if (status != TL_OK) return fail("options", status);
    options.expect = &spec;
    options.prefault = 1;
    tl_queue_consumer *consumer = NULL;
    status = TL_ERR_NOT_FOUND;
    for (int tries = 0; tries < 1000 && status == TL_ERR_NOT_FOUND; tries++) {
        status = tl_queue_consumer_open_with(name, &options, &consumer);
        if (status == TL_ERR_NOT_FOUND) pause_ms(10);
    }
    if (status != TL_OK) return fail("open", status);
    if (check_lane(consumer)) return 1;
    for (long i = 0; i < count; i++) {
        tl_frame frame;
        if (i % 2 == 0) {
            double tensor[6];
            status = tl_queue_consumer_pop(consumer, tensor, sizeof tensor, TEN_SECONDS, &frame);
            if (status != TL_OK) return fail("pop", status);
            if (check("queue", tensor, &frame) || check_stamp(&frame)) return 1;
        } else {
            const void *item = NULL;
            size_t len = 0;
            status = tl_queue_consumer_loan(consumer, TEN_SECONDS, &item, &len, &frame);
            if (status != TL_OK) return fail("loan", status);
            if (len != 6 * sizeof(double) || check("queue loan", item, &frame) ||
                check_stamp(&frame))
                return 1;
            status = tl_queue_consumer_release(consumer);
            if (status != TL_OK) return fail("release", status);
        }
        if (frame.seq != (uint64_t)i + 1) {
            fprintf(stderr, "reader: item %ld has seq %llu\n", i, (unsigned long long)frame.seq);
            return 1;
        }
    }
    double rest[6];
    status = tl_queue_consumer_pop(consumer, rest, sizeof rest, TEN_SECONDS, NULL);
    if (status != TL_ERR_WRITER_GONE) return fail("pop after the last item", status);
    tl_queue_consumer_close(consumer);
    printf("ok %ld\n", count);
    return 0;
}

static int read_stream(const char *name, long count) {
    tl_stream_reader *reader = NULL;
    tl_status status = TL_ERR_NOT_FOUND;
    for (int tries = 0; tries < 1000 && status == TL_ERR_NOT_FOUND; tries++) {
        status = tl_stream_reader_open(name, NULL, &reader);
        if (status == TL_ERR_NOT_FOUND) pause_ms(10);
    }
    if (status != TL_OK) return fail("open", status);
    if (check_lane(reader)) return 1;
    tl_spec spec;
    status = tl_stream_reader_spec(reader, &spec);
    if (status != TL_OK) return fail("spec", status);
    size_t bytes = 0;
    status = tl_spec_byte_len(&spec, &bytes);
    if (status != TL_OK) return fail("spec_byte_len", status);
    if (spec.dtype != TL_F64 || bytes != 6 * sizeof(double)) {
        fprintf(stderr, "reader: the stream carries dtype %u, %zu bytes\n", spec.dtype, bytes);
        return 1;
    }
    double tensor[6];
    tl_frame frame = {0};
    uint64_t last = 0, received = 0, missed = 0;
    for (;;) {
        status = tl_stream_reader_read_new(reader, tensor, sizeof tensor, TEN_SECONDS, &frame);
        if (status == TL_ERR_WRITER_GONE) break;
        if (status != TL_OK) return fail("read_new", status);
        if (check("stream", tensor, &frame) || check_stamp(&frame)) return 1;
        if (frame.seq <= last) {
            fprintf(stderr, "reader: seq %llu after %llu\n", (unsigned long long)frame.seq,
                    (unsigned long long)last);
            return 1;
        }
        last = frame.seq;
        received++;
        missed += frame.missed;
    }
    /* The writer's last value stays readable after it is gone. */
    status = tl_stream_reader_read(reader, tensor, sizeof tensor, &frame);
    if (status != TL_OK) return fail("read", status);
    if (check("stream", tensor, &frame)) return 1;
    if (frame.seq != (uint64_t)count) {
        fprintf(stderr, "reader: the last value is seq %llu, not %ld\n",
                (unsigned long long)frame.seq, count);
        return 1;
    }
    tl_stream_reader_close(reader);
    printf("ok %llu values (%llu overwritten before they were read)\n",
           (unsigned long long)received, (unsigned long long)missed);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: reader queue|stream NAME COUNT [KEY=VALUE | clock=CLOCK]...\n");
        return 2;
    }
    checks = argv + 4;
    check_count = argc - 4;
    long count = strtol(argv[3], NULL, 10);
    if (strcmp(argv[1], "queue") == 0) return read_queue(argv[2], count);
    if (strcmp(argv[1], "stream") == 0) return read_stream(argv[2], count);
    fprintf(stderr, "reader: unknown lane kind %s\n", argv[1]);
    return 2;
}
