/* SPDX-License-Identifier: MIT */
/* params.c — parameter enumeration and gradients.
 *
 * Parameter order (only those that exist): q_proj.weight, [q_proj.bias],
 * k_proj.weight, [k_proj.bias], v_proj.weight, [v_proj.bias], o_proj.weight,
 * [o_proj.bias], [q_norm.weight, k_norm.weight], then per adapted projection
 * {q,k,v,o}_proj.lora_A.weight (r, in), {q,k,v,o}_proj.lora_B.weight (out, r).
 *
 * Load / save (safetensors) are in params_io.c. */
#include "layer/mha_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t attn_mha_num_params(const attn_mha *m) { return m ? m->nparams : 0; }

static void to_public(const mha_param_rec *r, attn_param *out) {
    out->name = r->name;
    out->data = r->data;
    out->grad = r->grad;
    out->ndim = r->ndim;
    out->shape[0] = r->shape[0];
    out->shape[1] = r->ndim == 2 ? r->shape[1] : 0;
    out->numel = r->numel;
    out->trainable = r->trainable;
}

attn_status attn_mha_param(attn_mha *m, int64_t index, attn_param *out) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_param: m is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_mha_param: out is NULL");
    if (index < 0 || index >= m->nparams)
        return attn__fail(ATTN_ERR_NOT_FOUND, "attn_mha_param: index = %lld, must be in [0, %d)", (long long)index, m->nparams);
    to_public(&m->params[index], out);
    return ATTN_OK;
}

attn_status attn_mha_find_param(attn_mha *m, const char *name, attn_param *out) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_find_param: m is NULL");
    if (!name) return attn__fail(ATTN_ERR_NULL, "attn_mha_find_param: name is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_mha_find_param: out is NULL");
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0) {
            to_public(&m->params[i], out);
            return ATTN_OK;
        }
    return attn__fail(ATTN_ERR_NOT_FOUND, "attn_mha_find_param: no parameter named \"%s\"", name);
}

int64_t attn_mha_num_trainable(const attn_mha *m) {
    if (!m) return 0;
    int64_t n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].trainable) n += m->params[i].numel;
    return n;
}

attn_status attn_mha_zero_grad(attn_mha *m) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_zero_grad: m is NULL");
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].grad) /* NULL in a 16-bit-weight layer */
            memset(m->params[i].grad, 0, (size_t)m->params[i].numel * sizeof(float));
    return ATTN_OK;
}

size_t attn_mha_param_bytes(const attn_mha *m) {
    if (!m) return 0;
    size_t n = m->arena_n * sizeof(float) * (m->garena ? 2 : 1) + m->warena_n * sizeof(uint16_t);
    for (int p = 0; p < MHA_NPROJ; p++) /* A, dA, B, dB */
        if (m->lora[p].rank > 0) n += (size_t)(2 * m->lora[p].rank * (m->lora[p].in + m->lora[p].out)) * sizeof(float);
    return n;
}

