#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gen_fixtures.py — PyTorch / transformers reference fixtures for tests/test_fixtures.c.

Regenerate (deterministic: same torch/transformers versions => identical bytes):

    python3 scripts/gen_fixtures.py            # writes tests/fixtures/*

Needs torch, transformers, safetensors, numpy. None of them is needed to build
or test attn: the C test only reads the committed files.

Every case is one safetensors file tests/fixtures/<case>.safetensors holding
(all float32):
  parameters, HuggingFace names      q_proj.weight (out, in), q_proj.bias, k_proj.*,
                                     v_proj.*, o_proj.*, q_norm.weight, k_norm.weight,
                                     q_proj.lora_A.weight (r, in), q_proj.lora_B.weight (out, r)
  nn.MultiheadAttention cases also   torch.in_proj_weight, torch.in_proj_bias,
  the original torch names under     torch.q_proj_weight / k_proj_weight / v_proj_weight
  the prefix "torch."                (when kdim/vdim != E), torch.out_proj.weight/.bias
  inputs                             x, key, value (cross-attention only; value omitted
                                     when value is key), key_padding_mask (B, Skv) float
                                     1 = padded/ignored, 0 = attend; positions (B, Sq)
                                     float holding integers (RoPE cases)
  output                             y
  upstream gradient                  dy (same shape as y)
  gradients                          dx, dkey, dvalue (when they exist),
                                     grad.<param> for every trainable parameter
                                     (LoRA case: only lora_A / lora_B are trainable)
and, as "__metadata__" strings, the layer configuration (see meta() below).

x / y / dy / dx are (B, S, E) when layout = batch_first and (S, B, E) when
layout = seq_first (nn.MultiheadAttention default).

Also writes tests/fixtures/llama_run/ (the `attn run` fixture): a 2-layer
LlamaForCausalLM saved with save_pretrained (bf16 safetensors, HF tensor names
model.layers.N.self_attn.*), its config.json, x.npy (B, S, E) and y.npy = the
eager self_attn output of layer 0 with the causal mask, positions 0..S-1.

And tests/fixtures/hf/<arch>/ (hf_run below): a tiny 2-layer random-weight
checkpoint of every supported architecture saved by transformers, with each
layer's attention input / output on a padded batch captured by hooks, layer-0
gradients, a transformers-4 spelling of the config, a sharded copy (qwen2) and
an S = 1024 case (qwen2_long). `python3 scripts/gen_fixtures.py hf` writes only
those; `... gemma2 phi3` only the named ones.
"""
import json
import os
import shutil
import struct
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")

torch.set_num_threads(1)  # fixed reduction order for the reference itself
torch.use_deterministic_algorithms(True)

VERSIONS = {"torch_version": torch.__version__.split("+")[0],
            "transformers_version": transformers.__version__}


# ─── helpers ────────────────────────────────────────────────────────────────
def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return g


def randn(g, *shape, scale=1.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).contiguous()


def fill_linear(g, lin):
    """Weights ~ N(0, 1/in) so that logits are O(1) (softmax far from uniform),
    biases ~ N(0, 0.1^2) (non-zero so that they matter)."""
    with torch.no_grad():
        lin.weight.copy_(randn(g, *lin.weight.shape, scale=lin.weight.shape[1] ** -0.5))
        if lin.bias is not None:
            lin.bias.copy_(randn(g, *lin.bias.shape, scale=0.1))


def meta(**kw):
    """Layer configuration as safetensors metadata (all strings). Defaults
    mirror attn_mha_config_init()."""
    m = {
        "case": "", "source": "",
        "embed_dim": 0, "num_heads": 0, "num_kv_heads": 0, "head_dim": 0,
        "kdim": 0, "vdim": 0,
        "bias_q": 0, "bias_k": 0, "bias_v": 0, "bias_o": 0,
        "causal": 0, "scale": 0.0,
        "rope": "none", "rope_theta": 0.0, "rope_scaling": "none", "rope_factor": 0.0,
        "rope_low_freq_factor": 0.0, "rope_high_freq_factor": 0.0, "rope_original_max_pos": 0,
        "qk_norm": 0, "qk_norm_eps": 0.0,
        "lora_rank": 0, "lora_alpha": 0.0, "lora_which": "",
        "layout": "batch_first", "batch": 0, "seq_q": 0, "seq_kv": 0,
        "self_attention": 1, "value_is_key": 0, "key_padding_mask": 0, "positions": 0,
        "torch_prefix": "",
    }
    for k, v in kw.items():
        if k not in m:
            raise KeyError(k)
        m[k] = v
    m.update(VERSIONS)
    return {k: (repr(float(v)) if isinstance(v, float) else str(v)) for k, v in m.items()}


def write_safetensors(path, tensors, md):
    """Byte-reproducible safetensors writer (safetensors.save_file orders the
    metadata map randomly): float32 only, tensors sorted by name, metadata keys
    sorted, header padded with spaces to a multiple of 8 bytes."""
    header = {"__metadata__": dict(sorted(md.items()))}
    blobs, off = [], 0
    for k in sorted(tensors):
        a = tensors[k].detach().to(torch.float32).contiguous().numpy().astype("<f4")
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    # round trip through the official reader
    back = load_file(path)
    assert sorted(back) == sorted(tensors)
    for k in tensors:
        assert torch.equal(back[k], tensors[k].detach().to(torch.float32)), k


def save_case(name, tensors, md):
    path = os.path.join(OUT, name + ".safetensors")
    write_safetensors(path, tensors, md)
    return path


def grads_of(named):
    """grad.<name> for every parameter with a gradient."""
    return {"grad." + n: p.grad for n, p in named.items() if p.grad is not None}


def causal_additive_mask(B, S, dtype=torch.float32):
    """transformers-style 4-D additive causal mask (B, 1, S, S): 0 or finfo.min."""
    m = torch.full((S, S), torch.finfo(dtype).min, dtype=dtype).triu(1)
    return m[None, None].expand(B, 1, S, S)


def padding_additive_mask(keep):
    """(B, S) 1=keep -> (B, 1, 1, S) additive mask, as BERT's eager path uses."""
    return ((1.0 - keep) * torch.finfo(torch.float32).min)[:, None, None, :]


