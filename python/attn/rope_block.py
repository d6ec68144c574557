# SPDX-License-Identifier: MIT
"""NumPy front end of the RoPE building block (attn_rope_fwd / attn_rope_bwd).

x (B, S, H, D) float32, passed by pointer and element strides with no copy (an array that is
not float32, whose innermost stride is not 1 element, or whose strides are negative is copied
once). positions: None (0 .. S-1), (S,) shared by every batch entry, or (B, S); integers in
[0, 2^40]. out=x rotates in place. The rotation, the scalings and their parameters are
attn.h's "Building blocks: RoPE" (transformers' modeling_rope_utils names).
"""
import ctypes

import numpy as np

from . import _lib
from ._lib import RopeConfig

_KINDS = {"neox": 1, "gptj": 2}
_SCALINGS = {"none": 0, "default": 0, "linear": 1, "llama3": 2, "dynamic": 3, "yarn": 4, "longrope": 5}
_DEFAULT = RopeConfig()
_lib.call("attn_rope_config_init_size", ctypes.byref(_DEFAULT), ctypes.sizeof(_DEFAULT))


def _config(kind, rope_dim, theta, scaling, factor, low_freq_factor, high_freq_factor,
            original_max_pos, max_pos, attention_factor, beta_fast, beta_slow, mscale,
            mscale_all_dim, truncate, short_factor, long_factor, keep):
    if kind not in _KINDS:
        raise ValueError("kind must be 'neox' (rotate halves) or 'gptj' (interleaved), got %r" % (kind,))
    if scaling not in _SCALINGS:
        raise ValueError("scaling must be one of %s, got %r" % (sorted(_SCALINGS), scaling))
    c = RopeConfig.from_buffer_copy(_DEFAULT)
    c.kind, c.rope_dim, c.theta, c.scaling = _KINDS[kind], int(rope_dim), float(theta), _SCALINGS[scaling]
    c.factor, c.low_freq_factor, c.high_freq_factor = float(factor), float(low_freq_factor), float(high_freq_factor)
    c.original_max_pos, c.max_pos = int(original_max_pos), int(max_pos)
    c.attention_factor, c.beta_fast, c.beta_slow = float(attention_factor), float(beta_fast), float(beta_slow)
    c.mscale, c.mscale_all_dim, c.no_truncate = float(mscale), float(mscale_all_dim), 0 if truncate else 1
    for name, f in (("short_factor", short_factor), ("long_factor", long_factor)):
        if f is not None:
            a = np.ascontiguousarray(f, dtype=np.float32)
            if a.ndim != 1:
                raise ValueError("%s must be 1-D (rope_dim / 2,), got shape %s" % (name, a.shape))
            keep.append(a)  # the library reads rope_dim / 2 of them (checked against the length below)
            setattr(c, name, a.ctypes.data)
    return c


def _run(fn, x, positions, out, cfg_args):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError("x must be (B, S, H, D), got shape %s" % (x.shape,))
    if x.dtype != np.float32 or any(s < 0 or s % 4 for s in x.strides) or (x.shape[3] > 1 and x.strides[3] != 4):
        x = np.ascontiguousarray(x, dtype=np.float32)  # the one documented copy
    B, S, H, D = x.shape
    keep = []
    cfg = _config(*cfg_args, keep)
    half = (cfg.rope_dim or D) // 2
    for a in keep:
        if a.shape[0] < half:
            raise ValueError("short_factor / long_factor need rope_dim / 2 = %d values, got %d" % (half, a.shape[0]))
    if positions is None:
        pp, psb = None, 0
    else:
        p = np.asarray(positions)
        if p.dtype.kind not in "iu":
            raise TypeError("positions must be integers, got %s" % p.dtype)
        p = np.ascontiguousarray(p, dtype=np.int64)
        if p.shape == (S,):
            psb = 0
        elif p.shape == (B, S):
            psb = S
        else:
            raise ValueError("positions must have shape (S,) = (%d,) or (B, S) = (%d, %d), got %s"
                             % (S, B, S, p.shape))
        keep.append(p)
        pp = p.ctypes.data
    if out is None:
        out = np.empty((B, S, H, D), np.float32)
    elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (B, S, H, D)
          or (D > 1 and out.strides[3] != 4) or any(s < 0 or s % 4 for s in out.strides)):
        raise ValueError("out must be a float32 array of shape %s with unit inner stride" % ((B, S, H, D),))
    xs = [s // 4 for s in x.strides]
    os_ = [s // 4 for s in out.strides]
    st = getattr(_lib.lib, fn)(ctypes.byref(cfg), B, S, H, D, _lib.View(x.ctypes.data, xs[0], xs[1], xs[2]), pp,
                               psb, _lib.View(out.ctypes.data, os_[0], os_[1], os_[2]))
    if st != 0:
        _lib.raise_for(st, fn)
    return out


def rope(x, positions=None, *, kind="neox", rope_dim=0, theta=10000.0, scaling="none", factor=0.0,
         low_freq_factor=0.0, high_freq_factor=0.0, original_max_pos=0, max_pos=0, attention_factor=0.0,
         beta_fast=0.0, beta_slow=0.0, mscale=0.0, mscale_all_dim=0.0, truncate=True, short_factor=None,
         long_factor=None, out=None):
    """Rotary position embedding of x (B, S, H, D) at positions (attn_rope_fwd); returns y.

    kind 'neox' (pairs (x[i], x[i + R/2]): Llama, Qwen) or 'gptj' (pairs (x[2i], x[2i+1]));
    rope_dim R (0 = D; partial rotary: dims R .. D-1 unchanged); theta the base;
    scaling 'none' | 'linear' | 'llama3' | 'dynamic' | 'yarn' | 'longrope' with factor and:
    llama3 low_freq_factor, high_freq_factor, original_max_pos; dynamic max_pos; yarn
    original_max_pos, beta_fast, beta_slow (0 = 32, 1), mscale, mscale_all_dim,
    attention_factor (0 = its formula), truncate; longrope original_max_pos, short_factor,
    long_factor (R/2 each), attention_factor. out: the array to write (out=x: in place).
    """
    return _run("attn_rope_fwd", x, positions, out,
                (kind, rope_dim, theta, scaling, factor, low_freq_factor, high_freq_factor, original_max_pos,
                 max_pos, attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim, truncate,
                 short_factor, long_factor))


def rope_backward(dy, positions=None, *, kind="neox", rope_dim=0, theta=10000.0, scaling="none", factor=0.0,
                  low_freq_factor=0.0, high_freq_factor=0.0, original_max_pos=0, max_pos=0,
                  attention_factor=0.0, beta_fast=0.0, beta_slow=0.0, mscale=0.0, mscale_all_dim=0.0,
                  truncate=True, short_factor=None, long_factor=None, out=None):
    """dx = the exact vector-Jacobian product of rope() at dy (B, S, H, D) (attn_rope_bwd);
    the same positions and options as the forward."""
    return _run("attn_rope_bwd", dy, positions, out,
                (kind, rope_dim, theta, scaling, factor, low_freq_factor, high_freq_factor, original_max_pos,
                 max_pos, attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim, truncate,
                 short_factor, long_factor))
