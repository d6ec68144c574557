# SPDX-License-Identifier: MIT
"""NumPy front end of the attn_mha layer and the KV cache.

The layer's inputs are plain pointers (no strides): x / key / value / dy must be C-contiguous
float32; anything else is copied once into one that is. Parameters and gradients are NumPy
views of the layer's own memory (no copy; valid while the layer lives)."""
import ctypes

import numpy as np

from . import _lib
from ._lib import HfInfo, HfOpts, MhaConfig, MhaInput, Param, call

_NAMING = {"hf": 0, "torch": 1, "fused_qkv": 2, "neox": 3, "phi": 4, "gpt2": 5, "bert": 6}
_INIT = {"xavier_uniform": 0, "normal": 1}
_LAYOUT = {"batch_first": 0, "seq_first": 1}
_WEIGHT_DTYPE = {"f32": 0, "float32": 0, "f16": 1, "float16": 1, "bf16": 2, "bfloat16": 2}


def _cstr(s):
    return None if s is None else str(s).encode()


def mha_config(**fields):
    """An attn_mha_config with the library's defaults, then the given fields by name
    (e.g. embed_dim=512, num_heads=8, causal=1, rope=1). weight_dtype may be given as
    "f32", "bf16" or "f16" (16-bit projection weights: an inference-only layer)."""
    c = MhaConfig()
    call("attn_mha_config_init_size", ctypes.byref(c), ctypes.sizeof(c))
    names = {f[0] for f in MhaConfig._fields_}
    for k, v in fields.items():
        if k not in names or k == "struct_size":
            raise TypeError("attn_mha_config has no field %r" % k)
        if k in ("rope_short_factor", "rope_long_factor"):
            arr = getattr(c, k)
            vals = list(v)
            if len(vals) > len(arr):
                raise ValueError("%s holds at most %d values" % (k, len(arr)))
            for i, x in enumerate(vals):
                arr[i] = x
        elif k == "weight_dtype" and isinstance(v, str):
            if v not in _WEIGHT_DTYPE:
                raise ValueError("weight_dtype %r: expected f32, bf16 or f16" % v)
            c.weight_dtype = _WEIGHT_DTYPE[v]
        else:
            setattr(c, k, v)
    return c


def config_dict(c):
    """The fields of an attn_mha_config as a dict."""
    out = {}
    for name, _ in MhaConfig._fields_:
        val = getattr(c, name)
        out[name] = list(val) if name in ("rope_short_factor", "rope_long_factor") else val
    return out


def hf_config(path, layer=-1, model_type=None, allow_unknown_keys=False):
    """Reads the attention layer of a transformers config.json (a file or a model directory)
    with attn_hf_config_read_ex. Returns (config, info): config an attn_mha_config to pass to
    MHA(config=...), info a dict (model_type, arch_name, num_layers, layer, prefix, prefix_alt,
    naming, sliding)."""
    o = HfOpts()
    _lib.lib.attn_hf_opts_init(ctypes.byref(o))
    o.layer = layer
    mt = _cstr(model_type)
    o.model_type = mt
    o.allow_unknown_keys = 1 if allow_unknown_keys else 0
    c = mha_config()
    info = HfInfo()
    call("attn_hf_config_read_ex", _cstr(path), ctypes.byref(o), ctypes.byref(c), ctypes.byref(info))
    d = {n: getattr(info, n) for n, _ in HfInfo._fields_}
    for n in ("model_type", "arch_name", "prefix", "prefix_alt"):
        d[n] = d[n].decode()
    return c, d


def _c_f32(a, name):
    if a is None:
        return None
    return np.ascontiguousarray(a, dtype=np.float32)


def _ptr(a):
    return None if a is None else a.ctypes.data


class KVCache:
    """attn_kvcache: K and V of `batch` sequences, (B, Hkv, capacity, D) each.

    dtype: the element type the cache stores, "f32" (default), "bf16", "f16" or "int8"
    (one fp32 scale per token per KV head); see attn.h "KV cache element types"."""

    DTYPES = {"f32": 0, "f16": 1, "bf16": 2, "int8": 8}

    def __init__(self, batch, capacity, num_kv_heads, head_dim, dtype="f32"):
        if dtype not in self.DTYPES:
            raise ValueError("KVCache dtype %r: expected one of %s" % (dtype, ", ".join(self.DTYPES)))
        h = ctypes.c_void_p()
        call("attn_kvcache_create_typed", ctypes.byref(h), batch, capacity, num_kv_heads, head_dim,
             self.DTYPES[dtype])
        self._h = h
        self.batch = batch
        self.num_kv_heads, self.head_dim = num_kv_heads, head_dim

    @property
    def dtype(self):
        code = _lib.lib.attn_kvcache_dtype(self._h)
        return next(k for k, v in self.DTYPES.items() if v == code)

    def read(self, b, t0=0, n=None):
        """Tokens [t0, t0 + n) of sequence b as fp32 (k, v), each (n, Hkv, D): the stored values."""
        if n is None:
            n = self.len(b) - t0
        k = np.empty((max(n, 0), self.num_kv_heads, self.head_dim), np.float32)
        v = np.empty_like(k)
        call("attn_kvcache_read", self._h, b, t0, n, k.ctypes.data, v.ctypes.data)
        return k, v

    def __del__(self):
        h = getattr(self, "_h", None)
        if h:
            _lib.lib.attn_kvcache_free(h)
            self._h = None

    def reset(self):
        call("attn_kvcache_reset", self._h)

    def truncate(self, length, b=-1):
        """Shortens sequence b (every sequence if b < 0) to `length` tokens."""
        call("attn_kvcache_truncate", self._h, b, length)

    def len(self, b=0):
        return _lib.lib.attn_kvcache_len(self._h, b)

    @property
    def capacity(self):
        return _lib.lib.attn_kvcache_capacity(self._h)


