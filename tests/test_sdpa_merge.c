/* SPDX-License-Identifier: MIT */
/* test_sdpa_merge.c — attn_sdpa_merge and the key-block backward: attention
 * computed chunk by chunk (what a ring or split-KV computation does) equals
 * one call over the whole sequence.
 *
 * 1. Chunked forward + backward vs the float64 reference. Random problems
 *    (B, Sq, Sk, GQA, D != Dv, causal both alignments, windows, key_lens,
 *    ALiBi, softcap, a global q_pos_offset) are cut into 1..4 query chunks
 *    and 1..4 key chunks at random points. Forward: every (query chunk, key
 *    chunk) pair is one attn_sdpa_fwd with q_pos_offset = global shift +
 *    qs - ks and key_lens clipped to the chunk; the parts of a query chunk
 *    are merged with attn_sdpa_merge, either all at once or as a running
 *    in-place accumulation. Backward, the two key-block backwards of attn.h
 *    (alternate cases): attn_sdpa_bwd over the pair with bwd_fast = 1 and the
 *    MERGED o and lse (these cases also draw softcap), or the E-column recipe
 *    (the pair's own lse_b, w = exp(lse_b - lse), the extra value columns);
 *    dq summed over key chunks, dk / dv over query chunks. Every output passes iff
 *      max|chunked - ref| <= 2 * max|naive fp32 - ref| + 1e-6 cond + 1e-7 condA
 *    (the parity criterion; the naive backward is fed the chunked o, lse),
 *    non-finite values (lse = -inf of fully masked rows) matching exactly.
 * 2. Merge semantics: one non-empty part is reproduced bit for bit; empty
 *    parts (lse = -inf) are ignored even when their o holds NaN; all-empty
 *    rows give o = 0, lse = -inf; a NaN lse gives NaN; results identical for
 *    1 and 3 threads; in place equals out of place bit for bit.
 * 3. Validation: bad sizes, NULLs, strides, forbidden aliasing are refused
 *    with a message naming the argument, and nothing is written. */
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunks {
    int n;
    int64_t at[5]; /* chunk c is [at[c], at[c+1]) */
} chunks;

static void cut(chunks *ch, tu_rng *r, int64_t S) {
    int want = (int)tu_int(r, 1, 4);
    ch->n = 0;
    ch->at[0] = 0;
    int64_t pos = 0;
    for (int c = 0; c < want - 1 && pos < S; c++) {
        int64_t nxt = pos + tu_int(r, 1, S / want + 1);
        if (nxt >= S) break;
        ch->at[++ch->n] = nxt;
        pos = nxt;
    }
    ch->at[++ch->n] = S;
}

/* (B, S, H, Dh) contiguous tensor: view of rows [s0, s0 + n) */
static attn_view rows_view(float *p, int64_t S, int64_t H, int64_t Dh, int64_t s0) {
    attn_view v = attn_view_bshd(p, S, H, Dh);
    v.data = p + s0 * H * Dh;
    return v;
}

/* options of the pair (query rows from qs, keys [ks, ks + nk)) */
static void pair_opts(const sc_case *c, int64_t qs, int64_t ks, int64_t nk, int32_t *kl, attn_sdpa_opts *po) {
    *po = c->o;
    int64_t g = c->o.q_pos_offset + (c->o.align == ATTN_ALIGN_BOTTOM_RIGHT ? c->d.seq_k - c->d.seq_q : 0);
    po->align = ATTN_ALIGN_TOP_LEFT;
    po->q_pos_offset = g + qs - ks;
    if (c->o.key_lens) {
        for (int64_t b = 0; b < c->d.batch; b++) {
            int64_t l = c->o.key_lens[b] - ks;
            kl[b] = (int32_t)(l < 0 ? 0 : l > nk ? nk : l);
        }
        po->key_lens = kl;
    }
}

typedef struct prob {
    int64_t B, Sq, Sk, Hq, Hkv, D, Dv;
    float *q, *k, *v, *dO; /* contiguous (B, S, H, *) */
} prob;

