/* SPDX-License-Identifier: MIT */
/* test_mpi_mha.c — the attn_mha layer with the sequence sharded over the
 * ring (attn_mpi_mha_forward / _backward, attn_mpi_grad_allreduce) vs the
 * single-process layer over the whole sequence (run by tests/mpi/run.sh
 * under mpirun -np 1..4).
 *
 * Every rank builds the same layer (same seed) and the same global input
 * x (B, S, E), dy, takes its rows (contiguous or zigzag), runs the training
 * forward and backward over the ring and sums the parameter gradients over
 * the ranks. Rank 0 gathers y and dx and checks, against the single-process
 * layer (attn_mha_forward / _backward on the whole sequence, RoPE positions
 * pos_offset + i):
 *   y:  max|ring - ref64| <= 2 max|single - ref64| + 1e-6 max|ref64|
 *       (ref64: the float64 reference layer mha_ref, pos_offset + i)
 *   dx and every parameter gradient: max|ring - single| <= 1e-5 max|single|
 *       (fp32: the ring sums the same terms in another order; the backward's
 *       blocks use bwd_fast, the layer's default mode does not)
 * Also: a second run gives the same bits on every rank (determinism); the
 * eval-mode forward and one with the global positions given explicitly give
 * the same y bits; the gradients are the same bits on every rank after the
 * allreduce. Bad input: a key_padding_mask on one rank, a NULL y on one
 * rank, a wrong struct_size on one rank, a zigzag shard of odd length, different parameter lists in the
 * allreduce: every rank returns an error and y stays untouched; a valid call
 * works afterwards.
 * Layers: causal + RoPE + qk-norm + biases + GQA; two-sided window +
 * softcap + LoRA (q, v) + partial RoPE. */
#include "attn_mpi.h"
#include "mha_ref.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int N, rank_;
enum { B = 2, S = 48, E = 32 };
#define POS0 7
#define LORA_RANK 2
#define LORA_ALPHA 4.0

static int64_t global_row(int layout, int rr, int64_t Sl, int64_t l) {
    if (layout == ATTN_MPI_CONTIGUOUS) return rr * Sl + l;
    const int64_t c = Sl / 2, chunk = l < c ? rr : 2 * (int64_t)N - 1 - rr;
    return chunk * c + l % c;
}
static void take_rows(const float *g, int layout, float *loc) {
    const int64_t Sl = S / N;
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < Sl; l++)
            memcpy(loc + (b * Sl + l) * E, g + (b * S + global_row(layout, rank_, Sl, l)) * E, E * sizeof(float));
}
static void gather_rows(const float *loc, int layout, float *g) {
    const int64_t Sl = S / N, n = B * Sl * E;
    float *all = malloc((size_t)(n * N) * sizeof(float));
    MPI_Allgather(loc, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    for (int rr = 0; rr < N; rr++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t l = 0; l < Sl; l++)
                memcpy(g + (b * S + global_row(layout, rr, Sl, l)) * E, all + rr * n + (b * Sl + l) * E,
                       E * sizeof(float));
    free(all);
}

static attn_mha *make_layer(int kind) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = E;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.rope = ATTN_ROPE_NEOX;
    if (kind == 0) {
        c.causal = 1;
        c.qk_norm = 1;
        c.bias_q = c.bias_k = c.bias_o = 1;
    } else {
        c.window_left = 9;
        c.window_right = 4;
        c.softcap = 15.0f;
        c.rope_dim = 4;
        c.bias_v = 1;
    }
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &c) != ATTN_OK) return NULL;
    attn_mha_init_weights(m, ATTN_INIT_NORMAL, 42 + (uint64_t)kind);
    tu_rng r = {77};
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) { /* nonzero biases and norm weights too */
        attn_param p;
        attn_mha_param(m, i, &p);
        if (p.ndim == 1) tu_fill(&r, p.data, p.numel, 0.3f);
    }
    if (kind == 1) {
        attn_mha_lora_attach(m, ATTN_PROJ_Q | ATTN_PROJ_V, LORA_RANK, (float)LORA_ALPHA, 5);
        attn_param p;
        if (attn_mha_find_param(m, "q_proj.lora_B.weight", &p) == ATTN_OK) tu_fill(&r, p.data, p.numel, 0.2f);
        if (attn_mha_find_param(m, "v_proj.lora_B.weight", &p) == ATTN_OK) tu_fill(&r, p.data, p.numel, 0.2f);
    }
    return m;
}

