/* SPDX-License-Identifier: MIT */
/* test_mha_typed_weights.c — layers holding BF16 / F16 projection weights
 * (attn_mha_config.weight_dtype; attn.h "Mixed precision"), and their kernel
 * (kernels/proj_typed.c).
 *
 * 1. Widening: attn__widen_16 equals io/half.h's exact conversions bit for bit,
 *    for all 65536 inputs of each type (zeros, subnormals, inf, NaN payloads;
 *    a signalling f16 NaN may come out quiet, as vcvtph2ps makes it).
 * 2. Kernel bound: Y = X W^T by every kernel this build has, against float64 on
 *    the same (stored) weights, element by element:
 *        |Y~ - Y| <= (u_x + gamma_K (1 + u_x)) sum_k |X_k| |W_k|,
 *    gamma_K = K u / (1 - K u), u = 2^-24. Derivation: widen multiplies the
 *    exactly widened weights in fp32 (any order of K roundings: gamma_K, Higham
 *    3.1); sbgemm first rounds X to bf16, X~ = X (1 + d), |d| <= u_x = 2^-8,
 *    then sums exact bf16 products in fp32: |fl(sum X~ W) - sum X~ W| <=
 *    gamma_K sum |X~||W| <= gamma_K (1 + u_x) sum |X||W|, plus |sum (X~ - X) W|
 *    <= u_x sum |X||W|. Also: columns past N and rows past M (ld padding) are
 *    untouched, and widen against attn__sgemm on the widened weights within
 *    2 gamma_K sum |X||W| (both sides of the first bound).
 * 3. Layer: a BF16 / F16 checkpoint (built in memory) loads into a 16-bit layer
 *    (bits copied) and into an fp32 layer (widened on load: the same values).
 *    The two forwards compute the same math on the same weights and differ only
 *    in the projections' rounding (bound 2); the test holds both to the fp32
 *    layer's own forward bound against the float64 reference (test_mha.c: max
 *    error <= 2e-5 max|y_ref|) and their difference to the sum of the two
 *    (4e-5 max|y_ref|, triangle inequality) — for MHA / GQA / RoPE (NeoX, GPT-J) /
 *    qk-norm / padding / cross-attention / seq-first, and the KV-cache forward
 *    (prefill then decode steps) against the fp32 layer's.
 *    With the sbgemm kernel (BF16, builds whose OpenBLAS has cblas_sbgemm) the
 *    layer rounds the inputs of its two products to bf16: x (and key / value)
 *    before Wq, Wk, Wv, and the attention output o before Wo. The first is
 *    exactly the fp32 layer fed bf16(x), so the reference is fed bf16(x) too.
 *    The second changes y_e by sum_j Wo_ej (bf16(o_j) - o_j), at most
 *    u_x sum_j |Wo_ej| |o_j| <= u_x sum_j |Wo_ej| vmax_j, u_x = 2^-8, since o is
 *    a convex combination of rows of v (vmax_j: max over rows of |v| in o's
 *    column j, from the float64 v of the rounded inputs, times 1 + 1e-5 for
 *    its fp32 value). So |y - y_ref(bf16 x)|_e <= u_x (1 + u_x) sum_j |Wo_ej| vmax_j
 *    + 2e-5 max|y_ref| (the fp32 part as above). The KV-cache check feeds both
 *    layers bf16 inputs and takes vmax from the fp32 layer's cache.
 * 4. Bit-identical forwards at 1 and 2 threads; save -> load restores the bits;
 *    init_weights = the fp32 layer's values rounded; attn_mha_param_bytes.
 * 5. Refusals: bad weight_dtype, training, backward, LoRA, optimiser, F16
 *    overflow and F64 at load (all-or-nothing), older struct_size = F32. */
#include "attn.h"
#include "core/core.h"
#include "io/half.h"
#include "kernels/gemm.h"
#include "kernels/proj_typed.h"
#include "mha_ref.h"
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ═══ 1. widening ═══════════════════════════════════════════════════════════ */
static void test_widen_exhaustive(void) {
    uint16_t *src = malloc(65536 * sizeof(uint16_t));
    float *dst = malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) src[i] = (uint16_t)i;
    const attn_dtype types[2] = {ATTN_DTYPE_BF16, ATTN_DTYPE_F16};
    for (int t = 0; t < 2; t++) {
        attn__widen_16(src, types[t], dst, 65536);
        long bad = 0;
        for (int i = 0; i < 65536; i++) {
            float want = types[t] == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(src[i]) : attn__f16_to_f32(src[i]);
            /* as test_kernels_typed: a signalling f16 NaN comes out quiet from vcvtph2ps */
            if (attn__f32_bits(want) != attn__f32_bits(dst[i]) && !(isnan(want) && isnan(dst[i]))) bad++;
        }
        CHECK(bad == 0, "widen %s: %ld of 65536 bit patterns differ from io/half.h", t ? "F16" : "BF16", bad);
    }
    free(src);
    free(dst);
}

/* ═══ 2. kernel bound ═══════════════════════════════════════════════════════ */
static uint16_t round16(float f, attn_dtype t) { return t == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(f) : attn__f32_to_f16(f); }
static float widen1(uint16_t h, attn_dtype t) { return t == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(h) : attn__f16_to_f32(h); }

