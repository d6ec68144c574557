/* SPDX-License-Identifier: MIT */
/* dispatch.h — per-ISA table of the sdpa micro-kernels.
 *
 * The tiled FlashAttention-2 drivers (sdpa_fwd.c, sdpa_bwd.c) are written
 * once in portable C; every inner loop that matters for speed is a call
 * through this table. The table for an ISA starts as a copy of the generic
 * one and is overridden entry by entry by the avx2 / avx512 kernels
 * (BLIS-style), so a missing SIMD kernel silently falls back to C.
 *
 * Tile conventions (all buffers are row-major, 64-byte aligned, in per-thread
 * workspace unless stated):
 *   - "n" (the vectorised dimension) is always padded by the caller to a
 *     multiple of 16 floats: B and C have >= round16(n) valid (possibly zero)
 *     columns and the kernels may read/write the padding. Exception: score
 *     tiles of few-row blocks (gemm_abt's C, softmax_tile) use a multiple of 8.
 *   - lda/ldb/ldc are row strides in elements.
 *
 * Every kernel is deterministic: its result depends only on its inputs (no
 * thread count, no alignment-dependent summation order).
 */
#ifndef ATTN_KERNELS_DISPATCH_H
#define ATTN_KERNELS_DISPATCH_H

#include "attn.h"
#include <stdint.h>

/* Block sizes of the drivers, per ISA (as BLIS keeps them in its context):
 * the generic table holds the defaults (attn__sdpa_blocks_default), an ISA's
 * hook overrides what it tunes. Shape-only choices: the plan (and so every
 * summation order) depends on them, never on the data or the thread count;
 * results stay bit-identical for one ISA, as they already differ across ISAs. */
#define ATTN__SDPA_BC_MAX 128       /* bound on bc and paged_bc (stack arrays of the drivers) */
#define ATTN__SDPA_BWD_TILES_MAX 32 /* bound on bwd_tiles */
typedef struct attn__sdpa_blocks {
    /* sdpa_fwd.c / sdpa_bwd.c (attn__sdpa_plan_make) */
    int mrows_fwd;  /* target rows (heads x positions) per forward query block */
    int mrows_bwd;  /* the same, backward */
    int bc;         /* keys per tile, a multiple of 16, <= ATTN__SDPA_BC_MAX */
    int fwd_tasks;  /* below this many forward tasks, split keys (flash-decoding) */
    int bwd_tasks;  /* below this many (b, kv head) pairs, split keys in the backward */
    int bwd_tiles;  /* backward key tiles per packed query block, <= ATTN__SDPA_BWD_TILES_MAX */
    int edge_keys;  /* keys per product chunk on a causal diagonal / window edge tile (a
                       staircase: each chunk only for the rows that see it); a multiple of 16,
                       0 = whole tiles */
    /* sdpa_paged.c */
    int paged_mrows;          /* target rows per query block */
    int paged_bc;             /* keys per tile, a multiple of 16, <= ATTN__SDPA_BC_MAX */
    int paged_part_min;       /* keys per partition of a decode block, at least (a multiple of paged_bc) */
    int paged_maxpart;        /* partitions per sequence, at most */
    int paged_pf_keys;        /* decode: keys per score call (kdot / gemm_abt), between its prefetches */
    int64_t paged_pf_bytes;   /* K+V bytes a call reads above which decode tiles prefetch the next tile */
} attn__sdpa_blocks;

