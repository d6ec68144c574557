/* SPDX-License-Identifier: MIT */
/* mha.c — the multi-head attention layer: configuration, creation,
 * initialisation and forward. Backward is in mha_backward.c, LoRA in lora.c,
 * parameters and load/save in params.c, the KV cache in kvcache.c.
 *
 * Legend (see mha_internal.h): B batch, Sq / Skv query / key length, E embed,
 * Hq / Hkv heads, D head dim, qd = Hq*D, kvd = Hkv*D, rows = B*S in the
 * caller's order ((b, s) batch-first, (s, b) seq-first).
 *
 * Forward data flow (no permute copies; the kernel reads strided views):
 *   x (rows, E) ──GEMM Wqkv──► proj (rows, qd + 2 kvd) = [q | k | v]   (+LoRA)
 *   row pass: + bias ─► RMSNorm (q, k) ─► RoPE (q, k)                  in place
 *   sdpa_fwd(q, k, v views of proj) ─► o (rows, qd), lse (B, Hq, Sq)
 *   y (rows, E) = o Wo^T + bo (+LoRA)
 */
#include "layer/mha_internal.h"

#include "io/half.h"
#include "kernels/gemm.h"
#include "kernels/proj_typed.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MHA_MAX_WIDTH ((int64_t)1 << 24) /* bound on E, kdim, vdim, Hq*D (keeps sizes in int range) */
#define MHA_MAX_ROWS ((int64_t)INT32_MAX)

/* ═══ small utilities ═══════════════════════════════════════════════════════ */

void *mha__grow(mha_buf *b, size_t bytes) {
    if (bytes <= b->cap && b->p) return b->p;
    if (bytes == 0) bytes = 64;
    void *p = attn__malloc(bytes);
    if (!p) return NULL;
    attn__free(b->p);
    b->p = p;
    b->cap = attn__round_up(bytes);
    return p;
}

attn_status mha__grow_f(mha_buf *b, int64_t n, float **out) {
    int ok = 1;
    size_t bytes = attn__mul_size((size_t)(n < 0 ? 0 : n), sizeof(float), &ok);
    void *p = ok ? mha__grow(b, bytes) : NULL;
    if (!p) return attn__fail(ATTN_ERR_NOMEM, "attn_mha: cannot allocate %lld floats of scratch", (long long)n);
    *out = (float *)p;
    return ATTN_OK;
}

static void buf_free(mha_buf *b) {
    attn__free(b->p);
    b->p = NULL;
    b->cap = 0;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ═══ configuration ═════════════════════════════════════════════════════════ */

/* The defaults of every field (appended fields: add their default here). */
static void mha_config_defaults(attn_mha_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = (uint32_t)sizeof *cfg;
    cfg->window_left = -1;
    cfg->window_right = -1;
}

static void mha_input_defaults(attn_mha_input *in) {
    memset(in, 0, sizeof *in);
    in->struct_size = (uint32_t)sizeof *in;
    in->layout = ATTN_BATCH_FIRST;
}

/* First release's layouts end at qk_norm_eps / mask_stride_q; later fields are appended. */
const attn__struct_layout attn__mha_config_layout = {
    "attn_mha_config", ATTN__SIZE_THROUGH(attn_mha_config, qk_norm_eps), sizeof(attn_mha_config)};
static const attn__struct_layout MHA_INPUT_LAYOUT = {
    "attn_mha_input", ATTN__SIZE_THROUGH(attn_mha_input, mask_stride_q), sizeof(attn_mha_input)};

attn_status attn_mha_config_init_size(attn_mha_config *cfg, size_t struct_size) {
    attn_mha_config def;
    mha_config_defaults(&def);
    return attn__struct_init(cfg, struct_size, &def, &attn__mha_config_layout);
}

attn_status attn_mha_input_init_size(attn_mha_input *in, size_t struct_size) {
    attn_mha_input def;
    mha_input_defaults(&def);
    return attn__struct_init(in, struct_size, &def, &MHA_INPUT_LAYOUT);
}

#define CFG_FAIL(...) attn__fail(ATTN_ERR_CONFIG, "attn_mha_config: " __VA_ARGS__)

/* The layer's RoPE fields as the kernel's config (factor arrays point into c). */
static attn_rope_cfg mha_rope_cfg(const attn_mha_config *c) {
    attn_rope_cfg rc = {c->rope, c->rope_dim, (double)c->rope_theta, c->rope_scaling, (double)c->rope_factor,
                        (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor,
                        (double)c->rope_original_max_pos, (double)c->rope_max_pos,
                        (double)c->rope_attention_factor, (double)c->rope_beta_fast,
                        (double)c->rope_beta_slow, (double)c->rope_mscale, (double)c->rope_mscale_all_dim,
                        c->rope_no_truncate, c->rope_short_factor, c->rope_long_factor};
    return rc;
}

/* rope != NONE: defaults resolved, then the kernel's own check (kernels/rope.h) */
static attn_status rope_check(attn_mha_config *c) {
    if (c->rope_theta == 0.0f) c->rope_theta = 10000.0f;
    if (c->rope_dim == 0) c->rope_dim = c->head_dim;
    if (c->rope_scaling == ATTN_ROPE_SCALING_LONGROPE && c->rope_dim / 2 > 128)
        return CFG_FAIL("rope_dim = %lld: longrope supports at most 256", (long long)c->rope_dim);
    const attn_rope_cfg rc = mha_rope_cfg(c);
    return attn__rope_cfg_check(&rc, c->head_dim, "attn_mha_config", "rope_", ATTN_ERR_CONFIG);
}


static int flag_ok(int v) { return v == 0 || v == 1; }

/* Validates *in and writes the resolved configuration (defaults filled) to *c. */
static attn_status resolve_config(const attn_mha_config *in, attn_mha_config *c) {
    attn_mha_config def;
    mha_config_defaults(&def);
    attn_status rd = attn__struct_read("attn_mha_create", in, c, &def, &attn__mha_config_layout, ATTN_ERR_CONFIG);
    if (rd != ATTN_OK) return rd;
    c->struct_size = (uint32_t)sizeof *c; /* the resolved config has this library's layout */
    if (c->embed_dim < 1 || c->embed_dim > MHA_MAX_WIDTH)
        return CFG_FAIL("embed_dim = %lld, must be in [1, %lld]", (long long)c->embed_dim, (long long)MHA_MAX_WIDTH);
    if (c->num_heads < 1 || c->num_heads > 65536)
        return CFG_FAIL("num_heads = %lld, must be in [1, 65536]", (long long)c->num_heads);
    if (c->num_kv_heads < 0)
        return CFG_FAIL("num_kv_heads = %lld, must be >= 0 (0 = num_heads)", (long long)c->num_kv_heads);
    if (c->num_kv_heads == 0) c->num_kv_heads = c->num_heads;
    if (c->num_kv_heads > c->num_heads || c->num_heads % c->num_kv_heads != 0)
        return CFG_FAIL("num_kv_heads = %lld does not divide num_heads = %lld", (long long)c->num_kv_heads,
                        (long long)c->num_heads);
    if (c->head_dim < 0) return CFG_FAIL("head_dim = %lld, must be >= 0 (0 = embed_dim / num_heads)", (long long)c->head_dim);
    if (c->head_dim == 0) {
        if (c->embed_dim % c->num_heads != 0)
            return CFG_FAIL("head_dim = 0 needs num_heads = %lld to divide embed_dim = %lld", (long long)c->num_heads,
                            (long long)c->embed_dim);
        c->head_dim = c->embed_dim / c->num_heads;
    }
    if (c->head_dim > 256) return CFG_FAIL("head_dim = %lld, must be <= 256", (long long)c->head_dim);
    if (c->num_heads * c->head_dim > MHA_MAX_WIDTH)
        return CFG_FAIL("num_heads * head_dim = %lld, must be <= %lld", (long long)(c->num_heads * c->head_dim),
                        (long long)MHA_MAX_WIDTH);
    if (c->kdim < 0 || c->kdim > MHA_MAX_WIDTH)
        return CFG_FAIL("kdim = %lld, must be in [0, %lld] (0 = embed_dim)", (long long)c->kdim, (long long)MHA_MAX_WIDTH);
    if (c->kdim == 0) c->kdim = c->embed_dim;
    if (c->vdim < 0 || c->vdim > MHA_MAX_WIDTH)
        return CFG_FAIL("vdim = %lld, must be in [0, %lld] (0 = kdim)", (long long)c->vdim, (long long)MHA_MAX_WIDTH);
    if (c->vdim == 0) c->vdim = c->kdim;
    if (!flag_ok(c->bias_q)) return CFG_FAIL("bias_q = %d, must be 0 or 1", c->bias_q);
    if (!flag_ok(c->bias_k)) return CFG_FAIL("bias_k = %d, must be 0 or 1", c->bias_k);
    if (!flag_ok(c->bias_v)) return CFG_FAIL("bias_v = %d, must be 0 or 1", c->bias_v);
    if (!flag_ok(c->bias_o)) return CFG_FAIL("bias_o = %d, must be 0 or 1", c->bias_o);
    if (!flag_ok(c->causal)) return CFG_FAIL("causal = %d, must be 0 or 1", c->causal);
    if (!isfinite(c->scale) || c->scale < 0.0f) return CFG_FAIL("scale = %g, must be finite and >= 0 (0 = 1/sqrt(head_dim))", (double)c->scale);
    if (c->scale == 0.0f) c->scale = (float)(1.0 / sqrt((double)c->head_dim));
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f)) return CFG_FAIL("dropout = %g, must be in [0, 1)", (double)c->dropout);
    if (!isfinite(c->softcap) || c->softcap < 0.0f) return CFG_FAIL("softcap = %g, must be finite and >= 0 (0 = off)", (double)c->softcap);
    if (c->window_left < -1) return CFG_FAIL("window_left = %lld, must be >= -1 (-1 = unlimited)", (long long)c->window_left);
    if (c->window_right < -1) return CFG_FAIL("window_right = %lld, must be >= -1 (-1 = unlimited)", (long long)c->window_right);
    if (c->rope != ATTN_ROPE_NONE && c->rope != ATTN_ROPE_NEOX && c->rope != ATTN_ROPE_GPTJ)
        return CFG_FAIL("rope = %d, must be ATTN_ROPE_NONE (0), NEOX (1) or GPTJ (2)", c->rope);
    if (c->rope != ATTN_ROPE_NONE) {
        attn_status rs = rope_check(c);
        if (rs != ATTN_OK) return rs;
    } else {
        if (c->rope_dim != 0) return CFG_FAIL("rope_dim = %lld set but rope = ATTN_ROPE_NONE", (long long)c->rope_dim);
        if (c->rope_scaling != 0) return CFG_FAIL("rope_scaling = %d set but rope = ATTN_ROPE_NONE", c->rope_scaling);
    }
    if (!flag_ok(c->qk_norm)) return CFG_FAIL("qk_norm = %d, must be 0 or 1", c->qk_norm);
    if (!isfinite(c->qk_norm_eps) || c->qk_norm_eps < 0.0f)
        return CFG_FAIL("qk_norm_eps = %g, must be finite and >= 0 (0 = 1e-6)", (double)c->qk_norm_eps);
    if (c->qk_norm_eps == 0.0f) c->qk_norm_eps = 1e-6f;
    if (!isfinite(c->qk_norm_offset)) return CFG_FAIL("qk_norm_offset = %g, must be finite", (double)c->qk_norm_offset);
    if (c->qk_norm_offset != 0.0f && !c->qk_norm)
        return CFG_FAIL("qk_norm_offset = %g set but qk_norm = 0", (double)c->qk_norm_offset);
    if (c->weight_dtype != ATTN_DTYPE_F32 && c->weight_dtype != ATTN_DTYPE_BF16 && c->weight_dtype != ATTN_DTYPE_F16)
        return CFG_FAIL("weight_dtype = %d, must be ATTN_DTYPE_F32 (0), F16 (1) or BF16 (2)", (int)c->weight_dtype);
    return ATTN_OK;
}

