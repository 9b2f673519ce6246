// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Every collective through the public API, ranks as threads (local://
// rendezvous), checked against a single-process reference computed from each
// rank's deterministic data, for every dtype and several layouts.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "test_support.h"

namespace {

using dct::Layout;
using dct::Shape;
using dct::Strided;

const int kOps[] = {DIFFCOLL_SUM, DIFFCOLL_PROD, DIFFCOLL_MIN,
                    DIFFCOLL_MAX, DIFFCOLL_AVG,  DIFFCOLL_PREMUL_SUM};

const char* op_str(int op) {
  switch (op) {
    case DIFFCOLL_SUM: return "sum";
    case DIFFCOLL_PROD: return "prod";
    case DIFFCOLL_MIN: return "min";
    case DIFFCOLL_MAX: return "max";
    case DIFFCOLL_AVG: return "avg";
    case DIFFCOLL_PREMUL_SUM: return "premul_sum";
  }
  return "?";
}

// Rank r's input for a reduction `op`, chosen so that every result is exact
// in every dtype (no rounding, no integer overflow) for up to 8 ranks.
std::vector<double> reduction_input(int r, uint64_t salt, int64_t n, int dtype, int op, int p) {
  switch (op) {
    case DIFFCOLL_PROD:
      return r < 6 ? dct::random_values(r, salt, n, dtype, -2, 2)
                   : dct::random_values(r, salt, n, dtype, -1, 1);
    case DIFFCOLL_MIN:
    case DIFFCOLL_MAX:
      return dct::random_values(r, salt, n, dtype, -50, 50);
    case DIFFCOLL_AVG:
      if (dct::dtype_float(dtype)) {  // multiples of P: x * (1/P) is exact
        std::vector<double> v = dct::random_values(r, salt, n, dtype, -3, 3);
        for (double& x : v) x *= p;
        return v;
      }
      return dct::random_values(r, salt, n, dtype, -3, 3);
    default:
      return dct::random_values(r, salt, n, dtype, -3, 3);
  }
}

// Rank r's PREMUL_SUM factor: halves for floats, integers for integer dtypes.
double premul_scalar(int r, int dtype) {
  return dct::dtype_float(dtype) ? 0.5 * (r % 3 + 1) : (r % 3 + 1);
}

// op over ranks 0..p-1 of value(q).
template <typename ValueFn>
double reduce_ref(int op, int dtype, int p, ValueFn value) {
  double acc = 0;
  for (int q = 0; q < p; ++q) {
    double x = value(q);
    if (op == DIFFCOLL_PREMUL_SUM) x *= premul_scalar(q, dtype);
    if (q == 0) {
      acc = x;
      continue;
    }
    switch (op) {
      case DIFFCOLL_PROD: acc *= x; break;
      case DIFFCOLL_MIN: acc = std::min(acc, x); break;
      case DIFFCOLL_MAX: acc = std::max(acc, x); break;
      default: acc += x; break;
    }
  }
  if (op == DIFFCOLL_AVG) acc = dct::dtype_float(dtype) ? acc / p : std::trunc(acc / p);
  return acc;
}

// The shape a layout is tested with (channels-last needs 4 or 5 dims).
Shape shape_for(Layout layout, int variant) {
  switch (layout) {
    case Layout::kChannelsLast:
      return variant % 2 ? Shape{2, 3, 2, 2, 3} : Shape{2, 3, 4, 5};
    case Layout::kFlipped:
      return {5, 3, 7};
    default:
      return {3, 5, 7};
  }
}

std::string ctx(int rank, int dtype, Layout layout, const char* what = "") {
  return std::string("rank ") + std::to_string(rank) + " " + dct::dtype_str(dtype) + " " +
         dct::layout_str(layout) + " " + what;
}

diffcoll_stats_t stats_of(diffcoll_comm_t* comm) {
  diffcoll_stats_t s = DIFFCOLL_STATS_INIT;
  EXPECT_EQ(diffcoll_comm_get_stats(comm, &s), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  return s;
}

class Collectives : public ::testing::TestWithParam<int> {
 protected:
  int P() const { return GetParam(); }
};

// ---- all_reduce ------------------------------------------------------------------

TEST_P(Collectives, AllReduceEveryOpDtypeLayout) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 0;
    int variant = 0;
    for (int dtype : dct::all_dtypes()) {
      for (Layout layout : dct::all_layouts()) {
        const Shape shape = shape_for(layout, variant++);
        for (int op : kOps) {
          ++salt;
          SCOPED_TRACE(ctx(r, dtype, layout, op_str(op)));
          const int64_t n = dct::numel(shape);
          Strided t(dtype, shape, layout);
          t.fill(reduction_input(r, salt, n, dtype, op, p));
          diffcoll_tensor_t d = t.desc();
          DC_ASSERT_OK(diffcoll_comm_reset_stats(comm));
          DC_ASSERT_OK(diffcoll_all_reduce(comm, &d, op, premul_scalar(r, dtype), nullptr));
          std::vector<std::vector<double>> in(p);
          for (int q = 0; q < p; ++q) in[q] = reduction_input(q, salt, n, dtype, op, p);
          std::vector<double> expected(n);
          for (int64_t i = 0; i < n; ++i)
            expected[i] = reduce_ref(op, dtype, p, [&](int q) { return in[q][i]; });
          ASSERT_EQ(dct::compare(t.read(), expected), "");
          ASSERT_EQ(t.gap_bytes_changed(), 0u);
          diffcoll_stats_t s = stats_of(comm);
          EXPECT_EQ(s.ops, 1u);
          if (dct::layout_dense(layout) || (p == 1 && op != DIFFCOLL_PREMUL_SUM)) {
            EXPECT_EQ(s.bytes_packed, 0u) << "a dense tensor must be reduced in place, and a "
                                             "rank alone's unscaled reduction moves nothing";
            EXPECT_EQ(s.bytes_unpacked, 0u);
          } else {
            EXPECT_EQ(s.bytes_packed, t.nbytes());
            EXPECT_EQ(s.bytes_unpacked, t.nbytes());
          }
        }
      }
    }
  });
}

