/* SPDX-License-Identifier: MIT */
/* test_hfconfig.c — HuggingFace config.json -> attn_mha_config
 * (src/io/hfconfig.c): real model configs, defaults, and wrong inputs. */
#include "core/core.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* meta-llama/Llama-3.1-8B */
static const char *LLAMA31 =
    "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 128000,\n  \"eos_token_id\": 128001,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": 4096,\n"
    "  \"initializer_range\": 0.02,\n  \"intermediate_size\": 14336,\n  \"max_position_embeddings\": 131072,\n"
    "  \"mlp_bias\": false,\n  \"model_type\": \"llama\",\n  \"num_attention_heads\": 32,\n  \"num_hidden_layers\": 32,\n"
    "  \"num_key_value_heads\": 8,\n  \"pretraining_tp\": 1,\n  \"rms_norm_eps\": 1e-05,\n  \"rope_scaling\": {\n"
    "    \"factor\": 8.0,\n    \"low_freq_factor\": 1.0,\n    \"high_freq_factor\": 4.0,\n"
    "    \"original_max_position_embeddings\": 8192,\n    \"rope_type\": \"llama3\"\n  },\n  \"rope_theta\": 500000.0,\n"
    "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"bfloat16\",\n  \"transformers_version\": \"4.43.0.dev0\",\n"
    "  \"use_cache\": true,\n  \"vocab_size\": 128256\n}\n";

/* Qwen/Qwen2-7B-Instruct */
static const char *QWEN2 =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151645, \"hidden_act\": \"silu\", \"hidden_size\": 3584, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 18944, \"max_position_embeddings\": 32768, \"max_window_layers\": 28,"
    " \"model_type\": \"qwen2\", \"num_attention_heads\": 28, \"num_hidden_layers\": 28, \"num_key_value_heads\": 4,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 131072, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.41.2\", \"use_cache\": true,"
    " \"use_sliding_window\": false, \"vocab_size\": 152064}";

/* Qwen/Qwen3-8B */
static const char *QWEN3 =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"head_dim\": 128, \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"initializer_range\": 0.02, \"intermediate_size\": 12288,"
    " \"max_position_embeddings\": 40960, \"max_window_layers\": 36, \"model_type\": \"qwen3\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 36, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-06,"
    " \"rope_scaling\": null, \"rope_theta\": 1000000, \"sliding_window\": null, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\", \"use_cache\": true,"
    " \"use_sliding_window\": false, \"vocab_size\": 151936}";

/* mistralai/Mistral-7B-v0.1 (no use_sliding_window key: the window applies) */
static const char *MISTRAL =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"initializer_range\": 0.02, \"intermediate_size\": 14336,"
    " \"max_position_embeddings\": 32768, \"model_type\": \"mistral\", \"num_attention_heads\": 32,"
    " \"num_hidden_layers\": 32, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"
    " \"sliding_window\": 4096, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.34.0.dev0\", \"use_cache\": true, \"vocab_size\": 32000}";

static attn_status parse(const char *s, attn_mha_config *c) { return attn_hf_config_parse(s, strlen(s), c); }

