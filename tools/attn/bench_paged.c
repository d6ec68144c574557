/* SPDX-License-Identifier: MIT */
/* bench_paged.c — see bench_paged.h.
 *
 * Each row: B sequences of a Llama-3-8B-shaped attention (Hq 32, Hkv 8,
 * D 128), each with `context` cached tokens, one new query token each.
 *   paged:      an attn_kvpaged cache (blocks of bs tokens) filled the way a
 *               server fills it: the sequences' tokens appended round-robin
 *               in chunks of 64, so consecutive blocks of a sequence are B
 *               blocks apart in the pool; attn_sdpa_paged_fwd over the block
 *               tables attn_kvpaged_describe gives;
 *   contiguous: K/V (B, Hkv, S, D) head-major (attn_kvcache's layout),
 *               read the way attn_mha_forward_cached reads it: F32 by
 *               attn_sdpa_fwd with Sq = 1, causal bottom-right; BF16 / F16 /
 *               I8 by attn_sdpa_paged_fwd, the cache one block per sequence.
 * Every row for each --kv-dtype (F32, BF16, F16, I8: the cache's element type).
 * Both read the same (rounded / quantised) K/V values and must agree (max rel
 * diff <= 1e-5).
 * bytes = 2 * B * S * Hkv * D * elem (K and V, each read once, compressed)
 * + 2 * B * S * Hkv * 4 for the int8 scales; GB/s = bytes /
 * median time; pct_bw = GB/s / streaming-read probe (bu_bw, same thread
 * count, in the same process: the best of a sample before the rows and one
 * after each row; a row above it is flagged, not printed as a %). Each side
 * is timed twice, alternating (paged, contiguous, paged, contiguous), and the
 * lower median of the two is kept: the machine is shared. */
#include "bench_paged.h"

#include "attn.h"
#include "bench_util.h"
#include "core/core.h"
#include "kernels/kv_typed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { HQ = 32, HKV = 8, HD = 128, MAXROWS = 128 };

typedef struct paged_row {
    int64_t B, S, bs;
    attn_dtype dtype;
    int fast;         /* opts->decode_fast on both sides */
    double bytes;
    bu_timing tp, tc; /* paged, contiguous (the better of two timed blocks each) */
    double err;
    double fast_err;  /* fast rows: max |o - o(decode_fast = 0)| / max |o| of the paged side */
    int ran, valid;
    char note[160];
} paged_row;

/* The row's kv column: the type, "bf16f" / "int8f" with decode_fast. */
static const char *row_kv(const paged_row *r) {
    return !r->fast ? attn__kv_dtype_name(r->dtype) : r->dtype == ATTN_DTYPE_I8 ? "int8f" : "bf16f";
}

static paged_row g_rows[MAXROWS];
static int g_nrows;
static int g_threads;
static bu_bw g_bw; /* the streaming-read probe's samples */

double bench_bw_probe(int threads) {
    if (g_bw.samples == 0) fprintf(stderr, "streaming-read probe\n");
    bu_bw_sample(&g_bw, threads, (int64_t)512 << 20, g_bw.samples == 0 ? 5 : 2);
    return g_bw.best;
}

const bu_bw *bench_bw_probe_last(void) { return &g_bw; }

void bench_bw_probe_free(void) { bu_bw_free(&g_bw); }

/* "%bw" of a rate g against the probe so far, marked '*' above it: K/V that
 * stay in the caches between calls (small rows) read faster than DRAM, or
 * the probe was disturbed at every sample so far. */
static const char *pct_bw_cell(double g, char *buf, size_t n) {
    snprintf(buf, n, "%5.0f%%%s", 100 * g / g_bw.best, g > g_bw.best ? "*" : "");
    return buf;
}

/* JSON: "<key>": the % of the final probe, and "<key>_above_probe": true above it. */
static void json_pct_bw(FILE *f, const char *key, double g) {
    fprintf(f, ", \"%s\": %.2f", key, 100 * g / g_bw.best);
    if (g > g_bw.best) fprintf(f, ", \"%s_above_probe\": true", key);
}

const char *bench_kv_dtype_name(attn_dtype t) { return attn__kv_dtype_name(t); }

