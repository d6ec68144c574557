/* SPDX-License-Identifier: MIT */
/*
 * attn_mpi.h — sequence-parallel ring attention over MPI (libattn_mpi).
 *
 * A sequence too long for one machine is cut along the sequence across the
 * ranks of a communicator; each rank holds its shard of q, k, v, o (and of
 * the gradients). Attention over the whole sequence is computed exactly:
 * K/V blocks travel around the ring (rank r receives from r-1 and sends to
 * r+1) with non-blocking transfers posted before the compute they overlap,
 * partial results are combined with attn_sdpa_merge, and the backward runs
 * the key-block backward documented in attn.h (attn_sdpa_bwd with bwd_fast
 * and the global o, lse) per block, each block's dK / dV accumulator
 * travelling with it and finally back to its owner.
 * Built on the public attn.h API only.
 *
 * ─── Layout of the shards ──────────────────────────────────────────────────
 * Global problem: B sequences of S tokens (self-attention: queries and keys
 * are the same tokens). With N ranks:
 *  - ATTN_MPI_CONTIGUOUS: S = N c; rank r holds tokens [r c, (r+1) c).
 *  - ATTN_MPI_ZIGZAG: S = 2 N c; rank r holds chunks r and 2N-1-r of length c,
 *    i.e. tokens [r c, (r+1) c) then [(2N-1-r) c, (2N-r) c), in that order
 *    (causal load balance: every rank gets the same amount of visible work).
 * Each rank's tensors are its S/N local rows, in the order above:
 *    q (B, S/N, Hq, D)   k (B, S/N, Hkv, D)   v (B, S/N, Hkv, Dv)
 *    o (B, S/N, Hq, Dv)  lse (B, Hq, S/N) contiguous
 * `dims` describes the GLOBAL problem and is the same on every rank:
 * seq_q = seq_k = S (the views hold S/N rows).
 *
 * ─── Options ───────────────────────────────────────────────────────────────
 * attn_sdpa_opts with GLOBAL meaning (same on every rank): scale, causal,
 * align, window_left / window_right, key_lens (B) (valid global keys per
 * sequence: right padding), alibi_slopes, softcap, q_pos_offset,
 * num_threads. Not supported over the ring (ATTN_ERR_UNSUPPORTED):
 * explicit masks, varlen (cu_seqlens), dropout, and bottom-right alignment
 * together with key_lens (its shift would differ per sequence). The
 * backward's numerics are those of bwd_fast (attn.h).
 * A block that the causal mask, the window or the key padding makes
 * invisible to every query of a rank is not computed, and it is not sent
 * to a rank that does not need it nor has a downstream rank that does.
 *
 * ─── Errors ────────────────────────────────────────────────────────────────
 * Every call is collective over the ring's communicator. Before any
 * transfer, all ranks agree (one MPI_Allreduce): if any rank's arguments are
 * invalid, or the ranks disagree on dims / options, or S does not split
 * over the communicator, EVERY rank returns an error (never a hang, never a
 * partial result): the failing rank its own status and message, the others
 * the same status with a message naming that rank. Messages: attn_mpi_last_error().
 * Outputs are written only after the agreement.
 *
 * ─── Determinism ───────────────────────────────────────────────────────────
 * Partial results are merged and gradients summed in a fixed order (ring
 * step, then piece), independent of timing and threads: the same inputs on
 * the same N give the same bits. Different N round differently (within the
 * fp32 accuracy contract of attn.h).
 */
#ifndef ATTN_MPI_H
#define ATTN_MPI_H

#include "attn.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_mpi_layout {
    ATTN_MPI_CONTIGUOUS = 0,
    ATTN_MPI_ZIGZAG = 1
} attn_mpi_layout;

/* A ring: the duplicated communicator and grow-only buffers. Calls on one
 * ring must not overlap (one thread at a time); the kernels' own threads
 * never call MPI, so MPI_THREAD_FUNNELED suffices. */
typedef struct attn_mpi_ring attn_mpi_ring;

/* Collective over comm (duplicated: the ring's messages never meet the
 * caller's). layout: attn_mpi_layout. */
ATTN_API attn_status attn_mpi_ring_create(attn_mpi_ring **out, MPI_Comm comm, int layout);
/* Collective. NULL is a no-op. */
ATTN_API void attn_mpi_ring_free(attn_mpi_ring *ring);

/* Testing / benchmarks: simulate a slow link. Each ring step's transfers
 * complete no earlier than (bytes of the step's largest direction) /
 * bytes_per_second after they were posted, as on a link of that bandwidth;
 * compute proceeds meanwhile. 0 = off (default). */
