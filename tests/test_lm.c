/* SPDX-License-Identifier: MIT */
/*
 * test_lm.c — the language model of `attn train` / `attn generate`
 * (tools/attn/lm.c, compiled into this test as llm.c's test_gpt2.c does).
 *
 *  1. Finite differences of each piece (encoder, RMSNorm, matmul/LM head,
 *     SwiGLU, cross-entropy). The pieces are fp32, so: for y = f(x) take a
 *     fixed random cotangent w, L(x) = sum_i w_i y_i(x) accumulated in
 *     double, central differences with h = 1e-3 on O(1) inputs. fp32 rounding
 *     of L is ~1e-6, i.e. ~1e-3 absolute in the estimate, truncation ~h^2:
 *     pass if |analytic - numeric| <= 1e-2 * max(|analytic|, |numeric|) + 2e-3.
 *     The checker is shown to fail on a gradient off by 5%.
 *  2. The whole model (2 layers, GQA): central differences of the mean loss
 *     for the largest-gradient and some random entries of every parameter
 *     tensor (own and the attention layer's), h = 1e-3 on weights scaled to
 *     std 0.3: pass if |a - n| <= 5e-2 * max(|a|, |n|) + 2e-4.
 *  3. 40 AdamW steps on a fixed tiny text lower the loss by > 50%.
 *  4. Greedy generation through the KV cache (prefill + decode) gives the same
 *     tokens as repeated full forwards, and logits agree to 1e-3.
 *  5. Checkpoint save/load round trip (bit-identical logits), LoRA: trainable
 *     count, only adapters change, loss falls, round trip with adapters.
 *  6. Sampler: greedy = argmax, top-k never leaves the top k, frequencies
 *     follow the softmax.
 */
#include "../tools/attn/lm.c"

#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ─── 1. pieces ─────────────────────────────────────────────────────────── */

static int close_enough(double a, double n, double rel, double abs_tol) {
    double m = fabs(a) > fabs(n) ? fabs(a) : fabs(n);
    return fabs(a - n) <= rel * m + abs_tol;
}

static double dotw(const float *y, const float *w, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)y[i] * w[i];
    return s;
}

/* Checks analytic gradient g (n) of L(x) = f(x) against central differences.
 * f recomputes L from the current x. Returns the number of mismatches. */
typedef double (*lossfn)(void *ctx);
static int fd_check(const char *what, float *x, const float *g, int64_t n, lossfn f, void *ctx, double h,
                    double rel, double abs_tol, int quiet) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + (float)h;
        double lp = f(ctx);
        x[i] = x0 - (float)h;
        double lm = f(ctx);
        x[i] = x0;
        double hh = ((double)(x0 + (float)h) - (double)(x0 - (float)h)); /* the step actually taken */
        double num = (lp - lm) / hh;
        if (!close_enough(g[i], num, rel, abs_tol)) {
            if (!quiet && bad < 3) fprintf(stderr, "  %s[%lld]: analytic %.6g numeric %.6g\n", what, (long long)i, (double)g[i], num);
            bad++;
        }
    }
    return bad;
}

typedef struct {
    int N, C, V, F;
    float *x, *w, *y, *r, *cot, *g, *u, *lg, *pr, *ls;
    int32_t *tok;
} piece_ctx;

static double L_rms(void *vc) {
    piece_ctx *c = vc;
    rmsnorm_forward(c->y, c->r, c->x, c->w, c->N, c->C, 1e-5f);
    return dotw(c->y, c->cot, (int64_t)c->N * c->C);
}
static double L_mm(void *vc) {
    piece_ctx *c = vc;
    matmul_forward(c->y, c->x, c->w, c->N, c->C, c->F);
    return dotw(c->y, c->cot, (int64_t)c->N * c->F);
}
static double L_swi(void *vc) {
    piece_ctx *c = vc;
    swiglu_forward(c->y, c->g, c->u, (int64_t)c->N * c->F);
    return dotw(c->y, c->cot, (int64_t)c->N * c->F);
}
static double L_enc(void *vc) {
    piece_ctx *c = vc;
    encoder_forward(c->y, c->tok, c->w, c->N, c->C);
    return dotw(c->y, c->cot, (int64_t)c->N * c->C);
}
static double L_ce(void *vc) {
    piece_ctx *c = vc;
    crossentropy_forward(c->ls, c->pr, c->lg, c->tok, c->N, c->V);
    double s = 0.0;
    for (int i = 0; i < c->N; i++) s += c->ls[i];
    return s / c->N;
}

