/* SPDX-License-Identifier: MIT */
/* test_sdpa_qpos.c — opts.q_pos_offset: fast kernels vs the float64 reference.
 *
 * Random configurations as in test_sdpa_parity (every mask kind, GQA, varlen,
 * views, both alignments, ...) with q_pos_offset forced on: drawn uniformly
 * in [-(Sq+Sk+2), Sq+Sk+2] (chunks of one longer sequence in every relative
 * placement: fully visible, partly, invisible) and, one case in 16, +-2^40
 * (the documented limit: no overflow in window / ALiBi arithmetic). Every
 * ISA; forward (o, lse) and backward (dq, dk, dv) pass iff
 *   max|fast - ref| <= 2 * max|naive fp32 - ref| + 1e-6 cond + 1e-7 condA
 * (the parity criterion, naive backward fed the fast forward's o and lse),
 * and non-finite values match exactly. Also: the option is validated
 * (|q_pos_offset| > 2^40 is ATTN_ERR_OPTION) and defaults to 0.
 * That the offset means "global position" (chunks of a long sequence
 * reproduce the whole) is checked in test_sdpa_merge. */
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t seqs[] = {1, 2, 3, 5, 7, 16, 17, 33, 64, 65, 100, 129};
static const int64_t dimsl[] = {8, 16, 40, 64, 3, 17};

static void check_case(sc_case *c, const attn_isa *isas, int nisa, int64_t n) {
    static const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    int64_t no = sc_no(c), nq = sc_nq(c), nk = sc_nk(c), nv = sc_nv(c), nl = c->nlse;
    double *ro = malloc(((size_t)no + 1) * sizeof(double)), *rl = malloc(((size_t)nl + 1) * sizeof(double));
    double *rdq = malloc(((size_t)nq + 1) * sizeof(double)), *rdk = malloc(((size_t)nk + 1) * sizeof(double));
    double *rdv = malloc(((size_t)nv + 1) * sizeof(double));
    float *fo = malloc(((size_t)no + 1) * sizeof(float)), *fl = malloc(((size_t)nl + SC_LSE_TAIL) * sizeof(float));
    float *fdq = malloc(((size_t)nq + 1) * sizeof(float)), *fdk = malloc(((size_t)nk + 1) * sizeof(float));
    float *fdv = malloc(((size_t)nv + 1) * sizeof(float));
    attn_status st = sc_ref_fwd(c, ro, rl);
    CHECK(st == ATTN_OK, "ref fwd %s: %s", attn_last_error(), c->desc);
    st = sc_ref_bwd(c, rdq, rdk, rdv);
    CHECK(st == ATTN_OK, "ref bwd %s: %s", attn_last_error(), c->desc);
    double cond[5], condA[5];
    sc_ref_cond(c, cond, condA);
    sc_naive_fwd(c, fo, fl);
    sc_err en[5] = {sc_err_f(ro, fo, no), sc_err_f(rl, fl, nl)};
    for (int ii = 0; ii < nisa; ii++) {
        attn_isa_set(isas[ii]);
        st = sc_fast_fwd(c, fl, 0);
        CHECK(st == ATTN_OK, "[%s] cfg %lld fwd %s: %s", attn_isa_name(isas[ii]), (long long)n, attn_last_error(),
              c->desc);
        if (st != ATTN_OK) continue;
        sc_to_float(&c->out, fo);
        sc_err ef[5] = {sc_err_f(ro, fo, no), sc_err_f(rl, fl, nl)};
        sc_naive_bwd(c, fo, fl, fdq, fdk, fdv);
        en[2] = sc_err_f(rdq, fdq, nq);
        en[3] = sc_err_f(rdk, fdk, nk);
        en[4] = sc_err_f(rdv, fdv, nv);
        int nout = 2;
        st = sc_fast_bwd(c, fl, 0);
        if (!(st == ATTN_ERR_ALIAS && c->layout_out == SC_PACKED)) {
            CHECK(st == ATTN_OK, "[%s] cfg %lld bwd %s: %s", attn_isa_name(isas[ii]), (long long)n,
                  attn_last_error(), c->desc);
            if (st == ATTN_OK) {
                sc_to_float(&c->dq, fdq);
                sc_to_float(&c->dk, fdk);
                sc_to_float(&c->dv, fdv);
                ef[2] = sc_err_f(rdq, fdq, nq);
                ef[3] = sc_err_f(rdk, fdk, nk);
                ef[4] = sc_err_f(rdv, fdv, nv);
                nout = 5;
            }
        }
        for (int w = 0; w < nout; w++) {
            double bound = 2.0 * en[w].max_abs + 1e-6 * cond[w] + 1e-7 * condA[w] + 1e-30;
            CHECK(ef[w].max_abs <= bound && ef[w].bad_nonfinite == 0,
                  "[%s] cfg %lld %s: err %.3g > bound %.3g (naive %.3g, non-finite mismatches %lld): %s",
                  attn_isa_name(isas[ii]), (long long)n, names[w], ef[w].max_abs, bound, en[w].max_abs,
                  (long long)ef[w].bad_nonfinite, c->desc);
        }
    }
    free(ro); free(rl); free(rdq); free(rdk); free(rdv);
    free(fo); free(fl); free(fdq); free(fdk); free(fdv);
}