/* ═══ create / free ═════════════════════════════════════════════════════════ */

void mha__rebuild_params(attn_mha *m) {
    static const char *proj[MHA_NPROJ] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    const int64_t out_w[MHA_NPROJ] = {m->qd, m->kvd, m->kvd, m->E};
    const int64_t in_w[MHA_NPROJ] = {m->E, m->kdim, m->vdim, m->qd};
    int n = 0;
    for (int p = 0; p < MHA_NPROJ; p++) {
        mha_param_rec *r = &m->params[n++];
        snprintf(r->name, sizeof r->name, "%s.weight", proj[p]);
        r->wproj = p;
        r->data = m->w[p]; r->grad = m->dw[p]; r->ndim = 2;
        r->shape[0] = out_w[p]; r->shape[1] = in_w[p]; r->numel = out_w[p] * in_w[p];
        r->trainable = m->base_trainable;
        if (m->b[p]) {
            r = &m->params[n++];
            snprintf(r->name, sizeof r->name, "%s.bias", proj[p]);
            r->wproj = -1;
            r->data = m->b[p]; r->grad = m->db[p]; r->ndim = 1;
            r->shape[0] = out_w[p]; r->shape[1] = 1; r->numel = out_w[p];
            r->trainable = m->base_trainable;
        }
    }
    if (m->qn) {
        const char *nm[2] = {"q_norm.weight", "k_norm.weight"};
        float *d[2] = {m->qn, m->kn}, *g[2] = {m->dqn, m->dkn};
        for (int i = 0; i < 2; i++) {
            mha_param_rec *r = &m->params[n++];
            snprintf(r->name, sizeof r->name, "%s", nm[i]);
            r->wproj = -1;
            r->data = d[i]; r->grad = g[i]; r->ndim = 1;
            r->shape[0] = m->D; r->shape[1] = 1; r->numel = m->D;
            r->trainable = m->base_trainable;
        }
    }
    for (int p = 0; p < MHA_NPROJ; p++) {
        mha_lora *l = &m->lora[p];
        if (l->rank <= 0) continue;
        mha_param_rec *r = &m->params[n++];
        snprintf(r->name, sizeof r->name, "%s.lora_A.weight", proj[p]);
        r->wproj = -1;
        r->data = l->A; r->grad = l->dA; r->ndim = 2;
        r->shape[0] = l->rank; r->shape[1] = l->in; r->numel = l->rank * l->in; r->trainable = 1;
        r = &m->params[n++];
        snprintf(r->name, sizeof r->name, "%s.lora_B.weight", proj[p]);
        r->wproj = -1;
        r->data = l->B; r->grad = l->dB; r->ndim = 2;
        r->shape[0] = l->out; r->shape[1] = l->rank; r->numel = l->out * l->rank; r->trainable = 1;
    }
    m->nparams = n;
}

