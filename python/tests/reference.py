# SPDX-License-Identifier: MIT
"""Independent float64 NumPy reference of attn.h's attention (position model, every option)
and of its backward, written from the formulas in attn.h (no code shared with the library)."""
import numpy as np


def head(q, k, v, do, *, sk_b, sq_b, causal, bottom_right, scale, window, slope, softcap,
         mbool, madd, keep=None, p_drop=0.0, q_pos_offset=0):
    """One (sequence, head): q (Sq, D), k (Sk, D), v (Sk, Dv), do (Sq, Dv) or None.
    Returns o, lse, (dq, dk, dv) (None without do)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    Sq, Sk = q.shape[0], k.shape[0]
    i = np.arange(Sq)[:, None]
    j = np.arange(Sk)[None, :]
    pos = i + (sk_b - sq_b if bottom_right else 0) + q_pos_offset
    vis = j < sk_b
    if causal:
        vis = vis & (j <= pos)
    if window[0] >= 0:
        vis = vis & (j >= pos - window[0])
    if window[1] >= 0:
        vis = vis & (j <= pos + window[1])
    if mbool is not None:
        vis = vis & mbool
    z = scale * (q @ k.T)
    t = None
    if softcap > 0:
        t = np.tanh(z / softcap)
        s = softcap * t
    else:
        s = z
    if slope is not None:
        s = s - slope * np.abs(pos - j)
    if madd is not None:
        s = s + madd
        vis = vis & np.isfinite(madd)
    s = np.where(vis, s, -np.inf)
    mx = np.max(s, axis=1, keepdims=True, initial=-np.inf)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    e = np.where(vis, np.exp(s - mx), 0.0)
    tot = e.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        lse = np.where(tot[:, 0] > 0, np.log(tot[:, 0]) + mx[:, 0], -np.inf)
    P = np.where(tot > 0, e / np.where(tot > 0, tot, 1), 0.0)
    Pd = P if keep is None else P * keep / (1.0 - p_drop)
    o = Pd @ v
    if do is None:
        return o, lse, None
    do = np.asarray(do, np.float64)
    dv = Pd.T @ do
    dPd = do @ v.T
    dP = dPd if keep is None else dPd * keep / (1.0 - p_drop)
    Di = np.sum(do * o, axis=1, keepdims=True)
    dS = P * (dP - Di)
    dz = dS * (1 - t * t) if t is not None else dS
    return o, lse, (scale * dz @ k, scale * dz.T @ q, dv)


def sdpa(q, k, v, do=None, *, causal=False, align="top_left", scale=None, key_lens=None,
         window=(-1, -1), alibi_slopes=None, softcap=0.0, mask=None, cu_seqlens_q=None,
         cu_seqlens_k=None, keep=None, dropout_p=0.0, q_pos_offset=0, **_):
    """(o, lse, grads) in float64 with attn's shapes; keep: (B, Hq, Sq, Sk) dropout keep mask."""
    varlen = cu_seqlens_q is not None
    if varlen:
        cq, ck = list(cu_seqlens_q), list(cu_seqlens_k)
        B = len(cq) - 1
        qs = [q[cq[b]:cq[b + 1]] for b in range(B)]
        ks = [k[ck[b]:ck[b + 1]] for b in range(B)]
        vs = [v[ck[b]:ck[b + 1]] for b in range(B)]
        dos = None if do is None else [do[cq[b]:cq[b + 1]] for b in range(B)]
    else:
        B = q.shape[0]
        qs, ks, vs = list(q), list(k), list(v)
        dos = None if do is None else list(do)
    Hq, D = qs[0].shape[1], qs[0].shape[2]
    Hkv = ks[0].shape[1]
    sc = 1.0 / np.sqrt(D) if not scale else scale
    mb = ma = None
    if mask is not None:
        m = np.asarray(mask)
        m = m.reshape((1,) * (4 - m.ndim) + m.shape)
        if m.dtype == np.bool_:
            mb = m
        else:
            ma = m.astype(np.float64)
    O, L, G = [], [], []
    for b in range(B):
        Sq, Sk = qs[b].shape[0], ks[b].shape[0]
        sk_b = key_lens[b] if key_lens is not None else Sk
        ob = np.zeros((Sq, Hq, vs[b].shape[2]))
        lb = np.zeros((Hq, Sq))
        gb = [np.zeros(qs[b].shape), np.zeros(ks[b].shape), np.zeros(vs[b].shape)]
        for h in range(Hq):
            g = h // (Hq // Hkv)
            kw = dict(sk_b=sk_b, sq_b=Sq, causal=causal, bottom_right=align == "bottom_right",
                      scale=sc, window=window,
                      slope=None if alibi_slopes is None else alibi_slopes[h], softcap=softcap,
                      mbool=None if mb is None else np.broadcast_to(mb, (B, Hq, Sq, Sk))[b, h],
                      madd=None if ma is None else np.broadcast_to(ma, (B, Hq, Sq, Sk))[b, h],
                      keep=None if keep is None else keep[b, h], p_drop=dropout_p,
                      q_pos_offset=q_pos_offset)
            o, lse, gr = head(qs[b][:, h], ks[b][:, g], vs[b][:, g],
                              None if dos is None else dos[b][:, h], **kw)
            ob[:, h] = o
            lb[h] = lse
            if gr is not None:
                gb[0][:, h] += gr[0]
                gb[1][:, g] += gr[1]
                gb[2][:, g] += gr[2]
        O.append(ob), L.append(lb), G.append(gb)
    if varlen:
        o = np.concatenate(O)
        lse = np.concatenate(L, axis=1)
        grads = None if do is None else tuple(np.concatenate([g[i] for g in G]) for i in range(3))
    else:
        o, lse = np.stack(O), np.stack(L)
        grads = None if do is None else tuple(np.stack([g[i] for g in G]) for i in range(3))
    return o, lse, grads


