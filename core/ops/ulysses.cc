// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// How a Ulysses all-to-all is planned. Write X for the axis that is scattered
// (heads going to seq -> head, sequence going back) and Y for the axis that is
// gathered. Every tensor t has global extents EX_t (input.shape[X]) and EY_t
// (output.shape[Y]); rank r holds part r of each (split_extent). Rank r sends
// to rank j the slab input.slab(X, part j of EX) and receives from rank i the
// slab output.slab(Y, part i of EY): both are [.., part i of EY at Y, ..,
// part j of EX at X, ..] for the pair (i -> j), so elements travel in the
// row-major order of that shape and the two ends agree on it whatever their
// strides. One tensor split evenly is the strided all-to-all (collectives.cc)
// with X scattered and Y gathered. Otherwise every (tensor, peer) slab is one
// message of one grouped send/recv, sent from / received into the caller's
// memory when the slab is contiguous there (e.g. [B,H,S,D] split along H, or
// [1,S,H,D] gathered along S), else packed into / unpacked from one staging
// allocation by one batched pack and one batched unpack (the layout change).
// Every rank derives every message size from the global extents, so all
// ranks agree on the transfers without exchanging sizes.
//
// Grouped-query attention changes only which parts travel for a k/v tensor
// (gqa_heads.h): forward, rank r sends rank j the k/v heads j holds (ranges
// of neighbouring ranks may overlap: a head goes to each rank that needs
// it); backward, rank i sends only the k/v heads it owns, so each head comes
// back once. With an FP8 wire every message is a wire view (tokens = the
// sequence axis, inner = the last other axis) packed and unpacked through
// fp8_wire.h's format; the slab for oneself is still copied exactly.
#include "ulysses.h"

#include <string>
#include <vector>

#include "../error.h"
#include "agreement.h"
#include "collectives.h"
#include "gqa_heads.h"
#include "run.h"
#include "slabs.h"

