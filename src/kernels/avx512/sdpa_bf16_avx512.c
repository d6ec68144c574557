/* SPDX-License-Identifier: MIT */
/* sdpa_bf16_avx512.c — AVX512_BF16 micro-kernels of the bf16 fast forward
 * (dispatch.h: gemm_bf16, pack_p_bf16, pack_v_bf16), installed into the
 * avx512 table only when CPUID reports AVX512_BF16.
 *
 *   gemm_bf16   C (m, n) (+)= A2 . B2 on bf16 pairs with vdpbf16ps: register
 *               tiles of R rows x 16*NV columns (6x64, 8x48, 12x32, 12x16 as
 *               the fp32 gemm), one 32-bit broadcast of an A pair per row and
 *               step, NV loads of 16 B pairs. Twice the fp32 FMA's work per
 *               instruction.
 *   pack_p_bf16 two score rows (keys c, c+1) rounded with vcvtne2ps2bf16 and
 *               interleaved into pairs with one vpermw.
 *   pack_v_bf16 two V rows zero-extended to 32 bits and merged into pairs,
 *               with the Inf/NaN row screen of pack_rows.
 *   split_ds_bf16 the backward's dS rounded for dK (from_f32's integer
 *               rounding) and as hi / lo key pairs for dq, in one pass.
 * Summation order fixed (p ascending): results depend only on the inputs. */
#include "kernels/dispatch.h"

#ifdef ATTN_SIMDE_AVX512
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define attn__sdpa_kernels_avx512_bf16 attn__sdpa_kernels_avx512_bf16_emul
#else
#include <immintrin.h>
#endif
#include <string.h>

#define AI static inline __attribute__((always_inline))

AI __m512i bcast_pair(const uint16_t *p) {
    int32_t u;
    memcpy(&u, p, 4);
    return _mm512_set1_epi32(u);
}

/* C (R, 16 NV) (+)= A2 (R, k2) . B2 (k2, 16 NV) */
AI void tile_bf16(const int R, const int NV, int64_t k2, const uint16_t *A, int64_t ars, int64_t aps,
                  const uint16_t *B, int64_t ldb, float *C, int64_t ldc, int acc) {
    __m512 c[12][4];
    _Pragma("GCC unroll 12") for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
            c[r][v] = acc ? _mm512_loadu_ps(C + r * ldc + 16 * v) : _mm512_setzero_ps();
        }
    }
    for (int64_t p = 0; p < k2; p++) {
        __m512i b[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
            b[v] = _mm512_loadu_si512((const void *)(B + 2 * (p * ldb + 16 * v)));
        }
        const uint16_t *ap = A + p * aps;
        _Pragma("GCC unroll 12") for (int r = 0; r < R; r++) {
            const __m512i a = bcast_pair(ap + r * ars);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
                c[r][v] = _mm512_dpbf16_ps(c[r][v], (__m512bh)a, (__m512bh)b[v]);
            }
        }
    }
    _Pragma("GCC unroll 12") for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * ldc + 16 * v, c[r][v]);
    }
}

