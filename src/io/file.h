/* SPDX-License-Identifier: MIT */
/* file.h — opening and reading untrusted input files (shared by the .npy and
 * safetensors readers), and atomic writes (shared by every writer). */
#ifndef ATTN_IO_FILE_H
#define ATTN_IO_FILE_H

#include "attn.h"

#include <stddef.h>
#include <stdint.h>

/* Opens path read-only; it must be a regular file. On success *fd and *size
 * (bytes) are set; on failure the error names path and the reason. */
attn_status attn__file_open(const char *path, int *fd, uint64_t *size);

/* Reads exactly n bytes at offset off: 0 ok, 1 end of file, -1 error (errno). */
int attn__pread_full(int fd, void *buf, size_t n, uint64_t off);

/* Reads the whole of path (a regular file of at most max bytes) into a new
 * buffer *buf (free with attn__free) of *n bytes (+ a NUL after them). A
 * larger file is ATTN_ERR_FORMAT naming the limit; the (untrusted) size only
 * bounds the first allocation. */
attn_status attn__file_read_all(const char *path, size_t max, char **buf, size_t *n);

/* ─── atomic writes ───────────────────────────────────────────────────────
 * A file is never written in place: the bytes go to a new temporary file in
 * the target's directory ("<path>.tmp.<pid>.<n>", created O_EXCL with mode
 * 0666 & ~umask), which is fsync'ed, closed and renamed over path; then the
 * directory is fsync'ed. On any failure the temporary file is removed and the
 * previous file at path (if any) is untouched. */
typedef struct attn_afile {
    int fd;            /* -1 once closed */
    int failed;        /* a write failed: commit fails */
    int err;           /* errno of the first failure */
    const char *path;  /* the target (caller's string) */
    char *tmp;         /* the temporary file's name (owned) */
} attn_afile;

/* Creates the temporary file. On failure nothing is left behind. */
attn_status attn__afile_open(attn_afile *a, const char *path);
/* Appends n bytes (errors are remembered and reported by commit). */
void attn__afile_write(attn_afile *a, const void *p, size_t n);
/* fsync + close + rename over path (+ fsync of the directory). On failure
 * the temporary file is removed and the error names path. */
attn_status attn__afile_commit(attn_afile *a);
/* Removes the temporary file without touching path. */
void attn__afile_abort(attn_afile *a);

/* Fault injection for tests (thread-local): when set to N >= 1, the N-th
 * step of the following atomic writes on this thread fails with EIO (steps:
 * create, each write, fsync, close, rename, counted from the moment it is
 * set); 0 = off. Returns the number of steps counted so far. */
void attn__io_fault_set(int64_t n);
int64_t attn__io_fault_steps(void);

#endif
