// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// How an exchange is planned (every rank plans alone, from its own padded
// tensor and the shared config; the plans match by construction):
//
// Along each used grid axis g the padded tensor has three parts: `before`
// halo rows, the interior (this rank's slab) and `after` halo rows; in 2-D the
// padded tensor is a 3x3 arrangement of blocks around the interior, addressed
// by an offset o in {-1,0,1}^2. Each halo side is one of
//   remote    a neighbour exists (inside the grid, or wrapped by CIRCULAR
//             over more than one rank),
//   self      CIRCULAR over a grid of one rank (the far end is this rank),
//   local     REPLICATE or REFLECT at an end of the grid,
//   zeros     ZEROS at an end of the grid,
//   untouched UNTOUCHED at an end of the grid.
// A block whose halo sides are all remote comes from the rank at offset o
// (edges from the four neighbours, corners from the diagonal ones): these
// transfers form ONE grouped exchange. Every other block is filled locally
// afterwards, in one pass: left alone if a side is untouched, zeroed if a side
// is zeros, else copied from this rank's own padded tensor through an index
// remap per local/self axis (replicate: stride 0 from the edge row; reflect:
// a reversed view that skips the edge row; self: the far rows of the
// interior) and an identity on remote axes, which reads the halo just
// received. The remaps of the two axes commute, so each block equals the
// matching block of the whole tensor padded once along both axes. Local fills
// read only the interior and received halos, never another fill.
//
// Transfers of one rank pair are matched by order: receives are posted for o
// in a fixed order from the rank at +o, sends for o in the same order to the
// rank at -o; the pair (A, B) sees the same offsets in the same order on both
// sides. Elements travel in the memory order of the padded tensor (its
// dimensions sorted by stride, the same on every rank for a shared layout):
// a block that is one contiguous run in memory (e.g. channels-last rows of a
// batch-1 activation split along H) is sent from and received into the
// caller's memory; others are packed into and unpacked from staging, all of
// them in one batch each.
#include "halo.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "../error.h"
#include "run.h"
#include "slabs.h"

namespace diffcoll {
namespace ops {

bool halo_boundary_valid(int32_t value) { return value >= 0 && value <= 4; }

const char* halo_boundary_name(HaloBoundary b) {
  switch (b) {
    case HaloBoundary::kZeros:
      return "ZEROS";
    case HaloBoundary::kReplicate:
      return "REPLICATE";
    case HaloBoundary::kReflect:
      return "REFLECT";
    case HaloBoundary::kCircular:
      return "CIRCULAR";
    case HaloBoundary::kUntouched:
      return "UNTOUCHED";
  }
  return "?";
}

namespace {

const char* const kAxisName[2] = {"row", "col"};

bool axis_used(const HaloConfig& c, int g) {
  return c.grid[g] > 1 || c.before[g] > 0 || c.after[g] > 0;
}

enum class SideKind { kRemote, kSelf, kLocal, kZeros, kUntouched };

// What one rank passed to an exchange, compared across ranks in check mode.
struct HaloCheck {
  int32_t dtype = 0;
  int32_t ndim = 0;
  int64_t shape[kMaxViewDims] = {};
  int32_t order[kMaxViewDims] = {};
  int64_t interior[2] = {};
  int32_t config[16] = {};
  char problem[240] = {};
};

void config_digest(const HaloConfig& c, int32_t* out) {
  for (int g = 0; g < 2; ++g) {
    out[8 * g + 0] = c.grid[g];
    out[8 * g + 1] = c.axis[g];
    out[8 * g + 2] = static_cast<int32_t>(c.before[g]);
    out[8 * g + 3] = static_cast<int32_t>(c.after[g]);
    out[8 * g + 4] = static_cast<int32_t>(c.boundary_before[g]);
    out[8 * g + 5] = static_cast<int32_t>(c.boundary_after[g]);
    out[8 * g + 6] = c.corners;
  }
}

// One exchange, planned from this rank's padded tensor.
class Exchange {
 public:
  Exchange(const HaloConfig& config, int rank, const int* coord, const TensorView& padded)
      : c_(config), rank_(rank), padded_(padded) {
    for (int g = 0; g < 2; ++g) coord_[g] = coord[g];
  }

