/* SPDX-License-Identifier: MIT */
/* sdpa_f32_generic.c — portable C micro-kernels of the sdpa table (the
 * fallback for every entry and the baseline the SIMD kernels are checked
 * against). Plain loops; summation orders are fixed (ascending index). */
#include "kernels/dispatch.h"
#include "io/half.h"

#include <math.h>
#include <string.h>

static void gemm_ab_generic(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                            int64_t ldb, float *C, int64_t ldc, int acc) {
    for (int64_t i = 0; i < m; i++) {
        float *c = C + i * ldc;        /* (n) row i of C */
        const float *a = A + i * lda;  /* (k) row i of A */
        if (!acc) memset(c, 0, (size_t)n * sizeof(float));
        for (int64_t p = 0; p < k; p++) {
            const float ap = a[p];
            const float *b = B + p * ldb; /* (n) row p of B */
            for (int64_t j = 0; j < n; j++) c[j] += ap * b[j];
        }
    }
}

static void gemm_atb_generic(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                             int64_t ldb, float *C, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        float *c = C + i * ldc; /* (n) row i of C */
        for (int64_t p = 0; p < k; p++) {
            const float ap = A[p * lda + i];
            const float *b = B + p * ldb;
            for (int64_t j = 0; j < n; j++) c[j] += ap * b[j];
        }
    }
}

static void gemm_abt_generic(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                             int64_t ldb, float *C, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        const float *a = A + i * lda; /* (k) row i of A */
        float *c = C + i * ldc;       /* (round8(n)) row i of C */
        for (int64_t j = 0; j < n; j++) {
            const float *b = B + j * ldb; /* (k) row j of B */
            float s = 0.0f;
            for (int64_t p = 0; p < k; p++) s += a[p] * b[p];
            c[j] = s;
        }
        for (int64_t j = n; j < ((n + 7) & ~(int64_t)7); j++) c[j] = 0.0f;
    }
}

static int softmax_tile_generic(int64_t nc, int64_t mp, float *S, float scale, float *mrow, float *lrow,
                                float *alpha) {
    if (scale != 1.0f)
        for (int64_t x = 0; x < nc * mp; x++) S[x] *= scale;
    int changed = 0;
    for (int64_t m = 0; m < mp; m++) {
        float mx = -INFINITY;
        for (int64_t c = 0; c < nc; c++) mx = fmaxf(mx, S[c * mp + m]);
        float mn = fmaxf(mrow[m], mx);
        if (mn == -INFINITY) { /* no finite score yet: -inf -> 0; a NaN score (ignored by the max) stays NaN */
            float sum = 0.0f;
            for (int64_t c = 0; c < nc; c++) {
                const float x = S[c * mp + m];
                S[c * mp + m] = x == -INFINITY ? 0.0f : x;
                sum += S[c * mp + m];
            }
            lrow[m] += sum;
            alpha[m] = 1.0f;
            continue;
        }
        float a = expf(mrow[m] - mn);
        float sum = 0.0f;
        for (int64_t c = 0; c < nc; c++) {
            float e = expf(S[c * mp + m] - mn);
            S[c * mp + m] = e;
            sum += e;
        }
        alpha[m] = a;
        if (a != 1.0f) changed = 1;
        lrow[m] = a * lrow[m] + sum;
        mrow[m] = mn;
    }
    return changed;
}

static void bwd_probs_generic(int64_t nc, int64_t mp, float *S, float scale, const float *lse, const float *lo) {
    for (int64_t c = 0; c < nc; c++)
        for (int64_t m = 0; m < mp; m++) {
            float l = lse[m], s = scale * S[c * mp + m];
            S[c * mp + m] = l == -INFINITY ? 0.0f : expf((s - l) - lo[m]);
        }
}

static void bwd_ds_generic(int64_t nc, int64_t mp, const float *P, float *dP, const float *Di, const float *Dl,
                           float scale) {
    for (int64_t c = 0; c < nc; c++)
        for (int64_t m = 0; m < mp; m++) {
            const float p = P[c * mp + m]; /* p == 0 (masked): exactly 0, even if dP is not finite */
            const float ds = p * ((dP[c * mp + m] - Di[m]) - Dl[m]);
            dP[c * mp + m] = p == 0.0f ? 0.0f : scale * ds;
        }
}

static float dot_generic(int64_t n, const float *a, const float *b) {
    float s = 0.0f;
    for (int64_t e = 0; e < n; e++) s += a[e] * b[e];
    return s;
}

