/* SPDX-License-Identifier: MIT */
/* bench_paged.h — the decode-paged rows of `attn bench`: batched decode
 * through a paged KV cache (attn_sdpa_paged_fwd) next to the same batch
 * decoded from a contiguous head-major cache (attn_sdpa_fwd), in GB/s of K+V
 * read and as a fraction of the machine's streaming-read bandwidth. */
#ifndef ATTN_TOOL_BENCH_PAGED_H
#define ATTN_TOOL_BENCH_PAGED_H

#include <stdint.h>
#include <stdio.h>

typedef struct bench_paged_cfg {
    int threads;
    int min_runs;
    double min_time, max_time;   /* per timed block (each side is timed twice, alternating) */
    const int64_t *batches;      /* (nbatches) */
    int nbatches;
    const int64_t *contexts;     /* (ncontexts) cached tokens per sequence */
    int ncontexts;
    int64_t block_size;          /* tokens per block of the pool */
    double max_gib;              /* skip rows whose K+V of one layout exceeds this */
} bench_paged_cfg;

/* Measures the streaming-read probe and every (batch, context) row, prints a
 * table on stdout. Returns the number of rows that failed or were invalid. */
int bench_paged_run(const bench_paged_cfg *cfg);
/* Number of rows measured by the last run (0 if none). */
int bench_paged_nrows(void);
/* Writes the rows of the last run as JSON objects (",\n" between them) and
 * the probe as "stream_gbps" in each row. */
void bench_paged_json(FILE *f);

#endif
