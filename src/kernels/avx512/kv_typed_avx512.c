/* SPDX-License-Identifier: MIT */
/* kv_typed_avx512.c — AVX-512 typed decode kernels (kv_typed.h).
 *
 * Widening in registers, 16 elements at a time (masked loads for the D tail,
 * so nothing past a row is read): bf16 = zero-extend to 32 bits and shift
 * left 16; f16 = vcvtph2ps; int8 = vpmovsxbd + vcvtdq2ps (the row's scale
 * is applied to the dot product, or folded into P for V).
 *   kdot: two keys at a time, NM in {1, 2, 4, 8} query rows in registers
 *         (2 x NM zmm accumulators along D), then one transposing reduction
 *         of the 8 accumulators of a key to the 8 scores of its S row (for
 *         NM = 4 one reduction serves both keys).
 *   vacc: 64 output columns at a time (32 for NM = 8): the NM x 4 (2) zmm
 *         of O stay in registers while every key of the call adds P[j][m] v_j.
 * Accumulators are named variables (macros over the row index), not arrays:
 * GCC kept arrays of vectors on the stack (3-4x slower).
 * Summation orders are fixed by D / Dv and the key order only. */
#include "kernels/kv_typed.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* 16 elements of type t at p (those of mask k; the others 0, not read). Full
 * chunks use plain loads: masked loads measured 4-10x slower here (Zen 4). */
AI __m512 ld16(attn_dtype t, const unsigned char *p, __mmask16 k) {
    if (t == ATTN_DTYPE_I8) {
        const __m128i x = k == 0xffff ? _mm_loadu_si128((const __m128i *)p) : _mm_maskz_loadu_epi8(k, p);
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(x));
    }
    const __m256i h = k == 0xffff ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16(k, p);
    if (t == ATTN_DTYPE_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

AI size_t esz(attn_dtype t) { return t == ATTN_DTYPE_I8 ? 1 : 2; }

AI __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u); }

/* Named-register helpers: X(i) for i < 8 (NM and M are constants or runtime
 * guards; arrays of vectors would be kept on the stack by the compiler). */
#define EACH8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* [sum a0, ..., sum a7] as one ymm. */
AI __m256 reduce8(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512 a6, __m512 a7) {
#define HALF(i) const __m256 t##i = _mm256_add_ps(_mm512_castps512_ps256(a##i), _mm512_extractf32x8_ps(a##i, 1));
    EACH8(HALF)
#undef HALF
    const __m256 h01 = _mm256_hadd_ps(t0, t1), h23 = _mm256_hadd_ps(t2, t3);
    const __m256 h45 = _mm256_hadd_ps(t4, t5), h67 = _mm256_hadd_ps(t6, t7);
    const __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}

