// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The halo test cases and their reference, shared by the host tests
// (halo_test.cc) and the CUDA tests (halo_gpu_test.cc, which defines
// HALO_TEST_CUDA): a Case is a grid, a whole tensor, a layout, a dtype, the
// split axes, halo widths and boundary modes; run_case builds one rank's
// padded slab, exchanges (on the host, or through device memory on a CUDA
// stream), and checks every element against the whole tensor padded once and
// a convolution against the whole tensor's.
#pragma once

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "halo_support.h"

#ifdef HALO_TEST_CUDA
#include <cuda_runtime.h>
#endif

namespace halo_test {

constexpr double kSentinel = 77;  // what the halo holds before the exchange

enum Mode {
  Z = DIFFCOLL_HALO_ZEROS,
  REP = DIFFCOLL_HALO_REPLICATE,
  REF = DIFFCOLL_HALO_REFLECT,
  CIRC = DIFFCOLL_HALO_CIRCULAR,
  U = DIFFCOLL_HALO_UNTOUCHED
};

inline const char* mode_str(int m) {
  switch (m) {
    case Z:
      return "zeros";
    case REP:
      return "replicate";
    case REF:
      return "reflect";
    case CIRC:
      return "circular";
    case U:
      return "untouched";
  }
  return "?";
}

struct Case {
  int grid[2] = {1, 1};
  Shape whole;
  Layout layout = Layout::kContiguous;
  int dtype = DIFFCOLL_FLOAT32;
  int axis_arg[2] = {-2, -1};  // as passed in the config
  int dim[2] = {-1, -1};       // resolved; -1: axis unused
  int before[2] = {0, 0};
  int after[2] = {0, 0};
  int mode_before[2] = {Z, Z};
  int mode_after[2] = {Z, Z};
  bool corners = true;
  int k = 3;  // convolution kernel

  std::string name() const {
    std::ostringstream os;
    os << grid[0] << "x" << grid[1] << " " << str(whole) << " " << layout_str(layout) << " "
       << dtype_str(dtype);
    for (int g = 0; g < 2; ++g)
      if (dim[g] >= 0)
        os << " axis" << g << "=dim" << dim[g] << " w=(" << before[g] << "," << after[g] << ") "
           << mode_str(mode_before[g]) << "/" << mode_str(mode_after[g]);
    os << (corners ? "" : " no-corners") << " k=" << k;
    return os.str();
  }

