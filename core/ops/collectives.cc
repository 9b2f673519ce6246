// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "collectives.h"

#include <gloo/common/error.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../error.h"
#include "agreement.h"
#include "run.h"

namespace diffcoll {
namespace ops {
namespace {

// ---- validation -------------------------------------------------------------

void check_tensor(const TensorView& t, const char* what, bool written) {
  t.validate(what);
  DIFFCOLL_REQUIRE(!written || !t.may_overlap(), Status::kInvalidArgument, what, " ",
                   t.describe(), " has overlapping elements (a zero or aliasing stride) "
                   "and cannot be written");
}

void check_rank(const Comm& comm, int rank, const char* what) {
  DIFFCOLL_REQUIRE(rank >= 0 && rank < comm.size(), Status::kInvalidArgument, what, " ", rank,
                   " is outside 0..", comm.size() - 1, " of ", comm.name());
}

void check_axis(const TensorView& t, int axis, const char* what) {
  DIFFCOLL_REQUIRE(axis >= 0 && axis < t.ndim, Status::kInvalidArgument, what, " ", axis,
                   " is outside 0..", t.ndim - 1, " for ", t.describe());
}

void check_reduction(Reduction red, DType) {
  DIFFCOLL_REQUIRE(red_op_valid(static_cast<int32_t>(red.op)), Status::kInvalidArgument,
                   "unknown reduction op ", static_cast<int32_t>(red.op));
}

// Whether a rank alone already holds the result of reducing `red` in place:
// the sum, product, minimum, maximum and average of one value are that value,
// so nothing is enqueued, on the host or the device (NCCL launches nothing
// then either). A pre-multiplied sum still scales the tensor.
bool alone_in_place(const Comm& comm, Reduction red) {
  return comm.size() == 1 && red.op != RedOp::kPreMulSum;
}

void check_same_place(const TensorView& a, const TensorView& b) {
  DIFFCOLL_REQUIRE(a.dtype == b.dtype, Status::kInvalidArgument, "input is ",
                   dtype_name(a.dtype), " but output is ", dtype_name(b.dtype));
  DIFFCOLL_REQUIRE(a.device.type == b.device.type &&
                       (!a.device.is_cuda() || a.device.id == b.device.id),
                   Status::kInvalidArgument, "input ", a.describe(), " and output ",
                   b.describe(), " are on different devices");
}

// `output` must have `input`'s shape with dimension `axis` scaled: multiplied
// by `grow` and divided by `shrink` at `shrink_axis`.
void check_shape(const TensorView& input, const TensorView& output, int grow_axis,
                 int64_t grow, int shrink_axis, int64_t shrink, const char* rule) {
  bool ok = input.ndim == output.ndim;
  for (int d = 0; ok && d < input.ndim; ++d) {
    int64_t expected = input.shape[d];
    if (d == shrink_axis) expected /= shrink;
    if (d == grow_axis) expected *= grow;
    ok = output.shape[d] == expected;
  }
  DIFFCOLL_REQUIRE(ok, Status::kInvalidArgument, "output ", output.describe(),
                   " does not fit input ", input.describe(), ": ", rule);
}

bool spans_overlap(const TensorView& a, const TensorView& b) {
  if (a.numel() == 0 || b.numel() == 0) return false;
  auto lo = [](const TensorView& t) { return static_cast<const char*>(t.span_begin()); };
  auto hi = [](const TensorView& t) {
    int64_t reach = 0;
    for (int d = 0; d < t.ndim; ++d) reach += std::llabs(t.strides[d]) * (t.shape[d] - 1);
    return static_cast<const char*>(t.span_begin()) + (reach + 1) * t.element_size();
  };
  return lo(a) < hi(b) && lo(b) < hi(a);
}

// ---- planning ---------------------------------------------------------------

// `t` seen as `parts` equal blocks along `axis`, the block index outermost:
// row-major order of this view is block 0's elements, then block 1's, ...
TensorView blocks_first(const TensorView& t, int axis, int parts) {
  return t.split_axis(axis, parts).move_axis(axis, 0);
}

// Carves consecutive regions out of one staging allocation.
class Staging {
 public:
  Staging(Side& side, size_t bytes, void* stream)
      : base_(bytes ? static_cast<char*>(side.staging(bytes, stream)) : nullptr) {}
  void* take(size_t bytes) {
    void* p = base_ + used_;
    used_ += (bytes + 255) & ~size_t{255};  // keep regions 256-byte aligned
    return p;
  }
  static size_t room(size_t bytes) { return (bytes + 255) & ~size_t{255}; }

