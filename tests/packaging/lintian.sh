#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# packaging.lintian: lintian on the .deb packages made by packaging.cpack_deb.
# Any error (E:) fails the test, and so does any warning (W:) except those a
# first upload cannot avoid, listed here and in packaging/README.md with the
# reason. Info tags (I:) are printed only.
#   lintian.sh DEB_DIR
set -eu
debs=$1
command -v lintian >/dev/null || { echo "lintian not found: skipped"; exit 77; }

# initial-upload-closes-no-bugs: the only changelog entry closes no bug; a
# Debian upload closes its ITP bug there, and these packages have none.
accepted_warnings="initial-upload-closes-no-bugs"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
lintian --tag-display-limit 0 --display-info "$debs"/*.deb >"$out" 2>&1 || status=$?
cat "$out"
# Exit status 2 and up: lintian itself failed (1 only reports tags).
[ "$status" -le 1 ] || { echo "FAIL: lintian did not run (exit $status)"; exit 1; }
bad=$(grep -E '^[EW]: ' "$out" | while read -r level pkg tag rest; do
  if [ "$level" = "W:" ] && echo " $accepted_warnings " | grep -q " $tag "; then
    continue
  fi
  echo "$level $pkg $tag $rest"
done)
if [ -n "$bad" ]; then
  echo "FAIL: lintian errors or warnings that are not accepted:"
  echo "$bad"
  exit 1
fi
echo "lintian: no errors; warnings only: $accepted_warnings"
