/* SPDX-License-Identifier: MIT */
/* safetensors.c — validated reader and F32 writer of the safetensors format.
 *
 * File layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * (object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__": {string: string}), then the data buffer.
 * Offsets are relative to the start of the data buffer.
 *
 * Validation follows the reference implementation (huggingface/safetensors,
 * Metadata::validate): N <= 100,000,000 and 8 + N <= file size; sorted by
 * offset, the tensors must tile the data buffer exactly — the first starts at
 * 0, each starts where the previous ends, the last ends at the end of the
 * file (no holes, no overlaps, no trailing bytes); end - begin must equal
 * numel * itemsize (overflow-checked). Stricter than the reference: duplicate
 * JSON keys, empty tensor names and names containing NUL are rejected.
 * Unknown keys inside a tensor entry are ignored (as the reference does).
 *
 * Memory: attn_st_open reads only the header (N bytes, checked against the
 * file size before allocating) and keeps the file descriptor; tensor data is
 * read on demand with pread. The index takes ~112 bytes per tensor plus the
 * names; every tensor entry occupies >= 50 header bytes, so the index is at
 * most ~3.3 N bytes. Nothing is ever sized from a value declared in the file
 * before that value has been checked against the real size.
 * attn_st is immutable after opening: concurrent reads are safe. */
#include "core/core.h"
#include "io/file.h"
#include "io/half.h"
#include "io/json.h"
#include "io/st_typed.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000u /* as the reference implementation */

/* ─── dtypes ────────────────────────────────────────────────────────────── */
typedef struct st_dtype {
    const char *name;
    int bits;
    attn_dtype api;
} st_dtype;

static const st_dtype ST_DTYPES[] = {
    { "F32", 32, ATTN_DTYPE_F32 },     { "F16", 16, ATTN_DTYPE_F16 },
    { "BF16", 16, ATTN_DTYPE_BF16 },   { "F64", 64, ATTN_DTYPE_F64 },
    { "I32", 32, ATTN_DTYPE_I32 },     { "I64", 64, ATTN_DTYPE_I64 },
    { "U8", 8, ATTN_DTYPE_U8 },        { "I8", 8, ATTN_DTYPE_OTHER },
    { "I16", 16, ATTN_DTYPE_OTHER },   { "U16", 16, ATTN_DTYPE_OTHER },
    { "U32", 32, ATTN_DTYPE_OTHER },   { "U64", 64, ATTN_DTYPE_OTHER },
    { "BOOL", 8, ATTN_DTYPE_OTHER },   { "F8_E4M3", 8, ATTN_DTYPE_OTHER },
    { "F8_E5M2", 8, ATTN_DTYPE_OTHER }, { "F8_E8M0", 8, ATTN_DTYPE_OTHER },
    { "C64", 64, ATTN_DTYPE_OTHER },   { "F4", 4, ATTN_DTYPE_OTHER },
    { "F6_E2M3", 6, ATTN_DTYPE_OTHER }, { "F6_E3M2", 6, ATTN_DTYPE_OTHER },
};
#define ST_NDTYPES ((int)(sizeof ST_DTYPES / sizeof ST_DTYPES[0]))

/* ─── the handle ────────────────────────────────────────────────────────── */
typedef struct st_entry {
    attn_tensor_info info; /* name points into names */
    int dtype;             /* index into ST_DTYPES */
    uint64_t begin, end;   /* byte range in the data buffer */
} st_entry;

struct attn_st {
    int fd;                 /* file handle, or -1 when mem is used */
    unsigned char *mem;     /* the whole buffer (attn_st_open_memory) */
    uint64_t data_start;    /* 8 + N */
    uint64_t data_size;     /* bytes of the data buffer */
    int64_t count;
    st_entry *entries;      /* sorted by name */
    char *names;            /* NUL-terminated names, back to back */
    int64_t nmeta;          /* "__metadata__" entries */
    const char **meta;      /* key, value pairs sorted by key (2 * nmeta) */
    char *meta_text;        /* their text */
};

/* "[64, 32]" */
static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* ─── heap sort of uint32 indices with a context comparator ─────────────── */
typedef int (*idx_cmp_fn)(const void *ctx, uint32_t a, uint32_t b);

static void idx_sift(uint32_t *v, size_t root, size_t n, idx_cmp_fn cmp, const void *ctx) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && cmp(ctx, v[child], v[child + 1]) < 0) child++;
        if (cmp(ctx, v[root], v[child]) >= 0) return;
        uint32_t t = v[root]; v[root] = v[child]; v[child] = t;
        root = child;
    }
}
static void idx_sort(uint32_t *v, size_t n, idx_cmp_fn cmp, const void *ctx) {
    for (size_t i = n / 2; i-- > 0;) idx_sift(v, i, n, cmp, ctx);
    for (size_t i = n; i-- > 1;) {
        uint32_t t = v[0]; v[0] = v[i]; v[i] = t;
        idx_sift(v, 0, i, cmp, ctx);
    }
}
static int cmp_by_offset(const void *ctx, uint32_t a, uint32_t b) {
    const st_entry *e = (const st_entry *)ctx;
    if (e[a].begin != e[b].begin) return e[a].begin < e[b].begin ? -1 : 1;
    if (e[a].end != e[b].end) return e[a].end < e[b].end ? -1 : 1;
    return 0;
}
static int cmp_by_name(const void *ctx, uint32_t a, uint32_t b) {
    const st_entry *e = (const st_entry *)ctx;
    return strcmp(e[a].info.name, e[b].info.name);
}

/* ─── header parsing ────────────────────────────────────────────────────── */
typedef struct st_parse {
    const char *src;    /* path or "safetensors buffer", for messages */
    uint64_t data_size; /* bytes available for the data buffer */
    char name[160];     /* current tensor name (possibly truncated), for messages */
} st_parse;

/* The value of a required key of a tensor entry. */
static attn_status entry_key(st_parse *ps, attn_json obj, const char *key, attn_json_type type,
                             attn_json *out) {
    int r = attn__json_get(obj, key, out);
    if (r < 0) return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': duplicate key \"%s\"", ps->src, ps->name, key);
    if (r == 0) return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", ps->src, ps->name, key);
    if (out->type != type)
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': \"%s\" is a %s, expected a%s %s", ps->src,
                          ps->name, key, attn__json_type_name(out->type),
                          type == ATTN_JSON_ARRAY || type == ATTN_JSON_OBJECT ? "n" : "",
                          attn__json_type_name(type));
    return ATTN_OK;
}

