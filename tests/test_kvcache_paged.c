/* SPDX-License-Identifier: MIT */
/* test_kvcache_paged.c — the paged KV cache, attn_sdpa_paged_fwd and
 * attn_mha_forward_paged.
 *
 * 1. Kernel (>= 300 random batches: MHA/GQA/MQA, D/Dv odd and even, block
 *    sizes 1..128, random block tables, prefill chunks + decode steps, empty
 *    sequences, causal both alignments, windows, softcap, ALiBi, contexts long
 *    enough to be split into key partitions; pool slots no sequence uses hold
 *    NaN): o and lse equal
 *      - attn_sdpa_fwd (varlen) over the gathered contiguous K/V: |d| <= 1e-6;
 *      - the float64 reference attn_ref_sdpa_fwd: |d| <= 1e-5
 *    (|d| / max(1, |ref|) per element of o and lse; -inf lse exactly), on every ISA in turn,
 *    and are bit-identical at 1, 2 and 3 threads, and for a sequence alone and
 *    inside its batch.
 * 2. Cache, model-based (>= 1,000 random schedules of add / append / fork /
 *    truncate / remove with prefix sharing) against a simple reference cache
 *    (one contiguous K/V array per sequence plus abstract block identities for
 *    the sharing): after every operation, each live sequence's length and
 *    contents are bitwise those of the model, the free-block count is the
 *    model's, the expected error (ATTN_ERR_CAPACITY when the pool or the slots
 *    run out, STATE / NOT_FOUND / SHAPE) is returned and then nothing changed;
 *    every few operations the kernel over the cache's block tables equals
 *    attn_sdpa_fwd over the model's contiguous K/V (|d| <= 1e-6) and the
 *    float64 reference of the causal forward (<= 1e-5).
 * 3. Layer: continuous batching (sequences start, fork from a running one,
 *    finish) through attn_mha_forward_paged, mixed prefill chunks and decode
 *    steps in one call; every output row equals
 *      - attn_mha_forward_cached on a contiguous cache per sequence (a fork
 *        replays its parent's steps): bitwise when every step runs one
 *        sequence (the same GEMM shapes; half the configurations), else
 *        max|d| / max|y| <= 1e-6 over a step (T-row projection GEMMs round
 *        differently from per-sequence ones),
 *      - the full causal attn_mha_forward over the sequence's tokens (rel 1e-5,
 *        the bound of test_kvcache).
 * 4. Bad input: block table ids out of range, a sequence longer than its
 *    blocks, bad cu_seqlens / options / dtypes, duplicate ids, fork of a
 *    missing sequence, capacity: an error, and nothing written.
 * Element types: 1-3 run for every pool type (F32, BF16, F16, I8). For the
 * reduced ones the references are fed the values the cache holds, computed
 * here independently (ref_round_row: half.h's bit-exact round-to-nearest-even
 * for bf16 / f16; int8 quantised in this file), and the kernel must match
 * them as tightly as the fp32 one (1e-5 vs float64; 2e-6 vs attn_sdpa_fwd
 * over the same values, whose summation order differs); bit-identical at 1,
 * 2, 3 threads. The layer checks the typed paged cache against a typed
 * contiguous cache: bitwise for one-sequence steps; batched steps project K/V
 * with other GEMM shapes, and values an ulp apart may round to neighbouring
 * values of the type, so there the bound is one step of the type (2^-8,
 * 2^-11, 1/127); and against the fp32 full forward within the type's
 * rounding (bf16 1e-2, f16 2e-3, int8 2e-2 rel). */
#include "attn.h"
#include "io/half.h"
#include "kernels/kv_typed.h"
#include "kernels/ref/sdpa_ref.h"
#include "layer/kvcache_paged.h"
#include "mha_ref.h"
#include "sdpa_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}
#define NEWF(n) ((float *)xcalloc((size_t)(n), sizeof(float)))

/* max over elements of |a - b| / max(1, |b|): absolute for |b| <= 1, relative
 * above (a few ulp of o or lse either way); inf if a NaN appears or
 * infinities (-inf lse of fully masked rows) differ. */
static double err1(const float *a, const float *b, int64_t n) {
    double md = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isinf(a[i]) || isinf(b[i])) { if (a[i] != b[i]) return INFINITY; continue; }
        double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i]));
        if (d != d) return INFINITY;
        if (d > md) md = d;
    }
    return md;
}

static double err1_64(const float *a, const double *b, int64_t n) {
    double md = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isinf(a[i]) || isinf(b[i])) { if ((double)a[i] != b[i]) return INFINITY; continue; }
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs(b[i]));
        if (d != d) return INFINITY;
        if (d > md) md = d;
    }
    return md;
}


static int64_t g_split_cases = 0, g_single_steps = 0;
static double g_worst_fast[4]; /* decode_fast: o (bf16, int8), lse (bf16, int8): error / its bound */
static double g_worst_layer_typed[3]; /* bf16, f16, int8 cache vs the fp32 full forward */
static double g_worst_fwd = 0, g_worst_ref = 0, g_worst_layer_c = 0, g_worst_layer_f = 0;

/* ─── 1. kernel against attn_sdpa_fwd and the float64 reference ──────────── */

/* A batch of B sequences in a paged pool plus the same K/V gathered contiguously. */
typedef struct pbatch {
    int64_t B, T, Hq, Hkv, D, Dv, bs, nb, mb, Tk;
    attn_dtype dtype;                     /* pool type; F32: kpool / vpool, else kt / vt (+ ks / vs for I8) */
    void *kt, *vt;
    float *ks, *vs;                       /* (nb, Hkv, bs) */
    int32_t *cu_q, *cu_k, *lens, *tables; /* (B+1), (B+1), (B), (B, mb) */
    float *kpool, *vpool;                 /* (nb, Hkv, bs, D), (nb, Hkv, bs, Dv) */
    float *q, *kc, *vc;                   /* (T, Hq, D), (Tk, Hkv, D), (Tk, Hkv, Dv) */
} pbatch;

static void pbatch_free(pbatch *p) {
    free(p->cu_q); free(p->cu_k); free(p->lens); free(p->tables);
    free(p->kpool); free(p->vpool); free(p->q); free(p->kc); free(p->vc);
    free(p->kt); free(p->vt); free(p->ks); free(p->vs);
}

/* The stored value of row x (D) in a cache of type t, computed independently
 * of the library: dst (D) elements of t, *scale (I8), back (D) the fp32 values. */
static void ref_round_row(attn_dtype t, const float *x, int64_t D, void *dst, float *scale, float *back) {
    if (t == ATTN_DTYPE_F32) { memcpy(dst, x, sizeof(float) * (size_t)D); memcpy(back, x, sizeof(float) * (size_t)D); return; }
    if (t != ATTN_DTYPE_I8) {
        for (int64_t d = 0; d < D; d++) {
            const uint16_t h = t == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(x[d]) : attn__f32_to_f16(x[d]);
            ((uint16_t *)dst)[d] = h;
            back[d] = t == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(h) : attn__f16_to_f32(h);
        }
        return;
    }
    double a = 0;
    int nonfinite = 0;
    for (int64_t d = 0; d < D; d++) { a = fmax(a, fabs((double)x[d])); nonfinite |= !isfinite(x[d]); }
    const float sc = nonfinite ? NAN : (float)a / 127.0f;
    *scale = sc;
    for (int64_t d = 0; d < D; d++) {
        double qd = (nonfinite || a == 0) ? 0 : nearbyint((double)(x[d] / sc));
        if (qd > 127) qd = 127;
        if (qd < -127) qd = -127;
        ((int8_t *)dst)[d] = (int8_t)qd;
        back[d] = (float)((int8_t *)dst)[d] * sc; /* from the int8: q = -0.0 reads back as +0 */
    }
}

/* Converts p's fp32 pools to type t: kt / vt (+ scales), and kc / vc become
 * the values the typed pool holds (what the references see). */
static void pbatch_typed(pbatch *p, attn_dtype t) {
    p->dtype = t;
    if (t == ATTN_DTYPE_F32) return;
    const size_t es = t == ATTN_DTYPE_I8 ? 1 : 2;
    const int64_t slots = p->nb * p->Hkv * p->bs;
    p->kt = xcalloc((size_t)(slots * p->D), es);
    p->vt = xcalloc((size_t)(slots * p->Dv), es);
    p->ks = NEWF(slots);
    p->vs = NEWF(slots);
    float *bk = NEWF(p->D), *bv = NEWF(p->Dv);
    for (int64_t i = 0; i < slots; i++) { /* every slot, the unused NaN ones too */
        ref_round_row(t, p->kpool + i * p->D, p->D, (char *)p->kt + (size_t)(i * p->D) * es, &p->ks[i], bk);
        ref_round_row(t, p->vpool + i * p->Dv, p->Dv, (char *)p->vt + (size_t)(i * p->Dv) * es, &p->vs[i], bv);
    }
    free(bk); free(bv);
    float *scratch = NEWF(p->D > p->Dv ? p->D : p->Dv);
    char tmp[1024];
    for (int64_t i = 0; i < p->Tk * p->Hkv; i++) {
        float sc;
        ref_round_row(t, p->kc + i * p->D, p->D, tmp, &sc, scratch);
        memcpy(p->kc + i * p->D, scratch, sizeof(float) * (size_t)p->D);
        ref_round_row(t, p->vc + i * p->Dv, p->Dv, tmp, &sc, scratch);
        memcpy(p->vc + i * p->Dv, scratch, sizeof(float) * (size_t)p->Dv);
    }
    free(scratch);
}

