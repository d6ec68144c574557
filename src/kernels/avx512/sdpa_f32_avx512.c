/* SPDX-License-Identifier: MIT */
/* sdpa_f32_avx512.c — AVX-512 micro-kernels of the sdpa table.
 *
 *   gemm_ab   C (m, n) (+)= A (m, k) . B (k, n)
 *   gemm_atb  C (m, n)  += A^T . B, A stored (k, m)
 *             Register tiles of R rows x 16*NV columns, A broadcast (folded
 *             into the FMA as an embedded broadcast), B rows loaded as NV
 *             zmm: 6x64 while >= 64 columns remain, then 8x48, 12x32, 12x16;
 *             row tails use the same NV with fewer rows. Per column chunk the
 *             B panel (k x 16*NV) stays in L1 while all row blocks stream by.
 *   gemm_abt  C (m, n) = A (m, k) . B^T, B stored (n, k): decode scores as
 *             dot products along k, 16 / NM keys x NM query rows in 16 zmm
 *             accumulators and one transposing reduction (dot_avx512.h).
 *   softmax / bwd_probs / bwd_ds: 16 columns at a time (vertical statistics
 *             of the transposed score tile), vectorised exp; the softmax
 *             also takes mp % 16 == 8 (few-row decode tiles), masked.
 *   rows_exp / rows_ds: the same on row-major tiles (one statistic per row).
 *   pack_rows: scaled copy with an Inf/NaN screen.
 *   pack_t:   transposed scaled copy (K/V tiles of the backward).
 * n is always a multiple of 16 (callers pad), so there is no column tail.
 * Summation orders are fixed (p ascending) and independent of alignment, so
 * results do not depend on the tiling or the thread count. */
#include "kernels/dispatch.h"

#ifdef ATTN_SIMDE_AVX512
/* Test build (tests/test_avx512_emul.c): the same source on SIMDe's portable
 * AVX-512 emulation, so these kernels are checked on machines without
 * AVX-512. Only intrinsics SIMDe implements are used below. */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
typedef simde__mmask16 __mmask16;
#define _MM_FROUND_TO_NEAREST_INT SIMDE_MM_FROUND_TO_NEAREST_INT
#define _MM_FROUND_NO_EXC SIMDE_MM_FROUND_NO_EXC
#define attn__sdpa_kernels_avx512 attn__sdpa_kernels_avx512_emul
#else
#include <immintrin.h>
#endif
#include <math.h>

#define AI static inline __attribute__((always_inline))

/* exp(x) for x <= ~88: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2,
 * exp(r) = 1 + (r + r^2 q(r)), q the degree-6 Taylor polynomial: the final
 * 1 + (...) and r + r^2 q are the sizeable roundings (<= ~1 ulp, as exp_avx2), 2^n
 * applied with vscalefps (rounding once into the subnormals, as expf).
 * x < -104 gives 0, exp(-inf) = 0 and exp(0) = 1 exactly; NaN propagates. */
AI __m512 exp512(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-104.0f);
    const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __m512 xc = _mm512_max_ps(lo, x); /* NaN stays NaN (2nd operand returned) */
    xc = _mm512_min_ps(_mm512_set1_ps(88.3f), xc);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(2.48015873e-5f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.98412698e-4f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.38888889e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.33333333e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.16666667e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66666667e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    const __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_scalef_ps(p, n));
}

/* ─── register tiles ──────────────────────────────────────────────────────── */

/* C (R, 16 NV) (+)= A (R, k) . B (k, 16 NV); A element (r, p) at A[r*ars + p*aps]. */
AI void tile(const int R, const int NV, int64_t k, const float *A, int64_t ars, int64_t aps, const float *B,
             int64_t ldb, float *C, int64_t ldc, int acc) {
    __m512 c[12][4];
    _Pragma("GCC unroll 12") for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
            c[r][v] = acc ? _mm512_loadu_ps(C + r * ldc + 16 * v) : _mm512_setzero_ps();
        }
    }
    for (int64_t p = 0; p < k; p++) {
        __m512 b[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(B + p * ldb + 16 * v);
        const float *ap = A + p * aps;
        _Pragma("GCC unroll 12") for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(ap[r * ars]);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);
        }
    }
    _Pragma("GCC unroll 12") for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * ldc + 16 * v, c[r][v]);
    }
}