static void row_sums_generic(int64_t nc, int64_t mp, const float *E, const float *dP, double *cs, double *ds,
                             float *em) {
    for (int64_t c = 0; c < nc; c++)
        for (int64_t m = 0; m < mp; m++) {
            const float e = E[c * mp + m];
            if (e == 0.0f) continue;
            cs[m] += e;
            if (dP) ds[m] += (double)e * dP[c * mp + m];
            else em[m] = fmaxf(em[m], e);
        }
}

static int pack_rows_generic(int64_t nr, int64_t n, const float *src, int64_t lds, float scale, float *dst,
                             int64_t ldd, int64_t npad, int32_t *bad) {
    int nbad = 0;
    for (int64_t r = 0; r < nr; r++) attn__pack_row_finish(src + r * lds, dst + r * ldd, 0, n, npad, scale, 0, bad, &nbad, r);
    return nbad;
}

static int rows_finite_generic(int64_t nr, int64_t n, const float *src, int64_t lds) {
    float acc = 0.0f; /* x * 0 is +-0 for finite x and NaN for Inf / NaN; NaN sticks */
    for (int64_t r = 0; r < nr; r++)
        for (int64_t e = 0; e < n; e++) acc += src[r * lds + e] * 0.0f;
    return acc == acc;
}

static void scale_rows_generic(int64_t m, int64_t n, float *C, int64_t ldc, const float *alpha) {
    for (int64_t r = 0; r < m; r++) {
        const float a = alpha[r];
        if (a == 1.0f) continue;
        for (int64_t e = 0; e < n; e++) C[r * ldc + e] *= a;
    }
}

/* ─── element types ─────────────────────────────────────────────────────── */

static void to_f32_generic(attn_dtype t, int64_t n, const void *src, float *dst) {
    const uint16_t *s = src;
    if (t == ATTN_DTYPE_BF16)
        for (int64_t i = 0; i < n; i++) dst[i] = attn__bf16_to_f32(s[i]);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = attn__f16_to_f32(s[i]);
}

static void from_f32_generic(attn_dtype t, int64_t n, const float *src, void *dst) {
    uint16_t *d = dst;
    if (t == ATTN_DTYPE_BF16)
        for (int64_t i = 0; i < n; i++) d[i] = attn__f32_to_bf16(src[i]);
    else
        for (int64_t i = 0; i < n; i++) d[i] = attn__f32_to_f16(src[i]);
}

/* The portable pair kernels define the bf16 fast path's arithmetic (tests
 * compare the native ones with them); the generic table leaves gemm_bf16
 * NULL, so the driver never takes the fast path without a bf16 unit. */
static uint32_t ld32(const uint16_t *p) { uint32_t u; memcpy(&u, p, 4); return u; }

void attn__sdpa_gemm_bf16_ref(int64_t m, int64_t n, int64_t k2, const uint16_t *A, int64_t ars, int64_t aps,
                              const uint16_t *B, int64_t ldb, float *C, int64_t ldc, int acc) {
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++) {
            float c = acc ? C[r * ldc + j] : 0.0f;
            for (int64_t p = 0; p < k2; p++) {
                const uint32_t a = ld32(A + r * ars + p * aps), b = ld32(B + 2 * (p * ldb + j));
                c += attn__bits_f32(a << 16) * attn__bits_f32(b << 16) +
                     attn__bits_f32(a & 0xffff0000u) * attn__bits_f32(b & 0xffff0000u);
            }
            C[r * ldc + j] = c;
        }
}

static void pack_p_bf16_generic(int64_t nc, int64_t mp, const float *S, uint16_t *P2) {
    for (int64_t c2 = 0; c2 < (nc + 1) / 2; c2++)
        for (int64_t m = 0; m < mp; m++)
            for (int t = 0; t < 2; t++) {
                const int64_t c = 2 * c2 + t;
                P2[2 * (c2 * mp + m) + t] = c < nc ? attn__f32_to_bf16(S[c * mp + m]) : 0;
            }
}