static void pbatch_make(pbatch *p, tu_rng *r, int long_ctx) {
    static const int64_t heads[][2] = {{1, 1}, {2, 2}, {4, 2}, {4, 1}, {8, 2}, {6, 3}, {12, 1}, {3, 3}};
    static const int64_t dims[] = {4, 8, 13, 16, 24, 32, 64};
    static const int64_t bss[] = {1, 3, 16, 16, 32, 64, 128};
    memset(p, 0, sizeof *p);
    const int h = (int)tu_int(r, 0, 7);
    p->Hq = heads[h][0]; p->Hkv = heads[h][1];
    p->D = dims[tu_int(r, 0, 6)];
    p->Dv = tu_int(r, 0, 3) ? p->D : dims[tu_int(r, 0, 6)];
    p->bs = bss[tu_int(r, 0, 6)];
    p->B = tu_int(r, 0, 5) == 0 ? tu_int(r, 0, 1) : tu_int(r, 1, 6);
    const int64_t maxlen = long_ctx ? tu_int(r, 600, 1500) : tu_int(r, 1, 150);
    p->mb = (maxlen + p->bs - 1) / p->bs + tu_int(r, 0, 2);
    p->cu_q = xcalloc((size_t)p->B + 1, sizeof(int32_t));
    p->cu_k = xcalloc((size_t)p->B + 1, sizeof(int32_t));
    p->lens = xcalloc((size_t)p->B + 1, sizeof(int32_t));
    p->tables = xcalloc((size_t)(p->B * p->mb) + 1, sizeof(int32_t));
    int64_t used = 0;
    for (int64_t b = 0; b < p->B; b++) {
        int64_t L = tu_int(r, 0, 6) == 0 ? 0 : tu_int(r, 1, maxlen);
        int64_t sq = tu_int(r, 0, 1) ? 1 : tu_int(r, 0, L < 24 ? L + 2 : 24); /* decode, or a chunk (maybe > L) */
        p->lens[b] = (int32_t)L;
        p->cu_q[b + 1] = p->cu_q[b] + (int32_t)sq;
        p->cu_k[b + 1] = p->cu_k[b] + (int32_t)L;
        used += (L + p->bs - 1) / p->bs;
    }
    p->T = p->cu_q[p->B];
    p->Tk = p->cu_k[p->B];
    p->nb = used + tu_int(r, 1, 4);
    /* random distinct block ids for every sequence's blocks */
    int32_t *perm = xcalloc((size_t)p->nb, sizeof(int32_t));
    for (int64_t i = 0; i < p->nb; i++) perm[i] = (int32_t)i;
    for (int64_t i = p->nb - 1; i > 0; i--) {
        int64_t j = tu_int(r, 0, i);
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    for (int64_t i = 0; i < p->B * p->mb; i++) p->tables[i] = (int32_t)tu_int(r, -5, -1); /* unused entries: garbage */
    int64_t next = 0;
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t i = 0; i < (p->lens[b] + p->bs - 1) / p->bs; i++) p->tables[b * p->mb + i] = perm[next++];
    free(perm);
    const int64_t slots = p->nb * p->Hkv * p->bs;
    p->kpool = NEWF(slots * p->D);
    p->vpool = NEWF(slots * p->Dv);
    for (int64_t i = 0; i < slots * p->D; i++) p->kpool[i] = NAN; /* never read */
    for (int64_t i = 0; i < slots * p->Dv; i++) p->vpool[i] = NAN;
    p->q = NEWF(p->T * p->Hq * p->D);
    p->kc = NEWF(p->Tk * p->Hkv * p->D);
    p->vc = NEWF(p->Tk * p->Hkv * p->Dv);
    tu_fill(r, p->q, p->T * p->Hq * p->D, 1.0f);
    tu_fill(r, p->kc, p->Tk * p->Hkv * p->D, 1.0f);
    tu_fill(r, p->vc, p->Tk * p->Hkv * p->Dv, 1.0f);
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t t = 0; t < p->lens[b]; t++) {
            const int64_t blk = p->tables[b * p->mb + t / p->bs], off = t % p->bs, row = p->cu_k[b] + t;
            for (int64_t hh = 0; hh < p->Hkv; hh++) {
                memcpy(p->kpool + ((blk * p->Hkv + hh) * p->bs + off) * p->D, p->kc + (row * p->Hkv + hh) * p->D,
                       sizeof(float) * (size_t)p->D);
                memcpy(p->vpool + ((blk * p->Hkv + hh) * p->bs + off) * p->Dv, p->vc + (row * p->Hkv + hh) * p->Dv,
                       sizeof(float) * (size_t)p->Dv);
            }
        }
}

static attn_paged_kv pbatch_kv(const pbatch *p) {
    attn_paged_kv kv = {ATTN_DTYPE_F32, p->kpool, p->vpool, p->nb, p->bs, p->tables, p->mb, p->lens, NULL, NULL};
    if (p->dtype != ATTN_DTYPE_F32) {
        kv.dtype = p->dtype; kv.k = p->kt; kv.v = p->vt;
        if (p->dtype == ATTN_DTYPE_I8) { kv.k_scale = p->ks; kv.v_scale = p->vs; }
    }
    return kv;
}

static const attn_dtype KV_TYPES[4] = {ATTN_DTYPE_F32, ATTN_DTYPE_BF16, ATTN_DTYPE_F16, ATTN_DTYPE_I8};

static void random_opts(tu_rng *r, attn_sdpa_opts *o, float *slopes, int64_t Hq) {
    attn_sdpa_opts_init(o);
    o->causal = tu_int(r, 0, 9) < 7;
    o->align = tu_int(r, 0, 9) < 8 ? ATTN_ALIGN_BOTTOM_RIGHT : ATTN_ALIGN_TOP_LEFT;
    if (tu_int(r, 0, 3) == 0) o->window_left = tu_int(r, 0, 40);
    if (tu_int(r, 0, 5) == 0) o->window_right = tu_int(r, 0, 8);
    if (tu_int(r, 0, 4) == 0) o->softcap = 3.0f;
    if (tu_int(r, 0, 4) == 0) {
        for (int64_t h = 0; h < Hq; h++) slopes[h] = (float)(0.05 * (h + 1));
        o->alibi_slopes = slopes;
    }
    if (tu_int(r, 0, 4) == 0) o->scale = 0.3f;
}

/* o (T, Hq, Dv), lse (Hq, T) of the paged kernel at nthreads threads. */
static attn_status run_paged(const pbatch *p, const attn_sdpa_opts *o0, int nthreads, float *o, float *lse) {
    attn_sdpa_dims d = {p->B, p->T, 0, p->Hq, p->Hkv, p->D, p->Dv};
    attn_sdpa_opts o1 = *o0;
    o1.cu_seqlens_q = p->cu_q;
    o1.num_threads = nthreads;
    attn_paged_kv kv = pbatch_kv(p);
    size_t ws = attn_sdpa_paged_fwd_workspace_size(&d, &kv, &o1);
    void *buf = ws ? attn__malloc(ws) : NULL;
    attn_status s = attn_sdpa_paged_fwd(&d, attn_view_bshd(p->q, p->T, p->Hq, p->D), &kv,
                                        attn_view_bshd(o, p->T, p->Hq, p->Dv), lse, &o1, buf, ws);
    attn__free(buf);
    return s;
}

/* o, lse of the paged kernel at 1 thread, checked to succeed and to be the
 * same bits at 2 and 3 threads. */
static void run_paged_threads(const pbatch *p, const attn_sdpa_opts *opts, float *o, float *lse, const char *what,
                              int64_t idx) {
    const int64_t no = p->T * p->Hq * p->Dv, nl = p->Hq * p->T;
    float *o2 = NEWF(no), *o3 = NEWF(no), *l2 = NEWF(nl), *l3 = NEWF(nl);
    attn_status s1 = run_paged(p, opts, 1, o, lse), s2 = run_paged(p, opts, 2, o2, l2), s3 = run_paged(p, opts, 3, o3, l3);
    CHECK(s1 == ATTN_OK && s2 == ATTN_OK && s3 == ATTN_OK, "%s %lld: paged: %s", what, (long long)idx, attn_last_error());
    CHECK(memcmp(o, o2, sizeof(float) * (size_t)no) == 0 && memcmp(o, o3, sizeof(float) * (size_t)no) == 0 &&
          memcmp(lse, l2, sizeof(float) * (size_t)nl) == 0 && memcmp(lse, l3, sizeof(float) * (size_t)nl) == 0,
          "%s %lld: results differ between 1, 2 and 3 threads", what, (long long)idx);
    free(o2); free(o3); free(l2); free(l3);
}

/* attn_sdpa_fwd (varlen) over the contiguous K/V. */
static attn_status run_contig(const pbatch *p, const attn_sdpa_opts *o0, float *o, float *lse) {
    attn_sdpa_dims d = {p->B, p->T, p->Tk, p->Hq, p->Hkv, p->D, p->Dv};
    attn_sdpa_opts o1 = *o0;
    o1.cu_seqlens_q = p->cu_q;
    o1.cu_seqlens_k = p->cu_k;
    return attn_sdpa_fwd(&d, attn_view_bshd(p->q, p->T, p->Hq, p->D), attn_view_bshd(p->kc, p->Tk, p->Hkv, p->D),
                         attn_view_bshd(p->vc, p->Tk, p->Hkv, p->Dv), attn_view_bshd(o, p->T, p->Hq, p->Dv), lse, &o1,
                         NULL, 0);
}

static void to64(const float *a, double *b, int64_t n) { for (int64_t i = 0; i < n; i++) b[i] = a[i]; }

/* The float64 reference attn_ref_sdpa_fwd (varlen, over the contiguous K/V
 * the pool holds) of p under o: *or64 (T, Hq, Dv), *lr64 (Hq, T), the
 * caller frees them; q_bf16: with q rounded to bf16 (decode_fast's query). */
static void pbatch_ref(const pbatch *p, const attn_sdpa_opts *o, int q_bf16, double **or64, double **lr64) {
    attn_sdpa_dims d = {p->B, p->T, p->Tk, p->Hq, p->Hkv, p->D, p->Dv};
    attn_sdpa_opts o64 = *o;
    o64.cu_seqlens_q = p->cu_q;
    o64.cu_seqlens_k = p->cu_k;
    double *q64 = xcalloc((size_t)(p->T * p->Hq * p->D) + 1, sizeof(double));
    double *k64 = xcalloc((size_t)(p->Tk * p->Hkv * p->D) + 1, sizeof(double));
    double *v64 = xcalloc((size_t)(p->Tk * p->Hkv * p->Dv) + 1, sizeof(double));
    *or64 = xcalloc((size_t)(p->T * p->Hq * p->Dv) + 1, sizeof(double));
    *lr64 = xcalloc((size_t)(p->Hq * p->T) + 1, sizeof(double));
    for (int64_t i = 0; i < p->T * p->Hq * p->D; i++) q64[i] = q_bf16 ? attn__bf16_to_f32(attn__f32_to_bf16(p->q[i])) : p->q[i];
    to64(p->kc, k64, p->Tk * p->Hkv * p->D);
    to64(p->vc, v64, p->Tk * p->Hkv * p->Dv);
    CHECK(attn_ref_sdpa_fwd(&d, q64, k64, v64, *or64, *lr64, &o64) == ATTN_OK, "reference: %s", attn_last_error());
    free(q64); free(k64); free(v64);
}