static void test_models(void) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    CHECK(parse(LLAMA31, &c) == ATTN_OK, "llama: %s", attn_last_error());
    CHECK(c.embed_dim == 4096 && c.num_heads == 32 && c.num_kv_heads == 8 && c.head_dim == 128, "llama dims");
    CHECK(c.rope == ATTN_ROPE_NEOX && c.rope_theta == 500000.0f && c.causal == 1, "llama rope");
    CHECK(c.rope_scaling == ATTN_ROPE_SCALING_LLAMA3 && c.rope_factor == 8.0f && c.rope_low_freq_factor == 1.0f &&
          c.rope_high_freq_factor == 4.0f && c.rope_original_max_pos == 8192, "llama3 scaling");
    CHECK(!c.bias_q && !c.bias_k && !c.bias_v && !c.bias_o && !c.qk_norm, "llama no bias, no qk-norm");
    CHECK(c.window_left == -1 && c.window_right == -1 && c.dropout == 0.0f && c.rope_dim == 0, "llama window");
    CHECK(c.kdim == 0 && c.vdim == 0 && c.scale == 0.0f && c.softcap == 0.0f, "defaults from attn_mha_config_init");

    CHECK(parse(QWEN2, &c) == ATTN_OK, "qwen2: %s", attn_last_error());
    CHECK(c.embed_dim == 3584 && c.num_heads == 28 && c.num_kv_heads == 4 && c.head_dim == 128, "qwen2 dims");
    CHECK(c.bias_q && c.bias_k && c.bias_v && !c.bias_o, "qwen2 q/k/v bias, no o bias");
    CHECK(c.rope_theta == 1e6f && c.rope_scaling == ATTN_ROPE_SCALING_NONE, "qwen2 rope");
    CHECK(c.window_left == -1, "qwen2: use_sliding_window false -> no window");
    CHECK(!c.qk_norm, "qwen2 no qk-norm");

    CHECK(parse(QWEN3, &c) == ATTN_OK, "qwen3: %s", attn_last_error());
    CHECK(c.embed_dim == 4096 && c.num_heads == 32 && c.num_kv_heads == 8 && c.head_dim == 128, "qwen3 dims");
    CHECK(c.qk_norm == 1 && c.qk_norm_eps == 1e-6f, "qwen3 qk-norm");
    CHECK(!c.bias_q && !c.bias_o, "qwen3 attention_bias false");
    CHECK(c.rope_theta == 1e6f && c.rope_scaling == ATTN_ROPE_SCALING_NONE && c.window_left == -1, "qwen3 rope/window");

    CHECK(parse(MISTRAL, &c) == ATTN_OK, "mistral: %s", attn_last_error());
    CHECK(c.window_left == 4095 && c.window_right == -1, "mistral sliding window 4096 -> window_left 4095");
    CHECK(c.head_dim == 128 && c.num_kv_heads == 8, "mistral dims");

    /* every parsed real config is accepted by the layer */
    const char *all[4] = { LLAMA31, QWEN2, QWEN3, MISTRAL };
    for (int i = 0; i < 4; i++) {
        CHECK(parse(all[i], &c) == ATTN_OK, "parse %d", i);
        c.embed_dim = 64; /* keep the layer small: only validate the rest */
        c.num_heads = 4;
        c.num_kv_heads = 2;
        c.head_dim = 16;
        attn_mha *m = NULL;
        attn_status s = attn_mha_create(&m, &c);
        CHECK(s == ATTN_OK, "attn_mha_create accepts config %d: %s", i, attn_last_error());
        attn_mha_free(m);
    }
}

