/* SPDX-License-Identifier: MIT */
/* params_io.c — attn_mha_load / attn_mha_save over safetensors (attn_st_*).
 * Kept apart from params.c so that the layer links without the IO module
 * when load/save are not used.
 *
 * Load: HF naming reads every base parameter (required) and the LoRA
 * tensors when present (optional: a base checkpoint loads into an adapted
 * layer). Tensors the layer cannot hold (a bias with bias_* = 0, norms with
 * qk_norm = 0) are an error rather than silently dropped. TORCH naming
 * (nn.MultiheadAttention) reads in_proj_weight (3E, E) — exactly the layer's
 * adjacent Wq | Wk | Wv — or q/k/v_proj_weight when kdim/vdim != E,
 * in_proj_bias (3E), out_proj.weight, out_proj.bias.
 * Save: HF naming. A merged layer saves the merged weights without adapters.
 *
 * Loading is all-or-nothing: tensors are read into a staging copy and only
 * committed when every one of them was found with the right shape.
 *
 * A 16-bit-weight layer (weight_dtype BF16 / F16) reads its four weights as
 * that type (io/st_typed.h: bit for bit when the file has the same type, else
 * rounded once) into a 16-bit staging copy; biases and norms as fp32. */
#include "layer/mha_internal.h"

#include "io/st_typed.h"
#include "kernels/proj_typed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ═══ load / save ═══════════════════════════════════════════════════════════ */

static attn_status full_name(char *buf, size_t cap, const char *prefix, const char *name) {
    int n = (prefix && *prefix) ? snprintf(buf, cap, "%s.%s", prefix, name) : snprintf(buf, cap, "%s", name);
    if (n < 0 || (size_t)n >= cap)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha: tensor name \"%s.%s\" is too long (prefix too long)", prefix ? prefix : "", name);
    return ATTN_OK;
}

/* the file holding tensor `name`, or NULL */
const attn_st *mha__src_find(const mha_src *src, const char *name) {
    attn_tensor_info ti;
    if (src->one) return attn_st_find(src->one, name, &ti) == ATTN_OK ? src->one : NULL;
    for (int64_t i = 0; i < src->n; i++)
        if (strcmp(src->names[i], name) == 0) return src->st_of[i];
    return NULL;
}

static int has_tensor(const mha_src *st, const char *name) { return mha__src_find(st, name) != NULL; }

/* The staging copies of a load: f (arena_n) of m->arena, w (warena_n) of m->warena (16-bit layers). */
typedef struct ld_stage {
    float *f;
    uint16_t *w;
} ld_stage;

static size_t w_esize(const attn_mha *m) { return m->warena ? sizeof(uint16_t) : sizeof(float); }
/* staging place of weight p (element type m->wdt) and of an fp32 parameter at p */
static void *stage_w(const attn_mha *m, const ld_stage *sg, int p) {
    return m->warena ? (void *)(sg->w + (m->w16[p] - m->warena)) : (void *)(sg->f + (m->w[p] - m->arena));
}
static float *stage_f(const attn_mha *m, const ld_stage *sg, const float *p) { return sg->f + (p - m->arena); }

/* Reads tensor `name` (expected shape ndim/shape) as type dt (F32, or the 16-bit
 * weight types) into dst (numel); a missing or mis-shaped tensor is an error naming it
 * (attn_st_read_f32 / attn__st_read_16). */