static void test_pieces(void) {
    tu_rng rng = {42};
    piece_ctx c;
    c.N = 5; c.C = 12; c.V = 17; c.F = 9;
    int N = c.N, C = c.C, V = c.V, F = c.F;
    c.x = malloc(sizeof(float) * N * C); c.w = malloc(sizeof(float) * V * C * 2);
    c.y = malloc(sizeof(float) * N * V * 2); c.r = malloc(sizeof(float) * N);
    c.cot = malloc(sizeof(float) * N * V * 2); c.g = malloc(sizeof(float) * N * F);
    c.u = malloc(sizeof(float) * N * F); c.lg = malloc(sizeof(float) * N * V);
    c.pr = malloc(sizeof(float) * N * V); c.ls = malloc(sizeof(float) * N);
    c.tok = malloc(sizeof(int32_t) * N);
    float *dx = calloc((size_t)N * V * 2, sizeof(float)), *dw = calloc((size_t)V * C * 2, sizeof(float));
    float *dx2 = calloc((size_t)N * F, sizeof(float));

    /* RMSNorm: out = x * rstd * w */
    tu_fill(&rng, c.x, (int64_t)N * C, 1.0f);
    for (int i = 0; i < C; i++) c.w[i] = 1.0f + 0.3f * (float)tu_normal(&rng);
    tu_fill(&rng, c.cot, (int64_t)N * C, 1.0f);
    memset(dx, 0, sizeof(float) * N * C); memset(dw, 0, sizeof(float) * C);
    L_rms(&c);
    rmsnorm_backward(dx, dw, c.cot, c.x, c.w, c.r, N, C);
    CHECK(fd_check("rmsnorm dx", c.x, dx, (int64_t)N * C, L_rms, &c, 1e-3, 1e-2, 2e-3, 0) == 0, "rmsnorm dinp");
    CHECK(fd_check("rmsnorm dw", c.w, dw, C, L_rms, &c, 1e-3, 1e-2, 2e-3, 0) == 0, "rmsnorm dweight");
    /* backward adds: a second call doubles */
    {
        float before = dx[3];
        rmsnorm_backward(dx, dw, c.cot, c.x, c.w, c.r, N, C);
        CHECK(fabsf(dx[3] - 2.0f * before) <= 1e-5f * fabsf(before) + 1e-7f, "rmsnorm backward accumulates");
    }
    /* the checker fails on a gradient off by 5% */
    memset(dx, 0, sizeof(float) * N * C);
    rmsnorm_backward(dx, NULL, c.cot, c.x, c.w, c.r, N, C);
    for (int i = 0; i < N * C; i++) dx[i] *= 1.05f;
    CHECK(fd_check("rmsnorm dx*1.05", c.x, dx, (int64_t)N * C, L_rms, &c, 1e-3, 1e-2, 2e-3, 1) > 0,
          "finite-difference checker catches a 5%% error");

    /* matmul (MLP projections and LM head): out (N, F) = x (N, C) @ w^T, w (F, C) */
    tu_fill(&rng, c.x, (int64_t)N * C, 1.0f);
    tu_fill(&rng, c.w, (int64_t)F * C, 0.5f);
    tu_fill(&rng, c.cot, (int64_t)N * F, 1.0f);
    memset(dx, 0, sizeof(float) * N * C); memset(dw, 0, sizeof(float) * F * C);
    L_mm(&c);
    matmul_backward(dx, dw, c.cot, c.x, c.w, N, C, F);
    CHECK(fd_check("matmul dx", c.x, dx, (int64_t)N * C, L_mm, &c, 1e-3, 1e-2, 2e-3, 0) == 0, "matmul dinp");
    CHECK(fd_check("matmul dw", c.w, dw, (int64_t)F * C, L_mm, &c, 1e-3, 1e-2, 2e-3, 0) == 0, "matmul dweight");
    /* LM head shape (V = 17 outputs) */
    tu_fill(&rng, c.w, (int64_t)V * C, 0.5f);
    tu_fill(&rng, c.cot, (int64_t)N * V, 1.0f);
    {
        piece_ctx h = c;
        h.F = V;
        memset(dx, 0, sizeof(float) * N * C); memset(dw, 0, sizeof(float) * V * C);
        L_mm(&h);
        matmul_backward(dx, dw, h.cot, h.x, h.w, N, C, V);
        CHECK(fd_check("head dx", h.x, dx, (int64_t)N * C, L_mm, &h, 1e-3, 1e-2, 2e-3, 0) == 0, "lm head dinp");
        CHECK(fd_check("head dw", h.w, dw, (int64_t)V * C, L_mm, &h, 1e-3, 1e-2, 2e-3, 0) == 0, "lm head dweight");
    }

    /* SwiGLU */
    tu_fill(&rng, c.g, (int64_t)N * F, 1.5f);
    tu_fill(&rng, c.u, (int64_t)N * F, 1.0f);
    tu_fill(&rng, c.cot, (int64_t)N * F, 1.0f);
    memset(dx, 0, sizeof(float) * N * F); memset(dx2, 0, sizeof(float) * N * F);
    L_swi(&c);
    swiglu_backward(dx, dx2, c.cot, c.g, c.u, (int64_t)N * F);
    CHECK(fd_check("swiglu dgate", c.g, dx, (int64_t)N * F, L_swi, &c, 1e-3, 1e-2, 2e-3, 0) == 0, "swiglu dgate");
    CHECK(fd_check("swiglu dup", c.u, dx2, (int64_t)N * F, L_swi, &c, 1e-3, 1e-2, 2e-3, 0) == 0, "swiglu dup");

    /* encoder (token embedding), with a repeated token */
    for (int i = 0; i < N; i++) c.tok[i] = (int32_t)tu_int(&rng, 0, V - 1);
    c.tok[N - 1] = c.tok[0];
    tu_fill(&rng, c.w, (int64_t)V * C, 1.0f);
    tu_fill(&rng, c.cot, (int64_t)N * C, 1.0f);
    memset(dw, 0, sizeof(float) * V * C);
    L_enc(&c);
    encoder_backward(dw, c.cot, c.tok, N, C);
    CHECK(fd_check("encoder dwte", c.w, dw, (int64_t)V * C, L_enc, &c, 1e-3, 1e-2, 2e-3, 0) == 0, "encoder dwte");

    /* cross-entropy: mean over N rows */
    tu_fill(&rng, c.lg, (int64_t)N * V, 2.0f);
    memset(dx, 0, sizeof(float) * N * V);
    double l0 = L_ce(&c);
    crossentropy_backward(dx, c.pr, c.tok, 1.0f / N, N, V);
    CHECK(fd_check("crossentropy dlogits", c.lg, dx, (int64_t)N * V, L_ce, &c, 1e-3, 1e-2, 2e-3, 0) == 0,
          "crossentropy dlogits");
    /* value: -log softmax computed independently in double */
    {
        double ref = 0.0;
        for (int n = 0; n < N; n++) {
            double mx = -1e300, s = 0.0;
            for (int v = 0; v < V; v++) mx = fmax(mx, c.lg[n * V + v]);
            for (int v = 0; v < V; v++) s += exp(c.lg[n * V + v] - mx);
            ref += -(c.lg[n * V + c.tok[n]] - mx - log(s));
        }
        CHECK(fabs(l0 - ref / N) < 1e-5, "crossentropy value %g vs %g", l0, ref / N);
        /* a huge logit does not overflow */
        c.lg[0] = 1e4f;
        L_ce(&c);
        CHECK(isfinite(c.ls[0]) && isfinite(c.pr[1]), "crossentropy stable for logit 1e4");
    }
    free(c.x); free(c.w); free(c.y); free(c.r); free(c.cot); free(c.g); free(c.u); free(c.lg); free(c.pr);
    free(c.ls); free(c.tok); free(dx); free(dw); free(dx2);
}

