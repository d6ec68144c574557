/* SPDX-License-Identifier: MIT */
/* cmd_run.c — `attn run`: one HuggingFace attention layer on an input.
 *
 *   attn run --weights model.safetensors --config config.json --input x.npy --output y.npy
 *            [--layer N | --prefix NAME] [--positions p.npy] [--key-padding-mask m.npy]
 *            [--causal | --no-causal] [--no-rope] [--model-type T] [--allow-unknown-keys]
 *            [--threads N]
 *
 * config.json -> attn_hf_config_read_ex (the chosen layer: --layer N, or the
 * N of a --prefix such as model.layers.N.self_attn) -> attn_mha_create;
 * weights loaded with the architecture's names; x (S, E) or (B, S, E),
 * float32 / float16 / float64; y has x's shape, float32. Every problem is one
 * line "attn run: <file>: <problem>" on stderr and exit status 1.
 *
 * Also the hidden `attn compare A.npy B.npy [--rtol X] [--rows M.npy]` used by
 * the tests: exit 0 iff the shapes agree and max|a - b| <= rtol * max|b|;
 * --rows: a (B, S) 0/1 array, only rows (b, s, :) with 1 are compared (the
 * padded query rows of a padded batch, whose output no model uses). */
#include "args.h"
#include "cli.h"
#include "core/core.h"
#include "io/npy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cmd_compare(int argc, char **argv); /* main.c dispatches it (hidden) */

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = 0;
    used += (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (ndim == 1 && used < n) used += (size_t)snprintf(buf + used, n - used, ",");
    if (used < n) snprintf(buf + used, n - used, ")");
}

/* Last error of the library, without a leading "<path>: " when it repeats the file name. */
static const char *lib_msg(const char *path) {
    const char *m = attn_last_error();
    size_t n = strlen(path);
    if (!strncmp(m, path, n) && m[n] == ':') {
        m += n + 1;
        while (*m == ' ') m++;
    }
    return *m ? m : "unknown error";
}

/* ─── positions .npy ──────────────────────────────────────────────────────
 * An integer array (any of i1..i8, u1..u8), or a float one holding integers,
 * of 1 (S) or 2 (B, S) dimensions, read by the library (io/npy.h) into int64.
 * Returns 0, or 1 with a message in err. */
static int read_positions(const char *path, int64_t **out, int *ndim, int64_t shape[2], char *err, size_t errlen) {
    *out = NULL;
    attn_npy_i64 a;
    if (attn__npy_read_i64(path, &a) != ATTN_OK) { snprintf(err, errlen, "%s: %s", path, lib_msg(path)); return 1; }
    if (a.ndim < 1 || a.ndim > 2) {
        snprintf(err, errlen, "%s: positions must be 1-D (S) or 2-D (B, S), got %d dimensions", path, a.ndim);
        attn__npy_i64_free(&a);
        return 1;
    }
    if (!a.data && !(a.data = attn__malloc(sizeof(int64_t)))) { /* numel 0: the caller expects a buffer */
        snprintf(err, errlen, "%s: out of memory", path);
        return 1;
    }
    *ndim = a.ndim;
    shape[0] = a.shape[0];
    shape[1] = a.ndim > 1 ? a.shape[1] : 0;
    *out = a.data; /* the caller frees it with attn__free */
    return 0;
}

/* The layer index a prefix names: the number after "layers." / "layer." / "h."
 * ("model.layers.3.self_attn" -> 3), or -1. */
static int64_t prefix_layer(const char *prefix) {
    static const char *const keys[] = {"layers.", "layer.", "h."};
    for (const char *p = prefix; *p; p++) {
        if (p != prefix && p[-1] != '.') continue;
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(keys[k]);
            if (strncmp(p, keys[k], n) != 0) continue;
            const char *d = p + n;
            char *end;
            if (*d < '0' || *d > '9') continue;
            long long v = strtoll(d, &end, 10);
            if ((*end == '.' || *end == 0) && v >= 0 && v < INT32_MAX) return v;
        }
    }
    return -1;
}

