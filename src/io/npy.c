/* SPDX-License-Identifier: MIT */
/* npy.c — validated reader (float16/32/64 -> fp32) and fp32 writer of .npy.
 *
 * Format (numpy.lib.format): "\x93NUMPY", major, minor (1.0, 2.0 or 3.0),
 * header length (u16 LE for 1.0, u32 LE for 2.0/3.0), then a Python dict
 * literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a newline, then the raw data.
 *
 * Accepted: descr '<f2' '<f4' '<f8' (also '>' big-endian, and '=' / '|' /
 * no mark = native order, as numpy interprets them); fortran_order False, or
 * True for arrays of at most one dimension (same memory order); shape a tuple
 * of 0..ATTN_MAX_DIMS non-negative integers (Python 2 'L' suffixes allowed);
 * exactly the three keys. The data must be exactly numel * itemsize bytes.
 * The header is at most 65536 bytes (numpy itself refuses more than 10000 by
 * default). The output allocation (numel * 4 bytes) is made only after the
 * data has been found to be present, so it is at most 2x the input size. */
#include "core/core.h"
#include "io/file.h"
#include "io/half.h"
#include "io/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAX_HEADER 65536u

typedef struct npy_info {
    char kind;         /* 'f' float, 'i' signed / 'u' unsigned integer (attn__npy_read_i64 only) */
    int itemsize;      /* 2, 4, 8 (floats); 1, 2, 4, 8 (integers) */
    int big_endian;    /* data byte order */
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
    int64_t numel;
    uint64_t data_off; /* offset of the data in the file */
    uint64_t nbytes;   /* numel * itemsize */
} npy_info;

static int host_is_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ─── header dict parser (a tiny subset of Python literals) ─────────────── */
typedef struct hp {
    const char *p, *end;
    const char *src;
} hp;

static void hp_ws(hp *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r')) h->p++;
}

/* a quoted string without escapes -> [*s, *s + *n) */
static attn_status hp_string(hp *h, const char **s, size_t *n, const char *what) {
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return attn__fail(ATTN_ERR_FORMAT, "%s: header: expected a quoted string for %s", h->src, what);
    char q = *h->p++;
    const char *b = h->p;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\')
            return attn__fail(ATTN_ERR_FORMAT, "%s: header: escape sequences are not supported in %s", h->src, what);
        if (*h->p == '\n') break;
        h->p++;
    }
    if (h->p >= h->end || *h->p != q)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header: unterminated string in %s", h->src, what);
    *s = b;
    *n = (size_t)(h->p - b);
    h->p++;
    return ATTN_OK;
}

static int hp_word(hp *h, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n) != 0) return 0;
    const char *after = h->p + n;
    if (after < h->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z') ||
                           (*after >= '0' && *after <= '9') || *after == '_'))
        return 0;
    h->p = after;
    return 1;
}

static attn_status hp_shape(hp *h, npy_info *info) {
    if (h->p >= h->end || *h->p != '(')
        return attn__fail(ATTN_ERR_FORMAT, "%s: header: 'shape' must be a tuple of integers", h->src);
    h->p++;
    int nd = 0, trailing_comma = 0;
    for (;;) {
        hp_ws(h);
        if (h->p < h->end && *h->p == ')') { h->p++; break; }
        if (h->p >= h->end || *h->p < '0' || *h->p > '9') {
            if (h->p < h->end && *h->p == '-')
                return attn__fail(ATTN_ERR_FORMAT, "%s: header: negative dimension in 'shape'", h->src);
            return attn__fail(ATTN_ERR_FORMAT, "%s: header: 'shape' must be a tuple of non-negative integers",
                              h->src);
        }
        uint64_t v = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            unsigned d = (unsigned)(*h->p - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10)
                return attn__fail(ATTN_ERR_FORMAT, "%s: header: dimension in 'shape' exceeds 2^63 - 1", h->src);
            v = v * 10 + d;
            h->p++;
        }
        if (h->p < h->end && (*h->p == 'L' || *h->p == 'l')) h->p++; /* Python 2 long */
        if (nd >= ATTN_MAX_DIMS)
            return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: 'shape' has more than %d dimensions", h->src, ATTN_MAX_DIMS);
        info->shape[nd++] = (int64_t)v;
        hp_ws(h);
        trailing_comma = 0;
        if (h->p < h->end && *h->p == ',') { h->p++; trailing_comma = 1; continue; }
        if (h->p < h->end && *h->p == ')') { h->p++; break; }
        return attn__fail(ATTN_ERR_FORMAT, "%s: header: expected ',' or ')' in 'shape'", h->src);
    }
    if (nd == 1 && !trailing_comma)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header: 'shape' (%lld) is not a tuple (a 1-tuple needs a comma)",
                          h->src, (long long)info->shape[0]);
    info->ndim = nd;
    return ATTN_OK;
}

