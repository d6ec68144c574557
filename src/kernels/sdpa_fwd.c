/* SPDX-License-Identifier: MIT */
/* sdpa_fwd.c — tiled FlashAttention-2 forward.
 *
 * Task = (sequence b, query block, kv head, head chunk[, key split]). A query
 * block holds ng heads of one kv group x nr positions: M = nr * ng rows
 * (row m = r * ng + g), so each K/V tile is read once for the whole group.
 * For each key tile the task computes St = K_tile . Qt (transposed scores),
 * applies masks, runs the online softmax (running max m, sum l; O rescaled
 * only when a max changes), and accumulates O += St^T . V_tile.
 *
 * Tiles outside the union of the rows' visible intervals are never visited;
 * tiles inside every row's interval need no per-element mask work (unless
 * softcap / ALiBi / an explicit mask is on).
 *
 * Key splits (flash-decoding, when there are few tasks): split s of a task
 * handles a fixed key range and stores its unnormalised (m, l, O) in the
 * workspace; a second pass combines splits in order s = 0, 1, ... Splits are
 * the outermost task index, so consecutive tasks read the same key range of
 * different kv heads (whose rows share pages in (B, S, H, D) layouts).
 *
 * Blocks of at most ATTN__SDPA_DOT_ROWS rows (decoding) take the scores as
 * dot products along D from packed query rows (gemm_abt) into 8-column tiles
 * instead of the transposed block (gemm_ab broadcasts K against >= 16
 * columns) and read a V tile in place when it holds no Inf/NaN; they
 * prefetch the next tile's K and V rows into L2 in shares between their
 * score and P.V kernel calls of a few keys (pf_queue.h). */
#include "kernels/sdpa_internal.h"
#include "kernels/dropout.h"
#include "kernels/pf_queue.h"
#include "io/half.h"

typedef struct fwd_ctx {
    const attn__sdpa_prob *P;
    const attn__sdpa_plan *pl;
    const attn__sdpa_kernels *kt;
    unsigned char *ws;
    float *partials;        /* (ntasks0, nsplit, M * Dvp + 2 * Mp) when nsplit > 1 */
    const int64_t *prefix;  /* varlen: (B + 1) prefix sums of query blocks per sequence */
    int64_t nbq;            /* total (b, q block) pairs */
    int64_t ntasks0;        /* tasks without key splits: nbq * Hkv * nhc */
} fwd_ctx;

static size_t fl(int64_t n) { return attn__round_up((size_t)n * sizeof(float)); }

/* Per-thread buffers of the forward. */
typedef struct fwd_bufs {
    float *Qt;       /* (D, Mp)  q, transposed, zero-padded rows */
    float *Qr;       /* (ATTN__SDPA_DOT_ROWS, Dp) q rows, zero-padded (blocks of M <= that many rows) */
    float *St;       /* (Bc, Mp) scores -> probabilities */
    float *Vp;       /* (Bc, Dvp) packed V tile, zero-padded columns */
    float *O;        /* (M, Dvp) unnormalised output accumulator */
    float *mrow, *lrow, *alpha; /* (Mp) each */
    int64_t *lo, *hi;           /* (Br) each */
    uint64_t *rowkey;           /* (Mp) dropout row keys */
    int32_t *bad;               /* (Bc) key rows of the tile holding Inf/NaN */
    /* bf16 fast path: Q2 (D/2, Mp) q pairs in Qt's place, V2 (Bc/2, Dvp)
     * V pairs in Vp's place, and: */
    uint16_t *P2;               /* (Bc/2, Mp) probability pairs, rounded to bf16 */
    float *orow;                /* (Dvp) one output row before conversion (typed o) */
} fwd_bufs;

