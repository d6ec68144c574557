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

#include "hf_test.h"

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

static attn_status parse(const char *s, attn_mha_config *c) { return hf_parse(s, strlen(s), c); }

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
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4}", &c) == ATTN_OK, "minimal: %s", attn_last_error());
    CHECK(c.num_kv_heads == 4 && c.head_dim == 16 && c.rope_theta == 10000.0f && !c.bias_q && c.causal &&
          c.rope == ATTN_ROPE_NEOX && c.window_left == -1, "defaults");
    CHECK(parse("{\"model_type\": \"mistral\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": null, \"head_dim\": null,"
                " \"rope_scaling\": null, \"sliding_window\": null}", &c) == ATTN_OK && c.num_kv_heads == 4 &&
          c.head_dim == 16 && c.window_left == -1, "nulls are defaults");
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"attention_bias\": true}", &c) == ATTN_OK &&
          c.bias_q && c.bias_k && c.bias_v && c.bias_o, "attention_bias true");
    CHECK(parse("{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"attention_bias\": true}",
                &c) == ATTN_OK && c.bias_q && !c.bias_o, "qwen2 ignores attention_bias for o_proj");
    CHECK(parse("{\"model_type\": \"qwen3\", \"hidden_size\": 64, \"num_attention_heads\": 4}", &c) == ATTN_OK &&
          c.qk_norm && c.qk_norm_eps == 1e-6f, "qwen3 default eps");
    CHECK(parse("{\"model_type\": \"qwen3_moe\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"rms_norm_eps\": 1e-5}",
                &c) == ATTN_OK && c.qk_norm && c.qk_norm_eps == 1e-5f, "qwen3_moe eps");
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"rms_norm_eps\": 1e-5}", &c) == ATTN_OK && !c.qk_norm,
          "rms_norm_eps alone does not enable qk-norm");
    CHECK(parse("{\"model_type\": \"stablelm\", \"hidden_size\": 2560, \"num_attention_heads\": 32, \"partial_rotary_factor\": 0.4}", &c) == ATTN_OK &&
          c.head_dim == 80 && c.rope_dim == 32, "partial rotary (phi-2): %lld", (long long)c.rope_dim);
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"head_dim\": 32}", &c) == ATTN_OK && c.head_dim == 32,
          "explicit head_dim");
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 60, \"num_attention_heads\": 8, \"head_dim\": 8}", &c) == ATTN_OK && c.head_dim == 8,
          "head_dim given: no divisibility needed");
#define QW "\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_attention_heads\": 4"
    {
        attn_hf_opts o;
        attn_hf_opts_init(&o);
        o.layer = 3;
        const char *j = "{" QW ", \"use_sliding_window\": true, \"sliding_window\": 128, \"max_window_layers\": 2}";
        CHECK(hf_parse_ex(j, strlen(j), &o, &c, NULL) == ATTN_OK && c.window_left == 127,
              "qwen2 layer >= max_window_layers slides: %s", attn_last_error());
        o.layer = 1;
        CHECK(hf_parse_ex(j, strlen(j), &o, &c, NULL) == ATTN_OK && c.window_left == -1,
              "qwen2 layer < max_window_layers: full attention");
    }
    CHECK(parse("{" QW ", \"use_sliding_window\": false, \"sliding_window\": 128}", &c) == ATTN_OK &&
          c.window_left == -1, "use_sliding_window false");
    CHECK(parse("{" QW ", \"use_sliding_window\": true, \"sliding_window\": null}", &c) == ATTN_OK &&
          c.window_left == -1, "use_sliding_window without a size");
    CHECK(parse("{\"model_type\": \"mistral\", \"hidden_size\": 64, \"num_attention_heads\": 4}", &c) == ATTN_OK &&
          c.window_left == 4095 && c.num_kv_heads == 8, "mistral class defaults: window 4096, 8 kv heads");
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"attention_dropout\": 0.1}", &c) == ATTN_OK &&
          c.dropout == 0.1f, "dropout");
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}",
                &c) == ATTN_OK && c.rope_scaling == ATTN_ROPE_SCALING_LINEAR && c.rope_factor == 2.0f, "linear (old 'type')");
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"default\"}}", &c) ==
              ATTN_OK && c.rope_scaling == ATTN_ROPE_SCALING_NONE, "default rope_type");
    CHECK(parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_parameters\": {\"rope_type\": \"linear\","
                " \"factor\": 4.0, \"rope_theta\": 5e5}}", &c) == ATTN_OK &&
          c.rope_scaling == ATTN_ROPE_SCALING_LINEAR && c.rope_factor == 4.0f && c.rope_theta == 5e5f,
          "transformers-5 rope_parameters: %s", attn_last_error());
    CHECK(parse("{\"text_config\": {\"model_type\": \"qwen3\", \"hidden_size\": 64, \"num_attention_heads\": 4},"
                " \"model_type\": \"wrapper\"}", &c) == ATTN_OK && c.embed_dim == 64 && c.qk_norm,
          "text_config: %s", attn_last_error());
    {
        const char *j = "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"unknown\": "
                        "{\"deep\": [1, 2, {\"x\": null}]}, \"hidden_size_extra\": \"x\"}";
        CHECK(parse(j, &c) == ATTN_ERR_UNSUPPORTED && strstr(attn_last_error(), "key 'unknown' = a object of 1 is not known for llama"),
              "unknown keys refused: %s", attn_last_error());
        attn_hf_opts o;
        attn_hf_opts_init(&o);
        o.allow_unknown_keys = 1;
        CHECK(hf_parse_ex(j, strlen(j), &o, &c, NULL) == ATTN_OK && c.embed_dim == 64,
              "allow_unknown_keys ignores them: %s", attn_last_error());
    }
}

