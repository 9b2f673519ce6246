// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The CUDA GroupNorm kernels' walk of a tensor (core/cuda/group_norm_layout.h),
// checked on the host, so that a machine without a GPU catches a wrong index:
// for every layout the loads of each (sample, group), vectors included, must
// cover exactly that group's elements, once each; the fast paths (vectors,
// the dense apply) must be taken where they apply; and the dense apply's
// channel and sample of every memory position must be the element's own.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
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
  bool vectors = false;  // the moments kernel may load 16-byte vectors (when runs hold whole ones)
  bool dense = false;    // the apply should walk memory in order
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
  l.push_back({"channels_last", {N, C, H, W}, {C * H * W, 1, W * C, C}, 0, true, true});
  l.push_back({"channels_last_3d", {N, C, T, H, W},
               {C * T * H * W, 1, H * W * C, W * C, C}, 0, true, true});
  l.push_back({"contiguous_5d", {N, C, T, H, W},
               {C * T * H * W, T * H * W, H * W, W, 1}, 0, true, true});
  l.push_back({"misaligned", {N, C, H, W}, {C * H * W, H * W, W, 1}, 1, false, true});
  // Rows 2..5 of a channels-last [N, C, 9, W]: a halo-padded slab's interior.
  l.push_back({"channels_last_window", {N, C, 4, W}, {C * 9 * W, 1, W * C, C}, 2 * W * C, true,
               false});
  l.push_back({"gapped", {N, C, H, W}, {C * H * 2 * W, H * 2 * W, 2 * W, 2}, 0, false, false});
  l.push_back({"w_flipped", {N, C, H, W}, {C * H * W, H * W, W, -1}, W - 1, false, false});
  l.push_back({"hw_transposed", {N, C, H, W}, {C * H * W, H * W, 1, H}, 0, false, true});
  l.push_back({"nc_only", {N, C}, {C, 1}, 0, true, true});
  l.push_back({"batch_inner", {N, C, H, W}, {1, H * W * N, W * N, N}, 0, false, true});
  return l;
}


