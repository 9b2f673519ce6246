// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
#include "load_store_reach.h"

#include <cuda_runtime.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "../comm.h"
#include "cuda_error.h"

namespace diffcoll {
namespace {

// Where a rank runs, as NCCL tells hosts apart, and its GPU's PCI bus id.
struct Place {
  char host[192];
  char bus[32];
  int32_t p2p_disabled;
  int32_t reaches_all_visible;  // peer access to every same-host GPU this rank sees
};

std::string host_identity() {
  if (const char* id = std::getenv("NCCL_HOSTID")) return std::string("id:") + id;
  char name[128] = {};
  gethostname(name, sizeof name - 1);
  std::string boot;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
  return std::string(name) + "/" + boot;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && std::atoi(v) != 0;
}

}  // namespace

std::string load_store_reach(Comm& comm, int device) {
  Place mine{};
  std::strncpy(mine.host, host_identity().c_str(), sizeof mine.host - 1);
  {
    DeviceGuard guard(device);
    DIFFCOLL_CUDA_CHECK(cudaDeviceGetPCIBusId(mine.bus, sizeof mine.bus, device));
  }
  mine.p2p_disabled = env_flag("NCCL_P2P_DISABLE") ? 1 : 0;
  std::vector<Place> all(static_cast<size_t>(comm.size()));
  comm.host_backend().all_gather(&mine, all.data(), sizeof mine, nullptr);

  // Peer access to the GPUs of the others that this process can see (with
  // CUDA_VISIBLE_DEVICES hiding them, NCCL decides alone).
  mine.reaches_all_visible = 1;
  for (const Place& p : all) {
    int other = -1;
    if (cudaDeviceGetByPCIBusId(&other, p.bus) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    int can = 1;
    if (other != device && cudaDeviceCanAccessPeer(&can, device, other) == cudaSuccess && !can)
      mine.reaches_all_visible = 0;
  }
  std::vector<Place> verdicts(all.size());
  comm.host_backend().all_gather(&mine, verdicts.data(), sizeof mine, nullptr);

  for (size_t r = 0; r < verdicts.size(); ++r) {
    const Place& p = verdicts[r];
    if (std::strcmp(p.host, verdicts[0].host) != 0)
      return "rank " + std::to_string(r) + " is on another host than rank 0 (as NCCL sees hosts)";
    for (size_t q = 0; q < r; ++q)
      if (std::strcmp(p.bus, verdicts[q].bus) == 0)
        return "ranks " + std::to_string(q) + " and " + std::to_string(r) + " share GPU " + p.bus;
    if (p.p2p_disabled) return "NCCL_P2P_DISABLE is set on rank " + std::to_string(r);
    if (!p.reaches_all_visible)
      return "the GPU of rank " + std::to_string(r) + " has no peer access to another rank's GPU";
  }
  return "";
}

}  // namespace diffcoll
