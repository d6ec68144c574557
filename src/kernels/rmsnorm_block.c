/* SPDX-License-Identifier: MIT */
/* rmsnorm_block.c — public RMSNorm building block (attn.h, "Building blocks"):
 * rows of any width, forward and backward, on the row functions of rmsnorm.c.
 * Rows are split into a fixed, shape-only set of chunks run on attn's pool;
 * the weight gradient sums one partial per chunk in chunk order, so results
 * are bit-identical whatever the thread count. */
#include "kernels/overlap.h"
#include "kernels/rmsnorm.h"

#include "core/core.h"

#include <math.h>
#include <string.h>

#define ROWS_PER_CHUNK 32
#define MAX_CHUNKS 64

typedef struct rn_ctx {
    int64_t N, D, ldx, ldy, lddy, lddx, rows; /* rows per chunk */
    const float *x, *w, *dy;
    float eps;
    float *y, *rstd, *dx;
    float *scratch;   /* (nthreads, 2, D): a row copy and its xhat */
    float *dw_part;   /* (nchunks, D) or NULL */
} rn_ctx;

static void fwd_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    const rn_ctx *c = (const rn_ctx *)vctx;
    const int64_t r1 = (t + 1) * c->rows < c->N ? (t + 1) * c->rows : c->N;
    for (int64_t n = t * c->rows; n < r1; n++) {
        float *yr = c->y + n * c->ldy;
        memcpy(yr, c->x + n * c->ldx, (size_t)c->D * sizeof(float));
        attn__rmsnorm_fwd_row(yr, 1, c->D, c->D, c->w, c->eps, NULL, c->rstd ? c->rstd + n : NULL);
    }
}

static void bwd_task(void *vctx, int64_t t, int tid) {
    const rn_ctx *c = (const rn_ctx *)vctx;
    float *copy = c->scratch + (size_t)tid * 2 * (size_t)c->D, *xhat = copy + c->D;
    float *dw = c->dw_part ? c->dw_part + t * c->D : NULL;
    if (dw) memset(dw, 0, (size_t)c->D * sizeof(float));
    const int64_t r1 = (t + 1) * c->rows < c->N ? (t + 1) * c->rows : c->N;
    for (int64_t n = t * c->rows; n < r1; n++) {
        float r;
        memcpy(copy, c->x + n * c->ldx, (size_t)c->D * sizeof(float));
        attn__rmsnorm_fwd_row(copy, 1, c->D, c->D, c->w, c->eps, xhat, &r); /* xhat, rstd as the forward's */
        float *g = c->dx + n * c->lddx;
        memcpy(g, c->dy + n * c->lddy, (size_t)c->D * sizeof(float));
        attn__rmsnorm_bwd_row(g, 1, c->D, c->D, c->w, xhat, &r, dw);
    }
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

typedef struct vec { const char *name; const float *p; int64_t rows, cols, ld; } vec;

static attn_status check_vec(const char *fn, const vec *v) {
    if (v->ld < v->cols)
        return attn__fail(ATTN_ERR_STRIDE, "%s: ld%s = %lld, must be >= D = %lld", fn, v->name, (long long)v->ld,
                          (long long)v->cols);
    if (v->rows == 0 || v->cols == 0) return ATTN_OK;
    if (!v->p) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, v->name);
    int64_t ext;
    if (__builtin_mul_overflow(v->rows - 1, v->ld, &ext) || __builtin_add_overflow(ext, v->cols, &ext) ||
        ext > ((int64_t)1 << 60) || (uint64_t)ext * 4u > UINTPTR_MAX - (uintptr_t)v->p)
        return attn__fail(ATTN_ERR_SHAPE, "%s: %s (%lld rows, ld %lld) extends past the address space", fn, v->name,
                          (long long)v->rows, (long long)v->ld);
    return ATTN_OK;
}

