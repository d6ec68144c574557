/* SPDX-License-Identifier: MIT */
/* sdpa_elem.c — the per-element work on score tiles that the forward, the
 * backward and the backward's row pass share: interval visibility (causal,
 * windows, key lengths) inside partly visible tiles, softcap, ALiBi, an
 * explicit bool / additive mask, and dropout. Scalar loops: these run only
 * on tiles that need them (attn__sdpa_prob.has_elem, edge tiles). */
#include "kernels/sdpa_internal.h"
#include "kernels/dropout.h"

#include <math.h>

void attn__sdpa_apply_elem(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t kvh, int64_t g0, int64_t ng,
                           int64_t r0, int64_t nr, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                           int64_t mp, int full, float *St, float *T) {
    const float cap = P->softcap, inv_cap = cap > 0.0f ? 1.0f / cap : 0.0f;
    for (int64_t r = 0; r < nr; r++) {
        const int64_t i = r0 + r;              /* row within the sequence */
        const int64_t pos = i + s->shift;      /* p(i) */
        int64_t a = lo[r] - j0, e = hi[r] - j0; /* visible c in [a, e) */
        if (full) { a = 0; e = nc; }
        if (a < 0) a = 0;
        if (e > nc) e = nc;
        for (int64_t g = 0; g < ng; g++) {
            const int64_t m = r * ng + g;
            const int64_t h = kvh * P->G + g0 + g; /* query head */
            const float slope = P->alibi ? P->alibi[h] : 0.0f;
            const uint8_t *mb = NULL;
            const float *ma = NULL;
            if (P->mask_kind != ATTN_MASK_NONE) {
                int64_t off = s->b * P->msb + h * P->msh + i * P->msq + j0;
                if (P->mask_kind == ATTN_MASK_BOOL) mb = (const uint8_t *)P->mask + off;
                else ma = (const float *)P->mask + off;
            }
            for (int64_t c = 0; c < nc; c++) {
                float *x = &St[c * mp + m];
                /* masked: exactly -inf whatever the score (it may be NaN from garbage keys) */
                if (c < a || c >= e || (mb && !mb[c]) || (ma && ma[c] == -INFINITY)) {
                    *x = -INFINITY;
                    if (T) T[c * mp + m] = 0.0f;
                    continue;
                }
                float y = *x;
                if (cap > 0.0f) {
                    float t = tanhf(y * inv_cap);
                    if (T) T[c * mp + m] = t;
                    y = cap * t;
                }
                if (P->alibi) {
                    int64_t dd = pos - (j0 + c);
                    y -= slope * (float)(dd < 0 ? -dd : dd);
                }
                if (ma) y += ma[c];
                *x = y;
            }
        }
    }
}

/* The per-element step of a score tile (forward, backward, row pass): none
 * on a fully visible tile without has_elem; interval masks alone as -inf
 * runs (the scale left to the softmax / bwd_probs, which multiply by it:
 * the same product, so the same bits); otherwise scale, then apply_elem.
 * Returns the scale the caller's softmax / bwd_probs still applies. */
float attn__sdpa_tile_elem(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t kvh, int64_t g0, int64_t ng,
                           int64_t r0, int64_t nr, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                           int64_t mp, float *St, float *T) {
    const int full = lo[nr - 1] <= j0 && hi[0] >= j0 + nc;
    if (full && !P->has_elem) return P->scale;
    if (!P->has_elem && P->scale > 0.0f) {
        attn__sdpa_mask_intervals(nr, ng, lo, hi, j0, nc, mp, St);
        return P->scale;
    }
    attn__sdpa_scale_tile(St, nc * mp, P->scale);
    attn__sdpa_apply_elem(P, s, kvh, g0, ng, r0, nr, lo, hi, j0, nc, mp, full, St, T);
    return 1.0f;
}

/* Interval visibility alone: for each key c, the rows that cannot see it
 * are a prefix (hi <= j: rows before the causal / window edge) and a suffix
 * (lo > j), lo and hi being non-decreasing in the row; both get -inf as
 * contiguous runs of St's row c. Unscaled scores stay unscaled (the softmax
 * scales them, -inf * scale = -inf for scale > 0). */
void attn__sdpa_mask_intervals(int64_t nr, int64_t ng, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                               int64_t mp, float *St) {
    int64_t ra = 0, rb = 0; /* rows [0, ra) have hi <= j; rows [rb, nr) have lo > j */
    for (int64_t c = 0; c < nc; c++) {
        const int64_t j = j0 + c;
        while (ra < nr && hi[ra] <= j) ra++;
        while (rb < nr && lo[rb] <= j) rb++;
        float *row = St + c * mp;
        for (int64_t m = 0; m < ra * ng; m++) row[m] = -INFINITY;
        for (int64_t m = (rb > ra ? rb : ra) * ng; m < nr * ng; m++) row[m] = -INFINITY;
    }
}

/* Rows [m0, m1) of a block's tile that can see any key of [j0, j0 + nc):
 * the rows whose interval meets the tile are contiguous (lo, hi
 * non-decreasing); m0 rounded down and m1 up to a multiple of 16 (the
 * products' column chunks), m1 <= mp. Rows outside have probability 0 in the
 * tile, so leaving them out of every product changes no bit. */
void attn__sdpa_tile_rows(int64_t nr, int64_t ng, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                          int64_t mp, int64_t *m0, int64_t *m1) {
    int64_t ra = 0, rb = nr;
    while (ra < nr && hi[ra] <= j0) ra++;
    while (rb > ra && lo[rb - 1] >= j0 + nc) rb--;
    if (rb <= ra) { *m0 = *m1 = 0; return; }
    *m0 = (ra * ng) & ~(int64_t)15;
    *m1 = attn__round16(rb * ng) < mp ? attn__round16(rb * ng) : mp;
}

void attn__sdpa_stair_make(int64_t edge_keys, int use, int64_t nr, int64_t ng, const int64_t *lo, const int64_t *hi,
                           int64_t j0, int64_t nc, int64_t mp, attn__sdpa_stair *st) {
    const int64_t ek = edge_keys;
    st->ek = use && ek >= 16 && ek < nc ? ek : 0;
    for (int64_t a = 0, x = 0; a < nc && st->ek; a += ek, x++)
        attn__sdpa_tile_rows(nr, ng, lo, hi, j0 + a, nc - a < ek ? nc - a : ek, mp, &st->ra[x], &st->rb[x]);
}

void attn__sdpa_apply_dropout(const attn__sdpa_prob *P, const uint64_t *rowkey, int64_t M, int64_t j0, int64_t nc,
                              int64_t mp, float *St, float *Pd) {
    const uint32_t thr = P->drop_thr;
    const float sc = P->drop_scale;
    for (int64_t c = 0; c < nc; c++) {
        const int64_t j = j0 + c;
        for (int64_t m = 0; m < M; m++) {
            int keep = attn__dropout_keep(rowkey[m], j, thr);
            if (Pd) Pd[c * mp + m] = keep ? St[c * mp + m] * sc : 0.0f;
            else if (!keep) St[c * mp + m] = 0.0f;
        }
        if (Pd)
            for (int64_t m = M; m < mp; m++) Pd[c * mp + m] = 0.0f;
    }
}

