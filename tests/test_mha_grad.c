/* SPDX-License-Identifier: MIT */
/* test_mha_grad.c — the layer's backward against central finite differences
 * computed IN FLOAT64 on the reference layer (mha_ref).
 *
 * Loss L = sum(y * g) with a fixed random g (= dy). For every trainable
 * parameter tensor P (weights, biases, q_norm/k_norm, LoRA A and B with B
 * non-zero) and every input (x, key, value), every element is perturbed:
 *     dL/dP_i ~ (L(P_i + h) - L(P_i - h)) / 2h,   h = 1e-5 (float64)
 * and compared with the layer's fp32 gradient: the relative error
 *     ||grad - fd||_2 / max(||fd||_2, 1e-2 sqrt(n))   must be <= 1e-3  (typically ~1e-6),
 * and max_i |grad_i - fd_i| <= 1e-3 * max(max_i |fd_i|, 1e-2).
 * Frozen parameters (LoRA attached) must keep a zero gradient.
 * The FD itself is validated: step-size convergence (h vs h/10) and the exact
 * analytic gradient of o_proj.bias (sum over rows of g). */
#include "attn.h"
#include "layer/mha_internal.h" /* the dropout seed of the last forward */
#include "mha_ref.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-3;
static double g_worst = 0;
static long g_checked = 0;

typedef struct fd_ctx {
    const attn_mha_config *cfg;
    mha_ref_params *p;
    mha_ref_input *ri;
    const double *g;
    double *y;
    int64_t ny;
} fd_ctx;

static double loss(fd_ctx *c) {
    if (mha_ref_forward(c->cfg, c->p, c->ri, c->y) != 0) return NAN;
    double s = 0;
    for (int64_t i = 0; i < c->ny; i++) s += c->y[i] * c->g[i];
    return s;
}

static void fd_grad(fd_ctx *c, double *v, int64_t n, double h, double *out) {
    for (int64_t i = 0; i < n; i++) {
        double v0 = v[i];
        v[i] = v0 + h;
        double lp = loss(c);
        v[i] = v0 - h;
        double lm = loss(c);
        v[i] = v0;
        out[i] = (lp - lm) / (2 * h);
    }
}

static void compare(const char *cname, const char *what, const float *got, const double *fd, int64_t n) {
    double dn = 0, fn = 0, md = 0, mf = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - fd[i];
        dn += d * d;
        fn += fd[i] * fd[i];
        md = fmax(md, fabs(d));
        mf = fmax(mf, fabs(fd[i]));
        if (d != d) md = INFINITY;
    }
    /* floor: an RMS of 1e-2 (the gradients here are O(0.1)-O(10); analytically
     * zero ones, e.g. k_proj.bias without RoPE, carry only fp32 noise) */
    double rel = sqrt(dn) / fmax(sqrt(fn), 1e-2 * sqrt((double)n));
    CHECK(rel <= TOL && md <= TOL * fmax(mf, 1e-2), "%s: %s rel err %.3g, max abs diff %.3g (max |fd| %.3g)", cname, what, rel, md, mf);
    if (rel > g_worst && rel == rel) g_worst = rel;
    g_checked += n;
}

typedef struct gcase {
    const char *name;
    attn_mha_config cfg;
    mha_case c;
    int lora_which;
    int64_t lora_rank;
    float lora_alpha;
} gcase;

