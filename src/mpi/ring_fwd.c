/* SPDX-License-Identifier: MIT */
/* ring_fwd.c — attn_mpi_ring_fwd: ring attention forward.
 *
 * Step u = 0 .. N-1 on rank r, holding owner o = (r - u) mod N's K/V pieces
 * (packed (B, c, Hkv, D) | (B, c, Hkv, Dv) per piece, double-buffered by the
 * parity of u):
 *   post: receive owner (o - 1)'s pieces for step u + 1 from r - 1 (those
 *         some rank downstream needs), send the held pieces to r + 1 (same rule)
 *   compute: for each query piece qp and held key piece kp that it sees:
 *         (o_part, lse_part) = attn_sdpa_fwd(q piece, K/V piece) at global
 *         positions (q_pos_offset), then (o, lse)[qp] = merge(acc, part) in place
 *   wait: the step's transfers.
 * The accumulators start empty (o = 0, lse = -inf), so blocks merge in the
 * fixed order (u, kp) whatever the timing. */
#include "mpi/ring_internal.h"

#include <math.h>
#include <string.h>

typedef struct fwd_bufs {
    float *kv[2][2];  /* [parity][piece] (B, c, Hkv, D) K then (B, c, Hkv, Dv) V */
    float *opart;     /* (B, c, Hq, Dv) */
    float *lpart;     /* (B, Hq, c) */
    float *lacc[2];   /* [piece] (B, Hq, c) running lse */
    void *ws;
    size_t ws_bytes;
} fwd_bufs;

static int64_t kv_floats(const ring_prob *P) { return P->B * P->c * P->Hkv * (P->D + P->Dv); }

static size_t fwd_bytes(ring_prob *P, size_t *ws) {
    attn_sdpa_dims d = {P->B, P->c, P->c, P->Hq, P->Hkv, P->D, P->Dv};
    attn_sdpa_opts wo = P->pair; /* the size does not depend on the key_lens values */
    wo.key_lens = P->key_lens;
    *ws = attn_sdpa_fwd_workspace_size(&d, &wo);
    return ring_table_bytes(P) + 2 * (size_t)P->np * ring_fl(kv_floats(P)) + ring_fl(P->B * P->c * P->Hq * P->Dv) +
           (1 + (size_t)P->np) * ring_fl(P->B * P->Hq * P->c) + ring_fl((int64_t)(*ws / sizeof(float)) + 16);
}

static void fwd_carve(ring_prob *P, unsigned char *mem, size_t ws, fwd_bufs *f) {
    memset(f, 0, sizeof *f);
    ring_tables(P, &mem);
    for (int par = 0; par < 2; par++)
        for (int p = 0; p < P->np; p++) f->kv[par][p] = ring_take(&mem, kv_floats(P));
    f->opart = ring_take(&mem, P->B * P->c * P->Hq * P->Dv);
    f->lpart = ring_take(&mem, P->B * P->Hq * P->c);
    for (int p = 0; p < P->np; p++) f->lacc[p] = ring_take(&mem, P->B * P->Hq * P->c);
    f->ws = mem;
    f->ws_bytes = ws;
}

/* K / V views of a packed piece. */
static attn_view piece_k(const ring_prob *P, float *buf) { return attn_view_bshd(buf, P->c, P->Hkv, P->D); }
static attn_view piece_v(const ring_prob *P, float *buf) {
    return attn_view_bshd(buf + P->B * P->c * P->Hkv * P->D, P->c, P->Hkv, P->Dv);
}

/* One visible block: attention of query piece qp over owner o's key piece kp, merged into the accumulators. */
static attn_status fwd_block(attn_mpi_ring *R, ring_prob *P, fwd_bufs *f, const ring_args *a, int qp, int o, int kp,
                             float *kvbuf) {
    const int64_t row0 = qp * P->c;
    attn_sdpa_dims d = {P->B, P->c, P->c, P->Hq, P->Hkv, P->D, P->Dv};
    attn_view part = attn_view_bshd(f->opart, P->c, P->Hq, P->Dv), acc = ring_rows(a->o, row0);
    const attn_sdpa_opts *po = ring_pair_opts(P, qp, o, kp);
    attn_status st = attn_sdpa_fwd(&d, ring_rows(a->q, row0), piece_k(P, kvbuf), piece_v(P, kvbuf), part, f->lpart,
                                   po, f->ws, f->ws_bytes);
    if (st) return ring_fail(st, "%s: block (query piece %d, owner %d piece %d): %s", P->fn, qp, o, kp, attn_last_error());
    attn_view parts[2] = {acc, part};
    const float *lparts[2] = {f->lacc[qp], f->lpart};
    st = attn_sdpa_merge(P->B, P->c, P->Hq, P->Dv, 2, parts, lparts, acc, f->lacc[qp], po->num_threads);
    if (st) return ring_fail(st, "%s: merge: %s", P->fn, attn_last_error());
    R->stats.blocks_computed++;
    return ATTN_OK;
}

