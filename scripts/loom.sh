#!/usr/bin/env bash
# Runs the loom model of the slot handoff and grace periods (loom/, its own workspace), then the negative
# controls, which must fail: a model that cannot catch an immediate free, or code run outside its pin's
# scope, checks nothing.
set -euo pipefail
cd "$(dirname "$0")/../loom"
# One test at a time: the model's instrumentation counters are process-wide.
cargo test --release -- --test-threads 1
negative() {
  local test=$1 what=$2 out
  if out=$(cargo test --release -- --ignored --exact "model::$test" 2>&1); then
    echo "loom: the negative control $test passed; the model does not detect $what" >&2
    exit 1
  fi
  if ! grep -qE "Causality violation|freed or unwritten code|freed code" <<<"$out"; then
    echo "loom: the negative control $test failed for an unexpected reason:" >&2
    echo "$out" | tail -30 >&2
    exit 1
  fi
  echo "loom: negative control ($what) detected, as required"
}
negative freeing_without_a_grace_period_is_caught "a free without grace period"
negative running_code_outside_the_pins_scope_is_caught "code run outside its pin's scope"
negative ignoring_the_handshake_is_caught "a free of what a handshake reported in use"
