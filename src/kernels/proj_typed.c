/* SPDX-License-Identifier: MIT */
/* proj_typed.c — Y = X W^T with fp32, BF16 or F16 weights (see proj_typed.h).
 *
 * Legend: M rows of X and Y (tokens), N rows of W = columns of Y (output
 * features), K columns of X and W (input features); NB = ATTN__PROJ_PANEL.
 *
 * Why these kernels (measured single-core on the 2-core Zen EPYC with
 * AVX512_BF16, M 512, K 4096, N 6144 / 4096, OpenBLAS 0.3.28 built with
 * BUILD_BFLOAT16 for the measurement): cblas_sbgemm runs 1.94-2.05x cblas_sgemm
 * (2.5x at M 1..16), widening panels of 256 rows and calling sgemm 0.89-0.95x.
 * So sbgemm wherever the linked OpenBLAS has it; Debian's 0.3.21 (the default
 * build's, private or not) is built without BUILD_BFLOAT16 and exports no
 * cblas_sbgemm: CMake probes for it (ATTN_HAVE_SBGEMM) and otherwise only the
 * widening kernel is compiled. F16 has no OpenBLAS GEMM: always widened.
 *
 * Determinism: the panel set (NB rows of W each, the last one shorter) depends
 * on N alone; each panel is one single-threaded BLAS call writing its own
 * columns of Y, its widened copy in the slice of the workspace owned by the
 * thread that runs it. The bf16 copy of X (sbgemm) is elementwise. */
#include "kernels/proj_typed.h"

#include "core/core.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/kv_typed.h"

#include <cblas.h>
#include <string.h>

#define PROJ_ROW_CHUNK 64 /* rows of X per task of the bf16 rounding (sbgemm) */

attn__proj_kernel attn__proj_kernel_for(attn_dtype wdt) {
    if (wdt == ATTN_DTYPE_F32) return ATTN__PROJ_SGEMM;
#ifdef ATTN_HAVE_SBGEMM
    const attn_cpu_features *f = attn__cpu();
    if (wdt == ATTN_DTYPE_BF16 && f->avx512bf16 && f->os_avx512) return ATTN__PROJ_SBGEMM;
#endif
    return ATTN__PROJ_WIDEN;
}

const char *attn__proj_kernel_name(attn__proj_kernel k) {
    return k == ATTN__PROJ_SBGEMM ? "sbgemm" : k == ATTN__PROJ_WIDEN ? "widen" : "sgemm";
}

/* The dot kernel's workspace: Xp (ATTN__PROJ_DOT_MAX_M, round16(K)) fp32, the
 * rows of X zero-padded to whole 16-float chunks and rows M.. zero (what kdot
 * reads), then per thread S (ATTN__KV_MAX_KEYS, ATTN__PROJ_DOT_MAX_M) fp32. */
#define DOT_S_BYTES ((size_t)ATTN__KV_MAX_KEYS * ATTN__PROJ_DOT_MAX_M * sizeof(float))
static int64_t round16(int64_t K) { return (K + 15) / 16 * 16; }
static size_t dot_xpad_bytes(int64_t K, int *ok) {
    return attn__round_up(attn__mul_size(attn__mul_size((size_t)round16(K), ATTN__PROJ_DOT_MAX_M, ok), sizeof(float), ok));
}

