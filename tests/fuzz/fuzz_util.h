/* SPDX-License-Identifier: MIT */
/* fuzz_util.h — helpers shared by the structured fuzz targets (fuzz_sdpa.c,
 * fuzz_mha.c): a byte reader that returns 0 once the input is exhausted (so
 * every input, even an empty one, decodes to a configuration), a small
 * deterministic PRNG for bulk tensor data, and ASan poisoning hooks (no-ops
 * without AddressSanitizer, e.g. in the plain replay build). */
#ifndef ATTN_FUZZ_UTIL_H
#define ATTN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define FZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif
#ifdef FZ_ASAN
#include <sanitizer/asan_interface.h>
#define FZ_POISON(p, n) __asan_poison_memory_region((p), (n))
#define FZ_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define FZ_POISON(p, n) ((void)(p), (void)(n))
#define FZ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* for the harness's own bulk loops (fill, compare): no coverage callbacks */
#if defined(__clang__) && __clang_major__ >= 13
#define FZ_NO_COV __attribute__((no_sanitize("coverage"), noinline))
#else
#define FZ_NO_COV
#endif

typedef struct fz_in {
    const uint8_t *p;
    size_t n, i;
} fz_in;

static inline unsigned fz_u8(fz_in *r) { return r->i < r->n ? r->p[r->i++] : 0u; }
static inline unsigned fz_u16(fz_in *r) {
    unsigned lo = fz_u8(r);
    return lo | fz_u8(r) << 8;
}
static inline uint64_t fz_u64(fz_in *r) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)fz_u8(r) << (8 * i);
    return v;
}
/* value in [lo, hi] for bytes < 248 (byte 0 -> lo + 1 when the range allows
 * it), else specials[byte - 248] (8 entries): rare, deliberately odd values */
static inline int64_t fz_pick(fz_in *r, int64_t lo, int64_t hi, const int64_t specials[8], int *special) {
    unsigned b = fz_u8(r);
    if (b >= 248) {
        *special = 1;
        return specials[b - 248];
    }
    return lo + (int64_t)((b + 1u) % (uint64_t)(hi - lo + 1));
}

/* like fz_pick, skewed towards small values (quadratic): most inputs stay
 * tiny and fast, the top of the range is still reachable */
static inline int64_t fz_pick_small(fz_in *r, int64_t lo, int64_t hi, const int64_t specials[8], int *special) {
    unsigned b = fz_u8(r);
    if (b >= 248) {
        *special = 1;
        return specials[b - 248];
    }
    uint64_t v = (b + 1u) % 248u; /* 0 .. 247 */
    return lo + (int64_t)(v * v * (uint64_t)(hi - lo + 1) / (248u * 248u));
}

/* splitmix64 */
static inline uint64_t fz_rng(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [lo, hi) */
static inline float fz_unif(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)(fz_rng(s) >> 40) * (1.0f / 16777216.0f);
}

/* Element extent (max offset + 1) of a (n0, n1, n2, n3) view with strides
 * (s0, s1, s2, 1), 0 if empty; -1 on overflow or beyond INT64_MAX / 8. */
static inline int64_t fz_extent(int64_t n0, int64_t n1, int64_t n2, int64_t n3, int64_t s0, int64_t s1, int64_t s2) {
    if (n0 < 0 || n1 < 0 || n2 < 0 || n3 < 0) return -1;
    if (n0 == 0 || n1 == 0 || n2 == 0 || n3 == 0) return 0;
    int64_t n[3] = {n0, n1, n2}, s[3] = {s0, s1, s2}, e = n3;
    for (int i = 0; i < 3; i++) {
        int64_t t;
        if (__builtin_mul_overflow(n[i] - 1, s[i], &t) || __builtin_add_overflow(e, t, &e)) return -1;
    }
    return e > INT64_MAX / 8 ? -1 : e;
}

#endif
