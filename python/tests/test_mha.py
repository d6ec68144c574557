# SPDX-License-Identifier: MIT
"""attn.MHA (the attn_mha layer) against a float64 NumPy reference built from its own
parameters; safetensors save/load; HF config.json; KV cache; errors."""
import json

import numpy as np
import pytest

import attn

import reference
from test_sdpa import _err, close


def ref_layer(m, x, dy, causal):
    P = {k: v.astype(np.float64) for k, v in m.parameters().items()}
    c = m.config
    B, S, E = x.shape
    H, Hkv, D = c["num_heads"], c["num_kv_heads"], c["head_dim"]
    x64 = x.astype(np.float64)

    def lin(name, a):
        y = a @ P[name + ".weight"].T
        return y + P[name + ".bias"] if name + ".bias" in P else y

    q = lin("q_proj", x64).reshape(B, S, H, D)
    k = lin("k_proj", x64).reshape(B, S, Hkv, D)
    v = lin("v_proj", x64).reshape(B, S, Hkv, D)
    o, _, _ = reference.sdpa(q, k, v, causal=causal, align="bottom_right")
    of = o.reshape(B, S, H * D)
    y = lin("o_proj", of)
    do = (dy @ P["o_proj.weight"]).reshape(B, S, H, D)
    _, _, (dq, dk, dv) = reference.sdpa(q, k, v, do, causal=causal, align="bottom_right")
    g = {"o_proj.weight": np.einsum("bse,bsf->ef", dy, of)}
    dx = np.zeros_like(x64)
    for name, d in (("q_proj", dq), ("k_proj", dk), ("v_proj", dv)):
        d = d.reshape(B, S, -1)
        g[name + ".weight"] = np.einsum("bso,bsi->oi", d, x64)
        if name + ".bias" in P:
            g[name + ".bias"] = d.sum(axis=(0, 1))
        dx += d @ P[name + ".weight"]
    if "o_proj.bias" in P:
        g["o_proj.bias"] = dy.sum(axis=(0, 1))
    return y, dx, g


@pytest.mark.parametrize("seed", range(4))
def test_forward_backward_vs_float64(seed):
    rng = np.random.default_rng(seed)
    Hkv = int(rng.integers(1, 3))
    H = Hkv * int(rng.integers(1, 3))
    D = int(rng.choice([8, 16]))
    E = int(rng.choice([16, 32]))
    causal = bool(seed % 2)
    m = attn.MHA(embed_dim=E, num_heads=H, num_kv_heads=Hkv, head_dim=D, causal=int(causal),
                 bias_q=1, bias_v=1, bias_o=seed % 2)
    m.init_weights("normal", seed=seed + 1)
    for p in m.parameters().values():  # views: writable in place
        p += rng.normal(0, 0.1, p.shape).astype(np.float32)
    B, S = int(rng.integers(1, 3)), int(rng.integers(1, 12))
    x = rng.normal(0, 1, (B, S, E)).astype(np.float32)
    dy = rng.normal(0, 1, (B, S, E)).astype(np.float32)
    m.train()
    m.zero_grad()
    y = m.forward(x)
    dx, dk, dv = m.backward(dy)
    assert dk is None and dv is None
    ry, rdx, rg = ref_layer(m, x, dy.astype(np.float64), causal)
    close(y, ry, "y")
    close(dx, rdx, "dx", tol=2e-4)
    grads = m.gradients()
    assert set(grads) == set(rg)
    for name in rg:
        close(grads[name], rg[name], name, tol=2e-4)
    # seq-first layout gives the same result
    m.eval()
    y2 = m.forward(x.transpose(1, 0, 2), layout="seq_first")
    close(y2.transpose(1, 0, 2), y, "y (seq_first)", tol=1e-5)


def test_parameters_are_views():
    m = attn.MHA(embed_dim=16, num_heads=2)
    w = m.parameters()["q_proj.weight"]
    w[...] = 0.5
    assert np.all(m.parameters()["q_proj.weight"] == 0.5)
    del m
    assert np.all(w == 0.5)  # the view keeps the layer alive


