/* SPDX-License-Identifier: MIT */
/* cmd_bench.c — `attn bench`: speed of the sdpa kernels and of the layer,
 * next to peers measured in the same process.
 *
 *  sdpa rows   forward, backward, causal forward, causal backward at
 *              Llama-3-8B (Hq 32, Hkv 8, D 128) and GPT-2 (Hq = Hkv = 12, D 64)
 *              attention, batch 1, S = 512 .. 4096; single-token decode
 *              (Sq = 1, bottom-right) against a 4096-long cache.
 *              Peer: bench_peer.c (naive OpenBLAS, materialised Sq x Sk).
 *  layer rows  attn_mha forward and forward+backward at E = 1024, 16 heads,
 *              B = 4, S = 2048; the same work done by its parts (OpenBLAS
 *              GEMMs + sdpa kernels) timed separately; PyTorch
 *              nn.MultiheadAttention via bench/torch_mha_peer.py if available.
 *  decode-paged rows  batched decode through a paged KV cache next to the same
 *              batch from a contiguous head-major cache, vs a streaming-read
 *              probe (bench_paged.c).
 *  --memory    one causal forward at S = 32768, Hq 32, Hkv 8, D 128:
 *              peak RSS minus inputs and outputs.
 *
 * FLOP counts (FlashAttention convention): forward 4·B·Hq·Sq·Sk·D, halved
 * when causal (Sq = Sk); backward 2.5 x forward. Every row: the kernel's
 * output is validated against the peer's first; each side then runs until
 * >= --runs runs and >= --min-time seconds; the median is reported. */
#include "args.h"
#include "bench_paged.h"
#include "bench_peer.h"
#include "bench_pypeer.h"
#include "bench_util.h"
#include "cli_out.h"
#include "cli.h"
#include "core/core.h"
#include "mpi_delegate.h"
#include "kernels/gemm.h"
#include "io/half.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif

static const char *SUB = "bench";

const char *cli_blas_core_hint(const char *core); /* cmd_info.c */

#define VALIDATE_TOL 1e-3 /* max|attn - peer| / max|peer|, both fp32 */

typedef struct model_shape {
    const char *name;
    int64_t Hq, Hkv, D;
} model_shape;
static const model_shape MODELS[] = { { "llama3-8b", 32, 8, 128 }, { "gpt2", 12, 12, 64 } };
enum { NMODELS = 2 };

/* decode: K/V (B, Sk, Hkv, D); decode-hm: K/V head-major (B, Hkv, Sk, D), the layout of attn_kvcache */
enum { V_FWD, V_BWD, V_FWD_CAUSAL, V_BWD_CAUSAL, V_DECODE, V_DECODE_HM, NVARIANTS };
static const char *const VNAMES[NVARIANTS] = { "fwd", "bwd", "fwd-causal", "bwd-causal", "decode", "decode-hm" };
static int is_decode(int variant) { return variant == V_DECODE || variant == V_DECODE_HM; }

typedef struct bench_row {
    const model_shape *m;
    int variant;
    int64_t B, Sq, Sk;
    double flops, bytes; /* bytes: K+V read (decode) */
    bu_timing ta, tp;    /* attn, peer */
    double err;
    int valid, ran;
    attn_dtype dt;       /* element type of the tensors (kernel rows; --dtype) */
    char note[256];
    pypeer_res py[PYPEER_N]; /* PyTorch, ONNX Runtime (bench_pypeer.h) */
} bench_row;

/* --dtype names */
static const char *dtype_name(attn_dtype t) {
    return t == ATTN_DTYPE_BF16 ? "bf16" : t == ATTN_DTYPE_F16 ? "f16" : "f32";
}
/* Validation tolerance against the fp32 peers: the output's rounding (2^-8 bf16, 2^-11 f16) and, for
 * bf16, the bf16 probabilities of the fast forward, with room. */
static double dtype_tol(attn_dtype t) { return t == ATTN_DTYPE_BF16 ? 3e-2 : t == ATTN_DTYPE_F16 ? 4e-3 : 1e-3; }

/* ─── progress on stderr ─────────────────────────────────────────────────── */
static int g_tty;
static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (g_tty) fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    if (!g_tty) fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}
/* a step inside a row: shown on a terminal only (logs get one line per row) */
static void progress_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress_step(const char *fmt, ...) {
    if (!g_tty) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}
static void progress_clear(void) {
    if (g_tty) fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* ─── random data ────────────────────────────────────────────────────────── */
static void fill_rand(float *p, int64_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        /* sum of two uniforms: roughly bell-shaped in (-1, 1), scaled to unit variance */
        float a = (float)((s >> 40) & 0xFFFFFF) / 16777216.0f, b = (float)((s >> 16) & 0xFFFFFF) / 16777216.0f;
        p[i] = (a + b - 1.0f) * 2.449f;
    }
}

static float *falloc(int64_t n) { return attn__malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }

static double max_rel_diff(const float *a, const float *b, int64_t n) {
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

/* ─── one (model, Sq, Sk) problem: buffers shared by its variants ───────── */
typedef struct problem {
    attn_sdpa_dims d;
    attn_sdpa_opts o;
    float *q, *k, *v, *out, *dO, *lse, *dq, *dk, *dv; /* attn */
    float *po, *pdq, *pdk, *pdv;                      /* peer */
    void *ws;
    size_t wsn;
    peer_ws pw;
    int threads;
    int kv_hm; /* k, v (and dk, dv) are (B, Hkv, Sk, D) instead of (B, Sk, Hkv, D) */
    attn_dtype dt; /* F32, or the type of the 16-bit copies below (typed calls) */
    uint16_t *h[8]; /* q, k, v, out, dO, dq, dk, dv in dt (the fp32 inputs hold the same rounded values) */
} problem;

enum { H_Q, H_K, H_V, H_O, H_DO, H_DQ, H_DK, H_DV };

static uint16_t to16(attn_dtype t, float x) { return t == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(x) : attn__f32_to_f16(x); }
static float from16(attn_dtype t, uint16_t x) { return t == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(x) : attn__f16_to_f32(x); }
/* 16-bit copy of x (rounded), and x rounded in place: both sides see the same inputs */
static void round_to(attn_dtype t, float *x, uint16_t *h, int64_t n) {
    for (int64_t i = 0; i < n; i++) { h[i] = to16(t, x[i]); x[i] = from16(t, h[i]); }
}
static void widen(attn_dtype t, const uint16_t *h, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = from16(t, h[i]);
}

static void problem_free(problem *p) {
    attn__free(p->q); attn__free(p->k); attn__free(p->v); attn__free(p->out); attn__free(p->dO);
    attn__free(p->lse); attn__free(p->dq); attn__free(p->dk); attn__free(p->dv);
    attn__free(p->po); attn__free(p->pdq); attn__free(p->pdk); attn__free(p->pdv);
    attn__free(p->ws);
    for (int i = 0; i < 8; i++) attn__free(p->h[i]);
    peer_ws_free(&p->pw);
    memset(p, 0, sizeof *p);
}

static attn_view vw(float *x, int64_t S, int64_t H, int64_t D);
static attn_view kvw(const problem *p, float *x, int64_t S, int64_t H, int64_t D);
static attn_tview tvw(const problem *p, int which, int kv);

static int problem_init(problem *p, const model_shape *m, int64_t Sq, int64_t Sk, int backward, int threads,
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
    }
    if (!p->q || !p->k || !p->v || !p->out || !p->lse || !p->po ||
        (backward && (!p->dO || !p->dq || !p->dk || !p->dv || !p->pdq || !p->pdk || !p->pdv)))
        return 1;
    fill_rand(p->q, nq, 1 + (uint64_t)Sq);
    fill_rand(p->k, nk, 2 + (uint64_t)Sk);
    fill_rand(p->v, nk, 3 + (uint64_t)Sk);
    if (backward) fill_rand(p->dO, nq, 4 + (uint64_t)Sq);
    if (dt != ATTN_DTYPE_F32) {
        const int64_t n16[8] = {nq, nk, nk, nq, nq, nq, nk, nk};
        for (int i = 0; i < 8; i++)
            if ((backward || i < H_DO) && !(p->h[i] = attn__malloc((size_t)n16[i] * 2 + 2))) return 1;
        round_to(dt, p->q, p->h[H_Q], nq);
        round_to(dt, p->k, p->h[H_K], nk);
        round_to(dt, p->v, p->h[H_V], nk);
        if (backward) round_to(dt, p->dO, p->h[H_DO], nq);
    }
    /* workspace: the largest any variant needs */
    size_t need = 0;
    for (int c = 0; c < 2; c++) {
        attn_sdpa_opts o = p->o;
        o.causal = c;
        o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        size_t a = attn_sdpa_fwd_workspace_size(&p->d, &o), b = backward ? attn_sdpa_bwd_workspace_size(&p->d, &o) : 0;
        if (dt != ATTN_DTYPE_F32) {
            const attn_tview q = tvw(p, H_Q, 0), k = tvw(p, H_K, 1), v = tvw(p, H_V, 1), out = tvw(p, H_O, 0);
            a = attn_sdpa_fwd_typed_workspace_size(&p->d, q, k, v, out, &o);
            if (backward)
                b = attn_sdpa_bwd_typed_workspace_size(&p->d, q, k, v, out, tvw(p, H_DO, 0), tvw(p, H_DQ, 0),
                                                       tvw(p, H_DK, 1), tvw(p, H_DV, 1), &o);
        }
        if (a > need) need = a;
        if (b > need) need = b;
    }
    p->wsn = need;
    if (need && !(p->ws = attn__malloc(need))) return 1;
    if (need) memset(p->ws, 0, need); /* first touch outside the timed runs */
    if (peer_ws_init(&p->pw, Sq, Sk, backward, threads)) return 1;
    memset(p->pw.p, 0, p->pw.cap);
    if (p->pw.dp) memset(p->pw.dp, 0, p->pw.cap);
    return 0;
}

