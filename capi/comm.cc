// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Communicator entry points.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../core/comm.h"
#include "extensible.h"
#include "handles.h"

namespace diffcoll {
namespace capi {
namespace {

// Reads the fields the caller's struct_size covers, defaults for the rest.
CommOptions read_config(const diffcoll_config_t* config) {
  diffcoll_config_t c = DIFFCOLL_CONFIG_INIT;
  if (config) {
    DIFFCOLL_REQUIRE(config->struct_size >= offsetof(diffcoll_config_t, timeout_ms) + sizeof(int32_t),
                     Status::kVersion, "config->struct_size ", config->struct_size,
                     " is too small: initialise the config with DIFFCOLL_CONFIG_INIT");
    using C = diffcoll_config_t;
    c = read_extensible(*config, c, &C::timeout_ms, &C::device_id, &C::check, &C::host);
  }
  CommOptions options;
  DIFFCOLL_REQUIRE(c.timeout_ms > 0, Status::kInvalidArgument, "config->timeout_ms ",
                   c.timeout_ms, " must be > 0");
  options.timeout = std::chrono::milliseconds(c.timeout_ms);
  options.device_id = c.device_id;
  if (c.check < 0) {
    const char* env = std::getenv("DIFFCOLL_CHECK");
    options.check = env && *env && std::strcmp(env, "0") != 0;
  } else {
    options.check = c.check != 0;
  }
  if (c.host) options.host = c.host;
  return options;
}

int env_int(const char* name) {
  const char* value = std::getenv(name);
  DIFFCOLL_REQUIRE(value && *value, Status::kInvalidArgument, "environment variable ", name,
                   " is not set");
  char* end = nullptr;
  long v = std::strtol(value, &end, 10);
  DIFFCOLL_REQUIRE(*end == '\0' && v >= 0 && v < (1L << 30), Status::kInvalidArgument,
                   "environment variable ", name, "=\"", value, "\" is not a rank number");
  return static_cast<int>(v);
}

}  // namespace
}  // namespace capi
}  // namespace diffcoll

using diffcoll::Comm;
using diffcoll::Status;
using namespace diffcoll::capi;

extern "C" {

diffcoll_status_t diffcoll_comm_create(const char* rendezvous, int32_t rank, int32_t size,
                                       const diffcoll_config_t* config, diffcoll_comm_t** out) {
  return guarded([&] {
    require_out(out, "out");
    *out = nullptr;
    DIFFCOLL_REQUIRE(rendezvous != nullptr, Status::kInvalidArgument, "rendezvous is NULL");
    diffcoll::CommOptions options = read_config(config);
    DIFFCOLL_REQUIRE(options.device_id >= -1, Status::kInvalidArgument, "config->device_id ",
                     options.device_id, " must be >= -1 (-2 only with create_from_env)");
    *out = publish(Comm::create_world(rendezvous, rank, size, options));
  });
}

diffcoll_status_t diffcoll_comm_create_from_env(const diffcoll_config_t* config,
                                                diffcoll_comm_t** out) {
  return guarded([&] {
    require_out(out, "out");
    *out = nullptr;
    diffcoll::CommOptions options = read_config(config);
    int rank = env_int("RANK");
    int size = env_int("WORLD_SIZE");
    const char* store = std::getenv("DIFFCOLL_STORE");
    DIFFCOLL_REQUIRE(store && *store, Status::kInvalidArgument,
                     "environment variable DIFFCOLL_STORE is not set (e.g. "
                     "redis://10.0.0.1:6379/job42 or file:///shared/job42)");
    if (options.device_id == -2) options.device_id = env_int("LOCAL_RANK");
    *out = publish(Comm::create_world(store, rank, size, options));
  });
}

diffcoll_status_t diffcoll_comm_wrap_nccl(void* nccl_comm, const char* rendezvous,
                                          const diffcoll_config_t* config, diffcoll_comm_t** out) {
  return guarded([&] {
    require_out(out, "out");
    *out = nullptr;
    DIFFCOLL_REQUIRE(rendezvous != nullptr, Status::kInvalidArgument, "rendezvous is NULL");
    *out = publish(Comm::wrap_nccl(nccl_comm, rendezvous, read_config(config)));
  });
}

diffcoll_status_t diffcoll_comm_split(diffcoll_comm_t* parent, int32_t color, int32_t key,
                                      diffcoll_comm_t** out) {
  return guarded([&] {
    require_out(out, "out");
    *out = nullptr;
    *out = publish(live_comm(parent, "parent").split(color, key));
  });
}

diffcoll_status_t diffcoll_comm_create_group(diffcoll_comm_t* parent, const int32_t* ranks,
                                             int32_t count, diffcoll_comm_t** out) {
  return guarded([&] {
    require_out(out, "out");
    *out = nullptr;
    Comm& p = live_comm(parent, "parent");
    DIFFCOLL_REQUIRE(ranks != nullptr && count > 0, Status::kInvalidArgument,
                     "a group needs a non-empty rank list (ranks=", (const void*)ranks,
                     ", count=", count, ")");
    *out = publish(p.create_group(std::vector<int>(ranks, ranks + count)));
  });
}

diffcoll_status_t diffcoll_comm_destroy(diffcoll_comm_t* comm) {
  return guarded([&] {
    if (comm == nullptr) return;
    Comm* c = &live_comm(comm, "comm");
    handles().remove(comm);
    delete c;
  });
}

diffcoll_status_t diffcoll_comm_size(const diffcoll_comm_t* comm, int32_t* size) {
  return guarded([&] {
    require_out(size, "size");
    *size = live_comm(comm, "comm").size();
  });
}

diffcoll_status_t diffcoll_comm_rank(const diffcoll_comm_t* comm, int32_t* rank) {
  return guarded([&] {
    require_out(rank, "rank");
    *rank = live_comm(comm, "comm").rank();
  });
}

diffcoll_status_t diffcoll_comm_global_rank(const diffcoll_comm_t* comm, int32_t local_rank,
                                            int32_t* global_rank) {
  return guarded([&] {
    require_out(global_rank, "global_rank");
    const Comm& c = live_comm(comm, "comm");
    DIFFCOLL_REQUIRE(local_rank >= 0 && local_rank < c.size(), Status::kInvalidArgument,
                     "local rank ", local_rank, " is outside 0..", c.size() - 1, " of ",
                     c.name());
    *global_rank = c.global_rank(local_rank);
  });
}

diffcoll_status_t diffcoll_comm_reserve(diffcoll_comm_t* comm, size_t bytes) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    c.host().reserve(bytes);
    if (c.options().device_id >= 0)
      c.side_for({diffcoll::DeviceType::kCuda, c.options().device_id}).reserve(bytes);
  });
}

diffcoll_status_t diffcoll_comm_get_stats(const diffcoll_comm_t* comm, diffcoll_stats_t* stats) {
  return guarded([&] {
    require_out(stats, "stats");
    const Comm& c = live_comm(comm, "comm");
    DIFFCOLL_REQUIRE(stats->struct_size >= sizeof(size_t) + 3 * sizeof(uint64_t),
                     Status::kVersion, "stats->struct_size ", stats->struct_size,
                     " is too small: initialise it with DIFFCOLL_STATS_INIT");
    stats->bytes_packed = c.stats.bytes_packed;
    stats->bytes_unpacked = c.stats.bytes_unpacked;
    stats->ops = c.stats.ops;
  });
}

diffcoll_status_t diffcoll_comm_reset_stats(diffcoll_comm_t* comm) {
  return guarded([&] { live_comm(comm, "comm").stats = diffcoll::Stats{}; });
}

}  // extern "C"
