/* SPDX-License-Identifier: MIT */
/* rope_block.c — public RoPE building block (attn.h, "Building blocks: RoPE"):
 * x (B, S, H, D) views at explicit positions, forward and backward, on the
 * kernel functions of rope.c the layer uses (attn__rope_prepare, _tables,
 * _row), so the result is the layer's bit for bit.
 * Work is split into tasks of TOK_CHUNK positions (for all B batch entries
 * when the positions are shared, else per batch entry); a task builds its
 * positions' cos / sin rows in its thread's scratch, then rotates. Each
 * element is computed by the same operations whatever the split:
 * bit-identical across thread counts. */
#include "kernels/rope.h"

#include "core/core.h"

#include <string.h>

#define TOK_CHUNK 16
#define MAX_POS ((int64_t)1 << 40)
#define MAX_D ((int64_t)1 << 20)

/* The defaults of every field (appended fields: add their default here). */
static void config_defaults(attn_rope_config *g) {
    memset(g, 0, sizeof *g);
    g->struct_size = (uint32_t)sizeof *g;
    g->kind = ATTN_ROPE_NEOX;
}

/* First release's layout: through long_factor; later fields are appended after it. */
static const attn__struct_layout CONFIG_LAYOUT = {
    "attn_rope_config", ATTN__SIZE_THROUGH(attn_rope_config, long_factor), sizeof(attn_rope_config)};

attn_status attn_rope_config_init_size(attn_rope_config *cfg, size_t struct_size) {
    if (!cfg) return attn__fail(ATTN_ERR_NULL, "attn_rope_config_init: cfg is NULL");
    attn_rope_config def;
    config_defaults(&def);
    return attn__struct_init(cfg, struct_size, &def, &CONFIG_LAYOUT);
}

typedef struct rope_call {
    attn_rope_cfg rc;
    int64_t B, S, H, D, half;
    attn_view in, out;
    const int64_t *pos; /* NULL: 0 .. S-1 */
    int64_t psb;        /* positions' batch stride; 0 = shared */
    int inverse;
    double mult;
    double *inv_freq;   /* (R/2) */
    float *scratch;     /* (nthreads, 2, TOK_CHUNK, R/2) */
    int64_t s_chunks;
} rope_call;

static int64_t pos_at(const rope_call *c, int64_t b, int64_t s) {
    return c->pos ? c->pos[b * c->psb + s] : s;
}

static void rope_task(void *vctx, int64_t t, int tid) {
    const rope_call *c = (const rope_call *)vctx;
    const int shared = c->psb == 0;
    const int64_t b0 = shared ? 0 : t / c->s_chunks, b1 = shared ? c->B : b0 + 1;
    const int64_t s0 = (t % c->s_chunks) * TOK_CHUNK, n = c->S - s0 < TOK_CHUNK ? c->S - s0 : TOK_CHUNK;
    float *cos_t = c->scratch + (size_t)tid * 2 * TOK_CHUNK * (size_t)c->half, *sin_t = cos_t + TOK_CHUNK * c->half;
    int64_t p[TOK_CHUNK]; /* (n) positions of this task's tokens */
    for (int64_t i = 0; i < n; i++) p[i] = pos_at(c, b0, s0 + i);
    attn__rope_tables(c->inv_freq, c->half, p, n, c->mult, cos_t, sin_t);
    for (int64_t b = b0; b < b1; b++)
        for (int64_t i = 0; i < n; i++) {
            const float *src = c->in.data + b * c->in.stride_b + (s0 + i) * c->in.stride_s;
            float *dst = c->out.data + b * c->out.stride_b + (s0 + i) * c->out.stride_s;
            if (dst != src)
                for (int64_t h = 0; h < c->H; h++)
                    memcpy(dst + h * c->out.stride_h, src + h * c->in.stride_h, (size_t)c->D * sizeof(float));
            attn__rope_row(dst, c->H, c->out.stride_h, c->rc.kind, c->half, cos_t + i * c->half,
                           sin_t + i * c->half, c->inverse);
        }
}

/* ─── validation ─────────────────────────────────────────────────────────── */