int bench_kv_dtypes_parse(const char *s, attn_dtype *out, int *fast, int max, int *n) {
    static const attn_dtype all[6] = {ATTN_DTYPE_F32, ATTN_DTYPE_BF16, ATTN_DTYPE_F16, ATTN_DTYPE_I8, ATTN_DTYPE_BF16,
                                      ATTN_DTYPE_I8};
    static const char *const names[6] = {"f32", "bf16", "f16", "int8", "bf16-fast", "int8-fast"};
    *n = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        const size_t len = e ? (size_t)(e - s) : strlen(s);
        int found = -1;
        for (int i = 0; i < 6; i++)
            if (strlen(names[i]) == len && !strncmp(s, names[i], len)) found = i;
        if (found < 0 || *n >= max) return 1;
        fast[*n] = found >= 4;
        out[(*n)++] = all[found];
        if (!e) break;
        s = e + 1;
    }
    return *n == 0;
}
typedef struct row_ctx {
    int64_t B, S, bs, mb;
    attn_dtype dtype;
    attn_kvpaged *cache;                     /* the paged K/V */
    float *q, *kc, *vc, *op, *oc;            /* q (B, Hq, D); contiguous (B, Hkv, S, D); o (B, Hq, D) x 2 */
    void *kt, *vt;                           /* typed contiguous (B, Hkv, S, D) elements of dtype */
    float *kts, *vts;                        /* I8: (B, Hkv, S) scales */
    int32_t *cblk, *clens;                   /* (B) block b -> b, (B) = S: the typed contiguous cache as a pool */
    attn_paged_kv kvc;
    int64_t *ids;                            /* (B) 0..B-1 */
    int32_t *cu, *lens, *tables;             /* (B + 1), (B), (B, mb) */
    void *wsp, *wsc;
    size_t nwsp, nwsc;
    attn_paged_kv kv;
    attn_sdpa_opts po, co;
} row_ctx;

static void fill(float *p, int64_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        p[i] = (float)((double)(s >> 40) / 16777216.0 * 2.0 - 1.0);
    }
}

static int paged_fn(void *v) {
    row_ctx *c = v;
    attn_sdpa_dims d = {c->B, c->B, 0, HQ, HKV, HD, HD};
    return attn_sdpa_paged_fwd(&d, attn_view_bshd(c->q, c->B, HQ, HD), &c->kv, attn_view_bshd(c->op, c->B, HQ, HD), NULL,
                               &c->po, c->wsp, c->nwsp) != ATTN_OK;
}

static int contig_fn(void *v) {
    row_ctx *c = v;
    if (c->dtype != ATTN_DTYPE_F32) { /* attn_kvcache's typed decode: the paged kernel, one block per sequence */
        attn_sdpa_dims d = {c->B, c->B, 0, HQ, HKV, HD, HD};
        return attn_sdpa_paged_fwd(&d, attn_view_bshd(c->q, c->B, HQ, HD), &c->kvc, attn_view_bshd(c->oc, c->B, HQ, HD),
                                   NULL, &c->po, c->wsc, c->nwsc) != ATTN_OK;
    }
    attn_sdpa_dims d = {c->B, 1, c->S, HQ, HKV, HD, HD};
    return attn_sdpa_fwd(&d, attn_view_bshd(c->q, 1, HQ, HD), attn_view_bhsd(c->kc, c->S, HKV, HD),
                         attn_view_bhsd(c->vc, c->S, HKV, HD), attn_view_bshd(c->oc, 1, HQ, HD), NULL, &c->co, c->wsc,
                         c->nwsc) != ATTN_OK;
}

static void ctx_free(row_ctx *c) {
    attn_kvpaged_free(c->cache);
    attn__free(c->q); attn__free(c->kc); attn__free(c->vc);
    attn__free(c->op); attn__free(c->oc); free(c->ids); free(c->cu); free(c->lens); free(c->tables);
    attn__free(c->wsp); attn__free(c->wsc);
    attn__free(c->kt); attn__free(c->vt); attn__free(c->kts); attn__free(c->vts); free(c->cblk); free(c->clens);
}

/* The typed contiguous cache: kc / vc rounded / quantised row by row as
 * attn_kvcache stores them, described as a pool of B blocks of S tokens. 0 on success. */
