#!/usr/bin/env bash
# Builds Lua 5.4 (from the `lua-src` crate's bundled sources, fetched by cargo from crates.io) to one
# bitcode file per C file, plus the small driver main.c, for the multi-module differential test.
# Usage: [LUA_CFLAGS=...] build.sh OUTDIR   (prints nothing on success; idempotent for the same flags)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
mkdir -p "$out"
manifest=$(cd "$here/../../.." && cargo metadata --format-version 1 --locked 2>/dev/null \
  | grep -o '"manifest_path":"[^"]*/lua-src-[^"]*/Cargo.toml"' | head -n 1 | sed 's/^"manifest_path":"//; s/"$//')
if [ -z "$manifest" ]; then
  echo "build.sh: lua-src not found in cargo metadata (is it a dev-dependency of genjit-cli?)" >&2
  exit 1
fi
src="$(dirname "$manifest")/lua-5.4.9"
flags=(-c -emit-llvm -O0 -Xclang -disable-O0-optnone -fPIC -I "$src" ${LUA_CFLAGS:-})
for c in "$src"/*.c "$here/main.c"; do
  name=$(basename "$c" .c)
  [ "$out/$name.bc" -nt "$c" ] || clang-19 "${flags[@]}" -o "$out/$name.bc" "$c"
done