static void check_validation(void) {
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    CHECK(o.q_pos_offset == 0, "attn_sdpa_opts_init: q_pos_offset = %lld", (long long)o.q_pos_offset);
    attn_sdpa_dims d = {1, 4, 4, 1, 1, 8, 8};
    float q[32] = {0}, k[32] = {0}, v[32] = {0}, out[32], lse[4];
    attn_view vq = attn_view_bshd(q, 4, 1, 8), vk = attn_view_bshd(k, 4, 1, 8), vv = attn_view_bshd(v, 4, 1, 8);
    attn_view vo = attn_view_bshd(out, 4, 1, 8);
    int64_t bad[2] = {((int64_t)1 << 40) + 1, -((int64_t)1 << 40) - 1};
    for (int t = 0; t < 2; t++) {
        o.q_pos_offset = bad[t];
        for (int i = 0; i < 32; i++) out[i] = 7.0f;
        attn_status st = attn_sdpa_fwd(&d, vq, vk, vv, vo, lse, &o, NULL, 0);
        CHECK(st == ATTN_ERR_OPTION && strstr(attn_last_error(), "q_pos_offset") != NULL,
              "q_pos_offset = %lld: status %d (%s)", (long long)bad[t], (int)st, attn_last_error());
        CHECK(out[0] == 7.0f, "output written on error");
    }
}

int main(int argc, char **argv) {
    int64_t count = argc > 1 ? atoll(argv[1]) : sc_count(600);
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 20261202ull;
    attn_isa isas[ATTN_ISA_COUNT];
    int nisa = sc_isas(isas);
    check_validation();
    sc_gen g = {seqs, (int)(sizeof seqs / sizeof *seqs), dimsl, (int)(sizeof dimsl / sizeof *dimsl),
                200000, 2, 3, 4, SC_F_ALL | SC_F_QPOS, SC_F_QPOS, 0.25, 0, 0, 0, 0};
    tu_rng r = {seed};
    int64_t with_causal = 0, with_window = 0, with_alibi = 0, huge = 0;
    for (int64_t n = 0; n < count; n++) {
        g.force = SC_F_QPOS | (n % 3 == 0 ? SC_F_CAUSAL : n % 3 == 1 ? SC_F_WINDOW : 0);
        if (sc_test_scale() < 1.0) g.max_work = (int64_t)(200000 * sc_test_scale());
        sc_case c;
        sc_gen_case(&c, &r, &g);
        with_causal += c.o.causal;
        with_window += c.o.window_left >= 0 || c.o.window_right >= 0;
        with_alibi += c.o.alibi_slopes != NULL;
        huge += c.o.q_pos_offset == ((int64_t)1 << 40) || c.o.q_pos_offset == -((int64_t)1 << 40);
        check_case(&c, isas, nisa, n);
        sc_case_free(&c);
    }
    attn_isa_set(attn_isa_detected());
    printf("test_sdpa_qpos: %lld configs x %d ISA(s): causal %lld, window %lld, alibi %lld, |offset| = 2^40 %lld\n",
           (long long)count, nisa, (long long)with_causal, (long long)with_window, (long long)with_alibi,
           (long long)huge);
    return test_summary("test_sdpa_qpos");
}