typedef struct run_ctx {
    problem *p;
    int causal, bwd;
} run_ctx;

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

static int attn_fwd_fn(void *vctx) {
    run_ctx *c = vctx;
    problem *p = c->p;
    const attn_sdpa_dims *d = &p->d;
    attn_sdpa_opts o = p->o;
    o.causal = c->causal;
    o.align = ATTN_ALIGN_BOTTOM_RIGHT;
    if (p->dt != ATTN_DTYPE_F32)
        return attn_sdpa_fwd_typed(d, tvw(p, H_Q, 0), tvw(p, H_K, 1), tvw(p, H_V, 1), tvw(p, H_O, 0), p->lse, &o,
                                   p->ws, p->wsn) != ATTN_OK;
    attn_status st = attn_sdpa_fwd(d, vw(p->q, d->seq_q, d->heads_q, d->head_dim), kvw(p, p->k, d->seq_k, d->heads_kv, d->head_dim),
                                   kvw(p, p->v, d->seq_k, d->heads_kv, d->head_dim), vw(p->out, d->seq_q, d->heads_q, d->head_dim),
                                   p->lse, &o, p->ws, p->wsn);
    return st != ATTN_OK;
}

static int attn_bwd_fn(void *vctx) {
    run_ctx *c = vctx;
    problem *p = c->p;
    const attn_sdpa_dims *d = &p->d;
    attn_sdpa_opts o = p->o;
    o.causal = c->causal;
    o.align = ATTN_ALIGN_BOTTOM_RIGHT;
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

static int peer_fwd_fn(void *vctx) {
    run_ctx *c = vctx;
    problem *p = c->p;
    float scale = 1.0f / sqrtf((float)p->d.head_dim);
    peer_sdpa_fwd(&p->d, c->causal, ATTN_ALIGN_BOTTOM_RIGHT, scale, p->q, p->k, p->v, p->kv_hm, p->po, &p->pw);
    return 0;
}

static int peer_bwd_fn(void *vctx) {
    run_ctx *c = vctx;
    problem *p = c->p;
    float scale = 1.0f / sqrtf((float)p->d.head_dim);
    peer_sdpa_bwd(&p->d, c->causal, ATTN_ALIGN_BOTTOM_RIGHT, scale, p->q, p->k, p->v, p->dO, p->pdq, p->pdk, p->pdv,
                  &p->pw);
    return 0;
}

typedef struct timing_cfg {
    int min_runs;
    double min_time, max_time;
} timing_cfg;

/* Validates then times one row. */
static void run_row(bench_row *r, problem *p, const timing_cfg *tc, int idx, int total) {
    const int bwd = r->variant == V_BWD || r->variant == V_BWD_CAUSAL;
    run_ctx c = { p, r->variant == V_FWD_CAUSAL || r->variant == V_BWD_CAUSAL || is_decode(r->variant), bwd };
    const attn_sdpa_dims *d = &p->d;
    const int64_t nq = d->seq_q * d->heads_q * d->head_dim, nk = d->seq_k * d->heads_kv * d->head_dim;
    progress("[%d/%d] %s %s S=%lld: validating, then timing", idx, total, r->m->name, VNAMES[r->variant],
             (long long)(is_decode(r->variant) ? r->Sk : r->Sq));
    /* warm-up + validation */
    if (attn_fwd_fn(&c)) { snprintf(r->note, sizeof r->note, "attn_sdpa_fwd: %s", attn_last_error()); return; }
    if (bwd && attn_bwd_fn(&c)) { snprintf(r->note, sizeof r->note, "attn_sdpa_bwd: %s", attn_last_error()); return; }
    if (p->dt != ATTN_DTYPE_F32) { /* fp32 copies of the typed outputs, for the checks */
        widen(p->dt, p->h[H_O], p->out, nq);
        if (bwd) {
            widen(p->dt, p->h[H_DQ], p->dq, nq);
            widen(p->dt, p->h[H_DK], p->dk, nk);
            widen(p->dt, p->h[H_DV], p->dv, nk);
        }
    }
    if (bwd) {
        peer_bwd_fn(&c);
        double e1 = max_rel_diff(p->dq, p->pdq, nq), e2 = max_rel_diff(p->dk, p->pdk, nk), e3 = max_rel_diff(p->dv, p->pdv, nk);
        r->err = e1 > e2 ? e1 : e2;
        r->err = r->err > e3 ? r->err : e3;
    } else {
        peer_fwd_fn(&c);
        r->err = max_rel_diff(p->out, p->po, nq);
    }
    r->valid = r->err <= dtype_tol(p->dt);
    if (!r->valid) snprintf(r->note, sizeof r->note, "output differs from the peer: max rel err %.2e > %.0e", r->err, dtype_tol(p->dt));
    usleep(100000); /* let OpenBLAS's workers go idle before timing the kernel */
    progress_step("[%d/%d] %s %s S=%lld: timing attn", idx, total, r->m->name, VNAMES[r->variant],
             (long long)(is_decode(r->variant) ? r->Sk : r->Sq));
    if (bu_time(bwd ? attn_bwd_fn : attn_fwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &r->ta)) {
        snprintf(r->note, sizeof r->note, "attn failed: %s", attn_last_error());
        return;
    }
    progress_step("[%d/%d] %s %s S=%lld: timing peer", idx, total, r->m->name, VNAMES[r->variant],
             (long long)(is_decode(r->variant) ? r->Sk : r->Sq));
    bu_time(bwd ? peer_bwd_fn : peer_fwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &r->tp);
    r->ran = 1;
}

static double sdpa_flops(const model_shape *m, int64_t Sq, int64_t Sk, int variant) {
    double f = 4.0 * (double)m->Hq * (double)Sq * (double)Sk * (double)m->D;
    if (variant == V_FWD_CAUSAL || variant == V_BWD_CAUSAL) f *= 0.5;
    if (variant == V_BWD || variant == V_BWD_CAUSAL) f *= 2.5;
    return f;
}

/* ─── PyTorch / ONNX Runtime peers of the sdpa rows ──────────────────────── */
/* Which python peers run, and how they are timed (the same rule as attn's rows). */
typedef struct pypeer_cfg {
    int use[PYPEER_N];
    const char *why_not[PYPEER_N]; /* note of a peer that is off */
    pypeer_timing tc;
} pypeer_cfg;

/* Writes a problem's inputs once and runs each enabled peer over the variants of rows[0..n). */
static void pypeers_run_group(bench_row *rows, int n, const problem *p, const pypeer_cfg *pc, pypeer_dir *pd) {
    const char *vars[8];
    for (int j = 0; j < n; j++) vars[j] = VNAMES[rows[j].variant];
    int any = 0, bwd = 0;
    for (int k = 0; k < PYPEER_N; k++) any |= pc->use[k];
    for (int j = 0; j < n; j++) bwd |= rows[j].variant == V_BWD || rows[j].variant == V_BWD_CAUSAL;
    char err[128] = ""; /* fits a pypeer_res note after "n/a: " */
    memset(pd, 0, sizeof *pd);
    if (any) {
        progress_step("%s S=%lld: PyTorch / ONNX Runtime peers (bench/sdpa_peer.py)", rows[0].m->name,
                      (long long)(is_decode(rows[0].variant) ? rows[0].Sk : rows[0].Sq));
        if (pypeer_begin(pd, &p->d, p->kv_hm, p->q, p->k, p->v, bwd ? p->dO : NULL, err, sizeof err)) any = 0;
        pd->dtype = dtype_name(p->dt); /* the peers compute in the row's type */
    }
    for (int k = 0; k < PYPEER_N; k++) {
        pypeer_res res[8];
        if (pc->use[k] && any) {
            pypeer_run(k, pd, vars, n, &pc->tc, res);
        } else {
            for (int j = 0; j < n; j++) {
                memset(&res[j], 0, sizeof res[j]);
                snprintf(res[j].note, sizeof res[j].note, "n/a: %s", !pc->use[k] ? pc->why_not[k] : err);
            }
        }
        for (int j = 0; j < n; j++) rows[j].py[k] = res[j];
    }
}

/* After attn's row ran: the peer's outputs against attn's (the same check as the naive peer's). */
static void pypeers_check(bench_row *r, const problem *p, const pypeer_dir *pd) {
    const attn_sdpa_dims *d = &p->d;
    const int64_t nq = d->seq_q * d->heads_q * d->head_dim, nk = d->seq_k * d->heads_kv * d->head_dim;
    const int bwd = r->variant == V_BWD || r->variant == V_BWD_CAUSAL;
    const char *names[3] = { bwd ? "dq" : "o", "dk", "dv" };
    const float *mine[3] = { bwd ? p->dq : p->out, p->dk, p->dv };
    const int64_t sizes[3] = { nq, nk, nk };
    for (int k = 0; k < PYPEER_N; k++) {
        pypeer_res *py = &r->py[k];
        if (!py->ran) continue;
        if (!r->ran) { py->ran = 0; snprintf(py->note, sizeof py->note, "n/a: attn's row failed"); continue; }
        py->err = 0;
        for (int t = 0; t < (bwd ? 3 : 1); t++) {
            attn_npy arr;
            const float *x = pypeer_load(k, pd, VNAMES[r->variant], names[t], sizes[t], &arr);
            double e = x ? max_rel_diff(mine[t], x, sizes[t]) : INFINITY;
            if (x) attn_npy_free(&arr);
            if (!(e <= py->err)) py->err = e;
        }
        /* a typed row's peer computes in the same type: both roundings count */
        const double tol = p->dt == ATTN_DTYPE_F32 ? VALIDATE_TOL : 2 * dtype_tol(p->dt);
        py->valid = py->err <= tol;
        if (!py->valid)
            snprintf(py->note, sizeof py->note, "%s output differs from attn's: max rel err %.2e > %.0e", pypeer_name(k),
                     py->err, tol);
    }
}

/* "  torch ms      x" columns of one row: the peer's median and attn's speed-up over it, or n/a */
static void print_pypeer_cols(const bench_row *r) {
    for (int k = 0; k < PYPEER_N; k++) {
        const pypeer_res *py = &r->py[k];
        if (py->ran && r->ran) printf(" %9.2f %6.2fx%s", py->ms, py->ms / (r->ta.median_s * 1e3), py->valid ? " " : "!");
        else printf(" %9s %7s ", "n/a", "");
    }
    printf(" %3.0f/%3.0f", r->py[0].ran ? 100 * r->py[0].cpu_share : 0.0, r->py[1].ran ? 100 * r->py[1].cpu_share : 0.0);
}

/* "torch_ms": ..., "torch_gflops": ..., "torch_speedup": ... (null when the peer did not run) */
static void json_pypeers(FILE *f, const bench_row *r) {
    for (int k = 0; k < PYPEER_N; k++) {
        const pypeer_res *py = &r->py[k];
        const char *n = pypeer_name(k);
        if (py->ran && r->ran) {
            fprintf(f, ", \"%s_ms\": %.4f, \"%s_best_ms\": %.4f, \"%s_runs\": %d, \"%s_gflops\": %.2f, \"%s_speedup\": %.3f, "
                       "\"%s_max_err\": %.3e, \"%s_valid\": %s, \"%s_cpu_share\": %.3f, \"%s_op\": ",
                    n, py->ms, n, py->best_ms, n, py->runs, n, r->flops / py->ms * 1e-6, n, py->ms / (r->ta.median_s * 1e3), n,
                    isfinite(py->err) ? py->err : -1.0, n, py->valid ? "true" : "false", n, py->cpu_share, n);
            bu_json_str(f, py->op);
            fprintf(f, ", \"%s_version\": ", n);
            bu_json_str(f, py->version);
        } else {
            fprintf(f, ", \"%s_ms\": null, \"%s_gflops\": null, \"%s_speedup\": null", n, n, n);
        }
        if (py->note[0]) {
            fprintf(f, ", \"%s_note\": ", n);
            bu_json_str(f, py->note);
        }
    }
}

/* ─── layer ──────────────────────────────────────────────────────────────── */
typedef struct layer_res {
    int ran;
    char note[256];
    int64_t E, H, B, S;
    double flops_fwd, flops_fb; /* torch_mha_peer.py convention */
    bu_timing fwd, fb;          /* attn_mha eval forward; training forward + backward */
    bu_timing gemm_fwd, gemm_bwd, sdpa_fwd, sdpa_bwd;
    double torch_fwd_ms, torch_fb_ms; /* < 0: not measured */
    char torch_note[256], torch_version[64];
} layer_res;

typedef struct layer_ctx {
    attn_mha *m;
    attn_mha_input in;
    float *y, *dy, *dx;
    /* parts */
    float *X, *W, *Y, *G; /* (BS, E), (E, E), (BS, E), (E, E) */
    int64_t rows, E;
    problem p;
    run_ctx rc;
} layer_ctx;

static int layer_fwd_fn(void *vctx) {
    layer_ctx *c = vctx;
    return attn_mha_forward(c->m, &c->in, c->y) != ATTN_OK;
}
static int layer_fb_fn(void *vctx) {
    layer_ctx *c = vctx;
    if (attn_mha_forward(c->m, &c->in, c->y) != ATTN_OK) return 1;
    return attn_mha_backward(c->m, c->dy, c->dx, NULL, NULL) != ATTN_OK;
}
/* The layer's GEMMs, through the same wrapper the layer uses (kernels/gemm.h:
 * a fixed split over the attn pool, single-threaded OpenBLAS per block).
 * Forward: 4 projections (rows, E) = (rows, E) · (E, E)ᵀ. */
static int gemm_fwd_fn(void *vctx) {
    layer_ctx *c = vctx;
    const int64_t n = c->rows, e = c->E;
    for (int i = 0; i < 4; i++) attn__sgemm(0, 1, n, e, e, 1.0f, c->X, e, c->W, e, 0.0f, c->Y, e);
    return 0;
}
/* Backward: per projection dX += dY · W and dW += dYᵀ · X. */
static int gemm_bwd_fn(void *vctx) {
    layer_ctx *c = vctx;
    const int64_t n = c->rows, e = c->E;
    for (int i = 0; i < 4; i++) {
        attn__sgemm(0, 0, n, e, e, 1.0f, c->Y, e, c->W, e, 1.0f, c->X, e);
        attn__sgemm(1, 0, e, e, n, 1.0f, c->Y, e, c->X, e, 1.0f, c->G, e);
    }
    return 0;
}
static int sdpa_fwd_part(void *vctx) { layer_ctx *c = vctx; return attn_fwd_fn(&c->rc); }
static int sdpa_bwd_part(void *vctx) { layer_ctx *c = vctx; return attn_bwd_fn(&c->rc); }

/* Finds "key": <number> in a JSON line. */
static int json_num(const char *line, const char *key, double *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return 0;
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    if (end == p) return 0;
    *out = v;
    return 1;
}
static int json_str(const char *line, const char *key, char *out, size_t n) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    if (!p) return 0;
    p += strlen(pat);
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < n) { out[i] = p[i]; i++; }
    out[i] = 0;
    return 1;
}

