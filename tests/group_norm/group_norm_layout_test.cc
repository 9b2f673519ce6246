// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The CUDA GroupNorm kernels' walk of a tensor (core/cuda/group_norm_layout.h),
// checked on the host, so that a machine without a GPU catches a wrong index:
// for every layout the loads of each (sample, group), vectors included, must
// cover exactly that group's elements, once each; the fast paths (vectors,
// the dense apply) must be taken where they apply; and the dense apply's
// channel and sample of every memory position must be the element's own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/cuda/group_norm_layout.h"
#include "core/ops/group_norm.h"

namespace {

using diffcoll::DType;
using diffcoll::TensorView;
namespace ops = diffcoll::ops;

struct Layout {
  std::string name;
  std::vector<int64_t> shape, strides;
  int64_t misalign = 0;  // elements added to an aligned data pointer
  bool vectors = false;  // the moments may load vectors (when runs or groups hold whole ones)
  bool dense = false;    // the apply should walk memory in order
  bool rows = false;     // the moments should read whole channel rows
};

TensorView view(const Layout& l, DType dtype) {
  TensorView t;
  t.dtype = dtype;
  t.ndim = static_cast<int>(l.shape.size());
  for (int d = 0; d < t.ndim; ++d) {
    t.shape[d] = l.shape[d];
    t.strides[d] = l.strides[d];
  }
  // Never dereferenced: an aligned address far from 0 (negative strides).
  t.data = reinterpret_cast<void*>(uintptr_t{1} << 32);
  t.data = static_cast<char*>(t.data) + l.misalign * static_cast<int64_t>(t.element_size());
  return t;
}

// Memory offset (elements, from data) of every logical element, row-major.
std::vector<int64_t> offsets(const TensorView& t) {
  std::vector<int64_t> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t rest = i, off = 0;
    for (int d = t.ndim - 1; d >= 0; --d) {
      off += (rest % t.shape[d]) * t.strides[d];
      rest /= t.shape[d];
    }
    out[i] = off;
  }
  return out;
}

std::vector<Layout> layouts() {
  const int64_t N = 2, C = 16, H = 6, W = 8, T = 3;
  std::vector<Layout> l;
  l.push_back({"contiguous", {N, C, H, W}, {C * H * W, H * W, W, 1}, 0, true, true});
  l.push_back({"channels_last", {N, C, H, W}, {C * H * W, 1, W * C, C}, 0, true, true, true});
  l.push_back({"channels_last_3d", {N, C, T, H, W},
               {C * T * H * W, 1, H * W * C, W * C, C}, 0, true, true, true});
  l.push_back({"contiguous_5d", {N, C, T, H, W},
               {C * T * H * W, T * H * W, H * W, W, 1}, 0, true, true});
  l.push_back({"misaligned", {N, C, H, W}, {C * H * W, H * W, W, 1}, 1, false, true});
  // Rows 2..5 of a channels-last [N, C, 9, W]: a halo-padded slab's interior.
  l.push_back({"channels_last_window", {N, C, 4, W}, {C * 9 * W, 1, W * C, C}, 2 * W * C, true,
               false, true});
  // Rows 2..5 of a contiguous [N, C, 9, W]: one run per channel.
  l.push_back({"nchw_window", {N, C, 4, W}, {C * 9 * W, 9 * W, W, 1}, 2 * W, true, false});
  l.push_back({"gapped", {N, C, H, W}, {C * H * 2 * W, H * 2 * W, 2 * W, 2}, 0, false, false});
  l.push_back({"w_flipped", {N, C, H, W}, {C * H * W, H * W, W, -1}, W - 1, false, false});
  l.push_back({"hw_transposed", {N, C, H, W}, {C * H * W, H * W, 1, H}, 0, false, true});
  l.push_back({"nc_only", {N, C}, {C, 1}, 0, true, true, true});
  l.push_back({"batch_inner", {N, C, H, W}, {1, H * W * N, W * N, N}, 0, false, true});
  l.push_back({"channels_last_odd", {1, 6, 5, 3}, {90, 1, 18, 6}, 0, false, true, true});
  // A batch of 1, as every benchmark shape: the sample's stride is never
  // used (torch gives any value to an extent-1 dimension; 5 here).
  l.push_back({"channels_last_n1", {1, C, H, W}, {C * H * W, 1, W * C, C}, 0, true, true, true});
  l.push_back({"channels_last_3d_n1", {1, C, T, H, W}, {5, 1, H * W * C, W * C, C}, 0, true, true,
               true});
  l.push_back({"contiguous_n1", {1, C, H, W}, {5, H * W, W, 1}, 0, true, true});
  l.push_back({"one_channel", {N, 1, H, W}, {H * W, 1, W, 1}, 0, true, true});
  // Dense with the samples inside the channels: one run per channel.
  l.push_back({"samples_in_channels", {N, C, H, W}, {H * W, N * H * W, W, 1}, 0, true, true});
  return l;
}

// Resident blocks of a device with room for many (the splits are then
// bounded by the elements per block) and of one with room for few (bounded
// by one wave).
constexpr int64_t kManyResident = 1 << 20;
constexpr int64_t kFewResident = 8;

// The load of the channel-rows walk: the widest of 16 bytes, 8 bytes and one
// element that divides the channels per group (the layouts here are aligned).
int64_t expected_row_vector(int64_t cpg, int64_t elem) {
  for (int64_t bytes : {int64_t{16}, int64_t{8}})
    if (cpg % (bytes / elem) == 0) return bytes / elem;
  return 1;
}

