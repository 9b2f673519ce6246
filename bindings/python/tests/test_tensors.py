# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""The tensor adapter: DLPack, __array_interface__, __cuda_array_interface__,
raw diffcoll.Tensor, stride conversion and the errors for what cannot work."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll
from diffcoll._tensor import describe


class DLPackOnly:
    """Exposes a numpy array through DLPack only."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __dlpack__(self, stream=None):
        return self.a.__dlpack__()

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


class ArrayInterfaceOnly:
    """Exposes a numpy array through __array_interface__ only."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    @property
    def __array_interface__(self):
        return self.a.__array_interface__


class FakeCuda:
    """Looks like a CUDA tensor (nothing is ever dereferenced on a host comm)."""

    __cuda_array_interface__ = {
        "shape": (4, 2),
        "typestr": "<f4",
        "data": (0x7F0000000000, False),
        "strides": None,
        "version": 3,
    }


@pytest.mark.parametrize("wrap", [lambda a: a, DLPackOnly, ArrayInterfaceOnly])
@pytest.mark.parametrize("view", ["plain", "T", "slice", "reversed"])
def test_descriptor_strides_in_elements(wrap, view):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    v = {"plain": a, "T": a.T, "slice": a[:, ::2], "reversed": a[::-1, 1::3]}[view]
    d, keep = describe(wrap(v), "t", writable=True)
    assert d.data == v.__array_interface__["data"][0]
    assert d.dtype == diffcoll.DType.FLOAT32 and d.device_type == diffcoll.DeviceType.CPU
    assert tuple(d.shape) == v.shape
    assert tuple(d.strides) == tuple(s // 4 for s in v.strides)


@pytest.mark.parametrize("wrap", [DLPackOnly, ArrayInterfaceOnly, lambda a: a])
def test_all_reduce_through_each_protocol(ranks, wrap):
    def body(comm):
        a = np.arange(12, dtype=np.float64).reshape(3, 4) + comm.rank
        comm.all_reduce(wrap(a[:, 1:3].T))
        return a

    for a in ranks(2, body):
        ref = np.arange(12, dtype=np.float64).reshape(3, 4)
        np.testing.assert_array_equal(a[:, 1:3], 2 * ref[:, 1:3] + 1)
        np.testing.assert_array_equal(a[:, [0, 3]], ref[:, [0, 3]] + (a[0, 0] - ref[0, 0]))


def test_raw_tensor(ranks):
    def body(comm):
        a = np.zeros(8, np.int32) + comm.rank + 1
        t = diffcoll.Tensor(a.ctypes.data, "int32", (4,), (2,), owner=a)
        comm.all_reduce(t)
        return comm.rank, a

    for rank, a in ranks(2, body):
        np.testing.assert_array_equal(a[::2], [3] * 4)
        np.testing.assert_array_equal(a[1::2], [rank + 1] * 4)


def test_scalar_and_empty(ranks):
    def body(comm):
        s = np.array(comm.rank + 1.0)
        comm.all_reduce(s)
        e = np.zeros((0, 3), np.float32)
        comm.all_reduce(e)
        return float(s)

    assert ranks(2, body) == [3.0, 3.0]


def test_non_multiple_strides_rejected():
    rec = np.zeros(4, dtype=[("x", "<f4"), ("y", "u1")])
    with pytest.raises(diffcoll.InvalidArgumentError, match="not multiples of the element size"):
        describe(rec["x"], "tensor", writable=True)


def test_read_only_output_rejected(ranks):
    ro = np.arange(4.0)
    ro.flags.writeable = False

    def body(comm):
        with pytest.raises(diffcoll.InvalidArgumentError, match="read-only"):
            comm.all_reduce(ro)
        out = np.zeros(8)
        comm.all_gather(ro, out)  # read-only inputs are fine
        return out

    for out in ranks(2, body):
        np.testing.assert_array_equal(out, np.concatenate([ro, ro]))


def test_unsupported_inputs():
    with pytest.raises(diffcoll.InvalidArgumentError, match="not a tensor"):
        describe([1.0, 2.0], "tensor", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="not supported"):
        describe(np.zeros(3, np.complex64), "tensor", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="not supported"):
        describe(np.zeros(3, bool), "tensor", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="at most 8"):
        describe(np.zeros((1,) * 9, np.float32), "tensor", writable=False)
    with pytest.raises(diffcoll.InvalidArgumentError, match="byte order"):
        describe(np.zeros(3, ">f4"), "tensor", writable=False)


def test_fake_cuda_descriptor():
    d, _ = describe(FakeCuda(), "tensor", writable=True, cuda_device=3)
    assert d.device_type == diffcoll.DeviceType.CUDA and d.device_id == 3
    assert d.data == 0x7F0000000000 and tuple(d.strides) == (2, 1)