static void expect(const char *what, const char *json, attn_status want, const char *msg) {
    attn_mha_config c;
    memset(&c, 0x5a, sizeof c);
    c.struct_size = sizeof c; /* the only field parse reads; the rest must be overwritten */
    attn_mha_config before = c;
    attn_status s = attn_hf_config_parse(json, strlen(json), &c); /* not hf_parse: keep the 0x5a fill */
    CHECK(s == want, "%s: status %d (%s), expected %d", what, (int)s, attn_last_error(), (int)want);
    if (msg) CHECK(strstr(attn_last_error(), msg) != NULL, "%s: message '%s' lacks '%s'", what, attn_last_error(), msg);
    if (s != ATTN_OK) CHECK(memcmp(&c, &before, sizeof c) == 0, "%s: output written on error", what);
}

#define SL "\"model_type\": \"stablelm\", \"hidden_size\": 64, \"num_attention_heads\": 4"
#define MI "\"model_type\": \"mistral\", \"hidden_size\": 64, \"num_attention_heads\": 4"
#define HN "\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4"
static void test_errors(void) {
    expect("invalid JSON", "{\"model_type\": \"llama\", \"hidden_size\": 64,}", ATTN_ERR_FORMAT, "invalid JSON");
    expect("invalid JSON offset", "{\"a\" 1}", ATTN_ERR_FORMAT, "at byte 5");
    expect("not an object", "[1, 2]", ATTN_ERR_FORMAT, "top level is a JSON array");
    expect("empty", "", ATTN_ERR_FORMAT, "empty");
    expect("missing hidden_size", "{\"model_type\": \"llama\", \"num_attention_heads\": 4}", ATTN_ERR_NOT_FOUND, "'hidden_size'");
    expect("missing heads", "{\"model_type\": \"llama\", \"hidden_size\": 64}", ATTN_ERR_NOT_FOUND, "'num_attention_heads'");
    expect("hidden_size string", "{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"num_attention_heads\": 4}", ATTN_ERR_FORMAT,
           "'hidden_size' must be an integer, got a string");
    expect("hidden_size float", "{\"model_type\": \"llama\", \"hidden_size\": 64.5, \"num_attention_heads\": 4}", ATTN_ERR_FORMAT,
           "'hidden_size' must be an integer, got 64.5");
    expect("hidden_size 1e3", "{\"model_type\": \"llama\", \"hidden_size\": 1e3, \"num_attention_heads\": 4}", ATTN_ERR_FORMAT, "'hidden_size'");
    expect("hidden_size huge", "{\"model_type\": \"llama\", \"hidden_size\": 99999999999999999999, \"num_attention_heads\": 4}", ATTN_ERR_FORMAT,
           "'hidden_size'");
    expect("hidden_size 0", "{\"model_type\": \"llama\", \"hidden_size\": 0, \"num_attention_heads\": 4}", ATTN_ERR_CONFIG, "'hidden_size' = 0");
    expect("negative heads", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": -4}", ATTN_ERR_CONFIG, "'num_attention_heads' = -4");
    expect("kv heads bool", "{" HN ", \"num_key_value_heads\": true}", ATTN_ERR_FORMAT, "'num_key_value_heads' must be an integer, got a boolean");
    expect("not divisible", "{\"model_type\": \"llama\", \"hidden_size\": 65, \"num_attention_heads\": 4}", ATTN_ERR_CONFIG, "not divisible");
    expect("duplicate key", "{" HN ", \"hidden_size\": 128}", ATTN_ERR_FORMAT, "duplicate key 'hidden_size'");
    expect("duplicate unknown key", "{" HN ", \"x\": 1, \"x\": 2}", ATTN_ERR_FORMAT, "duplicate key 'x'");
    expect("rope_theta string", "{" HN ", \"rope_theta\": \"1e4\"}", ATTN_ERR_FORMAT, "'rope_theta' must be a number");
    expect("rope_theta negative", "{" HN ", \"rope_theta\": -1}", ATTN_ERR_CONFIG, "'rope_theta'");
    expect("rope_theta inf", "{" HN ", \"rope_theta\": 1e999}", ATTN_ERR_CONFIG, "'rope_theta'");
    expect("attention_bias int", "{" HN ", \"attention_bias\": 1}", ATTN_ERR_FORMAT, "'attention_bias' must be true or false");
    expect("model_type int", "{\"hidden_size\": 64, \"num_attention_heads\": 4, \"model_type\": 3}", ATTN_ERR_FORMAT, "'model_type' must be a string");
    expect("rope_scaling string", "{" HN ", \"rope_scaling\": \"linear\"}", ATTN_ERR_FORMAT, "'rope_scaling' must be an object");
    expect("yarn without its original length", "{" HN ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}",
           ATTN_ERR_NOT_FOUND, "rope type yarn needs 'original_max_position_embeddings'");
    expect("dynamic without max_position_embeddings", "{" HN ", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}",
           ATTN_ERR_NOT_FOUND, "rope type dynamic needs 'max_position_embeddings'");
    expect("longrope without long_factor", "{" HN ", \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1]}}",
           ATTN_ERR_NOT_FOUND, "'rope_scaling.long_factor' is missing");
    expect("longrope factors of the wrong length", "{" HN ", \"original_max_position_embeddings\": 4, \"max_position_embeddings\": 8,"
           " \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1, 2], \"long_factor\": [1, 2]}}",
           ATTN_ERR_UNSUPPORTED, "key 'original_max_position_embeddings' = 4 is not known for llama");
    expect("longrope factor 0", "{" HN ", \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1, 0], \"long_factor\": [1]}}",
           ATTN_ERR_CONFIG, "'rope_scaling.short_factor[1]' = 0, must be > 0");
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
    expect("partial_rotary_factor 0", "{" SL ", \"partial_rotary_factor\": 0}", ATTN_ERR_CONFIG, "'partial_rotary_factor'");
    expect("partial_rotary_factor tiny", "{" SL ", \"partial_rotary_factor\": 0.01}", ATTN_ERR_CONFIG, "no rotated dimension");
    expect("rope_theta below float range", "{" HN ", \"rope_theta\": 1e-50}", ATTN_ERR_CONFIG, "'rope_theta'");
    expect("dropout rounds to 1 as a float", "{" HN ", \"attention_dropout\": 0.99999999999}", ATTN_ERR_CONFIG,
           "'attention_dropout'");
    expect("partial_rotary_factor 2", "{" SL ", \"partial_rotary_factor\": 2}", ATTN_ERR_CONFIG, "'partial_rotary_factor'");
    expect("sliding_window 0", "{" MI ", \"sliding_window\": 0}", ATTN_ERR_CONFIG, "'sliding_window' = 0");
    expect("sliding_window string", "{" MI ", \"sliding_window\": \"4096\"}", ATTN_ERR_FORMAT, "'sliding_window'");
    expect("use_sliding_window string", "{" QW ", \"use_sliding_window\": \"yes\"}", ATTN_ERR_FORMAT, "'use_sliding_window'");
    expect("dropout 1", "{" HN ", \"attention_dropout\": 1.0}", ATTN_ERR_CONFIG, "'attention_dropout' = 1");
    expect("rms_norm_eps 0", "{" HN ", \"rms_norm_eps\": 0}", ATTN_ERR_CONFIG, "'rms_norm_eps'");
    expect("rms_norm_eps string", "{" HN ", \"rms_norm_eps\": \"x\"}", ATTN_ERR_FORMAT, "'rms_norm_eps'");
    expect("text_config missing keys", "{\"text_config\": {\"model_type\": \"llama\"}}", ATTN_ERR_NOT_FOUND, "'text_config.hidden_size'");
    attn_mha_config c;
    attn_mha_config_init(&c);
    /* every strict prefix of a real config is invalid JSON */
    size_t full = strlen(QWEN3);
    int bad = 0;
    for (size_t n = 0; n < full; n++) bad += hf_parse(QWEN3, n, &c) != ATTN_ERR_FORMAT;
    CHECK(bad == 0, "%d truncated configs not rejected as ATTN_ERR_FORMAT", bad);
    CHECK(hf_parse(NULL, 3, &c) == ATTN_ERR_NULL, "NULL json");
    CHECK(hf_parse("{}", 2, NULL) == ATTN_ERR_NULL, "NULL out");
    CHECK(hf_parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4}xyz", 68, &c) == ATTN_OK,
          "len bounds the text");
}

