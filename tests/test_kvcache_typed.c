/* SPDX-License-Identifier: MIT */
/* test_kvcache_typed.c — reduced-precision KV caches (BF16, F16, INT8).
 *
 * 1. Storage: rows appended to a typed paged cache read back (attn_kvpaged_read)
 *    as half.h's round-to-nearest-even bf16 / f16 values, bitwise; int8 rows
 *    within the bound attn.h states, |x^ - x| <= a / 254 + a 2^-22 (a = max |x|
 *    of the row), over rows of magnitudes 1e-30 .. 1e30, with the scale
 *    a / 127 and the extreme element exact; zero rows read back as zeros,
 *    rows with an Inf / NaN as NaN.
 * 2. The typed decode micro-kernels of every ISA the CPU has (kv_typed.h),
 *    kdot and vacc, against a float64 computation on the widened values:
 *    |d| <= 1e-5 * sum |terms| (fp32 accumulation of <= 256 products), for
 *    D / Dv in 1..256 (tails), M = 1..8, 1..64 keys; columns M..7 of S are 0;
 *    a key with P = 0 whose V row is NaN / Inf leaves that row of O untouched.
 * 3. A contiguous typed cache through the paged kernel (one block per
 *    sequence, capacity 2000: long contexts split into key partitions, the
 *    path attn_mha_forward_cached takes) vs the float64 reference fed the
 *    values the cache holds (attn_kvcache_read's view of them, here through
 *    the same rows): |d| / max(1, |ref|) <= 1e-5; bit-identical at 1, 2, 3
 *    threads. Also 3 decode steps of the Llama-3-8B shape over > 24 MiB of
 *    K+V (the large-call paths: streaming pass, next-tile prefetches).
 * 4. The layer: attn_mha_forward_cached with a typed contiguous cache,
 *    prefill then decode, equals the fp32 full forward within the type's
 *    rounding (bf16 1e-2, f16 2e-3, int8 2e-2 rel), and attn_kvcache_read returns the rows the typed cache holds
 *    (the rounded values of the fp32 cache's rows, bitwise).
 * 5. Bad input: unknown / non-KV dtypes refused (both caches), capacity past
 *    2^30 for a typed cache, attn_kvcache_read out of range / NULL. */
#include "attn.h"
#include "io/half.h"
#include "kernels/kv_typed.h"
#include "kernels/ref/sdpa_ref.h"
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

static const attn_dtype TYPED[3] = {ATTN_DTYPE_BF16, ATTN_DTYPE_F16, ATTN_DTYPE_I8};

/* ─── 1. storage ─────────────────────────────────────────────────────────── */

