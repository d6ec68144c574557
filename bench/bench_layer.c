/* SPDX-License-Identifier: MIT */
/* bench_layer.c — timing of the attention layer's forward + backward against
 * the sum of its own GEMMs and sdpa kernels measured separately (same shapes,
 * same strided views), i.e. how much the layer adds beyond the math.
 *
 * Build by hand (no CMake target):
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu/openblas-pthread \
 *      bench/bench_layer.c build-layer/libattn.a -lopenblas -lpthread -lm -o build-layer/bench_layer
 * Run:
 *   ATTN_NUM_THREADS=2 build-layer/bench_layer [E H B S causal reps]
 *   defaults: 1024 16 4 2048 0 3
 * Reports the best of `reps` runs of each part, as wall time and as process
 * CPU time (the machine is shared: wall time includes waiting for cores). */
#include "attn.h"
#include "kernels/gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* process CPU time (all threads): the work done, insensitive to other load
 * on a shared machine (the pool's idle workers sleep, OpenBLAS runs
 * single-threaded inside the pool's tasks, so nothing spins) */
static double cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { double wall, cpu; } tm2;
static void keep_best(tm2 *best, double w0, double w1, double c0, double c1) {
    if (w1 - w0 < best->wall) best->wall = w1 - w0;
    if (c1 - c0 < best->cpu) best->cpu = c1 - c0;
}

static float *randv(int64_t n, uint64_t seed) {
    float *p = malloc((size_t)n * sizeof(float));
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        p[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    return p;
}

int main(int argc, char **argv) {
    int64_t E = argc > 1 ? atoll(argv[1]) : 1024, H = argc > 2 ? atoll(argv[2]) : 16;
    int64_t B = argc > 3 ? atoll(argv[3]) : 4, S = argc > 4 ? atoll(argv[4]) : 2048;
    int causal = argc > 5 ? atoi(argv[5]) : 0, reps = argc > 6 ? atoi(argv[6]) : 3;
    const int64_t D = E / H, rows = B * S, N3 = 3 * E;
    printf("bench_layer: E=%lld H=%lld D=%lld B=%lld S=%lld causal=%d threads=%d isa=%s reps=%d\n", (long long)E,
           (long long)H, (long long)D, (long long)B, (long long)S, causal, attn_get_num_threads(),
           attn_isa_name(attn_isa_active()), reps);

    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    cfg.embed_dim = E; cfg.num_heads = H; cfg.causal = causal;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { fprintf(stderr, "%s\n", attn_last_error()); return 1; }
    attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 1);
    attn_mha_set_training(m, 1);
    float *x = randv(rows * E, 1), *dy = randv(rows * E, 2), *y = malloc(sizeof(float) * rows * E),
          *dx = malloc(sizeof(float) * rows * E);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;

    /* ── the same GEMMs alone ── */
    float *W = randv(N3 * E, 3), *Wo = randv(E * E, 4), *proj = randv(rows * N3, 5), *o = randv(rows * E, 6);
    float *dW = calloc((size_t)(N3 * E), sizeof(float)), *dWo = calloc((size_t)(E * E), sizeof(float));
    float *dproj = randv(rows * N3, 7), *dO = malloc(sizeof(float) * rows * E);
    /* ── the sdpa kernels alone, on the layer's strided views ── */
    attn_sdpa_dims dims = {B, S, S, H, H, D, D};
    attn_sdpa_opts opts;
    attn_sdpa_opts_init(&opts);
    opts.causal = causal;
    attn_view qv = {proj, S * N3, N3, D}, kv = {proj + E, S * N3, N3, D}, vv = {proj + 2 * E, S * N3, N3, D};
    attn_view ov = attn_view_bshd(o, S, H, D), dov = attn_view_bshd(dO, S, H, D);
    attn_view dqv = attn_view_bshd(dproj, S, H, D), dkv = attn_view_bshd(dproj + rows * E, S, H, D),
              dvv = attn_view_bshd(dproj + 2 * rows * E, S, H, D);
    float *lse = malloc(sizeof(float) * B * H * S);
    size_t wsf = attn_sdpa_fwd_workspace_size(&dims, &opts), wsb = attn_sdpa_bwd_workspace_size(&dims, &opts);
    size_t wsn = wsf > wsb ? wsf : wsb;
    void *ws = aligned_alloc(64, (wsn + 63) & ~(size_t)63);
    memset(ws, 0, wsn);
    for (int64_t i = 0; i < rows * N3; i++) proj[i] *= 4.0f; /* O(1) logits */
    tm2 lf = {1e30, 1e30}, lb = {1e30, 1e30}, gf = {1e30, 1e30}, gb = {1e30, 1e30}, sf = {1e30, 1e30}, sb = {1e30, 1e30};
    /* the three measurements interleaved, so that each repetition sees similar
     * load from other processes; r = 0 is a warm-up (first touch of scratch) */
    for (int r = 0; r <= reps; r++) {
        {
            double t0 = now(), c0 = cpu();
            if (attn_mha_forward(m, &in, y) != ATTN_OK) { fprintf(stderr, "%s\n", attn_last_error()); return 1; }
            double t1 = now(), c1 = cpu();
            if (attn_mha_backward(m, dy, dx, NULL, NULL) != ATTN_OK) { fprintf(stderr, "%s\n", attn_last_error()); return 1; }
            double t2 = now(), c2 = cpu();
            if (r > 0) { keep_best(&lf, t0, t1, c0, c1); keep_best(&lb, t1, t2, c1, c2); }
        }
        {
            double t0 = now(), c0 = cpu();
            attn__sgemm(0, 1, rows, N3, E, 1.0f, x, E, W, E, 0.0f, proj, N3);    /* proj = x Wqkv^T */
            attn__sgemm(0, 1, rows, E, E, 1.0f, o, E, Wo, E, 0.0f, y, E);         /* y = o Wo^T */
            double t1 = now(), c1 = cpu();
            attn__sgemm(1, 0, E, E, rows, 1.0f, dy, E, o, E, 1.0f, dWo, E);       /* dWo += dy^T o */
            attn__sgemm(0, 0, rows, E, E, 1.0f, dy, E, Wo, E, 0.0f, dO, E);       /* dO = dy Wo */
            for (int p = 0; p < 3; p++) {                                         /* per projection */
                const float *dYp = dproj + (size_t)p * rows * E;
                attn__sgemm(1, 0, E, E, rows, 1.0f, dYp, E, x, E, 1.0f, dW + (size_t)p * E * E, E);
                attn__sgemm(0, 0, rows, E, E, 1.0f, dYp, E, W + (size_t)p * E * E, E, p ? 1.0f : 0.0f, dx, E);
        }
            double t2 = now(), c2 = cpu();
            if (r > 0) { keep_best(&gf, t0, t1, c0, c1); keep_best(&gb, t1, t2, c1, c2); }
        }
        {
            double t0 = now(), c0 = cpu();
            if (attn_sdpa_fwd(&dims, qv, kv, vv, ov, lse, &opts, ws, wsn) != ATTN_OK) { fprintf(stderr, "%s\n", attn_last_error()); return 1; }
            double t1 = now(), c1 = cpu();
            if (attn_sdpa_bwd(&dims, qv, kv, vv, ov, dov, lse, dqv, dkv, dvv, &opts, ws, wsn) != ATTN_OK) {
                fprintf(stderr, "%s\n", attn_last_error());
                return 1;
        }
            double t2 = now(), c2 = cpu();
            if (r > 0) { keep_best(&sf, t0, t1, c0, c1); keep_best(&sb, t1, t2, c1, c2); }
        }
    }
    const double gemm_flop_f = 2.0 * rows * E * (N3 + E), gemm_flop_b = 2.0 * 2.0 * rows * E * (N3 + E);
    const double sd = causal ? 0.5 : 1.0, sdpa_flop_f = 4.0 * B * H * S * S * D * sd, sdpa_flop_b = 2.5 * sdpa_flop_f;
    for (int k = 0; k < 2; k++) {
        const char *what = k ? "cpu (process CPU time, all threads)" : "wall";
#define T(x) (k ? (x).cpu : (x).wall)
        printf("── %s ──\n", what);
        printf("layer   fwd %8.1f ms  bwd %8.1f ms  total %8.1f ms\n", 1e3 * T(lf), 1e3 * T(lb), 1e3 * (T(lf) + T(lb)));
        printf("gemm    fwd %8.1f ms  bwd %8.1f ms  (%.1f / %.1f GFLOP/s)\n", 1e3 * T(gf), 1e3 * T(gb),
               gemm_flop_f / T(gf) * 1e-9, gemm_flop_b / T(gb) * 1e-9);
        printf("sdpa    fwd %8.1f ms  bwd %8.1f ms  (%.1f / %.1f GFLOP/s)\n", 1e3 * T(sf), 1e3 * T(sb),
               sdpa_flop_f / T(sf) * 1e-9, sdpa_flop_b / T(sb) * 1e-9);
        const double pf = T(gf) + T(sf), pb = T(gb) + T(sb);
        printf("parts   fwd %8.1f ms  bwd %8.1f ms  total %8.1f ms\n", 1e3 * pf, 1e3 * pb, 1e3 * (pf + pb));
        printf("ratio layer / parts: fwd %.3f  bwd %.3f  total %.3f\n", T(lf) / pf, T(lb) / pb, (T(lf) + T(lb)) / (pf + pb));
#undef T
    }
    attn_mha_free(m);
    free(x); free(dy); free(y); free(dx); free(W); free(Wo); free(proj); free(o); free(dW); free(dWo); free(dproj);
    free(dO); free(lse); free(ws);
    return 0;
}
