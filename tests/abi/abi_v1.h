/* SPDX-License-Identifier: MIT */
/* abi_v1.h — FROZEN copy of the first release's (0.2.0) extensible structs, as a
 * program compiled against that attn.h sees them. Never edit: it stands for
 * binaries already built. test_abi_v1.c uses only these declarations (it does
 * not include attn.h) and calls the current library. */
#ifndef ATTN_ABI_V1_H
#define ATTN_ABI_V1_H
#include <stddef.h>
#include <stdint.h>

typedef struct v1_view { float *data; int64_t stride_b, stride_s, stride_h; } v1_view;
typedef struct v1_dims { int64_t batch, seq_q, seq_k, heads_q, heads_kv, head_dim, head_dim_v; } v1_dims;

typedef struct v1_sdpa_opts {
    uint32_t struct_size;
    float scale;
    int causal;
    int align;
    const int32_t *key_lens;
    int64_t window_left;
    int64_t window_right;
    const float *alibi_slopes;
    float softcap;
    int mask_kind;
    const void *mask;
    int64_t mask_stride_b;
    int64_t mask_stride_h;
    int64_t mask_stride_q;
    const int32_t *cu_seqlens_q;
    const int32_t *cu_seqlens_k;
    float dropout_p;
    uint64_t dropout_seed;
    int num_threads;
} v1_sdpa_opts;

typedef struct v1_mha_config {
    uint32_t struct_size;
    int64_t embed_dim, num_heads, num_kv_heads, head_dim, kdim, vdim;
    int bias_q, bias_k, bias_v, bias_o;
    int causal;
    float scale, dropout;
    uint64_t dropout_seed;
    float softcap;
    int64_t window_left, window_right;
    int rope;
    float rope_theta;
    int64_t rope_dim;
    int rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_original_max_pos;
    int qk_norm;
    float qk_norm_eps;
} v1_mha_config;

typedef struct v1_mha_input {
    uint32_t struct_size;
    int layout;
    int64_t batch, seq_q, seq_kv;
    const float *x, *key, *value;
    const int32_t *positions;
    int64_t pos_offset;
    const uint8_t *key_padding_mask;
    int mask_kind;
    const void *mask;
    int64_t mask_stride_b, mask_stride_h, mask_stride_q;
} v1_mha_input;

/* The 0.2.0 functions used, declared with the v1 types (same ABI). */
typedef struct attn_mha attn_mha;
int attn_sdpa_opts_init_size(v1_sdpa_opts *opts, size_t struct_size);
int attn_sdpa_fwd(const v1_dims *dims, v1_view q, v1_view k, v1_view v, v1_view o, float *lse,
                  const v1_sdpa_opts *opts, void *workspace, size_t workspace_size);
size_t attn_sdpa_fwd_workspace_size(const v1_dims *dims, const v1_sdpa_opts *opts);
int attn_mha_config_init_size(v1_mha_config *cfg, size_t struct_size);
int attn_mha_input_init_size(v1_mha_input *in, size_t struct_size);
int attn_mha_create(attn_mha **out, const v1_mha_config *cfg);
const v1_mha_config *attn_mha_get_config(const attn_mha *m);
int attn_mha_init_weights(attn_mha *m, int scheme, uint64_t seed);
int attn_mha_forward(attn_mha *m, const v1_mha_input *in, float *y);
int attn_hf_config_parse(const char *json, size_t len, v1_mha_config *out);
void attn_mha_free(attn_mha *m);
const char *attn_last_error(void);

#include "abi_shared.h"
#endif