static void test_kernel_case(tu_rng *r, attn__proj_kernel k, attn_dtype wdt, int64_t M, int64_t N, int64_t K) {
    /* ldw == K for even N: the dot kernel (M <= 8) then takes many rows of W per call */
    const int64_t ldx = K + 3, ldw = N % 2 ? K + 5 : K, ldy = N + 2;
    float *X = malloc((size_t)(M * ldx) * sizeof(float));
    uint16_t *W = malloc((size_t)(N * ldw) * sizeof(uint16_t));
    float *Wf = malloc((size_t)(N * K) * sizeof(float));
    float *Y = malloc((size_t)(M * ldy) * sizeof(float)), *Ys = malloc((size_t)(M * N) * sizeof(float));
    tu_fill(r, X, M * ldx, 1.0f);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < ldw; j++) W[n * ldw + j] = round16((float)(tu_normal(r) / sqrt((double)K)), wdt);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < K; j++) Wf[n * K + j] = widen1(W[n * ldw + j], wdt);
    for (int64_t i = 0; i < M * ldy; i++) Y[i] = 12345.0f; /* sentinel */
    const int nt = attn_get_num_threads();
    const size_t wsn = attn__proj_workspace_size(k, M, N, K, nt);
    void *ws = wsn ? attn__malloc(wsn) : NULL;
    attn__proj(k, M, N, K, X, ldx, W, wdt, ldw, Y, ldy, ws, nt);
    attn__sgemm(0, 1, M, N, K, 1.0f, X, ldx, Wf, K, 0.0f, Ys, N);
    const double u = 0x1p-24, gK = (double)K * u / (1.0 - (double)K * u);
    const double ux = k == ATTN__PROJ_SBGEMM ? 0x1p-8 : 0.0;
    double worst = 0, worst_s = 0;
    long untouched_bad = 0, same_bits = 0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t n = 0; n < N; n++) {
            double ex = 0, ab = 0;
            for (int64_t j = 0; j < K; j++) {
                ex += (double)X[i * ldx + j] * (double)Wf[n * K + j];
                ab += fabs((double)X[i * ldx + j] * (double)Wf[n * K + j]);
            }
            const double bound = (ux + gK * (1.0 + ux)) * ab;
            const double e = fabs((double)Y[i * ldy + n] - ex) / (bound > 0 ? bound : 1e-300);
            if (!(e <= worst)) worst = e; /* NaN -> worst = NaN */
            if (k == ATTN__PROJ_WIDEN) {
                const double es = fabs((double)Y[i * ldy + n] - (double)Ys[i * N + n]) / (2.0 * gK * ab > 0 ? 2.0 * gK * ab : 1e-300);
                if (!(es <= worst_s)) worst_s = es;
                same_bits += attn__f32_bits(Y[i * ldy + n]) == attn__f32_bits(Ys[i * N + n]);
            }
        }
        for (int64_t n = N; n < ldy; n++) untouched_bad += Y[i * ldy + n] != 12345.0f;
    }
    const char *kn = attn__proj_kernel_name(k), *tn = wdt == ATTN_DTYPE_BF16 ? "bf16" : "f16";
    CHECK(worst <= 1.0, "%s %s M %lld N %lld K %lld: error / bound = %g", kn, tn, (long long)M, (long long)N,
          (long long)K, worst);
    CHECK(untouched_bad == 0, "%s %s: %ld padding elements of Y written", kn, tn, untouched_bad);
    if (k == ATTN__PROJ_WIDEN)
        CHECK(worst_s <= 1.0, "widen %s M %lld N %lld K %lld vs attn__sgemm on the widened weights: diff / (2 gamma_K "
              "sum|x||w|) = %g (%ld of %lld bit-identical)", tn, (long long)M, (long long)N, (long long)K, worst_s,
              same_bits, (long long)(M * N));
    attn__free(ws);
    free(X); free(W); free(Wf); free(Y); free(Ys);
}

static void test_kernel_bounds(void) {
    tu_rng r = {11};
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 113}, {7, 257, 64}, {113, 300, 96}, {64, 513, 257},
                                        {3, 64, 1024}, {257, 256, 40}, {0, 5, 5}, {5, 0, 5}, {5, 5, 0}};
    const attn_dtype types[2] = {ATTN_DTYPE_BF16, ATTN_DTYPE_F16};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int t = 0; t < 2; t++) {
            if (shapes[i][0] == 0 || shapes[i][1] == 0) { /* nothing written, nothing read */
                float y = 7.0f;
                uint16_t w = 0;
                attn__proj(ATTN__PROJ_WIDEN, shapes[i][0], shapes[i][1], shapes[i][2], &y, 5, &w, types[t], 5, &y, 5, NULL, 1);
                CHECK(y == 7.0f, "empty product wrote Y");
                continue;
            }
            test_kernel_case(&r, ATTN__PROJ_WIDEN, types[t], shapes[i][0], shapes[i][1], shapes[i][2]);
            if (types[t] == ATTN_DTYPE_BF16 && attn__proj_kernel_for(ATTN_DTYPE_BF16) == ATTN__PROJ_SBGEMM)
                test_kernel_case(&r, ATTN__PROJ_SBGEMM, types[t], shapes[i][0], shapes[i][1], shapes[i][2]);
        }
    CHECK(attn__proj_kernel_for(ATTN_DTYPE_F32) == ATTN__PROJ_SGEMM, "F32 kernel");
    CHECK(attn__proj_kernel_for(ATTN_DTYPE_F16) == ATTN__PROJ_WIDEN, "F16 kernel");
    printf("bf16 projection kernel in this build: %s\n", attn__proj_kernel_name(attn__proj_kernel_for(ATTN_DTYPE_BF16)));
}

