/* SPDX-License-Identifier: MIT */
/* dot_avx512.h — scores of a few query rows against many keys (decoding),
 * AVX-512: the core shared by the fp32 gemm_abt (sdpa_f32_avx512.c: K rows
 * with a stride, straight from the caller) and the typed decode kdot
 * (kv_typed_avx512.c: bf16 / f16 / int8 cache rows).
 *
 * R = 16 / NM keys at a time against NM in {1, 2, 4, 8} query rows: 16 zmm
 * accumulators along D (lane group r NM + m: key r, row m; each query chunk
 * loaded once for the R keys, each key chunk loaded, or widened, once for the
 * NM rows, so 16 independent FMA chains and R key streams in flight), then one
 * transposing reduction of the 16 to one zmm of scores. The summation order
 * is fixed by D alone (chunks of 16 ascending, then reduce16's tree).
 *
 * The includer defines, before including this header:
 *   DOT512_LD(t, p, mk): 16 elements of type t at byte address p as fp32, the
 *                        lanes of mask mk loaded and the others 0 (not read);
 *                        mk is 0xffff for every chunk but the D tail.
 * and includes <immintrin.h>. Not installed. */
#ifndef ATTN_KERNELS_AVX512_DOT_AVX512_H
#define ATTN_KERNELS_AVX512_DOT_AVX512_H
#include "attn.h"

#include <stddef.h>
#include <stdint.h>

#define DOT512_AI static inline __attribute__((always_inline))

DOT512_AI size_t dot512_esz(attn_dtype t) {
    return t == ATTN_DTYPE_F32 ? 4 : t == ATTN_DTYPE_I8 ? 1 : 2;
}
DOT512_AI __mmask16 dot512_tail(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* [sum v0, ..., sum v15] as one zmm: a transposing tree (30 shuffles, 15
 * adds; the summation order is fixed). Level 3 works inside 128-bit lanes
 * and leaves lane L holding the sums of its inputs L, 4 + L, 8 + L, 12 + L,
 * so the inputs go in as the 4 x 4 transpose of their natural order.
 * DOT512_TREE(SFX, T, ADD, TO_PS, FROM_PS) makes the tree for vectors of type
 * T added by ADD (the shuffles move bits: T is cast to __m512 and back):
 * dot512_reduce16 (fp32) and dot512_reduce16i (int32, exact). */
#define DOT512_TREE(SFX, T, ADD, TO_PS, FROM_PS)                                                               \
    /* [x's 8 partials | y's 8 partials] */                                                                  \
    DOT512_AI T dot512_pair_lanes##SFX(T x, T y) {                                                           \
        return ADD(FROM_PS(_mm512_shuffle_f32x4(TO_PS(x), TO_PS(y), 0x44)),                                  \
                   FROM_PS(_mm512_shuffle_f32x4(TO_PS(x), TO_PS(y), 0xEE)));                                 \
    }                                                                                                        \
    /* lane L: the 4 partials of input L of (x's 2, y's 2) */                                                \
    DOT512_AI T dot512_pair_quads##SFX(T x, T y) {                                                           \
        return ADD(FROM_PS(_mm512_shuffle_f32x4(TO_PS(x), TO_PS(y), 0x88)),                                  \
                   FROM_PS(_mm512_shuffle_f32x4(TO_PS(x), TO_PS(y), 0xDD)));                                 \
    }                                                                                                        \
    /* in each lane: x's 2 pair sums, y's 2 */                                                               \
    DOT512_AI T dot512_pair_halves##SFX(T x, T y) {                                                          \
        return ADD(FROM_PS(_mm512_shuffle_ps(TO_PS(x), TO_PS(y), 0x44)),                                     \
                   FROM_PS(_mm512_shuffle_ps(TO_PS(x), TO_PS(y), 0xEE)));                                    \
    }                                                                                                        \
    /* in each lane: x's 2 sums, y's 2 */                                                                    \
    DOT512_AI T dot512_pair_evens##SFX(T x, T y) {                                                           \
        return ADD(FROM_PS(_mm512_shuffle_ps(TO_PS(x), TO_PS(y), 0x88)),                                     \
                   FROM_PS(_mm512_shuffle_ps(TO_PS(x), TO_PS(y), 0xDD)));                                    \
    }                                                                                                        \
    DOT512_AI T dot512_reduce16##SFX(T v0, T v1, T v2, T v3, T v4, T v5, T v6, T v7, T v8, T v9, T v10, T v11, \
                                     T v12, T v13, T v14, T v15) {                                           \
        /* tree position 4e + L takes input 4L + e */                                                        \
        const T u0 = dot512_pair_quads##SFX(dot512_pair_lanes##SFX(v0, v4), dot512_pair_lanes##SFX(v8, v12));  \
        const T u1 = dot512_pair_quads##SFX(dot512_pair_lanes##SFX(v1, v5), dot512_pair_lanes##SFX(v9, v13));  \
        const T u2 = dot512_pair_quads##SFX(dot512_pair_lanes##SFX(v2, v6), dot512_pair_lanes##SFX(v10, v14)); \
        const T u3 = dot512_pair_quads##SFX(dot512_pair_lanes##SFX(v3, v7), dot512_pair_lanes##SFX(v11, v15)); \
        return dot512_pair_evens##SFX(dot512_pair_halves##SFX(u0, u1), dot512_pair_halves##SFX(u2, u3));       \
    }
