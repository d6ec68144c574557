/* SPDX-License-Identifier: MIT */
/* test_mha.c — the attention layer's configuration, initialisation and
 * forward against the float64 reference of the whole layer (mha_ref).
 *
 * Forward tolerance: max|y - y_ref| / max(max|y_ref|, 1e-3) <= 2e-5 (fp32
 * GEMMs over E <= 96 and the fused kernel; measured errors are ~1e-6). */
#include "attn.h"
#include "mha_ref.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 2e-5;

/* ─── configuration validation ───────────────────────────────────────────── */

static attn_mha_config base_cfg(void) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = 32;
    c.num_heads = 4;
    return c;
}

static void expect_config_error(attn_mha_config c, const char *field, const char *what) {
    attn_mha *m = NULL;
    attn_clear_error();
    attn_status s = attn_mha_create(&m, &c);
    CHECK(s == ATTN_ERR_CONFIG, "%s: status %d, expected ATTN_ERR_CONFIG", what, (int)s);
    CHECK(m == NULL, "%s: object created on error", what);
    CHECK(strstr(attn_last_error(), field) != NULL, "%s: message \"%s\" does not name %s", what, attn_last_error(), field);
    attn_mha_free(m);
}

static void test_config(void) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    CHECK(c.window_left == -1 && c.window_right == -1, "config_init windows %lld %lld", (long long)c.window_left,
          (long long)c.window_right);
    CHECK(c.embed_dim == 0 && c.rope == 0 && c.qk_norm == 0 && c.causal == 0 && c.dropout == 0.0f, "config_init zeros");

    /* resolved defaults */
    c = base_cfg();
    c.rope = ATTN_ROPE_NEOX;
    attn_mha *m = NULL;
    CHECK(attn_mha_create(&m, &c) == ATTN_OK, "create: %s", attn_last_error());
    if (m) {
        const attn_mha_config *r = attn_mha_get_config(m);
        CHECK(r->num_kv_heads == 4 && r->head_dim == 8 && r->kdim == 32 && r->vdim == 32, "resolved dims");
        CHECK(fabsf(r->scale - 1.0f / sqrtf(8.0f)) < 1e-7f, "resolved scale %g", (double)r->scale);
        CHECK(r->rope_theta == 10000.0f && r->rope_dim == 8 && r->qk_norm_eps == 1e-6f, "resolved rope / eps");
        CHECK(attn_mha_num_params(m) == 4, "4 params without biases, got %lld", (long long)attn_mha_num_params(m));
    }
    attn_mha_free(m);
    attn_mha_free(NULL);
    CHECK(attn_mha_create(NULL, &c) == ATTN_ERR_NULL, "create(NULL)");
    CHECK(attn_mha_create(&m, NULL) == ATTN_ERR_NULL, "create(cfg NULL)");

    attn_mha_config e;
    e = base_cfg(); e.embed_dim = 0; expect_config_error(e, "embed_dim", "embed_dim 0");
    e = base_cfg(); e.embed_dim = -5; expect_config_error(e, "embed_dim", "embed_dim -5");
    e = base_cfg(); e.num_heads = 0; expect_config_error(e, "num_heads", "num_heads 0");
    e = base_cfg(); e.num_kv_heads = 3; expect_config_error(e, "num_kv_heads", "kv 3 of 4");
    e = base_cfg(); e.num_kv_heads = 8; expect_config_error(e, "num_kv_heads", "kv 8 of 4");
    e = base_cfg(); e.num_heads = 5; expect_config_error(e, "head_dim", "E % H");
    e = base_cfg(); e.head_dim = 300; expect_config_error(e, "head_dim", "head_dim 300");
    e = base_cfg(); e.head_dim = -1; expect_config_error(e, "head_dim", "head_dim -1");
    e = base_cfg(); e.kdim = -1; expect_config_error(e, "kdim", "kdim -1");
    e = base_cfg(); e.vdim = -2; expect_config_error(e, "vdim", "vdim -2");
    e = base_cfg(); e.bias_q = 2; expect_config_error(e, "bias_q", "bias_q 2");
    e = base_cfg(); e.bias_o = -1; expect_config_error(e, "bias_o", "bias_o -1");
    e = base_cfg(); e.causal = 3; expect_config_error(e, "causal", "causal 3");
    e = base_cfg(); e.scale = NAN; expect_config_error(e, "scale", "scale nan");
    e = base_cfg(); e.scale = -1.0f; expect_config_error(e, "scale", "scale -1");
    e = base_cfg(); e.dropout = 1.0f; expect_config_error(e, "dropout", "dropout 1");
    e = base_cfg(); e.dropout = -0.1f; expect_config_error(e, "dropout", "dropout -0.1");
    e = base_cfg(); e.softcap = -1.0f; expect_config_error(e, "softcap", "softcap -1");
    e = base_cfg(); e.window_left = -2; expect_config_error(e, "window_left", "window_left -2");
    e = base_cfg(); e.window_right = -7; expect_config_error(e, "window_right", "window_right -7");
    e = base_cfg(); e.rope = 3; expect_config_error(e, "rope", "rope 3");
    e = base_cfg(); e.rope = ATTN_ROPE_NEOX; e.rope_dim = 3; expect_config_error(e, "rope_dim", "rope_dim odd");
    e = base_cfg(); e.rope = ATTN_ROPE_NEOX; e.rope_dim = 10; expect_config_error(e, "rope_dim", "rope_dim > D");
    e = base_cfg(); e.rope_dim = 4; expect_config_error(e, "rope_dim", "rope_dim without rope");
    e = base_cfg(); e.rope = ATTN_ROPE_GPTJ; e.rope_theta = 0.5f; expect_config_error(e, "rope_theta", "theta 0.5");
    e = base_cfg(); e.rope = ATTN_ROPE_NEOX; e.rope_scaling = 7; expect_config_error(e, "rope_scaling", "scaling 7");
    e = base_cfg(); e.rope = ATTN_ROPE_NEOX; e.rope_scaling = ATTN_ROPE_SCALING_LINEAR;
    expect_config_error(e, "rope_factor", "linear factor 0");
    e = base_cfg(); e.rope = ATTN_ROPE_NEOX; e.rope_scaling = ATTN_ROPE_SCALING_LLAMA3; e.rope_factor = 8;
    e.rope_low_freq_factor = 1; e.rope_high_freq_factor = 1; e.rope_original_max_pos = 64;
    expect_config_error(e, "rope_high_freq_factor", "llama3 high <= low");
    e.rope_high_freq_factor = 4; e.rope_original_max_pos = 0;
    expect_config_error(e, "rope_original_max_pos", "llama3 max pos 0");
    e.rope_original_max_pos = 64; e.rope_low_freq_factor = 0;
    expect_config_error(e, "rope_low_freq_factor", "llama3 low 0");
    e = base_cfg(); e.qk_norm = 2; expect_config_error(e, "qk_norm", "qk_norm 2");
    e = base_cfg(); e.qk_norm = 1; e.qk_norm_eps = -1e-6f; expect_config_error(e, "qk_norm_eps", "eps < 0");
}

