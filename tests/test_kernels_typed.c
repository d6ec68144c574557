/* SPDX-License-Identifier: MIT */
/* test_kernels_typed.c — the element-type entries of every sdpa table this
 * CPU runs, against the portable C ones:
 *   - to_f32: all 65,536 bf16 and f16 patterns, bit for bit vs io/half.h
 *     (NaN for NaN: F16C quiets signalling NaNs);
 *   - from_f32: random floats of every magnitude, exact ties, subnormals, +-0,
 *     +-inf, NaN with payloads, bit for bit, with every length tail;
 *   - gemm_bf16 (where the ISA has one): random pair GEMMs (every row / column
 *     tail, strided A, accumulate on and off) vs attn__sdpa_gemm_bf16_ref
 *     within 2^-22 of the sum of |products| (the products are exact, only the
 *     fp32 summation order may differ);
 *   - pack_p_bf16 / pack_v_bf16: vs the portable packing bit for bit (normal
 *     values; the native bf16 conversion flushes subnormal inputs to zero,
 *     probabilities below 2^-126 only), V rows with Inf / NaN screened;
 *   - pack_qblock (fp32 and bf16 query blocks of the backward), split_ds_bf16
 *     (the bf16 backward's dS roundings): bit for bit;
 *   - the same gemm_bf16 / packing checks on the AVX512_BF16 kernels compiled
 *     on SIMDe's emulation (every machine, AVX512_BF16 or not). */
#include "testutil.h"
#include "kernels/dispatch.h"
#include "core/core.h"
#include "io/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The AVX512_BF16 kernels (src/kernels/avx512/sdpa_bf16_avx512.c) on SIMDe's
 * portable AVX-512 emulation as well, so that machines without AVX512_BF16 test
 * their logic too (the same checks as a native table; see test_avx512_emul.c for
 * the fp32 kernels). SIMDe emulates vdpbf16ps but not vcvtne2ps2bf16 (nor six
 * AVX512F/BW/VL intrinsics, emulated below element by element); the shim for
 * vcvtne2ps2bf16 is that instruction as the SDM defines it: per element, a NaN
 * keeps its top 16 bits with the quiet bit set, a subnormal input is a signed
 * zero (DAZ), everything else rounds to nearest even; lanes 0..15 from b, 16..31
 * from a. */
#if defined(__has_include)
#if __has_include(<simde/x86/avx512.h>)
#define HAVE_SIMDE_BF16 1
#endif
#endif
#ifdef HAVE_SIMDE_BF16
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
static uint16_t emul_cvtne_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static simde__m512bh emul_cvtne2ps_pbh(simde__m512 a, simde__m512 b) {
    float fa[16], fb[16];
    uint16_t h[32];
    simde_mm512_storeu_ps(fa, a);
    simde_mm512_storeu_ps(fb, b);
    for (int i = 0; i < 16; i++) { h[i] = emul_cvtne_bf16(fb[i]); h[16 + i] = emul_cvtne_bf16(fa[i]); }
    simde__m512bh r;
    memcpy(&r, h, sizeof r);
    return r;
}
/* AVX512BW / VL intrinsics this SIMDe lacks, element by element (the masked
 * load reads only the elements of its mask, as the instruction does) */
