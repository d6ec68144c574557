# SPDX-License-Identifier: MIT
"""attn.rope / attn.rope_backward against the float64 reference (tests/reference.py): every
scaling, both layouts, partial rotary, shared / per-batch / default positions; the backward as
the exact VJP (adjoint identity); in place and zero-copy by pointer; error mapping."""
import numpy as np
import pytest

import attn
from attn import _lib

import reference

SHORT = np.linspace(1.0, 2.0, 64).astype(np.float32)
LONG = np.linspace(1.5, 16.0, 64).astype(np.float32)
SCALINGS = {
    "none": dict(theta=10000.0),
    "linear": dict(theta=500000.0, scaling="linear", factor=2.5),
    "llama3": dict(theta=500000.0, scaling="llama3", factor=8.0, low_freq_factor=1.0,
                   high_freq_factor=4.0, original_max_pos=64),
    "dynamic": dict(scaling="dynamic", factor=3.0, max_pos=20),
    "yarn": dict(scaling="yarn", factor=4.0, original_max_pos=32, beta_fast=16.0),
    "yarn_mscale": dict(scaling="yarn", factor=16.0, original_max_pos=128, mscale=1.0,
                        mscale_all_dim=0.5, truncate=False),
    "longrope": dict(scaling="longrope", factor=8.0, original_max_pos=24, short_factor=SHORT,
                     long_factor=LONG),
}


def check(y, x, ref, att, R, kind):
    """per pair: |err| <= 1e-6 * m * (|x1| + |x2|); passthrough dims exact"""
    x = np.asarray(x, np.float64)
    i1 = np.arange(0, R, 2) if kind == "gptj" else np.arange(R // 2)
    i2 = i1 + 1 if kind == "gptj" else i1 + R // 2
    tol = 1e-6 * att * (np.abs(x[..., i1]) + np.abs(x[..., i2])) + 1e-30
    for idx in (i1, i2):
        assert np.all(np.abs(y[..., idx] - ref[..., idx]) <= tol)
    assert np.array_equal(y[..., R:], x[..., R:].astype(np.float32))


@pytest.mark.parametrize("name", sorted(SCALINGS))
@pytest.mark.parametrize("kind", ["neox", "gptj"])
@pytest.mark.parametrize("pos_kind", ["batch", "shared", "default"])
def test_vs_float64(name, kind, pos_kind):
    rng = np.random.default_rng(abs(hash((name, kind, pos_kind))) % 2**32)
    B, S, H, D = 2, 9, 3, 32
    R = 20 if pos_kind == "shared" else 0  # partial rotary on one of the three
    cfg = SCALINGS[name]
    x = (rng.normal(0, 2, (B, S, H, D))).astype(np.float32)
    pos = {"batch": rng.integers(0, 200, (B, S)), "shared": rng.integers(0, 50, S), "default": None}[pos_kind]
    for backward in (False, True):
        fn = attn.rope_backward if backward else attn.rope
        y = fn(x, pos, kind=kind, rope_dim=R, **cfg)
        ref = reference.rope(x, pos, kind=kind, rope_dim=R, backward=backward, **cfg)
        p = np.arange(S) if pos is None else pos
        _, att = reference.rope_inv_freq(R or D, int(np.max(p)), **cfg)
        check(y, x, ref, att, R or D, kind)


def test_backward_is_adjoint_and_in_place():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (2, 7, 2, 16)).astype(np.float32)
    dy = rng.normal(0, 1, x.shape).astype(np.float32)
    pos = rng.integers(0, 100, (2, 7))
    for cfg in SCALINGS.values():
        y = attn.rope(x, pos, **cfg).astype(np.float64)
        g = attn.rope_backward(dy, pos, **cfg).astype(np.float64)
        lhs, rhs = np.sum(dy * y), np.sum(g * x)
        assert abs(lhs - rhs) <= 1e-6 * (np.abs(dy * y).sum() + np.abs(g * x).sum())
        z = x.copy()
        assert attn.rope(z, pos, out=z, **cfg) is z
        assert np.array_equal(z, attn.rope(x, pos, **cfg))


def test_zero_copy(monkeypatch):
    seen = []
    real = _lib.lib.attn_rope_fwd

    def spy(*args):
        seen.append(tuple(_lib.View.from_buffer_copy(a) if isinstance(a, _lib.View) else a for a in args))
        return real(*args)

    monkeypatch.setattr(_lib.lib, "attn_rope_fwd", spy)
    rng = np.random.default_rng(3)
    xb = rng.normal(0, 1, (2, 4, 10, 16)).astype(np.float32)  # (B, H, S, D)
    x = xb.transpose(0, 2, 1, 3)
    out = np.empty((2, 10, 4, 16), np.float32)
    assert attn.rope(x, out=out) is out
    (_, B, S, H, D, vx, pp, psb, vy), = seen
    assert (B, S, H, D) == (2, 10, 4, 16) and pp is None and psb == 0
    assert vx.data == x.ctypes.data and (vx.stride_b, vx.stride_s, vx.stride_h) == (640, 16, 160)
    assert vy.data == out.ctypes.data
    np.testing.assert_allclose(out, reference.rope(x), rtol=0, atol=1e-5)
    seen.clear()
    attn.rope(x.astype(np.float64))  # copied once
    assert seen[0][5].data != x.ctypes.data


def _err(fn, status):
    with pytest.raises(attn.AttnError) as e:
        fn()
    assert e.value.status_name == status, str(e.value)
    assert e.value.message
    return e.value


def test_errors():
    x = np.ones((1, 4, 2, 8), np.float32)
    e = _err(lambda: attn.rope(x, rope_dim=5), "ATTN_ERR_OPTION")
    assert "rope_dim = 5" in e.message and e.func == "attn_rope_fwd"
    _err(lambda: attn.rope(x, theta=1.0), "ATTN_ERR_OPTION")
    _err(lambda: attn.rope(x, scaling="linear"), "ATTN_ERR_OPTION")  # factor 0
    _err(lambda: attn.rope(x, scaling="dynamic", factor=2.0), "ATTN_ERR_OPTION")  # max_pos 0
    _err(lambda: attn.rope_backward(x, [0, 1, -2, 3]), "ATTN_ERR_OPTION")
    out = np.ones_like(x)
    shifted = np.ones((1, 4, 2, 9), np.float32)
    _err(lambda: attn.rope(shifted[..., :8], out=shifted[..., 1:]), "ATTN_ERR_ALIAS")
    with pytest.raises(ValueError):
        attn.rope(x, [0, 1, 2])  # positions shape
    with pytest.raises(ValueError):
        attn.rope(x, kind="half")
    with pytest.raises(TypeError):
        attn.rope(x, [0.0, 1.5, 2.0, 3.0])  # not integers
    with pytest.raises(ValueError):
        attn.rope(x, scaling="longrope", factor=2.0, original_max_pos=2, short_factor=[1.0],
                  long_factor=[1.0, 1.0, 1.0, 1.0])
    assert np.all(out == 1)
