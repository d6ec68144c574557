#!/bin/sh
# SPDX-License-Identifier: MIT
# test_consumer.sh BUILD_DIR CC — installs the build into a temporary prefix and
# builds + runs examples/sdpa_minimal.c as a user would:
#   1. pkg-config, shared:   cc x.c $(pkg-config --cflags --libs attn)
#   2. pkg-config, static:   cc x.c $(pkg-config --cflags --libs --static attn), libattn.a
#   3. find_package(attn) from tests/consumer/CMakeLists.txt (attn::attn, attn::attn_static)
# and checks each binary links the library it should (readelf NEEDED), that the
# installed attn.pc is relocatable (the prefix is moved before use) and that
# nothing of the source or build tree is needed.
set -e
build=$(cd "$1" && pwd); cc=${2:-cc}
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/p0" >/dev/null
mv "$tmp/p0" "$tmp/prefix" # relocated: attn.pc and attnConfig.cmake must follow
P=$tmp/prefix
pcdir=$(dirname "$(find "$P" -name attn.pc | head -n 1)")
libdir=$(dirname "$pcdir")
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
[ -f "$P/include/attn.h" ] && [ -f "$libdir/libattn.a" ] && [ -L "$libdir/libattn.so" ] && [ -f "$libdir/libattn.so.0" ] ||
    { echo "FAIL: install layout"; find "$P"; exit 1; }
[ "$(pkg-config --variable=includedir attn)" -ef "$P/include" ] ||
    { echo "FAIL: attn.pc includedir $(pkg-config --variable=includedir attn) is not under $P"; exit 1; }
cp "$src/examples/sdpa_minimal.c" "$tmp/x.c" # compiled from a copy: no source-tree include path

needs_attn() { readelf -d "$1" | grep -q 'NEEDED.*libattn\.so'; }

# 1. shared
"$cc" -std=c11 -O2 "$tmp/x.c" -o "$tmp/x_shared" $(pkg-config --cflags --libs attn) -lm
needs_attn "$tmp/x_shared" || { echo "FAIL: pkg-config shared build does not need libattn.so"; exit 1; }
LD_LIBRARY_PATH="$libdir" "$tmp/x_shared" >/dev/null || { echo "FAIL: pkg-config shared binary"; exit 1; }
LD_LIBRARY_PATH="$libdir" ldd "$tmp/x_shared" | grep -q "$libdir/libattn.so.0" || { echo "FAIL: not the installed libattn"; exit 1; }
echo "pkg-config shared: ok"

# 2. static: the --static flags, with libattn itself taken from libattn.a
"$cc" -std=c11 -O2 "$tmp/x.c" -o "$tmp/x_static" $(pkg-config --cflags attn) \
    $(pkg-config --libs --static attn | sed 's/-lattn\b/-l:libattn.a/') -lm
needs_attn "$tmp/x_static" && { echo "FAIL: static build still needs libattn.so"; exit 1; }
"$tmp/x_static" >/dev/null || { echo "FAIL: pkg-config static binary"; exit 1; }
echo "pkg-config static: ok"

# 3. CMake find_package
cmake -S "$src/tests/consumer" -B "$tmp/cb" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/cb" >/dev/null
needs_attn "$tmp/cb/sdpa_shared" || { echo "FAIL: attn::attn is not the shared library"; exit 1; }
needs_attn "$tmp/cb/sdpa_static" && { echo "FAIL: attn::attn_static needs libattn.so"; exit 1; }
"$tmp/cb/sdpa_shared" >/dev/null || { echo "FAIL: find_package shared binary"; exit 1; }
"$tmp/cb/sdpa_static" >/dev/null || { echo "FAIL: find_package static binary"; exit 1; }
echo "find_package (attn::attn, attn::attn_static): ok"
