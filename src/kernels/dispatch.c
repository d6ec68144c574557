/* SPDX-License-Identifier: MIT */
/* dispatch.c — builds the sdpa micro-kernel tables once: generic entries,
 * overridden by the avx2 and then the avx512 kernels (each table includes the
 * overrides of every ISA up to its own). Selection follows attn_isa_active()
 * at every call, so attn_isa_set() takes effect immediately. */
#include "kernels/dispatch.h"
#include "core/core.h"

#include <pthread.h>

void attn__sdpa_blocks_default(attn__sdpa_blocks *b) {
    /* forward: 128 rows reuse each K/V tile (read from memory, a page per row
     * in BSHD) twice as often as 64 (~10% at Llama shapes) */
    b->mrows_fwd = 128;
    b->mrows_bwd = 64;  /* five tiles per block step; 128 was ~15% slower */
    b->bc = 64;
    b->fwd_tasks = 32;
    b->bwd_tasks = 8;
    /* the block's transposed packing and its dq update are paid once per
     * group; 16 (1024 keys; 1.5 MiB of per-thread dk / dv / K tiles at D 128)
     * was ~15% faster than 4 and ~5% faster than 32 at Llama-3-8B S 2048 on
     * AVX-512 (Zen, 1 MiB L2) */
    b->bwd_tiles = 16;
    /* a 64-key tile on the diagonal in chunks of 16 keys: 37% less of its
     * products (the triangle's empty half, to 16-key steps) */
    b->edge_keys = 16;
    b->paged_mrows = 128;
    b->paged_bc = 64;
    b->paged_part_min = 512;
    b->paged_maxpart = 16;
    /* 8 (16 for one query row): a multiple of the AVX-512 kdot's 16 / M keys per pass */
    b->paged_pf_keys = 8;
    /* below, repeated calls find the K/V in L3, where the hardware prefetchers
     * alone do better (int8 batch 1 x 4096, 8.6 MB: ~5%, bf16 batch 1 x 2048:
     * ~15%; at 16 MB 1.3-1.9x slower without) */
    b->paged_pf_bytes = (int64_t)12 << 20;
}

static attn__sdpa_kernels g_tables[ATTN_ISA_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void build(void) {
    attn__sdpa_kernels t = {0};
    attn__sdpa_kernels_generic(&t);
    g_tables[ATTN_ISA_GENERIC] = t;
    attn__sdpa_kernels_avx2(&t);
    g_tables[ATTN_ISA_AVX2] = t;
    attn__sdpa_kernels_avx512(&t);
    attn__sdpa_pack_avx512(&t);
    if (attn__cpu()->avx512bf16) attn__sdpa_kernels_avx512_bf16(&t);
    g_tables[ATTN_ISA_AVX512] = t;
}

const attn__sdpa_kernels *attn__sdpa_kernels_for(attn_isa isa) {
    pthread_once(&g_once, build);
    if ((int)isa < 0) isa = ATTN_ISA_GENERIC;
    if (isa >= ATTN_ISA_COUNT) isa = ATTN_ISA_AVX512;
    if (isa > attn_isa_detected()) isa = attn_isa_detected();
    return &g_tables[isa];
}

const attn__sdpa_kernels *attn__sdpa_kernels_get(void) { return attn__sdpa_kernels_for(attn_isa_active()); }