static attn_status read_into(const mha_src *st, const char *name, void *dst, attn_dtype dt, int64_t numel, int ndim,
                             const int64_t *shape) {
    char shp[96];
    int n = snprintf(shp, sizeof shp, "[");
    for (int i = 0; i < ndim && n < (int)sizeof shp - 24; i++)
        n += snprintf(shp + n, sizeof shp - (size_t)n, i ? ", %lld" : "%lld", (long long)shape[i]);
    snprintf(shp + n, sizeof shp - (size_t)n, "]");
    const attn_st *f = mha__src_find(st, name);
    if (!f) return attn__fail(ATTN_ERR_NOT_FOUND, "attn_mha_load: missing tensor '%.300s' (expected shape %s)", name, shp);
    attn_status s = dt == ATTN_DTYPE_F32 ? attn_st_read_f32(f, name, (float *)dst, numel, ndim, shape)
                                         : attn__st_read_16(f, name, (uint16_t *)dst, dt, numel, ndim, shape);
    if (s == ATTN_ERR_NOT_FOUND && !st->one) /* the index named a shard that lacks the tensor */
        return attn__fail(ATTN_ERR_FORMAT, "attn_mha_load: the index puts '%.300s' in a shard that does not hold it", name);
    if (s != ATTN_OK) { /* e.g. "tensor 'x': expected shape [a, b], file has [c, d]" */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", attn_last_error());
        return attn__fail(s, "attn_mha_load: %s", msg);
    }
    return ATTN_OK;
}

/* Error if the file holds `name` but the layer has no such parameter. */
static attn_status reject_extra(const mha_src *st, const char *prefix, const char *suffix, const char *why) {
    char nm[512];
    attn_status s = full_name(nm, sizeof nm, prefix, suffix);
    if (s != ATTN_OK) return s;
    if (has_tensor(st, nm))
        return attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: file has tensor \"%s\" but the layer has %s", nm, why);
    return ATTN_OK;
}

static attn_status load_hf(attn_mha *m, const mha_src *st, const char *prefix, const ld_stage *sg, float *lstage) {
    char nm[512];
    attn_status s;
    for (int i = 0; i < m->nparams; i++) {
        const mha_param_rec *r = &m->params[i];
        const int lora = strstr(r->name, ".lora_") != NULL;
        void *dst = r->wproj >= 0 ? stage_w(m, sg, r->wproj)
                    : lora        ? (void *)(lstage + (r->data - m->lora_arena))
                                  : (void *)stage_f(m, sg, r->data);
        const attn_dtype dt = r->wproj >= 0 ? m->wdt : ATTN_DTYPE_F32;
        if ((s = full_name(nm, sizeof nm, prefix, r->name)) != ATTN_OK) return s;
        if (lora && !has_tensor(st, nm)) continue; /* adapters are optional: keep their current values */
        if ((s = read_into(st, nm, dst, dt, r->numel, r->ndim, r->shape)) != ATTN_OK) return s;
    }
    static const char *bias_names[MHA_NPROJ] = {"q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias"};
    static const char *bias_why[MHA_NPROJ] = {"bias_q = 0", "bias_k = 0", "bias_v = 0", "bias_o = 0"};
    for (int p = 0; p < MHA_NPROJ; p++)
        if (!m->b[p] && (s = reject_extra(st, prefix, bias_names[p], bias_why[p])) != ATTN_OK) return s;
    if (!m->qn) {
        if ((s = reject_extra(st, prefix, "q_norm.weight", "qk_norm = 0")) != ATTN_OK) return s;
        if ((s = reject_extra(st, prefix, "k_norm.weight", "qk_norm = 0")) != ATTN_OK) return s;
    }
    return ATTN_OK;
}

/* Copies part p (of 3) of a packed (3E) bias into the layer's bias, or
 * checks it is zero when the layer has no such bias. */
static attn_status split_bias(attn_mha *m, const float *packed, const ld_stage *sg, const char *name) {
    const int64_t E = m->E;
    static const char *flag[3] = {"bias_q", "bias_k", "bias_v"};
    for (int p = 0; p < 3; p++) {
        const float *src = packed + p * E;
        if (m->b[p]) {
            memcpy(stage_f(m, sg, m->b[p]), src, (size_t)E * sizeof(float));
        } else {
            for (int64_t i = 0; i < E; i++)
                if (src[i] != 0.0f)
                    return attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: \"%s\" has a nonzero part %d but the layer has %s = 0",
                                      name, p, flag[p]);
        }
    }
    return ATTN_OK;
}

