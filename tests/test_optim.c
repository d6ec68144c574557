/* SPDX-License-Identifier: MIT */
/* test_optim.c — SGD (momentum, weight decay) and AdamW against hand-written
 * float64 implementations of the torch.optim update rules, over several
 * steps with changing gradients, a frozen parameter, an lr change, and the
 * argument / consistency errors. Tolerance per element: |p - p_ref| <= 1e-6 max(|p_ref|, 1)
 * (fp32 rounding of O(1) parameters; any formula error is O(lr) >= 1e-3).
 * Global gradient-norm clipping against a float64 norm: below, at and above
 * max_norm, a frozen parameter, NaN / Inf gradients, the argument errors. */
#include "attn.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NP 3
static const int64_t NUMEL[NP] = {7, 1, 33};

typedef struct {
    attn_param p[NP];
    float *data[NP], *grad[NP];
    double *ref[NP], *s1[NP], *s2[NP];
} set;

static void set_make(set *s, tu_rng *r, int frozen_index) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < NP; i++) {
        int64_t n = NUMEL[i];
        s->data[i] = malloc(sizeof(float) * n);
        s->grad[i] = malloc(sizeof(float) * n);
        s->ref[i] = malloc(sizeof(double) * n);
        s->s1[i] = calloc((size_t)n, sizeof(double));
        s->s2[i] = calloc((size_t)n, sizeof(double));
        for (int64_t j = 0; j < n; j++) { s->data[i][j] = (float)tu_normal(r); s->ref[i][j] = s->data[i][j]; }
        attn_param *p = &s->p[i];
        p->name = i == 0 ? "a" : i == 1 ? "b" : "c";
        p->data = s->data[i]; p->grad = s->grad[i]; p->ndim = 1; p->shape[0] = n; p->numel = n;
        p->trainable = i != frozen_index;
    }
}
static void set_free(set *s) {
    for (int i = 0; i < NP; i++) { free(s->data[i]); free(s->grad[i]); free(s->ref[i]); free(s->s1[i]); free(s->s2[i]); }
}
static void new_grads(set *s, tu_rng *r) {
    for (int i = 0; i < NP; i++)
        for (int64_t j = 0; j < NUMEL[i]; j++) s->grad[i][j] = (float)tu_normal(r);
}
static double max_rel(const set *s) {
    double e = 0;
    for (int i = 0; i < NP; i++)
        for (int64_t j = 0; j < NUMEL[i]; j++)
            e = fmax(e, fabs((double)s->data[i][j] - s->ref[i][j]) / fmax(fabs(s->ref[i][j]), 1.0));
    return e;
}

static void test_sgd(double lr, double mom, double wd) {
    tu_rng r = {11};
    set s;
    set_make(&s, &r, 1);
    attn_optim *o = NULL;
    CHECK(attn_optim_create_sgd(&o, (float)lr, (float)mom, (float)wd) == ATTN_OK, "create sgd");
    for (int step = 1; step <= 6; step++) {
        if (step == 4) { lr *= 0.5; CHECK(attn_optim_set_lr(o, (float)lr) == ATTN_OK, "set_lr"); }
        new_grads(&s, &r);
        CHECK(attn_optim_step(o, s.p, NP) == ATTN_OK, "sgd step: %s", attn_last_error());
        for (int i = 0; i < NP; i++) {
            if (!s.p[i].trainable) continue;
            for (int64_t j = 0; j < NUMEL[i]; j++) {
                double g = (double)s.grad[i][j] + wd * s.ref[i][j];
                if (mom > 0) {
                    s.s1[i][j] = step == 1 ? g : mom * s.s1[i][j] + g;
                    g = s.s1[i][j];
                }
                s.ref[i][j] -= lr * g;
            }
        }
        double e = max_rel(&s);
        CHECK(e < 1e-6, "sgd lr %g mom %g wd %g step %d: err %.3g", lr, mom, wd, step, e);
    }
    for (int64_t j = 0; j < NUMEL[1]; j++) CHECK(s.data[1][j] == (float)s.ref[1][j], "frozen parameter changed");
    attn_optim_free(o);
    set_free(&s);
}

