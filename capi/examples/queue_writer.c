/* A C producer: creates queue NAME of float64 [2, 3] tensors, with metadata
 * (units = m/s, frame = base_link) and stamped by the realtime clock, reads both
 * back, and pushes COUNT items whose every element is the item's index,
 * alternating copies and zero-copy loans.
 *
 *   queue_writer NAME COUNT
 *
 * The items stay in the queue after it exits; a consumer (the Rust peer's
 * `queue-read`, or the C reader checking the metadata and clock too, in CI) drains
 * and checks them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorlane.h"

static int fail(const char *what, tl_status status) {
    fprintf(stderr, "queue_writer: %s: %s: %s\n", what, tl_status_name(status),
            tl_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: queue_writer NAME COUNT\n");
        return 2;
    }
    const char *name = argv[1];
    long count = strtol(argv[2], NULL, 10);
    tl_spec spec = {.dtype = TL_F64, .ndim = 2, .shape = {2, 3}};
    tl_metadata_entry metadata[] = {{"units", "m/s"}, {"frame", "base_link"}};
    tl_create_options options;
    tl_status status = tl_create_options_init(&options);
    if (status != TL_OK) return fail("options", status);
    options.clock = TL_CLOCK_REALTIME;
    options.metadata = metadata;
    options.metadata_len = sizeof metadata / sizeof metadata[0];
    tl_queue_producer *producer = NULL;
    status = tl_queue_producer_create_with(name, &spec, 4, &options, &producer);
    if (status != TL_OK) return fail("create", status);
    /* What the lane recorded, read back through the handle. */
    char units[8];
    size_t needed = 0;
    uint32_t clock = 0;
    status = tl_metadata_get(producer, "units", units, sizeof units, &needed);
    if (status != TL_OK) return fail("metadata units", status);
    status = tl_lane_clock(producer, &clock);
    if (status != TL_OK) return fail("clock", status);
    if (strcmp(units, "m/s") != 0 || needed != 4 || clock != TL_CLOCK_REALTIME) {
        fprintf(stderr, "queue_writer: the lane recorded units %s, clock %u\n", units, clock);
        return 1;
    }
    const int64_t ten_seconds = 10 * 1000 * 1000 * 1000LL;
    for (long i = 0; i < count; i++) {
        double tensor[6];
        for (int k = 0; k < 6; k++) tensor[k] = (double)i;
        uint64_t seq = 0;
        if (i % 2 == 0) {
            status = tl_queue_producer_push(producer, tensor, sizeof tensor, ten_seconds, &seq);
            if (status != TL_OK) return fail("push", status);
        } else {
            void *slot = NULL;
            size_t len = 0;
            status = tl_queue_producer_loan(producer, ten_seconds, &slot, &len);
            if (status != TL_OK) return fail("loan", status);
            if (len != sizeof tensor) {
                fprintf(stderr, "queue_writer: a slot of %zu bytes\n", len);
                return 1;
            }
            memcpy(slot, tensor, len);
            status = tl_queue_producer_commit(producer, &seq);
            if (status != TL_OK) return fail("commit", status);
        }
        if (seq != (uint64_t)i + 1) {
            fprintf(stderr, "queue_writer: item %ld has seq %llu\n", i, (unsigned long long)seq);
            return 1;
        }
    }
    status = tl_queue_producer_close(producer);
    if (status != TL_OK) return fail("close", status);
    printf("ok %ld\n", count);
    return 0;
}
