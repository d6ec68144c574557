/* SPDX-License-Identifier: MIT */
/* testutil.h — tiny test harness shared by every test binary.
 * CHECK records a failure (and prints where) without aborting; a test's main
 * ends with `return test_summary("name");`, which prints
 * "N passed, N failed" and returns non-zero if anything failed. */
#ifndef ATTN_TESTUTIL_H
#define ATTN_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>

extern long tu_pass, tu_fail;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (cond) { tu_pass++; }                                                     \
        else {                                                                       \
            tu_fail++;                                                               \
            if (tu_fail <= 50) {                                                     \
                fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
                fprintf(stderr, __VA_ARGS__);                                        \
                fputc('\n', stderr);                                                 \
            }                                                                        \
        }                                                                            \
    } while (0)

/* CHECK that `call` returns the status `want` with `msg` in attn_last_error(). */
#define CHECK_FAILS(call, want, msg)                                                         \
    do {                                                                                     \
        attn_status s_ = (call);                                                             \
        CHECK(s_ == (want) && strstr(attn_last_error(), msg), "%s: status %d, message '%s'", \
              #call, (int)s_, attn_last_error());                                            \
    } while (0)

int test_summary(const char *name);

/* Deterministic RNG (xoshiro-like splitmix) for test data. */
typedef struct { uint64_t s; } tu_rng;
uint64_t tu_next(tu_rng *r);
double tu_uniform(tu_rng *r);            /* [0, 1) */
double tu_normal(tu_rng *r);             /* N(0, 1) */
int64_t tu_int(tu_rng *r, int64_t lo, int64_t hi); /* inclusive */
void tu_fill(tu_rng *r, float *p, int64_t n, float scale); /* N(0, scale^2) */
/* max |a - b| / max |b| (max |b| floored at 1e-6); inf if a NaN appears. */
double tu_rel_err(const float *a, const float *b, int64_t n);

#endif
