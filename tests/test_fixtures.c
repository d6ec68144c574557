/* SPDX-License-Identifier: MIT */
/* test_fixtures.c — the attention layer against PyTorch / transformers.
 *
 * Every tests/fixtures/<case>.safetensors (written by scripts/gen_fixtures.py,
 * see tests/fixtures/README.md) holds a layer's parameters under HuggingFace
 * names, its inputs, the output y, an upstream gradient dy and every gradient
 * computed by torch, and the layer configuration as "__metadata__" strings.
 * For each case this test
 *   1. builds an attn_mha_config from the metadata (the header JSON is parsed
 *      here: attn_st_* does not expose __metadata__), creates the layer,
 *      attaches LoRA if the case has it, and loads the parameters with
 *      attn_mha_load(ATTN_NAMING_HF) — nn.MultiheadAttention cases a second
 *      time from the original torch names (prefix "torch", ATTN_NAMING_TORCH);
 *   2. checks every loaded parameter equals the stored tensor bit for bit;
 *   3. runs attn_mha_forward in eval mode (y only), then in training mode,
 *      then attn_mha_backward with the stored dy;
 *   4. compares y, dx, dkey, dvalue and the gradient of every trainable
 *      parameter with torch's, and checks the layer has exactly the trainable
 *      parameters whose gradients torch wrote ("grad.<name>").
 * Then the `attn run` fixture tests/fixtures/llama_run/: attn_hf_config_read of
 * a transformers config.json, attn_mha_load(prefix "model.layers.0.self_attn")
 * of a bf16 model.safetensors written by save_pretrained, x.npy -> y.npy.
 *
 * Tolerance, for ours a and torch's b of one tensor (n elements):
 *      err = max_i |a_i - b_i| / max(max_i |b_i|, 1)   must be <= 1e-5.
 * i.e. 1e-5 relative to the tensor's largest magnitude, that magnitude floored
 * at 1 so that analytically zero tensors (e.g. grad.k_proj.bias without RoPE:
 * softmax is shift-invariant, torch stores rounding noise ~1e-7) are compared
 * with an absolute 1e-5. All fixture tensors are O(1)-O(10) by construction;
 * torch's own fp32 error against a float64 recomputation is <= 8e-7 on this
 * metric (checked by the generator).
 *
 * Usage: test_fixtures [case ...]   (default: every case, then llama_run)
 */
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
#define FIXTURE_DIR ATTN_SOURCE_DIR "/tests/fixtures"

static const double TOL = 1e-5;

static const char *const CASES[] = {
    "mha_bias_bf",  "mha_nobias_sf",  "mha_kpm_bf",   "mha_cross_sf",
    "mha_cross_kv_bf", "llama_gqa_rope", "llama3_rope_scaling", "qwen2_bias",
    "qwen3_qknorm", "bert_selfattn",  "llama_lora_qv",
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

/* ─── comparison ─────────────────────────────────────────────────────────── */
/* err = max|a - b| / max(max|b|, 1); NaN in a gives +inf. */
static double rel_err(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d == d) || isinf(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb > 1.0 ? mb : 1.0);
}

/* Per-case report line: "name err" pairs, worst one remembered. */
typedef struct {
    char line[2048];
    size_t len;
    double worst;
    char worst_name[96];
} report;

static void report_add(report *r, const char *name, double err) {
    if (r->len < sizeof r->line - 64)
        r->len += (size_t)snprintf(r->line + r->len, sizeof r->line - r->len, " %s=%.1e", name, err);
    if (err > r->worst || r->worst_name[0] == 0) {
        r->worst = err;
        snprintf(r->worst_name, sizeof r->worst_name, "%s", name);
    }
}

static void compare(report *r, const char *cas, const char *name, const float *a, const float *b,
                    int64_t n) {
    double e = rel_err(a, b, n);
    report_add(r, name, e);
    CHECK(e <= TOL, "%s: %s err %.3e > %.0e", cas, name, e, TOL);
}

/* ─── safetensors __metadata__ (flat string map), parsed from the header ───
 * Our own fixture files only: keys and values hold no quotes or escapes. */
