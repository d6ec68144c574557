/* SPDX-License-Identifier: MIT */
/* mha_paged.c — attn_mha_forward_paged: the incremental (inference) forward
 * of a batch of sequences held in a paged KV cache (continuous batching).
 *
 * x (T, E) packs the new tokens of n sequences: sequence ids[b] owns rows
 * [cu[b], cu[b+1]). The step is that of attn_mha_forward_cached, per sequence:
 *   proj (T, qd + 2 kvd) = [q | k | v] after bias, qk-norm and RoPE at
 *   positions len_b + i (mha__project_incremental);
 *   k, v rows appended to the cache (blocks allocated / copied on write);
 *   o (T, qd) = attn_sdpa_paged_fwd over the block tables, causal,
 *   bottom-right aligned (query i of sequence b at key position len_b + i);
 *   y (T, E) = o Wo^T (+ bo).
 * Everything that can fail is checked before the cache is touched; if a
 * later step fails anyway, the appended tokens are truncated away again. */
#include "layer/mha_internal.h"
#include "layer/kvcache_paged.h"

#include <string.h>

static attn_status check_batch(const char *fn, const attn_mha *m, const attn_kvpaged *c, const int64_t *ids, int64_t n,
                               const int32_t *cu) {
    if (m->kdim != m->E || m->vdim != m->E)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: self-attention only (kdim = %lld, vdim = %lld, embed_dim = %lld)", fn,
                          (long long)m->kdim, (long long)m->vdim, (long long)m->E);
    if (c->Hkv != m->Hkv || c->D != m->D)
        return attn__fail(ATTN_ERR_SHAPE, "%s: cache has %lld kv heads of dim %lld, the layer %lld of dim %lld", fn,
                          (long long)c->Hkv, (long long)c->D, (long long)m->Hkv, (long long)m->D);
    if (n < 0 || n > c->S)
        return attn__fail(ATTN_ERR_SHAPE, "%s: n = %lld, must be in [0, max_seqs = %lld]", fn, (long long)n, (long long)c->S);
    if (n == 0) return ATTN_OK;
    if (!ids || !cu) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !ids ? "ids" : "cu_seqlens_q");
    if (cu[0] != 0) return attn__fail(ATTN_ERR_SHAPE, "%s: cu_seqlens_q[0] = %d, must be 0", fn, cu[0]);
    int64_t need = 0;
    for (int64_t b = 0; b < n; b++) {
        if (cu[b + 1] < cu[b] || cu[b + 1] > (1 << 30))
            return attn__fail(ATTN_ERR_SHAPE, "%s: cu_seqlens_q[%lld] = %d after %d: must be non-decreasing and <= 2^30", fn,
                              (long long)(b + 1), cu[b + 1], cu[b]);
        const int64_t s = attn__kvpaged_slot(c, ids[b]);
        if (s < 0) return attn__fail(ATTN_ERR_NOT_FOUND, "%s: ids[%lld] = %lld is not a live sequence", fn, (long long)b,
                                     (long long)ids[b]);
        for (int64_t a = 0; a < b; a++)
            if (ids[a] == ids[b])
                return attn__fail(ATTN_ERR_STATE, "%s: duplicate sequence id %lld (ids[%lld] and ids[%lld])", fn,
                                  (long long)ids[b], (long long)a, (long long)b);
        const int64_t sq = (int64_t)cu[b + 1] - cu[b];
        if (sq > c->cfg.max_seq_len - c->len[s])
            return attn__fail(ATTN_ERR_CAPACITY, "%s: sequence %lld has %lld tokens, + %lld exceeds max_seq_len = %lld", fn,
                              (long long)ids[b], (long long)c->len[s], (long long)sq, (long long)c->cfg.max_seq_len);
        need += attn__kvpaged_blocks_needed(c, s, sq);
    }
    if (need > c->nfree)
        return attn__fail(ATTN_ERR_CAPACITY, "%s: the new tokens need %lld blocks, the pool has %lld free", fn,
                          (long long)need, (long long)c->nfree);
    return ATTN_OK;
}

/* Removes the tokens this call appended (after a late failure). */
static void rollback(attn_kvpaged *c, const int64_t *ids, int64_t n, const int32_t *cu) {
    for (int64_t b = 0; b < n; b++) {
        const int64_t s = attn__kvpaged_slot(c, ids[b]);
        attn__kvpaged_truncate_slot(c, s, c->len[s] - ((int64_t)cu[b + 1] - cu[b]));
    }
}

