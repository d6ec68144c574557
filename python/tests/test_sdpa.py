# SPDX-License-Identifier: MIT
"""attn.sdpa / attn.sdpa_backward against the float64 reference (tests/reference.py) on random
configs covering every option; error mapping; zero-copy verified by pointer."""
import numpy as np
import pytest

import attn
from attn import _lib

import reference

OPTIONS = ["plain", "gqa", "causal_tl", "causal_br", "scale", "key_lens", "window", "alibi",
           "softcap", "mask_bool", "mask_add", "varlen", "mixed"]


def close(a, r, name, tol=1e-4):
    a, r = np.asarray(a, np.float64), np.asarray(r, np.float64)
    assert a.shape == r.shape, name
    fin = np.isfinite(r)
    assert np.array_equal(fin, np.isfinite(a)), name + ": infinities differ"
    err = np.abs(a[fin] - r[fin]).max(initial=0.0)
    bound = tol * max(1.0, np.abs(r[fin]).max(initial=0.0))
    assert err <= bound, "%s: max error %.3g > %.3g" % (name, err, bound)


def random_case(kind, rng):
    B = int(rng.integers(1, 4))
    Sq, Sk = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    Hkv = int(rng.integers(1, 3))
    Hq = Hkv * (int(rng.integers(1, 4)) if kind in ("gqa", "mixed") else 1)
    D = int(rng.choice([8, 16, 32, 64]))
    Dv = int(rng.choice([D, 8, 24]))
    opts = {}
    kinds = {kind} if kind != "mixed" else set(rng.choice(OPTIONS[2:10], 3, replace=False))
    if "causal_tl" in kinds:
        opts["causal"] = True
    if "causal_br" in kinds:
        opts.update(causal=True, align="bottom_right")
    if "scale" in kinds:
        opts["scale"] = float(rng.uniform(0.05, 0.5))
    if "key_lens" in kinds:
        opts["key_lens"] = rng.integers(0, Sk + 1, B).astype(np.int32)
    if "window" in kinds:
        opts["window"] = (int(rng.integers(-1, 8)), int(rng.integers(-1, 8)))
    if "alibi" in kinds:
        opts["alibi_slopes"] = rng.uniform(0.01, 0.5, Hq).astype(np.float32)
    if "softcap" in kinds:
        opts["softcap"] = float(rng.uniform(1, 10))
    if "mask_bool" in kinds:  # broadcast over heads
        opts["mask"] = rng.random((B, 1, Sq, Sk)) < 0.7
    if "mask_add" in kinds:  # broadcast over batch, some -inf
        m = rng.normal(0, 1, (Hq, Sq, Sk)).astype(np.float32)
        m[rng.random(m.shape) < 0.2] = -np.inf
        opts["mask"] = m
    if kind == "varlen":
        lq, lk = rng.integers(0, 20, B), rng.integers(0, 20, B)
        opts["cu_seqlens_q"] = np.concatenate([[0], np.cumsum(lq)]).astype(np.int32)
        opts["cu_seqlens_k"] = np.concatenate([[0], np.cumsum(lk)]).astype(np.int32)
        opts["causal"] = bool(rng.integers(0, 2))
        q = rng.normal(0, 1, (int(lq.sum()), Hq, D)).astype(np.float32)
        k = rng.normal(0, 1, (int(lk.sum()), Hkv, D)).astype(np.float32)
        v = rng.normal(0, 1, (int(lk.sum()), Hkv, Dv)).astype(np.float32)
        return q, k, v, opts
    q = rng.normal(0, 1, (B, Sq, Hq, D)).astype(np.float32)
    k = rng.normal(0, 1, (B, Sk, Hkv, D)).astype(np.float32)
    v = rng.normal(0, 1, (B, Sk, Hkv, Dv)).astype(np.float32)
    return q, k, v, opts


@pytest.mark.parametrize("kind", OPTIONS)
@pytest.mark.parametrize("seed", range(4))
def test_forward_backward_vs_float64(kind, seed):
    rng = np.random.default_rng(1000 * OPTIONS.index(kind) + seed)
    q, k, v, opts = random_case(kind, rng)
    o, lse = attn.sdpa(q, k, v, **opts)
    do = rng.normal(0, 1, o.shape).astype(np.float32)
    ro, rlse, rg = reference.sdpa(q, k, v, do, **opts)
    close(o, ro, "o")
    close(lse, rlse, "lse")
    close(attn.sdpa(q, k, v, return_lse=False, **opts), ro, "o (no lse)")
    dq, dk, dv = attn.sdpa_backward(q, k, v, o, do, lse, **opts)
    for name, a, r in zip(("dq", "dk", "dv"), (dq, dk, dv), rg):
        close(a, r, name, tol=2e-4)


