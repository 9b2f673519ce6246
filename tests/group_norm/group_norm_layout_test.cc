// The CUDA GroupNorm kernels' walk of a tensor (core/cuda/group_norm_layout.h),
// checked on the host, so that a machine without a GPU catches a wrong index:
// for every layout the loads of each (sample, group), vectors included, must
// cover exactly that group's elements, once each; the fast paths (vectors,
// the dense apply) must be taken where they apply; and the dense apply's
// channel and sample of every memory position must be the element's own.
#include <gtest/gtest.h>

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

}  // namespace