/* Carves one thread's area (base NULL: counts); returns its bytes. */
static size_t fwd_bufs_get(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, unsigned char *base, fwd_bufs *b) {
    const int64_t Mp = pl->Mp, Bc = pl->Bc;
    attn__carver c = {base, 0};
    const size_t F = sizeof(float);
    b->Qt = attn__carve(&c, (size_t)(P->D * Mp) * F);
    b->Qr = attn__carve(&c, (size_t)(ATTN__SDPA_DOT_ROWS * pl->Dp) * F);
    b->St = attn__carve(&c, (size_t)(Bc * Mp) * F);
    b->Vp = attn__carve(&c, (size_t)(Bc * pl->Dvp) * F);
    b->O = attn__carve(&c, (size_t)(pl->Mmax * pl->Dvp) * F);
    b->mrow = attn__carve(&c, (size_t)Mp * F);
    b->lrow = attn__carve(&c, (size_t)Mp * F);
    b->alpha = attn__carve(&c, (size_t)Mp * F);
    b->lo = attn__carve(&c, (size_t)pl->Br * sizeof(int64_t));
    b->hi = attn__carve(&c, (size_t)pl->Br * sizeof(int64_t));
    b->rowkey = attn__carve(&c, (size_t)Mp * sizeof(uint64_t));
    b->bad = attn__carve(&c, (size_t)Bc * sizeof(int32_t));
    b->P2 = attn__carve(&c, (size_t)(Bc * Mp) * sizeof(uint16_t));
    b->orow = attn__carve(&c, (size_t)pl->Dvp * F);
    return c.off;
}

size_t attn__sdpa_fwd_thread_bytes(const attn__sdpa_prob *P, const attn__sdpa_plan *pl) {
    fwd_bufs b;
    return fwd_bufs_get(P, pl, NULL, &b);
}

/* Writes output row o = src * inv (Dv elements) in o's type. */
static void store_o_row(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, const attn__sdpa_seq *s, int64_t i,
                        int64_t h, const float *src, float inv, float *tmp) {
    const int64_t Dv = P->Dv;
    if (P->ot == ATTN_DTYPE_F32) {
        float *orow = attn__sdpa_at(P->o, s, s->q0, i, h);
        for (int64_t e = 0; e < Dv; e++) orow[e] = src ? src[e] * inv : 0.0f;
        return;
    }
    for (int64_t e = 0; e < Dv; e++) tmp[e] = src ? src[e] * inv : 0.0f;
    kt->from_f32(P->ot, Dv, tmp, attn__sdpa_at16(P->o, s, s->q0, i, h));
}

/* bf16 fast path: Q2 (D/2, Mp) pairs, Q2[d2][m] = (q[m][2 d2], q[m][2 d2 + 1]),
 * columns M..Mp zero (32-bit copies of the caller's bf16 pairs). */
static void pack_q_bf16(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t r0, int64_t h0, int64_t ng,
                        int64_t M, int64_t Mp, uint32_t *Q2) {
    const int64_t D2 = P->D / 2;
    for (int64_t m = 0; m < M; m++) {
        const uint16_t *qr = attn__sdpa_at16(P->q, s, s->q0, r0 + m / ng, h0 + m % ng);
        for (int64_t d2 = 0; d2 < D2; d2++) memcpy(&Q2[d2 * Mp + m], qr + 2 * d2, 4);
    }
    for (int64_t d2 = 0; d2 < D2; d2++)
        for (int64_t m = M; m < Mp; m++) Q2[d2 * Mp + m] = 0;
}

/* O rows [m0, M) += P . V for one key tile in the bf16 fast path: P rounded to
 * bf16 pairs, V rows packed as pairs; V rows holding Inf/NaN are left out of
 * the pair product and added in fp32 only to the rows that attend to them. */
static void pv_bf16(const attn__sdpa_prob *P, const attn__sdpa_kernels *kt, fwd_bufs *w, const uint16_t *vt,
                    int64_t ldv, int64_t nc, int64_t m0, int64_t M, int64_t Mp, int64_t Dvp) {
    uint16_t *V2 = (uint16_t *)w->Vp;
    kt->pack_p_bf16(nc, Mp, w->St, w->P2);
    const int nbad = kt->pack_v_bf16(nc, P->Dv, vt, ldv, V2, Dvp, w->bad);
    kt->gemm_bf16(M - m0, Dvp, (nc + 1) / 2, w->P2 + 2 * m0, 2, 2 * Mp, V2, Dvp, w->O + m0 * Dvp, Dvp, 1);
    for (int x = 0; x < nbad; x++) {
        const int64_t cc = w->bad[x];
        const uint16_t *vr = vt + cc * ldv;
        for (int64_t m = m0; m < M; m++) {
            const float pr = w->St[cc * Mp + m];
            if (pr == 0.0f) continue;
            float *orow = w->O + m * Dvp;
            for (int64_t e = 0; e < P->Dv; e++) orow[e] += pr * attn__bits_f32((uint32_t)vr[e] << 16);
        }
    }
}

