// How a Ulysses all-to-all is planned. Write X for the axis that is scattered
// (heads going to seq -> head, sequence going back) and Y for the axis that is
// gathered. Every tensor t has global extents EX_t (input.shape[X]) and EY_t
// (output.shape[Y]); rank r holds part r of each (split_extent). Rank r sends
// to rank j the slab input.slab(X, part j of EX) and receives from rank i the
// slab output.slab(Y, part i of EY): both are [.., part i of EY at Y, ..,
// part j of EX at X, ..] for the pair (i -> j), so elements travel in the
// row-major order of that shape and the two ends agree on it whatever their
// strides. The block for one peer holds the slabs of tensors 0..T-1 one after
// the other; blocks lie back to back in one send and one receive region of
// staging. Every rank derives every block size from the global extents, so
// all ranks agree on the transfers without exchanging sizes.
#include "ulysses.h"

#include <string>
#include <vector>

#include "../error.h"
#include "agreement.h"
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
  int x, y;          // scattered and gathered axes
  int64_t ex, ey;    // their global extents
  int64_t rest = 1;  // elements per (x, y) index pair
};

Operand check_operand(const Comm& comm, const TensorView& in, const TensorView& out, int index,
                      int seq_axis, int head_axis, UlyssesDirection direction) {
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
  const bool to_head = direction == UlyssesDirection::kSeqToHead;
  o.x = to_head ? h : s;
  o.y = to_head ? s : h;
  o.ex = in.shape[o.x];
  o.ey = out.shape[o.y];
  const int p = comm.size(), me = comm.rank();
  const char* x_name = to_head ? "heads" : "sequence";
  const char* y_name = to_head ? "sequence" : "heads";
  for (int d = 0; d < in.ndim; ++d) {
    if (d == o.x || d == o.y) continue;
    DIFFCOLL_REQUIRE(in.shape[d] == out.shape[d], Status::kInvalidArgument,
                     "ulysses_all_to_all: inputs[", index, "] ", in.describe(), " and outputs[",
                     index, "] ", out.describe(), " differ in dimension ", d,
                     ", which is neither the sequence nor the heads");
    o.rest *= in.shape[d];
  }
  const Part mine_x = part(o.ex, p, me), mine_y = part(o.ey, p, me);
  DIFFCOLL_REQUIRE(out.shape[o.x] == mine_x.length, Status::kInvalidArgument,
                   "ulysses_all_to_all: outputs[", index, "] ", out.describe(), " must hold ",
                   mine_x.length, " ", x_name, " along dimension ", o.x, " on rank ", me, " of ",
                   p, ": the input has ", o.ex, " and rank r gets diffcoll_split_extent(", o.ex,
                   ", ", p, ", r)");
  DIFFCOLL_REQUIRE(in.shape[o.y] == mine_y.length, Status::kInvalidArgument,
                   "ulysses_all_to_all: inputs[", index, "] ", in.describe(), " must hold ",
                   mine_y.length, " ", y_name, " along dimension ", o.y, " on rank ", me, " of ",
                   p, ": the output has ", o.ey, " and rank r holds diffcoll_split_extent(", o.ey,
                   ", ", p, ", r)");
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

}  // namespace

