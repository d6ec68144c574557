/* SPDX-License-Identifier: MIT */
/* sdpa_paged.c — batched attention over a paged KV cache
 * (attn_sdpa_paged_fwd): prefill chunks and decode steps of many sequences
 * in one call, K/V read through block tables.
 *
 * Layouts: q (T, Hq, D), o (T, Hq, Dv) packed (sequence b's rows
 * [cu[b], cu[b+1])); pools k (nb, Hkv, bs, D), v (nb, Hkv, bs, Dv); key t of
 * sequence b in block bt[b][t / bs], slot t % bs; lse (Hq, T).
 *
 * Algorithm: the tiled FlashAttention-2 forward of sdpa_fwd.c, with the K/V
 * tile read as up to ceil(Bc / bs) + 1 contiguous segments (one per block
 * the tile touches) instead of one strided run:
 *   - a task is (sequence, query block, kv head, head chunk[, key partition]);
 *     a block's rows are m = r * ng + g (position r, query head g of the kv
 *     group), so all query heads of a group share every K/V load (GQA);
 *   - blocks of <= ATTN__SDPA_DOT_ROWS rows (decoding) score with gemm_abt dot
 *     products from packed query rows into 8-column tiles and read a clean V
 *     tile in place (gemm_atb straight from the pool); larger blocks (prefill
 *     chunks) broadcast K against the transposed query block (gemm_ab) and
 *     pack V;
 *   - per-element work (visibility at tile edges, softcap, ALiBi) is
 *     attn__sdpa_apply_elem, the interval model attn__sdpa_row_range.
 *   - decode tiles of large calls prefetch the next tile's K and V into L2
 *     in shares between their score and P.V kernel calls of a few keys
 *     (pf_queue.h);
 *   - logits are scale * <q, k>, lse = m + log(l) in double: sdpa_fwd.c's
 *     rounding (driver pieces written again here: fwd's are static).
 *   - reduced-precision pools (BF16 / F16 / I8, kv_typed.h): decode blocks
 *     read them in place through the typed kernels (kdot for the scores,
 *     vacc for P.V, widening in registers); prefill blocks first widen the
 *     tile's segments into an fp32 tile (Kw, Vw) in the thread's workspace
 *     and run the fp32 path on it. The rest of the driver is the same.
 *     opts->decode_fast on BF16 pools: kdot_bf16 / vacc_bf16 (bf16 dot
 *     products; q rounded once per block into Qt's room, O in vacc_bf16's
 *     pair order until the block's last tile, then attn__kv_unpair).
 * Long contexts (decode blocks): the keys are cut into fixed partitions of
 * `part` keys (a function of the shape only), each storing its
 * unnormalised (O, m, l) (a task runs one or several in a row); a second pass combines a sequence's partitions in
 * order p = 0, 1, ... Task results never depend on which thread ran them, so
 * the output is bit-identical at any thread count. */
#include "kernels/sdpa_internal.h"
#include "kernels/kv_typed.h"
#include "kernels/pf_queue.h"
#include "io/half.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PAGED_MAX_TOKENS ((int64_t)1 << 30)
/* Tasks per thread at least, when split sequences' partitions are grouped into tasks. */
#define PAGED_TASKS_PER_THREAD 8
/* Block sizes: the ISA table's blk.paged_* (dispatch.h; defaults and their
 * measurements in dispatch.c): paged_bc keys per tile (tiles aligned to
 * multiples of it); decode blocks split into partitions of >= paged_part_min
 * keys, at most paged_maxpart per sequence; calls reading more K+V bytes than
 * paged_pf_bytes prefetch the next decode tile (pf_queue.h); the scores run on
 * paged_pf_keys keys at a time (twice that for one query row) and P.V
 * on ATTN__PFQ_PV_KEYS, each call followed by its share of the next tile's
 * prefetches; a task runs up to ppt partitions of one head in a row (at least
 * PAGED_TASKS_PER_THREAD tasks per thread), the next partition's first tile
 * prefetched during the last tile of the one before. Speed choices only: the
 * results are the same. */

static size_t fl(int64_t n) { return attn__round_up((size_t)n * sizeof(float)); }

/* Tiling, partitions and workspace (shape-only: never the data or the thread count,
 * except for the number of per-thread areas). */
typedef struct paged_plan {
    const attn__sdpa_blocks *bk; /* the ISA table's block sizes */
    int64_t Gs, nhc, Br, Mmax, Mp, Bc, Dp, Dvp;
    int64_t part, maxpart; /* keys per partition; partitions per sequence at most */
    int64_t slot_n;        /* floats of one partial: O (DOT_ROWS, Dvp), m (8), l (8) */
    size_t tables_bytes;   /* 4 x (B + 1) int64 task tables */
    size_t global_bytes;   /* tables + partials (B * Hkv * maxpart slots) */
    size_t thread_bytes;
    int nthreads;
    int typed;             /* pool type other than F32: Kw (Bc, D), Vw (Bc, Dv) per thread */
} paged_plan;

static void plan_make(paged_plan *pl, const attn__sdpa_blocks *bk, const attn_sdpa_dims *d, const attn_paged_kv *kv,
                      int nthreads) {
    memset(pl, 0, sizeof *pl);
    pl->bk = bk;
    const int64_t G = d->heads_q / d->heads_kv, Dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
    pl->Gs = G < bk->paged_mrows ? G : bk->paged_mrows;
    pl->nhc = attn__ceil_div(G, pl->Gs);
    pl->Br = bk->paged_mrows / pl->Gs;
    if (pl->Br < 1) pl->Br = 1;
    if (d->seq_q >= 1 && pl->Br > d->seq_q) pl->Br = d->seq_q;
    pl->Mmax = pl->Gs * pl->Br;
    pl->Mp = attn__round16(pl->Mmax);
    pl->Bc = bk->paged_bc;
    pl->Dp = attn__round16(d->head_dim);
    pl->Dvp = attn__round16(Dv);
    const int64_t maxkeys = kv->max_blocks * kv->block_size;
    int64_t part = attn__ceil_div(attn__ceil_div(maxkeys, bk->paged_maxpart), pl->Bc) * pl->Bc;
    pl->part = part > bk->paged_part_min ? part : bk->paged_part_min;
    pl->maxpart = attn__ceil_div(maxkeys, pl->part);
    pl->slot_n = ATTN__SDPA_DOT_ROWS * pl->Dvp + 16;
    pl->tables_bytes = 4 * attn__round_up((size_t)(d->batch + 1) * sizeof(int64_t));
    pl->global_bytes = pl->tables_bytes;
    if (pl->Gs <= ATTN__SDPA_DOT_ROWS && pl->maxpart > 1) /* decode blocks may be split */
        pl->global_bytes += fl(d->batch * d->heads_kv * pl->maxpart * pl->slot_n);
    const int64_t Bc = pl->Bc, Mp = pl->Mp;
    size_t th = fl(d->head_dim * Mp);           /* Qt */
    th += fl(ATTN__SDPA_DOT_ROWS * pl->Dp);     /* Qr */
    th += fl(Bc * Mp);                          /* St */
    th += fl(Bc * pl->Dvp);                     /* Vp */
    th += fl(pl->Mmax * pl->Dvp);               /* O */
    th += 3 * fl(Mp);                           /* mrow, lrow, alpha */
    th += 2 * fl(2 * pl->Br);                   /* lo, hi (int64) */
    th += fl(Bc);                               /* bad rows (int32) */
    pl->typed = kv->dtype != ATTN_DTYPE_F32;
    if (pl->typed) th += fl(Bc * d->head_dim) + fl(Bc * Dv); /* Kw, Vw */
    pl->thread_bytes = th;
    pl->nthreads = nthreads < 1 ? 1 : nthreads;
}