static void test_adamw(double lr, double b1, double b2, double eps, double wd) {
    tu_rng r = {12};
    set s;
    set_make(&s, &r, 0);
    attn_optim *o = NULL;
    CHECK(attn_optim_create_adamw(&o, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd) == ATTN_OK, "create adamw");
    for (int step = 1; step <= 8; step++) {
        if (step == 5) { lr *= 0.3; attn_optim_set_lr(o, (float)lr); }
        new_grads(&s, &r);
        if (step == 3) s.grad[2][0] = 0.0f; /* a zero gradient entry */
        CHECK(attn_optim_step(o, s.p, NP) == ATTN_OK, "adamw step: %s", attn_last_error());
        const double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
        for (int i = 0; i < NP; i++) {
            if (!s.p[i].trainable) continue;
            for (int64_t j = 0; j < NUMEL[i]; j++) {
                double g = s.grad[i][j];
                double w = s.ref[i][j] * (1 - lr * wd);
                s.s1[i][j] = b1 * s.s1[i][j] + (1 - b1) * g;
                s.s2[i][j] = b2 * s.s2[i][j] + (1 - b2) * g * g;
                w -= lr * (s.s1[i][j] / bc1) / (sqrt(s.s2[i][j] / bc2) + eps);
                s.ref[i][j] = w;
            }
        }
        double e = max_rel(&s);
        CHECK(e < 1e-6, "adamw lr %g b1 %g b2 %g eps %g wd %g step %d: err %.3g", lr, b1, b2, eps, wd, step, e);
    }
    attn_optim_free(o);
    set_free(&s);
}

static void test_errors(void) {
    attn_optim *o = NULL;
    CHECK(attn_optim_create_sgd(&o, -1, 0, 0) == ATTN_ERR_OPTION && !o && strstr(attn_last_error(), "lr"), "lr < 0");
    CHECK(attn_optim_create_sgd(&o, 0.1f, 1.0f, 0) == ATTN_ERR_OPTION && strstr(attn_last_error(), "momentum"), "momentum 1");
    CHECK(attn_optim_create_sgd(&o, 0.1f, 0, -1) == ATTN_ERR_OPTION && strstr(attn_last_error(), "weight_decay"), "wd < 0");
    CHECK(attn_optim_create_adamw(&o, 0.1f, 1.0f, 0.9f, 1e-8f, 0) == ATTN_ERR_OPTION && strstr(attn_last_error(), "beta1"), "beta1");
    CHECK(attn_optim_create_adamw(&o, 0.1f, 0.9f, -0.1f, 1e-8f, 0) == ATTN_ERR_OPTION && strstr(attn_last_error(), "beta2"), "beta2");
    CHECK(attn_optim_create_adamw(&o, 0.1f, 0.9f, 0.9f, 0, 0) == ATTN_ERR_OPTION && strstr(attn_last_error(), "eps"), "eps 0");
    CHECK(attn_optim_create_adamw(&o, NAN, 0.9f, 0.9f, 1e-8f, 0) == ATTN_ERR_OPTION, "lr nan");
    CHECK(attn_optim_create_sgd(NULL, 0.1f, 0, 0) == ATTN_ERR_NULL, "out NULL");
    attn_optim_free(NULL);

    tu_rng r = {1};
    set s;
    set_make(&s, &r, -1);
    new_grads(&s, &r);
    CHECK(attn_optim_create_adamw(&o, 0.1f, 0.9f, 0.99f, 1e-8f, 0) == ATTN_OK, "create");
    CHECK(attn_optim_set_lr(o, -2) == ATTN_ERR_OPTION, "set_lr < 0");
    CHECK(attn_optim_step(o, s.p, NP) == ATTN_OK, "first step");
    float keep = s.data[0][0];
    CHECK(attn_optim_step(o, s.p, NP - 1) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "first step"), "count changed: %s",
          attn_last_error());
    s.p[2].numel = 5;
    CHECK(attn_optim_step(o, s.p, NP) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "numel"), "numel changed");
    CHECK(s.data[0][0] == keep, "failed step changed a parameter");
    s.p[2].numel = NUMEL[2];
    s.p[1].grad = NULL;
    CHECK(attn_optim_step(o, s.p, NP) == ATTN_ERR_NULL, "grad NULL");
    CHECK(attn_optim_step(o, NULL, NP) == ATTN_ERR_NULL, "params NULL");
    attn_optim_free(o);
    set_free(&s);
}

/* Clipping: the norm against float64 over the trainable grads only; grads
 * scaled by max_norm / norm exactly when norm > max_norm (the frozen one
 * untouched), so the clipped norm is max_norm to fp32 rounding. */