TEST(GroupNormLayout, LoadsCoverEachGroupOnceAndFastPathsApply) {
  for (const Layout& l : layouts())
    for (DType dtype : {DType::kBFloat16, DType::kFloat32})
      for (int64_t groups : {1, 2, 4, 16}) {
        if (l.shape[1] % groups != 0) continue;
        SCOPED_TRACE(l.name + (dtype == DType::kFloat32 ? " f32" : " bf16") + " groups " +
                     std::to_string(groups));
        const TensorView t = view(l, dtype);
        const int64_t elem = static_cast<int64_t>(t.element_size());
        const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, groups);
        const std::vector<int64_t> off = offsets(t);
        std::map<int64_t, int64_t> element_at;  // memory offset -> logical index
        for (int64_t i = 0; i < t.numel(); ++i) element_at[off[i]] = i;
        const int64_t C = t.shape[1], S = t.numel() / (t.shape[0] * C), cpg = C / groups;
        std::vector<int> hits(t.numel(), 0);
        // Element at offset o read for (sample, group) `pair`.
        auto read = [&](int64_t o, int64_t pair) {
          auto it = element_at.find(o);
          ASSERT_NE(it, element_at.end()) << "reads offset " << o << ", no element";
          const int64_t i = it->second, n = i / (C * S), c = (i / S) % C;
          ASSERT_EQ(n * groups + c / cpg, pair) << "element " << i << " read for pair " << pair;
          ++hits[i];
        };

        const ops::ChannelRows rows = ops::channel_rows(g, t.data, elem);
        EXPECT_EQ(rows.vec > 0, l.rows) << "channel rows";
        if (rows.vec > 0) {
          EXPECT_EQ(rows.vec, expected_row_vector(cpg, elem)) << "row load width";
          EXPECT_EQ(rows.cols * rows.vec, C);
          EXPECT_LE(rows.active(), ops::kGroupNormThreads);
          const int64_t splits = ops::row_splits(g, kManyResident);
          for (int64_t n = 0; n < g.batch; ++n)
            for (int64_t split = 0; split < splits; ++split) {
              int64_t begin, end;
              ops::split_range(g.spatial, split, splits, &begin, &end);
              for (int64_t th = 0; th < rows.active(); ++th) {
                const int64_t col = th % rows.cols;
                // The thread's group, the one its block partial goes to.
                const int64_t pair = n * groups + col / rows.vecs_per_group(g);
                for (int64_t s = begin + th / rows.cols; s < end; s += rows.rows)
                  for (int k = 0; k < rows.vec; ++k)
                    read(ops::input_offset(g, n, col * rows.vec + k, s), pair);
              }
            }
        } else {
          const ops::GroupRuns runs = ops::group_runs(g, t.data, elem);
          // Vectors wherever the layout allows them and runs hold whole vectors.
          const bool whole_vectors = runs.run_len * elem % 16 == 0;
          EXPECT_EQ(runs.vec > 1, l.vectors && whole_vectors) << "vector loads";
          for (int64_t pair = 0; pair < g.pairs(); ++pair)
            for (int64_t j = 0; j < runs.loads(); ++j)
              for (int k = 0; k < runs.vec; ++k)
                read(ops::pair_base(g, pair) + ops::load_offset(g, runs, j) + k, pair);
        }
        for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(hits[i], 1) << "element " << i;

        // The one-kernel GroupNorm: its applies normalise the moments' own
        // loads (covered above), vectors of 16 bytes each within one channel.
        const int vec16 = static_cast<int>(16 / elem);
        const ops::FusedWalk fused = ops::fused_walk(g, t.data, t.data, elem);
        EXPECT_EQ(fused == ops::FusedWalk::kRows, l.dense && rows.vec == vec16) << "fused rows";
        if (fused == ops::FusedWalk::kRuns) {
          EXPECT_TRUE(l.dense && rows.vec == 0);
          const ops::GroupRuns runs = ops::group_runs(g, t.data, elem);
          ASSERT_EQ(runs.vec, vec16);
          for (int64_t pair = 0; pair < g.pairs(); ++pair)
            for (int64_t j = 0; j < runs.loads(); ++j)
              for (int k = 0; k < runs.vec; ++k) {
                const int64_t o = ops::pair_base(g, pair) + ops::load_offset(g, runs, j) + k;
                const int64_t c = (element_at[o] / S) % C;
                ASSERT_EQ(c, (pair % groups) * cpg + ops::run_channel<int64_t>(g, runs, j))
                    << "channel of load " << j << " of pair " << pair;
              }
        }
        if (l.name.rfind("contiguous", 0) == 0) {
          EXPECT_EQ(fused, ops::FusedWalk::kRuns) << "fused runs";
        }

        EXPECT_EQ(ops::dense_same_layout(g), l.dense) << "dense apply";
        if (!ops::dense_same_layout(g)) continue;
        int64_t n_div, c_div;
        ops::dense_divisors(g, &n_div, &c_div);
        // The channel-rows apply: where channels have stride 1 (and C holds
        // whole vectors), row p / C, column (p % C) / vec, sample by sample_div.
        const ops::RowApply ra = ops::row_apply(g, vec16);
        EXPECT_EQ(ra.cols > 0, c_div == 1 && C % vec16 == 0 && l.dense) << "channel-rows apply";
        if (ra.cols > 0) {
          EXPECT_EQ(ra.cols * vec16, C);
          EXPECT_LE(ra.cols * ra.rows, ops::kGroupNormThreads);
          for (int64_t i = 0; i < t.numel(); ++i) {
            const int64_t p = off[i], row = p / C;
            ASSERT_EQ((row / ra.sample_div) % t.shape[0], i / (C * S)) << "sample of row " << row;
            ASSERT_EQ(p % C, (i / S) % C) << "channel of offset " << p;
          }
        }
        for (int vec : {1, vec16}) {
          const ops::DenseWalk walk = ops::dense_walk(g, vec);
          if (l.name == "contiguous" && vec > 1) {
            EXPECT_EQ(walk, ops::DenseWalk::kChannelOuter);
          }
          if (l.name.rfind("channels_last", 0) == 0 && vec > 1 && C % vec == 0) {
            EXPECT_EQ(walk, ops::DenseWalk::kChannelInner);
          }
          for (int64_t i = 0; i < t.numel(); ++i) {
            const int64_t p = off[i], v = p / vec * vec, k = p % vec;
            int64_t n, c;
            switch (walk) {
              case ops::DenseWalk::kChannelOuter:
                ops::dense_sample_channel<ops::DenseWalk::kChannelOuter>(
                    v, static_cast<int>(k), n_div, c_div, t.shape[0], C, &n, &c);
                break;
              case ops::DenseWalk::kChannelInner:
                ops::dense_sample_channel<ops::DenseWalk::kChannelInner>(
                    v, static_cast<int>(k), n_div, c_div, t.shape[0], C, &n, &c);
                break;
              default:
                ops::dense_sample_channel<ops::DenseWalk::kPerElement>(
                    v, static_cast<int>(k), n_div, c_div, t.shape[0], C, &n, &c);
            }
            ASSERT_EQ(c, (i / S) % C) << "channel of offset " << p << " (vectors of " << vec << ")";
            ASSERT_EQ(n, i / (C * S)) << "sample of offset " << p << " (vectors of " << vec << ")";
          }
        }
      }
}

