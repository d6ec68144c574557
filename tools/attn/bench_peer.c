/* SPDX-License-Identifier: MIT */
/* bench_peer.c — see bench_peer.h. */
#include "bench_peer.h"

#include "core/core.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int peer_ws_init(peer_ws *w, int64_t sq, int64_t sk, int backward, int threads) {
    memset(w, 0, sizeof *w);
    int ok = 1;
    size_t n = attn__mul_size((size_t)sq, (size_t)sk, &ok);
    n = attn__mul_size(n, sizeof(float), &ok);
    if (!ok) return 1;
    if (n == 0) n = 64;
    w->p = attn__malloc(n);
    w->dp = backward ? attn__malloc(n) : NULL;
    w->cap = n;
    w->threads = threads;
    if (!w->p || (backward && !w->dp)) { peer_ws_free(w); return 1; }
    return 0;
}

void peer_ws_free(peer_ws *w) {
    attn__free(w->p);
    attn__free(w->dp);
    memset(w, 0, sizeof *w);
}

/* last visible key of row i (exclusive end), given causal alignment */
static int64_t row_end(int64_t i, int64_t sq, int64_t sk, int causal, int align) {
    if (!causal) return sk;
    int64_t p = align == ATTN_ALIGN_BOTTOM_RIGHT ? i + sk - sq : i;
    int64_t e = p + 1;
    return e < 0 ? 0 : e > sk ? sk : e;
}

enum { ROWS_PER_TASK = 16 };

typedef struct row_ctx {
    float *p, *dp;
    int64_t sq, sk;
    int causal, align;
} row_ctx;

/* p[i, :] = softmax(p[i, :end]) (scores already scaled), zeros after end */
static void softmax_task(void *vctx, int64_t task, int tid) {
    row_ctx *c = vctx;
    int64_t i0 = task * ROWS_PER_TASK, i1 = i0 + ROWS_PER_TASK < c->sq ? i0 + ROWS_PER_TASK : c->sq;
    for (int64_t i = i0; i < i1; i++) {
        float *r = c->p + i * c->sk;
        int64_t e = row_end(i, c->sq, c->sk, c->causal, c->align);
        float m = -INFINITY;
        for (int64_t j = 0; j < e; j++) m = r[j] > m ? r[j] : m;
        float s = 0;
        for (int64_t j = 0; j < e; j++) { r[j] = expf(r[j] - m); s += r[j]; }
        float inv = s > 0 ? 1.0f / s : 0.0f;
        for (int64_t j = 0; j < e; j++) r[j] *= inv;
        for (int64_t j = e; j < c->sk; j++) r[j] = 0;
    }
}

/* dp[i, :] = p ⊙ (dp − Σ_j p·dp) */
static void dsoftmax_task(void *vctx, int64_t task, int tid) {
    row_ctx *c = vctx;
    int64_t i0 = task * ROWS_PER_TASK, i1 = i0 + ROWS_PER_TASK < c->sq ? i0 + ROWS_PER_TASK : c->sq;
    for (int64_t i = i0; i < i1; i++) {
        const float *pr = c->p + i * c->sk;
        float *dr = c->dp + i * c->sk;
        float di = 0;
        for (int64_t j = 0; j < c->sk; j++) di += pr[j] * dr[j];
        for (int64_t j = 0; j < c->sk; j++) dr[j] = pr[j] * (dr[j] - di);
    }
}

/* kg: key rows of one head, ldk apart */
static void scores_softmax(const attn_sdpa_dims *d, int causal, int align, float scale, const float *qh,
                           const float *kg, int64_t ldk, peer_ws *w) {
    const int64_t sq = d->seq_q, sk = d->seq_k, D = d->head_dim;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)sq, (int)sk, (int)D, scale, qh,
                (int)(d->heads_q * D), kg, (int)ldk, 0.0f, w->p, (int)sk);
    row_ctx c = { w->p, w->dp, sq, sk, causal, align };
    attn__parallel_for((sq + ROWS_PER_TASK - 1) / ROWS_PER_TASK, w->threads, softmax_task, &c);
}

/* OpenBLAS threads for the peer: the library keeps OpenBLAS at 1 thread (kernels/gemm.c), the peer
 * uses its own threading with w->threads. */
static int g_blas_last = 0;
static void blas_threads(int n) {
    if (n != g_blas_last) { openblas_set_num_threads(n); g_blas_last = n; }
}

