# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""The communicator."""
from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ._cfg import _to_enum
from ._errors import InvalidArgumentError, UnsupportedError
from ._handle import OwnedHandle, _check
from ._native import c
from ._tensor import StreamLike, TensorLike, describe, describe_all, stream_handle
from ._types import (
    ReduceOp,
    ReduceOpLike,
    UlyssesDirection,
    UlyssesDirectionLike,
    WireFormat,
    WireFormatLike,
    to_reduce_op,
)

if TYPE_CHECKING:
    from ._cfg import CfgPolicy
    from ._halo import HaloPlan

#: Default bound on every blocking call, in milliseconds (the C default).
DEFAULT_TIMEOUT_MS = 30000


def _nccl_comm_of(process_group: Any) -> int:
    """The ncclComm_t of a PyTorch process group, as an integer address."""
    candidates = [process_group]
    get_backend = getattr(process_group, "_get_backend", None)
    if get_backend is not None:
        try:
            import torch

            candidates.append(get_backend(torch.device("cuda")))
        except Exception:  # noqa: BLE001 - no CUDA backend: reported below
            pass
    for obj in candidates:
        comm_ptr = getattr(obj, "_comm_ptr", None)
        if comm_ptr is None:
            continue
        ptr = int(comm_ptr())
        if ptr == 0:
            raise InvalidArgumentError(
                "the process group's NCCL communicator is not created yet: run one "
                "collective on the group first (or init_process_group(..., device_id=...))",
                function="Comm.from_torch",
            )
        return ptr
    raise UnsupportedError(
        f"Comm.from_torch: {type(process_group).__name__} does not expose its NCCL "
        "communicator (needs the NCCL backend of a PyTorch with ProcessGroupNCCL._comm_ptr()); "
        "create the communicator with Comm.create(...) or Comm.from_env() instead",
        function="Comm.from_torch",
    )


def _config(timeout_ms: int, device_id: int, check: Optional[bool], host: Optional[str]) -> Any:
    cfg = c.diffcoll_config_t()  # starts as DIFFCOLL_CONFIG_INIT
    cfg.timeout_ms = int(timeout_ms)
    cfg.device_id = int(device_id)
    cfg.check = -1 if check is None else int(bool(check))
    if host is not None:
        cfg.host = str(host)  # copied into the config
    return cfg


class Stats(NamedTuple):
    """Traffic counters of a communicator (diffcoll_stats_t)."""

    #: Bytes gathered from strided tensors into staging buffers.
    bytes_packed: int
    #: Bytes scattered from staging buffers back into strided tensors.
    bytes_unpacked: int
    #: Operations that completed on this communicator.
    ops: int