/* out[0:16] (elements of esz bytes) = p[i] where bit i of k is set, else 0 */
static void emul_maskz(uint32_t k, const void *p, size_t esz, void *out) {
    memset(out, 0, 16 * esz);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy((unsigned char *)out + esz * (size_t)i, (const unsigned char *)p + esz * (size_t)i, esz);
}
/* bit i = (x[i] == y[i]) for n uint16 lanes */
static uint32_t emul_eq16(const uint16_t *x, const uint16_t *y, int n) {
    uint32_t k = 0;
    for (int i = 0; i < n; i++) k |= (uint32_t)(x[i] == y[i]) << i;
    return k;
}
static simde__m256i emul_maskz_loadu_epi16(simde__mmask16 k, const void *p) {
    uint16_t h[16];
    emul_maskz(k, p, 2, h);
    return simde_mm256_loadu_si256((const void *)h);
}
static simde__m512i emul_maskz_loadu_epi32(simde__mmask16 k, const void *p) {
    uint32_t w[16];
    emul_maskz(k, p, 4, w);
    return simde_mm512_loadu_si512((const void *)w);
}
static simde__mmask16 emul_cmpeq_epi16_mask(simde__m256i a, simde__m256i b) {
    uint16_t x[16], y[16];
    simde_mm256_storeu_si256((void *)x, a);
    simde_mm256_storeu_si256((void *)y, b);
    return (simde__mmask16)emul_eq16(x, y, 16);
}
static simde__mmask32 emul_cmpeq_epi16_mask512(simde__m512i a, simde__m512i b) {
    uint16_t x[32], y[32];
    simde_mm512_storeu_si512((void *)x, a);
    simde_mm512_storeu_si512((void *)y, b);
    return (simde__mmask32)emul_eq16(x, y, 32);
}
static simde__m512i emul_cvtepu16_epi32(simde__m256i a) {
    uint16_t x[16];
    uint32_t w[16];
    simde_mm256_storeu_si256((void *)x, a);
    for (int i = 0; i < 16; i++) w[i] = x[i];
    return simde_mm512_loadu_si512((const void *)w);
}
static simde__m256i emul_cvtepi32_epi16(simde__m512i a) { /* vpmovdw: the low 16 bits of each lane */
    uint32_t w[16];
    uint16_t h[16];
    simde_mm512_storeu_si512((void *)w, a);
    for (int i = 0; i < 16; i++) h[i] = (uint16_t)w[i];
    return simde_mm256_loadu_si256((const void *)h);
}
#define _mm512_cvtepi32_epi16(a) emul_cvtepi32_epi16((a))
#define _mm512_cmpeq_epi16_mask(a, b) emul_cmpeq_epi16_mask512((a), (b))
#define _mm512_maskz_loadu_epi32(k, p) emul_maskz_loadu_epi32((k), (p))
#define _mm512_cvtne2ps_pbh(a, b) emul_cvtne2ps_pbh((a), (b))
#define _mm256_maskz_loadu_epi16(k, p) emul_maskz_loadu_epi16((k), (p))
#define _mm256_cmpeq_epi16_mask(a, b) emul_cmpeq_epi16_mask((a), (b))
#define _mm512_cvtepu16_epi32(a) emul_cvtepu16_epi32((a))
typedef simde__mmask16 __mmask16;
#define ATTN_SIMDE_AVX512 1
#include "../src/kernels/avx512/sdpa_bf16_avx512.c"
#include "../src/kernels/avx512/sdpa_pack_avx512.c"
/* kv_bf16_avx512.c: dot_avx512.h's reduction names SIMDe has without native aliases */
#define _mm512_shuffle_f32x4(a, b, imm) simde_mm512_shuffle_f32x4((a), (b), (imm))
#include "../src/kernels/avx512/kv_bf16_avx512.c"
static simde__m512 emul_maskz_loadu_ps(simde__mmask16 k, const void *p) {
    float w[16];
    emul_maskz(k, p, 4, w);
    return simde_mm512_loadu_ps(w);
}
#define _mm512_maskz_loadu_ps(k, p) emul_maskz_loadu_ps((k), (p))
static simde__m512 emul_cvtepi32_ps(simde__m512i a) { /* vcvtdq2ps, round to nearest even */
    int32_t w[16];
    float f[16];
    simde_mm512_storeu_si512((void *)w, a);
    for (int i = 0; i < 16; i++) f[i] = (float)w[i];
    return simde_mm512_loadu_ps(f);
}
#define _mm512_cvtepi32_ps(a) emul_cvtepi32_ps((a))
#include "../src/kernels/avx512/kv_i8_avx512.c"
#endif
#include "kernels/kv_typed.h"

static float rnd_float(tu_rng *r) {
    switch (tu_int(r, 0, 7)) {
    case 0: return attn__bits_f32((uint32_t)tu_next(r)); /* any pattern: NaN, inf, subnormal */
    case 1: return attn__bits_f32((uint32_t)tu_next(r) & 0x807fffffu); /* fp32 subnormal */
    case 2: { /* exact ties of bf16 / f16 rounding */
        uint32_t u = (uint32_t)tu_next(r) & 0xffff0000u;
        return attn__bits_f32(u | (tu_int(r, 0, 1) ? 0x8000u : 0x1000u));
    }
    case 3: return (float)(tu_normal(r) * ldexp(1.0, (int)tu_int(r, -30, 20)));
    default: return (float)tu_normal(r);
    }
}

