/* SPDX-License-Identifier: MIT */
/*
 * cmd_train.c — `attn train`: trains the byte-level transformer LM of lm.h on
 * a text file (default: the bundled KJV Genesis + Exodus), or fine-tunes LoRA
 * adapters of a trained checkpoint (--lora R --base FILE), with AdamW, a
 * linear warm-up + cosine learning-rate schedule and global-norm gradient
 * clipping. Holds out the last 10% of the text for validation; writes a
 * safetensors checkpoint. See docs/train.md. With --mpi (under mpirun) the
 * same loop runs sequence-parallel in attn-mpi (train.h, docs/mpi.md).
 */
#include "args.h"
#include "cli.h"
#include "lm.h"
#include "mpi_delegate.h"
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif

#define DEFAULT_DATA "data/kjv_genesis_exodus.txt"
#define DEFAULT_LORA_DATA "data/kjv_proverbs.txt"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads a whole file; bytes are the tokens. */
static int read_text(const char *path, unsigned char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 20, len = 0;
    unsigned char *b = malloc(cap);
    while (b) {
        if (len == cap) {
            unsigned char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (!b || err) { free(b); return 0; }
    *out = b;
    *n = len;
    return 1;
}

/* A bundled file: ATTN_SOURCE_DIR/rel, else rel relative to the working directory. */
static const char *bundled(const char *rel, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", ATTN_SOURCE_DIR, rel);
    if (access(buf, R_OK) == 0) return buf;
    return rel;
}

typedef struct train_args {
    const char *data, *out, *base;
    double seconds, lr;
    long steps, batch, seed, lora, warmup, log_every;
    lm_config cfg;
    int dims_given, seq_given, lr_given;
} train_args;

/* Forward of the batch (B, T): one process, or this process's shard with the
 * loss averaged over the processes (equal shards: the mean of the whole batch). */
static int step_loss(lm_model *m, const train_par *par, const int32_t *x, const int32_t *y, int32_t *xl, int32_t *yl,
                     int B, int T, float *loss) {
    if (!par) return lm_forward(m, x, y, B, T, loss) == ATTN_OK;
    par->shard(par->user, x, B, T, xl);
    par->shard(par->user, y, B, T, yl);
    attn_status st = lm_forward(m, xl, yl, B, T / par->size, loss);
    /* every process calls the mean (collective), failed or not; a failure anywhere is a failure everywhere */
    double bad = par->mean(par->user, st != ATTN_OK ? 1.0 : 0.0);
    double l = par->mean(par->user, st == ATTN_OK ? (double)*loss : 0.0);
    if (bad > 0.0) return 0;
    *loss = (float)l;
    return 1;
}

/* Mean loss over the validation windows (non-overlapping, from the start of
 * the validation slice, at most max_windows), in eval mode. */
static int eval_loss(lm_model *m, const train_par *par, const unsigned char *val, size_t nval, int T, int B,
                     int max_windows, int32_t *x, int32_t *y, int32_t *xl, int32_t *yl, double *out, int *windows) {
    int nw = (int)((nval - 1) / (size_t)T);
    if (nw > max_windows) nw = max_windows;
    if (nw < 1) return 0;
    if (lm_set_training(m, 0) != ATTN_OK) return 0;
    double sum = 0.0;
    for (int w0 = 0; w0 < nw; w0 += B) {
        int b = nw - w0 < B ? nw - w0 : B;
        for (int i = 0; i < b; i++)
            for (int t = 0; t < T; t++) {
                size_t o = (size_t)(w0 + i) * (size_t)T + (size_t)t;
                x[i * T + t] = val[o];
                y[i * T + t] = val[o + 1];
            }
        float loss;
        if (!step_loss(m, par, x, y, xl, yl, b, T, &loss)) return 0;
        sum += (double)loss * b;
    }
    *out = sum / nw;
    *windows = nw;
    return 1;
}

static void progress_bar(double frac, long step, float loss, double tps, double elapsed) {
    int width = 30, fill = (int)(frac * width + 0.5);
    if (fill > width) fill = width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %3.0f%% step %ld loss %.3f %.0f tok/s %.1fs ", bar, 100.0 * frac, step, (double)loss,
            tps, elapsed);
    fflush(stderr);
}

/* an integer option given on the command line: in [lo, hi], else a one-line error */
#define UNSET ARG_UNSET
static int int_in(const char *name, int64_t v, int64_t lo, int64_t hi) {
    if (v == UNSET || (v >= lo && v <= hi)) return 0;
    return cli_fail("train", "--%s %lld: expected an integer in [%lld, %lld]", name, (long long)v, (long long)lo,
                    (long long)hi);
}

int cmd_train(int argc, char **argv) {
    if (cli_has_flag(argc, argv, "--mpi")) return cli_mpi_delegate("train", argc, argv);
    return train_main(argc, argv, NULL);
}

/* ─── the steps of train_main ─────────────────────────────────────────────── */

/* Options into a; 0 to run, 1 an error (printed), 2 --help (printed). */
static int train_parse(int argc, char **argv, train_args *a, const char **loss_file) {
    const char *sub = "train";
    int mpi_flag = 0; /* handled by cmd_train (delegation); accepted here for attn-mpi's argv */
    memset(a, 0, sizeof *a);
    lm_config_default(&a->cfg);
    const char *data = NULL, *out = NULL, *base = NULL;
    double o_seconds = NAN, o_lr = NAN;
    int64_t o_steps = UNSET, o_batch = UNSET, o_seed = UNSET, o_lora = UNSET, o_warmup = UNSET, o_threads = UNSET,
            o_log_every = UNSET, o_layers = UNSET, o_dim = UNSET, o_heads = UNSET, o_kv_heads = UNSET, o_hidden = UNSET,
            o_seq = UNSET;
    *loss_file = NULL;
    const arg_spec specs[] = {
        { "data", ARG_STR, &data, "FILE", "training text, bytes are the tokens (default " DEFAULT_DATA "; LoRA: " DEFAULT_LORA_DATA ")" },
        { "seconds", ARG_DOUBLE, &o_seconds, "SEC", "wall-time budget (default 60); the lr schedule follows elapsed time" },
        { "steps", ARG_INT, &o_steps, "N", "train N steps instead of --seconds (deterministic for a given seed)" },
        { "layers", ARG_INT, &o_layers, "L", "transformer layers (default 2)" },
        { "dim", ARG_INT, &o_dim, "C", "model width (default 64)" },
        { "heads", ARG_INT, &o_heads, "H", "query heads, divides --dim (default 4)" },
        { "kv-heads", ARG_INT, &o_kv_heads, "H", "key/value heads, divides --heads (default 2)" },
        { "hidden", ARG_INT, &o_hidden, "F", "SwiGLU hidden width (default round_up(8C/3, 32): 192 for C 64)" },
        { "seq", ARG_INT, &o_seq, "T", "context length in bytes (default 64)" },
        { "batch", ARG_INT, &o_batch, "B", "sequences per step (default 16)" },
        { "lr", ARG_DOUBLE, &o_lr, "X", "peak learning rate (default 1e-2; LoRA 3e-2)" },
        { "warmup", ARG_INT, &o_warmup, "N", "linear warm-up steps (default 10; --steps N < 200: N/20)" },
        { "seed", ARG_INT, &o_seed, "N", "seed of the initial weights and the batch sampling (default 1337)" },
        { "threads", ARG_INT, &o_threads, "N", "worker threads (default: ATTN_NUM_THREADS or all CPUs)" },
        { "log-every", ARG_INT, &o_log_every, "N", "print a step line every N steps (default 20)" },
        { "out", ARG_STR, &out, "FILE", "checkpoint to write (default attn-lm.safetensors; LoRA attn-lm-lora.safetensors)" },
        { "lora", ARG_INT, &o_lora, "R", "fine-tune rank-R LoRA adapters (alpha 2R) on q_proj, v_proj of --base" },
        { "base", ARG_STR, &base, "FILE", "the checkpoint --lora starts from (its other weights stay frozen)" },
        { "loss-file", ARG_STR, loss_file, "FILE", "also write every step's loss (%.9g, one 'step loss' line each) to FILE" },
        { "mpi", ARG_FLAG, &mpi_flag, NULL, "sequence-parallel under mpirun: each rank a shard of every sequence, gradients averaged (attn-mpi; docs/mpi.md)" },
    };
    const int nspecs = (int)(sizeof specs / sizeof specs[0]);
    int help = 0;
    if (args_parse(sub, argc, argv, specs, nspecs, &help)) return 1;
    if (help) {
        args_print_help(sub, "[options]",
                        "Trains a byte-level causal transformer language model (RMSNorm, attn_mha with RoPE + GQA,\n"
                        "SwiGLU MLP) on a text file with AdamW, a warm-up + cosine schedule and gradient clipping,\n"
                        "holds out the last 10% of the text for validation and writes a safetensors checkpoint\n"
                        "for 'attn generate'. With --lora R --base FILE it fine-tunes LoRA adapters instead.\n"
                        "See docs/train.md.",
                        specs, nspecs);
        return 2;
    }
    if (!isnan(o_seconds) && o_steps != UNSET) return cli_fail(sub, "give --seconds or --steps, not both");
    if (!isnan(o_seconds) && !(o_seconds >= 0.01 && o_seconds <= 1e7))
        return cli_fail(sub, "--seconds %g: expected a number of seconds in [0.01, 1e7]", o_seconds);
    if (!isnan(o_lr) && !(o_lr >= 1e-8 && o_lr <= 10.0)) return cli_fail(sub, "--lr %g: expected a number in [1e-8, 10]", o_lr);
    if (int_in("steps", o_steps, 1, 100000000) || int_in("batch", o_batch, 1, 4096) ||
        int_in("seed", o_seed, 0, 2147483647) || int_in("lora", o_lora, 1, 1024) || int_in("warmup", o_warmup, 0, 100000000) ||
        int_in("log-every", o_log_every, 1, 100000000) ||
        int_in("layers", o_layers, 0, 256) || int_in("dim", o_dim, 2, 16384) || int_in("heads", o_heads, 1, 1024) ||
        int_in("kv-heads", o_kv_heads, 1, 1024) || int_in("hidden", o_hidden, 1, 65536) || int_in("seq", o_seq, 1, 65536))
        return 1;
    if ((o_lora != UNSET) != (base != NULL)) return cli_fail(sub, "--lora R and --base FILE go together");
    a->data = data;
    a->out = out;
    a->base = base;
    a->steps = o_steps != UNSET ? (long)o_steps : 0;
    a->seconds = isnan(o_seconds) ? 60.0 : o_seconds;
    a->batch = o_batch != UNSET ? (long)o_batch : 16;
    a->seed = o_seed != UNSET ? (long)o_seed : 1337;
    a->lora = o_lora != UNSET ? (long)o_lora : 0;
    a->warmup = o_warmup != UNSET ? (long)o_warmup : -1;
    a->log_every = o_log_every != UNSET ? (long)o_log_every : 0;
    a->lr_given = !isnan(o_lr);
    a->lr = a->lr_given ? o_lr : a->lora ? 3e-2 : 1e-2; /* LoRA: adapters start at B = 0 and like a larger step */
    if (o_layers != UNSET) a->cfg.n_layer = (int)o_layers;
    if (o_dim != UNSET) a->cfg.dim = (int)o_dim;
    if (o_heads != UNSET) a->cfg.n_head = (int)o_heads;
    if (o_kv_heads != UNSET) a->cfg.n_kv_head = (int)o_kv_heads;
    if (o_hidden != UNSET) a->cfg.hidden = (int)o_hidden;
    if (o_seq != UNSET) a->cfg.max_seq = (int)o_seq;
    a->dims_given = o_layers != UNSET || o_dim != UNSET || o_heads != UNSET || o_kv_heads != UNSET || o_hidden != UNSET;
    a->seq_given = o_seq != UNSET;
    return args_threads(sub, &o_threads) ? 1 : 0;
}

/* What the steps of one run share. Buffers: x, y (B, T) the sampled batch;
 * xl, yl (B, T) room for this process's shard (B, T / size); hist (hist_cap)
 * the loss of every step so far. */
typedef struct train_run {
    train_args a;
    const train_par *par; /* NULL: one process */
    int root;             /* prints the log, writes the checkpoint and the loss file */
    const char *data, *out, *loss_file;
    lm_model *m;
    attn_optim *opt;
    unsigned char *text; /* the whole data file: train = text[0, ntrain), val = text[ntrain, n) */
    size_t n, ntrain, nval;
    int B, T;
    int32_t *x, *y, *xl, *yl;
    FILE *lossf;
    float *hist;
    long hist_cap;
} train_run;

static void train_free(train_run *r) {
    free(r->hist);
    attn_optim_free(r->opt);
    lm_free(r->m);
    free(r->text);
    free(r->x);
    free(r->y);
    free(r->xl);
    free(r->yl);
}

/* A new model of a.cfg, or (--lora) the base checkpoint with adapters attached. */
static int train_model(train_run *r) {
    train_args *a = &r->a;
    attn_status st;
    if (!a->lora) {
        st = lm_config_validate(&a->cfg);
        if (st == ATTN_OK) st = lm_create(&r->m, &a->cfg, (uint64_t)a->seed);
        if (st != ATTN_OK) { fprintf(stderr, "attn train: %s\n", lm_error()); return 0; }
        return 1;
    }
    st = lm_load(&r->m, a->base);
    if (st != ATTN_OK) { fprintf(stderr, "attn train: --base %s: %s\n", a->base, lm_error()); return 0; }
    if (lm_lora_rank(r->m) > 0) { fprintf(stderr, "attn train: --base %s already has LoRA adapters\n", a->base); return 0; }
    if (a->dims_given) fprintf(stderr, "attn train: note: model dimensions come from --base; --layers/--dim/--heads ignored\n");
    int seq_req = a->seq_given ? a->cfg.max_seq : lm_get_config(r->m)->max_seq;
    a->cfg = *lm_get_config(r->m);
    if (seq_req > a->cfg.max_seq) { fprintf(stderr, "attn train: --seq %d > the base model's %d\n", seq_req, a->cfg.max_seq); return 0; }
    int64_t total = lm_num_params(r->m);
    st = lm_lora_attach(r->m, a->lora, (float)(2 * a->lora), (uint64_t)a->seed);
    if (st != ATTN_OK) { fprintf(stderr, "attn train: %s\n", lm_error()); return 0; }
    a->cfg.max_seq = seq_req; /* train windows; the checkpoint keeps the base's max_seq */
    int64_t lora_n = lm_num_params(r->m) - total, tr = lm_num_trainable(r->m);
    printf("LoRA rank %ld (alpha %ld) on q_proj, v_proj of %d layers: %lld trainable of %lld parameters "
           "(%.2f%%; base %lld frozen)\n",
           a->lora, 2 * a->lora, a->cfg.n_layer, (long long)tr, (long long)(total + lora_n),
           100.0 * (double)tr / (double)(total + lora_n), (long long)total);
    return 1;
}

/* The text (split train / validation), the batch buffers, the parallel
 * attention hooks, the loss file and the optimiser. */
static int train_setup(train_run *r) {
    const char *sub = "train";
    r->T = r->a.cfg.max_seq;
    r->B = (int)r->a.batch;
    const int T = r->T, B = r->B;
    errno = 0;
    if (!read_text(r->data, &r->text, &r->n)) {
        cli_fail(sub, "--data %s: %s", r->data, errno ? strerror(errno) : "read error");
        return 0;
    }
    r->nval = r->n / 10;
    if (r->nval < (size_t)T + 1) r->nval = (size_t)T + 1;
    if (r->n < r->nval + (size_t)T + 1) {
        fprintf(stderr, "attn train: %s has %zu bytes; need at least %zu for --seq %d\n", r->data, r->n,
                r->nval + (size_t)T + 1, T);
        return 0;
    }
    r->ntrain = r->n - r->nval;
    if (r->par && r->par->check_seq(r->par->user, T)) return 0;
    const size_t bt = (size_t)B * (size_t)T * sizeof(int32_t);
    r->x = malloc(bt);
    r->y = malloc(bt);
    r->xl = malloc(bt);
    r->yl = malloc(bt);
    if (!r->x || !r->y || !r->xl || !r->yl) { fprintf(stderr, "attn train: out of memory\n"); return 0; }
    if (r->par && lm_set_attention(r->m, r->par->attn_fwd, r->par->attn_bwd, r->par->user) != ATTN_OK) {
        fprintf(stderr, "attn train: %s\n", lm_error());
        return 0;
    }
    if (r->loss_file && r->root && !(r->lossf = fopen(r->loss_file, "w"))) {
        cli_fail(sub, "--loss-file %s: %s", r->loss_file, strerror(errno));
        return 0;
    }
    if (attn_optim_create_adamw(&r->opt, (float)r->a.lr, 0.9f, 0.95f, 1e-8f, 0.0f) != ATTN_OK) {
        fprintf(stderr, "attn train: attn_optim_create_adamw: %s\n", attn_last_error());
        return 0;
    }
    return 1;
}

static void print_setup(const train_run *r) {
    const lm_config *c = lm_get_config(r->m);
    printf("model: %d layers, dim %d, heads %d (kv %d, head dim %d), SwiGLU hidden %d, byte vocab %d, %lld params\n",
           c->n_layer, c->dim, c->n_head, c->n_kv_head, c->dim / c->n_head, c->hidden, c->vocab,
           (long long)lm_num_params(r->m));
    printf("data: %s: %zu bytes (train %zu, validation %zu); batch %d x seq %d = %d tokens/step\n", r->data, r->n,
           r->ntrain, r->nval, r->B, r->T, r->B * r->T);
    if (r->a.steps) printf("schedule: %ld steps, lr %g, ", r->a.steps, r->a.lr);
    else printf("schedule: %.0f s, lr %g, ", r->a.seconds, r->a.lr);
    printf("AdamW (0.9, 0.95), warm-up + cosine to lr/10, clip 1.0, seed %ld, %d threads\n", r->a.seed,
           attn_get_num_threads());
    if (r->par) printf("parallel: %s\n", r->par->what);
}

/* Linear warm-up over `warmup` steps, then cosine from lr to lr/10 over the progress frac. */
static double lr_at(const train_args *a, long step, long warmup, double frac) {
    if (step < warmup) return a->lr * (double)(step + 1) / (double)(warmup + 1);
    return a->lr * (0.1 + 0.9 * 0.5 * (1.0 + cos(3.141592653589793 * frac)));
}

/* B windows of T + 1 bytes at random offsets of the training text: x the tokens, y the next ones. */
static void sample_batch(train_run *r, lm_rng *rng) {
    const int B = r->B, T = r->T;
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)(lm_rng_next(rng) % (uint64_t)(r->ntrain - (size_t)T));
        for (int t = 0; t < T; t++) {
            r->x[b * T + t] = r->text[o + (size_t)t];
            r->y[b * T + t] = r->text[o + (size_t)t + 1];
        }
    }
}

