/* SPDX-License-Identifier: MIT */
/*
 * cmd_generate.c — `attn generate`: loads a checkpoint written by `attn train`,
 * prefills the prompt through attn_mha_forward_cached (one attn_kvcache per
 * layer), then samples byte by byte, feeding each new token through the cache.
 * When the context reaches the model's max_seq, the cache is refilled with
 * the last max_seq/2 tokens (sliding window) and decoding continues.
 */
#include "args.h"
#include "cli.h"
#include "lm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cmd_generate(int argc, char **argv) {
    const char *sub = "generate";
    const char *ckpt = "attn-lm.safetensors", *prompt = "And God said";
    int64_t ntok = 300, top_k = 40, seed = 1, threads = ARG_UNSET;
    double temp = 0.8;
    const arg_spec specs[] = {
        { "ckpt", ARG_STR, &ckpt, "FILE", "checkpoint written by 'attn train' (default attn-lm.safetensors)" },
        { "prompt", ARG_TEXT, &prompt, "TEXT", "text to continue, may be empty (default \"And God said\")" },
        { "tokens", ARG_INT, &ntok, "N", "bytes to generate (default 300)" },
        { "temperature", ARG_DOUBLE, &temp, "T", "sampling temperature in [0, 100]; 0 is greedy (default 0.8)" },
        { "top-k", ARG_INT, &top_k, "K", "sample among the K likeliest bytes; 0 = all 256 (default 40)" },
        { "seed", ARG_INT, &seed, "N", "sampling seed (default 1)" },
        { "threads", ARG_INT, &threads, "N", "worker threads (default: ATTN_NUM_THREADS or all CPUs)" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    int help = 0;
    if (args_parse(sub, argc, argv, specs, nspecs, &help)) return 1;
    if (help) {
        args_print_help(sub, "[options]",
                        "Loads a checkpoint of 'attn train', prefills the prompt through one KV cache per layer,\n"
                        "then samples N bytes one at a time through the cache (when the context is full it keeps\n"
                        "the last half and refills the cache). The prompt and the sample go to stdout, timing to\n"
                        "stderr.",
                        specs, nspecs);
        return 0;
    }
    if (!(temp >= 0.0 && temp <= 100.0)) return cli_fail(sub, "--temperature %g: expected a number in [0, 100]", temp);
    if (ntok < 0 || ntok > 100000000)
        return cli_fail(sub, "--tokens %lld: expected an integer in [0, 100000000]", (long long)ntok);
    if (top_k < 0 || top_k > 256) return cli_fail(sub, "--top-k %lld: expected an integer in [0, 256]", (long long)top_k);
    if (seed < 0) return cli_fail(sub, "--seed %lld: expected an integer >= 0", (long long)seed);
    if (args_threads(sub, &threads)) return 1;
    int rc = 1;
    lm_model *m = NULL;
    lm_cache *cache = NULL;
    int32_t *ctx = NULL;
    float *logits = NULL;
    attn_status st = lm_load(&m, ckpt);
    if (st != ATTN_OK) { fprintf(stderr, "attn generate: %s\n", lm_error()); return 1; }
    const lm_config *c = lm_get_config(m);
    int S = c->max_seq, V = c->vocab;
    /* the context: prompt bytes (the last S - 1 if longer), "\n" if empty */
    size_t plen = strlen(prompt);
    const char *p = prompt;
    if (plen == 0) { p = "\n"; plen = 1; }
    size_t maxp = S > 1 ? (size_t)S - 1 : 1; /* leave room for one generated token */
    if (plen > maxp) {
        fprintf(stderr, "attn generate: note: prompt longer than the model's context %d; keeping its last %zu bytes\n", S, maxp);
        p += plen - maxp;
        plen = maxp;
    }
    ctx = malloc((size_t)S * sizeof *ctx);
    logits = malloc((size_t)V * sizeof *logits);
    if (!ctx || !logits) { fprintf(stderr, "attn generate: out of memory\n"); goto done; }
    st = lm_cache_create(&cache, m, S);
    if (st == ATTN_OK) st = lm_set_training(m, 0);
    if (st != ATTN_OK) { fprintf(stderr, "attn generate: %s\n", lm_error()); goto done; }
    int n = (int)plen;
    for (int i = 0; i < n; i++) ctx[i] = (unsigned char)p[i];
    fwrite(prompt, 1, strlen(prompt), stdout);
    fflush(stdout);
    lm_rng rng = {(uint64_t)seed * 0x9E3779B97F4A7C15ull + 1};
    double t0 = now_s();
    st = lm_forward_cached(m, cache, ctx, n, logits);
    if (st != ATTN_OK) { fputc('\n', stdout); fprintf(stderr, "attn generate: prefill: %s\n", lm_error()); goto done; }
    double t_prefill = now_s() - t0, t1 = now_s();
    long refills = 0;
    for (long i = 0; i < ntok; i++) {
        int tok = lm_sample(logits, V, (float)temp, (int)top_k, &rng);
        unsigned char ch = (unsigned char)tok;
        fputc(ch, stdout);
        if (ch == '\n') fflush(stdout);
        if (i + 1 == ntok) break;
        if (n == S) { /* context full: keep the last S/2 tokens, refill the cache with them */
            int keep = S / 2; /* 0 when S == 1 */
            memmove(ctx, ctx + (n - keep), (size_t)keep * sizeof *ctx);
            n = keep;
            st = lm_cache_reset(cache);
            if (st == ATTN_OK && n > 0) st = lm_forward_cached(m, cache, ctx, n, logits);
            if (st != ATTN_OK) { fputc('\n', stdout); fprintf(stderr, "attn generate: refill: %s\n", lm_error()); goto done; }
            refills++;
        }
        ctx[n++] = tok;
        st = lm_forward_cached(m, cache, &ctx[n - 1], 1, logits);
        if (st != ATTN_OK) { fputc('\n', stdout); fprintf(stderr, "attn generate: decode: %s\n", lm_error()); goto done; }
    }
    double t_decode = now_s() - t1;
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "prefill %d tokens in %.1f ms (%.0f tok/s); generated %lld tokens in %.2f s (%.0f tok/s)", (int)plen,
            1e3 * t_prefill, plen / (t_prefill > 1e-9 ? t_prefill : 1e-9), (long long)ntok, t_decode,
            ntok / (t_decode > 1e-9 ? t_decode : 1e-9));
    if (refills) fprintf(stderr, "; context refilled %ld times", refills);
    fprintf(stderr, "\n");
    rc = 0;
done:
    lm_cache_free(cache);
    lm_free(m);
    free(ctx);
    free(logits);
    return rc;
}