/* ─── helpers for model tests ───────────────────────────────────────────── */
static const char *TINY_TEXT =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "and darkness was upon the face of the deep. ";

static void tiny_config(lm_config *c, int T) {
    lm_config_default(c);
    c->max_seq = T;
    c->n_layer = 2;
    c->dim = 16;
    c->n_head = 2;
    c->n_kv_head = 1;
    c->hidden = 24;
}

static void make_batch(int32_t *x, int32_t *y, int B, int T, int stride) {
    size_t n = strlen(TINY_TEXT);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t o = ((size_t)b * (size_t)stride + (size_t)t) % (n - 1);
            x[b * T + t] = (unsigned char)TINY_TEXT[o];
            y[b * T + t] = (unsigned char)TINY_TEXT[o + 1];
        }
}

/* ─── 2. whole-model finite differences ─────────────────────────────────── */
typedef struct { lm_model *m; const int32_t *x, *y; int B, T; } model_ctx;
static double L_model(void *vc) {
    model_ctx *c = vc;
    float loss = 0.0f;
    if (lm_forward(c->m, c->x, c->y, c->B, c->T, &loss) != ATTN_OK) return NAN;
    return loss;
}

static void test_model_grad(void) {
    lm_config cfg;
    tiny_config(&cfg, 8);
    lm_model *m = NULL;
    attn_status st = lm_create(&m, &cfg, 7);
    CHECK(st == ATTN_OK, "lm_create: %s", lm_error());
    if (st != ATTN_OK) return;
    int64_t np;
    const attn_param *ps = lm_params(m, &np);
    /* bigger weights than the 0.02 init make every gradient O(1e-2..1) */
    tu_rng rng = {99};
    for (int64_t i = 0; i < np; i++) {
        if (strstr(ps[i].name, "norm")) {
            for (int64_t j = 0; j < ps[i].numel; j++) ps[i].data[j] = 1.0f + 0.2f * (float)tu_normal(&rng);
        } else {
            tu_fill(&rng, ps[i].data, ps[i].numel, 0.3f);
        }
    }
    int B = 2, T = 8;
    int32_t x[16], y[16];
    make_batch(x, y, B, T, 11);
    CHECK(lm_set_training(m, 1) == ATTN_OK, "set_training: %s", lm_error());
    float loss;
    st = lm_forward(m, x, y, B, T, &loss);
    CHECK(st == ATTN_OK, "forward: %s", lm_error());
    CHECK(lm_zero_grad(m) == ATTN_OK, "zero_grad");
    st = lm_backward(m);
    CHECK(st == ATTN_OK, "backward: %s", lm_error());
    if (st != ATTN_OK) { lm_free(m); return; }
    /* copy gradients: the FD forwards below do not touch them, but keep it explicit */
    model_ctx mc = {m, x, y, B, T};
    CHECK(lm_set_training(m, 0) == ATTN_OK, "eval mode");
    int checked = 0, bad_total = 0;
    for (int64_t i = 0; i < np; i++) {
        const attn_param *p = &ps[i];
        /* largest |grad| entry, plus 3 random entries */
        int64_t idx[4], best = 0;
        for (int64_t j = 1; j < p->numel; j++) if (fabsf(p->grad[j]) > fabsf(p->grad[best])) best = j;
        idx[0] = best;
        for (int k = 1; k < 4; k++) idx[k] = tu_int(&rng, 0, p->numel - 1);
        int bad = 0;
        for (int k = 0; k < 4; k++) {
            float g = p->grad[idx[k]];
            bad += fd_check(p->name, p->data + idx[k], &g, 1, L_model, &mc, 1e-3, 5e-2, 2e-4, 0);
            checked++;
        }
        if (bad) fprintf(stderr, "  model gradient mismatch in %s\n", p->name);
        bad_total += bad;
        CHECK(bad == 0, "model gradient of %s", p->name);
        CHECK(fabsf(p->grad[best]) > 1e-4f, "gradient of %s is not ~0 (%g)", p->name, (double)p->grad[best]);
    }
    printf("  whole-model FD: %d entries over %lld tensors, %d mismatches\n", checked, (long long)np, bad_total);
    lm_free(m);
}

