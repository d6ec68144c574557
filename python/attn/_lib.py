# SPDX-License-Identifier: MIT
"""Loading libattn.so and its ctypes declarations (mirrors include/attn.h field by field).

Search order: $ATTN_LIBRARY (a path to libattn.so*), the copy installed inside this package
(``pip install ./python`` builds it), then the system's ``libattn.so.0``.
The extensible structs (attn_sdpa_opts, attn_mha_config, attn_mha_input, attn_rope_config) are initialised with
their ``*_init_size(p, sizeof)`` function, never zeroed by hand (docs/abi.md, "For bindings").
"""
import ctypes
import ctypes.util
import os

c_i64 = ctypes.c_int64
c_i32 = ctypes.c_int32
c_int = ctypes.c_int
c_float = ctypes.c_float
c_u32 = ctypes.c_uint32
c_u64 = ctypes.c_uint64
c_vp = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_size = ctypes.c_size_t

STATUS_NAMES = {
    0: "ATTN_OK", -1: "ATTN_ERR_NULL", -2: "ATTN_ERR_SHAPE", -3: "ATTN_ERR_STRIDE",
    -4: "ATTN_ERR_OPTION", -5: "ATTN_ERR_WORKSPACE", -6: "ATTN_ERR_ALIAS", -7: "ATTN_ERR_NOMEM",
    -8: "ATTN_ERR_IO", -9: "ATTN_ERR_FORMAT", -10: "ATTN_ERR_DTYPE", -11: "ATTN_ERR_NOT_FOUND",
    -12: "ATTN_ERR_CAPACITY", -13: "ATTN_ERR_CONFIG", -14: "ATTN_ERR_STATE",
    -15: "ATTN_ERR_UNSUPPORTED", -16: "ATTN_ERR_INTERNAL",
}


class AttnError(RuntimeError):
    """An attn call failed. ``status`` is the attn_status value, ``status_name`` its name
    (e.g. "ATTN_ERR_SHAPE"), ``message`` attn_last_error() of the failing call."""

    def __init__(self, status, message, func=""):
        self.status = int(status)
        self.status_name = STATUS_NAMES.get(self.status, "ATTN_STATUS_%d" % self.status)
        self.message = message
        self.func = func
        super().__init__("%s: %s" % (self.status_name, message or func))


class View(ctypes.Structure):  # attn_view (frozen): (B, S, H, D) element strides, D stride 1
    _fields_ = [("data", c_vp), ("stride_b", c_i64), ("stride_s", c_i64), ("stride_h", c_i64)]


class TView(ctypes.Structure):  # attn_tview (frozen): attn_view + its element type (attn_dtype)
    _fields_ = [("data", c_vp), ("stride_b", c_i64), ("stride_s", c_i64), ("stride_h", c_i64),
                ("dtype", c_int)]


DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2  # attn_dtype values the typed sdpa calls take


class Dims(ctypes.Structure):  # attn_sdpa_dims (frozen)
    _fields_ = [("batch", c_i64), ("seq_q", c_i64), ("seq_k", c_i64), ("heads_q", c_i64),
                ("heads_kv", c_i64), ("head_dim", c_i64), ("head_dim_v", c_i64)]


class SdpaOpts(ctypes.Structure):  # attn_sdpa_opts (extensible; struct_size first)
    _fields_ = [("struct_size", c_u32), ("scale", c_float), ("causal", c_int), ("align", c_int),
                ("key_lens", c_vp), ("window_left", c_i64), ("window_right", c_i64),
                ("alibi_slopes", c_vp), ("softcap", c_float), ("mask_kind", c_int), ("mask", c_vp),
                ("mask_stride_b", c_i64), ("mask_stride_h", c_i64), ("mask_stride_q", c_i64),
                ("cu_seqlens_q", c_vp), ("cu_seqlens_k", c_vp), ("dropout_p", c_float),
                ("dropout_seed", c_u64), ("num_threads", c_int),
                # appended after the first release
                ("bwd_fast", c_int), ("q_pos_offset", c_i64), ("row_stats", c_vp)]


class RopeConfig(ctypes.Structure):  # attn_rope_config (extensible)
    _fields_ = [("struct_size", c_u32), ("kind", c_int), ("rope_dim", c_i64), ("theta", ctypes.c_double),
                ("scaling", c_int), ("factor", ctypes.c_double), ("low_freq_factor", ctypes.c_double),
                ("high_freq_factor", ctypes.c_double), ("original_max_pos", c_i64), ("max_pos", c_i64),
                ("attention_factor", ctypes.c_double), ("beta_fast", ctypes.c_double),
                ("beta_slow", ctypes.c_double), ("mscale", ctypes.c_double),
                ("mscale_all_dim", ctypes.c_double), ("no_truncate", c_int), ("short_factor", c_vp),
                ("long_factor", c_vp)]


