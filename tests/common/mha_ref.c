/* SPDX-License-Identifier: MIT */
/* mha_ref.c — see mha_ref.h. */
#include "mha_ref.h"

#include "kernels/ref/sdpa_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Y (n, out) = X (n, in) W^T (+ b) (+ s (X A^T) B^T), all contiguous. */
static void linear(const double *X, int64_t n, int64_t in, int64_t out, const double *W, const double *b,
                   const double *A, const double *Bm, int64_t r, double s, double *Y) {
    double *xa = r > 0 && A ? calloc((size_t)r, sizeof(double)) : NULL;
    for (int64_t i = 0; i < n; i++) {
        const double *x = X + i * in;
        for (int64_t o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0;
            for (int64_t k = 0; k < in; k++) acc += x[k] * W[o * in + k];
            Y[i * out + o] = acc;
        }
        if (xa) {
            for (int64_t j = 0; j < r; j++) {
                double a = 0;
                for (int64_t k = 0; k < in; k++) a += x[k] * A[j * in + k];
                xa[j] = a;
            }
            for (int64_t o = 0; o < out; o++) {
                double a = 0;
                for (int64_t j = 0; j < r; j++) a += xa[j] * Bm[o * r + j];
                Y[i * out + o] += s * a;
            }
        }
    }
    free(xa);
}

/* (rows in layout) -> batch-first contiguous copy. */
static double *to_bf(const double *src, int layout, int64_t B, int64_t S, int64_t W) {
    double *d = malloc((size_t)(B * S * W > 0 ? B * S * W : 1) * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            const double *row = src + (layout == ATTN_SEQ_FIRST ? (s * B + b) : (b * S + s)) * W;
            memcpy(d + (b * S + s) * W, row, (size_t)W * sizeof(double));
        }
    return d;
}

static void inv_freq_ref(const attn_mha_config *c, double *f) {
    const int64_t R = c->rope_dim;
    for (int64_t i = 0; i < R / 2; i++) {
        double base = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / (double)R);
        if (c->rope_scaling == ATTN_ROPE_SCALING_LINEAR) base /= (double)c->rope_factor;
        if (c->rope_scaling == ATTN_ROPE_SCALING_LLAMA3) {
            double L = (double)c->rope_original_max_pos, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double wl = 6.283185307179586476925 / base;
            if (wl > L / lo) base = base / (double)c->rope_factor;
            else if (wl >= L / hi) {
                double sm = (L / wl - lo) / (hi - lo);
                base = (1.0 - sm) * base / (double)c->rope_factor + sm * base;
            }
        }
        f[i] = base;
    }
}

/* In place on t (B, S, H, D): RMSNorm (if w) then RoPE (if c->rope) with
 * positions pos (B, S). */
static void norm_rope(const attn_mha_config *c, double *t, int64_t B, int64_t S, int64_t H, const double *w,
                      const int64_t *pos) {
    const int64_t D = c->head_dim;
    double f[128];
    if (c->rope) inv_freq_ref(c, f);
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t h = 0; h < H; h++) {
                double *x = t + ((b * S + s) * H + h) * D;
                if (w) {
                    double ss = 0;
                    for (int64_t d = 0; d < D; d++) ss += x[d] * x[d];
                    double r = 1.0 / sqrt(ss / (double)D + (double)c->qk_norm_eps);
                    for (int64_t d = 0; d < D; d++) x[d] = x[d] * r * w[d];
                }
                if (c->rope) {
                    const int64_t half = c->rope_dim / 2;
                    for (int64_t i = 0; i < half; i++) {
                        double a = (double)pos[b * S + s] * f[i], cs = cos(a), sn = sin(a);
                        int64_t i1 = c->rope == ATTN_ROPE_GPTJ ? 2 * i : i;
                        int64_t i2 = c->rope == ATTN_ROPE_GPTJ ? 2 * i + 1 : i + half;
                        double x1 = x[i1], x2 = x[i2];
                        x[i1] = x1 * cs - x2 * sn;
                        x[i2] = x2 * cs + x1 * sn;
                    }
                }
            }
}