// The benchmark's activations (a batch of 1), 2-D and video, contiguous and
// channels-last, bf16, 32 groups: the one-kernel GroupNorm, and for the
// two-kernel apply (several ranks) of channels-last the channel-rows apply
// with 16-byte vectors. A batch of 1 once got a sample divisor of 1, which
// no multiple of C divides, and fell to the dense apply of every element's
// factors.
TEST(GroupNormLayout, BatchOfOneTakesTheRowAndOneKernelPaths) {
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{1, 512, 90, 160}, std::vector<int64_t>{1, 256, 5, 90, 160},
        std::vector<int64_t>{2, 512, 90, 160}})
    for (bool channels_last : {false, true}) {
      SCOPED_TRACE(::testing::PrintToString(shape) + (channels_last ? " channels-last" : ""));
      const int nd = static_cast<int>(shape.size());
      Layout l{"benchmark", shape, std::vector<int64_t>(nd)};
      int64_t step = 1;
      if (channels_last) {
        l.strides[1] = 1;
        step = shape[1];
      }
      for (int d = nd - 1; d >= 0; --d) {
        if (channels_last && d == 1) continue;
        l.strides[d] = step;
        step *= shape[d];
      }
      const TensorView t = view(l, DType::kBFloat16);
      const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, 32);
      const int64_t C = shape[1];
      ASSERT_TRUE(ops::dense_same_layout(g));
      const ops::FusedWalk fused = ops::fused_walk(g, t.data, t.data, 2);
      if (!channels_last) {
        EXPECT_EQ(fused, ops::FusedWalk::kRuns);
        EXPECT_EQ(ops::dense_walk(g, 8), ops::DenseWalk::kChannelOuter);
        continue;
      }
      EXPECT_EQ(fused, ops::FusedWalk::kRows);
      EXPECT_EQ(ops::channel_rows(g, t.data, 2).vec, 8);
      EXPECT_EQ(ops::dense_walk(g, 8), ops::DenseWalk::kChannelInner);
      const ops::RowApply ra = ops::row_apply(g, 8);
      EXPECT_EQ(ra.cols, C / 8);
      EXPECT_EQ(ra.rows, ops::kGroupNormThreads / (C / 8));
      // Rows of sample n are [n * S, (n + 1) * S): every row's sample.
      ASSERT_GT(ra.sample_div, 0);
      for (int64_t row : {int64_t{0}, g.spatial - 1, g.spatial, g.batch * g.spatial - 1})
        if (row < g.batch * g.spatial) EXPECT_EQ((row / ra.sample_div) % g.batch, row / g.spatial);
    }
}

// The moments' splits: at least one per unit, within the workspace
// (max_splits), one wave where the units allow it (the grid-wide barrier
// before the in-kernel merge needs every block resident), and that wave
// filled to within one unit's blocks unless the elements per block or the
// partials' bound stop it.
TEST(GroupNormLayout, SplitsFillOneWaveWithinTheWorkspace) {
  const std::vector<std::vector<int64_t>> shapes = {
      {1, 512, 90, 160}, {1, 256, 5, 90, 160}, {2, 64, 7, 9}, {16, 512, 64, 64},
      {64, 512, 8, 8},   {1, 32, 1, 1},        {3, 96, 45, 80}};
  for (const std::vector<int64_t>& shape : shapes)
    for (int64_t groups : {1, 8, 32}) {
      if (shape[1] % groups != 0) continue;
      Layout l{"contiguous", shape, std::vector<int64_t>(shape.size())};
      int64_t stride = 1;
      for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
        l.strides[d] = stride;
        stride *= shape[d];
      }
      const ops::GroupNormGeometry g =
          ops::group_norm_geometry(view(l, DType::kBFloat16), view(l, DType::kBFloat16), groups);
      const int64_t bound = ops::max_splits(g);
      EXPECT_LE(g.pairs() * bound, std::max(ops::kGroupNormMaxPartials, g.pairs()));
      for (int64_t resident : {int64_t{1}, int64_t{7}, int64_t{396}, int64_t{1056}, kManyResident}) {
        SCOPED_TRACE(::testing::PrintToString(shape) + " groups " + std::to_string(groups) +
                     " resident " + std::to_string(resident));
        struct Walk {
          int64_t splits, units, elements;
        };
        const int64_t cpg = g.channels_per_group();
        for (const Walk& w : {Walk{ops::group_splits(g, resident), g.pairs(), cpg * g.spatial},
                              Walk{ops::row_splits(g, resident), g.batch, g.channels * g.spatial}}) {
          EXPECT_GE(w.splits, 1);
          EXPECT_LE(w.splits, bound);
          if (w.units <= resident) {
            EXPECT_LE(w.units * w.splits, resident);
            const bool elements_bound =
                w.splits == ops::ceil_div(w.elements, ops::kGroupNormElementsPerBlock);
            const bool partials_bound = g.pairs() * (w.splits + 1) > ops::kGroupNormMaxPartials;
            if (!elements_bound && !partials_bound) EXPECT_GT(w.units * (w.splits + 1), resident);
          } else {
            EXPECT_EQ(w.splits, 1);
          }
        }
      }
    }
}

