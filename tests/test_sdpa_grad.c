/* SPDX-License-Identifier: MIT */
/* test_sdpa_grad.c — the FAST backward against central finite differences of
 * the float64 REFERENCE forward.
 *
 * Loss L = sum(o * W) with W = dO (random), so dL/dx = attn_sdpa_bwd(dO = W).
 * For each of >= 600 small random configurations covering every option (causal
 * both alignments, key_lens, windows, ALiBi, softcap, bool/additive masks with
 * every broadcast pattern, varlen, dropout with a fixed seed, GQA/MQA, explicit
 * scale, strided / packed / cache views), on every ISA:
 *   - up to 24 sampled coordinates of each of q, k, v:
 *       |FD_i - g_i| <= 1e-3 * max|g| + F
 *   - two random directions u per tensor (all n coordinates at once):
 *       |FD_u - <u, g>| <= |u| (1e-3 |g| + F sqrt(n))
 * where g is the fast fp32 gradient, max|g| and |g| come from the reference's
 * analytic gradient (checked against FD in test_sdpa_ref), and the fp32 floor
 * F = 1e-5 * (cond + condA) of that gradient (sc_ref_cond: the size of the
 * summed terms) covers gradients that cancel to ~0 (one visible key).
 * Usage: test_sdpa_grad [configs [seed]]; ATTN_TEST_SCALE scales the default 600. */
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double loss(const sc_case *c, double *o) {
    if (sc_ref_fwd(c, o, NULL) != ATTN_OK) return NAN;
    double L = 0;
    int64_t n = sc_no(c);
    for (int64_t i = 0; i < n; i++) L += o[i] * c->dO64[i];
    return L;
}

static const double H = 1e-5;

static double fd_coord(sc_case *c, double *x, int64_t i, double *o) {
    double x0 = x[i];
    x[i] = x0 + H;
    double lp = loss(c, o);
    x[i] = x0 - H;
    double lm = loss(c, o);
    x[i] = x0;
    return (lp - lm) / (2 * H);
}