size_t attn__proj_workspace_size(attn__proj_kernel k, int64_t M, int64_t N, int64_t K, int nthreads) {
#ifndef ATTN_HAVE_SBGEMM
    if (k == ATTN__PROJ_SBGEMM) k = ATTN__PROJ_WIDEN; /* what attn__proj runs then */
#endif
    int ok = 1;
    size_t bytes = 0;
    if (k == ATTN__PROJ_WIDEN && M <= ATTN__PROJ_DOT_MAX_M) { /* the dot kernel: X padded, then S per thread */
        bytes = dot_xpad_bytes(K, &ok);
        bytes = attn__add_size(bytes, attn__mul_size(DOT_S_BYTES, (size_t)(nthreads < 1 ? 1 : nthreads), &ok), &ok);
    } else if (k == ATTN__PROJ_WIDEN) { /* nthreads slices of (min(NB, N), K) fp32 */
        const int64_t nb = N < ATTN__PROJ_PANEL ? N : ATTN__PROJ_PANEL;
        size_t slice = attn__round_up(attn__mul_size(attn__mul_size((size_t)nb, (size_t)K, &ok), sizeof(float), &ok));
        if (slice == 0 && nb * K > 0) ok = 0;
        bytes = attn__mul_size(slice, (size_t)(nthreads < 1 ? 1 : nthreads), &ok);
    } else if (k == ATTN__PROJ_SBGEMM) { /* X as bf16 (M, K) */
        bytes = attn__round_up(attn__mul_size(attn__mul_size((size_t)M, (size_t)K, &ok), sizeof(uint16_t), &ok));
        if (bytes == 0 && M * K > 0) ok = 0;
    }
    return ok ? bytes : SIZE_MAX;
}

/* Widening and rounding use the sdpa dispatch table's conversions (kernels/dispatch.h:
 * exact widening, nearest-even rounding; vectorised per ISA). */
void attn__widen_16(const uint16_t *src, attn_dtype t, float *dst, int64_t n) {
    attn__sdpa_kernels_get()->to_f32(t, n, src, dst);
}

/* one product: the arguments of attn__proj */
typedef struct proj_ctx {
    int64_t M, N, K, ldx, ldw, ldy;
    const float *X;
    const uint16_t *W;
    attn_dtype wdt;
    float *Y;
    unsigned char *ws;
    size_t slice;          /* widen: bytes of one thread's panel; dot kernel: bytes of Xp (S follows) */
    const uint16_t *Xb;    /* X as bf16 (M, K) (sbgemm) */
} proj_ctx;

/* ─── the dot kernel (widen, M <= ATTN__PROJ_DOT_MAX_M) ──────────────────────
 * Few rows (decoding): a panel sgemm would widen a panel into memory and re-read
 * it for a handful of products per weight. Here the rows of W are read once, in
 * place, by the KV-cache decode kernel kdot (kernels/kv_typed.h: widening in
 * registers, fp32 accumulation along K in a fixed order), ATTN__KV_MAX_KEYS rows
 * of W per call (one when they are not contiguous, ldw != K) against the M padded
 * rows of X; the scores S (rows of W, M) are then scattered into Y. */
static void dot_panel_task(void *vctx, int64_t t, int tid) {
    const proj_ctx *c = (const proj_ctx *)vctx;
    const attn__kv_kernels *kv = attn__kv_kernels_get();
    const int64_t n0 = t * ATTN__PROJ_PANEL, n1 = n0 + ATTN__PROJ_PANEL < c->N ? n0 + ATTN__PROJ_PANEL : c->N;
    const int64_t step = c->ldw == c->K ? ATTN__KV_MAX_KEYS : 1;
    const float *Xp = (const float *)(const void *)c->ws;
    float *S = (float *)(void *)(c->ws + c->slice + (size_t)tid * DOT_S_BYTES); /* (step, ATTN__PROJ_DOT_MAX_M) */
    for (int64_t n = n0; n < n1; n += step) {
        const int64_t nr = n1 - n < step ? n1 - n : step;
        kv->kdot(c->wdt, nr, c->M, c->K, c->W + n * c->ldw, NULL, Xp, round16(c->K), S, ATTN__PROJ_DOT_MAX_M);
        for (int64_t j = 0; j < nr; j++)
            for (int64_t i = 0; i < c->M; i++) c->Y[i * c->ldy + n + j] = S[j * ATTN__PROJ_DOT_MAX_M + i];
    }
}

/* Xp <- X (M, ldx) zero-padded (the dot kernel's layout above). */
static void dot_pad_x(const proj_ctx *c) {
    float *Xp = (float *)(void *)c->ws;
    const int64_t K16 = round16(c->K);
    memset(Xp, 0, (size_t)(ATTN__PROJ_DOT_MAX_M * K16) * sizeof(float));
    for (int64_t i = 0; i < c->M; i++) memcpy(Xp + i * K16, c->X + i * c->ldx, (size_t)c->K * sizeof(float));
}

