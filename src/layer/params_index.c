/* SPDX-License-Identifier: MIT */
/* params_index.c — attn_mha_load_index: one layer from a sharded checkpoint.
 *
 * model.safetensors.index.json (transformers' save_pretrained of a large
 * model) is {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>"}}.
 * The entries under "<prefix>." name the shards to open, each as a normal
 * safetensors file (attn_st_open: fully validated), from the index's
 * directory; attn_mha_load then finds every tensor in the shard the index
 * names. The index is untrusted: a shard name must be a plain file name (no
 * '/', not "." or ".."); at most ATTN_INDEX_MAX_SHARDS shards are opened. */
#include "io/file.h"
#include "io/json.h"
#include "layer/mha_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INDEX_MAX_BYTES ((size_t)64 << 20)
#define INDEX_MAX_SHARDS 256

typedef struct index_load {
    char *dir;                 /* the index's directory, with a trailing '/' (or "") */
    int64_t n;                 /* tensors under the prefix */
    char **names;              /* (n) */
    const attn_st **st_of;     /* (n) */
    int nshards;
    char *shard_name[INDEX_MAX_SHARDS];
    attn_st *shard[INDEX_MAX_SHARDS];
} index_load;

static void index_free(index_load *x) {
    for (int64_t i = 0; i < x->n; i++) free(x->names[i]);
    free(x->names);
    free(x->st_of);
    for (int i = 0; i < x->nshards; i++) {
        free(x->shard_name[i]);
        attn_st_free(x->shard[i]);
    }
    free(x->dir);
}

static int shard_name_ok(const char *s, size_t n) {
    if (n == 0 || n > 255 || strlen(s) != n) return 0;
    if (!strcmp(s, ".") || !strcmp(s, "..")) return 0;
    return strchr(s, '/') == NULL;
}

/* the opened shard called name (opening it on first use) */
static attn_status shard_of(index_load *x, const char *path, const char *name, const attn_st **out) {
    for (int i = 0; i < x->nshards; i++)
        if (!strcmp(x->shard_name[i], name)) {
            *out = x->shard[i];
            return ATTN_OK;
        }
    if (x->nshards == INDEX_MAX_SHARDS)
        return attn__fail(ATTN_ERR_CAPACITY, "%s: the layer's tensors are spread over more than %d shards", path,
                          INDEX_MAX_SHARDS);
    size_t n = strlen(x->dir) + strlen(name) + 1;
    char *full = (char *)malloc(n);
    char *nm = strdup(name);
    if (!full || !nm) {
        free(full);
        free(nm);
        return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(full, n, "%s%s", x->dir, name);
    attn_st *st = NULL;
    attn_status s = attn_st_open(&st, full);
    free(full);
    if (s != ATTN_OK) {
        free(nm);
        return s; /* the message names the shard */
    }
    x->shard_name[x->nshards] = nm;
    x->shard[x->nshards++] = st;
    *out = st;
    return ATTN_OK;
}

/* the weight_map entries under prefix: names and their shards */
static attn_status index_collect(index_load *x, const char *path, attn_json map, const char *prefix) {
    const size_t pl = prefix ? strlen(prefix) : 0;
    const size_t count = attn__json_count(map);
    x->names = (char **)calloc(count ? count : 1, sizeof(char *));
    x->st_of = (const attn_st **)calloc(count ? count : 1, sizeof(attn_st *));
    if (!x->names || !x->st_of) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path);
    attn_json_iter it;
    attn_json k, v;
    attn__json_iter_init(&it, map);
    while (attn__json_next(&it, &k, &v)) {
        char name[512], shard[260];
        size_t kn = attn__json_str_get(k, name, sizeof name);
        if (kn >= sizeof name || strlen(name) != kn) continue; /* longer than any name the layer asks for */
        if (pl && (strncmp(name, prefix, pl) != 0 || name[pl] != '.')) continue;
        if (v.type != ATTN_JSON_STRING)
            return attn__fail(ATTN_ERR_FORMAT, "%s: 'weight_map.%s' must be a shard file name, got a %s", path, name,
                              attn__json_type_name(v.type));
        size_t sn = attn__json_str_get(v, shard, sizeof shard);
        if (sn >= sizeof shard || !shard_name_ok(shard, sn))
            return attn__fail(ATTN_ERR_FORMAT, "%s: 'weight_map.%s' = '%.80s' is not a file name in the index's directory",
                              path, name, shard);
        attn_status s = shard_of(x, path, shard, &x->st_of[x->n]);
        if (s != ATTN_OK) return s;
        if (!(x->names[x->n] = strdup(name))) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path);
        x->n++;
    }
    if (x->n == 0)
        return attn__fail(ATTN_ERR_NOT_FOUND, "%s: 'weight_map' has no tensor under '%s.'", path, prefix ? prefix : "");
    return ATTN_OK;
}

