/* SPDX-License-Identifier: MIT */
/* test_safetensors.c — safetensors reader/writer (src/io/safetensors.c) and
 * the fp16/bf16 conversions (src/io/half.h): round trips, a file written by
 * the reference Python implementation, and malformed files, each of which
 * must give its specific error and never crash. */
#include "core/core.h"
#include "io/half.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Written by python: safetensors 0.8.0 `safetensors.numpy.save` of
 *   f32 [[1, -2.5, 3.25], [0, 1e-40, -0]] float32, f16 [1, -2, 65504, 6e-8, inf, -inf, 0.333]
 *   float16, f64 [[pi], [1e300]] float64, i32 [1, 2, 3] int32; metadata {"format": "pt"}. */
static const char REF_FILE[] =
    "\x08\x01\x00\x00\x00\x00\x00\x00\x7b\x22\x5f\x5f\x6d\x65\x74\x61\x64\x61\x74\x61\x5f\x5f\x22\x3a"
    "\x7b\x22\x66\x6f\x72\x6d\x61\x74\x22\x3a\x22\x70\x74\x22\x7d\x2c\x22\x66\x36\x34\x22\x3a\x7b\x22"
    "\x64\x74\x79\x70\x65\x22\x3a\x22\x46\x36\x34\x22\x2c\x22\x73\x68\x61\x70\x65\x22\x3a\x5b\x32\x2c"
    "\x31\x5d\x2c\x22\x64\x61\x74\x61\x5f\x6f\x66\x66\x73\x65\x74\x73\x22\x3a\x5b\x30\x2c\x31\x36\x5d"
    "\x7d\x2c\x22\x66\x33\x32\x22\x3a\x7b\x22\x64\x74\x79\x70\x65\x22\x3a\x22\x46\x33\x32\x22\x2c\x22"
    "\x73\x68\x61\x70\x65\x22\x3a\x5b\x32\x2c\x33\x5d\x2c\x22\x64\x61\x74\x61\x5f\x6f\x66\x66\x73\x65"
    "\x74\x73\x22\x3a\x5b\x31\x36\x2c\x34\x30\x5d\x7d\x2c\x22\x69\x33\x32\x22\x3a\x7b\x22\x64\x74\x79"
    "\x70\x65\x22\x3a\x22\x49\x33\x32\x22\x2c\x22\x73\x68\x61\x70\x65\x22\x3a\x5b\x33\x5d\x2c\x22\x64"
    "\x61\x74\x61\x5f\x6f\x66\x66\x73\x65\x74\x73\x22\x3a\x5b\x34\x30\x2c\x35\x32\x5d\x7d\x2c\x22\x66"
    "\x31\x36\x22\x3a\x7b\x22\x64\x74\x79\x70\x65\x22\x3a\x22\x46\x31\x36\x22\x2c\x22\x73\x68\x61\x70"
    "\x65\x22\x3a\x5b\x37\x5d\x2c\x22\x64\x61\x74\x61\x5f\x6f\x66\x66\x73\x65\x74\x73\x22\x3a\x5b\x35"
    "\x32\x2c\x36\x36\x5d\x7d\x7d\x20\x18\x2d\x44\x54\xfb\x21\x09\x40\x9c\x75\x00\x88\x3c\xe4\x37\x7e"
    "\x00\x00\x80\x3f\x00\x00\x20\xc0\x00\x00\x50\x40\x00\x00\x00\x00\xc2\x16\x01\x00\x00\x00\x00\x80"
    "\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x00\x3c\x00\xc0\xff\x7b\x01\x00\x00\x7c\x00\xfc"
    "\x54\x35";
#define REF_SIZE (sizeof REF_FILE - 1)

static char tmpdir[256];

static void make_tmpdir(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/attn_test_st_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(1); }
}
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

/* A file from a header (JSON text, not padded) and a data buffer. */
typedef struct buf { unsigned char *p; size_t n; } buf;
static buf mk(const char *header, const void *data, size_t ndata) {
    size_t h = strlen(header);
    buf b;
    b.n = 8 + h + ndata;
    b.p = (unsigned char *)calloc(b.n + 1, 1);
    attn__st_le64(b.p, h);
    memcpy(b.p + 8, header, h);
    if (ndata) memcpy(b.p + 8 + h, data, ndata);
    return b;
}

/* opens from memory, expects status `want` and (if given) a message substring */
static void expect_open(const char *what, buf b, attn_status want, const char *msg) {
    attn_st *st = NULL;
    attn_clear_error();
    attn_status s = attn_st_open_memory(&st, b.p, b.n);
    CHECK(s == want, "%s: status %d (%s), expected %d", what, (int)s, attn_last_error(), (int)want);
    if (msg) CHECK(strstr(attn_last_error(), msg) != NULL, "%s: message '%s' lacks '%s'", what, attn_last_error(), msg);
    if (s == ATTN_OK) CHECK(st != NULL, "%s: no handle", what);
    else CHECK(st == NULL, "%s: handle set on error", what);
    attn_st_free(st);
    free(b.p);
}

