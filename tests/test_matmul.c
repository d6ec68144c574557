/* SPDX-License-Identifier: MIT */
/* test_matmul.c — attn_matmul / attn_matmul_backward (public building block).
 *   - C = A·B and A·Bᵀ against a float64 reference, for shapes from empty to
 *     ones the GEMM splits over threads (both split directions), with padded
 *     leading dimensions: the padding of inputs holds NaN (must not be read),
 *     the padding of outputs a sentinel (must not be written). Bound per
 *     element: 2·K·2^-24·Σ_k |a_ik||b_kj| (the fp32 dot-product error bound).
 *   - dA, dB against float64 references (same bound with the summed length)
 *     and against central finite differences in double of the scalar loss
 *     L = Σ G ∘ (A·op(B)) at sampled entries.
 *   - bit-identical results for 1 and 2 threads;
 *   - every invalid argument refused with its name in the message and the
 *     outputs untouched. */
#include "testutil.h"

#include <attn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SENT 12345.0f

typedef struct mtx { float *p; int64_t rows, cols, ld; } mtx;

static mtx mk(tu_rng *r, int64_t rows, int64_t cols, int64_t pad, int output) {
    mtx m = {NULL, rows, cols, (cols > 0 ? cols : 1) + pad};
    size_t n = (size_t)(rows > 0 ? rows : 1) * (size_t)m.ld;
    m.p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) m.p[i] = output ? SENT : NAN;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) m.p[i * m.ld + j] = output ? SENT : (float)tu_normal(r);
    return m;
}
static double at(const mtx *m, int64_t i, int64_t j) { return m->p[i * m->ld + j]; }

/* op(B)[k][j] */
static double opb(const mtx *B, int trans_b, int64_t k, int64_t j) { return trans_b ? at(B, j, k) : at(B, k, j); }

static int padding_intact(const mtx *m) {
    for (int64_t i = 0; i < m->rows; i++)
        for (int64_t j = m->cols; j < m->ld; j++)
            if (m->p[i * m->ld + j] != SENT) return 0;
    return 1;
}

/* max over entries of |got - ref| / bound, bound = 2 n u sum|terms| (+ tiny) */
typedef struct acc { double worst; } acc;
static void acc_add(acc *a, double got, double ref, double abssum, int64_t n) {
    double bound = 2.0 * (double)(n > 0 ? n : 1) * 0x1p-24 * abssum + 1e-37;
    double r = fabs(got - ref) / bound;
    if (!(r <= a->worst)) a->worst = isnan(r) ? INFINITY : r;
}

static void test_case(tu_rng *r, int64_t M, int64_t N, int64_t K, int trans_b, int64_t pad) {
    mtx A = mk(r, M, K, pad, 0), B = trans_b ? mk(r, N, K, pad, 0) : mk(r, K, N, pad, 0);
    mtx G = mk(r, M, N, pad, 0), C = mk(r, M, N, pad, 1), dA = mk(r, M, K, pad, 1);
    mtx dB = trans_b ? mk(r, N, K, pad, 1) : mk(r, K, N, pad, 1);
    char what[96];
    snprintf(what, sizeof what, "M %lld N %lld K %lld trans_b %d pad %lld", (long long)M, (long long)N, (long long)K,
             trans_b, (long long)pad);
    attn_status s = attn_matmul(M, N, K, A.p, A.ld, B.p, B.ld, trans_b, C.p, C.ld);
    CHECK(s == ATTN_OK, "%s: matmul: %s", what, attn_last_error());
    s = attn_matmul_backward(M, N, K, A.p, A.ld, B.p, B.ld, trans_b, G.p, G.ld, dA.p, dA.ld, dB.p, dB.ld);
    CHECK(s == ATTN_OK, "%s: backward: %s", what, attn_last_error());

    acc ec = {0}, ea = {0}, eb = {0};
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double ref = 0, abs = 0;
            for (int64_t k = 0; k < K; k++) {
                double t = at(&A, i, k) * opb(&B, trans_b, k, j);
                ref += t; abs += fabs(t);
            }
            acc_add(&ec, at(&C, i, j), ref, abs, K);
        }
    for (int64_t i = 0; i < M; i++) /* dA[i][k] = sum_j G[i][j] op(B)[k][j] */
        for (int64_t k = 0; k < K; k++) {
            double ref = 0, abs = 0;
            for (int64_t j = 0; j < N; j++) {
                double t = at(&G, i, j) * opb(&B, trans_b, k, j);
                ref += t; abs += fabs(t);
            }
            acc_add(&ea, at(&dA, i, k), ref, abs, N);
        }
    for (int64_t k = 0; k < K; k++) /* d op(B)[k][j] = sum_i A[i][k] G[i][j] */
        for (int64_t j = 0; j < N; j++) {
            double ref = 0, abs = 0;
            for (int64_t i = 0; i < M; i++) {
                double t = at(&A, i, k) * at(&G, i, j);
                ref += t; abs += fabs(t);
            }
            acc_add(&eb, trans_b ? at(&dB, j, k) : at(&dB, k, j), ref, abs, M);
        }
    CHECK(ec.worst <= 1.0 && ea.worst <= 1.0 && eb.worst <= 1.0, "%s: error / bound C %.3g dA %.3g dB %.3g", what,
          ec.worst, ea.worst, eb.worst);
    CHECK(padding_intact(&C) && padding_intact(&dA) && padding_intact(&dB), "%s: output padding written", what);
    free(A.p); free(B.p); free(G.p); free(C.p); free(dA.p); free(dB.p);
}

