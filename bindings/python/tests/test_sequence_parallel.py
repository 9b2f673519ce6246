"""Sequence parallelism through the bindings: Comm.ulysses_all_to_all (against
slices of the whole and a bit-exact round trip), UspMesh (groups against the
documented xDiT order) and Ring (every block visited once in P steps)."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll
from diffcoll import Ring, UlyssesDirection, UspDegrees, UspMesh, split_extent

RNG = np.random.default_rng(11)
# [B, S, H, D]: q with 5 heads, k and v with 3 (grouped-query attention), S = 7.
Q = RNG.standard_normal((2, 7, 5, 4)).astype(np.float32)
K = RNG.standard_normal((2, 7, 3, 4)).astype(np.float32)
V = RNG.standard_normal((2, 7, 3, 4)).astype(np.float32)


def seq_slab(whole, axis, size, rank):
    start, n = split_extent(whole.shape[axis], size, rank)
    return np.take(whole, range(start, start + n), axis=axis)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_ulysses_forward_back_matches_slices_of_the_whole(ranks, size):
    wholes = (Q, K, V)

    def body(comm):
        p, r = comm.size, comm.rank
        inputs = [np.ascontiguousarray(seq_slab(w, 1, p, r)) for w in wholes]
        heads = [np.full(w.shape[:2] + (split_extent(w.shape[2], p, r)[1],) + w.shape[3:], np.nan, np.float32)
                 for w in wholes]
        out = comm.ulysses_all_to_all(inputs, heads, seq_axis=1, head_axis=2)
        assert out is heads
        back = [np.full_like(x, np.nan) for x in inputs]
        comm.ulysses_all_to_all(heads, back, seq_axis=1, head_axis=-2, direction="head_to_seq")
        return inputs, heads, back

    for r, (inputs, heads, back) in enumerate(ranks(size, body)):
        for whole, h in zip(wholes, heads):
            np.testing.assert_array_equal(h, seq_slab(whole, 2, size, r))  # all tokens, heads H_r
        for x, b in zip(inputs, back):
            np.testing.assert_array_equal(b, x)  # the round trip is exact


def test_ulysses_strided_bhsd_views(ranks):
    """[B, H, S, D] tensors seen through transposed views: no copies needed."""
    whole = RNG.standard_normal((2, 6, 8, 3)).astype(np.float32)  # B, H, S, D

    def body(comm):
        # Input stored [B, S_r, H, D], passed as a [B, H, S_r, D] view.
        x = np.ascontiguousarray(seq_slab(whole, 2, comm.size, comm.rank).transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
        hr = split_extent(6, comm.size, comm.rank)[1]
        y = np.full((2, 8, hr, 3), np.nan, np.float32).transpose(0, 2, 1, 3)  # [B, H_r, S, D] view
        comm.ulysses_all_to_all([x], [y], seq_axis=-2, head_axis=1, direction=UlyssesDirection.SEQ_TO_HEAD)
        return np.array(y)

    for r, y in enumerate(ranks(2, body)):
        np.testing.assert_array_equal(y, seq_slab(whole, 1, 2, r))


def test_ulysses_errors(ranks):
    def body(comm):
        x = np.ones((2, 4, 4, 2), np.float32)  # [B, S_r, H, D] for S = 8 over 2 ranks
        good = np.empty((2, 8, 2, 2), np.float32)
        with pytest.raises(diffcoll.InvalidArgumentError) as wrong_shape:
            comm.ulysses_all_to_all([x], [np.empty((2, 8, 3, 2), np.float32)], seq_axis=1, head_axis=2)
        with pytest.raises(diffcoll.InvalidArgumentError) as same_axis:
            comm.ulysses_all_to_all([x], [good], seq_axis=1, head_axis=1)
        with pytest.raises(diffcoll.InvalidArgumentError) as empty:
            comm.ulysses_all_to_all([], [], seq_axis=1, head_axis=2)
        with pytest.raises(diffcoll.InvalidArgumentError) as unequal:
            comm.ulysses_all_to_all([x, x], [good], seq_axis=1, head_axis=2)
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_direction:
            comm.ulysses_all_to_all([x], [good], seq_axis=1, head_axis=2, direction="sideways")
        return wrong_shape.value, same_axis.value, empty.value, unequal.value, bad_direction.value

    for wrong_shape, same_axis, empty, unequal, bad_direction in ranks(2, body):
        for e in (wrong_shape, same_axis, empty):
            assert e.function == "diffcoll_ulysses_all_to_all" and e.status == diffcoll.Status.INVALID_ARGUMENT
            assert e.message and e.message in str(e)
        assert "outputs[0]" in wrong_shape.message and "2 heads along dimension 2" in wrong_shape.message
        assert "both dimension 1" in same_axis.message and "count 0" in empty.message
        assert unequal.function == bad_direction.function == "Comm.ulysses_all_to_all"
        assert "2 inputs but 1 outputs" in unequal.message and "sideways" in bad_direction.message


# ---------------------------------------------------------------- USP mesh


def expected_groups(n, u_deg, r_deg, c_deg, d_deg):
    """(members, local rank) of parent rank n in each group, from the header's formula."""
    u, r, cf, d = n % u_deg, n // u_deg % r_deg, n // (u_deg * r_deg) % c_deg, n // (u_deg * r_deg * c_deg)

    def rank_of(uu, rr, cc, dd):
        return uu + u_deg * (rr + r_deg * (cc + c_deg * dd))

    return {
        "ulysses": ([rank_of(i, r, cf, d) for i in range(u_deg)], u),
        "ring": ([rank_of(u, i, cf, d) for i in range(r_deg)], r),
        "sp": ([rank_of(i % u_deg, i // u_deg, cf, d) for i in range(u_deg * r_deg)], u + u_deg * r),
        "cfg": ([rank_of(u, r, i, d) for i in range(c_deg)], cf),
        "data": ([rank_of(u, r, cf, i) for i in range(d_deg)], d),
    }


@pytest.mark.parametrize(
    "size, degrees",
    [
        (8, dict(ulysses=2, ring=2, cfg=2)),  # the header's example (data: the rest, 1)
        (8, dict(ulysses=2, ring=1, cfg=2, data=2)),
        (6, dict(ulysses=3, ring=2)),
        (4, dict(ring=2, data=2)),
    ],
)
def test_usp_mesh_groups_follow_the_documented_order(ranks, size, degrees):
    def body(comm):
        with UspMesh(comm, **degrees) as mesh:
            got = {
                name: ([g.global_rank(i) for i in range(g.size)], g.rank)
                for name, g in (("ulysses", mesh.ulysses), ("ring", mesh.ring), ("sp", mesh.sp),
                                ("cfg", mesh.cfg), ("data", mesh.data))
            }
            # The groups are working communicators: sum the world ranks of the sp group.
            x = np.array([comm.rank], np.int64)
            mesh.sp.all_reduce(x)
            got["sp_sum"] = int(x[0])
            degrees_seen = mesh.degrees
        assert mesh.closed and mesh.ulysses.closed
        return got, degrees_seen

    u, r, cf = (degrees.get(k, 1) for k in ("ulysses", "ring", "cfg"))
    d = degrees.get("data", size // (u * r * cf))
    for n, (got, degrees_seen) in enumerate(ranks(size, body)):
        assert degrees_seen == UspDegrees(u, r, cf, d)
        expected = expected_groups(n, u, r, cf, d)
        assert {k: v for k, v in got.items() if k != "sp_sum"} == expected
        assert got["sp_sum"] == sum(expected["sp"][0])


def test_usp_mesh_ownership_and_errors(ranks):
    def body(comm):
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_product:
            UspMesh(comm, ulysses=3, data=1)
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_degree:
            UspMesh(comm, ulysses=0, data=2)
        mesh = UspMesh(comm, ulysses=2)
        mesh.ring.close()  # a group may be closed on its own ...
        mesh.close()  # ... and the mesh closes the rest
        mesh.close()
        with pytest.raises(diffcoll.InvalidHandleError):
            mesh.ulysses.barrier()
        comm.barrier()  # the parent is not the mesh's
        return bad_product.value, bad_degree.value, repr(mesh)

    for bad_product, bad_degree, text in ranks(2, body):
        for e in (bad_product, bad_degree):
            assert e.function == "diffcoll_usp_mesh_create" and e.message and e.message in str(e)
        assert "= 3 must equal the communicator's size 2" in bad_product.message
        assert "ulysses 0" in bad_degree.message
        assert "closed" in text


# ---------------------------------------------------------------- ring


def ring_body(manual):
    def body(comm):
        p, n = comm.size, comm.rank
        # Block of rank n: k full of n, v = n * 100 + arange, e.g. a [2, 3] and a [4] tensor.
        own = (np.full((2, 3), n, np.float32), np.arange(4, dtype=np.float32) + 100 * n)
        halves = ([own[0].copy(), own[1].copy()], [np.empty((2, 3), np.float32), np.empty(4, np.float32)])
        seen = []
        with Ring(comm, halves[0], halves[1]) as ring:
            assert ring.current == 0 and ring.halves[0][0] is halves[0][0]
            if manual:
                for step in range(p):
                    if step < p - 1:
                        ring.start()
                    k, v = ring.current_half
                    seen.append((int(k[0, 0]), v.copy()))
                    if step < p - 1:
                        assert ring.wait() == ring.current == (step + 1) % 2
            else:
                for k, v in ring.steps():
                    seen.append((int(k[0, 0]), v.copy()))
        return seen

    return body


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("manual", [False, True])
def test_ring_visits_every_block_once(ranks, size, manual):
    for n, seen in enumerate(ranks(size, ring_body(manual))):
        assert [owner for owner, _ in seen] == [(n - s) % size for s in range(size)]
        for owner, v in seen:
            np.testing.assert_array_equal(v, np.arange(4, dtype=np.float32) + 100 * owner)


def test_ring_errors(ranks):
    def body(comm):
        a = np.zeros((2, 3), np.float32)
        with pytest.raises(diffcoll.InvalidArgumentError) as shapes:
            Ring(comm, [a], [np.zeros((3, 2), np.float32)])
        with pytest.raises(diffcoll.InvalidArgumentError) as strided:
            Ring(comm, [np.zeros((3, 2), np.float32).T], [np.zeros((3, 2), np.float32).T])
        with pytest.raises(diffcoll.InvalidArgumentError) as unequal:
            Ring(comm, [a], [])
        with Ring(comm, [a], [np.zeros((2, 3), np.float32)]) as ring:
            with pytest.raises(diffcoll.InvalidArgumentError) as no_step:
                ring.wait()
            ring.start()
            with pytest.raises(diffcoll.InvalidArgumentError) as twice:
                ring.start()
            ring.wait()
        with pytest.raises(diffcoll.InvalidHandleError):
            ring.start()
        return shapes.value, strided.value, unequal.value, no_step.value, twice.value

    for shapes, strided, unequal, no_step, twice in ranks(2, body):
        for e in (shapes, strided):
            assert e.function == "diffcoll_ring_create" and e.message and e.message in str(e)
        assert "differ in shape" in shapes.message and "contiguous" in strided.message
        assert unequal.function == "diffcoll.Ring"
        assert no_step.function == "diffcoll_ring_wait" and "no step is in flight" in no_step.message
        assert twice.function == "diffcoll_ring_start" and "not waited for" in twice.message