/* ─── validation ─────────────────────────────────────────────────────────── */

typedef struct brange { const char *name; uintptr_t lo, hi; } brange;

/* Byte range of a (n, H, Dl) packed view (stride_b ignored); 0 on overflow. */
static int view_range(const char *name, attn_view v, int64_t n, int64_t H, int64_t Dl, brange *r) {
    r->name = name;
    r->lo = r->hi = 0;
    if (n == 0) return 1;
    int64_t a, b, e;
    if (__builtin_mul_overflow(n - 1, v.stride_s, &a) || __builtin_mul_overflow(H - 1, v.stride_h, &b) ||
        __builtin_add_overflow(a, b, &e) || __builtin_add_overflow(e, Dl, &e) || e > ((int64_t)1 << 56))
        return 0;
    r->lo = (uintptr_t)v.data;
    r->hi = r->lo + (uintptr_t)e * sizeof(float);
    return 1;
}

static int ranges_overlap(const brange *a, const brange *b) {
    return a->lo < a->hi && b->lo < b->hi && a->lo < b->hi && b->lo < a->hi;
}

static attn_status check_dims_opts(const char *fn, const attn_sdpa_dims *d, const attn_sdpa_opts *o) {
    if (d->batch < 0 || d->batch > PAGED_MAX_TOKENS)
        return attn__fail(ATTN_ERR_SHAPE, "%s: batch = %lld, must be in [0, 2^30]", fn, (long long)d->batch);
    if (d->seq_q < 0 || d->seq_q > PAGED_MAX_TOKENS)
        return attn__fail(ATTN_ERR_SHAPE, "%s: seq_q = %lld, must be in [0, 2^30]", fn, (long long)d->seq_q);
    if (d->heads_q < 1 || d->heads_kv < 1 || d->heads_q > 65536 || d->heads_q % d->heads_kv != 0)
        return attn__fail(ATTN_ERR_SHAPE, "%s: heads_q = %lld, heads_kv = %lld: need 1 <= Hkv, Hq <= 65536, Hq %% Hkv == 0",
                          fn, (long long)d->heads_q, (long long)d->heads_kv);
    if (d->head_dim < 1 || d->head_dim > 256 || d->head_dim_v < 0 || d->head_dim_v > 256)
        return attn__fail(ATTN_ERR_SHAPE, "%s: head_dim = %lld, head_dim_v = %lld, must be in [1, 256] ([0, 256] for Dv)", fn,
                          (long long)d->head_dim, (long long)d->head_dim_v);
    if (!o->cu_seqlens_q) return attn__fail(ATTN_ERR_NULL, "%s: opts->cu_seqlens_q is NULL (required)", fn);
    if (o->key_lens || o->mask || o->mask_kind != ATTN_MASK_NONE || o->cu_seqlens_k || o->dropout_p != 0.0f)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: key_lens, an explicit mask, cu_seqlens_k and dropout are not supported "
                          "over a paged cache", fn);
    if (o->row_stats)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: opts->row_stats (statistics for a backward) is not supported "
                          "over a paged cache (inference only)", fn);
    if (!isfinite(o->scale)) return attn__fail(ATTN_ERR_OPTION, "%s: scale = %g is not finite", fn, (double)o->scale);
    if (o->causal != 0 && o->causal != 1) return attn__fail(ATTN_ERR_OPTION, "%s: causal = %d, must be 0 or 1", fn, o->causal);
    if (o->align != ATTN_ALIGN_TOP_LEFT && o->align != ATTN_ALIGN_BOTTOM_RIGHT)
        return attn__fail(ATTN_ERR_OPTION, "%s: align = %d, must be 0 or 1", fn, o->align);
    if (o->window_left < -1 || o->window_right < -1)
        return attn__fail(ATTN_ERR_OPTION, "%s: window_left = %lld, window_right = %lld, must be >= -1", fn,
                          (long long)o->window_left, (long long)o->window_right);
    if (!(o->softcap >= 0.0f) || isinf(o->softcap))
        return attn__fail(ATTN_ERR_OPTION, "%s: softcap = %g, must be 0 (off) or finite > 0", fn, (double)o->softcap);
    if (o->num_threads < 0) return attn__fail(ATTN_ERR_OPTION, "%s: num_threads = %d < 0", fn, o->num_threads);
    if (o->decode_fast != 0 && o->decode_fast != 1)
        return attn__fail(ATTN_ERR_OPTION, "%s: decode_fast = %d, must be 0 or 1", fn, o->decode_fast);
    const int32_t *cu = o->cu_seqlens_q;
    if (d->batch >= 0 && cu[0] != 0) return attn__fail(ATTN_ERR_SHAPE, "%s: cu_seqlens_q[0] = %d, must be 0", fn, cu[0]);
    for (int64_t b = 0; b < d->batch; b++)
        if (cu[b + 1] < cu[b])
            return attn__fail(ATTN_ERR_SHAPE, "%s: cu_seqlens_q decreases at %lld (%d -> %d)", fn, (long long)b, cu[b], cu[b + 1]);
    if (cu[d->batch] != d->seq_q)
        return attn__fail(ATTN_ERR_SHAPE, "%s: cu_seqlens_q[B] = %d, must equal seq_q = %lld", fn, cu[d->batch],
                          (long long)d->seq_q);
    return ATTN_OK;
}

