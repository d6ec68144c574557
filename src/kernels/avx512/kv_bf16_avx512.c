/* SPDX-License-Identifier: MIT */
/* kv_bf16_avx512.c — the decode kernels of opts->decode_fast on BF16 pools
 * (attn.h; kv_typed.h: kdot_bf16, vacc_bf16), AVX512_BF16, installed into the
 * avx512 kv table only when CPUID reports it.
 *
 *   kdot_bf16  R = 16 / NM keys x NM query rows, 16 fp32 accumulators along
 *              D: one vdpbf16ps per key and row per 32 elements, the cache
 *              row's bf16 pairs (d, d + 1) loaded as they are, against the
 *              query rounded to bf16 once per block (the caller's Qb); then
 *              dot_avx512.h's transposing reduction and store. No widening.
 *   vacc_bf16  two keys at a time: V rows j, j + 1 merged into pairs
 *              (vpunpcklwd / vpunpckhwd), P[j][m], P[j + 1][m] rounded to
 *              bf16 (nearest even, integer rounding) as one 32-bit broadcast
 *              per row; O in the pair order of kv_typed.h. A pair with a zero
 *              or non-finite P in a live row, and an odd last key, go key by
 *              key in fp32 (the bf16 row widened by the same unpacks against
 *              zeros, so O keeps the pair order), skipping the zero-P rows.
 * Summation orders are fixed by D / Dv and the key order only. */
#include "kernels/kv_typed.h"

#ifdef ATTN_SIMDE_AVX512
#define attn__kv_kernels_avx512_bf16 attn__kv_kernels_avx512_bf16_emul
#else
#include <immintrin.h>
#endif

#include <math.h>

#define AI static inline __attribute__((always_inline))

#define DOT512_LD(t, p, mk) ((void)(mk), _mm512_loadu_ps((const float *)(p))) /* dot512_sums: unused here */
#include "kernels/avx512/dot_avx512.h"

/* Scores of keys j .. j + R - 1 (R = 16 / NM; those < n stored) against NM
 * bf16 query rows Qb (rows >= M are zeros). */
AI void kdot_group(int NM, int64_t j, int64_t n, int64_t M, int64_t D, const uint16_t *K, const uint16_t *Qb,
                   int64_t ldq, float *S, int64_t lds) {
    const int R = 16 / NM;
    const int64_t nk = n - j < R ? n - j : R;
#define ZERO(r, m) __m512 a##r##_##m = _mm512_setzero_ps();
#define ZERO_KEY(r) DOT512_ROWS8(ZERO, r)
    DOT512_EACH16(ZERO_KEY)
#undef ZERO_KEY
#undef ZERO
#define KPTR(r) const uint16_t *k##r = K + (j + r < n ? j + r : n - 1) * D;
    DOT512_EACH16(KPTR)
#undef KPTR
    for (int64_t d = 0; d < D; d += 32) {
#define QLOAD(m) const __m512i q##m = NM > m ? _mm512_loadu_si512((const void *)(Qb + m * ldq + d)) : _mm512_setzero_si512();
        DOT512_EACH8(QLOAD)
#undef QLOAD
#define DP(r, m) if (NM > m) a##r##_##m = _mm512_dpbf16_ps(a##r##_##m, (__m512bh)x, (__m512bh)q##m);
#define KEY(r)                                                                   \
        if (R > r) {                                                             \
            const __m512i x = _mm512_loadu_si512((const void *)(k##r + d));      \
            DOT512_ROWS8(DP, r)                                                  \
        }
        DOT512_EACH16(KEY)
#undef KEY
#undef DP
    }
    const __m512 s = DOT512_REDUCE_ACC(dot512_reduce16, NM);
    dot512_store(NM, s, j, nk, M, S, lds);
}

/* kdot's (T, NM, n, M, ...) signature for ATTN__KV_BY_ROWS (T unused) */
AI void kdot_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t D, const uint16_t *K, const uint16_t *Qb,
                  int64_t ldq, float *S, int64_t lds) {
    (void)t;
    for (int64_t j = 0; j < n; j += 16 / NM) kdot_group(NM, j, n, M, D, K, Qb, ldq, S, lds);
}

static void kdot_bf16(int64_t n, int64_t M, int64_t D, const uint16_t *K, const uint16_t *Qb, int64_t ldq, float *S,
                      int64_t lds) {
    ATTN__KV_BY_ROWS(kdot_impl, ATTN_DTYPE_BF16, n, M, D, K, Qb, ldq, S, lds);
}

/* bf16 bits of 8 fp32 (nearest even), in the low 16 bits of each lane; only
 * finite values come here (non-finite P goes the fp32 way). */
AI __m256i bf16_round8(__m256 x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    return _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
}

/* The pair-order fp32 lanes of one bf16 row's 32 columns (lo: positions
 * 0-15, hi: 16-31): the bf16 bits become the high half of each lane. */
AI __m512 widen_lo(__m512i v) { return _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), v)); }
AI __m512 widen_hi(__m512i v) { return _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), v)); }

