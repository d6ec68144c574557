/* SPDX-License-Identifier: MIT */
/* fuzz_json.c — libFuzzer target for the strict JSON reader (src/io/json.c).
 * Parses the input; on success walks the whole document, decoding every
 * string and number and cross-checking the navigation functions.
 * tests/test_fuzz_replay.c includes this file (FUZZ_NO_MAIN, FUZZ_CHECK) to
 * replay the corpora in the normal build. */
#include "io/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) do { if (!(c)) abort(); } while (0)
#endif

static void fuzz_json_walk(attn_json v, int depth) {
    FUZZ_CHECK(depth <= ATTN_JSON_MAX_DEPTH);
    switch (v.type) {
    case ATTN_JSON_STRING: {
        size_t n = attn__json_str_len(v);
        char *b = (char *)malloc(n + 1);
        FUZZ_CHECK(b != NULL);
        if (!b) return;
        FUZZ_CHECK(attn__json_str_get(v, b, n + 1) == n);
        FUZZ_CHECK(b[n] == 0);
        FUZZ_CHECK(attn__json_utf8_valid(b, n));
        if (memchr(b, 0, n) == NULL) FUZZ_CHECK(attn__json_str_eq(v, b));
        FUZZ_CHECK(attn__json_str_cmp(v, v) == 0);
        free(b);
        break;
    }
    case ATTN_JSON_NUMBER: {
        attn_json_num num;
        attn__json_num(v, &num);
        if (num.is_int) FUZZ_CHECK((double)num.i == num.d);
        FUZZ_CHECK(num.d == num.d); /* never NaN */
        break;
    }
    case ATTN_JSON_ARRAY:
    case ATTN_JSON_OBJECT: {
        attn_json_iter it;
        attn_json k, x;
        size_t count = 0;
        attn__json_iter_init(&it, v);
        attn_json dup;
        int has_dup = v.type == ATTN_JSON_OBJECT ? attn__json_find_dup_key(v, &dup) : 0;
        FUZZ_CHECK(has_dup >= 0);
        while (attn__json_next(&it, &k, &x)) {
            count++;
            if (v.type == ATTN_JSON_OBJECT) {
                FUZZ_CHECK(k.type == ATTN_JSON_STRING);
                fuzz_json_walk(k, depth + 1);
                char key[64];
                size_t kn = attn__json_str_get(k, key, sizeof key);
                if (kn < sizeof key && strlen(key) == kn) {
                    attn_json got;
                    int r = attn__json_get(v, key, &got);
                    FUZZ_CHECK(r == 1 || (r == -1 && has_dup == 1));
                }
            }
            fuzz_json_walk(x, depth + 1);
        }
        FUZZ_CHECK(count == attn__json_count(v));
        break;
    }
    default:
        break;
    }
}

static int fuzz_json_one(const uint8_t *data, size_t size) {
    attn_json root;
    attn_json_error err;
    if (attn__json_parse((const char *)data, size, &root, &err) != 0) {
        FUZZ_CHECK(err.offset <= size && err.msg[0] != 0);
        return 0;
    }
    fuzz_json_walk(root, 0);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_json_one(data, size); }
#endif
