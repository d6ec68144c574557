/* SPDX-License-Identifier: MIT */
/* sdpa.c — public entry points of the fused sdpa kernels: options, workspace
 * sizing, the execution plan (tiling + task split) and workspace handling
 * (the per-element logit work is in sdpa_elem.c).
 *
 * Determinism: the plan (block sizes, number of key splits / chunks) depends
 * only on the shape and options; every task writes memory it alone owns, and
 * partial results are combined in a fixed order. Results are therefore
 * bit-identical for any thread count and across runs (for a given ISA). */
#include "kernels/sdpa_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The defaults of every field (appended fields: add their default here). */
static void sdpa_opts_defaults(attn_sdpa_opts *opts) {
    memset(opts, 0, sizeof *opts);
    opts->struct_size = (uint32_t)sizeof *opts;
    opts->scale = 0.0f;
    opts->causal = 0;
    opts->align = ATTN_ALIGN_TOP_LEFT;
    opts->window_left = -1;
    opts->window_right = -1;
    opts->mask_kind = ATTN_MASK_NONE;
    opts->num_threads = 0;
    opts->bwd_fast = 0;
    opts->q_pos_offset = 0;
    opts->row_stats = NULL;
    opts->decode_fast = 0;
}

/* First release's layout ends at num_threads; later fields are appended after it. */
static const attn__struct_layout SDPA_OPTS_LAYOUT = {
    "attn_sdpa_opts", ATTN__SIZE_THROUGH(attn_sdpa_opts, num_threads), sizeof(attn_sdpa_opts)};

attn_status attn_sdpa_opts_init_size(attn_sdpa_opts *opts, size_t struct_size) {
    attn_sdpa_opts def;
    sdpa_opts_defaults(&def);
    return attn__struct_init(opts, struct_size, &def, &SDPA_OPTS_LAYOUT);
}

/* The caller's options as a complete struct of this library's layout. */
static attn_status sdpa_opts_read(const char *fn, const attn_sdpa_opts *opts, attn_sdpa_opts *full) {
    attn_sdpa_opts def;
    sdpa_opts_defaults(&def);
    return attn__struct_read(fn, opts, full, &def, &SDPA_OPTS_LAYOUT, ATTN_ERR_OPTION);
}

static size_t fl(int64_t n) { return attn__round_up((size_t)n * sizeof(float)); }

void attn__sdpa_plan_make(attn__sdpa_plan *pl, const attn__sdpa_prob *P, const attn__sdpa_blocks *bk, int bwd,
                          int nthreads) {
    memset(pl, 0, sizeof *pl);
    const int64_t mrows = bwd ? bk->mrows_bwd : bk->mrows_fwd;
    pl->Gs = P->G < mrows ? P->G : mrows;
    pl->nhc = attn__ceil_div(P->G, pl->Gs);
    pl->Br = mrows / pl->Gs;
    if (pl->Br < 1) pl->Br = 1;
    int64_t maxq = P->varlen ? P->Sq : P->Sq; /* packed total bounds every sequence */
    if (maxq >= 1 && pl->Br > maxq) pl->Br = maxq;
    pl->Mmax = pl->Gs * pl->Br;
    pl->Mp = attn__round16(pl->Mmax);
    pl->Bc = bk->bc;
    pl->KT = bk->bwd_tiles;
    pl->Dp = attn__round16(P->D);
    pl->Dvp = attn__round16(P->Dv);
    pl->nqb = attn__ceil_div(P->Sq, pl->Br);
    if (P->varlen) pl->ntasks0 = P->Hkv * pl->nhc * (pl->nqb + P->B);
    else pl->ntasks0 = P->B * pl->nqb * P->Hkv * pl->nhc;
    pl->nsplit = 1;
    pl->nchunks = 1;
    /* the shared area here; per-thread areas: fwd_bufs_get / bwd_bufs_get (one layout each) */
    const int64_t Bc = pl->Bc, Mp = pl->Mp, M = pl->Mmax, D = P->D, Dvp = pl->Dvp;
    size_t gl = 0;
    if (!bwd) {
        if (!P->varlen && pl->ntasks0 > 0 && pl->ntasks0 < bk->fwd_tasks) {
            int64_t want = attn__ceil_div(bk->fwd_tasks, pl->ntasks0);
            int64_t maxs = P->Sk / (2 * Bc);
            pl->nsplit = want < maxs ? want : maxs;
            if (pl->nsplit < 1) pl->nsplit = 1;
        }
        if (pl->nsplit > 1) gl += fl(pl->ntasks0 * pl->nsplit * (M * Dvp + 2 * Mp));
        if (P->varlen) gl += fl(2 * (P->B + 1));
    } else {
        int64_t pairs = P->B * P->Hkv;
        int64_t nkb = attn__ceil_div(P->Sk, Bc);
        if (pairs > 0 && pairs < bk->bwd_tasks && nkb > 1) {
            int64_t want = attn__ceil_div(bk->bwd_tasks, pairs);
            pl->nchunks = want < nkb ? want : nkb;
        }
        int64_t rows = P->varlen ? P->Sq : P->B * P->Sq;
        if (pl->nchunks > 1) gl += fl((pl->nchunks - 1) * rows * P->Hq * D);
        gl += 3 * fl(attn__sdpa_nlse(P)); /* row statistics lsel, Di, Dil (last) */
    }
    int64_t ntasks = bwd ? P->B * P->Hkv * pl->nchunks : pl->ntasks0 * pl->nsplit;
    if (ntasks < 1) ntasks = 1;
    if (nthreads > ntasks) nthreads = (int)ntasks;
    if (nthreads < 1) nthreads = 1;
    pl->nthreads = nthreads;
    pl->thread_bytes = bwd ? attn__sdpa_bwd_thread_bytes(P, pl) : attn__sdpa_fwd_thread_bytes(P, pl);
    pl->global_bytes = gl;
}

