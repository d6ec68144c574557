/* SPDX-License-Identifier: MIT */
/* cmd_mpi_bench.c — `attn-mpi bench` (the issue's `attn bench --mpi`): ring
 * attention under mpirun; per rank: compute time, bytes sent / received,
 * time spent waiting, and the fraction of the communication hidden behind
 * compute.
 *
 *   mpirun -np N attn-mpi bench [--seq S] [--batch B] [--heads H] [--kv-heads H]
 *                               [--dim D] [--causal] [--zigzag] [--window W]
 *                               [--bwd] [--link-mbps X] [--iters n] [--json]
 *
 * Each iteration runs the forward (and, with --bwd, the backward) once; the
 * figures are the last iteration's (the first is a warm-up when iters > 1).
 * --link-mbps simulates a link of X MB/s per direction (see
 * attn_mpi_ring_set_link_bandwidth): each step's transfers complete no
 * earlier than bytes / bandwidth after they were posted. The overlap check
 * printed at the end compares the run's wall time T with
 *   compute = the same run's time without the simulated link, and
 *   comm    = sum over steps of the step's bytes / bandwidth,
 * and reports T / max(compute, comm) (the issue asks for <= 1.15). */
#include "args.h"
#include "attn_mpi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_cfg {
    int64_t S, B, Hq, Hkv, D, window, iters;
    int causal, zigzag, bwd, json;
    double link_mbps;
} bench_cfg;

typedef struct rank_fig {
    double total, compute, wait, comm;
    double sent, recv, blocks, skipped;
} rank_fig;

typedef struct bench_data {
    float *q, *k, *v, *o, *lse, *dO, *dq, *dk, *dv;
} bench_data;

static int64_t fill(float *p, int64_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
    }
    return n;
}

/* One fwd (+ bwd) call; sums the two calls' figures. */
static attn_status run_once(attn_mpi_ring *ring, const bench_cfg *c, bench_data *x, rank_fig *f) {
    int N;
    MPI_Comm_size(MPI_COMM_WORLD, &N);
    const int64_t sl = c->S / N;
    attn_sdpa_dims d = {c->B, c->S, c->S, c->Hq, c->Hkv, c->D, c->D};
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = c->causal;
    if (c->window >= 0) o.window_left = c->window;
    attn_view q = attn_view_bshd(x->q, sl, c->Hq, c->D), k = attn_view_bshd(x->k, sl, c->Hkv, c->D);
    attn_view v = attn_view_bshd(x->v, sl, c->Hkv, c->D), out = attn_view_bshd(x->o, sl, c->Hq, c->D);
    memset(f, 0, sizeof *f);
    attn_mpi_stats st;
    attn_status s = attn_mpi_ring_fwd(ring, &d, q, k, v, out, x->lse, &o);
    if (s) return s;
    attn_mpi_ring_stats(ring, &st);
    f->total += st.total_s; f->compute += st.compute_s; f->wait += st.wait_s; f->comm += st.comm_s;
    f->sent += (double)st.bytes_sent; f->recv += (double)st.bytes_recv;
    f->blocks += (double)st.blocks_computed; f->skipped += (double)st.blocks_skipped;
    if (!c->bwd) return ATTN_OK;
    s = attn_mpi_ring_bwd(ring, &d, q, k, v, out, attn_view_bshd(x->dO, sl, c->Hq, c->D), x->lse,
                          attn_view_bshd(x->dq, sl, c->Hq, c->D), attn_view_bshd(x->dk, sl, c->Hkv, c->D),
                          attn_view_bshd(x->dv, sl, c->Hkv, c->D), &o);
    if (s) return s;
    attn_mpi_ring_stats(ring, &st);
    f->total += st.total_s; f->compute += st.compute_s; f->wait += st.wait_s; f->comm += st.comm_s;
    f->sent += (double)st.bytes_sent; f->recv += (double)st.bytes_recv;
    f->blocks += (double)st.blocks_computed; f->skipped += (double)st.blocks_skipped;
    return ATTN_OK;
}

