/* SPDX-License-Identifier: MIT */
/* bench_util.c — see bench_util.h. */
#include "bench_util.h"

#include "core/core.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <errno.h>
#include <immintrin.h>
#define BU_X86 1
#endif

double bu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bu_cpu_time(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bu_time(bu_fn fn, void *ctx, int min_runs, double min_seconds, double max_seconds, bu_timing *out) {
    enum { MAXR = 4096 };
    static double t[MAXR];
    int n = 0;
    double total = 0;
    if (min_runs < 1) min_runs = 1;
    const double c0 = bu_cpu_time();
    while (n < MAXR) {
        double t0 = bu_now();
        if (fn(ctx) != 0) return 1;
        double dt = bu_now() - t0;
        t[n++] = dt;
        total += dt;
        if (n >= min_runs && total >= min_seconds) break;
        if (total >= max_seconds) break;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    out->runs = n;
    out->best_s = t[0];
    out->median_s = (n & 1) ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    out->total_s = total;
    out->cpu_s = bu_cpu_time() - c0;
    return 0;
}

/* ─── FMA peak probe ─────────────────────────────────────────────────────────
 * Each chain: a = a * m + c with m = 1 - 1e-6, c = 1e-6 (fixed point 1: no
 * overflow, no denormals). Enough independent chains to cover FMA latency x
 * pipes on current cores. Flops per FMA lane = 2. */
#ifdef BU_X86
__attribute__((target("avx512f"))) static float probe_avx512(int64_t iters) {
    __m512 m = _mm512_set1_ps(1.0f - 1e-6f), c = _mm512_set1_ps(1e-6f);
    /* distinct starting values: identical chains would be merged into one by
     * the compiler (common-subexpression elimination), inflating the peak */
#define S512(x) _mm512_set1_ps(x)
    __m512 a0 = S512(1.00f), a1 = S512(1.01f), a2 = S512(1.02f), a3 = S512(1.03f), a4 = S512(1.04f);
    __m512 a5 = S512(1.05f), a6 = S512(1.06f), a7 = S512(1.07f), a8 = S512(1.08f), a9 = S512(1.09f);
    __m512 a10 = S512(1.10f), a11 = S512(1.11f), a12 = S512(1.12f), a13 = S512(1.13f), a14 = S512(1.14f);
    __m512 a15 = S512(1.15f);
#undef S512
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c); a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c); a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
        a12 = _mm512_fmadd_ps(a12, m, c); a13 = _mm512_fmadd_ps(a13, m, c);
        a14 = _mm512_fmadd_ps(a14, m, c); a15 = _mm512_fmadd_ps(a15, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                       _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float probe_avx2(int64_t iters) {
    __m256 m = _mm256_set1_ps(1.0f - 1e-6f), c = _mm256_set1_ps(1e-6f);
    /* distinct starting values (see probe_avx512) */
#define S256(x) _mm256_set1_ps(x)
    __m256 a0 = S256(1.00f), a1 = S256(1.01f), a2 = S256(1.02f), a3 = S256(1.03f), a4 = S256(1.04f);
    __m256 a5 = S256(1.05f), a6 = S256(1.06f), a7 = S256(1.07f), a8 = S256(1.08f), a9 = S256(1.09f);
    __m256 a10 = S256(1.10f), a11 = S256(1.11f);
#undef S256
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c); a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c); a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/* bf16 dot-product peak: chains a += m0 c0 + m1 c1 (vdpbf16ps, 4 flops per
 * lane) with c = (x, -x): a stays at its start, no overflow, no denormals. */
__attribute__((target("avx512f,avx512bf16"))) static float probe_avx512bf16(int64_t iters) {
    const __m512bh m = (__m512bh)_mm512_set1_epi32(0x3f803f80);            /* (1, 1) */
    const __m512bh c = (__m512bh)_mm512_set1_epi32((int)0xb5863586u);      /* (1e-6, -1e-6) in bf16 */
#define S512(x) _mm512_set1_ps(x)
    __m512 a0 = S512(1.00f), a1 = S512(1.01f), a2 = S512(1.02f), a3 = S512(1.03f), a4 = S512(1.04f);
    __m512 a5 = S512(1.05f), a6 = S512(1.06f), a7 = S512(1.07f), a8 = S512(1.08f), a9 = S512(1.09f);
    __m512 a10 = S512(1.10f), a11 = S512(1.11f), a12 = S512(1.12f), a13 = S512(1.13f), a14 = S512(1.14f);
    __m512 a15 = S512(1.15f);
#undef S512
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm512_dpbf16_ps(a0, m, c); a1 = _mm512_dpbf16_ps(a1, m, c);
        a2 = _mm512_dpbf16_ps(a2, m, c); a3 = _mm512_dpbf16_ps(a3, m, c);
        a4 = _mm512_dpbf16_ps(a4, m, c); a5 = _mm512_dpbf16_ps(a5, m, c);
        a6 = _mm512_dpbf16_ps(a6, m, c); a7 = _mm512_dpbf16_ps(a7, m, c);
        a8 = _mm512_dpbf16_ps(a8, m, c); a9 = _mm512_dpbf16_ps(a9, m, c);
        a10 = _mm512_dpbf16_ps(a10, m, c); a11 = _mm512_dpbf16_ps(a11, m, c);
        a12 = _mm512_dpbf16_ps(a12, m, c); a13 = _mm512_dpbf16_ps(a13, m, c);
        a14 = _mm512_dpbf16_ps(a14, m, c); a15 = _mm512_dpbf16_ps(a15, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                       _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    return _mm512_reduce_add_ps(s);
}
#endif

static float probe_scalar(int64_t iters) {
    volatile float vm = 1.0f - 1e-6f, vc = 1e-6f;
    float m = vm, c = vc;
    float a0 = 1.00f, a1 = 1.01f, a2 = 1.02f, a3 = 1.03f, a4 = 1.04f, a5 = 1.05f, a6 = 1.06f, a7 = 1.07f;
    for (int64_t i = 0; i < iters; i++) {
        a0 = fmaf(a0, m, c); a1 = fmaf(a1, m, c); a2 = fmaf(a2, m, c); a3 = fmaf(a3, m, c);
        a4 = fmaf(a4, m, c); a5 = fmaf(a5, m, c); a6 = fmaf(a6, m, c); a7 = fmaf(a7, m, c);
    }
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

typedef struct probe_job {
    int kind; /* 3 avx512bf16, 2 avx512, 1 avx2, 0 scalar */
    int64_t iters;
    float sink;
} probe_job;

static float run_probe(int kind, int64_t iters) {
#ifdef BU_X86
    if (kind == 3) return probe_avx512bf16(iters);
    if (kind == 2) return probe_avx512(iters);
    if (kind == 1) return probe_avx2(iters);
#endif
    return probe_scalar(iters);
}

static void *probe_thread(void *p) {
    probe_job *j = p;
    j->sink = run_probe(j->kind, j->iters);
    return NULL;
}

/* flops per iteration of each probe (per thread) */
static double probe_flops(int kind) {
    return kind == 3 ? 16.0 * 16 * 4 : kind == 2 ? 16.0 * 16 * 2 : kind == 1 ? 12.0 * 8 * 2 : 8.0 * 2;
}

/* All threads run the same work; thread start-up (~0.1 ms) is noise next to ~0.1 s. */
static double probe_once(int kind, int threads, int64_t iters) {
    enum { MAXT = 256 };
    pthread_t th[MAXT];
    probe_job jobs[MAXT];
    if (threads > MAXT) threads = MAXT;
    double t0 = bu_now();
    int started = 0;
    for (int t = 1; t < threads; t++) {
        jobs[t].kind = kind; jobs[t].iters = iters; jobs[t].sink = 0;
        if (pthread_create(&th[t], NULL, probe_thread, &jobs[t]) != 0) break;
        started++;
    }
    jobs[0].kind = kind; jobs[0].iters = iters;
    probe_thread(&jobs[0]);
    float sink = jobs[0].sink;
    for (int t = 1; t <= started; t++) { pthread_join(th[t], NULL); sink += jobs[t].sink; }
    double dt = bu_now() - t0;
    if (!(sink == sink)) return 0; /* keeps sink alive */
    return probe_flops(kind) * (double)iters * (started + 1) / dt * 1e-9;
}

static void peak_calibrate(bu_peak *pk, int threads);

void bu_peak_init(bu_peak *pk, int threads) {
    const attn_cpu_features *c = attn__cpu();
    memset(pk, 0, sizeof *pk);
    pk->isa = "scalar fmaf";
#ifdef BU_X86
    if (c->avx512f && c->os_avx512) { pk->kind = 2; pk->isa = "AVX-512 FMA"; }
    else if (c->avx2 && c->fma && c->os_avx) { pk->kind = 1; pk->isa = "AVX2 FMA"; }
#else
    (void)c;
#endif
    peak_calibrate(pk, threads);
}

int bu_peak_init_bf16(bu_peak *pk, int threads) {
    const attn_cpu_features *c = attn__cpu();
    memset(pk, 0, sizeof *pk);
#ifdef BU_X86
    if (c->avx512f && c->os_avx512 && c->avx512bf16) {
        pk->kind = 3;
        pk->isa = "AVX512_BF16 vdpbf16ps";
        peak_calibrate(pk, threads);
        return 1;
    }
#else
    (void)c;
#endif
    (void)threads;
    return 0;
}

static void peak_calibrate(bu_peak *pk, int threads) {
    pk->threads = threads < 1 ? 1 : threads;
    /* calibrate to ~0.05 s per trial */
    int64_t iters = 1 << 16;
    double t0 = bu_now();
    volatile float sink = run_probe(pk->kind, iters); /* kept: an unused result lets the compiler drop the call */
    (void)sink;
    double dt = bu_now() - t0;
    if (dt > 0) iters = (int64_t)((double)iters * 0.05 / dt);
    if (iters < (1 << 16)) iters = 1 << 16;
    pk->iters = iters;
    bu_peak_sample(pk, 4);
}

double bu_peak_sample(bu_peak *pk, int trials) {
    double best = 0;
    for (int t = 0; t < (trials < 1 ? 1 : trials); t++) {
        double g = probe_once(pk->kind, pk->threads, pk->iters);
        if (g > best) best = g;
    }
    if (best > pk->best) pk->best = best;
    if (pk->samples == 0 || best < pk->worst) pk->worst = best;
    pk->samples++;
    return best;
}

double bu_peak_spread(const bu_peak *pk) { return pk->best > 0 ? (pk->best - pk->worst) / pk->best : 0; }

/* ─── streaming-read probe ──────────────────────────────────────────────────
 * Each thread sums its contiguous slice of one buffer far larger than the
 * caches with 256-bit loads into 4 accumulators (the loads, not the adds,
 * bound it); GB/s = bytes read / wall time of the slowest thread. */
typedef struct stream_job {
    const float *p;
    int64_t n; /* floats, a multiple of 32 */
    float sink;
} stream_job;

#ifdef BU_X86
__attribute__((target("avx2"))) static float stream_sum_avx2(const float *p, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static void *stream_thread(void *v) {
    stream_job *j = v;
#ifdef BU_X86
    const attn_cpu_features *c = attn__cpu();
    if (c->avx2 && c->os_avx) { j->sink = stream_sum_avx2(j->p, j->n); return NULL; }
#endif
    float a[8] = {0};
    for (int64_t i = 0; i < j->n; i += 8)
        for (int k = 0; k < 8; k++) a[k] += j->p[i + k];
    j->sink = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
    return NULL;
}

double bu_bw_sample(bu_bw *b, int threads, int64_t bytes, int passes) {
    enum { MAXT = 256 };
    if (threads < 1) threads = 1;
    if (threads > MAXT) threads = MAXT;
    if (!b->buf) {
        const int64_t n = bytes / (int64_t)sizeof(float) / (32 * MAXT) * (32 * MAXT);
        if (n <= 0) return 0;
        b->buf = attn__malloc((size_t)n * sizeof(float));
        if (!b->buf) return 0;
        for (int64_t i = 0; i < n; i++) b->buf[i] = 1.0f; /* touch every page */
        b->n = n;
    }
    pthread_t th[MAXT];
    stream_job jobs[MAXT];
    double best = 0;
    float sink = 0;
    const int64_t per = b->n / threads / 32 * 32;
    for (int pass = 0; pass < passes; pass++) {
        double t0 = bu_now();
        int started = 0;
        for (int t = 1; t < threads; t++) {
            jobs[t].p = b->buf + t * per; jobs[t].n = per; jobs[t].sink = 0;
            if (pthread_create(&th[t], NULL, stream_thread, &jobs[t]) != 0) break;
            started++;
        }
        jobs[0].p = b->buf; jobs[0].n = per;
        stream_thread(&jobs[0]);
        sink += jobs[0].sink;
        for (int t = 1; t <= started; t++) { pthread_join(th[t], NULL); sink += jobs[t].sink; }
        const double dt = bu_now() - t0;
        const double g = (double)(per * (started + 1)) * sizeof(float) / dt * 1e-9;
        if (g > best) best = g;
    }
    if (sink != sink) return 0; /* keeps the sums alive */
    if (best > b->best) b->best = best;
    if (b->samples == 0 || best < b->worst) b->worst = best;
    b->samples++;
    return best;
}

double bu_bw_spread(const bu_bw *b) { return b->best > 0 ? (b->best - b->worst) / b->best : 0; }

void bu_bw_free(bu_bw *b) {
    attn__free(b->buf);
    memset(b, 0, sizeof *b);
}

int64_t bu_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (int64_t)ru.ru_maxrss * 1024; /* Linux: KiB */
}

int64_t bu_current_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long long size = 0, res = 0;
    int n = fscanf(f, "%lld %lld", &size, &res);
    fclose(f);
    if (n != 2) return -1;
    return (int64_t)res * (int64_t)sysconf(_SC_PAGESIZE);
}

void bu_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

void bu_json_text(attn_json obj, const char *key, char *out, size_t n) {
    attn_json v;
    if (attn__json_get(obj, key, &v) == 1 && v.type == ATTN_JSON_STRING) attn__json_str_get(v, out, n);
}

double bu_json_number(attn_json obj, const char *key, double dflt) {
    attn_json v;
    attn_json_num num;
    if (attn__json_get(obj, key, &v) != 1 || v.type != ATTN_JSON_NUMBER) return dflt;
    attn__json_num(v, &num);
    return num.d;
}

const char *bu_which(const char *prog) {
    static char buf[4096];
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t len = e ? (size_t)(e - path) : strlen(path);
        if (len > 0 && len + strlen(prog) + 2 < sizeof buf) {
            memcpy(buf, path, len);
            buf[len] = '/';
            strcpy(buf + len + 1, prog);
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0) return buf;
        }
        if (!e) break;
        path = e + 1;
    }
    return NULL;
}