static int typed_contig(row_ctx *c) {
    const int64_t rows = c->B * HKV * c->S;
    const size_t es = attn__kv_elem_size(c->dtype);
    c->kt = attn__malloc((size_t)(rows * HD) * es);
    c->vt = attn__malloc((size_t)(rows * HD) * es);
    c->kts = attn__malloc((size_t)rows * sizeof(float));
    c->vts = attn__malloc((size_t)rows * sizeof(float));
    c->cblk = calloc((size_t)c->B, sizeof(int32_t));
    c->clens = calloc((size_t)c->B, sizeof(int32_t));
    if (!c->kt || !c->vt || !c->kts || !c->vts || !c->cblk || !c->clens) return 1;
    for (int64_t r = 0; r < rows; r++) {
        attn__kv_put_row(c->dtype, (char *)c->kt + (size_t)(r * HD) * es, c->kts + r, c->kc + r * HD, HD);
        attn__kv_put_row(c->dtype, (char *)c->vt + (size_t)(r * HD) * es, c->vts + r, c->vc + r * HD, HD);
    }
    for (int64_t b = 0; b < c->B; b++) { c->cblk[b] = (int32_t)b; c->clens[b] = (int32_t)c->S; }
    const int i8 = c->dtype == ATTN_DTYPE_I8;
    attn_paged_kv kv = {c->dtype, c->kt, c->vt, c->B, c->S, c->cblk, 1, c->clens, i8 ? c->kts : NULL, i8 ? c->vts : NULL};
    c->kvc = kv;
    return 0;
}

/* Appends the contiguous K/V to the cache round-robin, 64 tokens of each
 * sequence at a time. 0 on success. */
static int fill_cache(row_ctx *c) {
    enum { CHUNK = 64 };
    const int64_t row = HKV * HD;
    float *sk = attn__malloc((size_t)(CHUNK * row) * sizeof(float)), *sv = attn__malloc((size_t)(CHUNK * row) * sizeof(float));
    int bad = !sk || !sv;
    for (int64_t t0 = 0; t0 < c->S && !bad; t0 += CHUNK) {
        const int64_t n = c->S - t0 < CHUNK ? c->S - t0 : CHUNK;
        for (int64_t b = 0; b < c->B && !bad; b++) {
            for (int64_t t = 0; t < n; t++) /* stage (n, Hkv, D) from (B, Hkv, S, D) */
                for (int64_t h = 0; h < HKV; h++) {
                    const int64_t src = ((b * HKV + h) * c->S + t0 + t) * HD;
                    memcpy(sk + t * row + h * HD, c->kc + src, HD * sizeof(float));
                    memcpy(sv + t * row + h * HD, c->vc + src, HD * sizeof(float));
                }
            bad = attn_kvpaged_append(c->cache, b, n, sk, sv, row) != ATTN_OK;
        }
    }
    attn__free(sk);
    attn__free(sv);
    return bad;
}

/* Builds the contiguous K/V and the same tokens in a paged cache. 0 on success. */
static int ctx_init(row_ctx *c, int64_t B, int64_t S, int64_t bs, int threads, attn_dtype dtype, int fast) {
    memset(c, 0, sizeof *c);
    c->B = B; c->S = S; c->bs = bs; c->dtype = dtype;
    c->mb = (S + bs - 1) / bs;
    const int64_t nkv = B * HKV * S * HD;
    attn_kvpaged_config g;
    attn_kvpaged_config_init(&g);
    g.num_blocks = B * c->mb; g.block_size = bs; g.max_seqs = B; g.max_seq_len = S; g.num_kv_heads = HKV; g.head_dim = HD;
    g.dtype = dtype;
    if (attn_kvpaged_create(&c->cache, &g) != ATTN_OK) return 1;
    c->q = attn__malloc((size_t)(B * HQ * HD) * sizeof(float));
    c->kc = attn__malloc((size_t)nkv * sizeof(float));
    c->vc = attn__malloc((size_t)nkv * sizeof(float));
    c->op = attn__malloc((size_t)(B * HQ * HD) * sizeof(float));
    c->oc = attn__malloc((size_t)(B * HQ * HD) * sizeof(float));
    c->ids = calloc((size_t)B, sizeof(int64_t));
    c->cu = calloc((size_t)B + 1, sizeof(int32_t));
    c->lens = calloc((size_t)B, sizeof(int32_t));
    c->tables = calloc((size_t)(B * c->mb), sizeof(int32_t));
    if (!c->q || !c->kc || !c->vc || !c->op || !c->oc || !c->ids || !c->cu || !c->lens || !c->tables) return 1;
    fill(c->q, B * HQ * HD, 1);
    fill(c->kc, nkv, 2);
    fill(c->vc, nkv, 3);
    for (int64_t b = 0; b < B; b++) {
        c->ids[b] = b;
        c->cu[b + 1] = (int32_t)(b + 1);
        if (attn_kvpaged_add(c->cache, b) != ATTN_OK) return 1;
    }
    if (fill_cache(c) || attn_kvpaged_describe(c->cache, c->ids, B, c->lens, c->tables, &c->kv) != ATTN_OK) return 1;
    if (dtype != ATTN_DTYPE_F32) { /* the fp32 staging is not needed any more */
        if (typed_contig(c)) return 1;
        attn__free(c->kc); attn__free(c->vc);
        c->kc = c->vc = NULL;
    }
    attn_sdpa_opts_init(&c->po);
    c->po.causal = 1;
    c->po.align = ATTN_ALIGN_BOTTOM_RIGHT;
    c->po.num_threads = threads;
    c->co = c->po;
    c->po.cu_seqlens_q = c->cu;
    c->po.decode_fast = fast;
    attn_sdpa_dims dp = {B, B, 0, HQ, HKV, HD, HD}, dc = {B, 1, S, HQ, HKV, HD, HD};
    c->nwsp = attn_sdpa_paged_fwd_workspace_size(&dp, &c->kv, &c->po);
    c->nwsc = dtype == ATTN_DTYPE_F32 ? attn_sdpa_fwd_workspace_size(&dc, &c->co)
                                      : attn_sdpa_paged_fwd_workspace_size(&dp, &c->kvc, &c->po);
    c->wsp = attn__malloc(c->nwsp);
    c->wsc = attn__malloc(c->nwsc);
    return !c->wsp || !c->wsc;
}