static size_t plan_total(const attn__sdpa_plan *pl) {
    return pl->global_bytes + (size_t)pl->nthreads * pl->thread_bytes;
}

/* Light validation for the size queries (0 when the shape is unusable). */
static int dims_ok(const attn_sdpa_dims *d) {
    return d && d->batch >= 0 && d->seq_q >= 0 && d->seq_k >= 0 && d->seq_q <= ((int64_t)1 << 40) &&
           d->seq_k <= ((int64_t)1 << 40) && d->heads_q >= 1 && d->heads_kv >= 1 && d->heads_q <= INT32_MAX &&
           d->heads_q % d->heads_kv == 0 && d->head_dim >= 1 && d->head_dim <= 256 && d->head_dim_v >= 0 &&
           d->head_dim_v <= 256 && d->batch <= ((int64_t)1 << 40) &&
           attn__sdpa_tasks_bounded(d->batch, d->seq_q, d->heads_q);
}

size_t attn__sdpa_ws_size(const attn_sdpa_dims *dims, const attn_sdpa_opts *opts_in, int bwd, int bf16) {
    attn_sdpa_opts opts_full;
    if (sdpa_opts_read(bwd ? "attn_sdpa_bwd_workspace_size" : "attn_sdpa_fwd_workspace_size", opts_in, &opts_full))
        return 0;
    const attn_sdpa_opts *opts = &opts_full;
    if (!dims_ok(dims)) return 0;
    if (opts->num_threads < 0) return 0;
    /* the plan's size products (tasks, partials) are bounded by these; the
     * calls themselves reject such shapes, the queries return 0 */
    const int64_t dmax = dims->head_dim_v > dims->head_dim ? dims->head_dim_v : dims->head_dim;
    int64_t nq, nk;
    if (__builtin_mul_overflow(dims->batch, dims->seq_q, &nq) || __builtin_mul_overflow(nq, dims->heads_q, &nq) ||
        __builtin_mul_overflow(nq, dmax, &nq) || nq > ((int64_t)1 << 52) ||
        __builtin_mul_overflow(dims->batch, dims->seq_k, &nk) || __builtin_mul_overflow(nk, dims->heads_kv, &nk) ||
        __builtin_mul_overflow(nk, dmax, &nk) || nk > ((int64_t)1 << 52))
        return 0;
    if (!(opts->dropout_p >= 0.0f && opts->dropout_p < 1.0f)) return 0; /* also NaN */
    attn__sdpa_prob P;
    attn__sdpa_prob_init(&P, dims, opts);
    P.bf16 = bf16;
    attn__sdpa_plan pl;
    attn__sdpa_plan_make(&pl, &P, &attn__sdpa_kernels_get()->blk, bwd, attn__resolve_threads(opts->num_threads));
    return plan_total(&pl);
}

size_t attn_sdpa_fwd_workspace_size(const attn_sdpa_dims *dims, const attn_sdpa_opts *opts) {
    return attn__sdpa_ws_size(dims, opts, 0, 0);
}
size_t attn_sdpa_bwd_workspace_size(const attn_sdpa_dims *dims, const attn_sdpa_opts *opts) {
    return attn__sdpa_ws_size(dims, opts, 1, 0);
}

/* Binds the caller's workspace (or allocates one). *owned is set when the
 * call must free it. May lower pl->nthreads to fit a smaller workspace. */
static attn_status bind_workspace(const char *fn, attn__sdpa_plan *pl, void *ws, size_t ws_size,
                                  unsigned char **base, void **owned) {
    *owned = NULL;
    if (!ws) {
        size_t need = plan_total(pl);
        void *p = attn__malloc(need);
        if (!p) return attn__fail(ATTN_ERR_NOMEM, "%s: cannot allocate a %zu-byte workspace", fn, need);
        *owned = p;
        *base = p;
        return ATTN_OK;
    }
    if (((uintptr_t)ws & (ATTN_ALIGN - 1)) != 0)
        return attn__fail(ATTN_ERR_WORKSPACE, "%s: workspace %p is not 64-byte aligned", fn, ws);
    size_t one = pl->global_bytes + pl->thread_bytes;
    if (ws_size < one)
        return attn__fail(ATTN_ERR_WORKSPACE,
                          "%s: workspace_size = %zu bytes, need %zu for %d threads (at least %zu for one thread)", fn,
                          ws_size, plan_total(pl), pl->nthreads, one);
    size_t fit = (ws_size - pl->global_bytes) / pl->thread_bytes;
    if (fit < (size_t)pl->nthreads) pl->nthreads = (int)fit;
    *base = ws;
    return ATTN_OK;
}

