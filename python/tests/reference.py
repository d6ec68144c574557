# SPDX-License-Identifier: MIT
"""Independent float64 NumPy reference of attn.h's attention (position model, every option)
and of its backward, written from the formulas in attn.h (no code shared with the library)."""
import numpy as np


def head(q, k, v, do, *, sk_b, sq_b, causal, bottom_right, scale, window, slope, softcap,
         mbool, madd, keep=None, p_drop=0.0):
    """One (sequence, head): q (Sq, D), k (Sk, D), v (Sk, Dv), do (Sq, Dv) or None.
    Returns o, lse, (dq, dk, dv) (None without do)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    Sq, Sk = q.shape[0], k.shape[0]
    i = np.arange(Sq)[:, None]
    j = np.arange(Sk)[None, :]
    pos = i + (sk_b - sq_b if bottom_right else 0)
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
         cu_seqlens_k=None, keep=None, dropout_p=0.0, **_):
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
                      keep=None if keep is None else keep[b, h], p_drop=dropout_p)
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
