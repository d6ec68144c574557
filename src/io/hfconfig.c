/* SPDX-License-Identifier: MIT */
/* hfconfig.c — HuggingFace config.json -> attn_mha_config, driven by the
 * architecture table src/models/hf_arch.c (which keys each model_type reads,
 * ignores and refuses; transformers' class defaults for absent keys).
 *
 * Steps (hf_parse):
 *   1. JSON, duplicate keys; "text_config" replaces the top level when the
 *      top level has no hidden size (multimodal wrappers);
 *   2. the architecture: model_type (or the caller's override), else refused
 *      with the supported list;
 *   3. every key of the (text) config is classified: READ, IGNORED (common
 *      or per architecture) or REFUSED-unless-value; anything else is
 *      refused unless opts.allow_unknown_keys;
 *   4. the sizes, biases, qk-norm, Gemma scalars, dropout (one per model);
 *   5. per layer: sliding or full (layer_types, max_window_layers, the Gemma
 *      pattern), its window, its RoPE (rope_parameters of transformers 5, per
 *      layer type for Gemma 3; rope_theta + rope_scaling of transformers 4;
 *      both must agree when both are written);
 *   6. without a chosen layer, every layer must come out the same.
 * Errors: invalid JSON, wrong JSON types and duplicate keys -> ATTN_ERR_FORMAT;
 * a missing required key -> ATTN_ERR_NOT_FOUND; values out of range or layers
 * that differ -> ATTN_ERR_CONFIG; an unknown model_type / key or an
 * unimplemented value -> ATTN_ERR_UNSUPPORTED. Each message is one line
 * naming the key. *out is written only on success. */
#include "core/core.h"
#include "io/file.h"
#include "io/json.h"
#include "models/hf_arch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_CONFIG ((size_t)16 << 20) /* 16 MiB */

typedef struct hf {
    const char *src;
    const hf_arch *a;  /* the architecture's table entry */
    attn_json root;    /* the config object read (the top level or text_config) */
    const char *where; /* "" or "text_config." (prefix of key names in messages) */
    int allow_unknown;
} hf;

/* the value of key in obj: 1 present (not null), 0 absent or null */
static attn_status hf_get(const hf *h, attn_json obj, const char *where, const char *key, attn_json *v, int *present) {
    int r = attn__json_get(obj, key, v);
    if (r < 0) return attn__fail(ATTN_ERR_FORMAT, "%s: duplicate key '%s%s'", h->src, where, key);
    *present = r > 0 && v->type != ATTN_JSON_NULL;
    return ATTN_OK;
}

static attn_status hf_int(const hf *h, attn_json obj, const char *where, const char *key, int required, int64_t min,
                          int64_t *out, int *present) {
    attn_json v;
    int have;
    attn_status s = hf_get(h, obj, where, key, &v, &have);
    if (s != ATTN_OK) return s;
    if (present) *present = have;
    if (!have) {
        if (required) return attn__fail(ATTN_ERR_NOT_FOUND, "%s: required key '%s%s' is missing", h->src, where, key);
        return ATTN_OK;
    }
    if (v.type != ATTN_JSON_NUMBER)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%s%s' must be an integer, got a %s", h->src, where, key,
                          attn__json_type_name(v.type));
    attn_json_num n;
    attn__json_num(v, &n);
    if (!n.is_int) return attn__fail(ATTN_ERR_FORMAT, "%s: '%s%s' must be an integer, got %.17g", h->src, where, key, n.d);
    if (n.i < min)
        return attn__fail(ATTN_ERR_CONFIG, "%s: '%s%s' = %lld, must be >= %lld", h->src, where, key, (long long)n.i,
                          (long long)min);
    *out = n.i;
    return ATTN_OK;
}

/* number in [lo, hi] (hi_open: [lo, hi)) or (lo, hi] when lo_open */
static attn_status hf_num(const hf *h, attn_json obj, const char *where, const char *key, int required, double lo,
                          int lo_open, double hi, int hi_open, double *out, int *present) {
    attn_json v;
    int have;
    attn_status s = hf_get(h, obj, where, key, &v, &have);
    if (s != ATTN_OK) return s;
    if (present) *present = have;
    if (!have) {
        if (required) return attn__fail(ATTN_ERR_NOT_FOUND, "%s: required key '%s%s' is missing", h->src, where, key);
        return ATTN_OK;
    }
    if (v.type != ATTN_JSON_NUMBER)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%s%s' must be a number, got a %s", h->src, where, key,
                          attn__json_type_name(v.type));
    attn_json_num n;
    attn__json_num(v, &n);
    double d = n.d;
    double f = (double)(float)d; /* the value is stored as a float: check that too */
    int ok = isfinite(d) && (lo_open ? d > lo : d >= lo) && (hi_open ? d < hi : d <= hi) &&
             (lo_open ? f > lo : f >= lo) && (hi_open ? f < hi : f <= hi);
    if (!ok)
        return attn__fail(ATTN_ERR_CONFIG, "%s: '%s%s' = %g, must be in %c%g, %g%c", h->src, where, key, d,
                          lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
    *out = d;
    return ATTN_OK;
}

static attn_status hf_bool(const hf *h, attn_json obj, const char *where, const char *key, int *out, int *present) {
    attn_json v;
    int have;
    attn_status s = hf_get(h, obj, where, key, &v, &have);
    if (s != ATTN_OK) return s;
    if (present) *present = have;
    if (!have) return ATTN_OK;
    if (v.type != ATTN_JSON_TRUE && v.type != ATTN_JSON_FALSE)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%s%s' must be true or false, got a %s", h->src, where, key,
                          attn__json_type_name(v.type));
    *out = v.type == ATTN_JSON_TRUE;
    return ATTN_OK;
}

/* string value into buf (truncated); present = 0 when absent or null */
static attn_status hf_str(const hf *h, attn_json obj, const char *where, const char *key, char *buf, size_t cap,
                          int *present) {
    attn_json v;
    attn_status s = hf_get(h, obj, where, key, &v, present);
    if (s != ATTN_OK) return s;
    if (!*present) return ATTN_OK;
    if (v.type != ATTN_JSON_STRING)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%s%s' must be a string, got a %s", h->src, where, key,
                          attn__json_type_name(v.type));
    size_t n = attn__json_str_get(v, buf, cap);
    /* a NUL inside must not make "linear\u0000x" compare equal to "linear": show it as '?'
       (a truncated value is longer than every name compared against, so it matches nothing) */
    for (size_t i = 0; i < n && i + 1 < cap; i++)
        if (buf[i] == 0) buf[i] = '?';
    return ATTN_OK;
}