static attn_status parse_layer(const char *s, int64_t layer, attn_mha_config *c, attn_hf_info *info) {
    attn_hf_opts o;
    attn_hf_opts_init(&o);
    o.layer = layer;
    return hf_parse_ex(s, strlen(s), &o, c, info);
}

/* Gemma 2 as transformers 5 writes it (layer_types, rope_parameters) */
static const char *GEMMA2 =
    "{\"architectures\": [\"Gemma2ForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"attn_logit_softcapping\": 50.0, \"dtype\": \"float32\", \"final_logit_softcapping\": 30.0, \"head_dim\": 16,"
    " \"hidden_activation\": \"gelu_pytorch_tanh\", \"hidden_size\": 64, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 32, \"layer_types\": [\"sliding_attention\", \"full_attention\"],"
    " \"max_position_embeddings\": 256, \"model_type\": \"gemma2\", \"num_attention_heads\": 4,"
    " \"num_hidden_layers\": 2, \"num_key_value_heads\": 2, \"pad_token_id\": 0, \"query_pre_attn_scalar\": 24,"
    " \"rms_norm_eps\": 1e-06, \"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\"},"
    " \"sliding_window\": 8, \"use_cache\": true, \"vocab_size\": 16}";

/* Gemma 3 (text) as transformers 4 writes it: rope_local_base_freq, sliding_window_pattern */
static const char *GEMMA3_V4 =
    "{\"model_type\": \"gemma3_text\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 1,"
    " \"head_dim\": 16, \"num_hidden_layers\": 6, \"query_pre_attn_scalar\": 16, \"rope_theta\": 1000000.0,"
    " \"rope_local_base_freq\": 10000.0, \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 8.0},"
    " \"sliding_window\": 512, \"sliding_window_pattern\": 6, \"rms_norm_eps\": 1e-06,"
    " \"attn_logit_softcapping\": null, \"final_logit_softcapping\": null}";

