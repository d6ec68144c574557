/* SPDX-License-Identifier: MIT */
/* sdpa_bwd.c — tiled FlashAttention-2 backward.
 *
 * Task = (sequence b, kv head, key chunk). The task owns dk/dv of its keys
 * (summed over all G query heads of the group inside the task: no atomics)
 * and its own dq accumulator: chunk 0 accumulates straight into dq, chunk
 * c >= 1 into workspace partial c-1; a final pass adds the partials to dq in
 * chunk order. The number of chunks depends only on the shape, so results
 * are bit-identical for any thread count.
 *
 * Keys are taken in groups of pl->KT tiles (the ISA's blk.bwd_tiles): each query block
 * seeing the group is packed once (q, dO transposed and as rows, lse, Di:
 * kt->pack_qblock) and its dq contribution summed over the group's tiles
 * before it is added to dq, which divides that strided, memory-bound work
 * by the group size; the next block's q / dO rows are prefetched while a
 * block computes.
 * For each key tile (Bc keys) and each query block seeing it:
 *   St  = scale * (K . Qt)            (scores, transposed; bits as in the forward)
 *   P   = exp(S - lse)                (after softcap / ALiBi / masks as forward)
 *   Pd  = P * z                       (dropout: z = keep / (1 - p))
 *   dV += Pd . dO
 *   dPt = V . dOt
 *   dS  = scale * (Pd * dP - P * Di)  (Di = rowsum(dO * O)); softcap: * (1 - tanh^2)
 *   dK += dS . Q
 *   dQ += dS^T . K
 */
#include "kernels/sdpa_internal.h"
#include "kernels/dropout.h"


typedef struct bwd_bufs {
    float *Qt;   /* (D, Mp)   q^T, zero-padded rows */
    float *Qr;   /* (M, Dp)   q rows, zero-padded columns */
    float *dOt;  /* (Dv, Mp)  dO^T */
    float *dOr;  /* (M, Dvp)  dO rows */
    float *St;   /* (Bc, Mp)  scores -> P */
    float *X;    /* (Bc, Mp)  P * z (dropout) */
    float *dPt;  /* (Bc, Mp)  dP -> dS */
    float *Tt;   /* (Bc, Mp)  tanh(x / softcap) */
    float *dKa;  /* (KT * Bc, Dp)  dk accumulator of a group of KT key tiles */
    float *dVa;  /* (KT * Bc, Dvp) dv accumulator */
    float *Kp;   /* (KT * Bc, Dp)  K tiles, zero-padded columns */
    float *Vp;   /* (KT * Bc, Dv)  V tiles (copies) */
    float *dqt;  /* (M, Dp)   dq contribution of one query block over a group of key tiles */
    float *lse;  /* (Mp)      lse per row, -inf on padding */
    float *lsel; /* (Mp)      low part of the row's log-sum-exp (refine_task), 0 on padding */
    float *Di;   /* (Mp)      Di = sum_j P_j dP_j (refine_task), high part */
    float *Dil;  /* (Mp)      its low part */
    int64_t *lo, *hi; /* (Br) */
    uint64_t *rowkey; /* (Mp) */
    int32_t *bad;     /* (KT, Bc) K rows of each tile holding Inf/NaN */
    int32_t *qbad, *dbad; /* (Mp) rows of the query block whose q / dO hold Inf/NaN */
    double *rs;           /* (3, Mp) refine_task's row sums */
    const void **xr;      /* (Mp) rows of q or dO of the block being packed (NULL: zeros) */
    /* bf16 fast path (P->bf16; then Qt, Qr, dOt, dOr and Kp are empty).
     * A "pair" is two bf16 in one 32-bit word, the first in the low half. */
    uint32_t *Q2;   /* (D/2, Mp)        q pairs along d: the Q.K^T operand */
    uint32_t *dO2;  /* (Dv/2, Mp)       dO pairs along e: V.dO^T */
    uint32_t *Qp;   /* (Mp/2, Dp)       q pairs along rows (rows m, m+1): dS.Q */
    uint32_t *dOp;  /* (Mp/2, Dvp)      dO pairs along rows: P.dO */
    uint32_t *Kp2;  /* (KT * Bc/2, Dp)  K pairs along keys: dS^T.K */
    uint16_t *Kc16; /* (KT * Bc, D)     K tiles (copies): K.Q^T */
    uint16_t *Vc16; /* (KT * Bc, Dv)    V tiles (copies): V.dO^T */
    uint16_t *P16;  /* (Bc, Mp)         P (times z) rounded to bf16 */
    uint16_t *dS16; /* (Bc, Mp)         dS rounded to bf16 */
    uint16_t *dS2;  /* (Bc/2, Mp) pairs dS rounded, key pairs (pack_p_bf16) */
    uint16_t *dS2l; /* (Bc/2, Mp) pairs the remainder dS - bf16(dS), rounded, key pairs */
} bwd_bufs;

/* Carves one thread's area (base NULL: counts); returns its bytes. */
static size_t bwd_bufs_get(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, unsigned char *base, bwd_bufs *b) {
    const int64_t Mp = pl->Mp, M = pl->Mmax, Bc = pl->Bc, Dp = pl->Dp, Dvp = pl->Dvp;
    const int64_t KB = pl->KT * Bc;
    attn__carver c = {base, 0};
    const size_t F = sizeof(float), f32 = P->bf16 ? 0 : 1, h16 = P->bf16 ? 1 : 0;
    b->Qt = attn__carve(&c, f32 * (size_t)(P->D * Mp) * F);
    b->Qr = attn__carve(&c, f32 * (size_t)(M * Dp) * F);
    b->dOt = attn__carve(&c, f32 * (size_t)(P->Dv * Mp) * F);
    b->dOr = attn__carve(&c, f32 * (size_t)(M * Dvp) * F);
    b->St = attn__carve(&c, (size_t)(Bc * Mp) * F);
    b->X = attn__carve(&c, (size_t)(Bc * Mp) * F);
    b->dPt = attn__carve(&c, (size_t)(Bc * Mp) * F);
    b->Tt = attn__carve(&c, (size_t)(Bc * Mp) * F);
    b->dKa = attn__carve(&c, (size_t)(KB * Dp) * F);
    b->dVa = attn__carve(&c, (size_t)(KB * Dvp) * F);
    b->Kp = attn__carve(&c, f32 * (size_t)(KB * Dp) * F);
    b->Vp = attn__carve(&c, f32 * (size_t)(KB * P->Dv) * F);
    b->dqt = attn__carve(&c, (size_t)(M * Dp) * F);
    b->lse = attn__carve(&c, (size_t)Mp * F);
    b->lsel = attn__carve(&c, (size_t)Mp * F);
    b->Di = attn__carve(&c, (size_t)Mp * F);
    b->Dil = attn__carve(&c, (size_t)Mp * F);
    b->lo = attn__carve(&c, (size_t)pl->Br * sizeof(int64_t));
    b->hi = attn__carve(&c, (size_t)pl->Br * sizeof(int64_t));
    b->rowkey = attn__carve(&c, (size_t)Mp * sizeof(uint64_t));
    b->bad = attn__carve(&c, (size_t)KB * sizeof(int32_t));
    b->qbad = attn__carve(&c, (size_t)Mp * sizeof(int32_t));
    b->dbad = attn__carve(&c, (size_t)Mp * sizeof(int32_t));
    b->rs = attn__carve(&c, (size_t)(3 * Mp) * sizeof(double));
    b->xr = attn__carve(&c, (size_t)Mp * sizeof(const void *));
    b->Q2 = attn__carve(&c, h16 * (size_t)(P->D * Mp) * 2);
    b->dO2 = attn__carve(&c, h16 * (size_t)(P->Dv * Mp) * 2);
    b->Qp = attn__carve(&c, h16 * (size_t)(Mp * Dp) * 2);
    b->dOp = attn__carve(&c, h16 * (size_t)(Mp * Dvp) * 2);
    b->Kp2 = attn__carve(&c, h16 * (size_t)(KB * Dp) * 2);
    b->Kc16 = attn__carve(&c, h16 * (size_t)(KB * P->D) * 2);
    b->Vc16 = attn__carve(&c, h16 * (size_t)(KB * P->Dv) * 2);
    b->P16 = attn__carve(&c, h16 * (size_t)(Bc * Mp) * 2);
    b->dS16 = attn__carve(&c, h16 * (size_t)(Bc * Mp) * 2);
    b->dS2 = attn__carve(&c, h16 * (size_t)(Bc * Mp) * 2);
    b->dS2l = attn__carve(&c, h16 * (size_t)(Bc * Mp) * 2);
    return c.off;
}