static char *read_header(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char le[8];
    char *h = NULL;
    if (fread(le, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | le[i];
        if (n > 0 && n < (1u << 20) && (h = malloc(n + 1)) != NULL) {
            if (fread(h, 1, n, f) != n) { free(h); h = NULL; }
            else h[n] = 0;
        }
    }
    fclose(f);
    return h;
}

/* Value of metadata key, copied into out; returns 0 if missing. */
static int meta_get(const char *hdr, const char *key, char *out, size_t cap) {
    const char *m = strstr(hdr, "\"__metadata__\"");
    if (!m) return 0;
    const char *end = strchr(m, '}');
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(m, pat);
    if (!p || !end || p > end) return 0;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= cap) return 0;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return 1;
}

static int64_t meta_i(const char *hdr, const char *key) {
    char v[64];
    if (!meta_get(hdr, key, v, sizeof v)) {
        CHECK(0, "metadata key %s missing", key);
        return 0;
    }
    return strtoll(v, NULL, 10);
}
static double meta_f(const char *hdr, const char *key) {
    char v[64];
    if (!meta_get(hdr, key, v, sizeof v)) {
        CHECK(0, "metadata key %s missing", key);
        return 0;
    }
    return strtod(v, NULL);
}

static int config_from_meta(const char *hdr, attn_mha_config *c) {
    char s[64];
    attn_mha_config_init(c);
    c->embed_dim = meta_i(hdr, "embed_dim");
    c->num_heads = meta_i(hdr, "num_heads");
    c->num_kv_heads = meta_i(hdr, "num_kv_heads");
    c->head_dim = meta_i(hdr, "head_dim");
    c->kdim = meta_i(hdr, "kdim");
    c->vdim = meta_i(hdr, "vdim");
    c->bias_q = (int)meta_i(hdr, "bias_q");
    c->bias_k = (int)meta_i(hdr, "bias_k");
    c->bias_v = (int)meta_i(hdr, "bias_v");
    c->bias_o = (int)meta_i(hdr, "bias_o");
    c->causal = (int)meta_i(hdr, "causal");
    c->scale = (float)meta_f(hdr, "scale");
    if (!meta_get(hdr, "rope", s, sizeof s)) return 0;
    c->rope = !strcmp(s, "neox") ? ATTN_ROPE_NEOX : !strcmp(s, "gptj") ? ATTN_ROPE_GPTJ : ATTN_ROPE_NONE;
    c->rope_theta = (float)meta_f(hdr, "rope_theta");
    if (!meta_get(hdr, "rope_scaling", s, sizeof s)) return 0;
    c->rope_scaling = !strcmp(s, "llama3")   ? ATTN_ROPE_SCALING_LLAMA3
                      : !strcmp(s, "linear") ? ATTN_ROPE_SCALING_LINEAR
                                             : ATTN_ROPE_SCALING_NONE;
    c->rope_factor = (float)meta_f(hdr, "rope_factor");
    c->rope_low_freq_factor = (float)meta_f(hdr, "rope_low_freq_factor");
    c->rope_high_freq_factor = (float)meta_f(hdr, "rope_high_freq_factor");
    c->rope_original_max_pos = meta_i(hdr, "rope_original_max_pos");
    c->qk_norm = (int)meta_i(hdr, "qk_norm");
    c->qk_norm_eps = (float)meta_f(hdr, "qk_norm_eps");
    return 1;
}

/* ─── tensors ────────────────────────────────────────────────────────────── */
/* Reads tensor `name` (any shape) as fp32; NULL if absent. *numel, *info optional. */
static float *st_get(const attn_st *st, const char *name, int64_t *numel, attn_tensor_info *info) {
    attn_tensor_info ti;
    if (attn_st_find(st, name, &ti) != ATTN_OK) return NULL;
    float *p = malloc((size_t)(ti.numel > 0 ? ti.numel : 1) * sizeof(float));
    if (!p) return NULL;
    attn_status s = attn_st_read_f32(st, name, p, ti.numel, ti.ndim, ti.shape);
    CHECK(s == ATTN_OK, "attn_st_read_f32(%s): %s", name, attn_last_error());
    if (s != ATTN_OK) { free(p); return NULL; }
    if (numel) *numel = ti.numel;
    if (info) *info = ti;
    return p;
}

typedef struct {
    const char *name;
    const char *hdr;
    const attn_st *st;
    int64_t B, Sq, Skv, E, kdim, vdim;
    int layout, self_attn, value_is_key;
    float *x, *key, *value, *y, *dy, *dx_ref, *dkey_ref, *dvalue_ref;
    int64_t nx, nkey, nvalue, ny;
    uint8_t *kpm;
    int32_t *pos;
} fixture;

