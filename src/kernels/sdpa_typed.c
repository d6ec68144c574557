/* SPDX-License-Identifier: MIT */
/* sdpa_typed.c — attn_sdpa_fwd_typed / attn_sdpa_bwd_typed: sdpa on typed
 * views (F32, BF16, F16 in any mix).
 *
 * Two routes (attn.h "Reduced precision"):
 *   - bf16 fast path: q, k, v (and, backward, dO) BF16, D even (backward:
 *     Dv even too) and a bf16 dot-product unit in the active table
 *     (gemm_bf16): the drivers read those tensors in place and run every
 *     product (forward Q.K^T, P.V; backward also dO.V^T, P^T.dO, dS^T.Q,
 *     dS.K) on bf16 pairs, P and dS rounded to bf16;
 *   - otherwise every input that is not fp32 is converted once into an fp32
 *     copy in the workspace ("staging", (Bn, S, H, Dl) contiguous, Bn = B or
 *     1 for varlen), the fp32 kernels run on the copies, and outputs that are
 *     not fp32 are produced in fp32 copies and rounded into the caller's
 *     tensors at the end. The forward's o is converted row by row by the
 *     driver itself (no copy).
 * Workspace = [staging copies, 64-byte aligned each][the fp32 call's workspace].
 * Conversions run on the library's threads, one task per block of rows. */
#include "kernels/sdpa_internal.h"

#include <string.h>

enum { T_Q, T_K, T_V, T_O, T_DO, T_DQ, T_DK, T_DV, T_N };

/* One tensor argument and, if it is staged, its fp32 copy. */
typedef struct stage {
    attn_tview src;   /* the caller's view */
    attn_view f32;    /* the view the fp32 kernels use (the copy, or src itself when fp32) */
    int64_t Bn, S, H, Dl;
    int staged;       /* 1: copy in the workspace */
    int output;       /* converted back after the call */
    size_t off;       /* byte offset of the copy in the workspace */
} stage;

typedef struct layout {
    stage t[T_N];
    int nt;           /* 4 (fwd) or 8 (bwd) */
    size_t bytes;     /* staging bytes (multiple of 64) */
} layout;

static size_t fl(int64_t n) { return attn__round_up((size_t)n * sizeof(float)); }

/* Shapes of the tensors, and which ones are staged. fwd: o is never staged
 * (the driver converts its rows); fast: q, k, v (and, bwd, dO) are read in place. */
static void layout_make(layout *L, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, int bwd, int fast,
                        const attn_tview *tv) {
    memset(L, 0, sizeof *L);
    const int64_t B = opts->cu_seqlens_q ? 1 : dims->batch, D = dims->head_dim;
    const int64_t Dv = dims->head_dim_v ? dims->head_dim_v : D;
    const int64_t S[T_N] = {dims->seq_q, dims->seq_k, dims->seq_k, dims->seq_q,
                            dims->seq_q, dims->seq_q, dims->seq_k, dims->seq_k};
    const int64_t H[T_N] = {dims->heads_q, dims->heads_kv, dims->heads_kv, dims->heads_q,
                            dims->heads_q, dims->heads_q, dims->heads_kv, dims->heads_kv};
    const int64_t Dl[T_N] = {D, D, Dv, Dv, Dv, D, D, Dv};
    L->nt = bwd ? 8 : 4;
    for (int i = 0; i < L->nt; i++) {
        stage *t = &L->t[i];
        t->src = tv[i];
        t->Bn = B; t->S = S[i]; t->H = H[i]; t->Dl = Dl[i];
        t->output = bwd ? i >= T_DQ : i == T_O;
        t->staged = tv[i].dtype != ATTN_DTYPE_F32 && !(fast && (i <= T_V || (bwd && i == T_DO))) &&
                    !(!bwd && i == T_O);
        attn_view f = {(float *)tv[i].data, tv[i].stride_b, tv[i].stride_s, tv[i].stride_h};
        if (t->staged) {
            t->off = L->bytes;
            L->bytes += fl(B * S[i] * H[i] * Dl[i]);
            f.data = NULL; /* bound to the workspace later */
            f.stride_h = Dl[i];
            f.stride_s = H[i] * Dl[i];
            f.stride_b = S[i] * H[i] * Dl[i];
        }
        t->f32 = f;
    }
}

/* ─── conversion of staged tensors, in blocks of rows ─────────────────────── */

#define ROWS_PER_TASK 64

typedef struct cvt_ctx {
    const stage *t;
    const attn__sdpa_kernels *kt;
    int to_caller; /* 0: caller -> fp32 copy, 1: fp32 copy -> caller */
} cvt_ctx;