attn_status attn_mha_create(attn_mha **out, const attn_mha_config *cfg) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_mha_create: out is NULL");
    *out = NULL;
    if (!cfg) return attn__fail(ATTN_ERR_NULL, "attn_mha_create: cfg is NULL");
    attn_mha_config c;
    attn_status s = resolve_config(cfg, &c);
    if (s != ATTN_OK) return s;

    attn_mha *m = (attn_mha *)calloc(1, sizeof *m);
    if (!m) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_create: out of memory");
    m->cfg = c;
    m->E = c.embed_dim; m->Hq = c.num_heads; m->Hkv = c.num_kv_heads; m->D = c.head_dim;
    m->kdim = c.kdim; m->vdim = c.vdim;
    m->qd = m->Hq * m->D; m->kvd = m->Hkv * m->D;
    m->wdt = c.weight_dtype;
    m->proj_k = (int)attn__proj_kernel_for(m->wdt);
    const int typed = m->wdt != ATTN_DTYPE_F32;
    m->base_trainable = !typed;

    /* fp32 arena: Wq | Wk | Wv (adjacent) | Wo | bq | bk | bv (adjacent) | bo | q_norm | k_norm,
     * without the weights for a 16-bit layer, whose warena holds Wq | Wk | Wv (adjacent) | Wo */
    const int64_t nw[MHA_NPROJ] = {m->qd * m->E, m->kvd * m->kdim, m->kvd * m->vdim, m->E * m->qd};
    const int64_t nb[MHA_NPROJ] = {c.bias_q ? m->qd : 0, c.bias_k ? m->kvd : 0, c.bias_v ? m->kvd : 0,
                                   c.bias_o ? m->E : 0};
    int64_t off_w[MHA_NPROJ], off_b[MHA_NPROJ], off_n = 0, total = 0;
    for (int p = 0; p < 3; p++) { off_w[p] = total; total += nw[p]; }
    total = (total + 15) & ~(int64_t)15;
    off_w[3] = total; total += nw[3];
    if (typed) { m->warena_n = (size_t)total; total = 0; }
    total = (total + 15) & ~(int64_t)15;
    for (int p = 0; p < 3; p++) { off_b[p] = total; total += nb[p]; }
    total = (total + 15) & ~(int64_t)15;
    off_b[3] = total; total += nb[3];
    total = (total + 15) & ~(int64_t)15;
    if (c.qk_norm) { off_n = total; total += 2 * m->D; }
    if (total == 0) total = 16; /* a 16-bit layer without biases or norms */
    m->arena_n = (size_t)total;
    m->arena = (float *)attn__calloc((size_t)total, sizeof(float));
    if (typed) m->warena = (uint16_t *)attn__calloc(m->warena_n, sizeof(uint16_t));
    else m->garena = (float *)attn__calloc((size_t)total, sizeof(float));
    if (c.rope != ATTN_ROPE_NONE) {
        m->rope_half = c.rope_dim / 2;
        m->inv_freq = (double *)malloc((size_t)m->rope_half * sizeof(double));
    }
    if (c.qk_norm && c.qk_norm_offset != 0.0f) m->qn_eff = (float *)attn__malloc((size_t)(2 * m->D) * sizeof(float));
    if (!m->arena || (typed ? !m->warena : !m->garena) || (c.rope != ATTN_ROPE_NONE && !m->inv_freq) ||
        (c.qk_norm && c.qk_norm_offset != 0.0f && !m->qn_eff)) {
        attn_mha_free(m);
        return attn__fail(ATTN_ERR_NOMEM, "attn_mha_create: cannot allocate %lld parameters", (long long)total);
    }
    for (int p = 0; p < MHA_NPROJ; p++) {
        m->w16[p] = typed ? m->warena + off_w[p] : NULL;
        m->w[p] = typed ? NULL : m->arena + off_w[p];
        m->dw[p] = typed ? NULL : m->garena + off_w[p];
        m->b[p] = nb[p] ? m->arena + off_b[p] : NULL;
        m->db[p] = nb[p] && !typed ? m->garena + off_b[p] : NULL;
    }
    if (c.qk_norm) {
        m->qn = m->arena + off_n; m->kn = m->qn + m->D;
        m->dqn = typed ? NULL : m->garena + off_n; m->dkn = typed ? NULL : m->dqn + m->D;
        for (int64_t i = 0; i < 2 * m->D; i++) m->qn[i] = 1.0f - c.qk_norm_offset; /* identity */
    }
    if (m->rope_half) {
        const attn_mha_config *mc = &m->cfg; /* the layer's own copy: the factor arrays live there */
        attn_rope_cfg rc = mha_rope_cfg(mc);
        m->rope_cfg = rc;
        m->rope_mult = attn__rope_attention_factor(&rc);
        attn__rope_inv_freq(&rc, 0, m->inv_freq);
    }
    mha__rebuild_params(m);
    *out = m;
    return ATTN_OK;
}

void attn_mha_free(attn_mha *m) {
    if (!m) return;
    attn__free(m->arena);
    attn__free(m->garena);
    attn__free(m->warena);
    attn__free(m->lora_arena);
    free(m->inv_freq);
    attn__free(m->qn_eff);
    mha_buf *bufs[] = {&m->b_x, &m->b_key, &m->b_value, &m->b_proj, &m->b_qhat, &m->b_khat, &m->b_rstd_q,
                       &m->b_rstd_k, &m->b_pos, &m->b_cos_q, &m->b_sin_q, &m->b_cos_k, &m->b_sin_k, &m->b_o,
                       &m->b_lse, &m->b_lens, &m->b_mask, &m->b_ws, &m->b_dproj, &m->b_do, &m->b_dxa,
                       &m->b_part, &m->b_cache_q, &m->b_wpanel};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) buf_free(bufs[i]);
    for (int p = 0; p < MHA_NPROJ; p++) buf_free(&m->b_xa[p]);
    free(m);
}

const attn_mha_config *attn_mha_get_config(const attn_mha *m) { return m ? &m->cfg : NULL; }

attn_status attn_mha_set_training(attn_mha *m, int training) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_set_training: m is NULL");
    if (!flag_ok(training)) return attn__fail(ATTN_ERR_OPTION, "attn_mha_set_training: training = %d, must be 0 or 1", training);
    if (training) {
        attn_status s = mha__fp32_only(m, "attn_mha_set_training");
        if (s != ATTN_OK) return s;
    }
    m->training = training;
    if (!training) m->st.valid = 0;
    return ATTN_OK;
}

/* ═══ initialisation ════════════════════════════════════════════════════════
 * Each parameter draws from its own splitmix64 stream keyed by (seed, name),
 * so the bits depend only on the seed and the configuration. */

typedef struct rng64 { uint64_t s; } rng64;
static uint64_t rng_next(rng64 *r) { return mix64(r->s += 0x9E3779B97F4A7C15ull); }
static double rng_unit(rng64 *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}
static rng64 stream_for(uint64_t seed, const char *name) {
    rng64 r = {mix64(seed ^ 0xA0761D6478BD642Full) ^ mix64(name_hash(name))};
    return r;
}

/* The next n values of stream r: U(-a, a), or N(0, std^2) by Box-Muller, two values
 * per draw (n even, except at the end of a tensor, keeps the pairs of one stream). */
static void fill_uniform_r(rng64 *r, float *w, int64_t n, double a) {
    for (int64_t i = 0; i < n; i++) w[i] = (float)(a * (2.0 * rng_unit(r) - 1.0));
}
static void fill_normal_r(rng64 *r, float *w, int64_t n, double std) {
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = rng_unit(r), u2 = rng_unit(r);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)), ang = 6.283185307179586 * u2;
        w[i] = (float)(std * rad * cos(ang));
        if (i + 1 < n) w[i + 1] = (float)(std * rad * sin(ang));
    }
}

