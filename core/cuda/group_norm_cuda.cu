// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The CUDA GroupNormMath: stream-ordered kernels on the caller's stream, no
// host synchronisation, no allocation (partials and tables live in the
// workspace the caller hands in), so the whole GroupNorm is CUDA-graph
// capturable.
//
//  moments   channel_rows_kernel (channels at stride 1) or group_runs_kernel
//            (anything else): each block reduces its share of the tensor to
//            (count, mean, M2) per (sample, group) it touches. A thread
//            accumulates shifted sums (x - x0, (x - x0)^2: no cancellation
//            for activations with an offset) over 16-byte loads, four in
//            flight, x0 one element of the group shared by all the block's
//            threads on it (the first of the block's share), so the block
//            adds its threads' sums in a fixed tree, no division, and turns
//            them into moments once (in double).
//            The grid is one wave of resident blocks where the pairs allow.
//  merge     in merge_kernel after the moments kernel (in the one-kernel
//            GroupNorm below, after a grid-wide barrier), one warp per
//            (sample, group) merges the blocks' partials: moved to a common
//            reference (partial 0's mean) in double and added in a fixed
//            tree (lanes in order, then shuffles), one division at the end:
//            this rank's record. A rank alone (normalise_alone) writes the
//            channel table here.
//  table     table_kernel, one thread per (sample, channel), merges the
//            ranks' records in rank order and writes (mean, rstd *
//            weight[c]) and bias[c], before the apply.
//  apply     dense tensors with equal input and output strides (in place,
//            contiguous, channels-last, any permutation) are walked in
//            memory order with 16-byte vectors where aligned, four in flight
//            per thread: channels-last as rows of C channels, each thread
//            on fixed channels with their factors in registers; others with
//            the (sample, channel) of a vector found once (NCHW-like) or per
//            element. Other layouts element by element through the strides.
//            One wave of resident blocks, striding over the tensor.
// A rank alone whose tensor is dense NCHW-like or channels-last, aligned,
// runs all of it in one kernel: held in shared memory by thread block
// clusters where the layout and the device allow (group_norm_held.cu: one
// read, one write), else in the moments kernel (fused_walk): the moments, a
// grid-wide barrier, then NCHW-like each block merges its own pair's
// partials (fused_runs_end; its channels' weight and bias read into shared
// memory before the barrier), channels-last the grid merges the table and
// waits at a second barrier; then every thread normalises the very loads it
// read for the moments, the last read first (own_runs_apply,
// own_rows_apply): one kernel, no launch gap, and the second read is of
// what the same SM just read, likely still in L1 or L2 even where the
// tensor outgrows L2.
// Kernels launched normally ask for programmatic dependent launch
// (dependent_launch.cuh): each waits for the kernel before it first thing,
// so its launch overlaps that kernel's tail. A cooperative launch gains
// nothing from asking: on an H200 it starts some 3 us after the kernel
// before it ends either way, which is why the moments alone (local_moments)
// and the apply of several ranks' records (normalise) are two plain kernels
// each rather than one with a grid-wide barrier.
// Every merge has a fixed order, so the statistics are deterministic and the
// same on every rank; the table holds exactly the factors the host path
// computes, (x - mean) * (rstd * w) + b.
//
// How the tensors are walked: group_norm_layout.h, checked on the host by
// tests/group_norm/group_norm_layout_test.cc.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "../dtype.h"
#include "../ops/group_norm_math.h"
#include "cuda_error.h"
#include "dependent_launch.cuh"
#include "float_vectors.cuh"
#include "group_norm_device.cuh"
#include "group_norm_held.h"
#include "group_norm_layout.h"

