/* SPDX-License-Identifier: MIT */
/* test_atomic_write.c — every file the library writes (attn_npy_write,
 * attn_st_writer_save) is written to a temporary file in the same directory,
 * fsync'ed and renamed (src/io/file.c). A failure injected at every step
 * (create, each write, fsync, close, rename) must leave the previous file
 * byte for byte and no temporary file behind; with no failure the new file
 * replaces it. */
#include "core/core.h"
#include "io/file.h"
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

/* the whole file, or NULL (missing); *n its size */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = NULL;
    size_t cap = 0;
    *n = 0;
    for (;;) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 4096;
            b = (unsigned char *)realloc(b, cap);
        }
        size_t r = fread(b + *n, 1, cap - *n, f);
        if (r == 0) break;
        *n += r;
    }
    fclose(f);
    return b;
}

static int count_entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

typedef attn_status (*write_fn)(const char *path, int version);

static attn_status write_npy(const char *path, int version) {
    float x[300];
    for (int i = 0; i < 300; i++) x[i] = (float)(i * version);
    const int64_t shape[2] = {version == 1 ? 10 : 30, version == 1 ? 3 : 10}; /* old and new differ in size */
    return attn_npy_write(path, x, 2, shape);
}

static attn_status write_st(const char *path, int version) {
    attn_st_writer *w = NULL;
    attn_status s = attn_st_writer_create(&w);
    float a[64], b[128];
    for (int i = 0; i < 64; i++) a[i] = (float)(i + version);
    for (int i = 0; i < 128; i++) b[i] = (float)(-i * version);
    const int64_t sa[1] = {64}, sb[2] = {version == 1 ? 2 : 8, version == 1 ? 64 : 16};
    if (s == ATTN_OK) s = attn_st_writer_add_f32(w, "a", a, 1, sa);
    if (s == ATTN_OK) s = attn_st_writer_add_f32(w, "b", b, 2, sb);
    if (s == ATTN_OK) s = attn_st_writer_save(w, path);
    attn_st_writer_free(w);
    return s;
}

static void check_writer(const char *what, write_fn fn, int previous) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, what);
    unlink(path);
    size_t n_old = 0, n_new = 0, n;
    unsigned char *old = NULL;
    if (previous) {
        CHECK(fn(path, 1) == ATTN_OK, "%s: first write: %s", what, attn_last_error());
        old = slurp(path, &n_old);
    }
    int failures = 0, done = 0;
    for (int64_t step = 1; step < 64 && !done; step++) {
        attn__io_fault_set(step);
        attn_status s = fn(path, 2);
        int64_t steps = attn__io_fault_steps();
        attn__io_fault_set(0);
        if (s == ATTN_OK) {
            CHECK(steps < step, "%s: fault at step %lld was not reported", what, (long long)step);
            done = 1;
            break;
        }
        failures++;
        CHECK(s == ATTN_ERR_IO, "%s: step %lld: status %d", what, (long long)step, (int)s);
        CHECK(strstr(attn_last_error(), path) != NULL, "%s: step %lld: message names the file: %s", what,
              (long long)step, attn_last_error());
        unsigned char *now = slurp(path, &n);
        if (previous)
            CHECK(now && n == n_old && memcmp(now, old, n) == 0, "%s: step %lld: the previous file changed", what,
                  (long long)step);
        else
            CHECK(now == NULL, "%s: step %lld: a failed first write left a file", what, (long long)step);
        free(now);
        CHECK(count_entries() == previous, "%s: step %lld: %d entries in the directory (temporary file left?)", what,
              (long long)step, count_entries());
    }
    CHECK(done && failures >= 5, "%s: %d injected failures, finished %d", what, failures, done);
    unsigned char *now = slurp(path, &n_new);
    CHECK(now && (!previous || n_new != n_old || memcmp(now, old, n_new) != 0), "%s: the new file replaced the old one", what);
    /* the file written through the fault loop equals a clean write */
    char ref[600];
    snprintf(ref, sizeof ref, "%s.ref", path);
    CHECK(fn(ref, 2) == ATTN_OK, "%s: reference write", what);
    unsigned char *r = slurp(ref, &n);
    CHECK(r && n == n_new && memcmp(r, now, n) == 0, "%s: final content", what);
    unlink(ref);
    free(r);
    free(now);
    free(old);
    unlink(path);
}

static void test_errors(void) {
    char path[512];
    /* a missing directory: nothing created */
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", dir);
    float x[2] = {1, 2};
    const int64_t sh[1] = {2};
    CHECK(attn_npy_write(path, x, 1, sh) == ATTN_ERR_IO && strstr(attn_last_error(), "cannot create"), "missing dir: %s",
          attn_last_error());
    /* the target is a directory: rename fails, the directory survives, no temporary left */
    snprintf(path, sizeof path, "%s/adir", dir);
    mkdir(path, 0700);
    CHECK(attn_npy_write(path, x, 1, sh) == ATTN_ERR_IO && strstr(attn_last_error(), "rename failed"),
          "directory target: %s", attn_last_error());
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "directory survives");
    CHECK(count_entries() == 1, "no temporary file next to the directory");
    rmdir(path);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_atomic_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_atomic_write");
    }
    check_writer("x.npy", write_npy, 1);
    check_writer("new.npy", write_npy, 0);
    check_writer("w.safetensors", write_st, 1);
    check_writer("new.safetensors", write_st, 0);
    test_errors();
    rmdir(dir);
    return test_summary("test_atomic_write");
}
