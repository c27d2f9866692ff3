/*
 * fuzz_split.h - the "split anywhere" property of the codec fuzzers: the
 * whole input at once and the input fed in chunks give the same event log.
 * A seed byte from the input picks the largest chunk and the sequence of
 * sizes, so libFuzzer can steer both the bytes and the split.
 */
#ifndef NW_FUZZ_SPLIT_H
#define NW_FUZZ_SPLIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

typedef struct fuzz_split {
    uint32_t state;
    size_t max;
} fuzz_split;

static inline void fuzz_split_init(fuzz_split *s, uint8_t seed)
{
    static const size_t maxes[8] = {1, 2, 3, 7, 8, 9, 64, 4096};
    s->max = maxes[seed & 7];
    s->state = 0x9e3779b9u ^ seed;
}

/* The next chunk size, 1..max. */
static inline size_t fuzz_split_next(fuzz_split *s)
{
    s->state ^= s->state << 13;
    s->state ^= s->state >> 17;
    s->state ^= s->state << 5;
    return 1 + s->state % s->max;
}

/* Feeds in[0..len) to a target's run (each target has its own run type). */
typedef void fuzz_feed_fn(void *run, const uint8_t *in, size_t len);

/* Feeds data[0..size) to run in chunks of the sizes s picks, each a copy of
 * exactly its bytes (so reading past a chunk is caught), until all of it is
 * fed or *failed is set. */
static inline void fuzz_split_feed(fuzz_split *s, fuzz_feed_fn *feed, void *run, const int *failed,
                                   const uint8_t *data, size_t size)
{
    for (size_t off = 0; off < size && !*failed;) {
        size_t n = fuzz_split_next(s);
        if (n > size - off)
            n = size - off;
        uint8_t *chunk = malloc(n);
        if (!chunk)
            abort();
        memcpy(chunk, data + off, n);
        feed(run, chunk, n);
        free(chunk);
        off += n;
    }
}

/* Aborts, showing both, unless the whole and the chunked run logged the
 * same events. target names the fuzzer in the message. */
static inline void fuzz_split_compare(const char *target, const fuzz_split *s, const nw_buf *whole,
                                      const nw_buf *chunked)
{
    if (whole->len == chunked->len &&
        (!whole->len || memcmp(nw_buf_head(whole), nw_buf_head(chunked), whole->len) == 0))
        return;
    fprintf(stderr, "%s: whole and chunked (max %zu) disagree\n--- whole\n", target, s->max);
    fwrite(whole->data, 1, whole->len, stderr);
    fputs("--- chunked\n", stderr);
    fwrite(chunked->data, 1, chunked->len, stderr);
    abort();
}

#endif
