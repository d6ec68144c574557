/* SPDX-License-Identifier: MIT */
/* bench_json.c — `attn bench --json FILE`: every figure of the run, written
 * temp + rename (cli_out.h). Keys: the run (attn_version, cpu, isa, threads,
 * the probes, the OpenBLAS core), "rows" (the sdpa, decode and decode-paged
 * rows) and "layer" (unless --no-layer). */
#include "bench_cmd.h"
#include "bench_paged.h"
#include "args.h"
#include "cli_out.h"

#include <math.h>
#include <stdio.h>

static void json_timing(FILE *f, const char *key, const bu_timing *t) {
    fprintf(f, "\"%s\": {\"median_ms\": %.4f, \"best_ms\": %.4f, \"runs\": %d, \"cpu_share\": %.3f}", key, t->median_s * 1e3,
            t->best_s * 1e3, t->runs, cpu_share(t));
}

/* "torch_ms": ..., "torch_gflops": ..., "torch_speedup": ... (null when the peer did not run) */
static void json_pypeers(FILE *f, const bench_row *r) {
    for (int k = 0; k < PYPEER_N; k++) {
        const pypeer_res *py = &r->py[k];
        const char *n = pypeer_name(k);
        if (py->ran && r->ran) {
            fprintf(f, ", \"%s_ms\": %.4f, \"%s_best_ms\": %.4f, \"%s_runs\": %d, \"%s_gflops\": %.2f, \"%s_speedup\": %.3f, "
                       "\"%s_max_err\": %.3e, \"%s_valid\": %s, \"%s_cpu_share\": %.3f, \"%s_op\": ",
                    n, py->ms, n, py->best_ms, n, py->runs, n, r->flops / py->ms * 1e-6, n, py->ms / (r->ta.median_s * 1e3), n,
                    isfinite(py->err) ? py->err : -1.0, n, py->valid ? "true" : "false", n, py->cpu_share, n);
            bu_json_str(f, py->op);
            fprintf(f, ", \"%s_version\": ", n);
            bu_json_str(f, py->version);
        } else {
            fprintf(f, ", \"%s_ms\": null, \"%s_gflops\": null, \"%s_speedup\": null", n, n, n);
        }
        if (py->note[0]) {
            fprintf(f, ", \"%s_note\": ", n);
            bu_json_str(f, py->note);
        }
    }
}

static void json_run(FILE *f, const bench_env *env) {
    const bu_peak *pk = &env->pk;
    fprintf(f, "{\n  \"attn_version\": \"%s\", \"cpu\": ", attn_version());
    bu_json_str(f, env->cpu->brand);
    fprintf(f, ", \"isa\": \"%s\", \"threads\": %lld,\n  \"peak_gflops\": %.2f, \"peak_probe\": \"%s\", "
               "\"peak_worst_gflops\": %.2f, \"peak_samples\": %d, \"peak_spread\": %.4f,\n  \"blas_config\": ",
            attn_isa_name(attn_isa_active()), (long long)env->threads, pk->best, env->probe_isa, pk->worst, pk->samples,
            bu_peak_spread(pk));
    bu_json_str(f, peer_blas_config());
    fprintf(f, ", \"blas_core\": ");
    bu_json_str(f, env->core);
    if (env->have_pkb) fprintf(f, ", \"bf16_peak_gflops\": %.2f, \"bf16_peak_probe\": \"%s\"", env->pkb.best, env->pkb.isa);
    fprintf(f, ", \"blas_coretype_reexec\": %s,\n  ", env->reexec ? "true" : "false");
    const bu_bw *bw = bench_bw_probe_last();
    if (bw->best > 0)
        fprintf(f, "\"bw_probe_gbps\": %.2f, \"bw_probe_worst_gbps\": %.2f, \"bw_probe_samples\": %d, "
                   "\"bw_probe_spread\": %.4f,\n  \"rows\": [\n", bw->best, bw->worst, bw->samples, bu_bw_spread(bw));
    else fprintf(f, "\"bw_probe_gbps\": null,\n  \"rows\": [\n");
}

