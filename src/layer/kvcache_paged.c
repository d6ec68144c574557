/* SPDX-License-Identifier: MIT */
/* kvcache_paged.c — the paged KV cache: a fixed pool of blocks, sequences
 * with their own block tables, fork with shared (reference-counted) blocks
 * and copy-on-write at the first write into a shared block.
 *
 * Layout (see kvcache_paged.h):
 *   k, v pools (nb, Hkv, bs, D) of cfg.dtype (F32, BF16, F16 or I8; I8 rows
 *   have their scales in ks, vs (nb, Hkv, bs)); token t of a sequence in block
 *   table[t / bs], slot t % bs; head h's run of a block at (blk * Hkv + h) * bs * D.
 * Invariants: ref[b] = number of (slot, table index) entries naming block b;
 * a block is on the free stack iff ref[b] == 0; a slot's table holds exactly
 * ceil(len / bs) valid entries, -1 after them.
 * Every public call validates everything before it writes anything, so an
 * error (bad id, ATTN_ERR_CAPACITY, ...) leaves the cache unchanged. */
#include "layer/kvcache_paged.h"

#include "kernels/kv_typed.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int64_t nblocks_of(const attn_kvpaged *c, int64_t len) { return (len + c->bs - 1) / c->bs; }

/* The defaults of every field (appended fields: add their default here). */
static void config_defaults(attn_kvpaged_config *g) {
    memset(g, 0, sizeof *g);
    g->struct_size = (uint32_t)sizeof *g;
    g->dtype = ATTN_DTYPE_F32;
}

/* First release's layout ends at dtype; later fields are appended after it. */
static const attn__struct_layout CONFIG_LAYOUT = {
    "attn_kvpaged_config", ATTN__SIZE_THROUGH(attn_kvpaged_config, dtype), sizeof(attn_kvpaged_config)};

attn_status attn_kvpaged_config_init_size(attn_kvpaged_config *cfg, size_t struct_size) {
    if (!cfg) return attn__fail(ATTN_ERR_NULL, "attn_kvpaged_config_init: cfg is NULL");
    attn_kvpaged_config def;
    config_defaults(&def);
    return attn__struct_init(cfg, struct_size, &def, &CONFIG_LAYOUT);
}

static attn_status check_config(const attn_kvpaged_config *g) {
    static const char fn[] = "attn_kvpaged_create";
    if (g->num_blocks < 1 || g->num_blocks > INT32_MAX)
        return attn__fail(ATTN_ERR_SHAPE, "%s: num_blocks = %lld, must be in [1, %d]", fn, (long long)g->num_blocks, INT32_MAX);
    if (g->block_size < 16 || g->block_size > 128)
        return attn__fail(ATTN_ERR_SHAPE, "%s: block_size = %lld, must be in [16, 128]", fn, (long long)g->block_size);
    if (g->max_seqs < 1 || g->max_seqs > (1 << 20))
        return attn__fail(ATTN_ERR_SHAPE, "%s: max_seqs = %lld, must be in [1, %d]", fn, (long long)g->max_seqs, 1 << 20);
    if (g->max_seq_len < 1 || g->max_seq_len > INT32_MAX / 2)
        return attn__fail(ATTN_ERR_SHAPE, "%s: max_seq_len = %lld, must be in [1, %d]", fn, (long long)g->max_seq_len,
                          INT32_MAX / 2);
    if (g->num_kv_heads < 1 || g->num_kv_heads > 65536)
        return attn__fail(ATTN_ERR_SHAPE, "%s: num_kv_heads = %lld, must be in [1, 65536]", fn, (long long)g->num_kv_heads);
    if (g->head_dim < 1 || g->head_dim > 256)
        return attn__fail(ATTN_ERR_SHAPE, "%s: head_dim = %lld, must be in [1, 256]", fn, (long long)g->head_dim);
    if (attn__kv_elem_size(g->dtype) == 0)
        return attn__fail(ATTN_ERR_DTYPE, "%s: dtype = %d: a pool holds ATTN_DTYPE_F32, BF16, F16 or I8", fn,
                          (int)g->dtype);
    return ATTN_OK;
}

