// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "comm.h"

#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "device_side.h"
#include "error.h"

namespace diffcoll {
namespace {

std::string join(const std::vector<int>& values) {
  std::ostringstream os;
  for (size_t i = 0; i < values.size(); ++i) os << (i ? "," : "") << values[i];
  return os.str();
}

std::shared_ptr<gloo::transport::Device> make_device(const CommOptions& options,
                                                     bool in_process) {
  gloo::transport::tcp::attr attr;
  const char* env_host = std::getenv("DIFFCOLL_HOST");
  const char* env_iface = std::getenv("DIFFCOLL_SOCKET_IFNAME");
  if (!options.host.empty()) attr.hostname = options.host;
  else if (env_host && *env_host) attr.hostname = env_host;
  else if (env_iface && *env_iface) attr.iface = env_iface;
  else if (in_process) attr.hostname = "127.0.0.1";
  try {
    return gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    fail(Status::kSystem, "cannot open a TCP device on \"",
         attr.hostname.empty() ? attr.iface : attr.hostname, "\": ", e.what());
  }
}

}  // namespace

std::shared_ptr<Comm::Shared> Comm::open(const std::string& rendezvous,
                                         const CommOptions& options) {
  DIFFCOLL_REQUIRE(options.timeout.count() > 0, Status::kInvalidArgument,
                   "timeout must be > 0 ms");
  auto shared = std::make_shared<Shared>();
  shared->rendezvous = open_rendezvous(rendezvous);
  shared->options = options;
  shared->device = make_device(options, shared->rendezvous.in_process);
  return shared;
}

std::unique_ptr<Comm> Comm::create_world(const std::string& rendezvous, int rank, int size,
                                         const CommOptions& options) {
  DIFFCOLL_REQUIRE(size > 0, Status::kInvalidArgument, "world size ", size, " must be > 0");
  DIFFCOLL_REQUIRE(rank >= 0 && rank < size, Status::kInvalidArgument, "rank ", rank,
                   " is outside 0..", size - 1);
  auto shared = open(rendezvous, options);
  std::vector<int> ranks(size);
  for (int i = 0; i < size; ++i) ranks[i] = i;
  std::string prefix = shared->rendezvous.prefix + "/diffcoll/world";
  std::unique_ptr<Comm> comm(new Comm(shared, prefix, "world", rank, std::move(ranks)));
  comm->connect_host();
  comm->connect_device();
  return comm;
}

std::unique_ptr<Comm> Comm::wrap_nccl(void* nccl_comm, const std::string& rendezvous,
                                      const CommOptions& options) {
  int rank = 0, size = 0, device = 0;
  describe_nccl_comm(nccl_comm, &rank, &size, &device);
  CommOptions wrapped = options;
  wrapped.device_id = device;
  auto shared = open(rendezvous, wrapped);
  std::vector<int> ranks(size);
  for (int i = 0; i < size; ++i) ranks[i] = i;
  std::string prefix = shared->rendezvous.prefix + "/diffcoll/world";
  std::unique_ptr<Comm> comm(new Comm(shared, prefix, "world(wrapped NCCL)", rank, std::move(ranks)));
  comm->connect_host();
  comm->device_side_ = wrap_device_side(nccl_comm, wrapped.timeout, comm->name_);
  return comm;
}

Comm::Comm(std::shared_ptr<Shared> shared, std::string prefix, std::string name, int rank,
           std::vector<int> global_ranks)
    : shared_(std::move(shared)),
      prefix_(std::move(prefix)),
      name_(std::move(name)),
      rank_(rank),
      global_ranks_(std::move(global_ranks)) {}

Comm::~Comm() = default;

void Comm::connect_host() {
  auto context = std::make_shared<gloo::rendezvous::Context>(rank_, size());
  context->setTimeout(shared_->options.timeout);
  try {
    gloo::rendezvous::PrefixStore store(prefix_, *shared_->rendezvous.store);
    context->connectFullMesh(store, shared_->device);
    host_backend_ = std::make_unique<GlooBackend>(context, shared_->options.timeout);
    // A rank returns from connectFullMesh once its own pairs are up; without
    // this barrier a rank that destroys its communicator at once could close
    // sockets a slower peer is still connecting.
    host_backend_->barrier(nullptr);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw transport_error("creating " + name_ + " (rank " + std::to_string(rank_) + " of " +
                              std::to_string(size()) + ")",
                          e);
  }
  host_side_ = std::make_unique<HostSide>(*host_backend_);
}

void Comm::connect_device() {
  if (shared_->options.device_id < 0) return;
  DeviceSideSpec spec;
  spec.device = shared_->options.device_id;
  spec.rank = rank_;
  spec.size = size();
  spec.timeout = shared_->options.timeout;
  spec.name = name_;
  spec.store_key = prefix_ + "/nccl-unique-id";
  spec.store = shared_->rendezvous.store.get();
  device_side_ = make_device_side(spec);
}

std::unique_ptr<Comm> Comm::split(int color, int key) {
  ensure_usable("split");
  DIFFCOLL_REQUIRE(color >= -1, Status::kInvalidArgument, "split colour ", color,
                   " must be >= 0 or DIFFCOLL_SPLIT_NOCOLOR");
  int32_t mine[2] = {color, key};
  std::vector<int32_t> all(2 * size());
  try {
    host_backend_->all_gather(mine, all.data(), sizeof mine, nullptr);
  } catch (const std::exception& e) {
    Error error = transport_error("split of " + name_ + " (rank " + std::to_string(rank_) + ")", e);
    mark_broken(error.what());
    throw error;
  }
  const uint64_t seq = splits_++;
  std::ostringstream prefix, name;
  prefix << prefix_ << "/split" << seq << "/" << color;
  name << name_ << "/split(color=" << color << ")";
  // ncclCommSplit is collective over the parent, NOCOLOR ranks included.
  std::unique_ptr<Side> device;
  if (device_side_) device = split_device_side(*device_side_, color, key, name.str());
  if (color < 0) return nullptr;
  std::vector<int> members;  // local ranks of my colour
  for (int r = 0; r < size(); ++r)
    if (all[2 * r] == color) members.push_back(r);
  std::stable_sort(members.begin(), members.end(),
                   [&](int a, int b) { return all[2 * a + 1] < all[2 * b + 1]; });
  std::vector<int> globals;
  int new_rank = -1;
  for (size_t i = 0; i < members.size(); ++i) {
    globals.push_back(global_ranks_[members[i]]);
    if (members[i] == rank_) new_rank = static_cast<int>(i);
  }
  std::unique_ptr<Comm> group(new Comm(shared_, prefix.str(), name.str(), new_rank, globals));
  group->connect_host();
  group->device_side_ = std::move(device);
  return group;
}

std::unique_ptr<Comm> Comm::create_group(const std::vector<int>& global_ranks) {
  ensure_usable("create_group");
  DIFFCOLL_REQUIRE(!global_ranks.empty(), Status::kInvalidArgument,
                   "a group needs at least one rank");
  std::set<int> seen;
  int new_rank = -1;
  for (size_t i = 0; i < global_ranks.size(); ++i) {
    int g = global_ranks[i];
    DIFFCOLL_REQUIRE(std::find(global_ranks_.begin(), global_ranks_.end(), g) !=
                         global_ranks_.end(),
                     Status::kInvalidArgument, "group rank list [", join(global_ranks),
                     "]: global rank ", g, " is not a member of ", name_);
    DIFFCOLL_REQUIRE(seen.insert(g).second, Status::kInvalidArgument, "group rank list [",
                     join(global_ranks), "] names global rank ", g, " twice");
    if (g == global_ranks_[rank_]) new_rank = static_cast<int>(i);
  }
  if (new_rank < 0) return nullptr;
  // Only members take part, so the key is what they all know: the list and
  // how many groups of this list they made before.
  const uint64_t seq = groups_made_[global_ranks]++;
  std::string list = join(global_ranks);
  std::unique_ptr<Comm> group(new Comm(shared_, prefix_ + "/group[" + list + "]#" +
                                                    std::to_string(seq),
                                       name_ + "/group[" + list + "]", new_rank, global_ranks));
  group->connect_host();
  group->connect_device();
  return group;
}

Side& Comm::side_for(const Device& device) {
  if (!device.is_cuda()) return *host_side_;
  DIFFCOLL_REQUIRE(device_side_ != nullptr, Status::kUnsupported, name_,
                   " has no device side: a CUDA tensor needs a communicator created with "
                   "config.device_id >= 0 in a library built with CUDA");
  return *device_side_;
}

void Comm::ensure_usable(const char* operation) const {
  DIFFCOLL_REQUIRE(broken_.empty(), Status::kRemote, operation, " on ", name_,
                   ": the communicator failed earlier and cannot be used (", broken_, ")");
}

}  // namespace diffcoll
