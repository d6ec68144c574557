/* SPDX-License-Identifier: MIT */
/* test_sdpa_ref.c — the float64 reference itself:
 *   1. hand-computed tiny cases, one per option (known softmax values);
 *   2. structural identities (varlen == separate calls, GQA == MHA with
 *      repeated KV heads, Sk = 0, fully masked rows);
 *   3. argument validation (errors, never a crash);
 *   4. central finite differences of L = sum(o * W) on attn_ref_sdpa_fwd vs
 *      attn_ref_sdpa_bwd (dO = W) on >= 300 small random configs covering
 *      every option (ATTN_TEST_SCALE scales the count).
 * Usage: test_sdpa_ref [configs] */
#include "kernels/dropout.h"
#include "kernels/ref/sdpa_ref.h"
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static attn_sdpa_opts opts0(void) {
    attn_sdpa_opts o;
    memset(&o, 0, sizeof o);
    o.window_left = o.window_right = -1;
    return o;
}

static attn_sdpa_dims dims(int64_t B, int64_t Sq, int64_t Sk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv) {
    attn_sdpa_dims d = {B, Sq, Sk, Hq, Hkv, D, Dv};
    return d;
}

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))
static const double TOL = 1e-12;

/* Runs fwd and checks o (B*Sq*Hq*Dv) and lse against expectations. */
static void expect(const char *name, const attn_sdpa_dims *d, const attn_sdpa_opts *o, const double *q,
                   const double *k, const double *v, const double *o_exp, const double *lse_exp, int64_t no,
                   int64_t nlse) {
    double *out = calloc((size_t)no + 1, sizeof(double)), *lse = calloc((size_t)nlse + 1, sizeof(double));
    attn_status st = attn_ref_sdpa_fwd(d, q, k, v, out, lse, o);
    CHECK(st == ATTN_OK, "%s: status %d (%s)", name, (int)st, attn_last_error());
    for (int64_t i = 0; i < no; i++)
        CHECK(NEAR(out[i], o_exp[i], TOL), "%s: o[%lld] = %.17g, expected %.17g", name, (long long)i, out[i], o_exp[i]);
    for (int64_t i = 0; i < nlse; i++) {
        if (isinf(lse_exp[i]))
            CHECK(lse[i] == lse_exp[i], "%s: lse[%lld] = %g, expected %g", name, (long long)i, lse[i], lse_exp[i]);
        else
            CHECK(NEAR(lse[i], lse_exp[i], TOL), "%s: lse[%lld] = %.17g, expected %.17g", name, (long long)i, lse[i],
                  lse_exp[i]);
    }
    free(out);
    free(lse);
}

