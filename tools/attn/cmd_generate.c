/*
 * cmd_generate.c — `attn generate`: loads a checkpoint written by `attn train`,
 * prefills the prompt through attn_mha_forward_cached (one attn_kvcache per
 * layer), then samples byte by byte, feeding each new token through the cache.
 * When the context reaches the model's max_seq, the cache is refilled with
 * the last max_seq/2 tokens (sliding window) and decoding continues.
 */
#include "cli.h"
#include "lm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: attn generate [--ckpt FILE] [--prompt TEXT] [--tokens N] [--temperature T]\n"
            "                     [--top-k K] [--seed N] [--threads N]\n"
            "  Samples N bytes from a checkpoint of `attn train` (default attn-lm.safetensors),\n"
            "  using a KV cache. Defaults: --prompt \"And God said\" --tokens 300\n"
            "  --temperature 0.8 --top-k 40 --seed 1. --temperature 0 is greedy.\n"
            "  The text goes to stdout, statistics to stderr.\n");
}

int cmd_generate(int argc, char **argv) {
    const char *ckpt = "attn-lm.safetensors", *prompt = "And God said";
    long ntok = 300, top_k = 40, seed = 1, threads = 0;
    double temp = 0.8;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) { usage(stdout); return 0; }
        if (!v) { fprintf(stderr, "attn generate: %s: unknown option or missing value (see --help)\n", k); return 1; }
        char *end;
        errno = 0;
        if (!strcmp(k, "--ckpt")) ckpt = v;
        else if (!strcmp(k, "--prompt")) prompt = v;
        else if (!strcmp(k, "--temperature")) {
            temp = strtod(v, &end);
            if (errno || end == v || *end || !(temp >= 0.0 && temp <= 100.0)) {
                fprintf(stderr, "attn generate: --temperature %s: expected a number in [0, 100]\n", v);
                return 1;
            }
        } else {
            long *dst = !strcmp(k, "--tokens") ? &ntok : !strcmp(k, "--top-k") ? &top_k
                      : !strcmp(k, "--seed") ? &seed : !strcmp(k, "--threads") ? &threads : NULL;
            if (!dst) { fprintf(stderr, "attn generate: unknown option %s (see --help)\n", k); return 1; }
            long x = strtol(v, &end, 10);
            if (errno || end == v || *end || x < 0 || x > 100000000L) {
                fprintf(stderr, "attn generate: %s %s: expected an integer >= 0\n", k, v);
                return 1;
            }
            *dst = x;
        }
        i++;
    }
    if (threads > 0 && attn_set_num_threads((int)threads) != ATTN_OK) {
        fprintf(stderr, "attn generate: --threads %ld: %s\n", threads, attn_last_error());
        return 1;
    }
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
    fprintf(stderr, "prefill %d tokens in %.1f ms (%.0f tok/s); generated %ld tokens in %.2f s (%.0f tok/s)", (int)plen,
            1e3 * t_prefill, plen / (t_prefill > 1e-9 ? t_prefill : 1e-9), ntok, t_decode,
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