/* ─── initialisation ─────────────────────────────────────────────────────── */

static void test_init(void) {
    attn_mha_config c = base_cfg();
    c.num_kv_heads = 2; c.bias_q = c.bias_k = c.bias_v = c.bias_o = 1; c.qk_norm = 1; c.kdim = 24; c.vdim = 20;
    for (int scheme = 0; scheme < 2; scheme++) {
        attn_mha *a = NULL, *b = NULL, *d = NULL;
        CHECK(attn_mha_create(&a, &c) == ATTN_OK && attn_mha_create(&b, &c) == ATTN_OK && attn_mha_create(&d, &c) == ATTN_OK,
              "create");
        if (!a || !b || !d) { attn_mha_free(a); attn_mha_free(b); attn_mha_free(d); return; }
        CHECK(attn_mha_init_weights(a, (attn_init_scheme)scheme, 42) == ATTN_OK, "init a");
        CHECK(attn_mha_init_weights(b, (attn_init_scheme)scheme, 42) == ATTN_OK, "init b");
        CHECK(attn_mha_init_weights(d, (attn_init_scheme)scheme, 43) == ATTN_OK, "init d");
        int64_t np = attn_mha_num_params(a);
        CHECK(np == 10, "10 params, got %lld", (long long)np);
        for (int64_t i = 0; i < np; i++) {
            attn_param pa, pb, pd;
            attn_mha_param(a, i, &pa); attn_mha_param(b, i, &pb); attn_mha_param(d, i, &pd);
            CHECK(memcmp(pa.data, pb.data, (size_t)pa.numel * sizeof(float)) == 0, "%s: same seed, different bits", pa.name);
            if (pa.ndim == 2) {
                CHECK(memcmp(pa.data, pd.data, (size_t)pa.numel * sizeof(float)) != 0, "%s: different seed, same bits", pa.name);
                double bound = sqrt(6.0 / (double)(pa.shape[0] + pa.shape[1])), mx = 0, s2 = 0, s1 = 0;
                for (int64_t j = 0; j < pa.numel; j++) {
                    mx = fmax(mx, fabs(pa.data[j]));
                    s1 += pa.data[j];
                    s2 += (double)pa.data[j] * pa.data[j];
                }
                double sd = sqrt(s2 / (double)pa.numel - (s1 / pa.numel) * (s1 / pa.numel));
                if (scheme == ATTN_INIT_XAVIER_UNIFORM) {
                    CHECK(mx <= bound && mx > 0.9 * bound, "%s: xavier max %g vs bound %g", pa.name, mx, bound);
                    CHECK(fabs(sd - bound / sqrt(3.0)) < 0.15 * bound / sqrt(3.0), "%s: xavier sd %g", pa.name, sd);
                } else {
                    CHECK(fabs(sd - 0.02) < 0.003, "%s: normal sd %g", pa.name, sd);
                }
            } else if (strstr(pa.name, "_norm")) {
                for (int64_t j = 0; j < pa.numel; j++) CHECK(pa.data[j] == 1.0f, "%s[%lld] = %g", pa.name, (long long)j, pa.data[j]);
            } else {
                for (int64_t j = 0; j < pa.numel; j++) CHECK(pa.data[j] == 0.0f, "%s[%lld] = %g", pa.name, (long long)j, pa.data[j]);
            }
            for (int64_t j = 0; j < pa.numel; j++)
                if (pa.grad[j] != 0.0f) { CHECK(0, "%s: grad not zero at creation", pa.name); break; }
        }
        CHECK(attn_mha_init_weights(a, (attn_init_scheme)5, 1) == ATTN_ERR_OPTION, "bad scheme");
        attn_mha_free(a); attn_mha_free(b); attn_mha_free(d);
    }
}

