/* SPDX-License-Identifier: MIT */
/* test_sdpa_parity.c — fast kernels vs the float64 reference, every ISA.
 *
 * For each of >= 2,000 seeded random configurations (odd sizes, Sq != Sk both
 * ways, D / Dv in {8, 40, 64, 80, 128, 256} plus odd dims, MHA / GQA / MQA,
 * every mask kind and broadcast pattern, causal both alignments, key_lens,
 * windows, ALiBi, softcap, varlen, dropout, strided / packed-QKV / KV-cache
 * views) and for every ISA the CPU supports, attn_sdpa_fwd (o, lse) and
 * attn_sdpa_bwd (dq, dk, dv) are compared with attn_ref_sdpa_* in float64.
 *
 * Pass criterion per output tensor:
 *   max|fast - ref| <= 2 * max|naive - ref| + 1e-6 * cond + 1e-7 * condA
 * where cond is the largest magnitude of the terms summed into an element of
 * that output (sc_ref_cond: e.g. sum_j P_ij |v_j| for o) and condA the same
 * weighted by the logits' rounding scale, so an output that cancels to ~0
 * (one visible key: dq = dk = 0) still gets an fp32-sized floor
 * where "naive" is a straightforward fp32 implementation (sc_naive_*: one
 * materialised score row, float softmax, float accumulation); for the
 * backward outputs, the naive backward is fed the same o and lse as the fast
 * backward (the fast forward's). Non-finite
 * values must match exactly (lse = -inf of fully masked rows).
 * Every call also checks: inputs unchanged, nothing written outside the
 * output views (sentinel-filled gaps), nothing past lse.
 *
 * Usage: test_sdpa_parity [configs [seed [only]]]; ATTN_TEST_SCALE scales the
 * default count (2000) and, when < 1, the per-config work bound too. */
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTOP 6
typedef struct worst {
    double ratio, fast, naive, floor;
    int64_t cfg;
    const char *what;
    char desc[400];
} worst;

static worst top[ATTN_ISA_COUNT][NTOP];
static double worst_ratio_of[ATTN_ISA_COUNT][5];

static void record(int isa, int which, const char *what, int64_t cfg, double ef, double en, double fl,
                   const char *desc) {
    double ratio = ef / (2.0 * en + fl);
    if (!(ratio <= worst_ratio_of[isa][which])) worst_ratio_of[isa][which] = ratio;
    worst *t = top[isa];
    int pos = NTOP;
    while (pos > 0 && !(ratio <= t[pos - 1].ratio)) pos--;
    if (pos >= NTOP) return;
    memmove(&t[pos + 1], &t[pos], (size_t)(NTOP - 1 - pos) * sizeof *t);
    t[pos].ratio = ratio; t[pos].fast = ef; t[pos].naive = en; t[pos].floor = fl;
    t[pos].cfg = cfg; t[pos].what = what;
    snprintf(t[pos].desc, sizeof t[pos].desc, "%s", desc);
}

static const int64_t seqs[] = {1, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 113, 127, 128, 129, 200, 257};
static const int64_t bigseqs[] = {1, 63, 113, 128, 129, 200, 255, 257, 257, 300, 511};
static const int64_t dimsl[] = {8, 8, 40, 64, 64, 80, 128, 256, 1, 3, 17, 33, 100};

