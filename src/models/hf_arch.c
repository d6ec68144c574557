/* SPDX-License-Identifier: MIT */
/* hf_arch.c — the architecture table (see hf_arch.h). Defaults are those of
 * transformers' config classes (LlamaConfig, MistralConfig, ...) for a key
 * that config.json does not contain. */
#include "models/hf_arch.h"

#include "attn.h"

#include <stddef.h>
#include <string.h>

const char *const attn__hf_common_ignored[] = {
    /* bookkeeping */
    "architectures", "_name_or_path", "name_or_path", "transformers_version", "torch_dtype", "dtype",
    "use_bfloat16", "torchscript", "tf_legacy_loss", "return_dict", "output_attentions", "output_hidden_states",
    "_attn_implementation", "attn_implementation", "_attn_implementation_autoset", "gradient_checkpointing",
    "use_cache", "is_encoder_decoder", "tie_encoder_decoder", "add_cross_attention", "cross_attention_hidden_size",
    "chunk_size_feed_forward", "tokenizer_class", "prefix", "problem_type", "finetuning_task", "task_specific_params",
    "id2label", "label2id", "num_labels", "auto_map", "keys_to_ignore_at_inference", "custom_pipelines",
    /* token ids */
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    /* embeddings, MLP, output head, norms outside attention */
    "vocab_size", "tie_word_embeddings", "initializer_range", "intermediate_size", "hidden_act", "hidden_activation",
    "max_position_embeddings", "mlp_bias", "classifier_dropout",
    /* generation defaults (old configs) */
    "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty",
    "temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", NULL};

const char *const attn__hf_rope_keys[] = {"rope_type", "type", "rope_theta", "factor", "low_freq_factor",
                                          "high_freq_factor", "original_max_position_embeddings",
                                          "partial_rotary_factor", "attention_factor", "beta_fast", "beta_slow",
                                          "mscale", "mscale_all_dim", "truncate", "short_factor", "long_factor",
                                          NULL};

#define DECODER_SIZES "hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers"
#define ROPE_KEYS "rope_theta", "rope_scaling", "rope_parameters"

static const char *const llama_read[] = {DECODER_SIZES, "head_dim", ROPE_KEYS, "attention_bias", "attention_dropout",
                                         NULL};
static const char *const llama_ign[] = {"rms_norm_eps", "pretraining_tp", NULL};
static const char *const gemma_ign[] = {"rms_norm_eps", NULL};
static const char *const mistral_read[] = {DECODER_SIZES, "head_dim", ROPE_KEYS, "sliding_window",
                                           "attention_dropout", NULL};
static const char *const mixtral_ign[] = {"rms_norm_eps", "num_local_experts", "num_experts_per_tok",
                                          "output_router_logits", "router_aux_loss_coef", "router_jitter_noise",
                                          NULL};
static const char *const qwen2_read[] = {DECODER_SIZES, "head_dim", ROPE_KEYS, "use_sliding_window",
                                         "sliding_window", "max_window_layers", "layer_types", "attention_dropout",
                                         NULL};
static const char *const qwen2_ign[] = {"rms_norm_eps", "attention_bias", NULL};
#define MOE_IGN                                                                                                     \
    "decoder_sparse_step", "moe_intermediate_size", "shared_expert_intermediate_size", "num_experts_per_tok",      \
        "num_experts", "norm_topk_prob", "output_router_logits", "router_aux_loss_coef", "mlp_only_layers"
static const char *const qwen2_moe_read[] = {DECODER_SIZES, "head_dim", ROPE_KEYS, "use_sliding_window",
                                             "sliding_window", "max_window_layers", "layer_types",
                                             "attention_dropout", "qkv_bias", NULL};
static const char *const qwen2_moe_ign[] = {"rms_norm_eps", "attention_bias", MOE_IGN, NULL};
static const char *const qwen3_read[] = {DECODER_SIZES, "head_dim", ROPE_KEYS, "use_sliding_window",
                                         "sliding_window", "max_window_layers", "layer_types", "attention_bias",
                                         "rms_norm_eps", "attention_dropout", NULL};
