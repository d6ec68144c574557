/* SPDX-License-Identifier: MIT */
/* pf_queue.h — a queue of software prefetches of the next key tile, issued a
 * share at a time between the kernel calls of the current one (decoding).
 *
 * Decoding (one to eight query rows per key) reads each K and V element once
 * for a few FMAs, so a step is bound by how many cache misses are in flight
 * while it computes. One burst of a tile's 256-1024 lines overflows the
 * core's outstanding-miss slots and then waits; spread over the tile's work,
 * the misses stay in flight while it computes. The lines go to L2
 * (prefetcht1), not L1: a tile is 16-64 KiB of K and V, as large as Zen 4's
 * L1 or larger, and the next one prefetched into L1 evicted the current
 * one's lines. Measured in docs/performance.md ("Session 13"). A speed
 * choice only: no result depends on it.
 *
 * The queue holds runs of rows (a K or V segment: `rows` rows of `bytes`
 * bytes, `stride` bytes apart; contiguous rows are one run of one long row).
 * Usage: attn__pfq_reset; attn__pfq_add per run; attn__pfq_plan with the
 * number of kernel calls the tile makes; attn__pfq_issue(q, q->share) after
 * each call. Not installed. */
#ifndef ATTN_KERNELS_PF_QUEUE_H
#define ATTN_KERNELS_PF_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* 4 runs (K, V and the int8 scales) x the segments of a tile: at most
 * ATTN__SDPA_BC_MAX + 1 = 129 (keys in blocks of one token); checked by the includers */
#define ATTN__PFQ_MAX_RUNS (4 * 129)

typedef struct attn__pfq {
    struct {
        const char *p;   /* first row */
        size_t bytes;    /* of each row */
        size_t stride;   /* bytes from one row to the next */
        int64_t rows;
    } run[ATTN__PFQ_MAX_RUNS];
    int cnt, i;          /* runs, current run */
    int64_t row;         /* current row of run i */
    size_t off;          /* offset in that row */
    size_t lines, share; /* cache lines queued in all; lines to issue after each kernel call */
} attn__pfq;

static inline void attn__pfq_reset(attn__pfq *q) {
    q->cnt = q->i = 0;
    q->row = 0;
    q->off = q->lines = q->share = 0;
}

/* Queues rows rows of `bytes` bytes, `stride` apart, from p (nothing if p is
 * NULL, there are no rows, or the queue is full). */
static inline void attn__pfq_add(attn__pfq *q, const void *p, int64_t rows, size_t bytes, size_t stride) {
    if (!p || rows <= 0 || !bytes || q->cnt >= ATTN__PFQ_MAX_RUNS) return;
    q->run[q->cnt].p = (const char *)p;
    q->run[q->cnt].bytes = bytes;
    q->run[q->cnt].stride = stride;
    q->run[q->cnt++].rows = rows;
    q->lines += (size_t)rows * ((bytes + 63) / 64);
}

/* Keys per P.V kernel call between prefetch shares (a multiple of 8; the
 * split changes no result: the P.V kernels add key by key in order into O). */
#define ATTN__PFQ_PV_KEYS 16

/* Shares for a tile of `calls` kernel calls: every line issued by the last. */
static inline void attn__pfq_plan(attn__pfq *q, int64_t calls) {
    q->share = calls > 0 ? (q->lines + (size_t)calls - 1) / (size_t)calls : 0;
}

/* Issues the next `lines` prefetches of the queue. */
static inline void attn__pfq_issue(attn__pfq *q, size_t lines) {
    for (; lines > 0 && q->i < q->cnt; lines--) {
        __builtin_prefetch(q->run[q->i].p + (size_t)q->row * q->run[q->i].stride + q->off, 0, 2); /* prefetcht1 */
        q->off += 64;
        if (q->off < q->run[q->i].bytes) continue;
        q->off = 0;
        if (++q->row < q->run[q->i].rows) continue;
        q->row = 0;
        q->i++;
    }
}

#endif