/* All row blocks of one column chunk of width 16*NV, full tiles of RM rows. */
#define DEFINE_PANEL(NV, RM)                                                                                     \
    static void panel##NV(int64_t m, int64_t k, const float *A, int64_t ars, int64_t aps, const float *B,        \
                          int64_t ldb, float *C, int64_t ldc, int acc) {                                         \
        int64_t i = 0;                                                                                           \
        for (; i + RM <= m; i += RM) tile(RM, NV, k, A + i * ars, ars, aps, B, ldb, C + i * ldc, ldc, acc);      \
        const float *Ai = A + i * ars;                                                                           \
        float *Ci = C + i * ldc;                                                                                 \
        switch (m - i) {                                                                                         \
        case 0: break;                                                                                           \
        case 1: tile(1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                                      \
        case 2: tile(2, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                                      \
        case 3: tile(3, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                                      \
        case 4: tile(4 < RM ? 4 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                         \
        case 5: tile(5 < RM ? 5 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                         \
        case 6: tile(6 < RM ? 6 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                         \
        case 7: tile(7 < RM ? 7 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                         \
        case 8: tile(8 < RM ? 8 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                         \
        case 9: tile(9 < RM ? 9 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                         \
        case 10: tile(10 < RM ? 10 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                      \
        default: tile(11 < RM ? 11 : 1, NV, k, Ai, ars, aps, B, ldb, Ci, ldc, acc); break;                      \
        }                                                                                                        \
    }
DEFINE_PANEL(4, 6)
DEFINE_PANEL(3, 8)
DEFINE_PANEL(2, 12)
DEFINE_PANEL(1, 12)

/* Column chunks: 64 while possible, then one chunk of 48, 32 or 16. */
AI void gemm(int64_t m, int64_t n, int64_t k, const float *A, int64_t ars, int64_t aps, const float *B, int64_t ldb,
             float *C, int64_t ldc, int acc) {
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) panel4(m, k, A, ars, aps, B + j, ldb, C + j, ldc, acc);
    switch ((n - j) / 16) {
    case 3: panel3(m, k, A, ars, aps, B + j, ldb, C + j, ldc, acc); break;
    case 2: panel2(m, k, A, ars, aps, B + j, ldb, C + j, ldc, acc); break;
    case 1: panel1(m, k, A, ars, aps, B + j, ldb, C + j, ldc, acc); break;
    default: break;
    }
}

static void gemm_ab_avx512(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                           float *C, int64_t ldc, int acc) {
    gemm(m, n, k, A, lda, 1, B, ldb, C, ldc, acc);
}

static void gemm_atb_avx512(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                            int64_t ldb, float *C, int64_t ldc) {
    gemm(m, n, k, A, 1, lda, B, ldb, C, ldc, 1);
}

/* ─── C (m, n) = A (m, k) . B^T: decode scores (dot_avx512.h) ────────────── */
/* Not in the SIMDe test build: its 16-accumulator macro expansion through
 * SIMDe's emulated intrinsics took > 24 GB to compile under ASan (-O0).
 * Checked natively by test_kernels (double reference, every ISA present). */
#ifndef ATTN_SIMDE_AVX512
/* 16 floats at p, those of mask mk (the D tail) loaded and the others 0, not read. */
#define DOT512_LD(t, p, mk) \
    ((mk) == (__mmask16)0xffff ? _mm512_loadu_ps((const float *)(p)) : _mm512_maskz_loadu_ps(mk, (const float *)(p)))
#include "kernels/avx512/dot_avx512.h"

/* C rows of keys [0, m) for M <= NM query rows (B's first M rows), in the
 * key order KM (dot_avx512.h). */
AI void abt_keys(int NM, int KM, int64_t m, int64_t M, int64_t k, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc) {
    const int64_t R = 16 / NM;
    for (int64_t j = 0; j < m; j += R) {
        const __m512 s = dot512_sums(ATTN_DTYPE_F32, NM, KM, j, m, M, k, (const unsigned char *)A, lda, B, ldb);
        dot512_store(NM, s, j, m - j < R ? m - j : R, M, C, ldc);
    }
}
/* Contiguous rows (a head-major cache): key-major, a stream; strided rows
 * (BSHD): chunk-major, R misses in flight. */
AI void abt_rows(int NM, int64_t m, int64_t M, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float *C, int64_t ldc) {
    if (lda == k) abt_keys(NM, 1, m, M, k, A, lda, B, ldb, C, ldc);
    else abt_keys(NM, 0, m, M, k, A, lda, B, ldb, C, ldc);
}

/* A = K rows (m keys, stride lda), B = query rows (n, ldb): query columns in
 * chunks of 8, each chunk 16 / NM keys at a time (NM the chunk's rows rounded
 * up to 1, 2, 4 or 8), so every key row is read once per chunk with 16
 * accumulators in flight (the AVX2 3x4 dot kernel, borrowed until now, kept
 * too few misses in flight from DRAM and did 1-row blocks 3 keys at a time). */
static void gemm_abt_avx512(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                            int64_t ldb, float *C, int64_t ldc) {
    for (int64_t c0 = 0; c0 < n; c0 += 8) {
        const int64_t M = n - c0 < 8 ? n - c0 : 8;
        const float *Bc = B + c0 * ldb;
        float *Cc = C + c0;
        if (M <= 1) abt_rows(1, m, M, k, A, lda, Bc, ldb, Cc, ldc);
        else if (M <= 2) abt_rows(2, m, M, k, A, lda, Bc, ldb, Cc, ldc);
        else if (M <= 4) abt_rows(4, m, M, k, A, lda, Bc, ldb, Cc, ldc);
        else abt_rows(8, m, M, k, A, lda, Bc, ldb, Cc, ldc);
    }
}

#endif

/* ─── softmax statistics on the transposed tile ───────────────────────────── */
/* 16 floats, or (half != 0) 8 floats zero-extended, and the matching store:
 * the last 8 columns of a tile with mp % 16 == 8 (256-bit accesses; SIMDe has
 * no masked 512-bit loads / stores). */
AI __m512 ld16(const float *p, int half) {
    return half ? _mm512_maskz_mov_ps((__mmask16)0x00FF, _mm512_castps256_ps512(_mm256_loadu_ps(p))) : _mm512_loadu_ps(p);
}
AI void st16(float *p, __m512 v, int half) {
    if (half) _mm256_storeu_ps(p, _mm512_castps512_ps256(v));
    else _mm512_storeu_ps(p, v);
}

/* mp == 8 (decode blocks): rows c and c + 1 of S are one zmm, so exp runs
 * on two keys at a time instead of one key in half a register. Lanes 0-7 sum
 * the even keys (and an odd tail), 8-15 the odd ones, added at the end: the
 * general path's two chains, so the results are the same bits. */
/* 256-bit halves: (hi, hi) and (lo, lo) (the integer shuffle: SIMDe has no _mm512_shuffle_f32x4) */
AI __m512 hi_to_both(__m512 x) {
    return _mm512_castsi512_ps(_mm512_shuffle_i32x4(_mm512_castps_si512(x), _mm512_castps_si512(x), 0xEE));
}
AI __m512 lo_to_both(__m512 x) {
    return _mm512_castsi512_ps(_mm512_shuffle_i32x4(_mm512_castps_si512(x), _mm512_castps_si512(x), 0x44));
}
static int softmax_tile8(int64_t nc, float *S, float scale, float *mrow, float *lrow, float *alpha) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY), one = _mm512_set1_ps(1.0f), sc = _mm512_set1_ps(scale);
    const int64_t ne = nc & ~(int64_t)1; /* keys in pairs */
    __m512 mx = ninf;
    for (int64_t c = 0; c < ne; c += 2) {
        __m512 x = _mm512_loadu_ps(S + c * 8);
        if (scale != 1.0f) {
            x = _mm512_mul_ps(sc, x);
            _mm512_storeu_ps(S + c * 8, x);
        }
        mx = _mm512_max_ps(x, mx);
    }
    if (ne < nc) { /* the odd key: lanes 0-7 only */
        __m512 x = ld16(S + ne * 8, 1);
        if (scale != 1.0f) {
            x = _mm512_mul_ps(sc, x);
            st16(S + ne * 8, x, 1);
        }
        mx = _mm512_mask_max_ps(mx, (__mmask16)0x00FF, x, mx);
    }
    mx = _mm512_max_ps(mx, hi_to_both(mx)); /* lanes 0-7: both halves' max */
    const __m512 mo = ld16(mrow, 1);
    const __m512 mn = _mm512_max_ps(mo, mx);
    const __mmask16 dead = _mm512_cmp_ps_mask(mn, ninf, _CMP_EQ_OQ);
    const __m512 mns = _mm512_mask_mov_ps(mn, dead, _mm512_setzero_ps());
    const __m512 a = _mm512_mask_mov_ps(exp512(_mm512_sub_ps(mo, mns)), dead, one);
    const __m512 mn2 = lo_to_both(mns); /* lanes 0-7 in both halves */
    __m512 sum = _mm512_setzero_ps();
    for (int64_t c = 0; c < ne; c += 2) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(S + c * 8), mn2));
        _mm512_storeu_ps(S + c * 8, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (ne < nc) {
        const __m512 e = exp512(_mm512_sub_ps(ld16(S + ne * 8, 1), mn2));
        st16(S + ne * 8, e, 1);
        sum = _mm512_mask_add_ps(sum, (__mmask16)0x00FF, sum, e);
    }
    sum = _mm512_add_ps(sum, hi_to_both(sum));
    st16(alpha, a, 1);
    st16(lrow, _mm512_fmadd_ps(a, ld16(lrow, 1), sum), 1);
    st16(mrow, _mm512_mask_mov_ps(mn, dead, mo), 1);
    return (_mm512_cmp_ps_mask(a, one, _CMP_NEQ_UQ) & 0x00FF) != 0;
}

static int softmax_tile_avx512(int64_t nc, int64_t mp, float *S, float scale, float *mrow, float *lrow,
                               float *alpha) {
    if (mp == 8) return softmax_tile8(nc, S, scale, mrow, lrow, alpha);
    const __m512 ninf = _mm512_set1_ps(-INFINITY), one = _mm512_set1_ps(1.0f), sc = _mm512_set1_ps(scale);
    int changed = 0;
    for (int64_t m = 0; m < mp; m += 16) {
        const int h = mp - m < 16; /* mp % 16 == 8: the last 8 columns */
        __m512 mx = ninf;
        /* NaN scores are ignored by the max (operand order) and surface through exp */
        if (scale != 1.0f)
            for (int64_t c = 0; c < nc; c++) {
                const __m512 x = _mm512_mul_ps(sc, ld16(S + c * mp + m, h));
                st16(S + c * mp + m, x, h);
                mx = _mm512_max_ps(x, mx);
            }
        else
            for (int64_t c = 0; c < nc; c++) mx = _mm512_max_ps(ld16(S + c * mp + m, h), mx);
        const __m512 mo = ld16(mrow + m, h);
        const __m512 mn = _mm512_max_ps(mo, mx);
        const __mmask16 dead = _mm512_cmp_ps_mask(mn, ninf, _CMP_EQ_OQ); /* row still fully masked */
        const __m512 mns = _mm512_mask_mov_ps(mn, dead, _mm512_setzero_ps());
        const __m512 a = _mm512_mask_mov_ps(exp512(_mm512_sub_ps(mo, mns)), dead, one);
        __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
        int64_t c = 0;
        for (; c + 2 <= nc; c += 2) { /* two chains; combined below in a fixed order */
            const __m512 e0 = exp512(_mm512_sub_ps(ld16(S + c * mp + m, h), mns));
            const __m512 e1 = exp512(_mm512_sub_ps(ld16(S + (c + 1) * mp + m, h), mns));
            st16(S + c * mp + m, e0, h);
            st16(S + (c + 1) * mp + m, e1, h);
            sum0 = _mm512_add_ps(sum0, e0);
            sum1 = _mm512_add_ps(sum1, e1);
        }
        if (c < nc) {
            const __m512 e0 = exp512(_mm512_sub_ps(ld16(S + c * mp + m, h), mns));
            st16(S + c * mp + m, e0, h);
            sum0 = _mm512_add_ps(sum0, e0);
        }
        const __m512 sum = _mm512_add_ps(sum0, sum1);
        st16(alpha + m, a, h);
        st16(lrow + m, _mm512_fmadd_ps(a, ld16(lrow + m, h), sum), h);
        st16(mrow + m, _mm512_mask_mov_ps(mn, dead, mo), h);
        if (_mm512_cmp_ps_mask(a, one, _CMP_NEQ_UQ) & (h ? 0x00FF : 0xFFFF)) changed = 1;
    }
    return changed;
}

static void bwd_probs_avx512(int64_t nc, int64_t mp, float *S, float scale, const float *lse, const float *lo) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY), sc = _mm512_set1_ps(scale);
    for (int64_t m = 0; m < mp; m += 16) {
        const __m512 l = _mm512_loadu_ps(lse + m);
        const __mmask16 live = _mm512_cmp_ps_mask(l, ninf, _CMP_NEQ_UQ);
        const __m512 ls = _mm512_maskz_mov_ps(live, l);
        const __m512 lw = _mm512_maskz_mov_ps(live, _mm512_loadu_ps(lo + m));
        for (int64_t c = 0; c < nc; c++) {
            const __m512 xs = _mm512_mul_ps(sc, _mm512_loadu_ps(S + c * mp + m)); /* exact when scale == 1 */
            const __m512 e = exp512(_mm512_sub_ps(_mm512_sub_ps(xs, ls), lw));
            _mm512_storeu_ps(S + c * mp + m, _mm512_maskz_mov_ps(live, e));
        }
    }
}

static void bwd_ds_avx512(int64_t nc, int64_t mp, const float *P, float *dP, const float *Di, const float *Dl,
                          float scale) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t m = 0; m < mp; m += 16) {
        const __m512 di = _mm512_loadu_ps(Di + m), dl = _mm512_loadu_ps(Dl + m);
        for (int64_t c = 0; c < nc; c++) {
            const __m512 p = _mm512_loadu_ps(P + c * mp + m);
            const __mmask16 nz = _mm512_cmp_ps_mask(p, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            const __m512 x = _mm512_mul_ps(sc, _mm512_mul_ps(p, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(dP + c * mp + m), di), dl)));
            _mm512_storeu_ps(dP + c * mp + m, _mm512_maskz_mov_ps(nz, x));
        }
    }
}

static int pack_rows_avx512(int64_t nr, int64_t n, const float *src, int64_t lds, float scale, float *dst,
                            int64_t ldd, int64_t npad, int32_t *bad) {
    const __m512i expo = _mm512_set1_epi32(0x7f800000);
    const __m512 sc = _mm512_set1_ps(scale);
    const int64_t n16 = n & ~(int64_t)15;
    int nbad = 0;
    for (int64_t r = 0; r < nr; r++) {
        const float *s = src + r * lds;
        float *d = dst + r * ldd;
        __mmask16 nonfinite = 0;
        int64_t e = 0;
        for (; e < n16; e += 16) {
            const __m512 x = _mm512_loadu_ps(s + e);
            nonfinite |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(x), expo), expo);
            _mm512_storeu_ps(d + e, _mm512_mul_ps(sc, x));
        }
        attn__pack_row_finish(s, d, e, n, npad, scale, nonfinite != 0, bad, &nbad, r);
    }
    return nbad;
}

static void scale_rows_avx512(int64_t m, int64_t n, float *C, int64_t ldc, const float *alpha) {
    for (int64_t r = 0; r < m; r++) {
        if (alpha[r] == 1.0f) continue;
        const __m512 a = _mm512_set1_ps(alpha[r]);
        float *c = C + r * ldc;
        for (int64_t e = 0; e < n; e += 16) _mm512_storeu_ps(c + e, _mm512_mul_ps(a, _mm512_loadu_ps(c + e)));
    }
}

void attn__sdpa_kernels_avx512(attn__sdpa_kernels *t) {
    t->name = "avx512";
    t->gemm_ab = gemm_ab_avx512;
    t->gemm_atb = gemm_atb_avx512;
#ifndef ATTN_SIMDE_AVX512
    t->gemm_abt = gemm_abt_avx512;
#endif
    t->softmax_tile = softmax_tile_avx512;
    t->bwd_probs = bwd_probs_avx512;
    t->bwd_ds = bwd_ds_avx512;
    t->pack_rows = pack_rows_avx512;
    t->scale_rows = scale_rows_avx512;
}
