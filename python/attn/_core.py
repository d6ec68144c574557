# SPDX-License-Identifier: MIT
"""The sdpa calls shared by the NumPy and the PyTorch front ends: options struct, views,
workspace. Everything here works on raw pointers + element strides; the front ends own
the arrays and keep them alive for the duration of the call."""
import ctypes
import threading

import numpy as np

from . import _lib
from ._lib import Dims, SdpaOpts, TView, View

_MASK_NONE, _MASK_BOOL, _MASK_ADD = 0, 1, 2
_ALIGN = {"top_left": 0, "bottom_right": 1, 0: 0, 1: 1}
_DEFAULT_OPTS = _lib.sdpa_opts()  # the library's defaults, copied per call (no init call per call)
_OPTS_SIZE = ctypes.sizeof(SdpaOpts)


class _Workspace(threading.local):
    """Per-thread, grow-only, 64-byte-aligned workspace (a NULL workspace would make every
    call allocate and first-touch its own)."""
    buf = None
    ptr = 0
    size = 0

    def get(self, need):
        if need > self.size:
            self.buf = np.empty(need + 64, dtype=np.uint8)
            base = self.buf.ctypes.data
            self.ptr = base + (-base) % 64
            self.size = need
        return self.ptr


_ws = _Workspace()


def make_opts(causal=False, align="top_left", scale=None, key_lens=None, window=(-1, -1),
              alibi_slopes=None, softcap=0.0, mask=None, cu_seqlens_q=None, cu_seqlens_k=None,
              dropout_p=0.0, dropout_seed=0, bwd_fast=False, q_pos_offset=0, row_stats=None):
    """Builds an attn_sdpa_opts. Pointer-valued options arrive already prepared:
    key_lens / cu_seqlens_* / alibi_slopes as integer addresses (or None) of int32 / float32
    buffers the caller keeps alive, mask as (kind, address, stride_b, stride_h, stride_q);
    row_stats the address of (B, Hq, Sq, 2) float32 (the forward's statistics for its backward)."""
    o = SdpaOpts.from_buffer_copy(_DEFAULT_OPTS)
    if causal:
        o.causal = 1
    if align not in _ALIGN:
        raise ValueError("align must be 'top_left' or 'bottom_right', got %r" % (align,))
    o.align = _ALIGN[align]
    if scale is not None:
        o.scale = scale
    if key_lens is not None:
        o.key_lens = key_lens
    if window is not None and tuple(window) != (-1, -1):
        o.window_left, o.window_right = int(window[0]), int(window[1])
    if alibi_slopes is not None:
        o.alibi_slopes = alibi_slopes
    if softcap:
        o.softcap = softcap
    if mask is not None:
        o.mask_kind, o.mask, o.mask_stride_b, o.mask_stride_h, o.mask_stride_q = mask
    if cu_seqlens_q is not None:
        o.cu_seqlens_q = cu_seqlens_q
    if cu_seqlens_k is not None:
        o.cu_seqlens_k = cu_seqlens_k
    if dropout_p:
        o.dropout_p = dropout_p
    if dropout_seed:
        o.dropout_seed = dropout_seed & 0xFFFFFFFFFFFFFFFF
    if bwd_fast:
        o.bwd_fast = 1
    if q_pos_offset:
        o.q_pos_offset = int(q_pos_offset)
    if row_stats is not None:
        o.row_stats = row_stats
    return o


def _call(name, size_args, args):
    """lib.<name>(*args, workspace, bytes) on the thread's workspace, of the size that
    lib.<name>_workspace_size(*size_args) asks for; raises on a non-zero status."""
    lib = _lib.lib
    need = getattr(lib, name + "_workspace_size")(*size_args)
    st = getattr(lib, name)(*args, _ws.get(need), need)
    if st != 0:
        _lib.raise_for(st, name)


def fwd(dims, q, k, v, o, lse_ptr, opts):
    """attn_sdpa_fwd with the thread's workspace. q..o are View structs."""
    pd, po = ctypes.byref(dims), ctypes.byref(opts)
    _call("attn_sdpa_fwd", (pd, po), (pd, q, k, v, o, lse_ptr, po))


