/* SPDX-License-Identifier: MIT */
/*
 * lm.c — the byte-level causal transformer language model of `attn train` /
 * `attn generate`. See lm.h for the model, names and conventions.
 *
 * Dimension legend (as in llm.c):
 *   B batch, T time, N = B*T rows, C channels (embed dim), V vocab (256),
 *   L layers, NH query heads, NKV kv heads, F MLP hidden width.
 *
 * Layout: every activation is row-major with the channel dimension fastest,
 * (B, T, C) == (N, C). Weights are (out, in) like torch.nn.Linear, so
 * y = x W^T. Each piece is a _forward / _backward pair; backward ADDS into
 * every d-buffer (the caller zeroes them).
 */
#include "lm.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ─── errors ───────────────────────────────────────────────────────────── */
static _Thread_local char lm_err[512];

const char *lm_error(void) { return lm_err; }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static attn_status lm_fail(attn_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lm_err, sizeof lm_err, fmt, ap);
    va_end(ap);
    return s;
}

/* a failed library call: "<what>: <attn_last_error()>" */
static attn_status lm_fail_attn(attn_status s, const char *what) {
    const char *d = attn_last_error();
    return lm_fail(s, "%s: %s", what, (d && d[0]) ? d : attn_status_str(s));
}

/* ─── rng (splitmix64) ─────────────────────────────────────────────────── */
uint64_t lm_rng_next(lm_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float lm_rng_uniform(lm_rng *r) { return (float)(lm_rng_next(r) >> 40) * (1.0f / 16777216.0f); }
static double rng_uniform_d(lm_rng *r) { return (double)(lm_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static void fill_normal(float *p, int64_t n, float std, lm_rng *r) {
    for (int64_t i = 0; i < n; i++) {
        double u1 = rng_uniform_d(r), u2 = rng_uniform_d(r);
        if (u1 < 1e-300) u1 = 1e-300;
        p[i] = (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

/* ═══ the pieces ═══════════════════════════════════════════════════════════ */

/* out (N, C) = wte[tokens[n]]; wte (V, C) */
void encoder_forward(float *out, const int32_t *tokens, const float *wte, int N, int C) {
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

/* dwte[tokens[n]] += dout[n] */
void encoder_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C) {
    for (int n = 0; n < N; n++) {
        float *dw = dwte + (size_t)tokens[n] * C;
        const float *d = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) dw[c] += d[c];
    }
}

/* out (N, C) = inp * rstd * weight, rstd (N) = 1 / sqrt(mean(inp^2) + eps) */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                     float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        for (int c = 0; c < C; c++) o[c] = x[c] * s * weight[c];
        rstd[n] = s;
    }
}

/* forward: y_c = x_c * s * w_c, s = (mean(x^2) + eps)^-1/2
 * dx_c += s * w_c dy_c - s^3 / C * x_c * sum_j (w_j dy_j x_j);  dw_c += dy_c x_c s */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float s = rstd[n];
        float dot = 0.0f; /* sum_j w_j dy_j x_j */
        for (int c = 0; c < C; c++) dot += weight[c] * dy[c] * x[c];
        float k = s * s * s * dot / (float)C;
        if (dinp) {
            float *dx = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) dx[c] += s * weight[c] * dy[c] - k * x[c];
        }
        if (dweight)
            for (int c = 0; c < C; c++) dweight[c] += dy[c] * x[c] * s;
    }
}

/* out (N, OUT) = inp (N, IN) @ weight^T; weight (OUT, IN) */
void matmul_forward(float *out, const float *inp, const float *weight, int N, int IN, int OUT) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OUT, IN, 1.0f, inp, IN, weight, IN, 0.0f,
                out, OUT);
}

/* forward: out = inp @ weight^T
 * dinp (N, IN) += dout (N, OUT) @ weight (OUT, IN);  dweight (OUT, IN) += dout^T @ inp.
 * dinp or dweight may be NULL (not needed). */
void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                     const float *weight, int N, int IN, int OUT) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IN, OUT, 1.0f, dout, OUT, weight, IN,
                    1.0f, dinp, IN);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, N, 1.0f, dout, OUT, inp, IN, 1.0f,
                    dweight, IN);
}

/* out = silu(gate) * up, silu(g) = g * sigmoid(g); all (n) */
void swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        float sg = 1.0f / (1.0f + expf(-g));
        out[i] = g * sg * up[i];
    }
}

/* forward: out = g s(g) u;  d/dg = u s (1 + g (1 - s)),  d/du = g s */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        float sg = 1.0f / (1.0f + expf(-g));
        dgate[i] += dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        dup[i] += dout[i] * g * sg;
    }
}

void residual_forward(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* probs (N, V) = softmax(logits (N, V)); losses (N) = -log probs[n, targets[n]] */
void crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets,
                          int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *lg = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float mx = lg[0];
        for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
        double sum = 0.0;
        for (int v = 0; v < V; v++) { p[v] = expf(lg[v] - mx); sum += p[v]; }
        float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) p[v] *= inv;
        /* log p[t] = lg[t] - mx - log(sum): exact even when p[t] underflows */
        if (losses) losses[n] = -(float)((double)lg[targets[n]] - mx - log(sum));
    }
}

/* forward: loss_n = -log softmax(logits_n)[t_n];  dlogits_n += (probs_n - onehot(t_n)) * dloss */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, float dloss,
                           int N, int V) {
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * V;
        const float *p = probs + (size_t)n * V;
        for (int v = 0; v < V; v++) d[v] += (p[v] - (v == targets[n] ? 1.0f : 0.0f)) * dloss;
    }
}

/* ═══ the model ════════════════════════════════════════════════════════════ */

/* the model's own parameters, in this order in the params block */
enum { P_WTE, P_LN1, P_LN2, P_GATE, P_UP, P_DOWN, P_LNF, P_HEAD, P_COUNT };

