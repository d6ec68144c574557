/* SPDX-License-Identifier: MIT */
/* test_json.c — the strict JSON reader (src/io/json.c): acceptance,
 * rejection with offsets, depth limit, string decoding, numbers. */
#include "io/json.h"
#include "testutil.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *s, attn_json *root, attn_json_error *err) {
    return attn__json_parse(s, strlen(s), root, err);
}

static void test_valid(void) {
    static const char *ok[] = {
        "0", "-0", "1", "-1", "123", "1.5", "-1.5e10", "1E+2", "1e-2", "0.0", "0e0",
        "\"\"", "\"abc\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "\"\xed\x9f\xbf\"", "\"\xee\x80\x80\"", "\"\xf4\x8f\xbf\xbf\"",
        "true", "false", "null", "[]", "{}", "[1,2,3]", "{\"a\":1}", " \t\r\n[ 1 , { \"b\" : [ ] } ] \n",
        "{\"a\":{\"b\":{\"c\":[true,false,null]}}}", "[\"\\u0000\"]", "{\"\":0}", "[[],[[]],{}]", "\"\x7f\"",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        attn_json r;
        attn_json_error e;
        int rc = parse(ok[i], &r, &e);
        CHECK(rc == 0, "valid #%zu '%s' rejected: %s at %zu", i, ok[i], e.msg, e.offset);
    }
}

typedef struct bad_case {
    const char *text;
    size_t offset; /* expected error offset, or (size_t)-1 to skip */
    const char *msg_part;
} bad_case;