namespace diffcoll {
namespace ops {
namespace {

using elementwise::from_float;
using elementwise::Pack;
using elementwise::to_float;

constexpr int kThreads = kGroupNormThreads;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = kGroupNormUnroll;
// Partials a lane of merge_pair has in flight: a channel-rows walk leaves
// hundreds per pair, and the grid's merge holds nothing else in registers.
constexpr int kMergeUnroll = 8;
// Resident blocks per SM asked of the register allocator (at most 64 or 85
// registers a thread): four for the dense apply; three for the
// per-element and channel-rows applies, with more index math; the moments
// kernels: moments_blocks_per_sm.
constexpr int kApplyBlocksPerSm = 4;
constexpr int kWideApplyBlocksPerSm = 3;

// A moments thread keeps three floats of sums beside its four 16-byte loads
// in flight: four blocks per SM without spills, but for those that hold
// more (the fused channel-rows kernel its columns' factors, group runs on
// 4-byte elements more index registers per element): three.
template <typename T, bool kFused, bool kRows>
constexpr int moments_blocks_per_sm() {
  return (kRows && kFused) || (!kRows && sizeof(T) == 4) ? 3 : 4;
}
constexpr size_t kAlign = 256;

size_t room(size_t bytes) { return (bytes + kAlign - 1) & ~(kAlign - 1); }

// Per (sample, channel) the factors of y = (x - mean) * scale + bias[c]:
// table[n * C + c] = (mean, rstd * weight[c]); bias[c].
struct ChannelTable {
  float2* factors = nullptr;
  float* bias = nullptr;
};

__device__ inline void write_channel(int64_t channels, const GroupNormAffine& a, GroupStats s,
                                     int64_t n, int64_t c, ChannelTable table) {
  table.factors[n * channels + c] = make_float2(s.mean, channel_scale(a, s, c));
  if (n == 0) table.bias[c] = channel_bias(a, c);
}

// The ranks' records a table is merged from (normalise); records null: none.
struct RecordArgs {
  const GroupMoments* records = nullptr;  // records[r * pairs + pair]
  int ranks = 0;
  int64_t groups = 1;
  GroupNormAffine affine;
  float eps = 0;
};

// Entry nc = n * C + c of the table: the ranks' records of its pair merged
// in rank order.
__device__ inline void table_entry(int64_t batch, int64_t channels, const RecordArgs& r,
                                   ChannelTable table, int64_t nc) {
  const int64_t n = nc / channels, c = nc % channels, pairs = batch * r.groups;
  const int64_t pair = n * r.groups + c / (channels / r.groups);
  GroupMoments m = r.records[pair];
  for (int k = 1; k < r.ranks; ++k) m = combine_moments(m, r.records[k * pairs + pair]);
  write_channel(channels, r.affine, stats_of(m, r.eps), n, c, table);
}

// Where the merge of the blocks' partials goes: out[pair] (this rank's
// records) and, with a table (a rank alone), the pair's channels.
struct MergeArgs {
  GroupMoments* out = nullptr;
  GroupNormAffine affine;
  float eps = 0;
  ChannelTable table;
};

// The partials of `pair` merged by one warp, every lane getting the result:
// moved to partial 0's mean as CentredSums, lane l adds partials l, l + 32,
// ... in order (U loads in flight), then a shuffle tree over the lanes, and
// one division.
template <int U>
__device__ GroupMoments merged_partials(const GroupMoments* partials, int64_t splits,
                                        int64_t pair) {
  const int lane = threadIdx.x % 32;
  const GroupMoments* mine = partials + pair * splits;
  const float ref = mine[0].mean;
  CentredSums c;
  for (int64_t k0 = lane; k0 < splits; k0 += 32 * U) {
    GroupMoments p[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t k = k0 + 32 * u;
      p[u] = k < splits ? mine[k] : GroupMoments{0, 0.f, 0.f};  // count 0 adds nothing
    }
#pragma unroll
    for (int u = 0; u < U; ++u) c.add(p[u], ref);
  }
  for (int delta = 16; delta > 0; delta /= 2) {
    c.n += __shfl_down_sync(0xffffffffu, static_cast<long long>(c.n), delta);
    c.s += __shfl_down_sync(0xffffffffu, c.s, delta);
    c.ss += __shfl_down_sync(0xffffffffu, c.ss, delta);
  }
  // Every lane takes lane 0's sums (the others' trees are partial).
  c.n = __shfl_sync(0xffffffffu, static_cast<long long>(c.n), 0);
  c.s = __shfl_sync(0xffffffffu, c.s, 0);
  c.ss = __shfl_sync(0xffffffffu, c.ss, 0);
  return c.moments(ref);
}

// One warp merges the partials of `pair` into this rank's record and, with
// a table, the pair's channels.
__device__ void merge_pair(const GroupNormGeometry& g, const GroupMoments* partials,
                           int64_t splits, int64_t pair, const MergeArgs& a) {
  const int lane = threadIdx.x % 32;
  const GroupMoments m = merged_partials<kMergeUnroll>(partials, splits, pair);
  if (lane == 0) a.out[pair] = m;
  if (!a.table.factors) return;
  const GroupStats s = stats_of(m, a.eps);
  const int64_t n = pair / g.groups, cpg = g.channels_per_group();
  for (int64_t k = lane; k < cpg; k += 32)
    write_channel(g.channels, a.affine, s, n, (pair % g.groups) * cpg + k, a.table);
}

// The merge of the one-kernel GroupNorm on channel rows (launched
// cooperatively): once every block's partials are written, warp w of the
// grid merges pairs w, w + warps, ...
__device__ void merge_in_kernel(const GroupNormGeometry& g, const GroupMoments* partials,
                                int64_t splits, const MergeArgs& a) {
  cooperative_groups::this_grid().sync();  // orders the partials' writes before the reads
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t pair = blockIdx.x * static_cast<int64_t>(kWarps) + threadIdx.x / 32;
       pair < g.pairs(); pair += warps)  // warp-uniform
    merge_pair(g, partials, splits, pair, a);
}

// -------------------------------------------------------------------- apply

struct DenseArgs {
  const void* in;
  void* out;
  int64_t numel, n_div, c_div, batch, channels;
  ChannelTable table;
};

template <typename T>
__device__ __forceinline__ T normalised(T x, const float2* factors, const float* bias, int64_t nc,
                                        int64_t c) {
  const float2 f = factors[nc];
  return from_float<T>((to_float(x) - f.x) * f.y + bias[c]);
}

// Vectors of V elements in memory order, kUnroll in flight per thread, then
// (block 0) the elements after the last whole vector; this block `block` of
// `blocks`. Index math in I: 32-bit where the tensor allows (far cheaper
// divisions).
template <typename T, int V, DenseWalk W, typename I>
__device__ void dense_apply(const DenseArgs& a, unsigned block, unsigned blocks) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  const I numel = static_cast<I>(a.numel), n_div = static_cast<I>(a.n_div);
  const I c_div = static_cast<I>(a.c_div), N = static_cast<I>(a.batch);
  const I C = static_cast<I>(a.channels);
  const float2* factors = a.table.factors;
  const float* bias = a.table.bias;
  const I vectors = numel / V;
  const I step = static_cast<I>(blocks) * kThreads * kUnroll;
  for (I v0 = static_cast<I>(block) * kThreads * kUnroll + threadIdx.x; v0 < vectors;
       v0 += step) {
    Pack<T, V> x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const I v = v0 + static_cast<I>(u) * kThreads;
      if (v < vectors) x[u] = elementwise::load_pack<T, V>(in + v * V);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const I v = v0 + static_cast<I>(u) * kThreads;
      if (v >= vectors) continue;
      I n, c;  // of element 0, and (but per element) of the whole vector
      dense_sample_channel<W, I>(v * V, 0, n_div, c_div, N, C, &n, &c);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        I nk = n, ck = c;
        if (W == DenseWalk::kPerElement && k > 0)
          dense_sample_channel<W, I>(v * V, k, n_div, c_div, N, C, &nk, &ck);
        if (W == DenseWalk::kChannelInner) ck += static_cast<I>(k);
        x[u].set(k, normalised<T>(x[u].get(k), factors, bias, nk * C + ck, ck));
      }
      elementwise::store_pack<T, V>(out + v * V, x[u]);
    }
  }
  if (block != 0) return;
  for (I p = vectors * V + threadIdx.x; p < numel; p += kThreads) {
    I n, c;
    dense_sample_channel<DenseWalk::kPerElement, I>(p, 0, n_div, c_div, N, C, &n, &c);
    out[p] = normalised<T>(in[p], factors, bias, n * C + c, c);
  }
}

