/* SPDX-License-Identifier: MIT */
/* abi_current.c — the current attn.h side of test_abi_v1: field offsets of the
 * extensible structs and reference results computed with today's layout. */
#include <attn.h>
#include <stddef.h>

#include "abi_shared.h"

#define F(T, f) {#f, offsetof(T, f)}
const abi_field abi_cur_sdpa_opts[] = {
    F(attn_sdpa_opts, struct_size), F(attn_sdpa_opts, scale), F(attn_sdpa_opts, causal), F(attn_sdpa_opts, align),
    F(attn_sdpa_opts, key_lens), F(attn_sdpa_opts, window_left), F(attn_sdpa_opts, window_right),
    F(attn_sdpa_opts, alibi_slopes), F(attn_sdpa_opts, softcap), F(attn_sdpa_opts, mask_kind),
    F(attn_sdpa_opts, mask), F(attn_sdpa_opts, mask_stride_b), F(attn_sdpa_opts, mask_stride_h),
    F(attn_sdpa_opts, mask_stride_q), F(attn_sdpa_opts, cu_seqlens_q), F(attn_sdpa_opts, cu_seqlens_k),
    F(attn_sdpa_opts, dropout_p), F(attn_sdpa_opts, dropout_seed), F(attn_sdpa_opts, num_threads), {NULL, 0}};
const abi_field abi_cur_mha_config[] = {
    F(attn_mha_config, struct_size), F(attn_mha_config, embed_dim), F(attn_mha_config, num_heads),
    F(attn_mha_config, num_kv_heads), F(attn_mha_config, head_dim), F(attn_mha_config, kdim),
    F(attn_mha_config, vdim), F(attn_mha_config, bias_q), F(attn_mha_config, bias_k), F(attn_mha_config, bias_v),
    F(attn_mha_config, bias_o), F(attn_mha_config, causal), F(attn_mha_config, scale),
    F(attn_mha_config, dropout), F(attn_mha_config, dropout_seed), F(attn_mha_config, softcap),
    F(attn_mha_config, window_left), F(attn_mha_config, window_right), F(attn_mha_config, rope),
    F(attn_mha_config, rope_theta), F(attn_mha_config, rope_dim), F(attn_mha_config, rope_scaling),
    F(attn_mha_config, rope_factor), F(attn_mha_config, rope_low_freq_factor),
    F(attn_mha_config, rope_high_freq_factor), F(attn_mha_config, rope_original_max_pos),
    F(attn_mha_config, qk_norm), F(attn_mha_config, qk_norm_eps), {NULL, 0}};
const abi_field abi_cur_mha_input[] = {
    F(attn_mha_input, struct_size), F(attn_mha_input, layout), F(attn_mha_input, batch),
    F(attn_mha_input, seq_q), F(attn_mha_input, seq_kv), F(attn_mha_input, x), F(attn_mha_input, key),
    F(attn_mha_input, value), F(attn_mha_input, positions), F(attn_mha_input, pos_offset),
    F(attn_mha_input, key_padding_mask), F(attn_mha_input, mask_kind), F(attn_mha_input, mask),
    F(attn_mha_input, mask_stride_b), F(attn_mha_input, mask_stride_h), F(attn_mha_input, mask_stride_q),
    {NULL, 0}};
const size_t abi_cur_sizes[3] = {sizeof(attn_sdpa_opts), sizeof(attn_mha_config), sizeof(attn_mha_input)};

int abi_cur_sdpa(const float *q, const float *k, const float *v, float *o, float *lse, int64_t S, int64_t H,
                 int64_t D, int causal, int64_t window_left) {
    attn_sdpa_dims d = {1, S, S, H, H, D, D};
    attn_sdpa_opts op;
    attn_sdpa_opts_init(&op);
    op.causal = causal;
    op.window_left = window_left;
    return attn_sdpa_fwd(&d, attn_view_bshd((float *)q, S, H, D), attn_view_bshd((float *)k, S, H, D),
                         attn_view_bshd((float *)v, S, H, D), attn_view_bshd(o, S, H, D), lse, &op, NULL, 0);
}

int abi_cur_mha(const float *x, float *y, int64_t B, int64_t S, int64_t E, int64_t H) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = E;
    c.num_heads = H;
    c.causal = 1;
    c.rope = ATTN_ROPE_NEOX;
    attn_mha *m = NULL;
    int st = attn_mha_create(&m, &c);
    if (st == ATTN_OK) st = attn_mha_init_weights(m, ATTN_INIT_NORMAL, 7);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B;
    in.seq_q = S;
    in.x = x;
    if (st == ATTN_OK) st = attn_mha_forward(m, &in, y);
    attn_mha_free(m);
    return st;
}
