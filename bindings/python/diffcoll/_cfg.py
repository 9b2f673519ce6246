# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Classifier-free guidance (CFG) policies (docs/CFG.md).

A :class:`CfgPolicy` describes the guidance branches of a denoiser and the
formula that combines their predictions::

    out = pred[base] + sum_k scale_k * (pred[plus_k] - pred[minus_k])

Combine on one process with :meth:`CfgPolicy.combine_serial`, or across the
ranks of a CFG group with :meth:`diffcoll.Comm.cfg_combine` after running the
branches :meth:`CfgPolicy.dispatch` assigns to each rank.
"""
from __future__ import annotations

import enum
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple, Union

from ._handle import OwnedHandle, _check
from ._errors import InvalidArgumentError
from ._native import c
from ._tensor import StreamLike, TensorLike, describe, describe_all, stream_handle


class CfgRole(enum.IntEnum):
    """diffcoll_cfg_role_t: what a guidance branch is."""

    #: Conditional prediction (the prompt). Post-processing needs exactly one.
    COND = 1
    #: Unconditional / negative-prompt prediction. CFG-zero* needs exactly one.
    UNCOND = 2
    #: Perturbed prediction, e.g. spatio-temporal guidance skipping layers.
    PERTURBED = 3
    #: Prediction with one modality dropped (image-only, audio-only, ...).
    MODALITY = 4
    #: Any other branch.
    OTHER = 5


class CfgOrder(enum.IntEnum):
    """diffcoll_cfg_order_t: the arithmetic order of a combine."""

    #: As written: acc = pred[base]; acc += scale_k * (pred[plus_k] - pred[minus_k]),
    #: float32, one rounding to the dtype at the end.
    SERIAL = 0
    #: Weighted sum rounded after every operation, in branch index order: what
    #: the parallel combine computes, hence bitwise equal to it (docs/CFG.md).
    PARALLEL = 1
    #: What PyTorch eager computes for ``uncond + g * (cond - uncond)`` (and any
    #: formula written that way) on tensors of the dtype: every operation in
    #: float32, rounded to the dtype; post-processing as the engines' code
    #: (normalization, then ``rescale_noise_cfg``; diffusers' CFG-zero* scale).
    #: The elementwise chain equals PyTorch bit for bit, statistics within one
    #: unit in the last place of PyTorch's (docs/CFG.md). Bitwise equal across ranks.
    TORCH = 2


#: A role: a :class:`CfgRole`, its value, or a name ("cond", "uncond", ...).
CfgRoleLike = Union[CfgRole, int, str]
#: An order: a :class:`CfgOrder`, its value, or "serial" / "parallel" / "torch".
CfgOrderLike = Union[CfgOrder, int, str]
#: A branch, by index or by name.
BranchRef = Union[int, str]


def _to_enum(cls: Any, value: Any, what: str, function: str = "diffcoll.CfgPolicy") -> Any:
    """``value`` (a member, its value or its name, any case) as a member of
    the enum ``cls``; InvalidArgumentError naming ``what`` otherwise."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls[value.upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise InvalidArgumentError(
                f"{what} {value!r} is not one of: {names}", function=function
            ) from None
    try:
        return cls(int(value))
    except (ValueError, TypeError):
        raise InvalidArgumentError(
            f"{what} {value!r} is not a {cls.__name__}", function=function
        ) from None


class CfgOptions(NamedTuple):
    """Options of a policy (diffcoll_cfg_options_t), as :attr:`CfgPolicy.options` reports them."""

    #: Arithmetic order of the combine.
    order: CfgOrder
    #: CFG-zero*: uncond scaled per sample by <cond, uncond> / ||uncond||^2.
    zero_star: bool
    #: Guidance rescale strength phi in [0, 1]; 0: off.
    rescale_phi: float
    #: CFG normalization bound k; 0: off.
    norm_k: float
    #: CFG normalization per sample instead of over the whole tensor.
    norm_per_sample: bool
    #: The output is zeros while step < zero_init_steps.
    zero_init_steps: int


