// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Distributed GroupNorm cases and their reference, shared by the host tests
// (group_norm_test.cc) and the CUDA tests (group_norm_gpu_test.cc, which
// defines GN_TEST_CUDA): a Case is a whole activation, a split of it over a
// grid of ranks (1-D along one spatial axis, 2-D along two), a dtype, the
// input and output layouts and the affine parameters. run_case builds one
// rank's slab (inside a poisoned parent buffer), normalises it with
// diffcoll_group_norm (on the host, or through device memory on a CUDA
// stream) and checks every element against GroupNorm of the whole activation,
// written plainly here in double, and that no byte outside the output moved.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "halo_support.h"

#ifdef GN_TEST_CUDA
#include <cuda_runtime.h>
#endif

namespace gn_test {

using halo_test::Index;
using halo_test::Layout;
using halo_test::Shape;
using halo_test::Tensor;

struct Case {
  Shape whole;            // [N, C, spatial...]
  int groups = 1;
  int dtype = DIFFCOLL_FLOAT32;
  int grid[2] = {1, 1};   // ranks along split axis 0 and 1
  int axis[2] = {2, 3};   // tensor dimensions split (axis[1] unused when grid[1] == 1)
  Layout in_layout = Layout::kContiguous;
  bool in_place = true;
  Layout out_layout = Layout::kContiguous;  // when !in_place
  bool affine = false;
  bool affine_f32 = false;  // weight and bias in float32 rather than the input's dtype
  double offset = 0;        // added to every value (mean >> std tests the combine)
  double eps = 1e-5;
  double tol = 0;  // absolute tolerance; 0: by dtype (tolerance())

  std::string name() const {
    std::ostringstream os;
    os << halo_test::str(whole) << " G" << groups << " " << halo_test::dtype_str(dtype) << " grid "
       << grid[0] << "x" << grid[1] << " axes " << axis[0] << "," << axis[1] << " "
       << halo_test::layout_str(in_layout) << (in_place ? " in place" : " -> ")
       << (in_place ? "" : halo_test::layout_str(out_layout)) << (affine ? " affine" : "")
       << (affine_f32 ? "(f32)" : "") << " offset " << offset;
    return os.str();
  }
};

// A deterministic value in [-2, 2) for a flat index and salt.
inline double noise(uint64_t i, uint64_t salt) {
  uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ (salt * 0xBF58476D1CE4E5B9ull);
  h ^= h >> 31;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 29;
  return static_cast<double>(h >> 11) / static_cast<double>(1ull << 53) * 4.0 - 2.0;
}

// `v` as the dtype stores it.
inline double rounded(int dtype, double v) {
  uint8_t bytes[8];
  halo_test::store(dtype, bytes, v);
  return halo_test::load(dtype, bytes);
}

inline int64_t flat(const Index& idx, const Shape& shape) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}

// The whole activation, the affine parameters and GroupNorm of the whole in double.
struct Reference {
  std::vector<double> x, weight, bias, y;

  Reference(const Case& c, uint64_t salt) {
    const int64_t n = halo_test::numel(c.whole), N = c.whole[0], C = c.whole[1];
    const int64_t S = n / std::max<int64_t>(N * C, 1), cpg = C / c.groups;
    const int pdtype = c.affine_f32 ? DIFFCOLL_FLOAT32 : c.dtype;
    x.resize(n);
    for (int64_t i = 0; i < n; ++i)
      x[i] = rounded(c.dtype, c.offset + noise(i, salt) * (1 + (i / S) % 3));
    weight.assign(C, 1.0);
    bias.assign(C, 0.0);
    if (c.affine)
      for (int64_t ch = 0; ch < C; ++ch) {
        weight[ch] = rounded(pdtype, 1 + 0.5 * noise(ch, salt + 1));
        bias[ch] = rounded(pdtype, noise(ch, salt + 2));
      }
    y.resize(n);
    for (int64_t b = 0; b < N; ++b)
      for (int64_t g = 0; g < c.groups; ++g) {
        const int64_t begin = (b * C + g * cpg) * S, end = begin + cpg * S;
        double sum = 0, sq = 0;
        for (int64_t i = begin; i < end; ++i) sum += x[i];
        const double mean = sum / static_cast<double>(end - begin);
        for (int64_t i = begin; i < end; ++i) sq += (x[i] - mean) * (x[i] - mean);
        const double rstd = 1 / std::sqrt(sq / static_cast<double>(end - begin) + c.eps);
        for (int64_t i = begin; i < end; ++i) {
          const int64_t ch = (i / S) % C;
          y[i] = (x[i] - mean) * rstd * weight[ch] + bias[ch];
        }
      }
  }
};