static void test_cvt(const attn__sdpa_kernels *T, const attn__sdpa_kernels *G, tu_rng *r) {
    static uint16_t all[65536];
    static float a[65536], b[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    const attn_dtype types[2] = {ATTN_DTYPE_BF16, ATTN_DTYPE_F16};
    for (int ti = 0; ti < 2; ti++) {
        const attn_dtype t = types[ti];
        T->to_f32(t, 65536, all, a);
        int bad = 0;
        for (int i = 0; i < 65536; i++) {
            const float want = t == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(all[i]) : attn__f16_to_f32(all[i]);
            /* a signalling f16 NaN comes out quiet from vcvtph2ps: any NaN is a NaN */
            bad += attn__f32_bits(a[i]) != attn__f32_bits(want) && !(isnan(a[i]) && isnan(want));
        }
        CHECK(bad == 0, "[%s] to_f32 %s: %d of 65536 patterns differ", T->name, ti ? "f16" : "bf16", bad);
        for (int it = 0; it < 40; it++) {
            const int64_t n = tu_int(r, 0, 300);
            for (int64_t i = 0; i < n; i++) b[i] = rnd_float(r);
            uint16_t x[320], y[320];
            x[n] = y[n] = 0x5a5a;
            T->from_f32(t, n, b, x);
            G->from_f32(t, n, b, y);
            CHECK(memcmp(x, y, (size_t)(n + 1) * 2) == 0, "[%s] from_f32 %s n=%lld differs from C (or wrote past n)",
                  T->name, ti ? "f16" : "bf16", (long long)n);
        }
    }
}

static void test_gemm(const attn__sdpa_kernels *T, tu_rng *r) {
    static const int64_t ns[] = {16, 32, 48, 64, 80, 128, 144};
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        const int64_t m = tu_int(r, 1, 40), n = ns[tu_int(r, 0, 6)], k2 = tu_int(r, 1, 70);
        const int acc = (int)tu_int(r, 0, 1), trans = (int)tu_int(r, 0, 1); /* A as K rows or as P2 pairs */
        const int64_t ars = trans ? 2 : 2 * k2 + 2 * tu_int(r, 0, 3), aps = trans ? 2 * m + 2 * tu_int(r, 0, 2) : 2;
        const int64_t na = trans ? k2 * aps + 2 * m : m * ars + 2 * k2;
        const int64_t ldb = n + 16 * tu_int(r, 0, 1), ldc = n + 16 * tu_int(r, 0, 1);
        uint16_t *A = calloc((size_t)na + 2, 2), *B = calloc((size_t)(2 * k2 * ldb) + 2, 2);
        float *C0 = calloc((size_t)(m * ldc) + 1, 4), *C1 = calloc((size_t)(m * ldc) + 1, 4);
        for (int64_t i = 0; i < na; i++) A[i] = attn__f32_to_bf16((float)tu_normal(r));
        for (int64_t i = 0; i < 2 * k2 * ldb; i++) B[i] = attn__f32_to_bf16((float)tu_normal(r));
        for (int64_t i = 0; i < m * ldc; i++) C0[i] = C1[i] = (float)tu_normal(r);
        T->gemm_bf16(m, n, k2, A, ars, aps, B, ldb, C0, ldc, acc);
        attn__sdpa_gemm_bf16_ref(m, n, k2, A, ars, aps, B, ldb, C1, ldc, acc);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = acc ? fabs((double)C1[i * ldc + j]) : 0.0; /* |c| bounds the initial value's part */
                for (int64_t p = 0; p < k2; p++)
                    for (int e = 0; e < 2; e++)
                        s += fabs((double)attn__bf16_to_f32(A[i * ars + p * aps + e]) *
                                  (double)attn__bf16_to_f32(B[2 * (p * ldb + j) + e]));
                bad += !(fabs((double)C0[i * ldc + j] - (double)C1[i * ldc + j]) <= 0x1p-22 * s + 1e-30);
            }
        free(A); free(B); free(C0); free(C1);
    }
    CHECK(bad == 0, "[%s] gemm_bf16: %d elements outside 2^-22 of the sum of |products|", T->name, bad);
}

