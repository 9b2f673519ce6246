# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""PyTorch tensors described straight from the tensor (data_ptr, shape,
stride, dtype, device) instead of through a DLPack capsule per call: the
descriptor equals the one DLPack gives, every Comm method takes torch
tensors of any strides through it, and what cannot work is refused."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (python3-torch)")

import numpy as np  # noqa: E402

import diffcoll  # noqa: E402
from diffcoll._tensor import _from_dlpack, _raw, describe  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64,
          torch.int8, torch.uint8, torch.int32, torch.int64]


def views(dtype):
    """Tensors of every layout the collectives see, named."""
    base = (torch.arange(2 * 3 * 4 * 5) % 100).to(dtype).reshape(2, 3, 4, 5)
    return {
        "contiguous": base,
        "transposed": base.transpose(1, 3),
        "sliced": base[:, 1:, ::2],
        "offset": base.reshape(-1)[7:31].view(4, 6),
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "expanded": torch.zeros(3, 1, dtype=dtype).expand(3, 4),
        "scalar": base[1, 2, 3, 4],
        "empty": base[:, :0],
    }


def meaningful(d):
    """A descriptor without the strides of dimensions of extent <= 1 (which
    address nothing, and which DLPack exports normalised)."""
    strides = tuple(s if n > 1 else None for n, s in zip(d.shape, d.strides))
    return d._replace(shape=tuple(d.shape), strides=strides)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_descriptor_equals_dlpack(dtype):
    for name, t in views(dtype).items():
        fast, keep = describe(t, name, writable=True)
        reference = _raw(_from_dlpack(t, name, None)[0], name)
        assert keep is t
        assert meaningful(fast) == meaningful(reference), name


def test_no_capsule_per_call():
    class NoDLPack(torch.Tensor):
        def __dlpack__(self, stream=None):
            raise AssertionError("a DLPack capsule was made")

    t = torch.zeros(4, 6).as_subclass(NoDLPack)[:, ::2]
    d, _ = describe(t, "t", writable=True)
    assert (d.data, tuple(d.shape), tuple(d.strides)) == (t.data_ptr(), (4, 3), (6, 2))


def test_refused_tensors():
    with pytest.raises(diffcoll.InvalidArgumentError, match="dtype torch.complex64"):
        describe(torch.zeros(3, dtype=torch.complex64), "x", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="dtype torch.bool"):
        describe(torch.zeros(3, dtype=torch.bool), "x", writable=False)
    with pytest.raises(diffcoll.UnsupportedError, match="meta"):
        describe(torch.zeros(3, device="meta"), "x", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="negative view"):
        describe(torch._neg_view(torch.ones(3)), "x", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="at most 8"):
        describe(torch.zeros((1,) * 9), "x", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="x:"):
        describe(torch.zeros(3, 3).to_sparse(), "x", writable=False)


def random(shape, rank, dtype=torch.float32):
    g = torch.Generator().manual_seed(1000 + rank)
    return torch.randint(-8, 8, shape, generator=g).to(dtype)


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("layout", ["transposed", "sliced", "channels_last"])
def test_comm_methods_take_torch_views_in_place(ranks, size, layout):
    def view_of(a):
        return {"transposed": a.transpose(0, 2), "sliced": a[:, ::2],
                "channels_last": a.contiguous(memory_format=torch.channels_last)}[layout]

    def body(comm):
        a = random((2, 6, 4, 3), comm.rank)
        v = view_of(a)
        before = a.clone()
        comm.reset_stats()
        assert comm.all_reduce(v, op="premul_sum", scalar=comm.rank + 1.0) is v
        dense = layout != "sliced"
        assert (comm.stats().bytes_packed == 0) == dense
        return before, v, a

    results = ranks(size, body)
    expected = sum((r + 1.0) * results[r][0] for r in range(size))
    for rank, (before, v, a) in enumerate(results):
        torch.testing.assert_close(v, view_of(expected), rtol=0, atol=0)
        if layout == "sliced":  # the gaps are not touched
            torch.testing.assert_close(a[:, 1::2], before[:, 1::2], rtol=0, atol=0)


@pytest.mark.parametrize("size", [2, 3])
def test_ulysses_of_strided_qkv_torch(ranks, size):
    heads, dim, seq = 6, 4, 7  # uneven sequence split

    def whole(t):
        return random((1, seq, 3, heads, dim), 99 + t)

    def body(comm):
        start, length = diffcoll.split_extent(seq, size, comm.rank)
        qkv = torch.stack([whole(0), whole(1)])[:, :, start:start + length]  # [2, 1, S_r, 3, H, D]
        q, k, v = qkv[0].unbind(2)  # strided views of one projection
        h0, hn = diffcoll.split_extent(heads, size, comm.rank)
        outs = [torch.empty(1, hn, seq, dim).transpose(1, 2) for _ in range(3)]  # [1, S, H_r, D] views
        comm.ulysses_all_to_all([q, k, v], outs, seq_axis=1, head_axis=2)
        return h0, hn, outs

    for h0, hn, outs in ranks(size, body):
        for i, o in enumerate(outs):
            torch.testing.assert_close(o, whole(0)[:, :, i, h0:h0 + hn], rtol=0, atol=0)


def test_torch_and_numpy_share_memory_through_both_paths(ranks):
    # A tensor made from a numpy array: the torch path writes where numpy reads.
    def body(comm):
        a = np.arange(12, dtype=np.float32).reshape(3, 4) + comm.rank
        comm.all_reduce(torch.from_numpy(a).T)
        return a

    for a in ranks(2, body):
        np.testing.assert_array_equal(a, 2 * np.arange(12, dtype=np.float32).reshape(3, 4) + 1)
