/* SPDX-License-Identifier: MIT */
/* alloc.c — 64-byte aligned allocation (the only malloc wrapper of the library). */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

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

void attn__free(void *p) { free(p); }