attn_status attn__sdpa_fwd_exec(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts,
                                attn_view q, attn_view k, attn_view v, attn_view o, attn_dtype ot, int bf16,
                                float *lse, void *workspace, size_t workspace_size) {
    attn__sdpa_prob P;
    attn__sdpa_prob_init(&P, dims, opts);
    P.q = q; P.k = k; P.v = v; P.o = o;
    P.ot = ot;
    P.bf16 = bf16;
    P.lse_out = lse;
    if (P.B == 0 || P.Sq == 0) return ATTN_OK;
    const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
    attn__sdpa_plan pl;
    attn__sdpa_plan_make(&pl, &P, &kt->blk, 0, attn__resolve_threads(opts->num_threads));
    unsigned char *base;
    void *owned;
    attn_status st;
    if ((st = bind_workspace(fn, &pl, workspace, workspace_size, &base, &owned))) return st;
    attn__sdpa_fwd_run(&P, &pl, kt, base);
    attn__free(owned);
    return ATTN_OK;
}

attn_status attn__sdpa_bwd_exec(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts,
                                attn_view q, attn_view k, attn_view v, attn_view o, attn_view dO, const float *lse,
                                attn_view dq, attn_view dk, attn_view dv, int bf16, void *workspace,
                                size_t workspace_size) {
    attn__sdpa_prob P;
    attn__sdpa_prob_init(&P, dims, opts);
    P.q = q; P.k = k; P.v = v; P.o = o; P.dO = dO;
    P.bf16 = bf16;
    P.dq = dq; P.dk = dk; P.dv = dv;
    P.lse_in = lse;
    if (P.B == 0 || (P.Sq == 0 && P.Sk == 0)) return ATTN_OK;
    const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
    attn__sdpa_plan pl;
    attn__sdpa_plan_make(&pl, &P, &kt->blk, 1, attn__resolve_threads(opts->num_threads));
    unsigned char *base;
    void *owned;
    attn_status st;
    if ((st = bind_workspace(fn, &pl, workspace, workspace_size, &base, &owned))) return st;
    attn__sdpa_bwd_run(&P, &pl, kt, base);
    attn__free(owned);
    return ATTN_OK;
}

attn_status attn__sdpa_opts_read(const char *fn, const attn_sdpa_opts *opts, attn_sdpa_opts *full) {
    return sdpa_opts_read(fn, opts, full);
}

attn_status attn_sdpa_fwd(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v, attn_view o,
                          float *lse, const attn_sdpa_opts *opts, void *workspace, size_t workspace_size) {
    static const char fn[] = "attn_sdpa_fwd";
    attn_sdpa_opts full;
    attn_status st = sdpa_opts_read(fn, opts, &full);
    if (st) return st;
    attn_view none = {0};
    if ((st = attn__sdpa_validate(fn, dims, &full, 0, q, k, v, o, none, lse, none, none, none))) return st;
    return attn__sdpa_fwd_exec(fn, dims, &full, q, k, v, o, ATTN_DTYPE_F32, 0, lse, workspace, workspace_size);
}

attn_status attn_sdpa_bwd(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v, attn_view o,
                          attn_view dO, const float *lse, attn_view dq, attn_view dk, attn_view dv,
                          const attn_sdpa_opts *opts, void *workspace, size_t workspace_size) {
    static const char fn[] = "attn_sdpa_bwd";
    attn_sdpa_opts full;
    attn_status st = sdpa_opts_read(fn, opts, &full);
    if (st) return st;
    if ((st = attn__sdpa_validate(fn, dims, &full, 1, q, k, v, o, dO, lse, dq, dk, dv))) return st;
    return attn__sdpa_bwd_exec(fn, dims, &full, q, k, v, o, dO, lse, dq, dk, dv, 0, workspace, workspace_size);
}

/* ─── validation only ─────────────────────────────────────────────────────── */

attn_status attn_sdpa_fwd_check(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v, attn_view o,
                                const float *lse, const attn_sdpa_opts *opts) {
    attn_sdpa_opts full;
    attn_status st = sdpa_opts_read("attn_sdpa_fwd", opts, &full);
    if (st) return st;
    attn_view none = {0};
    return attn__sdpa_validate("attn_sdpa_fwd", dims, &full, 0, q, k, v, o, none, lse, none, none, none);
}

attn_status attn_sdpa_bwd_check(const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v, attn_view o,
                                attn_view dO, const float *lse, attn_view dq, attn_view dk, attn_view dv,
                                const attn_sdpa_opts *opts) {
    attn_sdpa_opts full;
    attn_status st = sdpa_opts_read("attn_sdpa_bwd", opts, &full);
    if (st) return st;
    return attn__sdpa_validate("attn_sdpa_bwd", dims, &full, 1, q, k, v, o, dO, lse, dq, dk, dv);
}