static void test_fields(void) {
    attn_mha_config c;
    attn_mha_config_init(&c);
    /* minimal: defaults */
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4}", &c) == ATTN_OK, "minimal: %s", attn_last_error());
    CHECK(c.num_kv_heads == 4 && c.head_dim == 16 && c.rope_theta == 10000.0f && !c.bias_q && c.causal &&
          c.rope == ATTN_ROPE_NEOX && c.window_left == -1, "defaults");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": null, \"head_dim\": null,"
                " \"rope_scaling\": null, \"sliding_window\": null}", &c) == ATTN_OK && c.num_kv_heads == 4 &&
          c.head_dim == 16 && c.window_left == -1, "nulls are defaults");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"attention_bias\": true}", &c) == ATTN_OK &&
          c.bias_q && c.bias_k && c.bias_v && c.bias_o, "attention_bias true");
    CHECK(parse("{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"attention_bias\": true}",
                &c) == ATTN_OK && c.bias_q && !c.bias_o, "qwen2 ignores attention_bias for o_proj");
    CHECK(parse("{\"model_type\": \"qwen3\", \"hidden_size\": 64, \"num_attention_heads\": 4}", &c) == ATTN_OK &&
          c.qk_norm && c.qk_norm_eps == 1e-6f, "qwen3 default eps");
    CHECK(parse("{\"model_type\": \"qwen3_moe\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"rms_norm_eps\": 1e-5}",
                &c) == ATTN_OK && c.qk_norm && c.qk_norm_eps == 1e-5f, "qwen3_moe eps");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"rms_norm_eps\": 1e-5}", &c) == ATTN_OK && !c.qk_norm,
          "rms_norm_eps alone does not enable qk-norm");
    CHECK(parse("{\"hidden_size\": 2560, \"num_attention_heads\": 32, \"partial_rotary_factor\": 0.4}", &c) == ATTN_OK &&
          c.head_dim == 80 && c.rope_dim == 32, "partial rotary (phi-2): %lld", (long long)c.rope_dim);
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"head_dim\": 32}", &c) == ATTN_OK && c.head_dim == 32,
          "explicit head_dim");
    CHECK(parse("{\"hidden_size\": 60, \"num_attention_heads\": 8, \"head_dim\": 8}", &c) == ATTN_OK && c.head_dim == 8,
          "head_dim given: no divisibility needed");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"use_sliding_window\": true, \"sliding_window\": 128}",
                &c) == ATTN_OK && c.window_left == 127, "use_sliding_window true");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"use_sliding_window\": false, \"sliding_window\": 128}",
                &c) == ATTN_OK && c.window_left == -1, "use_sliding_window false");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"use_sliding_window\": true}", &c) == ATTN_OK &&
          c.window_left == -1, "use_sliding_window without a size");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"attention_dropout\": 0.1}", &c) == ATTN_OK &&
          c.dropout == 0.1f, "dropout");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}",
                &c) == ATTN_OK && c.rope_scaling == ATTN_ROPE_SCALING_LINEAR && c.rope_factor == 2.0f, "linear (old 'type')");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"default\"}}", &c) ==
              ATTN_OK && c.rope_scaling == ATTN_ROPE_SCALING_NONE, "default rope_type");
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_parameters\": {\"rope_type\": \"linear\","
                " \"factor\": 4.0, \"rope_theta\": 5e5}}", &c) == ATTN_OK &&
          c.rope_scaling == ATTN_ROPE_SCALING_LINEAR && c.rope_factor == 4.0f && c.rope_theta == 5e5f,
          "transformers-5 rope_parameters: %s", attn_last_error());
    CHECK(parse("{\"text_config\": {\"model_type\": \"qwen3\", \"hidden_size\": 64, \"num_attention_heads\": 4},"
                " \"model_type\": \"wrapper\"}", &c) == ATTN_OK && c.embed_dim == 64 && c.qk_norm,
          "text_config: %s", attn_last_error());
    CHECK(parse("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"unknown\": {\"deep\": [1, 2, {\"x\": null}]},"
                " \"hidden_size_extra\": \"x\"}", &c) == ATTN_OK, "unknown keys ignored");
}

static void expect(const char *what, const char *json, attn_status want, const char *msg) {
    attn_mha_config c;
    memset(&c, 0x5a, sizeof c);
    c.struct_size = sizeof c; /* the only field parse reads; the rest must be overwritten */
    attn_mha_config before = c;
    attn_status s = parse(json, &c);
    CHECK(s == want, "%s: status %d (%s), expected %d", what, (int)s, attn_last_error(), (int)want);
    if (msg) CHECK(strstr(attn_last_error(), msg) != NULL, "%s: message '%s' lacks '%s'", what, attn_last_error(), msg);
    if (s != ATTN_OK) CHECK(memcmp(&c, &before, sizeof c) == 0, "%s: output written on error", what);
}

