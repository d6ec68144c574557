/* SPDX-License-Identifier: MIT */
/* hf_arch.h — one table entry per HuggingFace architecture (model_type).
 *
 * An entry says, for the attention layer of that architecture:
 *   - which config.json keys hold the layer's sizes (hidden_size / n_embd ...);
 *     a key such as head_dim is read only when the entry's READ list has it;
 *   - the fixed facts transformers hard-wires (biases, causal, RoPE, qk-norm,
 *     Gemma's softcap and query scalar, which layers slide);
 *   - the class defaults transformers uses when a key is absent;
 *   - three key lists: keys READ (each one changes the layer and is
 *     implemented), keys IGNORED (they cannot change the attention output:
 *     MLP, embeddings, tokens, generation, bookkeeping), and keys REFUSED
 *     unless they hold the one value attn implements.
 * src/io/hfconfig.c reads config.json generically from the entry: a new
 * architecture is a new entry, not new control flow. A key in none of the
 * lists is refused (unless the caller allows unknown keys).
 * docs/hf.md lists the same tables for users. */
#ifndef ATTN_MODELS_HF_ARCH_H
#define ATTN_MODELS_HF_ARCH_H

#include <stdint.h>

typedef enum hf_bias_rule {
    HF_BIAS_ATTENTION_BIAS = 0, /* q, k, v, o all = attention_bias (default false) */
    HF_BIAS_QKV = 1,            /* q, k, v always, o never (Qwen2) */
    HF_BIAS_USE_QKV = 2,        /* q, k, v = bias_key (StableLM use_qkv_bias, Qwen2-MoE qkv_bias;
                                   absent: default_bias), o never */
    HF_BIAS_ALL = 3             /* q, k, v, o always (Phi, GPT-2, BERT) */
} hf_bias_rule;

typedef enum hf_window_rule {
    HF_WIN_NONE = 0,        /* no sliding window */
    HF_WIN_EVERY_LAYER = 1, /* sliding_window (integer) on every layer (Mistral) */
    HF_WIN_QWEN2 = 2,       /* use_sliding_window and sliding_window, on the layers that layer_types
                               marks "sliding_attention", else on layers >= max_window_layers */
    HF_WIN_LAYER_TYPES = 3  /* sliding_window on the layers layer_types marks "sliding_attention";
                               without layer_types every sliding_pattern-th layer is full (Gemma 2: 2,
                               Gemma 3: sliding_window_pattern, default 6) */
} hf_window_rule;

typedef enum hf_qk_norm_rule {
    HF_QKN_NONE = 0,
    HF_QKN_RMS = 1,       /* q_norm / k_norm RMSNorm with eps = rms_norm_eps (Qwen3) */
    HF_QKN_RMS_PLUS1 = 2  /* the same with weight (1 + w) (Gemma 3) */
} hf_qk_norm_rule;

/* A key refused unless it is absent, null, or its JSON text is `ok` exactly
 * (after whitespace; e.g. "false", "\"absolute\"", "{}"). */
typedef struct hf_refusal {
    const char *key;
    const char *ok;
} hf_refusal;

typedef struct hf_arch {
    const char *model_type;  /* config.json "model_type" */
    const char *name;        /* printed by `attn run` */
    const char *prefix;      /* tensor prefix of layer N (printf, one %lld) */
    int naming;              /* attn_naming for attn_mha_load */
    /* keys holding the sizes */
    const char *hidden_key, *heads_key, *layers_key, *dropout_key;
    /* hard-wired facts */
    int causal;              /* decoder: 1 */
    int rope;                /* attn_rope_kind (ATTN_ROPE_NONE: no rotary) */
    int bias;                /* hf_bias_rule */
    int window;              /* hf_window_rule */
    int qk_norm;             /* hf_qk_norm_rule */
    int gemma;               /* query_pre_attn_scalar and attn_logit_softcapping are read */
    int local_rope;          /* sliding layers: theta = rope_local_base_freq, no scaling (Gemma 3 4.x) */
    /* class defaults for absent keys (0 = none / derived) */
    int64_t default_kv_heads;     /* 0: num_attention_heads */
    int64_t default_head_dim;     /* 0: hidden / heads */
    double default_theta;         /* rope_theta */
    int64_t default_window;       /* sliding_window */
    int64_t default_max_window_layers;
    int64_t default_pattern;      /* HF_WIN_LAYER_TYPES without layer_types */
    double default_query_scalar;  /* gemma: query_pre_attn_scalar */
    double default_softcap;       /* gemma: attn_logit_softcapping */
    double default_local_theta;   /* local_rope: rope_local_base_freq */
    const char *const *read;      /* NULL-terminated */
    const char *const *ignored;   /* NULL-terminated (beyond hf_common_ignored) */
    const hf_refusal *refused;    /* {NULL, NULL}-terminated, or NULL */
    double default_partial;       /* partial_rotary_factor; 0 = 1 (whole head) */
    int default_bias;             /* attention_bias when absent (GPT-NeoX: true) */
    const char *theta_key;        /* transformers-4 name of rope_theta (NULL: "rope_theta") */
    const char *partial_key;      /* ... of partial_rotary_factor (NULL: "partial_rotary_factor") */
    const char *prefix2;          /* another tensor prefix to try (the bare model saved alone), or NULL */
    int gpt2_scale;               /* scale_attn_weights, scale_attn_by_inverse_layer_idx are read */
    const char *bias_key;         /* HF_BIAS_USE_QKV: the key (NULL: "use_qkv_bias") */
} hf_arch;

/* The entry for model_type, or NULL. */
const hf_arch *attn__hf_arch_find(const char *model_type);
/* All entries: *n set to their count. */
const hf_arch *attn__hf_arch_all(int *n);
/* "llama, mistral, ..." (static). */
const char *attn__hf_arch_names(void);
/* Keys every architecture ignores (PretrainedConfig bookkeeping, token ids,
 * generation defaults), NULL-terminated. */
extern const char *const attn__hf_common_ignored[];
/* Keys allowed inside rope_scaling / rope_parameters, NULL-terminated. */
extern const char *const attn__hf_rope_keys[];

#endif
