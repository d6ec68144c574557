/* SPDX-License-Identifier: MIT */
/* json.c — see json.h. */
#include "io/json.h"

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ═══ validation ═════════════════════════════════════════════════════════ */

static int fail(attn_json_error *err, const char *base, const char *p, const char *msg) {
    if (err) {
        err->offset = (size_t)(p - base);
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    return -1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
/* 4 hex digits at p (p + 4 <= end checked by the caller) -> 0..0xffff or -1 */
static long hex4(const char *p) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence starting at p (exact ranges of RFC 3629:
 * no overlongs, no surrogates, <= U+10FFFF), or 0 if invalid or truncated. */
static size_t utf8_seq(const char *p, const char *end) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x80) return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c == 0xE0) { n = 2; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) n = 2;
    else if (c == 0xED) { n = 2; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) n = 2;
    else if (c == 0xF0) { n = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) n = 3;
    else if (c == 0xF4) { n = 3; hi = 0x8F; }
    else return 0;
    if ((size_t)(end - p) <= n) return 0;
    unsigned char c1 = (unsigned char)p[1];
    if (c1 < lo || c1 > hi) return 0;
    for (size_t k = 2; k <= n; k++) {
        unsigned char ck = (unsigned char)p[k];
        if (ck < 0x80 || ck > 0xBF) return 0;
    }
    return n + 1;
}

int attn__json_utf8_valid(const char *s, size_t len) {
    const char *end = s + len;
    while (s < end) {
        size_t n = utf8_seq(s, end);
        if (n == 0) return 0;
        s += n;
    }
    return 1;
}

/* p at the opening quote. On success *out is just past the closing quote. */
static int scan_string(const char *base, const char *p, const char *end, const char **out,
                       attn_json_error *err) {
    const char *start = p;
    p++;
    for (;;) {
        if (p >= end) return fail(err, base, start, "unterminated string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') { *out = p + 1; return 0; }
        if (c < 0x20) return fail(err, base, p, "control character in string (must be escaped)");
        if (c == '\\') {
            if (p + 1 >= end) return fail(err, base, start, "unterminated string");
            char e = p[1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                e == 't') {
                p += 2;
                continue;
            }
            if (e != 'u') return fail(err, base, p, "invalid escape sequence in string");
            if (end - p < 6) return fail(err, base, p, "truncated \\u escape");
            long u = hex4(p + 2);
            if (u < 0) return fail(err, base, p, "invalid \\u escape (need 4 hex digits)");
            if (u >= 0xDC00 && u <= 0xDFFF) return fail(err, base, p, "lone low surrogate in \\u escape");
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
                    return fail(err, base, p, "high surrogate \\u escape not followed by a low surrogate");
                long lo = hex4(p + 8);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(err, base, p, "high surrogate \\u escape not followed by a low surrogate");
                p += 12;
            } else {
                p += 6;
            }
            continue;
        }
        if (c < 0x80) { p++; continue; }
        size_t n = utf8_seq(p, end);
        if (n == 0) return fail(err, base, p, "invalid UTF-8 in string");
        p += n;
    }
}

static int scan_number(const char *base, const char *p, const char *end, const char **out,
                       attn_json_error *err) {
    const char *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end || !is_digit(*p)) return fail(err, base, start, "invalid number (expected a digit)");
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) return fail(err, base, start, "invalid number (leading zero)");
    } else {
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return fail(err, base, start, "invalid number (digit expected after '.')");
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return fail(err, base, start, "invalid number (digit expected in exponent)");
        while (p < end && is_digit(*p)) p++;
    }
    *out = p;
    return 0;
}

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && is_ws(*p)) p++;
    return p;
}

