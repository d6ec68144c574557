/* SPDX-License-Identifier: MIT */
/* sdpa_validate.c — argument validation of attn_sdpa_fwd / attn_sdpa_bwd.
 * Every check runs before anything is written; each failure names the
 * argument and its value. */
#include "kernels/sdpa_internal.h"
#include "kernels/dropout.h"
#include "kernels/overlap.h"

#include <math.h>
#include <stdio.h>

#define MAX_SEQ ((int64_t)1 << 40) /* Sq, Sk limit: keeps position arithmetic far from overflow */

/* The memory a tensor argument touches: a byte range plus, for strided views,
 * the exact lattice (base + sum_k i_k * stride_k, 0 <= i_k < n_k, each element
 * `elem` bytes wide) so interleaved views of one buffer (e.g. a packed dQKV)
 * can be told apart from truly overlapping ones. */
typedef struct vrange {
    const char *name;
    uintptr_t lo, hi;   /* byte range [lo, hi); empty if lo == hi */
    int nd;             /* dims (n > 1 only) */
    int64_t n[4], s[4]; /* sizes and byte strides */
    int64_t elem;       /* bytes of the innermost contiguous run of one element */
} vrange;

/* Element extent (max offset + 1) of a (n0, n1, n2, n3) view with strides
 * (s0, s1, s2, 1); 0 if empty. Returns 0 on success, -1 on overflow. */
static int extent4(int64_t n0, int64_t n1, int64_t n2, int64_t n3, int64_t s0, int64_t s1, int64_t s2,
                   int64_t *out) {
    *out = 0;
    if (n0 == 0 || n1 == 0 || n2 == 0 || n3 == 0) return 0;
    int64_t n[3] = {n0, n1, n2}, s[3] = {s0, s1, s2};
    int64_t e = n3; /* innermost stride 1 */
    for (int i = 0; i < 3; i++) {
        int64_t t;
        if (__builtin_mul_overflow(n[i] - 1, s[i], &t)) return -1;
        if (__builtin_add_overflow(e, t, &e)) return -1;
    }
    *out = e;
    return 0;
}

/* Sufficient injectivity test: dims of size > 1 sorted by stride, each stride
 * larger than the span of all smaller ones. */
static int injective4(const int64_t n[4], const int64_t s[4]) {
    int64_t nn[4], ss[4];
    int k = 0;
    for (int i = 0; i < 4; i++)
        if (n[i] > 1) { nn[k] = n[i]; ss[k] = s[i]; k++; }
    for (int i = 1; i < k; i++) /* insertion sort by stride */
        for (int j = i; j > 0 && ss[j] < ss[j - 1]; j--) {
            int64_t t = ss[j]; ss[j] = ss[j - 1]; ss[j - 1] = t;
            t = nn[j]; nn[j] = nn[j - 1]; nn[j - 1] = t;
        }
    int64_t span = 0;
    for (int i = 0; i < k; i++) {
        if (ss[i] <= span) return 0;
        int64_t t;
        if (__builtin_mul_overflow(ss[i], nn[i] - 1, &t) || __builtin_add_overflow(span, t, &span)) return 0;
    }
    return 1;
}

typedef struct tens {
    const char *name;
    attn_tview v;
    int64_t S, H, Dl;
} tens;