 private:
  char* base_;
  size_t used_ = 0;
};

void pack(Comm& comm, Side& side, const TensorView& view, void* dense, void* stream) {
  side.pack(view, dense, stream);
  comm.stats.bytes_packed += view.nbytes();
}

void unpack(Comm& comm, Side& side, const void* dense, const TensorView& view, void* stream) {
  side.unpack(dense, view, stream);
  comm.stats.bytes_unpacked += view.nbytes();
}

// One message per rank: the input quantised once, all-gathered as bytes,
// then every rank's block (the own one too, so that all ranks agree)
// dequantised into its place in the output by one batched unpack.
void all_gather_fp8(Comm& comm, const TensorView& in, const TensorView& out, int axis,
                    const Fp8Wire& fp8, void* stream) {
  DIFFCOLL_REQUIRE(fp8.block >= 1, Status::kInvalidArgument, "all_gather: FP8 scale_block ",
                   fp8.block, " must be >= 1");
  DIFFCOLL_REQUIRE(fp8_wire_supports(in.dtype), Status::kInvalidArgument, "all_gather: ",
                   dtype_name(in.dtype),
                   " cannot travel as FP8 (float16, bfloat16 and float32 can)");
  run(comm, "all_gather", [&] {
    verify_agreement(comm, signature("all_gather_fp8", in, axis,
                                     static_cast<int64_t>(fp8.format), fp8.block));
    Side& side = comm.side_for(in.device);
    const int p = comm.size();
    const TensorView wire_in = fp8_wire_view(in, axis, -1);
    const size_t message = fp8_layout(wire_in, fp8.block).bytes;
    Staging staging(side, Staging::room(message) + message * p, stream);
    void* send = staging.take(message);
    char* recv = static_cast<char*>(staging.take(message * p));
    const Fp8Piece mine{wire_in, send};
    side.pack_fp8(&mine, 1, fp8, stream);
    comm.stats.bytes_packed += in.nbytes();
    side.backend().all_gather(send, recv, message, stream);
    std::vector<Fp8Piece> blocks;
    const int64_t rows = in.shape[axis];
    for (int r = 0; r < p; ++r)
      blocks.push_back({fp8_wire_view(out.slab(axis, r * rows, rows), axis, -1), recv + r * message});
    side.unpack_fp8(blocks.data(), p, fp8, stream);
    comm.stats.bytes_unpacked += out.nbytes();
  });
}

// ---- execution --------------------------------------------------------------


void exchange_p2p(Comm& comm, const std::vector<PendingP2P>& ops);

}  // namespace

void all_reduce(Comm& comm, const TensorView& t, Reduction red, void* stream) {
  check_tensor(t, "all_reduce tensor", true);
  check_reduction(red, t.dtype);
  run(comm, "all_reduce", [&] {
    verify_agreement(comm, signature("all_reduce", t, static_cast<int>(red.op)));
    Side& side = comm.side_for(t.device);
    if (alone_in_place(comm, red)) return;
    if (t.is_dense()) {  // elementwise: any order works if every rank shares it
      side.backend().all_reduce(t.span_begin(), t.numel(), t.dtype, red, stream);
      return;
    }
    Staging staging(side, t.nbytes(), stream);
    void* dense = staging.take(t.nbytes());
    pack(comm, side, t, dense, stream);
    side.backend().all_reduce(dense, t.numel(), t.dtype, red, stream);
    unpack(comm, side, dense, t, stream);
  });
}

void broadcast(Comm& comm, const TensorView& t, int root, void* stream) {
  check_tensor(t, "broadcast tensor", comm.rank() != root);
  check_rank(comm, root, "broadcast root");
  run(comm, "broadcast", [&] {
    verify_agreement(comm, signature("broadcast", t, root));
    Side& side = comm.side_for(t.device);
    if (comm.size() == 1) return;  // the root's tensor is the result
    if (t.is_dense()) {
      side.backend().broadcast(t.span_begin(), t.nbytes(), root, stream);
      return;
    }
    Staging staging(side, t.nbytes(), stream);
    void* dense = staging.take(t.nbytes());
    if (comm.rank() == root) pack(comm, side, t, dense, stream);
    side.backend().broadcast(dense, t.nbytes(), root, stream);
    if (comm.rank() != root) unpack(comm, side, dense, t, stream);
  });
}

void reduce(Comm& comm, const TensorView& t, Reduction red, int root, void* stream) {
  check_tensor(t, "reduce tensor", comm.rank() == root);
  check_rank(comm, root, "reduce root");
  check_reduction(red, t.dtype);
  run(comm, "reduce", [&] {
    verify_agreement(comm, signature("reduce", t, static_cast<int>(red.op), root));
    Side& side = comm.side_for(t.device);
    if (alone_in_place(comm, red)) return;
    if (t.is_dense()) {
      side.backend().reduce(t.span_begin(), t.span_begin(), t.numel(), t.dtype, red, root,
                            stream);
      return;
    }
    Staging staging(side, t.nbytes(), stream);
    void* dense = staging.take(t.nbytes());
    pack(comm, side, t, dense, stream);
    side.backend().reduce(dense, dense, t.numel(), t.dtype, red, root, stream);
    if (comm.rank() == root) unpack(comm, side, dense, t, stream);
  });
}

void all_gather(Comm& comm, const TensorView& in, const TensorView& out, int axis,
                void* stream, const Fp8Wire* fp8) {
  check_tensor(in, "all_gather input", false);
  check_tensor(out, "all_gather output", true);
  check_same_place(in, out);
  check_axis(in, axis, "all_gather axis");
  const int p = comm.size();
  check_shape(in, out, axis, p, -1, 1, "output.shape[axis] must be input.shape[axis] * group size");
  if (fp8) {
    all_gather_fp8(comm, in, out, axis, *fp8, stream);
    return;
  }
  run(comm, "all_gather", [&] {
    verify_agreement(comm, signature("all_gather", in, axis));
    Side& side = comm.side_for(in.device);
    const TensorView blocks = blocks_first(out, axis, p);
    const bool pack_in = !in.is_contiguous() || spans_overlap(in, out);
    const bool stage_out = !blocks.is_contiguous();
    Staging staging(side, (pack_in ? Staging::room(in.nbytes()) : 0) +
                              (stage_out ? out.nbytes() : 0), stream);
    void* src = in.data;
    if (pack_in) pack(comm, side, in, src = staging.take(in.nbytes()), stream);
    void* dst = stage_out ? staging.take(out.nbytes()) : out.data;
    side.backend().all_gather(src, dst, in.nbytes(), stream);
    if (stage_out) unpack(comm, side, dst, blocks, stream);
  });
}

void reduce_scatter(Comm& comm, const TensorView& in, const TensorView& out, int axis,
                    Reduction red, void* stream) {
  check_tensor(in, "reduce_scatter input", false);
  check_tensor(out, "reduce_scatter output", true);
  check_same_place(in, out);
  check_axis(in, axis, "reduce_scatter axis");
  check_reduction(red, in.dtype);
  const int p = comm.size();
  DIFFCOLL_REQUIRE(in.shape[axis] % p == 0, Status::kInvalidArgument, "reduce_scatter input ",
                   in.describe(), ": dimension ", axis, " is not divisible by the group size ", p);
  check_shape(in, out, -1, 1, axis, p, "output.shape[axis] must be input.shape[axis] / group size");
  run(comm, "reduce_scatter", [&] {
    verify_agreement(comm, signature("reduce_scatter", in, axis, static_cast<int>(red.op)));
    Side& side = comm.side_for(in.device);
    const TensorView blocks = blocks_first(in, axis, p);
    const bool pack_in = !blocks.is_contiguous();
    const bool stage_out = !out.is_contiguous();
    Staging staging(side, (pack_in ? Staging::room(in.nbytes()) : 0) +
                              (stage_out ? out.nbytes() : 0), stream);
    void* src = in.data;
    if (pack_in) pack(comm, side, blocks, src = staging.take(in.nbytes()), stream);
    void* dst = stage_out ? staging.take(out.nbytes()) : out.data;
    side.backend().reduce_scatter(src, dst, out.numel(), in.dtype, red, stream);
    if (stage_out) unpack(comm, side, dst, out, stream);
  });
}

void all_to_all(Comm& comm, const TensorView& in, const TensorView& out, int scatter_axis,
                int gather_axis, void* stream) {
  check_tensor(in, "all_to_all input", false);
  check_tensor(out, "all_to_all output", true);
  check_same_place(in, out);
  check_axis(in, scatter_axis, "all_to_all scatter_axis");
  check_axis(in, gather_axis, "all_to_all gather_axis");
  const int p = comm.size();
  DIFFCOLL_REQUIRE(in.shape[scatter_axis] % p == 0, Status::kInvalidArgument,
                   "all_to_all input ", in.describe(), ": dimension ", scatter_axis,
                   " is not divisible by the group size ", p);
  check_shape(in, out, gather_axis, p, scatter_axis, p,
              "output is the input with scatter_axis divided and gather_axis multiplied by the group size");
  run(comm, "all_to_all", [&] {
    verify_agreement(comm, signature("all_to_all", in, scatter_axis, gather_axis));
    Side& side = comm.side_for(in.device);
    const TensorView send_blocks = blocks_first(in, scatter_axis, p);
    const TensorView recv_blocks = blocks_first(out, gather_axis, p);
    const bool pack_in = !send_blocks.is_contiguous() || spans_overlap(in, out);
    const bool stage_out = !recv_blocks.is_contiguous();
    Staging staging(side, (pack_in ? Staging::room(in.nbytes()) : 0) +
                              (stage_out ? out.nbytes() : 0), stream);
    void* src = in.data;
    if (pack_in) pack(comm, side, send_blocks, src = staging.take(in.nbytes()), stream);
    void* dst = stage_out ? staging.take(out.nbytes()) : out.data;
    side.backend().all_to_all(src, dst, in.nbytes() / p, stream);
    if (stage_out) unpack(comm, side, dst, recv_blocks, stream);
  });
}

void gather(Comm& comm, const TensorView& in, const TensorView* out, int axis, int root,
            void* stream) {
  check_tensor(in, "gather input", false);
  check_axis(in, axis, "gather axis");
  check_rank(comm, root, "gather root");
  const int p = comm.size();
  const bool is_root = comm.rank() == root;
  if (is_root) {
    DIFFCOLL_REQUIRE(out != nullptr, Status::kInvalidArgument, "gather: the root needs an output");
    check_tensor(*out, "gather output", true);
    check_same_place(in, *out);
    check_shape(in, *out, axis, p, -1, 1, "output.shape[axis] must be input.shape[axis] * group size");
  }
  run(comm, "gather", [&] {
    verify_agreement(comm, signature("gather", in, axis, root));
    Side& side = comm.side_for(in.device);
    const bool pack_in = !in.is_contiguous() || (is_root && spans_overlap(in, *out));
    TensorView blocks;
    bool stage_out = false;
    if (is_root) {
      blocks = blocks_first(*out, axis, p);
      stage_out = !blocks.is_contiguous();
    }
    Staging staging(side, (pack_in ? Staging::room(in.nbytes()) : 0) +
                              (stage_out ? in.nbytes() * p : 0), stream);
    void* src = in.data;
    if (pack_in) pack(comm, side, in, src = staging.take(in.nbytes()), stream);
    void* dst = is_root ? (stage_out ? staging.take(in.nbytes() * p) : out->data) : nullptr;
    side.backend().gather(src, dst, in.nbytes(), root, stream);
    if (stage_out) unpack(comm, side, dst, blocks, stream);
  });
}

void scatter(Comm& comm, const TensorView* in, const TensorView& out, int axis, int root,
             void* stream) {
  check_tensor(out, "scatter output", true);
  check_axis(out, axis, "scatter axis");
  check_rank(comm, root, "scatter root");
  const int p = comm.size();
  const bool is_root = comm.rank() == root;
  if (is_root) {
    DIFFCOLL_REQUIRE(in != nullptr, Status::kInvalidArgument, "scatter: the root needs an input");
    check_tensor(*in, "scatter input", false);
    check_same_place(*in, out);
    check_shape(out, *in, axis, p, -1, 1, "input.shape[axis] must be output.shape[axis] * group size");
  }
  run(comm, "scatter", [&] {
    verify_agreement(comm, signature("scatter", out, axis, root));
    Side& side = comm.side_for(out.device);
    TensorView blocks;
    bool pack_in = false;
    if (is_root) {
      blocks = blocks_first(*in, axis, p);
      pack_in = !blocks.is_contiguous() || spans_overlap(*in, out);
    }
    const bool stage_out = !out.is_contiguous();
    Staging staging(side, (pack_in ? Staging::room(out.nbytes() * p) : 0) +
                              (stage_out ? out.nbytes() : 0), stream);
    void* src = is_root ? in->data : nullptr;
    if (pack_in) pack(comm, side, blocks, src = staging.take(out.nbytes() * p), stream);
    void* dst = stage_out ? staging.take(out.nbytes()) : out.data;
    side.backend().scatter(src, dst, out.nbytes(), root, stream);
    if (stage_out) unpack(comm, side, dst, out, stream);
  });
}

void send(Comm& comm, const TensorView& t, int peer, void* stream) {
  check_tensor(t, "send tensor", false);
  check_rank(comm, peer, "send peer");
  if (comm.in_group) {
    comm.pending.push_back({true, t, peer, stream});
    return;
  }
  DIFFCOLL_REQUIRE(peer != comm.rank(), Status::kInvalidArgument,
                   "send to oneself needs group_start/group_end around the send and the recv");
  run(comm, "send", [&] { exchange_p2p(comm, {{true, t, peer, stream}}); });
}

void recv(Comm& comm, const TensorView& t, int peer, void* stream) {
  check_tensor(t, "recv tensor", true);
  check_rank(comm, peer, "recv peer");
  if (comm.in_group) {
    comm.pending.push_back({false, t, peer, stream});
    return;
  }
  DIFFCOLL_REQUIRE(peer != comm.rank(), Status::kInvalidArgument,
                   "recv from oneself needs group_start/group_end around the send and the recv");
  run(comm, "recv", [&] { exchange_p2p(comm, {{false, t, peer, stream}}); });
}

void group_start(Comm& comm) {
  comm.ensure_usable("group_start");
  DIFFCOLL_REQUIRE(!comm.in_group, Status::kInvalidArgument, "group_start on ", comm.name(),
                   ": a group is already open (groups do not nest)");
  comm.in_group = true;
}

void group_end(Comm& comm) {
  DIFFCOLL_REQUIRE(comm.in_group, Status::kInvalidArgument, "group_end on ", comm.name(),
                   " without group_start");
  std::vector<PendingP2P> recorded = std::move(comm.pending);
  comm.pending.clear();
  comm.in_group = false;
  run(comm, "group_end", [&] { exchange_p2p(comm, recorded); });
}

void barrier(Comm& comm, void* stream) {
  run(comm, "barrier", [&] {
    verify_agreement(comm, signature("barrier", TensorView{}));
    if (stream && comm.device_side()) comm.device_side()->backend().barrier(stream);
    else comm.host_backend().barrier(stream);
  });
}

namespace {

// Sends and receives in row-major element order: contiguous tensors travel
// from their own memory, others through staging. Messages to oneself are
// matched in order with receives from oneself and copied.
void exchange_p2p(Comm& comm, const std::vector<PendingP2P>& ops) {
  if (ops.empty()) return;
  Side& side = comm.side_for(ops[0].view.device);
  size_t room = 0;
  for (const PendingP2P& op : ops) {
    DIFFCOLL_REQUIRE(op.view.device.type == ops[0].view.device.type, Status::kInvalidArgument,
                     "a p2p group mixes host and CUDA tensors");
    if (!op.view.is_contiguous()) room += Staging::room(op.view.nbytes());
  }
  Staging staging(side, room, ops[0].stream);
  std::vector<P2POp> transfers;
  std::vector<void*> buffers;
  std::vector<size_t> self_sends, self_recvs;
  for (size_t i = 0; i < ops.size(); ++i) {
    const PendingP2P& op = ops[i];
    void* buffer = op.view.is_contiguous() ? op.view.data : staging.take(op.view.nbytes());
    if (op.is_send && buffer != op.view.data) pack(comm, side, op.view, buffer, op.stream);
    buffers.push_back(buffer);
    if (op.peer == comm.rank()) (op.is_send ? self_sends : self_recvs).push_back(i);
    else transfers.push_back({op.is_send, op.peer, buffer, op.view.nbytes()});
  }
  DIFFCOLL_REQUIRE(self_sends.size() == self_recvs.size(), Status::kInvalidArgument,
                   "the group has ", self_sends.size(), " sends to oneself but ",
                   self_recvs.size(), " receives from oneself");
  for (size_t k = 0; k < self_sends.size(); ++k) {
    const TensorView& from = ops[self_sends[k]].view;
    const TensorView& to = ops[self_recvs[k]].view;
    DIFFCOLL_REQUIRE(from.nbytes() == to.nbytes(), Status::kInvalidArgument,
                     "a send to oneself of ", from.nbytes(), " bytes meets a receive of ",
                     to.nbytes());
    side.copy(buffers[self_recvs[k]], buffers[self_sends[k]], from.nbytes(), ops[0].stream);
  }
  side.backend().exchange(transfers, ops[0].stream);
  for (size_t i = 0; i < ops.size(); ++i)
    if (!ops[i].is_send && buffers[i] != ops[i].view.data)
      unpack(comm, side, buffers[i], ops[i].view, ops[i].stream);
}

}  // namespace
}  // namespace ops
}  // namespace diffcoll