/* Writes row li's lse = m + log(l) rounded once (log and sum in double;
 * -inf when l == 0, a fully masked row; one key: m + log(1) = m exactly)
 * and, when asked for, its statistics for the backward (opts.row_stats):
 * the low part m + log(l) - lse (in double: what the
 * backward's row pass would find as log of its sum of exp(s - lse)) and the
 * largest probability exp(m - (m + log l)) = 1 / l. Fully masked rows: 0, 0. */
static void store_lse(const attn__sdpa_prob *P, int64_t li, float m, float l) {
    const int live = l != 0.0f; /* NaN stays (propagates as the backward's own pass would) */
    const double full = live ? (double)m + log((double)l) : 0.0;
    const float lse = live ? (float)full : -INFINITY;
    P->lse_out[li] = lse;
    if (!P->row_stats) return;
    P->row_stats[2 * li] = live ? (float)(full - (double)lse) : 0.0f;
    P->row_stats[2 * li + 1] = live ? 1.0f / l : 0.0f;
}

/* Maps a (b, q block) index (heaviest blocks first) to b and the block. */
static void bq_decode(const fwd_ctx *c, int64_t u, int64_t *b, int64_t *qb) {
    const attn__sdpa_prob *P = c->P;
    if (!P->varlen) {
        *qb = c->pl->nqb - 1 - u / P->B;
        *b = u % P->B;
        return;
    }
    int64_t idx = c->nbq - 1 - u; /* binary search: prefix[b] <= idx < prefix[b+1] */
    int64_t lo = 0, hi = P->B;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (c->prefix[mid] <= idx) lo = mid;
        else hi = mid;
    }
    *b = lo;
    *qb = idx - c->prefix[lo];
}

/* Task t0 (without split) -> sequence b, query block qb, kv head, head chunk.
 * Several query blocks per head: the head is the outer index, so the
 * threads work through one head's query blocks together while its K/V
 * (S x D x 8 bytes: 2 MiB at Llama's S 2048) stays in L2/L3; with heads
 * inner, every block streamed its K/V from memory again. One block per
 * sequence (decoding): heads inner, so consecutive tasks read rows of the
 * same positions (which share pages in (B, S, H, D) layouts). */
static void task_decode(const fwd_ctx *c, int64_t t0, int64_t *b, int64_t *qb, int64_t *kvh, int64_t *hc) {
    const int64_t nhc = c->pl->nhc, Hkv = c->P->Hkv;
    *hc = t0 % nhc;
    int64_t u;
    if (c->pl->nqb > 1) {
        u = (t0 / nhc) % c->nbq;
        *kvh = t0 / (nhc * c->nbq);
    } else {
        *kvh = (t0 / nhc) % Hkv;
        u = t0 / (nhc * Hkv);
    }
    bq_decode(c, u, b, qb);
}

/* One task's query block and key range (fwd_task's steps share it). */
typedef struct fwd_block {
    attn__sdpa_seq s;
    int64_t b, kvh, split, t0;    /* sequence, kv head, key split, task without split */
    int64_t r0, nr, g0, ng, h0;   /* first row, rows; first head of the chunk, heads; first query head */
    int64_t M, Mp;                /* rows (nr * ng), padded (16, or 8 for dot blocks) */
    int64_t ka, kb;               /* keys visited: the union of the rows' intervals (and of the split) */
    int dot;                      /* few rows (decoding): dot-product scores from Qr */
    const float *kbase, *vbase;   /* fp32 K / V rows of the sequence and kv head (NULL if no key visited) */
    const uint16_t *kb16, *vb16;  /* the same, bf16 fast path */
} fwd_block;

/* Task t -> its block (the rows' key intervals into w->lo / w->hi); 0 if
 * there is nothing to do (defensive: exact enumeration never yields it). */
