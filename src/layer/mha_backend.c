/* SPDX-License-Identifier: MIT */
/* mha_backend.c — the layer's attention call: the sdpa kernels, or the
 * backend a caller set with attn_mha_set_attention (e.g. libattn_mpi's ring
 * over a sharded sequence). The forward and backward of the layer call these
 * two functions where they attend; everything around them is unchanged. */
#include "layer/mha_internal.h"

attn_status attn_mha_set_attention(attn_mha *m, attn_mha_attn_fwd_fn fwd, attn_mha_attn_bwd_fn bwd, void *user) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_set_attention: m is NULL");
    if (!fwd != !bwd)
        return attn__fail(ATTN_ERR_NULL, "attn_mha_set_attention: %s is NULL but %s is not (give both, or neither "
                          "for the kernels)", fwd ? "bwd" : "fwd", fwd ? "fwd" : "bwd");
    m->att_fwd = fwd;
    m->att_bwd = bwd;
    m->att_user = fwd ? user : NULL;
    m->st.valid = 0; /* a saved forward was computed by the previous attention */
    return ATTN_OK;
}

attn_status mha__attend_fwd(attn_mha *m, const char *fn, const attn_sdpa_dims *d, attn_view q, attn_view k,
                            attn_view v, attn_view o, float *lse, const attn_sdpa_opts *opts) {
    if (m->att_fwd) {
        attn_status s = m->att_fwd(m->att_user, d, q, k, v, o, lse, opts);
        if (s != ATTN_OK)
            return attn__fail(s, "%s: the attention backend (attn_mha_set_attention) failed: %s", fn,
                              attn_status_str(s));
        return ATTN_OK;
    }
    size_t ws = attn_sdpa_fwd_workspace_size(d, opts);
    void *wsp = mha__grow(&m->b_ws, ws);
    if (!wsp) return attn__fail(ATTN_ERR_NOMEM, "%s: sdpa workspace of %zu bytes", fn, ws);
    return attn_sdpa_fwd(d, q, k, v, o, lse, opts, wsp, m->b_ws.cap);
}

attn_status mha__attend_bwd(attn_mha *m, const char *fn, const attn_sdpa_dims *d, attn_view q, attn_view k,
                            attn_view v, attn_view o, attn_view dO, const float *lse, attn_view dq, attn_view dk,
                            attn_view dv, const attn_sdpa_opts *opts) {
    if (m->att_bwd) {
        attn_status s = m->att_bwd(m->att_user, d, q, k, v, o, dO, lse, dq, dk, dv, opts);
        if (s != ATTN_OK)
            return attn__fail(s, "%s: the attention backend (attn_mha_set_attention) failed: %s", fn,
                              attn_status_str(s));
        return ATTN_OK;
    }
    size_t ws = attn_sdpa_bwd_workspace_size(d, opts);
    void *wsp = mha__grow(&m->b_ws, ws);
    if (!wsp) return attn__fail(ATTN_ERR_NOMEM, "%s: sdpa workspace of %zu bytes", fn, ws);
    return attn_sdpa_bwd(d, q, k, v, o, dO, lse, dq, dk, dv, opts, wsp, m->b_ws.cap);
}
