# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Shared helpers: multi-rank runs with ranks as threads of this process."""
from __future__ import annotations

import os
import sys
import threading
import uuid
from typing import Any, Callable, List, Optional

import pytest

# Run from a source checkout without CTest: find the package next to tests/.
_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.join(_HERE, "..") not in sys.path:
    sys.path.insert(0, os.path.abspath(os.path.join(_HERE, "..")))

import diffcoll  # noqa: E402

#: The public header, for the drift tests.
HEADER = os.path.abspath(os.path.join(_HERE, "..", "..", "..", "capi", "include", "diffcoll", "diffcoll.h"))


def run_ranks(
    size: int,
    fn: Callable[[diffcoll.Comm], Any],
    *,
    timeout_ms: int = 20000,
    check: Optional[bool] = None,
) -> List[Any]:
    """Runs fn(comm) on `size` ranks (threads, local:// rendezvous); returns
    the per-rank results, re-raising the first rank's exception if any."""
    rendezvous = f"local://pytest-{uuid.uuid4().hex}"
    results: List[Any] = [None] * size
    errors: List[Optional[BaseException]] = [None] * size

    def body(rank: int) -> None:
        try:
            with diffcoll.Comm.create(rendezvous, rank, size, timeout_ms=timeout_ms, check=check) as comm:
                # Make sure every rank has finished creating the communicator
                # before any rank can close it: a rank that closes right after
                # creating can fail a peer still inside diffcoll_comm_create
                # ("Connection closed by peer"; core issue, reported).
                comm.barrier()
                results[rank] = fn(comm)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[rank] = e

    threads = [threading.Thread(target=body, args=(r,), daemon=True) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_ms / 1000 + 30)
    if any(t.is_alive() for t in threads):
        pytest.fail("ranks did not finish (deadlock? is the GIL released by the SWIG module?)")
    failed = [e for e in errors if e is not None]
    if failed:
        # A rank that fails makes its peers fail with RemoteError: report the
        # original failure first.
        failed.sort(key=lambda e: isinstance(e, diffcoll.RemoteError))
        raise failed[0]
    return results


@pytest.fixture
def ranks():
    """The run_ranks helper as a fixture."""
    return run_ranks