/* ─── forward vs reference ───────────────────────────────────────────────── */

typedef struct fcase {
    const char *name;
    attn_mha_config cfg;
    mha_case c;
} fcase;

/* Runs one case: eval forward and training forward vs mha_ref. Returns the error. */
static double run_forward(const char *name, const attn_mha_config *cfg_in, mha_case c, uint64_t seed, float **y_out) {
    tu_rng r = {seed};
    attn_mha *m = NULL;
    attn_status s = attn_mha_create(&m, cfg_in);
    CHECK(s == ATTN_OK, "%s: create: %s", name, attn_last_error());
    if (s != ATTN_OK) return INFINITY;
    const attn_mha_config *cfg = attn_mha_get_config(m);
    mha_randomize_params(m, &r, 0.3, 1.0);
    mha_case_make(&c, cfg, &r);
    const int64_t ny = c.B * c.Sq * cfg->embed_dim;
    float *y = malloc((size_t)(ny + 1) * sizeof(float)), *y2 = malloc((size_t)(ny + 1) * sizeof(float));
    double *yr = calloc((size_t)(ny + 1), sizeof(double));
    attn_mha_input in;
    mha_case_input(&c, &in);
    s = attn_mha_forward(m, &in, y);
    CHECK(s == ATTN_OK, "%s: forward: %s", name, attn_last_error());
    mha_ref_params p;
    mha_ref_params_from_layer(m, &p);
    mha_ref_input ri;
    mha_case_ref_input(&c, &ri);
    CHECK(mha_ref_forward(cfg, &p, &ri, yr) == 0, "%s: reference failed: %s", name, attn_last_error());
    double err = mha_rel_err(y, yr, ny, 1e-3);
    CHECK(err <= TOL, "%s: eval forward err %.3g > %.1g", name, err, TOL);
    /* training mode (no dropout) gives the same output */
    attn_mha_set_training(m, 1);
    s = attn_mha_forward(m, &in, y2);
    CHECK(s == ATTN_OK, "%s: training forward: %s", name, attn_last_error());
    double err2 = mha_rel_err(y2, yr, ny, 1e-3);
    CHECK(err2 <= TOL, "%s: training forward err %.3g", name, err2);
    if (y_out) *y_out = y;
    else free(y);
    free(y2); free(yr);
    mha_ref_params_free(&p);
    mha_case_free(&c);
    attn_mha_free(m);
    return err;
}