static attn_status run_iters(attn_mpi_ring *ring, const bench_cfg *c, bench_data *x, rank_fig *f) {
    attn_status s = ATTN_OK;
    for (int64_t it = 0; it < c->iters && s == ATTN_OK; it++) {
        MPI_Barrier(MPI_COMM_WORLD);
        s = run_once(ring, c, x, f);
    }
    return s;
}

/* sum over steps of max(sent, recv) / bandwidth: the simulated link's time */
static double link_time(const rank_fig *f, double bps) { return bps > 0 ? fmax(f->sent, f->recv) / bps : 0.0; }

static void report(const bench_cfg *c, int N, int rank, const rank_fig *with, const rank_fig *alone, double bps) {
    rank_fig *all = rank == 0 ? malloc((size_t)N * 2 * sizeof *all) : NULL;
    rank_fig mine[2] = {*with, *alone};
    MPI_Gather(mine, (int)(2 * sizeof *mine), MPI_BYTE, all, (int)(2 * sizeof *mine), MPI_BYTE, 0, MPI_COMM_WORLD);
    if (rank != 0) return;
    if (!c->json) {
        printf("attn-mpi bench: %d ranks, S=%lld B=%lld Hq=%lld Hkv=%lld D=%lld %s%s%s, %s, threads/rank %d\n", N,
               (long long)c->S, (long long)c->B, (long long)c->Hq, (long long)c->Hkv, (long long)c->D,
               c->causal ? "causal " : "", c->window >= 0 ? "window " : "", c->zigzag ? "zigzag" : "contiguous",
               c->bwd ? "fwd+bwd" : "fwd", attn_get_num_threads());
        if (bps > 0) printf("simulated link: %.1f MB/s per direction\n", bps / 1e6);
        printf("rank  total_ms  compute_ms  wait_ms  comm_ms  sent_MB  recv_MB  blocks skipped  hidden  "
               "T/max(compute,comm)\n");
    } else {
        printf("{\"ranks\": %d, \"S\": %lld, \"link_MBps\": %g, \"per_rank\": [", N, (long long)c->S, bps / 1e6);
    }
    for (int r = 0; r < N; r++) {
        const rank_fig *w = &all[2 * r], *a = &all[2 * r + 1];
        double comm = bps > 0 ? link_time(w, bps) : w->comm;
        double hidden = comm > 0 ? fmax(0.0, 1.0 - w->wait / comm) : 1.0;
        double ratio = w->total / fmax(a->total, comm);
        if (!c->json)
            printf("%4d  %8.2f  %10.2f  %7.2f  %7.2f  %7.2f  %7.2f  %6.0f %7.0f  %5.1f%%  %.3f\n", r, 1e3 * w->total,
                   1e3 * w->compute, 1e3 * w->wait, 1e3 * comm, w->sent / 1e6, w->recv / 1e6, w->blocks, w->skipped,
                   100.0 * hidden, ratio);
        else
            printf("%s{\"rank\": %d, \"total_s\": %.6f, \"compute_s\": %.6f, \"wait_s\": %.6f, \"comm_s\": %.6f, "
                   "\"bytes_sent\": %.0f, \"bytes_recv\": %.0f, \"hidden\": %.4f, \"no_link_total_s\": %.6f, "
                   "\"ratio\": %.4f}",
                   r ? ", " : "", r, w->total, w->compute, w->wait, comm, w->sent, w->recv, hidden, a->total, ratio);
    }
    if (c->json) printf("]}\n");
    else if (bps > 0)
        printf("T/max(compute, comm): the run's time over the larger of its time without the simulated link and "
               "the link's time (<= 1.15: overlapped)\n");
    free(all);
}

