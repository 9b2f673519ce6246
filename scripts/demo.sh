#!/usr/bin/env bash
# Installs what is missing, builds diffcoll and runs the demo (4 ranks as
# processes on the host backend).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target diffcoll_demo
./build/examples/diffcoll_demo "$@"
