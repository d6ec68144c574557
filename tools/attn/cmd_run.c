/* SPDX-License-Identifier: MIT */
/* cmd_run.c — `attn run`: one HuggingFace attention layer on an input.
 *
 *   attn run --weights model.safetensors --prefix model.layers.0.self_attn
 *            --config config.json --input x.npy --output y.npy
 *            [--positions p.npy] [--causal | --no-causal] [--threads N]
 *
 * config.json -> attn_hf_config_read -> attn_mha_create; weights loaded with
 * HF names ({prefix}.q_proj.weight ...); x (S, E) or (B, S, E), float32 /
 * float16 / float64; y has x's shape, float32. Every problem is one line
 * "attn run: <file>: <problem>" on stderr and exit status 1.
 *
 * Also the hidden `attn compare A.npy B.npy [--rtol X]` used by the tests:
 * exit 0 iff the shapes agree and max|a - b| <= rtol * max|b|. */
#include "args.h"
#include "cli.h"
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ─── integer .npy (positions) ─────────────────────────────────────────────
 * Reads a little-endian C-order integer array (i1/i2/i4/i8/u1/u2/u4/u8) of at
 * most 2 dimensions into int64. Float arrays go through attn_npy_read and
 * must hold integers. Returns 0, or 1 with a message in err. */
static int read_positions(const char *path, int64_t **out, int *ndim, int64_t shape[2], char *err, size_t errlen) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return 1; }
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fclose(f);
        snprintf(err, errlen, "%s: not a .npy file (bad magic or truncated header)", path);
        return 1;
    }
    size_t hlen;
    if (pre[6] == 1) hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    else if (pre[6] == 2 || pre[6] == 3) {
        unsigned char b2[2];
        if (fread(b2, 1, 2, f) != 2) { fclose(f); snprintf(err, errlen, "%s: truncated header", path); return 1; }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)b2[0] << 16 | (size_t)b2[1] << 24;
    } else {
        fclose(f);
        snprintf(err, errlen, "%s: unsupported .npy version %d", path, pre[6]);
        return 1;
    }
    if (hlen > 65536) { fclose(f); snprintf(err, errlen, "%s: header too long (%zu bytes)", path, hlen); return 1; }
    char hdr[65537];
    if (fread(hdr, 1, hlen, f) != hlen) { fclose(f); snprintf(err, errlen, "%s: truncated header", path); return 1; }
    hdr[hlen] = 0;
    const char *d = strstr(hdr, "'descr':");
    char descr[16] = "";
    if (d) {
        d = strchr(d + 8, '\'');
        if (d) {
            size_t i = 0;
            d++;
            while (d[i] && d[i] != '\'' && i < sizeof descr - 1) { descr[i] = d[i]; i++; }
            descr[i] = 0;
        }
    }
    if (!descr[0]) { fclose(f); snprintf(err, errlen, "%s: header has no 'descr'", path); return 1; }
    if (descr[1] == 'f') { /* float positions: let the library read them */
        fclose(f);
        attn_npy a;
        if (attn_npy_read(path, &a) != ATTN_OK) { snprintf(err, errlen, "%s: %s", path, lib_msg(path)); return 1; }
        if (a.ndim < 1 || a.ndim > 2) {
            snprintf(err, errlen, "%s: positions must be 1-D (S) or 2-D (B, S), got %d dimensions", path, a.ndim);
            attn_npy_free(&a);
            return 1;
        }
        *out = malloc((size_t)(a.numel > 0 ? a.numel : 1) * sizeof(int64_t));
        if (!*out) { attn_npy_free(&a); snprintf(err, errlen, "%s: out of memory", path); return 1; }
        for (int64_t i = 0; i < a.numel; i++) {
            float v = a.data[i];
            if (!(v == floorf(v)) || fabsf(v) > 2147483647.0f) {
                snprintf(err, errlen, "%s: position %lld is %g, not an integer", path, (long long)i, (double)v);
                attn_npy_free(&a);
                free(*out);
                *out = NULL;
                return 1;
            }
            (*out)[i] = (int64_t)v;
        }
        *ndim = a.ndim;
        shape[0] = a.shape[0];
        shape[1] = a.ndim > 1 ? a.shape[1] : 0;
        attn_npy_free(&a);
        return 0;
    }
    int width = descr[2] ? atoi(descr + 2) : 0;
    int is_signed = descr[1] == 'i', is_unsigned = descr[1] == 'u';
    if (!(is_signed || is_unsigned) || descr[0] == '>' || (width != 1 && width != 2 && width != 4 && width != 8) ||
        strlen(descr) != 3) {
        fclose(f);
        snprintf(err, errlen, "%s: positions must be an integer (or float) array, got dtype '%s'", path, descr);
        return 1;
    }
    if (strstr(hdr, "'fortran_order': True")) {
        fclose(f);
        snprintf(err, errlen, "%s: Fortran-order arrays are not supported", path);
        return 1;
    }
    const char *sp = strstr(hdr, "'shape':");
    const char *lp = sp ? strchr(sp, '(') : NULL;
    const char *rp = lp ? strchr(lp, ')') : NULL;
    if (!lp || !rp) { fclose(f); snprintf(err, errlen, "%s: header has no 'shape'", path); return 1; }
    int nd = 0;
    int64_t sh[8];
    const char *p = lp + 1;
    while (p < rp) {
        while (p < rp && (*p == ' ' || *p == ',')) p++;
        if (p >= rp) break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || nd >= 8) { fclose(f); snprintf(err, errlen, "%s: malformed 'shape'", path); return 1; }
        sh[nd++] = v;
        p = end;
    }
    if (nd < 1 || nd > 2) {
        fclose(f);
        snprintf(err, errlen, "%s: positions must be 1-D (S) or 2-D (B, S), got %d dimensions", path, nd);
        return 1;
    }
    int64_t numel = sh[0] * (nd > 1 ? sh[1] : 1);
    if (sh[0] > (int64_t)1 << 31 || (nd > 1 && sh[1] > (int64_t)1 << 31) || numel > (int64_t)1 << 31) {
        fclose(f);
        snprintf(err, errlen, "%s: shape too large", path);
        return 1;
    }
    unsigned char *raw = malloc((size_t)(numel > 0 ? numel : 1) * (size_t)width);
    *out = malloc((size_t)(numel > 0 ? numel : 1) * sizeof(int64_t));
    if (!raw || !*out) {
        fclose(f); free(raw); free(*out); *out = NULL;
        snprintf(err, errlen, "%s: out of memory", path);
        return 1;
    }
    size_t got = fread(raw, (size_t)width, (size_t)numel, f);
    fclose(f);
    if (got != (size_t)numel) {
        free(raw); free(*out); *out = NULL;
        snprintf(err, errlen, "%s: truncated data (%zu of %lld values)", path, got, (long long)numel);
        return 1;
    }
    for (int64_t i = 0; i < numel; i++) {
        const unsigned char *b = raw + i * width;
        uint64_t u = 0;
        for (int j = 0; j < width; j++) u |= (uint64_t)b[j] << (8 * j);
        int64_t v;
        if (is_signed && width < 8 && (u >> (8 * width - 1)) & 1) v = (int64_t)(u | (~(uint64_t)0 << (8 * width)));
        else v = (int64_t)u;
        if (is_unsigned && width == 8 && u > (uint64_t)INT64_MAX) v = INT64_MAX;
        (*out)[i] = v;
    }
    free(raw);
    *ndim = nd;
    shape[0] = sh[0];
    shape[1] = nd > 1 ? sh[1] : 0;
    return 0;
}