/* Chunked forward: o (B, Sq, Hq, Dv), lse (B, Hq, Sq). */
static int chunked_fwd(const sc_case *c, const prob *p, const chunks *qc, const chunks *kc, int inplace, float *o,
                       float *lse) {
    int ok = 1;
    int32_t kl[8];
    for (int a = 0; a < qc->n; a++) {
        const int64_t qs = qc->at[a], nq = qc->at[a + 1] - qs;
        float *op[4], *lp[4];
        attn_view ov[4];
        const float *lpc[4];
        for (int e = 0; e < kc->n; e++) {
            const int64_t ks = kc->at[e], nk = kc->at[e + 1] - ks;
            attn_sdpa_opts po;
            pair_opts(c, qs, ks, nk, kl, &po);
            attn_sdpa_dims d = {p->B, nq, nk, p->Hq, p->Hkv, p->D, p->Dv};
            op[e] = malloc((size_t)(p->B * nq * p->Hq * p->Dv + 1) * sizeof(float));
            lp[e] = malloc((size_t)(p->B * p->Hq * nq + 1) * sizeof(float));
            ov[e] = attn_view_bshd(op[e], nq, p->Hq, p->Dv);
            lpc[e] = lp[e];
            attn_view qv = rows_view(p->q, p->Sq, p->Hq, p->D, qs);
            attn_view kv = rows_view(p->k, p->Sk, p->Hkv, p->D, ks), vv = rows_view(p->v, p->Sk, p->Hkv, p->Dv, ks);
            attn_status st = attn_sdpa_fwd(&d, qv, kv, vv, ov[e], lp[e], &po, NULL, 0);
            CHECK(st == ATTN_OK, "pair fwd: %s", attn_last_error());
            ok &= st == ATTN_OK;
        }
        attn_view dst = rows_view(o, p->Sq, p->Hq, p->Dv, qs);
        float *lsec = malloc((size_t)(p->B * p->Hq * nq + 1) * sizeof(float));
        attn_status st = ATTN_OK;
        if (!inplace) {
            st = attn_sdpa_merge(p->B, nq, p->Hq, p->Dv, kc->n, ov, lpc, dst, lsec, 0);
        } else { /* running accumulation in part 0 */
            for (int e = 1; e < kc->n && st == ATTN_OK; e++) {
                attn_view two[2] = {ov[0], ov[e]};
                const float *l2[2] = {lp[0], lp[e]};
                st = attn_sdpa_merge(p->B, nq, p->Hq, p->Dv, 2, two, l2, ov[0], lp[0], (int)(e % 3));
            }
            for (int64_t b = 0; b < p->B; b++)
                for (int64_t i = 0; i < nq; i++)
                    for (int64_t h = 0; h < p->Hq; h++)
                        memcpy(dst.data + b * dst.stride_b + i * dst.stride_s + h * dst.stride_h,
                               op[0] + ((b * nq + i) * p->Hq + h) * p->Dv, (size_t)p->Dv * sizeof(float));
            memcpy(lsec, lp[0], (size_t)(p->B * p->Hq * nq) * sizeof(float));
        }
        CHECK(st == ATTN_OK, "merge: %s", attn_last_error());
        ok &= st == ATTN_OK;
        for (int64_t bh = 0; bh < p->B * p->Hq; bh++)
            memcpy(lse + bh * p->Sq + qs, lsec + bh * nq, (size_t)nq * sizeof(float));
        free(lsec);
        for (int e = 0; e < kc->n; e++) { free(op[e]); free(lp[e]); }
    }
    return ok;
}

/* One (query chunk, key chunk) pair of the chunked backward: the key-block
 * recipe of attn.h. E = Dv + D value columns:
 *   forward over the block with V = [v | k]:  [o_b | ok], lse_b
 *   w = exp(lse_b - lse), c = <dO, o_b - o> (global o, lse)
 *   backward over the block with V = [v | 0], o = [o_b | 0], dO = [w dO | w c q], lse_b
 *   dq = dq_b + scale w c ok,  dk = dk_b + scale dv_b[Dv:],  dv = dv_b[:Dv] */
