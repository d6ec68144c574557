/* SPDX-License-Identifier: MIT */
/* bench_kernel.c — the sdpa rows of `attn bench`: forward, backward, causal
 * forward, causal backward at Llama-3-8B (Hq 32, Hkv 8, D 128) and GPT-2
 * (Hq = Hkv = 12, D 64) attention, batch 1, S = 512 .. 4096, in each --dtype;
 * single-token decode (Sq = 1, bottom-right) against a 4096-long cache.
 * Peer: bench_peer.c (naive OpenBLAS, materialised Sq x Sk), and PyTorch /
 * ONNX Runtime (bench_pypeer.c) on the same inputs.
 *
 * Every row: the kernel's output is validated against the peer's first; each
 * side then runs until >= --runs runs and >= --min-time seconds; the median
 * is reported. */
#include "bench_cmd.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const model_shape MODELS[NMODELS] = { { "llama3-8b", 32, 8, 128 }, { "gpt2", 12, 12, 64 } };
const char *const VNAMES[NVARIANTS] = { "fwd", "bwd", "fwd-causal", "bwd-causal", "decode", "decode-hm" };

const char *dtype_name(attn_dtype t) {
    return t == ATTN_DTYPE_BF16 ? "bf16" : t == ATTN_DTYPE_F16 ? "f16" : "f32";
}
/* Validation tolerance against the fp32 peers: the output's rounding (2^-8 bf16, 2^-11 f16) and, for
 * bf16, the bf16 probabilities of the fast forward, with room. */
double dtype_tol(attn_dtype t) { return t == ATTN_DTYPE_BF16 ? 3e-2 : t == ATTN_DTYPE_F16 ? 4e-3 : 1e-3; }

double sdpa_flops(const model_shape *m, int64_t Sq, int64_t Sk, int variant) {
    double f = 4.0 * (double)m->Hq * (double)Sq * (double)Sk * (double)m->D;
    if (variant == V_FWD_CAUSAL || variant == V_BWD_CAUSAL) f *= 0.5;
    if (variant == V_BWD || variant == V_BWD_CAUSAL) f *= 2.5;
    return f;
}

/* ─── one row ────────────────────────────────────────────────────────────── */
/* Validates then times one row. */
static void run_row(bench_row *r, problem *p, const timing_cfg *tc, int idx, int total) {
    const int bwd = r->variant == V_BWD || r->variant == V_BWD_CAUSAL;
    run_ctx c = { p, r->variant == V_FWD_CAUSAL || r->variant == V_BWD_CAUSAL || is_decode(r->variant), bwd,
                  is_decode(r->variant) };
    const attn_sdpa_dims *d = &p->d;
    const int64_t nq = d->seq_q * d->heads_q * d->head_dim, nk = d->seq_k * d->heads_kv * d->head_dim;
    progress("[%d/%d] %s %s S=%lld: validating, then timing", idx, total, r->m->name, VNAMES[r->variant],
             (long long)(is_decode(r->variant) ? r->Sk : r->Sq));
    /* warm-up + validation */
    if (attn_fwd_fn(&c)) { snprintf(r->note, sizeof r->note, "attn_sdpa_fwd: %s", attn_last_error()); return; }
    if (bwd && attn_bwd_fn(&c)) { snprintf(r->note, sizeof r->note, "attn_sdpa_bwd: %s", attn_last_error()); return; }
    if (p->dt != ATTN_DTYPE_F32) { /* fp32 copies of the typed outputs, for the checks */
        widen(p->dt, p->h[H_O], p->out, nq);
        if (bwd) {
            widen(p->dt, p->h[H_DQ], p->dq, nq);
            widen(p->dt, p->h[H_DK], p->dk, nk);
            widen(p->dt, p->h[H_DV], p->dv, nk);
        }
    }
    if (bwd) {
        peer_bwd_fn(&c);
        double e1 = max_rel_diff(p->dq, p->pdq, nq), e2 = max_rel_diff(p->dk, p->pdk, nk), e3 = max_rel_diff(p->dv, p->pdv, nk);
        r->err = e1 > e2 ? e1 : e2;
        r->err = r->err > e3 ? r->err : e3;
    } else {
        peer_fwd_fn(&c);
        r->err = max_rel_diff(p->out, p->po, nq);
    }
    r->valid = r->err <= dtype_tol(p->dt);
    if (!r->valid) snprintf(r->note, sizeof r->note, "output differs from the peer: max rel err %.2e > %.0e", r->err, dtype_tol(p->dt));
    usleep(100000); /* let OpenBLAS's workers go idle before timing the kernel */
    progress_step("[%d/%d] %s %s S=%lld: timing attn", idx, total, r->m->name, VNAMES[r->variant],
             (long long)(is_decode(r->variant) ? r->Sk : r->Sq));
    if (bu_time(bwd ? attn_bwd_fn : attn_fwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &r->ta)) {
        snprintf(r->note, sizeof r->note, "attn failed: %s", attn_last_error());
        return;
    }
    progress_step("[%d/%d] %s %s S=%lld: timing peer", idx, total, r->m->name, VNAMES[r->variant],
             (long long)(is_decode(r->variant) ? r->Sk : r->Sq));
    bu_time(bwd ? peer_bwd_fn : peer_fwd_fn, &c, tc->min_runs, tc->min_time, tc->max_time, &r->tp);
    r->ran = 1;
}