/* Gemma 3 as transformers 5 writes it: rope parameters per layer type, wrapped in text_config */
static const char *GEMMA3_V5 =
    "{\"model_type\": \"gemma3\", \"mm_tokens_per_image\": 256, \"vision_config\": {\"hidden_size\": 8},"
    " \"text_config\": {\"model_type\": \"gemma3_text\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 1, \"head_dim\": 16, \"num_hidden_layers\": 2, \"query_pre_attn_scalar\": 16,"
    " \"layer_types\": [\"sliding_attention\", \"full_attention\"], \"sliding_window\": 512,"
    " \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"linear\", \"factor\": 8.0, \"rope_theta\": 1000000.0},"
    " \"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}}, \"rms_norm_eps\": 1e-06}}";

/* StableLM as transformers 5 writes it: partial_rotary_factor inside rope_parameters */
static const char *STABLELM_V5 =
    "{\"model_type\": \"stablelm\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 4,"
    " \"num_hidden_layers\": 2, \"use_qkv_bias\": true, \"qk_layernorm\": false, \"use_parallel_residual\": false,"
    " \"layer_norm_eps\": 1e-05, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000,"
    " \"partial_rotary_factor\": 0.25}}";

static void test_archs(void) {
    attn_mha_config c;
    attn_hf_info info;
    /* Gemma 2: scale = query_pre_attn_scalar^-1/2, softcap, sliding layer 0, full layer 1 */
    CHECK(parse_layer(GEMMA2, 0, &c, &info) == ATTN_OK, "gemma2 layer 0: %s", attn_last_error());
    CHECK(c.scale == (float)(1.0 / sqrt(24.0)) && c.softcap == 50.0f && c.window_left == 7 && info.sliding,
          "gemma2 layer 0: scale %g softcap %g window %lld", (double)c.scale, (double)c.softcap, (long long)c.window_left);
    CHECK(!strcmp(info.model_type, "gemma2") && !strcmp(info.prefix, "model.layers.0.self_attn") &&
          info.num_layers == 2 && info.naming == ATTN_NAMING_HF, "gemma2 info");
    CHECK(parse_layer(GEMMA2, 1, &c, &info) == ATTN_OK && c.window_left == -1 && !info.sliding &&
          !strcmp(info.prefix, "model.layers.1.self_attn") && c.softcap == 50.0f, "gemma2 layer 1: full attention");
    CHECK(parse(GEMMA2, &c) == ATTN_ERR_CONFIG && strstr(attn_last_error(), "layers differ") &&
          strstr(attn_last_error(), "layer 0: window 8") && strstr(attn_last_error(), "layer 1: full attention"),
          "gemma2 without a layer is refused: %s", attn_last_error());
    CHECK(parse_layer(GEMMA2, 2, &c, NULL) == ATTN_ERR_OPTION && strstr(attn_last_error(), "layer 2 does not exist"),
          "gemma2 layer 2: %s", attn_last_error());
    /* Gemma 2 defaults: alternate layers without layer_types */
    {
        const char *j = "{\"model_type\": \"gemma2\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 4}";
        CHECK(parse_layer(j, 2, &c, NULL) == ATTN_OK && c.window_left == 4095 && c.head_dim == 256 &&
              c.num_kv_heads == 4 && c.scale == 1.0f / 16.0f && c.softcap == 50.0f, "gemma2 class defaults: %s",
              attn_last_error());
        CHECK(parse_layer(j, 3, &c, NULL) == ATTN_OK && c.window_left == -1, "gemma2 odd layers are full");
    }
    /* Gemma 3, transformers 4: sliding layers use rope_local_base_freq and no scaling */
    CHECK(parse_layer(GEMMA3_V4, 0, &c, &info) == ATTN_OK, "gemma3 v4: %s", attn_last_error());
    CHECK(c.window_left == 511 && c.rope_theta == 10000.0f && c.rope_scaling == ATTN_ROPE_SCALING_NONE &&
          c.qk_norm && c.qk_norm_offset == 1.0f && c.softcap == 0.0f && c.scale == 0.25f, "gemma3 v4 sliding layer");
    CHECK(parse_layer(GEMMA3_V4, 5, &c, &info) == ATTN_OK && c.window_left == -1 && c.rope_theta == 1e6f &&
          c.rope_scaling == ATTN_ROPE_SCALING_LINEAR && c.rope_factor == 8.0f, "gemma3 v4 layer 5 is global");
    /* Gemma 3, transformers 5 (nested rope parameters, text_config) */
    CHECK(parse_layer(GEMMA3_V5, 0, &c, &info) == ATTN_OK, "gemma3 v5: %s", attn_last_error());
    CHECK(c.window_left == 511 && c.rope_theta == 10000.0f && c.rope_scaling == ATTN_ROPE_SCALING_NONE && c.qk_norm &&
          !strcmp(info.model_type, "gemma3_text"), "gemma3 v5 sliding layer");
    CHECK(parse_layer(GEMMA3_V5, 1, &c, &info) == ATTN_OK && c.window_left == -1 && c.rope_theta == 1e6f &&
          c.rope_scaling == ATTN_ROPE_SCALING_LINEAR && c.rope_factor == 8.0f, "gemma3 v5 full layer");
    {
        attn_mha *m = NULL;
        CHECK(attn_mha_create(&m, &c) == ATTN_OK, "gemma3 layer: %s", attn_last_error());
        attn_param p;
        CHECK(m && attn_mha_find_param(m, "q_norm.weight", &p) == ATTN_OK && p.data[0] == 0.0f,
              "gemma3 q_norm starts at w = 0 (effective weight 1)");
        attn_mha_free(m);
    }
    /* StableLM 5: partial_rotary_factor inside rope_parameters */
    CHECK(parse(STABLELM_V5, &c) == ATTN_OK && c.head_dim == 16 && c.rope_dim == 4 && c.bias_q && c.bias_v && !c.bias_o,
          "stablelm v5 partial rotary: rope_dim %lld: %s", (long long)c.rope_dim, attn_last_error());
    CHECK(parse("{\"model_type\": \"stablelm\", \"hidden_size\": 64, \"num_attention_heads\": 4}", &c) == ATTN_OK &&
          c.rope_dim == 4 && c.num_kv_heads == 32 && !c.bias_q, "stablelm class defaults (partial 0.25)");
    /* Qwen2 with layer_types (transformers 5) */
    {
        const char *j = "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 2,"
                        " \"use_sliding_window\": true, \"sliding_window\": 16, \"max_window_layers\": 0,"
                        " \"layer_types\": [\"full_attention\", \"sliding_attention\"]}";
        CHECK(parse_layer(j, 0, &c, NULL) == ATTN_OK && c.window_left == -1, "qwen2 layer_types[0] full");
        CHECK(parse_layer(j, 1, &c, NULL) == ATTN_OK && c.window_left == 15, "qwen2 layer_types[1] sliding");
        CHECK(parse(j, &c) == ATTN_ERR_CONFIG && strstr(attn_last_error(), "layers differ"), "qwen2 mixed layers refused");
        const char *k = "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                        " \"use_sliding_window\": true, \"sliding_window\": 16}";
        CHECK(parse(k, &c) == ATTN_ERR_CONFIG && strstr(attn_last_error(), "'num_hidden_layers' is missing"),
              "qwen2 without layer count: %s", attn_last_error());
    }
    /* every layer alike (no layer chosen), without layer_types: decided in O(1) from the rules */
    {
        const char *q = "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                        " \"num_hidden_layers\": %s, \"use_sliding_window\": true, \"sliding_window\": 16,"
                        " \"max_window_layers\": %s}";
        char j[512];
        snprintf(j, sizeof j, q, "4", "2");
        CHECK(parse(j, &c) == ATTN_ERR_CONFIG && strstr(attn_last_error(), "layer 2: window 16"),
              "qwen2 layers 2, 3 slide: %s", attn_last_error());
        snprintf(j, sizeof j, q, "4", "4");
        CHECK(parse(j, &c) == ATTN_OK && c.window_left == -1, "qwen2 max_window_layers = layers: all full");
        snprintf(j, sizeof j, q, "9000000000000000000", "0");
        CHECK(parse(j, &c) == ATTN_OK && c.window_left == 15, "qwen2 max_window_layers 0: all slide (and no loop over 9e18 layers)");
        snprintf(j, sizeof j, q, "9000000000000000000", "8000000000000000000");
        CHECK(parse(j, &c) == ATTN_ERR_CONFIG, "qwen2: layer 8e18 slides");
        const char *g = "{\"model_type\": \"gemma2\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 1}";
        CHECK(parse(g, &c) == ATTN_OK && c.window_left == 4095, "gemma2 with one layer: %s", attn_last_error());
        g = "{\"model_type\": \"gemma2\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 2}";
        CHECK(parse(g, &c) == ATTN_ERR_CONFIG && strstr(attn_last_error(), "layer 1: full attention"), "gemma2 two layers");
        g = "{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_head\": 4, \"n_layer\": 3, \"scale_attn_by_inverse_layer_idx\": true}";
        CHECK(parse(g, &c) == ATTN_ERR_CONFIG && strstr(attn_last_error(), "layers differ"), "gpt2 inverse layer scale");
        CHECK(parse_layer(g, 2, &c, NULL) == ATTN_OK && c.scale == (float)(1.0 / sqrt(16.0) / 3.0) && c.rope == ATTN_ROPE_NONE,
              "gpt2 layer 2 scale 1/(sqrt(D) * 3)");
    }
    /* a transformers-5 file with both spellings: they must agree */
    CHECK(parse("{" HN ", \"rope_theta\": 5e5, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 5e5}}", &c) ==
              ATTN_OK && c.rope_theta == 5e5f, "both spellings agree");
    expect("rope spellings disagree", "{" HN ", \"rope_theta\": 1e4, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 5e5}}",
           ATTN_ERR_CONFIG, "disagree");
    /* overrides */
    {
        const char *j = "{\"model_type\": \"my_llama\", \"hidden_size\": 64, \"num_attention_heads\": 4}";
        expect("unknown model_type", j, ATTN_ERR_UNSUPPORTED,
               "'model_type' = 'my_llama' is not supported (supported: llama, mistral");
        attn_hf_opts o;
        attn_hf_opts_init(&o);
        o.model_type = "llama";
        CHECK(hf_parse_ex(j, strlen(j), &o, &c, &info) == ATTN_OK && !strcmp(info.model_type, "llama"),
              "model_type override: %s", attn_last_error());
        o.model_type = "gpt5";
        CHECK(hf_parse_ex(j, strlen(j), &o, &c, NULL) == ATTN_ERR_UNSUPPORTED &&
              strstr(attn_last_error(), "override 'gpt5' is not supported"), "bad override");
        expect("no model_type", "{\"hidden_size\": 64, \"num_attention_heads\": 4}", ATTN_ERR_UNSUPPORTED,
               "no 'model_type', so the architecture is unknown (supported: llama");
        o.model_type = NULL;
        o.layer = -2;
        const char *l = "{" HN "}";
        CHECK(hf_parse_ex(l, strlen(l), &o, &c, NULL) == ATTN_ERR_OPTION, "layer -2");
    }
}