ATTN_API attn_status attn_mpi_ring_set_link_bandwidth(attn_mpi_ring *ring, double bytes_per_second);

/* Figures of this rank's last call. */
typedef struct attn_mpi_stats {
    double total_s;        /* wall time of the call */
    double compute_s;      /* in attention kernels, merges, packing */
    double wait_s;         /* blocked on transfers (incl. a simulated link) */
    double comm_s;         /* sum over ring steps of the time the step's transfers took (post to completion;
                              with a simulated link at least bytes / bandwidth) */
    int64_t bytes_sent, bytes_recv;
    int64_t blocks_computed; /* (query piece, key piece) kernel calls */
    int64_t blocks_skipped;  /* pairs invisible under the mask */
    int64_t sends_skipped;   /* pieces not sent: no rank downstream needs them */
    int steps;
    double link_wait_s;    /* simulated link only: the part of wait_s before the link's own deadlines (the
                              rest is waiting for a late neighbour); 0 without it */
} attn_mpi_stats;
ATTN_API attn_status attn_mpi_ring_stats(const attn_mpi_ring *ring, attn_mpi_stats *out);

/* Forward. Shards as described above; o, lse overwritten (lse may be NULL). */
ATTN_API attn_status attn_mpi_ring_fwd(attn_mpi_ring *ring, const attn_sdpa_dims *dims, attn_view q, attn_view k,
                                       attn_view v, attn_view o, float *lse, const attn_sdpa_opts *opts);

/* Backward. o and lse: this rank's shards of the ring forward's output.
 * dq (B, S/N, Hq, D), dk (B, S/N, Hkv, D), dv (B, S/N, Hkv, Dv) overwritten:
 * the gradients of this rank's tokens (dk / dv summed over every rank's
 * queries). */
ATTN_API attn_status attn_mpi_ring_bwd(attn_mpi_ring *ring, const attn_sdpa_dims *dims, attn_view q, attn_view k,
                                       attn_view v, attn_view o, attn_view dO, const float *lse, attn_view dq,
                                       attn_view dk, attn_view dv, const attn_sdpa_opts *opts);

/* ─── The layer over the ring (attn_mha with the sequence sharded) ─────────
 * Every rank holds the same layer (same config and weights: create and
 * initialise it identically, or load the same file) and passes its shard of
 * the tokens: in->x (B, S/N, E) in in->layout, rows in the local order of the
 * ring's layout (above), in->seq_q = S/N. The projections, LoRA, bias,
 * qk-norm, RoPE and the output projection run locally on the S/N rows; the
 * attention over the whole sequence runs on the ring (attn_mha_set_attention:
 * the layer keeps the ring as its attention backend afterwards;
 * attn_mha_set_attention(m, NULL, NULL, NULL) restores the kernels).
 * RoPE positions are GLOBAL: in->positions NULL means in->pos_offset + the
 * token's global index; given, (B, S/N) the global positions of the local
 * rows. Self-attention only; no key_padding_mask, no explicit mask
 * (ATTN_ERR_UNSUPPORTED on every rank); dropout is refused by the ring.
 * in from attn_mha_input_init() of this attn.h (struct_size = its sizeof).
 * Collective, with the ring's error agreement: arguments one rank refuses
 * make every rank return an error. y (B, S/N, E) overwritten. */
ATTN_API attn_status attn_mpi_mha_forward(attn_mpi_ring *ring, attn_mha *m, const attn_mha_input *in, float *y);
/* Backward of the last training-mode attn_mpi_mha_forward (collective).
 * dy, dx (B, S/N, E) this rank's rows; dx may be NULL. Parameter gradients
 * accumulate (+=) this rank's share: the gradient of the sum over ranks of
 * their tokens' losses is their sum, attn_mpi_grad_allreduce. */
ATTN_API attn_status attn_mpi_mha_backward(attn_mpi_ring *ring, attn_mha *m, const float *dy, float *dx);
/* Sums the gradients of the trainable parameters over the ring's ranks, in
 * place, then multiplies them by scale (e.g. 1/N for a mean over ranks):
 * grad = scale * sum_ranks grad. All n tensors packed into one reduction to
 * rank 0 and one broadcast (the same bits on every rank, deterministic for a
 * given N).
 * Every rank must pass the same list (same count and sizes: agreed first,
 * an error everywhere otherwise). Collective. */
ATTN_API attn_status attn_mpi_grad_allreduce(attn_mpi_ring *ring, const attn_param *params, int64_t n, float scale);

/* Message of the last attn_mpi_* failure on the calling thread ("" if none). */
ATTN_API const char *attn_mpi_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* ATTN_MPI_H */