TEST_P(Collectives, AllReduceLargerAndEdgeShapes) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    // A few thousand elements: several chunks of Gloo's ring.
    for (Layout layout : {Layout::kContiguous, Layout::kGapped}) {
      SCOPED_TRACE(ctx(r, DIFFCOLL_FLOAT32, layout));
      const Shape shape = {13, 301};
      Strided t(DIFFCOLL_FLOAT32, shape, layout);
      t.fill(dct::random_values(r, 7, dct::numel(shape), DIFFCOLL_FLOAT32, -100, 100));
      diffcoll_tensor_t d = t.desc();
      DC_ASSERT_OK(diffcoll_all_reduce(comm, &d, DIFFCOLL_SUM, 0.0, nullptr));
      std::vector<double> expected(dct::numel(shape), 0.0);
      for (int q = 0; q < p; ++q) {
        std::vector<double> v = dct::random_values(q, 7, dct::numel(shape), DIFFCOLL_FLOAT32, -100, 100);
        for (size_t i = 0; i < v.size(); ++i) expected[i] += v[i];
      }
      EXPECT_EQ(dct::compare(t.read(), expected), "");
      EXPECT_EQ(t.gap_bytes_changed(), 0u);
    }
    // A scalar (ndim 0).
    {
      int64_t x = r + 1;
      diffcoll_tensor_t d{};
      d.data = &x;
      d.dtype = DIFFCOLL_INT64;
      d.device_type = DIFFCOLL_DEVICE_CPU;
      d.ndim = 0;
      DC_EXPECT_OK(diffcoll_all_reduce(comm, &d, DIFFCOLL_SUM, 0.0, nullptr));
      EXPECT_EQ(x, int64_t{p} * (p + 1) / 2);
    }
    // An empty tensor: nothing to do, but the call succeeds.
    {
      Strided e(DIFFCOLL_FLOAT32, {0, 4}, Layout::kContiguous);
      diffcoll_tensor_t d = e.desc();
      DC_EXPECT_OK(diffcoll_all_reduce(comm, &d, DIFFCOLL_SUM, 0.0, nullptr));
      DC_EXPECT_OK(diffcoll_broadcast(comm, &d, 0, nullptr));
    }
    // One element along a size-1 dim with an odd stride.
    {
      float v[3] = {-1, static_cast<float>(r), -1};
      diffcoll_tensor_t d{};
      d.data = &v[1];
      d.dtype = DIFFCOLL_FLOAT32;
      d.device_type = DIFFCOLL_DEVICE_CPU;
      d.ndim = 2;
      d.shape[0] = 1;
      d.shape[1] = 1;
      d.strides[0] = 17;
      d.strides[1] = -5;
      DC_EXPECT_OK(diffcoll_all_reduce(comm, &d, DIFFCOLL_MAX, 0.0, nullptr));
      EXPECT_EQ(v[0], -1);
      EXPECT_EQ(v[1], p - 1);
      EXPECT_EQ(v[2], -1);
    }
  });
}

// ---- broadcast / reduce -------------------------------------------------------------

TEST_P(Collectives, BroadcastEveryDtypeLayout) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 1000;
    int variant = 0;
    for (int dtype : dct::all_dtypes()) {
      for (Layout layout : dct::all_layouts()) {
        ++salt;
        const int root = static_cast<int>(salt % p);
        SCOPED_TRACE(ctx(r, dtype, layout, ("root " + std::to_string(root)).c_str()));
        const Shape shape = shape_for(layout, variant++);
        const int64_t n = dct::numel(shape);
        Strided t(dtype, shape, layout);
        t.fill(dct::random_values(r, salt, n, dtype, -100, 100));
        diffcoll_tensor_t d = t.desc();
        DC_ASSERT_OK(diffcoll_comm_reset_stats(comm));
        DC_ASSERT_OK(diffcoll_broadcast(comm, &d, root, nullptr));
        ASSERT_EQ(dct::compare(t.read(), dct::random_values(root, salt, n, dtype, -100, 100)), "");
        ASSERT_EQ(t.gap_bytes_changed(), 0u);
        diffcoll_stats_t s = stats_of(comm);
        if (dct::layout_dense(layout) || p == 1) {
          EXPECT_EQ(s.bytes_packed, 0u)
              << "a dense tensor must be broadcast in place, and a rank alone moves nothing";
          EXPECT_EQ(s.bytes_unpacked, 0u);
        } else {
          EXPECT_EQ(s.bytes_packed, r == root ? t.nbytes() : 0u);
          EXPECT_EQ(s.bytes_unpacked, r == root ? 0u : t.nbytes());
        }
      }
    }
  });
}

TEST_P(Collectives, ReduceEveryOpDtypeLayout) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 2000;
    int variant = 0;
    for (int dtype : dct::all_dtypes()) {
      for (Layout layout : dct::all_layouts()) {
        const Shape shape = shape_for(layout, variant++);
        for (int op : kOps) {
          ++salt;
          const int root = static_cast<int>((salt * 7) % p);
          SCOPED_TRACE(ctx(r, dtype, layout, op_str(op)) + " root " + std::to_string(root));
          const int64_t n = dct::numel(shape);
          Strided t(dtype, shape, layout);
          const std::vector<double> mine = reduction_input(r, salt, n, dtype, op, p);
          t.fill(mine);
          diffcoll_tensor_t d = t.desc();
          DC_ASSERT_OK(diffcoll_reduce(comm, &d, op, premul_scalar(r, dtype), root, nullptr));
          if (r == root) {
            std::vector<std::vector<double>> in(p);
            for (int q = 0; q < p; ++q) in[q] = reduction_input(q, salt, n, dtype, op, p);
            std::vector<double> expected(n);
            for (int64_t i = 0; i < n; ++i)
              expected[i] = reduce_ref(op, dtype, p, [&](int q) { return in[q][i]; });
            ASSERT_EQ(dct::compare(t.read(), expected), "");
          } else {
            ASSERT_EQ(dct::compare(t.read(), mine), "") << "a non-root tensor changed";
          }
          ASSERT_EQ(t.gap_bytes_changed(), 0u);
        }
      }
    }
  });
}

// ---- all_gather / gather -----------------------------------------------------------

// Element `flat` of the concatenation along `axis` of every rank's `block`
// tensor, where value(q, i) is element i of rank q's block.
template <typename ValueFn>
double concat_ref(const Shape& block, int axis, int64_t flat, int p, ValueFn value) {
  Shape whole = block;
  whole[axis] *= p;
  std::vector<int64_t> idx = dct::unflatten(flat, whole);
  const int q = static_cast<int>(idx[axis] / block[axis]);
  idx[axis] %= block[axis];
  return value(q, dct::flatten(idx, block));
}

TEST_P(Collectives, AllGatherEveryDtypeLayoutAxis) {
  const int p = P();
  const std::vector<Layout>& layouts = dct::all_layouts();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 3000;
    int variant = 0;
    for (int dtype : dct::all_dtypes()) {
      for (size_t li = 0; li < layouts.size(); ++li) {
        const Layout in_layout = layouts[li];
        const Layout out_layout = layouts[(li + 1 + dtype) % layouts.size()];
        const Shape in_shape = shape_for(in_layout, variant++);
        for (int axis = 0; axis < static_cast<int>(in_shape.size()); ++axis) {
          ++salt;
          SCOPED_TRACE(ctx(r, dtype, in_layout) + "-> " + dct::layout_str(out_layout) +
                       " axis " + std::to_string(axis));
          const int64_t n = dct::numel(in_shape);
          Shape out_shape = in_shape;
          out_shape[axis] *= p;
          Strided in(dtype, in_shape, in_layout), out(dtype, out_shape, out_layout);
          in.fill(dct::random_values(r, salt, n, dtype, -100, 100));
          diffcoll_tensor_t di = in.desc(), dout = out.desc();
          DC_ASSERT_OK(diffcoll_all_gather(comm, &di, &dout, axis, nullptr));
          std::vector<std::vector<double>> all(p);
          for (int q = 0; q < p; ++q) all[q] = dct::random_values(q, salt, n, dtype, -100, 100);
          std::vector<double> expected(dct::numel(out_shape));
          for (int64_t i = 0; i < dct::numel(out_shape); ++i)
            expected[i] = concat_ref(in_shape, axis, i, p, [&](int q, int64_t j) { return all[q][j]; });
          ASSERT_EQ(dct::compare(out.read(), expected), "");
          ASSERT_EQ(out.gap_bytes_changed(), 0u);
          ASSERT_EQ(dct::compare(in.read(), all[r]), "") << "the input changed";
        }
      }
    }
  });
}

