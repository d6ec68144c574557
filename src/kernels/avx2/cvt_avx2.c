/* SPDX-License-Identifier: MIT */
/* cvt_avx2.c — element-type conversions of the sdpa table (to_f32,
 * from_f32) with AVX2 + F16C: F16 through vcvtph2ps / vcvtps2ph (round to
 * nearest even, subnormals and NaN as the portable code), BF16 by 16-bit
 * shifts with the same round-to-nearest-even and quiet-NaN rule as
 * io/half.h. Bit-identical to the portable conversions (test_kernels_typed). */
#include "kernels/dispatch.h"
#include "io/half.h"

#include <immintrin.h>

static void to_f32_avx2(attn_dtype t, int64_t n, const void *src, float *dst) {
    const uint16_t *s = src;
    int64_t i = 0;
    if (t == ATTN_DTYPE_F16) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
        for (; i < n; i++) dst[i] = attn__f16_to_f32(s[i]);
    } else {
        for (; i + 8 <= n; i += 8) {
            const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
        }
        for (; i < n; i++) dst[i] = attn__bf16_to_f32(s[i]);
    }
}

/* 8 floats -> 8 bf16 (round to nearest even; NaN -> quiet NaN) in the low 16 bits of each lane */
static inline __m256i bf16_round8(__m256 x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x0040));
    const __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                             _mm256_set1_epi32(0x7f800000));
    return _mm256_and_si256(_mm256_blendv_epi8(r, qnan, isnan), _mm256_set1_epi32(0xffff));
}

static void from_f32_avx2(attn_dtype t, int64_t n, const float *src, void *dst) {
    uint16_t *d = dst;
    int64_t i = 0;
    if (t == ATTN_DTYPE_F16) {
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
        for (; i < n; i++) d[i] = attn__f32_to_f16(src[i]);
    } else {
        for (; i + 8 <= n; i += 8) {
            const __m256i r = bf16_round8(_mm256_loadu_ps(src + i));
            /* pack the 8 32-bit lanes to 16 bits (packus works per 128-bit lane: fix the order) */
            const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
            _mm_storeu_si128((__m128i *)(d + i), _mm256_castsi256_si128(p));
        }
        for (; i < n; i++) d[i] = attn__f32_to_bf16(src[i]);
    }
}

void attn__sdpa_cvt_avx2(attn__sdpa_kernels *t) {
    t->to_f32 = to_f32_avx2;
    t->from_f32 = from_f32_avx2;
}
