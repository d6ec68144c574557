/* SPDX-License-Identifier: MIT */
/* ring_bwd.c — attn_mpi_ring_bwd: ring attention backward.
 *
 * The key-block backward of attn.h, for one (query piece, key piece) block:
 * attn_sdpa_bwd over the block with bwd_fast = 1 and the GLOBAL o and lse
 * of the query piece (P = exp(s - lse), Di = <dO, o>: the global
 * probabilities and row statistics restricted to the block's keys), whose
 * dq, dk, dv are the block's exact shares. So
 *   dq[qp]  = sum over (u, kp) of the blocks' dq            (fixed order)
 *   dK[kp]  = sum over the ranks on the piece's path of their blocks' dk
 * K/V pieces travel as in the forward. Each piece's dK|dV accumulator
 * travels one step behind them: at step u rank r
 *   post: recv next K/V (u + 1) and the accumulator of the held piece (from
 *         r - 1, which finished it at step u - 1); send held K/V onward and
 *         the accumulator it finished at step u - 1 onward (same rule as K/V)
 *   compute: contributions of this rank's query pieces (dq += directly)
 *   wait; acc = incoming acc + contribution (u = 0: the contribution)
 *   at the piece's last step: acc is complete and goes back to its owner.
 * Sums run in path order, so the result does not depend on timing. */
#include "mpi/ring_internal.h"

#include <string.h>

typedef struct bwd_bufs {
    float *kv[2][2];   /* [parity][piece] K | V (B, c, Hkv, D | Dv) */
    float *out[2][2];  /* [parity][piece] finished accumulator dK | dV, sent at the next step */
    float *in[2];      /* [piece] incoming accumulator of the held piece */
    float *con[2];     /* [piece] this rank's contribution at this step */
    float *ret_send[2], *ret_recv[2]; /* [piece] accumulators on their way home */
    float *dqp;        /* one block's dq (B, c, Hq, D) */
    float *dkvp;       /* one block's dk (B, c, Hkv, D) then dv (B, c, Hkv, Dv): the K | V layout */
    float *lsec[2];    /* [piece] (B, Hq, c) global lse of the query piece */
    void *ws;
    size_t ws_bytes;
} bwd_bufs;

static int64_t kv_floats(const ring_prob *P) { return P->B * P->c * P->Hkv * (P->D + P->Dv); }
static int64_t k_floats(const ring_prob *P) { return P->B * P->c * P->Hkv * P->D; }

static size_t bwd_bytes(ring_prob *P, size_t *ws) {
    attn_sdpa_dims d = {P->B, P->c, P->c, P->Hq, P->Hkv, P->D, P->Dv};
    attn_sdpa_opts wo = P->pair; /* the size does not depend on the key_lens values */
    wo.key_lens = P->key_lens;
    *ws = attn_sdpa_bwd_workspace_size(&d, &wo);
    const size_t kv = ring_fl(kv_floats(P));
    return ring_table_bytes(P) + (size_t)P->np * 8 * kv + ring_fl(P->B * P->c * P->Hq * P->D) + kv + /* as carved */
           (size_t)P->np * ring_fl(P->B * P->Hq * P->c) + ring_fl((int64_t)(*ws / sizeof(float)) + 16);
}

static void bwd_carve(ring_prob *P, unsigned char *mem, size_t ws, bwd_bufs *f) {
    memset(f, 0, sizeof *f);
    ring_tables(P, &mem);
    const int64_t kv = kv_floats(P);
    for (int p = 0; p < P->np; p++) {
        for (int par = 0; par < 2; par++) {
            f->kv[par][p] = ring_take(&mem, kv);
            f->out[par][p] = ring_take(&mem, kv);
        }
        f->in[p] = ring_take(&mem, kv);
        f->con[p] = ring_take(&mem, kv);
        f->ret_send[p] = ring_take(&mem, kv);
        f->ret_recv[p] = ring_take(&mem, kv);
        f->lsec[p] = ring_take(&mem, P->B * P->Hq * P->c);
    }
    f->dqp = ring_take(&mem, P->B * P->c * P->Hq * P->D);
    f->dkvp = ring_take(&mem, kv);
    f->ws = mem;
    f->ws_bytes = ws;
}

static void add_into(float *acc, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += x[i];
}