static attn_status check_view(const char *fn, const tens *t, int64_t B, int varlen, int output, vrange *r) {
    const attn_tview v = t->v;
    if (v.dtype != ATTN_DTYPE_F32 && v.dtype != ATTN_DTYPE_BF16 && v.dtype != ATTN_DTYPE_F16)
        return attn__fail(ATTN_ERR_DTYPE, "%s: %s.dtype = %d, must be ATTN_DTYPE_F32, _BF16 or _F16", fn, t->name,
                          (int)v.dtype);
    const int64_t es = v.dtype == ATTN_DTYPE_F32 ? 4 : 2; /* bytes per element */
    int64_t Bn = varlen ? 1 : B;
    int64_t sb = varlen ? 0 : v.stride_b;
    int64_t numel;
    if (__builtin_mul_overflow(Bn, t->S, &numel) || __builtin_mul_overflow(numel, t->H, &numel) ||
        __builtin_mul_overflow(numel, t->Dl, &numel) || numel > INT64_MAX / 8)
        return attn__fail(ATTN_ERR_NOMEM, "%s: %s has too many elements (size overflow)", fn, t->name);
    r->name = t->name;
    r->lo = r->hi = 0;
    r->nd = 0;
    r->elem = 0;
    if (numel == 0) return ATTN_OK;
    if (!v.data) return attn__fail(ATTN_ERR_NULL, "%s: %s.data is NULL (tensor has %lld elements)", fn, t->name,
                                   (long long)numel);
    if ((!varlen && v.stride_b < 0) || v.stride_s < 0 || v.stride_h < 0)
        return attn__fail(ATTN_ERR_STRIDE, "%s: %s strides (b=%lld, s=%lld, h=%lld) must be >= 0", fn, t->name,
                          (long long)v.stride_b, (long long)v.stride_s, (long long)v.stride_h);
    int64_t ext;
    if (extent4(Bn, t->S, t->H, t->Dl, sb, v.stride_s, v.stride_h, &ext) != 0 || ext > INT64_MAX / 8)
        return attn__fail(ATTN_ERR_NOMEM, "%s: extent of %s overflows (strides b=%lld, s=%lld, h=%lld)", fn,
                          t->name, (long long)v.stride_b, (long long)v.stride_s, (long long)v.stride_h);
    if (output) {
        int64_t n[4] = {Bn, t->S, t->H, t->Dl}, s[4] = {sb, v.stride_s, v.stride_h, 1};
        if (!injective4(n, s))
            return attn__fail(ATTN_ERR_STRIDE,
                              "%s: output %s strides (b=%lld, s=%lld, h=%lld) make elements of shape "
                              "(%lld, %lld, %lld, %lld) overlap",
                              fn, t->name, (long long)sb, (long long)v.stride_s, (long long)v.stride_h,
                              (long long)Bn, (long long)t->S, (long long)t->H, (long long)t->Dl);
    }
    uintptr_t base = (uintptr_t)v.data;
    if ((uint64_t)ext * (uint64_t)es > UINTPTR_MAX - base)
        return attn__fail(ATTN_ERR_NOMEM, "%s: %s extends past the end of the address space", fn, t->name);
    r->lo = base;
    r->hi = base + (uintptr_t)ext * (uintptr_t)es;
    { /* lattice: the innermost D run is one element of es * Dl bytes */
        int64_t nn[3] = {Bn, t->S, t->H}, ss[3] = {sb, v.stride_s, v.stride_h};
        r->nd = 0;
        for (int i = 0; i < 3; i++)
            if (nn[i] > 1) { r->n[r->nd] = nn[i]; r->s[r->nd] = ss[i] * es; r->nd++; }
        r->elem = t->Dl * es;
    }
    return ATTN_OK;
}

static void flat_range(vrange *r, const char *name, const void *p, uint64_t bytes) {
    r->name = name;
    r->lo = (uintptr_t)p;
    r->hi = p && bytes ? (uintptr_t)p + (uintptr_t)bytes : (uintptr_t)p;
    r->nd = 0;
    r->elem = (int64_t)(r->hi - r->lo);
}

/* Width (bytes) of the residues mod L of a lattice, or -1 if they do not form
 * one run shorter than L: dims whose stride is a multiple of L contribute 0,
 * the others must stay below L together. */
static int64_t residue_width(const vrange *a, int64_t L) {
    int64_t w = a->elem;
    for (int k = 0; k < a->nd; k++) {
        if (a->s[k] % L == 0) continue;
        if (a->s[k] > L) return -1;
        w += (a->n[k] - 1) * a->s[k];
        if (w > L) return -1;
    }
    return w;
}

