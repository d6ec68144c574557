/* SPDX-License-Identifier: MIT */
/* kvcache.c — KV cache and the incremental (inference) forward.
 *
 * The cache holds K and V after k-norm and RoPE, only the Hkv heads:
 *   k, v (B, Hkv, capacity, D) (head-major: a decoding step streams each
 *   head's keys as one contiguous block instead of touching one page per
 *   key), sequence b valid for positions [0, len[b]).
 * attn_mha_forward_cached projects the Sq new tokens of x (B, Sq, E),
 * normalises / rotates them at positions len[b] + i, appends K and V at
 * those slots, and calls the sdpa kernel with a strided view over the cache:
 *   key_lens[b] = len[b] + Sq, causal, bottom-right alignment, so query i of
 *   sequence b sits at key position len[b] + i (attn.h position model).
 * Decoding token by token is therefore the same computation as one causal
 * forward over the whole sequence.
 * Reduced-precision caches (BF16 / F16 / I8, attn_kvcache_create_typed) store
 * the rows rounded / quantised (kernels/kv_typed.h) and attend through the
 * paged kernel, the cache described as a paged pool of B blocks of `capacity`
 * tokens, sequence b owning block b (same layout: (B, Hkv, capacity, D)),
 * so one decode kernel reads every typed cache in place. */
#include "layer/mha_internal.h"

#include "kernels/gemm.h"
#include "kernels/kv_typed.h"

#include <stdlib.h>
#include <string.h>

struct attn_kvcache {
    int64_t B, cap, Hkv, D;
    attn_dtype dtype;
    size_t es;              /* bytes per element of dtype */
    unsigned char *k, *v;   /* (B, Hkv, cap, D) each, elements of dtype */
    float *ks, *vs;         /* I8 only: (B, Hkv, cap) row scales, else NULL */
    int64_t *len;           /* (B) valid tokens per sequence */
    int32_t *lens32;        /* (B) scratch: key_lens / seq_lens for the kernel */
    int32_t *cu, *blocks;   /* typed: (B + 1) query row offsets, (B) block table entries b -> b */
};

/* Typed caches attend through the paged kernel: capacity is one block of it. */
#define KV_TYPED_MAX_CAP ((int64_t)1 << 30)

attn_status attn_kvcache_create(attn_kvcache **out, int64_t batch, int64_t capacity, int64_t num_kv_heads,
                                int64_t head_dim) {
    return attn_kvcache_create_typed(out, batch, capacity, num_kv_heads, head_dim, ATTN_DTYPE_F32);
}

