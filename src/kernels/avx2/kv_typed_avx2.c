/* SPDX-License-Identifier: MIT */
/* kv_typed_avx2.c — AVX2 + F16C typed decode kernels (kv_typed.h).
 *
 * Widening in registers, 8 elements at a time: bf16 = zero-extend and shift
 * left 16; f16 = vcvtph2ps (F16C); int8 = vpmovsxbd + vcvtdq2ps. A D tail
 * (< 8 elements) is staged through a zeroed 16-byte buffer, so nothing past
 * a row is read.
 *   kdot: two keys at a time for NM in {1, 2, 4} query rows (2 NM ymm
 *         accumulators), one for NM = 8, one transposing reduction to each
 *         key's 8 scores.
 *   vacc: 8 output columns at a time, the M ymm of O in registers
 *         (named variables, NM in {1, 2, 4, 8} fixed at compile time: GCC
 *         keeps arrays of vectors, or a run-time count of them, on the stack).
 * Summation orders are fixed by D / Dv and the key order only. */
#include "kernels/kv_typed.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

AI size_t esz(attn_dtype t) { return t == ATTN_DTYPE_I8 ? 1 : 2; }

AI __m256 cvt8(attn_dtype t, __m128i x) {
    if (t == ATTN_DTYPE_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16));
    if (t == ATTN_DTYPE_F16) return _mm256_cvtph_ps(x);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
}

/* Elements [0, min(left, 8)) of p widened, zeros after. */
AI __m256 ld8(attn_dtype t, const unsigned char *p, int64_t left) {
    const size_t es = esz(t);
    if (left >= 8) return cvt8(t, es == 1 ? _mm_loadl_epi64((const __m128i *)p) : _mm_loadu_si128((const __m128i *)p));
    unsigned char b[16] = {0};
    memcpy(b, p, (size_t)left * es);
    return cvt8(t, _mm_loadu_si128((const __m128i *)b));
}

/* Elements [0, min(left, 8)) of fp32 p, zeros after. */
AI __m256 ldf8(const float *p, int64_t left) {
    if (left >= 8) return _mm256_loadu_ps(p);
    float b[8] = {0};
    memcpy(b, p, (size_t)left * sizeof(float));
    return _mm256_loadu_ps(b);
}

AI void stf8(float *p, __m256 x, int64_t left) {
    if (left >= 8) { _mm256_storeu_ps(p, x); return; }
    float b[8];
    _mm256_storeu_ps(b, x);
    memcpy(p, b, (size_t)left * sizeof(float));
}

#define EACH8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* [sum t0, ..., sum t7] as one ymm. */
AI __m256 reduce8(__m256 t0, __m256 t1, __m256 t2, __m256 t3, __m256 t4, __m256 t5, __m256 t6, __m256 t7) {
    const __m256 h01 = _mm256_hadd_ps(t0, t1), h23 = _mm256_hadd_ps(t2, t3);
    const __m256 h45 = _mm256_hadd_ps(t4, t5), h67 = _mm256_hadd_ps(t6, t7);
    const __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}

/* Accumulators are named variables (macros over the row index): GCC keeps
 * arrays of vectors on the stack. */
AI void kdot_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                  int64_t ldq, float *S, int64_t lds) {
    const size_t es = esz(t);
    float keep[8];
    for (int m = 0; m < 8; m++) keep[m] = m < M ? 1.0f : 0.0f;
    const __m256 kmask = _mm256_cmp_ps(_mm256_loadu_ps(keep), _mm256_setzero_ps(), _CMP_NEQ_OQ);
    for (int64_t j = 0; j < n; j++) {
#define ZERO(i) __m256 a##i = _mm256_setzero_ps();
        EACH8(ZERO)
#undef ZERO
        const unsigned char *kr = (const unsigned char *)K + (size_t)(j * D) * es;
        for (int64_t d = 0; d < D; d += 8) {
            const __m256 x = ld8(t, kr + (size_t)d * es, D - d);
#define ROW(i) if (NM > i) a##i = _mm256_fmadd_ps(x, _mm256_loadu_ps(Q + i * ldq + d), a##i);
            EACH8(ROW)
#undef ROW
        }
        __m256 s = reduce8(a0, a1, a2, a3, a4, a5, a6, a7);
        if (t == ATTN_DTYPE_I8) s = _mm256_mul_ps(s, _mm256_set1_ps(ks[j]));
        _mm256_storeu_ps(S + j * lds, _mm256_and_ps(s, kmask));
    }
}

/* NM <= 4 rows against keys in pairs: 2 NM independent FMA chains per D step
 * instead of NM (one key at a time waits on the FMA latency: 4 chains of
 * D / 8 dependent FMAs per key); each (key, row) sum in the order of
 * kdot_impl, so the same bits. An odd last key goes through kdot_impl. */
