/* SPDX-License-Identifier: MIT */
/* bench_table.c — the human tables of `attn bench` on stdout: the header
 * (machine, probes, peer, timing rule), the sdpa and decode rows, the python
 * peers' legend, the layer rows and the probe summary. */
#include "bench_cmd.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *cli_blas_core_hint(const char *core); /* cmd_info.c */

/* ─── cells ──────────────────────────────────────────────────────────────── */
static int g_threads = 1;
void cpu_share_threads(int threads) { g_threads = threads; }
/* CPU time the process got during the timed runs / (wall time x threads): ~1 on an idle
 * machine, well below when other processes took the cores (the row's times are then inflated). */
double cpu_share(const bu_timing *t) {
    return t->total_s > 0 ? t->cpu_s / (t->total_s * (double)g_threads) : 0;
}
/* The "%peak" cell: a row above 100% of the probe means the probe was disturbed (a busy moment
 * while it ran), so it is flagged, never printed as a result. */
static const char *pct_cell(char *buf, size_t n, double gflops, double peak) {
    if (peak > 0 && gflops <= peak) snprintf(buf, n, "%6.1f%%", 100.0 * gflops / peak);
    else snprintf(buf, n, "%7s", ">probe");
    return buf;
}
double peak_for(bu_peak *pk, double gflops) {
    if (gflops > pk->best) bu_peak_sample(pk, 3);
    return pk->best;
}
/* The bf16 fast path (attn.h "Reduced precision": every tensor of the row
 * BF16, even D = Dv, AVX512_BF16) runs all the products of the forward and of
 * the backward on the bf16 dot-product unit: judged against the bf16 probe. */
bu_peak *row_probe(const bench_row *r, bench_env *env) {
    return env->have_pkb && r->dt == ATTN_DTYPE_BF16 && r->m->D % 2 == 0 && attn_isa_active() == ATTN_ISA_AVX512
               ? &env->pkb
               : &env->pk;
}

/* ─── header ─────────────────────────────────────────────────────────────── */
static void print_peer_core(const bench_env *env) {
    const char *hint;
    printf("peer: naive per-head OpenBLAS sgemm + softmax with a materialised Sq x Sk buffer; OpenBLAS core %s, %lld threads\n",
           env->core, (long long)env->threads);
    if (env->reexec)
        printf("      (OPENBLAS_CORETYPE was unset and OpenBLAS picked %s on this AVX-512 CPU: attn bench re-executed itself "
               "with OPENBLAS_CORETYPE=SkylakeX)\n", env->reexec);
    else if ((hint = cli_blas_core_hint(env->core)) != NULL)
        printf("      (core %s is not the best for this CPU: set OPENBLAS_CORETYPE=%s for a stronger peer)\n", env->core, hint);
    else if (!(env->cpu->avx512f && env->cpu->os_avx512))
        printf("      (no usable AVX-512 on this CPU/OS, so OPENBLAS_CORETYPE=SkylakeX does not apply)\n");
}

static void print_load_note(void) {
    double load = 0;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf", &load) != 1) load = 0;
        fclose(lf);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 0 && load > 0.5 * (double)ncpu)
        printf("note: load average %.2f on %ld CPUs: other processes share this machine, so every figure (the peak\n"
               "      probe too) is noisy; compare attn with its peer on the same row, measured minutes apart at most\n",
               load, ncpu);
}

void print_header(const bench_opts *o, const bench_env *env) {
    const attn_cpu_features *cpu = env->cpu;
    printf("attn bench: attn %s, %s, kernel ISA %s, %lld threads, batch 1\n", attn_version(),
           cpu->brand[0] ? cpu->brand : "unknown CPU", attn_isa_name(attn_isa_active()), (long long)env->threads);
    printf("FP32 peak of this machine: %.1f GFLOP/s (%s probe, %lld threads; probed again after each problem,\n"
           "      the best probe is the peak: the final one and the spread are printed at the end)\n",
           env->pk.best, env->probe_isa, (long long)env->threads);
    if (env->have_pkb)
        printf("bf16 peak: %.1f GFLOP/s (%s probe: the %%peak of the bf16 fast-path rows, forward and backward;\n"
               "      f16 rows compute in fp32 and are judged against the FP32 peak)\n", env->pkb.best, env->pkb.isa);
    print_peer_core(env);
    print_load_note();
    printf("timing: median of >= %lld runs and >= %.2g s per side%s, after a validated warm-up run;\n"
           "        cpu%%a/p = CPU time the process got / (wall time x threads) while timing attn / the peer\n\n",
           (long long)o->runs, o->min_time, o->quick ? " (at most 2 s)" : "");
    fflush(stdout);
}

/* ─── sdpa and decode rows ───────────────────────────────────────────────── */
void print_sdpa_head(void) {
    printf("%-10s %-11s %5s %9s %8s %7s %9s %8s %8s %9s  %7s %9s %7s  %9s %7s  %7s\n", "model", "variant", "S",
           "attn ms", "GFLOP/s", "%peak", "peer ms", "GFLOP/s", "speedup", "max err", "cpu%a/p", "torch ms", "x", "ort ms",
           "x", "cpu%t/o");
}

