# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""The kernels of the ``diffcoll::`` operators: for each, what it runs
(allocate the outputs, describe the tensors, call the library on PyTorch's
current stream) and its fake kernel (allocate the outputs only, for the
compiler). Both share one output allocator per operator, so the shapes the
compiler sees are the shapes the kernel makes.

The signatures are the operators' schemas (torch.library.custom_op infers
them from these annotations, hence no ``from __future__ import annotations``
here): objects are handles (:func:`diffcoll.handle`), enumerations their
integer values. Shapes may be symbolic in fake kernels; the shape arithmetic
below is plain Python for that reason.
"""
from operator import is_ as _is
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .. import _registry
from .._cfg import CfgPolicy
from .._errors import InvalidArgumentError, InvalidHandleError
from .._halo import HaloPlan
from .._handle import _check
from .._native import c
from .._norm import FusedNormWorkspace, fused_norm_options
from .._tensor import TensorDesc, _Torch, _torch_seen, torch_desc, torch_stream
from .._types import DeviceType, UlyssesDirection
from .._usp import Ring

_torch_seen()  # fills the dtype table of torch_desc
_raw_stream = _Torch.raw_stream or torch_stream  # torch_stream without its frame, for the ring steps
_CUDA = int(DeviceType.CUDA)
_SUCCESS = c.DIFFCOLL_SUCCESS
# The ring steps call the extension's functions themselves: SWIG's module
# proxies only forward their arguments, a Python frame per call.
_c_functions = getattr(c, "_diffcoll_c", c)
_ring_start, _ring_wait = _c_functions.diffcoll_ring_start, _c_functions.diffcoll_ring_wait
_SEQ_TO_HEAD, _HEAD_TO_SEQ = int(UlyssesDirection.SEQ_TO_HEAD), int(UlyssesDirection.HEAD_TO_SEQ)


def _stream(d: TensorDesc) -> Optional[int]:
    """PyTorch's current stream on the tensor's device (None on the host)."""
    return torch_stream(d.device_id) if d.device_type == _CUDA else None


def _comm(number: int, op: str) -> Any:
    """The raw communicator of handle ``number`` (``op``: "diffcoll::NAME", for errors)."""
    return _registry.comm_place(number, op)[0]._handle


def _size_rank(number: int, op: str) -> Tuple[int, int]:
    _, size, rank = _registry.comm_place(number, op)
    return size, rank


def _axis(axis: int, ndim: int, what: str, op: str) -> int:
    if not -ndim <= axis < ndim:
        raise InvalidArgumentError(f"{what} {axis} is out of range for {ndim} dimensions",
                                   function=f"diffcoll::{op}")
    return axis % ndim


def _split_length(extent: Any, parts: int, index: int) -> Any:
    """Rows of slab ``index`` of ``parts`` (diffcoll_split_extent's rule, in
    Python because ``extent`` may be symbolic here)."""
    return extent // parts + (1 if index < extent % parts else 0)


def _no_output(*args: Any, **kwargs: Any) -> None:
    """The fake kernel of every operator that only writes its arguments."""
    return None


# ---------------------------------------------------------------- in place


def all_reduce_(tensor: Tensor, comm: int, op: int, scalar: float) -> None:
    d, h = torch_desc(tensor, "tensor"), _comm(comm, "diffcoll::all_reduce_")
    _check(c.diffcoll_all_reduce(h, d, op, scalar, _stream(d)), "diffcoll_all_reduce")


def broadcast_(tensor: Tensor, comm: int, root: int) -> None:
    d, h = torch_desc(tensor, "tensor"), _comm(comm, "diffcoll::broadcast_")
    _check(c.diffcoll_broadcast(h, d, root, _stream(d)), "diffcoll_broadcast")


def reduce_(tensor: Tensor, comm: int, op: int, root: int, scalar: float) -> None:
    d, h = torch_desc(tensor, "tensor"), _comm(comm, "diffcoll::reduce_")
    _check(c.diffcoll_reduce(h, d, op, scalar, root, _stream(d)), "diffcoll_reduce")


def send(tensor: Tensor, comm: int, peer: int) -> None:
    d, h = torch_desc(tensor, "tensor"), _comm(comm, "diffcoll::send")
    _check(c.diffcoll_send(h, d, peer, _stream(d)), "diffcoll_send")


def recv_(tensor: Tensor, comm: int, peer: int) -> None:
    d, h = torch_desc(tensor, "tensor"), _comm(comm, "diffcoll::recv_")
    _check(c.diffcoll_recv(h, d, peer, _stream(d)), "diffcoll_recv")


def halo_exchange_(padded: Tensor, plan: int) -> None:
    d = torch_desc(padded, "padded")
    p = _registry.lookup(plan, HaloPlan, "diffcoll::halo_exchange_")._handle
    _check(c.diffcoll_halo_exchange(p, d, _stream(d)), "diffcoll_halo_exchange")


def cfg_combine_(local_preds: List[Tensor], output: Tensor, comm: int, policy: int, step: int) -> None:
    o = torch_desc(output, "output")
    preds = [torch_desc(t, f"local_preds[{i}]") for i, t in enumerate(local_preds)]
    p = _registry.lookup(policy, CfgPolicy, "diffcoll::cfg_combine_")._handle
    _check(
        c.diffcoll_cfg_combine_parallel(_comm(comm, "diffcoll::cfg_combine_"), p, preds, o, step, _stream(o)),
        "diffcoll_cfg_combine_parallel",
    )


def fused_add_rmsnorm_(
    x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], workspace: int, eps: float, path: int
) -> None:
    _fused_norm(x, residual, weight, workspace, eps, path, x, residual, "fused_add_rmsnorm_")


def _fused_norm(x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], workspace: int,
                eps: float, path: int, y: Tensor, residual_out: Optional[Tensor], op: str) -> None:
    ws = _registry.lookup(workspace, FusedNormWorkspace, f"diffcoll::{op}")._handle
    xd = torch_desc(x, "x")
    rd = None if residual is None else torch_desc(residual, "residual")
    wd = None if weight is None else torch_desc(weight, "weight")
    yd = xd if y is x else torch_desc(y, "y")
    od = rd if residual_out is residual else torch_desc(residual_out, "residual_out")
    options = fused_norm_options(path)
    _check(c.diffcoll_fused_norm(ws, xd, rd, wd, eps, yd, od, options, _stream(xd)), "diffcoll_fused_norm")


def ring_step(buffers: Sequence[Tensor], ring: int, current: int, wait: bool, graph: bool = False) -> None:
    """Posts (``wait`` False: diffcoll_ring_start) or completes (True:
    diffcoll_ring_wait) one step of the ring of handle ``ring``, after
    checking that ``buffers`` match the ring's tensors one for one and
    ``current`` is its current half.

    The kernel of both ring operators (``graph`` True), and what
    diffcoll.torch.ring_start and ring_wait call directly outside a trace.
    Ring attention runs it twice a step, so the usual eager case, ``buffers``
    being the ring's own tensors, spends no Python frame it can avoid: the
    registry's entry is read in place, the buffers are compared by identity
    in C, and the library is called here (not through Ring.start /
    Ring.wait), its status checked in place. The operators and other tensors
    take :func:`_detached_step`."""
    entry = _registry.entry(ring)
    r = None if entry is None else entry.ref()
    if type(r) is not Ring:
        r = _registry.lookup(ring, Ring, _ring_op(wait))  # raises the error that fits
    own = r._buffers
    mine = buffers is own or (len(buffers) == len(own) and all(map(_is, buffers, own)))
    if not mine:
        _check_halves(buffers, own, _ring_op(wait))
        mine = all(b.data_ptr() == o.data_ptr() and b.stride() == o.stride() for b, o in zip(buffers, own))
    if current != r._current:
        raise InvalidArgumentError(f"the caller holds half {current} as current, the ring half {r._current}",
                                   function=_ring_op(wait))
    # A step is exchanged the way it was posted; a wait without a start gets
    # the library's error.
    library = r._step_library
    if not wait or library is None:
        library = not graph and mine and r._library_current == current
    if not library:
        r._step_library = None if wait else False
        _detached_step(r, buffers, current, wait)
        return
    d = r._cuda_device
    stream = None if d is None else _raw_stream(d)
    if not wait:
        status = _ring_start(r._handle, stream)
        if status != _SUCCESS:
            _check(status, "diffcoll_ring_start")
        r._step_library = True
        return
    status, now = _ring_wait(r._handle, stream)
    if status != _SUCCESS:
        _check(status, "diffcoll_ring_wait")
    r._step_library = None
    r._current = r._library_current = int(now)
    if not mine:  # posted with the ring's tensors, completed with others
        for given, ring_tensor in zip(_half(buffers, r._current), _half(own, r._current)):
            given.copy_(ring_tensor)


def _ring_op(wait: bool) -> str:
    return "diffcoll::ring_wait" if wait else "diffcoll::ring_start"


def _check_halves(buffers: Sequence[Tensor], own: Sequence[Tensor], op: str) -> None:
    if len(buffers) != len(own) or any(
            b.shape != o.shape or b.dtype != o.dtype or b.device != o.device for b, o in zip(buffers, own)):
        raise InvalidArgumentError(
            "buffers must be the ring's halves, buffer0 then buffer1 (as many tensors, of the "
            "shapes, dtypes and device the ring was created with)", function=op)


# torch.compile functionalizes the writes a graph makes into the ring's halves:
# the operators may then be handed the graph's own tensors for the halves, and
# the graph may keep other values in the ring's memory meanwhile (it only knows
# of the writes made into the tensors it hands over; a receive the library
# posted into the ring's memory at ring_start clobbered a block the graph read
# later, on 4 ranks). So the operators, and eager calls with other tensors,
# leave the ring's memory alone: ring_start only checks, and ring_wait
# sends the half handed as current to the next rank and receives the other
# half from the previous one, grouped, on the current stream (no overlap with
# the step's attention, but nothing written where the graph does not expect
# it). The library's ring then holds the other half as current than the
# program: until a step brings them together again, eager steps take this
# path too.
def _half(tensors: Sequence[Tensor], half: int) -> Sequence[Tensor]:
    n = len(tensors) // 2
    return tensors[half * n:(half + 1) * n]


def _detached_step(r: Ring, buffers: Sequence[Tensor], current: int, wait: bool) -> None:
    if r.closed:
        raise InvalidHandleError("the ring was closed", function=_ring_op(wait))
    if not wait:
        return
    comm = r.comm
    size, rank = comm.size, comm.rank
    sent, received = _half(buffers, current), _half(buffers, 1 - current)
    if size == 1:
        for into, block in zip(received, sent):
            into.copy_(block)
    else:
        h = comm._handle
        _check(c.diffcoll_group_start(h), "diffcoll_group_start")
        try:
            for t in sent:
                d = torch_desc(t, "buffers")
                _check(c.diffcoll_send(h, d, (rank + 1) % size, _stream(d)), "diffcoll_send")
            for t in received:
                d = torch_desc(t, "buffers")
                _check(c.diffcoll_recv(h, d, (rank - 1) % size, _stream(d)), "diffcoll_recv")
        except BaseException:
            c.diffcoll_group_end(h)  # the communicator stays usable; the first error is reported
            raise
        _check(c.diffcoll_group_end(h), "diffcoll_group_end")
    r._current = 1 - current


def ring_start(buffers: List[Tensor], ring: int, current: int) -> None:
    ring_step(buffers, ring, current, False, graph=True)


def ring_wait(buffers: List[Tensor], ring: int, current: int) -> None:
    ring_step(buffers, ring, current, True, graph=True)


# ---------------------------------------------------------------- new outputs


def _all_gather_out(input: Tensor, comm: int, axis: int) -> Tensor:
    size, _ = _size_rank(comm, "diffcoll::all_gather")
    shape = list(input.shape)
    shape[_axis(axis, len(shape), "axis", "all_gather")] *= size
    return input.new_empty(shape)


def all_gather(input: Tensor, comm: int, axis: int) -> Tensor:
    out = _all_gather_out(input, comm, axis)
    i, o, h = torch_desc(input, "input"), torch_desc(out, "output"), _comm(comm, "diffcoll::all_gather")
    _check(c.diffcoll_all_gather(h, i, o, axis, _stream(i)), "diffcoll_all_gather")
    return out


def _blocks(extent: Any, size: int, what: str, op: str) -> Any:
    if extent % size:
        raise InvalidArgumentError(f"{what} extent {extent} is not a multiple of the group size {size}",
                                   function=f"diffcoll::{op}")
    return extent // size


def _reduce_scatter_out(input: Tensor, comm: int, axis: int, op: int, scalar: float) -> Tensor:
    size, _ = _size_rank(comm, "diffcoll::reduce_scatter")
    shape = list(input.shape)
    a = _axis(axis, len(shape), "axis", "reduce_scatter")
    shape[a] = _blocks(shape[a], size, "the axis", "reduce_scatter")
    return input.new_empty(shape)


def reduce_scatter(input: Tensor, comm: int, axis: int, op: int, scalar: float) -> Tensor:
    out = _reduce_scatter_out(input, comm, axis, op, scalar)
    i, o, h = torch_desc(input, "input"), torch_desc(out, "output"), _comm(comm, "diffcoll::reduce_scatter")
    _check(c.diffcoll_reduce_scatter(h, i, o, axis, op, scalar, _stream(i)), "diffcoll_reduce_scatter")
    return out


def _all_to_all_out(input: Tensor, comm: int, scatter_axis: int, gather_axis: int) -> Tensor:
    size, _ = _size_rank(comm, "diffcoll::all_to_all")
    shape = list(input.shape)
    s = _axis(scatter_axis, len(shape), "scatter_axis", "all_to_all")
    g = _axis(gather_axis, len(shape), "gather_axis", "all_to_all")
    shape[s] = _blocks(shape[s], size, "the scatter axis", "all_to_all")
    shape[g] *= size
    return input.new_empty(shape)


def all_to_all(input: Tensor, comm: int, scatter_axis: int, gather_axis: int) -> Tensor:
    out = _all_to_all_out(input, comm, scatter_axis, gather_axis)
    i, o, h = torch_desc(input, "input"), torch_desc(out, "output"), _comm(comm, "diffcoll::all_to_all")
    _check(c.diffcoll_all_to_all(h, i, o, scatter_axis, gather_axis, _stream(i)), "diffcoll_all_to_all")
    return out


def _gather_slabs_out(slab: Tensor, comm: int, axis: int, extent: int, root: int) -> Tensor:
    """Root's (every rank's for root -1) whole; an empty slice of it elsewhere."""
    _, rank = _size_rank(comm, "diffcoll::gather_slabs")
    shape = list(slab.shape)
    shape[_axis(axis, len(shape), "axis", "gather_slabs")] = extent if root in (-1, rank) else 0
    return slab.new_empty(shape)


def gather_slabs(slab: Tensor, comm: int, axis: int, extent: int, root: int) -> Tensor:
    whole = _gather_slabs_out(slab, comm, axis, extent, root)
    _, rank = _size_rank(comm, "diffcoll::gather_slabs")
    s = torch_desc(slab, "slab")
    w = torch_desc(whole, "whole") if root in (-1, rank) else None
    _check(c.diffcoll_gather_slabs(_comm(comm, "diffcoll::gather_slabs"), s, w, axis, root, _stream(s)),
           "diffcoll_gather_slabs")
    return whole


def _group_norm_out(input: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], comm: int,
                    num_groups: int, eps: float) -> Tensor:
    return torch.empty_like(input)  # keeps a dense layout (channels-last stays channels-last)


def group_norm(input: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], comm: int,
               num_groups: int, eps: float) -> Tensor:
    out = _group_norm_out(input, weight, bias, comm, num_groups, eps)
    i, o = torch_desc(input, "input"), torch_desc(out, "output")
    w = None if weight is None else torch_desc(weight, "weight")
    b = None if bias is None else torch_desc(bias, "bias")
    h = _comm(comm, "diffcoll::group_norm")
    _check(c.diffcoll_group_norm(h, i, o, w, b, num_groups, eps, _stream(i)), "diffcoll_group_norm")
    return out


def _ulysses_out(inputs: List[Tensor], comm: int, seq_axis: int, head_axis: int, direction: int,
                 gathered: List[int]) -> List[Tensor]:
    """Outputs of a Ulysses all-to-all: the gathered axis (sequence before
    attention, heads after) grows to ``gathered[t]`` (every rank's extents
    summed; empty: P times this rank's), the other shrinks to this rank's
    share of it."""
    op = "ulysses_all_to_all"
    size, rank = _size_rank(comm, "diffcoll::" + op)
    if direction not in (_SEQ_TO_HEAD, _HEAD_TO_SEQ):
        raise InvalidArgumentError(f"direction {direction} is neither seq_to_head (0) nor head_to_seq (1)",
                                   function=f"diffcoll::{op}")
    if gathered and len(gathered) != len(inputs):
        raise InvalidArgumentError(f"{len(inputs)} inputs but {len(gathered)} gathered extents",
                                   function=f"diffcoll::{op}")
    outputs = []
    for t, x in enumerate(inputs):
        shape = list(x.shape)
        s = _axis(seq_axis, len(shape), "seq_axis", op)
        h = _axis(head_axis, len(shape), "head_axis", op)
        grow, shrink = (s, h) if direction == _SEQ_TO_HEAD else (h, s)
        shape[grow] = gathered[t] if gathered else shape[grow] * size
        shape[shrink] = _split_length(shape[shrink], size, rank)
        outputs.append(x.new_empty(shape))
    return outputs


def ulysses_all_to_all(inputs: List[Tensor], comm: int, seq_axis: int, head_axis: int, direction: int,
                       gathered: List[int]) -> List[Tensor]:
    outputs = _ulysses_out(inputs, comm, seq_axis, head_axis, direction, gathered)
    ins = [torch_desc(x, f"inputs[{i}]") for i, x in enumerate(inputs)]
    outs = [torch_desc(y, f"outputs[{i}]") for i, y in enumerate(outputs)]
    h, stream = _comm(comm, "diffcoll::ulysses_all_to_all"), _stream(ins[0]) if ins else None
    _check(c.diffcoll_ulysses_all_to_all(h, (ins, outs), seq_axis, head_axis, direction, stream),
           "diffcoll_ulysses_all_to_all")
    return outputs


def _fused_add_rmsnorm_out(x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor],
                           workspace: int, eps: float, path: int) -> Tuple[Tensor, Tensor]:
    return x.new_empty(x.shape), x.new_empty(x.shape)


def fused_add_rmsnorm(x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], workspace: int,
                      eps: float, path: int) -> Tuple[Tensor, Tensor]:
    y, residual_out = _fused_add_rmsnorm_out(x, residual, weight, workspace, eps, path)
    _fused_norm(x, residual, weight, workspace, eps, path, y, residual_out, "fused_add_rmsnorm")
    return y, residual_out


#: name: (kernel, fake kernel, arguments it writes), for the registration.
OPERATORS = {
    "all_reduce_": (all_reduce_, _no_output, ("tensor",)),
    "broadcast_": (broadcast_, _no_output, ("tensor",)),
    "reduce_": (reduce_, _no_output, ("tensor",)),
    "all_gather": (all_gather, _all_gather_out, ()),
    "reduce_scatter": (reduce_scatter, _reduce_scatter_out, ()),
    "all_to_all": (all_to_all, _all_to_all_out, ()),
    # send only reads its tensor, but an operator that writes nothing and
    # returns nothing is dead code to the compiler: declared as writing it,
    # the send stays in the graph, in order.
    "send": (send, _no_output, ("tensor",)),
    "recv_": (recv_, _no_output, ("tensor",)),
    "cfg_combine_": (cfg_combine_, _no_output, ("output",)),
    "halo_exchange_": (halo_exchange_, _no_output, ("padded",)),
    "gather_slabs": (gather_slabs, _gather_slabs_out, ()),
    "group_norm": (group_norm, _group_norm_out, ()),
    "ulysses_all_to_all": (ulysses_all_to_all, _ulysses_out, ()),
    "fused_add_rmsnorm": (fused_add_rmsnorm, _fused_add_rmsnorm_out, ()),
    "fused_add_rmsnorm_": (fused_add_rmsnorm_, _no_output, ("x", "residual")),
    # ring_start writes nothing visible until ring_wait, but is declared as
    # writing the buffers for the same reason as send; ring_wait fills the
    # other half.
    "ring_start": (ring_start, _no_output, ("buffers",)),
    "ring_wait": (ring_wait, _no_output, ("buffers",)),
}