def test_dropout_keep_pattern_and_backward():
    """With one-hot values (v_j = e_j) o exposes P_ij * keep_ij / (1 - p): every entry must be
    0 or the reference P_ij / (1 - p); the backward must match the reference with that keep."""
    rng = np.random.default_rng(7)
    B, Sq, Sk, H, D, p = 2, 24, 32, 2, 16, 0.3
    q = rng.normal(0, 1, (B, Sq, H, D)).astype(np.float32)
    k = rng.normal(0, 1, (B, Sk, H, D)).astype(np.float32)
    v = np.broadcast_to(np.eye(Sk, dtype=np.float32)[None, :, None, :], (B, Sk, H, Sk)).copy()
    o, lse = attn.sdpa(q, k, v, causal=True, dropout_p=p, dropout_seed=1234)
    ro, rlse, _ = reference.sdpa(q, k, v, causal=True)
    close(lse, rlse, "lse (before dropout)")
    P = np.transpose(ro, (0, 2, 1, 3))  # (B, H, Sq, Sk)
    got = np.transpose(o, (0, 2, 1, 3)).astype(np.float64)
    keep = (got != 0)
    assert np.all(np.abs(got - np.where(keep, P / (1 - p), 0)) <= 1e-5)
    live = P > 1e-6
    frac = 1 - keep[live].mean()
    assert abs(frac - p) < 0.05, frac
    o2, _ = attn.sdpa(q, k, v, causal=True, dropout_p=p, dropout_seed=1234)
    assert np.array_equal(o, o2)
    o3, _ = attn.sdpa(q, k, v, causal=True, dropout_p=p, dropout_seed=99)
    assert not np.array_equal(o, o3)
    do = rng.normal(0, 1, o.shape).astype(np.float32)
    _, _, rg = reference.sdpa(q, k, v, do, causal=True, keep=keep.astype(np.float64), dropout_p=p)
    g = attn.sdpa_backward(q, k, v, o, do, lse, causal=True, dropout_p=p, dropout_seed=1234)
    for name, a, r in zip(("dq", "dk", "dv"), g, rg):
        close(a, r, name, tol=2e-4)


def _spy(monkeypatch, name):
    seen = []
    real = getattr(_lib.lib, name)

    def spy(*args):  # Views are copied as the call sees them (the hot path reuses its structs)
        seen.append(tuple(_lib.View.from_buffer_copy(a) if isinstance(a, _lib.View) else a
                          for a in args))
        return real(*args)

    monkeypatch.setattr(_lib.lib, name, spy)
    return seen


def test_zero_copy_strided_inputs(monkeypatch):
    """(B, H, S, D) arrays transposed to (B, S, H, D) reach the library as the same memory
    with their strides; out= is written in place."""
    rng = np.random.default_rng(3)
    qb = rng.normal(0, 1, (2, 3, 10, 16)).astype(np.float32)  # (B, H, S, D)
    kb = rng.normal(0, 1, (2, 3, 12, 16)).astype(np.float32)
    q, k = qb.transpose(0, 2, 1, 3), kb.transpose(0, 2, 1, 3)
    vfull = rng.normal(0, 1, (2, 12, 3, 32)).astype(np.float32)
    v = vfull[..., :16]  # row padding: strides differ from the shape's
    out = np.empty((2, 10, 3, 16), np.float32)
    lse_out = np.empty((2, 3, 10), np.float32)
    seen = _spy(monkeypatch, "attn_sdpa_fwd")
    o, lse = attn.sdpa(q, k, v, out=out, lse_out=lse_out)
    assert o is out and lse is lse_out
    (_, vq, vk, vv, vo, plse, *_), = seen
    assert vq.data == q.ctypes.data and (vq.stride_b, vq.stride_s, vq.stride_h) == (480, 16, 160)
    assert vk.data == k.ctypes.data and vv.data == v.ctypes.data and vv.stride_h == 32
    assert vo.data == out.ctypes.data and plse == lse_out.ctypes.data
    ro, _, _ = reference.sdpa(q, k, v)
    close(o, ro, "o")
    # float64 and a non-unit inner stride are copied (once), the result is the same
    seen.clear()
    o2, _ = attn.sdpa(q.astype(np.float64), k, vfull[..., ::2])
    assert seen[0][1].data != q.ctypes.data and seen[0][3].data != vfull.ctypes.data
    close(o2, reference.sdpa(q, k, vfull[..., ::2])[0], "o (copied)")