/* Do two argument lattices share a byte? Exact when their byte ranges are
 * disjoint; otherwise proven disjoint if for some modulus L (one of their
 * strides) both occupy single runs of residues mod L that do not meet. */
static int overlaps(const vrange *a, const vrange *b) {
    if (!(a->lo < a->hi && b->lo < b->hi && a->lo < b->hi && b->lo < a->hi)) return 0;
    for (int pass = 0; pass < 2; pass++) {
        const vrange *c = pass ? b : a;
        for (int k = 0; k < c->nd; k++) {
            const int64_t L = c->s[k];
            if (L <= 0) continue;
            int64_t wa = residue_width(a, L), wb = residue_width(b, L);
            if (wa < 0 || wb < 0) continue;
            int64_t ra = (int64_t)(a->lo % (uint64_t)L), rb = (int64_t)(b->lo % (uint64_t)L);
            int64_t d = ((rb - ra) % L + L) % L; /* b's run starts d bytes after a's */
            if (d >= wa && L - d >= wb) return 0;
        }
    }
    return 1;
}

static attn_status check_cu(const char *fn, const char *name, const int32_t *cu, int64_t B, int64_t total,
                            int64_t *maxlen) {
    *maxlen = 0;
    if (cu[0] != 0) return attn__fail(ATTN_ERR_SHAPE, "%s: opts->%s[0] = %d, must be 0", fn, name, (int)cu[0]);
    for (int64_t b = 0; b < B; b++) {
        if (cu[b + 1] < cu[b])
            return attn__fail(ATTN_ERR_SHAPE, "%s: opts->%s is decreasing at %lld (%d -> %d)", fn, name,
                              (long long)b, (int)cu[b], (int)cu[b + 1]);
        int64_t len = (int64_t)cu[b + 1] - cu[b];
        if (len > *maxlen) *maxlen = len;
    }
    if ((int64_t)cu[B] != total)
        return attn__fail(ATTN_ERR_SHAPE, "%s: opts->%s[%lld] = %d, must equal the packed length %lld", fn, name,
                          (long long)B, (int)cu[B], (long long)total);
    return ATTN_OK;
}

attn_status attn__sdpa_validate(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, int bwd,
                                attn_view q, attn_view k, attn_view v, attn_view o, attn_view dO,
                                const float *lse, attn_view dq, attn_view dk, attn_view dv) {
    const attn_tview t[8] = {attn_tview_f32(q),  attn_tview_f32(k),  attn_tview_f32(v),  attn_tview_f32(o),
                             attn_tview_f32(dO), attn_tview_f32(dq), attn_tview_f32(dk), attn_tview_f32(dv)};
    return attn__sdpa_validate_t(fn, dims, opts, bwd, t, lse);
}

/* The shape (dims) alone. */
static attn_status check_dims(const char *fn, const attn_sdpa_dims *dims) {
    if (!dims) return attn__fail(ATTN_ERR_NULL, "%s: dims is NULL", fn);
    const int64_t B = dims->batch, Sq = dims->seq_q, Sk = dims->seq_k, Hq = dims->heads_q, Hkv = dims->heads_kv,
                  D = dims->head_dim;
    if (B < 0) return attn__fail(ATTN_ERR_SHAPE, "%s: dims->batch = %lld, must be >= 0", fn, (long long)B);
    if (Sq < 0 || Sq > MAX_SEQ)
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->seq_q = %lld, must be in [0, 2^40]", fn, (long long)Sq);
    if (Sk < 0 || Sk > MAX_SEQ)
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->seq_k = %lld, must be in [0, 2^40]", fn, (long long)Sk);
    if (Hq < 1 || Hq > INT32_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->heads_q = %lld, must be >= 1", fn, (long long)Hq);
    if (Hkv < 1 || Hkv > INT32_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->heads_kv = %lld, must be >= 1", fn, (long long)Hkv);
    if (B > MAX_SEQ || !attn__sdpa_tasks_bounded(B, Sq, Hq))
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->batch = %lld with seq_q = %lld, heads_q = %lld: batch must be "
                                          "<= 2^40 and heads_q * (seq_q + batch) <= 2^61", fn, (long long)B,
                          (long long)Sq, (long long)Hq);
    if (Hq % Hkv != 0)
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->heads_q = %lld is not a multiple of dims->heads_kv = %lld", fn,
                          (long long)Hq, (long long)Hkv);
    if (D < 1 || D > 256)
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->head_dim = %lld, must be in [1, 256]", fn, (long long)D);
    if (dims->head_dim_v < 0 || dims->head_dim_v > 256)
        return attn__fail(ATTN_ERR_SHAPE, "%s: dims->head_dim_v = %lld, must be in [1, 256] (or 0 = head_dim)", fn,
                          (long long)dims->head_dim_v);

    return ATTN_OK;
}