static attn_mha_config mk(int64_t E, int64_t Hq, int64_t Hkv, int64_t D) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = E; c.num_heads = Hq; c.num_kv_heads = Hkv; c.head_dim = D;
    return c;
}

static mha_case mc(int64_t B, int64_t Sq) {
    mha_case c;
    memset(&c, 0, sizeof c);
    c.B = B; c.Sq = Sq;
    return c;
}

static void test_forward_cases(void) {
    double worst = 0;
    int n = 0;
#define RUN(name, cfg, cs)                                                       \
    do {                                                                         \
        double e_ = run_forward(name, &(cfg), cs, 1000 + (uint64_t)n, NULL);    \
        if (e_ > worst) worst = e_;                                              \
        n++;                                                                     \
    } while (0)
    attn_mha_config c;
    mha_case k;

    c = mk(32, 4, 0, 0); c.bias_q = c.bias_k = c.bias_v = c.bias_o = 1;
    RUN("mha bias", c, mc(2, 7));
    c = mk(32, 4, 0, 0);
    RUN("mha nobias", c, mc(3, 5));
    for (int bits = 0; bits < 16; bits++) {
        char nm[64];
        snprintf(nm, sizeof nm, "bias mask %d%d%d%d", bits & 1, (bits >> 1) & 1, (bits >> 2) & 1, (bits >> 3) & 1);
        c = mk(24, 3, 0, 0); c.bias_q = bits & 1; c.bias_k = (bits >> 1) & 1; c.bias_v = (bits >> 2) & 1; c.bias_o = (bits >> 3) & 1;
        RUN(nm, c, mc(2, 4));
    }
    c = mk(48, 8, 2, 8); c.causal = 1; c.rope = ATTN_ROPE_NEOX; /* GQA, qd = 64 != E */
    RUN("gqa neox causal", c, mc(2, 9));
    c = mk(40, 4, 1, 10); c.rope = ATTN_ROPE_GPTJ; c.bias_q = 1; /* MQA */
    RUN("mqa gptj", c, mc(2, 6));
    c = mk(32, 4, 2, 8); c.rope = ATTN_ROPE_NEOX; c.rope_dim = 4; c.causal = 1;
    RUN("partial neox", c, mc(2, 8));
    c = mk(32, 4, 2, 8); c.rope = ATTN_ROPE_GPTJ; c.rope_dim = 6;
    k = mc(2, 8); k.pos_kind = 1; k.pos_offset = 17;
    RUN("partial gptj offset", c, k);
    c = mk(32, 4, 1, 8); c.rope = ATTN_ROPE_NEOX; c.rope_theta = 500000.0f; c.rope_scaling = ATTN_ROPE_SCALING_LLAMA3;
    c.rope_factor = 8; c.rope_low_freq_factor = 1; c.rope_high_freq_factor = 4; c.rope_original_max_pos = 64;
    c.bias_q = c.bias_k = c.bias_v = c.bias_o = 1;
    k = mc(2, 6); k.pos_kind = 2;
    RUN("llama3 scaling positions", c, k);
    c = mk(32, 4, 2, 8); c.rope = ATTN_ROPE_NEOX; c.rope_scaling = ATTN_ROPE_SCALING_LINEAR; c.rope_factor = 4; c.causal = 1;
    k = mc(2, 6); k.pos_kind = 2;
    RUN("linear scaling positions", c, k);
    c = mk(16, 4, 2, 8); c.rope = ATTN_ROPE_NEOX; c.qk_norm = 1; c.causal = 1; /* Qwen3: qd = 32 != E */
    RUN("qk_norm neox", c, mc(2, 7));
    c = mk(16, 4, 2, 8); c.qk_norm = 1; c.qk_norm_eps = 1e-3f;
    RUN("qk_norm no rope", c, mc(1, 5));
    c = mk(32, 4, 0, 0); c.causal = 1;
    k = mc(3, 9); k.kpm_kind = 1;
    RUN("causal + right padding (key_lens)", c, k);
    k = mc(3, 9); k.kpm_kind = 2;
    RUN("causal + scattered padding", c, k);
    k = mc(3, 6); k.kpm_kind = 3;
    RUN("fully padded sequence", c, k);
    c = mk(16, 4, 0, 0); c.kdim = 12; c.vdim = 10; c.bias_q = c.bias_k = c.bias_v = c.bias_o = 1;
    k = mc(2, 5); k.cross = 1; k.Skv = 9; k.kpm_kind = 2; k.layout = ATTN_SEQ_FIRST;
    RUN("cross kdim != vdim seq-first padding", c, k);
    k = mc(2, 5); k.cross = 1; k.Skv = 9; k.kpm_kind = 1;
    RUN("cross right padding", c, k);
    c = mk(16, 2, 0, 0); c.kdim = 8; c.vdim = 8;
    k = mc(2, 6); k.cross = 1; k.Skv = 4; k.value_is_key = 1;
    RUN("cross value is key", c, k);
    c = mk(32, 4, 2, 8); c.kdim = 12; c.vdim = 20; c.causal = 1; c.rope = ATTN_ROPE_NEOX;
    k = mc(2, 4); k.cross = 1; k.Skv = 7; k.kpm_kind = 1;
    RUN("cross causal bottom-right rope padding", c, k);
    c = mk(32, 4, 2, 8); c.causal = 1; c.window_left = 2; c.softcap = 5.0f;
    RUN("window + softcap", c, mc(2, 10));
    c = mk(32, 4, 0, 0);
    for (int bc = 0; bc < 8; bc++) {
        char nm[64];
        k = mc(2, 5); k.mask_kind = ATTN_MASK_BOOL; k.mask_bcast = bc;
        snprintf(nm, sizeof nm, "bool mask bcast %d", bc);
        RUN(nm, c, k);
        k.mask_kind = ATTN_MASK_ADD;
        snprintf(nm, sizeof nm, "add mask bcast %d", bc);
        RUN(nm, c, k);
        k.kpm_kind = 2;
        snprintf(nm, sizeof nm, "add mask + padding bcast %d", bc);
        RUN(nm, c, k);
        k.mask_kind = ATTN_MASK_BOOL;
        snprintf(nm, sizeof nm, "bool mask + padding bcast %d", bc);
        RUN(nm, c, k);
    }
    c = mk(32, 4, 2, 8); c.causal = 1; c.rope = ATTN_ROPE_NEOX;
    k = mc(3, 1);
    RUN("S=1 fast path", c, k);
    k = mc(3, 1); k.kpm_kind = 3;
    RUN("S=1 padded", c, k);
    k = mc(3, 1); k.layout = ATTN_SEQ_FIRST; k.pos_kind = 1; k.pos_offset = 5;
    RUN("S=1 seq-first", c, k);
    c = mk(32, 4, 2, 8); c.bias_v = 1;
    k = mc(2, 1); k.cross = 1; k.Skv = 5;
    c.kdim = 32;
    RUN("S=1 cross", c, k);
    /* larger, kernel tiling */
    c = mk(96, 6, 2, 16); c.causal = 1; c.rope = ATTN_ROPE_NEOX; c.qk_norm = 1; c.bias_q = c.bias_k = c.bias_v = 1;
    k = mc(2, 77); k.kpm_kind = 1;
    RUN("large causal qknorm", c, k);
    k = mc(2, 70); k.layout = ATTN_SEQ_FIRST;
    RUN("large seq-first", c, k);
#undef RUN
    printf("forward: %d cases, worst relative error %.3g\n", n, worst);
}

