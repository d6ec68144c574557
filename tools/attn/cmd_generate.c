/* SPDX-License-Identifier: MIT */
/*
 * cmd_generate.c — `attn generate`: loads a checkpoint written by `attn train`,
 * prefills the prompt through attn_mha_forward_cached (one attn_kvcache per
 * layer), then samples byte by byte, feeding each new token through the cache.
 * When the context reaches the model's max_seq, the cache is refilled with
 * the last max_seq/2 tokens (sliding window) and decoding continues.
 *
 * --batch N: continuous batching through a paged KV cache (one attn_kvpaged
 * per layer). The prompt is prefilled once into a template sequence; each of
 * --sequences M samples forks it (sharing the prompt's blocks; the first
 * write into a shared block copies it), at most N run at once, and every
 * step feeds one new token of each running sequence through one
 * attn_mha_forward_paged call per layer. Sequences stop at their own length
 * (between tokens/2 and tokens, and within the model's context); a finished
 * one is printed and removed, and the next one starts in its place.
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

/* One running sequence of --batch mode. */
typedef struct gen_seq {
    int64_t id;
    int index;          /* 0..M-1, the order in which sequences started */
    int produced, budget;
    lm_rng rng;
    unsigned char *text; /* (budget) sampled bytes */
    float *logits;       /* (V) logits of the last fed token */
} gen_seq;

typedef struct gen_batch_cfg {
    const char *prompt;
    const int32_t *ctx; /* (n) prompt tokens */
    int n;
    int64_t ntok, top_k, seed, batch, sequences;
    double temp;
} gen_batch_cfg;

/* Starts sequence `index` in slot q: a fork of the template (id 0). */
static attn_status gen_start(lm_paged *pc, gen_seq *q, int index, const gen_batch_cfg *g, const float *logits0, int V,
                             int room) {
    q->id = index + 1;
    q->index = index;
    q->produced = 0;
    int64_t b = g->ntok * (g->batch + index % g->batch) / (2 * g->batch); /* in [ntok/2, ntok): staggered ends */
    if (b < 1) b = 1;
    if (b > room) b = room;
    q->budget = (int)b;
    q->rng.s = (uint64_t)(g->seed + index) * 0x9E3779B97F4A7C15ull + 1;
    memcpy(q->logits, logits0, (size_t)V * sizeof(float));
    return lm_paged_fork(pc, 0, q->id);
}