// An output in another layout than the input never takes the dense apply.
TEST(GroupNormLayout, DifferentOutputLayoutIsNotDense) {
  const std::vector<Layout> l = layouts();
  const TensorView in = view(l[0], DType::kFloat32), out = view(l[1], DType::kFloat32);
  EXPECT_FALSE(ops::dense_same_layout(ops::group_norm_geometry(in, out, 4)));
  EXPECT_TRUE(ops::dense_same_layout(ops::group_norm_geometry(in, in, 4)));
}

// The moments kernels' arithmetic, emulated on the host in the kernels'
// order: per-thread shifted sums over the kernel's loads, about one shift
// per block and group (group runs: the split's first element; channel rows:
// the group's first channel at the split's first position), the block's
// fixed tree of plain sums (group runs: warp trees of shuffles down by 16,
// 8, 4, 2, 1, then the warps in order; channel rows: per group, lanes adding
// entries in order, then a shuffle tree within the group's lanes), turned
// into moments once (moments_of_sums), the merge of the splits (CentredSums
// about split 0's mean: lanes adding partials in order, then a warp tree),
// then the ranks in order (combine_moments). An activation of mean 1000 and
// spread of order 1 must keep its variance, which E[x^2] - E[x]^2 in f32
// does not.
using Moments = std::vector<ops::GroupMoments>;

struct Sums {  // a thread's (s, ss), as the kernels' float2
  float s = 0, ss = 0;
};
Sums operator+(Sums a, Sums b) { return {a.s + b.s, a.ss + b.ss}; }
ops::CentredSums operator+(ops::CentredSums a, const ops::CentredSums& b) {
  a.n += b.n;
  a.s += b.s;
  a.ss += b.ss;
  return a;
}

// Lane 0 of a shuffle-down tree over `lanes` lanes (a power of two); lanes
// whose partner is out of range keep their value (a full warp's shuffle
// returns the lane's own, which lane 0's tree never reads).
template <typename V>
V tree(std::vector<V> lane) {
  for (size_t delta = lane.size() / 2; delta > 0; delta /= 2) {
    std::vector<V> next = lane;
    for (size_t l = 0; l + delta < lane.size(); ++l) next[l] = lane[l] + lane[l + delta];
    lane = next;
  }
  return lane[0];
}

// `lanes` lanes each adding entries lane, lane + lanes, ... in order, then a tree.
template <typename V>
V fold_then_tree(const std::vector<V>& entries, size_t lanes) {
  std::vector<V> lane(lanes);
  for (size_t e = 0; e < entries.size(); ++e) lane[e % lanes] = lane[e % lanes] + entries[e];
  return tree(lane);
}

Sums block_sums(const std::vector<Sums>& threads) {
  std::vector<Sums> warps;
  for (size_t w = 0; w < threads.size(); w += 32)
    warps.push_back(tree(std::vector<Sums>(threads.begin() + w, threads.begin() + w + 32)));
  Sums m = warps[0];
  for (size_t w = 1; w < warps.size(); ++w) m = m + warps[w];
  return m;
}

// merged_partials: the splits' partials about split 0's mean.
ops::GroupMoments merged(const Moments& partials) {
  const float ref = partials[0].mean;
  std::vector<ops::CentredSums> each;
  for (const ops::GroupMoments& p : partials) {
    ops::CentredSums c;
    c.add(p, ref);
    each.push_back(c);
  }
  return fold_then_tree(each, 32).moments(ref);
}