static void run_torch(layer_res *L, int threads, int repeat) {
    L->torch_fwd_ms = L->torch_fb_ms = -1;
    const char *py = bu_which("python3");
    if (!py) { snprintf(L->torch_note, sizeof L->torch_note, "skipped: python3 not found"); return; }
    char script[4096];
    snprintf(script, sizeof script, "%s/bench/torch_mha_peer.py", ATTN_SOURCE_DIR);
    if (access(script, R_OK) != 0) {
        snprintf(L->torch_note, sizeof L->torch_note, "skipped: bench/torch_mha_peer.py not found");
        return;
    }
    if (system("python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        snprintf(L->torch_note, sizeof L->torch_note, "skipped: python3 -c 'import torch' fails (PyTorch not installed)");
        return;
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 '%s' --only layer --threads %d --repeat %d --warmup 1 --embed-dim %lld --heads %lld --batch %lld "
             "--seq %lld 2>/dev/null",
             script, threads, repeat, (long long)L->E, (long long)L->H, (long long)L->B, (long long)L->S);
    FILE *f = popen(cmd, "r");
    if (!f) { snprintf(L->torch_note, sizeof L->torch_note, "skipped: cannot run python3"); return; }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        double ms;
        if (!json_num(line, "ms", &ms)) continue;
        if (strstr(line, "\"torch.layer.fwd_bwd\"")) L->torch_fb_ms = ms;
        else if (strstr(line, "\"torch.layer.fwd\"")) L->torch_fwd_ms = ms;
        json_str(line, "torch", L->torch_version, sizeof L->torch_version);
    }
    int st = pclose(f);
    if (L->torch_fwd_ms < 0 || L->torch_fb_ms < 0)
        snprintf(L->torch_note, sizeof L->torch_note, "bench/torch_mha_peer.py failed (exit status %d)",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void run_layer(layer_res *L, int64_t seq, int threads, const timing_cfg *tc, int torch, int torch_repeat) {
    memset(L, 0, sizeof *L);
    L->E = 1024; L->H = 16; L->B = 4; L->S = seq;
    L->torch_fwd_ms = L->torch_fb_ms = -1;
    const int64_t E = L->E, rows = L->B * L->S;
    L->flops_fwd = 8.0 * (double)(L->B * L->S) * (double)(E * E) + 4.0 * (double)L->B * (double)L->S * (double)L->S * (double)E;
    L->flops_fb = 3 * L->flops_fwd;
    layer_ctx c;
    memset(&c, 0, sizeof c);
    c.rows = rows; c.E = E;
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    cfg.embed_dim = E; cfg.num_heads = L->H; cfg.bias_q = cfg.bias_k = cfg.bias_v = cfg.bias_o = 1;
    progress("layer: attn_mha forward, forward+backward, its parts, PyTorch peer");
    peer_blas_set_threads(1); /* the layer keeps OpenBLAS single-threaded (kernels/gemm.c); the peers raised it */
    if (attn_mha_create(&c.m, &cfg) != ATTN_OK || attn_mha_init_weights(c.m, ATTN_INIT_XAVIER_UNIFORM, 1) != ATTN_OK) {
        snprintf(L->note, sizeof L->note, "attn_mha: %s", attn_last_error());
        goto done;
    }
    c.y = falloc(rows * E); c.dy = falloc(rows * E); c.dx = falloc(rows * E);
    c.X = falloc(rows * E); c.Y = falloc(rows * E); c.W = falloc(E * E); c.G = falloc(E * E);
    if (!c.y || !c.dy || !c.dx || !c.X || !c.Y || !c.W || !c.G) { snprintf(L->note, sizeof L->note, "out of memory"); goto done; }
    fill_rand(c.X, rows * E, 11);
    fill_rand(c.dy, rows * E, 12);
    fill_rand(c.W, E * E, 13);
    fill_rand(c.Y, rows * E, 14);
    memset(c.G, 0, (size_t)(E * E) * sizeof(float));
    attn_mha_input_init(&c.in);
    c.in.batch = L->B; c.in.seq_q = L->S; c.in.x = c.X;
    /* eval forward */
    progress_step("layer: forward");
    if (layer_fwd_fn(&c)) { snprintf(L->note, sizeof L->note, "attn_mha_forward: %s", attn_last_error()); goto done; }
    if (bu_time(layer_fwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &L->fwd)) goto done;
    /* training forward + backward */
    progress_step("layer: forward+backward");
    if (attn_mha_set_training(c.m, 1) != ATTN_OK || layer_fb_fn(&c)) {
        snprintf(L->note, sizeof L->note, "attn_mha forward/backward: %s", attn_last_error());
        goto done;
    }
    if (bu_time(layer_fb_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &L->fb)) goto done;
    attn_mha_free(c.m);
    c.m = NULL;
    /* the parts */
    progress_step("layer: parts (GEMMs)");
    gemm_fwd_fn(&c);
    bu_time(gemm_fwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &L->gemm_fwd);
    gemm_bwd_fn(&c);
    bu_time(gemm_bwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &L->gemm_bwd);
    progress_step("layer: parts (sdpa)");
    {
        problem *p = &c.p; /* (B, S, H, D) with B = 4: built here, problem_init is batch 1 */
        p->d = (attn_sdpa_dims){ .batch = L->B, .seq_q = L->S, .seq_k = L->S, .heads_q = L->H, .heads_kv = L->H,
                                 .head_dim = E / L->H, .head_dim_v = E / L->H };
        attn_sdpa_opts_init(&p->o);
        p->o.num_threads = threads;
        const int64_t n = L->B * L->S * E;
        p->q = falloc(n); p->k = falloc(n); p->v = falloc(n); p->out = falloc(n); p->dO = falloc(n);
        p->lse = falloc(L->B * L->H * L->S); p->dq = falloc(n); p->dk = falloc(n); p->dv = falloc(n);
        size_t a = attn_sdpa_fwd_workspace_size(&p->d, &p->o), b = attn_sdpa_bwd_workspace_size(&p->d, &p->o);
        p->wsn = a > b ? a : b;
        if (p->wsn) p->ws = attn__malloc(p->wsn);
        if (!p->q || !p->k || !p->v || !p->out || !p->dO || !p->lse || !p->dq || !p->dk || !p->dv || (p->wsn && !p->ws)) {
            snprintf(L->note, sizeof L->note, "out of memory");
            goto done;
        }
        fill_rand(p->q, n, 21); fill_rand(p->k, n, 22); fill_rand(p->v, n, 23); fill_rand(p->dO, n, 24);
        c.rc = (run_ctx){ p, 0, 0 };
        if (sdpa_fwd_part(&c) || bu_time(sdpa_fwd_part, &c, tc->min_runs, tc->min_time, tc->max_time, &L->sdpa_fwd) ||
            sdpa_bwd_part(&c) || bu_time(sdpa_bwd_part, &c, tc->min_runs, tc->min_time, tc->max_time, &L->sdpa_bwd)) {
            snprintf(L->note, sizeof L->note, "sdpa: %s", attn_last_error());
            goto done;
        }
    }
    L->ran = 1;
    if (torch) {
        progress_step("layer: PyTorch nn.MultiheadAttention (bench/torch_mha_peer.py)");
        run_torch(L, threads, torch_repeat);
    } else {
        snprintf(L->torch_note, sizeof L->torch_note, "skipped (--no-torch)");
    }
done:
    attn_mha_free(c.m);
    attn__free(c.y); attn__free(c.dy); attn__free(c.dx); attn__free(c.X); attn__free(c.Y); attn__free(c.W); attn__free(c.G);
    problem_free(&c.p);
}

/* ─── --memory ───────────────────────────────────────────────────────────── */
static int run_memory(int64_t S, int threads, const char *json_path) {
    const model_shape m = { "llama3-8b", 32, 8, 128 };
    const int64_t base_rss = bu_current_rss(), base_peak = bu_peak_rss();
    attn_sdpa_dims d = { .batch = 1, .seq_q = S, .seq_k = S, .heads_q = m.Hq, .heads_kv = m.Hkv, .head_dim = m.D, .head_dim_v = m.D };
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = 1;
    o.num_threads = threads;
    const int64_t nq = S * m.Hq * m.D, nk = S * m.Hkv * m.D, nl = S * m.Hq;
    const double io_bytes = (double)(2 * nq + 2 * nk + nl) * sizeof(float);
    printf("attn bench --memory: causal forward, B 1, S %lld, Hq %lld, Hkv %lld, D %lld, %d threads\n", (long long)S,
           (long long)m.Hq, (long long)m.Hkv, (long long)m.D, threads);
    printf("inputs + outputs (q, k, v, o, lse): %.1f MiB; process RSS before allocating them: %.1f MiB\n",
           io_bytes / 1048576.0, (double)base_rss / 1048576.0);
    fflush(stdout);
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *out = falloc(nq), *lse = falloc(nl);
    if (!q || !k || !v || !out || !lse) return cli_fail(SUB, "--memory: cannot allocate %.0f MiB of inputs/outputs", io_bytes / 1048576.0);
    progress("memory: filling inputs");
    fill_rand(q, nq, 1); fill_rand(k, nk, 2); fill_rand(v, nk, 3);
    memset(out, 0, (size_t)nq * sizeof(float));
    memset(lse, 0, (size_t)nl * sizeof(float));
    size_t wsn = attn_sdpa_fwd_workspace_size(&d, &o);
    void *ws = wsn ? attn__malloc(wsn) : NULL;
    if (wsn && !ws) return cli_fail(SUB, "--memory: cannot allocate the %zu-byte workspace", wsn);
    progress("memory: running the forward (S = %lld, ~%.0f GFLOP)", (long long)S, sdpa_flops(&m, S, S, V_FWD_CAUSAL) * 1e-9);
    double t0 = bu_now();
    attn_status st = attn_sdpa_fwd(&d, attn_view_bshd(q, S, m.Hq, m.D), attn_view_bshd(k, S, m.Hkv, m.D),
                                   attn_view_bshd(v, S, m.Hkv, m.D), attn_view_bshd(out, S, m.Hq, m.D), lse, &o, ws, wsn);
    double dt = bu_now() - t0;
    progress_clear();
    if (st != ATTN_OK) return cli_fail(SUB, "--memory: attn_sdpa_fwd: %s", attn_last_error());
    const int64_t peak = bu_peak_rss();
    const double extra = (double)peak - io_bytes;
    printf("forward: %.2f s, %.1f GFLOP/s\n", dt, sdpa_flops(&m, S, S, V_FWD_CAUSAL) / dt * 1e-9);
    printf("peak RSS (getrusage): %.1f MiB; minus inputs+outputs: %.1f MiB (target <= 64 MiB: %s)\n",
           (double)peak / 1048576.0, extra / 1048576.0, extra <= 64.0 * 1048576.0 ? "met" : "NOT met");
    printf("  of which: process before the run %.1f MiB (code, libraries, OpenBLAS), kernel workspace %.2f MiB\n",
           (double)base_rss / 1048576.0, (double)wsn / 1048576.0);
    (void)base_peak;
    if (json_path) {
        cli_out jout;
        FILE *f = cli_out_open(&jout);
        if (!f) return cli_fail(SUB, "--json %s: out of memory", json_path);
        fprintf(f, "{\"memory\": {\"S\": %lld, \"Hq\": %lld, \"Hkv\": %lld, \"D\": %lld, \"causal\": true, \"threads\": %d, "
                   "\"io_bytes\": %.0f, \"peak_rss_bytes\": %lld, \"extra_bytes\": %.0f, \"base_rss_bytes\": %lld, "
                   "\"workspace_bytes\": %zu, \"seconds\": %.3f}}\n",
                (long long)S, (long long)m.Hq, (long long)m.Hkv, (long long)m.D, threads, io_bytes, (long long)peak, extra,
                (long long)base_rss, wsn, dt);
        if (cli_out_commit(&jout, json_path) != ATTN_OK) return cli_fail(SUB, "--json %s", attn_last_error());
    }
    attn__free(q); attn__free(k); attn__free(v); attn__free(out); attn__free(lse); attn__free(ws);
    return 0;
}

/* ─── list parsing ───────────────────────────────────────────────────────── */
static int parse_seqs(const char *s, int64_t *out, int max, int *n) {
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || v < 1 || v > 65536 || *n >= max || (*end && *end != ',')) return 1;
        out[(*n)++] = v;
        s = *end ? end + 1 : end;
    }
    return *n == 0;
}