static void test_invalid(void) {
    static const bad_case bad[] = {
        { "", 0, "empty" },
        { "   ", 3, "empty" },
        { "[", 1, "end of input" },
        { "[1,]", 3, "trailing comma" },
        { "{\"a\":1,}", 7, "key" },
        { "{\"a\" 1}", 5, "':'" },
        { "{a:1}", 1, "key" },
        { "{\"a\":1 \"b\":2}", 7, "','" },
        { "[1 2]", 3, "','" },
        { "[1}", 2, "']'" },
        { "{\"a\":1]", 6, "'}'" },
        { "01", 0, "leading zero" },
        { "-", 0, "digit" },
        { "+1", 0, "unexpected" },
        { "1.", 0, "after '.'" },
        { ".5", 0, "unexpected" },
        { "1e", 0, "exponent" },
        { "1e+", 0, "exponent" },
        { "NaN", 0, "unexpected" },
        { "Infinity", 0, "unexpected" },
        { "-Infinity", 0, "digit" },
        { "tru", 0, "true" },
        { "nul", 0, "null" },
        { "falsy", 0, "false" },
        { "truex", 4, "trailing" },
        { "1 2", 2, "trailing" },
        { "[] []", 3, "trailing" },
        { "\"abc", 0, "unterminated" },
        { "\"\\x\"", 1, "escape" },
        { "\"\\u12\"", 1, "\\u" },
        { "\"\\u12G4\"", 1, "hex" },
        { "\"\\ud800\"", 1, "surrogate" },
        { "\"\\ud800\\u0041\"", 1, "surrogate" },
        { "\"\\udc00\"", 1, "lone low surrogate" },
        { "\"a\x01\"", 2, "control" },
        { "\"\t\"", 1, "control" },
        { "\"\xc0\x80\"", 1, "UTF-8" },         /* overlong NUL */
        { "\"\xc1\xbf\"", 1, "UTF-8" },         /* overlong */
        { "\"\xe0\x80\x80\"", 1, "UTF-8" },     /* overlong */
        { "\"\xed\xa0\x80\"", 1, "UTF-8" },     /* UTF-16 surrogate */
        { "\"\xf0\x80\x80\x80\"", 1, "UTF-8" }, /* overlong */
        { "\"\xf4\x90\x80\x80\"", 1, "UTF-8" }, /* > U+10FFFF */
        { "\"\xf5\x80\x80\x80\"", 1, "UTF-8" },
        { "\"\x80\"", 1, "UTF-8" },             /* lone continuation */
        { "\"\xc3\"", 1, "UTF-8" },             /* truncated */
        { "\"\xe2\x82\"", 1, "UTF-8" },
        { "\xef\xbb\xbf{}", 0, "unexpected" },  /* BOM */
        { "/* c */ {}", 0, "unexpected" },
        { "{\"a\":1}\x00", 7, "trailing" },     /* (strlen stops at NUL: see below) */
        { "[\"a\",\xff]", 5, "unexpected" },
        { "'a'", 0, "unexpected" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        attn_json r;
        attn_json_error e;
        size_t len = strlen(bad[i].text);
        if (i == sizeof bad / sizeof bad[0] - 3) len += 1; /* include the NUL */
        int rc = attn__json_parse(bad[i].text, len, &r, &e);
        CHECK(rc == -1, "invalid #%zu '%s' accepted", i, bad[i].text);
        if (rc == -1) {
            CHECK(bad[i].offset == (size_t)-1 || e.offset == bad[i].offset, "invalid #%zu '%s': offset %zu, expected %zu (%s)",
                  i, bad[i].text, e.offset, bad[i].offset, e.msg);
            CHECK(strstr(e.msg, bad[i].msg_part) != NULL, "invalid #%zu '%s': message '%s' lacks '%s'", i, bad[i].text,
                  e.msg, bad[i].msg_part);
        }
    }
    /* a NULL error pointer is allowed */
    CHECK(attn__json_parse("[", 1, NULL, NULL) == -1, "NULL err");
    CHECK(attn__json_parse(NULL, 0, NULL, NULL) == -1, "NULL text, len 0 is empty input");
}

static void test_depth(void) {
    char buf[2 * ATTN_JSON_MAX_DEPTH + 8];
    for (int d = ATTN_JSON_MAX_DEPTH - 1; d <= ATTN_JSON_MAX_DEPTH + 1; d++) {
        size_t n = 0;
        for (int i = 0; i < d; i++) buf[n++] = '[';
        for (int i = 0; i < d; i++) buf[n++] = ']';
        attn_json_error e;
        int rc = attn__json_parse(buf, n, NULL, &e);
        if (d <= ATTN_JSON_MAX_DEPTH) CHECK(rc == 0, "depth %d rejected: %s", d, e.msg);
        else CHECK(rc == -1 && strstr(e.msg, "nesting") && e.offset == ATTN_JSON_MAX_DEPTH, "depth %d: rc %d %s @%zu", d, rc, e.msg, e.offset);
    }
    /* a million '[' (and objects) fail fast without recursion */
    size_t big = 1000000;
    char *p = (char *)malloc(big);
    memset(p, '[', big);
    CHECK(attn__json_parse(p, big, NULL, NULL) == -1, "deep [");
    for (size_t i = 0; i + 5 <= big; i += 5) memcpy(p + i, "{\"a\":", 5);
    CHECK(attn__json_parse(p, big, NULL, NULL) == -1, "deep {");
    free(p);
}

static attn_json get(attn_json obj, const char *k) {
    attn_json v = { 0 };
    attn__json_get(obj, k, &v);
    return v;
}

static void test_navigation(void) {
    const char *t = " { \"a\" : [1, 2.5, \"x\", null, true, false, {\"k\": []}], \"b\": {}, \"c\": \"\\u00e9\", \"a\": 3 } ";
    attn_json r, v;
    CHECK(parse(t, &r, NULL) == 0, "parse");
    CHECK(r.type == ATTN_JSON_OBJECT, "root type");
    /* every prefix that ends before the closing brace is invalid */
    const char *close = strrchr(t, '}');
    int bad = 0;
    for (size_t n = 0; n <= (size_t)(close - t); n++) bad += attn__json_parse(t, n, NULL, NULL) != -1;
    CHECK(bad == 0, "%d truncated documents accepted", bad);
    CHECK(attn__json_count(r) == 4, "count %zu", attn__json_count(r));
    CHECK(attn__json_get(r, "a", &v) == -1, "duplicate 'a' reported");
    CHECK(v.type == ATTN_JSON_ARRAY && attn__json_count(v) == 7, "first 'a' is the array");
    CHECK(attn__json_get(r, "b", &v) == 1 && v.type == ATTN_JSON_OBJECT && attn__json_count(v) == 0, "b");
    CHECK(attn__json_get(r, "zz", &v) == 0, "missing");
    CHECK(attn__json_get(get(r, "c"), "x", &v) == 0, "get on a string");
    attn_json dup;
    CHECK(attn__json_find_dup_key(r, &dup) == 1 && attn__json_str_eq(dup, "a"), "find_dup small");

    attn_json arr;
    attn__json_get(r, "a", &arr);
    attn_json_iter it;
    attn__json_iter_init(&it, arr);
    attn_json_type want[] = { ATTN_JSON_NUMBER, ATTN_JSON_NUMBER, ATTN_JSON_STRING, ATTN_JSON_NULL,
                              ATTN_JSON_TRUE, ATTN_JSON_FALSE, ATTN_JSON_OBJECT };
    int i = 0;
    attn_json k;
    while (attn__json_next(&it, &k, &v)) {
        CHECK(i < 7 && v.type == want[i], "element %d type %d", i, (int)v.type);
        CHECK(k.type == ATTN_JSON_NULL, "array key is null");
        i++;
    }
    CHECK(i == 7, "iterated %d", i);
    CHECK(attn__json_next(&it, NULL, &v) == 0, "iteration stays at end");
    /* scalars iterate as empty */
    attn__json_iter_init(&it, get(r, "c"));
    CHECK(attn__json_next(&it, NULL, &v) == 0, "scalar iteration empty");
    CHECK(attn__json_count(get(r, "c")) == 0, "scalar count 0");
    CHECK(strcmp(attn__json_type_name(ATTN_JSON_OBJECT), "object") == 0, "type name");

    /* large objects: the heap-sort path */
    char big[8192];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "{");
    for (int j = 0; j < 300; j++) n += (size_t)snprintf(big + n, sizeof big - n, "%s\"k%d\":%d", j ? "," : "", (j * 7919) % 300, j);
    n += (size_t)snprintf(big + n, sizeof big - n, "}");
    CHECK(attn__json_parse(big, n, &r, NULL) == 0, "big object");
    CHECK(attn__json_find_dup_key(r, &dup) == 0, "no duplicates among 300 keys");
    big[n - 1] = ',';
    n += (size_t)snprintf(big + n, sizeof big - n, "\"k\\u0031\":0}"); /* "k1" spelled with an escape */
    CHECK(attn__json_parse(big, n, &r, NULL) == 0, "big object 2");
    CHECK(attn__json_find_dup_key(r, &dup) == 1 && attn__json_str_eq(dup, "k1"), "escaped duplicate found");
}

