"""The tiering demo's harness (run by scripts/tiering-demo.sh): alternates the engines inside each round,
checks every output against the ahead-of-time binary's, and prints medians as a Markdown table."""
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time

work, rounds, mb, libs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
genjit = "target/release/genjit"
ir = os.path.join(work, "ir")


def make_data(megabytes):
    """Text-like input: lines of words from vocabularies of three sizes (a fixed seed)."""
    path = os.path.join(work, f"data-{megabytes}mb.txt")
    if not os.path.exists(path):
        r = random.Random(7)
        words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))) for _ in range(5000)]
        out, n = [], 0
        while n < megabytes * 1_000_000:
            line = " ".join(r.choice(words[: r.choice([50, 500, 5000])]) for _ in range(r.randint(3, 15))) + "\n"
            out.append(line)
            n += len(line)
        with open(path, "w") as f:
            f.write("".join(out))
    return path


data = make_data(mb)
# The steady state: what the last (mb - small) megabytes cost, from runs on both sizes.
small = max(1, mb // 4)
small_data = make_data(small)
if rounds == 0:
    sys.exit(0)  # only the data (for scripts/tier0-cost.sh)

extra = [a for lib in libs for a in ("--extra-module", os.path.join(ir, lib + ".bc"))]
lli_extra = [f"-extra-module={os.path.join(ir, lib + '.bc')}" for lib in libs]
program = os.path.join(ir, "bzip2.bc")
stats_file = os.path.join(work, "stats.json")
engines = {
    "genjit all-O0": [genjit, "run", "-O0", "--stats-json", stats_file, *extra, program, "-c"],
    "genjit all-O3": [genjit, "run", "-O3", "--stats-json", stats_file, *extra, program, "-c"],
    "genjit tiered (O0, then O3)": [genjit, "run", "-O0", "--tier", "--tier-level", "3", "--stats-json", stats_file, *extra, program, "-c"],
    "genjit lazy + tiered": [genjit, "run", "-O0", "--lazy", "--tier", "--tier-level", "3", "--stats-json", stats_file, *extra, program, "-c"],
    "lli-19 -O3 (ORC, eager)": ["lli-19", "-O3", *lli_extra, program, "-c"],
    "lli-19 -O3 --jit-kind=orc-lazy": ["lli-19", "-O3", "--jit-kind=orc-lazy", *lli_extra, program, "-c"],
    "ahead of time (opt -O3 + clang -O3)": [os.path.join(work, "bzip2-aot"), "-c"],
}


def run(cmd, data=data):
    """Runs cmd with the data on stdin: (total seconds, seconds to the first output byte, output digest,
    user CPU seconds of all its threads)."""
    with open(data, "rb") as stdin:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stdout.read(1)
        first_at = time.perf_counter() - start
        digest = hashlib.sha256(first + p.stdout.read()).hexdigest()
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        total = time.perf_counter() - start
    if code != 0:
        sys.exit(f"{cmd[0]} failed ({code}): {err.decode(errors='replace')}")
    return total, first_at, digest, usage.ru_utime


def running(cmd, total):
    """The time the program ran: for genjit, the total less adding its modules (compile and link,
    whose run-to-run noise would otherwise dominate a difference of two runs)."""
    return total - json.load(open(stats_file))["startup_seconds"] if cmd[0] == genjit else total


results = {name: [] for name in engines}
# The steady state: per engine and round, a small run and a full run back to back (engines rotating), the
# difference in wall time (genjit's less adding the modules) and in user CPU time of all threads.
steady = {name: [] for name in engines if "all-O3" in name or "tiered (" in name or "ahead" in name}
expected = None
for r in range(rounds):
    order = list(steady)
    order = order[r % len(order):] + order[: r % len(order)]
    for name in order:
        pair = []
        for size in (small_data, data):
            # Removing the stats file keeps this run's figures out of the next one's.
            if os.path.exists(stats_file):
                os.remove(stats_file)
            total, _, _, cpu = run(engines[name], size)
            pair.append((running(engines[name], total), cpu))
        steady[name].append((pair[1][0] - pair[0][0], pair[1][1] - pair[0][1]))
    for name, cmd in engines.items():
        if os.path.exists(stats_file):
            os.remove(stats_file)
        total, first, digest, _ = run(cmd)
        expected = expected or digest
        if digest != expected:
            sys.exit(f"{name}: output differs from the first engine's")
        stats = json.load(open(stats_file)) if cmd[0] == genjit else {}
        results[name].append((total, first, stats, running(cmd, total)))
        print(f"round {r + 1} {name}: {total:.2f} s", file=sys.stderr)

print(f"bzip2 -c of {mb} MB of text-like data, median of {rounds} alternating rounds (all outputs identical):\n")
print("| engine | total | to first output | compile on the main thread | compile in the background | tier-ups | lazy compiles |")
print("|---|---|---|---|---|---|---|")
for name, runs in results.items():
    med = lambda f: statistics.median(f(x) for x in runs)
    total, first = med(lambda x: x[0]), med(lambda x: x[1])
    if runs[0][2]:
        main = f"{med(lambda x: x[2]['compile_seconds_main_thread']):.2f} s"
        bg = f"{med(lambda x: x[2]['compile_seconds_background']):.2f} s"
        ups = f"{int(med(lambda x: x[2]['tier_ups']))}"
        lazy = f"{int(med(lambda x: x[2]['lazy_compiles']))} of {runs[0][2]['lazy_functions']}" if runs[0][2]["lazy_functions"] else "-"
    else:
        main = bg = ups = lazy = "-"
    print(f"| {name} | {total:.2f} s | {first:.2f} s | {main} | {bg} | {ups} | {lazy} |")

print(
    f"\nSteady state: the last {mb - small} MB (a {mb} MB run less a {small} MB run, back to back; genjit's wall"
    " time less adding the modules), relative to the ahead-of-time binary: medians of the per-round ratios"
    " (min-max), in wall time and in user CPU time of all threads:\n"
)
aot_name = "ahead of time (opt -O3 + clang -O3)"
print("| engine | wall seconds | speed vs ahead-of-time, wall | CPU seconds | speed vs ahead-of-time, CPU |")
print("|---|---|---|---|---|")
for name, pairs in steady.items():
    cells = []
    for k in (0, 1):
        ratios = sorted(steady[aot_name][r][k] / pairs[r][k] for r in range(rounds))
        cells += [f"{statistics.median(p[k] for p in pairs):.2f} s", f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"]
    print(f"| {name} | " + " | ".join(cells) + " |")
print("\nTotals relative to genjit tiered, median of the per-round ratios:\n")
tiered = "genjit tiered (O0, then O3)"
for name in results:
    ratios = sorted(results[name][r][0] / results[tiered][r][0] for r in range(rounds))
    print(f"- {name}: {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")
print("\nTime to first output relative to genjit all-O0, median of the per-round ratios:\n")
for name in results:
    ratios = sorted(results[name][r][1] / results["genjit all-O0"][r][1] for r in range(rounds))
    print(f"- {name}: {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")