# ─── nn.MultiheadAttention ──────────────────────────────────────────────────
def mha_case(name, seed, E=32, H=4, B=2, Sq=7, Skv=None, bias=True, batch_first=True,
             kdim=None, vdim=None, cross=False, value_is_key=False, pad_lens=None):
    g = gen(seed)
    Skv = Sq if not cross else Skv
    mha = nn.MultiheadAttention(E, H, dropout=0.0, bias=bias, batch_first=batch_first,
                                kdim=kdim, vdim=vdim)
    mha.train()  # dropout is 0; train() keeps the plain (non fast-path) code
    with torch.no_grad():
        for n, p in mha.named_parameters():
            if p.dim() == 2:
                p.copy_(randn(g, *p.shape, scale=p.shape[1] ** -0.5))
            else:
                p.copy_(randn(g, *p.shape, scale=0.1))
    kd = kdim or E
    vd = vdim or E

    def shaped(S, W):
        return (B, S, W) if batch_first else (S, B, W)

    x = randn(g, *shaped(Sq, E)).requires_grad_()
    if cross:
        key = randn(g, *shaped(Skv, kd)).requires_grad_()
        value = key if value_is_key else randn(g, *shaped(Skv, vd)).requires_grad_()
        q_in, k_in, v_in = x, key, value
    else:
        key = value = None
        q_in = k_in = v_in = x
    kpm = None
    if pad_lens is not None:
        kpm = torch.zeros(B, Skv, dtype=torch.bool)
        for b, L in enumerate(pad_lens):
            kpm[b, L:] = True
    y, _ = mha(q_in, k_in, v_in, key_padding_mask=kpm, need_weights=False)
    dy = randn(g, *y.shape)
    (y * dy).sum().backward()

    # HF names of the same parameters
    hf = {}
    if mha._qkv_same_embed_dim:
        wq, wk, wv = mha.in_proj_weight.chunk(3, 0)
        gq, gk, gv = mha.in_proj_weight.grad.chunk(3, 0)
    else:
        wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        gq, gk, gv = mha.q_proj_weight.grad, mha.k_proj_weight.grad, mha.v_proj_weight.grad
    hf["q_proj.weight"], hf["k_proj.weight"], hf["v_proj.weight"] = wq, wk, wv
    gr = {"grad.q_proj.weight": gq, "grad.k_proj.weight": gk, "grad.v_proj.weight": gv}
    hf["o_proj.weight"] = mha.out_proj.weight
    gr["grad.o_proj.weight"] = mha.out_proj.weight.grad
    if bias:
        bq, bk, bv = mha.in_proj_bias.chunk(3, 0)
        dbq, dbk, dbv = mha.in_proj_bias.grad.chunk(3, 0)
        hf.update({"q_proj.bias": bq, "k_proj.bias": bk, "v_proj.bias": bv,
                   "o_proj.bias": mha.out_proj.bias})
        gr.update({"grad.q_proj.bias": dbq, "grad.k_proj.bias": dbk, "grad.v_proj.bias": dbv,
                   "grad.o_proj.bias": mha.out_proj.bias.grad})
    t = dict(hf)
    for n, p in mha.named_parameters():  # original torch names, prefixed
        t["torch." + n] = p
    t.update(gr)
    t.update({"x": x, "y": y, "dy": dy, "dx": x.grad})
    if cross:
        t["key"] = key
        t["dkey"] = key.grad
        if not value_is_key:
            t["value"] = value
            t["dvalue"] = value.grad
    if kpm is not None:
        t["key_padding_mask"] = kpm.float()
    md = meta(case=name, source="torch.nn.MultiheadAttention", embed_dim=E, num_heads=H,
              num_kv_heads=H, head_dim=E // H, kdim=kd, vdim=vd,
              bias_q=int(bias), bias_k=int(bias), bias_v=int(bias), bias_o=int(bias),
              layout="batch_first" if batch_first else "seq_first", batch=B, seq_q=Sq,
              seq_kv=Skv, self_attention=int(not cross), value_is_key=int(value_is_key),
              key_padding_mask=int(kpm is not None), torch_prefix="torch")
    return save_case(name, t, md)


# ─── transformers decoder attentions (Llama / Qwen2 / Qwen3) ────────────────
class LoRALinear(nn.Module):
    """y = x W^T + b + (alpha / r) * x A^T B^T, base frozen (PEFT semantics)."""

    def __init__(self, base, r, alpha, g):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha = r, alpha
        self.lora_A = nn.Parameter(randn(g, r, base.in_features, scale=base.in_features ** -0.5))
        # B != 0 so that the adapter changes y and every gradient path is exercised
        self.lora_B = nn.Parameter(randn(g, base.out_features, r, scale=0.5 * r ** -0.5))

    def forward(self, x):
        return self.base(x) + (self.alpha / self.r) * ((x @ self.lora_A.t()) @ self.lora_B.t())


def rope_meta(cfg):
    rp = cfg.rope_parameters
    d = {"rope": "neox", "rope_theta": float(rp["rope_theta"])}
    if rp.get("rope_type", "default") == "llama3":
        d.update(rope_scaling="llama3", rope_factor=float(rp["factor"]),
                 rope_low_freq_factor=float(rp["low_freq_factor"]),
                 rope_high_freq_factor=float(rp["high_freq_factor"]),
                 rope_original_max_pos=int(rp["original_max_position_embeddings"]))
    elif rp.get("rope_type", "default") == "linear":
        d.update(rope_scaling="linear", rope_factor=float(rp["factor"]))
    return d


