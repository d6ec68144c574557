# SPDX-License-Identifier: MIT
"""attn.sdpa / attn.sdpa_backward on float16 arrays (attn_sdpa_fwd_typed / _bwd_typed): every
option kind against the float64 reference on the rounded inputs, the exact identity the typed
kernels promise (the fp32 kernels' result on the rounded inputs, rounded once), the dtype
rules, zero copy by pointer and the cached hot path."""

import numpy as np
import pytest

import attn
from attn import _lib

import reference
from test_sdpa import OPTIONS, close, random_case

F16 = np.float16
U16 = 2.0 ** -11  # float16 unit roundoff: a correctly rounded x16 is within U16 |x| of x


def _rounded(rng, kind):
    q, k, v, opts = random_case(kind, rng)
    return q.astype(F16), k.astype(F16), v.astype(F16), opts


def _up(*a):
    return [np.asarray(x, np.float32) for x in a]


@pytest.mark.parametrize("kind", OPTIONS)
@pytest.mark.parametrize("seed", range(3))
def test_f16_is_fp32_on_the_rounded_inputs(kind, seed):
    """o, lse, dq, dk, dv of float16 arrays: bitwise the fp32 call on the widened inputs with
    its results rounded to float16 (lse not rounded), and within the fp32 bound plus one
    float16 rounding of the float64 reference."""
    rng = np.random.default_rng(3000 + 100 * OPTIONS.index(kind) + seed)
    q, k, v, opts = _rounded(rng, kind)
    o, lse = attn.sdpa(q, k, v, **opts)
    o32, lse32 = attn.sdpa(*_up(q, k, v), **opts)
    assert o.dtype == F16 and lse.dtype == np.float32
    assert np.array_equal(o, o32.astype(F16)), "o: not the fp32 result rounded once"
    assert np.array_equal(lse, lse32, equal_nan=True), "lse differs from the fp32 call's"
    # the inference path (no lse) is another fp32 kernel (not bitwise the one with lse): its own identity
    o_nl = attn.sdpa(q, k, v, return_lse=False, **opts)
    assert np.array_equal(o_nl, attn.sdpa(*_up(q, k, v), return_lse=False, **opts).astype(F16))
    do = rng.normal(0, 1, o.shape).astype(F16)
    ro, rlse, rg = reference.sdpa(*_up(q, k, v), do.astype(np.float32), **opts)
    close(o, ro, "o", tol=1e-4 + U16)
    close(lse, rlse, "lse")
    g = attn.sdpa_backward(q, k, v, o, do, lse, **opts)
    g32 = attn.sdpa_backward(*_up(q, k, v, o, do), lse, **opts)
    for name, a, b in zip(("dq", "dk", "dv"), g, g32):
        assert a.dtype == F16 and np.array_equal(a, b.astype(F16)), name + ": not the fp32 result rounded"
    # the reference's gradients use the exact o; ours the float16 o (as torch's): bound both
    for name, a, r in zip(("dq", "dk", "dv"), g, rg):
        close(a, r, name, tol=2e-4 + 4 * U16)


def test_f16_dropout_same_keep_as_fp32():
    rng = np.random.default_rng(11)
    q = rng.normal(0, 1, (2, 20, 2, 16)).astype(F16)
    kw = dict(causal=True, dropout_p=0.25, dropout_seed=77)
    o, lse = attn.sdpa(q, q, q, **kw)
    o32, _ = attn.sdpa(*_up(q, q, q), **kw)
    assert np.array_equal(o, o32.astype(F16))
    do = rng.normal(0, 1, o.shape).astype(F16)
    g = attn.sdpa_backward(q, q, q, o, do, lse, **kw)
    g32 = attn.sdpa_backward(*_up(q, q, q, o, do), lse, **kw)
    for a, b in zip(g, g32):
        assert np.array_equal(a, b.astype(F16))


def test_f16_zero_copy_and_hot_path(lib_spy):
    """Transposed / padded float16 arrays reach attn_sdpa_fwd_typed as the same memory with
    element strides and dtype F16; out= (float16) is written in place; later calls with the
    same shapes go through the cached typed plan with the new arrays' pointers."""
    sdpa_mod = __import__("sys").modules["attn.sdpa"]
    sdpa_mod._plans.d.clear()
    rng = np.random.default_rng(12)
    seen = lib_spy("attn_sdpa_fwd_typed")
    for i in range(3):
        q = rng.normal(0, 1, (2, 3, 10, 16)).astype(F16).transpose(0, 2, 1, 3)  # (B, H, S, D) memory
        k = rng.normal(0, 1, (2, 12, 3, 16)).astype(F16)
        v = rng.normal(0, 1, (2, 12, 3, 24)).astype(F16)[..., :16]  # padded rows
        out = np.empty((2, 10, 3, 16), F16)
        o = attn.sdpa(q, k, v, return_lse=False, out=out)
        assert o is out
        _, vq, vk, vv, vo, plse, *_ = seen[-1]
        assert vq.data == q.ctypes.data and (vq.stride_b, vq.stride_s, vq.stride_h) == (480, 16, 160)
        assert vk.data == k.ctypes.data and vv.data == v.ctypes.data and vv.stride_h == 24
        assert vo.data == out.ctypes.data and plse is None
        assert {t.dtype for t in (vq, vk, vv, vo)} == {_lib.DTYPE_F16}
        close(o, reference.sdpa(*_up(q, k, v))[0], "o", tol=1e-4 + U16)
    assert len(seen) == 3 and len(sdpa_mod._plans.d) == 1
    seen_b = lib_spy("attn_sdpa_bwd_typed")
    o, lse = attn.sdpa(q, k, v)
    g = attn.sdpa_backward(q, k, v, o, o, lse)
    args = seen_b[0]
    assert args[1].data == q.ctypes.data and args[4].data == o.ctypes.data and args[6] == lse.ctypes.data
    assert all(t.dtype == _lib.DTYPE_F16 for t in args[1:6] + args[7:10]) and g[2].dtype == F16


def test_f16_dtype_rules(lib_spy):
    rng = np.random.default_rng(13)
    q = rng.normal(0, 1, (1, 6, 2, 8)).astype(F16)
    # a mix of float16 and float32 takes the fp32 call (everything widened, o float32)
    seen = lib_spy("attn_sdpa_fwd")
    o, _ = attn.sdpa(q, q.astype(np.float32), q)
    assert o.dtype == np.float32 and len(seen) == 1
    assert np.array_equal(o, attn.sdpa(*_up(q, q, q))[0])
    # the backward of a float16 call takes float32 o / do as they are, and other dtypes widened
    o16, lse = attn.sdpa(q, q, q)
    g1 = attn.sdpa_backward(q, q, q, o16, o16.astype(np.float32), lse)
    g2 = attn.sdpa_backward(q, q, q, o16, o16.astype(np.float64), lse)
    for a, b in zip(g1, g2):
        assert a.dtype == F16 and np.array_equal(a, b)
    with pytest.raises(ValueError, match="float16"):
        attn.sdpa(q, q, q, out=np.empty(q.shape, np.float32))  # out= must be the call's dtype
    with pytest.raises(attn.AttnError) as e:
        attn.sdpa(q, q[:, :, :1].repeat(3, axis=2), q[:, :, :1].repeat(3, axis=2))  # 2 % 3 != 0
    assert e.value.status_name == "ATTN_ERR_SHAPE" and e.value.func == "attn_sdpa_fwd_typed"
    out = np.ones_like(q)
    with pytest.raises(attn.AttnError):
        attn.sdpa(out, q, q, out=out)  # aliasing: refused, out untouched
    assert np.all(out == 1)