def test_safetensors_roundtrip(tmp_path):
    m = attn.MHA(embed_dim=32, num_heads=4, bias_q=1, bias_k=1, bias_v=1, bias_o=1)
    m.init_weights("normal", seed=3)
    path = str(tmp_path / "layer.safetensors")
    m.save(path, prefix="model.layers.0.self_attn")
    m2 = attn.MHA(embed_dim=32, num_heads=4, bias_q=1, bias_k=1, bias_v=1, bias_o=1)
    m2.load(path, prefix="model.layers.0.self_attn")
    for name, a in m.parameters().items():
        assert np.array_equal(a, m2.parameters()[name]), name
    x = np.random.default_rng(0).normal(0, 1, (2, 5, 32)).astype(np.float32)
    assert np.array_equal(m.forward(x), m2.forward(x))
    _err(lambda: m2.load(path, prefix="wrong"), "ATTN_ERR_NOT_FOUND")
    _err(lambda: m2.load(str(tmp_path / "missing.safetensors")), "ATTN_ERR_IO")


def test_hf_config(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 256, "num_attention_heads": 8,
           "num_key_value_heads": 2, "rope_theta": 500000.0, "num_hidden_layers": 2,
           "attention_bias": False, "max_position_embeddings": 2048}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    c, info = attn.hf_config(str(p))
    assert (c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim) == (256, 8, 2, 32)
    assert c.rope == 1 and c.rope_theta == 500000.0 and c.causal == 1
    assert info["model_type"] == "llama" and info["prefix"].endswith("self_attn")
    m = attn.MHA.from_hf(str(p), layer=1)
    assert m.config["num_kv_heads"] == 2
    cfg["model_type"] = "no_such_model"
    p.write_text(json.dumps(cfg))
    e = _err(lambda: attn.hf_config(str(p)), "ATTN_ERR_UNSUPPORTED")
    assert "no_such_model" in e.message


