# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""diffcoll's operations as PyTorch operators that torch.compile and CUDA
graphs take whole.

Every operation is a ``torch.library.custom_op`` in the ``diffcoll::``
namespace (``torch.ops.diffcoll.*``) with a fake kernel, so the compiler
propagates shapes without running it and a compiled block has no graph
break; operators that write their arguments declare it (their names end in
``_``). Communicators, CFG policies, halo plans, fused-norm workspaces and
rings cross the compiler as small integers (:func:`diffcoll.handle`; the
functions below take the object or its handle), and CUDA work goes to
PyTorch's current stream, so it lands in a CUDA graph captured around the
call. Tensors keep their strides: views go in as they are (no
``.contiguous()``), outputs are new tensors::

    import diffcoll, diffcoll.torch as dct

    ps = diffcoll.ParallelState(world, ulysses=world.size)
    u = ps.handles.ulysses                                  # an int
    q, k, v = dct.ulysses_all_to_all([q, k, v], u, seq_axis=1, head_axis=2)
    o = attention(q, k, v)
    (o,) = dct.ulysses_all_to_all([o], u, seq_axis=1, head_axis=2, direction="head_to_seq")

Outside a trace the functions call the kernels directly, without PyTorch's
dispatcher, so an eager call costs about what the library call costs.
Needs PyTorch 2.4 or later for the operators (:data:`COMPILABLE`); with an
older one (:data:`UNAVAILABLE_REASON` says why) the functions still run
eagerly.

