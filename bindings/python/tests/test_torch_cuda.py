# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""PyTorch CUDA tensors through the Python bindings (world size 1, one GPU).

Runs only where ``torch`` imports and ``torch.cuda.is_available()``; skipped
as a whole otherwise (and when diffcoll was built without CUDA). Tensors are
passed as they are: through ``__dlpack__`` (the default for torch tensors)
and ``__cuda_array_interface__`` (a wrapper that exposes only that), with
contiguous, transposed (``t.T``, a dense permutation: no packing) and sliced
(``t[:, ::2]``: packed and unpacked) layouts. Every operation is enqueued on
``torch.cuda.current_stream().cuda_stream`` inside a side stream, and checked
with torch on that same stream.

Written for PyTorch >= 2.3 (``init_process_group(device_id=...)``) on Python
3.12; ``Comm.from_torch`` needs ``ProcessGroupNCCL._comm_ptr()``.
"""
from __future__ import annotations

import os
import uuid

import pytest

try:
    import torch
except Exception as e:  # noqa: BLE001 - ImportError, or a broken CUDA install
    pytest.skip(f"PyTorch is not importable: {e}", allow_module_level=True)
if not torch.cuda.is_available():
    pytest.skip("torch.cuda.is_available() is False: no CUDA device for PyTorch", allow_module_level=True)

import diffcoll  # noqa: E402


class CudaArrayInterfaceOnly:
    """Exposes only ``__cuda_array_interface__`` of a torch tensor (no __dlpack__)."""

    def __init__(self, t: "torch.Tensor") -> None:
        self.t = t  # keeps the memory alive
        self.__cuda_array_interface__ = t.__cuda_array_interface__


@pytest.fixture(scope="module")
def comm():
    """A world of one rank with a device side on GPU 0."""
    torch.cuda.set_device(0)
    try:
        c = diffcoll.Comm.create("local://torchcuda", 0, 1, device_id=0)
    except diffcoll.UnsupportedError as e:
        pytest.skip(f"diffcoll was built without CUDA: {e}")
    with c:
        yield c
        torch.cuda.synchronize()


@pytest.fixture
def stream():
    """Runs the test on a side stream (so that the stream handle matters) and
    yields its cudaStream_t, i.e. torch.cuda.current_stream().cuda_stream."""
    side = torch.cuda.Stream(device=0)
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        handle = torch.cuda.current_stream().cuda_stream
        assert handle == side.cuda_stream and handle != 0
        yield handle
    side.synchronize()


def base(shape=(4, 6), dtype=torch.float32) -> "torch.Tensor":
    n = 1
    for s in shape:
        n *= s
    return (torch.arange(n, device="cuda", dtype=torch.float32).reshape(shape) * 0.5 - 3).to(dtype)


# ---------------------------------------------------------------- all_reduce


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_all_reduce_premul_sum_contiguous_doubles_in_place(comm, stream, dtype):
    t = base(dtype=dtype)
    expected = t * 2
    comm.reset_stats()
    assert comm.all_reduce(t, op="premul_sum", scalar=2.0, stream=stream) is t
    assert torch.equal(t, expected)
    s = comm.stats()
    assert s.bytes_packed == 0 and s.bytes_unpacked == 0 and s.ops == 1


def test_all_reduce_transposed_is_used_in_place(comm, stream):
    a = base()
    expected = a * 2
    view = a.T  # a dense permutation of a contiguous block
    assert not view.is_contiguous()
    comm.reset_stats()
    assert comm.all_reduce(view, op="premul_sum", scalar=2.0, stream=stream) is view
    assert torch.equal(a, expected)
    s = comm.stats()
    assert s.bytes_packed == 0 and s.bytes_unpacked == 0


def test_all_reduce_sliced_view_is_packed_and_gaps_untouched(comm, stream):
    a = base()
    before = a.clone()
    view = a[:, ::2]
    comm.reset_stats()
    comm.all_reduce(view, op="premul_sum", scalar=2.0, stream=stream)
    assert torch.equal(a[:, ::2], before[:, ::2] * 2)
    assert torch.equal(a[:, 1::2], before[:, 1::2])
    s = comm.stats()
    nbytes = view.numel() * view.element_size()
    assert s.bytes_packed == nbytes and s.bytes_unpacked == nbytes


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_all_reduce_through_cuda_array_interface(comm, stream, layout):
    a = base()
    before = a.clone()
    view = {"contiguous": a, "transposed": a.T, "sliced": a[:, ::2]}[layout]
    comm.reset_stats()
    comm.all_reduce(CudaArrayInterfaceOnly(view), op="premul_sum", scalar=2.0, stream=stream)
    if layout == "sliced":
        assert torch.equal(a[:, ::2], before[:, ::2] * 2)
        assert torch.equal(a[:, 1::2], before[:, 1::2])
        assert comm.stats().bytes_packed > 0
    else:
        assert torch.equal(a, before * 2)
        assert comm.stats().bytes_packed == 0


# ---------------------------------------------------------------- all_gather


def test_all_gather_into_transposed_output(comm, stream):
    x = base()
    out = torch.full((6, 4), float("nan"), device="cuda").T  # shape (4, 6), strides (1, 4)
    assert comm.all_gather(x, out, axis=0, stream=stream) is out
    assert torch.equal(out, x)


def test_all_gather_transposed_input_into_sliced_output(comm, stream):
    x = base((6, 4)).T  # (4, 6), not contiguous
    holder = torch.zeros(4, 12, device="cuda")
    out = holder[:, ::2]
    comm.reset_stats()
    comm.all_gather(x, out, axis=1, stream=stream)
    assert torch.equal(out, x)
    assert torch.equal(holder[:, 1::2], torch.zeros(4, 6, device="cuda"))
    assert comm.stats().bytes_unpacked > 0


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fp8_all_gather_is_the_documented_arithmetic_in_torch_float8(comm, stream, fmt, dtype):
    """The device kernels' FP8 against the same arithmetic in torch (its own
    float8 casts): scale = amax / F per (batch, 4-token block, head) over D,
    x' = dtype(float(fp8(x * (F / amax))) * scale), bit for bit."""
    f8, top = (torch.float8_e4m3fn, 448.0) if fmt == "fp8_e4m3" else (torch.float8_e5m2, 57344.0)
    gen = torch.Generator(device="cuda").manual_seed(3)
    x = (torch.randn(2, 16, 3, 128, device="cuda", generator=gen) * 8).to(dtype)  # [B, S, H, D]
    x[1, 4:8, 2] = 0  # an all-zero group
    out = torch.full_like(x, float("nan"))
    comm.all_gather(x, out, axis=1, wire_format=fmt, scale_block=4, stream=stream)
    xf = x.float().view(2, 4, 4, 3, 128)  # [B, block, token, H, D]
    amax = xf.abs().amax(dim=(2, 4), keepdim=True)
    # Correctly rounded divisions, as the kernels do (__fdiv_rn): PyTorch
    # computes `number / tensor` as the tensor's reciprocal times the number,
    # and may divide by a number as a multiplication by its reciprocal; one
    # ulp off in the inverse moves values next to a rounding tie to the other
    # code (seen on an H200: 294 of 12288 e4m3 elements).
    top_t = torch.full_like(amax, top)
    scale = torch.div(amax, top_t)
    inverse = torch.where(amax > 0, torch.div(top_t, amax), torch.zeros_like(amax))
    scaled = (xf * inverse).view_as(x)
    expected = (scaled.view_as(xf).to(f8).float() * scale).to(dtype).view_as(x)
    differ = (out != expected).nonzero()
    if len(differ):
        i = tuple(differ[0].tolist())
        pytest.fail(f"{len(differ)} of {out.numel()} elements differ; the first at {i}: x = "
                    f"{x[i].item()!r}, x * F / amax = {scaled[i].item()!r}, diffcoll "
                    f"{out[i].item()!r}, torch {expected[i].item()!r}")