/* HF attention_mask (B, S), 1 = attend, 0 = padding -> key_padding_mask (nonzero = padded). */
static int read_attention_mask(const char *sub, const char *path, int64_t B, int64_t S, uint8_t **out) {
    attn_npy a;
    memset(&a, 0, sizeof a);
    if (attn_npy_read(path, &a) != ATTN_OK) return cli_fail(sub, "%s: %s", path, lib_msg(path));
    int ok = 0;
    char sh[128];
    shape_str(sh, sizeof sh, a.ndim, a.shape);
    if (!((a.ndim == 2 && a.shape[0] == B && a.shape[1] == S) || (a.ndim == 1 && B == 1 && a.shape[0] == S))) {
        cli_fail(sub, "%s: shape %s does not match the input: expected (%lld, %lld) (HF attention_mask, 1 = token, 0 = padding)",
                 path, sh, (long long)B, (long long)S);
    } else if (!(*out = malloc((size_t)(B * S)))) {
        cli_fail(sub, "out of memory");
    } else {
        ok = 1;
        for (int64_t i = 0; ok && i < B * S; i++) {
            if (a.data[i] != 0.0f && a.data[i] != 1.0f) {
                cli_fail(sub, "%s: element %lld is %g; an HF attention_mask holds 1 (token) or 0 (padding)", path,
                         (long long)i, (double)a.data[i]);
                free(*out);
                *out = NULL;
                ok = 0;
            } else {
                (*out)[i] = a.data[i] == 0.0f;
            }
        }
    }
    attn_npy_free(&a);
    return !ok;
}

/* One line: what the config made of the layer (the features that change y). */
static void describe_layer(char *feat, size_t cap, const attn_mha_config *rcfg) {
    size_t fl = 0;
#define ADD(...) \
    do { if (fl < cap) fl += (size_t)snprintf(feat + fl, cap - fl, __VA_ARGS__); } while (0)
    if (rcfg->rope == ATTN_ROPE_NONE) ADD("no RoPE");
    else {
        static const char *const sc[] = {"default", "linear", "llama3", "dynamic", "yarn", "longrope"};
        ADD("RoPE%s theta %g, %s", rcfg->rope == ATTN_ROPE_GPTJ ? " (GPT-J)" : "", (double)rcfg->rope_theta,
            rcfg->rope_scaling >= 0 && rcfg->rope_scaling < 6 ? sc[rcfg->rope_scaling] : "?");
        if (rcfg->rope_scaling != ATTN_ROPE_SCALING_NONE) ADD(" x%g", (double)rcfg->rope_factor);
        ADD(", rotary dims %lld of %lld", (long long)rcfg->rope_dim, (long long)rcfg->head_dim);
    }
    ADD(", scale %.6g", (double)rcfg->scale);
    if (rcfg->softcap > 0) ADD(", softcap %g", (double)rcfg->softcap);
    if (rcfg->qk_norm) ADD(", qk-norm%s", rcfg->qk_norm_offset != 0.0f ? " (1 + w)" : "");
    if (rcfg->bias_q || rcfg->bias_k || rcfg->bias_v || rcfg->bias_o)
        ADD(", biases %s%s%s%s", rcfg->bias_q ? "q" : "", rcfg->bias_k ? "k" : "", rcfg->bias_v ? "v" : "",
            rcfg->bias_o ? "o" : "");
    if (rcfg->window_left >= 0) ADD(", window %lld", (long long)rcfg->window_left + 1);
    else ADD(", full attention");
#undef ADD
}

/* --weights names a sharded checkpoint: a *.index.json, or a directory holding
 * model.safetensors.index.json (a directory without one means its model.safetensors) */