/* ─── 3. training lowers the loss ──────────────────────────────────────── */
static lm_model *trained_tiny(float *l_first, float *l_last, int steps) {
    lm_config cfg;
    tiny_config(&cfg, 32);
    cfg.dim = 32;
    cfg.n_head = 4;
    cfg.n_kv_head = 2;
    cfg.hidden = 64;
    lm_model *m = NULL;
    if (lm_create(&m, &cfg, 3) != ATTN_OK) { fprintf(stderr, "%s\n", lm_error()); return NULL; }
    attn_optim *o = NULL;
    if (attn_optim_create_adamw(&o, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f) != ATTN_OK) { lm_free(m); return NULL; }
    int B = 4, T = 32;
    int32_t x[128], y[128];
    lm_set_training(m, 1);
    for (int s = 0; s < steps; s++) {
        make_batch(x, y, B, T, 29 + s * 7);
        float loss;
        if (lm_forward(m, x, y, B, T, &loss) != ATTN_OK || lm_zero_grad(m) != ATTN_OK || lm_backward(m) != ATTN_OK) {
            fprintf(stderr, "train step %d: %s\n", s, lm_error());
            break;
        }
        int64_t np;
        const attn_param *ps = lm_params(m, &np);
        attn_optim_step(o, ps, np);
        if (s == 0) *l_first = loss;
        *l_last = loss;
    }
    attn_optim_free(o);
    lm_set_training(m, 0);
    return m;
}

