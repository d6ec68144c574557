/* SPDX-License-Identifier: MIT */
/* test_fuzz_replay.c — replays every file of tests/fuzz/corpus/<target>/ and
 * tests/fuzz/regressions/<target>/ through the same entry points as the
 * libFuzzer targets (tests/fuzz/fuzz_<target>.c, included here), in the
 * normal build: the ASan/UBSan CI run then covers every committed input.
 * A failed invariant is a test failure instead of an abort. */
#include "testutil.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NO_MAIN
#define FUZZ_CHECK(c) CHECK(c, "fuzz invariant (input %s)", g_current)
static const char *g_current = "";

#include "fuzz/fuzz_hfconfig.c"
#include "fuzz/fuzz_json.c"
#include "fuzz/fuzz_mha.c"
#include "fuzz/fuzz_npy.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_sdpa.c"
#include "fuzz/fuzz_sdpa_typed.c"

typedef int (*fuzz_fn)(const uint8_t *, size_t);

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* replays every regular file of dir (sorted); returns the count, -1 if the dir is missing */
static long replay_dir(const char *dir, fuzz_fn fn) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    size_t n = 0, cap = 64;
    char **names = (char **)malloc(cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = (char **)realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    long count = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) { free(names[i]); continue; }
        size_t cap2 = 1 << 16, len = 0;
        unsigned char *buf = (unsigned char *)malloc(cap2);
        size_t r;
        while ((r = fread(buf + len, 1, cap2 - len, f)) > 0) {
            len += r;
            if (len == cap2) buf = (unsigned char *)realloc(buf, cap2 *= 2);
        }
        fclose(f);
        /* an exact-size copy so that ASan sees reads past the input */
        unsigned char *exact = (unsigned char *)malloc(len ? len : 1);
        memcpy(exact, buf, len);
        free(buf);
        g_current = path;
        fn(exact, len);
        g_current = "";
        free(exact);
        free(names[i]);
        count++;
    }
    free(names);
    return count;
}

int main(void) {
    static const struct { const char *name; fuzz_fn fn; } targets[] = {
        { "json", fuzz_json_one },
        { "safetensors", fuzz_st_one },
        { "npy", fuzz_npy_one },
        { "hfconfig", fuzz_hf_one },
        { "sdpa", fuzz_sdpa_one },
        { "sdpa_typed", fuzz_sdpa_typed_one },
        { "mha", fuzz_mha_one },
    };
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", ATTN_SOURCE_DIR, targets[t].name);
        long nc = replay_dir(dir, targets[t].fn);
        CHECK(nc > 0, "no corpus for fuzz target '%s' (%s)", targets[t].name, dir);
        snprintf(dir, sizeof dir, "%s/tests/fuzz/regressions/%s", ATTN_SOURCE_DIR, targets[t].name);
        long nr = replay_dir(dir, targets[t].fn);
        printf("%-12s %ld corpus + %ld regression inputs\n", targets[t].name, nc, nr < 0 ? 0 : nr);
    }
    return test_summary("test_fuzz_replay");
}