static void hand_cases(void) {
    const double L3 = log(3.0), NI = -INFINITY;
    { /* 1 query, 2 keys: softmax(0, ln 3) = (1/4, 3/4) */
        attn_sdpa_dims d = dims(1, 1, 2, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        o.scale = 1.0f;
        double q[] = {1}, k[] = {0, L3}, v[] = {1, 5}, oe[] = {4}, le[] = {log(4.0)};
        expect("basic", &d, &o, q, k, v, oe, le, 1, 1);
        o.scale = 2.0f; /* logits (0, 2 ln 3) -> (1/10, 9/10) */
        double oe2[] = {0.1 + 4.5}, le2[] = {log(10.0)};
        expect("scale=2", &d, &o, q, k, v, oe2, le2, 1, 1);
    }
    { /* Dv != D, default scale 1/sqrt(D) with D = 4 */
        attn_sdpa_dims d = dims(1, 1, 2, 1, 1, 4, 3);
        attn_sdpa_opts o = opts0();
        double q[] = {1, 1, 1, 1}, k[] = {0, 0, 0, 0, L3 / 2, L3 / 2, L3 / 2, L3 / 2};
        double v[] = {1, 0, 2, 5, 4, -2}, oe[] = {4, 3, -1}, le[] = {log(4.0)};
        expect("Dv!=D default scale", &d, &o, q, k, v, oe, le, 3, 1);
    }
    /* Uniform-logit cases: q = 0, so every visible key has logit 0 and
     * o_i = mean of visible v_j, lse_i = log(#visible). v_j = j + 1 (Dv = 1). */
    double q0[16] = {0}, kz[16] = {0}, vj[16];
    for (int i = 0; i < 16; i++) vj[i] = i + 1;
    { /* causal top-left / bottom-right, Sq = 2, Sk = 3 */
        attn_sdpa_dims d = dims(1, 2, 3, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        o.causal = 1;
        double oe[] = {1, 1.5}, le[] = {0, log(2.0)};
        expect("causal tl", &d, &o, q0, kz, vj, oe, le, 2, 2);
        o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        double oe2[] = {1.5, 2}, le2[] = {log(2.0), log(3.0)};
        expect("causal br", &d, &o, q0, kz, vj, oe2, le2, 2, 2);
    }
    { /* bottom-right with Sq > Sk: first row sees nothing */
        attn_sdpa_dims d = dims(1, 3, 2, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        o.causal = 1; o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        double oe[] = {0, 1, 1.5}, le[] = {NI, 0, log(2.0)};
        expect("causal br Sq>Sk", &d, &o, q0, kz, vj, oe, le, 3, 3);
    }
    { /* key_lens, B = 3, Sk = 3, Sq = 1 */
        attn_sdpa_dims d = dims(3, 1, 3, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        int32_t kl[] = {1, 0, 3};
        o.key_lens = kl;
        /* v of batch b: vj[3b + j] */
        double oe[] = {1, 0, (7 + 8 + 9) / 3.0}, le[] = {0, NI, log(3.0)};
        expect("key_lens", &d, &o, q0, kz, vj, oe, le, 3, 3);
        /* bottom-right causal uses Sk_b = key_lens[b]: Sq = 1 sits at key kl-1 */
        o.causal = 1; o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        expect("key_lens causal br", &d, &o, q0, kz, vj, oe, le, 3, 3);
        /* top-left causal: row 0 sees key 0 only */
        o.align = ATTN_ALIGN_TOP_LEFT;
        double oe2[] = {1, 0, 7}, le2[] = {0, NI, 0};
        expect("key_lens causal tl", &d, &o, q0, kz, vj, oe2, le2, 3, 3);
    }
    { /* sliding window, Sq = Sk = 5 */
        attn_sdpa_dims d = dims(1, 5, 5, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        o.window_left = 1; o.window_right = 0;
        double oe[] = {1, 1.5, 2.5, 3.5, 4.5}, le[] = {0, log(2.0), log(2.0), log(2.0), log(2.0)};
        expect("window (1,0)", &d, &o, q0, kz, vj, oe, le, 5, 5);
        o.window_left = -1; o.window_right = 1;
        double oe2[] = {1.5, 2, 2.5, 3, 3}, le2[] = {log(2.0), log(3.0), log(4.0), log(5.0), log(5.0)};
        expect("window (-1,1)", &d, &o, q0, kz, vj, oe2, le2, 5, 5);
        o.window_left = 0; o.window_right = 0; /* diagonal only */
        double oe3[] = {1, 2, 3, 4, 5}, le3[] = {0, 0, 0, 0, 0};
        expect("window (0,0)", &d, &o, q0, kz, vj, oe3, le3, 5, 5);
    }
    { /* window with bottom-right alignment, Sq = 2, Sk = 5: p = (3, 4) */
        attn_sdpa_dims d = dims(1, 2, 5, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        o.align = ATTN_ALIGN_BOTTOM_RIGHT; o.window_left = 1; o.causal = 1;
        double oe[] = {3.5, 4.5}, le[] = {log(2.0), log(2.0)};
        expect("window br", &d, &o, q0, kz, vj, oe, le, 2, 2);
    }
    { /* ALiBi: s_j = -m |p - j| */
        attn_sdpa_dims d = dims(1, 1, 3, 2, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        float sl[] = {0.5f, 0.25f};
        o.alibi_slopes = sl;
        double w0[3], w1[3], s0 = 0, s1 = 0;
        for (int j = 0; j < 3; j++) {
            w0[j] = exp(-0.5 * j); s0 += w0[j];
            w1[j] = exp(-0.25 * j); s1 += w1[j];
        }
        /* o: (1, 1, 2, 1) rows = heads */
        double oe[] = {(w0[0] + 2 * w0[1] + 3 * w0[2]) / s0, (w1[0] + 2 * w1[1] + 3 * w1[2]) / s1};
        double le[] = {log(s0), log(s1)};
        expect("alibi tl", &d, &o, q0, kz, vj, oe, le, 2, 2);
        o.align = ATTN_ALIGN_BOTTOM_RIGHT; /* p = 2 */
        double oe2[] = {(w0[2] + 2 * w0[1] + 3 * w0[0]) / s0, (w1[2] + 2 * w1[1] + 3 * w1[0]) / s1};
        expect("alibi br", &d, &o, q0, kz, vj, oe2, le, 2, 2);
    }
    { /* softcap: s = c tanh(s / c) */
        attn_sdpa_dims d = dims(1, 1, 2, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        o.scale = 1.0f; o.softcap = 2.0f;
        double q[] = {1}, k[] = {3, 0}, v[] = {1, 2};
        double s0 = 2.0 * tanh(1.5), e0 = exp(s0);
        double oe[] = {(e0 + 2) / (e0 + 1)}, le[] = {log(e0 + 1)};
        expect("softcap", &d, &o, q, k, v, oe, le, 1, 1);
        /* softcap then alibi then additive mask, in that order */
        float sl[] = {1.0f}, am[] = {0.0f, 0.5f};
        o.alibi_slopes = sl; o.mask_kind = ATTN_MASK_ADD; o.mask = am;
        double e1 = exp(0.0 - 1.0 + 0.5);
        double oe2[] = {(e0 + 2 * e1) / (e0 + e1)}, le2[] = {log(e0 + e1)};
        expect("softcap+alibi+add", &d, &o, q, k, v, oe2, le2, 1, 1);
    }
    { /* bool and additive masks, Sq = 2, Sk = 3 */
        attn_sdpa_dims d = dims(1, 2, 3, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        uint8_t bm[] = {1, 0, 7, 0, 0, 0};
        o.mask_kind = ATTN_MASK_BOOL; o.mask = bm; o.mask_stride_q = 3;
        double oe[] = {2, 0}, le[] = {log(2.0), NI};
        expect("bool mask", &d, &o, q0, kz, vj, oe, le, 2, 2);
        float am[] = {0, -INFINITY, (float)log(2.0), -INFINITY, -INFINITY, -INFINITY};
        o.mask_kind = ATTN_MASK_ADD; o.mask = am;
        double oe2[] = {(1 + 2.0 * 3) / 3.0, 0}, le2[] = {log(1 + 2.0), NI};
        oe2[0] = (1.0 + 2.0 * 3.0) / (1.0 + 2.0);
        le2[0] = log(1.0 + 2.0);
        /* the float log(2) is not exact: recompute with it */
        double a = (double)(float)log(2.0), ea = exp(a);
        oe2[0] = (1.0 + ea * 3.0) / (1.0 + ea);
        le2[0] = log(1.0 + ea);
        expect("additive mask", &d, &o, q0, kz, vj, oe2, le2, 2, 2);
        /* broadcast over rows: stride_q = 0 uses row 0 for both rows */
        o.mask_stride_q = 0;
        double oe3[] = {oe2[0], oe2[0]}, le3[] = {le2[0], le2[0]};
        expect("additive mask row broadcast", &d, &o, q0, kz, vj, oe3, le3, 2, 2);
    }
    { /* key-padding bool mask (B, 1, 1, Sk), B = 2, H = 2 */
        attn_sdpa_dims d = dims(2, 1, 3, 2, 2, 1, 0);
        attn_sdpa_opts o = opts0();
        uint8_t bm[] = {1, 1, 0, 0, 0, 1};
        o.mask_kind = ATTN_MASK_BOOL; o.mask = bm; o.mask_stride_b = 3;
        /* v (B, Sk, Hkv, 1): batch b key j head h = vj[(b*3 + j)*2 + h] */
        double oe[] = {(1 + 3) / 2.0, (2 + 4) / 2.0, 11, 12}, le[] = {log(2.0), log(2.0), 0, 0};
        expect("key padding mask", &d, &o, q0, kz, vj, oe, le, 4, 4);
    }
    { /* dropout: o = (1/n) sum_j keep_j / (1 - p) v_j; lse before dropout */
        attn_sdpa_dims d = dims(2, 2, 8, 2, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        o.dropout_p = 0.5f; o.dropout_seed = 42;
        double oe[8], le[8];
        uint32_t thr = attn__dropout_threshold(0.5f);
        int kept = 0;
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 2; i++)
                for (int h = 0; h < 2; h++) {
                    uint64_t rk = attn__dropout_row_key(42, b, h, i);
                    double s = 0;
                    for (int j = 0; j < 8; j++)
                        if (attn__dropout_keep(rk, j, thr)) { s += 2.0 * vj[b * 8 + j] / 8.0; kept++; }
                    oe[(b * 2 + i) * 2 + h] = s;
                    le[(b * 2 + h) * 2 + i] = log(8.0);
                }
        CHECK(kept > 8 && kept < 56, "dropout keeps about half: %d of 64", kept);
        expect("dropout", &d, &o, q0, kz, vj, oe, le, 8, 8);
    }
    { /* Sk = 0 and fully masked rows: o = 0, lse = -inf, zero grads */
        attn_sdpa_dims d = dims(2, 3, 0, 2, 1, 4, 0);
        attn_sdpa_opts o = opts0();
        double q[48], oe[48] = {0}, le[12], dO[48], dq[48];
        for (int i = 0; i < 48; i++) { q[i] = i; dO[i] = 1; dq[i] = 99; }
        for (int i = 0; i < 12; i++) le[i] = NI;
        expect("Sk=0", &d, &o, q, NULL, NULL, oe, le, 48, 12);
        attn_status st = attn_ref_sdpa_bwd(&d, q, NULL, NULL, dO, dq, NULL, NULL, &o);
        CHECK(st == ATTN_OK, "Sk=0 bwd %d", (int)st);
        int z = 1;
        for (int i = 0; i < 48; i++) z &= dq[i] == 0.0;
        CHECK(z, "Sk=0 bwd: dq = 0");
    }
    { /* bwd of a fully masked row is zero; of a 2-key row matches the formula */
        attn_sdpa_dims d = dims(1, 2, 2, 1, 1, 1, 0);
        attn_sdpa_opts o = opts0();
        uint8_t bm[] = {1, 1, 0, 0};
        o.scale = 1.0f; o.mask_kind = ATTN_MASK_BOOL; o.mask = bm; o.mask_stride_q = 2;
        double q[] = {1, 5}, k[] = {0, L3}, v[] = {1, 5}, dO[] = {2, 3}, dq[2], dk[2], dv[2];
        CHECK(attn_ref_sdpa_bwd(&d, q, k, v, dO, dq, dk, dv, &o) == ATTN_OK, "bwd status");
        /* row 0: P = (1/4, 3/4), o = 4, dP = dO v = (2, 10), Di = dO o = 8,
         * ds = P (dP - Di) = (-1.5, 1.5); dq = sum ds k = 1.5 ln3; dk = ds q; dv = P dO */
        CHECK(NEAR(dq[0], 1.5 * L3, 1e-12), "dq0 %.17g", dq[0]);
        CHECK(dq[1] == 0.0, "masked row dq = 0: %g", dq[1]);
        CHECK(NEAR(dk[0], -1.5, 1e-12) && NEAR(dk[1], 1.5, 1e-12), "dk %g %g", dk[0], dk[1]);
        CHECK(NEAR(dv[0], 0.5, 1e-12) && NEAR(dv[1], 1.5, 1e-12), "dv %g %g", dv[0], dv[1]);
        /* softcap: dq picks up (1 - tanh^2) */
        o.softcap = 3.0f;
        CHECK(attn_ref_sdpa_bwd(&d, q, k, v, dO, dq, dk, dv, &o) == ATTN_OK, "bwd softcap status");
        double s1 = 3.0 * tanh(L3 / 3.0), P0 = 1.0 / (1.0 + exp(s1)), P1 = 1.0 - P0;
        double o0 = P0 + 5 * P1, Di = 2 * o0, ds1 = P1 * (10 - Di), th = tanh(L3 / 3.0);
        CHECK(NEAR(dq[0], ds1 * (1 - th * th) * L3, 1e-12), "softcap dq0 %.17g vs %.17g", dq[0],
              ds1 * (1 - th * th) * L3);
    }
}

/* varlen == separate calls; GQA == MHA with repeated kv heads */
static void identities(void) {
    tu_rng r = {12345};
    { /* varlen: 3 sequences (q lens 3, 0, 5; k lens 4, 2, 6) vs one call each */
        int32_t cq[] = {0, 3, 3, 8}, ck[] = {0, 4, 6, 12};
        int64_t Hq = 2, Hkv = 1, D = 3, Dv = 2, Tq = 8, Tk = 12;
        double q[8 * 2 * 3], k[12 * 3], v[12 * 2], o[8 * 2 * 2], lse[2 * 8];
        for (size_t i = 0; i < sizeof q / sizeof *q; i++) q[i] = tu_normal(&r);
        for (size_t i = 0; i < sizeof k / sizeof *k; i++) k[i] = tu_normal(&r);
        for (size_t i = 0; i < sizeof v / sizeof *v; i++) v[i] = tu_normal(&r);
        attn_sdpa_dims d = dims(3, Tq, Tk, Hq, Hkv, D, Dv);
        attn_sdpa_opts ov = opts0();
        int32_t kl[] = {3, 0, 6};
        ov.cu_seqlens_q = cq; ov.cu_seqlens_k = ck; ov.causal = 1; ov.align = ATTN_ALIGN_BOTTOM_RIGHT;
        ov.key_lens = kl; ov.dropout_p = 0.3f; ov.dropout_seed = 7;
        CHECK(attn_ref_sdpa_fwd(&d, q, k, v, o, lse, &ov) == ATTN_OK, "varlen fwd");
        for (int b = 0; b < 3; b++) {
            int64_t sq = cq[b + 1] - cq[b], sk = ck[b + 1] - ck[b];
            if (sq == 0) continue;
            attn_sdpa_dims d1 = dims(1, sq, sk, Hq, Hkv, D, Dv);
            attn_sdpa_opts o1 = ov;
            int32_t kl1[] = {kl[b]};
            o1.cu_seqlens_q = o1.cu_seqlens_k = NULL; o1.key_lens = kl1;
            double o_1[5 * 2 * 2], l_1[2 * 5];
            /* the dropout mask depends on the sequence index b: emulate it by
             * running batch b of a B = b+1 call whose earlier batches are empty keys */
            attn_sdpa_dims dB = dims(b + 1, sq, sk, Hq, Hkv, D, Dv);
            double *qB = calloc((size_t)((b + 1) * sq * Hq * D), sizeof(double));
            double *kB = calloc((size_t)((b + 1) * sk * Hkv * D), sizeof(double));
            double *vB = calloc((size_t)((b + 1) * sk * Hkv * Dv), sizeof(double));
            double *oB = calloc((size_t)((b + 1) * sq * Hq * Dv), sizeof(double));
            double *lB = calloc((size_t)((b + 1) * Hq * sq), sizeof(double));
            int32_t klB[3] = {0, 0, 0};
            klB[b] = kl[b];
            memcpy(qB + b * sq * Hq * D, q + cq[b] * Hq * D, (size_t)(sq * Hq * D) * sizeof(double));
            memcpy(kB + b * sk * Hkv * D, k + ck[b] * Hkv * D, (size_t)(sk * Hkv * D) * sizeof(double));
            memcpy(vB + b * sk * Hkv * Dv, v + ck[b] * Hkv * Dv, (size_t)(sk * Hkv * Dv) * sizeof(double));
            o1.key_lens = klB;
            CHECK(attn_ref_sdpa_fwd(&dB, qB, kB, vB, oB, lB, &o1) == ATTN_OK, "per-seq fwd");
            memcpy(o_1, oB + b * sq * Hq * Dv, (size_t)(sq * Hq * Dv) * sizeof(double));
            for (int h = 0; h < Hq; h++)
                for (int i = 0; i < sq; i++) l_1[h * sq + i] = lB[(b * Hq + h) * sq + i];
            int same = 1;
            for (int64_t x = 0; x < sq * Hq * Dv; x++) same &= o_1[x] == o[cq[b] * Hq * Dv + x];
            for (int h = 0; h < Hq; h++)
                for (int i = 0; i < sq; i++) {
                    double a = l_1[h * sq + i], e = lse[h * Tq + cq[b] + i];
                    same &= a == e;
                }
            CHECK(same, "varlen sequence %d equals the batched call", b);
            free(qB); free(kB); free(vB); free(oB); free(lB);
            (void)d1;
        }
    }
    { /* GQA (Hq = 4, Hkv = 2) == MHA with each kv head repeated; dk/dv sum over the group */
        int64_t B = 2, Sq = 3, Sk = 4, Hq = 4, Hkv = 2, D = 3, Dv = 2, g = 2;
        int64_t nq = B * Sq * Hq * D, nk = B * Sk * Hkv * D, nv = B * Sk * Hkv * Dv, no = B * Sq * Hq * Dv;
        double *q = malloc(nq * sizeof(double)), *k = malloc(nk * sizeof(double)), *v = malloc(nv * sizeof(double));
        double *dO = malloc(no * sizeof(double));
        double *kr = malloc(nk * g * sizeof(double)), *vr = malloc(nv * g * sizeof(double));
        for (int64_t i = 0; i < nq; i++) q[i] = tu_normal(&r);
        for (int64_t i = 0; i < nk; i++) k[i] = tu_normal(&r);
        for (int64_t i = 0; i < nv; i++) v[i] = tu_normal(&r);
        for (int64_t i = 0; i < no; i++) dO[i] = tu_normal(&r);
        for (int64_t bs = 0; bs < B * Sk; bs++)
            for (int64_t h = 0; h < Hq; h++) {
                memcpy(kr + (bs * Hq + h) * D, k + (bs * Hkv + h / g) * D, D * sizeof(double));
                memcpy(vr + (bs * Hq + h) * Dv, v + (bs * Hkv + h / g) * Dv, Dv * sizeof(double));
            }
        attn_sdpa_opts o = opts0();
        o.causal = 1; o.align = ATTN_ALIGN_BOTTOM_RIGHT;
        attn_sdpa_dims dg = dims(B, Sq, Sk, Hq, Hkv, D, Dv), dm = dims(B, Sq, Sk, Hq, Hq, D, Dv);
        double *og = malloc(no * sizeof(double)), *om = malloc(no * sizeof(double));
        double *lg = malloc(B * Hq * Sq * sizeof(double)), *lm = malloc(B * Hq * Sq * sizeof(double));
        CHECK(attn_ref_sdpa_fwd(&dg, q, k, v, og, lg, &o) == ATTN_OK, "gqa fwd");
        CHECK(attn_ref_sdpa_fwd(&dm, q, kr, vr, om, lm, &o) == ATTN_OK, "mha fwd");
        CHECK(memcmp(og, om, no * sizeof(double)) == 0, "GQA o == MHA o with repeated kv");
        CHECK(memcmp(lg, lm, B * Hq * Sq * sizeof(double)) == 0, "GQA lse == MHA lse");
        double *dqg = malloc(nq * sizeof(double)), *dkg = malloc(nk * sizeof(double)), *dvg = malloc(nv * sizeof(double));
        double *dqm = malloc(nq * sizeof(double)), *dkm = malloc(nk * g * sizeof(double)),
               *dvm = malloc(nv * g * sizeof(double));
        CHECK(attn_ref_sdpa_bwd(&dg, q, k, v, dO, dqg, dkg, dvg, &o) == ATTN_OK, "gqa bwd");
        CHECK(attn_ref_sdpa_bwd(&dm, q, kr, vr, dO, dqm, dkm, dvm, &o) == ATTN_OK, "mha bwd");
        double e = 0;
        for (int64_t i = 0; i < nq; i++) e = fmax(e, fabs(dqg[i] - dqm[i]));
        for (int64_t bs = 0; bs < B * Sk; bs++)
            for (int64_t hk = 0; hk < Hkv; hk++) {
                for (int64_t d = 0; d < D; d++) {
                    double s = 0;
                    for (int64_t j = 0; j < g; j++) s += dkm[(bs * Hq + hk * g + j) * D + d];
                    e = fmax(e, fabs(s - dkg[(bs * Hkv + hk) * D + d]));
                }
                for (int64_t d = 0; d < Dv; d++) {
                    double s = 0;
                    for (int64_t j = 0; j < g; j++) s += dvm[(bs * Hq + hk * g + j) * Dv + d];
                    e = fmax(e, fabs(s - dvg[(bs * Hkv + hk) * Dv + d]));
                }
            }
        CHECK(e < 1e-13, "GQA grads == summed MHA grads (err %g)", e);
        free(q); free(k); free(v); free(dO); free(kr); free(vr); free(og); free(om); free(lg); free(lm);
        free(dqg); free(dkg); free(dvg); free(dqm); free(dkm); free(dvm);
    }
}

static void validation(void) {
    double buf[64] = {0}, out[64];
    attn_sdpa_dims d = dims(1, 2, 2, 2, 1, 4, 0);
    attn_sdpa_opts o = opts0();
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out + 32, &o) == ATTN_OK, "valid call");
    CHECK(attn_ref_sdpa_fwd(NULL, buf, buf, buf, out, out, &o) == ATTN_ERR_NULL, "NULL dims");
    CHECK(attn_ref_sdpa_fwd(&d, NULL, buf, buf, out, out, &o) == ATTN_ERR_NULL, "NULL q");
    CHECK(attn_ref_sdpa_bwd(&d, buf, buf, buf, buf, out, NULL, out, &o) == ATTN_ERR_NULL, "NULL dk");
    attn_sdpa_dims e = d; e.head_dim = 0;
    CHECK(attn_ref_sdpa_fwd(&e, buf, buf, buf, out, out, &o) == ATTN_ERR_SHAPE, "D = 0");
    e = d; e.head_dim = 257;
    CHECK(attn_ref_sdpa_fwd(&e, buf, buf, buf, out, out, &o) == ATTN_ERR_SHAPE, "D = 257");
    e = d; e.heads_kv = 3; e.heads_q = 4;
    CHECK(attn_ref_sdpa_fwd(&e, buf, buf, buf, out, out, &o) == ATTN_ERR_SHAPE, "Hq %% Hkv");
    e = d; e.seq_q = -1;
    CHECK(attn_ref_sdpa_fwd(&e, buf, buf, buf, out, out, &o) == ATTN_ERR_SHAPE, "Sq < 0");
    e = d; e.batch = (int64_t)1 << 40; e.seq_q = (int64_t)1 << 30;
    CHECK(attn_ref_sdpa_fwd(&e, buf, buf, buf, out, out, &o) == ATTN_ERR_NOMEM, "huge");
    attn_sdpa_opts b = o; b.scale = NAN;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_OPTION, "NaN scale");
    b = o; b.causal = 2;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_OPTION, "causal 2");
    b = o; b.window_left = -2;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_OPTION, "window -2");
    b = o; b.softcap = -1.0f;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_OPTION, "softcap < 0");
    b = o; b.mask_kind = 3;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_OPTION, "mask kind 3");
    b = o; b.mask_kind = ATTN_MASK_BOOL;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_NULL, "NULL mask");
    b = o; b.dropout_p = 1.0f;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_OPTION, "dropout 1");
    int32_t kl[] = {3};
    b = o; b.key_lens = kl;
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, &b) == ATTN_ERR_OPTION, "key_lens > Sk");
    int32_t cu_bad[] = {0, 2, 1}, cu_ok[] = {0, 1, 2};
    attn_sdpa_dims dv2 = dims(2, 2, 2, 2, 1, 4, 0);
    b = o; b.cu_seqlens_q = cu_bad; b.cu_seqlens_k = cu_ok;
    CHECK(attn_ref_sdpa_fwd(&dv2, buf, buf, buf, out, out, &b) == ATTN_ERR_SHAPE, "non-monotone cu_seqlens");
    b = o; b.cu_seqlens_q = cu_ok;
    CHECK(attn_ref_sdpa_fwd(&dv2, buf, buf, buf, out, out, &b) == ATTN_ERR_NULL, "cu_seqlens_q alone");
    b = o; b.cu_seqlens_q = cu_ok; b.cu_seqlens_k = cu_ok;
    CHECK(attn_ref_sdpa_fwd(&dv2, buf, buf, buf, out, out, &b) == ATTN_OK, "valid varlen");
    CHECK(attn_ref_sdpa_fwd(&d, buf, buf, buf, out, out, NULL) == ATTN_OK, "NULL opts = defaults");
}

