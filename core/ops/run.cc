// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "run.h"

#include <new>
#include <string>

#include "../error.h"

namespace diffcoll {
namespace ops {

void begin_operation(Comm& comm, const char* operation) {
  comm.ensure_usable(operation);
  DIFFCOLL_REQUIRE(!comm.in_group, Status::kInvalidArgument, operation, " on ", comm.name(),
                   ": only send and recv may be called between group_start and group_end");
}

void fail_operation(Comm& comm, const char* operation, std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    if (e.status() == Status::kTimeout || e.status() == Status::kRemote ||
        e.status() == Status::kSystem || e.status() == Status::kNccl)
      comm.mark_broken(e.what());
    throw;
  } catch (const std::bad_alloc&) {
    throw;  // this rank is short of memory; the peers and the transport are fine
  } catch (const std::exception& e) {
    Error error = transport_error(std::string(operation) + " on " + comm.name() + " (rank " +
                                      std::to_string(comm.rank()) + ")",
                                  e);
    comm.mark_broken(error.what());
    throw error;
  }
}

}  // namespace ops
}  // namespace diffcoll
