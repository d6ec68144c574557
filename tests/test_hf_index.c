/* SPDX-License-Identifier: MIT */
/* test_hf_index.c — attn_mha_load_index (src/layer/params_index.c): a layer from
 * a sharded checkpoint (model.safetensors.index.json + shards).
 *   - tests/fixtures/hf/qwen2/sharded (saved by transformers, max_shard_size 12KB):
 *     both layers load and give bit for bit the output of the single-file load;
 *   - a layer split across two shards written here loads every parameter exactly;
 *   - a broken index is refused with a message naming the problem and leaves
 *     the layer unchanged: not JSON, no weight_map, a shard name with '/', a
 *     missing shard, a shard that does not hold the tensor the index puts in it,
 *     a prefix with no tensor, a truncated shard. */
#include "core/core.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_test.h"

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif
#define QDIR ATTN_SOURCE_DIR "/tests/fixtures/hf/qwen2"

static char dir[256];

static void test_fixture(void) {
    attn_hf_opts o;
    attn_hf_opts_init(&o);
    attn_npy x;
    CHECK(attn_npy_read(QDIR "/x0.npy", &x) == ATTN_OK, "x0: %s", attn_last_error());
    for (int64_t layer = 0; layer < 2; layer++) {
        o.layer = layer;
        attn_mha_config c;
        attn_hf_info info;
        CHECK(hf_read_ex(QDIR, &o, &c, &info) == ATTN_OK, "config: %s", attn_last_error());
        attn_mha *a = NULL, *b = NULL;
        attn_st *st = NULL;
        CHECK(attn_mha_create(&a, &c) == ATTN_OK && attn_mha_create(&b, &c) == ATTN_OK, "create");
        CHECK(attn_st_open(&st, QDIR "/model.safetensors") == ATTN_OK, "open");
        CHECK(attn_mha_load(a, st, info.prefix, ATTN_NAMING_HF) == ATTN_OK, "single file: %s", attn_last_error());
        attn_status s = attn_mha_load_index(b, QDIR "/sharded", info.prefix, ATTN_NAMING_HF);
        CHECK(s == ATTN_OK, "layer %lld from the index directory: %s", (long long)layer, attn_last_error());
        s = attn_mha_load_index(b, QDIR "/sharded/model.safetensors.index.json", info.prefix, ATTN_NAMING_HF);
        CHECK(s == ATTN_OK, "layer %lld from the index file: %s", (long long)layer, attn_last_error());
        float *ya = calloc((size_t)x.numel, 4), *yb = calloc((size_t)x.numel, 4);
        attn_mha_input in;
        attn_mha_input_init(&in);
        in.batch = x.shape[0];
        in.seq_q = x.shape[1];
        in.x = x.data;
        CHECK(attn_mha_forward(a, &in, ya) == ATTN_OK && attn_mha_forward(b, &in, yb) == ATTN_OK, "forward");
        CHECK(memcmp(ya, yb, (size_t)x.numel * 4) == 0, "layer %lld: sharded load gives the same output bit for bit",
              (long long)layer);
        free(ya);
        free(yb);
        attn_st_free(st);
        attn_mha_free(a);
        attn_mha_free(b);
    }
    attn_npy_free(&x);
}

static void write_text(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
}

static attn_mha *small_layer(uint64_t seed) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    c.embed_dim = 16;
    c.num_heads = 2;
    c.bias_q = c.bias_k = c.bias_v = 1;
    attn_mha *m = NULL;
    attn_mha_create(&m, &c);
    attn_mha_init_weights(m, ATTN_INIT_NORMAL, seed);
    return m;
}

