/* SPDX-License-Identifier: MIT */
/* kv_typed.h — reduced-precision KV cache rows (BF16, F16, INT8 with one fp32
 * scale per row) and the decode micro-kernels that read them in place.
 *
 * A "row" is the D elements of one token of one KV head. Storage rules (the
 * attn.h section "KV cache element types"):
 *   BF16 / F16: round to nearest even (src/io/half.h);
 *   I8: a = max |x_d|, scale = a / 127, q_d = rint(x_d / scale) clamped to
 *       [-127, 127]; scale 0 for a zero row, NaN for a row with an Inf / NaN.
 * The kernels (attn__kv_kernels, one table per ISA, chosen as the sdpa
 * table is: generic C, then avx2 + F16C, then avx512 overrides) widen in
 * registers: bf16 = 16-bit shift, f16 = vcvtph2ps, int8 = cvtepi8 + scale.
 * They serve the few-row (decode) blocks of attn_sdpa_paged_fwd; every result
 * depends only on the inputs (deterministic). Not installed. */
#ifndef ATTN_KERNELS_KV_TYPED_H
#define ATTN_KERNELS_KV_TYPED_H

#include "attn.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes of one element of a KV cache of type t: 4, 2, 2, 1; 0 if t is not a KV cache type. */
size_t attn__kv_elem_size(attn_dtype t);
/* Name for messages ("f32", "bf16", "f16", "int8", or "unknown"). */
const char *attn__kv_dtype_name(attn_dtype t);

/* dst (D) of type t <- x (D) fp32; I8 also writes *scale. */
void attn__kv_put_row(attn_dtype t, void *dst, float *scale, const float *x, int64_t D);
/* x (D) fp32 <- src (D) of type t (scale used by I8 only): the values the kernels see. */
void attn__kv_get_row(attn_dtype t, const void *src, float scale, float *x, int64_t D);

/* For the ISA kernels: calls F(T, NM, n, M, rest...) with the element type t and
 * the bucket NM in {1, 2, 4, 8} holding the row count M as compile-time
 * constants (the kernels keep NM accumulators in named registers). */
#define ATTN__KV_BY_ROWS(F, T, n, M, ...)                                                      \
    do {                                                                                       \
        if ((M) <= 1) F(T, 1, n, M, __VA_ARGS__);                                              \
        else if ((M) <= 2) F(T, 2, n, M, __VA_ARGS__);                                         \
        else if ((M) <= 4) F(T, 4, n, M, __VA_ARGS__);                                         \
        else F(T, 8, n, M, __VA_ARGS__);                                                       \
    } while (0)
#define ATTN__KV_DISPATCH(F, t, n, M, ...)                                                     \
    do {                                                                                       \
        if ((t) == ATTN_DTYPE_BF16) ATTN__KV_BY_ROWS(F, ATTN_DTYPE_BF16, n, M, __VA_ARGS__);   \
        else if ((t) == ATTN_DTYPE_F16) ATTN__KV_BY_ROWS(F, ATTN_DTYPE_F16, n, M, __VA_ARGS__); \
        else ATTN__KV_BY_ROWS(F, ATTN_DTYPE_I8, n, M, __VA_ARGS__);                            \
    } while (0)

/* Keys per kernel call at most (a tile of attn_sdpa_paged_fwd). */
#define ATTN__KV_MAX_KEYS 64

typedef struct attn__kv_kernels {
    const char *name;
    /* Scores of a few-row block against n <= ATTN__KV_MAX_KEYS keys:
     *   S[j * lds + m] = ks_j * sum_d Q[m * ldq + d] * K[j * D + d]   (m < M <= 8, j < n)
     * K: n rows of D elements of type t (bf16 / f16: ks_j = 1, ks NULL; i8: ks[j]);
     * Q (M, ldq) fp32 with ldq >= round16(D) and zeros in [D, round16(D)) (read);
     * columns M..7 of S are set to 0 (lds >= 8). */
    void (*kdot)(attn_dtype t, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                 int64_t ldq, float *S, int64_t lds);
    /* O (M, ldo) += P^T V over n <= ATTN__KV_MAX_KEYS keys, j ascending:
     *   O[m][e] += (P[j * ldp + m] * vs_j) * V[j * Dv + e]     (e < Dv; vs_j = 1 unless i8)
     * except that a key j with P[j * ldp + m] == 0 adds nothing to row m (V rows
     * of masked keys may hold Inf / NaN). */
    void (*vacc)(attn_dtype t, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                 const float *vs, float *O, int64_t ldo);
    /* opts->decode_fast on BF16 pools (attn.h), NULL where the CPU lacks AVX512_BF16
     * (kv_bf16_avx512.c). D % 32 == 0, Dv % 32 == 0.
     * kdot_bf16: as kdot for t = BF16 with the query rows Qb (8, ldq) already
     *   rounded to bf16 (rows M..7 zeros), products of bf16 pairs summed in fp32.
     * vacc_bf16: as vacc for t = BF16 (same zero-P rule) with P rounded to bf16
     *   (nearest even) where a key pair's live rows all have finite P != 0, and
     *   O (M, ldo) in the pair order: in each 32 columns [32g, 32g + 32) of a row,
     *   position 4L + i holds column 32g + 8L + i and position 16 + 4L + i holds
     *   column 32g + 8L + 4 + i (L, i < 4); attn__kv_unpair restores the order. */
    void (*kdot_bf16)(int64_t n, int64_t M, int64_t D, const uint16_t *K, const uint16_t *Qb, int64_t ldq, float *S,
                      int64_t lds);
    void (*vacc_bf16)(int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const uint16_t *V, float *O,
                      int64_t ldo);
    /* opts->decode_fast on I8 pools, NULL where the CPU lacks AVX512_VNNI (kv_i8_avx512.c):
     * as kdot for t = I8 with the query rows quantised, Q[m][d] ~ qs[m] * Qi[m][d]
     * (Qi (8, ldq) int16 in [-32767, 32767], rows M..7 zeros; qs (8)), D % 32 == 0, D <= 256:
     *   S[j * lds + m] = (fp32(sum_d Qi[m][d] K[j][d]) * qs[m]) * ks[j]   (exact integer sums). */
    void (*kdot_i8)(int64_t n, int64_t M, int64_t D, const int8_t *K, const float *ks, const int16_t *Qi,
                    const float *qs, int64_t ldq, float *S, int64_t lds);
} attn__kv_kernels;

/* O (M, ldo), Dv % 32 == 0: from vacc_bf16's pair order back to column order, in place. */
void attn__kv_unpair(int64_t M, int64_t Dv, float *O, int64_t ldo);

const attn__kv_kernels *attn__kv_kernels_get(void);          /* for attn_isa_active() */
const attn__kv_kernels *attn__kv_kernels_for(attn_isa isa);  /* capped at the detected ISA (tests) */

void attn__kv_kernels_generic(attn__kv_kernels *t);
void attn__kv_kernels_avx2(attn__kv_kernels *t);
void attn__kv_kernels_avx512(attn__kv_kernels *t);
void attn__kv_kernels_avx512_bf16(attn__kv_kernels *t); /* kdot_bf16, vacc_bf16 (AVX512_BF16 CPUs only) */
void attn__kv_kernels_avx512_vnni(attn__kv_kernels *t); /* kdot_i8 (AVX512_VNNI CPUs only) */

#endif
