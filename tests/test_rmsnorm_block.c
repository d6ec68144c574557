/* SPDX-License-Identifier: MIT */
/* test_rmsnorm_block.c — attn_rmsnorm_fwd / attn_rmsnorm_bwd (public building block).
 *   - y, rstd, dx, dw against a float64 reference of the formulas in attn.h
 *     (|err| <= 1e-5 * (|ref| + max |ref| of the tensor); for dx, whose terms
 *     cancel, + the size of its terms instead of the max) for N from 0 to
 *     thousands of rows (many chunks) and D from 1 to 257, with padded row
 *     strides: input padding NaN (never read), output padding a sentinel
 *     (never written);
 *   - dx, dw against central finite differences in double of the loss
 *     L = sum G * y(x, w) computed by the float64 reference;
 *   - bit-identical results with 1 and 2 threads;
 *   - refused arguments (shape, eps, stride, NULL, aliasing) leave outputs untouched. */
#include "testutil.h"

#include <attn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SENT 777.0f

static float *buf(tu_rng *r, int64_t N, int64_t D, int64_t ld, int output) {
    size_t n = (size_t)(N > 0 ? N : 1) * (size_t)ld;
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = output ? SENT : NAN;
    for (int64_t i = 0; i < N; i++)
        for (int64_t d = 0; d < D; d++) p[i * ld + d] = output ? SENT : (float)(tu_normal(r) * 1.5 + 0.3);
    return p;
}

/* float64 reference: y, rstd and the gradients for one row */
/* dxs: the size of dx's terms, r * (|g| + |xhat| * mean |g xhat|): the scale of its fp32 rounding
 * (dx cancels to ~eps when D = 1) */
static void ref_row(const double *x, const double *w, const double *dy, int64_t D, double eps, double *y,
                    double *rstd, double *dx, double *dxs, double *dw_acc) {
    double ss = 0;
    for (int64_t d = 0; d < D; d++) ss += x[d] * x[d];
    const double r = 1.0 / sqrt(ss / (double)D + eps);
    *rstd = r;
    double dot = 0, adot = 0;
    for (int64_t d = 0; d < D; d++) {
        y[d] = x[d] * r * w[d];
        dot += dy[d] * w[d] * x[d] * r;
        adot += fabs(dy[d] * w[d] * x[d] * r);
    }
    for (int64_t d = 0; d < D; d++) {
        dx[d] = r * (dy[d] * w[d] - x[d] * r * dot / (double)D);
        dxs[d] = r * (fabs(dy[d] * w[d]) + fabs(x[d] * r) * adot / (double)D);
        dw_acc[d] += dy[d] * x[d] * r;
    }
}

typedef struct err { double worst; } err;
static void err_add(err *e, double got, double ref, double scale) {
    double v = fabs(got - ref) / (1e-5 * (fabs(ref) + scale) + 1e-30);
    if (!(v <= e->worst)) e->worst = isnan(v) ? INFINITY : v;
}
static double maxabs(const double *p, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(p[i]) > m ? fabs(p[i]) : m;
    return m;
}