def decoder_case(name, seed, family, B=2, S=8, positions=None, lora=None, **cfgkw):
    g = gen(seed)
    if family == "llama":
        from transformers import LlamaConfig as C
        from transformers.models.llama.modeling_llama import LlamaAttention as A
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding as R
    elif family == "qwen2":
        from transformers import Qwen2Config as C
        from transformers.models.qwen2.modeling_qwen2 import Qwen2Attention as A
        from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding as R
    elif family == "qwen3":
        from transformers import Qwen3Config as C
        from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention as A
        from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding as R
    else:
        raise ValueError(family)
    cfg = C(vocab_size=16, intermediate_size=16, num_hidden_layers=1, attention_dropout=0.0,
            **cfgkw)
    cfg._attn_implementation = "eager"
    attn = A(cfg, layer_idx=0)
    attn.train()
    for n, mod in attn.named_modules():
        if isinstance(mod, nn.Linear):
            fill_linear(g, mod)
    qk_norm = family == "qwen3"
    if qk_norm:
        with torch.no_grad():  # non-trivial norm weights so that they matter
            attn.q_norm.weight.copy_(1.0 + randn(g, attn.head_dim, scale=0.2))
            attn.k_norm.weight.copy_(1.0 + randn(g, attn.head_dim, scale=0.2))
    if lora is not None:
        r, alpha, which = lora
        for p in attn.parameters():
            p.requires_grad_(False)
        for w in which:
            setattr(attn, w + "_proj", LoRALinear(getattr(attn, w + "_proj"), r, alpha, g))
    E = cfg.hidden_size
    x = randn(g, B, S, E).requires_grad_()
    if positions is None:
        positions = torch.arange(S)[None].expand(B, S)
    positions = torch.as_tensor(positions, dtype=torch.int64)
    rope = R(cfg)
    cos, sin = rope(x, positions)
    y, _ = attn(x, position_embeddings=(cos, sin), attention_mask=causal_additive_mask(B, S))
    dy = randn(g, *y.shape)
    (y * dy).sum().backward()

    params = {}
    for n, p in attn.named_parameters():
        hn = n.replace(".base.", ".").replace(".lora_A", ".lora_A.weight").replace(
            ".lora_B", ".lora_B.weight")
        params[hn] = p
    t = dict(params)
    t.update(grads_of(params))
    t.update({"x": x, "positions": positions.float(), "y": y, "dy": dy, "dx": x.grad})
    bias = bool(getattr(cfg, "attention_bias", False))
    bq = bk = bv = bo = bias
    if family == "qwen2":  # q/k/v always biased, o never
        bq = bk = bv = True
        bo = False
    md = meta(case=name, source="transformers." + A.__name__
              + (" + hand-written LoRA on " + ",".join(lora[2]) if lora else ""),
              embed_dim=E, num_heads=cfg.num_attention_heads,
              num_kv_heads=cfg.num_key_value_heads, head_dim=attn.head_dim,
              bias_q=int(bq), bias_k=int(bk), bias_v=int(bv), bias_o=int(bo), causal=1,
              qk_norm=int(qk_norm), qk_norm_eps=float(cfg.rms_norm_eps) if qk_norm else 0.0,
              lora_rank=lora[0] if lora else 0, lora_alpha=float(lora[1]) if lora else 0.0,
              lora_which=",".join(lora[2]) if lora else "",
              batch=B, seq_q=S, seq_kv=S, positions=1, **rope_meta(cfg))
    return save_case(name, t, md)


# ─── BERT self-attention + output dense ─────────────────────────────────────
def bert_case(name, seed, E=32, H=4, B=2, S=7, keep_lens=(7, 4)):
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertSelfAttention, BertSelfOutput
    g = gen(seed)
    cfg = BertConfig(hidden_size=E, num_attention_heads=H, intermediate_size=16, vocab_size=16,
                     num_hidden_layers=1, attention_probs_dropout_prob=0.0,
                     hidden_dropout_prob=0.0)
    cfg._attn_implementation = "eager"
    sa = BertSelfAttention(cfg)
    so = BertSelfOutput(cfg)
    sa.train()
    so.train()
    for lin in (sa.query, sa.key, sa.value, so.dense):
        fill_linear(g, lin)
    x = randn(g, B, S, E).requires_grad_()
    keep = torch.zeros(B, S)
    for b, L in enumerate(keep_lens):
        keep[b, :L] = 1.0
    ctx, _ = sa(x, attention_mask=padding_additive_mask(keep))
    y = so.dense(ctx)  # BertSelfOutput without dropout / residual / LayerNorm
    dy = randn(g, *y.shape)
    (y * dy).sum().backward()
    params = {"q_proj.weight": sa.query.weight, "q_proj.bias": sa.query.bias,
              "k_proj.weight": sa.key.weight, "k_proj.bias": sa.key.bias,
              "v_proj.weight": sa.value.weight, "v_proj.bias": sa.value.bias,
              "o_proj.weight": so.dense.weight, "o_proj.bias": so.dense.bias}
    t = dict(params)
    t.update(grads_of(params))
    t.update({"x": x, "key_padding_mask": 1.0 - keep, "y": y, "dy": dy, "dx": x.grad})
    md = meta(case=name, source="transformers.BertSelfAttention + BertSelfOutput.dense",
              embed_dim=E, num_heads=H, num_kv_heads=H, head_dim=E // H,
              bias_q=1, bias_k=1, bias_v=1, bias_o=1, causal=0, batch=B, seq_q=S, seq_kv=S,
              key_padding_mask=1)
    return save_case(name, t, md)


