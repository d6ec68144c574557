/* SPDX-License-Identifier: MIT */
/* json.h — a small, strict JSON (RFC 8259) reader for untrusted input.
 *
 * Design: attn__json_parse() validates the whole text in one iterative pass
 * (no recursion; nesting limited to ATTN_JSON_MAX_DEPTH) and allocates
 * nothing. A value is then a cursor into the validated text (attn_json);
 * containers are walked with attn_json_iter, strings are decoded on demand
 * into caller buffers or compared in place, numbers are converted on demand.
 * The only allocation in this module is attn__json_find_dup_key(), which
 * takes 4 bytes per key of one object (each key occupies >= 5 bytes of text).
 *
 * Strictness: exactly one value, optionally surrounded by whitespace
 * (space, \t, \n, \r); no comments, no trailing commas, no NaN/Infinity, no
 * leading '+' or zeros, no BOM; strings must be valid UTF-8 (no overlongs,
 * no UTF-16 surrogates, <= U+10FFFF), must not contain raw control
 * characters, and \u escapes of surrogates must form a valid pair.
 * Duplicate object keys are not rejected by the parser (the callers that
 * care use attn__json_get, which reports them, or attn__json_find_dup_key).
 */
#ifndef ATTN_IO_JSON_H
#define ATTN_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#define ATTN_JSON_MAX_DEPTH 128              /* nested arrays/objects */
#define ATTN_JSON_MAX_SIZE ((size_t)1 << 30) /* bytes of text */

typedef enum attn_json_type {
    ATTN_JSON_NULL = 0,
    ATTN_JSON_FALSE,
    ATTN_JSON_TRUE,
    ATTN_JSON_NUMBER,
    ATTN_JSON_STRING,
    ATTN_JSON_ARRAY,
    ATTN_JSON_OBJECT
} attn_json_type;

/* A value inside a validated document (valid while the text is alive). */
typedef struct attn_json {
    const char *p;   /* first byte of the value */
    const char *end; /* end of the document text */
    attn_json_type type;
} attn_json;

typedef struct attn_json_error {
    size_t offset;   /* byte offset of the problem in the text */
    char msg[96];    /* e.g. "expected ':' after object key" */
} attn_json_error;

/* Validates text[0, len). Returns 0 and sets *root, or -1 and fills *err
 * (err may be NULL). */
int attn__json_parse(const char *text, size_t len, attn_json *root, attn_json_error *err);

/* 1 if s[0, len) is valid UTF-8 (same rules as JSON strings; NUL allowed). */
int attn__json_utf8_valid(const char *s, size_t len);

/* "null", "boolean", "number", "string", "array", "object" */
const char *attn__json_type_name(attn_json_type t);

/* ─── containers ──────────────────────────────────────────────────────── */
typedef struct attn_json_iter {
    const char *p, *end;
    int object;
} attn_json_iter;

/* container must be an array or object (otherwise the iteration is empty). */
void attn__json_iter_init(attn_json_iter *it, attn_json container);
/* Next element (arrays) or member (objects; key may be NULL). 1 = got one, 0 = end. */
int attn__json_next(attn_json_iter *it, attn_json *key, attn_json *val);
/* Number of elements / members (0 for scalars). O(size of the container). */
size_t attn__json_count(attn_json container);
/* Looks a key up in an object: 1 found (*val set), 0 missing or not an
 * object, -1 the key occurs more than once (*val = first occurrence). */
int attn__json_get(attn_json obj, const char *key, attn_json *val);
/* 0 if all keys of obj are distinct, 1 if some key repeats (*dup = one of
 * its occurrences), -1 out of memory. */
int attn__json_find_dup_key(attn_json obj, attn_json *dup);

/* ─── strings (v must be a string) ────────────────────────────────────── */
/* Decoded length in bytes (UTF-8, without terminator; may contain NULs). */
size_t attn__json_str_len(attn_json v);
/* Decodes into dst[0, cap) (cap >= 1), truncating if needed, always
 * NUL-terminated; returns the full decoded length. */
size_t attn__json_str_get(attn_json v, char *dst, size_t cap);
/* 1 if the decoded string equals the NUL-terminated s exactly. */
int attn__json_str_eq(attn_json v, const char *s);
/* memcmp-like order of the decoded bytes (a prefix sorts first). */
int attn__json_str_cmp(attn_json a, attn_json b);

/* ─── numbers (v must be a number) ────────────────────────────────────── */
typedef struct attn_json_num {
    double d;   /* correctly rounded value (+-inf if out of range) */
    int64_t i;  /* exact value when is_int */
    int is_int; /* no fraction, no exponent, and fits in int64 */
} attn_json_num;
void attn__json_num(attn_json v, attn_json_num *out);

#endif
