#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# packaging.symbols: the symbols file of libdiffcoll0 lists exactly what the
# library exports (nm -D --defined-only), so an API added without updating
# packaging/libdiffcoll0.symbols (or a symbol leaking out) fails.
#   check_symbols.sh LIBRARY SYMBOLS_FILE VERSION
set -eu
lib=$1 symbols=$2 version=$3
command -v nm >/dev/null || { echo "nm (binutils) not found: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

head -n 1 "$symbols" | grep -Eq '^libdiffcoll\.so\.0 libdiffcoll0 #MINVER#$' \
  || { echo "FAIL: first line of $symbols must be 'libdiffcoll.so.0 libdiffcoll0 #MINVER#'"; exit 1; }
soname=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libdiffcoll.so.0 ] || { echo "FAIL: soname of $lib is '$soname'"; exit 1; }
# Symbol lines: " name@VERSION minver" (dpkg-gensymbols style); "* Field: value"
# lines are meta-information (Build-Depends-Package).
bad=$(tail -n +2 "$symbols" | grep -Ev '^ [A-Za-z0-9_]+@[A-Za-z0-9_.]+ [0-9][0-9A-Za-z.+~-]*$|^\* [A-Za-z-]+: ' || true)
[ -z "$bad" ] || { echo "FAIL: malformed lines in $symbols:"; echo "$bad"; exit 1; }

tail -n +2 "$symbols" | grep '^ ' | awk '{print $1}' | LC_ALL=C sort >"$tmp/listed"
# "0000 T diffcoll_x@@DIFFCOLL_0" and "0000 A DIFFCOLL_0" -> name@VERSION
nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@@/@/' \
  | awk '/@/ {print; next} {print $0 "@" $0}' | LC_ALL=C sort >"$tmp/exported"

if ! cmp -s "$tmp/listed" "$tmp/exported"; then
  echo "FAIL: $symbols does not match the symbols $lib exports."
  echo "Exported but not listed (add ' name@DIFFCOLL_0 <first version>'):"
  LC_ALL=C comm -13 "$tmp/listed" "$tmp/exported" | sed 's/^/  /'
  echo "Listed but not exported (removing a symbol breaks the ABI):"
  LC_ALL=C comm -23 "$tmp/listed" "$tmp/exported" | sed 's/^/  /'
  exit 1
fi
if command -v dpkg-gensymbols >/dev/null 2>&1; then
  # dpkg's own check: same symbols, nothing lost, nothing new.
  mkdir -p "$tmp/pkg/DEBIAN" "$tmp/pkg/usr/lib"
  cp "$lib" "$tmp/pkg/usr/lib/libdiffcoll.so.0"
  cp "$symbols" "$tmp/symbols.in"
  (cd "$tmp" && dpkg-gensymbols -plibdiffcoll0 -v"$version" -Ppkg -Isymbols.in -Ogenerated \
     -c4 -q >gensymbols.log 2>&1) \
    || { echo "FAIL: dpkg-gensymbols -c4 disagrees:"; cat "$tmp/gensymbols.log"; exit 1; }
fi
echo "symbols: $(wc -l <"$tmp/listed") symbols match $symbols"