static attn_status check_kv(const char *fn, const attn_sdpa_dims *d, const attn_paged_kv *kv) {
    if (attn__kv_elem_size(kv->dtype) == 0)
        return attn__fail(ATTN_ERR_DTYPE, "%s: kv->dtype = %d: a pool holds ATTN_DTYPE_F32, BF16, F16 or I8", fn,
                          (int)kv->dtype);
    if (kv->num_blocks < 1 || kv->num_blocks > INT32_MAX || kv->block_size < 1 || kv->block_size > PAGED_MAX_TOKENS ||
        kv->max_blocks < 1 || kv->max_blocks > INT32_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "%s: num_blocks = %lld, block_size = %lld, max_blocks = %lld out of range", fn,
                          (long long)kv->num_blocks, (long long)kv->block_size, (long long)kv->max_blocks);
    const int64_t Dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
    int64_t n, mk;
    if (__builtin_mul_overflow(kv->num_blocks, d->heads_kv * kv->block_size * (d->head_dim > Dv ? d->head_dim : Dv), &n) ||
        n > ((int64_t)1 << 52) || __builtin_mul_overflow(kv->max_blocks, kv->block_size, &mk) || mk > PAGED_MAX_TOKENS ||
        __builtin_mul_overflow(d->batch, kv->max_blocks, &n))
        return attn__fail(ATTN_ERR_NOMEM, "%s: pool or block tables too large (size overflow)", fn);
    if (d->batch == 0) return ATTN_OK;
    if (!kv->k || !kv->v || !kv->block_tables || !kv->seq_lens)
        return attn__fail(ATTN_ERR_NULL, "%s: kv->%s is NULL", fn,
                          !kv->k ? "k" : !kv->v ? "v" : !kv->block_tables ? "block_tables" : "seq_lens");
    if (kv->dtype == ATTN_DTYPE_I8 && (!kv->k_scale || !kv->v_scale))
        return attn__fail(ATTN_ERR_NULL, "%s: kv->%s is NULL (an I8 pool needs its scales)", fn,
                          !kv->k_scale ? "k_scale" : "v_scale");
    for (int64_t b = 0; b < d->batch; b++) {
        const int64_t L = kv->seq_lens[b];
        if (L < 0 || L > mk)
            return attn__fail(ATTN_ERR_SHAPE, "%s: seq_lens[%lld] = %lld, must be in [0, max_blocks * block_size = %lld] "
                              "(a sequence longer than its blocks)", fn, (long long)b, (long long)L, (long long)mk);
        const int32_t *t = kv->block_tables + b * kv->max_blocks;
        for (int64_t i = 0; i < attn__ceil_div(L, kv->block_size); i++)
            if (t[i] < 0 || t[i] >= kv->num_blocks)
                return attn__fail(ATTN_ERR_SHAPE, "%s: block_tables[%lld][%lld] = %d, must be in [0, num_blocks = %lld)", fn,
                                  (long long)b, (long long)i, t[i], (long long)kv->num_blocks);
    }
    return ATTN_OK;
}

static attn_status check_tensors(const char *fn, const attn_sdpa_dims *d, attn_view q, const attn_paged_kv *kv,
                                 attn_view o, const float *lse) {
    const int64_t T = d->seq_q, Dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
    brange rq, ro, rk, rv, rl, rks, rvs;
    if (!view_range("q", q, T, d->heads_q, d->head_dim, &rq) || !view_range("o", o, T, d->heads_q, Dv, &ro))
        return attn__fail(ATTN_ERR_NOMEM, "%s: q or o view extent overflows", fn);
    if (T > 0 && (!q.data || !o.data)) return attn__fail(ATTN_ERR_NULL, "%s: %s.data is NULL", fn, !q.data ? "q" : "o");
    if (q.stride_s < 0 || q.stride_h < 0 || o.stride_s < 0 || o.stride_h < 0)
        return attn__fail(ATTN_ERR_STRIDE, "%s: negative stride (q %lld/%lld, o %lld/%lld)", fn, (long long)q.stride_s,
                          (long long)q.stride_h, (long long)o.stride_s, (long long)o.stride_h);
    if (d->heads_q > 1 && o.stride_h < Dv)
        return attn__fail(ATTN_ERR_STRIDE, "%s: o.stride_h = %lld < Dv = %lld (heads overlap)", fn, (long long)o.stride_h,
                          (long long)Dv);
    if (T > 1 && o.stride_s < (d->heads_q - 1) * o.stride_h + Dv)
        return attn__fail(ATTN_ERR_STRIDE, "%s: o.stride_s = %lld: rows overlap", fn, (long long)o.stride_s);
    const size_t pool = (size_t)(kv->num_blocks * d->heads_kv * kv->block_size), es = attn__kv_elem_size(kv->dtype);
    const int i8 = kv->dtype == ATTN_DTYPE_I8;
    rk.name = "kv->k"; rk.lo = (uintptr_t)kv->k; rk.hi = rk.lo + pool * (size_t)d->head_dim * es;
    rv.name = "kv->v"; rv.lo = (uintptr_t)kv->v; rv.hi = rv.lo + pool * (size_t)Dv * es;
    rks.name = "kv->k_scale"; rks.lo = (uintptr_t)kv->k_scale; rks.hi = rks.lo + (i8 ? pool * sizeof(float) : 0);
    rvs.name = "kv->v_scale"; rvs.lo = (uintptr_t)kv->v_scale; rvs.hi = rvs.lo + (i8 ? pool * sizeof(float) : 0);
    rl.name = "lse"; rl.lo = (uintptr_t)lse; rl.hi = lse ? rl.lo + (size_t)(d->heads_q * T) * sizeof(float) : rl.lo;
    if (d->batch == 0) rk.hi = rk.lo, rv.hi = rv.lo, rks.hi = rks.lo, rvs.hi = rvs.lo;
    const brange *in[5] = {&rq, &rk, &rv, &rks, &rvs}, *out[2] = {&ro, &rl};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 5; j++)
            if (ranges_overlap(out[i], in[j]))
                return attn__fail(ATTN_ERR_ALIAS, "%s: output %s overlaps input %s", fn, out[i]->name, in[j]->name);
    }
    if (ranges_overlap(&ro, &rl)) return attn__fail(ATTN_ERR_ALIAS, "%s: output o overlaps output lse", fn);
    return ATTN_OK;
}

/* ─── the driver ─────────────────────────────────────────────────────────── */

typedef struct paged_ctx {
    const attn__sdpa_prob *P; /* options resolved as for varlen (P->Sq = T) */
    const paged_plan *pl;
    const attn__sdpa_kernels *kt;
    const attn__kv_kernels *kk; /* typed decode kernels (pools other than F32) */
    const attn_paged_kv *kv;
    const unsigned char *kpool, *vpool; /* elements of es bytes */
    const float *kscale, *vscale;       /* I8: (nb, Hkv, bs), else NULL */
    size_t es;
    attn_dtype dtype;
    unsigned char *ws;
    int64_t *tpre;   /* (B + 1) prefix sums of tasks per sequence */
    int64_t *cpre;   /* (B + 1) prefix sums of combine tasks (Hkv per split sequence) */
    int64_t *spre;   /* (B + 1) prefix sums of partial slots (Hkv * npart per split sequence) */
    int64_t *npart;  /* (B) key partitions of each sequence (1 = not split) */
    float *partials; /* (slots, slot_n) */
    int pf_next;     /* decode tiles prefetch the next tile (pf_queue.h; large calls) */
    int64_t ppt;     /* partitions of a split sequence per task (tables_make; changes no result) */
    int fast;        /* opts->decode_fast applies: BF16 pools on kdot_bf16 / vacc_bf16, I8 on kdot_i8 */
} paged_ctx;

typedef struct paged_bufs {
    float *Qt, *Qr, *St, *Vp, *O; /* (D, Mp), (DOT_ROWS, Dp), (Bc, Mp), (Bc, Dvp), (Mmax, Dvp) */
    float *Kw, *Vw;               /* typed pools, prefill blocks: the tile widened, (Bc, D), (Bc, Dv) */
    float *mrow, *lrow, *alpha;   /* (Mp) each */
    int64_t *lo, *hi;             /* (Br) each */
    int32_t *bad;                 /* (Bc) */
} paged_bufs;