/* L(A, B) = sum_ij G_ij (A op(B))_ij in double; central differences against the library's gradients */
static double loss(const double *A, const double *B, const double *G, int64_t M, int64_t N, int64_t K, int tb) {
    double L = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double c = 0;
            for (int64_t k = 0; k < K; k++) c += A[i * K + k] * (tb ? B[j * K + k] : B[k * N + j]);
            L += G[i * N + j] * c;
        }
    return L;
}

static void test_fd(tu_rng *r, int trans_b) {
    enum { M = 7, N = 5, K = 6 };
    float A[M * K], B[N * K], G[M * N], dA[M * K], dB[N * K];
    double Ad[M * K], Bd[N * K], Gd[M * N];
    tu_fill(r, A, M * K, 1.0f); tu_fill(r, B, N * K, 1.0f); tu_fill(r, G, M * N, 1.0f);
    for (int i = 0; i < M * K; i++) Ad[i] = A[i];
    for (int i = 0; i < N * K; i++) Bd[i] = B[i];
    for (int i = 0; i < M * N; i++) Gd[i] = G[i];
    const int64_t ldb = trans_b ? K : N;
    CHECK(attn_matmul_backward(M, N, K, A, K, B, ldb, trans_b, G, N, dA, K, dB, ldb) == ATTN_OK, "%s",
          attn_last_error());
    const double h = 1e-3;
    double worst = 0;
    for (int t = 0; t < 2; t++) {
        double *X = t ? Bd : Ad;
        const float *g = t ? dB : dA;
        for (int e = 0; e < (t ? N * K : M * K); e++) {
            double x0 = X[e];
            X[e] = x0 + h; double lp = loss(Ad, Bd, Gd, M, N, K, trans_b);
            X[e] = x0 - h; double lm = loss(Ad, Bd, Gd, M, N, K, trans_b);
            X[e] = x0;
            double fd = (lp - lm) / (2 * h), err = fabs(fd - g[e]) / (1e-5 + fabs(fd));
            if (err > worst) worst = err;
        }
    }
    CHECK(worst < 1e-5, "finite differences trans_b %d: worst relative error %.3g", trans_b, worst);
}

static void test_threads(tu_rng *r) {
    static const int64_t shapes[][3] = {{1600, 64, 48}, {40, 1700, 64}, {3000, 200, 8}};
    for (int si = 0; si < 3; si++)
        for (int tb = 0; tb < 2; tb++) {
            const int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            mtx A = mk(r, M, K, 0, 0), B = tb ? mk(r, N, K, 0, 0) : mk(r, K, N, 0, 0), G = mk(r, M, N, 0, 0);
            float *out[2][3];
            for (int t = 0; t < 2; t++) {
                attn_set_num_threads(t + 1);
                out[t][0] = malloc((size_t)(M * N) * 4); out[t][1] = malloc((size_t)(M * K) * 4);
                out[t][2] = malloc((size_t)(N * K) * 4);
                CHECK(attn_matmul(M, N, K, A.p, A.ld, B.p, B.ld, tb, out[t][0], N) == ATTN_OK, "%s", attn_last_error());
                CHECK(attn_matmul_backward(M, N, K, A.p, A.ld, B.p, B.ld, tb, G.p, G.ld, out[t][1], K, out[t][2],
                                           tb ? K : N) == ATTN_OK, "%s", attn_last_error());
            }
            CHECK(memcmp(out[0][0], out[1][0], (size_t)(M * N) * 4) == 0 &&
                      memcmp(out[0][1], out[1][1], (size_t)(M * K) * 4) == 0 &&
                      memcmp(out[0][2], out[1][2], (size_t)(N * K) * 4) == 0,
                  "M %lld N %lld K %lld trans_b %d: 1 and 2 threads differ", (long long)M, (long long)N, (long long)K, tb);
            for (int t = 0; t < 2; t++) for (int k = 0; k < 3; k++) free(out[t][k]);
            free(A.p); free(B.p); free(G.p);
        }
    attn_set_num_threads(0);
}

