/* SPDX-License-Identifier: MIT */
/* test_hf_fixtures.c — the library on transformers' own checkpoints.
 *
 * Every tests/fixtures/hf/<arch>/ (scripts/gen_fixtures.py) holds a tiny
 * 2-layer random-weight model saved by transformers (config.json and bf16
 * model.safetensors, no hand edits), each layer's attention input x<i>.npy and
 * output y<i>.npy on a left-padded batch (mask.npy: HF attention_mask), and
 * grads0.safetensors: layer 0 run again on a leaf input with an upstream dy
 * (zero on padded rows), its dx and the gradient of every parameter under the
 * checkpoint's names. For each architecture this test
 *   1. reads config.json with attn_hf_config_read_ex for the layer (its
 *      window / rope), loads the layer with the naming and prefix the reader
 *      reports (fused weights split at load);
 *   2. forward on the padded batch: y on the non-padded rows within 1e-5 of
 *      transformers (padded rows: no model uses them; a row with no visible
 *      key is 0 here, the mean of the values in transformers);
 *   3. training forward + backward with dy: dx and every parameter gradient
 *      within 1e-5 (the stored gradients are loaded into a second layer with
 *      the same attn_mha_load, so fused gradients are split alike);
 *   4. decoders: prefill + token-by-token attn_mha_forward_cached of the
 *      unpadded sequence equals transformers' full forward within 1e-5
 *      (not for dynamic / longrope RoPE: their frequencies depend on the
 *      length of each call, by transformers' definition).
 * rope_<type>/ are Llama / Phi-3 checkpoints with that RoPE scaling; S = 8
 * exceeds their original length (dynamic grows, longrope takes long factors).
 * err = max|a - b| / max(max|b|, 1), as tests/test_fixtures.c. */
#include "attn.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_test.h"

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif
#define HF_DIR ATTN_SOURCE_DIR "/tests/fixtures/hf"

static const double TOL = 1e-5;
static const char *const ARCHS[] = {"qwen2", "qwen3", "mistral", "gemma2", "gemma3", "stablelm",
                                    "phi3",  "phi",   "gpt_neox", "gpt2",  "bert",
                                    "rope_linear", "rope_dynamic", "rope_yarn", "rope_longrope",
                                    "mixtral", "roberta", "gemma3_mm"};

/* max|a - b| / max(max|b|, 1) over the rows (of width w) with keep[row] != 0 (keep NULL: all) */
static double rel_err_rows(const float *a, const float *b, int64_t n, int64_t w, const float *keep) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        if (keep && keep[i / w] == 0.0f) continue;
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d == d)) return INFINITY;
        if (d > md) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb > 1 ? mb : 1);
}

static int load_npy(const char *arch, const char *name, attn_npy *a) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", HF_DIR, arch, name);
    memset(a, 0, sizeof *a);
    attn_status s = attn_npy_read(path, a);
    CHECK(s == ATTN_OK, "%s: %s: %s", arch, name, attn_last_error());
    return s == ATTN_OK;
}

/* the layer `layer` of arch, loaded from the checkpoint */
static attn_mha *make_layer(const char *arch, int64_t layer, attn_hf_info *info) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", HF_DIR, arch);
    attn_hf_opts o;
    attn_hf_opts_init(&o);
    o.layer = layer;
    attn_mha_config cfg;
    attn_status s = hf_read_ex(path, &o, &cfg, info);
    CHECK(s == ATTN_OK, "%s: config: %s", arch, attn_last_error());
    if (s != ATTN_OK) return NULL;
    attn_mha *m = NULL;
    s = attn_mha_create(&m, &cfg);
    CHECK(s == ATTN_OK, "%s: create: %s", arch, attn_last_error());
    if (s != ATTN_OK) return NULL;
    attn_st *st = NULL;
    snprintf(path, sizeof path, "%s/%s/model.safetensors", HF_DIR, arch);
    s = attn_st_open(&st, path);
    if (s == ATTN_OK) s = attn_mha_load(m, st, info->prefix, (attn_naming)info->naming);
    CHECK(s == ATTN_OK, "%s: load %s: %s", arch, info->prefix, attn_last_error());
    attn_st_free(st);
    if (s != ATTN_OK) {
        attn_mha_free(m);
        return NULL;
    }
    return m;
}

