/* SPDX-License-Identifier: MIT */
/* bench_paged.h — the decode-paged rows of `attn bench`: batched decode
 * through a paged KV cache (attn_sdpa_paged_fwd) next to the same batch
 * decoded from a contiguous head-major cache (attn_sdpa_fwd), in GB/s of K+V
 * read and as a fraction of the machine's streaming-read bandwidth. */
#ifndef ATTN_TOOL_BENCH_PAGED_H
#define ATTN_TOOL_BENCH_PAGED_H

#include "attn.h"

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
    const attn_dtype *kv_dtypes; /* (nkv) KV cache element types, each a set of rows */
    const int *kv_fast;          /* (nkv) 1: those rows with opts->decode_fast ("bf16-fast", "int8-fast") */
    int nkv;
} bench_paged_cfg;

/* Parses --kv-dtype "f32,bf16,f16,int8,bf16-fast,int8-fast" (any subset, up to max;
 * *-fast: that cache decoded with opts->decode_fast, fast[i] = 1). 0 on success. */
int bench_kv_dtypes_parse(const char *s, attn_dtype *out, int *fast, int max, int *n);
const char *bench_kv_dtype_name(attn_dtype t);
/* The streaming-read probe (bu_bw, 512 MiB): each call takes one more sample
 * (the first 5 passes, later ones 2) and returns the best so far, the one
 * bandwidth every decode row is judged against ("bw_probe_gbps");
 * bench_bw_probe_last gives the samples (best 0 if never measured);
 * bench_bw_probe_free releases the probe's buffer. */
#include "bench_util.h"
double bench_bw_probe(int threads);
const bu_bw *bench_bw_probe_last(void);
void bench_bw_probe_free(void);

/* Measures the streaming-read probe and every (batch, context) row, prints a
 * table on stdout. Returns the number of rows that failed or were invalid. */
int bench_paged_run(const bench_paged_cfg *cfg);
/* Number of rows measured by the last run (0 if none). */
int bench_paged_nrows(void);
/* Writes the rows of the last run as JSON objects (",\n" between them):
 * per measured (kv_dtype, batch, context) a "decode-paged" row and a
 * "decode-kvcache" row (the same batch from the contiguous cache), each with
 * "kv_dtype", "gbps" (bytes read: compressed K+V plus int8 scales) and
 * "pct_bw" of the probe (also as "stream_gbps" in each row). */
void bench_paged_json(FILE *f);

#endif