/* ints: integer dtypes are accepted too (attn__npy_read_i64) */
static attn_status parse_descr(const char *src, const char *s, size_t n, int ints, npy_info *info) {
    char d[24];
    snprintf(d, sizeof d, "%.*s", (int)(n < 20 ? n : 20), s);
    const char *t = s;
    size_t tn = n;
    int be = !host_is_le();
    if (tn > 0 && (t[0] == '<' || t[0] == '>' || t[0] == '=' || t[0] == '|')) {
        if (t[0] == '<') be = 0;
        else if (t[0] == '>') be = 1;
        t++;
        tn--;
    }
    if (tn == 2 && t[0] == 'f' && (t[1] == '2' || t[1] == '4' || t[1] == '8')) {
        info->kind = 'f';
        info->itemsize = t[1] - '0';
        info->big_endian = be;
        return ATTN_OK;
    }
    if (ints && tn == 2 && (t[0] == 'i' || t[0] == 'u') && (t[1] == '1' || t[1] == '2' || t[1] == '4' || t[1] == '8')) {
        info->kind = t[0];
        info->itemsize = t[1] - '0';
        info->big_endian = be;
        return ATTN_OK;
    }
    if (ints)
        return attn__fail(ATTN_ERR_DTYPE, "%s: unsupported dtype '%s%s' (integer or float: '<i1'..'<i8', '<u1'..'<u8', "
                          "'<f2', '<f4', '<f8')", src, d, n > 20 ? "..." : "");
    return attn__fail(ATTN_ERR_DTYPE, "%s: unsupported dtype '%s%s' (float16/32/64 only: '<f2', '<f4', '<f8')", src, d,
                      n > 20 ? "..." : "");
}

/* Parses the preamble and header from buf[0, avail) of a file of `total`
 * bytes, and checks the data size. */
