/* SPDX-License-Identifier: MIT */
/* cmd_check.c — `attn check`: the library against float64 references.
 *
 *  sdpa   attn_sdpa_fwd / attn_sdpa_bwd at a built-in set of shapes and
 *         masks, for every ISA this CPU supports, against attn_ref_sdpa_fwd /
 *         attn_ref_sdpa_bwd (src/kernels/ref: float64 inputs and sums).
 *         Error of a tensor = max|a - ref| / max|ref| (lse: absolute).
 *  layer  attn_mha forward against a float64 re-implementation of the layer
 *         (projections, qk-norm, RoPE, reference sdpa); backward (dx and every
 *         parameter gradient) against central finite differences of that
 *         float64 forward along a random direction.
 * One PASS/FAIL line per case; exit status 1 if any case fails. */
#include "args.h"
#include "cli.h"
#include "core/core.h"
#include "kernels/ref/sdpa_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *SUB = "check";

/* tolerances on the normalised errors */
#define TOL_FWD 1e-4
#define TOL_BWD 5e-4
#define TOL_LAYER_FWD 1e-4
#define TOL_LAYER_BWD 1e-3

/* ─── deterministic random data ──────────────────────────────────────────── */
typedef struct rng { uint64_t s; } rng;
static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static double rng_normal(rng *r) {
    double u = rng_unif(r), v = rng_unif(r);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
static void fill_normal(rng *r, float *p, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)(scale * rng_normal(r));
}
static double *to_double(const float *p, int64_t n) {
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (d)
        for (int64_t i = 0; i < n; i++) d[i] = p[i];
    return d;
}

/* max|a - ref| / max|ref| (1 when ref is all zero); NaN/Inf mismatches -> INFINITY */
static double rel_err(const float *a, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = ref[i];
        if (isnan(x) || isnan(y) || isinf(x) || isinf(y)) {
            if (!(x == y)) return INFINITY;
            continue;
        }
        double e = fabs(x - y);
        if (e > num) num = e;
        if (fabs(y) > den) den = fabs(y);
    }
    return num / (den > 0 ? den : 1.0);
}

/* lse: absolute error; -inf must match exactly */
static double lse_err(const float *a, const double *ref, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = ref[i];
        if (isinf(y) || isinf(x) || isnan(x)) {
            if (!(x == y)) return INFINITY;
            continue;
        }
        if (fabs(x - y) > e) e = fabs(x - y);
    }
    return e;
}

static double dmax(double a, double b) { return (a > b || isnan(a)) ? a : b; }

/* ═══ sdpa cases ═════════════════════════════════════════════════════════════ */
typedef struct sdpa_case {
    const char *name;
    int64_t B, Sq, Sk, Hq, Hkv, D, Dv;
    int causal, align;
    int key_lens;     /* 1: per-batch key lengths (including 0) */
    int64_t wl, wr;   /* window; 0 0 in the table means unlimited (see norm_case) */
    int window;       /* 1: use wl / wr */
    int alibi;
    float softcap, scale;
    int mask_kind;    /* bool / add mask */
    int mask_bcast;   /* 0 broadcast over B, 1 over heads, 2 over query rows */
    int varlen;       /* packed: B sequences, Sq/Sk are the max lengths */
    float dropout;
    int bhsd;         /* the kernel sees (B, H, S, D) strided views */
} sdpa_case;