/* One optimiser step on the sampled batch: loss, gradients (averaged over the
 * processes), global-norm clipping to 1.0, AdamW. 0 on failure (printed). */
static int train_step(train_run *r, long step, int tty, float *loss, double *gn) {
    int64_t np;
    const attn_param *params = lm_params(r->m, &np);
    attn_status st = step_loss(r->m, r->par, r->x, r->y, r->xl, r->yl, r->B, r->T, loss) ? ATTN_OK : ATTN_ERR_STATE;
    if (st == ATTN_OK) st = lm_zero_grad(r->m);
    if (st == ATTN_OK) st = lm_backward(r->m);
    if (r->par) { /* collective whatever happened: every process learns of a failure anywhere */
        attn_status gs = r->par->grad_mean(r->par->user, params, np);
        if (st == ATTN_OK) st = gs;
        if (r->par->mean(r->par->user, st != ATTN_OK ? 1.0 : 0.0) > 0.0 && st == ATTN_OK) {
            fprintf(stderr, "attn train: step %ld: another rank failed\n", step);
            return 0;
        }
    }
    if (st != ATTN_OK) { if (tty) fputs("\r\033[K", stderr); fprintf(stderr, "attn train: step %ld: %s\n", step, lm_error()); return 0; }
    if (!isfinite(*loss)) { if (tty) fputs("\r\033[K", stderr); fprintf(stderr, "attn train: step %ld: loss is %g (diverged; lower --lr)\n", step, (double)*loss); return 0; }
    if (attn_optim_clip_grad_norm(params, np, 1.0, gn) != ATTN_OK || attn_optim_step(r->opt, params, np) != ATTN_OK) {
        fprintf(stderr, "attn train: step %ld: %s\n", step, attn_last_error());
        return 0;
    }
    return 1;
}