#define HN "\"hidden_size\": 64, \"num_attention_heads\": 4"
static void test_errors(void) {
    expect("invalid JSON", "{\"hidden_size\": 64,}", ATTN_ERR_FORMAT, "invalid JSON");
    expect("invalid JSON offset", "{\"a\" 1}", ATTN_ERR_FORMAT, "at byte 5");
    expect("not an object", "[1, 2]", ATTN_ERR_FORMAT, "top level is a JSON array");
    expect("empty", "", ATTN_ERR_FORMAT, "empty");
    expect("missing hidden_size", "{\"num_attention_heads\": 4}", ATTN_ERR_NOT_FOUND, "'hidden_size'");
    expect("missing heads", "{\"hidden_size\": 64}", ATTN_ERR_NOT_FOUND, "'num_attention_heads'");
    expect("hidden_size string", "{\"hidden_size\": \"64\", \"num_attention_heads\": 4}", ATTN_ERR_FORMAT,
           "'hidden_size' must be an integer, got a string");
    expect("hidden_size float", "{\"hidden_size\": 64.5, \"num_attention_heads\": 4}", ATTN_ERR_FORMAT,
           "'hidden_size' must be an integer, got 64.5");
    expect("hidden_size 1e3", "{\"hidden_size\": 1e3, \"num_attention_heads\": 4}", ATTN_ERR_FORMAT, "'hidden_size'");
    expect("hidden_size huge", "{\"hidden_size\": 99999999999999999999, \"num_attention_heads\": 4}", ATTN_ERR_FORMAT,
           "'hidden_size'");
    expect("hidden_size 0", "{\"hidden_size\": 0, \"num_attention_heads\": 4}", ATTN_ERR_CONFIG, "'hidden_size' = 0");
    expect("negative heads", "{\"hidden_size\": 64, \"num_attention_heads\": -4}", ATTN_ERR_CONFIG, "'num_attention_heads' = -4");
    expect("kv heads bool", "{" HN ", \"num_key_value_heads\": true}", ATTN_ERR_FORMAT, "'num_key_value_heads' must be an integer, got a boolean");
    expect("not divisible", "{\"hidden_size\": 65, \"num_attention_heads\": 4}", ATTN_ERR_CONFIG, "not divisible");
    expect("duplicate key", "{" HN ", \"hidden_size\": 128}", ATTN_ERR_FORMAT, "duplicate key 'hidden_size'");
    expect("duplicate unknown key", "{" HN ", \"x\": 1, \"x\": 2}", ATTN_ERR_FORMAT, "duplicate key 'x'");
    expect("rope_theta string", "{" HN ", \"rope_theta\": \"1e4\"}", ATTN_ERR_FORMAT, "'rope_theta' must be a number");
    expect("rope_theta negative", "{" HN ", \"rope_theta\": -1}", ATTN_ERR_CONFIG, "'rope_theta'");
    expect("rope_theta inf", "{" HN ", \"rope_theta\": 1e999}", ATTN_ERR_CONFIG, "'rope_theta'");
    expect("attention_bias int", "{" HN ", \"attention_bias\": 1}", ATTN_ERR_FORMAT, "'attention_bias' must be true or false");
    expect("model_type int", "{" HN ", \"model_type\": 3}", ATTN_ERR_FORMAT, "'model_type' must be a string");
    expect("rope_scaling string", "{" HN ", \"rope_scaling\": \"linear\"}", ATTN_ERR_FORMAT, "'rope_scaling' must be an object");
    expect("rope_scaling yarn", "{" HN ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}",
           ATTN_ERR_UNSUPPORTED, "rope scaling type 'yarn' is not supported");
    expect("rope_scaling dynamic", "{" HN ", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}",
           ATTN_ERR_UNSUPPORTED, "'dynamic'");
    expect("rope type with NUL", "{" HN ", \"rope_scaling\": {\"rope_type\": \"linear\\u0000x\", \"factor\": 2}}",
           ATTN_ERR_UNSUPPORTED, "'linear?x'");
    expect("long rope type", "{" HN ", \"rope_scaling\": {\"rope_type\": \"linearlinearlinearlinearlinearlinearlinear\"}}",
           ATTN_ERR_UNSUPPORTED, "'linearlinearlinear");
    expect("rope_scaling no type", "{" HN ", \"rope_scaling\": {\"factor\": 2.0}}", ATTN_ERR_UNSUPPORTED, "rope_type");
    expect("rope_scaling type int", "{" HN ", \"rope_scaling\": {\"rope_type\": 1}}", ATTN_ERR_FORMAT,
           "'rope_scaling.rope_type' must be a string");
    expect("linear without factor", "{" HN ", \"rope_scaling\": {\"rope_type\": \"linear\"}}", ATTN_ERR_NOT_FOUND,
           "'rope_scaling.factor'");
    expect("llama3 missing key", "{" HN ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1,"
           " \"high_freq_factor\": 4}}", ATTN_ERR_NOT_FOUND, "'rope_scaling.original_max_position_embeddings'");
    expect("llama3 factor string", "{" HN ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": \"8\"}}",
           ATTN_ERR_FORMAT, "'rope_scaling.factor' must be a number");
    expect("factor 0", "{" HN ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 0}}", ATTN_ERR_CONFIG,
           "'rope_scaling.factor' = 0");
    expect("rope_scaling dup", "{" HN ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2, \"factor\": 3}}",
           ATTN_ERR_FORMAT, "duplicate key 'rope_scaling.factor'");
    expect("partial_rotary_factor 0", "{" HN ", \"partial_rotary_factor\": 0}", ATTN_ERR_CONFIG, "'partial_rotary_factor'");
    expect("partial_rotary_factor tiny", "{" HN ", \"partial_rotary_factor\": 0.01}", ATTN_ERR_CONFIG, "no rotated dimension");
    expect("rope_theta below float range", "{" HN ", \"rope_theta\": 1e-50}", ATTN_ERR_CONFIG, "'rope_theta'");
    expect("dropout rounds to 1 as a float", "{" HN ", \"attention_dropout\": 0.99999999999}", ATTN_ERR_CONFIG,
           "'attention_dropout'");
    expect("partial_rotary_factor 2", "{" HN ", \"partial_rotary_factor\": 2}", ATTN_ERR_CONFIG, "'partial_rotary_factor'");
    expect("sliding_window 0", "{" HN ", \"sliding_window\": 0}", ATTN_ERR_CONFIG, "'sliding_window' = 0");
    expect("sliding_window string", "{" HN ", \"sliding_window\": \"4096\"}", ATTN_ERR_FORMAT, "'sliding_window'");
    expect("use_sliding_window string", "{" HN ", \"use_sliding_window\": \"yes\"}", ATTN_ERR_FORMAT, "'use_sliding_window'");
    expect("dropout 1", "{" HN ", \"attention_dropout\": 1.0}", ATTN_ERR_CONFIG, "'attention_dropout' = 1");
    expect("rms_norm_eps 0", "{" HN ", \"rms_norm_eps\": 0}", ATTN_ERR_CONFIG, "'rms_norm_eps'");
    expect("rms_norm_eps string", "{" HN ", \"rms_norm_eps\": \"x\"}", ATTN_ERR_FORMAT, "'rms_norm_eps'");
    expect("text_config missing keys", "{\"text_config\": {\"model_type\": \"x\"}}", ATTN_ERR_NOT_FOUND, "'hidden_size'");
    attn_mha_config c;
    attn_mha_config_init(&c);
    /* every strict prefix of a real config is invalid JSON */
    size_t full = strlen(QWEN3);
    int bad = 0;
    for (size_t n = 0; n < full; n++) bad += attn_hf_config_parse(QWEN3, n, &c) != ATTN_ERR_FORMAT;
    CHECK(bad == 0, "%d truncated configs not rejected as ATTN_ERR_FORMAT", bad);
    CHECK(attn_hf_config_parse(NULL, 3, &c) == ATTN_ERR_NULL, "NULL json");
    CHECK(attn_hf_config_parse("{}", 2, NULL) == ATTN_ERR_NULL, "NULL out");
    CHECK(attn_hf_config_parse("{\"hidden_size\": 64, \"num_attention_heads\": 4}xyz", 45, &c) == ATTN_OK,
          "len bounds the text");
}

