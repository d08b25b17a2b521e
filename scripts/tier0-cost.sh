#!/usr/bin/env bash
# What tier 0 costs the thread that runs the program, counted in instructions (callgrind: deterministic,
# unlike wall time on a shared 2-core machine): bzip2's own program compressing 1 MB (its first output
# block) under genjit all-O0, tiered with no counters, tiered with counters that never see a tier-up
# (the tier-up delay outlasts the run: every count runs out and is claimed), and tiered as it runs; then
# the two without tier-ups again with tier 0 as plain O0 code (--tier-plain: without its clean-up); and
# lazy + tiered (each function compiled at its first call, on the main thread).
# The modules compile on the main thread only (--compile-threads 1), so its count holds all of the
# start-up's compile work, as it did before batches compiled in parallel.
# Usage: scripts/tier0-cost.sh        (installs valgrind if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if ! command -v valgrind > /dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind > /dev/null
fi
work=target/tiering-demo
mkdir -p "$work"
bash crates/genjit-cli/tests/programs/bzip2/build.sh "$work/ir" > /dev/null
cargo build --release --quiet -p genjit-cli
libs=(blocksort huffman crctable randtable compress decompress bzlib)
extra=()
for l in "${libs[@]}"; do extra+=(--extra-module "$work/ir/$l.bc"); done
# 1 MB of the demo's text-like data (made by its harness).
python3 scripts/tiering_demo.py "$work" 0 1 "${libs[@]}"
never=(--tier-delay 100000000 --tier-max-delay 100000000)
declare -A modes=(
  [1-all-O0]="-O0"
  [2-tiered-no-counters]="-O0 --tier --tier-calls 0 --tier-back-edges 0"
  [3-tiered-counters-no-tier-ups]="-O0 --tier ${never[*]}"
  [4-tiered]="-O0 --tier --tier-level 3"
  [5-tiered-plain-tier-0-no-counters]="-O0 --tier --tier-plain --tier-calls 0 --tier-back-edges 0"
  [6-tiered-plain-tier-0-no-tier-ups]="-O0 --tier --tier-plain ${never[*]}"
  [7-lazy-tiered]="-O0 --lazy --tier --tier-level 3"
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| genjit run, bzip2 -c of 1 MB | main thread's instructions (callgrind) | vs all-O0 |"
echo "|---|---|---|"
base=""
for name in $(printf '%s\n' "${!modes[@]}" | sort); do
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/$name" \
    target/release/genjit run --compile-threads 1 ${modes[$name]} "${extra[@]}" "$work/ir/bzip2.bc" -c \
    < "$work/data-1mb.txt" 2> /dev/null | md5sum > "$out/$name.md5"
  n=$(sed -n 's/^summary: //p' "$out/$name-01" | head -1)
  base=${base:-$n}
  awk -v name="${name#*-}" -v args="${modes[$name]}" -v n="$n" -v base="$base" \
    'BEGIN { printf "| %s (`%s`) | %d M | %.2fx |\n", name, args, n / 1e6, n / base }'
done
if [ "$(sort -u "$out"/*.md5 | wc -l)" != 1 ]; then
  echo "outputs differ between modes" >&2
  exit 1
fi