void mha__fill_uniform(float *w, int64_t n, double a, uint64_t seed, const char *name) {
    rng64 r = stream_for(seed, name);
    fill_uniform_r(&r, w, n, a);
}

/* Weight record r: the fp32 values of its stream (xavier bound a, or normal), in
 * place or, for a 16-bit layer, 4096 at a time rounded to nearest even. */
static void fill_weight(attn_mha *m, const mha_param_rec *r, int normal, double a, uint64_t seed) {
    rng64 g = stream_for(seed, r->name);
    if (!m->warena) {
        if (normal) fill_normal_r(&g, r->data, r->numel, 0.02);
        else fill_uniform_r(&g, r->data, r->numel, a);
        return;
    }
    float buf[4096]; /* even: the normal pairs stay whole */
    uint16_t *dst = m->w16[r->wproj];
    for (int64_t i0 = 0; i0 < r->numel; i0 += 4096) {
        const int64_t n = r->numel - i0 < 4096 ? r->numel - i0 : 4096;
        if (normal) fill_normal_r(&g, buf, n, 0.02);
        else fill_uniform_r(&g, buf, n, a);
        for (int64_t i = 0; i < n; i++)
            dst[i0 + i] = m->wdt == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(buf[i]) : attn__f32_to_f16(buf[i]);
    }
}

attn_status attn_mha_init_weights(attn_mha *m, attn_init_scheme scheme, uint64_t seed) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_init_weights: m is NULL");
    if (scheme != ATTN_INIT_XAVIER_UNIFORM && scheme != ATTN_INIT_NORMAL)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_init_weights: scheme = %d, must be XAVIER_UNIFORM (0) or NORMAL (1)",
                          (int)scheme);
    if (m->lora_merged)
        return attn__fail(ATTN_ERR_STATE, "attn_mha_init_weights: LoRA is merged; unmerge first");
    for (int i = 0; i < m->nparams; i++) {
        mha_param_rec *r = &m->params[i];
        if (strstr(r->name, "lora_")) continue; /* adapters keep their own initialisation */
        if (strstr(r->name, "_norm.")) {
            for (int64_t j = 0; j < r->numel; j++) r->data[j] = 1.0f - m->cfg.qk_norm_offset; /* effective weight one */
        } else if (r->ndim == 1) {
            memset(r->data, 0, (size_t)r->numel * sizeof(float));
        } else {
            fill_weight(m, r, scheme == ATTN_INIT_NORMAL, sqrt(6.0 / (double)(r->shape[0] + r->shape[1])), seed);
        }
    }
    return ATTN_OK;
}

/* ═══ elementwise row passes ════════════════════════════════════════════════ */

typedef struct rows_ctx {
    attn_mha *m;
    mha_seg *segs;
    int nseg;
    int64_t rows;
    float *part; /* backward: (ntasks, nseg, D) partial norm-weight grads */
} rows_ctx;

static void fwd_rows_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    rows_ctx *c = (rows_ctx *)vctx;
    const attn_mha *m = c->m;
    int64_t r0 = t * MHA_ROW_CHUNK, r1 = r0 + MHA_ROW_CHUNK;
    if (r1 > c->rows) r1 = c->rows;
    for (int64_t r = r0; r < r1; r++) {
        for (int s = 0; s < c->nseg; s++) {
            const mha_seg *g = &c->segs[s];
            float *row = g->base + r * g->ld;
            const int64_t W = g->H * g->Dh;
            if (g->bias)
                for (int64_t i = 0; i < W; i++) row[i] += g->bias[i];
            if (g->norm_w)
                attn__rmsnorm_fwd_row(row, g->H, g->Dh, g->Dh, g->norm_w, m->cfg.qk_norm_eps,
                                      g->xhat ? g->xhat + r * W : NULL, g->rstd ? g->rstd + r * g->H : NULL);
            if (g->cos_t)
                attn__rope_row(row, g->H, g->Dh, m->cfg.rope, m->rope_half, g->cos_t + r * m->rope_half,
                               g->sin_t + r * m->rope_half, 0);
        }
    }
}

void mha__norm_weights(attn_mha *m, const float **qw, const float **kw) {
    if (!m->qn_eff) {
        *qw = m->qn;
        *kw = m->kn;
        return;
    }
    for (int64_t i = 0; i < 2 * m->D; i++) m->qn_eff[i] = m->cfg.qk_norm_offset + m->qn[i];
    *qw = m->qn_eff;
    *kw = m->qn_eff + m->D;
}

void mha__fwd_rows(attn_mha *m, int64_t rows, mha_seg *segs, int nseg) {
    int any = 0;
    for (int s = 0; s < nseg; s++) any |= segs[s].bias || segs[s].norm_w || segs[s].cos_t;
    if (!any || rows <= 0) return;
    rows_ctx c = {m, segs, nseg, rows, NULL};
    attn__parallel_for((rows + MHA_ROW_CHUNK - 1) / MHA_ROW_CHUNK, 0, fwd_rows_task, &c);
}

static void bwd_rows_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    rows_ctx *c = (rows_ctx *)vctx;
    const attn_mha *m = c->m;
    int64_t r0 = t * MHA_ROW_CHUNK, r1 = r0 + MHA_ROW_CHUNK;
    if (r1 > c->rows) r1 = c->rows;
    for (int s = 0; s < c->nseg; s++) {
        const mha_seg *g = &c->segs[s];
        float *part = (g->norm_w && g->dnorm_w) ? c->part + (t * c->nseg + s) * m->D : NULL;
        if (part) memset(part, 0, (size_t)m->D * sizeof(float));
        const int64_t W = g->H * g->Dh;
        for (int64_t r = r0; r < r1; r++) {
            float *row = g->base + r * g->ld;
            if (g->cos_t)
                attn__rope_row(row, g->H, g->Dh, m->cfg.rope, m->rope_half, g->cos_t + r * m->rope_half,
                               g->sin_t + r * m->rope_half, 1);
            if (g->norm_w)
                attn__rmsnorm_bwd_row(row, g->H, g->Dh, g->Dh, g->norm_w, g->xhat + r * W, g->rstd + r * g->H, part);
        }
    }
}

attn_status mha__bwd_rows(attn_mha *m, int64_t rows, mha_seg *segs, int nseg) {
    int any = 0, norm = 0;
    for (int s = 0; s < nseg; s++) {
        any |= segs[s].norm_w || segs[s].cos_t;
        norm |= segs[s].norm_w && segs[s].dnorm_w;
    }
    if (!any || rows <= 0) return ATTN_OK;
    const int64_t ntasks = (rows + MHA_ROW_CHUNK - 1) / MHA_ROW_CHUNK;
    rows_ctx c = {m, segs, nseg, rows, NULL};
    if (norm) {
        attn_status s = mha__grow_f(&m->b_part, ntasks * nseg * m->D, &c.part);
        if (s != ATTN_OK) return s;
    }
    attn__parallel_for(ntasks, 0, bwd_rows_task, &c);
    if (norm) { /* reduce the partials in task order: deterministic */
        for (int s = 0; s < nseg; s++) {
            mha_seg *g = &segs[s];
            if (!(g->norm_w && g->dnorm_w)) continue;
            for (int64_t t = 0; t < ntasks; t++) {
                const float *p = c.part + (t * nseg + s) * m->D;
                for (int64_t d = 0; d < m->D; d++) g->dnorm_w[d] += p[d];
            }
        }
    }
    return ATTN_OK;
}

typedef struct bias_ctx {
    int64_t rows, N, ld;
    const float *dY;
    float *db;
} bias_ctx;