/* "  torch ms      x" columns of one row: the peer's median and attn's speed-up over it, or n/a */
static void print_pypeer_cols(const bench_row *r) {
    for (int k = 0; k < PYPEER_N; k++) {
        const pypeer_res *py = &r->py[k];
        if (py->ran && r->ran) printf(" %9.2f %6.2fx%s", py->ms, py->ms / (r->ta.median_s * 1e3), py->valid ? " " : "!");
        else printf(" %9s %7s ", "n/a", "");
    }
    printf(" %3.0f/%3.0f", r->py[0].ran ? 100 * r->py[0].cpu_share : 0.0, r->py[1].ran ? 100 * r->py[1].cpu_share : 0.0);
}

void print_row(const bench_row *r, double peak, bench_env *env) {
    char vname[32];
    snprintf(vname, sizeof vname, "%s%s%s", r->dt != ATTN_DTYPE_F32 ? dtype_name(r->dt) : "",
             r->dt != ATTN_DTYPE_F32 ? " " : "", VNAMES[r->variant]);
    if (!r->ran) {
        printf("%-10s %-11s %5lld  %s\n", r->m->name, vname, (long long)r->Sq, r->note[0] ? r->note : "failed");
        return;
    }
    const double ams = r->ta.median_s * 1e3, pms = r->tp.median_s * 1e3;
    const double ag = r->flops / r->ta.median_s * 1e-9, pg = r->flops / r->tp.median_s * 1e-9;
    char pct[32];
    env->over_peak += ag > peak;
    printf("%-10s %-11s %5lld %9.2f %8.1f %s %9.2f %8.1f %7.2fx %9.1e  %3.0f/%3.0f", r->m->name, vname,
           (long long)r->Sq, ams, ag, pct_cell(pct, sizeof pct, ag, peak), pms, pg, pms / ams, r->err,
           100 * cpu_share(&r->ta), 100 * cpu_share(&r->tp));
    print_pypeer_cols(r);
    printf("%s\n", r->valid ? "" : "  INVALID");
}

void print_decode(const bench_row *r, double peak, bench_env *env) {
    if (!r->ran) {
        printf("%-10s %-9s %5lld  %s\n", r->m->name, VNAMES[r->variant], (long long)r->Sk, r->note[0] ? r->note : "failed");
        return;
    }
    const double ams = r->ta.median_s * 1e3, pms = r->tp.median_s * 1e3, ag = r->flops / r->ta.median_s * 1e-9;
    char pct[32];
    env->over_peak += ag > peak;
    printf("%-10s %-9s %5lld %9.3f %8.1f %8.1f %s %9.3f %8.1f %7.2fx %9.1e  %3.0f/%3.0f", r->m->name, VNAMES[r->variant],
           (long long)r->Sk, ams, r->bytes / r->ta.median_s * 1e-9, ag, pct_cell(pct, sizeof pct, ag, peak), pms,
           r->bytes / r->tp.median_s * 1e-9, pms / ams, r->err, 100 * cpu_share(&r->ta), 100 * cpu_share(&r->tp));
    print_pypeer_cols(r);
    printf("%s\n", r->valid ? "" : "  INVALID");
}

void print_decode_head(void) {
    printf("\n%-10s %-9s %5s %9s %8s %8s %7s %9s %8s %8s %9s  %7s %9s %7s  %9s %7s  %7s\n", "model", "decode", "Sk",
           "attn ms", "GB/s", "GFLOP/s", "%peak", "peer ms", "GB/s", "speedup", "max err", "cpu%a/p", "torch ms", "x",
           "ort ms", "x", "cpu%t/o");
}

void print_decode_legend(void) {
    printf("(decode: Sq = 1, bottom-right, batch 1, K/V (B, Sk, Hkv, D); decode-hm: K/V head-major (B, Hkv, Sk, D),\n"
           " the layout of attn_kvcache, read so by attn and the peer; GB/s = bytes of K and V read per call / time)\n");
}

/* What the torch / ort columns ran (first row that has each), and why a column is n/a. */
void print_pypeer_legend(const bench_row *rows, int n, int threads) {
    printf("(torch / ort: bench/sdpa_peer.py on the same inputs, %d threads, timed like attn; x = peer ms / attn ms;\n"
           " bwd = the backward alone in both (the peer's forward runs untimed before each timed backward);\n"
           " '!' = the peer's output differs from attn's; cpu%%t/o as cpu%%a/p for the two peers)\n", threads);
    for (int k = 0; k < PYPEER_N; k++) {
        const char *first_note = NULL;
        for (int i = 0; i < n; i++) {
            const pypeer_res *py = &rows[i].py[k];
            int seen = 0; /* this op on this model already named */
            for (int j = 0; j < i && !seen; j++)
                seen = rows[j].py[k].ran && rows[j].m == rows[i].m && !strcmp(rows[j].py[k].op, py->op);
            if (py->ran && !seen)
                printf(" %s %s: %s %s %s\n", pypeer_name(k), py->version, rows[i].m->name, VNAMES[rows[i].variant], py->op);
            if (py->note[0] && (!first_note || strcmp(first_note, py->note))) {
                printf(" %s %s %s: %s\n", pypeer_name(k), rows[i].m->name, VNAMES[rows[i].variant], py->note);
                first_note = py->note;
            }
        }
    }
}