struct lm_model {
    lm_config cfg;
    attn_mha **attn;          /* (L) */
    /* own parameters: one block for values, one for gradients */
    float *wmem, *gmem;
    size_t n_own;
    float *w[P_COUNT], *g[P_COUNT]; /* wte (V,C) ln1 (L,C) ln2 (L,C) gate (L,F,C) up (L,F,C)
                                       down (L,C,F) lnf (C) head (V,C) */
    int own_frozen;
    int64_t lora_rank;
    float lora_alpha;
    /* parameter list for the optimiser (own, then layer by layer) */
    attn_param *params;
    int64_t n_params;
    char *names; /* storage of the full names */
    /* activations, sized for act_cap rows */
    size_t act_cap;
    int B, T, fwd_ok, fwd_targets, fwd_training;
    int32_t *tokens, *targets; /* (N) */
    float *enc;     /* (N, C) embedded tokens: input of layer 0 */
    float *ln1;     /* (L, N, C) */
    float *rstd1;   /* (L, N) */
    float *res;     /* (L, N, C) after the attention residual */
    float *ln2;     /* (L, N, C) */
    float *rstd2;   /* (L, N) */
    float *gate;    /* (L, N, F) */
    float *up;      /* (L, N, F) */
    float *hact;    /* (L, N, F) silu(gate) * up */
    float *out;     /* (L, N, C) block outputs */
    float *atty;    /* (N, C) attention output (scratch) */
    float *lnf;     /* (N, C) */
    float *rstdf;   /* (N) */
    float *logits;  /* (N, V) */
    float *probs;   /* (N, V) */
    float *losses;  /* (N) */
    /* gradient scratch */
    float *dres;    /* (N, C) gradient of the residual stream */
    float *dln;     /* (N, C) */
    float *dh;      /* (N, F) */
    float *dg;      /* (N, F) */
    float *du;      /* (N, F) */
    float *dlogits; /* (N, V) */
    int training;
    lm_attn_fwd_fn att_fwd; /* lm_set_attention (NULL: attn_mha_forward / _backward) */
    lm_attn_bwd_fn att_bwd;
    void *att_user;
};

void lm_config_default(lm_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab = LM_VOCAB;
    c->max_seq = 64;
    c->n_layer = 2;
    c->dim = 64;
    c->n_head = 4;
    c->n_kv_head = 2;
    c->hidden = 0;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
}

attn_status lm_config_validate(lm_config *c) {
    if (c->vocab != LM_VOCAB) return lm_fail(ATTN_ERR_CONFIG, "vocab = %d (must be %d: bytes)", c->vocab, LM_VOCAB);
    if (c->max_seq < 1 || c->max_seq > (1 << 20)) return lm_fail(ATTN_ERR_CONFIG, "seq = %d out of [1, 1048576]", c->max_seq);
    if (c->n_layer < 0 || c->n_layer > 256) return lm_fail(ATTN_ERR_CONFIG, "layers = %d out of [0, 256]", c->n_layer);
    if (c->dim < 2 || c->dim > 16384) return lm_fail(ATTN_ERR_CONFIG, "dim = %d out of [2, 16384]", c->dim);
    if (c->n_head < 1 || c->dim % c->n_head != 0)
        return lm_fail(ATTN_ERR_CONFIG, "heads = %d must be >= 1 and divide dim = %d", c->n_head, c->dim);
    if ((c->dim / c->n_head) % 2 != 0)
        return lm_fail(ATTN_ERR_CONFIG, "head dim = dim / heads = %d must be even (RoPE)", c->dim / c->n_head);
    if (c->dim / c->n_head > 256)
        return lm_fail(ATTN_ERR_CONFIG, "head dim = dim / heads = %d > 256", c->dim / c->n_head);
    if (c->n_kv_head == 0) c->n_kv_head = c->n_head;
    if (c->n_kv_head < 1 || c->n_head % c->n_kv_head != 0)
        return lm_fail(ATTN_ERR_CONFIG, "kv-heads = %d must be >= 1 and divide heads = %d", c->n_kv_head, c->n_head);
    if (c->hidden == 0) c->hidden = ((8 * c->dim / 3) + 31) / 32 * 32;
    if (c->hidden < 1 || c->hidden > 65536) return lm_fail(ATTN_ERR_CONFIG, "hidden = %d out of [1, 65536]", c->hidden);
    if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta)) return lm_fail(ATTN_ERR_CONFIG, "rope theta = %g must be > 0", (double)c->rope_theta);
    if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps)) return lm_fail(ATTN_ERR_CONFIG, "norm eps = %g must be > 0", (double)c->norm_eps);
    return ATTN_OK;
}

const lm_config *lm_get_config(const lm_model *m) { return &m->cfg; }

static void own_shape(const lm_config *c, int p, int *ndim, int64_t shape[3]) {
    int64_t V = c->vocab, C = c->dim, L = c->n_layer, F = c->hidden;
    switch (p) {
    case P_WTE: case P_HEAD: *ndim = 2; shape[0] = V; shape[1] = C; break;
    case P_LN1: case P_LN2: *ndim = 2; shape[0] = L; shape[1] = C; break;
    case P_GATE: case P_UP: *ndim = 3; shape[0] = L; shape[1] = F; shape[2] = C; break;
    case P_DOWN: *ndim = 3; shape[0] = L; shape[1] = C; shape[2] = F; break;
    default: *ndim = 1; shape[0] = C; break;
    }
}
static int64_t own_numel(const lm_config *c, int p) {
    int nd; int64_t s[3], n = 1;
    own_shape(c, p, &nd, s);
    for (int i = 0; i < nd; i++) n *= s[i];
    return n;
}

/* HF name and per-layer slice of own parameter p: layer l (or -1 for global ones) */
static const char *own_suffix(int p) {
    static const char *const s[P_COUNT] = {
        "model.embed_tokens.weight", "input_layernorm.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", "model.norm.weight",
        "lm_head.weight"};
    return s[p];
}
static int own_per_layer(int p) { return p == P_LN1 || p == P_LN2 || p == P_GATE || p == P_UP || p == P_DOWN; }

