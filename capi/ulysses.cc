// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Sequence parallelism: the Ulysses all-to-all.
#include "../core/ops/gqa_heads.h"
#include "../core/ops/ulysses.h"

#include <cstddef>
#include <string>
#include <vector>

#include "extensible.h"
#include "handles.h"
#include "tensor.h"
#include "wire_format.h"

using diffcoll::Comm;
using diffcoll::Status;
using diffcoll::TensorView;
using namespace diffcoll::capi;
namespace ops = diffcoll::ops;

namespace {

// The descriptors of one array, each validated under its own name.
std::vector<TensorView> views(const diffcoll_tensor_t* tensors, int32_t count, const char* what) {
  DIFFCOLL_REQUIRE(tensors != nullptr, Status::kInvalidArgument, what, " is NULL");
  std::vector<TensorView> out;
  out.reserve(count);
  for (int32_t i = 0; i < count; ++i) {
    const std::string name = std::string(what) + "[" + std::to_string(i) + "]";
    out.push_back(to_view(&tensors[i], name.c_str()));
  }
  return out;
}

ops::UlyssesOptions read_options(const diffcoll_ulysses_options_t* options) {
  ops::UlyssesOptions o;
  if (!options) return o;
  using T = diffcoll_ulysses_options_t;
  DIFFCOLL_REQUIRE(options->struct_size >= offsetof(T, scale_block) + sizeof(int32_t),
                   Status::kVersion, "options->struct_size ", options->struct_size,
                   " is too small: initialise the options with DIFFCOLL_ULYSSES_OPTIONS_INIT");
  const T defaults = DIFFCOLL_ULYSSES_OPTIONS_INIT;
  const T read =
      read_extensible(*options, defaults, &T::query_heads, &T::wire_format, &T::scale_block);
  o.query_heads = read.query_heads;
  o.use_fp8 = read_wire_format(read.wire_format, read.scale_block, "options", &o.fp8);
  return o;
}

diffcoll_status_t all_to_all(diffcoll_comm_t* comm, const diffcoll_tensor_t* inputs,
                             const diffcoll_tensor_t* outputs, int32_t count, int32_t seq_axis,
                             int32_t head_axis, int32_t direction,
                             const diffcoll_ulysses_options_t* options, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    DIFFCOLL_REQUIRE(count >= 1, Status::kInvalidArgument, "diffcoll_ulysses_all_to_all: count ",
                     count, " must be >= 1");
    DIFFCOLL_REQUIRE(ops::ulysses_direction_valid(direction), Status::kInvalidArgument,
                     "diffcoll_ulysses_all_to_all: direction ", direction,
                     " is not a diffcoll_ulysses_direction_t");
    const ops::UlyssesOptions o = read_options(options);
    const std::vector<TensorView> in = views(inputs, count, "inputs");
    const std::vector<TensorView> out = views(outputs, count, "outputs");
    ops::ulysses_all_to_all(c, in.data(), out.data(), count, seq_axis, head_axis,
                            static_cast<ops::UlyssesDirection>(direction), o, stream);
  });
}

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_ulysses_all_to_all(diffcoll_comm_t* comm,
                                              const diffcoll_tensor_t* inputs,
                                              const diffcoll_tensor_t* outputs, int32_t count,
                                              int32_t seq_axis, int32_t head_axis,
                                              int32_t direction, void* stream) {
  return all_to_all(comm, inputs, outputs, count, seq_axis, head_axis, direction, nullptr, stream);
}

diffcoll_status_t diffcoll_ulysses_all_to_all_ex(diffcoll_comm_t* comm,
                                                 const diffcoll_tensor_t* inputs,
                                                 const diffcoll_tensor_t* outputs, int32_t count,
                                                 int32_t seq_axis, int32_t head_axis,
                                                 int32_t direction,
                                                 const diffcoll_ulysses_options_t* options,
                                                 void* stream) {
  return all_to_all(comm, inputs, outputs, count, seq_axis, head_axis, direction, options, stream);
}

diffcoll_status_t diffcoll_ulysses_kv_heads(int64_t query_heads, int64_t kv_heads, int32_t parts,
                                            int32_t index, int64_t* start, int64_t* length) {
  return guarded([&] {
    require_out(start, "start");
    require_out(length, "length");
    ops::kv_heads_held(query_heads, kv_heads, parts, index, start, length);
  });
}

}  // extern "C"
