/* SPDX-License-Identifier: MIT */
/* overlap.h — do two row-major matrices share a byte? (the exact lattice test of
 * sdpa_validate.c, for the building blocks' aliasing checks) */
#ifndef ATTN_OVERLAP_H
#define ATTN_OVERLAP_H

#include <stdint.h>

/* a: rows_a rows of cols_a floats, ld_a floats apart (likewise b). Empty
 * matrices overlap nothing. Sizes must be validated (no overflow) first. */
int attn__mat_overlap(const float *a, int64_t rows_a, int64_t cols_a, int64_t ld_a, const float *b, int64_t rows_b,
                      int64_t cols_b, int64_t ld_b);

#endif
