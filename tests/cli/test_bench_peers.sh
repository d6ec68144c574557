#!/bin/sh
# SPDX-License-Identifier: MIT
# test_bench_peers.sh — the PyTorch / ONNX Runtime peer plumbing of `attn bench`, without either:
# ATTN_BENCH_SDPA_PEER points at tests/cli/fake_sdpa_peer.py (numpy, float64), which reads the
# inputs attn wrote, writes its outputs and timings back; attn must accept them (max rel err
# <= 1e-3), report torch_ms / torch_gflops / torch_speedup (and ort_*) in --json, null + a note
# where the peer has no result (ORT backward, peer absent, garbage output, --no-torch/--no-ort),
# and fail the run when the peer's output differs from attn's. Then the real bench/sdpa_peer.py,
# when torch / onnxruntime import. Needs python3 + numpy (else SKIP, except the absent-peer case).
# usage: sh tests/cli/test_bench_peers.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
nfail=0
fail() { echo "FAIL $*"; nfail=$((nfail + 1)); }
ok() { echo "ok   $*"; }
SMALL="--models gpt2 --seqs 64 --runs 1 --min-time 0 --no-layer --no-paged"
FAKE=$PWD/tests/cli/fake_sdpa_peer.py

# 1. peer not importable (exit status 2): every torch/ort field null, text says n/a, bench succeeds
if FAKE_PEER_MODE=absent ATTN_BENCH_SDPA_PEER="$FAKE" TMPDIR="$T" "$ATTN" bench $SMALL --no-decode --json "$T/a.json" >"$T/a.out" 2>&1 &&
    grep -q '"torch_ms": null, "torch_gflops": null, "torch_speedup": null' "$T/a.json" &&
    grep -q '"ort_ms": null' "$T/a.json" && grep -q 'not importable' "$T/a.json" && grep -q ' n/a ' "$T/a.out" &&
    [ "$(ls "$T" | grep -c attn-peer)" = 0 ]; then
    ok "absent peer: null fields, n/a, temporary directories removed"
else fail "absent peer"; sed 's/^/    | /' "$T/a.out"; fi

if ! python3 -c 'import numpy' >/dev/null 2>&1; then
    echo "SKIP the numeric part of test_bench_peers: python3 with numpy not available"
    [ "$nfail" -eq 0 ]; exit
fi
check() { # check JSON PYTHON-EXPR: the expression over d (the document) and rows must hold
    python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); rows = d["rows"]
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
PY
}

# 2. the fake peer: outputs agree, fields filled; ORT backward null with a note
if ATTN_BENCH_SDPA_PEER="$FAKE" "$ATTN" bench $SMALL --json "$T/f.json" >"$T/f.out" 2>&1 &&
    check "$T/f.json" 'len(rows) == 6 and all(r["torch_valid"] and r["torch_max_err"] < 1e-5 and r["torch_ms"] == 2.5
        and abs(r["torch_gflops"] - r["flops"] / 2.5e6) < 0.01 and abs(r["torch_speedup"] - 2.5 / r["attn"]["median_ms"]) < 1e-2
        for r in rows)
        and all((r["ort_ms"] is None and "forward only" in r["ort_note"]) if r["variant"].startswith("bwd")
                else (r["ort_valid"] and r["ort_ms"] == 2.5) for r in rows)
        and d["peak_samples"] >= 2 and 0 <= d["peak_spread"] < 1 and d["peak_gflops"] >= d["peak_worst_gflops"] > 0'; then
    ok "fake peer: 6 rows (GQA-free gpt2, decode and decode-hm too), fields and errors as expected"
else fail "fake peer"; sed 's/^/    | /' "$T/f.out"; fi

# 3. a peer whose output is wrong by 1%: the bench fails and says so
if FAKE_PEER_MODE=wrong ATTN_BENCH_SDPA_PEER="$FAKE" "$ATTN" bench $SMALL --no-decode --json "$T/w.json" >"$T/w.out" 2>&1; then
    fail "wrong peer output accepted"
elif check "$T/w.json" 'all(not r["torch_valid"] and r["torch_max_err"] > 1e-3 for r in rows)' && grep -q 'x!' "$T/w.out"; then
    ok "wrong peer output: flagged '!', torch_valid false, exit status 1"
else fail "wrong peer output"; sed 's/^/    | /' "$T/w.out"; fi

# 4. garbage on the peer's stdout: n/a with the exit status, no crash
if FAKE_PEER_MODE=garbage ATTN_BENCH_SDPA_PEER="$FAKE" "$ATTN" bench $SMALL --no-decode --json "$T/g.json" >"$T/g.out" 2>&1 &&
    check "$T/g.json" 'all(r["torch_ms"] is None and "exit status 1" in r["torch_note"] for r in rows)'; then
    ok "garbage peer output: n/a (exit status 1)"
else fail "garbage peer output"; sed 's/^/    | /' "$T/g.out"; fi

# 5. --no-torch --no-ort, and --quick's default: the peers do not run
if ATTN_BENCH_SDPA_PEER="$FAKE" "$ATTN" bench $SMALL --no-decode --no-torch --no-ort --json "$T/n.json" >"$T/n.out" 2>&1 &&
    check "$T/n.json" 'all(r["torch_ms"] is None and "--no-torch" in r["torch_note"] and "--no-ort" in r["ort_note"] for r in rows)'; then
    ok "--no-torch --no-ort: skipped"
else fail "--no-torch --no-ort"; sed 's/^/    | /' "$T/n.out"; fi

# 6. the real peers, when they import: their outputs must agree with attn's
if python3 -c 'import torch' >/dev/null 2>&1 || python3 -c 'import onnxruntime, onnx' >/dev/null 2>&1; then
    if "$ATTN" bench --models llama3-8b --seqs 64 --runs 1 --min-time 0 --no-layer --no-decode --no-paged --json "$T/r.json" >"$T/r.out" 2>&1 &&
        check "$T/r.json" 'all((r["torch_ms"] is None or r["torch_valid"]) and (r["ort_ms"] is None or r["ort_valid"]) for r in rows)
            and any(r["torch_ms"] is not None or r["ort_ms"] is not None for r in rows)'; then
        ok "real peers (llama3-8b GQA shape, S 64): outputs agree with attn's"
    else fail "real peers"; sed 's/^/    | /' "$T/r.out"; fi
else
    echo "SKIP real peers: neither torch nor onnxruntime imports"
fi
echo "test_bench_peers: $nfail failed"
[ "$nfail" -eq 0 ]
