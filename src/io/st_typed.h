/* SPDX-License-Identifier: MIT */
/* st_typed.h — internal: safetensors tensors read as 16-bit float bits, for
 * layers that hold BF16 / F16 weights (layer/params_io.c). Not installed. */
#ifndef ATTN_IO_ST_TYPED_H
#define ATTN_IO_ST_TYPED_H

#include "attn.h"

#include <stdint.h>

/* attn_st_read_f32 into dst (dst_numel) of type dt (ATTN_DTYPE_BF16 or F16), with
 * the same shape checks: a tensor of type dt is copied bit for bit; F32, F16 and
 * BF16 tensors of another type are rounded once to nearest even; a finite value
 * that overflows F16 is ATTN_ERR_DTYPE (naming the tensor, the element and its
 * value); F64 is ATTN_ERR_DTYPE. dst may be partly written on error. */
attn_status attn__st_read_16(const attn_st *st, const char *name, uint16_t *dst, attn_dtype dt, int64_t dst_numel,
                             int ndim, const int64_t *shape);

#endif