/* ─── output ─────────────────────────────────────────────────────────────── */
static int g_threads = 1;
/* CPU time the process got during the timed runs / (wall time x threads): ~1 on an idle
 * machine, well below when other processes took the cores (the row's times are then inflated). */
static double cpu_share(const bu_timing *t) {
    return t->total_s > 0 ? t->cpu_s / (t->total_s * (double)g_threads) : 0;
}
/* The "%peak" cell: a row above 100% of the probe means the probe was disturbed (a busy moment
 * while it ran), so it is flagged, never printed as a result. */
static const char *pct_cell(char *buf, size_t n, double gflops, double peak) {
    if (peak > 0 && gflops <= peak) snprintf(buf, n, "%6.1f%%", 100.0 * gflops / peak);
    else snprintf(buf, n, "%7s", ">probe");
    return buf;
}
/* The peak a row is judged against: a row above the best probe so far triggers one more probe. */
static double peak_for(bu_peak *pk, double gflops) {
    if (gflops > pk->best) bu_peak_sample(pk, 3);
    return pk->best;
}
static int g_over_peak; /* rows flagged ">probe" */
/* bf16 dot-product peak (bu_peak_init_bf16), when the CPU has one and a bf16 row runs */
static bu_peak g_pkb;
static int g_have_pkb;
/* The probe a row's %peak is judged against: the bf16 unit's for the bf16 fast forward
 * (attn.h "Reduced precision": BF16 q, k, v, even D, AVX512_BF16), else the FMA probe. */