static attn_status npy_parse(const char *src, const unsigned char *buf, size_t avail, uint64_t total, int ints,
                             npy_info *info) {
    static const unsigned char magic[6] = { 0x93, 'N', 'U', 'M', 'P', 'Y' };
    memset(info, 0, sizeof *info);
    if (avail < 6 || memcmp(buf, magic, 6) != 0) {
        if (avail >= 6 || memcmp(buf, magic, avail) != 0)
            return attn__fail(ATTN_ERR_FORMAT, "%s: not a .npy file (missing the \\x93NUMPY magic)", src);
        return attn__fail(ATTN_ERR_FORMAT, "%s: truncated .npy preamble (%zu bytes)", src, avail);
    }
    if (avail < 8) return attn__fail(ATTN_ERR_FORMAT, "%s: truncated .npy preamble (%zu bytes)", src, avail);
    int major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0)", src,
                          major, minor);
    size_t pre = major == 1 ? 10 : 12;
    if (avail < pre) return attn__fail(ATTN_ERR_FORMAT, "%s: truncated .npy preamble (%zu bytes)", src, avail);
    uint64_t hlen = major == 1 ? attn__ld_le16(buf + 8) : attn__ld_le32(buf + 8);
    if (hlen > NPY_MAX_HEADER)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header length %llu exceeds the limit of %u bytes", src,
                          (unsigned long long)hlen, NPY_MAX_HEADER);
    if (pre + hlen > total)
        return attn__fail(ATTN_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)", src,
                          (unsigned long long)hlen, (unsigned long long)total);
    if (pre + hlen > avail) /* callers always provide the whole header */
        return attn__fail(ATTN_ERR_INTERNAL, "%s: header not buffered", src);

    hp h = { (const char *)buf + pre, (const char *)buf + pre + hlen, src };
    int seen_descr = 0, seen_fo = 0, seen_shape = 0, fortran = 0;
    attn_status s;
    hp_ws(&h);
    if (h.p >= h.end || *h.p != '{') return attn__fail(ATTN_ERR_FORMAT, "%s: header is not a Python dict literal", src);
    h.p++;
    for (;;) {
        hp_ws(&h);
        if (h.p < h.end && *h.p == '}') { h.p++; break; }
        const char *k;
        size_t kn;
        if ((s = hp_string(&h, &k, &kn, "a key")) != ATTN_OK) return s;
        hp_ws(&h);
        if (h.p >= h.end || *h.p != ':') return attn__fail(ATTN_ERR_FORMAT, "%s: header: expected ':' after a key", src);
        h.p++;
        hp_ws(&h);
        if (kn == 5 && memcmp(k, "descr", 5) == 0) {
            if (seen_descr++) return attn__fail(ATTN_ERR_FORMAT, "%s: header has 'descr' twice", src);
            if (h.p < h.end && *h.p == '[')
                return attn__fail(ATTN_ERR_DTYPE, "%s: structured dtypes (descr is a list) are not supported", src);
            const char *d;
            size_t dn;
            if ((s = hp_string(&h, &d, &dn, "'descr'")) != ATTN_OK) return s;
            if ((s = parse_descr(src, d, dn, ints, info)) != ATTN_OK) return s;
        } else if (kn == 13 && memcmp(k, "fortran_order", 13) == 0) {
            if (seen_fo++) return attn__fail(ATTN_ERR_FORMAT, "%s: header has 'fortran_order' twice", src);
            if (hp_word(&h, "True")) fortran = 1;
            else if (hp_word(&h, "False")) fortran = 0;
            else return attn__fail(ATTN_ERR_FORMAT, "%s: header: 'fortran_order' must be True or False", src);
        } else if (kn == 5 && memcmp(k, "shape", 5) == 0) {
            if (seen_shape++) return attn__fail(ATTN_ERR_FORMAT, "%s: header has 'shape' twice", src);
            if ((s = hp_shape(&h, info)) != ATTN_OK) return s;
        } else {
            return attn__fail(ATTN_ERR_FORMAT, "%s: header has the unexpected key '%.*s'", src, (int)(kn < 40 ? kn : 40),
                              k);
        }
        hp_ws(&h);
        if (h.p < h.end && *h.p == ',') { h.p++; continue; }
        if (h.p < h.end && *h.p == '}') { h.p++; break; }
        return attn__fail(ATTN_ERR_FORMAT, "%s: header: expected ',' or '}' in the dict", src);
    }
    hp_ws(&h);
    if (h.p != h.end) return attn__fail(ATTN_ERR_FORMAT, "%s: header: unexpected characters after the dict", src);
    if (!seen_descr) return attn__fail(ATTN_ERR_FORMAT, "%s: header lacks 'descr'", src);
    if (!seen_fo) return attn__fail(ATTN_ERR_FORMAT, "%s: header lacks 'fortran_order'", src);
    if (!seen_shape) return attn__fail(ATTN_ERR_FORMAT, "%s: header lacks 'shape'", src);
    if (fortran && info->ndim > 1)
        return attn__fail(ATTN_ERR_UNSUPPORTED,
                          "%s: fortran_order True (column-major) arrays are not supported; save a C-order array "
                          "(np.ascontiguousarray)", src);

    uint64_t numel = 1;
    int zero = 0, over = 0;
    for (int i = 0; i < info->ndim; i++) {
        uint64_t d = (uint64_t)info->shape[i];
        if (d == 0) zero = 1;
        else if (numel > (uint64_t)INT64_MAX / d) over = 1;
        else numel *= d;
    }
    if (zero) numel = 0;
    else if (over || numel > (uint64_t)INT64_MAX / 8)
        return attn__fail(ATTN_ERR_FORMAT, "%s: shape overflows (more than 2^60 elements)", src);
    info->numel = (int64_t)numel;
    info->nbytes = numel * (uint64_t)info->itemsize;
    info->data_off = pre + hlen;
    uint64_t have = total - info->data_off;
    if (have != info->nbytes)
        return attn__fail(ATTN_ERR_FORMAT, "%s: expected %llu bytes of data, file has %llu", src,
                          (unsigned long long)info->nbytes, (unsigned long long)have);
    if (numel > SIZE_MAX / 4) return attn__fail(ATTN_ERR_NOMEM, "%s: array too large", src);
    return ATTN_OK;
}

