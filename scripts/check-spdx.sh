#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# The licence in the tree: every source file of the checkout (tracked, or new
# and not ignored) starts with the two SPDX lines (after a shebang), and every
# file named LICENSE (the Go module's copy, the crates' links) is the root one.
# Source files: C, C++, CUDA, headers, SWIG, Python, Go, Rust, shell, CMake,
# and any other executable file (scripts).
#
#   scripts/check-spdx.sh [--fix] [ROOT]
#
# Prints each file that fails and exits 1; exits 77 (skipped) outside a git
# checkout. --fix adds the header, in the file's comment syntax, to the
# source files that lack it (then check the result and commit it).
set -eu
fix=0
if [ "${1:-}" = "--fix" ]; then
  fix=1
  shift
fi
cd "${1:-$(dirname "$0")/..}"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "not a git checkout: skipped"; exit 77; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# (sort -u: a path with a merge conflict is listed once per stage.)
git ls-files --cached --others --exclude-standard | sort -u >"$work/files"

# Source files with their line-comment marker ("MARKER PATH"), in shell
# builtins only: this runs over every file of the checkout.
while IFS= read -r f; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue  # deleted, or a link
  case "$f" in
    *.c|*.cc|*.cpp|*.cu|*.cuh|*.h|*.hpp|*.i|*.go|*.rs) echo "// $f" ;;
    *.py|*.sh|*.cmake|*.cmake.in|CMakeLists.txt|*/CMakeLists.txt) echo "# $f" ;;
    *) if [ -x "$f" ]; then echo "# $f"; fi ;;
  esac
done <"$work/files" >"$work/sources"

# Those without both SPDX lines in their first 5 lines.
awk '{
  marker = $1; path = substr($0, length(marker) + 2); c = l = 0
  for (n = 0; n < 5 && (getline line < path) > 0; n++) {
    if (line ~ /SPDX-FileCopyrightText: [0-9][0-9][0-9][0-9](-[0-9][0-9][0-9][0-9])? the diffcoll authors/) c = 1
    if (line ~ /SPDX-License-Identifier: BSD-3-Clause([^-A-Za-z0-9.+]|$)/) l = 1
  }
  close(path)
  if (!(c && l)) print
}' "$work/sources" >"$work/missing"

# add_header FILE MARKER: the header after the shebang (if any), then a blank
# line unless one follows already (Go: the package comment stays the package's).
add_header() {
  awk -v m="$2" -v year="$(date +%Y)" '
    function header() {
      print m " SPDX-FileCopyrightText: " year " the diffcoll authors"
      print m " SPDX-License-Identifier: BSD-3-Clause"
      done = 1
    }
    NR == 1 && /^#!/ { print; next }
    !done { header(); if ($0 != "") print "" }
    { print }
    END { if (!done) header() }' "$1" >"$work/new"
  cat "$work/new" >"$1"  # keeps the file's mode
}

missing=0
while read -r marker f; do
  if [ "$fix" -eq 1 ]; then
    add_header "$f" "$marker"
    echo "added the SPDX header: $f"
  else
    echo "no SPDX header: $f"
    missing=$((missing + 1))
  fi
done <"$work/missing"

differ=0
for f in $(grep -E '(^|/)LICENSE$' "$work/files"); do
  if [ -e "$f" ] && ! cmp -s "$f" LICENSE; then
    echo "not the root LICENSE: $f"
    differ=$((differ + 1))
  fi
done

if [ "$missing" -ne 0 ]; then
  echo "$missing source file(s) without the header; scripts/check-spdx.sh --fix adds it:"
  echo "  // SPDX-FileCopyrightText: $(date +%Y) the diffcoll authors"
  echo "  // SPDX-License-Identifier: BSD-3-Clause"
fi
[ "$differ" -eq 0 ] || echo "$differ LICENSE file(s) differ from the root one"
[ "$missing" -eq 0 ] && [ "$differ" -eq 0 ] || exit 1
echo "SPDX headers and LICENSE copies: OK"
