# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""diffcoll.torch on CPU tensors with host ranks (threads).

Every operation runs eagerly against an independent reference computed on
one process (torch on the whole, unsplit data), on strided inputs, and its
fake kernel gives the shapes the real one makes without reading data. The
custom-operator part (registration, opcheck, torch.compile(fullgraph=True)
equal to eager) needs torch.library.custom_op (PyTorch >= 2.4) and skips
with the reason otherwise; tests/test_torch_ops_cuda.py runs it on GPUs.
"""
from __future__ import annotations

import operator

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (python3-torch)")

import torch.nn.functional as F  # noqa: E402

import diffcoll  # noqa: E402
import diffcoll.torch as dct  # noqa: E402
from diffcoll.torch import _kernels  # noqa: E402

needs_custom_op = pytest.mark.skipif(not dct.COMPILABLE, reason=str(dct.UNAVAILABLE_REASON))


def rand(shape, seed, dtype=torch.float32):
    """Small integers as floats: sums are exact in any order."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 8, shape, generator=g).to(dtype)


# ---------------------------------------------------------------- collectives


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("op", ["sum", "max", "premul_sum"])
def test_all_reduce_in_place_on_a_strided_view(ranks, size, op):
    def body(comm):
        h = diffcoll.handle(comm)
        a = rand((4, 6), comm.rank)
        view = a[:, ::2].T  # gaps and a transposition
        assert dct.all_reduce_(view, h, op, scalar=comm.rank + 1.0) is view
        fresh = rand((4, 6), comm.rank)
        reduced = dct.all_reduce(fresh, comm, op, scalar=comm.rank + 1.0)  # the object works too
        return a, fresh, reduced

    inputs = [rand((4, 6), r) for r in range(size)]
    if op == "sum":
        want = sum(inputs)
    elif op == "max":
        want = torch.stack(inputs).amax(0)
    else:
        want = sum((r + 1.0) * x for r, x in enumerate(inputs))
    for rank, (a, fresh, reduced) in enumerate(ranks(size, body)):
        torch.testing.assert_close(a[:, ::2], want[:, ::2], rtol=0, atol=0)
        torch.testing.assert_close(a[:, 1::2], inputs[rank][:, 1::2], rtol=0, atol=0)
        torch.testing.assert_close(fresh, inputs[rank], rtol=0, atol=0)  # functional: unchanged
        torch.testing.assert_close(reduced, want, rtol=0, atol=0)


@pytest.mark.parametrize("size", [2, 3])
def test_broadcast_and_reduce(ranks, size):
    root = size - 1

    def body(comm):
        b = rand((3, 5), comm.rank).T
        dct.broadcast_(b, diffcoll.handle(comm), root=root)
        r = rand((3, 5), 10 + comm.rank)
        dct.reduce_(r, diffcoll.handle(comm), "sum", root=root)
        return b, r

    for rank, (b, r) in enumerate(ranks(size, body)):
        torch.testing.assert_close(b, rand((3, 5), root).T, rtol=0, atol=0)
        want = sum(rand((3, 5), 10 + s) for s in range(size)) if rank == root else rand((3, 5), 10 + rank)
        torch.testing.assert_close(r, want, rtol=0, atol=0)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_gather_scatter_and_all_to_all(ranks, size):
    def body(comm):
        h = diffcoll.handle(comm)
        x = rand((4, 3 * size), comm.rank).T[::1]  # (3P, 4), transposed
        return (dct.all_gather(x, h, axis=1), dct.reduce_scatter(x, h, axis=0),
                dct.all_to_all(x, h, scatter_axis=0, gather_axis=1))

    xs = [rand((4, 3 * size), r).T for r in range(size)]
    for rank, (gathered, scattered, exchanged) in enumerate(ranks(size, body)):
        assert gathered.is_contiguous() and gathered.shape == (3 * size, 4 * size)
        torch.testing.assert_close(gathered, torch.cat(xs, dim=1), rtol=0, atol=0)
        torch.testing.assert_close(scattered, sum(xs).chunk(size, 0)[rank], rtol=0, atol=0)
        torch.testing.assert_close(exchanged, torch.cat([x.chunk(size, 0)[rank] for x in xs], dim=1),
                                   rtol=0, atol=0)