/* The step's loss into hist (grown by doubling) and the loss file. */
static int record_loss(train_run *r, long step, float loss) {
    if (step >= r->hist_cap) {
        long nc = r->hist_cap ? r->hist_cap * 2 : 1024;
        float *nh = realloc(r->hist, (size_t)nc * sizeof *nh);
        if (!nh) { fprintf(stderr, "attn train: out of memory\n"); return 0; }
        r->hist = nh;
        r->hist_cap = nc;
    }
    r->hist[step] = loss;
    if (r->lossf) fprintf(r->lossf, "%ld %.9g\n", step, (double)loss);
    return 1;
}

/* Steps until --steps or --seconds are used up (by elapsed time, one clock
 * over the processes); *steps the count taken, *elapsed the seconds. */
static int train_loop(train_run *r, long *steps, long long *tokens, double *elapsed) {
    const train_args *a = &r->a;
    lm_rng rng = {(uint64_t)a->seed * 0x2545F4914F6CDD1Dull + 17};
    const int tty = r->root && isatty(fileno(stderr));
    const long warmup = a->warmup >= 0 ? a->warmup : (a->steps && a->steps < 200 ? (a->steps / 20 > 0 ? a->steps / 20 : 1) : 10);
    const long log_every = a->log_every ? a->log_every : 20;
    const double t0 = now_s();
    long step = 0;
    *tokens = 0;
    for (;; step++) {
        *elapsed = now_s() - t0;
        if (r->par && !a->steps) *elapsed = r->par->mean(r->par->user, *elapsed); /* every rank stops at the same step */
        const double frac = a->steps ? (double)step / (double)a->steps : *elapsed / a->seconds;
        if (frac >= 1.0) break;
        const double lr = lr_at(a, step, warmup, frac);
        attn_optim_set_lr(r->opt, (float)lr);
        sample_batch(r, &rng);
        float loss = 0.0f;
        double gn = 0.0;
        if (!train_step(r, step, tty, &loss, &gn) || !record_loss(r, step, loss)) return 0;
        *tokens += (long long)r->B * r->T;
        *elapsed = now_s() - t0;
        const double tps = (double)*tokens / (*elapsed > 1e-9 ? *elapsed : 1e-9);
        const double fr = a->steps ? (double)(step + 1) / (double)a->steps : *elapsed / a->seconds;
        if (step % log_every == 0) {
            if (tty) fputs("\r\033[K", stderr);
            printf("step %5ld | loss %.4f | lr %.2e | grad norm %.2f | %6.0f tok/s | %5.1f s\n", step, (double)loss, lr, gn,
                   tps, *elapsed);
            fflush(stdout);
        }
        if (tty) progress_bar(fr > 1.0 ? 1.0 : fr, step, loss, tps, *elapsed);
    }
    if (tty) fputs("\r\033[K", stderr);
    *steps = step;
    return 1;
}

