/* SPDX-License-Identifier: MIT */
/* kv_typed.c — KV cache row conversions (fp32 <-> bf16 / f16 / int8 + scale)
 * and the per-ISA table of the typed decode kernels (see kv_typed.h). */
#include "kernels/kv_typed.h"

#include "core/core.h"
#include "io/half.h"

#include <math.h>
#include <pthread.h>

size_t attn__kv_elem_size(attn_dtype t) {
    switch (t) {
    case ATTN_DTYPE_F32: return 4;
    case ATTN_DTYPE_BF16: return 2;
    case ATTN_DTYPE_F16: return 2;
    case ATTN_DTYPE_I8: return 1;
    default: return 0;
    }
}

const char *attn__kv_dtype_name(attn_dtype t) {
    switch (t) {
    case ATTN_DTYPE_F32: return "f32";
    case ATTN_DTYPE_BF16: return "bf16";
    case ATTN_DTYPE_F16: return "f16";
    case ATTN_DTYPE_I8: return "int8";
    default: return "unknown";
    }
}

/* Symmetric int8: scale = max|x| / 127, q = rint(x / scale) (ties to even
 * in the default rounding mode, which the library never changes). */
static void put_i8(int8_t *q, float *scale, const float *x, int64_t D) {
    float a = 0.0f;
    int finite = 1;
    for (int64_t d = 0; d < D; d++) {
        finite &= x[d] - x[d] == 0.0f;
        a = fmaxf(a, fabsf(x[d]));
    }
    if (!finite || a == 0.0f) {
        *scale = finite ? 0.0f : NAN;
        for (int64_t d = 0; d < D; d++) q[d] = 0;
        return;
    }
    const float s = a / 127.0f;
    *scale = s;
    for (int64_t d = 0; d < D; d++) {
        float r = rintf(x[d] / s);
        r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
        q[d] = (int8_t)r;
    }
}

void attn__kv_put_row(attn_dtype t, void *dst, float *scale, const float *x, int64_t D) {
    switch (t) {
    case ATTN_DTYPE_BF16:
        for (int64_t d = 0; d < D; d++) ((uint16_t *)dst)[d] = attn__f32_to_bf16(x[d]);
        break;
    case ATTN_DTYPE_F16:
        for (int64_t d = 0; d < D; d++) ((uint16_t *)dst)[d] = attn__f32_to_f16(x[d]);
        break;
    case ATTN_DTYPE_I8: put_i8((int8_t *)dst, scale, x, D); break;
    default: memcpy(dst, x, (size_t)D * sizeof(float)); break;
    }
}

void attn__kv_get_row(attn_dtype t, const void *src, float scale, float *x, int64_t D) {
    switch (t) {
    case ATTN_DTYPE_BF16:
        for (int64_t d = 0; d < D; d++) x[d] = attn__bf16_to_f32(((const uint16_t *)src)[d]);
        break;
    case ATTN_DTYPE_F16:
        for (int64_t d = 0; d < D; d++) x[d] = attn__f16_to_f32(((const uint16_t *)src)[d]);
        break;
    case ATTN_DTYPE_I8:
        for (int64_t d = 0; d < D; d++) x[d] = (float)((const int8_t *)src)[d] * scale;
        break;
    default: memcpy(x, src, (size_t)D * sizeof(float)); break;
    }
}

void attn__kv_unpair(int64_t M, int64_t Dv, float *O, int64_t ldo) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t g = 0; g < Dv; g += 32) {
            float *o = O + m * ldo + g, t[32];
            for (int L = 0; L < 4; L++)
                for (int i = 0; i < 4; i++) {
                    t[8 * L + i] = o[4 * L + i];
                    t[8 * L + 4 + i] = o[16 + 4 * L + i];
                }
            memcpy(o, t, sizeof t);
        }
}

/* ─── the per-ISA tables (as dispatch.c builds the sdpa ones) ────────────── */

static attn__kv_kernels g_tables[ATTN_ISA_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void build(void) {
    attn__kv_kernels t = {0};
    attn__kv_kernels_generic(&t);
    g_tables[ATTN_ISA_GENERIC] = t;
    attn__kv_kernels_avx2(&t);
    g_tables[ATTN_ISA_AVX2] = t;
    attn__kv_kernels_avx512(&t);
    if (attn__cpu()->avx512bf16) attn__kv_kernels_avx512_bf16(&t);
    if (attn__cpu()->avx512vnni) attn__kv_kernels_avx512_vnni(&t);
    g_tables[ATTN_ISA_AVX512] = t;
}

const attn__kv_kernels *attn__kv_kernels_for(attn_isa isa) {
    pthread_once(&g_once, build);
    if ((int)isa < 0) isa = ATTN_ISA_GENERIC;
    if (isa >= ATTN_ISA_COUNT) isa = ATTN_ISA_AVX512;
    if (isa > attn_isa_detected()) isa = attn_isa_detected();
    return &g_tables[isa];
}

const attn__kv_kernels *attn__kv_kernels_get(void) { return attn__kv_kernels_for(attn_isa_active()); }
