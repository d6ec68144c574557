/* SPDX-License-Identifier: MIT */
/* bench_problem.c — one (model, Sq, Sk) problem of `attn bench`: the buffers
 * its variants share (attn's and the naive peer's), the typed 16-bit copies of
 * a --dtype row, and the calls that are timed (bu_fn callbacks over a run_ctx).
 *
 * Layouts: q, out, dO, dq (B, Sq, Hq, D); k, v, dk, dv (B, Sk, Hkv, D), or
 * head-major (B, Hkv, Sk, D) when kv_hm; lse (B, Hq, Sq); stats (B, Hq, Sq, 2)
 * (backward problems: the row statistics the forward hands its backward). */
#include "bench_cmd.h"
#include "io/half.h"

#include <math.h>
#include <string.h>

/* ─── random data ────────────────────────────────────────────────────────── */
void fill_rand(float *p, int64_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        /* sum of two uniforms: roughly bell-shaped in (-1, 1), scaled to unit variance */
        float a = (float)((s >> 40) & 0xFFFFFF) / 16777216.0f, b = (float)((s >> 16) & 0xFFFFFF) / 16777216.0f;
        p[i] = (a + b - 1.0f) * 2.449f;
    }
}

/* huge pages for the large ones, as NumPy (the PyTorch / ONNX Runtime peers' arrays) and attn_kvcache do */
float *falloc(int64_t n) { return attn__malloc_huge((size_t)(n > 0 ? n : 1) * sizeof(float)); }

double max_rel_diff(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        if (isnan(x) || isnan(y)) return INFINITY;
        double e = fabs(x - y);
        if (e > num) num = e;
        if (fabs(y) > den) den = fabs(y);
    }
    return num / (den > 0 ? den : 1);
}

static uint16_t to16(attn_dtype t, float x) { return t == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(x) : attn__f32_to_f16(x); }
static float from16(attn_dtype t, uint16_t x) { return t == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(x) : attn__f16_to_f32(x); }
/* 16-bit copy of x (rounded), and x rounded in place: both sides see the same inputs */
static void round_to(attn_dtype t, float *x, uint16_t *h, int64_t n) {
    for (int64_t i = 0; i < n; i++) { h[i] = to16(t, x[i]); x[i] = from16(t, h[i]); }
}
void widen(attn_dtype t, const uint16_t *h, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = from16(t, h[i]);
}

void problem_free(problem *p) {
    attn__free(p->q); attn__free(p->k); attn__free(p->v); attn__free(p->out); attn__free(p->dO);
    attn__free(p->lse); attn__free(p->stats); attn__free(p->dq); attn__free(p->dk); attn__free(p->dv);
    attn__free(p->po); attn__free(p->pdq); attn__free(p->pdk); attn__free(p->pdv);
    attn__free(p->ws);
    for (int i = 0; i < 8; i++) attn__free(p->h[i]);
    peer_ws_free(&p->pw);
    memset(p, 0, sizeof *p);
}

static attn_view vw(float *x, int64_t S, int64_t H, int64_t D) { return attn_view_bshd(x, S, H, D); }
/* K/V-side view in the problem's layout */
static attn_view kvw(const problem *p, float *x, int64_t S, int64_t H, int64_t D) {
    return p->kv_hm ? attn_view_bhsd(x, S, H, D) : attn_view_bshd(x, S, H, D);
}
/* Typed view of 16-bit copy `which` (kv: a K/V-side tensor, in the problem's K/V layout) */
static attn_tview tvw(const problem *p, int which, int kv) {
    const attn_sdpa_dims *d = &p->d;
    if (!kv) return attn_tview_bshd(p->h[which], p->dt, d->seq_q, d->heads_q, d->head_dim);
    return p->kv_hm ? attn_tview_bhsd(p->h[which], p->dt, d->seq_k, d->heads_kv, d->head_dim)
                    : attn_tview_bshd(p->h[which], p->dt, d->seq_k, d->heads_kv, d->head_dim);
}

