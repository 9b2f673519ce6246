# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Sequence parallelism through the bindings: Comm.ulysses_all_to_all (against
slices of the whole and a bit-exact round trip; grouped-query k/v heads sent
once, with attention equal bit for bit to the copy-up path; FP8 within its
documented bound), the FP8 all-gather, UspMesh (groups against the
documented xDiT order) and Ring (every block visited once in P steps)."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll
from diffcoll import Ring, UlyssesDirection, UspDegrees, UspMesh, WireFormat, split_extent, ulysses_kv_heads

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


# ------------------------------------------------- grouped-query attention, FP8

# [B, S, H, D]: 8 query heads, 2 k/v heads (groups of 4), S = 10.
GQ = RNG.standard_normal((1, 10, 8, 4)).astype(np.float32)
GK = RNG.standard_normal((1, 10, 2, 4)).astype(np.float32)
GV = RNG.standard_normal((1, 10, 2, 4)).astype(np.float32)


def head_slab(whole, start, n):
    return whole[:, :, start : start + n]


def attention(q, k, v, kv_of):
    """o[:, :, i] = softmax(q_i k_j^T / sqrt(D)) v_j with j = kv_of(i), per head, float32."""
    o = np.empty_like(q)
    for i in range(q.shape[2]):
        j = kv_of(i)
        logits = np.einsum("bsd,btd->bst", q[:, :, i], k[:, :, j]) / np.float32(np.sqrt(q.shape[3]))
        w = np.exp(logits - logits.max(axis=-1, keepdims=True))
        o[:, :, i] = np.einsum("bst,btd->bsd", w / w.sum(axis=-1, keepdims=True), v[:, :, j])
    return o


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_gqa_sends_each_rank_the_kv_heads_its_query_heads_attend(ranks, size):
    group = GQ.shape[2] // GK.shape[2]

    def body(comm):
        p, r = comm.size, comm.rank
        qs, qn = split_extent(8, p, r)
        ks, kn = ulysses_kv_heads(8, 2, p, r)
        ins = [np.ascontiguousarray(seq_slab(w, 1, p, r)) for w in (GQ, GK, GV)]
        heads = [np.full((1, 10, n, 4), np.nan, np.float32) for n in (qn, kn, kn)]
        comm.ulysses_all_to_all(ins, heads, seq_axis=1, head_axis=2, query_heads=8)
        back = [np.full_like(x, np.nan) for x in ins]
        comm.ulysses_all_to_all(heads, back, seq_axis=1, head_axis=2, direction="head_to_seq", query_heads=8)
        # Attention on this rank's heads, then the output back to tokens.
        o_heads = attention(*heads, lambda i: (qs + i) // group - ks)
        o = np.empty_like(ins[0])
        comm.ulysses_all_to_all([o_heads], [o], seq_axis=1, head_axis=2, direction="head_to_seq")
        # The same with k/v copied up to 8 heads first, as engines do today.
        up = [np.ascontiguousarray(seq_slab(np.repeat(w, group, axis=2), 1, p, r)) for w in (GK, GV)]
        up_heads = [np.empty((1, 10, qn, 4), np.float32) for _ in up]
        comm.ulysses_all_to_all(up, up_heads, seq_axis=1, head_axis=2)
        o_up = np.empty_like(o)
        comm.ulysses_all_to_all([attention(heads[0], *up_heads, lambda i: i)], [o_up], seq_axis=1,
                                head_axis=2, direction="head_to_seq")
        return (qs, qn, ks, kn), ins, heads, back, o, o_up

    for r, ((qs, qn, ks, kn), ins, heads, back, o, o_up) in enumerate(ranks(size, body)):
        assert kn == len({h // group for h in range(qs, qs + qn)})  # exactly the heads attended
        np.testing.assert_array_equal(heads[0], head_slab(GQ, qs, qn))
        np.testing.assert_array_equal(heads[1], head_slab(GK, ks, kn))
        np.testing.assert_array_equal(heads[2], head_slab(GV, ks, kn))
        for x, b in zip(ins, back):
            np.testing.assert_array_equal(b, x)
        np.testing.assert_array_equal(o, o_up)  # bit for bit
        whole = attention(GQ, GK, GV, lambda i: i // group)
        np.testing.assert_allclose(o, seq_slab(whole, 1, size, r), rtol=1e-5, atol=1e-6)


def fp8_bound(exact, amax, fmt, dtype):
    """The documented bound: 2^-m |x| + 2^-s amax / F + the output dtype's rounding."""
    rel, sub, top = (2.0**-4, 2.0**-10, 448.0) if fmt == "fp8_e4m3" else (2.0**-3, 2.0**-17, 57344.0)
    rounding = 2.0**-11 if dtype == np.float16 else 2.0**-24
    x = np.abs(exact.astype(np.float64))
    return rel * x + sub * amax / top + rounding * x * (1 + rel) + 2.0**-20 * (x + amax / top)


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_fp8_ulysses_stays_within_the_bound(ranks, fmt, dtype):
    size, block = 3, 2
    whole = (RNG.standard_normal((1, 11, 6, 8)) * np.exp2(np.arange(6) - 3)[None, None, :, None]).astype(dtype)

    def body(comm):
        p, r = comm.size, comm.rank
        x = np.ascontiguousarray(seq_slab(whole, 1, p, r))
        y = np.empty((1, 11, split_extent(6, p, r)[1], 8), dtype)
        comm.ulysses_all_to_all([x], [y], seq_axis=1, head_axis=2, wire_format=fmt, scale_block=block)
        return y

    for r, y in enumerate(ranks(size, body)):
        hs, hn = split_extent(6, size, r)
        exact = head_slab(whole, hs, hn)
        amax = np.zeros(exact.shape, np.float64)
        for src in range(size):  # groups: blocks of 2 tokens of each rank's shard, per head
            ts, tn = split_extent(11, size, src)
            for b0 in range(ts, ts + tn, block):
                b1 = min(b0 + block, ts + tn)
                amax[:, b0:b1] = np.abs(exact[:, b0:b1].astype(np.float64)).max(axis=(1, 3), keepdims=True)
        err = np.abs(y.astype(np.float64) - exact.astype(np.float64))
        assert np.all(err <= fp8_bound(exact, amax, fmt, dtype))
        ts, tn = split_extent(11, size, r)
        np.testing.assert_array_equal(y[:, ts : ts + tn], exact[:, ts : ts + tn])  # kept exactly
        assert np.count_nonzero(err) > err.size // 3  # the rest did travel as FP8


def test_fp8_all_gather_agrees_on_every_rank(ranks):
    whole = RNG.standard_normal((2, 12, 3, 16)).astype(np.float16)

    def body(comm):
        x = np.ascontiguousarray(whole[:, 4 * comm.rank : 4 * comm.rank + 4])
        y = np.empty_like(whole)
        comm.all_gather(x, y, axis=1, wire_format=WireFormat.FP8_E4M3, scale_block=4)
        return y

    outs = ranks(3, body)
    amax = np.abs(whole.astype(np.float64)).reshape(2, 3, 4, 3, 16).max(axis=(2, 4), keepdims=True)
    amax = np.broadcast_to(amax, (2, 3, 4, 3, 16)).reshape(whole.shape)
    for y in outs:
        np.testing.assert_array_equal(y, outs[0])
        assert np.all(np.abs(y.astype(np.float64) - whole) <= fp8_bound(whole, amax, "fp8_e4m3", np.float16))


def fp8_round(a, fmt):
    """float32 -> FP8 -> float32 by round to nearest even with saturation, written
    independently of the library: the spacing in a's binade is 2^(e - mantissa
    bits), and scaling by a power of two is exact."""
    mbits, min_exp, top = (3, -6, 448.0) if fmt == "fp8_e4m3" else (2, -14, 57344.0)
    mag = np.abs(a).astype(np.float64)
    _, ex = np.frexp(mag)
    e = np.maximum(ex - 1, min_exp)
    q = np.minimum(np.ldexp(np.rint(np.ldexp(mag, mbits - e)), e - mbits), top)
    return (np.sign(a) * q).astype(np.float32)


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2"])
def test_fp8_all_gather_is_the_documented_arithmetic(ranks, fmt):
    """x' = float16(fp8(x * (F / amax)) * (amax / F)) per (batch, 4-token block,
    head), in float32 with correctly rounded divisions, bit for bit. (PyTorch's
    `number / tensor` multiplies by a reciprocal instead: one ulp apart, which
    moves values next to a tie to the other code.)"""
    top = np.float32(448.0 if fmt == "fp8_e4m3" else 57344.0)
    # float16 values: few mantissa bits put many products next to a tie
    whole = (np.random.default_rng(3).standard_normal((2, 16, 3, 128)) * 8).astype(np.float16)
    whole[1, 4:8, 2] = 0  # an all-zero group

    def body(comm):
        y = np.full_like(whole, np.nan)
        comm.all_gather(whole, y, axis=1, wire_format=fmt, scale_block=4)
        return y

    (y,) = ranks(1, body)
    groups = whole.astype(np.float32).reshape(2, 4, 4, 3, 128)
    amax = np.abs(groups).max(axis=(2, 4), keepdims=True)
    with np.errstate(divide="ignore"):
        inverse = np.where(amax > 0, top / amax, np.float32(0)).astype(np.float32)
    expected = (fp8_round(groups * inverse, fmt) * (amax / top)).astype(np.float16)
    np.testing.assert_array_equal(y, expected.reshape(whole.shape))


def test_gqa_and_fp8_errors(ranks):
    def body(comm):
        x = np.ones((1, 4, 2, 2), np.float32)  # k/v [B, S_r, 2, D], S = 8 over 2 ranks
        y = np.empty((1, 8, 1, 2), np.float32)
        with pytest.raises(diffcoll.InvalidArgumentError) as not_dividing:
            comm.ulysses_all_to_all([x], [y], seq_axis=1, head_axis=2, query_heads=3)
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_format:
            comm.ulysses_all_to_all([x], [y], seq_axis=1, head_axis=2, wire_format="fp9")
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_block:
            comm.all_gather(x, np.empty((1, 8, 2, 2), np.float32), axis=1, wire_format="fp8_e5m2", scale_block=0)
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_heads:
            ulysses_kv_heads(8, 3, 2, 0)
        return not_dividing.value, bad_format.value, bad_block.value, bad_heads.value

    for not_dividing, bad_format, bad_block, bad_heads in ranks(2, body):
        assert not_dividing.function == "diffcoll_ulysses_all_to_all_ex"
        assert "neither the 3 query heads" in not_dividing.message
        assert bad_format.function == "Comm.ulysses_all_to_all" and "fp9" in bad_format.message
        assert bad_block.function == "diffcoll_all_gather_ex" and "scale_block 0" in bad_block.message
        assert bad_heads.function == "diffcoll_ulysses_kv_heads" and "divide" in bad_heads.message


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