def rope_inv_freq(R, mx, *, theta=10000.0, scaling="none", factor=0.0, low_freq_factor=0.0,
                  high_freq_factor=0.0, original_max_pos=0, max_pos=0, attention_factor=0.0,
                  beta_fast=0.0, beta_slow=0.0, mscale=0.0, mscale_all_dim=0.0, truncate=True,
                  short_factor=None, long_factor=None, **_):
    """(inv_freq (R/2,), attention factor) for a call whose largest position is mx, from
    transformers' modeling_rope_utils formulas."""
    i2 = np.arange(0, R, 2, dtype=np.float64) / R
    base, L = theta, mx + 1.0
    if scaling == "dynamic":
        L = max(L, max_pos)
        base = theta * ((factor * L / max_pos) - (factor - 1)) ** (R / (R - 2))
    inv = 1.0 / base ** i2
    att = 1.0
    if scaling == "linear":
        inv = inv / factor
    elif scaling == "llama3":
        wl = 2 * np.pi / inv
        lo, hi = original_max_pos / low_freq_factor, original_max_pos / high_freq_factor
        ll = np.where(wl > lo, inv / factor, inv)
        sm = (original_max_pos / wl - low_freq_factor) / (high_freq_factor - low_freq_factor)
        med = ~(wl < hi) & ~(wl > lo)
        inv = np.where(med, (1 - sm) * ll / factor + sm * ll, ll)
    elif scaling == "yarn":
        def cdim(nrot):
            return R * np.log(original_max_pos / (nrot * 2 * np.pi)) / (2 * np.log(theta))
        lo, hi = cdim(beta_fast or 32.0), cdim(beta_slow or 1.0)
        if truncate:
            lo, hi = np.floor(lo), np.ceil(hi)
        lo, hi = max(lo, 0), min(hi, R - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(R // 2) - lo) / (hi - lo), 0, 1)
        pf = theta ** i2
        inv = 1 / (factor * pf) * ramp + 1 / pf * (1 - ramp)

        def ms(s, m=1.0):
            return 1.0 if s <= 1 else 0.1 * m * np.log(s) + 1.0
        att = attention_factor or (ms(factor, mscale) / ms(factor, mscale_all_dim)
                                   if mscale and mscale_all_dim else ms(factor))
    elif scaling == "longrope":
        ext = np.asarray(long_factor if L > original_max_pos else short_factor, np.float64)[:R // 2]
        inv = inv / ext
        att = attention_factor or (1.0 if factor <= 1 else
                                   np.sqrt(1 + np.log(factor) / np.log(original_max_pos)))
    return inv, att


def rope(x, positions=None, *, kind="neox", rope_dim=0, backward=False, **cfg):
    """float64 RoPE of x (B, S, H, D) (backward: the transpose map)."""
    x = np.asarray(x, np.float64)
    B, S, H, D = x.shape
    R = rope_dim or D
    p = np.arange(S) if positions is None else np.asarray(positions)
    p = np.broadcast_to(p, (B, S)).astype(np.float64)
    inv, att = rope_inv_freq(R, p.max(initial=0), **cfg)
    a = p[:, :, None, None] * inv  # (B, S, 1, R/2)
    c, s = att * np.cos(a), att * np.sin(a) * (-1 if backward else 1)
    y = x.copy()
    i1 = np.arange(0, R, 2) if kind == "gptj" else np.arange(R // 2)
    i2 = i1 + 1 if kind == "gptj" else i1 + R // 2
    x1, x2 = x[..., i1], x[..., i2]
    y[..., i1] = x1 * c - x2 * s
    y[..., i2] = x2 * c + x1 * s
    return y
