#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fake_sdpa_peer.py — a stand-in for bench/sdpa_peer.py in the tests (numpy only, float64 math):
the same command line, files and JSON lines, so `attn bench`'s peer plumbing is tested without
PyTorch or ONNX Runtime. The "torch" peer does every variant; the "ort" one forwards only, like
ONNX Runtime. FAKE_PEER_MODE: "wrong" perturbs every output (attn must flag it), "absent" exits 2
(the peer's package is not importable), "garbage" prints lines that are not JSON and exits 1."""
import argparse
import json
import os
import sys

mode = os.environ.get("FAKE_PEER_MODE", "")
if mode == "absent":
    sys.exit(2)
if mode == "garbage":
    print("{not json")
    print('{"variant": "fwd", "ms": "fast"}')
    sys.exit(1)
import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--peer", required=True)
ap.add_argument("--dir", required=True)
ap.add_argument("--variants", required=True)
ap.add_argument("--kv-head-major", action="store_true")
ap.add_argument("--dtype", default="f32")
ap.add_argument("--threads", type=int)
ap.add_argument("--runs", type=int)
ap.add_argument("--min-time", type=float)
ap.add_argument("--max-time", type=float)
a = ap.parse_args()
ld = lambda n: np.load(os.path.join(a.dir, n + ".npy")).astype(np.float64)
q, k, v = ld("q"), ld("k"), ld("v")
if a.kv_head_major:
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
B, Sq, Hq, D = q.shape
Sk, Hkv = k.shape[1], k.shape[2]
g = Hq // Hkv
kk, vv = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)


def save(var, name, x):
    p = os.path.join(a.dir, "%s.%s.%s.npy" % (a.peer, var, name))
    np.save(p + ".tmp.npy", (x * (1.01 if mode == "wrong" else 1.0)).astype(np.float32))
    os.replace(p + ".tmp.npy", p)


for var in a.variants.split(","):
    if a.peer == "ort" and var.startswith("bwd"):
        print(json.dumps({"peer": a.peer, "variant": var, "skip": "fake: forward only"}))
        continue
    s = np.einsum("bihd,bjhd->bhij", q, kk) / np.sqrt(D)
    if "causal" in var or var.startswith("decode"):  # bottom-right
        i, j = np.arange(Sq)[:, None], np.arange(Sk)[None, :]
        s = np.where(j <= i + Sk - Sq, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bhij,bjhd->bihd", p, vv)
    if var.startswith("bwd"):
        do = ld("do")
        dv = np.einsum("bhij,bihd->bjhd", p, do)
        dp = np.einsum("bihd,bjhd->bhij", do, vv)
        ds = p * (dp - (p * dp).sum(-1, keepdims=True)) / np.sqrt(D)
        dq = np.einsum("bhij,bjhd->bihd", ds, kk)
        dk = np.einsum("bhij,bihd->bjhd", ds, q)
        fold = lambda x: x.reshape(B, Sk, Hkv, g, D).sum(3)
        kv = (lambda x: x.transpose(0, 2, 1, 3)) if a.kv_head_major else (lambda x: x)
        save(var, "dq", dq)
        save(var, "dk", kv(fold(dk)))
        save(var, "dv", kv(fold(dv)))
    else:
        save(var, "o", o)
    print(json.dumps({"peer": a.peer, "variant": var, "ms": 2.5, "best_ms": 2.0, "runs": 3, "cpu_share": 0.5,
                      "op": "fake %s" % a.peer, "version": "0-fake"}))
