#!/usr/bin/env bash
# Generates every golden case with the PyTorch oracle, then checks the engine
# against all of them. Usage: run_reference_cases.sh OUT_DIR CHECKER
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
checker=$2
rm -rf "$out"
/usr/bin/python3 "$here/make_all.py" --out "$out" >/dev/null
exec "$checker" "$out"/*/
