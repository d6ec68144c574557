/* SPDX-License-Identifier: MIT */
/* bench_progress.c — `attn bench` progress on stderr: on a terminal one line
 * rewritten in place (with the steps inside a row), in a log one line per row. */
#include "bench_cmd.h"

#include <stdarg.h>
#include <stdio.h>

static int g_tty;

void progress_init(int tty) { g_tty = tty; }

void progress(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (g_tty) fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    if (!g_tty) fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

void progress_step(const char *fmt, ...) {
    if (!g_tty) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void progress_clear(void) {
    if (g_tty) fputs("\r\033[K", stderr);
    fflush(stderr);
}
