/* SPDX-License-Identifier: MIT */
/* mha_internal.h — the attn_mha object, shared by the layer's source files
 * (mha.c, mha_backward.c, lora.c, params.c, kvcache.c). Not installed.
 *
 * Dimension legend: B batch, Sq query length, Skv key/value length,
 * E embed_dim, Hq query heads, Hkv key/value heads, D head_dim,
 * qd = Hq*D, kvd = Hkv*D, R = rope_dim (rotated dims per head), r LoRA rank.
 * A "row" is one token of one sequence: rows are ordered (b, s) for
 * ATTN_BATCH_FIRST and (s, b) for ATTN_SEQ_FIRST, exactly as the caller's
 * x / y are; every (rows, width) buffer below follows that order, and the
 * sdpa kernel sees it through strides (never a permute copy).
 */
#ifndef ATTN_MHA_INTERNAL_H
#define ATTN_MHA_INTERNAL_H

#include "attn.h"
#include "kernels/rope.h"
#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

enum { MHA_Q = 0, MHA_K = 1, MHA_V = 2, MHA_O = 3, MHA_NPROJ = 4 };

#define MHA_MAX_PARAMS 18 /* 4 weights + 4 biases + 2 norms + 8 LoRA */
#define MHA_ROW_CHUNK 16  /* rows per task of the elementwise passes (fixed: determinism) */

/* A grow-only scratch buffer (contents not preserved on growth). */
typedef struct mha_buf {
    void *p;
    size_t cap; /* bytes */
} mha_buf;

typedef struct mha_lora {
    int64_t rank;  /* r; 0 = no adapter on this projection */
    int64_t in;    /* input width of the projection */
    int64_t out;   /* output width */
    float scale;   /* alpha / r */
    float *A, *dA; /* (r, in) */
    float *B, *dB; /* (out, r) */
} mha_lora;

typedef struct mha_param_rec {
    char name[32];
    int wproj;         /* MHA_Q..MHA_O for a projection weight, else -1 */
    float *data, *grad; /* NULL for the weights of a 16-bit layer (and every grad there) */
    int ndim;
    int64_t shape[2];
    int64_t numel;
    int trainable;
} mha_param_rec;

/* What the last forward set up: the sdpa call (views into the object's
 * buffers) and, in training mode, everything backward needs. */
typedef struct mha_state {
    int valid;        /* 1 after a training-mode forward, until backward / next forward */
    int layout;       /* attn_layout of the rows */
    int cross;        /* 1: key given (cross-attention) */
    int value_is_key; /* cross-attention with value == NULL or value == key */
    int64_t B, Sq, Skv;
    int64_t rows_q;   /* B*Sq */
    int64_t rows_k;   /* B*Skv (self-attention: = rows_q) */
    attn_sdpa_dims dims;
    attn_sdpa_opts opts; /* mask / key_lens point into the object's buffers */
    attn_view q, k, v, o;
    /* projection buffer layout (see mha.c: proj) */
    float *qp, *kp, *vp; /* q (rows_q, qd) rows ld_q apart; k, v (rows_k, kvd) rows ld_k apart */
    int64_t ld_q, ld_k;  /* row strides (elements) */
} mha_state;

struct attn_mha {
    attn_mha_config cfg; /* resolved */
    int64_t E, Hq, Hkv, D, kdim, vdim, qd, kvd;

    /* ── parameters: one arena; gradients in a second arena at the same offsets ── */
    float *arena, *garena; /* (arena_n) each; garena NULL for a 16-bit layer (inference only) */
    size_t arena_n;
    /* ── 16-bit weights (cfg.weight_dtype BF16 / F16; attn.h "Mixed precision") ── */
    attn_dtype wdt;                 /* cfg.weight_dtype */
    int proj_k;                     /* attn__proj_kernel of the weights (kernels/proj_typed.h) */
    uint16_t *warena;               /* (warena_n): Wq | Wk | Wv (adjacent) | Wo, or NULL (fp32 layer) */
    size_t warena_n;
    uint16_t *w16[MHA_NPROJ];       /* into warena (shapes as w[] below); w[], dw[] are then NULL */
    float *w[MHA_NPROJ], *dw[MHA_NPROJ]; /* Wq (qd, E), Wk (kvd, kdim), Wv (kvd, vdim), Wo (E, qd);
                                            Wq, Wk, Wv adjacent: when kdim == vdim == E they form
                                            Wqkv (qd + 2 kvd, E) */
    float *b[MHA_NPROJ], *db[MHA_NPROJ]; /* bq (qd), bk (kvd), bv (kvd), bo (E); NULL when off */
    float *qn, *dqn, *kn, *dkn;          /* q_norm, k_norm weights (D); NULL when qk_norm off */
    float *qn_eff;                       /* (2, D): qk_norm_offset + [q_norm; k_norm] when the offset is
                                            nonzero (Gemma 3), refreshed by mha__norm_weights; else NULL */
    int base_trainable;                  /* 0 once LoRA is attached */

