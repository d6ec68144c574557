/* SPDX-License-Identifier: MIT */
/* bench_sdpa.c — private micro-benchmark of attn_sdpa_fwd / attn_sdpa_bwd.
 *
 * Usage: bench_sdpa [fwd|bwd|decode] B Hq Hkv D Sq Sk causal [reps] [isa]
 * (HEAD_MAJOR=1 in the environment: K/V views (B, Hkv, Sk, D) instead of (B, Sk, Hkv, D))
 * (BWD_FAST=1: opts.bwd_fast, the backward without its row-statistics pass;
 *  ROW_STATS=1: opts.row_stats, the backward with the forward's row statistics)
 * Reports best-of-reps and median ms, GFLOP/s (fwd: 4*B*Hq*Sq*Sk*D, halved for
 * causal with Sq == Sk; bwd: 2.5x forward; decode: GB/s of K+V read; decode calls are
 * inference calls, lse NULL, as a decoding step is), and for
 * fwd a naive OpenBLAS peer (per head: sgemm Q.K^T into an Sq x Sk buffer,
 * softmax, sgemm P.V) measured in the same process.
 * Build: see the command in the kernels report (links libattn.a + openblas). */
#include "attn.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double cpu_now(void) { /* process CPU time: all threads */
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static float *randbuf(int64_t n, unsigned seed) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (size_t)n * 4 + 64)) return NULL;
    srand(seed);
    for (int64_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

/* naive peer: o (B, Sq, Hq, D) */
static void peer(int64_t B, int64_t Hq, int64_t Hkv, int64_t D, int64_t Sq, int64_t Sk, int causal, const float *q,
                 const float *k, const float *v, float *o, float *S) {
    float scale = 1.0f / sqrtf((float)D);
    int64_t G = Hq / Hkv;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const float *qh = q + (b * Sq * Hq + h) * D, *kh = k + (b * Sk * Hkv + h / G) * D;
            const float *vh = v + (b * Sk * Hkv + h / G) * D;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Sq, (int)Sk, (int)D, scale, qh, (int)(Hq * D),
                        kh, (int)(Hkv * D), 0.0f, S, (int)Sk);
            for (int64_t i = 0; i < Sq; i++) {
                float *row = S + i * Sk;
                int64_t n = causal ? i + 1 + (Sk - Sq) : Sk;
                if (n > Sk) n = Sk;
                if (n < 0) n = 0;
                float mx = -INFINITY;
                for (int64_t j = 0; j < n; j++) mx = fmaxf(mx, row[j]);
                float sum = 0;
                for (int64_t j = 0; j < n; j++) { row[j] = expf(row[j] - mx); sum += row[j]; }
                float inv = 1.0f / sum;
                for (int64_t j = 0; j < n; j++) row[j] *= inv;
                for (int64_t j = n; j < Sk; j++) row[j] = 0;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Sq, (int)D, (int)Sk, 1.0f, S, (int)Sk, vh,
                        (int)(Hkv * D), 0.0f, o + (b * Sq * Hq + h) * D, (int)(Hq * D));
        }
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: %s fwd|bwd|decode B Hq Hkv D Sq Sk causal [reps] [isa]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int64_t B = atoll(argv[2]), Hq = atoll(argv[3]), Hkv = atoll(argv[4]), D = atoll(argv[5]);
    int64_t Sq = atoll(argv[6]), Sk = atoll(argv[7]);
    int causal = atoi(argv[8]);
    int reps = argc > 9 ? atoi(argv[9]) : 5;
    if (argc > 10) {
        attn_isa want = !strcmp(argv[10], "generic") ? ATTN_ISA_GENERIC
                        : !strcmp(argv[10], "avx2")  ? ATTN_ISA_AVX2
                                                     : ATTN_ISA_AVX512;
        if (attn_isa_set(want) != ATTN_OK) { fprintf(stderr, "%s\n", attn_last_error()); return 1; }
    }
    int bwd = !strcmp(mode, "bwd"), decode = !strcmp(mode, "decode");
    attn_sdpa_dims d = {B, Sq, Sk, Hq, Hkv, D, D};
    attn_sdpa_opts op;
    attn_sdpa_opts_init(&op);
    op.bwd_fast = getenv("BWD_FAST") != NULL; /* backward without the row-statistics pass */
    float *stats = getenv("ROW_STATS") ? randbuf(2 * B * Hq * Sq, 7) : NULL;
    op.row_stats = stats; /* the forward's row statistics for the backward */
    op.causal = causal;
    op.align = ATTN_ALIGN_BOTTOM_RIGHT;
    float *q = randbuf(B * Sq * Hq * D, 1), *k = randbuf(B * Sk * Hkv * D, 2), *v = randbuf(B * Sk * Hkv * D, 3);
    float *o = randbuf(B * Sq * Hq * D, 4), *dO = randbuf(B * Sq * Hq * D, 5), *lse = randbuf(B * Hq * Sq, 6);
    float *dq = NULL, *dk = NULL, *dv = NULL;
    if (bwd) { dq = randbuf(B * Sq * Hq * D, 7); dk = randbuf(B * Sk * Hkv * D, 8); dv = randbuf(B * Sk * Hkv * D, 9); }
    attn_view vq = attn_view_bshd(q, Sq, Hq, D), vk = attn_view_bshd(k, Sk, Hkv, D), vv = attn_view_bshd(v, Sk, Hkv, D);
    if (getenv("HEAD_MAJOR")) { /* K/V (B, Hkv, Sk, D), the KV-cache layout */
        vk = attn_view_bhsd(k, Sk, Hkv, D);
        vv = attn_view_bhsd(v, Sk, Hkv, D);
    }
    attn_view vo = attn_view_bshd(o, Sq, Hq, D), vdo = attn_view_bshd(dO, Sq, Hq, D);
    attn_view vdq = attn_view_bshd(dq, Sq, Hq, D), vdk = attn_view_bshd(dk, Sk, Hkv, D), vdv = attn_view_bshd(dv, Sk, Hkv, D);
    size_t wsz = bwd ? attn_sdpa_bwd_workspace_size(&d, &op) : attn_sdpa_fwd_workspace_size(&d, &op);
    void *ws = NULL;
    if (posix_memalign(&ws, 64, wsz + 64)) return 1;
    memset(ws, 0, wsz);
    double flops = 4.0 * (double)B * Hq * Sq * Sk * D;
    if (causal && Sq == Sk) flops *= 0.5;
    if (bwd) flops *= 2.5;
    float *flse = decode ? NULL : lse; /* decode: inference (no lse: the dot-product path), as attn bench's decode rows */
    if (attn_sdpa_fwd(&d, vq, vk, vv, vo, flse, &op, ws, wsz) != ATTN_OK) { fprintf(stderr, "%s\n", attn_last_error()); return 1; }
    double *t = malloc(sizeof(double) * (size_t)reps);
    double cpu0 = cpu_now();
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        attn_status st = bwd ? attn_sdpa_bwd(&d, vq, vk, vv, vo, vdo, lse, vdq, vdk, vdv, &op, ws, wsz)
                             : attn_sdpa_fwd(&d, vq, vk, vv, vo, flse, &op, ws, wsz);
        t[r] = now() - t0;
        if (st != ATTN_OK) { fprintf(stderr, "%s\n", attn_last_error()); return 1; }
    }
    double cpu_attn = (cpu_now() - cpu0) / reps;
    qsort(t, (size_t)reps, sizeof(double), cmpd);
    printf("%s isa=%s threads=%d B=%lld Hq=%lld Hkv=%lld D=%lld Sq=%lld Sk=%lld causal=%d ws=%.1fMiB\n", mode,
           attn_isa_name(attn_isa_active()), attn_get_num_threads(), (long long)B, (long long)Hq, (long long)Hkv,
           (long long)D, (long long)Sq, (long long)Sk, causal, (double)wsz / 1048576.0);
    if (decode) {
        double bytes = 2.0 * (double)B * Sk * Hkv * D * 4;
        printf("  attn: best %.3f ms  median %.3f ms  %.1f GB/s K+V (best)  %.1f GFLOP/s\n", t[0] * 1e3,
               t[reps / 2] * 1e3, bytes / t[0] / 1e9, flops / t[0] / 1e9);
    } else {
        printf("  attn: best %.3f ms  median %.3f ms  %.1f GFLOP/s (best)  %.1f GFLOP/s (median)  %.1f GFLOP per "
               "cpu-second\n",
               t[0] * 1e3, t[reps / 2] * 1e3, flops / t[0] / 1e9, flops / t[reps / 2] / 1e9, flops / cpu_attn / 1e9);
    }
    if (!bwd && getenv("PEER")) {
        float *S = randbuf(Sq * Sk, 10), *o2 = randbuf(B * Sq * Hq * D, 11);
        peer(B, Hq, Hkv, D, Sq, Sk, causal, q, k, v, o2, S);
        double err = 0;
        for (int64_t i = 0; i < B * Sq * Hq * D; i++) err = fmax(err, fabs(o2[i] - o[i]));
        double *tp = malloc(sizeof(double) * (size_t)reps);
        double cpu1 = cpu_now();
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            peer(B, Hq, Hkv, D, Sq, Sk, causal, q, k, v, o2, S);
            tp[r] = now() - t0;
        }
        double cpu_peer = (cpu_now() - cpu1) / reps;
        qsort(tp, (size_t)reps, sizeof(double), cmpd);
        printf("  peer (naive OpenBLAS %s): best %.3f ms  %.1f GFLOP/s  %.1f GFLOP per cpu-second   attn/peer "
               "speed = %.2fx (best wall), %.2fx (cpu)   max|diff| %.2g\n",
               openblas_get_corename(), tp[0] * 1e3, flops / tp[0] / 1e9, flops / cpu_peer / 1e9, tp[0] / t[0],
               cpu_peer / cpu_attn, err);
        free(S); free(o2); free(tp);
    }
    free(t); free(ws); free(q); free(k); free(v); free(o); free(dO); free(lse); free(stats); free(dq); free(dk); free(dv);
    return 0;
}
