#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""diffcoll on PyTorch CUDA tensors, one process per rank.

  torchrun --nproc-per-node=N examples/python/torch_gpu.py

Rank r runs on GPU r % GPUs: with more ranks than GPUs they share them, each
rank its own NCCL host joined to the others over loopback sockets (NCCL
refuses two ranks of one communicator on one GPU of one host).

diffcoll wraps the NCCL communicator of PyTorch's default process group
(``Comm.from_torch``), so both share one NCCL communicator, and every call is
enqueued on PyTorch's current stream. Each step is checked against PyTorch:

* an in-place all-reduce of a channels-last-3d latent (a dense view: no copy),
  equal to ``dist.all_reduce`` of a copy in the same layout;
* a halo exchange of a latent split along H into padded slabs, equal to the
  matching rows of the whole latent padded once with zeros;
* a CFG-parallel combine: each rank runs its own guidance branch and diffcoll
  combines on every rank; bitwise equal to the serial combine of all branches
  on one rank (same arithmetic order).

Needs the diffcoll package and its SWIG module on PYTHONPATH
(PYTHONPATH=<src>/bindings/python:<build>/bindings/python) and a diffcoll
built with CUDA.
"""
from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist

import diffcoll

LATENT = (1, 16, 5, 24, 40)  # [B, C, T, H, W]


def latent(seed: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(LATENT, generator=g).to(device=device, dtype=torch.bfloat16)


def channels_last_3d(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last_3d)


def all_reduce(comm: diffcoll.Comm, rank: int, device: torch.device) -> None:
    x = channels_last_3d(latent(rank, device))
    # torch reduces a dense tensor in its memory order too; from 3 ranks on,
    # the order in which NCCL adds the ranks' values depends on an element's
    # place in the buffer, so only the same layout gives the same bits.
    expected = x.clone()  # keeps channels_last_3d
    dist.all_reduce(expected)
    stream = torch.cuda.current_stream().cuda_stream
    comm.reset_stats()
    comm.all_reduce(x, stream=stream)
    assert torch.equal(x, expected), "all-reduce differs from torch"
    assert comm.stats().bytes_packed == 0, "a dense view was packed"
    if rank == 0:
        print(f"all-reduce of a channels-last-3d latent {tuple(x.shape)}: equal to torch, no copy")


def halo_exchange(comm: diffcoll.Comm, rank: int, size: int, device: torch.device) -> None:
    whole = latent(1000, device)  # every rank builds the same whole latent
    h = LATENT[3]
    begin, length = diffcoll.split_extent(h, size, rank)
    padded = torch.zeros(LATENT[:3] + (length + 2, LATENT[4]), dtype=whole.dtype, device=device)
    padded = channels_last_3d(padded)
    padded[:, :, :, 1:length + 1] = whole[:, :, :, begin:begin + length]
    with comm.halo_plan(row_axis=3) as plan:
        plan.exchange(padded, stream=torch.cuda.current_stream().cuda_stream)
    reference = torch.nn.functional.pad(whole, (0, 0, 1, 1))[:, :, :, begin:begin + length + 2]
    assert torch.equal(padded, reference), "halo differs from the padded whole latent"
    if rank == 0:
        print(f"halo exchange of {size} slabs along H: equal to the whole latent padded once")


def cfg_combine(comm: diffcoll.Comm, rank: int, size: int, device: torch.device) -> None:
    with diffcoll.CfgPolicy.standard(5.0, order="parallel") as policy:
        names = [name for name, _ in policy.branches]
        preds = {name: latent(2000 + i, device) for i, name in enumerate(names)}
        mine = policy.dispatch(size, rank)
        out = torch.empty(LATENT, dtype=torch.bfloat16, device=device)
        stream = torch.cuda.current_stream().cuda_stream
        comm.cfg_combine(policy, [preds[names[i]] for i in mine], out, stream=stream)
        serial = torch.empty_like(out)
        policy.combine_serial([preds[n] for n in names], serial, stream=stream)
        assert torch.equal(out.view(torch.int16), serial.view(torch.int16)), "parallel != serial"
        if rank == 0:
            print(f"CFG combine on {size} ranks: bitwise equal to the serial combine")


def main() -> None:
    rank = int(os.environ.get("RANK", 0))
    size = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29513")
    gpus = torch.cuda.device_count()
    if local_size > gpus:  # before NCCL starts
        os.environ["NCCL_HOSTID"] = f"diffcoll-example-rank-{rank}"
        os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
        os.environ.setdefault("NCCL_IB_DISABLE", "1")
    device = torch.device("cuda", local % gpus)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", rank=rank, world_size=size, device_id=device)
    box = [os.environ.get("DIFFCOLL_STORE") or "file://" + tempfile.mkdtemp(prefix="diffcoll-")]
    dist.broadcast_object_list(box, src=0)  # the host sides meet in rank 0's directory
    with diffcoll.Comm.from_torch(rendezvous=box[0]) as comm:
        all_reduce(comm, rank, device)
        halo_exchange(comm, rank, size, device)
        cfg_combine(comm, rank, size, device)
    torch.cuda.synchronize()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
