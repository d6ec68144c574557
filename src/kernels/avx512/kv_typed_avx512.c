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

AI size_t esz(attn_dtype t) { return t == ATTN_DTYPE_I8 ? 1 : 2; }

AI __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u); }

/* Named-register helpers: X(i) for i < 8 (NM and M are constants or runtime
 * guards; arrays of vectors would be kept on the stack by the compiler). */
#define EACH8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* [sum v0, ..., sum v15] as one zmm: a transposing tree (30 shuffles, 15
 * adds; the summation order is fixed). Level 3 works inside 128-bit lanes
 * and leaves lane L holding the sums of its inputs L, 4 + L, 8 + L, 12 + L,
 * so the inputs go in as the 4 x 4 transpose of their natural order. */
AI __m512 pair_lanes(__m512 x, __m512 y) { /* [x's 8 partials | y's 8 partials] */
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xEE));
}
AI __m512 pair_quads(__m512 x, __m512 y) { /* lane L: the 4 partials of input L of (x's 2, y's 2) */
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
}
AI __m512 pair_halves(__m512 x, __m512 y) { /* in each lane: x's 2 pair sums, y's 2 */
    return _mm512_add_ps(_mm512_shuffle_ps(x, y, 0x44), _mm512_shuffle_ps(x, y, 0xEE));
}
AI __m512 pair_evens(__m512 x, __m512 y) { /* in each lane: x's 2 sums, y's 2 */
    return _mm512_add_ps(_mm512_shuffle_ps(x, y, 0x88), _mm512_shuffle_ps(x, y, 0xDD));
}
AI __m512 reduce16(__m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512 v4, __m512 v5, __m512 v6, __m512 v7, __m512 v8,
                   __m512 v9, __m512 v10, __m512 v11, __m512 v12, __m512 v13, __m512 v14, __m512 v15) {
    /* tree position 4e + L takes input 4L + e */
    const __m512 u0 = pair_quads(pair_lanes(v0, v4), pair_lanes(v8, v12));
    const __m512 u1 = pair_quads(pair_lanes(v1, v5), pair_lanes(v9, v13));
    const __m512 u2 = pair_quads(pair_lanes(v2, v6), pair_lanes(v10, v14));
    const __m512 u3 = pair_quads(pair_lanes(v3, v7), pair_lanes(v11, v15));
    return pair_evens(pair_halves(u0, u1), pair_halves(u2, u3));
}

/* Accumulators a<r>_<m>: key r < R of the group, query row m < NM (R NM = 16).
 * Macros over both indices: named variables stay in registers. */
#define EACH16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define ROWS8(Y, r) Y(r, 0) Y(r, 1) Y(r, 2) Y(r, 3) Y(r, 4) Y(r, 5) Y(r, 6) Y(r, 7)

/* Scores of the R = 16 / NM keys j .. j + R - 1 (those < n stored) against NM
 * query rows: D-chunk by D-chunk, each query chunk loaded once for the R keys
 * and each key chunk widened once for the NM rows; then one reduce16 of the
 * 16 accumulators (lane r NM + m: key r, row m) and, for I8, one multiply by
 * the keys' scales. Keys past n re-read key n - 1 (valid memory), unstored. */
