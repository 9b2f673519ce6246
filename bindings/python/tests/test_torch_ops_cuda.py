# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""diffcoll.torch on GPUs, at 1 rank and at 2 and 4 ranks (ranks beyond the
GPU count share them, each with its own NCCL_HOSTID):

* every operator under torch.compile(fullgraph=True) (inductor) equals the
  same function run eagerly, with no graph break (torch_ops_worker.py);
* the DiT-like block of examples/python/compiled_block.py compiles to one
  graph with no break, equals eager and the single-process block, and its
  compiled form replays from a CUDA graph to eager's result.

Each case runs its ranks under ``python3 -m torch.distributed.run``. Skips
without PyTorch >= 2.4 with CUDA, or with a diffcoll built without CUDA.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch.cuda.is_available() is False: no CUDA device for PyTorch", allow_module_level=True)

import diffcoll  # noqa: E402
import diffcoll.torch as dct  # noqa: E402

if not dct.COMPILABLE:
    pytest.skip(dct.UNAVAILABLE_REASON, allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "torch_ops_worker.py")
EXAMPLE = os.path.abspath(os.path.join(HERE, "..", "..", "..", "examples", "python", "compiled_block.py"))


@pytest.fixture(scope="module", autouse=True)
def diffcoll_with_cuda():
    try:
        diffcoll.Comm.create("local://torch-ops-cuda-probe", 0, 1, device_id=0).close()
    except diffcoll.UnsupportedError as e:
        pytest.skip(f"diffcoll was built without CUDA: {e}")


def torchrun(tmp_path, ranks: int, script: str, *args: str) -> str:
    """Runs ``script`` on ``ranks`` ranks; returns its output, failing the test
    with it when a rank fails."""
    env = dict(os.environ, DIFFCOLL_STORE=f"file://{tmp_path}/store", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
           script, *args]
    try:
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=900)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{ranks} ranks did not finish in 900 s:\n{e.output}")
    print(done.stdout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-8000:]}"
    return done.stdout


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_every_operator_compiles_whole_and_equals_eager(tmp_path, ranks):
    out = torchrun(tmp_path, ranks, WORKER)
    assert "FAIL" not in out
    assert out.count("rank 0: ok ") == 15 - (ranks == 1), out  # send/recv needs two ranks


@pytest.mark.parametrize("ranks,args", [(1, ()), (2, ("--tp", "2")), (4, ()), (4, ("--tp", "2"))],
                         ids=["1", "2-tp2", "4-ulysses4", "4-tp2-ulysses2"])
def test_compiled_dit_block_replays_in_a_cuda_graph(tmp_path, ranks, args):
    out = torchrun(tmp_path, ranks, EXAMPLE, *args)
    assert "0 graph breaks; compiled equals eager; CUDA graph replay equals eager" in out, out
