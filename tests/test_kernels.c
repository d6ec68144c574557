/* SPDX-License-Identifier: MIT */
/* test_kernels — entries of the sdpa micro-kernel table that the decode path
 * relies on, checked directly (not only through the drivers) for every ISA
 * table this machine can run:
 *   - gemm_abt: few query rows (n 1..12: one or two chunks of 8) against m key rows, every k tail
 *     (k 1..260), A rows allocated exactly (a read past row m-1's k elements
 *     is a heap overflow under ASan), C with the tight round8(n) row stride
 *     of the decode tiles; compared with a double reference; padding columns
 *     n..round8(n) must be 0 and nothing is written past C;
 *   - rows_finite: tiles with and without one Inf / -Inf / NaN at a random
 *     place (also in the scalar tail), huge finite values, exact-size source. */
#include "testutil.h"
#include "kernels/dispatch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_gemm_abt(const attn__sdpa_kernels *T, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 400 && !bad; it++) {
        const int64_t m = tu_int(r, 1, 70), n = tu_int(r, 1, 12), k = tu_int(r, 1, 260);
        const int64_t lda = k + tu_int(r, 0, 3), ldb = ((k + 15) & ~(int64_t)15) + 16 * tu_int(r, 0, 1);
        const int64_t n8 = (n + 7) & ~(int64_t)7, ldc = n8;
        float *A = malloc(sizeof(float) * (size_t)((m - 1) * lda + k)); /* (m, lda), last row exactly k */
        float *B = calloc((size_t)(n * ldb), sizeof(float));           /* (n, ldb), zero beyond k */
        float *C = malloc(sizeof(float) * (size_t)(m * ldc + 8));       /* (m, ldc) + 8 sentinels */
        for (int64_t i = 0; i < (m - 1) * lda + k; i++) A[i] = (float)tu_normal(r);
        for (int64_t j = 0; j < n; j++)
            for (int64_t p = 0; p < k; p++) B[j * ldb + p] = (float)tu_normal(r);
        for (int64_t i = 0; i < m * ldc + 8; i++) C[i] = 777.0f;
        T->gemm_abt(m, n, k, A, lda, B, ldb, C, ldc);
        for (int64_t i = 0; i < 8 && !bad; i++)
            if (C[m * ldc + i] != 777.0f) {
                CHECK(0, "%s gemm_abt m=%lld n=%lld k=%lld wrote past C", T->name, (long long)m, (long long)n, (long long)k);
                bad = 1;
            }
        for (int64_t i = 0; i < m && !bad; i++) {
            for (int64_t j = 0; j < n8 && !bad; j++) {
                double ref = 0.0, mag = 0.0;
                for (int64_t p = 0; j < n && p < k; p++) {
                    ref += (double)A[i * lda + p] * B[j * ldb + p];
                    mag += fabs((double)A[i * lda + p] * B[j * ldb + p]);
                }
                const float got = C[i * ldc + j];
                if (j >= n ? got != 0.0f : !(fabs(got - ref) <= 2e-6 * mag + 1e-30)) {
                    CHECK(0, "%s gemm_abt m=%lld n=%lld k=%lld C[%lld][%lld] = %g, want %g", T->name, (long long)m,
                          (long long)n, (long long)k, (long long)i, (long long)j, got, j >= n ? 0.0 : ref);
                    bad = 1;
                }
            }
        }
        free(A); free(B); free(C);
    }
    CHECK(!bad, "%s gemm_abt matches the double reference on 400 few-row tiles", T->name);
}

static void test_rows_finite(const attn__sdpa_kernels *T, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 600 && !bad; it++) {
        const int64_t nr = tu_int(r, 1, 70), n = tu_int(r, 1, 260), lds = n + tu_int(r, 0, 20);
        const int64_t len = (nr - 1) * lds + n;
        float *src = malloc(sizeof(float) * (size_t)len); /* exactly nr rows of n */
        for (int64_t i = 0; i < len; i++) src[i] = (float)tu_normal(r);
        src[tu_int(r, 0, len - 1)] = 3.0e38f;               /* huge but finite */
        const int kind = (int)tu_int(r, 0, 3);             /* 0: clean, 1: NaN, 2: +Inf, 3: -Inf */
        if (kind) {
            const int64_t rr = tu_int(r, 0, nr - 1), e = it % 5 == 0 ? n - 1 : tu_int(r, 0, n - 1);
            src[rr * lds + e] = kind == 1 ? NAN : kind == 2 ? INFINITY : -INFINITY;
        }
        /* a non-finite value in a row's padding (between n and lds) is not part of the tile */
        if (lds > n && nr > 1) src[lds - 1] = NAN;
        const int got = T->rows_finite(nr, n, src, lds);
        if (got != !kind) {
            CHECK(0, "%s rows_finite nr=%lld n=%lld lds=%lld kind %d: got %d", T->name, (long long)nr, (long long)n,
                  (long long)lds, kind, got);
            bad = 1;
        }
        free(src);
    }
    CHECK(!bad, "%s rows_finite finds every Inf / NaN and nothing else on 600 tiles", T->name);
}

