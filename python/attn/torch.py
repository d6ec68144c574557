# SPDX-License-Identifier: MIT
"""PyTorch integration (imported as attn.torch; needs torch).

scaled_dot_product_attention: torch.nn.functional.scaled_dot_product_attention's signature and
semantics ((B, H, L, E) layout, is_causal top-left, attn_mask bool (True = attend) or float
(added), enable_gqa, scale, dropout_p) on attn's kernels, as an autograd.Function. float32,
bfloat16 or float16 CPU tensors (q, k, v of one dtype) of any strides are passed by pointer and
strides (bf16 / f16 to attn_sdpa_fwd_typed / _bwd_typed, never widened here); a tensor whose
last dimension is not contiguous, or whose strides are negative, is copied once (same dtype).
Outputs and gradients have the inputs' dtype (lse, kept for the backward, is fp32). They are
(B, L, H, Ev) buffers returned as (B, H, L, Ev) views, as torch's own CPU flash kernel does.
Differences from torch: a query row that sees no key gives 0 (torch: NaN); dropout draws
attn's counter-based RNG (seeded from torch's generator, so torch.manual_seed makes it
reproducible) — not torch's masks; no gradient flows to a float attn_mask.

rope: the RoPE building block (attn.rope's options) as an autograd Function on (B, S, H, D)
float32 CPU tensors of any strides (a (B, H, S, D) tensor: pass x.transpose(1, 2)).

MultiheadAttention: a drop-in for torch.nn.MultiheadAttention (same constructor, parameter
names and state_dict; forward + backward through autograd), its attention on attn's kernel.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _core
from . import rope_block as _rope
from . import _lib
from ._lib import AttnError  # noqa: F401  (raised by every call)

__all__ = ["scaled_dot_product_attention", "rope", "MultiheadAttention", "AttnError"]

_BOOL, _ADD = _core._MASK_BOOL, _core._MASK_ADD
_plans = _core.PlanCache()  # inference calls without mask / dropout: validated once per shape
# torch dtype -> attn_dtype (fp32 takes attn_sdpa_fwd / _bwd; the others the _typed calls)
_DTYPES = {torch.float32: _lib.DTYPE_F32, torch.bfloat16: _lib.DTYPE_BF16, torch.float16: _lib.DTYPE_F16}


def _check(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError("%s must be a torch.Tensor" % name)
    if t.device.type != "cpu" or t.dtype not in _DTYPES:
        raise TypeError("attn.torch: %s must be a float32, bfloat16 or float16 CPU tensor, got %s on %s"
                        % (name, t.dtype, t.device))
    if t.dim() != 4:
        raise ValueError("attn.torch: %s must be (B, H, L, E), got shape %s" % (name, tuple(t.shape)))


def _strided(t):
    """t itself when attn can read it in place (unit last stride, nonnegative strides), else one copy."""
    st = t.stride()
    if (t.shape[-1] > 1 and st[-1] != 1) or any(s < 0 for s in st):
        t = t.contiguous()
    return t


def _view_bhsd(t):
    """attn_view (B, S, H, D) of a (B, H, S, D) float32 tensor: no copy, strides as they are."""
    sb, sh, ss, _ = t.stride()
    return _core.view(t.data_ptr(), sb, ss, sh)


def _tview_bhsd(t):
    """attn_tview (B, S, H, D) of a (B, H, S, D) tensor of any of _DTYPES: no copy."""
    sb, sh, ss, _ = t.stride()
    return _core.tview(t.data_ptr(), sb, ss, sh, _DTYPES[t.dtype])


def _empty_bhsd(B, H, S, D, dtype):
    """A (B, S, H, D) buffer seen as (B, H, S, D)."""
    return torch.empty((B, S, H, D), dtype=dtype).transpose(1, 2)


def _fwd(dims, q, k, v, o, lse, opts):
    """o = sdpa(q, k, v): attn_sdpa_fwd for fp32 tensors, attn_sdpa_fwd_typed otherwise."""
    if q.dtype == torch.float32:
        _core.fwd(dims, *[_view_bhsd(t) for t in (q, k, v, o)], lse, opts)
    else:
        _core.fwd_typed(dims, *[_tview_bhsd(t) for t in (q, k, v, o)], lse, opts)


def _bwd(dims, q, k, v, o, do, lse, dq, dk, dv, opts):
    ts = (q, k, v, o, do)
    if all(t.dtype == torch.float32 for t in ts):
        vs = [_view_bhsd(t) for t in ts + (dq, dk, dv)]
        _core.bwd(dims, *vs[:5], lse, *vs[5:], opts)
    else:
        vs = [_tview_bhsd(t) for t in ts + (dq, dk, dv)]
        _core.bwd_typed(dims, *vs[:5], lse, *vs[5:], opts)


def _mask_opt(attn_mask, B, H, L, S):
    if attn_mask.device.type != "cpu":
        raise TypeError("attn.torch: attn_mask must be a CPU tensor")
    if attn_mask.dtype == torch.bool:
        kind = _BOOL
        m = attn_mask
    elif attn_mask.is_floating_point():
        kind = _ADD
        m = attn_mask.detach().to(torch.float32)
    else:
        raise TypeError("attn.torch: attn_mask must be bool or floating point, got %s" % attn_mask.dtype)
    if m.dim() > 4:
        raise ValueError("attn.torch: attn_mask must have at most 4 dimensions")
    while m.dim() < 4:
        m = m.unsqueeze(0)
    if m.shape[-1] != S or (S > 1 and m.stride(-1) != 1) or any(s < 0 for s in m.stride()):
        m = m.expand(*m.shape[:3], S).contiguous()
    try:
        m = m.expand(B, H, L, S)
    except RuntimeError:
        raise ValueError("attn.torch: attn_mask of shape %s does not broadcast to (B, H, L, S) = %s"
                         % (tuple(attn_mask.shape), (B, H, L, S))) from None
    sb, sh, sq, _ = m.stride()
    return (kind, m.data_ptr(), sb, sh, sq), m


class _SDPA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa, plan_key=None):
        q0, k0, v0 = q, k, v
        q, k, v = _strided(q), _strided(k), _strided(v)
        ctx.plan_key = plan_key if (q is q0 and k is k0 and v is v0) else None
        B, Hq, L, E = q.shape
        Hkv, S, Ev = k.shape[1], k.shape[2], v.shape[3]
        mopt = m = None
        if attn_mask is not None:
            mopt, m = _mask_opt(attn_mask, B, Hq, L, S)
        seed = 0
        if dropout_p > 0:
            seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64).item())
        need_grad = any(ctx.needs_input_grad[:3])
        # training: lse (B, Hq, L), fp32 for every dtype, then the row statistics (B, Hq, L, 2)
        # the kernel's backward reads instead of recomputing (attn_sdpa_opts.row_stats)
        lse = torch.empty(3 * B * Hq * L, dtype=torch.float32) if need_grad else None
        stats = None if lse is None else lse.data_ptr() + 4 * B * Hq * L
        opts = _core.make_opts(causal=is_causal, scale=scale, mask=mopt, dropout_p=dropout_p,
                               dropout_seed=seed, row_stats=stats)
        dims = _core.dims(B, L, S, Hq, Hkv, E, Ev)
        o = _empty_bhsd(B, Hq, L, Ev, q.dtype)
        _fwd(dims, q, k, v, o, None if lse is None else lse.data_ptr(), opts)
        if ctx.plan_key is not None and not need_grad and m is None and not dropout_p:
            views = [_view_bhsd(t) for t in (q, k, v, o)]
            dtypes = None if q.dtype == torch.float32 else tuple(_DTYPES[t.dtype] for t in (q, k, v, o))
            plan = _core.Plan(dims, opts, [(x.stride_b, x.stride_s, x.stride_h) for x in views], dtypes)
            plan.oshape = (B, L, Hq, Ev)
            _plans.put(ctx.plan_key, plan)
        if need_grad:
            ctx.save_for_backward(q, k, v, o, lse)
            ctx.keep = (m, dims, (is_causal, scale, mopt, dropout_p, seed))
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        m, dims, (is_causal, scale, mopt, dropout_p, seed) = ctx.keep
        do = _strided(do if do.dtype in _DTYPES else do.to(q.dtype))
        B, Hq, L, E = q.shape
        opts = _core.make_opts(causal=is_causal, scale=scale, mask=mopt, dropout_p=dropout_p,
                               dropout_seed=seed, row_stats=lse.data_ptr() + 4 * B * Hq * L)
        Hkv, S, Ev = k.shape[1], k.shape[2], v.shape[3]
        dt = q.dtype  # gradients in the inputs' dtype
        dq, dk, dv = _empty_bhsd(B, Hq, L, E, dt), _empty_bhsd(B, Hkv, S, E, dt), _empty_bhsd(B, Hkv, S, Ev, dt)
        _bwd(dims, q, k, v, o, do, lse.data_ptr(), dq, dk, dv, opts)
        return dq, dk, dv, None, None, None, None, None, None


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    """torch.nn.functional.scaled_dot_product_attention on attn's kernels (see the module doc).
    query (N, Hq, L, E), key (N, Hkv, S, E), value (N, Hkv, S, Ev) -> (N, Hq, L, Ev); 3-D
    (N, L, E) inputs are taken as one head. float32, bfloat16 or float16 (one dtype for all
    three); the output and the gradients have that dtype."""
    if (attn_mask is None and not dropout_p and type(query) is torch.Tensor
            and not (torch.is_grad_enabled() and (query.requires_grad or key.requires_grad
                                                  or value.requires_grad))):
        plan = _plans.get((query.shape, query.stride(), query.dtype, query.device, key.shape, key.stride(),
                           key.dtype, key.device, value.shape, value.stride(), value.dtype, value.device,
                           is_causal, scale, enable_gqa))
        if plan is not None:  # inference hot path: validated before, no autograd node
            o = torch.empty(plan.oshape, dtype=query.dtype)
            plan.run(query.data_ptr(), key.data_ptr(), value.data_ptr(), o.data_ptr(), None)
            return o.transpose(1, 2)
    squeeze = query.dim() == 3
    if squeeze:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if attn_mask is not None and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(1)
    for t, n in ((query, "query"), (key, "key"), (value, "value")):
        _check(t, n)
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError("attn.torch: query, key and value must have one dtype, got %s, %s, %s (as torch)"
                        % (query.dtype, key.dtype, value.dtype))
    if is_causal and attn_mask is not None:
        raise ValueError("attn.torch: explicit attn_mask should not be set when is_causal=True (as torch)")
    Hq, Hkv = query.shape[1], key.shape[1]
    if Hq != Hkv and not enable_gqa:
        raise ValueError("attn.torch: query has %d heads and key %d: pass enable_gqa=True for GQA" % (Hq, Hkv))
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError("attn.torch: dropout_p must be in [0, 1), got %r" % (dropout_p,))
    key4 = None
    if attn_mask is None and not dropout_p and not squeeze:
        key4 = (query.shape, query.stride(), query.dtype, query.device, key.shape, key.stride(),
                key.dtype, key.device, value.shape, value.stride(), value.dtype, value.device,
                is_causal, scale, enable_gqa)
    o = _SDPA.apply(query, key, value, attn_mask, float(dropout_p), bool(is_causal),
                    None if scale is None else float(scale), bool(enable_gqa), key4)
    return o.squeeze(1) if squeeze else o


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, positions, kw):
        x = _strided(x)
        y = torch.empty(tuple(x.shape), dtype=torch.float32)
        _rope.rope(x.detach().numpy(), positions, out=y.numpy(), **kw)
        ctx.positions, ctx.kw = positions, kw
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        dy = _strided(dy)
        dx = torch.empty(tuple(dy.shape), dtype=torch.float32)
        _rope.rope_backward(dy.numpy(), ctx.positions, out=dx.numpy(), **ctx.kw)
        return dx, None, None


def rope(x, positions=None, **options):
    """attn.rope on a (B, S, H, D) float32 CPU tensor, differentiable (the backward is
    attn.rope_backward). positions: None (0 .. S-1), or an integer tensor / array (S,) or
    (B, S). options: those of attn.rope (kind, rope_dim, theta, scaling, factor, ...)."""
    if not isinstance(x, torch.Tensor) or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4:
        raise TypeError("attn.torch.rope: x must be a (B, S, H, D) float32 CPU tensor")
    if isinstance(positions, torch.Tensor):
        if positions.is_floating_point():
            raise TypeError("attn.torch.rope: positions must be integers")
        positions = positions.detach().cpu().numpy()
    if "out" in options:
        raise TypeError("attn.torch.rope: out= is not supported (autograd owns the result)")
    return _Rope.apply(x, positions, options)


class MultiheadAttention(nn.Module):
    """Drop-in for torch.nn.MultiheadAttention: the same constructor, parameters
    (in_proj_weight or q/k/v_proj_weight, in_proj_bias, out_proj, bias_k, bias_v) and forward
    signature, so a state_dict loads unchanged in either direction. The projections are
    torch's (F.linear); the attention runs on attn.torch.scaled_dot_product_attention.
    need_weights=True (torch's default) additionally computes the (averaged) attention
    weights with an explicit softmax, as torch does — pass need_weights=False for the fast path."""

    __constants__ = ["batch_first"]

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        ref = nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn,
                                    kdim, vdim, batch_first, device=device, dtype=dtype)
        # the same parameters, created and initialised exactly as torch does
        self.embed_dim, self.kdim, self.vdim = ref.embed_dim, ref.kdim, ref.vdim
        self._qkv_same_embed_dim = ref._qkv_same_embed_dim
        self.num_heads, self.dropout, self.batch_first = num_heads, dropout, batch_first
        self.head_dim = ref.head_dim
        self.add_zero_attn = add_zero_attn
        for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                     "in_proj_bias", "bias_k", "bias_v"):
            p = getattr(ref, name)
            if p is None:
                self.register_parameter(name, None)
            else:
                setattr(self, name, p)
        self.out_proj = ref.out_proj

    def _proj(self, query, key, value):
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            return (F.linear(query, w[:E], bq), F.linear(key, w[E:2 * E], bk),
                    F.linear(value, w[2 * E:], bv))
        return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                F.linear(value, self.v_proj_weight, bv))

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if self.batch_first and batched:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        # (L, N, E) from here on, as torch's F.multi_head_attention_forward
        L, N, E = query.shape
        H, D = self.num_heads, self.head_dim
        q, k, v = self._proj(query, key, value)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.repeat(1, N, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, N, 1)])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros((1,) + k.shape[1:])])
            v = torch.cat([v, v.new_zeros((1,) + v.shape[1:])])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        S = k.shape[0]
        # (L, N, H*D) viewed as (N, H, L, D) with strides: no copy
        qh = q.view(L, N, H, D).permute(1, 2, 0, 3)
        kh = k.view(S, N, H, D).permute(1, 2, 0, 3)
        vh = v.view(S, N, H, D).permute(1, 2, 0, 3)
        mask = _merge_masks(attn_mask, key_padding_mask, is_causal, N, H, L, S, q.dtype)
        p = self.dropout if self.training else 0.0
        o = scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, dropout_p=p,
                                         is_causal=is_causal and mask is None)
        o = o.permute(2, 0, 1, 3).reshape(L, N, E)
        y = F.linear(o, self.out_proj.weight, self.out_proj.bias)
        w = None
        if need_weights:
            s = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(D)
            if mask is not None:
                s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
            elif is_causal:
                s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), float("-inf"))
            w = torch.softmax(s, dim=-1)
            if p > 0:
                w = F.dropout(w, p)
            w = w.mean(dim=1) if average_attn_weights else w
            if not batched:
                w = w.squeeze(0)
        if self.batch_first and batched:
            y = y.transpose(0, 1)
        if not batched:
            y = y.squeeze(1)
        return y, w


def _merge_masks(attn_mask, key_padding_mask, is_causal, N, H, L, S, dtype):
    """torch's attn_mask ((L, S) or (N*H, L, S); bool True = NOT allowed, or float added) and
    key_padding_mask ((N, S), True = ignore) as one SDPA mask (bool True = attend, or float)."""
    if attn_mask is None and key_padding_mask is None:
        return None
    m = None
    if attn_mask is not None:
        a = attn_mask.view(N, H, L, S) if attn_mask.dim() == 3 else attn_mask.view(1, 1, L, S)
        m = ~a if a.dtype == torch.bool else a.to(dtype)
    if is_causal and m is None:
        m = ~torch.ones(L, S, dtype=torch.bool).triu(1).view(1, 1, L, S)
    if key_padding_mask is not None:
        kp = key_padding_mask.view(N, 1, 1, S)
        if kp.dtype == torch.bool:
            if m is None or m.dtype == torch.bool:
                m = ~kp if m is None else (m & ~kp)
            else:
                m = m.masked_fill(kp, float("-inf"))
        else:
            kp = kp.to(dtype)
            m = kp if m is None else (m.float() if m.dtype != torch.bool else
                                      torch.zeros_like(m, dtype=dtype).masked_fill(~m, float("-inf"))) + kp
    return m