int attn__json_parse(const char *text, size_t len, attn_json *root, attn_json_error *err) {
    if (err) { err->offset = 0; err->msg[0] = 0; }
    if (!text && len) return fail(err, text, text, "NULL text");
    if (len > ATTN_JSON_MAX_SIZE) return fail(err, text, text, "text longer than 1 GiB");
    const char *base = text, *end = text + len;
    unsigned char stack[ATTN_JSON_MAX_DEPTH]; /* '{' or '[' */
    int depth = 0;
    const char *p = skip_ws(base, end);
    const char *root_p = p;
    if (p >= end) return fail(err, base, p, "empty input (no JSON value)");

    for (;;) {
        /* ── parse one value at p ── */
        if (p >= end) return fail(err, base, p, "unexpected end of input (value expected)");
        char c = *p;
        if (c == '{' || c == '[') {
            if (depth >= ATTN_JSON_MAX_DEPTH) return fail(err, base, p, "nesting deeper than 128 levels");
            stack[depth++] = (unsigned char)c;
            p = skip_ws(p + 1, end);
            if (p >= end) return fail(err, base, p, "unexpected end of input inside a container");
            if ((c == '{' && *p == '}') || (c == '[' && *p == ']')) {
                depth--;
                p++;
                goto after_value;
            }
            if (c == '{') {
                if (*p != '"') return fail(err, base, p, "expected a string key or '}'");
                if (scan_string(base, p, end, &p, err)) return -1;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') return fail(err, base, p, "expected ':' after object key");
                p = skip_ws(p + 1, end);
            }
            continue; /* parse the first element / member value */
        } else if (c == '"') {
            if (scan_string(base, p, end, &p, err)) return -1;
        } else if (c == '-' || is_digit(c)) {
            if (scan_number(base, p, end, &p, err)) return -1;
        } else if (c == 't') {
            if (end - p < 4 || memcmp(p, "true", 4) != 0) return fail(err, base, p, "invalid literal (expected true)");
            p += 4;
        } else if (c == 'f') {
            if (end - p < 5 || memcmp(p, "false", 5) != 0) return fail(err, base, p, "invalid literal (expected false)");
            p += 5;
        } else if (c == 'n') {
            if (end - p < 4 || memcmp(p, "null", 4) != 0) return fail(err, base, p, "invalid literal (expected null)");
            p += 4;
        } else if (c == ']' || c == '}') {
            return fail(err, base, p, "value expected, found '}' or ']' (trailing comma?)");
        } else {
            return fail(err, base, p, "unexpected character (value expected)");
        }

    after_value:
        p = skip_ws(p, end);
        if (depth == 0) {
            if (p != end) return fail(err, base, p, "trailing characters after the JSON value");
            break;
        }
        if (p >= end) return fail(err, base, p, "unexpected end of input inside a container");
        unsigned char top = stack[depth - 1];
        if (*p == ',') {
            p = skip_ws(p + 1, end);
            if (top == '{') {
                if (p >= end || *p != '"') return fail(err, base, p, "expected a string key after ','");
                if (scan_string(base, p, end, &p, err)) return -1;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') return fail(err, base, p, "expected ':' after object key");
                p = skip_ws(p + 1, end);
            }
            continue;
        }
        if ((top == '{' && *p == '}') || (top == '[' && *p == ']')) {
            depth--;
            p++;
            goto after_value;
        }
        return fail(err, base, p, top == '{' ? "expected ',' or '}' in object" : "expected ',' or ']' in array");
    }
    if (root) {
        root->p = root_p;
        root->end = end;
        root->type = ATTN_JSON_NULL;
        switch (*root_p) {
        case '{': root->type = ATTN_JSON_OBJECT; break;
        case '[': root->type = ATTN_JSON_ARRAY; break;
        case '"': root->type = ATTN_JSON_STRING; break;
        case 't': root->type = ATTN_JSON_TRUE; break;
        case 'f': root->type = ATTN_JSON_FALSE; break;
        case 'n': root->type = ATTN_JSON_NULL; break;
        default: root->type = ATTN_JSON_NUMBER; break;
        }
    }
    return 0;
}

const char *attn__json_type_name(attn_json_type t) {
    switch (t) {
    case ATTN_JSON_NULL: return "null";
    case ATTN_JSON_FALSE: case ATTN_JSON_TRUE: return "boolean";
    case ATTN_JSON_NUMBER: return "number";
    case ATTN_JSON_STRING: return "string";
    case ATTN_JSON_ARRAY: return "array";
    case ATTN_JSON_OBJECT: return "object";
    }
    return "?";
}