/* padded batch mask.npy (1 = token) -> key_padding_mask (1 = padded) */
static uint8_t *kpm_of(const attn_npy *mask) {
    uint8_t *k = (uint8_t *)malloc((size_t)mask->numel);
    for (int64_t i = 0; k && i < mask->numel; i++) k[i] = mask->data[i] == 0.0f;
    return k;
}

static void check_forward(const char *arch, int64_t layer, const attn_npy *mask) {
    attn_hf_info info;
    attn_mha *m = make_layer(arch, layer, &info);
    attn_npy x, y;
    char nx[16], ny[16];
    snprintf(nx, sizeof nx, "x%lld.npy", (long long)layer);
    snprintf(ny, sizeof ny, "y%lld.npy", (long long)layer);
    if (!m || !load_npy(arch, nx, &x) || !load_npy(arch, ny, &y)) {
        attn_mha_free(m);
        return;
    }
    uint8_t *kpm = kpm_of(mask);
    float *out = (float *)calloc((size_t)x.numel, sizeof(float));
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = x.shape[0];
    in.seq_q = x.shape[1];
    in.x = x.data;
    in.key_padding_mask = kpm;
    attn_status s = attn_mha_forward(m, &in, out);
    CHECK(s == ATTN_OK, "%s layer %lld: forward: %s", arch, (long long)layer, attn_last_error());
    double e = rel_err_rows(out, y.data, y.numel, x.shape[2], mask->data);
    printf("%-10s layer %lld %-36s forward %.2e%s\n", arch, (long long)layer, info.prefix, e, e <= TOL ? "" : "  FAIL");
    CHECK(s == ATTN_OK && e <= TOL, "%s layer %lld: y err %.3e", arch, (long long)layer, e);
    free(out);
    free(kpm);
    attn_npy_free(&x);
    attn_npy_free(&y);
    attn_mha_free(m);
}

/* config_v4.json (transformers 4's spelling) reads to the same layer as config.json */
static void check_v4(const char *arch) {
    char p4[512], p5[512];
    snprintf(p4, sizeof p4, "%s/%s/config_v4.json", HF_DIR, arch);
    snprintf(p5, sizeof p5, "%s/%s/config.json", HF_DIR, arch);
    FILE *f = fopen(p4, "rb");
    if (!f) return;
    fclose(f);
    for (int64_t l = 0; l < 2; l++) {
        attn_hf_opts o;
        attn_hf_opts_init(&o);
        o.layer = l;
        attn_mha_config a, b;
        attn_status s4 = hf_read_ex(p4, &o, &a, NULL), s5 = hf_read_ex(p5, &o, &b, NULL);
        CHECK(s4 == ATTN_OK && s5 == ATTN_OK, "%s layer %lld: 4.x / 5.x config: %s", arch, (long long)l, attn_last_error());
        CHECK(s4 != ATTN_OK || s5 != ATTN_OK || memcmp(&a, &b, sizeof a) == 0,
              "%s layer %lld: the 4.x config reads differently from the 5.x one", arch, (long long)l);
    }
    printf("%-10s 4.x config_v4.json reads as config.json (both layers)\n", arch);
}

