# SPDX-License-Identifier: MIT
"""attn.torch.scaled_dot_product_attention vs torch's own, in one process, N threads (both
libraries set to the same count), per dtype (fp32 / bf16 / f16: both given tensors of that
dtype), and the Python overhead of a decode (Sq = 1) call.

    python3 python/bench/sdpa_vs_torch.py [--threads 2] [--reps 5] [--quick] [--dtype f32,bf16]
                                          [--models llama3-8b,gpt2] [--seqs 1024,2048] [--no-overhead]

Calls alternate between the two implementations; each figure is the median of --reps.
Prints one line per (dtype, model, S, causal, pass): ms for torch, ms for attn, and
torch / attn; with several dtypes, also attn's time in fp32 / its time in each other dtype."""
import argparse
import ctypes
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import attn
import attn.torch as at
from attn import _core, _lib

SHAPES = {"llama3-8b": (32, 8, 128), "gpt2": (12, 12, 64)}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def pair(fa, fb, reps):
    fa(), fb()  # warm up (workspace, first touch)
    ta, tb = [], []
    for _ in range(reps):
        ta.append(timed(fa))
        tb.append(timed(fb))
    return statistics.median(ta), statistics.median(tb)


def bench_shapes(reps, seqs, dtypes=("f32",), models=tuple(SHAPES)):
    """{(dtype, model, S, causal, pass): (torch s, attn s)}, printed row by row."""
    print("%-5s %-10s %5s %-6s %-8s %10s %10s %8s" % ("dtype", "model", "S", "causal", "pass", "torch ms",
                                                     "attn ms", "ratio"))
    res = {}
    for model in models:
        Hq, Hkv, D = SHAPES[model]
        for S in seqs:
            for causal in (False, True):
                for dtn in dtypes:
                    res.update(bench_row(reps, dtn, model, Hq, Hkv, D, S, causal))
    return res


def bench_row(reps, dtn, model, Hq, Hkv, D, S, causal):
    dt = DTYPES[dtn]

    def leaf(*shape):  # rounded to dt from N(0, 1), a leaf of dtype dt
        return torch.randn(*shape).to(dt).requires_grad_(True)

    q, k, v = leaf(1, Hq, S, D), leaf(1, Hkv, S, D), leaf(1, Hkv, S, D)
    gqa = Hq != Hkv
    do = torch.randn(1, Hq, S, D).to(dt)
    out = {}

    def fwd(f):
        def run():
            with torch.no_grad():
                f(q, k, v, is_causal=causal, enable_gqa=gqa)
        return run

    def fwdbwd(f):
        def run():
            o = f(q, k, v, is_causal=causal, enable_gqa=gqa)
            torch.autograd.grad(o, (q, k, v), do)
        return run

    for name, mk in (("fwd", fwd), ("fwd+bwd", fwdbwd)):
        tt, ta = pair(mk(F.scaled_dot_product_attention), mk(at.scaled_dot_product_attention), reps)
        print("%-5s %-10s %5d %-6s %-8s %10.1f %10.1f %8.2f" % (dtn, model, S, causal, name, tt * 1e3,
                                                             ta * 1e3, tt / ta), flush=True)
        out[(dtn, model, S, causal, name)] = (tt, ta)
    return out


def print_dtype_ratios(res, dtypes):
    """attn fp32 ms / attn <dtype> ms per row (and torch's), from the same run."""
    others = [d for d in dtypes if d != "f32"]
    if "f32" not in dtypes or not others:
        return
    print("same run, fp32 time / reduced-precision time (> 1: the reduced dtype is faster):")
    print("%-5s %-10s %5s %-6s %-8s %12s %12s" % ("dtype", "model", "S", "causal", "pass", "attn f32/x",
                                                 "torch f32/x"))
    for (dtn, model, S, causal, name), (tt, ta) in res.items():
        if dtn == "f32":
            continue
        t32, a32 = res[("f32", model, S, causal, name)]
        print("%-5s %-10s %5d %-6s %-8s %12.2f %12.2f" % (dtn, model, S, causal, name, a32 / ta, t32 / tt))