static attn_status load_torch(attn_mha *m, const mha_src *st, const char *prefix, const ld_stage *sg) {
    const int64_t E = m->E;
    char nm[512];
    attn_status s;
    if (m->qd != E || m->kvd != E)
        return attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: ATTN_NAMING_TORCH needs num_heads * head_dim = num_kv_heads * head_dim "
                          "= embed_dim (nn.MultiheadAttention), have %lld, %lld, %lld",
                          (long long)m->qd, (long long)m->kvd, (long long)E);
    if ((s = reject_extra(st, prefix, "bias_k", "no add_bias_kv support")) != ATTN_OK) return s;
    if ((s = reject_extra(st, prefix, "bias_v", "no add_bias_kv support")) != ATTN_OK) return s;
    if (m->kdim == E && m->vdim == E) {
        /* in_proj_weight (3E, E) = [Wq; Wk; Wv], exactly our adjacent layout */
        const int64_t shp[2] = {3 * E, E};
        if ((s = full_name(nm, sizeof nm, prefix, "in_proj_weight")) != ATTN_OK) return s;
        if ((s = read_into(st, nm, stage_w(m, sg, MHA_Q), m->wdt, 3 * E * E, 2, shp)) != ATTN_OK) return s;
    } else {
        static const char *nms[3] = {"q_proj_weight", "k_proj_weight", "v_proj_weight"};
        const int64_t in_w[3] = {E, m->kdim, m->vdim};
        for (int p = 0; p < 3; p++) {
            const int64_t shp[2] = {E, in_w[p]};
            if ((s = full_name(nm, sizeof nm, prefix, nms[p])) != ATTN_OK) return s;
            if ((s = read_into(st, nm, stage_w(m, sg, p), m->wdt, E * in_w[p], 2, shp)) != ATTN_OK) return s;
        }
    }
    if ((s = full_name(nm, sizeof nm, prefix, "in_proj_bias")) != ATTN_OK) return s;
    const int any_in_bias = m->b[0] || m->b[1] || m->b[2];
    if (any_in_bias || has_tensor(st, nm)) {
        float *packed = (float *)malloc((size_t)(3 * E) * sizeof(float));
        if (!packed) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_load: in_proj_bias scratch");
        const int64_t shp[1] = {3 * E};
        s = read_into(st, nm, packed, ATTN_DTYPE_F32, 3 * E, 1, shp);
        if (s == ATTN_OK) s = split_bias(m, packed, sg, nm);
        free(packed);
        if (s != ATTN_OK) return s;
    }
    {
        const int64_t shp[2] = {E, E};
        if ((s = full_name(nm, sizeof nm, prefix, "out_proj.weight")) != ATTN_OK) return s;
        if ((s = read_into(st, nm, stage_w(m, sg, MHA_O), m->wdt, E * E, 2, shp)) != ATTN_OK) return s;
    }
    if ((s = full_name(nm, sizeof nm, prefix, "out_proj.bias")) != ATTN_OK) return s;
    if (m->b[MHA_O]) {
        const int64_t shp[1] = {E};
        if ((s = read_into(st, nm, stage_f(m, sg, m->b[MHA_O]), ATTN_DTYPE_F32, E, 1, shp)) != ATTN_OK) return s;
    } else if (has_tensor(st, nm)) {
        float *tmp = (float *)malloc((size_t)E * sizeof(float));
        if (!tmp) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_load: out_proj.bias scratch");
        const int64_t shp[1] = {E};
        s = read_into(st, nm, tmp, ATTN_DTYPE_F32, E, 1, shp);
        for (int64_t i = 0; s == ATTN_OK && i < E; i++)
            if (tmp[i] != 0.0f)
                s = attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: \"%s\" is nonzero but the layer has bias_o = 0", nm);
        free(tmp);
        if (s != ATTN_OK) return s;
    }
    return ATTN_OK;
}

