#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# packaging.cpack_deb (fixture for deb_consumer and lintian): build the .deb
# packages of the build tree with CPack into OUT_DIR.
#   cpack_deb.sh CPACK BUILD_DIR OUT_DIR
set -eu
cpack=$1 build=$2 out=$3
command -v dpkg-deb >/dev/null || { echo "dpkg-deb not found: skipped"; exit 77; }
rm -rf "$out"
mkdir -p "$out"
cd "$build"
"$cpack" -G DEB -B "$out" --config "$build/CPackConfig.cmake" >"$out/cpack.log" 2>&1 \
  || { cat "$out/cpack.log"; echo "FAIL: cpack -G DEB"; exit 1; }
cat "$out/cpack.log"
for deb in "$out"/*.deb; do
  echo "== $(basename "$deb")"
  dpkg-deb --info "$deb" | sed -n '/^ Package:/,$p'
  dpkg-deb --contents "$deb" | grep -v '/html/.' || true
done
