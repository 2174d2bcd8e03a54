#!/usr/bin/env bash
# The layering rule on the sources: a file in src/<layer>/ includes only its own
# layer's headers and those of the layers it links, directly or through others.
# The build enforces the same rule for what it compiles (CMakeLists.txt,
# rat_layer); this check also covers headers no translation unit includes yet,
# folders no layer globs, and relative includes that would walk around the rule.
#
#   scripts/check_layers.sh SRC_DIR LAYER=DEP,DEP ... (one word per layer)
#
# CTest runs it as `layers` with the graph CMakeLists.txt declares. Prints one
# line per violation, `file:line: ...`, and exits 1 if there is any.
set -uo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 SRC_DIR LAYER=DEP,DEP ..." >&2
  exit 2
fi
src=${1%/}
shift

declare -A deps=()
for arg in "$@"; do
  [[ $arg == *=* ]] || { echo "$0: '$arg': expected LAYER=DEP,DEP" >&2; exit 2; }
  deps[${arg%%=*}]=${arg#*=}
done

# The layers a layer may include: itself and everything it links, transitively.
reach() {
  local -A seen=()
  local todo=("$1") l d
  while [[ ${#todo[@]} -gt 0 ]]; do
    l=${todo[-1]}
    unset 'todo[-1]'
    [[ -n ${seen[$l]:-} ]] && continue
    seen[$l]=1
    IFS=, read -ra ds <<<"${deps[$l]:-}"
    for d in "${ds[@]}"; do [[ -n $d ]] && todo+=("$d"); done
  done
  printf '%s\n' "${!seen[@]}" | sort | tr '\n' ' '
}

bad=0
for dir in "$src"/*/; do
  layer=$(basename "$dir")
  if [[ -z ${deps[$layer]+x} ]]; then
    echo "$src/$layer/: a folder that is no layer (add it with rat_layer in CMakeLists.txt)"
    bad=1
  fi
done

for layer in "${!deps[@]}"; do
  [[ -d $src/$layer ]] || continue  # declared for files still to come
  may=$(reach "$layer")
  allowed=" $may"
  # file:line:text of every #include naming a folder, quoted or angled.
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    text=${rest#*:}
    [[ $text =~ include[[:space:]]*[\"\<]([^\">]*) ]] || continue
    target=${BASH_REMATCH[1]}
    first=${target%%/*}
    if [[ $target == ../* || $target == */../* ]]; then
      echo "$file:$line: includes \"$target\": a relative path, expected <layer>/<file>"
      bad=1
    elif [[ -n ${deps[$first]+x} || -d $src/$first ]] && [[ $allowed != *" $first "* ]]; then
      echo "$file:$line: includes \"$target\", but $layer may include only ${may% }"
      bad=1
    fi
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<][^">]*/' "$src/$layer" \
             --include='*.h' --include='*.cc' --include='*.hpp' --include='*.cpp')
done
exit $bad
