#!/bin/sh
# SPDX-License-Identifier: MIT
# test_spdx.sh — every source file of the tree carries the SPDX line
# (scripts/spdx.sh --check), and the script itself works: on a scratch tree
# its check fails on a file without the line, the fix adds it once (a second
# run changes nothing) and keeps a `#!` line first.
set -e
cd "$(dirname "$0")/../.."
sh scripts/spdx.sh --check

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/scripts" "$tmp/src"
cp scripts/spdx.sh "$tmp/scripts/"
printf 'int x;\n' >"$tmp/src/new.c"
printf '#!/bin/sh\necho hi\n' >"$tmp/scripts/new.sh"
(cd "$tmp" && GIT_DIR=/nonexistent sh scripts/spdx.sh --check >/dev/null) && { echo "FAIL: check passed on a file without the line"; exit 1; }
(cd "$tmp" && GIT_DIR=/nonexistent sh scripts/spdx.sh >/dev/null)
(cd "$tmp" && GIT_DIR=/nonexistent sh scripts/spdx.sh --check >/dev/null) || { echo "FAIL: check fails after the fix"; exit 1; }
cp "$tmp/src/new.c" "$tmp/once.c"
(cd "$tmp" && GIT_DIR=/nonexistent sh scripts/spdx.sh >/dev/null)
cmp -s "$tmp/src/new.c" "$tmp/once.c" || { echo "FAIL: second run changed the file"; exit 1; }
[ "$(head -n 1 "$tmp/src/new.c")" = "/* SPDX-License-Identifier: MIT */" ] || { echo "FAIL: C line"; exit 1; }
[ "$(head -n 1 "$tmp/scripts/new.sh")" = "#!/bin/sh" ] || { echo "FAIL: shebang moved"; exit 1; }
[ "$(sed -n 2p "$tmp/scripts/new.sh")" = "# SPDX-License-Identifier: MIT" ] || { echo "FAIL: script line"; exit 1; }
echo "spdx: ok"