#define BIAS_COLS 64
static void bias_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    bias_ctx *c = (bias_ctx *)vctx;
    int64_t c0 = t * BIAS_COLS, c1 = c0 + BIAS_COLS;
    if (c1 > c->N) c1 = c->N;
    double acc[BIAS_COLS];
    for (int64_t j = 0; j < c1 - c0; j++) acc[j] = 0.0;
    for (int64_t r = 0; r < c->rows; r++) {
        const float *row = c->dY + r * c->ld + c0;
        for (int64_t j = 0; j < c1 - c0; j++) acc[j] += (double)row[j];
    }
    for (int64_t j = 0; j < c1 - c0; j++) c->db[c0 + j] += (float)acc[j];
}

void mha__bias_grad(int64_t rows, int64_t N, const float *dY, int64_t ld, float *db) {
    if (rows <= 0 || N <= 0) return;
    bias_ctx c = {rows, N, ld, dY, db};
    attn__parallel_for((N + BIAS_COLS - 1) / BIAS_COLS, 0, bias_task, &c);
}

attn_status mha__rope_tables(attn_mha *m, const int64_t *pos, int64_t rows, mha_buf *bc, mha_buf *bs,
                             float **cos_t, float **sin_t) {
    attn_status s = mha__grow_f(bc, rows * m->rope_half, cos_t);
    if (s == ATTN_OK) s = mha__grow_f(bs, rows * m->rope_half, sin_t);
    if (s != ATTN_OK) return s;
    m->rope_mult = attn__rope_prepare(&m->rope_cfg, pos, rows, m->inv_freq);
    attn__rope_tables(m->inv_freq, m->rope_half, pos, rows, m->rope_mult, *cos_t, *sin_t);
    return ATTN_OK;
}

/* ═══ projections ═══════════════════════════════════════════════════════════ */

void mha__lora_fwd(attn_mha *m, int p, int64_t rows, const float *X, int64_t ld_x, float *Y, int64_t ld_y,
                   float *xa) {
    if (!mha__lora_active(m, p)) return;
    const mha_lora *l = &m->lora[p];
    /* xa (rows, r) = X A^T */
    attn__sgemm(0, 1, rows, l->rank, l->in, 1.0f, X, ld_x, l->A, l->in, 0.0f, xa, l->rank);
    /* Y += scale * xa B^T */
    attn__sgemm(0, 1, rows, l->out, l->rank, l->scale, xa, l->rank, l->B, l->rank, 1.0f, Y, ld_y);
}

/* ═══ masks ═════════════════════════════════════════════════════════════════ */

/* Elements a (B, H, Sq, Skv) mask with strides (sb, sh, sq, 1) spans: 0 if
 * empty, -1 if that overflows or exceeds INT64_MAX / 8 (strides >= 0). */
static int64_t mask_extent(int64_t B, int64_t H, int64_t Sq, int64_t Skv, int64_t sb, int64_t sh, int64_t sq) {
    if (B <= 0 || H <= 0 || Sq <= 0 || Skv <= 0) return 0;
    const int64_t n[3] = {B, H, Sq}, st[3] = {sb, sh, sq};
    int64_t e = Skv;
    for (int i = 0; i < 3; i++) {
        int64_t t;
        if (__builtin_mul_overflow(n[i] - 1, st[i], &t) || __builtin_add_overflow(e, t, &e)) return -1;
    }
    return e > INT64_MAX / 8 ? -1 : e;
}

/* Sets the mask fields of o (and o->align, o->key_lens) for the call.
 * key_padding_mask (B, Skv): nonzero = ignore. The kernel's bool mask is
 * nonzero = attend, so padding is inverted. Right-padded sequences become
 * key_lens when that does not move the query positions (see attn.h: with
 * bottom-right alignment key_lens would shift them). own = 1 copies a
 * caller mask into the object (training: backward reuses it). */
static attn_status prepare_mask(attn_mha *m, const attn_mha_input *in, int64_t B, int64_t Sq, int64_t Skv,
                                int own, attn_sdpa_opts *o) {
    o->align = Sq == Skv ? ATTN_ALIGN_TOP_LEFT : ATTN_ALIGN_BOTTOM_RIGHT;
    o->mask_kind = ATTN_MASK_NONE;
    o->mask = NULL;
    o->key_lens = NULL;
    const uint8_t *pad = in->key_padding_mask;
    const int has_mask = in->mask_kind != ATTN_MASK_NONE;
    if (Skv == 0) return ATTN_OK;
    const size_t esz = in->mask_kind == ATTN_MASK_ADD ? sizeof(float) : 1;

    if (pad && !has_mask) {
        int suffix = 1, any = 0;
        for (int64_t b = 0; b < B && suffix; b++) {
            const uint8_t *pb = pad + b * Skv;
            int64_t j = 0;
            while (j < Skv && !pb[j]) j++;
            if (j < Skv) any = 1;
            for (; j < Skv; j++)
                if (!pb[j]) { suffix = 0; break; }
        }
        if (!any) return ATTN_OK;
        const int lens_ok = o->align == ATTN_ALIGN_TOP_LEFT ||
                            (!o->causal && o->window_left < 0 && o->window_right < 0);
        if (suffix && lens_ok && Skv <= INT32_MAX) {
            int32_t *lens = (int32_t *)mha__grow(&m->b_lens, (size_t)B * sizeof(int32_t));
            if (!lens) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward: key_lens scratch");
            for (int64_t b = 0; b < B; b++) {
                int64_t j = 0;
                while (j < Skv && !pad[b * Skv + j]) j++;
                lens[b] = (int32_t)j;
            }
            o->key_lens = lens;
            return ATTN_OK;
        }
        uint8_t *mk = (uint8_t *)mha__grow(&m->b_mask, (size_t)(B * Skv));
        if (!mk) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward: mask scratch");
        for (int64_t i = 0; i < B * Skv; i++) mk[i] = pad[i] ? 0 : 1;
        o->mask_kind = ATTN_MASK_BOOL;
        o->mask = mk;
        o->mask_stride_b = Skv; o->mask_stride_h = 0; o->mask_stride_q = 0;
        return ATTN_OK;
    }
    if (!has_mask) return ATTN_OK;

    o->mask_kind = in->mask_kind;
    if (!pad) {
        o->mask_stride_b = in->mask_stride_b; o->mask_stride_h = in->mask_stride_h; o->mask_stride_q = in->mask_stride_q;
        if (!own) { o->mask = in->mask; return ATTN_OK; }
        int64_t ext = mask_extent(B, m->Hq, Sq, Skv, in->mask_stride_b, in->mask_stride_h, in->mask_stride_q);
        void *cp = mha__grow(&m->b_mask, (size_t)ext * esz);
        if (!cp) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward: mask copy of %lld elements", (long long)ext);
        memcpy(cp, in->mask, (size_t)ext * esz);
        o->mask = cp;
        return ATTN_OK;
    }
    /* padding AND an explicit mask: combine into (B, Hm, Sqm, Skv), contiguous */
    const int64_t Hm = in->mask_stride_h ? m->Hq : 1, Sqm = in->mask_stride_q ? Sq : 1;
    const int64_t n = B * Hm * Sqm * Skv;
    void *cm = mha__grow(&m->b_mask, (size_t)n * esz);
    if (!cm) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward: combined mask of %lld elements", (long long)n);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hm; h++)
            for (int64_t i = 0; i < Sqm; i++) {
                const int64_t src = b * in->mask_stride_b + h * in->mask_stride_h + i * in->mask_stride_q;
                const int64_t dst = ((b * Hm + h) * Sqm + i) * Skv;
                const uint8_t *pb = pad + b * Skv;
                if (in->mask_kind == ATTN_MASK_BOOL) {
                    const uint8_t *s = (const uint8_t *)in->mask + src;
                    uint8_t *d = (uint8_t *)cm + dst;
                    for (int64_t j = 0; j < Skv; j++) d[j] = (uint8_t)(s[j] && !pb[j]);
                } else {
                    const float *s = (const float *)in->mask + src;
                    float *d = (float *)cm + dst;
                    for (int64_t j = 0; j < Skv; j++) d[j] = pb[j] ? -INFINITY : s[j];
                }
            }
    o->mask = cm;
    o->mask_stride_b = Hm * Sqm * Skv;
    o->mask_stride_h = in->mask_stride_h ? Sqm * Skv : 0;
    o->mask_stride_q = in->mask_stride_q ? Skv : 0;
    return ATTN_OK;
}