int mha_ref_forward(const attn_mha_config *c, const mha_ref_params *p, const mha_ref_input *in, double *y) {
    const int64_t B = in->B, Sq = in->Sq, E = c->embed_dim, Hq = c->num_heads, Hkv = c->num_kv_heads;
    const int64_t D = c->head_dim, qd = Hq * D, kvd = Hkv * D;
    const int cross = in->key != NULL;
    const int64_t Skv = cross ? in->Skv : Sq;
    const int64_t kdim = cross ? c->kdim : E, vdim = cross ? c->vdim : E;
    double *xb = to_bf(in->x, in->layout, B, Sq, E);
    double *kb = cross ? to_bf(in->key, in->layout, B, Skv, kdim) : xb;
    double *vb = cross ? (in->value ? to_bf(in->value, in->layout, B, Skv, vdim) : kb) : xb;
    double *q = malloc((size_t)(B * Sq * qd + 1) * sizeof(double));
    double *k = malloc((size_t)(B * Skv * kvd + 1) * sizeof(double));
    double *v = malloc((size_t)(B * Skv * kvd + 1) * sizeof(double));
    double *o = malloc((size_t)(B * Sq * qd + 1) * sizeof(double));
    double *yb = malloc((size_t)(B * Sq * E + 1) * sizeof(double));
    linear(xb, B * Sq, E, qd, p->w[0], p->b[0], p->lA[0], p->lB[0], p->lrank, p->lscale, q);
    linear(kb, B * Skv, kdim, kvd, p->w[1], p->b[1], p->lA[1], p->lB[1], p->lrank, p->lscale, k);
    linear(vb, B * Skv, vdim, kvd, p->w[2], p->b[2], p->lA[2], p->lB[2], p->lrank, p->lscale, v);
    int64_t *pq = malloc((size_t)(B * Sq + 1) * sizeof(int64_t)), *pk = malloc((size_t)(B * Skv + 1) * sizeof(int64_t));
    for (int64_t b = 0; b < B; b++) {
        for (int64_t s = 0; s < Sq; s++) pq[b * Sq + s] = in->positions ? in->positions[b * Sq + s] : in->pos_offset + s;
        for (int64_t s = 0; s < Skv; s++) pk[b * Skv + s] = cross ? s : pq[b * Sq + s];
    }
    norm_rope(c, q, B, Sq, Hq, p->qn, pq);
    norm_rope(c, k, B, Skv, Hkv, p->kn, pk);

    /* full mask (B, Hq, Sq, Skv) */
    attn_sdpa_opts o_;
    attn_sdpa_opts_init(&o_);
    o_.scale = c->scale;
    o_.causal = c->causal;
    o_.align = ATTN_ALIGN_BOTTOM_RIGHT;
    o_.window_left = c->window_left;
    o_.window_right = c->window_right;
    o_.softcap = c->softcap;
    o_.dropout_p = in->dropout_p;
    o_.dropout_seed = in->dropout_seed;
    const int64_t nm = B * Hq * Sq * Skv;
    void *mask = NULL;
    if (in->kpm || in->mask_kind != ATTN_MASK_NONE) {
        const int add = in->mask_kind == ATTN_MASK_ADD;
        mask = malloc((size_t)(nm + 1) * (add ? sizeof(float) : 1));
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < Hq; h++)
                for (int64_t i = 0; i < Sq; i++)
                    for (int64_t j = 0; j < Skv; j++) {
                        int64_t idx = ((b * Hq + h) * Sq + i) * Skv + j;
                        int64_t src = b * in->mask_stride_b + h * in->mask_stride_h + i * in->mask_stride_q + j;
                        int padded = in->kpm && in->kpm[b * Skv + j];
                        if (add) ((float *)mask)[idx] = padded ? -INFINITY : ((const float *)in->mask)[src];
                        else {
                            int keep = !padded;
                            if (in->mask_kind == ATTN_MASK_BOOL && !((const uint8_t *)in->mask)[src]) keep = 0;
                            ((uint8_t *)mask)[idx] = (uint8_t)keep;
                        }
                    }
        o_.mask_kind = add ? ATTN_MASK_ADD : ATTN_MASK_BOOL;
        o_.mask = mask;
        o_.mask_stride_b = Hq * Sq * Skv;
        o_.mask_stride_h = Sq * Skv;
        o_.mask_stride_q = Skv;
    }
    attn_sdpa_dims dims = {B, Sq, Skv, Hq, Hkv, D, D};
    double *lse = malloc((size_t)(B * Hq * Sq + 1) * sizeof(double));
    int rc = attn_ref_sdpa_fwd(&dims, q, k, v, o, lse, &o_) != ATTN_OK;
    if (!rc) {
        linear(o, B * Sq, qd, E, p->w[3], p->b[3], p->lA[3], p->lB[3], p->lrank, p->lscale, yb);
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < Sq; s++)
                memcpy(y + (in->layout == ATTN_SEQ_FIRST ? (s * B + b) : (b * Sq + s)) * E, yb + (b * Sq + s) * E,
                       (size_t)E * sizeof(double));
    }
    free(lse); free(mask); free(pq); free(pk);
    free(q); free(k); free(v); free(o); free(yb);
    if (vb != kb && vb != xb) free(vb);
    if (kb != xb) free(kb);
    free(xb);
    return rc;
}

