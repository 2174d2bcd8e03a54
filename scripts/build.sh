#!/usr/bin/env bash
# Configures and builds build/rat (Release) with all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