static int fwd_block_make(const fwd_ctx *c, int64_t t, fwd_bufs *w, fwd_block *k) {
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_plan *pl = c->pl;
    /* splits outermost: consecutive tasks walk the same key range of
     * different heads, whose rows share pages in (B, S, H, D) layouts */
    k->split = t / c->ntasks0;
    k->t0 = t % c->ntasks0;
    int64_t qb, hc;
    task_decode(c, k->t0, &k->b, &qb, &k->kvh, &hc);
    attn__sdpa_seq_get(P, k->b, &k->s);
    k->r0 = qb * pl->Br;
    if (k->r0 >= k->s.sq) return 0;
    k->nr = k->s.sq - k->r0 < pl->Br ? k->s.sq - k->r0 : pl->Br;
    k->g0 = hc * pl->Gs;
    k->ng = P->G - k->g0 < pl->Gs ? P->G - k->g0 : pl->Gs;
    /* blocks of <= ATTN__SDPA_DOT_ROWS rows (decoding) score with dot products
     * into 8-column tiles (M = 4 for Llama's GQA: half the softmax work of 16).
     * Only for inference (no lse): gemm_abt sums along D in another order
     * than gemm_ab, and a backward must recompute exactly the logits that
     * produced lse (see sdpa_bwd.c). */
    k->dot = k->nr * k->ng <= ATTN__SDPA_DOT_ROWS && !P->lse_out && !P->bf16;
    k->M = k->nr * k->ng;
    k->Mp = k->dot ? (k->M + 7) & ~(int64_t)7 : attn__round16(k->M);
    k->h0 = k->kvh * P->G + k->g0;
    for (int64_t r = 0; r < k->nr; r++) attn__sdpa_row_range(P, &k->s, k->r0 + r, &w->lo[r], &w->hi[r]);
    k->ka = w->lo[0];
    k->kb = w->hi[k->nr - 1];
    if (pl->nsplit > 1) {
        const int64_t span = attn__ceil_div(attn__ceil_div(k->s.sk, pl->nsplit), pl->Bc) * pl->Bc; /* keys per split */
        const int64_t sa = k->split * span, sb = sa + span;
        if (k->ka < sa) k->ka = sa;
        if (k->kb > sb) k->kb = sb;
    }
    /* formed only when keys are visited: an empty K/V view (Sk = 0, a varlen
     * sequence without keys) may have any data pointer and strides */
    const int any = k->ka < k->kb;
    k->kbase = any && !P->bf16 ? attn__sdpa_at(P->k, &k->s, k->s.k0, 0, k->kvh) : NULL;
    k->vbase = any && !P->bf16 ? attn__sdpa_at(P->v, &k->s, k->s.k0, 0, k->kvh) : NULL;
    k->kb16 = any && P->bf16 ? attn__sdpa_at16(P->k, &k->s, k->s.k0, 0, k->kvh) : NULL;
    k->vb16 = any && P->bf16 ? attn__sdpa_at16(P->v, &k->s, k->s.k0, 0, k->kvh) : NULL;
    return 1;
}

/* Packs the block's queries, Qr (M, Dp) = q rows (few rows: dot-product
 * scores) or Qt (D, Mp) = q^T (Q2 pairs in the bf16 fast path; the scale
 * multiplies the scores), and starts the online softmax: m = -inf, l = 0,
 * O = 0, the rows' dropout keys. */
static void fwd_block_start(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const fwd_block *k, fwd_bufs *w) {
    const int64_t D = P->D, Dp = pl->Dp, M = k->M, Mp = k->Mp, ng = k->ng;
    if (P->bf16) pack_q_bf16(P, &k->s, k->r0, k->h0, ng, M, Mp, (uint32_t *)w->Qt);
    for (int64_t m = 0; m < M && !P->bf16; m++) {
        const float *qr = attn__sdpa_at(P->q, &k->s, k->s.q0, k->r0 + m / ng, k->h0 + m % ng);
        if (k->dot) {
            for (int64_t d = 0; d < D; d++) w->Qr[m * Dp + d] = qr[d];
            for (int64_t d = D; d < Dp; d++) w->Qr[m * Dp + d] = 0.0f;
        } else {
            for (int64_t d = 0; d < D; d++) w->Qt[d * Mp + m] = qr[d];
        }
    }
    if (!k->dot && !P->bf16)
        for (int64_t d = 0; d < D; d++)
            for (int64_t m = M; m < Mp; m++) w->Qt[d * Mp + m] = 0.0f;
    for (int64_t m = 0; m < Mp; m++) { w->mrow[m] = -INFINITY; w->lrow[m] = 0.0f; }
    memset(w->O, 0, (size_t)(M * pl->Dvp) * sizeof(float));
    /* the products leave St's padding columns unwritten where no row of the
     * block needs them (dot blocks' columns M..Mp, edge tiles' and chunks'
     * columns past the last row that sees a key); the softmax reads them
     * (padding rows, never stored): defined once here, then by the softmax */
    memset(w->St, 0, (size_t)(pl->Bc * Mp) * sizeof(float));
    if (P->dropout_p > 0.0f)
        for (int64_t m = 0; m < M; m++)
            w->rowkey[m] = attn__dropout_row_key(P->seed, k->b, k->h0 + m % ng, k->r0 + m / ng);
}

