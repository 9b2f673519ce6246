#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Installs, with apt, whatever of diffcoll's build and test dependencies this
# Debian machine lacks. Idempotent: does nothing when all are present.
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libgloo-dev libhiredis-dev redis-server   # host backend, Redis rendezvous store
  libgtest-dev libgmock-dev                 # C++ tests
  swig python3-dev python3-numpy python3-pytest golang-go bindgen   # bindings
  python3-torch                             # examples/pipeline (CPU PyTorch)
  doxygen abigail-tools lintian rpm dpkg-dev file binutils        # packaging, ABI
  clang                                                            # fuzzing (libFuzzer)
  iproute2 valgrind                                                # many-host and soak tests
)
command -v cargo >/dev/null 2>&1 || packages+=(cargo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
