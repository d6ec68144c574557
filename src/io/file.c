/* SPDX-License-Identifier: MIT */
/* file.c — see file.h. */
#include "io/file.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
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