/* ─── PyTorch / ONNX Runtime peers of the sdpa rows ──────────────────────── */

/* Writes a problem's inputs once and runs each enabled peer over the variants of rows[0..n). */
static void pypeers_run_group(bench_row *rows, int n, const problem *p, const pypeer_cfg *pc, pypeer_dir *pd) {
    const char *vars[8];
    for (int j = 0; j < n; j++) vars[j] = VNAMES[rows[j].variant];
    int any = 0, bwd = 0;
    for (int k = 0; k < PYPEER_N; k++) any |= pc->use[k];
    for (int j = 0; j < n; j++) bwd |= rows[j].variant == V_BWD || rows[j].variant == V_BWD_CAUSAL;
    char err[128] = ""; /* fits a pypeer_res note after "n/a: " */
    memset(pd, 0, sizeof *pd);
    if (any) {
        progress_step("%s S=%lld: PyTorch / ONNX Runtime peers (bench/sdpa_peer.py)", rows[0].m->name,
                      (long long)(is_decode(rows[0].variant) ? rows[0].Sk : rows[0].Sq));
        if (pypeer_begin(pd, &p->d, p->kv_hm, p->q, p->k, p->v, bwd ? p->dO : NULL, err, sizeof err)) any = 0;
        pd->dtype = dtype_name(p->dt); /* the peers compute in the row's type */
    }
    for (int k = 0; k < PYPEER_N; k++) {
        pypeer_res res[8];
        if (pc->use[k] && any) {
            pypeer_run(k, pd, vars, n, &pc->tc, res);
        } else {
            for (int j = 0; j < n; j++) {
                memset(&res[j], 0, sizeof res[j]);
                snprintf(res[j].note, sizeof res[j].note, "n/a: %s", !pc->use[k] ? pc->why_not[k] : err);
            }
        }
        for (int j = 0; j < n; j++) rows[j].py[k] = res[j];
    }
}

/* After attn's row ran: the peer's outputs against attn's (the same check as the naive peer's). */
static void pypeers_check(bench_row *r, const problem *p, const pypeer_dir *pd) {
    const attn_sdpa_dims *d = &p->d;
    const int64_t nq = d->seq_q * d->heads_q * d->head_dim, nk = d->seq_k * d->heads_kv * d->head_dim;
    const int bwd = r->variant == V_BWD || r->variant == V_BWD_CAUSAL;
    const char *names[3] = { bwd ? "dq" : "o", "dk", "dv" };
    const float *mine[3] = { bwd ? p->dq : p->out, p->dk, p->dv };
    const int64_t sizes[3] = { nq, nk, nk };
    for (int k = 0; k < PYPEER_N; k++) {
        pypeer_res *py = &r->py[k];
        if (!py->ran) continue;
        if (!r->ran) { py->ran = 0; snprintf(py->note, sizeof py->note, "n/a: attn's row failed"); continue; }
        py->err = 0;
        for (int t = 0; t < (bwd ? 3 : 1); t++) {
            attn_npy arr;
            const float *x = pypeer_load(k, pd, VNAMES[r->variant], names[t], sizes[t], &arr);
            double e = x ? max_rel_diff(mine[t], x, sizes[t]) : INFINITY;
            if (x) attn_npy_free(&arr);
            if (!(e <= py->err)) py->err = e;
        }
        /* a typed row's peer computes in the same type: both roundings count */
        const double tol = p->dt == ATTN_DTYPE_F32 ? VALIDATE_TOL : 2 * dtype_tol(p->dt);
        py->valid = py->err <= tol;
        if (!py->valid)
            snprintf(py->note, sizeof py->note, "%s output differs from attn's: max rel err %.2e > %.0e", pypeer_name(k),
                     py->err, tol);
    }
}

/* a python peer that ran but disagrees with attn fails the bench, as the naive peer does */
int bad_pypeer(const bench_row *r) {
    int bad = 0;
    for (int k = 0; k < PYPEER_N; k++) bad |= r->ran && r->py[k].ran && !r->py[k].valid;
    return bad;
}