/* ═══ navigation over validated text ═════════════════════════════════════
 * Every loop below is also bounded by `end`, so a misuse cannot run off the
 * buffer even though the text is known to be valid. */

static attn_json_type type_of(char c) {
    switch (c) {
    case '{': return ATTN_JSON_OBJECT;
    case '[': return ATTN_JSON_ARRAY;
    case '"': return ATTN_JSON_STRING;
    case 't': return ATTN_JSON_TRUE;
    case 'f': return ATTN_JSON_FALSE;
    case 'n': return ATTN_JSON_NULL;
    default: return ATTN_JSON_NUMBER;
    }
}

/* p at an opening quote -> just past the closing quote */
static const char *skip_string(const char *p, const char *end) {
    p++;
    while (p < end && *p != '"') p += (*p == '\\' && end - p >= 2) ? 2 : 1;
    return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end) {
    if (p >= end) return end;
    switch (*p) {
    case '"': return skip_string(p, end);
    case '{': case '[': {
        size_t depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') { p = skip_string(p, end); continue; }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return end;
    }
    case 't': case 'n': return end - p < 4 ? end : p + 4;
    case 'f': return end - p < 5 ? end : p + 5;
    default:
        while (p < end && (is_digit(*p) || *p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E')) p++;
        return p;
    }
}

void attn__json_iter_init(attn_json_iter *it, attn_json c) {
    it->end = c.end;
    it->object = c.type == ATTN_JSON_OBJECT;
    if (c.type == ATTN_JSON_OBJECT || c.type == ATTN_JSON_ARRAY) it->p = c.p + 1;
    else it->p = c.end; /* empty iteration */
}

int attn__json_next(attn_json_iter *it, attn_json *key, attn_json *val) {
    const char *p = skip_ws(it->p, it->end), *end = it->end;
    if (p >= end || *p == '}' || *p == ']') { it->p = p; return 0; }
    if (*p == ',') p = skip_ws(p + 1, end);
    if (p >= end) { it->p = end; return 0; }
    if (it->object) {
        if (key) { key->p = p; key->end = end; key->type = ATTN_JSON_STRING; }
        p = skip_string(p, end);
        p = skip_ws(p, end);
        if (p < end && *p == ':') p++;
        p = skip_ws(p, end);
        if (p >= end) { it->p = end; return 0; }
    } else if (key) {
        key->p = end; key->end = end; key->type = ATTN_JSON_NULL;
    }
    attn_json v;
    v.p = p;
    v.end = end;
    v.type = type_of(*p);
    if (val) *val = v;
    it->p = skip_value(p, end);
    return 1;
}

size_t attn__json_count(attn_json c) {
    attn_json_iter it;
    attn__json_iter_init(&it, c);
    size_t n = 0;
    while (attn__json_next(&it, NULL, NULL)) n++;
    return n;
}

int attn__json_get(attn_json obj, const char *key, attn_json *val) {
    if (obj.type != ATTN_JSON_OBJECT) return 0;
    attn_json_iter it;
    attn__json_iter_init(&it, obj);
    attn_json k, v;
    int found = 0;
    while (attn__json_next(&it, &k, &v)) {
        if (attn__json_str_eq(k, key)) {
            if (found) return -1;
            found = 1;
            if (val) *val = v;
        }
    }
    return found;
}

/* ─── string decoding ───────────────────────────────────────────────────── */
typedef struct sdec {
    const char *p, *end;
    unsigned char buf[4];
    int n, i;
} sdec;

static void sdec_init(sdec *d, attn_json v) {
    d->p = v.p + 1; /* after the opening quote */
    d->end = v.end;
    d->n = d->i = 0;
}

/* next decoded byte, or -1 at the end of the string */
static int sdec_next(sdec *d) {
    if (d->i < d->n) return d->buf[d->i++];
    if (d->p >= d->end || *d->p == '"') return -1;
    char c = *d->p;
    if (c != '\\') { d->p++; return (unsigned char)c; }
    if (d->end - d->p < 2) { d->p = d->end; return -1; }
    char e = d->p[1];
    d->p += 2;
    switch (e) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return (unsigned char)e; /* '"', '\\', '/' */
    }
    if (d->end - d->p < 4) { d->p = d->end; return -1; }
    long cp = hex4(d->p);
    d->p += 4;
    if (cp < 0) cp = 0xFFFD;
    if (cp >= 0xD800 && cp <= 0xDBFF && d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
        long lo = hex4(d->p + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            d->p += 6;
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* unreachable for validated text */
    if (cp < 0x80) return (int)cp;
    if (cp < 0x800) {
        d->buf[0] = (unsigned char)(0xC0 | (cp >> 6));
        d->buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
        d->n = 2;
    } else if (cp < 0x10000) {
        d->buf[0] = (unsigned char)(0xE0 | (cp >> 12));
        d->buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d->buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
        d->n = 3;
    } else {
        d->buf[0] = (unsigned char)(0xF0 | (cp >> 18));
        d->buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        d->buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d->buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
        d->n = 4;
    }
    d->i = 1;
    return d->buf[0];
}

size_t attn__json_str_len(attn_json v) {
    if (v.type != ATTN_JSON_STRING) return 0;
    sdec d;
    sdec_init(&d, v);
    size_t n = 0;
    while (sdec_next(&d) >= 0) n++;
    return n;
}

size_t attn__json_str_get(attn_json v, char *dst, size_t cap) {
    size_t n = 0;
    if (v.type == ATTN_JSON_STRING) {
        sdec d;
        sdec_init(&d, v);
        int c;
        while ((c = sdec_next(&d)) >= 0) {
            if (cap && n < cap - 1) dst[n] = (char)c;
            n++;
        }
    }
    if (cap) dst[n < cap - 1 ? n : cap - 1] = 0;
    return n;
}

int attn__json_str_eq(attn_json v, const char *s) {
    if (v.type != ATTN_JSON_STRING) return 0;
    sdec d;
    sdec_init(&d, v);
    for (;;) {
        int c = sdec_next(&d);
        int l = (unsigned char)*s;
        if (c < 0) return l == 0;
        if (l == 0 || c != l) return 0;
        s++;
    }
}

int attn__json_str_cmp(attn_json a, attn_json b) {
    sdec da, db;
    sdec_init(&da, a);
    sdec_init(&db, b);
    for (;;) {
        int ca = a.type == ATTN_JSON_STRING ? sdec_next(&da) : -1;
        int cb = b.type == ATTN_JSON_STRING ? sdec_next(&db) : -1;
        if (ca != cb) return ca < cb ? -1 : 1;
        if (ca < 0) return 0;
    }
}

/* ─── duplicate keys ───────────────────────────────────────────────────── */
static int key_cmp(const char *base, const char *end, uint32_t x, uint32_t y) {
    attn_json a = { base + x, end, ATTN_JSON_STRING }, b = { base + y, end, ATTN_JSON_STRING };
    return attn__json_str_cmp(a, b);
}

static void sift_down(uint32_t *v, size_t root, size_t n, const char *base, const char *end) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && key_cmp(base, end, v[child], v[child + 1]) < 0) child++;
        if (key_cmp(base, end, v[root], v[child]) >= 0) return;
        uint32_t t = v[root]; v[root] = v[child]; v[child] = t;
        root = child;
    }
}

