/* SPDX-License-Identifier: MIT */
/* rope.c — see rope.h. */
#include "kernels/rope.h"

#include "attn.h"

#include <math.h>

static double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0; }

double attn__rope_attention_factor(const attn_rope_cfg *c) {
    if (c->attention_factor > 0) return c->attention_factor;
    if (c->scaling == ATTN_ROPE_SCALING_YARN) {
        if (c->mscale != 0 && c->mscale_all_dim != 0)
            return yarn_mscale(c->factor, c->mscale) / yarn_mscale(c->factor, c->mscale_all_dim);
        return yarn_mscale(c->factor, 1.0);
    }
    if (c->scaling == ATTN_ROPE_SCALING_LONGROPE)
        return c->factor <= 1.0 ? 1.0 : sqrt(1.0 + log(c->factor) / log(c->original_max_pos));
    return 1.0;
}

int attn__rope_depends_on_length(const attn_rope_cfg *c) {
    return c->scaling == ATTN_ROPE_SCALING_DYNAMIC || c->scaling == ATTN_ROPE_SCALING_LONGROPE;
}

/* yarn (transformers _compute_yarn_parameters): the dimension with num_rot rotations over the
   original context */
static double yarn_dim(double num_rot, double dim, double base, double max_pos) {
    return (dim * log(max_pos / (num_rot * 2 * 3.141592653589793238462643383279502884))) / (2 * log(base));
}

static void yarn_inv_freq(const attn_rope_cfg *c, double *inv_freq) {
    const int64_t half = c->rope_dim / 2;
    const double dim = (double)c->rope_dim;
    const double beta_fast = c->beta_fast > 0 ? c->beta_fast : 32.0, beta_slow = c->beta_slow > 0 ? c->beta_slow : 1.0;
    double lo = yarn_dim(beta_fast, dim, c->theta, c->original_max_pos);
    double hi = yarn_dim(beta_slow, dim, c->theta, c->original_max_pos);
    if (!c->no_truncate) {
        lo = floor(lo);
        hi = ceil(hi);
    }
    if (lo < 0) lo = 0;
    if (hi > dim - 1) hi = dim - 1;
    if (lo == hi) hi += 0.001; /* as transformers: prevent a singular ramp */
    for (int64_t i = 0; i < half; i++) {
        const double pos_freq = pow(c->theta, (double)(2 * i) / dim);
        const double extra = 1.0 / pos_freq, inter = 1.0 / (c->factor * pos_freq);
        double ramp = ((double)i - lo) / (hi - lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        const double ext = 1.0 - ramp; /* extrapolation weight */
        inv_freq[i] = inter * (1.0 - ext) + extra * ext;
    }
}

void attn__rope_inv_freq(const attn_rope_cfg *c, int64_t max_pos_seen, double *inv_freq) {
    const int64_t half = c->rope_dim / 2;
    const double two_pi = 6.283185307179586476925286766559;
    const double seq_len = (double)max_pos_seen + 1.0;
    if (c->scaling == ATTN_ROPE_SCALING_YARN) {
        yarn_inv_freq(c, inv_freq);
        return;
    }
    double theta = c->theta;
    if (c->scaling == ATTN_ROPE_SCALING_DYNAMIC) {
        const double L = seq_len > c->max_pos ? seq_len : c->max_pos;
        const double dim = (double)c->rope_dim;
        theta = c->theta * pow((c->factor * L / c->max_pos) - (c->factor - 1.0), dim / (dim - 2.0));
    }
    const float *ext = NULL;
    if (c->scaling == ATTN_ROPE_SCALING_LONGROPE)
        ext = seq_len > c->original_max_pos ? c->long_factor : c->short_factor;
    for (int64_t i = 0; i < half; i++) {
        double f = pow(theta, -(double)(2 * i) / (double)c->rope_dim);
        if (c->scaling == ATTN_ROPE_SCALING_LINEAR) {
            f /= c->factor;
        } else if (c->scaling == ATTN_ROPE_SCALING_LONGROPE) {
            f /= (double)ext[i];
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

void attn__rope_tables(const double *inv_freq, int64_t half, const int64_t *pos, int64_t ntok, double mult,
                       float *cos_t, float *sin_t) {
    for (int64_t t = 0; t < ntok; t++) {
        const double p = (double)pos[t];
        float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int64_t i = 0; i < half; i++) {
            double a = p * inv_freq[i];
            c[i] = (float)(mult * cos(a));
            s[i] = (float)(mult * sin(a));
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
