#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""sdpa_peer.py — PyTorch / ONNX Runtime peers of the sdpa rows of `attn bench`.

attn bench writes one problem's inputs into DIR (with the library's attn_npy_write,
temp file + rename) and runs this script once per peer:

  DIR/q.npy   (B, Sq, Hq, D)     DIR/do.npy (B, Sq, Hq, D)   (only when a bwd variant runs)
  DIR/k.npy   (B, Sk, Hkv, D), or (B, Hkv, Sk, D) with --kv-head-major;  DIR/v.npy likewise

  python3 bench/sdpa_peer.py --peer torch|ort --dir DIR --variants fwd,bwd,fwd-causal,bwd-causal
          [--threads 2] [--runs 3] [--min-time 0.3] [--max-time 60]

For each variant it runs the op once (untimed: warm-up, and its output is written to
DIR/<peer>.<variant>.<o|dq|dk|dv>.npy, temp + rename, in attn's layout so attn can
compare), then times it the way attn times itself (bench_util.c bu_time): repeat until
>= --runs runs AND >= --min-time seconds of timed runs, or --max-time is passed after one
run; the median is reported. One JSON object per line on stdout, nothing else:

  {"peer": "torch", "variant": "fwd", "ms": 12.3, "best_ms": 12.1, "runs": 5,
   "cpu_share": 0.98, "op": "...", "version": "2.15.0"}
  {"peer": "ort", "variant": "bwd", "skip": "ONNX Runtime has no backward of these ops"}

