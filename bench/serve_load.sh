#!/usr/bin/env bash
# `rat serve` under load, RAT vs attention (bench/serve_load.py says what is
# measured). Usage: bench/serve_load.sh [RAT] [serve_load.py flags: --quick,
# --out FILE.json, --work DIR, --clients 1,8,32,128, --d-model, --layers, ...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rat="${1:-$here/../build/rat}"
shift || true
exec /usr/bin/python3 "$here/serve_load.py" "$rat" "$@"
