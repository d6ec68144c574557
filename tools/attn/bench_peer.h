/* SPDX-License-Identifier: MIT */
/* bench_peer.h — the naive peer of `attn bench`: attention the textbook way
 * with OpenBLAS. Per (batch, query head): cblas_sgemm Q·Kᵀ into a
 * materialised Sq x Sk buffer, a row softmax (masked), cblas_sgemm P·V.
 * Backward with materialised P and dP: dV += Pᵀ dO, dP = dO Vᵀ,
 * dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = scale·dS K, dK += scale·dSᵀ Q.
 * The elementwise passes run on the library's thread pool; OpenBLAS uses
 * its own threads (openblas_set_num_threads).
 *
 * Tensors are contiguous (B, S, H, D); GQA: query head h uses kv head
 * h / (Hq / Hkv). Masks: none or causal (top-left / bottom-right). */
#ifndef ATTN_TOOL_BENCH_PEER_H
#define ATTN_TOOL_BENCH_PEER_H

#include "attn.h"

typedef struct peer_ws {
    float *p;  /* Sq x Sk */
    float *dp; /* Sq x Sk (backward only) */
    size_t cap;
    int threads;
} peer_ws;

/* Allocates the Sq x Sk buffers (dp only if backward != 0). 0 on success. */
int peer_ws_init(peer_ws *w, int64_t sq, int64_t sk, int backward, int threads);
void peer_ws_free(peer_ws *w);

/* q, o (B, Sq, Hq, D); k, v (B, Sk, Hkv, D), or (B, Hkv, Sk, D) when kv_head_major. */
void peer_sdpa_fwd(const attn_sdpa_dims *d, int causal, int align, float scale, const float *q, const float *k,
                   const float *v, int kv_head_major, float *o, peer_ws *w);
void peer_sdpa_bwd(const attn_sdpa_dims *d, int causal, int align, float scale, const float *q, const float *k,
                   const float *v, const float *dO, float *dq, float *dk, float *dv, peer_ws *w);

/* "OpenBLAS 0.3.21 ... | core Zen | 2 threads" */
const char *peer_blas_config(void);
const char *peer_blas_core(void);
void peer_blas_set_threads(int n);

#endif