static void test_storage(void) {
    tu_rng r = {91};
    enum { HKV = 2, D = 37, N = 40 };
    double worst_i8 = 0; /* |x^ - x| / (a / 254) */
    for (int ti = 0; ti < 3; ti++) {
        attn_kvpaged_config g;
        attn_kvpaged_config_init(&g);
        g.num_blocks = 8; g.block_size = 16; g.max_seqs = 1; g.max_seq_len = 128; g.num_kv_heads = HKV; g.head_dim = D;
        g.dtype = TYPED[ti];
        attn_kvpaged *c = NULL;
        CHECK(attn_kvpaged_create(&c, &g) == ATTN_OK, "create %s: %s", attn__kv_dtype_name(g.dtype), attn_last_error());
        if (!c) continue;
        attn_kvpaged_add(c, 0);
        float *k = NEWF(N * HKV * D), *v = NEWF(N * HKV * D), *kb = NEWF(N * HKV * D), *vb = NEWF(N * HKV * D);
        for (int64_t row = 0; row < N * HKV; row++) {
            const double mag = pow(10.0, (double)tu_int(&r, -30, 30)) * (0.5 + tu_uniform(&r));
            for (int64_t d = 0; d < D; d++) {
                k[row * D + d] = (float)(mag * tu_normal(&r));
                v[row * D + d] = (float)(mag * tu_normal(&r));
            }
        }
        for (int64_t d = 0; d < D; d++) k[3 * D + d] = 0.0f; /* a zero row */
        k[5 * D + 7] = INFINITY; v[6 * D + 1] = NAN;         /* rows with an Inf / a NaN */
        CHECK(attn_kvpaged_append(c, 0, N, k, v, HKV * D) == ATTN_OK, "append: %s", attn_last_error());
        CHECK(attn_kvpaged_read(c, 0, 0, N, kb, vb) == ATTN_OK, "read: %s", attn_last_error());
        int exact = 1, bound = 1, special = 1;
        for (int64_t row = 0; row < N * HKV; row++) {
            const float *x = k + row * D, *xb = kb + row * D;
            for (int pass = 0; pass < 2; pass++, x = v + row * D, xb = vb + row * D) {
                if (g.dtype != ATTN_DTYPE_I8) {
                    for (int64_t d = 0; d < D; d++) {
                        const float want = g.dtype == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(attn__f32_to_bf16(x[d]))
                                                                      : attn__f16_to_f32(attn__f32_to_f16(x[d]));
                        exact &= memcmp(&want, &xb[d], sizeof want) == 0 || (isnan(want) && isnan(xb[d]));
                    }
                    continue;
                }
                double a = 0;
                int finite = 1;
                for (int64_t d = 0; d < D; d++) { a = fmax(a, fabs((double)x[d])); finite &= isfinite(x[d]) != 0; }
                if (!finite) {
                    for (int64_t d = 0; d < D; d++) special &= isnan(xb[d]) != 0;
                    continue;
                }
                if (a == 0) {
                    for (int64_t d = 0; d < D; d++) special &= xb[d] == 0.0f;
                    continue;
                }
                int amax_exact = 0;
                for (int64_t d = 0; d < D; d++) {
                    const double e = fabs((double)xb[d] - x[d]);
                    bound &= e <= a / 254 + a * 0x1p-22;
                    worst_i8 = fmax(worst_i8, e / (a / 254));
                    amax_exact |= fabs((double)x[d]) == a && fabs(fabs((double)xb[d]) - a) <= a * 0x1p-22;
                }
                bound &= amax_exact;
            }
        }
        CHECK(exact, "%s: read-back is not the round-to-nearest-even value", attn__kv_dtype_name(g.dtype));
        CHECK(bound, "int8: an element outside a / 254 + a 2^-22 (or the row's extreme not kept)");
        CHECK(special, "%s: zero rows / non-finite rows", attn__kv_dtype_name(g.dtype));
        free(k); free(v); free(kb); free(vb);
        attn_kvpaged_free(c);
    }
    printf("typed storage: bf16 / f16 bitwise round-to-nearest-even; int8 worst |x^ - x| = %.4f x (a / 254)\n", worst_i8);
    CHECK(worst_i8 > 0.9 && worst_i8 <= 1.0 + 1e-4, "int8 worst error %.6f of a / 254: the bound is not approached or exceeded",
          worst_i8);
}

/* ─── 2. micro-kernels ───────────────────────────────────────────────────── */

static double widen(attn_dtype t, const void *p, int64_t i) {
    if (t == ATTN_DTYPE_BF16) return attn__bf16_to_f32(((const uint16_t *)p)[i]);
    if (t == ATTN_DTYPE_F16) return attn__f16_to_f32(((const uint16_t *)p)[i]);
    return (double)((const int8_t *)p)[i];
}

