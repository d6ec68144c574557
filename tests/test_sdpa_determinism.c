/* SPDX-License-Identifier: MIT */
/* test_sdpa_determinism.c — bit-identical o, lse, dq, dk, dv for every
 * thread count (attn_set_num_threads 1, 2, 3, 8 and opts->num_threads) and
 * across repeated runs, on every ISA, for shapes with many tiles / tasks:
 *   GQA causal; MQA with B = 1 (few tasks: split paths); decode Sq = 1 with a
 *   long Sk (flash-decoding splits); varlen with every option on; a long-key
 *   backward (dq partial chunks).
 * The 1-thread results are also checked against the float64 reference (these
 * shapes reach split / many-tile paths) unless ATTN_TEST_SCALE < 0.5.
 * ATTN_TEST_SCALE < 1 shrinks the shapes linearly and runs thread counts
 * 3, 8, 1 (repeat), opts->num_threads = 2 only (sanitizer / TSan runs). */
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct outs {
    float *o, *lse, *dq, *dk, *dv;
} outs;

static void outs_alloc(outs *r, const sc_case *c) {
    r->o = malloc(((size_t)sc_no(c) + 1) * sizeof(float));
    r->lse = malloc(((size_t)c->nlse + SC_LSE_TAIL) * sizeof(float));
    r->dq = malloc(((size_t)sc_nq(c) + 1) * sizeof(float));
    r->dk = malloc(((size_t)sc_nk(c) + 1) * sizeof(float));
    r->dv = malloc(((size_t)sc_nv(c) + 1) * sizeof(float));
}
static void outs_free(outs *r) {
    free(r->o); free(r->lse); free(r->dq); free(r->dk); free(r->dv);
}

static int run(sc_case *c, outs *r, int ws_mode) {
    if (sc_fast_fwd(c, r->lse, ws_mode) != ATTN_OK) return 0;
    sc_to_float(&c->out, r->o);
    if (sc_fast_bwd(c, r->lse, ws_mode) != ATTN_OK) return 0;
    sc_to_float(&c->dq, r->dq);
    sc_to_float(&c->dk, r->dk);
    sc_to_float(&c->dv, r->dv);
    return 1;
}

static int64_t scaled(int64_t n) {
    double s = sc_test_scale();
    if (s >= 1.0) return n;
    int64_t m = (int64_t)((double)n * s);
    return m < 8 ? 8 : m;
}

/* The 1-thread result must also be right (these shapes reach the split /
 * many-tile paths that test_sdpa_parity's sizes do not): same criterion as
 * test_sdpa_parity, max err <= 2 naive-fp32 err + 1e-6 cond + 1e-7 condA. */
typedef struct refs {
    double *r[5], cond[5], condA[5];
    float *naive_o, *naive_lse;
    int ok;
} refs;

static void refs_make(refs *R, sc_case *c) {
    int64_t len[5] = {sc_no(c), c->nlse, sc_nq(c), sc_nk(c), sc_nv(c)};
    for (int w = 0; w < 5; w++) R->r[w] = malloc(((size_t)len[w] + 1) * sizeof(double));
    R->ok = sc_ref_fwd(c, R->r[0], R->r[1]) == ATTN_OK && sc_ref_bwd(c, R->r[2], R->r[3], R->r[4]) == ATTN_OK;
    sc_ref_cond(c, R->cond, R->condA);
    R->naive_o = malloc(((size_t)len[0] + 1) * sizeof(float));
    R->naive_lse = malloc(((size_t)len[1] + 1) * sizeof(float));
    sc_naive_fwd(c, R->naive_o, R->naive_lse);
}

static void refs_free(refs *R) {
    for (int w = 0; w < 5; w++) free(R->r[w]);
    free(R->naive_o);
    free(R->naive_lse);
}