/* ═══ the other HuggingFace layouts: one table row per naming ═══════════════ */
typedef struct hf_map {
    const char *part[MHA_NPROJ]; /* tensor base names of q, k, v, o; q/k/v NULL when fused */
    const char *fused;           /* fused q/k/v base name, or NULL */
    int per_head;                /* fused rows are [q_h; k_h; v_h] per head (NeoX), else [q; k; v] */
    int conv1d;                  /* weights stored (in, out) (GPT-2 Conv1D) */
} hf_map;

static const hf_map HF_MAPS[ATTN_NAMING_COUNT] = {
    [ATTN_NAMING_FUSED_QKV] = {{NULL, NULL, NULL, "o_proj"}, "qkv_proj", 0, 0},
    [ATTN_NAMING_NEOX] = {{NULL, NULL, NULL, "dense"}, "query_key_value", 1, 0},
    [ATTN_NAMING_PHI] = {{"q_proj", "k_proj", "v_proj", "dense"}, NULL, 0, 0},
    [ATTN_NAMING_GPT2] = {{NULL, NULL, NULL, "c_proj"}, "c_attn", 0, 1},
    [ATTN_NAMING_BERT] = {{"self.query", "self.key", "self.value", "output.dense"}, NULL, 0, 0},
};

/* Reads "<prefix>.<base>.<what>" of logical shape (rows, cols) into dst (rows, cols) row-major
 * of type dt (esz bytes an element); conv1d: the file holds the transpose (cols, rows). */
static attn_status read_mat(const mha_src *st, const char *prefix, const char *base, int64_t rows, int64_t cols,
                            int conv1d, void *dst, attn_dtype dt) {
    char nm[512], sub[128];
    snprintf(sub, sizeof sub, "%s.weight", base);
    attn_status s = full_name(nm, sizeof nm, prefix, sub);
    if (s != ATTN_OK) return s;
    if (!conv1d) {
        const int64_t shp[2] = {rows, cols};
        return read_into(st, nm, dst, dt, rows * cols, 2, shp);
    }
    const size_t esz = dt == ATTN_DTYPE_F32 ? sizeof(float) : sizeof(uint16_t);
    unsigned char *t = (unsigned char *)malloc((size_t)(rows * cols) * esz), *d = (unsigned char *)dst;
    if (!t) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_load: scratch for '%s'", nm);
    const int64_t shp[2] = {cols, rows};
    s = read_into(st, nm, t, dt, rows * cols, 2, shp);
    if (s == ATTN_OK)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < rows; j++) memcpy(d + (size_t)(j * cols + i) * esz, t + (size_t)(i * rows + j) * esz, esz);
    free(t);
    return s;
}

/* fused row r of (qd + 2 kvd) -> projection *p and its row *row */
static void fused_row(const attn_mha *m, int per_head, int64_t r, int *p, int64_t *row) {
    if (per_head) { /* (H, 3, D): head h's q, k, v rows in turn */
        const int64_t h = r / (3 * m->D), j = r % (3 * m->D);
        *p = (int)(j / m->D);
        *row = h * m->D + j % m->D;
    } else if (r < m->qd) {
        *p = MHA_Q, *row = r;
    } else if (r < m->qd + m->kvd) {
        *p = MHA_K, *row = r - m->qd;
    } else {
        *p = MHA_V, *row = r - m->qd - m->kvd;
    }
}

