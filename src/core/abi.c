/* SPDX-License-Identifier: MIT */
/* abi.c — the struct_size scheme of the extensible option structs (attn.h, "ABI").
 *
 * A struct the caller passes is read as: the library's defaults, overwritten
 * by the caller's first struct_size bytes. Fields appended after the caller's
 * header was compiled therefore take their defaults, and the library code
 * behind the entry point always sees a complete struct of its own layout. */
#include "core/core.h"

#include <string.h>

attn_status attn__struct_init(void *p, size_t size, const void *defaults, const attn__struct_layout *L) {
    if (!p) return attn__fail(ATTN_ERR_NULL, "%s_init: the struct pointer is NULL", L->name);
    if (size < sizeof(uint32_t)) return attn__fail(ATTN_ERR_OPTION, "%s_init: struct_size = %zu", L->name, size);
    size_t n = size < L->size ? size : L->size;
    memcpy(p, defaults, n);
    if (size > n) memset((unsigned char *)p + n, 0, size - n);
    uint32_t s32 = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    memcpy(p, &s32, sizeof s32); /* struct_size is the first field of every extensible struct */
    if (size < L->min_size || size > L->size)
        return attn__fail(ATTN_ERR_OPTION,
                          "%s_init: struct_size = %zu, this library knows sizes %zu (first release) to %zu",
                          L->name, size, L->min_size, L->size);
    return ATTN_OK;
}

attn_status attn__struct_read(const char *fn, const void *in, void *full, const void *defaults,
                              const attn__struct_layout *L, attn_status code) {
    memcpy(full, defaults, L->size);
    if (!in) return ATTN_OK;
    uint32_t size;
    memcpy(&size, in, sizeof size);
    if (size < L->min_size)
        return attn__fail(code,
                          "%s: %s.struct_size = %u, smaller than the first release's %zu: "
                          "initialise the struct with %s_init() before setting fields",
                          fn, L->name, size, L->min_size, L->name);
    if (size > L->size)
        return attn__fail(code,
                          "%s: %s.struct_size = %u, larger than this library's %zu: the program was "
                          "compiled against a newer attn.h than libattn %s",
                          fn, L->name, size, L->size, attn_version());
    memcpy(full, in, size);
    return ATTN_OK;
}

attn_status attn__struct_write(const char *fn, void *out, const void *full, const attn__struct_layout *L,
                               attn_status code) {
    uint32_t size;
    memcpy(&size, out, sizeof size);
    if (size < L->min_size || size > L->size)
        return attn__fail(code, "%s: out->struct_size = %u, must be %zu..%zu: initialise *out with %s_init() first",
                          fn, size, L->min_size, L->size, L->name);
    memcpy(out, full, size);
    memcpy(out, &size, sizeof size); /* the caller's struct keeps its own size */
    return ATTN_OK;
}
