/* SPDX-License-Identifier: MIT */
/* kv_typed_generic.c — portable C typed decode kernels (kv_typed.h): each K/V
 * element widened by the half.h conversions (exact), products summed in
 * fp32, d ascending. */
#include "kernels/kv_typed.h"

#include "io/half.h"

static inline float elem(attn_dtype t, const void *p, int64_t i) {
    switch (t) {
    case ATTN_DTYPE_BF16: return attn__bf16_to_f32(((const uint16_t *)p)[i]);
    case ATTN_DTYPE_F16: return attn__f16_to_f32(((const uint16_t *)p)[i]);
    case ATTN_DTYPE_I8: return (float)((const int8_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}

static const unsigned char *row_at(attn_dtype t, const void *base, int64_t j, int64_t D) {
    return (const unsigned char *)base + (size_t)(j * D) * attn__kv_elem_size(t);
}

static void kdot_generic(attn_dtype t, int64_t n, int64_t M, int64_t D, const void *K, const float *ks, const float *Q,
                         int64_t ldq, float *S, int64_t lds) {
    for (int64_t j = 0; j < n; j++) {
        const unsigned char *kr = row_at(t, K, j, D);
        const float sc = t == ATTN_DTYPE_I8 ? ks[j] : 1.0f;
        for (int64_t m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int64_t d = 0; d < D; d++) acc += Q[m * ldq + d] * elem(t, kr, d);
            S[j * lds + m] = t == ATTN_DTYPE_I8 ? sc * acc : acc;
        }
        for (int64_t m = M; m < 8; m++) S[j * lds + m] = 0.0f;
    }
}

static void vacc_generic(attn_dtype t, int64_t n, int64_t M, int64_t Dv, const float *P, int64_t ldp, const void *V,
                         const float *vs, float *O, int64_t ldo) {
    for (int64_t j = 0; j < n; j++) {
        const unsigned char *vr = row_at(t, V, j, Dv);
        for (int64_t m = 0; m < M; m++) {
            float p = P[j * ldp + m];
            if (p == 0.0f) continue;
            if (t == ATTN_DTYPE_I8) p *= vs[j];
            for (int64_t e = 0; e < Dv; e++) O[m * ldo + e] += p * elem(t, vr, e);
        }
    }
}

void attn__kv_kernels_generic(attn__kv_kernels *t) {
    t->name = "generic";
    t->kdot = kdot_generic;
    t->vacc = vacc_generic;
}
