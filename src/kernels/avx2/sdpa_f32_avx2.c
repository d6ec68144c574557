/* SPDX-License-Identifier: MIT */
/* sdpa_f32_avx2.c — AVX2 + FMA micro-kernels of the sdpa table.
 *
 *   gemm_ab_avx2_6x16   C (m, n) (+)= A (m, k) . B (k, n): register tile of
 *                       6 rows x 16 columns (12 ymm accumulators), A broadcast,
 *                       B rows loaded as 2 ymm; rows 1..5 for the m tail.
 *   gemm_atb_avx2_6x16  C (m, n) += A^T . B, A (k, m): the same tile with the
 *                       6 broadcasts taken from one row of A (contiguous).
 *   gemm_abt_avx2_3x4   C (m, n) = A (m, k) . B (n, k)^T as dot products along k
 *                       (score tiles with few query rows): 3 rows of A against
 *                       4 rows of B (12 ymm accumulators), masked loads for
 *                       the k tail of A.
 *   rows_finite         Inf/NaN screen of a tile without copying it.
 *   softmax / bwd_probs / bwd_ds: 8 columns at a time (vertical statistics of
 *                       the transposed score tile), vectorised exp.
 * n is always a multiple of 16 (callers pad), so there is no column tail.
 * Summation orders are fixed (p ascending) and independent of alignment. */
#include "kernels/dispatch.h"

#include <immintrin.h>
#include <math.h>

#define AI static inline __attribute__((always_inline))

/* exp(x) for x <= ~88: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2 (r
 * exact to ~1e-10), exp(r) = 1 + (r + r^2 q(r)) with q the degree-6 Taylor
 * polynomial (truncation < 2e-10 relative), so the sizeable roundings are
 * the final 1 + (...) and r + r^2 q: <= ~1 ulp (0.98 ulp the most over every
 * float in [-104, 88.3], against exp in double); 2^n as 2^(n/2) 2^(n - n/2), two
 * normal factors, so results down to the subnormals round once (as expf);
 * x < -104 gives 0, exp(-inf) = 0 and exp(0) = 1 exactly. */
AI __m256 exp_avx2(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-104.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 xc = _mm256_max_ps(lo, x);                 /* NaN stays NaN (max/min return the 2nd operand) */
    xc = _mm256_min_ps(_mm256_set1_ps(88.3f), xc);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(2.48015873e-5f);                  /* 1/8! */
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.98412698e-4f));  /* 1/7! */
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.38888889e-3f));  /* 1/6! */
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.33333333e-3f));  /* 1/5! */
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.16666667e-2f));  /* 1/4! */
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.66666667e-1f));  /* 1/3! */
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, r);                    /* expm1(r) */
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));       /* the one rounding that matters */
    const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 res = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_andnot_ps(under, res);
}

/* ─── C (R, 16) (+)= A (R, k) . B (k, 16) ─────────────────────────────────── */
AI void ab_tile(const int R, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                int64_t ldc, int acc) {
    __m256 c0[6], c1[6];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        if (acc) {
            c0[r] = _mm256_loadu_ps(C + r * ldc);
            c1[r] = _mm256_loadu_ps(C + r * ldc + 8);
        } else {
            c0[r] = _mm256_setzero_ps();
            c1[r] = _mm256_setzero_ps();
        }
    }
    for (int64_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(B + p * ldb), b1 = _mm256_loadu_ps(B + p * ldb + 8);
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
            const __m256 a = _mm256_broadcast_ss(A + r * lda + p);
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(C + r * ldc, c0[r]);
        _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
    }
}

static void gemm_ab_avx2_6x16(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                              int64_t ldb, float *C, int64_t ldc, int acc) {
    for (int64_t i = 0; i < m; i += 6) {
        const int64_t R = m - i < 6 ? m - i : 6;
        const float *Ai = A + i * lda;
        float *Ci = C + i * ldc;
        for (int64_t j = 0; j < n; j += 16) {
            switch (R) {
            case 6: ab_tile(6, k, Ai, lda, B + j, ldb, Ci + j, ldc, acc); break;
            case 5: ab_tile(5, k, Ai, lda, B + j, ldb, Ci + j, ldc, acc); break;
            case 4: ab_tile(4, k, Ai, lda, B + j, ldb, Ci + j, ldc, acc); break;
            case 3: ab_tile(3, k, Ai, lda, B + j, ldb, Ci + j, ldc, acc); break;
            case 2: ab_tile(2, k, Ai, lda, B + j, ldb, Ci + j, ldc, acc); break;
            default: ab_tile(1, k, Ai, lda, B + j, ldb, Ci + j, ldc, acc); break;
            }
        }
    }
}