static void test_pack(const attn__sdpa_kernels *T, const attn__sdpa_kernels *G, tu_rng *r) {
    int badp = 0, badv = 0;
    for (int it = 0; it < 200; it++) {
        const int64_t nc = tu_int(r, 1, 64), mp = 16 * tu_int(r, 1, 8);
        float *S = malloc((size_t)(nc * mp) * 4);
        for (int64_t i = 0; i < nc * mp; i++) S[i] = tu_int(r, 0, 9) ? (float)tu_uniform(r) : 0.0f;
        const int64_t np = ((nc + 1) / 2) * mp * 2;
        uint16_t *P0 = malloc((size_t)np * 2 + 2), *P1 = malloc((size_t)np * 2 + 2);
        P0[np] = P1[np] = 0x5a5a;
        T->pack_p_bf16(nc, mp, S, P0);
        G->pack_p_bf16(nc, mp, S, P1);
        badp += memcmp(P0, P1, (size_t)(np + 1) * 2) != 0;
        /* V rows with some Inf / NaN rows */
        const int64_t n = tu_int(r, 1, 140), npad = (n + 15) / 16 * 16 + 16 * tu_int(r, 0, 1), lds = n + tu_int(r, 0, 5);
        uint16_t *src = malloc((size_t)(nc * lds) * 2 + 2);
        for (int64_t i = 0; i < nc * lds; i++) src[i] = attn__f32_to_bf16((float)tu_normal(r));
        for (int64_t c = 0; c < nc; c++)
            if (tu_int(r, 0, 9) == 0) src[c * lds + tu_int(r, 0, n - 1)] = tu_int(r, 0, 1) ? 0x7f80 : 0xffc1;
        const int64_t nv = ((nc + 1) / 2) * npad * 2;
        uint16_t *V0 = malloc((size_t)nv * 2 + 2), *V1 = malloc((size_t)nv * 2 + 2);
        int32_t b0[64], b1[64];
        V0[nv] = V1[nv] = 0x5a5a;
        const int n0 = T->pack_v_bf16(nc, n, src, lds, V0, npad, b0), n1 = G->pack_v_bf16(nc, n, src, lds, V1, npad, b1);
        badv += n0 != n1 || memcmp(b0, b1, (size_t)n0 * 4) != 0 || memcmp(V0, V1, (size_t)(nv + 1) * 2) != 0;
        free(S); free(P0); free(P1); free(src); free(V0); free(V1);
    }
    CHECK(badp == 0, "[%s] pack_p_bf16: %d of 200 tiles differ from C", T->name, badp);
    CHECK(badv == 0, "[%s] pack_v_bf16: %d of 200 tiles differ from C", T->name, badv);
}

/* pack_qblock (the backward's query-block packing, fp32 and bf16): bit for
 * bit vs C, every column tail (n 1..140, bf16 even), row operand on / off,
 * nr < mp (fp32) and ldr past round16(n), NULL rows, rows with Inf / NaN
 * listed; nothing written past T / R. */
static void test_pack_qblock(const attn__sdpa_kernels *T, const attn__sdpa_kernels *G, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        const int esz = tu_int(r, 0, 1) ? 4 : 2;
        const int64_t mp = 16 * tu_int(r, 1, 5), n = esz == 4 ? tu_int(r, 1, 140) : 2 * tu_int(r, 1, 70);
        const int64_t nu = esz == 4 ? n : n / 2, ldr = (n + 15) / 16 * 16 + 16 * tu_int(r, 0, 1);
        const int64_t nr = esz == 4 ? tu_int(r, 1, mp) : mp, lds = n + tu_int(r, 0, 3) * (esz == 4 ? 1 : 2);
        const int withr = (int)tu_int(r, 0, 3) != 0;
        unsigned char *src = malloc((size_t)(mp * lds * esz));
        for (int64_t i = 0; i < mp * lds; i++) {
            const float x = (float)tu_normal(r);
            if (esz == 4) memcpy(src + 4 * i, &x, 4);
            else { const uint16_t h = attn__f32_to_bf16(x); memcpy(src + 2 * i, &h, 2); }
        }
        const void *x[80];
        for (int64_t m = 0; m < mp; m++) {
            x[m] = tu_int(r, 0, 7) ? src + (size_t)(m * lds * esz) : NULL;
            if (x[m] && tu_int(r, 0, 9) == 0) { /* an Inf or NaN somewhere in the row */
                const int64_t d = tu_int(r, 0, n - 1);
                const uint32_t f = tu_int(r, 0, 1) ? 0x7f800000u : 0xffc00001u;
                const uint16_t h = tu_int(r, 0, 1) ? 0x7f80 : 0xffc1;
                if (esz == 4) memcpy(src + (m * lds + d) * 4, &f, 4);
                else memcpy(src + (m * lds + d) * 2, &h, 2);
            }
        }
        const int64_t nt = nu * mp + 32, nR = (esz == 4 ? mp : mp / 2) * ldr + 32; /* 32 guard units */
        uint32_t *T0 = malloc((size_t)nt * 4), *T1 = malloc((size_t)nt * 4);
        uint32_t *R0 = malloc((size_t)nR * 4), *R1 = malloc((size_t)nR * 4);
        for (int64_t i = 0; i < nt; i++) T0[i] = T1[i] = 0x5a5a5a5au;
        for (int64_t i = 0; i < nR; i++) R0[i] = R1[i] = 0xa5a5a5a5u;
        int32_t b0[80], b1[80];
        const int n0 = T->pack_qblock(mp, nr, n, esz, x, T0, withr ? R0 : NULL, ldr, b0);
        const int n1 = G->pack_qblock(mp, nr, n, esz, x, T1, withr ? R1 : NULL, ldr, b1);
        bad += n0 != n1 || memcmp(b0, b1, (size_t)n0 * 4) != 0 || memcmp(T0, T1, (size_t)nt * 4) != 0 ||
               memcmp(R0, R1, (size_t)nR * 4) != 0;
        free(src); free(T0); free(T1); free(R0); free(R1);
    }
    CHECK(bad == 0, "[%s] pack_qblock: %d of 300 blocks differ from C", T->name, bad);
}