int attn__json_find_dup_key(attn_json obj, attn_json *dup) {
    if (obj.type != ATTN_JSON_OBJECT) return 0;
    size_t n = attn__json_count(obj);
    if (n < 2) return 0;
    attn_json_iter it;
    attn_json k;
    if (n <= 16) { /* quadratic, no allocation */
        attn_json keys[16];
        size_t m = 0;
        attn__json_iter_init(&it, obj);
        while (m < n && attn__json_next(&it, &keys[m], NULL)) m++;
        for (size_t i = 0; i < m; i++)
            for (size_t j = i + 1; j < m; j++)
                if (attn__json_str_cmp(keys[i], keys[j]) == 0) {
                    if (dup) *dup = keys[j];
                    return 1;
                }
        return 0;
    }
    /* offsets relative to obj.p: the object is < 1 GiB (ATTN_JSON_MAX_SIZE) */
    uint32_t *v = (uint32_t *)attn__calloc(n, sizeof *v);
    if (!v) return -1;
    size_t m = 0;
    attn__json_iter_init(&it, obj);
    while (m < n && attn__json_next(&it, &k, NULL)) v[m++] = (uint32_t)(k.p - obj.p);
    /* heap sort (O(m log m) comparisons, no recursion) */
    for (size_t i = m / 2; i-- > 0;) sift_down(v, i, m, obj.p, obj.end);
    for (size_t i = m; i-- > 1;) {
        uint32_t t = v[0]; v[0] = v[i]; v[i] = t;
        sift_down(v, 0, i, obj.p, obj.end);
    }
    int found = 0;
    for (size_t i = 1; i < m; i++)
        if (key_cmp(obj.p, obj.end, v[i - 1], v[i]) == 0) {
            if (dup) { dup->p = obj.p + v[i]; dup->end = obj.end; dup->type = ATTN_JSON_STRING; }
            found = 1;
            break;
        }
    attn__free(v);
    return found;
}