/* ─── layer rows ─────────────────────────────────────────────────────────── */
static void print_layer_rows(const layer_res *L, double peak) {
    const double pf = (L->gemm_fwd.median_s + L->sdpa_fwd.median_s), pb = pf + L->gemm_bwd.median_s + L->sdpa_bwd.median_s;
    printf("%-18s %9s %8s %7s %9s %9s %9s %9s  %4s\n", "", "attn ms", "GFLOP/s", "%peak", "parts ms", "overhead",
           "torch ms", "vs torch", "cpu%");
    const double tf = L->torch_fwd_ms, tb = L->torch_fb_ms;
    char tfs[32] = "-", tbs[32] = "-", rfs[32] = "-", rbs[32] = "-";
    if (tf > 0) { snprintf(tfs, sizeof tfs, "%.1f", tf); snprintf(rfs, sizeof rfs, "%.2fx", tf / (L->fwd.median_s * 1e3)); }
    if (tb > 0) { snprintf(tbs, sizeof tbs, "%.1f", tb); snprintf(rbs, sizeof rbs, "%.2fx", tb / (L->fb.median_s * 1e3)); }
    const double gf = L->flops_fwd / L->fwd.median_s * 1e-9, gb = L->flops_fb / L->fb.median_s * 1e-9;
    printf("%-18s %9.1f %8.1f %6.1f%% %9.1f %8.2fx %9s %9s  %4.0f\n", "forward (eval)", L->fwd.median_s * 1e3, gf,
           100 * gf / peak, pf * 1e3, L->fwd.median_s / pf, tfs, rfs, 100 * cpu_share(&L->fwd));
    printf("%-18s %9.1f %8.1f %6.1f%% %9.1f %8.2fx %9s %9s  %4.0f\n", "forward+backward", L->fb.median_s * 1e3, gb,
           100 * gb / peak, pb * 1e3, L->fb.median_s / pb, tbs, rbs, 100 * cpu_share(&L->fb));
}

void print_layer(const layer_res *L, double peak, int threads) {
    printf("\nlayer: attn_mha E=%lld, %lld heads (D %lld), q/k/v/o biases, no mask, B=%lld, S=%lld\n", (long long)L->E,
           (long long)L->H, (long long)(L->E / L->H), (long long)L->B, (long long)L->S);
    if (!L->ran) {
        printf("  failed: %s\n", L->note);
        return;
    }
    print_layer_rows(L, peak);
    printf("parts: projection GEMMs fwd %.1f ms (4 x %lldx%lldx%lld), bwd %.1f ms (8); sdpa fwd %.1f ms, bwd %.1f ms\n",
           L->gemm_fwd.median_s * 1e3, (long long)(L->B * L->S), (long long)L->E, (long long)L->E,
           L->gemm_bwd.median_s * 1e3, L->sdpa_fwd.median_s * 1e3, L->sdpa_bwd.median_s * 1e3);
    printf("(overhead = layer / sum of its parts; GFLOP/s: fwd 8·B·S·E² + 4·B·S²·E, fwd+bwd 3x that, as in\n"
           " bench/torch_mha_peer.py; ");
    if (L->torch_fwd_ms > 0 && L->torch_fb_ms > 0)
        printf("vs torch = torch ms / attn ms, PyTorch %s nn.MultiheadAttention, %lld threads)\n", L->torch_version,
               (long long)threads);
    else
        printf("PyTorch: %s)\n", L->torch_note[0] ? L->torch_note : "not measured");
}

/* ─── the probe at the end: the best of all samples is the peak; a row above it is flagged ─── */
void print_probe_summary(bench_env *env, const bench_row *rows, int n) {
    const bu_peak *pk = &env->pk;
    int over = 0;
    for (int i = 0; i < n; i++)
        over += rows[i].ran && rows[i].flops / rows[i].ta.median_s * 1e-9 > row_probe(&rows[i], env)->best;
    printf("\nFMA probe: peak %.1f GFLOP/s = best of %d samples through the run (worst %.1f, spread %.0f%%)%s\n", pk->best,
           pk->samples, pk->worst, 100 * bu_peak_spread(pk),
           bu_peak_spread(pk) > 0.1 ? ": the machine was busy during some probes" : "");
    const int flagged = over > env->over_peak ? over : env->over_peak;
    if (over || env->over_peak)
        printf("warning: %d row%s ran above the probe's peak when printed (flagged '>probe'): the probe was disturbed,\n"
               "         those %%peak figures are not results\n", flagged, flagged == 1 ? "" : "s");
    if (env->have_pkb)
        printf("bf16 probe: peak %.1f GFLOP/s = best of %d samples (worst %.1f, spread %.0f%%)\n", env->pkb.best,
               env->pkb.samples, env->pkb.worst, 100 * bu_peak_spread(&env->pkb));
}