static const char *PNAMES[10] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "q_proj.bias",
                                 "k_proj.bias",   "v_proj.bias",   "o_proj.bias",   "q_norm.weight", "k_norm.weight"};
static const char *LNAMES[8] = {"q_proj.lora_A.weight", "k_proj.lora_A.weight", "v_proj.lora_A.weight",
                                "o_proj.lora_A.weight", "q_proj.lora_B.weight", "k_proj.lora_B.weight",
                                "v_proj.lora_B.weight", "o_proj.lora_B.weight"};

static double **slot(mha_ref_params *p, int i) {
    if (i < 4) return &p->w[i];
    if (i < 8) return &p->b[i - 4];
    if (i == 8) return &p->qn;
    if (i == 9) return &p->kn;
    if (i < 14) return &p->lA[i - 10];
    return &p->lB[i - 14];
}
static const char *slot_name(int i) { return i < 10 ? PNAMES[i] : LNAMES[i - 10]; }

void mha_ref_params_from_layer(attn_mha *m, mha_ref_params *p) {
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 18; i++) {
        attn_param ap;
        if (attn_mha_find_param(m, slot_name(i), &ap) != ATTN_OK) continue;
        double *d = malloc((size_t)ap.numel * sizeof(double));
        for (int64_t j = 0; j < ap.numel; j++) d[j] = ap.data[j];
        *slot(p, i) = d;
        if (i >= 10 && i < 14) p->lrank = ap.shape[0];
    }
    attn_clear_error();
}

/* LoRA scale is not a parameter: callers set p->lscale themselves. */
void mha_ref_params_free(mha_ref_params *p) {
    for (int i = 0; i < 18; i++) {
        free(*slot(p, i));
        *slot(p, i) = NULL;
    }
}

double *mha_ref_param_ptr(mha_ref_params *p, const attn_mha_config *cfg, const char *name, int64_t *numel) {
    const int64_t E = cfg->embed_dim, qd = cfg->num_heads * cfg->head_dim, kvd = cfg->num_kv_heads * cfg->head_dim;
    const int64_t outw[4] = {qd, kvd, kvd, E}, inw[4] = {E, cfg->kdim, cfg->vdim, qd};
    for (int i = 0; i < 18; i++) {
        if (strcmp(slot_name(i), name) != 0) continue;
        int64_t n;
        if (i < 4) n = outw[i] * inw[i];
        else if (i < 8) n = outw[i - 4];
        else if (i < 10) n = cfg->head_dim;
        else if (i < 14) n = p->lrank * inw[i - 10];
        else n = outw[i - 14] * p->lrank;
        if (numel) *numel = n;
        return *slot(p, i);
    }
    return NULL;
}

/* ─── test-case helpers ────────────────────────────────────────────────────── */

static float *rand_f(tu_rng *r, int64_t n, double **dcopy) {
    float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        f[i] = (float)tu_normal(r);
        d[i] = f[i];
    }
    *dcopy = d;
    return f;
}