/* ─── half.h ─────────────────────────────────────────────────────────────── */
static void test_half(void) {
    /* every f16 -> f32 -> f16 is the identity (NaNs stay NaNs, quiet) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = attn__f16_to_f32((uint16_t)h);
        uint16_t back = attn__f32_to_f16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            if (!isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000)) bad++;
        } else if (back != h) bad++;
        /* the value itself against ldexp */
        if (!is_nan && (h & 0x7c00) != 0x7c00) {
            int e = (h >> 10) & 31;
            double m = e ? (1024 + (h & 0x3ff)) : (h & 0x3ff);
            double v = ldexp(m, (e ? e : 1) - 25) * ((h & 0x8000) ? -1 : 1);
            if ((double)f != v || !!signbit(f) != !!(h & 0x8000)) bad++;
        }
    }
    CHECK(bad == 0, "f16 <-> f32: %d mismatches", bad);
    CHECK(isinf(attn__f16_to_f32(0x7c00)) && attn__f16_to_f32(0x7c00) > 0, "+inf");
    CHECK(isinf(attn__f16_to_f32(0xfc00)) && attn__f16_to_f32(0xfc00) < 0, "-inf");
    CHECK(attn__f16_to_f32(0x0001) == 0x1p-24f, "smallest subnormal");
    CHECK(attn__f16_to_f32(0x03ff) == 1023 * 0x1p-24f, "largest subnormal");
    CHECK(attn__f16_to_f32(0x7bff) == 65504.0f, "max");
    /* rounding: for every pair of neighbours, the midpoint ties to even and
       the floats just around it round to the nearer one */
    bad = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double a = attn__f16_to_f32((uint16_t)h);
        double b = h + 1 == 0x7c00 ? 65536.0 : attn__f16_to_f32((uint16_t)(h + 1)); /* beyond max: 2^16 */
        float mid = (float)((a + b) / 2); /* exact in fp32 */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (attn__f32_to_f16(mid) != even) bad++;
        if (attn__f32_to_f16(nextafterf(mid, 0)) != h) bad++;
        if (attn__f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) bad++;
        if (attn__f32_to_f16(-mid) != (even | 0x8000)) bad++;
    }
    CHECK(bad == 0, "f32 -> f16 rounding: %d mismatches", bad);
    CHECK(attn__f32_to_f16(65519.99f) == 0x7bff, "just below the overflow threshold");
    CHECK(attn__f32_to_f16(65520.0f) == 0x7c00, "overflow threshold -> inf");
    CHECK(attn__f32_to_f16(1e30f) == 0x7c00 && attn__f32_to_f16(-1e30f) == 0xfc00, "overflow");
    CHECK(attn__f32_to_f16(0x1p-25f) == 0 && attn__f32_to_f16(-0x1p-25f) == 0x8000, "2^-25 ties to zero");
    CHECK(attn__f32_to_f16(nextafterf(0x1p-25f, 1)) == 1, "just above 2^-25 -> smallest subnormal");
    CHECK(attn__f32_to_f16(1e-30f) == 0, "underflow");
    CHECK(attn__f32_to_f16(NAN) == 0x7e00 || (attn__f32_to_f16(NAN) & 0x7e00) == 0x7e00, "nan quiet");
    CHECK((attn__f32_to_f16(attn__bits_f32(0x7f800001u)) & 0x7fff) > 0x7c00, "signalling nan with low payload stays nan");

    /* bf16 */
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = attn__bf16_to_f32((uint16_t)h);
        uint16_t back = attn__f32_to_bf16(f);
        int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (is_nan ? !(isnan(f) && ((back & 0x7f80) == 0x7f80) && (back & 0x7f)) : back != h) bad++;
        if (attn__f32_bits(f) != h << 16) bad++;
    }
    CHECK(bad == 0, "bf16 <-> f32: %d mismatches", bad);
    CHECK(attn__f32_to_bf16(attn__bits_f32(0x3f808000u)) == 0x3f80, "bf16 tie to even (down)");
    CHECK(attn__f32_to_bf16(attn__bits_f32(0x3f818000u)) == 0x3f82, "bf16 tie to even (up)");
    CHECK(attn__f32_to_bf16(attn__bits_f32(0x3f808001u)) == 0x3f81, "bf16 above tie");
    CHECK(attn__f32_to_bf16(attn__bits_f32(0x7f7fffffu)) == 0x7f80, "bf16 overflow to inf");
    CHECK((attn__f32_to_bf16(attn__bits_f32(0x7f800001u)) & 0x7f) != 0, "bf16 nan with low payload stays nan");
}

