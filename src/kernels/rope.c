/* SPDX-License-Identifier: MIT */
/* rope.c — see rope.h. */
#include "kernels/rope.h"

#include "attn.h"

#include <math.h>

void attn__rope_inv_freq(const attn_rope_cfg *c, double *inv_freq) {
    const int64_t half = c->rope_dim / 2;
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < half; i++) {
        double f = pow(c->theta, -(double)(2 * i) / (double)c->rope_dim);
        if (c->scaling == ATTN_ROPE_SCALING_LINEAR) {
            f /= c->factor;
        } else if (c->scaling == ATTN_ROPE_SCALING_LLAMA3) {
            const double low_wavelen = c->original_max_pos / c->low_freq_factor;
            const double high_wavelen = c->original_max_pos / c->high_freq_factor;
            const double wavelen = two_pi / f;
            if (wavelen < high_wavelen) {
                /* high frequency: unchanged */
            } else if (wavelen > low_wavelen) {
                f /= c->factor;
            } else {
                double smooth = (c->original_max_pos / wavelen - c->low_freq_factor) /
                                (c->high_freq_factor - c->low_freq_factor);
                f = (1.0 - smooth) * f / c->factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

void attn__rope_tables(const double *inv_freq, int64_t half, const int64_t *pos, int64_t ntok, float *cos_t,
                       float *sin_t) {
    for (int64_t t = 0; t < ntok; t++) {
        const double p = (double)pos[t];
        float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int64_t i = 0; i < half; i++) {
            double a = p * inv_freq[i];
            c[i] = (float)cos(a);
            s[i] = (float)sin(a);
        }
    }
}

void attn__rope_row(float *x, int64_t H, int64_t head_stride, int kind, int64_t half, const float *cos_r,
                    const float *sin_r, int inverse) {
    const float sgn = inverse ? -1.0f : 1.0f;
    for (int64_t h = 0; h < H; h++) {
        float *xh = x + h * head_stride;
        if (kind == ATTN_ROPE_GPTJ) {
            for (int64_t i = 0; i < half; i++) {
                float c = cos_r[i], s = sgn * sin_r[i];
                float x1 = xh[2 * i], x2 = xh[2 * i + 1];
                xh[2 * i] = x1 * c - x2 * s;
                xh[2 * i + 1] = x2 * c + x1 * s;
            }
        } else {
            float *x2p = xh + half;
            for (int64_t i = 0; i < half; i++) {
                float c = cos_r[i], s = sgn * sin_r[i];
                float x1 = xh[i], x2 = x2p[i];
                xh[i] = x1 * c - x2 * s;
                x2p[i] = x2 * c + x1 * s;
            }
        }
    }
}