AI void kdot_group(attn_dtype t, int NM, int64_t j, int64_t n, int64_t M, int64_t D, const unsigned char *K,
                   const float *ks, const float *Q, int64_t ldq, float *S, int64_t lds) {
    const int R = 16 / NM;
    const size_t es = esz(t);
    const int64_t nk = n - j < R ? n - j : R; /* keys of the group to store */
#define ZERO(r, m) __m512 a##r##_##m = _mm512_setzero_ps();
#define ZERO_KEY(r) ROWS8(ZERO, r)
    EACH16(ZERO_KEY)
#undef ZERO_KEY
#undef ZERO
#define KPTR(r) const unsigned char *k##r = K + (size_t)((r < nk ? j + r : n - 1) * D) * es;
    EACH16(KPTR)
#undef KPTR
#define QLOAD(m) const __m512 q##m = NM > m ? _mm512_loadu_ps(Q + m * ldq + d) : _mm512_setzero_ps();
#define FMA1(r, m) if (NM > m) a##r##_##m = _mm512_fmadd_ps(x, q##m, a##r##_##m);
#define KEY(r)                                                      \
        if (R > r) {                                                \
            const __m512 x = ld16(t, k##r + (size_t)d * es, mk);    \
            ROWS8(FMA1, r)                                          \
        }
#define CHUNK { EACH8(QLOAD) EACH16(KEY) }
    int64_t d = 0;
    for (; d + 16 <= D; d += 16) { /* full chunks: plain loads */
        const __mmask16 mk = 0xffff;
        CHUNK
    }
    if (d < D) { /* the D tail: masked loads (Q is zero-padded) */
        const __mmask16 mk = tail_mask(D - d);
        CHUNK
    }
#undef CHUNK
#undef KEY
#undef FMA1
#undef QLOAD
    __m512 s;
    if (NM == 1)
        s = reduce16(a0_0, a1_0, a2_0, a3_0, a4_0, a5_0, a6_0, a7_0, a8_0, a9_0, a10_0, a11_0, a12_0, a13_0, a14_0, a15_0);
    else if (NM == 2)
        s = reduce16(a0_0, a0_1, a1_0, a1_1, a2_0, a2_1, a3_0, a3_1, a4_0, a4_1, a5_0, a5_1, a6_0, a6_1, a7_0, a7_1);
    else if (NM == 4)
        s = reduce16(a0_0, a0_1, a0_2, a0_3, a1_0, a1_1, a1_2, a1_3, a2_0, a2_1, a2_2, a2_3, a3_0, a3_1, a3_2, a3_3);
    else
        s = reduce16(a0_0, a0_1, a0_2, a0_3, a0_4, a0_5, a0_6, a0_7, a1_0, a1_1, a1_2, a1_3, a1_4, a1_5, a1_6, a1_7);
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i key_of_lane = _mm512_srli_epi32(lane, NM == 1 ? 0 : NM == 2 ? 1 : NM == 4 ? 2 : 3);
    if (t == ATTN_DTYPE_I8) /* lane r NM + m times ks[j + r] */
        s = _mm512_mul_ps(s, _mm512_permutexvar_ps(key_of_lane, _mm512_maskz_loadu_ps((__mmask16)((1u << nk) - 1u), ks + j)));
    /* S row of key r: lanes r NM + [0, 8), those of rows >= M zeroed */
    const __mmask16 keep = (__mmask16)((1u << M) - 1u);
    if (NM == 8) { /* the two keys' rows are the two halves of s */
        s = _mm512_maskz_mov_ps((__mmask16)(keep | keep << 8), s);
        _mm256_storeu_ps(S + j * lds, _mm512_castps512_ps256(s));
        if (nk > 1) _mm256_storeu_ps(S + (j + 1) * lds, _mm512_extractf32x8_ps(s, 1));
        return;
    }
    for (int64_t r = 0; r < nk; r++) {
        const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)(r * NM)), _mm512_and_si512(lane, _mm512_set1_epi32(7)));
        _mm256_storeu_ps(S + (j + r) * lds, _mm512_castps512_ps256(_mm512_maskz_permutexvar_ps(keep, idx, s)));
    }
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
    const size_t es = esz(t);
    __mmask16 mc[4];
    for (int q = 0; q < 4; q++) mc[q] = FULL ? (__mmask16)0xffff : Dv - e0 > 16 * q ? tail_mask(Dv - e0 - 16 * q) : 0;
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
    EACH8(LOAD)
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
            EACH8(ACC)
        } else { /* a row with P == 0 skips the key (its V may be Inf / NaN) */
#define ACCZ(i) if (NM > i && !((zero >> i) & 1)) { ACC(i) }
            EACH8(ACCZ)
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
    EACH8(STORE)
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

static unsigned touch_avx512(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    __m512i x = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i));
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i + 64));
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i + 128));
        x = _mm512_or_si512(x, _mm512_loadu_si512(b + i + 192));
    }
    for (; i + 64 <= n; i += 64) x = _mm512_or_si512(x, _mm512_loadu_si512(b + i));
    return (unsigned)_mm512_reduce_or_epi32(x);
}

void attn__kv_kernels_avx512(attn__kv_kernels *t) {
    t->name = "avx512";
    t->kdot = kdot_avx512;
    t->vacc = vacc_avx512;
    t->touch = touch_avx512;
}
