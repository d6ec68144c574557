# SPDX-License-Identifier: MIT
"""attn.torch.scaled_dot_product_attention on bfloat16 / float16 tensors (attn_sdpa_fwd_typed /
_bwd_typed): forward and autograd gradients against torch's own SDPA in float64 on the same
rounded inputs, held to twice the error of torch's own bf16 / f16 SDPA on those inputs (plus
one rounding of the result); a finite-difference check of the gradients; the exact identities
the typed kernels promise (attn.h "Reduced precision"); dtypes, copies and the hot path
(skipped when torch is not installed)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import attn.torch as at  # noqa: E402
from attn import _lib  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16}
# unit roundoff 2^-p (p = significand bits with the implicit one): a correctly rounded
# result is within U * |x| of x
U = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
CASES = ["plain", "causal", "bool_mask", "float_mask", "gqa", "scale", "strided", "cross", "odd_d", "long"]


def _tensor(shape, g, dt, layout):
    """A (B, H, S, D) leaf of dtype dt, rounded from N(0, 1), in one of several memory layouts
    (rounded first, then viewed: the view's strides are what attn receives)."""
    B, H, S, D = shape
    if layout == "bshd":  # permuted view of (B, S, H, D) memory
        t = torch.randn(B, S, H, D, generator=g).to(dt).transpose(1, 2)
    elif layout == "padded":  # rows padded: strides not those of the shape
        t = torch.randn(B, H, S, D + 5, generator=g).to(dt)[..., :D]
    else:
        t = torch.randn(B, H, S, D, generator=g).to(dt)
    return t.detach().requires_grad_(True)


def make_case(case, seed, dt):
    g = torch.Generator().manual_seed(100 * CASES.index(case) + seed)
    rng = np.random.default_rng(seed)
    B, Hkv = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    Hq = Hkv * (int(rng.integers(2, 4)) if case == "gqa" else 1)
    L = int(rng.integers(1, 40))
    S = L if case in ("causal",) else int(rng.integers(1, 40))
    D, Dv = int(rng.choice([16, 32, 64])), int(rng.choice([16, 32]))
    if case == "odd_d":  # bf16: not the dot-product-unit path (needs D even)
        D, Dv = 15, 7
    if case == "long":  # many keys per row, several key blocks, Llama's head size
        B, L, S, D, Dv = 1, 200 + 50 * seed, 300 + 61 * seed, 128, 128
    layout = ("bshd", "padded", "bhsd")[seed % 3] if case == "strided" else "bhsd"
    q = _tensor((B, Hq, L, D), g, dt, layout)
    k = _tensor((B, Hkv, S, D), g, dt, layout)
    v = _tensor((B, Hkv, S, Dv), g, dt, layout)
    kw = {}
    if case == "causal":
        kw["is_causal"] = True
    if case == "bool_mask":
        m = torch.rand(B, 1, L, S, generator=g) < 0.7
        m[..., 0] = True  # no fully masked row (torch gives NaN there, attn 0)
        kw["attn_mask"] = m
    if case == "float_mask":  # torch wants the mask in the query's dtype
        kw["attn_mask"] = torch.randn(L, S, generator=g).to(dt)
    if case == "scale":
        kw["scale"] = float(rng.uniform(0.05, 0.5))
    if case == "long":
        kw["is_causal"] = seed == 1
    if case in ("gqa", "odd_d"):
        kw["enable_gqa"] = True
    do = torch.randn(B, Hq, L, Dv, generator=g).to(dt)
    return (q, k, v), kw, do


def _f64(kw):
    m = kw.get("attn_mask")
    return dict(kw, attn_mask=m.double()) if m is not None and m.is_floating_point() else kw


def reference64(qkv, kw, do):
    """torch's SDPA in float64 on the (exactly widened) rounded inputs: o and (dq, dk, dv)."""
    x = [t.detach().double().requires_grad_(True) for t in qkv]
    o = F.scaled_dot_product_attention(*x, **_f64(kw))
    return o.detach(), torch.autograd.grad(o, x, do.double())


def maxerr(a, r):
    return (a.double() - r).abs().max().item() if r.numel() else 0.0


def within(name, a, peer, r, dt):
    """|a - r| <= 2 |peer - r| + U |r| (max norms): twice torch's own error on the same rounded
    inputs, plus one rounding of the result (what a correctly rounded answer may have)."""
    assert a.dtype == dt, "%s: dtype %s, want %s" % (name, a.dtype, dt)
    ea, ep = maxerr(a, r), maxerr(peer, r)
    floor = U[dt] * (r.abs().max().item() if r.numel() else 0.0)
    assert ea <= 2 * ep + floor, "%s: attn error %.3g > 2 x torch's %.3g + %.3g" % (name, ea, ep, floor)


@pytest.mark.parametrize("dtn", list(DTYPES))
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_lowp_vs_torch_float64(dtn, case, seed):
    dt = DTYPES[dtn]
    qkv, kw, do = make_case(case, seed, dt)
    ro, rg = reference64(qkv, kw, do)
    o = at.scaled_dot_product_attention(*qkv, **kw)
    t = F.scaled_dot_product_attention(*qkv, **kw)
    assert o.shape == t.shape
    within("o", o, t, ro, dt)
    ga = torch.autograd.grad(o, qkv, do)
    gt = torch.autograd.grad(t, qkv, do)
    for name, a, p, r in zip(("dq", "dk", "dv"), ga, gt, rg):
        within(name, a, p, r, dt)


@pytest.mark.parametrize("dtn", list(DTYPES))
@pytest.mark.parametrize("case", ["plain", "causal", "gqa", "float_mask"])
def test_lowp_gradients_vs_finite_differences(dtn, case):
    """<g, u> of attn's backward against central differences of the float64 loss
    <do, sdpa(q, k, v)> at the rounded inputs (eps 1e-4: the difference error ~1e-8 is far
    below bf16 / f16 resolution), held to twice torch's own <g, u> error + U sum |g_i u_i|."""
    dt = DTYPES[dtn]
    qkv, kw, do = make_case(case, 7, dt)
    g = torch.Generator().manual_seed(77)
    u = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in qkv]
    x64 = [t.detach().double() for t in qkv]
    kw64 = _f64(kw)

    def loss(s):
        return (F.scaled_dot_product_attention(*[x + s * d for x, d in zip(x64, u)], **kw64)
                * do.double()).sum().item()

    eps = 1e-4
    fd = (loss(eps) - loss(-eps)) / (2 * eps)

    def directional(f):
        gr = torch.autograd.grad(f(*qkv, **kw), qkv, do)
        return sum((a.double() * d).sum().item() for a, d in zip(gr, u))

    _, g64 = reference64(qkv, kw, do)
    scale = sum((a.abs() * d.abs()).sum().item() for a, d in zip(g64, u))
    ea = abs(directional(at.scaled_dot_product_attention) - fd)
    et = abs(directional(F.scaled_dot_product_attention) - fd)
    assert ea <= 2 * et + U[dt] * scale, "<g, u>: attn error %.3g, torch %.3g, floor %.3g" % (
        ea, et, U[dt] * scale)


