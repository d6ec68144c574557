/* SPDX-License-Identifier: MIT */
/* kv_typed_avx512.c — AVX-512 typed decode kernels (kv_typed.h).
 *
 * Widening in registers, 16 elements at a time (masked loads for the D tail,
 * so nothing past a row is read): bf16 = zero-extend to 32 bits and shift
 * left 16; f16 = vcvtph2ps; int8 = vpmovsxbd + vcvtdq2ps (the row's scale
 * is applied to the dot product, or folded into P for V).
 *   kdot: R = 16 / NM keys at a time, NM in {1, 2, 4, 8} query rows: 16 zmm
 *         accumulators along D (each query chunk loaded once for the R keys,
 *         each key chunk widened once for the NM rows), then one transposing
 *         reduction of the 16 to one zmm of scores (and one multiply by the
 *         R int8 scales), stored as the R keys' S rows.
 *   vacc: the zero-P rows of each key and (int8) P * scale formed once per
 *         call; then 64 output columns at a time (32 for NM = 8): the NM x 4
 *         (2) zmm of O stay in registers while every key adds P[j][m] v_j.
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

#define DOT512_LD(t, p, mk) ld16(t, p, mk)
#include "kernels/avx512/dot_avx512.h"

/* Scores of the R = 16 / NM keys j .. j + R - 1 (those < n stored) against NM
 * query rows (dot_avx512.h) and, for I8, one multiply by the R keys' scales. */
AI void kdot_group(attn_dtype t, int NM, int64_t j, int64_t n, int64_t M, int64_t D, const unsigned char *K,
                   const float *ks, const float *Q, int64_t ldq, float *S, int64_t lds) {
    const int64_t nk = n - j < 16 / NM ? n - j : 16 / NM; /* keys of the group to store */
    __m512 s = dot512_sums(t, NM, 0, j, n, M, D, K, D, Q, ldq);
    if (t == ATTN_DTYPE_I8) /* lane r NM + m times ks[j + r] */
        s = _mm512_mul_ps(s, _mm512_permutexvar_ps(dot512_key_of_lane(NM), _mm512_maskz_loadu_ps((__mmask16)((1u << nk) - 1u), ks + j)));
    dot512_store(NM, s, j, nk, M, S, lds);
}

AI void kdot_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                  int64_t ldq, float *S, int64_t lds) {
    for (int64_t j = 0; j < n; j += 16 / NM) kdot_group(t, NM, j, n, M, D, (const unsigned char *)K, ks, Q, ldq, S, lds);
}

static void kdot_avx512(attn_dtype t, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                        int64_t ldq, float *S, int64_t lds) {
    ATTN__KV_DISPATCH(kdot_impl, t, n, M, D, K, ks, Q, ldq, S, lds);
}

/* O[:, e0 : e0 + 16 NC) += sum_j p_j[m] v_j[e0 : e0 + 16 NC) for the keys of
 * the call, NM (>= M) rows x NC zmm in registers (NC = 4 for NM <= 4, else 2);
 * p_j = pb[j * ldb + m] (P, or P vs_j for I8), zm[j] the rows with P == 0.
 * FULL: the 16 NC columns are all < Dv (plain loads; else masked). */
AI void vacc_cols(attn_dtype t, int NM, int NC, int FULL, int64_t e0, int64_t n, int64_t M, int64_t Dv, const float *pb,
                  int64_t ldb, const unsigned char *zm, const unsigned char *V, float *O, int64_t ldo) {
    const size_t es = dot512_esz(t);
    __mmask16 mc[4];
    for (int q = 0; q < 4; q++) mc[q] = FULL ? (__mmask16)0xffff : Dv - e0 > 16 * q ? dot512_tail(Dv - e0 - 16 * q) : 0;
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
    DOT512_EACH8(LOAD)
#undef LOAD
    for (int64_t j = 0; j < n; j++) {
        const float *pr = pb + j * ldb;
        const unsigned zero = zm[j];
        const unsigned char *vr = V + (size_t)(j * Dv + e0) * es;
        const __m512 v0 = ld16(t, vr, mc[0]), v1 = FULL || mc[1] ? ld16(t, vr + 16 * es, mc[1]) : _mm512_setzero_ps();
        const __m512 v2 = NC > 2 && (FULL || mc[2]) ? ld16(t, vr + 32 * es, mc[2]) : _mm512_setzero_ps();
        const __m512 v3 = NC > 2 && (FULL || mc[3]) ? ld16(t, vr + 48 * es, mc[3]) : _mm512_setzero_ps();
        if (!zero) { /* the common case: every row attends to key j */
#define ACC(i)                                                                          \
            if (NM > i) {                                                               \
                const __m512 p = _mm512_set1_ps(pr[i]);                                 \
                a##i = _mm512_fmadd_ps(p, v0, a##i);                                    \
                b##i = _mm512_fmadd_ps(p, v1, b##i);                                    \
                if (NC > 2) {                                                           \
                    c##i = _mm512_fmadd_ps(p, v2, c##i);                                \
                    d##i = _mm512_fmadd_ps(p, v3, d##i);                                \
                }                                                                       \
            }
            DOT512_EACH8(ACC)
        } else { /* a row with P == 0 skips the key (its V may be Inf / NaN) */
#define ACCZ(i) if (NM > i && !((zero >> i) & 1)) { ACC(i) }
            DOT512_EACH8(ACCZ)
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
    DOT512_EACH8(STORE)
#undef STORE
}

/* First, once per call (not per column pass): zm[j] = the rows m < M with
 * P[j][m] == 0 (from P itself: an I8 key's scale may be NaN where P is 0),
 * and for I8 the products P[j][m] vs_j (rounded as before) into pp (n, 8). */
AI void vacc_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                  const float *vs, float *O, int64_t ldo) {
    const int NC = NM <= 4 ? 4 : 2;
    float pp[ATTN__KV_MAX_KEYS * 8] __attribute__((aligned(64))); /* (n, 8) */
    unsigned char zm[ATTN__KV_MAX_KEYS];                          /* (n) */
    const __mmask8 live = (__mmask8)((1u << M) - 1u);
    for (int64_t j = 0; j < n; j++) {
        const __m256 pr = _mm256_loadu_ps(P + j * ldp);
        zm[j] = (unsigned char)(_mm256_cmp_ps_mask(pr, _mm256_setzero_ps(), _CMP_EQ_OQ) & live);
        if (t == ATTN_DTYPE_I8) _mm256_store_ps(pp + j * 8, _mm256_mul_ps(pr, _mm256_set1_ps(vs[j])));
    }
    const float *pb = t == ATTN_DTYPE_I8 ? pp : P;
    const int64_t ldb = t == ATTN_DTYPE_I8 ? 8 : ldp;
    int64_t e0 = 0;
    for (; e0 + 16 * NC <= Dv; e0 += 16 * NC)
        vacc_cols(t, NM, NC, 1, e0, n, M, Dv, pb, ldb, zm, (const unsigned char *)V, O, ldo);
    if (e0 < Dv) vacc_cols(t, NM, NC, 0, e0, n, M, Dv, pb, ldb, zm, (const unsigned char *)V, O, ldo);
}

static void vacc_avx512(attn_dtype t, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                        const float *vs, float *O, int64_t ldo) {
    ATTN__KV_DISPATCH(vacc_impl, t, n, M, Dv, P, ldp, V, vs, O, ldo);
}

void attn__kv_kernels_avx512(attn__kv_kernels *t) {
    t->name = "avx512";
    t->kdot = kdot_avx512;
    t->vacc = vacc_avx512;
}
