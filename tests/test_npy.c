/* SPDX-License-Identifier: MIT */
/* test_npy.c — .npy reader/writer (src/io/npy.c): files written by numpy,
 * byte-identical output, v1/v2/v3 headers, float16/64 and big-endian data,
 * and malformed files with their specific errors. */
#include "core/core.h"
#include "io/half.h"
#include "io/npy.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* np.save of np.array([[1, -2.5, 3.25], [0, 1e-40, -0.0]], dtype='<f4') (numpy 2.4.6) */
static const char NP_F4[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \n"
    "\x00\x00\x80\x3f\x00\x00\x20\xc0\x00\x00\x50\x40\x00\x00\x00\x00\xc2\x16\x01\x00\x00\x00\x00\x80";
/* np.save of np.array([1, 65504, 6e-8, -inf], dtype='<f2') */
static const char NP_F2[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }                                                            \n"
    "\x00\x3c\xff\x7b\x01\x00\x00\xfc";
/* np.save of np.array([[0.1], [1e300]], dtype='>f8') */
static const char NP_F8BE[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 1), }                                                          \n"
    "\x3f\xb9\x99\x99\x99\x99\x99\x9a\x7e\x37\xe4\x3c\x88\x00\x75\x9c";

static char tmpdir[256];
static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmpdir, name); }

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}
static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = (unsigned char *)malloc((size_t)sz + 1);
    *n = fread(p, 1, (size_t)sz, f);
    fclose(f);
    return p;
}

typedef struct buf { unsigned char *p; size_t n; } buf;
/* preamble of version major.0 + header text (as given) + data */
static buf mk(int major, const char *hdr, const void *data, size_t nd) {
    size_t h = strlen(hdr), pre = major == 1 ? 10 : 12;
    buf b;
    b.n = pre + h + nd;
    b.p = (unsigned char *)calloc(b.n + 1, 1);
    memcpy(b.p, "\x93NUMPY", 6);
    b.p[6] = (unsigned char)major;
    b.p[7] = 0;
    if (major == 1) { b.p[8] = (unsigned char)h; b.p[9] = (unsigned char)(h >> 8); }
    else attn__st_le32(b.p + 8, (uint32_t)h);
    memcpy(b.p + pre, hdr, h);
    if (nd) memcpy(b.p + pre + h, data, nd);
    return b;
}

static void expect(const char *what, buf b, attn_status want, const char *msg) {
    attn_npy a;
    memset(&a, 0x5a, sizeof a);
    attn_npy before = a;
    attn_clear_error();
    attn_status s = attn_npy_read_memory(b.p, b.n, &a);
    CHECK(s == want, "%s: status %d (%s), expected %d", what, (int)s, attn_last_error(), (int)want);
    if (msg) CHECK(strstr(attn_last_error(), msg) != NULL, "%s: message '%s' lacks '%s'", what, attn_last_error(), msg);
    if (s == ATTN_OK) attn_npy_free(&a);
    else CHECK(memcmp(&a, &before, sizeof a) == 0, "%s: output written on error", what);
    /* and through a file */
    char path[512];
    tmp_path(path, sizeof path, "case.npy");
    write_file(path, b.p, b.n);
    attn_status s2 = attn_npy_read(path, &a);
    CHECK(s2 == want, "%s (file): status %d (%s), expected %d", what, (int)s2, attn_last_error(), (int)want);
    if (s2 == ATTN_OK) attn_npy_free(&a);
    free(b.p);
}