static bu_peak *row_probe(const bench_row *r, bu_peak *fma) {
    const int fwd = r->variant == V_FWD || r->variant == V_FWD_CAUSAL;
    return g_have_pkb && fwd && r->dt == ATTN_DTYPE_BF16 && r->m->D % 2 == 0 && attn_isa_active() == ATTN_ISA_AVX512
               ? &g_pkb
               : fma;
}

static void print_row(const bench_row *r, double peak) {
    char vname[32];
    snprintf(vname, sizeof vname, "%s%s%s", r->dt != ATTN_DTYPE_F32 ? dtype_name(r->dt) : "",
             r->dt != ATTN_DTYPE_F32 ? " " : "", VNAMES[r->variant]);
    if (!r->ran) {
        printf("%-10s %-11s %5lld  %s\n", r->m->name, vname, (long long)r->Sq, r->note[0] ? r->note : "failed");
        return;
    }
    const double ams = r->ta.median_s * 1e3, pms = r->tp.median_s * 1e3;
    const double ag = r->flops / r->ta.median_s * 1e-9, pg = r->flops / r->tp.median_s * 1e-9;
    char pct[32];
    g_over_peak += ag > peak;
    printf("%-10s %-11s %5lld %9.2f %8.1f %s %9.2f %8.1f %7.2fx %9.1e  %3.0f/%3.0f", r->m->name, vname,
           (long long)r->Sq, ams, ag, pct_cell(pct, sizeof pct, ag, peak), pms, pg, pms / ams, r->err,
           100 * cpu_share(&r->ta), 100 * cpu_share(&r->tp));
    print_pypeer_cols(r);
    printf("%s\n", r->valid ? "" : "  INVALID");
}

static void print_decode(const bench_row *r, double peak) {
    if (!r->ran) {
        printf("%-10s %-9s %5lld  %s\n", r->m->name, VNAMES[r->variant], (long long)r->Sk, r->note[0] ? r->note : "failed");
        return;
    }
    const double ams = r->ta.median_s * 1e3, pms = r->tp.median_s * 1e3, ag = r->flops / r->ta.median_s * 1e-9;
    char pct[32];
    g_over_peak += ag > peak;
    printf("%-10s %-9s %5lld %9.3f %8.1f %8.1f %s %9.3f %8.1f %7.2fx %9.1e  %3.0f/%3.0f", r->m->name, VNAMES[r->variant],
           (long long)r->Sk, ams, r->bytes / r->ta.median_s * 1e-9, ag, pct_cell(pct, sizeof pct, ag, peak), pms,
           r->bytes / r->tp.median_s * 1e-9, pms / ams, r->err, 100 * cpu_share(&r->ta), 100 * cpu_share(&r->tp));
    print_pypeer_cols(r);
    printf("%s\n", r->valid ? "" : "  INVALID");
}

static void json_timing(FILE *f, const char *key, const bu_timing *t) {
    fprintf(f, "\"%s\": {\"median_ms\": %.4f, \"best_ms\": %.4f, \"runs\": %d, \"cpu_share\": %.3f}", key, t->median_s * 1e3,
            t->best_s * 1e3, t->runs, cpu_share(t));
}

/* a python peer that ran but disagrees with attn fails the bench, as the naive peer does */
static int bad_pypeer(const bench_row *r) {
    int bad = 0;
    for (int k = 0; k < PYPEER_N; k++) bad |= r->ran && r->py[k].ran && !r->py[k].valid;
    return bad;
}

/* What the torch / ort columns ran (first row that has each), and why a column is n/a. */
static void print_pypeer_legend(const bench_row *rows, int n) {
    printf("(torch / ort: bench/sdpa_peer.py on the same inputs, %d threads, timed like attn; x = peer ms / attn ms;\n"
           " bwd = the backward alone in both (the peer's forward runs untimed before each timed backward);\n"
           " '!' = the peer's output differs from attn's; cpu%%t/o as cpu%%a/p for the two peers)\n", g_threads);
    for (int k = 0; k < PYPEER_N; k++) {
        const char *first_note = NULL;
        for (int i = 0; i < n; i++) {
            const pypeer_res *py = &rows[i].py[k];
            int seen = 0; /* this op on this model already named */
            for (int j = 0; j < i && !seen; j++)
                seen = rows[j].py[k].ran && rows[j].m == rows[i].m && !strcmp(rows[j].py[k].op, py->op);
            if (py->ran && !seen)
                printf(" %s %s: %s %s %s\n", pypeer_name(k), py->version, rows[i].m->name, VNAMES[rows[i].variant], py->op);
            if (py->note[0] && (!first_note || strcmp(first_note, py->note))) {
                printf(" %s %s %s: %s\n", pypeer_name(k), rows[i].m->name, VNAMES[rows[i].variant], py->note);
                first_note = py->note;
            }
        }
    }
}

/* The probe at the end: the best of all samples is the peak; a row above it is flagged. */
static void print_probe_summary(const bu_peak *pk, const bench_row *rows, int n) {
    int over = 0;
    for (int i = 0; i < n; i++)
        over += rows[i].ran && rows[i].flops / rows[i].ta.median_s * 1e-9 > row_probe(&rows[i], (bu_peak *)pk)->best;
    printf("\nFMA probe: peak %.1f GFLOP/s = best of %d samples through the run (worst %.1f, spread %.0f%%)%s\n", pk->best,
           pk->samples, pk->worst, 100 * bu_peak_spread(pk),
           bu_peak_spread(pk) > 0.1 ? ": the machine was busy during some probes" : "");
    if (over || g_over_peak)
        printf("warning: %d row%s ran above the probe's peak when printed (flagged '>probe'): the probe was disturbed,\n"
               "         those %%peak figures are not results\n", over > g_over_peak ? over : g_over_peak,
               (over > g_over_peak ? over : g_over_peak) == 1 ? "" : "s");
}