static void kernel_case(tu_rng *r, int64_t idx, attn_dtype dtype) {
    pbatch p;
    pbatch_make(&p, r, idx % 5 == 4);
    pbatch_typed(&p, dtype);
    /* every ISA the CPU has, in turn (paged and contiguous kernels on the same one) */
    attn_isa isa = (attn_isa)(idx % ATTN_ISA_COUNT);
    if (isa > attn_isa_detected()) isa = attn_isa_detected();
    attn_isa_set(isa);
    for (int64_t b = 0; b < p.B; b++) /* decode rows of a long context: split into key partitions */
        if ((p.cu_q[b + 1] - p.cu_q[b]) * (p.Hq / p.Hkv) <= 8 && p.lens[b] > 512) { g_split_cases++; break; }
    float slopes[16];
    attn_sdpa_opts o;
    random_opts(r, &o, slopes, p.Hq);
    const int64_t no = p.T * p.Hq * p.Dv, nl = p.Hq * p.T;
    float *o1 = NEWF(no), *oc = NEWF(no), *l1 = NEWF(nl), *lc = NEWF(nl);
    run_paged_threads(&p, &o, o1, l1, "case", idx);
    if (p.B > 1) { /* the last sequence alone: the same bits as inside the batch */
        const int64_t b = p.B - 1, sq = p.cu_q[b + 1] - p.cu_q[b];
        int32_t cu1[2] = {0, (int32_t)sq};
        attn_sdpa_dims d1 = {1, sq, 0, p.Hq, p.Hkv, p.D, p.Dv};
        attn_sdpa_opts oo = o;
        oo.cu_seqlens_q = cu1;
        attn_paged_kv kv1 = pbatch_kv(&p);
        kv1.block_tables = p.tables + b * p.mb;
        kv1.seq_lens = p.lens + b;
        float *os = NEWF(sq * p.Hq * p.Dv);
        attn_status s1b = attn_sdpa_paged_fwd(&d1, attn_view_bshd(p.q + p.cu_q[b] * p.Hq * p.D, sq, p.Hq, p.D), &kv1,
                                              attn_view_bshd(os, sq, p.Hq, p.Dv), NULL, &oo, NULL, 0);
        CHECK(s1b == ATTN_OK && memcmp(os, o1 + p.cu_q[b] * p.Hq * p.Dv, sizeof(float) * (size_t)(sq * p.Hq * p.Dv)) == 0,
              "case %lld: sequence %lld alone differs from its rows in the batch", (long long)idx, (long long)b);
        free(os);
    }
    attn_status sc = run_contig(&p, &o, oc, lc);
    CHECK(sc == ATTN_OK, "case %lld: contiguous: %s", (long long)idx, attn_last_error());
    double ef = fmax(err1(o1, oc, no), err1(l1, lc, nl));
    /* inference calls (lse NULL): attn_sdpa_fwd's few-row blocks take its dot-product path too */
    sc = run_contig(&p, &o, oc, NULL);
    CHECK(sc == ATTN_OK, "case %lld: contiguous (no lse): %s", (long long)idx, attn_last_error());
    ef = fmax(ef, err1(o1, oc, no));
    if (ef > g_worst_fwd) g_worst_fwd = ef;
    /* typed pools: kv_typed's kernels sum in another order than attn_sdpa_fwd's (the float64 bound is the same) */
    CHECK(ef <= (dtype == ATTN_DTYPE_F32 ? 1e-6 : 2e-6), "case %lld %s (B %lld T %lld H %lld/%lld D %lld/%lld bs %lld causal %d align %d win %lld/%lld cap %g "
          "alibi %d): paged vs attn_sdpa_fwd %.3g", (long long)idx, attn__kv_dtype_name(dtype), (long long)p.B, (long long)p.T, (long long)p.Hq,
          (long long)p.Hkv, (long long)p.D, (long long)p.Dv, (long long)p.bs, o.causal, o.align,
          (long long)o.window_left, (long long)o.window_right, (double)o.softcap, o.alibi_slopes != NULL, ef);
    double *or64, *lr64; /* float64 reference (varlen, contiguous) */
    pbatch_ref(&p, &o, 0, &or64, &lr64);
    const double er = fmax(err1_64(o1, or64, no), err1_64(l1, lr64, nl));
    if (er > g_worst_ref) g_worst_ref = er;
    CHECK(er <= 1e-5, "case %lld %s: paged vs float64 reference %.3g", (long long)idx, attn__kv_dtype_name(dtype), er);
    free(or64); free(lr64);
    free(o1); free(oc); free(l1); free(lc);
    pbatch_free(&p);
    attn_isa_set(attn_isa_detected());
}

static void test_kernel(void) {
    tu_rng r = {1313};
    const int64_t n = sc_count(300), nt = sc_count(120);
    for (int64_t i = 0; i < n; i++) kernel_case(&r, i, ATTN_DTYPE_F32);
    for (int ti = 1; ti < 4; ti++) /* the reduced-precision pools */
        for (int64_t i = 0; i < nt; i++) kernel_case(&r, i, KV_TYPES[ti]);
    printf("paged kernel: %lld fp32 batches + %lld each bf16 / f16 / int8 (%lld with split long contexts), worst |paged - attn_sdpa_fwd| %.3g, "
           "|paged - float64 ref| %.3g (|d| / max(1, |ref|))\n", (long long)n,
           (long long)nt, (long long)g_split_cases, g_worst_fwd, g_worst_ref);
    CHECK(g_split_cases > 0, "no case reached the split path");
}

/* ─── 1b. opts->decode_fast ─────────────────────────────────────────────── */

/* A BF16 or I8 pool, D (and for BF16 Dv) a multiple of 32, every sequence a
 * decode block (Sq x G <= 8 rows): with decode_fast the output is within
 * attn.h's bound of the float64 attention over the pool's values:
 *   BF16 (q rounded to bf16 in the reference): |o - ref| <= 2^-8 max |v| +
 *        1e-5 max(1, |ref|), lse within 1e-5;
 *   I8 (q as given): every logit within dl = scale max|q_row| / 65534 ||k||_1
 *        (the int16 query), so |o - ref| <= 2.2 dl max |v| + 1e-5 max(1,
 *        |ref|) and |lse - ref| <= 1.1 dl + 1e-5 max(1, |ref|);
 * the same bits at 1, 2 and 3 threads. Returns the elements that differ from
 * decode_fast = 0 (0 without the CPU feature: then checked equal). */
static int64_t fast_case(tu_rng *r, int64_t idx, attn_dtype dtype) {
    pbatch p;
    for (;;) {
        pbatch_make(&p, r, idx % 3 == 2);
        int ok = p.D % 32 == 0 && (dtype == ATTN_DTYPE_I8 || p.Dv % 32 == 0) && p.B > 0 && p.T > 0;
        for (int64_t b = 0; ok && b < p.B; b++) ok = (p.cu_q[b + 1] - p.cu_q[b]) * (p.Hq / p.Hkv) <= 8;
        if (ok) break;
        pbatch_free(&p);
    }
    pbatch_typed(&p, dtype);
    const int i8 = dtype == ATTN_DTYPE_I8;
    float slopes[16];
    attn_sdpa_opts o;
    random_opts(r, &o, slopes, p.Hq);
    const int64_t no = p.T * p.Hq * p.Dv, nl = p.Hq * p.T;
    float *o0 = NEWF(no), *o1 = NEWF(no), *l0 = NEWF(nl), *l1 = NEWF(nl);
    attn_status s0 = run_paged(&p, &o, 2, o0, l0);
    CHECK(s0 == ATTN_OK, "fast case %lld: %s", (long long)idx, attn_last_error());
    o.decode_fast = 1;
    run_paged_threads(&p, &o, o1, l1, "fast case", idx);
    int64_t ndiff = 0;
    for (int64_t i = 0; i < no; i++) ndiff += memcmp(&o0[i], &o1[i], sizeof(float)) != 0;
    double *or64, *lr64, vmax = 0, worst = 0, qmax = 0, k1 = 0, el = 0;
    pbatch_ref(&p, &o, !i8, &or64, &lr64);
    for (int64_t i = 0; i < p.Tk * p.Hkv * p.Dv; i++) vmax = fmax(vmax, fabs((double)p.vc[i]));
    for (int64_t i = 0; i < p.T * p.Hq * p.D; i++) qmax = fmax(qmax, fabs((double)p.q[i]));
    for (int64_t i = 0; i < p.Tk * p.Hkv; i++) {
        double a = 0;
        for (int64_t d = 0; d < p.D; d++) a += fabs((double)p.kc[i * p.D + d]);
        k1 = fmax(k1, a);
    }
    const double scale = o.scale != 0.0f ? fabs((double)o.scale) : 1.0 / sqrt((double)p.D), dl = scale * qmax / 65534.0 * k1;
    for (int64_t i = 0; i < no; i++) {
        const double bnd = (i8 ? 2.2 * dl * vmax : 0x1p-8 * vmax) + 1e-5 * fmax(1.0, fabs(or64[i]));
        const double e = fabs((double)o1[i] - or64[i]) / bnd;
        worst = e != e ? INFINITY : fmax(worst, e);
    }
    for (int64_t i = 0; i < nl; i++) {
        if (isinf(lr64[i]) || isinf(l1[i])) { if ((double)l1[i] != lr64[i]) el = INFINITY; continue; }
        const double e = fabs((double)l1[i] - lr64[i]) / ((i8 ? 1.1 * dl : 0.0) + 1e-5 * fmax(1.0, fabs(lr64[i])));
        el = e != e ? INFINITY : fmax(el, e);
    }
    if (worst > g_worst_fast[i8]) g_worst_fast[i8] = worst;
    if (el > g_worst_fast[2 + i8]) g_worst_fast[2 + i8] = el;
    CHECK(worst <= 1.0 && el <= 1.0, "fast case %lld %s (B %lld T %lld H %lld/%lld D %lld/%lld bs %lld causal %d win %lld/%lld "
          "cap %g alibi %d): o at %.3g of the bound, lse at %.3g", (long long)idx, attn__kv_dtype_name(dtype), (long long)p.B, (long long)p.T,
          (long long)p.Hq, (long long)p.Hkv, (long long)p.D, (long long)p.Dv, (long long)p.bs, o.causal,
          (long long)o.window_left, (long long)o.window_right, (double)o.softcap, o.alibi_slopes != NULL, worst, el);
    free(or64); free(lr64);
    free(o0); free(o1); free(l0); free(l1);
    pbatch_free(&p);
    return ndiff;
}