template <typename T, int V, DenseWalk W, typename I>
__global__ void __launch_bounds__(kThreads, W == DenseWalk::kPerElement ? kWideApplyBlocksPerSm
                                                                   : kApplyBlocksPerSm)
    dense_apply_kernel(DenseArgs a) {
  wait_for_previous_kernel();
  dense_apply<T, V, W, I>(a, blockIdx.x, gridDim.x);
}

// Dense channels-last: rows of C channels, thread t on channels
// (t % cols) * V .. + V - 1 of every blocks * rows-th row (RowApply), its
// channels' factors in registers, reloaded when the sample changes; kUnroll
// rows in flight; this block `block` of `blocks`.
template <typename T, int V, typename I>
__device__ void row_apply(const DenseArgs& a, const RowApply& ra, unsigned block,
                          unsigned blocks) {
  const int t = threadIdx.x;
  if (t >= ra.cols * ra.rows) return;
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  const I C = static_cast<I>(a.channels), N = static_cast<I>(a.batch);
  const I rows = static_cast<I>(a.numel) / C, sample_div = static_cast<I>(ra.sample_div);
  const I c0 = static_cast<I>(t % ra.cols) * V;
  const I step = static_cast<I>(blocks) * static_cast<I>(ra.rows);
  float mean[V], scale[V], bias[V];
#pragma unroll
  for (int k = 0; k < V; ++k) bias[k] = a.table.bias[c0 + k];
  I n_loaded = ~I{0};  // no sample yet
  for (I row0 = static_cast<I>(block) * static_cast<I>(ra.rows) + t / ra.cols; row0 < rows;
       row0 += step * kUnroll) {
    Pack<T, V> x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const I row = row0 + static_cast<I>(u) * step;
      if (row < rows) x[u] = elementwise::load_pack<T, V>(in + row * C + c0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const I row = row0 + static_cast<I>(u) * step;
      if (row >= rows) continue;
      const I n = N == 1 ? 0 : (row / sample_div) % N;
      if (n != n_loaded) {
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const float2 f = a.table.factors[n * C + c0 + k];
          mean[k] = f.x;
          scale[k] = f.y;
        }
        n_loaded = n;
      }
#pragma unroll
      for (int k = 0; k < V; ++k)
        x[u].set(k, from_float<T>((to_float(x[u].get(k)) - mean[k]) * scale[k] + bias[k]));
      elementwise::store_pack<T, V>(out + row * C + c0, x[u]);
    }
  }
}

template <typename T, int V, typename I>
__global__ void __launch_bounds__(kThreads, kWideApplyBlocksPerSm)
    row_apply_kernel(DenseArgs a, RowApply ra) {
  wait_for_previous_kernel();
  row_apply<T, V, I>(a, ra, blockIdx.x, gridDim.x);
}

// ------------------------------------------------------------------ moments

// The end of a fused channel_rows_kernel's moments (launched cooperatively):
// the grid's merge, then a second grid-wide barrier after which the channel
// table is whole and the block may normalise its own elements.
__device__ void fused_rows_merge(const GroupNormGeometry& g, const GroupMoments* partials,
                                 int64_t splits, const MergeArgs& merge) {
  merge_in_kernel(g, partials, splits, merge);
  cooperative_groups::this_grid().sync();  // the table written
}

// The affine parameters of a pair's channels, in shared memory
// (FusedWalk::kRuns: at most kGroupNormFusedChannels channels per group).
struct PairAffine {
  float weight[kGroupNormFusedChannels];
  float bias[kGroupNormFusedChannels];
};