static void kernel_case(tu_rng *r, const attn__kv_kernels *kk, attn_dtype t, double *worst) {
    static const int64_t dims[] = {1, 7, 13, 16, 31, 64, 100, 128, 256};
    const int64_t D = dims[tu_int(r, 0, 8)], n = tu_int(r, 1, ATTN__KV_MAX_KEYS), M = tu_int(r, 1, 8);
    const int64_t Dp = (D + 15) / 16 * 16, es = (int64_t)attn__kv_elem_size(t);
    unsigned char *K = xcalloc((size_t)(n * D), (size_t)es), *V = xcalloc((size_t)(n * D), (size_t)es);
    float *ks = NEWF(n), *vs = NEWF(n), *Q = NEWF(8 * Dp), *S = NEWF(n * 8), *P = NEWF(n * 8);
    float *O = NEWF(8 * Dp), *O0 = NEWF(8 * Dp), *row = NEWF(D);
    for (int64_t j = 0; j < n; j++) {
        tu_fill(r, row, D, 1.0f);
        attn__kv_put_row(t, K + j * D * es, &ks[j], row, D);
        tu_fill(r, row, D, 1.0f);
        attn__kv_put_row(t, V + j * D * es, &vs[j], row, D);
    }
    for (int64_t m = 0; m < 8; m++)
        for (int64_t d = 0; d < D; d++) Q[m * Dp + d] = m < M ? (float)tu_normal(r) : 0.0f;
    for (int64_t i = 0; i < n * 8; i++) S[i] = 99.0f;
    kk->kdot(t, n, M, D, K, ks, Q, Dp, S, 8);
    int ok = 1, pad = 1;
    for (int64_t j = 0; j < n; j++) {
        const double sc = t == ATTN_DTYPE_I8 ? ks[j] : 1.0;
        for (int64_t m = 0; m < M; m++) {
            double ref = 0, mag = 0;
            for (int64_t d = 0; d < D; d++) {
                ref += Q[m * Dp + d] * widen(t, K + j * D * es, d) * sc;
                mag += fabs(Q[m * Dp + d] * widen(t, K + j * D * es, d) * sc);
            }
            const double e = fabs(S[j * 8 + m] - ref) / fmax(mag, 1e-30);
            *worst = fmax(*worst, e);
            ok &= e <= 1e-5;
        }
        for (int64_t m = M; m < 8; m++) pad &= S[j * 8 + m] == 0.0f;
    }
    CHECK(ok, "%s kdot %s: D %lld M %lld n %lld", kk->name, attn__kv_dtype_name(t), (long long)D, (long long)M, (long long)n);
    CHECK(pad, "%s kdot: columns M..7 not zeroed", kk->name);
    /* vacc: P with some zeros; the V rows of keys zero for every row may hold NaN / Inf (bf16 / f16) */
    for (int64_t j = 0; j < n; j++)
        for (int64_t m = 0; m < 8; m++) P[j * 8 + m] = tu_int(r, 0, 5) == 0 ? 0.0f : (float)tu_uniform(r);
    const int64_t bad_key = n > 1 ? tu_int(r, 0, n - 1) : -1;
    if (bad_key >= 0 && t != ATTN_DTYPE_I8) {
        for (int64_t m = 0; m < M; m++) P[bad_key * 8 + m] = 0.0f;
        for (int64_t d = 0; d < D; d++) ((uint16_t *)V)[bad_key * D + d] = d % 2 ? 0x7fc0 : 0x7c00; /* NaN / +Inf (f16) */
    } else if (bad_key >= 0) {
        for (int64_t m = 0; m < M; m++) P[bad_key * 8 + m] = 0.0f;
        vs[bad_key] = NAN;
    }
    for (int64_t i = 0; i < 8 * Dp; i++) O0[i] = O[i] = (float)tu_normal(r);
    kk->vacc(t, n, M, D, P, 8, V, vs, O, Dp);
    ok = 1;
    int untouched = 1;
    for (int64_t m = 0; m < 8; m++)
        for (int64_t e = 0; e < Dp; e++) {
            if (m >= M || e >= D) { untouched &= memcmp(&O[m * Dp + e], &O0[m * Dp + e], sizeof(float)) == 0; continue; }
            double ref = O0[m * Dp + e], mag = fabs(O0[m * Dp + e]);
            for (int64_t j = 0; j < n; j++) {
                if (P[j * 8 + m] == 0.0f) continue;
                const double term = (double)P[j * 8 + m] * (t == ATTN_DTYPE_I8 ? vs[j] : 1.0) * widen(t, V + j * D * es, e);
                ref += term;
                mag += fabs(term);
            }
            const double err = fabs(O[m * Dp + e] - ref) / fmax(mag, 1e-30);
            *worst = fmax(*worst, err);
            ok &= err <= 1e-5; /* NaN fails */
        }
    CHECK(ok, "%s vacc %s: D %lld M %lld n %lld (masked NaN key %lld)", kk->name, attn__kv_dtype_name(t), (long long)D,
          (long long)M, (long long)n, (long long)bad_key);
    CHECK(untouched, "%s vacc: wrote rows >= M or columns >= Dv", kk->name);
    free(K); free(V); free(ks); free(vs); free(Q); free(S); free(P); free(O); free(O0); free(row);
}

