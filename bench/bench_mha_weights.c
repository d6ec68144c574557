/* SPDX-License-Identifier: MIT */
/* bench_mha_weights.c — the attention layer with fp32, BF16 and F16 projection
 * weights (attn_mha_config.weight_dtype) in one run: weight bytes, resident
 * memory of create + init, and forward time (prefill of S tokens; decode of one
 * token against an S-token KV cache), as ratios to the fp32 layer.
 *
 * Build by hand (no CMake target; the library from a Release build):
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Iinclude bench/bench_mha_weights.c build/libattn.a -lpthread -lm \
 *      -o build/bench_mha_weights
 *   (add -lopenblas when the build has ATTN_PRIVATE_BLAS=OFF)
 * Run:
 *   ATTN_NUM_THREADS=2 build/bench_mha_weights [E Hq Hkv S reps]     defaults: 4096 32 8 512 7
 * The three layers' runs are interleaved (f32, bf16, f16, f32, ...) so that load
 * from other processes on a shared machine falls on all of them alike; medians. */
#include "attn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* resident set size in bytes (/proc/self/statm), 0 if unknown */
static double rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
    return (double)res * (double)sysconf(_SC_PAGESIZE);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define NT 3
static const attn_dtype TYPES[NT] = {ATTN_DTYPE_F32, ATTN_DTYPE_BF16, ATTN_DTYPE_F16};
static const char *TNAME[NT] = {"f32", "bf16", "f16"};

static int die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, attn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const int64_t E = argc > 1 ? atoll(argv[1]) : 4096, Hq = argc > 2 ? atoll(argv[2]) : 32;
    const int64_t Hkv = argc > 3 ? atoll(argv[3]) : 8, S = argc > 4 ? atoll(argv[4]) : 512;
    const int reps = argc > 5 ? atoi(argv[5]) : 7;
    const int64_t D = E / Hq, nw = 2 * E * Hq * D + 2 * E * Hkv * D;
    attn_mha *m[NT] = {0};
    attn_kvcache *kc[NT] = {0};
    double rss_delta[NT];
    for (int t = 0; t < NT; t++) {
        attn_mha_config cfg;
        attn_mha_config_init(&cfg);
        cfg.embed_dim = E; cfg.num_heads = Hq; cfg.num_kv_heads = Hkv; cfg.causal = 1;
        cfg.rope = ATTN_ROPE_NEOX; cfg.rope_theta = 500000.0f; cfg.weight_dtype = TYPES[t];
        const double r0 = rss();
        if (attn_mha_create(&m[t], &cfg) != ATTN_OK) return die("create");
        if (attn_mha_init_weights(m[t], ATTN_INIT_NORMAL, 1) != ATTN_OK) return die("init");
        rss_delta[t] = rss() - r0;
        if (attn_kvcache_create(&kc[t], 1, S + reps + 2, Hkv, D) != ATTN_OK) return die("kvcache");
    }
    float *x = malloc((size_t)(S * E) * sizeof(float)), *y = malloc((size_t)(S * E) * sizeof(float));
    for (int64_t i = 0; i < S * E; i++) x[i] = (float)((i * 2654435761u % 1000) / 1000.0 - 0.5);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = 1; in.seq_q = S; in.x = x;

    double pre[NT][64], dec[NT][64];
    const int R = reps > 64 ? 64 : reps;
    for (int t = 0; t < NT; t++) /* warm-up: scratch grown, caches prefilled */
        if (attn_mha_forward(m[t], &in, y) != ATTN_OK || attn_mha_forward_cached(m[t], kc[t], x, 1, S, y) != ATTN_OK)
            return die("warm-up");
    for (int r = 0; r < R; r++)
        for (int t = 0; t < NT; t++) {
            double t0 = now();
            if (attn_mha_forward(m[t], &in, y) != ATTN_OK) return die("forward");
            double t1 = now();
            if (attn_mha_forward_cached(m[t], kc[t], x + r * E, 1, 1, y) != ATTN_OK) return die("decode");
            double t2 = now();
            pre[t][r] = t1 - t0;
            dec[t][r] = t2 - t1;
        }
    printf("bench_mha_weights: E %lld Hq %lld Hkv %lld D %lld S %lld, causal RoPE, threads %d, isa %s, reps %d (medians)\n",
           (long long)E, (long long)Hq, (long long)Hkv, (long long)D, (long long)S, attn_get_num_threads(),
           attn_isa_name(attn_isa_active()), R);
    printf("  %-5s %-7s %12s %12s %12s %14s %9s %14s %9s\n", "wt", "kernel", "weight MB", "param MB", "RSS +MB",
           "prefill ms", "vs f32", "decode ms", "vs f32");
    double p32 = 0, d32 = 0;
    for (int t = 0; t < NT; t++) {
        const double p = median(pre[t], R) * 1e3, d = median(dec[t], R) * 1e3;
        if (t == 0) { p32 = p; d32 = d; }
        printf("  %-5s %-7s %12.1f %12.1f %12.1f %14.2f %9.3f %14.3f %9.3f\n", TNAME[t], attn_mha_proj_kernel(m[t]),
               (double)nw * (t ? 2.0 : 4.0) / 1e6, (double)attn_mha_param_bytes(m[t]) / 1e6, rss_delta[t] / 1e6, p,
               p32 / p, d, d32 / d);
    }
    printf("  (vs f32 = fp32 time / this time: > 1 is faster; param MB counts the fp32 layer's gradient arena, "
           "allocated but not resident until written)\n");
    for (int t = 0; t < NT; t++) { attn_mha_free(m[t]); attn_kvcache_free(kc[t]); }
    free(x); free(y);
    return 0;
}
