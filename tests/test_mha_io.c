/* SPDX-License-Identifier: MIT */
/* test_mha_io.c — attn_mha_save / attn_mha_load (safetensors):
 *   - save -> load round trip (HF naming, with a prefix and without), bitwise,
 *     including LoRA adapters; same forward output afterwards;
 *   - a base checkpoint loads into an adapted layer (adapters kept);
 *   - ATTN_NAMING_TORCH import: in_proj_weight (3E, E) split into q/k/v,
 *     in_proj_bias, separate q/k/v_proj_weight when kdim/vdim != E,
 *     out_proj.weight / out_proj.bias;
 *   - errors: missing tensor (named, with its expected shape), mis-shaped
 *     tensor (named, expected and actual shape), tensors the layer cannot
 *     hold, torch naming on a GQA layer, load while merged — and a failed
 *     load leaves the layer unchanged. */
#include "attn.h"
#include "mha_ref.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[256];

static attn_mha *make(int64_t E, int64_t H, int64_t Hkv, int64_t D, int bias, int qkn, int64_t kdim, int64_t vdim) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = E; c.num_heads = H; c.num_kv_heads = Hkv; c.head_dim = D; c.kdim = kdim; c.vdim = vdim;
    c.bias_q = c.bias_k = c.bias_v = c.bias_o = bias; c.qk_norm = qkn; c.rope = ATTN_ROPE_NEOX; c.causal = 1;
    if (kdim) c.rope = 0;
    attn_mha *m = NULL;
    CHECK(attn_mha_create(&m, &c) == ATTN_OK, "create: %s", attn_last_error());
    return m;
}

/* saves m with prefix to g_path and reopens it */
static attn_st *save_open(const attn_mha *m, const char *prefix) {
    attn_st_writer *w = NULL;
    CHECK(attn_st_writer_create(&w) == ATTN_OK, "writer");
    attn_status s = attn_mha_save(m, w, prefix);
    CHECK(s == ATTN_OK, "save: %s", attn_last_error());
    s = attn_st_writer_save(w, g_path);
    CHECK(s == ATTN_OK, "writer save: %s", attn_last_error());
    attn_st_writer_free(w);
    attn_st *st = NULL;
    s = attn_st_open(&st, g_path);
    CHECK(s == ATTN_OK, "open: %s", attn_last_error());
    return st;
}

static int params_equal(attn_mha *a, attn_mha *b) {
    if (attn_mha_num_params(a) != attn_mha_num_params(b)) return 0;
    for (int64_t i = 0; i < attn_mha_num_params(a); i++) {
        attn_param p, q;
        attn_mha_param(a, i, &p);
        attn_mha_param(b, i, &q);
        if (strcmp(p.name, q.name) || p.numel != q.numel || memcmp(p.data, q.data, sizeof(float) * (size_t)p.numel)) return 0;
    }
    return 1;
}