// The fused apply of group_runs_kernel: the thread normalises the loads
// j0, j0 + kThreads, ... < end of pair `pair` it read for the moments, the
// last read first (the likeliest still in cache), with the pair's
// statistics and the affine parameters of the load's channel (run_channel),
// scale = rstd * weight as the table's. Output strides are the input's
// (FusedWalk::kRuns), so base + offset addresses both.
template <typename T, int V>
__device__ void own_runs_apply(const GroupNormGeometry& g, const GroupRuns& runs, const T* in,
                               T* out, GroupStats stats, const PairAffine& f, int64_t pair,
                               int64_t j0, int64_t end) {
  if (j0 >= end) return;
  const int64_t base = pair_base(g, pair);
  const int64_t last = j0 + (end - 1 - j0) / kThreads * kThreads;
  for (int64_t j1 = last; j1 >= j0; j1 -= kThreads * kUnroll) {
    Pack<T, V> x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = j1 - u * kThreads;
      if (j >= j0) x[u] = elementwise::load_pack<T, V>(in + base + load_offset(g, runs, j));
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = j1 - u * kThreads;
      if (j < j0) continue;
      // 32-bit: the fused walk's tensors have fewer than 2^31 elements.
      const uint32_t c = run_channel<uint32_t>(g, runs, static_cast<uint32_t>(j));
      const float scale = stats.rstd * f.weight[c], bias = f.bias[c];
#pragma unroll
      for (int k = 0; k < V; ++k)
        x[u].set(k, from_float<T>((to_float(x[u].get(k)) - stats.mean) * scale + bias));
      elementwise::store_pack<T, V>(out + base + load_offset(g, runs, j), x[u]);
    }
  }
}

// The end of a fused group_runs_kernel: its block needs the statistics of
// its own pair alone, so it reads its channels' affine parameters into
// shared memory (while other blocks still read), and after one grid-wide
// barrier warp 0 merges the pair's partials itself (every block of the pair
// the same partials in the same order: the same bits), split 0 writes the
// record, and the block normalises its loads; no table, no second barrier.
template <typename T, int V>
__device__ void fused_runs_end(const GroupNormGeometry& g, const GroupRuns& runs, int64_t splits,
                               const T* input, T* output, const GroupMoments* partials,
                               const MergeArgs& merge, int64_t pair, int64_t split, int64_t j0,
                               int64_t end) {
  __shared__ GroupStats stats;
  __shared__ PairAffine affine;
  const int64_t cpg = g.channels_per_group(), c0 = (pair % g.groups) * cpg;
  for (int64_t k = threadIdx.x; k < cpg; k += kThreads) {
    affine.weight[k] = channel_weight(merge.affine, c0 + k);
    affine.bias[k] = channel_bias(merge.affine, c0 + k);
  }
  cooperative_groups::this_grid().sync();  // every partial written
  if (threadIdx.x < 32) {
    // A fused block holds its loads' bookkeeping: kUnroll, no spills.
    const GroupMoments m = merged_partials<kUnroll>(partials, splits, pair);
    if (threadIdx.x == 0) {
      stats = stats_of(m, merge.eps);
      if (split == 0) merge.out[pair] = m;
    }
  }
  __syncthreads();  // stats (and the block's affine) written
  own_runs_apply<T, V>(g, runs, input, output, stats, affine, pair, j0, end);
}

// Block b = pair * splits + split reduces split `split` of the pair's loads
// to one partial; fused, it then normalises them.
template <typename T, int V, bool kFused = false>
__global__ void __launch_bounds__(kThreads, (moments_blocks_per_sm<T, kFused, false>()))
    group_runs_kernel(GroupNormGeometry g, GroupRuns runs, int64_t splits, const T* input,
                      GroupMoments* partials, MergeArgs merge, T* output) {
  wait_for_previous_kernel();
  const int64_t pair = blockIdx.x / splits, split = blockIdx.x % splits;
  const T* base = input + pair_base(g, pair);
  int64_t begin, end;
  split_range(runs.loads(), split, splits, &begin, &end);
  // One shift for the block, the split's first element: its loads are in
  // flight with the first vectors'.
  ShiftedSums acc;
  if (begin < end) acc.shift = to_float(base[load_offset(g, runs, begin)]);
  for (int64_t j0 = begin + threadIdx.x; j0 < end; j0 += kThreads * kUnroll) {
    Pack<T, V> v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = j0 + u * kThreads;
      if (j < end) v[u] = elementwise::load_pack<T, V>(base + load_offset(g, runs, j));
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (j0 + u * kThreads < end) {
#pragma unroll
        for (int k = 0; k < V; ++k) acc.add(to_float(v[u].get(k)));
      }
  }
  const float2 sums = block_sums(make_float2(acc.s, acc.ss));
  if (threadIdx.x == 0)
    partials[pair * splits + split] = moments_of_sums((end - begin) * V, acc.shift, sums.x, sums.y);
  if constexpr (kFused)
    fused_runs_end<T, V>(g, runs, splits, input, output, partials, merge, pair, split,
                         begin + threadIdx.x, end);
}

