# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Sequence parallelism: USP process meshes and the ring exchange of ring
attention (the Ulysses all-to-all is :meth:`diffcoll.Comm.ulysses_all_to_all`)."""
from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Optional, Sequence, Tuple

from ._comm import Comm
from ._errors import InvalidArgumentError
from ._handle import OwnedHandle, _check
from ._native import c
from ._tensor import StreamLike, TensorLike, stream_handle
from ._types import DeviceType


class UspDegrees(NamedTuple):
    """The degrees of a USP mesh (diffcoll_usp_degrees_t); their product is the world size."""

    ulysses: int
    ring: int
    cfg: int
    data: int


class UspMesh:
    """This rank's groups of a USP mesh (diffcoll_usp_mesh_create), as :class:`Comm` objects.

    Collective over ``parent``: every rank passes the same degrees, whose
    product must be ``parent.size`` (``data=None`` takes the rest). Ranks
    are ordered as xDiT / yunchang order them: parent rank n has the
    coordinates ``u = n % U``, ``r = (n // U) % R``, ``c = (n // (U*R)) % C``,
    ``d = n // (U*R*C)`` and each group holds the ranks that share the other
    coordinates, its local rank being the rank's own coordinate::

        with diffcoll.UspMesh(world, ulysses=2, ring=2, cfg=2) as mesh:
            mesh.ulysses.ulysses_all_to_all([q, k, v], [q_h, k_h, v_h], seq_axis=1, head_axis=2)

    Ownership: the mesh owns its five communicators (:attr:`ulysses`,
    :attr:`ring`, :attr:`sp`, :attr:`cfg`, :attr:`data`); :meth:`close` (or
    the end of a ``with`` block) closes them all, which is local. Each group
    is an ordinary :class:`Comm` that may also be closed on its own (closing
    twice is harmless); using a group after its mesh is closed raises
    :class:`InvalidHandleError`. ``parent`` is not owned and may be closed
    before or after the mesh.
    """

    def __init__(
        self,
        parent: Comm,
        *,
        ulysses: int = 1,
        ring: int = 1,
        cfg: int = 1,
        data: Optional[int] = None,
    ) -> None:
        self._groups: Tuple[Comm, ...] = ()
        if data is None:
            data = parent.size // max(int(ulysses) * int(ring) * int(cfg), 1)
        degrees = c.diffcoll_usp_degrees_t()  # DIFFCOLL_USP_DEGREES_INIT
        degrees.ulysses, degrees.ring, degrees.cfg, degrees.data = (
            int(ulysses), int(ring), int(cfg), int(data)
        )
        mesh = c.diffcoll_usp_mesh_t()  # DIFFCOLL_USP_MESH_INIT
        _check(c.diffcoll_usp_mesh_create(parent._handle, degrees, mesh), "diffcoll_usp_mesh_create")
        device_id = parent._device_id
        # Each Comm takes over one handle (destroyed with diffcoll_comm_destroy,
        # which the header allows instead of diffcoll_usp_mesh_destroy).
        self.ulysses: Comm = Comm(mesh.ulysses, device_id)
        """The Ulysses group (all-to-all attention): U consecutive ranks, local rank u."""
        self.ring: Comm = Comm(mesh.ring, device_id)
        """The ring-attention group: R ranks U apart, local rank r."""
        self.sp: Comm = Comm(mesh.sp, device_id)
        """The sequence-parallel group (Ulysses x ring): U*R consecutive ranks, local rank u + U*r."""
        self.cfg: Comm = Comm(mesh.cfg, device_id)
        """The CFG group: C ranks U*R apart, local rank c."""
        self.data: Comm = Comm(mesh.data, device_id)
        """The data-parallel group: D ranks U*R*C apart, local rank d."""
        self._groups = (self.ulysses, self.ring, self.sp, self.cfg, self.data)
        self.degrees: UspDegrees = UspDegrees(int(ulysses), int(ring), int(cfg), int(data))
        """The degrees the mesh was built with."""

    def close(self) -> None:
        """Closes every group communicator (local; idempotent)."""
        for comm in self._groups:
            comm.close()

    @property
    def closed(self) -> bool:
        """True once every group is closed."""
        return all(comm.closed for comm in self._groups)

    def __enter__(self) -> "UspMesh":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        u, r, cf, d = self.degrees
        state = " closed" if self.closed else ""
        return f"<diffcoll.UspMesh ulysses={u} ring={r} cfg={cf} data={d}{state}>"


class Ring(OwnedHandle):
    """A ring exchange (diffcoll_ring_create): the double buffer of ring attention.

    Half 0 (``buffer0``, current at first) and half 1 (``buffer1``) each hold
    the same number of contiguous tensors (e.g. k and v), ``buffer0[t]`` and
    ``buffer1[t]`` of one shape and dtype. The ring borrows them (and keeps
    the Python objects alive) until it is closed. Creating is local. At each
    step a rank sends its current half to local rank ``rank + 1`` and
    receives ``rank - 1``'s block into the other half, so at step s rank n
    holds the block of rank ``(n - s) mod P``::

        copy own k, v into buffer0
        with diffcoll.Ring(ring_group, [k0, v0], [k1, v1]) as ring:
            for k, v in ring.steps():      # P blocks, transfers overlapping
                attention(q, k, v)

    or by hand with :meth:`start`, :attr:`current_half` and :meth:`wait`.
    The communicator must outlive the ring; like it, a ring is used by one
    thread at a time.
    """

    _destroy_function = "diffcoll_ring_destroy"

    def __init__(self, comm: Comm, buffer0: Sequence[TensorLike], buffer1: Sequence[TensorLike]) -> None:
        d0, k0 = comm._ts(buffer0, "buffer0", True, None, "diffcoll.Ring")
        d1, k1 = comm._ts(buffer1, "buffer1", True, None, "diffcoll.Ring")
        if len(d1) != len(d0):
            raise InvalidArgumentError(
                f"buffer0 has {len(d0)} tensors but buffer1 {len(d1)}", function="diffcoll.Ring"
            )
        (handle,) = _check(c.diffcoll_ring_create(comm._handle, (d0, d1)), "diffcoll_ring_create")
        super().__init__(handle)
        self._comm = comm
        self._halves: Tuple[Tuple[TensorLike, ...], Tuple[TensorLike, ...]] = (tuple(buffer0), tuple(buffer1))
        # What the diffcoll.torch operators check on every step, worked out once:
        # the buffers they take (half 0 then half 1) and the CUDA ordinal of the
        # stream they run on (None: host buffers).
        self._buffers: Tuple[TensorLike, ...] = self._halves[0] + self._halves[1]
        self._cuda_device: Optional[int] = (
            d0[0].device_id if d0 and d0[0].device_type == int(DeviceType.CUDA) else None
        )
        self._keep: Any = (k0, k1)  # the library reads and writes the buffers until close()
        self._current = 0
        # The half the library's ring holds as current: other than _current
        # after an odd number of diffcoll.torch steps a compiled graph made
        # without the ring's memory (see diffcoll/torch/_kernels.py).
        self._library_current = 0
        # How the step in flight was posted by diffcoll.torch: through the
        # library's ring (True), as a detached exchange (False), or none (None).
        self._step_library: Optional[bool] = None

    @property
    def comm(self) -> Comm:
        """The ring group."""
        return self._comm

    @property
    def halves(self) -> Tuple[Tuple[TensorLike, ...], Tuple[TensorLike, ...]]:
        """(buffer0, buffer1) as given."""
        return self._halves

    @property
    def buffers(self) -> Tuple[TensorLike, ...]:
        """Half 0's tensors then half 1's, one tuple: what the
        :mod:`diffcoll.torch` ring operators take. Handing them this very
        tuple saves them comparing the tensors one by one at every step."""
        return self._buffers

    @property
    def current(self) -> int:
        """Index (0 or 1) of the half holding the current block."""
        return self._current

    @property
    def current_half(self) -> Tuple[TensorLike, ...]:
        """The tensors of the current half."""
        return self._halves[self._current]

    def start(self, stream: StreamLike = None) -> None:
        """Posts one step (diffcoll_ring_start): the current half goes to
        ``rank + 1``, the other half receives from ``rank - 1``. Collective;
        returns without waiting. Until :meth:`wait`, the current half may be
        read but not written and the other half not touched.

        ``stream`` (CUDA): the transfer starts after the work already on it and
        overlaps the work queued on it afterwards. Host: runs in the background."""
        if self._library_current != self._current:
            raise InvalidArgumentError(
                "the ring's library state is a half behind its steps through a compiled graph: "
                "go on with diffcoll.torch.ring_start / ring_wait until it catches up",
                function="diffcoll.Ring.start")
        _check(c.diffcoll_ring_start(self._handle, stream_handle(stream)), "diffcoll_ring_start")

    def wait(self, stream: StreamLike = None) -> int:
        """Completes the step in flight and makes the received half current
        (diffcoll_ring_wait); returns its index (also :attr:`current`).

        ``stream`` (CUDA): work queued on it afterwards runs after the transfer
        (the call does not block). Host: returns when the transfer is done."""
        (current,) = _check(c.diffcoll_ring_wait(self._handle, stream_handle(stream)), "diffcoll_ring_wait")
        self._current = self._library_current = int(current)
        return self._current

    def steps(self, *, stream: StreamLike = None) -> Iterator[Tuple[TensorLike, ...]]:
        """Yields the current half at each of the P steps, the transfer of the
        next block in flight meanwhile (start before, wait after each of the
        first P - 1). Run it to the end: a step abandoned in flight makes the
        next :meth:`start` fail."""
        size = self._comm.size
        for step in range(size):
            last = step == size - 1
            if not last:
                self.start(stream=stream)
            yield self.current_half
            if not last:
                self.wait(stream=stream)

    def close(self) -> None:
        """Destroys the ring (a step in flight is completed first on the host)
        and lets go of the buffers. Idempotent."""
        super().close()
        self._keep = None

    def __repr__(self) -> str:
        return "<diffcoll.Ring closed>" if self._handle is None else f"<diffcoll.Ring on {self._comm!r}>"


def ulysses_kv_heads(query_heads: int, kv_heads: int, parts: int, index: int) -> Tuple[int, int]:
    """(start, length) of the k/v heads rank ``index`` of ``parts`` holds after a
    grouped-query :meth:`Comm.ulysses_all_to_all` with ``query_heads`` query and
    ``kv_heads`` k/v heads (diffcoll_ulysses_kv_heads): the k/v heads its query
    heads ``split_extent(query_heads, parts, index)`` attend to. Size the k/v
    outputs of the exchange with it."""
    start, length = _check(
        c.diffcoll_ulysses_kv_heads(int(query_heads), int(kv_heads), int(parts), int(index)),
        "diffcoll_ulysses_kv_heads",
    )
    return int(start), int(length)


__all__ = ["UspMesh", "UspDegrees", "Ring", "ulysses_kv_heads"]
