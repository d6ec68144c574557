/* SPDX-License-Identifier: MIT */
/* ring_mha.c — the attn_mha layer over the ring: attn_mpi_mha_forward /
 * _backward (the layer's own forward / backward with the ring as its
 * attention backend, RoPE at global positions) and attn_mpi_grad_allreduce.
 *
 * The layer calls the backend with the dims of its local rows (seq_q =
 * seq_k = S/N); the ring takes the global problem, so the backend passes
 * seq = N x S/N. Before the layer runs, every rank's arguments are agreed
 * (the layer could refuse them before reaching the ring: a rank left alone
 * in the ring would wait forever); after it, the statuses are agreed again. */
#include "mpi/ring_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static attn_status ring_attn_fwd(void *user, const attn_sdpa_dims *d, attn_view q, attn_view k, attn_view v,
                                 attn_view o, float *lse, const attn_sdpa_opts *opts) {
    attn_mpi_ring *R = user;
    attn_sdpa_dims g = *d;
    g.seq_q = g.seq_k = d->seq_q * R->N;
    return attn_mpi_ring_fwd(R, &g, q, k, v, o, lse, opts);
}

static attn_status ring_attn_bwd(void *user, const attn_sdpa_dims *d, attn_view q, attn_view k, attn_view v,
                                 attn_view o, attn_view dO, const float *lse, attn_view dq, attn_view dk, attn_view dv,
                                 const attn_sdpa_opts *opts) {
    attn_mpi_ring *R = user;
    attn_sdpa_dims g = *d;
    g.seq_q = g.seq_k = d->seq_q * R->N;
    return attn_mpi_ring_bwd(R, &g, q, k, v, o, dO, lse, dq, dk, dv, opts);
}

/* Global index of local row l (pieces of c tokens) of this rank. */
static int64_t global_token(const attn_mpi_ring *R, int64_t c, int64_t l) {
    if (R->layout == ATTN_MPI_CONTIGUOUS) return (int64_t)R->rank * c + l;
    const int64_t p = l / c, chunk = p == 0 ? R->rank : 2 * (int64_t)R->N - 1 - R->rank;
    return chunk * c + l % c;
}

/* This rank's arguments (no communication). Fills R->pos when the caller gave no positions. */
static attn_status mha_local_check(attn_mpi_ring *R, const char *fn, attn_mha *m, const attn_mha_input *in,
                                   const float *y) {
    if (!m) return ring_fail(ATTN_ERR_NULL, "%s: m is NULL", fn);
    if (!in) return ring_fail(ATTN_ERR_NULL, "%s: in is NULL", fn);
    if (!y) return ring_fail(ATTN_ERR_NULL, "%s: y is NULL", fn);
    if (!in->x) return ring_fail(ATTN_ERR_NULL, "%s: in->x is NULL", fn);
    if (in->struct_size != sizeof *in) /* the layer is given a copy of this header's struct */
        return ring_fail(ATTN_ERR_OPTION, "%s: in->struct_size = %u, this libattn_mpi's attn_mha_input has %zu "
                         "bytes: start from attn_mha_input_init() of the same attn.h", fn, (unsigned)in->struct_size,
                         sizeof *in);
    if (in->layout != ATTN_BATCH_FIRST && in->layout != ATTN_SEQ_FIRST)
        return ring_fail(ATTN_ERR_OPTION, "%s: in->layout = %d, must be ATTN_BATCH_FIRST (0) or ATTN_SEQ_FIRST (1)",
                         fn, in->layout);
    if (in->key || in->value)
        return ring_fail(ATTN_ERR_UNSUPPORTED, "%s: in->key / in->value given: the layer over the ring is "
                         "self-attention only", fn);
    if (in->key_padding_mask || in->mask_kind != ATTN_MASK_NONE || in->mask)
        return ring_fail(ATTN_ERR_UNSUPPORTED, "%s: key_padding_mask / explicit masks are not supported by the "
                         "layer over the ring", fn);
    if (in->batch < 0 || in->seq_q < 0)
        return ring_fail(ATTN_ERR_SHAPE, "%s: in->batch = %lld, in->seq_q = %lld, must be >= 0", fn,
                         (long long)in->batch, (long long)in->seq_q);
    const int64_t Sl = in->seq_q, np = R->layout == ATTN_MPI_ZIGZAG ? 2 : 1;
    if (Sl % np != 0)
        return ring_fail(ATTN_ERR_SHAPE, "%s: in->seq_q = %lld local rows: the zigzag layout needs an even count", fn,
                         (long long)Sl);
    if (Sl > 0 && (int64_t)R->N > ((int64_t)1 << 40) / Sl)
        return ring_fail(ATTN_ERR_SHAPE, "%s: global S = %d x %lld is too long", fn, R->N, (long long)Sl);
    if (in->positions || in->batch * Sl == 0) return ATTN_OK;
    const int64_t S = Sl * R->N;
    if (in->pos_offset < 0 || in->pos_offset > (int64_t)INT32_MAX - S)
        return ring_fail(ATTN_ERR_OPTION, "%s: in->pos_offset = %lld: the global positions pos_offset .. "
                         "pos_offset + S - 1 (S = %lld) must be in [0, 2^31)", fn, (long long)in->pos_offset,
                         (long long)S);
    const size_t n = (size_t)(in->batch * Sl);
    if (n > R->pos_n) {
        int32_t *p = realloc(R->pos, n * sizeof *p);
        if (!p) return ring_fail(ATTN_ERR_NOMEM, "%s: positions (%zu)", fn, n);
        R->pos = p;
        R->pos_n = n;
    }
    for (int64_t b = 0; b < in->batch; b++)
        for (int64_t l = 0; l < Sl; l++)
            R->pos[b * Sl + l] = (int32_t)(in->pos_offset + global_token(R, Sl / np, l));
    return ATTN_OK;
}