size_t attn__sdpa_bwd_thread_bytes(const attn__sdpa_prob *P, const attn__sdpa_plan *pl) {
    bwd_bufs b;
    return bwd_bufs_get(P, pl, NULL, &b);
}

typedef struct bwd_ctx {
    const attn__sdpa_prob *P;
    const attn__sdpa_plan *pl;
    const attn__sdpa_kernels *kt;
    unsigned char *ws;
    float *dqp; /* (nchunks - 1, rows, Hq, D) dq partials; rows = B * Sq or Tq (varlen) */
    /* per row, (B, Hq, Sq) / varlen (Hq, Tq) each, from refine_task: */
    float *lsel;     /* low part of the log-sum-exp */
    float *dih, *dil; /* Di = sum_j P_j dP_j as a float pair */
} bwd_ctx;

/* dq row pointer of (sequence, row i, head h) for chunk ch. */
static float *dq_row(const bwd_ctx *c, const attn__sdpa_seq *s, int64_t ch, int64_t i, int64_t h) {
    const attn__sdpa_prob *P = c->P;
    if (ch == 0) return attn__sdpa_at(P->dq, s, s->q0, i, h);
    int64_t rows = P->varlen ? P->Sq : P->B * P->Sq;
    int64_t row = P->varlen ? s->q0 + i : s->b * P->Sq + i;
    return c->dqp + (((ch - 1) * rows + row) * P->Hq + h) * P->D;
}

/* first i in [0, n) with f(i) true, for a monotone predicate (n if none) */
static int64_t first_row_hi_gt(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t j0) {
    int64_t lo = 0, hi = s->sq;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, a, e;
        attn__sdpa_row_range(P, s, mid, &a, &e);
        if (e > j0) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}
