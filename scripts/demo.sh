#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Installs what is missing, builds diffcoll and runs the demo: one rank
# (process) per GPU where there are GPUs, else 4 ranks on the host backend.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target diffcoll_demo
./build/examples/diffcoll_demo "$@"