/* The scalar options (opts with the library's defaults filled in). */
static attn_status check_opts(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts) {
    const int64_t Sq = dims->seq_q, Sk = dims->seq_k;
    if (!isfinite(opts->scale))
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->scale = %g, must be finite", fn, (double)opts->scale);
    if (opts->causal != 0 && opts->causal != 1)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->causal = %d, must be 0 or 1", fn, opts->causal);
    if (opts->align != ATTN_ALIGN_TOP_LEFT && opts->align != ATTN_ALIGN_BOTTOM_RIGHT)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->align = %d, must be 0 (top-left) or 1 (bottom-right)", fn,
                          opts->align);
    if (opts->q_pos_offset < -MAX_SEQ || opts->q_pos_offset > MAX_SEQ)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->q_pos_offset = %lld, must be in [-2^40, 2^40]", fn,
                          (long long)opts->q_pos_offset);
    if (opts->window_left < -1)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->window_left = %lld, must be -1 or >= 0", fn,
                          (long long)opts->window_left);
    if (opts->window_right < -1)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->window_right = %lld, must be -1 or >= 0", fn,
                          (long long)opts->window_right);
    if (!(opts->softcap >= 0.0f) || !isfinite(opts->softcap))
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->softcap = %g, must be 0 (off) or finite > 0", fn,
                          (double)opts->softcap);
    if (opts->mask_kind != ATTN_MASK_NONE && opts->mask_kind != ATTN_MASK_BOOL && opts->mask_kind != ATTN_MASK_ADD)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->mask_kind = %d, must be 0 (none), 1 (bool) or 2 (additive)",
                          fn, opts->mask_kind);
    if (opts->mask_kind != ATTN_MASK_NONE) {
        if (opts->mask_stride_b < 0 || opts->mask_stride_h < 0 || opts->mask_stride_q < 0)
            return attn__fail(ATTN_ERR_STRIDE, "%s: mask strides (b=%lld, h=%lld, q=%lld) must be >= 0", fn,
                              (long long)opts->mask_stride_b, (long long)opts->mask_stride_h,
                              (long long)opts->mask_stride_q);
    }
    if (opts->bwd_fast != 0 && opts->bwd_fast != 1)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->bwd_fast = %d, must be 0 or 1", fn, opts->bwd_fast);
    if (opts->decode_fast != 0 && opts->decode_fast != 1)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->decode_fast = %d, must be 0 or 1", fn, opts->decode_fast);
    if (!(opts->dropout_p >= 0.0f && opts->dropout_p < 1.0f))
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->dropout_p = %g, must be in [0, 1)", fn, (double)opts->dropout_p);
    if (opts->num_threads < 0)
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->num_threads = %d, must be >= 0 (0 = default)", fn,
                          opts->num_threads);
    if ((opts->cu_seqlens_q == NULL) != (opts->cu_seqlens_k == NULL))
        return attn__fail(ATTN_ERR_OPTION, "%s: opts->cu_seqlens_q and opts->cu_seqlens_k must be given together "
                                           "(got %s and %s)",
                          fn, opts->cu_seqlens_q ? "non-NULL" : "NULL", opts->cu_seqlens_k ? "non-NULL" : "NULL");
    if (opts->cu_seqlens_q && (Sq > INT32_MAX || Sk > INT32_MAX))
        return attn__fail(ATTN_ERR_SHAPE, "%s: varlen packed lengths seq_q = %lld, seq_k = %lld exceed int32", fn,
                          (long long)Sq, (long long)Sk);

    return ATTN_OK;
}

