/* SPDX-License-Identifier: MIT */
/* test_sdpa_badinput.c — argument validation of attn_sdpa_fwd / attn_sdpa_bwd.
 *
 * For every validation rule: the documented status, attn_last_error() non-empty
 * and naming the offending argument, and every output untouched (outputs are
 * filled with a sentinel pattern and compared bit for bit after the call).
 * Also: zero-sized batch / Sq / Sk succeed (Sk = 0: o = 0, lse = -inf,
 * dq = 0; Sq = 0: dk = dv = 0), NULL opts means defaults, the workspace-size
 * queries never crash on bad dims. */
#include "sdpa_cases.h"
#include "testutil.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t SENT = 0x7F8BADu; /* arbitrary pattern (a signalling-NaN-like payload is fine) */

static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) memcpy(&p[i], &SENT, 4);
}
static int intact(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &p[i], 4);
        if (u != SENT) return 0;
    }
    return 1;
}

static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return 0;
}

/* A valid problem with every buffer owned here: B=2, Sq=5, Sk=7, Hq=4, Hkv=2, D=8, Dv=8 */
enum { B = 2, SQ = 5, SK = 7, HQ = 4, HKV = 2, D = 8, DV = 8 };
enum { NQ = B * SQ * HQ * D, NK = B * SK * HKV * D, NV = B * SK * HKV * DV, NO = B * SQ * HQ * DV, NL = B * HQ * SQ };

typedef struct prob {
    attn_sdpa_dims d;
    attn_sdpa_opts o;
    attn_view q, k, v, out, dO, dq, dk, dv;
    float *lse;
    void *ws;
    size_t ws_size;
} prob;

static float bq[NQ], bk[NK], bv[NV], bdO[NO];
static float bo[NO + 64], blse[NL + 64], bdq[NQ + 64], bdk[NK + 64], bdv[NV + 64];
static float fwd_o[NO], fwd_lse[NL];
static unsigned char wsbuf[1 << 22] __attribute__((aligned(64)));

static prob base(void) {
    prob p;
    attn_sdpa_dims d = {B, SQ, SK, HQ, HKV, D, DV};
    p.d = d;
    attn_sdpa_opts_init(&p.o);
    p.q = attn_view_bshd(bq, SQ, HQ, D);
    p.k = attn_view_bshd(bk, SK, HKV, D);
    p.v = attn_view_bshd(bv, SK, HKV, DV);
    p.out = attn_view_bshd(bo, SQ, HQ, DV);
    p.dO = attn_view_bshd(bdO, SQ, HQ, DV);
    p.dq = attn_view_bshd(bdq, SQ, HQ, D);
    p.dk = attn_view_bshd(bdk, SK, HKV, D);
    p.dv = attn_view_bshd(bdv, SK, HKV, DV);
    p.lse = blse;
    p.ws = NULL;
    p.ws_size = 0;
    return p;
}

static void fill_outputs(void) {
    fill(bo, NO + 64); fill(blse, NL + 64); fill(bdq, NQ + 64); fill(bdk, NK + 64); fill(bdv, NV + 64);
}

static int outputs_intact(void) {
    return intact(bo, NO + 64) && intact(blse, NL + 64) && intact(bdq, NQ + 64) && intact(bdk, NK + 64) &&
           intact(bdv, NV + 64);
}

static attn_status call_fwd(prob *p, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts) {
    return attn_sdpa_fwd(dims, p->q, p->k, p->v, p->out, p->lse, opts, p->ws, p->ws_size);
}

static attn_status call_bwd(prob *p, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts) {
    return attn_sdpa_bwd(dims, p->q, p->k, p->v, p->out, p->dO, p->lse, p->dq, p->dk, p->dv, opts, p->ws,
                         p->ws_size);
}