/* split_ds_bf16 (the bf16 backward's dS: rows for dK, hi / lo key pairs for
 * dq): bit for bit vs C on normal values, exact zeros, values exact in bf16
 * (lo = 0), a few Inf / NaN, every nc parity; nothing written past the buffers. */
static void test_split_ds(const attn__sdpa_kernels *T, const attn__sdpa_kernels *G, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 200; it++) {
        const int64_t nc = tu_int(r, 1, 64), mp = 16 * tu_int(r, 1, 8), n = nc * mp, np = ((nc + 1) / 2) * mp * 2;
        float *S = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) {
            const int k = (int)tu_int(r, 0, 9);
            S[i] = k == 0 ? 0.0f : k == 1 ? attn__bf16_to_f32(attn__f32_to_bf16((float)tu_normal(r))) : (float)tu_normal(r);
            if (tu_int(r, 0, 199) == 0) S[i] = tu_int(r, 0, 1) ? INFINITY : attn__bits_f32(0x7fc01234u); /* Inf / NaN */
        }
        uint16_t *buf[6];
        for (int b = 0; b < 6; b++) {
            const int64_t len = (b % 3 == 0 ? n : np) + 32; /* 32 guard elements */
            buf[b] = malloc((size_t)len * 2);
            for (int64_t i = 0; i < len; i++) buf[b][i] = 0x5a5a;
        }
        T->split_ds_bf16(nc, mp, S, buf[0], buf[1], buf[2]);
        G->split_ds_bf16(nc, mp, S, buf[3], buf[4], buf[5]);
        for (int b = 0; b < 3; b++) bad += memcmp(buf[b], buf[b + 3], (size_t)((b == 0 ? n : np) + 32) * 2) != 0;
        free(S);
        for (int b = 0; b < 6; b++) free(buf[b]);
    }
    CHECK(bad == 0, "[%s] split_ds_bf16: %d of 600 outputs differ from C", T->name, bad);
}

/* scale_rows (fp32, the forward's rescale): bit for bit vs C, rows with alpha 1 untouched */
static void test_scale_rows(const attn__sdpa_kernels *T, const attn__sdpa_kernels *G, tu_rng *r) {
    int bad = 0;
    for (int it = 0; it < 100; it++) {
        const int64_t m = tu_int(r, 1, 40), n = 16 * tu_int(r, 1, 9), ldc = n + 16 * tu_int(r, 0, 1);
        float *C0 = malloc((size_t)(m * ldc) * 4), *C1 = malloc((size_t)(m * ldc) * 4), *al = malloc((size_t)m * 4);
        for (int64_t i = 0; i < m * ldc; i++) C0[i] = C1[i] = rnd_float(r);
        for (int64_t i = 0; i < m; i++) al[i] = tu_int(r, 0, 2) ? (float)tu_uniform(r) : 1.0f;
        T->scale_rows(m, n, C0, ldc, al);
        G->scale_rows(m, n, C1, ldc, al);
        bad += memcmp(C0, C1, (size_t)(m * ldc) * 4) != 0;
        free(C0); free(C1); free(al);
    }
    CHECK(bad == 0, "[%s] scale_rows: %d of 100 differ from C", T->name, bad);
}

