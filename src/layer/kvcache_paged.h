/* SPDX-License-Identifier: MIT */
/* kvcache_paged.h — the paged KV cache object, shared by kvcache_paged.c
 * (the object) and mha_paged.c (the layer's batched incremental forward).
 * Not installed.
 *
 * Legend: nb pool blocks, bs tokens per block, Hkv kv heads, D head dim,
 * S live-sequence slots (max_seqs), mb block-table width (blocks per sequence). */
#ifndef ATTN_LAYER_KVCACHE_PAGED_H
#define ATTN_LAYER_KVCACHE_PAGED_H

#include "attn.h"
#include "core/core.h"

#include <stdint.h>

struct attn_kvpaged {
    attn_kvpaged_config cfg;
    int64_t nb, bs, Hkv, D, S, mb;
    int64_t blk;      /* elements per block of one pool: Hkv * bs * D */
    size_t es;        /* bytes per element (cfg.dtype: 4, 2, 2, 1) */
    unsigned char *k, *v; /* (nb, Hkv, bs, D) each, elements of cfg.dtype */
    float *ks, *vs;   /* I8 only: (nb, Hkv, bs) the scale of each token's row, else NULL */
    int32_t *ref;     /* (nb) sequences referencing each block; 0 = free */
    int32_t *freel;   /* (nb) stack of free block ids, top at nfree - 1 */
    int64_t nfree;
    int64_t *id;      /* (S) sequence id of each slot, -1 = slot unused */
    int64_t *len;     /* (S) tokens of each slot's sequence */
    int32_t *table;   /* (S, mb) block table of each slot; -1 past its blocks */
};

/* Slot of live sequence id, or -1. */
int64_t attn__kvpaged_slot(const attn_kvpaged *c, int64_t id);
/* Pool blocks an append of n tokens to slot s takes (new blocks plus the
 * copy of a shared, partly filled last block). */
int64_t attn__kvpaged_blocks_needed(const attn_kvpaged *c, int64_t s, int64_t n);
/* Appends n tokens to slot s (k, v rows ld apart, head h at h * D); the
 * caller has checked capacity (blocks_needed <= nfree, len + n <= max_seq_len). */
void attn__kvpaged_append_slot(attn_kvpaged *c, int64_t s, int64_t n, const float *k, const float *v, int64_t ld);
/* Shortens slot s to len tokens, releasing the blocks past it. */
void attn__kvpaged_truncate_slot(attn_kvpaged *c, int64_t s, int64_t len);

#endif
