/* SPDX-License-Identifier: MIT */
/* dispatch.c — builds the sdpa micro-kernel tables once: generic entries,
 * overridden by the avx2 and then the avx512 kernels (each table includes the
 * overrides of every ISA up to its own). Selection follows attn_isa_active()
 * at every call, so attn_isa_set() takes effect immediately. */
#include "kernels/dispatch.h"
#include "core/core.h"

#include <pthread.h>

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