attn_status attn_kvpaged_create(attn_kvpaged **out, const attn_kvpaged_config *cfg) {
    static const char fn[] = "attn_kvpaged_create";
    if (!out) return attn__fail(ATTN_ERR_NULL, "%s: out is NULL", fn);
    *out = NULL;
    if (!cfg) return attn__fail(ATTN_ERR_NULL, "%s: cfg is NULL", fn);
    attn_kvpaged_config def, full; /* the caller's config in this library's layout */
    config_defaults(&def);
    attn_status st = attn__struct_read(fn, cfg, &full, &def, &CONFIG_LAYOUT, ATTN_ERR_CONFIG);
    if (st) return st;
    full.struct_size = (uint32_t)sizeof full;
    cfg = &full;
    if ((st = check_config(cfg))) return st;
    int ok = 1;
    size_t blk = attn__mul_size(attn__mul_size((size_t)cfg->num_kv_heads, (size_t)cfg->block_size, &ok),
                                (size_t)cfg->head_dim, &ok);
    const size_t es = attn__kv_elem_size(cfg->dtype);
    size_t bytes = attn__mul_size(attn__mul_size(blk, (size_t)cfg->num_blocks, &ok), es, &ok);
    size_t sbytes = attn__mul_size(attn__mul_size((size_t)cfg->num_kv_heads, (size_t)cfg->block_size, &ok),
                                   attn__mul_size((size_t)cfg->num_blocks, sizeof(float), &ok), &ok);
    const int64_t mb = (cfg->max_seq_len + cfg->block_size - 1) / cfg->block_size;
    size_t tbytes = attn__mul_size(attn__mul_size((size_t)cfg->max_seqs, (size_t)mb, &ok), sizeof(int32_t), &ok);
    if (!ok || bytes > (size_t)INT64_MAX / 4)
        return attn__fail(ATTN_ERR_NOMEM, "%s: pool size overflows (%lld blocks x %lld heads x %lld tokens x dim %lld)", fn,
                          (long long)cfg->num_blocks, (long long)cfg->num_kv_heads, (long long)cfg->block_size,
                          (long long)cfg->head_dim);
    attn_kvpaged *c = (attn_kvpaged *)calloc(1, sizeof *c);
    if (!c) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", fn);
    c->cfg = *cfg;
    c->nb = cfg->num_blocks; c->bs = cfg->block_size; c->Hkv = cfg->num_kv_heads; c->D = cfg->head_dim;
    c->S = cfg->max_seqs; c->mb = mb; c->blk = (int64_t)blk; c->es = es;
    c->k = (unsigned char *)attn__malloc_huge(bytes);
    c->v = (unsigned char *)attn__malloc_huge(bytes);
    const int i8 = cfg->dtype == ATTN_DTYPE_I8;
    if (i8) {
        c->ks = (float *)attn__malloc(sbytes);
        c->vs = (float *)attn__malloc(sbytes);
    }
    c->ref = (int32_t *)calloc((size_t)c->nb, sizeof(int32_t));
    c->freel = (int32_t *)malloc((size_t)c->nb * sizeof(int32_t));
    c->id = (int64_t *)malloc((size_t)c->S * sizeof(int64_t));
    c->len = (int64_t *)calloc((size_t)c->S, sizeof(int64_t));
    c->table = (int32_t *)malloc(tbytes);
    if (!c->k || !c->v || !c->ref || !c->freel || !c->id || !c->len || !c->table || (i8 && (!c->ks || !c->vs))) {
        attn_kvpaged_free(c);
        return attn__fail(ATTN_ERR_NOMEM, "%s: cannot allocate a pool of 2 x %zu bytes", fn, bytes);
    }
    for (int64_t i = 0; i < c->nb; i++) c->freel[i] = (int32_t)(c->nb - 1 - i); /* block 0 is taken first */
    c->nfree = c->nb;
    for (int64_t s = 0; s < c->S; s++) c->id[s] = -1;
    memset(c->table, 0xff, tbytes); /* -1 */
    *out = c;
    return ATTN_OK;
}

void attn_kvpaged_free(attn_kvpaged *c) {
    if (!c) return;
    attn__free(c->k);
    attn__free(c->v);
    attn__free(c->ks);
    attn__free(c->vs);
    free(c->ref);
    free(c->freel);
    free(c->id);
    free(c->len);
    free(c->table);
    free(c);
}

