# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""ctypes access to libdiffcoll and libnccl for the Python benchmarks.

Both libraries are called the same way (ctypes, arguments built once), so a
comparison of host time per call measures the libraries, not two different
binding layers. Only what the benchmarks need is declared here.
"""
import ctypes
import glob
import os

MAX_DIMS = 8

# diffcoll_dtype_t / diffcoll_device_type_t / diffcoll_red_op_t values.
DC_BFLOAT16 = 2
DC_DEVICE_CUDA = 2
DC_SUM = 0

# ncclDataType_t / ncclRedOp_t values.
NCCL_BFLOAT16 = 9
NCCL_SUM = 0


class DcTensor(ctypes.Structure):
    """diffcoll_tensor_t."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("device_type", ctypes.c_int32),
        ("device_id", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
    ]


class DcConfig(ctypes.Structure):
    """diffcoll_config_t."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("timeout_ms", ctypes.c_int32),
        ("device_id", ctypes.c_int32),
        ("check", ctypes.c_int32),
        ("host", ctypes.c_char_p),
    ]


class DcHaloConfig(ctypes.Structure):
    """diffcoll_halo_config_t."""

    _fields_ = [("struct_size", ctypes.c_size_t)] + [
        (name, ctypes.c_int32) for name in (
            "grid_rows", "grid_cols", "row_axis", "col_axis", "row_before", "row_after",
            "col_before", "col_after", "row_boundary_before", "row_boundary_after",
            "col_boundary_before", "col_boundary_after", "exchange_corners")]


def halo_config(**fields):
    """DIFFCOLL_HALO_CONFIG_INIT with `fields` changed."""
    cfg = DcHaloConfig(ctypes.sizeof(DcHaloConfig), 0, 1, -2, -1, 1, 1, 0, 0, 0, 0, 0, 0, 1)
    for name, value in fields.items():
        setattr(cfg, name, value)
    return cfg


def describe(t):
    """A diffcoll_tensor_t for a bf16 CUDA torch tensor (any strides)."""
    d = DcTensor()
    d.data = t.data_ptr()
    d.dtype = DC_BFLOAT16
    d.device_type = DC_DEVICE_CUDA
    d.device_id = t.device.index
    d.ndim = t.dim()
    for i, (n, s) in enumerate(zip(t.shape, t.stride())):
        d.shape[i] = n
        d.strides[i] = s
    return d


def load_diffcoll(path):
    lib = ctypes.CDLL(path)
    p = ctypes.c_void_p
    lib.diffcoll_last_error.restype = ctypes.c_char_p
    lib.diffcoll_comm_create.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                                         ctypes.POINTER(DcConfig), ctypes.POINTER(p)]
    lib.diffcoll_comm_destroy.argtypes = [p]
    lib.diffcoll_comm_reserve.argtypes = [p, ctypes.c_size_t]
    lib.diffcoll_all_reduce.argtypes = [p, ctypes.POINTER(DcTensor), ctypes.c_int32,
                                        ctypes.c_double, p]
    lib.diffcoll_all_gather.argtypes = [p, ctypes.POINTER(DcTensor), ctypes.POINTER(DcTensor),
                                        ctypes.c_int32, p]
    lib.diffcoll_all_to_all.argtypes = [p, ctypes.POINTER(DcTensor), ctypes.POINTER(DcTensor),
                                        ctypes.c_int32, ctypes.c_int32, p]
    lib.diffcoll_halo_plan_create.argtypes = [p, ctypes.POINTER(DcHaloConfig), ctypes.POINTER(p)]
    lib.diffcoll_halo_plan_destroy.argtypes = [p]
    lib.diffcoll_halo_exchange.argtypes = [p, ctypes.POINTER(DcTensor), p]
    return lib


def check_dc(lib, status, what):
    if status != 0:
        raise RuntimeError(f"{what}: status {status}: {lib.diffcoll_last_error().decode()}")


class DiffcollComm:
    """A diffcoll world communicator with a device side on `device`."""

    def __init__(self, lib, rendezvous, rank, size, device):
        self.lib = lib
        cfg = DcConfig(ctypes.sizeof(DcConfig), 120000, device, 0, b"127.0.0.1")
        handle = ctypes.c_void_p()
        check_dc(lib, lib.diffcoll_comm_create(rendezvous.encode(), rank, size,
                                               ctypes.byref(cfg), ctypes.byref(handle)),
                 "diffcoll_comm_create")
        self.handle = handle

    def close(self):
        if self.handle:
            self.lib.diffcoll_comm_destroy(self.handle)
            self.handle = None


def find_nccl():
    """libnccl.so.2: NCCL_HOME first, then PyTorch's nvidia/nccl wheel."""
    candidates = []
    if os.environ.get("NCCL_HOME"):
        candidates += glob.glob(os.path.join(os.environ["NCCL_HOME"], "lib", "libnccl.so*"))
    try:
        import nvidia.nccl  # type: ignore

        for root in nvidia.nccl.__path__:
            candidates += glob.glob(os.path.join(root, "lib", "libnccl.so*"))
    except ImportError:
        pass
    candidates += ["libnccl.so.2"]
    return candidates[0]


class NcclUniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_char * 128)]


class RawNccl:
    """An NCCL communicator used directly, as nccl-tests would."""

    def __init__(self, path, rank, size, share_id):
        """share_id(bytes or None) -> bytes: rank 0's id, delivered to every rank."""
        lib = ctypes.CDLL(path)
        p = ctypes.c_void_p
        lib.ncclGetErrorString.restype = ctypes.c_char_p
        lib.ncclCommInitRank.argtypes = [ctypes.POINTER(p), ctypes.c_int, NcclUniqueId, ctypes.c_int]
        lib.ncclAllReduce.argtypes = [p, p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, p, p]
        lib.ncclAllGather.argtypes = [p, p, ctypes.c_size_t, ctypes.c_int, p, p]
        lib.ncclAlltoAll.argtypes = [p, p, ctypes.c_size_t, ctypes.c_int, p, p]
        lib.ncclCommDestroy.argtypes = [p]
        self.lib = lib
        uid = NcclUniqueId()
        if rank == 0:
            self._check(lib.ncclGetUniqueId(ctypes.byref(uid)), "ncclGetUniqueId")
        raw = share_id(ctypes.string_at(ctypes.addressof(uid), 128) if rank == 0 else None)
        ctypes.memmove(ctypes.addressof(uid), raw, 128)
        self.comm = ctypes.c_void_p()
        self._check(lib.ncclCommInitRank(ctypes.byref(self.comm), size, uid, rank),
                    "ncclCommInitRank")

    def _check(self, result, what):
        if result != 0:
            raise RuntimeError(f"{what}: {self.lib.ncclGetErrorString(result).decode()}")

    def close(self):
        if self.comm:
            self.lib.ncclCommDestroy(self.comm)
            self.comm = None
