/* SPDX-License-Identifier: MIT */
/* hfconfig.c — HuggingFace config.json -> attn_mha_config.
 *
 * Read keys (others are ignored):
 *   hidden_size              -> embed_dim              (required, integer >= 1)
 *   num_attention_heads      -> num_heads              (required, integer >= 1)
 *   num_key_value_heads      -> num_kv_heads           (integer >= 1; absent/null: num_heads)
 *   head_dim                 -> head_dim               (integer >= 1; absent/null: hidden/heads)
 *   rope_theta               -> rope_theta             (number > 0; default 10000)
 *   rope_scaling             -> rope_scaling, rope_factor, rope_low/high_freq_factor,
 *                               rope_original_max_pos  (null or {"rope_type"|"type":
 *                               "default"|"linear"|"llama3", ...}; others UNSUPPORTED)
 *   rope_parameters          (transformers >= 5 spelling of rope_theta + rope_scaling)
 *   partial_rotary_factor    -> rope_dim = (int)(head_dim * factor)   (number in (0, 1])
 *   attention_bias           -> bias_q/k/v/o            (boolean; default false)
 *   model_type "qwen2"/"qwen2_moe": bias_q/k/v = 1, bias_o = 0 (hard-wired in Qwen2)
 *   model_type "qwen3"/"qwen3_moe": qk_norm = 1, qk_norm_eps = rms_norm_eps (default 1e-6)
 *   use_sliding_window, sliding_window -> window_left = sliding_window - 1 when
 *                               use_sliding_window is true, or when it is absent and
 *                               sliding_window is an integer (Mistral); null = off
 *   attention_dropout        -> dropout                (number in [0, 1))
 *   text_config              used instead of the top level when the top level has no
 *                            hidden_size (multimodal wrappers)
 * Always: causal = 1, rope = ATTN_ROPE_NEOX. The rest comes from attn_mha_config_init().
 * Errors: invalid JSON, wrong JSON types and duplicate keys -> ATTN_ERR_FORMAT;
 * a missing required key -> ATTN_ERR_NOT_FOUND; values out of range ->
 * ATTN_ERR_CONFIG; unsupported rope scaling -> ATTN_ERR_UNSUPPORTED. Each
 * message names the key. *out is written only on success. */
#include "core/core.h"
#include "io/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_CONFIG ((size_t)16 << 20) /* 16 MiB */