def test_send_recv(ranks):
    def body(comm):
        h = diffcoll.handle(comm)
        mine = rand((2, 6), comm.rank)[:, ::3]
        got = torch.zeros(4, 2).T[:, ::2]  # strided receive buffer
        peer = 1 - comm.rank
        if comm.rank == 0:  # one direction at a time: blocking host p2p
            dct.send(mine, h, peer)
            dct.recv_(got, h, peer)
        else:
            assert dct.recv_(got, h, peer) is got
            dct.send(mine, h, peer)
        return got

    for rank, got in enumerate(ranks(2, body)):
        torch.testing.assert_close(got, rand((2, 6), 1 - rank)[:, ::3], rtol=0, atol=0)


# ---------------------------------------------------------------- CFG, halo, slabs, GroupNorm


@pytest.mark.parametrize("size", [2, 3])  # 3: one rank holds no branch
def test_cfg_combine_equals_the_serial_combine(ranks, size):
    preds = [rand((2, 3, 4), 50 + i, torch.bfloat16) for i in range(2)]

    def body(comm):
        with diffcoll.CfgPolicy.standard(5.0, order="parallel") as policy:
            mine = [preds[i].permute(2, 1, 0).contiguous().permute(2, 1, 0)  # strided
                    for i in policy.dispatch(comm.size, comm.rank)]
            out = torch.full((2, 3, 4), float("nan"), dtype=torch.bfloat16)
            got = dct.cfg_combine(mine, diffcoll.handle(comm), diffcoll.handle(policy), out=out)
            assert got is out
            if mine:
                again = dct.cfg_combine(mine, comm, policy)  # into a new tensor
            else:
                with pytest.raises(diffcoll.InvalidArgumentError, match="out="):
                    dct.cfg_combine(mine, comm, policy)  # refused before communicating
                again = dct.cfg_combine(mine, comm, policy, out=torch.empty_like(out))
            assert torch.equal(again, out)
            return out

    with diffcoll.CfgPolicy.standard(5.0, order="parallel") as policy:
        serial = torch.empty(2, 3, 4, dtype=torch.bfloat16)
        policy.combine_serial(preds, serial)
    for out in ranks(size, body):
        assert torch.equal(out.view(torch.int16), serial.view(torch.int16))


@pytest.mark.parametrize("size", [2, 3])
def test_halo_exchange_and_gather_slabs(ranks, size):
    whole = rand((2, 3, 10, 4), 7)

    def body(comm):
        start, rows = diffcoll.split_extent(10, comm.size, comm.rank)
        padded = torch.full((2, 3, rows + 2, 4), float("nan")).contiguous(memory_format=torch.channels_last)
        padded[:, :, 1:rows + 1] = whole[:, :, start:start + rows]
        with diffcoll.HaloPlan(comm, row_axis=2, row_boundary="replicate") as plan:
            assert dct.halo_exchange_(padded, diffcoll.handle(plan)) is padded
        slab = padded[:, :, 1:rows + 1]  # a strided view
        h = diffcoll.handle(comm)
        return start, rows, padded, dct.gather_slabs(slab, h, 2, 10), dct.gather_slabs(slab, h, 2, 10, root=1)

    reference = F.pad(whole, (0, 0, 1, 1), mode="replicate")
    for rank, (start, rows, padded, everyone, rooted) in enumerate(ranks(size, body)):
        torch.testing.assert_close(padded, reference[:, :, start:start + rows + 2], rtol=0, atol=0)
        torch.testing.assert_close(everyone, whole, rtol=0, atol=0)
        if rank == 1:
            torch.testing.assert_close(rooted, whole, rtol=0, atol=0)
        else:
            assert rooted.shape == (2, 3, 0, 4)