attn_status attn_kvcache_create_typed(attn_kvcache **out, int64_t batch, int64_t capacity, int64_t num_kv_heads,
                                      int64_t head_dim, attn_dtype dtype) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_kvcache_create: out is NULL");
    *out = NULL;
    const size_t es = attn__kv_elem_size(dtype);
    if (es == 0)
        return attn__fail(ATTN_ERR_DTYPE, "attn_kvcache_create_typed: dtype = %d: a KV cache holds ATTN_DTYPE_F32, "
                          "BF16, F16 or I8", (int)dtype);
    if (batch < 1) return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_create: batch = %lld, must be >= 1", (long long)batch);
    const int64_t maxcap = dtype == ATTN_DTYPE_F32 ? INT32_MAX : KV_TYPED_MAX_CAP;
    if (capacity < 1 || capacity > maxcap)
        return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_create: capacity = %lld, must be in [1, %lld] (%s cache)",
                          (long long)capacity, (long long)maxcap, attn__kv_dtype_name(dtype));
    if (batch > INT32_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_create: batch = %lld, must be <= %d", (long long)batch, INT32_MAX);
    if (num_kv_heads < 1 || num_kv_heads > 65536)
        return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_create: num_kv_heads = %lld, must be in [1, 65536]", (long long)num_kv_heads);
    if (head_dim < 1 || head_dim > 256)
        return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_create: head_dim = %lld, must be in [1, 256]", (long long)head_dim);
    int ok = 1;
    size_t n = attn__mul_size(attn__mul_size(attn__mul_size((size_t)batch, (size_t)capacity, &ok), (size_t)num_kv_heads, &ok),
                              (size_t)head_dim, &ok);
    size_t bytes = attn__mul_size(n, es, &ok);
    const size_t sbytes = attn__mul_size(n / (size_t)head_dim, sizeof(float), &ok);
    if (!ok || n > (size_t)INT64_MAX / 4)
        return attn__fail(ATTN_ERR_NOMEM, "attn_kvcache_create: size overflows (batch %lld x capacity %lld x heads %lld x dim %lld)",
                          (long long)batch, (long long)capacity, (long long)num_kv_heads, (long long)head_dim);
    attn_kvcache *c = (attn_kvcache *)calloc(1, sizeof *c);
    if (!c) return attn__fail(ATTN_ERR_NOMEM, "attn_kvcache_create: out of memory");
    c->B = batch; c->cap = capacity; c->Hkv = num_kv_heads; c->D = head_dim; c->dtype = dtype; c->es = es;
    c->k = (unsigned char *)attn__malloc_huge(bytes);
    c->v = (unsigned char *)attn__malloc_huge(bytes);
    c->len = (int64_t *)calloc((size_t)batch, sizeof(int64_t));
    c->lens32 = (int32_t *)calloc((size_t)batch, sizeof(int32_t));
    int bad = !c->k || !c->v || !c->len || !c->lens32;
    if (dtype == ATTN_DTYPE_I8) {
        c->ks = (float *)attn__malloc(sbytes);
        c->vs = (float *)attn__malloc(sbytes);
        bad |= !c->ks || !c->vs;
    }
    if (dtype != ATTN_DTYPE_F32) {
        c->cu = (int32_t *)calloc((size_t)batch + 1, sizeof(int32_t));
        c->blocks = (int32_t *)calloc((size_t)batch, sizeof(int32_t));
        bad |= !c->cu || !c->blocks;
        for (int64_t b = 0; !bad && b < batch; b++) c->blocks[b] = (int32_t)b;
    }
    if (bad) {
        attn_kvcache_free(c);
        return attn__fail(ATTN_ERR_NOMEM, "attn_kvcache_create: cannot allocate 2 x %zu bytes", bytes);
    }
    *out = c;
    return ATTN_OK;
}

void attn_kvcache_free(attn_kvcache *c) {
    if (!c) return;
    attn__free(c->k);
    attn__free(c->v);
    attn__free(c->ks);
    attn__free(c->vs);
    free(c->len);
    free(c->lens32);
    free(c->cu);
    free(c->blocks);
    free(c);
}

attn_dtype attn_kvcache_dtype(const attn_kvcache *c) {
    if (!c) { attn__fail(ATTN_ERR_NULL, "attn_kvcache_dtype: c is NULL"); return ATTN_DTYPE_F32; }
    return c->dtype;
}

attn_status attn_kvcache_read(const attn_kvcache *c, int64_t b, int64_t t0, int64_t n, float *k, float *v) {
    static const char fn[] = "attn_kvcache_read";
    if (!c) return attn__fail(ATTN_ERR_NULL, "%s: c is NULL", fn);
    if (b < 0 || b >= c->B)
        return attn__fail(ATTN_ERR_SHAPE, "%s: b = %lld, must be in [0, %lld)", fn, (long long)b, (long long)c->B);
    if (t0 < 0 || n < 0 || t0 > c->len[b] - n)
        return attn__fail(ATTN_ERR_SHAPE, "%s: tokens [%lld, %lld + %lld) are not within the %lld of sequence %lld", fn,
                          (long long)t0, (long long)t0, (long long)n, (long long)c->len[b], (long long)b);
    if (n > 0 && (!k || !v)) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !k ? "k" : "v");
    const int64_t D = c->D;
    for (int64_t i = 0; i < n; i++)
        for (int64_t h = 0; h < c->Hkv; h++) {
            const int64_t row = (b * c->Hkv + h) * c->cap + t0 + i; /* (b, h, t0 + i) */
            attn__kv_get_row(c->dtype, c->k + (size_t)(row * D) * c->es, c->ks ? c->ks[row] : 1.0f, k + (i * c->Hkv + h) * D, D);
            attn__kv_get_row(c->dtype, c->v + (size_t)(row * D) * c->es, c->vs ? c->vs[row] : 1.0f, v + (i * c->Hkv + h) * D, D);
        }
    return ATTN_OK;
}