static double rel_diff(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / (den > 0 ? den : 1);
}

/* CPU time the process got / (wall time x threads) while timing: ~1 on an idle machine. */
static double cpu_share(const bu_timing *t) { return t->total_s > 0 ? t->cpu_s / (t->total_s * (double)g_threads) : 0; }

/* GB/s per the CPU time the process got (mean over the timed runs, / threads):
 * what the row would reach with the cores to itself, if nothing else took
 * memory bandwidth either (a shared machine time-slices the wall clock). */
static double cpu_gbps(double bytes, const bu_timing *t) {
    return t->cpu_s > 0 ? bytes * t->runs / (t->cpu_s / (double)g_threads) * 1e-9 : 0;
}

static void better(bu_timing *keep, const bu_timing *t) {
    if (keep->runs == 0 || t->median_s < keep->median_s) *keep = *t;
}

static void run_row(paged_row *r, const bench_paged_cfg *cfg) {
    row_ctx c;
    if (ctx_init(&c, r->B, r->S, r->bs, cfg->threads, r->dtype, r->fast)) {
        snprintf(r->note, sizeof r->note, "out of memory");
        ctx_free(&c);
        return;
    }
    if (paged_fn(&c) || contig_fn(&c)) {
        snprintf(r->note, sizeof r->note, "call failed: %s", attn_last_error());
        ctx_free(&c);
        return;
    }
    r->err = rel_diff(c.op, c.oc, r->B * HQ * HD);
    r->valid = r->err <= 1e-5;
    if (r->fast) { /* against the fp32-arithmetic decode of the same cache (attn.h: 2^-8 max|v| + 1e-5 |o|) */
        float *fo = attn__malloc((size_t)(r->B * HQ * HD) * sizeof(float));
        if (fo) {
            memcpy(fo, c.op, (size_t)(r->B * HQ * HD) * sizeof(float));
            c.po.decode_fast = 0;
            const int bad = paged_fn(&c);
            c.po.decode_fast = 1;
            r->fast_err = bad ? INFINITY : rel_diff(fo, c.op, r->B * HQ * HD);
            r->valid &= r->fast_err <= 1e-2;
            attn__free(fo);
            if (paged_fn(&c)) r->valid = 0;
        }
    }
    for (int k = 0; k < 2; k++) { /* alternating: paged, contiguous, paged, contiguous */
        bu_timing t;
        if (bu_time(paged_fn, &c, cfg->min_runs, cfg->min_time, cfg->max_time, &t) == 0) better(&r->tp, &t);
        if (bu_time(contig_fn, &c, cfg->min_runs, cfg->min_time, cfg->max_time, &t) == 0) better(&r->tc, &t);
    }
    r->ran = r->tp.runs > 0 && r->tc.runs > 0;
    ctx_free(&c);
}

