/* SPDX-License-Identifier: MIT */
/* ring_bwd.c — attn_mpi_ring_bwd: ring attention backward.
 *
 * The key-block backward of attn.h, for one (query piece, key piece) block
 * with E = Dv + D value columns (o, lse the GLOBAL ring results):
 *   forward over the block with V = [v | k]:   [o_b | ok], lse_b
 *   w = exp(lse_b - lse),  c = <dO, o_b - o>   per row and head
 *   backward over the block with V = [v | 0], o = [o_b | 0],
 *            dO = [w dO | w c q], lse_b:        dq_b, dk_b, [dv | dk_x]
 *   dq += dq_b + scale w c ok,  dK += dk_b + scale dk_x,  dV += dv
 * (the block-local backward plus the term P (D_b - D) that its own row
 * statistics leave out), so the blocks' shares add up exactly, whatever
 * row statistics the kernel computes itself. So
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

#include <math.h>
#include <string.h>

typedef struct bwd_bufs {
    float *kv[2][2];   /* [parity][piece] K | V (B, c, Hkv, D | Dv) */
    float *out[2][2];  /* [parity][piece] finished accumulator dK | dV, sent at the next step */
    float *in[2];      /* [piece] incoming accumulator of the held piece */
    float *con[2];     /* [piece] this rank's contribution at this step */
    float *ret_send[2], *ret_recv[2]; /* [piece] accumulators on their way home */
    float *dqp, *dkp;  /* one block's dq (B, c, Hq, D), dk (B, c, Hkv, D) */
    float *lsec[2];    /* [piece] (B, Hq, c) global lse of the query piece */
    float *lblk;       /* (B, Hq, c) the block's own lse */
    float *va;         /* (B, c, Hkv, E) [v | k], then [v | 0] */
    float *oa;         /* (B, c, Hq, E) [o_b | ok], then [o_b | 0] */
    float *dOa;        /* (B, c, Hq, E) [w dO | w c q] */
    float *okc;        /* (B, c, Hq, D) scale w c ok: dq's correction */
    float *dva;        /* (B, c, Hkv, E) [dv | dk_x] */
    void *ws;
    size_t ws_bytes;
} bwd_bufs;

static int64_t kv_floats(const ring_prob *P) { return P->B * P->c * P->Hkv * (P->D + P->Dv); }
static int64_t k_floats(const ring_prob *P) { return P->B * P->c * P->Hkv * P->D; }

static size_t bwd_bytes(ring_prob *P, size_t *ws) {
    attn_sdpa_dims d = {P->B, P->c, P->c, P->Hq, P->Hkv, P->D, P->Dv + P->D}; /* the blocks' calls: E columns */
    attn_sdpa_opts wo = P->pair; /* the size does not depend on the key_lens values */
    wo.key_lens = P->key_lens;
    const size_t wb = attn_sdpa_bwd_workspace_size(&d, &wo), wf = attn_sdpa_fwd_workspace_size(&d, &wo);
    *ws = wb > wf ? wb : wf; /* the block forward and backward run one after the other */
    const int64_t E = P->Dv + P->D;
    const size_t kv = ring_fl(kv_floats(P)), qe = ring_fl(P->B * P->c * P->Hq * E), ke = ring_fl(P->B * P->c * P->Hkv * E);
    return ring_table_bytes(P) + (size_t)P->np * 10 * kv + 2 * ring_fl(P->B * P->c * P->Hq * P->D) + kv +
           (size_t)(P->np + 1) * ring_fl(P->B * P->Hq * P->c) + 2 * qe + 2 * ke + ring_fl((int64_t)(*ws / sizeof(float)) + 16);
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
    f->dkp = ring_take(&mem, k_floats(P));
    const int64_t E = P->Dv + P->D;
    f->lblk = ring_take(&mem, P->B * P->Hq * P->c);
    f->va = ring_take(&mem, P->B * P->c * P->Hkv * E);
    f->oa = ring_take(&mem, P->B * P->c * P->Hq * E);
    f->dOa = ring_take(&mem, P->B * P->c * P->Hq * E);
    f->okc = ring_take(&mem, P->B * P->c * P->Hq * P->D);
    f->dva = ring_take(&mem, P->B * P->c * P->Hkv * E);
    f->ws = mem;
    f->ws_bytes = ws;
}

static void add_into(float *acc, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += x[i];
}

/* va = [v | k] rows of the held piece (packed K | V). */
static void pack_vk(const ring_prob *P, bwd_bufs *f, const float *kvbuf) {
    const int64_t E = P->Dv + P->D, n = P->B * P->c * P->Hkv;
    const float *K = kvbuf, *V = kvbuf + k_floats(P);
    for (int64_t x = 0; x < n; x++) {
        memcpy(f->va + x * E, V + x * P->Dv, (size_t)P->Dv * sizeof(float));
        memcpy(f->va + x * E + P->Dv, K + x * P->D, (size_t)P->D * sizeof(float));
    }
}

