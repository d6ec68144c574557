# SPDX-License-Identifier: MIT
"""NumPy front end of attn_sdpa_fwd / attn_sdpa_bwd (and their _typed forms for float16).

Arrays are (B, S, H, D) float32 (varlen: packed (T, H, D) with cu_seqlens_q/k), or float16
when q, k and v all are float16 arrays (then attn_sdpa_fwd_typed / _bwd_typed run on them
and o, dq, dk, dv are float16; lse stays float32). They are passed to the library by pointer
and element strides, with no copy. An array that is not of the call's dtype, whose innermost
(D) stride is not 1 element, or whose strides are negative or not a multiple of the element
size is copied once into a contiguous array of the call's dtype (the only copies).
"""
import numpy as np

from . import _core
from ._lib import DTYPE_F16, DTYPE_F32

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
_ATTN_DTYPE = {_F32: DTYPE_F32, _F16: DTYPE_F16}
_plans = _core.PlanCache()


def _arr(a, name, ndim, dtype):
    """(array kept alive, element strides) of an array of `dtype` with unit inner stride."""
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ValueError("%s must have %d dimensions ((B, S, H, D), or (T, H, D) for varlen), got "
                         "shape %s" % (name, ndim, a.shape))
    st, isz = a.strides, dtype.itemsize
    if (a.dtype != dtype or any(s < 0 or s % isz for s in st)
            or (a.shape[-1] > 1 and st[-1] != isz)):
        a = np.ascontiguousarray(a, dtype=dtype)  # the one documented copy
        st = a.strides
    return a, tuple(s // isz for s in st)


def _call_dtype(q, k, v):
    """float16 when q, k and v all are float16 arrays (the typed path), else float32."""
    return _F16 if all(getattr(x, "dtype", None) == _F16 for x in (q, k, v)) else _F32


def _view(a, es, typed=False):
    """attn_view of a float32 array, or with typed=True attn_tview of a float32 / float16 one."""
    if len(es) == 3:  # varlen packed (T, H, D): batch stride unused
        es = (0,) + tuple(es[:2])
    if typed:
        return _core.tview(a.ctypes.data, es[0], es[1], es[2], _ATTN_DTYPE[a.dtype])
    return _core.view(a.ctypes.data, es[0], es[1], es[2])


def _i32(a, name, n):
    if a is None:
        return None
    a = np.ascontiguousarray(a, dtype=np.int32)
    if a.shape != (n,):
        raise ValueError("%s must have shape (%d,), got %s" % (name, n, a.shape))
    return a


def _mask(mask, B, H, Sq, Sk):
    """(kind, address, stride_b, stride_h, stride_q) and the array kept alive. mask: bool
    (True = attend) or float (added to the scaled logit), broadcastable to (B, H, Sq, Sk)."""
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        kind, dt = _core._MASK_BOOL, np.dtype(np.uint8)
        m = m.view(np.uint8)
    elif m.dtype.kind == "f":
        kind, dt = _core._MASK_ADD, _F32
        m = m.astype(np.float32, copy=False)
    else:
        raise TypeError("mask must be bool or floating point, got %s" % m.dtype)
    if m.ndim > 4:
        raise ValueError("mask must have at most 4 dimensions (B, H, Sq, Sk), got shape %s" % (m.shape,))
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    if m.shape[3] != Sk or (Sk > 1 and m.strides[3] != dt.itemsize) or any(s < 0 for s in m.strides):
        m = np.ascontiguousarray(np.broadcast_to(m, m.shape[:3] + (Sk,)))
    try:
        m = np.broadcast_to(m, (B, H, Sq, Sk))
    except ValueError:
        raise ValueError("mask of shape %s does not broadcast to (B, H, Sq, Sk) = %s"
                         % (np.shape(mask), (B, H, Sq, Sk))) from None
    es = [s // dt.itemsize for s in m.strides]
    return (kind, m.ctypes.data, es[0], es[1], es[2]), m


def _prepare(q, k, v, causal, align, scale, key_lens, window, alibi_slopes, softcap, mask,
             cu_seqlens_q, cu_seqlens_k, dropout_p, dropout_seed, bwd_fast=False, q_pos_offset=0):
    varlen = cu_seqlens_q is not None or cu_seqlens_k is not None
    nd = 3 if varlen else 4
    dt = _call_dtype(q, k, v)
    (q, qs), (k, ks), (v, vs) = _arr(q, "q", nd, dt), _arr(k, "k", nd, dt), _arr(v, "v", nd, dt)
    keep = [q, k, v]
    if varlen:
        if cu_seqlens_q is None or cu_seqlens_k is None:
            raise ValueError("varlen needs both cu_seqlens_q and cu_seqlens_k")
        cq = np.ascontiguousarray(cu_seqlens_q, dtype=np.int32)
        ck = np.ascontiguousarray(cu_seqlens_k, dtype=np.int32)
        if cq.ndim != 1 or cq.shape != ck.shape or cq.shape[0] < 1:
            raise ValueError("cu_seqlens_q and cu_seqlens_k must both have shape (B + 1,), got %s and %s"
                             % (cq.shape, ck.shape))
        B = cq.shape[0] - 1
        Sq, Hq, D = q.shape
        Sk, Hkv, _ = k.shape
        keep += [cq, ck]
    else:
        cq = ck = None
        B, Sq, Hq, D = q.shape
        Sk, Hkv = k.shape[1], k.shape[2]
    Dv = v.shape[-1]
    kl = _i32(key_lens, "key_lens", B)
    al = None
    if alibi_slopes is not None:
        al = np.ascontiguousarray(alibi_slopes, dtype=np.float32)
        if al.shape != (Hq,):
            raise ValueError("alibi_slopes must have shape (Hq,) = (%d,), got %s" % (Hq, al.shape))
    mk = None
    if mask is not None:
        if varlen:
            raise ValueError("an explicit mask is not supported with varlen (cu_seqlens) in the binding")
        mk, m = _mask(mask, B, Hq, Sq, Sk)
        keep.append(m)
    keep += [kl, al]
    opts = _core.make_opts(causal, align, scale, None if kl is None else kl.ctypes.data, window,
                           None if al is None else al.ctypes.data, softcap, mk,
                           None if cq is None else cq.ctypes.data, None if ck is None else ck.ctypes.data,
                           dropout_p, dropout_seed, bwd_fast, q_pos_offset)
    dims = _core.dims(B, Sq, Sk, Hq, Hkv, D, Dv)
    return dims, opts, (q, qs), (k, ks), (v, vs), keep, varlen


def _lse_shape(dims, varlen):
    return (dims.heads_q, dims.seq_q) if varlen else (dims.batch, dims.heads_q, dims.seq_q)


def _out(out, shape, name, dtype=_F32):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != shape:
        raise ValueError("%s must be a %s array of shape %s" % (name, dtype, shape))
    isz = dtype.itemsize
    if shape and shape[-1] > 1 and out.strides[-1] != isz or any(s < 0 or s % isz for s in out.strides):
        raise ValueError("%s must have unit inner stride and nonnegative strides (it is written in place)" % name)
    return out


def sdpa(q, k, v, *, causal=False, align="top_left", scale=None, key_lens=None, window=(-1, -1),
         alibi_slopes=None, softcap=0.0, mask=None, cu_seqlens_q=None, cu_seqlens_k=None,
         dropout_p=0.0, dropout_seed=0, q_pos_offset=0, return_lse=True, out=None, lse_out=None):
    """Scaled dot-product attention (attn_sdpa_fwd; the semantics are attn.h's position model).

    q (B, Sq, Hq, D), k (B, Sk, Hkv, D), v (B, Sk, Hkv, Dv); varlen: (T, H, D) packed with
    cu_seqlens_q / cu_seqlens_k (B + 1,) int32.
    causal, align ('top_left' | 'bottom_right'), scale (None = 1/sqrt(D)), key_lens (B,),
    window (left, right) with -1 = unlimited, alibi_slopes (Hq,), softcap (0 = off),
    mask: bool (True = attend) or float (added to the scaled logit; -inf masks) broadcastable
    to (B, Hq, Sq, Sk); dropout_p, dropout_seed; q_pos_offset: added to every query's position
    (a chunk of queries at global positions against a chunk of keys; attn.h "position model").
    Returns (o, lse): o (B, Sq, Hq, Dv) (varlen (T, Hq, Dv)), lse (B, Hq, Sq) (varlen (Hq, T)),
    or o alone with return_lse=False (the inference path; lse is not computed).
    out / lse_out: arrays to write into (unit inner stride), returned as given.
    dtypes: float32; or q, k, v all float16: attn_sdpa_fwd_typed reads them in place and o
    (and out=) is float16, lse float32. Any other mix is copied to float32 (as any dtype is).
    """
    key = None
    if (key_lens is None and alibi_slopes is None and mask is None and cu_seqlens_q is None
            and cu_seqlens_k is None and type(q) is np.ndarray and type(k) is np.ndarray
            and type(v) is np.ndarray):
        key = (q.shape, q.strides, q.dtype, k.shape, k.strides, k.dtype, v.shape, v.strides, v.dtype,
               causal, align, scale, tuple(window) if window is not None else None, softcap,
               dropout_p, dropout_seed, q_pos_offset, return_lse, None if out is None else out.strides)
        plan = _plans.get(key)
        if plan is not None:  # hot path: everything but the data pointers validated before
            odt = _F32 if plan.dtypes is None else _F16
            o = np.empty(plan.oshape, odt) if out is None else _out(out, plan.oshape, "out", odt)
            lse = None
            if return_lse:
                lse = np.empty(plan.lshape, np.float32) if lse_out is None else _lse_out(lse_out, plan.lshape)
            plan.run(q.ctypes.data, k.ctypes.data, v.ctypes.data, o.ctypes.data,
                     None if lse is None else lse.ctypes.data)
            return (o, lse) if return_lse else o
    q0, k0, v0 = q, k, v
    dims, opts, (q, qs), (k, ks), (v, vs), keep, varlen = _prepare(
        q, k, v, causal, align, scale, key_lens, window, alibi_slopes, softcap, mask,
        cu_seqlens_q, cu_seqlens_k, dropout_p, dropout_seed, False, q_pos_offset)
    oshape = q.shape[:-1][:-1] + (dims.heads_q, dims.head_dim_v)
    typed = q.dtype == _F16
    o = _out(out, oshape, "out", q.dtype)
    lse = None
    if return_lse:
        lse = np.empty(_lse_shape(dims, varlen), np.float32) if lse_out is None else \
            _lse_out(lse_out, _lse_shape(dims, varlen))
    (_core.fwd_typed if typed else _core.fwd)(
        dims, _view(q, qs, typed), _view(k, ks, typed), _view(v, vs, typed), _view(o, _estr(o), typed),
        None if lse is None else lse.ctypes.data, opts)
    if key is not None and q is q0 and k is k0 and v is v0:  # succeeded without a copy: cache it
        plan = _core.Plan(dims, opts, (qs[:3], ks[:3], vs[:3], _estr(o)[:3]),
                          (DTYPE_F16,) * 4 if typed else None)
        plan.oshape, plan.lshape = oshape, _lse_shape(dims, varlen)
        _plans.put(key, plan)
    return (o, lse) if return_lse else o


def _lse_out(lse_out, shape):
    lse = _out(lse_out, shape, "lse_out")
    if not lse.flags.c_contiguous:
        raise ValueError("lse_out must be C-contiguous")
    return lse


def _estr(a):
    return tuple(s // a.itemsize for s in a.strides)


def sdpa_backward(q, k, v, o, do, lse, *, causal=False, align="top_left", scale=None, key_lens=None,
                  window=(-1, -1), alibi_slopes=None, softcap=0.0, mask=None, cu_seqlens_q=None,
                  cu_seqlens_k=None, dropout_p=0.0, dropout_seed=0, q_pos_offset=0, bwd_fast=False):
    """Gradients (dq, dk, dv) of attention given the forward's o and lse and the upstream
    gradient do (same shape as o). Pass the same options as to the forward.
    bwd_fast=True: skip the backward's row-statistics pass (~25-30% faster; FlashAttention-2's
    numerics: exact cases stay exact, the error bound is not met at large |lse| or in peaked
    rows; attn.h "Numerics").
    dtypes: as sdpa. With q, k, v float16, o and do are read as they are when float16 or
    float32 (else copied to float16) and dq, dk, dv are float16 (attn_sdpa_bwd_typed)."""
    dims, opts, (q, qs), (k, ks), (v, vs), keep, varlen = _prepare(
        q, k, v, causal, align, scale, key_lens, window, alibi_slopes, softcap, mask,
        cu_seqlens_q, cu_seqlens_k, dropout_p, dropout_seed, bwd_fast, q_pos_offset)
    nd = 3 if varlen else 4
    typed = q.dtype == _F16

    def grad_input(a, name):
        dt = a.dtype if typed and getattr(a, "dtype", None) in (_F16, _F32) else q.dtype
        return _arr(a, name, nd, dt)

    (o, os_), (do, ds) = grad_input(o, "o"), grad_input(do, "do")
    lse = np.ascontiguousarray(lse, dtype=np.float32)
    if lse.shape != _lse_shape(dims, varlen):
        raise ValueError("lse must have shape %s, got %s" % (_lse_shape(dims, varlen), lse.shape))
    dq = np.empty(q.shape, q.dtype)  # gradients in the inputs' dtype
    dk = np.empty(k.shape, q.dtype)
    dv = np.empty(v.shape, q.dtype)
    (_core.bwd_typed if typed else _core.bwd)(
        dims, _view(q, qs, typed), _view(k, ks, typed), _view(v, vs, typed), _view(o, os_, typed),
        _view(do, ds, typed), lse.ctypes.data, _view(dq, _estr(dq), typed), _view(dk, _estr(dk), typed),
        _view(dv, _estr(dv), typed), opts)
    return dq, dk, dv
