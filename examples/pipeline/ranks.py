# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Ranks as processes: who this process is, its device, its communicators,
and starting N of them on one machine.

A rank learns its identity either from the command line (``--rank R --world
N --store DIR``, as :func:`launch` starts them: diffcoll and torch.distributed
meet in files under DIR) or from torchrun's environment (RANK, WORLD_SIZE,
LOCAL_RANK; rank 0 then makes the store directory and tells the others
through torch.distributed, and removes it at the end).

On GPUs a rank uses device ``local_rank % GPUs``. When there are more ranks
than GPUs, ranks share GPUs: each rank process gets its own NCCL host identity
(``NCCL_HOSTID=diffcoll-rank-<r>``, loopback sockets, no InfiniBand) before
its first NCCL call, so NCCL joins ranks on one GPU through its socket
transport. That mode is for correctness: its timings say nothing about GPUs
with one rank each.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Optional

import torch
import torch.distributed as dist

import diffcoll
from exchange import Exchange
from mesh import Degrees, Sizes

#: Bound on every blocking diffcoll call: rank 0 computes the reference while
#: the others may already wait in the next collective.
TIMEOUT_MS = 600_000


class Rank:
    """This process's rank, device and (lazily) communicators."""

    def __init__(self, rank: int, world: int, local_rank: int, store: Optional[str],
                 device: str) -> None:
        self.rank, self.world, self.store = rank, world, store
        self._torchrun = store is None  # else started by launch(): meet in files under store
        self.shares_gpu = False
        if device == "cuda":
            gpus = torch.cuda.device_count()
            if gpus == 0:
                raise SystemExit("--device cuda: no GPU is visible")
            if world > gpus:
                self.shares_gpu = True
                os.environ.update(NCCL_HOSTID=f"diffcoll-rank-{rank}", NCCL_SOCKET_IFNAME="lo",
                                  NCCL_IB_DISABLE="1")
            self.device = torch.device("cuda", local_rank % gpus)
            torch.cuda.set_device(self.device)
            # float32 means float32 (the tolerance's reference): no TF32.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        else:
            self.device = torch.device("cpu")
        self._diffcoll: Optional[diffcoll.Comm] = None
        self._own_store = False  # rank 0 under torchrun: remove the store at the end

    @classmethod
    def from_args(cls, rank: Optional[int], world: Optional[int], store: Optional[str],
                  device: str) -> "Rank":
        """From --rank/--world/--store, else from torchrun's environment."""
        if rank is not None:
            return cls(rank, world, rank, store, device)
        env = os.environ
        me = cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), None,
                 device)
        me.torch_world()
        box = [tempfile.mkdtemp(prefix="diffcoll-pipeline-") if me.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        me.store, me._own_store = box[0], me.rank == 0
        return me

    def torch_world(self) -> None:
        """The default torch.distributed group (NCCL on GPUs, Gloo on the host)."""
        if dist.is_initialized():
            return
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        if not self._torchrun:
            dist.init_process_group(backend, init_method=f"file://{self.store}/torch",
                                    rank=self.rank, world_size=self.world)
        else:
            dist.init_process_group(backend, rank=self.rank, world_size=self.world)

    def diffcoll_world(self) -> diffcoll.Comm:
        """diffcoll's world communicator (with an NCCL side on GPUs)."""
        if self._diffcoll is None:
            device_id = self.device.index if self.device.type == "cuda" else -1
            self._diffcoll = diffcoll.Comm.create(
                f"file://{self.store}/diffcoll", self.rank, self.world, device_id=device_id,
                timeout_ms=TIMEOUT_MS)
        return self._diffcoll

    def exchange(self, impl: str, sizes: Sizes, degrees: Degrees, dtype: torch.dtype) -> Exchange:
        """The exchange of ``impl`` ("diffcoll" or "torch") for a layout."""
        if impl == "diffcoll":
            from exchange_diffcoll import DiffcollExchange

            return DiffcollExchange(self.diffcoll_world(), sizes, degrees, dtype, self.device)
        if impl == "torch":
            from exchange_torch import TorchExchange

            self.torch_world()
            return TorchExchange(sizes, degrees, dtype, self.device)
        raise ValueError(f"unknown implementation {impl!r} (diffcoll, torch)")

    def close(self) -> None:
        if self._diffcoll is not None:
            self._diffcoll.close()
        if dist.is_initialized():
            dist.barrier()  # every rank is done with the store
            dist.destroy_process_group()
        if self._own_store:
            shutil.rmtree(self.store, ignore_errors=True)


def _rank_process(main: Callable[[int, int, str], int], rank: int, world: int, store: str) -> None:
    sys.exit(main(rank, world, store))


def launch(main: Callable[[int, int, str], int], world: int, timeout_s: float) -> int:
    """Runs ``main(rank, world, store)`` in a process per rank, forked from
    this one (which has imported PyTorch already, and has not touched CUDA),
    with a fresh store directory; returns 0 when every rank returns 0, else
    the first failure's exit status."""
    store = tempfile.mkdtemp(prefix="diffcoll-pipeline-")
    fork = multiprocessing.get_context("fork")
    try:
        procs = [fork.Process(target=_rank_process, args=(main, r, world, store))
                 for r in range(world)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout_s
        while any(p.is_alive() for p in procs):
            failed = any(p.exitcode not in (None, 0) for p in procs)
            if failed or time.monotonic() > deadline:
                time.sleep(2)  # let the others report what they saw
                for p in procs:
                    if p.is_alive():
                        p.kill()
                if not failed:
                    print(f"ranks did not finish within {timeout_s:.0f} s", file=sys.stderr)
                    return 1
                break
            time.sleep(0.05)
        for p in procs:
            p.join()
        return next((p.exitcode for p in procs if p.exitcode), 0)
    finally:
        shutil.rmtree(store, ignore_errors=True)
