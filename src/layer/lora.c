/* SPDX-License-Identifier: MIT */
/* lora.c — LoRA adapters on the q / k / v / o projections.
 *
 *   Y = X W^T + b + scale * (X A^T) B^T,  scale = alpha / r
 *   A (r, in): Kaiming-uniform (a = sqrt(5), as nn.Linear / PEFT): U(-1/sqrt(in), 1/sqrt(in)), seeded
 *   B (out, r): zero, so a fresh adapter leaves the layer unchanged.
 * Attaching freezes every base parameter (weights, biases, norm weights:
 * trainable = 0, no gradient accumulated). The forward runs the adapter
 * branch unless merged (W += scale B A). */
#include "layer/mha_internal.h"

#include "kernels/gemm.h"

#include <math.h>
#include <string.h>

attn_status attn_mha_lora_attach(attn_mha *m, int which, int64_t rank, float alpha, uint64_t seed) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_lora_attach: m is NULL");
    attn_status s0 = mha__fp32_only(m, "attn_mha_lora_attach");
    if (s0 != ATTN_OK) return s0;
    if (which <= 0 || which > (ATTN_PROJ_Q | ATTN_PROJ_K | ATTN_PROJ_V | ATTN_PROJ_O))
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_lora_attach: which = %d, must be a non-empty bitmask of ATTN_PROJ_Q|K|V|O (1..15)",
                          which);
    if (rank < 1 || rank > 65536)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_lora_attach: rank = %lld, must be in [1, 65536]", (long long)rank);
    if (!isfinite(alpha) || alpha <= 0.0f)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_lora_attach: alpha = %g, must be finite and > 0", (double)alpha);
    if (m->lora_which)
        return attn__fail(ATTN_ERR_STATE, "attn_mha_lora_attach: adapters are already attached (which = %d)", m->lora_which);
    const int64_t in_w[MHA_NPROJ] = {m->E, m->kdim, m->vdim, m->qd};
    const int64_t out_w[MHA_NPROJ] = {m->qd, m->kvd, m->kvd, m->E};
    int64_t total = 0;
    for (int p = 0; p < MHA_NPROJ; p++)
        if (which & (1 << p)) total += 2 * rank * (in_w[p] + out_w[p]);
    float *arena = (float *)attn__calloc((size_t)total, sizeof(float));
    if (!arena) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_lora_attach: cannot allocate %lld floats", (long long)total);
    static const char *names[MHA_NPROJ] = {"q_proj.lora_A.weight", "k_proj.lora_A.weight", "v_proj.lora_A.weight",
                                           "o_proj.lora_A.weight"};
    float *p0 = arena;
    for (int p = 0; p < MHA_NPROJ; p++) {
        if (!(which & (1 << p))) continue;
        mha_lora *l = &m->lora[p];
        l->rank = rank; l->in = in_w[p]; l->out = out_w[p];
        l->scale = (float)((double)alpha / (double)rank);
        l->A = p0; p0 += rank * l->in;
        l->dA = p0; p0 += rank * l->in;
        l->B = p0; p0 += rank * l->out;
        l->dB = p0; p0 += rank * l->out;
        mha__fill_uniform(l->A, rank * l->in, 1.0 / sqrt((double)l->in), seed, names[p]);
    }
    m->lora_arena = arena;
    m->lora_which = which;
    m->lora_merged = 0;
    m->base_trainable = 0;
    m->st.valid = 0;
    mha__rebuild_params(m);
    return ATTN_OK;
}

/* W (out, in) += sign * scale * B (out, r) A (r, in) for every adapter. */
static void merge_all(attn_mha *m, float sign) {
    for (int p = 0; p < MHA_NPROJ; p++) {
        mha_lora *l = &m->lora[p];
        if (l->rank <= 0) continue;
        attn__sgemm(0, 0, l->out, l->in, l->rank, sign * l->scale, l->B, l->rank, l->A, l->in, 1.0f, m->w[p], l->in);
    }
}

attn_status attn_mha_lora_merge(attn_mha *m) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_lora_merge: m is NULL");
    if (!m->lora_which) return attn__fail(ATTN_ERR_STATE, "attn_mha_lora_merge: no LoRA adapter attached");
    if (m->lora_merged) return attn__fail(ATTN_ERR_STATE, "attn_mha_lora_merge: already merged");
    merge_all(m, 1.0f);
    m->lora_merged = 1;
    m->st.valid = 0;
    return ATTN_OK;
}

attn_status attn_mha_lora_unmerge(attn_mha *m) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_lora_unmerge: m is NULL");
    if (!m->lora_which) return attn__fail(ATTN_ERR_STATE, "attn_mha_lora_unmerge: no LoRA adapter attached");
    if (!m->lora_merged) return attn__fail(ATTN_ERR_STATE, "attn_mha_lora_unmerge: not merged");
    merge_all(m, -1.0f);
    m->lora_merged = 0;
    m->st.valid = 0;
    return ATTN_OK;
}
