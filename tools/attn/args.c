/* SPDX-License-Identifier: MIT */
/* args.c — see args.h. */
#include "args.h"
#include "attn.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *sub, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* keep it ONE line whatever the message contains */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "attn %s: %s\n", sub, msg);
    return 1;
}

static const arg_spec *find_spec(const arg_spec *specs, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0) return &specs[i];
    return NULL;
}

int args_parse(const char *sub, int argc, char **argv, const arg_spec *specs, int nspecs, int *want_help) {
    *want_help = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { *want_help = 1; continue; }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (a[0] == '-' && a[1] != 0)
                return cli_fail(sub, "unknown option '%s' (see 'attn %s --help')", a, sub);
            return cli_fail(sub, "unexpected argument '%s' (see 'attn %s --help')", a, sub);
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const arg_spec *s = find_spec(specs, nspecs, name, len);
        if (!s) return cli_fail(sub, "unknown option '--%.*s' (see 'attn %s --help')", (int)len, name, sub);
        if (s->kind == ARG_FLAG || s->kind == ARG_UNFLAG) {
            if (eq) return cli_fail(sub, "option '--%s' takes no value", s->name);
            *(int *)s->dst = s->kind == ARG_FLAG;
            continue;
        }
        const char *val;
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return cli_fail(sub, "option '--%s' needs a value (%s)", s->name, s->metavar ? s->metavar : "VALUE");
        if (s->kind == ARG_STR || s->kind == ARG_TEXT) {
            if (!*val && s->kind == ARG_STR) return cli_fail(sub, "option '--%s' needs a non-empty value", s->name);
            *(const char **)s->dst = val;
        } else if (s->kind == ARG_INT) {
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (errno || end == val || *end)
                return cli_fail(sub, "option '--%s': '%s' is not an integer", s->name, val);
            *(int64_t *)s->dst = (int64_t)v;
        } else {
            char *end;
            errno = 0;
            double v = strtod(val, &end);
            if (errno || end == val || *end || !isfinite(v))
                return cli_fail(sub, "option '--%s': '%s' is not a number", s->name, val);
            *(double *)s->dst = v;
        }
    }
    return 0;
}

void args_print_help(const char *sub, const char *usage, const char *description, const arg_spec *specs,
                     int nspecs) {
    printf("usage: attn %s%s%s\n\n%s\n\noptions:\n", sub, *usage ? " " : "", usage, description);
    for (int i = 0; i < nspecs; i++) {
        char left[64];
        if (specs[i].metavar) snprintf(left, sizeof left, "--%s %s", specs[i].name, specs[i].metavar);
        else snprintf(left, sizeof left, "--%s", specs[i].name);
        printf("  %-26s %s\n", left, specs[i].help);
    }
    printf("  %-26s %s\n", "-h, --help", "show this help");
}

int args_threads(const char *sub, int64_t *threads) {
    if (*threads == ARG_UNSET) {
        *threads = 0;
        return 0;
    }
    if (*threads < 1 || *threads > 256)
        return cli_fail(sub, "--threads %lld: expected an integer in [1, 256]", (long long)*threads);
    if (attn_set_num_threads((int)*threads) != ATTN_OK)
        return cli_fail(sub, "--threads %lld: %s", (long long)*threads, attn_last_error());
    return 0;
}