static int64_t first_row_lo_ge(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t j1) {
    int64_t lo = 0, hi = s->sq;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, a, e;
        attn__sdpa_row_range(P, s, mid, &a, &e);
        if (a >= j1) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* An input row as fp32: the row itself, or (bf16 fast path) widened into tmp. */
static const float *row_f32(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, attn_view v,
                            const attn__sdpa_seq *s, int64_t row0, int64_t i, int64_t h, int64_t n, float *tmp) {
    if (!P->bf16) return attn__sdpa_at(v, s, row0, i, h);
    kt->to_f32(ATTN_DTYPE_BF16, n, attn__sdpa_at16(v, s, row0, i, h), tmp);
    return tmp;
}
/* The same for a key row j of K (v: P->k) or V. */
static const float *key_f32(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, attn_view v,
                            const attn__sdpa_seq *s, int64_t kvh, int64_t j, int64_t n, float *tmp) {
    return row_f32(P, kt, v, s, s->k0, j, kvh, n, tmp);
}

/* The two score-shaped products of a tile, fp32 or bf16 pairs:
 *   St  (nc, Mp) = K . Qt         dPt (nc, Mp) = V . dOt
 * C (nc, Mp) = rows (nc, n) of K or V read in place (kb: the tile's first
 * row, lds its stride) times the packed block T (n, Mp) / T2 (n/2, Mp). */
static void tile_key_product(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const void *kb, int64_t lds,
                             int64_t n, const float *T, const uint32_t *T2, int64_t nc, int64_t Mp, float *C) {
    if (P->bf16)
        kt->gemm_bf16(nc, Mp, n / 2, kb, lds, 2, (const uint16_t *)T2, Mp, C, Mp, 0);
    else
        kt->gemm_ab(nc, Mp, n, kb, lds, T, Mp, C, Mp, 0);
}
static void tile_scores(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const bwd_bufs *w, const void *kb,
                        int64_t lds, int64_t nc, int64_t Mp, float *St) {
    tile_key_product(P, kt, kb, lds, P->D, w->Qt, w->Q2, nc, Mp, St);
}
static void tile_dp(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const bwd_bufs *w, const void *vb,
                    int64_t lds, int64_t nc, int64_t Mp, float *dPt) {
    tile_key_product(P, kt, vb, lds, P->Dv, w->dOt, w->dO2, nc, Mp, dPt);
}
/* First key row j0 of K / V for kvh, as the untyped pointer the products take. */
static const void *key_ptr(const attn__sdpa_prob *P, attn_view v, const attn__sdpa_seq *s, int64_t kvh, int64_t j0) {
    return P->bf16 ? (const void *)attn__sdpa_at16(v, s, s->k0, j0, kvh) : (const void *)attn__sdpa_at(v, s, s->k0, j0, kvh);
}

/* dS from P, dP (in dPt), with dropout / softcap factors and the scale. */
static void tile_ds(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const bwd_bufs *w, int64_t nc,
                    int64_t Mp) {
    const int dropout = P->dropout_p > 0.0f, softcap = P->softcap > 0.0f;
    /* the scale (d logit / d q.k) last, after softcap's factor: in bwd_ds
     * when nothing comes between, else in a pass of its own */
    const int fold = !dropout && !softcap;
    if (!dropout) {
        kt->bwd_ds(nc, Mp, w->St, w->dPt, w->Di, w->Dil, fold ? P->scale : 1.0f);
    } else {
        for (int64_t cc = 0; cc < nc; cc++)
            for (int64_t m = 0; m < Mp; m++) {
                const int64_t x = cc * Mp + m;
                /* P ((z dP - Di) - Dl), z = 1 / (1 - p) for kept keys, 0 for dropped */
                const float z = w->X[x] != 0.0f ? P->drop_scale : 0.0f;
                w->dPt[x] = w->St[x] == 0.0f ? 0.0f : w->St[x] * ((z * w->dPt[x] - w->Di[m]) - w->Dil[m]);
            }
    }
    if (softcap)
        for (int64_t cc = 0; cc < nc; cc++)
            for (int64_t m = 0; m < Mp; m++) {
                const int64_t x = cc * Mp + m;
                const float th = w->Tt[x];
                w->dPt[x] *= 1.0f - th * th;
            }
    if (!fold) attn__sdpa_scale_tile(w->dPt, nc * Mp, P->scale);
}

/* The three accumulating products of a tile:
 *   dV (nc, Dvp) += Pd (nc, M) . dOr (M, Dvp)
 *   dK (nc, Dp)  += dS (nc, M) . Qr (M, Dp)
 *   dqt (M, Dp)  += dS^T . Kp (nc, Dp)
 * bf16 fast path: Pd and, for dK, dS rounded to bf16 (as FlashAttention
 * does), dS as a bf16 pair hi + lo for dq; the other operands the caller's
 * bf16 values, fp32 sums. */
/* The bf16 products sum over row pairs, (M + 1) / 2 of them: with M odd
 * the last pair takes padding row M of T (nc, Mp), which may hold anything
 * (softcap's factor, dropout's mask are computed for the M rows only), and is
 * zeroed. The other operand's row M is zero (pack_block). */
static void zero_pad_row(float *T, int64_t nc, int64_t M, int64_t Mp) {
    if (M % 2 == 0) return;
    for (int64_t cc = 0; cc < nc; cc++) T[cc * Mp + M] = 0.0f;
}
static void tile_dv(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const bwd_bufs *w, float *Pd,
                    int64_t nc, int64_t M, int64_t Mp, float *dVa) {
    const int64_t Dvp = attn__round16(P->Dv);
    if (!P->bf16) {
        kt->gemm_ab(nc, Dvp, M, Pd, Mp, w->dOr, Dvp, dVa, Dvp, 1);
        return;
    }
    zero_pad_row(Pd, nc, M, Mp);
    kt->from_f32(ATTN_DTYPE_BF16, nc * Mp, Pd, w->P16);
    kt->gemm_bf16(nc, Dvp, (M + 1) / 2, w->P16, Mp, 2, (const uint16_t *)w->dOp, Dvp, dVa, Dvp, 1);
}
static void tile_dk_dq(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const bwd_bufs *w, int64_t nc,
                       int64_t M, int64_t Mp, float *dKa, const void *Kp) {
    const int64_t Dp = attn__round16(P->D);
    if (!P->bf16) {
        kt->gemm_ab(nc, Dp, M, w->dPt, Mp, w->Qr, Dp, dKa, Dp, 1);
        kt->gemm_atb(M, Dp, nc, w->dPt, Mp, Kp, Dp, w->dqt, Dp);
        return;
    }
    zero_pad_row(w->dPt, nc, M, Mp);
    /* dq = sum_j dS_j k_j cancels (sum_j dS_j = 0: a common part of the
     * keys drops out) where rounding dS does not: dS as bf16 alone can be
     * several ulps of dq off. dS = hi + lo, both bf16 (hi = dS16, lo the
     * remainder, exact in fp32), leaves 2^-17 relative of dS. */
    kt->split_ds_bf16(nc, Mp, w->dPt, w->dS16, w->dS2, w->dS2l);
    kt->gemm_bf16(nc, Dp, (M + 1) / 2, w->dS16, Mp, 2, (const uint16_t *)w->Qp, Dp, dKa, Dp, 1);
    kt->gemm_bf16(M, Dp, (nc + 1) / 2, w->dS2, 2, 2 * Mp, Kp, Dp, w->dqt, Dp, 1);
    kt->gemm_bf16(M, Dp, (nc + 1) / 2, w->dS2l, 2, 2 * Mp, Kp, Dp, w->dqt, Dp, 1);
}

/* One key tile of a group, as bwd_task packed it. */
typedef struct bwd_keys {
    int64_t j0, nc;         /* first key, keys */
    int64_t ia, ib;         /* rows seeing the tile: [ia, ib) */
    float *dKa, *dVa;       /* (nc, Dp) / (nc, Dvp) its dk / dv accumulators */
    const void *Kp;         /* K for dS^T.K: fp32 rows Kp (nc, Dp), bf16 key pairs Kp2 */
    const void *Kc, *Vc;    /* K / V rows for K.Qt and V.dOt, ldk / ldv apart: copies in the
                               workspace (contiguous, the same values) or, fp32 K holding an
                               Inf/NaN, the rows in place */
    int64_t ldk, ldv;
    const int32_t *bad;     /* K rows holding Inf/NaN (zeroed in Kp), nbad of them */
    int nbad;
} bwd_keys;

/* The keys of tile kk that the block's rows (intervals lo, hi: r0.., nr of
 * them) can see, [c0, c1) in steps of 16 (the products' chunks; even, for
 * the bf16 key pairs), as a view *out of kk: the other keys have P = dS = 0
 * for every row of the block, so leaving them out of every product changes
 * no bit (on a causal diagonal a block of few positions sees a fraction of
 * the tile). bad (Bc): the view's own list of K rows holding Inf/NaN. */
static void block_keys(const attn__sdpa_prob *P, const int64_t *lo, const int64_t *hi, int64_t nr, const bwd_keys *kk,
                       int64_t Dp, int64_t Dvp, bwd_keys *out, int32_t *bad) {
    *out = *kk;
    int64_t c0 = lo[0] - kk->j0, c1 = hi[nr - 1] - kk->j0;
    c0 = c0 > 0 ? c0 & ~(int64_t)15 : 0;
    c1 = c1 < kk->nc ? attn__round16(c1) : kk->nc;
    if (c1 > kk->nc) c1 = kk->nc;
    if (c0 == 0 && c1 == kk->nc) return;
    const size_t esz = P->bf16 ? 2 : 4;
    out->j0 = kk->j0 + c0;
    out->nc = c1 - c0;
    out->dKa = kk->dKa + c0 * Dp;
    out->dVa = kk->dVa + c0 * Dvp;
    out->Kc = (const unsigned char *)kk->Kc + (size_t)(c0 * kk->ldk) * esz;
    out->Vc = (const unsigned char *)kk->Vc + (size_t)(c0 * kk->ldv) * esz;
    out->Kp = P->bf16 ? (const void *)((const uint32_t *)kk->Kp + (c0 / 2) * Dp) : (const void *)((const float *)kk->Kp + c0 * Dp);
    out->nbad = 0;
    for (int x = 0; x < kk->nbad; x++)
        if (kk->bad[x] >= c0 && kk->bad[x] < c1) bad[out->nbad++] = (int32_t)(kk->bad[x] - c0);
    out->bad = bad;
}

/* Edge tiles as a staircase (as the forward's, sdpa_fwd.c): on a causal
 * diagonal the rows that see keys [j0 + a, j0 + a + ek) start at ra[x]
 * (chunk x = a / ek, ek = blk.edge_keys); each chunk's five products take
 * rows [ra[x], Mp) only. Exact: the rows left out see none of the chunk's
 * keys, so their P and dS are 0 (bwd_ds gives 0 for P = 0 whatever dP
 * holds) and the products' sums over rows or keys only skip zero terms, in
 * the same order. fp32 with interval masks alone (no softcap / dropout /
 * ALiBi / mask, whose per-element passes read every entry). */
/* C (nc, Mp) = rows of K or V (kb, stride lds) . T (n, Mp), chunk x for columns [ra[x], Mp). */
static void stair_key_product(const attn__sdpa_kernels *kt, const attn__sdpa_stair *st, const float *kb, int64_t lds,
                              int64_t n, const float *T, int64_t nc, int64_t Mp, float *C) {
    for (int64_t a = 0, x = 0; a < nc; a += st->ek, x++)
        if (st->rb[x] > st->ra[x])
            kt->gemm_ab(nc - a < st->ek ? nc - a : st->ek, Mp - st->ra[x], n, kb + a * lds, lds, T + st->ra[x], Mp,
                        C + a * Mp + st->ra[x], Mp, 0);
}
/* C (nc, ldc) += A (nc, Mp: P or dS) . R (M, ldc: dO or q rows), chunk x over rows [ra[x], M). */
static void stair_row_product(const attn__sdpa_kernels *kt, const attn__sdpa_stair *st, const float *A, int64_t nc,
                              int64_t M, int64_t Mp, const float *R, float *C, int64_t ldc) {
    for (int64_t a = 0, x = 0; a < nc; a += st->ek, x++)
        if (st->rb[x] > st->ra[x])
            kt->gemm_ab(nc - a < st->ek ? nc - a : st->ek, ldc, M - st->ra[x], A + a * Mp + st->ra[x], Mp,
                        R + st->ra[x] * ldc, ldc, C + a * ldc, ldc, 1);
}
/* dqt (M, Dp) += dS^T . Kp (nc, Dp), chunk by chunk in key order, rows [ra[x], M). */
static void stair_dq(const attn__sdpa_kernels *kt, const attn__sdpa_stair *st, const float *dS, int64_t nc, int64_t M,
                     int64_t Mp, const float *Kp, int64_t Dp, float *dqt) {
    for (int64_t a = 0, x = 0; a < nc; a += st->ek, x++)
        if (st->rb[x] > st->ra[x])
            kt->gemm_atb(M - st->ra[x], Dp, nc - a < st->ek ? nc - a : st->ek, dS + a * Mp + st->ra[x], Mp,
                         Kp + a * Dp, Dp, dqt + st->ra[x] * Dp, Dp);
}

/* One (key tile, query block) step: St = K . Qt, P, dV, dS, dK into the
 * tile's accumulators dKa (nc, Dp) / dVa (nc, Dvp), and dqt += dS^T . Kp.
 * The block (Qt / Q2, Qr / Qp, dOt / dO2, dOr / dOp, lse, Di, lo, hi,
 * rowkey, qbad, dbad) is packed in w by the caller. Rows and keys holding
 * Inf/NaN were left out of the products' second operands and are added
 * here in fp32 where their factor is nonzero. */
static void bwd_tile(const bwd_ctx *c, const attn__sdpa_seq *sp, const bwd_bufs *wp, int64_t kvh, int64_t g0,
                     int64_t ng, int64_t r0, int64_t nr, const bwd_keys *kk, int nqbad, int ndbad) {
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_kernels *kt = c->kt;
    const attn__sdpa_seq s = *sp;
    const bwd_bufs w = *wp;
    const int64_t D = P->D, Dv = P->Dv, Dp = c->pl->Dp, Dvp = c->pl->Dvp;
    const int64_t M = nr * ng, Mp = attn__round16(M), h0 = kvh * P->G + g0;
    bwd_keys kv;
    int32_t kvbad[ATTN__SDPA_BC_MAX];
    block_keys(P, w.lo, w.hi, nr, kk, Dp, Dvp, &kv, kvbad);
    kk = &kv;
    const int64_t j0 = kk->j0, nc = kk->nc;
    float *dKa = kk->dKa, *dVa = kk->dVa;
    const void *Kp = kk->Kp;
    const int32_t *bad = kk->bad;
    const int nbad = kk->nbad;
    float tmp[256]; /* one widened row (D, Dv <= 256) */

    attn__sdpa_stair st;
    const int edge = w.lo[nr - 1] > j0 || w.hi[0] < j0 + nc;
    attn__sdpa_stair_make(kt->blk.edge_keys, edge && !P->bf16 && !P->has_elem && P->dropout_p == 0.0f, nr, ng, w.lo,
                          w.hi, j0, nc, Mp, &st);
    if (st.ek) stair_key_product(kt, &st, (const float *)kk->Kc, kk->ldk, D, w.Qt, nc, Mp, w.St);
    else tile_scores(P, kt, &w, kk->Kc, kk->ldk, nc, Mp, w.St);
    const float sc = attn__sdpa_tile_elem(P, &s, kvh, g0, ng, r0, nr, w.lo, w.hi, j0, nc, Mp, w.St,
                                          P->softcap > 0.0f ? w.Tt : NULL);
    kt->bwd_probs(nc, Mp, w.St, sc, w.lse, w.lsel);
    float *Pd = w.St;
    if (P->dropout_p > 0.0f) {
        attn__sdpa_apply_dropout(P, w.rowkey, M, j0, nc, Mp, w.St, w.X);
        Pd = w.X;
    }
    if (st.ek) stair_row_product(kt, &st, Pd, nc, M, Mp, w.dOr, dVa, Dvp);
    else tile_dv(P, kt, &w, Pd, nc, M, Mp, dVa);
    for (int x = 0; x < ndbad; x++) {
        const int64_t m = w.dbad[x];
        const float *dor = row_f32(P, kt, P->dO, &s, s.q0, r0 + m / ng, h0 + m % ng, Dv, tmp);
        for (int64_t cc = 0; cc < nc; cc++) {
            const float pd = Pd[cc * Mp + m];
            if (pd == 0.0f) continue;
            for (int64_t e = 0; e < Dv; e++) dVa[cc * Dvp + e] += pd * dor[e];
        }
    }
    if (st.ek) stair_key_product(kt, &st, (const float *)kk->Vc, kk->ldv, Dv, w.dOt, nc, Mp, w.dPt);
    else tile_dp(P, kt, &w, kk->Vc, kk->ldv, nc, Mp, w.dPt);
    tile_ds(P, kt, &w, nc, Mp);
    if (st.ek) {
        stair_row_product(kt, &st, w.dPt, nc, M, Mp, w.Qr, dKa, Dp);
        stair_dq(kt, &st, w.dPt, nc, M, Mp, (const float *)Kp, Dp, w.dqt);
    } else {
        tile_dk_dq(P, kt, &w, nc, M, Mp, dKa, Kp);
    }
    for (int x = 0; x < nqbad; x++) {
        const int64_t m = w.qbad[x];
        const float *qr = row_f32(P, kt, P->q, &s, s.q0, r0 + m / ng, h0 + m % ng, D, tmp);
        for (int64_t cc = 0; cc < nc; cc++) {
            const float ds = w.dPt[cc * Mp + m];
            if (ds == 0.0f) continue;
            for (int64_t d = 0; d < D; d++) dKa[cc * Dp + d] += ds * qr[d];
        }
    }
    for (int x = 0; x < nbad; x++) {
        const int64_t cc = bad[x];
        const float *kr = key_f32(P, kt, P->k, &s, kvh, j0 + cc, D, tmp);
        for (int64_t m = 0; m < M; m++) {
            const float ds = w.dPt[cc * Mp + m];
            if (ds == 0.0f) continue;
            float *dst = w.dqt + m * Dp;
            for (int64_t d = 0; d < D; d++) dst[d] += ds * kr[d];
        }
    }
}

/* Query-block packing of one operand, q or dO (rows w->xr, NULL for
 * padding and fully masked rows: zeros). fp32: the transposed operand T
 * (n, Mp) and the rows R (M, ldr), zero-padded. bf16: the pairs along the
 * row T2 (n/2, Mp) and, R2 (Mp/2, ldr), the pairs of rows (m & ~1, m | 1);
 * R / R2 NULL: not packed. Rows holding Inf/NaN are listed in bad (returns
 * their number). */
static int pack_operand(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const bwd_bufs *w, int64_t n,
                        int64_t M, int64_t Mp, float *T, uint32_t *T2, float *R, uint32_t *R2, int64_t ldr,
                        int32_t *bad) {
    if (P->bf16) return kt->pack_qblock(Mp, Mp, n, 2, w->xr, T2, R2, ldr, bad);
    return kt->pack_qblock(Mp, M, n, 4, w->xr, T, R, ldr, bad);
}
/* Zeroes row m of the row operand (R / R2) only: a row holding Inf/NaN. */
static void zero_row(const attn__sdpa_prob *P, int64_t m, int64_t n, float *R, uint32_t *R2, int64_t ldr) {
    if (!P->bf16) {
        for (int64_t d = 0; d < n; d++) R[m * ldr + d] = 0.0f;
        return;
    }
    uint16_t *r = (uint16_t *)(void *)(R2 + (m / 2) * ldr) + (m & 1);
    for (int64_t d = 0; d < n; d++) r[2 * d] = 0;
}
static const void *in_row(const attn__sdpa_prob *P, attn_view v, const attn__sdpa_seq *s, int64_t i, int64_t h) {
    return P->bf16 ? (const void *)attn__sdpa_at16(v, s, s->q0, i, h) : (const void *)attn__sdpa_at(v, s, s->q0, i, h);
}

/* <dO_i, o_i> (bwd_fast's and refine_task's Di = <dO, o>), dO widened in the
 * bf16 fast path (o is fp32 there). */
static float row_di(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const attn__sdpa_seq *s, int64_t i,
                    int64_t h) {
    float tmp[256];
    return kt->dot(P->Dv, row_f32(P, kt, P->dO, s, s->q0, i, h, P->Dv, tmp), attn__sdpa_at(P->o, s, s->q0, i, h));
}

/* Packs the query block (rows r0.., ng heads from h0; M rows, Mp padded) for
 * bwd_tile: q and dO operands, lse, row statistics, dropout keys. Fully
 * masked rows (lse = -inf) are zeroed: they contribute nothing whatever q /
 * dO hold. Rows whose q or dO hold Inf/NaN are zeroed in the row operands
 * (Qr / Qp, dOr / dOp: of dK / dV) and listed in qbad / dbad, so bwd_tile
 * adds them only where dS / P is nonzero and they cannot leak into masked
 * keys. */
static void pack_block(const bwd_ctx *c, const attn__sdpa_seq *s, const bwd_bufs *wp, int64_t h0, int64_t ng,
                       int64_t r0, int64_t M, int64_t Mp, int *nqbad, int *ndbad) {
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_kernels *kt = c->kt;
    const bwd_bufs w = *wp;
    const int64_t D = P->D, Dv = P->Dv, Dp = c->pl->Dp, Dvp = c->pl->Dvp;
    for (int64_t m = 0; m < Mp; m++) {
        const int64_t i = r0 + m / ng, h = h0 + m % ng;
        const int64_t li = m < M ? attn__sdpa_lse_idx(P, s, h, i) : 0;
        const float l = m < M ? P->lse_in[li] : -INFINITY;
        const int live = l != -INFINITY;
        w.lse[m] = l;
        w.lsel[m] = w.Di[m] = w.Dil[m] = 0.0f;
        w.xr[m] = live ? in_row(P, P->q, s, i, h) : NULL;
        /* dead rows' P is 0 whatever their dropout mask; their key is defined all the same */
        if (P->dropout_p > 0.0f) w.rowkey[m] = live ? attn__dropout_row_key(P->seed, s->b, h, i) : 0;
        if (!live) continue;
        if (P->bwd_fast) { /* Di = <dO, o>, P = exp(s - lse) */
            w.Di[m] = row_di(P, c->kt, s, i, h);
        } else {
            w.Di[m] = c->dih[li];
            w.Dil[m] = c->dil[li];
            w.lsel[m] = c->lsel[li];
        }
    }
    /* fp32 Qr / dOr hold the M rows only; bf16 Qp / dOp all Mp (pairs) */
    *nqbad = pack_operand(P, kt, &w, D, M, Mp, w.Qt, w.Q2, w.Qr, w.Qp, Dp, w.qbad);
    for (int64_t m = 0; m < Mp; m++)
        if (w.xr[m]) w.xr[m] = in_row(P, P->dO, s, r0 + m / ng, h0 + m % ng);
    *ndbad = pack_operand(P, kt, &w, Dv, M, Mp, w.dOt, w.dO2, w.dOr, w.dOp, Dvp, w.dbad);
    for (int x = 0; x < *nqbad; x++) zero_row(P, w.qbad[x], D, w.Qr, w.Qp, Dp);
    for (int x = 0; x < *ndbad; x++) zero_row(P, w.dbad[x], Dv, w.dOr, w.dOp, Dvp);
}

/* Software prefetch of the block (positions r0.., nr of them; heads h0..,
 * ng of them) while the block before it computes: q and dO rows (a
 * position's heads are D apart, positions a page or more) reach the packing
 * from memory otherwise, one miss per line. */
static void prefetch_block(const bwd_ctx *c, const attn__sdpa_seq *s, int64_t h0, int64_t ng, int64_t r0,
                           int64_t nr) {
    const attn__sdpa_prob *P = c->P;
    for (int64_t g = 0; g < ng; g++) {
        if (P->bf16) {
            attn__prefetch_rows16(attn__sdpa_at16(P->q, s, s->q0, r0, h0 + g), P->q.stride_s, nr, P->D);
            attn__prefetch_rows16(attn__sdpa_at16(P->dO, s, s->q0, r0, h0 + g), P->dO.stride_s, nr, P->Dv);
        } else {
            attn__prefetch_rows(attn__sdpa_at(P->q, s, s->q0, r0, h0 + g), P->q.stride_s, nr, P->D);
            attn__prefetch_rows(attn__sdpa_at(P->dO, s, s->q0, r0, h0 + g), P->dO.stride_s, nr, P->Dv);
        }
    }
}
/* The same for the block's dq rows (chunk ch), written when its tiles are done. */
static void prefetch_dq(const bwd_ctx *c, const attn__sdpa_seq *s, int64_t ch, int64_t h0, int64_t ng, int64_t r0,
                        int64_t nr) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t g = 0; g < ng; g++) {
            const float *p = dq_row(c, s, ch, r0 + r, h0 + g);
            for (int64_t d = 0; d < c->P->D; d += 16) __builtin_prefetch(p + d, 1, 3);
        }
}