/* step 3: gradients of layer 0 */
static void check_grads(const char *arch, const attn_npy *mask) {
    attn_hf_info info;
    attn_mha *m = make_layer(arch, 0, &info), *g = make_layer(arch, 0, &info);
    char path[512];
    snprintf(path, sizeof path, "%s/%s/grads0.safetensors", HF_DIR, arch);
    attn_st *st = NULL;
    attn_status s = attn_st_open(&st, path);
    CHECK(s == ATTN_OK, "%s: %s", arch, attn_last_error());
    if (!m || !g || s != ATTN_OK) goto out;
    /* the gradients, through the same name mapping as the weights */
    const char *gp = attn_st_metadata(st, "prefix"); /* the module's name in memory (may differ from the file's) */
    s = attn_mha_load(g, st, gp ? gp : info.prefix, (attn_naming)info.naming);
    CHECK(s == ATTN_OK, "%s: load gradients: %s", arch, attn_last_error());
    attn_tensor_info ti;
    CHECK(attn_st_find(st, "x", &ti) == ATTN_OK && ti.ndim == 3, "%s: grads0 x", arch);
    const int64_t B = ti.shape[0], S = ti.shape[1], E = ti.shape[2], n = B * S * E;
    float *x = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4), *dxr = malloc((size_t)n * 4),
          *yr = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *dx = malloc((size_t)n * 4);
    uint8_t *kpm = kpm_of(mask);
    const int64_t sh[3] = {B, S, E};
    if (s == ATTN_OK) s = attn_st_read_f32(st, "x", x, n, 3, sh);
    if (s == ATTN_OK) s = attn_st_read_f32(st, "dy", dy, n, 3, sh);
    if (s == ATTN_OK) s = attn_st_read_f32(st, "dx", dxr, n, 3, sh);
    if (s == ATTN_OK) s = attn_st_read_f32(st, "y", yr, n, 3, sh);
    CHECK(s == ATTN_OK, "%s: grads0 tensors: %s", arch, attn_last_error());
    if (s == ATTN_OK) s = attn_mha_set_training(m, 1);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B;
    in.seq_q = S;
    in.x = x;
    in.key_padding_mask = kpm;
    if (s == ATTN_OK) s = attn_mha_zero_grad(m);
    if (s == ATTN_OK) s = attn_mha_forward(m, &in, y);
    if (s == ATTN_OK) s = attn_mha_backward(m, dy, dx, NULL, NULL);
    CHECK(s == ATTN_OK, "%s: training forward/backward: %s", arch, attn_last_error());
    if (s == ATTN_OK) {
        double ey = rel_err_rows(y, yr, n, E, mask->data), ex = rel_err_rows(dx, dxr, n, E, NULL), worst = ex;
        const char *wn = "dx";
        CHECK(ey <= TOL, "%s: training y err %.3e", arch, ey);
        int64_t np = attn_mha_num_params(m);
        for (int64_t i = 0; i < np; i++) {
            attn_param p, q;
            attn_mha_param(m, i, &p);
            if (attn_mha_find_param(g, p.name, &q) != ATTN_OK) {
                CHECK(0, "%s: no reference gradient for %s", arch, p.name);
                continue;
            }
            double e = rel_err_rows(p.grad, q.data, p.numel, 1, NULL);
            CHECK(e <= TOL, "%s: grad %s err %.3e", arch, p.name, e);
            if (e > worst) worst = e, wn = p.name;
        }
        printf("%-10s layer 0 %-36s grads   %.2e (worst: %s, %lld parameters + dx)\n", arch, info.prefix, worst, wn,
               (long long)np);
        CHECK(ex <= TOL, "%s: dx err %.3e", arch, ex);
    }
    free(x), free(dy), free(dxr), free(yr), free(y), free(dx), free(kpm);
out:
    attn_st_free(st);
    attn_mha_free(m);
    attn_mha_free(g);
}

