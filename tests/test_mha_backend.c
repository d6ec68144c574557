/* SPDX-License-Identifier: MIT */
/* test_mha_backend.c — attn_mha_set_attention: a layer whose attention is
 * computed by a caller's backend.
 *
 * 1. A backend that runs the kernels itself (attn_sdpa_fwd / _bwd, no
 *    workspace) gives the layer's results bit for bit: y, dx and every
 *    parameter gradient, training and eval, with RoPE, GQA, qk-norm, biases,
 *    LoRA, a causal window and softcap; it sees the dims and options the
 *    layer builds (B, S, Hq, Hkv, D, causal, window, softcap, scale) and is
 *    called once per forward / backward (also at S = 1, where the layer
 *    otherwise takes its o = v shortcut).
 * 2. Its failure is the layer's: status passed through, message naming the
 *    backend, y untouched by a failed attention's output projection.
 * 3. Refusals: fwd without bwd (and back), NULL m; cross-attention and the
 *    cached forward with a backend set; setting a backend invalidates a
 *    saved forward (backward: ATTN_ERR_STATE). Unsetting restores the
 *    kernels (the backend is no longer called). */
#include "attn.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct spy {
    int nfwd, nbwd;
    attn_status fail;        /* returned instead of computing, if nonzero */
    attn_sdpa_dims dims;     /* of the last call */
    attn_sdpa_opts opts;
    int lse_null;
} spy;

static attn_status spy_fwd(void *user, const attn_sdpa_dims *d, attn_view q, attn_view k, attn_view v, attn_view o,
                           float *lse, const attn_sdpa_opts *opts) {
    spy *s = user;
    s->nfwd++;
    s->dims = *d;
    s->opts = *opts;
    s->lse_null = lse == NULL;
    if (s->fail) return s->fail;
    return attn_sdpa_fwd(d, q, k, v, o, lse, opts, NULL, 0);
}

static attn_status spy_bwd(void *user, const attn_sdpa_dims *d, attn_view q, attn_view k, attn_view v, attn_view o,
                           attn_view dO, const float *lse, attn_view dq, attn_view dk, attn_view dv,
                           const attn_sdpa_opts *opts) {
    spy *s = user;
    s->nbwd++;
    if (s->fail) return s->fail;
    return attn_sdpa_bwd(d, q, k, v, o, dO, lse, dq, dk, dv, opts, NULL, 0);
}

enum { B = 2, S = 11, E = 32, HQ = 4, HKV = 2 };

static attn_mha *make_layer(void) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = E;
    c.num_heads = HQ;
    c.num_kv_heads = HKV;
    c.bias_q = c.bias_o = 1;
    c.causal = 1;
    c.window_left = 5;
    c.softcap = 20.0f;
    c.rope = ATTN_ROPE_NEOX;
    c.qk_norm = 1;
    attn_mha *m = NULL;
    attn_status st = attn_mha_create(&m, &c);
    CHECK(st == ATTN_OK, "create: %s", attn_last_error());
    if (st) return NULL;
    attn_mha_init_weights(m, ATTN_INIT_NORMAL, 7);
    attn_mha_lora_attach(m, ATTN_PROJ_Q | ATTN_PROJ_V, 2, 4.0f, 9);
    /* LoRA B starts at 0: make the branch matter */
    attn_param p;
    tu_rng r = {5};
    if (attn_mha_find_param(m, "q_proj.lora_B.weight", &p) == ATTN_OK) tu_fill(&r, p.data, p.numel, 0.1f);
    return m;
}

/* y, dx, all gradients of one training step (and the eval forward's y) */
typedef struct outs {
    float y[B * S * E], dx[B * S * E], yeval[B * S * E];
    float *grads;
    int64_t ngrad;
} outs;

static void step(attn_mha *m, const float *x, const float *dy, outs *o) {
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B;
    in.seq_q = S;
    in.x = x;
    in.pos_offset = 3;
    CHECK(attn_mha_set_training(m, 1) == ATTN_OK, "training");
    CHECK(attn_mha_zero_grad(m) == ATTN_OK, "zero_grad");
    CHECK(attn_mha_forward(m, &in, o->y) == ATTN_OK, "forward: %s", attn_last_error());
    CHECK(attn_mha_backward(m, dy, o->dx, NULL, NULL) == ATTN_OK, "backward: %s", attn_last_error());
    int64_t n = 0;
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        n += p.numel;
    }
    o->grads = malloc((size_t)n * sizeof(float));
    o->ngrad = n;
    n = 0;
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        memcpy(o->grads + n, p.grad, (size_t)p.numel * sizeof(float));
        n += p.numel;
    }
    CHECK(attn_mha_set_training(m, 0) == ATTN_OK, "eval");
    CHECK(attn_mha_forward(m, &in, o->yeval) == ATTN_OK, "eval forward: %s", attn_last_error());
}

