/* SPDX-License-Identifier: MIT */
/* rope.h — rotary position embedding (RoPE), forward and backward.
 *
 * Layouts (attn_rope_kind):
 *   NEOX: pairs (x[i], x[i + R/2]) for i < R/2 (rotate halves; Llama, Qwen, NeoX)
 *   GPTJ: pairs (x[2i], x[2i + 1]) for i < R/2 (interleaved; GPT-J)
 * where R = rope_dim <= D (partial rotary: dims R .. D-1 pass through).
 * Pair i at position p is rotated by angle p * inv_freq[i]:
 *   y1 = x1 cos - x2 sin,  y2 = x2 cos + x1 sin.
 * The backward (vector-Jacobian product) is the inverse rotation (angle -a):
 * RoPE is orthogonal, so dx = R(-a) dy. Angles are computed in float64 and
 * rounded to fp32 cos/sin tables. */
#ifndef ATTN_ROPE_H
#define ATTN_ROPE_H

#include "attn.h"

#include <stdint.h>

typedef struct attn_rope_cfg {
    int kind;                  /* attn_rope_kind (NEOX or GPTJ) */
    int64_t rope_dim;          /* R: rotated dims, even, >= 2 */
    double theta;              /* base, > 0 */
    int scaling;               /* attn_rope_scaling */
    double factor;             /* linear / llama3 / dynamic / yarn / longrope factor (> 0 when scaling) */
    double low_freq_factor;    /* llama3 */
    double high_freq_factor;   /* llama3 */
    double original_max_pos;   /* llama3, yarn, longrope: original context length */
    /* appended types */
    double max_pos;            /* dynamic, longrope: max_position_embeddings */
    double attention_factor;   /* yarn, longrope: multiplies cos and sin; 0 = the type's default */
    double beta_fast, beta_slow; /* yarn (0 = 32, 1) */
    double mscale, mscale_all_dim; /* yarn */
    int no_truncate;           /* yarn: 0 = floor / ceil the correction range (transformers' default) */
    const float *short_factor, *long_factor; /* longrope (R/2) */
} attn_rope_cfg;

/* Validates c for heads of head_dim values, with theta and rope_dim already
 * resolved from their 0 defaults: kind NEOX / GPTJ, theta finite > 1, R even
 * in [2, head_dim], a known scaling and every parameter it reads (factor > 0;
 * llama3 frequencies and original length; dynamic max_pos >= 1 and R > 2;
 * yarn / longrope original length >= 1, finite non-negative extras;
 * longrope's R/2 factors finite > 0; no_truncate 0 / 1). The one check of
 * the layer's config and of the public block: messages read
 * "<fn>: <pfx><field> = <value>, must be ..." ("attn_mha_config", "rope_"). */
attn_status attn__rope_cfg_check(const attn_rope_cfg *c, int64_t head_dim, const char *fn, const char *pfx,
                                 attn_status code);

/* Fills inv_freq (R/2) for positions pos (ntok; the largest sets the length
 * for dynamic / longrope, as the layer's call) and returns the attention
 * factor: the tables of attn__rope_tables for exactly these positions. */
double attn__rope_prepare(const attn_rope_cfg *c, const int64_t *pos, int64_t ntok, double *inv_freq);

/* inv_freq (R/2) for a call whose largest position is max_pos_seen
 * (seq_len = max_pos_seen + 1): theta^(-2i/R), then scaled as transformers'
 * modeling_rope_utils: linear / factor; llama3 by wavelength; dynamic NTK:
 * theta * ((factor * L / max_pos) - (factor - 1))^(R / (R - 2)) with
 * L = max(seq_len, max_pos); yarn: interpolation / extrapolation blended by
 * the linear ramp of the correction range; longrope: / long_factor when
 * seq_len > original_max_pos, else / short_factor. */
void attn__rope_inv_freq(const attn_rope_cfg *c, int64_t max_pos_seen, double *inv_freq);

/* The factor multiplying cos and sin (yarn, longrope; 1 otherwise). */
double attn__rope_attention_factor(const attn_rope_cfg *c);

/* 1 if inv_freq depends on the positions of the call (dynamic, longrope). */
int attn__rope_depends_on_length(const attn_rope_cfg *c);

/* Tables for ntok tokens at positions pos (ntok):
 *   cos_t, sin_t (ntok, R/2): mult * cos/sin(pos[t] * inv_freq[i]). */
void attn__rope_tables(const double *inv_freq, int64_t half, const int64_t *pos, int64_t ntok, double mult,
                       float *cos_t, float *sin_t);

/* Rotates one token in place: x (H, D) with heads at x + h * head_stride.
 * cos_r, sin_r (R/2) are the token's table rows. inverse != 0 applies the
 * backward (rotation by -angle). */
void attn__rope_row(float *x, int64_t H, int64_t head_stride, int kind, int64_t half, const float *cos_r,
                    const float *sin_r, int inverse);

#endif
