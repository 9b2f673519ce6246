// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "slabs.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../error.h"
#include "run.h"

#ifdef DIFFCOLL_WITH_CUDA
#include "../cuda/cuda_error.h"
#include "../cuda/cuda_side.h"
#include "../cuda/pack_cuda.h"
#endif

namespace diffcoll {
namespace ops {

void split_extent(int64_t extent, int parts, int index, int64_t* start, int64_t* length) {
  DIFFCOLL_REQUIRE(extent >= 0, Status::kInvalidArgument, "split_extent: extent ", extent,
                   " is negative");
  DIFFCOLL_REQUIRE(parts >= 1, Status::kInvalidArgument, "split_extent: parts ", parts,
                   " must be >= 1");
  DIFFCOLL_REQUIRE(index >= 0 && index < parts, Status::kInvalidArgument, "split_extent: index ",
                   index, " is outside 0..", parts - 1);
  const int64_t base = extent / parts, extra = extent % parts;
  *start = index * base + std::min<int64_t>(index, extra);
  *length = base + (index < extra ? 1 : 0);
}

namespace detail {
namespace {

struct Piece {
  TensorView view;
  void* dense;
};

// Packs (or unpacks) several pieces: one kernel launch per batch on a CUDA
// side (the pack kernels take several pieces), a loop on the host.
void batch(Comm& comm, Side& side, const std::vector<Piece>& pieces, bool to_dense, void* stream) {
  if (pieces.empty()) return;
  uint64_t bytes = 0;
  for (const Piece& p : pieces) bytes += p.view.nbytes();
#ifdef DIFFCOLL_WITH_CUDA
  if (auto* cuda = dynamic_cast<CudaSide*>(&side)) {
    std::vector<PackPiece> batch;
    batch.reserve(pieces.size());
    for (const Piece& p : pieces) {
      PackPiece piece;
      piece.view = p.view;
      piece.dense = p.dense;
      batch.push_back(piece);
    }
    DeviceGuard guard(cuda->nccl().device());
    if (to_dense)
      pack_cuda(batch.data(), static_cast<int>(batch.size()), stream);
    else
      unpack_cuda(batch.data(), static_cast<int>(batch.size()), stream);
    (to_dense ? comm.stats.bytes_packed : comm.stats.bytes_unpacked) += bytes;
    return;
  }
#endif
  for (const Piece& p : pieces) {
    if (to_dense)
      side.pack(p.view, p.dense, stream);
    else
      side.unpack(p.dense, p.view, stream);
  }
  (to_dense ? comm.stats.bytes_packed : comm.stats.bytes_unpacked) += bytes;
}

constexpr size_t kAlign = 256;
size_t room(size_t bytes) { return (bytes + kAlign - 1) & ~(kAlign - 1); }

}  // namespace

std::vector<int> memory_order(const TensorView& t) {
  std::vector<int> order(t.ndim);
  for (int d = 0; d < t.ndim; ++d) order[d] = d;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return std::llabs(t.strides[a]) > std::llabs(t.strides[b]);
  });
  return order;
}

TensorView permuted(const TensorView& t, const std::vector<int>& order) {
  TensorView p = t;
  for (int i = 0; i < t.ndim; ++i) {
    p.shape[i] = t.shape[order[i]];
    p.strides[i] = t.strides[order[i]];
  }
  return p;
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

size_t Mover::take(size_t bytes) {
  size_t offset = room_;
  room_ += room(bytes);
  return offset;
}

size_t Mover::add_wire(const TensorView& view, bool is_send) {
  Wire w{view, is_send, fp8_ || !view.is_contiguous(),
         fp8_ ? fp8_layout(view, fp8_->block).bytes : view.nbytes()};
  if (w.staged) w.offset = take(w.bytes);
  wires_.push_back(w);
  return wires_.size() - 1;
}

size_t Mover::add_send(const TensorView& view) { return add_wire(view, true); }

size_t Mover::add_recv(const TensorView& view) { return add_wire(view, false); }

int Mover::add_phase() {
  phases_.emplace_back();
  return static_cast<int>(phases_.size()) - 1;
}

void Mover::add_copy(int phase, const TensorView& src, const TensorView& dst,
                     const std::vector<int>& split_dims) {
  if (dst.numel() == 0) return;
  Phase& ph = phases_.at(phase);
  if (src.is_contiguous() && dst.is_contiguous()) {
    ph.moves.push_back({Kind::kRawCopy, src, dst});
    return;
  }
  // Single rows along the remapped dimensions (e.g. the rows a replicate or
  // reflect fill repeats), when each is one contiguous run on both sides.
  std::vector<int> dims;
  int64_t rows = 1;
  for (int d : split_dims)
    if (dst.shape[d] > 1) {
      dims.push_back(d);
      rows *= dst.shape[d];
    }
  if (!dims.empty() && rows <= kMaxRowCopies) {
    std::vector<Move> pieces;
    bool ok = true;
    for (int64_t k = 0; ok && k < rows; ++k) {
      TensorView s = src, t = dst;
      int64_t rest = k;
      for (int d : dims) {
        const int64_t i = rest % dst.shape[d];
        rest /= dst.shape[d];
        s = s.slab(d, i, 1);
        t = t.slab(d, i, 1);
      }
      ok = s.is_contiguous() && t.is_contiguous();
      pieces.push_back({Kind::kRawCopy, s, t});
    }
    if (ok) {
      ph.moves.insert(ph.moves.end(), pieces.begin(), pieces.end());
      return;
    }
  }
  if (src.is_contiguous()) {
    ph.moves.push_back({Kind::kUnpackFromSrc, src, dst});
  } else if (dst.is_contiguous()) {
    ph.moves.push_back({Kind::kPackToDst, src, dst});
  } else {
    Move m{Kind::kStaged, src, dst};
    m.offset = take(dst.nbytes());
    ph.moves.push_back(m);
  }
}

void Mover::add_zero(int phase, const TensorView& dst) {
  if (dst.numel() == 0) return;
  Phase& ph = phases_.at(phase);
  if (dst.is_contiguous()) {
    ph.moves.push_back({Kind::kZeroRaw, dst, dst});
  } else {
    ph.moves.push_back({Kind::kZeroStaged, dst, dst});
    ph.zero_bytes = std::max(ph.zero_bytes, dst.nbytes());
  }
}

void Mover::allocate() {
  DIFFCOLL_REQUIRE(!allocated_, Status::kInternal, "Mover::allocate called twice");
  allocated_ = true;
  for (Phase& ph : phases_)
    if (ph.zero_bytes) ph.zero_offset = take(ph.zero_bytes);
  base_ = room_ ? static_cast<char*>(side_.staging(room_, stream_)) : nullptr;
  for (Wire& w : wires_) w.buffer = w.staged ? base_ + w.offset : w.view.data;
}

void Mover::move_staged(bool sends) {
  if (!fp8_) {
    std::vector<Piece> pieces;
    for (const Wire& w : wires_)
      if (w.is_send == sends && w.staged && w.view.numel() > 0) pieces.push_back({w.view, w.buffer});
    batch(comm_, side_, pieces, sends, stream_);
    return;
  }
  std::vector<Fp8Piece> pieces;
  uint64_t bytes = 0;
  for (const Wire& w : wires_)
    if (w.is_send == sends && w.view.numel() > 0) {
      pieces.push_back({w.view, w.buffer});
      bytes += w.view.nbytes();
    }
  if (pieces.empty()) return;
  const int n = static_cast<int>(pieces.size());
  if (sends)
    side_.pack_fp8(pieces.data(), n, *fp8_, stream_);
  else
    side_.unpack_fp8(pieces.data(), n, *fp8_, stream_);
  (sends ? comm_.stats.bytes_packed : comm_.stats.bytes_unpacked) += bytes;
}

void Mover::pack_sends() { move_staged(true); }

void Mover::unpack_recvs() { move_staged(false); }

void Mover::run_phase(int phase) {
  const Phase& ph = phases_.at(phase);
  std::vector<Piece> packs, unpacks;
  for (const Move& m : ph.moves) {
    switch (m.kind) {
      case Kind::kPackToDst:
        packs.push_back({m.src, m.dst.data});
        break;
      case Kind::kStaged:
        packs.push_back({m.src, base_ + m.offset});
        unpacks.push_back({m.dst, base_ + m.offset});
        break;
      case Kind::kUnpackFromSrc:
        unpacks.push_back({m.dst, m.src.data});
        break;
      case Kind::kZeroStaged:
        unpacks.push_back({m.dst, base_ + ph.zero_offset});
        break;
      default:
        break;
    }
  }
  batch(comm_, side_, packs, true, stream_);
  if (ph.zero_bytes) side_.fill_zero(base_ + ph.zero_offset, ph.zero_bytes, stream_);
  for (const Move& m : ph.moves) {
    if (m.kind == Kind::kRawCopy)
      side_.copy(m.dst.data, m.src.data, m.dst.nbytes(), stream_);
    else if (m.kind == Kind::kZeroRaw)
      side_.fill_zero(m.dst.data, m.dst.nbytes(), stream_);
  }
  batch(comm_, side_, unpacks, false, stream_);
}

}  // namespace detail

// ---- gather_slabs -------------------------------------------------------------

namespace {

// What a rank passed to gather_slabs, compared across ranks in check mode.
struct GatherCheck {
  int32_t dtype = 0;
  int32_t ndim = 0;
  int64_t shape[kMaxViewDims] = {};
  int64_t whole_extent = -1;  // -1 where the rank has no whole
  char problem[200] = {};
};

}  // namespace

void gather_slabs(Comm& comm, const TensorView& slab, const TensorView* whole, int axis, int root,
                  void* stream) {
  const int p = comm.size(), me = comm.rank();
  const bool all = root == -1;
  DIFFCOLL_REQUIRE(all || (root >= 0 && root < p), Status::kInvalidArgument, "gather_slabs root ",
                   root, " is outside -1..", p - 1, " of ", comm.name());
  const bool receives = all || me == root;
  // Local validation, kept as a message so that in check mode every rank
  // learns every rank's problem.
  std::string problem;
  Status problem_status = Status::kInvalidArgument;
  int64_t extent = -1;
  try {
    slab.validate("gather_slabs slab");
    DIFFCOLL_REQUIRE(axis >= 0 && axis < slab.ndim, Status::kInvalidArgument, "gather_slabs axis ",
                     axis, " is outside 0..", slab.ndim - 1, " for ", slab.describe());
    if (receives) {
      DIFFCOLL_REQUIRE(whole != nullptr, Status::kInvalidArgument, "gather_slabs: rank ", me,
                       " receives the result and needs `whole`");
      whole->validate("gather_slabs whole");
      DIFFCOLL_REQUIRE(!whole->may_overlap(), Status::kInvalidArgument, "gather_slabs whole ",
                       whole->describe(), " has overlapping elements and cannot be written");
      DIFFCOLL_REQUIRE(whole->dtype == slab.dtype && whole->device.type == slab.device.type &&
                           (!slab.device.is_cuda() || whole->device.id == slab.device.id),
                       Status::kInvalidArgument, "gather_slabs: slab ", slab.describe(),
                       " and whole ", whole->describe(), " differ in dtype or device");
      bool same = whole->ndim == slab.ndim;
      for (int d = 0; same && d < slab.ndim; ++d)
        same = d == axis || whole->shape[d] == slab.shape[d];
      DIFFCOLL_REQUIRE(same, Status::kInvalidArgument, "gather_slabs: whole ", whole->describe(),
                       " and slab ", slab.describe(), " must agree in every dimension but axis ",
                       axis);
      extent = whole->shape[axis];
      int64_t start, length;
      split_extent(extent, p, me, &start, &length);
      DIFFCOLL_REQUIRE(slab.shape[axis] == length, Status::kInvalidArgument, "gather_slabs: rank ",
                       me, "'s slab has ", slab.shape[axis], " rows along axis ", axis,
                       " but slab ", me, " of ", p, " of an extent of ", extent, " has ", length,
                       " (see diffcoll_split_extent)");
      DIFFCOLL_REQUIRE(!detail::spans_overlap(slab, *whole) ||
                           (slab.data == whole->slab(axis, start, length).data &&
                            std::equal(slab.strides, slab.strides + slab.ndim, whole->strides)),
                       Status::kInvalidArgument,
                       "gather_slabs: slab and whole overlap (a slab may only be its own "
                       "place in whole)");
    }
  } catch (const Error& e) {
    problem = e.what();
    problem_status = e.status();
  }
  run(comm, "gather_slabs", [&] {
    if (comm.options().check && p > 1) {
      GatherCheck mine;
      mine.dtype = static_cast<int32_t>(slab.dtype);
      mine.ndim = slab.ndim;
      for (int d = 0; d < slab.ndim && d < kMaxDims; ++d) mine.shape[d] = slab.shape[d];
      mine.whole_extent = extent;
      std::strncpy(mine.problem, problem.c_str(), sizeof mine.problem - 1);
      std::vector<GatherCheck> every(p);
      comm.host_backend().all_gather(&mine, every.data(), sizeof mine, nullptr);
      for (int r = 0; r < p; ++r)
        if (every[r].problem[0] && r != me)
          fail(Status::kInvalidArgument, "gather_slabs: rank ", r, ": ", every[r].problem);
      if (!problem.empty()) throw Error(problem_status, problem);
      int64_t agreed = -1;
      for (int r = 0; r < p; ++r) {
        if (every[r].dtype != every[0].dtype || every[r].ndim != every[0].ndim)
          fail(Status::kMismatch, "DIFFCOLL_CHECK: gather_slabs: rank ", r,
               "'s slab differs from rank 0's in dtype or rank");
        for (int d = 0; d < every[r].ndim && d < kMaxDims; ++d)
          if (d != axis && every[r].shape[d] != every[0].shape[d])
            fail(Status::kMismatch, "DIFFCOLL_CHECK: gather_slabs: rank ", r, "'s slab has extent ",
                 every[r].shape[d], " in dimension ", d, " but rank 0's has ", every[0].shape[d]);
        if (every[r].whole_extent >= 0) {
          if (agreed >= 0 && agreed != every[r].whole_extent)
            fail(Status::kMismatch,
                 "DIFFCOLL_CHECK: gather_slabs: the ranks' wholes differ "
                 "in extent along axis ",
                 axis);
          agreed = every[r].whole_extent;
        }
      }
      if (agreed >= 0)
        for (int r = 0; r < p; ++r) {
          int64_t start, length;
          split_extent(agreed, p, r, &start, &length);
          if (every[r].shape[axis] != length)
            fail(Status::kInvalidArgument, "gather_slabs: rank ", r, "'s slab has ",
                 every[r].shape[axis], " rows along axis ", axis, " but slab ", r, " of ", p,
                 " of an extent of ", agreed, " has ", length, " (see diffcoll_split_extent)");
        }
    } else if (!problem.empty()) {
      throw Error(problem_status, problem);
    }

    Side& side = comm.side_for(slab.device);
    detail::Mover mover(comm, side, stream);
    std::vector<P2POp> ops;
    std::vector<size_t> wire;
    // Sends: my slab to every receiving rank but me, in row-major order (as
    // diffcoll_send does), packed once if it has to be.
    if (slab.numel() > 0) {
      size_t sent = SIZE_MAX;
      for (int r = 0; r < p; ++r) {
        if (r == me || !(all || r == root)) continue;
        if (sent == SIZE_MAX) sent = mover.add_send(slab);
        wire.push_back(sent);
        ops.push_back({true, r, nullptr, slab.nbytes()});
      }
    }
    int own = -1;
    if (receives) {
      for (int r = 0; r < p; ++r) {
        int64_t start, length;
        split_extent(extent, p, r, &start, &length);
        TensorView dst = whole->slab(axis, start, length);
        if (dst.numel() == 0) continue;
        if (r == me) {
          if (dst.data == slab.data) continue;  // the slab already lives in whole
          own = mover.add_phase();
          mover.add_copy(own, slab, dst);
          continue;
        }
        wire.push_back(mover.add_recv(dst));
        ops.push_back({false, r, nullptr, dst.nbytes()});
      }
    }
    mover.allocate();
    for (size_t i = 0; i < ops.size(); ++i) ops[i].buffer = mover.buffer(wire[i]);
    mover.pack_sends();
    if (own >= 0) mover.run_phase(own);
    side.backend().exchange(ops, stream);
    mover.unpack_recvs();
  });
}

}  // namespace ops
}  // namespace diffcoll