/* ═══ a safetensors checkpoint in memory ═══════════════════════════════════
 * The fp32 layer's parameters, the four weights stored as `wdt` (rounded), the
 * others F32; `override` (name, or NULL) gets its first element set to `val`
 * (before rounding) and, with f64 set, is stored as F64. */
typedef struct ckpt { unsigned char *buf; size_t size; } ckpt;

static void put(unsigned char **p, size_t *n, size_t *cap, const void *src, size_t len) {
    while (*n + len > *cap) { *cap = *cap ? 2 * *cap : 4096; *p = realloc(*p, *cap); }
    memcpy(*p + *n, src, len);
    *n += len;
}

static ckpt make_ckpt(attn_mha *f32, attn_dtype wdt, const char *override, float val, int f64) {
    char hdr[8192];
    int hn = snprintf(hdr, sizeof hdr, "{");
    unsigned char *data = NULL;
    size_t dn = 0, dcap = 0;
    const int64_t np = attn_mha_num_params(f32);
    for (int64_t i = 0; i < np; i++) {
        attn_param p;
        attn_mha_param(f32, i, &p);
        const int weight = strstr(p.name, "_proj.weight") != NULL;
        const int ov = override && strcmp(override, p.name) == 0;
        const char *dt = ov && f64 ? "F64" : weight ? (wdt == ATTN_DTYPE_BF16 ? "BF16" : wdt == ATTN_DTYPE_F16 ? "F16" : "F32") : "F32";
        const size_t b0 = dn;
        for (int64_t j = 0; j < p.numel; j++) {
            float v = ov && j == 0 ? val : p.data[j];
            if (ov && f64) { double d = v; put(&data, &dn, &dcap, &d, 8); }
            else if (weight && wdt != ATTN_DTYPE_F32) { uint16_t h = round16(v, wdt); put(&data, &dn, &dcap, &h, 2); }
            else put(&data, &dn, &dcap, &v, 4);
        }
        if (p.ndim == 2)
            hn += snprintf(hdr + hn, sizeof hdr - (size_t)hn, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                           i ? "," : "", p.name, dt, (long long)p.shape[0], (long long)p.shape[1], b0, dn);
        else
            hn += snprintf(hdr + hn, sizeof hdr - (size_t)hn, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                           i ? "," : "", p.name, dt, (long long)p.shape[0], b0, dn);
    }
    hn += snprintf(hdr + hn, sizeof hdr - (size_t)hn, "}");
    ckpt c;
    c.size = 8 + (size_t)hn + dn;
    c.buf = malloc(c.size);
    attn__st_le64(c.buf, (uint64_t)hn);
    memcpy(c.buf + 8, hdr, (size_t)hn);
    memcpy(c.buf + 8 + hn, data, dn);
    free(data);
    return c;
}

/* ═══ 3. layer ══════════════════════════════════════════════════════════════ */
typedef struct lcase {
    const char *name;
    int64_t E, H, Hkv, D, kdim, vdim;
    int bias, causal, rope, qk_norm, layout, cross, kpm;
    int64_t B, Sq, Skv;
} lcase;

static const lcase LCASES[] = {
    {"mha bias", 64, 4, 0, 0, 0, 0, 1, 0, ATTN_ROPE_NONE, 0, ATTN_BATCH_FIRST, 0, 0, 2, 9, 0},
    {"gqa rope-neox causal", 256, 8, 2, 32, 0, 0, 1, 1, ATTN_ROPE_NEOX, 0, ATTN_BATCH_FIRST, 0, 0, 2, 37, 0},
    {"mqa rope-gptj qk-norm padding", 96, 4, 1, 24, 0, 0, 0, 0, ATTN_ROPE_GPTJ, 1, ATTN_BATCH_FIRST, 0, 1, 3, 11, 0},
    {"cross kdim 48 vdim 40", 64, 4, 2, 16, 48, 40, 1, 0, ATTN_ROPE_NONE, 0, ATTN_BATCH_FIRST, 1, 0, 2, 7, 13},
    {"seq-first gqa rope", 128, 4, 2, 32, 0, 0, 0, 1, ATTN_ROPE_NEOX, 0, ATTN_SEQ_FIRST, 0, 0, 3, 5, 0},
};

static void lcase_config(const lcase *lc, attn_dtype wdt, attn_mha_config *cfg) {
    attn_mha_config_init(cfg);
    cfg->embed_dim = lc->E; cfg->num_heads = lc->H; cfg->num_kv_heads = lc->Hkv; cfg->head_dim = lc->D;
    cfg->kdim = lc->kdim; cfg->vdim = lc->vdim;
    cfg->bias_q = cfg->bias_k = cfg->bias_v = cfg->bias_o = lc->bias;
    cfg->causal = lc->causal; cfg->rope = lc->rope; cfg->qk_norm = lc->qk_norm;
    cfg->weight_dtype = wdt;
}