int main(int argc, char **argv) {
    int64_t count = argc > 1 ? atoll(argv[1]) : sc_count(2000);
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 20240611ull;
    int64_t only = argc > 3 ? atoll(argv[3]) : -1; /* debug: run config `only` alone (verbose) */
    attn_isa isas[ATTN_ISA_COUNT];
    int nisa = sc_isas(isas);
    for (int i = 0; i < ATTN_ISA_COUNT; i++)
        for (int j = 0; j < NTOP; j++) top[i][j].ratio = -1.0;
    printf("test_sdpa_parity: %lld configs x %d ISA(s):", (long long)count, nisa);
    for (int i = 0; i < nisa; i++) printf(" %s", attn_isa_name(isas[i]));
    printf("\n");

    attn_sdpa_opts def, mine;
    attn_sdpa_opts_init(&def);
    memset(&mine, 0, sizeof mine);
    mine.struct_size = sizeof mine;
    mine.window_left = mine.window_right = -1;
    CHECK(memcmp(&def, &mine, sizeof def) == 0, "attn_sdpa_opts_init: all features off, windows -1");

    sc_gen g = {seqs, (int)(sizeof seqs / sizeof *seqs), dimsl, (int)(sizeof dimsl / sizeof *dimsl),
                400000, 3, 3, 4, SC_F_ALL, 0, 0.25, 0, 0, 0, 0};
    tu_rng r = {seed};
    int64_t feat_count[12] = {0}, layout_in[SC_NLAYOUTS] = {0}, layout_out[SC_NLAYOUTS] = {0};
    int64_t packed_rejects = 0, total_calls = 0, total_work = 0, shape_count[8] = {0};
    double t_ref = 0, t_naive = 0, t_fast = 0, t0 = sc_now();
    static const char *names[5] = {"o", "lse", "dq", "dk", "dv"};

    for (int64_t n = 0; n < count; n++) {
        /* rotate forced features so each appears in >= 1/12 of the configs */
        g.force = 1u << (n % 12);
        /* every 16th config is big: long sequences, more tiles, split paths */
        int big = n % 16 == 15;
        g.max_work = big ? 6000000 : 400000;
        g.seqs = big ? bigseqs : seqs;
        g.nseqs = big ? (int)(sizeof bigseqs / sizeof *bigseqs) : (int)(sizeof seqs / sizeof *seqs);
        if (sc_test_scale() < 1.0) /* sanitizer runs: fewer AND smaller configs */
            g.max_work = (int64_t)((double)g.max_work * sc_test_scale());
        sc_case c;
        sc_gen_case(&c, &r, &g);
        if (only >= 0 && n != only) { sc_case_free(&c); continue; }
        total_work += c.work;
        {
            int64_t mx = c.d.seq_q > c.d.seq_k ? c.d.seq_q : c.d.seq_k;
            for (int64_t b = 0; c.varlen && b < c.d.batch; b++) {
                int64_t lq = c.cu_q[b + 1] - c.cu_q[b], lk = c.cu_k[b + 1] - c.cu_k[b];
                if (lq > mx) mx = lq;
                if (lk > mx) mx = lk;
            }
            shape_count[0] += c.varlen ? 0 : mx >= 257;
            shape_count[1] += c.varlen ? 0 : c.d.seq_q != c.d.seq_k;
            shape_count[2] += c.d.head_dim == 256;
            shape_count[3] += c.Dv != c.d.head_dim;
            shape_count[4] += c.d.heads_kv == 1 && c.d.heads_q > 1;
            shape_count[5] += c.d.heads_kv > 1 && c.d.heads_q > c.d.heads_kv;
            shape_count[6] += c.d.seq_q == 1;
            shape_count[7] += !c.varlen && (c.d.seq_q == 1 || c.d.seq_k == 1 || c.d.seq_q % 2 == 1 || c.d.seq_k % 2 == 1);
        }
        for (int f = 0; f < 12; f++) feat_count[f] += (c.features >> f) & 1;
        layout_in[c.layout_in]++;
        layout_out[c.layout_out]++;

        int64_t no = sc_no(&c), nq = sc_nq(&c), nk = sc_nk(&c), nv = sc_nv(&c), nl = c.nlse;
        double *ro = malloc(((size_t)no + 1) * sizeof(double)), *rl = malloc(((size_t)nl + 1) * sizeof(double));
        double *rdq = malloc(((size_t)nq + 1) * sizeof(double)), *rdk = malloc(((size_t)nk + 1) * sizeof(double));
        double *rdv = malloc(((size_t)nv + 1) * sizeof(double));
        float *fo = malloc(((size_t)no + 1) * sizeof(float)), *fl = malloc(((size_t)nl + SC_LSE_TAIL) * sizeof(float));
        float *fdq = malloc(((size_t)nq + 1) * sizeof(float)), *fdk = malloc(((size_t)nk + 1) * sizeof(float));
        float *fdv = malloc(((size_t)nv + 1) * sizeof(float));
        double ta = sc_now();
        attn_status st = sc_ref_fwd(&c, ro, rl);
        CHECK(st == ATTN_OK, "ref fwd %d %s: %s", (int)st, attn_last_error(), c.desc);
        st = sc_ref_bwd(&c, rdq, rdk, rdv);
        CHECK(st == ATTN_OK, "ref bwd %d %s: %s", (int)st, attn_last_error(), c.desc);
        double tb = sc_now();
        t_ref += tb - ta;
        double cond[5], condA[5];
        sc_ref_cond(&c, cond, condA);
        sc_naive_fwd(&c, fo, fl);
        t_naive += sc_now() - tb;
        sc_err en[5] = {sc_err_f(ro, fo, no), sc_err_f(rl, fl, nl)};
        for (int w = 0; w < 2; w++) /* the yardstick itself must be sane */
            CHECK(en[w].max_abs <= 1e-3 * (en[w].scale + 1.0), "naive fp32 %s err %g (scale %g): %s", names[w],
                  en[w].max_abs, en[w].scale, c.desc);

        for (int ii = 0; ii < nisa; ii++) {
            int isa = (int)isas[ii];
            attn_isa_set(isas[ii]);
            int ws_mode = n % 11 == 3 ? 1 : n % 11 == 7 ? 2 : 0;
            double tf = sc_now();
            st = sc_fast_fwd(&c, fl, ws_mode);
            total_calls++;
            CHECK(st == ATTN_OK, "[%s] cfg %lld fwd status %d (%s): %s", attn_isa_name(isas[ii]), (long long)n,
                  (int)st, attn_last_error(), c.desc);
            if (st != ATTN_OK) continue;
            sc_to_float(&c.out, fo);
            sc_err ef[5];
            ef[0] = sc_err_f(ro, fo, no);
            ef[1] = sc_err_f(rl, fl, nl);
            /* Backward yardstick: the naive fp32 backward fed with the SAME o and
             * lse as the fast backward (the naive backward fed with its own
             * forward is unfairly lucky: its lse errors cancel its own P). */
            double tn = sc_now();
            t_fast += tn - tf;
            sc_naive_bwd(&c, fo, fl, fdq, fdk, fdv);
            en[2] = sc_err_f(rdq, fdq, nq);
            en[3] = sc_err_f(rdk, fdk, nk);
            en[4] = sc_err_f(rdv, fdv, nv);
            for (int w = 2; w < 5; w++)
                CHECK(en[w].max_abs <= 1e-3 * (en[w].scale + 1.0), "naive fp32 %s err %g (scale %g): %s", names[w],
                      en[w].max_abs, en[w].scale, c.desc);
            tf = sc_now();
            t_naive += tf - tn;
            st = sc_fast_bwd(&c, fl, ws_mode);
            t_fast += sc_now() - tf;
            total_calls++;
            int nout = 2;
            if (st == ATTN_ERR_ALIAS && c.layout_out == SC_PACKED) {
                packed_rejects++; /* reported once at the end */
            } else {
                CHECK(st == ATTN_OK, "[%s] cfg %lld bwd status %d (%s): %s", attn_isa_name(isas[ii]), (long long)n,
                      (int)st, attn_last_error(), c.desc);
                if (st == ATTN_OK) {
                    sc_to_float(&c.dq, fdq);
                    sc_to_float(&c.dk, fdk);
                    sc_to_float(&c.dv, fdv);
                    ef[2] = sc_err_f(rdq, fdq, nq);
                    ef[3] = sc_err_f(rdk, fdk, nk);
                    ef[4] = sc_err_f(rdv, fdv, nv);
                    nout = 5;
                }
            }
            for (int w = 0; w < nout; w++) {
                double floor = 1e-6 * cond[w] + 1e-7 * condA[w] + 1e-30;
                double bound = 2.0 * en[w].max_abs + floor;
                record(isa, w, names[w], n, ef[w].max_abs, en[w].max_abs, floor, c.desc);
                if (only >= 0) {
                    const double *rr[5] = {ro, rl, rdq, rdk, rdv};
                    int64_t wi = ef[w].worst;
                    printf("[%s] %s: fast err %.3g naive err %.3g scale %.3g; worst index %lld ref %.9g\n",
                           attn_isa_name(isas[ii]), names[w], ef[w].max_abs, en[w].max_abs, en[w].scale,
                           (long long)wi, wi >= 0 ? rr[w][wi] : 0.0);
                }
                CHECK(ef[w].max_abs <= bound && ef[w].bad_nonfinite == 0,
                      "[%s] cfg %lld %s: max err %.3g > bound %.3g (naive %.3g, scale %.3g, non-finite mismatches "
                      "%lld, worst index %lld): %s",
                      attn_isa_name(isas[ii]), (long long)n, names[w], ef[w].max_abs, bound, en[w].max_abs,
                      en[w].scale, (long long)ef[w].bad_nonfinite, (long long)ef[w].worst, c.desc);
            }
        }
        free(ro); free(rl); free(rdq); free(rdk); free(rdv);
        free(fo); free(fl); free(fdq); free(fdk); free(fdv);
        sc_case_free(&c);
    }
    attn_isa_set(attn_isa_detected());
    CHECK(packed_rejects == 0,
          "attn_sdpa_bwd rejected %lld calls whose dq/dk/dv are disjoint interleaved views of one packed dQKV "
          "buffer with ATTN_ERR_ALIAS (the views share no element)",
          (long long)packed_rejects);

    static const char *fnames[12] = {"causal", "key_lens", "window", "alibi", "softcap", "bool", "add",
                                     "varlen", "dropout", "gqa", "views", "scale"};
    printf("feature counts:");
    for (int f = 0; f < 12; f++) printf(" %s=%lld", fnames[f], (long long)feat_count[f]);
    printf("\nshapes: max(Sq,Sk)>=257 %lld, Sq!=Sk %lld, D=256 %lld, Dv!=D %lld, MQA %lld, GQA %lld, Sq=1 %lld, odd sizes %lld",
           (long long)shape_count[0], (long long)shape_count[1], (long long)shape_count[2], (long long)shape_count[3],
           (long long)shape_count[4], (long long)shape_count[5], (long long)shape_count[6], (long long)shape_count[7]);
    printf("\nlayouts in:");
    for (int l = 0; l < SC_NLAYOUTS; l++) printf(" %s=%lld", sc_layout_name(l), (long long)layout_in[l]);
    printf("\nlayouts out:");
    for (int l = 0; l < SC_NLAYOUTS; l++) printf(" %s=%lld", sc_layout_name(l), (long long)layout_out[l]);
    printf("\nmean work %.3g, time: ref %.1f s, naive %.1f s, fast %.1f s, total %.1f s, fast calls %lld\n",
           (double)total_work / (double)(count > 0 ? count : 1), t_ref, t_naive, t_fast, sc_now() - t0,
           (long long)total_calls);
    for (int ii = 0; ii < nisa; ii++) {
        int isa = (int)isas[ii];
        printf("[%s] worst err / (2 naive + floor) per output:", attn_isa_name(isas[ii]));
        for (int w = 0; w < 5; w++) printf(" %s=%.3f", names[w], worst_ratio_of[isa][w]);
        printf("\n");
        for (int j = 0; j < NTOP && top[isa][j].ratio >= 0; j++)
            printf("  %.3f  cfg %lld %s: fast %.3g naive %.3g floor %.3g | %s\n", top[isa][j].ratio,
                   (long long)top[isa][j].cfg, top[isa][j].what, top[isa][j].fast, top[isa][j].naive,
                   top[isa][j].floor, top[isa][j].desc);
    }
    return test_summary("test_sdpa_parity");
}