int64_t attn__kvpaged_slot(const attn_kvpaged *c, int64_t id) {
    if (id < 0) return -1;
    for (int64_t s = 0; s < c->S; s++)
        if (c->id[s] == id) return s;
    return -1;
}

/* First unused slot, or -1. */
static int64_t unused_slot(const attn_kvpaged *c) {
    for (int64_t s = 0; s < c->S; s++)
        if (c->id[s] < 0) return s;
    return -1;
}

static attn_status live_slot(const attn_kvpaged *c, const char *fn, int64_t id, int64_t *slot) {
    *slot = attn__kvpaged_slot(c, id);
    if (*slot < 0) return attn__fail(ATTN_ERR_NOT_FOUND, "%s: sequence id %lld is not live", fn, (long long)id);
    return ATTN_OK;
}

static attn_status new_id_ok(const attn_kvpaged *c, const char *fn, int64_t id, int64_t *slot) {
    if (id < 0) return attn__fail(ATTN_ERR_SHAPE, "%s: sequence id = %lld, must be >= 0", fn, (long long)id);
    if (attn__kvpaged_slot(c, id) >= 0)
        return attn__fail(ATTN_ERR_STATE, "%s: sequence id %lld is already live", fn, (long long)id);
    *slot = unused_slot(c);
    if (*slot < 0)
        return attn__fail(ATTN_ERR_CAPACITY, "%s: all max_seqs = %lld sequence slots are live", fn, (long long)c->S);
    return ATTN_OK;
}

attn_status attn_kvpaged_add(attn_kvpaged *c, int64_t id) {
    static const char fn[] = "attn_kvpaged_add";
    if (!c) return attn__fail(ATTN_ERR_NULL, "%s: c is NULL", fn);
    int64_t s;
    attn_status st = new_id_ok(c, fn, id, &s);
    if (st) return st;
    c->id[s] = id;
    c->len[s] = 0;
    return ATTN_OK;
}

static void release_block(attn_kvpaged *c, int32_t b) {
    if (--c->ref[b] == 0) c->freel[c->nfree++] = b;
}

static int32_t take_block(attn_kvpaged *c) {
    int32_t b = c->freel[--c->nfree];
    c->ref[b] = 1;
    return b;
}

void attn__kvpaged_truncate_slot(attn_kvpaged *c, int64_t s, int64_t len) {
    int32_t *t = c->table + s * c->mb;
    for (int64_t i = nblocks_of(c, c->len[s]) - 1; i >= nblocks_of(c, len); i--) {
        release_block(c, t[i]);
        t[i] = -1;
    }
    c->len[s] = len;
}

attn_status attn_kvpaged_remove(attn_kvpaged *c, int64_t id) {
    static const char fn[] = "attn_kvpaged_remove";
    if (!c) return attn__fail(ATTN_ERR_NULL, "%s: c is NULL", fn);
    int64_t s;
    attn_status st = live_slot(c, fn, id, &s);
    if (st) return st;
    attn__kvpaged_truncate_slot(c, s, 0);
    c->id[s] = -1;
    return ATTN_OK;
}

attn_status attn_kvpaged_fork(attn_kvpaged *c, int64_t parent, int64_t child) {
    static const char fn[] = "attn_kvpaged_fork";
    if (!c) return attn__fail(ATTN_ERR_NULL, "%s: c is NULL", fn);
    int64_t ps, cs;
    attn_status st = live_slot(c, fn, parent, &ps);
    if (st) return st;
    if ((st = new_id_ok(c, fn, child, &cs))) return st;
    const int32_t *pt = c->table + ps * c->mb;
    int32_t *ct = c->table + cs * c->mb;
    const int64_t n = nblocks_of(c, c->len[ps]);
    for (int64_t i = 0; i < n; i++) {
        ct[i] = pt[i];
        c->ref[pt[i]]++;
    }
    c->id[cs] = child;
    c->len[cs] = c->len[ps];
    return ATTN_OK;
}

