/* SPDX-License-Identifier: MIT */
/* test_lora.c — LoRA adapters on the layer.
 *   - attach: A ~ U(-1/sqrt(in), 1/sqrt(in)) seeded and reproducible, B = 0,
 *     base parameters frozen, trainable counts, argument errors;
 *   - B = 0: the output equals the base layer's exactly;
 *   - B != 0: the output matches the float64 reference with the adapter;
 *   - merge: forward equals the unmerged forward (1e-5 relative); unmerge
 *     restores the weights (1e-6 relative); merged training gives the same
 *     adapter gradients and dx;
 *   - training: only adapter gradients accumulate. */
#include "attn.h"
#include "mha_ref.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double rel(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - (double)b[i]));
        mb = fmax(mb, fabs((double)b[i]));
        if (a[i] != a[i]) return INFINITY;
    }
    return md / fmax(mb, 1e-12);
}

static attn_mha *make(int bias) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = 32; c.num_heads = 4; c.num_kv_heads = 2; c.head_dim = 12; /* qd = 48 != E */
    c.causal = 1; c.rope = ATTN_ROPE_NEOX; c.qk_norm = 1;
    c.bias_q = c.bias_k = c.bias_v = c.bias_o = bias;
    attn_mha *m = NULL;
    CHECK(attn_mha_create(&m, &c) == ATTN_OK, "create: %s", attn_last_error());
    return m;
}

static void forward(attn_mha *m, const float *x, int64_t B, int64_t S, float *y) {
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;
    attn_status s = attn_mha_forward(m, &in, y);
    CHECK(s == ATTN_OK, "forward: %s", attn_last_error());
}

static void test_attach(void) {
    attn_mha *m = make(1), *m2 = make(1);
    if (!m || !m2) return;
    const int64_t base = attn_mha_num_trainable(m);
    CHECK(base == 48 * 32 + 48 + 2 * (24 * 32 + 24) + 32 * 48 + 32 + 2 * 12, "base trainable %lld", (long long)base);
    CHECK(attn_mha_lora_attach(m, 0, 4, 8, 1) == ATTN_ERR_OPTION, "which 0");
    CHECK(attn_mha_lora_attach(m, 16, 4, 8, 1) == ATTN_ERR_OPTION, "which 16");
    CHECK(attn_mha_lora_attach(m, 1, 0, 8, 1) == ATTN_ERR_OPTION && strstr(attn_last_error(), "rank"), "rank 0");
    CHECK(attn_mha_lora_attach(m, 1, 4, NAN, 1) == ATTN_ERR_OPTION && strstr(attn_last_error(), "alpha"), "alpha nan");
    CHECK(attn_mha_lora_merge(m) == ATTN_ERR_STATE, "merge without adapters");
    CHECK(attn_mha_num_params(m) == 10, "params before attach");
    const int which = ATTN_PROJ_Q | ATTN_PROJ_V | ATTN_PROJ_O;
    CHECK(attn_mha_lora_attach(m, which, 4, 8, 77) == ATTN_OK, "attach: %s", attn_last_error());
    CHECK(attn_mha_lora_attach(m2, which, 4, 8, 77) == ATTN_OK, "attach 2");
    CHECK(attn_mha_lora_attach(m, ATTN_PROJ_K, 4, 8, 77) == ATTN_ERR_STATE, "attach twice");
    CHECK(attn_mha_num_params(m) == 16, "params after attach: %lld", (long long)attn_mha_num_params(m));
    /* q: A (4, 32), B (48, 4); v: A (4, 32), B (24, 4); o: A (4, 48), B (32, 4) */
    const int64_t expect = 4 * 32 + 48 * 4 + 4 * 32 + 24 * 4 + 4 * 48 + 32 * 4;
    CHECK(attn_mha_num_trainable(m) == expect, "lora trainable %lld, expected %lld", (long long)attn_mha_num_trainable(m),
          (long long)expect);
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p, p2;
        attn_mha_param(m, i, &p);
        attn_mha_param(m2, i, &p2);
        const int is_lora = strstr(p.name, "lora_") != NULL;
        CHECK(p.trainable == is_lora, "%s trainable = %d", p.name, p.trainable);
        if (strstr(p.name, "lora_A")) {
            double bound = 1.0 / sqrt((double)p.shape[1]), mx = 0;
            for (int64_t j = 0; j < p.numel; j++) mx = fmax(mx, fabs(p.data[j]));
            CHECK(mx <= bound && mx > 0.5 * bound, "%s: max |A| %g, bound %g", p.name, mx, bound);
            CHECK(memcmp(p.data, p2.data, sizeof(float) * (size_t)p.numel) == 0, "%s: seeded init differs", p.name);
        }
        if (strstr(p.name, "lora_B"))
            for (int64_t j = 0; j < p.numel; j++) CHECK(p.data[j] == 0.0f, "%s not zero", p.name);
    }
    attn_param pa;
    CHECK(attn_mha_find_param(m, "o_proj.lora_A.weight", &pa) == ATTN_OK && pa.shape[0] == 4 && pa.shape[1] == 48, "o lora_A shape");
    CHECK(attn_mha_find_param(m, "k_proj.lora_A.weight", &pa) == ATTN_ERR_NOT_FOUND, "no k adapter");
    attn_mha_free(m);
    attn_mha_free(m2);
}

