/* SPDX-License-Identifier: MIT */
/* bench_cmd.h — the parts of `attn bench` (cmd_bench.c), one concern per file:
 *
 *  bench_opts.c      options: parsing, checks, defaults; the OpenBLAS re-exec
 *  bench_problem.c   one (model, Sq, Sk) problem: buffers, views, the kernel
 *                    and naive-peer calls that are timed
 *  bench_kernel.c    the sdpa rows (fwd/bwd, causal, decode): build, validate,
 *                    time, the PyTorch / ONNX Runtime peers of each row
 *  bench_layer.c     the layer rows: attn_mha, its parts, nn.MultiheadAttention
 *  bench_memory.c    --memory: peak RSS of one long causal forward
 *  bench_table.c     the human tables on stdout
 *  bench_json.c      --json
 *  bench_plot.c      --plot
 *  bench_progress.c  progress lines on stderr
 *
 * FLOP counts (FlashAttention convention): forward 4·B·Hq·Sq·Sk·D, halved
 * when causal (Sq = Sk); backward 2.5 x forward. */
#ifndef ATTN_TOOL_BENCH_CMD_H
#define ATTN_TOOL_BENCH_CMD_H

#include "attn.h"
#include "bench_peer.h"
#include "bench_pypeer.h"
#include "bench_util.h"
#include "core/core.h"

#include <stdint.h>
#include <stdio.h>

#define BENCH_SUB "bench"
#define VALIDATE_TOL 1e-3 /* max|attn - peer| / max|peer|, both fp32 */

/* ─── shapes and variants ────────────────────────────────────────────────── */
typedef struct model_shape {
    const char *name;
    int64_t Hq, Hkv, D;
} model_shape;
enum { NMODELS = 2 };
extern const model_shape MODELS[NMODELS]; /* llama3-8b, gpt2 */

/* decode: K/V (B, Sk, Hkv, D); decode-hm: K/V head-major (B, Hkv, Sk, D), the layout of attn_kvcache */
enum { V_FWD, V_BWD, V_FWD_CAUSAL, V_BWD_CAUSAL, V_DECODE, V_DECODE_HM, NVARIANTS };
extern const char *const VNAMES[NVARIANTS];
static inline int is_decode(int variant) { return variant == V_DECODE || variant == V_DECODE_HM; }
static inline int is_bwd(int variant) { return variant == V_BWD || variant == V_BWD_CAUSAL; }

/* ─── one row of the kernel tables ───────────────────────────────────────── */
typedef struct bench_row {
    const model_shape *m;
    int variant;
    int64_t B, Sq, Sk;
    double flops, bytes; /* bytes: K+V read (decode) */
    bu_timing ta, tp;    /* attn, peer */
    double err;
    int valid, ran;
    attn_dtype dt;       /* element type of the tensors (kernel rows; --dtype) */
    char note[256];
    pypeer_res py[PYPEER_N]; /* PyTorch, ONNX Runtime (bench_pypeer.h) */
} bench_row;
/* the most rows: models x 16 lengths x 4 variants x 3 types, + 2 decode rows per model */
enum { BENCH_MAX_ROWS = NMODELS * 16 * 4 * 3 + 2 * NMODELS };

const char *dtype_name(attn_dtype t);   /* --dtype names: f32, bf16, f16 */
double dtype_tol(attn_dtype t);         /* validation tolerance against the fp32 peers */
double sdpa_flops(const model_shape *m, int64_t Sq, int64_t Sk, int variant);

/* ─── options (bench_opts.c) ─────────────────────────────────────────────── */
typedef struct bench_opts {
    int64_t threads, runs, layer_seq, memory_seq, block_size;
    double min_time;
    int quick, memory, no_torch, no_ort, no_layer, no_decode, paged_only, no_paged, peers_in_quick;
    const char *json_path, *plot_path;
    int64_t seqs[16];          /* lengths of the sdpa rows */
    int nseqs;
    int64_t pbatches[16], pctx[16]; /* decode-paged batches, contexts */
    int npb, npc;
    attn_dtype kv_dtypes[8];   /* decode-paged KV types */
    int kv_fast[8];            /* 1: that type's rows with opts->decode_fast */
    int nkv;
    attn_dtype dts[3];         /* element types of the sdpa rows */
    int ndt;
    int use_model[NMODELS];
} bench_opts;
/* Parses and checks argv (errors reported: returns 1). *help: --help was printed. */
int bench_opts_parse(int argc, char **argv, bench_opts *o, int *help);
/* Re-executes with OPENBLAS_CORETYPE=SkylakeX when OpenBLAS picked a weaker core on an
 * AVX-512 CPU (returns only if it did not); returns the core it re-executed from, or NULL. */
const char *bench_blas_reexec(int argc, char **argv);

/* ─── progress on stderr (bench_progress.c) ─────────────────────────────── */
void progress_init(int tty);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* a step inside a row: shown on a terminal only (logs get one line per row) */
void progress_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void progress_clear(void);