# ---------------------------------------------------------------- halo


@pytest.mark.parametrize("channels_last", [False, True])
def test_halo_exchange_into_one_rank_replicate(comm, stream, channels_last):
    x = torch.randn(2, 3, 8, 5, device="cuda")
    padded = torch.full((2, 3, 10, 5), float("nan"), device="cuda")
    if channels_last:
        padded = padded.to(memory_format=torch.channels_last)
    with diffcoll.HaloPlan(comm, row_before=1, row_after=1, row_boundary="replicate") as plan:
        plan.exchange_into(x, padded, stream=stream)
        expected = torch.nn.functional.pad(x, (0, 0, 1, 1), mode="replicate")
        assert torch.equal(padded, expected)


# ---------------------------------------------------------------- torch.distributed


def test_from_torch_wraps_the_nccl_process_group(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_nccl_available():
        pytest.skip("this PyTorch has no torch.distributed NCCL backend")
    if dist.is_initialized():
        pytest.skip("a default process group already exists in this process")
    torch.cuda.set_device(0)
    store = dist.FileStore(os.fspath(tmp_path / "filestore"), 1)
    dist.init_process_group(
        "nccl", store=store, rank=0, world_size=1, device_id=torch.device("cuda", 0)
    )
    try:
        backend = dist.group.WORLD._get_backend(torch.device("cuda", 0))
        if not callable(getattr(backend, "_comm_ptr", None)):
            pytest.skip(
                f"{type(backend).__name__} of PyTorch {torch.__version__} does not expose "
                "_comm_ptr(), which Comm.from_torch needs to reach the ncclComm_t"
            )
        warm = torch.ones(8, device="cuda")
        dist.all_reduce(warm)  # the NCCL communicator surely exists now
        torch.cuda.synchronize()
        rendezvous = f"local://torchcuda-from-torch-{uuid.uuid4().hex}"
        with diffcoll.Comm.from_torch(dist.group.WORLD, rendezvous) as c:
            assert (c.rank, c.size) == (0, 1)
            s = torch.cuda.current_stream().cuda_stream
            t = base()
            expected = t * 2
            c.all_reduce(t, op="premul_sum", scalar=2.0, stream=s)
            assert torch.equal(t, expected)
            view = t.T
            c.reset_stats()
            c.all_reduce(view, op="sum", stream=s)  # one rank: unchanged, in place
            assert torch.equal(t, expected) and c.stats().bytes_packed == 0
            torch.cuda.synchronize()
        # PyTorch's own collectives still work on the group afterwards.
        dist.all_reduce(warm)
        torch.cuda.synchronize()
        assert torch.equal(warm, torch.ones(8, device="cuda"))
    finally:
        dist.destroy_process_group()