/* the fp32 layer whose values make the checkpoint, and the two layers loaded from it */
typedef struct trio { attn_mha *src, *f, *t; ckpt ck; } trio;

static int trio_make(trio *tr, const lcase *lc, attn_dtype wdt, tu_rng *r) {
    attn_mha_config cfg;
    memset(tr, 0, sizeof *tr);
    lcase_config(lc, ATTN_DTYPE_F32, &cfg);
    if (attn_mha_create(&tr->src, &cfg) != ATTN_OK || attn_mha_create(&tr->f, &cfg) != ATTN_OK) return 0;
    cfg.weight_dtype = wdt;
    attn_status s = attn_mha_create(&tr->t, &cfg);
    CHECK(s == ATTN_OK, "%s: create %d-weight layer: %s", lc->name, (int)wdt, attn_last_error());
    if (s != ATTN_OK) return 0;
    mha_randomize_params(tr->src, r, 0.1, 0.0);
    tr->ck = make_ckpt(tr->src, wdt, NULL, 0, 0);
    attn_st *st = NULL;
    CHECK(attn_st_open_memory(&st, tr->ck.buf, tr->ck.size) == ATTN_OK, "open: %s", attn_last_error());
    s = attn_mha_load(tr->t, st, NULL, ATTN_NAMING_HF);
    CHECK(s == ATTN_OK, "%s: load into the 16-bit layer: %s", lc->name, attn_last_error());
    attn_status s2 = attn_mha_load(tr->f, st, NULL, ATTN_NAMING_HF);
    CHECK(s2 == ATTN_OK, "%s: load into the fp32 layer: %s", lc->name, attn_last_error());
    attn_st_free(st);
    return s == ATTN_OK && s2 == ATTN_OK;
}

static void trio_free(trio *tr) {
    attn_mha_free(tr->src); attn_mha_free(tr->f); attn_mha_free(tr->t);
    free(tr->ck.buf);
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}
static double max_abs_d(const double *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static int g_sbgemm; /* the bf16 layers use the sbgemm kernel */

/* a copy of a (n, exactly fp32 values) rounded to bf16 */
static double *bf16_copy(const double *a, int64_t n) {
    if (!a) return NULL;
    double *o = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) o[i] = attn__bf16_to_f32(attn__f32_to_bf16((float)a[i]));
    return o;
}

/* The o-rounding term of the sbgemm layer bound: ob (E) = u_x (1 + u_x) (1 + 1e-5)
 * sum_j |Wo_ej| vmax_j, with vmax (kvd) the max |v| per kv column and query head
 * h reading kv head h / (Hq / Hkv). Wo (E, qd) in double. */
static void o_round_bound(const attn_mha_config *cfg, const double *Wo, const double *vmax, double *ob) {
    const int64_t E = cfg->embed_dim, Hq = cfg->num_heads, D = cfg->head_dim, G = Hq / cfg->num_kv_heads;
    const double ux = 0x1p-8;
    for (int64_t e = 0; e < E; e++) {
        double acc = 0;
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t d = 0; d < D; d++) acc += fabs(Wo[e * Hq * D + h * D + d]) * vmax[(h / G) * D + d];
        ob[e] = ux * (1.0 + ux) * (1.0 + 1e-5) * acc;
    }
}

/* vmax (kvd) of v = value_in (rows, vin) Wv^T + bv, in double */
static void v_max(const double *vin, int64_t rows, int64_t vin_w, const double *Wv, const double *bv, int64_t kvd,
                  double *vmax) {
    for (int64_t j = 0; j < kvd; j++) vmax[j] = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < kvd; j++) {
            double a = bv ? bv[j] : 0.0;
            for (int64_t k = 0; k < vin_w; k++) a += vin[r * vin_w + k] * Wv[j * vin_w + k];
            if (fabs(a) > vmax[j]) vmax[j] = fabs(a);
        }
}

/* max over elements of (|y - yr| - ob[e]) / scale, e = element % E: <= 2e-5 required */
static double excess(const float *y, const double *yr, const double *ob, int64_t n, int64_t E, double scale) {
    double m = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double d = (fabs((double)y[i] - yr[i]) - ob[i % E]) / scale;
        if (!(d <= m)) m = d;
    }
    return m;
}