static void test_outputs(void) {
    attn_mha *m = make(1), *base = make(1);
    if (!m || !base) return;
    tu_rng r = {55};
    mha_randomize_params(m, &r, 0.3, 1.0);
    /* base copy with the same weights */
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p, q;
        attn_mha_param(m, i, &p);
        attn_mha_param(base, i, &q);
        memcpy(q.data, p.data, sizeof(float) * (size_t)p.numel);
    }
    const int64_t B = 2, S = 9, E = 32, n = B * S * E;
    float *x = malloc(sizeof(float) * n), *y0 = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n),
          *y2 = malloc(sizeof(float) * n), *y3 = malloc(sizeof(float) * n);
    tu_fill(&r, x, n, 1);
    forward(base, x, B, S, y0);
    CHECK(attn_mha_lora_attach(m, 15, 3, 6, 5) == ATTN_OK, "attach");
    forward(m, x, B, S, y1);
    int same = 1;
    for (int64_t i = 0; i < n; i++) same &= y0[i] == y1[i];
    CHECK(same, "B = 0: output differs from the base layer");

    /* B != 0: vs the float64 reference */
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        if (strstr(p.name, "lora_B"))
            for (int64_t j = 0; j < p.numel; j++) p.data[j] = (float)(0.5 * tu_normal(&r));
    }
    forward(m, x, B, S, y1);
    {
        mha_ref_params p;
        mha_ref_params_from_layer(m, &p);
        p.lscale = 6.0 / 3.0;
        mha_ref_input ri;
        memset(&ri, 0, sizeof ri);
        double *xd = malloc(sizeof(double) * n), *yd = malloc(sizeof(double) * n);
        for (int64_t i = 0; i < n; i++) xd[i] = x[i];
        ri.B = B; ri.Sq = S; ri.x = xd;
        CHECK(mha_ref_forward(attn_mha_get_config(m), &p, &ri, yd) == 0, "ref");
        double e = mha_rel_err(y1, yd, n, 1e-3);
        CHECK(e < 2e-5, "lora forward vs reference %.3g", e);
        CHECK(rel(y1, y0, n) > 1e-2, "adapters had no effect");
        free(xd); free(yd);
        mha_ref_params_free(&p);
    }

    /* merge / unmerge */
    int64_t np = attn_mha_num_params(m);
    float **w0 = calloc((size_t)np, sizeof(float *));
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        w0[i] = malloc(sizeof(float) * (size_t)p.numel);
        memcpy(w0[i], p.data, sizeof(float) * (size_t)p.numel);
    }
    CHECK(attn_mha_lora_unmerge(m) == ATTN_ERR_STATE, "unmerge when not merged");
    CHECK(attn_mha_lora_merge(m) == ATTN_OK, "merge");
    CHECK(attn_mha_lora_merge(m) == ATTN_ERR_STATE, "merge twice");
    forward(m, x, B, S, y2);
    double e = rel(y2, y1, n);
    CHECK(e <= 1e-5, "merged forward vs unmerged: %.3g", e);
    attn_param wq;
    attn_mha_find_param(m, "q_proj.weight", &wq);
    CHECK(rel(wq.data, w0[0], wq.numel) > 1e-3, "merge did not change q_proj.weight");

    /* merged training: same adapter gradients and dx as unmerged */
    float *g = malloc(sizeof(float) * n), *dx1 = malloc(sizeof(float) * n), *dx2 = malloc(sizeof(float) * n);
    tu_fill(&r, g, n, 1);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;
    attn_mha_set_training(m, 1);
    attn_mha_zero_grad(m);
    CHECK(attn_mha_forward(m, &in, y3) == ATTN_OK, "merged training forward");
    CHECK(attn_mha_backward(m, g, dx2, NULL, NULL) == ATTN_OK, "merged backward: %s", attn_last_error());
    float **gm = calloc((size_t)np, sizeof(float *));
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        gm[i] = malloc(sizeof(float) * (size_t)p.numel);
        memcpy(gm[i], p.grad, sizeof(float) * (size_t)p.numel);
    }
    CHECK(attn_mha_lora_unmerge(m) == ATTN_OK, "unmerge");
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        double er = rel(p.data, w0[i], p.numel);
        CHECK(er <= 1e-6, "%s restored within %.3g", p.name, er);
    }
    attn_mha_zero_grad(m);
    CHECK(attn_mha_forward(m, &in, y3) == ATTN_OK, "training forward");
    CHECK(attn_mha_backward(m, g, dx1, NULL, NULL) == ATTN_OK, "backward");
    CHECK(rel(dx2, dx1, n) <= 1e-5, "merged dx differs: %.3g", rel(dx2, dx1, n));
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        double nz = 0;
        for (int64_t j = 0; j < p.numel; j++) nz = fmax(nz, fabs(p.grad[j]));
        if (p.trainable) {
            CHECK(nz > 0, "%s: no gradient", p.name);
            CHECK(rel(gm[i], p.grad, p.numel) <= 1e-5, "%s: merged gradient differs %.3g", p.name, rel(gm[i], p.grad, p.numel));
        } else {
            CHECK(nz == 0, "%s: frozen parameter has a gradient (max %g)", p.name, nz);
        }
        free(gm[i]);
        free(w0[i]);
    }
    free(gm); free(w0);
    free(x); free(y0); free(y1); free(y2); free(y3); free(g); free(dx1); free(dx2);
    attn_mha_free(m);
    attn_mha_free(base);
}