def bwd(dims, q, k, v, o, do, lse_ptr, dq, dk, dv, opts):
    pd, po = ctypes.byref(dims), ctypes.byref(opts)
    _call("attn_sdpa_bwd", (pd, po), (pd, q, k, v, o, do, lse_ptr, dq, dk, dv, po))


def fwd_typed(dims, q, k, v, o, lse_ptr, opts):
    """attn_sdpa_fwd_typed with the thread's workspace. q..o are TView structs (any mix of
    F32 / BF16 / F16); lse is fp32."""
    pd, po = ctypes.byref(dims), ctypes.byref(opts)
    _call("attn_sdpa_fwd_typed", (pd, q, k, v, o, po), (pd, q, k, v, o, lse_ptr, po))


def bwd_typed(dims, q, k, v, o, do, lse_ptr, dq, dk, dv, opts):
    pd, po = ctypes.byref(dims), ctypes.byref(opts)
    _call("attn_sdpa_bwd_typed", (pd, q, k, v, o, do, dq, dk, dv, po),
          (pd, q, k, v, o, do, lse_ptr, dq, dk, dv, po))


def dims(B, Sq, Sk, Hq, Hkv, D, Dv):
    return Dims(B, Sq, Sk, Hq, Hkv, D, Dv)


def view(ptr, sb, ss, sh):
    return View(ptr, sb, ss, sh)


def tview(ptr, sb, ss, sh, dtype):
    return TView(ptr, sb, ss, sh, dtype)


class _Views(threading.local):
    """Per-thread View / TView structs reused by the cached fast path (passed by value: a call
    copies them)."""

    def __init__(self):
        self.v = [View() for _ in range(4)]
        self.t = [TView() for _ in range(4)]


_views = _Views()


class Plan:
    """A validated forward call without pointer-valued options (the decode / hot path):
    dims, opts and workspace size computed once per (shapes, strides, dtypes, options) key; a
    call then only fills the four data pointers. dtypes: None (fp32: attn_sdpa_fwd), or the
    attn_dtype of q, k, v, o (attn_sdpa_fwd_typed)."""
    __slots__ = ("dims", "opts", "need", "strides", "dtypes", "oshape", "lshape")

    def __init__(self, dims, opts, strides, dtypes=None):
        self.dims, self.opts, self.strides, self.dtypes = dims, opts, strides, dtypes
        pd, po = ctypes.byref(dims), ctypes.byref(opts)
        if dtypes is None:
            self.need = _lib.lib.attn_sdpa_fwd_workspace_size(pd, po)
        else:  # the typed size depends on the views' types and strides, not on the data
            tv = [TView(None, *s, t) for s, t in zip(strides, dtypes)]
            self.need = _lib.lib.attn_sdpa_fwd_typed_workspace_size(pd, tv[0], tv[1], tv[2], tv[3], po)

    def run(self, pq, pk, pv, po, plse):
        typed = self.dtypes is not None
        vs = _views.t if typed else _views.v
        for view, p, s in zip(vs, (pq, pk, pv, po), self.strides):
            view.data = p
            view.stride_b, view.stride_s, view.stride_h = s
        if typed:
            for view, t in zip(vs, self.dtypes):
                view.dtype = t
        f, name = ((_lib.lib.attn_sdpa_fwd_typed, "attn_sdpa_fwd_typed") if typed
                   else (_lib.lib.attn_sdpa_fwd, "attn_sdpa_fwd"))
        st = f(ctypes.byref(self.dims), vs[0], vs[1], vs[2], vs[3], plse, ctypes.byref(self.opts),
               _ws.get(self.need), self.need)
        if st != 0:
            _lib.raise_for(st, name)


class PlanCache:
    """Bounded dict of Plans (cleared when full: shapes in a program are few)."""

    def __init__(self, limit=256):
        self.d = {}
        self.limit = limit

    def get(self, key):
        return self.d.get(key)

    def put(self, key, plan):
        if len(self.d) >= self.limit:
            self.d.clear()
        self.d[key] = plan