int cmd_run(int argc, char **argv) {
    const char *sub = "run";
    const char *weights = NULL, *prefix = "model.layers.0.self_attn", *config = NULL, *input = NULL, *output = NULL,
               *positions = NULL;
    int causal = -1;
    int64_t threads = ARG_UNSET;
    const arg_spec specs[] = {
        { "weights", ARG_STR, &weights, "FILE", "safetensors file with the layer's weights (required)" },
        { "prefix", ARG_STR, &prefix, "NAME", "tensor name prefix (default model.layers.0.self_attn)" },
        { "config", ARG_STR, &config, "FILE", "HuggingFace config.json (required)" },
        { "input", ARG_STR, &input, "FILE", "x: .npy (S, E) or (B, S, E), float32/float16/float64 (required)" },
        { "output", ARG_STR, &output, "FILE", "y: .npy written with x's shape, float32 (required)" },
        { "positions", ARG_STR, &positions, "FILE", "RoPE positions .npy, integer (S) or (B, S) (default 0..S-1)" },
        { "causal", ARG_FLAG, &causal, NULL, "causal self-attention (the default for HF decoder configs)" },
        { "no-causal", ARG_UNFLAG, &causal, NULL, "attend to every position" },
        { "threads", ARG_INT, &threads, "N", "worker threads (default: ATTN_NUM_THREADS or all CPUs)" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    int help = 0;
    if (args_parse(sub, argc, argv, specs, nspecs, &help)) return 1;
    if (help) {
        args_print_help(sub, "--weights FILE --config FILE --input x.npy --output y.npy [options]",
                        "Runs one self-attention layer of a HuggingFace checkpoint (Llama / Qwen2 / Qwen3 / Mistral\n"
                        "style: q/k/v/o_proj, GQA, RoPE incl. llama3 scaling, qk-norm, biases) on x and writes y.",
                        specs, nspecs);
        return 0;
    }
    if (!weights) return cli_fail(sub, "missing --weights FILE (see 'attn run --help')");
    if (!config) return cli_fail(sub, "missing --config FILE (see 'attn run --help')");
    if (!input) return cli_fail(sub, "missing --input FILE (see 'attn run --help')");
    if (!output) return cli_fail(sub, "missing --output FILE (see 'attn run --help')");
    if (args_threads(sub, &threads)) return 1;

    int rc = 1;
    attn_mha *m = NULL;
    attn_st *st = NULL;
    attn_npy x;
    memset(&x, 0, sizeof x);
    int64_t *pos64 = NULL;
    int32_t *pos = NULL;
    float *y = NULL;
    char sh[128];

    attn_mha_config cfg;
    attn_mha_config_init(&cfg);
    if (attn_hf_config_read(config, &cfg) != ATTN_OK) { cli_fail(sub, "%s: %s", config, lib_msg(config)); goto done; }
    if (causal >= 0) cfg.causal = causal;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) { cli_fail(sub, "%s: unsupported layer configuration: %s", config, attn_last_error()); goto done; }
    const attn_mha_config *rcfg = attn_mha_get_config(m);
    const int64_t E = rcfg->embed_dim;
    if (attn_st_open(&st, weights) != ATTN_OK) { cli_fail(sub, "%s: %s", weights, lib_msg(weights)); goto done; }
    if (attn_mha_load(m, st, prefix, ATTN_NAMING_HF) != ATTN_OK) { cli_fail(sub, "%s: %s", weights, lib_msg(weights)); goto done; }
    attn_st_free(st);
    st = NULL;

    if (attn_npy_read(input, &x) != ATTN_OK) { cli_fail(sub, "%s: %s", input, lib_msg(input)); goto done; }
    shape_str(sh, sizeof sh, x.ndim, x.shape);
    if ((x.ndim != 2 && x.ndim != 3) || x.shape[x.ndim - 1] != E) {
        cli_fail(sub, "%s: shape %s does not fit the layer: expected (S, %lld) or (B, S, %lld) (hidden_size %lld in %s)",
                 input, sh, (long long)E, (long long)E, (long long)E, config);
        goto done;
    }
    const int64_t B = x.ndim == 3 ? x.shape[0] : 1, S = x.shape[x.ndim - 2];
    if (B < 1 || S < 1) { cli_fail(sub, "%s: shape %s is empty", input, sh); goto done; }
    for (int64_t i = 0; i < x.numel; i++)
        if (!isfinite(x.data[i])) {
            cli_fail(sub, "%s: element %lld is %s", input, (long long)i, isnan(x.data[i]) ? "NaN" : "infinite");
            goto done;
        }

    if (positions) {
        int pnd = 0;
        int64_t psh[2];
        char err[768];
        if (read_positions(positions, &pos64, &pnd, psh, err, sizeof err)) { cli_fail(sub, "%s", err); goto done; }
        int ok = (pnd == 1 && psh[0] == S) || (pnd == 2 && psh[0] == B && psh[1] == S);
        if (!ok) {
            shape_str(sh, sizeof sh, pnd, psh);
            cli_fail(sub, "%s: shape %s does not match the input: expected (%lld) or (%lld, %lld)", positions, sh,
                     (long long)S, (long long)B, (long long)S);
            goto done;
        }
        pos = malloc((size_t)(B * S) * sizeof(int32_t));
        if (!pos) { cli_fail(sub, "out of memory"); goto done; }
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < S; s++) {
                int64_t v = pos64[(pnd == 2 ? b * S : 0) + s];
                if (v < 0 || v > INT32_MAX) {
                    cli_fail(sub, "%s: position %lld at (%lld, %lld) is out of range [0, 2^31)", positions, (long long)v,
                             (long long)b, (long long)s);
                    goto done;
                }
                pos[b * S + s] = (int32_t)v;
            }
    }

    y = malloc((size_t)x.numel * sizeof(float));
    if (!y) { cli_fail(sub, "out of memory (y: %lld floats)", (long long)x.numel); goto done; }
    attn_mha_input in;
    attn_mha_input_init(&in);
    in.batch = B;
    in.seq_q = S;
    in.x = x.data;
    in.positions = pos;
    if (attn_mha_forward(m, &in, y) != ATTN_OK) { cli_fail(sub, "forward: %s", attn_last_error()); goto done; }
    if (attn_npy_write(output, y, x.ndim, x.shape) != ATTN_OK) { cli_fail(sub, "%s: %s", output, lib_msg(output)); goto done; }
    shape_str(sh, sizeof sh, x.ndim, x.shape);
    /* what the config made of the layer: the features that change y */
    char feat[256];
    size_t fl = 0;
    if (rcfg->rope == ATTN_ROPE_NONE) fl += (size_t)snprintf(feat + fl, sizeof feat - fl, "no RoPE");
    else
        fl += (size_t)snprintf(feat + fl, sizeof feat - fl, "RoPE%s theta %g%s", rcfg->rope == ATTN_ROPE_GPTJ ? " (GPT-J)" : "",
                               (double)rcfg->rope_theta,
                               rcfg->rope_scaling == ATTN_ROPE_SCALING_LLAMA3   ? " llama3-scaled"
                               : rcfg->rope_scaling == ATTN_ROPE_SCALING_LINEAR ? " linear-scaled"
                                                                                 : "");
    if (rcfg->rope != ATTN_ROPE_NONE && rcfg->rope_scaling != ATTN_ROPE_SCALING_NONE && fl < sizeof feat)
        fl += (size_t)snprintf(feat + fl, sizeof feat - fl, " x%g", (double)rcfg->rope_factor);
    if (rcfg->qk_norm && fl < sizeof feat) fl += (size_t)snprintf(feat + fl, sizeof feat - fl, ", qk-norm");
    if ((rcfg->bias_q || rcfg->bias_k || rcfg->bias_v || rcfg->bias_o) && fl < sizeof feat)
        fl += (size_t)snprintf(feat + fl, sizeof feat - fl, ", biases %s%s%s%s", rcfg->bias_q ? "q" : "",
                               rcfg->bias_k ? "k" : "", rcfg->bias_v ? "v" : "", rcfg->bias_o ? "o" : "");
    if (rcfg->window_left >= 0 && fl < sizeof feat)
        fl += (size_t)snprintf(feat + fl, sizeof feat - fl, ", window %lld", (long long)rcfg->window_left + 1);
    printf("attn run: wrote %s %s float32 (layer %s: E %lld, heads %lld/%lld, D %lld, %s, %s)\n", output, sh, prefix,
           (long long)E, (long long)rcfg->num_heads, (long long)rcfg->num_kv_heads, (long long)rcfg->head_dim, feat,
           rcfg->causal ? "causal" : "not causal");
    rc = 0;
done:
    attn_st_free(st);
    attn_mha_free(m);
    attn_npy_free(&x);
    free(pos64);
    free(pos);
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
    const arg_spec specs[] = { { "rtol", ARG_DOUBLE, &rtol, "X", "tolerance: max|a-b| <= X * max|b| (default 1e-5)" } };
    int help = 0;
    if (args_parse(sub, nrest, rest, specs, 1, &help)) return 1;
    if (help) {
        args_print_help(sub, "A.npy B.npy [--rtol X]", "Compares two .npy arrays (B is the reference).", specs, 1);
        return 0;
    }
    if (nf != 2) return cli_fail(sub, "expected two .npy files");
    attn_npy a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    if (attn_npy_read(files[0], &a) != ATTN_OK) return cli_fail(sub, "%s: %s", files[0], lib_msg(files[0]));
    if (attn_npy_read(files[1], &b) != ATTN_OK) {
        attn_npy_free(&a);
        return cli_fail(sub, "%s: %s", files[1], lib_msg(files[1]));
    }
    int rc = 1;
    char sa[128], sb[128];
    shape_str(sa, sizeof sa, a.ndim, a.shape);
    shape_str(sb, sizeof sb, b.ndim, b.shape);
    if (a.ndim != b.ndim || memcmp(a.shape, b.shape, (size_t)a.ndim * sizeof(int64_t)) != 0) {
        cli_fail(sub, "shapes differ: %s is %s, %s is %s", files[0], sa, files[1], sb);
    } else {
        double num = 0, den = 0;
        int nan = 0;
        for (int64_t i = 0; i < a.numel; i++) {
            double x = a.data[i], r = b.data[i];
            if (isnan(x) != isnan(r)) nan = 1;
            if (fabs(x - r) > num) num = fabs(x - r);
            if (fabs(r) > den) den = fabs(r);
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
    return rc;
}