// The fused apply of channel_rows_kernel: the thread normalises the
// positions first, first + rows.rows, ... < end of sample n it read, in
// column `col` (channels col * V .. + V - 1, their factors in registers),
// the last read first. Output strides are the input's (FusedWalk::kRows).
template <typename T, int V>
__device__ void own_rows_apply(const GroupNormGeometry& g, const ChannelRows& rows, const T* in,
                               T* out, const ChannelTable& table, int64_t n, int64_t col,
                               int64_t first, int64_t end) {
  if (first >= end) return;
  const int64_t base = n * g.in_n + col * V;
  // A load's channels are of one group (V divides the channels per group):
  // one mean.
  const float mean = table.factors[n * g.channels + col * V].x;
  float scale[V], bias[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    scale[k] = table.factors[n * g.channels + col * V + k].y;
    bias[k] = table.bias[col * V + k];
  }
  const int64_t step = rows.rows, last = first + (end - 1 - first) / step * step;
  for (int64_t s1 = last; s1 >= first; s1 -= step * kUnroll) {
    Pack<T, V> x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t s = s1 - u * step;
      if (s >= first)
        x[u] = elementwise::load_pack<T, V>(in + base + spatial_offset(g, s, g.in_sp_stride));
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t s = s1 - u * step;
      if (s < first) continue;
#pragma unroll
      for (int k = 0; k < V; ++k)
        x[u].set(k, from_float<T>((to_float(x[u].get(k)) - mean) * scale[k] + bias[k]));
      elementwise::store_pack<T, V>(out + base + spatial_offset(g, s, g.in_sp_stride), x[u]);
    }
  }
}

// Block b = n * splits + split reduces positions split_range(S, split) of
// sample n, whole rows of C channels; thread t keeps to column t % cols.
// The block then adds, per group, its threads' sums (all about the group's
// one shift; position rows, then the group's columns) in a fixed segmented
// tree: `lanes` lanes per group, a power of two, each adding entries lane,
// lane + lanes, ... in order, then a shuffle tree within the lanes of the
// group; one partial per group. Fused, the threads then normalise the
// positions they read.
template <typename T, int V, bool kFused = false>
__global__ void __launch_bounds__(kThreads, (moments_blocks_per_sm<T, kFused, true>()))
    channel_rows_kernel(GroupNormGeometry g, ChannelRows rows, int64_t splits, const T* input,
                        GroupMoments* partials, MergeArgs merge, T* output) {
  __shared__ float2 thread_sums[kThreads];
  __shared__ float group_shift[kThreads];  // groups <= cols <= kThreads
  wait_for_previous_kernel();
  const int64_t n = blockIdx.x / splits, split = blockIdx.x % splits;
  int64_t begin, end;
  split_range(g.spatial, split, splits, &begin, &end);
  const int t = threadIdx.x;
  const bool active = t < rows.active();
  const int64_t col = t % rows.cols, first = begin + t / rows.cols;
  const T* base = input + n * g.in_n + col * V;
  // One shift per group, shared by its columns: the group's first channel
  // (first column) at the split's first position; row 0 of that column
  // tells the block.
  const int per_group = static_cast<int>(rows.vecs_per_group(g));
  const int col_in_group = static_cast<int>(col) % per_group;
  ShiftedSums acc;
  if (active && begin < end)
    acc.shift = to_float(base[spatial_offset(g, begin, g.in_sp_stride) - col_in_group * V]);
  if (t < rows.cols && col_in_group == 0) group_shift[col / per_group] = acc.shift;
  for (int64_t s0 = first; active && s0 < end; s0 += rows.rows * kUnroll) {
    Pack<T, V> v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t s = s0 + u * rows.rows;
      if (s < end) v[u] = elementwise::load_pack<T, V>(base + spatial_offset(g, s, g.in_sp_stride));
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (s0 + u * rows.rows < end) {
#pragma unroll
        for (int k = 0; k < V; ++k) acc.add(to_float(v[u].get(k)));
      }
  }
  thread_sums[t] = make_float2(acc.s, acc.ss);
  __syncthreads();

  const int64_t G = g.groups, entries = per_group * rows.rows;
  int lanes = 1;
  while (lanes < 32 && lanes < entries) lanes *= 2;
  const int lane = t % 32, segments = 32 / lanes, j = lane % lanes;
  for (int64_t g0 = (t / 32) * segments; g0 < G; g0 += kWarps * segments) {  // warp-uniform
    const int64_t group = g0 + lane / lanes;
    float2 v = make_float2(0.f, 0.f);
    if (group < G)
      for (int64_t e = j; e < entries; e += lanes)
        v = add_sums(v, thread_sums[(e / per_group) * rows.cols + group * per_group + e % per_group]);
    for (int delta = lanes / 2; delta > 0; delta /= 2) {
      const float2 other = shuffle_down(v, delta);
      if (j + delta < lanes) v = add_sums(v, other);
    }
    if (j == 0 && group < G)
      partials[(n * G + group) * splits + split] = moments_of_sums(
          (end - begin) * g.channels_per_group(), group_shift[group], v.x, v.y);
  }
  if constexpr (kFused) {
    fused_rows_merge(g, partials, splits, merge);
    if (active) own_rows_apply<T, V>(g, rows, input, output, merge.table, n, col, first, end);
  }
}

// ------------------------------------------------------- statistics, table

// The merge as a kernel of its own: warp w of the grid merges pair w.
__global__ void __launch_bounds__(kThreads)
    merge_kernel(GroupNormGeometry g, const GroupMoments* partials, int64_t splits,
                 MergeArgs a) {
  wait_for_previous_kernel();
  const int64_t pair = (blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x) / 32;
  if (pair >= g.pairs()) return;  // whole warps
  merge_pair(g, partials, splits, pair, a);
}