/* The workspace: the largest any variant (plain / causal, forward / backward) needs. */
static size_t problem_ws_need(const problem *p, int backward) {
    size_t need = 0;
    for (int c = 0; c < 2; c++) {
        attn_sdpa_opts o = p->o;
        o.causal = c;
        o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        size_t a = attn_sdpa_fwd_workspace_size(&p->d, &o), b = backward ? attn_sdpa_bwd_workspace_size(&p->d, &o) : 0;
        if (p->dt != ATTN_DTYPE_F32) {
            const attn_tview q = tvw(p, H_Q, 0), k = tvw(p, H_K, 1), v = tvw(p, H_V, 1), out = tvw(p, H_O, 0);
            a = attn_sdpa_fwd_typed_workspace_size(&p->d, q, k, v, out, &o);
            if (backward)
                b = attn_sdpa_bwd_typed_workspace_size(&p->d, q, k, v, out, tvw(p, H_DO, 0), tvw(p, H_DQ, 0),
                                                       tvw(p, H_DK, 1), tvw(p, H_DV, 1), &o);
        }
        if (a > need) need = a;
        if (b > need) need = b;
    }
    return need;
}

/* Random inputs (rounded to dt, with their 16-bit copies, for a typed problem). */
static int problem_fill(problem *p, int backward) {
    const attn_sdpa_dims *d = &p->d;
    const int64_t Sq = d->seq_q, Sk = d->seq_k;
    const int64_t nq = Sq * d->heads_q * d->head_dim, nk = Sk * d->heads_kv * d->head_dim;
    const attn_dtype dt = p->dt;
    fill_rand(p->q, nq, 1 + (uint64_t)Sq);
    fill_rand(p->k, nk, 2 + (uint64_t)Sk);
    fill_rand(p->v, nk, 3 + (uint64_t)Sk);
    if (backward) fill_rand(p->dO, nq, 4 + (uint64_t)Sq);
    if (dt != ATTN_DTYPE_F32) {
        const int64_t n16[8] = {nq, nk, nk, nq, nq, nq, nk, nk};
        for (int i = 0; i < 8; i++)
            if ((backward || i < H_DO) && !(p->h[i] = attn__malloc_huge((size_t)n16[i] * 2 + 2))) return 1;
        round_to(dt, p->q, p->h[H_Q], nq);
        round_to(dt, p->k, p->h[H_K], nk);
        round_to(dt, p->v, p->h[H_V], nk);
        if (backward) round_to(dt, p->dO, p->h[H_DO], nq);
    }
    return 0;
}

/* Batch 1; 1 = out of memory. */
int problem_init(problem *p, const model_shape *m, int64_t Sq, int64_t Sk, int backward, int threads,
                 attn_dtype dt) {
    memset(p, 0, sizeof *p);
    p->dt = dt;
    p->d = (attn_sdpa_dims){ .batch = 1, .seq_q = Sq, .seq_k = Sk, .heads_q = m->Hq, .heads_kv = m->Hkv,
                             .head_dim = m->D, .head_dim_v = m->D };
    p->threads = threads;
    attn_sdpa_opts_init(&p->o);
    p->o.num_threads = threads;
    const int64_t nq = Sq * m->Hq * m->D, nk = Sk * m->Hkv * m->D;
    p->q = falloc(nq); p->k = falloc(nk); p->v = falloc(nk); p->out = falloc(nq); p->lse = falloc(Sq * m->Hq);
    p->po = falloc(nq);
    if (backward) {
        p->dO = falloc(nq); p->dq = falloc(nq); p->dk = falloc(nk); p->dv = falloc(nk);
        p->pdq = falloc(nq); p->pdk = falloc(nk); p->pdv = falloc(nk);
        p->stats = falloc(2 * Sq * m->Hq);
        p->o.row_stats = p->stats; /* the forward writes them, the backward reads them */
    }
    if (!p->q || !p->k || !p->v || !p->out || !p->lse || !p->po ||
        (backward && (!p->dO || !p->dq || !p->dk || !p->dv || !p->pdq || !p->pdk || !p->pdv || !p->stats)))
        return 1;
    if (problem_fill(p, backward)) return 1;
    const size_t need = problem_ws_need(p, backward);
    p->wsn = need;
    if (need && !(p->ws = attn__malloc(need))) return 1;
    if (need) memset(p->ws, 0, need); /* first touch outside the timed runs */
    if (peer_ws_init(&p->pw, Sq, Sk, backward, threads)) return 1;
    memset(p->pw.p, 0, p->pw.cap);
    if (p->pw.dp) memset(p->pw.dp, 0, p->pw.cap);
    return 0;
}

