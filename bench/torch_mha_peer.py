#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""torch_mha_peer.py — PyTorch peer timings for `attn bench` (standalone).

Prints one JSON object per line on stdout, nothing else (progress goes to stderr):

  {"name": "torch.layer.fwd_bwd", "ms": 1234.5, "gflops": 67.8, "flops": ..., ...}
  {"name": "torch.sdpa.fwd", "model": "llama3-8b", "S": 2048, "causal": true, ...}

Common fields: name, ms (median of --repeat runs after --warmup runs), gflops
(flops / time), flops, threads, torch (version), plus the shape fields below.

--only layer   nn.MultiheadAttention(E=1024, 16 heads, batch_first, fp32) forward +
               backward (loss = sum(y * dy)), B=4, S=2048, self-attention, no mask.
               Names: torch.layer.fwd, torch.layer.fwd_bwd (one timed step each).
               flops: fwd = 8·B·S·E² (4 projections) + 4·B·S²·E (QKᵀ and PV);
               fwd_bwd = 3 · fwd (backward = 2 · forward, no recompute counted).
--only sdpa    F.scaled_dot_product_attention forward and backward, B=1, S in --seqs,
               causal and not, fp32, (B, H, S, D) contiguous:
                 llama3-8b: Hq 32, Hkv 8, D 128;   gpt2: Hq = Hkv = 12, D 64.
               Names: torch.sdpa.fwd, torch.sdpa.bwd (backward alone: the forward of
               each repetition is not timed).
               flops (FlashAttention convention): fwd = 4·B·Hq·S²·D, halved when
               causal; bwd = 2.5 · fwd.
               GQA: --gqa expand (default) repeats K/V to Hq heads before timing (the
               fastest CPU path in torch 2.x; the repeat is not timed); --gqa native
               passes enable_gqa=True.

Example: python3 bench/torch_mha_peer.py --threads 2 --repeat 5 --only sdpa --seqs 512,1024
Exit status 2 if torch is not importable (the caller then shows no peer column).
"""
import argparse
import json
import math
import statistics
import sys
import time


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def timed(fn, warmup, repeat, setup=None):
    """Median wall time in ms of fn() over `repeat` runs after `warmup` runs.
    setup() (untimed) runs before each call and its result is passed to fn."""
    ts = []
    for i in range(warmup + repeat):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg)
        t1 = time.perf_counter()
        if i >= warmup:
            ts.append((t1 - t0) * 1e3)
    return statistics.median(ts), ts


def emit(rec):
    print(json.dumps(rec), flush=True)


def bench_layer(torch, args):
    E, H, B, S = args.embed_dim, args.heads, args.batch, args.seq
    g = torch.Generator().manual_seed(0)
    mha = torch.nn.MultiheadAttention(E, H, bias=True, batch_first=True)
    mha.train()  # dropout 0: train mode only keeps activations for backward
    x = torch.randn(B, S, E, generator=g).requires_grad_()
    dy = torch.randn(B, S, E, generator=g)
    fwd_flops = 8 * B * S * E * E + 4 * B * S * S * E
    base = {"B": B, "S": S, "E": E, "heads": H, "threads": args.threads,
            "torch": torch.__version__}

    def fwd(_):
        with torch.no_grad():
            mha(x, x, x, need_weights=False)

    def fwd_bwd(_):
        mha.zero_grad(set_to_none=True)
        x.grad = None
        y, _ = mha(x, x, x, need_weights=False)
        y.backward(dy)

    for name, fn, fl in (("torch.layer.fwd", fwd, fwd_flops),
                         ("torch.layer.fwd_bwd", fwd_bwd, 3 * fwd_flops)):
        log("%s B=%d S=%d E=%d H=%d ..." % (name, B, S, E, H))
        ms, runs = timed(fn, args.warmup, args.repeat)
        emit(dict(name=name, ms=round(ms, 3), gflops=round(fl / ms / 1e6, 2), flops=fl,
                  runs_ms=[round(t, 3) for t in runs], **base))


MODELS = {"llama3-8b": (32, 8, 128), "gpt2": (12, 12, 64)}


def bench_sdpa(torch, args):
    F = torch.nn.functional
    for model in args.models.split(","):
        Hq, Hkv, D = MODELS[model]
        for S in [int(s) for s in args.seqs.split(",")]:
            for causal in (False, True):
                g = torch.Generator().manual_seed(S)
                B = 1
                q = torch.randn(B, Hq, S, D, generator=g)
                k = torch.randn(B, Hkv, S, D, generator=g)
                v = torch.randn(B, Hkv, S, D, generator=g)
                do = torch.randn(B, Hq, S, D, generator=g)
                kw = {"is_causal": causal}
                if Hkv != Hq:
                    if args.gqa == "expand":
                        k = k.repeat_interleave(Hq // Hkv, dim=1).contiguous()
                        v = v.repeat_interleave(Hq // Hkv, dim=1).contiguous()
                    else:
                        kw["enable_gqa"] = True
                fl = 4 * B * Hq * S * S * D // (2 if causal else 1)
                base = {"model": model, "B": B, "S": S, "Hq": Hq, "Hkv": Hkv, "D": D,
                        "causal": causal, "gqa": args.gqa if Hkv != Hq else "none",
                        "threads": args.threads, "torch": torch.__version__}

                def fwd(_):
                    with torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, **kw)

                ql, kl, vl = (t.clone().requires_grad_() for t in (q, k, v))

                def setup():
                    for t in (ql, kl, vl):
                        t.grad = None
                    return F.scaled_dot_product_attention(ql, kl, vl, **kw)

                def bwd(o):
                    o.backward(do)

                log("torch.sdpa %s S=%d causal=%d ..." % (model, S, causal))
                ms, runs = timed(fwd, args.warmup, args.repeat)
                emit(dict(name="torch.sdpa.fwd", ms=round(ms, 3),
                          gflops=round(fl / ms / 1e6, 2), flops=fl,
                          runs_ms=[round(t, 3) for t in runs], **base))
                ms, runs = timed(bwd, args.warmup, args.repeat, setup=setup)
                emit(dict(name="torch.sdpa.bwd", ms=round(ms, 3),
                          gflops=round(2.5 * fl / ms / 1e6, 2), flops=int(2.5 * fl),
                          runs_ms=[round(t, 3) for t in runs], **base))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs, median reported (5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (1)")
    ap.add_argument("--only", choices=("layer", "sdpa"), help="run one group only")
    ap.add_argument("--seqs", default="512,1024,2048,4096", help="sdpa sequence lengths")
    ap.add_argument("--models", default="llama3-8b,gpt2", help="sdpa shapes: llama3-8b,gpt2")
    ap.add_argument("--gqa", choices=("expand", "native"), default="expand")
    ap.add_argument("--embed-dim", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=2048, help="layer sequence length")
    args = ap.parse_args()
    for m in args.models.split(","):
        if m not in MODELS:
            ap.error("unknown model %r (choose from %s)" % (m, ",".join(MODELS)))
    try:
        import torch
    except ImportError as e:
        log("torch_mha_peer: torch not importable: %s" % e)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.only in (None, "layer"):
        bench_layer(torch, args)
    if args.only in (None, "sdpa"):
        bench_sdpa(torch, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