static void fixture_free(fixture *f) {
    free(f->x); free(f->key); free(f->value); free(f->y); free(f->dy);
    free(f->dx_ref); free(f->dkey_ref); free(f->dvalue_ref); free(f->kpm); free(f->pos);
}

static int fixture_load(fixture *f) {
    const attn_st *st = f->st;
    f->B = meta_i(f->hdr, "batch");
    f->Sq = meta_i(f->hdr, "seq_q");
    f->Skv = meta_i(f->hdr, "seq_kv");
    f->E = meta_i(f->hdr, "embed_dim");
    f->kdim = meta_i(f->hdr, "kdim");
    f->vdim = meta_i(f->hdr, "vdim");
    if (!f->kdim) f->kdim = f->E;
    if (!f->vdim) f->vdim = f->kdim;
    f->self_attn = (int)meta_i(f->hdr, "self_attention");
    f->value_is_key = (int)meta_i(f->hdr, "value_is_key");
    char lay[32] = "";
    meta_get(f->hdr, "layout", lay, sizeof lay);
    f->layout = !strcmp(lay, "seq_first") ? ATTN_SEQ_FIRST : ATTN_BATCH_FIRST;

    f->x = st_get(st, "x", &f->nx, NULL);
    f->y = st_get(st, "y", &f->ny, NULL);
    f->dy = st_get(st, "dy", NULL, NULL);
    f->dx_ref = st_get(st, "dx", NULL, NULL);
    CHECK(f->x && f->y && f->dy && f->dx_ref, "%s: x/y/dy/dx missing", f->name);
    if (!(f->x && f->y && f->dy && f->dx_ref)) return 0;
    CHECK(f->nx == f->B * f->Sq * f->E && f->ny == f->nx, "%s: x/y numel %lld/%lld vs metadata",
          f->name, (long long)f->nx, (long long)f->ny);
    if (!f->self_attn) {
        f->key = st_get(st, "key", &f->nkey, NULL);
        f->dkey_ref = st_get(st, "dkey", NULL, NULL);
        CHECK(f->key && f->dkey_ref, "%s: key/dkey missing", f->name);
        if (!f->key || !f->dkey_ref) return 0;
        CHECK(f->nkey == f->B * f->Skv * f->kdim, "%s: key numel", f->name);
        if (!f->value_is_key) {
            f->value = st_get(st, "value", &f->nvalue, NULL);
            f->dvalue_ref = st_get(st, "dvalue", NULL, NULL);
            CHECK(f->value && f->dvalue_ref, "%s: value/dvalue missing", f->name);
            if (!f->value || !f->dvalue_ref) return 0;
            CHECK(f->nvalue == f->B * f->Skv * f->vdim, "%s: value numel", f->name);
        }
    } else {
        f->Skv = f->Sq;
    }
    int64_t n;
    float *m = st_get(st, "key_padding_mask", &n, NULL);
    if (m) {
        CHECK(n == f->B * f->Skv, "%s: key_padding_mask numel %lld", f->name, (long long)n);
        f->kpm = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) f->kpm[i] = m[i] != 0.0f;
        free(m);
    }
    float *p = st_get(st, "positions", &n, NULL);
    if (p) {
        CHECK(n == f->B * f->Sq, "%s: positions numel %lld", f->name, (long long)n);
        f->pos = malloc((size_t)n * sizeof(int32_t));
        for (int64_t i = 0; i < n; i++) f->pos[i] = (int32_t)p[i];
        free(p);
    }
    return 1;
}

static int lora_mask(const char *hdr) {
    char w[32] = "";
    meta_get(hdr, "lora_which", w, sizeof w);
    int m = 0;
    for (const char *c = w; *c; c++) {
        if (*c == 'q') m |= ATTN_PROJ_Q;
        if (*c == 'k') m |= ATTN_PROJ_K;
        if (*c == 'v') m |= ATTN_PROJ_V;
        if (*c == 'o') m |= ATTN_PROJ_O;
    }
    return m;
}