static int generate_batch(lm_model *m, const gen_batch_cfg *g) {
    const lm_config *c = lm_get_config(m);
    const int S = c->max_seq, V = c->vocab, N = (int)g->batch;
    const int room = S - g->n > 1 ? S - g->n : 1; /* new tokens per sequence: they fit in its context (the last is never fed) */
    int rc = 1;
    lm_paged *pc = NULL;
    gen_seq *act = calloc((size_t)N, sizeof *act);
    float *logits0 = malloc((size_t)V * sizeof(float)), *lb = malloc((size_t)N * V * sizeof(float));
    int64_t *ids = malloc((size_t)N * sizeof(int64_t));
    int32_t *cu = malloc((size_t)(N + 1) * sizeof(int32_t)), *toks = malloc((size_t)N * sizeof(int32_t));
    int *slot = malloc((size_t)N * sizeof(int));
    int ok = act && logits0 && lb && ids && cu && toks && slot;
    for (int i = 0; ok && i < N; i++) {
        act[i].text = malloc((size_t)room);
        act[i].logits = malloc((size_t)V * sizeof(float));
        ok = act[i].text && act[i].logits;
    }
    if (!ok) { fprintf(stderr, "attn generate: out of memory\n"); goto done; }
    /* pool: N + 1 sequences (the template), each at most S tokens in 16-token blocks */
    const int64_t per = (S + 15) / 16;
    attn_status st = lm_paged_create(&pc, m, N + 1, S, (int64_t)(N + 1) * per);
    if (st == ATTN_OK) st = lm_set_training(m, 0);
    if (st == ATTN_OK) st = lm_paged_add(pc, 0);
    const int64_t id0 = 0;
    const int32_t cu0[2] = {0, g->n};
    double t0 = now_s();
    if (st == ATTN_OK) st = lm_forward_paged(m, pc, &id0, 1, cu0, g->ctx, logits0);
    if (st != ATTN_OK) { fprintf(stderr, "attn generate: %s\n", lm_error()); goto done; }
    const double t_prefill = now_s() - t0;
    int nact = 0, started = 0, steps = 0;
    long long produced = 0, fed = 0;
    const double t1 = now_s();
    while (started < g->sequences || nact > 0) {
        for (; nact < N && started < g->sequences; nact++, started++) /* new sequences join */
            if ((st = gen_start(pc, &act[nact], started, g, logits0, V, room)) != ATTN_OK) break;
        if (st != ATTN_OK) break;
        int n = 0;
        cu[0] = 0;
        for (int i = 0; i < nact;) { /* sample one byte each; finished sequences leave */
            gen_seq *q = &act[i];
            const int tok = lm_sample(q->logits, V, (float)g->temp, (int)g->top_k, &q->rng);
            q->text[q->produced++] = (unsigned char)tok;
            produced++;
            if (q->produced == q->budget) {
                printf("--- sequence %d (%d bytes) ---\n%s", q->index, q->produced, g->prompt);
                fwrite(q->text, 1, (size_t)q->produced, stdout);
                fputc('\n', stdout);
                if ((st = lm_paged_remove(pc, q->id)) != ATTN_OK) break;
                gen_seq t = act[i]; act[i] = act[nact - 1]; act[nact - 1] = t; /* keep the buffers */
                nact--;
                continue;
            }
            ids[n] = q->id; toks[n] = tok; slot[n] = i; cu[n + 1] = n + 1;
            n++;
            i++;
        }
        if (st != ATTN_OK) break;
        if (n == 0) continue;
        if ((st = lm_forward_paged(m, pc, ids, n, cu, toks, lb)) != ATTN_OK) break;
        for (int b = 0; b < n; b++) memcpy(act[slot[b]].logits, lb + (size_t)b * V, (size_t)V * sizeof(float));
        steps++;
        fed += n;
    }
    if (st != ATTN_OK) { fprintf(stderr, "attn generate: %s\n", lm_error()); goto done; }
    const double t_decode = now_s() - t1;
    fflush(stdout);
    fprintf(stderr, "prefill %d tokens in %.1f ms (once, shared by every sequence); batch %d: %d sequences, %lld tokens "
            "in %.2f s (%.0f tok/s), %d steps of %.1f sequences on average\n", g->n, 1e3 * t_prefill, N, started, produced,
            t_decode, (double)produced / (t_decode > 1e-9 ? t_decode : 1e-9), steps, steps ? (double)fed / steps : 0.0);
    rc = 0;
done:
    lm_paged_free(pc);
    for (int i = 0; act && i < N; i++) { free(act[i].text); free(act[i].logits); }
    free(act); free(logits0); free(lb); free(ids); free(cu); free(toks); free(slot);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *sub = "generate";
    const char *ckpt = "attn-lm.safetensors", *prompt = "And God said";
    int64_t ntok = 300, top_k = 40, seed = 1, threads = ARG_UNSET, batch = 0, sequences = 0;
    double temp = 0.8;
    const arg_spec specs[] = {
        { "ckpt", ARG_STR, &ckpt, "FILE", "checkpoint written by 'attn train' (default attn-lm.safetensors)" },
        { "prompt", ARG_TEXT, &prompt, "TEXT", "text to continue, may be empty (default \"And God said\")" },
        { "tokens", ARG_INT, &ntok, "N", "bytes to generate (default 300)" },
        { "temperature", ARG_DOUBLE, &temp, "T", "sampling temperature in [0, 100]; 0 is greedy (default 0.8)" },
        { "top-k", ARG_INT, &top_k, "K", "sample among the K likeliest bytes; 0 = all 256 (default 40)" },
        { "seed", ARG_INT, &seed, "N", "sampling seed (default 1)" },
        { "threads", ARG_INT, &threads, "N", "worker threads (default: ATTN_NUM_THREADS or all CPUs)" },
        { "batch", ARG_INT, &batch, "N", "continuous batching: N sequences at once through a paged KV cache" },
        { "sequences", ARG_INT, &sequences, "M", "--batch: sequences to generate in all (default 2 N)" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    int help = 0;
    if (args_parse(sub, argc, argv, specs, nspecs, &help)) return 1;
    if (help) {
        args_print_help(sub, "[options]",
                        "Loads a checkpoint of 'attn train', prefills the prompt through one KV cache per layer,\n"
                        "then samples N bytes one at a time through the cache (when the context is full it keeps\n"
                        "the last half and refills the cache). The prompt and the sample go to stdout, timing to\n"
                        "stderr. --batch N: M samples of the prompt (seeds seed, seed+1, ...), N at a time, through\n"
                        "a paged KV cache with continuous batching (each stops at its own length, between N/2 and\n"
                        "N tokens and within the context; the next starts in its place); prints tokens/s.",
                        specs, nspecs);
        return 0;
    }
    if (!(temp >= 0.0 && temp <= 100.0)) return cli_fail(sub, "--temperature %g: expected a number in [0, 100]", temp);
    if (ntok < 0 || ntok > 100000000)
        return cli_fail(sub, "--tokens %lld: expected an integer in [0, 100000000]", (long long)ntok);
    if (top_k < 0 || top_k > 256) return cli_fail(sub, "--top-k %lld: expected an integer in [0, 256]", (long long)top_k);
    if (seed < 0) return cli_fail(sub, "--seed %lld: expected an integer >= 0", (long long)seed);
    if (args_threads(sub, &threads)) return 1;
    if (batch < 0 || batch > 4096) return cli_fail(sub, "--batch %lld: expected an integer in [0, 4096]", (long long)batch);
    if (sequences < 0 || sequences > 1000000)
        return cli_fail(sub, "--sequences %lld: expected an integer in [0, 1000000]", (long long)sequences);
    if (sequences && !batch) return cli_fail(sub, "--sequences needs --batch");
    if (batch && !sequences) sequences = 2 * batch;
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
    if (batch) {
        const gen_batch_cfg g = {prompt, ctx, n, ntok < 1 ? 1 : ntok, top_k, seed, batch, sequences, temp};
        rc = generate_batch(m, &g);
        goto done;
    }
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
