#!/bin/sh
# packaging.deb_consumer: unpack the .deb packages made by packaging.cpack_deb
# with dpkg -x into a throwaway root, check the Debian split, then build and
# run tests/packaging/consumer against what they contain.
#   deb_consumer.sh DEB_DIR CONSUMER_SRC WORK_DIR
set -eu
debs=$1 src=$2 work=$3
. "$(dirname "$0")/consumer_lib.sh"
rm -rf "$work"
mkdir -p "$work/root"
root=$work/root

deb_of() {
  f=$(ls "$debs"/"$1"_*.deb 2>/dev/null | head -n 1)
  [ -n "$f" ] || fail "package $1 was not built (in $debs)"
  echo "$f"
}
# has DEB REGEX: the package ships a path matching REGEX
has() { dpkg-deb --contents "$1" | awk '{print $6}' | grep -Eq "$2" || fail "$(basename "$1") lacks $2"; }
hasnt() { ! dpkg-deb --contents "$1" | awk '{print $6}' | grep -Eq "$2" || fail "$(basename "$1") must not ship $2"; }

runtime=$(deb_of libdiffcoll0)
dev=$(deb_of libdiffcoll-dev)
has "$runtime" '/libdiffcoll\.so\.0$'
has "$runtime" '/libdiffcoll\.so\.0\.[0-9]+\.[0-9]+$'
hasnt "$runtime" '/libdiffcoll\.so$|\.h$|\.pc$|\.cmake$'
has "$dev" '/libdiffcoll\.so$'
has "$dev" '/include/diffcoll/diffcoll\.h$'
has "$dev" '/cmake/diffcoll/diffcoll-config\.cmake$'
has "$dev" '/cmake/diffcoll/diffcoll-config-version\.cmake$'
has "$dev" '/cmake/diffcoll/diffcoll-targets\.cmake$'
has "$dev" '/pkgconfig/diffcoll\.pc$'
hasnt "$dev" '/libdiffcoll\.so\.0'
dpkg-deb --field "$runtime" Depends | grep -q libgloo0 || fail "libdiffcoll0 does not depend on libgloo0"
dpkg-deb --field "$dev" Depends | grep -q "libdiffcoll0 (= " || fail "libdiffcoll-dev does not depend on libdiffcoll0 (= version)"
dpkg-deb --ctrl-tarfile "$runtime" | tar -t | grep -q '^\./symbols$' || fail "libdiffcoll0 has no DEBIAN/symbols"

for deb in "$debs"/*.deb; do
  dpkg -x "$deb" "$root"
done
build_consumers "$src" "$work" "$root/usr" "$root"
echo "deb_consumer: OK"