Every function is collective over its communicator as the
:class:`diffcoll.Comm` method of the same name is, and fails with the
:class:`diffcoll.DiffcollError` that method raises. CUDA graphs: reserve the
staging an operation needs before capturing (:meth:`diffcoll.Comm.reserve`,
or run it once outside the capture).
"""
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .._errors import InvalidArgumentError
from .._parallel import ParallelState
from .._registry import handle, release as release_handle
from .._types import _OP_NAMES, FusedNormPath, UlyssesDirection
from . import _kernels as _k
from ._registration import UNAVAILABLE_REASON

#: True when the operators are registered (PyTorch >= 2.4) and torch.compile traces them.
COMPILABLE: bool = UNAVAILABLE_REASON is None

#: A communicator, policy, plan, workspace or ring, or its handle.
HandleLike = Union[int, Any]

_REDUCE_OPS = {name: int(op) for name, op in _OP_NAMES.items()}
_DIRECTIONS = {d.name.lower(): int(d) for d in UlyssesDirection}
_PATHS = {p.name.lower(): int(p) for p in FusedNormPath}

if COMPILABLE:
    # Dynamo's own flag is the cheaper test; non-strict export, which it
    # misses, traces fake or functional tensors, which the type test catches.
    _is_compiling = getattr(torch.compiler, "is_dynamo_compiling", torch.compiler.is_compiling)
    _dispatch_modes = torch._C._len_torch_dispatch_stack
    _Tensor = torch.Tensor

    def _eager(t: Any) -> bool:
        """True where the kernel may run directly: not under torch.compile or
        export (which need the operator), a plain tensor (not a fake or
        functional one), no dispatch mode tracing the call."""
        return not _is_compiling() and type(t) is _Tensor and _dispatch_modes() == 0

else:

    def _eager(t: Any) -> bool:
        return True


def _code(names: Mapping[str, int], value: Union[str, int], what: str) -> int:
    """The integer code of an enumeration value given by name or number."""
    if isinstance(value, str):
        code = names.get(value.lower())
        if code is None:
            raise InvalidArgumentError(f"{what} {value!r} is not one of: {', '.join(names)}",
                                       function="diffcoll.torch")
        return code
    return int(value)


# ---------------------------------------------------------------- collectives


def all_reduce_(tensor: Tensor, comm: HandleLike, op: Union[str, int] = "sum", scalar: float = 1.0) -> Tensor:
    """Reduces ``tensor`` over ``comm`` in place (``diffcoll::all_reduce_``) and
    returns it. ``op``: "sum", "prod", "min", "max", "avg" or "premul_sum"
    (``scalar`` is this rank's factor). Any strides."""
    args = (tensor, handle(comm), _code(_REDUCE_OPS, op, "op"), float(scalar))
    if _eager(tensor):
        _k.all_reduce_(*args)
    else:
        torch.ops.diffcoll.all_reduce_(*args)
    return tensor


def all_reduce(tensor: Tensor, comm: HandleLike, op: Union[str, int] = "sum", scalar: float = 1.0) -> Tensor:
    """The reduction of ``tensor`` over ``comm`` as a new tensor (a copy of
    ``tensor`` reduced in place; ``tensor`` is unchanged), like
    torch.distributed's functional all_reduce."""
    return all_reduce_(tensor.clone(), comm, op, scalar)


def broadcast_(tensor: Tensor, comm: HandleLike, root: int = 0) -> Tensor:
    """Copies root's ``tensor`` into every rank's, in place (``diffcoll::broadcast_``); returns it."""
    args = (tensor, handle(comm), int(root))
    if _eager(tensor):
        _k.broadcast_(*args)
    else:
        torch.ops.diffcoll.broadcast_(*args)
    return tensor


def reduce_(tensor: Tensor, comm: HandleLike, op: Union[str, int] = "sum", root: int = 0,
            scalar: float = 1.0) -> Tensor:
    """Reduces ``tensor`` into root's ``tensor`` in place, others unchanged
    (``diffcoll::reduce_``); returns it."""
    args = (tensor, handle(comm), _code(_REDUCE_OPS, op, "op"), int(root), float(scalar))
    if _eager(tensor):
        _k.reduce_(*args)
    else:
        torch.ops.diffcoll.reduce_(*args)
    return tensor


def all_gather(input: Tensor, comm: HandleLike, axis: int = 0) -> Tensor:
    """Every rank's ``input`` concatenated along ``axis``, a new contiguous
    tensor (``diffcoll::all_gather``)."""
    args = (input, handle(comm), int(axis))
    return _k.all_gather(*args) if _eager(input) else torch.ops.diffcoll.all_gather(*args)


def reduce_scatter(input: Tensor, comm: HandleLike, axis: int = 0, op: Union[str, int] = "sum",
                   scalar: float = 1.0) -> Tensor:
    """Block r (of group-size equal blocks along ``axis``) of the reduction of
    ``input`` over ``comm``, on rank r, a new tensor (``diffcoll::reduce_scatter``)."""
    args = (input, handle(comm), int(axis), _code(_REDUCE_OPS, op, "op"), float(scalar))
    return _k.reduce_scatter(*args) if _eager(input) else torch.ops.diffcoll.reduce_scatter(*args)


def all_to_all(input: Tensor, comm: HandleLike, scatter_axis: int = 0, gather_axis: int = 0) -> Tensor:
    """Block j of ``input`` along ``scatter_axis`` goes to rank j; the blocks
    received are concatenated along ``gather_axis`` of a new tensor
    (``diffcoll::all_to_all``)."""
    args = (input, handle(comm), int(scatter_axis), int(gather_axis))
    return _k.all_to_all(*args) if _eager(input) else torch.ops.diffcoll.all_to_all(*args)


def send(tensor: Tensor, comm: HandleLike, peer: int) -> None:
    """Sends ``tensor`` to local rank ``peer``, which calls :func:`recv_`
    (``diffcoll::send``). The compiler is told it writes ``tensor`` (it only
    reads it) so that it keeps the send in place: a tensor still read
    afterwards may be copied once."""
    args = (tensor, handle(comm), int(peer))
    if _eager(tensor):
        _k.send(*args)
    else:
        torch.ops.diffcoll.send(*args)


def recv_(tensor: Tensor, comm: HandleLike, peer: int) -> Tensor:
    """Receives into ``tensor`` from local rank ``peer`` (``diffcoll::recv_``); returns it."""
    args = (tensor, handle(comm), int(peer))
    if _eager(tensor):
        _k.recv_(*args)
    else:
        torch.ops.diffcoll.recv_(*args)
    return tensor


# ---------------------------------------------------------------- CFG, halo, slabs, GroupNorm


def cfg_combine(local_preds: Sequence[Tensor], comm: HandleLike, policy: HandleLike, step: int = 0,
                out: Optional[Tensor] = None) -> Tensor:
    """The CFG-combined, post-processed prediction on every rank of the CFG
    group ``comm`` (``diffcoll::cfg_combine_``): ``local_preds`` are this
    rank's predictions of the branches ``policy.dispatch(size, rank)`` lists
    (:meth:`diffcoll.ParallelState.cfg_branches`), possibly none; the result
    goes to ``out`` (needed when there are none), else to a new tensor like
    the first prediction. The policy's ``order`` (serial, parallel, ...)
    applies as in :meth:`diffcoll.Comm.cfg_combine`. ``step`` matters only
    for ``zero_init_steps``; leave it 0 otherwise (each value compiles once)."""
    preds = list(local_preds)
    if out is None:
        if not preds:
            raise InvalidArgumentError("a rank without predictions must pass out=",
                                       function="diffcoll.torch.cfg_combine")
        out = torch.empty_like(preds[0])
    args = (preds, out, handle(comm), handle(policy), int(step))
    if _eager(out):
        _k.cfg_combine_(*args)
    else:
        torch.ops.diffcoll.cfg_combine_(*args)
    return out


def halo_exchange_(padded: Tensor, plan: HandleLike) -> Tensor:
    """Fills the halo of ``padded`` from the neighbouring ranks of the
    :class:`diffcoll.HaloPlan` ``plan``, in place (``diffcoll::halo_exchange_``); returns it."""
    args = (padded, handle(plan))
    if _eager(padded):
        _k.halo_exchange_(*args)
    else:
        torch.ops.diffcoll.halo_exchange_(*args)
    return padded


def gather_slabs(slab: Tensor, comm: HandleLike, axis: int, extent: int, root: int = -1) -> Tensor:
    """The whole tensor, ``extent`` rows along ``axis``, reassembled from every
    rank's slab (rows :func:`diffcoll.split_extent` of it), as a new tensor
    (``diffcoll::gather_slabs``). ``root`` >= 0: only root gets it, the
    others an empty tensor (0 rows along ``axis``)."""
    args = (slab, handle(comm), int(axis), int(extent), int(root))
    return _k.gather_slabs(*args) if _eager(slab) else torch.ops.diffcoll.gather_slabs(*args)


def group_norm(input: Tensor, comm: HandleLike, num_groups: int, weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-6) -> Tensor:
    """GroupNorm of this rank's slab with the statistics of the whole
    activation split over ``comm`` (``diffcoll::group_norm``), as a new tensor
    of input's layout (see :meth:`diffcoll.Comm.group_norm`)."""
    args = (input, weight, bias, handle(comm), int(num_groups), float(eps))
    return _k.group_norm(*args) if _eager(input) else torch.ops.diffcoll.group_norm(*args)


# ---------------------------------------------------------------- DiT blocks


def ulysses_all_to_all(inputs: Sequence[Tensor], comm: HandleLike, seq_axis: int, head_axis: int,
                       direction: Union[str, int] = "seq_to_head",
                       gathered: Optional[Sequence[int]] = None) -> List[Tensor]:
    """Ulysses all-to-all of several tensors (q, k, v) in one exchange over
    the Ulysses group ``comm`` (``diffcoll::ulysses_all_to_all``); returns new
    contiguous tensors in the inputs' dimension order.

    ``"seq_to_head"``: ``inputs[t]`` holds this rank's tokens and every head;
    the output every token and this rank's heads. ``"head_to_seq"``: the
    inverse. Inputs may be any views (e.g. q, k, v unbound from one QKV
    projection): the layout change happens in diffcoll's pack. ``gathered``:
    the whole extent of the growing axis per tensor (the sequence length
    before attention, the head count after) where the split is uneven; None
    for P times this rank's."""
    args = (list(inputs), handle(comm), int(seq_axis), int(head_axis),
            _code(_DIRECTIONS, direction, "direction"), [int(g) for g in gathered] if gathered else [])
    if _eager(args[0][0] if args[0] else None):
        return _k.ulysses_all_to_all(*args)
    return torch.ops.diffcoll.ulysses_all_to_all(*args)


def fused_add_rmsnorm(x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], workspace: HandleLike,
                      eps: float = 1e-6, path: Union[str, int] = "auto") -> Tuple[Tensor, Tensor]:
    """``residual_out = allreduce_sum(x) + residual``; ``y = rmsnorm(residual_out)
    * weight`` over the workspace's group, as new tensors ``(y, residual_out)``
    (``diffcoll::fused_add_rmsnorm``; see :class:`diffcoll.FusedNormWorkspace`)."""
    args = (x, residual, weight, handle(workspace), float(eps), _code(_PATHS, path, "path"))
    if _eager(x):
        return _k.fused_add_rmsnorm(*args)
    return torch.ops.diffcoll.fused_add_rmsnorm(*args)