/* One visible block: backward of query piece qp over the held key piece kp of owner o (file comment). */
static attn_status bwd_block(attn_mpi_ring *R, ring_prob *P, bwd_bufs *f, const ring_args *a, int qp, int o, int kp,
                             const float *kvbuf, float *con) {
    const int64_t row0 = qp * P->c;
    attn_sdpa_dims d = {P->B, P->c, P->c, P->Hq, P->Hkv, P->D, P->Dv};
    attn_view kv = attn_view_bshd((float *)kvbuf, P->c, P->Hkv, P->D);
    attn_view vv = attn_view_bshd((float *)kvbuf + k_floats(P), P->c, P->Hkv, P->Dv);
    const attn_sdpa_opts *po = ring_pair_opts(P, qp, o, kp); /* bwd_fast = 1 (ring_resolve) */
    attn_status st = attn_sdpa_bwd(&d, ring_rows(a->q, row0), kv, vv, ring_rows(a->o, row0), ring_rows(a->dO, row0),
                                   f->lsec[qp], attn_view_bshd(f->dqp, P->c, P->Hq, P->D),
                                   attn_view_bshd(f->dkvp, P->c, P->Hkv, P->D),
                                   attn_view_bshd(f->dkvp + k_floats(P), P->c, P->Hkv, P->Dv), po, f->ws, f->ws_bytes);
    if (st) return ring_fail(st, "%s: block (query piece %d, owner %d piece %d): %s", P->fn, qp, o, kp, attn_last_error());
    ring_add_rows(f->dqp, P->B, P->c, P->Hq, P->D, a->dq, row0);
    add_into(con, f->dkvp, kv_floats(P)); /* contribution in the K | V layout */
    R->stats.blocks_computed++;
    return ATTN_OK;
}

static void bwd_init(const ring_prob *P, bwd_bufs *f, const ring_args *a) {
    const int64_t Sl = P->np * P->c;
    for (int p = 0; p < P->np; p++) {
        for (int64_t b = 0; b < P->B; b++)
            for (int64_t i = 0; i < P->c; i++)
                for (int64_t h = 0; h < P->Hq; h++)
                    memset(a->dq.data + b * a->dq.stride_b + (p * P->c + i) * a->dq.stride_s + h * a->dq.stride_h, 0,
                           (size_t)P->D * sizeof(float));
        ring_pack_rows(a->k, p * P->c, P->B, P->c, P->Hkv, P->D, f->kv[0][p]);
        ring_pack_rows(a->v, p * P->c, P->B, P->c, P->Hkv, P->Dv, f->kv[0][p] + k_floats(P));
        for (int64_t bh = 0; bh < P->B * P->Hq; bh++)
            memcpy(f->lsec[p] + bh * P->c, a->lse + bh * Sl + p * P->c, (size_t)P->c * sizeof(float));
    }
}

/* Owner side: dk / dv of piece p from its final accumulator (or zeros: nobody sees the piece). */
static void bwd_store(const ring_prob *P, const ring_args *a, int p, const float *acc) {
    if (acc) {
        ring_unpack_rows(acc, P->B, P->c, P->Hkv, P->D, a->dk, p * P->c);
        ring_unpack_rows(acc + k_floats(P), P->B, P->c, P->Hkv, P->Dv, a->dv, p * P->c);
        return;
    }
    for (int64_t b = 0; b < P->B; b++)
        for (int64_t i = 0; i < P->c; i++)
            for (int64_t h = 0; h < P->Hkv; h++) {
                const int64_t row = p * P->c + i;
                memset(a->dk.data + b * a->dk.stride_b + row * a->dk.stride_s + h * a->dk.stride_h, 0,
                       (size_t)P->D * sizeof(float));
                memset(a->dv.data + b * a->dv.stride_b + row * a->dv.stride_s + h * a->dv.stride_h, 0,
                       (size_t)P->Dv * sizeof(float));
            }
}

/* Posts step u's transfers (see the file comment). */
static void bwd_post(attn_mpi_ring *R, const ring_prob *P, bwd_bufs *f, ring_step *s, int u) {
    const int N = P->N, r = P->r, left = (r + N - 1) % N, right = (r + 1) % N, cur = u & 1;
    const int o = (r - u + N) % N, onext = (r - u - 1 + 2 * N) % N, oprev = (r - u + 1 + N) % N;
    const int64_t kv = kv_floats(P);
    for (int kp = 0; kp < P->np; kp++) {
        const int last = P->last[o * P->np + kp];
        if (u + 1 < N && u + 1 <= P->last[onext * P->np + kp]) ring_step_recv(R, s, f->kv[!cur][kp], kv, left, 200 + kp);
        if (u >= 1 && u <= last) ring_step_recv(R, s, f->in[kp], kv, left, 210 + kp);
        if (u + 1 < N && u + 1 <= last) ring_step_send(R, s, f->kv[cur][kp], kv, right, 200 + kp);
        else if (u <= last && u + 1 < N) R->stats.sends_skipped++;
        /* the accumulator of the piece held at step u - 1 (owner oprev), if r + 1 continues it */
        if (u >= 1 && u <= P->last[oprev * P->np + kp]) ring_step_send(R, s, f->out[!cur][kp], kv, right, 210 + kp);
    }
}