static attn_status load_fused(attn_mha *m, const mha_src *st, const char *prefix, const hf_map *mp, const ld_stage *sg) {
    const int64_t E = m->E, R = m->qd + 2 * m->kvd;
    if (m->kdim != E || m->vdim != E)
        return attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: fused '%s' needs self-attention (kdim = vdim = embed_dim)",
                          mp->fused);
    if (mp->per_head && m->Hq != m->Hkv)
        return attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: '%s' (per-head q/k/v) needs num_kv_heads = num_heads, have %lld/%lld",
                          mp->fused, (long long)m->Hq, (long long)m->Hkv);
    const size_t esz = w_esize(m);
    unsigned char *w = (unsigned char *)malloc((size_t)(R * E) * esz); /* (R, E) of m->wdt */
    float *bias = (float *)malloc((size_t)R * sizeof(float));
    if (!w || !bias) {
        free(w); free(bias);
        return attn__fail(ATTN_ERR_NOMEM, "attn_mha_load: scratch for '%s'", mp->fused);
    }
    attn_status s = read_mat(st, prefix, mp->fused, R, E, mp->conv1d, w, m->wdt);
    char nm[512], sub[128];
    snprintf(sub, sizeof sub, "%s.bias", mp->fused);
    const int any_bias = m->b[MHA_Q] || m->b[MHA_K] || m->b[MHA_V];
    if (s == ATTN_OK) s = full_name(nm, sizeof nm, prefix, sub);
    if (s == ATTN_OK && any_bias) {
        if (!(m->b[MHA_Q] && m->b[MHA_K] && m->b[MHA_V]))
            s = attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: fused '%s' has one bias for q, k and v; set all of bias_q/k/v",
                           nm);
        const int64_t shp[1] = {R};
        if (s == ATTN_OK) s = read_into(st, nm, bias, ATTN_DTYPE_F32, R, 1, shp);
    } else if (s == ATTN_OK && has_tensor(st, nm)) {
        s = attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: file has tensor \"%s\" but the layer has bias_q/k/v = 0", nm);
    }
    for (int64_t r = 0; s == ATTN_OK && r < R; r++) {
        int p;
        int64_t row;
        fused_row(m, mp->per_head, r, &p, &row);
        memcpy((unsigned char *)stage_w(m, sg, p) + (size_t)(row * E) * esz, w + (size_t)(r * E) * esz, (size_t)E * esz);
        if (any_bias) stage_f(m, sg, m->b[p])[row] = bias[r];
    }
    free(w);
    free(bias);
    return s;
}

static attn_status load_mapped(attn_mha *m, const mha_src *st, const char *prefix, attn_naming naming, const ld_stage *sg) {
    const hf_map *mp = &HF_MAPS[naming];
    const int64_t out_w[MHA_NPROJ] = {m->qd, m->kvd, m->kvd, m->E}, in_w[MHA_NPROJ] = {m->E, m->kdim, m->vdim, m->qd};
    attn_status s;
    if (m->qn)
        return attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: naming %d has no q_norm / k_norm tensors but the layer has qk_norm = 1",
                          (int)naming);
    if (mp->fused && (s = load_fused(m, st, prefix, mp, sg)) != ATTN_OK) return s;
    for (int p = 0; p < MHA_NPROJ; p++) {
        if (!mp->part[p]) continue;
        if ((s = read_mat(st, prefix, mp->part[p], out_w[p], in_w[p], mp->conv1d, stage_w(m, sg, p), m->wdt)) != ATTN_OK)
            return s;
        char nm[512], sub[128];
        snprintf(sub, sizeof sub, "%s.bias", mp->part[p]);
        if ((s = full_name(nm, sizeof nm, prefix, sub)) != ATTN_OK) return s;
        if (m->b[p]) {
            const int64_t shp[1] = {out_w[p]};
            if ((s = read_into(st, nm, stage_f(m, sg, m->b[p]), ATTN_DTYPE_F32, out_w[p], 1, shp)) != ATTN_OK) return s;
        } else if (has_tensor(st, nm)) {
            static const char *flag[MHA_NPROJ] = {"bias_q", "bias_k", "bias_v", "bias_o"};
            return attn__fail(ATTN_ERR_CONFIG, "attn_mha_load: file has tensor \"%s\" but the layer has %s = 0", nm, flag[p]);
        }
    }
    return ATTN_OK;
}

attn_status attn_mha_load(attn_mha *m, const attn_st *st, const char *prefix, attn_naming naming) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_load: m is NULL");
    if (!st) return attn__fail(ATTN_ERR_NULL, "attn_mha_load: st is NULL");
    mha_src src = {st, 0, NULL, NULL};
    return mha__load(m, &src, prefix, naming);
}

