# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""ParallelState (every group of a USP + tensor-parallel mesh) and the handle
registry the PyTorch operators name objects by. Ranks are threads with host
communicators; no PyTorch needed."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import diffcoll

# (world size, degrees): tensor parallelism alone, USP alone, everything at once.
MESHES = [
    (1, {}),
    (2, {"tp": 2}),
    (4, {"ulysses": 2, "ring": 2}),
    (6, {"tp": 2, "ulysses": 3}),
    (8, {"tp": 2, "ulysses": 2, "cfg": 2}),
    (8, {"ring": 2, "cfg": 2, "data": 2}),
]


def expected_coords(n, degrees, size):
    """xDiT's layout written out: tensor parallelism innermost, then Ulysses,
    ring, CFG, data."""
    t, u, r, c = (degrees.get(k, 1) for k in ("tp", "ulysses", "ring", "cfg"))
    m = n // t
    return {"tp": n % t, "ulysses": m % u, "ring": (m // u) % r, "sp": m % (u * r),
            "cfg": (m // (u * r)) % c, "data": m // (u * r * c)}


@pytest.mark.parametrize("size,degrees", MESHES, ids=[f"{s}-{d}" for s, d in MESHES])
def test_groups_places_and_handles(ranks, size, degrees):
    def body(world):
        with diffcoll.ParallelState(world, **degrees) as ps:
            members = {g: [ps.group(g).global_rank(i) for i in range(ps.degrees[i_g])]
                       for i_g, g in enumerate(diffcoll.GROUPS)}
            handles_ok = all(diffcoll.handle(ps.groups[i]) == ps.handles[i] for i in range(6))
            return ps.rank, ps.coords._asdict(), ps.degrees._asdict(), members, handles_ok

    coords_of = {}
    for n, coords, degs, members, handles_ok in ranks(size, body):
        assert handles_ok
        assert coords == expected_coords(n, degrees, size)
        t, u, r, c = (degrees.get(k, 1) for k in ("tp", "ulysses", "ring", "cfg"))
        assert degs == {"tp": t, "ulysses": u, "ring": r, "sp": u * r, "cfg": c,
                        "data": size // (t * u * r * c)}
        coords_of[n] = coords
        for g, ranks_in_group in members.items():
            # The group holds exactly the ranks that agree on every other
            # coordinate, ordered by the group's own.
            others = [k for k in ("tp", "ulysses", "ring", "cfg", "data")
                      if k != g and not (g == "sp" and k in ("ulysses", "ring"))]
            want = sorted((m for m in range(size)
                           if all(expected_coords(m, degrees, size)[k] == coords[k] for k in others)),
                          key=lambda m: expected_coords(m, degrees, size)[g])
            assert ranks_in_group == want, (n, g)
    assert len({tuple(c.values()) for c in coords_of.values()}) == size


def test_shards_and_cfg_branches(ranks):
    seq, heads = 11, 6  # uneven over 4

    def body(world):
        with diffcoll.ParallelState(world, ulysses=2, ring=2) as ps, \
                diffcoll.CfgPolicy.standard(5.0) as policy:
            x = np.arange(2 * seq * 3).reshape(2, seq, 3)
            return (ps.coords.sp, ps.split_extent(seq), ps.shard(x, 1), ps.shard(x, -2),
                    ps.split_extent(heads, "ulysses"), ps.cfg_branches(policy),
                    np.shares_memory(ps.shard(x, 1), x))

    pieces = ranks(4, body)
    for sp, (start, length), shard, shard_neg, head_share, branches, shared in pieces:
        assert (start, length) == diffcoll.split_extent(seq, 4, sp)
        x = np.arange(2 * seq * 3).reshape(2, seq, 3)
        np.testing.assert_array_equal(shard, x[:, start:start + length])
        np.testing.assert_array_equal(shard_neg, shard)
        assert shared  # a view, not a copy
        assert head_share == diffcoll.split_extent(heads, 2, sp % 2)
        assert branches == [0, 1]  # CFG degree 1: every branch here
    order = sorted(pieces, key=lambda p: p[0])
    np.testing.assert_array_equal(np.concatenate([p[2] for p in order], axis=1),
                                  np.arange(2 * seq * 3).reshape(2, seq, 3))


def test_cfg_parallel_state_dispatches_branches(ranks):
    def body(world):
        with diffcoll.ParallelState(world, cfg=2) as ps, diffcoll.CfgPolicy.standard(5.0) as policy:
            return ps.coords.cfg, ps.cfg_branches(policy)

    assert sorted(ranks(2, body)) == [(0, [0]), (1, [1])]


def test_bad_degrees_are_refused(ranks):
    def body(world):
        with pytest.raises(diffcoll.InvalidArgumentError, match="not the world size 4"):
            diffcoll.ParallelState(world, tp=3)
        with pytest.raises(diffcoll.InvalidArgumentError, match=">= 1"):
            diffcoll.ParallelState(world, ulysses=0)
        with pytest.raises(diffcoll.InvalidArgumentError, match="not the world size 4"):
            diffcoll.ParallelState(world, ulysses=2, data=3)
        ps = diffcoll.ParallelState(world, ulysses=4)
        with pytest.raises(diffcoll.InvalidArgumentError, match="no group is called 'sequence'"):
            ps.split_extent(8, "sequence")
        with pytest.raises(diffcoll.InvalidArgumentError, match="out of range"):
            ps.shard(np.zeros((2, 3)), 2)
        ps.close()
        ps.close()  # idempotent
        assert ps.groups.ulysses.closed and not world.closed
        return True

    assert ranks(4, body) == [True] * 4


# ---------------------------------------------------------------- handles


def test_handles_name_objects_weakly_and_never_twice(ranks):
    def body(comm):
        h = diffcoll.handle(comm)
        assert diffcoll.handle(comm) == h and diffcoll.handle(h) == h
        with diffcoll.CfgPolicy.standard(3.0) as policy:
            p = diffcoll.handle(policy)
            assert p != h
            from diffcoll._registry import comm_place, lookup

            assert lookup(p, diffcoll.CfgPolicy) is policy
            assert comm_place(h, "test") == (comm, comm.size, comm.rank)
            with pytest.raises(diffcoll.InvalidArgumentError, match="is a CfgPolicy, not a Comm"):
                comm_place(p, "test")
        del policy
        gc.collect()
        with pytest.raises(diffcoll.InvalidHandleError, match=f"handle {p} names no live"):
            lookup(p, diffcoll.CfgPolicy)
        again = diffcoll.CfgPolicy.standard(3.0)
        a = diffcoll.handle(again)
        assert a not in (p, h)  # numbers are never reused
        diffcoll.release_handle(a)
        with pytest.raises(diffcoll.InvalidHandleError):
            lookup(a, diffcoll.CfgPolicy)
        assert diffcoll.handle(again) not in (a, p, h)
        diffcoll.release_handle(again)
        again.close()
        with pytest.raises(diffcoll.InvalidHandleError, match="closed"):
            diffcoll.handle(again)
        return True

    assert ranks(2, body) == [True, True]