/* (Re)builds m->params: own tensors (per layer slices), then every layer's. */
static attn_status build_params(lm_model *m) {
    const lm_config *c = &m->cfg;
    int L = c->n_layer;
    int64_t n = 0;
    for (int p = 0; p < P_COUNT; p++) n += own_per_layer(p) ? L : 1;
    for (int l = 0; l < L; l++) n += attn_mha_num_params(m->attn[l]);
    attn_param *ps = calloc((size_t)n, sizeof *ps);
    char *names = calloc((size_t)n, 96);
    if (!ps || !names) { free(ps); free(names); return lm_fail(ATTN_ERR_NOMEM, "out of memory (parameter list)"); }
    int64_t i = 0;
    for (int p = 0; p < P_COUNT; p++) {
        int nd = 1; int64_t s[3] = {0, 0, 0};
        own_shape(c, p, &nd, s);
        int reps = own_per_layer(p) ? L : 1;
        for (int l = 0; l < reps; l++, i++) {
            attn_param *q = &ps[i];
            char *nm = names + i * 96;
            if (own_per_layer(p)) {
                snprintf(nm, 96, "model.layers.%d.%s", l, own_suffix(p));
                q->ndim = nd - 1; q->shape[0] = s[1]; q->shape[1] = nd == 3 ? s[2] : 0;
            } else {
                snprintf(nm, 96, "%s", own_suffix(p));
                q->ndim = nd; q->shape[0] = s[0]; q->shape[1] = nd == 2 ? s[1] : 0;
            }
            q->numel = q->shape[0] * (q->ndim == 2 ? q->shape[1] : 1);
            q->name = nm;
            q->data = m->w[p] + (size_t)l * (size_t)q->numel;
            q->grad = m->g[p] + (size_t)l * (size_t)q->numel;
            q->trainable = !m->own_frozen;
        }
    }
    for (int l = 0; l < L; l++) {
        int64_t k = attn_mha_num_params(m->attn[l]);
        for (int64_t j = 0; j < k; j++, i++) {
            attn_status st = attn_mha_param(m->attn[l], j, &ps[i]);
            if (st != ATTN_OK) { free(ps); free(names); return lm_fail_attn(st, "attn_mha_param"); }
            char *nm = names + i * 96;
            snprintf(nm, 96, "model.layers.%d.self_attn.%s", l, ps[i].name);
            ps[i].name = nm;
        }
    }
    free(m->params);
    free(m->names);
    m->params = ps;
    m->names = names;
    m->n_params = n;
    return ATTN_OK;
}

attn_status lm_create(lm_model **out, const lm_config *cfg_in, uint64_t seed) {
    if (!out || !cfg_in) return lm_fail(ATTN_ERR_NULL, "lm_create: NULL argument");
    *out = NULL;
    lm_config c = *cfg_in;
    attn_status st = lm_config_validate(&c);
    if (st != ATTN_OK) return st;
    lm_model *m = calloc(1, sizeof *m);
    if (!m) return lm_fail(ATTN_ERR_NOMEM, "out of memory");
    m->cfg = c;
    size_t total = 0;
    for (int p = 0; p < P_COUNT; p++) total += (size_t)own_numel(&c, p);
    m->n_own = total;
    m->wmem = malloc(total * sizeof(float));
    m->gmem = calloc(total, sizeof(float));
    m->attn = calloc((size_t)(c.n_layer > 0 ? c.n_layer : 1), sizeof *m->attn);
    if (!m->wmem || !m->gmem || !m->attn) { lm_free(m); return lm_fail(ATTN_ERR_NOMEM, "out of memory (%zu parameters)", total); }
    size_t off = 0;
    for (int p = 0; p < P_COUNT; p++) {
        m->w[p] = m->wmem + off;
        m->g[p] = m->gmem + off;
        off += (size_t)own_numel(&c, p);
    }
    /* init (llm.c / GPT-2 style): N(0, 0.02), residual output projections
     * scaled by 1/sqrt(2L), norm weights 1 */
    lm_rng r = {seed ^ 0x6c6d5f696e697421ull};
    float std = 0.02f;
    float std_res = std / sqrtf(2.0f * (float)(c.n_layer > 0 ? c.n_layer : 1));
    fill_normal(m->w[P_WTE], own_numel(&c, P_WTE), std, &r);
    fill_normal(m->w[P_GATE], own_numel(&c, P_GATE), std, &r);
    fill_normal(m->w[P_UP], own_numel(&c, P_UP), std, &r);
    fill_normal(m->w[P_DOWN], own_numel(&c, P_DOWN), std_res, &r);
    fill_normal(m->w[P_HEAD], own_numel(&c, P_HEAD), std, &r);
    for (int p = P_LN1; p <= P_LNF; p++) {
        if (p != P_LN1 && p != P_LN2 && p != P_LNF) continue;
        float *w = m->w[p];
        for (int64_t i = 0; i < own_numel(&c, p); i++) w[i] = 1.0f;
    }
    for (int l = 0; l < c.n_layer; l++) {
        attn_mha_config ac;
        attn_mha_config_init(&ac);
        ac.embed_dim = c.dim;
        ac.num_heads = c.n_head;
        ac.num_kv_heads = c.n_kv_head;
        ac.causal = 1;
        ac.rope = ATTN_ROPE_NEOX;
        ac.rope_theta = c.rope_theta;
        st = attn_mha_create(&m->attn[l], &ac);
        if (st != ATTN_OK) { lm_free(m); return lm_fail_attn(st, "attn_mha_create"); }
        st = attn_mha_init_weights(m->attn[l], ATTN_INIT_NORMAL, seed * 1000003ull + (uint64_t)l + 1);
        if (st != ATTN_OK) { lm_free(m); return lm_fail_attn(st, "attn_mha_init_weights"); }
    }
    st = build_params(m);
    if (st != ATTN_OK) { lm_free(m); return st; }
    *out = m;
    return ATTN_OK;
}

static void free_acts(lm_model *m) {
    free(m->tokens); free(m->targets); free(m->enc); free(m->ln1); free(m->rstd1); free(m->res);
    free(m->ln2); free(m->rstd2); free(m->gate); free(m->up); free(m->hact); free(m->out);
    free(m->atty); free(m->lnf); free(m->rstdf); free(m->logits); free(m->probs); free(m->losses);
    free(m->dres); free(m->dln); free(m->dh); free(m->dg); free(m->du); free(m->dlogits);
    m->tokens = m->targets = NULL;
    m->enc = m->ln1 = m->rstd1 = m->res = m->ln2 = m->rstd2 = m->gate = m->up = m->hact = m->out = NULL;
    m->atty = m->lnf = m->rstdf = m->logits = m->probs = m->losses = NULL;
    m->dres = m->dln = m->dh = m->dg = m->du = m->dlogits = NULL;
    m->act_cap = 0;
}

void lm_free(lm_model *m) {
    if (!m) return;
    if (m->attn)
        for (int l = 0; l < m->cfg.n_layer; l++) attn_mha_free(m->attn[l]);
    free(m->attn);
    free(m->wmem);
    free(m->gmem);
    free(m->params);
    free(m->names);
    free_acts(m);
    free(m);
}

