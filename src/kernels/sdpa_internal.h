/* SPDX-License-Identifier: MIT */
/* sdpa_internal.h — shared state of the fused sdpa kernels (not installed).
 *
 * Legend: B batch (sequences), Sq/Sk query/key length, Hq/Hkv heads, G = Hq/Hkv
 * query heads per kv head, D q/k head dim, Dv v head dim.
 *
 * Orientation. Score tiles are kept TRANSPOSED: St (nc, Mp) [key c][row m], so
 *   - St = K_tile (nc, D) . Qt (D, Mp): K rows are read straight from the
 *     caller's tensor (broadcast operand), only the query block is packed
 *     (transposed, once per block);
 *   - softmax statistics (max, sum) are vertical vector ops across m;
 *   - O (M, Dv) += St^T . V_tile, dV += P . dO, dK += dS . Q, dQ += dS^T . K
 *     are all "broadcast one operand, stream row vectors of the other".
 * Row m of a block = (position r, head g) with m = r * ng + g: the G query
 * heads of a kv group share every K/V tile (GQA packing).
 *
 * Position model (attn.h): p(i) = i + shift; key j visible iff
 * lo(i) <= j < hi(i) and the explicit mask allows it. lo and hi are
 * non-decreasing in i, which gives cheap tile classification.
 */
#ifndef ATTN_SDPA_INTERNAL_H
#define ATTN_SDPA_INTERNAL_H

#include "core/core.h"
#include "kernels/dispatch.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Validated, resolved problem (views as given by the caller). */
typedef struct attn__sdpa_prob {
    int64_t B, Sq, Sk, Hq, Hkv, G, D, Dv;
    int varlen;                     /* cu_seqlens given */
    const int32_t *cu_q, *cu_k;     /* (B+1) each, or NULL */
    const int32_t *key_lens;        /* (B) or NULL */
    float scale;                    /* resolved (1/sqrt(D) if 0) */
    float softcap;                  /* 0 = off */
    int causal, align;
    int64_t qpos;                   /* opts->q_pos_offset, added to p(i) */
    int64_t wl, wr;                 /* -1 = unlimited (clamped so no overflow) */
    const float *alibi;             /* (Hq) or NULL */
    int mask_kind;
    const void *mask;
    int64_t msb, msh, msq;          /* mask strides (elements) */
    float dropout_p, drop_scale;    /* drop_scale = 1 / (1 - p) */
    uint32_t drop_thr;
    uint64_t seed;
    int has_elem;                   /* softcap / alibi / explicit mask: per-element work in every tile */
    int bwd_fast;                   /* backward without the row-statistics pass (attn_sdpa_opts) */
    attn_view q, k, v, o, dO, dq, dk, dv; /* fp32 views, except (fwd) o of type ot and, in the
                                             bf16 fast path, q, k, v and (bwd) dO (.data then a uint16_t *) */
    attn_dtype ot;                  /* fwd: element type of o (rows converted as written) */
    int bf16;                       /* the bf16 fast path (attn_sdpa_fwd_typed / _bwd_typed) */
    float *lse_out;                 /* fwd: (B, Hq, Sq) / varlen (Hq, Tq), or NULL */
    const float *lse_in;            /* bwd */
    float *row_stats;               /* opts->row_stats: (nlse, 2) [lse low part, largest probability]
                                       written by fwd (with lse), read by bwd; or NULL */
} attn__sdpa_prob;

/* One sequence b of the batch. */
typedef struct attn__sdpa_seq {
    int64_t b;
    int64_t q0, k0;   /* first packed row (varlen), else 0 */
    int64_t sq, sk;   /* query rows / keys of this sequence in the views */
    int64_t kl;       /* valid keys (key_lens[b] or sk) */
    int64_t shift;    /* p(i) = i + shift */
    int64_t qoff_b, koff_b, voff_b; /* element offset of the batch entry in q/o, k, v */
} attn__sdpa_seq;

static inline void attn__sdpa_seq_get(const attn__sdpa_prob *P, int64_t b, attn__sdpa_seq *s) {
    s->b = b;
    if (P->varlen) {
        s->q0 = P->cu_q[b];
        s->k0 = P->cu_k[b];
        s->sq = (int64_t)P->cu_q[b + 1] - P->cu_q[b];
        s->sk = (int64_t)P->cu_k[b + 1] - P->cu_k[b];
    } else {
        s->q0 = s->k0 = 0;
        s->sq = P->Sq;
        s->sk = P->Sk;
    }
    s->kl = P->key_lens ? P->key_lens[b] : s->sk;
    s->shift = (P->align == ATTN_ALIGN_BOTTOM_RIGHT ? s->kl - s->sq : 0) + P->qpos;
    s->qoff_b = P->varlen ? 0 : b; /* multiplied by the view's stride_b at use */
    s->koff_b = s->voff_b = s->qoff_b;
}