/* A non-negative integer element of an array. */
static attn_status entry_uint(st_parse *ps, attn_json v, const char *key, int64_t *out) {
    attn_json_num num;
    if (v.type != ATTN_JSON_NUMBER)
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': \"%s\" contains a %s, expected integers", ps->src,
                          ps->name, key, attn__json_type_name(v.type));
    attn__json_num(v, &num);
    if (!num.is_int || num.i < 0)
        return attn__fail(ATTN_ERR_FORMAT,
                          "%s: tensor '%s': \"%s\" contains %.17g, expected integers in [0, 2^63)", ps->src,
                          ps->name, key, num.d);
    *out = num.i;
    return ATTN_OK;
}

/* Validates one tensor entry (everything that does not involve other entries). */
static attn_status parse_entry(st_parse *ps, attn_json key, attn_json val, st_entry *e) {
    size_t nlen = attn__json_str_get(key, ps->name, sizeof ps->name);
    if (nlen == 0) return attn__fail(ATTN_ERR_FORMAT, "%s: a tensor has an empty name", ps->src);
    if (strlen(ps->name) != (nlen < sizeof ps->name ? nlen : sizeof ps->name - 1))
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor name '%s...' contains a NUL character (\\u0000)", ps->src,
                          ps->name);
    if (nlen >= sizeof ps->name) { /* check the rest of a long name for NULs too */
        /* decoded length of a name is <= its JSON length; a second pass is cheap */
        size_t cap = nlen + 1;
        char *tmp = (char *)attn__malloc(cap);
        if (!tmp) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory (tensor name of %zu bytes)", ps->src, nlen);
        attn__json_str_get(key, tmp, cap);
        int has_nul = strlen(tmp) != nlen;
        attn__free(tmp);
        if (has_nul)
            return attn__fail(ATTN_ERR_FORMAT, "%s: tensor name '%s...' contains a NUL character (\\u0000)",
                              ps->src, ps->name);
    }
    if (val.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': entry is a %s, expected an object", ps->src, ps->name,
                          attn__json_type_name(val.type));
    attn_json jd, js, jo, x;
    attn_status s;
    if ((s = entry_key(ps, val, "dtype", ATTN_JSON_STRING, &jd)) != ATTN_OK) return s;
    if ((s = entry_key(ps, val, "shape", ATTN_JSON_ARRAY, &js)) != ATTN_OK) return s;
    if ((s = entry_key(ps, val, "data_offsets", ATTN_JSON_ARRAY, &jo)) != ATTN_OK) return s;

    int dt = -1;
    for (int i = 0; i < ST_NDTYPES; i++)
        if (attn__json_str_eq(jd, ST_DTYPES[i].name)) { dt = i; break; }
    if (dt < 0) {
        char dn[40];
        attn__json_str_get(jd, dn, sizeof dn);
        return attn__fail(ATTN_ERR_DTYPE, "%s: tensor '%s': unknown dtype \"%s\"", ps->src, ps->name, dn);
    }
    memset(e, 0, sizeof *e);
    e->dtype = dt;
    e->info.dtype = ST_DTYPES[dt].api;

    attn_json_iter it;
    attn__json_iter_init(&it, js);
    int nd = 0;
    uint64_t numel = 1;
    int overflow = 0;
    while (attn__json_next(&it, NULL, &x)) {
        if (nd >= ATTN_MAX_DIMS)
            return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: tensor '%s': shape has %zu dimensions, at most %d supported",
                              ps->src, ps->name, attn__json_count(js), ATTN_MAX_DIMS);
        int64_t d;
        if ((s = entry_uint(ps, x, "shape", &d)) != ATTN_OK) return s;
        e->info.shape[nd++] = d;
        if (d != 0 && numel > (uint64_t)INT64_MAX / (uint64_t)d) overflow = 1;
        else numel *= (uint64_t)d;
    }
    e->info.ndim = nd;
    /* a zero dimension makes numel 0 whatever the other (huge) dimensions are */
    for (int i = 0; i < nd; i++)
        if (e->info.shape[i] == 0) { overflow = 0; numel = 0; }
    char sh[200];
    if (overflow) {
        fmt_shape(sh, sizeof sh, nd, e->info.shape);
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': shape %s overflows (more than 2^63 elements)", ps->src,
                          ps->name, sh);
    }
    e->info.numel = (int64_t)numel;
    int bits = ST_DTYPES[dt].bits;
    uint64_t nbits;
    if (numel > UINT64_MAX / (uint64_t)bits) {
        fmt_shape(sh, sizeof sh, nd, e->info.shape);
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': shape %s of %s overflows the byte size", ps->src,
                          ps->name, sh, ST_DTYPES[dt].name);
    }
    nbits = numel * (uint64_t)bits;
    if (nbits % 8) {
        fmt_shape(sh, sizeof sh, nd, e->info.shape);
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': shape %s of %s does not fill whole bytes", ps->src,
                          ps->name, sh, ST_DTYPES[dt].name);
    }
    uint64_t nbytes = nbits / 8;

    int64_t off[2];
    int no = 0;
    attn__json_iter_init(&it, jo);
    while (attn__json_next(&it, NULL, &x)) {
        if (no >= 2) break;
        if ((s = entry_uint(ps, x, "data_offsets", &off[no])) != ATTN_OK) return s;
        no++;
    }
    if (no != 2 || attn__json_count(jo) != 2)
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" has %zu elements, expected 2 [begin, end]",
                          ps->src, ps->name, attn__json_count(jo));
    e->begin = (uint64_t)off[0];
    e->end = (uint64_t)off[1];
    if (e->begin > e->end)
        return attn__fail(ATTN_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] has begin > end", ps->src,
                          ps->name, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > ps->data_size)
        return attn__fail(ATTN_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data buffer (%llu bytes)",
                          ps->src, ps->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                          (unsigned long long)ps->data_size);
    if (e->end - e->begin != nbytes) {
        fmt_shape(sh, sizeof sh, nd, e->info.shape);
        return attn__fail(ATTN_ERR_FORMAT,
                          "%s: tensor '%s': shape %s of %s needs %llu bytes, data_offsets [%llu, %llu] span %llu",
                          ps->src, ps->name, sh, ST_DTYPES[dt].name, (unsigned long long)nbytes,
                          (unsigned long long)e->begin, (unsigned long long)e->end,
                          (unsigned long long)(e->end - e->begin));
    }
    return ATTN_OK;
}

