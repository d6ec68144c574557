/* SPDX-License-Identifier: MIT */
/* test_sdpa_typed.c — attn_sdpa_fwd_typed / attn_sdpa_bwd_typed (bf16 / f16
 * and mixed element types) against the float64 reference fed the SAME
 * rounded inputs, on every ISA the CPU has.
 *
 * Each of >= 2,000 seeded random configurations (the parity suite's
 * generator: every mask kind, GQA / MQA, varlen, windows, ALiBi, softcap,
 * dropout, strided / packed / KV-cache views) draws element types for the
 * eight tensors (all BF16, all F16, BF16 in with fp32 out, or any mix), rounds
 * the inputs to their types, and runs the typed forward and backward on
 * 16-bit twins of the views (same strides, sentinel-filled gaps). Pass
 * criterion per output tensor (attn.h "Reduced precision"):
 *   max|got - ref| <= 2 * max|naive - ref| + floor + u_out * max|ref| + fast
 * where naive, floor are test_sdpa_parity's fp32 yardstick and floor on the
 * rounded inputs (the computation is fp32's), u_out the unit roundoff of the
 * output's type (2^-8 BF16, 2^-11 F16, 0 F32) plus half its subnormal
 * spacing (2^-25 for F16: outputs below 2^-14 round absolutely), and
 * "fast", the bf16 fast path's own rounding (cond: sc_ref_cond's sums):
 *   o  2^-8 cond_o   (P rounded to bf16: |sum_j (p~ - p) v| <= 2^-8 sum_j p |v|)
 * and, when the backward takes the fast path too (dO BF16, Dv even):
 *   dv 2^-8 cond_dv  (P rounded: <= 2^-8 sum_i P |dO|)
 *   dk 2^-8 cond_dk  (dS rounded: <= 2^-8 sum_i |dS| |q|, |dS| <= |scale| P (|dO||v| + |dO||o|))
 *   dq 2^-16 cond_dq (dS as a bf16 pair hi + lo: lo's rounding, 2^-8 of 2^-8 |dS|).
 * Also: inputs unchanged, nothing written outside output
 * views, bit-identical results at 1 and 3 threads, and bad dtypes refused.
 *
 * Usage: test_sdpa_typed [configs [seed]]; ATTN_TEST_SCALE scales the count. */
#include "sdpa_cases.h"
#include "testutil.h"
#include "io/half.h"
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENT16 0x7FC1u /* a NaN in both 16-bit formats */

static uint16_t to16(attn_dtype t, float x) { return t == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(x) : attn__f32_to_f16(x); }
static float from16(attn_dtype t, uint16_t x) { return t == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(x) : attn__f16_to_f32(x); }
static double unit_roundoff(attn_dtype t) {
    return t == ATTN_DTYPE_BF16 ? 0x1p-8 : t == ATTN_DTYPE_F16 ? 0x1p-11 : 0.0;
}
/* Half the spacing of the type's subnormals: the absolute rounding error below its normal range. */
static double half_subnormal(attn_dtype t) {
    return t == ATTN_DTYPE_BF16 ? 0x1p-134 : t == ATTN_DTYPE_F16 ? 0x1p-25 : 0.0;
}

/* A 16-bit twin of an fp32 case tensor: same offsets and strides. */
typedef struct twin {
    sc_tensor *t;
    attn_dtype dt;
    uint16_t *buf; /* NULL for F32 (the case's own tensor is used) */
} twin;

static attn_tview twin_view(const twin *w) {
    if (w->dt == ATTN_DTYPE_F32) return attn_tview_f32(w->t->v);
    attn_tview v = {w->buf + (w->t->v.data - w->t->buf), w->t->v.stride_b, w->t->v.stride_s, w->t->v.stride_h, w->dt};
    return v;
}

static void twin_alloc(twin *w, sc_tensor *t, attn_dtype dt) {
    w->t = t;
    w->dt = dt;
    w->buf = NULL;
    if (dt == ATTN_DTYPE_F32) return;
    w->buf = malloc((t->nbuf + 1) * sizeof(uint16_t));
    for (size_t i = 0; i < t->nbuf; i++) w->buf[i] = SENT16;
}