/* o (T, qd) = paged attention of q (rows of proj) over the cache. */
static attn_status attend(attn_mha *m, attn_kvpaged *c, const int64_t *ids, int64_t n, const int32_t *cu,
                          const float *qp, int64_t ld, float *o, void *ws, size_t ws_size) {
    int32_t *lens = (int32_t *)m->b_cache_q.p, *tables = lens + n; /* (n), (n, mb) */
    attn_paged_kv kv;
    attn_status s = attn_kvpaged_describe(c, ids, n, lens, tables, &kv);
    if (s) return s;
    const int64_t T = cu[n];
    attn_sdpa_dims dims = {n, T, 0, m->Hq, m->Hkv, m->D, m->D};
    attn_sdpa_opts opts;
    attn_sdpa_opts_init(&opts);
    opts.scale = m->cfg.scale;
    opts.causal = 1;
    opts.align = ATTN_ALIGN_BOTTOM_RIGHT;
    opts.window_left = m->cfg.window_left;
    opts.window_right = m->cfg.window_right;
    opts.softcap = m->cfg.softcap;
    opts.cu_seqlens_q = cu;
    attn_view qv = attn_view_bshd((float *)qp, T, m->Hq, m->D);
    qv.stride_s = ld;
    attn_view ov = attn_view_bshd(o, T, m->Hq, m->D);
    return attn_sdpa_paged_fwd(&dims, qv, &kv, ov, NULL, &opts, ws, ws_size);
}

attn_status attn_mha_forward_paged(attn_mha *m, attn_kvpaged *cache, const int64_t *ids, int64_t n,
                                   const int32_t *cu_seqlens_q, const float *x, float *y) {
    static const char fn[] = "attn_mha_forward_paged";
    if (!m || !cache) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !m ? "m" : "cache");
    if (m->att_fwd)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: an attention backend is set (attn_mha_set_attention); the "
                          "paged forward attends over its cache with the kernels", fn);
    attn_status s = check_batch(fn, m, cache, ids, n, cu_seqlens_q);
    if (s) return s;
    const int64_t T = n > 0 ? cu_seqlens_q[n] : 0;
    if (T > 0 && (!x || !y)) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !x ? "x" : "y");
    m->st.valid = 0; /* the scratch buffers are reused */
    if (T == 0) return ATTN_OK;

    /* scratch: proj (T, qd + 2 kvd), o (T, qd), pos (T), int32 lens + tables, kernel workspace */
    const int64_t qd = m->qd, ld = qd + 2 * m->kvd;
    float *proj, *o;
    if ((s = mha__grow_f(&m->b_proj, T * ld, &proj)) != ATTN_OK) return s;
    if ((s = mha__grow_f(&m->b_o, T * qd, &o)) != ATTN_OK) return s;
    int64_t *pos = (int64_t *)mha__grow(&m->b_pos, (size_t)T * sizeof(int64_t));
    if (!pos || !mha__grow(&m->b_cache_q, (size_t)(n + n * cache->mb) * sizeof(int32_t)))
        return attn__fail(ATTN_ERR_NOMEM, "%s: positions / block-table scratch", fn);
    attn_sdpa_dims dims = {n, T, 0, m->Hq, m->Hkv, m->D, m->D};
    attn_paged_kv shape = {cache->cfg.dtype, NULL, NULL, cache->nb, cache->bs, NULL, cache->mb, NULL, NULL, NULL};
    const size_t wsn = attn_sdpa_paged_fwd_workspace_size(&dims, &shape, NULL);
    void *ws = mha__grow(&m->b_ws, wsn);
    if (!ws) return attn__fail(ATTN_ERR_NOMEM, "%s: paged sdpa workspace of %zu bytes", fn, wsn);

    for (int64_t b = 0; b < n; b++) {
        const int64_t len = cache->len[attn__kvpaged_slot(cache, ids[b])];
        for (int64_t i = cu_seqlens_q[b]; i < cu_seqlens_q[b + 1]; i++) pos[i] = len + i - cu_seqlens_q[b];
    }
    if ((s = mha__project_incremental(m, x, T, pos, proj)) != ATTN_OK) return s;
    for (int64_t b = 0; b < n; b++) { /* append k, v (capacity checked above) */
        const int64_t r0 = cu_seqlens_q[b];
        attn__kvpaged_append_slot(cache, attn__kvpaged_slot(cache, ids[b]), (int64_t)cu_seqlens_q[b + 1] - r0,
                                  proj + r0 * ld + qd, proj + r0 * ld + qd + m->kvd, ld);
    }
    if ((s = attend(m, cache, ids, n, cu_seqlens_q, proj, ld, o, ws, m->b_ws.cap)) != ATTN_OK ||
        (s = mha__out_proj(m, T, o, y, 0)) != ATTN_OK) {
        rollback(cache, ids, n, cu_seqlens_q);
        return s;
    }
    return ATTN_OK;
}