static int same(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

int main(void) {
    attn_mha *m = make_layer();
    if (!m) return test_summary("test_mha_backend");
    static float x[B * S * E], dy[B * S * E];
    tu_rng r = {11};
    tu_fill(&r, x, B * S * E, 1.0f);
    tu_fill(&r, dy, B * S * E, 1.0f);

    /* 1. the kernels through a backend = the layer's own call, bit for bit */
    outs ref, got;
    step(m, x, dy, &ref);
    spy sp;
    memset(&sp, 0, sizeof sp);
    CHECK(attn_mha_set_attention(m, spy_fwd, spy_bwd, &sp) == ATTN_OK, "set: %s", attn_last_error());
    step(m, x, dy, &got);
    CHECK(sp.nfwd == 2 && sp.nbwd == 1, "backend calls: fwd %d (want 2), bwd %d (want 1)", sp.nfwd, sp.nbwd);
    CHECK(sp.dims.batch == B && sp.dims.seq_q == S && sp.dims.seq_k == S && sp.dims.heads_q == HQ &&
              sp.dims.heads_kv == HKV && sp.dims.head_dim == E / HQ,
          "dims seen by the backend");
    CHECK(sp.opts.causal == 1 && sp.opts.window_left == 5 && sp.opts.window_right == -1 && sp.opts.softcap == 20.0f,
          "options seen by the backend");
    CHECK(sp.lse_null, "eval forward: lse must be NULL");
    CHECK(same(ref.y, got.y, B * S * E) && same(ref.dx, got.dx, B * S * E) && same(ref.yeval, got.yeval, B * S * E),
          "y / dx / eval y through the backend differ from the layer's own");
    CHECK(ref.ngrad == got.ngrad && same(ref.grads, got.grads, ref.ngrad), "parameter gradients differ");
    free(got.grads);

    /* S = 1 in eval mode: the backend is still called (no o = v shortcut) */
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = 1;
    in.seq_q = 1;
    in.x = x;
    float y1[E], y1k[E];
    sp.nfwd = 0;
    CHECK(attn_mha_forward(m, &in, y1) == ATTN_OK && sp.nfwd == 1, "S = 1 through the backend: %d calls", sp.nfwd);

    /* 2. a failing backend */
    sp.fail = ATTN_ERR_UNSUPPORTED;
    float ysent[B * S * E];
    for (int i = 0; i < B * S * E; i++) ysent[i] = 1234.0f;
    in.batch = B;
    in.seq_q = S;
    CHECK_FAILS(attn_mha_forward(m, &in, ysent), ATTN_ERR_UNSUPPORTED, "attention backend");
    CHECK(ysent[0] == 1234.0f && ysent[B * S * E - 1] == 1234.0f, "y written after a failed attention");
    CHECK(attn_mha_set_training(m, 1) == ATTN_OK, "training");
    sp.fail = 0;
    CHECK(attn_mha_forward(m, &in, got.y) == ATTN_OK, "forward");
    sp.fail = ATTN_ERR_SHAPE;
    CHECK_FAILS(attn_mha_backward(m, dy, got.dx, NULL, NULL), ATTN_ERR_SHAPE, "attention backend");
    sp.fail = 0;

    /* 3. refusals */
    CHECK_FAILS(attn_mha_set_attention(m, spy_fwd, NULL, &sp), ATTN_ERR_NULL, "bwd is NULL");
    CHECK_FAILS(attn_mha_set_attention(m, NULL, spy_bwd, &sp), ATTN_ERR_NULL, "fwd is NULL");
    CHECK_FAILS(attn_mha_set_attention(NULL, spy_fwd, spy_bwd, &sp), ATTN_ERR_NULL, "m is NULL");
    in.key = x;
    in.seq_kv = S;
    CHECK_FAILS(attn_mha_forward(m, &in, got.y), ATTN_ERR_UNSUPPORTED, "cross-attention");
    in.key = NULL;
    attn_kvcache *kc = NULL;
    CHECK(attn_kvcache_create(&kc, 1, 16, HKV, E / HQ) == ATTN_OK, "kvcache: %s", attn_last_error());
    CHECK_FAILS(attn_mha_forward_cached(m, kc, x, 1, 1, y1k), ATTN_ERR_UNSUPPORTED, "backend");
    /* a saved forward does not survive a change of attention */
    CHECK(attn_mha_forward(m, &in, got.y) == ATTN_OK, "forward");
    CHECK(attn_mha_set_attention(m, NULL, NULL, NULL) == ATTN_OK, "unset");
    CHECK_FAILS(attn_mha_backward(m, dy, got.dx, NULL, NULL), ATTN_ERR_STATE, "no saved");
    /* unset: the kernels again (cached forward works, the backend is not called) */
    sp.nfwd = sp.nbwd = 0;
    CHECK(attn_mha_set_training(m, 0) == ATTN_OK && attn_mha_forward_cached(m, kc, x, 1, 1, y1k) == ATTN_OK,
          "cached forward after unsetting: %s", attn_last_error());
    step(m, x, dy, &got);
    CHECK(sp.nfwd == 0 && sp.nbwd == 0, "backend called after unsetting");
    CHECK(same(ref.y, got.y, B * S * E) && same(ref.dx, got.dx, B * S * E) && same(ref.grads, got.grads, ref.ngrad),
          "results after unsetting differ");
    free(got.grads);
    free(ref.grads);
    attn_kvcache_free(kc);
    attn_mha_free(m);
    return test_summary("test_mha_backend");
}