attn_status attn_kvcache_reset(attn_kvcache *c) {
    if (!c) return attn__fail(ATTN_ERR_NULL, "attn_kvcache_reset: c is NULL");
    memset(c->len, 0, (size_t)c->B * sizeof(int64_t));
    return ATTN_OK;
}

attn_status attn_kvcache_truncate(attn_kvcache *c, int64_t b, int64_t len) {
    if (!c) return attn__fail(ATTN_ERR_NULL, "attn_kvcache_truncate: c is NULL");
    if (b >= c->B) return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_truncate: b = %lld, must be < batch = %lld (or < 0 for all)",
                                     (long long)b, (long long)c->B);
    if (len < 0) return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_truncate: len = %lld < 0", (long long)len);
    const int64_t b0 = b < 0 ? 0 : b, b1 = b < 0 ? c->B : b + 1;
    for (int64_t i = b0; i < b1; i++)
        if (len > c->len[i])
            return attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_truncate: len = %lld exceeds the length %lld of sequence %lld",
                              (long long)len, (long long)c->len[i], (long long)i);
    for (int64_t i = b0; i < b1; i++) c->len[i] = len;
    return ATTN_OK;
}

int64_t attn_kvcache_len(const attn_kvcache *c, int64_t b) {
    if (!c) { attn__fail(ATTN_ERR_NULL, "attn_kvcache_len: c is NULL"); return -1; }
    if (b < 0 || b >= c->B) {
        attn__fail(ATTN_ERR_SHAPE, "attn_kvcache_len: b = %lld, must be in [0, %lld)", (long long)b, (long long)c->B);
        return -1;
    }
    return c->len[b];
}

int64_t attn_kvcache_capacity(const attn_kvcache *c) { return c ? c->cap : 0; }

typedef struct append_ctx {
    attn_kvcache *c;
    const float *kp, *vp; /* new k, v rows (B*Sq rows, ld apart) */
    int64_t ld, Sq;
} append_ctx;

static void append_task(void *vctx, int64_t b, int tid) {
    (void)tid;
    append_ctx *a = (append_ctx *)vctx;
    attn_kvcache *c = a->c;
    const int64_t D = c->D;
    for (int64_t h = 0; h < c->Hkv; h++) {
        const int64_t row0 = (b * c->Hkv + h) * c->cap + c->len[b]; /* (b, h, len[b]) */
        for (int64_t s = 0; s < a->Sq; s++) {
            const int64_t src = (b * a->Sq + s) * a->ld + h * D, row = row0 + s; /* row (b, s), head h */
            attn__kv_put_row(c->dtype, c->k + (size_t)(row * D) * c->es, c->ks ? c->ks + row : NULL, a->kp + src, D);
            attn__kv_put_row(c->dtype, c->v + (size_t)(row * D) * c->es, c->vs ? c->vs + row : NULL, a->vp + src, D);
        }
    }
}

/* proj (rows, qd + 2 kvd) = [q | k | v] of the new tokens x (rows, E):
 * x Wqkv^T (+ LoRA), then bias, qk-norm and RoPE at positions pos (rows).
 * Shared by the incremental forwards (contiguous and paged caches). */
attn_status mha__project_incremental(attn_mha *m, const float *x, int64_t rows, const int64_t *pos, float *proj) {
    const int64_t E = m->E, qd = m->qd, kvd = m->kvd, D = m->D, ld = qd + 2 * kvd;
    float *qp = proj, *kp = proj + qd, *vp = proj + qd + kvd;
    attn_status s;
    /* proj (rows, qd + 2 kvd) = x Wqkv^T (+ LoRA) */
    if ((s = mha__proj(m, MHA_Q, rows, ld, E, x, E, proj, ld)) != ATTN_OK) return s;
    float *dst[3] = {qp, kp, vp};
    for (int p = 0; p < 3; p++) {
        if (!mha__lora_active(m, p)) continue;
        float *xa;
        if ((s = mha__grow_f(&m->b_dxa, rows * m->lora[p].rank, &xa)) != ATTN_OK) return s;
        mha__lora_fwd(m, p, rows, x, E, dst[p], ld, xa);
    }

    /* bias, qk-norm, rope at positions pos */
    float *cos_t = NULL, *sin_t = NULL;
    if (m->rope_half) {
        if ((s = mha__rope_tables(m, pos, rows, &m->b_cos_q, &m->b_sin_q, &cos_t, &sin_t)) != ATTN_OK) return s;
    }
    mha_seg seg[3];
    memset(seg, 0, sizeof seg);
    seg[0].base = qp; seg[0].ld = ld; seg[0].H = m->Hq; seg[0].Dh = D; seg[0].bias = m->b[MHA_Q];
    const float *qw, *kw;
    mha__norm_weights(m, &qw, &kw);
    seg[0].norm_w = qw; seg[0].cos_t = cos_t; seg[0].sin_t = sin_t;
    seg[1].base = kp; seg[1].ld = ld; seg[1].H = m->Hkv; seg[1].Dh = D; seg[1].bias = m->b[MHA_K];
    seg[1].norm_w = kw; seg[1].cos_t = cos_t; seg[1].sin_t = sin_t;
    seg[2].base = vp; seg[2].ld = ld; seg[2].H = m->Hkv; seg[2].Dh = D; seg[2].bias = m->b[MHA_V];
    mha__fwd_rows(m, rows, seg, 3);
    return ATTN_OK;
}

