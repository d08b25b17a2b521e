#!/usr/bin/env bash
# The on-stack replacement demo: Lua 5.4 built with a `switch` dispatch (-DLUA_USE_JUMPTABLE=0, so its
# interpreter loop can tier up), running a CPU-bound script that lives inside one call of `luaV_execute`.
# With `goto`: Lua with its default computed-goto dispatch, running a script whose time goes into calls
# C makes into Lua (`table.sort` with a Lua comparator), each a new call of `luaV_execute`, which tiers
# up with a copy of its jump table (no OSR through a computed goto).
# Alternates, inside each round: genjit all-O0, all-O3, tiered with OSR, tiered without (not with
# `goto`), and the same IR ahead of time (llvm-link + opt -O3 + clang -O3); checks every output against
# the ahead-of-time one and prints medians as a Markdown table.
# Usage: scripts/osr-demo.sh [ROUNDS] [goto]   (default 3 rounds, `switch` dispatch)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
rounds="${1:-3}"
dispatch="${2:-switch}"
case "$dispatch" in
  switch) work=target/osr-demo flags=-DLUA_USE_JUMPTABLE=0 ;;
  goto) work=target/goto-demo flags= ;;
  *) echo "usage: scripts/osr-demo.sh [ROUNDS] [goto]" >&2; exit 2 ;;
esac
mkdir -p "$work"
LUA_CFLAGS="$flags" bash crates/genjit-cli/tests/programs/lua/build.sh "$work/ir"
cargo build --release --quiet -p genjit-cli
if [ "$dispatch" = switch ]; then
cat > "$work/bench.lua" <<'LUA'
-- CPU-bound, all in the main chunk's one call of luaV_execute: recursive calls, table churn, strings
local function fib(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end
local s = 0
for i = 1, 3 do s = s + fib(32) end
local t = {}
for i = 1, 300000 do t[i] = i * 2 end
local acc = 0
for k = 1, 100 do for i = 1, #t do acc = acc + t[i] % 7 end end
local parts = {}
for i = 1, 50000 do parts[#parts+1] = tostring(i) end
print(s, acc, #table.concat(parts, ","))
LUA
else
cat > "$work/bench.lua" <<'LUA'
-- Sorting with a Lua comparator: C (table.sort) calls into Lua ~5 M times, each a call of luaV_execute
local t = {}
local seed = 42
for i = 1, 300000 do seed = (seed * 1103515245 + 12345) % 2147483648; t[i] = seed end
for round = 1, 3 do
  local u = {}
  for i = 1, #t do u[i] = t[i] end
  table.sort(u, function(a, b) return a % 1000003 < b % 1000003 end)
  print(round, u[1], u[#u])
end
LUA
fi
if [ ! -x "$work/lua-aot" ] || [ "$work/lua-aot" -ot "$work/ir/lvm.bc" ]; then
  llvm-link-19 "$work"/ir/*.bc -o "$work/all.bc"
  opt-19 -O3 "$work/all.bc" -o "$work/all.O3.bc"
  clang-19 -O3 "$work/all.O3.bc" -lm -o "$work/lua-aot"
fi
exec python3 - "$work" "$rounds" "$dispatch" <<'PY'
import os, statistics, subprocess, sys, time
work, rounds, dispatch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ir = os.path.join(work, "ir")
extra = [a for f in sorted(os.listdir(ir)) if f != "main.bc" for a in ("--extra-module", os.path.join(ir, f))]
script = os.path.join(work, "bench.lua")
genjit = lambda *opts: ["target/release/genjit", "run", *opts, *extra, os.path.join(ir, "main.bc"), script]
tiered = "genjit tiered, OSR (`--tier`)" if dispatch == "switch" else "genjit tiered (`--tier`)"
modes = {
    "genjit all-O0": genjit("-O0"),
    "genjit all-O3": genjit("-O3"),
    tiered: genjit("-O0", "--tier"),
    "genjit tiered, no OSR (`--tier --tier-osr 0`)": genjit("-O0", "--tier", "--tier-osr", "0"),
    "ahead of time (`opt -O3` + `clang -O3`, same IR)": [os.path.join(work, "lua-aot"), script],
}
if dispatch == "goto":
    del modes["genjit tiered, no OSR (`--tier --tier-osr 0`)"]
expected = subprocess.run(modes["ahead of time (`opt -O3` + `clang -O3`, same IR)"], capture_output=True, check=True).stdout
times = {m: [] for m in modes}
for _ in range(rounds):
    for mode, cmd in modes.items():
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, check=True).stdout
        times[mode].append(time.perf_counter() - start)
        assert out == expected, f"{mode}: output differs"
base = times[tiered]
print(f"| Lua 5.4, `{dispatch}` dispatch, {rounds} rounds | total (median) | per round, vs tiered |")
print("|---|---|---|")
for mode, ts in times.items():
    ratios = sorted(t / b for t, b in zip(ts, base))
    print(f"| {mode} | {statistics.median(ts):.2f} s | {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f}) |")
PY