/* Software prefetch while tile j0 computes. Dot blocks queue the next
 * tile's K and V rows (pf_queue.h: into L2, a share after each score and
 * P.V call; dense rows, a head-major cache, as one run each): Llama shape
 * (M = 4), batch 32 x 2048 from DRAM, 25 -> 21 ms; GPT-2 (M = 1) BSHD step
 * against 4096 keys from DRAM (attn bench's decode row) 0.79-1.04 -> 0.60-
 * 0.67 ms. One-row blocks over dense rows keep a burst of the tile two
 * ahead as spans into L2 (the queue was 25% slower on a GPT-2 head-major
 * step from L3, level from DRAM). Other blocks: the next tile row by row
 * into L1. */
static void fwd_prefetch(const attn__sdpa_prob *P, const fwd_block *k, int64_t j0, int64_t Bc, attn__pfq *q) {
    const int64_t kb = k->kb, D = P->D, Dv = P->Dv, ldk = P->k.stride_s, ldv = P->v.stride_s;
    attn__pfq_reset(q);
    if (k->dot && k->M == 1 && ldk == D && ldv == Dv) {
        if (j0 + 2 * Bc < kb) {
            const int64_t nn = kb - j0 - 2 * Bc < Bc ? kb - j0 - 2 * Bc : Bc;
            attn__prefetch_span(k->kbase + (j0 + 2 * Bc) * D, nn * D);
            attn__prefetch_span(k->vbase + (j0 + 2 * Bc) * Dv, nn * Dv);
        }
        return;
    }
    if (j0 + Bc >= kb) return;
    const int64_t nn = kb - j0 - Bc < Bc ? kb - j0 - Bc : Bc;
    if (P->bf16) {
        attn__prefetch_rows16(k->kb16 + (j0 + Bc) * ldk, ldk, nn, D);
        attn__prefetch_rows16(k->vb16 + (j0 + Bc) * ldv, ldv, nn, Dv);
    } else if (k->dot) {
        const size_t f = sizeof(float);
        if (ldk == D) attn__pfq_add(q, k->kbase + (j0 + Bc) * ldk, 1, (size_t)(nn * D) * f, 0);
        else attn__pfq_add(q, k->kbase + (j0 + Bc) * ldk, nn, (size_t)D * f, (size_t)ldk * f);
        if (ldv == Dv) attn__pfq_add(q, k->vbase + (j0 + Bc) * ldv, 1, (size_t)(nn * Dv) * f, 0);
        else attn__pfq_add(q, k->vbase + (j0 + Bc) * ldv, nn, (size_t)Dv * f, (size_t)ldv * f);
    } else {
        attn__prefetch_rows(k->kbase + (j0 + Bc) * ldk, ldk, nn, D);
        attn__prefetch_rows(k->vbase + (j0 + Bc) * ldv, ldv, nn, Dv);
    }
}

/* Dot blocks: the scores St (nc, Mp) = K . Qr^T of tile j0; with prefetches
 * queued, `sub` keys per gemm_abt call (blk.paged_pf_keys, twice that for
 * one row), each followed by its share of q. Each key's score is its own
 * dot product, so the split changes no result. */
static void fwd_dot_scores(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const attn__sdpa_kernels *kt,
                           const fwd_block *k, fwd_bufs *w, int64_t j0, int64_t nc, attn__pfq *q) {
    const int64_t ldk = P->k.stride_s, pk = kt->blk.paged_pf_keys, sub = !q->lines ? nc : k->M == 1 ? 2 * pk : pk;
    attn__pfq_plan(q, attn__ceil_div(nc, sub) + attn__ceil_div(nc, ATTN__PFQ_PV_KEYS));
    for (int64_t a = 0; a < nc; a += sub) {
        const int64_t n = nc - a < sub ? nc - a : sub;
        kt->gemm_abt(n, k->M, P->D, k->kbase + (j0 + a) * ldk, ldk, w->Qr, pl->Dp, w->St + a * k->Mp, k->Mp);
        attn__pfq_issue(q, q->share);
    }
}

/* The rows of tile j0 the products compute: [m0, m1). A block on the
 * diagonal of a causal mask (or a window's edge) has rows that see none of
 * the tile's keys; their probabilities are 0, so they are left out (exact:
 * no bit of O changes). Few-row (dot) blocks compute all M. */