# ─── `attn run` fixture: a tiny LlamaForCausalLM saved by transformers ──────
def llama_run(seed=1234, B=2, S=8):
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    d = os.path.join(OUT, "llama_run")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(seed)
    rope_scaling = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    cfg = LlamaConfig(vocab_size=16, hidden_size=64, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
                      attention_bias=False, initializer_range=0.125,
                      rope_parameters=dict(rope_scaling, rope_theta=500000.0))
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)  # weights stored as bf16, like real checkpoints
    model.save_pretrained(d, safe_serialization=True)
    gc = os.path.join(d, "generation_config.json")
    if os.path.exists(gc):  # not needed by attn
        os.remove(gc)
    # The bf16 weights, computed in fp32 (exact upcast).
    model = model.float().eval()
    # config.json: transformers 5 writes only "rope_parameters"; hub checkpoints
    # (Llama 3.1 etc.) carry the legacy top-level "rope_theta" + "rope_scaling".
    # Write both so that either reader finds them, and check transformers reads
    # the file back to the same rope configuration.
    cpath = os.path.join(d, "config.json")
    with open(cpath) as f:
        cj = json.load(f)
    cj["rope_theta"] = 500000.0
    cj["rope_scaling"] = dict(rope_scaling)
    cj.pop("transformers_version", None)  # keep the file identical across versions
    with open(cpath, "w") as f:
        json.dump(cj, f, indent=2, sort_keys=True)
        f.write("\n")
    back = LlamaConfig.from_pretrained(d)
    assert back.rope_parameters["rope_type"] == "llama3", back.rope_parameters
    assert back.rope_parameters["rope_theta"] == 500000.0, back.rope_parameters
    assert back.rope_parameters["original_max_position_embeddings"] == 32, back.rope_parameters
    g = gen(seed + 1)
    x = randn(g, B, S, cfg.hidden_size)
    pos = torch.arange(S)[None].expand(B, S)
    with torch.no_grad():
        cos, sin = LlamaRotaryEmbedding(cfg)(x, pos)
        y, _ = model.model.layers[0].self_attn(x, position_embeddings=(cos, sin),
                                                attention_mask=causal_additive_mask(B, S))
    np.save(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "y.npy"), y.numpy().astype(np.float32))
    # Sanity: the eager layer-0 attention of the whole model (hook) equals y.
    seen = {}
    h = model.model.layers[0].self_attn.register_forward_hook(
        lambda m, a, o: seen.setdefault("y", o[0]))
    with torch.no_grad():
        model.model.layers[0].self_attn(x, position_embeddings=(cos, sin),
                                        attention_mask=causal_additive_mask(B, S))
    h.remove()
    assert torch.equal(seen["y"], y)
    return d