/* decode_fast where it does not apply (F32 / F16 pools, D not a multiple of
 * 32, BF16 with Dv not one, batches of prefill blocks only): the bits of
 * decode_fast = 0. */
static void fast_inert_case(tu_rng *r, int64_t idx) {
    pbatch p;
    pbatch_make(&p, r, idx % 4 == 3);
    pbatch_typed(&p, KV_TYPES[idx % 4]);
    float slopes[16];
    attn_sdpa_opts o;
    random_opts(r, &o, slopes, p.Hq);
    int applies = p.D % 32 == 0 && (p.dtype == ATTN_DTYPE_I8 || (p.dtype == ATTN_DTYPE_BF16 && p.Dv % 32 == 0));
    const int64_t no = p.T * p.Hq * p.Dv, nl = p.Hq * p.T;
    float *o0 = NEWF(no), *o1 = NEWF(no), *l0 = NEWF(nl), *l1 = NEWF(nl);
    attn_status s0 = run_paged(&p, &o, 2, o0, l0);
    o.decode_fast = 1;
    attn_status s1 = run_paged(&p, &o, 2, o1, l1);
    CHECK(s0 == ATTN_OK && s1 == ATTN_OK, "inert case %lld: %s", (long long)idx, attn_last_error());
    int prefill = 1; /* no decode block: nothing to change */
    for (int64_t b = 0; b < p.B; b++) prefill &= (p.cu_q[b + 1] - p.cu_q[b]) * (p.Hq / p.Hkv) > 8;
    if (!applies || prefill)
        CHECK(memcmp(o0, o1, sizeof(float) * (size_t)no) == 0 && memcmp(l0, l1, sizeof(float) * (size_t)nl) == 0,
              "inert case %lld (%s D %lld/%lld): decode_fast changed the result", (long long)idx,
              attn__kv_dtype_name(p.dtype), (long long)p.D, (long long)p.Dv);
    free(o0); free(o1); free(l0); free(l1);
    pbatch_free(&p);
}

static void test_fast(void) {
    tu_rng r = {4242};
    const int64_t n = sc_count(200), ni = sc_count(200);
    int64_t ndiff[2] = {0, 0};
    for (int t = 0; t < 2; t++)
        for (int64_t i = 0; i < n; i++) ndiff[t] += fast_case(&r, i, t ? ATTN_DTYPE_I8 : ATTN_DTYPE_BF16);
    for (int64_t i = 0; i < ni; i++) fast_inert_case(&r, i);
    const attn__kv_kernels *kk = attn__kv_kernels_get();
    const int native[2] = {kk->kdot_bf16 != NULL, kk->kdot_i8 != NULL};
    printf("decode_fast: %lld bf16 decode batches, worst o at %.3g, lse at %.3g of their bounds; %lld elements differ "
           "from decode_fast = 0 (%s)\n", (long long)n, g_worst_fast[0], g_worst_fast[2], (long long)ndiff[0],
           native[0] ? "AVX512_BF16" : "no AVX512_BF16: the fp32 path");
    printf("decode_fast: %lld int8 decode batches, worst o at %.3g, lse at %.3g of their bounds; %lld elements differ "
           "(%s); %lld batches where it does not apply: same bits\n", (long long)n, g_worst_fast[1], g_worst_fast[3],
           (long long)ndiff[1], native[1] ? "AVX512_VNNI" : "no AVX512_VNNI: the fp32 path", (long long)ni);
    for (int t = 0; t < 2; t++) {
        if (native[t]) CHECK(ndiff[t] > 0, "decode_fast (%s) never changed a result (fast path not taken)", t ? "int8" : "bf16");
        else CHECK(ndiff[t] == 0, "decode_fast (%s) changed results without its kernels", t ? "int8" : "bf16");
    }
}

/* ─── 2. the cache against a reference model ─────────────────────────────── */

#define MAX_IDS 8

/* Reference cache: per id a contiguous (len, Hkv, D) K and V and one abstract
 * block identity per block (equal identities = one shared pool block). */
typedef struct model {
    int64_t bs, nb, S, maxlen, Hkv, D;
    attn_dtype dtype; /* the cache's: k, v hold the values it stores (ref_round_row) */
    int live[MAX_IDS];
    int64_t len[MAX_IDS];
    float *k[MAX_IDS], *v[MAX_IDS]; /* (maxlen, Hkv, D) */
    int64_t *blk[MAX_IDS];          /* (ceil(maxlen / bs)) identities */
    int64_t next_blk;
} model;

static int64_t model_nlive(const model *M) {
    int64_t n = 0;
    for (int i = 0; i < MAX_IDS; i++) n += M->live[i];
    return n;
}

/* Distinct block identities held by live sequences = blocks in use. */
static int64_t model_used(const model *M) {
    int64_t n = 0;
    for (int i = 0; i < MAX_IDS; i++) {
        if (!M->live[i]) continue;
        for (int64_t a = 0; a < (M->len[i] + M->bs - 1) / M->bs; a++) {
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) {
                if (!M->live[j]) continue;
                for (int64_t c = 0; c < (M->len[j] + M->bs - 1) / M->bs && !seen; c++) seen = M->blk[j][c] == M->blk[i][a];
            }
            for (int64_t c = 0; c < a && !seen; c++) seen = M->blk[i][c] == M->blk[i][a];
            n += !seen;
        }
    }
    return n;
}

static int model_shared(const model *M, int id, int64_t ident) {
    for (int j = 0; j < MAX_IDS; j++) {
        if (!M->live[j] || j == id) continue;
        for (int64_t c = 0; c < (M->len[j] + M->bs - 1) / M->bs; c++)
            if (M->blk[j][c] == ident) return 1;
    }
    return 0;
}

/* Blocks an append of n tokens to id takes in the model. */
static int64_t model_need(const model *M, int id, int64_t n) {
    const int64_t L = M->len[id], bs = M->bs;
    int64_t need = (L + n + bs - 1) / bs - (L + bs - 1) / bs;
    if (n > 0 && L % bs && model_shared(M, id, M->blk[id][L / bs])) need++;
    return need;
}

static void model_append(model *M, int id, int64_t n, const float *k, const float *v) {
    const int64_t L = M->len[id], bs = M->bs, row = M->Hkv * M->D;
    if (n > 0 && L % bs && model_shared(M, id, M->blk[id][L / bs])) M->blk[id][L / bs] = M->next_blk++;
    for (int64_t t = L; t < L + n; t++)
        if (t % bs == 0) M->blk[id][t / bs] = M->next_blk++;
    char tmp[1024];
    float sc;
    for (int64_t i = 0; i < n * M->Hkv; i++) { /* row by row: token, head */
        ref_round_row(M->dtype, k + i * M->D, M->D, tmp, &sc, M->k[id] + L * row + i * M->D);
        ref_round_row(M->dtype, v + i * M->D, M->D, tmp, &sc, M->v[id] + L * row + i * M->D);
    }
    M->len[id] = L + n;
}

/* The cache agrees with the model: lengths, contents (bitwise), free blocks,
 * reference counts recomputed from the tables. */
static int cache_matches(const attn_kvpaged *c, const model *M, float *kb, float *vb) {
    int ok = 1;
    for (int i = 0; i < MAX_IDS; i++) {
        int64_t L = attn_kvpaged_len(c, i);
        if (!M->live[i]) { ok &= L == -1; continue; }
        ok &= L == M->len[i];
        if (L != M->len[i]) continue;
        ok &= attn_kvpaged_read(c, i, 0, L, kb, vb) == ATTN_OK;
        ok &= memcmp(kb, M->k[i], sizeof(float) * (size_t)(L * M->Hkv * M->D)) == 0;
        ok &= memcmp(vb, M->v[i], sizeof(float) * (size_t)(L * M->Hkv * M->D)) == 0;
    }
    ok &= attn_kvpaged_free_blocks(c) == M->nb - model_used(M);
    int32_t *refs = xcalloc((size_t)c->nb, sizeof(int32_t));
    for (int64_t s = 0; s < c->S; s++)
        if (c->id[s] >= 0)
            for (int64_t a = 0; a < (c->len[s] + c->bs - 1) / c->bs; a++) refs[c->table[s * c->mb + a]]++;
    int64_t zero = 0;
    for (int64_t b = 0; b < c->nb; b++) { ok &= refs[b] == c->ref[b]; zero += refs[b] == 0; }
    ok &= zero == c->nfree;
    free(refs);
    return ok;
}

/* Kernel over the cache's block tables for a subset of live ids (their last
 * sq tokens as the new queries) vs attn_sdpa_fwd over the model's K/V. */
