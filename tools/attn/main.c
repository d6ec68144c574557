/* SPDX-License-Identifier: MIT */
/* main.c — the `attn` command: dispatch to the subcommands (cli.h), help,
 * version, and the tour (`attn` with no arguments). */
#include "args.h"
#include "cli.h"
#include "core/core.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int cmd_compare(int argc, char **argv); /* cmd_run.c; hidden: used by tests/cli */

typedef struct subcommand {
    const char *name;
    int (*fn)(int, char **);
    const char *summary; /* NULL: hidden */
} subcommand;

static const subcommand SUBS[] = {
    { "info", cmd_info, "CPU features, kernel ISA, threads and the BLAS in use" },
    { "check", cmd_check, "kernels and layer against float64 references (a few seconds)" },
    { "bench", cmd_bench, "speed vs a naive OpenBLAS peer and PyTorch (--quick, --json, --plot, --memory)" },
    { "run", cmd_run, "one HF attention layer: safetensors + config.json + x.npy -> y.npy" },
    { "train", cmd_train, "train a small byte-level language model built on the layer" },
    { "generate", cmd_generate, "sample text from a trained model (KV cache)" },
    { "compare", cmd_compare, NULL },
};
enum { NSUBS = (int)(sizeof SUBS / sizeof SUBS[0]) };

static void usage(FILE *f) {
    fprintf(f, "attn %s — exact, fast multi-head attention on the CPU\n\n", ATTN_VERSION_STRING);
    fprintf(f, "usage: attn [<command> [options]]\n\ncommands:\n");
    for (int i = 0; i < NSUBS; i++)
        if (SUBS[i].summary) fprintf(f, "  %-9s %s\n", SUBS[i].name, SUBS[i].summary);
    fprintf(f, "\nWith no command, attn runs the tour (2-4 minutes, depending on the machine's load): check,\n"
               "bench --quick --seqs 512 --layer-seq 512, train --seconds 45, then generate a sample.\n"
               "'attn <command> --help' lists a command's options; 'attn --version' prints the version.\n"
               "Environment: ATTN_NUM_THREADS (threads), ATTN_ISA=generic|avx2|avx512 (cap the kernel ISA),\n"
               "OPENBLAS_CORETYPE (OpenBLAS kernels, used by the peers and the layer's GEMMs).\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs `attn <args...>` as a child process (the tour's steps stay independent:
 * each has its own memory, thread pools and OpenBLAS set-up). A step that runs
 * longer than limit_s seconds is stopped (SIGTERM, then SIGKILL) and counts as
 * failed, so that the tour still reaches its sample in bounded time. */
static int run_step(const char *title, char *const args[], double limit_s) {
    char line[512] = "";
    size_t used = 0;
    for (int i = 0; args[i] && used < sizeof line - 1; i++)
        used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", i ? " " : "", args[i]);
    printf("\n══ %s: %s\n\n", title, line);
    fflush(stdout);
    double t0 = now_s();
    pid_t pid;
    int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
    if (err) {
        fprintf(stderr, "attn: cannot start '%s': %s\n", line, strerror(err));
        return 1;
    }
    int status = 0, timed_out = 0;
    double killed_at = 0.0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) break;
        double t = now_s() - t0;
        if (!timed_out && t > limit_s) {
            timed_out = 1;
            killed_at = t;
            kill(pid, SIGTERM);
        } else if (timed_out && t > killed_at + 5.0) {
            kill(pid, SIGKILL);
        }
        struct timespec nap = { 0, 50 * 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
    double dt = now_s() - t0;
    int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (timed_out)
        printf("\n── %s: FAILED: stopped after its time limit of %.0f s\n", title, limit_s);
    else
        printf("\n── %s: %s (%.1f s)\n", title, ok ? "ok" : "FAILED", dt);
    fflush(stdout);
    return !ok;
}

/* The tour's steps are sized so that the whole of ./scripts/tour.sh (build included) stays
 * under 4 minutes on a 2-core machine shared with other jobs; README.md quotes a run. */
static int tour(void) {
    printf("attn %s — the tour: correctness check, a short benchmark, a 45-second training run, a sample.\n",
           ATTN_VERSION_STRING);
    printf("(each step is an ordinary subcommand; 'attn --help' lists them)\n");
    double t0 = now_s();
    char *check[] = { "attn", "check", "--quiet", NULL };
    char *bench[] = { "attn", "bench", "--quick", "--seqs", "512", "--layer-seq", "512", NULL };
    char *train[] = { "attn", "train", "--seconds", "45", "--out", "attn-lm.safetensors", NULL };
    char *gen[] = { "attn", "generate", "--ckpt", "attn-lm.safetensors", "--tokens", "300", NULL };
    const char *names[4] = { "check", "bench", "train", "generate" };
    int failed[4];
    /* time limits: ~10x what each step takes on a loaded 2-core machine (bench: ~2x), so that
     * even a hung step leaves the tour under 5 minutes with its sample */
    failed[0] = run_step("1/4 check", check, 60);
    failed[1] = run_step("2/4 bench", bench, 150);
    failed[2] = run_step("3/4 train", train, 120);
    failed[3] = failed[2] ? -1 : run_step("4/4 generate", gen, 60);
    if (failed[3] < 0) printf("\n── 4/4 generate: skipped (training failed)\n");
    int nfail = 0;
    printf("\ntour:");
    for (int i = 0; i < 4; i++) {
        printf(" %s %s%s", names[i], failed[i] == 0 ? "ok" : failed[i] > 0 ? "FAILED" : "skipped", i < 3 ? "," : "\n");
        nfail += failed[i] != 0;
    }
    int secs = (int)(now_s() - t0 + 0.5);
    printf("tour time: %d min %02d s\n", secs / 60, secs % 60);
    fflush(stdout);
    if (nfail) fprintf(stderr, "attn: %d tour step%s failed\n", nfail, nfail > 1 ? "s" : "");
    return nfail ? 1 : 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) return tour();
    const char *a = argv[1];
    if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "help")) {
        if (argc > 2 && strcmp(a, "help") == 0) { /* attn help <command> */
            for (int i = 0; i < NSUBS; i++)
                if (!strcmp(argv[2], SUBS[i].name)) {
                    char *hargv[] = { argv[2], "--help", NULL };
                    return SUBS[i].fn(2, hargv);
                }
            fprintf(stderr, "attn: unknown command '%s' (see 'attn --help')\n", argv[2]);
            return 1;
        }
        usage(stdout);
        return 0;
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version") || !strcmp(a, "version")) {
        printf("attn %s (libattn %s)\n", ATTN_VERSION_STRING, attn_version());
        return 0;
    }
    for (int i = 0; i < NSUBS; i++)
        if (!strcmp(a, SUBS[i].name)) return SUBS[i].fn(argc - 1, argv + 1);
    if (a[0] == '-') fprintf(stderr, "attn: unknown option '%s' (see 'attn --help')\n", a);
    else fprintf(stderr, "attn: unknown command '%s' (see 'attn --help')\n", a);
    return 1;
}