# ─── `attn run` fixtures per architecture: tests/fixtures/hf/<arch>/ ────────
# A tiny 2-layer random-weight model of each architecture saved by
# save_pretrained (bf16 safetensors + config.json exactly as transformers
# writes it), run by transformers itself (eager attention, fp32) on a padded
# batch; forward hooks capture each layer's attention input and output:
#   x<i>.npy (B, S, E)   input of layer i's attention module
#   y<i>.npy (B, S, E)   its output (BERT: BertSelfAttention + BertSelfOutput.dense)
#   mask.npy (B, S)      the HF attention_mask (1 = token, 0 = padding; batch 1 left-padded)
# and the same at S = 1 (xs1_0.npy, ys1_0.npy, masks1.npy; layer 0), and
#   config_v4.json       (some architectures) the same configuration in transformers 4's
#                        spelling; transformers 5 reads it back to the same rope / layer types
#   qwen2/sharded/       the qwen2 weights saved again with max_shard_size 12KB:
#                        model.safetensors.index.json + model-0000i-of-0000n.safetensors
#   grads0.safetensors   layer 0 run again with a leaf input: x, y, dy (zero on
#                        padded rows), dx and the gradient of each of its
#                        parameters under the checkpoint's names (fp32)
def _hf_archs():
    import transformers as T
    tok = dict(vocab_size=16, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    dec = dict(tok, intermediate_size=16, num_hidden_layers=2, attention_dropout=0.0,
               initializer_range=0.125)
    return {
        # Qwen2: layer 0 full, layer 1 sliding (window 3 < S)
        "qwen2": (T.Qwen2Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                use_sliding_window=True, sliding_window=3, max_window_layers=1,
                                **dec), T.Qwen2ForCausalLM, "self_attn"),
        "qwen3": (T.Qwen3Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                head_dim=8, **dec), T.Qwen3ForCausalLM, "self_attn"),
        "mistral": (T.MistralConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                    sliding_window=4, **dec), T.MistralForCausalLM, "self_attn"),
        "mixtral": (T.MixtralConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                    sliding_window=5, num_local_experts=2, num_experts_per_tok=1,
                                    **dec), T.MixtralForCausalLM, "self_attn"),
        # Gemma 2: softcap, query_pre_attn_scalar, sliding layer 0 / full layer 1
        "gemma2": (T.Gemma2Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                  head_dim=8, query_pre_attn_scalar=12, attn_logit_softcapping=2.0,
                                  sliding_window=3, **dec), T.Gemma2ForCausalLM, "self_attn"),
        # Gemma 3: q/k norms (1 + w), local / global rope per layer type, linear scaling on global
        "gemma3": (T.Gemma3TextConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                      head_dim=8, query_pre_attn_scalar=12, sliding_window=3,
                                      layer_types=["sliding_attention", "full_attention"],
                                      rope_parameters={
                                          "full_attention": {"rope_type": "linear", "factor": 4.0,
                                                             "rope_theta": 1000000.0},
                                          "sliding_attention": {"rope_type": "default",
                                                                "rope_theta": 10000.0}},
                                      **dec), T.Gemma3ForCausalLM, "self_attn"),
        "stablelm": (T.StableLmConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                                      use_qkv_bias=True, **dec), T.StableLmForCausalLM, "self_attn"),
        "phi3": (T.Phi3Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                              **dec), T.Phi3ForCausalLM, "self_attn"),
        "phi": (T.PhiConfig(hidden_size=32, num_attention_heads=4, partial_rotary_factor=0.5,
                            **dec), T.PhiForCausalLM, "self_attn"),
        "gpt_neox": (T.GPTNeoXConfig(hidden_size=32, num_attention_heads=4, rotary_pct=0.5,
                                     **dec), T.GPTNeoXForCausalLM, "attention"),
        "gpt2": (T.GPT2Config(n_embd=32, n_head=4, n_layer=2, n_positions=64, attn_pdrop=0.0,
                              resid_pdrop=0.0, embd_pdrop=0.0, scale_attn_by_inverse_layer_idx=True,
                              initializer_range=0.125, **tok), T.GPT2LMHeadModel, "attn"),
        # RoPE scaling, transformers' own rotary embeddings (S = 8 exceeds the original length,
        # so dynamic grows its base and longrope takes its long factors; S = 1 does not)
        "rope_linear": (T.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                      head_dim=16, max_position_embeddings=64,
                                      rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                       "rope_theta": 10000.0}, **dec),
                        T.LlamaForCausalLM, "self_attn"),
        "rope_dynamic": (T.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                       head_dim=16, max_position_embeddings=4,
                                       rope_parameters={"rope_type": "dynamic", "factor": 3.0,
                                                        "rope_theta": 10000.0}, **dec),
                         T.LlamaForCausalLM, "self_attn"),
        "rope_yarn": (T.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                    head_dim=16, max_position_embeddings=64,
                                    rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                     "original_max_position_embeddings": 16,
                                                     "beta_fast": 8.0, "beta_slow": 1.0,
                                                     "rope_theta": 10000.0}, **dec),
                      T.LlamaForCausalLM, "self_attn"),
        "rope_longrope": (T.Phi3Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=16, original_max_position_embeddings=4,
                                       rope_parameters={"rope_type": "longrope",
                                                        "short_factor": [1.0, 1.25, 1.5, 2.0],
                                                        "long_factor": [1.5, 2.5, 4.0, 8.0],
                                                        "original_max_position_embeddings": 4,
                                                        "rope_theta": 10000.0}, **dec),
                          T.Phi3ForCausalLM, "self_attn"),
        "roberta": (T.RobertaConfig(hidden_size=32, num_attention_heads=4, intermediate_size=16,
                                    num_hidden_layers=2, attention_probs_dropout_prob=0.0,
                                    hidden_dropout_prob=0.0, initializer_range=0.125,
                                    max_position_embeddings=40, **tok), T.RobertaModel, "attention"),
        # Gemma 3 with its vision tower (Gemma3ForConditionalGeneration): text_config, tensors under
        # language_model.model.layers.N
        "gemma3_mm": (T.Gemma3Config(
            text_config=dict(vocab_size=300, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                             hidden_size=32, intermediate_size=16, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                             query_pre_attn_scalar=12, sliding_window=3, initializer_range=0.125,
                             layer_types=["sliding_attention", "full_attention"]),
            vision_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                               num_attention_heads=2, image_size=28, patch_size=14),
            mm_tokens_per_image=4, image_token_index=299, boi_token_index=297, eoi_token_index=298),
            T.Gemma3ForConditionalGeneration, "self_attn"),
        "bert": (T.BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=16,
                              num_hidden_layers=2, attention_probs_dropout_prob=0.0,
                              hidden_dropout_prob=0.0, initializer_range=0.125, **tok),
                 T.BertModel, "attention"),
    }


def _attn_modules(model, arch):
    if arch == "gpt2":
        return [blk.attn for blk in model.transformer.h]
    if arch == "gpt_neox":
        return [blk.attention for blk in model.gpt_neox.layers]
    if arch in ("bert", "roberta"):
        return [lay.attention for lay in model.encoder.layer]
    if arch == "gemma3_mm":
        return [lay.self_attn for lay in model.model.language_model.layers]
    return [lay.self_attn for lay in model.model.layers]


def _run_capture(model, arch, embeds, am):
    """Runs the model; returns [(x_i, y_i)] captured at each layer's attention."""
    mods = _attn_modules(model, arch)
    got = [dict() for _ in mods]
    hooks = []
    for i, m in enumerate(mods):
        def pre(mod, args, kwargs, i=i):
            got[i]["x"] = (kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]).detach().clone()
        if arch in ("bert", "roberta"):  # BertSelfAttention input, then BertSelfOutput.dense output
            hooks.append(m.self.register_forward_pre_hook(pre, with_kwargs=True))
            hooks.append(m.output.dense.register_forward_hook(
                lambda mod, a, o, i=i: got[i].__setitem__("y", o.detach().clone())))
        else:
            hooks.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            hooks.append(m.register_forward_hook(
                lambda mod, a, o, i=i: got[i].__setitem__("y", o[0].detach().clone())))
    with torch.no_grad():
        model(inputs_embeds=embeds, attention_mask=am)
    for h in hooks:
        h.remove()
    return [(d["x"], d["y"]) for d in got]


