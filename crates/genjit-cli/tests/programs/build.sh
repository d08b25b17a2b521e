#!/usr/bin/env bash
# Regenerates the committed .ll files from the C/C++ sources (clang-19, PIC, O0: the tests optimize further).
set -euo pipefail
cd "$(dirname "$0")"
for f in *.c; do clang-19 -fPIC -O0 -S -emit-llvm -o "${f%.c}.ll" "$f"; done
for f in *.cpp; do clang++-19 -fPIC -O0 -S -emit-llvm -o "${f%.cpp}.ll" "$f"; done