/* step 4: cached decode of batch 0 (unpadded) == transformers' full forward */
static void check_cached(const char *arch, int64_t layer) {
    attn_hf_info info;
    attn_mha *m = make_layer(arch, layer, &info);
    attn_npy x, y;
    char nx[16], ny[16];
    snprintf(nx, sizeof nx, "x%lld.npy", (long long)layer);
    snprintf(ny, sizeof ny, "y%lld.npy", (long long)layer);
    if (!m || !load_npy(arch, nx, &x) || !load_npy(arch, ny, &y)) {
        attn_mha_free(m);
        return;
    }
    const attn_mha_config *c = attn_mha_get_config(m);
    const int64_t S = x.shape[1], E = x.shape[2], pre = 3;
    attn_kvcache *kv = NULL;
    attn_status s = attn_kvcache_create(&kv, 1, S, c->num_kv_heads, c->head_dim);
    float *out = (float *)calloc((size_t)(S * E), sizeof(float));
    if (s == ATTN_OK) s = attn_mha_forward_cached(m, kv, x.data, 1, pre, out);
    for (int64_t t = pre; s == ATTN_OK && t < S; t++) s = attn_mha_forward_cached(m, kv, x.data + t * E, 1, 1, out + t * E);
    CHECK(s == ATTN_OK, "%s layer %lld: cached: %s", arch, (long long)layer, attn_last_error());
    double e = rel_err_rows(out, y.data, S * E, E, NULL); /* batch 0 of y */
    printf("%-10s layer %lld %-36s cached  %.2e (prefill %lld + %lld decode steps)\n", arch, (long long)layer,
           info.prefix, e, (long long)pre, (long long)(S - pre));
    CHECK(s == ATTN_OK && e <= TOL, "%s layer %lld: cached decode err %.3e", arch, (long long)layer, e);
    free(out);
    attn_kvcache_free(kv);
    attn_npy_free(&x);
    attn_npy_free(&y);
    attn_mha_free(m);
}

/* the mapped namings refuse what they cannot split, naming the tensor or the flag */
static void check_mapped_refusals(void) {
    char path[512];
    attn_st *st = NULL;
    attn_hf_info info;
    /* Phi-3's fused file read with HF names: q_proj is missing */
    attn_mha *m = make_layer("phi3", 0, &info);
    snprintf(path, sizeof path, "%s/phi3/model.safetensors", HF_DIR);
    CHECK(m && attn_st_open(&st, path) == ATTN_OK, "phi3 open");
    attn_status s = attn_mha_load(m, st, info.prefix, ATTN_NAMING_HF);
    CHECK(s == ATTN_ERR_NOT_FOUND && strstr(attn_last_error(), "q_proj.weight"), "phi3 as HF names: %s", attn_last_error());
    /* a config with a bias but a file without one */
    attn_mha_config c = *attn_mha_get_config(m);
    c.bias_q = c.bias_k = c.bias_v = 1;
    attn_mha *mb = NULL;
    CHECK(attn_mha_create(&mb, &c) == ATTN_OK, "phi3 biased");
    s = attn_mha_load(mb, st, info.prefix, ATTN_NAMING_FUSED_QKV);
    CHECK(s == ATTN_ERR_NOT_FOUND && strstr(attn_last_error(), "qkv_proj.bias"), "phi3 missing fused bias: %s",
          attn_last_error());
    c.bias_k = 0;
    attn_mha_free(mb);
    mb = NULL;
    CHECK(attn_mha_create(&mb, &c) == ATTN_OK, "phi3 q/v biased");
    s = attn_mha_load(mb, st, info.prefix, ATTN_NAMING_FUSED_QKV);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "set all of bias_q/k/v"), "partial fused bias: %s",
          attn_last_error());
    attn_mha_free(mb);
    attn_mha_free(m);
    attn_st_free(st);
    st = NULL;
    /* GPT-NeoX's per-head fused tensor cannot feed a GQA layer; a bias the layer lacks is refused */
    m = make_layer("gpt_neox", 0, &info);
    snprintf(path, sizeof path, "%s/gpt_neox/model.safetensors", HF_DIR);
    CHECK(m && attn_st_open(&st, path) == ATTN_OK, "neox open");
    c = *attn_mha_get_config(m);
    c.num_kv_heads = 2;
    mb = NULL;
    CHECK(attn_mha_create(&mb, &c) == ATTN_OK, "neox gqa");
    s = attn_mha_load(mb, st, info.prefix, ATTN_NAMING_NEOX);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "needs num_kv_heads = num_heads"), "neox gqa: %s",
          attn_last_error());
    attn_mha_free(mb);
    c = *attn_mha_get_config(m);
    c.bias_q = c.bias_k = c.bias_v = 0;
    mb = NULL;
    CHECK(attn_mha_create(&mb, &c) == ATTN_OK, "neox unbiased");
    s = attn_mha_load(mb, st, info.prefix, ATTN_NAMING_NEOX);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "query_key_value.bias") &&
          strstr(attn_last_error(), "bias_q/k/v = 0"), "neox extra bias: %s", attn_last_error());
    attn_mha_free(mb);
    c = *attn_mha_get_config(m);
    c.bias_o = 0;
    mb = NULL;
    CHECK(attn_mha_create(&mb, &c) == ATTN_OK, "neox no o bias");
    s = attn_mha_load(mb, st, info.prefix, ATTN_NAMING_NEOX);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "dense.bias") && strstr(attn_last_error(), "bias_o = 0"),
          "neox extra o bias: %s", attn_last_error());
    attn_mha_free(mb);
    attn_mha_free(m);
    attn_st_free(st);
    st = NULL;
    /* GPT-2: a Conv1D tensor of the wrong shape names both shapes */
    m = make_layer("gpt2", 0, &info);
    snprintf(path, sizeof path, "%s/gpt2/model.safetensors", HF_DIR);
    CHECK(m && attn_st_open(&st, path) == ATTN_OK, "gpt2 open");
    s = attn_mha_load(m, st, "transformer.h.1.attn", ATTN_NAMING_BERT);
    CHECK(s == ATTN_ERR_NOT_FOUND && strstr(attn_last_error(), "self.query.weight"), "gpt2 as BERT: %s", attn_last_error());
    c = *attn_mha_get_config(m);
    c.qk_norm = 1;
    mb = NULL;
    CHECK(attn_mha_create(&mb, &c) == ATTN_OK, "gpt2 + qk_norm");
    s = attn_mha_load(mb, st, info.prefix, ATTN_NAMING_GPT2);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "no q_norm / k_norm"), "mapped + qk_norm: %s", attn_last_error());
    attn_mha_free(mb);
    c = *attn_mha_get_config(m);
    c.embed_dim = 16;
    c.head_dim = 4;
    c.kdim = c.vdim = 0;
    c.qk_norm = 0;
    mb = NULL;
    CHECK(attn_mha_create(&mb, &c) == ATTN_OK, "gpt2 small");
    s = attn_mha_load(mb, st, info.prefix, ATTN_NAMING_GPT2);
    CHECK(s == ATTN_ERR_SHAPE && strstr(attn_last_error(), "c_attn.weight"), "gpt2 shape: %d %s", (int)s, attn_last_error());
    attn_mha_free(mb);
    attn_mha_free(m);
    attn_st_free(st);
}