#define TL ATTN_ALIGN_TOP_LEFT
#define BR ATTN_ALIGN_BOTTOM_RIGHT
static const sdpa_case CASES[] = {
    { .name = "mha", .B = 2, .Sq = 64, .Sk = 64, .Hq = 4, .Hkv = 4, .D = 64 },
    { .name = "gqa", .B = 1, .Sq = 100, .Sk = 100, .Hq = 8, .Hkv = 2, .D = 128 },
    { .name = "mqa", .B = 2, .Sq = 33, .Sk = 65, .Hq = 6, .Hkv = 1, .D = 32 },
    { .name = "causal top-left", .B = 2, .Sq = 37, .Sk = 113, .Hq = 4, .Hkv = 2, .D = 64, .causal = 1, .align = TL },
    { .name = "causal bottom-right", .B = 2, .Sq = 37, .Sk = 113, .Hq = 4, .Hkv = 2, .D = 64, .causal = 1, .align = BR },
    { .name = "causal square", .B = 1, .Sq = 129, .Sk = 129, .Hq = 4, .Hkv = 1, .D = 128, .causal = 1 },
    { .name = "causal bottom-right Sq>Sk", .B = 1, .Sq = 113, .Sk = 37, .Hq = 4, .Hkv = 4, .D = 32, .causal = 1, .align = BR },
    { .name = "decode Sq=1", .B = 2, .Sq = 1, .Sk = 257, .Hq = 8, .Hkv = 2, .D = 128, .causal = 1, .align = BR },
    { .name = "key lengths (padding)", .B = 3, .Sq = 50, .Sk = 70, .Hq = 4, .Hkv = 2, .D = 64, .key_lens = 1 },
    { .name = "sliding window (causal)", .B = 1, .Sq = 130, .Sk = 130, .Hq = 4, .Hkv = 4, .D = 64, .causal = 1, .window = 1, .wl = 16, .wr = -1 },
    { .name = "window left+right", .B = 1, .Sq = 70, .Sk = 90, .Hq = 2, .Hkv = 2, .D = 32, .window = 1, .wl = 8, .wr = 5 },
    { .name = "alibi + scale 0.3", .B = 1, .Sq = 64, .Sk = 80, .Hq = 4, .Hkv = 2, .D = 64, .causal = 1, .align = BR, .alibi = 1, .scale = 0.3f },
    { .name = "softcap 2", .B = 1, .Sq = 48, .Sk = 48, .Hq = 4, .Hkv = 4, .D = 64, .softcap = 2.0f },
    { .name = "bool mask (bcast B)", .B = 2, .Sq = 40, .Sk = 50, .Hq = 4, .Hkv = 2, .D = 32, .mask_kind = ATTN_MASK_BOOL, .mask_bcast = 0 },
    { .name = "additive mask (bcast H)", .B = 2, .Sq = 40, .Sk = 50, .Hq = 4, .Hkv = 2, .D = 32, .mask_kind = ATTN_MASK_ADD, .mask_bcast = 1 },
    { .name = "additive mask (bcast rows)", .B = 1, .Sq = 30, .Sk = 45, .Hq = 2, .Hkv = 1, .D = 32, .causal = 1, .align = BR, .mask_kind = ATTN_MASK_ADD, .mask_bcast = 2 },
    { .name = "varlen packed", .B = 3, .Sq = 0, .Sk = 0, .Hq = 4, .Hkv = 2, .D = 64, .causal = 1, .align = BR, .varlen = 1 },
    { .name = "odd D=7 Dv=13", .B = 1, .Sq = 13, .Sk = 257, .Hq = 3, .Hkv = 1, .D = 7, .Dv = 13 },
    { .name = "D=1, Sq=Sk=1", .B = 2, .Sq = 1, .Sk = 1, .Hq = 1, .Hkv = 1, .D = 1 },
    { .name = "D=256", .B = 1, .Sq = 17, .Sk = 33, .Hq = 2, .Hkv = 1, .D = 256, .causal = 1 },
    { .name = "Sk=0 (all masked)", .B = 1, .Sq = 3, .Sk = 0, .Hq = 2, .Hkv = 2, .D = 16 },
    { .name = "dropout 0.2", .B = 1, .Sq = 48, .Sk = 48, .Hq = 4, .Hkv = 2, .D = 32, .causal = 1, .dropout = 0.2f },
    { .name = "strided (B,H,S,D) views", .B = 2, .Sq = 64, .Sk = 80, .Hq = 4, .Hkv = 2, .D = 64, .causal = 1, .align = BR, .bhsd = 1 },
};
#undef TL
#undef BR
enum { NCASES = (int)(sizeof CASES / sizeof CASES[0]) };

/* packed sequence lengths of the varlen case */
static const int32_t VL_Q[3] = { 5, 17, 1 }, VL_K[3] = { 9, 17, 30 };

/* (B, S, H, D) <-> (B, H, S, D) */
static void bshd_to_bhsd(const float *src, float *dst, int64_t B, int64_t S, int64_t H, int64_t D, int back) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t i1 = ((b * S + s) * H + h) * D, i2 = ((b * H + h) * S + s) * D;
                if (back) memcpy((float *)dst + i1, src + i2, (size_t)D * sizeof(float));
                else memcpy(dst + i2, src + i1, (size_t)D * sizeof(float));
            }
}

typedef struct sdpa_data {
    attn_sdpa_dims d;
    attn_sdpa_opts o;
    int64_t nq, nk, nv, no, nlse; /* element counts */
    int64_t Bv, Sqv, Skv;         /* the 4-D extents the tensors use (varlen: 1, Tq, Tk) */
    float *q, *k, *v, *dO;
    double *oref, *lseref, *dqref, *dkref, *dvref;
    int32_t key_lens[8], cu_q[8], cu_k[8];
    float *alibi, *maskf;
    uint8_t *maskb;
    int ref_ok;
} sdpa_data;

static void sdpa_data_free(sdpa_data *s) {
    free(s->q); free(s->k); free(s->v); free(s->dO);
    free(s->oref); free(s->lseref); free(s->dqref); free(s->dkref); free(s->dvref);
    free(s->alibi); free(s->maskf); free(s->maskb);
    memset(s, 0, sizeof *s);
}