attn_status mha__load(attn_mha *m, const mha_src *st, const char *prefix, attn_naming naming) {
    if ((int)naming < 0 || naming >= ATTN_NAMING_COUNT)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_load: naming = %d, must be an attn_naming in [0, %d)", (int)naming,
                          (int)ATTN_NAMING_COUNT);
    if (m->lora_merged)
        return attn__fail(ATTN_ERR_STATE, "attn_mha_load: LoRA is merged into the weights; unmerge first");
    /* staging copies: the layer is only modified once everything was read */
    ld_stage sg = {(float *)attn__malloc(m->arena_n * sizeof(float)), NULL};
    if (m->warena) sg.w = (uint16_t *)attn__malloc(m->warena_n * sizeof(uint16_t));
    size_t ln = 0;
    for (int p = 0; p < MHA_NPROJ; p++)
        if (m->lora[p].rank > 0) ln += (size_t)(2 * m->lora[p].rank * (m->lora[p].in + m->lora[p].out));
    float *lstage = ln ? (float *)attn__malloc(ln * sizeof(float)) : NULL;
    if (!sg.f || (m->warena && !sg.w) || (ln && !lstage)) {
        attn__free(sg.f);
        attn__free(sg.w);
        attn__free(lstage);
        return attn__fail(ATTN_ERR_NOMEM, "attn_mha_load: staging copy of %zu floats and %zu 16-bit weights",
                          m->arena_n + ln, m->warena_n);
    }
    memcpy(sg.f, m->arena, m->arena_n * sizeof(float));
    if (sg.w) memcpy(sg.w, m->warena, m->warena_n * sizeof(uint16_t));
    if (ln) memcpy(lstage, m->lora_arena, ln * sizeof(float));
    attn_status s = naming == ATTN_NAMING_HF      ? load_hf(m, st, prefix, &sg, lstage)
                    : naming == ATTN_NAMING_TORCH ? load_torch(m, st, prefix, &sg)
                                                  : load_mapped(m, st, prefix, naming, &sg);
    if (s == ATTN_OK) {
        memcpy(m->arena, sg.f, m->arena_n * sizeof(float));
        if (sg.w) memcpy(m->warena, sg.w, m->warena_n * sizeof(uint16_t));
        if (ln) memcpy(m->lora_arena, lstage, ln * sizeof(float));
        m->st.valid = 0;
    }
    attn__free(sg.f);
    attn__free(sg.w);
    attn__free(lstage);
    return s;
}

attn_status attn_mha_save(const attn_mha *m, attn_st_writer *w, const char *prefix) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_save: m is NULL");
    if (!w) return attn__fail(ATTN_ERR_NULL, "attn_mha_save: w is NULL");
    char nm[512];
    attn_status s;
    for (int i = 0; i < m->nparams; i++) {
        const mha_param_rec *r = &m->params[i];
        /* merged: the weights already hold W + scale B A; saving the adapters
         * too would apply them twice on reload, so a merged save is an export
         * of the merged weights alone */
        if (m->lora_merged && strstr(r->name, ".lora_")) continue;
        if ((s = full_name(nm, sizeof nm, prefix, r->name)) != ATTN_OK) return s;
        if (r->wproj >= 0 && m->warena) { /* 16-bit weights: widened (exactly) for the F32 writer */
            float *t = (float *)malloc((size_t)r->numel * sizeof(float));
            if (!t) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_save: scratch for '%s'", nm);
            attn__widen_16(m->w16[r->wproj], m->wdt, t, r->numel);
            s = attn_st_writer_add_f32(w, nm, t, r->ndim, r->shape);
            free(t);
        } else {
            s = attn_st_writer_add_f32(w, nm, r->data, r->ndim, r->shape);
        }
        if (s != ATTN_OK) return s;
    }
    return ATTN_OK;
}