TEST_P(Collectives, AllGatherInPlace) {
  // The input is this rank's own block of the output (axis 0, NCCL style).
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    const Shape block = {3, 5};
    const int64_t n = dct::numel(block);
    std::vector<int32_t> out(n * p, -1);
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = 100 * r + static_cast<int32_t>(i);
    diffcoll_tensor_t din{}, dout{};
    din.data = out.data() + r * n;
    din.dtype = dout.dtype = DIFFCOLL_INT32;
    din.device_type = dout.device_type = DIFFCOLL_DEVICE_CPU;
    din.ndim = dout.ndim = 2;
    din.shape[0] = 3;
    din.shape[1] = 5;
    din.strides[0] = 5;
    din.strides[1] = 1;
    dout.data = out.data();
    dout.shape[0] = 3 * p;
    dout.shape[1] = 5;
    dout.strides[0] = 5;
    dout.strides[1] = 1;
    DC_ASSERT_OK(diffcoll_all_gather(comm, &din, &dout, 0, nullptr));
    for (int q = 0; q < p; ++q)
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(out[q * n + i], 100 * q + i) << "rank " << r << " block " << q << " elem " << i;
  });
}

TEST_P(Collectives, GatherEveryDtypeLayout) {
  const int p = P();
  const std::vector<Layout>& layouts = dct::all_layouts();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 4000;
    int variant = 0;
    for (int dtype : dct::all_dtypes()) {
      for (size_t li = 0; li < layouts.size(); ++li) {
        ++salt;
        const Layout in_layout = layouts[li];
        const Layout out_layout = layouts[(li + 2 + dtype) % layouts.size()];
        const Shape in_shape = shape_for(in_layout, variant++);
        const int axis = static_cast<int>(salt % in_shape.size());
        const int root = static_cast<int>((salt * 3) % p);
        SCOPED_TRACE(ctx(r, dtype, in_layout) + "-> " + dct::layout_str(out_layout) + " axis " +
                     std::to_string(axis) + " root " + std::to_string(root));
        const int64_t n = dct::numel(in_shape);
        Shape out_shape = in_shape;
        out_shape[axis] *= p;
        Strided in(dtype, in_shape, in_layout), out(dtype, out_shape, out_layout);
        in.fill(dct::random_values(r, salt, n, dtype, -100, 100));
        diffcoll_tensor_t di = in.desc(), dout = out.desc();
        // Non-roots pass no output at all.
        DC_ASSERT_OK(diffcoll_gather(comm, &di, r == root ? &dout : nullptr, axis, root, nullptr));
        if (r == root) {
          std::vector<std::vector<double>> all(p);
          for (int q = 0; q < p; ++q) all[q] = dct::random_values(q, salt, n, dtype, -100, 100);
          std::vector<double> expected(dct::numel(out_shape));
          for (int64_t i = 0; i < dct::numel(out_shape); ++i)
            expected[i] = concat_ref(in_shape, axis, i, p, [&](int q, int64_t j) { return all[q][j]; });
          ASSERT_EQ(dct::compare(out.read(), expected), "");
        }
        ASSERT_EQ(out.gap_bytes_changed(), 0u);
      }
    }
  });
}

// ---- reduce_scatter / scatter -------------------------------------------------------

TEST_P(Collectives, ReduceScatterEveryOpDtypeLayoutAxis) {
  const int p = P();
  const std::vector<Layout>& layouts = dct::all_layouts();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 5000;
    int variant = 0;
    for (int dtype : dct::all_dtypes()) {
      for (size_t li = 0; li < layouts.size(); ++li) {
        const Layout in_layout = layouts[li];
        const Layout out_layout = layouts[(li + 3 + dtype) % layouts.size()];
        const Shape out_shape = shape_for(out_layout, variant++);
        for (int axis = 0; axis < static_cast<int>(out_shape.size()); ++axis) {
          for (int op : kOps) {
            // Every op on every axis for f32; one op per axis for the others.
            if (dtype != DIFFCOLL_FLOAT32 && op != kOps[(axis + li + dtype) % 6]) continue;
            ++salt;
            SCOPED_TRACE(ctx(r, dtype, in_layout, op_str(op)) + "-> " +
                         dct::layout_str(out_layout) + " axis " + std::to_string(axis));
            Shape in_shape = out_shape;
            in_shape[axis] *= p;
            const int64_t n_in = dct::numel(in_shape), n_out = dct::numel(out_shape);
            Strided in(dtype, in_shape, in_layout), out(dtype, out_shape, out_layout);
            const std::vector<double> mine = reduction_input(r, salt, n_in, dtype, op, p);
            in.fill(mine);
            diffcoll_tensor_t di = in.desc(), dout = out.desc();
            DC_ASSERT_OK(diffcoll_reduce_scatter(comm, &di, &dout, axis, op,
                                                 premul_scalar(r, dtype), nullptr));
            std::vector<std::vector<double>> all(p);
            for (int q = 0; q < p; ++q) all[q] = reduction_input(q, salt, n_in, dtype, op, p);
            std::vector<double> expected(n_out);
            for (int64_t i = 0; i < n_out; ++i) {
              std::vector<int64_t> idx = dct::unflatten(i, out_shape);
              idx[axis] += r * out_shape[axis];
              const int64_t j = dct::flatten(idx, in_shape);
              expected[i] = reduce_ref(op, dtype, p, [&](int q) { return all[q][j]; });
            }
            ASSERT_EQ(dct::compare(out.read(), expected), "");
            ASSERT_EQ(out.gap_bytes_changed(), 0u);
            ASSERT_EQ(dct::compare(in.read(), mine), "") << "the input changed";
            ASSERT_EQ(in.gap_bytes_changed(), 0u);
          }
        }
      }
    }
  });
}

TEST_P(Collectives, ScatterEveryDtypeLayout) {
  const int p = P();
  const std::vector<Layout>& layouts = dct::all_layouts();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 6000;
    int variant = 0;
    for (int dtype : dct::all_dtypes()) {
      for (size_t li = 0; li < layouts.size(); ++li) {
        ++salt;
        const Layout out_layout = layouts[li];
        const Layout in_layout = layouts[(li + 4 + dtype) % layouts.size()];
        const Shape out_shape = shape_for(out_layout, variant++);
        const int axis = static_cast<int>((salt * 5) % out_shape.size());
        const int root = static_cast<int>((salt * 11) % p);
        SCOPED_TRACE(ctx(r, dtype, in_layout) + "-> " + dct::layout_str(out_layout) + " axis " +
                     std::to_string(axis) + " root " + std::to_string(root));
        Shape in_shape = out_shape;
        in_shape[axis] *= p;
        const int64_t n_in = dct::numel(in_shape), n_out = dct::numel(out_shape);
        Strided in(dtype, in_shape, in_layout), out(dtype, out_shape, out_layout);
        in.fill(dct::random_values(root, salt, n_in, dtype, -100, 100));
        diffcoll_tensor_t di = in.desc(), dout = out.desc();
        // Non-roots pass no input at all.
        DC_ASSERT_OK(diffcoll_scatter(comm, r == root ? &di : nullptr, &dout, axis, root, nullptr));
        const std::vector<double> src = dct::random_values(root, salt, n_in, dtype, -100, 100);
        std::vector<double> expected(n_out);
        for (int64_t i = 0; i < n_out; ++i) {
          std::vector<int64_t> idx = dct::unflatten(i, out_shape);
          idx[axis] += r * out_shape[axis];
          expected[i] = src[dct::flatten(idx, in_shape)];
        }
        ASSERT_EQ(dct::compare(out.read(), expected), "");
        ASSERT_EQ(out.gap_bytes_changed(), 0u);
      }
    }
  });
}

