#!/usr/bin/env bash
# Runs genjit's whole test suite (unit, integration, doc tests, fuzz corpus) after installing prerequisites.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Every test verifies the IR after genjit's own rewrites too (`JitBuilder::verify_rewrites`).
export GENJIT_VERIFY_REWRITES=1
cargo test --release "$@"
# The loom model of the slot handoff (its own crate; ~2 minutes), unless only some tests were asked for.
if [ "$#" -eq 0 ]; then bash scripts/loom.sh; fi
# The library's examples run as a user would run them (each asserts what it demonstrates).
if [ "$#" -eq 0 ]; then
  for example in expression_cache repl hot_loop; do cargo run --release --quiet -p genjit --example "$example"; done
fi