static int fwd_tile_rows(const fwd_block *k, const fwd_bufs *w, int64_t j0, int64_t nc, int64_t *m0, int64_t *m1) {
    *m0 = 0;
    *m1 = k->dot ? k->M : k->Mp;
    if (k->dot || (w->lo[k->nr - 1] <= j0 && w->hi[0] >= j0 + nc)) return 0;
    attn__sdpa_tile_rows(k->nr, k->ng, w->lo, w->hi, j0, nc, k->Mp, m0, m1);
    return 1;
}

/* The chunks of an edge tile's products (a staircase). On a causal diagonal
 * or a window's edge the rows that see keys [j0 + a, j0 + a + n) are fewer
 * than the tile's: chunk x (keys [x ek, x ek + ek), ek = blk.edge_keys) takes
 * rows [ra[x], rb[x]) only (tile_rows of the chunk). Exact: a score is its
 * own dot product, the rows left out of a chunk see none of its keys (the
 * mask writes their -inf, their probabilities are 0), and P.V adds the
 * chunks in key order, as the kernels add keys (C += A^T B key by key).
 * The chunks: attn__sdpa_stair (sdpa_elem.c), shared with the backward. */

/* Tile j0 (nc keys), rows [m0, m1): St (nc, Mp) = K[j0 : j0 + nc] . Qt (= K
 * . Qr^T, padding columns 0), the per-element work where the tile needs it
 * (interval masks alone: -inf runs, the scale left to the softmax), the
 * online softmax step (O rescaled when a row's max changed) and dropout: St
 * then holds the tile's probabilities. */
static void fwd_tile_probs(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const attn__sdpa_kernels *kt,
                           const fwd_block *k, fwd_bufs *w, int64_t j0, int64_t nc, int64_t m0, int64_t m1,
                           const attn__sdpa_stair *e, attn__pfq *q) {
    const int64_t D = P->D, Mp = k->Mp, Dvp = pl->Dvp, ldk = P->k.stride_s;
    if (P->bf16)
        kt->gemm_bf16(nc, m1 - m0, D / 2, k->kb16 + j0 * P->k.stride_s, P->k.stride_s, 2,
                      (const uint16_t *)((const uint32_t *)w->Qt + m0), Mp, w->St + m0, Mp, 0);
    else if (k->dot) fwd_dot_scores(P, pl, kt, k, w, j0, nc, q);
    else if (!e->ek) kt->gemm_ab(nc, m1 - m0, D, k->kbase + j0 * ldk, ldk, w->Qt + m0, Mp, w->St + m0, Mp, 0);
    else
        for (int64_t a = 0, x = 0; a < nc; a += e->ek, x++)
            if (e->rb[x] > e->ra[x])
                kt->gemm_ab(nc - a < e->ek ? nc - a : e->ek, e->rb[x] - e->ra[x], D, k->kbase + (j0 + a) * ldk, ldk,
                            w->Qt + e->ra[x], Mp, w->St + a * Mp + e->ra[x], Mp, 0);
    const float sc = attn__sdpa_tile_elem(P, &k->s, k->kvh, k->g0, k->ng, k->r0, k->nr, w->lo, w->hi, j0, nc, Mp,
                                          w->St, NULL);
    if (kt->softmax_tile(nc, Mp, w->St, sc, w->mrow, w->lrow, w->alpha))
        kt->scale_rows(k->M, Dvp, w->O, Dvp, w->alpha);
    if (P->dropout_p > 0.0f) attn__sdpa_apply_dropout(P, w->rowkey, k->M, j0, nc, Mp, w->St, NULL);
}

/* O (M, Dvp) += St^T . V for tile j0, rows [m0, min(m1, M)). A clean V tile
 * of a few-row block is read in place (each element once; 15-25% faster
 * decode in BSHD than packing it first, the same in a head-major cache),
 * with prefetches queued ATTN__PFQ_PV_KEYS keys per call, each followed by
 * its share of q;
 * otherwise V is packed into Vp, rows holding Inf/NaN zeroed there and added
 * only to the rows that attend to them (0 * NaN must not leak into rows for
 * which the key is masked, e.g. garbage in padding). */