/* ─── reading a file written by the reference implementation ──────────── */
static void check_ref(const attn_st *st) {
    CHECK(attn_st_count(st) == 4, "count %lld", (long long)attn_st_count(st));
    attn_tensor_info ti;
    const char *names[4] = { "f16", "f32", "f64", "i32" }; /* index order = name order */
    for (int i = 0; i < 4; i++) {
        CHECK(attn_st_info(st, i, &ti) == ATTN_OK && strcmp(ti.name, names[i]) == 0, "info %d: %s", i, ti.name);
    }
    CHECK(attn_st_find(st, "f32", &ti) == ATTN_OK && ti.dtype == ATTN_DTYPE_F32 && ti.ndim == 2 && ti.shape[0] == 2 &&
          ti.shape[1] == 3 && ti.numel == 6, "f32 info");
    CHECK(attn_st_find(st, "i32", &ti) == ATTN_OK && ti.dtype == ATTN_DTYPE_I32 && ti.ndim == 1 && ti.numel == 3, "i32 info");
    float v[8];
    int64_t s23[2] = { 2, 3 };
    CHECK(attn_st_read_f32(st, "f32", v, 6, 2, s23) == ATTN_OK, "read f32: %s", attn_last_error());
    CHECK(v[0] == 1.0f && v[1] == -2.5f && v[2] == 3.25f && v[3] == 0.0f && v[4] == 1e-40f && v[5] == 0.0f &&
          signbit(v[5]), "f32 values");
    int64_t s7[1] = { 7 };
    CHECK(attn_st_read_f32(st, "f16", v, 7, 1, s7) == ATTN_OK, "read f16: %s", attn_last_error());
    CHECK(v[0] == 1.0f && v[1] == -2.0f && v[2] == 65504.0f && v[3] == 0x1p-24f && isinf(v[4]) && v[4] > 0 &&
          isinf(v[5]) && v[5] < 0 && v[6] == 0.3330078125f, "f16 values");
    CHECK(attn_st_read_f32(st, "f64", v, 2, -1, NULL) == ATTN_OK, "read f64: %s", attn_last_error());
    CHECK(v[0] == (float)3.141592653589793 && isinf(v[1]), "f64 values (1e300 -> inf)");
    /* errors */
    attn_status s = attn_st_read_f32(st, "i32", v, 3, 1, (int64_t[]){ 3 });
    CHECK(s == ATTN_ERR_DTYPE && strstr(attn_last_error(), "'i32'") && strstr(attn_last_error(), "I32"), "dtype: %s",
          attn_last_error());
    s = attn_st_read_f32(st, "nope.weight", v, 3, 1, (int64_t[]){ 3 });
    CHECK(s == ATTN_ERR_NOT_FOUND && strstr(attn_last_error(), "'nope.weight'"), "missing: %s", attn_last_error());
    s = attn_st_read_f32(st, "f32", v, 6, 2, (int64_t[]){ 3, 2 });
    CHECK(s == ATTN_ERR_SHAPE && strcmp(attn_last_error(), "tensor 'f32': expected shape [3, 2], file has [2, 3]") == 0,
          "shape: %s", attn_last_error());
    s = attn_st_read_f32(st, "f32", v, 6, 1, (int64_t[]){ 6 });
    CHECK(s == ATTN_ERR_SHAPE && strstr(attn_last_error(), "expected shape [6], file has [2, 3]"), "ndim: %s", attn_last_error());
    s = attn_st_read_f32(st, "f32", v, 5, -1, NULL);
    CHECK(s == ATTN_ERR_SHAPE && strstr(attn_last_error(), "6 elements"), "numel: %s", attn_last_error());
    s = attn_st_read_f32(st, "f32", NULL, 6, -1, NULL);
    CHECK(s == ATTN_ERR_NULL, "NULL dst");
    s = attn_st_read_f32(st, "f32", v, 6, 9, s23);
    CHECK(s == ATTN_ERR_SHAPE, "ndim 9");
    CHECK(attn_st_info(st, 4, &ti) == ATTN_ERR_NOT_FOUND && attn_st_info(st, -1, &ti) == ATTN_ERR_NOT_FOUND, "info range");
    CHECK(attn_st_find(st, "f3", &ti) == ATTN_ERR_NOT_FOUND && attn_st_find(st, "f320", &ti) == ATTN_ERR_NOT_FOUND,
          "find near names");
    /* metadata */
    const char *k = NULL, *mv = NULL;
    CHECK(attn_st_metadata_count(st) == 1, "metadata count");
    CHECK(attn_st_metadata_entry(st, 0, &k, &mv) == ATTN_OK && strcmp(k, "format") == 0 && strcmp(mv, "pt") == 0,
          "metadata entry");
    CHECK(attn_st_metadata_entry(st, 1, &k, &mv) == ATTN_ERR_NOT_FOUND, "metadata entry range");
    CHECK(attn_st_metadata(st, "format") && strcmp(attn_st_metadata(st, "format"), "pt") == 0, "metadata get");
    CHECK(attn_st_metadata(st, "formats") == NULL && attn_st_metadata(st, NULL) == NULL, "metadata missing");
}