/* dst[0:n] += src[0:n] (16 at a time: vectorised by the compiler). */
static void add_row(float *restrict dst, const float *restrict src, int64_t n) {
    int64_t d = 0;
    for (; d + 16 <= n; d += 16)
        for (int e = 0; e < 16; e++) dst[d + e] += src[d + e];
    for (; d < n; d++) dst[d] += src[d];
}

/* Does a key tile whose visible rows are [ia, ib) see any of the rows
 * [r0, r0 + nr)? */
static inline int tile_sees(int64_t ia, int64_t ib, int64_t r0, int64_t nr) {
    return ia < ib && r0 < ib && r0 + nr > ia;
}

/* nr rows of n elements of esz bytes (stride lds elements) copied to dst,
 * n apart; returns dst. */
static const void *copy_rows(int64_t nr, int64_t n, size_t esz, const void *src, int64_t lds, void *dst) {
    for (int64_t r = 0; r < nr; r++)
        memcpy((unsigned char *)dst + (size_t)(r * n) * esz, (const unsigned char *)src + (size_t)(r * lds) * esz,
               (size_t)n * esz);
    return dst;
}

/* The key tiles [J0, J1) of a group (nt of them) for bwd_tile: row ranges,
 * accumulators, K packed for dq (fp32 Kp / bf16 key pairs Kp2; rows holding
 * Inf/NaN zeroed there, added by bwd_tile only where dS != 0) and K / V
 * rows copied for the score-shaped products (contiguous rows instead of one
 * a page apart, re-read by every query block; fp32 K: Kp itself when clean).
 * *ua, *ub: the union of the rows seeing any of them. */
