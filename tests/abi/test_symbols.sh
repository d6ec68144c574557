#!/bin/sh
# SPDX-License-Identifier: MIT
# test_symbols.sh LIBATTN_SO ATTN_H — the shared library's exported interface:
#   - its soname is libattn.so.MAJOR, MAJOR = ATTN_VERSION_MAJOR of attn.h;
#   - every exported (dynamic, defined) symbol is an attn_* function declared
#     ATTN_API in attn.h: no internal attn__* and nothing else (BLAS, libc, ...);
#   - every ATTN_API function of attn.h is exported (none forgotten).
set -e
so=$1; hdr=$2
[ -f "$so" ] && [ -f "$hdr" ] || { echo "usage: test_symbols.sh libattn.so attn.h"; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0

major=$(sed -n 's/^#define ATTN_VERSION_MAJOR \([0-9][0-9]*\).*/\1/p' "$hdr")
soname=$(objdump -p "$so" | awk '$1 == "SONAME" {print $2}')
if [ "$soname" != "libattn.so.$major" ]; then
    echo "FAIL: soname '$soname', expected libattn.so.$major"; fail=1
fi

# defined dynamic symbols (the version node ATTN_0 is an ABS symbol, not code)
nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
# ATTN_API declarations: the identifier right before the first '(' (may span lines)
tr '\n' ' ' <"$hdr" | grep -o 'ATTN_API [^;{]*(' | sed 's/($//; s/.*[ *]//' | sort -u >"$tmp/declared"
[ -s "$tmp/exported" ] || { echo "FAIL: no exported symbols"; exit 1; }
[ -s "$tmp/declared" ] || { echo "FAIL: no ATTN_API declarations found in $hdr"; exit 1; }

bad=$(grep -v '^attn_[a-z0-9]' "$tmp/exported" || true)
if [ -n "$bad" ]; then echo "FAIL: exported symbols outside attn_*:"; echo "$bad"; fail=1; fi
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
if [ -n "$extra" ]; then echo "FAIL: exported but not declared ATTN_API in attn.h:"; echo "$extra"; fail=1; fi
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
if [ -n "$missing" ]; then echo "FAIL: declared ATTN_API but not exported:"; echo "$missing"; fail=1; fi
# every export carries the version node ATTN_<major>
unver=$(objdump -T "$so" | awk '$NF ~ /^attn_/ && $(NF-1) != "ATTN_'"$major"'" {print $NF}')
if [ -n "$unver" ]; then echo "FAIL: exports without version ATTN_$major:"; echo "$unver"; fail=1; fi

[ $fail -eq 0 ] || exit 1
echo "symbols: $(wc -l <"$tmp/exported") exported, all attn_* and declared ATTN_API; soname $soname"