static void fwd_tile_pv(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const attn__sdpa_kernels *kt,
                        const fwd_block *k, fwd_bufs *w, int64_t j0, int64_t nc, int64_t m0, int64_t m1,
                        const attn__sdpa_stair *e, attn__pfq *q) {
    const int64_t ldv = P->v.stride_s, Mp = k->Mp, Dv = P->Dv, Dvp = pl->Dvp;
    const int64_t M = m1 < k->M ? m1 : k->M;
    if (M <= m0) return;
    if (P->bf16) {
        pv_bf16(P, kt, w, k->vb16 + j0 * ldv, ldv, nc, m0, M, Mp, Dvp);
        return;
    }
    const float *vt = k->vbase + j0 * ldv; /* (nc, Dv) V rows of the tile, row stride ldv */
    if (k->dot && Dv == Dvp && kt->rows_finite(nc, Dv, vt, ldv)) {
        const int64_t sub = q->lines ? ATTN__PFQ_PV_KEYS : nc; /* keys per call */
        for (int64_t a = 0; a < nc; a += sub) {
            const int64_t n = nc - a < sub ? nc - a : sub;
            kt->gemm_atb(M, Dvp, n, w->St + a * Mp, Mp, vt + a * ldv, ldv, w->O, Dvp);
            attn__pfq_issue(q, q->share);
        }
        return;
    }
    const int nbad = kt->pack_rows(nc, Dv, vt, ldv, 1.0f, w->Vp, Dvp, Dvp, w->bad);
    if (!e->ek) kt->gemm_atb(M - m0, Dvp, nc, w->St + m0, Mp, w->Vp, Dvp, w->O + m0 * Dvp, Dvp);
    for (int64_t a = 0, x = 0; a < nc && e->ek; a += e->ek, x++) {
        const int64_t ra = e->ra[x], rb = e->rb[x] < M ? e->rb[x] : M;
        if (rb > ra)
            kt->gemm_atb(rb - ra, Dvp, nc - a < e->ek ? nc - a : e->ek, w->St + a * Mp + ra, Mp, w->Vp + a * Dvp, Dvp,
                         w->O + ra * Dvp, Dvp);
    }
    for (int x = 0; x < nbad; x++) {
        const int64_t cc = w->bad[x];
        const float *vr = vt + cc * ldv;
        for (int64_t m = m0; m < M; m++) {
            const float pr = w->St[cc * Mp + m];
            if (pr == 0.0f) continue;
            float *orow = w->O + m * Dvp;
            for (int64_t d = 0; d < Dv; d++) orow[d] += pr * vr[d];
        }
    }
}

/* The block's end: its unnormalised (O, m, l) into the partials (key
 * splits), else o = O / l (times the dropout scale) and lse per row. */
static void fwd_block_finish(const fwd_ctx *c, const fwd_block *k, fwd_bufs *w) {
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_plan *pl = c->pl;
    const int64_t Dvp = pl->Dvp, M = k->M;
    if (pl->nsplit > 1) {
        float *slot = c->partials + (k->t0 * pl->nsplit + k->split) * (pl->Mmax * Dvp + 2 * pl->Mp);
        memcpy(slot, w->O, (size_t)(M * Dvp) * sizeof(float));
        memcpy(slot + pl->Mmax * Dvp, w->mrow, (size_t)M * sizeof(float));
        memcpy(slot + pl->Mmax * Dvp + pl->Mp, w->lrow, (size_t)M * sizeof(float));
        return;
    }
    for (int64_t m = 0; m < M; m++) {
        const int64_t r = m / k->ng, h = k->h0 + m % k->ng;
        const float l = w->lrow[m]; /* 0: fully masked row; NaN propagates */
        store_o_row(P, c->kt, &k->s, k->r0 + r, h, l != 0.0f ? w->O + m * Dvp : NULL,
                    l != 0.0f ? P->drop_scale / l : 0.0f, w->orow);
        if (P->lse_out) store_lse(P, attn__sdpa_lse_idx(P, &k->s, h, k->r0 + r), w->mrow[m], l);
    }
}

static void fwd_task(void *vctx, int64_t t, int tid) {
    const fwd_ctx *c = vctx;
    const attn__sdpa_plan *pl = c->pl;
    fwd_bufs w;
    fwd_bufs_get(c->P, pl, c->ws + pl->global_bytes + (size_t)tid * pl->thread_bytes, &w);
    fwd_block k;
    if (!fwd_block_make(c, t, &w, &k)) return;
    fwd_block_start(c->P, pl, &k, &w);
    attn__pfq pq; /* dot blocks: the next tile's prefetches */
    for (int64_t j0 = k.ka; j0 < k.kb; j0 += pl->Bc) {
        const int64_t nc = k.kb - j0 < pl->Bc ? k.kb - j0 : pl->Bc;
        int64_t m0, m1;
        attn__sdpa_stair e;
        const int edge = fwd_tile_rows(&k, &w, j0, nc, &m0, &m1) && !c->P->bf16;
        attn__sdpa_stair_make(c->kt->blk.edge_keys, edge, k.nr, k.ng, w.lo, w.hi, j0, nc, k.Mp, &e);
        fwd_prefetch(c->P, &k, j0, pl->Bc, &pq);
        fwd_tile_probs(c->P, pl, c->kt, &k, &w, j0, nc, m0, m1, &e, &pq);
        fwd_tile_pv(c->P, pl, c->kt, &k, &w, j0, nc, m0, m1, &e, &pq);
    }
    fwd_block_finish(c, &k, &w);
}