namespace diffcoll {
namespace ops {

bool ulysses_direction_valid(int32_t value) { return value == 0 || value == 1; }

namespace {

struct Part {
  int64_t start, length;
};

Part part(int64_t extent, int parts, int index) {
  Part p;
  split_extent(extent, parts, index, &p.start, &p.length);
  return p;
}

int normalize_axis(int axis, const TensorView& t, const char* what, int index) {
  const int a = axis < 0 ? axis + t.ndim : axis;
  DIFFCOLL_REQUIRE(a >= 0 && a < t.ndim, Status::kInvalidArgument, "ulysses_all_to_all: ", what,
                   " ", axis, " is outside -", t.ndim, "..", t.ndim - 1, " for tensor ", index,
                   " ", t.describe());
  return a;
}

// One tensor of the call, with its axes resolved.
struct Operand {
  TensorView in, out;
  int seq, head;
  int x, y;              // scattered and gathered axes
  int64_t ex, ey;        // their global extents
  bool to_head;          // SEQ_TO_HEAD
  int64_t kv_group = 0;  // a k/v tensor of a GQA call: the query head count
  int64_t rest = 1;      // elements per (x, y) index pair
};

Part kv_held(const Operand& o, int64_t kv_heads, int p, int r) {
  Part part;
  kv_heads_held(o.kv_group, kv_heads, p, r, &part.start, &part.length);
  return part;
}

// The part of X that rank r gets: the input slab sent to r, and r's extent
// of X in its output.
Part scattered(const Operand& o, int p, int r) {
  return o.kv_group && o.to_head ? kv_held(o, o.ex, p, r) : part(o.ex, p, r);
}

// Where rank r's contribution lands along Y in the output.
Part gathered(const Operand& o, int p, int r) {
  if (!o.kv_group || o.to_head) return part(o.ey, p, r);
  Part owned;
  kv_heads_owned(o.kv_group, o.ey, p, r, &owned.start, &owned.length);
  return owned;
}

// Rank r's extent of Y in its input.
Part input_y(const Operand& o, int p, int r) {
  return o.kv_group && !o.to_head ? kv_held(o, o.ey, p, r) : part(o.ey, p, r);
}

Operand check_operand(const Comm& comm, const TensorView& in, const TensorView& out, int index,
                      int seq_axis, int head_axis, UlyssesDirection direction,
                      const UlyssesOptions& options) {
  const std::string n = std::to_string(index);
  in.validate(("ulysses_all_to_all inputs[" + n + "]").c_str());
  out.validate(("ulysses_all_to_all outputs[" + n + "]").c_str());
  DIFFCOLL_REQUIRE(!out.may_overlap(), Status::kInvalidArgument, "ulysses_all_to_all outputs[",
                   index, "] ", out.describe(),
                   " has overlapping elements (a zero or aliasing stride) and cannot be written");
  DIFFCOLL_REQUIRE(in.ndim == out.ndim, Status::kInvalidArgument, "ulysses_all_to_all: inputs[",
                   index, "] ", in.describe(), " and outputs[", index, "] ", out.describe(),
                   " differ in rank");
  const int s = normalize_axis(seq_axis, in, "seq_axis", index);
  const int h = normalize_axis(head_axis, in, "head_axis", index);
  DIFFCOLL_REQUIRE(s != h, Status::kInvalidArgument,
                   "ulysses_all_to_all: seq_axis and head_axis are both dimension ", s);
  Operand o;
  o.in = in;
  o.out = out;
  o.seq = s;
  o.head = h;
  o.to_head = direction == UlyssesDirection::kSeqToHead;
  o.x = o.to_head ? h : s;
  o.y = o.to_head ? s : h;
  o.ex = in.shape[o.x];
  o.ey = out.shape[o.y];
  const int64_t heads = o.to_head ? o.ex : o.ey;
  if (options.query_heads > 0 && heads != options.query_heads) {
    DIFFCOLL_REQUIRE(heads >= 1 && options.query_heads % heads == 0, Status::kInvalidArgument,
                     "ulysses_all_to_all: tensor ", index, " has ", heads,
                     " heads, which is neither the ", options.query_heads,
                     " query heads (options.query_heads) nor a k/v head count dividing them");
    o.kv_group = options.query_heads;
  }
  const int p = comm.size(), me = comm.rank();
  const char* x_name = o.to_head ? "heads" : "sequence";
  const char* y_name = o.to_head ? "sequence" : "heads";
  for (int d = 0; d < in.ndim; ++d) {
    if (d == o.x || d == o.y) continue;
    DIFFCOLL_REQUIRE(in.shape[d] == out.shape[d], Status::kInvalidArgument,
                     "ulysses_all_to_all: inputs[", index, "] ", in.describe(), " and outputs[",
                     index, "] ", out.describe(), " differ in dimension ", d,
                     ", which is neither the sequence nor the heads");
    o.rest *= in.shape[d];
  }
  // The rule each extent follows, for the messages below.
  auto rule = [&](int64_t extent, bool kv) {
    return kv ? "diffcoll_ulysses_kv_heads(" + std::to_string(o.kv_group) + ", " +
                    std::to_string(extent) + ", " + std::to_string(p) + ", r): the k/v heads " +
                    "rank r's query heads attend to"
              : "diffcoll_split_extent(" + std::to_string(extent) + ", " + std::to_string(p) +
                    ", r)";
  };
  const Part mine_x = scattered(o, p, me), mine_y = input_y(o, p, me);
  DIFFCOLL_REQUIRE(out.shape[o.x] == mine_x.length, Status::kInvalidArgument,
                   "ulysses_all_to_all: outputs[", index, "] ", out.describe(), " must hold ",
                   mine_x.length, " ", x_name, " along dimension ", o.x, " on rank ", me, " of ",
                   p, ": the input has ", o.ex, " and rank r gets ",
                   rule(o.ex, o.kv_group && o.to_head));
  DIFFCOLL_REQUIRE(in.shape[o.y] == mine_y.length, Status::kInvalidArgument,
                   "ulysses_all_to_all: inputs[", index, "] ", in.describe(), " must hold ",
                   mine_y.length, " ", y_name, " along dimension ", o.y, " on rank ", me, " of ",
                   p, ": the output has ", o.ey, " and rank r holds ",
                   rule(o.ey, o.kv_group && !o.to_head));
  DIFFCOLL_REQUIRE(!options.use_fp8 || fp8_wire_supports(in.dtype), Status::kInvalidArgument,
                   "ulysses_all_to_all: tensor ", index, " is ", dtype_name(in.dtype),
                   ", which cannot travel as FP8 (float16, bfloat16 and float32 can)");
  return o;
}

void check_call(const std::vector<Operand>& ops) {
  const TensorView& first = ops[0].in;
  for (size_t t = 0; t < ops.size(); ++t) {
    for (const TensorView* v : {&ops[t].in, &ops[t].out}) {
      DIFFCOLL_REQUIRE(v->dtype == first.dtype, Status::kInvalidArgument,
                       "ulysses_all_to_all: every tensor of one call has one dtype; tensor ", t,
                       " is ", dtype_name(v->dtype), ", tensor 0 is ", dtype_name(first.dtype));
      DIFFCOLL_REQUIRE(v->device.type == first.device.type &&
                           (!first.device.is_cuda() || v->device.id == first.device.id),
                       Status::kInvalidArgument,
                       "ulysses_all_to_all: every tensor of one call is on one device; ",
                       v->describe(), " is not where ", first.describe(), " is");
    }
    // Inputs are read while outputs are written: no output may share a byte
    // with any input or another output.
    for (size_t u = 0; u < ops.size(); ++u) {
      DIFFCOLL_REQUIRE(!detail::spans_overlap(ops[t].out, ops[u].in), Status::kInvalidArgument,
                       "ulysses_all_to_all: outputs[", t, "] overlaps inputs[", u,
                       "] (the all-to-all is not in place)");
      DIFFCOLL_REQUIRE(u == t || !detail::spans_overlap(ops[t].out, ops[u].out),
                       Status::kInvalidArgument, "ulysses_all_to_all: outputs[", t,
                       "] overlaps outputs[", u, "]");
    }
  }
}

// What every rank must agree on: the global shape of tensor 0, the count, the
// axes and the direction (local extents legitimately differ between ranks).
CallSignature call_signature(const Operand& o, int count, int seq_axis, int head_axis,
                             UlyssesDirection direction) {
  TensorView global = o.in;
  global.shape[o.y] = o.ey;
  for (int d = 0; d < global.ndim; ++d) global.strides[d] = 0;
  return signature("ulysses_all_to_all", global, count, seq_axis, head_axis,
                   static_cast<int64_t>(direction));
}

// ... and the options.
CallSignature options_signature(const UlyssesOptions& options) {
  return signature("ulysses_options", TensorView{}, options.query_heads, options.use_fp8,
                   options.use_fp8 ? static_cast<int64_t>(options.fp8.format) : 0,
                   options.use_fp8 ? options.fp8.block : 0);
}

}  // namespace

void ulysses_all_to_all(Comm& comm, const TensorView* inputs, const TensorView* outputs,
                        int count, int seq_axis, int head_axis, UlyssesDirection direction,
                        const UlyssesOptions& options, void* stream) {
  DIFFCOLL_REQUIRE(count >= 1, Status::kInvalidArgument, "ulysses_all_to_all: count ", count,
                   " must be >= 1");
  DIFFCOLL_REQUIRE(inputs != nullptr && outputs != nullptr, Status::kInvalidArgument,
                   "ulysses_all_to_all: inputs and outputs must not be NULL");
  DIFFCOLL_REQUIRE(ulysses_direction_valid(static_cast<int32_t>(direction)),
                   Status::kInvalidArgument, "ulysses_all_to_all: direction ",
                   static_cast<int32_t>(direction), " is not a diffcoll_ulysses_direction_t");
  DIFFCOLL_REQUIRE(options.query_heads >= 0, Status::kInvalidArgument,
                   "ulysses_all_to_all: options.query_heads ", options.query_heads,
                   " must be >= 0 (0: no grouped-query attention)");
  DIFFCOLL_REQUIRE(!options.use_fp8 || options.fp8.block >= 1, Status::kInvalidArgument,
                   "ulysses_all_to_all: options.scale_block ", options.fp8.block,
                   " must be >= 1 (tokens per FP8 scale)");
  const int p = comm.size(), me = comm.rank();
  std::vector<Operand> ops;
  ops.reserve(count);
  for (int t = 0; t < count; ++t)
    ops.push_back(check_operand(comm, inputs[t], outputs[t], t, seq_axis, head_axis, direction,
                                options));
  check_call(ops);

  // One tensor with equal splits is exactly the strided all-to-all: block j
  // of the input along X goes to rank j, block i from rank i lands at block i
  // along Y (one pack or none, one backend all-to-all, one unpack or none).
  if (count == 1 && p > 1 && ops[0].ex % p == 0 && ops[0].ey % p == 0 && !ops[0].kv_group &&
      !options.use_fp8) {
    all_to_all(comm, ops[0].in, ops[0].out, ops[0].x, ops[0].y, stream);
    return;
  }

  run(comm, "ulysses_all_to_all", [&] {
    verify_agreement(comm, call_signature(ops[0], count, seq_axis, head_axis, direction));
    verify_agreement(comm, options_signature(options));
    Side& side = comm.side_for(ops[0].in.device);
    // One message per (tensor, peer), in tensor order for each peer on both
    // ends; a slab that is contiguous in the caller's memory travels from /
    // into it, the others through one staging allocation (one batched pack,
    // one batched unpack). The block for oneself is a local copy.
    detail::Mover mover(comm, side, stream, options.use_fp8 ? &options.fp8 : nullptr);
    const int self = mover.add_phase();
    struct Message {
      bool is_send;
      int peer;
      size_t wire;
    };
    std::vector<Message> messages;
    for (const Operand& o : ops) {
      // The part of the input's Y extent this rank sends: all of it, but
      // only the owned k/v heads when a GQA tensor goes back.
      const Part held = input_y(o, p, me), sent = gathered(o, p, me);
      const TensorView in = o.in.slab(o.y, sent.start - held.start, sent.length);
      auto wire = [&](const TensorView& v) {
        return options.use_fp8 ? fp8_wire_view(v, o.seq, o.head) : v;
      };
      for (int r = 0; r < p; ++r) {
        const Part px = scattered(o, p, r), py = gathered(o, p, r);
        const TensorView to_r = in.slab(o.x, px.start, px.length);
        const TensorView from_r = o.out.slab(o.y, py.start, py.length);
        if (r == me) {
          mover.add_copy(self, to_r, from_r);
          continue;
        }
        // Both ends derive every size from the global extents, so a message
        // that is empty here is empty there too.
        if (from_r.numel() > 0) messages.push_back({false, r, mover.add_recv(wire(from_r))});
        if (to_r.numel() > 0) messages.push_back({true, r, mover.add_send(wire(to_r))});
      }
    }
    mover.allocate();
    mover.pack_sends();
    mover.run_phase(self);
    std::vector<P2POp> transfers;
    transfers.reserve(messages.size());
    for (const Message& m : messages)
      transfers.push_back({m.is_send, m.peer, mover.buffer(m.wire), mover.bytes(m.wire)});
    side.backend().exchange(transfers, stream);
    mover.unpack_recvs();
  });
}

}  // namespace ops
}  // namespace diffcoll