/* The layer's call (status st of this rank) agreed: a failure anywhere is returned everywhere. */
static attn_status mha_agreed(attn_mpi_ring *R, const char *fn, attn_status st) {
    char own[512] = "";
    if (st != ATTN_OK) {
        if (strncmp(attn_mpi_last_error(), "attn_mpi_ring", 13) != 0)
            ring_fail(st, "%s: %s", fn, attn_last_error()); /* the layer's own message (not the ring's) */
        snprintf(own, sizeof own, "%s", attn_mpi_last_error());
    }
    attn_status v = ring_verdict(R, fn, st, "failed");
    if (st != ATTN_OK) return ring_fail(st, "%s", own); /* a rank that failed itself keeps its message */
    return v;
}

attn_status attn_mpi_mha_forward(attn_mpi_ring *R, attn_mha *m, const attn_mha_input *in, float *y) {
    static const char fn[] = "attn_mpi_mha_forward";
    if (!R) return ring_fail(ATTN_ERR_NULL, "%s: ring is NULL", fn);
    ring_fail(ATTN_OK, "%s", "");
    attn_status st = ring_verdict(R, fn, mha_local_check(R, fn, m, in, y), "refused its arguments");
    if (st) return st;
    attn_mha_input in2 = *in;
    if (!in->positions && in->batch * in->seq_q > 0) in2.positions = R->pos;
    st = attn_mha_set_attention(m, ring_attn_fwd, ring_attn_bwd, R);
    if (st == ATTN_OK) st = attn_mha_forward(m, &in2, y);
    return mha_agreed(R, fn, st);
}

attn_status attn_mpi_mha_backward(attn_mpi_ring *R, attn_mha *m, const float *dy, float *dx) {
    static const char fn[] = "attn_mpi_mha_backward";
    if (!R) return ring_fail(ATTN_ERR_NULL, "%s: ring is NULL", fn);
    ring_fail(ATTN_OK, "%s", "");
    attn_status st = !m ? ring_fail(ATTN_ERR_NULL, "%s: m is NULL", fn)
                        : !dy ? ring_fail(ATTN_ERR_NULL, "%s: dy is NULL", fn) : ATTN_OK;
    if ((st = ring_verdict(R, fn, st, "refused its arguments")) != ATTN_OK) return st;
    return mha_agreed(R, fn, attn_mha_backward(m, dy, dx, NULL, NULL));
}

attn_status attn_mpi_grad_allreduce(attn_mpi_ring *R, const attn_param *params, int64_t n, float scale) {
    static const char fn[] = "attn_mpi_grad_allreduce";
    if (!R) return ring_fail(ATTN_ERR_NULL, "%s: ring is NULL", fn);
    attn_status st = ATTN_OK;
    int64_t total = 0;
    if (n < 0 || (n > 0 && !params)) st = ring_fail(ATTN_ERR_NULL, "%s: params is NULL or n = %lld < 0", fn, (long long)n);
    for (int64_t i = 0; i < n && st == ATTN_OK; i++) {
        if (!params[i].trainable) continue;
        if (params[i].numel < 0 || (params[i].numel > 0 && !params[i].grad))
            st = ring_fail(ATTN_ERR_NULL, "%s: params[%lld] (%s): grad is NULL", fn, (long long)i,
                           params[i].name ? params[i].name : "?");
        else total += params[i].numel;
    }
    if (st == ATTN_OK && total > INT32_MAX)
        st = ring_fail(ATTN_ERR_UNSUPPORTED, "%s: %lld gradient floats, more than one MPI_Allreduce carries (2^31 - 1)",
                       fn, (long long)total);
    if (st == ATTN_OK && (size_t)total > R->gbuf_n) {
        float *p = realloc(R->gbuf, (size_t)total * sizeof *p);
        if (!p) st = ring_fail(ATTN_ERR_NOMEM, "%s: %lld floats of packed gradients", fn, (long long)total);
        else { R->gbuf = p; R->gbuf_n = (size_t)total; }
    }
    if ((st = ring_verdict(R, fn, st, "refused its arguments")) != ATTN_OK) return st;
    int64_t cnt[2] = {total, -total}, red[2];
    MPI_Allreduce(cnt, red, 2, MPI_INT64_T, MPI_MAX, R->comm);
    if (red[0] != -red[1])
        return ring_fail(ATTN_ERR_SHAPE, "%s: ranks disagree on the trainable gradient size (this rank %lld, min %lld, "
                         "max %lld floats)", fn, (long long)total, (long long)-red[1], (long long)red[0]);
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        if (params[i].trainable && params[i].numel > 0) {
            memcpy(R->gbuf + at, params[i].grad, (size_t)params[i].numel * sizeof(float));
            at += params[i].numel;
        }
    /* reduce to rank 0, then broadcast: the same bits on every rank (an allreduce need not guarantee that) */
    if (total > 0) {
        MPI_Reduce(R->rank == 0 ? MPI_IN_PLACE : R->gbuf, R->rank == 0 ? R->gbuf : NULL, (int)total, MPI_FLOAT,
                   MPI_SUM, 0, R->comm);
        MPI_Bcast(R->gbuf, (int)total, MPI_FLOAT, 0, R->comm);
    }
    at = 0;
    for (int64_t i = 0; i < n; i++)
        if (params[i].trainable && params[i].numel > 0) {
            for (int64_t j = 0; j < params[i].numel; j++) params[i].grad[j] = scale * R->gbuf[at + j];
            at += params[i].numel;
        }
    return ATTN_OK;
}
