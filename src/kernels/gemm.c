/* SPDX-License-Identifier: MIT */
/* gemm.c — see gemm.h.
 *
 * Determinism: OpenBLAS's own threading splits C by the thread count, and
 * its micro-kernels round differently at tile edges, so a threaded sgemm
 * gives different bits for different thread counts (measured on 0.3.21).
 * attn promises bit-identical results whatever the thread count, so large
 * products are split here into a FIXED number of blocks of C (along the
 * larger of M and N; the split depends only on the shape), each computed by
 * a single-threaded cblas_sgemm on the library's thread pool. The cost is re-packing the shared operand once per
 * block: blocks of >= 768 rows / columns, i.e. >= 1536 flops per packed
 * float (measured single-core overhead vs one call: 1-6%).
 *
 * Whose OpenBLAS: built with ATTN_PRIVATE_BLAS (the default when libopenblas.a
 * is installed; see CMakeLists.txt) the cblas_* and openblas_* calls here bind
 * to a private copy linked into libattn with its symbols made local, so
 * keeping it at one thread changes nothing for the process's own OpenBLAS
 * (NumPy, PyTorch, the host program). Without it they bind to the process's
 * OpenBLAS, which attn then never reconfigures: its thread count is the host's
 * choice (one thread keeps results independent of everything; more threads
 * make OpenBLAS split each block itself, and its bits depend on its count). */
#include "kernels/gemm.h"

#include "core/core.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>

static _Atomic int g_blas_threads = 0; /* last value given to the private openblas_set_num_threads (0 = never) */

void attn__gemm_sync_threads(void) {
#ifdef ATTN_PRIVATE_BLAS
    if (atomic_load_explicit(&g_blas_threads, memory_order_relaxed) != 1) {
        openblas_set_num_threads(1);
        atomic_store_explicit(&g_blas_threads, 1, memory_order_relaxed);
    }
#else
    (void)g_blas_threads; /* the process's OpenBLAS: its settings are not attn's to change */
#endif
}

typedef struct gemm_ctx {
    int trans_a, trans_b;
    int64_t M, N, K, lda, ldb, ldc, blk;
    int split_m;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_ctx;

static void one(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

static void gemm_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    const gemm_ctx *g = (const gemm_ctx *)vctx;
    if (g->split_m) {
        int64_t r0 = t * g->blk, r1 = r0 + g->blk > g->M ? g->M : r0 + g->blk;
        const float *A = g->trans_a ? g->A + r0 : g->A + r0 * g->lda; /* A (M, K) or A^T stored (K, M) */
        one(g->trans_a, g->trans_b, r1 - r0, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta, g->C + r0 * g->ldc,
            g->ldc);
    } else {
        int64_t c0 = t * g->blk, c1 = c0 + g->blk > g->N ? g->N : c0 + g->blk;
        const float *B = g->trans_b ? g->B + c0 * g->ldb : g->B + c0; /* B (K, N) or B^T stored (N, K) */
        one(g->trans_a, g->trans_b, g->M, c1 - c0, g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta, g->C + c0, g->ldc);
    }
}

#define GEMM_MAX_BLOCKS 64
#define GEMM_MIN_BLOCK 768
#define GEMM_MIN_FLOPS (1 << 22)
/* Products with both M and N < 2 * GEMM_MIN_BLOCK but a long K (a weight
 * gradient dW = dY^T X over many tokens: 1024 x 1024 x 8192) would run as
 * one block on one thread; above this many flops they are split into blocks
 * of >= GEMM_MIN_BLOCK_LONG_K rows / columns instead (measured for that
 * product: 35.7 -> 68 GFLOP/s on 2 cores, the re-packing notwithstanding). */
#define GEMM_LONG_K_FLOPS ((double)(1 << 30))
#define GEMM_MIN_BLOCK_LONG_K 256

void attn__sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    attn__gemm_sync_threads();
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    const int split_m = M >= N;
    const int64_t dim = split_m ? M : N;
    int64_t nblk = dim / GEMM_MIN_BLOCK;
    if (nblk < 2 && flops >= GEMM_LONG_K_FLOPS) nblk = dim / GEMM_MIN_BLOCK_LONG_K;
    if (nblk > GEMM_MAX_BLOCKS) nblk = GEMM_MAX_BLOCKS;
    if (flops < GEMM_MIN_FLOPS || nblk <= 1) {
        one(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int64_t blk = (dim + nblk - 1) / nblk;
    blk = (blk + 15) & ~(int64_t)15; /* block edges on 16-row/column boundaries */
    nblk = (dim + blk - 1) / blk;
    gemm_ctx g = {trans_a, trans_b, M, N, K, lda, ldb, ldc, blk, split_m, alpha, beta, A, B, C};
    attn__parallel_for(nblk, 0, gemm_task, &g);
}