    /* ── LoRA ── */
    mha_lora lora[MHA_NPROJ];
    float *lora_arena; /* all A, dA, B, dB */
    int lora_which;    /* ATTN_PROJ_* bitmask, 0 = none */
    int lora_merged;   /* 1: W holds W + scale * B A (forward skips the adapter branch) */

    mha_param_rec params[MHA_MAX_PARAMS];
    int nparams;

    /* ── RoPE ── */
    int64_t rope_half; /* R / 2 (0 = no rope) */
    double *inv_freq;  /* (R/2); dynamic / longrope: recomputed by each call's tables */
    attn_rope_cfg rope_cfg; /* from cfg (its factor arrays point into m->cfg) */
    double rope_mult;  /* attention factor multiplying cos / sin (yarn, longrope), else 1 */

    int training;
    uint64_t fwd_count; /* training forwards so far (dropout seed stream) */

    /* ── scratch (grow-only) ── */
    mha_buf b_x, b_key, b_value; /* training copies: x (rows_q, E), key (rows_k, kdim), value (rows_k, vdim) */
    mha_buf b_proj;   /* self: (rows, qd + 2 kvd) [q | k | v]; cross: q (rows_q, qd) then kv (rows_k, 2 kvd) */
    mha_buf b_qhat, b_khat;   /* normalised q (rows_q, qd), k (rows_k, kvd) before weight (training + qk_norm) */
    mha_buf b_rstd_q, b_rstd_k; /* (rows_q, Hq), (rows_k, Hkv) */
    mha_buf b_pos;    /* int64 positions (max(rows_q, rows_k)) */
    mha_buf b_cos_q, b_sin_q, b_cos_k, b_sin_k; /* rope tables (rows, R/2) */
    mha_buf b_o;      /* o (rows_q, qd) */
    mha_buf b_lse;    /* (B, Hq, Sq) lse, then (B, Hq, Sq, 2) row statistics (attn_sdpa_opts.row_stats) */
    mha_buf b_xa[MHA_NPROJ]; /* LoRA x A^T (rows_p, r) */
    mha_buf b_lens;   /* int32 key_lens (B) */
    mha_buf b_mask;   /* mask owned by the object (converted padding / combined / training copy) */
    mha_buf b_ws;     /* sdpa workspace */
    mha_buf b_dproj;  /* backward: same layout as proj */
    mha_buf b_do;     /* backward: dO (rows_q, qd) */
    mha_buf b_dxa;    /* backward: LoRA d(x A^T) (rows, r) */
    mha_buf b_part;   /* backward: per-task partial sums (norm weight grads) */
    mha_buf b_cache_q;/* forward_paged: int32 seq_lens (n), then block tables (n, max_blocks) */
    mha_buf b_wpanel; /* 16-bit weights: the projection kernel's workspace (attn__proj_workspace_size) */

    mha_state st;

    /* ── attention backend (attn_mha_set_attention; NULL: the kernels) ── */
    attn_mha_attn_fwd_fn att_fwd;
    attn_mha_attn_bwd_fn att_bwd;
    void *att_user;
};

/* ── mha.c helpers shared with the other layer files ── */
void *mha__grow(mha_buf *b, size_t bytes); /* NULL on failure (or bytes == 0 with nothing held) */
attn_status mha__grow_f(mha_buf *b, int64_t n, float **out); /* n floats; ATTN_ERR_NOMEM message */
void mha__rebuild_params(attn_mha *m);

/* Row segment passes. A segment is a (rows, H*Dh) column block of a buffer
 * with row stride ld, head h of row r at base + r*ld + h*Dh. */
typedef struct mha_seg {
    float *base;
    int64_t ld;
    int64_t H, Dh;
    const float *bias;     /* (H*Dh) added first, or NULL */
    const float *norm_w;   /* (Dh) RMSNorm weight, or NULL (no norm) */
    float *xhat;           /* (rows, H*Dh) saved normalised values, or NULL */
    float *rstd;           /* (rows, H) saved, or NULL */
    float *dnorm_w;        /* backward: (Dh) accumulated, or NULL */
    const float *cos_t, *sin_t; /* (rows, R/2) rope tables, or NULL (no rope) */
} mha_seg;

/* Forward pass over rows: bias, then RMSNorm, then RoPE, per segment. */
/* Where attn_mha_load finds tensors: one file, or the shards of an index
 * (names[i] lives in st_of[i]). */
typedef struct mha_src {
    const attn_st *one;
    int64_t n;
    const char *const *names;
    const attn_st *const *st_of;
} mha_src;
const attn_st *mha__src_find(const mha_src *src, const char *name);
/* attn_mha_load over a source (m and naming unchecked). */
attn_status mha__load(attn_mha *m, const mha_src *src, const char *prefix, attn_naming naming);

