/* SPDX-License-Identifier: MIT */
/* rope.c — see rope.h. */
#include "kernels/rope.h"

#include "core/core.h"

#include <math.h>

#define BAD(...) attn__fail(code, __VA_ARGS__)

/* the parameters of the scaling types after llama3 */
static attn_status check_appended(const attn_rope_cfg *c, const char *fn, const char *pfx, attn_status code) {
    const int sc = c->scaling;
    if (sc == ATTN_ROPE_SCALING_DYNAMIC && !(c->max_pos >= 1))
        return BAD("%s: %smax_pos = %g, must be >= 1 with dynamic rope scaling", fn, pfx, c->max_pos);
    if ((sc == ATTN_ROPE_SCALING_YARN || sc == ATTN_ROPE_SCALING_LONGROPE) && !(c->original_max_pos >= 1))
        return BAD("%s: %soriginal_max_pos = %g, must be >= 1 with %sscaling = %d", fn, pfx, c->original_max_pos, pfx,
                   sc);
    if (sc == ATTN_ROPE_SCALING_DYNAMIC && c->rope_dim <= 2)
        return BAD("%s: rope_dim = %lld, dynamic rope scaling needs > 2", fn, (long long)c->rope_dim);
    const double fl[5] = {c->attention_factor, c->beta_fast, c->beta_slow, c->mscale, c->mscale_all_dim};
    static const char *const nm[5] = {"attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim"};
    for (int i = 0; i < 5; i++)
        if (!isfinite(fl[i]) || fl[i] < 0) return BAD("%s: %s%s = %g, must be finite and >= 0", fn, pfx, nm[i], fl[i]);
    if (c->no_truncate != 0 && c->no_truncate != 1)
        return BAD("%s: %sno_truncate = %d, must be 0 or 1", fn, pfx, c->no_truncate);
    if (sc != ATTN_ROPE_SCALING_LONGROPE) return ATTN_OK;
    if (!c->short_factor || !c->long_factor)
        return BAD("%s: %sshort_factor / %slong_factor is NULL with longrope scaling", fn, pfx, pfx);
    for (int64_t i = 0; i < c->rope_dim / 2; i++)
        if (!(isfinite(c->short_factor[i]) && c->short_factor[i] > 0 && isfinite(c->long_factor[i]) &&
              c->long_factor[i] > 0))
            return BAD("%s: %sshort_factor[%lld] = %g, %slong_factor[%lld] = %g: must be finite and > 0", fn, pfx,
                       (long long)i, (double)c->short_factor[i], pfx, (long long)i, (double)c->long_factor[i]);
    return ATTN_OK;
}

attn_status attn__rope_cfg_check(const attn_rope_cfg *c, int64_t head_dim, const char *fn, const char *pfx,
                                 attn_status code) {
    if (c->kind != ATTN_ROPE_NEOX && c->kind != ATTN_ROPE_GPTJ)
        return BAD("%s: %skind = %d, must be ATTN_ROPE_NEOX (1) or ATTN_ROPE_GPTJ (2)", fn, pfx, c->kind);
    if (!(isfinite(c->theta) && c->theta > 1.0))
        return BAD("%s: %stheta = %g, must be finite and > 1 (0 = 10000)", fn, pfx, c->theta);
    if (c->rope_dim > head_dim || c->rope_dim % 2 != 0 || c->rope_dim < 2)
        return BAD("%s: rope_dim = %lld, must be even and in [2, head_dim = %lld]", fn, (long long)c->rope_dim,
                   (long long)head_dim);
    const int sc = c->scaling;
    if (sc < ATTN_ROPE_SCALING_NONE || sc > ATTN_ROPE_SCALING_LONGROPE)
        return BAD("%s: %sscaling = %d, must be an attn_rope_scaling in [0, 5]", fn, pfx, sc);
    attn_status s = check_appended(c, fn, pfx, code);
    if (s != ATTN_OK) return s;
    if (sc != ATTN_ROPE_SCALING_NONE && !(isfinite(c->factor) && c->factor > 0))
        return BAD("%s: %sfactor = %g, must be finite and > 0 with %sscaling = %d", fn, pfx, c->factor, pfx, sc);
    if (sc == ATTN_ROPE_SCALING_LLAMA3) {
        if (!(isfinite(c->low_freq_factor) && c->low_freq_factor > 0))
            return BAD("%s: %slow_freq_factor = %g, must be finite and > 0", fn, pfx, c->low_freq_factor);
        if (!(isfinite(c->high_freq_factor) && c->high_freq_factor > c->low_freq_factor))
            return BAD("%s: %shigh_freq_factor = %g, must be finite and > %slow_freq_factor = %g", fn, pfx,
                       c->high_freq_factor, pfx, c->low_freq_factor);
        if (!(c->original_max_pos >= 1))
            return BAD("%s: %soriginal_max_pos = %g, must be >= 1", fn, pfx, c->original_max_pos);
    }
    return ATTN_OK;
}

double attn__rope_prepare(const attn_rope_cfg *c, const int64_t *pos, int64_t ntok, double *inv_freq) {
    int64_t mx = 0; /* dynamic / longrope: the call's largest position */
    if (attn__rope_depends_on_length(c))
        for (int64_t t = 0; t < ntok; t++)
            if (pos[t] > mx) mx = pos[t];
    attn__rope_inv_freq(c, mx, inv_freq);
    return attn__rope_attention_factor(c);
}

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
