/* SPDX-License-Identifier: MIT */
/* gemm.h — thin wrapper over CBLAS sgemm (OpenBLAS), row-major only.
 *
 *   C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
 *   op(X) = X or X^T; A is stored (M, K) row-major with leading dimension lda
 *   when trans_a == 0, else (K, M); likewise B is (K, N) or (N, K).
 *
 * Large products run on the library's thread pool (attn_get_num_threads())
 * as a fixed, shape-only split of C into blocks, each a single-threaded
 * OpenBLAS call: results are bit-identical whatever the thread count (see
 * gemm.c). M, N or K == 0 are handled (C scaled by beta, or untouched when M
 * or N is 0). */
#ifndef ATTN_GEMM_H
#define ATTN_GEMM_H

#include <stdint.h>

void attn__sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Keeps attn's private OpenBLAS single-threaded (the split above does the
 * threading); a no-op without ATTN_PRIVATE_BLAS (the process's OpenBLAS is left alone). */
void attn__gemm_sync_threads(void);

#endif