/* ─── the panel tasks ────────────────────────────────────────────────────── */

static void widen_panel_task(void *vctx, int64_t t, int tid) {
    const proj_ctx *c = (const proj_ctx *)vctx;
    const int64_t n0 = t * ATTN__PROJ_PANEL, nb = c->N - n0 < ATTN__PROJ_PANEL ? c->N - n0 : ATTN__PROJ_PANEL;
    float *panel = (float *)(void *)(c->ws + (size_t)tid * c->slice); /* (nb, K) */
    const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
    for (int64_t r = 0; r < nb; r++) kt->to_f32(c->wdt, c->K, c->W + (n0 + r) * c->ldw, panel + r * c->K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)c->M, (blasint)nb, (blasint)c->K, 1.0f, c->X,
                (blasint)c->ldx, panel, (blasint)c->K, 0.0f, c->Y + n0, (blasint)c->ldy);
}

#ifdef ATTN_HAVE_SBGEMM
static void round_rows_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    const proj_ctx *c = (const proj_ctx *)vctx;
    const int64_t r0 = t * PROJ_ROW_CHUNK, r1 = r0 + PROJ_ROW_CHUNK < c->M ? r0 + PROJ_ROW_CHUNK : c->M;
    uint16_t *xb = (uint16_t *)(void *)c->ws;
    const attn__sdpa_kernels *kt = attn__sdpa_kernels_get();
    for (int64_t r = r0; r < r1; r++) kt->from_f32(ATTN_DTYPE_BF16, c->K, c->X + r * c->ldx, xb + r * c->K);
}

static void sbgemm_panel_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    const proj_ctx *c = (const proj_ctx *)vctx;
    const int64_t n0 = t * ATTN__PROJ_PANEL, nb = c->N - n0 < ATTN__PROJ_PANEL ? c->N - n0 : ATTN__PROJ_PANEL;
    cblas_sbgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)c->M, (blasint)nb, (blasint)c->K, 1.0f,
                 (const bfloat16 *)c->Xb, (blasint)c->K, (const bfloat16 *)(c->W + n0 * c->ldw), (blasint)c->ldw, 0.0f,
                 c->Y + n0, (blasint)c->ldy);
}
#endif

void attn__proj(attn__proj_kernel k, int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx, const void *W,
                attn_dtype wdt, int64_t ldw, float *Y, int64_t ldy, void *ws, int nthreads) {
    if (k == ATTN__PROJ_SGEMM) {
        attn__sgemm(0, 1, M, N, K, 1.0f, X, ldx, (const float *)W, ldw, 0.0f, Y, ldy);
        return;
    }
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++) memset(Y + i * ldy, 0, (size_t)N * sizeof(float));
        return;
    }
    attn__gemm_sync_threads();
    proj_ctx c = {M, N, K, ldx, ldw, ldy, X, (const uint16_t *)W, wdt, Y, (unsigned char *)ws, 0, NULL};
    const int64_t npanel = (N + ATTN__PROJ_PANEL - 1) / ATTN__PROJ_PANEL;
#ifdef ATTN_HAVE_SBGEMM
    if (k == ATTN__PROJ_SBGEMM) {
        attn__parallel_for((M + PROJ_ROW_CHUNK - 1) / PROJ_ROW_CHUNK, nthreads, round_rows_task, &c);
        c.Xb = (const uint16_t *)ws;
        attn__parallel_for(npanel, nthreads, sbgemm_panel_task, &c);
        return;
    }
#endif
    if (M <= ATTN__PROJ_DOT_MAX_M) {
        int ok = 1;
        c.slice = dot_xpad_bytes(K, &ok); /* S follows Xp */
        dot_pad_x(&c);
        attn__parallel_for(npanel, nthreads, dot_panel_task, &c);
        return;
    }
    c.slice = attn__proj_workspace_size(ATTN__PROJ_WIDEN, M, N, K, 1);
    attn__parallel_for(npanel, nthreads, widen_panel_task, &c);
}
