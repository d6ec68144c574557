/* gemm.c — see gemm.h. */
#include "kernels/gemm.h"

#include "core/core.h"

#include <cblas.h>
#include <stdatomic.h>

static _Atomic int g_blas_threads = 0; /* last value given to openblas_set_num_threads (0 = never) */

void attn__gemm_sync_threads(void) {
    int want = attn_get_num_threads();
    if (atomic_load_explicit(&g_blas_threads, memory_order_relaxed) != want) {
        openblas_set_num_threads(want);
        atomic_store_explicit(&g_blas_threads, want, memory_order_relaxed);
    }
}

void attn__sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    attn__gemm_sync_threads();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
}