/* Element offset of (b, row i of sequence, head h, 0) in a view. */
static inline int64_t attn__sdpa_off(attn_view v, const attn__sdpa_seq *s, int64_t row0, int64_t i, int64_t h) {
    return s->qoff_b * v.stride_b + (row0 + i) * v.stride_s + h * v.stride_h;
}
/* Pointer to element (b, row i of sequence, head h, 0) of an fp32 view. */
static inline float *attn__sdpa_at(attn_view v, const attn__sdpa_seq *s, int64_t row0, int64_t i, int64_t h) {
    return v.data + attn__sdpa_off(v, s, row0, i, h);
}
/* The same in a view of 16-bit elements (.data a uint16_t *). */
static inline uint16_t *attn__sdpa_at16(attn_view v, const attn__sdpa_seq *s, int64_t row0, int64_t i, int64_t h) {
    return (uint16_t *)(void *)v.data + attn__sdpa_off(v, s, row0, i, h);
}

/* lse index of (sequence, head h, row i). */
static inline int64_t attn__sdpa_lse_idx(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t h, int64_t i) {
    return P->varlen ? h * P->Sq + s->q0 + i : (s->b * P->Hq + h) * P->Sq + i;
}

/* Visible key interval [lo, hi) of row i (before the explicit mask). */
static inline void attn__sdpa_row_range(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t i, int64_t *lo,
                                        int64_t *hi) {
    int64_t p = i + s->shift;
    int64_t a = 0, e = s->kl;
    if (P->causal && p + 1 < e) e = p + 1;
    if (P->wr >= 0 && p + P->wr + 1 < e) e = p + P->wr + 1;
    if (P->wl >= 0 && p - P->wl > a) a = p - P->wl;
    if (a > s->kl) a = s->kl;
    if (e < a) e = a;
    *lo = a;
    *hi = e;
}

/* Execution plan: tiling and task split. Depends only on the shape and
 * options (never on the data or the thread count, except the number of
 * per-thread workspace areas). */
typedef struct attn__sdpa_plan {
    int64_t Gs, nhc;   /* heads per block, head chunks per kv group */
    int64_t Br;        /* query positions per block */
    int64_t Mmax, Mp;  /* rows per block (Gs * Br), padded to 16 */
    int64_t Bc;        /* keys per tile */
    int64_t KT;        /* bwd: key tiles per packed query block */
    int64_t Dp, Dvp;   /* D, Dv padded to 16 */
    int64_t nqb;       /* q blocks per sequence (non-varlen) */
    int64_t ntasks0;   /* fwd: (b, q block, kv head, head chunk) tasks; varlen: upper bound */
    int64_t nsplit;    /* fwd: key splits per task (flash-decoding), 1 = none */
    int64_t nchunks;   /* bwd: key chunks per (b, kv head) */
    int nthreads;      /* per-thread areas in the workspace */
    size_t thread_bytes; /* bytes of one per-thread area (multiple of 64) */
    size_t global_bytes; /* shared area (partials, task tables) */
} attn__sdpa_plan;

/* Software prefetch of nr rows of n floats, row stride ld. K/V rows of one
 * head are usually a page apart (BSHD: stride Hkv*D floats), where hardware
 * prefetchers stop; decoding (few query rows per key) is bound by this
 * latency, so the drivers prefetch the next key tile while computing one. */
static inline void attn__prefetch_rows(const float *p, int64_t ld, int64_t nr, int64_t n) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t e = 0; e < n; e += 16) __builtin_prefetch(p + r * ld + e, 0, 3);
}

/* The same for rows of 16-bit elements (ld, n in elements). */
static inline void attn__prefetch_rows16(const uint16_t *p, int64_t ld, int64_t nr, int64_t n) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t e = 0; e < n; e += 32) __builtin_prefetch(p + r * ld + e, 0, 3);
}

/* Software prefetch of a contiguous span of n floats (dense K/V rows, e.g. a
 * head-major KV cache) towards L2 (prefetcht1: L1 keeps the tile being
 * computed), 4 lines per loop step. */