static attn_status pair_bwd(const prob *p, const attn_sdpa_opts *po, int64_t qs, int64_t nq, int64_t ks, int64_t nk,
                            const float *o, const float *lse_g, float *dqp, float *dkp, float *dvp) {
    const int64_t B = p->B, Hq = p->Hq, Hkv = p->Hkv, D = p->D, Dv = p->Dv, E = Dv + D;
    const float scale = po->scale != 0.0f ? po->scale : (float)(1.0 / sqrt((double)D));
    float *va = malloc((size_t)(B * nk * Hkv * E + 1) * 4), *oa = malloc((size_t)(B * nq * Hq * E + 1) * 4);
    float *dOa = malloc((size_t)(B * nq * Hq * E + 1) * 4), *okc = malloc((size_t)(B * nq * Hq * D + 1) * 4);
    float *lb = malloc((size_t)(B * Hq * nq + 1) * 4), *dva = malloc((size_t)(B * nk * Hkv * E + 1) * 4);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < nk; j++)
            for (int64_t h = 0; h < Hkv; h++) {
                float *dst = va + ((b * nk + j) * Hkv + h) * E;
                memcpy(dst, p->v + ((b * p->Sk + ks + j) * Hkv + h) * Dv, (size_t)Dv * 4);
                memcpy(dst + Dv, p->k + ((b * p->Sk + ks + j) * Hkv + h) * D, (size_t)D * 4);
            }
    attn_sdpa_dims d = {B, nq, nk, Hq, Hkv, D, E};
    attn_view qv = rows_view(p->q, p->Sq, Hq, D, qs), kv = rows_view(p->k, p->Sk, Hkv, D, ks);
    attn_view vav = attn_view_bshd(va, nk, Hkv, E), oav = attn_view_bshd(oa, nq, Hq, E);
    attn_status st = attn_sdpa_fwd(&d, qv, kv, vav, oav, lb, po, NULL, 0);
    for (int64_t b = 0; b < B && st == ATTN_OK; b++)
        for (int64_t i = 0; i < nq; i++)
            for (int64_t h = 0; h < Hq; h++) {
                const int64_t li = (b * Hq + h) * nq + i, r = (b * nq + i) * Hq + h;
                const float w = lb[li] == -INFINITY ? 0.0f : (float)exp((double)lb[li] - (double)lse_g[li]);
                const float *dO = p->dO + ((b * p->Sq + qs + i) * Hq + h) * Dv;
                const float *og = o + ((b * p->Sq + qs + i) * Hq + h) * Dv;
                const float *qr = p->q + ((b * p->Sq + qs + i) * Hq + h) * D;
                float *ob = oa + r * E;
                double cc = 0.0;
                for (int64_t e = 0; e < Dv; e++) cc += (double)dO[e] * ((double)ob[e] - (double)og[e]);
                const float c = w == 0.0f ? 0.0f : (float)cc;
                for (int64_t e = 0; e < Dv; e++) dOa[r * E + e] = w * dO[e];
                for (int64_t e = 0; e < D; e++) {
                    dOa[r * E + Dv + e] = w * c * qr[e];
                    okc[r * D + e] = scale * w * c * ob[Dv + e];
                    ob[Dv + e] = 0.0f;
                }
            }
    for (int64_t x = 0; x < B * nk * Hkv; x++) memset(va + x * E + Dv, 0, (size_t)D * 4);
    if (st == ATTN_OK)
        st = attn_sdpa_bwd(&d, qv, kv, vav, oav, attn_view_bshd(dOa, nq, Hq, E), lb, attn_view_bshd(dqp, nq, Hq, D),
                           attn_view_bshd(dkp, nk, Hkv, D), attn_view_bshd(dva, nk, Hkv, E), po, NULL, 0);
    if (st == ATTN_OK) {
        for (int64_t x = 0; x < B * nq * Hq * D; x++) dqp[x] += okc[x];
        for (int64_t x = 0; x < B * nk * Hkv; x++) {
            memcpy(dvp + x * Dv, dva + x * E, (size_t)Dv * 4);
            for (int64_t e = 0; e < D; e++) dkp[x * D + e] += scale * dva[x * E + Dv + e];
        }
    }
    free(va); free(oa); free(dOa); free(okc); free(lb); free(dva);
    return st;
}