/* ─── C (R, 16) += A^T (R, k) . B (k, 16), A stored (k, lda) ─────────────── */
AI void atb_tile(const int R, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                 int64_t ldc) {
    __m256 c0[6], c1[6];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        c0[r] = _mm256_loadu_ps(C + r * ldc);
        c1[r] = _mm256_loadu_ps(C + r * ldc + 8);
    }
    for (int64_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(B + p * ldb), b1 = _mm256_loadu_ps(B + p * ldb + 8);
        const float *a = A + p * lda;
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
            const __m256 av = _mm256_broadcast_ss(a + r);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(C + r * ldc, c0[r]);
        _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
    }
}

static void gemm_atb_avx2_6x16(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                               int64_t ldb, float *C, int64_t ldc) {
    for (int64_t i = 0; i < m; i += 6) {
        const int64_t R = m - i < 6 ? m - i : 6;
        for (int64_t j = 0; j < n; j += 16) {
            switch (R) {
            case 6: atb_tile(6, k, A + i, lda, B + j, ldb, C + i * ldc + j, ldc); break;
            case 5: atb_tile(5, k, A + i, lda, B + j, ldb, C + i * ldc + j, ldc); break;
            case 4: atb_tile(4, k, A + i, lda, B + j, ldb, C + i * ldc + j, ldc); break;
            case 3: atb_tile(3, k, A + i, lda, B + j, ldb, C + i * ldc + j, ldc); break;
            case 2: atb_tile(2, k, A + i, lda, B + j, ldb, C + i * ldc + j, ldc); break;
            default: atb_tile(1, k, A + i, lda, B + j, ldb, C + i * ldc + j, ldc); break;
            }
        }
    }
}

/* ─── C[i][j : j + 4) = A[i][:] . B[j + t][:], t < J <= 4 ─────────────────── */
/* Sum of the 8 lanes of each of a0..a3, as the 4 lanes of one __m128. */
AI __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

/* R <= 3 rows of A (keys, often a page apart: several in flight) against
 * J <= 4 rows of B (packed query rows, L1-resident): 12 accumulators, one
 * row of B loaded per 8 elements and used by the R FMAs. Lanes t >= J of
 * each stored __m128 are 0 (their accumulators stay 0): C has round8(n)
 * writable columns. */
AI void abt_tile(const int R, const int J, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float *C, int64_t ldc) {
    __m256 acc[3][4];
    _Pragma("GCC unroll 3") for (int r = 0; r < 3; r++)
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_ps();
    const int64_t k8 = k & ~(int64_t)7;
    int64_t p = 0;
    for (; p < k8; p += 8) {
        __m256 a[3];
        _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) a[r] = _mm256_loadu_ps(A + r * lda + p);
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) {
            const __m256 b = _mm256_loadu_ps(B + j * ldb + p);
            _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) acc[r][j] = _mm256_fmadd_ps(a[r], b, acc[r][j]);
        }
    }
    if (p < k) { /* A is read only within its k elements; B rows are zero-padded */
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k - p)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 a[3];
        _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) a[r] = _mm256_maskload_ps(A + r * lda + p, mask);
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) {
            const __m256 b = _mm256_loadu_ps(B + j * ldb + p);
            _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) acc[r][j] = _mm256_fmadd_ps(a[r], b, acc[r][j]);
        }
    }
    _Pragma("GCC unroll 3") for (int r = 0; r < R; r++)
        _mm_storeu_ps(C + r * ldc, hsum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
}

#define ABT_J(R, J) abt_tile(R, J, k, Ai, lda, B + j * ldb, ldb, Ci + j, ldc)
#define ABT_R(R)                                                                                                  \
    switch (n - j < 4 ? n - j : 4) {                                                                                  \
    case 4: ABT_J(R, 4); break;                                                                                       \
    case 3: ABT_J(R, 3); break;                                                                                       \
    case 2: ABT_J(R, 2); break;                                                                                       \
    default: ABT_J(R, 1); break;                                                                                      \
    }

static void gemm_abt_avx2_3x4(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                              int64_t ldb, float *C, int64_t ldc) {
    const int64_t np = (n + 7) & ~(int64_t)7, n4 = (n + 3) & ~(int64_t)3;
    for (int64_t i = 0; i < m; i += 3) {
        const int64_t R = m - i < 3 ? m - i : 3;
        const float *Ai = A + i * lda;
        float *Ci = C + i * ldc;
        for (int64_t j = 0; j < n; j += 4) {
            if (R == 3) { ABT_R(3) }
            else if (R == 2) { ABT_R(2) }
            else { ABT_R(1) }
        }
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = n4; j < np; j += 4) _mm_storeu_ps(Ci + r * ldc + j, _mm_setzero_ps());
    }
}
#undef ABT_R
#undef ABT_J

