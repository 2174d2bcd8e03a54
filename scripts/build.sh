#!/usr/bin/env bash
# Configures and builds build/ (Release) with all cores: rat, the tests, the
# man page. Extra arguments go to cmake, e.g. `scripts/build.sh -DRAT_NATIVE=OFF
# -DRAT_MPI=OFF` for a portable single-process rat (README "Build and install").
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