// This rank's record of every pair, as the kernels compute it, from `mem`
// (the slab's memory, indexed by element offset).
Moments emulated_moments(const ops::GroupNormGeometry& g, const std::vector<float>& mem) {
  const ops::ChannelRows rows = ops::channel_rows(g, reinterpret_cast<void*>(uintptr_t{1} << 32), 4);
  const int64_t pairs = g.pairs();
  std::vector<Moments> partials(pairs);  // per pair, in split order
  if (rows.vec > 0) {
    const int64_t splits = ops::row_splits(g, kFewResident);
    EXPECT_GT(splits, 1) << "the case should exercise split blocks";
    const int64_t cpg = g.channels_per_group(), per_group = rows.vecs_per_group(g);
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t split = 0; split < splits; ++split) {
        int64_t begin, end;
        ops::split_range(g.spatial, split, splits, &begin, &end);
        std::vector<Sums> threads(ops::kGroupNormThreads);
        for (int64_t th = 0; th < rows.active(); ++th) {
          const int64_t col = th % rows.cols;
          ops::ShiftedSums acc;
          acc.shift = mem[ops::input_offset(g, n, col / per_group * cpg, begin)];
          for (int64_t s = begin + th / rows.cols; s < end; s += rows.rows)
            for (int k = 0; k < rows.vec; ++k)
              acc.add(mem[ops::input_offset(g, n, col * rows.vec + k, s)]);
          threads[th] = {acc.s, acc.ss};
        }
        const int64_t entries = per_group * rows.rows;
        size_t lanes = 1;
        while (lanes < 32 && static_cast<int64_t>(lanes) < entries) lanes *= 2;
        for (int64_t group = 0; group < g.groups; ++group) {
          std::vector<Sums> mine;
          for (int64_t e = 0; e < entries; ++e)
            mine.push_back(threads[(e / per_group) * rows.cols + group * per_group + e % per_group]);
          const Sums sum = fold_then_tree(mine, lanes);
          const float shift = mem[ops::input_offset(g, n, group * cpg, begin)];
          partials[n * g.groups + group].push_back(
              ops::moments_of_sums((end - begin) * cpg, shift, sum.s, sum.ss));
        }
      }
  } else {
    const ops::GroupRuns runs = ops::group_runs(g, reinterpret_cast<void*>(uintptr_t{1} << 32), 4);
    const int64_t splits = ops::group_splits(g, kFewResident);
    EXPECT_GT(splits, 1) << "the case should exercise split blocks";
    for (int64_t pair = 0; pair < pairs; ++pair)
      for (int64_t split = 0; split < splits; ++split) {
        int64_t begin, end;
        ops::split_range(runs.loads(), split, splits, &begin, &end);
        const int64_t base = ops::pair_base(g, pair);
        const float shift = mem[base + ops::load_offset(g, runs, begin)];
        std::vector<Sums> threads;
        for (int th = 0; th < ops::kGroupNormThreads; ++th) {
          ops::ShiftedSums acc;
          acc.shift = shift;
          for (int64_t j = begin + th; j < end; j += ops::kGroupNormThreads)
            for (int k = 0; k < runs.vec; ++k)
              acc.add(mem[base + ops::load_offset(g, runs, j) + k]);
          threads.push_back({acc.s, acc.ss});
        }
        const Sums sum = block_sums(threads);
        partials[pair].push_back(
            ops::moments_of_sums((end - begin) * runs.vec, shift, sum.s, sum.ss));
      }
  }
  Moments records;
  for (const Moments& p : partials) records.push_back(merged(p));
  return records;
}

// The merge's pieces: a record of count 0 (a padding lane, an empty split)
// adds nothing, sums of no elements are the identity, and the merge about a
// common reference agrees with Chan's pairwise combine.
TEST(GroupNormLayout, CentredSumsMergeLikeTheCombine) {
  const ops::GroupMoments a{1000, 3.25f, 812.5f}, b{24, -1.5f, 40.f}, none{0, 0.f, 0.f};
  ops::CentredSums c;
  c.add(a, a.mean);
  c.add(none, a.mean);
  c.add(b, a.mean);
  const ops::GroupMoments m = c.moments(a.mean), want = ops::combine_moments(a, b);
  EXPECT_EQ(m.count, want.count);
  EXPECT_NEAR(m.mean, want.mean, 1e-6 * std::fabs(want.mean));
  EXPECT_NEAR(m.m2, want.m2, 1e-5 * want.m2);
  EXPECT_EQ(ops::CentredSums().moments(5.f).count, 0);
  EXPECT_EQ(ops::moments_of_sums(0, 7.f, 0.f, 0.f).count, 0);
  const ops::GroupMoments s = ops::moments_of_sums(4, 10.f, 2.f, 6.f);  // 9, 10, 11, 12
  EXPECT_FLOAT_EQ(s.mean, 10.5f);
  EXPECT_FLOAT_EQ(s.m2, 5.f);
}

// Element i of the offset activation: 1000 + a deterministic spread in [-2, 2).
float offset_value(int64_t i) {
  uint64_t h = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  return static_cast<float>(1000.0 + static_cast<double>(h >> 11) / 9007199254740992.0 * 4 - 2);
}