/* Activations for N rows. */
static attn_status ensure_acts(lm_model *m, size_t N) {
    if (N <= m->act_cap) return ATTN_OK;
    free_acts(m);
    size_t C = (size_t)m->cfg.dim, L = (size_t)(m->cfg.n_layer > 0 ? m->cfg.n_layer : 1);
    size_t F = (size_t)m->cfg.hidden, V = (size_t)m->cfg.vocab;
    int bad = 0;
#define A(p, n) do { (p) = malloc((n) * sizeof *(p)); bad |= (p) == NULL; } while (0)
    A(m->tokens, N); A(m->targets, N);
    A(m->enc, N * C); A(m->ln1, L * N * C); A(m->rstd1, L * N); A(m->res, L * N * C);
    A(m->ln2, L * N * C); A(m->rstd2, L * N); A(m->gate, L * N * F); A(m->up, L * N * F);
    A(m->hact, L * N * F); A(m->out, L * N * C); A(m->atty, N * C); A(m->lnf, N * C);
    A(m->rstdf, N); A(m->logits, N * V); A(m->probs, N * V); A(m->losses, N);
    A(m->dres, N * C); A(m->dln, N * C); A(m->dh, N * F); A(m->dg, N * F); A(m->du, N * F);
    A(m->dlogits, N * V);
#undef A
    if (bad) { free_acts(m); return lm_fail(ATTN_ERR_NOMEM, "out of memory (activations for %zu tokens)", N); }
    m->act_cap = N;
    return ATTN_OK;
}

const attn_param *lm_params(lm_model *m, int64_t *count) {
    if (count) *count = m->n_params;
    return m->params;
}

int64_t lm_num_params(const lm_model *m) {
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_params; i++) n += m->params[i].numel;
    return n;
}

int64_t lm_num_trainable(const lm_model *m) {
    int64_t n = 0;
    for (int64_t i = 0; i < m->n_params; i++) n += m->params[i].trainable ? m->params[i].numel : 0;
    return n;
}

attn_status lm_lora_attach(lm_model *m, int64_t rank, float alpha, uint64_t seed) {
    if (rank < 1) return lm_fail(ATTN_ERR_CONFIG, "lora rank = %lld must be >= 1", (long long)rank);
    if (m->lora_rank) return lm_fail(ATTN_ERR_STATE, "LoRA already attached");
    for (int l = 0; l < m->cfg.n_layer; l++) {
        attn_status st = attn_mha_lora_attach(m->attn[l], ATTN_PROJ_Q | ATTN_PROJ_V, rank, alpha,
                                              seed * 1000003ull + (uint64_t)l + 7);
        if (st != ATTN_OK) return lm_fail_attn(st, "attn_mha_lora_attach");
    }
    m->own_frozen = 1;
    m->lora_rank = rank;
    m->lora_alpha = alpha;
    return build_params(m);
}

int64_t lm_lora_rank(const lm_model *m) { return m->lora_rank; }

attn_status lm_set_training(lm_model *m, int training) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        attn_status st = attn_mha_set_training(m->attn[l], training);
        if (st != ATTN_OK) return lm_fail_attn(st, "attn_mha_set_training");
    }
    m->training = training;
    return ATTN_OK;
}

attn_status lm_set_attention(lm_model *m, lm_attn_fwd_fn fwd, lm_attn_bwd_fn bwd, void *user) {
    if (!fwd != !bwd) return lm_fail(ATTN_ERR_NULL, "lm_set_attention: give both fwd and bwd, or neither");
    m->att_fwd = fwd;
    m->att_bwd = bwd;
    m->att_user = user;
    m->fwd_ok = 0;
    return ATTN_OK;
}

attn_status lm_zero_grad(lm_model *m) {
    memset(m->gmem, 0, m->n_own * sizeof(float));
    for (int l = 0; l < m->cfg.n_layer; l++) {
        attn_status st = attn_mha_zero_grad(m->attn[l]);
        if (st != ATTN_OK) return lm_fail_attn(st, "attn_mha_zero_grad");
    }
    return ATTN_OK;
}

struct lm_cache {
    attn_kvcache **kv; /* (L) */
    int L;
    int64_t len, capacity;
};

struct lm_paged {
    attn_kvpaged **kv; /* (L) */
    int L;
};

/* A batch of sequences of a paged cache: sequence ids[b] owns rows
 * [cu[b], cu[b+1]) of the forward (lm_forward_paged). */
typedef struct paged_batch {
    lm_paged *c;
    const int64_t *ids;
    int n;
    const int32_t *cu; /* (n + 1) */
} paged_batch;

/*
 * The body of the forward over N = B*T rows in m->tokens. With a cache
 * (B == 1), attention goes through attn_mha_forward_cached and only the
 * last row's logits are computed (into m->logits row 0). With a paged batch
 * (B == 1, T = all its rows), through attn_mha_forward_paged, and the logits
 * of each sequence's last row go to m->logits rows 0..n-1.
 */