/* ═══ forward ═══════════════════════════════════════════════════════════════ */

static attn_status check_input(const attn_mha *m, const attn_mha_input *in, const float *y) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: m is NULL");
    if (!in) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: in is NULL");
    if (!y) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: y is NULL");
    if (!in->x) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: in->x is NULL");
    if (in->layout != ATTN_BATCH_FIRST && in->layout != ATTN_SEQ_FIRST)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_forward: in->layout = %d, must be ATTN_BATCH_FIRST (0) or ATTN_SEQ_FIRST (1)",
                          in->layout);
    if (in->batch < 0) return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward: in->batch = %lld < 0", (long long)in->batch);
    if (in->seq_q < 0) return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward: in->seq_q = %lld < 0", (long long)in->seq_q);
    if (in->key && m->att_fwd)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "attn_mha_forward: cross-attention (in->key given) with an attention "
                          "backend set (attn_mha_set_attention): backends are self-attention only");
    if (in->key) {
        if (in->seq_kv < 0) return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward: in->seq_kv = %lld < 0", (long long)in->seq_kv);
        if ((!in->value || in->value == in->key) && m->vdim != m->kdim)
            return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: in->value is NULL (value = key) but vdim = %lld != kdim = %lld",
                              (long long)m->vdim, (long long)m->kdim);
    } else {
        if (in->value) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: in->value given without in->key");
        if (m->kdim != m->E || m->vdim != m->E)
            return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward: self-attention (in->key = NULL) needs kdim = vdim = embed_dim = %lld, "
                              "have kdim = %lld, vdim = %lld", (long long)m->E, (long long)m->kdim, (long long)m->vdim);
    }
    const int64_t Skv = in->key ? in->seq_kv : in->seq_q, Smax = in->seq_q > Skv ? in->seq_q : Skv;
    if (Smax > 0 && in->batch > MHA_MAX_ROWS / 4 / Smax)
        return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward: batch = %lld x seq = %lld tokens is too many (max %lld)",
                          (long long)in->batch, (long long)Smax, (long long)(MHA_MAX_ROWS / 4));
    if (!in->positions && in->seq_q > 0 && in->pos_offset > INT64_MAX - in->seq_q)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_forward: in->pos_offset = %lld + seq_q = %lld overflows the positions",
                          (long long)in->pos_offset, (long long)in->seq_q);
    if (in->mask_kind != ATTN_MASK_NONE && in->mask_kind != ATTN_MASK_BOOL && in->mask_kind != ATTN_MASK_ADD)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_forward: in->mask_kind = %d, must be NONE (0), BOOL (1) or ADD (2)",
                          in->mask_kind);
    if (in->mask_kind != ATTN_MASK_NONE) {
        if (!in->mask) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: in->mask is NULL with mask_kind = %d", in->mask_kind);
        if (in->mask_stride_b < 0 || in->mask_stride_h < 0 || in->mask_stride_q < 0)
            return attn__fail(ATTN_ERR_STRIDE, "attn_mha_forward: mask strides (b %lld, h %lld, q %lld) must be >= 0",
                              (long long)in->mask_stride_b, (long long)in->mask_stride_h, (long long)in->mask_stride_q);
        /* the mask is read (copied, combined with the padding) before the kernel checks it */
        if (mask_extent(in->batch, m->Hq, in->seq_q, Skv, in->mask_stride_b, in->mask_stride_h, in->mask_stride_q) < 0)
            return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward: mask extent overflows (strides b %lld, h %lld, q %lld "
                              "for batch %lld, %lld heads, seq_q %lld, seq_kv %lld)",
                              (long long)in->mask_stride_b, (long long)in->mask_stride_h, (long long)in->mask_stride_q,
                              (long long)in->batch, (long long)m->Hq, (long long)in->seq_q, (long long)Skv);
    }
    return ATTN_OK;
}

/* Positions of the query rows: pos (rows) in row order. */
static void query_positions(const attn_mha_input *in, int64_t B, int64_t S, int64_t *pos) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            int64_t r = in->layout == ATTN_SEQ_FIRST ? s * B + b : b * S + s;
            pos[r] = in->positions ? (int64_t)in->positions[b * S + s] : in->pos_offset + s;
        }
}
/* Cross-attention keys sit at positions 0 .. Skv-1. */
static void key_positions(int layout, int64_t B, int64_t S, int64_t *pos) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) pos[layout == ATTN_SEQ_FIRST ? s * B + b : b * S + s] = s;
}

typedef struct copy_ctx { float *o; const float *v; int64_t rows, Hq, G, D, qd, ldv; } copy_ctx;
static void s1_copy_task(void *vctx, int64_t t, int tid) {
    (void)tid;
    copy_ctx *c = (copy_ctx *)vctx;
    int64_t r0 = t * MHA_ROW_CHUNK, r1 = r0 + MHA_ROW_CHUNK;
    if (r1 > c->rows) r1 = c->rows;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t h = 0; h < c->Hq; h++)
            memcpy(c->o + r * c->qd + h * c->D, c->v + r * c->ldv + (h / c->G) * c->D, (size_t)c->D * sizeof(float));
}

static attn_status grow_copy(mha_buf *b, const float *src, int64_t n, const float **out) {
    float *p;
    attn_status s = mha__grow_f(b, n, &p);
    if (s != ATTN_OK) return s;
    memcpy(p, src, (size_t)n * sizeof(float));
    *out = p;
    return ATTN_OK;
}

/* ═══ projections (any weight type) ═════════════════════════════════════════ */

attn_status mha__proj(attn_mha *m, int p, int64_t rows, int64_t N, int64_t K, const float *X, int64_t ldx, float *Y,
                      int64_t ldy) {
    if (!m->warena) {
        attn__sgemm(0, 1, rows, N, K, 1.0f, X, ldx, m->w[p], K, 0.0f, Y, ldy);
        return ATTN_OK;
    }
    const int nt = attn__resolve_threads(0);
    const size_t ws = attn__proj_workspace_size((attn__proj_kernel)m->proj_k, rows, N, K, nt);
    void *wsp = ws && ws != SIZE_MAX ? mha__grow(&m->b_wpanel, ws) : NULL;
    if (ws == SIZE_MAX || (ws && !wsp))
        return attn__fail(ATTN_ERR_NOMEM, "attn_mha: cannot allocate the projection workspace (%lld x %lld x %lld, %s)",
                          (long long)rows, (long long)N, (long long)K, attn__proj_kernel_name((attn__proj_kernel)m->proj_k));
    attn__proj((attn__proj_kernel)m->proj_k, rows, N, K, X, ldx, m->w16[p], m->wdt, K, Y, ldy, wsp, nt);
    return ATTN_OK;
}

