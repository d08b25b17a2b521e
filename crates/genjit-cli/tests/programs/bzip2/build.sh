#!/usr/bin/env bash
# Builds bzip2 1.0.8 (the sources bundled in the `bzip2-sys` crate, fetched by cargo from crates.io) to
# one bitcode file per C file, unoptimized and without `optnone` (clang -O0 -Xclang -disable-O0-optnone),
# for the tiering differential test and the tiering demo (scripts/tiering-demo.sh). bzip2.c is the real
# command-line program. Usage: build.sh OUTDIR   (prints the source directory; idempotent)
set -euo pipefail
out="$1"
mkdir -p "$out/fetch/src"
# A throwaway manifest whose only dependency is bzip2-sys: `cargo metadata` downloads it and says where.
cat > "$out/fetch/Cargo.toml" <<'TOML'
[package]
name = "bzip2-fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
bzip2-sys = "=0.1.13"
[workspace]
TOML
[ -f "$out/fetch/src/lib.rs" ] || : > "$out/fetch/src/lib.rs"
manifest=$(cargo metadata --manifest-path "$out/fetch/Cargo.toml" --format-version 1 2>/dev/null \
  | grep -o '"manifest_path":"[^"]*/bzip2-sys-[^"]*/Cargo.toml"' | head -n 1 | sed 's/^"manifest_path":"//; s/"$//')
if [ -z "$manifest" ]; then
  echo "build.sh: could not fetch bzip2-sys from crates.io" >&2
  exit 1
fi
src="$(dirname "$manifest")/bzip2-1.0.8"
flags=(-c -emit-llvm -O0 -Xclang -disable-O0-optnone -fPIC -w -D_FILE_OFFSET_BITS=64 -I "$src")
for name in blocksort huffman crctable randtable compress decompress bzlib bzip2; do
  [ "$out/$name.bc" -nt "$src/$name.c" ] || clang-19 "${flags[@]}" -o "$out/$name.bc" "$src/$name.c"
done
echo "$src"