static attn_status forward_body(lm_model *m, int B, int T, lm_cache *cache, const paged_batch *pb) {
    const lm_config *c = &m->cfg;
    int N = B * T, C = c->dim, F = c->hidden, V = c->vocab, L = c->n_layer;
    size_t NC = (size_t)N * C, NF = (size_t)N * F;
    encoder_forward(m->enc, m->tokens, m->w[P_WTE], N, C);
    const float *x = m->enc; /* (N, C) residual stream entering layer l */
    for (int l = 0; l < L; l++) {
        float *ln1 = m->ln1 + l * NC, *rstd1 = m->rstd1 + (size_t)l * N, *res = m->res + l * NC;
        float *ln2 = m->ln2 + l * NC, *rstd2 = m->rstd2 + (size_t)l * N, *out = m->out + l * NC;
        float *gate = m->gate + l * NF, *up = m->up + l * NF, *hact = m->hact + l * NF;
        rmsnorm_forward(ln1, rstd1, x, m->w[P_LN1] + (size_t)l * C, N, C, c->norm_eps);
        attn_status st;
        if (cache) {
            st = attn_mha_forward_cached(m->attn[l], cache->kv[l], ln1, 1, T, m->atty);
            if (st != ATTN_OK) return lm_fail_attn(st, "attn_mha_forward_cached");
        } else if (pb) {
            st = attn_mha_forward_paged(m->attn[l], pb->c->kv[l], pb->ids, pb->n, pb->cu, ln1, m->atty);
            if (st != ATTN_OK) return lm_fail_attn(st, "attn_mha_forward_paged");
        } else {
            attn_mha_input in;
            attn_mha_input_init(&in);
            in.layout = ATTN_BATCH_FIRST;
            in.batch = B;
            in.seq_q = T;
            in.x = ln1;
            if (m->att_fwd) {
                st = m->att_fwd(m->att_user, m->attn[l], &in, m->atty);
                if (st != ATTN_OK) return lm_fail(st, "layer %d: the attention set by lm_set_attention failed (%s)", l,
                                                  attn_status_str(st));
            } else if ((st = attn_mha_forward(m->attn[l], &in, m->atty)) != ATTN_OK) {
                return lm_fail_attn(st, "attn_mha_forward");
            }
        }
        residual_forward(res, x, m->atty, (int64_t)NC);
        rmsnorm_forward(ln2, rstd2, res, m->w[P_LN2] + (size_t)l * C, N, C, c->norm_eps);
        matmul_forward(gate, ln2, m->w[P_GATE] + (size_t)l * F * C, N, C, F);
        matmul_forward(up, ln2, m->w[P_UP] + (size_t)l * F * C, N, C, F);
        swiglu_forward(hact, gate, up, (int64_t)NF);
        /* out = res + hact @ down^T */
        memcpy(out, res, NC * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, F, 1.0f, hact, F,
                    m->w[P_DOWN] + (size_t)l * C * F, F, 1.0f, out, C);
        x = out;
    }
    if (pb) { /* each sequence's last row */
        for (int b = 0; b < pb->n; b++)
            rmsnorm_forward(m->lnf + (size_t)b * C, m->rstdf + b, x + (size_t)(pb->cu[b + 1] - 1) * C, m->w[P_LNF], 1, C,
                            c->norm_eps);
        matmul_forward(m->logits, m->lnf, m->w[P_HEAD], pb->n, C, V);
        return ATTN_OK;
    }
    int row0 = cache ? N - 1 : 0, rows = N - row0;
    rmsnorm_forward(m->lnf, m->rstdf, x + (size_t)row0 * C, m->w[P_LNF], rows, C, c->norm_eps);
    matmul_forward(m->logits, m->lnf, m->w[P_HEAD], rows, C, V);
    return ATTN_OK;
}

attn_status lm_forward(lm_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                       float *loss) {
    if (!m || !tokens) return lm_fail(ATTN_ERR_NULL, "lm_forward: NULL argument");
    if (B < 1 || T < 1 || T > m->cfg.max_seq)
        return lm_fail(ATTN_ERR_SHAPE, "batch %d x seq %d (seq must be in [1, %d])", B, T, m->cfg.max_seq);
    int N = B * T, V = m->cfg.vocab;
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= V) return lm_fail(ATTN_ERR_SHAPE, "token %d out of [0, %d)", tokens[n], V);
        if (targets && (targets[n] < 0 || targets[n] >= V))
            return lm_fail(ATTN_ERR_SHAPE, "target %d out of [0, %d)", targets[n], V);
    }
    attn_status st = ensure_acts(m, (size_t)N);
    if (st != ATTN_OK) return st;
    m->fwd_ok = 0;
    memcpy(m->tokens, tokens, (size_t)N * sizeof(int32_t));
    if (targets) memcpy(m->targets, targets, (size_t)N * sizeof(int32_t));
    st = forward_body(m, B, T, NULL, NULL);
    if (st != ATTN_OK) return st;
    m->B = B; m->T = T;
    m->fwd_targets = targets != NULL;
    m->fwd_training = m->training;
    m->fwd_ok = 1;
    if (targets) {
        crossentropy_forward(m->losses, m->probs, m->logits, m->targets, N, V);
        double s = 0.0;
        for (int n = 0; n < N; n++) s += m->losses[n];
        if (loss) *loss = (float)(s / N);
    }
    return ATTN_OK;
}

const float *lm_logits(const lm_model *m) { return m->logits; }

