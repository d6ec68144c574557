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
    if not only or "llama_run" in only:
        d = llama_run()
        for f in sorted(os.listdir(d)):
            fp = os.path.join(d, f)
            print("wrote %-50s %7d bytes" % (os.path.relpath(fp, ROOT), os.path.getsize(fp)))
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))


if __name__ == "__main__":
    main()