def _layer0_grads(model, arch, x, am, g, d):
    """grads0.safetensors: dx and the gradient of every layer-0 attention parameter
    (under the checkpoint's own names) for the loss sum(y * dy), dy zero on padded rows."""
    from safetensors.torch import save_file
    mods = _attn_modules(model, arch)
    m = mods[0]
    call = {}
    tgt = m.self if arch in ("bert", "roberta") else m

    def pre(mod, args, kwargs):
        call["args"], call["kwargs"] = args, dict(kwargs)
    h = tgt.register_forward_pre_hook(pre, with_kwargs=True)
    with torch.no_grad():
        model(inputs_embeds=x, attention_mask=am.long(), use_cache=False)
    h.remove()
    xl = call["kwargs"].pop("hidden_states", None)
    args = call["args"]
    if xl is None:
        xl, args = args[0], args[1:]
    xl = xl.detach().clone().requires_grad_()
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    out = tgt(xl, *args, **call["kwargs"])
    y = m.output.dense(out[0]) if arch in ("bert", "roberta") else out[0]
    dy = randn(g, *y.shape) * am[:, :, None]
    (y * dy).sum().backward()
    prefix = [n for n, mm in model.named_modules() if mm is m][0]
    t = {"dx": xl.grad.detach().clone(), "x": xl.detach().clone(), "dy": dy, "y": y.detach().clone()}
    for n, p in m.named_parameters():
        if p.grad is not None:
            t[prefix + "." + n] = p.grad.detach().clone()
    save_file({k: v.float().contiguous() for k, v in sorted(t.items())}, os.path.join(d, "grads0.safetensors"),
              metadata={"prefix": prefix})


V4_ARCHS = ("qwen2", "gemma3", "stablelm", "gpt_neox", "phi", "rope_linear", "rope_dynamic", "rope_yarn",
            "rope_longrope")