attn_status lm_backward(lm_model *m) {
    if (!m->fwd_ok || !m->fwd_targets || !m->fwd_training)
        return lm_fail(ATTN_ERR_STATE, "lm_backward without a training-mode forward with targets");
    const lm_config *c = &m->cfg;
    int B = m->B, T = m->T, N = B * T, C = c->dim, F = c->hidden, V = c->vocab, L = c->n_layer;
    size_t NC = (size_t)N * C, NF = (size_t)N * F;
    int own = !m->own_frozen; /* own weight gradients wanted */
    /* loss = mean_n loss_n */
    memset(m->dlogits, 0, (size_t)N * V * sizeof(float));
    crossentropy_backward(m->dlogits, m->probs, m->targets, 1.0f / (float)N, N, V);
    /* logits = lnf @ head^T */
    memset(m->dln, 0, NC * sizeof(float));
    matmul_backward(m->dln, own ? m->g[P_HEAD] : NULL, m->dlogits, m->lnf, m->w[P_HEAD], N, C, V);
    /* lnf = rmsnorm(x_L) */
    const float *xL = L > 0 ? m->out + (size_t)(L - 1) * NC : m->enc;
    memset(m->dres, 0, NC * sizeof(float));
    rmsnorm_backward(m->dres, own ? m->g[P_LNF] : NULL, m->dln, xL, m->w[P_LNF], m->rstdf, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l > 0 ? m->out + (size_t)(l - 1) * NC : m->enc;
        float *ln1 = m->ln1 + l * NC, *rstd1 = m->rstd1 + (size_t)l * N, *res = m->res + l * NC;
        float *ln2 = m->ln2 + l * NC, *rstd2 = m->rstd2 + (size_t)l * N;
        float *gate = m->gate + l * NF, *up = m->up + l * NF, *hact = m->hact + l * NF;
        /* out = res + hact @ down^T   (dres is d out; it flows to res unchanged) */
        memset(m->dh, 0, NF * sizeof(float));
        matmul_backward(m->dh, own ? m->g[P_DOWN] + (size_t)l * C * F : NULL, m->dres, hact,
                        m->w[P_DOWN] + (size_t)l * C * F, N, F, C);
        /* hact = silu(gate) * up */
        memset(m->dg, 0, NF * sizeof(float));
        memset(m->du, 0, NF * sizeof(float));
        swiglu_backward(m->dg, m->du, m->dh, gate, up, (int64_t)NF);
        /* gate = ln2 @ wgate^T, up = ln2 @ wup^T */
        memset(m->dln, 0, NC * sizeof(float));
        matmul_backward(m->dln, own ? m->g[P_GATE] + (size_t)l * F * C : NULL, m->dg, ln2,
                        m->w[P_GATE] + (size_t)l * F * C, N, C, F);
        matmul_backward(m->dln, own ? m->g[P_UP] + (size_t)l * F * C : NULL, m->du, ln2,
                        m->w[P_UP] + (size_t)l * F * C, N, C, F);
        /* ln2 = rmsnorm(res) */
        rmsnorm_backward(m->dres, own ? m->g[P_LN2] + (size_t)l * C : NULL, m->dln, res,
                         m->w[P_LN2] + (size_t)l * C, rstd2, N, C);
        /* res = x + attn(ln1)   (dres is now d res; it flows to x unchanged) */
        attn_status st;
        if (m->att_bwd) {
            st = m->att_bwd(m->att_user, m->attn[l], m->dres, m->dln);
            if (st != ATTN_OK) return lm_fail(st, "layer %d: the attention backward set by lm_set_attention failed (%s)",
                                              l, attn_status_str(st));
        } else if ((st = attn_mha_backward(m->attn[l], m->dres, m->dln, NULL, NULL)) != ATTN_OK) {
            return lm_fail_attn(st, "attn_mha_backward");
        }
        /* ln1 = rmsnorm(x) */
        rmsnorm_backward(m->dres, own ? m->g[P_LN1] + (size_t)l * C : NULL, m->dln, x,
                         m->w[P_LN1] + (size_t)l * C, rstd1, N, C);
        (void)ln1;
    }
    if (own) encoder_backward(m->g[P_WTE], m->dres, m->tokens, N, C);
    m->fwd_ok = 0; /* one backward per forward (the layers demand it too) */
    return ATTN_OK;
}

/* ─── KV cache inference ───────────────────────────────────────────────── */
attn_status lm_cache_create(lm_cache **out, const lm_model *m, int64_t capacity) {
    if (!out || !m) return lm_fail(ATTN_ERR_NULL, "lm_cache_create: NULL argument");
    *out = NULL;
    if (capacity < 1) return lm_fail(ATTN_ERR_SHAPE, "cache capacity = %lld must be >= 1", (long long)capacity);
    lm_cache *c = calloc(1, sizeof *c);
    if (!c) return lm_fail(ATTN_ERR_NOMEM, "out of memory");
    c->L = m->cfg.n_layer;
    c->capacity = capacity;
    c->kv = calloc((size_t)(c->L > 0 ? c->L : 1), sizeof *c->kv);
    if (!c->kv) { free(c); return lm_fail(ATTN_ERR_NOMEM, "out of memory"); }
    for (int l = 0; l < c->L; l++) {
        attn_status st = attn_kvcache_create(&c->kv[l], 1, capacity, m->cfg.n_kv_head, m->cfg.dim / m->cfg.n_head);
        if (st != ATTN_OK) { lm_cache_free(c); return lm_fail_attn(st, "attn_kvcache_create"); }
    }
    *out = c;
    return ATTN_OK;
}

void lm_cache_free(lm_cache *c) {
    if (!c) return;
    for (int l = 0; l < c->L; l++) attn_kvcache_free(c->kv[l]);
    free(c->kv);
    free(c);
}

attn_status lm_cache_reset(lm_cache *c) {
    for (int l = 0; l < c->L; l++) {
        attn_status st = attn_kvcache_reset(c->kv[l]);
        if (st != ATTN_OK) return lm_fail_attn(st, "attn_kvcache_reset");
    }
    c->len = 0;
    return ATTN_OK;
}

int64_t lm_cache_len(const lm_cache *c) { return c->len; }

attn_status lm_forward_cached(lm_model *m, lm_cache *c, const int32_t *tokens, int n,
                              float *logits_last) {
    if (!m || !c || !tokens || !logits_last) return lm_fail(ATTN_ERR_NULL, "lm_forward_cached: NULL argument");
    if (n < 1) return lm_fail(ATTN_ERR_SHAPE, "lm_forward_cached: n = %d < 1", n);
    if (c->L != m->cfg.n_layer) return lm_fail(ATTN_ERR_SHAPE, "cache has %d layers, model %d", c->L, m->cfg.n_layer);
    if (c->len + n > c->capacity)
        return lm_fail(ATTN_ERR_CAPACITY, "context full: %lld + %d tokens > capacity %lld", (long long)c->len, n,
                       (long long)c->capacity);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab) return lm_fail(ATTN_ERR_SHAPE, "token %d out of range", tokens[i]);
    attn_status st = ensure_acts(m, (size_t)n);
    if (st != ATTN_OK) return st;
    m->fwd_ok = 0;
    memcpy(m->tokens, tokens, (size_t)n * sizeof(int32_t));
    st = forward_body(m, 1, n, c, NULL);
    if (st != ATTN_OK) return st;
    c->len += n;
    memcpy(logits_last, m->logits, (size_t)m->cfg.vocab * sizeof(float));
    return ATTN_OK;
}

attn_status lm_paged_create(lm_paged **out, const lm_model *m, int64_t max_seqs, int64_t max_len, int64_t num_blocks) {
    if (!out || !m) return lm_fail(ATTN_ERR_NULL, "lm_paged_create: NULL argument");
    *out = NULL;
    lm_paged *c = calloc(1, sizeof *c);
    if (!c) return lm_fail(ATTN_ERR_NOMEM, "out of memory");
    c->L = m->cfg.n_layer;
    c->kv = calloc((size_t)(c->L > 0 ? c->L : 1), sizeof *c->kv);
    if (!c->kv) { free(c); return lm_fail(ATTN_ERR_NOMEM, "out of memory"); }
    attn_kvpaged_config pc;
    attn_kvpaged_config_init(&pc);
    pc.num_blocks = num_blocks; pc.block_size = 16; pc.max_seqs = max_seqs; pc.max_seq_len = max_len; pc.num_kv_heads = m->cfg.n_kv_head; pc.head_dim = m->cfg.dim / m->cfg.n_head;
    for (int l = 0; l < c->L; l++) {
        attn_status st = attn_kvpaged_create(&c->kv[l], &pc);
        if (st != ATTN_OK) { lm_paged_free(c); return lm_fail_attn(st, "attn_kvpaged_create"); }
    }
    *out = c;
    return ATTN_OK;
}

