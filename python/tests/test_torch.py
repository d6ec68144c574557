# SPDX-License-Identifier: MIT
"""attn.torch against torch's own SDPA and nn.MultiheadAttention: forward and autograd
gradients on random configs (skipped when torch is not installed)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import attn.torch as at  # noqa: E402


def tclose(a, r, name, tol=1e-4):
    err = (a - r).abs().max().item() if a.numel() else 0.0
    bound = tol * max(1.0, r.abs().max().item() if r.numel() else 0.0)
    assert err <= bound, "%s: max error %.3g > %.3g" % (name, err, bound)


def _tensor(shape, g, layout):
    """A leaf tensor of `shape` (B, H, S, D) in one of several memory layouts."""
    B, H, S, D = shape
    if layout == "bshd":  # permuted view of (B, S, H, D) memory
        t = torch.randn(B, S, H, D, generator=g).transpose(1, 2)
    elif layout == "padded":  # rows padded: strides not those of the shape
        t = torch.randn(B, H, S, D + 5, generator=g)[..., :D]
    else:
        t = torch.randn(B, H, S, D, generator=g)
    return t.detach().requires_grad_(True)


CASES = ["plain", "causal", "bool_mask", "float_mask", "gqa", "scale", "strided", "cross"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_sdpa_vs_torch(case, seed):
    g = torch.Generator().manual_seed(100 * CASES.index(case) + seed)
    rng = np.random.default_rng(seed)
    B, Hkv = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    Hq = Hkv * (int(rng.integers(2, 4)) if case == "gqa" else 1)
    L = int(rng.integers(1, 30))
    S = L if case in ("causal",) else int(rng.integers(1, 30))
    D, Dv = int(rng.choice([16, 32, 64])), int(rng.choice([16, 32]))
    layout = ("bshd", "padded", "bhsd")[seed] if case == "strided" else "bhsd"
    q = _tensor((B, Hq, L, D), g, layout)
    k = _tensor((B, Hkv, S, D), g, layout)
    v = _tensor((B, Hkv, S, Dv), g, layout)
    kw = {}
    if case == "causal":
        kw["is_causal"] = True
    if case == "bool_mask":
        m = torch.rand(B, 1, L, S, generator=g) < 0.7
        m[..., 0] = True  # no fully masked row (torch gives NaN there, attn 0)
        kw["attn_mask"] = m
    if case == "float_mask":
        kw["attn_mask"] = torch.randn(L, S, generator=g)
    if case == "scale":
        kw["scale"] = float(rng.uniform(0.05, 0.5))
    if case == "gqa":
        kw["enable_gqa"] = True
    o = at.scaled_dot_product_attention(q, k, v, **kw)
    r = F.scaled_dot_product_attention(q, k, v, **kw)
    assert o.shape == r.shape
    tclose(o, r, "o")
    do = torch.randn(r.shape, generator=g)
    ga = torch.autograd.grad(o, (q, k, v), do)
    gr = torch.autograd.grad(r, (q, k, v), do)
    for name, a, b in zip(("dq", "dk", "dv"), ga, gr):
        tclose(a, b, name, tol=2e-4)


def test_sdpa_3d_inputs_and_no_grad_path():
    q = torch.randn(3, 7, 16)
    o = at.scaled_dot_product_attention(q, q, q, is_causal=True)
    tclose(o, F.scaled_dot_product_attention(q, q, q, is_causal=True), "o")


def test_sdpa_errors():
    q = torch.randn(1, 4, 5, 8)
    k = torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError):
        at.scaled_dot_product_attention(q, k, k)  # GQA without enable_gqa
    with pytest.raises(TypeError):
        at.scaled_dot_product_attention(q.double(), q.double(), q.double())
    with pytest.raises(ValueError):
        at.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(5, 5, dtype=torch.bool), is_causal=True)
    with pytest.raises(at.AttnError) as e:
        at.scaled_dot_product_attention(q, torch.randn(1, 4, 5, 300), torch.randn(1, 4, 5, 300))  # D > 256
    assert e.value.status_name == "ATTN_ERR_SHAPE" and "300" in e.value.message


def test_sdpa_dropout_reproducible_and_consistent():
    q = torch.randn(2, 2, 16, 16, requires_grad=True)
    torch.manual_seed(0)
    o1 = at.scaled_dot_product_attention(q, q, q, dropout_p=0.25)
    torch.manual_seed(0)
    o2 = at.scaled_dot_product_attention(q, q, q, dropout_p=0.25)
    assert torch.equal(o1, o2)
    o3 = at.scaled_dot_product_attention(q, q, q, dropout_p=0.25)
    assert not torch.equal(o1, o3)
    # the backward uses the forward's keep mask: directional derivative matches finite differences
    torch.manual_seed(1)
    qd = torch.randn(1, 2, 8, 16, dtype=torch.float32)
    u = torch.randn_like(qd)
    do = torch.randn(1, 2, 8, 16)

    def loss(x, seed=7):
        torch.manual_seed(seed)
        return (at.scaled_dot_product_attention(x, x, x, dropout_p=0.3) * do).sum()

    x = qd.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(loss(x), x)
    eps = 1e-2
    fd = (loss(qd + eps * u) - loss(qd - eps * u)) / (2 * eps)
    assert abs(fd.item() - (gx * u).sum().item()) <= 2e-2 * max(1.0, abs(fd.item()))


MHA_CASES = [dict(), dict(batch_first=True), dict(bias=False), dict(kdim=12, vdim=20),
             dict(add_bias_kv=True), dict(add_zero_attn=True)]


@pytest.mark.parametrize("ci", range(len(MHA_CASES)))
@pytest.mark.parametrize("masks", ["none", "key_padding", "attn_bool", "attn_float", "causal"])
def test_multihead_attention_vs_torch(ci, masks):
    kw = MHA_CASES[ci]
    torch.manual_seed(ci * 10 + len(masks))
    E, H, L, S, N = 32, 4, 6, 9, 2
    if masks == "causal":
        S = L
    ref = torch.nn.MultiheadAttention(E, H, **kw)
    mine = at.MultiheadAttention(E, H, **kw)
    mine.load_state_dict(ref.state_dict())  # same names, loads unchanged
    assert set(mine.state_dict()) == set(ref.state_dict())
    ref.load_state_dict(mine.state_dict())
    bf = kw.get("batch_first", False)
    shp = (lambda n, s, e: (n, s, e)) if bf else (lambda n, s, e: (s, n, e))
    query = torch.randn(*shp(N, L, E), requires_grad=True)
    key = torch.randn(*shp(N, S, kw.get("kdim", E)), requires_grad=True)
    value = torch.randn(*shp(N, S, kw.get("vdim", E)), requires_grad=True)
    fk = {}
    if masks == "key_padding":
        kp = torch.zeros(N, S, dtype=torch.bool)
        kp[0, -3:] = True
        fk["key_padding_mask"] = kp
    if masks == "attn_bool":
        am = torch.rand(L, S) < 0.3
        am[:, 0] = False  # True = not allowed (torch's convention here)
        fk["attn_mask"] = am
    if masks == "attn_float":
        fk["attn_mask"] = torch.randn(L, S)
    if masks == "causal":
        fk["attn_mask"] = torch.nn.Transformer.generate_square_subsequent_mask(L)
        fk["is_causal"] = True
    y1, w1 = mine(query, key, value, **fk)
    y2, w2 = ref(query, key, value, **fk)
    tclose(y1, y2, "y")
    tclose(w1, w2, "weights")
    dy = torch.randn_like(y2)
    params = [p for p in ref.parameters()]
    names = [n for n, _ in ref.named_parameters()]
    g1 = torch.autograd.grad(y1, [query, key, value] + list(mine.parameters()), dy)
    g2 = torch.autograd.grad(y2, [query, key, value] + params, dy)
    assert [n for n, _ in mine.named_parameters()] == names
    for name, a, b in zip(["query", "key", "value"] + names, g1, g2):
        tclose(a, b, "d" + name, tol=2e-4)
    y3, w3 = mine(query, key, value, need_weights=False, **fk)
    assert w3 is None
    tclose(y3, y2, "y (need_weights=False)")


def test_inference_hot_path_matches():
    """no_grad calls without mask / dropout use a cached plan after the first: same results."""
    at._plans.d.clear()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for i in range(3):
            q = torch.randn(2, 4, 1, 32, generator=g)
            k = torch.randn(2, 20, 2, 32, generator=g).transpose(1, 2)  # strided
            o = at.scaled_dot_product_attention(q, k, k, enable_gqa=True, is_causal=False)
            tclose(o, F.scaled_dot_product_attention(q, k, k, enable_gqa=True), "o")
    assert len(at._plans.d) == 1
    with pytest.raises(ValueError):
        at.scaled_dot_product_attention(q, k, k)  # enable_gqa=False is another key: refused


def _rope_torch(x, pos, theta):
    """transformers' Llama formulation (rotate_half on (B, S, H, D)) in float64"""
    D = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = pos.to(torch.float64)[..., None] * inv  # (B, S, D/2)
    emb = torch.cat((ang, ang), dim=-1)[:, :, None, :]
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return x * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()


@pytest.mark.parametrize("layout", ["bshd", "bhsd"])
def test_rope_autograd_vs_torch(layout):
    g = torch.Generator().manual_seed(11)
    B, S, H, D = 2, 7, 3, 16
    if layout == "bhsd":  # (B, H, S, D) memory seen as (B, S, H, D): no copy
        x = torch.randn(B, H, S, D, generator=g).transpose(1, 2).detach().requires_grad_(True)
    else:
        x = torch.randn(B, S, H, D, generator=g).requires_grad_(True)
    pos = torch.randint(0, 500, (B, S), generator=g)
    y = at.rope(x, pos, theta=50000.0)
    x64 = x.detach().double().requires_grad_(True)
    r = _rope_torch(x64, pos, 50000.0)
    tclose(y, r.float(), "y", tol=1e-5)
    dy = torch.randn(B, S, H, D, generator=g)
    y.backward(dy)
    r.backward(dy.double())
    tclose(x.grad, x64.grad.float(), "dx", tol=1e-5)
    with pytest.raises(TypeError):
        at.rope(x.double(), pos)
