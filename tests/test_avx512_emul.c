/* SPDX-License-Identifier: MIT */
/* test_avx512_emul — the AVX-512 sdpa micro-kernels, run on SIMDe's portable
 * emulation of AVX-512 (Debian libsimde-dev) and compared entry by entry with
 * the portable C kernels. Machines without AVX-512 (the CI and development
 * VMs among them) never run the native AVX-512 table, so this is what keeps
 * its logic checked there; on AVX-512 machines the sdpa parity / stress /
 * determinism tests also run it natively.
 *
 * Cases: random shapes with every row / column tail of the register tiles
 * (m 1..70, n 16..144, k 1..130), strided operands, accumulate on/off;
 * softmax tiles (mp a multiple of 8) with -inf, fully masked columns, NaN,
 * nothing written past the tile; bwd probs with dead
 * rows; dS with exact zeros; row packing with Inf/NaN rows and tails. */
#include "testutil.h"

#if defined(__has_include)
#if __has_include(<simde/x86/avx512.h>)
#define HAVE_SIMDE 1
#endif
#endif

#ifdef HAVE_SIMDE
#define ATTN_SIMDE_AVX512 1
#include "../src/kernels/avx512/sdpa_f32_avx512.c"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *fbuf(int64_t n) { return calloc((size_t)n + 16, sizeof(float)); }

static void fill(tu_rng *r, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)tu_normal(r);
}

/* |got - want| <= tol * scale, NaN must match NaN, infinities must match */
static int close_to(float got, float want, double tol, double scale) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs((double)got - (double)want) <= tol * scale + 1e-30;
}

static void test_gemm(const attn__sdpa_kernels *E, const attn__sdpa_kernels *G, tu_rng *r) {
    static const int64_t ns[] = {16, 32, 48, 64, 80, 96, 128, 144};
    int bad = 0;
    for (int it = 0; it < 400; it++) {
        const int64_t m = tu_int(r, 1, 70), n = ns[tu_int(r, 0, 7)], k = tu_int(r, 1, 130);
        const int atb = it & 1, acc = atb ? 1 : (int)tu_int(r, 0, 1);
        const int64_t lda = (atb ? m : k) + tu_int(r, 0, 5), ldb = n + 16 * tu_int(r, 0, 1), ldc = n + 16 * tu_int(r, 0, 1);
        float *A = fbuf((atb ? k : m) * lda), *B = fbuf(k * ldb), *C0 = fbuf(m * ldc), *C1 = fbuf(m * ldc);
        fill(r, A, (atb ? k : m) * lda);
        fill(r, B, k * ldb);
        fill(r, C0, m * ldc);
        memcpy(C1, C0, sizeof(float) * (size_t)(m * ldc));
        if (atb) {
            E->gemm_atb(m, n, k, A, lda, B, ldb, C0, ldc);
            G->gemm_atb(m, n, k, A, lda, B, ldb, C1, ldc);
        } else {
            E->gemm_ab(m, n, k, A, lda, B, ldb, C0, ldc, acc);
            G->gemm_ab(m, n, k, A, lda, B, ldb, C1, ldc, acc);
        }
        for (int64_t i = 0; i < m && !bad; i++)
            for (int64_t j = 0; j < ldc; j++) {
                double sc = sqrt((double)k) * 4.0 + 4.0; /* |sum| bound scale of N(0,1) products */
                if (j >= n && C0[i * ldc + j] != C1[i * ldc + j]) { /* outside n: untouched or same padding */
                    CHECK(0, "gemm_%s m=%lld n=%lld k=%lld: column %lld past n differs", atb ? "atb" : "ab", (long long)m,
                          (long long)n, (long long)k, (long long)j);
                    bad = 1;
                    break;
                }
                if (!close_to(C0[i * ldc + j], C1[i * ldc + j], 2e-6, sc)) {
                    CHECK(0, "gemm_%s m=%lld n=%lld k=%lld acc=%d: C[%lld][%lld] = %g, generic %g", atb ? "atb" : "ab",
                          (long long)m, (long long)n, (long long)k, acc, (long long)i, (long long)j, C0[i * ldc + j],
                          C1[i * ldc + j]);
                    bad = 1;
                    break;
                }
            }
        free(A); free(B); free(C0); free(C1);
    }
    CHECK(!bad, "gemm kernels agree with the generic ones on 400 shapes");
}