class CfgPolicy(OwnedHandle):
    """A CFG policy: guidance branches, a base branch and guidance terms.

    Example (standard CFG, ``uncond + 7.5 * (cond - uncond)``)::

        with diffcoll.CfgPolicy([("cond", "cond"), ("uncond", "uncond")],
                                base="uncond", terms=[(7.5, "cond", "uncond")],
                                order="parallel") as policy:
            policy.combine_serial([cond, uncond], out)

    Args:
        branches: (name, role) per branch, in branch index order; names are
            unique and non-empty; a role is a :class:`CfgRole`, its value or its
            name ("cond", "uncond", "perturbed", "modality", "other").
        base: the base branch of the formula, by index or by name.
        terms: (scale, plus, minus) per guidance term; plus and minus are
            branches by index or by name.
        order: "serial" (default), "parallel" or "torch" (see :class:`CfgOrder`).
        zero_star: CFG-zero* (needs one COND and one UNCOND branch).
        rescale_phi: guidance rescale strength in [0, 1] (0: off).
        norm_k: CFG normalization bound (0: off).
        norm_per_sample: CFG normalization per sample.
        zero_init_steps: zero the output while step < this.

    Raises :class:`InvalidArgumentError` for an unknown branch name, an index
    out of range, duplicate names, a bad option, or post-processing without
    the branch it needs.

    A policy is immutable: several threads may use it at once (queries and
    combines). Release it with :meth:`close` or a ``with`` block (it is also
    released when collected); it must not be closed while a call uses it.
    """

    def __init__(
        self,
        branches: Sequence[Tuple[str, CfgRoleLike]],
        base: BranchRef,
        terms: Sequence[Tuple[float, BranchRef, BranchRef]] = (),
        *,
        order: CfgOrderLike = CfgOrder.SERIAL,
        zero_star: bool = False,
        rescale_phi: float = 0.0,
        norm_k: float = 0.0,
        norm_per_sample: bool = False,
        zero_init_steps: int = 0,
    ) -> None:
        self._handle: Any = None
        items: List[Tuple[str, int]] = []
        for i, branch in enumerate(branches):
            try:
                name, role = branch
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"branch {i}: expected a (name, role) pair, got {branch!r}",
                    function="diffcoll.CfgPolicy",
                ) from None
            if not isinstance(name, str):
                raise InvalidArgumentError(
                    f"branch {i}: the name {name!r} is not a str", function="diffcoll.CfgPolicy"
                )
            items.append((name, int(_to_enum(CfgRole, role, f"branch {i} ({name!r}): role"))))
        index: Dict[str, int] = {}
        for i, (name, _) in enumerate(items):
            index.setdefault(name, i)  # duplicates are the library's to report

        def resolve(ref: BranchRef, what: str) -> int:
            if isinstance(ref, str):
                if ref not in index:
                    known = ", ".join(repr(n) for n, _ in items)
                    raise InvalidArgumentError(
                        f"{what}: no branch is called {ref!r} (branches: {known})",
                        function="diffcoll.CfgPolicy",
                    )
                return index[ref]
            return int(ref)

        raw_terms: List[Tuple[float, int, int]] = []
        for k, term in enumerate(terms):
            try:
                scale, plus, minus = term
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"term {k}: expected a (scale, plus, minus) triple, got {term!r}",
                    function="diffcoll.CfgPolicy",
                ) from None
            raw_terms.append(
                (float(scale), resolve(plus, f"term {k} plus"), resolve(minus, f"term {k} minus"))
            )
        opts = c.diffcoll_cfg_options_t()  # DIFFCOLL_CFG_OPTIONS_INIT
        opts.order = int(_to_enum(CfgOrder, order, "order"))
        opts.zero_star = int(bool(zero_star))
        opts.rescale_phi = float(rescale_phi)
        opts.norm_k = float(norm_k)
        opts.norm_per_sample = int(bool(norm_per_sample))
        opts.zero_init_steps = int(zero_init_steps)
        (handle,) = _check(
            c.diffcoll_cfg_policy_create(items, resolve(base, "base"), raw_terms or None, opts),
            "diffcoll_cfg_policy_create",
        )
        self._handle = handle
        self._names = [n for n, _ in items]
        self._roles = [CfgRole(r) for _, r in items]

    @classmethod
    def standard(
        cls,
        guidance_scale: float,
        *,
        cond: str = "cond",
        uncond: str = "uncond",
        **options: Any,
    ) -> "CfgPolicy":
        """Standard CFG, ``uncond + guidance_scale * (cond - uncond)``: branch 0
        is ``cond`` (COND), branch 1 ``uncond`` (UNCOND). ``options`` are the
        constructor's keyword options (order, rescale_phi, ...)."""
        return cls(
            [(cond, CfgRole.COND), (uncond, CfgRole.UNCOND)],
            base=1,
            terms=[(guidance_scale, 0, 1)],
            **options,
        )

    # ---------------------------------------------------------------- lifetime

    _destroy_function = "diffcoll_cfg_policy_destroy"

    def __repr__(self) -> str:
        if self._handle is None:
            return "<diffcoll.CfgPolicy closed>"
        branches = ", ".join(f"{n}:{r.name.lower()}" for n, r in zip(self._names, self._roles))
        return f"<diffcoll.CfgPolicy [{branches}] weights={self.weights()}>"

    # ---------------------------------------------------------------- queries

    def __len__(self) -> int:
        return self.num_branches

    @property
    def num_branches(self) -> int:
        """Number of branches."""
        (n,) = _check(c.diffcoll_cfg_policy_num_branches(self._handle), "diffcoll_cfg_policy_num_branches")
        return n

    def branch(self, index: int) -> Tuple[str, CfgRole]:
        """(name, role) of branch ``index``."""
        name, role = _check(
            c.diffcoll_cfg_policy_branch(self._handle, int(index)), "diffcoll_cfg_policy_branch"
        )
        return str(name), CfgRole(role)

    @property
    def branches(self) -> List[Tuple[str, CfgRole]]:
        """(name, role) of every branch, in index order."""
        return [self.branch(i) for i in range(self.num_branches)]

    def index(self, name: str) -> int:
        """Index of the branch called ``name`` (InvalidArgumentError if none)."""
        (i,) = _check(
            c.diffcoll_cfg_policy_find_branch(self._handle, str(name)), "diffcoll_cfg_policy_find_branch"
        )
        return i

    def weights(self) -> List[float]:
        """The linear weights w_i of ``out = sum_i w_i * pred_i`` (before CFG-zero*)."""
        (w,) = _check(
            c.diffcoll_cfg_policy_weights(self._handle, self.num_branches), "diffcoll_cfg_policy_weights"
        )
        return [float(x) for x in w]

    @property
    def options(self) -> CfgOptions:
        """The policy's options."""
        (o,) = _check(c.diffcoll_cfg_policy_get_options(self._handle), "diffcoll_cfg_policy_get_options")
        return CfgOptions(
            CfgOrder(o.order),
            bool(o.zero_star),
            float(o.rescale_phi),
            float(o.norm_k),
            bool(o.norm_per_sample),
            int(o.zero_init_steps),
        )

    def dispatch(self, degree: int, rank: int) -> List[int]:
        """Branch indices (ascending) that CFG rank ``rank`` of a CFG group of
        ``degree`` ranks runs; may be empty (that rank still joins
        :meth:`Comm.cfg_combine` with no predictions)."""
        n = self.num_branches
        indices, count = _check(
            c.diffcoll_cfg_dispatch(self._handle, int(degree), int(rank), n), "diffcoll_cfg_dispatch"
        )
        return [int(i) for i in indices[:count]]

    # ---------------------------------------------------------------- combine

    def combine_serial(
        self,
        preds: Sequence[TensorLike],
        out: TensorLike,
        step: int = 0,
        *,
        stream: StreamLike = None,
    ) -> TensorLike:
        """Combines every branch's prediction on this process into ``out`` and
        returns it (diffcoll_cfg_combine_serial).

        Args:
            preds: one tensor per branch, in branch order (float16, bfloat16 or
                float32, the shape and dtype of ``out``, any strides).
            out: receives the combined, post-processed prediction; any
                non-overlapping strides; may be one of ``preds``.
            step: the denoising step (for ``zero_init_steps``).
            stream: CUDA stream for CUDA tensors.
        """
        s = stream_handle(stream)
        descs, keep = describe_all(preds, "preds", writable=False, stream=s, function="diffcoll.CfgPolicy")
        o, ko = describe(out, "out", writable=True, stream=s)
        _check(
            c.diffcoll_cfg_combine_serial(self._handle, descs, o, int(step), s),
            "diffcoll_cfg_combine_serial",
        )
        del keep, ko
        return out


__all__ = ["CfgPolicy", "CfgRole", "CfgOrder", "CfgOptions", "CfgRoleLike", "CfgOrderLike", "BranchRef"]