void peer_sdpa_fwd(const attn_sdpa_dims *d, int causal, int align, float scale, const float *q, const float *k,
                   const float *v, int kv_head_major, float *o, peer_ws *w) {
    blas_threads(w->threads);
    const int64_t B = d->batch, sq = d->seq_q, sk = d->seq_k, Hq = d->heads_q, Hkv = d->heads_kv;
    const int64_t D = d->head_dim, Dv = d->head_dim_v ? d->head_dim_v : D, grp = Hq / Hkv;
    if (sq == 0) return;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t g = h / grp;
            const float *qh = q + (b * sq * Hq + h) * D;
            const float *kg = kv_head_major ? k + (b * Hkv + g) * sk * D : k + (b * sk * Hkv + g) * D;
            const float *vg = kv_head_major ? v + (b * Hkv + g) * sk * Dv : v + (b * sk * Hkv + g) * Dv;
            const int64_t ldk = kv_head_major ? D : Hkv * D, ldv = kv_head_major ? Dv : Hkv * Dv;
            float *oh = o + (b * sq * Hq + h) * Dv;
            if (sk == 0) {
                for (int64_t i = 0; i < sq; i++) memset(oh + i * Hq * Dv, 0, (size_t)Dv * sizeof(float));
                continue;
            }
            scores_softmax(d, causal, align, scale, qh, kg, ldk, w);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)sq, (int)Dv, (int)sk, 1.0f, w->p,
                        (int)sk, vg, (int)ldv, 0.0f, oh, (int)(Hq * Dv));
        }
}

void peer_sdpa_bwd(const attn_sdpa_dims *d, int causal, int align, float scale, const float *q, const float *k,
                   const float *v, const float *dO, float *dq, float *dk, float *dv, peer_ws *w) {
    blas_threads(w->threads);
    const int64_t B = d->batch, sq = d->seq_q, sk = d->seq_k, Hq = d->heads_q, Hkv = d->heads_kv;
    const int64_t D = d->head_dim, Dv = d->head_dim_v ? d->head_dim_v : D, grp = Hq / Hkv;
    memset(dk, 0, (size_t)(B * sk * Hkv * D) * sizeof(float));
    memset(dv, 0, (size_t)(B * sk * Hkv * Dv) * sizeof(float));
    if (sk == 0) { memset(dq, 0, (size_t)(B * sq * Hq * D) * sizeof(float)); return; }
    if (sq == 0) return;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t g = h / grp;
            const float *qh = q + (b * sq * Hq + h) * D;
            const float *kg = k + (b * sk * Hkv + g) * D;
            const float *vg = v + (b * sk * Hkv + g) * Dv;
            const float *doh = dO + (b * sq * Hq + h) * Dv;
            float *dqh = dq + (b * sq * Hq + h) * D;
            float *dkg = dk + (b * sk * Hkv + g) * D;
            float *dvg = dv + (b * sk * Hkv + g) * Dv;
            scores_softmax(d, causal, align, scale, qh, kg, Hkv * D, w);
            /* dV += Pᵀ dO */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)sk, (int)Dv, (int)sq, 1.0f, w->p, (int)sk,
                        doh, (int)(Hq * Dv), 1.0f, dvg, (int)(Hkv * Dv));
            /* dP = dO Vᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)sq, (int)sk, (int)Dv, 1.0f, doh,
                        (int)(Hq * Dv), vg, (int)(Hkv * Dv), 0.0f, w->dp, (int)sk);
            row_ctx c = { w->p, w->dp, sq, sk, causal, align };
            attn__parallel_for((sq + ROWS_PER_TASK - 1) / ROWS_PER_TASK, w->threads, dsoftmax_task, &c);
            /* dQ = scale · dS K */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)sq, (int)D, (int)sk, scale, w->dp, (int)sk,
                        kg, (int)(Hkv * D), 0.0f, dqh, (int)(Hq * D));
            /* dK += scale · dSᵀ Q */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)sk, (int)D, (int)sq, scale, w->dp, (int)sk,
                        qh, (int)(Hq * D), 1.0f, dkg, (int)(Hkv * D));
        }
}

const char *peer_blas_config(void) { return openblas_get_config(); }
const char *peer_blas_core(void) { return openblas_get_corename(); }
void peer_blas_set_threads(int n) { openblas_set_num_threads(n); g_blas_last = n; }
