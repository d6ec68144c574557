/* SPDX-License-Identifier: MIT */
/* sdpa_pack_avx512.c — AVX-512 query-block packing of the backward
 * (dispatch.h: pack_qblock), installed with the avx512 table (dispatch.c).
 *
 * Per group of 16 rows and 16 32-bit units (fp32 elements or bf16 pairs):
 * 16 row loads (masked at the row's end, zeros for a NULL row), the row
 * operand R stored from them (fp32 rows; bf16 rows interleaved in pairs
 * with vpermt2w), a 16 x 16 transpose in registers (unpack 32 / 64-bit,
 * then two 128-bit lane shuffles) and 16 stores into T. The Inf / NaN screen
 * runs on the transposed vectors: each gives one bit per row.
 * Pure data movement: the result is that of the portable packing bit for bit. */
#include "kernels/dispatch.h"

#ifdef ATTN_SIMDE_AVX512
/* Test build (tests/test_kernels_typed.c): the same source on SIMDe's portable
 * AVX-512 emulation, so machines without AVX-512 check it too. */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
typedef simde__mmask16 __mmask16;
typedef simde__mmask32 __mmask32;
#define attn__sdpa_pack_avx512 attn__sdpa_pack_avx512_emul
#else
#include <immintrin.h>
#endif
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* r[0..15] (rows) -> r[0..15] (columns): r[j] element i = old r[i] element j. */
AI void transpose16(__m512i r[16]) {
    __m512i e[16];
    for (int g = 0; g < 4; g++) { /* rows 4g..4g+3: e[4g + c] lane l = column 4l + c of those rows */
        const __m512i a = _mm512_unpacklo_epi32(r[4 * g], r[4 * g + 1]);
        const __m512i b = _mm512_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
        const __m512i c = _mm512_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]);
        const __m512i d = _mm512_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
        e[4 * g] = _mm512_unpacklo_epi64(a, c);
        e[4 * g + 1] = _mm512_unpackhi_epi64(a, c);
        e[4 * g + 2] = _mm512_unpacklo_epi64(b, d);
        e[4 * g + 3] = _mm512_unpackhi_epi64(b, d);
    }
    for (int c = 0; c < 4; c++) { /* column 4l + c: lane l of e[c], e[4 + c], e[8 + c], e[12 + c] */
        const __m512i p = _mm512_shuffle_i32x4(e[c], e[4 + c], 0x44);
        const __m512i q = _mm512_shuffle_i32x4(e[c], e[4 + c], 0xEE);
        const __m512i s = _mm512_shuffle_i32x4(e[8 + c], e[12 + c], 0x44);
        const __m512i u = _mm512_shuffle_i32x4(e[8 + c], e[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(p, s, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(p, s, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(q, u, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(q, u, 0xDD);
    }
}

/* One bit per 32-bit lane: an Inf / NaN element in it (fp32, or either bf16 half). */
AI __mmask16 nonfinite(__m512i v, int esz) {
    if (esz == 4) {
        const __m512i e = _mm512_set1_epi32(0x7f800000);
        return _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, e), e);
    }
    const __m512i e = _mm512_set1_epi16(0x7f80);
    const __m512i h = _mm512_movm_epi16(_mm512_cmpeq_epi16_mask(_mm512_and_si512(v, e), e));
    return _mm512_test_epi32_mask(h, h);
}

/* vpermt2w indices: pairs (a[d], b[d]) for d = 16 t .. 16 t + 15 */
AI __m512i pair_rows_index(int t) {
    uint16_t ix[32];
    for (int d = 0; d < 16; d++) {
        ix[2 * d] = (uint16_t)(16 * t + d);
        ix[2 * d + 1] = (uint16_t)(32 + 16 * t + d);
    }
    return _mm512_loadu_si512((const void *)ix);
}

/* Row operand of rows m0.., units u0.. (r: the rows' loads): fp32 rows, or
 * bf16 row pairs (2 x 16 pairs per row pair; the second half only where
 * the row has room). */
AI void store_rows(const __m512i r[16], int64_t m0, int64_t nr, int64_t u0, int esz, uint32_t *R, int64_t ldr,
                   __m512i ix0, __m512i ix1) {
    if (esz == 4) {
        for (int i = 0; i < 16 && m0 + i < nr; i++) _mm512_storeu_si512((void *)(R + (m0 + i) * ldr + u0), r[i]);
        return;
    }
    for (int i = 0; i < 16 && m0 + i < nr; i += 2) {
        uint32_t *d = R + ((m0 + i) / 2) * ldr + 2 * u0;
        _mm512_storeu_si512((void *)d, _mm512_permutex2var_epi16(r[i], ix0, r[i + 1]));
        if (2 * u0 + 16 < ldr) _mm512_storeu_si512((void *)(d + 16), _mm512_permutex2var_epi16(r[i], ix1, r[i + 1]));
    }
}

static int pack_qblock_avx512(int64_t mp, int64_t nr, int64_t n, int esz, const void *const *x, void *Tv, void *Rv,
                              int64_t ldr, int32_t *bad) {
    uint32_t *T = Tv, *R = Rv;
    const int64_t nu = esz == 4 ? n : n / 2;
    const int64_t done = esz == 4 ? (nu + 15) / 16 * 16 : 2 * ((nu + 15) / 16 * 16); /* R columns the loop writes */
    const __m512i ix0 = pair_rows_index(0), ix1 = pair_rows_index(1);
    int nbad = 0;
    for (int64_t m0 = 0; m0 < mp; m0 += 16) {
        __mmask16 badm = 0;
        for (int64_t u0 = 0; u0 < nu; u0 += 16) {
            const int64_t left = nu - u0;
            const __mmask16 k = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            __m512i r[16];
            for (int i = 0; i < 16; i++) {
                const uint32_t *xi = x[m0 + i];
                r[i] = xi ? _mm512_maskz_loadu_epi32(k, xi + u0) : _mm512_setzero_si512();
            }
            if (R) store_rows(r, m0, nr, u0, esz, R, ldr, ix0, ix1);
            transpose16(r);
            for (int j = 0; j < 16 && j < left; j++) {
                _mm512_storeu_si512((void *)(T + (u0 + j) * mp + m0), r[j]);
                badm |= nonfinite(r[j], esz);
            }
        }
        for (int i = 0; i < 16; i++)
            if (badm >> i & 1) bad[nbad++] = (int32_t)(m0 + i);
        if (!R) continue;
        /* the rest of the padding (ldr > the columns written) */
        if (done >= ldr) continue;
        for (int64_t m = m0; m < m0 + 16 && m < nr; m += esz == 4 ? 1 : 2)
            memset(R + (esz == 4 ? m : m / 2) * ldr + done, 0, (size_t)(ldr - done) * 4);
    }
    return nbad;
}

void attn__sdpa_pack_avx512(attn__sdpa_kernels *t) { t->pack_qblock = pack_qblock_avx512; }