static void test_softmax(const attn__sdpa_kernels *E, const attn__sdpa_kernels *G, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 300 && !bad; it++) {
        /* mp % 16 == 8 too: the 8-column tiles of few-row (decode) blocks */
        const int64_t nc = tu_int(r, 1, 64), mp = 8 * tu_int(r, 1, 10);
        float *S0 = fbuf(nc * mp), *S1 = fbuf(nc * mp);
        float m0[96], m1[96], l0[96], l1[96], a0[96], a1[96];
        for (int64_t i = 0; i < nc * mp; i++) {
            double u = tu_uniform(r);
            S0[i] = u < 0.2 ? -INFINITY : (float)(3.0 * tu_normal(r));
        }
        for (int64_t m = 0; m < mp; m++) {
            int kind = (int)tu_int(r, 0, 3);
            if (kind == 0) for (int64_t c = 0; c < nc; c++) S0[c * mp + m] = -INFINITY; /* masked column */
            m0[m] = kind == 1 ? -INFINITY : (float)tu_normal(r);
            l0[m] = m0[m] == -INFINITY ? 0.0f : (float)(1.0 + tu_uniform(r));
            if (it % 50 == 7 && m == 3) S0[(nc - 1) * mp + m] = NAN;
        }
        memcpy(S1, S0, sizeof(float) * (size_t)(nc * mp));
        memcpy(m1, m0, sizeof m0); memcpy(l1, l0, sizeof l0);
        const float sc = it % 3 == 0 ? 1.0f : (float)(0.05 + tu_uniform(r)); /* the folded logit scale */
        /* sentinels past the tile and past the mp statistics: nothing is written there */
        for (int64_t i = 0; i < 16; i++) S0[nc * mp + i] = m0[mp + i] = l0[mp + i] = a0[mp + i] = 12345.0f;
        int c0 = E->softmax_tile(nc, mp, S0, sc, m0, l0, a0);
        for (int64_t i = 0; i < 16 && !bad; i++)
            if (S0[nc * mp + i] != 12345.0f || m0[mp + i] != 12345.0f || l0[mp + i] != 12345.0f || a0[mp + i] != 12345.0f) {
                CHECK(0, "softmax nc=%lld mp=%lld wrote past the tile (+%lld)", (long long)nc, (long long)mp, (long long)i);
                bad = 1;
            }
        int c1 = G->softmax_tile(nc, mp, S1, sc, m1, l1, a1);
        if (c0 != c1) { CHECK(0, "softmax nc=%lld mp=%lld: changed %d vs %d", (long long)nc, (long long)mp, c0, c1); bad = 1; }
        for (int64_t m = 0; m < mp && !bad; m++) {
            if (!close_to(m0[m], m1[m], 0, 0) || !close_to(a0[m], a1[m], 4e-7, 1) ||
                !close_to(l0[m], l1[m], 2e-6, fabs(l1[m]) + 1)) {
                CHECK(0, "softmax nc=%lld mp=%lld col %lld: m %g/%g alpha %g/%g l %g/%g", (long long)nc, (long long)mp,
                      (long long)m, m0[m], m1[m], a0[m], a1[m], l0[m], l1[m]);
                bad = 1;
            }
            for (int64_t c = 0; c < nc && !bad; c++)
                if (!close_to(S0[c * mp + m], S1[c * mp + m], 4e-7, 1)) {
                    CHECK(0, "softmax nc=%lld mp=%lld S[%lld][%lld] = %g, generic %g", (long long)nc, (long long)mp,
                          (long long)c, (long long)m, S0[c * mp + m], S1[c * mp + m]);
                    bad = 1;
                }
        }
        free(S0); free(S1);
    }
    CHECK(!bad, "softmax_tile agrees with the generic one on 300 tiles");
}