/* batch-first and seq-first over the same data give the same output */
static void test_layouts(void) {
    const char *names[3] = {"self", "cross", "self kpm"};
    for (int v = 0; v < 3; v++) {
        attn_mha_config c = mk(32, 4, 2, 8);
        c.rope = ATTN_ROPE_NEOX; c.causal = v != 1; c.bias_q = c.bias_o = 1; c.qk_norm = 1;
        if (v == 1) { c.kdim = 12; c.vdim = 20; }
        attn_mha *m = NULL;
        if (attn_mha_create(&m, &c) != ATTN_OK) { CHECK(0, "create"); return; }
        tu_rng r = {77 + (uint64_t)v};
        mha_randomize_params(m, &r, 0.3, 1.0);
        const int64_t B = 3, S = 11, Skv = 6, E = 32;
        mha_case k = mc(B, S);
        k.cross = v == 1; k.Skv = Skv; k.kpm_kind = v == 2 ? 2 : 0; k.pos_kind = 2;
        mha_case_make(&k, attn_mha_get_config(m), &r);
        attn_mha_input in;
        mha_case_input(&k, &in);
        float *y1 = malloc(sizeof(float) * B * S * E), *y2 = malloc(sizeof(float) * B * S * E);
        float *xs = malloc(sizeof(float) * B * S * E);
        float *ks = v == 1 ? malloc(sizeof(float) * B * Skv * 12) : NULL, *vs = v == 1 ? malloc(sizeof(float) * B * Skv * 20) : NULL;
        CHECK(attn_mha_forward(m, &in, y1) == ATTN_OK, "bf forward: %s", attn_last_error());
        /* permute to (S, B, E) */
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++) memcpy(xs + (s * B + b) * E, k.x + (b * S + s) * E, sizeof(float) * E);
        if (v == 1)
            for (int64_t b = 0; b < B; b++)
                for (int64_t s = 0; s < Skv; s++) {
                    memcpy(ks + (s * B + b) * 12, k.key + (b * Skv + s) * 12, sizeof(float) * 12);
                    memcpy(vs + (s * B + b) * 20, k.value + (b * Skv + s) * 20, sizeof(float) * 20);
                }
        in.layout = ATTN_SEQ_FIRST;
        in.x = xs; in.key = ks; in.value = vs;
        CHECK(attn_mha_forward(m, &in, y2) == ATTN_OK, "sf forward: %s", attn_last_error());
        double md = 0, mx = 0;
        int bitwise = 1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++)
                for (int64_t e = 0; e < E; e++) {
                    float a = y1[(b * S + s) * E + e], bb = y2[(s * B + b) * E + e];
                    md = fmax(md, fabs((double)a - bb));
                    mx = fmax(mx, fabs(a));
                    if (a != bb) bitwise = 0;
                }
        CHECK(md <= 1e-6 * fmax(mx, 1e-3), "%s: batch-first vs seq-first differ by %g (max %g)", names[v], md, mx);
        printf("layouts %s: max diff %.3g (%s)\n", names[v], md, bitwise ? "bitwise identical" : "not bitwise");
        free(y1); free(y2); free(xs); free(ks); free(vs);
        mha_case_free(&k);
        attn_mha_free(m);
    }
}

