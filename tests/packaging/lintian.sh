#!/bin/sh
# packaging.lintian: lintian on the .deb packages made by packaging.cpack_deb.
# Errors (E:) fail the test; warnings and the rest are printed.
#   lintian.sh DEB_DIR
set -eu
debs=$1
command -v lintian >/dev/null || { echo "lintian not found: skipped"; exit 77; }
status=0
lintian --fail-on error --tag-display-limit 0 --display-info "$debs"/*.deb 2>&1 || status=$?
[ "$status" -eq 0 ] || { echo "FAIL: lintian reported errors (exit $status)"; exit 1; }
echo "lintian: no errors"
