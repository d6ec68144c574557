/* SPDX-License-Identifier: MIT */
/*
 * lm.h — a small byte-level causal transformer language model built on the
 * attn layer (attn_mha_*), for `attn train` and `attn generate`.
 *
 * Model (Llama-style, pre-norm):
 *   x = wte[tokens]                                          (B, T, C)
 *   for l in 0..L-1:
 *     x = x + attn_l(rmsnorm(x) * ln1_l)                     causal MHA, RoPE NeoX, GQA
 *     x = x + down_l(silu(gate_l(h)) * up_l(h)),  h = rmsnorm(x) * ln2_l   (SwiGLU)
 *   logits = rmsnorm(x) * lnf  @ lm_head^T                   (B, T, V)
 *   loss   = mean over (b, t) of -log softmax(logits)[target]
 *
 * Dimension legend (as in llm.c):
 *   B batch, T time (sequence length), C channels (embed dim E), V vocabulary
 *   (256 bytes), L layers, NH query heads, NKV key/value heads, F MLP hidden.
 *
 * Tokenizer: bytes. Token id = byte value (0..255); decoding writes the bytes.
 *
 * Parameter names follow HuggingFace Llama:
 *   model.embed_tokens.weight (V, C)
 *   model.layers.{l}.input_layernorm.weight (C)
 *   model.layers.{l}.self_attn.{q,k,v,o}_proj.weight       (the attn_mha layer)
 *   model.layers.{l}.post_attention_layernorm.weight (C)
 *   model.layers.{l}.mlp.{gate,up}_proj.weight (F, C), mlp.down_proj.weight (C, F)
 *   model.norm.weight (C), lm_head.weight (V, C)
 *
 * Errors: functions return attn_status; on failure `lm_error()` holds one line
 * describing the problem (the caller prints it). Nothing here calls exit().
 */
#ifndef ATTN_LM_H
#define ATTN_LM_H

#include "attn.h"
#include <stddef.h>
#include <stdint.h>

#define LM_VOCAB 256

typedef struct lm_config {
    int vocab;        /* V (256: bytes) */
    int max_seq;      /* longest sequence the model is trained / run on (T <= max_seq) */
    int n_layer;      /* L */
    int dim;          /* C */
    int n_head;       /* NH; C % NH == 0 */
    int n_kv_head;    /* NKV; NH % NKV == 0 */
    int hidden;       /* F (SwiGLU hidden width) */
    float rope_theta; /* RoPE base */
    float norm_eps;   /* RMSNorm epsilon */
} lm_config;

/* Defaults (the `attn train` demo): V 256, max_seq 64, L 2, C 64, NH 4, NKV 2,
 * F 192, theta 10000, eps 1e-5. */
void lm_config_default(lm_config *c);
/* Checks ranges and divisibility; fills hidden (if 0) with round_up(8C/3, 32). */
attn_status lm_config_validate(lm_config *c);

typedef struct lm_model lm_model;

/* Creates a model with seeded (deterministic) initial weights. */
attn_status lm_create(lm_model **out, const lm_config *cfg, uint64_t seed);
void lm_free(lm_model *m);
const lm_config *lm_get_config(const lm_model *m);

/* All parameters (the model's own and every layer's), for attn_optim_step.
 * Valid until the next lm_lora_attach / lm_free. names are full HF names. */
const attn_param *lm_params(lm_model *m, int64_t *count);
int64_t lm_num_params(const lm_model *m);    /* scalars */
int64_t lm_num_trainable(const lm_model *m); /* trainable scalars */

/* LoRA on q_proj and v_proj of every layer (rank r, alpha); freezes every
 * other parameter (embedding, norms, MLP, head, attention base weights). */
attn_status lm_lora_attach(lm_model *m, int64_t rank, float alpha, uint64_t seed);
int64_t lm_lora_rank(const lm_model *m); /* 0 when none attached */

/* Training mode: attention layers save activations for lm_backward. */
attn_status lm_set_training(lm_model *m, int training);

/*
 * Forward over a batch of B sequences of T tokens (positions 0..T-1).
 *   tokens  (B, T) int32 in [0, V)
 *   targets (B, T) int32 in [0, V), or NULL (then *loss is not computed)
 *   loss    out: mean cross-entropy (may be NULL)
 * Logits / probabilities stay in the model (lm_logits).
 */
attn_status lm_forward(lm_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                       float *loss);
/* Logits (B, T, V) of the last forward (before softmax). */
const float *lm_logits(const lm_model *m);

