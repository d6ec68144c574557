/* SPDX-License-Identifier: MIT */
/* kv_typed_avx512.c — AVX-512 typed decode kernels (kv_typed.h).
 *
 * Widening in registers, 16 elements at a time (masked loads for the D tail,
 * so nothing past a row is read): bf16 = zero-extend to 32 bits and shift
 * left 16; f16 = vcvtph2ps; int8 = vpmovsxbd + vcvtdq2ps (the row's scale
 * is applied to the dot product, or folded into P for V).
 *   kdot: two keys at a time, NM in {1, 2, 4, 8} query rows in registers
 *         (2 x NM zmm accumulators along D), then one transposing reduction
 *         of the 8 accumulators of a key to the 8 scores of its S row.
 *   vacc: 32 output columns at a time: the M x 2 zmm of O stay in registers
 *         while every key of the call adds P[j][m] * v_j.
 * Summation orders are fixed by D / Dv and the key order only. */
#include "kernels/kv_typed.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

AI __m512 ld16(attn_dtype t, const unsigned char *p, __mmask16 k) {
    if (t == ATTN_DTYPE_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
    if (t == ATTN_DTYPE_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, p)));
}

AI size_t esz(attn_dtype t) { return t == ATTN_DTYPE_I8 ? 1 : 2; }

AI __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u); }

/* The 8 horizontal sums of a[0..7] as one ymm [sum a0, ..., sum a7]. */
AI __m256 reduce8(const __m512 *a) {
    __m256 t[8];
    for (int i = 0; i < 8; i++) t[i] = _mm256_add_ps(_mm512_castps512_ps256(a[i]), _mm512_extractf32x8_ps(a[i], 1));
    const __m256 h01 = _mm256_hadd_ps(t[0], t[1]), h23 = _mm256_hadd_ps(t[2], t[3]);
    const __m256 h45 = _mm256_hadd_ps(t[4], t[5]), h67 = _mm256_hadd_ps(t[6], t[7]);
    const __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}

/* Scores of R (1 or 2) keys starting at row j against NM query rows. */
AI void kdot_keys(attn_dtype t, int NM, int R, int64_t j, int64_t M, int64_t D, const unsigned char *K, const float *ks,
                  const float *Q, int64_t ldq, float *S, int64_t lds) {
    __m512 acc[2][8];
    for (int r = 0; r < 2; r++)
        for (int m = 0; m < 8; m++) acc[r][m] = _mm512_setzero_ps();
    const size_t es = esz(t);
    const unsigned char *k0 = K + (size_t)(j * D) * es, *k1 = k0 + (size_t)D * es;
    for (int64_t d = 0; d < D; d += 16) {
        const __mmask16 mk = tail_mask(D - d);
        const __m512 x0 = ld16(t, k0 + (size_t)d * es, mk);
        const __m512 x1 = R > 1 ? ld16(t, k1 + (size_t)d * es, mk) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int m = 0; m < NM; m++) {
            const __m512 q = _mm512_loadu_ps(Q + m * ldq + d);
            acc[0][m] = _mm512_fmadd_ps(x0, q, acc[0][m]);
            if (R > 1) acc[1][m] = _mm512_fmadd_ps(x1, q, acc[1][m]);
        }
    }
    const __mmask8 keep = (__mmask8)((1u << M) - 1u);
    for (int r = 0; r < R; r++) {
        __m256 s = reduce8(acc[r]);
        if (t == ATTN_DTYPE_I8) s = _mm256_mul_ps(s, _mm256_set1_ps(ks[j + r]));
        _mm256_storeu_ps(S + (j + r) * lds, _mm256_maskz_mov_ps(keep, s));
    }
}

AI void kdot_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                  int64_t ldq, float *S, int64_t lds) {
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) kdot_keys(t, NM, 2, j, M, D, (const unsigned char *)K, ks, Q, ldq, S, lds);
    if (j < n) kdot_keys(t, NM, 1, j, M, D, (const unsigned char *)K, ks, Q, ldq, S, lds);
}

#define KDOT_NM(T)                                                               \
    do {                                                                         \
        if (M <= 1) kdot_impl(T, 1, n, M, D, K, ks, Q, ldq, S, lds);             \
        else if (M <= 2) kdot_impl(T, 2, n, M, D, K, ks, Q, ldq, S, lds);        \
        else if (M <= 4) kdot_impl(T, 4, n, M, D, K, ks, Q, ldq, S, lds);        \
        else kdot_impl(T, 8, n, M, D, K, ks, Q, ldq, S, lds);                    \
    } while (0)