/* One negative test per refused key or value: the one-line message names the
 * key, the value and what is supported. */
static void test_refusals(void) {
#define G2 "\"model_type\": \"gemma2\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 1"
#define G3 "\"model_type\": \"gemma3_text\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 1"
    static const struct { const char *what, *json, *msg; } R[] = {
        {"stablelm qk_layernorm", "{" SL ", \"qk_layernorm\": true}",
         "'qk_layernorm' = true is not supported for stablelm (supported: false)"},
        {"mistral attention_bias", "{" MI ", \"attention_bias\": true}",
         "'attention_bias' = true is not supported for mistral (supported: false)"},
        {"gemma3 bidirectional", "{" G3 ", \"use_bidirectional_attention\": true}",
         "'use_bidirectional_attention' = true is not supported for gemma3_text (supported: false)"},
        {"pruned heads", "{" HN ", \"pruned_heads\": {\"0\": [1]}}",
         "'pruned_heads' = a object of 1 is not supported for llama (supported: {})"},
        {"quantized", "{" HN ", \"quantization_config\": {\"bits\": 4}}",
         "'quantization_config' = a object of 1 is not supported for llama (supported: null or absent)"},
        {"layer type", "{" G2 ", \"layer_types\": [\"chunked_attention\"]}",
         "'layer_types[0]' = 'chunked_attention' is not supported (supported: full_attention, sliding_attention)"},
        {"rope mrope", "{" HN ", \"rope_scaling\": {\"rope_type\": \"mrope\", \"mrope_section\": [1]}}",
         "key 'rope_scaling.mrope_section' is not known in a rope object"},
        {"rope type unknown", "{" HN ", \"rope_parameters\": {\"rope_type\": \"proportional\", \"factor\": 4.0}}",
         "'rope_parameters.rope_type' = 'proportional': rope scaling type 'proportional' is not supported (supported: "
         "default, linear, llama3, dynamic, yarn, longrope)"},
        {"rope unknown key", "{" HN ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2, \"foo_factor\": 1}}",
         "key 'rope_scaling.foo_factor' is not known in a rope object"},
        {"rope layer type", "{" G3 ", \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\"},"
                            " \"chunked_attention\": {\"rope_type\": \"default\"}}}",
         "'chunked_attention' is not a layer type attn knows"},
        {"partial rotary in llama", "{" HN ", \"rope_parameters\": {\"rope_type\": \"default\", \"partial_rotary_factor\": 0.5}}",
         "'rope_parameters.partial_rotary_factor' = 0.5 is not supported for llama (supported: 1)"},
        {"unknown key", "{" HN ", \"attention_multiplier\": 0.5}",
         "key 'attention_multiplier' = 0.5 is not known for llama"},
        {"sliding window in llama", "{" HN ", \"sliding_window\": 16}", "key 'sliding_window' = 16 is not known for llama"},
        {"softcap in llama", "{" HN ", \"attn_logit_softcapping\": 30}", "key 'attn_logit_softcapping' = 30 is not known for llama"},
        {"gemma bidirectional", "{\"model_type\": \"gemma\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                                " \"use_bidirectional_attention\": true}",
         "'use_bidirectional_attention' = true is not supported for gemma (supported: false)"},
        {"unknown model", "{\"model_type\": \"falcon\", \"hidden_size\": 64, \"num_attention_heads\": 4}",
         "'model_type' = 'falcon' is not supported (supported: llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, "
         "qwen3_moe, gemma, gemma2, gemma3_text (gemma3), stablelm, phi3, phi, gpt_neox, gpt2, bert, roberta; "
         "attn_hf_opts.model_type / --model-type"},
    };
    for (size_t i = 0; i < sizeof R / sizeof R[0]; i++) {
        expect(R[i].what, R[i].json, ATTN_ERR_UNSUPPORTED, R[i].msg);
        CHECK(strchr(attn_last_error(), '\n') == NULL, "%s: the message is one line", R[i].what);
    }
    attn_mha_config c;
    CHECK(parse("{\"model_type\": \"qwen2_moe\", \"hidden_size\": 64, \"num_attention_heads\": 4}", &c) == ATTN_OK &&
              c.bias_q && c.bias_v && !c.bias_o, "qwen2_moe: qkv_bias defaults to true");
    CHECK(parse("{\"model_type\": \"qwen2_moe\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"qkv_bias\": false}", &c) ==
              ATTN_OK && !c.bias_q && !c.bias_k && !c.bias_v && !c.bias_o, "qwen2_moe qkv_bias false");
    /* the harmless value of each refused key is accepted */
    CHECK(parse("{" SL ", \"qk_layernorm\": false}", &c) == ATTN_OK, "qk_layernorm false");
    CHECK(parse("{" MI ", \"attention_bias\": false}", &c) == ATTN_OK, "mistral attention_bias false");
    CHECK(parse("{" G3 ", \"use_bidirectional_attention\": false}", &c) == ATTN_OK, "gemma3 causal");
    CHECK(parse("{" HN ", \"pruned_heads\": {}, \"quantization_config\": null}", &c) == ATTN_OK, "empty pruned_heads");
}

