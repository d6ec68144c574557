/* SPDX-License-Identifier: MIT */
/* cmd_bench.c — `attn bench`: speed of the sdpa kernels and of the layer,
 * next to peers measured in the same process.
 *
 *  sdpa rows   forward, backward, causal forward, causal backward at
 *              Llama-3-8B (Hq 32, Hkv 8, D 128) and GPT-2 (Hq = Hkv = 12, D 64)
 *              attention, batch 1, S = 512 .. 4096; single-token decode
 *              (Sq = 1, bottom-right) against a 4096-long cache.
 *              Peer: bench_peer.c (naive OpenBLAS, materialised Sq x Sk).
 *  layer rows  attn_mha forward and forward+backward at E = 1024, 16 heads,
 *              B = 4, S = 2048; the same work done by its parts (OpenBLAS
 *              GEMMs + sdpa kernels) timed separately; PyTorch
 *              nn.MultiheadAttention via bench/torch_mha_peer.py if available.
 *  decode-paged rows  batched decode through a paged KV cache next to the same
 *              batch from a contiguous head-major cache, vs a streaming-read
 *              probe (bench_paged.c).
 *  --memory    one causal forward at S = 32768, Hq 32, Hkv 8, D 128:
 *              peak RSS minus inputs and outputs.
 *
 * The parts are listed in bench_cmd.h; this file is the order of a run. */
#include "bench_cmd.h"
#include "bench_paged.h"
#include "cli.h"
#include "mpi_delegate.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The probes (FP32 FMA; bf16 dot when a bf16 row runs) and the machine, for the header. */
static void env_init(bench_env *env, const bench_opts *o, const bench_row *rows, int nrows, const char *reexec) {
    memset(env, 0, sizeof *env);
    env->cpu = attn__cpu();
    env->threads = (int)o->threads;
    env->reexec = reexec;
    progress("measuring the FP32 FMA peak");
    bu_peak_init(&env->pk, env->threads);
    env->probe_isa = env->pk.isa;
    for (int i = 0; i < nrows && !env->have_pkb; i++)
        if (rows[i].dt == ATTN_DTYPE_BF16) env->have_pkb = bu_peak_init_bf16(&env->pkb, env->threads);
    progress_clear();
    env->core = peer_blas_core();
}

/* The decode-paged rows (bench_paged.c) after the streaming-read probe every decode row is judged against. */
static int run_paged(const bench_opts *o, const timing_cfg *tc) {
    if (o->no_decode) return 0;
    bench_bw_probe((int)o->threads); /* JSON pct_bw */
    if (o->no_paged) return 0;
    const bench_paged_cfg pc = { (int)o->threads, (int)o->runs, o->min_time, tc->max_time, o->pbatches, o->npb, o->pctx,
                                 o->npc, o->block_size, 2.0, o->kv_dtypes, o->kv_fast, o->nkv };
    return bench_paged_run(&pc);
}

/* The layer rows; returns 1 if they failed. *peak: the FMA peak after them. */
static int run_layer_rows(const bench_opts *o, const timing_cfg *tc, bench_env *env, layer_res *L, double *peak) {
    timing_cfg ltc = *tc;
    if (o->quick) { ltc.min_runs = 1; ltc.min_time = 0; }
    run_layer(L, o->layer_seq, env->threads, &ltc, !o->no_torch, o->quick ? 1 : (int)o->runs);
    bu_peak_sample(&env->pk, 2);
    *peak = env->pk.best;
    progress_clear();
    print_layer(L, *peak, env->threads);
    return !L->ran;
}

int cmd_bench(int argc, char **argv) {
    if (cli_has_flag(argc, argv, "--mpi")) return cli_mpi_delegate("bench", argc, argv); /* attn-mpi bench */
    bench_opts o;
    int help = 0;
    if (bench_opts_parse(argc, argv, &o, &help)) return 1;
    if (help) return 0;
    progress_init(isatty(2));
    cpu_share_threads((int)o.threads);
    attn_set_num_threads((int)o.threads);
    if (o.memory) return run_memory(o.memory_seq, (int)o.threads, o.json_path);

    const char *reexec = bench_blas_reexec(argc, argv); /* OPENBLAS_CORETYPE=SkylakeX when it helps */
    peer_blas_set_threads((int)o.threads);
    /* --quick: at most ~2 s of timed runs per side */
    const timing_cfg tc = { (int)o.runs, o.min_time, o.quick ? 2.0 : 60.0 };
    static bench_row rows[BENCH_MAX_ROWS];
    int nsdpa;
    const int nrows = bench_rows_build(&o, rows, &nsdpa);
    pypeer_cfg pyc;
    pypeer_cfg_init(&pyc, &o, &tc);
    bench_env env;
    env_init(&env, &o, rows, nrows, reexec);
    print_header(&o, &env);

    int nbad = run_sdpa_rows(rows, nsdpa, nrows, &env, &tc, &pyc);
    nbad += run_decode_rows(rows, nsdpa, nrows, &env, &tc, &pyc);
    print_pypeer_legend(rows, nrows, env.threads);
    nbad += run_paged(&o, &tc);
    layer_res L;
    memset(&L, 0, sizeof L);
    double peak = env.pk.best; /* of the plot's title */
    if (!o.no_layer) nbad += run_layer_rows(&o, &tc, &env, &L, &peak);
    bu_peak_sample(&env.pk, 2);
    if (env.have_pkb) bu_peak_sample(&env.pkb, 2);
    if (bench_bw_probe_last()->samples) bench_bw_probe((int)o.threads); /* a last bandwidth sample too */
    print_probe_summary(&env, rows, nrows);
    fflush(stdout);

    const int jbad = o.json_path && bench_write_json(o.json_path, &env, rows, nrows, o.no_layer ? NULL : &L);
    bench_bw_probe_free();
    if (jbad) return 1;
    if (o.plot_path && bench_plot(o.plot_path, &env, rows, nsdpa, peak)) return 1;
    if (nbad) {
        fprintf(stderr, "attn bench: %d row%s failed or did not validate against the peer\n", nbad, nbad > 1 ? "s" : "");
        return 1;
    }
    return 0;
}