// One thread per (sample, channel): the ranks' records of its pair in rank order.
__global__ void __launch_bounds__(kThreads)
    table_kernel(int64_t batch, int64_t channels, RecordArgs r, ChannelTable table) {
  wait_for_previous_kernel();
  const int64_t nc = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (nc < batch * channels) table_entry(batch, channels, r, table, nc);
}

// Any strides: element i of the logical [N, C, S] order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    strided_apply_kernel(GroupNormGeometry g, const T* in, T* out, ChannelTable table) {
  const int64_t numel = g.batch * g.channels * g.spatial;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < numel;
       i += step) {
    const int64_t s = i % g.spatial, nc = i / g.spatial;
    const int64_t c = nc % g.channels, n = nc / g.channels;
    const T x = in[n * g.in_n + c * g.in_c + spatial_offset(g, s, g.in_sp_stride)];
    out[n * g.out_n + c * g.out_c + spatial_offset(g, s, g.out_sp_stride)] =
        normalised<T>(x, table.factors, table.bias, nc, c);
  }
}

// ---------------------------------------------------------------- host side

void check_launch() { DIFFCOLL_CUDA_CHECK(cudaGetLastError()); }

unsigned blocks_for(int64_t threads) {
  return static_cast<unsigned>(std::max<int64_t>(1, ceil_div(threads, kThreads)));
}

// Every launch below is on `device`, the geometry's, which the caller's
// DeviceGuard has made current: no launch asks the runtime for it again.

// Blocks of Kernel (kThreads each) resident on `device` at once, by its
// occupancy: every grid but the moments' of more pairs than that is one
// wave at most, striding beyond it.
template <auto Kernel>
int64_t resident_blocks(int device) {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, device, [](int d) {
    int per_sm = 0;
    DIFFCOLL_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kernel, kThreads, 0));
    return sm_count(d) * std::max(1, per_sm);
  });
}

bool cooperative_launch(int device) {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, device, [](int d) {
    int coop = 0;
    DIFFCOLL_CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, d));
    return coop ? kYes : kNo;
  }) == kYes;
}

// One wave of Kernel at most: grid for `blocks` blocks of work.
template <auto Kernel>
unsigned wave(int64_t blocks, int device) {
  return static_cast<unsigned>(
      std::min(std::max<int64_t>(1, blocks), resident_blocks<Kernel>(device)));
}

// The workspace: block partials, then the channel table.
struct Workspace {
  GroupMoments* partials;
  ChannelTable table;
};

size_t partial_bytes(const GroupNormGeometry& g) {
  return room(static_cast<size_t>(g.pairs() * max_splits(g)) * sizeof(GroupMoments));
}
size_t factor_bytes(const GroupNormGeometry& g) {
  return room(static_cast<size_t>(g.batch * g.channels) * sizeof(float2));
}

Workspace carve(const GroupNormGeometry& g, void* workspace) {
  char* base = static_cast<char*>(workspace);
  Workspace w;
  w.partials = reinterpret_cast<GroupMoments*>(base);
  w.table.factors = reinterpret_cast<float2*>(base + partial_bytes(g));
  w.table.bias = reinterpret_cast<float*>(base + partial_bytes(g) + factor_bytes(g));
  return w;
}

// Units of a walk (the channel-rows walk's samples, the group-runs walk's
// pairs) and the splits of each that fill `resident` blocks.
int64_t units_of(const GroupNormGeometry& g, const ChannelRows&) { return g.batch; }
int64_t units_of(const GroupNormGeometry& g, const GroupRuns&) { return g.pairs(); }
int64_t splits_of(const GroupNormGeometry& g, const ChannelRows&, int64_t resident) {
  return row_splits(g, resident);
}
int64_t splits_of(const GroupNormGeometry& g, const GroupRuns&, int64_t resident) {
  return group_splits(g, resident);
}

// Launches Kernel cooperatively (every block resident at once, so that it
// may wait at grid-wide barriers): false if the device refuses the grid as
// larger than it holds (fewer blocks resident than the occupancy said: a
// shared device, MPS).
template <auto Kernel, typename... Args>
bool launch_cooperative(int64_t grid, cudaStream_t stream, const Args&... args) {
  cudaLaunchAttribute cooperative;
  cooperative.id = cudaLaunchAttributeCooperative;
  cooperative.val.cooperative = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(grid));
  config.blockDim = dim3(kThreads);
  config.stream = stream;
  config.attrs = &cooperative;
  config.numAttrs = 1;
  const cudaError_t err = cudaLaunchKernelEx(&config, Kernel, args...);
  if (err == cudaSuccess) return true;
  if (err != cudaErrorCooperativeLaunchTooLarge) DIFFCOLL_CUDA_CHECK(err);
  (void)cudaGetLastError();
  return false;
}

// Launches Kernel, and early where it may (dependent_launch.cuh).
template <auto Kernel, typename... Args>
void launch_early(int device, int64_t grid, cudaStream_t stream, const Args&... args) {
  cudaLaunchAttribute early_attr = early_launch_attribute();
  bool early = false;
  if (waits_for_previous<Kernel>(device))
    DIFFCOLL_CUDA_CHECK(stream_allows_early_launch(stream, &early));
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(grid));
  config.blockDim = dim3(kThreads);
  config.stream = stream;
  config.attrs = &early_attr;
  config.numAttrs = early ? 1 : 0;
  DIFFCOLL_CUDA_CHECK(cudaLaunchKernelEx(&config, Kernel, args...));
}