void ulysses_all_to_all(Comm& comm, const TensorView* inputs, const TensorView* outputs,
                        int count, int seq_axis, int head_axis, UlyssesDirection direction,
                        void* stream) {
  DIFFCOLL_REQUIRE(count >= 1, Status::kInvalidArgument, "ulysses_all_to_all: count ", count,
                   " must be >= 1");
  DIFFCOLL_REQUIRE(inputs != nullptr && outputs != nullptr, Status::kInvalidArgument,
                   "ulysses_all_to_all: inputs and outputs must not be NULL");
  DIFFCOLL_REQUIRE(ulysses_direction_valid(static_cast<int32_t>(direction)),
                   Status::kInvalidArgument, "ulysses_all_to_all: direction ",
                   static_cast<int32_t>(direction), " is not a diffcoll_ulysses_direction_t");
  const int p = comm.size(), me = comm.rank();
  std::vector<Operand> ops;
  ops.reserve(count);
  for (int t = 0; t < count; ++t)
    ops.push_back(check_operand(comm, inputs[t], outputs[t], t, seq_axis, head_axis, direction));
  check_call(ops);

  run(comm, "ulysses_all_to_all", [&] {
    verify_agreement(comm, call_signature(ops[0], count, seq_axis, head_axis, direction));
    Side& side = comm.side_for(ops[0].in.device);
    const size_t es = ops[0].in.element_size();

    // Block sizes and offsets: send block j (to rank j), receive block i.
    std::vector<size_t> send_bytes(p, 0), recv_bytes(p, 0), send_at(p + 1, 0), recv_at(p + 1, 0);
    bool even = p > 1;
    for (const Operand& o : ops) {
      even = even && o.ex % p == 0 && o.ey % p == 0;
      const Part mx = part(o.ex, p, me), my = part(o.ey, p, me);
      for (int r = 0; r < p; ++r) {
        send_bytes[r] += static_cast<size_t>(part(o.ex, p, r).length * my.length * o.rest) * es;
        recv_bytes[r] += static_cast<size_t>(mx.length * part(o.ey, p, r).length * o.rest) * es;
      }
    }
    for (int r = 0; r < p; ++r) {
      send_at[r + 1] = send_at[r] + send_bytes[r];
      recv_at[r + 1] = recv_at[r] + recv_bytes[r];
    }

    // One tensor whose blocks already lie back to back in memory travels
    // from / into the caller's memory (the backend all-to-all wants exactly
    // that layout); otherwise through staging.
    const Operand& only = ops[0];
    const bool direct_send =
        even && count == 1 && only.in.split_axis(only.x, p).move_axis(only.x, 0).is_contiguous();
    const bool direct_recv =
        even && count == 1 && only.out.split_axis(only.y, p).move_axis(only.y, 0).is_contiguous();
    const size_t send_room = direct_send ? 0 : (send_at[p] + 255) & ~size_t{255};
    const size_t recv_room = direct_recv ? 0 : recv_at[p];
    char* base = send_room + recv_room
                     ? static_cast<char*>(side.staging(send_room + recv_room, stream))
                     : nullptr;
    char* send_base = direct_send ? static_cast<char*>(ops[0].in.data) : base;
    char* recv_base = direct_recv ? static_cast<char*>(ops[0].out.data) : base + send_room;

    std::vector<detail::Piece> packs, unpacks;
    std::vector<size_t> send_fill(send_at.begin(), send_at.end() - 1);
    std::vector<size_t> recv_fill(recv_at.begin(), recv_at.end() - 1);
    for (const Operand& o : ops) {
      for (int r = 0; r < p; ++r) {
        const Part px = part(o.ex, p, r), py = part(o.ey, p, r);
        const TensorView to_r = o.in.slab(o.x, px.start, px.length);
        const TensorView from_r = o.out.slab(o.y, py.start, py.length);
        if (!direct_send && to_r.numel() > 0) packs.push_back({to_r, send_base + send_fill[r]});
        if (!direct_recv && from_r.numel() > 0) {
          // Without a backend all-to-all the block for oneself is never
          // sent: it is unpacked straight from where it was packed.
          char* block = r == me && !even ? send_base + send_fill[r] : recv_base + recv_fill[r];
          unpacks.push_back({from_r, block});
        }
        send_fill[r] += to_r.nbytes();
        recv_fill[r] += from_r.nbytes();
      }
    }

    detail::batch(comm, side, packs, true, stream);
    if (even) {
      side.backend().all_to_all(send_base, recv_base, send_bytes[0], stream);
    } else {
      std::vector<P2POp> transfers;
      for (int r = 0; r < p; ++r) {
        if (r == me) continue;
        if (recv_bytes[r]) transfers.push_back({false, r, recv_base + recv_at[r], recv_bytes[r]});
        if (send_bytes[r]) transfers.push_back({true, r, send_base + send_at[r], send_bytes[r]});
      }
      side.backend().exchange(transfers, stream);
    }
    detail::batch(comm, side, unpacks, false, stream);
  });
}

}  // namespace ops
}  // namespace diffcoll
