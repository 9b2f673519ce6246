// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// How the CUDA GroupNorm kernels walk a tensor, as plain host/device
// functions (no CUDA headers), so that the host tests can check on a machine
// without a GPU that every element is read once, for the right (sample,
// group), and written with its own channel's statistics.
//
// Moments, two walks:
//  - channel rows: channels at stride 1 (channels-last, 2-D or 3-D, and
//    their slabs): a block reads whole positions (C contiguous channels,
//    16- or 8-byte loads), every thread keeps to one column of loads and
//    so to one group, and the block reduces per group. Each block covers a
//    range of positions of one sample: the reads are full lines.
//  - group runs: anything else. The elements of one (sample, group) are
//    "runs": the whole group when it is one contiguous block (contiguous
//    NCHW), one run per channel when the spatial dimensions are dense
//    (an NCHW slab of a taller buffer), one run of cpg channels per position
//    when channels have stride 1 but are too many for one block's row,
//    single elements otherwise; runs are read as 16-byte vectors when every
//    run start is 16-byte aligned and runs hold whole vectors. Blocks cover
//    a share of one (sample, group).
// Apply: dense tensors with equal input and output strides are walked in
// memory order, 16-byte vectors where aligned; the (sample, channel) of a
// vector's elements is found once per vector when the channel is constant
// along it (NCHW-like) or steps by one (channels-last), per element otherwise.
// One kernel (a rank alone, fused_walk): each thread normalises its own
// moments loads, so the walk above covers the apply too.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>

#include "../ops/group_norm_math.h"

