/* SPDX-License-Identifier: MIT */
/* sdpa_ref.c — float64 scalar reference of attn_sdpa_fwd / attn_sdpa_bwd.
 *
 * Dimension legend: B sequences, Sq/Sk query/key rows per sequence (packed
 * totals Tq/Tk for varlen), Hq/Hkv query/kv heads, D q/k head dim, Dv v head dim.
 * Every tensor is contiguous: q (B, Sq, Hq, D), k (B, Sk, Hkv, D),
 * v (B, Sk, Hkv, Dv), o/dO (B, Sq, Hq, Dv), lse (B, Hq, Sq); varlen: rows are
 * packed tokens, lse (Hq, Tq).
 *
 * One query row at a time: the score row s[j] is materialised (the reference
 * may use O(Sk) memory), then softmax, then o = P' V. Backward recomputes the
 * row and differentiates it:
 *   t_j   = scale * <q_i, k_j>
 *   s_j   = softcap ? c * tanh(t_j / c) : t_j;  s_j -= slope_h * |p(i) - j|;  s_j += mask_add
 *   P_j   = exp(s_j - lse_i)                 (lse_i = log sum_j exp(s_j))
 *   P'_j  = P_j * m_j, m_j = keep_j / (1 - p_drop)   (m_j = 1 without dropout)
 *   o_i   = sum_j P'_j v_j
 * so
 *   dv_j += P'_j dO_i
 *   dP'_j = <dO_i, v_j>,   Di = sum_j P'_j dP'_j  (= <dO_i, o_i>)
 *   ds_j  = P_j (m_j dP'_j - Di)
 *   dt_j  = ds_j * (softcap ? 1 - tanh^2(t_j / c) : 1)
 *   dq_i += scale * sum_j dt_j k_j,   dk_j += scale * dt_j q_i
 */
#include "kernels/ref/sdpa_ref.h"

#include "core/core.h"
#include "kernels/dropout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAX_ELEMS ((int64_t)1 << 50) /* refuse absurd sizes (no overflow below) */

typedef struct ref_ctx {
    int64_t B, Sq, Sk, Hq, Hkv, D, Dv, group;
    double scale;
    const attn_sdpa_opts *o;
    attn_sdpa_opts defaults;
    int varlen;
    int64_t max_sk; /* longest key range of any sequence (row buffer length) */
} ref_ctx;

/* One sequence: packed row/key offsets and lengths. */
typedef struct ref_seq {
    int64_t q0, k0; /* first row of q/o, first row of k/v (in units of rows) */
    int64_t sq;     /* query rows */
    int64_t skv;    /* key rows stored */
    int64_t skb;    /* valid keys Sk_b (key_lens or skv) */
} ref_seq;

static attn_status ref_mul_ok(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return ATTN_ERR_SHAPE;
    if (a != 0 && b > REF_MAX_ELEMS / a) return ATTN_ERR_NOMEM;
    *out = a * b;
    return ATTN_OK;
}

static attn_status ref_check_elems(const char *what, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t x;
    if (ref_mul_ok(a, b, &x) || ref_mul_ok(x, c, &x) || ref_mul_ok(x, d, &x))
        return attn__fail(ATTN_ERR_NOMEM, "ref sdpa: %s has too many elements", what);
    return ATTN_OK;
}