static attn_status parse_metadata(st_parse *ps, attn_json meta) {
    if (meta.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: \"__metadata__\" is a %s, expected an object of strings", ps->src,
                          attn__json_type_name(meta.type));
    attn_json_iter it;
    attn_json k, v;
    attn__json_iter_init(&it, meta);
    while (attn__json_next(&it, &k, &v)) {
        char kn[80];
        size_t kl = attn__json_str_get(k, kn, sizeof kn);
        if (v.type != ATTN_JSON_STRING)
            return attn__fail(ATTN_ERR_FORMAT, "%s: \"__metadata__\" value of '%s' is a %s, expected a string",
                              ps->src, kn, attn__json_type_name(v.type));
        /* keys must be usable as C strings (values are cut at a NUL) */
        int has_nul = strlen(kn) != (kl < sizeof kn ? kl : sizeof kn - 1);
        if (!has_nul && kl >= sizeof kn) {
            char *tmp = (char *)attn__malloc(kl + 1);
            if (!tmp) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", ps->src);
            attn__json_str_get(k, tmp, kl + 1);
            has_nul = strlen(tmp) != kl;
            attn__free(tmp);
        }
        if (has_nul)
            return attn__fail(ATTN_ERR_FORMAT, "%s: \"__metadata__\" key '%s...' contains a NUL character", ps->src, kn);
    }
    attn_json dup;
    int r = attn__json_find_dup_key(meta, &dup);
    if (r < 0) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory checking \"__metadata__\"", ps->src);
    if (r > 0) {
        char kn[80];
        attn__json_str_get(dup, kn, sizeof kn);
        return attn__fail(ATTN_ERR_FORMAT, "%s: \"__metadata__\" has the key '%s' twice", ps->src, kn);
    }
    return ATTN_OK;
}

static int cmp_meta(const void *ctx, uint32_t a, uint32_t b) {
    const char *const *m = (const char *const *)ctx;
    return strcmp(m[2 * a], m[2 * b]);
}

/* Decodes the (validated) "__metadata__" object into st->meta, sorted by key. */
static attn_status load_metadata(attn_st *st, const char *src, attn_json meta) {
    size_t n = attn__json_count(meta), bytes = 0;
    if (n == 0) return ATTN_OK;
    attn_json_iter it;
    attn_json k, v;
    attn__json_iter_init(&it, meta);
    while (attn__json_next(&it, &k, &v)) bytes += attn__json_str_len(k) + attn__json_str_len(v) + 2;
    char *text = (char *)attn__malloc(bytes);
    const char **pairs = (const char **)attn__calloc(2 * n, sizeof *pairs);
    const char **sorted = (const char **)attn__calloc(2 * n, sizeof *sorted);
    uint32_t *order = (uint32_t *)attn__calloc(n, sizeof *order);
    if (!text || !pairs || !sorted || !order) {
        attn__free(text); attn__free(pairs); attn__free(sorted); attn__free(order);
        return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory for %zu metadata entries", src, n);
    }
    size_t used = 0, i = 0;
    attn__json_iter_init(&it, meta);
    while (i < n && attn__json_next(&it, &k, &v)) {
        pairs[2 * i] = text + used;
        used += attn__json_str_get(k, text + used, bytes - used) + 1;
        pairs[2 * i + 1] = text + used;
        used += attn__json_str_get(v, text + used, bytes - used) + 1;
        order[i] = (uint32_t)i;
        i++;
    }
    idx_sort(order, n, cmp_meta, pairs);
    for (size_t j = 0; j < n; j++) {
        sorted[2 * j] = pairs[2 * order[j]];
        sorted[2 * j + 1] = pairs[2 * order[j] + 1];
    }
    attn__free(pairs);
    attn__free(order);
    st->nmeta = (int64_t)n;
    st->meta = sorted;
    st->meta_text = text;
    return ATTN_OK;
}

