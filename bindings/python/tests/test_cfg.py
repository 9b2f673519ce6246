# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""CfgPolicy and Comm.cfg_combine: ranks as threads, checked against numpy
references of the two arithmetic orders (docs/CFG.md)."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll
from diffcoll import CfgOrder, CfgPolicy, CfgRole

SHAPE = (2, 3, 4, 5)


def preds_for(n: int, dtype=np.float32, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


def parallel_reference(weights, preds):
    """PARALLEL order: acc = r(w0 p0); acc = r(acc + r(wi pi)); float32 math, r() to the dtype."""
    dtype = preds[0].dtype
    w = [np.float32(x) for x in weights]
    acc = (w[0] * preds[0].astype(np.float32)).astype(dtype)
    for wi, p in zip(w[1:], preds[1:]):
        term = (wi * p.astype(np.float32)).astype(dtype)
        acc = (acc.astype(np.float32) + term.astype(np.float32)).astype(dtype)
    return acc


def serial_reference(base, terms, preds):
    """SERIAL order: acc = p[base]; acc += s_k (p[plus_k] - p[minus_k]) in float32, one rounding."""
    f = [p.astype(np.float32) for p in preds]
    acc = f[base].copy()
    for scale, plus, minus in terms:
        acc = acc + np.float32(scale) * (f[plus] - f[minus])
    return acc.astype(preds[0].dtype)


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint16 if a.itemsize == 2 else np.uint32)


# ---------------------------------------------------------------- policies


def test_policy_by_names_weights_and_queries():
    branches = [
        ("cond", "cond"),
        ("uncond", CfgRole.UNCOND),
        ("stg", "perturbed"),
        ("audio_only", int(CfgRole.MODALITY)),
    ]
    terms = [(6.0, "cond", "uncond"), (1.5, "cond", "stg"), (0.5, 0, 3)]
    with CfgPolicy(branches, base="cond", terms=terms, rescale_phi=0.7, zero_init_steps=2) as p:
        assert len(p) == p.num_branches == 4
        assert p.branches == [
            ("cond", CfgRole.COND),
            ("uncond", CfgRole.UNCOND),
            ("stg", CfgRole.PERTURBED),
            ("audio_only", CfgRole.MODALITY),
        ]
        assert p.branch(2) == ("stg", CfgRole.PERTURBED)
        assert p.index("audio_only") == 3
        assert p.weights() == [1 + 6.0 + 1.5 + 0.5, -6.0, -1.5, -0.5]
        o = p.options
        assert o.order == CfgOrder.SERIAL and o.rescale_phi == 0.7 and o.zero_init_steps == 2
        assert not o.zero_star and o.norm_k == 0.0 and not o.norm_per_sample
        # docs/CFG.md's dispatch table, n = 4.
        assert [p.dispatch(3, r) for r in range(3)] == [[0], [1], [2, 3]]
        assert [p.dispatch(2, r) for r in range(2)] == [[0, 1], [2, 3]]
        assert p.dispatch(1, 0) == [0, 1, 2, 3]
        assert "stg:perturbed" in repr(p)
    assert p.closed and repr(p) == "<diffcoll.CfgPolicy closed>"
    p.close()  # idempotent


def test_dispatch_idle_ranks_and_standard():
    with CfgPolicy.standard(5.0, order="parallel") as p:
        assert p.weights() == [5.0, -4.0]
        assert p.options.order == CfgOrder.PARALLEL
        assert [p.dispatch(4, r) for r in range(4)] == [[], [0], [], [1]]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_serial_orders_match_numpy(dtype):
    preds = preds_for(3, dtype)
    terms = [(4.5, 0, 1), (1.25, 0, 2)]
    branches = [("cond", "cond"), ("uncond", "uncond"), ("stg", "perturbed")]
    with CfgPolicy(branches, base=1, terms=terms) as p:
        out = np.empty(SHAPE, dtype)
        assert p.combine_serial(preds, out) is out
        np.testing.assert_array_equal(bits(out), bits(serial_reference(1, terms, preds)))
    with CfgPolicy(branches, base=1, terms=terms, order=CfgOrder.PARALLEL) as p:
        out = np.empty(SHAPE, dtype)
        p.combine_serial(preds, out)
        np.testing.assert_array_equal(bits(out), bits(parallel_reference(p.weights(), preds)))


def test_serial_strided_output_and_in_place():
    preds = preds_for(2)
    with CfgPolicy.standard(7.5, order="parallel") as p:
        expected = parallel_reference(p.weights(), preds)
        big = np.full((2, 3, 4, 10), -1.0, np.float32)
        p.combine_serial(preds, big[..., ::2])  # sliced: packed, gaps untouched
        np.testing.assert_array_equal(big[..., ::2], expected)
        assert np.all(big[..., 1::2] == -1.0)
        # Transposed inputs, in place into one of them.
        cond_t = np.ascontiguousarray(preds[0].transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0)
        p.combine_serial([cond_t, preds[1]], cond_t)
        np.testing.assert_array_equal(cond_t, expected)


def test_zero_init_steps():
    preds = preds_for(2)
    with CfgPolicy.standard(3.0, zero_init_steps=2) as p:
        out = np.ones(SHAPE, np.float32)
        p.combine_serial(preds, out, step=1)
        assert np.all(out == 0)
        p.combine_serial(preds, out, step=2)
        np.testing.assert_array_equal(out, serial_reference(1, [(3.0, 0, 1)], preds))


