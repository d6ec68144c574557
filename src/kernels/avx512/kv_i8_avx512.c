/* SPDX-License-Identifier: MIT */
/* kv_i8_avx512.c — the score kernel of opts->decode_fast on I8 pools (attn.h;
 * kv_typed.h: kdot_i8), AVX512_VNNI, installed into the avx512 kv table only
 * when CPUID reports it.
 *
 *   kdot_i8  R = 16 / NM keys x NM query rows, 16 int32 accumulators along
 *            D: the cache row's int8 values sign-extended to 16 bits
 *            (vpmovsxbw, 32 at a time, once per key for the NM rows), one
 *            vpdpwssd per key and row per 32 elements against the query
 *            quantised to int16 once per block (the caller's Qi, qs). The
 *            integer sums are exact (|q| <= 32767, |k| <= 127, D <= 256:
 *            < 2^31); dot_avx512.h's transposing reduction on the int32
 *            lanes (exact), one conversion to fp32, one multiply by the
 *            rows' query scales and one by the keys' scales.
 * P.V stays on the fp32 vacc (kv_typed_avx512.c): quantising P would add an
 * error of the order of the cache's own. Summation order fixed by D. */
#include "kernels/kv_typed.h"

#ifdef ATTN_SIMDE_AVX512
#define attn__kv_kernels_avx512_vnni attn__kv_kernels_avx512_vnni_emul
#else
#include <immintrin.h>
#endif

#define AI static inline __attribute__((always_inline))

#define DOT512_LD(t, p, mk) ((void)(mk), _mm512_loadu_ps((const float *)(p))) /* dot512_sums: unused here */
#include "kernels/avx512/dot_avx512.h"

/* Scores of keys j .. j + R - 1 (R = 16 / NM; those < n stored) against NM
 * int16 query rows Qi (rows >= M are zeros); qsv: lane r NM + m holds qs[m]. */
AI void i8_group(int NM, int64_t j, int64_t n, int64_t M, int64_t D, const int8_t *K, const float *ks,
                   const int16_t *Qi, __m512 qsv, int64_t ldq, float *S, int64_t lds) {
    const int R = 16 / NM;
    const int64_t nk = n - j < R ? n - j : R;
#define ZERO(r, m) __m512i a##r##_##m = _mm512_setzero_si512();
#define ZERO_KEY(r) DOT512_ROWS8(ZERO, r)
    DOT512_EACH16(ZERO_KEY)
#undef ZERO_KEY
#undef ZERO
#define KPTR(r) const int8_t *k##r = K + (j + r < n ? j + r : n - 1) * D;
    DOT512_EACH16(KPTR)
#undef KPTR
    for (int64_t d = 0; d < D; d += 32) {
#define QLOAD(m) const __m512i q##m = NM > m ? _mm512_loadu_si512((const void *)(Qi + m * ldq + d)) : _mm512_setzero_si512();
        DOT512_EACH8(QLOAD)
#undef QLOAD
#define DP(r, m) if (NM > m) a##r##_##m = _mm512_dpwssd_epi32(a##r##_##m, x, q##m);
#define KEY(r)                                                                                    \
        if (R > r) {                                                                              \
            const __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(k##r + d))); \
            DOT512_ROWS8(DP, r)                                                                   \
        }
        DOT512_EACH16(KEY)
#undef KEY
#undef DP
    }
    const __m512i si = DOT512_REDUCE_ACC(dot512_reduce16i, NM);
    /* lane r NM + m: the exact sum in fp32, times qs[m] (qsv), then times ks[j + r] */
    const __m512 ksv = _mm512_permutexvar_ps(dot512_key_of_lane(NM), _mm512_maskz_loadu_ps((__mmask16)((1u << nk) - 1u), ks + j));
    const __m512 s = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(si), qsv), ksv);
    dot512_store(NM, s, j, nk, M, S, lds);
}

/* kdot's (T, NM, n, M, ...) signature for ATTN__KV_BY_ROWS (T unused) */
AI void i8_impl(attn_dtype t, int NM, int64_t n, int64_t M, int64_t D, const int8_t *K, const float *ks,
                  const int16_t *Qi, const float *qs, int64_t ldq, float *S, int64_t lds) {
    (void)t;
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 qsv = _mm512_permutexvar_ps(_mm512_and_si512(lane, _mm512_set1_epi32(NM - 1)),
                                             _mm512_castps256_ps512(_mm256_loadu_ps(qs)));
    for (int64_t j = 0; j < n; j += 16 / NM) i8_group(NM, j, n, M, D, K, ks, Qi, qsv, ldq, S, lds);
}

static void kdot_i8(int64_t n, int64_t M, int64_t D, const int8_t *K, const float *ks, const int16_t *Qi,
                    const float *qs, int64_t ldq, float *S, int64_t lds) {
    ATTN__KV_BY_ROWS(i8_impl, ATTN_DTYPE_I8, n, M, D, K, ks, Qi, qs, ldq, S, lds);
}

void attn__kv_kernels_avx512_vnni(attn__kv_kernels *t) { t->kdot_i8 = kdot_i8; }