static attn_status check_dups(const hf *h, attn_json obj, const char *where) {
    attn_json dup;
    int r = attn__json_find_dup_key(obj, &dup);
    if (r < 0) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", h->src);
    if (r > 0) {
        char k[80];
        attn__json_str_get(dup, k, sizeof k);
        return attn__fail(ATTN_ERR_FORMAT, "%s: duplicate key '%s%s'", h->src, where, k);
    }
    return ATTN_OK;
}

/* 0 absent, 1 null, 2 a value */
static int key_state(attn_json obj, const char *key, attn_json *v) {
    int r = attn__json_get(obj, key, v);
    if (r == 0) return 0;
    return v->type == ATTN_JSON_NULL ? 1 : 2;
}

static int in_list(const char *const *list, const char *key) {
    for (; list && *list; list++)
        if (strcmp(*list, key) == 0) return 1;
    return 0;
}

/* a short printable form of a JSON value for messages */
static void value_str(attn_json v, char *buf, size_t cap) {
    switch (v.type) {
    case ATTN_JSON_NULL: snprintf(buf, cap, "null"); break;
    case ATTN_JSON_TRUE: snprintf(buf, cap, "true"); break;
    case ATTN_JSON_FALSE: snprintf(buf, cap, "false"); break;
    case ATTN_JSON_NUMBER: {
        attn_json_num n;
        attn__json_num(v, &n);
        snprintf(buf, cap, "%.17g", n.d);
        break;
    }
    case ATTN_JSON_STRING: {
        char t[64];
        size_t n = attn__json_str_get(v, t, sizeof t);
        for (size_t i = 0; i < n && i + 1 < sizeof t; i++)
            if ((unsigned char)t[i] < 32) t[i] = '?';
        snprintf(buf, cap, "'%s%s'", t, n >= sizeof t ? "..." : "");
        break;
    }
    default: snprintf(buf, cap, "a %s of %zu", attn__json_type_name(v.type), attn__json_count(v)); break;
    }
}

/* v matches the refusal's ok spelling: false / true / {} / [] / "string" */
static int value_is(attn_json v, const char *ok) {
    if (strcmp(ok, "false") == 0) return v.type == ATTN_JSON_FALSE;
    if (strcmp(ok, "true") == 0) return v.type == ATTN_JSON_TRUE;
    if (strcmp(ok, "{}") == 0) return v.type == ATTN_JSON_OBJECT && attn__json_count(v) == 0;
    if (strcmp(ok, "[]") == 0) return v.type == ATTN_JSON_ARRAY && attn__json_count(v) == 0;
    if (ok[0] == '"' && v.type == ATTN_JSON_STRING) {
        char t[64];
        size_t n = strlen(ok);
        if (n < 2 || n - 2 >= sizeof t) return 0;
        memcpy(t, ok + 1, n - 2);
        t[n - 2] = 0;
        return attn__json_str_eq(v, t);
    }
    return 0;
}

/* keys every architecture refuses unless harmless */
static const hf_refusal common_refused[] = {{"pruned_heads", "{}"}, {"quantization_config", "-"}, {NULL, NULL}};

static const hf_refusal *find_refusal(const hf_refusal *list, const char *key) {
    for (; list && list->key; list++)
        if (strcmp(list->key, key) == 0) return list;
    return NULL;
}

/* Step 3: every key of obj is read, ignored or refused (see hf_arch.h). */
static attn_status classify_keys(const hf *h, attn_json obj) {
    attn_json_iter it;
    attn_json k, v;
    attn__json_iter_init(&it, obj);
    while (attn__json_next(&it, &k, &v)) {
        char key[96];
        size_t n = attn__json_str_get(k, key, sizeof key);
        int clean = n < sizeof key && strlen(key) == n;
        const hf_refusal *r = clean ? find_refusal(h->a->refused, key) : NULL;
        if (clean && !r) r = find_refusal(common_refused, key);
        if (r) {
            if (v.type == ATTN_JSON_NULL || value_is(v, r->ok)) continue;
            char vs[96];
            value_str(v, vs, sizeof vs);
            if (strcmp(r->ok, "-") == 0)
                return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: '%s%s' = %s is not supported for %s (supported: null or absent)",
                                  h->src, h->where, key, vs, h->a->model_type);
            return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: '%s%s' = %s is not supported for %s (supported: %s)", h->src,
                              h->where, key, vs, h->a->model_type, r->ok);
        }
        if (clean && (strcmp(key, "model_type") == 0 || in_list(h->a->read, key) || in_list(h->a->ignored, key) ||
                      in_list(attn__hf_common_ignored, key)))
            continue;
        if (h->allow_unknown) continue;
        char vs[96];
        value_str(v, vs, sizeof vs);
        for (size_t i = 0; i < sizeof key && key[i]; i++)
            if ((unsigned char)key[i] < 32) key[i] = '?';
        return attn__fail(ATTN_ERR_UNSUPPORTED,
                          "%s: key '%s%s'%s = %s is not known for %s, so attn cannot tell whether it changes attention "
                          "(the keys read, ignored and refused are listed in docs/hf.md; allow_unknown_keys / "
                          "--allow-unknown-keys ignores it)",
                          h->src, h->where, key, clean ? "" : "...", vs, h->a->model_type);
    }
    return ATTN_OK;
}

/* ─── RoPE ─────────────────────────────────────────────────────────────── */
typedef struct hf_rope {
    double theta;
    int scaling;             /* attn_rope_scaling */
    double factor, low, high;
    int64_t orig;
    double partial;          /* 0 = not given here */
    /* dynamic / yarn / longrope */
    int has_factor;          /* yarn / longrope: factor given (else max_position_embeddings / orig) */
    double attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim;
    int no_truncate;
    int n_short, n_long;     /* longrope: entries in short / long */
    float shortf[128], longf[128];
} hf_rope;