static void test_kernels(void) {
    tu_rng r = {2024};
    double worst = 0;
    int nisa = 0;
    for (int isa = 0; isa < ATTN_ISA_COUNT; isa++) {
        if ((attn_isa)isa > attn_isa_detected()) break;
        const attn__kv_kernels *kk = attn__kv_kernels_for((attn_isa)isa);
        nisa++;
        for (int ti = 0; ti < 3; ti++)
            for (int64_t i = 0; i < sc_count(150); i++) kernel_case(&r, kk, TYPED[ti], &worst);
    }
    printf("typed kernels: %d ISA(s), worst |d| / sum|terms| %.3g\n", nisa, worst);
}

/* ─── 3. contiguous typed cache through the paged kernel ─────────────────── */

static double err1_64(const float *a, const double *b, int64_t n) {
    double md = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isinf(a[i]) || isinf(b[i])) { if ((double)a[i] != b[i]) return INFINITY; continue; }
        const double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs(b[i]));
        if (!(d <= md)) md = d;
    }
    return md;
}

/* big: a decode step of the Llama-3-8B shape (Hq 32, Hkv 8, D 128) over 3 x 4200..4608
 * keys: > 24 MiB of K+V even as int8, so the decode tiles take the paths of large calls
 * (the K/V streaming pass, the next tile's prefetches between kdot calls of a few keys). */
