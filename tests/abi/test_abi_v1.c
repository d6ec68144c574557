/* SPDX-License-Identifier: MIT */
/* test_abi_v1.c — a program built against the first release's option structs
 * (abi_v1.h, frozen; attn.h is NOT included here) calling the current
 * libattn.so. It checks that
 *   - the current header only appended fields (every v1 offset unchanged);
 *   - *_init_size() with the old size writes exactly the old size (each struct
 *     sits in a heap block of exactly its v1 size, so ASan flags any byte read
 *     or written past it; a canary after a copy checks it without ASan);
 *   - sdpa and the layer give bit-identical results to the same calls made
 *     with the current layout (abi_current.c), so the fields the old program
 *     does not know took their defaults;
 *   - a struct_size below the first release's or above the library's is
 *     refused with a message naming the struct and the fix. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_v1.h"

enum { ERR_OPTION = -4, ERR_CONFIG = -13 };
static int fails = 0;
#define CHECK(c, ...)                                                         \
    do {                                                                      \
        if (!(c)) {                                                           \
            fails++;                                                          \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #c);               \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

#define V1(T, f) {#f, offsetof(T, f)}
static const abi_field v1_sdpa_opts_fields[] = {
    V1(v1_sdpa_opts, struct_size), V1(v1_sdpa_opts, scale), V1(v1_sdpa_opts, causal), V1(v1_sdpa_opts, align),
    V1(v1_sdpa_opts, key_lens), V1(v1_sdpa_opts, window_left), V1(v1_sdpa_opts, window_right),
    V1(v1_sdpa_opts, alibi_slopes), V1(v1_sdpa_opts, softcap), V1(v1_sdpa_opts, mask_kind),
    V1(v1_sdpa_opts, mask), V1(v1_sdpa_opts, mask_stride_b), V1(v1_sdpa_opts, mask_stride_h),
    V1(v1_sdpa_opts, mask_stride_q), V1(v1_sdpa_opts, cu_seqlens_q), V1(v1_sdpa_opts, cu_seqlens_k),
    V1(v1_sdpa_opts, dropout_p), V1(v1_sdpa_opts, dropout_seed), V1(v1_sdpa_opts, num_threads), {NULL, 0}};
static const abi_field v1_mha_config_fields[] = {
    V1(v1_mha_config, struct_size), V1(v1_mha_config, embed_dim), V1(v1_mha_config, num_heads),
    V1(v1_mha_config, num_kv_heads), V1(v1_mha_config, head_dim), V1(v1_mha_config, kdim),
    V1(v1_mha_config, vdim), V1(v1_mha_config, bias_q), V1(v1_mha_config, bias_k), V1(v1_mha_config, bias_v),
    V1(v1_mha_config, bias_o), V1(v1_mha_config, causal), V1(v1_mha_config, scale),
    V1(v1_mha_config, dropout), V1(v1_mha_config, dropout_seed), V1(v1_mha_config, softcap),
    V1(v1_mha_config, window_left), V1(v1_mha_config, window_right), V1(v1_mha_config, rope),
    V1(v1_mha_config, rope_theta), V1(v1_mha_config, rope_dim), V1(v1_mha_config, rope_scaling),
    V1(v1_mha_config, rope_factor), V1(v1_mha_config, rope_low_freq_factor),
    V1(v1_mha_config, rope_high_freq_factor), V1(v1_mha_config, rope_original_max_pos),
    V1(v1_mha_config, qk_norm), V1(v1_mha_config, qk_norm_eps), {NULL, 0}};
static const abi_field v1_mha_input_fields[] = {
    V1(v1_mha_input, struct_size), V1(v1_mha_input, layout), V1(v1_mha_input, batch),
    V1(v1_mha_input, seq_q), V1(v1_mha_input, seq_kv), V1(v1_mha_input, x), V1(v1_mha_input, key),
    V1(v1_mha_input, value), V1(v1_mha_input, positions), V1(v1_mha_input, pos_offset),
    V1(v1_mha_input, key_padding_mask), V1(v1_mha_input, mask_kind), V1(v1_mha_input, mask),
    V1(v1_mha_input, mask_stride_b), V1(v1_mha_input, mask_stride_h), V1(v1_mha_input, mask_stride_q),
    {NULL, 0}};

static void test_layout(const char *what, const abi_field *v1, const abi_field *cur, size_t v1_size,
                        size_t cur_size) {
    int i = 0;
    for (; v1[i].name; i++) {
        CHECK(cur[i].name && strcmp(v1[i].name, cur[i].name) == 0, "%s field %d: %s", what, i, v1[i].name);
        CHECK(cur[i].name && v1[i].offset == cur[i].offset, "%s.%s: offset %zu in attn.h, %zu in the first release",
              what, v1[i].name, cur[i].name ? cur[i].offset : 0, v1[i].offset);
    }
    CHECK(cur_size >= v1_size, "%s: sizeof %zu < first release's %zu", what, cur_size, v1_size);
}

static float *randu(size_t n, unsigned *seed) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return p;
}

/* init writes exactly struct_size bytes: a canary right after stays intact */
static void test_init_bounds(void) {
    unsigned char buf[sizeof(v1_mha_config) + 64];
    memset(buf, 0xA5, sizeof buf);
    CHECK(attn_sdpa_opts_init_size((v1_sdpa_opts *)(void *)buf, sizeof(v1_sdpa_opts)) == 0, "%s", attn_last_error());
    int clean = 1;
    for (size_t i = sizeof(v1_sdpa_opts); i < sizeof buf; i++) clean &= buf[i] == 0xA5;
    CHECK(clean, "attn_sdpa_opts_init_size wrote past the v1 struct");
    v1_sdpa_opts o;
    memcpy(&o, buf, sizeof o);
    CHECK(o.struct_size == sizeof o && o.window_left == -1 && o.window_right == -1 && o.causal == 0 && o.scale == 0,
          "v1 defaults");

    memset(buf, 0xA5, sizeof buf);
    CHECK(attn_mha_config_init_size((v1_mha_config *)(void *)buf, sizeof(v1_mha_config)) == 0, "%s",
          attn_last_error());
    clean = 1;
    for (size_t i = sizeof(v1_mha_config); i < sizeof buf; i++) clean &= buf[i] == 0xA5;
    CHECK(clean, "attn_mha_config_init_size wrote past the v1 struct");

    /* hf_config_parse writes only the caller's struct_size bytes too */
    memset(buf, 0xA5, sizeof buf);
    v1_mha_config *c = (v1_mha_config *)(void *)buf;
    attn_mha_config_init_size(c, sizeof *c);
    static const char js[] = "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 2}";
    CHECK(attn_hf_config_parse(js, sizeof js - 1, c) == 0, "hf parse: %s", attn_last_error());
    CHECK(c->embed_dim == 64 && c->num_kv_heads == 2 && c->head_dim == 16 && c->causal == 1 &&
              c->struct_size == sizeof *c,
          "hf parse into v1");
    clean = 1;
    for (size_t i = sizeof(v1_mha_config); i < sizeof buf; i++) clean &= buf[i] == 0xA5;
    CHECK(clean, "attn_hf_config_parse wrote past the v1 struct");
}

