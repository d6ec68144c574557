/* SPDX-License-Identifier: MIT */
/* sdpa_minimal.c — the smallest complete use of libattn: causal GQA attention
 * forward and backward on contiguous (B, S, H, D) tensors, checked against a
 * naive softmax(q k^T / sqrt(D)) v for every row.
 *
 *   cc -std=c11 -O2 examples/sdpa_minimal.c -Iinclude build/libattn.a \
 *      $(pkg-config --libs openblas) -lpthread -lm -o sdpa_minimal && ./sdpa_minimal
 * (after `cmake --install`: cc sdpa_minimal.c $(pkg-config --cflags --libs attn) -lm, or
 * --static for libattn.a; ctest consumer_install builds it both ways and through find_package)
 * The build makes it as build/sdpa_minimal and ctest runs it (example_sdpa_minimal). */
#include <attn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { B = 1, S = 16, HQ = 4, HKV = 2, D = 8 }; /* 4 query heads share 2 key/value heads */

static float *randn(size_t n, unsigned *seed) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n && p; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f; /* U(-1, 1) */
    }
    return p;
}

int main(void) {
    unsigned seed = 1;
    float *q = randn(B * S * HQ * D, &seed), *k = randn(B * S * HKV * D, &seed), *v = randn(B * S * HKV * D, &seed);
    float *o = calloc(B * S * HQ * D, sizeof(float)), *lse = calloc(B * HQ * S, sizeof(float));
    float *dO = randn(B * S * HQ * D, &seed);
    float *dq = calloc(B * S * HQ * D, sizeof(float)), *dk = calloc(B * S * HKV * D, sizeof(float));
    float *dv = calloc(B * S * HKV * D, sizeof(float));
    if (!q || !k || !v || !o || !lse || !dO || !dq || !dk || !dv) return 1;

    attn_sdpa_dims dims = { .batch = B, .seq_q = S, .seq_k = S, .heads_q = HQ, .heads_kv = HKV,
                            .head_dim = D, .head_dim_v = D };
    attn_sdpa_opts opts;
    attn_sdpa_opts_init(&opts); /* everything off; scale 0 = 1/sqrt(D) */
    opts.causal = 1;
    attn_view vq = attn_view_bshd(q, S, HQ, D), vk = attn_view_bshd(k, S, HKV, D);
    attn_view vv = attn_view_bshd(v, S, HKV, D), vo = attn_view_bshd(o, S, HQ, D);

    /* NULL workspace: the call allocates its own (pass attn_sdpa_fwd_workspace_size() bytes to avoid that) */
    if (attn_sdpa_fwd(&dims, vq, vk, vv, vo, lse, &opts, NULL, 0) != ATTN_OK) {
        fprintf(stderr, "attn_sdpa_fwd: %s\n", attn_last_error());
        return 1;
    }

    /* naive reference for every (query row, head): kv head = h / (HQ / HKV) */
    double maxerr = 0.0;
    for (int i = 0; i < S; i++)
        for (int h = 0; h < HQ; h++) {
            int g = h / (HQ / HKV);
            double s[S], m = -INFINITY, sum = 0.0;
            for (int j = 0; j <= i; j++) { /* causal: keys 0..i */
                s[j] = 0.0;
                for (int d = 0; d < D; d++) s[j] += (double)q[(i * HQ + h) * D + d] * k[(j * HKV + g) * D + d];
                s[j] /= sqrt((double)D);
                if (s[j] > m) m = s[j];
            }
            for (int j = 0; j <= i; j++) sum += exp(s[j] - m);
            for (int d = 0; d < D; d++) {
                double ref = 0.0;
                for (int j = 0; j <= i; j++) ref += exp(s[j] - m) / sum * v[(j * HKV + g) * D + d];
                double e = fabs(ref - o[(i * HQ + h) * D + d]);
                if (e > maxerr) maxerr = e;
            }
        }

    /* backward: gradients of sum(o * dO) with respect to q, k, v */
    attn_view vdo = attn_view_bshd(dO, S, HQ, D), vdq = attn_view_bshd(dq, S, HQ, D);
    attn_view vdk = attn_view_bshd(dk, S, HKV, D), vdv = attn_view_bshd(dv, S, HKV, D);
    if (attn_sdpa_bwd(&dims, vq, vk, vv, vo, vdo, lse, vdq, vdk, vdv, &opts, NULL, 0) != ATTN_OK) {
        fprintf(stderr, "attn_sdpa_bwd: %s\n", attn_last_error());
        return 1;
    }

    printf("libattn %s, kernel isa %s, %d threads\n", attn_version(), attn_isa_name(attn_isa_active()),
           attn_get_num_threads());
    printf("causal GQA forward B %d S %d Hq %d Hkv %d D %d: max |o - naive| = %.2e\n", B, S, HQ, HKV, D, maxerr);
    printf("o[0, 15, 3, 0:4] = %.5f %.5f %.5f %.5f; lse[0, 3, 15] = %.5f\n", o[(15 * HQ + 3) * D + 0],
           o[(15 * HQ + 3) * D + 1], o[(15 * HQ + 3) * D + 2], o[(15 * HQ + 3) * D + 3], lse[3 * S + 15]);
    printf("backward: dk[0, 0, 1, 0:2] = %.5f %.5f, dv[0, 0, 1, 0:2] = %.5f %.5f\n", dk[(0 * HKV + 1) * D],
           dk[(0 * HKV + 1) * D + 1], dv[(0 * HKV + 1) * D], dv[(0 * HKV + 1) * D + 1]);

    /* a bad argument is an error code plus a message, never a crash */
    dims.heads_kv = 3; /* does not divide heads_q */
    attn_status st = attn_sdpa_fwd(&dims, vq, vk, vv, vo, lse, &opts, NULL, 0);
    printf("heads_kv = 3: %s\n  %s\n", attn_status_str(st), attn_last_error());

    free(q); free(k); free(v); free(o); free(lse); free(dO); free(dq); free(dk); free(dv);
    return maxerr < 1e-5 && st == ATTN_ERR_SHAPE ? 0 : 1;
}
