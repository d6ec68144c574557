#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_hf_keys.py — every attribute of each supported transformers config class is in
src/models/hf_arch.c's tables (read, ignored or refused), so a new transformers release that
adds an attention key shows up here instead of being refused at run time (or worse).
Needs transformers; exit status 1 lists the unclassified keys. Run from the repo root."""
import os
import re
import sys
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import transformers as T  # noqa: E402
src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "models", "hf_arch.c")).read()
def lst(name):
    m=re.search(r'static const char \*const %s\[\] = \{(.*?)NULL\};'%name, src, re.S)
    body=m.group(1)
    for k,v in {'DECODER_SIZES':'"hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers"','ROPE_KEYS':'"rope_theta", "rope_scaling", "rope_parameters"','MOE_IGN':'"decoder_sparse_step", "moe_intermediate_size", "shared_expert_intermediate_size", "num_experts_per_tok","num_experts", "norm_topk_prob", "output_router_logits", "router_aux_loss_coef", "mlp_only_layers"'}.items():
        body=body.replace(k,v)
    return set(re.findall(r'"([^"]+)"', body))
common=set(re.findall(r'"([^"]+)"', src[src.index('attn__hf_common_ignored[]'):src.index('attn__hf_rope_keys')]))
arch={ 'llama':(T.LlamaConfig,'llama_read','llama_ign',[]),'mistral':(T.MistralConfig,'mistral_read','gemma_ign',['attention_bias']),
 'mixtral':(T.MixtralConfig,'mistral_read','mixtral_ign',['attention_bias']),'qwen2':(T.Qwen2Config,'qwen2_read','qwen2_ign',[]),
 'qwen2_moe':(T.Qwen2MoeConfig,'qwen2_moe_read','qwen2_moe_ign',[]),'qwen3':(T.Qwen3Config,'qwen3_read',None,[]),'qwen3_moe':(T.Qwen3MoeConfig,'qwen3_read','qwen3_moe_ign',[]),
 'gemma':(T.GemmaConfig,'llama_read','gemma_ign',['use_bidirectional_attention']),'gemma2':(T.Gemma2Config,'gemma2_read','gemma2_ign',['use_bidirectional_attention']),
 'gemma3_text':(T.Gemma3TextConfig,'gemma3_read','gemma3_ign',['use_bidirectional_attention']),'stablelm':(T.StableLmConfig,'stablelm_read','stablelm_ign',['qk_layernorm']),
 'phi3':(T.Phi3Config,'phi3_read','phi3_ign',[]),'phi':(T.PhiConfig,'phi_read','phi_ign',['qk_layernorm']),'gpt_neox':(T.GPTNeoXConfig,'neox_read','neox_ign',[]),
 'gpt2':(T.GPT2Config,'gpt2_read','gpt2_ign',[]),'bert':(T.BertConfig,'bert_read','bert_ign',['position_embedding_type','is_decoder']),'roberta':(T.RobertaConfig,'bert_read','bert_ign',['position_embedding_type','is_decoder'])}
bad = 0
for a, (C, r, i, ref) in arch.items():
    keys = set(C().to_dict().keys())
    known = lst(r) | (lst(i) if i else set()) | common | set(ref) | {"model_type", "pruned_heads", "quantization_config"}
    miss = sorted(keys - known)
    print("%-12s %s" % (a, "ok" if not miss else "UNCLASSIFIED: " + ", ".join(miss)))
    bad |= bool(miss)
print("transformers %s" % T.__version__)
sys.exit(1 if bad else 0)