def test_zero_copy_backward(monkeypatch):
    rng = np.random.default_rng(4)
    q = rng.normal(0, 1, (1, 3, 8, 16)).astype(np.float32).transpose(0, 2, 1, 3)
    o, lse = attn.sdpa(q, q, q)
    do = rng.normal(0, 1, (1, 3, 8, 16)).astype(np.float32).transpose(0, 2, 1, 3)
    seen = _spy(monkeypatch, "attn_sdpa_bwd")
    attn.sdpa_backward(q, q, q, o, do, lse)
    args = seen[0]
    assert args[1].data == q.ctypes.data and args[4].data == o.ctypes.data
    assert args[5].data == do.ctypes.data and args[6] == lse.ctypes.data


def test_broadcast_mask_passed_with_zero_strides(monkeypatch):
    rng = np.random.default_rng(5)
    q = rng.normal(0, 1, (2, 6, 4, 8)).astype(np.float32)
    m = rng.random((6, 6)) < 0.8
    np.fill_diagonal(m, True)
    seen = _spy(monkeypatch, "attn_sdpa_fwd")
    o, _ = attn.sdpa(q, q, q, mask=m)
    opts = seen[0][6]._obj
    assert opts.mask == m.ctypes.data and opts.mask_kind == 1
    assert (opts.mask_stride_b, opts.mask_stride_h, opts.mask_stride_q) == (0, 0, 6)
    close(o, reference.sdpa(q, q, q, mask=m)[0], "o")


def _err(fn, status):
    with pytest.raises(attn.AttnError) as e:
        fn()
    assert e.value.status_name == status, str(e.value)
    assert e.value.message and e.value.message in str(e.value)
    return e.value


def test_error_mapping():
    q = np.ones((1, 4, 3, 8), np.float32)
    k = np.ones((1, 4, 2, 8), np.float32)
    e = _err(lambda: attn.sdpa(q, k, k), "ATTN_ERR_SHAPE")  # 3 % 2 != 0
    assert e.status == -2 and e.func == "attn_sdpa_fwd"
    _err(lambda: attn.sdpa(q, q, q, window=(-3, 0)), "ATTN_ERR_OPTION")
    _err(lambda: attn.sdpa(q, q, q, softcap=-1.0), "ATTN_ERR_OPTION")
    _err(lambda: attn.sdpa(q, q, q, dropout_p=1.5), "ATTN_ERR_OPTION")
    _err(lambda: attn.sdpa(q, q, q, key_lens=[9]), "ATTN_ERR_SHAPE")
    out = np.ones_like(q)
    _err(lambda: attn.sdpa(out, q, q, out=out), "ATTN_ERR_ALIAS")
    assert np.all(out == 1)  # nothing written on error
    o, lse = attn.sdpa(q, q, q)
    _err(lambda: attn.sdpa_backward(q, q, q, o, o, lse, dropout_p=2.0), "ATTN_ERR_OPTION")
    with pytest.raises(ValueError):
        attn.sdpa(q, q, q, mask=np.ones((2, 5), bool))  # does not broadcast
    with pytest.raises(ValueError):
        attn.sdpa(q[0], q[0], q[0])  # 3-D without cu_seqlens


