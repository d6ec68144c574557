/* SPDX-License-Identifier: MIT */
/* testutil.c — see testutil.h */
#include "testutil.h"

#include "attn.h"

#include <math.h>

long tu_pass = 0, tu_fail = 0;

int test_summary(const char *name) {
    attn_threads_release(); /* tests end with no worker threads (valgrind: nothing "possibly lost") */
    printf("%s: %ld passed, %ld failed\n", name, tu_pass, tu_fail);
    return tu_fail == 0 ? 0 : 1;
}

uint64_t tu_next(tu_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
double tu_uniform(tu_rng *r) { return (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0); }
double tu_normal(tu_rng *r) {
    double u1 = tu_uniform(r), u2 = tu_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
int64_t tu_int(tu_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)(tu_next(r) % (uint64_t)(hi - lo + 1));
}
void tu_fill(tu_rng *r, float *p, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)(tu_normal(r) * scale);
}

double tu_rel_err(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d) return INFINITY;
        md = fmax(md, d);
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / fmax(mb, 1e-6);
}