/* Parses and validates the header; fills st->count / entries / names. */
static attn_status parse_header(attn_st *st, const char *src, const char *hdr, size_t n) {
    st_parse ps;
    ps.src = src;
    ps.data_size = st->data_size;
    ps.name[0] = 0;
    attn_json root, k, v;
    attn_json_error jerr;
    if (attn__json_parse(hdr, n, &root, &jerr) != 0)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header is not valid JSON: %s at header byte %zu (file offset %zu)",
                          src, jerr.msg, jerr.offset, jerr.offset + 8);
    if (root.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header is a JSON %s, expected an object", src,
                          attn__json_type_name(root.type));

    /* pass 1: validate every entry, count tensors and name bytes */
    attn_json_iter it;
    attn__json_iter_init(&it, root);
    size_t count = 0, name_bytes = 0;
    int have_meta = 0;
    attn_json meta = root;
    st_entry e;
    attn_status s;
    while (attn__json_next(&it, &k, &v)) {
        if (attn__json_str_eq(k, "__metadata__")) {
            if (have_meta) return attn__fail(ATTN_ERR_FORMAT, "%s: header has \"__metadata__\" twice", src);
            have_meta = 1;
            meta = v;
            if ((s = parse_metadata(&ps, v)) != ATTN_OK) return s;
            continue;
        }
        if ((s = parse_entry(&ps, k, v, &e)) != ATTN_OK) return s;
        count++;
        name_bytes += attn__json_str_len(k) + 1; /* each name is < n bytes: no overflow */
    }
    if (count > UINT32_MAX) return attn__fail(ATTN_ERR_FORMAT, "%s: too many tensors (%zu)", src, count);

    /* pass 2: fill the index (sizes bounded by the header length: see top) */
    st_entry *entries = count ? (st_entry *)attn__calloc(count, sizeof *entries) : NULL;
    char *names = (char *)attn__malloc(name_bytes ? name_bytes : 1);
    uint32_t *order = count ? (uint32_t *)attn__calloc(count, sizeof *order) : NULL;
    if ((count && (!entries || !order)) || !names) {
        attn__free(entries); attn__free(names); attn__free(order);
        return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory for the index of %zu tensors", src, count);
    }
    size_t i = 0, used = 0;
    attn__json_iter_init(&it, root);
    while (i < count && attn__json_next(&it, &k, &v)) {
        if (attn__json_str_eq(k, "__metadata__")) continue;
        if ((s = parse_entry(&ps, k, v, &entries[i])) != ATTN_OK) goto fail; /* cannot fail: pass 1 */
        size_t len = attn__json_str_get(k, names + used, name_bytes - used);
        entries[i].info.name = names + used;
        used += len + 1;
        order[i] = (uint32_t)i;
        i++;
    }

    /* the tensors must tile [0, data_size) exactly */
    idx_sort(order, count, cmp_by_offset, entries);
    uint64_t pos = 0;
    for (size_t j = 0; j < count; j++) {
        const st_entry *t = &entries[order[j]];
        if (t->begin < pos) {
            const st_entry *prev = &entries[order[j - 1]];
            s = attn__fail(ATTN_ERR_FORMAT, "%s: tensors '%.150s' [%llu, %llu) and '%.150s' [%llu, %llu) overlap", src,
                           prev->info.name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                           t->info.name, (unsigned long long)t->begin, (unsigned long long)t->end);
            goto fail;
        }
        if (t->begin > pos) {
            s = attn__fail(ATTN_ERR_FORMAT,
                           "%s: tensor '%.150s' starts at data byte %llu but the previous data ends at %llu "
                           "(holes in the data buffer are not allowed)",
                           src, t->info.name, (unsigned long long)t->begin, (unsigned long long)pos);
            goto fail;
        }
        pos = t->end;
    }
    if (pos != st->data_size) {
        s = attn__fail(ATTN_ERR_FORMAT,
                       "%s: the data buffer has %llu bytes but the tensors cover %llu (trailing bytes are not allowed)",
                       src, (unsigned long long)st->data_size, (unsigned long long)pos);
        goto fail;
    }

    /* sort by name; duplicates are adjacent */
    for (size_t j = 0; j < count; j++) order[j] = (uint32_t)j;
    idx_sort(order, count, cmp_by_name, entries);
    for (size_t j = 1; j < count; j++)
        if (strcmp(entries[order[j - 1]].info.name, entries[order[j]].info.name) == 0) {
            s = attn__fail(ATTN_ERR_FORMAT, "%s: duplicate tensor name '%.200s'", src, entries[order[j]].info.name);
            goto fail;
        }
    /* permute entries into name order, reusing `order` as the cycle marker */
    for (size_t j = 0; j < count; j++) {
        if (order[j] == UINT32_MAX) continue;
        st_entry tmp = entries[j];
        size_t cur = j;
        for (;;) {
            size_t src_i = order[cur];
            order[cur] = UINT32_MAX;
            if (src_i == j) { entries[cur] = tmp; break; }
            entries[cur] = entries[src_i];
            cur = src_i;
        }
    }
    attn__free(order);
    order = NULL;
    if (have_meta && (s = load_metadata(st, src, meta)) != ATTN_OK) goto fail;
    st->count = (int64_t)count;
    st->entries = entries;
    st->names = names;
    return ATTN_OK;
fail:
    attn__free(entries);
    attn__free(names);
    attn__free(order);
    return s;
}

/* ─── opening ───────────────────────────────────────────────────────────── */
static attn_st *st_new(void) {
    attn_st *st = (attn_st *)attn__calloc(1, sizeof *st);
    if (st) st->fd = -1;
    return st;
}

void attn_st_free(attn_st *st) {
    if (!st) return;
    if (st->fd >= 0) close(st->fd);
    attn__free(st->mem);
    attn__free(st->entries);
    attn__free(st->names);
    attn__free((void *)st->meta);
    attn__free(st->meta_text);
    attn__free(st);
}

/* Checks the 8-byte length prefix against the total size; returns N. */
static attn_status check_prefix(const char *src, const unsigned char *p8, uint64_t total, uint64_t *n_out) {
    uint64_t n = attn__ld_le64(p8);
    if (n > ST_MAX_HEADER)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header length %llu exceeds the limit of %u bytes", src,
                          (unsigned long long)n, ST_MAX_HEADER);
    if (n > total - 8)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)", src,
                          (unsigned long long)n, (unsigned long long)total);
    *n_out = n;
    return ATTN_OK;
}

attn_status attn_st_open_memory(attn_st **out, const void *data, size_t size) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_st_open_memory: out is NULL");
    if (!data && size) return attn__fail(ATTN_ERR_NULL, "attn_st_open_memory: data is NULL");
    const char *src = "safetensors buffer";
    if (size < 8)
        return attn__fail(ATTN_ERR_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", src, size);
    uint64_t n;
    attn_status s = check_prefix(src, (const unsigned char *)data, size, &n);
    if (s != ATTN_OK) return s;
    attn_st *st = st_new();
    unsigned char *mem = (unsigned char *)attn__malloc(size);
    if (!st || !mem) {
        attn__free(st); attn__free(mem);
        return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory copying %zu bytes", src, size);
    }
    memcpy(mem, data, size);
    st->mem = mem;
    st->data_start = 8 + n;
    st->data_size = size - 8 - n;
    s = parse_header(st, src, (const char *)mem + 8, (size_t)n);
    if (s != ATTN_OK) { attn_st_free(st); return s; }
    *out = st;
    return ATTN_OK;
}