typedef struct hf {
    const char *src;
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

static attn_status hf_bool(const hf *h, attn_json obj, const char *key, int *out, int *present) {
    attn_json v;
    int have;
    attn_status s = hf_get(h, obj, "", key, &v, &have);
    if (s != ATTN_OK) return s;
    if (present) *present = have;
    if (!have) return ATTN_OK;
    if (v.type != ATTN_JSON_TRUE && v.type != ATTN_JSON_FALSE)
        return attn__fail(ATTN_ERR_FORMAT, "%s: '%s' must be true or false, got a %s", h->src, key,
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

static attn_status parse_rope_scaling(const hf *h, attn_json rs, const char *where, attn_mha_config *c) {
    attn_status s;
    if ((s = check_dups(h, rs, where)) != ATTN_OK) return s;
    char type[32];
    int have;
    if ((s = hf_str(h, rs, where, "rope_type", type, sizeof type, &have)) != ATTN_OK) return s;
    if (!have && (s = hf_str(h, rs, where, "type", type, sizeof type, &have)) != ATTN_OK) return s;
    if (!have)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: '%.*s' has no 'rope_type' (or 'type')", h->src,
                          (int)(strlen(where) ? strlen(where) - 1 : 0), where);
    double d;
    int64_t i;
    if (strcmp(type, "default") == 0) {
        c->rope_scaling = ATTN_ROPE_SCALING_NONE;
    } else if (strcmp(type, "linear") == 0) {
        c->rope_scaling = ATTN_ROPE_SCALING_LINEAR;
        if ((s = hf_num(h, rs, where, "factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        c->rope_factor = (float)d;
    } else if (strcmp(type, "llama3") == 0) {
        c->rope_scaling = ATTN_ROPE_SCALING_LLAMA3;
        if ((s = hf_num(h, rs, where, "factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        c->rope_factor = (float)d;
        if ((s = hf_num(h, rs, where, "low_freq_factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        c->rope_low_freq_factor = (float)d;
        if ((s = hf_num(h, rs, where, "high_freq_factor", 1, 0.0, 1, 1e30, 0, &d, NULL)) != ATTN_OK) return s;
        c->rope_high_freq_factor = (float)d;
        if ((s = hf_int(h, rs, where, "original_max_position_embeddings", 1, 1, &i, NULL)) != ATTN_OK) return s;
        c->rope_original_max_pos = i;
    } else {
        return attn__fail(ATTN_ERR_UNSUPPORTED,
                          "%s: rope scaling type '%s' is not supported (supported: default, linear, llama3)", h->src,
                          type);
    }
    return ATTN_OK;
}

static int model_is(const char *mt, const char *a, const char *b) { return strcmp(mt, a) == 0 || strcmp(mt, b) == 0; }

static attn_status hf_parse(const char *src, const char *json, size_t len, attn_mha_config *out) {
    hf h = { src };
    attn_json root, v;
    attn_json_error jerr;
    if (len > HF_MAX_CONFIG)
        return attn__fail(ATTN_ERR_FORMAT, "%s: %zu bytes, larger than the %zu-byte limit", src, len, HF_MAX_CONFIG);
    if (attn__json_parse(json, len, &root, &jerr) != 0)
        return attn__fail(ATTN_ERR_FORMAT, "%s: invalid JSON: %s at byte %zu", src, jerr.msg, jerr.offset);
    if (root.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: top level is a JSON %s, expected an object", src,
                          attn__json_type_name(root.type));
    attn_status s;
    if ((s = check_dups(&h, root, "")) != ATTN_OK) return s;

    char model_type[64] = "";
    int have;
    if ((s = hf_str(&h, root, "", "model_type", model_type, sizeof model_type, &have)) != ATTN_OK) return s;

    /* multimodal wrappers keep the language model under text_config */
    attn_json tc;
    int has_hidden;
    if ((s = hf_get(&h, root, "", "hidden_size", &v, &has_hidden)) != ATTN_OK) return s;
    if (!has_hidden && attn__json_get(root, "text_config", &tc) == 1 && tc.type == ATTN_JSON_OBJECT) {
        root = tc;
        if ((s = check_dups(&h, root, "text_config.")) != ATTN_OK) return s;
        char mt2[64];
        if ((s = hf_str(&h, root, "text_config.", "model_type", mt2, sizeof mt2, &have)) != ATTN_OK) return s;
        if (have) memcpy(model_type, mt2, sizeof mt2);
    }

    attn_mha_config c;
    attn_mha_config_init(&c);
    c.causal = 1;
    c.rope = ATTN_ROPE_NEOX;

    int64_t hidden, heads, kv = 0, hd = 0, win = 0;
    if ((s = hf_int(&h, root, "", "hidden_size", 1, 1, &hidden, NULL)) != ATTN_OK) return s;
    if ((s = hf_int(&h, root, "", "num_attention_heads", 1, 1, &heads, NULL)) != ATTN_OK) return s;
    if ((s = hf_int(&h, root, "", "num_key_value_heads", 0, 1, &kv, &have)) != ATTN_OK) return s;
    if (!have) kv = heads;
    if ((s = hf_int(&h, root, "", "head_dim", 0, 1, &hd, &have)) != ATTN_OK) return s;
    if (!have) {
        if (hidden % heads != 0)
            return attn__fail(ATTN_ERR_CONFIG,
                              "%s: 'hidden_size' = %lld is not divisible by 'num_attention_heads' = %lld and "
                              "'head_dim' is not given", src, (long long)hidden, (long long)heads);
        hd = hidden / heads;
    }
    c.embed_dim = hidden;
    c.num_heads = heads;
    c.num_kv_heads = kv;
    c.head_dim = hd;

    /* rope: rope_theta + rope_scaling, or transformers-5 rope_parameters */
    double d;
    c.rope_theta = 10000.0f;
    attn_json rs, rp;
    int has_rs = 0, has_rp = 0;
    if ((s = hf_get(&h, root, "", "rope_scaling", &rs, &has_rs)) != ATTN_OK) return s;
    if ((s = hf_get(&h, root, "", "rope_parameters", &rp, &has_rp)) != ATTN_OK) return s;
    if (has_rs && rs.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: 'rope_scaling' must be an object or null, got a %s", src,
                          attn__json_type_name(rs.type));
    if (has_rp && rp.type != ATTN_JSON_OBJECT)
        return attn__fail(ATTN_ERR_FORMAT, "%s: 'rope_parameters' must be an object or null, got a %s", src,
                          attn__json_type_name(rp.type));
    if ((s = hf_num(&h, root, "", "rope_theta", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
    if (have) c.rope_theta = (float)d;
    else if (has_rp) {
        if ((s = hf_num(&h, rp, "rope_parameters.", "rope_theta", 0, 0.0, 1, 1e30, 0, &d, &have)) != ATTN_OK) return s;
        if (have) c.rope_theta = (float)d;
    }
    if (has_rs) {
        if ((s = parse_rope_scaling(&h, rs, "rope_scaling.", &c)) != ATTN_OK) return s;
    } else if (has_rp) {
        if ((s = parse_rope_scaling(&h, rp, "rope_parameters.", &c)) != ATTN_OK) return s;
    }
    if ((s = hf_num(&h, root, "", "partial_rotary_factor", 0, 0.0, 1, 1.0, 0, &d, &have)) != ATTN_OK) return s;
    if (have) {
        c.rope_dim = (int64_t)((double)hd * d); /* as transformers: int(head_dim * factor) */
        if (c.rope_dim < 1)
            return attn__fail(ATTN_ERR_CONFIG, "%s: 'partial_rotary_factor' = %g gives no rotated dimension (head_dim %lld)",
                              src, d, (long long)hd);
    }

    /* biases */
    int attention_bias = 0;
    if ((s = hf_bool(&h, root, "attention_bias", &attention_bias, NULL)) != ATTN_OK) return s;
    if (model_is(model_type, "qwen2", "qwen2_moe")) {
        c.bias_q = c.bias_k = c.bias_v = 1;
        c.bias_o = 0;
    } else {
        c.bias_q = c.bias_k = c.bias_v = c.bias_o = attention_bias;
    }

    /* qk-norm */
    double eps = 1e-6;
    if ((s = hf_num(&h, root, "", "rms_norm_eps", 0, 0.0, 1, 1.0, 0, &d, &have)) != ATTN_OK) return s;
    if (have) eps = d;
    if (model_is(model_type, "qwen3", "qwen3_moe")) {
        c.qk_norm = 1;
        c.qk_norm_eps = (float)eps;
    }

    /* sliding window */
    int use_sw = 0, has_use_sw = 0, has_sw = 0;
    if ((s = hf_bool(&h, root, "use_sliding_window", &use_sw, &has_use_sw)) != ATTN_OK) return s;
    if ((s = hf_int(&h, root, "", "sliding_window", 0, 1, &win, &has_sw)) != ATTN_OK) return s;
    if (has_sw && (use_sw || !has_use_sw)) c.window_left = win - 1;

    if ((s = hf_num(&h, root, "", "attention_dropout", 0, 0.0, 0, 1.0, 1, &d, &have)) != ATTN_OK) return s;
    if (have) c.dropout = (float)d;

    return attn__struct_write("attn_hf_config", out, &c, &attn__mha_config_layout, ATTN_ERR_CONFIG);
}

attn_status attn_hf_config_parse(const char *json, size_t len, attn_mha_config *out) {
    if (!json && len) return attn__fail(ATTN_ERR_NULL, "attn_hf_config_parse: json is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_hf_config_parse: out is NULL");
    return hf_parse("config.json", json ? json : "", len, out);
}

attn_status attn_hf_config_read(const char *path, attn_mha_config *out) {
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
    attn_status s;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        s = attn__fail(ATTN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    /* read at most limit + 1 bytes, growing the buffer from the (untrusted) file size */
    struct stat fs;
    size_t cap = 4096, n = 0;
    if (fstat(fileno(f), &fs) == 0 && fs.st_size > 0)
        cap = (uint64_t)fs.st_size < HF_MAX_CONFIG ? (size_t)fs.st_size + 1 : HF_MAX_CONFIG + 1;
    for (;;) {
        char *nb = (char *)attn__malloc(cap);
        if (!nb) {
            s = attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        if (n) memcpy(nb, buf, n);
        attn__free(buf);
        buf = nb;
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) {
            s = attn__fail(ATTN_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto done;
        }
        if (n < cap || cap > HF_MAX_CONFIG) break;
        cap = cap > HF_MAX_CONFIG / 2 ? HF_MAX_CONFIG + 1 : cap * 2;
    }
    if (n > HF_MAX_CONFIG) {
        s = attn__fail(ATTN_ERR_FORMAT, "%s: larger than the %zu-byte limit", path, HF_MAX_CONFIG);
        goto done;
    }
    s = hf_parse(path, buf, n, out);
done:
    if (f) fclose(f);
    attn__free(buf);
    attn__free(full);
    return s;
}