// Launches the moments kernel `Kernel` for `walk`, one wave of blocks where
// the units allow, then merge_kernel, both early where they may. Not one
// cooperative kernel merging after a grid-wide barrier: that measured
// 1.5-2 us slower on an H200 (a cooperative kernel starts some 3 us after
// the kernel before it ends; docs/PERFORMANCE.md).
template <auto Kernel, typename Walk, typename T>
void launch_moments(const GroupNormGeometry& g, const Walk& walk, const T* in,
                    GroupMoments* partials, const MergeArgs& merge, cudaStream_t stream) {
  const int64_t splits = splits_of(g, walk, resident_blocks<Kernel>(g.device));
  const int64_t grid = units_of(g, walk) * splits;
  T* const no_output = nullptr;  // the moments alone
  launch_early<Kernel>(g.device, grid, stream, g, walk, splits, in, partials, merge, no_output);
  launch_early<&merge_kernel>(g.device, blocks_for(g.pairs() * 32), stream, g, partials, splits,
                              merge);
}

// The fused GroupNorm of a rank alone, moments, merge, table and apply in
// one cooperative kernel `Kernel` for `walk`: false (nothing launched) if
// its grid is more than one wave.
template <auto Kernel, typename Walk, typename T>
bool launch_fused(const GroupNormGeometry& g, const Walk& walk, const T* in, T* out,
                  GroupMoments* partials, const MergeArgs& merge, cudaStream_t stream) {
  const int64_t resident = resident_blocks<Kernel>(g.device);
  const int64_t splits = splits_of(g, walk, resident);
  const int64_t grid = units_of(g, walk) * splits;
  if (grid > resident) return false;
  return launch_cooperative<Kernel>(grid, stream, g, walk, splits, in, partials, merge, out);
}

// The local moments into merge.out (and the table, when given one), through
// block partials in `partials`.
template <typename T>
void moments(const GroupNormGeometry& g, const void* input, GroupMoments* partials,
             const MergeArgs& merge, cudaStream_t stream) {
  DIFFCOLL_REQUIRE(g.pairs() * max_splits(g) < (int64_t{1} << 31), Status::kUnsupported,
                   "group_norm: ", g.pairs(), " (sample, group) pairs exceed a CUDA grid");
  const T* in = static_cast<const T*>(input);
  constexpr int k16 = 16 / sizeof(T), k8 = 8 / sizeof(T);
  const ChannelRows rows = channel_rows(g, input, sizeof(T));
  if (rows.vec == k16)
    return launch_moments<&channel_rows_kernel<T, k16>>(g, rows, in, partials, merge, stream);
  if (rows.vec == k8)
    return launch_moments<&channel_rows_kernel<T, k8>>(g, rows, in, partials, merge, stream);
  if (rows.vec == 1)
    return launch_moments<&channel_rows_kernel<T, 1>>(g, rows, in, partials, merge, stream);
  const GroupRuns runs = group_runs(g, input, sizeof(T));
  if (runs.vec > 1)
    return launch_moments<&group_runs_kernel<T, k16>>(g, runs, in, partials, merge, stream);
  launch_moments<&group_runs_kernel<T, 1>>(g, runs, in, partials, merge, stream);
}

DenseArgs dense_args(const GroupNormGeometry& g, const void* input, void* output,
                     ChannelTable table) {
  DenseArgs a;
  a.in = input;
  a.out = output;
  a.numel = g.batch * g.channels * g.spatial;
  dense_divisors(g, &a.n_div, &a.c_div);
  a.batch = g.batch;
  a.channels = g.channels;
  a.table = table;
  return a;
}

// A rank alone's whole GroupNorm in one kernel, for `walk` (fused_walk's):
// true if launched; false, with nothing launched, otherwise.
template <typename T>
bool fused_alone(const GroupNormGeometry& g, FusedWalk walk, const void* input, void* output,
                 GroupMoments* partials, const MergeArgs& merge, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  if (walk == FusedWalk::kNone || !merge.table.factors || !cooperative_launch(g.device))
    return false;
  const T* in = static_cast<const T*>(input);
  T* out = static_cast<T*>(output);
  if (walk == FusedWalk::kRows)
    return launch_fused<&channel_rows_kernel<T, kVec, true>>(
        g, channel_rows(g, input, sizeof(T)), in, out, partials, merge, stream);
  return launch_fused<&group_runs_kernel<T, kVec, true>>(g, group_runs(g, input, sizeof(T)), in,
                                                         out, partials, merge, stream);
}

// Launches the apply kernel Kernel(a, extra...) in one wave, for `blocks`
// blocks of work.
template <auto Kernel, typename... Extra>
void launch_apply(int device, int64_t blocks, const DenseArgs& a, cudaStream_t stream,
                  const Extra&... extra) {
  launch_early<Kernel>(device, wave<Kernel>(blocks, device), stream, a, extra...);
}

template <typename T, int V, DenseWalk W>
void launch_dense(int device, const DenseArgs& a, cudaStream_t stream) {
  const int64_t blocks = ceil_div(a.numel, int64_t{kThreads} * kUnroll * V);
  if (a.numel < (int64_t{1} << 31))
    launch_apply<&dense_apply_kernel<T, V, W, uint32_t>>(device, blocks, a, stream);
  else
    launch_apply<&dense_apply_kernel<T, V, W, int64_t>>(device, blocks, a, stream);
}

