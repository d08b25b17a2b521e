#!/usr/bin/env bash
# Time to first output, all-O0 against tiered, and nothing else: bzip2's own program compressing 24 MB of
# the demo's text-like data from stdin (its first output block), killed at its first output byte. The two
# engines alternate inside every round (which goes first alternates too), so the machine's drift reaches
# both; prints the medians and the per-round ratio's quartiles.
# Usage: scripts/first-output.sh [ROUNDS]   (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
rounds="${1:-40}"
work=target/tiering-demo
mkdir -p "$work"
bash crates/genjit-cli/tests/programs/bzip2/build.sh "$work/ir" > /dev/null
cargo build --release --quiet -p genjit-cli
libs=(blocksort huffman crctable randtable compress decompress bzlib)
python3 scripts/tiering_demo.py "$work" 0 24 "${libs[@]}"
exec python3 - "$work" "$rounds" "${libs[@]}" <<'PY'
import statistics, subprocess, sys, threading, time
work, rounds, libs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
extra = [a for lib in libs for a in ("--extra-module", f"{work}/ir/{lib}.bc")]
data = open(f"{work}/data-24mb.txt", "rb").read()
import os
modes = {"all-O0": ["-O0"], "tiered": ["-O0", "--tier"] + os.environ["TARGS"].split()}
firsts = {m: [] for m in modes}
for r in range(rounds):
    for m, args in (list(modes.items()) if r % 2 == 0 else list(modes.items())[::-1]):
        start = time.perf_counter()
        p = subprocess.Popen(["target/release/genjit", "run", *args, *extra, f"{work}/ir/bzip2.bc", "-c"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        def feed():
            try:
                p.stdin.write(data)
                p.stdin.close()
            except OSError:
                pass  # killed at its first byte
        feeder = threading.Thread(target=feed)
        feeder.start()
        if len(p.stdout.read(1)) != 1:
            sys.exit(f"{m}: no output")
        firsts[m].append(time.perf_counter() - start)
        p.kill()
        p.wait()
        feeder.join()
ratios = sorted(t / o for t, o in zip(firsts["tiered"], firsts["all-O0"]))
q = lambda f: ratios[int(f * (len(ratios) - 1))]
print(f"first output, {rounds} rounds: all-O0 {statistics.median(firsts['all-O0']):.3f} s, "
      f"tiered {statistics.median(firsts['tiered']):.3f} s (medians); tiered/all-O0 per round "
      f"{statistics.median(ratios):.3f}x (quartiles {q(0.25):.2f}-{q(0.75):.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}); "
      f"tiered first in {sum(x < 1 for x in ratios)} of {rounds}")
PY
