// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "fused_norm.h"

#include <cmath>
#include <cstring>
#include <iterator>
#include <vector>

#include "../error.h"
#include "agreement.h"
#include "run.h"

namespace diffcoll {
namespace ops {
namespace {

bool supported_dtype(DType d) {
  return d == DType::kFloat16 || d == DType::kBFloat16 || d == DType::kFloat32;
}

float load(DType d, const void* base, int64_t i) {
  if (d == DType::kFloat32) return static_cast<const float*>(base)[i];
  uint16_t h = static_cast<const uint16_t*>(base)[i];
  return d == DType::kBFloat16 ? bf16_to_float(h) : f16_to_float(h);
}

// Stores `v` rounded to the dtype and returns the rounded value.
float store(DType d, void* base, int64_t i, float v) {
  if (d == DType::kFloat32) {
    static_cast<float*>(base)[i] = v;
    return v;
  }
  uint16_t h = d == DType::kBFloat16 ? float_to_bf16(v) : float_to_f16(v);
  static_cast<uint16_t*>(base)[i] = h;
  return d == DType::kBFloat16 ? bf16_to_float(h) : f16_to_float(h);
}

float round_to(DType d, float v) {
  if (d == DType::kFloat32) return v;
  return d == DType::kBFloat16 ? bf16_to_float(float_to_bf16(v)) : f16_to_float(float_to_f16(v));
}

bool overlaps(const TensorView& a, const TensorView& b) {
  auto lo_a = static_cast<const char*>(a.data), lo_b = static_cast<const char*>(b.data);
  return lo_a < lo_b + b.nbytes() && lo_b < lo_a + a.nbytes();
}

// x, y, residual, residual_out: contiguous, same dtype, device and shape
// [..., hidden]; weight: contiguous [hidden].
void check_args(const FusedNormArgs& a) {
  const TensorView& x = a.x;
  x.validate("x");
  DIFFCOLL_REQUIRE(supported_dtype(x.dtype), Status::kInvalidArgument,
                   "fused_norm supports float16, bfloat16 and float32, not ",
                   dtype_name(x.dtype));
  DIFFCOLL_REQUIRE(x.ndim >= 1 && x.shape[x.ndim - 1] > 0, Status::kInvalidArgument, "x ",
                   x.describe(), " needs a last dimension (the hidden size) of at least 1");
  DIFFCOLL_REQUIRE(x.is_contiguous(), Status::kInvalidArgument, "x ", x.describe(),
                   " must be contiguous (row-major): fused_norm works on whole rows");
  auto like_x = [&](const TensorView& t, const char* what) {
    t.validate(what);
    DIFFCOLL_REQUIRE(t.dtype == x.dtype, Status::kInvalidArgument, what, " is ",
                     dtype_name(t.dtype), " but x is ", dtype_name(x.dtype));
    DIFFCOLL_REQUIRE(t.device.type == x.device.type && t.device.id == x.device.id,
                     Status::kInvalidArgument, what, " ", t.describe(), " and x ", x.describe(),
                     " are on different devices");
    DIFFCOLL_REQUIRE(t.is_contiguous(), Status::kInvalidArgument, what, " ", t.describe(),
                     " must be contiguous (row-major)");
  };
  auto same_shape = [&](const TensorView& t, const char* what) {
    like_x(t, what);
    bool same = t.ndim == x.ndim;
    for (int d = 0; same && d < x.ndim; ++d) same = t.shape[d] == x.shape[d];
    DIFFCOLL_REQUIRE(same, Status::kInvalidArgument, what, " ", t.describe(),
                     " must have the shape of x ", x.describe());
  };
  same_shape(a.y, "y");
  if (a.residual) same_shape(*a.residual, "residual");
  if (a.residual_out) same_shape(*a.residual_out, "residual_out");
  if (a.weight) {
    like_x(*a.weight, "weight");
    DIFFCOLL_REQUIRE(a.weight->ndim == 1 && a.weight->shape[0] == x.shape[x.ndim - 1],
                     Status::kInvalidArgument, "weight ", a.weight->describe(),
                     " must be one-dimensional with the hidden size ", x.shape[x.ndim - 1]);
  }
  DIFFCOLL_REQUIRE(std::isfinite(a.eps) && a.eps >= 0, Status::kInvalidArgument, "eps ", a.eps,
                   " must be finite and >= 0");
  // Outputs may alias their own input exactly (y over x, residual_out over
  // residual) and nothing else: a partial overlap would read rows already
  // written.
  auto disjoint_or_same = [&](const TensorView& out, const char* out_name, const TensorView& in,
                              const char* in_name, bool may_alias) {
    if (!overlaps(out, in)) return;
    DIFFCOLL_REQUIRE(may_alias && out.data == in.data, Status::kInvalidArgument, out_name,
                     " overlaps ", in_name,
                     may_alias ? " without being exactly it"
                               : "; it may only alias its own input");
  };
  disjoint_or_same(a.y, "y", x, "x", true);
  if (a.residual) disjoint_or_same(a.y, "y", *a.residual, "residual", false);
  if (a.weight) disjoint_or_same(a.y, "y", *a.weight, "weight", false);
  if (a.residual_out) {
    disjoint_or_same(*a.residual_out, "residual_out", a.y, "y", false);
    disjoint_or_same(*a.residual_out, "residual_out", x, "x", false);
    if (a.residual)
      disjoint_or_same(*a.residual_out, "residual_out", *a.residual, "residual", true);
    if (a.weight) disjoint_or_same(*a.residual_out, "residual_out", *a.weight, "weight", false);
  }
}

// The host path's epilogue, row by row: `sum` holds allreduce(x), rounded to
// the dtype as the all-reduce returned it.
void epilogue_host(const FusedNormCall& c, const void* sum) {
  std::vector<float> row(static_cast<size_t>(c.hidden));
  for (int64_t t = 0; t < c.tokens; ++t) {
    const int64_t base = t * c.hidden;
    float squares = 0;
    for (int64_t j = 0; j < c.hidden; ++j) {
      float v = load(c.dtype, sum, base + j);
      if (c.residual) v += load(c.dtype, c.residual, base + j);
      // The norm sees residual_out as stored, as a separate norm would.
      v = c.residual_out ? store(c.dtype, c.residual_out, base + j, v) : round_to(c.dtype, v);
      row[j] = v;
      squares += v * v;
    }
    const float scale = 1.0f / std::sqrt(squares / static_cast<float>(c.hidden) + c.eps);
    for (int64_t j = 0; j < c.hidden; ++j) {
      float v = row[j] * scale;
      if (c.weight) v *= load(c.dtype, c.weight, j);
      store(c.dtype, c.y, base + j, v);
    }
  }
}

}  // namespace

bool fused_norm_path_valid(int32_t value) { return value >= 0 && value <= 3; }

const char* fused_norm_path_name(FusedNormPath path) {
  switch (path) {
    case FusedNormPath::kAuto:
      return "auto";
    case FusedNormPath::kOneShot:
      return "one-shot";
    case FusedNormPath::kTwoShot:
      return "two-shot";
    case FusedNormPath::kNcclKernel:
      return "nccl+kernel";
  }
  return "?";
}

// The table of crossovers reads as intended: groups in increasing size, each
// one-shot bound within its two-shot bound, within the symmetric window.
constexpr bool crossovers_consistent() {
  int previous = 0;
  for (const FusedNormCrossover& c : kFusedNormCrossovers) {
    if (c.max_ranks <= previous || c.one_shot_max > c.two_shot_max ||
        c.two_shot_max > kFusedNormTwoShotMaxBytes)
      return false;
    previous = c.max_ranks;
  }
  return true;
}
static_assert(crossovers_consistent(), "kFusedNormCrossovers is out of order");

FusedNormPath choose_fused_norm_path(size_t bytes, int ranks) {
  const FusedNormCrossover* row = std::end(kFusedNormCrossovers) - 1;
  for (const FusedNormCrossover& c : kFusedNormCrossovers)
    if (ranks <= c.max_ranks) {
      row = &c;
      break;
    }
  if (bytes <= row->one_shot_max) return FusedNormPath::kOneShot;
  if (bytes <= row->two_shot_max) return FusedNormPath::kTwoShot;
  return FusedNormPath::kNcclKernel;
}

FusedNormWorkspace::FusedNormWorkspace(Comm& comm, const FusedNormLimits& limits)
    : comm_(&comm), limits_(limits) {
  DIFFCOLL_REQUIRE(limits.max_tokens >= 1 && limits.max_hidden >= 1, Status::kInvalidArgument,
                   "fused_norm workspace: max_tokens ", limits.max_tokens, " and max_hidden ",
                   limits.max_hidden, " must be >= 1");
  DIFFCOLL_REQUIRE(dtype_valid(static_cast<int32_t>(limits.dtype)) && supported_dtype(limits.dtype),
                   Status::kInvalidArgument,
                   "fused_norm workspace: dtype must be float16, bfloat16 or float32");
  DIFFCOLL_REQUIRE(limits.max_tokens <= (int64_t{1} << 40) / limits.max_hidden,
                   Status::kInvalidArgument, "fused_norm workspace: max_tokens x max_hidden ",
                   "is too large");
  ops::run(comm, "fused_norm_workspace_create", [&] {
    // Every rank must size its workspace alike: the device half registers
    // symmetric windows of one size on all of them.
    const int64_t mine[3] = {limits.max_tokens, limits.max_hidden,
                             static_cast<int64_t>(limits.dtype)};
    std::vector<int64_t> all(3 * static_cast<size_t>(comm.size()));
    comm.host_backend().all_gather(mine, all.data(), sizeof mine, nullptr);
    for (int r = 1; r < comm.size(); ++r)
      DIFFCOLL_REQUIRE(std::memcmp(&all[3 * r], all.data(), sizeof mine) == 0, Status::kMismatch,
                       "fused_norm workspace on ", comm.name(), ": rank ", r, " asked for (",
                       all[3 * r], " tokens, hidden ", all[3 * r + 1], ", ",
                       dtype_name(static_cast<DType>(all[3 * r + 2])), ") but rank 0 for (",
                       all[0], " tokens, hidden ", all[1], ", ",
                       dtype_name(static_cast<DType>(all[2])), ")");
    if (comm.device_side()) device_ = make_fused_norm_device(comm, limits);
  });
}

FusedNormWorkspace::~FusedNormWorkspace() = default;

FusedNormPath FusedNormWorkspace::resolve(FusedNormPath path, size_t bytes) const {
  DIFFCOLL_REQUIRE(device_ != nullptr, Status::kUnsupported,
                   "the fused_norm workspace has no device half: its communicator has no "
                   "device side");
  std::string why;
  const bool fused = device_->fused_available(bytes, &why);
  if (path == FusedNormPath::kAuto)
    return fused ? choose_fused_norm_path(bytes, comm_->size()) : FusedNormPath::kNcclKernel;
  DIFFCOLL_REQUIRE(path == FusedNormPath::kNcclKernel || fused, Status::kUnsupported,
                   "fused_norm path ", fused_norm_path_name(path), " is not available on ",
                   comm_->name(), ": ", why, " (use the auto or nccl+kernel path)");
  return path;
}

void FusedNormWorkspace::run(Comm& comm, const FusedNormArgs& a, void* stream) {
  DIFFCOLL_REQUIRE(&comm == comm_, Status::kInvalidArgument,
                   "the fused_norm workspace belongs to another communicator");
  DIFFCOLL_REQUIRE(fused_norm_path_valid(static_cast<int32_t>(a.path)), Status::kInvalidArgument,
                   "unknown fused_norm path ", static_cast<int32_t>(a.path));
  check_args(a);
  FusedNormCall call;
  call.hidden = a.x.shape[a.x.ndim - 1];
  call.tokens = a.x.numel() / call.hidden;
  call.dtype = a.x.dtype;
  call.eps = a.eps;
  call.x = a.x.data;
  call.y = a.y.data;
  call.residual = a.residual ? a.residual->data : nullptr;
  call.weight = a.weight ? a.weight->data : nullptr;
  call.residual_out = a.residual_out ? a.residual_out->data : nullptr;
  DIFFCOLL_REQUIRE(call.tokens <= limits_.max_tokens && call.hidden <= limits_.max_hidden &&
                       dtype_size(call.dtype) <= dtype_size(limits_.dtype),
                   Status::kInvalidArgument, "the fused_norm workspace is too small: it serves ",
                   "up to ", limits_.max_tokens, " tokens of hidden size ", limits_.max_hidden,
                   " in ", dtype_name(limits_.dtype), ", but x is ", a.x.describe(), " (",
                   call.tokens, " tokens of ", call.hidden,
                   "); create the workspace with the largest call it must serve");
  ops::run(comm, "fused_norm", [&] {
    uint32_t eps_bits;
    std::memcpy(&eps_bits, &call.eps, sizeof eps_bits);
    verify_agreement(comm, signature("fused_norm", a.x, call.residual != nullptr,
                                     call.weight != nullptr, static_cast<int64_t>(a.path),
                                     eps_bits));
    comm.side_for(a.x.device);  // a CUDA tensor needs a device side
    if (call.tokens == 0) return;
    if (!a.x.device.is_cuda()) {
      run_host(comm, call);
      return;
    }
    const size_t bytes = a.x.nbytes();
    device_->run(call, resolve(a.path, bytes), stream);
  });
}

void FusedNormWorkspace::run_host(Comm& comm, const FusedNormCall& call) {
  const size_t n = static_cast<size_t>(call.tokens * call.hidden);
  const size_t bytes = n * dtype_size(call.dtype);
  void* sum = comm.host().staging(bytes, nullptr);
  std::memcpy(sum, call.x, bytes);
  comm.host_backend().all_reduce(sum, n, call.dtype, Reduction{}, nullptr);
  epilogue_host(call, sum);
}

}  // namespace ops
}  // namespace diffcoll