static const char *const qwen3_moe_ign[] = {MOE_IGN, "num_local_experts", NULL};
static const char *const gemma2_read[] = {DECODER_SIZES, "head_dim", ROPE_KEYS, "attention_bias",
                                          "attention_dropout", "sliding_window", "layer_types",
                                          "query_pre_attn_scalar", "attn_logit_softcapping", NULL};
static const char *const gemma2_ign[] = {"rms_norm_eps", "final_logit_softcapping", "cache_implementation",
                                         "sliding_window_size", NULL}; /* the last: an old alias transformers never reads */
static const char *const gemma3_read[] = {DECODER_SIZES, "head_dim", ROPE_KEYS, "attention_bias",
                                          "attention_dropout", "sliding_window", "layer_types",
                                          "query_pre_attn_scalar", "attn_logit_softcapping", "rope_local_base_freq",
                                          "sliding_window_pattern", "_sliding_window_pattern", "rms_norm_eps", NULL};
static const char *const gemma3_ign[] = {"final_logit_softcapping", "cache_implementation", NULL};
static const char *const stablelm_read[] = {DECODER_SIZES, ROPE_KEYS, "partial_rotary_factor", "use_qkv_bias",
                                            "attention_dropout", NULL};
static const char *const stablelm_ign[] = {"use_parallel_residual", "hidden_dropout", "layer_norm_eps", NULL};

static const char *const phi3_read[] = {DECODER_SIZES, ROPE_KEYS, "partial_rotary_factor", "sliding_window",
                                        "attention_dropout", "original_max_position_embeddings", NULL};
static const char *const phi3_ign[] = {"rms_norm_eps", "resid_pdrop", "embd_pdrop", NULL};
static const char *const phi_read[] = {DECODER_SIZES, ROPE_KEYS, "partial_rotary_factor", "attention_dropout", NULL};
static const char *const phi_ign[] = {"resid_pdrop", "embd_pdrop", "layer_norm_eps", NULL};
static const char *const neox_read[] = {"hidden_size", "num_attention_heads", "num_hidden_layers", "rotary_emb_base",
                                        "rotary_pct", "rope_scaling", "rope_parameters", "attention_bias",
                                        "attention_dropout", NULL};
static const char *const neox_ign[] = {"hidden_dropout", "use_parallel_residual", "layer_norm_eps", "is_decoder",
                                       NULL};
static const char *const gpt2_read[] = {"n_embd", "n_head", "n_layer", "attn_pdrop", "scale_attn_weights",
                                        "scale_attn_by_inverse_layer_idx", NULL};
static const char *const gpt2_ign[] = {"n_positions", "n_ctx", "n_inner", "activation_function", "resid_pdrop",
                                       "embd_pdrop", "layer_norm_epsilon", "summary_type", "summary_use_proj",
                                       "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
                                       "reorder_and_upcast_attn", NULL};
static const char *const bert_read[] = {"hidden_size", "num_attention_heads", "num_hidden_layers",
                                        "attention_probs_dropout_prob", NULL};
static const char *const bert_ign[] = {"hidden_dropout_prob", "type_vocab_size", "layer_norm_eps", NULL};

static const hf_refusal phi_refused[] = {{"qk_layernorm", "false"}, {NULL, NULL}};
static const hf_refusal gemma2_refused[] = {{"use_bidirectional_attention", "false"}, {NULL, NULL}};
static const hf_refusal bert_refused[] = {{"position_embedding_type", "\"absolute\""}, {"is_decoder", "false"},
                                          {NULL, NULL}};
static const hf_refusal mistral_refused[] = {{"attention_bias", "false"}, {NULL, NULL}};
static const hf_refusal gemma3_refused[] = {{"use_bidirectional_attention", "false"}, {NULL, NULL}};
static const hf_refusal stablelm_refused[] = {{"qk_layernorm", "false"}, {NULL, NULL}};

