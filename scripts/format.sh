#!/usr/bin/env bash
# Formats the C++ sources (src/, tests/, bench/) with the repository's .clang-format, or with
# --check lists the files that would change and exits 1 if any would (for CI and reviews).
# CLANG_FORMAT picks the binary (default: clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
mode=fix
case "${1:-}" in
  --check) mode=check ;;
  "") ;;
  *) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac
command -v "$CLANG_FORMAT" >/dev/null || { echo "format.sh: $CLANG_FORMAT not found" >&2; exit 2; }
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
  'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'bench/*.cc' 'bench/*.h' ':!tests/layers')
if [ "$mode" = fix ]; then
  "$CLANG_FORMAT" -i --style=file "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! "$CLANG_FORMAT" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "$f"
    bad=1
  fi
done
[ "$bad" = 0 ] || echo "format.sh: the files above need scripts/format.sh" >&2
exit "$bad"