void lm_paged_free(lm_paged *c) {
    if (!c) return;
    for (int l = 0; l < c->L; l++) attn_kvpaged_free(c->kv[l]);
    free(c->kv);
    free(c);
}

/* op 0 add(id), 1 remove(id), 2 fork(parent, id) in every layer; the layers
 * stay in step because every layer's cache sees the same calls. */
static attn_status paged_op(lm_paged *c, int op, int64_t parent, int64_t id) {
    for (int l = 0; l < c->L; l++) {
        attn_status st = op == 0 ? attn_kvpaged_add(c->kv[l], id) : op == 1 ? attn_kvpaged_remove(c->kv[l], id)
                                                                          : attn_kvpaged_fork(c->kv[l], parent, id);
        if (st != ATTN_OK) return lm_fail_attn(st, op == 0 ? "attn_kvpaged_add" : op == 1 ? "attn_kvpaged_remove" : "attn_kvpaged_fork");
    }
    return ATTN_OK;
}
attn_status lm_paged_add(lm_paged *c, int64_t id) { return paged_op(c, 0, 0, id); }
attn_status lm_paged_remove(lm_paged *c, int64_t id) { return paged_op(c, 1, 0, id); }
attn_status lm_paged_fork(lm_paged *c, int64_t parent, int64_t id) { return paged_op(c, 2, parent, id); }

attn_status lm_forward_paged(lm_model *m, lm_paged *c, const int64_t *ids, int n, const int32_t *cu,
                             const int32_t *tokens, float *logits_last) {
    if (!m || !c || !ids || !cu || !tokens || !logits_last) return lm_fail(ATTN_ERR_NULL, "lm_forward_paged: NULL argument");
    if (n < 1 || cu[0] != 0) return lm_fail(ATTN_ERR_SHAPE, "lm_forward_paged: n = %d, cu[0] = %d", n, cu[0]);
    if (c->L != m->cfg.n_layer) return lm_fail(ATTN_ERR_SHAPE, "cache has %d layers, model %d", c->L, m->cfg.n_layer);
    for (int b = 0; b < n; b++)
        if (cu[b + 1] <= cu[b]) return lm_fail(ATTN_ERR_SHAPE, "lm_forward_paged: sequence %d has no new token", b);
    const int T = cu[n];
    for (int i = 0; i < T; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab) return lm_fail(ATTN_ERR_SHAPE, "token %d out of range", tokens[i]);
    attn_status st = ensure_acts(m, (size_t)T);
    if (st != ATTN_OK) return st;
    m->fwd_ok = 0;
    memcpy(m->tokens, tokens, (size_t)T * sizeof(int32_t));
    paged_batch pb = {c, ids, n, cu};
    st = forward_body(m, 1, T, NULL, &pb);
    if (st != ATTN_OK) return st;
    memcpy(logits_last, m->logits, (size_t)n * m->cfg.vocab * sizeof(float));
    return ATTN_OK;
}

/* ─── sampling ─────────────────────────────────────────────────────────── */
typedef struct { float v; int i; } scored;
/* the sampling order: larger logit first, ties by smaller index */
static int sample_before(scored x, scored y) { return x.v > y.v || (x.v == y.v && x.i < y.i); }

int lm_sample(const float *logits, int V, float temperature, int top_k, lm_rng *rng) {
    if (temperature <= 0.0f || top_k == 1) {
        int best = 0;
        for (int v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
        return best;
    }
    scored s[LM_VOCAB];
    if (V > LM_VOCAB) V = LM_VOCAB;
    int k = (top_k <= 0 || top_k > V) ? V : top_k;
    /* the k best in sampling order, by insertion: the same as sorting all V,
     * without the V log V comparator calls per token */
    int n = 0;
    for (int v = 0; v < V; v++) {
        scored x = {logits[v], v};
        if (n == k && !sample_before(x, s[n - 1])) continue;
        int j = n < k ? n++ : n - 1;
        for (; j > 0 && sample_before(x, s[j - 1]); j--) s[j] = s[j - 1];
        s[j] = x;
    }
    double p[LM_VOCAB], sum = 0.0;
    for (int j = 0; j < k; j++) { p[j] = exp((double)(s[j].v - s[0].v) / temperature); sum += p[j]; }
    double u = (double)lm_rng_uniform(rng) * sum, acc = 0.0;
    for (int j = 0; j < k; j++) {
        acc += p[j];
        if (u < acc) return s[j].i;
    }
    return s[k - 1].i;
}

/* ═══ checkpoints ══════════════════════════════════════════════════════════
 * Written with attn_st_writer (own tensors named per layer, layers through
 * attn_mha_save); the config goes into the header's "__metadata__" (string ->
 * string, as safetensors requires) through attn_st_writer_set_metadata and is
 * read back with attn_st_metadata.
 */
#define META_PREFIX "attn_lm."

attn_status lm_save(const lm_model *m, const char *path) {
    const lm_config *c = &m->cfg;
    attn_st_writer *w = NULL;
    attn_status st = attn_st_writer_create(&w);
    if (st != ATTN_OK) return lm_fail_attn(st, "attn_st_writer_create");
    /* own tensors (per-layer ones one per layer, HF names) */
    for (int64_t i = 0; i < m->n_params && st == ATTN_OK; i++) {
        const attn_param *p = &m->params[i];
        if (strstr(p->name, ".self_attn.")) continue;
        int64_t shape[2] = {p->shape[0], p->shape[1]};
        st = attn_st_writer_add_f32(w, p->name, p->data, p->ndim, shape);
        if (st != ATTN_OK) { lm_fail_attn(st, p->name); break; }
    }
    for (int l = 0; l < c->n_layer && st == ATTN_OK; l++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "model.layers.%d.self_attn", l);
        st = attn_mha_save(m->attn[l], w, prefix);
        if (st != ATTN_OK) lm_fail_attn(st, "attn_mha_save");
    }
    char v[13][48];
    snprintf(v[0], sizeof v[0], "%d", c->vocab);
    snprintf(v[1], sizeof v[1], "%d", c->max_seq);
    snprintf(v[2], sizeof v[2], "%d", c->n_layer);
    snprintf(v[3], sizeof v[3], "%d", c->dim);
    snprintf(v[4], sizeof v[4], "%d", c->n_head);
    snprintf(v[5], sizeof v[5], "%d", c->n_kv_head);
    snprintf(v[6], sizeof v[6], "%d", c->hidden);
    snprintf(v[7], sizeof v[7], "%.9g", (double)c->rope_theta);
    snprintf(v[8], sizeof v[8], "%.9g", (double)c->norm_eps);
    snprintf(v[9], sizeof v[9], "%lld", (long long)m->lora_rank);
    snprintf(v[10], sizeof v[10], "%.9g", (double)m->lora_alpha);
    const char *const meta[][2] = {
        {META_PREFIX "format", "1"},        {META_PREFIX "vocab", v[0]},     {META_PREFIX "max_seq", v[1]},
        {META_PREFIX "n_layer", v[2]},      {META_PREFIX "dim", v[3]},       {META_PREFIX "n_head", v[4]},
        {META_PREFIX "n_kv_head", v[5]},    {META_PREFIX "hidden", v[6]},    {META_PREFIX "rope_theta", v[7]},
        {META_PREFIX "norm_eps", v[8]},     {META_PREFIX "lora_rank", v[9]}, {META_PREFIX "lora_alpha", v[10]},
        {META_PREFIX "tokenizer", "bytes"}, {META_PREFIX "mlp", "swiglu"},   {META_PREFIX "rope", "neox"},
    };
    for (size_t i = 0; i < sizeof meta / sizeof meta[0] && st == ATTN_OK; i++) {
        st = attn_st_writer_set_metadata(w, meta[i][0], meta[i][1]);
        if (st != ATTN_OK) lm_fail_attn(st, "checkpoint metadata");
    }
    if (st == ATTN_OK) {
        st = attn_st_writer_save(w, path);
        if (st != ATTN_OK) lm_fail_attn(st, "writing checkpoint");
    }
    attn_st_writer_free(w);
    return st;
}