/* Shapes, eps, pointers, strides, aliasing of outputs against inputs and each other. */
static attn_status check(const char *fn, int64_t N, int64_t D, float eps, const vec *in, int nin, const vec *out,
                         int nout) {
    if (N < 0 || N > ((int64_t)1 << 40))
        return attn__fail(ATTN_ERR_SHAPE, "%s: N = %lld, must be in [0, 2^40]", fn, (long long)N);
    if (D < 1 || D > ((int64_t)1 << 24))
        return attn__fail(ATTN_ERR_SHAPE, "%s: D = %lld, must be in [1, 2^24]", fn, (long long)D);
    if (!(isfinite(eps) && eps > 0.0f))
        return attn__fail(ATTN_ERR_OPTION, "%s: eps = %g, must be finite and > 0", fn, (double)eps);
    attn_status s;
    for (int i = 0; i < nin; i++)
        if ((s = check_vec(fn, &in[i])) != ATTN_OK) return s;
    for (int i = 0; i < nout; i++) {
        if (!out[i].p) continue;
        if ((s = check_vec(fn, &out[i])) != ATTN_OK) return s;
        for (int j = 0; j < nin; j++)
            if (attn__mat_overlap(out[i].p, out[i].rows, out[i].cols, out[i].ld, in[j].p, in[j].rows, in[j].cols,
                                  in[j].ld))
                return attn__fail(ATTN_ERR_ALIAS, "%s: output %s overlaps input %s", fn, out[i].name, in[j].name);
        for (int j = 0; j < i; j++)
            if (out[j].p && attn__mat_overlap(out[i].p, out[i].rows, out[i].cols, out[i].ld, out[j].p,
                                              out[j].rows, out[j].cols, out[j].ld))
                return attn__fail(ATTN_ERR_ALIAS, "%s: output %s overlaps output %s", fn, out[i].name, out[j].name);
    }
    return ATTN_OK;
}

static int64_t chunk_rows(int64_t N) {
    int64_t rows = ROWS_PER_CHUNK;
    if (ceil_div(N, rows) > MAX_CHUNKS) rows = ceil_div(N, MAX_CHUNKS);
    return rows;
}

attn_status attn_rmsnorm_fwd(int64_t N, int64_t D, const float *x, int64_t ldx, const float *w, float eps, float *y,
                             int64_t ldy, float *rstd) {
    static const char fn[] = "attn_rmsnorm_fwd";
    const vec in[2] = {{"x", x, N, D, ldx}, {"w", w, N > 0, D, D}};
    const vec out[2] = {{"y", y, N, D, ldy}, {"rstd", rstd, 1, N, N}};
    attn_status s = check(fn, N, D, eps, in, 2, out, 2);
    if (s) return s;
    if (!y && N > 0) return attn__fail(ATTN_ERR_NULL, "%s: y is NULL", fn);
    if (N == 0) return ATTN_OK;
    rn_ctx c = {N, D, ldx, ldy, 0, 0, chunk_rows(N), x, w, NULL, eps, y, rstd, NULL, NULL, NULL};
    attn__parallel_for(ceil_div(N, c.rows), 0, fwd_task, &c);
    return ATTN_OK;
}

attn_status attn_rmsnorm_bwd(int64_t N, int64_t D, const float *x, int64_t ldx, const float *w, float eps,
                             const float *dy, int64_t lddy, float *dx, int64_t lddx, float *dw) {
    static const char fn[] = "attn_rmsnorm_bwd";
    const vec in[3] = {{"x", x, N, D, ldx}, {"w", w, 1, D, D}, {"dy", dy, N, D, lddy}};
    const vec out[2] = {{"dx", dx, N, D, lddx}, {"dw", dw, 1, D, D}};
    attn_status s = check(fn, N, D, eps, in, 3, out, 2);
    if (s) return s;
    if (!dx && N > 0) return attn__fail(ATTN_ERR_NULL, "%s: dx is NULL", fn);
    if (N == 0) {
        if (dw) memset(dw, 0, (size_t)D * sizeof(float));
        return ATTN_OK;
    }
    const int64_t rows = chunk_rows(N), nchunks = ceil_div(N, rows);
    const int nthreads = attn__resolve_threads(0);
    float *scratch = (float *)attn__calloc((size_t)nthreads * 2 * (size_t)D, sizeof(float));
    float *part = dw ? (float *)attn__calloc((size_t)nchunks * (size_t)D, sizeof(float)) : NULL;
    if (!scratch || (dw && !part)) {
        attn__free(scratch);
        attn__free(part);
        return attn__fail(ATTN_ERR_NOMEM, "%s: cannot allocate scratch for D = %lld", fn, (long long)D);
    }
    rn_ctx c = {N, D, ldx, 0, lddy, lddx, rows, x, w, dy, eps, NULL, NULL, dx, scratch, part};
    attn__parallel_for(nchunks, nthreads, bwd_task, &c);
    if (dw)
        for (int64_t d = 0; d < D; d++) { /* chunk partials in chunk order */
            double acc = 0.0;
            for (int64_t t = 0; t < nchunks; t++) acc += (double)part[t * D + d];
            dw[d] = (float)acc;
        }
    attn__free(scratch);
    attn__free(part);
    return ATTN_OK;
}