/* The option arrays' contents (cu_seqlens, key_lens, the mask pointer);
 * *maxq / *maxk: the longest sequence's query rows and keys (0 when B == 0:
 * nothing is read). */
static attn_status check_option_arrays(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts,
                                       int64_t *maxq, int64_t *maxk) {
    const int64_t B = dims->batch, Sq = dims->seq_q, Sk = dims->seq_k;
    const int varlen = opts->cu_seqlens_q != NULL;
    /* Nonempty-work flag: with B == 0 (or no query rows) nothing is read. */
    *maxq = Sq, *maxk = Sk;
    if (varlen) {
        attn_status st = check_cu(fn, "cu_seqlens_q", opts->cu_seqlens_q, B, Sq, maxq);
        if (st) return st;
        st = check_cu(fn, "cu_seqlens_k", opts->cu_seqlens_k, B, Sk, maxk);
        if (st) return st;
    }
    if (B == 0) *maxq = *maxk = 0;
    if (opts->key_lens && B > 0) {
        for (int64_t b = 0; b < B; b++) {
            int64_t skb = varlen ? (int64_t)opts->cu_seqlens_k[b + 1] - opts->cu_seqlens_k[b] : Sk;
            if (opts->key_lens[b] < 0 || opts->key_lens[b] > skb)
                return attn__fail(ATTN_ERR_SHAPE, "%s: opts->key_lens[%lld] = %d, must be in [0, %lld]", fn,
                                  (long long)b, (int)opts->key_lens[b], (long long)skb);
        }
    }
    if (opts->mask_kind != ATTN_MASK_NONE && !opts->mask && B > 0 && *maxq > 0 && *maxk > 0)
        return attn__fail(ATTN_ERR_NULL, "%s: opts->mask is NULL with mask_kind = %d", fn, opts->mask_kind);

    return ATTN_OK;
}

/* The tensor views, lse, row_stats and the option arrays as address
 * ranges: each view inside its bounds, no output overlapping an input or
 * another output. */