int cmd_mpi_bench(int argc, char **argv) {
    static const char sub[] = "bench --mpi"; /* errors and usage read "attn bench --mpi ..." */
    int mpi_flag = 0;
    bench_cfg c = {4096, 1, 8, 2, 64, ARG_UNSET, 3, 0, 0, 0, 0, 0.0};
    int64_t threads = ARG_UNSET;
    int help = 0;
    arg_spec specs[] = {
        {"seq", ARG_INT, &c.S, "S", "global sequence length (default 4096)"},
        {"batch", ARG_INT, &c.B, "B", "batch (default 1)"},
        {"heads", ARG_INT, &c.Hq, "H", "query heads (default 8)"},
        {"kv-heads", ARG_INT, &c.Hkv, "H", "key/value heads (default 2)"},
        {"dim", ARG_INT, &c.D, "D", "head dim (default 64)"},
        {"causal", ARG_FLAG, &c.causal, NULL, "causal mask"},
        {"zigzag", ARG_FLAG, &c.zigzag, NULL, "zigzag shards (causal load balance)"},
        {"window", ARG_INT, &c.window, "W", "sliding window (keys p-W .. p)"},
        {"bwd", ARG_FLAG, &c.bwd, NULL, "forward + backward"},
        {"link-mbps", ARG_DOUBLE, &c.link_mbps, "X", "simulate a link of X MB/s per direction"},
        {"iters", ARG_INT, &c.iters, "n", "iterations (default 3; figures of the last)"},
        {"threads", ARG_INT, &threads, "N", "kernel threads per rank"},
        {"json", ARG_FLAG, &c.json, NULL, "JSON output"},
        {"mpi", ARG_FLAG, &mpi_flag, NULL, "(accepted: 'attn bench --mpi' runs this command)"},
    };
    const int nspecs = (int)(sizeof specs / sizeof *specs);
    int rank, N;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &N);
    if (args_parse(sub, argc, argv, specs, nspecs, &help)) return 2;
    if (help) {
        if (rank == 0)
            args_print_help(sub, "[options]  (under mpirun -np N)",
                            "Ring attention over MPI: per-rank compute, bytes, waiting, hidden communication.",
                            specs, nspecs);
        return 0;
    }
    if (args_threads(sub, &threads)) return 2;
    if (c.window == ARG_UNSET) c.window = -1;
    if (c.S < 1 || c.B < 1 || c.Hq < 1 || c.Hkv < 1 || c.D < 1 || c.iters < 1 || c.link_mbps < 0)
        return cli_fail(sub, "sizes and --iters must be >= 1, --link-mbps >= 0");
    attn_mpi_ring *ring = NULL;
    if (attn_mpi_ring_create(&ring, MPI_COMM_WORLD, c.zigzag ? ATTN_MPI_ZIGZAG : ATTN_MPI_CONTIGUOUS) != ATTN_OK)
        return cli_fail(sub, "%s", attn_mpi_last_error());
    const int64_t sl = c.S / N;
    bench_data x;
    const size_t nq = (size_t)(c.B * sl * c.Hq * c.D), nk = (size_t)(c.B * sl * c.Hkv * c.D);
    x.q = malloc(nq * 4); x.o = malloc(nq * 4); x.dO = malloc(nq * 4); x.dq = malloc(nq * 4);
    x.k = malloc(nk * 4); x.v = malloc(nk * 4); x.dk = malloc(nk * 4); x.dv = malloc(nk * 4);
    x.lse = malloc((size_t)(c.B * c.Hq * sl) * 4);
    int rc = 0;
    if (!x.q || !x.o || !x.dO || !x.dq || !x.k || !x.v || !x.dk || !x.dv || !x.lse) {
        rc = cli_fail(sub, "out of memory");
    } else {
        fill(x.q, (int64_t)nq, 1 + (uint64_t)rank); fill(x.k, (int64_t)nk, 101 + (uint64_t)rank);
        fill(x.v, (int64_t)nk, 201 + (uint64_t)rank); fill(x.dO, (int64_t)nq, 301 + (uint64_t)rank);
        rank_fig alone = {0}, with;
        attn_status s = run_iters(ring, &c, &x, &alone); /* no simulated link */
        with = alone;
        const double bps = c.link_mbps * 1e6;
        if (s == ATTN_OK && bps > 0) {
            attn_mpi_ring_set_link_bandwidth(ring, bps);
            s = run_iters(ring, &c, &x, &with);
        }
        if (s != ATTN_OK) rc = cli_fail(sub, "%s", attn_mpi_last_error());
        else report(&c, N, rank, &with, &alone, bps);
    }
    free(x.q); free(x.k); free(x.v); free(x.o); free(x.lse); free(x.dO); free(x.dq); free(x.dk); free(x.dv);
    attn_mpi_ring_free(ring);
    return rc;
}
