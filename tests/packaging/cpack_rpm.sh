#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# packaging.cpack_rpm: the RPM generator works and splits like the DEBs
# (diffcoll, diffcoll-devel), each with the licence and packager. Skipped
# without rpmbuild.
#   cpack_rpm.sh CPACK BUILD_DIR OUT_DIR MAINTAINER
set -eu
cpack=$1 build=$2 out=$3 maintainer=$4
command -v rpmbuild >/dev/null || { echo "rpmbuild not found: skipped"; exit 77; }
rm -rf "$out"
mkdir -p "$out"
cd "$build"
"$cpack" -G RPM -B "$out" --config "$build/CPackConfig.cmake" >"$out/cpack.log" 2>&1 \
  || { cat "$out/cpack.log"; echo "FAIL: cpack -G RPM"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }
runtime=$(ls "$out"/diffcoll-[0-9]*.rpm | head -n 1)
devel=$(ls "$out"/diffcoll-devel-*.rpm | head -n 1)
for rpm in "$out"/*.rpm; do
  echo "== $(basename "$rpm")"
  rpm -qp --requires "$rpm" 2>/dev/null | sed 's/^/  requires: /'
  rpm -qpl "$rpm" 2>/dev/null | grep -v '/html/.' | sed 's/^/  /'
done
rpm -qpl "$runtime" 2>/dev/null | grep -q '/libdiffcoll\.so\.0$' || fail "diffcoll lacks libdiffcoll.so.0"
rpm -qpl "$runtime" 2>/dev/null | grep -q '\.h$' && fail "diffcoll ships a header"
rpm -qpl "$devel" 2>/dev/null | grep -q '/include/diffcoll/diffcoll\.h$' || fail "diffcoll-devel lacks the header"
rpm -qpl "$devel" 2>/dev/null | grep -q '/libdiffcoll\.so$' || fail "diffcoll-devel lacks libdiffcoll.so"
rpm -qpl "$devel" 2>/dev/null | grep -q '/diffcoll\.pc$' || fail "diffcoll-devel lacks diffcoll.pc"
rpm -qp --requires "$runtime" 2>/dev/null | grep -q 'libgloo\.so\.0' || fail "diffcoll does not require libgloo.so.0"
for rpm in "$out"/*.rpm; do
  [ "$(rpm -qp --qf '%{LICENSE}' "$rpm" 2>/dev/null)" = BSD-3-Clause ] || fail "$(basename "$rpm"): License is not BSD-3-Clause"
  [ "$(rpm -qp --qf '%{PACKAGER}' "$rpm" 2>/dev/null)" = "$maintainer" ] || fail "$(basename "$rpm"): Packager is not $maintainer"
done
echo "cpack_rpm: OK"
