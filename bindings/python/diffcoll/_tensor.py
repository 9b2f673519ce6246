# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Describing Python tensors to the library without copying them.

Accepted, in this order of preference:

1. :class:`Tensor`, a raw description (address, dtype, shape, strides, device);
2. PyTorch tensors, read straight from the tensor (``data_ptr()``,
   ``shape``, ``stride()``, ``dtype``, device) once ``torch`` is imported:
   no DLPack capsule per call, which costs ten times the library call;
3. anything with ``__dlpack__`` (numpy >= 1.22, CuPy, JAX, ...): the
   capsule is parsed in place (never consumed, so the producer keeps
   ownership) and kept alive for the duration of the call;
4. anything with ``__cuda_array_interface__`` (CuPy, Numba);
5. anything with ``__array_interface__`` (numpy and look-alikes).

What crosses to the SWIG module is a :class:`TensorDesc`, a tuple that
bindings/swig/diffcoll.i turns into a ``diffcoll_tensor_t`` in C.

Strides may be anything the library accepts (transposed, sliced, negative,
zero); byte strides of the array interfaces are converted to element strides
and rejected with :class:`InvalidArgumentError` when they are not a multiple
of the element size. Nothing is ever copied: results land in the caller's
memory.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ._errors import InvalidArgumentError, UnsupportedError
from ._native import c
from ._types import DeviceType, DType

#: Anything the collectives accept as a tensor (see the module docstring).
TensorLike = Any

#: A CUDA stream: None (the legacy default stream), an integer cudaStream_t,
#: or an object with a ``cuda_stream`` (PyTorch) or ``ptr`` (CuPy) attribute.
StreamLike = Any

# DLPack device types and (code, bits) of its data types.
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13
_DL_DTYPES = {
    (0, 8): DType.INT8,
    (0, 32): DType.INT32,
    (0, 64): DType.INT64,
    (1, 8): DType.UINT8,
    (2, 16): DType.FLOAT16,
    (2, 32): DType.FLOAT32,
    (2, 64): DType.FLOAT64,
    (4, 16): DType.BFLOAT16,
}
# Array-interface type strings (without the byte-order character).
_TYPESTR = {
    "f2": DType.FLOAT16,
    "f4": DType.FLOAT32,
    "f8": DType.FLOAT64,
    "i1": DType.INT8,
    "u1": DType.UINT8,
    "i4": DType.INT32,
    "i8": DType.INT64,
}
_DTYPE_NAMES = {
    "float16": DType.FLOAT16,
    "half": DType.FLOAT16,
    "bfloat16": DType.BFLOAT16,
    "float32": DType.FLOAT32,
    "float": DType.FLOAT32,
    "float64": DType.FLOAT64,
    "double": DType.FLOAT64,
    "int8": DType.INT8,
    "uint8": DType.UINT8,
    "int32": DType.INT32,
    "int64": DType.INT64,
}
_NATIVE = "<" if sys.byteorder == "little" else ">"