/* row_sums against a double loop: exact (the products of two floats are
 * exact in double, and the order is c ascending), E = 0 entries skipped even
 * where dP is NaN / Inf, accumulation onto the given sums. */
static void test_row_sums(const attn__sdpa_kernels *T, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 200 && !bad; it++) {
        const int64_t nc = tu_int(r, 1, 70), mp = 16 * tu_int(r, 1, 4);
        float *E = calloc((size_t)(nc * mp), sizeof(float)), *dP = calloc((size_t)(nc * mp), sizeof(float));
        double cs[64], ds[64], wc[64], wd[64];
        for (int64_t x = 0; x < nc * mp; x++) {
            const int masked = tu_uniform(r) < 0.2;
            E[x] = masked ? 0.0f : (float)tu_uniform(r);
            dP[x] = masked && tu_uniform(r) < 0.5 ? (tu_uniform(r) < 0.5 ? NAN : INFINITY) : (float)(10.0 * tu_normal(r));
        }
        for (int64_t m = 0; m < mp; m++) {
            cs[m] = wc[m] = tu_normal(r);
            ds[m] = wd[m] = tu_normal(r);
        }
        T->row_sums(nc, mp, E, dP, cs, ds, NULL);
        for (int64_t c = 0; c < nc; c++)
            for (int64_t m = 0; m < mp; m++)
                if (E[c * mp + m] != 0.0f) {
                    wc[m] += E[c * mp + m];
                    wd[m] += (double)E[c * mp + m] * dP[c * mp + m];
                }
        for (int64_t m = 0; m < mp && !bad; m++)
            if (cs[m] != wc[m] || ds[m] != wd[m]) {
                CHECK(0, "[%s] row_sums nc=%lld mp=%lld column %lld: (%.17g, %.17g), want (%.17g, %.17g)", T->name,
                      (long long)nc, (long long)mp, (long long)m, cs[m], ds[m], wc[m], wd[m]);
                bad = 1;
            }
        free(E);
        free(dP);
    }
    CHECK(!bad, "[%s] row_sums matches a double loop on 200 tiles", T->name);
    /* dP == NULL: the sums and the column maxima (NaN entries ignored by the max) */
    for (int it = 0; it < 100 && !bad; it++) {
        const int64_t nc = tu_int(r, 1, 70), mp = 16 * tu_int(r, 1, 4);
        float *E = calloc((size_t)(nc * mp), sizeof(float)), em[64], we[64];
        double cs[64], wc[64];
        for (int64_t x = 0; x < nc * mp; x++) E[x] = tu_uniform(r) < 0.2 ? 0.0f : (float)tu_uniform(r);
        for (int64_t m = 0; m < mp; m++) { cs[m] = wc[m] = 0.0; em[m] = we[m] = (float)(0.5 * tu_uniform(r)); }
        T->row_sums(nc, mp, E, NULL, cs, NULL, em);
        for (int64_t c = 0; c < nc; c++)
            for (int64_t m = 0; m < mp; m++) {
                wc[m] += E[c * mp + m];
                if (E[c * mp + m] > we[m]) we[m] = E[c * mp + m];
            }
        for (int64_t m = 0; m < mp && !bad; m++)
            if (cs[m] != wc[m] || em[m] != we[m]) {
                CHECK(0, "[%s] row_sums (no dP) column %lld: (%.17g, %g), want (%.17g, %g)", T->name, (long long)m,
                      cs[m], (double)em[m], wc[m], (double)we[m]);
                bad = 1;
            }
        free(E);
    }
    CHECK(!bad, "[%s] row_sums without dP: sums and maxima", T->name);
}