static attn_status ref_validate(ref_ctx *c, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts) {
    if (!dims) return attn__fail(ATTN_ERR_NULL, "ref sdpa: dims is NULL");
    if (!opts) {
        memset(&c->defaults, 0, sizeof c->defaults);
        c->defaults.window_left = -1;
        c->defaults.window_right = -1;
        opts = &c->defaults;
    }
    c->o = opts;
    c->B = dims->batch; c->Sq = dims->seq_q; c->Sk = dims->seq_k;
    c->Hq = dims->heads_q; c->Hkv = dims->heads_kv;
    c->D = dims->head_dim; c->Dv = dims->head_dim_v ? dims->head_dim_v : dims->head_dim;
    if (c->B < 0) return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: batch = %lld < 0", (long long)c->B);
    if (c->Sq < 0) return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: seq_q = %lld < 0", (long long)c->Sq);
    if (c->Sk < 0) return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: seq_k = %lld < 0", (long long)c->Sk);
    if (c->Hq < 1) return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: heads_q = %lld < 1", (long long)c->Hq);
    if (c->Hkv < 1) return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: heads_kv = %lld < 1", (long long)c->Hkv);
    if (c->Hq % c->Hkv)
        return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: heads_q = %lld is not a multiple of heads_kv = %lld",
                          (long long)c->Hq, (long long)c->Hkv);
    if (c->D < 1 || c->D > 256)
        return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: head_dim = %lld not in [1, 256]", (long long)c->D);
    if (dims->head_dim_v < 0 || c->Dv > 256)
        return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: head_dim_v = %lld not in [0, 256]",
                          (long long)dims->head_dim_v);
    c->group = c->Hq / c->Hkv;
    c->varlen = opts->cu_seqlens_q != NULL;
    int64_t Bq = c->varlen ? 1 : c->B;
    attn_status st;
    if ((st = ref_check_elems("q", Bq, c->Sq, c->Hq, c->D))) return st;
    if ((st = ref_check_elems("o", Bq, c->Sq, c->Hq, c->Dv))) return st;
    if ((st = ref_check_elems("k", Bq, c->Sk, c->Hkv, c->D))) return st;
    if ((st = ref_check_elems("v", Bq, c->Sk, c->Hkv, c->Dv))) return st;

    if (!isfinite(opts->scale)) return attn__fail(ATTN_ERR_OPTION, "ref sdpa: scale = %g is not finite", (double)opts->scale);
    c->scale = opts->scale != 0.0f ? (double)opts->scale : 1.0 / sqrt((double)c->D);
    if (opts->causal != 0 && opts->causal != 1)
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: causal = %d not 0 or 1", opts->causal);
    if (opts->align != ATTN_ALIGN_TOP_LEFT && opts->align != ATTN_ALIGN_BOTTOM_RIGHT)
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: align = %d is not an attn_align", opts->align);
    if (opts->q_pos_offset < -((int64_t)1 << 40) || opts->q_pos_offset > ((int64_t)1 << 40))
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: q_pos_offset = %lld not in [-2^40, 2^40]",
                          (long long)opts->q_pos_offset);
    if (opts->window_left < -1)
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: window_left = %lld < -1", (long long)opts->window_left);
    if (opts->window_right < -1)
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: window_right = %lld < -1", (long long)opts->window_right);
    if (!(opts->softcap >= 0.0f) || !isfinite(opts->softcap))
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: softcap = %g must be 0 or finite > 0", (double)opts->softcap);
    if (opts->mask_kind < ATTN_MASK_NONE || opts->mask_kind > ATTN_MASK_ADD)
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: mask_kind = %d is not an attn_mask_kind", opts->mask_kind);
    if (opts->mask_kind != ATTN_MASK_NONE) {
        if (!opts->mask) return attn__fail(ATTN_ERR_NULL, "ref sdpa: mask is NULL with mask_kind = %d", opts->mask_kind);
        if (opts->mask_stride_b < 0 || opts->mask_stride_h < 0 || opts->mask_stride_q < 0)
            return attn__fail(ATTN_ERR_STRIDE, "ref sdpa: mask strides (%lld, %lld, %lld) must be >= 0",
                              (long long)opts->mask_stride_b, (long long)opts->mask_stride_h,
                              (long long)opts->mask_stride_q);
    }
    if (!(opts->dropout_p >= 0.0f && opts->dropout_p < 1.0f))
        return attn__fail(ATTN_ERR_OPTION, "ref sdpa: dropout_p = %g not in [0, 1)", (double)opts->dropout_p);
    if ((opts->cu_seqlens_q == NULL) != (opts->cu_seqlens_k == NULL))
        return attn__fail(ATTN_ERR_NULL, "ref sdpa: cu_seqlens_q and cu_seqlens_k must be given together");

    c->max_sk = c->Sk;
    if (c->varlen) {
        const int32_t *cq = opts->cu_seqlens_q, *ck = opts->cu_seqlens_k;
        if (cq[0] < 0 || ck[0] < 0)
            return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: cu_seqlens_q[0] = %d, cu_seqlens_k[0] = %d must be >= 0",
                              (int)cq[0], (int)ck[0]);
        c->max_sk = 0;
        for (int64_t b = 0; b < c->B; b++) {
            if (cq[b + 1] < cq[b])
                return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: cu_seqlens_q not monotone at %lld", (long long)b + 1);
            if (ck[b + 1] < ck[b])
                return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: cu_seqlens_k not monotone at %lld", (long long)b + 1);
            if (ck[b + 1] - ck[b] > c->max_sk) c->max_sk = ck[b + 1] - ck[b];
        }
        if (cq[c->B] > c->Sq)
            return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: cu_seqlens_q[%lld] = %d > seq_q = %lld", (long long)c->B,
                              (int)cq[c->B], (long long)c->Sq);
        if (ck[c->B] > c->Sk)
            return attn__fail(ATTN_ERR_SHAPE, "ref sdpa: cu_seqlens_k[%lld] = %d > seq_k = %lld", (long long)c->B,
                              (int)ck[c->B], (long long)c->Sk);
    }
    if (opts->key_lens) {
        for (int64_t b = 0; b < c->B; b++) {
            int64_t skv = c->varlen ? (int64_t)opts->cu_seqlens_k[b + 1] - opts->cu_seqlens_k[b] : c->Sk;
            if (opts->key_lens[b] < 0 || opts->key_lens[b] > skv)
                return attn__fail(ATTN_ERR_OPTION, "ref sdpa: key_lens[%lld] = %d not in [0, %lld]", (long long)b,
                                  (int)opts->key_lens[b], (long long)skv);
        }
    }
    return ATTN_OK;
}