/* Sequence parallelism (`attn train --mpi`, tools/attn_mpi): each layer's
 * attention forward / backward in lm_forward / lm_backward (uncached) is
 * done by fwd / bwd instead of attn_mha_forward / attn_mha_backward, e.g.
 * over libattn_mpi's ring: the T tokens of a forward are then this
 * process's shard of longer sequences (in->positions NULL, pos_offset 0;
 * the callee places them). The callees return the layer call's status and
 * keep their own message. NULL, NULL: the layer calls again. */
typedef attn_status (*lm_attn_fwd_fn)(void *user, attn_mha *layer, const attn_mha_input *in, float *y);
typedef attn_status (*lm_attn_bwd_fn)(void *user, attn_mha *layer, const float *dy, float *dx);
attn_status lm_set_attention(lm_model *m, lm_attn_fwd_fn fwd, lm_attn_bwd_fn bwd, void *user);

/* Zeroes every parameter gradient (own and layers). */
attn_status lm_zero_grad(lm_model *m);
/* Backward of the last lm_forward (which must have had targets, in training
 * mode). Parameter gradients are accumulated (+=). */
attn_status lm_backward(lm_model *m);

/* ─── inference with a KV cache ─────────────────────────────────────────── */
typedef struct lm_cache lm_cache; /* one attn_kvcache per layer, batch 1 */
attn_status lm_cache_create(lm_cache **out, const lm_model *m, int64_t capacity);
void lm_cache_free(lm_cache *c);
attn_status lm_cache_reset(lm_cache *c);
int64_t lm_cache_len(const lm_cache *c);
/* Feeds n new tokens (prefill n > 1, decode n == 1) of one sequence through
 * attn_mha_forward_cached; writes the logits of the last token to
 * logits_last (V). */
attn_status lm_forward_cached(lm_model *m, lm_cache *c, const int32_t *tokens, int n,
                              float *logits_last);

/* ─── batched inference with a paged KV cache (continuous batching) ─────── */
typedef struct lm_paged lm_paged; /* one attn_kvpaged per layer (blocks of 16 tokens) */
attn_status lm_paged_create(lm_paged **out, const lm_model *m, int64_t max_seqs, int64_t max_len, int64_t num_blocks);
void lm_paged_free(lm_paged *c);
attn_status lm_paged_add(lm_paged *c, int64_t id);
attn_status lm_paged_remove(lm_paged *c, int64_t id);
attn_status lm_paged_fork(lm_paged *c, int64_t parent, int64_t id); /* shares the parent's blocks */
/* Feeds new tokens of n sequences at once: sequence ids[b] gets tokens
 * [cu[b], cu[b+1]) (at least one each) through attn_mha_forward_paged;
 * logits_last (n, V) receives the logits of each sequence's last new token. */
attn_status lm_forward_paged(lm_model *m, lm_paged *c, const int64_t *ids, int n, const int32_t *cu,
                             const int32_t *tokens, float *logits_last);

/* ─── checkpoints (safetensors; config in __metadata__) ──────────────────── */
attn_status lm_save(const lm_model *m, const char *path);
/* Creates a model from a checkpoint written by lm_save (config, LoRA rank and
 * every tensor). */
attn_status lm_load(lm_model **out, const char *path);

/* ─── sampling ──────────────────────────────────────────────────────────── */
typedef struct lm_rng { uint64_t s; } lm_rng;
uint64_t lm_rng_next(lm_rng *r);
float lm_rng_uniform(lm_rng *r); /* [0, 1) */
/* temperature <= 0: argmax (greedy). top_k <= 0 or >= V: no top-k filter. */
int lm_sample(const float *logits, int V, float temperature, int top_k, lm_rng *rng);

/* ─── the pieces (exposed for tests/test_lm.c; llm.c style) ──────────────── *
 * _forward writes its outputs; _backward ADDS into every d-buffer. */
void encoder_forward(float *out, const int32_t *tokens, const float *wte, int N, int C);
void encoder_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C);
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                     float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int C);
void matmul_forward(float *out, const float *inp, const float *weight, int N, int IN, int OUT);
void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                     const float *weight, int N, int IN, int OUT);
void swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n);
void residual_forward(float *out, const float *a, const float *b, int64_t n);
/* probs (N, V) = softmax(logits); losses (N) = -log probs[target]. */
void crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets,
                          int N, int V);
/* dlogits += (probs - onehot(target)) * dloss (dloss = 1/N for a mean loss). */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, float dloss,
                           int N, int V);

/* One line describing the last error of this thread ("" if none). */
const char *lm_error(void);

#endif
