/* SPDX-License-Identifier: MIT */
/* optim.c — SGD (momentum, L2 weight decay) and AdamW (decoupled weight
 * decay, bias correction) over arrays of attn_param, as torch.optim:
 *
 *   SGD:    g = grad + wd * p;  buf = g (first step) | momentum * buf + g;
 *           p -= lr * (momentum > 0 ? buf : g)
 *   AdamW:  t += 1;  p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *           p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * Arithmetic in fp32 per element except the bias corrections (float64).
 * State (per parameter: buf, or m and v, each numel floats) is allocated at
 * the first step for the trainable parameters; frozen ones are skipped. The
 * parameter count and every numel must match the first step's.
 *
 * Clipping (attn_optim_clip_grad_norm), as torch.nn.utils.clip_grad_norm_:
 *   total = sqrt(sum of g^2 over the trainable grads)    float64, fixed order
 *   total > max_norm:  g *= (float)(max_norm / total)     every trainable grad */
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_SGD = 0, OPT_ADAMW = 1 };

struct attn_optim {
    int kind;
    float lr, momentum, weight_decay, beta1, beta2, eps;
    int64_t t;        /* steps taken */
    int64_t n;        /* parameter count fixed at the first step (-1 before) */
    int64_t *numel;   /* (n) */
    float **s1, **s2; /* (n) state per parameter: SGD buf / Adam m, Adam v; NULL until needed */
};

static attn_status make(attn_optim **out, int kind) {
    *out = (attn_optim *)calloc(1, sizeof(attn_optim));
    if (!*out) return attn__fail(ATTN_ERR_NOMEM, "attn_optim_create: out of memory");
    (*out)->kind = kind;
    (*out)->n = -1;
    return ATTN_OK;
}

static int lr_ok(float lr) { return isfinite(lr) && lr >= 0.0f; }

attn_status attn_optim_create_sgd(attn_optim **out, float lr, float momentum, float weight_decay) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_optim_create_sgd: out is NULL");
    *out = NULL;
    if (!lr_ok(lr)) return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_sgd: lr = %g, must be finite and >= 0", (double)lr);
    if (!(momentum >= 0.0f && momentum < 1.0f))
        return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_sgd: momentum = %g, must be in [0, 1)", (double)momentum);
    if (!(isfinite(weight_decay) && weight_decay >= 0.0f))
        return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_sgd: weight_decay = %g, must be finite and >= 0", (double)weight_decay);
    attn_status s = make(out, OPT_SGD);
    if (s != ATTN_OK) return s;
    (*out)->lr = lr; (*out)->momentum = momentum; (*out)->weight_decay = weight_decay;
    return ATTN_OK;
}

attn_status attn_optim_create_adamw(attn_optim **out, float lr, float beta1, float beta2, float eps, float weight_decay) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_optim_create_adamw: out is NULL");
    *out = NULL;
    if (!lr_ok(lr)) return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_adamw: lr = %g, must be finite and >= 0", (double)lr);
    if (!(beta1 >= 0.0f && beta1 < 1.0f))
        return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_adamw: beta1 = %g, must be in [0, 1)", (double)beta1);
    if (!(beta2 >= 0.0f && beta2 < 1.0f))
        return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_adamw: beta2 = %g, must be in [0, 1)", (double)beta2);
    if (!(isfinite(eps) && eps > 0.0f))
        return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_adamw: eps = %g, must be finite and > 0", (double)eps);
    if (!(isfinite(weight_decay) && weight_decay >= 0.0f))
        return attn__fail(ATTN_ERR_OPTION, "attn_optim_create_adamw: weight_decay = %g, must be finite and >= 0", (double)weight_decay);
    attn_status s = make(out, OPT_ADAMW);
    if (s != ATTN_OK) return s;
    attn_optim *o = *out;
    o->lr = lr; o->beta1 = beta1; o->beta2 = beta2; o->eps = eps; o->weight_decay = weight_decay;
    return ATTN_OK;
}

void attn_optim_free(attn_optim *o) {
    if (!o) return;
    for (int64_t i = 0; i < o->n; i++) {
        if (o->s1) attn__free(o->s1[i]);
        if (o->s2) attn__free(o->s2[i]);
    }
    free(o->s1);
    free(o->s2);
    free(o->numel);
    free(o);
}

attn_status attn_optim_set_lr(attn_optim *o, float lr) {
    if (!o) return attn__fail(ATTN_ERR_NULL, "attn_optim_set_lr: o is NULL");
    if (!lr_ok(lr)) return attn__fail(ATTN_ERR_OPTION, "attn_optim_set_lr: lr = %g, must be finite and >= 0", (double)lr);
    o->lr = lr;
    return ATTN_OK;
}

/* The parameter array's checks, shared by the step and the clipping: a
 * count >= 0, numel >= 0, data and grad present where trainable. */
static attn_status params_check(const char *fn, const attn_param *params, int64_t n) {
    if (n < 0) return attn__fail(ATTN_ERR_SHAPE, "%s: n = %lld < 0", fn, (long long)n);
    if (n > 0 && !params) return attn__fail(ATTN_ERR_NULL, "%s: params is NULL", fn);
    for (int64_t i = 0; i < n; i++) {
        const attn_param *p = &params[i];
        if (p->numel < 0) return attn__fail(ATTN_ERR_SHAPE, "%s: params[%lld].numel = %lld < 0", fn, (long long)i, (long long)p->numel);
        if (p->trainable && p->numel > 0 && (!p->data || !p->grad))
            return attn__fail(ATTN_ERR_NULL, "%s: params[%lld] (%s) has a NULL data or grad", fn, (long long)i,
                              p->name ? p->name : "?");
    }
    return ATTN_OK;
}