static void run_grad(gcase *gc, uint64_t seed) {
    tu_rng r = {seed};
    attn_mha *m = NULL;
    attn_status s = attn_mha_create(&m, &gc->cfg);
    CHECK(s == ATTN_OK, "%s: create: %s", gc->name, attn_last_error());
    if (s != ATTN_OK) return;
    const attn_mha_config *cfg = attn_mha_get_config(m);
    if (gc->lora_which) {
        s = attn_mha_lora_attach(m, gc->lora_which, gc->lora_rank, gc->lora_alpha, seed);
        CHECK(s == ATTN_OK, "%s: lora: %s", gc->name, attn_last_error());
    }
    mha_randomize_params(m, &r, 0.3, 1.0);
    mha_case c = gc->c;
    mha_case_make(&c, cfg, &r);
    const int64_t E = cfg->embed_dim, ny = c.B * c.Sq * E;
    float *g = malloc(sizeof(float) * (size_t)(ny + 1)), *y = malloc(sizeof(float) * (size_t)(ny + 1));
    double *gd = malloc(sizeof(double) * (size_t)(ny + 1)), *yd = malloc(sizeof(double) * (size_t)(ny + 1));
    for (int64_t i = 0; i < ny; i++) { g[i] = (float)tu_normal(&r); gd[i] = g[i]; }
    float *dx = malloc(sizeof(float) * (size_t)(c.nx + 1));
    float *dkey = c.cross ? malloc(sizeof(float) * (size_t)(c.nkey + 1)) : NULL;
    float *dvalue = c.cross && !c.value_is_key ? malloc(sizeof(float) * (size_t)(c.nvalue + 1)) : NULL;

    attn_mha_set_training(m, 1);
    attn_mha_zero_grad(m);
    attn_mha_input in;
    mha_case_input(&c, &in);
    s = attn_mha_forward(m, &in, y);
    CHECK(s == ATTN_OK, "%s: forward: %s", gc->name, attn_last_error());
    const uint64_t dseed = m->st.opts.dropout_seed;
    s = attn_mha_backward(m, g, dx, dkey, dvalue);
    CHECK(s == ATTN_OK, "%s: backward: %s", gc->name, attn_last_error());
    if (s != ATTN_OK) goto done;

    mha_ref_params p;
    mha_ref_params_from_layer(m, &p);
    p.lscale = gc->lora_which ? (double)gc->lora_alpha / (double)gc->lora_rank : 0;
    mha_ref_input ri;
    mha_case_ref_input(&c, &ri);
    ri.dropout_p = cfg->dropout;
    ri.dropout_seed = dseed;
    fd_ctx fc = {cfg, &p, &ri, gd, yd, ny};
    {   /* the reference output matches the layer's (same dropout mask) */
        loss(&fc);
        double e = mha_rel_err(y, yd, ny, 1e-3);
        CHECK(e < 2e-5, "%s: training forward vs reference %.3g", gc->name, e);
    }
    const double h = 1e-5;
    int64_t np = attn_mha_num_params(m);
    for (int64_t i = 0; i < np; i++) {
        attn_param ap;
        attn_mha_param(m, i, &ap);
        if (!ap.trainable) {
            int nz = 0;
            for (int64_t j = 0; j < ap.numel; j++) nz |= ap.grad[j] != 0.0f;
            CHECK(!nz, "%s: frozen %s has a gradient", gc->name, ap.name);
            continue;
        }
        int64_t n = 0;
        double *v = mha_ref_param_ptr(&p, cfg, ap.name, &n);
        CHECK(v && n == ap.numel, "%s: reference has no %s", gc->name, ap.name);
        if (!v) continue;
        double *fd = malloc(sizeof(double) * (size_t)n);
        fd_grad(&fc, v, n, h, fd);
        compare(gc->name, ap.name, ap.grad, fd, n);
        free(fd);
    }
    {
        double *fd = malloc(sizeof(double) * (size_t)(c.nx + 1));
        fd_grad(&fc, c.xd, c.nx, h, fd);
        compare(gc->name, "dx", dx, fd, c.nx);
        free(fd);
        if (c.cross) {
            fd = malloc(sizeof(double) * (size_t)(c.nkey + 1));
            fd_grad(&fc, c.keyd, c.nkey, h, fd); /* value_is_key: ri.value == NULL -> key feeds both */
            compare(gc->name, c.value_is_key ? "dkey (key + value)" : "dkey", dkey, fd, c.nkey);
            free(fd);
            if (!c.value_is_key) {
                fd = malloc(sizeof(double) * (size_t)(c.nvalue + 1));
                fd_grad(&fc, c.valued, c.nvalue, h, fd);
                compare(gc->name, "dvalue", dvalue, fd, c.nvalue);
                free(fd);
            }
        }
    }
    mha_ref_params_free(&p);
done:
    free(g); free(y); free(gd); free(yd); free(dx); free(dkey); free(dvalue);
    mha_case_free(&c);
    attn_mha_free(m);
}

static attn_mha_config mk(int64_t E, int64_t Hq, int64_t Hkv, int64_t D) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = E; c.num_heads = Hq; c.num_kv_heads = Hkv; c.head_dim = D;
    return c;
}
static mha_case mc(int64_t B, int64_t Sq) {
    mha_case c;
    memset(&c, 0, sizeof c);
    c.B = B; c.Sq = Sq;
    return c;
}

