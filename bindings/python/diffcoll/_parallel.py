# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""The parallel state of a diffusion transformer run: every process group a
model needs and this rank's place in each, built in one call (what xDiT's
and SGLang's ``parallel_state`` modules hold as globals)."""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from . import _registry
from ._cfg import CfgPolicy
from ._comm import DEFAULT_TIMEOUT_MS, Comm
from ._errors import InvalidArgumentError
from ._halo import split_extent
from ._usp import UspMesh

#: The groups of a :class:`ParallelState`, innermost first.
GROUPS = ("tp", "ulysses", "ring", "sp", "cfg", "data")


class ParallelDims(NamedTuple):
    """One number per group of a :class:`ParallelState` (degrees, ranks or handles)."""

    #: Tensor parallelism (heads / hidden split, partial sums all-reduced).
    tp: int
    #: Ulysses sequence parallelism (all-to-all attention).
    ulysses: int
    #: Ring attention.
    ring: int
    #: Sequence parallelism as a whole: Ulysses x ring.
    sp: int
    #: CFG parallelism (guidance branches on different ranks).
    cfg: int
    #: Data parallelism (independent requests).
    data: int


class ParallelState:
    """Every process group of a USP + tensor-parallel mesh over ``world``,
    with this rank's place in each and the shard helpers a model needs.

    Collective over ``world``: every rank passes the same degrees, whose
    product must be ``world.size`` (``data=None`` takes the rest). Ranks are
    laid out as xDiT lays them out (order tp-sp-cfg-dp, tensor parallelism
    innermost): world rank ``n`` has the coordinates ``t = n % T`` and, with
    ``m = n // T``, ``u = m % U``, ``r = (m // U) % R``, ``c = (m // (U*R)) % C``,
    ``d = m // (U*R*C)``; each group holds the ranks that share every other
    coordinate, ordered by its own, which is the rank's local rank in it.
    The sequence-parallel group (Ulysses x ring) has local rank ``u + U*r``::

        with diffcoll.ParallelState(world, ulysses=2, cfg=2) as ps:
            start, length = ps.split_extent(seq_len)      # this rank's tokens
            x = ps.shard(x, dim=1)                        # ... as a view
            mine = ps.cfg_branches(policy)                # its guidance branches
            ps.groups.ulysses.ulysses_all_to_all(...)     # a group, as a Comm
            ps.handles.ulysses                            # ... as a diffcoll.torch handle

    Attributes:
        world: the communicator the state was built on.
        groups: the groups as :class:`~diffcoll.Comm` objects (a
            ``ParallelDims`` of communicators).
        degrees: the size of each group.
        coords: this rank's local rank in each group.
        handles: each group's handle for the :mod:`diffcoll.torch` operators
            (:func:`diffcoll.handle`).

    Ownership: the state owns its groups and closes them in :meth:`close` (or
    at the end of a ``with`` block); ``world`` too when the state created it
    (:meth:`from_torch`, :meth:`from_env`). Closing is local.
    """

    def __init__(
        self,
        world: Comm,
        *,
        tp: int = 1,
        ulysses: int = 1,
        ring: int = 1,
        cfg: int = 1,
        data: Optional[int] = None,
    ) -> None:
        self._owned: List[Any] = []  # closed in reverse order
        size, rank = world.size, world.rank
        inner = int(tp) * int(ulysses) * int(ring) * int(cfg)
        if min(int(tp), int(ulysses), int(ring), int(cfg)) < 1 or (data is not None and int(data) < 1):
            raise InvalidArgumentError(
                f"degrees must be >= 1 (tp={tp}, ulysses={ulysses}, ring={ring}, cfg={cfg}, data={data})",
                function="diffcoll.ParallelState",
            )
        if data is None:
            data = size // inner if size % inner == 0 else 0
        if inner * int(data) != size:
            raise InvalidArgumentError(
                f"tp={tp} x ulysses={ulysses} x ring={ring} x cfg={cfg} x data={data} "
                f"is not the world size {size}",
                function="diffcoll.ParallelState",
            )
        self.world = world
        #: This rank in ``world`` and the number of ranks there.
        self.rank, self.world_size = rank, size
        tp = int(tp)
        try:
            # Tensor-parallel ranks are consecutive; the USP mesh runs over the
            # ranks of one tensor-parallel coordinate (the whole world if tp == 1).
            tp_group = world.split(color=rank // tp, key=rank % tp)
            self._owned.append(tp_group)
            usp_world = world
            if tp > 1:
                usp_world = world.split(color=rank % tp, key=rank // tp)
                self._owned.append(usp_world)
            mesh = UspMesh(usp_world, ulysses=int(ulysses), ring=int(ring), cfg=int(cfg), data=int(data))
            self._owned.append(mesh)
        except BaseException:
            self.close()
            raise
        self.groups = ParallelDims(tp_group, mesh.ulysses, mesh.ring, mesh.sp, mesh.cfg, mesh.data)
        self.degrees = ParallelDims(*(g.size for g in self.groups))
        self.coords = ParallelDims(*(g.rank for g in self.groups))
        self.handles = ParallelDims(*(_registry.handle(g) for g in self.groups))

    @classmethod
    def from_torch(
        cls,
        process_group: Any = None,
        rendezvous: Optional[str] = None,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        **degrees: int,
    ) -> "ParallelState":
        """The state over a PyTorch NCCL process group (None: WORLD), wrapped
        with :meth:`Comm.from_torch`; ``degrees`` as for the constructor."""
        world = Comm.from_torch(process_group, rendezvous, timeout_ms=timeout_ms)
        return cls._owning(world, degrees)

    @classmethod
    def from_env(cls, *, device_id: int = -1, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 **degrees: int) -> "ParallelState":
        """The state over the world of :meth:`Comm.from_env` (torchrun's
        RANK, WORLD_SIZE and DIFFCOLL_STORE); ``degrees`` as for the constructor."""
        world = Comm.from_env(device_id=device_id, timeout_ms=timeout_ms)
        return cls._owning(world, degrees)

    @classmethod
    def _owning(cls, world: Comm, degrees: Dict[str, int]) -> "ParallelState":
        try:
            state = cls(world, **degrees)
        except BaseException:
            world.close()
            raise
        state._owned.insert(0, world)
        return state

    # ---------------------------------------------------------------- places

    def group(self, name: str) -> Comm:
        """The group called ``name`` (one of :data:`GROUPS`)."""
        return self.groups[self._index(name)]

    def split_extent(self, extent: int, group: str = "sp") -> Tuple[int, int]:
        """(start, length) of this rank's share of ``extent`` rows split over
        ``group`` (torch.tensor_split's rule, :func:`diffcoll.split_extent`):
        by default its tokens of a sequence of ``extent`` tokens; with
        ``"ulysses"`` its heads after the Ulysses all-to-all; with ``"tp"`` its
        heads or hidden columns under tensor parallelism."""
        i = self._index(group)
        return split_extent(int(extent), self.degrees[i], self.coords[i])

    def shard(self, x: Any, dim: int, group: str = "sp") -> Any:
        """This rank's share of ``x`` along ``dim`` over ``group`` (see
        :meth:`split_extent`), as a view (a slice: no copy) of a PyTorch
        tensor or a numpy array."""
        ndim = len(x.shape)
        if not -ndim <= dim < ndim:
            raise InvalidArgumentError(f"dim {dim} is out of range for {ndim} dimensions",
                                       function="ParallelState.shard")
        dim %= ndim
        start, length = self.split_extent(x.shape[dim], group)
        return x[(slice(None),) * dim + (slice(start, start + length),)]

    def cfg_branches(self, policy: CfgPolicy) -> List[int]:
        """The guidance branches of ``policy`` this rank runs (its CFG group's
        dispatch); pass their predictions to :meth:`Comm.cfg_combine` on
        ``groups.cfg`` or to :func:`diffcoll.torch.cfg_combine`."""
        return policy.dispatch(self.degrees.cfg, self.coords.cfg)

    @staticmethod
    def _index(name: str) -> int:
        try:
            return GROUPS.index(name)
        except ValueError:
            raise InvalidArgumentError(
                f"no group is called {name!r}; the groups are {', '.join(GROUPS)}",
                function="diffcoll.ParallelState",
            ) from None

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Closes the groups (and ``world`` when the state created it); local,
        idempotent."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self) -> "ParallelState":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        d = self.degrees
        return (f"<diffcoll.ParallelState rank {self.coords} of tp={d.tp} ulysses={d.ulysses} "
                f"ring={d.ring} cfg={d.cfg} data={d.data}>")


__all__ = ["ParallelState", "ParallelDims", "GROUPS"]