int cmd_bench(int argc, char **argv) {
    if (cli_has_flag(argc, argv, "--mpi")) return cli_mpi_delegate("bench", argc, argv); /* attn-mpi bench */
    int mpi_flag = 0;
    int64_t threads = 2, runs = 3, layer_seq = 2048, memory_seq = 32768;
    double min_time = 0.3;
    int quick = 0, memory = 0, no_torch = 0, no_ort = 0, no_layer = 0, no_decode = 0, paged_only = 0, no_paged = 0;
    int peers_in_quick = 0;
    int64_t block_size = 64;
    const char *json_path = NULL, *plot_path = NULL, *seqs_s = NULL, *models_s = NULL, *dtypes_s = NULL;
    const char *paged_batches_s = NULL, *paged_ctx_s = NULL, *kv_dtype_s = NULL;
    const arg_spec specs[] = {
        { "threads", ARG_INT, &threads, "N", "threads for attn and for the peers (default 2)" },
        { "mpi", ARG_FLAG, &mpi_flag, NULL, "ring attention over MPI under mpirun: per-rank compute, bytes, hidden communication (runs attn-mpi bench; its options: attn bench --mpi --help)" },
        { "quick", ARG_FLAG, &quick, NULL, "short subset (the tour): Llama-3-8B shape at S 1024, decode, decode-paged at batch 1 and 32 x 2048, layer at S 1024" },
        { "seqs", ARG_STR, &seqs_s, "LIST", "sequence lengths (default 512,1024,2048,4096)" },
        { "models", ARG_STR, &models_s, "LIST", "llama3-8b,gpt2 (default both)" },
        { "runs", ARG_INT, &runs, "N", "at least N timed runs per row (default 3)" },
        { "min-time", ARG_DOUBLE, &min_time, "SEC", "and at least SEC seconds of timed runs per row (default 0.3)" },
        { "no-decode", ARG_FLAG, &no_decode, NULL, "skip the decode rows" },
        { "no-layer", ARG_FLAG, &no_layer, NULL, "skip the layer rows" },
        { "paged", ARG_FLAG, &paged_only, NULL, "only the decode-paged rows (paged KV cache, batched decode)" },
        { "no-paged", ARG_FLAG, &no_paged, NULL, "skip the decode-paged rows" },
        { "paged-batches", ARG_STR, &paged_batches_s, "LIST", "batches of the decode-paged rows (default 1,8,32)" },
        { "paged-contexts", ARG_STR, &paged_ctx_s, "LIST", "contexts of the decode-paged rows (default 512,1024,2048,4096,8192)" },
        { "block-size", ARG_INT, &block_size, "N", "tokens per block of the decode-paged pool, 16..128 (default 64)" },
        { "kv-dtype", ARG_STR, &kv_dtype_s, "LIST", "KV cache types of the decode-paged / decode-kvcache rows: f32,bf16,f16,int8 (default f32)" },
        { "no-torch", ARG_FLAG, &no_torch, NULL, "skip the PyTorch peers (sdpa rows and layer rows)" },
        { "no-ort", ARG_FLAG, &no_ort, NULL, "skip the ONNX Runtime peer of the sdpa rows" },
        { "peers", ARG_FLAG, &peers_in_quick, NULL, "with --quick: run the PyTorch / ONNX Runtime sdpa peers too" },
        { "layer-seq", ARG_INT, &layer_seq, "S", "sequence length of the layer rows (default 2048)" },
        { "dtype", ARG_STR, &dtypes_s, "LIST", "element types of the sdpa rows: f32,bf16,f16 (default f32)" },
        { "json", ARG_STR, &json_path, "FILE", "also write every figure to FILE as JSON" },
        { "plot", ARG_STR, &plot_path, "FILE", "draw GFLOP/s vs S to FILE.png or FILE.svg (needs gnuplot)" },
        { "memory", ARG_FLAG, &memory, NULL, "only measure peak RSS of one causal forward, S 32768, Hq 32, Hkv 8, D 128" },
        { "memory-seq", ARG_INT, &memory_seq, "S", "sequence length of --memory (default 32768)" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    int help = 0;
    if (args_parse(SUB, argc, argv, specs, nspecs, &help)) return 1;
    int layer_seq_given = 0;
    for (int i = 1; i < argc; i++) layer_seq_given |= !strncmp(argv[i], "--layer-seq", 11);
    if (help) {
        args_print_help(SUB, "[options]",
                        "Times attn_sdpa_fwd/bwd (plain and causal) at Llama-3-8B (Hq 32, Hkv 8, D 128) and GPT-2\n"
                        "(Hq 12, D 64) attention, batch 1, S = 512..4096, single-token decode against a 4096 cache,\n"
                        "and the attn_mha layer (E 1024, 16 heads, B 4, S 2048) with its parts timed separately.\n"
                        "Each row: median ms, GFLOP/s (forward 4·B·Hq·Sq·Sk·D, halved when causal, backward 2.5x),\n"
                        "% of this machine's FP32 peak (FMA probe) and the speed-up over a naive OpenBLAS peer\n"
                        "(per head: sgemm Q·Kᵀ into an Sq x Sk buffer, softmax, sgemm P·V) run in the same process,\n"
                        "after checking that both give the same output. PyTorch scaled_dot_product_attention and\n"
                        "ONNX Runtime (com.microsoft MultiHeadAttention / GroupQueryAttention) run the same inputs\n"
                        "via python3 bench/sdpa_peer.py when they import (not in --quick unless --peers); their\n"
                        "outputs are checked against attn's too. Layer: PyTorch nn.MultiheadAttention too,\n"
                        "via python3 bench/torch_mha_peer.py, when torch imports. The FMA peak is the best of\n"
                        "short probes taken through the run (spread reported); a row above it is flagged '>probe'.\n"
                        "If OPENBLAS_CORETYPE is unset on an AVX-512 CPU whose OpenBLAS core is not an AVX-512 one,\n"
                        "attn bench re-executes itself with OPENBLAS_CORETYPE=SkylakeX (and says so).",
                        specs, nspecs);
        return 0;
    }
    if (threads < 1 || threads > 256) return cli_fail(SUB, "--threads %lld: must be in [1, 256]", (long long)threads);
    if (layer_seq < 1 || layer_seq > 65536) return cli_fail(SUB, "--layer-seq %lld: must be in [1, 65536]", (long long)layer_seq);
    if (runs < 1 || runs > 1000) return cli_fail(SUB, "--runs %lld: must be in [1, 1000]", (long long)runs);
    if (min_time < 0 || min_time > 600) return cli_fail(SUB, "--min-time %g: must be in [0, 600]", min_time);
    int64_t seqs[16], pbatches[16] = {1, 8, 32}, pctx[16] = {512, 1024, 2048, 4096, 8192};
    int nseqs = 0, npb = 3, npc = quick ? 0 : 5;
    if (quick) { pctx[npc++] = 2048; pbatches[1] = 32; npb = 2; } /* --quick: batch 1 and 32 at context 2048 */
    if (paged_batches_s && parse_seqs(paged_batches_s, pbatches, 16, &npb))
        return cli_fail(SUB, "--paged-batches %s: expected a comma-separated list of up to 16 values in [1, 65536]", paged_batches_s);
    if (paged_ctx_s && parse_seqs(paged_ctx_s, pctx, 16, &npc))
        return cli_fail(SUB, "--paged-contexts %s: expected a comma-separated list of up to 16 values in [1, 65536]", paged_ctx_s);
    if (block_size < 16 || block_size > 128) return cli_fail(SUB, "--block-size %lld: must be in [16, 128]", (long long)block_size);
    attn_dtype kv_dtypes[8] = {ATTN_DTYPE_F32};
    int nkv = 1;
    if (kv_dtype_s && bench_kv_dtypes_parse(kv_dtype_s, kv_dtypes, 8, &nkv))
        return cli_fail(SUB, "--kv-dtype %s: expected a comma-separated list of f32, bf16, f16, int8", kv_dtype_s);
    if (paged_only) no_layer = 1;
    if (seqs_s && parse_seqs(seqs_s, seqs, 16, &nseqs))
        return cli_fail(SUB, "--seqs %s: expected a comma-separated list of up to 16 lengths in [1, 65536]", seqs_s);
    attn_dtype dts[3] = { ATTN_DTYPE_F32 };
    int ndt = 1;
    if (dtypes_s) {
        ndt = 0;
        const char *s = dtypes_s;
        while (*s) {
            size_t len = strcspn(s, ",");
            attn_dtype t;
            if (len == 3 && !strncmp(s, "f32", 3)) t = ATTN_DTYPE_F32;
            else if (len == 4 && !strncmp(s, "bf16", 4)) t = ATTN_DTYPE_BF16;
            else if (len == 3 && !strncmp(s, "f16", 3)) t = ATTN_DTYPE_F16;
            else return cli_fail(SUB, "--dtype %s: unknown type '%.*s' (choose from f32, bf16, f16)", dtypes_s, (int)len, s);
            for (int i = 0; i < ndt; i++)
                if (dts[i] == t) return cli_fail(SUB, "--dtype %s: '%.*s' given twice", dtypes_s, (int)len, s);
            dts[ndt++] = t;
            s += len;
            if (*s) s++;
        }
        if (!ndt) return cli_fail(SUB, "--dtype: empty list");
    }
    int use_model[NMODELS] = { 1, 1 };
    if (models_s) {
        use_model[0] = use_model[1] = 0;
        const char *s = models_s;
        while (*s) {
            size_t len = strcspn(s, ",");
            int found = 0;
            for (int i = 0; i < NMODELS; i++)
                if (strlen(MODELS[i].name) == len && !strncmp(s, MODELS[i].name, len)) { use_model[i] = 1; found = 1; }
            if (!found) return cli_fail(SUB, "--models %s: unknown model '%.*s' (choose from llama3-8b, gpt2)", models_s, (int)len, s);
            s += len;
            if (*s) s++;
        }
    }
    if (plot_path) {
        const char *dot = strrchr(plot_path, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".svg")))
            return cli_fail(SUB, "--plot %s: the file name must end in .png or .svg", plot_path);
        if (!bu_which("gnuplot"))
            return cli_fail(SUB, "--plot needs gnuplot, which is not installed (apt-get install gnuplot-nox)");
    }
    if (json_path) { /* fail now, not after minutes of measuring */
        FILE *f = fopen(json_path, "a");
        if (!f) return cli_fail(SUB, "--json %s: %s", json_path, strerror(errno));
        fclose(f);
    }
    g_tty = isatty(2);
    g_threads = (int)threads;
    attn_set_num_threads((int)threads);
    if (memory_seq < 1 || memory_seq > (1 << 20)) return cli_fail(SUB, "--memory-seq %lld: must be in [1, 1048576]", (long long)memory_seq);
    if (memory) return run_memory(memory_seq, (int)threads, json_path);

    /* OpenBLAS core: re-exec with OPENBLAS_CORETYPE=SkylakeX when it helps */
    const char *core = peer_blas_core();
    const char *hint = cli_blas_core_hint(core);
    const char *reexec = getenv("ATTN_BENCH_REEXEC");
    if (hint && !strcmp(hint, "SkylakeX") && !getenv("OPENBLAS_CORETYPE") && !reexec) {
        char *nargv[64];
        int n = 0;
        nargv[n++] = (char *)"attn";
        for (int i = 0; i < argc && n < 63; i++) nargv[n++] = argv[i];
        nargv[n] = NULL;
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        setenv("ATTN_BENCH_REEXEC", core, 1);
        fflush(NULL);
        execv("/proc/self/exe", nargv);
        unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on as we are */
        unsetenv("ATTN_BENCH_REEXEC");
    }
    peer_blas_set_threads((int)threads);

    if (!nseqs) {
        if (quick) { seqs[0] = 1024; nseqs = 1; }
        else { seqs[0] = 512; seqs[1] = 1024; seqs[2] = 2048; seqs[3] = 4096; nseqs = 4; }
    }
    /* --quick: Llama-3-8B shape only (unless --models), at most ~2 s of timed runs per side, and
     * a layer at S = 1024 (unless --layer-seq) with one timed run */
    if (quick && !models_s) use_model[1] = 0;
    if (quick && !layer_seq_given) layer_seq = 1024;
    timing_cfg tc = { (int)runs, min_time, quick ? 2.0 : 60.0 };
    const int64_t decode_sk = 4096;

    /* rows */
    bench_row rows[NMODELS * 16 * 4 * 3 + 2 * NMODELS];
    int nrows = 0;
    for (int mi = 0; mi < NMODELS && !paged_only; mi++) {
        if (!use_model[mi]) continue;
        for (int si = 0; si < nseqs; si++)
            for (int ti = 0; ti < ndt; ti++)
            for (int v = 0; v < 4; v++) { /* groups of 4 rows: one problem, one element type */
                bench_row *r = &rows[nrows++];
                memset(r, 0, sizeof *r);
                r->m = &MODELS[mi]; r->variant = v; r->B = 1; r->Sq = r->Sk = seqs[si];
                r->dt = dts[ti];
                r->flops = sdpa_flops(r->m, r->Sq, r->Sk, v);
            }
    }
    const int nsdpa = nrows;
    if (!no_decode && !paged_only)
        for (int mi = 0; mi < NMODELS; mi++) {
            if (!use_model[mi] || (quick && mi != 0)) continue;
            for (int v = V_DECODE; v <= V_DECODE_HM; v++) {
                bench_row *r = &rows[nrows++];
                memset(r, 0, sizeof *r);
                r->m = &MODELS[mi]; r->variant = v; r->B = 1; r->Sq = 1; r->Sk = decode_sk;
                r->flops = sdpa_flops(r->m, 1, decode_sk, V_FWD);
                r->bytes = 2.0 * (double)decode_sk * (double)r->m->Hkv * (double)r->m->D * sizeof(float);
            }
        }

    pypeer_cfg pyc;
    memset(&pyc, 0, sizeof pyc);
    pyc.tc = (pypeer_timing){ (int)threads, (int)runs, min_time, tc.max_time };
    for (int k = 0; k < PYPEER_N; k++) {
        const int off = k == PYPEER_TORCH ? no_torch : no_ort;
        pyc.use[k] = !off && (!quick || peers_in_quick);
        pyc.why_not[k] = off ? (k == PYPEER_TORCH ? "skipped (--no-torch)" : "skipped (--no-ort)")
                             : "skipped in --quick (python start-up; add --peers)";
    }

    const attn_cpu_features *cpu = attn__cpu();
    progress("measuring the FP32 FMA peak");
    bu_peak pk;
    bu_peak_init(&pk, (int)threads);
    const char *probe_isa = pk.isa;
    for (int i = 0; i < nrows && !g_have_pkb; i++)
        if (rows[i].dt == ATTN_DTYPE_BF16) g_have_pkb = bu_peak_init_bf16(&g_pkb, (int)threads);
    progress_clear();
    core = peer_blas_core();
    printf("attn bench: attn %s, %s, kernel ISA %s, %lld threads, batch 1\n", attn_version(),
           cpu->brand[0] ? cpu->brand : "unknown CPU", attn_isa_name(attn_isa_active()), (long long)threads);
    printf("FP32 peak of this machine: %.1f GFLOP/s (%s probe, %lld threads; probed again after each problem,\n"
           "      the best probe is the peak: the final one and the spread are printed at the end)\n",
           pk.best, probe_isa, (long long)threads);
    if (g_have_pkb)
        printf("bf16 peak: %.1f GFLOP/s (%s probe: the %%peak of the bf16 fast-forward rows; other bf16 / f16 rows\n"
               "      compute in fp32 and are judged against the FP32 peak)\n", g_pkb.best, g_pkb.isa);
    printf("peer: naive per-head OpenBLAS sgemm + softmax with a materialised Sq x Sk buffer; OpenBLAS core %s, %lld threads\n",
           core, (long long)threads);
    if (reexec)
        printf("      (OPENBLAS_CORETYPE was unset and OpenBLAS picked %s on this AVX-512 CPU: attn bench re-executed itself "
               "with OPENBLAS_CORETYPE=SkylakeX)\n", reexec);
    else if ((hint = cli_blas_core_hint(core)) != NULL)
        printf("      (core %s is not the best for this CPU: set OPENBLAS_CORETYPE=%s for a stronger peer)\n", core, hint);
    else if (!(cpu->avx512f && cpu->os_avx512))
        printf("      (no usable AVX-512 on this CPU/OS, so OPENBLAS_CORETYPE=SkylakeX does not apply)\n");
    double load = 0;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf", &load) != 1) load = 0;
        fclose(lf);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 0 && load > 0.5 * (double)ncpu)
        printf("note: load average %.2f on %ld CPUs: other processes share this machine, so every figure (the peak\n"
               "      probe too) is noisy; compare attn with its peer on the same row, measured minutes apart at most\n",
               load, ncpu);
    printf("timing: median of >= %lld runs and >= %.2g s per side%s, after a validated warm-up run;\n"
           "        cpu%%a/p = CPU time the process got / (wall time x threads) while timing attn / the peer\n\n",
           (long long)runs, min_time, quick ? " (at most 2 s)" : "");
    fflush(stdout);

    int nbad = 0, idx = 0;
    const int total = nrows;
    /* sdpa rows, grouped by problem */
    if (nsdpa)
        printf("%-10s %-11s %5s %9s %8s %7s %9s %8s %8s %9s  %7s %9s %7s  %9s %7s  %7s\n", "model", "variant", "S",
               "attn ms", "GFLOP/s", "%peak", "peer ms", "GFLOP/s", "speedup", "max err", "cpu%a/p", "torch ms", "x", "ort ms",
               "x", "cpu%t/o");
    for (int i = 0; i < nsdpa; i += 4) {
        problem p;
        pypeer_dir pd;
        memset(&pd, 0, sizeof pd);
        if (problem_init(&p, rows[i].m, rows[i].Sq, rows[i].Sk, 1, (int)threads, rows[i].dt)) {
            for (int j = 0; j < 4; j++) snprintf(rows[i + j].note, sizeof rows[i + j].note, "out of memory");
        } else {
            pypeers_run_group(&rows[i], 4, &p, &pyc, &pd);
            for (int j = 0; j < 4; j++) {
                run_row(&rows[i + j], &p, &tc, ++idx, total);
                pypeers_check(&rows[i + j], &p, &pd);
            }
        }
        pypeer_end(&pd);
        problem_free(&p);
        bu_peak_sample(&pk, 2);
        progress_clear();
        for (int j = 0; j < 4; j++) {
            const bench_row *r = &rows[i + j];
            bu_peak *pr = row_probe(r, &pk);
            print_row(r, r->ran ? peak_for(pr, r->flops / r->ta.median_s * 1e-9) : pr->best);
            nbad += !r->ran || !r->valid || bad_pypeer(r);
        }
        fflush(stdout);
    }
    if (nrows > nsdpa) {
        printf("\n%-10s %-9s %5s %9s %8s %8s %7s %9s %8s %8s %9s  %7s %9s %7s  %9s %7s  %7s\n", "model", "decode", "Sk",
               "attn ms", "GB/s", "GFLOP/s", "%peak", "peer ms", "GB/s", "speedup", "max err", "cpu%a/p", "torch ms", "x",
               "ort ms", "x", "cpu%t/o");
        for (int i = nsdpa; i < nrows; i++) {
            problem p;
            pypeer_dir pd;
            memset(&pd, 0, sizeof pd);
            if (problem_init(&p, rows[i].m, 1, rows[i].Sk, 0, (int)threads, ATTN_DTYPE_F32)) snprintf(rows[i].note, sizeof rows[i].note, "out of memory");
            else {
                p.kv_hm = rows[i].variant == V_DECODE_HM;
                pypeers_run_group(&rows[i], 1, &p, &pyc, &pd);
                run_row(&rows[i], &p, &tc, ++idx, total);
                pypeers_check(&rows[i], &p, &pd);
            }
            pypeer_end(&pd);
            problem_free(&p);
            progress_clear();
            print_decode(&rows[i], rows[i].ran ? peak_for(&pk, rows[i].flops / rows[i].ta.median_s * 1e-9) : pk.best);
            nbad += !rows[i].ran || !rows[i].valid || bad_pypeer(&rows[i]);
            fflush(stdout);
        }
        printf("(decode: Sq = 1, bottom-right, batch 1, K/V (B, Sk, Hkv, D); decode-hm: K/V head-major (B, Hkv, Sk, D),\n"
               " the layout of attn_kvcache, read so by attn and the peer; GB/s = bytes of K and V read per call / time)\n");
    }
    print_pypeer_legend(rows, nrows);

    if (!no_decode) bench_bw_probe((int)threads); /* the one probe every decode row is judged against (JSON pct_bw) */
    if (!no_decode && !no_paged) {
        const bench_paged_cfg pc = { (int)threads, (int)runs, min_time, tc.max_time, pbatches, npb, pctx, npc, block_size, 2.0,
                                     kv_dtypes, nkv };
        nbad += bench_paged_run(&pc);
    }

    layer_res L;
    memset(&L, 0, sizeof L);
    double peak = pk.best;
    if (!no_layer) {
        timing_cfg ltc = tc;
        if (quick) { ltc.min_runs = 1; ltc.min_time = 0; }
        run_layer(&L, layer_seq, (int)threads, &ltc, !no_torch, quick ? 1 : (int)runs);
        bu_peak_sample(&pk, 2);
        peak = pk.best;
        progress_clear();
        printf("\nlayer: attn_mha E=%lld, %lld heads (D %lld), q/k/v/o biases, no mask, B=%lld, S=%lld\n", (long long)L.E,
               (long long)L.H, (long long)(L.E / L.H), (long long)L.B, (long long)L.S);
        if (!L.ran) {
            printf("  failed: %s\n", L.note);
            nbad++;
        } else {
            const double pf = (L.gemm_fwd.median_s + L.sdpa_fwd.median_s), pb = pf + L.gemm_bwd.median_s + L.sdpa_bwd.median_s;
            printf("%-18s %9s %8s %7s %9s %9s %9s %9s  %4s\n", "", "attn ms", "GFLOP/s", "%peak", "parts ms", "overhead",
                   "torch ms", "vs torch", "cpu%");
            const double tf = L.torch_fwd_ms, tb = L.torch_fb_ms;
            char tfs[32] = "-", tbs[32] = "-", rfs[32] = "-", rbs[32] = "-";
            if (tf > 0) { snprintf(tfs, sizeof tfs, "%.1f", tf); snprintf(rfs, sizeof rfs, "%.2fx", tf / (L.fwd.median_s * 1e3)); }
            if (tb > 0) { snprintf(tbs, sizeof tbs, "%.1f", tb); snprintf(rbs, sizeof rbs, "%.2fx", tb / (L.fb.median_s * 1e3)); }
            const double gf = L.flops_fwd / L.fwd.median_s * 1e-9, gb = L.flops_fb / L.fb.median_s * 1e-9;
            printf("%-18s %9.1f %8.1f %6.1f%% %9.1f %8.2fx %9s %9s  %4.0f\n", "forward (eval)", L.fwd.median_s * 1e3, gf,
                   100 * gf / peak, pf * 1e3, L.fwd.median_s / pf, tfs, rfs, 100 * cpu_share(&L.fwd));
            printf("%-18s %9.1f %8.1f %6.1f%% %9.1f %8.2fx %9s %9s  %4.0f\n", "forward+backward", L.fb.median_s * 1e3, gb,
                   100 * gb / peak, pb * 1e3, L.fb.median_s / pb, tbs, rbs, 100 * cpu_share(&L.fb));
            printf("parts: projection GEMMs fwd %.1f ms (4 x %lldx%lldx%lld), bwd %.1f ms (8); sdpa fwd %.1f ms, bwd %.1f ms\n",
                   L.gemm_fwd.median_s * 1e3, (long long)(L.B * L.S), (long long)L.E, (long long)L.E,
                   L.gemm_bwd.median_s * 1e3, L.sdpa_fwd.median_s * 1e3, L.sdpa_bwd.median_s * 1e3);
            printf("(overhead = layer / sum of its parts; GFLOP/s: fwd 8·B·S·E² + 4·B·S²·E, fwd+bwd 3x that, as in\n"
                   " bench/torch_mha_peer.py; ");
            if (tf > 0 && tb > 0)
                printf("vs torch = torch ms / attn ms, PyTorch %s nn.MultiheadAttention, %lld threads)\n", L.torch_version,
                       (long long)threads);
            else
                printf("PyTorch: %s)\n", L.torch_note[0] ? L.torch_note : "not measured");
        }
    }
    bu_peak_sample(&pk, 2);
    if (g_have_pkb) bu_peak_sample(&g_pkb, 2);
    print_probe_summary(&pk, rows, nrows);
    if (g_have_pkb)
        printf("bf16 probe: peak %.1f GFLOP/s = best of %d samples (worst %.1f, spread %.0f%%)\n", g_pkb.best,
               g_pkb.samples, g_pkb.worst, 100 * bu_peak_spread(&g_pkb));
    fflush(stdout);

    if (json_path) {
        cli_out jout;
        FILE *f = cli_out_open(&jout);
        if (!f) return cli_fail(SUB, "--json %s: out of memory", json_path);
        fprintf(f, "{\n  \"attn_version\": \"%s\", \"cpu\": ", attn_version());
        bu_json_str(f, cpu->brand);
        fprintf(f, ", \"isa\": \"%s\", \"threads\": %lld,\n  \"peak_gflops\": %.2f, \"peak_probe\": \"%s\", "
                   "\"peak_worst_gflops\": %.2f, \"peak_samples\": %d, \"peak_spread\": %.4f,\n  \"blas_config\": ",
                attn_isa_name(attn_isa_active()), (long long)threads, pk.best, probe_isa, pk.worst, pk.samples,
                bu_peak_spread(&pk));
        bu_json_str(f, peer_blas_config());
        fprintf(f, ", \"blas_core\": ");
        bu_json_str(f, core);
        if (g_have_pkb) fprintf(f, ", \"bf16_peak_gflops\": %.2f, \"bf16_peak_probe\": \"%s\"", g_pkb.best, g_pkb.isa);
        fprintf(f, ", \"blas_coretype_reexec\": %s,\n  ", reexec ? "true" : "false");
        if (bench_bw_probe_last() > 0) fprintf(f, "\"bw_probe_gbps\": %.2f,\n  \"rows\": [\n", bench_bw_probe_last());
        else fprintf(f, "\"bw_probe_gbps\": null,\n  \"rows\": [\n");
        for (int i = 0; i < nrows; i++) {
            const bench_row *r = &rows[i];
            fprintf(f, "    {\"model\": \"%s\", \"variant\": \"%s\", \"B\": %lld, \"Sq\": %lld, \"Sk\": %lld, \"Hq\": %lld, "
                       "\"Hkv\": %lld, \"D\": %lld, \"flops\": %.0f, \"ran\": %s, \"valid\": %s, \"max_err\": %.3e",
                    r->m->name, VNAMES[r->variant], (long long)r->B, (long long)r->Sq, (long long)r->Sk, (long long)r->m->Hq,
                    (long long)r->m->Hkv, (long long)r->m->D, r->flops, r->ran ? "true" : "false", r->valid ? "true" : "false",
                    isfinite(r->err) ? r->err : -1.0);
            if (!is_decode(r->variant)) fprintf(f, ", \"dtype\": \"%s\"", dtype_name(r->dt));
            if (r->ran) {
                fprintf(f, ", ");
                json_timing(f, "attn", &r->ta);
                fprintf(f, ", ");
                json_timing(f, "peer", &r->tp);
                const double ag = r->flops / r->ta.median_s * 1e-9;
                fprintf(f, ", \"attn_gflops\": %.2f, \"peer_gflops\": %.2f, \"speedup\": %.3f", ag,
                        r->flops / r->tp.median_s * 1e-9, r->tp.median_s / r->ta.median_s);
                const bu_peak *pr = row_probe(r, &pk);
                if (pr != &pk) fprintf(f, ", \"peak_probe\": \"bf16_dot\"");
                if (ag <= pr->best) fprintf(f, ", \"pct_peak\": %.2f", 100 * ag / pr->best);
                else fprintf(f, ", \"pct_peak\": null, \"pct_peak_note\": \"above the FMA probe: the probe was disturbed\"");
                if (is_decode(r->variant)) {
                    const double g = r->bytes / r->ta.median_s * 1e-9, bw = bench_bw_probe_last();
                    fprintf(f, ", \"kv_dtype\": \"f32\", \"kv_bytes\": %.0f, \"attn_gbps\": %.2f, \"peer_gbps\": %.2f, "
                               "\"gbps\": %.2f", r->bytes, g, r->bytes / r->tp.median_s * 1e-9, g);
                    if (bw > 0) fprintf(f, ", \"pct_bw\": %.2f", 100 * g / bw);
                    else fprintf(f, ", \"pct_bw\": null");
                }
            } else {
                fprintf(f, ", \"note\": ");
                bu_json_str(f, r->note);
            }
            json_pypeers(f, r);
            fprintf(f, "}%s\n", i + 1 < nrows || bench_paged_nrows() ? "," : "");
        }
        bench_paged_json(f);
        fprintf(f, "  ]");
        if (!no_layer) {
            fprintf(f, ",\n  \"layer\": {\"E\": %lld, \"heads\": %lld, \"B\": %lld, \"S\": %lld, \"ran\": %s", (long long)L.E,
                    (long long)L.H, (long long)L.B, (long long)L.S, L.ran ? "true" : "false");
            if (L.ran) {
                fprintf(f, ", \"flops_fwd\": %.0f, \"flops_fwd_bwd\": %.0f, ", L.flops_fwd, L.flops_fb);
                json_timing(f, "fwd", &L.fwd); fprintf(f, ", ");
                json_timing(f, "fwd_bwd", &L.fb); fprintf(f, ", ");
                json_timing(f, "gemm_fwd", &L.gemm_fwd); fprintf(f, ", ");
                json_timing(f, "gemm_bwd", &L.gemm_bwd); fprintf(f, ", ");
                json_timing(f, "sdpa_fwd", &L.sdpa_fwd); fprintf(f, ", ");
                json_timing(f, "sdpa_bwd", &L.sdpa_bwd);
                fprintf(f, ", \"torch_fwd_ms\": %.3f, \"torch_fwd_bwd_ms\": %.3f, \"torch_note\": ", L.torch_fwd_ms, L.torch_fb_ms);
                bu_json_str(f, L.torch_note);
            } else {
                fprintf(f, ", \"note\": ");
                bu_json_str(f, L.note);
            }
            fprintf(f, "}");
        }
        fprintf(f, "\n}\n");
        if (cli_out_commit(&jout, json_path) != ATTN_OK) return cli_fail(SUB, "--json %s", attn_last_error());
        printf("\nwrote %s\n", json_path);
    }
    if (plot_path) {
        /* GFLOP/s vs S per (model, variant): attn solid, peer dashed, same colour */
        bu_series ser[NMODELS * 4 * 2];
        double xs[NMODELS * 4 * 2][16], ys[NMODELS * 4 * 2][16];
        char titles[NMODELS * 4 * 2][64];
        int ns = 0;
        for (int mi = 0; mi < NMODELS; mi++)
            for (int v = 0; v < 4; v++)
                for (int side = 0; side < 2; side++) {
                    int n = 0;
                    for (int i = 0; i < nsdpa; i++) {
                        const bench_row *r = &rows[i];
                        if (r->m != &MODELS[mi] || r->variant != v || !r->ran) continue;
                        xs[ns][n] = (double)r->Sq;
                        ys[ns][n] = r->flops / (side ? r->tp.median_s : r->ta.median_s) * 1e-9;
                        n++;
                    }
                    if (!n) continue;
                    snprintf(titles[ns], sizeof titles[ns], "%s %s%s", MODELS[mi].name, VNAMES[v], side ? " (peer)" : "");
                    ser[ns] = (bu_series){ titles[ns], n, xs[ns], ys[ns], side, 1 + mi * 4 + v };
                    ns++;
                }
        char title[256], err[512];
        snprintf(title, sizeof title, "attn sdpa, batch 1, %lld threads, %s (peak %.0f GFLOP/s); dashed: naive OpenBLAS (%s)",
                 (long long)threads, cpu->brand, peak, core);
        if (!ns) return cli_fail(SUB, "--plot: no sdpa rows to plot");
        if (bu_plot(plot_path, title, "sequence length S", "GFLOP/s", ser, ns, err, sizeof err)) return cli_fail(SUB, "%s", err);
        printf("wrote %s\n", plot_path);
    }
    if (nbad) {
        fprintf(stderr, "attn bench: %d row%s failed or did not validate against the peer\n", nbad, nbad > 1 ? "s" : "");
        return 1;
    }
    return 0;
}