static int64_t grad_floats(attn_mha *m) {
    int64_t n = 0;
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        n += p.numel;
    }
    return n;
}
static void copy_grads(attn_mha *m, float *dst) {
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        memcpy(dst, p.grad, (size_t)p.numel * sizeof(float));
        dst += p.numel;
    }
}

static int all_ok(int ok) {
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

/* One sharded training step: y, dx (local rows), gradients (summed over ranks). */
static int ring_step(attn_mpi_ring *ring, attn_mha *m, const float *x, const float *dy, const int32_t *pos, float *y,
                     float *dx, float *grads) {
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B;
    in.seq_q = S / N;
    in.x = x;
    in.pos_offset = POS0;
    in.positions = pos;
    attn_mha_set_training(m, 1);
    attn_mha_zero_grad(m);
    attn_status st = attn_mpi_mha_forward(ring, m, &in, y);
    CHECK(st == ATTN_OK, "rank %d mpi forward: %s", rank_, attn_mpi_last_error());
    if (st == ATTN_OK) {
        st = attn_mpi_mha_backward(ring, m, dy, dx);
        CHECK(st == ATTN_OK, "rank %d mpi backward: %s", rank_, attn_mpi_last_error());
    }
    if (st == ATTN_OK) {
        attn_param ps[32];
        int64_t np = attn_mha_num_params(m);
        for (int64_t i = 0; i < np; i++) attn_mha_param(m, i, &ps[i]);
        st = attn_mpi_grad_allreduce(ring, ps, np, 1.0f);
        CHECK(st == ATTN_OK, "rank %d grad allreduce: %s", rank_, attn_mpi_last_error());
    }
    copy_grads(m, grads);
    return all_ok(st == ATTN_OK);
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *scale) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= e)) e = d; /* NaN propagates */
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    *scale = s;
    return e;
}

static double worst_ratio = 0.0;

