// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Slabs: splitting a tensor into P nearly equal pieces along an axis, gathering
// such pieces back, and the local-movement machinery the halo exchange and the
// gather share (one staging allocation, batched packs and unpacks, copies and
// zero fills on the side the tensors live on).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../comm.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

// Slab `index` of `parts` along an extent (torch.tensor_split's rule): the
// first extent % parts slabs have extent / parts + 1 rows, the others
// extent / parts; slabs are consecutive and may be empty when extent < parts.
void split_extent(int64_t extent, int parts, int index, int64_t* start, int64_t* length);

// Reassembles the slabs of every rank along `axis` into `whole`: rank r's
// `slab` must hold split_extent(whole.shape[axis], P, r) rows and equal
// `whole` in every other dimension. root >= 0: only the root's `whole` is
// written (others may pass nullptr); root == -1: every rank's `whole` is.
// One grouped exchange of point-to-point transfers.
void gather_slabs(Comm& comm, const TensorView& slab, const TensorView* whole, int axis, int root,
                  void* stream);

namespace detail {


// The order of `t`'s dimensions from outermost to innermost in memory
// (|stride| descending, ties by index). Ranks that share a layout get the
// same order whatever their extents.
std::vector<int> memory_order(const TensorView& t);
// `t` with its dimensions permuted into `order` (order[i] is the old
// dimension that becomes dimension i).
TensorView permuted(const TensorView& t, const std::vector<int>& order);
// True if the two views may share a byte.
bool spans_overlap(const TensorView& a, const TensorView& b);

// A plan of local data movement on one side, staged in one allocation:
//  - wire buffers: views sent or received by a grouped exchange; a view whose
//    elements are contiguous travels from / into its own memory, others
//    through staging (pack_sends before the exchange, unpack_recvs after);
//  - phases of moves (copies between views, zero fills) run in order; within
//    a phase every move reads only what no move of the phase writes.
// Elements travel in the row-major order of the views given; callers that
// want memory order pass permuted views. With an FP8 wire, every wire buffer
// is staged in FP8 form (fp8_wire.h): the views given to add_send and
// add_recv are wire views, packing quantises and unpacking dequantises;
// copies (phases) stay exact.
class Mover {
 public:
  Mover(Comm& comm, Side& side, void* stream, const Fp8Wire* fp8 = nullptr)
      : comm_(comm), side_(side), stream_(stream), fp8_(fp8) {}

  // Planning. Indices of wire buffers are returned for buffer().
  size_t add_send(const TensorView& view);
  size_t add_recv(const TensorView& view);
  int add_phase();
  // Copy src's elements into dst (same number of elements, row-major
  // correspondence). Picks, in order: one raw copy when both are contiguous;
  // raw copies of single rows along `split_dims` (the dimensions where src
  // is remapped, e.g. a zero stride) when those rows are contiguous and
  // there are at most kMaxRowCopies of them; an unpack straight from src or
  // a pack straight into dst when one of them is contiguous; else a pack
  // into staging and an unpack from it.
  void add_copy(int phase, const TensorView& src, const TensorView& dst,
                const std::vector<int>& split_dims = {});
  void add_zero(int phase, const TensorView& dst);

  // One staging request for everything planned. Call once, after planning.
  void allocate();
  void* buffer(size_t index) const { return wires_[index].buffer; }
  size_t bytes(size_t index) const { return wires_[index].bytes; }

  void pack_sends();    // one batched pack of the staged sends
  void unpack_recvs();  // one batched unpack of the staged receives
  void run_phase(int phase);

  static constexpr int kMaxRowCopies = 16;

 private:
  struct Wire {
    TensorView view;
    bool is_send;
    bool staged;
    size_t bytes;  // on the wire
    size_t offset = 0;
    void* buffer = nullptr;
  };
  enum class Kind { kRawCopy, kUnpackFromSrc, kPackToDst, kStaged, kZeroRaw, kZeroStaged };
  struct Move {
    Kind kind;
    TensorView src, dst;
    size_t offset = 0;  // staging offset (kStaged)
  };
  struct Phase {
    std::vector<Move> moves;
    size_t zero_bytes = 0;  // staged zero source this phase needs
    size_t zero_offset = 0;
  };

  size_t take(size_t bytes);
  size_t add_wire(const TensorView& view, bool is_send);
  // The staged wires of one direction, packed (sends) or unpacked.
  void move_staged(bool sends);

  Comm& comm_;
  Side& side_;
  void* stream_;
  const Fp8Wire* fp8_;
  std::vector<Wire> wires_;
  std::vector<Phase> phases_;
  size_t room_ = 0;
  char* base_ = nullptr;
  bool allocated_ = false;
};

}  // namespace detail
}  // namespace ops
}  // namespace diffcoll