/* The same pair by the key-block backward of attn.h: attn_sdpa_bwd over the
 * block with bwd_fast = 1 and the GLOBAL o and lse (P = exp(s - lse),
 * Di = <dO, o>): its dq, dk, dv are the block's exact shares. */
static attn_status pair_bwd_fast(const prob *p, const attn_sdpa_opts *po, int64_t qs, int64_t nq, int64_t ks,
                                 int64_t nk, float *o, const float *lse_g, float *dqp, float *dkp, float *dvp) {
    attn_sdpa_dims d = {p->B, nq, nk, p->Hq, p->Hkv, p->D, p->Dv};
    attn_sdpa_opts fo = *po;
    fo.bwd_fast = 1;
    return attn_sdpa_bwd(&d, rows_view(p->q, p->Sq, p->Hq, p->D, qs), rows_view(p->k, p->Sk, p->Hkv, p->D, ks),
                         rows_view(p->v, p->Sk, p->Hkv, p->Dv, ks), rows_view(o, p->Sq, p->Hq, p->Dv, qs),
                         rows_view(p->dO, p->Sq, p->Hq, p->Dv, qs), lse_g, attn_view_bshd(dqp, nq, p->Hq, p->D),
                         attn_view_bshd(dkp, nk, p->Hkv, p->D), attn_view_bshd(dvp, nk, p->Hkv, p->Dv), &fo, NULL, 0);
}

static void add_into(float *acc, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += x[i];
}

/* Chunked backward with the global o, lse. dq (B, Sq, Hq, D), dk, dv (B, Sk, Hkv, *).
 * fast: each pair by pair_bwd_fast, else by the E-column recipe (pair_bwd). */
static int chunked_bwd(const sc_case *c, const prob *p, const chunks *qc, const chunks *kc, float *o,
                       const float *lse, int fast, float *dq, float *dk, float *dv) {
    int ok = 1;
    int32_t kl[8];
    memset(dq, 0, (size_t)(p->B * p->Sq * p->Hq * p->D) * sizeof(float));
    memset(dk, 0, (size_t)(p->B * p->Sk * p->Hkv * p->D) * sizeof(float));
    memset(dv, 0, (size_t)(p->B * p->Sk * p->Hkv * p->Dv) * sizeof(float));
    for (int a = 0; a < qc->n; a++) {
        const int64_t qs = qc->at[a], nq = qc->at[a + 1] - qs;
        float *lsec = malloc((size_t)(p->B * p->Hq * nq + 1) * sizeof(float));
        for (int64_t bh = 0; bh < p->B * p->Hq; bh++)
            memcpy(lsec + bh * nq, lse + bh * p->Sq + qs, (size_t)nq * sizeof(float));
        for (int e = 0; e < kc->n; e++) {
            const int64_t ks = kc->at[e], nk = kc->at[e + 1] - ks;
            attn_sdpa_opts po;
            pair_opts(c, qs, ks, nk, kl, &po);
            float *dqp = malloc((size_t)(p->B * nq * p->Hq * p->D + 1) * sizeof(float));
            float *dkp = malloc((size_t)(p->B * nk * p->Hkv * p->D + 1) * sizeof(float));
            float *dvp = malloc((size_t)(p->B * nk * p->Hkv * p->Dv + 1) * sizeof(float));
            attn_status st = fast ? pair_bwd_fast(p, &po, qs, nq, ks, nk, o, lsec, dqp, dkp, dvp)
                                  : pair_bwd(p, &po, qs, nq, ks, nk, o, lsec, dqp, dkp, dvp);
            CHECK(st == ATTN_OK, "pair bwd: %s", attn_last_error());
            ok &= st == ATTN_OK;
            for (int64_t b = 0; b < p->B && st == ATTN_OK; b++) {
                add_into(dq + (b * p->Sq + qs) * p->Hq * p->D, dqp + b * nq * p->Hq * p->D, nq * p->Hq * p->D);
                add_into(dk + (b * p->Sk + ks) * p->Hkv * p->D, dkp + b * nk * p->Hkv * p->D, nk * p->Hkv * p->D);
                add_into(dv + (b * p->Sk + ks) * p->Hkv * p->Dv, dvp + b * nk * p->Hkv * p->Dv,
                         nk * p->Hkv * p->Dv);
            }
            free(dqp); free(dkp); free(dvp);
        }
        free(lsec);
    }
    return ok;
}

