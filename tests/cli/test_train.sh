#!/bin/sh
# SPDX-License-Identifier: MIT
# test_train.sh — `attn train` and `attn generate` end to end, kept short
# (--steps 30 on the bundled text, ~10 s on a loaded 2-core machine):
#   - the training loss falls by >= 40% and a checkpoint is written;
#   - --steps runs are deterministic (two runs write identical files);
#   - generate loads it and prints prompt + N bytes (greedy: twice the same);
#   - generate --batch (continuous batching through the paged KV cache): every
#     greedy sequence is a prefix of the greedy single-sequence run;
#   - LoRA fine-tuning from it reports trainable counts and its checkpoint
#     generates;
#   - bad input fails with one "attn <sub>: ..." line; --mpi without attn-mpi
#     next to the binary (a build without MPI) says so (the MPI runs: tests/mpi/train.sh).
# usage: sh tests/cli/test_train.sh path/to/attn   (from the repo root)
ATTN=${1:?usage: sh $0 path/to/attn}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
nfail=0
npass=0
ok() { echo "ok   $1"; npass=$((npass + 1)); }
bad() { echo "FAIL $1"; nfail=$((nfail + 1)); [ -f "$T/err" ] && sed 's/^/    | /' "$T/err" | tail -n 5; }

# ── training ────────────────────────────────────────────────────────────────
if "$ATTN" train --steps 30 --out "$T/a.safetensors" >"$T/train.log" 2>"$T/err"; then ok "train --steps 30"; else bad "train --steps 30"; fi
cat "$T/train.log"
drop=$(sed -n 's/^train loss: .*: \([0-9.]*\)% lower$/\1/p' "$T/train.log")
if [ -n "$drop" ] && awk -v d="$drop" 'BEGIN { exit !(d >= 40) }'; then ok "loss fell by $drop% (>= 40%)"; else bad "loss drop '$drop' < 40%"; fi
if [ -s "$T/a.safetensors" ]; then ok "checkpoint written"; else bad "no checkpoint"; fi
"$ATTN" train --steps 30 --out "$T/b.safetensors" >/dev/null 2>"$T/err"
if cmp -s "$T/a.safetensors" "$T/b.safetensors"; then ok "--steps runs are deterministic"; else bad "two --steps 30 runs differ"; fi

# ── generation ──────────────────────────────────────────────────────────────
"$ATTN" generate --ckpt "$T/a.safetensors" --prompt "And God" --tokens 40 --temperature 0 >"$T/g1" 2>"$T/err"
rc=$?
"$ATTN" generate --ckpt "$T/a.safetensors" --prompt "And God" --tokens 40 --temperature 0 >"$T/g2" 2>/dev/null
n=$(wc -c <"$T/g1" | tr -d ' ')
if [ $rc -eq 0 ] && [ "$n" -eq 48 ] && head -c 7 "$T/g1" | grep -q '^And God'; then ok "generate: prompt + 40 bytes + newline ($n bytes)"; else bad "generate: rc $rc, $n bytes"; fi
if cmp -s "$T/g1" "$T/g2"; then ok "greedy generation is repeatable"; else bad "greedy generation differs"; fi
if grep -q 'tok/s' "$T/err"; then ok "generate reports tok/s"; else bad "no tok/s"; fi
if "$ATTN" generate --ckpt "$T/a.safetensors" --tokens 200 --seed 5 >/dev/null 2>"$T/err"; then ok "generate past the context (refill)"; else bad "generate 200"; fi

# --batch: continuous batching through the paged cache; greedy sequences are prefixes of the greedy single run
"$ATTN" generate --ckpt "$T/a.safetensors" --prompt "And God" --tokens 40 --temperature 0 --batch 3 --sequences 5 >"$T/gb" 2>"$T/err"
rc=$?
nseq=$(grep -c '^--- sequence [0-9]* (' "$T/gb")
if [ $rc -eq 0 ] && [ "$nseq" -eq 5 ] && grep -q 'batch 3: 5 sequences, .* tok/s' "$T/err"; then ok "generate --batch 3 --sequences 5: 5 sequences, tok/s"; else bad "generate --batch: rc $rc, $nseq sequences"; fi
same=1
for i in 0 1 2 3 4; do
    len=$(sed -n "s/^--- sequence $i (\([0-9]*\) bytes) ---\$/\1/p" "$T/gb")
    [ -n "$len" ] || { same=0; break; }
    sed -n "/^--- sequence $i (/,\$p" "$T/gb" | sed 1d | head -c $((len + 7)) >"$T/gs"
    head -c $((len + 7)) "$T/g1" | cmp -s - "$T/gs" || same=0
done
if [ $same -eq 1 ]; then ok "generate --batch greedy = the single-sequence greedy run"; else bad "generate --batch greedy differs"; fi
if "$ATTN" generate --ckpt "$T/a.safetensors" --tokens 100 --batch 4 --sequences 9 --seed 3 >/dev/null 2>"$T/err"; then ok "generate --batch 4 --sequences 9 (sampling, to the context end)"; else bad "generate --batch 4"; fi