static void test_layer_case(const lcase *lc, attn_dtype wdt, tu_rng *r) {
    trio tr;
    const char *tn = wdt == ATTN_DTYPE_BF16 ? "bf16" : "f16";
    if (!trio_make(&tr, lc, wdt, r)) { trio_free(&tr); return; }
    const attn_mha_config *cfg = attn_mha_get_config(tr.f);
    mha_case c;
    memset(&c, 0, sizeof c);
    c.layout = lc->layout; c.B = lc->B; c.Sq = lc->Sq; c.Skv = lc->Skv; c.cross = lc->cross; c.kpm_kind = lc->kpm;
    mha_case_make(&c, cfg, r);
    attn_mha_input in;
    mha_case_input(&c, &in);
    const int64_t ny = lc->B * lc->Sq * lc->E;
    float *yt = malloc((size_t)ny * sizeof(float)), *yf = malloc((size_t)ny * sizeof(float));
    double *yr = malloc((size_t)ny * sizeof(double));
    CHECK(attn_mha_forward(tr.t, &in, yt) == ATTN_OK, "%s %s: forward: %s", lc->name, tn, attn_last_error());
    CHECK(attn_mha_forward(tr.f, &in, yf) == ATTN_OK, "%s: fp32 forward: %s", lc->name, attn_last_error());
    mha_ref_params p;
    mha_ref_params_from_layer(tr.f, &p); /* = the stored 16-bit weights, exactly */
    mha_ref_input ri;
    mha_case_ref_input(&c, &ri);
    CHECK(mha_ref_forward(cfg, &p, &ri, yr) == 0, "%s: reference", lc->name);
    const double scale = max_abs_d(yr, ny) > 1e-3 ? max_abs_d(yr, ny) : 1e-3;
    const double et = mha_rel_err(yt, yr, ny, 1e-3), ef = mha_rel_err(yf, yr, ny, 1e-3);
    const double dtf = max_abs_diff(yt, yf, ny) / scale;
    const int sb = g_sbgemm && wdt == ATTN_DTYPE_BF16;
    printf("  %-32s %s: err vs f64 %.2e (fp32 layer %.2e), |y16 - y32| %.2e%s\n", lc->name, tn, et, ef, dtf,
           dtf == 0 ? " (bit-identical)" : "");
    CHECK(ef <= 2e-5, "%s: fp32 layer error %g", lc->name, ef);
    if (sb) { /* the reference fed bf16 inputs; the o rounding bounded per output column */
        double *xr = bf16_copy(c.xd, c.nx), *kr = bf16_copy(c.keyd, c.nkey), *vr = bf16_copy(c.valued, c.nvalue);
        ri.x = xr; ri.key = kr; ri.value = vr;
        CHECK(mha_ref_forward(cfg, &p, &ri, yr) == 0, "%s: reference (bf16 inputs)", lc->name);
        const int64_t kvd = cfg->num_kv_heads * cfg->head_dim, rows_k = lc->B * (lc->cross ? lc->Skv : lc->Sq);
        const double *vin = !lc->cross ? xr : vr ? vr : kr;
        const int64_t vin_w = !lc->cross ? lc->E : cfg->vdim;
        double *vmax = malloc((size_t)kvd * sizeof(double)), *ob = malloc((size_t)lc->E * sizeof(double));
        v_max(vin, rows_k, vin_w, p.w[2], p.b[2], kvd, vmax);
        o_round_bound(cfg, p.w[3], vmax, ob);
        double obmax = 0;
        for (int64_t e = 0; e < lc->E; e++) obmax = ob[e] > obmax ? ob[e] : obmax;
        const double ex = excess(yt, yr, ob, ny, lc->E, scale);
        printf("  %-32s %s: sbgemm: error vs f64(bf16 inputs) %.2e, o-rounding bound up to %.2e, excess %.2e\n",
               lc->name, tn, mha_rel_err(yt, yr, ny, 1e-3), obmax / scale, ex);
        CHECK(ex <= 2e-5, "%s %s (sbgemm): |y - y_ref(bf16 x)| exceeds the o-rounding bound by %g max|y_ref|", lc->name,
              tn, ex);
        free(xr); free(kr); free(vr); free(vmax); free(ob);
    } else {
        CHECK(et <= 2e-5, "%s %s: error %g > 2e-5 (the fp32 layer's bound)", lc->name, tn, et);
        CHECK(dtf <= 4e-5, "%s %s: |y16 - y32| / max|y_ref| = %g > 4e-5", lc->name, tn, dtf);
    }
    mha_ref_params_free(&p);
    mha_case_free(&c);
    free(yt); free(yf); free(yr);
    trio_free(&tr);
}

