/* SPDX-License-Identifier: MIT */
/* npy.h — internal .npy readers beside the public float one (attn.h
 * attn_npy_read): integer arrays, e.g. the positions of `attn run`.
 *
 * The same validated header parser as attn_npy_read (npy.c); the dtype may
 * also be i1/i2/i4/i8 or u1/u2/u4/u8 (any byte order). Float arrays (f2, f4,
 * f8) are accepted when every element is an integer of magnitude <= 2^53;
 * u8 elements above 2^63 - 1 are refused. The file is read whole (at most
 * NPY_I64_MAX_FILE bytes). */
#ifndef ATTN_IO_NPY_H
#define ATTN_IO_NPY_H

#include "attn.h"

#define NPY_I64_MAX_FILE ((uint64_t)1 << 31)

typedef struct attn_npy_i64 {
    int64_t *data; /* C order, owned (attn__npy_i64_free); NULL when numel == 0 */
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
    int64_t numel;
} attn_npy_i64;

attn_status attn__npy_read_i64(const char *path, attn_npy_i64 *out);
attn_status attn__npy_read_i64_memory(const void *data, size_t size, attn_npy_i64 *out);
void attn__npy_i64_free(attn_npy_i64 *a);

#endif
