# SPDX-License-Identifier: MIT
"""attn: exact, fast multi-head attention on the CPU (Python binding of libattn).

NumPy API: attn.sdpa, attn.sdpa_backward, attn.rope, attn.rope_backward, attn.MHA, attn.KVCache, attn.hf_config.
PyTorch (imported on first use of attn.torch): attn.torch.scaled_dot_product_attention,
attn.torch.MultiheadAttention. Errors raise attn.AttnError. docs/python.md is the manual.
"""
from ._lib import AttnError, library_path
from ._lib import lib as _l
from .sdpa import sdpa, sdpa_backward
from .mha import MHA, KVCache, hf_config
from .rope_block import rope, rope_backward

__all__ = ["AttnError", "sdpa", "sdpa_backward", "rope", "rope_backward", "MHA", "KVCache", "hf_config", "version",
           "set_num_threads", "get_num_threads", "library_path"]


def version():
    """The loaded libattn's version string."""
    return _l.attn_version().decode()


def set_num_threads(n):
    """attn's own pool size (independent of NumPy's / PyTorch's BLAS threads)."""
    from ._lib import call
    call("attn_set_num_threads", int(n))


def get_num_threads():
    return _l.attn_get_num_threads()


def __getattr__(name):
    if name == "torch":  # lazy: importing torch is slow and optional
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError("module 'attn' has no attribute %r" % name)