static void pack_group(const bwd_ctx *c, const attn__sdpa_seq *s, const bwd_bufs *w, int64_t kvh, int64_t J0,
                       int64_t J1, int64_t nt, bwd_keys *kk, int64_t *ua, int64_t *ub) {
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_kernels *kt = c->kt;
    const int64_t D = P->D, Dv = P->Dv, Dp = c->pl->Dp, Dvp = c->pl->Dvp, Bc = c->pl->Bc;
    *ua = s->sq;
    *ub = 0;
    for (int64_t ti = 0; ti < nt; ti++) {
        bwd_keys *k = &kk[ti];
        memset(k, 0, sizeof *k);
        k->j0 = J0 + ti * Bc;
        k->nc = J1 - k->j0 < Bc ? J1 - k->j0 : Bc;
        k->dKa = w->dKa + ti * Bc * Dp;
        k->dVa = w->dVa + ti * Bc * Dvp;
        k->bad = w->bad + ti * Bc;
        if (k->j0 < s->kl) {
            k->ia = first_row_hi_gt(P, s, k->j0);
            k->ib = first_row_lo_ge(P, s, k->j0 + k->nc);
        }
        if (k->ia >= k->ib) continue;
        if (P->bf16) {
            uint32_t *k2 = w->Kp2 + ti * (Bc / 2) * Dp;
            k->nbad = kt->pack_v_bf16(k->nc, D, attn__sdpa_at16(P->k, s, s->k0, k->j0, kvh), P->k.stride_s,
                                      (uint16_t *)(void *)k2, Dp, w->bad + ti * Bc);
            k->Kp = k2;
            k->Kc = copy_rows(k->nc, D, 2, attn__sdpa_at16(P->k, s, s->k0, k->j0, kvh), P->k.stride_s,
                              w->Kc16 + ti * Bc * D);
            k->Vc = copy_rows(k->nc, Dv, 2, attn__sdpa_at16(P->v, s, s->k0, k->j0, kvh), P->v.stride_s,
                              w->Vc16 + ti * Bc * Dv);
        } else {
            float *kp = w->Kp + ti * Bc * Dp;
            k->nbad = kt->pack_rows(k->nc, D, attn__sdpa_at(P->k, s, s->k0, k->j0, kvh), P->k.stride_s, 1.0f, kp,
                                    Dp, Dp, w->bad + ti * Bc);
            k->Kp = kp;
            k->Kc = k->nbad ? (const void *)attn__sdpa_at(P->k, s, s->k0, k->j0, kvh) : (const void *)kp;
            k->Vc = copy_rows(k->nc, Dv, 4, attn__sdpa_at(P->v, s, s->k0, k->j0, kvh), P->v.stride_s,
                              w->Vp + ti * Bc * Dv);
        }
        k->ldk = P->bf16 ? D : k->nbad ? P->k.stride_s : Dp;
        k->ldv = Dv;
        if (k->ia < *ua) *ua = k->ia;
        if (k->ib > *ub) *ub = k->ib;
    }
}