/* O[:, e0 : e0 + 32 NG) (pair order) += the keys' P . V, NM rows x NG groups
 * of 32 columns (2 zmm each) in registers. pw[(j / 2) * 8 + m]: the bf16 pair
 * of keys j, j + 1 for row m; fast[j / 2]: that pair goes the bf16 way; zm[j]:
 * the rows with P[j][m] == 0. */
AI void vacc_cols(int NM, int NG, int64_t e0, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp,
                  const uint32_t *pw, const unsigned char *fast, const unsigned char *zm, const uint16_t *V, float *O,
                  int64_t ldo) {
#define LOAD(i)                                                                              \
    __m512 a##i = _mm512_setzero_ps(), b##i = _mm512_setzero_ps();                           \
    __m512 c##i = _mm512_setzero_ps(), d##i = _mm512_setzero_ps();                           \
    if (NM > i && i < M) {                                                                   \
        a##i = _mm512_loadu_ps(O + i * ldo + e0);                                            \
        b##i = _mm512_loadu_ps(O + i * ldo + e0 + 16);                                       \
        if (NG > 1) {                                                                        \
            c##i = _mm512_loadu_ps(O + i * ldo + e0 + 32);                                   \
            d##i = _mm512_loadu_ps(O + i * ldo + e0 + 48);                                   \
        }                                                                                    \
    }
    DOT512_EACH8(LOAD)
#undef LOAD
    int64_t j = 0;
    for (; j + 1 < n; j += 2) {
        const uint16_t *v0 = V + j * Dv + e0, *v1 = v0 + Dv;
        const __m512i x0 = _mm512_loadu_si512((const void *)v0), y0 = _mm512_loadu_si512((const void *)v1);
        const __m512i x1 = NG > 1 ? _mm512_loadu_si512((const void *)(v0 + 32)) : _mm512_setzero_si512();
        const __m512i y1 = NG > 1 ? _mm512_loadu_si512((const void *)(v1 + 32)) : _mm512_setzero_si512();
        if (fast[j / 2]) {
            const __m512bh l0 = (__m512bh)_mm512_unpacklo_epi16(x0, y0), h0 = (__m512bh)_mm512_unpackhi_epi16(x0, y0);
            const __m512bh l1 = (__m512bh)_mm512_unpacklo_epi16(x1, y1), h1 = (__m512bh)_mm512_unpackhi_epi16(x1, y1);
            const uint32_t *pr = pw + (j / 2) * 8;
#define ACC(i)                                                                               \
            if (NM > i) {                                                                    \
                const __m512bh p = (__m512bh)_mm512_set1_epi32((int)pr[i]);                  \
                a##i = _mm512_dpbf16_ps(a##i, l0, p);                                        \
                b##i = _mm512_dpbf16_ps(b##i, h0, p);                                        \
                if (NG > 1) {                                                                \
                    c##i = _mm512_dpbf16_ps(c##i, l1, p);                                    \
                    d##i = _mm512_dpbf16_ps(d##i, h1, p);                                    \
                }                                                                            \
            }
            DOT512_EACH8(ACC)
#undef ACC
            continue;
        }
        /* fp32, key j then key j + 1, each skipping its zero-P rows */
        for (int u = 0; u < 2; u++) {
            const __m512i x = u ? y0 : x0, y = u ? y1 : x1;
            const __m512 wl0 = widen_lo(x), wh0 = widen_hi(x), wl1 = widen_lo(y), wh1 = widen_hi(y);
            const float *pr = P + (j + u) * ldp;
            const unsigned zero = zm[j + u];
#define ACC1(i)                                                                              \
            if (NM > i && !((zero >> i) & 1)) {                                              \
                const __m512 p = _mm512_set1_ps(pr[i]);                                      \
                a##i = _mm512_fmadd_ps(p, wl0, a##i);                                        \
                b##i = _mm512_fmadd_ps(p, wh0, b##i);                                        \
                if (NG > 1) {                                                                \
                    c##i = _mm512_fmadd_ps(p, wl1, c##i);                                    \
                    d##i = _mm512_fmadd_ps(p, wh1, d##i);                                    \
                }                                                                            \
            }
            DOT512_EACH8(ACC1)
        }
    }
    if (j < n) { /* the odd last key, fp32 */
        const uint16_t *v0 = V + j * Dv + e0;
        const __m512i x = _mm512_loadu_si512((const void *)v0);
        const __m512i y = NG > 1 ? _mm512_loadu_si512((const void *)(v0 + 32)) : _mm512_setzero_si512();
        const __m512 wl0 = widen_lo(x), wh0 = widen_hi(x), wl1 = widen_lo(y), wh1 = widen_hi(y);
        const float *pr = P + j * ldp;
        const unsigned zero = zm[j];
        DOT512_EACH8(ACC1)
#undef ACC1
    }
#define STORE(i)                                                                             \
    if (NM > i && i < M) {                                                                   \
        _mm512_storeu_ps(O + i * ldo + e0, a##i);                                            \
        _mm512_storeu_ps(O + i * ldo + e0 + 16, b##i);                                       \
        if (NG > 1) {                                                                        \
            _mm512_storeu_ps(O + i * ldo + e0 + 32, c##i);                                   \
            _mm512_storeu_ps(O + i * ldo + e0 + 48, d##i);                                   \
        }                                                                                    \
    }
    DOT512_EACH8(STORE)
#undef STORE
}

/* Once per call: zm[j] (the live rows with P == 0), the bf16 pairs pw of
 * keys (2p, 2p + 1) and fast[p] = no zero or non-finite P among their live
 * rows; then 64 columns at a time (32 for NM = 8, and for a last 32). */
AI void vacc_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp,
                  const uint16_t *V, float *O, int64_t ldo) {
    (void)t;
    uint32_t pw[(ATTN__KV_MAX_KEYS / 2) * 8] __attribute__((aligned(32))); /* (n / 2, 8) */
    unsigned char zm[ATTN__KV_MAX_KEYS], bad[ATTN__KV_MAX_KEYS], fast[ATTN__KV_MAX_KEYS / 2];
    const unsigned live = (1u << M) - 1u;
    for (int64_t j = 0; j < n; j++) {
        const __m256 pr = _mm256_loadu_ps(P + j * ldp);
        zm[j] = (unsigned char)((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(pr, _mm256_setzero_ps(), _CMP_EQ_OQ)) & live);
        /* |P| < Inf is false for Inf and NaN */
        const __m256 ab = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), pr);
        const unsigned fin = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(ab, _mm256_set1_ps(INFINITY), _CMP_LT_OQ));
        bad[j] = (unsigned char)(zm[j] | (~fin & live));
    }
    for (int64_t j = 0; j + 1 < n; j += 2) {
        fast[j / 2] = !bad[j] && !bad[j + 1];
        const __m256i lo = bf16_round8(_mm256_loadu_ps(P + j * ldp)), hi = bf16_round8(_mm256_loadu_ps(P + (j + 1) * ldp));
        _mm256_store_si256((__m256i *)(pw + (j / 2) * 8), _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)));
    }
    const int NG = NM <= 4 ? 2 : 1;
    int64_t e0 = 0;
    for (; e0 + 32 * NG <= Dv; e0 += 32 * NG) vacc_cols(NM, NG, e0, n, M, Dv, P, ldp, pw, fast, zm, V, O, ldo);
    if (e0 < Dv) vacc_cols(NM, 1, e0, n, M, Dv, P, ldp, pw, fast, zm, V, O, ldo);
}

static void vacc_bf16(int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const uint16_t *V, float *O,
                      int64_t ldo) {
    ATTN__KV_BY_ROWS(vacc_impl, ATTN_DTYPE_BF16, n, M, Dv, P, ldp, V, O, ldo);
}

void attn__kv_kernels_avx512_bf16(attn__kv_kernels *t) {
    t->kdot_bf16 = kdot_bf16;
    t->vacc_bf16 = vacc_bf16;
}
