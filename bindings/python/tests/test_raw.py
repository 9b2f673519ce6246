# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""The raw SWIG module (diffcoll_c) on the CFG policy, halo, Ulysses and ring
functions (which CfgPolicy, HaloPlan, Comm.ulysses_all_to_all and Ring wrap):
exercises the array, string and struct typemaps of bindings/swig/diffcoll.i
directly."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll
from diffcoll._native import c
from diffcoll._tensor import describe


def test_cfg_policy_typemaps():
    branches = [("uncond", c.DIFFCOLL_CFG_UNCOND), ("cond", c.DIFFCOLL_CFG_COND)]
    status, policy = c.diffcoll_cfg_policy_create(branches, 0, [(7.5, 1, 0)], None)
    assert status == 0 and policy is not None, c.diffcoll_last_error()
    try:
        assert c.diffcoll_cfg_policy_num_branches(policy) == [0, 2]
        assert c.diffcoll_cfg_policy_branch(policy, 1) == [0, "cond", c.DIFFCOLL_CFG_COND]
        assert c.diffcoll_cfg_policy_find_branch(policy, "cond") == [0, 1]
        status, index = c.diffcoll_cfg_policy_find_branch(policy, "nope")
        assert status == diffcoll.Status.INVALID_ARGUMENT and index == -1
        assert "nope" in c.diffcoll_last_error()
        assert c.diffcoll_cfg_policy_weights(policy, 2) == [0, [-6.5, 7.5]]
        status, indices, count = c.diffcoll_cfg_dispatch(policy, 2, 1, 4)
        assert status == 0 and indices[:count] == [1]
        status, options = c.diffcoll_cfg_policy_get_options(policy)
        assert status == 0 and options.struct_size == c.diffcoll_cfg_options_t().struct_size
        # Serial combine of numpy predictions (strided output view).
        uncond = np.zeros((2, 3), np.float32)
        cond = np.ones((2, 3), np.float32)
        out = np.full((2, 6), -1, np.float32)
        preds = [describe(uncond, "p", writable=False)[0], describe(cond, "p", writable=False)[0]]
        o, _ = describe(out[:, ::2], "out", writable=True)
        assert c.diffcoll_cfg_combine_serial(policy, preds, o, 0, None) == 0, c.diffcoll_last_error()
        np.testing.assert_array_equal(out[:, ::2], 7.5)
        np.testing.assert_array_equal(out[:, 1::2], -1)
    finally:
        assert c.diffcoll_cfg_policy_destroy(policy) == 0


def test_cfg_branch_objects_and_options():
    b = c.diffcoll_cfg_branch_t()
    b.name = "cond"
    b.role = c.DIFFCOLL_CFG_COND
    b.name = "cond2"  # the old copy is freed
    assert b.name == "cond2"
    options = c.diffcoll_cfg_options_t()  # DIFFCOLL_CFG_OPTIONS_INIT
    assert options.struct_size > 0 and options.order == c.DIFFCOLL_CFG_ORDER_SERIAL
    status, policy = c.diffcoll_cfg_policy_create([b], 0, None, options)
    assert status == 0, c.diffcoll_last_error()
    assert c.diffcoll_cfg_policy_branch(policy, 0)[1] == "cond2"
    assert c.diffcoll_cfg_policy_destroy(policy) == 0
    # Bad input is reported, not crashed on.
    status, policy = c.diffcoll_cfg_policy_create([("a", 1)], 5, None, None)
    assert status == diffcoll.Status.INVALID_ARGUMENT and policy is None


def test_halo_helpers():
    status, start, length = c.diffcoll_split_extent(10, 3, 2)
    assert status == 0 and start + length == 10 and length in (3, 4)
    cfg = c.diffcoll_halo_config_t()  # DIFFCOLL_HALO_CONFIG_INIT
    assert cfg.struct_size > 0 and cfg.grid_cols == 1 and cfg.exchange_corners == 1


def test_tensor_array_pair_typemap_and_new_init_structs():
    # (inputs, outputs, count) and (buffer0, buffer1, count): one (A, B) pair argument.
    t = c.diffcoll_tensor_t()
    with pytest.raises(ValueError, match="1 inputs but 0 outputs"):
        c.diffcoll_ulysses_all_to_all(None, ([t], []), 1, 2, 0, None)
    with pytest.raises(TypeError):
        c.diffcoll_ring_create(None, [t], [t])  # two arguments instead of one pair
    status, ring = c.diffcoll_ring_create(None, ([t], [t]))
    assert status == c.DIFFCOLL_ERR_INVALID_HANDLE and ring is None
    # Structs with an *_INIT macro start from it.
    assert c.diffcoll_usp_degrees_t().ulysses == c.diffcoll_usp_degrees_t().data == 1
    assert c.diffcoll_usp_degrees_t().struct_size > 0 and c.diffcoll_usp_mesh_t().ulysses is None
    assert c.diffcoll_fused_norm_options_t().path == c.DIFFCOLL_FUSED_NORM_AUTO
    assert c.diffcoll_fused_norm_options_t().struct_size > 0


def test_tensor_tuples_and_objects_are_one_descriptor():
    # The Python layer passes (data, dtype, device_type, device_id, shape,
    # strides) tuples; diffcoll_tensor_t objects still work; both say the same.
    status, comm = c.diffcoll_comm_create("local://raw-tuple", 0, 1, c.diffcoll_config_t())
    assert status == 0, c.diffcoll_last_error()
    try:
        a = np.arange(12, dtype=np.float64).reshape(3, 4)
        view = a[:, ::2]  # strided: gathered through staging
        as_tuple = (view.ctypes.data, int(diffcoll.DType.FLOAT64), 1, 0, view.shape, (4, 2))
        t = c.diffcoll_tensor_t()
        t.data, t.dtype, t.device_type, t.ndim = view.ctypes.data, diffcoll.DType.FLOAT64, 1, 2
        t.shape, t.strides = view.shape, (4, 2)
        out_t = np.zeros((3, 4))
        out_o = np.zeros((3, 4))
        for desc, out in ((as_tuple, out_t), (t, out_o)):  # into the odd columns
            o = (out.ctypes.data + 8, int(diffcoll.DType.FLOAT64), 1, 0, (3, 2), (4, 2))
            assert c.diffcoll_all_gather(comm, desc, o, 0, None) == 0, c.diffcoll_last_error()
        np.testing.assert_array_equal(out_t[:, 1::2], view)
        np.testing.assert_array_equal(out_t[:, ::2], 0)
        np.testing.assert_array_equal(out_o, out_t)
        # Malformed tuples are Python errors, never a call with garbage.
        with pytest.raises(TypeError, match="tensor tuple is"):
            c.diffcoll_all_reduce(comm, (view.ctypes.data, 7), 0, 1.0, None)
        with pytest.raises(ValueError, match="2 dimensions but 1 strides"):
            c.diffcoll_all_reduce(comm, as_tuple[:5] + ((4,),), 0, 1.0, None)
        with pytest.raises(ValueError, match="at most 8"):
            c.diffcoll_all_reduce(comm, as_tuple[:4] + ((1,) * 9, (1,) * 9), 0, 1.0, None)
        with pytest.raises(TypeError):
            c.diffcoll_all_reduce(comm, ("nope", 7, 1, 0, (1,), (1,)), 0, 1.0, None)
        # In arrays too (the CFG predictions).
        with pytest.raises(TypeError, match="tensor tuple is"):
            c.diffcoll_cfg_combine_serial(None, [(1, 2)], as_tuple, 0, None)
    finally:
        assert c.diffcoll_comm_destroy(comm) == 0