static void check_vs_ref(const char *name, const char *isa, sc_case *c, const refs *R, const outs *f) {
    int64_t len[5] = {sc_no(c), c->nlse, sc_nq(c), sc_nk(c), sc_nv(c)};
    float *ndq = malloc(((size_t)len[2] + 1) * 4), *ndk = malloc(((size_t)len[3] + 1) * 4);
    float *ndv = malloc(((size_t)len[4] + 1) * 4);
    CHECK(R->ok, "%s: reference failed", name);
    sc_naive_bwd(c, f->o, f->lse, ndq, ndk, ndv); /* same o / lse as the fast backward */
    const float *fast[5] = {f->o, f->lse, f->dq, f->dk, f->dv}, *naive[5] = {R->naive_o, R->naive_lse, ndq, ndk, ndv};
    static const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    for (int w = 0; w < 5; w++) {
        sc_err ef = sc_err_f(R->r[w], fast[w], len[w]), en = sc_err_f(R->r[w], naive[w], len[w]);
        double bound = 2.0 * en.max_abs + 1e-6 * R->cond[w] + 1e-7 * R->condA[w] + 1e-30;
        CHECK(ef.max_abs <= bound && ef.bad_nonfinite == 0,
              "%s [%s] %s vs reference: err %.3g > bound %.3g (naive %.3g, non-finite mismatches %lld)", name, isa,
              names[w], ef.max_abs, bound, en.max_abs, (long long)ef.bad_nonfinite);
    }
    free(ndq); free(ndk); free(ndv);
}

static void check_case(const char *name, const attn_sdpa_dims *d, const attn_sdpa_opts *o, uint64_t seed) {
    tu_rng r = {seed};
    sc_row_stats = (int)(seed & 1); /* odd seeds: the backward from the forward's opts.row_stats */
    sc_case c;
    sc_case_init(&c, d, o, &r, 1.0);
    attn_isa isas[ATTN_ISA_COUNT];
    int nisa = sc_isas(isas);
    outs base, cur;
    outs_alloc(&base, &c);
    outs_alloc(&cur, &c);
    double t0 = sc_now();
    int with_ref = sc_test_scale() >= 0.5;
    refs R;
    if (with_ref) refs_make(&R, &c);
    for (int ii = 0; ii < nisa; ii++) {
        attn_isa_set(isas[ii]);
        attn_set_num_threads(1);
        int ok = run(&c, &base, 0);
        CHECK(ok, "%s [%s]: base run failed: %s", name, attn_isa_name(isas[ii]), attn_last_error());
        if (!ok) continue;
        int nanfree = 1;
        for (int64_t i = 0; i < sc_no(&c); i++) nanfree &= !isnan(base.o[i]);
        CHECK(nanfree, "%s [%s]: o has NaN", name, attn_isa_name(isas[ii]));
        if (with_ref) check_vs_ref(name, attn_isa_name(isas[ii]), &c, &R, &base);
        /* global thread counts, a repeat, and a per-call opts->num_threads */
        static const int nts_full[6] = {2, 3, 8, 1, 2, -3}, nts_small[4] = {3, 8, 1, -2};
        const int small = sc_test_scale() < 1.0, nnt = small ? 4 : 6;
        const int *nts = small ? nts_small : nts_full;
        for (int t = 0; t < nnt; t++) {
            int nt = nts[t];
            if (nt > 0) {
                attn_set_num_threads(nt);
                c.o.num_threads = 0;
            } else {
                attn_set_num_threads(1);
                c.o.num_threads = -nt;
            }
            ok = run(&c, &cur, t % 3 == 1 ? 1 : t % 3 == 2 ? 2 : 0);
            CHECK(ok, "%s [%s] threads %d: run failed: %s", name, attn_isa_name(isas[ii]), nt, attn_last_error());
            if (!ok) continue;
            CHECK(sc_bits_equal(base.o, cur.o, sc_no(&c)), "%s [%s] threads %d: o differs", name,
                  attn_isa_name(isas[ii]), nt);
            CHECK(sc_bits_equal(base.lse, cur.lse, c.nlse), "%s [%s] threads %d: lse differs", name,
                  attn_isa_name(isas[ii]), nt);
            CHECK(sc_bits_equal(base.dq, cur.dq, sc_nq(&c)), "%s [%s] threads %d: dq differs", name,
                  attn_isa_name(isas[ii]), nt);
            CHECK(sc_bits_equal(base.dk, cur.dk, sc_nk(&c)), "%s [%s] threads %d: dk differs", name,
                  attn_isa_name(isas[ii]), nt);
            CHECK(sc_bits_equal(base.dv, cur.dv, sc_nv(&c)), "%s [%s] threads %d: dv differs", name,
                  attn_isa_name(isas[ii]), nt);
        }
        c.o.num_threads = 0;
    }
    printf("  %-34s %s%s  (%.2f s)\n", name, c.desc, sc_row_stats ? " row_stats" : "", sc_now() - t0);
    sc_row_stats = 0;
    if (with_ref) refs_free(&R);
    outs_free(&base);
    outs_free(&cur);
    sc_case_free(&c);
}