static void test_training(void) {
    float a = 0, b = 0;
    lm_model *m = trained_tiny(&a, &b, 40);
    CHECK(m != NULL, "tiny training ran");
    if (!m) return;
    printf("  tiny training: loss %.3f -> %.3f in 40 steps\n", (double)a, (double)b);
    CHECK(a > 5.0f && a < 6.0f, "initial loss %g ~ ln 256", (double)a);
    CHECK(b < 0.5f * a, "loss fell by > 50%%: %g -> %g", (double)a, (double)b);
    lm_free(m);
}

/* ─── 4. KV-cache generation == full forwards ──────────────────────────── */
static void test_cache_generation(void) {
    float a, b;
    lm_model *m = trained_tiny(&a, &b, 30);
    if (!m) { CHECK(0, "model"); return; }
    const int S = lm_get_config(m)->max_seq, V = LM_VOCAB;
    lm_cache *c = NULL;
    CHECK(lm_cache_create(&c, m, S) == ATTN_OK, "cache: %s", lm_error());
    if (!c) { lm_free(m); return; }
    const char *prompt = "In the beg";
    int n = (int)strlen(prompt), n0 = n;
    int32_t ctx[64], full[64];
    float lg[LM_VOCAB];
    for (int i = 0; i < n; i++) ctx[i] = (unsigned char)prompt[i];
    attn_status st = lm_forward_cached(m, c, ctx, n, lg);
    CHECK(st == ATTN_OK, "prefill: %s", lm_error());
    int same = 1;
    double maxdiff = 0.0;
    while (st == ATTN_OK && n < S) {
        int tc = lm_sample(lg, V, 0.0f, 0, NULL);
        /* reference: a full forward over the whole context */
        memcpy(full, ctx, (size_t)n * sizeof *full);
        st = lm_forward(m, full, NULL, 1, n, NULL);
        if (st != ATTN_OK) break;
        const float *ref = lm_logits(m) + (size_t)(n - 1) * V;
        for (int v = 0; v < V; v++) maxdiff = fmax(maxdiff, fabs((double)ref[v] - lg[v]));
        int tf = lm_sample(ref, V, 0.0f, 0, NULL);
        if (tf != tc) same = 0;
        ctx[n++] = tc;
        if (n < S) st = lm_forward_cached(m, c, &ctx[n - 1], 1, lg);
    }
    CHECK(st == ATTN_OK, "generation: %s", lm_error());
    CHECK(same, "greedy tokens with the KV cache equal those of full forwards");
    CHECK(maxdiff < 1e-3, "cached vs full logits: max |diff| = %g", maxdiff);
    CHECK(lm_cache_len(c) == S - 1 || lm_cache_len(c) == S, "cache length %lld", (long long)lm_cache_len(c));
    printf("  cache generation: %d tokens after a %d-byte prompt, max logit diff %.2e: \"", S - n0, n0, maxdiff);
    for (int i = 0; i < n; i++) putchar(ctx[i] >= 32 && ctx[i] < 127 ? ctx[i] : '?');
    printf("\"\n");
    /* overflow is refused */
    float lg2[LM_VOCAB];
    int32_t extra[2] = {65, 66};
    if (lm_cache_len(c) == S - 1) {
        CHECK(lm_forward_cached(m, c, extra, 2, lg2) == ATTN_ERR_CAPACITY, "cache overflow refused");
    } else {
        CHECK(lm_forward_cached(m, c, extra, 1, lg2) == ATTN_ERR_CAPACITY, "cache overflow refused");
    }
    /* reset and re-prefill gives the same logits as the first prefill */
    float lg3[LM_VOCAB], lg4[LM_VOCAB];
    CHECK(lm_cache_reset(c) == ATTN_OK && lm_cache_len(c) == 0, "reset");
    CHECK(lm_forward_cached(m, c, ctx, n0, lg3) == ATTN_OK, "re-prefill");
    CHECK(lm_cache_reset(c) == ATTN_OK, "reset");
    /* token by token prefill == one-shot prefill */
    st = ATTN_OK;
    for (int i = 0; i < n0 && st == ATTN_OK; i++) st = lm_forward_cached(m, c, &ctx[i], 1, lg4);
    double d = 0.0;
    for (int v = 0; v < V; v++) d = fmax(d, fabs((double)lg3[v] - lg4[v]));
    CHECK(st == ATTN_OK && d < 1e-4, "token-by-token prefill == one-shot prefill (diff %g)", d);
    lm_cache_free(c);
    lm_free(m);
}