static void test_strings(void) {
    attn_json r;
    const char *t = "[\"a\\u00e9\\ud83d\\ude00\\n\\\"\", \"x\\u0000y\", \"\", \"ab\", \"abc\", \"\\/\"]";
    CHECK(parse(t, &r, NULL) == 0, "parse");
    attn_json s[6];
    attn_json_iter it;
    attn__json_iter_init(&it, r);
    for (int i = 0; i < 6; i++) attn__json_next(&it, NULL, &s[i]);
    const char *want0 = "a\xc3\xa9\xf0\x9f\x98\x80\n\"";
    char buf[64];
    CHECK(attn__json_str_len(s[0]) == strlen(want0), "len %zu", attn__json_str_len(s[0]));
    CHECK(attn__json_str_get(s[0], buf, sizeof buf) == strlen(want0) && strcmp(buf, want0) == 0, "decode");
    CHECK(attn__json_str_eq(s[0], want0), "eq");
    CHECK(!attn__json_str_eq(s[0], "a"), "not eq prefix");
    CHECK(attn__json_str_get(s[0], buf, 4) == strlen(want0) && strcmp(buf, "a\xc3\xa9") == 0, "truncated decode");
    CHECK(attn__json_str_get(s[0], buf, 1) == strlen(want0) && buf[0] == 0, "cap 1");
    CHECK(attn__json_str_len(s[1]) == 3, "embedded NUL counts");
    CHECK(!attn__json_str_eq(s[1], "x"), "NUL string != prefix");
    CHECK(attn__json_str_get(s[1], buf, sizeof buf) == 3 && buf[0] == 'x' && buf[1] == 0 && buf[2] == 'y', "NUL decode");
    CHECK(attn__json_str_len(s[2]) == 0 && attn__json_str_eq(s[2], ""), "empty");
    CHECK(attn__json_str_cmp(s[3], s[4]) < 0 && attn__json_str_cmp(s[4], s[3]) > 0, "prefix sorts first");
    CHECK(attn__json_str_cmp(s[3], s[3]) == 0, "cmp equal");
    CHECK(attn__json_str_cmp(s[2], s[3]) < 0, "empty first");
    CHECK(attn__json_str_eq(s[5], "/"), "solidus");
    /* non-strings */
    CHECK(attn__json_str_len(r) == 0 && !attn__json_str_eq(r, ""), "array is not a string");

    CHECK(attn__json_utf8_valid("abc\xc3\xa9", 5), "utf8 ok");
    CHECK(!attn__json_utf8_valid("\xc3", 1), "utf8 truncated");
    CHECK(!attn__json_utf8_valid("\xed\xa0\x80", 3), "utf8 surrogate");
    CHECK(attn__json_utf8_valid("a\0b", 3), "utf8 with NUL");
}