/* Creates + loads the layer; NULL (after a CHECK failure) on error. */
static attn_mha *make_layer(const fixture *f, const char *prefix, attn_naming naming) {
    attn_mha_config cfg;
    CHECK(config_from_meta(f->hdr, &cfg), "%s: config metadata incomplete", f->name);
    attn_mha *m = NULL;
    attn_status s = attn_mha_create(&m, &cfg);
    CHECK(s == ATTN_OK, "%s: attn_mha_create: %s", f->name, attn_last_error());
    if (s != ATTN_OK) return NULL;
    int64_t r = meta_i(f->hdr, "lora_rank");
    if (r > 0) {
        s = attn_mha_lora_attach(m, lora_mask(f->hdr), r, (float)meta_f(f->hdr, "lora_alpha"), 7);
        CHECK(s == ATTN_OK, "%s: attn_mha_lora_attach: %s", f->name, attn_last_error());
        if (s != ATTN_OK) { attn_mha_free(m); return NULL; }
    }
    s = attn_mha_load(m, f->st, prefix, naming);
    CHECK(s == ATTN_OK, "%s: attn_mha_load(%s, %s): %s", f->name, prefix,
          naming == ATTN_NAMING_HF ? "HF" : "TORCH", attn_last_error());
    if (s != ATTN_OK) { attn_mha_free(m); return NULL; }
    return m;
}

/* Every loaded parameter equals the stored HF-named tensor exactly. */
static void check_loaded(attn_mha *m, const fixture *f, const char *tag) {
    int64_t np = attn_mha_num_params(m);
    CHECK(np > 0, "%s: no parameters", f->name);
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        if (attn_mha_param(m, i, &p) != ATTN_OK) { CHECK(0, "%s: attn_mha_param(%lld)", f->name, (long long)i); continue; }
        int64_t n = 0;
        float *ref = st_get(f->st, p.name, &n, NULL);
        CHECK(ref != NULL, "%s [%s]: layer parameter %s not in the fixture", f->name, tag, p.name);
        if (!ref) continue;
        CHECK(n == p.numel, "%s [%s]: %s numel %lld vs fixture %lld", f->name, tag, p.name,
              (long long)p.numel, (long long)n);
        if (n == p.numel)
            CHECK(memcmp(ref, p.data, (size_t)n * sizeof(float)) == 0,
                  "%s [%s]: loaded %s differs from the file (max err %.3e)", f->name, tag, p.name,
                  rel_err(p.data, ref, n));
        free(ref);
    }
}

static void run_layer(attn_mha *m, const fixture *f, const char *tag) {
    report r;
    memset(&r, 0, sizeof r);
    char cas[128];
    snprintf(cas, sizeof cas, "%s [%s]", f->name, tag);
    check_loaded(m, f, tag);

    attn_mha_input in;
    attn_mha_input_init(&in);
    in.layout = f->layout;
    in.batch = f->B;
    in.seq_q = f->Sq;
    in.seq_kv = f->Skv;
    in.x = f->x;
    in.key = f->key;
    in.value = f->value;
    in.positions = f->pos;
    in.key_padding_mask = f->kpm;

    float *y = calloc((size_t)f->ny, sizeof(float));
    float *dx = calloc((size_t)f->nx, sizeof(float));
    float *dkey = f->key ? calloc((size_t)f->nkey, sizeof(float)) : NULL;
    float *dvalue = f->value ? calloc((size_t)f->nvalue, sizeof(float)) : NULL;

    /* eval-mode forward: same y */
    attn_status s = attn_mha_set_training(m, 0);
    CHECK(s == ATTN_OK, "%s: set_training(0): %s", cas, attn_last_error());
    s = attn_mha_forward(m, &in, y);
    CHECK(s == ATTN_OK, "%s: eval forward: %s", cas, attn_last_error());
    if (s == ATTN_OK) compare(&r, cas, "y(eval)", y, f->y, f->ny);

    s = attn_mha_set_training(m, 1);
    CHECK(s == ATTN_OK, "%s: set_training(1): %s", cas, attn_last_error());
    s = attn_mha_zero_grad(m);
    CHECK(s == ATTN_OK, "%s: zero_grad: %s", cas, attn_last_error());
    memset(y, 0, (size_t)f->ny * sizeof(float));
    s = attn_mha_forward(m, &in, y);
    CHECK(s == ATTN_OK, "%s: forward: %s", cas, attn_last_error());
    if (s != ATTN_OK) goto done;
    compare(&r, cas, "y", y, f->y, f->ny);

    s = attn_mha_backward(m, f->dy, dx, dkey, dvalue);
    CHECK(s == ATTN_OK, "%s: backward: %s", cas, attn_last_error());
    if (s != ATTN_OK) goto done;
    compare(&r, cas, "dx", dx, f->dx_ref, f->nx);
    if (dkey) compare(&r, cas, "dkey", dkey, f->dkey_ref, f->nkey);
    if (dvalue) compare(&r, cas, "dvalue", dvalue, f->dvalue_ref, f->nvalue);

    /* every trainable parameter has a torch gradient, and they agree */
    int64_t np = attn_mha_num_params(m), ntrain = 0;
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        if (attn_mha_param(m, i, &p) != ATTN_OK || !p.trainable) continue;
        ntrain++;
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", p.name);
        int64_t n = 0;
        float *g = st_get(f->st, gname, &n, NULL);
        CHECK(g != NULL, "%s: trainable %s has no %s in the fixture", cas, p.name, gname);
        if (!g) continue;
        CHECK(n == p.numel, "%s: %s numel", cas, gname);
        if (n == p.numel) compare(&r, cas, gname, p.grad, g, n);
        free(g);
    }
    /* every torch gradient belongs to a trainable parameter of ours */
    int64_t nst = attn_st_count(f->st), ngrad = 0;
    for (int64_t i = 0; i < nst; i++) {
        attn_tensor_info ti;
        if (attn_st_info(f->st, i, &ti) != ATTN_OK || strncmp(ti.name, "grad.", 5) != 0) continue;
        ngrad++;
        attn_param p;
        s = attn_mha_find_param(m, ti.name + 5, &p);
        CHECK(s == ATTN_OK && p.trainable, "%s: fixture has %s but the layer has no trainable %s",
              cas, ti.name, ti.name + 5);
    }
    CHECK(ngrad == ntrain, "%s: %lld torch gradients vs %lld trainable parameters", cas,
          (long long)ngrad, (long long)ntrain);
    printf("%-34s worst %.2e (%s)  %s\n", cas, r.worst, r.worst_name, r.worst <= TOL ? "ok" : "FAIL");
    printf("    %s\n", r.line);