#define DOT512_ID(x) (x)
DOT512_TREE(, __m512, _mm512_add_ps, DOT512_ID, DOT512_ID)
DOT512_TREE(i, __m512i, _mm512_add_epi32, _mm512_castsi512_ps, _mm512_castps_si512)

/* RED (dot512_reduce16 or dot512_reduce16i) of the 16 accumulators a<r>_<m>
 * (key r, row m) of an NM-row group, in lane order r NM + m. */
#define DOT512_REDUCE_ACC(RED, NM)                                                                              \
    ((NM) == 1   ? RED(a0_0, a1_0, a2_0, a3_0, a4_0, a5_0, a6_0, a7_0, a8_0, a9_0, a10_0, a11_0, a12_0, a13_0,  \
                       a14_0, a15_0)                                                                         \
     : (NM) == 2 ? RED(a0_0, a0_1, a1_0, a1_1, a2_0, a2_1, a3_0, a3_1, a4_0, a4_1, a5_0, a5_1, a6_0, a6_1,     \
                       a7_0, a7_1)                                                                           \
     : (NM) == 4 ? RED(a0_0, a0_1, a0_2, a0_3, a1_0, a1_1, a1_2, a1_3, a2_0, a2_1, a2_2, a2_3, a3_0, a3_1,     \
                       a3_2, a3_3)                                                                           \
                 : RED(a0_0, a0_1, a0_2, a0_3, a0_4, a0_5, a0_6, a0_7, a1_0, a1_1, a1_2, a1_3, a1_4, a1_5,     \
                       a1_6, a1_7))

/* Named-register helpers (arrays of vectors would be kept on the stack). */
#define DOT512_EACH8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DOT512_EACH16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define DOT512_ROWS8(Y, r) Y(r, 0) Y(r, 1) Y(r, 2) Y(r, 3) Y(r, 4) Y(r, 5) Y(r, 6) Y(r, 7)

/* The scores of keys j .. j + R - 1 (R = 16 / NM) against M <= NM query
 * rows, one zmm: lane r NM + m = sum_d Q[m * ldq + d] * K_{j + r}[d], K_x the
 * row at byte K + x * ldk * esz(t) (ldk in elements); lanes of rows m >= M
 * are 0. Q (M, ldq) fp32, readable and zero in [D, round16(D)). Keys
 * j + r >= n re-read key n - 1 (valid memory; their lanes are not meant to
 * be stored). */
