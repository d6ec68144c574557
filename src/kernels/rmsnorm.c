/* SPDX-License-Identifier: MIT */
/* rmsnorm.c — see rmsnorm.h. */
#include "kernels/rmsnorm.h"

#include <math.h>
#include <stddef.h>

void attn__rmsnorm_fwd_row(float *x, int64_t H, int64_t head_stride, int64_t D, const float *w, float eps,
                           float *xhat, float *rstd) {
    for (int64_t h = 0; h < H; h++) {
        float *xh = x + h * head_stride;
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++) ss += (double)xh[d] * (double)xh[d];
        float r = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        if (rstd) rstd[h] = r;
        float *xo = xhat ? xhat + h * D : NULL;
        for (int64_t d = 0; d < D; d++) {
            float n = xh[d] * r;
            if (xo) xo[d] = n;
            xh[d] = n * w[d];
        }
    }
}

void attn__rmsnorm_bwd_row(float *dy, int64_t H, int64_t head_stride, int64_t D, const float *w,
                           const float *xhat, const float *rstd, float *dw) {
    for (int64_t h = 0; h < H; h++) {
        float *g = dy + h * head_stride;
        const float *xn = xhat + h * D;
        float dot = 0.0f;
        for (int64_t d = 0; d < D; d++) {
            if (dw) dw[d] += g[d] * xn[d];
            dot += g[d] * w[d] * xn[d];
        }
        const float mean = dot / (float)D, r = rstd[h];
        for (int64_t d = 0; d < D; d++) g[d] = r * (g[d] * w[d] - xn[d] * mean);
    }
}