/* The table's block sizes within what the drivers' layouts assume (dispatch.h). */
static void test_blocks(const attn__sdpa_kernels *T) {
    const attn__sdpa_blocks *b = &T->blk;
    CHECK(b->mrows_fwd >= 1 && b->mrows_bwd >= 1 && b->paged_mrows >= 1, "[%s] mrows %d / %d / %d", T->name,
          b->mrows_fwd, b->mrows_bwd, b->paged_mrows);
    CHECK(b->bc >= 16 && b->bc % 16 == 0 && b->bc <= ATTN__SDPA_BC_MAX, "[%s] bc %d", T->name, b->bc);
    CHECK(b->paged_bc >= 16 && b->paged_bc % 16 == 0 && b->paged_bc <= ATTN__SDPA_BC_MAX, "[%s] paged_bc %d",
          T->name, b->paged_bc);
    CHECK(b->paged_part_min >= b->paged_bc && b->paged_part_min % b->paged_bc == 0 && b->paged_maxpart >= 1,
          "[%s] paged_part_min %d, paged_maxpart %d", T->name, b->paged_part_min, b->paged_maxpart);
    CHECK(b->bwd_tiles >= 1 && b->bwd_tiles <= ATTN__SDPA_BWD_TILES_MAX, "[%s] bwd_tiles %d", T->name, b->bwd_tiles);
    CHECK(b->fwd_tasks >= 1 && b->bwd_tasks >= 1 && b->paged_pf_keys >= 1 &&
              b->paged_pf_bytes >= 0,
          "[%s] fwd_tasks %d, bwd_tasks %d, paged_pf_keys %d", T->name, b->fwd_tasks, b->bwd_tasks, b->paged_pf_keys);
}

/* The exp of bwd_probs (scale 1, lse 0, lo 0: S = exp(S), the softmax's exp)
 * against exp in double on every 61st float of [-110, 88.3] (fewer under
 * ATTN_TEST_SCALE < 1): within 1 ulp
 * (attn.h "Numerics"; the AVX ones measure 0.98 at most over every float),
 * 0 below -104, exp(0) = 1, exp(-inf) = 0, NaN stays NaN. */
static void test_exp(const attn__sdpa_kernels *T) {
    enum { NC = 2048, MP = 16 };
    static float S[NC * MP], x[NC * MP];
    const float zero[MP] = {0};
    double worst = 0.0, wx = 0.0;
    const char *sc = getenv("ATTN_TEST_SCALE"); /* sanitizer runs: fewer floats */
    const uint32_t step = sc && atof(sc) > 0.0 && atof(sc) < 1.0 ? (uint32_t)(61.0 / atof(sc)) | 1u : 61u;
    uint32_t u = 0;
    int64_t n = 0;
    while (u < 0xFF800000u) {
        int k = 0;
        for (; k < NC * MP && u < 0xFF800000u; u += step) {
            float f;
            memcpy(&f, &u, 4);
            if (f <= 88.3f && f >= -110.0f) x[k++] = f;
        }
        for (int i = k; i < NC * MP; i++) x[i] = 0.0f;
        memcpy(S, x, sizeof S);
        T->bwd_probs(NC, MP, S, 1.0f, zero, zero);
        for (int i = 0; i < k; i++, n++) {
            const double ref = exp((double)x[i]);
            int e;
            frexp(ref, &e);
            const double ulp = ref < 1.17549435e-38 ? ldexp(1.0, -149) : ldexp(1.0, e - 24);
            const double err = x[i] < -104.0f ? (S[i] == 0.0f ? 0.0 : 1e30) : fabs((double)S[i] - ref) / ulp;
            if (!(err <= worst)) { worst = err; wx = x[i]; }
        }
    }
    CHECK(worst <= 1.0, "[%s] exp: %.4f ulp at x = %.9g (%lld floats)", T->name, worst, wx, (long long)n);
    float sp[MP] = {0.0f, -INFINITY, NAN, -104.5f, 88.0f};
    T->bwd_probs(1, MP, sp, 1.0f, zero, zero);
    CHECK(sp[0] == 1.0f && sp[1] == 0.0f && isnan(sp[2]) && sp[3] == 0.0f && isfinite(sp[4]),
          "[%s] exp specials: exp(0) %g, exp(-inf) %g, exp(NaN) %g, exp(-104.5) %g, exp(88) %g", T->name, sp[0],
          sp[1], sp[2], sp[3], sp[4]);
}

int main(void) {
    tu_rng r = {20261124};
    for (int isa = ATTN_ISA_GENERIC; isa <= (int)attn_isa_detected(); isa++) {
        const attn__sdpa_kernels *T = attn__sdpa_kernels_for((attn_isa)isa);
        test_blocks(T);
        test_exp(T);
        test_gemm_abt(T, &r);
        test_rows_finite(T, &r);
        test_row_sums(T, &r);
    }
    return test_summary("test_kernels");
}