// Where the tensors live: the host, or CUDA device `device` with `stream`.
struct Where {
  int device = -1;
  void* stream = nullptr;
};

#ifdef GN_TEST_CUDA
// A device mirror of a host tensor's parent buffer (poison included).
struct Mirror {
  Tensor& host;
  void* device = nullptr;
  explicit Mirror(Tensor& t) : host(t) {
    EXPECT_EQ(cudaMalloc(&device, t.parent_bytes()), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(device, t.parent_data(), t.parent_bytes(), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~Mirror() { cudaFree(device); }
  diffcoll_tensor_t desc(int id) {
    diffcoll_tensor_t d = host.desc();
    d.data = static_cast<uint8_t*>(device) + host.offset_bytes();
    d.device_type = DIFFCOLL_DEVICE_CUDA;
    d.device_id = id;
    return d;
  }
  void download() {
    EXPECT_EQ(cudaMemcpy(host.parent_data(), device, host.parent_bytes(), cudaMemcpyDeviceToHost),
              cudaSuccess);
  }
};
#endif

inline double tolerance(int dtype, double expected) {
  if (dtype == DIFFCOLL_BFLOAT16) return 1e-2 * std::fabs(expected) + 2e-2;
  return 2e-5 * std::fabs(expected) + 1e-4;
}

// One rank's part of a case: its slab normalised must equal the whole's
// GroupNorm at the same places. Returns the slab's result in row-major order.
inline std::vector<double> run_case(const Case& c, const Reference& ref, int rank,
                                    diffcoll_comm_t* comm, Where where = {}) {
  SCOPED_TRACE(c.name() + " rank " + std::to_string(rank));
  const int64_t C = c.whole[1];
  Shape slab = c.whole;
  Index start(c.whole.size(), 0);
  const int coord[2] = {rank / c.grid[1], rank % c.grid[1]};
  for (int a = 0; a < 2; ++a) {
    if (c.grid[a] == 1) continue;
    int64_t s, l;
    EXPECT_EQ(diffcoll_split_extent(c.whole[c.axis[a]], c.grid[a], coord[a], &s, &l),
              DIFFCOLL_SUCCESS);
    start[c.axis[a]] = s;
    slab[c.axis[a]] = l;
  }
  Tensor in(c.dtype, slab, c.in_layout);
  Tensor out(c.dtype, slab, c.out_layout);
  in.fill([&](const Index& idx) {
    Index g = idx;
    for (size_t d = 0; d < g.size(); ++d) g[d] += start[d];
    return ref.x[flat(g, c.whole)];
  });
  const int pdtype = c.affine_f32 ? DIFFCOLL_FLOAT32 : c.dtype;
  Tensor weight(pdtype, {C}, Layout::kGapped), bias(pdtype, {C}, Layout::kContiguous);
  weight.fill([&](const Index& i) { return ref.weight[i[0]]; });
  bias.fill([&](const Index& i) { return ref.bias[i[0]]; });
  Tensor& result = c.in_place ? in : out;

  diffcoll_tensor_t tin = in.desc(), tout = out.desc(), tw = weight.desc(), tb = bias.desc();
#ifdef GN_TEST_CUDA
  std::vector<std::unique_ptr<Mirror>> mirrors;  // in, out, weight, bias on the device
  if (where.device >= 0) {
    Tensor* hosts[4] = {&in, &out, &weight, &bias};
    diffcoll_tensor_t* descs[4] = {&tin, &tout, &tw, &tb};
    for (int k = 0; k < 4; ++k) {
      mirrors.emplace_back(new Mirror(*hosts[k]));
      *descs[k] = mirrors.back()->desc(where.device);
    }
  }
#endif
  const diffcoll_status_t st =
      diffcoll_group_norm(comm, &tin, c.in_place ? nullptr : &tout, c.affine ? &tw : nullptr,
                          c.affine ? &tb : nullptr, c.groups, c.eps, where.stream);
  EXPECT_EQ(st, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  if (st != DIFFCOLL_SUCCESS) return {};
#ifdef GN_TEST_CUDA
  if (where.device >= 0) {
    EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(where.stream)), cudaSuccess);
    mirrors[0]->download();
    mirrors[1]->download();
  }
#endif
  int bad = 0;
  std::vector<double> values(halo_test::numel(slab));
  for (int64_t i = 0; i < halo_test::numel(slab); ++i) {
    const Index idx = halo_test::unflatten(i, slab);
    Index g = idx;
    for (size_t d = 0; d < g.size(); ++d) g[d] += start[d];
    const double expected = ref.y[flat(g, c.whole)], actual = result.get(idx);
    values[i] = actual;
    const double tol = c.tol > 0 ? c.tol : tolerance(c.dtype, expected);
    if (!(std::fabs(actual - expected) <= tol) && bad++ < 5)
      ADD_FAILURE() << "element " << halo_test::str(g) << ": " << actual << ", whole-tensor "
                    << "GroupNorm gives " << expected;
  }
  EXPECT_EQ(bad, 0) << bad << " wrong elements";
  EXPECT_EQ(result.gap_bytes_changed(), 0u) << "bytes outside the output were written";
  if (!c.in_place) {
    for (int64_t i = 0; i < halo_test::numel(slab); ++i) {
      const Index idx = halo_test::unflatten(i, slab);
      Index g = idx;
      for (size_t d = 0; d < g.size(); ++d) g[d] += start[d];
      if (in.get(idx) != ref.x[flat(g, c.whole)]) {
        ADD_FAILURE() << "the input changed at " << halo_test::str(g);
        break;
      }
    }
  }
  return values;
}

// float16 or float32 [2, 8, 7, 5] (4 groups) split along H over `ranks`,
// each slab held W-flipped (a negative stride), normalised in place: the
// halo_test tensors build neither f16 nor negative strides, so this case
// builds its own buffer.
inline void run_flipped_case(int dtype, int rank, int ranks, diffcoll_comm_t* comm,
                             Where where = {}) {
  SCOPED_TRACE(std::string(dtype == DIFFCOLL_FLOAT16 ? "f16" : "f32") + " flipped, rank " +
               std::to_string(rank));
  const int64_t N = 2, C = 8, H = 7, W = 5, G = 4, S = H * W, cpg = C / G;
  const size_t es = dtype == DIFFCOLL_FLOAT16 ? 2 : 4;
  auto encode = [&](double v, uint8_t* p) {
    if (dtype == DIFFCOLL_FLOAT16) {
      const _Float16 f = static_cast<_Float16>(v);
      std::memcpy(p, &f, 2);
    } else {
      const float f = static_cast<float>(v);
      std::memcpy(p, &f, 4);
    }
  };
  auto decode = [&](const uint8_t* p) {
    if (dtype == DIFFCOLL_FLOAT16) {
      _Float16 f;
      std::memcpy(&f, p, 2);
      return static_cast<double>(f);
    }
    float f;
    std::memcpy(&f, p, 4);
    return static_cast<double>(f);
  };
  // The whole activation as stored, and its GroupNorm in double.
  std::vector<double> x(N * C * S), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    uint8_t b[4];
    encode(1.5 + noise(i, 9), b);
    x[i] = decode(b);
  }
  for (int64_t g = 0; g < N * G; ++g) {
    const int64_t begin = g * cpg * S, end = begin + cpg * S;
    double sum = 0, sq = 0;
    for (int64_t i = begin; i < end; ++i) sum += x[i];
    const double mean = sum / static_cast<double>(end - begin);
    for (int64_t i = begin; i < end; ++i) sq += (x[i] - mean) * (x[i] - mean);
    const double rstd = 1 / std::sqrt(sq / static_cast<double>(end - begin) + 1e-5);
    for (int64_t i = begin; i < end; ++i) y[i] = (x[i] - mean) * rstd;
  }
  int64_t start, rows;
  EXPECT_EQ(diffcoll_split_extent(H, ranks, rank, &start, &rows), DIFFCOLL_SUCCESS);
  std::vector<uint8_t> buf(static_cast<size_t>(N * C * rows * W) * es);
  // Logical [n, c, h, w] lives at memory [n, c, h, W - 1 - w].
  auto at = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
    return buf.data() + (((n * C + c) * rows + h) * W + (W - 1 - w)) * es;
  };
  auto whole = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
    return ((n * C + c) * H + start + h) * W + w;
  };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < rows; ++h)
        for (int64_t w = 0; w < W; ++w) encode(x[whole(n, c, h, w)], at(n, c, h, w));
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = at(0, 0, 0, 0);
  t.dtype = dtype;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = 4;
  const int64_t shape[4] = {N, C, rows, W}, strides[4] = {C * rows * W, rows * W, W, -1};
  for (int d = 0; d < 4; ++d) {
    t.shape[d] = shape[d];
    t.strides[d] = strides[d];
  }