static void kdot_avx512(attn_dtype t, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                        int64_t ldq, float *S, int64_t lds) {
    if (t == ATTN_DTYPE_BF16) KDOT_NM(ATTN_DTYPE_BF16);
    else if (t == ATTN_DTYPE_F16) KDOT_NM(ATTN_DTYPE_F16);
    else KDOT_NM(ATTN_DTYPE_I8);
}

/* O[:, e0 : e0 + 32) += sum_j p_j[m] v_j[e0 : e0 + 32) for all keys of the call. */
AI void vacc_cols(attn_dtype t, int64_t e0, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp,
                  const unsigned char *V, const float *vs, float *O, int64_t ldo) {
    const size_t es = esz(t);
    const __mmask16 m0 = tail_mask(Dv - e0), m1 = Dv - e0 > 16 ? tail_mask(Dv - e0 - 16) : 0;
    const __mmask8 live = (__mmask8)((1u << M) - 1u);
    __m512 acc[8][2];
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++) {
        acc[m][0] = acc[m][1] = _mm512_setzero_ps();
        if (m < M) {
            acc[m][0] = _mm512_maskz_loadu_ps(m0, O + m * ldo + e0);
            acc[m][1] = _mm512_maskz_loadu_ps(m1, O + m * ldo + e0 + 16);
        }
    }
    for (int64_t j = 0; j < n; j++) {
        __m256 p = _mm256_loadu_ps(P + j * ldp);
        const __mmask8 zero = _mm256_cmp_ps_mask(p, _mm256_setzero_ps(), _CMP_EQ_OQ) & live; /* before the scale */
        if (t == ATTN_DTYPE_I8) p = _mm256_mul_ps(p, _mm256_set1_ps(vs[j]));
        float pa[8] __attribute__((aligned(32)));
        _mm256_store_ps(pa, p);
        const unsigned char *vr = V + (size_t)(j * Dv + e0) * es;
        const __m512 v0 = ld16(t, vr, m0), v1 = ld16(t, vr + 16 * es, m1);
#pragma GCC unroll 8
        for (int m = 0; m < 8; m++)
            if (m < M && !((zero >> m) & 1)) {
                const __m512 b = _mm512_set1_ps(pa[m]);
                acc[m][0] = _mm512_fmadd_ps(b, v0, acc[m][0]);
                acc[m][1] = _mm512_fmadd_ps(b, v1, acc[m][1]);
            }
    }
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++)
        if (m < M) {
            _mm512_mask_storeu_ps(O + m * ldo + e0, m0, acc[m][0]);
            _mm512_mask_storeu_ps(O + m * ldo + e0 + 16, m1, acc[m][1]);
        }
}

AI void vacc_impl(attn_dtype t, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                  const float *vs, float *O, int64_t ldo) {
    for (int64_t e0 = 0; e0 < Dv; e0 += 32) vacc_cols(t, e0, n, M, Dv, P, ldp, (const unsigned char *)V, vs, O, ldo);
}

static void vacc_avx512(attn_dtype t, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                        const float *vs, float *O, int64_t ldo) {
    if (t == ATTN_DTYPE_BF16) vacc_impl(ATTN_DTYPE_BF16, n, M, Dv, P, ldp, V, vs, O, ldo);
    else if (t == ATTN_DTYPE_F16) vacc_impl(ATTN_DTYPE_F16, n, M, Dv, P, ldp, V, vs, O, ldo);
    else vacc_impl(ATTN_DTYPE_I8, n, M, Dv, P, ldp, V, vs, O, ldo);
}

static unsigned touch_avx512(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    __m512i x = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i));
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i + 64));
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i + 128));
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i + 192));
    }
    for (; i + 64 <= n; i += 64) x = _mm512_or_si512(x, _mm512_loadu_si512(b + i));
    return (unsigned)_mm512_reduce_or_epi32(x);
}

void attn__kv_kernels_avx512(attn__kv_kernels *t) {
    t->name = "avx512";
    t->kdot = kdot_avx512;
    t->vacc = vacc_avx512;
    t->touch = touch_avx512;
}