static const char *ext_of(const char *p) {
    const char *d = strrchr(p, '.');
    return d ? d + 1 : "";
}

int bu_plot(const char *out_path, const char *title, const char *xlabel, const char *ylabel, const bu_series *s,
            int nseries, char *err, size_t errlen) {
    const char *ext = ext_of(out_path);
    const char *term;
    if (!strcmp(ext, "png")) term = "pngcairo size 1000,640 noenhanced";
    else if (!strcmp(ext, "svg")) term = "svg size 1000,640 noenhanced";
    else { snprintf(err, errlen, "--plot %s: the file name must end in .png or .svg", out_path); return 1; }
    const char *gp = bu_which("gnuplot");
    if (!gp) {
        snprintf(err, errlen, "--plot needs gnuplot, which is not on PATH (install: apt-get install gnuplot-nox)");
        return 1;
    }
    char gpath[4096];
    snprintf(gpath, sizeof gpath, "%s", gp);
    char dir[] = "/tmp/attn-plot-XXXXXX";
    if (!mkdtemp(dir)) { snprintf(err, errlen, "--plot: cannot create a temporary directory"); return 1; }
    char script[256];
    snprintf(script, sizeof script, "%s/plot.gp", dir);
    FILE *f = fopen(script, "w");
    if (!f) { snprintf(err, errlen, "--plot: cannot write %s", script); rmdir(dir); return 1; }
    /* gnuplot writes a temporary file next to out_path, renamed over it on success (never in place) */
    char tmp_out[4200];
    snprintf(tmp_out, sizeof tmp_out, "%s.tmp.%ld", out_path, (long)getpid());
    fprintf(f, "set terminal %s\nset output ", term);
    /* gnuplot strings: single quotes, '' escapes a quote */
    fputc('\'', f);
    for (const char *p = tmp_out; *p; p++) { if (*p == '\'') fputc('\'', f); fputc(*p, f); }
    fprintf(f, "'\nset title '%s'\nset xlabel '%s'\nset ylabel '%s'\n", title, xlabel, ylabel);
    fprintf(f, "set logscale x 2\nset grid\nset key outside right\nset yrange [0:*]\n");
    fprintf(f, "plot ");
    for (int i = 0; i < nseries; i++)
        fprintf(f, "%s'-' using 1:2 with linespoints lw 2 lc %d dt %d title '%s'", i ? ", " : "",
                s[i].color > 0 ? s[i].color : i + 1, s[i].dashed ? 2 : 1, s[i].title);
    fprintf(f, "\n");
    for (int i = 0; i < nseries; i++) {
        for (int j = 0; j < s[i].n; j++) fprintf(f, "%g %g\n", s[i].x[j], s[i].y[j]);
        fprintf(f, "e\n");
    }
    int werr = ferror(f);
    fclose(f);
    if (werr) { snprintf(err, errlen, "--plot: cannot write %s", script); return 1; }
    char logp[256];
    snprintf(logp, sizeof logp, "%s/gnuplot.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *lf = freopen(logp, "w", stderr);
        (void)lf;
        execl(gpath, "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status = 0, rc = 1;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) rc = 0;
    if (rc == 0 && rename(tmp_out, out_path) != 0) {
        snprintf(err, errlen, "--plot: cannot rename %s to %s: %s", tmp_out, out_path, strerror(errno));
        rc = 2;
    }
    if (rc) unlink(tmp_out);
    if (rc == 1) {
        char line[256] = "";
        FILE *lf = fopen(logp, "r");
        if (lf) {
            char tmp[256];
            while (fgets(tmp, sizeof tmp, lf))
                if (strspn(tmp, " \t\r\n^") != strlen(tmp)) snprintf(line, sizeof line, "%s", tmp);
            fclose(lf);
        }
        line[strcspn(line, "\r\n")] = 0;
        snprintf(err, errlen, "--plot: gnuplot failed writing %s%s%s", out_path, line[0] ? ": " : "", line);
    }
    unlink(script);
    unlink(logp);
    rmdir(dir);
    return rc;
}
