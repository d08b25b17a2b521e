#!/usr/bin/env bash
# The main job: `genjit churn`, a query-engine workload (compile, call, redefine and unload expression
# modules under concurrent callers). Extra arguments go to `genjit churn`, e.g. `--seconds 30 --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- --threads 2 --live 1000 --seconds 10 --plot target/churn.svg; fi
cargo run --release --quiet -p genjit-cli -- churn "$@"