/* o (B, Sq, Hq, D) = attention of q over an F32 cache: attn_sdpa_fwd on head-major views. */
static attn_status attend_f32(attn_mha *m, attn_kvcache *cache, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts,
                              const float *qp, int64_t ld, float *o) {
    const int64_t Sq = dims->seq_q, D = m->D;
    attn_view qv = attn_view_bshd((float *)qp, Sq, m->Hq, D);
    qv.stride_s = ld; qv.stride_b = Sq * ld;
    attn_view kv = attn_view_bhsd((float *)cache->k, cache->cap, m->Hkv, D);
    attn_view vv = attn_view_bhsd((float *)cache->v, cache->cap, m->Hkv, D);
    attn_view ov = attn_view_bshd(o, Sq, m->Hq, D);
    size_t ws = attn_sdpa_fwd_workspace_size(dims, opts);
    void *wsp = mha__grow(&m->b_ws, ws);
    if (!wsp) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward_cached: sdpa workspace of %zu bytes", ws);
    return attn_sdpa_fwd(dims, qv, kv, vv, ov, NULL, opts, wsp, m->b_ws.cap);
}

/* o (B * Sq, Hq, D) = attention of q over a typed cache: the paged kernel, the
 * cache a pool of B blocks of cap tokens (sequence b = block b). opts gives
 * scale, causal bottom-right, window and softcap (its key_lens is dropped). */
static attn_status attend_typed(attn_mha *m, attn_kvcache *cache, const attn_sdpa_opts *opts0, const float *qp,
                                int64_t ld, int64_t Sq, float *o) {
    const int64_t B = cache->B, T = B * Sq, D = m->D;
    for (int64_t b = 0; b <= B; b++) cache->cu[b] = (int32_t)(b * Sq);
    attn_paged_kv kv = {cache->dtype, cache->k, cache->v, B, cache->cap, cache->blocks, 1, cache->lens32, cache->ks, cache->vs};
    attn_sdpa_opts opts = *opts0;
    opts.key_lens = NULL;
    opts.cu_seqlens_q = cache->cu;
    attn_sdpa_dims dims = {B, T, 0, m->Hq, m->Hkv, D, D};
    attn_view qv = attn_view_bshd((float *)qp, T, m->Hq, D);
    qv.stride_s = ld;
    attn_view ov = attn_view_bshd(o, T, m->Hq, D);
    const size_t ws = attn_sdpa_paged_fwd_workspace_size(&dims, &kv, &opts);
    void *wsp = mha__grow(&m->b_ws, ws);
    if (!wsp) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward_cached: paged sdpa workspace of %zu bytes", ws);
    return attn_sdpa_paged_fwd(&dims, qv, &kv, ov, NULL, &opts, wsp, m->b_ws.cap);
}

