/* SPDX-License-Identifier: MIT */
/* test_blas_threads.c — attn leaves the process's OpenBLAS alone (attn.h, "Threads").
 * The host program (this test, linked to the process's libopenblas and to
 * libattn.so) sets OpenBLAS to N threads, runs the attention layer forward and
 * backward at a size whose projections attn splits over its own pool, and
 * checks OpenBLAS still reports N — for N = 3, 1, 2, with attn's own pool at 2
 * and 1 threads. With the private BLAS (ATTN_PRIVATE_BLAS) the layer's output,
 * input gradient and a weight gradient must also be bit-identical whatever N:
 * attn's GEMMs never run on the host's instance. (The layer's numerics are
 * checked against float64 references and PyTorch fixtures in test_mha*.) */
#include <attn.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails = 0;
#define CHECK(c, ...)                                                           \
    do {                                                                        \
        if (!(c)) {                                                             \
            fails++;                                                            \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #c);                 \
            printf(__VA_ARGS__);                                                \
            printf("\n");                                                       \
        }                                                                       \
    } while (0)

enum { B = 2, S = 800, E = 256, H = 4 }; /* rows B*S = 1600 >= 2 blocks of 768: a split GEMM */

typedef struct run { float *y, *dx, *dwq; } run;

static void run_layer(run *r, const float *x, const float *dy) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = E;
    c.num_heads = H;
    c.causal = 1;
    c.rope = ATTN_ROPE_NEOX;
    attn_mha *m = NULL;
    CHECK(attn_mha_create(&m, &c) == ATTN_OK, "%s", attn_last_error());
    if (!m) return;
    CHECK(attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 3) == ATTN_OK, "%s", attn_last_error());
    CHECK(attn_mha_set_training(m, 1) == ATTN_OK, "%s", attn_last_error());
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B;
    in.seq_q = S;
    in.x = x;
    CHECK(attn_mha_forward(m, &in, r->y) == ATTN_OK, "forward: %s", attn_last_error());
    CHECK(attn_mha_backward(m, dy, r->dx, NULL, NULL) == ATTN_OK, "backward: %s", attn_last_error());
    attn_param p;
    CHECK(attn_mha_find_param(m, "q_proj.weight", &p) == ATTN_OK, "%s", attn_last_error());
    memcpy(r->dwq, p.grad, sizeof(float) * (size_t)p.numel);
    attn_mha_free(m);
}

int main(void) {
    const size_t n = (size_t)B * S * E;
    float *x = malloc(n * 4), *dy = malloc(n * 4);
    unsigned s = 11;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / (float)(1u << 24) - 0.5f;
        s = s * 1664525u + 1013904223u;
        dy[i] = (float)(s >> 8) / (float)(1u << 24) - 0.5f;
    }
    run ref = {malloc(n * 4), malloc(n * 4), malloc((size_t)E * E * 4)};
    run cur = {malloc(n * 4), malloc(n * 4), malloc((size_t)E * E * 4)};
    static const int counts[] = {3, 1, 2};
    for (int t = 0; t < 3; t++) {
        const int N = counts[t];
        openblas_set_num_threads(N);
        CHECK(openblas_get_num_threads() == N, "host could not set %d threads", N);
        run *r = t == 0 ? &ref : &cur;
        run_layer(r, x, dy);
        CHECK(openblas_get_num_threads() == N, "OpenBLAS threads %d after the layer, the host set %d",
              openblas_get_num_threads(), N);
        attn_set_num_threads(t == 2 ? 1 : 2); /* attn's own pool size is independent of the host's BLAS */
        run_layer(r == &ref ? &cur : r, x, dy);
        CHECK(openblas_get_num_threads() == N, "OpenBLAS threads %d after the layer (second run), the host set %d",
              openblas_get_num_threads(), N);
#ifdef ATTN_PRIVATE_BLAS
        if (t > 0)
            CHECK(memcmp(ref.y, cur.y, n * 4) == 0 && memcmp(ref.dx, cur.dx, n * 4) == 0 &&
                      memcmp(ref.dwq, cur.dwq, (size_t)E * E * 4) == 0,
                  "layer results depend on the host's OpenBLAS thread count (%d vs 3)", N);
#endif
    }
    int finite = 1;
    for (size_t i = 0; i < n; i++) finite &= isfinite(ref.y[i]) && isfinite(ref.dx[i]);
    CHECK(finite, "non-finite layer output");
    printf("test_blas_threads: host %s, host thread counts 3/1/2 kept%s: %s\n", openblas_get_config(),
#ifdef ATTN_PRIVATE_BLAS
           ", results bit-identical across them",
#else
           " (process BLAS, no private copy)",
#endif
           fails ? "FAILED" : "ok");
    free(x); free(dy);
    free(ref.y); free(ref.dx); free(ref.dwq); free(cur.y); free(cur.dx); free(cur.dwq);
    return fails != 0;
}