// ---- all_to_all ---------------------------------------------------------------------

TEST_P(Collectives, AllToAllEveryDtypeLayoutAxes) {
  const int p = P();
  const std::vector<Layout>& layouts = dct::all_layouts();
  const std::vector<std::pair<int, int>> axes = {{0, 1}, {1, 0}, {2, 1}, {1, 1},
                                                 {0, 2}, {2, 2}, {0, 0}};
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 7000;
    for (int dtype : dct::all_dtypes()) {
      for (size_t li = 0; li < layouts.size(); ++li) {
        for (size_t ai = 0; ai < axes.size(); ++ai) {
          // All axis pairs for f32 and bf16, a rotating subset for the others.
          if (dtype != DIFFCOLL_FLOAT32 && dtype != DIFFCOLL_BFLOAT16 &&
              (ai + li + dtype) % 3 != 0)
            continue;
          ++salt;
          const int sa = axes[ai].first, ga = axes[ai].second;
          const Layout in_layout = layouts[li];
          const Layout out_layout = layouts[(li + ai + 1) % layouts.size()];
          SCOPED_TRACE(ctx(r, dtype, in_layout) + "-> " + dct::layout_str(out_layout) +
                       " scatter " + std::to_string(sa) + " gather " + std::to_string(ga));
          Shape in_shape = {3, 2, 5};  // odd extents; the scatter axis gets * P
          in_shape[sa] *= p;
          Shape block = in_shape;
          block[sa] /= p;
          Shape out_shape = block;
          out_shape[ga] *= p;
          const int64_t n = dct::numel(in_shape);
          Strided in(dtype, in_shape, in_layout), out(dtype, out_shape, out_layout);
          in.fill(dct::random_values(r, salt, n, dtype, -100, 100));
          diffcoll_tensor_t di = in.desc(), dout = out.desc();
          DC_ASSERT_OK(diffcoll_all_to_all(comm, &di, &dout, sa, ga, nullptr));
          std::vector<std::vector<double>> all(p);
          for (int q = 0; q < p; ++q) all[q] = dct::random_values(q, salt, n, dtype, -100, 100);
          std::vector<double> expected(dct::numel(out_shape));
          for (int64_t i = 0; i < dct::numel(out_shape); ++i) {
            std::vector<int64_t> idx = dct::unflatten(i, out_shape);
            const int q = static_cast<int>(idx[ga] / block[ga]);  // the sender
            idx[ga] %= block[ga];
            idx[sa] += r * block[sa];  // my block of the sender's input
            expected[i] = all[q][dct::flatten(idx, in_shape)];
          }
          ASSERT_EQ(dct::compare(out.read(), expected), "");
          ASSERT_EQ(out.gap_bytes_changed(), 0u);
          ASSERT_EQ(dct::compare(in.read(), all[r]), "") << "the input changed";
        }
      }
    }
  });
}

// ---- send / recv ---------------------------------------------------------------------

TEST_P(Collectives, SendRecvChainEveryDtype) {
  const int p = P();
  if (p == 1) GTEST_SKIP() << "blocking send/recv needs a peer";
  const std::vector<Layout>& layouts = dct::all_layouts();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 8000;
    for (int dtype : dct::all_dtypes()) {
      for (size_t li = 0; li < layouts.size(); ++li) {
        ++salt;
        // Sender and receiver use different strides; elements travel row-major.
        const Layout send_layout = layouts[li];
        const Layout recv_layout = layouts[(li + 1 + dtype) % layouts.size()];
        SCOPED_TRACE(ctx(r, dtype, send_layout) + "-> " + dct::layout_str(recv_layout));
        const Shape shape = {3, 5, 7};
        const int64_t n = dct::numel(shape);
        Strided out(dtype, shape, send_layout), in(dtype, shape, recv_layout);
        out.fill(dct::random_values(r, salt, n, dtype, -100, 100));
        diffcoll_tensor_t ds = out.desc(), dr = in.desc();
        const int right = (r + 1) % p, left = (r - 1 + p) % p;
        // A chain around the ring: rank 0 sends first, every other rank
        // receives first, so blocking calls cannot deadlock.
        if (r == 0) {
          DC_ASSERT_OK(diffcoll_send(comm, &ds, right, nullptr));
          DC_ASSERT_OK(diffcoll_recv(comm, &dr, left, nullptr));
        } else {
          DC_ASSERT_OK(diffcoll_recv(comm, &dr, left, nullptr));
          DC_ASSERT_OK(diffcoll_send(comm, &ds, right, nullptr));
        }
        ASSERT_EQ(dct::compare(in.read(), dct::random_values(left, salt, n, dtype, -100, 100)), "");
        ASSERT_EQ(in.gap_bytes_changed(), 0u);
        ASSERT_EQ(out.gap_bytes_changed(), 0u);
      }
    }
  });
}

TEST_P(Collectives, GroupedRingExchangeWithSelf) {
  const int p = P();
  const std::vector<Layout>& layouts = dct::all_layouts();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 9000;
    for (int dtype : dct::all_dtypes()) {
      for (size_t li = 0; li < layouts.size(); ++li) {
        salt += 4;
        const Layout a = layouts[li], b = layouts[(li + 2) % layouts.size()];
        SCOPED_TRACE(ctx(r, dtype, a) + "/" + dct::layout_str(b));
        const Shape shape = {3, 5, 7};
        const int64_t n = dct::numel(shape);
        const int right = (r + 1) % p, left = (r - 1 + p) % p;
        // Send salt+0 right, salt+1 left, salt+2 to myself; receive from both
        // neighbours and from myself.
        Strided to_right(dtype, shape, a), to_left(dtype, shape, b), to_self(dtype, shape, b);
        Strided from_left(dtype, shape, b), from_right(dtype, shape, a), from_self(dtype, shape, a);
        to_right.fill(dct::random_values(r, salt, n, dtype, -100, 100));
        to_left.fill(dct::random_values(r, salt + 1, n, dtype, -100, 100));
        to_self.fill(dct::random_values(r, salt + 2, n, dtype, -100, 100));
        diffcoll_tensor_t s_r = to_right.desc(), s_l = to_left.desc(), s_s = to_self.desc();
        diffcoll_tensor_t r_l = from_left.desc(), r_r = from_right.desc(), r_s = from_self.desc();
        DC_ASSERT_OK(diffcoll_group_start(comm));
        // Receives posted before the sends; self-send between them.
        DC_ASSERT_OK(diffcoll_recv(comm, &r_l, left, nullptr));
        DC_ASSERT_OK(diffcoll_send(comm, &s_s, r, nullptr));
        DC_ASSERT_OK(diffcoll_send(comm, &s_r, right, nullptr));
        DC_ASSERT_OK(diffcoll_recv(comm, &r_r, right, nullptr));
        DC_ASSERT_OK(diffcoll_send(comm, &s_l, left, nullptr));
        DC_ASSERT_OK(diffcoll_recv(comm, &r_s, r, nullptr));
        DC_ASSERT_OK(diffcoll_group_end(comm));
        if (p == 1) {
          // Everything goes to myself, matched in order: sends (self, right,
          // left) meet receives (left, right, self).
          EXPECT_EQ(dct::compare(from_left.read(), dct::random_values(r, salt + 2, n, dtype, -100, 100)), "");
          EXPECT_EQ(dct::compare(from_right.read(), dct::random_values(r, salt, n, dtype, -100, 100)), "");
          EXPECT_EQ(dct::compare(from_self.read(), dct::random_values(r, salt + 1, n, dtype, -100, 100)), "");
        } else {
          // (With P = 2 left == right: the two messages to the one neighbour
          // are matched in the order they were posted.)
          EXPECT_EQ(dct::compare(from_left.read(), dct::random_values(left, salt, n, dtype, -100, 100)), "");
          EXPECT_EQ(dct::compare(from_right.read(), dct::random_values(right, salt + 1, n, dtype, -100, 100)), "");
          EXPECT_EQ(dct::compare(from_self.read(), dct::random_values(r, salt + 2, n, dtype, -100, 100)), "");
        }
        for (Strided* t : {&to_right, &to_left, &to_self, &from_left, &from_right, &from_self})
          ASSERT_EQ(t->gap_bytes_changed(), 0u);
      }
    }
  });
}

