/* SPDX-License-Identifier: MIT */
/* cli_out.h — files the attn command writes (bench --json): the text is built
 * in memory (open_memstream), then written with the library's atomic writer
 * (a temporary file in the target's directory, fsync, rename; src/io/file.h),
 * so a failure or a crash never leaves a truncated or half-replaced file. */
#ifndef ATTN_TOOL_CLI_OUT_H
#define ATTN_TOOL_CLI_OUT_H

#include "attn.h"

#include <stdio.h>

typedef struct cli_out {
    FILE *f;     /* write the text here */
    char *buf;   /* owned by the stream until commit */
    size_t len;
} cli_out;

/* NULL when out of memory. */
FILE *cli_out_open(cli_out *o);
/* Closes the stream and replaces path atomically; the error is in attn_last_error(). */
attn_status cli_out_commit(cli_out *o, const char *path);

#endif
