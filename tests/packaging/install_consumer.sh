#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# packaging.install_consumer: `cmake --install` the build tree into a throwaway
# prefix, then build and run tests/packaging/consumer against that copy with
# find_package and with pkg-config.
#   install_consumer.sh BUILD_DIR CONSUMER_SRC WORK_DIR
set -eu
build=$1 src=$2 work=$3
. "$(dirname "$0")/consumer_lib.sh"
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
"$CMAKE" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log"; fail "cmake --install"; }
echo "== installed into $prefix:"
(cd "$prefix" && find . \( -type f -o -type l \) ! -path "./share/doc/*/html/*" | sort)
[ -L "$prefix/lib/libdiffcoll.so" ] || [ -n "$(find "$prefix" -name libdiffcoll.so -type l)" ] \
  || fail "no libdiffcoll.so development link"
build_consumers "$src" "$work" "$prefix"
echo "install_consumer: OK"