attn_status mha__fp32_only(const attn_mha *m, const char *fn) {
    if (!m->warena) return ATTN_OK;
    return attn__fail(ATTN_ERR_UNSUPPORTED,
                      "%s: the layer holds %s weights (weight_dtype) and is inference only; training keeps fp32 master "
                      "weights (create the layer with weight_dtype = ATTN_DTYPE_F32 and load the same checkpoint)",
                      fn, m->wdt == ATTN_DTYPE_BF16 ? "BF16" : "F16");
}

const char *attn_mha_proj_kernel(const attn_mha *m) {
    return m ? attn__proj_kernel_name((attn__proj_kernel)m->proj_k) : NULL;
}

attn_status mha__out_proj(attn_mha *m, int64_t rows, const float *o, float *y, int save_xa) {
    attn_status ps = mha__proj(m, MHA_O, rows, m->E, m->qd, o, m->qd, y, m->E);
    if (ps != ATTN_OK) return ps;
    if (mha__lora_active(m, MHA_O)) {
        float *xa;
        attn_status s = mha__grow_f(save_xa ? &m->b_xa[MHA_O] : &m->b_dxa, rows * m->lora[MHA_O].rank, &xa);
        if (s != ATTN_OK) return s;
        mha__lora_fwd(m, MHA_O, rows, o, m->qd, y, m->E, xa);
    }
    if (m->b[MHA_O]) {
        mha_seg g = {0};
        g.base = y; g.ld = m->E; g.H = 1; g.Dh = m->E; g.bias = m->b[MHA_O];
        mha__fwd_rows(m, rows, &g, 1);
    }
    return ATTN_OK;
}

/* ═══ forward: its steps ═════════════════════════════════════════════════════ */

/* One forward call's plan: the state a backward needs (s; kept in m->st when
 * training), the inputs (training: the layer's copies) and o (rows_q, qd). */
typedef struct fwd_pass {
    mha_state s;
    int training;
    const float *x, *key, *value; /* (rows_q, E), (rows_k, kdim), (rows_k, vdim) */
    float *o;
} fwd_pass;

/* Shapes and inputs; training keeps copies of them for the weight gradients. */
static attn_status fwd_inputs(attn_mha *m, const attn_mha_input *in, fwd_pass *f) {
    mha_state *p = &f->s;
    p->layout = in->layout;
    p->cross = in->key != NULL;
    p->value_is_key = p->cross && (!in->value || in->value == in->key);
    p->B = in->batch; p->Sq = in->seq_q; p->Skv = p->cross ? in->seq_kv : in->seq_q;
    p->rows_q = p->B * p->Sq; p->rows_k = p->B * p->Skv;
    f->x = in->x;
    f->key = p->cross ? in->key : in->x;
    f->value = p->cross ? (p->value_is_key ? f->key : in->value) : in->x;
    if (!f->training || p->rows_q == 0) return ATTN_OK;
    attn_status s;
    if ((s = grow_copy(&m->b_x, in->x, p->rows_q * m->E, &f->x)) != ATTN_OK) return s;
    if (!p->cross) {
        f->key = f->value = f->x;
        return ATTN_OK;
    }
    if ((s = grow_copy(&m->b_key, in->key, p->rows_k * m->kdim, &f->key)) != ATTN_OK) return s;
    if (p->value_is_key) f->value = f->key;
    else if ((s = grow_copy(&m->b_value, in->value, p->rows_k * m->vdim, &f->value)) != ATTN_OK) return s;
    return ATTN_OK;
}

/* The projections into m->b_proj (+ LoRA), q / k / v row pointers and strides:
 *   self:  proj (rows, qd + 2 kvd) = [q | k | v] = x Wqkv^T, one GEMM
 *   cross: q (rows_q, qd), then [k | v] (rows_k, 2 kvd) */
static attn_status fwd_project(attn_mha *m, fwd_pass *f) {
    mha_state *p = &f->s;
    const int64_t E = m->E, qd = m->qd, kvd = m->kvd, rows_q = p->rows_q, rows_k = p->rows_k;
    float *proj;
    attn_status s;
    if (!p->cross) {
        p->ld_q = p->ld_k = qd + 2 * kvd;
        if ((s = mha__grow_f(&m->b_proj, rows_q * p->ld_q, &proj)) != ATTN_OK) return s;
        p->qp = proj; p->kp = proj + qd; p->vp = proj + qd + kvd;
        /* Wq | Wk | Wv are adjacent: one GEMM, proj (rows, qd + 2 kvd) = x Wqkv^T */
        if ((s = mha__proj(m, MHA_Q, rows_q, p->ld_q, E, f->x, E, proj, p->ld_q)) != ATTN_OK) return s;
    } else {
        p->ld_q = qd; p->ld_k = 2 * kvd;
        if ((s = mha__grow_f(&m->b_proj, rows_q * qd + rows_k * p->ld_k, &proj)) != ATTN_OK) return s;
        p->qp = proj; p->kp = proj + rows_q * qd; p->vp = p->kp + kvd;
        if ((s = mha__proj(m, MHA_Q, rows_q, qd, E, f->x, E, p->qp, p->ld_q)) != ATTN_OK) return s;
        if (p->value_is_key) { /* Wk | Wv adjacent with equal input width: one GEMM */
            if ((s = mha__proj(m, MHA_K, rows_k, 2 * kvd, m->kdim, f->key, m->kdim, p->kp, p->ld_k)) != ATTN_OK) return s;
        } else {
            if ((s = mha__proj(m, MHA_K, rows_k, kvd, m->kdim, f->key, m->kdim, p->kp, p->ld_k)) != ATTN_OK) return s;
            if ((s = mha__proj(m, MHA_V, rows_k, kvd, m->vdim, f->value, m->vdim, p->vp, p->ld_k)) != ATTN_OK) return s;
        }
    }
    const float *src[3] = {f->x, f->key, f->value};
    const int64_t ld_in[3] = {E, m->kdim, m->vdim}, nrow[3] = {rows_q, rows_k, rows_k};
    float *dst[3] = {p->qp, p->kp, p->vp};
    const int64_t ld_out[3] = {p->ld_q, p->ld_k, p->ld_k};
    for (int w = 0; w < 3; w++) {
        if (!mha__lora_active(m, w)) continue;
        float *xa;
        if ((s = mha__grow_f(f->training ? &m->b_xa[w] : &m->b_dxa, nrow[w] * m->lora[w].rank, &xa)) != ATTN_OK) return s;
        mha__lora_fwd(m, w, nrow[w], src[w], ld_in[w], dst[w], ld_out[w], xa);
    }
    return ATTN_OK;
}

/* S = 1 inference self-attention with nothing masked: the softmax over a
 * single visible key is 1, so o = v (q, k unused). */
static int fwd_single_key(const attn_mha *m, const attn_mha_input *in, const fwd_pass *f) {
    return !f->training && !f->s.cross && f->s.Sq == 1 && !in->key_padding_mask && in->mask_kind == ATTN_MASK_NONE &&
           !m->att_fwd;
}
static attn_status fwd_single_key_run(attn_mha *m, fwd_pass *f, float *y) {
    const mha_state *p = &f->s;
    mha_seg g = {0};
    g.base = p->vp; g.ld = p->ld_k; g.H = m->Hkv; g.Dh = m->D; g.bias = m->b[MHA_V];
    mha__fwd_rows(m, p->rows_q, &g, 1);
    copy_ctx cc = {f->o, p->vp, p->rows_q, m->Hq, m->Hq / m->Hkv, m->D, m->qd, p->ld_k};
    attn__parallel_for((p->rows_q + MHA_ROW_CHUNK - 1) / MHA_ROW_CHUNK, 0, s1_copy_task, &cc);
    return mha__out_proj(m, p->rows_q, f->o, y, 0);
}