static ref_seq ref_sequence(const ref_ctx *c, int64_t b) {
    ref_seq s;
    if (c->varlen) {
        s.q0 = c->o->cu_seqlens_q[b];
        s.k0 = c->o->cu_seqlens_k[b];
        s.sq = (int64_t)c->o->cu_seqlens_q[b + 1] - s.q0;
        s.skv = (int64_t)c->o->cu_seqlens_k[b + 1] - s.k0;
    } else {
        s.q0 = b * c->Sq;
        s.k0 = b * c->Sk;
        s.sq = c->Sq;
        s.skv = c->Sk;
    }
    s.skb = c->o->key_lens ? c->o->key_lens[b] : s.skv;
    return s;
}

static int64_t ref_lse_index(const ref_ctx *c, const ref_seq *s, int64_t b, int64_t h, int64_t i) {
    return c->varlen ? h * c->Sq + s->q0 + i : (b * c->Hq + h) * c->Sq + i;
}

/* Scores of row i of sequence b, head h: t[j] (scaled dot, pre-softcap) and
 * s[j] (final logit, -INFINITY when not visible). Returns the row max
 * (NaN if any visible logit is NaN; -INFINITY if nothing is visible). */
static double ref_row_scores(const ref_ctx *c, const ref_seq *sq, int64_t b, int64_t h, int64_t i,
                             const double *q, const double *k, double *t, double *s) {
    const attn_sdpa_opts *o = c->o;
    int64_t p = (o->align == ATTN_ALIGN_BOTTOM_RIGHT ? i + sq->skb - sq->sq : i) + o->q_pos_offset;
    int64_t hk = h / c->group;
    const double *q_i = q + ((sq->q0 + i) * c->Hq + h) * c->D;
    double m = -INFINITY;
    int nan = 0;
    for (int64_t j = 0; j < sq->skv; j++) {
        int vis = j < sq->skb;
        if (o->causal && j > p) vis = 0;
        if (o->window_left >= 0 && j < p - o->window_left) vis = 0;
        if (o->window_right >= 0 && j > p + o->window_right) vis = 0;
        const char *mrow = NULL;
        if (o->mask_kind != ATTN_MASK_NONE) {
            int64_t off = b * o->mask_stride_b + h * o->mask_stride_h + i * o->mask_stride_q + j;
            size_t es = o->mask_kind == ATTN_MASK_BOOL ? sizeof(uint8_t) : sizeof(float);
            mrow = (const char *)o->mask + (size_t)off * es;
            if (o->mask_kind == ATTN_MASK_BOOL && vis && *(const uint8_t *)mrow == 0) vis = 0;
        }
        t[j] = 0.0;
        if (!vis) { s[j] = -INFINITY; continue; }
        const double *k_j = k + ((sq->k0 + j) * c->Hkv + hk) * c->D;
        double dot = 0.0;
        for (int64_t d = 0; d < c->D; d++) dot += q_i[d] * k_j[d];
        double x = c->scale * dot;
        t[j] = x;
        if (o->softcap > 0.0f) x = (double)o->softcap * tanh(x / (double)o->softcap);
        if (o->alibi_slopes) x -= (double)o->alibi_slopes[h] * (double)llabs(p - j);
        if (o->mask_kind == ATTN_MASK_ADD) x += (double)*(const float *)mrow;
        s[j] = x;
        if (isnan(x)) nan = 1;
        else if (x > m) m = x;
    }
    return nan ? NAN : m;
}

