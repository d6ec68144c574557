/* SPDX-License-Identifier: MIT */
/* mha_backward.c — backward of the last training-mode attn_mha_forward.
 *
 * Legend as in mha_internal.h. The mirror image of the forward:
 *   y = o Wo^T + bo (+ s_o (o A_o^T) B_o^T)
 *       dWo += dy^T o,  dbo += sum_rows dy,  dO = dy Wo (+ LoRA)
 *   o = sdpa(q, k, v)               ─► attn_sdpa_bwd (or the backend): dq, dk, dv (into dproj, same layout as proj)
 *   q = rope(norm(x Wq^T + bq))     ─► dq ← rope^-1(dq) ─► rmsnorm bwd (dq_norm +=) ─► d(pre-norm q)
 *   dWq += dq^T x, dbq += sum dq, dx = dq Wq + dk Wk + dv Wv, LoRA:  dB += s dY^T (X A^T),  dA += (s dY B)^T X,  dX += (s dY B) A.
 * Parameter gradients are accumulated (+=); frozen base parameters (LoRA
 * attached) get none. */
#include "layer/mha_internal.h"

#include "kernels/gemm.h"

#include <string.h>

/* LoRA part of the backward of projection p:
 *   dY (rows, out) [ld_dy], X (rows, in) [ld_x] the saved input,
 *   dX (rows, in) [ld_dx] accumulated (+=) or NULL. */
static attn_status lora_bwd(attn_mha *m, int p, int64_t rows, const float *dY, int64_t ld_dy, const float *X,
                            int64_t ld_x, float *dX, int64_t ld_dx) {
    if (!mha__lora_on(m, p) || rows == 0) return ATTN_OK;
    const mha_lora *l = &m->lora[p];
    const int64_t r = l->rank;
    attn_status s;
    float *xa, *dxa;
    if ((s = mha__grow_f(&m->b_xa[p], rows * r, &xa)) != ATTN_OK) return s;
    if (m->lora_merged) /* the forward did not run the branch: recompute X A^T */
        attn__sgemm(0, 1, rows, r, l->in, 1.0f, X, ld_x, l->A, l->in, 0.0f, xa, r);
    if ((s = mha__grow_f(&m->b_dxa, rows * r, &dxa)) != ATTN_OK) return s;
    /* dB (out, r) += s dY^T xa */
    attn__sgemm(1, 0, l->out, r, rows, l->scale, dY, ld_dy, xa, r, 1.0f, l->dB, r);
    /* dxa (rows, r) = s dY B */
    attn__sgemm(0, 0, rows, r, l->out, l->scale, dY, ld_dy, l->B, r, 0.0f, dxa, r);
    /* dA (r, in) += dxa^T X */
    attn__sgemm(1, 0, r, l->in, rows, 1.0f, dxa, r, X, ld_x, 1.0f, l->dA, l->in);
    /* dX += dxa A (merged weights already contain the branch) */
    if (dX && !m->lora_merged) attn__sgemm(0, 0, rows, l->in, r, 1.0f, dxa, r, l->A, l->in, 1.0f, dX, ld_dx);
    return ATTN_OK;
}

