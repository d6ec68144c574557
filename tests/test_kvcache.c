/* SPDX-License-Identifier: MIT */
/* test_kvcache.c — the KV cache and attn_mha_forward_cached.
 *
 * For >= 100 random sequences (random configurations: MHA/GQA/MQA, RoPE
 * NeoX/GPT-J/partial/scaled, QK-norm, biases, sliding windows, softcap, LoRA)
 * the output of
 *   (a) token-by-token decoding and
 *   (b) chunked prefill + decode (random chunk sizes)
 * must equal the full causal forward (attn_mha_forward, which test_mha checks
 * against the float64 reference) within 1e-5 relative:
 *   max |y_cached - y_full| / max |y_full| <= 1e-5.
 * Plus: a batch whose sequences have different lengths (truncate one, keep
 * decoding), capacity errors that leave the cache unchanged, truncate/reset,
 * argument errors. */
#include "attn.h"
#include "mha_ref.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-5;
static double g_worst = 0;


/* y (B, S, E) = full causal forward of x (B, S, E) */
static void full_forward(attn_mha *m, const float *x, int64_t B, int64_t S, float *y) {
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;
    attn_status s = attn_mha_forward(m, &in, y);
    CHECK(s == ATTN_OK, "full forward: %s", attn_last_error());
}

/* copies tokens [t0, t1) of every sequence of x (B, S, E) into out (B, t1 - t0, E) */
static void slice(const float *x, int64_t B, int64_t S, int64_t E, int64_t t0, int64_t t1, float *out) {
    for (int64_t b = 0; b < B; b++)
        memcpy(out + b * (t1 - t0) * E, x + (b * S + t0) * E, sizeof(float) * (size_t)((t1 - t0) * E));
}

static attn_mha_config random_config(tu_rng *r, int *lora) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    static const int64_t heads[][3] = {{4, 4, 8}, {4, 2, 8}, {4, 1, 8}, {2, 1, 16}, {6, 2, 4}, {3, 3, 12}};
    int h = (int)tu_int(r, 0, 5);
    c.num_heads = heads[h][0]; c.num_kv_heads = heads[h][1]; c.head_dim = heads[h][2];
    c.embed_dim = tu_int(r, 0, 1) ? c.num_heads * c.head_dim : 8 * tu_int(r, 2, 5);
    c.causal = 1;
    c.bias_q = (int)tu_int(r, 0, 1); c.bias_k = (int)tu_int(r, 0, 1); c.bias_v = (int)tu_int(r, 0, 1); c.bias_o = (int)tu_int(r, 0, 1);
    int rk = (int)tu_int(r, 0, 5);
    if (rk >= 1) {
        c.rope = rk % 2 ? ATTN_ROPE_NEOX : ATTN_ROPE_GPTJ;
        if (rk == 3) c.rope_dim = c.head_dim / 2 - (c.head_dim / 2) % 2;
        if (rk == 4) { c.rope_scaling = ATTN_ROPE_SCALING_LINEAR; c.rope_factor = 2.5f; }
        if (rk == 5) {
            c.rope_scaling = ATTN_ROPE_SCALING_LLAMA3; c.rope_factor = 8; c.rope_low_freq_factor = 1;
            c.rope_high_freq_factor = 4; c.rope_original_max_pos = 16; c.rope_theta = 50000;
        }
        if (c.rope_dim == 0 && rk == 3) c.rope_dim = 2;
    }
    c.qk_norm = tu_int(r, 0, 2) == 0;
    if (tu_int(r, 0, 4) == 0) c.window_left = tu_int(r, 0, 6);
    if (tu_int(r, 0, 5) == 0) c.softcap = 4.0f;
    *lora = tu_int(r, 0, 5) == 0 ? (int)tu_int(r, 1, 15) : 0;
    return c;
}

