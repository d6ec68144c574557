/* SPDX-License-Identifier: MIT */
/* sdpa_pack_avx2.c — AVX2 query-block packing of the backward (dispatch.h:
 * pack_qblock) for fp32 rows, installed with the avx2 table.
 *
 * Per group of 8 rows and 8 elements: 8 row loads (masked at the row's end,
 * zeros for a NULL row), the row operand R stored from them, an 8 x 8
 * transpose in registers (unpack 32 / 64-bit, then 128-bit lane swaps) and 8
 * stores into T. The Inf / NaN screen runs on the transposed vectors: each
 * gives one bit per row. bf16 pairs (esz 2, the AVX-512 bf16 fast path only)
 * take the portable packing. Pure data movement: the result is that of the
 * portable packing bit for bit. */
#include "kernels/dispatch.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* r[0..7] (rows) -> r[0..7] (columns): r[j] element i = old r[i] element j. */
AI void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* One bit per lane: exponent all ones (Inf / NaN). */
AI int nonfinite8(__m256 v) {
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    return _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), e), e)));
}

/* the generic table's packing, for bf16 pairs */
static int (*g_portable)(int64_t, int64_t, int64_t, int, const void *const *, void *, void *, int64_t, int32_t *);

static int pack_qblock_avx2(int64_t mp, int64_t nr, int64_t n, int esz, const void *const *x, void *Tv, void *Rv,
                            int64_t ldr, int32_t *bad) {
    if (esz != 4) return g_portable(mp, nr, n, esz, x, Tv, Rv, ldr, bad);
    float *T = Tv, *R = Rv;
    const int64_t done = (n + 7) / 8 * 8; /* R columns the loop writes */
    int nbad = 0;
    for (int64_t m0 = 0; m0 < mp; m0 += 8) {
        int badm = 0;
        for (int64_t u0 = 0; u0 < n; u0 += 8) {
            const int64_t left = n - u0;
            const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(left >= 8 ? 8 : (int)left),
                                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const float *xi = x[m0 + i];
                r[i] = xi ? _mm256_maskload_ps(xi + u0, k) : _mm256_setzero_ps();
            }
            if (R)
                for (int i = 0; i < 8 && m0 + i < nr; i++) _mm256_storeu_ps(R + (m0 + i) * ldr + u0, r[i]);
            transpose8(r);
            for (int j = 0; j < 8 && j < left; j++) {
                _mm256_storeu_ps(T + (u0 + j) * mp + m0, r[j]);
                badm |= nonfinite8(r[j]);
            }
        }
        for (int i = 0; i < 8; i++)
            if (badm >> i & 1) bad[nbad++] = (int32_t)(m0 + i);
        if (!R || done >= ldr) continue; /* the rest of the padding (ldr > the columns written) */
        for (int64_t m = m0; m < m0 + 8 && m < nr; m++) memset(R + m * ldr + done, 0, (size_t)(ldr - done) * 4);
    }
    return nbad;
}

void attn__sdpa_pack_avx2(attn__sdpa_kernels *t) {
    g_portable = t->pack_qblock; /* the table starts as a copy of the generic one */
    t->pack_qblock = pack_qblock_avx2;
}