/* every decoder: causal, NEOX rotary, sizes under the Llama names; HF_LAYERS: tensors under
   model.layers.N.self_attn (naming 0 = ATTN_NAMING_HF unless the entry says otherwise) */
#define DECODER(mt, nm)                                                                                          \
    .model_type = mt, .name = nm, .hidden_key = "hidden_size", .heads_key = "num_attention_heads",             \
    .layers_key = "num_hidden_layers", .dropout_key = "attention_dropout", .causal = 1, .rope = ATTN_ROPE_NEOX
#define HF_LAYERS .prefix = "model.layers.%lld.self_attn", .prefix2 = "layers.%lld.self_attn"

static const hf_arch ARCHS[] = {
    {DECODER("llama", "Llama"), HF_LAYERS, .default_theta = 10000.0, .read = llama_read, .ignored = llama_ign},
    {DECODER("mistral", "Mistral"), HF_LAYERS, .window = HF_WIN_EVERY_LAYER, .default_kv_heads = 8, .default_theta = 10000.0,
     .default_window = 4096, .read = mistral_read, .ignored = gemma_ign, .refused = mistral_refused},
    {DECODER("mixtral", "Mixtral"), HF_LAYERS, .window = HF_WIN_EVERY_LAYER, .default_kv_heads = 8, .default_theta = 1e6,
     .read = mistral_read, .ignored = mixtral_ign, .refused = mistral_refused},
    {DECODER("qwen2", "Qwen2"), HF_LAYERS, .bias = HF_BIAS_QKV, .window = HF_WIN_QWEN2, .default_kv_heads = 32,
     .default_theta = 10000.0, .default_window = 4096, .default_max_window_layers = 28, .read = qwen2_read,
     .ignored = qwen2_ign},
    {DECODER("qwen2_moe", "Qwen2-MoE"), HF_LAYERS, .bias = HF_BIAS_USE_QKV, .bias_key = "qkv_bias", .default_bias = 1,
     .window = HF_WIN_QWEN2, .default_kv_heads = 16, .default_theta = 10000.0, .default_window = 4096,
     .default_max_window_layers = 28, .read = qwen2_moe_read, .ignored = qwen2_moe_ign},
    {DECODER("qwen3", "Qwen3"), HF_LAYERS, .window = HF_WIN_QWEN2, .qk_norm = HF_QKN_RMS, .default_kv_heads = 32,
     .default_head_dim = 128, .default_theta = 10000.0, .default_window = 4096, .default_max_window_layers = 28,
     .read = qwen3_read},
    {DECODER("qwen3_moe", "Qwen3-MoE"), HF_LAYERS, .window = HF_WIN_QWEN2, .qk_norm = HF_QKN_RMS, .default_kv_heads = 4,
     .default_head_dim = 128, .default_theta = 10000.0, .default_window = 4096, .default_max_window_layers = 28,
     .read = qwen3_read, .ignored = qwen3_moe_ign},
    {DECODER("gemma", "Gemma"), HF_LAYERS, .default_kv_heads = 16, .default_head_dim = 256, .default_theta = 10000.0,
     .read = llama_read, .ignored = gemma_ign, .refused = gemma2_refused},
    {DECODER("gemma2", "Gemma 2"), HF_LAYERS, .window = HF_WIN_LAYER_TYPES, .gemma = 1, .default_kv_heads = 4,
     .default_head_dim = 256, .default_theta = 10000.0, .default_window = 4096, .default_pattern = 2,
     .default_query_scalar = 256.0, .default_softcap = 50.0, .read = gemma2_read, .ignored = gemma2_ign,
     .refused = gemma2_refused},
    {DECODER("gemma3_text", "Gemma 3"), HF_LAYERS, .window = HF_WIN_LAYER_TYPES, .qk_norm = HF_QKN_RMS_PLUS1, .gemma = 1,
     .local_rope = 1, .default_kv_heads = 4, .default_head_dim = 256, .default_theta = 1e6, .default_window = 4096,
     .default_pattern = 6, .default_query_scalar = 256.0, .default_local_theta = 10000.0, .read = gemma3_read,
     .ignored = gemma3_ign, .refused = gemma3_refused},
    {DECODER("stablelm", "StableLM"), HF_LAYERS, .bias = HF_BIAS_USE_QKV, .default_kv_heads = 32,
     .default_theta = 10000.0, .default_partial = 0.25, .read = stablelm_read, .ignored = stablelm_ign,
     .refused = stablelm_refused},
    {DECODER("phi3", "Phi-3"), HF_LAYERS, .naming = ATTN_NAMING_FUSED_QKV, .window = HF_WIN_EVERY_LAYER,
     .default_theta = 10000.0, .read = phi3_read, .ignored = phi3_ign},
    {DECODER("phi", "Phi"), HF_LAYERS, .naming = ATTN_NAMING_PHI, .bias = HF_BIAS_ALL, .default_theta = 10000.0,
     .default_partial = 0.5, .read = phi_read, .ignored = phi_ign, .refused = phi_refused},
    {DECODER("gpt_neox", "GPT-NeoX"), .naming = ATTN_NAMING_NEOX, .prefix = "gpt_neox.layers.%lld.attention",
     .prefix2 = "layers.%lld.attention", .default_theta = 10000.0, .default_partial = 0.25, .default_bias = 1,
     .theta_key = "rotary_emb_base", .partial_key = "rotary_pct", .read = neox_read, .ignored = neox_ign},
    {.model_type = "gpt2", .name = "GPT-2", .prefix = "transformer.h.%lld.attn", .prefix2 = "h.%lld.attn",
     .naming = ATTN_NAMING_GPT2, .hidden_key = "n_embd", .heads_key = "n_head", .layers_key = "n_layer",
     .dropout_key = "attn_pdrop", .causal = 1, .rope = ATTN_ROPE_NONE, .bias = HF_BIAS_ALL, .gpt2_scale = 1,
     .read = gpt2_read, .ignored = gpt2_ign},
    {.model_type = "bert", .name = "BERT", .prefix = "encoder.layer.%lld.attention",
     .prefix2 = "bert.encoder.layer.%lld.attention", .naming = ATTN_NAMING_BERT, .hidden_key = "hidden_size",
     .heads_key = "num_attention_heads", .layers_key = "num_hidden_layers",
     .dropout_key = "attention_probs_dropout_prob", .causal = 0, .rope = ATTN_ROPE_NONE, .bias = HF_BIAS_ALL,
     .read = bert_read, .ignored = bert_ign, .refused = bert_refused},
    {.model_type = "roberta", .name = "RoBERTa", .prefix = "encoder.layer.%lld.attention",
     .prefix2 = "roberta.encoder.layer.%lld.attention", .naming = ATTN_NAMING_BERT, .hidden_key = "hidden_size",
     .heads_key = "num_attention_heads", .layers_key = "num_hidden_layers",
     .dropout_key = "attention_probs_dropout_prob", .causal = 0, .rope = ATTN_ROPE_NONE, .bias = HF_BIAS_ALL,
     .read = bert_read, .ignored = bert_ign, .refused = bert_refused},
};

const hf_arch *attn__hf_arch_all(int *n) {
    *n = (int)(sizeof ARCHS / sizeof ARCHS[0]);
    return ARCHS;
}

const hf_arch *attn__hf_arch_find(const char *model_type) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(ARCHS[i].model_type, model_type) == 0) return &ARCHS[i];
    return NULL;
}

const char *attn__hf_arch_names(void) {
    static const char names[] = "llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2, "
                                "gemma3_text (gemma3), stablelm, phi3, phi, gpt_neox, gpt2, bert, roberta";
    return names;
}