/* the appended rope types, transformers 4 (rope_scaling + "type") and 5 (rope_parameters) spellings alike */
static void test_rope_types(void) {
    attn_mha_config a, b;
    const char *dyn4 = "{" HN ", \"max_position_embeddings\": 64, \"rope_theta\": 5e5,"
                       " \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}";
    const char *dyn5 = "{" HN ", \"max_position_embeddings\": 64,"
                       " \"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 2.0, \"rope_theta\": 5e5}}";
    CHECK(parse(dyn4, &a) == ATTN_OK && parse(dyn5, &b) == ATTN_OK, "dynamic: %s", attn_last_error());
    CHECK(a.rope_scaling == ATTN_ROPE_SCALING_DYNAMIC && a.rope_factor == 2.0f && a.rope_max_pos == 64 &&
          a.rope_theta == 5e5f && memcmp(&a, &b, sizeof a) == 0, "dynamic fields, both formats alike");
    const char *yarn4 = "{" HN ", \"max_position_embeddings\": 128, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0,"
                        " \"original_max_position_embeddings\": 32, \"beta_fast\": 16, \"beta_slow\": 2, \"mscale\": 0.5,"
                        " \"mscale_all_dim\": 0.25, \"truncate\": false}}";
    const char *yarn5 = "{" HN ", \"max_position_embeddings\": 128, \"rope_parameters\": {\"rope_type\": \"yarn\","
                        " \"factor\": 4.0, \"original_max_position_embeddings\": 32, \"beta_fast\": 16, \"beta_slow\": 2,"
                        " \"mscale\": 0.5, \"mscale_all_dim\": 0.25, \"truncate\": false, \"rope_theta\": 10000}}";
    CHECK(parse(yarn4, &a) == ATTN_OK && parse(yarn5, &b) == ATTN_OK, "yarn: %s", attn_last_error());
    CHECK(a.rope_scaling == ATTN_ROPE_SCALING_YARN && a.rope_factor == 4.0f && a.rope_original_max_pos == 32 &&
          a.rope_beta_fast == 16.0f && a.rope_beta_slow == 2.0f && a.rope_mscale == 0.5f &&
          a.rope_mscale_all_dim == 0.25f && a.rope_no_truncate == 1 && memcmp(&a, &b, sizeof a) == 0,
          "yarn fields, both formats alike");
    CHECK(parse("{" HN ", \"max_position_embeddings\": 128, \"rope_scaling\": {\"type\": \"yarn\","
                " \"original_max_position_embeddings\": 32}}", &a) == ATTN_OK && a.rope_factor == 4.0f,
          "yarn without a factor: max_position_embeddings / original = 4");
    /* Phi-3 4.x: longrope with a top-level original_max_position_embeddings */
    const char *lr4 = "{\"model_type\": \"phi3\", \"hidden_size\": 32, \"num_attention_heads\": 4,"
                      " \"max_position_embeddings\": 64, \"original_max_position_embeddings\": 16,"
                      " \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1, 1.5, 2, 3],"
                      " \"long_factor\": [2, 3, 4, 5]}}";
    const char *lr5 = "{\"model_type\": \"phi3\", \"hidden_size\": 32, \"num_attention_heads\": 4,"
                      " \"max_position_embeddings\": 64, \"original_max_position_embeddings\": 16,"
                      " \"rope_parameters\": {\"rope_type\": \"longrope\", \"short_factor\": [1, 1.5, 2, 3],"
                      " \"long_factor\": [2, 3, 4, 5], \"original_max_position_embeddings\": 16,"
                      " \"rope_theta\": 10000.0, \"partial_rotary_factor\": 1.0}}";
    CHECK(parse(lr4, &a) == ATTN_OK && parse(lr5, &b) == ATTN_OK, "longrope: %s", attn_last_error());
    CHECK(a.rope_scaling == ATTN_ROPE_SCALING_LONGROPE && a.rope_factor == 4.0f && a.rope_original_max_pos == 16 &&
          a.rope_short_factor[1] == 1.5f && a.rope_long_factor[3] == 5.0f && memcmp(&a, &b, sizeof a) == 0,
          "longrope fields, both formats alike");
    expect("longrope factors of the wrong length",
           "{\"model_type\": \"phi3\", \"hidden_size\": 32, \"num_attention_heads\": 4, \"max_position_embeddings\": 64,"
           " \"original_max_position_embeddings\": 16, \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1],"
           " \"long_factor\": [2]}}", ATTN_ERR_CONFIG, "the rotary dimension 8 needs 4");
    attn_mha *m = NULL;
    CHECK(parse(lr4, &a) == ATTN_OK && attn_mha_create(&m, &a) == ATTN_OK, "longrope layer: %s", attn_last_error());
    attn_mha_free(m);
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
    CHECK(hf_read(path, &c) == ATTN_OK && c.qk_norm && c.head_dim == 128, "read file: %s", attn_last_error());
    CHECK(hf_read(dir, &c) == ATTN_OK && c.qk_norm, "read model directory: %s", attn_last_error());
    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK(hf_read(path, &c) == ATTN_ERR_IO && strstr(attn_last_error(), "missing.json"), "missing file: %s",
          attn_last_error());
    /* invalid file content names the path */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    f = fopen(path, "wb");
    fputs("{\"model_type\": \"llama\", \"hidden_size\": [}", f);
    fclose(f);
    CHECK(hf_read(path, &c) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "bad.json"), "bad file: %s",
          attn_last_error());
    /* a file over the 16 MiB limit */
    snprintf(path, sizeof path, "%s/big.json", dir);
    f = fopen(path, "wb");
    fputc('[', f);
    for (int i = 0; i < (16 << 20) / 2 + 8; i++) fputs("0,", f);
    fputs("0]", f);
    fclose(f);
    CHECK(hf_read(path, &c) == ATTN_ERR_FORMAT && strstr(attn_last_error(), "limit"), "too big: %s",
          attn_last_error());
    CHECK(hf_read(NULL, &c) == ATTN_ERR_NULL, "NULL path");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    test_models();
    test_fields();
    test_errors();
    test_archs();
    test_rope_types();
    test_refusals();
    test_files();
    return test_summary("test_hfconfig");
}