static void test_reference_file(void) {
    attn_st *st = NULL;
    CHECK(attn_st_open_memory(&st, REF_FILE, REF_SIZE) == ATTN_OK, "open ref (memory): %s", attn_last_error());
    if (st) check_ref(st);
    attn_st_free(st);
    char path[512];
    tmp_path(path, sizeof path, "ref.safetensors");
    CHECK(write_file(path, REF_FILE, REF_SIZE) == 0, "write ref");
    st = NULL;
    CHECK(attn_st_open(&st, path) == ATTN_OK, "open ref (file): %s", attn_last_error());
    if (st) check_ref(st);
    attn_st_free(st);
    /* missing file / directory */
    st = NULL;
    tmp_path(path, sizeof path, "does_not_exist.safetensors");
    CHECK(attn_st_open(&st, path) == ATTN_ERR_IO && strstr(attn_last_error(), "does_not_exist") && !st, "missing file");
    CHECK(attn_st_open(&st, tmpdir) == ATTN_ERR_IO && !st, "directory");
    CHECK(attn_st_open(NULL, path) == ATTN_ERR_NULL && attn_st_open(&st, NULL) == ATTN_ERR_NULL, "NULLs");
    CHECK(attn_st_open_memory(&st, NULL, 10) == ATTN_ERR_NULL, "NULL data");
    attn_st_free(NULL);
    CHECK(attn_st_count(NULL) == 0, "count NULL");
}

/* ─── F16 / BF16 / F64 / zero-size / scalar tensors built by hand ──────── */
static void test_conversions(void) {
    unsigned char data[64];
    /* bf16 [1.0, -0.0, 3.0e38-ish, nan, smallest subnormal]; f16 [..]; f64 [..] */
    uint16_t bf[5] = { 0x3f80, 0x8000, 0x7f7f, 0x7fc1, 0x0001 };
    uint16_t hf[3] = { 0x3555, 0x8001, 0x7e00 };
    double dd[2] = { 0.1, -1e-320 };
    size_t k = 0;
    for (int i = 0; i < 5; i++) { data[k++] = (unsigned char)bf[i]; data[k++] = (unsigned char)(bf[i] >> 8); }
    for (int i = 0; i < 3; i++) { data[k++] = (unsigned char)hf[i]; data[k++] = (unsigned char)(hf[i] >> 8); }
    for (int i = 0; i < 2; i++) { uint64_t u; memcpy(&u, &dd[i], 8); attn__st_le64(data + k, u); k += 8; }
    /* k = 32 */
    buf b = mk("{\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[0,10]},"
               "\"h\":{\"dtype\":\"F16\",\"shape\":[1,3],\"data_offsets\":[10,16]},"
               "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]},"
               "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[32,32]},"
               "\"z2\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[32,32]},"
               "\"u\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[32,33]}}",
               data, 33);
    attn_st *st = NULL;
    CHECK(attn_st_open_memory(&st, b.p, b.n) == ATTN_OK, "open: %s", attn_last_error());
    free(b.p);
    if (!st) return;
    float v[8];
    CHECK(attn_st_read_f32(st, "b", v, 5, 1, (int64_t[]){ 5 }) == ATTN_OK, "bf16: %s", attn_last_error());
    CHECK(v[0] == 1.0f && v[1] == 0.0f && signbit(v[1]) && v[2] == attn__bits_f32(0x7f7f0000u) && isnan(v[3]) &&
          v[4] == attn__bits_f32(0x00010000u), "bf16 values");
    CHECK(attn_st_read_f32(st, "h", v, 3, 2, (int64_t[]){ 1, 3 }) == ATTN_OK, "f16: %s", attn_last_error());
    CHECK(v[0] == attn__f16_to_f32(0x3555) && v[1] == -0x1p-24f && isnan(v[2]), "f16 values");
    CHECK(attn_st_read_f32(st, "d", v, 2, 1, (int64_t[]){ 2 }) == ATTN_OK, "f64: %s", attn_last_error());
    CHECK(v[0] == 0.1f && v[1] == 0.0f && signbit(v[1]), "f64 values (rounded, underflow keeps sign)");
    CHECK(attn_st_read_f32(st, "z", NULL, 0, 2, (int64_t[]){ 0, 4 }) == ATTN_OK, "zero-size: %s", attn_last_error());
    CHECK(attn_st_read_f32(st, "z2", NULL, 0, -1, NULL) == ATTN_OK, "zero-size bf16");
    attn_tensor_info ti;
    CHECK(attn_st_find(st, "u", &ti) == ATTN_OK && ti.ndim == 0 && ti.numel == 1 && ti.dtype == ATTN_DTYPE_U8, "scalar U8");
    CHECK(attn_st_read_f32(st, "u", v, 1, 0, NULL) == ATTN_ERR_DTYPE, "U8 not convertible");
    attn_st_free(st);

    /* a large F16 tensor: exercises the chunked conversion (more than one bounce buffer) */
    int n = 20000;
    unsigned char *big = (unsigned char *)malloc((size_t)n * 2);
    for (int i = 0; i < n; i++) { big[2 * i] = (unsigned char)i; big[2 * i + 1] = (unsigned char)((i >> 8) & 0x7b); }
    char hdr[128];
    snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[0,%d]}}", n, 2 * n);
    b = mk(hdr, big, (size_t)n * 2);
    char path[512];
    tmp_path(path, sizeof path, "big16.safetensors");
    write_file(path, b.p, b.n);
    float *out = (float *)malloc((size_t)n * sizeof(float));
    for (int src = 0; src < 2; src++) {
        st = NULL;
        attn_status s = src ? attn_st_open(&st, path) : attn_st_open_memory(&st, b.p, b.n);
        CHECK(s == ATTN_OK, "open big: %s", attn_last_error());
        if (!st) continue;
        CHECK(attn_st_read_f32(st, "x", out, n, 1, (int64_t[]){ n }) == ATTN_OK, "read big");
        int bad = 0;
        for (int i = 0; i < n; i++) bad += out[i] != attn__f16_to_f32(attn__ld_le16(big + 2 * i));
        CHECK(bad == 0, "big f16: %d wrong", bad);
        attn_st_free(st);
    }
    free(out);
    free(big);
    free(b.p);
}

