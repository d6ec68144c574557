/* SPDX-License-Identifier: MIT */
/* bench_pypeer.h — PyTorch and ONNX Runtime as peers of the sdpa rows of
 * `attn bench`, run in a python3 subprocess (bench/sdpa_peer.py).
 *
 * Per problem (one shape, its variants): the inputs are written once into a
 * private temporary directory with the library's attn_npy_write (temp file +
 * rename); each peer's script runs over the variants, writes its outputs
 * there (<peer>.<variant>.<o|dq|dk|dv>.npy) and prints one JSON line per
 * variant (read with the library's JSON reader). The caller compares those
 * outputs with attn's (pypeer_load) before it trusts the timing.
 *
 * Script: $ATTN_BENCH_SDPA_PEER if set (the tests use a numpy stand-in),
 * else <source dir>/bench/sdpa_peer.py. */
#ifndef ATTN_TOOL_BENCH_PYPEER_H
#define ATTN_TOOL_BENCH_PYPEER_H

#include "attn.h"

enum { PYPEER_TORCH, PYPEER_ORT, PYPEER_N };
const char *pypeer_name(int peer); /* "torch", "ort" */

typedef struct pypeer_res {
    int ran;          /* the peer timed this variant (ms etc. valid) */
    double ms, best_ms, cpu_share;
    int runs;
    double err;       /* max |attn - peer| / max |peer| (set by the caller) */
    int valid;        /* err <= the bench's tolerance (set by the caller) */
    char op[160];     /* what the peer ran, e.g. "MultiHeadAttention" */
    char version[48];
    char note[200];   /* why not ran: "n/a: ..." */
} pypeer_res;

typedef struct pypeer_dir {
    char path[64]; /* "" when not created */
    int kv_head_major, has_do;
    const char *dtype; /* "f32" (or NULL), "bf16", "f16": the peer casts the (already rounded) inputs */
} pypeer_dir;

typedef struct pypeer_timing {
    int threads, runs;
    double min_time, max_time;
} pypeer_timing;

/* Creates the directory and writes q (B, Sq, Hq, D), k and v (B, Sk, Hkv, D) or
 * (B, Hkv, Sk, D) when kv_head_major, dO (B, Sq, Hq, D) if non-NULL.
 * 0 on success, else 1 with a reason in err. */
int pypeer_begin(pypeer_dir *pd, const attn_sdpa_dims *d, int kv_head_major, const float *q, const float *k,
                 const float *v, const float *dO, char *err, size_t errlen);
/* Runs one peer over variants[0..n) (names as in the bench: "fwd", "bwd-causal", "decode-hm", ...);
 * fills res[0..n). Never fails: a variant without a result gets res->note. */
void pypeer_run(int peer, const pypeer_dir *pd, const char *const *variants, int n, const pypeer_timing *tc,
                pypeer_res *res);
/* The peer's output `name` ("o", "dq", "dk", "dv") of a variant if it holds exactly n floats
 * (free with attn_npy_free), else NULL. */
const float *pypeer_load(int peer, const pypeer_dir *pd, const char *variant, const char *name, int64_t n,
                         attn_npy *arr);
/* Removes the directory and everything in it. */
void pypeer_end(pypeer_dir *pd);

#endif
