// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "tensor.h"

#include "../core/error.h"

namespace diffcoll {
namespace capi {

TensorView to_view(const diffcoll_tensor_t* tensor, const char* what) {
  DIFFCOLL_REQUIRE(tensor != nullptr, Status::kInvalidArgument, what, " is NULL");
  DIFFCOLL_REQUIRE(dtype_valid(tensor->dtype), Status::kInvalidArgument, what, ": dtype ",
                   tensor->dtype, " is not a diffcoll_dtype_t");
  DIFFCOLL_REQUIRE(tensor->device_type == DIFFCOLL_DEVICE_CPU ||
                       tensor->device_type == DIFFCOLL_DEVICE_CUDA,
                   Status::kInvalidArgument, what, ": device_type ", tensor->device_type,
                   " is neither DIFFCOLL_DEVICE_CPU nor DIFFCOLL_DEVICE_CUDA");
  DIFFCOLL_REQUIRE(tensor->device_type != DIFFCOLL_DEVICE_CUDA || tensor->device_id >= 0,
                   Status::kInvalidArgument, what, ": CUDA device_id ", tensor->device_id,
                   " is negative");
  DIFFCOLL_REQUIRE(tensor->ndim >= 0 && tensor->ndim <= DIFFCOLL_MAX_DIMS,
                   Status::kInvalidArgument, what, ": ndim ", tensor->ndim, " is outside 0..",
                   DIFFCOLL_MAX_DIMS);
  TensorView view;
  view.data = tensor->data;
  view.dtype = static_cast<DType>(tensor->dtype);
  view.device.type = static_cast<DeviceType>(tensor->device_type);
  view.device.id = tensor->device_id;
  view.ndim = tensor->ndim;
  for (int d = 0; d < view.ndim; ++d) {
    view.shape[d] = tensor->shape[d];
    view.strides[d] = tensor->strides[d];
  }
  view.validate(what);
  return view;
}

}  // namespace capi
}  // namespace diffcoll
