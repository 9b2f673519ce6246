#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# packaging.deb_consumer: install the .deb packages made by packaging.cpack_deb
# with dpkg into a scratch root (its own dpkg database; the dependencies are
# the system's, so --force-depends), check the Debian split, the multiarch
# layout, the licence and the maintainer of each package, then build and run
# tests/packaging/consumer against the installed library (CMake find_package,
# pkg-config) and run a Python example against the installed python3-diffcoll.
#   deb_consumer.sh DEB_DIR CONSUMER_SRC WORK_DIR COPYRIGHT MAINTAINER PYTHON_EXAMPLE
set -eu
debs=$1 src=$2 work=$3 copyright=$4 maintainer=$5 py_example=$6
. "$(dirname "$0")/consumer_lib.sh"
command -v dpkg-architecture >/dev/null || { echo "dpkg-architecture not found (dpkg-dev): skipped"; exit 77; }
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
archlib=usr/lib/$multiarch  # not "libdir": consumer_lib.sh sets that
rm -rf "$work"
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
: >"$root/var/lib/dpkg/status"

deb_of() {
  f=$(ls "$debs"/"$1"_*.deb 2>/dev/null | head -n 1)
  [ -n "$f" ] || fail "package $1 was not built (in $debs)"
  echo "$f"
}
# has DEB REGEX: the package ships a path matching REGEX (paths start with ./)
has() { dpkg-deb --contents "$1" | awk '{print $6}' | grep -Eq "$2" || fail "$(basename "$1") lacks $2"; }
hasnt() { ! dpkg-deb --contents "$1" | awk '{print $6}' | grep -Eq "$2" || fail "$(basename "$1") must not ship $2"; }

runtime=$(deb_of libdiffcoll0)
dev=$(deb_of libdiffcoll-dev)
python=$(deb_of python3-diffcoll)
if dpkg-deb --contents "$runtime" | awk '{print $6}' | grep -q '^\./usr/lib/libdiffcoll\.so\.0$'; then
  fail "libdiffcoll0 installs to /usr/lib, not /$archlib: the build's cache says CMAKE_INSTALL_LIBDIR=lib (configured before multiarch was the default?); configure it with --fresh"
fi
has "$runtime" "^\./$archlib/libdiffcoll\.so\.0$"
has "$runtime" "^\./$archlib/libdiffcoll\.so\.0\.[0-9]+\.[0-9]+$"
hasnt "$runtime" '/libdiffcoll\.so$|\.h$|\.pc$|\.cmake$'
has "$dev" "^\./$archlib/libdiffcoll\.so$"
has "$dev" '^\./usr/include/diffcoll/diffcoll\.h$'
has "$dev" "^\./$archlib/cmake/diffcoll/diffcoll-config\.cmake$"
has "$dev" "^\./$archlib/cmake/diffcoll/diffcoll-config-version\.cmake$"
has "$dev" "^\./$archlib/cmake/diffcoll/diffcoll-targets\.cmake$"
has "$dev" "^\./$archlib/pkgconfig/diffcoll\.pc$"
hasnt "$dev" '/libdiffcoll\.so\.0'
has "$python" '^\./usr/lib/python3/dist-packages/diffcoll/__init__\.py$'
has "$python" '^\./usr/lib/python3/dist-packages/diffcoll/_diffcoll_c\..*\.so$'
for deb in "$runtime" "$dev" "$python"; do
  hasnt "$deb" '^\./usr/lib/[^/]+\.so|^\./usr/lib/(cmake|pkgconfig)/'  # not multiarch
done
dpkg-deb --field "$runtime" Depends | grep -q libgloo0 || fail "libdiffcoll0 does not depend on libgloo0"
dpkg-deb --field "$dev" Depends | grep -q "libdiffcoll0 (= " || fail "libdiffcoll-dev does not depend on libdiffcoll0 (= version)"
dpkg-deb --ctrl-tarfile "$runtime" | tar -t | grep -q '^\./symbols$' || fail "libdiffcoll0 has no DEBIAN/symbols"

case "$maintainer" in
  *@example.*|*@localhost*|"") fail "placeholder maintainer '$maintainer' (DIFFCOLL_PACKAGE_CONTACT)" ;;
esac
for deb in "$debs"/*.deb; do
  pkg=$(dpkg-deb --field "$deb" Package)
  got=$(dpkg-deb --field "$deb" Maintainer)
  [ "$got" = "$maintainer" ] || fail "$pkg: Maintainer '$got', want '$maintainer'"
  dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "./usr/share/doc/$pkg/copyright" >"$work/copyright.$pkg" \
    || fail "$pkg has no /usr/share/doc/$pkg/copyright"
  cmp -s "$work/copyright.$pkg" "$copyright" || fail "$pkg: its copyright file is not $copyright"
  grep -q '^License: BSD-3-Clause$' "$work/copyright.$pkg" || fail "$pkg: copyright names no BSD-3-Clause licence"
done
echo "== licence and maintainer: BSD-3-Clause, $maintainer in every package"

echo "== dpkg --root $root -i $(cd "$debs" && echo *.deb)"
dpkg --root="$root" --force-depends --force-not-root -i "$debs"/*.deb >"$work/dpkg.log" 2>&1 \
  || { cat "$work/dpkg.log"; fail "dpkg -i into the scratch root"; }
for deb in "$debs"/*.deb; do
  pkg=$(dpkg-deb --field "$deb" Package)
  dpkg-query --root="$root" -W -f '${Status}\n' "$pkg" | grep -q ' installed$' \
    || fail "$pkg is not installed in the scratch root"
done
[ -f "$root/var/lib/dpkg/info/libdiffcoll0.symbols" ] \
  || fail "dpkg did not register the symbols file of libdiffcoll0"

build_consumers "$src" "$work" "$root/usr" "$root"
grep -q "diffcoll .* from $root/$archlib/cmake/diffcoll" "$work/find_package.log" \
  || fail "find_package did not find the multiarch CMake package $root/$archlib/cmake/diffcoll"

# python3-diffcoll: Debian's python3 (the one it depends on) finds the package
# under dist-packages, and its extension loads the libdiffcoll.so.0 of the root.
py=/usr/bin/python3
site=$root/usr/lib/python3/dist-packages
if [ ! -x "$py" ] || ! "$py" -c "import numpy" 2>/dev/null; then
  echo "== python3-diffcoll: skipped (no /usr/bin/python3 with numpy)"
elif ! ls "$site"/diffcoll/_diffcoll_c."$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI"))')".so >/dev/null 2>&1; then
  echo "== python3-diffcoll: skipped (its extension is not for $py)"
else
  echo "== python3-diffcoll with PYTHONPATH=$site"
  loaded=$(env -u LD_LIBRARY_PATH PYTHONPATH="$site" PYTHONDONTWRITEBYTECODE=1 "$py" -c '
import diffcoll
print(diffcoll.__file__)
print(next(l.split()[-1] for l in open("/proc/self/maps") if "libdiffcoll.so" in l))
') || fail "import diffcoll from the installed python3-diffcoll"
  echo "$loaded" | sed 's/^/  /'
  case "$loaded" in
    "$site"/diffcoll/__init__.py*"$root/$archlib/libdiffcoll.so.0"*) ;;
    *) fail "diffcoll or libdiffcoll.so.0 was not loaded from the scratch root" ;;
  esac
  env -u LD_LIBRARY_PATH PYTHONPATH="$site" PYTHONDONTWRITEBYTECODE=1 "$py" "$py_example" \
    || fail "$py_example against the installed python3-diffcoll"
fi
echo "deb_consumer: OK"