/* results independent of the thread count; errors on bad calls */
static void test_misc(void) {
    attn_mha_config c = mk(64, 4, 2, 16);
    c.causal = 1; c.rope = ATTN_ROPE_NEOX; c.bias_q = 1;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &c) != ATTN_OK) { CHECK(0, "create"); return; }
    attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 3);
    tu_rng r = {5};
    const int64_t B = 2, S = 50, E = 64;
    float *x = malloc(sizeof(float) * B * S * E), *y1 = malloc(sizeof(float) * B * S * E), *y2 = malloc(sizeof(float) * B * S * E);
    tu_fill(&r, x, B * S * E, 1.0f);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;
    int nt = attn_get_num_threads();
    attn_set_num_threads(1);
    CHECK(attn_mha_forward(m, &in, y1) == ATTN_OK, "forward 1 thread");
    attn_set_num_threads(3);
    CHECK(attn_mha_forward(m, &in, y2) == ATTN_OK, "forward 3 threads");
    attn_set_num_threads(nt);
    CHECK(memcmp(y1, y2, sizeof(float) * B * S * E) == 0, "forward depends on the thread count");

    CHECK(attn_mha_backward(m, y1, NULL, NULL, NULL) == ATTN_ERR_STATE, "backward without training forward");
    CHECK(strstr(attn_last_error(), "training") != NULL, "state message: %s", attn_last_error());
    CHECK(attn_mha_forward(m, NULL, y1) == ATTN_ERR_NULL, "in NULL");
    CHECK(attn_mha_forward(m, &in, NULL) == ATTN_ERR_NULL, "y NULL");
    in.x = NULL;
    CHECK(attn_mha_forward(m, &in, y1) == ATTN_ERR_NULL && strstr(attn_last_error(), "x"), "x NULL");
    in.x = x; in.layout = 7;
    CHECK(attn_mha_forward(m, &in, y1) == ATTN_ERR_OPTION && strstr(attn_last_error(), "layout"), "layout 7");
    in.layout = 0; in.seq_q = -1;
    CHECK(attn_mha_forward(m, &in, y1) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "seq_q"), "seq_q -1");
    in.seq_q = S; in.mask_kind = ATTN_MASK_BOOL;
    CHECK(attn_mha_forward(m, &in, y1) == ATTN_ERR_NULL && strstr(attn_last_error(), "mask"), "mask NULL");
    in.mask_kind = 0; in.batch = 0;
    CHECK(attn_mha_forward(m, &in, y1) == ATTN_OK, "empty batch");
    CHECK(attn_mha_set_training(m, 2) == ATTN_ERR_OPTION, "training 2");
    attn_mha_free(m);

    /* self-attention needs kdim = E */
    c = mk(32, 4, 0, 0); c.kdim = 16;
    if (attn_mha_create(&m, &c) == ATTN_OK) {
        in.batch = 1; in.seq_q = 3;
        CHECK(attn_mha_forward(m, &in, y1) == ATTN_ERR_SHAPE && strstr(attn_last_error(), "kdim"), "self with kdim != E: %s",
              attn_last_error());
        attn_mha_free(m);
    }
    free(x); free(y1); free(y2);
}