What each peer times (the same work as attn's row):
  torch fwd   F.scaled_dot_product_attention(q, k, v, is_causal=c, enable_gqa=Hq != Hkv) under
              no_grad, tensors (B, H, S, D) contiguous (the layout change is untimed).
  torch bwd   o.backward(do) alone: as attn's bwd row times attn_sdpa_bwd alone, the forward
              that builds the graph runs before each timed call, untimed.
  ort fwd     com.microsoft MultiHeadAttention (MLAS flash) when the row has no mask and no
              GQA; GroupQueryAttention otherwise (it is causal by construction). A GQA row
              without a mask (llama3-8b fwd) has no ORT op: MultiHeadAttention runs on K/V
              repeated to Hq heads (the repeat is untimed) and "op" says so.
  decode      Sq = 1 bottom-right = no mask. torch: SDPA without is_causal (torch's causal is
              top-left). ort: MultiHeadAttention (no GQA), or GroupQueryAttention with the first
              Sk - 1 keys as past_key / past_value (B, Hkv, Sk-1, D) and the last one as the
              new token (the copy into present_key is part of the op, as in ORT's decoder).
  ort bwd     not available (inference ops): reported as skipped.
Threads: torch.set_num_threads(n); ORT intra_op_num_threads = n, inter_op 1, sequential.
Exit status 2 if the peer's package is not importable.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def emit(rec):
    print(json.dumps(rec), flush=True)


def save(path, arr):
    """np.save to a temporary name, then rename (never a half-written file)."""
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(arr, dtype=np.float32))
    os.replace(tmp, path)


def timed(fn, args, setup=None):
    """Runs like attn's bu_time: >= runs and >= min_time, stop past max_time after one run."""
    ts, cpu, wall = [], 0.0, 0.0
    while True:
        arg = setup() if setup else None
        c0, t0 = time.process_time(), time.perf_counter()
        fn(arg)
        t1, c1 = time.perf_counter(), time.process_time()
        ts.append(t1 - t0)
        cpu += c1 - c0
        wall += t1 - t0
        if len(ts) >= args.runs and wall >= args.min_time:
            break
        if wall >= args.max_time:
            break
    return dict(ms=round(statistics.median(ts) * 1e3, 4), best_ms=round(min(ts) * 1e3, 4), runs=len(ts),
                cpu_share=round(cpu / (wall * args.threads), 3) if wall > 0 else 0.0)


def load_inputs(args):
    d = args.dir
    q = np.load(os.path.join(d, "q.npy"))
    k = np.load(os.path.join(d, "k.npy"))
    v = np.load(os.path.join(d, "v.npy"))
    do_path = os.path.join(d, "do.npy")
    do = np.load(do_path) if os.path.exists(do_path) else None
    if args.kv_head_major:  # (B, Hkv, Sk, D) -> (B, Sk, Hkv, D): the peers' own layout is built below
        k, v = k.transpose(0, 2, 1, 3).copy(), v.transpose(0, 2, 1, 3).copy()
    return q, k, v, do


def out_path(args, variant, name):
    return os.path.join(args.dir, "%s.%s.%s.npy" % (args.peer, variant, name))


def kv_out(args, x):
    """dk/dv back in the layout attn used."""
    return x.transpose(0, 2, 1, 3) if args.kv_head_major else x


# ─── PyTorch ──────────────────────────────────────────────────────────────────
def run_torch(args, variants):
    try:
        import torch
    except ImportError as e:
        log("sdpa_peer: torch not importable: %s" % e)
        return 2
    torch.set_num_threads(args.threads)
    F = torch.nn.functional
    q, k, v, do = load_inputs(args)
    Hq, Hkv = q.shape[2], k.shape[2]
    tdt = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    bhsd = lambda a: torch.from_numpy(a).transpose(1, 2).contiguous().to(tdt)
    tq, tk, tv = bhsd(q), bhsd(k), bhsd(v)
    for var in variants:
        causal = "causal" in var
        kw = {"is_causal": causal}
        op = "F.scaled_dot_product_attention(is_causal=%s" % causal
        if Hq != Hkv:
            kw["enable_gqa"] = True
            op += ", enable_gqa=True"
        op += ")"
        base = dict(peer="torch", variant=var, op=op, version=torch.__version__, dtype=args.dtype)
        if var.startswith("bwd"):
            tdo = bhsd(do)
            ql, kl, vl = (t.clone().requires_grad_() for t in (tq, tk, tv))

            def setup():
                for t in (ql, kl, vl):
                    t.grad = None
                return F.scaled_dot_product_attention(ql, kl, vl, **kw)

            def bwd(o):
                o.backward(tdo)

            bwd(setup())
            back = lambda t: t.grad.transpose(1, 2).float().numpy()
            save(out_path(args, var, "dq"), back(ql))
            save(out_path(args, var, "dk"), kv_out(args, back(kl)))
            save(out_path(args, var, "dv"), kv_out(args, back(vl)))
            emit(dict(base, **timed(bwd, args, setup)))
        else:
            def fwd(_):
                with torch.no_grad():
                    return F.scaled_dot_product_attention(tq, tk, tv, **kw)

            save(out_path(args, var, "o"), fwd(None).transpose(1, 2).float().numpy())
            emit(dict(base, **timed(fwd, args)))
    return 0


# ─── ONNX Runtime ─────────────────────────────────────────────────────────────
def ort_session(ort, onnx, op, attrs, inputs, outputs, threads):
    from onnx import TensorProto, helper
    ints = ("seqlens_k", "total_sequence_length")
    vi = [helper.make_tensor_value_info(n, TensorProto.INT32 if n in ints else TensorProto.FLOAT, None)
          for n in inputs if n]
    node = helper.make_node(op, inputs, outputs, domain="com.microsoft", **attrs)
    graph = helper.make_graph([node], "sdpa_peer", vi,
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_problem(ort, onnx, args, var, q, k, v):
    """(session, feeds, op description) for one forward variant."""
    B, Sq, Hq, D = q.shape
    Sk, Hkv = k.shape[1], k.shape[2]
    flat = lambda a: np.ascontiguousarray(a.reshape(a.shape[0], a.shape[1], -1))
    decode = var.startswith("decode")
    causal = "causal" in var
    if decode and Hq != Hkv:
        # the decoder's way: past (B, Hkv, Sk-1, D) + one new token
        pk = np.ascontiguousarray(k[:, :-1].transpose(0, 2, 1, 3))
        pv = np.ascontiguousarray(v[:, :-1].transpose(0, 2, 1, 3))
        s = ort_session(ort, onnx, "GroupQueryAttention", dict(num_heads=Hq, kv_num_heads=Hkv),
                        ["q", "k", "v", "past_key", "past_value", "seqlens_k", "total_sequence_length"],
                        ["o", "present_key", "present_value"], args.threads)
        feeds = {"q": flat(q), "k": flat(k[:, -1:]), "v": flat(v[:, -1:]), "past_key": pk, "past_value": pv,
                 "seqlens_k": np.full((B,), Sk - 1, np.int32), "total_sequence_length": np.array(Sk, np.int32)}
        return s, feeds, "GroupQueryAttention (past_key/value = first Sk-1 keys, 1 new token)"
    if causal:
        if Sq != Sk:
            return None, None, "causal with Sq != Sk"
        s = ort_session(ort, onnx, "GroupQueryAttention", dict(num_heads=Hq, kv_num_heads=Hkv),
                        ["q", "k", "v", "", "", "seqlens_k", "total_sequence_length"], ["o"], args.threads)
        feeds = {"q": flat(q), "k": flat(k), "v": flat(v), "seqlens_k": np.full((B,), Sk - 1, np.int32),
                 "total_sequence_length": np.array(Sk, np.int32)}
        return s, feeds, "GroupQueryAttention (causal by construction)"
    op = "MultiHeadAttention"
    if Hq != Hkv:  # no ORT op does GQA without a causal mask
        k, v = np.repeat(k, Hq // Hkv, axis=2), np.repeat(v, Hq // Hkv, axis=2)
        op += " (K/V repeated to Hq heads, untimed: GroupQueryAttention is causal only)"
    s = ort_session(ort, onnx, "MultiHeadAttention", dict(num_heads=Hq), ["q", "k", "v"], ["o"], args.threads)
    return s, {"q": flat(q), "k": flat(k), "v": flat(v)}, op


def run_ort(args, variants):
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        log("sdpa_peer: onnxruntime/onnx not importable: %s" % e)
        return 2
    q, k, v, _ = load_inputs(args)
    for var in variants:
        if args.dtype != "f32":
            emit(dict(peer="ort", variant=var, skip="fp32 only (the com.microsoft CPU attention ops)"))
            continue
        if var.startswith("bwd"):
            emit(dict(peer="ort", variant=var, skip="ONNX Runtime has no backward of these ops"))
            continue
        try:
            sess, feeds, op = ort_problem(ort, onnx, args, var, q, k, v)
        except Exception as e:  # an op this ORT build does not have: the row shows n/a
            emit(dict(peer="ort", variant=var, skip="session: %s" % str(e).splitlines()[0][:200]))
            continue
        if sess is None:
            emit(dict(peer="ort", variant=var, skip=op))
            continue
        fwd = lambda _: sess.run(["o"], feeds)[0]
        save(out_path(args, var, "o"), fwd(None).reshape(q.shape))
        emit(dict(dict(peer="ort", variant=var, op=op, version=ort.__version__), **timed(fwd, args)))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", choices=("torch", "ort"), required=True)
    ap.add_argument("--dir", required=True, help="directory with q.npy, k.npy, v.npy (and do.npy)")
    ap.add_argument("--variants", required=True, help="comma-separated: fwd,bwd,fwd-causal,bwd-causal,decode,decode-hm")
    ap.add_argument("--kv-head-major", action="store_true", help="k.npy, v.npy are (B, Hkv, Sk, D)")
    ap.add_argument("--dtype", choices=("f32", "bf16", "f16"), default="f32",
                    help="element type the peer computes in (the inputs are already rounded to it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--max-time", type=float, default=60.0)
    args = ap.parse_args()
    variants = args.variants.split(",")
    for var in variants:
        if var not in ("fwd", "bwd", "fwd-causal", "bwd-causal", "decode", "decode-hm"):
            ap.error("unknown variant %r" % var)
    return (run_torch if args.peer == "torch" else run_ort)(args, variants)


if __name__ == "__main__":
    sys.exit(main())