static attn_status check_tensors(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, int bwd,
                                 const attn_tview *t, const float *lse, int64_t maxq, int64_t maxk) {
    const attn_tview q = t[0], k = t[1], v = t[2], o = t[3], dO = t[4], dq = t[5], dk = t[6], dv = t[7];
    const int64_t B = dims->batch, Sq = dims->seq_q, Sk = dims->seq_k, Hq = dims->heads_q, Hkv = dims->heads_kv,
                  D = dims->head_dim;
    const int64_t Dv = dims->head_dim_v ? dims->head_dim_v : D;
    const int varlen = opts->cu_seqlens_q != NULL;
    const int64_t Bv = varlen ? 1 : B; /* batch entries of the views */
    vrange in[13], out[4];
    int nin = 0, nout = 0;
    tens tq = {"q", q, Sq, Hq, D}, tk = {"k", k, Sk, Hkv, D}, tv = {"v", v, Sk, Hkv, Dv};
    tens to = {"o", o, Sq, Hq, Dv};
    attn_status st;
    if ((st = check_view(fn, &tq, B, varlen, 0, &in[nin++]))) return st;
    if ((st = check_view(fn, &tk, B, varlen, 0, &in[nin++]))) return st;
    if ((st = check_view(fn, &tv, B, varlen, 0, &in[nin++]))) return st;
    int64_t nlse = Bv * Hq * Sq; /* cannot overflow: q passed */
    if (Sq == 0 || Bv == 0) nlse = 0;
    if (!bwd) {
        if ((st = check_view(fn, &to, B, varlen, 1, &out[nout++]))) return st;
        if (lse) flat_range(&out[nout++], "lse", lse, (uint64_t)nlse * 4u);
        if (opts->row_stats && !lse)
            return attn__fail(ATTN_ERR_NULL, "%s: opts->row_stats is set but lse is NULL (the statistics "
                              "are the forward's for its backward)", fn);
        if (opts->row_stats) flat_range(&out[nout++], "opts->row_stats", opts->row_stats, (uint64_t)nlse * 8u);
    } else {
        tens tdo = {"dO", dO, Sq, Hq, Dv};
        if ((st = check_view(fn, &to, B, varlen, 0, &in[nin++]))) return st;
        if ((st = check_view(fn, &tdo, B, varlen, 0, &in[nin++]))) return st;
        if (nlse > 0 && !lse) return attn__fail(ATTN_ERR_NULL, "%s: lse is NULL", fn);
        flat_range(&in[nin++], "lse", lse, (uint64_t)nlse * 4u);
        if (opts->row_stats && !opts->bwd_fast)
            flat_range(&in[nin++], "opts->row_stats", opts->row_stats, (uint64_t)nlse * 8u);
        tens tdq = {"dq", dq, Sq, Hq, D}, tdk = {"dk", dk, Sk, Hkv, D}, tdv = {"dv", dv, Sk, Hkv, Dv};
        if ((st = check_view(fn, &tdq, B, varlen, 1, &out[nout++]))) return st;
        if ((st = check_view(fn, &tdk, B, varlen, 1, &out[nout++]))) return st;
        if ((st = check_view(fn, &tdv, B, varlen, 1, &out[nout++]))) return st;
    }
    /* option arrays are inputs too */
    if (B > 0) {
        if (opts->key_lens) flat_range(&in[nin++], "opts->key_lens", opts->key_lens, (uint64_t)B * 4u);
        if (varlen) {
            flat_range(&in[nin++], "opts->cu_seqlens_q", opts->cu_seqlens_q, (uint64_t)(B + 1) * 4u);
            flat_range(&in[nin++], "opts->cu_seqlens_k", opts->cu_seqlens_k, (uint64_t)(B + 1) * 4u);
        }
    }
    if (opts->alibi_slopes) flat_range(&in[nin++], "opts->alibi_slopes", opts->alibi_slopes, (uint64_t)Hq * 4u);
    if (opts->mask_kind != ATTN_MASK_NONE && opts->mask && B > 0 && maxq > 0 && maxk > 0) {
        int64_t ext;
        if (extent4(B, Hq, maxq, maxk, opts->mask_stride_b, opts->mask_stride_h, opts->mask_stride_q, &ext) != 0 ||
            ext > INT64_MAX / 8)
            return attn__fail(ATTN_ERR_NOMEM, "%s: mask extent overflows (strides b=%lld, h=%lld, q=%lld)", fn,
                              (long long)opts->mask_stride_b, (long long)opts->mask_stride_h,
                              (long long)opts->mask_stride_q);
        flat_range(&in[nin++], "opts->mask", opts->mask,
                   (uint64_t)ext * (opts->mask_kind == ATTN_MASK_BOOL ? 1u : 4u));
    }
    for (int i = 0; i < nout; i++) {
        for (int j = 0; j < nin; j++)
            if (overlaps(&out[i], &in[j]))
                return attn__fail(ATTN_ERR_ALIAS, "%s: output %s overlaps input %s", fn, out[i].name, in[j].name);
        for (int j = 0; j < i; j++)
            if (overlaps(&out[i], &out[j]))
                return attn__fail(ATTN_ERR_ALIAS, "%s: output %s overlaps output %s", fn, out[i].name, out[j].name);
    }
    return ATTN_OK;
}

attn_status attn__sdpa_validate_t(const char *fn, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts, int bwd,
                                  const attn_tview *t, const float *lse) {
    attn_status st = check_dims(fn, dims);
    if (st) return st;
    attn_sdpa_opts def;
    if (!opts) { attn_sdpa_opts_init(&def); opts = &def; }
    if ((st = check_opts(fn, dims, opts))) return st;
    int64_t maxq, maxk;
    if ((st = check_option_arrays(fn, dims, opts, &maxq, &maxk))) return st;
    return check_tensors(fn, dims, opts, bwd, t, lse, maxq, maxk);
}