/* ─── 5. checkpoints and LoRA ──────────────────────────────────────────── */
static void test_checkpoint_lora(void) {
    float a, b;
    lm_model *m = trained_tiny(&a, &b, 10);
    if (!m) { CHECK(0, "model"); return; }
    char path[] = "/tmp/attn_test_lm_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) { lm_free(m); return; }
    close(fd);
    int T = 32, B = 2;
    int32_t x[64], y[64];
    make_batch(x, y, B, T, 5);
    float l1, l2;
    attn_status st = lm_save(m, path);
    CHECK(st == ATTN_OK, "save: %s", lm_error());
    lm_model *m2 = NULL;
    st = lm_load(&m2, path);
    CHECK(st == ATTN_OK, "load: %s", lm_error());
    if (m2) {
        CHECK(memcmp(lm_get_config(m), lm_get_config(m2), sizeof(lm_config)) == 0, "config round trip");
        CHECK(lm_forward(m, x, y, B, T, &l1) == ATTN_OK && lm_forward(m2, x, y, B, T, &l2) == ATTN_OK, "forwards");
        CHECK(memcmp(&l1, &l2, sizeof l1) == 0, "loaded model gives the same loss bit for bit (%g vs %g)", (double)l1, (double)l2);
        CHECK(lm_num_params(m) == lm_num_params(m2), "param count");
    }
    /* LoRA fine-tuning */
    const lm_config *cf = lm_get_config(m);
    int64_t before = lm_num_params(m), r = 4;
    st = lm_lora_attach(m, r, 8.0f, 1);
    CHECK(st == ATTN_OK, "lora attach: %s", lm_error());
    int64_t hd = cf->dim / cf->n_head;
    int64_t expect = cf->n_layer * (r * cf->dim + cf->n_head * hd * r + r * cf->dim + cf->n_kv_head * hd * r);
    CHECK(lm_num_trainable(m) == expect, "LoRA trainable %lld, expected %lld", (long long)lm_num_trainable(m), (long long)expect);
    CHECK(lm_num_params(m) == before + expect, "LoRA total %lld", (long long)lm_num_params(m));
    /* training changes only the adapters */
    int64_t np;
    const attn_param *ps = lm_params(m, &np);
    int64_t tot = lm_num_params(m);
    float *snap = malloc(sizeof(float) * (size_t)tot);
    int64_t off = 0;
    for (int64_t i = 0; i < np; i++) { memcpy(snap + off, ps[i].data, sizeof(float) * (size_t)ps[i].numel); off += ps[i].numel; }
    attn_optim *o = NULL;
    attn_optim_create_adamw(&o, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f);
    lm_set_training(m, 1);
    float lf = 0, ll = 0;
    for (int s = 0; s < 15; s++) {
        float loss;
        st = lm_forward(m, x, y, B, T, &loss);
        if (st == ATTN_OK) st = lm_zero_grad(m);
        if (st == ATTN_OK) st = lm_backward(m);
        if (st == ATTN_OK) st = attn_optim_step(o, ps, np);
        if (st != ATTN_OK) { CHECK(0, "lora step: %s / %s", lm_error(), attn_last_error()); break; }
        if (s == 0) lf = loss;
        ll = loss;
    }
    attn_optim_free(o);
    CHECK(ll < lf, "LoRA steps lower the loss: %g -> %g", (double)lf, (double)ll);
    int frozen_changed = 0, lora_changed = 0;
    off = 0;
    for (int64_t i = 0; i < np; i++) {
        int changed = memcmp(snap + off, ps[i].data, sizeof(float) * (size_t)ps[i].numel) != 0;
        if (strstr(ps[i].name, "lora")) lora_changed += changed;
        else frozen_changed += changed;
        off += ps[i].numel;
    }
    free(snap);
    CHECK(frozen_changed == 0, "%d frozen tensors changed", frozen_changed);
    CHECK(lora_changed > 0, "adapters changed");
    /* round trip with adapters */
    lm_set_training(m, 0);
    st = lm_save(m, path);
    CHECK(st == ATTN_OK, "save lora: %s", lm_error());
    lm_model *m3 = NULL;
    st = lm_load(&m3, path);
    CHECK(st == ATTN_OK, "load lora: %s", lm_error());
    if (m3) {
        CHECK(lm_lora_rank(m3) == r, "lora rank from metadata");
        CHECK(lm_forward(m, x, y, B, T, &l1) == ATTN_OK && lm_forward(m3, x, y, B, T, &l2) == ATTN_OK, "forwards");
        CHECK(memcmp(&l1, &l2, sizeof l1) == 0, "LoRA checkpoint gives the same loss (%g vs %g)", (double)l1, (double)l2);
    }
    /* not a checkpoint of ours: a clean error */
    FILE *f = fopen(path, "wb");
    if (f) { fputs("garbage", f); fclose(f); }
    lm_model *m4 = NULL;
    CHECK(lm_load(&m4, path) != ATTN_OK && m4 == NULL && lm_error()[0], "garbage file refused");
    remove(path);
    lm_free(m);
    lm_free(m2);
    lm_free(m3);
}

