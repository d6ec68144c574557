/* SPDX-License-Identifier: MIT */
/* rmsnorm.h — per-head RMSNorm with a learned weight (QK-norm, Qwen3 style).
 *
 * For each head vector x (D):
 *   rstd = 1 / sqrt(mean(x^2) + eps),  xhat = x * rstd,  y = xhat * w
 * Backward, given dy (D):
 *   dw += dy * xhat
 *   g = dy * w;  dx = rstd * (g - xhat * mean(g * xhat))
 * Accumulation in fp32 with a float64 sum of squares (D <= 256). */
#ifndef ATTN_RMSNORM_H
#define ATTN_RMSNORM_H

#include <stdint.h>

/* One token, in place: x (H, D), head h at x + h * head_stride.
 *   w (D) weight; xhat (H, D) out contiguous, or NULL (inference);
 *   rstd (H) out, or NULL. */
void attn__rmsnorm_fwd_row(float *x, int64_t H, int64_t head_stride, int64_t D, const float *w, float eps,
                           float *xhat, float *rstd);

/* One token, in place: dy (H, D) -> dx, head h at dy + h * head_stride.
 *   xhat (H, D), rstd (H) saved by the forward; w (D);
 *   dw (D) accumulated (+=) — may be NULL (frozen weight). */
void attn__rmsnorm_bwd_row(float *dy, int64_t H, int64_t head_stride, int64_t D, const float *w,
                           const float *xhat, const float *rstd, float *dw);

#endif