/* converts m elements of raw data to fp32 */
static void npy_convert(const npy_info *info, const unsigned char *in, float *out, size_t m) {
    int be = info->big_endian;
    for (size_t i = 0; i < m; i++) {
        const unsigned char *b = in + (size_t)info->itemsize * i;
        if (info->itemsize == 2) {
            uint16_t u = be ? (uint16_t)((b[0] << 8) | b[1]) : attn__ld_le16(b);
            out[i] = attn__f16_to_f32(u);
        } else if (info->itemsize == 4) {
            uint32_t u = be ? ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3])
                            : attn__ld_le32(b);
            memcpy(&out[i], &u, 4);
        } else {
            uint64_t u = 0;
            if (be) for (int k = 0; k < 8; k++) u = (u << 8) | b[k];
            else u = attn__ld_le64(b);
            double d;
            memcpy(&d, &u, 8);
            out[i] = (float)d;
        }
    }
}

static void fill_out(attn_npy *out, const npy_info *info, float *data) {
    memset(out, 0, sizeof *out);
    out->data = data;
    out->ndim = info->ndim;
    for (int i = 0; i < info->ndim; i++) out->shape[i] = info->shape[i];
    out->numel = info->numel;
}

attn_status attn_npy_read_memory(const void *data, size_t size, attn_npy *out) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_npy_read_memory: out is NULL");
    if (!data && size) return attn__fail(ATTN_ERR_NULL, "attn_npy_read_memory: data is NULL");
    static const unsigned char none[1] = { 0 };
    const unsigned char *buf = data ? (const unsigned char *)data : none;
    npy_info info;
    attn_status s = npy_parse(".npy buffer", buf, size, size, 0, &info);
    if (s != ATTN_OK) return s;
    float *dst = NULL;
    if (info.numel > 0) {
        dst = (float *)attn__malloc((size_t)info.numel * 4);
        if (!dst)
            return attn__fail(ATTN_ERR_NOMEM, ".npy buffer: out of memory for %lld floats", (long long)info.numel);
        npy_convert(&info, buf + info.data_off, dst, (size_t)info.numel);
    }
    fill_out(out, &info, dst);
    return ATTN_OK;
}

attn_status attn_npy_read(const char *path, attn_npy *out) {
    if (!path) return attn__fail(ATTN_ERR_NULL, "attn_npy_read: path is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn_npy_read: out is NULL");
    int fd;
    uint64_t total;
    attn_status os = attn__file_open(path, &fd, &total);
    if (os != ATTN_OK) return os;
    size_t pre = total < 12 + NPY_MAX_HEADER ? (size_t)total : 12 + NPY_MAX_HEADER;
    unsigned char *head = (unsigned char *)attn__malloc(pre ? pre : 1);
    if (!head) { close(fd); return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path); }
    int r = attn__pread_full(fd, head, pre, 0);
    uint64_t off = pre; /* next file byte to read */
    npy_info info;
    attn_status s;
    if (r != 0) {
        s = attn__fail(ATTN_ERR_IO, "%s: read failed: %s", path, r > 0 ? "unexpected end of file" : strerror(errno));
        goto done;
    }
    s = npy_parse(path, head, pre, total, 0, &info);
    if (s != ATTN_OK) goto done;
    float *dst = NULL;
    if (info.numel > 0) {
        dst = (float *)attn__malloc((size_t)info.numel * 4);
        if (!dst) {
            s = attn__fail(ATTN_ERR_NOMEM, "%s: out of memory for %lld floats", path, (long long)info.numel);
            goto done;
        }
        /* data already in `head` first, then the rest straight from the file */
        size_t n = (size_t)info.numel, isz = (size_t)info.itemsize, done_el = 0;
        size_t in_head = (size_t)(pre - info.data_off) / isz; /* whole elements buffered */
        if (in_head > n) in_head = n;
        npy_convert(&info, head + info.data_off, dst, in_head);
        done_el = in_head;
        size_t skip = (size_t)(pre - info.data_off) - in_head * isz; /* partial element bytes */
        unsigned char part[8];
        memcpy(part, head + info.data_off + in_head * isz, skip);
        unsigned char buf[16384];
        while (done_el < n) {
            size_t m = n - done_el < sizeof buf / isz ? n - done_el : sizeof buf / isz;
            memcpy(buf, part, skip);
            r = attn__pread_full(fd, buf + skip, m * isz - skip, off);
            off += m * isz - skip;
            if (r != 0) {
                attn__free(dst);
                s = attn__fail(ATTN_ERR_IO, "%s: read failed: %s", path,
                               r > 0 ? "unexpected end of file (file changed?)" : strerror(errno));
                goto done;
            }
            skip = 0;
            npy_convert(&info, buf, dst + done_el, m);
            done_el += m;
        }
    }
    fill_out(out, &info, dst);