/* Byte extent [*lo, *hi) of a (B, S, H, D) view; strides >= 0, no overflow. */
static attn_status view_extent(const char *fn, const char *name, attn_view v, const int64_t n[4], int output,
                               uintptr_t *lo, uintptr_t *hi) {
    *lo = *hi = 0;
    if (n[0] == 0 || n[1] == 0 || n[2] == 0) return ATTN_OK;
    if (!v.data) return attn__fail(ATTN_ERR_NULL, "%s: %s.data is NULL", fn, name);
    const int64_t st[3] = {v.stride_b, v.stride_s, v.stride_h};
    int64_t ext = n[3], t;
    for (int i = 0; i < 3; i++) {
        if (st[i] < 0)
            return attn__fail(ATTN_ERR_STRIDE, "%s: %s strides (b=%lld, s=%lld, h=%lld) must be >= 0", fn, name,
                              (long long)v.stride_b, (long long)v.stride_s, (long long)v.stride_h);
        if (__builtin_mul_overflow(n[i] - 1, st[i], &t) || __builtin_add_overflow(ext, t, &ext) || ext > INT64_MAX / 8)
            return attn__fail(ATTN_ERR_NOMEM, "%s: extent of %s overflows", fn, name);
    }
    if ((uint64_t)ext * 4u > UINTPTR_MAX - (uintptr_t)v.data)
        return attn__fail(ATTN_ERR_NOMEM, "%s: %s extends past the end of the address space", fn, name);
    if (output) { /* injective: dims of size > 1 by increasing stride, each beyond the span of the smaller */
        int64_t span = n[3], used[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++) {
            int j = -1;
            for (int i = 0; i < 3; i++)
                if (!used[i] && n[i] > 1 && (j < 0 || st[i] < st[j])) j = i;
            if (j < 0) break;
            used[j] = 1;
            if (st[j] < span)
                return attn__fail(ATTN_ERR_STRIDE,
                                  "%s: output %s strides (b=%lld, s=%lld, h=%lld) make elements of shape "
                                  "(%lld, %lld, %lld, %lld) overlap",
                                  fn, name, (long long)v.stride_b, (long long)v.stride_s, (long long)v.stride_h,
                                  (long long)n[0], (long long)n[1], (long long)n[2], (long long)n[3]);
            span = st[j] * (n[j] - 1) + span;
        }
    }
    *lo = (uintptr_t)v.data;
    *hi = *lo + (uintptr_t)ext * 4u;
    return ATTN_OK;
}

static attn_status check_positions(const char *fn, const rope_call *c) {
    if (!c->pos) {
        if (c->psb != 0) return attn__fail(ATTN_ERR_NULL, "%s: positions is NULL with pos_stride_b = %lld", fn,
                                           (long long)c->psb);
        if (c->S > MAX_POS + 1) return attn__fail(ATTN_ERR_SHAPE, "%s: seq = %lld > 2^40 + 1", fn, (long long)c->S);
        return ATTN_OK;
    }
    if (c->psb < 0 || (c->psb > 0 && c->psb < c->S))
        return attn__fail(ATTN_ERR_STRIDE, "%s: pos_stride_b = %lld, must be 0 (shared positions) or >= seq = %lld",
                          fn, (long long)c->psb, (long long)c->S);
    int64_t t;
    if (c->psb > 0 && (__builtin_mul_overflow(c->B - 1, c->psb, &t) || t > INT64_MAX / 16))
        return attn__fail(ATTN_ERR_NOMEM, "%s: positions extent overflows", fn);
    for (int64_t b = 0; b < (c->psb ? c->B : 1); b++)
        for (int64_t s = 0; s < c->S; s++) {
            const int64_t p = pos_at(c, b, s);
            if (p < 0 || p > MAX_POS)
                return attn__fail(ATTN_ERR_OPTION, "%s: positions[%lld, %lld] = %lld, must be in [0, 2^40]", fn,
                                  (long long)b, (long long)s, (long long)p);
        }
    return ATTN_OK;
}

/* The caller's config in this library's layout, defaults resolved and checked. */
static attn_status read_config(const char *fn, const attn_rope_config *cfg, int64_t D, attn_rope_cfg *rc) {
    if (!cfg) return attn__fail(ATTN_ERR_NULL, "%s: cfg is NULL", fn);
    attn_rope_config def, f;
    config_defaults(&def);
    attn_status s = attn__struct_read(fn, cfg, &f, &def, &CONFIG_LAYOUT, ATTN_ERR_OPTION);
    if (s != ATTN_OK) return s;
    const attn_rope_cfg r = {f.kind, f.rope_dim ? f.rope_dim : D, f.theta == 0.0 ? 10000.0 : f.theta, f.scaling,
                             f.factor, f.low_freq_factor, f.high_freq_factor, (double)f.original_max_pos,
                             (double)f.max_pos, f.attention_factor, f.beta_fast, f.beta_slow, f.mscale,
                             f.mscale_all_dim, f.no_truncate, f.short_factor, f.long_factor};
    *rc = r;
    return attn__rope_cfg_check(rc, D, fn, "", ATTN_ERR_OPTION);
}