typedef struct attn__sdpa_kernels {
    const char *name; /* e.g. "avx512" */
    attn__sdpa_blocks blk;

    /* C (m, n) = A (m, k) . B (k, n)          (acc == 0)
     * C (m, n) += A (m, k) . B (k, n)         (acc != 0)
     * A is read element-wise (broadcast); B and C row vectors. A may be an
     * unpacked strided view (e.g. K rows straight from the caller). */
    void (*gemm_ab)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                    float *C, int64_t ldc, int acc);

    /* C (m, n) += A^T . B  where A is (k, m) and B is (k, n):
     *   C[i][:] += sum_p A[p][i] * B[p][:]   (p ascending). */
    void (*gemm_atb)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float *C, int64_t ldc);

    /* C (m, n) = A (m, k) . B^T, B stored (n, k): C[i][j] = sum_p A[i][p] * B[j][p]
     * (dot products along rows). For score tiles with few query rows
     * (decoding): A = K rows straight from the caller (read only within
     * [0, k)), B = packed query rows zero-padded to round16(k) readable
     * elements. Columns n..round8(n) of C are set to 0 (C has round8(n)
     * columns: ldc may be round8(n)). */
    void (*gemm_abt)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float *C, int64_t ldc);

    /* Online-softmax step on a transposed score tile S (nc, mp) [key c][row m]
     * (mp a multiple of 8). For every column m:
     *   mx = max_c S[c][m]; mn = max(mrow[m], mx)
     *   mn == -inf: S[:, m] = 0, alpha[m] = 1 (row still fully masked)
     *   else: alpha[m] = exp(mrow[m] - mn), S[c][m] = exp(S[c][m] - mn),
     *         lrow[m] = alpha[m] * lrow[m] + sum_c S[c][m]   (c ascending), mrow[m] = mn.
     * Returns nonzero iff some alpha[m] != 1 (O must be rescaled).
     * First S[c][m] = scale * S[c][m] (rounded, stored) unless scale == 1:
     * the logit multiply of attn__sdpa_scores folded in (same bits). */
    int (*softmax_tile)(int64_t nc, int64_t mp, float *S, float scale, float *mrow, float *lrow, float *alpha);

    /* Backward probabilities on a transposed tile S (nc, mp):
     *   S[c][m] = lse[m] == -inf ? 0 : exp((scale * S[c][m] - lse[m]) - lo[m])
     * (scale * S rounded first; scale == 1: S as is)
     * with the exp of softmax_tile; lse[m] + lo[m] is the row's log-sum-exp
     * as a float pair (sdpa_bwd.c), lo[m] = 0 exactly when the row saw one key. */
    void (*bwd_probs)(int64_t nc, int64_t mp, float *S, float scale, const float *lse, const float *lo);

    /* dS on a transposed tile: dP[c][m] = scale * (P[c][m] * ((dP[c][m] - Di[m]) - Dl[m]))
     * (both products rounded), and exactly 0 where P[c][m] == 0 (masked keys
     * may hold Inf/NaN values).
     * Di + Dl: the row's sum_j P_j dP_j as a float pair (sdpa_bwd.c): the
     * first difference is exact where dP ~ Di (peaked rows). */
    void (*bwd_ds)(int64_t nc, int64_t mp, const float *P, float *dP, const float *Di, const float *Dl, float scale);

    /* sum_e a[e] * b[e], e ascending from 0, with exactly the arithmetic of
     * gemm_ab's accumulation (fused multiply-adds on FMA ISAs, multiply then
     * add in C): bwd_fast's Di = <dO, o> then cancels dP = <v, dO> bit for
     * bit where o = v (one visible key). */
    float (*dot)(int64_t n, const float *a, const float *b);

    /* Row statistics of the backward on transposed tiles E, dP (nc, mp), mp a
     * multiple of 16, in double, c ascending per column m:
     *   cs[m] += sum_c E[c][m],  ds[m] += sum_c (E[c][m] == 0 ? 0 : E[c][m] dP[c][m])
     * (masked keys: E = 0 exactly, dP may be Inf / NaN); dP == NULL: cs only,
     * and em[m] = max(em[m], max_c E[c][m]) (em may be NULL otherwise). */
    void (*row_sums)(int64_t nc, int64_t mp, const float *E, const float *dP, double *cs, double *ds, float *em);

    /* 1 iff src[r][0:n] is finite (no Inf / NaN) for every r < nr; reads
     * only those elements. A clean V tile is then used in place (no packing). */
    int (*rows_finite)(int64_t nr, int64_t n, const float *src, int64_t lds);

    /* Row packing with a finiteness screen:
     *   dst[r][0:n] = scale * src[r][0:n], dst[r][n:npad] = 0   (r < nr)
     * except that a row whose SOURCE holds an Inf/NaN is zeroed entirely and
     * its index appended to bad[]. Returns the number of such rows. */
    int (*pack_rows)(int64_t nr, int64_t n, const float *src, int64_t lds, float scale, float *dst, int64_t ldd,
                     int64_t npad, int32_t *bad);

    /* Online-softmax rescale of the output accumulator: C[r][0:n] *= alpha[r]
     * for every r < m with alpha[r] != 1 (rows with alpha 1 are not touched);
     * n a multiple of 16. */
    void (*scale_rows)(int64_t m, int64_t n, float *C, int64_t ldc, const float *alpha);

    /* ── element types (attn_sdpa_*_typed) ──
     * dst[0:n] = src[0:n] widened to fp32 (exact), t = ATTN_DTYPE_BF16 or _F16. */
    void (*to_f32)(attn_dtype t, int64_t n, const void *src, float *dst);
    /* dst[0:n] = src[0:n] rounded to t (nearest even; NaN stays NaN), t = BF16 or F16. */
    void (*from_f32)(attn_dtype t, int64_t n, const float *src, void *dst);

    /* bf16 fast forward (NULL where the ISA has no bf16 dot product: the
     * driver then converts the inputs and takes the fp32 path).
     * Pair GEMM: C (m, n) (+)= A2 (m, k2) . B2 (k2, n) where every element is
     * a PAIR of bf16: A2(r, p) = (a0, a1) at A + r * ars + p * aps (uint16_t
     * units, any alignment), B2(p, j) = (b0, b1) at B + 2 * (p * ldb + j), and
     *   C[r][j] (+)= sum_p (a0 b0 + a1 b1)   (exact products, fp32 sums, p ascending).
     * n a multiple of 16. */
    void (*gemm_bf16)(int64_t m, int64_t n, int64_t k2, const uint16_t *A, int64_t ars, int64_t aps,
                      const uint16_t *B, int64_t ldb, float *C, int64_t ldc, int acc);
    /* Probabilities as key pairs: P2 (ceil(nc / 2), mp) pairs,
     *   P2[2 * (c2 * mp + m) + t] = bf16(S[(2 c2 + t) * mp + m])  (0 past nc),
     * mp a multiple of 16. */
    void (*pack_p_bf16)(int64_t nc, int64_t mp, const float *S, uint16_t *P2);
    /* V rows as key pairs: V2 (ceil(nr / 2), npad) pairs,
     *   V2[2 * (c2 * npad + e) + t] = src[(2 c2 + t) * lds + e]   (e < n, else 0; 0 past nr)
     * except that a row holding an Inf/NaN is zeroed and its index appended to
     * bad[] (as pack_rows). Returns the number of such rows. npad a multiple of 16. */
    int (*pack_v_bf16)(int64_t nr, int64_t n, const uint16_t *src, int64_t lds, uint16_t *V2, int64_t npad,
                       int32_t *bad);

    /* Backward query-block packing (sdpa_bwd.c): mp rows (mp a multiple of
     * 16), row m x[m] (NULL: zeros) of n elements of esz bytes (4: fp32; 2:
     * bf16 with n even), handled as nu 32-bit units (nu = n fp32 elements or
     * n / 2 bf16 pairs along the row):
     *   T (nu, mp) units, transposed:  T[u * mp + m] = unit u of x[m]      (u < nu)
     *   R (NULL: not written) of units, ldr >= round16(n) per row, rows m < nr:
     *     fp32: R[m * ldr + d] = x[m][d], 0 for n <= d < ldr
     *     bf16 (nr even): pairs of rows, R[(m / 2) * ldr + d] = (x[m & ~1][d], x[m | 1][d])
     *           (first in the low half), 0 for n <= d < ldr
     * A row holding an Inf / NaN is packed as it is and its index appended
     * to bad[] (m ascending). Returns the number of such rows. */
    int (*pack_qblock)(int64_t mp, int64_t nr, int64_t n, int esz, const void *const *x, void *T, void *R,
                       int64_t ldr, int32_t *bad);
    /* dS of the bf16 fast backward (nc, mp), mp a multiple of 16, rounded
     * for its three products in one pass:
     *   d16[c * mp + m] = from_f32's bf16 of dS[c][m]   (nearest even, NaN quiet)
     *   hi2 = pack_p_bf16(dS), lo2 = pack_p_bf16(dS - f32(d16))   (key pairs)
     * (hi + lo: dS within 2^-17 relative, for dq's sum that cancels). */
    void (*split_ds_bf16)(int64_t nc, int64_t mp, const float *dS, uint16_t *d16, uint16_t *hi2, uint16_t *lo2);
} attn__sdpa_kernels;

