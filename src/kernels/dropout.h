/* SPDX-License-Identifier: MIT */
/* dropout.h — the counter-based dropout mask shared by every sdpa variant
 * (reference, generic, SIMD) so forward and backward regenerate exactly the
 * same mask without storing it.
 *
 * keep(b, h, i, j) = hash32(row_key(seed, b, h, i), j) >= threshold(p)
 *   b: sequence index, h: query head, i: query row within the sequence,
 *   j: key index within the sequence. Survivors are scaled by 1/(1-p). */
#ifndef ATTN_DROPOUT_H
#define ATTN_DROPOUT_H

#include <stdint.h>

static inline uint64_t attn__mix64(uint64_t z) { /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t attn__dropout_row_key(uint64_t seed, int64_t b, int64_t h, int64_t i) {
    uint64_t x = attn__mix64(seed ^ 0x6A09E667F3BCC909ull);
    x = attn__mix64(x ^ ((uint64_t)b * 0x9E3779B97F4A7C15ull));
    x = attn__mix64(x ^ ((uint64_t)h * 0xC2B2AE3D27D4EB4Full));
    return attn__mix64(x ^ ((uint64_t)i * 0x165667B19E3779F9ull));
}

/* threshold: a key survives iff hash >= threshold. p in [0, 1). */
static inline uint32_t attn__dropout_threshold(float p) {
    double t = (double)p * 4294967296.0;
    return t >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)t;
}

static inline int attn__dropout_keep(uint64_t row_key, int64_t j, uint32_t threshold) {
    uint64_t z = attn__mix64(row_key + (uint64_t)j * 0x9E3779B97F4A7C15ull);
    return (uint32_t)(z >> 32) >= threshold;
}

#endif