/* ─── numbers ─────────────────────────────────────────────────────────────
 * The value is rebuilt as "[-]DIGITSe[-]EXP" (no decimal point, so strtod's
 * locale does not matter) from at most KEEP significant digits plus one
 * sticky digit: a halfway point between two doubles has at most 767
 * significant decimal digits, so rounding the shortened string gives the
 * correctly rounded value of the full one. */
#define KEEP 780

void attn__json_num(attn_json v, attn_json_num *out) {
    out->d = 0.0;
    out->i = 0;
    out->is_int = 0;
    if (v.type != ATTN_JSON_NUMBER) return;
    const char *p = v.p, *end = v.end;
    int neg = 0;
    if (p < end && *p == '-') { neg = 1; p++; }
    char buf[KEEP + 32];
    size_t nb = 0, nsig = 0;
    int sticky = 0, any_frac = 0, any_exp = 0;
    int64_t dexp = 0; /* decimal exponent adjustment from dropped / fractional digits */
    uint64_t mag = 0;
    int int_ok = 1;
    if (neg) buf[nb++] = '-';
    /* integer part */
    while (p < end && is_digit(*p)) {
        unsigned dgt = (unsigned)(*p - '0');
        if (mag > (UINT64_MAX - dgt) / 10) int_ok = 0;
        else mag = mag * 10 + dgt;
        if (nsig == 0 && dgt == 0) { p++; continue; } /* leading zero */
        if (nsig < KEEP) { buf[nb++] = *p; nsig++; }
        else { if (dgt) sticky = 1; if (dexp < INT64_MAX / 2) dexp++; }
        p++;
    }
    if (p < end && *p == '.') {
        any_frac = 1;
        p++;
        while (p < end && is_digit(*p)) {
            unsigned dgt = (unsigned)(*p - '0');
            if (nsig == 0 && dgt == 0) { dexp--; p++; continue; }
            if (nsig < KEEP) { buf[nb++] = *p; nsig++; dexp--; }
            else if (dgt) sticky = 1;
            p++;
        }
    }
    int64_t e = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        any_exp = 1;
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) { eneg = *p == '-'; p++; }
        while (p < end && is_digit(*p)) {
            if (e < 1000000000) e = e * 10 + (*p - '0');
            p++;
        }
        if (eneg) e = -e;
    }
    if (nsig == 0) {
        out->d = neg ? -0.0 : 0.0;
    } else {
        if (sticky) { buf[nb++] = '1'; dexp--; }
        int64_t x = e + dexp;
        if (x > 100000) x = 100000;   /* far beyond overflow for <= 781 digits */
        if (x < -100000) x = -100000; /* far below underflow */
        snprintf(buf + nb, sizeof buf - nb, "e%lld", (long long)x);
        out->d = strtod(buf, NULL);
    }
    if (!any_frac && !any_exp && int_ok) {
        if (!neg && mag <= (uint64_t)INT64_MAX) { out->i = (int64_t)mag; out->is_int = 1; }
        else if (neg && mag <= (uint64_t)INT64_MAX + 1u) {
            out->i = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
            out->is_int = 1;
        }
    }
}
