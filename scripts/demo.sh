#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Installs what is missing, builds diffcoll and runs the demo: one rank
# (process) per GPU where there are GPUs, else 4 ranks on the host backend.
# Then the whole job: the end-to-end video pipeline (examples/pipeline) on 4
# ranks (CFG 2 x Ulysses 2, the decode split 4 ways) against the same job on
# one rank, on the GPUs where there are some (sharing them if fewer than 4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target diffcoll_demo diffcoll_c
./build/examples/diffcoll_demo "$@"
# The Python the bindings were built for (Debian's, with its python3-torch).
python=$(sed -n 's/^Python3_EXECUTABLE:FILEPATH=//p' build/CMakeCache.txt)
device=cpu
if [[ " $* " != *" --host "* ]] && nvidia-smi -L >/dev/null 2>&1 &&
   "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  device=cuda
fi
# (exit 77: no PyTorch for that Python, said and skipped)
PYTHONPATH=bindings/python:build/bindings/python \
  "$python" examples/pipeline/run.py --ranks 4 --device "$device" --layouts cfg2xulysses2 ||
  [ $? -eq 77 ]