static void test_numpy_files(void) {
    attn_npy a;
    CHECK(attn_npy_read_memory(NP_F4, sizeof NP_F4 - 1, &a) == ATTN_OK, "f4: %s", attn_last_error());
    CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.numel == 6, "f4 shape");
    CHECK(a.data[0] == 1.0f && a.data[1] == -2.5f && a.data[2] == 3.25f && a.data[3] == 0.0f && a.data[4] == 1e-40f &&
          a.data[5] == 0.0f && signbit(a.data[5]), "f4 values");
    attn_npy_free(&a);
    CHECK(a.data == NULL && a.numel == 0, "free clears");
    attn_npy_free(&a);
    attn_npy_free(NULL);
    CHECK(attn_npy_read_memory(NP_F2, sizeof NP_F2 - 1, &a) == ATTN_OK, "f2: %s", attn_last_error());
    CHECK(a.ndim == 1 && a.shape[0] == 4 && a.data[0] == 1.0f && a.data[1] == 65504.0f && a.data[2] == 0x1p-24f &&
          isinf(a.data[3]) && a.data[3] < 0, "f2 values");
    attn_npy_free(&a);
    CHECK(attn_npy_read_memory(NP_F8BE, sizeof NP_F8BE - 1, &a) == ATTN_OK, "f8 big-endian: %s", attn_last_error());
    CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 1 && a.data[0] == 0.1f && isinf(a.data[1]), "f8 values");
    attn_npy_free(&a);

    /* our writer produces exactly numpy's bytes */
    char path[512];
    tmp_path(path, sizeof path, "w.npy");
    float v[6] = { 1.0f, -2.5f, 3.25f, 0.0f, 1e-40f, -0.0f };
    CHECK(attn_npy_write(path, v, 2, (int64_t[]){ 2, 3 }) == ATTN_OK, "write: %s", attn_last_error());
    size_t n = 0;
    unsigned char *fb = read_file(path, &n);
    CHECK(fb && n == sizeof NP_F4 - 1 && memcmp(fb, NP_F4, n) == 0, "byte-identical to numpy (%zu bytes)", n);
    free(fb);
    CHECK(attn_npy_read(path, &a) == ATTN_OK && a.numel == 6 && memcmp(a.data, v, sizeof v) == 0, "file round trip");
    attn_npy_free(&a);
}