  // Validates the tensor against the config; returns a problem or "".
  std::string analyse() {
    try {
      padded_.validate("halo exchange padded tensor");
    } catch (const Error& e) {
      return e.what();
    }
    if (padded_.may_overlap())
      return "halo exchange: the padded tensor " + padded_.describe() +
             " has overlapping elements (a zero or aliasing stride) and cannot be written";
    for (int g = 0; g < 2; ++g) {
      dim_[g] = -1;
      B_[g] = A_[g] = 0;
      L_[g] = 0;
      if (!axis_used(c_, g)) continue;
      int d = c_.axis[g] < 0 ? c_.axis[g] + padded_.ndim : c_.axis[g];
      if (d < 0 || d >= padded_.ndim)
        return detail_msg("halo exchange: ", kAxisName[g], "_axis ", c_.axis[g], " is outside the ",
                          padded_.ndim, " dimensions of ", padded_.describe());
      dim_[g] = d;
      B_[g] = c_.before[g];
      A_[g] = c_.after[g];
      L_[g] = padded_.shape[d] - B_[g] - A_[g];
      if (L_[g] < 0)
        return detail_msg("halo exchange: dimension ", d, " of the padded tensor ",
                          padded_.describe(), " has ", padded_.shape[d],
                          " rows, fewer than its halo widths ", B_[g], " + ", A_[g]);
    }
    if (dim_[0] >= 0 && dim_[0] == dim_[1])
      return detail_msg("halo exchange: row_axis ", c_.axis[0], " and col_axis ", c_.axis[1],
                        " are the same dimension ", dim_[0], " of ", padded_.describe());
    // This rank must hold every row a neighbour asks for, and every row a
    // local fill reads.
    for (int g = 0; g < 2; ++g) {
      if (dim_[g] < 0) continue;
      for (int s : {-1, 1}) {
        const int64_t w = width(g, s);
        if (w == 0) continue;
        // The neighbour on side -s receives my rows into its side-s halo.
        if (remote_peer(g, -s) >= 0 && L_[g] < w)
          return detail_msg(
              "halo exchange: the halo is wider than a neighbour's interior: "
              "rank ",
              rank_, " holds ", L_[g], " interior rows along dimension ", dim_[g], " (",
              kAxisName[g], " axis) but its neighbour rank ", peer_rank(g, remote_peer(g, -s)),
              " needs ", w, " rows from it for its ", s < 0 ? "before" : "after", " halo");
        const SideKind k = kind(g, s);
        const HaloBoundary b = s < 0 ? c_.boundary_before[g] : c_.boundary_after[g];
        int64_t need = 0;
        if (k == SideKind::kSelf)
          need = w;
        else if (k == SideKind::kLocal)
          need = b == HaloBoundary::kReflect ? w + 1 : 1;
        if (L_[g] < need)
          return detail_msg("halo exchange: ", halo_boundary_name(b), " boundary needs ", need,
                            " interior rows along dimension ", dim_[g], " (", kAxisName[g],
                            " axis) for a ", s < 0 ? "before" : "after", " halo of ", w,
                            " but rank ", rank_, " holds ", L_[g]);
      }
    }
    return "";
  }

  int64_t interior(int g) const { return L_[g]; }

