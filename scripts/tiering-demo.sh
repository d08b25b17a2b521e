#!/usr/bin/env bash
# The tiering demo: bzip2 1.0.8's own program compressing text-like data through stdin and stdout, run by
# genjit all-O0, all-O3, tiered, lazy+tiered, by lli-19 (LLVM's ORC JIT) and as ahead-of-time code built
# from the same IR (opt -O3 + clang -O3), alternating inside each round. Prints the README's table.
# Usage: scripts/tiering-demo.sh [ROUNDS] [MEGABYTES]   (default 3 rounds of 24 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
rounds="${1:-3}"
mb="${2:-24}"
work=target/tiering-demo
mkdir -p "$work"
bash crates/genjit-cli/tests/programs/bzip2/build.sh "$work/ir" > /dev/null
cargo build --release --quiet -p genjit-cli
libs=(blocksort huffman crctable randtable compress decompress bzlib)
if [ ! -x "$work/bzip2-aot" ] || [ "$work/bzip2-aot" -ot "$work/ir/bzip2.bc" ]; then
  llvm-link-19 "${libs[@]/#/$work/ir/}" "$work/ir/bzip2.bc" -o "$work/all.bc" 2>/dev/null \
    || llvm-link-19 $(for l in "${libs[@]}"; do echo "$work/ir/$l.bc"; done) "$work/ir/bzip2.bc" -o "$work/all.bc"
  opt-19 -O3 "$work/all.bc" -o "$work/all.O3.bc"
  clang-19 -O3 "$work/all.O3.bc" -o "$work/bzip2-aot"
fi
exec python3 scripts/tiering_demo.py "$work" "$rounds" "$mb" "${libs[@]}"