/* The decode_fast kernels (kv_typed.h: kdot_bf16, vacc_bf16) against float64:
 *   kdot_bf16: S = bf16(Q) . K over bf16 rows, exact products summed in fp32:
 *     |S - ref| <= 1e-5 * sum |products| (the fp32 kdot's bound), and S rows of
 *     rows >= M zero;
 *   vacc_bf16: O += P^T V with P rounded to bf16 where a key pair's live rows
 *     all have finite P != 0, else fp32 key by key skipping P == 0 (V rows of
 *     masked keys hold Inf / NaN): after attn__kv_unpair, |O - ref| <= 2^-8 *
 *     sum_j |P_j v_j| + 1e-6 sum |O_in| (bf16 rounding of P: 2^-9 relative);
 *     the Inf rows never reach a row that does not attend to them; an attended
 *     Inf row gives +-Inf / NaN where fp32 does.
 * Every M in 1..8, n in 1..64 (odd ones: the fp32 last key), D / Dv 32..256. */
static void test_kv_fast(const char *name, const attn__kv_kernels *K, tu_rng *r) {
    int bad = 0, cases = 0, pfast = 0;
    for (int it = 0; it < 600 && !bad; it++) {
        const int64_t n = tu_int(r, 1, 64), M = tu_int(r, 1, 8), D = 32 * tu_int(r, 1, 8), Dv = 32 * tu_int(r, 1, 8);
        uint16_t *Kb = calloc((size_t)(n * D), 2), *Vb = calloc((size_t)(n * Dv), 2), Qb[8 * 256];
        float *S = calloc((size_t)(n * 8), 4), *P = calloc((size_t)(n * 8), 4), *O = calloc((size_t)(8 * Dv), 4);
        float *O0 = calloc((size_t)(8 * Dv), 4);
        double *ref = calloc((size_t)(8 * Dv), 8), *mag = calloc((size_t)(8 * Dv), 8);
        for (int64_t i = 0; i < n * D; i++) Kb[i] = attn__f32_to_bf16((float)tu_normal(r));
        for (int64_t i = 0; i < n * Dv; i++) Vb[i] = attn__f32_to_bf16((float)tu_normal(r));
        memset(Qb, 0, sizeof Qb);
        for (int64_t m = 0; m < M; m++)
            for (int64_t d = 0; d < D; d++) Qb[m * D + d] = attn__f32_to_bf16((float)tu_normal(r));
        /* scores */
        for (int64_t i = 0; i < n * 8; i++) S[i] = 12345.0f;
        K->kdot_bf16(n, M, D, Kb, Qb, D, S, 8);
        for (int64_t j = 0; j < n && !bad; j++)
            for (int64_t m = 0; m < 8 && !bad; m++) {
                double want = 0, sa = 0;
                for (int64_t d = 0; m < M && d < D; d++) {
                    const double x = (double)attn__bf16_to_f32(Qb[m * D + d]) * attn__bf16_to_f32(Kb[j * D + d]);
                    want += x; sa += fabs(x);
                }
                if (!(fabs(S[j * 8 + m] - want) <= 1e-5 * sa)) {
                    CHECK(0, "%s kdot_bf16 n=%lld M=%lld D=%lld: S[%lld][%lld] = %g, want %g", name, (long long)n,
                          (long long)M, (long long)D, (long long)j, (long long)m, S[j * 8 + m], want);
                    bad = 1;
                }
            }
        /* P: positive, some exact zeros (masked keys, whose V rows are Inf / NaN), rows >= M junk */
        const int inf_case = it % 3 == 0;
        for (int64_t j = 0; j < n; j++) {
            const int masked = tu_int(r, 0, 5) == 0;
            for (int64_t m = 0; m < 8; m++)
                P[j * 8 + m] = m >= M ? (float)tu_uniform(r) : masked && (m % 2 == 0 || tu_int(r, 0, 1)) ? 0.0f
                                                                    : (float)(tu_uniform(r) * 2.0);
            int all0 = 1;
            for (int64_t m = 0; m < M; m++) all0 &= P[j * 8 + m] == 0.0f;
            if (inf_case && all0) /* nobody attends: Inf / NaN must stay out */
                for (int64_t e = 0; e < Dv; e++) Vb[j * Dv + e] = e % 2 ? 0x7f80 : 0x7fc1;
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t e = 0; e < Dv; e++) O0[m * Dv + e] = (float)tu_normal(r);
        /* O in pair order: the kernel's accumulator is O0 permuted; compare after attn__kv_unpair */
        for (int64_t m = 0; m < M; m++)
            for (int64_t g = 0; g < Dv; g += 32)
                for (int L = 0; L < 4; L++)
                    for (int i = 0; i < 4; i++) {
                        O[m * Dv + g + 4 * L + i] = O0[m * Dv + g + 8 * L + i];
                        O[m * Dv + g + 16 + 4 * L + i] = O0[m * Dv + g + 8 * L + 4 + i];
                    }
        K->vacc_bf16(n, M, Dv, P, 8, Vb, O, Dv);
        attn__kv_unpair(M, Dv, O, Dv);
        for (int64_t m = 0; m < M; m++)
            for (int64_t e = 0; e < Dv; e++) {
                double w = O0[m * Dv + e], a = 0;
                for (int64_t j = 0; j < n; j++) {
                    if (P[j * 8 + m] == 0.0f) continue;
                    const double x = (double)P[j * 8 + m] * attn__bf16_to_f32(Vb[j * Dv + e]);
                    w += x; a += 0x1p-8 * fabs(x);
                }
                ref[m * Dv + e] = w; mag[m * Dv + e] = a + 1e-6 * fabs(O0[m * Dv + e]);
            }
        for (int64_t m = 0; m < M && !bad; m++)
            for (int64_t e = 0; e < Dv && !bad; e++) {
                const double got = O[m * Dv + e], want = ref[m * Dv + e];
                if (!isfinite(want) ? !(isnan(want) ? isnan(got) : got == want) : !(fabs(got - want) <= mag[m * Dv + e])) {
                    CHECK(0, "%s vacc_bf16 n=%lld M=%lld Dv=%lld: O[%lld][%lld] = %g, want %g (+- %g)", name, (long long)n,
                          (long long)M, (long long)Dv, (long long)m, (long long)e, got, want, mag[m * Dv + e]);
                    bad = 1;
                }
            }
        /* the bf16 rounding of P is in use: some output differs from the fp32 sum of exact P */
        for (int64_t m = 0; m < M; m++)
            for (int64_t e = 0; e < Dv; e++) {
                double w = O0[m * Dv + e];
                for (int64_t j = 0; j < n; j++)
                    if (P[j * 8 + m] != 0.0f) w += (double)P[j * 8 + m] * attn__bf16_to_f32(Vb[j * Dv + e]);
                pfast += isfinite(w) && fabs(O[m * Dv + e] - w) > 1e-5 * (fabs(w) + 1);
            }
        cases++;
        free(Kb); free(Vb); free(S); free(P); free(O); free(O0); free(ref); free(mag);
    }
    CHECK(!bad, "%s: kdot_bf16 / vacc_bf16 within their bounds on %d tiles", name, cases);
    CHECK(pfast > 0, "%s: vacc_bf16 never rounded P to bf16 (the fast path did not run)", name);
}