def test_kvcache_matches_full_causal_forward():
    rng = np.random.default_rng(11)
    E, H, Hkv = 32, 4, 2
    m = attn.MHA(embed_dim=E, num_heads=H, num_kv_heads=Hkv, causal=1, rope=1)
    m.init_weights("normal", seed=5)
    B, S = 2, 9
    x = rng.normal(0, 1, (B, S, E)).astype(np.float32)
    full = m.forward(x)
    cache = attn.KVCache(B, 16, Hkv, E // H)
    y0 = m.forward_cached(cache, x[:, :5])  # prefill
    steps = [m.forward_cached(cache, x[:, i:i + 1]) for i in range(5, S)]  # decode
    assert cache.len(0) == S and cache.capacity == 16
    close(np.concatenate([y0] + steps, axis=1), full, "cached", tol=1e-5)
    cache.truncate(3)
    assert cache.len(1) == 3
    _err(lambda: m.forward_cached(cache, np.zeros((B, 14, E), np.float32)), "ATTN_ERR_CAPACITY")
    assert cache.len(0) == 3  # unchanged on error
    cache.reset()
    assert cache.len(0) == 0


def test_kvcache_types():
    rng = np.random.default_rng(12)
    E, H, Hkv = 32, 4, 2
    m = attn.MHA(embed_dim=E, num_heads=H, num_kv_heads=Hkv, causal=1, rope=1)
    m.init_weights("normal", seed=6)
    B, S = 2, 9
    x = rng.normal(0, 1, (B, S, E)).astype(np.float32)
    full = m.forward(x)
    ref = attn.KVCache(B, 16, Hkv, E // H)
    m.forward_cached(ref, x)
    k32, _ = ref.read(1)
    for dtype, tol in (("bf16", 1e-2), ("f16", 2e-3), ("int8", 2e-2)):
        cache = attn.KVCache(B, 16, Hkv, E // H, dtype=dtype)
        assert cache.dtype == dtype
        y0 = m.forward_cached(cache, x[:, :5])
        steps = [m.forward_cached(cache, x[:, i:i + 1]) for i in range(5, S)]
        close(np.concatenate([y0] + steps, axis=1), full, "cached " + dtype, tol=tol)
        k, v = cache.read(1)
        assert k.shape == (S, Hkv, E // H) and v.shape == k.shape
        if dtype == "bf16":  # bf16 values: the low 16 bits of every fp32 are zero
            assert not np.any(k.view(np.uint32) & 0xFFFF)
        if dtype == "int8":  # per (token, head): within max|row| / 254 (+ rounding) of the fp32 cache's row
            a = np.abs(k32).max(axis=2, keepdims=True)
            assert np.all(np.abs(k - k32) <= a / 254 + a * 2.0 ** -22)
    with pytest.raises(ValueError):
        attn.KVCache(B, 16, Hkv, E // H, dtype="int4")
    _err(lambda: attn.KVCache(B, 16, Hkv, E // H).read(0, 0, 1), "ATTN_ERR_SHAPE")


def test_layer_errors():
    _err(lambda: attn.MHA(embed_dim=30, num_heads=4), "ATTN_ERR_CONFIG")
    m = attn.MHA(embed_dim=16, num_heads=2)
    _err(lambda: m.backward(np.zeros((1, 1, 16), np.float32)), "ATTN_ERR_STATE")
    with pytest.raises(TypeError):
        attn.MHA(embed_dim=16, num_heads=2, no_such_field=1)


def _round16(a, dtype):
    """float32 -> the nearest bf16 / f16 value (nearest even), as float32."""
    a = np.asarray(a, np.float32)
    if dtype == "f16":
        return a.astype(np.float16).astype(np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("wdt", ["bf16", "f16"])
def test_weight_dtype(tmp_path, wdt):
    """16-bit projection weights: the checkpoint rounded once on load; the forward equals an
    fp32 layer holding the rounded values (and the float64 reference); inference only."""
    cfg = dict(embed_dim=32, num_heads=4, num_kv_heads=2, causal=1, bias_q=1, bias_o=1)
    m32 = attn.MHA(**cfg)
    m32.init_weights("normal", seed=5)
    src = str(tmp_path / "fp32.safetensors")
    m32.save(src)
    m16 = attn.MHA(weight_dtype=wdt, **cfg)
    m16.load(src)
    assert m16.config["weight_dtype"] == {"f16": 1, "bf16": 2}[wdt]
    assert m16.proj_kernel in ("widen", "sbgemm")
    names = set(m16.parameters())
    assert names == {"q_proj.bias", "o_proj.bias"}, names
    assert m16.gradients() == {}
    assert m16.param_bytes < m32.param_bytes / 3
    # saved widened: an fp32 layer loading that file holds exactly the rounded weights
    wide = str(tmp_path / "wide.safetensors")
    m16.save(wide)
    mr = attn.MHA(**cfg)
    mr.load(wide)
    for name, a in m32.parameters().items():
        want = _round16(a, wdt) if name.endswith("_proj.weight") else a
        assert np.array_equal(mr.parameters()[name], want), name
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 32), (2, 9, 32)]:  # 3 rows: the few-row kernel; 18: the panel one
        x = rng.normal(0, 1, shape).astype(np.float32)
        y16 = m16.forward(x)
        ry, _, _ = ref_layer(mr, x, np.zeros(shape), causal=True)
        tol = 1e-5 if m16.proj_kernel == "widen" else 2e-2  # sbgemm rounds x to bf16
        close(y16, ry, "y (%s weights, %s)" % (wdt, shape), tol=tol)
        if m16.proj_kernel == "widen":
            close(y16, mr.forward(x), "y vs the fp32 layer", tol=1e-5)
    _err(lambda: m16.train(), "ATTN_ERR_UNSUPPORTED")
    with pytest.raises(ValueError):
        attn.MHA(weight_dtype="int8", **cfg)