/* Dropout multiplier of key j: keep / (1 - p), or 1 without dropout. */
static double ref_drop(const ref_ctx *c, uint64_t row_key, uint32_t thr, int64_t j) {
    if (c->o->dropout_p <= 0.0f) return 1.0;
    return attn__dropout_keep(row_key, j, thr) ? 1.0 / (1.0 - (double)c->o->dropout_p) : 0.0;
}

/* Probabilities P_j (before dropout) of a row into s (in place); returns lse. */
static double ref_row_softmax(const ref_ctx *c, const ref_seq *sq, double m, double *s) {
    (void)c;
    double sum = 0.0;
    for (int64_t j = 0; j < sq->skv; j++) sum += s[j] == -INFINITY ? 0.0 : exp(s[j] - m);
    double lse = m + log(sum);
    for (int64_t j = 0; j < sq->skv; j++) s[j] = s[j] == -INFINITY ? 0.0 : exp(s[j] - m) / sum;
    return lse;
}

attn_status attn_ref_sdpa_fwd(const attn_sdpa_dims *dims, const double *q, const double *k, const double *v,
                              double *o, double *lse, const attn_sdpa_opts *opts) {
    ref_ctx c;
    attn_status st = ref_validate(&c, dims, opts);
    if (st) return st;
    int64_t nq = (c.varlen ? 1 : c.B) * c.Sq, nk = (c.varlen ? 1 : c.B) * c.Sk;
    if ((nq > 0 && (!q || !o)) || (nk > 0 && (!k || !v)))
        return attn__fail(ATTN_ERR_NULL, "ref sdpa fwd: q/k/v/o is NULL");
    if (c.varlen && (opts->cu_seqlens_q == NULL)) return ATTN_ERR_INTERNAL;

    double *t = malloc((size_t)(c.max_sk > 0 ? c.max_sk : 1) * sizeof(double));
    double *s = malloc((size_t)(c.max_sk > 0 ? c.max_sk : 1) * sizeof(double));
    if (!t || !s) { free(t); free(s); return attn__fail(ATTN_ERR_NOMEM, "ref sdpa fwd: out of memory"); }

    /* rows not covered by any varlen sequence stay zero / -inf */
    for (int64_t n = 0; n < nq * c.Hq * c.Dv; n++) o[n] = 0.0;
    if (lse)
        for (int64_t n = 0; n < nq * c.Hq; n++) lse[n] = -INFINITY;
    uint32_t thr = attn__dropout_threshold(c.o->dropout_p);

    for (int64_t b = 0; b < c.B; b++) {
        ref_seq sq = ref_sequence(&c, b);
        for (int64_t h = 0; h < c.Hq; h++) {
            int64_t hk = h / c.group;
            for (int64_t i = 0; i < sq.sq; i++) {
                double *o_i = o + ((sq.q0 + i) * c.Hq + h) * c.Dv;
                double m = ref_row_scores(&c, &sq, b, h, i, q, k, t, s);
                double l;
                if (m == -INFINITY) {
                    l = -INFINITY; /* fully masked: o = 0 */
                } else {
                    l = ref_row_softmax(&c, &sq, m, s);
                    uint64_t rk = attn__dropout_row_key(c.o->dropout_seed, b, h, i);
                    for (int64_t j = 0; j < sq.skv; j++) {
                        double pj = s[j] * ref_drop(&c, rk, thr, j);
                        if (pj == 0.0) continue;
                        const double *v_j = v + ((sq.k0 + j) * c.Hkv + hk) * c.Dv;
                        for (int64_t d = 0; d < c.Dv; d++) o_i[d] += pj * v_j[d];
                    }
                    if (isnan(m))
                        for (int64_t d = 0; d < c.Dv; d++) o_i[d] = NAN;
                }
                if (lse) lse[ref_lse_index(&c, &sq, b, h, i)] = l;
            }
        }
    }
    free(t);
    free(s);
    return ATTN_OK;
}