static void test_round_trips(void) {
    char path[512];
    tmp_path(path, sizeof path, "rt.npy");
    tu_rng rng = { 99 };
    int64_t shapes[][8] = { { 0 }, { 7 }, { 3, 5 }, { 2, 3, 4 }, { 1, 1, 1, 1, 1, 1, 1, 3 }, { 4, 0, 2 } };
    int ndims[] = { 0, 1, 2, 3, 8, 3 };
    for (int t = 0; t < 6; t++) {
        int64_t numel = 1;
        for (int i = 0; i < ndims[t]; i++) numel *= shapes[t][i];
        float *v = (float *)malloc((size_t)(numel ? numel : 1) * 4);
        tu_fill(&rng, v, numel, 3.0f);
        CHECK(attn_npy_write(path, numel ? v : NULL, ndims[t], shapes[t]) == ATTN_OK, "write %d: %s", t, attn_last_error());
        size_t fn = 0;
        unsigned char *fb = read_file(path, &fn);
        CHECK(fb && (fn - (size_t)numel * 4) % 64 == 0, "data 64-aligned (%zu)", fn);
        attn_npy a;
        CHECK(attn_npy_read(path, &a) == ATTN_OK, "read %d: %s", t, attn_last_error());
        CHECK(a.ndim == ndims[t] && a.numel == numel, "shape %d", t);
        for (int i = 0; i < a.ndim; i++) CHECK(a.shape[i] == shapes[t][i], "dim %d of %d", i, t);
        CHECK(numel == 0 ? a.data == NULL : memcmp(a.data, v, (size_t)numel * 4) == 0, "data %d", t);
        attn_npy_free(&a);
        attn_npy a2;
        CHECK(fb && attn_npy_read_memory(fb, fn, &a2) == ATTN_OK && a2.numel == numel, "memory read %d", t);
        attn_npy_free(&a2);
        free(fb);
        free(v);
    }
    /* writer errors */
    float x = 1;
    CHECK(attn_npy_write(path, &x, 9, (int64_t[]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) == ATTN_ERR_SHAPE, "ndim 9");
    CHECK(attn_npy_write(path, &x, 1, (int64_t[]){ -1 }) == ATTN_ERR_SHAPE, "negative");
    CHECK(attn_npy_write(path, NULL, 1, (int64_t[]){ 2 }) == ATTN_ERR_NULL, "NULL data");
    CHECK(attn_npy_write(path, &x, 2, (int64_t[]){ INT64_MAX, 4 }) == ATTN_ERR_NOMEM, "overflow");
    CHECK(attn_npy_write(NULL, &x, 0, NULL) == ATTN_ERR_NULL, "NULL path");
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/dir/x.npy", tmpdir);
    CHECK(attn_npy_write(bad, &x, 0, NULL) == ATTN_ERR_IO, "missing dir");
    attn_npy a;
    CHECK(attn_npy_read(bad, &a) == ATTN_ERR_IO && strstr(attn_last_error(), "no/dir"), "read missing: %s", attn_last_error());
    CHECK(attn_npy_read(tmpdir, &a) == ATTN_ERR_IO, "read a directory");
    CHECK(attn_npy_read_memory(NULL, 5, &a) == ATTN_ERR_NULL && attn_npy_read_memory(NP_F4, 10, NULL) == ATTN_ERR_NULL,
          "NULLs");

    /* a big float64 file: the file reader's chunked path, with the header
       buffer ending inside an element */
    int n = 20000;
    double *d = (double *)malloc((size_t)n * 8);
    for (int i = 0; i < n; i++) d[i] = (i - 7000) * 0.37;
    const char *h = "{'descr': '<f8', 'fortran_order': False, 'shape': (20000,), }";
    char hdr[200];
    snprintf(hdr, sizeof hdr, "%-*s\n", 128 - 10 - 1 - 4, h); /* data at 124: not a multiple of 8 */
    buf b = mk(1, hdr, d, (size_t)n * 8);
    tmp_path(path, sizeof path, "big.npy");
    write_file(path, b.p, b.n);
    CHECK(attn_npy_read(path, &a) == ATTN_OK && a.numel == n, "big f8: %s", attn_last_error());
    int wrong = 0;
    for (int i = 0; a.data && i < n; i++) wrong += a.data[i] != (float)d[i];
    CHECK(wrong == 0, "big f8: %d wrong", wrong);
    attn_npy_free(&a);
    free(b.p);
    free(d);
}

#define HDR(descr, fo, shape) "{'descr': '" descr "', 'fortran_order': " fo ", 'shape': " shape ", }\n"
static const unsigned char Z[256];

static void test_variants(void) {
    unsigned char one[8] = { 0, 0, 0x80, 0x3f }; /* 1.0f LE */
    unsigned char one_be[4] = { 0x3f, 0x80, 0, 0 };
    attn_npy a;
    buf b;
    expect("v1", mk(1, HDR("<f4", "False", "(1,)"), one, 4), ATTN_OK, NULL);
    expect("v2", mk(2, HDR("<f4", "False", "(1,)"), one, 4), ATTN_OK, NULL);
    expect("v3", mk(3, HDR("<f4", "False", "(1,)"), one, 4), ATTN_OK, NULL);
    expect("'=' native", mk(1, HDR("=f4", "False", "(1,)"), one, 4), ATTN_OK, NULL);
    expect("'|' native", mk(1, HDR("|f4", "False", "(1,)"), one, 4), ATTN_OK, NULL);
    expect("no byte order", mk(1, HDR("f4", "False", "(1,)"), one, 4), ATTN_OK, NULL);
    b = mk(1, HDR(">f4", "False", "(1,)"), one_be, 4);
    CHECK(attn_npy_read_memory(b.p, b.n, &a) == ATTN_OK && a.data[0] == 1.0f, "big-endian f4");
    attn_npy_free(&a);
    free(b.p);
    expect("key order free, double quotes, no trailing comma, no newline",
           mk(1, "{\"shape\": (1,), \"fortran_order\": False, \"descr\": \"<f4\"}", one, 4), ATTN_OK, NULL);
    expect("python 2 long dims", mk(1, HDR("<f4", "False", "(1L, 1L)"), one, 4), ATTN_OK, NULL);
    expect("fortran 1-D", mk(1, HDR("<f4", "True", "(1,)"), one, 4), ATTN_OK, NULL);
    expect("fortran 0-D", mk(1, HDR("<f4", "True", "()"), one, 4), ATTN_OK, NULL);
    expect("fortran 2-D", mk(1, HDR("<f4", "True", "(1, 1)"), one, 4), ATTN_ERR_UNSUPPORTED, "fortran_order True");
    expect("scalar", mk(1, HDR("<f4", "False", "()"), one, 4), ATTN_OK, NULL);
    expect("zero-size", mk(1, HDR("<f4", "False", "(0, 5)"), NULL, 0), ATTN_OK, NULL);
    expect("8 dims", mk(1, HDR("<f4", "False", "(1,1,1,1,1,1,1,1)"), one, 4), ATTN_OK, NULL);
}

static void test_malformed(void) {
    unsigned char one[4] = { 0, 0, 0x80, 0x3f };
    /* truncated at every length of a valid file: never OK, never a crash */
    size_t full = sizeof NP_F4 - 1;
    for (size_t n = 0; n < full; n++) {
        attn_npy a;
        attn_status s = attn_npy_read_memory(NP_F4, n, &a);
        CHECK(s == ATTN_ERR_FORMAT, "truncated to %zu: %d %s", n, (int)s, attn_last_error());
        if (n >= 128) CHECK(strstr(attn_last_error(), "expected 24 bytes of data, file has") != NULL, "%zu: %s", n, attn_last_error());
    }
    {
        char path[512];
        tmp_path(path, sizeof path, "trunc.npy");
        for (size_t n = 0; n < full; n += 5) {
            write_file(path, NP_F4, n);
            attn_npy a;
            CHECK(attn_npy_read(path, &a) == ATTN_ERR_FORMAT, "file truncated to %zu: %s", n, attn_last_error());
        }
    }
    buf b;
    b.n = full;
    b.p = (unsigned char *)malloc(full + 8);
    memcpy(b.p, NP_F4, full);
    memset(b.p + full, 0, 8);
    b.n = full + 4;
    expect("data too long", b, ATTN_ERR_FORMAT, "expected 24 bytes of data, file has 28");

    expect("control: valid", mk(1, HDR("<f4", "False", "(1,)"), one, 4), ATTN_OK, NULL);
    b = mk(1, HDR("<f4", "False", "(1,)"), one, 4);
    b.p[1] = 'n';
    expect("bad magic", b, ATTN_ERR_FORMAT, "magic");
    b = mk(1, HDR("<f4", "False", "(1,)"), one, 4);
    b.p[6] = 4;
    expect("version 4.0", b, ATTN_ERR_UNSUPPORTED, "version 4.0");
    b = mk(1, HDR("<f4", "False", "(1,)"), one, 4);
    b.p[7] = 1;
    expect("version 1.1", b, ATTN_ERR_UNSUPPORTED, "version 1.1");
    b = mk(1, HDR("<f4", "False", "(1,)"), one, 4);
    b.p[8] = 0xff; b.p[9] = 0x7f;
    expect("header length past EOF", b, ATTN_ERR_FORMAT, "runs past the end of the file");
    b = mk(2, HDR("<f4", "False", "(1,)"), one, 4);
    attn__st_le32(b.p + 8, 0xffffffffu);
    expect("huge v2 header length", b, ATTN_ERR_FORMAT, "exceeds the limit");

    expect("not a dict", mk(1, "['descr']\n", NULL, 0), ATTN_ERR_FORMAT, "not a Python dict");
    expect("missing shape", mk(1, "{'descr': '<f4', 'fortran_order': False}\n", one, 4), ATTN_ERR_FORMAT, "lacks 'shape'");
    expect("missing descr", mk(1, "{'fortran_order': False, 'shape': (1,)}\n", one, 4), ATTN_ERR_FORMAT, "lacks 'descr'");
    expect("missing fortran_order", mk(1, "{'descr': '<f4', 'shape': (1,)}\n", one, 4), ATTN_ERR_FORMAT,
           "lacks 'fortran_order'");
    expect("unknown key", mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", one, 4),
           ATTN_ERR_FORMAT, "unexpected key 'x'");
    expect("duplicate key", mk(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n", one, 4),
           ATTN_ERR_FORMAT, "'descr' twice");
    expect("int dtype", mk(1, HDR("<i4", "False", "(1,)"), one, 4), ATTN_ERR_DTYPE, "unsupported dtype '<i4'");
    expect("complex dtype", mk(1, HDR("<c8", "False", "(1,)"), Z, 8), ATTN_ERR_DTYPE, "'<c8'");
    expect("bool dtype", mk(1, HDR("|b1", "False", "(1,)"), Z, 1), ATTN_ERR_DTYPE, "'|b1'");
    expect("f16 as 'f16'", mk(1, HDR("<f16", "False", "(1,)"), Z, 16), ATTN_ERR_DTYPE, NULL);
    expect("structured dtype", mk(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}\n", one, 4),
           ATTN_ERR_DTYPE, "structured");
    expect("shape (1) is an int", mk(1, HDR("<f4", "False", "(1)"), one, 4), ATTN_ERR_FORMAT, "not a tuple");
    expect("shape list", mk(1, HDR("<f4", "False", "[1]"), one, 4), ATTN_ERR_FORMAT, "tuple");
    expect("negative dim", mk(1, HDR("<f4", "False", "(-1,)"), one, 4), ATTN_ERR_FORMAT, "negative");
    expect("float dim", mk(1, HDR("<f4", "False", "(1.0,)"), one, 4), ATTN_ERR_FORMAT, "shape");
    expect("9 dims", mk(1, HDR("<f4", "False", "(1,1,1,1,1,1,1,1,1)"), one, 4), ATTN_ERR_UNSUPPORTED, "more than 8");
    expect("dim > int64", mk(1, HDR("<f4", "False", "(9223372036854775808,)"), one, 4), ATTN_ERR_FORMAT, "2^63");
    expect("overflowing shape", mk(1, HDR("<f4", "False", "(4294967296, 4294967296)"), one, 4), ATTN_ERR_FORMAT,
           "overflows");
    expect("bytes overflow", mk(1, HDR("<f8", "False", "(2305843009213693952,)"), one, 4), ATTN_ERR_FORMAT, "overflows");
    expect("huge shape, little data", mk(1, HDR("<f4", "False", "(1000000000000,)"), one, 4), ATTN_ERR_FORMAT,
           "expected 4000000000000 bytes of data, file has 4");
    expect("fortran_order not bool", mk(1, HDR("<f4", "0", "(1,)"), one, 4), ATTN_ERR_FORMAT, "True or False");
    expect("fortran_order Truex", mk(1, HDR("<f4", "Truex", "(1,)"), one, 4), ATTN_ERR_FORMAT, "True or False");
    expect("unterminated string", mk(1, "{'descr: 1}\n", one, 4), ATTN_ERR_FORMAT, "unterminated");
    expect("escape in string", mk(1, "{'de\\scr': 1}\n", one, 4), ATTN_ERR_FORMAT, "escape");
    expect("trailing junk", mk(1, HDR("<f4", "False", "(1,)") "x", one, 4), ATTN_ERR_FORMAT, "after the dict");
    expect("missing colon", mk(1, "{'descr' '<f4'}\n", one, 4), ATTN_ERR_FORMAT, "':'");
    expect("empty header", mk(1, "", one, 4), ATTN_ERR_FORMAT, "dict");
    expect("empty file", (buf){ (unsigned char *)calloc(1, 1), 0 }, ATTN_ERR_FORMAT, "truncated");
}

/* attn__npy_read_i64 (io/npy.h): integer dtypes, integral floats; the public reader stays float-only */
static void expect_i64(const char *what, buf b, attn_status want, int64_t n, const int64_t *vals) {
    attn_npy_i64 a;
    memset(&a, 0x5a, sizeof a);
    attn_npy_i64 before = a;
    attn_status s = attn__npy_read_i64_memory(b.p, b.n, &a);
    CHECK(s == want, "%s: status %d (%s), expected %d", what, (int)s, attn_last_error(), (int)want);
    if (s == ATTN_OK) {
        CHECK(a.numel == n, "%s: numel %lld, expected %lld", what, (long long)a.numel, (long long)n);
        for (int64_t i = 0; i < n && i < a.numel; i++)
            CHECK(a.data[i] == vals[i], "%s: [%lld] = %lld, expected %lld", what, (long long)i, (long long)a.data[i],
                  (long long)vals[i]);
        attn__npy_i64_free(&a);
    } else {
        CHECK(memcmp(&a, &before, sizeof a) == 0, "%s: output written on error", what);
    }
    char path[512];
    tmp_path(path, sizeof path, "case_i64.npy");
    write_file(path, b.p, b.n);
    s = attn__npy_read_i64(path, &a);
    CHECK(s == want, "%s (file): status %d (%s), expected %d", what, (int)s, attn_last_error(), (int)want);
    if (s == ATTN_OK) attn__npy_i64_free(&a);
    free(b.p);
}

static void test_i64(void) {
    const unsigned char i1[3] = { 0xff, 0x7f, 0x80 };
    const int64_t v_i1[3] = { -1, 127, -128 };
    expect_i64("i1", mk(1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }", i1, 3), ATTN_OK, 3, v_i1);
    const unsigned char u2[4] = { 0xff, 0xff, 0x01, 0x00 };
    const int64_t v_u2[2] = { 65535, 1 };
    expect_i64("u2", mk(1, "{'descr': '<u2', 'fortran_order': False, 'shape': (1, 2), }", u2, 4), ATTN_OK, 2, v_u2);
    const unsigned char i4be[4] = { 0xff, 0xff, 0xff, 0xfe };
    const int64_t v_i4[1] = { -2 };
    expect_i64("i4 big-endian", mk(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }", i4be, 4), ATTN_OK, 1,
               v_i4);
    const unsigned char i8[8] = { 0, 0, 0, 0, 0, 0, 0, 0x80 };
    const int64_t v_i8[1] = { INT64_MIN };
    expect_i64("i8 min", mk(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", i8, 8), ATTN_OK, 1, v_i8);
    expect_i64("u8 above 2^63 - 1", mk(1, "{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", i8, 8),
               ATTN_ERR_DTYPE, 0, NULL);
    const float f4[2] = { 3.0f, 2.5f };
    expect_i64("f4 not integral", mk(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f4, 8),
               ATTN_ERR_DTYPE, 0, NULL);
    const double f8[2] = { -7.0, 4096.0 };
    const int64_t v_f8[2] = { -7, 4096 };
    expect_i64("f8 integral", mk(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", f8, 16), ATTN_OK, 2,
               v_f8);
    expect_i64("i3", mk(1, "{'descr': '<i3', 'fortran_order': False, 'shape': (1,), }", i1, 3), ATTN_ERR_DTYPE, 0, NULL);
    expect_i64("i8 short data", mk(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", i8, 8),
               ATTN_ERR_FORMAT, 0, NULL);
    expect("public reader: i8 refused", mk(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", i8, 8),
           ATTN_ERR_DTYPE, "float16/32/64 only");
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/attn_test_npy_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_numpy_files();
    test_round_trips();
    test_variants();
    test_malformed();
    test_i64();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("test_npy");
}