/* ─── finite differences ─────────────────────────────────────────────────── */
static double loss(const sc_case *c, double *o, const double *W) {
    if (sc_ref_fwd(c, o, NULL) != ATTN_OK) return NAN;
    double L = 0;
    int64_t n = sc_no(c);
    for (int64_t i = 0; i < n; i++) L += o[i] * W[i];
    return L;
}

/* max over one tensor of |fd - g| / (1e-7 max|g| + 1e-9): <= 1 passes. The
 * absolute floor is ~10x the rounding noise of a double central difference
 * with h = 1e-5 on losses of size ~10. */
static double fd_tensor(sc_case *c, double *x, int64_t n, const double *g, double *o, double *worst_abs) {
    const double h = 1e-5;
    double gmax = 0, emax = 0;
    for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = loss(c, o, c->dO64);
        x[i] = x0 - h;
        double lm = loss(c, o, c->dO64);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        double e = fabs(fd - g[i]);
        if (!(e <= emax)) emax = e; /* NaN-propagating */
    }
    *worst_abs = emax;
    return emax / (1e-7 * gmax + 1e-9);
}

static void fd_configs(int64_t count) {
    static const int64_t seqs[] = {1, 2, 3, 4, 5, 7};
    static const int64_t ds[] = {1, 2, 3, 4, 5};
    sc_gen g = {seqs, 6, ds, 5, 3000, 2, 2, 3, SC_F_ALL & ~(unsigned)SC_F_VIEWS, 0, 0.3, 0, 0, 0, 0};
    tu_rng r = {2024};
    unsigned covered = 0;
    double worst = 0;
    char worst_desc[400] = "";
    for (int64_t n = 0; n < count; n++) {
        g.force = 1u << (n % 12);
        sc_case c;
        sc_gen_case(&c, &r, &g);
        covered |= c.features;
        double *o = malloc(((size_t)sc_no(&c) + 1) * sizeof(double));
        double *dq = malloc(((size_t)sc_nq(&c) + 1) * sizeof(double));
        double *dk = malloc(((size_t)sc_nk(&c) + 1) * sizeof(double));
        double *dv = malloc(((size_t)sc_nv(&c) + 1) * sizeof(double));
        CHECK(sc_ref_bwd(&c, dq, dk, dv) == ATTN_OK, "ref bwd: %s", attn_last_error());
        double a1, a2, a3;
        double e1 = fd_tensor(&c, c.q64, sc_nq(&c), dq, o, &a1);
        double e2 = fd_tensor(&c, c.k64, sc_nk(&c), dk, o, &a2);
        double e3 = fd_tensor(&c, c.v64, sc_nv(&c), dv, o, &a3);
        double e = fmax(e1, fmax(e2, e3));
        if (!(e <= worst)) {
            worst = e;
            snprintf(worst_desc, sizeof worst_desc, "%s", c.desc);
        }
        CHECK(e1 <= 1 && e2 <= 1 && e3 <= 1, "FD config %lld: err/tol dq %.3g dk %.3g dv %.3g (abs %.3g %.3g %.3g): %s",
              (long long)n, e1, e2, e3, a1, a2, a3, c.desc);
        free(o); free(dq); free(dk); free(dv);
        sc_case_free(&c);
    }
    unsigned need = SC_F_ALL & ~(unsigned)SC_F_VIEWS;
    if (count >= 12) CHECK((covered & need) == need, "every option covered (0x%x of 0x%x)", covered, need);
    printf("finite differences: %lld configs, worst err/tol %.3g (%s)\n", (long long)count, worst, worst_desc);
}

int main(int argc, char **argv) {
    int64_t count = argc > 1 ? atoll(argv[1]) : sc_count(1000);
    if (count < 200 && argc <= 1 && sc_test_scale() >= 1.0) count = 200;
    hand_cases();
    identities();
    validation();
    double t0 = sc_now();
    fd_configs(count);
    printf("time %.2f s\n", sc_now() - t0);
    return test_summary("test_sdpa_ref");
}