/* The norm weights the rows see: m->qn / m->kn, or (qk_norm_offset + w) in
 * m->qn_eff (recomputed from the current weights). */
void mha__norm_weights(attn_mha *m, const float **qw, const float **kw);
void mha__fwd_rows(attn_mha *m, int64_t rows, mha_seg *segs, int nseg);
/* Backward pass over rows: RoPE^-1 then RMSNorm backward (dw accumulated
 * deterministically via per-task partials). May fail with NOMEM. */
attn_status mha__bwd_rows(attn_mha *m, int64_t rows, mha_seg *segs, int nseg);
/* db (N) += sum over rows of dY (rows, N) with row stride ld; deterministic. */
void mha__bias_grad(int64_t rows, int64_t N, const float *dY, int64_t ld, float *db);
/* rope tables for rows with explicit int64 positions pos (rows). */
attn_status mha__rope_tables(attn_mha *m, const int64_t *pos, int64_t rows, mha_buf *bc, mha_buf *bs,
                             float **cos_t, float **sin_t);

/* LoRA branch of projection p (if an adapter is attached and not merged):
 *   Y (rows, out) [row stride ld_y] += scale * (X (rows, in) [ld_x] A^T) B^T
 * xa (rows, r) receives X A^T (the caller keeps it for backward, or passes
 * scratch). No-op (returns ATTN_OK) without an active adapter. */
void mha__lora_fwd(attn_mha *m, int p, int64_t rows, const float *X, int64_t ld_x, float *Y, int64_t ld_y,
                   float *xa);
/* Whether projection p has an adapter whose branch runs in forward. */
static inline int mha__lora_active(const attn_mha *m, int p) { return m->lora[p].rank > 0 && !m->lora_merged; }
static inline int mha__lora_on(const attn_mha *m, int p) { return m->lora[p].rank > 0; }

/* Fills w (n) with U(-a, a) from a splitmix64 stream keyed by (seed, name). */
void mha__fill_uniform(float *w, int64_t n, double a, uint64_t seed, const char *name);
/* Y (rows, N) [row stride ldy] = X (rows, K) [ldx] W^T for the weights of projection p
 * (N, K): Wp's own shape, or with p = MHA_Q and N = qd + 2 kvd the adjacent Wqkv; with
 * p = MHA_K and N = 2 kvd the adjacent Wk | Wv. Any weight type (proj_typed.h). */
attn_status mha__proj(attn_mha *m, int p, int64_t rows, int64_t N, int64_t K, const float *X, int64_t ldx, float *Y,
                      int64_t ldy);
/* Refuses (ATTN_ERR_UNSUPPORTED, naming fn) what a 16-bit-weight layer cannot do: training. */
attn_status mha__fp32_only(const attn_mha *m, const char *fn);

/* y (rows, E) = o (rows, qd) Wo^T + bo (+ LoRA; x A^T kept in b_xa[O] when save_xa). */
attn_status mha__out_proj(attn_mha *m, int64_t rows, const float *o, float *y, int save_xa);
/* kvcache.c: proj (rows, qd + 2 kvd) = [q | k | v] of new tokens x (rows, E) after bias, qk-norm and
 * RoPE at positions pos (rows) — the incremental forwards' projection (contiguous and paged caches). */
attn_status mha__project_incremental(attn_mha *m, const float *x, int64_t rows, const int64_t *pos, float *proj);

/* mha_backend.c: the layer's attention call, by the kernels or the backend
 * set with attn_mha_set_attention (fn names the public function). ws: the
 * kernels' workspace (grown in m->b_ws). */
attn_status mha__attend_fwd(attn_mha *m, const char *fn, const attn_sdpa_dims *d, attn_view q, attn_view k,
                            attn_view v, attn_view o, float *lse, const attn_sdpa_opts *opts);
attn_status mha__attend_bwd(attn_mha *m, const char *fn, const attn_sdpa_dims *d, attn_view q, attn_view k,
                            attn_view v, attn_view o, attn_view dO, const float *lse, attn_view dq, attn_view dk,
                            attn_view dv, const attn_sdpa_opts *opts);

/* (B, S, H, D) view of a (rows, *) buffer with row stride ld whose rows are
 * ordered by layout ((b, s) or (s, b)); head h at column h*D. */
static inline attn_view mha__rows_view(float *p, int layout, int64_t B, int64_t S, int64_t ld, int64_t D) {
    attn_view v;
    v.data = p;
    v.stride_h = D;
    if (layout == ATTN_SEQ_FIRST) { v.stride_b = ld; v.stride_s = B * ld; }
    else { v.stride_s = ld; v.stride_b = S * ld; }
    return v;
}

#endif