/* expect: status in {s1, s2} (s2 = 0 for "only s1"), message naming `word` */
static void expect(const char *what, prob *p, int bwd, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts,
                   attn_status s1, attn_status s2, const char *word) {
    if (bwd) { /* bwd inputs o / lse: a valid forward result */
        memcpy(bo, fwd_o, sizeof fwd_o);
        memcpy(blse, fwd_lse, sizeof fwd_lse);
        fill(bo + NO, 64);
        fill(blse + NL, 64);
        fill(bdq, NQ + 64); fill(bdk, NK + 64); fill(bdv, NV + 64);
    } else {
        fill_outputs();
    }
    attn_clear_error();
    attn_status st = bwd ? call_bwd(p, dims, opts) : call_fwd(p, dims, opts);
    const char *msg = attn_last_error();
    CHECK(st == s1 || (s2 != ATTN_OK && st == s2), "%s %s: status %d (%s), expected %d%s (message '%s')",
          bwd ? "bwd" : "fwd", what, (int)st, attn_status_str(st), (int)s1, s2 ? " or another listed" : "", msg);
    CHECK(msg[0] != 0, "%s %s: attn_last_error() is empty", bwd ? "bwd" : "fwd", what);
    if (word) CHECK(contains_ci(msg, word), "%s %s: message '%s' does not name '%s'", bwd ? "bwd" : "fwd", what, msg, word);
    if (bwd) {
        int ok = intact(bdq, NQ + 64) && intact(bdk, NK + 64) && intact(bdv, NV + 64) &&
                 memcmp(bo, fwd_o, sizeof fwd_o) == 0 && memcmp(blse, fwd_lse, sizeof fwd_lse) == 0;
        CHECK(ok, "bwd %s: an output (or the o / lse input) was written", what);
    } else {
        CHECK(outputs_intact(), "fwd %s: an output was written", what);
    }
}

static void both(const char *what, prob *p, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, attn_status s1,
                 attn_status s2, const char *word) {
    expect(what, p, 0, dims, opts, s1, s2, word);
    expect(what, p, 1, dims, opts, s1, s2, word);
}