void mha_case_make(mha_case *c, const attn_mha_config *cfg, tu_rng *r) {
    const int64_t B = c->B, Sq = c->Sq;
    c->Sk = c->cross ? c->Skv : Sq;
    const int64_t Sk = c->Sk, Hq = cfg->num_heads;
    c->nx = B * Sq * cfg->embed_dim;
    c->x = rand_f(r, c->nx, &c->xd);
    c->key = c->value = NULL;
    c->keyd = c->valued = NULL;
    if (c->cross) {
        c->nkey = B * Sk * cfg->kdim;
        c->key = rand_f(r, c->nkey, &c->keyd);
        if (!c->value_is_key) {
            c->nvalue = B * Sk * cfg->vdim;
            c->value = rand_f(r, c->nvalue, &c->valued);
        }
    }
    c->kpm = NULL;
    if (c->kpm_kind) {
        c->kpm = calloc((size_t)(B * Sk + 1), 1);
        for (int64_t b = 0; b < B; b++) {
            if (c->kpm_kind == 1) {
                int64_t len = Sk - (b % 3) * (Sk / 3) - (b > 0);
                if (len < 1) len = 1;
                for (int64_t j = len; j < Sk; j++) c->kpm[b * Sk + j] = 1;
            } else {
                for (int64_t j = 0; j < Sk; j++) c->kpm[b * Sk + j] = tu_uniform(r) < 0.3;
                if (c->kpm_kind == 3 && b == B - 1)
                    for (int64_t j = 0; j < Sk; j++) c->kpm[b * Sk + j] = 1;
            }
        }
    }
    c->pos = NULL;
    if (c->pos_kind == 2) {
        c->pos = malloc((size_t)(B * Sq + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < B * Sq; i++) c->pos[i] = (int32_t)tu_int(r, 0, 400);
    }
    c->mask = NULL;
    c->msb = c->msh = c->msq = 0;
    if (c->mask_kind != ATTN_MASK_NONE) {
        const int64_t Bm = (c->mask_bcast & 1) ? 1 : B, Hm = (c->mask_bcast & 2) ? 1 : Hq, Qm = (c->mask_bcast & 4) ? 1 : Sq;
        const int64_t n = Bm * Hm * Qm * Sk;
        c->msq = (c->mask_bcast & 4) ? 0 : Sk;
        c->msh = (c->mask_bcast & 2) ? 0 : Qm * Sk;
        c->msb = (c->mask_bcast & 1) ? 0 : Hm * Qm * Sk;
        if (c->mask_kind == ATTN_MASK_BOOL) {
            uint8_t *mk = malloc((size_t)(n + 1));
            for (int64_t i = 0; i < n; i++) mk[i] = tu_uniform(r) < 0.8;
            c->mask = mk;
        } else {
            float *mk = malloc((size_t)(n + 1) * sizeof(float));
            for (int64_t i = 0; i < n; i++) mk[i] = tu_uniform(r) < 0.15 ? -INFINITY : (float)tu_normal(r);
            c->mask = mk;
        }
    }
}

void mha_case_free(mha_case *c) {
    free(c->x); free(c->key); free(c->value);
    free(c->xd); free(c->keyd); free(c->valued);
    free(c->kpm); free(c->pos); free(c->mask);
    c->x = c->key = c->value = NULL;
    c->xd = c->keyd = c->valued = NULL;
    c->kpm = NULL; c->pos = NULL; c->mask = NULL;
}

void mha_case_input(const mha_case *c, attn_mha_input *in) {
    attn_mha_input_init(in);
    in->layout = c->layout;
    in->batch = c->B;
    in->seq_q = c->Sq;
    in->seq_kv = c->cross ? c->Skv : 0;
    in->x = c->x;
    in->key = c->key;
    in->value = c->value;
    in->positions = c->pos;
    in->pos_offset = c->pos_kind == 1 ? c->pos_offset : 0;
    in->key_padding_mask = c->kpm;
    in->mask_kind = c->mask_kind;
    in->mask = c->mask;
    in->mask_stride_b = c->msb;
    in->mask_stride_h = c->msh;
    in->mask_stride_q = c->msq;
}

void mha_case_ref_input(const mha_case *c, mha_ref_input *in) {
    memset(in, 0, sizeof *in);
    in->layout = c->layout;
    in->B = c->B;
    in->Sq = c->Sq;
    in->Skv = c->cross ? c->Skv : 0;
    in->x = c->xd;
    in->key = c->keyd;
    in->value = c->valued;
    in->positions = c->pos;
    in->pos_offset = c->pos_kind == 1 ? c->pos_offset : 0;
    in->kpm = c->kpm;
    in->mask_kind = c->mask_kind;
    in->mask = c->mask;
    in->mask_stride_b = c->msb;
    in->mask_stride_h = c->msh;
    in->mask_stride_q = c->msq;
}

void mha_randomize_params(attn_mha *m, tu_rng *r, double bias_sd, double lora_b_sd) {
    int64_t n = attn_mha_num_params(m);
    for (int64_t i = 0; i < n; i++) {
        attn_param p;
        if (attn_mha_param(m, i, &p) != ATTN_OK) continue;
        double sd;
        double base = 0.0;
        if (strstr(p.name, "_norm.")) { base = 1.0; sd = 0.2; }
        else if (strstr(p.name, "lora_B")) sd = lora_b_sd / sqrt((double)p.shape[1]);
        else if (p.ndim == 1) sd = bias_sd;
        else sd = 1.0 / sqrt((double)p.shape[1]);
        for (int64_t j = 0; j < p.numel; j++) p.data[j] = (float)(base + sd * tu_normal(r));
    }
}

double mha_rel_err(const float *a, const double *b, int64_t n, double floor) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) return INFINITY;
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > floor ? mb : floor);
}