int bench_paged_run(const bench_paged_cfg *cfg) {
    g_nrows = 0;
    g_threads = cfg->threads;
    bench_bw_probe(cfg->threads);
    printf("\nstreaming read (probe): %.1f GB/s (%d threads, 512 MiB, 256-bit loads, best of 5 passes; sampled again\n"
           "      after each row, the best sample is the bandwidth: the final one and the spread are printed at the end)\n",
           g_bw.best, cfg->threads);
    printf("%-10s %5s %5s %6s %4s %9s %8s %6s  %9s %8s %6s %7s %9s  %7s  %11s\n", "model", "kv", "batch", "ctx", "bs", "paged ms",
           "GB/s", "%bw", "contig ms", "GB/s", "%bw", "p/c", "max err", "cpu%p/c", "cpuGB/s p/c");
    int nbad = 0;
    for (int ti = 0; ti < cfg->nkv; ti++)
    for (int bi = 0; bi < cfg->nbatches; bi++)
        for (int si = 0; si < cfg->ncontexts && g_nrows < MAXROWS; si++) {
            paged_row *r = &g_rows[g_nrows++];
            memset(r, 0, sizeof *r);
            r->B = cfg->batches[bi]; r->S = cfg->contexts[si]; r->bs = cfg->block_size; r->dtype = cfg->kv_dtypes[ti];
            r->fast = cfg->kv_fast ? cfg->kv_fast[ti] : 0;
            const double tokens = (double)r->B * (double)r->S * HKV, f32_bytes = 2.0 * tokens * HD * sizeof(float);
            r->bytes = 2.0 * tokens * HD * (double)attn__kv_elem_size(r->dtype) +
                       (r->dtype == ATTN_DTYPE_I8 ? 2.0 * tokens * sizeof(float) : 0.0);
            if (f32_bytes / 2 > cfg->max_gib * 1073741824.0) { /* the fp32 staging of one layout */
                snprintf(r->note, sizeof r->note, "skipped: %.1f GiB of fp32 K+V per layout > %.1f", f32_bytes / 2 / 1073741824.0,
                         cfg->max_gib);
            } else {
                fprintf(stderr, "decode-paged: %s, batch %lld, context %lld\n", row_kv(r), (long long)r->B,
                        (long long)r->S);
                run_row(r, cfg);
            }
            if (!r->ran) {
                printf("%-10s %5s %5lld %6lld %4lld  %s\n", "llama3-8b", row_kv(r), (long long)r->B,
                       (long long)r->S, (long long)r->bs, r->note);
                nbad += r->note[0] != 's';
                continue;
            }
            bench_bw_probe(cfg->threads); /* a sample between rows */
            const double gp = r->bytes / r->tp.median_s * 1e-9, gc = r->bytes / r->tc.median_s * 1e-9;
            char cp[16], cc[16];
            printf("%-10s %5s %5lld %6lld %4lld %9.3f %8.1f %-7s %9.3f %8.1f %-7s%7.3f %9.1e  %3.0f/%3.0f  %5.1f/%5.1f%s\n",
                   "llama3-8b", row_kv(r), (long long)r->B, (long long)r->S, (long long)r->bs, r->tp.median_s * 1e3, gp,
                   pct_bw_cell(gp, cp, sizeof cp), r->tc.median_s * 1e3, gc, pct_bw_cell(gc, cc, sizeof cc), r->tc.median_s / r->tp.median_s,
                   r->err, 100 * cpu_share(&r->tp), 100 * cpu_share(&r->tc), cpu_gbps(r->bytes, &r->tp),
                   cpu_gbps(r->bytes, &r->tc), r->valid ? "" : "  INVALID");
            nbad += !r->valid;
            fflush(stdout);
        }
    printf("(decode-paged: Hq 32, Hkv 8, D 128, one new token per sequence; an attn_kvpaged cache with blocks of bs\n"
           " tokens, filled round-robin 64 tokens per sequence at a time;\n"
           " kv: the cache's element type (f32, bf16, f16, int8 with one fp32 scale per token per head; bf16f,\n"
           " int8f: decoded with opts.decode_fast, checked within 1e-2 of the fp32-arithmetic decode);\n"
           " contig: the same batch from a head-major (B, Hkv, S, D) cache (attn_kvcache: f32 through attn_sdpa_fwd,\n"
           " other types through attn_sdpa_paged_fwd, one block per sequence); GB/s = bytes read (compressed K+V,\n"
           " int8 scales) / median time,\n"
           " %%bw = of the streaming probe, p/c = contiguous time / paged time; each side timed twice, alternating;\n"
           " cpu%%p/c = CPU time the process got / (wall time x threads) while timing paged / contiguous;\n"
           " cpuGB/s = K+V bytes / (mean CPU time per call / threads): compares paged with contiguous on a\n"
           " time-sliced machine; not a fraction of the probe, which is wall-clock)\n");
    int over = 0;
    for (int i = 0; i < g_nrows; i++) {
        const paged_row *r = &g_rows[i];
        if (r->ran) over += (r->bytes / r->tp.median_s > g_bw.best * 1e9) + (r->bytes / r->tc.median_s > g_bw.best * 1e9);
    }
    printf("\nstreaming-read probe: %.1f GB/s = best of %d samples through the rows (worst %.1f, spread %.0f%%)%s\n",
           g_bw.best, g_bw.samples, g_bw.worst, 100 * bu_bw_spread(&g_bw),
           bu_bw_spread(&g_bw) > 0.1 ? ": the machine was busy during some samples" : "");
    if (over)
        printf("%d figure%s above the final probe (marked '*'; \"..._above_probe\" in --json): K/V that stay in the\n"
               "caches between calls (small rows), or a probe disturbed at every sample\n", over, over == 1 ? "" : "s");
    return nbad;
}