static void test_random_sequences(void) {
    tu_rng r = {2024};
    int nseq = 0, ncfg = 0;
    while (nseq < 120) {
        int lora = 0;
        attn_mha_config cfg = random_config(&r, &lora);
        attn_mha *m = NULL;
        attn_status s = attn_mha_create(&m, &cfg);
        CHECK(s == ATTN_OK, "create: %s", attn_last_error());
        if (s != ATTN_OK) continue;
        if (lora) attn_mha_lora_attach(m, lora, 2, 4.0f, 9);
        mha_randomize_params(m, &r, 0.3, 1.0);
        ncfg++;
        const attn_mha_config *rc = attn_mha_get_config(m);
        const int64_t E = rc->embed_dim, B = tu_int(&r, 1, 3), S = tu_int(&r, 1, 40);
        float *x = malloc(sizeof(float) * (size_t)(B * S * E)), *yf = malloc(sizeof(float) * (size_t)(B * S * E));
        float *yc = malloc(sizeof(float) * (size_t)(B * S * E)), *xs = malloc(sizeof(float) * (size_t)(B * S * E));
        float *ys = malloc(sizeof(float) * (size_t)(B * S * E));
        tu_fill(&r, x, B * S * E, 1.0f);
        full_forward(m, x, B, S, yf);
        attn_kvcache *cache = NULL;
        const int64_t cap = S + tu_int(&r, 0, 5);
        s = attn_kvcache_create(&cache, B, cap, rc->num_kv_heads, rc->head_dim);
        CHECK(s == ATTN_OK, "cache create: %s", attn_last_error());
        for (int mode = 0; mode < 2 && cache; mode++) {
            attn_kvcache_reset(cache);
            int64_t t = 0;
            while (t < S) {
                int64_t n = mode == 0 ? 1 : tu_int(&r, 1, S - t);
                slice(x, B, S, E, t, t + n, xs);
                s = attn_mha_forward_cached(m, cache, xs, B, n, ys);
                CHECK(s == ATTN_OK, "forward_cached: %s", attn_last_error());
                if (s != ATTN_OK) break;
                for (int64_t b = 0; b < B; b++)
                    memcpy(yc + (b * S + t) * E, ys + b * n * E, sizeof(float) * (size_t)(n * E));
                t += n;
                for (int64_t b = 0; b < B; b++)
                    CHECK(attn_kvcache_len(cache, b) == t, "len %lld != %lld", (long long)attn_kvcache_len(cache, b), (long long)t);
            }
            double e = tu_rel_err(yc, yf, B * S * E);
            if (e > g_worst) g_worst = e;
            CHECK(e <= TOL, "cfg %d (H %lld/%lld D %lld rope %d/%d qkn %d win %lld lora %d) B %lld S %lld %s: err %.3g", ncfg,
                  (long long)rc->num_heads, (long long)rc->num_kv_heads, (long long)rc->head_dim, rc->rope, rc->rope_scaling,
                  rc->qk_norm, (long long)rc->window_left, lora, (long long)B, (long long)S,
                  mode ? "chunked" : "token-by-token", e);
        }
        nseq += (int)B;
        attn_kvcache_free(cache);
        free(x); free(yf); free(yc); free(xs); free(ys);
        attn_mha_free(m);
    }
    printf("kvcache: %d sequences over %d configurations, worst relative error %.3g\n", nseq, ncfg, g_worst);
}