namespace diffcoll {
namespace ops {

constexpr int kGroupNormThreads = 256;  // threads of every GroupNorm block
constexpr int kGroupNormUnroll = 4;     // loads a moments thread has in flight
// Elements a moments block reads at least, before splitting further stops.
constexpr int64_t kGroupNormElementsPerBlock = 4096;
// Block partials per call at most (16 bytes each): bounds the workspace.
constexpr int64_t kGroupNormMaxPartials = 16384;
// Channels per group at most of the one-kernel GroupNorm on group runs: a
// block keeps its pair's channel factors in shared memory (8 KiB).
constexpr int kGroupNormFusedChannels = 1024;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for each of `units` units (pairs or samples) of `elements`
// elements: as many as fill the `resident` blocks the device runs at once
// (one wave, so that the grid can merge after a grid-wide barrier), each at
// least kGroupNormElementsPerBlock elements, with at most
// kGroupNormMaxPartials partials for the g.pairs() pairs in all.
inline int64_t splits_for(const GroupNormGeometry& g, int64_t units, int64_t elements,
                          int64_t resident) {
  const int64_t cap = std::max<int64_t>(1, kGroupNormMaxPartials / std::max<int64_t>(1, g.pairs()));
  const int64_t fill = std::max<int64_t>(1, resident / std::max<int64_t>(1, units));
  return std::max<int64_t>(
      1, std::min({cap, fill, ceil_div(elements, kGroupNormElementsPerBlock)}));
}

// Blocks per (sample, group) of the group-runs walk.
inline int64_t group_splits(const GroupNormGeometry& g, int64_t resident) {
  return splits_for(g, g.pairs(), g.channels_per_group() * g.spatial, resident);
}

// Blocks per sample of the channel-rows walk (each writes one partial per group).
inline int64_t row_splits(const GroupNormGeometry& g, int64_t resident) {
  return splits_for(g, g.batch, g.channels * g.spatial, resident);
}

// Partials either walk writes at most per pair, on any device: the workspace's share.
inline int64_t max_splits(const GroupNormGeometry& g) {
  constexpr int64_t kAnyDevice = INT64_MAX;
  return std::max(group_splits(g, kAnyDevice), row_splits(g, kAnyDevice));
}

// Items [begin, end) of split `split` of `splits` over `items` items.
DIFFCOLL_HOST_DEVICE inline void split_range(int64_t items, int64_t split, int64_t splits,
                                             int64_t* begin, int64_t* end) {
  *begin = items * split / splits;
  *end = items * (split + 1) / splits;
}

// ------------------------------------------------------------ channel rows

struct ChannelRows {
  int vec = 0;       // elements per load; 0: the walk does not apply
  int64_t cols = 0;  // loads per position: C / vec, at most kGroupNormThreads
  int64_t rows = 0;  // positions a block reads at once: kGroupNormThreads / cols
  // Thread t reads column t % cols of positions t / cols, + rows, ... (t < rows * cols).
  DIFFCOLL_HOST_DEVICE int64_t active() const { return rows * cols; }
  // Loads per group and position: a thread's column belongs to group col / vecs_per_group.
  DIFFCOLL_HOST_DEVICE int64_t vecs_per_group(const GroupNormGeometry& g) const {
    return g.channels_per_group() / vec;
  }
};

// Offset of element [n, c, position s] of the input.
DIFFCOLL_HOST_DEVICE inline int64_t input_offset(const GroupNormGeometry& g, int64_t n, int64_t c,
                                                 int64_t s) {
  return n * g.in_n + c * g.in_c + spatial_offset(g, s, g.in_sp_stride);
}

inline bool aligned_to(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}

// The channel-rows walk of `g` for elements of `elem` bytes at `input`: the
// widest load of 16 bytes, 8 bytes or one element that stays within a group
// and is aligned at every position, if a row of loads fits a block.
inline ChannelRows channel_rows(const GroupNormGeometry& g, const void* input, int64_t elem) {
  ChannelRows r;
  if (g.in_c != 1 || g.channels < 2) return r;
  const int64_t cpg = g.channels_per_group();
  for (int64_t bytes : {int64_t{16}, int64_t{8}, elem}) {
    const int64_t vec = bytes / elem;
    if (vec < 1 || cpg % vec != 0 || g.channels / vec > kGroupNormThreads) continue;
    bool ok = aligned_to(input, bytes) && (g.batch == 1 || (g.in_n * elem) % bytes == 0);
    for (int d = 0; d < g.nsp; ++d) ok = ok && (g.in_sp_stride[d] * elem) % bytes == 0;
    if (!ok) continue;
    r.vec = static_cast<int>(vec);
    r.cols = g.channels / vec;
    r.rows = kGroupNormThreads / r.cols;
    return r;
  }
  return r;
}

// -------------------------------------------------------------- group runs

struct GroupRuns {
  enum Kind : int32_t { kOneBlock, kPerChannel, kPerPosition, kSingle } kind;
  int64_t run_len;
  int64_t nruns;
  int vec;  // elements per load
  DIFFCOLL_HOST_DEVICE int64_t loads_per_run() const { return run_len / vec; }
  DIFFCOLL_HOST_DEVICE int64_t loads() const { return nruns * loads_per_run(); }
};

// Offset of element [n, g * cpg, 0...] of the input: where pair n * G + g starts.
DIFFCOLL_HOST_DEVICE inline int64_t pair_base(const GroupNormGeometry& g, int64_t pair) {
  return (pair / g.groups) * g.in_n + (pair % g.groups) * g.channels_per_group() * g.in_c;
}

// Offset, from the pair's base, of the first element of load j.
DIFFCOLL_HOST_DEVICE inline int64_t load_offset(const GroupNormGeometry& g, const GroupRuns& runs,
                                                int64_t j) {
  const int64_t per_run = runs.loads_per_run();
  const int64_t r = runs.nruns == 1 ? 0 : j / per_run;
  const int64_t within = (j - r * per_run) * runs.vec;
  switch (runs.kind) {
    case GroupRuns::kOneBlock:
      return within;
    case GroupRuns::kPerChannel:
      return r * g.in_c + within;
    case GroupRuns::kPerPosition:
      return spatial_offset(g, r, g.in_sp_stride) + within;
    default: {
      const int64_t cl = r / g.spatial;
      return cl * g.in_c + spatial_offset(g, r - cl * g.spatial, g.in_sp_stride);
    }
  }
}

// The runs of `g` for elements of `elem` bytes at `input`.
inline GroupRuns group_runs(const GroupNormGeometry& g, const void* input, int64_t elem) {
  const int64_t cpg = g.channels_per_group();
  const int vec = static_cast<int>(16 / elem);
  GroupRuns r;
  const bool spatial_dense = g.nsp == 0 || (g.nsp == 1 && g.in_sp_stride[0] == 1);
  if (spatial_dense && (cpg == 1 || g.in_c == g.spatial))
    r = {GroupRuns::kOneBlock, cpg * g.spatial, 1, 1};
  else if (spatial_dense)
    r = {GroupRuns::kPerChannel, g.spatial, cpg, 1};
  else if (g.in_c == 1 || cpg == 1)
    r = {GroupRuns::kPerPosition, cpg, g.spatial, 1};
  else
    r = {GroupRuns::kSingle, 1, cpg * g.spatial, 1};
  bool ok = r.kind != GroupRuns::kSingle && r.run_len % vec == 0 && aligned_to(input, 16) &&
            (g.batch == 1 || (g.in_n * elem) % 16 == 0) &&
            (g.groups == 1 || (cpg * g.in_c * elem) % 16 == 0);
  if (r.kind == GroupRuns::kPerChannel) ok = ok && (g.in_c * elem) % 16 == 0;
  if (r.kind == GroupRuns::kPerPosition)
    for (int d = 0; d < g.nsp; ++d) ok = ok && (g.in_sp_stride[d] * elem) % 16 == 0;
  if (ok) r.vec = vec;
  return r;
}

// ------------------------------------------------------------------- apply

// True if input and output are dense with the same positive strides: then
// element p of memory (from the data pointer) has sample (p / n_div) % N and
// channel (p / c_div) % C with the divisors of dense_divisors.
inline bool dense_same_layout(const GroupNormGeometry& g) {
  if (g.in_n != g.out_n || g.in_c != g.out_c) return false;
  for (int d = 0; d < g.nsp; ++d)
    if (g.in_sp_stride[d] != g.out_sp_stride[d] || g.in_sp_stride[d] <= 0) return false;
  if ((g.batch > 1 && g.in_n <= 0) || (g.channels > 1 && g.in_c <= 0)) return false;
  // Dense: the strides, sorted, are the running products of the extents.
  struct Dim {
    int64_t stride, extent;
  } dims[kMaxViewDims + 2];
  int k = 0;
  dims[k++] = {g.in_n, g.batch};
  dims[k++] = {g.in_c, g.channels};
  for (int d = 0; d < g.nsp; ++d) dims[k++] = {g.in_sp_stride[d], g.sp_shape[d]};
  std::sort(dims, dims + k, [](const Dim& a, const Dim& b) { return a.stride < b.stride; });
  int64_t expect = 1;
  for (int i = 0; i < k; ++i) {
    if (dims[i].extent == 1) continue;
    if (dims[i].stride != expect) return false;
    expect *= dims[i].extent;
  }
  return true;
}

// The divisors of the dense apply: the dimension's stride, or, for an extent
// of 1 (the coordinate (p / div) % 1 is 0 whatever the divisor), the dense
// element count: a multiple of C and of every vector that divides C or the
// spatial size, so that a batch of 1 passes the tests of dense_walk and
// row_apply wherever its layout does (a stride of 1 there would fail them).
inline void dense_divisors(const GroupNormGeometry& g, int64_t* n_div, int64_t* c_div) {
  const int64_t any = std::max<int64_t>(1, g.batch * g.channels * g.spatial);
  *n_div = g.batch > 1 ? g.in_n : any;
  *c_div = g.channels > 1 ? g.in_c : any;
}

// How the dense apply finds the (sample, channel) of element k of the
// vector of `vec` elements at memory position p (a multiple of vec):
//   kChannelOuter  one sample and channel for the whole vector (NCHW-like:
//                  the channel's stride and the sample's are multiples of vec)
//   kChannelInner  one sample, channels c, c + 1, ... (channels-last: the
//                  channel's stride is 1, vec divides C and the sample's stride)
//   kPerElement    divisions for every element
enum class DenseWalk : int32_t { kChannelOuter, kChannelInner, kPerElement };

inline DenseWalk dense_walk(const GroupNormGeometry& g, int vec) {
  int64_t n_div, c_div;
  dense_divisors(g, &n_div, &c_div);
  const bool n_fixed = g.batch == 1 || n_div % vec == 0;
  if (vec > 1 && n_fixed && c_div % vec == 0) return DenseWalk::kChannelOuter;
  if (vec > 1 && n_fixed && c_div == 1 && g.channels % vec == 0) return DenseWalk::kChannelInner;
  return DenseWalk::kPerElement;
}

// Sample and channel of element p + k (p a multiple of vec) under walk W.
template <DenseWalk W, typename I>
DIFFCOLL_HOST_DEVICE inline void dense_sample_channel(I p, int k, I n_div, I c_div, I N, I C,
                                                      I* n, I* c) {
  const I q = W == DenseWalk::kPerElement ? p + static_cast<I>(k) : p;
  *n = (q / n_div) % N;
  *c = (q / c_div) % C;
  if (W == DenseWalk::kChannelInner) *c += static_cast<I>(k);
}

// The channel-rows apply: a dense tensor whose channels have stride 1
// (channels-last) is, in memory order, rows of C channels (row = p / C).
// Thread t of a block keeps to column t % cols (channels col * vec ..
// + vec - 1), so that it loads its channels' factors once per sample rather
// than for every element, and takes rows block * rows + t / cols, then
// every grid * rows rows.
struct RowApply {
  int64_t cols = 0;        // vectors per row: C / vec, at most kGroupNormThreads; 0: n/a
  int64_t rows = 0;        // rows a block covers at once: kGroupNormThreads / cols
  int64_t sample_div = 1;  // the sample of row r is (r / sample_div) % N
};

inline RowApply row_apply(const GroupNormGeometry& g, int vec) {
  RowApply r;
  int64_t n_div, c_div;
  dense_divisors(g, &n_div, &c_div);
  if (vec < 2 || c_div != 1 || g.channels % vec != 0 || g.channels / vec > kGroupNormThreads ||
      n_div % g.channels != 0)
    return r;
  r.cols = g.channels / vec;
  r.rows = kGroupNormThreads / r.cols;
  r.sample_div = n_div / g.channels;
  return r;
}

// ------------------------------------------------------- one-kernel GroupNorm

// A rank alone whose tensor allows it runs the whole GroupNorm in the
// moments kernel: after a grid-wide barrier the statistics are merged (by
// each block for its own pair, or by the grid into the channel table), and
// each thread normalises the very elements it read (its own loads, while
// they are in cache):
//   kRuns  NCHW-like: group runs (whole groups or one run per channel) of
//          16-byte vectors, each within one channel (run_channel), at most
//          kGroupNormFusedChannels channels per group
//   kRows  channels-last: channel rows of 16-byte loads
//   kNone  two kernels or more
enum class FusedWalk : int32_t { kNone, kRuns, kRows };

// The one-kernel walk of `g` for elements of `elem` bytes, `input` and
// `output` the data pointers: dense, in place or alike, 16-byte aligned, and
// 32-bit element indices (the kernels' index math).
inline FusedWalk fused_walk(const GroupNormGeometry& g, const void* input, const void* output,
                            int64_t elem) {
  const int vec = static_cast<int>(16 / elem);
  const int64_t numel = g.batch * g.channels * g.spatial;
  if (numel == 0 || numel >= (int64_t{1} << 31) || !dense_same_layout(g) ||
      !aligned_to(input, 16) || !aligned_to(output, 16))
    return FusedWalk::kNone;
  const ChannelRows rows = channel_rows(g, input, elem);
  switch (dense_walk(g, vec)) {
    case DenseWalk::kChannelOuter: {
      const GroupRuns runs = group_runs(g, input, elem);
      const bool by_channel =
          runs.kind == GroupRuns::kOneBlock || runs.kind == GroupRuns::kPerChannel;
      const bool fits = g.channels_per_group() <= kGroupNormFusedChannels;
      const bool ok = rows.vec == 0 && runs.vec == vec && by_channel && fits;
      return ok ? FusedWalk::kRuns : FusedWalk::kNone;
    }
    case DenseWalk::kChannelInner:
      return rows.vec == vec ? FusedWalk::kRows : FusedWalk::kNone;
    default:
      return FusedWalk::kNone;
  }
}

// The channel, within its group, of every element of load j of a pair's
// runs under FusedWalk::kRuns (where a vector never straddles two channels:
// the channel stride is a multiple of the vector). I: the index type.
template <typename I>
DIFFCOLL_HOST_DEVICE inline I run_channel(const GroupNormGeometry& g, const GroupRuns& runs, I j) {
  if (runs.kind == GroupRuns::kPerChannel) return j / static_cast<I>(runs.loads_per_run());
  if (g.channels_per_group() == 1) return 0;
  return j * static_cast<I>(runs.vec) / static_cast<I>(g.in_c);  // kOneBlock: one run, in_c == S
}

// ------------------------------------------ GroupNorm held in shared memory

// A rank alone's GroupNorm on a FusedWalk tensor can read it once: a thread
// block cluster of up to kHeldMaxCluster blocks takes each unit, one
// (sample, group) pair or, for channel rows, up to kHeldMaxUnitGroups
// groups side by side, copies it into its blocks' shared memory, merges
// each group's statistics through distributed shared memory and normalises
// what it holds. No grid-wide barrier, no second read. The unit's loads
// (16-byte vectors) are
//   kRuns  the whole group as one run (contiguous NCHW), split evenly over
//          the cluster's blocks;
//   kRows  channels-last over one merged spatial dimension: at each
//          position the unit's channels, per_position loads, the positions
//          split evenly over the cluster's blocks. per_position divides the
//          block's threads, so a thread keeps to the same channels, hence
//          to one group.
constexpr int kHeldMaxCluster = 8;     // the portable cluster size
// Groups side by side (held_side_by_side): two, as measured; more would
// not rank first (held_shape_order) for any activation on an H200's figures.
constexpr int kHeldMaxUnitGroups = 2;

struct HeldPlan {
  int cluster = 0;           // blocks per unit (held_in_clusters)
  int unit_groups = 1;       // groups a unit holds side by side (kRows; kRuns: 1)
  int64_t units = 0;         // (sample, unit_groups groups) units
  int64_t per_position = 0;  // kRows: loads per position; kRuns: 0
  int64_t loads = 0;         // loads per unit
  int64_t slots = 0;         // loads a block holds at most
  // Where load j of unit u starts, in elements from the input's data:
  // (u / sample_units) * sample_stride + (u % sample_units) * group_stride
  // + kRuns: j * vec; kRows: (j % per_position) * vec + (j / per_position) * position_stride.
  // sample_units: units a sample.
  int64_t vec = 1, sample_units = 1, sample_stride = 0, group_stride = 0, position_stride = 0;
  DIFFCOLL_HOST_DEVICE int64_t blocks() const { return units * cluster; }
};

// Loads [begin, end) of its unit that block `rank` of a cluster holds.
DIFFCOLL_HOST_DEVICE inline void held_share(const HeldPlan& p, int64_t spatial, int64_t rank,
                                            int64_t* begin, int64_t* end) {
  if (p.per_position == 0) return split_range(p.loads, rank, p.cluster, begin, end);
  split_range(spatial, rank, p.cluster, begin, end);
  *begin *= p.per_position;
  *end *= p.per_position;
}

// Offset in the input of load j of unit `unit`, in the index type I.
template <typename I>
DIFFCOLL_HOST_DEVICE inline I held_offset(const HeldPlan& p, I unit, I j) {
  const I units = static_cast<I>(p.sample_units), vec = static_cast<I>(p.vec);
  const I base = unit / units * static_cast<I>(p.sample_stride) +
                 unit % units * static_cast<I>(p.group_stride);
  if (p.per_position == 0) return base + j * vec;
  const I per_position = static_cast<I>(p.per_position);
  return base + j % per_position * vec + j / per_position * static_cast<I>(p.position_stride);
}

// Elements of the input between load j of a unit and load j + kThreads (a
// thread's next).
inline int64_t held_step(const HeldPlan& p) {
  if (p.per_position == 0) return kGroupNormThreads * p.vec;
  return kGroupNormThreads / p.per_position * p.position_stride;
}

// How `walk` of `g`, elements of `elem` bytes, is held, one group a unit,
// but for the shape (held_shape_order picks it; cluster and slots 0). loads
// 0 where the walk is not a linear one (runs of one whole group, channel
// rows over one merged spatial dimension).
inline HeldPlan held_plan(const GroupNormGeometry& g, FusedWalk walk, const void* input,
                          int64_t elem) {
  HeldPlan p;
  const int64_t vec = 16 / elem, cpg = g.channels_per_group();
  if (walk == FusedWalk::kRuns) {
    const GroupRuns runs = group_runs(g, input, elem);
    if (runs.kind != GroupRuns::kOneBlock) return p;
    p.loads = runs.loads();
    p.group_stride = cpg * g.in_c;
  } else if (walk == FusedWalk::kRows && g.nsp <= 1) {
    const int64_t per_position = cpg / vec;
    if (kGroupNormThreads % per_position != 0) return p;
    p.per_position = per_position;
    p.loads = g.spatial * per_position;
    p.group_stride = cpg;
    p.position_stride = g.nsp == 0 ? 0 : g.in_sp_stride[0];
  } else {
    return p;
  }
  p.units = g.pairs();
  p.vec = vec;
  p.sample_units = g.groups;
  p.sample_stride = g.in_n;
  return p;
}

// Plan `p` of channel rows (one group a unit) with `k` groups side by side
// in each unit, whose rows are then k times wider: where a pair's row is
// less than a 128-byte line, each line of the tensor is read by fewer
// clusters, k times more of it at a time. loads 0 where k does not divide
// the groups, or a row of the unit does not divide a warp (each warp holds
// whole rows, so that the block's sums per group are lane trees).
inline HeldPlan held_side_by_side(HeldPlan p, int k) {
  if (k == 1) return p;
  if (p.per_position == 0 || p.sample_units % k != 0 || 32 % (p.per_position * k) != 0) {
    p.loads = 0;
    return p;
  }
  p.unit_groups = k;
  p.units /= k;
  p.sample_units /= k;
  p.group_stride *= k;
  p.per_position *= k;
  p.loads *= k;
  return p;
}

// The plan `p` held in clusters of `cluster` blocks: the loads a block then
// holds at most (the largest share), set in p.slots with p.cluster.
inline void held_in_clusters(HeldPlan* p, int64_t spatial, int cluster) {
  p->cluster = cluster;
  p->slots = p->per_position == 0 ? ceil_div(p->loads, int64_t{cluster})
                                  : ceil_div(spatial, int64_t{cluster}) * p->per_position;
}

// How a plan is held: groups side by side and blocks a cluster.
struct HeldShape {
  int unit_groups = 1;
  int cluster = 0;
};
constexpr int kHeldShapes = 2 * kHeldMaxCluster;  // side by side 1 and 2

// Plan `p` (held_plan's) held as `shape` (loads 0 where it cannot be).
inline HeldPlan held_shaped(const HeldPlan& p, int64_t spatial, HeldShape shape) {
  HeldPlan q = held_side_by_side(p, shape.unit_groups);
  if (q.loads > 0) held_in_clusters(&q, spatial, shape.cluster);
  return q;
}

// An SM as the held kernel's blocks fill it (the device's figures).
struct HeldSm {
  int64_t block_bytes = 0;  // shared memory a block's loads may take
  int64_t sm_bytes = 0;     // shared memory of an SM
  int64_t per_block = 0;    // shared memory an SM gives a block besides its loads
  int64_t max_blocks = 0;   // blocks an SM runs at once by threads and registers
  int64_t sms = 1;          // SMs of the device
};

// The shapes, up to kHeldMaxCluster blocks a cluster, whose blocks' shares
// of plan `p` fit sm.block_bytes, best first, in `order`; their count. The
// call lasts as long as its busiest SM, and the cluster scheduler places
// blocks where it likes, up to as many an SM as fit: so a shape is as good
// as the bytes an SM may be given, blocks that fit an SM times a block's
// share. Among equals, the fewer bytes an SM gets with the blocks spread
// evenly over every SM; then more groups side by side (wider rows), then
// the larger cluster (over more SMs). On an H200 a [1,512,90,160] pair in
// clusters of 8 fits three blocks an SM (172.8 KB), in clusters of 6 only
// two (153.6 KB): 14.1 -> 13.6 us contiguous, 17.4 -> 16.7 us
// channels-last; channels-last two groups side by side in clusters of 6
// (one block an SM, 153.6 KB) then took 15.2 us against 15.7 one group a
// cluster (docs/PERFORMANCE.md). The launch takes the first shape whose
// clusters all fit on the device at once.
inline int held_shape_order(const HeldPlan& p, int64_t spatial, const HeldSm& sm,
                            HeldShape (&order)[kHeldShapes]) {
  struct Ranked {
    HeldShape shape;
    int64_t busiest;  // bytes an SM may be given
    int64_t spread;   // bytes an SM is given, the blocks spread evenly
  } ranked[kHeldShapes];
  int count = 0;
  for (int k = kHeldMaxUnitGroups; k >= 1; k /= 2)
    for (int cluster = kHeldMaxCluster; cluster >= 1 && p.loads > 0; --cluster) {
      const HeldShape shape{k, cluster};
      const HeldPlan q = held_shaped(p, spatial, shape);
      const int64_t share = q.slots * 16;
      if (q.loads == 0 || share > sm.block_bytes) continue;
      const int64_t fit = std::min(sm.max_blocks, sm.sm_bytes / (share + sm.per_block));
      ranked[count++] = {shape, fit * share, ceil_div(q.blocks(), sm.sms) * share};
    }
  // Wider rows, then larger clusters, come first, and a stable sort keeps
  // them first among equals.
  std::stable_sort(ranked, ranked + count, [](const Ranked& a, const Ranked& b) {
    return a.busiest != b.busiest ? a.busiest < b.busiest : a.spread < b.spread;
  });
  for (int i = 0; i < count; ++i) order[i] = ranked[i].shape;
  return count;
}

}  // namespace ops
}  // namespace diffcoll