static void bwd_task(void *vctx, int64_t t, int tid) {
    const bwd_ctx *c = vctx;
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_plan *pl = c->pl;
    const int64_t nch = pl->nchunks;
    const int64_t ch = t % nch;
    const int64_t kvh = (t / nch) % P->Hkv;
    const int64_t b = t / (nch * P->Hkv);
    attn__sdpa_seq s;
    attn__sdpa_seq_get(P, b, &s);
    const int64_t D = P->D, Dv = P->Dv, Dp = pl->Dp, Dvp = pl->Dvp, Bc = pl->Bc, G = P->G;
    bwd_bufs w;
    bwd_bufs_get(P, pl, c->ws + pl->global_bytes + (size_t)tid * pl->thread_bytes, &w);

    /* zero this task's dq accumulator (all rows of the group's heads) */
    for (int64_t i = 0; i < s.sq; i++)
        for (int64_t g = 0; g < G; g++) memset(dq_row(c, &s, ch, i, kvh * G + g), 0, (size_t)D * sizeof(float));

    const int64_t nkb = attn__ceil_div(s.sk, Bc);
    const int64_t kb0 = ch * nkb / nch, kb1 = (ch + 1) * nkb / nch;

    const int64_t KT = pl->KT;
    for (int64_t kbs = kb0; kbs < kb1; kbs += KT) {
        /* a group of nt key tiles [J0, J1): each query block is packed once
         * per group and its dq contribution summed over the group's tiles */
        const int64_t nt = kb1 - kbs < KT ? kb1 - kbs : KT;
        const int64_t J0 = kbs * Bc, J1 = (kbs + nt) * Bc < s.sk ? (kbs + nt) * Bc : s.sk;
        memset(w.dKa, 0, (size_t)((J1 - J0) * Dp) * sizeof(float));
        memset(w.dVa, 0, (size_t)((J1 - J0) * Dvp) * sizeof(float));
        bwd_keys kk[ATTN__SDPA_BWD_TILES_MAX];
        int64_t ua, ub; /* union of the tiles' row ranges */
        pack_group(c, &s, &w, kvh, J0, J1, nt, kk, &ua, &ub);
        for (int64_t hc = 0; hc < pl->nhc && ua < ub; hc++) {
            const int64_t g0 = hc * pl->Gs;
            const int64_t ng = G - g0 < pl->Gs ? G - g0 : pl->Gs;
            const int64_t h0 = kvh * G + g0;
            for (int64_t r0 = ua; r0 < ub; r0 += pl->Br) {
                const int64_t nr = ub - r0 < pl->Br ? ub - r0 : pl->Br;
                const int64_t M = nr * ng, Mp = attn__round16(M);
                int seen = 0;
                for (int64_t ti = 0; ti < nt; ti++) seen |= tile_sees(kk[ti].ia, kk[ti].ib, r0, nr);
                if (!seen) continue;
                for (int64_t r = 0; r < nr; r++) attn__sdpa_row_range(P, &s, r0 + r, &w.lo[r], &w.hi[r]);
                int nqbad, ndbad;
                pack_block(c, &s, &w, h0, ng, r0, M, Mp, &nqbad, &ndbad);
                prefetch_dq(c, &s, ch, h0, ng, r0, nr);
                if (r0 + nr < ub) prefetch_block(c, &s, h0, ng, r0 + nr, ub - r0 - nr < pl->Br ? ub - r0 - nr : pl->Br);
                /* dqt (M, Dp): dq contribution of this block over the group's tiles */
                memset(w.dqt, 0, (size_t)(M * Dp) * sizeof(float));
                for (int64_t ti = 0; ti < nt; ti++)
                    if (tile_sees(kk[ti].ia, kk[ti].ib, r0, nr)) bwd_tile(c, &s, &w, kvh, g0, ng, r0, nr, &kk[ti], nqbad, ndbad);
                for (int64_t m = 0; m < M; m++) add_row(dq_row(c, &s, ch, r0 + m / ng, h0 + m % ng), w.dqt + m * Dp, D);
            }
        }
        for (int64_t cc = 0; cc < J1 - J0; cc++) {
            float *dkr = attn__sdpa_at(P->dk, &s, s.k0, J0 + cc, kvh);
            float *dvr = attn__sdpa_at(P->dv, &s, s.k0, J0 + cc, kvh);
            memcpy(dkr, w.dKa + cc * Dp, (size_t)D * sizeof(float));
            memcpy(dvr, w.dVa + cc * Dvp, (size_t)Dv * sizeof(float));
        }
    }
}