/* From the block forward [o_b | ok], lse_b: dOa = [w dO | w c q], okc = scale w c ok, oa = [o_b | 0], va = [v | 0]. */
static void block_rows(const ring_prob *P, bwd_bufs *f, const ring_args *a, int qp, float scale) {
    const int64_t c = P->c, E = P->Dv + P->D, Dv = P->Dv, D = P->D;
    for (int64_t b = 0; b < P->B; b++)
        for (int64_t i = 0; i < c; i++)
            for (int64_t h = 0; h < P->Hq; h++) {
                const int64_t li = (b * P->Hq + h) * c + i, r = (b * c + i) * P->Hq + h, row = qp * c + i;
                const float lb = f->lblk[li];
                const float w = lb == -INFINITY ? 0.0f : (float)exp((double)lb - (double)f->lsec[qp][li]);
                const float *dO = a->dO.data + b * a->dO.stride_b + row * a->dO.stride_s + h * a->dO.stride_h;
                const float *og = a->o.data + b * a->o.stride_b + row * a->o.stride_s + h * a->o.stride_h;
                const float *qr = a->q.data + b * a->q.stride_b + row * a->q.stride_s + h * a->q.stride_h;
                float *ob = f->oa + r * E, *da = f->dOa + r * E, *kc = f->okc + r * D;
                double cc = 0.0;
                for (int64_t e = 0; e < Dv; e++) cc += (double)dO[e] * ((double)ob[e] - (double)og[e]);
                const float cw = w == 0.0f ? 0.0f : w * (float)cc;
                for (int64_t e = 0; e < Dv; e++) da[e] = w * dO[e];
                for (int64_t e = 0; e < D; e++) {
                    da[Dv + e] = cw * qr[e];
                    kc[e] = scale * cw * ob[Dv + e];
                    ob[Dv + e] = 0.0f;
                }
            }
    for (int64_t x = 0; x < P->B * c * P->Hkv; x++) memset(f->va + x * E + Dv, 0, (size_t)D * sizeof(float));
}

/* One visible block: backward of query piece qp over the held key piece kp of owner o (file comment). */
static attn_status bwd_block(attn_mpi_ring *R, ring_prob *P, bwd_bufs *f, const ring_args *a, int qp, int o, int kp,
                             const float *kvbuf, float *con) {
    const int64_t row0 = qp * P->c, E = P->Dv + P->D, n = P->B * P->c * P->Hkv;
    attn_sdpa_dims d = {P->B, P->c, P->c, P->Hq, P->Hkv, P->D, E};
    attn_view kv = attn_view_bshd((float *)kvbuf, P->c, P->Hkv, P->D), va = attn_view_bshd(f->va, P->c, P->Hkv, E);
    attn_view oa = attn_view_bshd(f->oa, P->c, P->Hq, E);
    const attn_sdpa_opts *po = ring_pair_opts(P, qp, o, kp);
    const float scale = po->scale != 0.0f ? po->scale : (float)(1.0 / sqrt((double)P->D)); /* as the kernels resolve it */
    pack_vk(P, f, kvbuf);
    attn_status st = attn_sdpa_fwd(&d, ring_rows(a->q, row0), kv, va, oa, f->lblk, po, f->ws, f->ws_bytes);
    if (st == ATTN_OK) {
        block_rows(P, f, a, qp, scale);
        st = attn_sdpa_bwd(&d, ring_rows(a->q, row0), kv, va, oa, attn_view_bshd(f->dOa, P->c, P->Hq, E), f->lblk,
                           attn_view_bshd(f->dqp, P->c, P->Hq, P->D), attn_view_bshd(f->dkp, P->c, P->Hkv, P->D),
                           attn_view_bshd(f->dva, P->c, P->Hkv, E), po, f->ws, f->ws_bytes);
    }
    if (st) return ring_fail(st, "%s: block (query piece %d, owner %d piece %d): %s", P->fn, qp, o, kp, attn_last_error());
    add_into(f->dqp, f->okc, P->B * P->c * P->Hq * P->D);
    ring_add_rows(f->dqp, P->B, P->c, P->Hq, P->D, a->dq, row0);
    float *cK = con, *cV = con + k_floats(P); /* contribution in the K | V layout */
    for (int64_t x = 0; x < n; x++) {
        const float *dv = f->dva + x * E;
        for (int64_t e = 0; e < P->D; e++) cK[x * P->D + e] += f->dkp[x * P->D + e] + scale * dv[P->Dv + e];
        for (int64_t e = 0; e < P->Dv; e++) cV[x * P->Dv + e] += dv[e];
    }
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
