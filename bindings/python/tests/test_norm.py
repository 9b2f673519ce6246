# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Comm.group_norm and FusedNormWorkspace: ranks as threads, results checked
against numpy evaluations of the whole (unsplit / unreduced) computation."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll
from diffcoll import FusedNormWorkspace, split_extent

RNG = np.random.default_rng(7)
# NCHW activation, C = 6 in 3 groups, H = 7 split over the ranks.
WHOLE = RNG.standard_normal((2, 6, 7, 5)).astype(np.float32) * 3.0 + 1.5
GAMMA = RNG.standard_normal(6).astype(np.float32)
BETA = RNG.standard_normal(6).astype(np.float32)


def np_group_norm(x, groups, eps, weight=None, bias=None):
    n, ch = x.shape[:2]
    g = x.astype(np.float64).reshape(n, groups, -1)
    y = ((g - g.mean(axis=2, keepdims=True)) / np.sqrt(g.var(axis=2, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, ch) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def group_norm_body(affine, layout):
    def body(comm):
        start, rows = split_extent(WHOLE.shape[2], comm.size, comm.rank)
        slab = np.ascontiguousarray(WHOLE[:, :, start : start + rows])
        kwargs = dict(weight=GAMMA, bias=BETA) if affine else {}
        if layout == "in_place":
            out = comm.group_norm(slab, num_groups=3, eps=1e-5, **kwargs)
            assert out is slab
        else:  # a channels-last output buffer, written through a permuted view
            out = np.full((2, rows, 5, 6), np.nan, np.float32).transpose(0, 3, 1, 2)
            assert comm.group_norm(slab, out, num_groups=3, eps=1e-5, **kwargs) is out
        return start, rows, np.array(out)

    return body


@pytest.mark.parametrize("size", [1, 3, 8])  # 8 ranks > 7 rows: one rank has an empty slab
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("layout", ["in_place", "channels_last_output"])
def test_group_norm_of_split_activation_is_group_norm_of_whole(ranks, size, affine, layout):
    expected = np_group_norm(WHOLE, 3, 1e-5, GAMMA if affine else None, BETA if affine else None)
    got = np.full(WHOLE.shape, np.nan, np.float32)
    for start, rows, out in ranks(size, group_norm_body(affine, layout)):
        got[:, :, start : start + rows] = out
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_group_norm_errors(ranks):
    def body(comm):
        x = np.ones((2, 6, 4), np.float32)
        with pytest.raises(diffcoll.InvalidArgumentError) as not_dividing:
            comm.group_norm(x, num_groups=4)
        with pytest.raises(diffcoll.InvalidArgumentError) as wrong_shape:
            comm.group_norm(x, np.zeros((2, 6, 3), np.float32), num_groups=3)
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_weight:
            comm.group_norm(x, weight=np.ones(5, np.float32), num_groups=3)
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_dtype:
            comm.group_norm(x.astype(np.float64), num_groups=3)
        return not_dividing.value, wrong_shape.value, bad_weight.value, bad_dtype.value

    for errors in ranks(2, body):
        for e in errors:
            assert e.function == "diffcoll_group_norm" and e.status == diffcoll.Status.INVALID_ARGUMENT
            assert e.message and e.message in str(e)
        not_dividing, wrong_shape, bad_weight, bad_dtype = errors
        assert "num_groups 4" in not_dividing.message
        assert "output" in wrong_shape.message and "shape" in wrong_shape.message
        assert "weight" in bad_weight.message and "float64" in bad_dtype.message


# ---------------------------------------------------------------- fused norm

TOKENS, HIDDEN = (3, 5), 16  # x: [3, 5, 16], rows of 16
X = [RNG.standard_normal(TOKENS + (HIDDEN,)).astype(np.float32) for _ in range(3)]
RESIDUAL = RNG.standard_normal(TOKENS + (HIDDEN,)).astype(np.float32)
WEIGHT = RNG.standard_normal(HIDDEN).astype(np.float32)


def np_fused_norm(xs, residual, weight, eps):
    total = np.sum(np.stack(xs), axis=0, dtype=np.float32)
    res = total if residual is None else (total + residual).astype(np.float32)
    y = res / np.sqrt(np.mean(res.astype(np.float64) ** 2, axis=-1, keepdims=True) + eps)
    return (y if weight is None else y * weight), res


@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("in_place", [False, True])
def test_fused_norm_matches_numpy(ranks, size, in_place):
    def body(comm):
        x = X[comm.rank].copy()
        residual = RESIDUAL.copy()
        with FusedNormWorkspace(comm, max_tokens=16, max_hidden=HIDDEN, dtype="float32") as ws:
            assert ws.comm is comm
            if in_place:  # y into x, residual_out into residual; __call__ is apply
                assert ws(x, residual, WEIGHT, eps=1e-6, y=x, residual_out=residual) is x
                return x, residual
            y = np.empty_like(x)
            res = np.empty_like(x)
            assert ws.apply(x, residual, WEIGHT, eps=1e-6, y=y, residual_out=res, path="nccl") is y
            np.testing.assert_array_equal(x, X[comm.rank])  # x is only read
            return y, res

    y_ref, res_ref = np_fused_norm(X[:size], RESIDUAL, WEIGHT, 1e-6)
    for y, res in ranks(size, body):
        np.testing.assert_allclose(res, res_ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)


def test_fused_norm_optional_tensors(ranks):
    def body(comm):
        y = np.empty(TOKENS + (HIDDEN,), np.float32)
        with FusedNormWorkspace(comm, 15, HIDDEN, diffcoll.DType.FLOAT32) as ws:
            ws(X[comm.rank], eps=1e-6, y=y)  # no residual, weight or residual_out
        return y

    y_ref, _ = np_fused_norm(X[:2], None, None, 1e-6)
    for y in ranks(2, body):
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)


def test_fused_norm_errors(ranks):
    def body(comm):
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_limit:
            FusedNormWorkspace(comm, 0, HIDDEN, "float32")
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_dtype:
            FusedNormWorkspace(comm, 4, HIDDEN, "float64")
        ws = FusedNormWorkspace(comm, 4, HIDDEN, "float32")
        x = np.ones((5, HIDDEN), np.float32)
        with pytest.raises(diffcoll.InvalidArgumentError) as too_large:
            ws(x, eps=1e-6, y=np.empty_like(x))
        with pytest.raises(diffcoll.InvalidArgumentError) as bad_path:
            ws(x[:4], eps=1e-6, y=np.empty_like(x[:4]), path="fastest")
        ws.close()
        ws.close()  # idempotent
        with pytest.raises(diffcoll.InvalidHandleError) as closed:
            ws(x[:4], eps=1e-6, y=np.empty_like(x[:4]))
        return bad_limit.value, bad_dtype.value, too_large.value, bad_path.value, closed.value

    for bad_limit, bad_dtype, too_large, bad_path, closed in ranks(2, body):
        assert bad_limit.function == bad_dtype.function == "diffcoll_fused_norm_workspace_create"
        assert too_large.function == "diffcoll_fused_norm" and too_large.message
        assert "max_tokens 0" in bad_limit.message and "dtype" in bad_dtype.message
        assert "too small" in too_large.message and "up to 4 tokens" in too_large.message
        assert bad_path.function == "FusedNormWorkspace.apply" and "fastest" in bad_path.message
        assert closed.status == diffcoll.Status.INVALID_HANDLE and closed.message
