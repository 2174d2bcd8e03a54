#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, then the installed rat on its own:
# --version, --help, the man page, and `rat train experiment=NAME` finding the
# installed configs from a folder that has none (an experiment written only
# into the installed tree proves which tree it read).
#
#   tests/install/install_check.sh BUILD_DIR WORK_DIR
set -euo pipefail
build="$1"
work="$2"
rm -rf "$work"
mkdir -p "$work/prefix" "$work/elsewhere"
prefix="$work/prefix"
fail() { echo "install_check: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
  { cat "$work/install.log" >&2; fail "cmake --install failed"; }
rat="$prefix/bin/rat"
[ -x "$rat" ] || fail "no $rat"
[ -f "$prefix/share/rat/configs/config.yaml" ] || fail "no share/rat/configs/config.yaml"
man="$prefix/share/man/man1/rat.1"
[ -s "$man" ] || fail "no man page $man"
grep -q '^\.TH RAT' "$man" || fail "$man is not a man page (no .TH RAT)"
grep -q 'train' "$man" || fail "$man does not list the train command"

cd "$work/elsewhere"
# (Outputs captured first: grep -q closing the pipe early would fail the pipeline.)
version="$("$rat" --version)"
grep -Eq '^rat [0-9]+\.[0-9]+\.[0-9]+' <<<"$version" || fail "--version: $version"
grep -Eq '^kernels: (avx512|avx2|generic) ' <<<"$version" || fail "--version names no kernels"
help="$("$rat" --help)"
grep -q '^  train ' <<<"$help" || fail "--help lists no train command"
# A kernel set that does not exist stops rat at start, with one line.
if RAT_ISA=sse9 "$rat" --version >"$work/isa.out" 2>&1; then fail "RAT_ISA=sse9 was accepted"; fi
[ "$(wc -l <"$work/isa.out")" = 1 ] && grep -q "RAT_ISA=sse9: expected avx512, avx2 or generic" \
  "$work/isa.out" || fail "RAT_ISA=sse9: $(cat "$work/isa.out")"

# An experiment only the installed tree has.
cp "$prefix/share/rat/configs/experiment/pydoc/rat-small.yaml" \
   "$prefix/share/rat/configs/experiment/pydoc/installed_only.yaml"
"$rat" train experiment=pydoc/installed_only --print-config >"$work/config.yaml" ||
  fail "rat train experiment=pydoc/installed_only did not find the installed configs"
grep -q 'seq_len' "$work/config.yaml" || fail "the printed config has no seq_len"
"$rat" train experiment=pydoc/rat-small --print-config >"$work/config_small.yaml"
cmp -s "$work/config_small.yaml" "$work/config.yaml" ||
  fail "the installed copy of pydoc/rat-small composes differently"
echo "install_check: ok ($prefix)"
