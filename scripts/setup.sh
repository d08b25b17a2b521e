#!/usr/bin/env bash
# Installs what genjit builds and tests with (Debian/Ubuntu): LLVM 19 dev packages, clang-19 and lli-19
# (the test suite compares against LLVM's own JIT), perf and gdb (the profiler and debugger integration
# tests run them), and rustfmt/clippy. Idempotent; quiet when all is there.
set -euo pipefail
need=()
command -v llvm-config-19 >/dev/null 2>&1 || need+=(llvm-19-dev)
command -v clang-19 >/dev/null 2>&1 || need+=(clang-19)
command -v lli-19 >/dev/null 2>&1 || need+=(llvm-19)
command -v perf >/dev/null 2>&1 || need+=(linux-perf)
command -v gdb >/dev/null 2>&1 || need+=(gdb)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" libzstd-dev >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
export LLVM_SYS_191_PREFIX="${LLVM_SYS_191_PREFIX:-/usr/lib/llvm-19}"