/* Shared end of one pack_rows row, after the SIMD part packed d[0:e): the
 * scalar tail e..n (never reads past the row), zero padding n..npad, and the
 * screen: a row whose source held an Inf/NaN (nonfinite != 0 on entry, or in
 * the tail) is zeroed and its index r appended to bad[*nbad]. */
static inline void attn__pack_row_finish(const float *s, float *d, int64_t e, int64_t n, int64_t npad, float scale,
                                         int nonfinite, int32_t *bad, int *nbad, int64_t r) {
    for (; e < n; e++) {
        const float x = s[e];
        nonfinite |= !(x - x == 0.0f); /* Inf - Inf and NaN - NaN are NaN */
        d[e] = scale * x;
    }
    for (; e < npad; e++) d[e] = 0.0f;
    if (nonfinite) {
        for (int64_t z = 0; z < n; z++) d[z] = 0.0f;
        bad[(*nbad)++] = (int32_t)r;
    }
}

/* Portable C of gemm_bf16 (the generic table has none: tests compare the
 * native kernel with it). */
void attn__sdpa_gemm_bf16_ref(int64_t m, int64_t n, int64_t k2, const uint16_t *A, int64_t ars, int64_t aps,
                              const uint16_t *B, int64_t ldb, float *C, int64_t ldc, int acc);

