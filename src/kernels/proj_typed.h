/* SPDX-License-Identifier: MIT */
/* proj_typed.h — the layer's projection product with fp32, BF16 or F16 weights:
 *
 *   Y (M, N) = X (M, K) W^T,   X, Y fp32 row-major (leading dims ldx, ldy),
 *                              W (N, K) row-major of type wdt (leading dim ldw).
 *
 * Kernels (proj_typed.c; attn.h "Mixed precision" is the contract):
 *   SGEMM   wdt F32: attn__sgemm (kernels/gemm.h), nothing else.
 *   SBGEMM  wdt BF16, an OpenBLAS with cblas_sbgemm (ATTN_HAVE_SBGEMM) and a CPU with
 *           AVX512_BF16: X rounded to bf16 once (workspace), then one cblas_sbgemm per panel.
 *   WIDEN   otherwise: each panel of W widened (exactly) into the calling thread's fp32
 *           slice of the workspace, then one cblas_sgemm per panel; with M <=
 *           ATTN__PROJ_DOT_MAX_M (decoding) each row of W widened into a K-float
 *           slice and dotted with the rows of X instead (no panel round trip).
 * A panel is ATTN__PROJ_PANEL consecutive rows of W (output columns of Y); the panel
 * set depends on N only, and every panel is one single-threaded BLAS call on attn's
 * pool: results are bit-identical at any thread count. */
#ifndef ATTN_KERNELS_PROJ_TYPED_H
#define ATTN_KERNELS_PROJ_TYPED_H

#include "attn.h"

#include <stddef.h>
#include <stdint.h>

#define ATTN__PROJ_PANEL 256 /* rows of W per panel (fixed: determinism) */
#define ATTN__PROJ_DOT_MAX_M 8 /* widen: up to this many rows of X by dot products */

typedef enum attn__proj_kernel { ATTN__PROJ_SGEMM = 0, ATTN__PROJ_SBGEMM = 1, ATTN__PROJ_WIDEN = 2 } attn__proj_kernel;

/* The kernel that weights of type wdt (F32, BF16, F16) take in this build on this CPU. */
attn__proj_kernel attn__proj_kernel_for(attn_dtype wdt);
const char *attn__proj_kernel_name(attn__proj_kernel k); /* "sgemm", "sbgemm", "widen" */

/* Workspace bytes of kernel k for these sizes on nthreads (>= 1) threads (0: none needed),
 * or SIZE_MAX if the size overflows. */
size_t attn__proj_workspace_size(attn__proj_kernel k, int64_t M, int64_t N, int64_t K, int nthreads);

/* Y = X W^T by kernel k (sizes >= 0, unchecked: internal; k must suit wdt, and SBGEMM
 * must be available, see attn__proj_kernel_for). ws: attn__proj_workspace_size(k, ...,
 * nthreads) bytes, 64-byte aligned (NULL if that is 0); nthreads as given there. */
void attn__proj(attn__proj_kernel k, int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx, const void *W,
                attn_dtype wdt, int64_t ldw, float *Y, int64_t ldy, void *ws, int nthreads);

/* dst (n) = src (n) of type t (BF16 or F16) widened to fp32, exactly (attn__bf16_to_f32 /
 * attn__f16_to_f32 bit for bit, except that a signalling f16 NaN may come out quiet, as
 * vcvtph2ps makes it): the active ISA's conversion (kernels/dispatch.h). */
void attn__widen_16(const uint16_t *src, attn_dtype t, float *dst, int64_t n);

#endif