def to_dtype(dtype: Union[DType, int, str, Any]) -> DType:
    """Converts a :class:`DType`, its value, a name ("float32", "bfloat16"),
    a numpy dtype or a torch.dtype to a :class:`DType`."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, int):
        return DType(dtype)
    if _torch_seen() and dtype in _Torch.dtypes:
        return DType(_Torch.dtypes[dtype])
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", str(dtype))
    try:
        return _DTYPE_NAMES[str(name).lower()]
    except KeyError:
        raise InvalidArgumentError(f"dtype {dtype!r} is not supported by diffcoll") from None


def stream_handle(stream: StreamLike) -> Optional[int]:
    """The integer cudaStream_t of ``stream`` (None for the default stream)."""
    if stream is None:
        return None
    if isinstance(stream, int):
        return stream or None
    for attr in ("cuda_stream", "ptr", "handle"):
        value = getattr(stream, attr, None)
        if isinstance(value, int):
            return value or None
    raise InvalidArgumentError(
        f"stream {stream!r}: expected None, an int cudaStream_t or an object with "
        "a .cuda_stream (PyTorch) or .ptr (CuPy) attribute"
    )


def _contiguous_strides(shape: Sequence[int]) -> Tuple[int, ...]:
    strides = [0] * len(shape)
    step = 1
    for d in range(len(shape) - 1, -1, -1):
        strides[d] = step
        step *= max(int(shape[d]), 1)
    return tuple(strides)


class Tensor:
    """A tensor described by its address, for memory without an array protocol.

    Args:
        data: address of the element at index (0, ..., 0).
        dtype: a :class:`DType`, its name or a numpy dtype.
        shape: extent of each dimension (at most DIFFCOLL_MAX_DIMS).
        strides: step between neighbours of each dimension, in **elements**
            (not bytes); None for C-contiguous.
        device: :attr:`DeviceType.CPU` or :attr:`DeviceType.CUDA`.
        device_id: CUDA ordinal (ignored for CPU tensors).
        readonly: refuse to use this tensor as an output.
        owner: any object to keep alive as long as this description.
    """

    __slots__ = ("data", "dtype", "shape", "strides", "device", "device_id", "readonly", "owner")

    def __init__(
        self,
        data: int,
        dtype: Union[DType, int, str, Any],
        shape: Sequence[int],
        strides: Optional[Sequence[int]] = None,
        device: Union[DeviceType, int] = DeviceType.CPU,
        device_id: int = 0,
        readonly: bool = False,
        owner: Any = None,
    ) -> None:
        self.data = int(data)
        self.dtype = to_dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.strides = (
            _contiguous_strides(self.shape) if strides is None else tuple(int(s) for s in strides)
        )
        if len(self.strides) != len(self.shape):
            raise InvalidArgumentError(
                f"Tensor: {len(self.shape)} dimensions but {len(self.strides)} strides"
            )
        self.device = DeviceType(device)
        self.device_id = int(device_id)
        self.readonly = bool(readonly)
        self.owner = owner

    def __repr__(self) -> str:
        return (
            f"Tensor(data=0x{self.data:x}, dtype={self.dtype.name}, shape={self.shape}, "
            f"strides={self.strides}, device={self.device.name}:{self.device_id})"
        )


class TensorDesc(NamedTuple):
    """What the SWIG module takes for a ``const diffcoll_tensor_t*``: the C
    struct's fields as a tuple (bindings/swig/diffcoll.i converts it in C)."""

    data: int
    dtype: int
    device_type: int
    device_id: int
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]


_MAX_DIMS: int = c.DIFFCOLL_MAX_DIMS
_new_desc = tuple.__new__  # TensorDesc without NamedTuple.__new__'s Python frame


def _too_many_dims(what: str, ndim: int) -> InvalidArgumentError:
    return InvalidArgumentError(f"{what}: {ndim} dimensions, diffcoll supports at most {_MAX_DIMS}")


def _raw(t: Tensor, what: str) -> TensorDesc:
    if len(t.shape) > _MAX_DIMS:
        raise _too_many_dims(what, len(t.shape))
    return _new_desc(
        TensorDesc, (t.data, int(t.dtype), int(t.device), t.device_id, t.shape, t.strides)
    )


class _Torch:
    """PyTorch as the fast path sees it; filled once ``torch`` is imported
    (diffcoll itself never imports it)."""

    tensor: Optional[type] = None
    dtypes: Dict[Any, int] = {}  # torch.dtype -> DType value
    raw_stream: Any = None  # torch._C._cuda_getCurrentRawStream, where it exists


def _torch_seen() -> bool:
    """True (and :class:`_Torch` filled) once the process has imported torch."""
    if _Torch.tensor is not None:
        return True
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "Tensor"):
        return False
    _Torch.dtypes = {getattr(torch, n): int(dt) for n, dt in _DTYPE_NAMES.items() if hasattr(torch, n)}
    _Torch.raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    _Torch.tensor = torch.Tensor
    return True


_CPU, _CUDA = int(DeviceType.CPU), int(DeviceType.CUDA)  # plain ints: cheaper than enum members