// ---- barrier -------------------------------------------------------------------------

TEST_P(Collectives, BarrierOrdersThreads) {
  const int p = P();
  std::atomic<int> arrived{0};
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    for (int round = 1; round <= 5; ++round) {
      arrived.fetch_add(1);
      DC_ASSERT_OK(diffcoll_barrier(comm, nullptr));
      EXPECT_GE(arrived.load(), round * p) << "rank " << r << " left barrier " << round << " early";
      DC_ASSERT_OK(diffcoll_barrier(comm, nullptr));
    }
    diffcoll_stats_t s = stats_of(comm);
    EXPECT_EQ(s.ops, 10u);
  });
}

// Mixed sequence on one communicator: the ops must not cross-talk.
TEST_P(Collectives, InterleavedOperations) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    for (int round = 0; round < 5; ++round) {
      int32_t x = r + round;
      diffcoll_tensor_t d{};
      d.data = &x;
      d.dtype = DIFFCOLL_INT32;
      d.device_type = DIFFCOLL_DEVICE_CPU;
      d.ndim = 1;
      d.shape[0] = 1;
      d.strides[0] = 1;
      DC_ASSERT_OK(diffcoll_all_reduce(comm, &d, DIFFCOLL_MAX, 0, nullptr));
      EXPECT_EQ(x, p - 1 + round);
      std::vector<int32_t> g(p, -1);
      int32_t mine = 10 * r + round;
      diffcoll_tensor_t in = d, out = d;
      in.data = &mine;
      out.data = g.data();
      out.shape[0] = p;
      DC_ASSERT_OK(diffcoll_all_gather(comm, &in, &out, 0, nullptr));
      for (int q = 0; q < p; ++q) EXPECT_EQ(g[q], 10 * q + round);
      DC_ASSERT_OK(diffcoll_barrier(comm, nullptr));
      int32_t b = r == round % p ? 1234 + round : 0;
      d.data = &b;
      DC_ASSERT_OK(diffcoll_broadcast(comm, &d, round % p, nullptr));
      EXPECT_EQ(b, 1234 + round);
    }
  });
}

// In-place variants (NCCL style): the input is this rank's block of the
// output (gather at the root, all_gather), the output is this rank's block of
// the input (scatter at the root, reduce_scatter), or input == output
// (all_to_all with equal axes).
TEST_P(Collectives, InPlaceVariants) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    const int64_t b = 6;  // elements per block
    auto vec = [&](int32_t* data, int64_t n) {
      diffcoll_tensor_t t{};
      t.data = data;
      t.dtype = DIFFCOLL_INT32;
      t.device_type = DIFFCOLL_DEVICE_CPU;
      t.ndim = 1;
      t.shape[0] = n;
      t.strides[0] = 1;
      return t;
    };
    auto value = [](int rank, int64_t i) { return static_cast<int32_t>(1000 * rank + i); };
    const int root = p - 1;
    {  // gather: the root's input is its own block of the output
      std::vector<int32_t> out(b * p, -1), mine(b);
      for (int64_t i = 0; i < b; ++i) mine[i] = value(r, i);
      if (r == root) std::copy(mine.begin(), mine.end(), out.begin() + r * b);
      diffcoll_tensor_t in = r == root ? vec(out.data() + r * b, b) : vec(mine.data(), b);
      diffcoll_tensor_t o = vec(out.data(), b * p);
      DC_ASSERT_OK(diffcoll_gather(comm, &in, &o, 0, root, nullptr));
      if (r == root)
        for (int q = 0; q < p; ++q)
          for (int64_t i = 0; i < b; ++i)
            ASSERT_EQ(out[q * b + i], value(q, i)) << "gather, block " << q << " elem " << i;
    }
    {  // scatter: the root's output is its own block of the input
      std::vector<int32_t> in(b * p), out(b, -1);
      for (int q = 0; q < p; ++q)
        for (int64_t i = 0; i < b; ++i) in[q * b + i] = value(q, i);
      diffcoll_tensor_t i_t = vec(in.data(), b * p);
      diffcoll_tensor_t o_t = r == root ? vec(in.data() + r * b, b) : vec(out.data(), b);
      DC_ASSERT_OK(diffcoll_scatter(comm, &i_t, &o_t, 0, root, nullptr));
      const int32_t* got = r == root ? in.data() + r * b : out.data();
      for (int64_t i = 0; i < b; ++i) ASSERT_EQ(got[i], value(r, i)) << "scatter elem " << i;
    }
    {  // reduce_scatter: the output is this rank's block of the input
      std::vector<int32_t> in(b * p);
      for (int q = 0; q < p; ++q)
        for (int64_t i = 0; i < b; ++i) in[q * b + i] = value(r, q * b + i);
      diffcoll_tensor_t i_t = vec(in.data(), b * p), o_t = vec(in.data() + r * b, b);
      DC_ASSERT_OK(diffcoll_reduce_scatter(comm, &i_t, &o_t, 0, DIFFCOLL_SUM, 0, nullptr));
      for (int64_t i = 0; i < b; ++i) {
        int32_t want = 0;
        for (int q = 0; q < p; ++q) want += value(q, r * b + i);
        ASSERT_EQ(in[r * b + i], want) << "reduce_scatter elem " << i;
      }
    }
    {  // all_to_all with input == output
      std::vector<int32_t> buf(b * p);
      for (int64_t i = 0; i < b * p; ++i) buf[i] = value(r, i);
      diffcoll_tensor_t t = vec(buf.data(), b * p);
      DC_ASSERT_OK(diffcoll_all_to_all(comm, &t, &t, 0, 0, nullptr));
      for (int q = 0; q < p; ++q)
        for (int64_t i = 0; i < b; ++i)
          ASSERT_EQ(buf[q * b + i], value(q, r * b + i)) << "all_to_all block " << q << " elem " << i;
    }
  });
}