/* KV cache: a 6-token prefill then 3 single-token steps; the 16-bit layer against the fp32 one */
static void test_cached(attn_dtype wdt, tu_rng *r) {
    const lcase *lc = &LCASES[1];
    trio tr;
    if (!trio_make(&tr, lc, wdt, r)) { trio_free(&tr); return; }
    const int64_t B = 2, E = lc->E, steps[4] = {6, 1, 1, 1};
    attn_kvcache *ct = NULL, *cf = NULL;
    CHECK(attn_kvcache_create(&ct, B, 16, 2, 32) == ATTN_OK && attn_kvcache_create(&cf, B, 16, 2, 32) == ATTN_OK,
          "kvcache: %s", attn_last_error());
    float *x = malloc((size_t)(B * 6 * E) * sizeof(float)), *yt = malloc((size_t)(B * 6 * E) * sizeof(float));
    float *yf = malloc((size_t)(B * 6 * E) * sizeof(float));
    const int sb = g_sbgemm && wdt == ATTN_DTYPE_BF16;
    const attn_mha_config *cfg = attn_mha_get_config(tr.f);
    const int64_t kvd = 64;
    double worst = 0, scale = 0, wex = -INFINITY, *ob = malloc((size_t)E * sizeof(double)), vmax[64];
    double *Wo = malloc((size_t)(E * 256) * sizeof(double));
    float *kc = malloc((size_t)(16 * kvd) * sizeof(float)), *vc = malloc((size_t)(16 * kvd) * sizeof(float));
    attn_param po;
    attn_mha_find_param(tr.f, "o_proj.weight", &po);
    for (int64_t j = 0; j < po.numel; j++) Wo[j] = po.data[j];
    for (int i = 0; i < 4; i++) {
        const int64_t n = B * steps[i] * E;
        tu_fill(r, x, n, 1.0f);
        if (sb) /* sbgemm: both layers fed bf16 inputs (see the top) */
            for (int64_t j = 0; j < n; j++) x[j] = attn__bf16_to_f32(attn__f32_to_bf16(x[j]));
        CHECK(attn_mha_forward_cached(tr.t, ct, x, B, steps[i], yt) == ATTN_OK, "cached %d: %s", i, attn_last_error());
        CHECK(attn_mha_forward_cached(tr.f, cf, x, B, steps[i], yf) == ATTN_OK, "cached f32 %d: %s", i, attn_last_error());
        const double d = max_abs_diff(yt, yf, n);
        for (int64_t j = 0; j < n; j++) scale = fabs((double)yf[j]) > scale ? fabs((double)yf[j]) : scale;
        worst = d > worst ? d : worst;
        if (sb) { /* vmax over the fp32 layer's cached V */
            for (int64_t j = 0; j < kvd; j++) vmax[j] = 0;
            for (int64_t b = 0; b < B; b++) {
                const int64_t len = attn_kvcache_len(cf, b);
                attn_kvcache_read(cf, b, 0, len, kc, vc);
                for (int64_t t = 0; t < len * kvd; t++)
                    if (fabs((double)vc[t]) > vmax[t % kvd]) vmax[t % kvd] = fabs((double)vc[t]);
            }
            o_round_bound(cfg, Wo, vmax, ob);
            double *yfd = malloc((size_t)n * sizeof(double));
            for (int64_t j = 0; j < n; j++) yfd[j] = yf[j];
            const double ex = excess(yt, yfd, ob, n, E, scale > 1e-3 ? scale : 1e-3);
            wex = ex > wex ? ex : wex;
            free(yfd);
        }
    }
    const double rel = worst / (scale > 1e-3 ? scale : 1e-3);
    printf("  %-32s %s: |y16 - y32| %.2e%s\n", "kv-cache prefill + 3 decode", wdt == ATTN_DTYPE_BF16 ? "bf16" : "f16", rel,
           sb ? " (sbgemm, bf16 inputs)" : "");
    if (!sb)
        CHECK(rel <= 4e-5, "cached %d: |y16 - y32| / max|y32| = %g > 4e-5", (int)wdt, rel);
    else
        CHECK(wex <= 4e-5, "cached bf16 (sbgemm): |y16 - y32| exceeds the o-rounding bound by %g max|y|", wex);
    free(ob); free(Wo); free(kc); free(vc);
    attn_kvcache_free(ct); attn_kvcache_free(cf);
    free(x); free(yt); free(yf);
    trio_free(&tr);
}