/* The row pass, in place on q / k / v: + bias, RMSNorm (q, k; training keeps
 * x-hat and 1/rms), RoPE (q, k) at the query / key positions. */
static attn_status fwd_row_pass(attn_mha *m, const attn_mha_input *in, fwd_pass *f) {
    const mha_state *p = &f->s;
    const int64_t rows_q = p->rows_q, rows_k = p->rows_k;
    attn_status s;
    float *cos_q = NULL, *sin_q = NULL, *cos_k = NULL, *sin_k = NULL;
    if (m->rope_half) {
        int64_t *pos = (int64_t *)mha__grow(&m->b_pos, (size_t)(rows_q > rows_k ? rows_q : rows_k) * sizeof(int64_t));
        if (!pos) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward: positions scratch");
        query_positions(in, p->B, p->Sq, pos);
        if ((s = mha__rope_tables(m, pos, rows_q, &m->b_cos_q, &m->b_sin_q, &cos_q, &sin_q)) != ATTN_OK) return s;
        if (!p->cross) { cos_k = cos_q; sin_k = sin_q; }
        else {
            key_positions(in->layout, p->B, p->Skv, pos);
            if ((s = mha__rope_tables(m, pos, rows_k, &m->b_cos_k, &m->b_sin_k, &cos_k, &sin_k)) != ATTN_OK) return s;
        }
    }
    float *qhat = NULL, *khat = NULL, *rstd_q = NULL, *rstd_k = NULL;
    if (f->training && m->qn) {
        if ((s = mha__grow_f(&m->b_qhat, rows_q * m->qd, &qhat)) != ATTN_OK) return s;
        if ((s = mha__grow_f(&m->b_khat, rows_k * m->kvd, &khat)) != ATTN_OK) return s;
        if ((s = mha__grow_f(&m->b_rstd_q, rows_q * m->Hq, &rstd_q)) != ATTN_OK) return s;
        if ((s = mha__grow_f(&m->b_rstd_k, rows_k * m->Hkv, &rstd_k)) != ATTN_OK) return s;
    }
    mha_seg seg[3];
    memset(seg, 0, sizeof seg);
    const float *qw, *kw;
    mha__norm_weights(m, &qw, &kw);
    seg[0].base = p->qp; seg[0].ld = p->ld_q; seg[0].H = m->Hq; seg[0].Dh = m->D; seg[0].bias = m->b[MHA_Q];
    seg[0].norm_w = qw; seg[0].xhat = qhat; seg[0].rstd = rstd_q; seg[0].cos_t = cos_q; seg[0].sin_t = sin_q;
    seg[1].base = p->kp; seg[1].ld = p->ld_k; seg[1].H = m->Hkv; seg[1].Dh = m->D; seg[1].bias = m->b[MHA_K];
    seg[1].norm_w = kw; seg[1].xhat = khat; seg[1].rstd = rstd_k; seg[1].cos_t = cos_k; seg[1].sin_t = sin_k;
    seg[2].base = p->vp; seg[2].ld = p->ld_k; seg[2].H = m->Hkv; seg[2].Dh = m->D; seg[2].bias = m->b[MHA_V];
    if (!p->cross) mha__fwd_rows(m, rows_q, seg, 3);
    else {
        mha__fwd_rows(m, rows_q, seg, 1);
        mha__fwd_rows(m, rows_k, seg + 1, 2);
    }
    return ATTN_OK;
}

/* The kernel's options from the layer's config (dropout: a fresh seed per
 * training forward), the masks, and attn_sdpa_fwd on strided views of the
 * projection buffer into o. Training: lse (B, Hq, Sq), then the row
 * statistics (B, Hq, Sq, 2) the kernel's backward reads instead of
 * recomputing them (attn_sdpa_opts.row_stats; not handed to a backend of
 * attn_mha_set_attention). */
static attn_status fwd_attend(attn_mha *m, const attn_mha_input *in, fwd_pass *f) {
    mha_state *p = &f->s;
    const int64_t B = p->B, Sq = p->Sq, Skv = p->Skv, D = m->D;
    attn_sdpa_dims dims = {B, Sq, Skv, m->Hq, m->Hkv, D, D};
    attn_sdpa_opts *opts = &p->opts;
    attn_sdpa_opts_init(opts);
    opts->scale = m->cfg.scale;
    opts->causal = m->cfg.causal;
    opts->window_left = m->cfg.window_left;
    opts->window_right = m->cfg.window_right;
    opts->softcap = m->cfg.softcap;
    if (f->training && m->cfg.dropout > 0.0f) {
        opts->dropout_p = m->cfg.dropout;
        opts->dropout_seed = mix64(m->cfg.dropout_seed ^ mix64(++m->fwd_count));
    }
    attn_status s;
    if ((s = prepare_mask(m, in, B, Sq, Skv, f->training, opts)) != ATTN_OK) return s;
    float *lse = NULL;
    if (f->training && (s = mha__grow_f(&m->b_lse, 3 * B * m->Hq * Sq, &lse)) != ATTN_OK) return s;
    if (f->training && !m->att_fwd) opts->row_stats = lse + B * m->Hq * Sq;
    p->dims = dims;
    p->q = mha__rows_view(p->qp, in->layout, B, Sq, p->ld_q, D);
    p->k = mha__rows_view(p->kp, in->layout, B, Skv, p->ld_k, D);
    p->v = mha__rows_view(p->vp, in->layout, B, Skv, p->ld_k, D);
    p->o = mha__rows_view(f->o, in->layout, B, Sq, m->qd, D);
    return mha__attend_fwd(m, "attn_mha_forward", &p->dims, p->q, p->k, p->v, p->o, lse, opts);
}

attn_status attn_mha_forward(attn_mha *m, const attn_mha_input *in_caller, float *y) {
    if (!in_caller) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward: in is NULL");
    attn_mha_input in_full, def;
    mha_input_defaults(&def);
    attn_status s = attn__struct_read("attn_mha_forward", in_caller, &in_full, &def, &MHA_INPUT_LAYOUT, ATTN_ERR_OPTION);
    if (s != ATTN_OK) return s;
    const attn_mha_input *in = &in_full;
    if ((s = check_input(m, in, y)) != ATTN_OK) return s;
    m->st.valid = 0;
    fwd_pass f;
    memset(&f, 0, sizeof f);
    f.training = m->training;
    if ((s = fwd_inputs(m, in, &f)) != ATTN_OK) return s;
    if (f.s.rows_q == 0) { /* nothing to compute; backward then only zeroes dkey / dvalue */
        m->st = f.s;
        m->st.valid = f.training;
        return ATTN_OK;
    }
    if ((s = fwd_project(m, &f)) != ATTN_OK) return s;
    if ((s = mha__grow_f(&m->b_o, f.s.rows_q * m->qd, &f.o)) != ATTN_OK) return s;
    if (fwd_single_key(m, in, &f)) return fwd_single_key_run(m, &f, y);
    if ((s = fwd_row_pass(m, in, &f)) != ATTN_OK) return s;
    if ((s = fwd_attend(m, in, &f)) != ATTN_OK) return s;
    if ((s = mha__out_proj(m, f.s.rows_q, f.o, y, f.training)) != ATTN_OK) return s;
    if (f.training) {
        m->st = f.s;
        m->st.valid = 1;
    }
    return ATTN_OK;
}