static void contig_case(tu_rng *r, int64_t idx, int big, double *worst) {
    const attn_dtype t = TYPED[idx % 3];
    const int64_t B = big ? 3 : tu_int(r, 1, 3), CAP = big ? 4608 : 2000, Hkv = big ? 8 : tu_int(r, 1, 2);
    const int64_t G = big ? 4 : tu_int(r, 1, 4), Hq = Hkv * G;
    const int64_t D = big ? 128 : tu_int(r, 0, 1) ? 64 : 24, es = (int64_t)attn__kv_elem_size(t);
    const int64_t rows = B * Hkv * CAP;
    unsigned char *kt = xcalloc((size_t)(rows * D), (size_t)es), *vt = xcalloc((size_t)(rows * D), (size_t)es);
    float *ks = NEWF(rows), *vs = NEWF(rows), *x = NEWF(D);
    int32_t lens[3], blocks[3] = {0, 1, 2}, cu[4] = {0};
    for (int64_t b = 0; b < B; b++) {
        lens[b] = (int32_t)tu_int(r, big ? 4200 : 1, CAP);
        cu[b + 1] = cu[b] + (int32_t)(big || tu_int(r, 0, 2) ? 1 : tu_int(r, 2, 5)); /* decode, or a short chunk */
    }
    const int64_t T = cu[B];
    /* K/V of every slot (the pool is (B, Hkv, CAP, D)); kc / vc (Tk, Hkv, D) the values the cache holds */
    int64_t Tk = 0;
    int32_t cuk[4] = {0};
    for (int64_t b = 0; b < B; b++) cuk[b + 1] = cuk[b] + lens[b], Tk += lens[b];
    double *k64 = xcalloc((size_t)(Tk * Hkv * D), sizeof(double)), *v64 = xcalloc((size_t)(Tk * Hkv * D), sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hkv; h++)
            for (int64_t s = 0; s < CAP; s++) {
                const int64_t slot = (b * Hkv + h) * CAP + s;
                for (int pass = 0; pass < 2; pass++) {
                    unsigned char *dst = (pass ? vt : kt) + slot * D * es;
                    float *sc = pass ? &vs[slot] : &ks[slot];
                    tu_fill(r, x, D, 1.0f);
                    attn__kv_put_row(t, dst, sc, x, D);
                    if (s < lens[b])
                        for (int64_t d = 0; d < D; d++)
                            (pass ? v64 : k64)[((cuk[b] + s) * Hkv + h) * D + d] = widen(t, dst, d) * (t == ATTN_DTYPE_I8 ? *sc : 1.0);
                }
            }
    float *q = NEWF(T * Hq * D), *o1 = NEWF(T * Hq * D), *o2 = NEWF(T * Hq * D), *o3 = NEWF(T * Hq * D);
    tu_fill(r, q, T * Hq * D, 1.0f);
    const int i8 = t == ATTN_DTYPE_I8;
    attn_paged_kv kv = {t, kt, vt, B, CAP, blocks, 1, lens, i8 ? ks : NULL, i8 ? vs : NULL};
    attn_sdpa_dims dims = {B, T, 0, Hq, Hkv, D, D};
    attn_sdpa_opts o;
    attn_sdpa_opts_init(&o);
    o.causal = 1;
    o.align = ATTN_ALIGN_BOTTOM_RIGHT;
    if (tu_int(r, 0, 3) == 0) o.window_left = tu_int(r, 10, 900);
    if (tu_int(r, 0, 3) == 0) o.softcap = 5.0f;
    o.cu_seqlens_q = cu;
    float *outs[3] = {o1, o2, o3};
    for (int th = 1; th <= 3; th++) {
        o.num_threads = th;
        CHECK(attn_sdpa_paged_fwd(&dims, attn_view_bshd(q, T, Hq, D), &kv, attn_view_bshd(outs[th - 1], T, Hq, D), NULL, &o,
                                  NULL, 0) == ATTN_OK, "contiguous %s: %s", attn__kv_dtype_name(t), attn_last_error());
    }
    const size_t no = (size_t)(T * Hq * D) * sizeof(float);
    CHECK(memcmp(o1, o2, no) == 0 && memcmp(o1, o3, no) == 0, "contiguous %s: results differ between 1, 2, 3 threads",
          attn__kv_dtype_name(t));
    attn_sdpa_dims d64 = {B, T, Tk, Hq, Hkv, D, D};
    attn_sdpa_opts o64 = o;
    o64.cu_seqlens_k = cuk;
    double *q64 = xcalloc((size_t)(T * Hq * D), sizeof(double)), *r64 = xcalloc((size_t)(T * Hq * D), sizeof(double));
    for (int64_t i = 0; i < T * Hq * D; i++) q64[i] = q[i];
    CHECK(attn_ref_sdpa_fwd(&d64, q64, k64, v64, r64, NULL, &o64) == ATTN_OK, "reference: %s", attn_last_error());
    const double e = err1_64(o1, r64, T * Hq * D);
    *worst = fmax(*worst, e);
    CHECK(e <= 1e-5, "contiguous %s case %lld (B %lld lens %d.. H %lld/%lld D %lld): vs float64 %.3g", attn__kv_dtype_name(t),
          (long long)idx, (long long)B, lens[0], (long long)Hq, (long long)Hkv, (long long)D, e);
    free(kt); free(vt); free(ks); free(vs); free(x); free(k64); free(v64); free(q); free(o1); free(o2); free(o3);
    free(q64); free(r64);
}

