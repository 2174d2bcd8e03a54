#!/usr/bin/env bash
# The golden checker must fail when a NaN appears in what it compares: takes one
# golden case, puts a NaN into one expected logit, then into one expected gradient,
# and expects rat_check_case to fail each time (and to pass on the clean case, so
# the failure is the NaN's). Usage: nan_injection.sh OUT_DIR CHECKER
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
checker=$2
rm -rf "$out"
mkdir -p "$out"
/usr/bin/python3 "$here/make_all.py" --out "$out/clean" --only rat_g1 >/dev/null
"$checker" "$out/clean/rat_g1/" >/dev/null || { echo "FAIL: the clean case does not pass"; exit 1; }
for what in logits grad; do
  cp -r "$out/clean/rat_g1" "$out/$what"
  /usr/bin/python3 -c '
import sys, math
sys.path.insert(0, sys.argv[3])
import st
path, what = sys.argv[1], sys.argv[2]
t, dtypes = st.load_file(path, with_dtypes=True)
name = "logits" if what == "logits" else sorted(k for k in t if k.startswith("grad."))[0]
x = t[name].reshape(-1).clone()
x[x.numel() // 2] = math.nan
t[name] = x.reshape(t[name].shape)
st.save_file(t, path, dtypes=dtypes)
print("injected NaN into", name)' "$out/$what/expected.safetensors" "$what" "$here"
  if "$checker" "$out/$what/" >"$out/$what.log" 2>&1; then
    echo "FAIL: rat_check_case passed with a NaN in expected $what"
    cat "$out/$what.log"
    exit 1
  fi
  grep -q FAIL "$out/$what.log" || { echo "FAIL: no FAIL line for $what"; exit 1; }
done
echo "rat_check_case fails on a NaN in expected logits and in an expected gradient"