attn_status attn_mha_backward(attn_mha *m, const float *dy, float *dx, float *dkey, float *dvalue) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_backward: m is NULL");
    attn_status s0 = mha__fp32_only(m, "attn_mha_backward");
    if (s0 != ATTN_OK) return s0;
    if (!dy) return attn__fail(ATTN_ERR_NULL, "attn_mha_backward: dy is NULL");
    mha_state *st = &m->st;
    if (!st->valid)
        return attn__fail(ATTN_ERR_STATE, "attn_mha_backward: no saved training-mode forward "
                          "(call attn_mha_set_training(m, 1) and attn_mha_forward first; one backward per forward)");
    const int64_t E = m->E, qd = m->qd, kvd = m->kvd, D = m->D;
    const int64_t rows_q = st->rows_q, rows_k = st->rows_k;
    if (rows_q == 0) { /* empty query: no gradient reaches key / value */
        if (st->cross && dkey) memset(dkey, 0, (size_t)(rows_k * m->kdim) * sizeof(float));
        if (st->cross && !st->value_is_key && dvalue) memset(dvalue, 0, (size_t)(rows_k * m->vdim) * sizeof(float));
        st->valid = 0;
        return ATTN_OK;
    }
    const int train = m->base_trainable;
    const float *x = (const float *)m->b_x.p;
    const float *key = st->cross ? (const float *)m->b_key.p : x;
    const float *value = st->cross ? (st->value_is_key ? key : (const float *)m->b_value.p) : x;
    const float *o = (const float *)m->b_o.p;
    attn_status s;

    /* ── output projection: y = o Wo^T + bo ── */
    float *dO;
    if ((s = mha__grow_f(&m->b_do, rows_q * qd, &dO)) != ATTN_OK) return s;
    if (train) {
        attn__sgemm(1, 0, E, qd, rows_q, 1.0f, dy, E, o, qd, 1.0f, m->dw[MHA_O], qd); /* dWo += dy^T o */
        if (m->db[MHA_O]) mha__bias_grad(rows_q, E, dy, E, m->db[MHA_O]);
    }
    attn__sgemm(0, 0, rows_q, qd, E, 1.0f, dy, E, m->w[MHA_O], qd, 0.0f, dO, qd); /* dO = dy Wo */
    if ((s = lora_bwd(m, MHA_O, rows_q, dy, E, o, qd, dO, qd)) != ATTN_OK) return s;

    /* ── attention ── dproj = dq (rows_q, qd) | dk (rows_k, kvd) | dv (rows_k, kvd): three
     * separate blocks (the kernel's outputs must not share an address range) */
    float *dproj;
    if ((s = mha__grow_f(&m->b_dproj, rows_q * qd + 2 * rows_k * kvd, &dproj)) != ATTN_OK) return s;
    float *dqp = dproj, *dkp = dproj + rows_q * qd, *dvp = dkp + rows_k * kvd;
    attn_view dq = mha__rows_view(dqp, st->layout, st->B, st->Sq, qd, D);
    attn_view dk = mha__rows_view(dkp, st->layout, st->B, st->Skv, kvd, D);
    attn_view dv = mha__rows_view(dvp, st->layout, st->B, st->Skv, kvd, D);
    attn_view dOv = mha__rows_view(dO, st->layout, st->B, st->Sq, qd, D);
    if ((s = mha__attend_bwd(m, "attn_mha_backward", &st->dims, st->q, st->k, st->v, st->o, dOv,
                             (const float *)m->b_lse.p, dq, dk, dv, &st->opts)) != ATTN_OK)
        return s;

    /* ── RoPE^-1, then qk-norm backward (in place on dq, dk) ── */
    mha_seg seg[2];
    memset(seg, 0, sizeof seg);
    const int rope = m->rope_half > 0;
    seg[0].base = dqp; seg[0].ld = qd; seg[0].H = m->Hq; seg[0].Dh = D;
    seg[1].base = dkp; seg[1].ld = kvd; seg[1].H = m->Hkv; seg[1].Dh = D;
    if (rope) {
        seg[0].cos_t = (const float *)m->b_cos_q.p; seg[0].sin_t = (const float *)m->b_sin_q.p;
        seg[1].cos_t = st->cross ? (const float *)m->b_cos_k.p : seg[0].cos_t;
        seg[1].sin_t = st->cross ? (const float *)m->b_sin_k.p : seg[0].sin_t;
    }
    if (m->qn) {
        const float *qw, *kw;
        mha__norm_weights(m, &qw, &kw);
        seg[0].norm_w = qw; seg[0].xhat = (float *)m->b_qhat.p; seg[0].rstd = (float *)m->b_rstd_q.p;
        seg[0].dnorm_w = train ? m->dqn : NULL;
        seg[1].norm_w = kw; seg[1].xhat = (float *)m->b_khat.p; seg[1].rstd = (float *)m->b_rstd_k.p;
        seg[1].dnorm_w = train ? m->dkn : NULL;
    }
    if (!st->cross) s = mha__bwd_rows(m, rows_q, seg, 2);
    else if ((s = mha__bwd_rows(m, rows_q, seg, 1)) == ATTN_OK) s = mha__bwd_rows(m, rows_k, seg + 1, 1);
    if (s != ATTN_OK) return s;

    /* ── input projections: W (out, in); dW += dY^T X, db += sum dY, dX (+)= dY W ── */
    const float *X[3] = {x, key, value};
    const int64_t in_w[3] = {E, m->kdim, m->vdim}, nrow[3] = {rows_q, rows_k, rows_k}, outw[3] = {qd, kvd, kvd};
    const float *dY[3] = {dqp, dkp, dvp};
    /* where each projection's input gradient goes: self-attention -> dx for all three;
     * cross -> dx, dkey, dvalue (or dkey for both when value is key) */
    float *dX[3] = {dx, st->cross ? dkey : dx, st->cross ? (st->value_is_key ? dkey : dvalue) : dx};
    for (int p = 0; p < 3; p++) {
        if (train) {
            attn__sgemm(1, 0, outw[p], in_w[p], nrow[p], 1.0f, dY[p], outw[p], X[p], in_w[p], 1.0f, m->dw[p], in_w[p]);
            if (m->db[p]) mha__bias_grad(nrow[p], outw[p], dY[p], outw[p], m->db[p]);
        }
        if (dX[p]) { /* the first projection writing a given dX overwrites it */
            int first = 1;
            for (int pp = 0; pp < p; pp++) first &= dX[pp] != dX[p];
            attn__sgemm(0, 0, nrow[p], in_w[p], outw[p], 1.0f, dY[p], outw[p], m->w[p], in_w[p], first ? 0.0f : 1.0f,
                        dX[p], in_w[p]);
        }
        if ((s = lora_bwd(m, p, nrow[p], dY[p], outw[p], X[p], in_w[p], dX[p], in_w[p])) != ATTN_OK) return s;
    }
    st->valid = 0;
    return ATTN_OK;
}