def torch_desc(t: Any, what: str) -> TensorDesc:
    """The descriptor of a ``torch.Tensor``, read from the tensor itself
    (strided tensors stay strided: nothing is copied or made contiguous)."""
    dtype = _Torch.dtypes.get(t.dtype)
    if t.is_cuda:
        device, device_id = _CUDA, t.get_device()
    elif t.is_cpu:
        device, device_id = _CPU, 0
    else:
        raise UnsupportedError(f"{what}: a tensor on device {t.device} is neither CPU nor CUDA")
    if dtype is None:
        raise InvalidArgumentError(f"{what}: dtype {t.dtype} is not supported by diffcoll")
    if t.is_neg():  # its memory holds -x: read as is, it is not what the tensor means
        raise InvalidArgumentError(f"{what}: a negative view (is_neg()); pass .resolve_neg()")
    shape = t.shape
    if len(shape) > _MAX_DIMS:
        raise _too_many_dims(what, len(shape))
    try:
        strides, data = t.stride(), t.data_ptr()
    except RuntimeError as e:  # sparse and other layouts without strided memory
        raise InvalidArgumentError(f"{what}: {e}") from None
    return _new_desc(TensorDesc, (data, dtype, device, device_id, shape, strides))


def torch_stream(device_id: int) -> int:
    """PyTorch's current cudaStream_t on CUDA device ``device_id``."""
    if _Torch.raw_stream is not None:
        return _Torch.raw_stream(device_id)
    import torch  # noqa: PLC0415 - older PyTorch without the raw accessor

    return torch.cuda.current_stream(device_id).cuda_stream


def _order_after_torch(device_id: int, stream: Optional[int]) -> None:
    """Makes ``stream`` (None: the legacy default stream) wait for the work
    PyTorch queued on its current stream, as ``__dlpack__(stream)`` does: a
    tensor PyTorch is still writing is complete before diffcoll reads it."""
    if (stream or 0) == torch_stream(device_id):
        return
    import torch  # noqa: PLC0415 - only when the streams differ

    target = (
        torch.cuda.default_stream(device_id)
        if stream is None
        else torch.cuda.ExternalStream(stream, device=device_id)
    )
    target.wait_stream(torch.cuda.current_stream(device_id))


def _device_id_of(obj: Any, default: int) -> int:
    """The CUDA ordinal of a tensor that exposes only __cuda_array_interface__."""
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    if dlpack_device is not None:
        try:
            return int(dlpack_device()[1])
        except Exception:  # noqa: BLE001 - best effort only
            pass
    device = getattr(obj, "device", None)
    for attr in ("index", "id"):  # torch.device.index, cupy.cuda.Device.id
        value = getattr(device, attr, None)
        if isinstance(value, int):
            return value
    return default


def _from_dlpack(obj: Any, what: str, stream: Optional[int]) -> Tuple[Tensor, Any]:
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    device_type = int(dlpack_device()[0]) if dlpack_device is not None else _DL_CPU
    if device_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        # The producer makes its work visible on `stream` (None: legacy default).
        try:
            capsule = obj.__dlpack__(stream=stream)
        except TypeError:  # producers that predate the stream argument
            capsule = obj.__dlpack__()
    else:
        capsule = obj.__dlpack__()
    data, dl_type, dl_id, code, bits, lanes, shape, strides = c.diffcoll_swig_dlpack_describe(capsule)
    if lanes != 1 or (code, bits) not in _DL_DTYPES:
        raise InvalidArgumentError(
            f"{what}: DLPack dtype (code={code}, bits={bits}, lanes={lanes}) is not supported by diffcoll"
        )
    if dl_type in (_DL_CPU, _DL_CUDA_HOST):
        device, device_id = DeviceType.CPU, 0
    elif dl_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        device, device_id = DeviceType.CUDA, dl_id
    else:
        raise UnsupportedError(f"{what}: DLPack device type {dl_type} is neither CPU nor CUDA")
    # The capsule is not consumed: it owns the export and must outlive the call.
    tensor = Tensor(data, _DL_DTYPES[(code, bits)], shape, strides, device, device_id, owner=capsule)
    return tensor, (obj, capsule)


