# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Shared by install_consumer.sh and deb_consumer.sh (sourced, POSIX sh).
# build_consumers SRC WORK PREFIX [SYSROOT]: builds tests/packaging/consumer
# against the diffcoll installed under PREFIX three ways (CMake find_package,
# CMake pkg_check_modules, a plain cc line from pkg-config), checks that each
# binary resolves libdiffcoll.so.0 from PREFIX, and runs it. SYSROOT: PREFIX
# is an unpacked tree (dpkg -x) whose .pc file names its final prefix (/usr).

: "${CMAKE:=cmake}"
: "${CC:=cc}"

fail() { echo "FAIL: $*" >&2; exit 1; }

# check_and_run BINARY PREFIX
check_and_run() {
  resolved=$(ldd "$1" | sed -n 's/^[[:space:]]*libdiffcoll\.so\.0 => \([^ ]*\).*/\1/p')
  echo "  $1: libdiffcoll.so.0 => $resolved"
  case "$resolved" in
    "$2"/*) ;;
    *) fail "$1 does not use the libdiffcoll.so.0 under $2 (ldd: '$resolved')" ;;
  esac
  "$1" || fail "$1 failed"
}

build_consumers() {
  src=$1 work=$2 prefix=$3 sysroot=${4:-}
  pc=$(find "$prefix" -name diffcoll.pc | head -n 1)
  [ -n "$pc" ] || fail "no diffcoll.pc under $prefix"
  cfg=$(find "$prefix" -name diffcoll-config.cmake | head -n 1)
  [ -n "$cfg" ] || fail "no diffcoll-config.cmake under $prefix"
  pcdir=$(dirname "$pc")

  echo "== find_package(diffcoll) with CMAKE_PREFIX_PATH=$prefix"
  "$CMAKE" -S "$src" -B "$work/find_package" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_BUILD_TYPE=Release >"$work/find_package.log" 2>&1 \
    || { cat "$work/find_package.log"; fail "configure (find_package)"; }
  grep "diffcoll .* from" "$work/find_package.log"
  "$CMAKE" --build "$work/find_package" || fail "build (find_package)"
  check_and_run "$work/find_package/consumer" "$prefix"

  echo "== pkg_check_modules(diffcoll) with PKG_CONFIG_LIBDIR=$pcdir${sysroot:+ PKG_CONFIG_SYSROOT_DIR=$sysroot}"
  PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_PATH= PKG_CONFIG_SYSROOT_DIR=$sysroot "$CMAKE" -S "$src" -B "$work/pkg_config" \
    -DCMAKE_C_COMPILER="$CC" -DCONSUMER_USE_PKGCONFIG=ON -DCMAKE_BUILD_TYPE=Release \
    >"$work/pkg_config.log" 2>&1 \
    || { cat "$work/pkg_config.log"; fail "configure (pkg-config)"; }
  grep "from pkg-config" "$work/pkg_config.log"
  "$CMAKE" --build "$work/pkg_config" || fail "build (pkg-config)"
  check_and_run "$work/pkg_config/consumer" "$prefix"

  echo "== cc \$(pkg-config --cflags --libs diffcoll)"
  PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_PATH= PKG_CONFIG_SYSROOT_DIR=$sysroot
  export PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
  pkg-config --exists --print-errors "diffcoll >= 0.1" || fail "pkg-config cannot find diffcoll"
  cflags=$(pkg-config --cflags diffcoll) libs=$(pkg-config --libs diffcoll)
  libdir=$(pkg-config --variable=libdir diffcoll)
  echo "  cflags: $cflags  libs: $libs"
  # shellcheck disable=SC2086
  "$CC" -std=c99 -Wall -Werror -o "$work/consumer-cc" "$src/consumer.c" $cflags $libs \
    -pthread -Wl,-rpath,"$libdir" || fail "cc with pkg-config flags"
  unset PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
  check_and_run "$work/consumer-cc" "$prefix"
}