int train_main(int argc, char **argv, const train_par *par) {
    train_run r;
    memset(&r, 0, sizeof r);
    const int pr = train_parse(argc, argv, &r.a, &r.loss_file);
    if (pr) return pr == 2 ? 0 : 1;
    r.par = par;
    r.root = !par || par->rank == 0;
    char pathbuf[4096];
    r.data = r.a.data ? r.a.data : bundled(r.a.lora ? DEFAULT_LORA_DATA : DEFAULT_DATA, pathbuf, sizeof pathbuf);
    r.out = r.a.out ? r.a.out : (r.a.lora ? "attn-lm-lora.safetensors" : "attn-lm.safetensors");
    int rc = 1;
    if (!train_model(&r) || !train_setup(&r)) goto done;
    print_setup(&r);

    const int max_val_windows = 64;
    const unsigned char *val = r.text + r.ntrain;
    double val0 = 0.0, val1 = 0.0;
    int nvw = 0;
    if (!eval_loss(r.m, par, val, r.nval, r.T, r.B, max_val_windows, r.x, r.y, r.xl, r.yl, &val0, &nvw)) {
        fprintf(stderr, "attn train: validation: %s\n", lm_error());
        goto done;
    }
    printf("validation loss before training: %.4f (%d windows of %d)\n", val0, nvw, r.T);
    if (lm_set_training(r.m, 1) != ATTN_OK) { fprintf(stderr, "attn train: %s\n", lm_error()); goto done; }

    long steps = 0;
    long long tokens = 0;
    double elapsed = 0.0;
    if (!train_loop(&r, &steps, &tokens, &elapsed)) goto done;
    if (steps == 0) { fprintf(stderr, "attn train: no step ran (raise --seconds)\n"); goto done; }
    const long tail = steps < 10 ? steps : 10;
    double tail_sum = 0.0;
    for (long i = steps - tail; i < steps; i++) tail_sum += r.hist[i];
    const double end_loss = tail_sum / (double)tail;
    printf("trained %ld steps, %lld tokens in %.1f s: %.0f tok/s\n", steps, tokens, elapsed, (double)tokens / elapsed);
    printf("train loss: %.4f (step 0) -> %.4f (mean of the last %ld steps): %.1f%% lower\n", (double)r.hist[0], end_loss,
           tail, 100.0 * (1.0 - end_loss / (double)r.hist[0]));
    if (!eval_loss(r.m, par, val, r.nval, r.T, r.B, max_val_windows, r.x, r.y, r.xl, r.yl, &val1, &nvw)) {
        fprintf(stderr, "attn train: validation: %s\n", lm_error());
        goto done;
    }
    printf("validation loss: %.4f -> %.4f (%d windows of %d bytes, %.3f bits/byte)\n", val0, val1, nvw, r.T,
           val1 / log(2.0));
    int64_t np;
    lm_params(r.m, &np);
    if (r.root && lm_save(r.m, r.out) != ATTN_OK) { /* every process holds the same weights */
        fprintf(stderr, "attn train: saving %s: %s\n", r.out, lm_error());
        goto done;
    }
    printf("saved %s (%lld tensors)\n", r.out, (long long)np);
    rc = 0;
done:
    train_free(&r);
    if (r.lossf && fclose(r.lossf) != 0 && rc == 0) rc = cli_fail("train", "--loss-file %s: write error", r.loss_file);
    return rc;
}