static void check_layer(int kind, int layout) {
    const char *lay = layout == ATTN_MPI_ZIGZAG ? "zigzag" : "contiguous";
    attn_mpi_ring *ring = NULL;
    CHECK(attn_mpi_ring_create(&ring, MPI_COMM_WORLD, layout) == ATTN_OK, "create: %s", attn_mpi_last_error());
    attn_mha *m = make_layer(kind);
    CHECK(m != NULL, "layer");
    if (!m || !ring) return;
    const int64_t ng = grad_floats(m), Sl = S / N, nl = B * Sl * E, n = B * S * E;
    float *gx = malloc(n * sizeof(float)), *gdy = malloc(n * sizeof(float));
    tu_rng r = {900 + (uint64_t)kind};
    tu_fill(&r, gx, n, 1.0f);
    tu_fill(&r, gdy, n, 1.0f);
    float *x = malloc(nl * sizeof(float)), *dy = malloc(nl * sizeof(float));
    float *y = malloc(nl * sizeof(float)), *dx = malloc(nl * sizeof(float)), *y2 = malloc(nl * sizeof(float));
    float *dx2 = malloc(nl * sizeof(float)), *g = malloc(ng * sizeof(float)), *g2 = malloc(ng * sizeof(float));
    take_rows(gx, layout, x);
    take_rows(gdy, layout, dy);
    int ok = ring_step(ring, m, x, dy, NULL, y, dx, g);
    /* again, with the global positions given explicitly: the same bits (determinism + positions) */
    int32_t *pos = malloc((size_t)(B * Sl) * sizeof(int32_t));
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < Sl; l++) pos[b * Sl + l] = (int32_t)(POS0 + global_row(layout, rank_, Sl, l));
    ok &= ring_step(ring, m, x, dy, pos, y2, dx2, g2);
    CHECK(!memcmp(y, y2, nl * 4) && !memcmp(dx, dx2, nl * 4) && !memcmp(g, g2, ng * 4),
          "layer %d %s N=%d rank %d: second run (explicit positions) differs", kind, lay, N, rank_);
    { /* eval mode: the same y */
        attn_mha_input in;
        attn_mha_input_init(&in);
        in.batch = B; in.seq_q = Sl; in.x = x; in.pos_offset = POS0;
        attn_mha_set_training(m, 0);
        attn_status st = attn_mpi_mha_forward(ring, m, &in, y2);
        CHECK(st == ATTN_OK && !memcmp(y, y2, nl * 4), "layer %d %s N=%d: eval forward differs: %s", kind, lay, N,
              attn_mpi_last_error());
    }
    /* gradients: the same bits on every rank */
    float *g0 = malloc(ng * sizeof(float));
    memcpy(g0, g, ng * 4);
    MPI_Bcast(g0, (int)ng, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(all_ok(!memcmp(g0, g, ng * 4)), "layer %d %s N=%d: gradients differ across ranks", kind, lay, N);
    free(g0);
    float *ry = malloc(n * sizeof(float)), *rdx = malloc(n * sizeof(float));
    gather_rows(y, layout, ry);
    gather_rows(dx, layout, rdx);
    if (ok && rank_ == 0) {
        /* the single-process layer over the whole sequence (a fresh copy of the same weights) */
        attn_mha *s1 = make_layer(kind);
        float *sy = malloc(n * sizeof(float)), *sdx = malloc(n * sizeof(float)), *sg = malloc(ng * sizeof(float));
        attn_mha_input in;
        attn_mha_input_init(&in);
        in.batch = B; in.seq_q = S; in.x = gx; in.pos_offset = POS0;
        attn_mha_set_training(s1, 1);
        attn_mha_zero_grad(s1);
        CHECK(attn_mha_forward(s1, &in, sy) == ATTN_OK && attn_mha_backward(s1, gdy, sdx, NULL, NULL) == ATTN_OK,
              "single-process layer: %s", attn_last_error());
        copy_grads(s1, sg);
        /* float64 reference of the forward */
        double *xd = malloc(n * sizeof(double)), *yr = malloc(n * sizeof(double));
        for (int64_t i = 0; i < n; i++) xd[i] = gx[i];
        mha_ref_params p;
        mha_ref_params_from_layer(s1, &p);
        p.lscale = kind == 1 ? LORA_ALPHA / LORA_RANK : 0.0; /* not a parameter of the layer */
        mha_ref_input ri;
        memset(&ri, 0, sizeof ri);
        ri.B = B; ri.Sq = S; ri.x = xd; ri.pos_offset = POS0;
        CHECK(mha_ref_forward(attn_mha_get_config(s1), &p, &ri, yr) == 0, "reference layer");
        double er = 0, es = 0, sc = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = fabs(ry[i] - yr[i]), b = fabs(sy[i] - yr[i]);
            if (!(a <= er)) er = a;
            if (b > es) es = b;
            if (fabs(yr[i]) > sc) sc = fabs(yr[i]);
        }
        const double ybound = 2.0 * es + 1e-6 * sc;
        CHECK(er <= ybound, "layer %d %s N=%d: y err %.3g > bound %.3g (single-process %.3g)", kind, lay, N, er,
              ybound, es);
        double sdx_scale, sg_scale;
        const double edx = max_abs_diff(rdx, sdx, n, &sdx_scale), eg = max_abs_diff(g, sg, ng, &sg_scale);
        CHECK(edx <= 1e-5 * sdx_scale, "layer %d %s N=%d: dx differs by %.3g (scale %.3g)", kind, lay, N, edx,
              sdx_scale);
        /* per parameter tensor, against its own scale */
        double gworst = 0;
        int64_t off = 0;
        for (int64_t i = 0; i < attn_mha_num_params(s1); i++) {
            attn_param pp;
            attn_mha_param(s1, i, &pp);
            double scl, e = max_abs_diff(g + off, sg + off, pp.numel, &scl);
            CHECK(e <= 1e-5 * scl, "layer %d %s N=%d: %s gradient differs by %.3g (scale %.3g)", kind, lay, N,
                  pp.name, e, scl);
            CHECK(!pp.trainable || scl > 0, "layer %d: %s has a zero gradient (the test would not see it)", kind,
                  pp.name);
            if (scl > 0 && e / scl > gworst) gworst = e / scl;
            off += pp.numel;
        }
        (void)eg;
        const double rr[3] = {er / ybound, edx / (1e-5 * sdx_scale), gworst / 1e-5};
        for (int i = 0; i < 3; i++)
            if (rr[i] > worst_ratio) worst_ratio = rr[i];
        printf("  layer %d %-10s N=%d: y err/bound %.2f, dx diff/tol %.2f, worst grad diff/tol %.2f\n", kind, lay, N,
               rr[0], rr[1], rr[2]);
        mha_ref_params_free(&p);
        free(xd); free(yr); free(sy); free(sdx); free(sg);
        attn_mha_free(s1);
    }
    free(ry); free(rdx); free(pos);
    free(gx); free(gdy); free(x); free(dy); free(y); free(dx); free(y2); free(dx2); free(g); free(g2);
    attn_mha_free(m);
    attn_mpi_ring_free(ring);
}