done:
    attn__free(head);
    close(fd);
    return s;
}

void attn_npy_free(attn_npy *a) {
    if (!a) return;
    attn__free(a->data);
    memset(a, 0, sizeof *a);
}

attn_status attn_npy_write(const char *path, const float *data, int ndim, const int64_t *shape) {
    if (!path) return attn__fail(ATTN_ERR_NULL, "attn_npy_write: path is NULL");
    if (ndim < 0 || ndim > ATTN_MAX_DIMS)
        return attn__fail(ATTN_ERR_SHAPE, "attn_npy_write: ndim = %d (expected 0..%d)", ndim, ATTN_MAX_DIMS);
    if (ndim > 0 && !shape) return attn__fail(ATTN_ERR_NULL, "attn_npy_write: shape is NULL with ndim = %d", ndim);
    uint64_t numel = 1;
    int zero = 0, over = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return attn__fail(ATTN_ERR_SHAPE, "attn_npy_write: shape[%d] = %lld < 0", i, (long long)shape[i]);
        if (shape[i] == 0) zero = 1;
        else if (numel > ((uint64_t)INT64_MAX / 4) / (uint64_t)shape[i]) over = 1;
        else numel *= (uint64_t)shape[i];
    }
    if (zero) numel = 0;
    else if (over) return attn__fail(ATTN_ERR_NOMEM, "attn_npy_write: shape overflows");
    if (numel && !data) return attn__fail(ATTN_ERR_NULL, "attn_npy_write: data is NULL");

    /* header exactly as numpy writes it, padded so that the data starts at a multiple of 64 */
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', pad);
    n += (int)pad;
    hdr[n++] = '\n';
    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8) };

    attn_afile f;
    attn_status s = attn__afile_open(&f, path);
    if (s != ATTN_OK) return s;
    attn__afile_write(&f, pre, 10);
    attn__afile_write(&f, hdr, (size_t)n);
    if (numel) {
        if (host_is_le()) {
            attn__afile_write(&f, data, 4 * (size_t)numel);
        } else {
            unsigned char t[4096];
            for (size_t i0 = 0; i0 < numel; i0 += sizeof t / 4) {
                size_t m = numel - i0 < sizeof t / 4 ? (size_t)(numel - i0) : sizeof t / 4;
                for (size_t i = 0; i < m; i++) {
                    uint32_t u;
                    memcpy(&u, &data[i0 + i], 4);
                    attn__st_le32(t + 4 * i, u);
                }
                attn__afile_write(&f, t, 4 * m);
            }
        }
    }
    return attn__afile_commit(&f);
}