static attn_json_num num(const char *s) {
    attn_json r;
    attn_json_num n = { 0 };
    if (parse(s, &r, NULL) != 0) { n.d = -12345.0; return n; }
    attn__json_num(r, &n);
    return n;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void test_numbers(void) {
    attn_json_num n;
    n = num("0"); CHECK(n.is_int && n.i == 0 && n.d == 0.0 && !signbit(n.d), "0");
    n = num("-0"); CHECK(n.is_int && n.i == 0 && n.d == 0.0 && signbit(n.d), "-0");
    n = num("123"); CHECK(n.is_int && n.i == 123 && n.d == 123.0, "123");
    n = num("9223372036854775807"); CHECK(n.is_int && n.i == INT64_MAX, "int64 max");
    n = num("-9223372036854775808"); CHECK(n.is_int && n.i == INT64_MIN && n.d == -9223372036854775808.0, "int64 min");
    n = num("9223372036854775808"); CHECK(!n.is_int && n.d == 9223372036854775808.0, "2^63 not int");
    n = num("-9223372036854775809"); CHECK(!n.is_int, "below int64 min");
    n = num("18446744073709551616"); CHECK(!n.is_int && n.d == 18446744073709551616.0, "2^64");
    n = num("1e3"); CHECK(!n.is_int && n.d == 1000.0, "1e3 is not an integer token");
    n = num("2.0"); CHECK(!n.is_int && n.d == 2.0, "2.0");
    n = num("0.1"); CHECK(n.d == 0.1, "0.1");
    n = num("-1.5e-3"); CHECK(n.d == -1.5e-3, "-1.5e-3");
    n = num("1e400"); CHECK(isinf(n.d) && n.d > 0, "overflow -> inf");
    n = num("-1e400"); CHECK(isinf(n.d) && n.d < 0, "overflow -> -inf");
    n = num("1e-400"); CHECK(n.d == 0.0, "underflow -> 0");
    n = num("4.9406564584124654e-324"); CHECK(n.d == 4.9406564584124654e-324, "min subnormal");
    n = num("1e99999999999999999999"); CHECK(isinf(n.d), "huge exponent");
    n = num("0e99999999999999999999"); CHECK(n.d == 0.0, "zero with huge exponent");
    n = num("0.000000000000000000000000000000000000000001e42"); CHECK(n.d == 1.0, "leading fraction zeros");
    /* halfway case beyond the kept digits: 2^53 + 1 rounds to even (2^53) unless a later digit is nonzero */
    {
        static char b[2000];
        size_t k = 0;
        k += (size_t)snprintf(b + k, sizeof b - k, "9007199254740993");
        for (int i = 0; i < 900; i++) b[k++] = '0';
        b[k] = 0;
        snprintf(b + k, sizeof b - k, "e-900");
        n = num(b);
        CHECK(n.d == 9007199254740992.0, "exact halfway rounds to even: %.17g", n.d);
        snprintf(b + k, sizeof b - k, "1e-901");
        n = num(b);
        CHECK(n.d == 9007199254740994.0, "sticky digit rounds up: %.17g", n.d);
        /* the same with a decimal point */
        k = 0;
        k += (size_t)snprintf(b + k, sizeof b - k, "9007199254740993.");
        for (int i = 0; i < 900; i++) b[k++] = '0';
        snprintf(b + k, sizeof b - k, "1");
        n = num(b);
        CHECK(n.d == 9007199254740994.0, "sticky fraction digit rounds up: %.17g", n.d);
    }
    /* random numbers against strtod (this test runs in the C locale) */
    tu_rng rng = { 12345 };
    char b[128];
    int mism = 0;
    for (int t = 0; t < 20000; t++) {
        size_t k = 0;
        if (tu_next(&rng) & 1) b[k++] = '-';
        int nd = (int)tu_int(&rng, 1, 25);
        b[k++] = (char)('1' + tu_int(&rng, 0, 8));
        for (int i = 1; i < nd; i++) b[k++] = (char)('0' + tu_int(&rng, 0, 9));
        if (tu_next(&rng) & 1) {
            b[k++] = '.';
            int nf = (int)tu_int(&rng, 1, 20);
            for (int i = 0; i < nf; i++) b[k++] = (char)('0' + tu_int(&rng, 0, 9));
        }
        if (tu_next(&rng) & 1) k += (size_t)snprintf(b + k, sizeof b - k, "e%d", (int)tu_int(&rng, -340, 330));
        b[k] = 0;
        n = num(b);
        if (!same_bits(n.d, strtod(b, NULL))) {
            if (mism++ < 5) CHECK(0, "'%s': %.17g vs strtod %.17g", b, n.d, strtod(b, NULL));
        }
    }
    CHECK(mism == 0, "%d random numbers differ from strtod", mism);
    /* locale independence: a comma decimal point locale must not change anything */
    if (setlocale(LC_NUMERIC, "de_DE.UTF-8") || setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
        n = num("1.5");
        CHECK(n.d == 1.5, "locale: 1.5 -> %g", n.d);
        setlocale(LC_NUMERIC, "C");
    } else {
        printf("(no comma-decimal locale installed: locale check skipped)\n");
    }
    /* non-number */
    attn_json r;
    parse("\"1\"", &r, NULL);
    attn__json_num(r, &n);
    CHECK(n.d == 0.0 && !n.is_int, "string is not a number");
}

int main(void) {
    test_valid();
    test_invalid();
    test_depth();
    test_navigation();
    test_strings();
    test_numbers();
    return test_summary("test_json");
}