@pytest.mark.parametrize("case", ["plain", "causal", "bool_mask", "gqa", "strided", "odd_d"])
def test_lowp_exact_identities(case):
    """attn.h "Reduced precision": outside the bf16 dot-product path (every f16 call; bf16 with
    odd D) the forward is the fp32 kernels' on the rounded inputs, rounded once: bitwise equal
    to the fp32 call rounded to the dtype. The fp32 call's o and the typed call's o agree
    within one rounding also on the bf16 fast path."""
    for dt in DTYPES.values():
        qkv, kw, _ = make_case(case, 1, dt)
        with torch.no_grad():
            o = at.scaled_dot_product_attention(*qkv, **kw)
            m = kw.get("attn_mask")
            kw32 = dict(kw, attn_mask=m.float()) if m is not None and m.is_floating_point() else kw
            o32 = at.scaled_dot_product_attention(*[t.float() for t in qkv], **kw32)
        fast = dt == torch.bfloat16 and qkv[0].shape[-1] % 2 == 0
        if not fast:
            assert torch.equal(o, o32.to(dt)), "%s: not the fp32 result rounded once" % dt
        else:  # P rounded to bf16 for P.V: |o - o32| <= 2^-9 sum_j P_ij |v_j| + one rounding
            vmax = qkv[2].detach().abs().max().item()
            assert maxerr(o, o32.double()) <= (2 ** -9 * 1.01) * vmax + U[dt] * o32.abs().max().item()


