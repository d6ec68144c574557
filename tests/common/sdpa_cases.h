/* SPDX-License-Identifier: MIT */
/* sdpa_cases.h — shared machinery of the sdpa test suites:
 *   - strided fp32 tensor views (every layout the kernels must accept) with
 *     sentinel-filled gaps, and their float64 / contiguous fp32 copies;
 *   - a seeded random configuration generator covering every attn_sdpa_opts
 *     feature (masks with every broadcast pattern, varlen, dropout, ...);
 *   - the float64 reference run on a case, and a NAIVE fp32 implementation
 *     (one materialised score row, float softmax, float accumulation) that
 *     calibrates what "fp32-accurate" means for each case;
 *   - error metrics.
 * The fast-kernel helpers (sc_fast_*) live in sdpa_cases_fast.c so binaries
 * that only need the reference do not link against attn_sdpa_fwd/bwd.
 *
 * Conventions: logical tensors are (B, S, H, D) as in attn.h; for varlen
 * cases B = 1 and S is the packed token count. Contiguous copies are
 * (B, S, H, D) row-major, i.e. exactly what attn_ref_sdpa_* expects. */
#ifndef ATTN_SDPA_CASES_H
#define ATTN_SDPA_CASES_H

#include "attn.h"
#include "testutil.h"

#include <stddef.h>
#include <stdint.h>

/* ATTN_TEST_SCALE (default 1): multiplies config counts; CI uses 0.25 under
 * sanitizers. sc_count(n) = max(1, round(n * scale)). */
double sc_test_scale(void);
int64_t sc_count(int64_t n);
double sc_now(void); /* seconds, monotonic */

/* ─── tensors ─────────────────────────────────────────────────────────────── */
enum {
    SC_BSHD = 0,   /* contiguous (B, S, H, D) */
    SC_BHSD = 1,   /* contiguous (B, H, S, D) */
    SC_PADDED = 2, /* (B, S, H, D) order with random gaps after each head / row / batch */
    SC_PADDED_HM = 3, /* (B, H, S, D) order with random gaps */
    SC_CACHE = 4,  /* KV-cache view: (B, cap, H, D) with cap > S */
    SC_CACHE_HM = 5, /* KV-cache view: (B, H, cap, D) with cap > S */
    SC_PACKED = 6, /* slice of a packed (B, S, Hq + 2 Hkv, D) QKV buffer (set by the case builder) */
    SC_NLAYOUTS = 7
};
const char *sc_layout_name(int layout);

typedef struct sc_tensor {
    int64_t B, S, H, D; /* logical shape */
    attn_view v;        /* the view handed to the kernel */
    float *buf;         /* backing storage: v.data points inside */
    size_t nbuf;        /* floats in buf */
    int own;            /* buf is freed with the tensor */
    int layout;
} sc_tensor;

#define SC_SENTINEL_BITS 0x7FC0DEADu /* a quiet NaN with a payload: gaps and unwritten outputs */

void sc_tensor_alloc(sc_tensor *t, int64_t B, int64_t S, int64_t H, int64_t D, int layout, tu_rng *r);
void sc_tensor_free(sc_tensor *t);
int64_t sc_numel(const sc_tensor *t);
float *sc_at(const sc_tensor *t, int64_t b, int64_t s, int64_t h); /* pointer to element d = 0 */
void sc_fill_normal(sc_tensor *t, tu_rng *r, double sd);  /* logical elements only */
void sc_fill_sentinel(sc_tensor *t);                      /* the whole buffer */
int sc_gaps_intact(const sc_tensor *t);                   /* non-logical positions still hold the sentinel */
void sc_to_double(const sc_tensor *t, double *dst);       /* contiguous (B, S, H, D) */
void sc_to_float(const sc_tensor *t, float *dst);         /* contiguous (B, S, H, D) */
void sc_from_float(sc_tensor *t, const float *src);       /* contiguous -> view */