static void test_errors(void) {
    float a[64], b[64], c[64], d[64];
    for (int i = 0; i < 64; i++) { a[i] = b[i] = 1.0f; c[i] = d[i] = SENT; }
    CHECK_FAILS(attn_matmul(-1, 4, 4, a, 4, b, 4, 0, c, 4), ATTN_ERR_SHAPE, "M = -1");
    CHECK_FAILS(attn_matmul(4, 4, (int64_t)1 << 31, a, 4, b, 4, 0, c, 4), ATTN_ERR_SHAPE, "K = 2147483648");
    CHECK_FAILS(attn_matmul(4, 4, 4, a, 4, b, 4, 2, c, 4), ATTN_ERR_OPTION, "trans_b = 2");
    CHECK_FAILS(attn_matmul(4, 4, 4, a, 3, b, 4, 0, c, 4), ATTN_ERR_STRIDE, "ldA = 3");
    CHECK_FAILS(attn_matmul(4, 4, 4, a, 4, b, 4, 0, c, 2), ATTN_ERR_STRIDE, "ldC = 2");
    CHECK_FAILS(attn_matmul(4, 4, 4, NULL, 4, b, 4, 0, c, 4), ATTN_ERR_NULL, "A is NULL");
    CHECK_FAILS(attn_matmul(4, 4, 4, a, 4, b, 4, 0, NULL, 4), ATTN_ERR_NULL, "C is NULL");
    CHECK_FAILS(attn_matmul(4, 4, 4, a, 4, b, 4, 0, a + 8, 4), ATTN_ERR_ALIAS, "C overlaps input A");
    CHECK_FAILS(attn_matmul_backward(4, 4, 4, a, 4, b, 4, 0, d, 4, c, 4, c + 12, 4), ATTN_ERR_ALIAS,
        "dB overlaps output dA");
    CHECK_FAILS(attn_matmul_backward(4, 4, 4, a, 4, NULL, 4, 0, d, 4, c, 4, NULL, 4), ATTN_ERR_NULL, "B is NULL");
    CHECK_FAILS(attn_matmul_backward(4, 4, 4, a, 4, b, 4, 1, NULL, 4, c, 4, NULL, 4), ATTN_ERR_NULL, "dC is NULL");
    int untouched = 1;
    for (int i = 0; i < 64; i++) untouched &= c[i] == SENT;
    CHECK(untouched, "an output was written by a refused call");
    /* not needed operands may be NULL; empty shapes are fine */
    CHECK(attn_matmul_backward(4, 4, 4, NULL, 4, b, 4, 0, d, 4, c, 4, NULL, 4) == ATTN_OK, "%s", attn_last_error());
    CHECK(attn_matmul(0, 0, 0, NULL, 1, NULL, 1, 0, NULL, 1) == ATTN_OK, "%s", attn_last_error());
    /* interleaved but disjoint columns of one buffer are not an overlap: C = left half, A = right half */
    float buf[8 * 8];
    for (int i = 0; i < 64; i++) buf[i] = 0.5f;
    CHECK(attn_matmul(8, 4, 4, buf + 4, 8, b, 4, 0, buf, 8) == ATTN_OK, "interleaved halves: %s", attn_last_error());
}

int main(void) {
    tu_rng r = {20261202};
    static const int64_t dims[] = {0, 1, 3, 17, 64};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 5; k++)
                for (int tb = 0; tb < 2; tb++) test_case(&r, dims[i], dims[j], dims[k], tb, (i + j + k) % 2 ? 3 : 0);
    test_case(&r, 1600, 64, 48, 0, 5);  /* split over rows */
    test_case(&r, 40, 1700, 64, 1, 2);  /* split over columns */
    test_case(&r, 300, 257, 129, 1, 0);
    test_fd(&r, 0);
    test_fd(&r, 1);
    test_threads(&r);
    test_errors();
    return test_summary("test_matmul");
}
