/* SPDX-License-Identifier: MIT */
/* matmul.c — public matmul building block (attn.h, "Building blocks"): C = A·B or
 * A·Bᵀ and the gradients to both operands, on the library's GEMM (gemm.c:
 * threaded on attn's pool by a shape-only split, bit-identical whatever the
 * thread count). Every argument is validated before anything is written. */
#include "kernels/gemm.h"
#include "kernels/overlap.h"

#include "core/core.h"

#define BLAS_MAX INT32_MAX /* OpenBLAS's blasint: sizes and leading dimensions */

typedef struct mat {
    const char *name;
    const float *p;
    int64_t rows, cols, ld;
} mat;

static attn_status check_dim(const char *fn, const char *name, int64_t v) {
    if (v < 0 || v > BLAS_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "%s: %s = %lld, must be in [0, 2^31 - 1]", fn, name, (long long)v);
    return ATTN_OK;
}

static attn_status check_mat(const char *fn, const mat *m) {
    const int64_t need = m->cols > 1 ? m->cols : 1;
    if (m->ld < need || m->ld > BLAS_MAX)
        return attn__fail(ATTN_ERR_STRIDE, "%s: ld%s = %lld, must be in [%lld, 2^31 - 1] (%s is %lld x %lld)", fn,
                          m->name, (long long)m->ld, (long long)need, m->name, (long long)m->rows,
                          (long long)m->cols);
    if (m->rows == 0 || m->cols == 0) return ATTN_OK;
    if (!m->p) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL (%lld x %lld)", fn, m->name, (long long)m->rows,
                                 (long long)m->cols);
    const uint64_t bytes = (uint64_t)((m->rows - 1) * m->ld + m->cols) * 4u; /* < 2^64: both factors < 2^31 */
    if (bytes > UINTPTR_MAX - (uintptr_t)m->p)
        return attn__fail(ATTN_ERR_SHAPE, "%s: %s extends past the end of the address space", fn, m->name);
    return ATTN_OK;
}

static int mats_overlap(const mat *a, const mat *b) {
    return attn__mat_overlap(a->p, a->rows, a->cols, a->ld, b->p, b->rows, b->cols, b->ld);
}

/* Validates inputs in[0..nin) and outputs out[0..nout) (NULL outputs skipped). */
static attn_status check_all(const char *fn, const mat *in, int nin, const mat *out, int nout) {
    attn_status s;
    for (int i = 0; i < nin; i++)
        if ((s = check_mat(fn, &in[i])) != ATTN_OK) return s;
    for (int i = 0; i < nout; i++) {
        if (!out[i].p) continue;
        if ((s = check_mat(fn, &out[i])) != ATTN_OK) return s;
        for (int j = 0; j < nin; j++)
            if (mats_overlap(&out[i], &in[j]))
                return attn__fail(ATTN_ERR_ALIAS, "%s: output %s overlaps input %s", fn, out[i].name, in[j].name);
        for (int j = 0; j < i; j++)
            if (out[j].p && mats_overlap(&out[i], &out[j]))
                return attn__fail(ATTN_ERR_ALIAS, "%s: output %s overlaps output %s", fn, out[i].name, out[j].name);
    }
    return ATTN_OK;
}

static attn_status check_sizes(const char *fn, int64_t M, int64_t N, int64_t K, int trans_b) {
    attn_status s;
    if ((s = check_dim(fn, "M", M)) || (s = check_dim(fn, "N", N)) || (s = check_dim(fn, "K", K))) return s;
    if (trans_b != 0 && trans_b != 1)
        return attn__fail(ATTN_ERR_OPTION, "%s: trans_b = %d, must be 0 (B is (K, N)) or 1 (B is (N, K))", fn, trans_b);
    return ATTN_OK;
}

attn_status attn_matmul(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                        int trans_b, float *C, int64_t ldc) {
    static const char fn[] = "attn_matmul";
    attn_status s = check_sizes(fn, M, N, K, trans_b);
    if (s) return s;
    if (!C && M > 0 && N > 0) return attn__fail(ATTN_ERR_NULL, "%s: C is NULL (%lld x %lld)", fn, (long long)M, (long long)N);
    const mat in[2] = {{"A", A, M, K, lda}, {"B", B, trans_b ? N : K, trans_b ? K : N, ldb}};
    const mat out[1] = {{"C", C, M, N, ldc}};
    if ((s = check_all(fn, in, 2, out, 1))) return s;
    attn__sgemm(0, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    return ATTN_OK;
}

attn_status attn_matmul_backward(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                                 int64_t ldb, int trans_b, const float *dC, int64_t lddc, float *dA, int64_t ldda,
                                 float *dB, int64_t lddb) {
    static const char fn[] = "attn_matmul_backward";
    attn_status s = check_sizes(fn, M, N, K, trans_b);
    if (s) return s;
    const int64_t brows = trans_b ? N : K, bcols = trans_b ? K : N;
    /* an operand is needed only for the other one's gradient */
    mat in[3] = {{"dC", dC, M, N, lddc}};
    int nin = 1;
    if (dB) in[nin++] = (mat){"A", A, M, K, lda};
    if (dA) in[nin++] = (mat){"B", B, brows, bcols, ldb};
    const mat out[2] = {{"dA", dA, M, K, ldda}, {"dB", dB, brows, bcols, lddb}};
    if ((s = check_all(fn, in, nin, out, 2))) return s;
    if (dA) { /* dA (M, K) = dC · Bᵀ, or dC · B when B is (N, K) */
        attn__sgemm(0, trans_b ? 0 : 1, M, K, N, 1.0f, dC, lddc, B, ldb, 0.0f, dA, ldda);
    }
    if (dB) {
        if (!trans_b) /* dB (K, N) = Aᵀ · dC */
            attn__sgemm(1, 0, K, N, M, 1.0f, A, lda, dC, lddc, 0.0f, dB, lddb);
        else /* dB (N, K) = dCᵀ · A */
            attn__sgemm(1, 0, N, K, M, 1.0f, dC, lddc, A, lda, 0.0f, dB, lddb);
    }
    return ATTN_OK;
}