class MHA:
    """The attn_mha layer. MHA(embed_dim=..., num_heads=..., **config_fields), or
    MHA(config=c) with c from mha_config() / hf_config(). Weights start seeded
    (init_weights(seed=0)) unless loaded."""

    def __init__(self, config=None, **fields):
        if config is None:
            config = mha_config(**fields)
        elif fields:
            raise TypeError("pass either config= or config fields, not both")
        h = ctypes.c_void_p()
        call("attn_mha_create", ctypes.byref(h), ctypes.byref(config))
        self._h = h
        self._training = False
        self._cross = False
        self.init_weights()

    @classmethod
    def from_hf(cls, path, layer=-1, weights=None, model_type=None):
        """Layer `layer` of a HF model: config.json at `path` (file or directory); weights
        (a .safetensors path) loaded with the naming and prefix the config implies."""
        c, info = hf_config(path, layer=layer, model_type=model_type)
        m = cls(config=c)
        m.info = info
        if weights is not None:
            try:
                m.load(weights, info["prefix"], info["naming"])
            except _lib.AttnError:
                if not info["prefix_alt"]:
                    raise
                m.load(weights, info["prefix_alt"], info["naming"])
        return m

    def __del__(self):
        h = getattr(self, "_h", None)
        if h:
            _lib.lib.attn_mha_free(h)
            self._h = None

    @property
    def config(self):
        """The resolved config (a dict of attn_mha_config fields)."""
        return config_dict(_lib.lib.attn_mha_get_config(self._h).contents)

    def init_weights(self, scheme="xavier_uniform", seed=0):
        call("attn_mha_init_weights", self._h, _INIT[scheme], seed)

    def train(self, mode=True):
        call("attn_mha_set_training", self._h, 1 if mode else 0)
        self._training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def load(self, path, prefix="", naming="hf"):
        """Loads every parameter from a .safetensors file (all-or-nothing)."""
        naming = _NAMING[naming] if isinstance(naming, str) else int(naming)
        st = ctypes.c_void_p()
        call("attn_st_open", ctypes.byref(st), _cstr(path))
        try:
            call("attn_mha_load", self._h, st, _cstr(prefix), naming)
        finally:
            _lib.lib.attn_st_free(st)

    def save(self, path, prefix=""):
        """Writes the parameters (HF names) to a .safetensors file (temp + rename)."""
        w = ctypes.c_void_p()
        call("attn_st_writer_create", ctypes.byref(w))
        try:
            call("attn_mha_save", self._h, w, _cstr(prefix))
            call("attn_st_writer_save", w, _cstr(path))
        finally:
            _lib.lib.attn_st_writer_free(w)

    def _params(self):
        n = _lib.lib.attn_mha_num_params(self._h)
        for i in range(n):
            p = Param()
            call("attn_mha_param", self._h, i, ctypes.byref(p))
            shape = tuple(p.shape[j] for j in range(p.ndim))
            yield p, shape

    def parameters(self):
        """{name: array view of the layer's weights} (writable, no copy). A layer with 16-bit
        projection weights (weight_dtype bf16 / f16) lists only its fp32 parameters (biases,
        norm weights); its Wq/Wk/Wv/Wo are not fp32 arrays (save() writes them widened)."""
        return {p.name.decode(): _view(p.data, s, self) for p, s in self._params() if p.data}

    def gradients(self):
        """{name: array view of the accumulated gradient} (no copy; none for a 16-bit layer)."""
        return {p.name.decode(): _view(p.grad, s, self) for p, s in self._params() if p.grad}

    @property
    def param_bytes(self):
        """Bytes the layer holds for its parameters and their gradients (attn_mha_param_bytes)."""
        return int(_lib.lib.attn_mha_param_bytes(self._h))

    @property
    def proj_kernel(self):
        """How the projections run: "sgemm" (fp32 weights), "sbgemm" or "widen" (16-bit)."""
        return _lib.lib.attn_mha_proj_kernel(self._h).decode()

    def zero_grad(self):
        call("attn_mha_zero_grad", self._h)

    def _input(self, x, key, value, positions, pos_offset, key_padding_mask, mask, layout):
        inp = MhaInput()
        call("attn_mha_input_init_size", ctypes.byref(inp), ctypes.sizeof(inp))
        inp.layout = _LAYOUT[layout]
        x = _c_f32(x, "x")
        if x.ndim != 3:
            raise ValueError("x must be (B, S, E) (layout batch_first) or (S, B, E), got %s" % (x.shape,))
        B, S = (x.shape[0], x.shape[1]) if inp.layout == 0 else (x.shape[1], x.shape[0])
        key, value = _c_f32(key, "key"), _c_f32(value, "value")
        keep = [x, key, value]
        inp.batch, inp.seq_q = B, S
        inp.x, inp.key, inp.value = _ptr(x), _ptr(key), _ptr(value)
        if key is not None:
            inp.seq_kv = key.shape[1] if inp.layout == 0 else key.shape[0]
        if positions is not None:
            pos = np.ascontiguousarray(positions, dtype=np.int32)
            if pos.shape != (B, S):
                raise ValueError("positions must be (B, Sq) = %s, got %s" % ((B, S), pos.shape))
            keep.append(pos)
            inp.positions = pos.ctypes.data
        inp.pos_offset = pos_offset
        if key_padding_mask is not None:
            kp = np.ascontiguousarray(key_padding_mask, dtype=np.uint8)
            keep.append(kp)
            inp.key_padding_mask = kp.ctypes.data
        if mask is not None:
            from .sdpa import _mask
            H = _lib.lib.attn_mha_get_config(self._h).contents.num_heads
            Skv = S if key is None else inp.seq_kv
            (inp.mask_kind, inp.mask, inp.mask_stride_b, inp.mask_stride_h,
             inp.mask_stride_q), m = _mask(mask, B, H, S, Skv)
            keep.append(m)
        return inp, keep, x

    def forward(self, x, key=None, value=None, *, positions=None, pos_offset=0,
                key_padding_mask=None, mask=None, layout="batch_first"):
        """y = the layer applied to x (B, S, E) (layout 'seq_first': (S, B, E)); key / value for
        cross-attention; key_padding_mask (B, Skv) True = ignored; mask as in attn.sdpa."""
        inp, keep, x = self._input(x, key, value, positions, pos_offset, key_padding_mask, mask, layout)
        E = _lib.lib.attn_mha_get_config(self._h).contents.embed_dim
        y = np.empty(x.shape[:2] + (E,), dtype=np.float32)
        call("attn_mha_forward", self._h, ctypes.byref(inp), y.ctypes.data)
        self._shapes = (x.shape, None if keep[1] is None else keep[1].shape,
                        None if keep[2] is None else keep[2].shape)
        return y

    __call__ = forward

    def backward(self, dy):
        """(dx, dkey, dvalue) of the last training-mode forward (dkey / dvalue None for
        self-attention; dkey holds both when value was None). Parameter gradients += ."""
        dy = _c_f32(dy, "dy")
        xs, ks, vs = getattr(self, "_shapes", (None, None, None))
        if xs is None:
            raise _lib.AttnError(-14, "backward without a training-mode forward", "attn_mha_backward")
        if dy.shape != xs[:2] + (self.config["embed_dim"],):
            raise ValueError("dy must have the shape of y, %s, got %s" % (xs[:2] + (self.config["embed_dim"],), dy.shape))
        dx = np.empty(xs, np.float32)
        dk = None if ks is None else np.empty(ks, np.float32)
        dv = None if vs is None else np.empty(vs, np.float32)
        call("attn_mha_backward", self._h, dy.ctypes.data, dx.ctypes.data, _ptr(dk), _ptr(dv))
        return dx, dk, dv

    def forward_cached(self, cache, x):
        """Incremental inference: appends x's (B, Sq, E) K/V to cache and attends causally over
        the cached sequence. Returns y (B, Sq, E)."""
        x = _c_f32(x, "x")
        if x.ndim != 3:
            raise ValueError("x must be (B, Sq, E), got %s" % (x.shape,))
        y = np.empty(x.shape[:2] + (self.config["embed_dim"],), np.float32)
        call("attn_mha_forward_cached", self._h, cache._h, x.ctypes.data, x.shape[0], x.shape[1],
             y.ctypes.data)
        return y


def _view(addr, shape, owner):
    n = int(np.prod(shape)) if shape else 1
    buf = (ctypes.c_float * n).from_address(addr)
    buf._attn_owner = owner  # the array keeps the layer alive through its base buffer
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)
