/* SPDX-License-Identifier: MIT */
/* bench_util.h — measurement helpers for `attn bench`: wall-clock timer,
 * repeated timing (warm-up + best/median), the machine's FP32 FMA peak,
 * resident-set size, JSON string escaping and gnuplot plotting. */
#ifndef ATTN_TOOL_BENCH_UTIL_H
#define ATTN_TOOL_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/json.h"

double bu_now(void); /* seconds, monotonic */
double bu_cpu_time(void); /* process CPU seconds, user + system, all threads */

/* Times fn(ctx) (which returns 0 on success): repeats until at least
 * min_runs runs AND min_seconds of timed work, or max_seconds is exceeded
 * after at least one run. No warm-up here: the caller runs fn once first
 * (that run validates the output). */
typedef int (*bu_fn)(void *ctx);
typedef struct bu_timing {
    int runs;
    double best_s, median_s, total_s;
    double cpu_s; /* process CPU time (user + system, all threads) over the timed runs */
} bu_timing;
int bu_time(bu_fn fn, void *ctx, int min_runs, double min_seconds, double max_seconds, bu_timing *out);

/* FP32 peak of this machine: chains of independent FMAs on `threads`
 * threads, the widest of AVX-512 / AVX2+FMA / scalar the CPU and OS support.
 * A probe that holds up on a shared machine: one busy moment must not set the
 * peak low (then rows would read above 100%), so the peak is the best of
 * several short samples (~0.05 s per trial) taken over the whole run, and the
 * spread of the samples is reported. */
typedef struct bu_peak {
    double best;     /* GFLOP/s: best sample so far (the peak) */
    double worst;    /* GFLOP/s: worst sample (each sample = best of its trials) */
    int samples;
    const char *isa; /* "AVX-512 FMA", "AVX2 FMA", "scalar fmaf", "AVX512_BF16 vdpbf16ps" */
    int kind, threads;
    int64_t iters;   /* per trial, calibrated to ~0.05 s */
} bu_peak;
/* Calibrates and takes the first sample (4 trials, ~0.2 s). */
void bu_peak_init(bu_peak *pk, int threads);
/* The same for the bf16 dot-product unit (vdpbf16ps chains, 4 flops per lane):
 * the peak of the bf16 fast path's GEMMs. Returns 0 (pk zeroed) when the
 * CPU has no AVX512_BF16. */
int bu_peak_init_bf16(bu_peak *pk, int threads);
/* One more sample of `trials` trials; returns it (pk->best is the max of all). */
double bu_peak_sample(bu_peak *pk, int trials);
/* (best - worst) / best over the samples: 0 on a quiet machine. */
double bu_peak_spread(const bu_peak *pk);

/* Streaming-read bandwidth of this machine, GB/s: `threads` threads each sum
 * a contiguous slice of one buffer far larger than the caches with 256-bit
 * loads. Like the FMA probe, the bandwidth is the best of several short
 * samples taken over the run (one busy moment must not set it low), with
 * their spread. The buffer is allocated and touched at the first sample and
 * kept until bu_bw_free. */
typedef struct bu_bw {
    float *buf;
    int64_t n;       /* floats in buf */
    double best;     /* GB/s: best sample so far (the bandwidth) */
    double worst;    /* GB/s: worst sample (each sample = best of its passes) */
    int samples;
} bu_bw;
/* One more sample of `passes` passes over `bytes` bytes (the first call sets
 * the size); returns it, 0 if the buffer cannot be allocated. */
double bu_bw_sample(bu_bw *b, int threads, int64_t bytes, int passes);
/* (best - worst) / best over the samples: 0 on a quiet machine. */
double bu_bw_spread(const bu_bw *b);
void bu_bw_free(bu_bw *b);

/* Peak resident set of the process (getrusage), bytes. */
int64_t bu_peak_rss(void);
/* Current resident set (/proc/self/statm), bytes; -1 if unavailable. */
int64_t bu_current_rss(void);

/* Writes s as a JSON string literal (with quotes). */
void bu_json_str(FILE *f, const char *s);
/* Members of a parsed JSON object (io/json.h): the string obj[key] decoded into out[0, n)
 * (out untouched when missing or not a string); the number obj[key], or dflt. */
void bu_json_text(attn_json obj, const char *key, char *out, size_t n);
double bu_json_number(attn_json obj, const char *key, double dflt);

/* Full path of an executable found on PATH (static buffer), or NULL. */
const char *bu_which(const char *prog);

/* Plot series of (x, y) points to out_path (.png or .svg) with gnuplot.
 * Returns 0, or 1 with a one-line reason in err. */
typedef struct bu_series {
    const char *title;
    int n;
    const double *x, *y;
    int dashed; /* 1: dashed line (peers) */
    int color;  /* 1-based gnuplot line colour index; series with the same colour belong together */
} bu_series;
int bu_plot(const char *out_path, const char *title, const char *xlabel, const char *ylabel, const bu_series *s,
            int nseries, char *err, size_t errlen);

#endif
