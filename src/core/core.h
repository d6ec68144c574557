/* SPDX-License-Identifier: MIT */
/* core.h — internal runtime services shared by every part of libattn:
 * error reporting, CPU feature dispatch, thread pool, aligned allocation.
 * Not installed; include "core/core.h" from src/, tests/ and tools/. */
#ifndef ATTN_CORE_H
#define ATTN_CORE_H

#include "attn.h"
#include <stddef.h>
#include <stdint.h>

/* ─── errors ───────────────────────────────────────────────────────────────
 * attn__fail formats the thread-local detailed message and returns s, so
 * validation reads: if (x < 0) return attn__fail(ATTN_ERR_SHAPE, "seq_q = %lld < 0", x); */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
attn_status attn__fail(attn_status s, const char *fmt, ...);

/* ─── CPU / dispatch ─────────────────────────────────────────────────────── */
typedef struct attn_cpu_features {
    int sse2, avx, avx2, fma, f16c, avx512f, avx512bw, avx512dq, avx512vl, avx512bf16, avx512vnni, os_avx, os_avx512;
    char brand[64];
} attn_cpu_features;
const attn_cpu_features *attn__cpu(void);

/* Extensible public structs (attn.h, "ABI"): a leading uint32_t struct_size. */
typedef struct attn__struct_layout {
    const char *name; /* e.g. "attn_sdpa_opts" */
    size_t min_size;  /* size of the first release's layout (offsetof last field + its size) */
    size_t size;      /* sizeof in this library */
} attn__struct_layout;
/* *_init_size: defaults into the first `size` bytes (zero past the library's
 * layout), struct_size = size; an unknown size is an error (struct_size still stored). */
attn_status attn__struct_init(void *p, size_t size, const void *defaults, const attn__struct_layout *L);
/* Entry points: *full = defaults overwritten by the caller's first struct_size
 * bytes (in == NULL: the defaults); a struct_size outside [min_size, size] is
 * `code` with a message naming fn, the struct and the sizes. */
attn_status attn__struct_read(const char *fn, const void *in, void *full, const void *defaults,
                              const attn__struct_layout *L, attn_status code);
/* Output structs: copies the first out->struct_size bytes of *full (checked
 * as above) to *out, keeping out->struct_size. */
attn_status attn__struct_write(const char *fn, void *out, const void *full, const attn__struct_layout *L,
                               attn_status code);
extern const attn__struct_layout attn__mha_config_layout; /* layer/mha.c */
#define ATTN__SIZE_THROUGH(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* ─── threads ────────────────────────────────────────────────────────────
 * fn(ctx, task, tid) is called once for every task in [0, ntasks), on up to
 * nthreads threads (tid in [0, nthreads)); tasks are handed out dynamically,
 * so a task must only write memory that it owns (results then do not depend
 * on the thread count). nthreads <= 0 means attn_get_num_threads().
 * Safe to call from several user threads: a call that finds the pool busy
 * runs its tasks on the calling thread. */
typedef void (*attn_task_fn)(void *ctx, int64_t task, int tid);
void attn__parallel_for(int64_t ntasks, int nthreads, attn_task_fn fn, void *ctx);
int attn__resolve_threads(int requested); /* requested <= 0 -> default; clamps to [1, 256] */

/* ─── memory ────────────────────────────────────────────────────────────── */
#define ATTN_ALIGN 64
void *attn__malloc(size_t bytes);          /* 64-byte aligned, NULL on failure or bytes == 0 */
void *attn__calloc(size_t n, size_t size); /* zeroed, overflow-checked */
/* For large buffers that kernels stream (KV caches): from 4 MiB up, 2 MiB
 * aligned and advised for transparent huge pages (on this buffer only; a
 * no-op where THP is off), else attn__malloc. Freed with attn__free. */
void *attn__malloc_huge(size_t bytes);
void attn__free(void *p);
/* Round up to a multiple of 64; returns 0 on overflow (callers treat 0 as NOMEM when n > 0). */
static inline size_t attn__round_up(size_t n) { return n > SIZE_MAX - 63 ? 0 : (n + 63) & ~(size_t)63; }
/* a * b with overflow detection: returns 0 and sets *ok = 0 on overflow. */
static inline size_t attn__mul_size(size_t a, size_t b, int *ok) {
    if (a != 0 && b > SIZE_MAX / a) { *ok = 0; return 0; }
    return a * b;
}
static inline size_t attn__add_size(size_t a, size_t b, int *ok) {
    if (b > SIZE_MAX - a) { *ok = 0; return 0; }
    return a + b;
}

#endif