static attn_status meta_int(const attn_st *stf, const char *key, long long lo, long long hi, long long *out,
                            const char *path) {
    char full[96], *end;
    snprintf(full, sizeof full, META_PREFIX "%s", key);
    const char *v = attn_st_metadata(stf, full);
    if (!v) return lm_fail(ATTN_ERR_FORMAT, "%s: metadata %s missing (not an attn train checkpoint?)", path, full);
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) return lm_fail(ATTN_ERR_FORMAT, "%s: metadata %s = \"%s\" out of range", path, full, v);
    *out = x;
    return ATTN_OK;
}

static attn_status meta_float(const attn_st *stf, const char *key, float *out, const char *path) {
    char full[96], *end;
    snprintf(full, sizeof full, META_PREFIX "%s", key);
    const char *v = attn_st_metadata(stf, full);
    if (!v) return lm_fail(ATTN_ERR_FORMAT, "%s: metadata %s missing", path, full);
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x)) return lm_fail(ATTN_ERR_FORMAT, "%s: metadata %s = \"%s\" invalid", path, full, v);
    *out = (float)x;
    return ATTN_OK;
}

attn_status lm_load(lm_model **out, const char *path) {
    if (!out || !path) return lm_fail(ATTN_ERR_NULL, "lm_load: NULL argument");
    *out = NULL;
    attn_st *stf = NULL;
    attn_status st = attn_st_open(&stf, path);
    if (st != ATTN_OK) return lm_fail_attn(st, "reading checkpoint");
    lm_config c;
    lm_config_default(&c);
    long long x[8], lr = 0;
    float alpha = 0.0f;
    static const char *const keys[8] = {"vocab", "max_seq", "n_layer", "dim", "n_head", "n_kv_head", "hidden", "format"};
    for (int i = 0; i < 8 && st == ATTN_OK; i++) st = meta_int(stf, keys[i], 0, 1 << 20, &x[i], path);
    if (st == ATTN_OK) st = meta_float(stf, "rope_theta", &c.rope_theta, path);
    if (st == ATTN_OK) st = meta_float(stf, "norm_eps", &c.norm_eps, path);
    if (st == ATTN_OK) st = meta_int(stf, "lora_rank", 0, 1 << 16, &lr, path);
    if (st == ATTN_OK && lr > 0) st = meta_float(stf, "lora_alpha", &alpha, path);
    if (st == ATTN_OK && x[7] != 1) st = lm_fail(ATTN_ERR_FORMAT, "%s: checkpoint format %lld unsupported", path, x[7]);
    if (st != ATTN_OK) { attn_st_free(stf); return st; }
    c.vocab = (int)x[0]; c.max_seq = (int)x[1]; c.n_layer = (int)x[2]; c.dim = (int)x[3];
    c.n_head = (int)x[4]; c.n_kv_head = (int)x[5]; c.hidden = (int)x[6];
    if (c.hidden == 0) { attn_st_free(stf); return lm_fail(ATTN_ERR_FORMAT, "%s: hidden = 0", path); }
    lm_model *m = NULL;
    st = lm_create(&m, &c, 0);
    if (st == ATTN_OK && lr > 0) st = lm_lora_attach(m, lr, alpha, 0);
    for (int64_t i = 0; st == ATTN_OK && i < m->n_params; i++) {
        const attn_param *p = &m->params[i];
        if (strstr(p->name, ".self_attn.")) continue;
        int64_t shape[2] = {p->shape[0], p->shape[1]};
        st = attn_st_read_f32(stf, p->name, p->data, p->numel, p->ndim, shape);
        if (st != ATTN_OK) lm_fail_attn(st, "reading checkpoint");
    }
    for (int l = 0; st == ATTN_OK && l < c.n_layer; l++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "model.layers.%d.self_attn", l);
        st = attn_mha_load(m->attn[l], stf, prefix, ATTN_NAMING_HF);
        if (st != ATTN_OK) lm_fail_attn(st, "reading checkpoint");
    }
    attn_st_free(stf);
    if (st != ATTN_OK) { lm_free(m); return st; }
    *out = m;
    return ATTN_OK;
}