@pytest.mark.parametrize("size", [1, 3])
def test_group_norm_of_the_whole(ranks, size):
    whole = torch.randn(2, 6, 7, 5, generator=torch.Generator().manual_seed(3)) * 2 + 1
    weight, bias = torch.randn(6), torch.randn(6)

    def body(comm):
        start, rows = diffcoll.split_extent(7, comm.size, comm.rank)
        slab = whole[:, :, start:start + rows].contiguous(memory_format=torch.channels_last)
        out = dct.group_norm(slab, diffcoll.handle(comm), 3, weight, bias, eps=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last)  # the slab's layout
        return start, rows, out

    want = F.group_norm(whole.double(), 3, weight.double(), bias.double(), eps=1e-5).float()
    for start, rows, out in ranks(size, body):
        torch.testing.assert_close(out, want[:, :, start:start + rows], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- DiT blocks


@pytest.mark.parametrize("size", [1, 2, 3])
def test_ulysses_qkv_round_trip(ranks, size):
    seq, heads, dim = 7, 6, 4  # 7 tokens: uneven over 2 and 3
    qkv_whole = rand((2, seq, 3, heads, dim), 11)

    def body(comm):
        h = diffcoll.handle(comm)
        s0, sn = diffcoll.split_extent(seq, comm.size, comm.rank)
        q, k, v = qkv_whole[:, s0:s0 + sn].unbind(2)  # strided views of one projection
        heads_out = dct.ulysses_all_to_all([q, k, v], h, seq_axis=1, head_axis=2, gathered=[seq] * 3)
        back = dct.ulysses_all_to_all(heads_out, h, 1, 2, direction="head_to_seq", gathered=[heads] * 3)
        return s0, sn, heads_out, back

    for rank, (s0, sn, heads_out, back) in enumerate(ranks(size, body)):
        h0, hn = diffcoll.split_extent(heads, size, rank)
        for t in range(3):
            torch.testing.assert_close(heads_out[t], qkv_whole[:, :, t, h0:h0 + hn], rtol=0, atol=0)
            torch.testing.assert_close(back[t], qkv_whole[:, s0:s0 + sn, t], rtol=0, atol=0)


@pytest.mark.parametrize("size", [1, 2])
def test_fused_add_rmsnorm(ranks, size):
    xs = [torch.randn(5, 16, generator=torch.Generator().manual_seed(20 + r)) for r in range(size)]
    residual, weight = torch.randn(5, 16), torch.randn(16)

    def body(comm):
        with diffcoll.FusedNormWorkspace(comm, 8, 16, "float32") as ws:
            y, res_out = dct.fused_add_rmsnorm(xs[comm.rank], residual, weight, ws, eps=1e-6)
            x2, r2 = xs[comm.rank].clone(), residual.clone()
            assert dct.fused_add_rmsnorm_(x2, r2, weight, diffcoll.handle(ws), 1e-6, "nccl") == (x2, r2)
            return y, res_out, x2, r2

    s = (sum(xs) + residual).double()
    want = (s / torch.sqrt(s.pow(2).mean(-1, keepdim=True) + 1e-6) * weight.double()).float()
    for y, res_out, x2, r2 in ranks(size, body):
        torch.testing.assert_close(res_out, s.float(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
        assert torch.equal(x2, y) and torch.equal(r2, res_out)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("copies", [False, "ring_buffers", True], ids=["own", "ring_buffers", "graph_copies"])
@pytest.mark.parametrize("operators", [False, True], ids=["eager", "operator_kernels"])
def test_ring_visits_every_block(ranks, size, copies, operators):
    """The steps get the ring's tensors in a list, or ``Ring.buffers`` itself
    (``copies`` "ring_buffers"); with ``copies`` True they get other tensors
    holding the halves' values at each call, as torch.compile's functionalized
    graphs hand them; with
    ``operators`` they run the registered operators' kernels, as a compiled
    graph does: the block sent and the block received must still be the
    right ones."""
    def start(h, buffers, cur):
        return _kernels.ring_start(buffers, h, cur) if operators else dct.ring_start(h, buffers, cur)

    def wait(h, buffers, cur):
        if not operators:
            return dct.ring_wait(h, buffers, cur)
        _kernels.ring_wait(buffers, h, cur)
        return 1 - cur

    def body(comm):
        halves = [[torch.zeros(3, 4), torch.zeros(3)] for _ in range(2)]
        halves[0][0].fill_(comm.rank)
        halves[0][1].fill_(-comm.rank)
        with diffcoll.Ring(comm, halves[0], halves[1]) as ring:
            h = diffcoll.handle(ring)
            own = halves[0] + halves[1]
            with pytest.raises(diffcoll.InvalidArgumentError, match="caller holds half 1"):
                dct.ring_start(h, own, 1)
            with pytest.raises(diffcoll.InvalidArgumentError, match="ring's halves"):
                dct.ring_start(h, own[:2], 0)
            with pytest.raises(diffcoll.InvalidArgumentError, match="ring's halves"):
                dct.ring_start(h, [own[0].double()] + own[1:], 0)
            assert len(ring.buffers) == len(own) and all(map(operator.is_, ring.buffers, own))
            buffers = [b.clone() for b in own] if copies is True else ring.buffers if copies else own
            seen, cur = [], ring.current
            for step in range(comm.size):
                k, v = buffers[2 * cur:2 * cur + 2]
                if step < comm.size - 1:
                    start(h, buffers, cur)
                seen.append((int(k[0, 0]), int(v[0])))  # "attention" on the current block
                if step < comm.size - 1:
                    cur = wait(h, buffers, cur)
                    assert cur == ring.current
                if copies is True:  # the next call gets fresh copies again
                    buffers = [b.clone() for b in buffers]
            return seen

    for rank, seen in enumerate(ranks(size, body)):
        blocks = [(rank - s) % size for s in range(size)]
        assert seen == [(b, -b) for b in blocks]


@pytest.mark.parametrize("size", [1, 2])
def test_ring_steps_take_views_and_refuse_what_is_not_the_ring(ranks, size):
    def body(comm):
        halves = [[torch.zeros(3, 4), torch.zeros(3)] for _ in range(2)]
        halves[0][0].fill_(comm.rank + 1)
        ring = diffcoll.Ring(comm, halves[0], halves[1])
        h = diffcoll.handle(ring)
        buffers = halves[0] + halves[1]
        # Other tensor objects on the ring's memory are its own halves (nothing
        # to copy); a tuple is a sequence like a list.
        dct.ring_start(h, [b[:] for b in buffers], 0)
        cur = dct.ring_wait(h, tuple(buffers), 0)
        received = halves[cur][0].clone()
        for wrong in (buffers[:3], buffers + buffers[:1], buffers[:2] + [buffers[2].double(), buffers[3]]):
            with pytest.raises(diffcoll.InvalidArgumentError, match="ring's halves"):
                dct.ring_start(h, wrong, cur)
            with pytest.raises(diffcoll.InvalidArgumentError, match="ring's halves"):
                dct.ring_wait(h, wrong, cur)
        with pytest.raises(diffcoll.InvalidArgumentError, match="is a Comm, not a Ring"):
            dct.ring_start(diffcoll.handle(comm), buffers, cur)
        with pytest.raises(diffcoll.InvalidArgumentError, match=f"caller holds half {1 - cur}"):
            dct.ring_wait(h, buffers, 1 - cur)
        ring.close()  # the library's own error, as from the Ring methods
        with pytest.raises(diffcoll.InvalidHandleError, match="diffcoll_ring_start: ring is NULL"):
            dct.ring_start(h, buffers, cur)
        with pytest.raises(diffcoll.InvalidHandleError, match="diffcoll_ring_wait: ring is NULL"):
            dct.ring_wait(h, buffers, cur)
        for kernel in (_kernels.ring_start, _kernels.ring_wait):  # the operators' exchange
            with pytest.raises(diffcoll.InvalidHandleError, match="the ring was closed"):
                kernel([b.clone() for b in buffers], h, cur)
        dct.release_handle(ring)
        with pytest.raises(diffcoll.InvalidHandleError, match="names no live diffcoll object"):
            dct.ring_start(h, buffers, cur)
        return cur, received

    for rank, (cur, received) in enumerate(ranks(size, body)):
        assert cur == 1
        torch.testing.assert_close(received, torch.full((3, 4), float((rank - 1) % size + 1)), rtol=0, atol=0)


# ---------------------------------------------------------------- fake kernels


FUNCTIONAL = {  # name: function of (handle, x) giving (kernel, fake kernel, arguments)
    "all_gather": lambda h, x: (_kernels.all_gather, _kernels._all_gather_out, (x, h, 1)),
    "reduce_scatter": lambda h, x: (_kernels.reduce_scatter, _kernels._reduce_scatter_out, (x, h, 1, 0, 1.0)),
    "all_to_all": lambda h, x: (_kernels.all_to_all, _kernels._all_to_all_out, (x, h, 1, 0)),
    "gather_slabs": lambda h, x: (_kernels.gather_slabs, _kernels._gather_slabs_out, (x, h, 1, 11, -1)),
    "group_norm": lambda h, x: (_kernels.group_norm, _kernels._group_norm_out, (x, None, None, h, 2, 1e-5)),
    "ulysses": lambda h, x: (_kernels.ulysses_all_to_all, _kernels._ulysses_out,
                             ([x, x[:, :2]], h, 1, 0, 0, [])),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_fake_kernels_make_the_real_shapes_without_data(ranks, name):
    def body(comm):
        h = diffcoll.handle(comm)
        start, rows = diffcoll.split_extent(11, comm.size, comm.rank)
        x = torch.randn(4, 6 if name != "gather_slabs" else rows, 3).transpose(0, 2)  # (3, rows, 4)
        kernel, fake, args = FUNCTIONAL[name](h, x)
        real = kernel(*args)
        meta_args = tuple([a.to("meta") for a in arg] if isinstance(arg, list) else
                          arg.to("meta") if isinstance(arg, torch.Tensor) else arg for arg in args)
        faked = fake(*meta_args)
        real, faked = (real, faked) if isinstance(real, list) else ([real], [faked])
        return [(r.shape, r.dtype, r.stride()) for r in real], [(f.shape, f.dtype, f.stride()) for f in faked]

    for real, faked in ranks(2, body):
        assert real == faked


def test_fake_kernels_refuse_what_the_library_would(ranks):
    def body(comm):
        h = diffcoll.handle(comm)
        x = torch.empty(3, 4, device="meta")
        with pytest.raises(diffcoll.InvalidArgumentError, match="not a multiple of the group size 2"):
            _kernels._reduce_scatter_out(x, h, 0, 0, 1.0)
        with pytest.raises(diffcoll.InvalidArgumentError, match="axis 2 is out of range"):
            _kernels._all_gather_out(x, h, 2)
        with pytest.raises(diffcoll.InvalidArgumentError, match="direction 5"):
            _kernels._ulysses_out([x], h, 0, 1, 5, [])
        with pytest.raises(diffcoll.InvalidArgumentError, match="1 inputs but 2 gathered"):
            _kernels._ulysses_out([x], h, 0, 1, 0, [3, 3])
        with pytest.raises(diffcoll.InvalidArgumentError, match="direction 'sideways' is not one of"):
            dct.ulysses_all_to_all([x], h, 0, 1, direction="sideways")
        with pytest.raises(diffcoll.InvalidHandleError, match="handle 999999"):
            dct.all_gather(torch.zeros(2), 999999)
        return True

    assert ranks(2, body) == [True, True]


# ---------------------------------------------------------------- custom operators (PyTorch >= 2.4)


@needs_custom_op
def test_operators_are_registered_with_what_they_write():
    for name, (_, _, writes) in _kernels.OPERATORS.items():
        schema = getattr(torch.ops.diffcoll, name).default._schema
        written = {a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write}
        assert written == set(writes), name
        assert name.endswith("_") == bool(writes) or name in ("send", "ring_start", "ring_wait"), name


@pytest.fixture
def world():
    comm = diffcoll.Comm.create("local://torch-ops-one", 0, 1)
    yield comm
    comm.close()


def one_rank_cases(comm):
    """(name, function of tensors, tensors) of every operator at one rank."""
    ws = diffcoll.FusedNormWorkspace(comm, 8, 16, "float32")
    plan = diffcoll.HaloPlan(comm, row_axis=0)
    policy = diffcoll.CfgPolicy.standard(4.0, order="parallel")
    keep = (ws, plan, policy)
    # Compiled code names objects by their handles (ints the compiler keeps as constants).
    h, ws, plan, policy = (diffcoll.handle(o) for o in (comm, ws, plan, policy))
    x = rand((6, 8), 1)
    return keep, [
        ("all_reduce_", lambda t: dct.all_reduce_(t[:, ::2], h) * 1, x),
        ("all_reduce", lambda t: dct.all_reduce(t.T, h, "max"), x),
        ("broadcast_", lambda t: dct.broadcast_(t.T, h) + 1, x),
        ("reduce_", lambda t: dct.reduce_(t, h, "avg") - 1, x),
        ("all_gather", lambda t: dct.all_gather(t.T, h, 1), x),
        ("reduce_scatter", lambda t: dct.reduce_scatter(t, h, 1), x),
        ("all_to_all", lambda t: dct.all_to_all(t[:, 1:], h, 0, 1), x),
        ("cfg_combine", lambda t: dct.cfg_combine([t, t.flip(0)], h, policy), x),
        ("halo_exchange_", lambda t: dct.halo_exchange_(t.clone(), plan), x),
        ("gather_slabs", lambda t: dct.gather_slabs(t[:, ::2], h, 0, 6), x),
        ("group_norm", lambda t: dct.group_norm(t.view(2, 4, 6), h, 2), x),
        ("ulysses_all_to_all", lambda t: dct.ulysses_all_to_all([t.view(1, 6, 4, 2)] * 2, h, 1, 2)[1], x),
        ("fused_add_rmsnorm", lambda t: dct.fused_add_rmsnorm(t, t.flip(1), t[0], ws)[0], x),
        ("fused_add_rmsnorm_", lambda t: dct.fused_add_rmsnorm_(t.clone(), t.clone(), None, ws)[1], x),
    ]


@needs_custom_op
def test_each_operator_compiles_whole_and_equals_eager(world):
    keep, cases = one_rank_cases(world)
    for name, fn, x in cases:
        eager = fn(x.clone())
        explanation = torch._dynamo.explain(fn)(x.clone())
        assert explanation.graph_break_count == 0, (name, explanation.break_reasons)
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")(x.clone())
        torch.testing.assert_close(compiled, eager, rtol=0, atol=0, msg=name)
        torch._dynamo.reset()
    for k in keep:
        k.close()


@needs_custom_op
def test_opcheck_of_the_registrations(world):
    h = diffcoll.handle(world)
    x = rand((4, 6), 2)
    ops = torch.ops.diffcoll
    for op, args in [
        (ops.all_reduce_.default, (x.clone(), h, 0, 1.0)),
        (ops.all_gather.default, (x, h, 1)),
        (ops.reduce_scatter.default, (x, h, 0, 0, 1.0)),
        (ops.all_to_all.default, (x, h, 0, 1)),
        (ops.ulysses_all_to_all.default, ([x.view(1, 4, 3, 2)], h, 1, 2, 0, [])),
    ]:
        torch.library.opcheck(op, args)