static void draw_case(sc_case *c, tu_rng *r, int fast, int32_t *key_lens, float *alibi) {
    attn_sdpa_dims d;
    memset(&d, 0, sizeof d);
    d.batch = tu_int(r, 1, 2);
    d.heads_kv = tu_int(r, 1, 2);
    d.heads_q = d.heads_kv * tu_int(r, 1, 3);
    static const int64_t dims[] = {8, 16, 17, 32, 64};
    d.head_dim = dims[tu_int(r, 0, 4)];
    d.head_dim_v = tu_int(r, 0, 3) == 0 ? dims[tu_int(r, 0, 4)] : d.head_dim;
    d.seq_q = tu_int(r, 1, 90);
    d.seq_k = tu_int(r, 0, 2) == 0 ? tu_int(r, 1, 90) : d.seq_q;
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = tu_int(r, 0, 1) == 0;
    if (tu_int(r, 0, 2) == 0) {
        o.window_left = tu_int(r, 0, 20);
        if (tu_int(r, 0, 1)) o.window_right = tu_int(r, 0, 6);
    }
    if (tu_int(r, 0, 2) == 0) {
        for (int64_t b = 0; b < d.batch; b++) key_lens[b] = (int32_t)tu_int(r, 0, d.seq_k);
        o.key_lens = key_lens;
    } else if (tu_int(r, 0, 1)) {
        o.align = ATTN_ALIGN_BOTTOM_RIGHT; /* global shift Sk - Sq (key_lens would make it per batch) */
    }
    if (tu_int(r, 0, 4) == 0) {
        for (int64_t h = 0; h < d.heads_q; h++) alibi[h] = (float)(0.3 * tu_uniform(r));
        o.alibi_slopes = alibi;
    }
    /* softcap only with the bwd_fast key blocks: the E-column recipe needs dlogit/dscore = 1 (see attn.h) */
    if (fast && tu_int(r, 0, 3) == 0) o.softcap = (float)(2.0 + 20.0 * tu_uniform(r));
    if (tu_int(r, 0, 3) == 0) o.q_pos_offset = tu_int(r, -20, 20);
    sc_case_init(c, &d, &o, r, 1.0);
}