void attn__sdpa_prob_init(attn__sdpa_prob *P, const attn_sdpa_dims *dims, const attn_sdpa_opts *opts) {
    attn_sdpa_opts def;
    if (!opts) { attn_sdpa_opts_init(&def); opts = &def; }
    memset(P, 0, sizeof *P);
    P->B = dims->batch;
    P->Sq = dims->seq_q;
    P->Sk = dims->seq_k;
    P->Hq = dims->heads_q;
    P->Hkv = dims->heads_kv;
    P->G = P->Hq / P->Hkv;
    P->D = dims->head_dim;
    P->Dv = dims->head_dim_v ? dims->head_dim_v : dims->head_dim;
    P->varlen = opts->cu_seqlens_q != NULL;
    P->cu_q = opts->cu_seqlens_q;
    P->cu_k = opts->cu_seqlens_k;
    P->key_lens = opts->key_lens;
    P->scale = opts->scale != 0.0f ? opts->scale : (float)(1.0 / sqrt((double)P->D));
    P->softcap = opts->softcap;
    P->causal = opts->causal;
    P->align = opts->align;
    P->qpos = opts->q_pos_offset;
    /* windows wider than any |p(i) - j| are unlimited (keeps arithmetic small) */
    int64_t wmax = P->Sq + P->Sk + 1 + (P->qpos < 0 ? -P->qpos : P->qpos);
    P->wl = opts->window_left > wmax ? -1 : opts->window_left;
    P->wr = opts->window_right > wmax ? -1 : opts->window_right;
    P->alibi = opts->alibi_slopes;
    P->mask_kind = opts->mask ? opts->mask_kind : ATTN_MASK_NONE;
    P->mask = opts->mask;
    P->msb = opts->mask_stride_b;
    P->msh = opts->mask_stride_h;
    P->msq = opts->mask_stride_q;
    P->dropout_p = opts->dropout_p;
    P->bwd_fast = opts->bwd_fast;
    P->row_stats = opts->row_stats;
    P->drop_scale = opts->dropout_p > 0.0f ? (float)(1.0 / (1.0 - (double)opts->dropout_p)) : 1.0f;
    P->drop_thr = attn__dropout_threshold(opts->dropout_p);
    P->seed = opts->dropout_seed;
    P->has_elem = P->softcap > 0.0f || P->alibi != NULL || P->mask_kind != ATTN_MASK_NONE;
}

/* ─── attn_sdpa_merge ────────────────────────────────────────────────────── */

/* The same view (data and every stride), i.e. an in-place accumulation. */
static int same_view(attn_view a, attn_view b) {
    return a.data == b.data && a.stride_b == b.stride_b && a.stride_s == b.stride_s && a.stride_h == b.stride_h;
}