def fused_add_rmsnorm_(x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], workspace: HandleLike,
                       eps: float = 1e-6, path: Union[str, int] = "auto") -> Tuple[Tensor, Optional[Tensor]]:
    """:func:`fused_add_rmsnorm` in place: ``y`` into ``x``, ``residual_out``
    into ``residual`` (``diffcoll::fused_add_rmsnorm_``); returns ``(x, residual)``."""
    args = (x, residual, weight, handle(workspace), float(eps), _code(_PATHS, path, "path"))
    if _eager(x):
        _k.fused_add_rmsnorm_(*args)
    else:
        torch.ops.diffcoll.fused_add_rmsnorm_(*args)
    return x, residual


def ring_start(ring: HandleLike, buffers: Sequence[Tensor], current: int) -> None:
    """Posts one step of the :class:`diffcoll.Ring` ``ring``
    (``diffcoll::ring_start``): half ``current`` goes to the next rank, the
    other half receives. ``buffers`` are the ring's tensors, half 0 then
    half 1 (:attr:`diffcoll.Ring.buffers` itself is the cheapest to check);
    ``current`` is the half the caller holds as current (the ring's
    ``current`` before the loop; the operators check it).

    Eagerly, with the ring's own tensors, the transfer runs while the caller
    works on the current half. Under torch.compile (the graph may hand its own
    copies of the halves, and keep other values in the ring's memory) and with
    other tensors, ring_start only checks and :func:`ring_wait` exchanges the
    halves handed to it, grouped send and receive on the current stream: no
    overlap, but nothing written where the graph does not expect it."""
    number = ring if type(ring) is int else handle(ring)  # every ring step: no frame to spare
    if type(buffers) is not tuple and type(buffers) is not list:  # a tuple: maybe Ring.buffers itself
        buffers = list(buffers)
    b = buffers[0]
    # _eager(b) written out: ring attention takes two ring steps per block.
    if not COMPILABLE or (not _is_compiling() and type(b) is _Tensor and _dispatch_modes() == 0):
        _k.ring_step(buffers, number, current, False)
    else:
        torch.ops.diffcoll.ring_start(list(buffers), number, int(current))