static void check_chunked(int64_t ncases, uint64_t seed) {
    static const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    tu_rng r = {seed};
    double worst[5] = {0};
    for (int64_t n = 0; n < ncases; n++) {
        int32_t key_lens[8];
        float alibi[8];
        sc_case c;
        const int fast = (int)(n & 1); /* the two key-block backwards of attn.h, alternately */
        draw_case(&c, &r, fast, key_lens, alibi);
        prob p = {c.d.batch, c.d.seq_q, c.d.seq_k, c.d.heads_q, c.d.heads_kv, c.d.head_dim, c.Dv, NULL, NULL, NULL,
                  NULL};
        int64_t nq = sc_nq(&c), nk = sc_nk(&c), nv = sc_nv(&c), no = sc_no(&c), nl = c.nlse;
        p.q = malloc((size_t)nq * sizeof(float));
        p.k = malloc((size_t)nk * sizeof(float) + 4);
        p.v = malloc((size_t)nv * sizeof(float) + 4);
        p.dO = malloc((size_t)no * sizeof(float));
        sc_to_float(&c.q, p.q);
        sc_to_float(&c.k, p.k);
        sc_to_float(&c.v, p.v);
        sc_to_float(&c.dO, p.dO);
        chunks qc, kc;
        cut(&qc, &r, p.Sq);
        cut(&kc, &r, p.Sk);
        int inplace = (int)tu_int(&r, 0, 1);
        float *o = malloc((size_t)no * sizeof(float)), *lse = malloc((size_t)nl * sizeof(float));
        float *dq = malloc((size_t)nq * sizeof(float)), *dk = malloc((size_t)nk * sizeof(float) + 4);
        float *dv = malloc((size_t)nv * sizeof(float) + 4);
        float *no_ = malloc((size_t)no * sizeof(float)), *nlse = malloc((size_t)nl * sizeof(float));
        float *ndq = malloc((size_t)nq * sizeof(float)), *ndk = malloc((size_t)nk * sizeof(float) + 4);
        float *ndv = malloc((size_t)nv * sizeof(float) + 4);
        double *ro = malloc((size_t)no * sizeof(double)), *rl = malloc((size_t)nl * sizeof(double));
        double *rdq = malloc((size_t)nq * sizeof(double)), *rdk = malloc((size_t)nk * sizeof(double) + 8);
        double *rdv = malloc((size_t)nv * sizeof(double) + 8);
        int ok = chunked_fwd(&c, &p, &qc, &kc, inplace, o, lse);
        ok &= chunked_bwd(&c, &p, &qc, &kc, o, lse, fast, dq, dk, dv);
        CHECK(sc_ref_fwd(&c, ro, rl) == ATTN_OK && sc_ref_bwd(&c, rdq, rdk, rdv) == ATTN_OK, "ref: %s",
              attn_last_error());
        sc_naive_fwd(&c, no_, nlse);
        sc_naive_bwd(&c, o, lse, ndq, ndk, ndv);
        double cond[5], condA[5];
        sc_ref_cond(&c, cond, condA);
        const double *refs[5] = {ro, rl, rdq, rdk, rdv};
        const float *got[5] = {o, lse, dq, dk, dv}, *naive[5] = {no_, nlse, ndq, ndk, ndv};
        const int64_t cnt[5] = {no, nl, nq, nk, nv};
        for (int w = 0; w < 5 && ok; w++) {
            sc_err eg = sc_err_f(refs[w], got[w], cnt[w]), en = sc_err_f(refs[w], naive[w], cnt[w]);
            double bound = 2.0 * en.max_abs + 1e-6 * cond[w] + 1e-7 * condA[w] + 1e-30;
            double ratio = eg.max_abs / bound;
            if (ratio > worst[w]) worst[w] = ratio;
            CHECK(eg.max_abs <= bound && eg.bad_nonfinite == 0,
                  "case %lld %s (q chunks %d, k chunks %d, %s merge, %s key blocks): err %.3g > bound %.3g "
                  "(naive %.3g), non-finite mismatches %lld: %s",
                  (long long)n, names[w], qc.n, kc.n, inplace ? "in-place" : "n-way", fast ? "bwd_fast" : "recipe",
                  eg.max_abs, bound, en.max_abs,
                  (long long)eg.bad_nonfinite, c.desc);
        }
        free(p.q); free(p.k); free(p.v); free(p.dO);
        free(o); free(lse); free(dq); free(dk); free(dv);
        free(no_); free(nlse); free(ndq); free(ndk); free(ndv);
        free(ro); free(rl); free(rdq); free(rdk); free(rdv);
        sc_case_free(&c);
    }
    printf("chunked vs float64: %lld cases, worst err / bound: o %.3f lse %.3f dq %.3f dk %.3f dv %.3f\n",
           (long long)ncases, worst[0], worst[1], worst[2], worst[3], worst[4]);
}

