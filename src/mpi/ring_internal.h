/* SPDX-License-Identifier: MIT */
/* ring_internal.h — shared state of libattn_mpi (not installed).
 *
 * Legend: N ranks, r this rank, np pieces per rank (1 contiguous, 2 zigzag),
 * c tokens per piece, S = N np c global tokens, B batch, Hq / Hkv heads,
 * D / Dv head dims. A "piece" is one contiguous run of c global tokens; rank
 * r's piece p is global chunk chunk_of(r, p) (positions chunk * c ..).
 *
 * Ring step u = 0 .. N-1: rank r holds the K/V pieces of owner (r - u) mod N
 * (its own at u = 0). Owner o's piece kp is needed by the ranks whose query
 * pieces see some of its keys; `last[o][kp]` is the last step u at which rank
 * (o + u) mod N needs it (-1: nobody). The piece travels o -> o+1 -> ... only
 * up to step last, so it is received at step u iff 1 <= u <= last (sender and
 * receiver compute the same table: no message is ever unmatched).
 *
 * Uses only the public attn.h API (never the library's internals). */
#ifndef ATTN_MPI_RING_INTERNAL_H
#define ATTN_MPI_RING_INTERNAL_H

#include "attn_mpi.h"

#include <stddef.h>
#include <stdint.h>

struct attn_mpi_ring {
    MPI_Comm comm;       /* duplicate of the caller's */
    int N, rank, layout;
    double link_bps;     /* simulated link bandwidth, 0 = off */
    attn_mpi_stats stats;
    void *mem;           /* grow-only arena of the call's buffers */
    size_t mem_bytes;
    int32_t *pos;        /* ring_mha.c: (B, S/N) global positions of the layer's local rows (grow-only) */
    size_t pos_n;
    float *gbuf;         /* ring_mha.c: packed gradients of attn_mpi_grad_allreduce (grow-only) */
    size_t gbuf_n;
};

/* Resolved problem of one call (same on every rank after the agreement). */
typedef struct ring_prob {
    const char *fn;
    int N, r, np;
    int64_t B, S, c, Hq, Hkv, D, Dv;
    int64_t g;                  /* global position shift: p(i) = i + g */
    int causal;
    int64_t wl, wr;             /* -1 = unlimited */
    const int32_t *key_lens;    /* (B) global, or NULL */
    attn_sdpa_opts pair;        /* options of one (query piece, key piece) call, before the per-pair fields */
    int8_t *need;               /* (N, np, N, np): rank's query piece sees owner's key piece */
    int *last;                  /* (N, np): last step owner's piece is needed */
    int32_t *kl_pair;           /* (B) key_lens of the current pair */
} ring_prob;

/* Global chunk index of piece p of rank r, and its first token. */
static inline int64_t ring_chunk(const ring_prob *P, int r, int p) {
    return p == 0 ? r : 2 * (int64_t)P->N - 1 - r;
}
static inline int64_t ring_start(const ring_prob *P, int r, int p) { return ring_chunk(P, r, p) * P->c; }
static inline int ring_need(const ring_prob *P, int qr, int qp, int o, int kp) {
    return P->need[(((int64_t)qr * P->np + qp) * P->N + o) * P->np + kp];
}

/* ring.c: errors */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
attn_status ring_fail(attn_status st, const char *fmt, ...);
double ring_now(void);

/* Arguments of one call, as the caller gave them. */
typedef struct ring_args {
    const attn_sdpa_dims *dims;
    const attn_sdpa_opts *opts;
    attn_view q, k, v, o, dO, dq, dk, dv;
    const float *lse;   /* as checked (fwd: the output, bwd: the input) */
    int bwd;
    float *lse_out;     /* fwd only */
} ring_args;

/* The caller's options as a complete struct of this header's layout (an
 * older caller's shorter struct gets the defaults past its struct_size;
 * a longer one is passed through: the library's checks refuse it). */
const attn_sdpa_opts *ring_opts_full(const attn_sdpa_opts *in, attn_sdpa_opts *buf);