/* ─── one (model, Sq, Sk) problem: buffers shared by its variants (bench_problem.c) ─── */
typedef struct problem {
    attn_sdpa_dims d;
    attn_sdpa_opts o;
    float *q, *k, *v, *out, *dO, *lse, *dq, *dk, *dv; /* attn */
    float *stats;    /* (B, Hq, Sq, 2) opts.row_stats of backward problems (as attn_mha passes them), else NULL */
    float *po, *pdq, *pdk, *pdv;                      /* peer */
    void *ws;
    size_t wsn;
    peer_ws pw;
    int threads;
    int kv_hm; /* k, v (and dk, dv) are (B, Hkv, Sk, D) instead of (B, Sk, Hkv, D) */
    attn_dtype dt; /* F32, or the type of the 16-bit copies below (typed calls) */
    uint16_t *h[8]; /* q, k, v, out, dO, dq, dk, dv in dt (the fp32 inputs hold the same rounded values) */
} problem;
enum { H_Q, H_K, H_V, H_O, H_DO, H_DQ, H_DK, H_DV };

void fill_rand(float *p, int64_t n, uint64_t seed);
float *falloc(int64_t n);
double max_rel_diff(const float *a, const float *b, int64_t n);
void widen(attn_dtype t, const uint16_t *h, float *x, int64_t n);
int problem_init(problem *p, const model_shape *m, int64_t Sq, int64_t Sk, int backward, int threads, attn_dtype dt);
void problem_free(problem *p);

typedef struct run_ctx {
    problem *p;
    int causal, bwd;
    int infer; /* an inference call (decode rows): no lse, as a decoding step passes none */
} run_ctx;
/* bu_fn callbacks over a run_ctx: 0 = ok */
int attn_fwd_fn(void *vctx);
int attn_bwd_fn(void *vctx);
int peer_fwd_fn(void *vctx);
int peer_bwd_fn(void *vctx);

typedef struct timing_cfg {
    int min_runs;
    double min_time, max_time;
} timing_cfg;

/* ─── the probes a run is judged against ─────────────────────────────────── */
typedef struct bench_env {
    const attn_cpu_features *cpu;
    int threads;
    const char *core;      /* OpenBLAS core */
    const char *reexec;    /* the core attn bench re-executed itself from, or NULL */
    bu_peak pk;            /* FP32 FMA probe */
    const char *probe_isa; /* its ISA */
    bu_peak pkb;           /* bf16 dot-product probe, when have_pkb */
    int have_pkb;
    int over_peak;         /* rows flagged ">probe" in the tables */
} bench_env;
/* The probe a row's %peak is judged against: the bf16 unit's for the bf16 fast path (forward and backward), else the FMA probe. */
bu_peak *row_probe(const bench_row *r, bench_env *env);
/* The peak a row is judged against: a row above the best probe so far triggers one more probe. */
double peak_for(bu_peak *pk, double gflops);
/* CPU time the process got during the timed runs / (wall time x threads) */
double cpu_share(const bu_timing *t);
void cpu_share_threads(int threads);

/* ─── sdpa rows (bench_kernel.c) ─────────────────────────────────────────── */
/* Which python peers run, and how they are timed (the same rule as attn's rows). */
typedef struct pypeer_cfg {
    int use[PYPEER_N];
    const char *why_not[PYPEER_N]; /* note of a peer that is off */
    pypeer_timing tc;
} pypeer_cfg;
/* Fills rows[] from the options: groups of 4 sdpa rows, then the decode rows; *nsdpa = sdpa rows. */
int bench_rows_build(const bench_opts *o, bench_row *rows, int *nsdpa);
void pypeer_cfg_init(pypeer_cfg *pc, const bench_opts *o, const timing_cfg *tc);
/* Runs and prints the sdpa rows rows[0, nsdpa) and the decode rows rows[nsdpa, nrows); returns rows that failed. */
int run_sdpa_rows(bench_row *rows, int nsdpa, int nrows, bench_env *env, const timing_cfg *tc, const pypeer_cfg *pyc);
int run_decode_rows(bench_row *rows, int nsdpa, int nrows, bench_env *env, const timing_cfg *tc, const pypeer_cfg *pyc);
/* a python peer that ran but disagrees with attn fails the bench, as the naive peer does */
int bad_pypeer(const bench_row *r);

/* ─── layer rows (bench_layer.c) ─────────────────────────────────────────── */
typedef struct layer_res {
    int ran;
    char note[256];
    int64_t E, H, B, S;
    double flops_fwd, flops_fb; /* torch_mha_peer.py convention */
    bu_timing fwd, fb;          /* attn_mha eval forward; training forward + backward */
    bu_timing gemm_fwd, gemm_bwd, sdpa_fwd, sdpa_bwd;
    double torch_fwd_ms, torch_fb_ms; /* < 0: not measured */
    char torch_note[256], torch_version[64];
} layer_res;
void run_layer(layer_res *L, int64_t seq, int threads, const timing_cfg *tc, int torch, int torch_repeat);

/* ─── --memory (bench_memory.c) ──────────────────────────────────────────── */
int run_memory(int64_t S, int threads, const char *json_path);

/* ─── tables (bench_table.c) ─────────────────────────────────────────────── */
void print_header(const bench_opts *o, const bench_env *env);
void print_sdpa_head(void);
void print_row(const bench_row *r, double peak, bench_env *env);
void print_decode_head(void);
void print_decode(const bench_row *r, double peak, bench_env *env);
void print_decode_legend(void);
void print_pypeer_legend(const bench_row *rows, int n, int threads);
void print_layer(const layer_res *L, double peak, int threads);
void print_probe_summary(bench_env *env, const bench_row *rows, int n);

/* ─── --json (bench_json.c), --plot (bench_plot.c): 0, or 1 with the error reported ─── */
int bench_write_json(const char *path, bench_env *env, const bench_row *rows, int nrows, const layer_res *L);
int bench_plot(const char *path, const bench_env *env, const bench_row *rows, int nsdpa, double peak);

#endif