/* After step u's wait: finish the held pieces' accumulators; send completed ones home. */
static void bwd_settle(attn_mpi_ring *R, const ring_prob *P, bwd_bufs *f, const ring_args *a, ring_step *ret, int u) {
    const int N = P->N, r = P->r, cur = u & 1, o = (r - u + N) % N;
    const int64_t kv = kv_floats(P);
    for (int kp = 0; kp < P->np; kp++) {
        const int last = P->last[o * P->np + kp];
        if (u > last) continue; /* not held */
        float *acc = f->out[cur][kp];
        memcpy(acc, f->con[kp], (size_t)kv * sizeof(float));
        if (u >= 1) { /* in + con in path order: earlier ranks first */
            for (int64_t x = 0; x < kv; x++) acc[x] = f->in[kp][x] + f->con[kp][x];
        }
        if (u < last) continue; /* travels on at the next step */
        if (u == 0) { bwd_store(P, a, kp, acc); continue; }
        ring_step_wait(R, ret); /* the previous return from this slot has left */
        ring_step_begin(ret);
        memcpy(f->ret_send[kp], acc, (size_t)kv * sizeof(float));
        ring_step_send(R, ret, f->ret_send[kp], kv, o, 300 + kp);
    }
}

static attn_status bwd_run(attn_mpi_ring *R, ring_prob *P, bwd_bufs *f, const ring_args *a) {
    const int N = P->N, r = P->r;
    const int64_t kv = kv_floats(P);
    attn_status st = ATTN_OK;
    double tc = ring_now();
    bwd_init(P, f, a);
    R->stats.compute_s += ring_now() - tc;
    ring_step home, ret; /* home: my pieces' accumulators coming back; ret: the ones I send back */
    ring_step_begin(&home);
    home.timed = 0; /* posted at the start, due at the end: not link time */
    ring_step_begin(&ret);
    for (int kp = 0; kp < P->np; kp++) {
        const int last = P->last[r * P->np + kp];
        if (last >= 1) ring_step_recv(R, &home, f->ret_recv[kp], kv, (r + last) % N, 300 + kp);
        else if (last < 0) bwd_store(P, a, kp, NULL);
    }
    for (int u = 0; u < N; u++) {
        const int cur = u & 1, o = (r - u + N) % N;
        ring_step s;
        ring_step_begin(&s);
        bwd_post(R, P, f, &s, u);
        tc = ring_now();
        for (int kp = 0; kp < P->np; kp++) memset(f->con[kp], 0, (size_t)kv * sizeof(float));
        for (int qp = 0; qp < P->np; qp++)
            for (int kp = 0; kp < P->np; kp++) {
                if (!ring_need(P, r, qp, o, kp)) { R->stats.blocks_skipped++; continue; }
                if (st == ATTN_OK) st = bwd_block(R, P, f, a, qp, o, kp, f->kv[cur][kp], f->con[kp]);
                ring_step_progress(&s);
            }
        R->stats.compute_s += ring_now() - tc;
        ring_step_wait(R, &s);
        tc = ring_now();
        bwd_settle(R, P, f, a, &ret, u);
        R->stats.compute_s += ring_now() - tc;
        R->stats.steps++;
    }
    ring_step_wait(R, &ret);
    ring_step_wait(R, &home);
    for (int kp = 0; kp < P->np; kp++)
        if (P->last[r * P->np + kp] >= 1) bwd_store(P, a, kp, f->ret_recv[kp]);
    return st;
}

attn_status attn_mpi_ring_bwd(attn_mpi_ring *R, const attn_sdpa_dims *dims, attn_view q, attn_view k, attn_view v,
                              attn_view o, attn_view dO, const float *lse, attn_view dq, attn_view dk, attn_view dv,
                              const attn_sdpa_opts *opts) {
    static const char fn[] = "attn_mpi_ring_bwd";
    if (!R) return ring_fail(ATTN_ERR_NULL, "%s: ring is NULL", fn);
    const double t0 = ring_now();
    attn_sdpa_opts obuf;
    ring_args a = {dims, ring_opts_full(opts, &obuf), q, k, v, o, dO, dq, dk, dv, lse, 1, NULL};
    ring_prob P;
    size_t ws = 0;
    attn_status st = ring_open(R, fn, &a, &P, bwd_bytes, &ws);
    if (st || P.B == 0 || P.c == 0) return st;
    bwd_bufs f;
    bwd_carve(&P, R->mem, ws, &f);
    st = ring_finish(R, fn, bwd_run(R, &P, &f, &a));
    R->stats.total_s = ring_now() - t0;
    return st;
}