int main(void) {
    float a[2] = {1, 2}, b[2] = {1, 2.001f}, keep[2] = {1, 0};
    CHECK(rel_err_rows(a, b, 2, 1, NULL) > TOL && rel_err_rows(a, b, 2, 1, keep) == 0.0, "rel_err_rows self-test");
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
        const char *arch = ARCHS[i];
        attn_npy mask;
        if (!load_npy(arch, "mask.npy", &mask)) continue;
        for (int64_t l = 0; l < 2; l++) check_forward(arch, l, &mask);
        check_grads(arch, &mask);
        check_v4(arch);
        /* dynamic / longrope choose their frequencies from a call's length: a prefill of 3 tokens
           rotates its keys with the short-context frequencies, the full forward with the long ones
           (transformers' own cache does the same), so the two differ by design */
        if (strcmp(arch, "bert") != 0 && strcmp(arch, "roberta") != 0 && strcmp(arch, "rope_dynamic") != 0 && strcmp(arch, "rope_longrope") != 0)
            for (int64_t l = 0; l < 2; l++) check_cached(arch, l);
        attn_npy_free(&mask);
    }
    { /* S = 1024 (Qwen2, E = 8; layer 1 slides with a window of 200) */
        attn_npy mask;
        if (load_npy("qwen2_long", "mask.npy", &mask)) {
            for (int64_t l = 0; l < 2; l++) check_forward("qwen2_long", l, &mask);
            attn_npy_free(&mask);
        }
    }
    check_mapped_refusals();
    return test_summary("test_hf_fixtures");
}