/* ─── writer round trip ──────────────────────────────────────────────────── */
static void test_writer(void) {
    attn_st_writer *w = NULL;
    CHECK(attn_st_writer_create(&w) == ATTN_OK && w, "create");
    if (!w) return;
    tu_rng rng = { 7 };
    float a[64 * 32], c[5] = { 1, 2, 3, 4, 5 }, sc = 42.0f;
    tu_fill(&rng, a, 64 * 32, 1.0f);
    a[3] = -0.0f; a[4] = INFINITY; a[5] = NAN; a[6] = 1e-42f;
    const char *odd = "la\"yer\\0.\xc3\xa9\x01\x7f";
    CHECK(attn_st_writer_add_f32(w, "layers.0.q_proj.weight", a, 2, (int64_t[]){ 64, 32 }) == ATTN_OK, "add a");
    CHECK(attn_st_writer_add_f32(w, "b.bias", c, 1, (int64_t[]){ 5 }) == ATTN_OK, "add b");
    CHECK(attn_st_writer_add_f32(w, odd, c, 3, (int64_t[]){ 1, 5, 1 }) == ATTN_OK, "add odd name: %s", attn_last_error());
    CHECK(attn_st_writer_add_f32(w, "scalar", &sc, 0, NULL) == ATTN_OK, "add scalar");
    CHECK(attn_st_writer_add_f32(w, "empty", NULL, 2, (int64_t[]){ 0, 7 }) == ATTN_OK, "add empty");
    /* errors */
    CHECK(attn_st_writer_add_f32(w, "b.bias", c, 1, (int64_t[]){ 5 }) == ATTN_ERR_OPTION &&
          strstr(attn_last_error(), "duplicate"), "duplicate: %s", attn_last_error());
    CHECK(attn_st_writer_add_f32(w, "", c, 1, (int64_t[]){ 5 }) == ATTN_ERR_OPTION, "empty name");
    CHECK(attn_st_writer_add_f32(w, "__metadata__", c, 1, (int64_t[]){ 5 }) == ATTN_ERR_OPTION, "reserved name");
    CHECK(attn_st_writer_add_f32(w, "bad\xff", c, 1, (int64_t[]){ 5 }) == ATTN_ERR_OPTION, "invalid UTF-8 name");
    CHECK(attn_st_writer_add_f32(w, "neg", c, 1, (int64_t[]){ -1 }) == ATTN_ERR_SHAPE, "negative dim");
    CHECK(attn_st_writer_add_f32(w, "nd", c, 9, (int64_t[]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) == ATTN_ERR_SHAPE, "ndim 9");
    CHECK(attn_st_writer_add_f32(w, "huge", c, 2, (int64_t[]){ INT64_MAX, 2 }) == ATTN_ERR_NOMEM, "overflow");
    CHECK(attn_st_writer_add_f32(w, "nodata", NULL, 1, (int64_t[]){ 2 }) == ATTN_ERR_NULL, "NULL data");
    CHECK(attn_st_writer_add_f32(NULL, "x", c, 1, (int64_t[]){ 2 }) == ATTN_ERR_NULL, "NULL writer");

    CHECK(attn_st_writer_set_metadata(w, "zeta", "1") == ATTN_OK, "meta zeta");
    CHECK(attn_st_writer_set_metadata(w, "alpha", "x\"y\n\xc3\xa9") == ATTN_OK, "meta alpha");
    CHECK(attn_st_writer_set_metadata(w, "zeta", "2") == ATTN_OK, "meta zeta replaced");
    CHECK(attn_st_writer_set_metadata(w, "", "1") == ATTN_ERR_OPTION, "meta empty key");
    CHECK(attn_st_writer_set_metadata(w, "k", "\xff") == ATTN_ERR_OPTION, "meta invalid UTF-8 value");
    CHECK(attn_st_writer_set_metadata(w, "k", NULL) == ATTN_ERR_NULL, "meta NULL value");
    char path[512];
    tmp_path(path, sizeof path, "rt.safetensors");
    CHECK(attn_st_writer_save(w, path) == ATTN_OK, "save: %s", attn_last_error());
    char bad_path[600];
    snprintf(bad_path, sizeof bad_path, "%s/no/such/dir/x.safetensors", tmpdir);
    CHECK(attn_st_writer_save(w, bad_path) == ATTN_ERR_IO, "save to a missing dir");
    attn_st_writer_free(w);
    attn_st_writer_free(NULL);

    size_t fn = 0;
    unsigned char *fb = read_file(path, &fn);
    CHECK(fb && fn > 8, "read back");
    if (fb) {
        uint64_t h = attn__ld_le64(fb);
        CHECK(h % 8 == 0, "header padded to 8 (%llu)", (unsigned long long)h);
        const char *want = "{\"__metadata__\":{\"alpha\":\"x\\\"y\\u000a\xc3\xa9\",\"format\":\"pt\",\"zeta\":\"2\"},"
                           "\"b.bias\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]},\"empty\":";
        CHECK(memcmp(fb + 8, want, strlen(want)) == 0, "header starts as expected: %.140s", fb + 8);
        CHECK(fb[8 + h - 1] == ' ' || fb[8 + h - 1] == '}', "padding is spaces");
    }
    for (int src = 0; src < 2; src++) {
        attn_st *st = NULL;
        attn_status s = src ? attn_st_open(&st, path) : attn_st_open_memory(&st, fb, fn);
        CHECK(s == ATTN_OK, "reopen %d: %s", src, attn_last_error());
        if (!st) continue;
        CHECK(attn_st_count(st) == 5, "count");
        float r[64 * 32];
        CHECK(attn_st_read_f32(st, "layers.0.q_proj.weight", r, 64 * 32, 2, (int64_t[]){ 64, 32 }) == ATTN_OK, "read a");
        CHECK(memcmp(r, a, sizeof a) == 0, "a bit-identical (incl. -0, inf, nan, subnormal)");
        CHECK(attn_st_read_f32(st, odd, r, 5, 3, (int64_t[]){ 1, 5, 1 }) == ATTN_OK && memcmp(r, c, sizeof c) == 0,
              "odd name round trip: %s", attn_last_error());
        CHECK(attn_st_read_f32(st, "scalar", r, 1, 0, NULL) == ATTN_OK && r[0] == 42.0f, "scalar");
        CHECK(attn_st_read_f32(st, "empty", NULL, 0, 2, (int64_t[]){ 0, 7 }) == ATTN_OK, "empty");
        attn_tensor_info ti;
        CHECK(attn_st_info(st, 0, &ti) == ATTN_OK && strcmp(ti.name, "b.bias") == 0, "sorted by name");
        CHECK(attn_st_metadata_count(st) == 3, "3 metadata entries");
        const char *mk = NULL, *mv = NULL;
        CHECK(attn_st_metadata_entry(st, 0, &mk, &mv) == ATTN_OK && strcmp(mk, "alpha") == 0 &&
              strcmp(mv, "x\"y\n\xc3\xa9") == 0, "metadata round trip");
        CHECK(attn_st_metadata(st, "zeta") && strcmp(attn_st_metadata(st, "zeta"), "2") == 0, "replaced value");
        CHECK(attn_st_metadata(st, "format") && strcmp(attn_st_metadata(st, "format"), "pt") == 0, "default format");
        attn_st_free(st);
    }
    free(fb);

    /* an empty writer gives the reference's empty file: {"__metadata__":...} + padding, no data */
    CHECK(attn_st_writer_create(&w) == ATTN_OK, "create 2");
    tmp_path(path, sizeof path, "empty.safetensors");
    CHECK(attn_st_writer_save(w, path) == ATTN_OK, "save empty");
    attn_st_writer_free(w);
    attn_st *st = NULL;
    CHECK(attn_st_open(&st, path) == ATTN_OK && attn_st_count(st) == 0, "open empty: %s", attn_last_error());
    CHECK(attn_st_metadata_count(st) == 1 && strcmp(attn_st_metadata(st, "format"), "pt") == 0, "empty: format pt");
    attn_st_free(st);
    /* a caller's "format" replaces the default */
    CHECK(attn_st_writer_create(&w) == ATTN_OK, "create 3");
    CHECK(attn_st_writer_set_metadata(w, "format", "np") == ATTN_OK, "set format");
    CHECK(attn_st_writer_save(w, path) == ATTN_OK, "save 3");
    attn_st_writer_free(w);
    st = NULL;
    CHECK(attn_st_open(&st, path) == ATTN_OK && attn_st_metadata_count(st) == 1 &&
          strcmp(attn_st_metadata(st, "format"), "np") == 0, "format overridden");
    attn_st_free(st);
    CHECK(attn_st_metadata_count(NULL) == 0 && attn_st_metadata(NULL, "format") == NULL, "metadata NULL handle");
}

/* ─── malformed files ───────────────────────────────────────────────────── */
#define T1 "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
static const unsigned char Z[64];

static void test_malformed(void) {
    buf b;
    /* a minimal valid file first */
    expect_open("valid", mk(T1, Z, 8), ATTN_OK, NULL);

    /* truncated at every length: never OK, never a crash */
    b = mk(T1, Z, 8);
    for (size_t n = 0; n < b.n; n++) {
        attn_st *st = NULL;
        attn_status s = attn_st_open_memory(&st, b.p, n);
        CHECK(s == ATTN_ERR_FORMAT && st == NULL, "truncated to %zu: %d %s", n, (int)s, attn_last_error());
        if (n < 8) CHECK(strstr(attn_last_error(), "too short") != NULL, "short %zu: %s", n, attn_last_error());
        else CHECK(strstr(attn_last_error(), "past the end of the file") != NULL || n >= 8 + strlen(T1),
                   "short %zu: %s", n, attn_last_error());
    }
    /* and the same through the file path */
    char path[512];
    tmp_path(path, sizeof path, "trunc.safetensors");
    for (size_t n = 0; n < b.n; n += 7) {
        write_file(path, b.p, n);
        attn_st *st = NULL;
        CHECK(attn_st_open(&st, path) == ATTN_ERR_FORMAT && !st, "file truncated to %zu: %s", n, attn_last_error());
    }
    free(b.p);

    /* header length */
    b = mk(T1, Z, 8);
    attn__st_le64(b.p, 0xffffffffffffffffull);
    expect_open("huge header length", b, ATTN_ERR_FORMAT, "exceeds the limit");
    b = mk(T1, Z, 8);
    attn__st_le64(b.p, 100000001ull);
    expect_open("header length just above the limit", b, ATTN_ERR_FORMAT, "exceeds the limit of 100000000");
    b = mk(T1, Z, 8);
    attn__st_le64(b.p, strlen(T1) + 9);
    expect_open("header length past EOF", b, ATTN_ERR_FORMAT, "runs past the end of the file");
    b = mk(T1, Z, 8);
    attn__st_le64(b.p, 0);
    expect_open("header length 0", b, ATTN_ERR_FORMAT, "not valid JSON");

    /* JSON */
    expect_open("invalid JSON", mk("{\"t\":{\"dtype\":\"F32\",}}", NULL, 0), ATTN_ERR_FORMAT, "not valid JSON");
    expect_open("invalid JSON offset", mk("{\"t\" 1}", NULL, 0), ATTN_ERR_FORMAT, "header byte 5 (file offset 13)");
    expect_open("trailing garbage", mk(T1 "x", Z, 8), ATTN_ERR_FORMAT, "trailing characters");
    expect_open("trailing NUL", mk(T1 "\x01", Z, 8), ATTN_ERR_FORMAT, "trailing");
    expect_open("invalid UTF-8", mk("{\"t\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "UTF-8");
    expect_open("non-object (array)", mk("[]", NULL, 0), ATTN_ERR_FORMAT, "is a JSON array, expected an object");
    expect_open("non-object (string)", mk("\"x\"", NULL, 0), ATTN_ERR_FORMAT, "JSON string");
    expect_open("entry not an object", mk("{\"t\":5}", NULL, 0), ATTN_ERR_FORMAT, "tensor 't': entry is a number");
    expect_open("leading/trailing spaces ok", mk("  " T1 "      ", Z, 8), ATTN_OK, NULL);
    expect_open("empty object ok", mk("{}", NULL, 0), ATTN_OK, NULL);

    /* keys of an entry */
    expect_open("missing dtype", mk("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8), ATTN_ERR_FORMAT,
                "tensor 't': missing \"dtype\"");
    expect_open("missing shape", mk("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", Z, 8), ATTN_ERR_FORMAT,
                "missing \"shape\"");
    expect_open("missing offsets", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", Z, 8), ATTN_ERR_FORMAT,
                "missing \"data_offsets\"");
    expect_open("dtype not a string", mk("{\"t\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "\"dtype\" is a number, expected a string");
    expect_open("shape not an array", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "\"shape\" is a number, expected an array");
    expect_open("duplicate dtype key",
                mk("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "duplicate key \"dtype\"");
    expect_open("extra keys ignored",
                mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":[1,{}]}}", Z, 8), ATTN_OK,
                NULL);

    /* dtype */
    expect_open("unknown dtype", mk("{\"t\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_DTYPE, "unknown dtype \"F128\"");
    expect_open("lower-case dtype", mk("{\"t\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_DTYPE, "unknown dtype");
    expect_open("I64 listed", mk("{\"t\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", Z, 8), ATTN_OK, NULL);
    expect_open("F8_E4M3 listed", mk("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_OK, NULL);
    expect_open("F4 packs 2 per byte", mk("{\"t\":{\"dtype\":\"F4\",\"shape\":[16],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_OK, NULL);
    expect_open("F4 odd count", mk("{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "whole bytes");

    /* shape */
    expect_open("negative dim", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "\"shape\" contains -2");
    expect_open("fractional dim", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "expected integers");
    expect_open("string dim", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "contains a string");
    expect_open("9 dims", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_UNSUPPORTED, "9 dimensions");
    expect_open("8 dims ok", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_OK, NULL);
    expect_open("overflowing shape",
                mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "overflows");
    expect_open("overflowing bytes",
                mk("{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "overflows");
    expect_open("dim beyond int64", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "expected integers");
    expect_open("zero dim with huge dims", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,0,9223372036854775807],\"data_offsets\":[0,0]}}", NULL, 0),
                ATTN_OK, NULL);
    expect_open("shape/offset size mismatch", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "shape [3] of F32 needs 12 bytes, data_offsets [0, 8] span 8");

    /* offsets */
    expect_open("offsets past end", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 4),
                ATTN_ERR_FORMAT, "run past the end of the data buffer (4 bytes)");
    expect_open("begin > end", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", Z, 8),
                ATTN_ERR_FORMAT, "begin > end");
    expect_open("3 offsets", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "has 3 elements, expected 2");
    expect_open("1 offset", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", Z, 8),
                ATTN_ERR_FORMAT, "has 1 elements");
    expect_open("negative offset", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", Z, 8),
                ATTN_ERR_FORMAT, "data_offsets\" contains -8");
    expect_open("huge offsets",
                mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551608,18446744073709551616]}}", Z, 8),
                ATTN_ERR_FORMAT, "expected integers");
    expect_open("overlap",
                mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", Z, 12),
                ATTN_ERR_FORMAT, "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
    expect_open("same range twice",
                mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "overlap");
    expect_open("hole at the start", mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", Z, 12),
                ATTN_ERR_FORMAT, "holes in the data buffer are not allowed");
    expect_open("hole between",
                mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", Z, 12),
                ATTN_ERR_FORMAT, "tensor 'b' starts at data byte 8 but the previous data ends at 4");
    expect_open("trailing bytes", mk(T1, Z, 12), ATTN_ERR_FORMAT, "the data buffer has 12 bytes but the tensors cover 8");
    expect_open("any order of entries",
                mk("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", Z, 8),
                ATTN_OK, NULL);
    expect_open("zero-size tensors at the same offset",
                mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"c\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[4,4]},"
                   "\"d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", Z, 8),
                ATTN_OK, NULL);
    expect_open("zero-size tensor inside another",
                mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "overlap");

    /* names */
    expect_open("duplicate name",
                mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "duplicate tensor name 't'");
    expect_open("duplicate name via escape",
                mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"\\u0074\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "duplicate tensor name 't'");
    expect_open("empty name", mk("{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "empty name");
    expect_open("NUL in name", mk("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_ERR_FORMAT, "NUL");
    {
        /* a long name with a NUL after the first 160 bytes */
        char h[1024];
        char name[400];
        memset(name, 'n', 300);
        memcpy(name + 250, "\\u0000", 6);
        name[300] = 0;
        snprintf(h, sizeof h, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", name);
        expect_open("NUL late in a long name", mk(h, Z, 8), ATTN_ERR_FORMAT, "NUL");
        name[250] = 'n';
        memset(name, 'n', 300);
        snprintf(h, sizeof h, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", name);
        expect_open("long name ok", mk(h, Z, 8), ATTN_OK, NULL);
    }
    expect_open("unicode name ok", mk("{\"\\u00e9\xc3\xa9\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_OK, NULL);

    /* __metadata__ */
    expect_open("metadata ok", mk("{\"__metadata__\":{\"format\":\"pt\",\"x\":\"\"}," "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", Z, 8),
                ATTN_OK, NULL);
    expect_open("metadata only", mk("{\"__metadata__\":{}}", NULL, 0), ATTN_OK, NULL);
    expect_open("metadata not an object", mk("{\"__metadata__\":\"x\"}", NULL, 0), ATTN_ERR_FORMAT,
                "\"__metadata__\" is a string");
    expect_open("metadata non-string value", mk("{\"__metadata__\":{\"k\":1}}", NULL, 0), ATTN_ERR_FORMAT,
                "value of 'k' is a number");
    expect_open("metadata twice", mk("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0), ATTN_ERR_FORMAT, "twice");
    expect_open("metadata key with NUL", mk("{\"__metadata__\":{\"a\\u0000b\":\"v\"}}", NULL, 0), ATTN_ERR_FORMAT,
                "contains a NUL");
    {
        buf mb = mk("{\"__metadata__\":{\"k\":\"a\\u0000b\",\"\\u00e9\":\"\"}}", NULL, 0);
        attn_st *st = NULL;
        CHECK(attn_st_open_memory(&st, mb.p, mb.n) == ATTN_OK, "metadata value with NUL: %s", attn_last_error());
        CHECK(st && strcmp(attn_st_metadata(st, "k"), "a") == 0, "value cut at the NUL");
        CHECK(st && attn_st_metadata(st, "\xc3\xa9") && attn_st_metadata(st, "\xc3\xa9")[0] == 0, "escaped key, empty value");
        attn_st_free(st);
        free(mb.p);
    }
    expect_open("metadata duplicate key", mk("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", NULL, 0), ATTN_ERR_FORMAT,
                "has the key 'k' twice");

    /* a header that claims many tiny members must fail before any large allocation */
    {
        size_t n = 4 << 20;
        char *h = (char *)malloc(n + 1);
        size_t k = 0;
        h[k++] = '{';
        int i = 0;
        while (k + 16 < n) {
            k += (size_t)sprintf(h + k, "%s\"%x\":0", i ? "," : "", i);
            i++;
        }
        h[k++] = '}';
        h[k] = 0;
        expect_open("many bad members", mk(h, NULL, 0), ATTN_ERR_FORMAT, "entry is a number");
        free(h);
    }
}

int main(void) {
    make_tmpdir();
    test_half();
    test_reference_file();
    test_conversions();
    test_writer();
    test_malformed();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("test_safetensors");
}