attn_status attn_st_open(attn_st **out, const char *path) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_st_open: out is NULL");
    if (!path) return attn__fail(ATTN_ERR_NULL, "attn_st_open: path is NULL");
    int fd;
    uint64_t total;
    attn_status os = attn__file_open(path, &fd, &total);
    if (os != ATTN_OK) return os;
    if (total < 8) {
        close(fd);
        return attn__fail(ATTN_ERR_FORMAT, "%s: %llu bytes, too short for the 8-byte header length", path,
                          (unsigned long long)total);
    }
    unsigned char p8[8];
    int r = attn__pread_full(fd, p8, 8, 0);
    if (r != 0) {
        int e = errno;
        close(fd);
        return attn__fail(ATTN_ERR_IO, "%s: cannot read the header length: %s", path,
                          r > 0 ? "unexpected end of file" : strerror(e));
    }
    uint64_t n;
    attn_status s = check_prefix(path, p8, total, &n);
    if (s != ATTN_OK) { close(fd); return s; }
    attn_st *st = st_new();
    char *hdr = (char *)attn__malloc((size_t)n + 1);
    if (!st || !hdr) {
        attn__free(st); attn__free(hdr); close(fd);
        return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)n);
    }
    st->fd = fd;
    st->data_start = 8 + n;
    st->data_size = total - 8 - n;
    r = attn__pread_full(fd, hdr, (size_t)n, 8);
    if (r != 0) {
        int e = errno;
        attn__free(hdr);
        attn_st_free(st);
        return attn__fail(ATTN_ERR_IO, "%s: cannot read the %llu-byte header: %s", path, (unsigned long long)n,
                          r > 0 ? "unexpected end of file" : strerror(e));
    }
    s = parse_header(st, path, hdr, (size_t)n);
    attn__free(hdr);
    if (s != ATTN_OK) { attn_st_free(st); return s; }
    *out = st;
    return ATTN_OK;
}

/* ─── queries ───────────────────────────────────────────────────────────── */
int64_t attn_st_count(const attn_st *st) { return st ? st->count : 0; }

attn_status attn_st_info(const attn_st *st, int64_t index, attn_tensor_info *out) {
    if (!st) return attn__fail(ATTN_ERR_NULL, "attn_st_info: st is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_st_info: out is NULL");
    if (index < 0 || index >= st->count)
        return attn__fail(ATTN_ERR_NOT_FOUND, "attn_st_info: index %lld out of range (the file has %lld tensors)",
                          (long long)index, (long long)st->count);
    *out = st->entries[index].info;
    return ATTN_OK;
}

