/* SPDX-License-Identifier: MIT */
/* file.h — opening and reading untrusted input files (shared by the .npy and
 * safetensors readers). */
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

#endif