/* Row statistics of the backward (the pass before the backward proper).
 *
 * 1. The log-sum-exp. The forward saves lse = m + log(l) rounded to fp32:
 *    with |lse| large that rounding (half an ulp of lse, 6e-8 |lse|) is an
 *    error in the exponent of every recomputed probability, far larger than
 *    naive fp32's, whose dominant probabilities exp(s - m) / l carry none of
 *    it. With the backward's own logits (the packing, gemm_ab, scale and
 *    per-element work of bwd_tile, so the same bits) and exp this pass sums
 *      c_i = sum_j e_ij,  e_ij = exp(s_ij - lse_i)     (~= 1; in double)
 *    and stores lsel_i = log(c_i): bwd_tile's P = exp((s - lse) - lsel)
 *    sums to 1 within the exp's rounding, as naive fp32 does.
 * 2. Di = sum_j P_ij dP_ij (dP = <dO_i, v_j>, times the dropout factor),
 *    summed in double from the same dP bits as bwd_tile (its gemm_ab) and
 *    stored as a float pair. The usual Di = <dO, o> carries o's rounding
 *    (half an ulp per element), which in a peaked row (one P_j ~ 1) is of
 *    the order of dP_j - Di itself, the quantity dS is made of; with the
 *    pair, dP_j - Di is exact where it cancels.
 * One visible key: c = 1, lsel = 0, Di = dP exactly, so P = 1 and dS = 0.
 * Task = (sequence b, kv head, head chunk, query block). */

/* Packs the block's rows (as bwd_task packs them): the transposed q
 * operand (Qt or, bf16, Q2), lse, dropout row keys; zeros / -inf for fully
 * masked rows and padding. */
static void refine_pack(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const attn__sdpa_seq *s,
                        const bwd_bufs *w, int64_t h0, int64_t ng, int64_t r0, int64_t M, int64_t Mp) {
    for (int64_t m = 0; m < Mp; m++) {
        const int64_t i = r0 + m / ng, h = h0 + m % ng;
        w->lse[m] = m < M ? P->lse_in[attn__sdpa_lse_idx(P, s, h, i)] : -INFINITY;
        const int live = w->lse[m] != -INFINITY;
        w->xr[m] = live ? in_row(P, P->q, s, i, h) : NULL;
        w->Dil[m] = 0.0f; /* lsel = 0: e = exp(s - lse) */
        if (P->dropout_p > 0.0f) w->rowkey[m] = live ? attn__dropout_row_key(P->seed, s->b, h, i) : 0;
    }
    pack_operand(P, kt, w, P->D, M, Mp, w->Qt, w->Q2, NULL, NULL, 0, w->qbad);
}
/* The transposed dO operand (dOt / dO2) of the block refine_pack packed:
 * only peaked blocks take the V . dO^T product. */
static void refine_pack_do(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const attn__sdpa_seq *s,
                           const bwd_bufs *w, int64_t h0, int64_t ng, int64_t r0, int64_t M, int64_t Mp) {
    for (int64_t m = 0; m < Mp; m++)
        if (w->xr[m]) w->xr[m] = in_row(P, P->dO, s, r0 + m / ng, h0 + m % ng);
    pack_operand(P, kt, w, P->Dv, M, Mp, w->dOt, w->dO2, NULL, NULL, 0, w->dbad);
}

/* e (nc, Mp) = exp(scale K . Qt (+ masks) - lse) of key tile j0, as bwd_tile's St. */
static void refine_probs(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const attn__sdpa_seq *s,
                         const bwd_bufs *w, int64_t kvh, int64_t g0, int64_t ng, int64_t r0, int64_t nr, int64_t j0,
                         int64_t nc, int64_t Mp) {
    tile_scores(P, kt, w, key_ptr(P, P->k, s, kvh, j0), P->k.stride_s, nc, Mp, w->St);
    const float sc = attn__sdpa_tile_elem(P, s, kvh, g0, ng, r0, nr, w->lo, w->hi, j0, nc, Mp, w->St, NULL);
    kt->bwd_probs(nc, Mp, w->St, sc, w->lse, w->Dil);
}

/* Peaked rows: a probability above this makes dP_j - Di cancel (dS_j is
 * then (1 - P_j) times smaller than the terms of Di), so Di is summed from
 * the probabilities; in the other blocks Di = <dO, o> is as accurate as a
 * naive computation's and costs no V . dO^T product. */
#define REFINE_PEAK 0.5f

/* With the forward's row statistics (opts.row_stats): a block none of whose
 * rows is peaked takes lsel from them (the forward's m + log(l) - lse: its
 * running sum of the same logits' exps, in fp32 as a naive softmax's) and
 * Di = <dO, o>, recomputing no logits. Returns 0 for a peaked block, which
 * takes the pass below (without its first half: see refine_task). */
static int refine_from_stats(const bwd_ctx *c, const attn__sdpa_seq *s, int64_t h0, int64_t ng, int64_t r0,
                             int64_t M) {
    const attn__sdpa_prob *P = c->P;
    for (int64_t m = 0; m < M; m++)
        if (P->row_stats[2 * attn__sdpa_lse_idx(P, s, h0 + m % ng, r0 + m / ng) + 1] > REFINE_PEAK) return 0;
    for (int64_t m = 0; m < M; m++) {
        const int64_t i = r0 + m / ng, h = h0 + m % ng, li = attn__sdpa_lse_idx(P, s, h, i);
        const int live = P->lse_in[li] != -INFINITY;
        c->lsel[li] = live ? P->row_stats[2 * li] : 0.0f;
        c->dih[li] = live ? row_di(P, c->kt, s, i, h) : 0.0f;
        c->dil[li] = 0.0f;
    }
    return 1;
}