static void test_contig(void) {
    tu_rng r = {77};
    double worst = 0;
    const int64_t n = sc_count(36);
    for (int64_t i = 0; i < n; i++) contig_case(&r, i, 0, &worst);
    for (int64_t i = 0; i < 3; i++) contig_case(&r, i, 1, &worst);
    printf("typed contiguous caches through the paged kernel: %lld cases (capacity 2000) + 3 large decode calls "
           "(Llama-3-8B shape, > 24 MiB), worst vs float64 %.3g\n", (long long)n, worst);
}

/* ─── 4. the layer ───────────────────────────────────────────────────────── */

/* Prefill P tokens, then decode one at a time: y (B, S, E) of the cached forward. */
static void run_cached(attn_mha *m, attn_kvcache *c, const float *x, int64_t B, int64_t S, int64_t P, int64_t E, float *y,
                       float *xs, float *ys) {
    for (int64_t t0 = 0; t0 < S;) {
        const int64_t n = t0 == 0 ? P : 1;
        for (int64_t b = 0; b < B; b++) memcpy(xs + b * n * E, x + (b * S + t0) * E, sizeof(float) * (size_t)(n * E));
        CHECK(attn_mha_forward_cached(m, c, xs, B, n, ys) == ATTN_OK, "cached %s: %s", attn__kv_dtype_name(attn_kvcache_dtype(c)),
              attn_last_error());
        for (int64_t b = 0; b < B; b++) memcpy(y + (b * S + t0) * E, ys + b * n * E, sizeof(float) * (size_t)(n * E));
        t0 += n;
    }
}

static void test_layer(void) {
    tu_rng r = {11};
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    cfg.embed_dim = 64; cfg.num_heads = 8; cfg.num_kv_heads = 2; cfg.head_dim = 16; cfg.causal = 1;
    cfg.rope = ATTN_ROPE_NEOX;
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { CHECK(0, "create: %s", attn_last_error()); return; }
    mha_randomize_params(m, &r, 0.3, 1.0);
    enum { B = 2, S = 48, P = 20, E = 64, HKV = 2, HD = 16 };
    float *x = NEWF(B * S * E), *yf = NEWF(B * S * E), *y = NEWF(B * S * E), *xs = NEWF(B * S * E), *ys = NEWF(B * S * E);
    tu_fill(&r, x, B * S * E, 1.0f);
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B; in.seq_q = S; in.x = x;
    CHECK(attn_mha_forward(m, &in, yf) == ATTN_OK, "full forward: %s", attn_last_error());
    attn_kvcache *c32 = NULL; /* the fp32 cache: its rows, rounded, are what a typed cache must hold */
    CHECK(attn_kvcache_create(&c32, B, S, HKV, HD) == ATTN_OK && attn_kvcache_dtype(c32) == ATTN_DTYPE_F32, "f32 cache");
    run_cached(m, c32, x, B, S, P, E, y, xs, ys);
    CHECK(tu_rel_err(y, yf, B * S * E) <= 1e-5, "f32 cache vs full forward %.3g", tu_rel_err(y, yf, B * S * E));
    float *k32 = NEWF(S * HKV * HD), *v32 = NEWF(S * HKV * HD), *kq = NEWF(S * HKV * HD), *vq = NEWF(S * HKV * HD);
    for (int ti = 0; ti < 3; ti++) {
        const attn_dtype t = TYPED[ti];
        attn_kvcache *c = NULL;
        CHECK(attn_kvcache_create_typed(&c, B, S, HKV, HD, t) == ATTN_OK && attn_kvcache_dtype(c) == t, "create %s: %s",
              attn__kv_dtype_name(t), attn_last_error());
        if (!c) continue;
        run_cached(m, c, x, B, S, P, E, y, xs, ys);
        const double e = tu_rel_err(y, yf, B * S * E);
        const double tol = t == ATTN_DTYPE_F16 ? 2e-3 : t == ATTN_DTYPE_BF16 ? 1e-2 : 2e-2;
        printf("layer, %s cache: prefill %d + %d decode steps vs fp32 full forward: rel %.3g (bound %.0e)\n",
               attn__kv_dtype_name(t), (int)P, (int)(S - P), e, tol);
        CHECK(e <= tol, "%s cache vs full forward %.3g", attn__kv_dtype_name(t), e);
        int same = 1;
        for (int64_t b = 0; b < B; b++) {
            CHECK(attn_kvcache_read(c32, b, 0, S, k32, v32) == ATTN_OK && attn_kvcache_read(c, b, 0, S, kq, vq) == ATTN_OK,
                  "read: %s", attn_last_error());
            for (int64_t i = 0; i < S * HKV; i++) {
                float bk[HD], bv[HD], sc = 1.0f;
                unsigned char tmp[HD * 4];
                attn__kv_put_row(t, tmp, &sc, k32 + i * HD, HD);
                attn__kv_get_row(t, tmp, sc, bk, HD);
                attn__kv_put_row(t, tmp, &sc, v32 + i * HD, HD);
                attn__kv_get_row(t, tmp, sc, bv, HD);
                same &= memcmp(bk, kq + i * HD, sizeof bk) == 0 && memcmp(bv, vq + i * HD, sizeof bv) == 0;
            }
        }
        CHECK(same, "%s cache: attn_kvcache_read differs from the rounded fp32 rows", attn__kv_dtype_name(t));
        attn_kvcache_free(c);
    }
    free(k32); free(v32); free(kq); free(vq);
    attn_kvcache_free(c32);
    free(x); free(yf); free(y); free(xs); free(ys);
    attn_mha_free(m);
}