static const st_entry *st_lookup(const attn_st *st, const char *name) {
    int64_t lo = 0, hi = st->count;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->entries[mid].info.name, name);
        if (c == 0) return &st->entries[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

attn_status attn_st_find(const attn_st *st, const char *name, attn_tensor_info *out) {
    if (!st) return attn__fail(ATTN_ERR_NULL, "attn_st_find: st is NULL");
    if (!name) return attn__fail(ATTN_ERR_NULL, "attn_st_find: name is NULL");
    const st_entry *e = st_lookup(st, name);
    if (!e) return attn__fail(ATTN_ERR_NOT_FOUND, "tensor '%.300s' not found (the file has %lld tensors)", name,
                              (long long)st->count);
    if (out) *out = e->info;
    return ATTN_OK;
}

int64_t attn_st_metadata_count(const attn_st *st) { return st ? st->nmeta : 0; }

attn_status attn_st_metadata_entry(const attn_st *st, int64_t index, const char **key, const char **value) {
    if (!st) return attn__fail(ATTN_ERR_NULL, "attn_st_metadata_entry: st is NULL");
    if (index < 0 || index >= st->nmeta)
        return attn__fail(ATTN_ERR_NOT_FOUND, "attn_st_metadata_entry: index %lld out of range (%lld entries)",
                          (long long)index, (long long)st->nmeta);
    if (key) *key = st->meta[2 * index];
    if (value) *value = st->meta[2 * index + 1];
    return ATTN_OK;
}

const char *attn_st_metadata(const attn_st *st, const char *key) {
    if (!st || !key) return NULL;
    int64_t lo = 0, hi = st->nmeta;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->meta[2 * mid], key);
        if (c == 0) return st->meta[2 * mid + 1];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static attn_status st_read_bytes(const attn_st *st, const st_entry *e, uint64_t off, void *dst, size_t n) {
    uint64_t at = st->data_start + e->begin + off;
    if (st->mem) {
        memcpy(dst, st->mem + at, n);
        return ATTN_OK;
    }
    int r = attn__pread_full(st->fd, dst, n, at);
    if (r != 0)
        return attn__fail(ATTN_ERR_IO, "tensor '%.300s': cannot read %zu bytes at file offset %llu: %s", e->info.name,
                          n, (unsigned long long)at, r > 0 ? "unexpected end of file (file changed?)" : strerror(errno));
    return ATTN_OK;
}

static int host_is_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* The checks shared by the readers: the entry of `name` (shape and numel as
 * expected, a float dtype); *e = NULL (and ATTN_OK) when there is nothing to read. */
/* The checks of every tensor read (f64_ok 0: F64 refused too, empty tensors included);
 * *out = the entry to read, NULL when there is nothing to read (0 elements). */
static attn_status read_check(const attn_st *st, const char *fn, const char *name, const void *dst, int64_t dst_numel,
                              int ndim, const int64_t *shape, int f64_ok, const st_entry **out) {
    *out = NULL;
    if (!st) return attn__fail(ATTN_ERR_NULL, "%s: st is NULL", fn);
    if (!name) return attn__fail(ATTN_ERR_NULL, "%s: name is NULL", fn);
    if (ndim > ATTN_MAX_DIMS || ndim < -1)
        return attn__fail(ATTN_ERR_SHAPE, "%s: tensor '%.300s': ndim = %d (expected -1 or 0..%d)", fn, name,
                          ndim, ATTN_MAX_DIMS);
    if (ndim > 0 && !shape)
        return attn__fail(ATTN_ERR_NULL, "%s: tensor '%.300s': shape is NULL with ndim = %d", fn, name, ndim);
    if (dst_numel < 0)
        return attn__fail(ATTN_ERR_SHAPE, "%s: tensor '%.300s': dst_numel = %lld < 0", fn, name,
                          (long long)dst_numel);
    const st_entry *e = st_lookup(st, name);
    if (!e) return attn__fail(ATTN_ERR_NOT_FOUND, "tensor '%.300s' not found (the file has %lld tensors)", name,
                              (long long)st->count);
    const attn_tensor_info *ti = &e->info;
    if (ndim >= 0) {
        int same = ndim == ti->ndim;
        for (int i = 0; same && i < ndim; i++) same = shape[i] == ti->shape[i];
        if (!same) {
            char a[200], b[200];
            fmt_shape(a, sizeof a, ndim, shape);
            fmt_shape(b, sizeof b, ti->ndim, ti->shape);
            return attn__fail(ATTN_ERR_SHAPE, "tensor '%.300s': expected shape %s, file has %s", name, a, b);
        }
    }
    if (ti->numel != dst_numel)
        return attn__fail(ATTN_ERR_SHAPE, "tensor '%.300s': has %lld elements, the destination holds %lld", name,
                          (long long)ti->numel, (long long)dst_numel);
    if (ti->dtype != ATTN_DTYPE_F32 && ti->dtype != ATTN_DTYPE_F16 && ti->dtype != ATTN_DTYPE_BF16 &&
        ti->dtype != ATTN_DTYPE_F64)
        return attn__fail(ATTN_ERR_DTYPE, "tensor '%.300s': dtype %s cannot be converted to F32 (F32, F16, BF16, F64 can)",
                          name, ST_DTYPES[e->dtype].name);
    if (!f64_ok && ti->dtype == ATTN_DTYPE_F64)
        return attn__fail(ATTN_ERR_DTYPE, "tensor '%.300s': F64 is not read into BF16 / F16 weights (load it into an "
                          "F32 layer, or convert the file)", name);
    if (ti->numel == 0) return ATTN_OK;
    if (!dst) return attn__fail(ATTN_ERR_NULL, "%s: tensor '%.300s': dst is NULL", fn, name);
    *out = e;
    return ATTN_OK;
}

attn_status attn_st_read_f32(const attn_st *st, const char *name, float *dst, int64_t dst_numel, int ndim,
                             const int64_t *shape) {
    const st_entry *e;
    attn_status s = read_check(st, "attn_st_read_f32", name, dst, dst_numel, ndim, shape, 1, &e);
    if (s != ATTN_OK || !e) return s;
    const attn_tensor_info *ti = &e->info;
    size_t n = (size_t)ti->numel; /* numel * itemsize <= file size, so this fits */
    size_t isz = (size_t)ST_DTYPES[e->dtype].bits / 8;
    if (ti->dtype == ATTN_DTYPE_F32) {
        if ((s = st_read_bytes(st, e, 0, dst, n * 4)) != ATTN_OK) return s;
        if (!host_is_le()) {
            unsigned char *b = (unsigned char *)dst;
            for (size_t i = 0; i < n; i++) {
                uint32_t u = attn__ld_le32(b + 4 * i);
                memcpy(b + 4 * i, &u, 4);
            }
        }
        return ATTN_OK;
    }
    /* converted dtypes: go through a bounce buffer */
    unsigned char buf[16384];
    size_t per = sizeof buf / isz;
    for (size_t i0 = 0; i0 < n; i0 += per) {
        size_t m = n - i0 < per ? n - i0 : per;
        if ((s = st_read_bytes(st, e, (uint64_t)i0 * isz, buf, m * isz)) != ATTN_OK) return s;
        float *o = dst + i0;
        if (ti->dtype == ATTN_DTYPE_F16) {
            for (size_t i = 0; i < m; i++) o[i] = attn__f16_to_f32(attn__ld_le16(buf + 2 * i));
        } else if (ti->dtype == ATTN_DTYPE_BF16) {
            for (size_t i = 0; i < m; i++) o[i] = attn__bf16_to_f32(attn__ld_le16(buf + 2 * i));
        } else {
            for (size_t i = 0; i < m; i++) {
                uint64_t u = attn__ld_le64(buf + 8 * i);
                double d;
                memcpy(&d, &u, 8);
                o[i] = (float)d;
            }
        }
    }
    return ATTN_OK;
}

/* One element of a float tensor (little-endian bytes b of type t) as fp32: exact but for F64. */
static float elem_f32(const unsigned char *b, attn_dtype t) {
    if (t == ATTN_DTYPE_F16) return attn__f16_to_f32(attn__ld_le16(b));
    if (t == ATTN_DTYPE_BF16) return attn__bf16_to_f32(attn__ld_le16(b));
    return attn__bits_f32(attn__ld_le32(b));
}

attn_status attn__st_read_16(const attn_st *st, const char *name, uint16_t *dst, attn_dtype dt, int64_t dst_numel,
                             int ndim, const int64_t *shape) {
    if (dt != ATTN_DTYPE_BF16 && dt != ATTN_DTYPE_F16)
        return attn__fail(ATTN_ERR_INTERNAL, "attn__st_read_16: destination dtype %d", (int)dt);
    const st_entry *e;
    attn_status s = read_check(st, "attn__st_read_16", name, dst, dst_numel, ndim, shape, 0, &e);
    if (s != ATTN_OK || !e) return s;
    const attn_dtype src = e->info.dtype;
    const size_t n = (size_t)e->info.numel, isz = (size_t)ST_DTYPES[e->dtype].bits / 8;
    unsigned char buf[16384];
    const size_t per = sizeof buf / isz;
    for (size_t i0 = 0; i0 < n; i0 += per) {
        const size_t m = n - i0 < per ? n - i0 : per;
        if ((s = st_read_bytes(st, e, (uint64_t)i0 * isz, buf, m * isz)) != ATTN_OK) return s;
        uint16_t *o = dst + i0;
        if (src == dt) { /* the layer's own type: the bits as stored */
            for (size_t i = 0; i < m; i++) o[i] = attn__ld_le16(buf + 2 * i);
            continue;
        }
        for (size_t i = 0; i < m; i++) { /* widen exactly, round once */
            const float f = elem_f32(buf + isz * i, src);
            const uint16_t h = dt == ATTN_DTYPE_BF16 ? attn__f32_to_bf16(f) : attn__f32_to_f16(f);
            if (dt == ATTN_DTYPE_F16 && (h & 0x7fffu) == 0x7c00u && (attn__f32_bits(f) & 0x7f800000u) != 0x7f800000u)
                return attn__fail(ATTN_ERR_DTYPE, "tensor '%.300s': element %zu = %g is outside the F16 range "
                                  "(|x| < 65520)", name, i0 + i, (double)f);
            o[i] = h;
        }
    }
    return ATTN_OK;
}

/* ═══ writer ═════════════════════════════════════════════════════════════ */
typedef struct wt_entry {
    char *name;
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
    int64_t numel;
    float *data;
} wt_entry;

struct attn_st_writer {
    wt_entry *v;
    size_t n, cap;
    char **meta; /* key, value pairs */
    size_t nmeta, capmeta;
};

attn_status attn_st_writer_create(attn_st_writer **out) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_create: out is NULL");
    attn_st_writer *w = (attn_st_writer *)attn__calloc(1, sizeof *w);
    if (!w) return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_create: out of memory");
    *out = w;
    return ATTN_OK;
}

