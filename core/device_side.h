// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device side of a communicator, present when diffcoll is built with
// CUDA and NCCL (core/cuda). Without them, asking for one is an error.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "side.h"

namespace gloo {
namespace rendezvous {
class Store;
}
}  // namespace gloo

namespace diffcoll {

struct DeviceSideSpec {
  int device = 0;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{30000};
  std::string name;        // for messages and NCCL's commName
  std::string store_key;   // where rank 0 publishes the NCCL unique id
  gloo::rendezvous::Store* store = nullptr;
};

// A fresh NCCL communicator; its unique id travels through the store.
// Collective over the ranks of the spec.
std::unique_ptr<Side> make_device_side(const DeviceSideSpec& spec);

// ncclCommSplit of `parent` (a device side). Collective over the parent's
// ranks, NOCOLOR ones included; nullptr for those.
std::unique_ptr<Side> split_device_side(Side& parent, int color, int key,
                                        const std::string& name);

// Borrows a caller's ncclComm_t (never destroyed by diffcoll).
std::unique_ptr<Side> wrap_device_side(void* nccl_comm, std::chrono::milliseconds timeout,
                                       const std::string& name);

// Rank, size and CUDA device of a caller's ncclComm_t.
void describe_nccl_comm(void* nccl_comm, int* rank, int* size, int* device);

}  // namespace diffcoll