TEST(GroupNormLayout, LoadsCoverEachGroupOnceAndFastPathsApply) {
  for (const Layout& l : layouts())
    for (DType dtype : {DType::kBFloat16, DType::kFloat32})
      for (int64_t groups : {1, 4, 16}) {
        SCOPED_TRACE(l.name + (dtype == DType::kFloat32 ? " f32" : " bf16") + " groups " +
                     std::to_string(groups));
        const TensorView t = view(l, dtype);
        const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, groups);
        const std::vector<int64_t> off = offsets(t);
        std::map<int64_t, int64_t> element_at;  // memory offset -> logical index
        for (int64_t i = 0; i < t.numel(); ++i) element_at[off[i]] = i;
        const int64_t C = t.shape[1], S = t.numel() / (t.shape[0] * C), cpg = C / groups;

        const ops::GroupRuns runs =
            ops::group_runs(g, t.data, static_cast<int64_t>(t.element_size()));
        // Vectors wherever the layout allows them and runs hold whole vectors.
        const bool whole_vectors = runs.run_len * static_cast<int64_t>(t.element_size()) % 16 == 0;
        EXPECT_EQ(runs.vec > 1, l.vectors && whole_vectors) << "vector loads";
        std::vector<int> hits(t.numel(), 0);
        for (int64_t pair = 0; pair < g.pairs(); ++pair)
          for (int64_t j = 0; j < runs.loads(); ++j)
            for (int k = 0; k < runs.vec; ++k) {
              const int64_t o = ops::pair_base(g, pair) + ops::load_offset(g, runs, j) + k;
              auto it = element_at.find(o);
              ASSERT_NE(it, element_at.end()) << "pair " << pair << " load " << j
                                              << " reads offset " << o << ", no element";
              const int64_t i = it->second, n = i / (C * S), c = (i / S) % C;
              ASSERT_EQ(n * groups + c / cpg, pair) << "element " << i << " read for pair " << pair;
              ++hits[i];
            }
        for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(hits[i], 1) << "element " << i;

        EXPECT_EQ(ops::dense_same_layout(g), l.dense) << "dense apply";
        if (ops::dense_same_layout(g)) {
          int64_t n_div, c_div;
          ops::dense_divisors(g, &n_div, &c_div);
          for (int64_t i = 0; i < t.numel(); ++i) {
            const int64_t p = off[i];
            ASSERT_EQ((p / c_div) % C, (i / S) % C) << "channel of offset " << p;
            ASSERT_EQ((p / n_div) % t.shape[0], i / (C * S)) << "sample of offset " << p;
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

// The moments kernel's arithmetic, emulated on the host in the kernel's
// order: per-thread shifted sums over the kernel's load assignment, the warp
// tree (shuffle-down by 16, 8, 4, 2, 1), the warps in order, the splits in
// order, then the ranks in order. An activation of mean 1000 and spread of
// order 1 must keep its variance, which E[x^2] - E[x]^2 in f32 does not.
ops::GroupMoments block_moments(const std::vector<ops::GroupMoments>& threads) {
  std::vector<ops::GroupMoments> warp_results;
  for (size_t w = 0; w < threads.size(); w += 32) {
    std::vector<ops::GroupMoments> lane(threads.begin() + w, threads.begin() + w + 32);
    for (int delta = 16; delta > 0; delta /= 2) {
      std::vector<ops::GroupMoments> next(32);
      for (int l = 0; l < 32; ++l)  // out-of-range shuffles return the lane's own value
        next[l] = ops::combine_moments(lane[l], lane[l + delta < 32 ? l + delta : l]);
      lane = next;
    }
    warp_results.push_back(lane[0]);
  }
  ops::GroupMoments m = warp_results[0];
  for (size_t w = 1; w < warp_results.size(); ++w) m = ops::combine_moments(m, warp_results[w]);
  return m;
}

TEST(GroupNormLayout, KernelArithmeticKeepsTheVarianceOfAnOffsetActivation) {
  const int64_t C = 8, H = 192, W = 96, G = 2, ranks = 3;
  auto value = [](int64_t i) {  // 1000 + a deterministic spread in [-2, 2)
    uint64_t h = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return static_cast<float>(1000.0 + static_cast<double>(h >> 11) / 9007199254740992.0 * 4 - 2);
  };
  std::vector<float> whole(C * H * W);
  for (size_t i = 0; i < whole.size(); ++i) whole[i] = value(static_cast<int64_t>(i));
  std::vector<ops::GroupMoments> per_rank(ranks * G);
  for (int64_t r = 0; r < ranks; ++r) {
    const int64_t start = H * r / ranks, rows = H * (r + 1) / ranks - start;
    const Layout l{"slab", {1, C, rows, W}, {C * H * W, H * W, W, 1}};
    TensorView t = view(l, DType::kFloat32);
    const ops::GroupNormGeometry g = ops::group_norm_geometry(t, t, G);
    const ops::GroupRuns runs = ops::group_runs(g, t.data, 4);
    const int64_t splits = ops::group_splits(g);
    ASSERT_GT(splits, 1) << "the case should exercise split blocks";
    for (int64_t pair = 0; pair < G; ++pair) {
      std::vector<ops::GroupMoments> partials;
      for (int64_t split = 0; split < splits; ++split) {
        int64_t begin, end;
        ops::split_range(runs.loads(), split, splits, &begin, &end);
        std::vector<ops::GroupMoments> threads;
        for (int th = 0; th < ops::kGroupNormThreads; ++th) {
          ops::ShiftedSums acc;
          for (int64_t j = begin + th; j < end; j += ops::kGroupNormThreads)
            for (int k = 0; k < runs.vec; ++k) {
              // The slab's element offset, then its place in the whole tensor.
              const int64_t o = ops::pair_base(g, pair) + ops::load_offset(g, runs, j) + k;
              acc.add(whole[start * W + o]);
            }
          threads.push_back(acc.moments());
        }
        partials.push_back(block_moments(threads));
      }
      ops::GroupMoments m = partials[0];
      for (size_t k = 1; k < partials.size(); ++k) m = ops::combine_moments(m, partials[k]);
      per_rank[r * G + pair] = m;
    }
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

}  // namespace
