/* SPDX-License-Identifier: MIT */
/* sdpa_merge.c — attn_sdpa_merge: exact combination of partial attention
 * results over disjoint key sets (the FlashAttention split-KV combine).
 *
 * Legend: B batch, Sq query rows, Hq query heads, Dv value head dim, n parts.
 * Per row (b, i, h), in float64:
 *   m   = max_p lse_p                       (-inf if every part is empty)
 *   w_p = exp(lse_p - m)                    (0 for an empty part: lse_p = -inf)
 *   lse = m + log(sum_p w_p)
 *   o   = sum_p (w_p / sum_p w_p) o_p       (p ascending; o_p of empty parts is never read)
 * so a row every part left empty stays o = 0, lse = -inf, and a single
 * non-empty part is reproduced bit for bit (weight exactly 1). A NaN lse_p
 * makes the row NaN (an input taking part in the result is NaN).
 * Tasks are blocks of rows; each writes only its rows, so the result does
 * not depend on the thread count. In place (o = o_parts[0]): every element
 * of part 0 is read before the same element of o is written. */
#include "kernels/sdpa_internal.h"

#include <math.h>

#define MERGE_ROWS 256 /* (b, i, h) rows per task */

typedef struct merge_ctx {
    int64_t B, Sq, Hq, Dv;
    int n;
    const attn_view *parts;
    const float *const *lse_parts;
    attn_view o;
    float *lse;
} merge_ctx;

static float *row_of(attn_view v, int64_t b, int64_t i, int64_t h) {
    return v.data + b * v.stride_b + i * v.stride_s + h * v.stride_h;
}

/* Weights c_p = w_p / sum w (c[p] = 0 for empty parts) of row lse index li;
 * returns the merged lse. */
static double row_weights(const merge_ctx *c, int64_t li, double *cw) {
    double m = -INFINITY;
    int nan = 0;
    for (int p = 0; p < c->n; p++) {
        double l = (double)c->lse_parts[p][li];
        if (isnan(l)) nan = 1;
        else if (l > m) m = l;
    }
    if (nan) {
        for (int p = 0; p < c->n; p++) cw[p] = NAN;
        return NAN;
    }
    if (m == -INFINITY) {
        for (int p = 0; p < c->n; p++) cw[p] = 0.0;
        return -INFINITY;
    }
    double sum = 0.0;
    for (int p = 0; p < c->n; p++) {
        double l = (double)c->lse_parts[p][li];
        cw[p] = l == -INFINITY ? 0.0 : exp(l - m);
        sum += cw[p];
    }
    for (int p = 0; p < c->n; p++) cw[p] /= sum;
    return m + log(sum);
}

static void merge_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    const merge_ctx *c = vctx;
    const int64_t rows = c->B * c->Sq * c->Hq;
    const int64_t r0 = t * MERGE_ROWS, r1 = r0 + MERGE_ROWS < rows ? r0 + MERGE_ROWS : rows;
    double cw[ATTN__SDPA_MERGE_MAX];
    for (int64_t r = r0; r < r1; r++) { /* r = (b * Sq + i) * Hq + h: o's (B, Sq, Hq) order */
        const int64_t h = r % c->Hq, i = (r / c->Hq) % c->Sq, b = r / (c->Hq * c->Sq);
        const int64_t li = (b * c->Hq + h) * c->Sq + i; /* lse (B, Hq, Sq) */
        const double l = row_weights(c, li, cw);
        float *dst = row_of(c->o, b, i, h);
        for (int64_t e = 0; e < c->Dv; e++) {
            double acc = 0.0;
            for (int p = 0; p < c->n; p++)
                if (cw[p] != 0.0) acc += cw[p] * (double)row_of(c->parts[p], b, i, h)[e];
            dst[e] = (float)acc;
        }
        if (c->lse) c->lse[li] = (float)l;
    }
}

attn_status attn_sdpa_merge(int64_t batch, int64_t seq_q, int64_t heads_q, int64_t head_dim_v, int n,
                            const attn_view *o_parts, const float *const *lse_parts, attn_view o, float *lse,
                            int num_threads) {
    attn_status st = attn__sdpa_merge_validate("attn_sdpa_merge", batch, seq_q, heads_q, head_dim_v, n, o_parts,
                                               lse_parts, o, lse, num_threads);
    if (st) return st;
    merge_ctx c = {batch, seq_q, heads_q, head_dim_v, n, o_parts, lse_parts, o, lse};
    const int64_t rows = batch * seq_q * heads_q;
    if (rows == 0) return ATTN_OK;
    attn__parallel_for(attn__ceil_div(rows, MERGE_ROWS), attn__resolve_threads(num_threads), merge_task, &c);
    return ATTN_OK;
}