static void refine_task(void *vctx, int64_t t, int tid) {
    const bwd_ctx *c = vctx;
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_plan *pl = c->pl;
    const attn__sdpa_kernels *kt = c->kt;
    const int64_t qb = t % pl->nqb, hc = (t / pl->nqb) % pl->nhc;
    const int64_t kvh = (t / (pl->nqb * pl->nhc)) % P->Hkv, b = t / (pl->nqb * pl->nhc * P->Hkv);
    attn__sdpa_seq s;
    attn__sdpa_seq_get(P, b, &s);
    const int64_t r0 = qb * pl->Br;
    if (r0 >= s.sq) return;
    const int64_t nr = s.sq - r0 < pl->Br ? s.sq - r0 : pl->Br;
    const int64_t g0 = hc * pl->Gs, ng = P->G - g0 < pl->Gs ? P->G - g0 : pl->Gs;
    const int64_t M = nr * ng, Mp = attn__round16(M), h0 = kvh * P->G + g0, Bc = pl->Bc;
    const int stats = P->row_stats != NULL;
    if (stats && refine_from_stats(c, &s, h0, ng, r0, M)) return;
    bwd_bufs w;
    bwd_bufs_get(P, pl, c->ws + pl->global_bytes + (size_t)tid * pl->thread_bytes, &w);
    /* (Mp) each: sum_j e_ij, sum_j e_ij dP_ij, scratch; emax (Mp) in w.Di */
    double *csum = w.rs, *dsum = w.rs + Mp, *cscr = w.rs + 2 * Mp;
    for (int64_t m = 0; m < Mp; m++) { csum[m] = dsum[m] = cscr[m] = 0.0; w.Di[m] = 0.0f; }
    for (int64_t r = 0; r < nr; r++) attn__sdpa_row_range(P, &s, r0 + r, &w.lo[r], &w.hi[r]);
    refine_pack(P, kt, &s, &w, h0, ng, r0, M, Mp);
    const int64_t ka = w.lo[0], kb = w.hi[nr - 1];
    /* 1. c_i and the largest probability of each row (with row statistics
     * the block is known to be peaked, and 2. sums c_i: the same bits) */
    for (int64_t j0 = ka; !stats && j0 < kb; j0 += Bc) {
        const int64_t nc = kb - j0 < Bc ? kb - j0 : Bc;
        refine_probs(P, kt, &s, &w, kvh, g0, ng, r0, nr, j0, nc, Mp);
        kt->row_sums(nc, Mp, w.St, NULL, csum, NULL, w.Di);
    }
    int peaked = stats;
    for (int64_t m = 0; m < M; m++) peaked |= w.Di[m] > REFINE_PEAK;
    if (peaked) refine_pack_do(P, kt, &s, &w, h0, ng, r0, M, Mp);
    /* 2. peaked block: Di = sum_j e_ij dP_ij / c_i from bwd_tile's dP bits */
    for (int64_t j0 = ka; peaked && j0 < kb; j0 += Bc) {
        const int64_t nc = kb - j0 < Bc ? kb - j0 : Bc;
        refine_probs(P, kt, &s, &w, kvh, g0, ng, r0, nr, j0, nc, Mp);
        tile_dp(P, kt, &w, key_ptr(P, P->v, &s, kvh, j0), P->v.stride_s, nc, Mp, w.dPt);
        if (P->dropout_p > 0.0f) /* dP z: z = 1 / (1 - p) for kept keys, 0 for dropped (bwd_tile's z * dP) */
            for (int64_t cc = 0; cc < nc; cc++)
                for (int64_t m = 0; m < M; m++) {
                    float *dp = &w.dPt[cc * Mp + m];
                    *dp = attn__dropout_keep(w.rowkey[m], j0 + cc, P->drop_thr) ? P->drop_scale * *dp : 0.0f;
                }
        kt->row_sums(nc, Mp, w.St, w.dPt, stats ? csum : cscr, dsum, NULL);
    }
    for (int64_t m = 0; m < M; m++) {
        const int64_t i = r0 + m / ng, h = h0 + m % ng, li = attn__sdpa_lse_idx(P, &s, h, i);
        const double cs = csum[m];
        /* NaN (NaN inputs) propagates; a row without keys keeps 0 */
        c->lsel[li] = w.lse[m] == -INFINITY || cs == 0.0 ? 0.0f : (float)log(cs);
        if (peaked) {
            const double di = cs > 0.0 ? dsum[m] / cs : 0.0;
            c->dih[li] = (float)di;
            c->dil[li] = (float)(di - (double)c->dih[li]);
        } else { /* Di = <dO, o> */
            c->dih[li] = w.lse[m] == -INFINITY ? 0.0f : row_di(P, kt, &s, i, h);
            c->dil[li] = 0.0f;
        }
    }
}

/* dq += partials (chunk order), over blocks of 64 packed rows. */
static void bwd_reduce(void *vctx, int64_t t, int tid) {
    const bwd_ctx *c = vctx;
    const attn__sdpa_prob *P = c->P;
    const int64_t rows = P->varlen ? P->Sq : P->B * P->Sq;
    const int64_t a = t * 64, e = a + 64 < rows ? a + 64 : rows;
    for (int64_t row = a; row < e; row++) {
        float *dst0;
        for (int64_t h = 0; h < P->Hq; h++) {
            if (P->varlen) dst0 = P->dq.data + row * P->dq.stride_s + h * P->dq.stride_h;
            else dst0 = P->dq.data + (row / P->Sq) * P->dq.stride_b + (row % P->Sq) * P->dq.stride_s + h * P->dq.stride_h;
            for (int64_t ch = 1; ch < c->pl->nchunks; ch++) {
                const float *src = c->dqp + (((ch - 1) * rows + row) * P->Hq + h) * P->D;
                for (int64_t d = 0; d < P->D; d++) dst0[d] += src[d];
            }
        }
    }
    (void)tid;
}

/* Zero dq rows / dk dv rows no task visits (none in this design: every
 * (b, kv head) pair is a task covering all its rows and keys). */
void attn__sdpa_bwd_run(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const attn__sdpa_kernels *kt,
                        unsigned char *ws) {
    bwd_ctx c;
    c.P = P;
    c.pl = pl;
    c.kt = kt;
    c.ws = ws;
    c.dqp = pl->nchunks > 1 ? (float *)ws : NULL;
    const size_t nl = attn__round_up((size_t)attn__sdpa_nlse(P) * sizeof(float));
    c.lsel = (float *)(ws + pl->global_bytes - 3 * nl);
    c.dih = (float *)(ws + pl->global_bytes - 2 * nl);
    c.dil = (float *)(ws + pl->global_bytes - nl);
    if (!P->bwd_fast) attn__parallel_for(P->B * P->Hkv * pl->nhc * pl->nqb, pl->nthreads, refine_task, &c);
    attn__parallel_for(P->B * P->Hkv * pl->nchunks, pl->nthreads, bwd_task, &c);
    if (pl->nchunks > 1) {
        const int64_t rows = P->varlen ? P->Sq : P->B * P->Sq;
        attn__parallel_for(attn__ceil_div(rows, 64), pl->nthreads, bwd_reduce, &c);
    }
}