  // Plans every transfer and fill into `mover` (after an optional copy of
  // `input` into the interior) and fills `ops`, with buffers to resolve.
  void plan(detail::Mover& mover, const TensorView* input, std::vector<P2POp>& ops,
            std::vector<size_t>& wires, int* pre_phase, int* fill_phase) {
    order_ = detail::memory_order(padded_);
    *pre_phase = -1;
    if (input) {
      TensorView interior = padded_;
      for (int g = 0; g < 2; ++g)
        if (dim_[g] >= 0) interior = interior.slab(dim_[g], B_[g], L_[g]);
      const bool same = input->data == interior.data &&
                        std::equal(input->strides, input->strides + input->ndim, interior.strides);
      if (!same) {
        // Any common order gives the same copy: the output's memory order,
        // unless only the logical order makes one side contiguous (e.g. a
        // contiguous slab into a channels-last buffer: one unpack).
        TensorView src = detail::permuted(*input, order_), dst = detail::permuted(interior, order_);
        if (!src.is_contiguous() && !dst.is_contiguous() &&
            (input->is_contiguous() || interior.is_contiguous())) {
          src = *input;
          dst = interior;
        }
        *pre_phase = mover.add_phase();
        mover.add_copy(*pre_phase, src, dst);
      }
    }
    // Transfers, receives and sends, offsets in one fixed order.
    for (int orow = -1; orow <= 1; ++orow)
      for (int ocol = -1; ocol <= 1; ++ocol) {
        const int o[2] = {orow, ocol};
        if (orow == 0 && ocol == 0) continue;
        if (!transferable(o)) continue;
        // Receive block o from the rank at +o.
        TensorView recv = block(o);
        if (recv.numel() > 0) {
          wires.push_back(mover.add_recv(detail::permuted(recv, order_)));
          ops.push_back({false, rank_at(o, +1), nullptr, recv.nbytes()});
        }
      }
    for (int orow = -1; orow <= 1; ++orow)
      for (int ocol = -1; ocol <= 1; ++ocol) {
        const int o[2] = {orow, ocol};
        if (orow == 0 && ocol == 0) continue;
        if (!sendable(o)) continue;
        // The rank at -o receives into its block o the rows of mine it borders.
        TensorView send = outgoing(o);
        if (send.numel() > 0) {
          wires.push_back(mover.add_send(detail::permuted(send, order_)));
          ops.push_back({true, rank_at(o, -1), nullptr, send.nbytes()});
        }
      }
    // Local fills, in one phase after the exchange.
    *fill_phase = mover.add_phase();
    for (int orow = -1; orow <= 1; ++orow)
      for (int ocol = -1; ocol <= 1; ++ocol) {
        const int o[2] = {orow, ocol};
        if (orow == 0 && ocol == 0) continue;
        plan_fill(mover, *fill_phase, o);
      }
  }

 private:
  template <typename... Parts>
  static std::string detail_msg(const Parts&... parts) {
    std::ostringstream os;
    diffcoll::detail::append(os, parts...);
    return os.str();
  }

  int64_t width(int g, int s) const { return s < 0 ? B_[g] : A_[g]; }

  // The neighbour coordinate along g on side s (-1 before, +1 after) if it is
  // another rank, else -1.
  int remote_peer(int g, int s) const {
    if (dim_[g] < 0) return -1;
    const int n = coord_[g] + s;
    if (n >= 0 && n < c_.grid[g]) return n;
    const HaloBoundary b = s < 0 ? c_.boundary_before[g] : c_.boundary_after[g];
    if (b == HaloBoundary::kCircular && c_.grid[g] > 1) return (n + c_.grid[g]) % c_.grid[g];
    return -1;
  }

  SideKind kind(int g, int s) const {
    if (remote_peer(g, s) >= 0) return SideKind::kRemote;
    switch (s < 0 ? c_.boundary_before[g] : c_.boundary_after[g]) {
      case HaloBoundary::kCircular:
        return SideKind::kSelf;
      case HaloBoundary::kReplicate:
      case HaloBoundary::kReflect:
        return SideKind::kLocal;
      case HaloBoundary::kZeros:
        return SideKind::kZeros;
      case HaloBoundary::kUntouched:
        break;
    }
    return SideKind::kUntouched;
  }

