// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// Whether every GPU of a group can reach every other by load/store (NVLink
// or PCIe peer access), asked over the control plane before any NCCL
// device-API set-up. NCCL's own answer (the LSA team of ncclDevCommCreate)
// comes too late: on a group that spans hosts, or ranks that NCCL treats as
// separate hosts, ncclDevCommCreate fails asynchronously and leaves the NCCL
// communicator in an error state that fails every later collective.
#pragma once

#include <string>

namespace diffcoll {

class Comm;

// "" when all of `comm`'s ranks share one host (NCCL's host identity:
// NCCL_HOSTID, else host name and boot id), each on its own GPU, every pair
// with peer access and NCCL_P2P_DISABLE unset; otherwise the reason, the same
// on every rank. Collective over the host side.
std::string load_store_reach(Comm& comm, int device);

}  // namespace diffcoll