int main(void) {
    tu_rng r = {42};
    tu_fill(&r, bq, NQ, 1.0f);
    tu_fill(&r, bk, NK, 1.0f);
    tu_fill(&r, bv, NV, 1.0f);
    tu_fill(&r, bdO, NO, 1.0f);

    prob p = base();
    /* valid calls first */
    fill_outputs();
    CHECK(call_fwd(&p, &p.d, &p.o) == ATTN_OK, "valid fwd: %s", attn_last_error());
    memcpy(fwd_o, bo, sizeof fwd_o);
    memcpy(fwd_lse, blse, sizeof fwd_lse);
    CHECK(intact(bo + NO, 64) && intact(blse + NL, 64), "valid fwd writes nothing past o / lse");
    CHECK(call_bwd(&p, &p.d, &p.o) == ATTN_OK, "valid bwd: %s", attn_last_error());
    CHECK(call_fwd(&p, &p.d, NULL) == ATTN_OK || attn_last_error()[0] != 0, "NULL opts: defaults or a clean error");

    attn_sdpa_dims d;
    attn_sdpa_opts o;
    /* ── NULL pointers ─────────────────────────────────────────────────── */
    both("dims NULL", &p, NULL, &p.o, ATTN_ERR_NULL, 0, "dims");
    { prob x = base(); x.q.data = NULL; both("q.data NULL", &x, &x.d, &x.o, ATTN_ERR_NULL, 0, "q"); }
    { prob x = base(); x.k.data = NULL; both("k.data NULL", &x, &x.d, &x.o, ATTN_ERR_NULL, 0, "k"); }
    { prob x = base(); x.v.data = NULL; both("v.data NULL", &x, &x.d, &x.o, ATTN_ERR_NULL, 0, "v"); }
    { prob x = base(); x.out.data = NULL; both("o.data NULL", &x, &x.d, &x.o, ATTN_ERR_NULL, 0, "o"); }
    { prob x = base(); x.dO.data = NULL; expect("dO.data NULL", &x, 1, &x.d, &x.o, ATTN_ERR_NULL, 0, "dO"); }
    { prob x = base(); x.dq.data = NULL; expect("dq.data NULL", &x, 1, &x.d, &x.o, ATTN_ERR_NULL, 0, "dq"); }
    { prob x = base(); x.dk.data = NULL; expect("dk.data NULL", &x, 1, &x.d, &x.o, ATTN_ERR_NULL, 0, "dk"); }
    { prob x = base(); x.dv.data = NULL; expect("dv.data NULL", &x, 1, &x.d, &x.o, ATTN_ERR_NULL, 0, "dv"); }
    { prob x = base(); x.lse = NULL; expect("lse NULL in bwd", &x, 1, &x.d, &x.o, ATTN_ERR_NULL, 0, "lse"); }
    { /* lse NULL is allowed in the forward (inference) */
        prob x = base(); x.lse = NULL;
        fill_outputs();
        CHECK(call_fwd(&x, &x.d, &x.o) == ATTN_OK, "fwd lse NULL allowed: %s", attn_last_error());
        CHECK(memcmp(bo, fwd_o, sizeof fwd_o) == 0, "fwd with lse NULL gives the same o");
        CHECK(intact(blse, NL + 64), "fwd with lse NULL writes no lse");
    }
    /* ── sizes ─────────────────────────────────────────────────────────── */
    d = p.d; d.batch = -1; both("batch -1", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "batch");
    d = p.d; d.seq_q = -1; both("seq_q -1", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "seq_q");
    d = p.d; d.seq_k = -3; both("seq_k -3", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "seq_k");
    d = p.d; d.heads_q = 0; both("heads_q 0", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "heads_q");
    d = p.d; d.heads_kv = 0; both("heads_kv 0", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "heads_kv");
    d = p.d; d.heads_kv = -2; both("heads_kv -2", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "heads_kv");
    d = p.d; d.head_dim = 0; both("head_dim 0", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "head_dim");
    d = p.d; d.head_dim = 257; both("head_dim 257", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "head_dim");
    d = p.d; d.head_dim = -8; both("head_dim -8", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "head_dim");
    d = p.d; d.head_dim_v = 257; both("head_dim_v 257", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "head_dim_v");
    d = p.d; d.head_dim_v = -1; both("head_dim_v -1", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "head_dim_v");
    d = p.d; d.heads_q = 4; d.heads_kv = 3; both("Hq % Hkv != 0", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "heads_kv");
    d = p.d; d.batch = (int64_t)1 << 50; d.seq_q = (int64_t)1 << 30;
    both("size overflow", &p, &d, &p.o, ATTN_ERR_SHAPE, ATTN_ERR_NOMEM, NULL);
    d = p.d; d.batch = ((int64_t)1 << 40) + 1; d.seq_q = 0;
    both("batch 2^40 + 1", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "batch");
    d = p.d; d.batch = (int64_t)1 << 40; d.seq_q = 0; d.heads_q = (int64_t)1 << 22; d.heads_kv = 1;
    both("heads_q * (seq_q + batch) > 2^61", &p, &d, &p.o, ATTN_ERR_SHAPE, 0, "batch");
    CHECK(attn_sdpa_fwd_workspace_size(&d, NULL) == 0 && attn_sdpa_bwd_workspace_size(&d, NULL) == 0,
          "size queries: 0 for heads_q * (seq_q + batch) > 2^61");
    /* ── strides ───────────────────────────────────────────────────────── */
    { prob x = base(); x.q.stride_s = -1; both("q stride_s -1", &x, &x.d, &x.o, ATTN_ERR_STRIDE, 0, "q"); }
    { prob x = base(); x.k.stride_h = -8; both("k stride_h -8", &x, &x.d, &x.o, ATTN_ERR_STRIDE, 0, "k"); }
    { prob x = base(); x.v.stride_b = -112; both("v stride_b < 0", &x, &x.d, &x.o, ATTN_ERR_STRIDE, 0, "v"); }
    { /* output whose heads overlap each other */
        prob x = base(); x.out.stride_h = 4;
        expect("o stride_h < Dv (self-overlap)", &x, 0, &x.d, &x.o, ATTN_ERR_STRIDE, ATTN_ERR_ALIAS, "o");
        x = base(); x.dq.stride_s = 0;
        expect("dq stride_s 0 (self-overlap)", &x, 1, &x.d, &x.o, ATTN_ERR_STRIDE, ATTN_ERR_ALIAS, "dq");
        x = base(); x.dk.stride_b = 0;
        expect("dk stride_b 0 (self-overlap)", &x, 1, &x.d, &x.o, ATTN_ERR_STRIDE, ATTN_ERR_ALIAS, "dk");
    }
    /* ── aliasing ──────────────────────────────────────────────────────── */
    { prob x = base(); x.out.data = bq; x.out = attn_view_bshd(bq, SQ, HQ, DV);
      fill_outputs();
      float save[NQ]; memcpy(save, bq, sizeof save);
      attn_clear_error();
      attn_status st = call_fwd(&x, &x.d, &x.o);
      CHECK(st == ATTN_ERR_ALIAS, "fwd o == q: status %d", (int)st);
      CHECK(contains_ci(attn_last_error(), "o") && contains_ci(attn_last_error(), "q"), "message '%s'", attn_last_error());
      CHECK(memcmp(save, bq, sizeof save) == 0, "fwd o == q: q (the output) untouched");
    }
    { prob x = base(); x.out.data = bk + 8; /* o overlapping k partially */
      fill_outputs();
      float save[NK]; memcpy(save, bk, sizeof save);
      attn_clear_error();
      CHECK(call_fwd(&x, &x.d, &x.o) == ATTN_ERR_ALIAS, "fwd o overlaps k");
      CHECK(memcmp(save, bk, sizeof save) == 0, "fwd o overlaps k: k untouched");
    }
    { prob x = base(); x.lse = bo + 3; expect("lse overlaps o", &x, 0, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "lse"); }
    { prob x = base(); x.lse = bv; float save[NV]; memcpy(save, bv, sizeof save);
      attn_clear_error();
      CHECK(call_fwd(&x, &x.d, &x.o) == ATTN_ERR_ALIAS, "fwd lse overlaps v: %s", attn_last_error());
      CHECK(memcmp(save, bv, sizeof save) == 0, "fwd lse overlaps v: v untouched"); }
    { prob x = base(); x.dk = attn_view_bshd(bdq, SK, HKV, D); /* dk inside dq's buffer */
      expect("dk overlaps dq", &x, 1, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "dk"); }
    { prob x = base(); x.dv = attn_view_bshd(bdk, SK, HKV, DV);
      expect("dv overlaps dk", &x, 1, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "dv"); }
    { prob x = base(); x.dq = attn_view_bshd(bdO, SQ, HQ, D); float save[NO]; memcpy(save, bdO, sizeof save);
      memcpy(bo, fwd_o, sizeof fwd_o); memcpy(blse, fwd_lse, sizeof fwd_lse);
      attn_clear_error();
      CHECK(call_bwd(&x, &x.d, &x.o) == ATTN_ERR_ALIAS, "bwd dq overlaps dO: %s", attn_last_error());
      CHECK(memcmp(save, bdO, sizeof save) == 0, "bwd dq overlaps dO: dO untouched"); }
    { prob x = base(); x.dv = attn_view_bshd(bo, SK, HKV, DV); /* dv over the o input */
      expect("dv overlaps o (bwd input)", &x, 1, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "dv"); }
    { prob x = base(); x.dq = attn_view_bshd(blse, 1, 1, D); x.dq.stride_b = 0; /* dq over the lse input */
      x.d.batch = 1; x.d.seq_q = 1; x.d.heads_q = 2; x.d.heads_kv = 2; x.dq.stride_h = D;
      expect("dq overlaps lse (bwd input)", &x, 1, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "lse"); }
    /* ── opts.row_stats ─────────────────────────────────────────────────── */
    { static float st[2 * NL];
      prob x = base(); x.lse = NULL; x.o.row_stats = st;
      expect("row_stats without lse", &x, 0, &x.d, &x.o, ATTN_ERR_NULL, 0, "row_stats"); }
    { prob x = base(); x.o.row_stats = bo + 5; /* over the o output */
      expect("row_stats overlaps o", &x, 0, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "row_stats"); }
    { prob x = base(); x.o.row_stats = blse + NL - 1; /* its first pair over lse's last element */
      expect("row_stats overlaps lse", &x, 0, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "row_stats"); }
    { prob x = base(); x.o.row_stats = bq; /* the forward would write into q */
      float save[NQ]; memcpy(save, bq, sizeof save);
      expect("row_stats overlaps q", &x, 0, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "row_stats");
      CHECK(memcmp(save, bq, sizeof save) == 0, "fwd row_stats overlaps q: q untouched"); }
    { prob x = base(); x.o.row_stats = bdk; /* bwd: an input over the dk output */
      expect("row_stats overlaps dk", &x, 1, &x.d, &x.o, ATTN_ERR_ALIAS, 0, "row_stats"); }
    /* ── options ───────────────────────────────────────────────────────── */
    o = p.o; o.scale = NAN; both("scale NaN", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "scale");
    o = p.o; o.scale = INFINITY; both("scale inf", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "scale");
    o = p.o; o.causal = 2; both("causal 2", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "causal");
    o = p.o; o.causal = -1; both("causal -1", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "causal");
    o = p.o; o.align = 2; both("align 2", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "align");
    int32_t kl_big[B] = {SK, SK + 1}, kl_neg[B] = {-1, 3};
    o = p.o; o.key_lens = kl_big; both("key_lens > Sk", &p, &p.d, &o, ATTN_ERR_OPTION, ATTN_ERR_SHAPE, "key_lens");
    o = p.o; o.key_lens = kl_neg; both("key_lens < 0", &p, &p.d, &o, ATTN_ERR_OPTION, ATTN_ERR_SHAPE, "key_lens");
    o = p.o; o.window_left = -2; both("window_left -2", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "window_left");
    o = p.o; o.window_right = -7; both("window_right -7", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "window_right");
    o = p.o; o.softcap = -1.0f; both("softcap -1", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "softcap");
    o = p.o; o.softcap = NAN; both("softcap NaN", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "softcap");
    o = p.o; o.softcap = INFINITY; both("softcap inf", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "softcap");
    o = p.o; o.mask_kind = 3; both("mask_kind 3", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "mask_kind");
    o = p.o; o.mask_kind = -1; both("mask_kind -1", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "mask_kind");
    o = p.o; o.mask_kind = ATTN_MASK_BOOL; o.mask = NULL; both("bool mask NULL", &p, &p.d, &o, ATTN_ERR_NULL, 0, "mask");
    o = p.o; o.mask_kind = ATTN_MASK_ADD; o.mask = NULL; both("add mask NULL", &p, &p.d, &o, ATTN_ERR_NULL, 0, "mask");
    static float amask[B * HQ * SQ * SK];
    o = p.o; o.mask_kind = ATTN_MASK_ADD; o.mask = amask; o.mask_stride_q = -SK;
    both("mask stride < 0", &p, &p.d, &o, ATTN_ERR_STRIDE, ATTN_ERR_OPTION, "mask");
    o = p.o; o.dropout_p = 1.0f; both("dropout_p 1", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "dropout_p");
    o = p.o; o.dropout_p = -0.1f; both("dropout_p -0.1", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "dropout_p");
    o = p.o; o.dropout_p = NAN; both("dropout_p NaN", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "dropout_p");
    o = p.o; o.num_threads = -1; both("num_threads -1", &p, &p.d, &o, ATTN_ERR_OPTION, 0, "num_threads");
    { /* varlen: packed (Tq, Hq, D) with 2 sequences */
        int32_t cq_ok[3] = {0, 2, 5}, ck_ok[3] = {0, 3, 7}, cq_dec[3] = {0, 4, 3}, ck_end[3] = {0, 3, 6},
                cq_first[3] = {1, 2, 5};
        d = p.d; d.seq_q = 5; d.seq_k = 7; /* B = 2 sequences over the first 5 / 7 packed rows */
        prob x = base();
        x.q = attn_view_bshd(bq, 5, HQ, D); x.k = attn_view_bshd(bk, 7, HKV, D); x.v = attn_view_bshd(bv, 7, HKV, DV);
        x.out = attn_view_bshd(bo, 5, HQ, DV); x.dO = attn_view_bshd(bdO, 5, HQ, DV);
        x.dq = attn_view_bshd(bdq, 5, HQ, D); x.dk = attn_view_bshd(bdk, 7, HKV, D); x.dv = attn_view_bshd(bdv, 7, HKV, DV);
        o = p.o; o.cu_seqlens_q = cq_ok; o.cu_seqlens_k = ck_ok;
        fill_outputs();
        CHECK(call_fwd(&x, &d, &o) == ATTN_OK, "valid varlen fwd: %s", attn_last_error());
        o = p.o; o.cu_seqlens_q = cq_dec; o.cu_seqlens_k = ck_ok;
        expect("cu_seqlens_q decreasing", &x, 0, &d, &o, ATTN_ERR_SHAPE, 0, "cu_seqlens_q");
        o = p.o; o.cu_seqlens_q = cq_ok; o.cu_seqlens_k = NULL;
        expect("cu_seqlens_q without cu_seqlens_k", &x, 0, &d, &o, ATTN_ERR_NULL, ATTN_ERR_OPTION, "cu_seqlens_k");
        o = p.o; o.cu_seqlens_q = NULL; o.cu_seqlens_k = ck_ok;
        expect("cu_seqlens_k without cu_seqlens_q", &x, 0, &d, &o, ATTN_ERR_NULL, ATTN_ERR_OPTION, "cu_seqlens");
        o = p.o; o.cu_seqlens_q = cq_ok; o.cu_seqlens_k = ck_end;
        expect("cu_seqlens_k[B] != seq_k", &x, 0, &d, &o, ATTN_ERR_SHAPE, 0, "cu_seqlens_k");
        o = p.o; o.cu_seqlens_q = cq_first; o.cu_seqlens_k = ck_ok;
        expect("cu_seqlens_q[0] != 0", &x, 0, &d, &o, ATTN_ERR_SHAPE, 0, "cu_seqlens_q");
        int32_t kl[2] = {3, 5};
        o = p.o; o.cu_seqlens_q = cq_ok; o.cu_seqlens_k = ck_ok; o.key_lens = kl; /* seq 1 has 4 keys */
        expect("varlen key_lens > sequence keys", &x, 0, &d, &o, ATTN_ERR_OPTION, ATTN_ERR_SHAPE, "key_lens");
    }
    /* ── workspace ─────────────────────────────────────────────────────── */
    {
        size_t need = attn_sdpa_fwd_workspace_size(&p.d, &p.o), needb = attn_sdpa_bwd_workspace_size(&p.d, &p.o);
        CHECK(need > 0 && need <= sizeof wsbuf && needb > 0 && needb <= sizeof wsbuf, "workspace sizes %zu %zu", need,
              needb);
        prob x = base();
        x.ws = wsbuf; x.ws_size = need;
        fill_outputs();
        CHECK(call_fwd(&x, &x.d, &x.o) == ATTN_OK, "fwd with exact workspace: %s", attn_last_error());
        CHECK(memcmp(bo, fwd_o, sizeof fwd_o) == 0, "caller workspace gives the same o");
        x.ws_size = 16;
        expect("workspace 16 bytes", &x, 0, &x.d, &x.o, ATTN_ERR_WORKSPACE, 0, "workspace");
        x.ws_size = 0;
        expect("workspace size 0 with a pointer", &x, 0, &x.d, &x.o, ATTN_ERR_WORKSPACE, 0, "workspace");
        x.ws = wsbuf + 4; x.ws_size = need;
        expect("workspace misaligned", &x, 0, &x.d, &x.o, ATTN_ERR_WORKSPACE, 0, "workspace");
        x.ws = wsbuf + 32; x.ws_size = need;
        expect("workspace 32-byte aligned", &x, 0, &x.d, &x.o, ATTN_ERR_WORKSPACE, 0, "workspace");
        x.ws = wsbuf; x.ws_size = 16;
        expect("bwd workspace 16 bytes", &x, 1, &x.d, &x.o, ATTN_ERR_WORKSPACE, 0, "workspace");
        x.ws = wsbuf + 8; x.ws_size = needb;
        expect("bwd workspace misaligned", &x, 1, &x.d, &x.o, ATTN_ERR_WORKSPACE, 0, "workspace");
        /* size queries on bad dims do not crash and return 0 */
        attn_sdpa_dims bad = p.d; bad.head_dim = 0;
        CHECK(attn_sdpa_fwd_workspace_size(&bad, &p.o) == 0, "ws size of bad dims = 0");
        CHECK(attn_sdpa_bwd_workspace_size(NULL, &p.o) == 0, "ws size of NULL dims = 0");
        CHECK(attn_sdpa_fwd_workspace_size(&p.d, NULL) > 0, "ws size with NULL opts");
    }
    /* ── zero sizes succeed ────────────────────────────────────────────── */
    {
        prob x = base();
        d = p.d; d.batch = 0;
        fill_outputs();
        CHECK(call_fwd(&x, &d, &x.o) == ATTN_OK, "B = 0 fwd: %s", attn_last_error());
        CHECK(call_bwd(&x, &d, &x.o) == ATTN_OK, "B = 0 bwd: %s", attn_last_error());
        CHECK(outputs_intact(), "B = 0 writes nothing");
        x.q.data = x.k.data = x.v.data = x.out.data = NULL; x.lse = NULL;
        CHECK(call_fwd(&x, &d, &x.o) == ATTN_OK, "B = 0 with NULL data: %s", attn_last_error());

        x = base();
        d = p.d; d.seq_q = 0;
        fill_outputs();
        CHECK(call_fwd(&x, &d, &x.o) == ATTN_OK, "Sq = 0 fwd: %s", attn_last_error());
        CHECK(outputs_intact(), "Sq = 0 fwd writes nothing");
        CHECK(call_bwd(&x, &d, &x.o) == ATTN_OK, "Sq = 0 bwd: %s", attn_last_error());
        int z = 1;
        for (int i = 0; i < NK; i++) z &= bdk[i] == 0.0f;
        for (int i = 0; i < NV; i++) z &= bdv[i] == 0.0f;
        CHECK(z, "Sq = 0 bwd: dk = dv = 0");
        CHECK(intact(bdq, NQ + 64), "Sq = 0 bwd: dq (empty) untouched");

        x = base();
        d = p.d; d.seq_k = 0;
        fill_outputs();
        CHECK(call_fwd(&x, &d, &x.o) == ATTN_OK, "Sk = 0 fwd: %s", attn_last_error());
        z = 1;
        for (int i = 0; i < NO; i++) z &= bo[i] == 0.0f;
        int li = 1;
        for (int i = 0; i < NL; i++) li &= blse[i] == -INFINITY;
        CHECK(z, "Sk = 0: o = 0");
        CHECK(li, "Sk = 0: lse = -inf");
        CHECK(intact(bo + NO, 64) && intact(blse + NL, 64), "Sk = 0: nothing past o / lse");
        fill(bdq, NQ + 64);
        CHECK(call_bwd(&x, &d, &x.o) == ATTN_OK, "Sk = 0 bwd: %s", attn_last_error());
        z = 1;
        for (int i = 0; i < NQ; i++) z &= bdq[i] == 0.0f;
        CHECK(z, "Sk = 0 bwd: dq = 0");
        x.k.data = x.v.data = x.dk.data = x.dv.data = NULL;
        CHECK(call_fwd(&x, &d, &x.o) == ATTN_OK, "Sk = 0 with NULL k/v: %s", attn_last_error());
        CHECK(call_bwd(&x, &d, &x.o) == ATTN_OK, "Sk = 0 bwd with NULL k/v/dk/dv: %s", attn_last_error());

        x = base();
        d = p.d; d.seq_q = 0; d.seq_k = 0;
        fill_outputs();
        CHECK(call_fwd(&x, &d, &x.o) == ATTN_OK && call_bwd(&x, &d, &x.o) == ATTN_OK, "Sq = Sk = 0: %s",
              attn_last_error());
    }
    return test_summary("test_sdpa_badinput");
}