/* ═══ 4. determinism, round trips, init, bytes ══════════════════════════════ */
static void test_threads_and_roundtrip(attn_dtype wdt, tu_rng *r) {
    const lcase *lc = &LCASES[1]; /* N = 384: two panels */
    trio tr;
    if (!trio_make(&tr, lc, wdt, r)) { trio_free(&tr); return; }
    const int64_t B = 3, S = 70, n = B * S * lc->E;
    float *x = malloc((size_t)n * sizeof(float)), *y1 = malloc((size_t)n * sizeof(float));
    float *y2 = malloc((size_t)n * sizeof(float)), *y3 = malloc((size_t)n * sizeof(float));
    tu_fill(r, x, n, 1.0f);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;
    const int nt0 = attn_get_num_threads();
    attn_set_num_threads(1);
    CHECK(attn_mha_forward(tr.t, &in, y1) == ATTN_OK, "1 thread: %s", attn_last_error());
    attn_set_num_threads(2);
    CHECK(attn_mha_forward(tr.t, &in, y2) == ATTN_OK, "2 threads: %s", attn_last_error());
    attn_set_num_threads(nt0);
    CHECK(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0, "%d: 1 vs 2 threads differ", (int)wdt);

    /* save (widened F32) -> load into a fresh layer of the same type: the same bits */
    attn_st_writer *w = NULL;
    char path[128];
    snprintf(path, sizeof path, "/tmp/attn_test_typed_%d_%ld.safetensors", (int)wdt, (long)getpid());
    CHECK(attn_st_writer_create(&w) == ATTN_OK && attn_mha_save(tr.t, w, "l") == ATTN_OK &&
          attn_st_writer_save(w, path) == ATTN_OK, "save: %s", attn_last_error());
    attn_st_writer_free(w);
    attn_mha_config cfg;
    lcase_config(lc, wdt, &cfg);
    attn_mha *t2 = NULL;
    attn_st *st = NULL;
    CHECK(attn_mha_create(&t2, &cfg) == ATTN_OK && attn_st_open(&st, path) == ATTN_OK &&
          attn_mha_load(t2, st, "l", ATTN_NAMING_HF) == ATTN_OK, "reload: %s", attn_last_error());
    CHECK(attn_mha_forward(t2, &in, y3) == ATTN_OK, "reloaded forward: %s", attn_last_error());
    CHECK(memcmp(y1, y3, (size_t)n * sizeof(float)) == 0, "%d: save -> load changed the weights", (int)wdt);
    /* the saved tensors are the widened 16-bit values of the checkpoint */
    attn_param pq;
    attn_mha_find_param(tr.src, "q_proj.weight", &pq);
    float *q = malloc((size_t)pq.numel * sizeof(float));
    CHECK(attn_st_read_f32(st, "l.q_proj.weight", q, pq.numel, 2, pq.shape) == ATTN_OK, "read q: %s", attn_last_error());
    long bad = 0;
    for (int64_t j = 0; j < pq.numel; j++) bad += attn__f32_bits(q[j]) != attn__f32_bits(widen1(round16(pq.data[j], wdt), wdt));
    CHECK(bad == 0, "%d: %ld saved q_proj values are not the rounded checkpoint values", (int)wdt, bad);
    free(q);
    attn_st_free(st);
    remove(path);

    /* init_weights: the fp32 layer's values for the seed, rounded to nearest even */
    const int schemes[2] = {ATTN_INIT_XAVIER_UNIFORM, ATTN_INIT_NORMAL};
    for (int sc = 0; sc < 2; sc++) {
        CHECK(attn_mha_init_weights(tr.t, (attn_init_scheme)schemes[sc], 77) == ATTN_OK, "init: %s", attn_last_error());
        CHECK(attn_mha_init_weights(tr.f, (attn_init_scheme)schemes[sc], 77) == ATTN_OK, "init f32: %s", attn_last_error());
        attn_st_writer_create(&w);
        attn_mha_save(tr.t, w, NULL);
        attn_st_writer_save(w, path);
        attn_st_writer_free(w);
        attn_st_open(&st, path);
        const char *names[4] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"};
        bad = 0;
        for (int i = 0; i < 4; i++) {
            attn_param pf;
            attn_mha_find_param(tr.f, names[i], &pf);
            float *v = malloc((size_t)pf.numel * sizeof(float));
            attn_st_read_f32(st, names[i], v, pf.numel, 2, pf.shape);
            for (int64_t j = 0; j < pf.numel; j++) bad += attn__f32_bits(v[j]) != attn__f32_bits(widen1(round16(pf.data[j], wdt), wdt));
            free(v);
        }
        CHECK(bad == 0, "init scheme %d type %d: %ld weights are not the fp32 values rounded", sc, (int)wdt, bad);
        attn_st_free(st);
        remove(path);
    }

    /* bytes: 2 per weight element, no gradients */
    const int64_t nw = lc->E * 256 + 2 * (2 * 32) * lc->E + lc->E * 256; /* Wq, Wk, Wv, Wo */
    const size_t bt = attn_mha_param_bytes(tr.t), bf = attn_mha_param_bytes(tr.f);
    CHECK(bt >= (size_t)nw * 2 && bt < (size_t)nw * 2 + 16384, "param bytes %zu for %lld 16-bit weights", bt, (long long)nw);
    CHECK(bf >= (size_t)nw * 8, "fp32 layer param bytes %zu (weights + grads)", bf);
    attn_param pw, pb;
    CHECK(attn_mha_find_param(tr.t, "q_proj.weight", &pw) == ATTN_OK && !pw.data && !pw.grad && !pw.trainable,
          "16-bit weight param: data %p grad %p trainable %d", (void *)pw.data, (void *)pw.grad, pw.trainable);
    CHECK(attn_mha_find_param(tr.t, "q_proj.bias", &pb) == ATTN_OK && pb.data && !pb.grad && !pb.trainable,
          "bias param of a 16-bit layer");
    CHECK(attn_mha_num_trainable(tr.t) == 0, "trainable count");
    CHECK(strcmp(attn_mha_proj_kernel(tr.f), "sgemm") == 0, "fp32 kernel name %s", attn_mha_proj_kernel(tr.f));
    attn_mha_free(t2);
    free(x); free(y1); free(y2); free(y3);
    trio_free(&tr);
}