/* Builds inputs and the float64 reference results of a case. 0 on success. */
static int sdpa_data_make(const sdpa_case *c, sdpa_data *s, char *why, size_t whylen) {
    memset(s, 0, sizeof *s);
    rng r = { 0x1234u + (uint64_t)(c - CASES) * 7919u };
    attn_sdpa_dims *d = &s->d;
    d->batch = c->B; d->seq_q = c->Sq; d->seq_k = c->Sk; d->heads_q = c->Hq; d->heads_kv = c->Hkv;
    d->head_dim = c->D; d->head_dim_v = c->Dv ? c->Dv : c->D;
    const int64_t Dv = d->head_dim_v;
    attn_sdpa_opts *o = &s->o;
    attn_sdpa_opts_init(o);
    o->causal = c->causal;
    o->align = c->align;
    o->scale = c->scale;
    o->softcap = c->softcap;
    o->dropout_p = c->dropout;
    o->dropout_seed = 42;
    if (c->window) { o->window_left = c->wl; o->window_right = c->wr; }
    s->Bv = c->B; s->Sqv = c->Sq; s->Skv = c->Sk;
    if (c->varlen) {
        s->cu_q[0] = s->cu_k[0] = 0;
        for (int b = 0; b < (int)c->B; b++) { s->cu_q[b + 1] = s->cu_q[b] + VL_Q[b]; s->cu_k[b + 1] = s->cu_k[b] + VL_K[b]; }
        d->seq_q = s->cu_q[c->B];
        d->seq_k = s->cu_k[c->B];
        o->cu_seqlens_q = s->cu_q;
        o->cu_seqlens_k = s->cu_k;
        s->Bv = 1; s->Sqv = d->seq_q; s->Skv = d->seq_k;
    }
    if (c->key_lens) {
        for (int b = 0; b < (int)c->B; b++) s->key_lens[b] = (int32_t)(b == 0 ? c->Sk : b == 1 ? c->Sk / 2 - 2 : 0);
        o->key_lens = s->key_lens;
    }
    s->nq = s->Bv * s->Sqv * c->Hq * c->D;
    s->nk = s->Bv * s->Skv * c->Hkv * c->D;
    s->nv = s->Bv * s->Skv * c->Hkv * Dv;
    s->no = s->Bv * s->Sqv * c->Hq * Dv;
    s->nlse = s->Bv * s->Sqv * c->Hq;
    if (c->alibi) {
        s->alibi = malloc((size_t)c->Hq * sizeof(float));
        if (!s->alibi) goto nomem;
        for (int64_t h = 0; h < c->Hq; h++) s->alibi[h] = (float)pow(2.0, -8.0 * (double)(h + 1) / (double)c->Hq);
        o->alibi_slopes = s->alibi;
    }
    if (c->mask_kind) {
        const int64_t n = c->B * c->Hq * c->Sq * c->Sk;
        o->mask_kind = c->mask_kind;
        o->mask_stride_q = c->Sk;
        o->mask_stride_h = c->Sq * c->Sk;
        o->mask_stride_b = c->Hq * c->Sq * c->Sk;
        if (c->mask_bcast == 0) o->mask_stride_b = 0;
        else if (c->mask_bcast == 1) o->mask_stride_h = 0;
        else o->mask_stride_q = 0;
        if (c->mask_kind == ATTN_MASK_BOOL) {
            s->maskb = malloc((size_t)n);
            if (!s->maskb) goto nomem;
            for (int64_t i = 0; i < n; i++) s->maskb[i] = rng_unif(&r) < 0.8;
            o->mask = s->maskb;
        } else {
            s->maskf = malloc((size_t)n * sizeof(float));
            if (!s->maskf) goto nomem;
            for (int64_t i = 0; i < n; i++) s->maskf[i] = rng_unif(&r) < 0.1 ? -INFINITY : (float)rng_normal(&r);
            o->mask = s->maskf;
        }
    }
    s->q = malloc((size_t)(s->nq + 1) * sizeof(float));
    s->k = malloc((size_t)(s->nk + 1) * sizeof(float));
    s->v = malloc((size_t)(s->nv + 1) * sizeof(float));
    s->dO = malloc((size_t)(s->no + 1) * sizeof(float));
    if (!s->q || !s->k || !s->v || !s->dO) goto nomem;
    fill_normal(&r, s->q, s->nq, 1.0);
    fill_normal(&r, s->k, s->nk, 1.0);
    fill_normal(&r, s->v, s->nv, 1.0);
    fill_normal(&r, s->dO, s->no, 1.0);
    double *qd = to_double(s->q, s->nq), *kd = to_double(s->k, s->nk), *vd = to_double(s->v, s->nv);
    double *dOd = to_double(s->dO, s->no);
    s->oref = malloc((size_t)(s->no + 1) * sizeof(double));
    s->lseref = malloc((size_t)(s->nlse + 1) * sizeof(double));
    s->dqref = malloc((size_t)(s->nq + 1) * sizeof(double));
    s->dkref = malloc((size_t)(s->nk + 1) * sizeof(double));
    s->dvref = malloc((size_t)(s->nv + 1) * sizeof(double));
    int rc = 0;
    if (!qd || !kd || !vd || !dOd || !s->oref || !s->lseref || !s->dqref || !s->dkref || !s->dvref) rc = -1;
    attn_status st = ATTN_OK;
    if (!rc) st = attn_ref_sdpa_fwd(d, qd, kd, vd, s->oref, s->lseref, o);
    if (!rc && st == ATTN_OK) st = attn_ref_sdpa_bwd(d, qd, kd, vd, dOd, s->dqref, s->dkref, s->dvref, o);
    free(qd); free(kd); free(vd); free(dOd);
    if (rc) goto nomem;
    if (st != ATTN_OK) { snprintf(why, whylen, "reference failed: %s", attn_last_error()); return 1; }
    return 0;
nomem:
    snprintf(why, whylen, "out of memory");
    return 1;
}

