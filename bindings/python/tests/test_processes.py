# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Ranks as separate processes meeting through a file:// store."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mp_worker.py")


def run_processes(tmp_path, size: int, scenario: str) -> None:
    rendezvous = f"file://{tmp_path}/store"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, rendezvous, str(rank), str(size), scenario],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(size)
    ]
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("worker processes did not finish")
        outputs.append(out)
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{out}"


@pytest.mark.parametrize("size", [2, 3])
def test_collectives_across_processes(tmp_path, size):
    run_processes(tmp_path, size, "collectives")


def test_errors_across_processes(tmp_path):
    run_processes(tmp_path, 2, "errors")