class MhaConfig(ctypes.Structure):  # attn_mha_config (extensible)
    _fields_ = [("struct_size", c_u32), ("embed_dim", c_i64), ("num_heads", c_i64),
                ("num_kv_heads", c_i64), ("head_dim", c_i64), ("kdim", c_i64), ("vdim", c_i64),
                ("bias_q", c_int), ("bias_k", c_int), ("bias_v", c_int), ("bias_o", c_int),
                ("causal", c_int), ("scale", c_float), ("dropout", c_float), ("dropout_seed", c_u64),
                ("softcap", c_float), ("window_left", c_i64), ("window_right", c_i64),
                ("rope", c_int), ("rope_theta", c_float), ("rope_dim", c_i64), ("rope_scaling", c_int),
                ("rope_factor", c_float), ("rope_low_freq_factor", c_float),
                ("rope_high_freq_factor", c_float), ("rope_original_max_pos", c_i64),
                ("qk_norm", c_int), ("qk_norm_eps", c_float), ("qk_norm_offset", c_float),
                ("rope_max_pos", c_i64), ("rope_attention_factor", c_float),
                ("rope_beta_fast", c_float), ("rope_beta_slow", c_float), ("rope_mscale", c_float),
                ("rope_mscale_all_dim", c_float), ("rope_no_truncate", c_int),
                ("rope_short_factor", c_float * 128), ("rope_long_factor", c_float * 128),
                ("weight_dtype", c_int)]


class MhaInput(ctypes.Structure):  # attn_mha_input (extensible)
    _fields_ = [("struct_size", c_u32), ("layout", c_int), ("batch", c_i64), ("seq_q", c_i64),
                ("seq_kv", c_i64), ("x", c_vp), ("key", c_vp), ("value", c_vp), ("positions", c_vp),
                ("pos_offset", c_i64), ("key_padding_mask", c_vp), ("mask_kind", c_int), ("mask", c_vp),
                ("mask_stride_b", c_i64), ("mask_stride_h", c_i64), ("mask_stride_q", c_i64)]


class Param(ctypes.Structure):  # attn_param (frozen)
    _fields_ = [("name", c_char_p), ("data", c_vp), ("grad", c_vp), ("ndim", c_int),
                ("shape", c_i64 * 2), ("numel", c_i64), ("trainable", c_int)]


class HfOpts(ctypes.Structure):  # attn_hf_opts
    _fields_ = [("layer", c_i64), ("model_type", c_char_p), ("allow_unknown_keys", c_int)]


class HfInfo(ctypes.Structure):  # attn_hf_info
    _fields_ = [("model_type", ctypes.c_char * 32), ("arch_name", ctypes.c_char * 32),
                ("num_layers", c_i64), ("layer", c_i64), ("prefix", ctypes.c_char * 128),
                ("prefix_alt", ctypes.c_char * 128), ("naming", c_int), ("sliding", c_int)]


