/* SPDX-License-Identifier: MIT */
/* abi_shared.h — what test_abi_v1.c (first-release layouts) and abi_current.c
 * (today's attn.h) exchange; no attn type appears here. */
#ifndef ATTN_ABI_SHARED_H
#define ATTN_ABI_SHARED_H
#include <stddef.h>
#include <stdint.h>

/* Offsets of the v1 fields in the CURRENT attn.h (abi_current.c): must equal
 * the frozen ones, i.e. fields were only appended. */
typedef struct abi_field { const char *name; size_t offset; } abi_field;
extern const abi_field abi_cur_sdpa_opts[], abi_cur_mha_config[], abi_cur_mha_input[];
extern const size_t abi_cur_sizes[3]; /* sizeof in the current header */
/* The same computations through the current header (reference results). */
int abi_cur_sdpa(const float *q, const float *k, const float *v, float *o, float *lse, int64_t S, int64_t H,
                 int64_t D, int causal, int64_t window_left);
int abi_cur_mha(const float *x, float *y, int64_t B, int64_t S, int64_t E, int64_t H);
#endif
