/* SPDX-License-Identifier: MIT */
/* test_sdpa_typed_torch.c — attn's bf16 / f16 sdpa error against PyTorch's
 * own bf16 / f16 scaled_dot_product_attention on the same inputs.
 *
 * tests/fixtures/typed/torch_bound.json (written by scripts/gen_typed_bound.py
 * with PyTorch; see there) lists configurations and, for each, PyTorch's max
 * abs error of o, dq, dk, dv against the float64 SDPA of the same rounded
 * inputs. This test regenerates the inputs bit for bit (the script's
 * counter-based generator), runs attn_sdpa_fwd_typed / attn_sdpa_bwd_typed
 * with every tensor in the case's dtype (dO and the saved o too) on every ISA,
 * computes attn's error against attn_ref_sdpa_* (float64) and requires
 *   err_attn <= 2 * err_torch      for o, dq, dk, dv
 * (issue 12's bound). On this file's cases err_torch is never 0 except where
 * attn's result is exact too (one visible key). */
#include "testutil.h"
#include "core/core.h"
#include "io/file.h"
#include "io/half.h"
#include "io/json.h"
#include "kernels/ref/sdpa_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif

static uint64_t splitmix_at(uint64_t seed, uint64_t i) { /* output i (0-based) of splitmix64 from seed */
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void gen(uint64_t seed, int64_t n, float amp, float *x) {
    for (int64_t i = 0; i < n; i++) {
        double u[3];
        for (int t = 0; t < 3; t++) u[t] = (double)(splitmix_at(seed, (uint64_t)(3 * i + t)) >> 40) * 0x1p-24;
        x[i] = (float)(2.0 * (u[0] + u[1] + u[2] - 1.5)) * amp;
    }
}

static int64_t jint(attn_json o, const char *key) {
    attn_json v;
    attn_json_num n = {0};
    if (attn__json_get(o, key, &v) == 1 && v.type == ATTN_JSON_NUMBER) attn__json_num(v, &n);
    return n.is_int ? n.i : (int64_t)n.d;
}
static double jnum(attn_json o, const char *key) {
    attn_json v;
    attn_json_num n = {0};
    if (attn__json_get(o, key, &v) == 1 && v.type == ATTN_JSON_NUMBER) attn__json_num(v, &n);
    return n.d;
}

typedef struct tens {
    int64_t n;
    float *f;      /* rounded values as fp32 */
    double *d;     /* the same in float64 (reference inputs / outputs) */
    uint16_t *h;   /* the case's dtype */
} tens;

static void tens_alloc(tens *t, int64_t n) {
    t->n = n;
    t->f = calloc((size_t)n + 1, sizeof(float));
    t->d = calloc((size_t)n + 1, sizeof(double));
    t->h = calloc((size_t)n + 1, sizeof(uint16_t));
}
static void tens_free(tens *t) { free(t->f); free(t->d); free(t->h); }
static void tens_round(tens *t, attn_dtype dt) {
    for (int64_t i = 0; i < t->n; i++) {
        t->h[i] = dt == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(t->f[i]) : attn__f32_to_f16(t->f[i]);
        t->f[i] = dt == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(t->h[i]) : attn__f16_to_f32(t->h[i]);
        t->d[i] = t->f[i];
    }
}
static double max_err16(const tens *t, attn_dtype dt, const double *ref) {
    double e = 0;
    for (int64_t i = 0; i < t->n; i++) {
        const double x = dt == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(t->h[i]) : attn__f16_to_f32(t->h[i]);
        const double d = fabs(x - ref[i]);
        if (!(d <= e)) e = d; /* NaN sticks */
    }
    return e;
}

static void run_case(attn_json c, int idx, double worst[2][4], int *nrun) {
    char dts[8] = "";
    attn_json v;
    if (attn__json_get(c, "dtype", &v) == 1 && v.type == ATTN_JSON_STRING) attn__json_str_get(v, dts, sizeof dts);
    const attn_dtype dt = !strcmp(dts, "bf16") ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F16;
    const int64_t Sq = jint(c, "Sq"), Sk = jint(c, "Sk"), Hq = jint(c, "Hq"), Hkv = jint(c, "Hkv"), D = jint(c, "D");
    const int causal = (int)jint(c, "causal");
    const uint64_t seed = (uint64_t)jint(c, "seed");
    const float amp = (float)jnum(c, "amp");
    char mask_s[8] = "";
    if (attn__json_get(c, "mask", &v) == 1 && v.type == ATTN_JSON_STRING) attn__json_str_get(v, mask_s, sizeof mask_s);
    attn_json te;
    CHECK(attn__json_get(c, "torch_err", &te) == 1 && te.type == ATTN_JSON_OBJECT, "case %d: no torch_err", idx);
    const double terr[4] = {jnum(te, "o"), jnum(te, "dq"), jnum(te, "dk"), jnum(te, "dv")};
    CHECK(Sq >= 1 && Sk >= 1 && Hq >= 1 && Hkv >= 1 && Hq % Hkv == 0 && D >= 1 && D <= 256 && Sq * Sk <= 1 << 20,
          "case %d: bad shape", idx);
    if (tu_fail) return;

    tens q, k, vv, dO, o, dq, dk, dv;
    tens_alloc(&q, Sq * Hq * D); tens_alloc(&k, Sk * Hkv * D); tens_alloc(&vv, Sk * Hkv * D);
    tens_alloc(&dO, Sq * Hq * D); tens_alloc(&o, Sq * Hq * D); tens_alloc(&dq, Sq * Hq * D);
    tens_alloc(&dk, Sk * Hkv * D); tens_alloc(&dv, Sk * Hkv * D);
    gen(seed + 1, q.n, amp, q.f); gen(seed + 2, k.n, 1.0f, k.f); gen(seed + 3, vv.n, 1.0f, vv.f);
    gen(seed + 4, dO.n, 1.0f, dO.f);
    tens_round(&q, dt); tens_round(&k, dt); tens_round(&vv, dt); tens_round(&dO, dt);
    uint8_t *mask = NULL;
    attn_sdpa_dims d = {1, Sq, Sk, Hq, Hkv, D, D};
    attn_sdpa_opts op;
    attn_sdpa_opts_init(&op);
    op.causal = causal;
    if (!strcmp(mask_s, "bool")) {
        mask = malloc((size_t)(Sq * Sk));
        for (int64_t i = 0; i < Sq * Sk; i++) mask[i] = (splitmix_at(seed + 5, (uint64_t)i) >> 61) != 0;
        for (int64_t i = 0; i < Sq; i++) mask[i * Sk] = 1;
        op.mask_kind = ATTN_MASK_BOOL;
        op.mask = mask;
        op.mask_stride_b = 0; op.mask_stride_h = 0; op.mask_stride_q = Sk;
    }
    double *ro = malloc(sizeof(double) * (size_t)o.n), *rl = malloc(sizeof(double) * (size_t)(Hq * Sq));
    double *rdq = malloc(sizeof(double) * (size_t)dq.n), *rdk = malloc(sizeof(double) * (size_t)dk.n);
    double *rdv = malloc(sizeof(double) * (size_t)dv.n);
    CHECK(attn_ref_sdpa_fwd(&d, q.d, k.d, vv.d, ro, rl, &op) == ATTN_OK, "ref fwd: %s", attn_last_error());
    CHECK(attn_ref_sdpa_bwd(&d, q.d, k.d, vv.d, dO.d, rdq, rdk, rdv, &op) == ATTN_OK, "ref bwd: %s", attn_last_error());
    float *lse = malloc(sizeof(float) * (size_t)(Hq * Sq));
    static const char *names[4] = {"o", "dq", "dk", "dv"};
    for (int isa = 0; isa <= (int)attn_isa_detected(); isa++) {
        attn_isa_set((attn_isa)isa);
        const attn_tview tq = attn_tview_bshd(q.h, dt, Sq, Hq, D), tk = attn_tview_bshd(k.h, dt, Sk, Hkv, D);
        const attn_tview tv = attn_tview_bshd(vv.h, dt, Sk, Hkv, D), to = attn_tview_bshd(o.h, dt, Sq, Hq, D);
        const attn_tview tdo = attn_tview_bshd(dO.h, dt, Sq, Hq, D), tdq = attn_tview_bshd(dq.h, dt, Sq, Hq, D);
        const attn_tview tdk = attn_tview_bshd(dk.h, dt, Sk, Hkv, D), tdv = attn_tview_bshd(dv.h, dt, Sk, Hkv, D);
        attn_status st = attn_sdpa_fwd_typed(&d, tq, tk, tv, to, lse, &op, NULL, 0);
        CHECK(st == ATTN_OK, "case %d fwd: %s", idx, attn_last_error());
        st = attn_sdpa_bwd_typed(&d, tq, tk, tv, to, tdo, lse, tdq, tdk, tdv, &op, NULL, 0);
        CHECK(st == ATTN_OK, "case %d bwd: %s", idx, attn_last_error());
        const double e[4] = {max_err16(&o, dt, ro), max_err16(&dq, dt, rdq), max_err16(&dk, dt, rdk),
                             max_err16(&dv, dt, rdv)};
        for (int x = 0; x < 4; x++) {
            CHECK(e[x] <= 2.0 * terr[x], "[%s] case %d (%s Sq %lld Sk %lld Hq %lld Hkv %lld D %lld causal %d mask %s "
                                         "amp %g) %s: attn err %.3e > 2 x torch %.3e",
                  attn_isa_name((attn_isa)isa), idx, dts, (long long)Sq, (long long)Sk, (long long)Hq, (long long)Hkv,
                  (long long)D, causal, mask_s, (double)amp, names[x], e[x], terr[x]);
            const double r = terr[x] > 0 ? e[x] / terr[x] : (e[x] > 0 ? INFINITY : 0);
            if (!(r <= worst[dt == ATTN_DTYPE_F16][x])) worst[dt == ATTN_DTYPE_F16][x] = r;
        }
        (*nrun)++;
    }
    attn_isa_set(attn_isa_detected());
    free(ro); free(rl); free(rdq); free(rdk); free(rdv); free(lse); free(mask);
    tens_free(&q); tens_free(&k); tens_free(&vv); tens_free(&dO); tens_free(&o); tens_free(&dq); tens_free(&dk);
    tens_free(&dv);
}

int main(void) {
    const char *path = ATTN_SOURCE_DIR "/tests/fixtures/typed/torch_bound.json";
    char *text = NULL;
    size_t len = 0;
    attn_status st = attn__file_read_all(path, (size_t)1 << 24, &text, &len);
    CHECK(st == ATTN_OK, "read %s: %s", path, attn_last_error());
    if (st) return test_summary("test_sdpa_typed_torch");
    attn_json root, cases;
    CHECK(attn__json_parse(text, len, &root, NULL) == 0, "parse %s", path);
    CHECK(attn__json_get(root, "cases", &cases) == 1 && cases.type == ATTN_JSON_ARRAY, "%s: no cases", path);
    double worst[2][4] = {{0}};
    int n = 0, nrun = 0;
    attn_json_iter it;
    attn__json_iter_init(&it, cases);
    attn_json key, c;
    while (attn__json_next(&it, &key, &c) && !tu_fail) run_case(c, n++, worst, &nrun);
    CHECK(n >= 90, "only %d cases in %s", n, path);
    printf("test_sdpa_typed_torch: %d cases, %d runs (cases x ISAs); worst attn err / torch err:\n", n, nrun);
    for (int t = 0; t < 2; t++)
        printf("  %s: o %.3f  dq %.3f  dk %.3f  dv %.3f\n", t ? "f16 " : "bf16", worst[t][0], worst[t][1], worst[t][2],
               worst[t][3]);
    attn__free(text);
    return test_summary("test_sdpa_typed_torch");
}