static void test_cases(void) {
    gcase cs[32];
    int n = 0;
    gcase *g;
#define ADD(nm) do { g = &cs[n++]; memset(g, 0, sizeof *g); g->name = nm; } while (0)
    ADD("mha all biases");
    g->cfg = mk(16, 4, 0, 0); g->cfg.bias_q = g->cfg.bias_k = g->cfg.bias_v = g->cfg.bias_o = 1; g->c = mc(2, 5);
    ADD("gqa neox causal positions, qd != E");
    g->cfg = mk(12, 4, 2, 4); g->cfg.causal = 1; g->cfg.rope = ATTN_ROPE_NEOX; g->cfg.bias_k = 1;
    g->c = mc(2, 6); g->c.pos_kind = 2;
    ADD("mqa gptj partial llama3");
    g->cfg = mk(16, 4, 1, 6); g->cfg.rope = ATTN_ROPE_GPTJ; g->cfg.rope_dim = 4; g->cfg.rope_theta = 5000;
    g->cfg.rope_scaling = ATTN_ROPE_SCALING_LLAMA3; g->cfg.rope_factor = 8; g->cfg.rope_low_freq_factor = 1;
    g->cfg.rope_high_freq_factor = 4; g->cfg.rope_original_max_pos = 32; g->cfg.bias_q = 1;
    g->c = mc(2, 5); g->c.pos_kind = 2;
    ADD("qk_norm neox linear scaling causal biases");
    g->cfg = mk(12, 3, 1, 8); g->cfg.qk_norm = 1; g->cfg.rope = ATTN_ROPE_NEOX; g->cfg.rope_scaling = ATTN_ROPE_SCALING_LINEAR;
    g->cfg.rope_factor = 2; g->cfg.causal = 1; g->cfg.bias_q = g->cfg.bias_k = g->cfg.bias_v = g->cfg.bias_o = 1;
    g->c = mc(2, 5); g->c.pos_kind = 1; g->c.pos_offset = 3;
    ADD("qk_norm gptj partial");
    g->cfg = mk(8, 2, 2, 8); g->cfg.qk_norm = 1; g->cfg.rope = ATTN_ROPE_GPTJ; g->cfg.rope_dim = 6;
    g->c = mc(1, 6);
    ADD("cross kdim 12 vdim 10 seq-first padding");
    g->cfg = mk(16, 4, 0, 0); g->cfg.kdim = 12; g->cfg.vdim = 10; g->cfg.bias_q = g->cfg.bias_k = g->cfg.bias_v = g->cfg.bias_o = 1;
    g->c = mc(2, 4); g->c.cross = 1; g->c.Skv = 7; g->c.kpm_kind = 2; g->c.layout = ATTN_SEQ_FIRST;
    ADD("cross value is key, causal bottom-right, rope, gqa");
    g->cfg = mk(16, 4, 2, 4); g->cfg.kdim = 8; g->cfg.vdim = 8; g->cfg.causal = 1; g->cfg.rope = ATTN_ROPE_NEOX; g->cfg.bias_v = 1;
    g->c = mc(2, 3); g->c.cross = 1; g->c.Skv = 6; g->c.value_is_key = 1;
    ADD("lora qkvo gqa rope");
    g->cfg = mk(12, 4, 2, 4); g->cfg.rope = ATTN_ROPE_NEOX; g->cfg.causal = 1; g->cfg.bias_q = g->cfg.bias_o = 1;
    g->c = mc(2, 5); g->lora_which = 15; g->lora_rank = 3; g->lora_alpha = 6;
    ADD("lora qv qk_norm");
    g->cfg = mk(12, 3, 1, 4); g->cfg.qk_norm = 1; g->cfg.rope = ATTN_ROPE_NEOX;
    g->c = mc(2, 4); g->lora_which = ATTN_PROJ_Q | ATTN_PROJ_V; g->lora_rank = 2; g->lora_alpha = 4;
    ADD("lora cross kv");
    g->cfg = mk(12, 3, 0, 0); g->cfg.kdim = 10; g->cfg.vdim = 6;
    g->c = mc(2, 3); g->c.cross = 1; g->c.Skv = 5; g->lora_which = ATTN_PROJ_K | ATTN_PROJ_V | ATTN_PROJ_O; g->lora_rank = 2;
    g->lora_alpha = 2;
    ADD("padding + bool mask + softcap + window");
    g->cfg = mk(16, 4, 2, 4); g->cfg.softcap = 3; g->cfg.window_left = 2; g->cfg.window_right = 1;
    g->c = mc(2, 6); g->c.kpm_kind = 2; g->c.mask_kind = ATTN_MASK_BOOL; g->c.mask_bcast = 2;
    ADD("additive mask + padding, causal");
    g->cfg = mk(16, 4, 0, 0); g->cfg.causal = 1;
    g->c = mc(2, 5); g->c.kpm_kind = 3; g->c.mask_kind = ATTN_MASK_ADD; g->c.mask_bcast = 4;
    ADD("right padding (key_lens) seq-first causal");
    g->cfg = mk(16, 4, 2, 4); g->cfg.causal = 1; g->cfg.rope = ATTN_ROPE_NEOX;
    g->c = mc(3, 6); g->c.kpm_kind = 1; g->c.layout = ATTN_SEQ_FIRST;
    ADD("dropout 0.25");
    g->cfg = mk(16, 4, 2, 4); g->cfg.dropout = 0.25f; g->cfg.dropout_seed = 99; g->cfg.bias_v = 1;
    g->c = mc(2, 6);
    ADD("S = 1 training");
    g->cfg = mk(16, 4, 2, 4); g->cfg.rope = ATTN_ROPE_NEOX; g->cfg.causal = 1;
    g->c = mc(3, 1); g->c.pos_kind = 1; g->c.pos_offset = 9;
#undef ADD
    for (int i = 0; i < n; i++) run_grad(&cs[i], 500 + (uint64_t)i);
    printf("gradients: %d cases, %ld elements checked, worst relative error %.3g\n", n, g_checked, g_worst);
}