static int pack_v_bf16_generic(int64_t nr, int64_t n, const uint16_t *src, int64_t lds, uint16_t *V2, int64_t npad,
                               int32_t *bad) {
    int nbad = 0;
    for (int64_t c = 0; c < nr + (nr & 1); c++) {
        const uint16_t *s = src + c * lds;
        int nonfinite = 0;
        if (c < nr)
            for (int64_t e = 0; e < n; e++) nonfinite |= (s[e] & 0x7f80u) == 0x7f80u;
        if (nonfinite) bad[nbad++] = (int32_t)c;
        uint16_t *d = V2 + 2 * ((c / 2) * npad) + (c & 1);
        for (int64_t e = 0; e < npad; e++) d[2 * e] = c < nr && !nonfinite && e < n ? s[e] : 0;
    }
    return nbad;
}

/* Unit u of row x (NULL: 0): an fp32 element's bits or a bf16 pair. */
static uint32_t unit_of(const void *x, int64_t u) {
    uint32_t v = 0;
    if (x) memcpy(&v, (const unsigned char *)x + 4 * u, 4);
    return v;
}
/* Does row x (n elements of esz bytes) hold an Inf / NaN (exponent all ones)? */
static int row_nonfinite(const void *x, int esz, int64_t n) {
    int bad = 0;
    for (int64_t d = 0; x && d < n; d++) {
        uint32_t v = 0;
        memcpy(&v, (const unsigned char *)x + (size_t)esz * (size_t)d, (size_t)esz);
        bad |= esz == 4 ? (v & 0x7f800000u) == 0x7f800000u : (v & 0x7f80u) == 0x7f80u;
    }
    return bad;
}

static void split_ds_bf16_generic(int64_t nc, int64_t mp, const float *dS, uint16_t *d16, uint16_t *hi2,
                                  uint16_t *lo2) {
    for (int64_t c2 = 0; c2 < (nc + 1) / 2; c2++)
        for (int64_t m = 0; m < mp; m++)
            for (int t = 0; t < 2; t++) {
                const int64_t c = 2 * c2 + t, x = 2 * (c2 * mp + m) + t;
                hi2[x] = lo2[x] = 0;
                if (c >= nc) continue;
                const float v = dS[c * mp + m];
                const uint16_t h = attn__f32_to_bf16(v);
                d16[c * mp + m] = hi2[x] = h;
                lo2[x] = attn__f32_to_bf16(v - attn__bf16_to_f32(h));
            }
}

/* Unit i of the 32-bit unit array a = v. */
static void put_unit(void *a, int64_t i, uint32_t v) { memcpy((unsigned char *)a + 4 * i, &v, 4); }

static int pack_qblock_generic(int64_t mp, int64_t nr, int64_t n, int esz, const void *const *x, void *T, void *R,
                               int64_t ldr, int32_t *bad) {
    const int64_t nu = esz == 4 ? n : n / 2;
    int nbad = 0;
    for (int64_t m = 0; m < mp; m++) {
        for (int64_t u = 0; u < nu; u++) put_unit(T, u * mp + m, unit_of(x[m], u));
        if (row_nonfinite(x[m], esz, n)) bad[nbad++] = (int32_t)m;
        if (!R || m >= nr) continue;
        if (esz == 4) {
            for (int64_t d = 0; d < ldr; d++) put_unit(R, m * ldr + d, d < n ? unit_of(x[m], d) : 0u);
        } else { /* the row's half of each pair */
            uint16_t *r = (uint16_t *)R + 2 * (m / 2) * ldr + (m & 1);
            const uint16_t *h = x[m];
            for (int64_t d = 0; d < ldr; d++) r[2 * d] = h && d < n ? h[d] : 0;
        }
    }
    return nbad;
}

void attn__sdpa_kernels_generic(attn__sdpa_kernels *t) {
    t->name = "generic";
    attn__sdpa_blocks_default(&t->blk);
    t->gemm_ab = gemm_ab_generic;
    t->gemm_atb = gemm_atb_generic;
    t->gemm_abt = gemm_abt_generic;
    t->softmax_tile = softmax_tile_generic;
    t->bwd_probs = bwd_probs_generic;
    t->bwd_ds = bwd_ds_generic;
    t->rows_finite = rows_finite_generic;
    t->pack_rows = pack_rows_generic;
    t->row_sums = row_sums_generic;
    t->dot = dot_generic;
    t->scale_rows = scale_rows_generic;
    t->to_f32 = to_f32_generic;
    t->from_f32 = from_f32_generic;
    t->gemm_bf16 = NULL;
    t->pack_p_bf16 = pack_p_bf16_generic;
    t->pack_v_bf16 = pack_v_bf16_generic;
    t->pack_qblock = pack_qblock_generic;
    t->split_ds_bf16 = split_ds_bf16_generic;
}