static void bufs_get(const paged_plan *pl, int64_t D, int64_t Dv, unsigned char *p, paged_bufs *b) {
    const int64_t Mp = pl->Mp, Bc = pl->Bc;
    b->Qt = (float *)p; p += fl(D * Mp);
    b->Qr = (float *)p; p += fl(ATTN__SDPA_DOT_ROWS * pl->Dp);
    b->St = (float *)p; p += fl(Bc * Mp);
    b->Vp = (float *)p; p += fl(Bc * pl->Dvp);
    b->O = (float *)p; p += fl(pl->Mmax * pl->Dvp);
    b->mrow = (float *)p; p += fl(Mp);
    b->lrow = (float *)p; p += fl(Mp);
    b->alpha = (float *)p; p += fl(Mp);
    b->lo = (int64_t *)p; p += fl(2 * pl->Br);
    b->hi = (int64_t *)p; p += fl(2 * pl->Br);
    b->bad = (int32_t *)p; p += fl(Bc);
    b->Kw = b->Vw = NULL;
    if (pl->typed) {
        b->Kw = (float *)p; p += fl(Bc * D);
        b->Vw = (float *)p;
    }
}

/* Index b with pre[b] <= x < pre[b + 1] (pre non-decreasing, B + 1 entries). */
static int64_t find_seq(const int64_t *pre, int64_t B, int64_t x) {
    int64_t lo = 0, hi = B;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (pre[mid] <= x) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* One block's identity and geometry. */
typedef struct paged_blk {
    attn__sdpa_seq s;
    int64_t kvh, hc, qb;
    int64_t r0, nr, g0, ng, M, Mp, h0;
    int dot;
    int fast; /* decode_fast kernels for this block (set by pack_q) */
} paged_blk;

static void seq_get(const paged_ctx *c, int64_t b, attn__sdpa_seq *s) {
    const int32_t *cu = c->P->cu_q;
    memset(s, 0, sizeof *s);
    s->b = b;
    s->q0 = cu[b];
    s->sq = (int64_t)cu[b + 1] - cu[b];
    s->sk = s->kl = c->kv->seq_lens[b];
    s->shift = c->P->align == ATTN_ALIGN_BOTTOM_RIGHT ? s->kl - s->sq : 0;
}

static int64_t seq_qblocks(const paged_plan *pl, int64_t sq) { return attn__ceil_div(sq, pl->Br); }

/* Task t -> sequence, query block, kv head, head chunk, geometry and the
 * partitions [*p0, *p1) it runs ([0, 1) for a sequence that is not split). */
static void blk_decode(const paged_ctx *c, int64_t t, paged_blk *k, int64_t *p0, int64_t *p1) {
    const attn__sdpa_prob *P = c->P;
    const paged_plan *pl = c->pl;
    const int64_t b = find_seq(c->tpre, P->B, t), u = t - c->tpre[b];
    seq_get(c, b, &k->s);
    const int64_t nqb = seq_qblocks(pl, k->s.sq), np = c->npart[b];
    if (np > 1) { /* one block, one head chunk; runs of c->ppt partitions outermost */
        k->kvh = u % P->Hkv; k->hc = 0; k->qb = 0;
        *p0 = (u / P->Hkv) * c->ppt;
        *p1 = *p0 + c->ppt < np ? *p0 + c->ppt : np;
    } else {
        k->hc = u % pl->nhc; k->qb = (u / pl->nhc) % nqb; k->kvh = u / (pl->nhc * nqb);
        *p0 = 0; *p1 = 1;
    }
    k->r0 = k->qb * pl->Br;
    k->nr = k->s.sq - k->r0 < pl->Br ? k->s.sq - k->r0 : pl->Br;
    k->g0 = k->hc * pl->Gs;
    k->ng = P->G - k->g0 < pl->Gs ? P->G - k->g0 : pl->Gs;
    k->M = k->nr * k->ng;
    k->dot = k->M <= ATTN__SDPA_DOT_ROWS;
    k->Mp = k->dot ? (k->M + 7) & ~(int64_t)7 : attn__round16(k->M);
    k->h0 = k->kvh * P->G + k->g0;
}

/* A run of keys of one tile inside one block: tile columns [c0, c0 + n);
 * k, v rows of the pool's type (fp32 after tile_widen), ks, vs their I8 scales. */
typedef struct kv_seg { int64_t c0, n; const void *k, *v; const float *ks, *vs; } kv_seg;

/* Splits keys [j0, j0 + nc) of sequence b, kv head kvh, into block segments. */
static int tile_segs(const paged_ctx *c, int64_t b, int64_t kvh, int64_t j0, int64_t nc, kv_seg *sg) {
    const attn_paged_kv *kv = c->kv;
    const int64_t bs = kv->block_size, Hkv = c->P->Hkv, D = c->P->D, Dv = c->P->Dv;
    const int32_t *tbl = kv->block_tables + b * kv->max_blocks;
    int n = 0;
    for (int64_t j = j0; j < j0 + nc;) {
        const int64_t off = j % bs, blk = tbl[j / bs];
        int64_t len = bs - off;
        if (len > j0 + nc - j) len = j0 + nc - j;
        const int64_t row = (blk * Hkv + kvh) * bs + off; /* (blk, kvh, off) */
        sg[n].c0 = j - j0; sg[n].n = len;
        sg[n].k = c->kpool + (size_t)(row * D) * c->es; sg[n].v = c->vpool + (size_t)(row * Dv) * c->es;
        sg[n].ks = c->kscale ? c->kscale + row : NULL; sg[n].vs = c->vscale ? c->vscale + row : NULL;
        n++;
        j += len;
    }
    return n;
}

/* kdot_i8's query (Qt's room): Qi (DOT_ROWS, Dp) int16 then qs (DOT_ROWS)
 * fp32, row m of Qr ~ qs[m] Qi[m] with qs[m] = max_d |Qr[m][d]| / 32767 and
 * Qi = round-half-up(Qr / qs) in [-32767, 32767] (floor(x + 0.5): the same
 * under any rounding mode). 0 (the block takes the fp32 kdot) if a row holds
 * an Inf or NaN. */
static int quantise_q(const float *Qr, int64_t Dp, int16_t *Qi) {
    float *qs = (float *)(Qi + ATTN__SDPA_DOT_ROWS * Dp);
    for (int64_t m = 0; m < ATTN__SDPA_DOT_ROWS; m++) {
        const float *q = Qr + m * Dp;
        float a = 0.0f;
        for (int64_t d = 0; d < Dp; d++) a = fmaxf(a, fabsf(q[d]));
        if (!(a <= FLT_MAX)) return 0;
        qs[m] = a / 32767.0f;
        for (int64_t d = 0; d < Dp; d++) {
            float x = a > 0.0f ? floorf(q[d] / qs[m] + 0.5f) : 0.0f;
            x = x > 32767.0f ? 32767.0f : x < -32767.0f ? -32767.0f : x;
            Qi[m * Dp + d] = (int16_t)x;
        }
    }
    return 1;
}

/* Packs the block's query rows: Qr (M, Dp) for dot blocks, else Qt (D, Mp);
 * for decode_fast blocks also the query its kernels read, in Qt's room,
 * and k->fast (0 for an I8 block whose query holds an Inf / NaN)
 * (unscaled: the logits are scale * <q, k>, rounded once, as in sdpa_fwd.c). */
static void pack_q(const paged_ctx *c, paged_blk *k, paged_bufs *w) {
    const attn__sdpa_prob *P = c->P;
    const int64_t D = P->D, Dp = c->pl->Dp, M = k->M, Mp = k->Mp;
    for (int64_t m = 0; m < M; m++) {
        const float *qr = attn__sdpa_at(P->q, &k->s, k->s.q0, k->r0 + m / k->ng, k->h0 + m % k->ng);
        if (k->dot) {
            for (int64_t d = 0; d < D; d++) w->Qr[m * Dp + d] = qr[d];
            for (int64_t d = D; d < Dp; d++) w->Qr[m * Dp + d] = 0.0f;
        } else {
            for (int64_t d = 0; d < D; d++) w->Qt[d * Mp + m] = qr[d];
        }
    }
    if (!k->dot)
        for (int64_t d = 0; d < D; d++)
            for (int64_t m = M; m < Mp; m++) w->Qt[d * Mp + m] = 0.0f;
    else /* the typed kdot may read up to 8 rows (results past M are discarded) */
        for (int64_t m = M; m < ATTN__SDPA_DOT_ROWS; m++) memset(w->Qr + m * Dp, 0, (size_t)Dp * sizeof(float));
    k->fast = k->dot && c->fast;
    if (k->fast && c->dtype == ATTN_DTYPE_BF16) { /* kdot_bf16's query: Qr rounded to bf16, (DOT_ROWS, Dp) in Qt's room */
        uint16_t *qb = (uint16_t *)w->Qt;
        for (int64_t i = 0; i < ATTN__SDPA_DOT_ROWS * Dp; i++) qb[i] = attn__f32_to_bf16(w->Qr[i]);
    }
    if (k->fast && c->dtype == ATTN_DTYPE_I8) k->fast = quantise_q(w->Qr, Dp, (int16_t *)w->Qt);
}

/* The prefetch queue (pf_queue.h) of keys [j0, j0 + nc) of block k's
 * sequence and head: K, V and the I8 scales of each segment (empty if
 * nc <= 0). */
_Static_assert(ATTN__PFQ_MAX_RUNS >= 4 * (ATTN__SDPA_BC_MAX + 1), "a tile's runs fit the prefetch queue");
static void pf_init(attn__pfq *q, const paged_ctx *c, const paged_blk *k, int64_t j0, int64_t nc) {
    attn__pfq_reset(q);
    if (nc <= 0) return;
    kv_seg sg[ATTN__SDPA_BC_MAX + 1];
    const int nseg = tile_segs(c, k->s.b, k->kvh, j0, nc, sg);
    for (int i = 0; i < nseg; i++) { /* each a run of one contiguous row */
        attn__pfq_add(q, sg[i].k, 1, (size_t)(sg[i].n * c->P->D) * c->es, 0);
        attn__pfq_add(q, sg[i].v, 1, (size_t)(sg[i].n * c->P->Dv) * c->es, 0);
        attn__pfq_add(q, sg[i].ks, 1, (size_t)sg[i].n * sizeof(float), 0);
        attn__pfq_add(q, sg[i].vs, 1, (size_t)sg[i].n * sizeof(float), 0);
    }
}

/* The shares of the tile's kernel calls: score calls of `sub` keys and P.V
 * calls of ATTN__PFQ_PV_KEYS over the segments sg. */
static void pf_plan(attn__pfq *q, const kv_seg *sg, int nseg, int64_t sub) {
    int64_t calls = 0;
    for (int i = 0; i < nseg; i++) calls += attn__ceil_div(sg[i].n, sub) + attn__ceil_div(sg[i].n, ATTN__PFQ_PV_KEYS);
    attn__pfq_plan(q, calls);
}

/* O (M, Dvp) += St^T . V over the tile's segments: in place when every V row
 * is finite (dot blocks, Dv a multiple of 16), else packed into Vp with rows
 * holding Inf/NaN added only to the rows that attend to them. */
static void tile_pv(const paged_ctx *c, const paged_blk *k, paged_bufs *w, const kv_seg *sg, int nseg, int64_t nc,
                    attn__pfq *q) {
    const attn__sdpa_kernels *kt = c->kt;
    const int64_t Dv = c->P->Dv, Dvp = c->pl->Dvp, M = k->M, Mp = k->Mp;
    if (k->dot && c->dtype != ATTN_DTYPE_F32) { /* typed pool, read in place (masked keys skipped) */
        for (int i = 0; i < nseg; i++)
            for (int64_t a = 0; a < sg[i].n; a += ATTN__PFQ_PV_KEYS) {
                const int64_t n = sg[i].n - a < ATTN__PFQ_PV_KEYS ? sg[i].n - a : ATTN__PFQ_PV_KEYS;
                if (k->fast && c->dtype == ATTN_DTYPE_BF16) /* O in vacc_bf16's pair order until the block ends */
                    c->kk->vacc_bf16(n, M, Dv, w->St + (sg[i].c0 + a) * Mp, Mp, (const uint16_t *)sg[i].v + a * Dv, w->O, Dvp);
                else c->kk->vacc(c->dtype, n, M, Dv, w->St + (sg[i].c0 + a) * Mp, Mp,
                            (const unsigned char *)sg[i].v + (size_t)(a * Dv) * c->es, sg[i].vs ? sg[i].vs + a : NULL,
                            w->O, Dvp);
                attn__pfq_issue(q, q->share);
            }
        return;
    }
    int clean = k->dot && Dv == Dvp;
    for (int i = 0; clean && i < nseg; i++) clean = kt->rows_finite(sg[i].n, Dv, (const float *)sg[i].v, Dv);
    if (clean) { /* V read in place, ATTN__PFQ_PV_KEYS keys per call (decode: each followed by its prefetch share) */
        for (int i = 0; i < nseg; i++)
            for (int64_t a = 0; a < sg[i].n; a += ATTN__PFQ_PV_KEYS) {
                const int64_t n = sg[i].n - a < ATTN__PFQ_PV_KEYS ? sg[i].n - a : ATTN__PFQ_PV_KEYS;
                kt->gemm_atb(M, Dvp, n, w->St + (sg[i].c0 + a) * Mp, Mp, (const float *)sg[i].v + a * Dv, Dv, w->O, Dvp);
                attn__pfq_issue(q, q->share);
            }
        return;
    }
    int nbad = 0;
    for (int i = 0; i < nseg; i++) {
        const int nb0 = nbad;
        nbad += kt->pack_rows(sg[i].n, Dv, (const float *)sg[i].v, Dv, 1.0f, w->Vp + sg[i].c0 * Dvp, Dvp, Dvp, w->bad + nbad);
        for (int x = nb0; x < nbad; x++) w->bad[x] += (int32_t)sg[i].c0;
    }
    kt->gemm_atb(M, Dvp, nc, w->St, Mp, w->Vp, Dvp, w->O, Dvp);
    for (int x = 0, i = 0; x < nbad; x++) {
        const int64_t cc = w->bad[x];
        while (cc >= sg[i].c0 + sg[i].n) i++;
        const float *vr = (const float *)sg[i].v + (cc - sg[i].c0) * Dv;
        for (int64_t m = 0; m < M; m++) {
            const float pr = w->St[cc * Mp + m];
            if (pr == 0.0f) continue;
            float *orow = w->O + m * Dvp;
            for (int64_t e = 0; e < Dv; e++) orow[e] += pr * vr[e];
        }
    }
}

/* Typed pool, prefill block: widens the tile's segments into Kw (nc, D), Vw
 * (nc, Dv) and describes the tile as that one fp32 segment. */
static int tile_widen(const paged_ctx *c, paged_bufs *w, kv_seg *sg, int nseg, int64_t nc) {
    const int64_t D = c->P->D, Dv = c->P->Dv;
    for (int i = 0; i < nseg; i++)
        for (int64_t r = 0; r < sg[i].n; r++) {
            const int64_t t = sg[i].c0 + r;
            attn__kv_get_row(c->dtype, (const unsigned char *)sg[i].k + (size_t)(r * D) * c->es, sg[i].ks ? sg[i].ks[r] : 1.0f,
                             w->Kw + t * D, D);
            attn__kv_get_row(c->dtype, (const unsigned char *)sg[i].v + (size_t)(r * Dv) * c->es, sg[i].vs ? sg[i].vs[r] : 1.0f,
                             w->Vw + t * Dv, Dv);
        }
    sg[0].c0 = 0; sg[0].n = nc; sg[0].k = w->Kw; sg[0].v = w->Vw; sg[0].ks = sg[0].vs = NULL;
    return 1;
}

/* Decode scores St (nc, Mp) = K . Qr^T: kdot (typed) or gemm_abt (fp32) on
 * `sub` keys at a time, each call followed by its share of the prefetches of
 * q (shares planned for the tile's score and P.V calls). Each key's score is
 * its own dot product, so the split changes no result. */
static void dot_spread(const paged_ctx *c, const paged_blk *k, paged_bufs *w, const kv_seg *sg, int nseg, attn__pfq *q) {
    const int typed = c->dtype != ATTN_DTYPE_F32;
    const int64_t D = c->P->D, Mp = k->Mp, pk = c->pl->bk->paged_pf_keys, sub = k->M == 1 ? 2 * pk : pk;
    pf_plan(q, sg, nseg, sub);
    for (int i = 0; i < nseg; i++)
        for (int64_t a = 0; a < sg[i].n; a += sub) {
            const int64_t n = sg[i].n - a < sub ? sg[i].n - a : sub;
            float *st = w->St + (sg[i].c0 + a) * Mp;
            if (k->fast && c->dtype == ATTN_DTYPE_BF16)
                c->kk->kdot_bf16(n, k->M, D, (const uint16_t *)sg[i].k + a * D, (const uint16_t *)w->Qt, c->pl->Dp, st, Mp);
            else if (k->fast) /* I8 */
                c->kk->kdot_i8(n, k->M, D, (const int8_t *)sg[i].k + a * D, sg[i].ks + a, (const int16_t *)w->Qt,
                               (const float *)((const int16_t *)w->Qt + ATTN__SDPA_DOT_ROWS * c->pl->Dp), c->pl->Dp, st, Mp);
            else if (typed)
                c->kk->kdot(c->dtype, n, k->M, D, (const unsigned char *)sg[i].k + (size_t)(a * D) * c->es,
                            sg[i].ks ? sg[i].ks + a : NULL, w->Qr, c->pl->Dp, st, Mp);
            else c->kt->gemm_abt(n, k->M, D, (const float *)sg[i].k + a * D, D, w->Qr, c->pl->Dp, st, Mp);
            attn__pfq_issue(q, q->share);
        }
}

/* One tile [j0, j0 + nc): scores, per-element work, online softmax, O update;
 * q (decode tiles) the next tile's prefetches. */
static void tile_step(const paged_ctx *c, const paged_blk *k, paged_bufs *w, int64_t j0, int64_t nc, attn__pfq *q) {
    const attn__sdpa_kernels *kt = c->kt;
    const int64_t D = c->P->D, Dvp = c->pl->Dvp, M = k->M, Mp = k->Mp;
    kv_seg sg[ATTN__SDPA_BC_MAX + 1];
    int nseg = tile_segs(c, k->s.b, k->kvh, j0, nc, sg);
    if (c->dtype != ATTN_DTYPE_F32 && !k->dot) nseg = tile_widen(c, w, sg, nseg, nc);
    if (k->dot) dot_spread(c, k, w, sg, nseg, q);
    else
        for (int i = 0; i < nseg; i++) /* St (nc, Mp) = K . Qt */
            kt->gemm_ab(sg[i].n, Mp, D, (const float *)sg[i].k, D, w->Qt, Mp, w->St + sg[i].c0 * Mp, Mp, 0);
    /* logits = scale * <q, k> rounded once, as in sdpa_fwd.c: before the
     * per-element work when it is more than masks, else inside softmax_tile */
    const float sc = attn__sdpa_tile_elem(c->P, &k->s, k->kvh, k->g0, k->ng, k->r0, k->nr, w->lo, w->hi, j0, nc, Mp,
                                          w->St, NULL);
    if (kt->softmax_tile(nc, Mp, w->St, sc, w->mrow, w->lrow, w->alpha))
        kt->scale_rows(M, Dvp, w->O, Dvp, w->alpha);
    tile_pv(c, k, w, sg, nseg, nc, q);
}

/* lse = m + log(l) rounded once (in double), -inf when l == 0 (sdpa_fwd.c's rule). */
static float lse_of(float m, float l) { return l != 0.0f ? (float)((double)m + log((double)l)) : -INFINITY; }

/* Writes the normalised rows of a finished block to o and lse. */
static void blk_store(const paged_ctx *c, const paged_blk *k, const paged_bufs *w) {
    const attn__sdpa_prob *P = c->P;
    for (int64_t m = 0; m < k->M; m++) {
        const int64_t r = k->r0 + m / k->ng, h = k->h0 + m % k->ng;
        float *orow = attn__sdpa_at(P->o, &k->s, k->s.q0, r, h);
        const float l = w->lrow[m]; /* 0: fully masked row; NaN propagates */
        const float inv = l != 0.0f ? 1.0f / l : 0.0f;
        for (int64_t e = 0; e < P->Dv; e++) orow[e] = w->O[m * c->pl->Dvp + e] * inv;
        if (P->lse_out) P->lse_out[attn__sdpa_lse_idx(P, &k->s, h, r)] = lse_of(w->mrow[m], l);
    }
}

/* Keys [*ka, *kb) of partition p of a split block whose rows see [ka0, kb0)
 * (the whole [ka0, kb0) if the sequence is not split); empty if *ka >= *kb. */
static void part_range(const paged_ctx *c, const paged_blk *k, int64_t p, int64_t ka0, int64_t kb0, int64_t *ka,
                       int64_t *kb) {
    *ka = ka0; *kb = kb0;
    if (c->npart[k->s.b] > 1) {
        if (*ka < p * c->pl->part) *ka = p * c->pl->part;
        if (*kb > (p + 1) * c->pl->part) *kb = (p + 1) * c->pl->part;
    }
}

/* The online-softmax state of a block before its first key. */
static void blk_reset(const paged_plan *pl, const paged_blk *k, paged_bufs *w) {
    for (int64_t m = 0; m < k->Mp; m++) { w->mrow[m] = -INFINITY; w->lrow[m] = 0.0f; }
    memset(w->O, 0, (size_t)(k->M * pl->Dvp) * sizeof(float));
}

/* Partition p's unnormalised state into its slot (combined by paged_combine). */
static void part_store(const paged_ctx *c, const paged_blk *k, const paged_bufs *w, int64_t p) {
    const paged_plan *pl = c->pl;
    float *slot = c->partials + (c->spre[k->s.b] + k->kvh * c->npart[k->s.b] + p) * pl->slot_n;
    const int64_t on = ATTN__SDPA_DOT_ROWS * pl->Dvp;
    memcpy(slot, w->O, (size_t)(k->M * pl->Dvp) * sizeof(float));
    memcpy(slot + on, w->mrow, (size_t)k->M * sizeof(float));
    memcpy(slot + on + 8, w->lrow, (size_t)k->M * sizeof(float));
}

/* The tiles of keys [ka, kb), aligned to multiples of Bc. Decode tiles of
 * calls reading > blk.paged_pf_bytes spread the next tile's prefetches over
 * the current one (pf_queue.h); after the last tile, the next tile is the
 * first of [na, nb) (the task's next partition; none if empty). */
static void blk_tiles(const paged_ctx *c, const paged_blk *k, paged_bufs *w, int64_t ka, int64_t kb, int64_t na,
                      int64_t nb) {
    const int64_t Bc = c->pl->Bc;
    const int pf_next = k->dot && c->pf_next;
    attn__pfq pq;
    for (int64_t j0 = ka; j0 < kb;) {
        int64_t je = (j0 / Bc + 1) * Bc;
        if (je > kb) je = kb;
        const int64_t xa = je < kb ? je : na, xb = je < kb ? kb : nb, xe = (xa / Bc + 1) * Bc;
        pf_init(&pq, c, k, xa, pf_next && xa < xb ? (xe < xb ? xe : xb) - xa : 0);
        tile_step(c, k, w, j0, je - j0, &pq);
        j0 = je;
    }
}

/* Task t: one block, or (split sequences) a run of consecutive partitions of
 * one kv head, each from its own reset state into its own slot, so the
 * results do not depend on how many partitions a task runs (c->ppt); the
 * run lets the prefetch of each partition's first tile overlap the one before. */
static void paged_task(void *vctx, int64_t t, int tid) {
    const paged_ctx *c = vctx;
    const paged_plan *pl = c->pl;
    paged_blk k;
    int64_t p0, p1;
    blk_decode(c, t, &k, &p0, &p1);
    paged_bufs w;
    bufs_get(pl, c->P->D, c->P->Dv, c->ws + pl->global_bytes + (size_t)tid * pl->thread_bytes, &w);
    for (int64_t r = 0; r < k.nr; r++) attn__sdpa_row_range(c->P, &k.s, k.r0 + r, &w.lo[r], &w.hi[r]);
    const int64_t ka0 = w.lo[0], kb0 = w.hi[k.nr - 1]; /* union of the rows' intervals */
    pack_q(c, &k, &w);
    for (int64_t p = p0; p < p1; p++) {
        int64_t ka, kb, na = 0, nb = 0;
        part_range(c, &k, p, ka0, kb0, &ka, &kb);
        if (p + 1 < p1) part_range(c, &k, p + 1, ka0, kb0, &na, &nb);
        blk_reset(pl, &k, &w);
        blk_tiles(c, &k, &w, ka, kb, na, nb);
        if (k.fast && c->dtype == ATTN_DTYPE_BF16) attn__kv_unpair(k.M, c->P->Dv, w.O, pl->Dvp);
        if (c->npart[k.s.b] > 1) part_store(c, &k, &w, p);
        else blk_store(c, &k, &w);
    }
}

/* Combines the partitions of (split sequence, kv head) in order p = 0, 1, ... */
static void paged_combine(void *vctx, int64_t t, int tid) {
    (void)tid;
    const paged_ctx *c = vctx;
    const attn__sdpa_prob *P = c->P;
    const paged_plan *pl = c->pl;
    const int64_t b = find_seq(c->cpre, P->B, t), kvh = t - c->cpre[b], np = c->npart[b];
    attn__sdpa_seq s;
    seq_get(c, b, &s);
    const int64_t M = s.sq * P->G, Dv = P->Dv, on = ATTN__SDPA_DOT_ROWS * pl->Dvp;
    const float *base = c->partials + (c->spre[b] + kvh * np) * pl->slot_n;
    for (int64_t m = 0; m < M; m++) {
        const int64_t r = m / P->G, h = kvh * P->G + m % P->G;
        float mx = -INFINITY, l = 0.0f;
        for (int64_t p = 0; p < np; p++) mx = fmaxf(mx, base[p * pl->slot_n + on + m]);
        float *orow = attn__sdpa_at(P->o, &s, s.q0, r, h);
        for (int64_t e = 0; e < Dv; e++) orow[e] = 0.0f;
        if (mx != -INFINITY) {
            for (int64_t p = 0; p < np; p++) {
                const float *slot = base + p * pl->slot_n;
                const float ms = slot[on + m];
                if (ms == -INFINITY) continue;
                const float wgt = expf(ms - mx);
                l += wgt * slot[on + 8 + m];
                for (int64_t e = 0; e < Dv; e++) orow[e] += wgt * slot[m * pl->Dvp + e];
            }
            if (l != 0.0f) {
                const float inv = 1.0f / l;
                for (int64_t e = 0; e < Dv; e++) orow[e] *= inv;
            }
        }
        if (P->lse_out) P->lse_out[attn__sdpa_lse_idx(P, &s, h, r)] = lse_of(mx, l);
    }
}

/* Fills the task tables (a function of cu_seqlens_q and seq_lens only). */
static void tables_make(paged_ctx *c) {
    const attn__sdpa_prob *P = c->P;
    const paged_plan *pl = c->pl;
    const int64_t B = P->B;
    const size_t tb = attn__round_up((size_t)(B + 1) * sizeof(int64_t));
    c->tpre = (int64_t *)c->ws;
    c->cpre = (int64_t *)(c->ws + tb);
    c->spre = (int64_t *)(c->ws + 2 * tb);
    c->npart = (int64_t *)(c->ws + 3 * tb);
    c->partials = (float *)(c->ws + pl->tables_bytes);
    c->tpre[0] = c->cpre[0] = c->spre[0] = 0;
    int64_t keys = 0, units = 0; /* units: the blocks and partitions to compute */
    for (int64_t b = 0; b < B; b++) {
        attn__sdpa_seq s;
        seq_get(c, b, &s);
        keys += s.kl;
        int64_t np = 1;
        if (s.sq * pl->Gs <= ATTN__SDPA_DOT_ROWS && pl->nhc == 1 && pl->maxpart > 1) np = attn__ceil_div(s.kl, pl->part);
        if (np < 1) np = 1;
        c->npart[b] = np;
        units += seq_qblocks(pl, s.sq) * P->Hkv * pl->nhc * np;
    }
    /* a task runs up to ppt partitions in a row while that leaves
     * PAGED_TASKS_PER_THREAD tasks per thread (load balance) */
    c->ppt = units / ((int64_t)PAGED_TASKS_PER_THREAD * pl->nthreads);
    if (c->ppt > pl->maxpart) c->ppt = pl->maxpart;
    if (c->ppt < 1) c->ppt = 1;
    for (int64_t b = 0; b < B; b++) {
        attn__sdpa_seq s;
        seq_get(c, b, &s);
        const int64_t np = c->npart[b];
        /* (a split sequence has one query block, or none if it has no query rows) */
        c->tpre[b + 1] = c->tpre[b] + seq_qblocks(pl, s.sq) * P->Hkv * pl->nhc * (np > 1 ? attn__ceil_div(np, c->ppt) : 1);
        c->cpre[b + 1] = c->cpre[b] + (np > 1 ? P->Hkv : 0);
        c->spre[b + 1] = c->spre[b] + (np > 1 ? P->Hkv * np : 0);
    }
    const double key_bytes = (double)(P->Hkv * (P->D + P->Dv)) * (double)c->es + (c->kscale ? 8.0 * (double)P->Hkv : 0.0);
    c->pf_next = (double)keys * key_bytes > (double)pl->bk->paged_pf_bytes;
}

/* The caller's attn_sdpa_opts in this library's layout (attn.h, "ABI"; the
 * layout is sdpa.c's SDPA_OPTS_LAYOUT, which is static there). */
static attn_status opts_read(const char *fn, const attn_sdpa_opts *in, attn_sdpa_opts *full) {
    static const attn__struct_layout L = {"attn_sdpa_opts", ATTN__SIZE_THROUGH(attn_sdpa_opts, num_threads),
                                          sizeof(attn_sdpa_opts)};
    attn_sdpa_opts def;
    attn_sdpa_opts_init(&def);
    return attn__struct_read(fn, in, full, &def, &L, ATTN_ERR_OPTION);
}

static attn_status validate(const char *fn, const attn_sdpa_dims *dims, attn_view q, const attn_paged_kv *kv,
                            attn_view o, const float *lse, const attn_sdpa_opts *opts) {
    if (!dims || !kv || !opts)
        return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !dims ? "dims" : !kv ? "kv" : "opts");
    attn_status st = check_dims_opts(fn, dims, opts);
    if (!st) st = check_kv(fn, dims, kv);
    if (!st) st = check_tensors(fn, dims, q, kv, o, lse);
    return st;
}