/* ─── merge semantics ────────────────────────────────────────────────────── */
static void check_semantics(void) {
    enum { B = 2, S = 5, H = 3, DV = 7, NR = B * S * H };
    tu_rng r = {7};
    float o0[NR * DV], o1[NR * DV], o2[NR * DV], out[NR * DV], out3[NR * DV], acc[NR * DV];
    float l0[NR], l1[NR], l2[NR], lout[NR], lout3[NR], lacc[NR];
    tu_fill(&r, o0, NR * DV, 1.0f);
    tu_fill(&r, o1, NR * DV, 1.0f);
    tu_fill(&r, o2, NR * DV, 1.0f);
    tu_fill(&r, l0, NR, 3.0f);
    tu_fill(&r, l1, NR, 3.0f);
    for (int i = 0; i < NR; i++) l2[i] = -INFINITY;
    for (int i = 0; i < NR * DV; i++) o2[i] = NAN; /* an empty part's o is never read */
    attn_view v0 = attn_view_bshd(o0, S, H, DV), v1 = attn_view_bshd(o1, S, H, DV), v2 = attn_view_bshd(o2, S, H, DV);
    attn_view vout = attn_view_bshd(out, S, H, DV), vout3 = attn_view_bshd(out3, S, H, DV);

    /* one non-empty part among empty ones: exact */
    attn_view p1[3] = {v2, v0, v2};
    const float *pl1[3] = {l2, l0, l2};
    CHECK(attn_sdpa_merge(B, S, H, DV, 3, p1, pl1, vout, lout, 1) == ATTN_OK, "%s", attn_last_error());
    CHECK(sc_bits_equal(out, o0, NR * DV) && sc_bits_equal(lout, l0, NR), "single non-empty part not exact");

    /* every part empty: o = 0, lse = -inf */
    attn_view pe[2] = {v2, v2};
    const float *ple[2] = {l2, l2};
    CHECK(attn_sdpa_merge(B, S, H, DV, 2, pe, ple, vout, lout, 0) == ATTN_OK, "%s", attn_last_error());
    int empty_ok = 1;
    for (int i = 0; i < NR * DV; i++) empty_ok &= out[i] == 0.0f && !signbit(out[i]);
    for (int i = 0; i < NR; i++) empty_ok &= lout[i] == -INFINITY;
    CHECK(empty_ok, "all-empty rows must give o = +0, lse = -inf");

    /* two parts vs float64 formula; thread count independence */
    attn_view p2[3] = {v0, v1, v2};
    const float *pl2[3] = {l0, l1, l2};
    CHECK(attn_sdpa_merge(B, S, H, DV, 3, p2, pl2, vout, lout, 1) == ATTN_OK, "%s", attn_last_error());
    CHECK(attn_sdpa_merge(B, S, H, DV, 3, p2, pl2, vout3, lout3, 3) == ATTN_OK, "%s", attn_last_error());
    CHECK(sc_bits_equal(out, out3, NR * DV) && sc_bits_equal(lout, lout3, NR), "1 vs 3 threads differ");
    double maxe = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++)
            for (int h = 0; h < H; h++) {
                int li = (b * H + h) * S + i, oi = ((b * S + i) * H + h) * DV;
                double a = l0[li], c = l1[li], m = a > c ? a : c;
                double L = m + log(exp(a - m) + exp(c - m));
                maxe = fmax(maxe, fabs(L - lout[li]) / (fabs(L) + 1));
                for (int e = 0; e < DV; e++) {
                    double want = exp(a - L) * o0[oi + e] + exp(c - L) * o1[oi + e];
                    maxe = fmax(maxe, fabs(want - out[oi + e]) / (fabs(want) + 1));
                }
            }
    CHECK(maxe <= 2e-7, "two-part merge vs float64 formula: rel err %g", maxe);

    /* in place == out of place */
    memcpy(acc, o0, sizeof acc);
    memcpy(lacc, l0, sizeof lacc);
    attn_view va = attn_view_bshd(acc, S, H, DV);
    attn_view pi[3] = {va, v1, v2};
    const float *pli[3] = {lacc, l1, l2};
    CHECK(attn_sdpa_merge(B, S, H, DV, 3, pi, pli, va, lacc, 2) == ATTN_OK, "%s", attn_last_error());
    CHECK(sc_bits_equal(acc, out, NR * DV) && sc_bits_equal(lacc, lout, NR), "in-place merge differs");

    /* lse NULL allowed; NaN lse -> NaN row */
    float lnan[NR];
    memcpy(lnan, l1, sizeof lnan);
    lnan[0] = NAN;
    const float *pln[2] = {l0, lnan};
    CHECK(attn_sdpa_merge(B, S, H, DV, 2, p2, pln, vout, NULL, 0) == ATTN_OK, "%s", attn_last_error());
    CHECK(isnan(out[0]) && !isnan(out[DV]), "NaN lse must give a NaN row (only that row)");
}

static void expect_err(attn_status st, attn_status want, const char *needle, const float *out, const char *what) {
    CHECK(st == want && strstr(attn_last_error(), needle) != NULL, "%s: status %d (want %d), message '%s'", what,
          (int)st, (int)want, attn_last_error());
    CHECK(out[0] == 42.0f, "%s: output written on error", what);
}