/* the timed figures of a row that ran */
static void json_row_ran(FILE *f, const bench_row *r, bench_env *env) {
    fprintf(f, ", ");
    json_timing(f, "attn", &r->ta);
    fprintf(f, ", ");
    json_timing(f, "peer", &r->tp);
    const double ag = r->flops / r->ta.median_s * 1e-9;
    fprintf(f, ", \"attn_gflops\": %.2f, \"peer_gflops\": %.2f, \"speedup\": %.3f", ag,
            r->flops / r->tp.median_s * 1e-9, r->tp.median_s / r->ta.median_s);
    const bu_peak *pr = row_probe(r, env);
    if (pr != &env->pk) fprintf(f, ", \"peak_probe\": \"bf16_dot\"");
    if (ag <= pr->best) fprintf(f, ", \"pct_peak\": %.2f", 100 * ag / pr->best);
    else fprintf(f, ", \"pct_peak\": null, \"pct_peak_note\": \"above the FMA probe: the probe was disturbed\"");
    if (is_decode(r->variant)) {
        const double g = r->bytes / r->ta.median_s * 1e-9, bw = bench_bw_probe_last()->best;
        fprintf(f, ", \"kv_dtype\": \"f32\", \"kv_bytes\": %.0f, \"attn_gbps\": %.2f, \"peer_gbps\": %.2f, "
                   "\"gbps\": %.2f", r->bytes, g, r->bytes / r->tp.median_s * 1e-9, g);
        if (bw > 0) fprintf(f, ", \"pct_bw\": %.2f%s", 100 * g / bw, g > bw ? ", \"pct_bw_above_probe\": true" : "");
        else fprintf(f, ", \"pct_bw\": null");
    }
}

static void json_row(FILE *f, const bench_row *r, bench_env *env, int last) {
    fprintf(f, "    {\"model\": \"%s\", \"variant\": \"%s\", \"B\": %lld, \"Sq\": %lld, \"Sk\": %lld, \"Hq\": %lld, "
               "\"Hkv\": %lld, \"D\": %lld, \"flops\": %.0f, \"ran\": %s, \"valid\": %s, \"max_err\": %.3e",
            r->m->name, VNAMES[r->variant], (long long)r->B, (long long)r->Sq, (long long)r->Sk, (long long)r->m->Hq,
            (long long)r->m->Hkv, (long long)r->m->D, r->flops, r->ran ? "true" : "false", r->valid ? "true" : "false",
            isfinite(r->err) ? r->err : -1.0);
    if (!is_decode(r->variant)) fprintf(f, ", \"dtype\": \"%s\"", dtype_name(r->dt));
    if (r->ran) {
        json_row_ran(f, r, env);
    } else {
        fprintf(f, ", \"note\": ");
        bu_json_str(f, r->note);
    }
    json_pypeers(f, r);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void json_layer(FILE *f, const layer_res *L) {
    fprintf(f, ",\n  \"layer\": {\"E\": %lld, \"heads\": %lld, \"B\": %lld, \"S\": %lld, \"ran\": %s", (long long)L->E,
            (long long)L->H, (long long)L->B, (long long)L->S, L->ran ? "true" : "false");
    if (L->ran) {
        fprintf(f, ", \"flops_fwd\": %.0f, \"flops_fwd_bwd\": %.0f, ", L->flops_fwd, L->flops_fb);
        json_timing(f, "fwd", &L->fwd); fprintf(f, ", ");
        json_timing(f, "fwd_bwd", &L->fb); fprintf(f, ", ");
        json_timing(f, "gemm_fwd", &L->gemm_fwd); fprintf(f, ", ");
        json_timing(f, "gemm_bwd", &L->gemm_bwd); fprintf(f, ", ");
        json_timing(f, "sdpa_fwd", &L->sdpa_fwd); fprintf(f, ", ");
        json_timing(f, "sdpa_bwd", &L->sdpa_bwd);
        fprintf(f, ", \"torch_fwd_ms\": %.3f, \"torch_fwd_bwd_ms\": %.3f, \"torch_note\": ", L->torch_fwd_ms, L->torch_fb_ms);
        bu_json_str(f, L->torch_note);
    } else {
        fprintf(f, ", \"note\": ");
        bu_json_str(f, L->note);
    }
    fprintf(f, "}");
}

int bench_write_json(const char *path, bench_env *env, const bench_row *rows, int nrows, const layer_res *L) {
    cli_out jout;
    FILE *f = cli_out_open(&jout);
    if (!f) return cli_fail(BENCH_SUB, "--json %s: out of memory", path);
    json_run(f, env);
    for (int i = 0; i < nrows; i++) json_row(f, &rows[i], env, i + 1 == nrows && !bench_paged_nrows());
    bench_paged_json(f);
    fprintf(f, "  ]");
    if (L) json_layer(f, L);
    fprintf(f, "\n}\n");
    if (cli_out_commit(&jout, path) != ATTN_OK) return cli_fail(BENCH_SUB, "--json %s", attn_last_error());
    printf("\nwrote %s\n", path);
    return 0;
}