static attn_status check_dims(const char *fn, const rope_call *c) {
    if (c->B < 0 || c->S < 0 || c->H < 0 || c->B > MAX_POS || c->S > MAX_POS || c->H > MAX_POS)
        return attn__fail(ATTN_ERR_SHAPE, "%s: batch = %lld, seq = %lld, heads = %lld: each must be in [0, 2^40]", fn,
                          (long long)c->B, (long long)c->S, (long long)c->H);
    if (c->D < 2 || c->D > MAX_D)
        return attn__fail(ATTN_ERR_SHAPE, "%s: head_dim = %lld, must be in [2, 2^20]", fn, (long long)c->D);
    return ATTN_OK;
}

static attn_status check_call(const char *fn, rope_call *c, const char *in_name, const char *out_name) {
    const int64_t n[4] = {c->B, c->S, c->H, c->D};
    uintptr_t ilo, ihi, olo, ohi;
    attn_status s = view_extent(fn, in_name, c->in, n, 0, &ilo, &ihi);
    if (s == ATTN_OK) s = view_extent(fn, out_name, c->out, n, 1, &olo, &ohi);
    if (s != ATTN_OK) return s;
    const int inplace = c->in.data == c->out.data && c->in.stride_b == c->out.stride_b &&
                        c->in.stride_s == c->out.stride_s && c->in.stride_h == c->out.stride_h;
    if (!inplace && ilo < ihi && olo < ohi && ilo < ohi && olo < ihi)
        return attn__fail(ATTN_ERR_ALIAS, "%s: %s overlaps %s (allowed only in place: same data and strides)", fn,
                          out_name, in_name);
    return check_positions(fn, c);
}

static attn_status rope_run(const char *fn, const attn_rope_config *cfg, int64_t B, int64_t S, int64_t H, int64_t D,
                            attn_view in, const int64_t *pos, int64_t psb, attn_view out, int inverse) {
    rope_call c;
    memset(&c, 0, sizeof c);
    c.B = B; c.S = S; c.H = H; c.D = D; c.in = in; c.out = out; c.pos = pos; c.psb = psb; c.inverse = inverse;
    attn_status s = check_dims(fn, &c);
    if (s == ATTN_OK) s = read_config(fn, cfg, D, &c.rc);
    if (s == ATTN_OK) s = check_call(fn, &c, inverse ? "dy" : "x", inverse ? "dx" : "y");
    if (s != ATTN_OK) return s;
    if (B == 0 || S == 0 || H == 0) return ATTN_OK;
    c.half = c.rc.rope_dim / 2;
    c.s_chunks = (S + TOK_CHUNK - 1) / TOK_CHUNK;
    const int64_t ntasks = c.s_chunks * (c.psb ? B : 1);
    const int nthreads = attn__resolve_threads(0);
    c.inv_freq = (double *)attn__calloc((size_t)c.half, sizeof(double));
    c.scratch = (float *)attn__calloc((size_t)nthreads * 2 * TOK_CHUNK * (size_t)c.half, sizeof(float));
    if (!c.inv_freq || !c.scratch) {
        attn__free(c.inv_freq);
        attn__free(c.scratch);
        return attn__fail(ATTN_ERR_NOMEM, "%s: cannot allocate tables for rope_dim = %lld", fn,
                          (long long)c.rc.rope_dim);
    }
    /* the call's positions (B, S) or (S) as one list for the length-dependent scalings */
    int64_t mx = 0;
    for (int64_t b = 0; b < (c.psb ? B : 1); b++)
        for (int64_t t = 0; t < S; t++)
            if (pos_at(&c, b, t) > mx) mx = pos_at(&c, b, t);
    c.mult = attn__rope_prepare(&c.rc, &mx, 1, c.inv_freq);
    attn__parallel_for(ntasks, nthreads, rope_task, &c);
    attn__free(c.inv_freq);
    attn__free(c.scratch);
    return ATTN_OK;
}

attn_status attn_rope_fwd(const attn_rope_config *cfg, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          attn_view x, const int64_t *positions, int64_t pos_stride_b, attn_view y) {
    return rope_run("attn_rope_fwd", cfg, batch, seq, heads, head_dim, x, positions, pos_stride_b, y, 0);
}

attn_status attn_rope_bwd(const attn_rope_config *cfg, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          attn_view dy, const int64_t *positions, int64_t pos_stride_b, attn_view dx) {
    return rope_run("attn_rope_bwd", cfg, batch, seq, heads, head_dim, dy, positions, pos_stride_b, dx, 1);
}