#ifdef GN_TEST_CUDA
  void* device = nullptr;
  if (where.device >= 0) {
    EXPECT_EQ(cudaMalloc(&device, buf.size()), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(device, buf.data(), buf.size(), cudaMemcpyHostToDevice), cudaSuccess);
    t.data = static_cast<uint8_t*>(device) + (at(0, 0, 0, 0) - buf.data());
    t.device_type = DIFFCOLL_DEVICE_CUDA;
    t.device_id = where.device;
  }
#endif
  EXPECT_EQ(diffcoll_group_norm(comm, &t, nullptr, nullptr, nullptr, G, 1e-5, where.stream),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
#ifdef GN_TEST_CUDA
  if (where.device >= 0) {
    EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(where.stream)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(buf.data(), device, buf.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(device);
  }
#endif
  int bad = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < rows; ++h)
        for (int64_t w = 0; w < W; ++w) {
          const double got = decode(at(n, c, h, w)), want = y[whole(n, c, h, w)];
          if (!(std::fabs(got - want) <= 2e-3 * std::fabs(want) + 2e-3) && bad++ < 3)
            ADD_FAILURE() << "element [" << n << "," << c << "," << start + h << "," << w
                          << "]: " << got << ", whole-tensor GroupNorm gives " << want;
        }
  EXPECT_EQ(bad, 0);
}