long=$(awk 'BEGIN { for (i = 0; i < 300; i++) printf "x" }')
if "$ATTN" generate --ckpt "$T/a.safetensors" --prompt "$long" --tokens 10 >/dev/null 2>"$T/err"; then ok "generate: prompt longer than the context"; else bad "long prompt"; fi
if "$ATTN" train --seq 1 --batch 1 --steps 2 --out "$T/s1.safetensors" >/dev/null 2>"$T/err" &&
    "$ATTN" generate --ckpt "$T/s1.safetensors" --tokens 5 >/dev/null 2>"$T/err"; then ok "context of 1 byte"; else bad "--seq 1"; fi
if "$ATTN" generate --ckpt "$T/s1.safetensors" --tokens 5 --batch 2 --sequences 3 >/dev/null 2>"$T/err"; then ok "generate --batch, context of 1 byte"; else bad "--batch with --seq 1"; fi

# --name=value options (the parser every subcommand shares) and an empty prompt (starts from "\n")
if "$ATTN" train --steps=2 --seq=16 --batch=2 --log-every=1 --out="$T/eq.safetensors" >"$T/eq.log" 2>"$T/err" &&
    grep -q '^schedule: 2 steps' "$T/eq.log" && grep -q '^step     1 ' "$T/eq.log"; then ok "train --name=value options"; else bad "train --name=value"; fi
"$ATTN" generate --ckpt="$T/eq.safetensors" --prompt= --tokens=5 >"$T/g3" 2>"$T/err"
rc=$?
n=$(wc -c <"$T/g3" | tr -d ' ')
if [ $rc -eq 0 ] && [ "$n" -eq 6 ]; then ok "generate --prompt= (empty): 5 bytes + newline"; else bad "generate empty prompt: rc $rc, $n bytes"; fi

# ── LoRA ────────────────────────────────────────────────────────────────────
if "$ATTN" train --lora 4 --base "$T/a.safetensors" --steps 10 --out "$T/l.safetensors" >"$T/lora.log" 2>"$T/err"; then ok "train --lora 4"; else bad "train --lora 4"; fi
if grep -q '^LoRA rank 4 (alpha 8) on q_proj, v_proj of 2 layers: 1792 trainable of' "$T/lora.log"; then ok "LoRA trainable count"; else bad "LoRA count line: $(head -n 1 "$T/lora.log")"; fi
if "$ATTN" generate --ckpt "$T/l.safetensors" --tokens 20 >/dev/null 2>"$T/err"; then ok "generate from the LoRA checkpoint"; else bad "generate LoRA"; fi

# ── errors: exit 1, one stderr line ─────────────────────────────────────────
expect_err() {
    name=$1
    shift
    "$@" >/dev/null 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err" | tr -d ' ')
    if [ "$rc" -eq 1 ] && [ "$lines" = 1 ] && grep -q '^attn [a-z]*: .' "$T/err"; then ok "$name -> $(cat "$T/err")"; else bad "$name: rc $rc, $lines lines"; fi
}
expect_err "train: --lora without --base" "$ATTN" train --lora 4
expect_err "train: missing --data" "$ATTN" train --data "$T/none.txt" --steps 1
printf 'short' >"$T/short.txt"
expect_err "train: data too short" "$ATTN" train --data "$T/short.txt" --steps 1
expect_err "train: heads do not divide dim" "$ATTN" train --dim 64 --heads 3 --steps 1
expect_err "train: --base not a checkpoint" "$ATTN" train --lora 4 --base "$T/short.txt" --steps 1
expect_err "train: --base already LoRA" "$ATTN" train --lora 4 --base "$T/l.safetensors" --steps 1
expect_err "generate: missing checkpoint" "$ATTN" generate --ckpt "$T/none.safetensors"
if [ -f tests/fixtures/llama_run/model.safetensors ]; then
    expect_err "generate: safetensors without LM metadata" "$ATTN" generate --ckpt tests/fixtures/llama_run/model.safetensors
fi
expect_err "generate: bad --temperature" "$ATTN" generate --temperature hot
expect_err "generate: bad --batch" "$ATTN" generate --ckpt "$T/a.safetensors" --batch -1
expect_err "generate: --sequences without --batch" "$ATTN" generate --ckpt "$T/a.safetensors" --sequences 3
# --mpi without attn-mpi next to the binary (a build without MPI): a clear one-line error
cp "$ATTN" "$T/attn-alone"
expect_err "train --mpi without attn-mpi" "$T/attn-alone" train --mpi --steps 1
if grep -q 'built without MPI' "$T/err"; then ok "train --mpi names the missing MPI build"; else bad "train --mpi message"; fi
expect_err "bench --mpi without attn-mpi" "$T/attn-alone" bench --mpi
if grep -q 'built without MPI' "$T/err"; then ok "bench --mpi names the missing MPI build"; else bad "bench --mpi message"; fi

echo "test_train: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