  diffcoll_halo_config_t config() const {
    diffcoll_halo_config_t c = DIFFCOLL_HALO_CONFIG_INIT;
    c.grid_rows = grid[0];
    c.grid_cols = grid[1];
    c.row_axis = axis_arg[0];
    c.col_axis = axis_arg[1];
    c.row_before = before[0];
    c.row_after = after[0];
    c.col_before = before[1];
    c.col_after = after[1];
    c.row_boundary_before = mode_before[0];
    c.row_boundary_after = mode_after[0];
    c.col_boundary_before = mode_before[1];
    c.col_boundary_after = mode_after[1];
    c.exchange_corners = corners ? 1 : 0;
    return c;
  }
};

// The whole tensor's values: small integers, exact in bf16.
inline double whole_value(const Index& idx, uint64_t salt) {
  uint64_t h = 0x9E3779B97F4A7C15ull * (salt + 1);
  for (int64_t i : idx) h = (h ^ static_cast<uint64_t>(i + 17)) * 0x100000001B3ull;
  h ^= h >> 29;
  return static_cast<double>(static_cast<int64_t>(h % 13) - 6);
}

// The whole tensor padded once, at `idx` in whole coordinates (split axes may
// lie outside [0, extent)): UNTOUCHED keeps what was there (the sentinel),
// then ZEROS gives zero, the other modes remap the index.
inline double whole_padded(const Case& c, Index idx, uint64_t salt) {
  bool keep = false, zero = false;
  for (int g = 0; g < 2; ++g) {
    if (c.dim[g] < 0) continue;
    int64_t& x = idx[c.dim[g]];
    const int64_t e = c.whole[c.dim[g]];
    if (x >= 0 && x < e) continue;
    const int mode = x < 0 ? c.mode_before[g] : c.mode_after[g];
    switch (mode) {
      case U:
        keep = true;
        break;
      case Z:
        zero = true;
        break;
      case REP:
        x = x < 0 ? 0 : e - 1;
        break;
      case REF:
        x = x < 0 ? -x : 2 * (e - 1) - x;
        break;
      case CIRC:
        x = ((x % e) + e) % e;
        break;
    }
  }
  if (keep) return kSentinel;
  if (zero) return 0;
  return whole_value(idx, salt);
}

// A deterministic small integer weight per (channel, kernel offsets).
inline double weight(const Index& key) {
  int64_t h = 7;
  for (int64_t i : key) h = h * 31 + i + 3;
  return static_cast<double>(h % 5) - 2;
}

// Valid convolution over dimensions 2.. of `shape` (kernel k in each), summed
// over dimension 1, at output position `out` (dimension 1 ignored).
template <typename Get>
double conv_at(const Shape& shape, int k, const Index& out, Get get) {
  const int nd = static_cast<int>(shape.size());
  const int spatial = nd - 2;
  int64_t taps = 1;
  for (int s = 0; s < spatial; ++s) taps *= k;
  double acc = 0;
  Index in = out;
  Index key(spatial + 1);
  for (int64_t ch = 0; ch < shape[1]; ++ch) {
    in[1] = ch;
    key[0] = ch;
    for (int64_t t = 0; t < taps; ++t) {
      int64_t rest = t;
      for (int s = spatial - 1; s >= 0; --s) {
        const int64_t off = rest % k;
        rest /= k;
        in[2 + s] = out[2 + s] + off;
        key[1 + s] = off;
      }
      acc += weight(key) * get(in);
    }
  }
  return acc;
}

inline int64_t split_start(int64_t extent, int parts, int index, int64_t* length) {
  int64_t start = 0;
  EXPECT_EQ(diffcoll_split_extent(extent, parts, index, &start, length), DIFFCOLL_SUCCESS);
  return start;
}

#ifdef HALO_TEST_CUDA
// A host tensor's parent buffer mirrored in device memory.
struct Mirror {
  void* device = nullptr;
  Tensor* host = nullptr;
  explicit Mirror(Tensor& t, int device_id) : host(&t) {
    EXPECT_EQ(cudaSetDevice(device_id), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&device, t.parent_bytes()), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(device, t.parent_data(), t.parent_bytes(), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~Mirror() { cudaFree(device); }
  Mirror(const Mirror&) = delete;
  diffcoll_tensor_t desc(int device_id) {
    diffcoll_tensor_t d = host->desc();
    d.data = static_cast<char*>(device) + host->offset_bytes();
    d.device_type = DIFFCOLL_DEVICE_CUDA;
    d.device_id = device_id;
    return d;
  }
  void download() {
    EXPECT_EQ(cudaMemcpy(host->parent_data(), device, host->parent_bytes(), cudaMemcpyDeviceToHost),
              cudaSuccess);
  }
};
#endif

// Where run_case runs the exchange: on host memory, or (CUDA tests) on a copy
// of the tensors in the memory of `device` on `stream`.
struct Where {
  int device = -1;
  void* stream = nullptr;
};

// Builds rank `rank`'s padded slab for case `c`, exchanges, and checks it
// element by element and through a convolution. Returns the pack counters.
inline diffcoll_stats_t run_case(const Case& c, int rank, diffcoll_comm_t* comm, uint64_t salt,
                                 bool into = false, Where where = Where()) {
  const int coord[2] = {rank / c.grid[1], rank % c.grid[1]};
  int64_t start[2] = {0, 0}, length[2] = {0, 0};
  Shape padded_shape = c.whole, interior_shape = c.whole;
  for (int g = 0; g < 2; ++g) {
    if (c.dim[g] < 0) continue;
    start[g] = split_start(c.whole[c.dim[g]], c.grid[g], coord[g], &length[g]);
    interior_shape[c.dim[g]] = length[g];
    padded_shape[c.dim[g]] = c.before[g] + length[g] + c.after[g];
  }
  // Whole coordinates of a padded index, and where it lies.
  auto to_whole = [&](Index idx, int* halo_axes) {
    *halo_axes = 0;
    for (int g = 0; g < 2; ++g) {
      if (c.dim[g] < 0) continue;
      const int64_t i = idx[c.dim[g]] - c.before[g];
      if (i < 0 || i >= length[g]) ++*halo_axes;
      idx[c.dim[g]] = i + start[g];
    }
    return idx;
  };
  Tensor padded(c.dtype, padded_shape, c.layout);
  Tensor input;
  if (into) {
    input = Tensor(c.dtype, interior_shape, Layout::kContiguous);
    input.fill([&](const Index& idx) {
      Index w = idx;
      for (int g = 0; g < 2; ++g)
        if (c.dim[g] >= 0) w[c.dim[g]] += start[g];
      return whole_value(w, salt);
    });
    padded.fill([&](const Index&) { return kSentinel; });
  } else {
    padded.fill([&](const Index& idx) {
      int halo = 0;
      Index w = to_whole(idx, &halo);
      return halo ? kSentinel : whole_value(w, salt);
    });
  }
  diffcoll_halo_config_t cfg = c.config();
  diffcoll_halo_plan_t* plan = nullptr;
  diffcoll_stats_t stats = DIFFCOLL_STATS_INIT;
  EXPECT_EQ(diffcoll_halo_plan_create(comm, &cfg, &plan), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  if (!plan) return stats;
  EXPECT_EQ(diffcoll_comm_reset_stats(comm), DIFFCOLL_SUCCESS);
  diffcoll_status_t st;
  if (where.device < 0) {
    diffcoll_tensor_t d = padded.desc();
    if (into) {
      diffcoll_tensor_t in = input.desc();
      st = diffcoll_halo_exchange_into(plan, &in, &d, nullptr);
    } else {
      st = diffcoll_halo_exchange(plan, &d, nullptr);
    }
  } else {
#ifdef HALO_TEST_CUDA
    Mirror dev_padded(padded, where.device);
    diffcoll_tensor_t d = dev_padded.desc(where.device);
    if (into) {
      Mirror dev_input(input, where.device);
      diffcoll_tensor_t in = dev_input.desc(where.device);
      st = diffcoll_halo_exchange_into(plan, &in, &d, where.stream);
      EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(where.stream)), cudaSuccess);
    } else {
      st = diffcoll_halo_exchange(plan, &d, where.stream);
      EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(where.stream)), cudaSuccess);
    }
    dev_padded.download();
#else
    st = DIFFCOLL_ERR_UNSUPPORTED;
#endif
  }
  EXPECT_EQ(st, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  stats = stats_of(comm);
  EXPECT_EQ(diffcoll_halo_plan_destroy(plan), DIFFCOLL_SUCCESS);
  if (st != DIFFCOLL_SUCCESS) return stats;

  // Every element against the padded whole.
  for (int64_t f = 0; f < numel(padded_shape); ++f) {
    const Index idx = unflatten(f, padded_shape);
    int halo = 0;
    const Index w = to_whole(idx, &halo);
    const double expected = halo == 2 && !c.corners ? kSentinel
                            : halo                  ? whole_padded(c, w, salt)
                                                    : whole_value(w, salt);
    const double got = padded.get(idx);
    if (got != expected) {
      ADD_FAILURE() << "rank " << rank << " " << c.name() << ": padded" << str(idx) << " (whole "
                    << str(w) << ") is " << got << ", expected " << expected;
      return stats;
    }
  }
  EXPECT_EQ(padded.gap_bytes_changed(), 0u) << "rank " << rank << " " << c.name();

  // The convolution of the padded slab, row for row against the padded whole's.
  if (c.corners) {
    Shape out_shape = padded_shape;
    out_shape[1] = 1;
    bool empty = false;
    for (size_t s = 2; s < out_shape.size(); ++s) {
      out_shape[s] -= c.k - 1;
      empty |= out_shape[s] <= 0;
    }
    if (!empty) {
      for (int64_t f = 0; f < numel(out_shape); ++f) {
        const Index o = unflatten(f, out_shape);
        const double mine =
            conv_at(padded_shape, c.k, o, [&](const Index& i) { return padded.get(i); });
        const double whole = conv_at(padded_shape, c.k, o, [&](const Index& i) {
          int halo = 0;
          return whole_padded(c, to_whole(i, &halo), salt);
        });
        if (mine != whole) {
          ADD_FAILURE() << "rank " << rank << " " << c.name() << ": conv output " << str(o)
                        << " is " << mine << ", the whole tensor's is " << whole;
          return stats;
        }
      }
    }
  }
  return stats;
}

inline std::vector<Case> chain_cases(int p) {
  const std::vector<std::array<int, 2>> modes = {{Z, Z}, {REP, REP}, {REF, REF}, {CIRC, CIRC},
                                                 {U, U}, {REP, Z},   {REF, U}};
  const std::vector<std::array<int, 2>> widths = {{0, 0}, {1, 1}, {2, 2}, {3, 3},
                                                  {2, 0}, {0, 3}, {1, 2}};
  // Uneven slabs of 4 or 5 rows (REFLECT by 3 needs 4).
  const int64_t h = 4 * p + (p + 1) / 2;
  struct Layouts {
    Shape shape;
    Layout layout;
    int axis_arg, dim;
  };
  const std::vector<Layouts> layouts = {
      {{1, 2, h, 6}, Layout::kContiguous, -2, 2},       // NCHW, split H
      {{1, 3, h, 5}, Layout::kChannelsLast, -2, 2},     // NHWC batch 1: dense rows
      {{1, 2, 4, h, 5}, Layout::kChannelsLast, -2, 3},  // NDHWC, split H
      {{1, 2, h, 4, 5}, Layout::kContiguous, 2, 2},     // NCTHW, split T
      {{2, 2, h, 5}, Layout::kGapped, -2, 2},           // a window with gaps
      {{1, 2, 5, h}, Layout::kChannelsLast, -1, 3},     // NHWC, split W
  };
  // bf16 and f32 alternate, so that every (layout, mode) meets both.
  std::vector<Case> cases;
  for (size_t li = 0; li < layouts.size(); ++li)
    for (size_t mi = 0; mi < modes.size(); ++mi)
      for (size_t wi = 0; wi < widths.size(); ++wi) {
        const auto& l = layouts[li];
        const auto& m = modes[mi];
        const auto& w = widths[wi];
        Case c;
        c.grid[0] = p;
        c.whole = l.shape;
        c.layout = l.layout;
        c.dtype = (li + mi + wi) % 2 ? DIFFCOLL_BFLOAT16 : DIFFCOLL_FLOAT32;
        c.axis_arg[0] = l.axis_arg;
        c.axis_arg[1] = l.axis_arg == -1 ? -2 : -1;  // unused, but distinct
        c.dim[0] = l.dim;
        c.before[0] = w[0];
        c.after[0] = w[1];
        c.mode_before[0] = m[0];
        c.mode_after[0] = m[1];
        c.k = (mi + wi / 2) % 2 ? 5 : 3;
        cases.push_back(c);
      }
  return cases;
}

inline std::vector<Case> grid_cases(int rows, int cols) {
  // (row mode, col mode), the same at both ends, and two with differing ends.
  struct Modes {
    int rb, ra, cb, ca;
  };
  const std::vector<Modes> modes = {
      {Z, Z, Z, Z},     {REP, REP, REP, REP},   {REF, REF, REF, REF},   {CIRC, CIRC, CIRC, CIRC},
      {U, U, U, U},     {REP, REP, CIRC, CIRC}, {CIRC, CIRC, REF, REF}, {Z, Z, REF, REF},
      {U, U, REP, REP}, {CIRC, CIRC, U, U},     {REF, REF, Z, Z},       {REP, Z, REF, U}};
  struct Widths {
    int rb, ra, cb, ca;
    bool corners;
  };
  const std::vector<Widths> widths = {{1, 1, 1, 1, true}, {2, 1, 0, 3, true},  {3, 3, 2, 2, true},
                                      {0, 2, 1, 0, true}, {1, 1, 1, 1, false}, {2, 1, 0, 3, false}};
  const int64_t h = 4 * rows + 1, w = 4 * cols + 2;
  struct Layouts {
    Shape shape;
    Layout layout;
    int axis_arg[2];
    int dim[2];
  };
  const std::vector<Layouts> layouts = {
      {{1, 2, h, w}, Layout::kContiguous, {-2, -1}, {2, 3}},
      {{1, 3, h, w}, Layout::kChannelsLast, {2, 3}, {2, 3}},
      {{1, 2, 3, h, w}, Layout::kChannelsLast, {-2, -1}, {3, 4}},  // channels-last-3d
      {{1, 2, h, 3, w}, Layout::kContiguous, {2, -1}, {2, 4}},     // split T and W
  };
  std::vector<Case> cases;
  int n = 0;
  for (const auto& l : layouts)
    for (const auto& m : modes)
      for (const auto& wd : widths) {
        Case c;
        c.grid[0] = rows;
        c.grid[1] = cols;
        c.whole = l.shape;
        c.layout = l.layout;
        c.dtype = n % 2 ? DIFFCOLL_BFLOAT16 : DIFFCOLL_FLOAT32;
        c.k = (n / 2) % 2 ? 5 : 3;
        ++n;
        for (int g = 0; g < 2; ++g) {
          c.axis_arg[g] = l.axis_arg[g];
          c.dim[g] = l.dim[g];
        }
        c.before[0] = wd.rb;
        c.after[0] = wd.ra;
        c.before[1] = wd.cb;
        c.after[1] = wd.ca;
        c.mode_before[0] = m.rb;
        c.mode_after[0] = m.ra;
        c.mode_before[1] = m.cb;
        c.mode_after[1] = m.ca;
        c.corners = wd.corners;
        cases.push_back(c);
      }
  return cases;
}

}  // namespace halo_test