/* Input: rounds the fp32 tensor's logical elements to dt and writes them to the twin. */
static void twin_round_in(twin *w) {
    sc_tensor *t = w->t;
    if (w->dt == ATTN_DTYPE_F32) return;
    for (int64_t b = 0; b < t->B; b++)
        for (int64_t s = 0; s < t->S; s++)
            for (int64_t h = 0; h < t->H; h++) {
                float *x = sc_at(t, b, s, h);
                uint16_t *y = w->buf + (x - t->buf);
                for (int64_t d = 0; d < t->D; d++) {
                    y[d] = to16(w->dt, x[d]);
                    x[d] = from16(w->dt, y[d]);
                }
            }
}

static void twin_reset_out(twin *w) {
    if (w->dt != ATTN_DTYPE_F32)
        for (size_t i = 0; i < w->t->nbuf; i++) w->buf[i] = SENT16;
}

/* Output: copies the twin's logical elements into the fp32 tensor; returns 1
 * iff every other element of the twin still holds the sentinel. */
static int twin_read_out(twin *w) {
    sc_tensor *t = w->t;
    if (w->dt == ATTN_DTYPE_F32) return 1;
    uint16_t *copy = malloc((t->nbuf + 1) * sizeof(uint16_t));
    memcpy(copy, w->buf, t->nbuf * sizeof(uint16_t));
    for (int64_t b = 0; b < t->B; b++)
        for (int64_t s = 0; s < t->S; s++)
            for (int64_t h = 0; h < t->H; h++) {
                float *x = sc_at(t, b, s, h);
                uint16_t *y = copy + (x - t->buf);
                for (int64_t d = 0; d < t->D; d++) {
                    x[d] = from16(w->dt, y[d]);
                    y[d] = SENT16;
                }
            }
    int ok = 1;
    for (size_t i = 0; i < t->nbuf; i++) ok &= copy[i] == SENT16;
    free(copy);
    return ok;
}

static void twin_free(twin *w) { free(w->buf); }

static const int64_t seqs[] = {1, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 113, 127, 128, 129, 200, 257};
static const int64_t dimsl[] = {8, 8, 40, 64, 64, 80, 128, 256, 1, 3, 17, 33, 100};

enum { T_Q, T_K, T_V, T_O, T_DO, T_DQ, T_DK, T_DV };

static void draw_types(tu_rng *r, attn_dtype *t) {
    static const attn_dtype all[3] = {ATTN_DTYPE_F32, ATTN_DTYPE_BF16, ATTN_DTYPE_F16};
    int mode = (int)tu_int(r, 0, 3);
    for (int i = 0; i < 8; i++) {
        switch (mode) {
        case 0: t[i] = ATTN_DTYPE_BF16; break;
        case 1: t[i] = ATTN_DTYPE_F16; break;
        case 2: t[i] = i == T_O || i >= T_DQ ? ATTN_DTYPE_F32 : ATTN_DTYPE_BF16; break;
        default: t[i] = all[tu_int(r, 0, 2)]; break;
        }
    }
}

static size_t twin_bytes(const twin *w) { return w->dt == ATTN_DTYPE_F32 ? w->t->nbuf * 4 : w->t->nbuf * 2; }
static const void *twin_data(const twin *w) { return w->dt == ATTN_DTYPE_F32 ? (const void *)w->t->buf : w->buf; }