DOT512_AI __m512 dot512_sums(attn_dtype t, int NM, int KM, int64_t j, int64_t n, int64_t M, int64_t D, const unsigned char *K,
                             int64_t ldk, const float *Q, int64_t ldq) {
    const int R = 16 / NM;
    const size_t es = dot512_esz(t);
#define ZERO(r, m) __m512 a##r##_##m = _mm512_setzero_ps();
#define ZERO_KEY(r) DOT512_ROWS8(ZERO, r)
    DOT512_EACH16(ZERO_KEY)
#undef ZERO_KEY
#undef ZERO
#define KPTR(r) const unsigned char *k##r = K + (size_t)((j + r < n ? j + r : n - 1) * ldk) * es;
    DOT512_EACH16(KPTR)
#undef KPTR
#define QLOAD(m) const __m512 q##m = NM > m && m < M ? _mm512_loadu_ps(Q + m * ldq + d) : _mm512_setzero_ps();
#define FMA1(r, m) if (NM > m) a##r##_##m = _mm512_fmadd_ps(x, q##m, a##r##_##m);
#define KEY(r)                                                          \
        if (R > r) {                                                    \
            const __m512 x = DOT512_LD(t, k##r + (size_t)d * es, mk);   \
            DOT512_ROWS8(FMA1, r)                                       \
        }
#define CHUNK { DOT512_EACH8(QLOAD) DOT512_EACH16(KEY) }
/* KM (key-major): key by key, each key's row read front to back and the R
 * rows one after the other, which the hardware prefetchers follow as a
 * stream over contiguous rows; the chunk-major order (R rows, one 64-byte
 * line of each at a time) puts R misses in flight at once over strided rows.
 * Each accumulator sums the same products in the same order either way, so
 * the results are the same bits. */
#define FMAQ(r, m) if (NM > m && m < M) a##r##_##m = _mm512_fmadd_ps(x, _mm512_loadu_ps(Q + m * ldq + d), a##r##_##m);
#define KEYROW(r)                                                                         \
    if (R > r) {                                                                          \
        int64_t d = 0;                                                                    \
        for (; d + 16 <= D; d += 16) {                                                    \
            const __m512 x = DOT512_LD(t, k##r + (size_t)d * es, (__mmask16)0xffff);      \
            DOT512_ROWS8(FMAQ, r)                                                         \
        }                                                                                 \
        if (d < D) {                                                                      \
            const __m512 x = DOT512_LD(t, k##r + (size_t)d * es, dot512_tail(D - d));     \
            DOT512_ROWS8(FMAQ, r)                                                         \
        }                                                                                 \
    }
    if (KM) {
        DOT512_EACH16(KEYROW)
    } else {
        int64_t d = 0;
        for (; d + 16 <= D; d += 16) { /* full chunks: plain loads */
            const __mmask16 mk = 0xffff;
            CHUNK
        }
        if (d < D) { /* the D tail (Q is zero-padded) */
            const __mmask16 mk = dot512_tail(D - d);
            CHUNK
        }
    }
#undef KEYROW
#undef FMAQ
#undef CHUNK
#undef KEY
#undef FMA1
#undef QLOAD
    return DOT512_REDUCE_ACC(dot512_reduce16, NM);
}

/* Lane index -> key of the group: lane / NM. */
DOT512_AI __m512i dot512_key_of_lane(int NM) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    return _mm512_srli_epi32(lane, NM == 1 ? 0 : NM == 2 ? 1 : NM == 4 ? 2 : 3);
}

/* Stores the group's scores s (dot512_sums) as the rows S[(j + r) * lds + m]
 * of its first nk keys: 8 floats per key, those of rows m >= M (M <= NM) set
 * to 0. */
DOT512_AI void dot512_store(int NM, __m512 s, int64_t j, int64_t nk, int64_t M, float *S, int64_t lds) {
    const __mmask16 keep = (__mmask16)((1u << M) - 1u);
    if (NM == 8) { /* the two keys' rows are the two halves of s */
        s = _mm512_maskz_mov_ps((__mmask16)(keep | keep << 8), s);
        _mm256_storeu_ps(S + j * lds, _mm512_castps512_ps256(s));
        if (nk > 1) _mm256_storeu_ps(S + (j + 1) * lds, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
        return;
    }
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int64_t r = 0; r < nk; r++) {
        const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)(r * NM)), _mm512_and_si512(lane, _mm512_set1_epi32(7)));
        _mm256_storeu_ps(S + (j + r) * lds, _mm512_castps512_ps256(_mm512_maskz_permutexvar_ps(keep, idx, s)));
    }
}
#endif
