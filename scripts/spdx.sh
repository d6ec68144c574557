#!/bin/sh
# SPDX-License-Identifier: MIT
# spdx.sh — the licence line at the top of every source file.
#   scripts/spdx.sh          adds `SPDX-License-Identifier: MIT` where it is missing
#   scripts/spdx.sh --check  lists the files without it and exits 1 if there are any
# Source files: *.c *.h *.py *.sh *.cmake *.cmake.in CMakeLists.txt and .ci/run,
# tracked or new (untracked, not ignored) when run in a git checkout, else found
# under the tree (build directories, fixtures and fuzz corpora skipped).
# Idempotent: a file that already has the line (in its first 5 lines) is left alone.
# C sources get `/* ... */` on line 1; scripts get `# ...` on line 1, or line 2
# after a `#!` line.
set -e
cd "$(dirname "$0")/.."
LINE="SPDX-License-Identifier: MIT"
mode=fix
[ "${1:-}" = "--check" ] && mode=check

list_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard
    else
        find . \( -name '.git' -o -name 'build*' -o -name corpus -o -name regressions -o -name fixtures \) -prune \
            -o -type f -print | sed 's|^\./||'
    fi
}

is_source() {
    case "$1" in
        tests/fixtures/*|tests/fuzz/corpus/*|tests/fuzz/regressions/*) return 1 ;;
        *.c|*.h|*.py|*.sh|*.cmake|*.cmake.in|CMakeLists.txt|*/CMakeLists.txt|.ci/run) return 0 ;;
    esac
    return 1
}

add_line() { # $1 file
    f=$1; tmp="$f.spdx.$$"
    case "$f" in
        *.c|*.h) { printf '/* %s */\n' "$LINE"; cat "$f"; } >"$tmp" ;;
        *)
            if head -n 1 "$f" | grep -q '^#!'; then
                { head -n 1 "$f"; printf '# %s\n' "$LINE"; tail -n +2 "$f"; } >"$tmp"
            else
                { printf '# %s\n' "$LINE"; cat "$f"; } >"$tmp"
            fi ;;
    esac
    chmod --reference="$f" "$tmp" 2>/dev/null || true
    mv "$tmp" "$f"
}

missing=0
for f in $(list_files); do
    [ -f "$f" ] || continue
    is_source "$f" || continue
    head -n 5 "$f" | grep -q "$LINE" && continue
    if [ "$mode" = check ]; then
        echo "missing SPDX line: $f"
        missing=$((missing + 1))
    else
        add_line "$f"
        echo "added: $f"
    fi
done
if [ "$mode" = check ] && [ "$missing" -gt 0 ]; then
    echo "$missing file(s) without '$LINE' (run scripts/spdx.sh to add it)"
    exit 1
fi
exit 0