/* the FD machinery itself: step convergence and an exactly known gradient */
static void test_fd_self(void) {
    attn_mha_config cfg = mk(12, 3, 1, 4);
    cfg.rope = ATTN_ROPE_NEOX; cfg.causal = 1; cfg.bias_o = 1; cfg.qk_norm = 1;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { CHECK(0, "create"); return; }
    tu_rng r = {4242};
    mha_randomize_params(m, &r, 0.3, 1.0);
    const attn_mha_config *rc = attn_mha_get_config(m);
    mha_case c = mc(2, 5);
    mha_case_make(&c, rc, &r);
    int64_t ny = c.nx;
    double *gd = malloc(sizeof(double) * (size_t)ny), *yd = malloc(sizeof(double) * (size_t)ny);
    for (int64_t i = 0; i < ny; i++) gd[i] = tu_normal(&r);
    mha_ref_params p;
    mha_ref_params_from_layer(m, &p);
    mha_ref_input ri;
    mha_case_ref_input(&c, &ri);
    fd_ctx fc = {rc, &p, &ri, gd, yd, ny};
    /* o_proj.bias: dL/dbo_e = sum over rows of g[., e] exactly */
    int64_t n;
    double *bo = mha_ref_param_ptr(&p, rc, "o_proj.bias", &n);
    double *fd = malloc(sizeof(double) * (size_t)n);
    fd_grad(&fc, bo, n, 1e-5, fd);
    double md = 0;
    for (int64_t e = 0; e < n; e++) {
        double exact = 0;
        for (int64_t row = 0; row < c.B * c.Sq; row++) exact += gd[row * n + e];
        md = fmax(md, fabs(exact - fd[e]));
    }
    CHECK(md < 1e-8, "FD of o_proj.bias vs exact: %.3g", md);
    /* h and h/10 agree on a nonlinear parameter (q_norm through rope + softmax) */
    double *qn = mha_ref_param_ptr(&p, rc, "q_norm.weight", &n);
    double *fd2 = malloc(sizeof(double) * (size_t)n), *fd3 = malloc(sizeof(double) * (size_t)n);
    fd_grad(&fc, qn, n, 1e-4, fd2);
    fd_grad(&fc, qn, n, 1e-5, fd3);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) { num += (fd2[i] - fd3[i]) * (fd2[i] - fd3[i]); den += fd3[i] * fd3[i]; }
    CHECK(den > 0 && sqrt(num / den) < 1e-6, "FD step convergence: %.3g", sqrt(num / den));
    printf("fd self-check: bias exact diff %.3g, h vs h/10 rel %.3g\n", md, sqrt(num / den));
    free(fd); free(fd2); free(fd3); free(gd); free(yd);
    mha_ref_params_free(&p);
    mha_case_free(&c);
    attn_mha_free(m);
}