void attn_st_writer_free(attn_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        attn__free(w->v[i].name);
        attn__free(w->v[i].data);
    }
    attn__free(w->v);
    for (size_t i = 0; i < 2 * w->nmeta; i++) attn__free(w->meta[i]);
    attn__free(w->meta);
    attn__free(w);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s);
    char *p = (char *)attn__malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

attn_status attn_st_writer_set_metadata(attn_st_writer *w, const char *key, const char *value) {
    if (!w) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_set_metadata: w is NULL");
    if (!key) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_set_metadata: key is NULL");
    if (!value) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_set_metadata: value is NULL");
    if (!key[0]) return attn__fail(ATTN_ERR_OPTION, "attn_st_writer_set_metadata: empty key");
    if (!attn__json_utf8_valid(key, strlen(key)))
        return attn__fail(ATTN_ERR_OPTION, "attn_st_writer_set_metadata: key '%.200s' is not valid UTF-8", key);
    if (!attn__json_utf8_valid(value, strlen(value)))
        return attn__fail(ATTN_ERR_OPTION, "attn_st_writer_set_metadata: value of '%.200s' is not valid UTF-8", key);
    char *v = str_dup(value);
    if (!v) return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_set_metadata: out of memory");
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[2 * i], key) == 0) {
            attn__free(w->meta[2 * i + 1]);
            w->meta[2 * i + 1] = v;
            return ATTN_OK;
        }
    if (w->nmeta == w->capmeta) {
        size_t cap = w->capmeta ? 2 * w->capmeta : 8;
        char **nm = (char **)attn__calloc(2 * cap, sizeof *nm);
        if (!nm) { attn__free(v); return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_set_metadata: out of memory"); }
        if (w->nmeta) memcpy(nm, w->meta, 2 * w->nmeta * sizeof *nm);
        attn__free(w->meta);
        w->meta = nm;
        w->capmeta = cap;
    }
    char *k = str_dup(key);
    if (!k) { attn__free(v); return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_set_metadata: out of memory"); }
    w->meta[2 * w->nmeta] = k;
    w->meta[2 * w->nmeta + 1] = v;
    w->nmeta++;
    return ATTN_OK;
}

attn_status attn_st_writer_add_f32(attn_st_writer *w, const char *name, const float *data, int ndim,
                                   const int64_t *shape) {
    if (!w) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_add_f32: w is NULL");
    if (!name) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_add_f32: name is NULL");
    size_t nlen = strlen(name);
    if (nlen == 0) return attn__fail(ATTN_ERR_OPTION, "attn_st_writer_add_f32: empty tensor name");
    if (!attn__json_utf8_valid(name, nlen))
        return attn__fail(ATTN_ERR_OPTION, "attn_st_writer_add_f32: tensor name '%.300s' is not valid UTF-8", name);
    if (strcmp(name, "__metadata__") == 0)
        return attn__fail(ATTN_ERR_OPTION, "attn_st_writer_add_f32: '__metadata__' is reserved, not a tensor name");
    if (ndim < 0 || ndim > ATTN_MAX_DIMS)
        return attn__fail(ATTN_ERR_SHAPE, "attn_st_writer_add_f32: tensor '%.300s': ndim = %d (expected 0..%d)", name,
                          ndim, ATTN_MAX_DIMS);
    if (ndim > 0 && !shape)
        return attn__fail(ATTN_ERR_NULL, "attn_st_writer_add_f32: tensor '%.300s': shape is NULL", name);
    uint64_t numel = 1;
    int big = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return attn__fail(ATTN_ERR_SHAPE, "attn_st_writer_add_f32: tensor '%.300s': shape[%d] = %lld < 0", name, i,
                              (long long)shape[i]);
        if (shape[i] != 0 && numel > ((uint64_t)INT64_MAX / 4) / (uint64_t)shape[i]) big = 1;
        else numel *= (uint64_t)shape[i];
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) { numel = 0; big = 0; }
    if (big || numel * 4 > (uint64_t)SIZE_MAX)
        return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_add_f32: tensor '%.300s': size overflows", name);
    if (numel > 0 && !data)
        return attn__fail(ATTN_ERR_NULL, "attn_st_writer_add_f32: tensor '%.300s': data is NULL", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->v[i].name, name) == 0)
            return attn__fail(ATTN_ERR_OPTION, "attn_st_writer_add_f32: duplicate tensor name '%.300s'", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wt_entry *nv = (wt_entry *)attn__calloc(cap, sizeof *nv);
        if (!nv) return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_add_f32: out of memory");
        if (w->n) memcpy(nv, w->v, w->n * sizeof *nv);
        attn__free(w->v);
        w->v = nv;
        w->cap = cap;
    }
    wt_entry *e = &w->v[w->n];
    memset(e, 0, sizeof *e);
    e->name = (char *)attn__malloc(nlen + 1);
    e->data = numel ? (float *)attn__malloc((size_t)numel * 4) : NULL;
    if (!e->name || (numel && !e->data)) {
        attn__free(e->name); attn__free(e->data);
        e->name = NULL; e->data = NULL;
        return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_add_f32: tensor '%.300s': out of memory (%llu bytes)", name,
                          (unsigned long long)numel * 4);
    }
    memcpy(e->name, name, nlen + 1);
    if (numel) memcpy(e->data, data, (size_t)numel * 4);
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->numel = (int64_t)numel;
    w->n++;
    return ATTN_OK;
}

