/* SPDX-License-Identifier: MIT */
/* fuzz_npy.c — libFuzzer target for the .npy reader (attn_npy_read_memory). */
#include "core/core.h"
#include "io/npy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) do { if (!(c)) abort(); } while (0)
#endif

/* the integer reader (io/npy.h) on the same bytes: the same header checks */
static void fuzz_npy_i64(const uint8_t *data, size_t size) {
    attn_npy_i64 a;
    memset(&a, 0, sizeof a);
    if (attn__npy_read_i64_memory(data, size, &a) != ATTN_OK) {
        FUZZ_CHECK(a.data == NULL && attn_last_error()[0] != 0);
        return;
    }
    FUZZ_CHECK(a.ndim >= 0 && a.ndim <= ATTN_MAX_DIMS);
    FUZZ_CHECK((uint64_t)a.numel <= size); /* at least 1 byte per element was present */
    FUZZ_CHECK((a.numel == 0) == (a.data == NULL));
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < a.numel; i++) sink += (uint64_t)a.data[i]; /* every element is readable */
    (void)sink;
    attn__npy_i64_free(&a);
}

static int fuzz_npy_one(const uint8_t *data, size_t size) {
    fuzz_npy_i64(data, size);
    attn_npy a;
    memset(&a, 0, sizeof a);
    attn_status s = attn_npy_read_memory(data, size, &a);
    if (s != ATTN_OK) {
        FUZZ_CHECK(a.data == NULL && attn_last_error()[0] != 0);
        return 0;
    }
    FUZZ_CHECK(a.ndim >= 0 && a.ndim <= ATTN_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < a.ndim; i++) {
        FUZZ_CHECK(a.shape[i] >= 0);
        if (a.shape[i] == 0) numel = 0;
    }
    if (numel) {
        numel = 1;
        for (int i = 0; i < a.ndim; i++) numel *= a.shape[i]; /* cannot overflow: checked by the reader */
    }
    FUZZ_CHECK(numel == a.numel);
    FUZZ_CHECK((uint64_t)a.numel * 2 <= size); /* at least 2 bytes per element were present */
    FUZZ_CHECK((a.numel == 0) == (a.data == NULL));
    volatile float sink = 0;
    for (int64_t i = 0; i < a.numel; i++) sink += a.data[i]; /* every element is readable */
    (void)sink;
    attn_npy_free(&a);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_npy_one(data, size); }
#endif