/* ─── integer arrays (internal: io/npy.h) ──────────────────────────────── */
/* element i of the raw data as an integer; 1 = not representable in int64 (error set) */
static int npy_elem_i64(const char *src, const npy_info *info, const unsigned char *b, int64_t i, int64_t *out) {
    const int w = info->itemsize;
    uint64_t u = 0;
    for (int k = 0; k < w; k++) u |= (uint64_t)b[info->big_endian ? w - 1 - k : k] << (8 * k);
    if (info->kind == 'u') {
        if (u > (uint64_t)INT64_MAX) {
            attn__fail(ATTN_ERR_DTYPE, "%s: element %lld (%llu) exceeds 2^63 - 1", src, (long long)i, (unsigned long long)u);
            return 1;
        }
        *out = (int64_t)u;
    } else if (info->kind == 'i') {
        if (w < 8 && ((u >> (8 * w - 1)) & 1)) u |= ~(uint64_t)0 << (8 * w); /* sign extension */
        memcpy(out, &u, 8);
    } else {
        float f;
        double x;
        if (w == 8) memcpy(&x, &u, 8);
        else if (w == 4) { uint32_t u32 = (uint32_t)u; memcpy(&f, &u32, 4); x = f; }
        else x = attn__f16_to_f32((uint16_t)u);
        if (!(x >= -9007199254740992.0 && x <= 9007199254740992.0 && x == floor(x))) { /* NaN fails too */
            attn__fail(ATTN_ERR_DTYPE, "%s: element %lld is %g, not an integer", src, (long long)i, x);
            return 1;
        }
        *out = (int64_t)x;
    }
    return 0;
}

static attn_status npy_read_i64_buf(const char *src, const unsigned char *buf, size_t size, attn_npy_i64 *out) {
    npy_info info;
    attn_status s = npy_parse(src, buf, size, size, 1, &info);
    if (s != ATTN_OK) return s;
    if ((uint64_t)info.numel > SIZE_MAX / 8) return attn__fail(ATTN_ERR_NOMEM, "%s: array too large", src);
    int64_t *dst = NULL;
    if (info.numel > 0 && !(dst = (int64_t *)attn__malloc((size_t)info.numel * 8)))
        return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory for %lld integers", src, (long long)info.numel);
    const unsigned char *data = buf + info.data_off;
    for (int64_t i = 0; i < info.numel; i++)
        if (npy_elem_i64(src, &info, data + (size_t)i * (size_t)info.itemsize, i, &dst[i])) {
            attn__free(dst);
            return ATTN_ERR_DTYPE;
        }
    memset(out, 0, sizeof *out);
    out->data = dst;
    out->ndim = info.ndim;
    for (int i = 0; i < info.ndim; i++) out->shape[i] = info.shape[i];
    out->numel = info.numel;
    return ATTN_OK;
}

attn_status attn__npy_read_i64_memory(const void *data, size_t size, attn_npy_i64 *out) {
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn__npy_read_i64_memory: out is NULL");
    if (!data && size) return attn__fail(ATTN_ERR_NULL, "attn__npy_read_i64_memory: data is NULL");
    static const unsigned char none[1] = { 0 };
    return npy_read_i64_buf(".npy buffer", data ? (const unsigned char *)data : none, size, out);
}

attn_status attn__npy_read_i64(const char *path, attn_npy_i64 *out) {
    if (!path) return attn__fail(ATTN_ERR_NULL, "attn__npy_read_i64: path is NULL");
    if (!out) return attn__fail(ATTN_ERR_NULL, "attn__npy_read_i64: out is NULL");
    int fd;
    uint64_t total;
    attn_status s = attn__file_open(path, &fd, &total);
    if (s != ATTN_OK) return s;
    if (total > NPY_I64_MAX_FILE) {
        close(fd);
        return attn__fail(ATTN_ERR_UNSUPPORTED, "%s: %llu bytes: integer arrays are read whole, at most %llu bytes", path,
                          (unsigned long long)total, (unsigned long long)NPY_I64_MAX_FILE);
    }
    unsigned char *buf = (unsigned char *)attn__malloc(total ? (size_t)total : 1);
    if (!buf) { close(fd); return attn__fail(ATTN_ERR_NOMEM, "%s: out of memory", path); }
    int r = attn__pread_full(fd, buf, (size_t)total, 0);
    close(fd);
    if (r != 0) s = attn__fail(ATTN_ERR_IO, "%s: read failed: %s", path, r > 0 ? "unexpected end of file" : strerror(errno));
    else s = npy_read_i64_buf(path, buf, (size_t)total, out);
    attn__free(buf);
    return s;
}

void attn__npy_i64_free(attn_npy_i64 *a) {
    if (!a) return;
    attn__free(a->data);
    memset(a, 0, sizeof *a);
}