/* sequences of one batch at different lengths; capacity errors; truncate / reset */
static void test_lengths_and_errors(void) {
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    cfg.embed_dim = 32; cfg.num_heads = 4; cfg.num_kv_heads = 2; cfg.causal = 1; cfg.rope = ATTN_ROPE_NEOX;
    cfg.qk_norm = 1; cfg.bias_q = cfg.bias_v = 1;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { CHECK(0, "create"); return; }
    tu_rng r = {31};
    mha_randomize_params(m, &r, 0.3, 1.0);
    const int64_t E = 32, B = 3, cap = 20, L0 = 8, KEEP1 = 3, NEW = 6;
    /* stream of sequence b: prompt p_b (L0 tokens), then new tokens n_b; sequence 1
     * is truncated to KEEP1 prompt tokens before the new tokens */
    float *prompt = malloc(sizeof(float) * B * L0 * E), *newt = malloc(sizeof(float) * B * NEW * E);
    tu_fill(&r, prompt, B * L0 * E, 1); tu_fill(&r, newt, B * NEW * E, 1);
    float *yp = malloc(sizeof(float) * B * L0 * E), *yn = malloc(sizeof(float) * B * NEW * E), *tmp = malloc(sizeof(float) * B * E);
    attn_kvcache *c = NULL;
    CHECK(attn_kvcache_create(&c, B, cap, 2, 8) == ATTN_OK, "create cache");
    CHECK(attn_kvcache_capacity(c) == cap, "capacity");
    CHECK(attn_mha_forward_cached(m, c, prompt, B, L0, yp) == ATTN_OK, "prefill: %s", attn_last_error());
    CHECK(attn_kvcache_truncate(c, 1, KEEP1 + 1) == ATTN_OK, "truncate 1");
    CHECK(attn_kvcache_truncate(c, 1, KEEP1) == ATTN_OK, "truncate 1 again");
    CHECK(attn_kvcache_len(c, 0) == L0 && attn_kvcache_len(c, 1) == KEEP1 && attn_kvcache_len(c, 2) == L0, "lengths");
    CHECK(attn_kvcache_truncate(c, 1, KEEP1 + 1) == ATTN_ERR_SHAPE, "truncate beyond length");
    CHECK(attn_kvcache_truncate(c, -1, L0) == ATTN_ERR_SHAPE && attn_kvcache_len(c, 0) == L0, "truncate all beyond seq 1");
    CHECK(attn_kvcache_truncate(c, 3, 0) == ATTN_ERR_SHAPE, "truncate b out of range");
    CHECK(attn_kvcache_len(c, 3) == -1, "len out of range");
    for (int64_t t = 0; t < NEW; t++) {
        for (int64_t b = 0; b < B; b++) memcpy(tmp + b * E, newt + (b * NEW + t) * E, sizeof(float) * E);
        CHECK(attn_mha_forward_cached(m, c, tmp, B, 1, yn + t * B * E) == ATTN_OK, "decode: %s", attn_last_error());
    }
    /* reference: each sequence's full stream through the plain causal forward */
    for (int64_t b = 0; b < B; b++) {
        const int64_t lp = b == 1 ? KEEP1 : L0, L = lp + NEW;
        float *xs = malloc(sizeof(float) * L * E), *ys = malloc(sizeof(float) * L * E);
        memcpy(xs, prompt + b * L0 * E, sizeof(float) * lp * E);
        for (int64_t t = 0; t < NEW; t++) memcpy(xs + (lp + t) * E, newt + (b * NEW + t) * E, sizeof(float) * E);
        full_forward(m, xs, 1, L, ys);
        double e = tu_rel_err(yp + b * L0 * E, ys, lp * E);
        CHECK(e <= TOL, "seq %lld prefill err %.3g", (long long)b, e);
        float *yd = malloc(sizeof(float) * NEW * E);
        for (int64_t t = 0; t < NEW; t++) memcpy(yd + t * E, yn + (t * B + b) * E, sizeof(float) * E);
        e = tu_rel_err(yd, ys + lp * E, NEW * E);
        CHECK(e <= TOL, "seq %lld (length %lld) decode err %.3g", (long long)b, (long long)lp, e);
        free(xs); free(ys); free(yd);
    }
    /* capacity: lengths 14, 9, 14 of 20; 7 more tokens overflow sequences 0 and 2 */
    float *big = malloc(sizeof(float) * B * 7 * E), *ybig = malloc(sizeof(float) * B * 7 * E);
    tu_fill(&r, big, B * 7 * E, 1);
    for (int64_t i = 0; i < B * 7 * E; i++) ybig[i] = 12345.0f;
    attn_status s = attn_mha_forward_cached(m, c, big, B, 7, ybig);
    CHECK(s == ATTN_ERR_CAPACITY, "overflow status %d", (int)s);
    CHECK(strstr(attn_last_error(), "capacity") != NULL, "capacity message: %s", attn_last_error());
    CHECK(attn_kvcache_len(c, 0) == L0 + NEW && attn_kvcache_len(c, 1) == KEEP1 + NEW, "lengths unchanged after overflow");
    CHECK(ybig[0] == 12345.0f && ybig[B * 7 * E - 1] == 12345.0f, "y written on capacity error");
    /* the cache still works: 6 more tokens fit exactly */
    CHECK(attn_mha_forward_cached(m, c, big, B, 6, ybig) == ATTN_OK, "fill to capacity: %s", attn_last_error());
    CHECK(attn_kvcache_len(c, 0) == cap, "full");
    CHECK(attn_mha_forward_cached(m, c, big, B, 1, ybig) == ATTN_ERR_CAPACITY, "one more");
    CHECK(attn_mha_forward_cached(m, c, big, B, 0, ybig) == ATTN_OK, "zero tokens");
    /* reset: decoding restarts at position 0 and matches a fresh prefill */
    CHECK(attn_kvcache_reset(c) == ATTN_OK && attn_kvcache_len(c, 2) == 0, "reset");
    float *yr = malloc(sizeof(float) * B * L0 * E);
    CHECK(attn_mha_forward_cached(m, c, prompt, B, L0, yr) == ATTN_OK, "prefill after reset");
    CHECK(memcmp(yr, yp, sizeof(float) * B * L0 * E) == 0, "prefill after reset differs from the first");
    free(yr);
    /* truncate all then re-decode the same tokens: same outputs as the first time */
    CHECK(attn_kvcache_truncate(c, -1, 5) == ATTN_OK, "truncate all");
    float *x2 = malloc(sizeof(float) * B * 3 * E), *y2 = malloc(sizeof(float) * B * 3 * E);
    slice(prompt, B, L0, E, 5, 8, x2);
    CHECK(attn_mha_forward_cached(m, c, x2, B, 3, y2) == ATTN_OK, "re-decode");
    for (int64_t b = 0; b < B; b++) {
        double e = tu_rel_err(y2 + b * 3 * E, yp + (b * L0 + 5) * E, 3 * E);
        CHECK(e <= TOL, "after truncate seq %lld err %.3g", (long long)b, e);
    }
    /* argument errors */
    attn_kvcache *bad = NULL;
    CHECK(attn_kvcache_create(&bad, 0, 4, 2, 8) == ATTN_ERR_SHAPE && !bad, "batch 0");
    CHECK(attn_kvcache_create(&bad, 1, 0, 2, 8) == ATTN_ERR_SHAPE, "capacity 0");
    CHECK(attn_kvcache_create(&bad, 1, 4, 0, 8) == ATTN_ERR_SHAPE, "heads 0");
    CHECK(attn_kvcache_create(&bad, 1, 4, 2, 257) == ATTN_ERR_SHAPE, "dim 257");
    CHECK(attn_kvcache_create(&bad, 1, 4, 4, 8) == ATTN_OK, "create other heads");
    CHECK(attn_mha_forward_cached(m, bad, prompt, 1, 1, yn) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "heads"),
          "head mismatch: %s", attn_last_error());
    CHECK(attn_mha_forward_cached(m, c, prompt, 2, 1, yn) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "batch"), "batch mismatch");
    CHECK(attn_mha_forward_cached(m, c, NULL, B, 1, yn) == ATTN_ERR_NULL, "x NULL");
    attn_kvcache_free(bad);
    attn_kvcache_free(NULL);
    attn_kvcache_free(c);
    free(prompt); free(newt); free(yp); free(yn); free(tmp); free(big); free(ybig); free(x2); free(y2);
    attn_mha_free(m);

    /* cross-attention layers have no cached path */
    attn_mha_config_init(&cfg);
    cfg.embed_dim = 16; cfg.num_heads = 2; cfg.kdim = 8;
    if (attn_mha_create(&m, &cfg) == ATTN_OK) {
        attn_kvcache_create(&c, 1, 4, 2, 8);
        float xx[16] = {0}, yy[16];
        CHECK(attn_mha_forward_cached(m, c, xx, 1, 1, yy) == ATTN_ERR_UNSUPPORTED, "cross cached");
        attn_kvcache_free(c);
        attn_mha_free(m);
    }
}

int main(void) {
    test_random_sequences();
    test_lengths_and_errors();
    return test_summary("test_kvcache");
}
