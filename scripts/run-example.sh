#!/usr/bin/env bash
# The main job for now: `genjit run` on the bundled example, like `lli examples/hello.ll 25`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo run --release --quiet -- run examples/hello.ll "${@:-25}"