/* an optimiser step over all parameters changes only the adapters */
static void test_optim_frozen(void) {
    attn_mha *m = make(0);
    if (!m) return;
    attn_mha_init_weights(m, ATTN_INIT_NORMAL, 3);
    attn_mha_lora_attach(m, ATTN_PROJ_Q | ATTN_PROJ_K, 2, 2, 1);
    tu_rng r = {9};
    const int64_t n = 1 * 5 * 32;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    tu_fill(&r, x, n, 1);
    attn_mha_set_training(m, 1);
    forward(m, x, 1, 5, y);
    attn_mha_backward(m, y, NULL, NULL, NULL);
    int64_t np = attn_mha_num_params(m);
    attn_param *ps = malloc(sizeof(attn_param) * (size_t)np);
    float **before = malloc(sizeof(float *) * (size_t)np);
    for (int64_t i = 0; i < np; i++) {
        attn_mha_param(m, i, &ps[i]);
        before[i] = malloc(sizeof(float) * (size_t)ps[i].numel);
        memcpy(before[i], ps[i].data, sizeof(float) * (size_t)ps[i].numel);
    }
    attn_optim *o = NULL;
    CHECK(attn_optim_create_adamw(&o, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f) == ATTN_OK, "adamw");
    CHECK(attn_optim_step(o, ps, np) == ATTN_OK, "step: %s", attn_last_error());
    for (int64_t i = 0; i < np; i++) {
        int changed = memcmp(before[i], ps[i].data, sizeof(float) * (size_t)ps[i].numel) != 0;
        CHECK(changed == ps[i].trainable, "%s: changed %d, trainable %d", ps[i].name, changed, ps[i].trainable);
        free(before[i]);
    }
    attn_optim_free(o);
    free(before); free(ps); free(x); free(y);
    attn_mha_free(m);
}

int main(void) {
    test_attach();
    test_outputs();
    test_optim_frozen();
    return test_summary("test_lora");
}