  int peer_rank(int g, int n) const {
    int c[2] = {coord_[0], coord_[1]};
    c[g] = n;
    return c[0] * c_.grid[1] + c[1];
  }

  // The rank at sign * o from this one (every nonzero component remote).
  int rank_at(const int* o, int sign) const {
    int c[2] = {coord_[0], coord_[1]};
    for (int g = 0; g < 2; ++g)
      if (o[g] != 0) c[g] = remote_peer(g, sign * o[g]);
    return c[0] * c_.grid[1] + c[1];
  }

  // Block o of this rank arrives from the rank at +o: every halo side of it
  // is remote and has rows.
  bool transferable(const int* o) const {
    if (o[0] != 0 && o[1] != 0 && !c_.corners) return false;
    for (int g = 0; g < 2; ++g) {
      if (o[g] == 0) continue;
      if (dim_[g] < 0 || width(g, o[g]) == 0 || remote_peer(g, o[g]) < 0) return false;
    }
    return true;
  }

  // The rank at -o receives its block o from this rank (transferable(o) as
  // that rank sees it): this rank's neighbour on side -o exists, and the
  // receiver's halo on side o has rows.
  bool sendable(const int* o) const {
    if (o[0] != 0 && o[1] != 0 && !c_.corners) return false;
    for (int g = 0; g < 2; ++g) {
      if (o[g] == 0) continue;
      if (dim_[g] < 0 || width(g, o[g]) == 0 || remote_peer(g, -o[g]) < 0) return false;
    }
    return true;
  }

  // Block o of this rank's padded tensor.
  TensorView block(const int* o) const {
    TensorView t = padded_;
    for (int g = 0; g < 2; ++g) {
      if (dim_[g] < 0) continue;
      if (o[g] < 0)
        t = t.slab(dim_[g], 0, B_[g]);
      else if (o[g] == 0)
        t = t.slab(dim_[g], B_[g], L_[g]);
      else
        t = t.slab(dim_[g], B_[g] + L_[g], A_[g]);
    }
    return t;
  }

  // The rows of this rank's interior that the rank at -o puts in its block o:
  // along an axis where o is -1 that rank lies after this one and wants its
  // `before` rows from the end of this interior; where o is +1, its `after`
  // rows from the start.
  TensorView outgoing(const int* o) const {
    TensorView t = padded_;
    for (int g = 0; g < 2; ++g) {
      if (dim_[g] < 0) continue;
      if (o[g] < 0)
        t = t.slab(dim_[g], B_[g] + L_[g] - B_[g], B_[g]);
      else if (o[g] == 0)
        t = t.slab(dim_[g], B_[g], L_[g]);
      else
        t = t.slab(dim_[g], B_[g], A_[g]);
    }
    return t;
  }

  void plan_fill(detail::Mover& mover, int phase, const int* o) {
    if (o[0] != 0 && o[1] != 0 && !c_.corners) return;
    if (transferable(o)) return;
    bool zeros = false;
    for (int g = 0; g < 2; ++g) {
      if (o[g] == 0) continue;
      if (dim_[g] < 0 || width(g, o[g]) == 0) return;  // an empty block
      const SideKind k = kind(g, o[g]);
      if (k == SideKind::kUntouched) return;
      if (k == SideKind::kZeros) zeros = true;
    }
    const TensorView dst = block(o);
    if (dst.numel() == 0) return;
    if (zeros) {
      mover.add_zero(phase, detail::permuted(dst, order_));
      return;
    }
    // The source: an index remap along every local/self axis, the block's own
    // rows (interior or received halo) along the others.
    TensorView src = dst;
    std::vector<int> remapped;
    for (int g = 0; g < 2; ++g) {
      if (o[g] == 0) continue;
      const SideKind k = kind(g, o[g]);
      if (k == SideKind::kRemote) continue;
      const int d = dim_[g];
      const HaloBoundary b = o[g] < 0 ? c_.boundary_before[g] : c_.boundary_after[g];
      int64_t start, step;
      if (k == SideKind::kSelf) {
        start = o[g] < 0 ? L_[g] : B_[g];
        step = 1;
      } else if (b == HaloBoundary::kReplicate) {
        start = o[g] < 0 ? B_[g] : B_[g] + L_[g] - 1;
        step = 0;
      } else {  // reflect, without repeating the edge row
        start = o[g] < 0 ? 2 * B_[g] : B_[g] + L_[g] - 2;
        step = -1;
      }
      // Move src's rows along d from the block's rows to the source rows.
      const int64_t first = o[g] < 0 ? 0 : B_[g] + L_[g];
      src.data = static_cast<char*>(src.data) +
                 (start - first) * padded_.strides[d] * static_cast<int64_t>(src.element_size());
      src.strides[d] = step * padded_.strides[d];
      remapped.push_back(d);
    }
    std::vector<int> split;
    for (int d : remapped)
      for (int i = 0; i < padded_.ndim; ++i)
        if (order_[i] == d) split.push_back(i);
    mover.add_copy(phase, detail::permuted(src, order_), detail::permuted(dst, order_), split);
  }