/* ─── configurations ─────────────────────────────────────────────────────── */
enum { /* feature bits (allow / force masks of sc_gen) */
    SC_F_CAUSAL = 1 << 0,
    SC_F_KEYLENS = 1 << 1,
    SC_F_WINDOW = 1 << 2,
    SC_F_ALIBI = 1 << 3,
    SC_F_SOFTCAP = 1 << 4,
    SC_F_BOOL = 1 << 5,
    SC_F_ADD = 1 << 6,
    SC_F_VARLEN = 1 << 7,
    SC_F_DROPOUT = 1 << 8,
    SC_F_GQA = 1 << 9,   /* Hq > Hkv */
    SC_F_VIEWS = 1 << 10, /* non-contiguous input / output views */
    SC_F_SCALE = 1 << 11, /* explicit (possibly negative) scale */
    SC_F_ALL = (1 << 12) - 1,
    SC_F_QPOS = 1 << 12 /* opts.q_pos_offset != 0; not in SC_F_ALL (only drawn where allowed) */
};

typedef struct sc_gen {
    const int64_t *seqs; int nseqs; /* candidate Sq / Sk (and varlen lengths) */
    const int64_t *dims; int ndims; /* candidate D / Dv */
    int64_t max_work;  /* bound on sum over sequences of Hq * Sq_b * Sk_b * (D + Dv) */
    int max_b, max_hkv, max_group;
    unsigned allow;    /* features that may be drawn */
    unsigned force;    /* features that must be on (if allowed by the shape) */
    double p_feature;  /* probability of each allowed, unforced feature (default 0.2 if 0) */
    double sd_min, sd_max; /* sd_max > 0: q and k ~ N(0, sd^2), sd log-uniform in [sd_min, sd_max] */
    double p_dv;       /* probability that Dv is drawn apart from D (default 0.25 if 0) */
    double p_shared_k; /* probability of keys k_j = c + e_j sharing a large part c (per b, head;
                          c ~ N(0, 10^2), e_j ~ N(0, 1/sd^2)): flat rows at large |lse| */
} sc_gen;

typedef struct sc_case {
    attn_sdpa_dims d;
    attn_sdpa_opts o;
    int64_t Dv, Bq;    /* Bq: logical batch of the tensors (1 for varlen) */
    int varlen;
    unsigned features; /* SC_F_* actually on */
    int layout_in, layout_out;
    sc_tensor q, k, v, dO;           /* inputs */
    sc_tensor out, dq, dk, dv;       /* outputs (views with sentinel gaps) */
    float *packed_in, *packed_out;   /* shared buffers of SC_PACKED layouts (else NULL) */
    int64_t nlse;                    /* elements of lse: Bq*Hq*Sq (non-varlen) or Hq*Tq */
    int32_t *key_lens, *cu_q, *cu_k;
    float *alibi;
    void *mask; size_t mask_elems;
    int mask_pattern;                /* 0 (B,Hq,Sq,Sk) 1 (B,1,Sq,Sk) 2 (1,1,Sq,Sk) 3 (B,1,1,Sk) 4 (1,Hq,Sq,Sk) */
    double *q64, *k64, *v64, *dO64;  /* contiguous float64 copies of the inputs */
    int64_t work;                    /* sum_b Hq * Sq_b * Sk_b * (D + Dv) */
    double sd_qk;                    /* q and k ~ N(0, sd_qk^2) */
    int shared_k;                    /* keys share a large part (sc_gen.p_shared_k) */
    float *stats;                    /* (nlse, 2) + tail: opts.row_stats of sc_fast_fwd / _bwd when
                                        sc_row_stats is set (allocated by sc_fast_fwd), else NULL */
    char desc[400];
} sc_case;

/* Draw a random case (sizes, options, data, layouts). Never fails. */
void sc_gen_case(sc_case *c, tu_rng *r, const sc_gen *g);
/* Build a case from explicit dims / opts (contiguous layouts, random data);
 * arrays referenced by opts stay owned by the caller. */
void sc_case_init(sc_case *c, const attn_sdpa_dims *d, const attn_sdpa_opts *o, tu_rng *r, double sd_qk);
void sc_case_free(sc_case *c);
void sc_case_refresh64(sc_case *c); /* recompute q64/k64/v64/dO64 from the fp32 views */
void sc_describe(sc_case *c);        /* (re)writes c->desc */

/* Is key j of sequence b visible to query row i (within the sequence) of query
 * head h? (key_lens, causal, window, bool mask, additive mask == -inf) */