/* dropout: training outputs differ from eval and between steps; eval is unaffected */
static void test_dropout(void) {
    attn_mha_config c = mk(32, 4, 2, 8);
    c.dropout = 0.3f; c.dropout_seed = 5; c.causal = 1;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &c) != ATTN_OK) { CHECK(0, "create"); return; }
    attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 2);
    tu_rng r = {6};
    const int64_t n = 2 * 6 * 32;
    float *x = malloc(sizeof(float) * n), *y0 = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n),
          *y2 = malloc(sizeof(float) * n), *y3 = malloc(sizeof(float) * n);
    tu_fill(&r, x, n, 1);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = 2; in.seq_q = 6; in.x = x;
    attn_mha_forward(m, &in, y0);
    attn_mha_set_training(m, 1);
    attn_mha_forward(m, &in, y1);
    attn_mha_forward(m, &in, y2);
    attn_mha_set_training(m, 0);
    attn_mha_forward(m, &in, y3);
    CHECK(memcmp(y0, y1, sizeof(float) * n) != 0, "dropout had no effect in training");
    CHECK(memcmp(y1, y2, sizeof(float) * n) != 0, "two training steps drew the same dropout mask");
    CHECK(memcmp(y0, y3, sizeof(float) * n) == 0, "eval output changed by training");
    /* the same seed and step count reproduce the same masks */
    attn_mha *m2 = NULL;
    attn_mha_create(&m2, &c);
    attn_mha_init_weights(m2, ATTN_INIT_XAVIER_UNIFORM, 2);
    attn_mha_set_training(m2, 1);
    attn_mha_forward(m2, &in, y3);
    CHECK(memcmp(y1, y3, sizeof(float) * n) == 0, "dropout not reproducible from the seed");
    free(x); free(y0); free(y1); free(y2); free(y3);
    attn_mha_free(m);
    attn_mha_free(m2);
}

int main(void) {
    test_config();
    test_dropout();
    test_init();
    test_forward_cases();
    test_layouts();
    test_misc();
    return test_summary("test_mha");
}