_P = ctypes.POINTER
# name: (restype, argtypes); restype c_int = attn_status (checked by call())
_DECLS = {
    "attn_version": (c_char_p, []),
    "attn_status_str": (c_char_p, [c_int]),
    "attn_last_error": (c_char_p, []),
    "attn_clear_error": (None, []),
    "attn_set_num_threads": (c_int, [c_int]),
    "attn_get_num_threads": (c_int, []),
    "attn_isa_active": (c_int, []),
    "attn_isa_name": (c_char_p, [c_int]),
    "attn_sdpa_opts_init_size": (c_int, [_P(SdpaOpts), c_size]),
    "attn_sdpa_fwd_workspace_size": (c_size, [_P(Dims), _P(SdpaOpts)]),
    "attn_sdpa_bwd_workspace_size": (c_size, [_P(Dims), _P(SdpaOpts)]),
    "attn_sdpa_fwd": (c_int, [_P(Dims), View, View, View, View, c_vp, _P(SdpaOpts), c_vp, c_size]),
    "attn_sdpa_bwd": (c_int, [_P(Dims), View, View, View, View, View, c_vp, View, View, View,
                              _P(SdpaOpts), c_vp, c_size]),
    "attn_sdpa_fwd_typed_workspace_size": (c_size, [_P(Dims), TView, TView, TView, TView, _P(SdpaOpts)]),
    "attn_sdpa_bwd_typed_workspace_size": (c_size, [_P(Dims), TView, TView, TView, TView, TView, TView, TView,
                                                    TView, _P(SdpaOpts)]),
    "attn_sdpa_fwd_typed": (c_int, [_P(Dims), TView, TView, TView, TView, c_vp, _P(SdpaOpts), c_vp, c_size]),
    "attn_sdpa_bwd_typed": (c_int, [_P(Dims), TView, TView, TView, TView, TView, c_vp, TView, TView, TView,
                                    _P(SdpaOpts), c_vp, c_size]),
    "attn_rope_config_init_size": (c_int, [_P(RopeConfig), c_size]),
    "attn_rope_fwd": (c_int, [_P(RopeConfig), c_i64, c_i64, c_i64, c_i64, View, c_vp, c_i64, View]),
    "attn_rope_bwd": (c_int, [_P(RopeConfig), c_i64, c_i64, c_i64, c_i64, View, c_vp, c_i64, View]),
    "attn_st_open": (c_int, [_P(c_vp), c_char_p]),
    "attn_st_free": (None, [c_vp]),
    "attn_st_writer_create": (c_int, [_P(c_vp)]),
    "attn_st_writer_free": (None, [c_vp]),
    "attn_st_writer_save": (c_int, [c_vp, c_char_p]),
    "attn_mha_config_init_size": (c_int, [_P(MhaConfig), c_size]),
    "attn_mha_input_init_size": (c_int, [_P(MhaInput), c_size]),
    "attn_hf_opts_init": (None, [_P(HfOpts)]),
    "attn_hf_config_read_ex": (c_int, [c_char_p, _P(HfOpts), _P(MhaConfig), _P(HfInfo)]),
    "attn_mha_create": (c_int, [_P(c_vp), _P(MhaConfig)]),
    "attn_mha_free": (None, [c_vp]),
    "attn_mha_get_config": (_P(MhaConfig), [c_vp]),
    "attn_mha_init_weights": (c_int, [c_vp, c_int, c_u64]),
    "attn_mha_set_training": (c_int, [c_vp, c_int]),
    "attn_mha_forward": (c_int, [c_vp, _P(MhaInput), c_vp]),
    "attn_mha_backward": (c_int, [c_vp, c_vp, c_vp, c_vp, c_vp]),
    "attn_mha_num_params": (c_i64, [c_vp]),
    "attn_mha_param": (c_int, [c_vp, c_i64, _P(Param)]),
    "attn_mha_zero_grad": (c_int, [c_vp]),
    "attn_mha_param_bytes": (c_size, [c_vp]),
    "attn_mha_proj_kernel": (c_char_p, [c_vp]),
    "attn_mha_load": (c_int, [c_vp, c_vp, c_char_p, c_int]),
    "attn_mha_save": (c_int, [c_vp, c_vp, c_char_p]),
    "attn_kvcache_create": (c_int, [_P(c_vp), c_i64, c_i64, c_i64, c_i64]),
    "attn_kvcache_free": (None, [c_vp]),
    "attn_kvcache_reset": (c_int, [c_vp]),
    "attn_kvcache_truncate": (c_int, [c_vp, c_i64, c_i64]),
    "attn_kvcache_len": (c_i64, [c_vp, c_i64]),
    "attn_kvcache_capacity": (c_i64, [c_vp]),
    "attn_kvcache_create_typed": (c_int, [_P(c_vp), c_i64, c_i64, c_i64, c_i64, c_int]),
    "attn_kvcache_dtype": (c_int, [c_vp]),
    "attn_kvcache_read": (c_int, [c_vp, c_i64, c_i64, c_i64, c_vp, c_vp]),
    "attn_mha_forward_cached": (c_int, [c_vp, c_vp, c_vp, c_i64, c_i64, c_vp]),
}


def _candidates():
    env = os.environ.get("ATTN_LIBRARY")
    if env:
        return [env]  # an explicit choice is never second-guessed
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, n) for n in ("libattn.so.0", "libattn.so")]
    found = ctypes.util.find_library("attn")
    out += [found] if found else []
    return out + ["libattn.so.0"]


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append("%s: no such file" % path)
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append(str(e))
            continue
        for name, (res, args) in _DECLS.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        return lib, path
    raise ImportError("attn: libattn.so not found (set ATTN_LIBRARY to its path, or "
                      "`pip install ./python` from the attn repository): " + "; ".join(errors))


lib, library_path = _load()


def raise_for(status, func=""):
    msg = lib.attn_last_error()
    raise AttnError(status, msg.decode("utf-8", "replace") if msg else "", func)


def call(name, *args):
    """Calls an attn_status function; raises AttnError on failure."""
    st = getattr(lib, name)(*args)
    if st != 0:
        raise_for(st, name)
    return st


def sdpa_opts():
    o = SdpaOpts()
    call("attn_sdpa_opts_init_size", ctypes.byref(o), ctypes.sizeof(o))
    return o