static void model_attend(tu_rng *r, const attn_kvpaged *c, const model *M, int64_t Hq, int64_t sched) {
    int64_t ids[MAX_IDS], n = 0;
    for (int i = 0; i < MAX_IDS; i++)
        if (M->live[i] && M->len[i] > 0 && tu_int(r, 0, 3)) ids[n++] = i;
    if (n == 0) return;
    pbatch p;
    memset(&p, 0, sizeof p);
    p.B = n; p.Hq = Hq; p.Hkv = M->Hkv; p.D = p.Dv = M->D;
    p.cu_q = xcalloc((size_t)n + 1, sizeof(int32_t));
    p.cu_k = xcalloc((size_t)n + 1, sizeof(int32_t));
    p.lens = xcalloc((size_t)n, sizeof(int32_t));
    p.tables = xcalloc((size_t)(n * c->mb), sizeof(int32_t));
    attn_paged_kv kv;
    attn_status s = attn_kvpaged_describe(c, ids, n, p.lens, p.tables, &kv);
    CHECK(s == ATTN_OK, "describe: %s", attn_last_error());
    for (int64_t b = 0; b < n; b++) {
        const int64_t L = M->len[ids[b]], sq = tu_int(r, 1, L < 5 ? L : 5);
        p.cu_q[b + 1] = p.cu_q[b] + (int32_t)sq;
        p.cu_k[b + 1] = p.cu_k[b] + (int32_t)L;
    }
    p.T = p.cu_q[n]; p.Tk = p.cu_k[n];
    p.kpool = (float *)kv.k; p.vpool = (float *)kv.v; p.nb = kv.num_blocks; p.bs = kv.block_size; p.mb = kv.max_blocks;
    p.dtype = kv.dtype; p.kt = (void *)kv.k; p.vt = (void *)kv.v; p.ks = (float *)kv.k_scale; p.vs = (float *)kv.v_scale;
    CHECK(kv.dtype == M->dtype && (kv.dtype == ATTN_DTYPE_I8) == (kv.k_scale && kv.v_scale), "describe: dtype / scales");
    p.q = NEWF(p.T * Hq * p.D);
    tu_fill(r, p.q, p.T * Hq * p.D, 1.0f);
    p.kc = NEWF(p.Tk * p.Hkv * p.D);
    p.vc = NEWF(p.Tk * p.Hkv * p.D);
    const int64_t row = p.Hkv * p.D;
    for (int64_t b = 0; b < n; b++) {
        memcpy(p.kc + p.cu_k[b] * row, M->k[ids[b]], sizeof(float) * (size_t)(M->len[ids[b]] * row));
        memcpy(p.vc + p.cu_k[b] * row, M->v[ids[b]], sizeof(float) * (size_t)(M->len[ids[b]] * row));
    }
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = 1;
    o.align = ATTN_ALIGN_BOTTOM_RIGHT;
    const int64_t no = p.T * Hq * p.D;
    float *o1 = NEWF(no), *oc = NEWF(no);
    s = run_paged(&p, &o, 2, o1, NULL);
    CHECK(s == ATTN_OK, "schedule %lld: paged over the cache: %s", (long long)sched, attn_last_error());
    s = run_contig(&p, &o, oc, NULL);
    CHECK(s == ATTN_OK, "schedule %lld: contiguous: %s", (long long)sched, attn_last_error());
    const double e = err1(o1, oc, no);
    if (e > g_worst_fwd) g_worst_fwd = e;
    CHECK(e <= 1e-6, "schedule %lld: paged over the cache vs contiguous %.3g", (long long)sched, e);
    /* and the float64 reference of the causal forward over each sequence's tokens */
    attn_sdpa_dims d = {n, p.T, p.Tk, Hq, p.Hkv, p.D, p.D};
    attn_sdpa_opts o64 = o;
    o64.cu_seqlens_q = p.cu_q;
    o64.cu_seqlens_k = p.cu_k;
    double *q64 = xcalloc((size_t)(p.T * Hq * p.D), sizeof(double)), *k64 = xcalloc((size_t)(p.Tk * row), sizeof(double));
    double *v64 = xcalloc((size_t)(p.Tk * row), sizeof(double)), *r64 = xcalloc((size_t)no, sizeof(double));
    to64(p.q, q64, p.T * Hq * p.D);
    to64(p.kc, k64, p.Tk * row);
    to64(p.vc, v64, p.Tk * row);
    CHECK(attn_ref_sdpa_fwd(&d, q64, k64, v64, r64, NULL, &o64) == ATTN_OK, "reference: %s", attn_last_error());
    const double er = err1_64(o1, r64, no);
    if (er > g_worst_ref) g_worst_ref = er;
    CHECK(er <= 1e-5, "schedule %lld: paged over the cache vs float64 reference %.3g", (long long)sched, er);
    free(q64); free(k64); free(v64); free(r64);
    free(o1); free(oc);
    p.kpool = p.vpool = NULL; /* the cache's */
    p.kt = p.vt = NULL; p.ks = p.vs = NULL;
    pbatch_free(&p);
}

typedef struct sched_stats { int64_t ops, ok, capacity, errors, forks, cow; } sched_stats;

/* One random operation; returns 0 if the cache disagrees with the model. */
static int model_step(tu_rng *r, attn_kvpaged *c, model *M, float *kb, float *vb, sched_stats *st) {
    const int op = (int)tu_int(r, 0, 9);
    int id = (int)tu_int(r, 0, MAX_IDS - 1);
    if (op != 0 && tu_int(r, 0, 9) < 8) /* mostly a live id (errors are the rarer case) */
        for (int k = 0; k < MAX_IDS && !M->live[id]; k++) id = (id + 1) % MAX_IDS;
    const int64_t row = M->Hkv * M->D;
    attn_status s, want;
    st->ops++;
    if (op == 0) { /* add */
        want = M->live[id] ? ATTN_ERR_STATE : model_nlive(M) >= M->S ? ATTN_ERR_CAPACITY : ATTN_OK;
        s = attn_kvpaged_add(c, id);
        if (s == ATTN_OK) { M->live[id] = 1; M->len[id] = 0; }
    } else if (op == 1) { /* remove */
        want = M->live[id] ? ATTN_OK : ATTN_ERR_NOT_FOUND;
        s = attn_kvpaged_remove(c, id);
        if (s == ATTN_OK) M->live[id] = 0;
    } else if (op <= 3) { /* fork (prefix sharing) */
        int ch = (int)tu_int(r, 0, MAX_IDS - 1);
        if (tu_int(r, 0, 9) < 8)
            for (int k = 0; k < MAX_IDS && M->live[ch]; k++) ch = (ch + 1) % MAX_IDS;
        want = !M->live[id] ? ATTN_ERR_NOT_FOUND : M->live[ch] ? ATTN_ERR_STATE
             : model_nlive(M) >= M->S ? ATTN_ERR_CAPACITY : ATTN_OK;
        s = attn_kvpaged_fork(c, id, ch);
        if (s == ATTN_OK) {
            M->live[ch] = 1; M->len[ch] = M->len[id];
            memcpy(M->k[ch], M->k[id], sizeof(float) * (size_t)(M->len[id] * row));
            memcpy(M->v[ch], M->v[id], sizeof(float) * (size_t)(M->len[id] * row));
            memcpy(M->blk[ch], M->blk[id], sizeof(int64_t) * (size_t)((M->maxlen + M->bs - 1) / M->bs));
            st->forks++;
        }
    } else if (op == 4) { /* truncate */
        const int64_t L = M->live[id] ? M->len[id] : 0, nl = tu_int(r, 0, L + 2);
        want = !M->live[id] ? ATTN_ERR_NOT_FOUND : nl > L ? ATTN_ERR_SHAPE : ATTN_OK;
        s = attn_kvpaged_truncate(c, id, nl);
        if (s == ATTN_OK) M->len[id] = nl;
    } else { /* append */
        const int64_t n = tu_int(r, 0, 3) ? tu_int(r, 1, 5) : tu_int(r, 1, 3 * M->bs);
        tu_fill(r, kb, n * row, 1.0f);
        tu_fill(r, vb, n * row, 1.0f);
        want = !M->live[id] ? ATTN_ERR_NOT_FOUND
             : (M->len[id] + n > M->maxlen || model_need(M, id, n) > M->nb - model_used(M)) ? ATTN_ERR_CAPACITY : ATTN_OK;
        if (want == ATTN_OK && M->len[id] % M->bs && model_shared(M, id, M->blk[id][M->len[id] / M->bs])) st->cow++;
        s = attn_kvpaged_append(c, id, n, kb, vb, row);
        if (s == ATTN_OK) model_append(M, id, n, kb, vb);
    }
    CHECK(s == want, "op %d id %d: status %d, expected %d (%s)", op, id, (int)s, (int)want, attn_last_error());
    st->ok += s == ATTN_OK;
    st->capacity += s == ATTN_ERR_CAPACITY;
    st->errors += s != ATTN_OK;
    return cache_matches(c, M, kb, vb); /* also: an error changed nothing */
}

static void test_model(void) {
    tu_rng r = {777};
    const int64_t nsched = sc_count(1200);
    sched_stats st = {0};
    for (int64_t sc = 0; sc < nsched; sc++) {
        model M;
        memset(&M, 0, sizeof M);
        M.bs = tu_int(&r, 0, 1) ? 16 : 32;
        M.nb = tu_int(&r, 1, 16);
        M.S = tu_int(&r, 2, 6);
        M.maxlen = tu_int(&r, 1, 6 * M.bs);
        M.Hkv = tu_int(&r, 1, 2);
        M.D = tu_int(&r, 0, 1) ? 4 : 8;
        M.dtype = KV_TYPES[sc % 4];
        const int64_t Hq = M.Hkv * tu_int(&r, 1, 3);
        attn_kvpaged_config cfg;
        attn_kvpaged_config_init(&cfg);
        cfg.num_blocks = M.nb; cfg.block_size = M.bs; cfg.max_seqs = M.S; cfg.max_seq_len = M.maxlen; cfg.num_kv_heads = M.Hkv; cfg.head_dim = M.D;
        cfg.dtype = M.dtype;
        attn_kvpaged *c = NULL;
        attn_status s = attn_kvpaged_create(&c, &cfg);
        CHECK(s == ATTN_OK, "create: %s", attn_last_error());
        if (s) continue;
        const int64_t row = M.Hkv * M.D, cap = (M.maxlen + 3 * M.bs) * row;
        for (int i = 0; i < MAX_IDS; i++) {
            M.k[i] = NEWF(M.maxlen * row);
            M.v[i] = NEWF(M.maxlen * row);
            M.blk[i] = xcalloc((size_t)((M.maxlen + M.bs - 1) / M.bs), sizeof(int64_t));
        }
        float *kb = NEWF(cap), *vb = NEWF(cap);
        const int nops = (int)tu_int(&r, 10, 40);
        int good = 1;
        for (int k = 0; k < nops && good; k++) {
            good = model_step(&r, c, &M, kb, vb, &st);
            CHECK(good, "schedule %lld, op %d: the cache differs from the reference model", (long long)sc, k);
            if (k % 8 == 7) model_attend(&r, c, &M, Hq, sc);
        }
        model_attend(&r, c, &M, Hq, sc);
        for (int i = 0; i < MAX_IDS; i++) { free(M.k[i]); free(M.v[i]); free(M.blk[i]); }
        free(kb); free(vb);
        attn_kvpaged_free(c);
    }
    printf("paged cache: %lld schedules, %lld ops (%lld ok, %lld forks, %lld copy-on-write appends, %lld capacity "
           "errors, %lld other errors)\n", (long long)nsched, (long long)st.ops, (long long)st.ok, (long long)st.forks,
           (long long)st.cow, (long long)st.capacity, (long long)(st.errors - st.capacity));
    CHECK(st.cow > 0 && st.capacity > 0 && st.forks > 0, "schedules must exercise copy-on-write, forks and capacity");
}