int sc_visible(const sc_case *c, int64_t b, int64_t h, int64_t i, int64_t j);
/* Rows / keys of sequence b: first packed row and count (q), first packed key and count (k). */
void sc_seq_rows(const sc_case *c, int64_t b, int64_t *q0, int64_t *sq, int64_t *k0, int64_t *sk);

/* element counts of the contiguous copies */
int64_t sc_nq(const sc_case *c);  /* Bq*Sq*Hq*D */
int64_t sc_nk(const sc_case *c);  /* Bq*Sk*Hkv*D */
int64_t sc_nv(const sc_case *c);  /* Bq*Sk*Hkv*Dv */
int64_t sc_no(const sc_case *c);  /* Bq*Sq*Hq*Dv */

/* float64 reference on the case (contiguous outputs) */
attn_status sc_ref_fwd(const sc_case *c, double *o, double *lse);
attn_status sc_ref_bwd(const sc_case *c, double *dq, double *dk, double *dv);

/* Magnitude of the terms summed into each output ("condition"), in float64.
 * cond (the plain sums of |terms|):
 *   o:   max_i,d  sum_j P'_ij |v_jd|            lse: max_i |lse_i| + 1
 *   dv:  max_j,d  sum_i P'_ij |dO_id|
 *   dq:  max_i,d  |scale| sum_j P_ij (m_ij |dO_i|.|v_j| + |dO_i|.|o_i|) |k_jd|
 *   dk:  max_j,d  the same with |q_id|
 * condA (the same weighted by A_ij = |scale| sum_d |q_id k_jd| c'_ij + |s_ij| +
 * |lse_i|, with c' = 1 - tanh^2 under softcap, else 1: the rounding scale of
 * logit ij and of s - lse, i.e. the part of the error that comes from rounded
 * logits, large for peaky softmaxes):
 *   o: sum_j P'_ij |v_jd| A_ij; lse: sum_j P_ij A_ij; dq/dk/dv: as above times A_ij.
 * An fp32 computation's rounding error is a small multiple of
 * eps * (cond + condA) even when the result itself cancels to ~0 (e.g. one
 * visible key: dq = dk = 0 exactly). */
void sc_ref_cond(const sc_case *c, double cond[5], double condA[5]);

/* Naive fp32 implementation (contiguous float in/out) — the accuracy yardstick. */
void sc_naive_fwd(const sc_case *c, float *o, float *lse);
void sc_naive_bwd(const sc_case *c, const float *o, const float *lse, float *dq, float *dk, float *dv);
/* The naive backward of the naive forward (its own P and o): the independent yardstick. */
/* Nonzero: the naive functions sum every dot product over D / Dv in reverse
 * order (the same math, another equally naive rounding sequence). */
extern int sc_naive_reversed;
void sc_naive_bwd_own(const sc_case *c, float *dq, float *dk, float *dv);

/* ─── metrics ───────────────────────────────────────────────────────────── */
typedef struct sc_err {
    double max_abs;  /* max |got - ref| over finite refs (inf if a non-finite mismatch) */
    double scale;    /* max |ref| over finite refs */
    int64_t worst;   /* index of the worst element */
    int64_t bad_nonfinite; /* elements where ref is +-inf/NaN and got differs, or got NaN/inf and ref finite */
} sc_err;
sc_err sc_err_f(const double *ref, const float *got, int64_t n);
sc_err sc_err_d(const double *ref, const double *got, int64_t n);
int sc_bits_equal(const float *a, const float *b, int64_t n);

/* ─── fast kernels (sdpa_cases_fast.c) ───────────────────────────────────── */
/* lse buffers passed to sc_fast_fwd hold nlse + SC_LSE_TAIL floats (the tail
 * is a sentinel checked for stray writes). workspace modes: 0 exact size,
 * 1 NULL (the kernel allocates), 2 larger than needed. */
#define SC_LSE_TAIL 16
attn_status sc_fast_fwd(sc_case *c, float *lse, int ws_mode);
/* Nonzero: sc_fast_fwd (with lse) writes opts.row_stats into c->stats and
 * sc_fast_bwd reads them (the backward without recomputed row statistics). */
extern int sc_row_stats;
attn_status sc_fast_bwd(sc_case *c, const float *lse, int ws_mode);
/* ISAs this CPU supports, in order; returns the count. */
int sc_isas(attn_isa *out);

#endif
