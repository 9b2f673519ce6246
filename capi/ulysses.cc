// Sequence parallelism: the Ulysses all-to-all.
#include "../core/ops/ulysses.h"

#include <string>
#include <vector>

#include "handles.h"
#include "tensor.h"

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

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_ulysses_all_to_all(diffcoll_comm_t* comm,
                                              const diffcoll_tensor_t* inputs,
                                              const diffcoll_tensor_t* outputs, int32_t count,
                                              int32_t seq_axis, int32_t head_axis,
                                              int32_t direction, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    DIFFCOLL_REQUIRE(count >= 1, Status::kInvalidArgument, "diffcoll_ulysses_all_to_all: count ",
                     count, " must be >= 1");
    DIFFCOLL_REQUIRE(ops::ulysses_direction_valid(direction), Status::kInvalidArgument,
                     "diffcoll_ulysses_all_to_all: direction ", direction,
                     " is not a diffcoll_ulysses_direction_t");
    const std::vector<TensorView> in = views(inputs, count, "inputs");
    const std::vector<TensorView> out = views(outputs, count, "outputs");
    ops::ulysses_all_to_all(c, in.data(), out.data(), count, seq_axis, head_axis,
                            static_cast<ops::UlyssesDirection>(direction), stream);
  });
}

}  // extern "C"