def test_lowp_dropout():
    """Dropout on typed tensors draws the same keep mask as the fp32 call (one seed from
    torch's generator): f16 equals the fp32 result rounded; bf16 is reproducible."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 24, 16, generator=g)
    for dt in DTYPES.values():
        xd = x.to(dt)
        torch.manual_seed(5)
        o = at.scaled_dot_product_attention(xd, xd, xd, dropout_p=0.3)
        torch.manual_seed(5)
        o2 = at.scaled_dot_product_attention(xd, xd, xd, dropout_p=0.3)
        assert o.dtype == dt and torch.equal(o, o2)
        torch.manual_seed(5)
        o32 = at.scaled_dot_product_attention(xd.float(), xd.float(), xd.float(), dropout_p=0.3)
        if dt == torch.float16:
            assert torch.equal(o, o32.half())
        assert torch.equal(o == 0, o32.to(dt) == 0)  # the same entries dropped


def test_lowp_dtype_rules():
    q = torch.randn(1, 2, 5, 8)
    with pytest.raises(TypeError, match="one dtype"):
        at.scaled_dot_product_attention(q.bfloat16(), q, q)  # mixed: refused, as torch
    with pytest.raises(TypeError, match="one dtype"):
        at.scaled_dot_product_attention(q.half(), q.bfloat16(), q.half())
    with pytest.raises(TypeError):
        at.scaled_dot_product_attention(q.double(), q.double(), q.double())
    with pytest.raises(at.AttnError) as e:  # the typed call's validation reaches Python
        b = torch.randn(1, 2, 5, 300).bfloat16()
        at.scaled_dot_product_attention(q.bfloat16(), b, b)
    assert e.value.status_name == "ATTN_ERR_SHAPE" and e.value.func == "attn_sdpa_fwd_typed"
    # a float32 mask with bf16 tensors is accepted (torch wants the query's dtype)
    m = torch.randn(5, 5)
    qb = q.bfloat16()
    o = at.scaled_dot_product_attention(qb, qb, qb, attn_mask=m)
    r = F.scaled_dot_product_attention(qb.double(), qb.double(), qb.double(), attn_mask=m.double())
    assert o.dtype == torch.bfloat16 and maxerr(o, r) <= 4 * U[torch.bfloat16] * r.abs().max().item()


def test_lowp_zero_copy_and_hot_path(lib_spy):
    """bf16 (B, S, H, D) memory seen as (B, H, S, D) reaches attn_sdpa_fwd_typed as the same
    pointer with its strides and dtype; no_grad calls after the first use a cached typed plan
    (new pointers, same result); the backward's gradients come back in bf16 from
    attn_sdpa_bwd_typed, also for a strided incoming gradient."""
    at._plans.d.clear()
    fwd = lib_spy("attn_sdpa_fwd_typed")
    g = torch.Generator().manual_seed(9)
    B, H, S, D = 1, 4, 11, 32
    outs = []
    with torch.no_grad():
        for _ in range(3):
            q = torch.randn(B, S, H, D, generator=g).bfloat16().transpose(1, 2)
            k = torch.randn(B, S, 2, D, generator=g).bfloat16().transpose(1, 2)
            o = at.scaled_dot_product_attention(q, k, k, enable_gqa=True)
            _, vq, vk, vv, vo, plse, *_ = fwd[-1]
            assert vq.data == q.data_ptr() and (vq.stride_b, vq.stride_s, vq.stride_h) == (S * H * D, H * D, D)
            assert vk.data == k.data_ptr() and vv.data == k.data_ptr() and plse is None
            assert vo.data == o.data_ptr() and o.dtype == torch.bfloat16
            assert (vq.dtype, vk.dtype, vo.dtype) == (_lib.DTYPE_BF16,) * 3
            outs.append((o, q, k))
    assert len(at._plans.d) == 1 and len(fwd) == 3
    for o, q, k in outs:
        r = F.scaled_dot_product_attention(q.double(), k.double(), k.double(), enable_gqa=True)
        t = F.scaled_dot_product_attention(q, k, k, enable_gqa=True)
        within("o (hot path)", o, t, r, torch.bfloat16)
    bwd = lib_spy("attn_sdpa_bwd_typed")
    q, k = (t.detach().requires_grad_(True) for t in outs[0][1:])
    o = at.scaled_dot_product_attention(q, k, k, enable_gqa=True)
    do = torch.randn(B, S, H, D, generator=g).bfloat16().transpose(1, 2)  # strided gradient
    dq, dk = torch.autograd.grad(o, (q, k), do)
    args = bwd[-1]
    assert args[1].data == q.data_ptr() and args[5].data == do.data_ptr()
    assert all(a.dtype == _lib.DTYPE_BF16 for a in args[1:6] + args[7:10])
    assert dq.dtype == dk.dtype == torch.bfloat16 and dq.shape == q.shape and dk.shape == k.shape