/* ─── 3. the layer: continuous batching ──────────────────────────────────── */


static attn_mha_config layer_config(tu_rng *r) {
    static const int64_t heads[][3] = {{4, 4, 8}, {4, 2, 8}, {4, 1, 8}, {8, 2, 16}, {6, 2, 4}, {3, 3, 12}};
    attn_mha_config c;
    attn_mha_config_init(&c);
    const int h = (int)tu_int(r, 0, 5);
    c.num_heads = heads[h][0]; c.num_kv_heads = heads[h][1]; c.head_dim = heads[h][2];
    c.embed_dim = tu_int(r, 0, 1) ? c.num_heads * c.head_dim : 8 * tu_int(r, 2, 5);
    c.causal = 1;
    c.bias_q = (int)tu_int(r, 0, 1); c.bias_k = (int)tu_int(r, 0, 1); c.bias_v = (int)tu_int(r, 0, 1);
    c.bias_o = (int)tu_int(r, 0, 1);
    const int rk = (int)tu_int(r, 0, 2);
    c.rope = rk == 0 ? ATTN_ROPE_NONE : rk == 1 ? ATTN_ROPE_NEOX : ATTN_ROPE_GPTJ;
    c.qk_norm = tu_int(r, 0, 1) == 0;
    if (tu_int(r, 0, 3) == 0) c.window_left = tu_int(r, 0, 12);
    if (tu_int(r, 0, 4) == 0) c.softcap = 4.0f;
    return c;
}

#define LMAX 64 /* tokens per sequence in the layer test */

typedef struct lseq {
    int64_t id, len, target;
    float *x;            /* (LMAX, E) tokens so far */
    int64_t chunks[LMAX]; /* sizes of the steps that brought them (a fork replays them) */
    int nchunks;
    attn_kvcache *cache; /* the same sequence in a contiguous cache (batch 1) */
} lseq;

/* Starts sequence `id` (fresh, or a fork of `parent` with its tokens). */
static void lseq_start(attn_mha *m, attn_kvpaged *c, lseq *s, int64_t id, const lseq *parent, tu_rng *r, int64_t E) {
    const attn_mha_config *rc = attn_mha_get_config(m);
    memset(s, 0, sizeof *s);
    s->id = id;
    s->x = NEWF(LMAX * E);
    CHECK(attn_kvcache_create_typed(&s->cache, 1, LMAX, rc->num_kv_heads, rc->head_dim, attn_kvpaged_get_config(c)->dtype) ==
          ATTN_OK, "contiguous cache: %s", attn_last_error());
    if (!parent) {
        CHECK(attn_kvpaged_add(c, id) == ATTN_OK, "add: %s", attn_last_error());
    } else {
        CHECK(attn_kvpaged_fork(c, parent->id, id) == ATTN_OK, "fork: %s", attn_last_error());
        s->len = parent->len;
        memcpy(s->x, parent->x, sizeof(float) * (size_t)(parent->len * E));
        memcpy(s->chunks, parent->chunks, sizeof s->chunks);
        s->nchunks = parent->nchunks;
        float *y = NEWF(s->len * E + 1);
        for (int i = 0, t = 0; i < s->nchunks; t += (int)s->chunks[i++]) /* the parent's steps, replayed */
            CHECK(attn_mha_forward_cached(m, s->cache, s->x + t * E, 1, s->chunks[i], y) == ATTN_OK, "replay: %s",
                  attn_last_error());
        free(y);
    }
    s->target = s->len + tu_int(r, 1, LMAX - s->len < 30 ? LMAX - s->len : 30);
}

static void lseq_end(attn_kvpaged *c, lseq *s) {
    CHECK(attn_kvpaged_remove(c, s->id) == ATTN_OK, "remove: %s", attn_last_error());
    attn_kvcache_free(s->cache);
    free(s->x);
}

/* One batched step over the active sequences; checks every output row. */
static void layer_step(attn_mha *m, attn_kvpaged *c, lseq *act, int nact, tu_rng *r, int64_t E, int bitwise) {
    int64_t ids[8];
    int32_t cu[9] = {0};
    for (int i = 0; i < nact; i++) {
        const int64_t left = act[i].target - act[i].len;
        int64_t sq = act[i].len == 0 || tu_int(r, 0, 4) == 0 ? tu_int(r, 1, 9) : 1; /* prefill chunk or decode */
        if (sq > left) sq = left;
        ids[i] = act[i].id;
        cu[i + 1] = cu[i] + (int32_t)sq;
    }
    const int64_t T = cu[nact];
    float *x = NEWF(T * E), *y = NEWF(T * E), *yc = NEWF(T * E), *yf = NEWF(LMAX * E);
    tu_fill(r, x, T * E, 1.0f);
    attn_status s = attn_mha_forward_paged(m, c, ids, nact, cu, x, y);
    CHECK(s == ATTN_OK, "forward_paged: %s", attn_last_error());
    for (int i = 0; i < nact && s == ATTN_OK; i++) {
        lseq *q = &act[i];
        const int64_t sq = cu[i + 1] - cu[i];
        memcpy(q->x + q->len * E, x + cu[i] * E, sizeof(float) * (size_t)(sq * E));
        CHECK(attn_mha_forward_cached(m, q->cache, x + cu[i] * E, 1, sq, yc + cu[i] * E) == ATTN_OK, "cached: %s",
              attn_last_error());
        attn_mha_input in;
        attn_mha_input_init(&in);
        in.batch = 1; in.seq_q = q->len + sq; in.x = q->x;
        CHECK(attn_mha_forward(m, &in, yf) == ATTN_OK, "full forward: %s", attn_last_error());
        const double ef = tu_rel_err(y + cu[i] * E, yf + q->len * E, sq * E);
        const attn_dtype dt = attn_kvpaged_get_config(c)->dtype;
        const double tol = dt == ATTN_DTYPE_F32 ? 1e-5 : dt == ATTN_DTYPE_F16 ? 2e-3 : dt == ATTN_DTYPE_BF16 ? 1e-2 : 2e-2; /* the type's rounding */
        if (dt == ATTN_DTYPE_F32 && ef > g_worst_layer_f) g_worst_layer_f = ef;
        if (dt != ATTN_DTYPE_F32 && ef > g_worst_layer_typed[dt == ATTN_DTYPE_BF16 ? 0 : dt == ATTN_DTYPE_F16 ? 1 : 2])
            g_worst_layer_typed[dt == ATTN_DTYPE_BF16 ? 0 : dt == ATTN_DTYPE_F16 ? 1 : 2] = ef;
        CHECK(ef <= tol, "seq %lld at %lld + %lld (%s cache): paged vs full forward %.3g", (long long)q->id, (long long)q->len,
              (long long)sq, attn__kv_dtype_name(dt), ef);
        q->len += sq;
        q->chunks[q->nchunks++] = sq;
        CHECK(attn_kvpaged_len(c, q->id) == q->len, "len %lld != %lld", (long long)attn_kvpaged_len(c, q->id),
              (long long)q->len);
    }
    if (s == ATTN_OK && bitwise) { /* every step so far had the contiguous run's GEMM shapes */
        CHECK(memcmp(y, yc, sizeof(float) * (size_t)(T * E)) == 0, "single-sequence steps: paged != contiguous cache");
        g_single_steps++;
    } else if (s == ATTN_OK) { /* T-row projection GEMMs round differently from per-sequence ones */
        const double ec = tu_rel_err(y, yc, T * E);
        const attn_dtype dt = attn_kvpaged_get_config(c)->dtype;
        /* typed caches: K/V an ulp apart may round to neighbouring bf16 / f16 / int8 values: one step of the type */
        const double tol = dt == ATTN_DTYPE_F32 ? 1e-6 : dt == ATTN_DTYPE_BF16 ? 0x1p-8 : dt == ATTN_DTYPE_F16 ? 0x1p-11 : 1.0 / 127;
        if (dt == ATTN_DTYPE_F32 && ec > g_worst_layer_c) g_worst_layer_c = ec;
        CHECK(ec <= tol, "batched step (%s cache): paged vs contiguous cache %.3g", attn__kv_dtype_name(dt), ec);
    }
    free(x); free(y); free(yc); free(yf);
}

static void test_layer(void) {
    tu_rng r = {4242};
    const int64_t nconf = sc_count(16);
    int64_t nseqs = 0, nsteps = 0, nforks = 0;
    for (int64_t k = 0; k < nconf; k++) {
        attn_mha_config cfg = layer_config(&r);
        attn_mha *m = NULL;
        if (attn_mha_create(&m, &cfg) != ATTN_OK) { CHECK(0, "create: %s", attn_last_error()); continue; }
        mha_randomize_params(m, &r, 0.3, 1.0);
        const attn_mha_config *rc = attn_mha_get_config(m);
        const int64_t E = rc->embed_dim;
        const int bitwise = (int)(k % 2); /* odd configurations: one sequence per step */
        attn_kvpaged_config pc;
        attn_kvpaged_config_init(&pc);
        pc.num_blocks = 48; pc.block_size = 16; pc.max_seqs = 8; pc.max_seq_len = LMAX; pc.num_kv_heads = rc->num_kv_heads; pc.head_dim = rc->head_dim;
        pc.dtype = KV_TYPES[(k / 2) % 4]; /* every type in both modes */
        attn_kvpaged *c = NULL;
        if (attn_kvpaged_create(&c, &pc) != ATTN_OK) { CHECK(0, "create: %s", attn_last_error()); attn_mha_free(m); continue; }
        lseq act[8];
        int nact = 0;
        int64_t started = 0, next_id = 100;
        while (started < 10 || nact > 0) {
            while (nact < 4 && started < 10) { /* new sequences join the running batch */
                const lseq *parent = nact > 0 && tu_int(&r, 0, 2) == 0 ? &act[tu_int(&r, 0, nact - 1)] : NULL;
                if (parent && parent->len >= LMAX - 1) parent = NULL;
                lseq_start(m, c, &act[nact], next_id++, parent, &r, E);
                nforks += parent != NULL;
                nact++;
                started++;
            }
            if (bitwise) { /* one sequence per step, round robin */
                const int i = (int)tu_int(&r, 0, nact - 1);
                layer_step(m, c, &act[i], 1, &r, E, 1);
            } else {
                layer_step(m, c, act, nact, &r, E, 0);
            }
            nsteps++;
            for (int i = 0; i < nact;) { /* finished sequences leave */
                if (act[i].len >= act[i].target) {
                    lseq_end(c, &act[i]);
                    act[i] = act[--nact];
                    nseqs++;
                } else {
                    i++;
                }
            }
        }
        CHECK(attn_kvpaged_free_blocks(c) == pc.num_blocks, "blocks leaked: %lld free of %lld",
              (long long)attn_kvpaged_free_blocks(c), (long long)pc.num_blocks);
        attn_kvpaged_free(c);
        attn_mha_free(m);
    }
    printf("paged layer: %lld sequences (%lld forks) in %lld batched steps (%lld of them one sequence per step, bitwise = "
           "contiguous cache) over %lld configurations (f32 / bf16 / f16 / int8 caches); worst rel vs contiguous cache %.3g, "
           "vs full forward %.3g (f32), %.3g / %.3g / %.3g (bf16 / f16 / int8)\n", (long long)nseqs,
           (long long)nforks, (long long)nsteps, (long long)g_single_steps, (long long)nconf, g_worst_layer_c,
           g_worst_layer_f, g_worst_layer_typed[0], g_worst_layer_typed[1], g_worst_layer_typed[2]);
}