/* ─── 5. bad input ───────────────────────────────────────────────────────── */

static void test_bad(void) {
    attn_kvcache *c = (attn_kvcache *)&c; /* must be reset to NULL on failure */
    const attn_dtype bad[] = {ATTN_DTYPE_F64, ATTN_DTYPE_I32, ATTN_DTYPE_U8, ATTN_DTYPE_OTHER, (attn_dtype)99, (attn_dtype)-3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = (attn_kvcache *)&c;
        CHECK(attn_kvcache_create_typed(&c, 1, 8, 1, 4, bad[i]) == ATTN_ERR_DTYPE && c == NULL,
              "dtype %d accepted", (int)bad[i]);
    }
    CHECK(attn_kvcache_create_typed(&c, 1, ((int64_t)1 << 30) + 1, 1, 4, ATTN_DTYPE_BF16) == ATTN_ERR_SHAPE && !c,
          "typed capacity past 2^30");
    CHECK(attn_kvcache_create_typed(NULL, 1, 8, 1, 4, ATTN_DTYPE_I8) == ATTN_ERR_NULL, "out NULL");
    CHECK(attn_kvcache_create_typed(&c, 2, 8, 1, 4, ATTN_DTYPE_I8) == ATTN_OK, "create int8");
    float k[8 * 4], v[8 * 4];
    CHECK(attn_kvcache_read(c, 0, 0, 0, NULL, NULL) == ATTN_OK, "empty read");
    CHECK_FAILS(attn_kvcache_read(c, 0, 0, 1, k, v), ATTN_ERR_SHAPE, "not within");
    CHECK_FAILS(attn_kvcache_read(c, 2, 0, 0, k, v), ATTN_ERR_SHAPE, "b = 2");
    CHECK_FAILS(attn_kvcache_read(c, -1, 0, 0, k, v), ATTN_ERR_SHAPE, "b = -1");
    CHECK_FAILS(attn_kvcache_read(NULL, 0, 0, 0, k, v), ATTN_ERR_NULL, "c is NULL");
    CHECK(attn_kvcache_dtype(c) == ATTN_DTYPE_I8, "dtype getter");
    attn_kvcache_free(c);
}

int main(void) {
    test_bad();
    test_storage();
    test_kernels();
    test_contig();
    test_layer();
    return test_summary("kvcache_typed");
}
