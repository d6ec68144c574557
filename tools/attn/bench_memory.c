/* SPDX-License-Identifier: MIT */
/* bench_memory.c — `attn bench --memory`: one causal forward at S = 32768
 * (--memory-seq), Hq 32, Hkv 8, D 128: peak RSS minus inputs and outputs. */
#include "bench_cmd.h"
#include "cli.h"
#include "cli_out.h"
#include "args.h"

#include <stdio.h>
#include <string.h>

int run_memory(int64_t S, int threads, const char *json_path) {
    const model_shape m = { "llama3-8b", 32, 8, 128 };
    const int64_t base_rss = bu_current_rss(), base_peak = bu_peak_rss();
    attn_sdpa_dims d = { .batch = 1, .seq_q = S, .seq_k = S, .heads_q = m.Hq, .heads_kv = m.Hkv, .head_dim = m.D, .head_dim_v = m.D };
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = 1;
    o.num_threads = threads;
    const int64_t nq = S * m.Hq * m.D, nk = S * m.Hkv * m.D, nl = S * m.Hq;
    const double io_bytes = (double)(2 * nq + 2 * nk + nl) * sizeof(float);
    printf("attn bench --memory: causal forward, B 1, S %lld, Hq %lld, Hkv %lld, D %lld, %d threads\n", (long long)S,
           (long long)m.Hq, (long long)m.Hkv, (long long)m.D, threads);
    printf("inputs + outputs (q, k, v, o, lse): %.1f MiB; process RSS before allocating them: %.1f MiB\n",
           io_bytes / 1048576.0, (double)base_rss / 1048576.0);
    fflush(stdout);
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *out = falloc(nq), *lse = falloc(nl);
    if (!q || !k || !v || !out || !lse) return cli_fail(BENCH_SUB, "--memory: cannot allocate %.0f MiB of inputs/outputs", io_bytes / 1048576.0);
    progress("memory: filling inputs");
    fill_rand(q, nq, 1); fill_rand(k, nk, 2); fill_rand(v, nk, 3);
    memset(out, 0, (size_t)nq * sizeof(float));
    memset(lse, 0, (size_t)nl * sizeof(float));
    size_t wsn = attn_sdpa_fwd_workspace_size(&d, &o);
    void *ws = wsn ? attn__malloc(wsn) : NULL;
    if (wsn && !ws) return cli_fail(BENCH_SUB, "--memory: cannot allocate the %zu-byte workspace", wsn);
    progress("memory: running the forward (S = %lld, ~%.0f GFLOP)", (long long)S, sdpa_flops(&m, S, S, V_FWD_CAUSAL) * 1e-9);
    double t0 = bu_now();
    attn_status st = attn_sdpa_fwd(&d, attn_view_bshd(q, S, m.Hq, m.D), attn_view_bshd(k, S, m.Hkv, m.D),
                                   attn_view_bshd(v, S, m.Hkv, m.D), attn_view_bshd(out, S, m.Hq, m.D), lse, &o, ws, wsn);
    double dt = bu_now() - t0;
    progress_clear();
    if (st != ATTN_OK) return cli_fail(BENCH_SUB, "--memory: attn_sdpa_fwd: %s", attn_last_error());
    const int64_t peak = bu_peak_rss();
    const double extra = (double)peak - io_bytes;
    printf("forward: %.2f s, %.1f GFLOP/s\n", dt, sdpa_flops(&m, S, S, V_FWD_CAUSAL) / dt * 1e-9);
    printf("peak RSS (getrusage): %.1f MiB; minus inputs+outputs: %.1f MiB (target <= 64 MiB: %s)\n",
           (double)peak / 1048576.0, extra / 1048576.0, extra <= 64.0 * 1048576.0 ? "met" : "NOT met");
    printf("  of which: process before the run %.1f MiB (code, libraries, OpenBLAS), kernel workspace %.2f MiB\n",
           (double)base_rss / 1048576.0, (double)wsn / 1048576.0);
    (void)base_peak;
    if (json_path) {
        cli_out jout;
        FILE *f = cli_out_open(&jout);
        if (!f) return cli_fail(BENCH_SUB, "--json %s: out of memory", json_path);
        fprintf(f, "{\"memory\": {\"S\": %lld, \"Hq\": %lld, \"Hkv\": %lld, \"D\": %lld, \"causal\": true, \"threads\": %d, "
                   "\"io_bytes\": %.0f, \"peak_rss_bytes\": %lld, \"extra_bytes\": %.0f, \"base_rss_bytes\": %lld, "
                   "\"workspace_bytes\": %zu, \"seconds\": %.3f}}\n",
                (long long)S, (long long)m.Hq, (long long)m.Hkv, (long long)m.D, threads, io_bytes, (long long)peak, extra,
                (long long)base_rss, wsn, dt);
        if (cli_out_commit(&jout, json_path) != ATTN_OK) return cli_fail(BENCH_SUB, "--json %s", attn_last_error());
    }
    attn__free(q); attn__free(k); attn__free(v); attn__free(out); attn__free(lse); attn__free(ws);
    return 0;
}
