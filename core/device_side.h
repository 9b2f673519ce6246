// The device side of a communicator, present when diffcoll is built with
// CUDA and NCCL (core/cuda). Without them, asking for one is an error.
#pragma once

#include <memory>
#include <string>

#include "side.h"

namespace gloo {
namespace rendezvous {
class Store;
}
}  // namespace gloo

namespace diffcoll {

class Comm;

// Creates the NCCL side of `comm` on CUDA device `device_id`, exchanging the
// NCCL unique id through `store` under `prefix`. Collective over `comm`.
std::unique_ptr<Side> make_device_side(Comm& comm, int device_id, const std::string& prefix,
                                       const std::shared_ptr<gloo::rendezvous::Store>& store);

}  // namespace diffcoll