/* gradients accumulate across backward calls; dx is overwritten; one backward per forward */
static void test_accumulate(void) {
    attn_mha_config cfg = mk(16, 4, 2, 4);
    cfg.bias_q = cfg.bias_o = 1; cfg.qk_norm = 1; cfg.rope = ATTN_ROPE_NEOX;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { CHECK(0, "create"); return; }
    attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 1);
    tu_rng r = {8};
    const int64_t n = 2 * 7 * 16;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
    float *dx1 = malloc(sizeof(float) * n), *dx2 = malloc(sizeof(float) * n);
    tu_fill(&r, x, n, 1); tu_fill(&r, g, n, 1);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = 2; in.seq_q = 7; in.x = x;
    attn_mha_set_training(m, 1);
    attn_mha_forward(m, &in, y);
    CHECK(attn_mha_backward(m, g, dx1, NULL, NULL) == ATTN_OK, "backward 1");
    CHECK(attn_mha_backward(m, g, dx1, NULL, NULL) == ATTN_ERR_STATE, "second backward without forward");
    int64_t np = attn_mha_num_params(m);
    float **saved = malloc(sizeof(float *) * (size_t)np);
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        saved[i] = malloc(sizeof(float) * (size_t)p.numel);
        memcpy(saved[i], p.grad, sizeof(float) * (size_t)p.numel);
    }
    for (int64_t i = 0; i < n; i++) dx2[i] = 1e9f;
    attn_mha_forward(m, &in, y);
    CHECK(attn_mha_backward(m, g, dx2, NULL, NULL) == ATTN_OK, "backward 2");
    CHECK(memcmp(dx1, dx2, sizeof(float) * n) == 0, "dx not overwritten identically");
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        int ok = 1;
        for (int64_t j = 0; j < p.numel; j++) ok &= p.grad[j] == 2.0f * saved[i][j];
        CHECK(ok, "%s: gradient not accumulated (2x)", p.name);
        free(saved[i]);
    }
    free(saved);
    attn_mha_zero_grad(m);
    attn_param p;
    attn_mha_find_param(m, "q_proj.weight", &p);
    CHECK(p.grad[0] == 0.0f && p.grad[p.numel - 1] == 0.0f, "zero_grad");
    /* a backward that passes NULL dx still produces parameter gradients */
    attn_mha_forward(m, &in, y);
    CHECK(attn_mha_backward(m, g, NULL, NULL, NULL) == ATTN_OK, "backward dx NULL");
    CHECK(p.grad[0] != 0.0f, "grads with dx NULL");
    /* eval forward invalidates the saved state */
    attn_mha_forward(m, &in, y);
    attn_mha_set_training(m, 0);
    attn_mha_forward(m, &in, y);
    CHECK(attn_mha_backward(m, g, dx1, NULL, NULL) == ATTN_ERR_STATE, "backward after eval forward");
    free(x); free(y); free(g); free(dx1); free(dx2);
    attn_mha_free(m);
}

/* backward results do not depend on the thread count */
static void test_threads(void) {
    attn_mha_config cfg = mk(64, 4, 2, 16);
    cfg.bias_q = cfg.bias_k = cfg.bias_v = cfg.bias_o = 1; cfg.qk_norm = 1; cfg.rope = ATTN_ROPE_NEOX; cfg.causal = 1;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { CHECK(0, "create"); return; }
    attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 1);
    attn_mha_lora_attach(m, ATTN_PROJ_Q | ATTN_PROJ_O, 4, 8, 2);
    tu_rng r = {10};
    mha_randomize_params(m, &r, 0.3, 1.0);
    const int64_t B = 3, S = 40, n = B * S * 64;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
    float *dx[2] = {malloc(sizeof(float) * n), malloc(sizeof(float) * n)};
    tu_fill(&r, x, n, 1); tu_fill(&r, g, n, 1);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;
    attn_mha_set_training(m, 1);
    const int nt0 = attn_get_num_threads();
    int64_t np = attn_mha_num_params(m);
    float **gr = calloc((size_t)np, sizeof(float *));
    for (int k = 0; k < 2; k++) {
        attn_set_num_threads(k ? 3 : 1);
        attn_mha_zero_grad(m);
        attn_mha_forward(m, &in, y);
        CHECK(attn_mha_backward(m, g, dx[k], NULL, NULL) == ATTN_OK, "backward");
        for (int64_t i = 0; i < np; i++) {
            attn_param p;
            attn_mha_param(m, i, &p);
            if (!k) {
                gr[i] = malloc(sizeof(float) * (size_t)p.numel);
                memcpy(gr[i], p.grad, sizeof(float) * (size_t)p.numel);
            } else {
                CHECK(memcmp(gr[i], p.grad, sizeof(float) * (size_t)p.numel) == 0, "%s grad depends on the thread count", p.name);
                free(gr[i]);
            }
        }
    }
    attn_set_num_threads(nt0);
    CHECK(memcmp(dx[0], dx[1], sizeof(float) * n) == 0, "dx depends on the thread count");
    free(gr); free(x); free(y); free(g); free(dx[0]); free(dx[1]);
    attn_mha_free(m);
}

int main(void) {
    test_threads();
    test_fd_self();
    test_cases();
    test_accumulate();
    return test_summary("test_mha_grad");
}
