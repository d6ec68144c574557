/* SPDX-License-Identifier: MIT */
/* file.c — see file.h. */
#include "io/file.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

attn_status attn__file_open(const char *path, int *fd, uint64_t *size) {
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return attn__fail(ATTN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        int e = errno;
        close(f);
        return attn__fail(ATTN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return attn__fail(ATTN_ERR_IO, "%s: not a regular file", path);
    }
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return ATTN_OK;
}

int attn__pread_full(int fd, void *buf, size_t n, uint64_t off) {
    unsigned char *p = (unsigned char *)buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return 1;
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return 0;
}

attn_status attn__file_read_all(const char *path, size_t max, char **out, size_t *out_n) {
    int fd;
    uint64_t size;
    *out = NULL;
    *out_n = 0;
    attn_status s = attn__file_open(path, &fd, &size);
    if (s != ATTN_OK) return s;
    size_t cap = size < max ? (size_t)size + 1 : max + 1, n = 0; /* + 1: detect a file that grew */
    char *buf = (char *)attn__malloc(cap + 1);
    if (!buf) {
        close(fd);
        return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            attn__free(buf);
            return attn__fail(ATTN_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == cap) {
            if (cap > max) break;
            size_t nc = cap > max / 2 ? max + 1 : cap * 2;
            char *nb = (char *)attn__malloc(nc + 1);
            if (!nb) {
                close(fd);
                attn__free(buf);
                return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path);
            }
            memcpy(nb, buf, n);
            attn__free(buf);
            buf = nb;
            cap = nc;
        }
    }
    close(fd);
    if (n > max) {
        attn__free(buf);
        return attn__fail(ATTN_ERR_FORMAT, "%s: larger than the %zu-byte limit", path, max);
    }
    buf[n] = 0;
    *out = buf;
    *out_n = n;
    return ATTN_OK;
}

/* ═══ atomic writes ═══════════════════════════════════════════════════════ */

static _Thread_local int64_t fault_at, fault_count;

void attn__io_fault_set(int64_t n) {
    fault_at = n;
    fault_count = 0;
}

int64_t attn__io_fault_steps(void) { return fault_count; }

/* 1 if this step must fail (injected) */
static int fault(void) {
    fault_count++;
    if (fault_at > 0 && fault_count == fault_at) {
        errno = EIO;
        return 1;
    }
    return 0;
}

attn_status attn__afile_open(attn_afile *a, const char *path) {
    static _Atomic unsigned long counter;
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->path = path;
    size_t n = strlen(path) + 48;
    a->tmp = (char *)malloc(n);
    if (!a->tmp) return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path);
    for (int tries = 0; tries < 100; tries++) {
        snprintf(a->tmp, n, "%s.tmp.%ld.%lu", path, (long)getpid(), (unsigned long)++counter);
        int fd = fault() ? -1 : open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            a->fd = fd;
            return ATTN_OK;
        }
        if (errno != EEXIST) break;
    }
    int e = errno;
    free(a->tmp);
    a->tmp = NULL;
    return attn__fail(ATTN_ERR_IO, "%s: cannot create: %s", path, strerror(e));
}

void attn__afile_write(attn_afile *a, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    if (a->failed || a->fd < 0) return;
    if (fault()) {
        a->failed = 1;
        a->err = errno;
        return;
    }
    while (n > 0) {
        ssize_t w = write(a->fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            a->failed = 1;
            a->err = w < 0 ? errno : EIO;
            return;
        }
        b += w;
        n -= (size_t)w;
    }
}

void attn__afile_abort(attn_afile *a) {
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    a->tmp = NULL;
}

static void fsync_dir(const char *path) {
    char *d = strdup(path);
    if (!d) return;
    char *slash = strrchr(d, '/');
    const char *dir = ".";
    if (slash == d) dir = "/";
    else if (slash) {
        *slash = 0;
        dir = d;
    }
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some file systems refuse a directory fsync */
        close(fd);
    }
    free(d);
}

attn_status attn__afile_commit(attn_afile *a) {
    const char *step = "write";
    if (!a->failed) {
        if (fault() || fsync(a->fd) != 0) step = "fsync", a->failed = 1, a->err = errno;
    }
    if (!a->failed) {
        int r = fault() ? -1 : close(a->fd);
        a->fd = -1;
        if (r != 0) step = "close", a->failed = 1, a->err = errno;
    }
    if (!a->failed) {
        if (fault() || rename(a->tmp, a->path) != 0) step = "rename", a->failed = 1, a->err = errno;
    }
    if (a->failed) {
        int e = a->err;
        attn__afile_abort(a);
        return attn__fail(ATTN_ERR_IO, "%s: %s failed: %s (the previous file, if any, is unchanged)", a->path, step,
                          strerror(e));
    }
    free(a->tmp);
    a->tmp = NULL;
    fsync_dir(a->path);
    return ATTN_OK;
}