/* Runs forward (o, lse) and backward on the twins; checks inputs unchanged. */
static attn_status run(sc_case *c, twin *w, float *lse, int nthreads, int ws_null) {
    c->o.num_threads = nthreads;
    attn_tview tv[8];
    for (int i = 0; i < 8; i++) tv[i] = twin_view(&w[i]);
    twin_reset_out(&w[T_O]);
    void *snap[5];
    for (int i = 0; i < 5; i++) { /* q k v (o dO checked in bwd) */
        snap[i] = malloc(twin_bytes(&w[i]) + 1);
        memcpy(snap[i], twin_data(&w[i]), twin_bytes(&w[i]));
    }
    size_t wsz = attn_sdpa_fwd_typed_workspace_size(&c->d, tv[0], tv[1], tv[2], tv[3], &c->o);
    void *ws = ws_null ? NULL : aligned_alloc(64, (wsz + 64) & ~(size_t)63);
    if (ws) memset(ws, 0xA5, wsz);
    attn_status st = attn_sdpa_fwd_typed(&c->d, tv[0], tv[1], tv[2], tv[3], lse, &c->o, ws, ws_null ? 0 : wsz);
    free(ws);
    if (st) { for (int i = 0; i < 5; i++) free(snap[i]); return st; }
    CHECK(twin_read_out(&w[T_O]), "fwd wrote outside o's view: %s", c->desc);
    /* the backward reads o in its type: the twin (F32 o is the case's tensor) */
    for (int i = T_DQ; i <= T_DV; i++) twin_reset_out(&w[i]);
    size_t wb = attn_sdpa_bwd_typed_workspace_size(&c->d, tv[0], tv[1], tv[2], tv[3], tv[4], tv[5], tv[6], tv[7],
                                                   &c->o);
    ws = ws_null ? NULL : aligned_alloc(64, (wb + 64) & ~(size_t)63);
    if (ws) memset(ws, 0xA5, wb);
    st = attn_sdpa_bwd_typed(&c->d, tv[0], tv[1], tv[2], tv[3], tv[4], lse, tv[5], tv[6], tv[7], &c->o, ws,
                             ws_null ? 0 : wb);
    free(ws);
    for (int i = 0; i < 5; i++) {
        if (i != T_O)
            CHECK(memcmp(snap[i], twin_data(&w[i]), twin_bytes(&w[i])) == 0, "typed call modified input %d: %s", i,
                  c->desc);
        free(snap[i]);
    }
    if (st == ATTN_OK)
        for (int i = T_DQ; i <= T_DV; i++)
            CHECK(twin_read_out(&w[i]), "bwd wrote outside output %d's view: %s", i, c->desc);
    return st;
}

static void bad_input(void) {
    attn_sdpa_dims d = {1, 4, 4, 2, 2, 8, 0};
    uint16_t q[64], k[64], v[64], o[64];
    attn_tview tq = attn_tview_bshd(q, ATTN_DTYPE_BF16, 4, 2, 8), tk = attn_tview_bshd(k, ATTN_DTYPE_BF16, 4, 2, 8);
    attn_tview tvv = attn_tview_bshd(v, ATTN_DTYPE_BF16, 4, 2, 8), to = attn_tview_bshd(o, ATTN_DTYPE_I32, 4, 2, 8);
    for (int i = 0; i < 64; i++) q[i] = k[i] = v[i] = 0x3f80, o[i] = SENT16;
    CHECK_FAILS(attn_sdpa_fwd_typed(&d, tq, tk, tvv, to, NULL, NULL, NULL, 0), ATTN_ERR_DTYPE, "o.dtype");
    CHECK(o[0] == SENT16, "refused call wrote o");
    CHECK(attn_sdpa_fwd_typed_workspace_size(&d, tq, tk, tvv, to, NULL) == 0, "bad dtype: workspace size 0");
    to.dtype = ATTN_DTYPE_BF16;
    /* a bf16 o over a bf16 q: aliasing is detected with 2-byte elements */
    CHECK_FAILS(attn_sdpa_fwd_typed(&d, tq, tk, tvv, tq, NULL, NULL, NULL, 0), ATTN_ERR_ALIAS, "overlaps");
    /* half the needed workspace */
    size_t need = attn_sdpa_fwd_typed_workspace_size(&d, tq, tk, tvv, to, NULL);
    void *ws = aligned_alloc(64, need);
    CHECK_FAILS(attn_sdpa_fwd_typed(&d, tq, tk, tvv, to, NULL, NULL, ws, 64), ATTN_ERR_WORKSPACE, "workspace_size");
    CHECK(o[0] == SENT16, "refused call wrote o");
    CHECK(attn_sdpa_fwd_typed(&d, tq, tk, tvv, to, NULL, NULL, ws, need) == ATTN_OK, "valid call: %s",
          attn_last_error());
    CHECK(o[0] == 0x3f80, "o = v = 1 (bf16 0x3f80): got %04x", o[0]);
    free(ws);
}