/* Runs the library kernels on s at the active ISA; writes the errors. 0 if it ran. */
static int sdpa_run(const sdpa_case *c, const sdpa_data *s, int threads, double *efwd, double *ebwd,
                    char *why, size_t whylen) {
    const attn_sdpa_dims *d = &s->d;
    attn_sdpa_opts o = s->o;
    o.num_threads = threads;
    const int64_t Dv = d->head_dim_v, Bv = s->Bv, Sq = s->Sqv, Sk = s->Skv;
    int rc = 1;
    float *o_ = calloc((size_t)s->no + 1, sizeof(float)), *lse = calloc((size_t)s->nlse + 1, sizeof(float));
    float *dq = calloc((size_t)s->nq + 1, sizeof(float)), *dk = calloc((size_t)s->nk + 1, sizeof(float));
    float *dv = calloc((size_t)s->nv + 1, sizeof(float));
    /* the kernel's own copies (bhsd: transposed) */
    float *kq = NULL, *kk = NULL, *kv = NULL, *ko = NULL, *kdO = NULL, *kdq = NULL, *kdk = NULL, *kdv = NULL;
    void *ws = NULL;
    if (!o_ || !lse || !dq || !dk || !dv) { snprintf(why, whylen, "out of memory"); goto done; }
    attn_view vq, vk, vv, vo, vdO, vdq, vdk, vdv;
    if (c->bhsd) {
        kq = malloc((size_t)s->nq * sizeof(float)); kk = malloc((size_t)s->nk * sizeof(float));
        kv = malloc((size_t)s->nv * sizeof(float)); ko = malloc((size_t)s->no * sizeof(float));
        kdO = malloc((size_t)s->no * sizeof(float)); kdq = malloc((size_t)s->nq * sizeof(float));
        kdk = malloc((size_t)s->nk * sizeof(float)); kdv = malloc((size_t)s->nv * sizeof(float));
        if (!kq || !kk || !kv || !ko || !kdO || !kdq || !kdk || !kdv) { snprintf(why, whylen, "out of memory"); goto done; }
        bshd_to_bhsd(s->q, kq, Bv, Sq, d->heads_q, d->head_dim, 0);
        bshd_to_bhsd(s->k, kk, Bv, Sk, d->heads_kv, d->head_dim, 0);
        bshd_to_bhsd(s->v, kv, Bv, Sk, d->heads_kv, Dv, 0);
        bshd_to_bhsd(s->dO, kdO, Bv, Sq, d->heads_q, Dv, 0);
        vq = attn_view_bhsd(kq, Sq, d->heads_q, d->head_dim);
        vk = attn_view_bhsd(kk, Sk, d->heads_kv, d->head_dim);
        vv = attn_view_bhsd(kv, Sk, d->heads_kv, Dv);
        vo = attn_view_bhsd(ko, Sq, d->heads_q, Dv);
        vdO = attn_view_bhsd(kdO, Sq, d->heads_q, Dv);
        vdq = attn_view_bhsd(kdq, Sq, d->heads_q, d->head_dim);
        vdk = attn_view_bhsd(kdk, Sk, d->heads_kv, d->head_dim);
        vdv = attn_view_bhsd(kdv, Sk, d->heads_kv, Dv);
    } else {
        vq = attn_view_bshd(s->q, Sq, d->heads_q, d->head_dim);
        vk = attn_view_bshd(s->k, Sk, d->heads_kv, d->head_dim);
        vv = attn_view_bshd(s->v, Sk, d->heads_kv, Dv);
        vo = attn_view_bshd(o_, Sq, d->heads_q, Dv);
        vdO = attn_view_bshd(s->dO, Sq, d->heads_q, Dv);
        vdq = attn_view_bshd(dq, Sq, d->heads_q, d->head_dim);
        vdk = attn_view_bshd(dk, Sk, d->heads_kv, d->head_dim);
        vdv = attn_view_bshd(dv, Sk, d->heads_kv, Dv);
    }
    size_t wsf = attn_sdpa_fwd_workspace_size(d, &o), wsb = attn_sdpa_bwd_workspace_size(d, &o);
    size_t wsn = wsf > wsb ? wsf : wsb;
    if (wsn) {
        ws = attn__malloc(wsn);
        if (!ws) { snprintf(why, whylen, "out of memory (workspace %zu bytes)", wsn); goto done; }
    }
    attn_status st = attn_sdpa_fwd(d, vq, vk, vv, vo, lse, &o, ws, wsf);
    if (st != ATTN_OK) { snprintf(why, whylen, "attn_sdpa_fwd: %s", attn_last_error()); goto done; }
    st = attn_sdpa_bwd(d, vq, vk, vv, vo, vdO, lse, vdq, vdk, vdv, &o, ws, wsb);
    if (st != ATTN_OK) { snprintf(why, whylen, "attn_sdpa_bwd: %s", attn_last_error()); goto done; }
    if (c->bhsd) {
        bshd_to_bhsd(ko, o_, Bv, Sq, d->heads_q, Dv, 1);
        bshd_to_bhsd(kdq, dq, Bv, Sq, d->heads_q, d->head_dim, 1);
        bshd_to_bhsd(kdk, dk, Bv, Sk, d->heads_kv, d->head_dim, 1);
        bshd_to_bhsd(kdv, dv, Bv, Sk, d->heads_kv, Dv, 1);
    }
    *efwd = dmax(rel_err(o_, s->oref, s->no), lse_err(lse, s->lseref, s->nlse));
    *ebwd = dmax(dmax(rel_err(dq, s->dqref, s->nq), rel_err(dk, s->dkref, s->nk)), rel_err(dv, s->dvref, s->nv));
    rc = 0;
done:
    attn__free(ws);
    free(o_); free(lse); free(dq); free(dk); free(dv);
    free(kq); free(kk); free(kv); free(ko); free(kdO); free(kdq); free(kdk); free(kdv);
    return rc;
}

