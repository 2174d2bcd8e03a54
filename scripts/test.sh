#!/usr/bin/env bash
# The test command: installs dependencies, builds, runs every test (C++ unit
# tests, the PyTorch golden cases, the oracle's self-tests), then the parser
# tests again under AddressSanitizer + UBSan, then a fixed-seed, fixed-length run of every
# libFuzzer target (the same clang sanitizer build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure --no-tests=error -j2 --timeout 1500)
bash scripts/sanitize_tests.sh
bash scripts/fuzz_smoke.sh