static void test_case(tu_rng *r, int64_t N, int64_t D, int64_t pad) {
    const int64_t ld = D + pad;
    const float eps = 1e-5f;
    float *x = buf(r, N, D, ld, 0), *dy = buf(r, N, D, ld, 0), *y = buf(r, N, D, ld, 1), *dx = buf(r, N, D, ld, 1);
    float *w = buf(r, 1, D, D, 0), *rstd = malloc((size_t)(N + 1) * 4), *dw = malloc((size_t)D * 4);
    char what[64];
    snprintf(what, sizeof what, "N %lld D %lld pad %lld", (long long)N, (long long)D, (long long)pad);
    CHECK(attn_rmsnorm_fwd(N, D, x, ld, w, eps, y, ld, rstd) == ATTN_OK, "%s: fwd: %s", what, attn_last_error());
    CHECK(attn_rmsnorm_bwd(N, D, x, ld, w, eps, dy, ld, dx, ld, dw) == ATTN_OK, "%s: bwd: %s", what,
          attn_last_error());
    double *xd = malloc((size_t)D * 8), *wd = malloc((size_t)D * 8), *dyd = malloc((size_t)D * 8);
    double *yr = malloc((size_t)(N > 0 ? N : 1) * (size_t)D * 8), *dxr = malloc((size_t)(N > 0 ? N : 1) * (size_t)D * 8);
    double *rr = malloc((size_t)(N + 1) * 8), *dwr = calloc((size_t)D, 8);
    double *dxs = malloc((size_t)(N > 0 ? N : 1) * (size_t)D * 8);
    for (int64_t d = 0; d < D; d++) wd[d] = w[d];
    for (int64_t n = 0; n < N; n++) {
        for (int64_t d = 0; d < D; d++) { xd[d] = x[n * ld + d]; dyd[d] = dy[n * ld + d]; }
        ref_row(xd, wd, dyd, D, eps, yr + n * D, rr + n, dxr + n * D, dxs + n * D, dwr);
    }
    err ey = {0}, er = {0}, ex = {0}, ew = {0};
    const double sy = maxabs(yr, N * D), sr = maxabs(rr, N), sw = maxabs(dwr, D);
    for (int64_t n = 0; n < N; n++) {
        err_add(&er, rstd[n], rr[n], sr);
        for (int64_t d = 0; d < D; d++) {
            err_add(&ey, y[n * ld + d], yr[n * D + d], sy);
            err_add(&ex, dx[n * ld + d], dxr[n * D + d], dxs[n * D + d]);
        }
    }
    for (int64_t d = 0; d < D; d++) err_add(&ew, dw[d], dwr[d], sw);
    CHECK(ey.worst <= 1 && er.worst <= 1 && ex.worst <= 1 && ew.worst <= 1,
          "%s: error / tolerance y %.3g rstd %.3g dx %.3g dw %.3g", what, ey.worst, er.worst, ex.worst, ew.worst);
    int pad_ok = 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = D; d < ld; d++) pad_ok &= y[n * ld + d] == SENT && dx[n * ld + d] == SENT;
    CHECK(pad_ok, "%s: output padding written", what);
    free(x); free(dy); free(y); free(dx); free(w); free(rstd); free(dw);
    free(xd); free(wd); free(dyd); free(yr); free(dxr); free(rr); free(dwr); free(dxs);
}

/* L(x, w) = sum G * y in double */
static double loss(const double *x, const double *w, const double *G, int64_t N, int64_t D, double eps) {
    double L = 0;
    for (int64_t n = 0; n < N; n++) {
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += x[n * D + d] * x[n * D + d];
        double r = 1.0 / sqrt(ss / (double)D + eps);
        for (int64_t d = 0; d < D; d++) L += G[n * D + d] * x[n * D + d] * r * w[d];
    }
    return L;
}

static void test_fd(tu_rng *r) {
    enum { N = 4, D = 9 };
    const float eps = 1e-3f;
    float x[N * D], w[D], G[N * D], dx[N * D], dw[D];
    double xd[N * D], wd[D], Gd[N * D];
    tu_fill(r, x, N * D, 1.0f); tu_fill(r, w, D, 1.0f); tu_fill(r, G, N * D, 1.0f);
    for (int i = 0; i < N * D; i++) { xd[i] = x[i]; Gd[i] = G[i]; }
    for (int i = 0; i < D; i++) wd[i] = w[i];
    CHECK(attn_rmsnorm_bwd(N, D, x, D, w, eps, G, D, dx, D, dw) == ATTN_OK, "%s", attn_last_error());
    const double h = 1e-5;
    double worst = 0;
    for (int t = 0; t < 2; t++) {
        double *X = t ? wd : xd;
        const float *g = t ? dw : dx;
        for (int e = 0; e < (t ? D : N * D); e++) {
            const double x0 = X[e];
            X[e] = x0 + h; double lp = loss(xd, wd, Gd, N, D, eps);
            X[e] = x0 - h; double lm = loss(xd, wd, Gd, N, D, eps);
            X[e] = x0;
            double fd = (lp - lm) / (2 * h), v = fabs(fd - g[e]) / (1e-4 * (1.0 + fabs(fd)));
            if (v > worst) worst = v;
        }
    }
    CHECK(worst <= 1.0, "finite differences: worst error / tolerance %.3g", worst);
}