static void test_round_trip(void) {
    const char *prefixes[3] = {"model.layers.3.self_attn", "", NULL};
    for (int k = 0; k < 3; k++) {
        attn_mha *a = make(32, 4, 2, 12, 1, 1, 0, 0), *b = make(32, 4, 2, 12, 1, 1, 0, 0);
        if (!a || !b) return;
        attn_mha_lora_attach(a, ATTN_PROJ_Q | ATTN_PROJ_O, 3, 6, 1);
        attn_mha_lora_attach(b, ATTN_PROJ_Q | ATTN_PROJ_O, 3, 6, 2);
        tu_rng r = {100 + (uint64_t)k};
        mha_randomize_params(a, &r, 0.3, 1.0);
        CHECK(!params_equal(a, b), "layers equal before load");
        attn_st *st = save_open(a, prefixes[k]);
        if (!st) return;
        CHECK(attn_st_count(st) == 14, "saved %lld tensors", (long long)attn_st_count(st));
        attn_tensor_info ti;
        char nm[128];
        snprintf(nm, sizeof nm, "%s%sq_proj.weight", prefixes[k] ? prefixes[k] : "", prefixes[k] && *prefixes[k] ? "." : "");
        CHECK(attn_st_find(st, nm, &ti) == ATTN_OK && ti.ndim == 2 && ti.shape[0] == 48 && ti.shape[1] == 32, "%s saved", nm);
        attn_status s = attn_mha_load(b, st, prefixes[k], ATTN_NAMING_HF);
        CHECK(s == ATTN_OK, "load: %s", attn_last_error());
        CHECK(params_equal(a, b), "round trip (prefix '%s') not bitwise", prefixes[k] ? prefixes[k] : "(null)");
        const int64_t n = 2 * 5 * 32;
        float *x = malloc(sizeof(float) * n), *ya = malloc(sizeof(float) * n), *yb = malloc(sizeof(float) * n);
        tu_fill(&r, x, n, 1);
        attn_mha_input in;
        attn_mha_input_init(&in);
        in.batch = 2; in.seq_q = 5; in.x = x;
        attn_mha_forward(a, &in, ya);
        attn_mha_forward(b, &in, yb);
        CHECK(memcmp(ya, yb, sizeof(float) * n) == 0, "outputs differ after the round trip");
        free(x); free(ya); free(yb);
        attn_st_free(st);
        attn_mha_free(a);
        attn_mha_free(b);
    }
    /* base checkpoint into an adapted layer: adapters keep their values */
    attn_mha *a = make(16, 2, 0, 0, 0, 0, 0, 0), *b = make(16, 2, 0, 0, 0, 0, 0, 0);
    tu_rng r = {7};
    mha_randomize_params(a, &r, 0.3, 1.0);
    attn_st *st = save_open(a, "base");
    attn_mha_lora_attach(b, ATTN_PROJ_V, 2, 2, 3);
    attn_param la, la2;
    attn_mha_find_param(b, "v_proj.lora_A.weight", &la);
    float keep = la.data[3];
    CHECK(attn_mha_load(b, st, "base", ATTN_NAMING_HF) == ATTN_OK, "base into adapted: %s", attn_last_error());
    attn_mha_find_param(b, "v_proj.lora_A.weight", &la2);
    CHECK(la2.data[3] == keep, "adapter changed by a base load");
    attn_param wa, wb;
    attn_mha_find_param(a, "k_proj.weight", &wa);
    attn_mha_find_param(b, "k_proj.weight", &wb);
    CHECK(memcmp(wa.data, wb.data, sizeof(float) * (size_t)wa.numel) == 0, "base weights not loaded");
    /* merged save = an export of the merged weights, without adapters */
    attn_param lb;
    attn_mha_find_param(b, "v_proj.lora_B.weight", &lb);
    for (int64_t j = 0; j < lb.numel; j++) lb.data[j] = 0.5f;
    CHECK(attn_mha_lora_merge(b) == ATTN_OK, "merge");
    CHECK(attn_mha_load(b, st, "base", ATTN_NAMING_HF) == ATTN_ERR_STATE, "load while merged");
    attn_st_free(st);
    st = save_open(b, NULL);
    CHECK(attn_st_count(st) == 4, "merged export has %lld tensors", (long long)attn_st_count(st));
    attn_mha *c = make(16, 2, 0, 0, 0, 0, 0, 0);
    CHECK(attn_mha_load(c, st, NULL, ATTN_NAMING_HF) == ATTN_OK, "load merged export");
    attn_param wc, wbv;
    attn_mha_find_param(c, "v_proj.weight", &wc);
    attn_mha_find_param(b, "v_proj.weight", &wbv);
    CHECK(memcmp(wc.data, wbv.data, sizeof(float) * (size_t)wc.numel) == 0, "merged weights exported");
    attn_st_free(st);
    attn_mha_free(a); attn_mha_free(b); attn_mha_free(c);
}

static void add(attn_st_writer *w, const char *name, const float *d, int ndim, int64_t d0, int64_t d1) {
    int64_t shp[2] = {d0, d1};
    attn_status s = attn_st_writer_add_f32(w, name, d, ndim, shp);
    CHECK(s == ATTN_OK, "add %s: %s", name, attn_last_error());
}

static attn_st *write_open(attn_st_writer *w) {
    CHECK(attn_st_writer_save(w, g_path) == ATTN_OK, "save: %s", attn_last_error());
    attn_st_writer_free(w);
    attn_st *st = NULL;
    CHECK(attn_st_open(&st, g_path) == ATTN_OK, "open: %s", attn_last_error());
    return st;
}

