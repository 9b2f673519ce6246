#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Regenerate the ABI baseline from a built library (with debug info):
#   packaging/abi/update-baseline.sh build-host/libdiffcoll.so.0
# Only for a new soname (an intended ABI break), or to record the API as it
# stands before the first release: within a released soname the baseline stays
# as released, and check-abi.sh accepts additions against it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lib=${1:?usage: update-baseline.sh LIBRARY}
abidw --exported-interfaces-only --headers-dir "$here/../../capi/include/diffcoll" \
  --drop-private-types --no-corpus-path --no-comp-dir-path --short-locs \
  --out-file "$here/libdiffcoll.so.0.abi" "$lib"
echo "wrote $here/libdiffcoll.so.0.abi"