static void test_clip(double max_norm_factor) {
    tu_rng r = {23};
    set s;
    set_make(&s, &r, 1);
    new_grads(&s, &r);
    double ref = 0.0;
    for (int i = 0; i < NP; i++)
        if (s.p[i].trainable)
            for (int64_t j = 0; j < NUMEL[i]; j++) ref += (double)s.grad[i][j] * s.grad[i][j];
    ref = sqrt(ref);
    const double max_norm = ref * max_norm_factor;
    float before[NP][64];
    for (int i = 0; i < NP; i++) memcpy(before[i], s.grad[i], sizeof(float) * (size_t)NUMEL[i]);
    double total = -1.0;
    CHECK(attn_optim_clip_grad_norm(s.p, NP, max_norm, &total) == ATTN_OK, "clip: %s", attn_last_error());
    CHECK(fabs(total - ref) <= 1e-12 * ref, "clip: norm %.17g, float64 %.17g", total, ref);
    const double c = ref > max_norm ? max_norm / ref : 1.0;
    double after = 0.0;
    for (int i = 0; i < NP; i++)
        for (int64_t j = 0; j < NUMEL[i]; j++) {
            const float want = s.p[i].trainable ? (c < 1.0 ? before[i][j] * (float)c : before[i][j]) : before[i][j];
            CHECK(s.grad[i][j] == want, "clip x%g: grad[%d][%lld] %g, expected %g", max_norm_factor, i, (long long)j,
                  (double)s.grad[i][j], (double)want);
            if (s.p[i].trainable) after += (double)s.grad[i][j] * s.grad[i][j];
        }
    CHECK(fabs(sqrt(after) - fmin(ref, max_norm)) <= 1e-6 * ref, "clip x%g: clipped norm %g, expected %g", max_norm_factor,
          sqrt(after), fmin(ref, max_norm));
    set_free(&s);
}

static void test_clip_errors(void) {
    tu_rng r = {29};
    set s;
    set_make(&s, &r, -1);
    new_grads(&s, &r);
    double total = 0;
    CHECK(attn_optim_clip_grad_norm(s.p, NP, 0.0, &total) == ATTN_ERR_OPTION && strstr(attn_last_error(), "max_norm"), "max_norm 0");
    CHECK(attn_optim_clip_grad_norm(s.p, NP, NAN, &total) == ATTN_ERR_OPTION, "max_norm NaN");
    CHECK(attn_optim_clip_grad_norm(s.p, NP, INFINITY, &total) == ATTN_ERR_OPTION, "max_norm inf");
    CHECK(attn_optim_clip_grad_norm(s.p, -1, 1.0, &total) == ATTN_ERR_SHAPE, "n < 0");
    CHECK(attn_optim_clip_grad_norm(NULL, NP, 1.0, &total) == ATTN_ERR_NULL, "params NULL");
    CHECK(attn_optim_clip_grad_norm(NULL, 0, 1.0, &total) == ATTN_OK && total == 0.0, "empty: norm 0");
    CHECK(attn_optim_clip_grad_norm(s.p, NP, 1.0, NULL) == ATTN_OK, "total_norm NULL");
    /* a non-finite gradient: reported, nothing scaled */
    s.grad[2][5] = NAN;
    const float g0 = s.grad[0][0];
    CHECK(attn_optim_clip_grad_norm(s.p, NP, 1e-3, &total) == ATTN_OK && isnan(total), "NaN grad: norm %g", total);
    CHECK(s.grad[0][0] == g0, "NaN grad: grads scaled");
    s.grad[2][5] = INFINITY;
    CHECK(attn_optim_clip_grad_norm(s.p, NP, 1e-3, &total) == ATTN_OK && isinf(total) && s.grad[0][0] == g0, "Inf grad");
    s.grad[2][5] = 0.0f;
    s.p[1].grad = NULL;
    CHECK(attn_optim_clip_grad_norm(s.p, NP, 1.0, &total) == ATTN_ERR_NULL, "grad NULL");
    CHECK(s.grad[0][0] == g0, "failed clip changed a grad");
    set_free(&s);
}

int main(void) {
    test_sgd(0.1, 0.0, 0.0);
    test_sgd(0.05, 0.9, 0.0);
    test_sgd(0.05, 0.9, 0.01);
    test_sgd(0.2, 0.0, 0.1);
    test_adamw(1e-3, 0.9, 0.999, 1e-8, 0.0);
    test_adamw(1e-2, 0.9, 0.95, 1e-6, 0.1);
    test_adamw(3e-2, 0.0, 0.5, 1e-3, 0.01);
    test_errors();
    test_clip(0.5);
    test_clip(1.0);
    test_clip(2.0);
    test_clip(1e-6);
    test_clip_errors();
    return test_summary("test_optim");
}