# ---------------------------------------------------------------- parallel


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_standard_cfg_two_ranks_parallel_equals_serial_bitwise(ranks, dtype):
    preds = preds_for(2, dtype, seed=1)

    def body(comm):
        with CfgPolicy.standard(7.5, order="parallel") as p:
            mine = p.dispatch(comm.size, comm.rank)
            assert mine == [comm.rank]
            # Rank 1 writes into a transposed output: layouts may differ per rank.
            if comm.rank == 0:
                out = np.empty(SHAPE, dtype)
                view = out
            else:
                out = np.empty(SHAPE[::-1], dtype)
                view = out.transpose(3, 2, 1, 0)
            assert comm.cfg_combine(p, [preds[i] for i in mine], view) is view
            serial = np.empty(SHAPE, dtype)
            p.combine_serial(preds, serial)
            return np.ascontiguousarray(view), serial, p.weights()

    for parallel, serial, weights in ranks(2, body):
        np.testing.assert_array_equal(bits(parallel), bits(serial))
        np.testing.assert_array_equal(bits(parallel), bits(parallel_reference(weights, preds)))


def test_idle_rank_and_post_processing_stay_bitwise(ranks):
    """Three ranks, two branches (n <= 2 <= d): rank 0 runs nothing and adds -0;
    guidance rescale is shared through per-sample statistics."""
    preds = preds_for(2, seed=2)

    def body(comm):
        with CfgPolicy.standard(6.0, order="parallel", rescale_phi=0.7, norm_k=1.5) as p:
            mine = p.dispatch(comm.size, comm.rank)
            out = np.empty(SHAPE, np.float32)
            comm.cfg_combine(p, [preds[i] for i in mine], out, step=3)
            serial = np.empty(SHAPE, np.float32)
            p.combine_serial(preds, serial, step=3)
            return mine, out, serial

    results = ranks(3, body)
    assert [m for m, _, _ in results] == [[], [0], [1]]
    # Guidance rescale (phi 0.7) in float64, for a loose check of the math.
    cond, uncond = (p.astype(np.float64) for p in preds)
    raw = uncond + 6.0 * (cond - uncond)
    axes = tuple(range(1, len(SHAPE)))
    std = lambda a: a.std(axis=axes, ddof=1, keepdims=True)  # noqa: E731
    resc = 0.7 * raw * std(cond) / std(raw) + 0.3 * raw
    norm = np.linalg.norm(resc)
    bound = 1.5 * np.linalg.norm(cond)
    if norm > bound:
        resc = resc * bound / norm
    for _, out, serial in results:
        np.testing.assert_array_equal(bits(out), bits(serial))
        np.testing.assert_allclose(out, resc, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- errors


def test_policy_errors():
    cu = [("cond", "cond"), ("uncond", "uncond")]
    with pytest.raises(diffcoll.InvalidArgumentError, match="nope"):
        CfgPolicy(cu, base="nope")
    with pytest.raises(diffcoll.InvalidArgumentError, match="term 0 minus"):
        CfgPolicy(cu, base=0, terms=[(1.0, "cond", "unknown")])
    with pytest.raises(diffcoll.InvalidArgumentError, match="role"):
        CfgPolicy([("cond", "conditional")], base=0)
    with pytest.raises(diffcoll.InvalidArgumentError, match="order"):
        CfgPolicy(cu, base=0, order="fast")
    # The library's own checks: status and function come through.
    with pytest.raises(diffcoll.InvalidArgumentError) as e:
        CfgPolicy(cu, base=1, terms=[(7.5, 0, 0)])
    assert e.value.status == diffcoll.Status.INVALID_ARGUMENT
    assert e.value.function == "diffcoll_cfg_policy_create"
    with pytest.raises(diffcoll.InvalidArgumentError):
        CfgPolicy([("a", "cond"), ("a", "uncond")], base=0)  # duplicate name
    with pytest.raises(diffcoll.InvalidArgumentError):
        CfgPolicy([("p", "perturbed"), ("u", "uncond")], base=1, rescale_phi=0.5)  # no COND
    with pytest.raises(diffcoll.InvalidArgumentError):
        CfgPolicy(cu, base=0, rescale_phi=2.0)  # out of range


def test_combine_errors(ranks):
    preds = preds_for(2)
    p = CfgPolicy.standard(7.5)
    with pytest.raises(diffcoll.InvalidArgumentError) as e:
        p.index("nope")
    assert "cond" in e.value.message  # the message lists the branches
    with pytest.raises(diffcoll.InvalidArgumentError):
        p.dispatch(0, 0)
    with pytest.raises(diffcoll.InvalidArgumentError):
        p.combine_serial(preds[:1], np.empty(SHAPE, np.float32))  # one prediction short
    with pytest.raises(diffcoll.InvalidArgumentError):
        p.combine_serial([x.astype(np.int32) for x in preds], np.empty(SHAPE, np.int32))
    with pytest.raises(diffcoll.InvalidArgumentError):
        p.combine_serial(preds, np.empty((2, 3), np.float32))  # shape
    with pytest.raises(diffcoll.InvalidArgumentError):
        p.combine_serial(preds, np.empty(SHAPE, np.float32), step=-1)

    def body(comm):
        out = np.empty(SHAPE, np.float32)
        with pytest.raises(diffcoll.InvalidArgumentError):
            comm.cfg_combine(p, preds[:1], out)  # degree 1 holds both branches
        comm.cfg_combine(p, preds, out)
        return out

    (out,) = ranks(1, body)
    # SERIAL order: the parallel combine agrees within rounding only.
    np.testing.assert_allclose(out, serial_reference(1, [(7.5, 0, 1)], preds), rtol=1e-5, atol=1e-5)
    p.close()
    with pytest.raises(diffcoll.InvalidHandleError):
        p.weights()
    with pytest.raises(diffcoll.InvalidHandleError):
        p.combine_serial(preds, np.empty(SHAPE, np.float32))