  const HaloConfig& c_;
  int rank_;
  int coord_[2];
  TensorView padded_;
  int dim_[2] = {-1, -1};
  int64_t B_[2] = {}, A_[2] = {}, L_[2] = {};
  std::vector<int> order_;
};

}  // namespace

HaloPlan::HaloPlan(const Comm& comm, const HaloConfig& config)
    : config_(config), size_(comm.size()), rank_(comm.rank()) {
  HaloConfig& c = config_;
  DIFFCOLL_REQUIRE(c.grid[1] >= 1, Status::kInvalidArgument, "halo config: grid_cols ", c.grid[1],
                   " must be >= 1");
  if (c.grid[0] == 0) {
    DIFFCOLL_REQUIRE(size_ % c.grid[1] == 0, Status::kInvalidArgument,
                     "halo config: grid_rows "
                     "0 means comm size / grid_cols, but ",
                     comm.name(), " has ", size_, " ranks, not a multiple of grid_cols ",
                     c.grid[1]);
    c.grid[0] = size_ / c.grid[1];
  }
  DIFFCOLL_REQUIRE(c.grid[0] >= 1, Status::kInvalidArgument, "halo config: grid_rows ", c.grid[0],
                   " must be >= 1 (or 0 for the comm size)");
  const int64_t grid_size = static_cast<int64_t>(c.grid[0]) * c.grid[1];
  DIFFCOLL_REQUIRE(grid_size == size_, Status::kInvalidArgument, "halo config: a grid of ",
                   c.grid[0], " x ", c.grid[1], " ranks needs a communicator of ", grid_size,
                   " ranks, but ", comm.name(), " has ", size_);
  for (int g = 0; g < 2; ++g) {
    DIFFCOLL_REQUIRE(c.axis[g] >= -kMaxDims && c.axis[g] < kMaxDims, Status::kInvalidArgument,
                     "halo config: ", kAxisName[g], "_axis ", c.axis[g], " is outside ", -kMaxDims,
                     "..", kMaxDims - 1);
    DIFFCOLL_REQUIRE(c.before[g] >= 0 && c.after[g] >= 0, Status::kInvalidArgument,
                     "halo config: ", kAxisName[g], " halo widths must be >= 0, got before ",
                     c.before[g], " and after ", c.after[g]);
    for (HaloBoundary b : {c.boundary_before[g], c.boundary_after[g]})
      DIFFCOLL_REQUIRE(halo_boundary_valid(static_cast<int32_t>(b)), Status::kInvalidArgument,
                       "halo config: ", kAxisName[g], " boundary ", static_cast<int32_t>(b),
                       " is not a diffcoll_halo_boundary_t");
    const bool circ_before = c.boundary_before[g] == HaloBoundary::kCircular;
    const bool circ_after = c.boundary_after[g] == HaloBoundary::kCircular;
    DIFFCOLL_REQUIRE(circ_before == circ_after, Status::kInvalidArgument, "halo config: the ",
                     kAxisName[g], " axis is CIRCULAR at one end only (",
                     halo_boundary_name(c.boundary_before[g]), " before, ",
                     halo_boundary_name(c.boundary_after[g]),
                     " after); wrapping needs CIRCULAR at both ends");
  }
  if (axis_used(c, 0) && axis_used(c, 1))
    DIFFCOLL_REQUIRE(c.axis[0] != c.axis[1], Status::kInvalidArgument,
                     "halo config: row_axis "
                     "and col_axis are both ",
                     c.axis[0], "; a 2-D halo needs two axes");
  coord_[0] = rank_ / c.grid[1];
  coord_[1] = rank_ % c.grid[1];
}

void HaloPlan::exchange(Comm& comm, const TensorView& padded, void* stream) const {
  run(comm, nullptr, padded, stream);
}

void HaloPlan::exchange_into(Comm& comm, const TensorView& input, const TensorView& padded,
                             void* stream) const {
  run(comm, &input, padded, stream);
}

void HaloPlan::run(Comm& comm, const TensorView* input, const TensorView& padded,
                   void* stream) const {
  DIFFCOLL_REQUIRE(comm.size() == size_ && comm.rank() == rank_, Status::kInvalidArgument,
                   "halo exchange on a communicator other than the plan's");
  const char* operation = input ? "halo_exchange_into" : "halo_exchange";
  ops::run(comm, operation, [&] {
    Exchange ex(config_, rank_, coord_, padded);
    std::string problem = ex.analyse();
    if (problem.empty() && input) {
      try {
        input->validate("halo exchange input");
        DIFFCOLL_REQUIRE(input->dtype == padded.dtype && input->device.type == padded.device.type &&
                             (!padded.device.is_cuda() || input->device.id == padded.device.id),
                         Status::kInvalidArgument, "halo exchange: input ", input->describe(),
                         " and padded output ", padded.describe(), " differ in dtype or device");
        TensorView interior = padded;
        bool fits = input->ndim == padded.ndim;
        for (int g = 0; fits && g < 2; ++g) {
          if (!axis_used(config_, g)) continue;
          const int d = config_.axis[g] < 0 ? config_.axis[g] + padded.ndim : config_.axis[g];
          interior = interior.slab(d, config_.before[g], ex.interior(g));
        }
        for (int d = 0; fits && d < padded.ndim; ++d) fits = input->shape[d] == interior.shape[d];
        DIFFCOLL_REQUIRE(fits, Status::kInvalidArgument, "halo exchange: input ", input->describe(),
                         " does not have the shape of the interior of ", padded.describe(),
                         " (the padded tensor minus its halo widths)");
        const bool same =
            input->data == interior.data &&
            std::equal(input->strides, input->strides + input->ndim, interior.strides);
        DIFFCOLL_REQUIRE(same || !detail::spans_overlap(*input, padded), Status::kInvalidArgument,
                         "halo exchange: input ", input->describe(), " overlaps the padded output ",
                         padded.describe(), " (it may only be the output's interior itself)");
      } catch (const Error& e) {
        problem = e.what();
      }
    }
    if (comm.options().check && size_ > 1) {
      HaloCheck mine;
      mine.dtype = static_cast<int32_t>(padded.dtype);
      mine.ndim = padded.ndim;
      std::vector<int> order;
      if (problem.empty()) order = detail::memory_order(padded);
      for (int d = 0; d < padded.ndim && d < kMaxDims; ++d) {
        mine.shape[d] = padded.shape[d];
        if (problem.empty()) mine.order[d] = order[d];
      }
      for (int g = 0; g < 2; ++g) mine.interior[g] = problem.empty() ? ex.interior(g) : -1;
      config_digest(config_, mine.config);
      std::strncpy(mine.problem, problem.c_str(), sizeof mine.problem - 1);
      std::vector<HaloCheck> every(size_);
      comm.host_backend().all_gather(&mine, every.data(), sizeof mine, nullptr);
      if (!problem.empty()) throw Error(Status::kInvalidArgument, problem);
      for (int r = 0; r < size_; ++r)
        if (every[r].problem[0])
          fail(Status::kInvalidArgument, "halo exchange: rank ", r, ": ", every[r].problem);
      for (int r = 0; r < size_; ++r) {
        const HaloCheck& e = every[r];
        DIFFCOLL_REQUIRE(std::memcmp(e.config, mine.config, sizeof mine.config) == 0,
                         Status::kMismatch, "DIFFCOLL_CHECK: halo exchange: rank ", r,
                         "'s plan has a different config from rank ", rank_, "'s");
        DIFFCOLL_REQUIRE(e.dtype == mine.dtype && e.ndim == mine.ndim, Status::kMismatch,
                         "DIFFCOLL_CHECK: halo exchange: rank ", r,
                         "'s padded tensor differs from rank ", rank_, "'s in dtype or rank");
        // The order of the dimensions both ranks have more than one row of
        // (the others' strides say nothing).
        auto order_of = [&](const HaloCheck& h) {
          std::vector<int> o;
          for (int i = 0; i < h.ndim && i < kMaxDims; ++i)
            if (e.shape[h.order[i]] > 1 && mine.shape[h.order[i]] > 1) o.push_back(h.order[i]);
          return o;
        };
        DIFFCOLL_REQUIRE(order_of(e) == order_of(mine), Status::kMismatch,
                         "DIFFCOLL_CHECK: halo exchange: rank ", r,
                         "'s padded tensor has a different memory layout from rank ", rank_,
                         "'s (e.g. channels-last against contiguous)");
        const int rc[2] = {r / config_.grid[1], r % config_.grid[1]};
        for (int d = 0; d < mine.ndim; ++d) {
          bool split = false;
          for (int g = 0; g < 2; ++g)
            if (axis_used(config_, g) &&
                d == (config_.axis[g] < 0 ? config_.axis[g] + mine.ndim : config_.axis[g]))
              split = true;
          if (!split)
            DIFFCOLL_REQUIRE(e.shape[d] == mine.shape[d], Status::kMismatch,
                             "DIFFCOLL_CHECK: halo exchange: rank ", r, "'s padded tensor has ",
                             e.shape[d], " in dimension ", d, " but rank ", rank_, "'s has ",
                             mine.shape[d]);
        }
        // Ranks in one grid row hold the same rows (interior extent along the
        // row axis), ranks in one grid column the same columns.
        for (int g = 0; g < 2; ++g)
          if (rc[g] == coord_[g] && e.interior[g] != mine.interior[g])
            fail(Status::kMismatch, "DIFFCOLL_CHECK: halo exchange: rank ", r, " and rank ", rank_,
                 " are in one grid ", g == 0 ? "row" : "column", " but hold ", e.interior[g],
                 " and ", mine.interior[g], " interior rows along the ", kAxisName[g], " axis");
      }
    } else if (!problem.empty()) {
      throw Error(Status::kInvalidArgument, problem);
    }

    Side& side = comm.side_for(padded.device);
    detail::Mover mover(comm, side, stream);
    std::vector<P2POp> ops;
    std::vector<size_t> wires;
    int pre = -1, fill = -1;
    ex.plan(mover, input, ops, wires, &pre, &fill);
    mover.allocate();
    for (size_t i = 0; i < ops.size(); ++i) ops[i].buffer = mover.buffer(wires[i]);
    if (pre >= 0) mover.run_phase(pre);
    mover.pack_sends();
    if (!ops.empty()) side.backend().exchange(ops, stream);
    mover.unpack_recvs();
    mover.run_phase(fill);
  });
}

}  // namespace ops
}  // namespace diffcoll
