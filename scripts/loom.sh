#!/usr/bin/env bash
# Runs the loom model of the slot handoff (loom/, its own workspace: crossbeam-epoch is built for loom),
# then the negative control, which must fail: a model that cannot catch an immediate free checks nothing.
set -euo pipefail
cd "$(dirname "$0")/../loom"
export RUSTFLAGS="--cfg crossbeam_loom ${RUSTFLAGS:-}"
# One test at a time: the model's instrumentation counters are process-wide.
cargo test --release -- --test-threads 1
if out=$(cargo test --release -- --ignored freeing_without_a_grace_period 2>&1); then
  echo "loom: the negative control passed; the model does not detect a premature free" >&2
  exit 1
fi
if ! grep -qE "Causality violation|freed or unwritten code" <<<"$out"; then
  echo "loom: the negative control failed for an unexpected reason:" >&2
  echo "$out" | tail -30 >&2
  exit 1
fi
echo "loom: negative control (free without grace period) detected, as required"