#define DEFINE_PANEL(NV, RM)                                                                                     \
    static void panel##NV(int64_t m, int64_t k2, const uint16_t *A, int64_t ars, int64_t aps, const uint16_t *B, \
                          int64_t ldb, float *C, int64_t ldc, int acc) {                                         \
        int64_t i = 0;                                                                                           \
        for (; i + RM <= m; i += RM) tile_bf16(RM, NV, k2, A + i * ars, ars, aps, B, ldb, C + i * ldc, ldc, acc); \
        const uint16_t *Ai = A + i * ars;                                                                        \
        float *Ci = C + i * ldc;                                                                                 \
        switch (m - i) {                                                                                         \
        case 0: break;                                                                                           \
        case 1: tile_bf16(1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                                \
        case 2: tile_bf16(2, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                                \
        case 3: tile_bf16(3, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                                \
        case 4: tile_bf16(4 < RM ? 4 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                   \
        case 5: tile_bf16(5 < RM ? 5 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                   \
        case 6: tile_bf16(6 < RM ? 6 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                   \
        case 7: tile_bf16(7 < RM ? 7 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                   \
        case 8: tile_bf16(8 < RM ? 8 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                   \
        case 9: tile_bf16(9 < RM ? 9 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                   \
        case 10: tile_bf16(10 < RM ? 10 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                \
        default: tile_bf16(11 < RM ? 11 : 1, NV, k2, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                \
        }                                                                                                        \
    }
DEFINE_PANEL(4, 6)
DEFINE_PANEL(3, 8)
DEFINE_PANEL(2, 12)
DEFINE_PANEL(1, 12)

static void gemm_bf16_avx512(int64_t m, int64_t n, int64_t k2, const uint16_t *A, int64_t ars, int64_t aps,
                             const uint16_t *B, int64_t ldb, float *C, int64_t ldc, int acc) {
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) panel4(m, k2, A, ars, aps, B + 2 * j, ldb, C + j, ldc, acc);
    switch ((n - j) / 16) {
    case 3: panel3(m, k2, A, ars, aps, B + 2 * j, ldb, C + j, ldc, acc); break;
    case 2: panel2(m, k2, A, ars, aps, B + 2 * j, ldb, C + j, ldc, acc); break;
    case 1: panel1(m, k2, A, ars, aps, B + 2 * j, ldb, C + j, ldc, acc); break;
    default: break;
    }
}

/* vpermw index interleaving the low and high halves: out[2i] = in[i], out[2i+1] = in[16+i] */
AI __m512i pair_index(void) {
    return _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
                            4, 19, 3, 18, 2, 17, 1, 16, 0);
}

/* Key pair (a, b) of 16 columns as pack_p_bf16 stores it. */
AI void store_pair(uint16_t *d, __m512 a, __m512 b, __m512i idx) {
    _mm512_storeu_si512((void *)d, _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a)));
}

static void pack_p_bf16_avx512(int64_t nc, int64_t mp, const float *S, uint16_t *P2) {
    const __m512i idx = pair_index();
    for (int64_t c2 = 0; c2 < (nc + 1) / 2; c2++) {
        const float *s0 = S + 2 * c2 * mp, *s1 = s0 + mp;
        const int two = 2 * c2 + 1 < nc;
        uint16_t *d = P2 + 2 * c2 * mp;
        for (int64_t m = 0; m < mp; m += 16) {
            const __m512 a = _mm512_loadu_ps(s0 + m);
            const __m512 b = two ? _mm512_loadu_ps(s1 + m) : _mm512_setzero_ps();
            store_pair(d + 2 * m, a, b, idx);
        }
    }
}

static int pack_v_bf16_avx512(int64_t nr, int64_t n, const uint16_t *src, int64_t lds, uint16_t *V2, int64_t npad,
                              int32_t *bad) {
    int nbad = 0;
    const __m256i expo = _mm256_set1_epi16(0x7f80);
    for (int64_t c = 0; c < nr; c += 2) {
        const uint16_t *s0 = src + c * lds, *s1 = s0 + lds;
        const int two = c + 1 < nr;
        __mmask16 bad0 = 0, bad1 = 0;
        uint16_t *d = V2 + 2 * (c / 2) * npad;
        for (int64_t e = 0; e < npad; e += 16) {
            const int64_t left = n - e;
            const __mmask16 k = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
            const __m256i a = _mm256_maskz_loadu_epi16(k, s0 + e);
            const __m256i b = two ? _mm256_maskz_loadu_epi16(k, s1 + e) : _mm256_setzero_si256();
            bad0 |= _mm256_cmpeq_epi16_mask(_mm256_and_si256(a, expo), expo);
            bad1 |= _mm256_cmpeq_epi16_mask(_mm256_and_si256(b, expo), expo);
            const __m512i p = _mm512_or_si512(_mm512_cvtepu16_epi32(a), _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
            _mm512_storeu_si512((void *)(d + 2 * e), p);
        }
        if (bad0 || bad1) { /* zero the offending row's half of every pair */
            for (int t = 0; t < 2; t++) {
                if (!(t ? bad1 : bad0)) continue;
                for (int64_t e = 0; e < npad; e++) d[2 * e + t] = 0;
                bad[nbad++] = (int32_t)(c + t);
            }
        }
    }
    return nbad;
}

/* 16 floats -> bf16 in the low half of each 32-bit lane, from_f32's rounding
 * (nearest even by integer add; NaN -> quiet NaN, as io/half.h). */
AI __m512i bf16_round16(__m512 x) {
    const __m512i u = _mm512_castps_si512(x), one = _mm512_set1_epi32(1);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    const __m512i up = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                            _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
    /* NaN: (u | quiet bit) >> 16, not rounded */
    return _mm512_srli_epi32(_mm512_mask_or_epi32(up, nan, u, _mm512_set1_epi32(0x00400000)), 16);
}

static void split_ds_bf16_avx512(int64_t nc, int64_t mp, const float *dS, uint16_t *d16, uint16_t *hi2,
                                 uint16_t *lo2) {
    const __m512i idx = pair_index();
    for (int64_t c2 = 0; c2 < (nc + 1) / 2; c2++) {
        const int64_t c = 2 * c2;
        const int two = c + 1 < nc;
        for (int64_t m = 0; m < mp; m += 16) {
            const __m512 a = _mm512_loadu_ps(dS + c * mp + m);
            const __m512 b = two ? _mm512_loadu_ps(dS + (c + 1) * mp + m) : _mm512_setzero_ps();
            const __m512i ha = bf16_round16(a), hb = bf16_round16(b);
            _mm256_storeu_si256((__m256i *)(void *)(d16 + c * mp + m), _mm512_cvtepi32_epi16(ha));
            if (two) _mm256_storeu_si256((__m256i *)(void *)(d16 + (c + 1) * mp + m), _mm512_cvtepi32_epi16(hb));
            const __m512 la = _mm512_sub_ps(a, _mm512_castsi512_ps(_mm512_slli_epi32(ha, 16)));
            const __m512 lb = _mm512_sub_ps(b, _mm512_castsi512_ps(_mm512_slli_epi32(hb, 16)));
            store_pair(hi2 + 2 * (c2 * mp + m), a, b, idx);
            store_pair(lo2 + 2 * (c2 * mp + m), la, lb, idx);
        }
    }
}

void attn__sdpa_kernels_avx512_bf16(attn__sdpa_kernels *t) {
    t->gemm_bf16 = gemm_bf16_avx512;
    t->pack_p_bf16 = pack_p_bf16_avx512;
    t->pack_v_bf16 = pack_v_bf16_avx512;
    t->split_ds_bf16 = split_ds_bf16_avx512;
}
