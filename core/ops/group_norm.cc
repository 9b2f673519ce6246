// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Why an all-gather and not an all-reduce: an all-reduce of (count, sum,
// sum of squares) is one collective too, but var = E[x^2] - E[x]^2 in f32
// cancels catastrophically when |mean| >> std (activations with an offset),
// and a sum of means and M2s is not a valid combine. Gathering each rank's
// (count, mean, M2) and combining them pairwise (Chan et al.) keeps f32
// accurate, and since every rank combines the same records in rank order,
// every rank gets bit-identical statistics (an all-reduce's result is also
// identical on every rank, but its summation order is the transport's).
// The traffic is P * N * G * 16 bytes, a few kilobytes: latency-bound either way.
// A communicator of one rank exchanges nothing: its own records are the
// whole activation's (normalise_alone, fewer launches on CUDA).
#include "group_norm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../error.h"
#include "agreement.h"
#include "group_norm_math.h"
#include "run.h"
#include "slabs.h"

namespace diffcoll {
namespace ops {
namespace {

constexpr size_t kAlign = 256;
size_t room(size_t bytes) { return (bytes + kAlign - 1) & ~(kAlign - 1); }

bool dtype_supported(DType d) {
  return d == DType::kFloat16 || d == DType::kBFloat16 || d == DType::kFloat32;
}

bool same_device(const Device& a, const Device& b) {
  return a.type == b.type && (!a.is_cuda() || a.id == b.id);
}

void check_affine(const TensorView* p, const char* what, const TensorView& input) {
  if (!p) return;
  const TensorView& t = *p;
  t.validate(what);
  DIFFCOLL_REQUIRE(t.ndim == 1 && t.shape[0] == input.shape[1], Status::kInvalidArgument,
                   "group_norm: ", what, " ", t.describe(), " must have shape [", input.shape[1],
                   "] (one value per channel of input ", input.describe(), ")");
  DIFFCOLL_REQUIRE(t.dtype == input.dtype || t.dtype == DType::kFloat32,
                   Status::kInvalidArgument, "group_norm: ", what, " is ", dtype_name(t.dtype),
                   " but must be float32 or the input's dtype (", dtype_name(input.dtype), ")");
  DIFFCOLL_REQUIRE(same_device(t.device, input.device), Status::kInvalidArgument,
                   "group_norm: ", what, " ", t.describe(), " and input ", input.describe(),
                   " are on different devices");
}

}  // namespace

// Merges spatial dimension d into d + 1 where both tensors step through them
// as through one dimension; drops extents of 1.
GroupNormGeometry group_norm_geometry(const TensorView& in, const TensorView& out,
                                      int64_t groups) {
  GroupNormGeometry g;
  g.batch = in.shape[0];
  g.channels = in.shape[1];
  g.groups = groups;
  g.in_n = in.strides[0];
  g.in_c = in.strides[1];
  g.out_n = out.strides[0];
  g.out_c = out.strides[1];
  g.device = in.device.id;
  for (int d = 2; d < in.ndim; ++d) {
    g.spatial *= in.shape[d];
    if (in.shape[d] == 1) continue;
    const int k = g.nsp - 1;
    if (k >= 0 && g.in_sp_stride[k] == in.strides[d] * in.shape[d] &&
        g.out_sp_stride[k] == out.strides[d] * in.shape[d]) {
      g.sp_shape[k] *= in.shape[d];
      g.in_sp_stride[k] = in.strides[d];
      g.out_sp_stride[k] = out.strides[d];
      continue;
    }
    g.sp_shape[g.nsp] = in.shape[d];
    g.in_sp_stride[g.nsp] = in.strides[d];
    g.out_sp_stride[g.nsp] = out.strides[d];
    ++g.nsp;
  }
  return g;
}

namespace {

GroupNormAffine affine_of(const GroupNormArgs& args) {
  GroupNormAffine a;
  if (args.weight) {
    a.weight = args.weight->data;
    a.weight_dtype = args.weight->dtype;
    a.weight_stride = args.weight->strides[0];
  }
  if (args.bias) {
    a.bias = args.bias->data;
    a.bias_dtype = args.bias->dtype;
    a.bias_stride = args.bias->strides[0];
  }
  return a;
}

const GroupNormMath& math_for(const Device& device) {
  return device.is_cuda() ? cuda_group_norm_math() : host_group_norm_math();
}

}  // namespace

void check_group_norm(const TensorView& input, const TensorView& output,
                      const GroupNormArgs& args) {
  input.validate("input");
  output.validate("output");
  DIFFCOLL_REQUIRE(input.ndim >= 2, Status::kInvalidArgument, "group_norm: input ",
                   input.describe(), " must have at least 2 dimensions [N, C, ...]");
  DIFFCOLL_REQUIRE(dtype_supported(input.dtype), Status::kInvalidArgument, "group_norm: input ",
                   input.describe(), ": GroupNorm takes float16, bfloat16 or float32");
  DIFFCOLL_REQUIRE(args.groups >= 1, Status::kInvalidArgument, "group_norm: num_groups ",
                   args.groups, " must be >= 1");
  DIFFCOLL_REQUIRE(input.shape[1] % args.groups == 0, Status::kInvalidArgument,
                   "group_norm: ", input.shape[1], " channels of input ", input.describe(),
                   " are not divisible by num_groups ", args.groups);
  DIFFCOLL_REQUIRE(std::isfinite(args.eps) && args.eps >= 0, Status::kInvalidArgument,
                   "group_norm: eps ", args.eps, " must be finite and >= 0");
  DIFFCOLL_REQUIRE(output.dtype == input.dtype, Status::kInvalidArgument, "group_norm: output is ",
                   dtype_name(output.dtype), " but input is ", dtype_name(input.dtype));
  bool same_shape = output.ndim == input.ndim;
  for (int d = 0; same_shape && d < input.ndim; ++d) same_shape = output.shape[d] == input.shape[d];
  DIFFCOLL_REQUIRE(same_shape, Status::kInvalidArgument, "group_norm: output ", output.describe(),
                   " does not have the shape of input ", input.describe());
  DIFFCOLL_REQUIRE(same_device(output.device, input.device), Status::kInvalidArgument,
                   "group_norm: output ", output.describe(), " and input ", input.describe(),
                   " are on different devices");
  DIFFCOLL_REQUIRE(!output.may_overlap(), Status::kInvalidArgument, "group_norm: output ",
                   output.describe(),
                   " has overlapping elements (a zero or aliasing stride) and cannot be written");
  const bool in_place = output.data == input.data &&
                        std::equal(input.strides, input.strides + input.ndim, output.strides);
  DIFFCOLL_REQUIRE(in_place || !detail::spans_overlap(input, output), Status::kInvalidArgument,
                   "group_norm: output ", output.describe(), " overlaps input ", input.describe(),
                   " without being the input itself (pass the same tensor for in place)");
  check_affine(args.weight, "weight", input);
  check_affine(args.bias, "bias", input);
}

void group_norm(Comm& comm, const TensorView& input, const TensorView& output,
                const GroupNormArgs& args, void* stream) {
  const char* op = "group_norm";
  check_group_norm(input, output, args);
  const GroupNormMath& math = math_for(input.device);
  run(comm, op, [&] {
    // Ranks agree on everything but the spatial extents and strides.
    TensorView nc = input;
    nc.ndim = 2;
    nc.strides[0] = nc.strides[1] = 0;
    int64_t eps_bits;
    const double eps = args.eps;
    std::memcpy(&eps_bits, &eps, sizeof eps_bits);
    const int64_t affine = (args.weight ? 1 + static_cast<int64_t>(args.weight->dtype) : 0) |
                           (args.bias ? 1 + static_cast<int64_t>(args.bias->dtype) : 0) << 8;
    verify_agreement(comm, signature(op, nc, args.groups, eps_bits, affine, input.ndim));

    Side& side = comm.side_for(input.device);
    const GroupNormGeometry g = group_norm_geometry(input, output, args.groups);
    if (g.pairs() == 0) return;  // no (sample, group): nothing to normalise or exchange
    const int ranks = comm.size();
    const float epsilon = static_cast<float>(args.eps);
    // Staging: this rank's records, every rank's (with more than one), the math's workspace.
    const size_t record_bytes = static_cast<size_t>(g.pairs()) * sizeof(GroupMoments);
    const size_t gathered_bytes = ranks > 1 ? room(record_bytes * ranks) : 0;
    char* base = static_cast<char*>(side.staging(
        room(record_bytes) + gathered_bytes + room(math.workspace_bytes(g)), stream));
    auto* mine = reinterpret_cast<GroupMoments*>(base);
    auto* all = reinterpret_cast<GroupMoments*>(base + room(record_bytes));
    void* work = base + room(record_bytes) + gathered_bytes;
    if (ranks == 1) {  // the whole activation is here: nothing to exchange
      math.normalise_alone(g, input.dtype, input.data, output.data, affine_of(args), epsilon, mine,
                           work, stream);
      return;
    }
    math.local_moments(g, input.dtype, input.data, mine, work, stream);
    side.backend().all_gather(mine, all, record_bytes, stream);
    math.normalise(g, input.dtype, input.data, output.data, affine_of(args), all, ranks, epsilon, work,
                   stream);
  });
}

}  // namespace ops
}  // namespace diffcoll