static void check_validation(void) {
    enum { S = 4, H = 2, DV = 8, N = S * H * DV };
    float a[N], b[N], out[N + DV], la[S * H], lb[S * H], lout[S * H];
    for (int i = 0; i < N; i++) a[i] = b[i] = 1.0f;
    for (int i = 0; i < S * H; i++) la[i] = lb[i] = 0.0f;
    for (int i = 0; i < N + DV; i++) out[i] = 42.0f;
    attn_view va = attn_view_bshd(a, S, H, DV), vb = attn_view_bshd(b, S, H, DV), vo = attn_view_bshd(out, S, H, DV);
    attn_view p[2] = {va, vb};
    const float *pl[2] = {la, lb};
    expect_err(attn_sdpa_merge(1, S, H, DV, 0, p, pl, vo, lout, 0), ATTN_ERR_SHAPE, "n = 0", out, "n = 0");
    expect_err(attn_sdpa_merge(1, S, H, DV, 257, p, pl, vo, lout, 0), ATTN_ERR_SHAPE, "n = 257", out, "n = 257");
    expect_err(attn_sdpa_merge(1, S, H, 0, 2, p, pl, vo, lout, 0), ATTN_ERR_SHAPE, "head_dim_v", out, "Dv = 0");
    expect_err(attn_sdpa_merge(-1, S, H, DV, 2, p, pl, vo, lout, 0), ATTN_ERR_SHAPE, "batch", out, "B < 0");
    expect_err(attn_sdpa_merge(1, S, 0, DV, 2, p, pl, vo, lout, 0), ATTN_ERR_SHAPE, "heads_q", out, "Hq = 0");
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, NULL, pl, vo, lout, 0), ATTN_ERR_NULL, "o_parts", out, "NULL parts");
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, p, pl, vo, lout, -1), ATTN_ERR_OPTION, "num_threads", out,
               "threads");
    const float *pln[2] = {la, NULL};
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, p, pln, vo, lout, 0), ATTN_ERR_NULL, "lse_parts[1]", out,
               "NULL lse part");
    attn_view bad = vb;
    bad.stride_s = -1;
    attn_view pb[2] = {va, bad};
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, pb, pl, vo, lout, 0), ATTN_ERR_STRIDE, "p = 1", out, "stride");
    attn_view ovl = vo;
    ovl.stride_s = 1; /* output rows overlap each other */
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, p, pl, ovl, lout, 0), ATTN_ERR_STRIDE, "overlap", out,
               "non-injective output");
    /* o overlapping part 1 (only part 0 may be the output) */
    attn_view vs = attn_view_bshd(out + DV, S, H, DV); /* shifted: overlaps out */
    attn_view pa[2] = {va, vs};
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, pa, pl, vo, lout, 0), ATTN_ERR_ALIAS, "o_parts[1]", out,
               "alias part 1");
    attn_view pa0[2] = {vs, vb}; /* part 0 overlapping but not the identical view */
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, pa0, pl, vo, lout, 0), ATTN_ERR_ALIAS, "o_parts[0]", out,
               "alias part 0 (shifted)");
    const float *pll[2] = {la, lout};
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, p, pll, vo, lout, 0), ATTN_ERR_ALIAS, "lse_parts[1]", out,
               "alias lse part 1");
    expect_err(attn_sdpa_merge(1, S, H, DV, 2, p, pl, vo, out, 0), ATTN_ERR_ALIAS, "lse", out, "o overlaps lse");
    /* the empty problem is fine and writes nothing */
    CHECK(attn_sdpa_merge(0, S, H, DV, 2, p, pl, vo, lout, 0) == ATTN_OK && out[0] == 42.0f, "B = 0: %s",
          attn_last_error());
}

int main(int argc, char **argv) {
    int64_t count = argc > 1 ? atoll(argv[1]) : sc_count(400);
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1402ull;
    check_semantics();
    check_validation();
    check_chunked(count, seed);
    return test_summary("test_sdpa_merge");
}
