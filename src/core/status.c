/* SPDX-License-Identifier: MIT */
/* status.c — status names, thread-local detailed error messages, version. */
#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char tl_msg[512];

const char *attn_version(void) { return ATTN_VERSION_STRING; }
int attn_version_number(void) { return ATTN_VERSION_NUMBER; }

const char *attn_status_str(attn_status s) {
    switch (s) {
    case ATTN_OK: return "ATTN_OK: success";
    case ATTN_ERR_NULL: return "ATTN_ERR_NULL: a required pointer is NULL";
    case ATTN_ERR_SHAPE: return "ATTN_ERR_SHAPE: invalid shape";
    case ATTN_ERR_STRIDE: return "ATTN_ERR_STRIDE: invalid stride";
    case ATTN_ERR_OPTION: return "ATTN_ERR_OPTION: option out of range";
    case ATTN_ERR_WORKSPACE: return "ATTN_ERR_WORKSPACE: workspace too small or misaligned";
    case ATTN_ERR_ALIAS: return "ATTN_ERR_ALIAS: output overlaps another buffer";
    case ATTN_ERR_NOMEM: return "ATTN_ERR_NOMEM: out of memory or size overflow";
    case ATTN_ERR_IO: return "ATTN_ERR_IO: file could not be read or written";
    case ATTN_ERR_FORMAT: return "ATTN_ERR_FORMAT: malformed file";
    case ATTN_ERR_DTYPE: return "ATTN_ERR_DTYPE: unsupported element type";
    case ATTN_ERR_NOT_FOUND: return "ATTN_ERR_NOT_FOUND: not found";
    case ATTN_ERR_CAPACITY: return "ATTN_ERR_CAPACITY: capacity exceeded";
    case ATTN_ERR_CONFIG: return "ATTN_ERR_CONFIG: invalid configuration";
    case ATTN_ERR_STATE: return "ATTN_ERR_STATE: call out of order";
    case ATTN_ERR_UNSUPPORTED: return "ATTN_ERR_UNSUPPORTED: not supported";
    case ATTN_ERR_INTERNAL: return "ATTN_ERR_INTERNAL: internal error";
    default: return "ATTN_ERR_?: unknown status";
    }
}

const char *attn_last_error(void) { return tl_msg; }
void attn_clear_error(void) { tl_msg[0] = 0; }

attn_status attn__fail(attn_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    return s;
}