static void test_torch(void) {
    const int64_t E = 16;
    tu_rng r = {3};
    float in_w[3 * 16 * 16], in_b[3 * 16], out_w[16 * 16], out_b[16];
    tu_fill(&r, in_w, 3 * E * E, 1); tu_fill(&r, in_b, 3 * E, 1); tu_fill(&r, out_w, E * E, 1); tu_fill(&r, out_b, E, 1);
    attn_st_writer *w = NULL;
    attn_st_writer_create(&w);
    add(w, "attn.in_proj_weight", in_w, 2, 3 * E, E);
    add(w, "attn.in_proj_bias", in_b, 1, 3 * E, 0);
    add(w, "attn.out_proj.weight", out_w, 2, E, E);
    add(w, "attn.out_proj.bias", out_b, 1, E, 0);
    attn_st *st = write_open(w);
    attn_mha *m = make(E, 4, 0, 0, 1, 0, 0, 0);
    CHECK(attn_mha_load(m, st, "attn", ATTN_NAMING_TORCH) == ATTN_OK, "torch load: %s", attn_last_error());
    const char *wn[3] = {"q_proj.weight", "k_proj.weight", "v_proj.weight"}, *bn[3] = {"q_proj.bias", "k_proj.bias", "v_proj.bias"};
    for (int p = 0; p < 3; p++) {
        attn_param a, b;
        attn_mha_find_param(m, wn[p], &a);
        attn_mha_find_param(m, bn[p], &b);
        CHECK(memcmp(a.data, in_w + p * E * E, sizeof(float) * E * E) == 0, "%s = in_proj_weight[%d]", wn[p], p);
        CHECK(memcmp(b.data, in_b + p * E, sizeof(float) * E) == 0, "%s = in_proj_bias[%d]", bn[p], p);
    }
    attn_param o, ob;
    attn_mha_find_param(m, "o_proj.weight", &o);
    attn_mha_find_param(m, "o_proj.bias", &ob);
    CHECK(memcmp(o.data, out_w, sizeof out_w) == 0 && memcmp(ob.data, out_b, sizeof out_b) == 0, "out_proj");
    attn_mha_free(m);
    /* a layer without biases cannot take nonzero in_proj_bias */
    m = make(E, 4, 0, 0, 0, 0, 0, 0);
    attn_status s = attn_mha_load(m, st, "attn", ATTN_NAMING_TORCH);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "in_proj_bias"), "bias into bias-free layer: %d %s", (int)s,
          attn_last_error());
    attn_mha_free(m);
    /* GQA cannot be nn.MultiheadAttention */
    m = make(E, 4, 2, 0, 1, 0, 0, 0);
    CHECK(attn_mha_load(m, st, "attn", ATTN_NAMING_TORCH) == ATTN_ERR_CONFIG, "torch naming on GQA");
    attn_mha_free(m);
    attn_st_free(st);

    /* kdim / vdim != E: separate projection weights, no biases in the file */
    float qw[16 * 16], kw[16 * 12], vw[16 * 10];
    tu_fill(&r, qw, E * E, 1); tu_fill(&r, kw, E * 12, 1); tu_fill(&r, vw, E * 10, 1);
    attn_st_writer_create(&w);
    add(w, "q_proj_weight", qw, 2, E, E);
    add(w, "k_proj_weight", kw, 2, E, 12);
    add(w, "v_proj_weight", vw, 2, E, 10);
    add(w, "out_proj.weight", out_w, 2, E, E);
    st = write_open(w);
    m = make(E, 4, 0, 0, 0, 0, 12, 10);
    CHECK(attn_mha_load(m, st, NULL, ATTN_NAMING_TORCH) == ATTN_OK, "torch kdim load: %s", attn_last_error());
    attn_param k, v;
    attn_mha_find_param(m, "k_proj.weight", &k);
    attn_mha_find_param(m, "v_proj.weight", &v);
    CHECK(memcmp(k.data, kw, sizeof kw) == 0 && memcmp(v.data, vw, sizeof vw) == 0, "k/v_proj_weight");
    attn_mha_free(m);
    /* the same layer with biases: in_proj_bias is missing */
    m = make(E, 4, 0, 0, 1, 0, 12, 10);
    s = attn_mha_load(m, st, NULL, ATTN_NAMING_TORCH);
    CHECK(s == ATTN_ERR_NOT_FOUND && strstr(attn_last_error(), "in_proj_bias") && strstr(attn_last_error(), "[48]"),
          "missing in_proj_bias: %d %s", (int)s, attn_last_error());
    attn_mha_free(m);
    attn_st_free(st);
}