/* growable byte buffer for the header */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) {
            if (cap > SIZE_MAX / 2) { b->oom = 1; return; }
            cap *= 2;
        }
        char *np = (char *)attn__malloc(cap);
        if (!np) { b->oom = 1; return; }
        if (b->n) memcpy(np, b->p, b->n);
        attn__free(b->p);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_fmt_u64(sbuf *b, uint64_t v) {
    char t[32];
    int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    sb_put(b, t, (size_t)k);
}
/* JSON string literal of a (valid UTF-8) name */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') sb_put(b, "\\\"", 2);
        else if (c == '\\') sb_put(b, "\\\\", 2);
        else if (c < 0x20) {
            char t[8];
            snprintf(t, sizeof t, "\\u%04x", c);
            sb_put(b, t, 6);
        } else sb_put(b, (const char *)s, 1);
    }
    sb_put(b, "\"", 1);
}

static int cmp_wt_name(const void *ctx, uint32_t a, uint32_t b) {
    const wt_entry *v = (const wt_entry *)ctx;
    return strcmp(v[a].name, v[b].name);
}
static int cmp_wt_meta(const void *ctx, uint32_t a, uint32_t b) {
    char *const *m = (char *const *)ctx;
    return strcmp(m[2 * a], m[2 * b]);
}

attn_status attn_st_writer_save(const attn_st_writer *w, const char *path) {
    if (!w) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_save: w is NULL");
    if (!path) return attn__fail(ATTN_ERR_NULL, "attn_st_writer_save: path is NULL");
    if (w->n > UINT32_MAX) return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_save: too many tensors");
    uint32_t *order = w->n ? (uint32_t *)attn__calloc(w->n, sizeof *order) : NULL;
    if (w->n && !order) return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_save: out of memory");
    for (size_t i = 0; i < w->n; i++) order[i] = (uint32_t)i;
    idx_sort(order, w->n, cmp_wt_name, w->v);

    /* header: metadata sorted by key, tensors sorted by name, contiguous data, padded to 8 bytes */
    sbuf b = { 0 };
    uint32_t *morder = w->nmeta ? (uint32_t *)attn__calloc(w->nmeta, sizeof *morder) : NULL;
    if (w->nmeta && !morder) b.oom = 1;
    int has_format = 0;
    for (size_t i = 0; i < w->nmeta && morder; i++) {
        morder[i] = (uint32_t)i;
        if (strcmp(w->meta[2 * i], "format") == 0) has_format = 1;
    }
    if (morder) idx_sort(morder, w->nmeta, cmp_wt_meta, w->meta);
    sb_str(&b, "{\"__metadata__\":{");
    int first = 1;
    for (size_t i = 0; i <= w->nmeta && morder; i++) {
        /* "format": "pt" at its sorted place unless the caller set "format" */
        if (!has_format && (i == w->nmeta || strcmp(w->meta[2 * morder[i]], "format") > 0)) {
            sb_str(&b, first ? "\"format\":\"pt\"" : ",\"format\":\"pt\"");
            first = 0;
            has_format = 1;
        }
        if (i == w->nmeta) break;
        if (!first) sb_str(&b, ",");
        first = 0;
        sb_json_str(&b, w->meta[2 * morder[i]]);
        sb_str(&b, ":");
        sb_json_str(&b, w->meta[2 * morder[i] + 1]);
    }
    if (!w->nmeta) sb_str(&b, "\"format\":\"pt\"");
    sb_str(&b, "}");
    attn__free(morder);
    uint64_t off = 0;
    for (size_t j = 0; j < w->n; j++) {
        const wt_entry *e = &w->v[order[j]];
        sb_str(&b, ",");
        sb_json_str(&b, e->name);
        sb_str(&b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int i = 0; i < e->ndim; i++) {
            if (i) sb_str(&b, ",");
            sb_fmt_u64(&b, (uint64_t)e->shape[i]);
        }
        sb_str(&b, "],\"data_offsets\":[");
        sb_fmt_u64(&b, off);
        sb_str(&b, ",");
        uint64_t bytes = (uint64_t)e->numel * 4;
        if (off > UINT64_MAX - bytes) { b.oom = 1; break; }
        off += bytes;
        sb_fmt_u64(&b, off);
        sb_str(&b, "]}");
    }
    sb_str(&b, "}");
    while (!b.oom && b.n % 8) sb_str(&b, " ");
    if (b.oom) {
        attn__free(b.p);
        attn__free(order);
        return attn__fail(ATTN_ERR_NOMEM, "attn_st_writer_save: out of memory building the header");
    }
    if (b.n > ST_MAX_HEADER) {
        attn__free(b.p);
        attn__free(order);
        return attn__fail(ATTN_ERR_CAPACITY, "attn_st_writer_save: header of %zu bytes exceeds the format limit of %u",
                          b.n, ST_MAX_HEADER);
    }

    attn_afile f;
    attn_status s = attn__afile_open(&f, path);
    if (s != ATTN_OK) {
        attn__free(b.p);
        attn__free(order);
        return s;
    }
    unsigned char p8[8];
    attn__st_le64(p8, (uint64_t)b.n);
    attn__afile_write(&f, p8, 8);
    attn__afile_write(&f, b.p, b.n);
    int le = host_is_le();
    for (size_t j = 0; j < w->n; j++) {
        const wt_entry *e = &w->v[order[j]];
        size_t n = (size_t)e->numel;
        if (le) {
            if (n) attn__afile_write(&f, e->data, 4 * n);
        } else {
            unsigned char t[4096];
            for (size_t i0 = 0; i0 < n; i0 += sizeof t / 4) {
                size_t m = n - i0 < sizeof t / 4 ? n - i0 : sizeof t / 4;
                for (size_t i = 0; i < m; i++) {
                    uint32_t u;
                    memcpy(&u, &e->data[i0 + i], 4);
                    attn__st_le32(t + 4 * i, u);
                }
                attn__afile_write(&f, t, 4 * m);
            }
        }
    }
    attn__free(b.p);
    attn__free(order);
    return attn__afile_commit(&f);
}