size_t attn_sdpa_paged_fwd_workspace_size(const attn_sdpa_dims *dims, const attn_paged_kv *kv,
                                          const attn_sdpa_opts *opts) {
    if (!dims || !kv || dims->batch < 0 || dims->batch > PAGED_MAX_TOKENS || dims->seq_q < 0 ||
        dims->seq_q > PAGED_MAX_TOKENS || dims->heads_q < 1 || dims->heads_kv < 1 || dims->heads_q > 65536 ||
        dims->heads_q % dims->heads_kv || dims->head_dim < 1 || dims->head_dim > 256 || dims->head_dim_v < 0 ||
        dims->head_dim_v > 256 || kv->block_size < 1 || kv->block_size > PAGED_MAX_TOKENS || kv->max_blocks < 1 ||
        kv->max_blocks > INT32_MAX || kv->max_blocks * kv->block_size > PAGED_MAX_TOKENS)
        return 0;
    attn_sdpa_opts full;
    if (opts && opts_read("attn_sdpa_paged_fwd_workspace_size", opts, &full) != ATTN_OK) return 0;
    if (opts && full.num_threads < 0) return 0;
    paged_plan pl;
    plan_make(&pl, &attn__sdpa_kernels_get()->blk, dims, kv, attn__resolve_threads(opts ? full.num_threads : 0));
    return pl.global_bytes + (size_t)pl.nthreads * pl.thread_bytes;
}