/* ─── 4. bad input ───────────────────────────────────────────────────────── */

static int all_equal(const float *p, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&p[i], &v, sizeof v)) return 0;
    return 1;
}

static void test_bad_kernel(void) {
    tu_rng r = {5};
    pbatch p;
    do { pbatch_make(&p, &r, 0); if (p.B >= 2 && p.lens[0] > 0 && p.lens[1] > 0 && p.T > 0) break; pbatch_free(&p); } while (1);
    attn_sdpa_dims d = {p.B, p.T, 0, p.Hq, p.Hkv, p.D, p.Dv};
    const int64_t no = p.T * p.Hq * p.Dv;
    float *o = NEWF(no), *lse = NEWF(p.Hq * p.T);
    attn_view qv = attn_view_bshd(p.q, p.T, p.Hq, p.D), ov = attn_view_bshd(o, p.T, p.Hq, p.Dv);
#define EXPECT_BAD(want, call, what)                                                                            \
    do {                                                                                                        \
        for (int64_t i_ = 0; i_ < no; i_++) o[i_] = 7.0f;                                                       \
        attn_status s_ = (call);                                                                                \
        CHECK(s_ == (want), "%s: status %d, expected %d (%s)", what, (int)s_, (int)(want), attn_last_error()); \
        CHECK(all_equal(o, no, 7.0f), "%s: o was written", what);                                               \
        CHECK(strlen(attn_last_error()) > 0, "%s: no message", what);                                           \
    } while (0)
    attn_sdpa_opts o0;
    attn_sdpa_opts_init(&o0);
    o0.causal = 1;
    o0.align = ATTN_ALIGN_BOTTOM_RIGHT;
    o0.cu_seqlens_q = p.cu_q;
    attn_paged_kv kv = pbatch_kv(&p);
    CHECK(attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, NULL, 0) == ATTN_OK, "valid call: %s", attn_last_error());
    o0.decode_fast = 2;
    EXPECT_BAD(ATTN_ERR_OPTION, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, NULL, 0), "decode_fast = 2");
    o0.decode_fast = 0;
    int32_t save = p.tables[0];
    p.tables[0] = (int32_t)p.nb;
    EXPECT_BAD(ATTN_ERR_SHAPE, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, NULL, 0), "block id = num_blocks");
    p.tables[0] = -1;
    EXPECT_BAD(ATTN_ERR_SHAPE, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, NULL, 0), "block id -1");
    p.tables[0] = save;
    save = p.lens[1];
    p.lens[1] = (int32_t)(p.mb * p.bs + 1);
    EXPECT_BAD(ATTN_ERR_SHAPE, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, NULL, 0), "sequence longer than its blocks");
    p.lens[1] = -1;
    EXPECT_BAD(ATTN_ERR_SHAPE, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, NULL, 0), "negative seq_len");
    p.lens[1] = save;
    p.cu_q[0] = 1;
    EXPECT_BAD(ATTN_ERR_SHAPE, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, NULL, 0), "cu_seqlens_q[0] != 0");
    p.cu_q[0] = 0;
    attn_sdpa_dims d2 = d;
    d2.seq_q = p.T + 1;
    EXPECT_BAD(ATTN_ERR_SHAPE, attn_sdpa_paged_fwd(&d2, qv, &kv, ov, lse, &o0, NULL, 0), "cu_seqlens_q[B] != T");
    d2 = d; d2.heads_q = p.Hkv * 2 + 1;
    EXPECT_BAD(ATTN_ERR_SHAPE, attn_sdpa_paged_fwd(&d2, qv, &kv, ov, lse, &o0, NULL, 0), "Hq % Hkv != 0");
    attn_sdpa_opts o1 = o0;
    int32_t kl[8] = {0};
    o1.key_lens = kl;
    EXPECT_BAD(ATTN_ERR_UNSUPPORTED, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o1, NULL, 0), "key_lens");
    o1 = o0; o1.dropout_p = 0.1f;
    EXPECT_BAD(ATTN_ERR_UNSUPPORTED, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o1, NULL, 0), "dropout");
    o1 = o0; o1.cu_seqlens_q = NULL;
    EXPECT_BAD(ATTN_ERR_NULL, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o1, NULL, 0), "no cu_seqlens_q");
    o1 = o0; o1.struct_size = 0;
    EXPECT_BAD(ATTN_ERR_OPTION, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o1, NULL, 0), "opts.struct_size 0");
    o1 = o0; o1.causal = 2;
    EXPECT_BAD(ATTN_ERR_OPTION, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o1, NULL, 0), "causal = 2");
    o1 = o0; o1.softcap = -1.0f;
    EXPECT_BAD(ATTN_ERR_OPTION, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o1, NULL, 0), "softcap < 0");
    attn_paged_kv kv2 = kv;
    kv2.dtype = ATTN_DTYPE_F64; /* not a pool type */
    EXPECT_BAD(ATTN_ERR_DTYPE, attn_sdpa_paged_fwd(&d, qv, &kv2, ov, lse, &o0, NULL, 0), "f64 pool");
    kv2.dtype = (attn_dtype)99;
    EXPECT_BAD(ATTN_ERR_DTYPE, attn_sdpa_paged_fwd(&d, qv, &kv2, ov, lse, &o0, NULL, 0), "unknown pool type");
    kv2.dtype = ATTN_DTYPE_I8; /* int8 without its scales */
    EXPECT_BAD(ATTN_ERR_NULL, attn_sdpa_paged_fwd(&d, qv, &kv2, ov, lse, &o0, NULL, 0), "int8 pool without scales");
    kv2.k_scale = p.kpool; kv2.v_scale = (const float *)o; /* a scale pool overlapping the output */
    EXPECT_BAD(ATTN_ERR_ALIAS, attn_sdpa_paged_fwd(&d, qv, &kv2, ov, lse, &o0, NULL, 0), "int8 scales overlap o");
    kv2 = kv; kv2.block_tables = NULL;
    EXPECT_BAD(ATTN_ERR_NULL, attn_sdpa_paged_fwd(&d, qv, &kv2, ov, lse, &o0, NULL, 0), "no block tables");
    EXPECT_BAD(ATTN_ERR_NULL, attn_sdpa_paged_fwd(&d, qv, NULL, ov, lse, &o0, NULL, 0), "kv NULL");
    attn_view ov2 = attn_view_bshd(p.kpool, p.T, p.Hq, p.Dv);
    CHECK(attn_sdpa_paged_fwd(&d, qv, &kv, ov2, NULL, &o0, NULL, 0) == ATTN_ERR_ALIAS, "o over the pool: %s",
          attn_last_error());
    size_t ws = attn_sdpa_paged_fwd_workspace_size(&d, &kv, &o0);
    CHECK(ws > 0, "workspace size");
    unsigned char *buf = attn__malloc(ws + 64);
    EXPECT_BAD(ATTN_ERR_WORKSPACE, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, buf + 4, ws), "misaligned workspace");
    EXPECT_BAD(ATTN_ERR_WORKSPACE, attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, buf, 64), "small workspace");
    CHECK(attn_sdpa_paged_fwd(&d, qv, &kv, ov, lse, &o0, buf, ws) == ATTN_OK, "with workspace: %s", attn_last_error());
    attn__free(buf);
#undef EXPECT_BAD
    free(o); free(lse);
    pbatch_free(&p);
}

/* Snapshot of every id's contents (len, then K and V), to prove an error changed nothing. */
static int64_t snapshot(const attn_kvpaged *c, float *buf, int64_t cap) {
    int64_t n = 0;
    const attn_kvpaged_config *g = attn_kvpaged_get_config(c);
    const int64_t row = g->num_kv_heads * g->head_dim;
    for (int64_t id = 0; id < 16; id++) {
        int64_t L = attn_kvpaged_len(c, id);
        buf[n++] = (float)L;
        if (L <= 0 || n + 2 * L * row > cap) continue;
        attn_kvpaged_read(c, id, 0, L, buf + n, buf + n + L * row);
        n += 2 * L * row;
    }
    buf[n++] = (float)attn_kvpaged_free_blocks(c);
    return n;
}