static double fd_dir(sc_case *c, double *x, const double *u, int64_t n, double *o) {
    double *x0 = malloc((size_t)n * sizeof(double) + 8);
    memcpy(x0, x, (size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) x[i] = x0[i] + H * u[i];
    double lp = loss(c, o);
    for (int64_t i = 0; i < n; i++) x[i] = x0[i] - H * u[i];
    double lm = loss(c, o);
    memcpy(x, x0, (size_t)n * sizeof(double));
    free(x0);
    return (lp - lm) / (2 * H);
}

static const int64_t seqs[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17};
static const int64_t dimsl[] = {1, 2, 3, 4, 8, 16};

int main(int argc, char **argv) {
    int64_t count = argc > 1 ? atoll(argv[1]) : sc_count(600);
    if (argc <= 1 && sc_test_scale() >= 1.0 && count < 200) count = 200;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 777ull;
    attn_isa isas[ATTN_ISA_COUNT];
    int nisa = sc_isas(isas);
    sc_gen g = {seqs, (int)(sizeof seqs / sizeof *seqs), dimsl, (int)(sizeof dimsl / sizeof *dimsl),
                30000, 2, 2, 3, SC_F_ALL, 0, 0.3, 0, 0, 0, 0};
    tu_rng r = {seed};
    unsigned covered = 0;
    double worst[ATTN_ISA_COUNT] = {0};
    char worst_desc[ATTN_ISA_COUNT][600];
    memset(worst_desc, 0, sizeof worst_desc);
    int64_t ncoord = 0, ndir = 0;
    double t0 = sc_now();
    static const char *tn[3] = {"dq", "dk", "dv"};

    for (int64_t n = 0; n < count; n++) {
        g.force = 1u << (n % 12);
        sc_case c;
        sc_gen_case(&c, &r, &g);
        covered |= c.features;
        int64_t nt[3] = {sc_nq(&c), sc_nk(&c), sc_nv(&c)};
        double *x64[3] = {c.q64, c.k64, c.v64};
        double *o = malloc(((size_t)sc_no(&c) + 1) * sizeof(double));
        double *gref[3], *gf[3];
        for (int t = 0; t < 3; t++) {
            gref[t] = malloc(((size_t)nt[t] + 1) * sizeof(double));
            gf[t] = malloc(((size_t)nt[t] + 1) * sizeof(double));
        }
        CHECK(sc_ref_bwd(&c, gref[0], gref[1], gref[2]) == ATTN_OK, "ref bwd: %s", attn_last_error());
        double gmax[3], gnorm[3], cond[5], condA[5];
        sc_ref_cond(&c, cond, condA);
        /* fp32 floor for gradients that cancel to ~0 (e.g. one visible key) */
        double floor_[3] = {1e-5 * (cond[2] + condA[2]) + 1e-7, 1e-5 * (cond[3] + condA[3]) + 1e-7,
                            1e-5 * (cond[4] + condA[4]) + 1e-7};
        for (int t = 0; t < 3; t++) {
            gmax[t] = 0; gnorm[t] = 0;
            for (int64_t i = 0; i < nt[t]; i++) {
                gmax[t] = fmax(gmax[t], fabs(gref[t][i]));
                gnorm[t] += gref[t][i] * gref[t][i];
            }
            gnorm[t] = sqrt(gnorm[t]);
        }
        /* finite differences of the reference forward: sampled coordinates + 2 directions */
        enum { NS = 24, ND = 2 };
        int64_t idx[3][NS];
        double fd[3][NS], fdu[3][ND], *u[3][ND];
        int ns[3];
        for (int t = 0; t < 3; t++) {
            ns[t] = nt[t] < NS ? (int)nt[t] : NS;
            for (int s = 0; s < ns[t]; s++) {
                idx[t][s] = nt[t] <= NS ? s : tu_int(&r, 0, nt[t] - 1);
                fd[t][s] = fd_coord(&c, x64[t], idx[t][s], o);
            }
            for (int d = 0; d < ND; d++) {
                u[t][d] = malloc(((size_t)nt[t] + 1) * sizeof(double));
                for (int64_t i = 0; i < nt[t]; i++) u[t][d][i] = tu_normal(&r);
                fdu[t][d] = nt[t] > 0 ? fd_dir(&c, x64[t], u[t][d], nt[t], o) : 0.0;
            }
        }
        float *lse = malloc(((size_t)c.nlse + SC_LSE_TAIL) * sizeof(float));
        float *tmp = malloc(((size_t)(nt[0] > nt[1] ? (nt[0] > nt[2] ? nt[0] : nt[2]) : (nt[1] > nt[2] ? nt[1] : nt[2])) + 1) *
                            sizeof(float));
        for (int ii = 0; ii < nisa; ii++) {
            attn_isa_set(isas[ii]);
            attn_status st = sc_fast_fwd(&c, lse, 0);
            CHECK(st == ATTN_OK, "[%s] fwd %d (%s): %s", attn_isa_name(isas[ii]), (int)st, attn_last_error(), c.desc);
            if (st != ATTN_OK) continue;
            st = sc_fast_bwd(&c, lse, 0);
            if (st == ATTN_ERR_ALIAS && c.layout_out == SC_PACKED) continue; /* reported by test_sdpa_parity */
            CHECK(st == ATTN_OK, "[%s] bwd %d (%s): %s", attn_isa_name(isas[ii]), (int)st, attn_last_error(), c.desc);
            if (st != ATTN_OK) continue;
            sc_tensor *gt[3] = {&c.dq, &c.dk, &c.dv};
            for (int t = 0; t < 3; t++) {
                sc_to_float(gt[t], tmp);
                for (int64_t i = 0; i < nt[t]; i++) gf[t][i] = tmp[i];
                for (int s = 0; s < ns[t]; s++) {
                    double e = fabs(fd[t][s] - gf[t][idx[t][s]]), tol = 1e-3 * gmax[t] + floor_[t];
                    if (!(e / tol <= worst[ii])) {
                        worst[ii] = e / tol;
                        snprintf(worst_desc[ii], sizeof worst_desc[ii], "%s[%lld] cfg %lld: %s", tn[t],
                                 (long long)idx[t][s], (long long)n, c.desc);
                    }
                    ncoord++;
                    CHECK(e <= tol, "[%s] cfg %lld %s[%lld]: fast %.9g vs FD %.9g (tol %.3g): %s",
                          attn_isa_name(isas[ii]), (long long)n, tn[t], (long long)idx[t][s], gf[t][idx[t][s]],
                          fd[t][s], tol, c.desc);
                }
                for (int d = 0; d < ND && nt[t] > 0; d++) {
                    double dot = 0, un = 0;
                    for (int64_t i = 0; i < nt[t]; i++) {
                        dot += u[t][d][i] * gf[t][i];
                        un += u[t][d][i] * u[t][d][i];
                    }
                    double e = fabs(fdu[t][d] - dot), tol = sqrt(un) * (1e-3 * gnorm[t] + floor_[t] * sqrt((double)nt[t]));
                    if (!(e / tol <= worst[ii])) {
                        worst[ii] = e / tol;
                        snprintf(worst_desc[ii], sizeof worst_desc[ii], "%s direction cfg %lld: %s", tn[t],
                                 (long long)n, c.desc);
                    }
                    ndir++;
                    CHECK(e <= tol, "[%s] cfg %lld %s along a random direction: fast %.9g vs FD %.9g (tol %.3g): %s",
                          attn_isa_name(isas[ii]), (long long)n, tn[t], dot, fdu[t][d], tol, c.desc);
                }
            }
        }
        for (int t = 0; t < 3; t++) {
            free(gref[t]); free(gf[t]);
            for (int d = 0; d < ND; d++) free(u[t][d]);
        }
        free(o); free(lse); free(tmp);
        sc_case_free(&c);
    }
    attn_isa_set(attn_isa_detected());
    unsigned need = SC_F_ALL;
    if (count >= 12) CHECK((covered & need) == need, "every option covered (0x%x of 0x%x)", covered, need);
    printf("test_sdpa_grad: %lld configs, %lld coordinate and %lld directional checks, %.1f s\n", (long long)count,
           (long long)ncoord, (long long)ndir, sc_now() - t0);
    for (int ii = 0; ii < nisa; ii++)
        printf("[%s] worst err/tol %.4f (%s)\n", attn_isa_name(isas[ii]), worst[ii], worst_desc[ii]);
    return test_summary("test_sdpa_grad");
}
