// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device-side entry points of a build without CUDA: each says so.
#include "device_side.h"

#include "error.h"
#include "ops/cfg_math.h"

namespace diffcoll {
namespace {

[[noreturn]] void no_cuda(const char* what) {
  fail(Status::kUnsupported, what,
       " needs a device side, but this diffcoll was built without CUDA "
       "(-DDIFFCOLL_CUDA=OFF or no CUDA toolkit found)");
}

}  // namespace

std::unique_ptr<Side> make_device_side(const DeviceSideSpec& spec) {
  no_cuda(("device_id " + std::to_string(spec.device)).c_str());
}

std::unique_ptr<Side> split_device_side(Side&, int, int, const std::string&) {
  no_cuda("split of a device communicator");
}

std::unique_ptr<Side> wrap_device_side(void*, std::chrono::milliseconds, const std::string&) {
  no_cuda("wrapping an NCCL communicator");
}

void describe_nccl_comm(void*, int*, int*, int*) { no_cuda("wrapping an NCCL communicator"); }

const ops::CfgMath& ops::cuda_cfg_math(int device) {
  no_cuda(("the CFG combine on CUDA tensors of device " + std::to_string(device)).c_str());
}

}  // namespace diffcoll
