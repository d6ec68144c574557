/* SPDX-License-Identifier: MIT */
/* bench_layer.c — the layer rows of `attn bench`: attn_mha forward and
 * forward+backward at E = 1024, 16 heads, B = 4, S = 2048 (--layer-seq); the
 * same work done by its parts (OpenBLAS GEMMs + sdpa kernels) timed
 * separately; PyTorch nn.MultiheadAttention via bench/torch_mha_peer.py if
 * available (its JSON lines read with the library's parser, io/json.h). */
#include "bench_cmd.h"
#include "io/json.h"
#include "kernels/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif

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

/* One line of torch_mha_peer.py: {"name": "torch.layer.fwd" | "torch.layer.fwd_bwd", "ms": ..., "torch": VERSION, ...} */
static void take_torch_line(layer_res *L, const char *line) {
    attn_json root, name;
    if (attn__json_parse(line, strlen(line), &root, NULL) != 0 || root.type != ATTN_JSON_OBJECT) return;
    const double ms = bu_json_number(root, "ms", -1);
    if (ms < 0) return;
    if (attn__json_get(root, "name", &name) == 1 && name.type == ATTN_JSON_STRING) {
        if (attn__json_str_eq(name, "torch.layer.fwd_bwd")) L->torch_fb_ms = ms;
        else if (attn__json_str_eq(name, "torch.layer.fwd")) L->torch_fwd_ms = ms;
    }
    bu_json_text(root, "torch", L->torch_version, sizeof L->torch_version);
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
    while (fgets(line, sizeof line, f)) take_torch_line(L, line);
    int st = pclose(f);
    if (L->torch_fwd_ms < 0 || L->torch_fb_ms < 0)
        snprintf(L->torch_note, sizeof L->torch_note, "bench/torch_mha_peer.py failed (exit status %d)",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* attn_mha eval forward, then training forward + backward; 1 = failed (L->note set, or a timing failed). */
static int time_mha(layer_res *L, layer_ctx *c, const timing_cfg *tc) {
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    cfg.embed_dim = L->E; cfg.num_heads = L->H; cfg.bias_q = cfg.bias_k = cfg.bias_v = cfg.bias_o = 1;
    if (attn_mha_create(&c->m, &cfg) != ATTN_OK || attn_mha_init_weights(c->m, ATTN_INIT_XAVIER_UNIFORM, 1) != ATTN_OK) {
        snprintf(L->note, sizeof L->note, "attn_mha: %s", attn_last_error());
        return 1;
    }
    attn_mha_input_init(&c->in);
    c->in.batch = L->B; c->in.seq_q = L->S; c->in.x = c->X;
    progress_step("layer: forward");
    if (layer_fwd_fn(c)) { snprintf(L->note, sizeof L->note, "attn_mha_forward: %s", attn_last_error()); return 1; }
    if (bu_time(layer_fwd_fn, c, tc->min_runs, tc->min_time, tc->max_time, &L->fwd)) return 1;
    progress_step("layer: forward+backward");
    if (attn_mha_set_training(c->m, 1) != ATTN_OK || layer_fb_fn(c)) {
        snprintf(L->note, sizeof L->note, "attn_mha forward/backward: %s", attn_last_error());
        return 1;
    }
    if (bu_time(layer_fb_fn, c, tc->min_runs, tc->min_time, tc->max_time, &L->fb)) return 1;
    attn_mha_free(c->m);
    c->m = NULL;
    return 0;
}

/* The sdpa part: (B, S, H, D) with B = L->B, built here (problem_init is batch 1). */
static int time_sdpa_parts(layer_res *L, layer_ctx *c, int threads, const timing_cfg *tc) {
    problem *p = &c->p;
    const int64_t E = L->E;
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
        return 1;
    }
    fill_rand(p->q, n, 21); fill_rand(p->k, n, 22); fill_rand(p->v, n, 23); fill_rand(p->dO, n, 24);
    c->rc = (run_ctx){ p, 0, 0, 0 };
    if (sdpa_fwd_part(c) || bu_time(sdpa_fwd_part, c, tc->min_runs, tc->min_time, tc->max_time, &L->sdpa_fwd) ||
        sdpa_bwd_part(c) || bu_time(sdpa_bwd_part, c, tc->min_runs, tc->min_time, tc->max_time, &L->sdpa_bwd)) {
        snprintf(L->note, sizeof L->note, "sdpa: %s", attn_last_error());
        return 1;
    }
    return 0;
}

void run_layer(layer_res *L, int64_t seq, int threads, const timing_cfg *tc, int torch, int torch_repeat) {
    memset(L, 0, sizeof *L);
    L->E = 1024; L->H = 16; L->B = 4; L->S = seq;
    L->torch_fwd_ms = L->torch_fb_ms = -1;
    const int64_t E = L->E, rows = L->B * L->S;
    L->flops_fwd = 8.0 * (double)(L->B * L->S) * (double)(E * E) + 4.0 * (double)L->B * (double)L->S * (double)L->S * (double)E;
    L->flops_fb = 3 * L->flops_fwd;
    layer_ctx c;
    memset(&c, 0, sizeof c);
    c.rows = rows; c.E = E;
    progress("layer: attn_mha forward, forward+backward, its parts, PyTorch peer");
    peer_blas_set_threads(1); /* the layer keeps OpenBLAS single-threaded (kernels/gemm.c); the peers raised it */
    c.y = falloc(rows * E); c.dy = falloc(rows * E); c.dx = falloc(rows * E);
    c.X = falloc(rows * E); c.Y = falloc(rows * E); c.W = falloc(E * E); c.G = falloc(E * E);
    if (!c.y || !c.dy || !c.dx || !c.X || !c.Y || !c.W || !c.G) { snprintf(L->note, sizeof L->note, "out of memory"); goto done; }
    fill_rand(c.X, rows * E, 11);
    fill_rand(c.dy, rows * E, 12);
    fill_rand(c.W, E * E, 13);
    fill_rand(c.Y, rows * E, 14);
    memset(c.G, 0, (size_t)(E * E) * sizeof(float));
    if (time_mha(L, &c, tc)) goto done;
    progress_step("layer: parts (GEMMs)");
    gemm_fwd_fn(&c);
    bu_time(gemm_fwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &L->gemm_fwd);
    gemm_bwd_fn(&c);
    bu_time(gemm_bwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &L->gemm_bwd);
    progress_step("layer: parts (sdpa)");
    if (time_sdpa_parts(L, &c, threads, tc)) goto done;
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
