/* SPDX-License-Identifier: MIT */
/* fuzz_safetensors.c — libFuzzer target for the safetensors reader:
 * attn_st_open_memory, then every query and a read of every tensor, as fp32
 * and as BF16 / F16 bits (the 16-bit-weight layer's reader, io/st_typed.h),
 * which must agree with the fp32 read wherever both succeed. */
#include "core/core.h"
#include "io/half.h"
#include "io/st_typed.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) do { if (!(c)) abort(); } while (0)
#endif

/* The tensor read as BF16 and as F16 bits: refused only for F64 or an F16
 * overflow; otherwise each element is the fp32 read (ref) rounded to the type
 * (a tensor of that type: its bits; rounding ref, an exact widening of them,
 * gives them back; NaN compared as NaN). */
static void check_read_16(const attn_st *st, const attn_tensor_info *ti, const float *ref) {
    uint16_t *h = (uint16_t *)malloc((size_t)(ti->numel ? ti->numel : 1) * sizeof(uint16_t));
    if (!h) return;
    const attn_dtype types[2] = {ATTN_DTYPE_BF16, ATTN_DTYPE_F16};
    for (int t = 0; t < 2; t++) {
        attn_status s = attn__st_read_16(st, ti->name, h, types[t], ti->numel, ti->ndim, ti->shape);
        if (ti->dtype == ATTN_DTYPE_F64) {
            FUZZ_CHECK(s == ATTN_ERR_DTYPE);
            continue;
        }
        if (s == ATTN_ERR_DTYPE) { /* only an F16 overflow of a finite value */
            int over = 0;
            for (int64_t i = 0; i < ti->numel; i++) over |= isfinite(ref[i]) && fabsf(ref[i]) >= 65520.0f;
            FUZZ_CHECK(types[t] == ATTN_DTYPE_F16 && ti->dtype != ATTN_DTYPE_F16 && over);
            continue;
        }
        FUZZ_CHECK(s == ATTN_OK);
        for (int64_t i = 0; i < ti->numel; i++) {
            const float w = types[t] == ATTN_DTYPE_BF16 ? attn__bf16_to_f32(h[i]) : attn__f16_to_f32(h[i]);
            const uint16_t want = types[t] == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(ref[i]) : attn__f32_to_f16(ref[i]);
            FUZZ_CHECK(h[i] == want || (isnan(w) && isnan(ref[i])));
        }
    }
    free(h);
}

static int fuzz_st_one(const uint8_t *data, size_t size) {
    attn_st *st = NULL;
    attn_status s = attn_st_open_memory(&st, data, size);
    if (s != ATTN_OK) {
        FUZZ_CHECK(st == NULL && attn_last_error()[0] != 0);
        return 0;
    }
    int64_t n = attn_st_count(st);
    FUZZ_CHECK(n >= 0 && (uint64_t)n <= size);
    const char *prev = NULL;
    for (int64_t i = 0; i < n; i++) {
        attn_tensor_info ti, tf;
        FUZZ_CHECK(attn_st_info(st, i, &ti) == ATTN_OK);
        FUZZ_CHECK(ti.name && ti.name[0]);
        if (prev) FUZZ_CHECK(strcmp(prev, ti.name) < 0); /* sorted, unique */
        prev = ti.name;
        FUZZ_CHECK(attn_st_find(st, ti.name, &tf) == ATTN_OK && tf.name == ti.name);
        FUZZ_CHECK(ti.ndim >= 0 && ti.ndim <= ATTN_MAX_DIMS && ti.numel >= 0);
        int convertible = ti.dtype == ATTN_DTYPE_F32 || ti.dtype == ATTN_DTYPE_F16 || ti.dtype == ATTN_DTYPE_BF16 ||
                          ti.dtype == ATTN_DTYPE_F64;
        if (convertible) FUZZ_CHECK((uint64_t)ti.numel * 2 <= size); /* the data is really there */
        float *dst = (float *)malloc((size_t)(convertible && ti.numel ? ti.numel : 1) * sizeof(float));
        if (!dst) continue;
        s = attn_st_read_f32(st, ti.name, dst, ti.numel, ti.ndim, ti.shape);
        FUZZ_CHECK(convertible ? s == ATTN_OK : s == ATTN_ERR_DTYPE);
        if (ti.ndim > 0) { /* a wrong expected shape is refused before anything is read */
            int64_t bad[ATTN_MAX_DIMS];
            memcpy(bad, ti.shape, sizeof bad);
            bad[0] += 1;
            FUZZ_CHECK(attn_st_read_f32(st, ti.name, dst, ti.numel, ti.ndim, bad) == ATTN_ERR_SHAPE);
        }
        if (s == ATTN_OK) check_read_16(st, &ti, dst);
        free(dst);
    }
    int64_t nm = attn_st_metadata_count(st);
    FUZZ_CHECK(nm >= 0 && (uint64_t)nm <= size);
    const char *pk = NULL;
    for (int64_t i = 0; i < nm; i++) {
        const char *k = NULL, *v = NULL;
        FUZZ_CHECK(attn_st_metadata_entry(st, i, &k, &v) == ATTN_OK && k && v);
        if (pk) FUZZ_CHECK(strcmp(pk, k) < 0); /* sorted, unique */
        pk = k;
        FUZZ_CHECK(attn_st_metadata(st, k) == v);
        (void)strlen(v);
    }
    FUZZ_CHECK(attn_st_metadata_entry(st, nm, NULL, NULL) == ATTN_ERR_NOT_FOUND);
    FUZZ_CHECK(attn_st_find(st, "", NULL) == ATTN_ERR_NOT_FOUND);
    attn_tensor_info ti;
    FUZZ_CHECK(attn_st_info(st, n, &ti) == ATTN_ERR_NOT_FOUND);
    attn_st_free(st);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_st_one(data, size); }
#endif