/* every rank must get an error (no hang) and y stays untouched */
static void expect_all_fail(const char *what, attn_status st, const float *y, int64_t n) {
    int failed = st != ATTN_OK, untouched = 1;
    for (int64_t i = 0; i < n; i++) untouched &= y[i] == -7.0f;
    CHECK(all_ok(failed), "%s: rank %d returned %d (every rank must fail)", what, rank_, (int)st);
    CHECK(untouched, "%s: rank %d wrote y", what, rank_);
}

static void check_bad_input(void) {
    attn_mpi_ring *ring = NULL, *zz = NULL;
    attn_mpi_ring_create(&ring, MPI_COMM_WORLD, ATTN_MPI_CONTIGUOUS);
    attn_mpi_ring_create(&zz, MPI_COMM_WORLD, ATTN_MPI_ZIGZAG);
    attn_mha *m = make_layer(0);
    const int64_t Sl = S / N, nl = B * Sl * E;
    float *x = calloc((size_t)nl, sizeof(float)), *y = malloc(nl * sizeof(float)), *dy = calloc((size_t)nl, 4);
    uint8_t kpm[B * S] = {0};
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = Sl; in.x = x;
    attn_mha_set_training(m, 1);
    const int last = N - 1;
    for (int64_t i = 0; i < nl; i++) y[i] = -7.0f;
    if (rank_ == last) in.key_padding_mask = kpm;
    attn_status st = attn_mpi_mha_forward(ring, m, &in, y);
    expect_all_fail("key_padding_mask on one rank", st, y, nl);
    CHECK(rank_ != last || (st == ATTN_ERR_UNSUPPORTED && strstr(attn_mpi_last_error(), "key_padding_mask")),
          "own message: %s", attn_mpi_last_error());
    CHECK(rank_ == last || strstr(attn_mpi_last_error(), "refused"), "others name the rank: %s",
          attn_mpi_last_error());
    in.key_padding_mask = NULL;
    st = attn_mpi_mha_forward(ring, m, &in, rank_ == 0 ? NULL : y);
    expect_all_fail("NULL y on rank 0", st, y, nl);
    CHECK(st == ATTN_ERR_NULL, "NULL y: status %d", (int)st);
    if (rank_ == 0) in.struct_size -= 8; /* a struct of another attn.h */
    st = attn_mpi_mha_forward(ring, m, &in, y);
    expect_all_fail("struct_size on rank 0", st, y, nl);
    in.struct_size = sizeof in;
    in.seq_q = Sl + 1; /* odd local length (zigzag needs two equal pieces) */
    st = attn_mpi_mha_forward(zz, m, &in, y);
    expect_all_fail("odd zigzag shard", st, y, nl);
    in.seq_q = Sl;
    in.key = x;
    st = attn_mpi_mha_forward(ring, m, &in, y);
    expect_all_fail("cross-attention", st, y, nl);
    in.key = NULL;
    { /* parameter lists that differ across ranks */
        attn_param ps[32];
        int64_t np = attn_mha_num_params(m);
        for (int64_t i = 0; i < np; i++) attn_mha_param(m, i, &ps[i]);
        st = attn_mpi_grad_allreduce(ring, ps, rank_ == last && N > 1 ? np - 1 : np, 1.0f);
        CHECK(N == 1 || all_ok(st == ATTN_ERR_SHAPE), "grad allreduce, lists differ: rank %d status %d", rank_,
              (int)st);
    }
    /* a valid step afterwards */
    st = attn_mpi_mha_forward(ring, m, &in, y);
    CHECK(st == ATTN_OK, "valid forward after the errors: %s", attn_mpi_last_error());
    st = attn_mpi_mha_backward(ring, m, dy, NULL);
    CHECK(st == ATTN_OK, "valid backward after the errors: %s", attn_mpi_last_error());
    free(x); free(y); free(dy);
    attn_mha_free(m);
    attn_mpi_ring_free(ring);
    attn_mpi_ring_free(zz);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &N);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    if (rank_ == 0) printf("test_mpi_mha: %d rank(s)\n", N);
    for (int kind = 0; kind < 2; kind++)
        for (int layout = 0; layout < 2; layout++) check_layer(kind, layout);
    check_bad_input();
    if (rank_ == 0) printf("worst ratio to the tolerance: %.3f\n", worst_ratio);
    int fails = (int)tu_fail, tot = 0;
    MPI_Allreduce(&fails, &tot, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = test_summary(rank_ == 0 ? "test_mpi_mha (rank 0)" : "test_mpi_mha (rank > 0)");
    MPI_Finalize();
    return rc != 0 || tot != 0;
}