attn_status attn_mha_forward_cached(attn_mha *m, attn_kvcache *cache, const float *x, int64_t batch, int64_t seq_q,
                                    float *y) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward_cached: m is NULL");
    if (!cache) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward_cached: cache is NULL");
    if (!x) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward_cached: x is NULL");
    if (!y) return attn__fail(ATTN_ERR_NULL, "attn_mha_forward_cached: y is NULL");
    if (m->att_fwd)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "attn_mha_forward_cached: an attention backend is set "
                          "(attn_mha_set_attention); the cached forward attends over its cache with the kernels");
    if (m->kdim != m->E || m->vdim != m->E)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "attn_mha_forward_cached: self-attention only (kdim = %lld, vdim = %lld, embed_dim = %lld)",
                          (long long)m->kdim, (long long)m->vdim, (long long)m->E);
    if (batch != cache->B)
        return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward_cached: batch = %lld but the cache holds %lld sequences",
                          (long long)batch, (long long)cache->B);
    if (cache->Hkv != m->Hkv || cache->D != m->D)
        return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward_cached: cache has %lld kv heads of dim %lld, the layer %lld of dim %lld",
                          (long long)cache->Hkv, (long long)cache->D, (long long)m->Hkv, (long long)m->D);
    if (seq_q < 0) return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward_cached: seq_q = %lld < 0", (long long)seq_q);
    int64_t max_len = 0;
    for (int64_t b = 0; b < batch; b++) {
        if (seq_q > cache->cap - cache->len[b])
            return attn__fail(ATTN_ERR_CAPACITY, "attn_mha_forward_cached: sequence %lld has %lld tokens, + seq_q = %lld "
                              "exceeds capacity %lld", (long long)b, (long long)cache->len[b], (long long)seq_q,
                              (long long)cache->cap);
        if (cache->len[b] + seq_q > max_len) max_len = cache->len[b] + seq_q;
    }
    if (seq_q > 0 && batch > (int64_t)INT32_MAX / 4 / seq_q)
        return attn__fail(ATTN_ERR_SHAPE, "attn_mha_forward_cached: batch * seq_q = %lld tokens is too many", (long long)(batch * seq_q));
    m->st.valid = 0; /* the scratch buffers are reused */
    if (seq_q == 0) return ATTN_OK;

    const int64_t B = batch, Sq = seq_q, rows = B * Sq, qd = m->qd, kvd = m->kvd, D = m->D;
    const int64_t ld = qd + 2 * kvd;
    attn_status s;
    float *proj, *o;
    if ((s = mha__grow_f(&m->b_proj, rows * ld, &proj)) != ATTN_OK) return s;
    if ((s = mha__grow_f(&m->b_o, rows * qd, &o)) != ATTN_OK) return s;
    float *qp = proj, *kp = proj + qd, *vp = proj + qd + kvd;

    /* positions len[b] + i; proj = q | k | v after bias, qk-norm, rope */
    int64_t *pos = (int64_t *)mha__grow(&m->b_pos, (size_t)rows * sizeof(int64_t));
    if (!pos) return attn__fail(ATTN_ERR_NOMEM, "attn_mha_forward_cached: positions scratch");
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Sq; i++) pos[b * Sq + i] = cache->len[b] + i;
    if ((s = mha__project_incremental(m, x, rows, pos, proj)) != ATTN_OK) return s;

    /* append to the cache (lengths are committed after the kernel succeeded) */
    append_ctx ac = {cache, kp, vp, ld, Sq};
    attn__parallel_for(B, 0, append_task, &ac);
    for (int64_t b = 0; b < B; b++) cache->lens32[b] = (int32_t)(cache->len[b] + Sq);

    attn_sdpa_dims dims = {B, Sq, max_len, m->Hq, m->Hkv, D, D};
    attn_sdpa_opts opts;
    attn_sdpa_opts_init(&opts);
    opts.scale = m->cfg.scale;
    opts.causal = 1;
    opts.align = ATTN_ALIGN_BOTTOM_RIGHT;
    opts.key_lens = cache->lens32;
    opts.window_left = m->cfg.window_left;
    opts.window_right = m->cfg.window_right;
    opts.softcap = m->cfg.softcap;
    if (cache->dtype != ATTN_DTYPE_F32) s = attend_typed(m, cache, &opts, qp, ld, Sq, o);
    else s = attend_f32(m, cache, &dims, &opts, qp, ld, o);
    if (s != ATTN_OK) return s;
    if ((s = mha__out_proj(m, rows, o, y, 0)) != ATTN_OK) return s;
    for (int64_t b = 0; b < B; b++) cache->len[b] += Sq;
    return ATTN_OK;
}