def bench_overhead(n=20000, Sk=16):
    """Per-call time of a decode step (Sq = 1, Llama-3-8B heads, Sk keys) through attn.sdpa and
    attn.torch, against the bare library call with every argument prebuilt."""
    Hq, Hkv, D = SHAPES["llama3-8b"]
    q = np.random.randn(1, 1, Hq, D).astype(np.float32)
    k = np.random.randn(1, Sk, Hkv, D).astype(np.float32)
    v = np.random.randn(1, Sk, Hkv, D).astype(np.float32)
    o = np.empty_like(q)
    dims = _core.dims(1, 1, Sk, Hq, Hkv, D, D)
    opts = _lib.sdpa_opts()
    opts.align = 1
    views = [_core.view(a.ctypes.data, *(s // 4 for s in a.strides[:3])) for a in (q, k, v, o)]
    ws = _lib.lib.attn_sdpa_fwd_workspace_size(ctypes.byref(dims), ctypes.byref(opts))
    wbuf = np.empty(ws + 64, np.uint8)
    wp = wbuf.ctypes.data + (-wbuf.ctypes.data) % 64
    f = _lib.lib.attn_sdpa_fwd
    pd, po = ctypes.byref(dims), ctypes.byref(opts)

    def bare():
        f(pd, views[0], views[1], views[2], views[3], None, po, wp, ws)

    def numpy_api():
        attn.sdpa(q, k, v, causal=True, align="bottom_right", return_lse=False, out=o)

    tq, tk, tv = (torch.from_numpy(a).transpose(1, 2) for a in (q, k, v))

    def torch_api():
        at.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True)

    def torch_own():
        F.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True)

    fns = (("bare C call (ctypes, prebuilt args)", bare), ("attn.sdpa (NumPy)", numpy_api),
           ("attn.torch.scaled_dot_product_attention", torch_api),
           ("torch F.scaled_dot_product_attention", torch_own))
    res = {name: [] for name, _ in fns}
    m = n // 10
    with torch.no_grad():
        for name, fn in fns:
            fn()
        for _ in range(10):  # interleaved rounds; the minimum filters the other tenants' noise
            for name, fn in fns:
                t = time.perf_counter()
                for _ in range(m):
                    fn()
                res[name].append((time.perf_counter() - t) / m)
    base = min(res["bare C call (ctypes, prebuilt args)"])
    print("decode step Sq=1, Sk=%d, Hq %d, Hkv %d, D %d (min over 10 interleaved rounds of %d calls):"
          % (Sk, Hq, Hkv, D, m))
    for name, ts in res.items():
        t = min(ts)
        print("  %-42s %7.2f us/call   overhead over the bare call %6.2f us" % (name, t * 1e6, (t - base) * 1e6))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="S 256 only, 2 reps")
    ap.add_argument("--overhead-only", action="store_true")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--dtype", default="f32", help="comma list of f32, bf16, f16")
    ap.add_argument("--models", default=",".join(SHAPES), help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--seqs", default="1024,2048")
    a = ap.parse_args()
    dtypes = a.dtype.split(",")
    models = a.models.split(",")
    for d in dtypes:
        if d not in DTYPES:
            ap.error("--dtype: %r is not one of %s" % (d, ", ".join(DTYPES)))
    for m in models:
        if m not in SHAPES:
            ap.error("--models: %r is not one of %s" % (m, ", ".join(SHAPES)))
    torch.set_num_threads(a.threads)
    attn.set_num_threads(a.threads)
    print("torch %s, attn %s (%s), %d threads each" % (torch.__version__, attn.version(),
                                                      _lib.lib.attn_isa_name(_lib.lib.attn_isa_active()).decode(),
                                                      a.threads))
    if not a.no_overhead:
        bench_overhead()
    if not a.overhead_only:
        seqs = [256] if a.quick else [int(x) for x in a.seqs.split(",")]
        res = bench_shapes(2 if a.quick else a.reps, seqs, dtypes, models)
        print_dtype_ratios(res, dtypes)


if __name__ == "__main__":
    main()