/* ─── softmax statistics on the transposed tile ───────────────────────────── */
static int softmax_tile_avx2(int64_t nc, int64_t mp, float *S, float scale, float *mrow, float *lrow, float *alpha) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY), one = _mm256_set1_ps(1.0f), sc = _mm256_set1_ps(scale);
    int changed = 0;
    for (int64_t m = 0; m < mp; m += 8) {
        __m256 mx = ninf;
        /* NaN scores are ignored by the max (operand order) and surface through exp */
        if (scale != 1.0f)
            for (int64_t c = 0; c < nc; c++) {
                const __m256 x = _mm256_mul_ps(sc, _mm256_loadu_ps(S + c * mp + m));
                _mm256_storeu_ps(S + c * mp + m, x);
                mx = _mm256_max_ps(x, mx);
            }
        else
            for (int64_t c = 0; c < nc; c++) mx = _mm256_max_ps(_mm256_loadu_ps(S + c * mp + m), mx);
        const __m256 mo = _mm256_loadu_ps(mrow + m);
        const __m256 mn = _mm256_max_ps(mo, mx);
        const __m256 dead = _mm256_cmp_ps(mn, ninf, _CMP_EQ_OQ); /* row still fully masked */
        const __m256 mns = _mm256_andnot_ps(dead, mn);            /* 0 where dead */
        __m256 a = exp_avx2(_mm256_sub_ps(mo, mns));
        a = _mm256_blendv_ps(a, one, dead);
        __m256 sum = _mm256_setzero_ps();
        for (int64_t c = 0; c < nc; c++) {
            __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(S + c * mp + m), mns));
            _mm256_storeu_ps(S + c * mp + m, e);
            sum = _mm256_add_ps(sum, e);
        }
        _mm256_storeu_ps(alpha + m, a);
        _mm256_storeu_ps(lrow + m, _mm256_fmadd_ps(a, _mm256_loadu_ps(lrow + m), sum));
        _mm256_storeu_ps(mrow + m, _mm256_blendv_ps(mn, mo, dead));
        if (_mm256_movemask_ps(_mm256_cmp_ps(a, one, _CMP_NEQ_UQ))) changed = 1;
    }
    return changed;
}

static void bwd_probs_avx2(int64_t nc, int64_t mp, float *S, float scale, const float *lse, const float *lo) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(scale);
    for (int64_t m = 0; m < mp; m += 8) {
        const __m256 l = _mm256_loadu_ps(lse + m);
        const __m256 dead = _mm256_cmp_ps(l, ninf, _CMP_EQ_OQ);
        const __m256 ls = _mm256_andnot_ps(dead, l);
        const __m256 lw = _mm256_andnot_ps(dead, _mm256_loadu_ps(lo + m));
        for (int64_t c = 0; c < nc; c++) {
            const __m256 x = _mm256_mul_ps(sc, _mm256_loadu_ps(S + c * mp + m)); /* exact when scale == 1 */
            __m256 e = exp_avx2(_mm256_sub_ps(_mm256_sub_ps(x, ls), lw));
            _mm256_storeu_ps(S + c * mp + m, _mm256_andnot_ps(dead, e));
        }
    }
}

static void bwd_ds_avx2(int64_t nc, int64_t mp, const float *P, float *dP, const float *Di, const float *Dl,
                        float scale) {
    const __m256 sc = _mm256_set1_ps(scale);
    for (int64_t m = 0; m < mp; m += 8) {
        const __m256 di = _mm256_loadu_ps(Di + m), dl = _mm256_loadu_ps(Dl + m);
        for (int64_t c = 0; c < nc; c++) {
            const __m256 p = _mm256_loadu_ps(P + c * mp + m);
            const __m256 zero = _mm256_cmp_ps(p, _mm256_setzero_ps(), _CMP_EQ_OQ);
            __m256 x = _mm256_mul_ps(sc, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(dP + c * mp + m), di), dl)));
            _mm256_storeu_ps(dP + c * mp + m, _mm256_andnot_ps(zero, x));
        }
    }
}

/* The fused multiply-add chain of the 6x16 tiles' accumulation (see dispatch.h). */
static float dot_avx2(int64_t n, const float *a, const float *b) {
    float s = 0.0f;
    for (int64_t e = 0; e < n; e++) s = fmaf(a[e], b[e], s);
    return s;
}