/* an array of numbers > 0 (at most cap) into dst */
static attn_status hf_factors(const hf *h, attn_json o, const char *where, const char *key, float *dst, int cap, int *n) {
    attn_json v, e;
    int have;
    attn_status s = hf_get(h, o, where, key, &v, &have);
    if (s != ATTN_OK) return s;
    if (!have) return attn__fail(ATTN_ERR_NOT_FOUND, "%s: required key '%s%s' is missing", h->src, where, key);
    if (v.type != ATTN_JSON_ARRAY)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%s%s' must be an array of numbers, got a %s", h->src, where, key,
                          attn__json_type_name(v.type));
    attn_json_iter it;
    attn__json_iter_init(&it, v);
    *n = 0;
    while (attn__json_next(&it, NULL, &e)) {
        attn_json_num num;
        if (e.type != ATTN_JSON_NUMBER)
            return attn__fail(ATTN_ERR_FORMAT, "%s: '%s%s[%d]' must be a number, got a %s", h->src, where, key, *n,
                              attn__json_type_name(e.type));
        attn__json_num(e, &num);
        if (!(isfinite(num.d) && num.d > 0 && (float)num.d > 0 && isfinite((float)num.d)))
            return attn__fail(ATTN_ERR_CONFIG, "%s: '%s%s[%d]' = %g, must be > 0", h->src, where, key, *n, num.d);
        if (*n >= cap)
            return attn__fail(ATTN_ERR_CONFIG, "%s: '%s%s' has more than %d entries", h->src, where, key, cap);
        dst[(*n)++] = (float)num.d;
    }
    return ATTN_OK;
}