done:
    free(y); free(dx); free(dkey); free(dvalue);
}

static void run_case(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", FIXTURE_DIR, name);
    char *hdr = read_header(path);
    CHECK(hdr != NULL, "%s: cannot read the header of %s", name, path);
    if (!hdr) return;
    attn_st *st = NULL;
    attn_status s = attn_st_open(&st, path);
    CHECK(s == ATTN_OK, "%s: attn_st_open(%s): %s", name, path, attn_last_error());
    if (s != ATTN_OK) { free(hdr); return; }

    fixture f;
    memset(&f, 0, sizeof f);
    f.name = name;
    f.hdr = hdr;
    f.st = st;
    if (fixture_load(&f)) {
        attn_mha *m = make_layer(&f, "", ATTN_NAMING_HF);
        if (m) { run_layer(m, &f, "HF"); attn_mha_free(m); }
        char tp[64] = "";
        if (meta_get(hdr, "torch_prefix", tp, sizeof tp) && tp[0]) {
            m = make_layer(&f, tp, ATTN_NAMING_TORCH);
            if (m) { run_layer(m, &f, "TORCH"); attn_mha_free(m); }
        }
    }
    fixture_free(&f);
    attn_st_free(st);
    free(hdr);
}

/* ─── llama_run: transformers' own files ─────────────────────────────────── */
static void run_llama(void) {
    const char *dir = FIXTURE_DIR "/llama_run";
    char path[1024];
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    attn_status s = hf_read(path, &cfg);
    CHECK(s == ATTN_OK, "llama_run: attn_hf_config_read: %s", attn_last_error());
    if (s != ATTN_OK) return;
    CHECK(cfg.embed_dim == 64 && cfg.num_heads == 4 && cfg.num_kv_heads == 2 && cfg.head_dim == 16,
          "llama_run: config E %lld H %lld Hkv %lld D %lld (want 64 4 2 16)", (long long)cfg.embed_dim,
          (long long)cfg.num_heads, (long long)cfg.num_kv_heads, (long long)cfg.head_dim);
    CHECK(cfg.causal == 1 && cfg.rope == ATTN_ROPE_NEOX && cfg.rope_theta == 500000.0f,
          "llama_run: causal %d rope %d theta %g", cfg.causal, cfg.rope, (double)cfg.rope_theta);
    CHECK(cfg.rope_scaling == ATTN_ROPE_SCALING_LLAMA3 && cfg.rope_factor == 4.0f &&
              cfg.rope_low_freq_factor == 1.0f && cfg.rope_high_freq_factor == 4.0f &&
              cfg.rope_original_max_pos == 32,
          "llama_run: rope_scaling %d factor %g low %g high %g orig %lld (want llama3 4 1 4 32)",
          cfg.rope_scaling, (double)cfg.rope_factor, (double)cfg.rope_low_freq_factor,
          (double)cfg.rope_high_freq_factor, (long long)cfg.rope_original_max_pos);
    CHECK(!cfg.bias_q && !cfg.bias_k && !cfg.bias_v && !cfg.bias_o && !cfg.qk_norm,
          "llama_run: biases %d%d%d%d qk_norm %d (want none)", cfg.bias_q, cfg.bias_k, cfg.bias_v,
          cfg.bias_o, cfg.qk_norm);

    attn_npy x, yref;
    memset(&x, 0, sizeof x);
    memset(&yref, 0, sizeof yref);
    snprintf(path, sizeof path, "%s/x.npy", dir);
    s = attn_npy_read(path, &x);
    CHECK(s == ATTN_OK, "llama_run: attn_npy_read(x): %s", attn_last_error());
    snprintf(path, sizeof path, "%s/y.npy", dir);
    attn_status s2 = attn_npy_read(path, &yref);
    CHECK(s2 == ATTN_OK, "llama_run: attn_npy_read(y): %s", attn_last_error());
    attn_st *st = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    attn_status s3 = attn_st_open(&st, path);
    CHECK(s3 == ATTN_OK, "llama_run: attn_st_open: %s", attn_last_error());
    if (s != ATTN_OK || s2 != ATTN_OK || s3 != ATTN_OK) goto out;
    CHECK(x.ndim == 3 && x.shape[2] == 64 && yref.numel == x.numel, "llama_run: x/y shapes");
    if (!(x.ndim == 3 && x.shape[2] == 64 && yref.numel == x.numel)) goto out;

    /* layer 0 must match; layer 1 must not (the prefix selects the tensors) */
    for (int layer = 0; layer < 2; layer++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "model.layers.%d.self_attn", layer);
        attn_mha *m = NULL;
        s = attn_mha_create(&m, &cfg);
        CHECK(s == ATTN_OK, "llama_run: attn_mha_create: %s", attn_last_error());
        if (s != ATTN_OK) break;
        s = attn_mha_load(m, st, prefix, ATTN_NAMING_HF);
        CHECK(s == ATTN_OK, "llama_run: attn_mha_load(%s): %s", prefix, attn_last_error());
        attn_mha_input in;
        attn_mha_input_init(&in);
        in.layout = ATTN_BATCH_FIRST;
        in.batch = x.shape[0];
        in.seq_q = x.shape[1];
        in.x = x.data;
        float *y = calloc((size_t)x.numel, sizeof(float));
        if (s == ATTN_OK) s = attn_mha_forward(m, &in, y);
        CHECK(s == ATTN_OK, "llama_run: forward: %s", attn_last_error());
        if (s == ATTN_OK) {
            double e = rel_err(y, yref.data, yref.numel);
            if (layer == 0) {
                printf("%-34s worst %.2e (y)  %s\n", "llama_run [model.layers.0]", e, e <= TOL ? "ok" : "FAIL");
                CHECK(e <= TOL, "llama_run: y err %.3e > %.0e", e, TOL);
            } else {
                printf("%-34s y err %.2e (control: must be large)\n", "llama_run [model.layers.1]", e);
                CHECK(e > 1e-2, "llama_run: layer 1 reproduces layer 0's output (err %.3e)", e);
            }
        }
        free(y);
        attn_mha_free(m);
    }
out:
    attn_st_free(st);
    attn_npy_free(&x);
    attn_npy_free(&yref);
}

int main(int argc, char **argv) {
    /* the comparison itself can fail */
    float a[3] = {1, 2, 3}, b[3] = {1, 2, 3.0001f}, z[3] = {0, 0, 0}, t[3] = {0, 2e-6f, 0};
    CHECK(rel_err(a, a, 3) == 0.0 && rel_err(a, b, 3) > TOL && rel_err(t, z, 3) <= TOL &&
              rel_err(a, z, 3) > TOL,
          "rel_err self-test");

    int ran = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "llama_run")) run_llama();
        else run_case(argv[i]);
        ran++;
    }
    if (!ran) {
        for (int i = 0; i < NCASES; i++) run_case(CASES[i]);
        run_llama();
    }
    return test_summary("test_fixtures");
}
