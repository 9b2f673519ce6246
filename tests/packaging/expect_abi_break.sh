#!/bin/sh
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# packaging.abi_break_detected: check-abi.sh must reject a library built from
# a test copy of the header with a field inserted in diffcoll_tensor_t.
#   expect_abi_break.sh CHECK_ABI_SH HEADERS_DIR LIBRARY
set -u
check=$1 headers=$2 lib=$3
out=$(sh "$check" --headers-dir "$headers" "$lib" 2>&1)
status=$?
echo "$out"
echo "check-abi.sh exit status: $status"
case $status in
  77) echo "skipped: the ABI cannot be checked here"; exit 77 ;;
  1) ;;
  *) echo "FAIL: expected exit status 1 (incompatible change)"; exit 1 ;;
esac
echo "$out" | grep -q "diffcoll_tensor_t" \
  || { echo "FAIL: the report does not name diffcoll_tensor_t"; exit 1; }
echo "$out" | grep -q "abi_break_test_field" \
  || { echo "FAIL: the report does not name the inserted field"; exit 1; }
echo "abi_break_detected: OK (the inserted field was reported as an ABI break)"