/* ring_check.c: this rank's arguments (local, no communication), then the
 * agreement of all ranks (collective: one MPI_Allreduce). ring_agree takes
 * this rank's status so far and returns the common verdict. */
attn_status ring_validate_local(const attn_mpi_ring *R, const char *fn, const ring_args *a);
attn_status ring_agree(attn_mpi_ring *R, const char *fn, const ring_args *a, attn_status local);
/* A call's set-up: resets the figures, validates locally, resolves P,
 * reserves bytes(P) of arena (*ws: the kernel workspace part), then agrees
 * (collective). On ATTN_OK, P is valid on every rank. */
typedef size_t (*ring_bytes_fn)(ring_prob *P, size_t *ws);
attn_status ring_open(attn_mpi_ring *R, const char *fn, const ring_args *a, ring_prob *P, ring_bytes_fn bytes,
                      size_t *ws);
/* After the ring: a failure on any rank (not expected once the arguments
 * agreed) is returned on every rank (collective). */
attn_status ring_finish(attn_mpi_ring *R, const char *fn, attn_status local);
/* The common verdict of every rank's status (collective): ATTN_OK if all are;
 * else the lowest failing rank keeps its status and message, the others
 * return that status with "fn: rank X of N <what> (status)". */
attn_status ring_verdict(attn_mpi_ring *R, const char *fn, attn_status local, const char *what);

/* ring_plan.c: the resolved problem (from validated arguments), the bytes of
 * its tables, the tables themselves (placed at *mem, which advances), and
 * the grow-only arena. */
void ring_resolve(const attn_mpi_ring *R, const char *fn, const ring_args *a, ring_prob *P);
size_t ring_table_bytes(const ring_prob *P);
void ring_tables(ring_prob *P, unsigned char **mem);
attn_status ring_reserve(attn_mpi_ring *R, const char *fn, size_t bytes);
/* Options of the pair (query piece qp of this rank, key piece kp of owner o). */
const attn_sdpa_opts *ring_pair_opts(ring_prob *P, int qp, int o, int kp);
/* Arena carving: n floats, 64-byte aligned; ring_fl(n) its size in bytes. */
size_t ring_fl(int64_t n);
float *ring_take(unsigned char **mem, int64_t n);

/* ring_comm.c: one ring step's transfers (non-blocking, waited together). */
#define RING_MAX_REQ 64 /* 8 messages per step at most, each <= 8 requests (checked in ring_check.c) */
typedef struct ring_step {
    MPI_Request req[RING_MAX_REQ];
    int nreq;
    double t_post;
    int64_t sent, recv;  /* bytes this step */
    int timed;           /* counted in stats.comm_s (0: a transfer posted long before it is due) */
} ring_step;
void ring_step_begin(ring_step *s);
void ring_step_send(attn_mpi_ring *R, ring_step *s, const float *buf, int64_t n, int dest, int tag);
void ring_step_recv(attn_mpi_ring *R, ring_step *s, float *buf, int64_t n, int src, int tag);
void ring_step_progress(ring_step *s); /* MPI_Testall: lets the transfers advance during compute */
void ring_step_wait(attn_mpi_ring *R, ring_step *s);

/* Copy rows [row0, row0 + c) of a (B, *, H, Dh) view to / from a contiguous
 * (B, c, H, Dh) buffer; add_rows: view += buffer. */
void ring_pack_rows(attn_view v, int64_t row0, int64_t B, int64_t c, int64_t H, int64_t Dh, float *dst);
void ring_unpack_rows(const float *src, int64_t B, int64_t c, int64_t H, int64_t Dh, attn_view v, int64_t row0);
void ring_add_rows(const float *src, int64_t B, int64_t c, int64_t H, int64_t Dh, attn_view v, int64_t row0);
static inline attn_view ring_rows(attn_view v, int64_t row0) {
    v.data += row0 * v.stride_s;
    return v;
}

#endif