class Comm(OwnedHandle):
    """A diffcoll communicator: a group of ranks that run collectives together.

    Create the world with :meth:`create` or :meth:`from_env`, derive groups
    with :meth:`split` and :meth:`group`, and release it with :meth:`close`
    (or a ``with`` block). Closing is not collective. Like the C API, a
    communicator is used by one thread at a time; distinct communicators may
    be used from different threads (the GIL is released while a call blocks).

    Tensors are anything with ``__dlpack__``, ``__cuda_array_interface__`` or
    ``__array_interface__`` (numpy, PyTorch, CuPy, JAX) or a
    :class:`diffcoll.Tensor`, with any strides; they are used in place, never
    copied: every operation writes its result into the objects you pass and
    returns them. Host operations return when complete; CUDA operations are
    enqueued on ``stream`` and the tensors must stay alive until the stream
    reaches them (as with NCCL).

    Failures raise the :class:`DiffcollError` subclass of the library's status,
    carrying its message.
    """

    def __init__(self, handle: Any, device_id: int = -1) -> None:
        """Wraps a raw ``diffcoll_comm_t*`` (from diffcoll_c); takes ownership."""
        super().__init__(handle)
        self._device_id = device_id
        self._group_keep: Optional[List[Any]] = None

    # ---------------------------------------------------------------- creation

    @classmethod
    def create(
        cls,
        rendezvous: str,
        rank: int,
        size: int,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        device_id: int = -1,
        check: Optional[bool] = None,
        host: Optional[str] = None,
    ) -> "Comm":
        """Creates the world communicator; every rank calls it (diffcoll_comm_create).

        Args:
            rendezvous: where the ranks meet: ``"local://NAME"`` (threads of one
                process), ``"file:///DIR"`` (processes sharing a directory; use a
                fresh one per run) or ``"redis://HOST:PORT[/PREFIX]"``.
            rank: this rank, 0..size-1.
            size: number of ranks.
            timeout_ms: bound on every blocking call, in milliseconds.
            device_id: CUDA device of the device side, -1 for host only.
            check: verify on every collective that all ranks agree (shapes,
                dtypes, strides, arguments); None reads DIFFCOLL_CHECK.
            host: address this rank listens on; None: DIFFCOLL_HOST, else
                127.0.0.1 for local://, else the host name's address.
        """
        cfg = _config(timeout_ms, device_id, check, host)
        (handle,) = _check(
            c.diffcoll_comm_create(rendezvous, int(rank), int(size), cfg), "diffcoll_comm_create"
        )
        return cls(handle, int(device_id))

    @classmethod
    def from_env(
        cls,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        device_id: int = -1,
        check: Optional[bool] = None,
        host: Optional[str] = None,
    ) -> "Comm":
        """Creates the world from torchrun-style variables RANK, WORLD_SIZE and
        DIFFCOLL_STORE (diffcoll_comm_create_from_env). ``device_id=-2`` takes
        the CUDA device from LOCAL_RANK."""
        cfg = _config(timeout_ms, device_id, check, host)
        (handle,) = _check(c.diffcoll_comm_create_from_env(cfg), "diffcoll_comm_create_from_env")
        return cls(handle, int(device_id))

    @classmethod
    def wrap_nccl(
        cls,
        nccl_comm: int,
        rendezvous: str,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        check: Optional[bool] = None,
        host: Optional[str] = None,
    ) -> "Comm":
        """Creates a world communicator around an existing NCCL communicator
        (diffcoll_comm_wrap_nccl).

        Args:
            nccl_comm: the ``ncclComm_t`` as an integer address. Rank, size and
                CUDA device come from it; diffcoll never destroys it, and it must
                outlive the returned communicator.
            rendezvous: where the ranks' host sides meet (as for :meth:`create`).

        Collective over the NCCL communicator's ranks. Raises
        :class:`UnsupportedError` in a build without CUDA.
        """
        cfg = _config(timeout_ms, -1, check, host)
        (handle,) = _check(
            c.diffcoll_comm_wrap_nccl(int(nccl_comm), rendezvous, cfg), "diffcoll_comm_wrap_nccl"
        )
        return cls(handle, -1)

    @classmethod
    def from_torch(
        cls,
        process_group: Any = None,
        rendezvous: Optional[str] = None,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        check: Optional[bool] = None,
        host: Optional[str] = None,
    ) -> "Comm":
        """Wraps the NCCL communicator of a PyTorch process group (torch.distributed).

        Args:
            process_group: a group of the NCCL backend; None for the default
                (WORLD) group. Its NCCL communicator must exist already (run one
                collective on it first, or initialise it with ``device_id=``).
            rendezvous: where the host sides meet; None reads DIFFCOLL_STORE.

        Uses ``_comm_ptr()`` of PyTorch's ProcessGroupNCCL (recent PyTorch) to get
        the ``ncclComm_t``, then :meth:`wrap_nccl`. Raises
        :class:`UnsupportedError` (also a NotImplementedError) when the group
        does not expose its NCCL communicator, and the library's
        :class:`UnsupportedError` in a diffcoll built without CUDA.
        """
        if process_group is None:
            import torch.distributed as dist  # only needed here

            process_group = dist.group.WORLD
        ptr = _nccl_comm_of(process_group)
        if rendezvous is None:
            rendezvous = os.environ.get("DIFFCOLL_STORE")
        if not rendezvous:
            raise InvalidArgumentError(
                "Comm.from_torch needs a rendezvous for the host side: pass rendezvous= "
                "or set DIFFCOLL_STORE (e.g. file:///shared/job42)",
                function="Comm.from_torch",
            )
        return cls.wrap_nccl(ptr, rendezvous, timeout_ms=timeout_ms, check=check, host=host)

    def split(self, color: int, key: int = 0) -> Optional["Comm"]:
        """Splits into groups by ``color``, ordered by ``key`` (diffcoll_comm_split).

        Collective over every rank of this communicator. Returns None for
        ``color=diffcoll.SPLIT_NOCOLOR`` (-1).
        """
        (handle,) = _check(
            c.diffcoll_comm_split(self._handle, int(color), int(key)), "diffcoll_comm_split"
        )
        return None if handle is None else Comm(handle, self._device_id)

    def group(self, ranks: Sequence[int]) -> Optional["Comm"]:
        """A communicator of the listed global ranks; local rank i is ``ranks[i]``
        (diffcoll_comm_create_group). Collective over the listed ranks only;
        other ranks may call it too and get None at once."""
        (handle,) = _check(
            c.diffcoll_comm_create_group(self._handle, [int(r) for r in ranks]),
            "diffcoll_comm_create_group",
        )
        return None if handle is None else Comm(handle, self._device_id)

    # ---------------------------------------------------------------- lifetime

    _destroy_function = "diffcoll_comm_destroy"

    def close(self) -> None:
        """Destroys the communicator (not collective; peers still using it see
        RemoteError). Idempotent; later calls raise InvalidHandleError."""
        self._group_keep = None
        super().close()

    def __repr__(self) -> str:
        if self._handle is None:
            return "<diffcoll.Comm closed>"
        return f"<diffcoll.Comm rank {self.rank} of {self.size}>"

    # ---------------------------------------------------------------- queries

    @property
    def size(self) -> int:
        """Number of ranks."""
        (n,) = _check(c.diffcoll_comm_size(self._handle), "diffcoll_comm_size")
        return n

    @property
    def rank(self) -> int:
        """This rank's local rank."""
        (r,) = _check(c.diffcoll_comm_rank(self._handle), "diffcoll_comm_rank")
        return r

    def global_rank(self, local_rank: Optional[int] = None) -> int:
        """The world rank of ``local_rank`` (default: this rank)."""
        if local_rank is None:
            local_rank = self.rank
        (g,) = _check(
            c.diffcoll_comm_global_rank(self._handle, int(local_rank)), "diffcoll_comm_global_rank"
        )
        return g

    def reserve(self, nbytes: int) -> None:
        """Grows the staging arena to at least ``nbytes`` now (required before a
        CUDA graph capture)."""
        _check(c.diffcoll_comm_reserve(self._handle, int(nbytes)), "diffcoll_comm_reserve")

    def stats(self) -> Stats:
        """The traffic counters (bytes packed/unpacked for strided tensors, ops)."""
        (s,) = _check(c.diffcoll_comm_get_stats(self._handle), "diffcoll_comm_get_stats")
        return Stats(int(s.bytes_packed), int(s.bytes_unpacked), int(s.ops))

    def reset_stats(self) -> None:
        """Sets the traffic counters back to zero."""
        _check(c.diffcoll_comm_reset_stats(self._handle), "diffcoll_comm_reset_stats")

    # ---------------------------------------------------------------- helpers

    def _t(self, obj: TensorLike, what: str, writable: bool, stream: Optional[int]) -> Any:
        desc, keep = describe(
            obj, what, writable=writable, stream=stream, cuda_device=max(self._device_id, 0)
        )
        if self._group_keep is not None:
            self._group_keep.append(keep)
        return desc, keep

    def _ts(
        self, objs: Sequence[TensorLike], what: str, writable: bool, stream: Optional[int], function: str
    ) -> Tuple[List[Any], List[Any]]:
        descs, keep = describe_all(
            objs, what, writable=writable, stream=stream, cuda_device=max(self._device_id, 0),
            function=function,
        )
        if self._group_keep is not None:
            self._group_keep.append(keep)
        return descs, keep

    # ---------------------------------------------------------------- collectives

    def all_reduce(
        self,
        tensor: TensorLike,
        op: ReduceOpLike = "sum",
        scalar: float = 1.0,
        *,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Reduces ``tensor`` across ranks in place and returns it.

        ``op``: "sum", "prod", "min", "max", "avg" or "premul_sum" (or a
        :class:`ReduceOp`); ``scalar`` is this rank's factor for premul_sum.
        """
        s = stream_handle(stream)
        t, keep = self._t(tensor, "tensor", True, s)
        _check(
            c.diffcoll_all_reduce(self._handle, t, int(to_reduce_op(op)), float(scalar), s),
            "diffcoll_all_reduce",
        )
        del keep
        return tensor

    def broadcast(self, tensor: TensorLike, root: int = 0, *, stream: StreamLike = None) -> TensorLike:
        """Copies ``tensor`` from ``root`` to every rank, in place; returns it."""
        s = stream_handle(stream)
        t, keep = self._t(tensor, "tensor", True, s)
        _check(c.diffcoll_broadcast(self._handle, t, int(root), s), "diffcoll_broadcast")
        del keep
        return tensor

    def reduce(
        self,
        tensor: TensorLike,
        op: ReduceOpLike = "sum",
        root: int = 0,
        scalar: float = 1.0,
        *,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Reduces ``tensor`` into root's ``tensor`` in place (others unchanged); returns it."""
        s = stream_handle(stream)
        t, keep = self._t(tensor, "tensor", True, s)
        _check(
            c.diffcoll_reduce(self._handle, t, int(to_reduce_op(op)), float(scalar), int(root), s),
            "diffcoll_reduce",
        )
        del keep
        return tensor

    def all_gather(
        self,
        input: TensorLike,
        output: TensorLike,
        axis: int = 0,
        *,
        wire_format: WireFormatLike = WireFormat.NATIVE,
        scale_block: int = 32,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Concatenates every rank's ``input`` along ``axis`` into ``output``
        (dimension ``axis`` times the group size); returns ``output``.

        ``wire_format="fp8_e4m3"`` or ``"fp8_e5m2"`` (float16, bfloat16 and
        float32 tensors) sends each rank's block as FP8 with one scale per
        ``scale_block`` rows along ``axis`` and index of every other dimension
        but the last (diffcoll_all_gather_ex); every rank, the sender too,
        gets the dequantised values, so all outputs agree."""
        s = stream_handle(stream)
        w = _to_enum(WireFormat, wire_format, "wire_format", "Comm.all_gather")
        i, ki = self._t(input, "input", False, s)
        o, ko = self._t(output, "output", True, s)
        if w == WireFormat.NATIVE:
            _check(c.diffcoll_all_gather(self._handle, i, o, int(axis), s), "diffcoll_all_gather")
        else:
            options = c.diffcoll_all_gather_options_t()  # DIFFCOLL_ALL_GATHER_OPTIONS_INIT
            options.wire_format = int(w)
            options.scale_block = int(scale_block)
            _check(
                c.diffcoll_all_gather_ex(self._handle, i, o, int(axis), options, s),
                "diffcoll_all_gather_ex",
            )
        del ki, ko
        return output

    def reduce_scatter(
        self,
        input: TensorLike,
        output: TensorLike,
        axis: int = 0,
        op: ReduceOpLike = "sum",
        scalar: float = 1.0,
        *,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Reduces ``input`` across ranks and leaves block r (of group-size
        blocks along ``axis``) in rank r's ``output``; returns ``output``."""
        s = stream_handle(stream)
        i, ki = self._t(input, "input", False, s)
        o, ko = self._t(output, "output", True, s)
        _check(
            c.diffcoll_reduce_scatter(
                self._handle, i, o, int(axis), int(to_reduce_op(op)), float(scalar), s
            ),
            "diffcoll_reduce_scatter",
        )
        del ki, ko
        return output

    def all_to_all(
        self,
        input: TensorLike,
        output: TensorLike,
        scatter_axis: int = 0,
        gather_axis: int = 0,
        *,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Sends block j of ``input`` (along ``scatter_axis``) to rank j and
        concatenates the blocks received along ``gather_axis`` of ``output``;
        returns ``output``."""
        s = stream_handle(stream)
        i, ki = self._t(input, "input", False, s)
        o, ko = self._t(output, "output", True, s)
        _check(
            c.diffcoll_all_to_all(self._handle, i, o, int(scatter_axis), int(gather_axis), s),
            "diffcoll_all_to_all",
        )
        del ki, ko
        return output

    def gather(
        self,
        input: TensorLike,
        output: Optional[TensorLike] = None,
        axis: int = 0,
        root: int = 0,
        *,
        stream: StreamLike = None,
    ) -> Optional[TensorLike]:
        """Concatenates every rank's ``input`` along ``axis`` into root's
        ``output`` (may be None elsewhere); returns ``output``."""
        s = stream_handle(stream)
        i, ki = self._t(input, "input", False, s)
        o, ko = self._t(output, "output", True, s)
        _check(c.diffcoll_gather(self._handle, i, o, int(axis), int(root), s), "diffcoll_gather")
        del ki, ko
        return output

    def scatter(
        self,
        input: Optional[TensorLike],
        output: TensorLike,
        axis: int = 0,
        root: int = 0,
        *,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Splits root's ``input`` (may be None elsewhere) along ``axis`` into
        group-size blocks; rank r receives block r in ``output``; returns it."""
        s = stream_handle(stream)
        i, ki = self._t(input, "input", False, s)
        o, ko = self._t(output, "output", True, s)
        _check(c.diffcoll_scatter(self._handle, i, o, int(axis), int(root), s), "diffcoll_scatter")
        del ki, ko
        return output

    def send(self, tensor: TensorLike, peer: int, *, stream: StreamLike = None) -> None:
        """Sends ``tensor`` to local rank ``peer`` (which calls :meth:`recv` with
        the same shape and dtype; strides may differ). Blocking, unless inside
        :meth:`p2p_group`."""
        s = stream_handle(stream)
        t, keep = self._t(tensor, "tensor", False, s)
        _check(c.diffcoll_send(self._handle, t, int(peer), s), "diffcoll_send")
        del keep

    def recv(self, tensor: TensorLike, peer: int, *, stream: StreamLike = None) -> TensorLike:
        """Receives into ``tensor`` from local rank ``peer``; returns it (filled
        once the call, or the enclosing :meth:`p2p_group`, completes)."""
        s = stream_handle(stream)
        t, keep = self._t(tensor, "tensor", True, s)
        _check(c.diffcoll_recv(self._handle, t, int(peer), s), "diffcoll_recv")
        del keep
        return tensor

    @contextlib.contextmanager
    def p2p_group(self) -> Iterator["Comm"]:
        """Groups point-to-point operations (diffcoll_group_start/end)::

            with comm.p2p_group():
                comm.send(a, peer=(rank + 1) % size)
                comm.recv(b, peer=(rank - 1) % size)

        send/recv inside the block are only recorded, then posted together
        when the block ends, so exchanges in both directions cannot deadlock.
        The tensors are kept alive until then. Groups do not nest, and other
        operations inside a group fail with InvalidArgumentError.
        """
        _check(c.diffcoll_group_start(self._handle), "diffcoll_group_start")
        self._group_keep = []
        try:
            yield self
        except BaseException:
            # Close the group so the communicator stays usable, but report the
            # caller's exception rather than what ending the group says.
            try:
                _check(c.diffcoll_group_end(self._handle), "diffcoll_group_end")
            except Exception:  # noqa: BLE001
                pass
            raise
        else:
            _check(c.diffcoll_group_end(self._handle), "diffcoll_group_end")
        finally:
            self._group_keep = None

    # ---------------------------------------------------------------- CFG and halo

    def cfg_combine(
        self,
        policy: "CfgPolicy",
        local_preds: Sequence[TensorLike],
        out: TensorLike,
        step: int = 0,
        *,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Combines CFG predictions spread over the ranks of this CFG group into
        every rank's ``out`` and returns it (diffcoll_cfg_combine_parallel).

        Collective: this communicator is the CFG group (its size the CFG
        degree, its rank the CFG rank); every rank passes the same policy,
        shape, dtype and step.

        Args:
            policy: the :class:`CfgPolicy`.
            local_preds: this rank's predictions, for the branches
                ``policy.dispatch(self.size, self.rank)`` lists, in that order
                (empty for a rank without branches).
            out: receives the combined, post-processed prediction (same on
                every rank); any non-overlapping strides.
            step: the denoising step (for ``zero_init_steps``).

        With ``order="parallel"`` the result equals
        :meth:`CfgPolicy.combine_serial` bit for bit in the cases docs/CFG.md
        lists (e.g. two ranks with one branch each).
        """
        s = stream_handle(stream)
        descs, keep = self._ts(local_preds, "local_preds", False, s, "Comm.cfg_combine")
        o, ko = self._t(out, "out", True, s)
        _check(
            c.diffcoll_cfg_combine_parallel(
                self._handle, getattr(policy, "_handle", None), descs, o, int(step), s
            ),
            "diffcoll_cfg_combine_parallel",
        )
        del keep, ko
        return out

    def halo_plan(self, **config: Any) -> "HaloPlan":
        """A :class:`HaloPlan` on this communicator: ``HaloPlan(self, **config)``."""
        from ._halo import HaloPlan

        return HaloPlan(self, **config)

    def gather_slabs(
        self,
        slab: TensorLike,
        whole: Optional[TensorLike],
        axis: int,
        root: int = -1,
        *,
        stream: StreamLike = None,
    ) -> Optional[TensorLike]:
        """Reassembles every rank's slab along ``axis`` into ``whole`` and
        returns ``whole`` (diffcoll_gather_slabs). Collective.

        Rank r's ``slab`` holds rows ``split_extent(whole.shape[axis], size, r)``
        of the whole and equals it in every other dimension. ``root`` >= 0:
        only root's ``whole`` is written (None elsewhere is fine); -1: every
        rank's. Any strides; the slab may be its own place in ``whole``.
        """
        s = stream_handle(stream)
        i, ki = self._t(slab, "slab", False, s)
        o, ko = self._t(whole, "whole", True, s)
        _check(
            c.diffcoll_gather_slabs(self._handle, i, o, int(axis), int(root), s),
            "diffcoll_gather_slabs",
        )
        del ki, ko
        return whole

    # ---------------------------------------------------------------- DiT and VAE blocks

    def group_norm(
        self,
        input: TensorLike,
        output: Optional[TensorLike] = None,
        *,
        weight: Optional[TensorLike] = None,
        bias: Optional[TensorLike] = None,
        num_groups: int,
        eps: float = 1e-6,
        stream: StreamLike = None,
    ) -> TensorLike:
        """GroupNorm of this rank's slab with the statistics of the whole
        activation (diffcoll_group_norm); returns ``output``, or ``input``
        when normalising in place (``output`` None or ``input`` itself).

        Collective: every rank passes its slab of one activation, logical
        layout [N, C, spatial...] (any strides), split along any spatial
        dimension (a slab may be empty), with the same N, C, dtype,
        ``num_groups``, ``eps`` and the same presence and dtypes of ``weight``
        and ``bias``. The result equals GroupNorm of the whole within float32
        rounding, and the statistics are bit-identical on every rank.

        Args:
            input: float16, bfloat16 or float32, at least 2 dimensions.
            output: None (in place) or a tensor of input's shape, dtype and
                device, any non-overlapping strides, not overlapping ``input``.
            weight, bias: None (1 / 0) or [C] of input's dtype or float32.
            num_groups: G >= 1 dividing C.
            eps: added to the variance, finite and >= 0 (VAEs: 1e-6, torch: 1e-5).
        """
        s = stream_handle(stream)
        in_place = output is None or output is input
        i, ki = self._t(input, "input", in_place, s)
        o, ko = (i, None) if in_place else self._t(output, "output", True, s)
        w, kw = self._t(weight, "weight", False, s)
        b, kb = self._t(bias, "bias", False, s)
        _check(
            c.diffcoll_group_norm(self._handle, i, o, w, b, int(num_groups), float(eps), s),
            "diffcoll_group_norm",
        )
        del ki, ko, kw, kb
        return input if in_place else output

    def ulysses_all_to_all(
        self,
        inputs: Sequence[TensorLike],
        outputs: Sequence[TensorLike],
        *,
        seq_axis: int,
        head_axis: int,
        direction: UlyssesDirectionLike = UlyssesDirection.SEQ_TO_HEAD,
        query_heads: int = 0,
        wire_format: WireFormatLike = WireFormat.NATIVE,
        scale_block: int = 32,
        stream: StreamLike = None,
    ) -> Sequence[TensorLike]:
        """Ulysses all-to-all of several tensors (e.g. q, k, v) in one exchange
        (diffcoll_ulysses_all_to_all); returns ``outputs``.

        Collective over this communicator, the Ulysses group of P ranks: every
        rank passes the same number of tensors, axes, direction, options, dtype
        and global shapes. With S and H a tensor's global sequence length and
        head count, rank r holds ``split_extent(S, P, r)`` tokens /
        ``split_extent(H, P, r)`` heads (torch.tensor_split's rule, no padding):

        * ``"seq_to_head"`` (before attention): ``inputs[t]`` has S_r along
          ``seq_axis`` and H along ``head_axis``; ``outputs[t]`` has S and H_r.
        * ``"head_to_seq"`` (after attention): the inverse; the round trip
          returns the input bit for bit.

        Grouped-query attention: with ``query_heads=Q``, a tensor with K != Q
        heads (K divides Q) is k/v, and rank r receives exactly the k/v heads
        its query heads attend to, ``ulysses_kv_heads(Q, K, P, r)``, each sent
        once to each rank that needs it (no copy of k/v up front). Local query
        head i of the rank attends local k/v head ``(qs + i) // (Q // K) -
        start`` (qs: its first query head, start: its first k/v head).

        ``wire_format="fp8_e4m3"`` / ``"fp8_e5m2"`` moves the messages as FP8
        with one float scale per ``scale_block`` tokens and head
        (diffcoll_ulysses_all_to_all_ex); the slab a rank keeps stays exact.

        Tensors have any strides (no ``.contiguous()`` needed on either side);
        outputs must not overlap inputs or each other. Axes may be negative.
        """
        s = stream_handle(stream)
        fn = "Comm.ulysses_all_to_all"
        d = _to_enum(UlyssesDirection, direction, "direction", fn)
        w = _to_enum(WireFormat, wire_format, "wire_format", fn)
        ins, ki = self._ts(inputs, "inputs", False, s, fn)
        outs, ko = self._ts(outputs, "outputs", True, s, fn)
        if len(outs) != len(ins):
            raise InvalidArgumentError(f"{len(ins)} inputs but {len(outs)} outputs", function=fn)
        if int(query_heads) == 0 and w == WireFormat.NATIVE:
            _check(
                c.diffcoll_ulysses_all_to_all(
                    self._handle, (ins, outs), int(seq_axis), int(head_axis), int(d), s
                ),
                "diffcoll_ulysses_all_to_all",
            )
        else:
            options = c.diffcoll_ulysses_options_t()  # DIFFCOLL_ULYSSES_OPTIONS_INIT
            options.query_heads = int(query_heads)
            options.wire_format = int(w)
            options.scale_block = int(scale_block)
            _check(
                c.diffcoll_ulysses_all_to_all_ex(
                    self._handle, (ins, outs), int(seq_axis), int(head_axis), int(d), options, s
                ),
                "diffcoll_ulysses_all_to_all_ex",
            )
        del ki, ko
        return outputs

    def barrier(self, *, stream: StreamLike = None) -> None:
        """Returns once every rank has entered the barrier."""
        _check(c.diffcoll_barrier(self._handle, stream_handle(stream)), "diffcoll_barrier")


#: Colour that makes :meth:`Comm.split` return None.
SPLIT_NOCOLOR: int = c.DIFFCOLL_SPLIT_NOCOLOR

__all__ = ["Comm", "Stats", "SPLIT_NOCOLOR", "DEFAULT_TIMEOUT_MS", "ReduceOp"]