static void test_bwd_elem(const attn__sdpa_kernels *E, const attn__sdpa_kernels *G, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 200 && !bad; it++) {
        const int64_t nc = tu_int(r, 1, 64), mp = 16 * tu_int(r, 1, 4);
        float *S0 = fbuf(nc * mp), *S1 = fbuf(nc * mp), *D0 = fbuf(nc * mp), *D1 = fbuf(nc * mp);
        float lse[64], lo[64], di[64], dl[64];
        for (int64_t i = 0; i < nc * mp; i++) {
            S0[i] = tu_uniform(r) < 0.2 ? -INFINITY : (float)(2.0 * tu_normal(r));
            D0[i] = (float)tu_normal(r);
        }
        for (int64_t m = 0; m < mp; m++) {
            lse[m] = tu_uniform(r) < 0.2 ? -INFINITY : (float)(1.0 + tu_normal(r));
            di[m] = (float)tu_normal(r);
            lo[m] = tu_uniform(r) < 0.3 ? 0.0f : (float)(1e-6 * tu_normal(r)); /* the lse's low part */
            dl[m] = tu_uniform(r) < 0.3 ? 0.0f : (float)(1e-7 * tu_normal(r)); /* Di's low part */
        }
        memcpy(S1, S0, sizeof(float) * (size_t)(nc * mp));
        const float sc = it % 3 == 0 ? 1.0f : (float)(0.05 + tu_uniform(r));
        E->bwd_probs(nc, mp, S0, sc, lse, lo);
        G->bwd_probs(nc, mp, S1, sc, lse, lo);
        for (int64_t i = 0; i < nc * mp && !bad; i++)
            if (!close_to(S0[i], S1[i], 4e-7, fabs(S1[i]) + 1e-30) && !(fabs(S0[i] - S1[i]) <= 4e-7 * fabs(S1[i]))) {
                CHECK(0, "bwd_probs nc=%lld mp=%lld [%lld] = %g, generic %g", (long long)nc, (long long)mp, (long long)i,
                      S0[i], S1[i]);
                bad = 1;
            }
        /* dS from the same P (the generic one's), so zeros line up exactly */
        for (int64_t i = 0; i < nc * mp; i++) {
            if (tu_uniform(r) < 0.05) D0[i] = NAN; /* garbage where P == 0 must give exactly 0 */
        }
        memcpy(D1, D0, sizeof(float) * (size_t)(nc * mp));
        E->bwd_ds(nc, mp, S1, D0, di, dl, sc);
        G->bwd_ds(nc, mp, S1, D1, di, dl, sc);
        for (int64_t i = 0; i < nc * mp && !bad; i++) {
            const int zero_ok = S1[i] != 0.0f || D0[i] == 0.0f;
            if (!zero_ok || !close_to(D0[i], D1[i], 1e-6, fabs(D1[i]) + 1e-6)) {
                CHECK(0, "bwd_ds nc=%lld mp=%lld [%lld] = %g, generic %g (P %g)", (long long)nc, (long long)mp, (long long)i,
                      D0[i], D1[i], S1[i]);
                bad = 1;
            }
        }
        free(S0); free(S1); free(D0); free(D1);
    }
    CHECK(!bad, "bwd_probs / bwd_ds agree with the generic ones on 200 tiles");
}

static void test_pack(const attn__sdpa_kernels *E, const attn__sdpa_kernels *G, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 300 && !bad; it++) {
        const int64_t nr = tu_int(r, 1, 64), n = tu_int(r, 1, 140), lds = n + tu_int(r, 0, 9);
        const int64_t npad = (n + 15) / 16 * 16, ldd = npad + 16 * tu_int(r, 0, 1);
        const float scale = (float)tu_normal(r);
        /* the source is exactly nr rows long: a read past the last row's n
         * elements is a heap overflow under ASan */
        float *src = malloc(sizeof(float) * (size_t)((nr - 1) * lds + n));
        float *d0 = fbuf(nr * ldd), *d1 = fbuf(nr * ldd);
        int32_t b0[64], b1[64];
        for (int64_t i = 0; i < (nr - 1) * lds + n; i++) src[i] = (float)tu_normal(r);
        for (int64_t x = 0; x < 3; x++) {
            int64_t rr = tu_int(r, 0, nr - 1), e = tu_int(r, 0, n - 1);
            src[rr * lds + e] = x == 0 ? NAN : x == 1 ? INFINITY : -INFINITY;
        }
        int k0 = E->pack_rows(nr, n, src, lds, scale, d0, ldd, npad, b0);
        int k1 = G->pack_rows(nr, n, src, lds, scale, d1, ldd, npad, b1);
        if (k0 != k1 || memcmp(b0, b1, sizeof(int32_t) * (size_t)k0) != 0) {
            CHECK(0, "pack_rows nr=%lld n=%lld: %d bad rows, generic %d", (long long)nr, (long long)n, k0, k1);
            bad = 1;
        }
        for (int64_t rr = 0; rr < nr && !bad; rr++)
            if (memcmp(d0 + rr * ldd, d1 + rr * ldd, sizeof(float) * (size_t)npad) != 0) {
                CHECK(0, "pack_rows nr=%lld n=%lld: row %lld differs", (long long)nr, (long long)n, (long long)rr);
                bad = 1;
            }
        free(src); free(d0); free(d1);
    }
    CHECK(!bad, "pack_rows agrees with the generic one (bit-exact) on 300 blocks");
}

int main(void) {
    attn__sdpa_kernels emu, gen;
    attn__sdpa_kernels_generic(&gen);
    emu = gen;
    attn__sdpa_kernels_avx512_emul(&emu);
    CHECK(emu.gemm_ab != gen.gemm_ab && emu.pack_rows != gen.pack_rows, "the emulated table overrides the generic entries");
    tu_rng r = {20261123};
    test_gemm(&emu, &gen, &r);
    test_softmax(&emu, &gen, &r);
    test_bwd_elem(&emu, &gen, &r);
    test_pack(&emu, &gen, &r);
    return test_summary("test_avx512_emul");
}
#else
int main(void) {
    CHECK(0, "SIMDe headers (<simde/x86/avx512.h>, Debian package libsimde-dev) not found: "
             "scripts/deps.sh installs them");
    return test_summary("test_avx512_emul");
}
#endif
