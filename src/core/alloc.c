/* SPDX-License-Identifier: MIT */
/* alloc.c — 64-byte aligned allocation (the only malloc wrapper of the library). */
#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *attn__malloc(size_t bytes) {
    if (bytes == 0) return NULL;
    size_t r = attn__round_up(bytes);
    if (r == 0) return NULL;
    return aligned_alloc(ATTN_ALIGN, r);
}

void *attn__calloc(size_t n, size_t size) {
    int ok = 1;
    size_t bytes = attn__mul_size(n, size, &ok);
    if (!ok) return NULL;
    void *p = attn__malloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* With 4 KiB pages a decode step that streams a cache takes a TLB miss every
 * page (every key row, in a BSHD layout with a 3 KiB row stride): batch 32 x
 * 2048 Llama-shape paged decode 32.9 -> 29.5 ms per thread of CPU time with
 * huge pages. The advice must precede the first touch, hence here. */
void *attn__malloc_huge(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < 2 * huge) return attn__malloc(bytes);
    if (bytes > SIZE_MAX - huge) return NULL;
    const size_t r = (bytes + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, r);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, r, MADV_HUGEPAGE);
#endif
    return p;
}

void attn__free(void *p) { free(p); }