static void cvt_task(void *vctx, int64_t task, int tid) {
    const cvt_ctx *c = vctx;
    const stage *t = c->t;
    const int64_t nrows = t->Bn * t->S;
    const int64_t esz = 2; /* staged tensors are BF16 or F16 */
    (void)tid;
    for (int64_t row = task * ROWS_PER_TASK; row < nrows && row < (task + 1) * ROWS_PER_TASK; row++) {
        const int64_t b = row / t->S, s = row % t->S;
        for (int64_t h = 0; h < t->H; h++) {
            char *x = (char *)t->src.data +
                      (size_t)((t->Bn > 1 ? b * t->src.stride_b : 0) + s * t->src.stride_s + h * t->src.stride_h) * esz;
            float *f = t->f32.data + b * t->f32.stride_b + s * t->f32.stride_s + h * t->f32.stride_h;
            if (c->to_caller) c->kt->from_f32(t->src.dtype, t->Dl, f, x);
            else c->kt->to_f32(t->src.dtype, t->Dl, x, f);
        }
    }
}

static void convert(const stage *t, const attn__sdpa_kernels *kt, int to_caller, int nthreads) {
    const int64_t nrows = t->Bn * t->S;
    if (nrows == 0 || t->H == 0 || t->Dl == 0) return;
    cvt_ctx c = {t, kt, to_caller};
    attn__parallel_for(attn__ceil_div(nrows, ROWS_PER_TASK), nthreads, cvt_task, &c);
}

/* ─── entry points ────────────────────────────────────────────────────────── */

static int fast_path(const attn_sdpa_dims *dims, const attn_tview *tv, int bwd) {
    const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
    const int64_t Dv = dims->head_dim_v ? dims->head_dim_v : dims->head_dim;
    return kt->gemm_bf16 && tv[T_Q].dtype == ATTN_DTYPE_BF16 && tv[T_K].dtype == ATTN_DTYPE_BF16 &&
           tv[T_V].dtype == ATTN_DTYPE_BF16 && dims->head_dim % 2 == 0 &&
           (!bwd || (tv[T_DO].dtype == ATTN_DTYPE_BF16 && Dv % 2 == 0));
}

/* Staging bytes + the fp32 call's workspace; 0 on unusable arguments. */
static size_t typed_ws_size(const char *fn, const attn_sdpa_dims *dims, const attn_tview *tv,
                            const attn_sdpa_opts *opts_in, int bwd) {
    attn_sdpa_opts opts;
    if (attn__sdpa_opts_read(fn, opts_in, &opts)) return 0;
    for (int i = 0; i < (bwd ? 8 : 4); i++)
        if (tv[i].dtype != ATTN_DTYPE_F32 && tv[i].dtype != ATTN_DTYPE_BF16 && tv[i].dtype != ATTN_DTYPE_F16)
            return 0;
    const int fast = fast_path(dims, tv, bwd);
    size_t inner = attn__sdpa_ws_size(dims, &opts, bwd, fast);
    if (inner == 0) return 0;
    layout L;
    layout_make(&L, dims, &opts, bwd, fast, tv);
    return L.bytes + inner;
}

size_t attn_sdpa_fwd_typed_workspace_size(const attn_sdpa_dims *dims, attn_tview q, attn_tview k, attn_tview v,
                                          attn_tview o, const attn_sdpa_opts *opts) {
    const attn_tview tv[4] = {q, k, v, o};
    return typed_ws_size("attn_sdpa_fwd_typed_workspace_size", dims, tv, opts, 0);
}

size_t attn_sdpa_bwd_typed_workspace_size(const attn_sdpa_dims *dims, attn_tview q, attn_tview k, attn_tview v,
                                          attn_tview o, attn_tview dO, attn_tview dq, attn_tview dk, attn_tview dv,
                                          const attn_sdpa_opts *opts) {
    const attn_tview tv[8] = {q, k, v, o, dO, dq, dk, dv};
    return typed_ws_size("attn_sdpa_bwd_typed_workspace_size", dims, tv, opts, 1);
}

/* Binds the staging copies to the workspace (allocating both parts when ws
 * is NULL) and converts the staged inputs. *inner, *inner_size: what is left
 * for the fp32 call (NULL: it allocates its own). */