def test_cached_hot_path_same_result_and_pointers(monkeypatch):
    """The second call with the same shapes / strides / options goes through the cached plan:
    same result, and the new arrays' own memory reaches the library."""
    rng = np.random.default_rng(8)
    sdpa_mod = __import__("sys").modules["attn.sdpa"]
    sdpa_mod._plans.d.clear()
    seen = _spy(monkeypatch, "attn_sdpa_fwd")
    outs = []
    for _ in range(3):
        q = rng.normal(0, 1, (1, 4, 3, 16)).astype(np.float32).transpose(0, 2, 1, 3)
        k = rng.normal(0, 1, (1, 9, 1, 16)).astype(np.float32)
        o, lse = attn.sdpa(q, k, k, causal=True, align="bottom_right")
        ro, rl, _ = reference.sdpa(q, k, k, causal=True, align="bottom_right")
        close(o, ro, "o")
        close(lse, rl, "lse")
        assert seen[-1][1].data == q.ctypes.data and seen[-1][2].data == k.ctypes.data
        assert seen[-1][4].data == o.ctypes.data and seen[-1][5] == lse.ctypes.data
        outs.append(o)
    assert len(sdpa_mod._plans.d) == 1
    # an error on the hot path still raises (here: the output aliases an input)
    q = rng.normal(0, 1, (1, 3, 4, 16)).astype(np.float32)
    attn.sdpa(q, k, k, return_lse=False, out=np.empty_like(q))
    n = len(sdpa_mod._plans.d)
    _err(lambda: attn.sdpa(q, k, k, return_lse=False, out=q), "ATTN_ERR_ALIAS")
    assert len(sdpa_mod._plans.d) == n  # the failing call went through the cached plan


@pytest.mark.parametrize("seed", range(3))
def test_q_pos_offset_vs_float64_and_chunks(seed):
    """q_pos_offset moves every query's position (causal, windows, ALiBi see it); a chunk of
    queries with q_pos_offset = its start gives the full call's rows."""
    rng = np.random.default_rng(500 + seed)
    B, S, Hq, Hkv, D = 2, 24, 4, 2, 16
    q = rng.normal(0, 1, (B, S, Hq, D)).astype(np.float32)
    k = rng.normal(0, 1, (B, S, Hkv, D)).astype(np.float32)
    v = rng.normal(0, 1, (B, S, Hkv, D)).astype(np.float32)
    opts = [dict(causal=True), dict(window=(5, 2)), dict(alibi_slopes=rng.uniform(0.05, 0.5, Hq).astype(np.float32)),
            dict(causal=True, window=(7, 0))][seed % 4]
    for off in (-3, 5, 17):
        o, lse = attn.sdpa(q, k, v, q_pos_offset=off, **opts)
        do = rng.normal(0, 1, o.shape).astype(np.float32)
        ro, rl, rg = reference.sdpa(q, k, v, do, q_pos_offset=off, **opts)
        close(o, ro, "o")
        close(lse, rl, "lse")
        g = attn.sdpa_backward(q, k, v, o, do, lse, q_pos_offset=off, **opts)
        for name, a, r in zip(("dq", "dk", "dv"), g, rg):
            close(a, r, name, tol=2e-4)
    full, _ = attn.sdpa(q, k, v, **opts)
    part, _ = attn.sdpa(q[:, 10:16], k, v, q_pos_offset=10, **opts)
    close(part, full[:, 10:16], "chunk", tol=1e-6)


def test_bwd_fast_reaches_the_library_and_is_accurate(monkeypatch):
    rng = np.random.default_rng(9)
    q = rng.normal(0, 1, (2, 20, 2, 16)).astype(np.float32)
    k = rng.normal(0, 1, (2, 20, 2, 16)).astype(np.float32)
    o, lse = attn.sdpa(q, k, k, causal=True)
    do = rng.normal(0, 1, o.shape).astype(np.float32)
    _, _, rg = reference.sdpa(q, k, k, do, causal=True)
    seen = _spy(monkeypatch, "attn_sdpa_bwd")
    exact = attn.sdpa_backward(q, k, k, o, do, lse, causal=True)
    fast = attn.sdpa_backward(q, k, k, o, do, lse, causal=True, bwd_fast=True)
    assert seen[0][10]._obj.bwd_fast == 0 and seen[1][10]._obj.bwd_fast == 1
    for name, a, b, r in zip(("dq", "dk", "dv"), exact, fast, rg):
        close(a, r, name, tol=2e-4)
        close(b, r, name + " (bwd_fast)", tol=2e-4)
    # one visible key: exact in both modes (P = 1, dq = dk = 0, dv = do)
    q1 = q[:, :1]
    o1, l1 = attn.sdpa(q1, k[:, :1], k[:, :1])
    _, _, dv = attn.sdpa_backward(q1, k[:, :1], k[:, :1], o1, do[:, :1], l1, bwd_fast=True)
    assert np.array_equal(dv, do[:, :1])