attn_status attn_kvpaged_truncate(attn_kvpaged *c, int64_t id, int64_t len) {
    static const char fn[] = "attn_kvpaged_truncate";
    if (!c) return attn__fail(ATTN_ERR_NULL, "%s: c is NULL", fn);
    int64_t s;
    attn_status st = live_slot(c, fn, id, &s);
    if (st) return st;
    if (len < 0 || len > c->len[s])
        return attn__fail(ATTN_ERR_SHAPE, "%s: len = %lld, must be in [0, %lld] (the length of sequence %lld)", fn,
                          (long long)len, (long long)c->len[s], (long long)id);
    attn__kvpaged_truncate_slot(c, s, len);
    return ATTN_OK;
}

int64_t attn__kvpaged_blocks_needed(const attn_kvpaged *c, int64_t s, int64_t n) {
    const int64_t len = c->len[s];
    int64_t need = nblocks_of(c, len + n) - nblocks_of(c, len);
    if (n > 0 && len % c->bs != 0 && c->ref[c->table[s * c->mb + len / c->bs]] > 1) need++; /* copy-on-write */
    return need;
}

void attn__kvpaged_append_slot(attn_kvpaged *c, int64_t s, int64_t n, const float *k, const float *v, int64_t ld) {
    if (n <= 0) return;
    int32_t *t = c->table + s * c->mb;
    const int64_t len = c->len[s], bs = c->bs, D = c->D;
    if (len % bs != 0 && c->ref[t[len / bs]] > 1) { /* first write into a shared block: copy it */
        const int32_t old = t[len / bs], nw = take_block(c);
        const size_t nbytes = (size_t)c->blk * c->es, sn = (size_t)(c->Hkv * bs);
        memcpy(c->k + (size_t)nw * nbytes, c->k + (size_t)old * nbytes, nbytes);
        memcpy(c->v + (size_t)nw * nbytes, c->v + (size_t)old * nbytes, nbytes);
        if (c->ks) {
            memcpy(c->ks + nw * sn, c->ks + old * sn, sn * sizeof(float));
            memcpy(c->vs + nw * sn, c->vs + old * sn, sn * sizeof(float));
        }
        c->ref[old]--; /* still referenced by another sequence */
        t[len / bs] = nw;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t pos = len + i, off = pos % bs;
        if (off == 0) t[pos / bs] = take_block(c);
        const int64_t b = t[pos / bs];
        for (int64_t h = 0; h < c->Hkv; h++) {
            const int64_t row = (b * c->Hkv + h) * bs + off; /* (b, h, off) */
            attn__kv_put_row(c->cfg.dtype, c->k + (size_t)(row * D) * c->es, c->ks ? c->ks + row : NULL, k + i * ld + h * D, D);
            attn__kv_put_row(c->cfg.dtype, c->v + (size_t)(row * D) * c->es, c->vs ? c->vs + row : NULL, v + i * ld + h * D, D);
        }
    }
    c->len[s] = len + n;
}

attn_status attn_kvpaged_append(attn_kvpaged *c, int64_t id, int64_t n, const float *k, const float *v, int64_t ld) {
    static const char fn[] = "attn_kvpaged_append";
    if (!c) return attn__fail(ATTN_ERR_NULL, "%s: c is NULL", fn);
    int64_t s;
    attn_status st = live_slot(c, fn, id, &s);
    if (st) return st;
    if (n < 0) return attn__fail(ATTN_ERR_SHAPE, "%s: n = %lld < 0", fn, (long long)n);
    if (n == 0) return ATTN_OK;
    if (!k || !v) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !k ? "k" : "v");
    if (ld < c->Hkv * c->D)
        return attn__fail(ATTN_ERR_STRIDE, "%s: ld = %lld, must be >= Hkv * D = %lld", fn, (long long)ld,
                          (long long)(c->Hkv * c->D));
    if (n > c->cfg.max_seq_len - c->len[s])
        return attn__fail(ATTN_ERR_CAPACITY, "%s: sequence %lld has %lld tokens, + n = %lld exceeds max_seq_len = %lld", fn,
                          (long long)id, (long long)c->len[s], (long long)n, (long long)c->cfg.max_seq_len);
    const int64_t need = attn__kvpaged_blocks_needed(c, s, n);
    if (need > c->nfree)
        return attn__fail(ATTN_ERR_CAPACITY, "%s: %lld tokens for sequence %lld need %lld blocks, the pool has %lld free", fn,
                          (long long)n, (long long)id, (long long)need, (long long)c->nfree);
    attn__kvpaged_append_slot(c, s, n, k, v, ld);
    return ATTN_OK;
}

