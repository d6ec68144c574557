/* SPDX-License-Identifier: MIT */
/* ring_plan.c — the resolved ring problem: piece geometry, which blocks are
 * visible to which rank (the skip / do-not-send tables), per-pair options,
 * and the grow-only buffer arena.
 *
 * Visibility follows attn.h's position model at GLOBAL positions: query
 * token i sits at p(i) = i + g (g = q_pos_offset; top-left, or bottom-right
 * with S_q = S_k, which is the same), and sees keys [lo(i), hi(i)):
 *   lo = max(0, p - wl)  (wl >= 0),   hi = min(L_b, p + 1 (causal), p + wr + 1 (wr >= 0))
 * with L_b = key_lens[b] (else S). lo and hi never decrease with i, so a
 * block of queries [qs, qs + c) sees some key of [ks, ks + c) iff its first
 * row i1 with hi(i1) > ks has lo(i1) < min(hi(i1), ks + c) (a row that is
 * empty with hi > 0 has lo >= L_b, and so do all later rows). */
#include "mpi/ring_internal.h"

#include <stdlib.h>
#include <string.h>

#define WMAX ((int64_t)1 << 42) /* wider windows are unlimited (positions are < 2^41 in magnitude) */

void ring_resolve(const attn_mpi_ring *R, const char *fn, const ring_args *a, ring_prob *P) {
    attn_sdpa_opts def;
    const attn_sdpa_opts *o = a->opts;
    if (!o) { attn_sdpa_opts_init(&def); o = &def; }
    const attn_sdpa_dims *d = a->dims;
    memset(P, 0, sizeof *P);
    P->fn = fn;
    P->N = R->N;
    P->r = R->rank;
    P->np = R->layout == ATTN_MPI_ZIGZAG ? 2 : 1;
    P->B = d->batch;
    P->S = d->seq_q;
    P->c = P->S / ((int64_t)P->N * P->np);
    P->Hq = d->heads_q;
    P->Hkv = d->heads_kv;
    P->D = d->head_dim;
    P->Dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
    P->g = o->q_pos_offset; /* bottom-right: + S_k - S_q = 0 (no key_lens: checked) */
    P->causal = o->causal;
    P->wl = o->window_left > WMAX ? -1 : o->window_left;
    P->wr = o->window_right > WMAX ? -1 : o->window_right;
    P->key_lens = o->key_lens;
    P->pair = *o;
    P->pair.align = ATTN_ALIGN_TOP_LEFT;
    P->pair.key_lens = NULL;
    /* backward blocks: P = exp(s - lse) from the given GLOBAL lse and Di = <dO, o> from the given
     * GLOBAL o, i.e. the global probabilities restricted to the block (the key-block backward of attn.h) */
    P->pair.bwd_fast = a->bwd;
    P->pair.row_stats = NULL;
}

size_t ring_fl(int64_t n) { return ((size_t)n * sizeof(float) + 63) & ~(size_t)63; }

float *ring_take(unsigned char **mem, int64_t n) {
    float *p = (float *)*mem;
    *mem += ring_fl(n);
    return p;
}

size_t ring_table_bytes(const ring_prob *P) {
    const int64_t pieces = (int64_t)P->N * P->np;
    return ring_fl((pieces * pieces + 3) / 4) + ring_fl(pieces) + ring_fl(P->B);
}

/* Visible key interval [lo, hi) of global query token i in sequence b. */
static void row_range(const ring_prob *P, int64_t b, int64_t i, int64_t *lo, int64_t *hi) {
    const int64_t L = P->key_lens ? P->key_lens[b] : P->S, p = i + P->g;
    int64_t a = 0, e = L;
    if (P->causal && p + 1 < e) e = p + 1;
    if (P->wr >= 0 && p + P->wr + 1 < e) e = p + P->wr + 1;
    if (P->wl >= 0 && p - P->wl > a) a = p - P->wl;
    if (a > L) a = L;
    if (e < a) e = a;
    *lo = a;
    *hi = e;
}

static int block_visible(const ring_prob *P, int64_t qs, int64_t ks) {
    const int64_t c = P->c, ke = ks + c;
    for (int64_t b = 0; b < P->B; b++) {
        int64_t x = qs, y = qs + c; /* first row in [x, y) with hi > ks */
        while (x < y) {
            int64_t m = x + (y - x) / 2, lo, hi;
            row_range(P, b, m, &lo, &hi);
            if (hi > ks) y = m;
            else x = m + 1;
        }
        if (x == qs + c) continue;
        int64_t lo, hi;
        row_range(P, b, x, &lo, &hi);
        if (lo < (hi < ke ? hi : ke)) return 1;
    }
    return 0;
}

void ring_tables(ring_prob *P, unsigned char **mem) {
    const int N = P->N, np = P->np;
    const int64_t pieces = (int64_t)N * np;
    P->need = (int8_t *)*mem;
    *mem += ring_fl((pieces * pieces + 3) / 4);
    P->last = (int *)*mem;
    *mem += ring_fl(pieces);
    P->kl_pair = (int32_t *)*mem;
    *mem += ring_fl(P->B);
    for (int qr = 0; qr < N; qr++)
        for (int qp = 0; qp < np; qp++)
            for (int o = 0; o < N; o++)
                for (int kp = 0; kp < np; kp++)
                    P->need[(((int64_t)qr * np + qp) * N + o) * np + kp] =
                        (int8_t)(P->c > 0 && block_visible(P, ring_start(P, qr, qp), ring_start(P, o, kp)));
    for (int o = 0; o < N; o++)
        for (int kp = 0; kp < np; kp++) {
            int last = -1;
            for (int u = 0; u < N; u++) {
                const int qr = (o + u) % N;
                for (int qp = 0; qp < np; qp++)
                    if (ring_need(P, qr, qp, o, kp)) last = u;
            }
            P->last[o * np + kp] = last;
        }
}

const attn_sdpa_opts *ring_pair_opts(ring_prob *P, int qp, int o, int kp) {
    const int64_t qs = ring_start(P, P->r, qp), ks = ring_start(P, o, kp);
    P->pair.q_pos_offset = P->g + qs - ks;
    if (P->key_lens) {
        for (int64_t b = 0; b < P->B; b++) {
            int64_t l = P->key_lens[b] - ks;
            P->kl_pair[b] = (int32_t)(l < 0 ? 0 : l > P->c ? P->c : l);
        }
        P->pair.key_lens = P->kl_pair;
    }
    return &P->pair;
}

attn_status ring_reserve(attn_mpi_ring *R, const char *fn, size_t bytes) {
    if (bytes <= R->mem_bytes) return ATTN_OK;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0 || !p)
        return ring_fail(ATTN_ERR_NOMEM, "%s: cannot allocate %zu bytes of ring buffers", fn, bytes);
    free(R->mem);
    R->mem = p;
    R->mem_bytes = bytes;
    return ATTN_OK;
}