// Zero-element tensors (data may then be NULL) go through every operation.
TEST_P(Collectives, EmptyTensorsEverywhere) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    diffcoll_tensor_t e{};
    e.data = nullptr;
    e.dtype = DIFFCOLL_FLOAT32;
    e.device_type = DIFFCOLL_DEVICE_CPU;
    e.ndim = 2;
    e.shape[0] = 0;
    e.shape[1] = 3;
    e.strides[0] = 3;
    e.strides[1] = 1;
    diffcoll_tensor_t wide = e;  // [0, 3 * P]
    wide.shape[1] = 3 * p;
    wide.strides[0] = 3 * p;
    DC_EXPECT_OK(diffcoll_all_reduce(comm, &e, DIFFCOLL_SUM, 0, nullptr));
    DC_EXPECT_OK(diffcoll_broadcast(comm, &e, 0, nullptr));
    DC_EXPECT_OK(diffcoll_reduce(comm, &e, DIFFCOLL_MAX, 0, 0, nullptr));
    DC_EXPECT_OK(diffcoll_all_gather(comm, &e, &wide, 1, nullptr));
    DC_EXPECT_OK(diffcoll_reduce_scatter(comm, &wide, &e, 1, DIFFCOLL_SUM, 0, nullptr));
    DC_EXPECT_OK(diffcoll_all_to_all(comm, &wide, &wide, 1, 1, nullptr));
    DC_EXPECT_OK(diffcoll_gather(comm, &e, &wide, 1, 0, nullptr));
    DC_EXPECT_OK(diffcoll_scatter(comm, &wide, &e, 1, 0, nullptr));
    DC_EXPECT_OK(diffcoll_group_start(comm));
    DC_EXPECT_OK(diffcoll_send(comm, &e, (r + 1) % p, nullptr));
    DC_EXPECT_OK(diffcoll_recv(comm, &e, (r - 1 + p) % p, nullptr));
    DC_EXPECT_OK(diffcoll_group_end(comm));
    // Still in step afterwards.
    int32_t x = 1;
    diffcoll_tensor_t one{};
    one.data = &x;
    one.dtype = DIFFCOLL_INT32;
    one.device_type = DIFFCOLL_DEVICE_CPU;
    DC_EXPECT_OK(diffcoll_all_reduce(comm, &one, DIFFCOLL_SUM, 0, nullptr));
    EXPECT_EQ(x, p);
  });
}

// DIFFCOLL_CHECK must not flag valid calls: per-rank premul scalars, NULL
// outputs/inputs off the root, different strides on the two sides of a send.
TEST_P(Collectives, CheckModeAcceptsValidCalls) {
  const int p = P();
  dct::run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    const Shape shape = {3, 4};
    const int64_t n = dct::numel(shape);
    Strided t(DIFFCOLL_FLOAT32, shape, Layout::kGapped);
    t.fill(dct::random_values(r, 1, n, DIFFCOLL_FLOAT32));
    diffcoll_tensor_t d = t.desc();
    DC_EXPECT_OK(diffcoll_all_reduce(comm, &d, DIFFCOLL_PREMUL_SUM, premul_scalar(r, DIFFCOLL_FLOAT32), nullptr));
    DC_EXPECT_OK(diffcoll_reduce(comm, &d, DIFFCOLL_PREMUL_SUM, 1.0 + r, 0, nullptr));
    DC_EXPECT_OK(diffcoll_broadcast(comm, &d, p - 1, nullptr));
    Shape big_shape = shape;
    big_shape[0] *= p;
    Strided big(DIFFCOLL_FLOAT32, big_shape, Layout::kTransposed);
    diffcoll_tensor_t db = big.desc();
    DC_EXPECT_OK(diffcoll_gather(comm, &d, r == 0 ? &db : nullptr, 0, 0, nullptr));
    DC_EXPECT_OK(diffcoll_scatter(comm, r == 0 ? &db : nullptr, &d, 0, 0, nullptr));
    DC_EXPECT_OK(diffcoll_all_gather(comm, &d, &db, 0, nullptr));
    DC_EXPECT_OK(diffcoll_reduce_scatter(comm, &db, &d, 0, DIFFCOLL_AVG, 0, nullptr));
    DC_EXPECT_OK(diffcoll_all_to_all(comm, &db, &db, 0, 0, nullptr));
    DC_EXPECT_OK(diffcoll_barrier(comm, nullptr));
    if (p > 1) {
      Strided other(DIFFCOLL_FLOAT32, shape, Layout::kTransposed);
      diffcoll_tensor_t dother = other.desc();
      DC_EXPECT_OK(diffcoll_group_start(comm));
      DC_EXPECT_OK(diffcoll_send(comm, &d, (r + 1) % p, nullptr));
      DC_EXPECT_OK(diffcoll_recv(comm, &dother, (r - 1 + p) % p, nullptr));
      DC_EXPECT_OK(diffcoll_group_end(comm));
    }
  }, 10000, /*check=*/1);
}

INSTANTIATE_TEST_SUITE_P(Ranks, Collectives, ::testing::Values(1, 2, 3, 4, 8),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "P" + std::to_string(info.param);
                         });

// A rank alone already holds the result of an in-place sum, product, min,
// max or average, of a broadcast and of a reduce: the call moves nothing
// (no packing of a strided view, the data and the gaps untouched). A
// pre-multiplied sum still scales, through the pack of the view.
TEST(Collectives, RankAloneInPlaceReductionsMoveNothing) {
  dct::run_ranks(1, [&](int, diffcoll_comm_t* comm) {
    const Shape shape = {3, 4, 5};
    const int64_t n = dct::numel(shape);
    Strided t(DIFFCOLL_FLOAT32, shape, Layout::kGapped);
    const std::vector<double> values = dct::random_values(0, 9, n, DIFFCOLL_FLOAT32, -3, 3);
    t.fill(values);
    diffcoll_tensor_t d = t.desc();
    DC_ASSERT_OK(diffcoll_comm_reset_stats(comm));
    for (int op : {DIFFCOLL_SUM, DIFFCOLL_PROD, DIFFCOLL_MIN, DIFFCOLL_MAX, DIFFCOLL_AVG}) {
      DC_ASSERT_OK(diffcoll_all_reduce(comm, &d, op, 0, nullptr));
      DC_ASSERT_OK(diffcoll_reduce(comm, &d, op, 0, 0, nullptr));
    }
    DC_ASSERT_OK(diffcoll_broadcast(comm, &d, 0, nullptr));
    EXPECT_EQ(t.read(), values);
    EXPECT_EQ(t.gap_bytes_changed(), 0u);
    diffcoll_stats_t st = DIFFCOLL_STATS_INIT;
    DC_ASSERT_OK(diffcoll_comm_get_stats(comm, &st));
    EXPECT_EQ(st.ops, 11u);
    EXPECT_EQ(st.bytes_packed, 0u) << "nothing to pack for a rank alone";
    DC_ASSERT_OK(diffcoll_all_reduce(comm, &d, DIFFCOLL_PREMUL_SUM, 2.0, nullptr));
    DC_ASSERT_OK(diffcoll_comm_get_stats(comm, &st));
    EXPECT_EQ(st.bytes_packed, t.nbytes());
    const std::vector<double> scaled = t.read();
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(scaled[i], 2.0 * values[i]) << i;
    EXPECT_EQ(t.gap_bytes_changed(), 0u);
  });
}

// ---- groups ---------------------------------------------------------------------------