/* ═══ 5. refusals ═══════════════════════════════════════════════════════════ */
static void test_refusals(tu_rng *r) {
    attn_mha_config cfg;
    lcase_config(&LCASES[0], ATTN_DTYPE_F32, &cfg);
    attn_mha *m = NULL;
    const attn_dtype bad[4] = {ATTN_DTYPE_F64, ATTN_DTYPE_I8, ATTN_DTYPE_OTHER, (attn_dtype)99};
    for (int i = 0; i < 4; i++) {
        cfg.weight_dtype = bad[i];
        CHECK_FAILS(attn_mha_create(&m, &cfg), ATTN_ERR_CONFIG, "weight_dtype");
        CHECK(m == NULL, "out written on error");
    }
    /* a caller built before weight_dtype existed: struct_size stops before it -> F32 */
    lcase_config(&LCASES[0], ATTN_DTYPE_BF16, &cfg);
    cfg.struct_size = (uint32_t)offsetof(attn_mha_config, weight_dtype);
    CHECK(attn_mha_create(&m, &cfg) == ATTN_OK && attn_mha_get_config(m)->weight_dtype == ATTN_DTYPE_F32 &&
          strcmp(attn_mha_proj_kernel(m), "sgemm") == 0, "older struct_size: %s", attn_last_error());
    attn_mha_free(m);
    m = NULL;

    trio tr;
    if (!trio_make(&tr, &LCASES[0], ATTN_DTYPE_F16, r)) { trio_free(&tr); return; }
    attn_mha *t = tr.t;
    CHECK_FAILS(attn_mha_set_training(t, 1), ATTN_ERR_UNSUPPORTED, "training keeps fp32 master weights");
    CHECK(attn_mha_set_training(t, 0) == ATTN_OK, "eval mode stays allowed");
    float dy[64] = {0}, dx[64];
    CHECK_FAILS(attn_mha_backward(t, dy, dx, NULL, NULL), ATTN_ERR_UNSUPPORTED, "inference only");
    CHECK_FAILS(attn_mha_lora_attach(t, ATTN_PROJ_Q, 4, 8.0f, 1), ATTN_ERR_UNSUPPORTED, "F16 weights");
    CHECK(attn_mha_zero_grad(t) == ATTN_OK, "zero_grad: %s", attn_last_error());
    /* optimiser: every parameter frozen (skipped); one forced trainable has no fp32 data */
    const int64_t np = attn_mha_num_params(t);
    attn_param ps[18];
    for (int64_t i = 0; i < np; i++) attn_mha_param(t, i, &ps[i]);
    attn_optim *o = NULL;
    attn_optim_create_sgd(&o, 0.1f, 0.0f, 0.0f);
    CHECK(attn_optim_step(o, ps, np) == ATTN_OK, "optim on frozen params: %s", attn_last_error());
    ps[0].trainable = 1;
    CHECK_FAILS(attn_optim_step(o, ps, np), ATTN_ERR_NULL, "NULL data");
    attn_optim_free(o);

    /* load: F16 overflow and F64 refused, the layer unchanged (all-or-nothing) */
    const int64_t n = 2 * 3 * 64;
    float x[2 * 3 * 64], y0[2 * 3 * 64], y1[2 * 3 * 64];
    tu_fill(r, x, n, 1.0f);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = 2; in.seq_q = 3; in.x = x;
    attn_mha_forward(t, &in, y0);
    ckpt big = make_ckpt(tr.src, ATTN_DTYPE_F32, "o_proj.weight", 70000.0f, 0);
    ckpt f64 = make_ckpt(tr.src, ATTN_DTYPE_F32, "k_proj.weight", 0.5f, 1);
    ckpt bfbig = make_ckpt(tr.src, ATTN_DTYPE_BF16, "v_proj.weight", -1e6f, 0);
    attn_st *st = NULL;
    attn_st_open_memory(&st, big.buf, big.size);
    CHECK_FAILS(attn_mha_load(t, st, NULL, ATTN_NAMING_HF), ATTN_ERR_DTYPE, "outside the F16 range");
    CHECK(attn_mha_load(tr.f, st, NULL, ATTN_NAMING_HF) == ATTN_OK, "fp32 layer takes 70000");
    attn_st_free(st);
    attn_st_open_memory(&st, bfbig.buf, bfbig.size);
    CHECK_FAILS(attn_mha_load(t, st, NULL, ATTN_NAMING_HF), ATTN_ERR_DTYPE, "v_proj.weight");
    attn_st_free(st);
    attn_st_open_memory(&st, f64.buf, f64.size);
    CHECK_FAILS(attn_mha_load(t, st, NULL, ATTN_NAMING_HF), ATTN_ERR_DTYPE, "F64");
    attn_st_free(st);
    attn_mha_forward(t, &in, y1);
    CHECK(memcmp(y0, y1, sizeof y0) == 0, "a refused load changed the layer");
    /* a BF16 layer takes the same 70000 (in range) */
    attn_mha_config bc;
    lcase_config(&LCASES[0], ATTN_DTYPE_BF16, &bc);
    attn_mha *b = NULL;
    attn_mha_create(&b, &bc);
    attn_st_open_memory(&st, big.buf, big.size);
    CHECK(attn_mha_load(b, st, NULL, ATTN_NAMING_HF) == ATTN_OK, "bf16 layer, 70000: %s", attn_last_error());
    attn_st_free(st);
    attn_mha_free(b);
    free(big.buf); free(f64.buf); free(bfbig.buf);
    trio_free(&tr);
}

int main(void) {
    tu_rng r = {2026};
    g_sbgemm = attn__proj_kernel_for(ATTN_DTYPE_BF16) == ATTN__PROJ_SBGEMM;
    test_widen_exhaustive();
    test_kernel_bounds();
    const attn_dtype types[2] = {ATTN_DTYPE_BF16, ATTN_DTYPE_F16};
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < sizeof LCASES / sizeof LCASES[0]; i++) test_layer_case(&LCASES[i], types[t], &r);
        test_cached(types[t], &r);
        test_threads_and_roundtrip(types[t], &r);
    }
    test_refusals(&r);
    return test_summary("test_mha_typed_weights");
}