/* ─── 6. sampler and config ────────────────────────────────────────────── */
static void test_sampler_config(void) {
    float lg[LM_VOCAB];
    tu_rng r = {5};
    tu_fill(&r, lg, LM_VOCAB, 0.5f);
    for (int v = 0; v < LM_VOCAB; v++) lg[v] = fminf(lg[v], 2.5f);
    lg[77] = 4.0f;
    lg[78] = 3.5f;
    lg[79] = 3.0f;
    lm_rng rng = {1};
    CHECK(lm_sample(lg, LM_VOCAB, 0.0f, 0, &rng) == 77, "greedy");
    CHECK(lm_sample(lg, LM_VOCAB, 1.0f, 1, &rng) == 77, "top-k 1");
    int cnt[3] = {0, 0, 0}, out = 0;
    for (int i = 0; i < 6000; i++) {
        int t = lm_sample(lg, LM_VOCAB, 1.0f, 3, &rng);
        if (t >= 77 && t <= 79) cnt[t - 77]++;
        else out++;
    }
    CHECK(out == 0, "top-k 3 stays in the top 3 (%d outside)", out);
    double z = exp(4.0) + exp(3.5) + exp(3.0);
    CHECK(fabs(cnt[0] / 6000.0 - exp(4.0) / z) < 0.03 && fabs(cnt[2] / 6000.0 - exp(3.0) / z) < 0.03,
          "top-k frequencies follow softmax: %d %d %d", cnt[0], cnt[1], cnt[2]);
    lm_config c;
    lm_config_default(&c);
    CHECK(lm_config_validate(&c) == ATTN_OK && c.hidden == 192, "default config valid, hidden %d", c.hidden);
    c.n_head = 3;
    CHECK(lm_config_validate(&c) == ATTN_ERR_CONFIG && strstr(lm_error(), "heads"), "heads must divide dim");
    lm_config_default(&c);
    c.n_kv_head = 3;
    CHECK(lm_config_validate(&c) == ATTN_ERR_CONFIG, "kv heads must divide heads");
    lm_config_default(&c);
    lm_model *m = NULL;
    c.max_seq = 16; c.n_layer = 1; c.dim = 8; c.n_head = 2;
    CHECK(lm_create(&m, &c, 1) == ATTN_OK, "create");
    int32_t bad[2] = {3, 256};
    CHECK(m && lm_forward(m, bad, NULL, 1, 2, NULL) == ATTN_ERR_SHAPE, "token out of range refused");
    int32_t ok[17] = {0};
    CHECK(m && lm_forward(m, ok, NULL, 1, 17, NULL) == ATTN_ERR_SHAPE, "T > max_seq refused");
    CHECK(m && lm_backward(m) == ATTN_ERR_STATE, "backward without forward refused");
    lm_free(m);
}

int main(void) {
    attn_set_num_threads(2);
    printf("pieces\n");
    test_pieces();
    printf("sampler / config\n");
    test_sampler_config();
    printf("whole-model gradient\n");
    test_model_grad();
    printf("training\n");
    test_training();
    printf("KV-cache generation\n");
    test_cache_generation();
    printf("checkpoint / LoRA\n");
    test_checkpoint_lora();
    return test_summary("test_lm");
}