AI void kdot_pairs(attn_dtype t, int NM, int64_t n, int64_t M, int64_t D, const void *K, const float *ks,
                   const float *Q, int64_t ldq, float *S, int64_t lds) {
    const size_t es = esz(t);
    float keep[8];
    for (int m = 0; m < 8; m++) keep[m] = m < M ? 1.0f : 0.0f;
    const __m256 kmask = _mm256_cmp_ps(_mm256_loadu_ps(keep), _mm256_setzero_ps(), _CMP_NEQ_OQ), z = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
        __m256 a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        const unsigned char *k0 = (const unsigned char *)K + (size_t)(j * D) * es, *k1 = k0 + (size_t)D * es;
        for (int64_t d = 0; d < D; d += 8) {
            const __m256 x0 = ld8(t, k0 + (size_t)d * es, D - d), x1 = ld8(t, k1 + (size_t)d * es, D - d);
#define ROW(i)                                                          \
            if (NM > i) {                                               \
                const __m256 q = _mm256_loadu_ps(Q + i * ldq + d);      \
                a##i = _mm256_fmadd_ps(x0, q, a##i);                    \
                b##i = _mm256_fmadd_ps(x1, q, b##i);                    \
            }
            ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
        }
        __m256 s0 = reduce8(a0, a1, a2, a3, z, z, z, z), s1 = reduce8(b0, b1, b2, b3, z, z, z, z);
        if (t == ATTN_DTYPE_I8) {
            s0 = _mm256_mul_ps(s0, _mm256_set1_ps(ks[j]));
            s1 = _mm256_mul_ps(s1, _mm256_set1_ps(ks[j + 1]));
        }
        _mm256_storeu_ps(S + j * lds, _mm256_and_ps(s0, kmask));
        _mm256_storeu_ps(S + (j + 1) * lds, _mm256_and_ps(s1, kmask));
    }
    if (j < n) kdot_impl(t, NM, n - j, M, D, (const unsigned char *)K + (size_t)(j * D) * es, ks ? ks + j : NULL, Q, ldq,
                         S + j * lds, lds);
}

/* kdot_pairs for NM <= 4, kdot_impl for 8 (NM is a constant: the choice folds). */
AI void kdot_rows(attn_dtype t, int NM, int64_t n, int64_t M, int64_t D, const void *K, const float *ks,
                  const float *Q, int64_t ldq, float *S, int64_t lds) {
    if (NM <= 4) kdot_pairs(t, NM, n, M, D, K, ks, Q, ldq, S, lds);
    else kdot_impl(t, NM, n, M, D, K, ks, Q, ldq, S, lds);
}

static void kdot_avx2(attn_dtype t, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                      int64_t ldq, float *S, int64_t lds) {
    ATTN__KV_DISPATCH(kdot_rows, t, n, M, D, K, ks, Q, ldq, S, lds);
}

AI void vacc_impl(attn_dtype t, const int NM, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp,
                  const void *V, const float *vs, float *O, int64_t ldo) {
    const size_t es = esz(t);
    unsigned char live[ATTN__KV_MAX_KEYS]; /* key j's probabilities all nonzero (once, not per column block) */
    for (int64_t j = 0; j < n; j++) {
        int l = 1;
        for (int i = 0; i < NM && i < M; i++) l &= P[j * ldp + i] != 0.0f;
        live[j] = (unsigned char)l;
    }
    for (int64_t e0 = 0; e0 < Dv; e0 += 8) {
#define LOAD(i) __m256 a##i = NM > i && i < M ? ldf8(O + i * ldo + e0, Dv - e0) : _mm256_setzero_ps();
        EACH8(LOAD)
#undef LOAD
        for (int64_t j = 0; j < n; j++) {
            const float *pr = P + j * ldp;
            const float sc = t == ATTN_DTYPE_I8 ? vs[j] : 1.0f;
            const __m256 v = ld8(t, (const unsigned char *)V + (size_t)(j * Dv + e0) * es, Dv - e0);
#define PW(i) (t == ATTN_DTYPE_I8 ? pr[i] * sc : pr[i])
            if (live[j]) { /* rows M..NM-1: weight 0 (their accumulators are never stored) */
#define ACC(i) if (NM > i) a##i = _mm256_fmadd_ps(_mm256_set1_ps(i < M ? PW(i) : 0.0f), v, a##i);
                EACH8(ACC)
#undef ACC
            } else { /* a key with P == 0 adds nothing to that row (its V may be Inf / NaN) */
#define ACC(i) if (NM > i && i < M && pr[i] != 0.0f) a##i = _mm256_fmadd_ps(_mm256_set1_ps(PW(i)), v, a##i);
                EACH8(ACC)
#undef ACC
            }
#undef PW
        }
#define STORE(i) if (NM > i && i < M) stf8(O + i * ldo + e0, a##i, Dv - e0);
        EACH8(STORE)
#undef STORE
    }
}

static void vacc_avx2(attn_dtype t, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                      const float *vs, float *O, int64_t ldo) {
    ATTN__KV_DISPATCH(vacc_impl, t, n, M, Dv, P, ldp, V, vs, O, ldo);
}

void attn__kv_kernels_avx2(attn__kv_kernels *t) {
    t->name = "avx2";
    t->kdot = kdot_avx2;
    t->vacc = vacc_avx2;
}