def _config_v4(arch, cj):
    """The same configuration in transformers 4's spelling: rope_theta (+ rope_local_base_freq,
    rotary_emb_base), rope_scaling, top-level partial_rotary_factor / rotary_pct /
    original_max_position_embeddings, sliding_window_pattern / max_window_layers instead of
    layer_types."""
    c = dict(cj)
    rp = c.pop("rope_parameters")
    if arch in ("gemma3", "qwen2"):
        c.pop("layer_types")
    if arch == "gemma3":
        c["rope_theta"] = rp["full_attention"]["rope_theta"]
        c["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
        fa = {k: v for k, v in rp["full_attention"].items() if k != "rope_theta"}
        c["rope_scaling"] = None if fa["rope_type"] == "default" else fa  # Gemma 3 writes rope_type
        c["sliding_window_pattern"] = 2
        c.pop("_sliding_window_pattern", None)
    elif arch == "gpt_neox":
        c["rotary_emb_base"] = rp["rope_theta"]
        c["rotary_pct"] = rp["partial_rotary_factor"]
    else:
        c["rope_theta"] = rp["rope_theta"]
        if arch in ("stablelm", "phi"):
            c["partial_rotary_factor"] = rp["partial_rotary_factor"]
        sc = {k: v for k, v in rp.items() if k not in ("rope_theta", "partial_rotary_factor")}
        t = sc.pop("rope_type")
        if t != "default":
            if t == "longrope":  # Phi-3 keeps it at the top level
                c["original_max_position_embeddings"] = sc.pop("original_max_position_embeddings")
            c["rope_scaling"] = dict(sc, type=t)  # the old "type" spelling
    return c


def _write_config_v4(arch, d):
    with open(os.path.join(d, "config.json")) as f:
        cj = json.load(f)
    c4 = _config_v4(arch, cj)
    t = os.path.join(d, "_v4")
    os.makedirs(t)
    with open(os.path.join(t, "config.json"), "w") as f:
        json.dump(c4, f)
    a, b = transformers.AutoConfig.from_pretrained(d), transformers.AutoConfig.from_pretrained(t)
    shutil.rmtree(t)
    strip = lambda r: ({k: strip(v) for k, v in r.items() if k != "type"} if isinstance(r, dict) else r)  # noqa: E731
    assert strip(a.rope_parameters) == strip(b.rope_parameters), (arch, a.rope_parameters, b.rope_parameters)
    assert getattr(a, "layer_types", None) == getattr(b, "layer_types", None), arch
    with open(os.path.join(d, "config_v4.json"), "w") as f:
        json.dump(c4, f, indent=2, sort_keys=True)
        f.write("\n")


def hf_run(arch, seed, B=2, S=8, valid=(8, 5)):
    cfg, M, _ = _hf_archs()[arch]
    d = os.path.join(OUT, "hf", arch)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(seed)
    cfg._attn_implementation = "eager"
    model = M(cfg).to(torch.bfloat16)
    g = gen(seed + 1)
    with torch.no_grad():  # non-trivial norm weights and biases so that they matter
        for n, p in model.named_parameters():
            if n.endswith("q_norm.weight") or n.endswith("k_norm.weight") or (
                    n.endswith(".bias") and ("attn" in n or "attention" in n)):
                p.copy_(randn(g, *p.shape, scale=0.5).to(p.dtype))
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    cpath = os.path.join(d, "config.json")
    with open(cpath) as f:
        cj = json.load(f)
    cj.pop("transformers_version", None)
    with open(cpath, "w") as f:
        json.dump(cj, f, indent=2, sort_keys=True)
        f.write("\n")
    model = M.from_pretrained(d, attn_implementation="eager").float().eval()
    E = model.config.get_text_config().hidden_size
    for tag, SS, vv in (("", S, valid), ("s1_", 1, (1, 1))):
        am = torch.zeros(B, SS)
        for b, L in enumerate(vv):  # left padding: the valid rows of a causal layer see padded keys
            am[b, SS - L:] = 1.0
        embeds = randn(g, B, SS, E)
        caps = _run_capture(model, arch, embeds, am.long())
        np.save(os.path.join(d, "mask%s.npy" % tag.rstrip("_") if tag else "mask.npy"),
                am.numpy().astype(np.float32))
        for i, (x, y) in enumerate(caps):
            if tag and i > 0:
                break
            np.save(os.path.join(d, "x%s%d.npy" % (tag, i)), x.numpy().astype(np.float32))
            np.save(os.path.join(d, "y%s%d.npy" % (tag, i)), y.numpy().astype(np.float32))
        if not tag:
            _layer0_grads(model, arch, embeds, am, g, d)
    if arch in V4_ARCHS:  # config_v4.json: the same configuration as transformers 4 wrote it
        _write_config_v4(arch, d)
    if arch == "qwen2":  # the same weights as a sharded checkpoint (index + shards)
        sd = os.path.join(d, "sharded")
        M.from_pretrained(d).to(torch.bfloat16).save_pretrained(sd, max_shard_size="12KB")
        for extra in ("generation_config.json", "config.json"):
            if os.path.exists(os.path.join(sd, extra)):
                os.remove(os.path.join(sd, extra))
    return d


def hf_run_long(seed=77, S=1024):
    """Qwen2 with E = 8 at S = 1024 (one sequence): tests/fixtures/hf/qwen2_long/."""
    import transformers as T
    arch = "qwen2"
    cfg = T.Qwen2Config(hidden_size=8, num_attention_heads=2, num_key_value_heads=1,
                        use_sliding_window=True, sliding_window=200, max_window_layers=1,
                        vocab_size=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                        intermediate_size=8, num_hidden_layers=2, initializer_range=0.5)
    d = os.path.join(OUT, "hf", "qwen2_long")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(seed)
    cfg._attn_implementation = "eager"
    model = T.Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(d, safe_serialization=True)
    if os.path.exists(os.path.join(d, "generation_config.json")):
        os.remove(os.path.join(d, "generation_config.json"))
    cpath = os.path.join(d, "config.json")
    with open(cpath) as f:
        cj = json.load(f)
    cj.pop("transformers_version", None)
    with open(cpath, "w") as f:
        json.dump(cj, f, indent=2, sort_keys=True)
        f.write("\n")
    model = T.Qwen2ForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
    g = gen(seed + 1)
    am = torch.ones(1, S)
    caps = _run_capture(model, arch, randn(g, 1, S, 8), am.long())
    np.save(os.path.join(d, "mask.npy"), am.numpy().astype(np.float32))
    for i, (x, y) in enumerate(caps):
        np.save(os.path.join(d, "x%d.npy" % i), x.numpy().astype(np.float32))
        np.save(os.path.join(d, "y%d.npy" % i), y.numpy().astype(np.float32))
    return d


HF_RUNS = ["qwen2", "qwen3", "mistral", "gemma2", "gemma3", "stablelm", "phi3", "phi", "gpt_neox",
           "gpt2", "bert", "rope_linear", "rope_dynamic", "rope_yarn", "rope_longrope",
           "mixtral", "roberta", "gemma3_mm"]  # append only: each case's seed is 4000 + its index


# ─── self-check: recompute every case from its metadata alone ───────────────
def _inv_freq(md, D):
    theta = float(md["rope_theta"]) or 10000.0
    inv = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    if md["rope_scaling"] == "linear":
        inv = inv / float(md["rope_factor"])
    elif md["rope_scaling"] == "llama3":
        f, lo, hi = (float(md[k]) for k in ("rope_factor", "rope_low_freq_factor",
                                            "rope_high_freq_factor"))
        old = float(md["rope_original_max_pos"])
        wl = 2 * torch.pi / inv
        smooth = (old / wl - lo) / (hi - lo)
        mid = (1 - smooth) * inv / f + smooth * inv
        inv = torch.where(wl > old / lo, inv / f, torch.where(wl < old / hi, inv, mid))
    return inv


def _rope_neox(t, pos, inv):  # t (B, S, H, D), pos (B, S)
    ang = pos[..., None].double() * inv  # (B, S, D/2)
    cos, sin = ang.cos()[:, :, None], ang.sin()[:, :, None]
    h = t.shape[-1] // 2
    t1, t2 = t[..., :h], t[..., h:]
    return torch.cat((t1 * cos - t2 * sin, t2 * cos + t1 * sin), -1)


def reference_from_metadata(path):
    """float64 re-implementation of attn's layer semantics, driven only by the
    file's metadata and HF-named tensors. Returns {name: max|a-b| / max(max|b|, 1)}."""
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        md = f.metadata()
        T = {k: f.get_tensor(k).double() for k in f.keys()}
    E, H = int(md["embed_dim"]), int(md["num_heads"])
    Hkv = int(md["num_kv_heads"]) or H
    D = int(md["head_dim"]) or E // H
    sf = md["layout"] == "seq_first"
    tb = (lambda t: t.transpose(0, 1)) if sf else (lambda t: t)
    P = {k: T[k].clone().requires_grad_() for k in T
         if k.endswith((".weight", ".bias")) and not k.startswith(("torch.", "grad."))}
    r = int(md["lora_rank"])
    lora_alpha = float(md["lora_alpha"])
    if r:
        for p in P.values():
            p.requires_grad_(".lora_" in next(k for k, v in P.items() if v is p))

    def lin(name, inp):
        out = inp @ P[name + ".weight"].t()
        if name + ".bias" in P:
            out = out + P[name + ".bias"]
        if name + ".lora_A.weight" in P:
            out = out + (lora_alpha / r) * (inp @ P[name + ".lora_A.weight"].t()) @ \
                P[name + ".lora_B.weight"].t()
        return out

    x = tb(T["x"]).clone().requires_grad_()
    key = tb(T["key"]).clone().requires_grad_() if "key" in T else None
    value = tb(T["value"]).clone().requires_grad_() if "value" in T else None
    kin = key if key is not None else x
    vin = value if value is not None else kin
    B, Sq, Skv = x.shape[0], x.shape[1], kin.shape[1]
    q = lin("q_proj", x).view(B, Sq, H, D)
    k = lin("k_proj", kin).view(B, Skv, Hkv, D)
    v = lin("v_proj", vin).view(B, Skv, Hkv, D)
    if int(md["qk_norm"]):
        eps = float(md["qk_norm_eps"]) or 1e-6
        q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + eps) * P["q_norm.weight"]
        k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + eps) * P["k_norm.weight"]
    if md["rope"] == "neox":
        pos = T["positions"] if "positions" in T else torch.arange(Sq)[None].expand(B, Sq)
        inv = _inv_freq(md, D)
        q, k = _rope_neox(q, pos, inv), _rope_neox(k, pos, inv)
    scale = float(md["scale"]) or D ** -0.5
    k = k.repeat_interleave(H // Hkv, dim=2)
    v = v.repeat_interleave(H // Hkv, dim=2)
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
    allowed = torch.ones(B, 1, Sq, Skv, dtype=torch.bool)
    if int(md["causal"]):
        i = torch.arange(Sq)[:, None] + (Skv - Sq)
        allowed = allowed & (torch.arange(Skv)[None, :] <= i)
    if "key_padding_mask" in T:
        allowed = allowed & (T["key_padding_mask"] == 0)[:, None, None, :]
    s = s.masked_fill(~allowed, float("-inf"))
    o = torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v).reshape(B, Sq, H * D)
    y = lin("o_proj", o)
    (y * tb(T["dy"])).sum().backward()
    got = {"y": tb(y), "dx": tb(x.grad)}
    if key is not None:
        got["dkey"] = tb(key.grad)
    if value is not None:
        got["dvalue"] = tb(value.grad)
    for n, p in P.items():
        if p.grad is not None:
            got["grad." + n] = p.grad
    want = {k for k in T if k in ("y", "dx", "dkey", "dvalue") or k.startswith("grad.")}
    assert set(got) == want, (sorted(got), sorted(want))
    # same tolerance metric as tests/test_fixtures.c: max|a-b| / max(max|b|, 1)
    return {n: float((got[n].detach() - T[n]).abs().max() / T[n].abs().max().clamp_min(1.0))
            for n in sorted(got)}


CASES = [
    # name, builder, kwargs. Sizes are tiny on purpose (the files are committed).
    ("mha_bias_bf", mha_case, dict(seed=101, E=16, H=4, B=2, Sq=7, bias=True, batch_first=True)),
    ("mha_nobias_sf", mha_case, dict(seed=102, E=16, H=4, B=3, Sq=5, bias=False,
                                     batch_first=False)),
    ("mha_kpm_bf", mha_case, dict(seed=103, E=16, H=2, B=3, Sq=6, bias=True, batch_first=True,
                                  pad_lens=(6, 3, 1))),
    ("mha_cross_sf", mha_case, dict(seed=104, E=16, H=4, B=2, Sq=5, Skv=9, bias=True,
                                    batch_first=False, kdim=12, vdim=10, cross=True,
                                    pad_lens=(9, 6))),
    ("mha_cross_kv_bf", mha_case, dict(seed=105, E=16, H=2, B=2, Sq=6, Skv=4, bias=True,
                                       batch_first=True, kdim=8, vdim=8, cross=True,
                                       value_is_key=True)),
    ("llama_gqa_rope", decoder_case,
     dict(seed=201, family="llama", B=2, S=8, hidden_size=32, num_attention_heads=4,
          num_key_value_heads=2, max_position_embeddings=64,
          rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
          positions=[list(range(8)), list(range(3, 11))])),
    ("llama3_rope_scaling", decoder_case,
     dict(seed=202, family="llama", B=2, S=6, hidden_size=16, num_attention_heads=4,
          num_key_value_heads=1, head_dim=8, max_position_embeddings=512, attention_bias=True,
          rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 64},
          positions=[[0, 17, 40, 95, 150, 301], [5, 6, 7, 200, 201, 202]])),
    ("qwen2_bias", decoder_case,
     dict(seed=301, family="qwen2", B=2, S=7, hidden_size=32, num_attention_heads=4,
          num_key_value_heads=2, max_position_embeddings=64,
          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    ("qwen3_qknorm", decoder_case,
     dict(seed=302, family="qwen3", B=2, S=7, hidden_size=16, num_attention_heads=4,
          num_key_value_heads=2, head_dim=8, max_position_embeddings=64, rms_norm_eps=1e-6,
          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    ("bert_selfattn", bert_case, dict(seed=401, E=16, H=2, B=2, S=7, keep_lens=(7, 4))),
    ("llama_lora_qv", decoder_case,
     dict(seed=501, family="llama", B=2, S=6, hidden_size=16, num_attention_heads=4,
          num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
          rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
          lora=(4, 8.0, ("q", "v")))),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[1:])
    for name, fn, kw in CASES:
        if only and name not in only:
            continue
        p = fn(name, **kw)
        err = reference_from_metadata(p)
        worst = max(err, key=err.get)
        print("wrote %-50s %7d bytes  self-check max rel err %.2e (%s)"
              % (os.path.relpath(p, ROOT), os.path.getsize(p), err[worst], worst))
        if err[worst] > 1e-5:
            sys.exit("self-check failed for %s: %s" % (name, err))
    dirs = []
    if not only or "llama_run" in only:
        dirs.append(llama_run())
    for k, arch in enumerate(HF_RUNS):
        if not only or arch in only or "hf" in only:
            dirs.append(hf_run(arch, seed=4000 + k))
    if not only or "qwen2_long" in only or "hf" in only:
        dirs.append(hf_run_long())
    for d in dirs:
        for f in sorted(os.listdir(d)):
            fp = os.path.join(d, f)
            print("wrote %-50s %7d bytes" % (os.path.relpath(fp, ROOT), os.path.getsize(fp)))
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))


if __name__ == "__main__":
    main()