TEST(GroupNormLayout, KernelArithmeticKeepsTheVarianceOfAnOffsetActivation) {
  const int64_t C = 8, H = 192, W = 96, G = 2, ranks = 3;
  std::vector<float> whole(C * H * W);  // [1, C, H, W] row-major
  for (size_t i = 0; i < whole.size(); ++i) whole[i] = offset_value(static_cast<int64_t>(i));
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last slabs (channel rows)" : "NCHW slabs (group runs)");
    Moments per_rank;
    for (int64_t r = 0; r < ranks; ++r) {
      const int64_t start = H * r / ranks, rows = H * (r + 1) / ranks - start;
      const Layout l = channels_last
                           ? Layout{"slab", {1, C, rows, W}, {C * rows * W, 1, W * C, C}}
                           : Layout{"slab", {1, C, rows, W}, {C * rows * W, rows * W, W, 1}};
      const TensorView t = view(l, DType::kFloat32);
      const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, G);
      EXPECT_EQ(ops::channel_rows(g, t.data, 4).vec > 0, channels_last);
      std::vector<float> mem(C * rows * W);
      const std::vector<int64_t> off = offsets(t);
      for (int64_t i = 0; i < t.numel(); ++i) {  // slab element (c, y, x) is whole (c, start + y, x)
        const int64_t c = i / (rows * W), y = i / W % rows, x = i % W;
        mem[off[i]] = whole[(c * H + start + y) * W + x];
      }
      const Moments mine = emulated_moments(g, mem);
      per_rank.insert(per_rank.end(), mine.begin(), mine.end());
    }
    const int64_t per_group = C / G * H * W;
    for (int64_t pair = 0; pair < G; ++pair) {
      ops::GroupMoments m = per_rank[pair];
      for (int64_t r = 1; r < ranks; ++r) m = ops::combine_moments(m, per_rank[r * G + pair]);
      double sum = 0, sq = 0;
      float naive_sum = 0, naive_sq = 0;
      for (int64_t i = pair * per_group; i < (pair + 1) * per_group; ++i) {
        sum += whole[i];
        naive_sum += whole[i];
        naive_sq += whole[i] * whole[i];
      }
      const double mean = sum / per_group;
      for (int64_t i = pair * per_group; i < (pair + 1) * per_group; ++i)
        sq += (whole[i] - mean) * (whole[i] - mean);
      const double var = sq / per_group;
      const float naive_mean = naive_sum / per_group;
      const double naive_var = naive_sq / per_group - naive_mean * naive_mean;
      ASSERT_EQ(m.count, per_group);
      EXPECT_NEAR(m.mean, mean, 1e-4);
      EXPECT_NEAR(m.m2 / m.count, var, 1e-5 * var) << "pair " << pair;
      EXPECT_GT(std::fabs(naive_var - var), 1e-2 * var) << "the case is not hard enough";
    }
  }
}

// The GroupNorm held in shared memory: for every layout it holds, with one
// or two groups side by side (channel rows) and in clusters of every size,
// the blocks' shares of each unit cover the unit's loads once, each load's
// elements are the unit's, a thread's loads are held_step apart and
// (channel rows) of the same channels of one group, the one the kernel
// gives the thread, and no share exceeds the slots.
TEST(GroupNormLayout, HeldSharesCoverEachGroupOnce) {
  int held = 0, side_by_side = 0;
  for (const Layout& l : layouts())
    for (DType dtype : {DType::kBFloat16, DType::kFloat32})
      for (int64_t groups : {1, 2, 4, 16}) {
        if (l.shape[1] % groups != 0) continue;
        const TensorView t = view(l, dtype);
        const int64_t elem = static_cast<int64_t>(t.element_size());
        const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, groups);
        const ops::FusedWalk walk = ops::fused_walk(g, t.data, t.data, elem);
        const ops::HeldPlan plan = ops::held_plan(g, walk, t.data, elem);
        SCOPED_TRACE(l.name + (dtype == DType::kFloat32 ? " f32" : " bf16") + " groups " +
                     std::to_string(groups));
        if (walk == ops::FusedWalk::kNone) {
          EXPECT_EQ(plan.loads, 0);
          continue;
        }
        // Contiguous and dense channels-last are held.
        if ((l.name.rfind("contiguous", 0) == 0 || l.name.rfind("channels_last", 0) == 0) &&
            l.name != "channels_last_window" && l.name != "channels_last_odd") {
          EXPECT_GT(plan.loads, 0);
        }
        if (plan.loads == 0) continue;
        ++held;
        EXPECT_EQ(plan.units, g.pairs());
        const std::vector<int64_t> off = offsets(t);
        std::map<int64_t, int64_t> element_at;
        for (int64_t i = 0; i < t.numel(); ++i) element_at[off[i]] = i;
        const int64_t C = t.shape[1], S = t.numel() / (t.shape[0] * C), cpg = C / groups;
        const int64_t T = ops::kGroupNormThreads;
        for (int k = 1; k <= ops::kHeldMaxUnitGroups; k *= 2) {
          for (int cluster = 1; cluster <= ops::kHeldMaxCluster; ++cluster) {
            SCOPED_TRACE("side by side " + std::to_string(k) + ", cluster " +
                         std::to_string(cluster));
            const ops::HeldPlan p = ops::held_shaped(plan, g.spatial, {k, cluster});
            if (k > 1 && (plan.per_position == 0 || groups % k != 0 ||
                          32 % (plan.per_position * k) != 0)) {
              EXPECT_EQ(p.loads, 0) << "not side by side";
              continue;
            }
            if (k > 1) ++side_by_side;
            ASSERT_EQ(p.unit_groups, k);
            ASSERT_EQ(p.units * k, g.pairs());
            ASSERT_EQ(p.blocks(), p.units * cluster);
            const int64_t step = ops::held_step(p);
            std::vector<int> hits(t.numel(), 0);
            for (int64_t unit = 0; unit < p.units; ++unit)
              for (int64_t rank = 0; rank < p.cluster; ++rank) {
                int64_t begin, end;
                ops::held_share(p, g.spatial, rank, &begin, &end);
                ASSERT_LE(end - begin, p.slots);
                for (int64_t j = begin; j < end; ++j) {
                  const int64_t o = ops::held_offset<int64_t>(p, unit, j);
                  if (j + T < end) {
                    ASSERT_EQ(ops::held_offset<int64_t>(p, unit, j + T), o + step);
                  }
                  for (int e = 0; e < p.vec; ++e) {
                    auto it = element_at.find(o + e);
                    ASSERT_NE(it, element_at.end()) << "load " << j << " of unit " << unit;
                    const int64_t i = it->second, n = i / (C * S), c = (i / S) % C;
                    ASSERT_EQ((n * groups + c / cpg) / k, unit) << "element " << i;
                    // Channel rows: the thread of load j, (j - begin) % T, keeps to
                    // channels (j % per_position) * vec + e of the unit, of its group
                    // (the kernel's: its column over the group's per_position / k).
                    if (p.per_position > 0) {
                      const int64_t column = ((j - begin) % T) % p.per_position;
                      ASSERT_EQ(c % (cpg * k), column * p.vec + e);
                      ASSERT_EQ(c / cpg % k, column / (p.per_position / k));
                    }
                    ++hits[i];
                  }
                }
              }
            for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(hits[i], 1) << "element " << i;
          }
        }
      }
  EXPECT_GT(held, 20);
  EXPECT_GT(side_by_side, 20);
}