static void fwd_init(const ring_prob *P, fwd_bufs *f, const ring_args *a) {
    for (int p = 0; p < P->np; p++) {
        for (int64_t x = 0; x < P->B * P->Hq * P->c; x++) f->lacc[p][x] = -INFINITY;
        for (int64_t b = 0; b < P->B; b++)
            for (int64_t i = 0; i < P->c; i++)
                for (int64_t h = 0; h < P->Hq; h++)
                    memset(a->o.data + b * a->o.stride_b + (p * P->c + i) * a->o.stride_s + h * a->o.stride_h, 0,
                           (size_t)P->Dv * sizeof(float));
        ring_pack_rows(a->k, p * P->c, P->B, P->c, P->Hkv, P->D, f->kv[0][p]);
        ring_pack_rows(a->v, p * P->c, P->B, P->c, P->Hkv, P->Dv, f->kv[0][p] + P->B * P->c * P->Hkv * P->D);
    }
}

static attn_status fwd_run(attn_mpi_ring *R, ring_prob *P, fwd_bufs *f, const ring_args *a) {
    const int N = P->N, r = P->r, left = (r + N - 1) % N, right = (r + 1) % N;
    attn_status st = ATTN_OK;
    double tc = ring_now();
    fwd_init(P, f, a);
    R->stats.compute_s += ring_now() - tc;
    for (int u = 0; u < N; u++) {
        const int cur = u & 1, o = (r - u + N) % N, onext = (r - u - 1 + 2 * N) % N;
        ring_step s;
        ring_step_begin(&s);
        for (int kp = 0; kp < P->np && u + 1 < N; kp++) {
            if (u + 1 <= P->last[onext * P->np + kp])
                ring_step_recv(R, &s, f->kv[!cur][kp], kv_floats(P), left, 100 + kp);
            if (u + 1 <= P->last[o * P->np + kp]) ring_step_send(R, &s, f->kv[cur][kp], kv_floats(P), right, 100 + kp);
            else if (u <= P->last[o * P->np + kp]) R->stats.sends_skipped++;
        }
        tc = ring_now();
        for (int qp = 0; qp < P->np; qp++)
            for (int kp = 0; kp < P->np; kp++) {
                if (!ring_need(P, r, qp, o, kp)) { R->stats.blocks_skipped++; continue; }
                if (st == ATTN_OK) st = fwd_block(R, P, f, a, qp, o, kp, f->kv[cur][kp]);
                ring_step_progress(&s);
            }
        R->stats.compute_s += ring_now() - tc;
        ring_step_wait(R, &s); /* even after an error: the neighbours' transfers must complete */
        R->stats.steps++;
    }
    if (a->lse_out)
        for (int p = 0; p < P->np; p++)
            for (int64_t bh = 0; bh < P->B * P->Hq; bh++)
                memcpy(a->lse_out + bh * (P->np * P->c) + p * P->c, f->lacc[p] + bh * P->c, (size_t)P->c * sizeof(float));
    return st;
}

attn_status attn_mpi_ring_fwd(attn_mpi_ring *R, const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v,
                              attn_view o, float *lse, const attn_sdpa_opts *opts) {
    static const char fn[] = "attn_mpi_ring_fwd";
    if (!R) return ring_fail(ATTN_ERR_NULL, "%s: ring is NULL", fn);
    const double t0 = ring_now();
    attn_view none = {0};
    attn_sdpa_opts obuf;
    ring_args a = {dims, ring_opts_full(opts, &obuf), q, k, v, o, none, none, none, none, lse, 0, lse};
    ring_prob P;
    size_t ws = 0;
    attn_status st = ring_open(R, fn, &a, &P, fwd_bytes, &ws);
    if (st || P.B == 0 || P.c == 0) return st;
    fwd_bufs f;
    fwd_carve(&P, R->mem, ws, &f);
    st = ring_finish(R, fn, fwd_run(R, &P, &f, &a));
    R->stats.total_s = ring_now() - t0;
    return st;
}