/* shard A: q_proj.*, k_proj.*; shard B: v_proj.*, o_proj.weight */
static void write_split(const attn_mha *src) {
    attn_st_writer *wa = NULL, *wb = NULL;
    attn_st_writer_create(&wa);
    attn_st_writer_create(&wb);
    attn_mha *m = (attn_mha *)src;
    char json[4096];
    int n = snprintf(json, sizeof json, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
    for (int64_t i = 0; i < attn_mha_num_params(m); i++) {
        attn_param p;
        attn_mha_param(m, i, &p);
        char nm[128];
        snprintf(nm, sizeof nm, "layers.0.attn.%s", p.name);
        const int in_a = p.name[0] == 'q' || p.name[0] == 'k';
        attn_st_writer_add_f32(in_a ? wa : wb, nm, p.data, p.ndim, p.shape);
        n += snprintf(json + n, sizeof json - (size_t)n, "%s\"%s\": \"%s\"", i ? ", " : "", nm,
                      in_a ? "a.safetensors" : "b.safetensors");
    }
    snprintf(json + n, sizeof json - (size_t)n, "}}");
    char p[512];
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    attn_st_writer_save(wa, p);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    attn_st_writer_save(wb, p);
    write_text("model.safetensors.index.json", json);
    attn_st_writer_free(wa);
    attn_st_writer_free(wb);
}

static int same_params(attn_mha *a, attn_mha *b) {
    for (int64_t i = 0; i < attn_mha_num_params(a); i++) {
        attn_param p, q;
        attn_mha_param(a, i, &p);
        attn_mha_param(b, i, &q);
        if (memcmp(p.data, q.data, (size_t)p.numel * 4) != 0) return 0;
    }
    return 1;
}

static void expect_bad(const char *what, const char *index_json, attn_status want, const char *msg) {
    attn_mha *m = small_layer(7), *ref = small_layer(7);
    char p[512];
    snprintf(p, sizeof p, "%s/bad.index.json", dir);
    write_text("bad.index.json", index_json);
    attn_status s = attn_mha_load_index(m, p, "layers.0.attn", ATTN_NAMING_HF);
    CHECK(s == want, "%s: status %d (%s), expected %d", what, (int)s, attn_last_error(), (int)want);
    CHECK(strstr(attn_last_error(), msg) != NULL, "%s: message '%s' lacks '%s'", what, attn_last_error(), msg);
    CHECK(same_params(m, ref), "%s: the layer changed", what);
    attn_mha_free(m);
    attn_mha_free(ref);
}

static void test_split(void) {
    attn_mha *src = small_layer(1), *dst = small_layer(2);
    write_split(src);
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(attn_mha_load_index(dst, p, "layers.0.attn", ATTN_NAMING_HF) == ATTN_OK, "split load: %s", attn_last_error());
    CHECK(same_params(src, dst), "every parameter read from its shard");
    CHECK(attn_mha_load_index(dst, dir, "layers.0.attn", ATTN_NAMING_HF) == ATTN_OK, "directory: %s", attn_last_error());
    attn_mha_free(src);
    attn_mha_free(dst);

    expect_bad("not JSON", "{", ATTN_ERR_FORMAT, "invalid JSON");
    expect_bad("no weight_map", "{\"metadata\": {}}", ATTN_ERR_FORMAT, "no 'weight_map' object");
    expect_bad("shard path", "{\"weight_map\": {\"layers.0.attn.q_proj.weight\": \"../a.safetensors\"}}", ATTN_ERR_FORMAT,
               "'../a.safetensors' is not a file name in the index's directory");
    expect_bad("shard name not a string", "{\"weight_map\": {\"layers.0.attn.q_proj.weight\": 3}}", ATTN_ERR_FORMAT,
               "must be a shard file name, got a number");
    expect_bad("missing shard", "{\"weight_map\": {\"layers.0.attn.q_proj.weight\": \"nope.safetensors\"}}", ATTN_ERR_IO,
               "nope.safetensors");
    expect_bad("wrong shard",
               "{\"weight_map\": {\"layers.0.attn.q_proj.weight\": \"b.safetensors\", \"layers.0.attn.k_proj.weight\": "
               "\"a.safetensors\"}}", ATTN_ERR_FORMAT, "puts 'layers.0.attn.q_proj.weight' in a shard that does not hold it");
    expect_bad("no tensor under the prefix", "{\"weight_map\": {\"other.q_proj.weight\": \"a.safetensors\"}}",
               ATTN_ERR_NOT_FOUND, "no tensor under 'layers.0.attn.'");
    expect_bad("a tensor the index lacks",
               "{\"weight_map\": {\"layers.0.attn.q_proj.weight\": \"a.safetensors\"}}", ATTN_ERR_NOT_FOUND,
               "missing tensor 'layers.0.attn.q_proj.bias'");
    expect_bad("duplicate key", "{\"weight_map\": {\"x\": \"a.safetensors\", \"x\": \"b.safetensors\"}}", ATTN_ERR_FORMAT,
               "duplicate key 'weight_map.x'");
    /* a truncated shard: refused by the safetensors validation */
    char a[512], t[512];
    snprintf(a, sizeof a, "%s/a.safetensors", dir);
    snprintf(t, sizeof t, "%s/t.safetensors", dir);
    FILE *in = fopen(a, "rb"), *out = fopen(t, "wb");
    char buf[64];
    size_t got = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, got, out);
    fclose(in);
    fclose(out);
    expect_bad("truncated shard", "{\"weight_map\": {\"layers.0.attn.q_proj.weight\": \"t.safetensors\"}}",
               ATTN_ERR_FORMAT, "t.safetensors");
    attn_mha *m = small_layer(3);
    CHECK(attn_mha_load_index(NULL, a, "", 0) == ATTN_ERR_NULL && attn_mha_load_index(m, NULL, "", 0) == ATTN_ERR_NULL,
          "NULL arguments");
    CHECK(attn_mha_load_index(m, a, "", ATTN_NAMING_COUNT) == ATTN_ERR_OPTION, "bad naming");
    attn_mha_free(m);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_index_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_hf_index");
    }
    test_fixture();
    test_split();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("test_hf_index");
}