static attn_sdpa_opts opts0(void) {
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    return o;
}

int main(void) {
    int saved_threads = attn_get_num_threads();
    printf("test_sdpa_determinism (scale %.2f):\n", sc_test_scale());
    { /* GQA, causal bottom-right, Sq != Sk */
        attn_sdpa_dims d = {2, scaled(200), scaled(230), 8, 2, 64, 64};
        attn_sdpa_opts o = opts0();
        o.causal = 1; o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        check_case("gqa causal", &d, &o, 1);
    }
    { /* MQA, B = 1: few (b, kv head) tasks -> split paths */
        attn_sdpa_dims d = {1, scaled(160), scaled(170), 8, 1, 80, 48};
        attn_sdpa_opts o = opts0();
        check_case("mqa B=1", &d, &o, 2);
    }
    { /* decode: Sq = 1, long Sk */
        attn_sdpa_dims d = {1, 1, scaled(4000), 8, 2, 128, 128};
        attn_sdpa_opts o = opts0();
        o.causal = 1; o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        check_case("decode Sq=1", &d, &o, 3);
        attn_sdpa_dims d2 = {3, 1, scaled(1500), 4, 1, 64, 64};
        int32_t kl[3] = {(int32_t)scaled(1500), (int32_t)scaled(700), 5};
        o.key_lens = kl;
        check_case("decode B=3 key_lens MQA", &d2, &o, 4);
    }
    { /* varlen, every option */
        int64_t l0 = scaled(37), l1 = scaled(150), l3 = scaled(90);
        int32_t cq[5] = {0, (int32_t)l0, (int32_t)(l0 + l1), (int32_t)(l0 + l1 + 1), (int32_t)(l0 + l1 + 1 + l3)};
        int32_t ck[5] = {0, (int32_t)(l0 + 5), (int32_t)(l0 + 5 + l1), (int32_t)(l0 + 5 + l1 + 40),
                         (int32_t)(l0 + 5 + l1 + 40 + l3)};
        int32_t kl[4] = {(int32_t)l0, (int32_t)(l1 - 3), 40, (int32_t)l3};
        float slopes[4] = {0.5f, 0.25f, 0.125f, 0.0625f};
        attn_sdpa_dims d = {4, cq[4], ck[4], 4, 2, 64, 32};
        attn_sdpa_opts o = opts0();
        o.cu_seqlens_q = cq; o.cu_seqlens_k = ck; o.key_lens = kl;
        o.causal = 1; o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        o.window_left = 64; o.alibi_slopes = slopes; o.softcap = 30.0f;
        o.dropout_p = 0.2f; o.dropout_seed = 99;
        int64_t mq = l1, mk = l1;
        size_t n = (size_t)(4 * 4 * mq * mk);
        float *mask = malloc(n * sizeof(float));
        tu_rng r = {5};
        for (size_t i = 0; i < n; i++) mask[i] = tu_uniform(&r) < 0.1 ? -INFINITY : (float)tu_normal(&r);
        o.mask_kind = ATTN_MASK_ADD; o.mask = mask;
        o.mask_stride_q = mk; o.mask_stride_h = mq * mk; o.mask_stride_b = 4 * mq * mk;
        check_case("varlen all options", &d, &o, 6);
        free(mask);
    }
    { /* long keys, few rows: backward dq partial chunks */
        attn_sdpa_dims d = {1, scaled(64), scaled(1200), 2, 1, 64, 64};
        attn_sdpa_opts o = opts0();
        check_case("bwd long keys", &d, &o, 7);
        o.window_left = 100; o.window_right = 20;
        check_case("bwd long keys window", &d, &o, 8);
    }
    attn_set_num_threads(saved_threads);
    attn_isa_set(attn_isa_detected());
    return test_summary("test_sdpa_determinism");
}