static void test_threads(tu_rng *r) {
    const int64_t N = 5000, D = 96;
    float *x = buf(r, N, D, D, 0), *dy = buf(r, N, D, D, 0), *w = buf(r, 1, D, D, 0);
    float *o[2][4];
    for (int t = 0; t < 2; t++) {
        attn_set_num_threads(t + 1);
        o[t][0] = malloc((size_t)(N * D) * 4); o[t][1] = malloc((size_t)N * 4);
        o[t][2] = malloc((size_t)(N * D) * 4); o[t][3] = malloc((size_t)D * 4);
        CHECK(attn_rmsnorm_fwd(N, D, x, D, w, 1e-6f, o[t][0], D, o[t][1]) == ATTN_OK, "%s", attn_last_error());
        CHECK(attn_rmsnorm_bwd(N, D, x, D, w, 1e-6f, dy, D, o[t][2], D, o[t][3]) == ATTN_OK, "%s", attn_last_error());
    }
    attn_set_num_threads(0);
    CHECK(memcmp(o[0][0], o[1][0], (size_t)(N * D) * 4) == 0 && memcmp(o[0][1], o[1][1], (size_t)N * 4) == 0 &&
              memcmp(o[0][2], o[1][2], (size_t)(N * D) * 4) == 0 && memcmp(o[0][3], o[1][3], (size_t)D * 4) == 0,
          "1 and 2 threads differ");
    for (int t = 0; t < 2; t++) for (int k = 0; k < 4; k++) free(o[t][k]);
    free(x); free(dy); free(w);
}

static void test_errors(void) {
    float x[32], w[8], y[32], dw[8];
    for (int i = 0; i < 32; i++) { x[i] = 1.0f; y[i] = SENT; }
    for (int i = 0; i < 8; i++) { w[i] = 1.0f; dw[i] = SENT; }
    CHECK_FAILS(attn_rmsnorm_fwd(-1, 8, x, 8, w, 1e-6f, y, 8, NULL), ATTN_ERR_SHAPE, "N = -1");
    CHECK_FAILS(attn_rmsnorm_fwd(4, 0, x, 8, w, 1e-6f, y, 8, NULL), ATTN_ERR_SHAPE, "D = 0");
    CHECK_FAILS(attn_rmsnorm_fwd(4, 8, x, 8, w, 0.0f, y, 8, NULL), ATTN_ERR_OPTION, "eps = 0");
    CHECK_FAILS(attn_rmsnorm_fwd(4, 8, x, 8, w, NAN, y, 8, NULL), ATTN_ERR_OPTION, "eps = nan");
    CHECK_FAILS(attn_rmsnorm_fwd(4, 8, x, 7, w, 1e-6f, y, 8, NULL), ATTN_ERR_STRIDE, "ldx = 7");
    CHECK_FAILS(attn_rmsnorm_fwd(4, 8, x, 8, NULL, 1e-6f, y, 8, NULL), ATTN_ERR_NULL, "w is NULL");
    CHECK_FAILS(attn_rmsnorm_fwd(4, 8, x, 8, w, 1e-6f, NULL, 8, NULL), ATTN_ERR_NULL, "y is NULL");
    CHECK_FAILS(attn_rmsnorm_fwd(4, 8, x, 8, w, 1e-6f, x + 4, 8, NULL), ATTN_ERR_ALIAS, "y overlaps input x");
    CHECK_FAILS(attn_rmsnorm_bwd(4, 8, x, 8, w, 1e-6f, NULL, 8, y, 8, dw), ATTN_ERR_NULL, "dy is NULL");
    CHECK_FAILS(attn_rmsnorm_bwd(4, 8, x, 8, w, 1e-6f, x, 8, y, 8, w), ATTN_ERR_ALIAS, "dw overlaps input w");
    CHECK_FAILS(attn_rmsnorm_bwd(4, 8, x, 8, w, 1e-6f, x, 8, y, 8, y + 8), ATTN_ERR_ALIAS, "dw overlaps output dx");
    int untouched = 1;
    for (int i = 0; i < 32; i++) untouched &= y[i] == SENT;
    for (int i = 0; i < 8; i++) untouched &= dw[i] == SENT;
    CHECK(untouched, "an output was written by a refused call");
}

int main(void) {
    tu_rng r = {424242};
    static const int64_t Ns[] = {0, 1, 3, 50, 1000, 4097};
    static const int64_t Ds[] = {1, 7, 64, 257};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++) test_case(&r, Ns[i], Ds[j], (i + j) % 2 ? 3 : 0);
    test_fd(&r);
    test_threads(&r);
    test_errors();
    return test_summary("test_rmsnorm_block");
}
