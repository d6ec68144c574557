#!/bin/sh
# SPDX-License-Identifier: MIT
# test_bench_paged.sh — `attn bench --paged`: the decode-paged rows (batched
# decode through a paged KV cache next to the contiguous head-major cache),
# tiny shapes so it runs in about a second:
#   - every row runs and validates (paged output = contiguous output);
#   - --json holds one object per row with "variant": "decode-paged",
#     "batch", "gbps", "pct_bw" and the streaming-read probe, for each
#     --kv-dtype (f32 and int8 here), and its "decode-kvcache" twin (the
#     contiguous cache); every row carries "kv_dtype"; "bw_probe_gbps" at top;
#   - int8 rows read fewer bytes than f32 ones (kv_bytes: 1 byte per element + scales);
#   - bad options fail with one "attn bench: ..." line.
# usage: sh tests/cli/test_bench_paged.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
nfail=0
npass=0
ok() { echo "ok   $1"; npass=$((npass + 1)); }
bad() { echo "FAIL $1"; nfail=$((nfail + 1)); [ -f "$T/err" ] && sed 's/^/    | /' "$T/err" | tail -n 5; }

if "$ATTN" bench --paged --paged-batches 1,3 --paged-contexts 100,300 --block-size 16 --runs 1 --min-time 0 \
    --kv-dtype f32,int8 --json "$T/b.json" >"$T/out" 2>"$T/err"; then ok "bench --paged"; else bad "bench --paged"; fi
cat "$T/out"
n=$(grep -c '"variant": "decode-paged"' "$T/b.json")
if [ "$n" -eq 8 ]; then ok "8 decode-paged rows in the JSON"; else bad "decode-paged rows: $n"; fi
n=$(grep -c '"variant": "decode-kvcache"' "$T/b.json")
if [ "$n" -eq 8 ]; then ok "8 decode-kvcache rows in the JSON"; else bad "decode-kvcache rows: $n"; fi
nv=$(grep '"variant": "decode-' "$T/b.json" | grep '"valid": true' | grep '"batch": [13],' | grep '"gbps": [0-9]' |
    grep '"pct_bw": [0-9]' | grep '"kv_dtype": "\(f32\|int8\)"' | grep -c '"stream_gbps": [0-9]')
if [ "$nv" -eq 16 ]; then ok "rows valid, with kv_dtype / batch / gbps / pct_bw / stream_gbps"; else bad "complete valid rows: $nv"; fi
if grep -q '"bw_probe_gbps": [0-9]' "$T/b.json"; then ok "bw_probe_gbps at top level"; else bad "no bw_probe_gbps"; fi
# the probe is re-sampled after every row (8 rows: 9 samples, 10 with the last one) and its spread reported
if grep -q '"bw_probe_samples": \([9]\|[1-9][0-9]\), "bw_probe_spread": [0-9]' "$T/b.json" &&
    grep -q '^streaming-read probe: [0-9.]* GB/s = best of [0-9]* samples' "$T/out"; then
    ok "bandwidth probe: best of the samples through the run, with its spread"
else
    bad "bandwidth probe samples / spread"
fi
kf=$(grep '"variant": "decode-paged", "kv_dtype": "f32", "batch": 3,' "$T/b.json" | grep '"Sk": 300' | sed 's/.*"kv_bytes": \([0-9]*\).*/\1/')
ki=$(grep '"variant": "decode-paged", "kv_dtype": "int8", "batch": 3,' "$T/b.json" | grep '"Sk": 300' | sed 's/.*"kv_bytes": \([0-9]*\).*/\1/')
# f32: 2 x 3 x 300 x 8 x 128 x 4 bytes; int8: 1 byte per element + 2 x 4-byte scales per token and head
if [ "$kf" = 7372800 ] && [ "$ki" = 1900800 ]; then ok "kv_bytes f32 $kf, int8 $ki"; else bad "kv_bytes f32 '$kf' int8 '$ki'"; fi
if grep -q '^streaming read (probe): [0-9.]* GB/s' "$T/out" && grep -q '^llama3-8b *int8 *3 *300 *16 ' "$T/out"; then
    ok "table: probe and rows"
else
    bad "table"
fi

expect_err() {
    name=$1
    shift
    "$@" >/dev/null 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err" | tr -d ' ')
    if [ "$rc" -eq 1 ] && [ "$lines" = 1 ] && grep -q '^attn bench: .' "$T/err"; then ok "$name -> $(cat "$T/err")"; else bad "$name: rc $rc, $lines lines"; fi
}
expect_err "bench: --block-size 8" "$ATTN" bench --paged --block-size 8
expect_err "bench: bad --paged-batches" "$ATTN" bench --paged --paged-batches 1,x
expect_err "bench: bad --paged-contexts" "$ATTN" bench --paged --paged-contexts 0
expect_err "bench: bad --kv-dtype" "$ATTN" bench --paged --kv-dtype f32,int4

echo "test_bench_paged: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