static void case_shape(const sdpa_case *c, const sdpa_data *s, char *buf, size_t n) {
    if (c->varlen)
        snprintf(buf, n, "B%lld Tq%lld Tk%lld Hq%lld/%lld D%lld", (long long)c->B, (long long)s->d.seq_q,
                 (long long)s->d.seq_k, (long long)c->Hq, (long long)c->Hkv, (long long)c->D);
    else
        snprintf(buf, n, "B%lld Sq%lld Sk%lld Hq%lld/%lld D%lld", (long long)c->B, (long long)c->Sq,
                 (long long)c->Sk, (long long)c->Hq, (long long)c->Hkv, (long long)c->D);
}

/* ═══ layer ══════════════════════════════════════════════════════════════════ */
typedef struct layer_case {
    const char *name;
    int64_t E, Hq, Hkv, D, B, S;
    int bq, bk, bv, bo, causal, rope, qk_norm;
} layer_case;

static const layer_case LCASES[] = {
    { "layer llama-like (RoPE, GQA, causal, qkv bias)", 64, 4, 2, 16, 2, 7, 1, 1, 1, 0, 1, ATTN_ROPE_NEOX, 0 },
    { "layer qwen3-like (qk-norm, RoPE, GQA)", 64, 4, 2, 16, 2, 6, 0, 0, 0, 0, 1, ATTN_ROPE_NEOX, 1 },
    { "layer torch-like (all biases, no mask)", 48, 4, 4, 12, 2, 5, 1, 1, 1, 1, 0, ATTN_ROPE_NONE, 0 },
};
enum { NLCASES = (int)(sizeof LCASES / sizeof LCASES[0]) };

enum { LP_WQ, LP_BQ, LP_WK, LP_BK, LP_WV, LP_BV, LP_WO, LP_BO, LP_QN, LP_KN, LP_N };
static const char *const LP_NAMES[LP_N] = { "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
                                             "v_proj.weight", "v_proj.bias", "o_proj.weight", "o_proj.bias",
                                             "q_norm.weight", "k_norm.weight" };

typedef struct layer_ref {
    const layer_case *c;
    double *p[LP_N]; /* NULL when absent */
    int64_t n[LP_N];
    double rope_theta, norm_eps;
} layer_ref;

/* y (B, S, E) = the layer in float64. 0 on success. */
static int layer_ref_fwd(const layer_ref *L, const double *x, double *y) {
    const layer_case *c = L->c;
    const int64_t E = c->E, Hq = c->Hq, Hkv = c->Hkv, D = c->D, rows = c->B * c->S, qd = Hq * D, kvd = Hkv * D;
    double *q = calloc((size_t)(rows * qd), sizeof(double)), *k = calloc((size_t)(rows * kvd), sizeof(double));
    double *v = calloc((size_t)(rows * kvd), sizeof(double)), *o = calloc((size_t)(rows * qd), sizeof(double));
    double *lse = calloc((size_t)(rows * Hq), sizeof(double));
    int rc = 1;
    if (!q || !k || !v || !o || !lse) goto done;
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * E;
        for (int64_t j = 0; j < qd; j++) {
            double s = L->p[LP_BQ] ? L->p[LP_BQ][j] : 0;
            for (int64_t e = 0; e < E; e++) s += L->p[LP_WQ][j * E + e] * xr[e];
            q[r * qd + j] = s;
        }
        for (int64_t j = 0; j < kvd; j++) {
            double sk = L->p[LP_BK] ? L->p[LP_BK][j] : 0, sv = L->p[LP_BV] ? L->p[LP_BV][j] : 0;
            for (int64_t e = 0; e < E; e++) {
                sk += L->p[LP_WK][j * E + e] * xr[e];
                sv += L->p[LP_WV][j * E + e] * xr[e];
            }
            k[r * kvd + j] = sk;
            v[r * kvd + j] = sv;
        }
        /* per head: qk-norm (RMSNorm over D), then RoPE NEOX at position s */
        const int64_t pos = r % c->S;
        for (int t = 0; t < 2; t++) {
            double *base = t ? k + r * kvd : q + r * qd;
            const int64_t H = t ? Hkv : Hq;
            const double *w = t ? L->p[LP_KN] : L->p[LP_QN];
            for (int64_t h = 0; h < H; h++) {
                double *xh = base + h * D;
                if (c->qk_norm) {
                    double ms = 0;
                    for (int64_t i = 0; i < D; i++) ms += xh[i] * xh[i];
                    double inv = 1.0 / sqrt(ms / (double)D + L->norm_eps);
                    for (int64_t i = 0; i < D; i++) xh[i] = xh[i] * inv * w[i];
                }
                if (c->rope == ATTN_ROPE_NEOX) {
                    const int64_t half = D / 2;
                    for (int64_t i = 0; i < half; i++) {
                        double ang = (double)pos * pow(L->rope_theta, -2.0 * (double)i / (double)D);
                        double cs = cos(ang), sn = sin(ang), x1 = xh[i], x2 = xh[i + half];
                        xh[i] = x1 * cs - x2 * sn;
                        xh[i + half] = x2 * cs + x1 * sn;
                    }
                }
            }
        }
    }
    attn_sdpa_dims d = { .batch = c->B, .seq_q = c->S, .seq_k = c->S, .heads_q = Hq, .heads_kv = Hkv,
                         .head_dim = D, .head_dim_v = D };
    attn_sdpa_opts so;
    attn_sdpa_opts_init(&so);
    so.causal = c->causal;
    so.align = ATTN_ALIGN_BOTTOM_RIGHT;
    if (attn_ref_sdpa_fwd(&d, q, k, v, o, lse, &so) != ATTN_OK) goto done;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < E; j++) {
            double s = L->p[LP_BO] ? L->p[LP_BO][j] : 0;
            for (int64_t i = 0; i < qd; i++) s += L->p[LP_WO][j * qd + i] * o[r * qd + i];
            y[r * E + j] = s;
        }
    rc = 0;