static inline void attn__prefetch_span(const float *p, int64_t n) {
    const char *a = (const char *)p, *e = (const char *)(p + n);
    for (; a + 256 <= e; a += 256) {
        __builtin_prefetch(a, 0, 2);
        __builtin_prefetch(a + 64, 0, 2);
        __builtin_prefetch(a + 128, 0, 2);
        __builtin_prefetch(a + 192, 0, 2);
    }
    for (; a < e; a += 64) __builtin_prefetch(a, 0, 2);
}

/* Forward blocks of at most this many rows (heads x positions: decoding)
 * compute scores as dot products along D (gemm_abt) from packed query rows
 * instead of broadcasting K against the 16-column transposed query block. */
#define ATTN__SDPA_DOT_ROWS 8


/* Logits are scale * <q, k>, the product rounded once after the dot product
 * (as a naive implementation does; folding scale into q would add a rounding
 * per element). Tiles that need per-element work (masks inside the tile,
 * softcap, ALiBi, an explicit mask) scale first with this; the others pass
 * scale to softmax_tile / bwd_probs, which apply the same multiply in
 * registers. Forward, backward and the backward's row pass make the same
 * choice per tile, so they see the same bits. St (n floats) *= scale. */
static inline void attn__sdpa_scale_tile(float *St, int64_t n, float scale) {
    if (scale == 1.0f) return;
    for (int64_t x = 0; x < n; x++) St[x] *= scale;
}

/* Per-thread workspace areas are carved by one function per driver
 * (fwd_bufs_get, bwd_bufs_get): consecutive 64-byte-aligned buffers; with a
 * NULL base it only counts, which is how the plan learns thread_bytes (the
 * layout is written once). */
typedef struct attn__carver {
    unsigned char *base; /* NULL: count only */
    size_t off;
} attn__carver;
static inline void *attn__carve(attn__carver *c, size_t bytes) {
    void *p = c->base ? c->base + c->off : NULL;
    c->off += attn__round_up(bytes);
    return p;
}

/* Elements of lse: (B, Hq, Sq), varlen (Hq, Tq). */
static inline int64_t attn__sdpa_nlse(const attn__sdpa_prob *P) {
    return P->varlen ? P->Hq * P->Sq : P->B * P->Hq * P->Sq;
}

static inline int64_t attn__ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t attn__round16(int64_t a) { return (a + 15) & ~(int64_t)15; }

/* Bound on the plan's task counts (varlen: Hq * (query blocks + B) <=
 * Hq * (Sq + B)), also when B or Sq is 0 and no tensor size limits them:
 * 1 if Hq * (Sq + B) <= 2^61 (B, Sq, Hq >= 0). */
static inline int attn__sdpa_tasks_bounded(int64_t B, int64_t Sq, int64_t Hq) {
    int64_t n;
    return !__builtin_add_overflow(Sq, B, &n) && !__builtin_mul_overflow(n, Hq, &n) && n <= ((int64_t)1 << 61);
}

/* sdpa_validate.c */
attn_status attn__sdpa_validate(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, int bwd,
                                attn_view q, attn_view k, attn_view v, attn_view o, attn_view dO,
                                const float *lse, attn_view dq, attn_view dk, attn_view dv);
/* The same on typed views t = {q, k, v, o, dO, dq, dk, dv} (fwd: the last
 * four unused); dtypes F32 / BF16 / F16, element sizes taken from them. */
attn_status attn__sdpa_validate_t(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, int bwd,
                                  const attn_tview *t, const float *lse);
/* attn_sdpa_merge's arguments (n <= ATTN__SDPA_MERGE_MAX parts). */
#define ATTN__SDPA_MERGE_MAX 256
attn_status attn__sdpa_merge_validate(const char *fn, int64_t B, int64_t Sq, int64_t Hq, int64_t Dv, int n,
                                      const attn_view *o_parts, const float *const *lse_parts, attn_view o,
                                      const float *lse, int num_threads);
/* Fills P from validated arguments. */
void attn__sdpa_prob_init(attn__sdpa_prob *P, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts);

/* sdpa.c */
/* The caller's options as a complete struct of this library's layout. */
attn_status attn__sdpa_opts_read(const char *fn, const attn_sdpa_opts *opts, attn_sdpa_opts *full);
/* Run validated calls (opts complete): plan, workspace (NULL allocates), kernels.
 * fwd: o of element type ot; bf16 != 0 the bf16 fast path (q, k, v and, bwd,
 * dO BF16; D even, and Dv even in the bwd). */