// An H200 SM for the bf16 held kernel: 227 KiB a block less 256 static
// bytes, 228 KiB an SM, 1 KiB reserved a block, four blocks by registers,
// 132 SMs.
ops::HeldSm h200_sm() {
  ops::HeldSm sm;
  sm.block_bytes = 227 * 1024 - 256;
  sm.sm_bytes = 228 * 1024;
  sm.per_block = 1024 + 256;
  sm.max_blocks = 4;
  sm.sms = 132;
  return sm;
}

// The shapes are ordered by the bytes an SM may be given (blocks that fit
// it times a block's share), then by the bytes an SM is given with the
// blocks spread evenly, ties to more groups side by side, then to the
// larger cluster; every shape whose shares fit a block is offered, once.
TEST(GroupNormLayout, HeldShapeOrderPutsTheLeastBusySmFirst) {
  // Channels-last, 8 channels a group: one load a position, two side by
  // side.
  const Layout l{"channels_last", {2, 64, 24, 40}, {64 * 24 * 40, 1, 40 * 64, 64}};
  const TensorView t = view(l, DType::kBFloat16);
  const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, 8);
  const ops::HeldPlan plan =
      ops::held_plan(g, ops::fused_walk(g, t.data, t.data, 2), t.data, 2);
  ASSERT_EQ(plan.per_position, 1);
  ASSERT_EQ(plan.loads, 24 * 40);  // 15360 bytes a pair
  int ties = 0;
  for (int64_t block_bytes : {int64_t{1} << 20, int64_t{16384}, int64_t{4096}, int64_t{100}}) {
    for (int64_t sm_bytes : {int64_t{16} << 10, int64_t{40} << 10, int64_t{228} << 10}) {
      for (int64_t sms : {1, 8, 132}) {
        ops::HeldSm sm;
        sm.block_bytes = block_bytes;
        sm.sm_bytes = sm_bytes;
        sm.per_block = 1024;
        sm.max_blocks = 4;
        sm.sms = sms;
        ops::HeldShape order[ops::kHeldShapes];
        const int n = ops::held_shape_order(plan, g.spatial, sm, order);
        SCOPED_TRACE("block bytes " + std::to_string(block_bytes) + ", SM bytes " +
                     std::to_string(sm_bytes) + ", SMs " + std::to_string(sms));
        std::set<std::pair<int, int>> offered;
        std::pair<int64_t, int64_t> previous{-1, -1};
        for (int i = 0; i < n; ++i) {
          const ops::HeldShape s = order[i];
          ASSERT_TRUE(offered.insert({s.unit_groups, s.cluster}).second)
              << s.unit_groups << " x " << s.cluster << " twice";
          const ops::HeldPlan p = ops::held_shaped(plan, g.spatial, s);
          const int64_t share = p.slots * 16;
          ASSERT_GT(p.loads, 0);
          ASSERT_LE(share, block_bytes);
          const std::pair<int64_t, int64_t> rank{
              std::min<int64_t>(4, sm_bytes / (share + 1024)) * share,
              (p.blocks() + sms - 1) / sms * share};
          ASSERT_GE(rank, previous) << s.unit_groups << " x " << s.cluster;
          if (rank == previous) {
            ++ties;
            const ops::HeldShape before = order[i - 1];
            EXPECT_TRUE(s.unit_groups < before.unit_groups ||
                        (s.unit_groups == before.unit_groups && s.cluster < before.cluster))
                << "a tie goes to wider rows, then to the larger cluster";
          }
          previous = rank;
        }
        for (int k = 1; k <= ops::kHeldMaxUnitGroups; k *= 2)
          for (int cluster = 1; cluster <= ops::kHeldMaxCluster; ++cluster) {
            const ops::HeldPlan p = ops::held_shaped(plan, g.spatial, {k, cluster});
            EXPECT_EQ(offered.count({k, cluster}),
                      p.loads > 0 && p.slots * 16 <= block_bytes ? 1u : 0u)
                << k << " x " << cluster;
          }
      }
    }
  }
  EXPECT_GT(ties, 10);
}