attn_status attn_optim_clip_grad_norm(const attn_param *params, int64_t n, double max_norm, double *total_norm) {
    if (total_norm) *total_norm = 0.0;
    attn_status s = params_check("attn_optim_clip_grad_norm", params, n);
    if (s != ATTN_OK) return s;
    if (!(isfinite(max_norm) && max_norm > 0.0))
        return attn__fail(ATTN_ERR_OPTION, "attn_optim_clip_grad_norm: max_norm = %g, must be finite and > 0", max_norm);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!params[i].trainable) continue;
        const float *g = params[i].grad;
        for (int64_t j = 0; j < params[i].numel; j++) sum += (double)g[j] * g[j];
    }
    const double total = sqrt(sum);
    if (total_norm) *total_norm = total;
    if (!(total > max_norm) || !isfinite(total)) return ATTN_OK; /* non-finite: reported, grads left as they are */
    const float c = (float)(max_norm / total);
    for (int64_t i = 0; i < n; i++) {
        if (!params[i].trainable) continue;
        float *g = params[i].grad;
        for (int64_t j = 0; j < params[i].numel; j++) g[j] *= c;
    }
    return ATTN_OK;
}

attn_status attn_optim_step(attn_optim *o, const attn_param *params, int64_t n) {
    if (!o) return attn__fail(ATTN_ERR_NULL, "attn_optim_step: o is NULL");
    /* validate everything before touching any state */
    attn_status s = params_check("attn_optim_step", params, n);
    if (s != ATTN_OK) return s;
    if (o->n >= 0) {
        if (n != o->n)
            return attn__fail(ATTN_ERR_SHAPE, "attn_optim_step: %lld parameters, but the first step had %lld", (long long)n, (long long)o->n);
        for (int64_t i = 0; i < n; i++)
            if (params[i].numel != o->numel[i])
                return attn__fail(ATTN_ERR_SHAPE, "attn_optim_step: params[%lld] (%s) has numel %lld, the first step had %lld",
                                  (long long)i, params[i].name ? params[i].name : "?", (long long)params[i].numel,
                                  (long long)o->numel[i]);
    } else {
        o->numel = (int64_t *)calloc((size_t)(n ? n : 1), sizeof(int64_t));
        o->s1 = (float **)calloc((size_t)(n ? n : 1), sizeof(float *));
        o->s2 = (float **)calloc((size_t)(n ? n : 1), sizeof(float *));
        if (!o->numel || !o->s1 || !o->s2) {
            free(o->numel); free(o->s1); free(o->s2);
            o->numel = NULL; o->s1 = o->s2 = NULL;
            return attn__fail(ATTN_ERR_NOMEM, "attn_optim_step: state for %lld parameters", (long long)n);
        }
        for (int64_t i = 0; i < n; i++) o->numel[i] = params[i].numel;
        o->n = n;
    }
    /* allocate missing state (zeroed) for the trainable parameters */
    const int need2 = o->kind == OPT_ADAMW, need1 = o->kind == OPT_ADAMW || o->momentum > 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (!params[i].trainable || params[i].numel == 0) continue;
        if (need1 && !o->s1[i] && !(o->s1[i] = (float *)attn__calloc((size_t)params[i].numel, sizeof(float))))
            return attn__fail(ATTN_ERR_NOMEM, "attn_optim_step: state of params[%lld]", (long long)i);
        if (need2 && !o->s2[i] && !(o->s2[i] = (float *)attn__calloc((size_t)params[i].numel, sizeof(float))))
            return attn__fail(ATTN_ERR_NOMEM, "attn_optim_step: state of params[%lld]", (long long)i);
    }
    const int first = o->t == 0;
    o->t++;
    const float lr = o->lr, wd = o->weight_decay;
    if (o->kind == OPT_SGD) {
        const float mom = o->momentum;
        for (int64_t i = 0; i < n; i++) {
            const attn_param *p = &params[i];
            if (!p->trainable) continue;
            float *buf = o->s1[i];
            for (int64_t j = 0; j < p->numel; j++) {
                float g = p->grad[j] + wd * p->data[j];
                if (buf) {
                    buf[j] = first ? g : mom * buf[j] + g;
                    g = buf[j];
                }
                p->data[j] -= lr * g;
            }
        }
    } else {
        const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
        const float bc1 = (float)(1.0 - pow((double)b1, (double)o->t));
        const float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, (double)o->t));
        const float step = lr / bc1, decay = 1.0f - lr * wd;
        for (int64_t i = 0; i < n; i++) {
            const attn_param *p = &params[i];
            if (!p->trainable) continue;
            float *mm = o->s1[i], *vv = o->s2[i];
            for (int64_t j = 0; j < p->numel; j++) {
                const float g = p->grad[j];
                float w = p->data[j] * decay;
                mm[j] = b1 * mm[j] + (1.0f - b1) * g;
                vv[j] = b2 * vv[j] + (1.0f - b2) * g * g;
                w -= step * mm[j] / (sqrtf(vv[j]) / bc2_sqrt + eps);
                p->data[j] = w;
            }
        }
    }
    return ATTN_OK;
}