/* Row statistics in double, 4 columns per register, c ascending. */
static void row_sums_avx2(int64_t nc, int64_t mp, const float *E, const float *dP, double *cs, double *ds,
                          float *em) {
    if (!dP) { /* cs and the column maxima */
        for (int64_t m = 0; m < mp; m += 4) {
            __m256d c4 = _mm256_loadu_pd(cs + m);
            __m128 mx = _mm_loadu_ps(em + m);
            for (int64_t c = 0; c < nc; c++) {
                const __m128 e = _mm_loadu_ps(E + c * mp + m);
                c4 = _mm256_add_pd(c4, _mm256_cvtps_pd(e));
                mx = _mm_max_ps(e, mx); /* a NaN e is ignored by the max; it reaches cs */
            }
            _mm256_storeu_pd(cs + m, c4);
            _mm_storeu_ps(em + m, mx);
        }
        return;
    }
    for (int64_t m = 0; m < mp; m += 4) {
        __m256d c4 = _mm256_loadu_pd(cs + m), d4 = _mm256_loadu_pd(ds + m);
        for (int64_t c = 0; c < nc; c++) {
            const __m128 e = _mm_loadu_ps(E + c * mp + m);
            const __m128 p = _mm_loadu_ps(dP + c * mp + m);
            const __m128 live = _mm_cmpneq_ps(e, _mm_setzero_ps());
            const __m256d ed = _mm256_cvtps_pd(e);
            const __m256d pd = _mm256_cvtps_pd(_mm_and_ps(live, p)); /* 0 where E == 0: no 0 * NaN */
            c4 = _mm256_add_pd(c4, ed);
            d4 = _mm256_fmadd_pd(ed, pd, d4); /* = the double product-sum: e * dP is exact in double */
        }
        _mm256_storeu_pd(cs + m, c4);
        _mm256_storeu_pd(ds + m, d4);
    }
}

/* x * 0 + acc: +-0 for finite x, NaN for Inf / NaN (and NaN sticks); the loads
 * fold into the FMAs, so a row of n floats costs ~n / 8 instructions. */
static int rows_finite_avx2(int64_t nr, int64_t n, const float *src, int64_t lds) {
    const __m256 z = _mm256_setzero_ps();
    __m256 a0 = z, a1 = z, a2 = z, a3 = z;
    const int64_t n32 = n & ~(int64_t)31, n8 = n & ~(int64_t)7;
    float t = 0.0f;
    for (int64_t r = 0; r < nr; r++) {
        const float *s = src + r * lds;
        int64_t e = 0;
        for (; e < n32; e += 32) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s + e), z, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(s + e + 8), z, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(s + e + 16), z, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(s + e + 24), z, a3);
        }
        for (; e < n8; e += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s + e), z, a0);
        for (; e < n; e++) t += s[e] * 0.0f;
    }
    a0 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    return !_mm256_movemask_ps(_mm256_cmp_ps(a0, a0, _CMP_UNORD_Q)) && t == t;
}

static int pack_rows_avx2(int64_t nr, int64_t n, const float *src, int64_t lds, float scale, float *dst,
                          int64_t ldd, int64_t npad, int32_t *bad) {
    const __m256i expo = _mm256_set1_epi32(0x7f800000);
    const __m256 sc = _mm256_set1_ps(scale);
    const int64_t n8 = n & ~(int64_t)7;
    int nbad = 0;
    for (int64_t r = 0; r < nr; r++) {
        const float *s = src + r * lds;
        float *d = dst + r * ldd;
        __m256i acc = _mm256_setzero_si256();
        int64_t e = 0;
        for (; e < n8; e += 8) {
            const __m256 x = _mm256_loadu_ps(s + e);
            acc = _mm256_or_si256(acc, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(x), expo), expo));
            _mm256_storeu_ps(d + e, _mm256_mul_ps(sc, x));
        }
        attn__pack_row_finish(s, d, e, n, npad, scale, !_mm256_testz_si256(acc, acc), bad, &nbad, r);
    }
    return nbad;
}

static void scale_rows_avx2(int64_t m, int64_t n, float *C, int64_t ldc, const float *alpha) {
    for (int64_t r = 0; r < m; r++) {
        if (alpha[r] == 1.0f) continue;
        const __m256 a = _mm256_set1_ps(alpha[r]);
        float *c = C + r * ldc;
        for (int64_t e = 0; e < n; e += 8) _mm256_storeu_ps(c + e, _mm256_mul_ps(a, _mm256_loadu_ps(c + e)));
    }
}

void attn__sdpa_kernels_avx2(attn__sdpa_kernels *t) {
    t->name = "avx2";
    t->gemm_ab = gemm_ab_avx2_6x16;
    t->gemm_atb = gemm_atb_avx2_6x16;
    t->gemm_abt = gemm_abt_avx2_3x4;
    t->softmax_tile = softmax_tile_avx2;
    t->bwd_probs = bwd_probs_avx2;
    t->bwd_ds = bwd_ds_avx2;
    t->rows_finite = rows_finite_avx2;
    t->pack_rows = pack_rows_avx2;
    t->row_sums = row_sums_avx2;
    t->dot = dot_avx2;
    t->scale_rows = scale_rows_avx2;
    attn__sdpa_cvt_avx2(t);
    attn__sdpa_pack_avx2(t);
}