def ring_wait(ring: HandleLike, buffers: Sequence[Tensor], current: int) -> int:
    """Completes the step :func:`ring_start` posted (``diffcoll::ring_wait``);
    returns the new current half, ``1 - current``, which now holds the block
    received."""
    number = ring if type(ring) is int else handle(ring)  # every ring step: no frame to spare
    if type(buffers) is not tuple and type(buffers) is not list:  # a tuple: maybe Ring.buffers itself
        buffers = list(buffers)
    b = buffers[0]
    if not COMPILABLE or (not _is_compiling() and type(b) is _Tensor and _dispatch_modes() == 0):
        _k.ring_step(buffers, number, current, True)
    else:
        torch.ops.diffcoll.ring_wait(list(buffers), number, int(current))
    return 1 - int(current)


__all__ = [
    "COMPILABLE",
    "UNAVAILABLE_REASON",
    "HandleLike",
    "handle",
    "release_handle",
    "ParallelState",
    "all_reduce_",
    "all_reduce",
    "broadcast_",
    "reduce_",
    "all_gather",
    "reduce_scatter",
    "all_to_all",
    "send",
    "recv_",
    "cfg_combine",
    "halo_exchange_",
    "gather_slabs",
    "group_norm",
    "ulysses_all_to_all",
    "fused_add_rmsnorm",
    "fused_add_rmsnorm_",
    "ring_start",
    "ring_wait",
]