done:
    free(q); free(k); free(v); free(o); free(lse);
    return rc;
}

static double dot_fd(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Runs one layer case. Returns 0 if it ran; errors in *ef / *eb; worst tensor name in worst. */
static int layer_run(const layer_case *c, int threads, double *ef, double *eb, const char **worst, char *why,
                     size_t whylen) {
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    cfg.embed_dim = c->E; cfg.num_heads = c->Hq; cfg.num_kv_heads = c->Hkv; cfg.head_dim = c->D;
    cfg.bias_q = c->bq; cfg.bias_k = c->bk; cfg.bias_v = c->bv; cfg.bias_o = c->bo;
    cfg.causal = c->causal; cfg.rope = c->rope; cfg.qk_norm = c->qk_norm;
    attn_mha *m = NULL;
    layer_ref L;
    memset(&L, 0, sizeof L);
    L.c = c;
    const int64_t rows = c->B * c->S, nx = rows * c->E;
    float *x = NULL, *y = NULL, *y2 = NULL, *g = NULL, *dx = NULL;
    double *xd = NULL, *yd = NULL, *gd = NULL, *u = NULL;
    int rc = 1;
    rng r = { 0xBEEFu + (uint64_t)(c - LCASES) };
    (void)threads;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { snprintf(why, whylen, "attn_mha_create: %s", attn_last_error()); goto done; }
    if (attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 7) != ATTN_OK) {
        snprintf(why, whylen, "attn_mha_init_weights: %s", attn_last_error());
        goto done;
    }
    const attn_mha_config *rc_cfg = attn_mha_get_config(m);
    L.rope_theta = rc_cfg->rope_theta > 0 ? rc_cfg->rope_theta : 10000.0;
    L.norm_eps = rc_cfg->qk_norm_eps > 0 ? rc_cfg->qk_norm_eps : 1e-6;
    /* perturb biases / norm weights so that their gradients matter; mirror every parameter in float64 */
    for (int i = 0; i < LP_N; i++) {
        attn_param p;
        if (attn_mha_find_param(m, LP_NAMES[i], &p) != ATTN_OK) continue;
        if (i == LP_BQ || i == LP_BK || i == LP_BV || i == LP_BO) fill_normal(&r, p.data, p.numel, 0.1);
        if (i == LP_QN || i == LP_KN)
            for (int64_t j = 0; j < p.numel; j++) p.data[j] = (float)(1.0 + 0.2 * rng_normal(&r));
        L.p[i] = to_double(p.data, p.numel);
        L.n[i] = p.numel;
        if (!L.p[i]) goto nomem;
    }
    if (!L.p[LP_WQ] || !L.p[LP_WK] || !L.p[LP_WV] || !L.p[LP_WO] || (c->qk_norm && (!L.p[LP_QN] || !L.p[LP_KN]))) {
        snprintf(why, whylen, "the layer lacks an expected parameter (q/k/v/o_proj.weight or q/k_norm.weight)");
        goto done;
    }
    x = malloc((size_t)nx * sizeof(float)); y = malloc((size_t)nx * sizeof(float));
    y2 = malloc((size_t)nx * sizeof(float)); g = malloc((size_t)nx * sizeof(float));
    dx = malloc((size_t)nx * sizeof(float));
    yd = malloc((size_t)nx * sizeof(double));
    if (!x || !y || !y2 || !g || !dx || !yd) goto nomem;
    fill_normal(&r, x, nx, 1.0);
    fill_normal(&r, g, nx, 1.0);
    xd = to_double(x, nx); gd = to_double(g, nx);
    if (!xd || !gd) goto nomem;
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = c->B; in.seq_q = c->S; in.x = x;
    if (attn_mha_forward(m, &in, y) != ATTN_OK) { snprintf(why, whylen, "attn_mha_forward: %s", attn_last_error()); goto done; }
    if (layer_ref_fwd(&L, xd, yd)) { snprintf(why, whylen, "float64 layer reference failed"); goto done; }
    *ef = rel_err(y, yd, nx);
    /* training forward + backward */
    if (attn_mha_set_training(m, 1) != ATTN_OK || attn_mha_zero_grad(m) != ATTN_OK) {
        snprintf(why, whylen, "attn_mha_set_training/zero_grad: %s", attn_last_error());
        goto done;
    }
    if (attn_mha_forward(m, &in, y2) != ATTN_OK) { snprintf(why, whylen, "attn_mha_forward (training): %s", attn_last_error()); goto done; }
    *ef = dmax(*ef, rel_err(y2, yd, nx));
    if (attn_mha_backward(m, g, dx, NULL, NULL) != ATTN_OK) {
        snprintf(why, whylen, "attn_mha_backward: %s", attn_last_error());
        goto done;
    }
    /* directional derivatives: dL/dt of L(theta + t u), L = <y, g>, by central differences in float64.
     * Error of a tensor: |<grad, u> - fd| / max(|fd|, |grad|_2, 0.01 G), G = the largest |grad|_2 of
     * the layer (some exact gradients are zero, e.g. k_proj.bias: softmax is shift-invariant). */
    double an[LP_N + 1], fdv[LP_N + 1], gnv[LP_N + 1], G = 0;
    int have[LP_N + 1];
    const double eps = 1e-5;
    for (int i = -1; i < LP_N; i++) {
        double *base = i < 0 ? xd : L.p[i];
        const int64_t n = i < 0 ? nx : L.n[i];
        have[i + 1] = 0;
        if (!base) continue;
        const float *grad = dx;
        if (i >= 0) {
            attn_param p;
            if (attn_mha_find_param(m, LP_NAMES[i], &p) != ATTN_OK) continue;
            grad = p.grad;
        }
        double analytic = 0, gn = 0;
        u = malloc((size_t)n * sizeof(double));
        double *save = malloc((size_t)n * sizeof(double));
        if (!u || !save) { free(save); goto nomem; }
        for (int64_t j = 0; j < n; j++) u[j] = rng_normal(&r);
        for (int64_t j = 0; j < n; j++) { analytic += (double)grad[j] * u[j]; gn += (double)grad[j] * grad[j]; }
        memcpy(save, base, (size_t)n * sizeof(double));
        for (int64_t j = 0; j < n; j++) base[j] = save[j] + eps * u[j];
        int bad = layer_ref_fwd(&L, xd, yd);
        const double lp = dot_fd(yd, gd, nx);
        for (int64_t j = 0; j < n; j++) base[j] = save[j] - eps * u[j];
        bad |= layer_ref_fwd(&L, xd, yd);
        const double lm = dot_fd(yd, gd, nx);
        memcpy(base, save, (size_t)n * sizeof(double));
        free(save);
        free(u);
        u = NULL;
        if (bad) { snprintf(why, whylen, "float64 layer reference failed"); goto done; }
        an[i + 1] = analytic;
        fdv[i + 1] = (lp - lm) / (2 * eps);
        gnv[i + 1] = sqrt(gn);
        have[i + 1] = 1;
        if (gnv[i + 1] > G) G = gnv[i + 1];
    }
    *eb = 0;
    *worst = "";
    for (int i = -1; i < LP_N; i++) {
        if (!have[i + 1]) continue;
        double denom = fabs(fdv[i + 1]);
        if (gnv[i + 1] > denom) denom = gnv[i + 1];
        if (0.01 * G > denom) denom = 0.01 * G;
        double e = fabs(an[i + 1] - fdv[i + 1]) / (denom > 0 ? denom : 1e-30);
        if (!(e <= *eb)) { *eb = e; *worst = i < 0 ? "dx" : LP_NAMES[i]; }
    }
    rc = 0;
    goto done;
nomem:
    snprintf(why, whylen, "out of memory");
done:
    attn_mha_free(m);
    for (int i = 0; i < LP_N; i++) free(L.p[i]);
    free(x); free(y); free(y2); free(g); free(dx); free(xd); free(yd); free(gd); free(u);
    return rc;
}