TEST(Groups, CreateGroupWithNonTrivialOrder) {
  const int32_t list[3] = {3, 1, 2};  // local rank 0 is global rank 3
  dct::run_ranks(4, [&](int r, diffcoll_comm_t* world) {
    diffcoll_comm_t* g = reinterpret_cast<diffcoll_comm_t*>(0x1);
    DC_ASSERT_OK(diffcoll_comm_create_group(world, list, 3, &g));
    if (r == 0) {
      EXPECT_EQ(g, nullptr) << "a non-member gets no communicator";
      return;
    }
    ASSERT_NE(g, nullptr);
    int local = -1;
    for (int i = 0; i < 3; ++i)
      if (list[i] == r) local = i;
    int32_t size = -1, rank = -1;
    DC_EXPECT_OK(diffcoll_comm_size(g, &size));
    DC_EXPECT_OK(diffcoll_comm_rank(g, &rank));
    EXPECT_EQ(size, 3);
    EXPECT_EQ(rank, local);
    for (int i = 0; i < 3; ++i) {
      int32_t global = -1;
      DC_EXPECT_OK(diffcoll_comm_global_rank(g, i, &global));
      EXPECT_EQ(global, list[i]);
    }
    // Broadcast from local root 0 = global rank 3.
    std::vector<double> mine = dct::random_values(r, 77, 35, DIFFCOLL_FLOAT32);
    Strided t(DIFFCOLL_FLOAT32, {5, 7}, Layout::kGapped);
    t.fill(mine);
    diffcoll_tensor_t d = t.desc();
    DC_ASSERT_OK(diffcoll_broadcast(g, &d, 0, nullptr));
    EXPECT_EQ(dct::compare(t.read(), dct::random_values(3, 77, 35, DIFFCOLL_FLOAT32)), "");
    // all_gather concatenates in local-rank order.
    int32_t me = r;
    std::vector<int32_t> all(3, -1);
    diffcoll_tensor_t in{}, out{};
    in.data = &me;
    in.dtype = out.dtype = DIFFCOLL_INT32;
    in.device_type = out.device_type = DIFFCOLL_DEVICE_CPU;
    in.ndim = out.ndim = 1;
    in.shape[0] = 1;
    in.strides[0] = out.strides[0] = 1;
    out.shape[0] = 3;
    out.data = all.data();
    DC_ASSERT_OK(diffcoll_all_gather(g, &in, &out, 0, nullptr));
    EXPECT_EQ(all, std::vector<int32_t>({3, 1, 2}));
    // Peers are local ranks: local 0 (global 3) sends to local 1 (global 1).
    int32_t msg = local == 0 ? 4242 : -1;
    diffcoll_tensor_t m = in;
    m.data = &msg;
    if (local == 0) DC_ASSERT_OK(diffcoll_send(g, &m, 1, nullptr));
    if (local == 1) {
      DC_ASSERT_OK(diffcoll_recv(g, &m, 0, nullptr));
      EXPECT_EQ(msg, 4242);
    }
    // Reduce to local root 2 (global 2): sum of global ranks 3 + 1 + 2.
    int32_t v = r;
    m.data = &v;
    DC_ASSERT_OK(diffcoll_reduce(g, &m, DIFFCOLL_SUM, 0, 2, nullptr));
    if (local == 2) EXPECT_EQ(v, 6);
    else EXPECT_EQ(v, r);
    DC_EXPECT_OK(diffcoll_comm_destroy(g));
  });
}

TEST(Groups, SameListTwiceGivesIndependentGroups) {
  const int32_t list[2] = {2, 0};
  dct::run_ranks(3, [&](int r, diffcoll_comm_t* world) {
    diffcoll_comm_t *a = nullptr, *b = nullptr;
    DC_ASSERT_OK(diffcoll_comm_create_group(world, list, 2, &a));
    DC_ASSERT_OK(diffcoll_comm_create_group(world, list, 2, &b));
    if (r == 1) {
      EXPECT_EQ(a, nullptr);
      EXPECT_EQ(b, nullptr);
      return;
    }
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a, b);
    int32_t x = r + 1, y = 10 * (r + 1);
    diffcoll_tensor_t d{};
    d.dtype = DIFFCOLL_INT32;
    d.device_type = DIFFCOLL_DEVICE_CPU;
    d.ndim = 0;
    d.data = &y;
    DC_ASSERT_OK(diffcoll_all_reduce(b, &d, DIFFCOLL_SUM, 0, nullptr));
    d.data = &x;
    DC_ASSERT_OK(diffcoll_all_reduce(a, &d, DIFFCOLL_SUM, 0, nullptr));
    EXPECT_EQ(x, 4);
    EXPECT_EQ(y, 40);
    DC_EXPECT_OK(diffcoll_comm_destroy(b));
    DC_EXPECT_OK(diffcoll_comm_destroy(a));
  });
}

TEST(Groups, DisjointAndOverlappingGroupsAtOnce) {
  // [0,1] and [2,3] are made and used concurrently; then [1,2] overlaps both.
  dct::run_ranks(4, [&](int r, diffcoll_comm_t* world) {
    const int32_t low[2] = {0, 1}, high[2] = {2, 3}, mid[2] = {1, 2};
    diffcoll_comm_t* g = nullptr;
    DC_ASSERT_OK(diffcoll_comm_create_group(world, r < 2 ? low : high, 2, &g));
    ASSERT_NE(g, nullptr);
    int64_t x = r;
    diffcoll_tensor_t d{};
    d.data = &x;
    d.dtype = DIFFCOLL_INT64;
    d.device_type = DIFFCOLL_DEVICE_CPU;
    DC_ASSERT_OK(diffcoll_all_reduce(g, &d, DIFFCOLL_SUM, 0, nullptr));
    EXPECT_EQ(x, r < 2 ? 1 : 5);
    diffcoll_comm_t* m = nullptr;
    DC_ASSERT_OK(diffcoll_comm_create_group(world, mid, 2, &m));
    if (r == 1 || r == 2) {
      ASSERT_NE(m, nullptr);
      x = 10 * r;
      DC_ASSERT_OK(diffcoll_all_reduce(m, &d, DIFFCOLL_SUM, 0, nullptr));
      EXPECT_EQ(x, 30);
      DC_EXPECT_OK(diffcoll_comm_destroy(m));
    } else {
      EXPECT_EQ(m, nullptr);
    }
    DC_ASSERT_OK(diffcoll_all_reduce(g, &d, DIFFCOLL_MAX, 0, nullptr));
    DC_EXPECT_OK(diffcoll_comm_destroy(g));
  });
}