attn_status attn__sdpa_merge_validate(const char *fn, int64_t B, int64_t Sq, int64_t Hq, int64_t Dv, int n,
                                      const attn_view *o_parts, const float *const *lse_parts, attn_view o,
                                      const float *lse, int num_threads) {
    if (B < 0 || B > MAX_SEQ) return attn__fail(ATTN_ERR_SHAPE, "%s: batch = %lld, must be in [0, 2^40]", fn, (long long)B);
    if (Sq < 0 || Sq > MAX_SEQ)
        return attn__fail(ATTN_ERR_SHAPE, "%s: seq_q = %lld, must be in [0, 2^40]", fn, (long long)Sq);
    if (Hq < 1 || Hq > INT32_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "%s: heads_q = %lld, must be in [1, 2^31)", fn, (long long)Hq);
    if (Dv < 1 || Dv > 256)
        return attn__fail(ATTN_ERR_SHAPE, "%s: head_dim_v = %lld, must be in [1, 256]", fn, (long long)Dv);
    if (n < 1 || n > ATTN__SDPA_MERGE_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "%s: n = %d parts, must be in [1, %d]", fn, n, ATTN__SDPA_MERGE_MAX);
    if (num_threads < 0)
        return attn__fail(ATTN_ERR_OPTION, "%s: num_threads = %d, must be >= 0 (0 = default)", fn, num_threads);
    if (!o_parts || !lse_parts) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, o_parts ? "lse_parts" : "o_parts");
    int64_t nlse;
    if (__builtin_mul_overflow(B, Hq, &nlse) || __builtin_mul_overflow(nlse, Sq, &nlse) || nlse > INT64_MAX / 8)
        return attn__fail(ATTN_ERR_NOMEM, "%s: lse has too many elements (size overflow)", fn);
    attn_status st;
    tens to = {"o", attn_tview_f32(o), Sq, Hq, Dv};
    vrange ro, rl, rp, rpl;
    if ((st = check_view(fn, &to, B, 0, 1, &ro))) return st;
    if (lse && nlse > 0) flat_range(&rl, "lse", lse, (uint64_t)nlse * 4u);
    else flat_range(&rl, "lse", NULL, 0);
    if (overlaps(&ro, &rl)) return attn__fail(ATTN_ERR_ALIAS, "%s: output o overlaps output lse", fn);
    for (int p = 0; p < n; p++) {
        tens tp = {"o_parts[p]", attn_tview_f32(o_parts[p]), Sq, Hq, Dv};
        if ((st = check_view(fn, &tp, B, 0, 0, &rp))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", attn_last_error());
            return attn__fail(st, "%s (p = %d)", msg, p);
        }
        if (nlse > 0 && !lse_parts[p]) return attn__fail(ATTN_ERR_NULL, "%s: lse_parts[%d] is NULL", fn, p);
        flat_range(&rpl, "lse_parts[p]", nlse > 0 ? lse_parts[p] : NULL, (uint64_t)nlse * 4u);
        /* part 0 may be the output itself (running accumulation), exactly */
        int o_inplace = p == 0 && same_view(o_parts[0], o);
        int l_inplace = p == 0 && lse_parts[0] == lse;
        if (!o_inplace && overlaps(&ro, &rp))
            return attn__fail(ATTN_ERR_ALIAS, "%s: output o overlaps o_parts[%d] (only o_parts[0] may be o, as the "
                                              "identical view)", fn, p);
        if (!l_inplace && overlaps(&rl, &rpl))
            return attn__fail(ATTN_ERR_ALIAS, "%s: output lse overlaps lse_parts[%d] (only lse_parts[0] may be lse, "
                                              "the same pointer)", fn, p);
        if (overlaps(&ro, &rpl)) return attn__fail(ATTN_ERR_ALIAS, "%s: output o overlaps lse_parts[%d]", fn, p);
        if (overlaps(&rl, &rp)) return attn__fail(ATTN_ERR_ALIAS, "%s: output lse overlaps o_parts[%d]", fn, p);
    }
    return ATTN_OK;
}

static void mat_range(vrange *r, const float *p, int64_t rows, int64_t cols, int64_t ld) {
    r->name = "";
    r->lo = r->hi = (uintptr_t)p;
    r->nd = 0;
    r->elem = cols * 4;
    if (!p || rows <= 0 || cols <= 0) return;
    r->hi = (uintptr_t)p + (uintptr_t)(((rows - 1) * ld + cols) * 4);
    if (rows > 1) { r->n[0] = rows; r->s[0] = ld * 4; r->nd = 1; }
}

int attn__mat_overlap(const float *a, int64_t rows_a, int64_t cols_a, int64_t ld_a, const float *b, int64_t rows_b,
                      int64_t cols_b, int64_t ld_b) {
    vrange ra, rb;
    mat_range(&ra, a, rows_a, cols_a, ld_a);
    mat_range(&rb, b, rows_b, cols_b, ld_b);
    return overlaps(&ra, &rb);
}