static void test_files(void) {
    char dir[256], path[512];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/attn_test_hf_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    fputs(QWEN3, f);
    fclose(f);
    attn_mha_config c;
    attn_mha_config_init(&c);
    CHECK(attn_hf_config_read(path, &c) == ATTN_OK && c.qk_norm && c.head_dim == 128, "read file: %s", attn_last_error());
    CHECK(attn_hf_config_read(dir, &c) == ATTN_OK && c.qk_norm, "read model directory: %s", attn_last_error());
    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK(attn_hf_config_read(path, &c) == ATTN_ERR_IO && strstr(attn_last_error(), "missing.json"), "missing file: %s",
          attn_last_error());
    /* invalid file content names the path */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    f = fopen(path, "wb");
    fputs("{\"hidden_size\": [}", f);
    fclose(f);
    CHECK(attn_hf_config_read(path, &c) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "bad.json"), "bad file: %s",
          attn_last_error());
    /* a file over the 16 MiB limit */
    snprintf(path, sizeof path, "%s/big.json", dir);
    f = fopen(path, "wb");
    fputc('[', f);
    for (int i = 0; i < (16 << 20) / 2 + 8; i++) fputs("0,", f);
    fputs("0]", f);
    fclose(f);
    CHECK(attn_hf_config_read(path, &c) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "limit"), "too big: %s",
          attn_last_error());
    CHECK(attn_hf_config_read(NULL, &c) == ATTN_ERR_NULL, "NULL path");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    test_models();
    test_fields();
    test_errors();
    test_files();
    return test_summary("test_hfconfig");
}