static void test_bad_cache(void) {
    attn_kvpaged_config g;
    attn_kvpaged_config_init(&g);
    g.num_blocks = 4; g.block_size = 16; g.max_seqs = 3; g.max_seq_len = 64; g.num_kv_heads = 2; g.head_dim = 4;
    attn_kvpaged *c = NULL;
    attn_kvpaged_config b = g;
    b.block_size = 8;
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_SHAPE && !c, "block_size 8");
    b = g; b.block_size = 256;
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_SHAPE && !c, "block_size 256");
    b = g; b.dtype = ATTN_DTYPE_F64;
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_DTYPE && !c, "f64 pool");
    b = g; b.dtype = ATTN_DTYPE_U8;
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_DTYPE && !c, "u8 pool");
    b = g; b.dtype = (attn_dtype)-1;
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_DTYPE && !c, "unknown pool type");
    b = g; b.num_blocks = 0;
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_SHAPE && !c, "no blocks");
    b = g; b.struct_size = 0; /* zeroed by hand, not initialised */
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_CONFIG && !c, "struct_size 0");
    b = g; b.struct_size = (uint32_t)sizeof b + 8; /* a newer header than this library */
    CHECK(attn_kvpaged_create(&c, &b) == ATTN_ERR_CONFIG && !c, "struct_size too large");
    CHECK(attn_kvpaged_create(NULL, &g) == ATTN_ERR_NULL, "out NULL");
    CHECK(attn_kvpaged_create(&c, NULL) == ATTN_ERR_NULL, "cfg NULL");
    CHECK(attn_kvpaged_create(&c, &g) == ATTN_OK, "create: %s", attn_last_error());
    if (!c) return;
    const int64_t row = 8;
    float k[64 * 8], v[64 * 8];
    tu_rng r = {9};
    tu_fill(&r, k, 64 * row, 1.0f);
    tu_fill(&r, v, 64 * row, 1.0f);
    CHECK(attn_kvpaged_add(c, 1) == ATTN_OK && attn_kvpaged_append(c, 1, 20, k, v, row) == ATTN_OK, "setup");
    CHECK(attn_kvpaged_fork(c, 1, 2) == ATTN_OK, "fork");
    enum { SNAP = 4096 };
    float *s0 = NEWF(SNAP), *s1 = NEWF(SNAP);
    const int64_t n0 = snapshot(c, s0, SNAP);
#define UNCHANGED(what)                                                                                      \
    do {                                                                                                     \
        int64_t n1_ = snapshot(c, s1, SNAP);                                                                 \
        CHECK(n1_ == n0 && memcmp(s0, s1, sizeof(float) * (size_t)n0) == 0, "%s changed the cache", what);   \
    } while (0)
    CHECK(attn_kvpaged_add(c, 1) == ATTN_ERR_STATE, "duplicate id"); UNCHANGED("duplicate add");
    CHECK(attn_kvpaged_add(c, -3) == ATTN_ERR_SHAPE, "negative id"); UNCHANGED("negative id");
    CHECK(attn_kvpaged_fork(c, 7, 3) == ATTN_ERR_NOT_FOUND, "fork of a missing sequence"); UNCHANGED("fork missing");
    CHECK(attn_kvpaged_fork(c, 1, 2) == ATTN_ERR_STATE, "fork onto a live id"); UNCHANGED("fork onto live");
    CHECK(attn_kvpaged_remove(c, 5) == ATTN_ERR_NOT_FOUND, "remove missing"); UNCHANGED("remove missing");
    CHECK(attn_kvpaged_truncate(c, 1, 21) == ATTN_ERR_SHAPE, "truncate past the end"); UNCHANGED("truncate");
    CHECK(attn_kvpaged_truncate(c, 9, 0) == ATTN_ERR_NOT_FOUND, "truncate missing"); UNCHANGED("truncate missing");
    CHECK(attn_kvpaged_append(c, 1, 2, NULL, v, row) == ATTN_ERR_NULL, "append NULL"); UNCHANGED("append NULL");
    CHECK(attn_kvpaged_append(c, 1, -1, k, v, row) == ATTN_ERR_SHAPE, "append n < 0"); UNCHANGED("append n < 0");
    CHECK(attn_kvpaged_append(c, 1, 2, k, v, row - 1) == ATTN_ERR_STRIDE, "append ld"); UNCHANGED("append ld");
    CHECK(attn_kvpaged_append(c, 4, 2, k, v, row) == ATTN_ERR_NOT_FOUND, "append missing"); UNCHANGED("append missing");
    CHECK(attn_kvpaged_append(c, 1, 45, k, v, row) == ATTN_ERR_CAPACITY, "append past max_seq_len"); UNCHANGED("max len");
    /* 4 blocks: seq 1 and 2 share 2; 2 free. 45 tokens on 2 would need a copy + 3 new */
    CHECK(attn_kvpaged_append(c, 2, 40, k, v, row) == ATTN_ERR_CAPACITY, "pool exhausted: %s", attn_last_error());
    UNCHANGED("pool exhausted");
    CHECK(attn_kvpaged_read(c, 1, 10, 11, k, v) == ATTN_ERR_SHAPE, "read past the end"); UNCHANGED("read");
    int64_t ids[2] = {1, 6};
    int32_t lens[2], tbl[2 * 4];
    attn_paged_kv kv;
    CHECK(attn_kvpaged_describe(c, ids, 2, lens, tbl, &kv) == ATTN_ERR_NOT_FOUND, "describe missing");
    CHECK(attn_kvpaged_add(c, 3) == ATTN_OK && attn_kvpaged_add(c, 4) == ATTN_ERR_CAPACITY, "slots exhausted");
    CHECK(attn_kvpaged_fork(c, 1, 5) == ATTN_ERR_CAPACITY, "fork with no slot");
    CHECK(attn_kvpaged_remove(c, 3) == ATTN_OK, "remove");
    UNCHANGED("slots exhausted");
    /* a write into the shared block copies it: 2 changes, 1 does not */
    CHECK(attn_kvpaged_append(c, 2, 1, k + 30 * row, v + 30 * row, row) == ATTN_OK, "append after fork");
    CHECK(attn_kvpaged_free_blocks(c) == 1, "copy-on-write took one block (%lld free)", (long long)attn_kvpaged_free_blocks(c));
    float kr[21 * 8], vr[21 * 8];
    CHECK(attn_kvpaged_read(c, 1, 0, 20, kr, vr) == ATTN_OK && memcmp(kr, k, sizeof(float) * 20 * 8) == 0, "parent intact");
    CHECK(attn_kvpaged_read(c, 2, 20, 1, kr, vr) == ATTN_OK && memcmp(kr, k + 30 * row, sizeof(float) * 8) == 0, "child");
#undef UNCHANGED
    attn_kvpaged_free(c);
    attn_kvpaged_free(NULL);
    free(s0); free(s1);
}

static void test_bad_layer(void) {
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    cfg.embed_dim = 16; cfg.num_heads = 4; cfg.num_kv_heads = 2; cfg.causal = 1; cfg.rope = ATTN_ROPE_NEOX;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { CHECK(0, "create"); return; }
    attn_mha_init_weights(m, ATTN_INIT_XAVIER_UNIFORM, 1);
    attn_kvpaged_config g;
    attn_kvpaged_config_init(&g);
    g.num_blocks = 3; g.block_size = 16; g.max_seqs = 4; g.max_seq_len = 64; g.num_kv_heads = 2; g.head_dim = 4;
    attn_kvpaged *c = NULL;
    CHECK(attn_kvpaged_create(&c, &g) == ATTN_OK, "create");
    float x[40 * 16], y[40 * 16];
    tu_rng r = {3};
    tu_fill(&r, x, 40 * 16, 1.0f);
    attn_kvpaged_add(c, 0);
    attn_kvpaged_add(c, 1);
    int64_t ids[2] = {0, 1};
    int32_t cu[3] = {0, 5, 8};
    CHECK(attn_mha_forward_paged(m, c, ids, 2, cu, x, y) == ATTN_OK, "valid: %s", attn_last_error());
    enum { SNAP = 4096 };
    float *s0 = NEWF(SNAP), *s1 = NEWF(SNAP);
    const int64_t n0 = snapshot(c, s0, SNAP);
    for (int i = 0; i < 40 * 16; i++) y[i] = 7.0f;
#define LAYER_BAD(want, call, what)                                                                                    \
    do {                                                                                                               \
        attn_status s_ = (call);                                                                                       \
        CHECK(s_ == (want), "%s: status %d, expected %d (%s)", what, (int)s_, (int)(want), attn_last_error());        \
        int64_t n1_ = snapshot(c, s1, SNAP);                                                                           \
        CHECK(n1_ == n0 && memcmp(s0, s1, sizeof(float) * (size_t)n0) == 0, "%s changed the cache", what);            \
        CHECK(all_equal(y, 40 * 16, 7.0f), "%s wrote y", what);                                                        \
    } while (0)
    int64_t dup[2] = {1, 1}, missing[2] = {0, 9};
    LAYER_BAD(ATTN_ERR_STATE, attn_mha_forward_paged(m, c, dup, 2, cu, x, y), "duplicate ids");
    LAYER_BAD(ATTN_ERR_NOT_FOUND, attn_mha_forward_paged(m, c, missing, 2, cu, x, y), "missing id");
    int32_t cu_big[3] = {0, 5, 40}; /* 5 + 32 more tokens need 3 new blocks; 1 free */
    LAYER_BAD(ATTN_ERR_CAPACITY, attn_mha_forward_paged(m, c, ids, 2, cu_big, x, y), "pool exhausted");
    int32_t cu_bad[3] = {0, 5, 3};
    LAYER_BAD(ATTN_ERR_SHAPE, attn_mha_forward_paged(m, c, ids, 2, cu_bad, x, y), "decreasing cu_seqlens_q");
    LAYER_BAD(ATTN_ERR_NULL, attn_mha_forward_paged(m, c, ids, 2, NULL, x, y), "cu NULL");
    LAYER_BAD(ATTN_ERR_NULL, attn_mha_forward_paged(m, c, ids, 2, cu, NULL, y), "x NULL");
    attn_kvpaged_config g2 = g;
    g2.head_dim = 8;
    attn_kvpaged *c2 = NULL;
    attn_kvpaged_create(&c2, &g2);
    attn_kvpaged_add(c2, 0);
    CHECK(attn_mha_forward_paged(m, c2, ids, 1, cu, x, y) == ATTN_ERR_SHAPE, "head_dim mismatch");
    attn_kvpaged_free(c2);
#undef LAYER_BAD
    free(s0); free(s1);
    attn_kvpaged_free(c);
    attn_mha_free(m);
}

int main(void) {
    test_bad_cache();
    test_bad_kernel();
    test_bad_layer();
    test_kernel();
    test_fast();
    test_model();
    test_layer();
    return test_summary("kvcache_paged");
}
