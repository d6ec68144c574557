/* SPDX-License-Identifier: MIT */
/* sdpa_cases_fast.c — running the fast kernels on an sc_case, with the
 * contract checks every suite wants on every call: inputs unchanged, nothing
 * written outside the output views (sentinel gaps), lse written exactly
 * nlse elements. See sdpa_cases.h. */
#include "sdpa_cases.h"

#include <stdlib.h>
#include <string.h>

typedef struct snap {
    const float *src[8];
    float *copy[8];
    size_t n[8];
    int count;
} snap;

static void snap_add(snap *s, const float *p, size_t n) {
    for (int i = 0; i < s->count; i++)
        if (s->src[i] == p) return;
    s->src[s->count] = p;
    s->n[s->count] = n;
    s->copy[s->count] = malloc(n * sizeof(float) + 1);
    if (n) memcpy(s->copy[s->count], p, n * sizeof(float));
    s->count++;
}

static int snap_same_free(snap *s) {
    int ok = 1;
    for (int i = 0; i < s->count; i++) {
        if (s->n[i] && memcmp(s->copy[i], s->src[i], s->n[i] * sizeof(float)) != 0) ok = 0;
        free(s->copy[i]);
    }
    s->count = 0;
    return ok;
}

static void snap_inputs(snap *s, const sc_case *c) {
    s->count = 0;
    snap_add(s, c->q.buf, c->q.nbuf);
    snap_add(s, c->k.buf, c->k.nbuf);
    snap_add(s, c->v.buf, c->v.nbuf);
}

static void *ws_alloc(size_t size, int mode, size_t *out_size) {
    if (mode == 1) { *out_size = 0; return NULL; }
    size_t n = size + (mode == 2 ? 4096 : 0);
    *out_size = n;
    if (n == 0) return NULL;
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (p) memset(p, 0xA5, n); /* garbage: the kernels must not rely on zeroed scratch */
    return p;
}

static int tensor_gaps_ok(const sc_tensor *t) {
    if (t->layout == SC_PACKED) {
        uint32_t u;
        memcpy(&u, &t->buf[t->nbuf - 1], sizeof u);
        return u == SC_SENTINEL_BITS;
    }
    return sc_gaps_intact(t);
}

static void fill_out(sc_tensor *t) {
    float x;
    uint32_t u = SC_SENTINEL_BITS;
    memcpy(&x, &u, sizeof x);
    for (size_t i = 0; i < t->nbuf; i++) t->buf[i] = x;
}

int sc_row_stats = 0;

attn_status sc_fast_fwd(sc_case *c, float *lse, int ws_mode) {
    fill_out(&c->out);
    float x;
    uint32_t u = SC_SENTINEL_BITS;
    memcpy(&x, &u, sizeof x);
    if (lse)
        for (int64_t i = 0; i < c->nlse + SC_LSE_TAIL; i++) lse[i] = x;
    c->o.row_stats = NULL;
    if (sc_row_stats && lse) {
        if (!c->stats) c->stats = malloc((size_t)(2 * c->nlse + SC_LSE_TAIL) * sizeof(float));
        for (int64_t i = 0; i < 2 * c->nlse + SC_LSE_TAIL; i++) c->stats[i] = x;
        c->o.row_stats = c->stats;
    }
    snap s;
    snap_inputs(&s, c);
    size_t wsz = attn_sdpa_fwd_workspace_size(&c->d, &c->o), got = 0;
    void *ws = ws_alloc(wsz, ws_mode, &got);
    attn_status st = attn_sdpa_fwd(&c->d, c->q.v, c->k.v, c->v.v, c->out.v, lse, &c->o, ws, got);
    free(ws);
    CHECK(snap_same_free(&s), "fwd modified an input: %s", c->desc);
    if (st == ATTN_OK) {
        CHECK(tensor_gaps_ok(&c->out), "fwd wrote outside o's view (%s): %s", sc_layout_name(c->out.layout), c->desc);
        if (lse) {
            int tail_ok = 1;
            for (int64_t i = c->nlse; i < c->nlse + SC_LSE_TAIL; i++) {
                memcpy(&u, &lse[i], sizeof u);
                if (u != SC_SENTINEL_BITS) tail_ok = 0;
            }
            CHECK(tail_ok, "fwd wrote past lse[%lld]: %s", (long long)c->nlse, c->desc);
        }
        if (c->o.row_stats) {
            int tail_ok = 1, all = 1;
            for (int64_t i = 0; i < 2 * c->nlse + SC_LSE_TAIL; i++) {
                memcpy(&u, &c->stats[i], sizeof u);
                if (i < 2 * c->nlse) all &= u != SC_SENTINEL_BITS;
                else tail_ok &= u == SC_SENTINEL_BITS;
            }
            CHECK(tail_ok && all, "fwd row_stats: %s past [%lld]: %s", all ? "wrote" : "left unwritten rows, or wrote",
                  (long long)(2 * c->nlse), c->desc);
        }
    }
    c->o.row_stats = NULL;
    return st;
}

attn_status sc_fast_bwd(sc_case *c, const float *lse, int ws_mode) {
    fill_out(&c->dq);
    if (c->dk.buf != c->dq.buf) fill_out(&c->dk);
    if (c->dv.buf != c->dq.buf) fill_out(&c->dv);
    snap s;
    snap_inputs(&s, c);
    snap_add(&s, c->out.buf, c->out.nbuf);
    snap_add(&s, c->dO.buf, c->dO.nbuf);
    if (lse) snap_add(&s, lse, (size_t)c->nlse);
    c->o.row_stats = sc_row_stats && lse ? c->stats : NULL;
    if (c->o.row_stats) snap_add(&s, c->stats, (size_t)(2 * c->nlse));
    size_t wsz = attn_sdpa_bwd_workspace_size(&c->d, &c->o), got = 0;
    void *ws = ws_alloc(wsz, ws_mode, &got);
    attn_status st = attn_sdpa_bwd(&c->d, c->q.v, c->k.v, c->v.v, c->out.v, c->dO.v, lse, c->dq.v, c->dk.v,
                                   c->dv.v, &c->o, ws, got);
    c->o.row_stats = NULL;
    free(ws);
    CHECK(snap_same_free(&s), "bwd modified an input: %s", c->desc);
    if (st == ATTN_OK) {
        CHECK(tensor_gaps_ok(&c->dq), "bwd wrote outside dq's view: %s", c->desc);
        CHECK(tensor_gaps_ok(&c->dk), "bwd wrote outside dk's view: %s", c->desc);
        CHECK(tensor_gaps_ok(&c->dv), "bwd wrote outside dv's view: %s", c->desc);
    }
    return st;
}

int sc_isas(attn_isa *out) {
    int n = 0;
    attn_isa det = attn_isa_detected();
    for (int i = 0; i <= (int)det && i < ATTN_ISA_COUNT; i++) out[n++] = (attn_isa)i;
    return n;
}