TEST(Groups, SplitOrdersByKeyThenParentRank) {
  dct::run_ranks(4, [&](int r, diffcoll_comm_t* world) {
    // colour = r % 2, key = -r: colour 0 is [2, 0], colour 1 is [3, 1].
    diffcoll_comm_t* s = nullptr;
    DC_ASSERT_OK(diffcoll_comm_split(world, r % 2, -r, &s));
    ASSERT_NE(s, nullptr);
    const std::vector<int32_t> order = r % 2 == 0 ? std::vector<int32_t>{2, 0}
                                                  : std::vector<int32_t>{3, 1};
    int32_t size = -1, rank = -1;
    DC_EXPECT_OK(diffcoll_comm_size(s, &size));
    DC_EXPECT_OK(diffcoll_comm_rank(s, &rank));
    EXPECT_EQ(size, 2);
    EXPECT_EQ(rank, r >= 2 ? 0 : 1);
    for (int i = 0; i < 2; ++i) {
      int32_t global = -1;
      DC_EXPECT_OK(diffcoll_comm_global_rank(s, i, &global));
      EXPECT_EQ(global, order[i]);
    }
    int32_t me = r;
    std::vector<int32_t> all(2, -1);
    diffcoll_tensor_t in{}, out{};
    in.data = &me;
    in.dtype = out.dtype = DIFFCOLL_INT32;
    in.device_type = out.device_type = DIFFCOLL_DEVICE_CPU;
    in.ndim = out.ndim = 1;
    in.shape[0] = 1;
    in.strides[0] = out.strides[0] = 1;
    out.shape[0] = 2;
    out.data = all.data();
    DC_ASSERT_OK(diffcoll_all_gather(s, &in, &out, 0, nullptr));
    EXPECT_EQ(all, order);

    // Equal keys: ordered by parent rank. Split the split again (nested):
    // global ranks must still be world ranks.
    diffcoll_comm_t* t = nullptr;
    DC_ASSERT_OK(diffcoll_comm_split(s, 7, 0, &t));
    ASSERT_NE(t, nullptr);
    int32_t trank = -1;
    DC_EXPECT_OK(diffcoll_comm_rank(t, &trank));
    EXPECT_EQ(trank, rank);
    for (int i = 0; i < 2; ++i) {
      int32_t global = -1;
      DC_EXPECT_OK(diffcoll_comm_global_rank(t, i, &global));
      EXPECT_EQ(global, order[i]);
    }
    DC_EXPECT_OK(diffcoll_barrier(t, nullptr));  // nobody destroys t while a peer still joins it
    DC_EXPECT_OK(diffcoll_comm_destroy(t));
    DC_EXPECT_OK(diffcoll_comm_destroy(s));

    // Everyone in one colour with equal keys: parent order.
    diffcoll_comm_t* u = nullptr;
    DC_ASSERT_OK(diffcoll_comm_split(world, 0, 5, &u));
    ASSERT_NE(u, nullptr);
    int32_t urank = -1;
    DC_EXPECT_OK(diffcoll_comm_rank(u, &urank));
    EXPECT_EQ(urank, r);
    DC_EXPECT_OK(diffcoll_barrier(u, nullptr));
    DC_EXPECT_OK(diffcoll_comm_destroy(u));
  });
}

TEST(Groups, SplitNoColorGivesNull) {
  dct::run_ranks(4, [&](int r, diffcoll_comm_t* world) {
    diffcoll_comm_t* s = reinterpret_cast<diffcoll_comm_t*>(0x1);
    const int color = r == 1 ? DIFFCOLL_SPLIT_NOCOLOR : 3;
    DC_ASSERT_OK(diffcoll_comm_split(world, color, 0, &s));
    if (r == 1) {
      EXPECT_EQ(s, nullptr);
      return;
    }
    ASSERT_NE(s, nullptr);
    int32_t size = -1, rank = -1;
    DC_EXPECT_OK(diffcoll_comm_size(s, &size));
    DC_EXPECT_OK(diffcoll_comm_rank(s, &rank));
    EXPECT_EQ(size, 3);
    EXPECT_EQ(rank, r == 0 ? 0 : r - 1);
    DC_EXPECT_OK(diffcoll_barrier(s, nullptr));
    DC_EXPECT_OK(diffcoll_comm_destroy(s));
  });
}

TEST(Groups, GroupOfAGroup) {
  // create_group on a split: the list names world ranks.
  dct::run_ranks(4, [&](int r, diffcoll_comm_t* world) {
    diffcoll_comm_t* s = nullptr;
    DC_ASSERT_OK(diffcoll_comm_split(world, 0, -r, &s));  // order [3,2,1,0]
    ASSERT_NE(s, nullptr);
    DC_ASSERT_OK(diffcoll_barrier(s, nullptr));
    const int32_t list[2] = {1, 3};
    diffcoll_comm_t* g = nullptr;
    DC_ASSERT_OK(diffcoll_comm_create_group(s, list, 2, &g));
    if (r == 1 || r == 3) {
      ASSERT_NE(g, nullptr);
      int32_t rank = -1, g0 = -1, g1 = -1;
      DC_EXPECT_OK(diffcoll_comm_rank(g, &rank));
      DC_EXPECT_OK(diffcoll_comm_global_rank(g, 0, &g0));
      DC_EXPECT_OK(diffcoll_comm_global_rank(g, 1, &g1));
      EXPECT_EQ(rank, r == 1 ? 0 : 1);
      EXPECT_EQ(g0, 1);
      EXPECT_EQ(g1, 3);
      int64_t x = r;
      diffcoll_tensor_t d{};
      d.data = &x;
      d.dtype = DIFFCOLL_INT64;
      d.device_type = DIFFCOLL_DEVICE_CPU;
      DC_ASSERT_OK(diffcoll_broadcast(g, &d, 1, nullptr));
      EXPECT_EQ(x, 3);
      DC_EXPECT_OK(diffcoll_comm_destroy(g));
    } else {
      EXPECT_EQ(g, nullptr);
    }
    DC_EXPECT_OK(diffcoll_barrier(s, nullptr));
    DC_EXPECT_OK(diffcoll_comm_destroy(s));
  });
}

// ---- lifecycle --------------------------------------------------------------------

// diffcoll.h: destroy "is not collective: safe on every rank in any order". A
// rank whose create/split returned may therefore destroy the communicator at
// once; that must not make the create or split of a slower peer fail.
TEST(Lifecycle, DestroyRightAfterCreateDoesNotBreakPeers) {
  const int p = 2;
  for (int it = 0; it < 100; ++it) {
    const std::string rendezvous = "local://" + dct::unique_name("race");
    std::mutex mutex;
    std::string error;
    std::vector<std::thread> threads;
    for (int r = 0; r < p; ++r) {
      threads.emplace_back([&, r] {
        diffcoll_config_t cfg = dct::test_config(1500);
        diffcoll_comm_t* comm = nullptr;
        diffcoll_status_t st = diffcoll_comm_create(rendezvous.c_str(), r, p, &cfg, &comm);
        if (st != DIFFCOLL_SUCCESS) {
          std::lock_guard<std::mutex> lock(mutex);
          error += "rank " + std::to_string(r) + ": " + diffcoll_status_string(st) + ": " +
                   diffcoll_last_error() + "\n";
          return;
        }
        diffcoll_comm_destroy(comm);
      });
    }
    for (auto& t : threads) t.join();
    if (!error.empty()) {
      ADD_FAILURE() << "iteration " << it << ": a rank's create failed because its peer "
                    << "destroyed the world right after its own create returned:\n" << error;
      return;
    }
  }
}

TEST(Lifecycle, DestroyRightAfterSplitDoesNotBreakPeers) {
  std::atomic<bool> failed{false};
  dct::run_ranks(2, [&](int r, diffcoll_comm_t* world) {
    for (int it = 0; it < 100 && !failed; ++it) {
      diffcoll_comm_t* s = nullptr;
      diffcoll_status_t st = diffcoll_comm_split(world, 0, r, &s);
      if (st != DIFFCOLL_SUCCESS) {
        ADD_FAILURE() << "iteration " << it << " rank " << r << ": split failed after the peer "
                      << "destroyed its split right away: " << diffcoll_status_string(st) << ": "
                      << diffcoll_last_error();
        failed = true;
        return;
      }
      diffcoll_comm_destroy(s);
    }
  }, 1500, 0, /*final_barrier=*/false);
}

}  // namespace