/* The defaults of attn__sdpa_blocks (the generic table's; measured on AVX2 and AVX-512
 * Zen machines, see the definitions in dispatch.c). */
void attn__sdpa_blocks_default(attn__sdpa_blocks *b);

/* The table for the currently active ISA (attn_isa_active()). */
const attn__sdpa_kernels *attn__sdpa_kernels_get(void);
/* The table for a given ISA (capped at what is compiled in; tests). */
const attn__sdpa_kernels *attn__sdpa_kernels_for(attn_isa isa);

/* Per-ISA override hooks, each defined in its ISA directory. */
void attn__sdpa_kernels_generic(attn__sdpa_kernels *t);
void attn__sdpa_kernels_avx2(attn__sdpa_kernels *t);
void attn__sdpa_cvt_avx2(attn__sdpa_kernels *t); /* conversions (avx2/cvt_avx2.c), called by the avx2 hook */
void attn__sdpa_pack_avx2(attn__sdpa_kernels *t); /* pack_qblock (avx2/sdpa_pack_avx2.c), called by the avx2 hook */
void attn__sdpa_kernels_avx512(attn__sdpa_kernels *t);
/* bf16 entries of the avx512 table, installed when the CPU has AVX512_BF16. */
void attn__sdpa_kernels_avx512_bf16(attn__sdpa_kernels *t);
/* The backward's query-block packing (avx512/sdpa_pack_avx512.c), installed with the avx512 table. */
void attn__sdpa_pack_avx512(attn__sdpa_kernels *t);

#endif