static void test_sdpa(void) {
    enum { S = 19, H = 3, D = 16 };
    unsigned seed = 5;
    float *q = randu(S * H * D, &seed), *k = randu(S * H * D, &seed), *v = randu(S * H * D, &seed);
    float *o1 = calloc(S * H * D, 4), *o2 = calloc(S * H * D, 4), *l1 = calloc(S * H, 4), *l2 = calloc(S * H, 4);
    v1_dims d = {1, S, S, H, H, D, D};
    v1_view vq = {q, S * H * D, H * D, D}, vk = {k, S * H * D, H * D, D}, vv = {v, S * H * D, H * D, D};
    v1_view vo = {o1, S * H * D, H * D, D};
    v1_sdpa_opts *op = malloc(sizeof *op); /* exactly the v1 size: ASan catches any access past it */
    CHECK(attn_sdpa_opts_init_size(op, sizeof *op) == 0, "init: %s", attn_last_error());
    op->causal = 1;
    op->window_left = 5;
    CHECK(attn_sdpa_fwd_workspace_size(&d, op) > 0, "workspace size with a v1 struct");
    CHECK(attn_sdpa_fwd(&d, vq, vk, vv, vo, l1, op, NULL, 0) == 0, "v1 fwd: %s", attn_last_error());
    CHECK(abi_cur_sdpa(q, k, v, o2, l2, S, H, D, 1, 5) == 0, "current fwd: %s", attn_last_error());
    CHECK(memcmp(o1, o2, sizeof(float) * S * H * D) == 0 && memcmp(l1, l2, sizeof(float) * S * H) == 0,
          "v1 and current layouts give different results");
    /* and the options were read (not all defaults): causal + window differ from no mask */
    CHECK(abi_cur_sdpa(q, k, v, o2, l2, S, H, D, 0, -1) == 0, "%s", attn_last_error());
    CHECK(memcmp(o1, o2, sizeof(float) * S * H * D) != 0, "causal/window of the v1 struct ignored");

    /* refused sizes */
    op->struct_size = 0; /* e.g. zeroed by hand instead of initialised */
    CHECK(attn_sdpa_fwd(&d, vq, vk, vv, vo, l1, op, NULL, 0) == ERR_OPTION &&
              strstr(attn_last_error(), "attn_sdpa_opts.struct_size = 0") &&
              strstr(attn_last_error(), "attn_sdpa_opts_init"),
          "size 0: %s", attn_last_error());
    CHECK(attn_sdpa_fwd_workspace_size(&d, op) == 0, "workspace size of a refused struct");
    op->struct_size = (uint32_t)offsetof(v1_sdpa_opts, num_threads);
    CHECK(attn_sdpa_fwd(&d, vq, vk, vv, vo, l1, op, NULL, 0) == ERR_OPTION &&
              strstr(attn_last_error(), "smaller than the first release"),
          "size below v1: %s", attn_last_error());
    free(op);
    unsigned char *big = calloc(1, abi_cur_sizes[0] + 64); /* a struct from a newer header */
    CHECK(attn_sdpa_opts_init_size((v1_sdpa_opts *)(void *)big, abi_cur_sizes[0] + 8) == ERR_OPTION,
          "init with a newer size");
    CHECK(attn_sdpa_fwd(&d, vq, vk, vv, vo, l1, (v1_sdpa_opts *)(void *)big, NULL, 0) == ERR_OPTION &&
              strstr(attn_last_error(), "newer attn.h"),
          "newer size: %s", attn_last_error());
    free(big);
    free(q); free(k); free(v); free(o1); free(o2); free(l1); free(l2);
}