int bench_paged_nrows(void) { return g_nrows; }

/* One JSON object: the paged side of row r (contig = 0, with the contiguous
 * side's figures as contig_*) or the contiguous side ("decode-kvcache"). */
static void json_row(FILE *f, const paged_row *r, int contig) {
    fprintf(f, "    {\"model\": \"llama3-8b\", \"variant\": \"%s\", \"kv_dtype\": \"%s\", \"batch\": %lld, \"B\": %lld, "
               "\"Sq\": 1, \"Sk\": %lld, \"Hq\": %d, \"Hkv\": %d, \"D\": %d, \"block_size\": %lld, \"threads\": %d, "
               "\"stream_gbps\": %.2f, \"ran\": %s, \"valid\": %s, \"decode_fast\": %s",
            contig ? "decode-kvcache" : "decode-paged", attn__kv_dtype_name(r->dtype), (long long)r->B, (long long)r->B,
            (long long)r->S, HQ, HKV, HD, (long long)(contig ? r->S : r->bs), g_threads, g_bw.best,
            r->ran ? "true" : "false", r->valid ? "true" : "false", r->fast ? "true" : "false");
    if (r->fast && r->ran) fprintf(f, ", \"fast_err\": %.3e", r->fast_err);
    if (r->ran) {
        const bu_timing *t = contig ? &r->tc : &r->tp;
        const double g = r->bytes / t->median_s * 1e-9;
        fprintf(f, ", \"max_err\": %.3e, \"kv_bytes\": %.0f, \"median_ms\": %.4f, \"best_ms\": %.4f, \"runs\": %d, "
                   "\"gbps\": %.2f, \"cpu_share\": %.3f, \"gbps_cpu\": %.2f",
                r->err, r->bytes, t->median_s * 1e3, t->best_s * 1e3, t->runs, g, cpu_share(t), cpu_gbps(r->bytes, t));
        json_pct_bw(f, "pct_bw", g);
        if (!contig) {
            const double gc = r->bytes / r->tc.median_s * 1e-9;
            fprintf(f, ", \"contig_median_ms\": %.4f, \"contig_gbps\": %.2f, \"contig_cpu_share\": %.3f, "
                       "\"contig_gbps_cpu\": %.2f",
                    r->tc.median_s * 1e3, gc, cpu_share(&r->tc), cpu_gbps(r->bytes, &r->tc));
            json_pct_bw(f, "contig_pct_bw", gc);
        }
    } else {
        fprintf(f, ", \"note\": ");
        bu_json_str(f, r->note);
    }
    fprintf(f, "}");
}

void bench_paged_json(FILE *f) {
    for (int i = 0; i < g_nrows; i++) {
        json_row(f, &g_rows[i], 0);
        fprintf(f, ",\n");
        json_row(f, &g_rows[i], 1);
        fprintf(f, "%s\n", i + 1 < g_nrows ? "," : "");
    }
}
