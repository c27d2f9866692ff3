/*
 * fuzz_split.h - chunk sizes for the "split anywhere" property of the codec
 * fuzzers. A seed byte from the input picks the largest chunk and the
 * sequence of sizes, so libFuzzer can steer both the bytes and the split.
 */
#ifndef NW_FUZZ_SPLIT_H
#define NW_FUZZ_SPLIT_H

#include <stddef.h>
#include <stdint.h>

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

#endif
