#!/usr/bin/env bash
# Installs the Debian packages rat builds, tests and runs with. Idempotent.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libdnnl-dev libyaml-cpp-dev nlohmann-json3-dev
      libcli11-dev libsentencepiece-dev sentencepiece libopenmpi-dev openmpi-bin libgtest-dev
      gnuplot-nox python3-torch python3-numpy python3-yaml python3.11-doc
      python3-omegaconf python3-easydict  # oracles: config composition, the authors' checkpoints
      libcpp-httplib-dev curl nodejs
      libreadline-dev tmux  # rat chat: line editing; its test drives a terminal
      pybind11-dev python3-dev  # the Python module (src/python)
      help2man  # the man page of `cmake --install` (CMakeLists.txt)
      clang-14 libclang-rt-14-dev libomp-14-dev)  # fuzz/ (libFuzzer), sanitize_tests.sh --tsan (Archer)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing packages (${missing[*]}); run this script as root or install them" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
# `rat serve`'s test (tests/serve) drives the real OpenAI client: npm's `openai`, pinned by
# tests/serve/package-lock.json. Debian's nodejs comes without npm; NodeSource's includes it.
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "error: npm is missing; install it (apt-get install npm)" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >/dev/null
fi
(cd "$(dirname "$0")/../tests/serve" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