attn_status attn__sdpa_fwd_exec(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts,
                                attn_view q, attn_view k, attn_view v, attn_view o, attn_dtype ot, int bf16,
                                float *lse, void *workspace, size_t workspace_size);
attn_status attn__sdpa_bwd_exec(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts,
                                attn_view q, attn_view k, attn_view v, attn_view o, attn_view dO, const float *lse,
                                attn_view dq, attn_view dk, attn_view dv, int bf16, void *workspace,
                                size_t workspace_size);
/* Workspace bytes of a call (0: unusable arguments), with the bf16 fast path's buffers when bf16. */
size_t attn__sdpa_ws_size(const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, int bwd, int bf16);
void attn__sdpa_plan_make(attn__sdpa_plan *pl, const attn__sdpa_prob *P, const attn__sdpa_blocks *bk, int bwd,
                          int nthreads);

/* sdpa_elem.c */
/* Per-element logit work on a transposed tile St (nc, mp) of rows (r0.., ng heads
 * from g0) and keys j0..: interval visibility (unless full), softcap, alibi,
 * explicit mask. T (optional, bwd with softcap): receives tanh values. */
void attn__sdpa_apply_elem(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t kvh, int64_t g0, int64_t ng,
                           int64_t r0, int64_t nr, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                           int64_t mp, int full, float *St, float *T);
/* A score tile's per-element step (visibility, softcap, ALiBi, mask) as the
 * forward, the backward and its row pass all take it; returns the scale the
 * softmax / bwd_probs must still apply (P->scale, or 1 once applied). */
float attn__sdpa_tile_elem(const attn__sdpa_prob *P, const attn__sdpa_seq *s, int64_t kvh, int64_t g0, int64_t ng,
                           int64_t r0, int64_t nr, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                           int64_t mp, float *St, float *T);
/* Interval visibility only (no has_elem): -inf where row r of the block
 * (nr positions x ng heads, lo / hi its key intervals) cannot see key j0 + c;
 * scores otherwise untouched (not scaled). */
void attn__sdpa_mask_intervals(int64_t nr, int64_t ng, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                               int64_t mp, float *St);
/* The tile's rows that see any of its keys, [m0, m1) in 16-row steps (<= mp). */
void attn__sdpa_tile_rows(int64_t nr, int64_t ng, const int64_t *lo, const int64_t *hi, int64_t j0, int64_t nc,
                          int64_t mp, int64_t *m0, int64_t *m1);
/* An edge tile as a staircase (sdpa_fwd.c, sdpa_bwd.c): its keys in chunks
 * of ek, chunk x (keys [j0 + x ek, j0 + x ek + ek)) seen only by the rows
 * [ra[x], rb[x]) (tile_rows of the chunk; ra == rb: by none). ek = 0: the
 * tile is computed whole. */
typedef struct attn__sdpa_stair {
    int64_t ek;
    int64_t ra[ATTN__SDPA_BC_MAX / 16], rb[ATTN__SDPA_BC_MAX / 16];
} attn__sdpa_stair;
/* ek = edge_keys when use (an edge tile the caller can split) and
 * 16 <= edge_keys < nc, else 0; then every chunk's rows. */
void attn__sdpa_stair_make(int64_t edge_keys, int use, int64_t nr, int64_t ng, const int64_t *lo, const int64_t *hi,
                           int64_t j0, int64_t nc, int64_t mp, attn__sdpa_stair *st);
/* Zero dropped probabilities of St (nc, mp) in place and, if Pd != NULL, write
 * P * z to Pd instead (St unchanged). rowkey (M) per row m. */
void attn__sdpa_apply_dropout(const attn__sdpa_prob *P, const uint64_t *rowkey, int64_t M, int64_t j0, int64_t nc,
                              int64_t mp, float *St, float *Pd);

/* sdpa_fwd.c / sdpa_bwd.c: bytes of one thread's area (pl's tiling fields set). */
size_t attn__sdpa_fwd_thread_bytes(const attn__sdpa_prob *P, const attn__sdpa_plan *pl);
size_t attn__sdpa_bwd_thread_bytes(const attn__sdpa_prob *P, const attn__sdpa_plan *pl);
/* sdpa_fwd.c / sdpa_bwd.c: run with a prepared workspace. */
void attn__sdpa_fwd_run(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const attn__sdpa_kernels *kt,
                        unsigned char *ws);
void attn__sdpa_bwd_run(const attn__sdpa_prob *P, const attn__sdpa_plan *pl, const attn__sdpa_kernels *kt,
                        unsigned char *ws);

#endif
