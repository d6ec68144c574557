/* SPDX-License-Identifier: MIT */
/* bench_opts.c — the options of `attn bench`: the table of flags, their
 * checks (in the order the errors are reported), the defaults that depend on
 * --quick, and the re-exec with OPENBLAS_CORETYPE=SkylakeX. */
#include "bench_cmd.h"
#include "bench_paged.h"
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_blas_core_hint(const char *core); /* cmd_info.c */

/* the list-valued options as given (NULL: not given) */
typedef struct opt_lists {
    const char *seqs, *models, *dtypes, *paged_batches, *paged_ctx, *kv_dtype;
} opt_lists;

static const char HELP[] =
    "Times attn_sdpa_fwd/bwd (plain and causal) at Llama-3-8B (Hq 32, Hkv 8, D 128) and GPT-2\n"
    "(Hq 12, D 64) attention, batch 1, S = 512..4096, single-token decode against a 4096 cache,\n"
    "and the attn_mha layer (E 1024, 16 heads, B 4, S 2048) with its parts timed separately.\n"
    "Each row: median ms, GFLOP/s (forward 4·B·Hq·Sq·Sk·D, halved when causal, backward 2.5x),\n"
    "% of this machine's FP32 peak (FMA probe) and the speed-up over a naive OpenBLAS peer\n"
    "(per head: sgemm Q·Kᵀ into an Sq x Sk buffer, softmax, sgemm P·V) run in the same process,\n"
    "after checking that both give the same output. PyTorch scaled_dot_product_attention and\n"
    "ONNX Runtime (com.microsoft MultiHeadAttention / GroupQueryAttention) run the same inputs\n"
    "via python3 bench/sdpa_peer.py when they import (not in --quick unless --peers); their\n"
    "outputs are checked against attn's too. Layer: PyTorch nn.MultiheadAttention too,\n"
    "via python3 bench/torch_mha_peer.py, when torch imports. The FMA peak is the best of\n"
    "short probes taken through the run (spread reported); a row above it is flagged '>probe'.\n"
    "If OPENBLAS_CORETYPE is unset on an AVX-512 CPU whose OpenBLAS core is not an AVX-512 one,\n"
    "attn bench re-executes itself with OPENBLAS_CORETYPE=SkylakeX (and says so).";

/* The flags into o and l; 1 = bad usage (reported). */
static int parse_argv(int argc, char **argv, bench_opts *o, opt_lists *l, int *help) {
    int mpi_flag = 0;
    const arg_spec specs[] = {
        { "threads", ARG_INT, &o->threads, "N", "threads for attn and for the peers (default 2)" },
        { "mpi", ARG_FLAG, &mpi_flag, NULL, "ring attention over MPI under mpirun: per-rank compute, bytes, hidden communication (runs attn-mpi bench; its options: attn bench --mpi --help)" },
        { "quick", ARG_FLAG, &o->quick, NULL, "short subset (the tour): Llama-3-8B shape at S 1024, decode, decode-paged at batch 1 and 32 x 2048, layer at S 1024" },
        { "seqs", ARG_STR, &l->seqs, "LIST", "sequence lengths (default 512,1024,2048,4096)" },
        { "models", ARG_STR, &l->models, "LIST", "llama3-8b,gpt2 (default both)" },
        { "runs", ARG_INT, &o->runs, "N", "at least N timed runs per row (default 3)" },
        { "min-time", ARG_DOUBLE, &o->min_time, "SEC", "and at least SEC seconds of timed runs per row (default 0.3)" },
        { "no-decode", ARG_FLAG, &o->no_decode, NULL, "skip the decode rows" },
        { "no-layer", ARG_FLAG, &o->no_layer, NULL, "skip the layer rows" },
        { "paged", ARG_FLAG, &o->paged_only, NULL, "only the decode-paged rows (paged KV cache, batched decode)" },
        { "no-paged", ARG_FLAG, &o->no_paged, NULL, "skip the decode-paged rows" },
        { "paged-batches", ARG_STR, &l->paged_batches, "LIST", "batches of the decode-paged rows (default 1,8,32)" },
        { "paged-contexts", ARG_STR, &l->paged_ctx, "LIST", "contexts of the decode-paged rows (default 512,1024,2048,4096,8192)" },
        { "block-size", ARG_INT, &o->block_size, "N", "tokens per block of the decode-paged pool, 16..128 (default 64)" },
        { "kv-dtype", ARG_STR, &l->kv_dtype, "LIST", "KV cache types of the decode-paged / decode-kvcache rows: f32,bf16,f16,int8,bf16-fast,int8-fast (*-fast: with opts.decode_fast; default f32)" },
        { "no-torch", ARG_FLAG, &o->no_torch, NULL, "skip the PyTorch peers (sdpa rows and layer rows)" },
        { "no-ort", ARG_FLAG, &o->no_ort, NULL, "skip the ONNX Runtime peer of the sdpa rows" },
        { "peers", ARG_FLAG, &o->peers_in_quick, NULL, "with --quick: run the PyTorch / ONNX Runtime sdpa peers too" },
        { "layer-seq", ARG_INT, &o->layer_seq, "S", "sequence length of the layer rows (default 2048)" },
        { "dtype", ARG_STR, &l->dtypes, "LIST", "element types of the sdpa rows: f32,bf16,f16 (default f32)" },
        { "json", ARG_STR, &o->json_path, "FILE", "also write every figure to FILE as JSON" },
        { "plot", ARG_STR, &o->plot_path, "FILE", "draw GFLOP/s vs S to FILE.png or FILE.svg (needs gnuplot)" },
        { "memory", ARG_FLAG, &o->memory, NULL, "only measure peak RSS of one causal forward, S 32768, Hq 32, Hkv 8, D 128" },
        { "memory-seq", ARG_INT, &o->memory_seq, "S", "sequence length of --memory (default 32768)" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    if (args_parse(BENCH_SUB, argc, argv, specs, nspecs, help)) return 1;
    if (*help) args_print_help(BENCH_SUB, "[options]", HELP, specs, nspecs);
    return 0;
}

/* ─── list parsing ───────────────────────────────────────────────────────── */
static int parse_seqs(const char *s, int64_t *out, int max, int *n) {
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || v < 1 || v > 65536 || *n >= max || (*end && *end != ',')) return 1;
        out[(*n)++] = v;
        s = *end ? end + 1 : end;
    }
    return *n == 0;
}