/* ─── the rows of a run ──────────────────────────────────────────────────── */
int bench_rows_build(const bench_opts *o, bench_row *rows, int *nsdpa) {
    const int64_t decode_sk = 4096;
    int nrows = 0;
    for (int mi = 0; mi < NMODELS && !o->paged_only; mi++) {
        if (!o->use_model[mi]) continue;
        for (int si = 0; si < o->nseqs; si++)
            for (int ti = 0; ti < o->ndt; ti++)
                for (int v = 0; v < 4; v++) { /* groups of 4 rows: one problem, one element type */
                    bench_row *r = &rows[nrows++];
                    memset(r, 0, sizeof *r);
                    r->m = &MODELS[mi]; r->variant = v; r->B = 1; r->Sq = r->Sk = o->seqs[si];
                    r->dt = o->dts[ti];
                    r->flops = sdpa_flops(r->m, r->Sq, r->Sk, v);
                }
    }
    *nsdpa = nrows;
    if (!o->no_decode && !o->paged_only)
        for (int mi = 0; mi < NMODELS; mi++) {
            if (!o->use_model[mi] || (o->quick && mi != 0)) continue;
            for (int v = V_DECODE; v <= V_DECODE_HM; v++) {
                bench_row *r = &rows[nrows++];
                memset(r, 0, sizeof *r);
                r->m = &MODELS[mi]; r->variant = v; r->B = 1; r->Sq = 1; r->Sk = decode_sk;
                r->flops = sdpa_flops(r->m, 1, decode_sk, V_FWD);
                r->bytes = 2.0 * (double)decode_sk * (double)r->m->Hkv * (double)r->m->D * sizeof(float);
            }
        }
    return nrows;
}

void pypeer_cfg_init(pypeer_cfg *pc, const bench_opts *o, const timing_cfg *tc) {
    memset(pc, 0, sizeof *pc);
    pc->tc = (pypeer_timing){ (int)o->threads, (int)o->runs, o->min_time, tc->max_time };
    for (int k = 0; k < PYPEER_N; k++) {
        const int off = k == PYPEER_TORCH ? o->no_torch : o->no_ort;
        pc->use[k] = !off && (!o->quick || o->peers_in_quick);
        pc->why_not[k] = off ? (k == PYPEER_TORCH ? "skipped (--no-torch)" : "skipped (--no-ort)")
                             : "skipped in --quick (python start-up; add --peers)";
    }
}

/* Groups of 4 sdpa rows (one problem each), printed as each group ends. */
int run_sdpa_rows(bench_row *rows, int nsdpa, int nrows, bench_env *env, const timing_cfg *tc, const pypeer_cfg *pyc) {
    int nbad = 0;
    if (nsdpa) print_sdpa_head();
    for (int i = 0; i < nsdpa; i += 4) {
        problem p;
        pypeer_dir pd;
        memset(&pd, 0, sizeof pd);
        if (problem_init(&p, rows[i].m, rows[i].Sq, rows[i].Sk, 1, env->threads, rows[i].dt)) {
            for (int j = 0; j < 4; j++) snprintf(rows[i + j].note, sizeof rows[i + j].note, "out of memory");
        } else {
            pypeers_run_group(&rows[i], 4, &p, pyc, &pd);
            for (int j = 0; j < 4; j++) {
                run_row(&rows[i + j], &p, tc, i + j + 1, nrows);
                pypeers_check(&rows[i + j], &p, &pd);
            }
        }
        pypeer_end(&pd);
        problem_free(&p);
        bu_peak_sample(&env->pk, 2);
        progress_clear();
        for (int j = 0; j < 4; j++) {
            const bench_row *r = &rows[i + j];
            bu_peak *pr = row_probe(r, env);
            print_row(r, r->ran ? peak_for(pr, r->flops / r->ta.median_s * 1e-9) : pr->best, env);
            nbad += !r->ran || !r->valid || bad_pypeer(r);
        }
        fflush(stdout);
    }
    return nbad;
}

/* The decode rows rows[nsdpa, nrows), one problem each. */
int run_decode_rows(bench_row *rows, int nsdpa, int nrows, bench_env *env, const timing_cfg *tc, const pypeer_cfg *pyc) {
    int nbad = 0;
    if (nrows <= nsdpa) return 0;
    print_decode_head();
    for (int i = nsdpa; i < nrows; i++) {
        problem p;
        pypeer_dir pd;
        memset(&pd, 0, sizeof pd);
        if (problem_init(&p, rows[i].m, 1, rows[i].Sk, 0, env->threads, ATTN_DTYPE_F32)) {
            snprintf(rows[i].note, sizeof rows[i].note, "out of memory");
        } else {
            p.kv_hm = rows[i].variant == V_DECODE_HM;
            pypeers_run_group(&rows[i], 1, &p, pyc, &pd);
            run_row(&rows[i], &p, tc, i + 1, nrows);
            pypeers_check(&rows[i], &p, &pd);
        }
        pypeer_end(&pd);
        problem_free(&p);
        progress_clear();
        print_decode(&rows[i], rows[i].ran ? peak_for(&env->pk, rows[i].flops / rows[i].ta.median_s * 1e-9) : env->pk.best,
                     env);
        nbad += !rows[i].ran || !rows[i].valid || bad_pypeer(&rows[i]);
        fflush(stdout);
    }
    print_decode_legend();
    return nbad;
}