attn_status attn_sdpa_paged_fwd(const attn_sdpa_dims *dims, attn_view q, const attn_paged_kv *kv, attn_view o,
                                float *lse, const attn_sdpa_opts *opts, void *workspace, size_t workspace_size) {
    static const char fn[] = "attn_sdpa_paged_fwd";
    if (!opts) return attn__fail(ATTN_ERR_NULL, "%s: opts is NULL (opts->cu_seqlens_q is required)", fn);
    attn_sdpa_opts opts_full;
    attn_status st = opts_read(fn, opts, &opts_full);
    if (st) return st;
    opts = &opts_full;
    if ((st = validate(fn, dims, q, kv, o, lse, opts))) return st;
    if (dims->batch == 0 || dims->seq_q == 0) return ATTN_OK;
    const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
    paged_plan pl;
    plan_make(&pl, &kt->blk, dims, kv, attn__resolve_threads(opts->num_threads));
    void *owned = NULL;
    if (!workspace) {
        workspace = owned = attn__malloc(pl.global_bytes + (size_t)pl.nthreads * pl.thread_bytes);
        if (!owned) return attn__fail(ATTN_ERR_NOMEM, "%s: cannot allocate the workspace", fn);
    } else {
        if (((uintptr_t)workspace & (ATTN_ALIGN - 1)) != 0)
            return attn__fail(ATTN_ERR_WORKSPACE, "%s: workspace %p is not 64-byte aligned", fn, workspace);
        if (workspace_size < pl.global_bytes + pl.thread_bytes)
            return attn__fail(ATTN_ERR_WORKSPACE, "%s: workspace_size = %zu bytes, need %zu for %d threads (at least %zu)", fn,
                              workspace_size, pl.global_bytes + (size_t)pl.nthreads * pl.thread_bytes, pl.nthreads,
                              pl.global_bytes + pl.thread_bytes);
        size_t fit = (workspace_size - pl.global_bytes) / pl.thread_bytes;
        if (fit < (size_t)pl.nthreads) pl.nthreads = (int)fit;
    }
    attn_sdpa_dims pd = *dims;
    pd.seq_k = kv->max_blocks * kv->block_size; /* bounds every sequence's keys (window clamping) */
    attn__sdpa_prob P;
    attn__sdpa_prob_init(&P, &pd, opts);
    P.q = q; P.o = o; P.lse_out = lse;
    paged_ctx c;
    memset(&c, 0, sizeof c);
    c.P = &P; c.pl = &pl; c.kt = kt; c.kv = kv; c.ws = workspace;
    c.kk = attn__kv_kernels_get();
    c.dtype = kv->dtype; c.es = attn__kv_elem_size(kv->dtype);
    c.kpool = (const unsigned char *)kv->k; c.vpool = (const unsigned char *)kv->v;
    if (kv->dtype == ATTN_DTYPE_I8) { c.kscale = kv->k_scale; c.vscale = kv->v_scale; }
    const int bf16_fast = kv->dtype == ATTN_DTYPE_BF16 && c.kk->kdot_bf16 && c.kk->vacc_bf16 && P.Dv % 32 == 0 &&
                          pl.Dvp == P.Dv;
    const int i8_fast = kv->dtype == ATTN_DTYPE_I8 && c.kk->kdot_i8; /* D <= 256 always */
    c.fast = opts->decode_fast && P.D % 32 == 0 && pl.Dp == P.D && (bf16_fast || i8_fast);
    tables_make(&c);
    attn__parallel_for(c.tpre[P.B], pl.nthreads, paged_task, &c);
    if (c.cpre[P.B] > 0) attn__parallel_for(c.cpre[P.B], pl.nthreads, paged_combine, &c);
    attn__free(owned);
    return ATTN_OK;
}
