#!/usr/bin/env bash
# Installs the Debian packages rat builds, tests and runs with. Idempotent.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libdnnl-dev libyaml-cpp-dev nlohmann-json3-dev
      libcli11-dev libsentencepiece-dev sentencepiece libopenmpi-dev openmpi-bin libgtest-dev
      gnuplot-nox python3-torch python3-numpy python3-yaml python3.11-doc
      python3-omegaconf)  # the oracle of the config composition test
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