attn_status attn_ref_sdpa_bwd(const attn_sdpa_dims *dims, const double *q, const double *k, const double *v,
                              const double *dO, double *dq, double *dk, double *dv, const attn_sdpa_opts *opts) {
    ref_ctx c;
    attn_status st = ref_validate(&c, dims, opts);
    if (st) return st;
    int64_t nq = (c.varlen ? 1 : c.B) * c.Sq, nk = (c.varlen ? 1 : c.B) * c.Sk;
    if ((nq > 0 && (!q || !dO || !dq)) || (nk > 0 && (!k || !v || !dk || !dv)))
        return attn__fail(ATTN_ERR_NULL, "ref sdpa bwd: q/k/v/dO/dq/dk/dv is NULL");

    size_t n = (size_t)(c.max_sk > 0 ? c.max_sk : 1);
    double *t = malloc(n * sizeof(double));
    double *s = malloc(n * sizeof(double));
    double *dp = malloc(n * sizeof(double));
    unsigned char *vis = malloc(n);
    if (!t || !s || !dp || !vis) {
        free(t); free(s); free(dp); free(vis);
        return attn__fail(ATTN_ERR_NOMEM, "ref sdpa bwd: out of memory");
    }
    for (int64_t x = 0; x < nq * c.Hq * c.D; x++) dq[x] = 0.0;
    for (int64_t x = 0; x < nk * c.Hkv * c.D; x++) dk[x] = 0.0;
    for (int64_t x = 0; x < nk * c.Hkv * c.Dv; x++) dv[x] = 0.0;
    uint32_t thr = attn__dropout_threshold(c.o->dropout_p);
    double cap = (double)c.o->softcap;

    for (int64_t b = 0; b < c.B; b++) {
        ref_seq sq = ref_sequence(&c, b);
        for (int64_t h = 0; h < c.Hq; h++) {
            int64_t hk = h / c.group;
            for (int64_t i = 0; i < sq.sq; i++) {
                double m = ref_row_scores(&c, &sq, b, h, i, q, k, t, s);
                if (m == -INFINITY) continue; /* fully masked: zero gradients */
                /* visibility is lost by the softmax; remember it */
                for (int64_t j = 0; j < sq.skv; j++) vis[j] = s[j] != -INFINITY;
                ref_row_softmax(&c, &sq, m, s); /* s = P */
                uint64_t rk = attn__dropout_row_key(c.o->dropout_seed, b, h, i);
                const double *q_i = q + ((sq.q0 + i) * c.Hq + h) * c.D;
                const double *dO_i = dO + ((sq.q0 + i) * c.Hq + h) * c.Dv;
                double *dq_i = dq + ((sq.q0 + i) * c.Hq + h) * c.D;
                /* dP'_j = <dO_i, v_j>;  Di = sum_j P_j m_j dP'_j */
                double Di = 0.0;
                for (int64_t j = 0; j < sq.skv; j++) {
                    dp[j] = 0.0;
                    if (!vis[j]) continue;
                    const double *v_j = v + ((sq.k0 + j) * c.Hkv + hk) * c.Dv;
                    double x = 0.0;
                    for (int64_t d = 0; d < c.Dv; d++) x += dO_i[d] * v_j[d];
                    double mj = ref_drop(&c, rk, thr, j);
                    dp[j] = mj * x; /* m_j dP'_j */
                    Di += s[j] * dp[j];
                    /* dv_j += P'_j dO_i */
                    double pj = s[j] * mj;
                    double *dv_j = dv + ((sq.k0 + j) * c.Hkv + hk) * c.Dv;
                    if (pj != 0.0)
                        for (int64_t d = 0; d < c.Dv; d++) dv_j[d] += pj * dO_i[d];
                }
                for (int64_t j = 0; j < sq.skv; j++) {
                    if (!vis[j] || (s[j] == 0.0 && !isnan(m))) continue; /* invisible or underflowed: ds = 0 */
                    /* ds_j = P_j (m_j dP'_j - Di);  dt_j = ds_j (1 - tanh^2(t_j / c)) */
                    double ds = s[j] * (dp[j] - Di);
                    if (cap > 0.0) {
                        double th = tanh(t[j] / cap);
                        ds *= 1.0 - th * th;
                    }
                    ds *= c.scale;
                    const double *k_j = k + ((sq.k0 + j) * c.Hkv + hk) * c.D;
                    double *dk_j = dk + ((sq.k0 + j) * c.Hkv + hk) * c.D;
                    for (int64_t d = 0; d < c.D; d++) {
                        dq_i[d] += ds * k_j[d];
                        dk_j[d] += ds * q_i[d];
                    }
                }
            }
        }
    }
    free(t);
    free(s);
    free(dp);
    free(vis);
    return ATTN_OK;
}