/* kdot_i8 (kv_typed.h) against the exact integer sums: S = (fp32(sum Qi K) *
 * qs) * ks, three fp32 roundings: |S - ref| <= 2^-22 |ref|; S rows of rows
 * >= M zero. Every M in 1..8, n in 1..64, D 32..256, extreme values (|Qi|
 * 32767, |K| 127: the sums near 2^30). */
static void test_kv_i8(const char *name, const attn__kv_kernels *K, tu_rng *r) {
    int bad = 0, cases = 0;
    for (int it = 0; it < 600 && !bad; it++, cases++) {
        const int64_t n = tu_int(r, 1, 64), M = tu_int(r, 1, 8), D = 32 * tu_int(r, 1, 8);
        const int extreme = it % 5 == 0;
        int8_t *Kq = calloc((size_t)(n * D), 1);
        int16_t Qi[8 * 256];
        float ks[64], qs[8], *S = calloc((size_t)(n * 8), 4);
        for (int64_t i = 0; i < n * D; i++) Kq[i] = (int8_t)(extreme ? (tu_int(r, 0, 1) ? 127 : -127) : tu_int(r, -127, 127));
        for (int64_t j = 0; j < n; j++) ks[j] = (float)(tu_uniform(r) * 0.02);
        memset(Qi, 0, sizeof Qi);
        for (int64_t m = 0; m < 8; m++) qs[m] = (float)(tu_uniform(r) * 1e-3);
        for (int64_t m = 0; m < M; m++)
            for (int64_t d = 0; d < D; d++) {
                const int64_t v = extreme ? (Kq[d] > 0 ? 32767 : -32767) : tu_int(r, -32767, 32767);
                Qi[m * D + d] = (int16_t)v;
            }
        for (int64_t i = 0; i < n * 8; i++) S[i] = 12345.0f;
        K->kdot_i8(n, M, D, Kq, ks, Qi, qs, D, S, 8);
        for (int64_t j = 0; j < n && !bad; j++)
            for (int64_t m = 0; m < 8 && !bad; m++) {
                int64_t acc = 0;
                for (int64_t d = 0; m < M && d < D; d++) acc += (int64_t)Qi[m * D + d] * Kq[j * D + d];
                const double want = m < M ? (double)acc * qs[m] * ks[j] : 0.0;
                if (!(fabs(S[j * 8 + m] - want) <= 0x1p-22 * fabs(want))) {
                    CHECK(0, "%s kdot_i8 n=%lld M=%lld D=%lld: S[%lld][%lld] = %.9g, want %.9g", name, (long long)n,
                          (long long)M, (long long)D, (long long)j, (long long)m, S[j * 8 + m], want);
                    bad = 1;
                }
            }
        free(Kq); free(S);
    }
    CHECK(!bad, "%s: kdot_i8 within 2^-22 of the exact sums on %d tiles", name, cases);
}