def _from_interface(
    obj: Any, iface: dict, device: DeviceType, what: str, writable: bool, cuda_device: int
) -> Tuple[Tensor, Any]:
    if iface.get("mask") is not None:
        raise InvalidArgumentError(f"{what}: masked arrays are not supported")
    data = iface.get("data")
    if not isinstance(data, tuple):
        raise InvalidArgumentError(
            f"{what}: an array interface without a (pointer, readonly) data tuple is not supported"
        )
    address, readonly = data
    if writable and readonly:
        raise InvalidArgumentError(f"{what} is read-only but the operation writes to it")
    typestr = iface["typestr"]
    order, code = typestr[0], typestr[1:]
    if order not in ("|", "=", _NATIVE) and code not in ("i1", "u1"):
        raise InvalidArgumentError(f"{what}: byte order of dtype {typestr!r} is not the machine's")
    dtype = _TYPESTR.get(code)
    if dtype is None and code == "V2" and getattr(getattr(obj, "dtype", None), "name", "") == "bfloat16":
        dtype = DType.BFLOAT16  # ml_dtypes.bfloat16
    if dtype is None:
        raise InvalidArgumentError(f"{what}: dtype {typestr!r} is not supported by diffcoll")
    shape = tuple(int(s) for s in iface["shape"])
    byte_strides = iface.get("strides")
    if byte_strides is None:
        strides: Optional[Tuple[int, ...]] = None
    else:
        itemsize = dtype.itemsize
        bad = [s for s in byte_strides if s % itemsize]
        if bad:
            raise InvalidArgumentError(
                f"{what}: byte strides {tuple(byte_strides)} are not multiples of the "
                f"element size {itemsize}; diffcoll needs strides in whole elements"
            )
        strides = tuple(int(s) // itemsize for s in byte_strides)
    device_id = _device_id_of(obj, cuda_device) if device == DeviceType.CUDA else 0
    return Tensor(address, dtype, shape, strides, device, device_id, bool(readonly)), obj


def describe(
    obj: TensorLike,
    what: str,
    *,
    writable: bool,
    stream: Optional[int] = None,
    cuda_device: int = 0,
) -> Tuple[Any, Any]:
    """Returns (:class:`TensorDesc`, keepalive) for ``obj``; None gives (None, None).

    ``keepalive`` must be kept until the library is done with the memory.
    ``cuda_device`` is the ordinal assumed for __cuda_array_interface__ objects
    that do not say which device they live on.
    """
    if obj is None:
        return None, None
    if isinstance(obj, Tensor):
        if writable and obj.readonly:
            raise InvalidArgumentError(f"{what} is read-only but the operation writes to it")
        return _raw(obj, what), obj
    if _torch_seen() and isinstance(obj, _Torch.tensor):
        d = torch_desc(obj, what)
        if d.device_type == _CUDA:
            _order_after_torch(d.device_id, stream)
        return d, obj
    dlpack_error: Optional[BaseException] = None
    if hasattr(obj, "__dlpack__"):
        try:
            tensor, keep = _from_dlpack(obj, what, stream)
            return _raw(tensor, what), keep
        except BufferError as e:  # e.g. numpy: read-only or odd strides; try the interfaces
            dlpack_error = e
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is not None:
        tensor, keep = _from_interface(obj, cai, DeviceType.CUDA, what, writable, cuda_device)
        return _raw(tensor, what), keep
    ai = getattr(obj, "__array_interface__", None)
    if ai is not None:
        tensor, keep = _from_interface(obj, ai, DeviceType.CPU, what, writable, cuda_device)
        return _raw(tensor, what), keep
    if dlpack_error is not None:
        raise InvalidArgumentError(f"{what}: __dlpack__ failed: {dlpack_error}") from dlpack_error
    raise InvalidArgumentError(
        f"{what}: {type(obj).__name__} is not a tensor: expected an object with __dlpack__, "
        "__cuda_array_interface__ or __array_interface__ (numpy, PyTorch, CuPy, JAX) "
        "or a diffcoll.Tensor"
    )


def describe_all(
    tensors: Optional[Sequence[TensorLike]],
    what: str,
    *,
    writable: bool,
    stream: Optional[int] = None,
    cuda_device: int = 0,
    function: Optional[str] = None,
) -> Tuple[List[Any], List[Any]]:
    """:func:`describe` of every tensor of a sequence (None: empty); returns
    (descriptors, keepalives). A None item raises InvalidArgumentError."""
    if tensors is None:
        tensors = []
    elif not isinstance(tensors, (list, tuple)):
        tensors = list(tensors)
    descs: List[Any] = []
    keep: List[Any] = []
    for i, t in enumerate(tensors):
        d, k = describe(t, f"{what}[{i}]", writable=writable, stream=stream, cuda_device=cuda_device)
        if d is None:
            raise InvalidArgumentError(f"{what}[{i}] is None", function=function)
        descs.append(d)
        keep.append(k)
    return descs, keep