attn_status attn_mha_load_index(attn_mha *m, const char *index_path, const char *prefix, attn_naming naming) {
    if (!m) return attn__fail(ATTN_ERR_NULL, "attn_mha_load_index: m is NULL");
    if (!index_path) return attn__fail(ATTN_ERR_NULL, "attn_mha_load_index: index_path is NULL");
    if ((int)naming < 0 || naming >= ATTN_NAMING_COUNT)
        return attn__fail(ATTN_ERR_OPTION, "attn_mha_load_index: naming = %d, must be an attn_naming in [0, %d)",
                          (int)naming, (int)ATTN_NAMING_COUNT);
    index_load x;
    memset(&x, 0, sizeof x);
    char *path = NULL, *buf = NULL;
    size_t n = strlen(index_path);
    struct stat sb;
    const int is_dir = stat(index_path, &sb) == 0 && S_ISDIR(sb.st_mode);
    path = (char *)malloc(n + 40);
    x.dir = (char *)malloc(n + 2);
    attn_status s = ATTN_OK;
    if (!path || !x.dir) {
        s = attn__fail(ATTN_ERR_NOMEM, "attn_mha_load_index: out of memory");
        goto done;
    }
    snprintf(path, n + 40, is_dir ? "%s/model.safetensors.index.json" : "%s", index_path);
    snprintf(x.dir, n + 2, "%s", path);
    char *slash = strrchr(x.dir, '/');
    if (slash) slash[1] = 0;
    else x.dir[0] = 0;
    if ((s = attn__file_read_all(path, INDEX_MAX_BYTES, &buf, &n)) != ATTN_OK) goto done;
    attn_json root, map;
    attn_json_error je;
    if (attn__json_parse(buf, n, &root, &je) != 0) {
        s = attn__fail(ATTN_ERR_FORMAT, "%s: invalid JSON: %s at byte %zu", path, je.msg, je.offset);
        goto done;
    }
    int r = root.type == ATTN_JSON_OBJECT ? attn__json_get(root, "weight_map", &map) : 0;
    if (r != 1 || map.type != ATTN_JSON_OBJECT) {
        s = attn__fail(ATTN_ERR_FORMAT, "%s: %s", path,
                       r < 0 ? "duplicate key 'weight_map'" : "no 'weight_map' object (not a safetensors index)");
        goto done;
    }
    attn_json dup;
    r = attn__json_find_dup_key(map, &dup);
    if (r != 0) {
        char k[128];
        if (r > 0) attn__json_str_get(dup, k, sizeof k);
        s = r < 0 ? attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path)
                  : attn__fail(ATTN_ERR_FORMAT, "%s: duplicate key 'weight_map.%s'", path, k);
        goto done;
    }
    if ((s = index_collect(&x, path, map, prefix)) != ATTN_OK) goto done;
    mha_src src = {NULL, x.n, (const char *const *)x.names, x.st_of};
    s = mha__load(m, &src, prefix, naming);
done:
    index_free(&x);
    attn__free(buf);
    free(path);
    return s;
}