template <typename T, int V>
void launch_rows(int device, const DenseArgs& a, const RowApply& ra, cudaStream_t stream) {
  const int64_t blocks = ceil_div(a.numel / a.channels, ra.rows * kUnroll);
  if (a.numel < (int64_t{1} << 31))
    launch_apply<&row_apply_kernel<T, V, uint32_t>>(device, blocks, a, stream, ra);
  else
    launch_apply<&row_apply_kernel<T, V, int64_t>>(device, blocks, a, stream, ra);
}

// The apply with the table as it is, or, with records (normalise), the
// table merged from them first, by table_kernel: two plain kernels launched
// early rather than one cooperative kernel with the table in its prologue
// and a grid-wide barrier (docs/PERFORMANCE.md, sixth session).
template <typename T>
void apply(const GroupNormGeometry& g, const void* input, void* output, ChannelTable table,
           const RecordArgs& records, cudaStream_t stream) {
  const int64_t numel = g.batch * g.channels * g.spatial;
  if (numel == 0) return;
  if (records.records)
    launch_early<&table_kernel>(g.device, blocks_for(g.batch * g.channels), stream, g.batch,
                                g.channels, records, table);
  if (!dense_same_layout(g)) {
    constexpr auto kernel = &strided_apply_kernel<T>;
    kernel<<<wave<kernel>(blocks_for(numel), g.device), kThreads, 0, stream>>>(
        g, static_cast<const T*>(input), static_cast<T*>(output), table);
    check_launch();
    return;
  }
  constexpr int kVec = 16 / sizeof(T);
  const DenseArgs a = dense_args(g, input, output, table);
  const int vec = aligned_to(input, 16) && aligned_to(output, 16) ? kVec : 1;
  switch (dense_walk(g, vec)) {
    case DenseWalk::kChannelOuter:
      launch_dense<T, kVec, DenseWalk::kChannelOuter>(g.device, a, stream);
      break;
    case DenseWalk::kChannelInner:
      if (const RowApply ra = row_apply(g, vec); ra.cols > 0)
        launch_rows<T, kVec>(g.device, a, ra, stream);
      else
        launch_dense<T, kVec, DenseWalk::kChannelInner>(g.device, a, stream);
      break;
    default:
      if (vec > 1)
        launch_dense<T, kVec, DenseWalk::kPerElement>(g.device, a, stream);
      else
        launch_dense<T, 1, DenseWalk::kPerElement>(g.device, a, stream);
  }
  check_launch();
}

class CudaGroupNormMath : public GroupNormMath {
 public:
  size_t workspace_bytes(const GroupNormGeometry& g) const override {
    return partial_bytes(g) + factor_bytes(g) + room(static_cast<size_t>(g.channels) * sizeof(float));
  }

  void local_moments(const GroupNormGeometry& g, DType dtype, const void* input,
                     GroupMoments* out, void* workspace, void* stream) const override {
    DeviceGuard guard(g.device);
    const Workspace w = carve(g, workspace);
    MergeArgs merge;
    merge.out = out;
    by_dtype(dtype, [&](auto t) {
      moments<decltype(t)>(g, input, w.partials, merge, static_cast<cudaStream_t>(stream));
    });
  }

  void normalise(const GroupNormGeometry& g, DType dtype, const void* input, void* output,
                 const GroupNormAffine& a, const GroupMoments* records, int ranks, float eps,
                 void* workspace, void* stream) const override {
    DeviceGuard guard(g.device);
    auto s = static_cast<cudaStream_t>(stream);
    const Workspace w = carve(g, workspace);
    RecordArgs r;
    r.records = records;
    r.ranks = ranks;
    r.groups = g.groups;
    r.affine = a;
    r.eps = eps;
    by_dtype(dtype, [&](auto t) { apply<decltype(t)>(g, input, output, w.table, r, s); });
  }

  // One kernel where held_group_norm or else fused_alone covers the layout;
  // else three: the moments, the merge with the table, then the apply.
  void normalise_alone(const GroupNormGeometry& g, DType dtype, const void* input, void* output,
                       const GroupNormAffine& a, float eps, GroupMoments* records,
                       void* workspace, void* stream) const override {
    DeviceGuard guard(g.device);
    auto s = static_cast<cudaStream_t>(stream);
    const Workspace w = carve(g, workspace);
    MergeArgs merge;
    merge.out = records;
    merge.affine = a;
    merge.eps = eps;
    merge.table = w.table;
    const FusedWalk walk = fused_walk(g, input, output, dtype_size(dtype));
    if (held_group_norm(g, walk, dtype, input, output, a, eps, records, s)) return;
    by_dtype(dtype, [&](auto t) {
      using T = decltype(t);
      if (fused_alone<T>(g, walk, input, output, w.partials, merge, s)) return;
      moments<T>(g, input, w.partials, merge, s);
      apply<T>(g, input, output, w.table, RecordArgs{}, s);
    });
  }
};

}  // namespace

const GroupNormMath& cuda_group_norm_math() {
  static const CudaGroupNormMath math;
  return math;
}

}  // namespace ops
}  // namespace diffcoll