int main(void) {
    tu_rng r = {777};
    const attn__sdpa_kernels *G = attn__sdpa_kernels_for(ATTN_ISA_GENERIC);
    int ngemm = 0;
    for (int isa = 0; isa <= (int)attn_isa_detected(); isa++) {
        const attn__kv_kernels *KT = attn__kv_kernels_for((attn_isa)isa);
        if (KT->kdot_bf16) test_kv_fast(KT->name, KT, &r);
        CHECK(!KT->kdot_bf16 == !KT->vacc_bf16, "%s: kdot_bf16 and vacc_bf16 come together", KT->name);
        if (KT->kdot_i8) test_kv_i8(KT->name, KT, &r);
        CHECK(!KT->kdot_i8 || (isa == ATTN_ISA_AVX512 && attn__cpu()->avx512vnni),
              "%s: kdot_i8 only on AVX512_VNNI CPUs", KT->name);
        CHECK(!KT->kdot_bf16 || (isa == ATTN_ISA_AVX512 && attn__cpu()->avx512bf16),
              "%s: decode_fast kernels only on AVX512_BF16 CPUs", KT->name);
        const attn__sdpa_kernels *T = attn__sdpa_kernels_for((attn_isa)isa);
        test_cvt(T, G, &r);
        test_pack(T, G, &r);
        test_scale_rows(T, G, &r);
        test_pack_qblock(T, G, &r);
        test_split_ds(T, G, &r);
        if (T->gemm_bf16) { test_gemm(T, &r); ngemm++; }
    }
#ifdef HAVE_SIMDE_BF16
    { /* the emulated AVX512_BF16 entries and the AVX-512 pack_qblock over the portable table */
        attn__sdpa_kernels E = *G;
        attn__sdpa_kernels_avx512_bf16_emul(&E);
        E.name = "avx512_bf16 (SIMDe)";
        CHECK(E.gemm_bf16 && E.pack_p_bf16 != G->pack_p_bf16 && E.pack_v_bf16 != G->pack_v_bf16,
              "the emulated table overrides the bf16 entries");
        attn__sdpa_pack_avx512_emul(&E);
        CHECK(E.split_ds_bf16 != G->split_ds_bf16 && E.pack_qblock != G->pack_qblock,
              "the emulated table overrides split_ds_bf16 and pack_qblock");
        test_pack_qblock(&E, G, &r);
        test_pack(&E, G, &r);
        test_split_ds(&E, G, &r);
        test_gemm(&E, &r);
        ngemm++;
        attn__kv_kernels KE = {0};
        attn__kv_kernels_avx512_bf16_emul(&KE);
        test_kv_fast("kv avx512_bf16 (SIMDe)", &KE, &r);
        attn__kv_kernels_avx512_vnni_emul(&KE);
        test_kv_i8("kv avx512_vnni (SIMDe)", &KE, &r);
    }
#else
    CHECK(0, "SIMDe headers (<simde/x86/avx512.h>, Debian package libsimde-dev) not found: scripts/deps.sh installs them");
#endif
    printf("test_kernels_typed: conversions and packing on %d table(s), gemm_bf16 on %d (one SIMDe-emulated)\n",
           (int)attn_isa_detected() + 1, ngemm);
    return test_summary("test_kernels_typed");
}
