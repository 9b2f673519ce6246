# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Errors: the right DiffcollError subclass, the status and the library's
own message (diffcoll_last_error())."""
from __future__ import annotations

import re
import threading
import uuid

import numpy as np
import pytest

import diffcoll
from diffcoll._native import c

from conftest import HEADER


def test_bad_root(ranks):
    def body(comm):
        with pytest.raises(diffcoll.InvalidArgumentError) as info:
            comm.broadcast(np.zeros(3), root=7)
        return info.value

    for e in ranks(2, body):
        assert e.status == diffcoll.Status.INVALID_ARGUMENT
        assert isinstance(e, ValueError)
        assert e.function == "diffcoll_broadcast"
        assert "root 7" in e.message and e.message in str(e)


def test_closed_comm():
    comm = diffcoll.Comm.create(f"local://{uuid.uuid4().hex}", 0, 1)
    comm.close()
    comm.close()  # idempotent
    assert comm.closed and "closed" in repr(comm)
    with pytest.raises(diffcoll.InvalidHandleError) as info:
        comm.all_reduce(np.zeros(2))
    assert info.value.status == diffcoll.Status.INVALID_HANDLE
    assert info.value.message == c.diffcoll_last_error() != ""


def test_destroyed_handle_raw():
    # The library itself recognises a destroyed handle (the Comm class never
    # passes one: it drops its handle on close).
    status, handle = c.diffcoll_comm_create(f"local://{uuid.uuid4().hex}", 0, 1, None)
    assert status == 0
    assert c.diffcoll_comm_destroy(handle) == 0
    status, _ = c.diffcoll_comm_size(handle)
    assert status == diffcoll.Status.INVALID_HANDLE
    assert "destroyed" in c.diffcoll_last_error()


def test_cuda_tensor_on_host_comm():
    from test_tensors import FakeCuda

    with diffcoll.Comm.create(f"local://{uuid.uuid4().hex}", 0, 1) as comm:
        with pytest.raises(diffcoll.UnsupportedError) as info:
            comm.all_reduce(FakeCuda())
    assert info.value.status == diffcoll.Status.UNSUPPORTED
    assert isinstance(info.value, NotImplementedError)
    assert info.value.message  # the library's explanation


def test_timeout_in_collective(ranks):
    done = threading.Event()

    def body(comm):
        if comm.rank == 1:
            # Never joins the all_reduce; stays connected until rank 0 gave up
            # (closing earlier would make rank 0 see RemoteError instead).
            done.wait(10)
            return None
        try:
            with pytest.raises(diffcoll.TimeoutError) as info:
                comm.all_reduce(np.zeros(3))
        finally:
            done.set()
        return info.value

    e = ranks(2, body, timeout_ms=500)[0]
    assert e.status == diffcoll.Status.TIMEOUT
    assert isinstance(e, TimeoutError)  # the builtin too
    assert e.message


def test_timeout_on_create():
    with pytest.raises(diffcoll.TimeoutError) as info:
        diffcoll.Comm.create(f"local://{uuid.uuid4().hex}", 0, 2, timeout_ms=300)
    assert info.value.status == diffcoll.Status.TIMEOUT


def test_mismatch_with_check(ranks):
    def body(comm):
        x = np.zeros(3 + comm.rank, np.float32)
        with pytest.raises(diffcoll.DiffcollError) as info:
            comm.all_reduce(x)
        return info.value

    for e in ranks(2, body, check=True):
        assert isinstance(e, diffcoll.MismatchError), e
        assert e.status == diffcoll.Status.MISMATCH


def test_p2p_group_rejects_collectives(ranks):
    def body(comm):
        with pytest.raises(diffcoll.InvalidArgumentError):
            with comm.p2p_group():
                comm.all_reduce(np.zeros(2))
        comm.all_reduce(np.zeros(2))  # usable again after the group
        return True

    assert ranks(2, body) == [True, True]


def test_bad_arguments_before_the_library():
    with diffcoll.Comm.create(f"local://{uuid.uuid4().hex}", 0, 1) as comm:
        with pytest.raises(ValueError, match="unknown reduction"):
            comm.all_reduce(np.zeros(2), op="median")
        with pytest.raises(diffcoll.InvalidArgumentError, match="stream"):
            comm.all_reduce(np.zeros(2), stream="not a stream")
        with pytest.raises(diffcoll.InvalidArgumentError):
            comm.all_gather(np.zeros(2), None)  # NULL output: the library says so


class FakeProcessGroup:
    """Stands for a torch.distributed group; never dereferenced by a host-only build."""

    def __init__(self, ptr):
        self.ptr = ptr

    def _comm_ptr(self):
        return self.ptr


def _library_is_host_only() -> bool:
    try:
        diffcoll.Comm.create(f"local://{uuid.uuid4().hex}", 0, 1, device_id=0).close()
    except diffcoll.UnsupportedError:
        return True
    except diffcoll.DiffcollError:
        pass
    return False


def test_from_torch_errors(monkeypatch):
    monkeypatch.delenv("DIFFCOLL_STORE", raising=False)
    # A group that does not expose its NCCL communicator.
    with pytest.raises(diffcoll.UnsupportedError, match="does not expose its NCCL") as info:
        diffcoll.Comm.from_torch(object(), "local://x")
    assert isinstance(info.value, NotImplementedError)
    assert info.value.status == diffcoll.Status.UNSUPPORTED
    # One whose NCCL communicator is not created yet.
    with pytest.raises(diffcoll.InvalidArgumentError, match="not created yet"):
        diffcoll.Comm.from_torch(FakeProcessGroup(0), "local://x")
    # No rendezvous for the host side.
    with pytest.raises(diffcoll.InvalidArgumentError, match="DIFFCOLL_STORE"):
        diffcoll.Comm.from_torch(FakeProcessGroup(0x10))


def test_from_torch_without_cuda(monkeypatch):
    if not _library_is_host_only():
        pytest.skip("needs a diffcoll built without CUDA (the fake ncclComm_t would be used)")
    monkeypatch.setenv("DIFFCOLL_STORE", f"local://{uuid.uuid4().hex}")
    with pytest.raises(diffcoll.UnsupportedError) as info:
        diffcoll.Comm.from_torch(FakeProcessGroup(0x10))
    assert info.value.function == "diffcoll_comm_wrap_nccl"
    assert "without CUDA" in info.value.message  # the library's own message


def test_from_env(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("DIFFCOLL_STORE", f"local://{uuid.uuid4().hex}")
    with diffcoll.Comm.from_env(timeout_ms=5000) as comm:
        assert (comm.rank, comm.size) == (0, 1)
    monkeypatch.delenv("DIFFCOLL_STORE")
    with pytest.raises(diffcoll.InvalidArgumentError, match="DIFFCOLL_STORE"):
        diffcoll.Comm.from_env()


def test_error_classes_and_pickling():
    import pickle

    for status in diffcoll.Status:
        if status == diffcoll.Status.SUCCESS:
            continue
        e = diffcoll.error_for(int(status), "msg", "fn")
        assert type(e) is not diffcoll.DiffcollError and e.status == status
        e2 = pickle.loads(pickle.dumps(e))
        assert type(e2) is type(e) and e2.status == status and e2.message == "msg"
    assert diffcoll.status_string(diffcoll.Status.TIMEOUT) == "timed out"


# ------------------------------------------------------------ header drift


def _header() -> str:
    with open(HEADER) as f:
        return f.read()


def test_every_header_function_is_wrapped():
    names = set(re.findall(r"DIFFCOLL_API\s+[^;]*?\b(diffcoll_\w+)\s*\(", _header()))
    assert "diffcoll_all_reduce" in names
    missing = sorted(n for n in names if not hasattr(c, n))
    assert not missing, f"not in the SWIG module (rebuild it): {missing}"


@pytest.mark.parametrize(
    "enum, prefix",
    [
        (diffcoll.Status, "DIFFCOLL_"),
        (diffcoll.DType, "DIFFCOLL_"),
        (diffcoll.DeviceType, "DIFFCOLL_DEVICE_"),
        (diffcoll.ReduceOp, "DIFFCOLL_"),
        (diffcoll.UlyssesDirection, "DIFFCOLL_ULYSSES_"),
        (diffcoll.FusedNormPath, "DIFFCOLL_FUSED_NORM_"),
    ],
)
def test_enums_match_header(enum, prefix):
    for member in enum:
        name = member.name
        if enum is diffcoll.Status and member != diffcoll.Status.SUCCESS:
            name = "ERR_" + name
        assert getattr(c, prefix + name) == member.value, (enum, name)
    # and nothing in the header is missing from the enum
    body = re.search(r"typedef enum %s \{(.*?)\}" % {
        diffcoll.Status: "diffcoll_status_t",
        diffcoll.DType: "diffcoll_dtype_t",
        diffcoll.DeviceType: "diffcoll_device_type_t",
        diffcoll.ReduceOp: "diffcoll_red_op_t",
        diffcoll.UlyssesDirection: "diffcoll_ulysses_direction_t",
        diffcoll.FusedNormPath: "diffcoll_fused_norm_path_t",
    }[enum], _header(), re.S).group(1)
    assert len(re.findall(r"^\s*DIFFCOLL_\w+\s*=", body, re.M)) == len(enum)


def test_function_table_is_read_only():
    status, table = c.diffcoll_get_api(c.DIFFCOLL_API_VERSION_1)
    assert status == 0 and table.version == c.DIFFCOLL_API_VERSION_1 and table.struct_size > 0
    with pytest.raises(AttributeError):
        table.version = 2
    status, table = c.diffcoll_get_api(99)
    assert status == diffcoll.Status.VERSION and table is None
    assert "99" in c.diffcoll_last_error()


# Pointer parameters the SWIG interface (bindings/swig/diffcoll.i) handles.
# A new one fails this test: decide whether it is a single value or an array,
# give it a typemap in diffcoll.i if needed, then list it here.
_SINGLE_OUT = {
    ("int32_t*", "size"), ("int32_t*", "rank"), ("int32_t*", "global_rank"),
    ("int32_t*", "num_branches"), ("int32_t*", "role"), ("int32_t*", "index"),
    ("int32_t*", "count"), ("diffcoll_stats_t*", "stats"),
    ("diffcoll_cfg_options_t*", "options"), ("const char**", "name"),
    ("int64_t*", "start"), ("int64_t*", "length"), ("int32_t*", "current"),
    ("diffcoll_usp_mesh_t*", "mesh"),  # filled in place (a struct with its own INIT)
}
_ARRAYS = {  # (type, name, count parameter)
    ("const int32_t*", "ranks", "count"),
    ("int32_t*", "branches", "capacity"),
    ("double*", "weights", "count"),
    ("const diffcoll_cfg_branch_t*", "branches", "num_branches"),
    ("const diffcoll_cfg_term_t*", "terms", "num_terms"),
    ("const diffcoll_tensor_t*", "preds", "num_preds"),
    ("const diffcoll_tensor_t*", "local_preds", "local_count"),
    # pairs of arrays of one count: one (A, B) argument in Python
    ("const diffcoll_tensor_t*", "inputs", "outputs"),
    ("const diffcoll_tensor_t*", "outputs", "count"),
    ("const diffcoll_tensor_t*", "buffer0", "buffer1"),
    ("const diffcoll_tensor_t*", "buffer1", "count"),
}
_SINGLE_IN_NAMES = {
    "tensor", "input", "output", "out", "config", "options", "rendezvous", "name",
    "padded", "padded_output", "slab", "whole", "weight", "bias", "x", "residual", "y",
    "residual_out", "degrees",
}


def test_every_pointer_parameter_is_handled_by_the_swig_interface():
    header = re.sub(r"/\*.*?\*/", "", _header(), flags=re.S)
    handles = set(re.findall(r"typedef struct \w+ (\w+);", header))  # opaque types
    problems = []
    for name, params in re.findall(r"DIFFCOLL_API\s+[\w\s\*]*?\b(diffcoll_\w+)\s*\(([^)]*)\)\s*;", header):
        parts = [" ".join(p.split()) for p in params.split(",")]
        parsed = []
        for p in parts:
            m = re.match(r"(.*?[\s\*])(\w+)$", p)
            if not m:  # (void)
                continue
            ptype = m.group(1).replace(" *", "*").replace("* ", "*").strip()
            parsed.append((ptype, m.group(2)))
        for i, (ptype, pname) in enumerate(parsed):
            if "*" not in ptype or ptype == "void*" or ptype.endswith("**") and ptype != "const char**":
                continue
            base = ptype.replace("const ", "").rstrip("*")
            if base in handles and ptype.count("*") == 1:
                continue
            nxt = parsed[i + 1][1] if i + 1 < len(parsed) else None
            if (ptype, pname, nxt) in _ARRAYS or (ptype, pname) in _SINGLE_OUT:
                continue
            if ptype.startswith("const ") and pname in _SINGLE_IN_NAMES:
                continue
            problems.append(f"{name}: {ptype} {pname}")
    assert not problems, f"pointer parameters diffcoll.i does not know: {problems}"