// Every combination the host tests cover for a grid (rows x cols): groups
// 1, 8, 32; bf16 and f32; contiguous, channels-last and gapped inputs; in
// place and into another layout; affine in both dtypes; batch 2; uneven
// slabs; 4-D (split H, or H and W) and 5-D (split T, or T and H).
inline std::vector<Case> cases_for_grid(int rows, int cols) {
  std::vector<Case> out;
  const std::vector<Shape> shapes4 = {{2, 32, 11, 7}, {1, 64, 5, 9}};
  const int groups[] = {1, 8, 32};
  const int dtypes[] = {DIFFCOLL_FLOAT32, DIFFCOLL_BFLOAT16};
  const Layout layouts[] = {Layout::kContiguous, Layout::kChannelsLast, Layout::kGapped};
  int k = 0;
  for (const Shape& s : shapes4)
    for (int g : groups)
      for (int dt : dtypes)
        for (Layout l : layouts) {
          Case c;
          c.whole = s;
          c.groups = g;
          c.dtype = dt;
          c.grid[0] = rows;
          c.grid[1] = cols;
          c.axis[0] = 2;
          c.axis[1] = 3;
          c.in_layout = l;
          c.in_place = k % 2 == 0;
          c.out_layout = layouts[(k / 2) % 3];
          c.affine = k % 3 != 0;
          c.affine_f32 = k % 3 == 2;
          c.offset = k % 4 == 1 ? 3 : 0;
          out.push_back(c);
          ++k;
        }
  // 5-D video activations split along T (and H).
  for (int dt : dtypes)
    for (Layout l : {Layout::kContiguous, Layout::kChannelsLast}) {
      Case c;
      c.whole = {2, 16, 7, 5, 4};
      c.groups = 8;
      c.dtype = dt;
      c.grid[0] = rows;
      c.grid[1] = cols;
      c.axis[0] = 2;
      c.axis[1] = 3;
      c.in_layout = l;
      c.affine = true;
      c.in_place = l == Layout::kContiguous;
      out.push_back(c);
    }
  return out;
}

}  // namespace gn_test