/* --dtype LIST into o->dts; 1 = bad (reported) */
static int parse_dtypes(const char *list, bench_opts *o) {
    o->ndt = 0;
    const char *s = list;
    while (*s) {
        size_t len = strcspn(s, ",");
        attn_dtype t;
        if (len == 3 && !strncmp(s, "f32", 3)) t = ATTN_DTYPE_F32;
        else if (len == 4 && !strncmp(s, "bf16", 4)) t = ATTN_DTYPE_BF16;
        else if (len == 3 && !strncmp(s, "f16", 3)) t = ATTN_DTYPE_F16;
        else return cli_fail(BENCH_SUB, "--dtype %s: unknown type '%.*s' (choose from f32, bf16, f16)", list, (int)len, s);
        for (int i = 0; i < o->ndt; i++)
            if (o->dts[i] == t) return cli_fail(BENCH_SUB, "--dtype %s: '%.*s' given twice", list, (int)len, s);
        o->dts[o->ndt++] = t;
        s += len;
        if (*s) s++;
    }
    if (!o->ndt) return cli_fail(BENCH_SUB, "--dtype: empty list");
    return 0;
}

/* --models LIST into o->use_model; 1 = bad (reported) */
static int parse_models(const char *list, bench_opts *o) {
    for (int i = 0; i < NMODELS; i++) o->use_model[i] = 0;
    const char *s = list;
    while (*s) {
        size_t len = strcspn(s, ",");
        int found = 0;
        for (int i = 0; i < NMODELS; i++)
            if (strlen(MODELS[i].name) == len && !strncmp(s, MODELS[i].name, len)) { o->use_model[i] = 1; found = 1; }
        if (!found)
            return cli_fail(BENCH_SUB, "--models %s: unknown model '%.*s' (choose from llama3-8b, gpt2)", list, (int)len, s);
        s += len;
        if (*s) s++;
    }
    return 0;
}

/* the decode-paged lists: --quick is batch 1 and 32 at context 2048 */
static int parse_paged(const opt_lists *l, bench_opts *o) {
    const int64_t pb[3] = {1, 8, 32}, pc[5] = {512, 1024, 2048, 4096, 8192};
    memcpy(o->pbatches, pb, sizeof pb);
    memcpy(o->pctx, pc, sizeof pc);
    o->npb = 3;
    o->npc = o->quick ? 0 : 5;
    if (o->quick) { o->pctx[o->npc++] = 2048; o->pbatches[1] = 32; o->npb = 2; }
    if (l->paged_batches && parse_seqs(l->paged_batches, o->pbatches, 16, &o->npb))
        return cli_fail(BENCH_SUB, "--paged-batches %s: expected a comma-separated list of up to 16 values in [1, 65536]",
                        l->paged_batches);
    if (l->paged_ctx && parse_seqs(l->paged_ctx, o->pctx, 16, &o->npc))
        return cli_fail(BENCH_SUB, "--paged-contexts %s: expected a comma-separated list of up to 16 values in [1, 65536]",
                        l->paged_ctx);
    if (o->block_size < 16 || o->block_size > 128)
        return cli_fail(BENCH_SUB, "--block-size %lld: must be in [16, 128]", (long long)o->block_size);
    o->kv_dtypes[0] = ATTN_DTYPE_F32;
    o->kv_fast[0] = 0;
    o->nkv = 1;
    if (l->kv_dtype && bench_kv_dtypes_parse(l->kv_dtype, o->kv_dtypes, o->kv_fast, 8, &o->nkv))
        return cli_fail(BENCH_SUB, "--kv-dtype %s: expected a comma-separated list of f32, bf16, f16, int8, bf16-fast, int8-fast",
                        l->kv_dtype);
    return 0;
}