static void test_errors(void) {
    attn_mha *a = make(32, 4, 2, 12, 1, 1, 0, 0);
    tu_rng r = {9};
    mha_randomize_params(a, &r, 0.3, 1.0);
    /* a file missing k_norm.weight and with a mis-shaped v_proj.weight */
    attn_st_writer *w = NULL;
    attn_st_writer_create(&w);
    for (int64_t i = 0; i < attn_mha_num_params(a); i++) {
        attn_param p;
        attn_mha_param(a, i, &p);
        if (!strcmp(p.name, "k_norm.weight")) continue;
        add(w, p.name, p.data, p.ndim, p.shape[0], p.shape[1]);
    }
    attn_st *st = write_open(w);
    attn_mha *b = make(32, 4, 2, 12, 1, 1, 0, 0);
    attn_mha_init_weights(b, ATTN_INIT_NORMAL, 1);
    attn_mha *b0 = make(32, 4, 2, 12, 1, 1, 0, 0);
    attn_mha_init_weights(b0, ATTN_INIT_NORMAL, 1);
    attn_status s = attn_mha_load(b, st, NULL, ATTN_NAMING_HF);
    CHECK(s == ATTN_ERR_NOT_FOUND, "missing: status %d", (int)s);
    CHECK(strstr(attn_last_error(), "k_norm.weight") && strstr(attn_last_error(), "[12]"), "missing message: %s", attn_last_error());
    CHECK(params_equal(b, b0), "failed load modified the layer");
    CHECK(attn_mha_load(b, st, "nope", ATTN_NAMING_HF) == ATTN_ERR_NOT_FOUND && strstr(attn_last_error(), "nope.q_proj.weight"),
          "wrong prefix: %s", attn_last_error());
    attn_st_free(st);

    attn_st_writer_create(&w);
    float junk[24 * 30];
    tu_fill(&r, junk, 24 * 30, 1);
    for (int64_t i = 0; i < attn_mha_num_params(a); i++) {
        attn_param p;
        attn_mha_param(a, i, &p);
        if (!strcmp(p.name, "v_proj.weight")) add(w, p.name, junk, 2, 24, 30);
        else add(w, p.name, p.data, p.ndim, p.shape[0], p.shape[1]);
    }
    st = write_open(w);
    s = attn_mha_load(b, st, NULL, ATTN_NAMING_HF);
    CHECK(s == ATTN_ERR_SHAPE, "mis-shaped: status %d", (int)s);
    CHECK(strstr(attn_last_error(), "v_proj.weight") && strstr(attn_last_error(), "[24, 32]") && strstr(attn_last_error(), "[24, 30]"),
          "mis-shaped message: %s", attn_last_error());
    CHECK(params_equal(b, b0), "failed load modified the layer");
    attn_st_free(st);

    /* tensors the layer has no room for */
    st = save_open(a, NULL);
    attn_mha *nb = make(32, 4, 2, 12, 0, 1, 0, 0);
    s = attn_mha_load(nb, st, NULL, ATTN_NAMING_HF);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "q_proj.bias") && strstr(attn_last_error(), "bias_q"),
          "extra bias: %d %s", (int)s, attn_last_error());
    attn_mha *nn = make(32, 4, 2, 12, 1, 0, 0, 0);
    s = attn_mha_load(nn, st, NULL, ATTN_NAMING_HF);
    CHECK(s == ATTN_ERR_CONFIG && strstr(attn_last_error(), "q_norm.weight"), "extra norm: %d %s", (int)s, attn_last_error());
    CHECK(attn_mha_load(NULL, st, NULL, 0) == ATTN_ERR_NULL, "m NULL");
    CHECK(attn_mha_load(b, NULL, NULL, 0) == ATTN_ERR_NULL, "st NULL");
    CHECK(attn_mha_load(b, st, NULL, ATTN_NAMING_COUNT) == ATTN_ERR_OPTION, "naming ATTN_NAMING_COUNT");
    CHECK(attn_mha_load(b, st, NULL, (attn_naming)-1) == ATTN_ERR_OPTION, "naming -1");
    CHECK(attn_mha_save(a, NULL, NULL) == ATTN_ERR_NULL, "save w NULL");
    attn_st_free(st);
    attn_mha_free(a); attn_mha_free(b); attn_mha_free(b0); attn_mha_free(nb); attn_mha_free(nn);
}

int main(void) {
    snprintf(g_path, sizeof g_path, "/tmp/attn_test_mha_io_%ld.safetensors", (long)getpid());
    test_round_trip();
    test_torch();
    test_errors();
    remove(g_path);
    return test_summary("test_mha_io");
}