/* the problem's options with the call's mask: causal rows and decode are bottom-right */
static attn_sdpa_opts call_opts(const run_ctx *c) {
    attn_sdpa_opts o = c->p->o;
    o.causal = c->causal;
    o.align = ATTN_ALIGN_BOTTOM_RIGHT;
    return o;
}

int attn_fwd_fn(void *vctx) {
    const run_ctx *c = vctx;
    problem *p = c->p;
    const attn_sdpa_dims *d = &p->d;
    const attn_sdpa_opts o = call_opts(c);
    float *lse = c->infer ? NULL : p->lse;
    if (p->dt != ATTN_DTYPE_F32)
        return attn_sdpa_fwd_typed(d, tvw(p, H_Q, 0), tvw(p, H_K, 1), tvw(p, H_V, 1), tvw(p, H_O, 0), lse, &o,
                                   p->ws, p->wsn) != ATTN_OK;
    attn_status st = attn_sdpa_fwd(d, vw(p->q, d->seq_q, d->heads_q, d->head_dim), kvw(p, p->k, d->seq_k, d->heads_kv, d->head_dim),
                                   kvw(p, p->v, d->seq_k, d->heads_kv, d->head_dim), vw(p->out, d->seq_q, d->heads_q, d->head_dim),
                                   lse, &o, p->ws, p->wsn);
    return st != ATTN_OK;
}

int attn_bwd_fn(void *vctx) {
    const run_ctx *c = vctx;
    problem *p = c->p;
    const attn_sdpa_dims *d = &p->d;
    const attn_sdpa_opts o = call_opts(c);
    const int64_t Sq = d->seq_q, Sk = d->seq_k, Hq = d->heads_q, Hkv = d->heads_kv, D = d->head_dim;
    if (p->dt != ATTN_DTYPE_F32)
        return attn_sdpa_bwd_typed(d, tvw(p, H_Q, 0), tvw(p, H_K, 1), tvw(p, H_V, 1), tvw(p, H_O, 0),
                                   tvw(p, H_DO, 0), p->lse, tvw(p, H_DQ, 0), tvw(p, H_DK, 1), tvw(p, H_DV, 1), &o,
                                   p->ws, p->wsn) != ATTN_OK;
    attn_status st = attn_sdpa_bwd(d, vw(p->q, Sq, Hq, D), kvw(p, p->k, Sk, Hkv, D), kvw(p, p->v, Sk, Hkv, D),
                                   vw(p->out, Sq, Hq, D), vw(p->dO, Sq, Hq, D), p->lse, vw(p->dq, Sq, Hq, D),
                                   kvw(p, p->dk, Sk, Hkv, D), kvw(p, p->dv, Sk, Hkv, D), &o, p->ws, p->wsn);
    return st != ATTN_OK;
}

int peer_fwd_fn(void *vctx) {
    run_ctx *c = vctx;
    problem *p = c->p;
    float scale = 1.0f / sqrtf((float)p->d.head_dim);
    peer_sdpa_fwd(&p->d, c->causal, ATTN_ALIGN_BOTTOM_RIGHT, scale, p->q, p->k, p->v, p->kv_hm, p->po, &p->pw);
    return 0;
}

int peer_bwd_fn(void *vctx) {
    run_ctx *c = vctx;
    problem *p = c->p;
    float scale = 1.0f / sqrtf((float)p->d.head_dim);
    peer_sdpa_bwd(&p->d, c->causal, ATTN_ALIGN_BOTTOM_RIGHT, scale, p->q, p->k, p->v, p->dO, p->pdq, p->pdk, p->pdv,
                  &p->pw);
    return 0;
}