/* --plot and --json: fail now, not after minutes of measuring */
static int check_outputs(const bench_opts *o) {
    if (o->plot_path) {
        const char *dot = strrchr(o->plot_path, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".svg")))
            return cli_fail(BENCH_SUB, "--plot %s: the file name must end in .png or .svg", o->plot_path);
        if (!bu_which("gnuplot"))
            return cli_fail(BENCH_SUB, "--plot needs gnuplot, which is not installed (apt-get install gnuplot-nox)");
    }
    if (o->json_path) {
        FILE *f = fopen(o->json_path, "a");
        if (!f) return cli_fail(BENCH_SUB, "--json %s: %s", o->json_path, strerror(errno));
        fclose(f);
    }
    return 0;
}

static int check_numbers(const bench_opts *o) {
    if (o->threads < 1 || o->threads > 256)
        return cli_fail(BENCH_SUB, "--threads %lld: must be in [1, 256]", (long long)o->threads);
    if (o->layer_seq < 1 || o->layer_seq > 65536)
        return cli_fail(BENCH_SUB, "--layer-seq %lld: must be in [1, 65536]", (long long)o->layer_seq);
    if (o->runs < 1 || o->runs > 1000) return cli_fail(BENCH_SUB, "--runs %lld: must be in [1, 1000]", (long long)o->runs);
    if (o->min_time < 0 || o->min_time > 600) return cli_fail(BENCH_SUB, "--min-time %g: must be in [0, 600]", o->min_time);
    return 0;
}

/* --quick: Llama-3-8B shape only (unless --models), S 1024 (unless --seqs), and a layer at
 * S = 1024 (unless --layer-seq) */
static void set_defaults(int argc, char **argv, const opt_lists *l, bench_opts *o) {
    int layer_seq_given = 0;
    for (int i = 1; i < argc; i++) layer_seq_given |= !strncmp(argv[i], "--layer-seq", 11);
    if (!o->nseqs) {
        const int64_t def[4] = {512, 1024, 2048, 4096};
        if (o->quick) { o->seqs[0] = 1024; o->nseqs = 1; }
        else { memcpy(o->seqs, def, sizeof def); o->nseqs = 4; }
    }
    if (o->quick && !l->models) o->use_model[1] = 0;
    if (o->quick && !layer_seq_given) o->layer_seq = 1024;
}

int bench_opts_parse(int argc, char **argv, bench_opts *o, int *help) {
    memset(o, 0, sizeof *o);
    o->threads = 2; o->runs = 3; o->layer_seq = 2048; o->memory_seq = 32768; o->block_size = 64;
    o->min_time = 0.3;
    o->dts[0] = ATTN_DTYPE_F32; o->ndt = 1;
    for (int i = 0; i < NMODELS; i++) o->use_model[i] = 1;
    opt_lists l = { 0 };
    *help = 0;
    if (parse_argv(argc, argv, o, &l, help)) return 1;
    if (*help) return 0;
    if (check_numbers(o) || parse_paged(&l, o)) return 1;
    if (o->paged_only) o->no_layer = 1;
    if (l.seqs && parse_seqs(l.seqs, o->seqs, 16, &o->nseqs))
        return cli_fail(BENCH_SUB, "--seqs %s: expected a comma-separated list of up to 16 lengths in [1, 65536]", l.seqs);
    if ((l.dtypes && parse_dtypes(l.dtypes, o)) || (l.models && parse_models(l.models, o)) || check_outputs(o)) return 1;
    if (o->memory_seq < 1 || o->memory_seq > (1 << 20))
        return cli_fail(BENCH_SUB, "--memory-seq %lld: must be in [1, 1048576]", (long long)o->memory_seq);
    set_defaults(argc, argv, &l, o);
    return 0;
}

/* ─── OpenBLAS core ──────────────────────────────────────────────────────── */
const char *bench_blas_reexec(int argc, char **argv) {
    const char *core = peer_blas_core();
    const char *hint = cli_blas_core_hint(core);
    const char *reexec = getenv("ATTN_BENCH_REEXEC");
    if (hint && !strcmp(hint, "SkylakeX") && !getenv("OPENBLAS_CORETYPE") && !reexec) {
        char *nargv[64];
        int n = 0;
        nargv[n++] = (char *)"attn";
        for (int i = 0; i < argc && n < 63; i++) nargv[n++] = argv[i];
        nargv[n] = NULL;
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        setenv("ATTN_BENCH_REEXEC", core, 1);
        fflush(NULL);
        execv("/proc/self/exe", nargv);
        unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on as we are */
        unsetenv("ATTN_BENCH_REEXEC");
    }
    return reexec;
}