static int is_index(const char *w) {
    size_t n = strlen(w);
    if (n >= 11 && !strcmp(w + n - 11, ".index.json")) return 1;
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", w);
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static attn_status load_weights(attn_mha *m, const attn_st *st, const char *weights, int sharded, const char *prefix,
                                attn_naming naming) {
    return sharded ? attn_mha_load_index(m, weights, prefix, naming) : attn_mha_load(m, st, prefix, naming);
}

/* cli_fail's message, then 0: the steps of cmd_run return 1 on success. */
#define run_fail(...) (cli_fail(__VA_ARGS__), 0)

/* The options of one run. */
typedef struct run_opts {
    const char *weights, *prefix, *config, *input, *output, *positions, *kpm_path, *model_type, *wdt_name;
    int causal, no_rope, allow_unknown;
    int64_t layer;
    attn_dtype wdt;
} run_opts;

/* 0 to run, 1 an error (printed), 2 --help (printed). */
static int run_parse(int argc, char **argv, run_opts *o) {
    const char *sub = "run";
    memset(o, 0, sizeof *o);
    o->wdt_name = "f32";
    o->causal = -1;
    o->layer = ARG_UNSET;
    int64_t threads = ARG_UNSET;
    const arg_spec specs[] = {
        { "weights", ARG_STR, &o->weights, "FILE", "safetensors file, model.safetensors.index.json (sharded) or model directory (required)" },
        { "layer", ARG_INT, &o->layer, "N", "layer index: its config (window, rope) and its tensors (default 0)" },
        { "prefix", ARG_STR, &o->prefix, "NAME", "tensor name prefix (default the architecture's, e.g. model.layers.N.self_attn)" },
        { "config", ARG_STR, &o->config, "FILE", "HuggingFace config.json (required)" },
        { "input", ARG_STR, &o->input, "FILE", "x: .npy (S, E) or (B, S, E), float32/float16/float64 (required)" },
        { "output", ARG_STR, &o->output, "FILE", "y: .npy written with x's shape, float32 (required)" },
        { "positions", ARG_STR, &o->positions, "FILE", "RoPE positions .npy, integer (S) or (B, S) (default 0..S-1)" },
        { "causal", ARG_FLAG, &o->causal, NULL, "causal self-attention (the default for HF decoder configs)" },
        { "no-causal", ARG_UNFLAG, &o->causal, NULL, "attend to every position" },
        { "key-padding-mask", ARG_STR, &o->kpm_path, "FILE", "HF attention_mask .npy (B, S): 1 = token, 0 = padding (keys ignored)" },
        { "no-rope", ARG_FLAG, &o->no_rope, NULL, "no rotary embedding, whatever the config says" },
        { "model-type", ARG_STR, &o->model_type, "T", "read config.json as this supported model_type (override)" },
        { "allow-unknown-keys", ARG_FLAG, &o->allow_unknown, NULL, "ignore config.json keys attn does not know (else refused)" },
        { "weight-dtype", ARG_STR, &o->wdt_name, "T", "hold Wq/Wk/Wv/Wo as f32 (default), bf16 or f16: half the weight bytes, inference only; a checkpoint of another type is rounded once (attn.h \"Mixed precision\")" },
        { "threads", ARG_INT, &threads, "N", "worker threads (default: ATTN_NUM_THREADS or all CPUs)" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    int help = 0;
    if (args_parse(sub, argc, argv, specs, nspecs, &help)) return 1;
    if (help) {
        args_print_help(sub, "--weights FILE --config FILE --input x.npy --output y.npy [options]",
                        "Runs one self-attention layer of a HuggingFace checkpoint on x and writes y. The\n"
                        "architecture comes from config.json's model_type; the keys attn reads, ignores and\n"
                        "refuses are listed in docs/hf.md.",
                        specs, nspecs);
        return 2;
    }
    if (!o->weights) return cli_fail(sub, "missing --weights FILE (see 'attn run --help')");
    if (!o->config) return cli_fail(sub, "missing --config FILE (see 'attn run --help')");
    if (!o->input) return cli_fail(sub, "missing --input FILE (see 'attn run --help')");
    if (!o->output) return cli_fail(sub, "missing --output FILE (see 'attn run --help')");
    if (args_threads(sub, &threads)) return 1;
    if (strcmp(o->wdt_name, "f32") == 0) o->wdt = ATTN_DTYPE_F32;
    else if (strcmp(o->wdt_name, "bf16") == 0) o->wdt = ATTN_DTYPE_BF16;
    else if (strcmp(o->wdt_name, "f16") == 0) o->wdt = ATTN_DTYPE_F16;
    else return cli_fail(sub, "--weight-dtype %s: expected f32, bf16 or f16", o->wdt_name);
    if (o->layer != ARG_UNSET && (o->layer < 0 || o->layer > INT32_MAX))
        return cli_fail(sub, "--layer %lld: expected an integer >= 0", (long long)o->layer);
    return 0;
}

/* The layer of config.json (o->layer, or the one --prefix names) with the
 * command line's overrides, its weights loaded from the checkpoint (a file,
 * a directory or a sharded index; the bare model's prefix if the
 * architecture's is absent). *prefix: the prefix the weights came from. */
static int run_load_layer(const run_opts *o, attn_mha **m, attn_hf_info *info, const char **prefix) {
    const char *sub = "run";
    attn_hf_opts hopts;
    attn_hf_opts_init(&hopts);
    hopts.model_type = o->model_type;
    hopts.allow_unknown_keys = o->allow_unknown;
    const int64_t from_prefix = o->prefix ? prefix_layer(o->prefix) : -1;
    if (o->layer != ARG_UNSET && from_prefix >= 0 && from_prefix != o->layer)
        return run_fail(sub, "--prefix %s names layer %lld but --layer is %lld", o->prefix, (long long)from_prefix,
                        (long long)o->layer);
    hopts.layer = o->layer != ARG_UNSET ? o->layer : from_prefix >= 0 ? from_prefix : o->prefix ? -1 : 0;
    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    if (attn_hf_config_read_ex(o->config, &hopts, &cfg, info) != ATTN_OK)
        return run_fail(sub, "%s: %s", o->config, lib_msg(o->config));
    *prefix = o->prefix ? o->prefix : info->prefix;
    if (o->causal >= 0) cfg.causal = o->causal;
    cfg.weight_dtype = o->wdt;
    if (o->no_rope) {
        cfg.rope = ATTN_ROPE_NONE;
        cfg.rope_dim = 0;
        cfg.rope_scaling = ATTN_ROPE_SCALING_NONE;
    }
    if (attn_mha_create(m, &cfg) != ATTN_OK)
        return run_fail(sub, "%s: unsupported layer configuration: %s", o->config, attn_last_error());
    const char *weights = o->weights;
    const int sharded = is_index(weights);
    char wbuf[4096];
    struct stat wsb;
    if (!sharded && stat(weights, &wsb) == 0 && S_ISDIR(wsb.st_mode)) { /* a model directory */
        snprintf(wbuf, sizeof wbuf, "%s/model.safetensors", weights);
        weights = wbuf;
    }
    attn_st *st = NULL;
    if (!sharded && attn_st_open(&st, weights) != ATTN_OK) return run_fail(sub, "%s: %s", weights, lib_msg(weights));
    attn_status ls = load_weights(*m, st, weights, sharded, *prefix, (attn_naming)info->naming);
    if (ls == ATTN_ERR_NOT_FOUND && !o->prefix && info->prefix_alt[0]) { /* the bare model saved alone */
        char first[512];
        snprintf(first, sizeof first, "%s", attn_last_error());
        ls = load_weights(*m, st, weights, sharded, info->prefix_alt, (attn_naming)info->naming);
        if (ls == ATTN_OK) *prefix = info->prefix_alt;
        else if (ls == ATTN_ERR_NOT_FOUND) attn__fail(ls, "%s (nor under '%s')", first, info->prefix_alt);
    }
    attn_st_free(st);
    if (ls != ATTN_OK) return run_fail(sub, "%s: %s", weights, lib_msg(weights));
    return 1;
}

/* x: (S, E) or (B, S, E), non-empty, every element finite; *B, *S its sizes. */
static int run_read_input(const char *path, int64_t E, const char *config, attn_npy *x, int64_t *B, int64_t *S) {
    const char *sub = "run";
    char sh[128];
    if (attn_npy_read(path, x) != ATTN_OK) return run_fail(sub, "%s: %s", path, lib_msg(path));
    shape_str(sh, sizeof sh, x->ndim, x->shape);
    if ((x->ndim != 2 && x->ndim != 3) || x->shape[x->ndim - 1] != E)
        return run_fail(sub, "%s: shape %s does not fit the layer: expected (S, %lld) or (B, S, %lld) (hidden_size %lld in %s)",
                        path, sh, (long long)E, (long long)E, (long long)E, config);
    *B = x->ndim == 3 ? x->shape[0] : 1;
    *S = x->shape[x->ndim - 2];
    if (*B < 1 || *S < 1) return run_fail(sub, "%s: shape %s is empty", path, sh);
    for (int64_t i = 0; i < x->numel; i++)
        if (!isfinite(x->data[i]))
            return run_fail(sub, "%s: element %lld is %s", path, (long long)i, isnan(x->data[i]) ? "NaN" : "infinite");
    return 1;
}

/* RoPE positions (S) or (B, S), integers in [0, 2^31), into *out (B, S) int32. */
static int run_read_positions(const char *path, int64_t B, int64_t S, int32_t **out) {
    const char *sub = "run";
    int pnd = 0;
    int64_t psh[2], *pos64 = NULL;
    char err[768], sh[128];
    if (read_positions(path, &pos64, &pnd, psh, err, sizeof err)) return run_fail(sub, "%s", err);
    int ok = (pnd == 1 && psh[0] == S) || (pnd == 2 && psh[0] == B && psh[1] == S);
    if (!ok) {
        shape_str(sh, sizeof sh, pnd, psh);
        cli_fail(sub, "%s: shape %s does not match the input: expected (%lld) or (%lld, %lld)", path, sh, (long long)S,
                 (long long)B, (long long)S);
    } else if (!(*out = malloc((size_t)(B * S) * sizeof(int32_t)))) {
        cli_fail(sub, "out of memory");
        ok = 0;
    }
    for (int64_t b = 0; ok && b < B; b++)
        for (int64_t s = 0; ok && s < S; s++) {
            int64_t v = pos64[(pnd == 2 ? b * S : 0) + s];
            if (v < 0 || v > INT32_MAX) {
                cli_fail(sub, "%s: position %lld at (%lld, %lld) is out of range [0, 2^31)", path, (long long)v,
                         (long long)b, (long long)s);
                ok = 0;
            } else {
                (*out)[b * S + s] = (int32_t)v;
            }
        }
    attn__free(pos64);
    return ok;
}

int cmd_run(int argc, char **argv) {
    const char *sub = "run";
    run_opts o;
    const int pr = run_parse(argc, argv, &o);
    if (pr) return pr == 2 ? 0 : 1;
    int rc = 1;
    attn_mha *m = NULL;
    attn_npy x;
    memset(&x, 0, sizeof x);
    int32_t *pos = NULL;
    uint8_t *kpm = NULL;
    float *y = NULL;
    attn_hf_info info;
    const char *prefix = NULL;
    int64_t B = 0, S = 0;
    if (!run_load_layer(&o, &m, &info, &prefix)) goto done;
    const attn_mha_config *rcfg = attn_mha_get_config(m);
    const int64_t E = rcfg->embed_dim;
    if (!run_read_input(o.input, E, o.config, &x, &B, &S)) goto done;
    if (o.positions && !run_read_positions(o.positions, B, S, &pos)) goto done;
    if (o.kpm_path && read_attention_mask(sub, o.kpm_path, B, S, &kpm)) goto done;
    y = malloc((size_t)x.numel * sizeof(float));
    if (!y) { cli_fail(sub, "out of memory (y: %lld floats)", (long long)x.numel); goto done; }
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B;
    in.seq_q = S;
    in.x = x.data;
    in.positions = pos;
    in.key_padding_mask = kpm;
    if (attn_mha_forward(m, &in, y) != ATTN_OK) { cli_fail(sub, "forward: %s", attn_last_error()); goto done; }
    if (attn_npy_write(o.output, y, x.ndim, x.shape) != ATTN_OK) { cli_fail(sub, "%s: %s", o.output, lib_msg(o.output)); goto done; }
    char sh[128], feat[320], wfeat[64] = "";
    shape_str(sh, sizeof sh, x.ndim, x.shape);
    describe_layer(feat, sizeof feat, rcfg);
    if (o.wdt != ATTN_DTYPE_F32) snprintf(wfeat, sizeof wfeat, ", %s weights (%s)", o.wdt_name, attn_mha_proj_kernel(m));
    printf("attn run: wrote %s %s float32 (%s layer %lld, %s: E %lld, heads %lld/%lld, D %lld, %s, %s%s%s)\n", o.output,
           sh, info.arch_name, (long long)info.layer, prefix, (long long)E, (long long)rcfg->num_heads,
           (long long)rcfg->num_kv_heads, (long long)rcfg->head_dim, feat, rcfg->causal ? "causal" : "not causal",
           kpm ? ", key padding" : "", wfeat);
    rc = 0;
done:
    attn_mha_free(m);
    attn_npy_free(&x);
    free(pos);
    free(kpm);
    free(y);
    return rc;
}

int cmd_compare(int argc, char **argv) {
    const char *sub = "compare";
    double rtol = 1e-5;
    const char *files[2] = { NULL, NULL };
    /* two positional files, then options */
    int nf = 0;
    char *rest[8];
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-' && nf < 2) files[nf++] = argv[i];
        else if (nrest < 8) rest[nrest++] = argv[i];
        else return cli_fail(sub, "too many arguments");
    }
    const char *rows_path = NULL;
    const arg_spec specs[] = { { "rtol", ARG_DOUBLE, &rtol, "X", "tolerance: max|a-b| <= X * max|b| (default 1e-5)" },
                               { "rows", ARG_STR, &rows_path, "M.npy", "(B, S) 0/1: compare only the rows with 1" } };
    int help = 0;
    if (args_parse(sub, nrest, rest, specs, 2, &help)) return 1;
    if (help) {
        args_print_help(sub, "A.npy B.npy [--rtol X] [--rows M.npy]", "Compares two .npy arrays (B is the reference).",
                        specs, 2);
        return 0;
    }
    if (nf != 2) return cli_fail(sub, "expected two .npy files");
    attn_npy a, b, r;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&r, 0, sizeof r);
    if (rows_path && attn_npy_read(rows_path, &r) != ATTN_OK) return cli_fail(sub, "%s: %s", rows_path, lib_msg(rows_path));
    if (attn_npy_read(files[0], &a) != ATTN_OK) return cli_fail(sub, "%s: %s", files[0], lib_msg(files[0]));
    if (attn_npy_read(files[1], &b) != ATTN_OK) {
        attn_npy_free(&a);
        return cli_fail(sub, "%s: %s", files[1], lib_msg(files[1]));
    }
    int rc = 1;
    char sa[128], sb[128];
    shape_str(sa, sizeof sa, a.ndim, a.shape);
    shape_str(sb, sizeof sb, b.ndim, b.shape);
    const int64_t row_len = a.ndim > 0 ? a.shape[a.ndim - 1] : 1;
    if (a.ndim != b.ndim || memcmp(a.shape, b.shape, (size_t)a.ndim * sizeof(int64_t)) != 0) {
        cli_fail(sub, "shapes differ: %s is %s, %s is %s", files[0], sa, files[1], sb);
    } else if (rows_path && (a.ndim < 2 || row_len < 1 || r.numel * row_len != a.numel)) {
        cli_fail(sub, "%s: %lld values, one per row of %s (%lld rows) expected", rows_path, (long long)r.numel, sa,
                 (long long)(row_len > 0 ? a.numel / row_len : 0));
    } else {
        double num = 0, den = 0;
        int nan = 0;
        for (int64_t i = 0; i < a.numel; i++) {
            if (rows_path && r.data[i / row_len] == 0.0f) continue;
            double x = a.data[i], ref = b.data[i];
            if (isnan(x) != isnan(ref)) nan = 1;
            if (fabs(x - ref) > num) num = fabs(x - ref);
            if (fabs(ref) > den) den = fabs(ref);
        }
        int ok = !nan && num <= rtol * den;
        printf("compare %s vs %s %s: max|a-b| = %.3e, max|b| = %.3e, ratio %.3e (tolerance %.1e): %s\n", files[0],
               files[1], sa, num, den, den > 0 ? num / den : num, rtol, ok ? "OK" : "DIFFERENT");
        if (!ok) cli_fail(sub, "%s differs from %s: max|a-b| = %.3e > %.1e * max|b| = %.3e%s", files[0], files[1], num,
                          rtol, rtol * den, nan ? " (NaN mismatch)" : "");
        rc = !ok;
    }
    attn_npy_free(&a);
    attn_npy_free(&b);
    attn_npy_free(&r);
    return rc;
}
