#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Compare a built libdiffcoll.so.0 with the committed ABI baseline
# (packaging/abi/libdiffcoll.so.0.abi) using libabigail's abidiff, counting
# only types of the public header.
#
#   check-abi.sh [--baseline FILE] [--headers-dir DIR]... LIBRARY
#
# Exit status:
#   0   compatible: no change, or only additions (new functions, enumerators
#       appended to enums, fields appended to the extensible structs listed in
#       diffcoll.abignore); the report of the additions is printed
#   1   an incompatible change (abidiff's ABIDIFF_ABI_INCOMPATIBLE_CHANGE bit,
#       e.g. a removed function or a changed soname) or any other change of a
#       public type or function, which libabigail cannot prove compatible
#       (abidiff sets only ABIDIFF_ABI_CHANGE for those, e.g. a field
#       inserted into diffcoll_tensor_t); the report is printed
#   2   usage or tool error
#   77  not checkable here: abidiff missing, or LIBRARY has no debug info
#       (build with -g: the host and default presets use RelWithDebInfo)
#
# The ABI of soname libdiffcoll.so.0 never changes incompatibly once released;
# the baseline is regenerated (packaging/abi/update-baseline.sh) only with a
# soname bump, or to record the API as it stands before its first release.
set -u
here=$(cd "$(dirname "$0")" && pwd)
baseline=$here/libdiffcoll.so.0.abi
suppressions=$here/diffcoll.abignore
headers=""
lib=""
while [ $# -gt 0 ]; do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --headers-dir) headers="$headers --hd2 $2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "check-abi.sh: unknown option $1" >&2; exit 2 ;;
    *) lib=$1; shift ;;
  esac
done
[ -n "$lib" ] || { echo "usage: check-abi.sh [--baseline FILE] [--headers-dir DIR]... LIBRARY" >&2; exit 2; }
[ -n "$headers" ] || headers="--hd2 $here/../../capi/include/diffcoll"
[ -f "$lib" ] || { echo "check-abi.sh: $lib: no such file" >&2; exit 2; }
[ -f "$baseline" ] || { echo "check-abi.sh: $baseline: no such file" >&2; exit 2; }
command -v abidiff >/dev/null 2>&1 \
  || { echo "abidiff not found (Debian: apt-get install abigail-tools): skipped"; exit 77; }
if command -v readelf >/dev/null 2>&1 && ! readelf -S "$lib" | grep -q '\.debug_info'; then
  echo "$lib has no debug info, its ABI cannot be compared: skipped"
  exit 77
fi

# The baseline was written with the private types already dropped, so only
# the new library needs the public headers (--hd2).
# shellcheck disable=SC2086
report=$(abidiff --exported-interfaces-only --suppressions "$suppressions" $headers \
  "$baseline" "$lib" 2>&1)
full=$?
# shellcheck disable=SC2086
verdict_report=$(abidiff --exported-interfaces-only --no-added-syms \
  --suppressions "$suppressions" $headers "$baseline" "$lib" 2>&1)
verdict=$?

echo "abidiff $(basename "$baseline") $lib"
[ -z "$report" ] || echo "$report"
if [ $((full & 3)) -ne 0 ] || [ $((verdict & 3)) -ne 0 ]; then
  echo "check-abi.sh: abidiff failed (exit $full/$verdict)"
  [ -z "$verdict_report" ] || echo "$verdict_report"
  exit 2
fi
if [ $((verdict & 8)) -ne 0 ]; then
  echo "ABI CHECK FAILED: incompatible ABI change (abidiff exit $verdict)."
  echo "(An intended break needs a new soname; then, or while the API has never been"
  echo "released, record the new ABI with packaging/abi/update-baseline.sh LIBRARY.)"
  exit 1
fi
if [ $((verdict & 4)) -ne 0 ]; then
  echo "ABI CHECK FAILED: public types or functions changed (abidiff exit $verdict)."
  echo "Only additions are allowed within soname libdiffcoll.so.0: new functions,"
  echo "new enumerators, fields appended to extensible structs (diffcoll.abignore)."
  echo "(An intended break needs a new soname; then, or while the API has never been"
  echo "released, record the new ABI with packaging/abi/update-baseline.sh LIBRARY.)"
  exit 1
fi
if [ "$full" -ne 0 ]; then
  echo "ABI check passed: compatible additions only."
else
  echo "ABI check passed: no ABI change."
fi
exit 0