static attn_status stage_in(const char *fn, layout *L, void *ws, size_t ws_size, int nthreads, void **owned,
                            void **inner, size_t *inner_size) {
    unsigned char *base = ws;
    *owned = NULL;
    *inner = NULL;
    *inner_size = 0;
    if (L->bytes > 0) {
        if (!ws) {
            if (!(base = attn__malloc(L->bytes)))
                return attn__fail(ATTN_ERR_NOMEM, "%s: cannot allocate %zu bytes for converted tensors", fn,
                                  L->bytes);
            *owned = base;
        } else if (((uintptr_t)ws & (ATTN_ALIGN - 1)) != 0) {
            return attn__fail(ATTN_ERR_WORKSPACE, "%s: workspace %p is not 64-byte aligned", fn, ws);
        } else if (ws_size < L->bytes) {
            return attn__fail(ATTN_ERR_WORKSPACE,
                              "%s: workspace_size = %zu bytes, the converted tensors alone need %zu (query "
                              "the _typed_workspace_size function)", fn, ws_size, L->bytes);
        }
    }
    if (ws) {
        *inner = (unsigned char *)ws + L->bytes;
        *inner_size = ws_size - L->bytes;
    }
    const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
    for (int i = 0; i < L->nt; i++) {
        stage *t = &L->t[i];
        if (!t->staged) continue;
        /* base is NULL only when no staged tensor has an element (nothing is read) */
        t->f32.data = base ? (float *)(void *)(base + t->off) : NULL;
        if (!t->output) convert(t, kt, 0, nthreads);
    }
    return ATTN_OK;
}

attn_status attn_sdpa_fwd_typed(const attn_sdpa_dims *dims, attn_tview q, attn_tview k, attn_tview v, attn_tview o,
                                float *lse, const attn_sdpa_opts *opts_in, void *workspace, size_t workspace_size) {
    static const char fn[] = "attn_sdpa_fwd_typed";
    attn_sdpa_opts opts;
    attn_status st = attn__sdpa_opts_read(fn, opts_in, &opts);
    if (st) return st;
    const attn_tview tv[8] = {q, k, v, o, {0}, {0}, {0}, {0}};
    if ((st = attn__sdpa_validate_t(fn, dims, &opts, 0, tv, lse))) return st;
    if (dims->batch == 0 || dims->seq_q == 0) return ATTN_OK;
    const int fast = fast_path(dims, tv, 0);
    layout L;
    layout_make(&L, dims, &opts, 0, fast, tv);
    void *owned, *inner;
    size_t inner_size;
    const int nthreads = attn__resolve_threads(opts.num_threads);
    if ((st = stage_in(fn, &L, workspace, workspace_size, nthreads, &owned, &inner, &inner_size))) return st;
    st = attn__sdpa_fwd_exec(fn, dims, &opts, L.t[T_Q].f32, L.t[T_K].f32, L.t[T_V].f32, L.t[T_O].f32, o.dtype,
                             fast, lse, inner, inner_size);
    attn__free(owned);
    return st;
}

attn_status attn_sdpa_bwd_typed(const attn_sdpa_dims *dims, attn_tview q, attn_tview k, attn_tview v, attn_tview o,
                                attn_tview dO, const float *lse, attn_tview dq, attn_tview dk, attn_tview dv,
                                const attn_sdpa_opts *opts_in, void *workspace, size_t workspace_size) {
    static const char fn[] = "attn_sdpa_bwd_typed";
    attn_sdpa_opts opts;
    attn_status st = attn__sdpa_opts_read(fn, opts_in, &opts);
    if (st) return st;
    const attn_tview tv[8] = {q, k, v, o, dO, dq, dk, dv};
    if ((st = attn__sdpa_validate_t(fn, dims, &opts, 1, tv, lse))) return st;
    if (dims->batch == 0 || (dims->seq_q == 0 && dims->seq_k == 0)) return ATTN_OK;
    const int fast = fast_path(dims, tv, 1);
    layout L;
    layout_make(&L, dims, &opts, 1, fast, tv);
    void *owned, *inner;
    size_t inner_size;
    const int nthreads = attn__resolve_threads(opts.num_threads);
    if ((st = stage_in(fn, &L, workspace, workspace_size, nthreads, &owned, &inner, &inner_size))) return st;
    const stage *t = L.t;
    st = attn__sdpa_bwd_exec(fn, dims, &opts, t[T_Q].f32, t[T_K].f32, t[T_V].f32, t[T_O].f32, t[T_DO].f32, lse,
                             t[T_DQ].f32, t[T_DK].f32, t[T_DV].f32, fast, inner, inner_size);
    if (st == ATTN_OK) {
        const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
        for (int i = T_DQ; i <= T_DV; i++)
            if (t[i].staged) convert(&t[i], kt, 1, nthreads);
    }
    attn__free(owned);
    return st;
}