// The benchmark's 2-D activation, bf16, 32 groups, on an H200. Contiguous:
// clusters of 6 first (192 blocks of 4800 loads, 76.8 KB: two an SM, 153.6
// KB), before 3 (one an SM of 153.6 KB) and the 8 (three an SM of 57.6 KB:
// 172.8 KB) of the thirteenth session; 1 does not fit a block; with its
// table of 16 weights and biases beside the loads. Channels-last, two loads
// (16 channels) a position: two groups side by side in clusters of 7 (112
// blocks of 131.7 KB, one an SM), which do not all fit at once on an H200,
// then in clusters of 6 (96 blocks of 153.6 KB, one an SM), which do, then
// one group a unit in clusters of 6.
TEST(GroupNormLayout, HeldPlanOfTheBenchmarkActivation) {
  using Shapes = std::vector<std::pair<int, int>>;
  for (bool channels_last : {false, true}) {
    Layout l{"benchmark", {1, 512, 90, 160}, {512 * 90 * 160, 90 * 160, 160, 1}};
    if (channels_last) l.strides = {512 * 90 * 160, 1, 160 * 512, 512};
    const TensorView t = view(l, DType::kBFloat16);
    const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, 32);
    const ops::FusedWalk walk = ops::fused_walk(g, t.data, t.data, 2);
    const ops::HeldPlan plan = ops::held_plan(g, walk, t.data, 2);
    EXPECT_EQ(plan.per_position, channels_last ? 2 : 0);
    ops::HeldSm sm = h200_sm();
    const int64_t table = channels_last ? 0 : 2 * 16 * 4;
    sm.block_bytes -= table;
    sm.per_block += table;
    ops::HeldShape order[ops::kHeldShapes];
    const int n = ops::held_shape_order(plan, g.spatial, sm, order);
    Shapes shapes;
    for (int i = 0; i < n; ++i) shapes.push_back({order[i].unit_groups, order[i].cluster});
    if (!channels_last) {
      EXPECT_EQ(shapes, (Shapes{{1, 6}, {1, 3}, {1, 8}, {1, 5}, {1, 7}, {1, 4}, {1, 2}}));
      const ops::HeldPlan p = ops::held_shaped(plan, g.spatial, order[0]);
      EXPECT_EQ(p.blocks(), 192);
      EXPECT_EQ(p.slots, 4800);
    } else {
      EXPECT_EQ(shapes, (Shapes{{2, 7}, {2, 6}, {1, 6}, {1, 3}, {1, 8}, {2, 5}, {1, 5}, {1, 7},
                                {2, 8}, {1, 4}, {2, 4}, {1, 2}}));
      const ops::HeldPlan p = ops::held_shaped(plan, g.spatial, order[1]);
      EXPECT_EQ(p.blocks(), 96);
      EXPECT_EQ(p.slots, 9600);
      EXPECT_EQ(p.per_position, 4);
    }
  }
}

// The held kernel's arithmetic (group_norm_held.cu) on the offset
// activation, contiguous f32 [1, 8, 192, 96], 2 groups, in clusters of 8:
// V sum chains a thread about its own first element, added in a tree, moved
// to thread 0's (move_sums); the block's tree; the cluster's partials about
// rank 0's mean in an xor tree. Its variance is as good as the other walks'.
TEST(GroupNormLayout, HeldArithmeticKeepsTheVarianceOfAnOffsetActivation) {
  const int64_t C = 8, H = 192, W = 96, G = 2, T = ops::kGroupNormThreads;
  const Layout l{"contiguous", {1, C, H, W}, {C * H * W, H * W, W, 1}};
  const TensorView t = view(l, DType::kFloat32);
  const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, G);
  ops::HeldPlan p = ops::held_plan(g, ops::fused_walk(g, t.data, t.data, 4), t.data, 4);
  ops::held_in_clusters(&p, g.spatial, 8);
  ASSERT_GT(p.slots, 2 * T) << "threads should hold several loads";
  std::vector<float> mem(C * H * W);
  for (size_t i = 0; i < mem.size(); ++i) mem[i] = offset_value(static_cast<int64_t>(i));
  for (int64_t pair = 0; pair < G; ++pair) {
    Moments partials;
    for (int64_t rank = 0; rank < p.cluster; ++rank) {
      int64_t begin, end;
      ops::held_share(p, g.spatial, rank, &begin, &end);
      std::vector<Sums> threads(T);
      const float block_shift = mem[ops::held_offset<int64_t>(p, pair, begin)];
      for (int64_t th = 0; th < T && begin + th < end; ++th) {
        const float shift = mem[ops::held_offset<int64_t>(p, pair, begin + th)];
        std::vector<float> s(p.vec, 0.f), ss(p.vec, 0.f);
        int64_t n = 0;
        for (int64_t j = begin + th; j < end; j += T, n += p.vec)
          for (int64_t k = 0; k < p.vec; ++k) {
            const float d = mem[ops::held_offset<int64_t>(p, pair, j) + k] - shift;
            s[k] += d;
            ss[k] += d * d;
          }
        for (int64_t w = p.vec / 2; w > 0; w /= 2)
          for (int64_t k = 0; k < w; ++k) {
            s[k] += s[k + w];
            ss[k] += ss[k + w];
          }
        ops::move_sums(n, shift, block_shift, &s[0], &ss[0]);
        threads[th] = {s[0], ss[0]};
      }
      const Sums block = block_sums(threads);
      partials.push_back(ops::moments_of_sums((end - begin) * p.vec, block_shift, block.s, block.ss));
    }
    const float ref = partials[0].mean;
    std::vector<ops::CentredSums> lanes(p.cluster);
    for (int64_t r = 0; r < p.cluster; ++r) lanes[r].add(partials[r], ref);
    for (int64_t width = 1; width < p.cluster; width *= 2)
      for (int64_t lane = 0; lane < p.cluster; lane += 2 * width)
        lanes[lane] = lanes[lane] + lanes[lane + width];
    const ops::GroupMoments m = lanes[0].moments(ref);
    const int64_t per_group = C / G * H * W;
    double sum = 0, sq = 0;
    for (int64_t i = pair * per_group; i < (pair + 1) * per_group; ++i) sum += mem[i];
    const double mean = sum / per_group;
    for (int64_t i = pair * per_group; i < (pair + 1) * per_group; ++i)
      sq += (mem[i] - mean) * (mem[i] - mean);
    ASSERT_EQ(m.count, per_group);
    EXPECT_NEAR(m.mean, mean, 1e-4);
    EXPECT_NEAR(m.m2 / m.count, sq / per_group, 1e-5 * sq / per_group) << "pair " << pair;
  }
}

}  // namespace