/* Combines the nsplit partials of task t0 in split order. */
static void fwd_combine(void *vctx, int64_t t0, int tid) {
    const fwd_ctx *c = vctx;
    const attn__sdpa_prob *P = c->P;
    const attn__sdpa_plan *pl = c->pl;
    const int64_t nsplit = pl->nsplit;
    int64_t b, qb, kvh, hc;
    task_decode(c, t0, &b, &qb, &kvh, &hc);
    attn__sdpa_seq s;
    attn__sdpa_seq_get(P, b, &s);
    const int64_t r0 = qb * pl->Br;
    if (r0 >= s.sq) return;
    const int64_t nr = s.sq - r0 < pl->Br ? s.sq - r0 : pl->Br;
    const int64_t g0 = hc * pl->Gs;
    const int64_t ng = P->G - g0 < pl->Gs ? P->G - g0 : pl->Gs;
    const int64_t M = nr * ng, Dv = P->Dv, Dvp = pl->Dvp;
    const int64_t h0 = kvh * P->G + g0;
    const int64_t slot_n = pl->Mmax * Dvp + 2 * pl->Mp;
    const float *base = c->partials + t0 * nsplit * slot_n;
    fwd_bufs w;
    fwd_bufs_get(P, pl, c->ws + pl->global_bytes + (size_t)tid * pl->thread_bytes, &w);
    float *acc = w.O; /* (Dv) the row's combination */
    for (int64_t m = 0; m < M; m++) {
        const int64_t r = m / ng, h = h0 + m % ng;
        float mx = -INFINITY;
        for (int64_t sp = 0; sp < nsplit; sp++) mx = fmaxf(mx, base[sp * slot_n + pl->Mmax * Dvp + m]);
        float l = 0.0f, inv = 1.0f;
        for (int64_t e = 0; e < Dv; e++) acc[e] = 0.0f;
        if (mx != -INFINITY) {
            for (int64_t sp = 0; sp < nsplit; sp++) {
                const float *slot = base + sp * slot_n;
                const float ms = slot[pl->Mmax * Dvp + m];
                if (ms == -INFINITY) continue;
                const float wgt = expf(ms - mx);
                l += wgt * slot[pl->Mmax * Dvp + pl->Mp + m];
                const float *src = slot + m * Dvp;
                for (int64_t e = 0; e < Dv; e++) acc[e] += wgt * src[e];
            }
            if (l != 0.0f) inv = P->drop_scale / l;
        }
        store_o_row(P, c->kt, &s, r0 + r, h, acc, inv, w.orow);
        if (P->lse_out) store_lse(P, attn__sdpa_lse_idx(P, &s, h, r0 + r), mx, l);
    }
    (void)tid;
}

void attn__sdpa_fwd_run(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const attn__sdpa_kernels *kt,
                        unsigned char *ws) {
    fwd_ctx c;
    c.P = P;
    c.pl = pl;
    c.kt = kt;
    c.ws = ws;
    c.partials = pl->nsplit > 1 ? (float *)ws : NULL;
    c.prefix = NULL;
    if (P->varlen) {
        int64_t *pre = (int64_t *)(ws + pl->global_bytes - fl(2 * (P->B + 1)));
        pre[0] = 0;
        for (int64_t b = 0; b < P->B; b++) {
            int64_t sq = (int64_t)P->cu_q[b + 1] - P->cu_q[b];
            pre[b + 1] = pre[b] + attn__ceil_div(sq, pl->Br);
        }
        c.prefix = pre;
        c.nbq = pre[P->B];
    } else {
        c.nbq = P->B * pl->nqb;
    }
    c.ntasks0 = c.nbq * P->Hkv * pl->nhc;
    attn__parallel_for(c.ntasks0 * pl->nsplit, pl->nthreads, fwd_task, &c);
    if (pl->nsplit > 1) attn__parallel_for(c.ntasks0, pl->nthreads, fwd_combine, &c);
}
