/* SPDX-License-Identifier: MIT */
/* sdpa_ref.h — scalar reference of the sdpa kernels: float64 inputs, float64
 * accumulation, one thread, no workspace, straightforward loops (materialises
 * one score row at a time). The test oracle and `attn check`'s yardstick.
 *
 * Semantics are exactly those documented for attn_sdpa_fwd / attn_sdpa_bwd in
 * attn.h (every option of attn_sdpa_opts, including varlen and dropout);
 * opts->num_threads is ignored. All tensors are CONTIGUOUS:
 *   q  (B, Sq, Hq, D)    k (B, Sk, Hkv, D)    v (B, Sk, Hkv, Dv)
 *   o  (B, Sq, Hq, Dv)   lse (B, Hq, Sq)
 *   varlen (opts->cu_seqlens_q != NULL): q/o (Tq, Hq, *), k/v (Tk, Hkv, *),
 *   lse (Hq, Tq) where Tq = dims->seq_q, Tk = dims->seq_k.
 * Fully masked rows: o = 0, lse = -INFINITY, zero gradients.
 * Returns ATTN_OK, or an error status (with attn_last_error set) for
 * invalid arguments; it validates enough not to crash on bad input. */
#ifndef ATTN_SDPA_REF_H
#define ATTN_SDPA_REF_H

#include "attn.h"

attn_status attn_ref_sdpa_fwd(const attn_sdpa_dims *dims, const double *q, const double *k, const double *v,
                              double *o, double *lse, const attn_sdpa_opts *opts);

/* dO (B, Sq, Hq, Dv) in; dq, dk, dv out (overwritten), same layouts as q, k, v.
 * Recomputes everything from q, k, v (does not need o / lse). */
attn_status attn_ref_sdpa_bwd(const attn_sdpa_dims *dims, const double *q, const double *k, const double *v,
                              const double *dO, double *dq, double *dk, double *dv, const attn_sdpa_opts *opts);

#endif
