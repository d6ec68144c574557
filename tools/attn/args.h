/* SPDX-License-Identifier: MIT */
/* args.h — the small argument parser shared by every `attn` subcommand.
 *
 * Options are "--name value", "--name=value" or bare "--name" for flags.
 * "-h" / "--help" set *want_help. Anything else (unknown option, positional
 * argument, missing or malformed value) prints ONE line
 *     attn <sub>: <problem> (see 'attn <sub> --help')
 * on stderr and makes args_parse return 1. */
#ifndef ATTN_TOOL_ARGS_H
#define ATTN_TOOL_ARGS_H

#include <stdint.h>

typedef enum arg_kind {
    ARG_FLAG = 0,   /* int *: set to 1 */
    ARG_UNFLAG = 1, /* int *: set to 0 (e.g. --no-causal) */
    ARG_INT = 2,    /* int64_t *: decimal integer */
    ARG_DOUBLE = 3, /* double *: finite number */
    ARG_STR = 4,    /* const char **: points into argv; must not be empty */
    ARG_TEXT = 5    /* const char **: like ARG_STR, may be empty */
} arg_kind;

typedef struct arg_spec {
    const char *name; /* without the leading "--" */
    arg_kind kind;
    void *dst;
    const char *metavar; /* shown in help after the name (NULL for flags) */
    const char *help;    /* one line */
} arg_spec;

/* Parses argv[1..argc-1] (argv[0] is the subcommand name). Returns 0 on
 * success, 1 after printing the one-line error. */
int args_parse(const char *sub, int argc, char **argv, const arg_spec *specs, int nspecs, int *want_help);

/* Prints "usage: attn <sub> <usage>", the description, then one line per option. */
void args_print_help(const char *sub, const char *usage, const char *description, const arg_spec *specs,
                     int nspecs);

/* Value of an ARG_INT option the user did not give (initialise it with this). */
#define ARG_UNSET INT64_MIN

/* The --threads N option every computing subcommand has: ARG_UNSET becomes 0 (the library
 * default: ATTN_NUM_THREADS or all CPUs); else N must be in [1, 256] and becomes the
 * library's thread count. Returns 0, or 1 after the one-line error. */
int args_threads(const char *sub, int64_t *threads);

/* One-line error "attn <sub>: <fmt...>" on stderr; returns 1 (the exit code). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_fail(const char *sub, const char *fmt, ...);

#endif