/* Scores of R (1 or 2) keys starting at row j against NM query rows. */
AI void kdot_keys(attn_dtype t, int NM, int R, int64_t j, int64_t M, int64_t D, const unsigned char *K, const float *ks,
                  const float *Q, int64_t ldq, float *S, int64_t lds) {
#define ZERO(i) __m512 a##i = _mm512_setzero_ps(), b##i = _mm512_setzero_ps();
    EACH8(ZERO)
#undef ZERO
    const size_t es = esz(t);
    const unsigned char *k0 = K + (size_t)(j * D) * es, *k1 = k0 + (size_t)D * es;
    for (int64_t d = 0; d < D; d += 16) {
        const __mmask16 mk = tail_mask(D - d);
        const __m512 x0 = ld16(t, k0 + (size_t)d * es, mk);
        const __m512 x1 = R > 1 ? ld16(t, k1 + (size_t)d * es, mk) : _mm512_setzero_ps();
#define ROW(i)                                                      \
        if (NM > i) {                                               \
            const __m512 q = _mm512_loadu_ps(Q + i * ldq + d);      \
            a##i = _mm512_fmadd_ps(x0, q, a##i);                    \
            if (R > 1) b##i = _mm512_fmadd_ps(x1, q, b##i);         \
        }
        EACH8(ROW)
#undef ROW
    }
    const __mmask8 keep = (__mmask8)((1u << M) - 1u);
    if (NM == 4 && R > 1) { /* both keys' 4 scores in one reduction: [key j | key j + 1] */
        __m256 s = reduce8(a0, a1, a2, a3, b0, b1, b2, b3);
        if (t == ATTN_DTYPE_I8)
            s = _mm256_mul_ps(s, _mm256_insertf128_ps(_mm256_set1_ps(ks[j]), _mm_set1_ps(ks[j + 1]), 1));
        _mm256_storeu_ps(S + j * lds, _mm256_maskz_mov_ps(keep, s));
        _mm256_storeu_ps(S + (j + 1) * lds, _mm256_maskz_mov_ps(keep, _mm256_permute2f128_ps(s, s, 0x81)));
        return;
    }
    __m256 s = reduce8(a0, a1, a2, a3, a4, a5, a6, a7);
    if (t == ATTN_DTYPE_I8) s = _mm256_mul_ps(s, _mm256_set1_ps(ks[j]));
    _mm256_storeu_ps(S + j * lds, _mm256_maskz_mov_ps(keep, s));
    if (R > 1) {
        s = reduce8(b0, b1, b2, b3, b4, b5, b6, b7);
        if (t == ATTN_DTYPE_I8) s = _mm256_mul_ps(s, _mm256_set1_ps(ks[j + 1]));
        _mm256_storeu_ps(S + (j + 1) * lds, _mm256_maskz_mov_ps(keep, s));
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

/* O[:, e0 : e0 + 16 NC) += sum_j p_j[m] v_j[e0 : e0 + 16 NC) for the keys of
 * the call, NM (>= M) rows x NC zmm in registers (NC = 4 for NM <= 4, else 2). */
AI void vacc_cols(attn_dtype t, int NM, int NC, int64_t e0, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp,
                  const unsigned char *V, const float *vs, float *O, int64_t ldo) {
    const size_t es = esz(t);
    __mmask16 mc[4];
    for (int q = 0; q < 4; q++) mc[q] = Dv - e0 > 16 * q ? tail_mask(Dv - e0 - 16 * q) : 0;
    const __mmask8 live = (__mmask8)((1u << M) - 1u);
#define LOAD(i)                                                                         \
    __m512 a##i = _mm512_setzero_ps(), b##i = _mm512_setzero_ps();                      \
    __m512 c##i = _mm512_setzero_ps(), d##i = _mm512_setzero_ps();                      \
    if (NM > i && i < M) {                                                              \
        a##i = _mm512_maskz_loadu_ps(mc[0], O + i * ldo + e0);                          \
        b##i = _mm512_maskz_loadu_ps(mc[1], O + i * ldo + e0 + 16);                     \
        if (NC > 2) {                                                                   \
            c##i = _mm512_maskz_loadu_ps(mc[2], O + i * ldo + e0 + 32);                 \
            d##i = _mm512_maskz_loadu_ps(mc[3], O + i * ldo + e0 + 48);                 \
        }                                                                               \
    }
    EACH8(LOAD)
#undef LOAD
    for (int64_t j = 0; j < n; j++) {
        const float *pr = P + j * ldp;
        const __mmask8 zero = _mm256_cmp_ps_mask(_mm256_loadu_ps(pr), _mm256_setzero_ps(), _CMP_EQ_OQ) & live;
        const float sc = t == ATTN_DTYPE_I8 ? vs[j] : 1.0f;
        const unsigned char *vr = V + (size_t)(j * Dv + e0) * es;
        const __m512 v0 = ld16(t, vr, mc[0]), v1 = mc[1] ? ld16(t, vr + 16 * es, mc[1]) : _mm512_setzero_ps();
        const __m512 v2 = NC > 2 && mc[2] ? ld16(t, vr + 32 * es, mc[2]) : _mm512_setzero_ps();
        const __m512 v3 = NC > 2 && mc[3] ? ld16(t, vr + 48 * es, mc[3]) : _mm512_setzero_ps();
        if (!zero) { /* the common case: every row attends to key j */
#define ACC(i)                                                                          \
            if (NM > i) {                                                               \
                const __m512 p = _mm512_set1_ps(t == ATTN_DTYPE_I8 ? pr[i] * sc : pr[i]); \
                a##i = _mm512_fmadd_ps(p, v0, a##i);                                    \
                b##i = _mm512_fmadd_ps(p, v1, b##i);                                    \
                if (NC > 2) {                                                           \
                    c##i = _mm512_fmadd_ps(p, v2, c##i);                                \
                    d##i = _mm512_fmadd_ps(p, v3, d##i);                                \
                }                                                                       \
            }
            EACH8(ACC)
        } else { /* a row with P == 0 skips the key (its V may be Inf / NaN) */
#define ACCZ(i) if (NM > i && !((zero >> i) & 1)) { ACC(i) }
            EACH8(ACCZ)
#undef ACCZ
#undef ACC
        }
    }
#define STORE(i)                                                                        \
    if (NM > i && i < M) {                                                              \
        _mm512_mask_storeu_ps(O + i * ldo + e0, mc[0], a##i);                           \
        _mm512_mask_storeu_ps(O + i * ldo + e0 + 16, mc[1], b##i);                      \
        if (NC > 2) {                                                                   \
            _mm512_mask_storeu_ps(O + i * ldo + e0 + 32, mc[2], c##i);                  \
            _mm512_mask_storeu_ps(O + i * ldo + e0 + 48, mc[3], d##i);                  \
        }                                                                               \
    }
    EACH8(STORE)
#undef STORE
}

AI void vacc_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                  const float *vs, float *O, int64_t ldo) {
    const int NC = NM <= 4 ? 4 : 2;
    for (int64_t e0 = 0; e0 < Dv; e0 += 16 * NC)
        vacc_cols(t, NM, NC, e0, n, M, Dv, P, ldp, (const unsigned char *)V, vs, O, ldo);
}

#define VACC_NM(T)                                                               \
    do {                                                                         \
        if (M <= 1) vacc_impl(T, 1, n, M, Dv, P, ldp, V, vs, O, ldo);            \
        else if (M <= 2) vacc_impl(T, 2, n, M, Dv, P, ldp, V, vs, O, ldo);       \
        else if (M <= 4) vacc_impl(T, 4, n, M, Dv, P, ldp, V, vs, O, ldo);       \
        else vacc_impl(T, 8, n, M, Dv, P, ldp, V, vs, O, ldo);                   \
    } while (0)

static void vacc_avx512(attn_dtype t, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                        const float *vs, float *O, int64_t ldo) {
    if (t == ATTN_DTYPE_BF16) VACC_NM(ATTN_DTYPE_BF16);
    else if (t == ATTN_DTYPE_F16) VACC_NM(ATTN_DTYPE_F16);
    else VACC_NM(ATTN_DTYPE_I8);
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