attn_status attn_kvpaged_read(const attn_kvpaged *c, int64_t id, int64_t t0, int64_t n, float *k, float *v) {
    static const char fn[] = "attn_kvpaged_read";
    if (!c) return attn__fail(ATTN_ERR_NULL, "%s: c is NULL", fn);
    int64_t s;
    attn_status st = live_slot(c, fn, id, &s);
    if (st) return st;
    if (t0 < 0 || n < 0 || t0 > c->len[s] - n)
        return attn__fail(ATTN_ERR_SHAPE, "%s: tokens [%lld, %lld + %lld) are not within the %lld of sequence %lld", fn,
                          (long long)t0, (long long)t0, (long long)n, (long long)c->len[s], (long long)id);
    if (n > 0 && (!k || !v)) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !k ? "k" : "v");
    const int32_t *t = c->table + s * c->mb;
    const int64_t D = c->D, bs = c->bs;
    for (int64_t i = 0; i < n; i++) {
        const int64_t pos = t0 + i, b = t[pos / bs];
        for (int64_t h = 0; h < c->Hkv; h++) {
            const int64_t row = (b * c->Hkv + h) * bs + pos % bs;
            attn__kv_get_row(c->cfg.dtype, c->k + (size_t)(row * D) * c->es, c->ks ? c->ks[row] : 1.0f, k + (i * c->Hkv + h) * D, D);
            attn__kv_get_row(c->cfg.dtype, c->v + (size_t)(row * D) * c->es, c->vs ? c->vs[row] : 1.0f, v + (i * c->Hkv + h) * D, D);
        }
    }
    return ATTN_OK;
}

int64_t attn_kvpaged_len(const attn_kvpaged *c, int64_t id) {
    if (!c) { attn__fail(ATTN_ERR_NULL, "attn_kvpaged_len: c is NULL"); return -1; }
    int64_t s;
    if (live_slot(c, "attn_kvpaged_len", id, &s)) return -1;
    return c->len[s];
}

int64_t attn_kvpaged_free_blocks(const attn_kvpaged *c) { return c ? c->nfree : 0; }

const attn_kvpaged_config *attn_kvpaged_get_config(const attn_kvpaged *c) { return c ? &c->cfg : NULL; }

attn_status attn_kvpaged_describe(const attn_kvpaged *c, const int64_t *ids, int64_t n, int32_t *seq_lens,
                                  int32_t *block_tables, attn_paged_kv *out) {
    static const char fn[] = "attn_kvpaged_describe";
    if (!c || !out) return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !c ? "c" : "out");
    if (n < 0) return attn__fail(ATTN_ERR_SHAPE, "%s: n = %lld < 0", fn, (long long)n);
    if (n > 0 && (!ids || !seq_lens || !block_tables))
        return attn__fail(ATTN_ERR_NULL, "%s: %s is NULL", fn, !ids ? "ids" : !seq_lens ? "seq_lens" : "block_tables");
    for (int64_t b = 0; b < n; b++) {
        int64_t s;
        attn_status st = live_slot(c, fn, ids[b], &s);
        if (st) return st;
    }
    for (int64_t b = 0; b < n; b++) {
        const int64_t s = attn__kvpaged_slot(c, ids[b]);
        seq_lens[b] = (int32_t)c->len[s];
        memcpy(block_tables + b * c->mb, c->table + s * c->mb, (size_t)c->mb * sizeof(int32_t));
    }
    memset(out, 0, sizeof *out);
    out->dtype = c->cfg.dtype;
    out->k = c->k;
    out->v = c->v;
    out->k_scale = c->ks;
    out->v_scale = c->vs;
    out->num_blocks = c->nb;
    out->block_size = c->bs;
    out->block_tables = block_tables;
    out->max_blocks = c->mb;
    out->seq_lens = seq_lens;
    return ATTN_OK;
}