int main(int argc, char **argv) {
    int64_t count = argc > 1 ? atoll(argv[1]) : sc_count(2000);
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 20261202ull;
    attn_isa isas[ATTN_ISA_COUNT];
    int nisa = sc_isas(isas);
    printf("test_sdpa_typed: %lld configs x %d ISA(s)\n", (long long)count, nisa);
    bad_input();

    sc_gen g = {seqs, (int)(sizeof seqs / sizeof *seqs), dimsl, (int)(sizeof dimsl / sizeof *dimsl),
                300000, 3, 3, 4, SC_F_ALL, 0, 0.25, 0, 0, 0, 0};
    if (sc_test_scale() < 1.0) g.max_work = (int64_t)((double)g.max_work * sc_test_scale());
    tu_rng r = {seed};
    static const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    double worst[ATTN_ISA_COUNT][5] = {{0}};
    int64_t nfast = 0, nfast_bwd = 0, ntypes[3] = {0};
    for (int64_t n = 0; n < count; n++) {
        g.force = 1u << (n % 12);
        sc_case c;
        sc_gen_case(&c, &r, &g);
        attn_dtype dt[8];
        draw_types(&r, dt);
        sc_tensor *ts[8] = {&c.q, &c.k, &c.v, &c.out, &c.dO, &c.dq, &c.dk, &c.dv};
        twin w[8];
        for (int i = 0; i < 8; i++) {
            twin_alloc(&w[i], ts[i], dt[i]);
            ntypes[dt[i]]++;
            if (i <= T_V || i == T_DO) twin_round_in(&w[i]);
        }
        sc_case_refresh64(&c);
        const int64_t no = sc_no(&c), nq = sc_nq(&c), nk = sc_nk(&c), nv = sc_nv(&c), nl = c.nlse;
        double *ref[5];
        float *got[5], *naive[5], *again[5];
        const int64_t cnt[5] = {no, nl, nq, nk, nv};
        for (int i = 0; i < 5; i++) {
            ref[i] = malloc(((size_t)cnt[i] + 1) * sizeof(double));
            got[i] = malloc(((size_t)cnt[i] + SC_LSE_TAIL) * sizeof(float));
            naive[i] = malloc(((size_t)cnt[i] + 1) * sizeof(float));
            again[i] = malloc(((size_t)cnt[i] + SC_LSE_TAIL) * sizeof(float));
        }
        CHECK(sc_ref_fwd(&c, ref[0], ref[1]) == ATTN_OK, "ref fwd: %s", c.desc);
        CHECK(sc_ref_bwd(&c, ref[2], ref[3], ref[4]) == ATTN_OK, "ref bwd: %s", c.desc);
        double cond[5], condA[5];
        sc_ref_cond(&c, cond, condA);
        sc_naive_fwd(&c, naive[0], naive[1]);
        sc_err en[5] = {sc_err_f(ref[0], naive[0], no), sc_err_f(ref[1], naive[1], nl)};
        const int fast_shape = dt[T_Q] == ATTN_DTYPE_BF16 && dt[T_K] == ATTN_DTYPE_BF16 &&
                               dt[T_V] == ATTN_DTYPE_BF16 && c.d.head_dim % 2 == 0;
        for (int ii = 0; ii < nisa; ii++) {
            attn_isa_set(isas[ii]);
            const int fast = fast_shape && isas[ii] == ATTN_ISA_AVX512 && attn__cpu()->avx512bf16;
            const int64_t Dv = c.d.head_dim_v ? c.d.head_dim_v : c.d.head_dim;
            const int fast_bwd = fast && dt[T_DO] == ATTN_DTYPE_BF16 && Dv % 2 == 0;
            /* fast-path rounding terms per output (header comment) */
            const double fast_term[5] = {fast ? 0x1p-8 * cond[0] : 0.0, 0.0, fast_bwd ? 0x1p-16 * cond[2] : 0.0,
                                         fast_bwd ? 0x1p-8 * cond[3] : 0.0, fast_bwd ? 0x1p-8 * cond[4] : 0.0};
            nfast += fast;
            nfast_bwd += fast_bwd;
            attn_status st = run(&c, w, got[1], 1 + (int)(n % 2), n % 7 == 3);
            if (st == ATTN_ERR_ALIAS && c.layout_out == SC_PACKED) {
                /* fp32 path also refuses interleaved packed outputs in bwd */
            } else {
                CHECK(st == ATTN_OK, "[%s] cfg %lld typed status %d (%s): %s", attn_isa_name(isas[ii]), (long long)n,
                      (int)st, attn_last_error(), c.desc);
            }
            if (st != ATTN_OK && !(st == ATTN_ERR_ALIAS && c.layout_out == SC_PACKED)) continue;
            sc_to_float(&c.out, got[0]);
            sc_naive_bwd(&c, got[0], got[1], naive[2], naive[3], naive[4]);
            for (int x = 2; x < 5; x++) en[x] = sc_err_f(ref[x], naive[x], cnt[x]);
            int nout = st == ATTN_OK ? 5 : 2;
            if (st == ATTN_OK) {
                sc_to_float(&c.dq, got[2]);
                sc_to_float(&c.dk, got[3]);
                sc_to_float(&c.dv, got[4]);
            }
            const attn_dtype otype[5] = {dt[T_O], ATTN_DTYPE_F32, dt[T_DQ], dt[T_DK], dt[T_DV]};
            for (int x = 0; x < nout; x++) {
                sc_err e = sc_err_f(ref[x], got[x], cnt[x]);
                double bound = 2.0 * en[x].max_abs + 1e-6 * cond[x] + 1e-7 * condA[x] + 1e-30 +
                               unit_roundoff(otype[x]) * e.scale + half_subnormal(otype[x]) + fast_term[x];
                double ratio = e.max_abs / bound;
                if (!(ratio <= worst[isas[ii]][x])) worst[isas[ii]][x] = ratio;
                CHECK(e.bad_nonfinite == 0 && e.max_abs <= bound,
                      "[%s] cfg %lld %s err %.3g > bound %.3g (naive %.3g, scale %.3g, nonfinite %lld) types "
                      "%d%d%d%d %d%d%d%d%s: %s",
                      attn_isa_name(isas[ii]), (long long)n, names[x], e.max_abs, bound, en[x].max_abs, e.scale,
                      (long long)e.bad_nonfinite, dt[0], dt[1], dt[2], dt[3], dt[4], dt[5], dt[6], dt[7],
                      fast ? " fast" : "", c.desc);
            }
            if (n % 5 == 0 && st == ATTN_OK) { /* thread-count independence, bit for bit */
                for (int x = 0; x < 5; x++) memcpy(again[x], got[x], (size_t)cnt[x] * sizeof(float));
                attn_status s2 = run(&c, w, got[1], 3, 0);
                CHECK(s2 == ATTN_OK, "rerun: %s", attn_last_error());
                sc_to_float(&c.out, got[0]);
                sc_to_float(&c.dq, got[2]);
                sc_to_float(&c.dk, got[3]);
                sc_to_float(&c.dv, got[4]);
                for (int x = 0; x < 5; x++)
                    CHECK(sc_bits_equal(again[x], got[x], cnt[x]), "[%s] cfg %lld %s differs at 3 threads: %s",
                          attn_isa_name(isas[ii]), (long long)n, names[x], c.desc);
            }
        }
        attn_isa_set(isas[nisa - 1]);
        for (int i = 0; i < 5; i++) { free(ref[i]); free(got[i]); free(naive[i]); free(again[i]); }
        for (int i = 0; i < 8; i++) twin_free(&w[i]);
        sc_case_free(&c);
    }
    printf("tensors by type: f32 %lld, f16 %lld, bf16 %lld; bf16 fast-path calls %lld (backward fast too %lld)\n",
           (long long)ntypes[0], (long long)ntypes[1], (long long)ntypes[2], (long long)nfast, (long long)nfast_bwd);
    for (int ii = 0; ii < nisa; ii++) {
        printf("[%s] worst err / bound:", attn_isa_name(isas[ii]));
        for (int x = 0; x < 5; x++) printf(" %s=%.3f", names[x], worst[isas[ii]][x]);
        printf("\n");
    }
    return test_summary("test_sdpa_typed");
}