/* one rope object (rope_scaling, rope_parameters or rope_parameters.<layer type>) */
static attn_status rope_obj(const hf *h, attn_json o, const char *where, int need_type, hf_rope *r) {
    attn_status s;
    if ((s = check_dups(h, o, where)) != ATTN_OK) return s;
    if (!h->allow_unknown) {
        attn_json_iter it;
        attn_json k, v;
        attn__json_iter_init(&it, o);
        while (attn__json_next(&it, &k, &v)) {
            char key[64];
            size_t n = attn__json_str_get(k, key, sizeof key);
            if (n < sizeof key && strlen(key) == n && in_list(attn__hf_rope_keys, key)) continue;
            for (size_t i = 0; i < sizeof key && key[i]; i++)
                if ((unsigned char)key[i] < 32) key[i] = '?';
            return attn__fail(ATTN_ERR_UNSUPPORTED,
                              "%s: key '%s%s' is not known in a rope object (supported: rope_type, type, rope_theta, "
                              "factor, low_freq_factor, high_freq_factor, original_max_position_embeddings, "
                              "partial_rotary_factor, attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim, "
                              "truncate, short_factor, long_factor)", h->src, where, key);
        }
    }
    char type[32];
    int have;
    double d;
    int64_t i;
    if ((s = hf_num(h, o, where, "rope_theta", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
    if (have) r->theta = d;
    if ((s = hf_num(h, o, where, "partial_rotary_factor", 0, 0.0, 1, 1.0, 0, &d, &have)) != ATTN_OK) return s;
    if (have) r->partial = d;
    if ((s = hf_str(h, o, where, "rope_type", type, sizeof type, &have)) != ATTN_OK) return s;
    if (!have && (s = hf_str(h, o, where, "type", type, sizeof type, &have)) != ATTN_OK) return s;
    if (!have) {
        if (!need_type) return ATTN_OK;
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: '%.*s' has no 'rope_type' (or 'type')", h->src,
                          (int)(strlen(where) ? strlen(where) - 1 : 0), where);
    }
    if (strcmp(type, "default") == 0) {
        r->scaling = ATTN_ROPE_SCALING_NONE;
    } else if (strcmp(type, "linear") == 0) {
        r->scaling = ATTN_ROPE_SCALING_LINEAR;
        if ((s = hf_num(h, o, where, "factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        r->factor = d;
    } else if (strcmp(type, "llama3") == 0) {
        r->scaling = ATTN_ROPE_SCALING_LLAMA3;
        if ((s = hf_num(h, o, where, "factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        r->factor = d;
        if ((s = hf_num(h, o, where, "low_freq_factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        r->low = d;
        if ((s = hf_num(h, o, where, "high_freq_factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        r->high = d;
        if ((s = hf_int(h, o, where, "original_max_position_embeddings", 1, 1, &i, NULL)) != ATTN_OK) return s;
        r->orig = i;
    } else if (strcmp(type, "dynamic") == 0) {
        r->scaling = ATTN_ROPE_SCALING_DYNAMIC;
        if ((s = hf_num(h, o, where, "factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        r->factor = d;
    } else if (strcmp(type, "yarn") == 0 || strcmp(type, "longrope") == 0) {
        const int yarn = type[0] == 'y';
        r->scaling = yarn ? ATTN_ROPE_SCALING_YARN : ATTN_ROPE_SCALING_LONGROPE;
        if ((s = hf_num(h, o, where, "factor", 0, 0.0, 1, 1e30, 0, &d, &r->has_factor)) != ATTN_OK) return s;
        if (r->has_factor) r->factor = d;
        if ((s = hf_int(h, o, where, "original_max_position_embeddings", 0, 1, &i, &have)) != ATTN_OK) return s;
        if (have) r->orig = i;
        if ((s = hf_num(h, o, where, "attention_factor", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
        if (have) r->attention_factor = d;
        if (yarn) {
            if ((s = hf_num(h, o, where, "beta_fast", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
            if (have) r->beta_fast = d;
            if ((s = hf_num(h, o, where, "beta_slow", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
            if (have) r->beta_slow = d;
            if ((s = hf_num(h, o, where, "mscale", 0, 0.0, 0, 1e30, 0, &d, &have)) != ATTN_OK) return s;
            if (have) r->mscale = d;
            if ((s = hf_num(h, o, where, "mscale_all_dim", 0, 0.0, 0, 1e30, 0, &d, &have)) != ATTN_OK) return s;
            if (have) r->mscale_all_dim = d;
            int trunc = 1;
            if ((s = hf_bool(h, o, where, "truncate", &trunc, NULL)) != ATTN_OK) return s;
            r->no_truncate = !trunc;
        } else {
            if ((s = hf_factors(h, o, where, "short_factor", r->shortf, 128, &r->n_short)) != ATTN_OK) return s;
            if ((s = hf_factors(h, o, where, "long_factor", r->longf, 128, &r->n_long)) != ATTN_OK) return s;
        }
    } else {
        return attn__fail(ATTN_ERR_UNSUPPORTED,
                          "%s: '%srope_type' = '%s': rope scaling type '%s' is not supported (supported: default, "
                          "linear, llama3, dynamic, yarn, longrope)", h->src, where, type, type);
    }
    return ATTN_OK;
}

static int rope_same(const hf_rope *a, const hf_rope *b) {
    if ((float)a->theta != (float)b->theta || a->scaling != b->scaling) return 0;
    if (a->has_factor != b->has_factor || a->orig != b->orig || a->attention_factor != b->attention_factor ||
        a->beta_fast != b->beta_fast || a->beta_slow != b->beta_slow || a->mscale != b->mscale ||
        a->mscale_all_dim != b->mscale_all_dim || a->no_truncate != b->no_truncate || a->n_short != b->n_short ||
        a->n_long != b->n_long || memcmp(a->shortf, b->shortf, sizeof a->shortf) != 0 ||
        memcmp(a->longf, b->longf, sizeof a->longf) != 0)
        return 0;
    if (a->scaling != ATTN_ROPE_SCALING_NONE && (float)a->factor != (float)b->factor) return 0;
    if (a->scaling == ATTN_ROPE_SCALING_LLAMA3 &&
        ((float)a->low != (float)b->low || (float)a->high != (float)b->high || a->orig != b->orig))
        return 0;
    return 1;
}

static const char *theta_key(const hf_arch *a) { return a->theta_key ? a->theta_key : "rope_theta"; }
static const char *partial_key(const hf_arch *a) { return a->partial_key ? a->partial_key : "partial_rotary_factor"; }

/* Step 5b: the RoPE of one layer. local: a sliding layer of an architecture
 * with its own local base (Gemma 3). */
static attn_status layer_rope(const hf *h, int local, hf_rope *out) {
    attn_status s;
    attn_json rs, rp, v;
    const char *w = h->where;
    char where[64];
    int has_rs = 0, has_rp = 0, have;
    double d;
    if ((s = hf_get(h, h->root, w, "rope_scaling", &rs, &has_rs)) != ATTN_OK) return s;
    if ((s = hf_get(h, h->root, w, "rope_parameters", &rp, &has_rp)) != ATTN_OK) return s;
    if (has_rs && rs.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%srope_scaling' must be an object or null, got a %s", h->src, w,
                          attn__json_type_name(rs.type));
    if (has_rp && rp.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%srope_parameters' must be an object or null, got a %s", h->src, w,
                          attn__json_type_name(rp.type));
    /* transformers 4: rope_theta (Gemma 3 sliding layers: rope_local_base_freq) + rope_scaling */
    hf_rope v4;
    memset(&v4, 0, sizeof v4);
    v4.theta = h->a->default_theta;
    int has_v4 = 0;
    if (local) {
        v4.theta = h->a->default_local_theta;
        if ((s = hf_num(h, h->root, w, "rope_local_base_freq", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
        if (have) v4.theta = d, has_v4 = 1;
    } else {
        if ((s = hf_num(h, h->root, w, theta_key(h->a), 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
        if (have) v4.theta = d, has_v4 = 1;
        if (has_rs) {
            snprintf(where, sizeof where, "%srope_scaling.", w);
            if ((s = rope_obj(h, rs, where, 1, &v4)) != ATTN_OK) return s;
            has_v4 = 1;
        }
    }
    if (!has_rp) {
        *out = v4;
        return ATTN_OK;
    }
    /* transformers 5: rope_parameters, per layer type when it holds them (Gemma 3) */
    hf_rope v5;
    memset(&v5, 0, sizeof v5);
    v5.theta = h->a->default_theta;
    const char *lt = local ? "sliding_attention" : "full_attention";
    int nested = attn__json_get(rp, "full_attention", &v) == 1 || attn__json_get(rp, "sliding_attention", &v) == 1;
    if (nested) {
        if ((s = check_dups(h, rp, "rope_parameters.")) != ATTN_OK) return s;
        attn_json_iter it;
        attn_json k;
        attn__json_iter_init(&it, rp);
        while (attn__json_next(&it, &k, &v))
            if (!attn__json_str_eq(k, "full_attention") && !attn__json_str_eq(k, "sliding_attention")) {
                char key[64];
                attn__json_str_get(k, key, sizeof key);
                return attn__fail(ATTN_ERR_UNSUPPORTED,
                                  "%s: '%srope_parameters' holds per-layer-type rope objects and '%s' is not a layer "
                                  "type attn knows (supported: full_attention, sliding_attention)", h->src, w, key);
            }
        snprintf(where, sizeof where, "%srope_parameters.%s.", w, lt);
        if (attn__json_get(rp, lt, &v) != 1 || v.type != ATTN_JSON_OBJECT)
            return attn__fail(ATTN_ERR_NOT_FOUND, "%s: '%srope_parameters' has no object '%s' for this %s layer", h->src,
                              w, lt, local ? "sliding" : "full-attention");
        if (local) v5.theta = h->a->default_local_theta;
        if ((s = rope_obj(h, v, where, 1, &v5)) != ATTN_OK) return s;
    } else {
        snprintf(where, sizeof where, "%srope_parameters.", w);
        if ((s = rope_obj(h, rp, where, 1, &v5)) != ATTN_OK) return s;
        if (local) { /* one rope object for both layer types: sliding layers still use the local base */
            v5.theta = v4.theta;
            v5.scaling = ATTN_ROPE_SCALING_NONE;
        }
    }
    if (has_v4) {
        hf_rope a = v4, b = v5;
        if (!rope_same(&a, &b))
            return attn__fail(ATTN_ERR_CONFIG,
                              "%s: '%srope_parameters' (theta %g, scaling %d, factor %g) and '%s%s' (theta %g, "
                              "scaling %d, factor %g) disagree for a %s layer", h->src, w, v5.theta, v5.scaling,
                              v5.factor, w, local ? "rope_local_base_freq" : "rope_theta'/'rope_scaling", v4.theta,
                              v4.scaling, v4.factor, local ? "sliding" : "full-attention");
    }
    if (v5.partial == 0) v5.partial = v4.partial;
    *out = v5;
    return ATTN_OK;
}

/* The lengths the appended rope types take from the top level: dynamic needs
 * max_position_embeddings; yarn / longrope their original length (longrope:
 * also top-level original_max_position_embeddings, Phi-3) and, without a
 * factor, max_position_embeddings / original. Fills c's rope_* fields. */
static attn_status rope_lengths(const hf *h, hf_rope *r, attn_mha_config *c) {
    attn_status s;
    int64_t mpe = 0, i;
    int have_mpe = 0, have;
    const char *w = h->where;
    if (r->scaling < ATTN_ROPE_SCALING_DYNAMIC) return ATTN_OK;
    if ((s = hf_int(h, h->root, w, "max_position_embeddings", 0, 1, &mpe, &have_mpe)) != ATTN_OK) return s;
    if (r->scaling == ATTN_ROPE_SCALING_LONGROPE && r->orig == 0) {
        if ((s = hf_int(h, h->root, w, "original_max_position_embeddings", 0, 1, &i, &have)) != ATTN_OK) return s;
        if (have) r->orig = i;
    }
    if (r->scaling != ATTN_ROPE_SCALING_DYNAMIC && r->orig == 0)
        return attn__fail(ATTN_ERR_NOT_FOUND, "%s: rope type %s needs 'original_max_position_embeddings'", h->src,
                          r->scaling == ATTN_ROPE_SCALING_YARN ? "yarn" : "longrope");
    const int need_mpe = r->scaling == ATTN_ROPE_SCALING_DYNAMIC || !r->has_factor;
    if (need_mpe && !have_mpe)
        return attn__fail(ATTN_ERR_NOT_FOUND, "%s: rope type %s needs '%smax_position_embeddings'", h->src,
                          r->scaling == ATTN_ROPE_SCALING_DYNAMIC ? "dynamic" : "yarn / longrope without a factor", w);
    if (r->scaling != ATTN_ROPE_SCALING_DYNAMIC && !r->has_factor) r->factor = (double)mpe / (double)r->orig;
    c->rope_max_pos = r->scaling == ATTN_ROPE_SCALING_DYNAMIC ? mpe : 0;
    c->rope_attention_factor = (float)r->attention_factor;
    c->rope_beta_fast = (float)r->beta_fast;
    c->rope_beta_slow = (float)r->beta_slow;
    c->rope_mscale = (float)r->mscale;
    c->rope_mscale_all_dim = (float)r->mscale_all_dim;
    c->rope_no_truncate = r->no_truncate;
    return ATTN_OK;
}

/* ─── the model (step 4) and one layer (step 5) ─────────────────────────── */
typedef struct hf_model {
    attn_mha_config base;   /* sizes, biases, qk-norm, gemma, dropout: the same for every layer */
    int64_t num_layers;     /* 0 = unknown */
    attn_json layer_types;  /* array, when has_layer_types */
    int has_layer_types;
    int64_t window;         /* sliding_window, 0 = none */
    int use_sliding_window;
    int64_t max_window_layers, pattern;
    double partial;         /* top-level partial_rotary_factor, 0 = not given */
    int scale_attn_weights, scale_by_layer; /* GPT-2 */
} hf_model;

static int reads(const hf *h, const char *key) { return in_list(h->a->read, key); }

static attn_status model_sizes(const hf *h, attn_mha_config *c, int64_t *nl) {
    const hf_arch *a = h->a;
    const char *w = h->where;
    attn_status s;
    int have;
    int64_t hidden, heads, kv = 0, hd = 0;
    if ((s = hf_int(h, h->root, w, a->hidden_key, 1, 1, &hidden, NULL)) != ATTN_OK) return s;
    if ((s = hf_int(h, h->root, w, a->heads_key, 1, 1, &heads, NULL)) != ATTN_OK) return s;
    kv = a->default_kv_heads ? a->default_kv_heads : heads;
    if (reads(h, "num_key_value_heads")) {
        attn_json v;
        int st = key_state(h->root, "num_key_value_heads", &v);
        if ((s = hf_int(h, h->root, w, "num_key_value_heads", 0, 1, &kv, &have)) != ATTN_OK) return s;
        if (st == 1) kv = heads; /* null: transformers' "None = num_attention_heads" */
    }
    hd = a->default_head_dim;
    if (reads(h, "head_dim")) {
        attn_json v;
        int st = key_state(h->root, "head_dim", &v);
        if ((s = hf_int(h, h->root, w, "head_dim", 0, 1, &hd, &have)) != ATTN_OK) return s;
        if (st == 1) hd = 0;
    }
    if (hd == 0) {
        if (hidden % heads != 0)
            return attn__fail(ATTN_ERR_CONFIG,
                              "%s: '%s%s' = %lld is not divisible by '%s%s' = %lld and 'head_dim' is not given",
                              h->src, w, a->hidden_key, (long long)hidden, w, a->heads_key, (long long)heads);
        hd = hidden / heads;
    }
    c->embed_dim = hidden;
    c->num_heads = heads;
    c->num_kv_heads = kv;
    c->head_dim = hd;
    *nl = 0;
    if ((s = hf_int(h, h->root, w, a->layers_key, 0, 1, nl, NULL)) != ATTN_OK) return s;
    return ATTN_OK;
}

static attn_status model_read(const hf *h, hf_model *m) {
    const hf_arch *a = h->a;
    const char *w = h->where;
    attn_mha_config *c = &m->base;
    attn_status s;
    int have;
    double d;
    attn_json v;
    memset(m, 0, sizeof *m);
    attn_mha_config_init(c);
    c->causal = a->causal;
    c->rope = a->rope;
    if ((s = model_sizes(h, c, &m->num_layers)) != ATTN_OK) return s;

    /* biases */
    int flag = 0;
    if (a->bias == HF_BIAS_ALL) {
        c->bias_q = c->bias_k = c->bias_v = c->bias_o = 1;
    } else if (a->bias == HF_BIAS_QKV) {
        c->bias_q = c->bias_k = c->bias_v = 1;
    } else if (a->bias == HF_BIAS_USE_QKV) {
        flag = a->default_bias;
        if ((s = hf_bool(h, h->root, w, a->bias_key ? a->bias_key : "use_qkv_bias", &flag, NULL)) != ATTN_OK) return s;
        c->bias_q = c->bias_k = c->bias_v = flag;
    } else if (reads(h, "attention_bias")) {
        flag = a->default_bias;
        if ((s = hf_bool(h, h->root, w, "attention_bias", &flag, NULL)) != ATTN_OK) return s;
        c->bias_q = c->bias_k = c->bias_v = c->bias_o = flag;
    }

    /* qk-norm */
    if (a->qk_norm != HF_QKN_NONE) {
        double eps = 1e-6;
        if ((s = hf_num(h, h->root, w, "rms_norm_eps", 0, 0.0, 1, 1.0, 0, &d, &have)) != ATTN_OK) return s;
        if (have) eps = d;
        c->qk_norm = 1;
        c->qk_norm_eps = (float)eps;
        c->qk_norm_offset = a->qk_norm == HF_QKN_RMS_PLUS1 ? 1.0f : 0.0f;
    } else if (reads(h, "rms_norm_eps")) {
        if ((s = hf_num(h, h->root, w, "rms_norm_eps", 0, 0.0, 1, 1.0, 0, &d, &have)) != ATTN_OK) return s;
    } else if (in_list(h->a->ignored, "rms_norm_eps")) { /* still validated: a broken value is a broken file */
        if ((s = hf_num(h, h->root, w, "rms_norm_eps", 0, 0.0, 1, 1.0, 0, &d, &have)) != ATTN_OK) return s;
    }

    /* Gemma: scale = query_pre_attn_scalar^-1/2, logit soft-cap */
    if (a->gemma) {
        double q = a->default_query_scalar, cap = a->default_softcap;
        if ((s = hf_num(h, h->root, w, "query_pre_attn_scalar", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
        if (have) q = d;
        int st = key_state(h->root, "attn_logit_softcapping", &v);
        if ((s = hf_num(h, h->root, w, "attn_logit_softcapping", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
        if (have) cap = d;
        else if (st == 1) cap = 0; /* null: no soft-cap */
        c->scale = (float)(1.0 / sqrt(q));
        c->softcap = (float)cap;
    }

    if ((s = hf_num(h, h->root, w, a->dropout_key, 0, 0.0, 0, 1.0, 1, &d, &have)) != ATTN_OK) return s;
    if (have) c->dropout = (float)d;

    /* partial rotary (top level, transformers 4) */
    if (reads(h, partial_key(a))) {
        if ((s = hf_num(h, h->root, w, partial_key(a), 0, 0.0, 1, 1.0, 0, &d, &have)) != ATTN_OK) return s;
        if (have) m->partial = d;
    }
    if (a->gpt2_scale) {
        m->scale_attn_weights = 1;
        if ((s = hf_bool(h, h->root, w, "scale_attn_weights", &m->scale_attn_weights, NULL)) != ATTN_OK) return s;
        if ((s = hf_bool(h, h->root, w, "scale_attn_by_inverse_layer_idx", &m->scale_by_layer, NULL)) != ATTN_OK)
            return s;
    }

    /* sliding windows */
    if (a->window != HF_WIN_NONE) {
        int st = key_state(h->root, "sliding_window", &v);
        m->window = st == 0 ? a->default_window : 0;
        if ((s = hf_int(h, h->root, w, "sliding_window", 0, 1, &m->window, NULL)) != ATTN_OK) return s;
    }
    if (a->window == HF_WIN_QWEN2) {
        if ((s = hf_bool(h, h->root, w, "use_sliding_window", &m->use_sliding_window, NULL)) != ATTN_OK) return s;
        m->max_window_layers = a->default_max_window_layers;
        if ((s = hf_int(h, h->root, w, "max_window_layers", 0, 0, &m->max_window_layers, NULL)) != ATTN_OK) return s;
    }
    if (a->window == HF_WIN_LAYER_TYPES) {
        m->pattern = a->default_pattern;
        if (reads(h, "sliding_window_pattern")) {
            if ((s = hf_int(h, h->root, w, "sliding_window_pattern", 0, 1, &m->pattern, NULL)) != ATTN_OK) return s;
            if ((s = hf_int(h, h->root, w, "_sliding_window_pattern", 0, 1, &m->pattern, NULL)) != ATTN_OK) return s;
        }
    }
    if (reads(h, "layer_types")) {
        if ((s = hf_get(h, h->root, w, "layer_types", &m->layer_types, &m->has_layer_types)) != ATTN_OK) return s;
        if (m->has_layer_types) {
            if (m->layer_types.type != ATTN_JSON_ARRAY)
                return attn__fail(ATTN_ERR_FORMAT, "%s: '%slayer_types' must be an array of strings, got a %s", h->src,
                                  w, attn__json_type_name(m->layer_types.type));
            int64_t n = (int64_t)attn__json_count(m->layer_types), i = 0;
            if (m->num_layers && n != m->num_layers)
                return attn__fail(ATTN_ERR_CONFIG, "%s: '%slayer_types' has %lld entries but '%s%s' = %lld", h->src, w,
                                  (long long)n, w, a->layers_key, (long long)m->num_layers);
            if (!m->num_layers) m->num_layers = n;
            attn_json_iter it;
            attn__json_iter_init(&it, m->layer_types);
            while (attn__json_next(&it, NULL, &v)) {
                if (v.type != ATTN_JSON_STRING)
                    return attn__fail(ATTN_ERR_FORMAT, "%s: '%slayer_types[%lld]' must be a string, got a %s", h->src, w,
                                      (long long)i, attn__json_type_name(v.type));
                if (!attn__json_str_eq(v, "full_attention") && !attn__json_str_eq(v, "sliding_attention")) {
                    char vs[96];
                    value_str(v, vs, sizeof vs);
                    return attn__fail(ATTN_ERR_UNSUPPORTED,
                                      "%s: '%slayer_types[%lld]' = %s is not supported (supported: full_attention, "
                                      "sliding_attention)", h->src, w, (long long)i, vs);
                }
                i++;
            }
        }
    }
    return ATTN_OK;
}

/* 1 if layer li is a sliding-window layer by its architecture's rule */
static int layer_slides(const hf *h, const hf_model *m, int64_t li) {
    switch (h->a->window) {
    case HF_WIN_EVERY_LAYER: return m->window > 0;
    case HF_WIN_QWEN2:
    case HF_WIN_LAYER_TYPES: {
        if (m->window <= 0) return 0;
        if (h->a->window == HF_WIN_QWEN2 && !m->use_sliding_window) return 0;
        if (m->has_layer_types) {
            attn_json_iter it;
            attn_json v;
            int64_t i = 0;
            attn__json_iter_init(&it, m->layer_types);
            while (attn__json_next(&it, NULL, &v))
                if (i++ == li) return attn__json_str_eq(v, "sliding_attention");
            return 0;
        }
        if (h->a->window == HF_WIN_QWEN2) return li >= m->max_window_layers;
        return (li + 1) % m->pattern != 0;
    }
    default: return 0;
    }
}

/* 1 if the config's layers can differ, so that a missing layer count matters */
static int layers_can_differ(const hf *h, const hf_model *m) {
    if (h->a->gpt2_scale && m->scale_by_layer) return 1;
    if (h->a->window == HF_WIN_QWEN2) return m->use_sliding_window && m->window > 0;
    return h->a->window == HF_WIN_LAYER_TYPES && m->window > 0;
}

static attn_status layer_read(const hf *h, const hf_model *m, int64_t li, attn_mha_config *out, int *sliding) {
    attn_mha_config c;
    memcpy(&c, &m->base, sizeof c); /* bytewise, padding included: layers are compared with memcmp */
    attn_status s;
    const int slide = layer_slides(h, m, li);
    if (slide) c.window_left = m->window - 1;
    if (c.rope != ATTN_ROPE_NONE) {
        hf_rope r;
        memset(&r, 0, sizeof r);
        if ((s = layer_rope(h, slide && h->a->local_rope, &r)) != ATTN_OK) return s;
        if ((s = rope_lengths(h, &r, &c)) != ATTN_OK) return s;
        c.rope_theta = (float)r.theta;
        c.rope_scaling = r.scaling;
        c.rope_factor = (float)r.factor;
        c.rope_low_freq_factor = (float)r.low;
        c.rope_high_freq_factor = (float)r.high;
        c.rope_original_max_pos = r.orig;
        double partial = m->partial;
        if (r.partial > 0) {
            if (m->partial > 0 && (float)m->partial != (float)r.partial)
                return attn__fail(ATTN_ERR_CONFIG,
                                  "%s: '%s%s' = %g and 'rope_parameters.partial_rotary_factor' = %g disagree", h->src,
                                  h->where, partial_key(h->a), m->partial, r.partial);
            partial = r.partial;
        }
        if (partial == 0) partial = h->a->default_partial;
        const int64_t rope_dim = partial > 0 && partial != 1.0 ? (int64_t)((double)c.head_dim * partial) : c.head_dim;
        if (r.scaling == ATTN_ROPE_SCALING_LONGROPE) {
            if (r.n_short != rope_dim / 2 || r.n_long != rope_dim / 2)
                return attn__fail(ATTN_ERR_CONFIG,
                                  "%s: longrope 'short_factor' has %d and 'long_factor' %d entries, the rotary "
                                  "dimension %lld needs %lld", h->src, r.n_short, r.n_long, (long long)rope_dim,
                                  (long long)(rope_dim / 2));
            memcpy(c.rope_short_factor, r.shortf, sizeof r.shortf);
            memcpy(c.rope_long_factor, r.longf, sizeof r.longf);
        }
        if (partial > 0 && partial != 1.0) {
            if (!reads(h, partial_key(h->a)))
                return attn__fail(ATTN_ERR_UNSUPPORTED,
                                  "%s: 'rope_parameters.partial_rotary_factor' = %g is not supported for %s (supported: 1)",
                                  h->src, r.partial, h->a->model_type);
            c.rope_dim = (int64_t)((double)c.head_dim * partial); /* as transformers: int(head_dim * factor) */
            if (c.rope_dim < 1)
                return attn__fail(ATTN_ERR_CONFIG, "%s: 'partial_rotary_factor' = %g gives no rotated dimension (head_dim %lld)",
                                  h->src, partial, (long long)c.head_dim);
        }
    }
    if (h->a->gpt2_scale) { /* GPT-2: / sqrt(D) unless scale_attn_weights is false; / (layer + 1) */
        double sc = m->scale_attn_weights ? 1.0 / sqrt((double)c.head_dim) : 1.0;
        if (m->scale_by_layer) sc /= (double)(li + 1);
        c.scale = (float)sc;
    }
    memcpy(out, &c, sizeof c);
    *sliding = slide;
    return ATTN_OK;
}

/* Step 6 in one pass: a layer that can read differently from layer 0 (whose
 * sliding flag is slide0), or 0. Layers differ only by their sliding flag
 * (which also picks Gemma 3's rope) and GPT-2's per-layer scale. */
static int64_t other_layer(const hf *h, const hf_model *m, int slide0) {
    if (m->num_layers < 2) return 0;
    if (h->a->gpt2_scale && m->scale_by_layer) return 1;
    if (m->has_layer_types && layers_can_differ(h, m)) {
        attn_json_iter it;
        attn_json v;
        int64_t i = 0;
        attn__json_iter_init(&it, m->layer_types);
        while (attn__json_next(&it, NULL, &v)) {
            if (i > 0 && attn__json_str_eq(v, "sliding_attention") != slide0) return i;
            i++;
        }
        return 0;
    }
    if (!layers_can_differ(h, m)) return 0;
    /* the rules without layer_types: the first layer that changes, computed directly */
    int64_t i = 0;
    if (h->a->window == HF_WIN_QWEN2) i = m->max_window_layers; /* full below, sliding from there */
    else if (h->a->window == HF_WIN_LAYER_TYPES) i = m->pattern - 1; /* the first full layer */
    if (i <= 0 || i >= m->num_layers || layer_slides(h, m, i) == slide0) return 0;
    return i;
}

static void describe(const attn_mha_config *c, char *buf, size_t cap) {
    int n = c->window_left >= 0 ? snprintf(buf, cap, "window %lld", (long long)c->window_left + 1)
                                : snprintf(buf, cap, "full attention");
    if (n > 0 && (size_t)n < cap && c->rope != ATTN_ROPE_NONE)
        n += snprintf(buf + n, cap - (size_t)n, ", rope theta %g scaling %d", (double)c->rope_theta, c->rope_scaling);
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ", scale %g", (double)c->scale);
}

static attn_status hf_parse(const char *src, const char *json, size_t len, const attn_hf_opts *opts,
                            attn_mha_config *out, attn_hf_info *info) {
    hf h = {src, NULL, {0}, "", opts->allow_unknown_keys != 0};
    attn_json root, v;
    attn_json_error jerr;
    attn_status s;
    int have;
    /* 1. the JSON document; a multimodal wrapper's text_config */
    if (len > HF_MAX_CONFIG)
        return attn__fail(ATTN_ERR_FORMAT, "%s: %zu bytes, larger than the %zu-byte limit", src, len, HF_MAX_CONFIG);
    if (attn__json_parse(json, len, &root, &jerr) != 0)
        return attn__fail(ATTN_ERR_FORMAT, "%s: invalid JSON: %s at byte %zu", src, jerr.msg, jerr.offset);
    if (root.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: top level is a JSON %s, expected an object", src,
                          attn__json_type_name(root.type));
    if ((s = check_dups(&h, root, "")) != ATTN_OK) return s;
    char model_type[64] = "";
    if ((s = hf_str(&h, root, "", "model_type", model_type, sizeof model_type, &have)) != ATTN_OK) return s;
    attn_json tc;
    if (attn__json_get(root, "hidden_size", &v) == 0 && attn__json_get(root, "n_embd", &v) == 0 &&
        attn__json_get(root, "text_config", &tc) == 1 && tc.type == ATTN_JSON_OBJECT) {
        root = tc;
        h.where = "text_config.";
        if ((s = check_dups(&h, root, h.where)) != ATTN_OK) return s;
        char mt2[64];
        if ((s = hf_str(&h, root, h.where, "model_type", mt2, sizeof mt2, &have)) != ATTN_OK) return s;
        if (have) memcpy(model_type, mt2, sizeof mt2);
    }
    h.root = root;

    /* 2. the architecture */
    const char *mt = opts->model_type ? opts->model_type : model_type;
    h.a = attn__hf_arch_find(mt);
    if (!h.a) {
        if (opts->model_type)
            return attn__fail(ATTN_ERR_UNSUPPORTED, "model_type override '%s' is not supported (supported: %s)", mt,
                              attn__hf_arch_names());
        if (!*mt)
            return attn__fail(ATTN_ERR_UNSUPPORTED,
                              "%s: no '%smodel_type', so the architecture is unknown (supported: %s; "
                              "attn_hf_opts.model_type / --model-type reads it as one of them)", src, h.where,
                              attn__hf_arch_names());
        return attn__fail(ATTN_ERR_UNSUPPORTED,
                          "%s: '%smodel_type' = '%s' is not supported (supported: %s; attn_hf_opts.model_type / "
                          "--model-type reads it as one of them)", src, h.where, mt, attn__hf_arch_names());
    }
    /* 3. every key is read, ignored or refused */
    if ((s = classify_keys(&h, root)) != ATTN_OK) return s;
    /* 4. the model */
    hf_model m;
    if ((s = model_read(&h, &m)) != ATTN_OK) return s;
    /* 5. the chosen layer, or 6. every layer alike */
    attn_mha_config c;
    int sliding = 0;
    int64_t li = opts->layer;
    if (li < -1)
        return attn__fail(ATTN_ERR_OPTION, "attn_hf_opts.layer = %lld, must be >= 0 (or -1: every layer alike)",
                          (long long)li);
    if (li >= 0) {
        if (m.num_layers && li >= m.num_layers)
            return attn__fail(ATTN_ERR_OPTION, "%s: layer %lld does not exist ('%s%s' = %lld)", src, (long long)li,
                              h.where, h.a->layers_key, (long long)m.num_layers);
        if ((s = layer_read(&h, &m, li, &c, &sliding)) != ATTN_OK) return s;
    } else {
        li = 0;
        if (!m.num_layers && layers_can_differ(&h, &m))
            return attn__fail(ATTN_ERR_CONFIG,
                              "%s: the layers of this %s config can differ (sliding and full attention) and '%s%s' is "
                              "missing; choose a layer (attn_hf_opts.layer, attn run --layer N)", src, h.a->model_type,
                              h.where, h.a->layers_key);
        if ((s = layer_read(&h, &m, 0, &c, &sliding)) != ATTN_OK) return s;
        const int64_t i = other_layer(&h, &m, sliding);
        if (i > 0) {
            attn_mha_config ci;
            int si;
            if ((s = layer_read(&h, &m, i, &ci, &si)) != ATTN_OK) return s;
            if (memcmp(&ci, &c, sizeof c) != 0) {
                char d0[128], d1[128];
                describe(&c, d0, sizeof d0);
                describe(&ci, d1, sizeof d1);
                return attn__fail(ATTN_ERR_CONFIG,
                                  "%s: the layers differ (layer 0: %s; layer %lld: %s); choose one "
                                  "(attn_hf_opts.layer, attn run --layer N or a --prefix naming the layer)", src, d0,
                                  (long long)i, d1);
            }
        }
    }
    if ((s = attn__struct_write("attn_hf_config", out, &c, &attn__mha_config_layout, ATTN_ERR_CONFIG)) != ATTN_OK)
        return s;
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->model_type, sizeof info->model_type, "%s", h.a->model_type);
        snprintf(info->arch_name, sizeof info->arch_name, "%s", h.a->name);
        info->num_layers = m.num_layers;
        info->layer = li;
        if (h.where[0] && !strncmp(h.a->prefix, "model.layers.", 13)) {
            /* a multimodal wrapper (text_config): transformers saves its language model under
               language_model.model.layers (older files: model.language_model.layers) */
            snprintf(info->prefix, sizeof info->prefix, "language_model.model.layers.%lld.self_attn", (long long)li);
            snprintf(info->prefix_alt, sizeof info->prefix_alt, "model.language_model.layers.%lld.self_attn",
                     (long long)li);
        } else {
            snprintf(info->prefix, sizeof info->prefix, h.a->prefix, (long long)li);
            if (h.a->prefix2) snprintf(info->prefix_alt, sizeof info->prefix_alt, h.a->prefix2, (long long)li);
        }
        info->naming = h.a->naming;
        info->sliding = sliding;
    }
    return ATTN_OK;
}

void attn_hf_opts_init(attn_hf_opts *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->layer = -1;
}

attn_status attn_hf_config_parse_ex(const char *json, size_t len, const attn_hf_opts *opts, attn_mha_config *out,
                                    attn_hf_info *info) {
    if (!json && len) return attn__fail(ATTN_ERR_NULL, "attn_hf_config_parse: json is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_hf_config_parse: out is NULL");
    attn_hf_opts d;
    attn_hf_opts_init(&d);
    return hf_parse("config.json", json ? json : "", len, opts ? opts : &d, out, info);
}

attn_status attn_hf_config_parse(const char *json, size_t len, attn_mha_config *out) {
    return attn_hf_config_parse_ex(json, len, NULL, out, NULL);
}

attn_status attn_hf_config_read(const char *path, attn_mha_config *out) {
    return attn_hf_config_read_ex(path, NULL, out, NULL);
}

attn_status attn_hf_config_read_ex(const char *path, const attn_hf_opts *opts, attn_mha_config *out,
                                   attn_hf_info *info) {
    if (!path) return attn__fail(ATTN_ERR_NULL, "attn_hf_config_read: path is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_hf_config_read: out is NULL");
    /* a model directory means its config.json */
    char *full = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        size_t n = strlen(path);
        full = (char *)attn__malloc(n + 16);
        if (!full) return attn__fail(ATTN_ERR_NOMEM, "attn_hf_config_read: out of memory");
        snprintf(full, n + 16, "%s/config.json", path);
        path = full;
    }
    char *buf = NULL;
    size_t n = 0;
    attn_status s = attn__file_read_all(path, HF_MAX_CONFIG, &buf, &n);
    if (s != ATTN_OK) goto done;
    attn_hf_opts d;
    attn_hf_opts_init(&d);
    s = hf_parse(path, buf, n, opts ? opts : &d, out, info);
done:
    attn__free(buf);
    attn__free(full);
    return s;
}