static void test_mha(void) {
    enum { B = 2, S = 7, E = 32, H = 4 };
    unsigned seed = 9;
    float *x = randu(B * S * E, &seed), *y1 = calloc(B * S * E, 4), *y2 = calloc(B * S * E, 4);
    v1_mha_config *c = malloc(sizeof *c);
    CHECK(attn_mha_config_init_size(c, sizeof *c) == 0, "%s", attn_last_error());
    c->embed_dim = E;
    c->num_heads = H;
    c->causal = 1;
    c->rope = 1; /* NEOX */
    attn_mha *m = NULL;
    CHECK(attn_mha_create(&m, c) == 0, "create: %s", attn_last_error());
    if (m) {
        const v1_mha_config *r = attn_mha_get_config(m); /* the library's layout; v1 reads its prefix */
        CHECK(r->struct_size >= sizeof *r && r->head_dim == E / H && r->num_kv_heads == H && r->window_left == -1,
              "resolved config");
        CHECK(attn_mha_init_weights(m, 1, 7) == 0, "%s", attn_last_error());
        v1_mha_input *in = malloc(sizeof *in);
        CHECK(attn_mha_input_init_size(in, sizeof *in) == 0, "%s", attn_last_error());
        in->batch = B;
        in->seq_q = S;
        in->x = x;
        CHECK(attn_mha_forward(m, in, y1) == 0, "v1 forward: %s", attn_last_error());
        CHECK(abi_cur_mha(x, y2, B, S, E, H) == 0, "current forward: %s", attn_last_error());
        CHECK(memcmp(y1, y2, sizeof(float) * B * S * E) == 0, "v1 and current layer outputs differ");
        in->struct_size = 3;
        CHECK(attn_mha_forward(m, in, y1) == ERR_OPTION && strstr(attn_last_error(), "attn_mha_input.struct_size = 3"),
              "bad input size: %s", attn_last_error());
        free(in);
    }
    attn_mha_free(m);
    c->struct_size = (uint32_t)abi_cur_sizes[1] + 16;
    m = NULL;
    CHECK(attn_mha_create(&m, c) == ERR_CONFIG && !m && strstr(attn_last_error(), "newer attn.h"),
          "newer config size: %s", attn_last_error());
    free(c);
    free(x); free(y1); free(y2);
}

int main(void) {
    test_layout("attn_sdpa_opts", v1_sdpa_opts_fields, abi_cur_sdpa_opts, sizeof(v1_sdpa_opts), abi_cur_sizes[0]);
    test_layout("attn_mha_config", v1_mha_config_fields, abi_cur_mha_config, sizeof(v1_mha_config), abi_cur_sizes[1]);
    test_layout("attn_mha_input", v1_mha_input_fields, abi_cur_mha_input, sizeof(v1_mha_input), abi_cur_sizes[2]);
    test_init_bounds();
    test_sdpa();
    test_mha();
    printf("test_abi_v1: %s\n", fails ? "FAILED" : "ok");
    return fails != 0;
}