/* ═══ the command ════════════════════════════════════════════════════════════ */
int cmd_check(int argc, char **argv) {
    const char *isa_name = NULL;
    int64_t threads = ARG_UNSET;
    int quiet = 0;
    const arg_spec specs[] = {
        { "isa", ARG_STR, &isa_name, "NAME", "check only this ISA: generic|avx2|avx512 (default: every ISA the CPU has)" },
        { "threads", ARG_INT, &threads, "N", "worker threads (default: ATTN_NUM_THREADS or all CPUs)" },
        { "quiet", ARG_FLAG, &quiet, NULL, "print failures and the summary only" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    int help = 0;
    if (args_parse(SUB, argc, argv, specs, nspecs, &help)) return 1;
    if (help) {
        args_print_help(SUB, "[options]",
                        "Checks attn_sdpa_fwd/bwd against the float64 reference at built-in shapes (MHA, GQA, MQA,\n"
                        "causal both alignments, key lengths, windows, ALiBi, soft-cap, masks, varlen, odd sizes,\n"
                        "dropout, strided views) for every ISA this CPU supports, and the attn_mha layer forward\n"
                        "and backward against a float64 re-implementation and finite differences.\n"
                        "Error = max|a - ref| / max|ref| over o, dq, dk, dv (lse: absolute error).\n"
                        "Tolerances: sdpa forward 1e-4, backward 5e-4; layer forward 1e-4, backward 1e-3.\n"
                        "Exit status 1 if any case fails.",
                        specs, nspecs);
        return 0;
    }
    if (args_threads(SUB, &threads)) return 1;
    const attn_isa detected = attn_isa_detected(), active0 = attn_isa_active();
    attn_isa lo = ATTN_ISA_GENERIC, hi = detected;
    if (isa_name) {
        attn_isa want = ATTN_ISA_COUNT;
        for (int i = 0; i < ATTN_ISA_COUNT; i++)
            if (!strcmp(isa_name, attn_isa_name((attn_isa)i))) want = (attn_isa)i;
        if (want == ATTN_ISA_COUNT) return cli_fail(SUB, "--isa %s: expected generic, avx2 or avx512", isa_name);
        if (want > detected)
            return cli_fail(SUB, "--isa %s: this CPU supports at most %s", isa_name, attn_isa_name(detected));
        lo = hi = want;
    }
    printf("attn check: sdpa kernels vs float64 reference, ISAs %s..%s, %d threads\n", attn_isa_name(lo),
           attn_isa_name(hi), attn_get_num_threads());
    if (!quiet)
        printf("%-4s  %-7s %-27s %-28s %9s %9s\n", "", "isa", "case", "shape", "fwd err", "bwd err");
    int npass = 0, nfail = 0;
    for (int ci = 0; ci < NCASES; ci++) {
        const sdpa_case *c = &CASES[ci];
        sdpa_data s;
        char why[512] = "", shape[64];
        int made = sdpa_data_make(c, &s, why, sizeof why) == 0;
        case_shape(c, &s, shape, sizeof shape);
        for (int isa = (int)lo; isa <= (int)hi; isa++) {
            double ef = INFINITY, eb = INFINITY;
            int ran = 0;
            if (made) {
                if (attn_isa_set((attn_isa)isa) != ATTN_OK) snprintf(why, sizeof why, "attn_isa_set: %s", attn_last_error());
                else ran = sdpa_run(c, &s, (int)threads, &ef, &eb, why, sizeof why) == 0;
            }
            int ok = ran && ef <= TOL_FWD && eb <= TOL_BWD;
            ok ? npass++ : nfail++;
            if (ok && quiet) continue;
            if (ran)
                printf("%-4s  %-7s %-27s %-28s %9.2e %9.2e\n", ok ? "PASS" : "FAIL", attn_isa_name((attn_isa)isa),
                       c->name, shape, ef, eb);
            else
                printf("FAIL  %-7s %-27s %-28s %s\n", attn_isa_name((attn_isa)isa), c->name, shape, why);
            fflush(stdout);
        }
        sdpa_data_free(&s);
    }
    /* the layer at every ISA too (it calls the kernels) */
    for (int li = 0; li < NLCASES; li++) {
        for (int isa = (int)lo; isa <= (int)hi; isa++) {
            double ef = INFINITY, eb = INFINITY;
            const char *worst = "";
            char why[512] = "";
            int ran = 0;
            if (attn_isa_set((attn_isa)isa) != ATTN_OK) snprintf(why, sizeof why, "attn_isa_set: %s", attn_last_error());
            else ran = layer_run(&LCASES[li], (int)threads, &ef, &eb, &worst, why, sizeof why) == 0;
            int ok = ran && ef <= TOL_LAYER_FWD && eb <= TOL_LAYER_BWD;
            ok ? npass++ : nfail++;
            if (ok && quiet) continue;
            if (ran)
                printf("%-4s  %-7s %-56s %9.2e %9.2e%s%s\n", ok ? "PASS" : "FAIL", attn_isa_name((attn_isa)isa),
                       LCASES[li].name, ef, eb, ok ? "" : "  worst: ", ok ? "" : worst);
            else
                printf("FAIL  %-7s %-56s %s\n", attn_isa_name((attn_isa)isa), LCASES[li].name, why);
            fflush(stdout);
        }
    }
    attn_isa_set(active0);
    printf("attn check: %d passed, %d failed\n", npass, nfail);
    if (nfail) {
        fprintf(stderr, "attn check: %d of %d cases failed\n", nfail, npass + nfail);
        return 1;
    }
    return 0;
}
