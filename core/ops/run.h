// The frame every operation of a communicator runs in.
#pragma once

#include <functional>

#include "../comm.h"

namespace diffcoll {
namespace ops {

// Runs body() as operation `operation` of `comm`: refuses a broken
// communicator and calls inside a p2p group, names the operation, the group
// and the rank in transport errors, marks the communicator broken after a
// transport failure, and counts the operation when it completes.
void run(Comm& comm, const char* operation, const std::function<void()>& body);

}  // namespace ops
}  // namespace diffcoll
