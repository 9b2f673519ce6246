// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Communicators: a world made at a rendezvous, and groups split or listed
// from it. Each knows its global ranks, its local rank and its sides.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gloo_backend.h"
#include "side.h"
#include "store.h"

namespace gloo {
namespace transport {
class Device;
}
}  // namespace gloo

namespace diffcoll {

struct CommOptions {
  std::chrono::milliseconds timeout{30000};
  int device_id = -1;  // CUDA device of the device side; -1: host only
  bool check = false;  // verify that ranks agree on every collective
  std::string host;    // address to listen on; empty: chosen from the rendezvous
};

// A send or receive recorded between group_start and group_end.
struct PendingP2P {
  bool is_send;
  TensorView view;
  int peer;
  void* stream;
};

class Comm {
 public:
  static std::unique_ptr<Comm> create_world(const std::string& rendezvous, int rank, int size,
                                            const CommOptions& options);
  // A world whose device side is the caller's NCCL communicator (borrowed,
  // never destroyed); its rank, size and device come from NCCL.
  static std::unique_ptr<Comm> wrap_nccl(void* nccl_comm, const std::string& rendezvous,
                                         const CommOptions& options);
  ~Comm();

  // Collective over this communicator; nullptr for DIFFCOLL_SPLIT_NOCOLOR.
  std::unique_ptr<Comm> split(int color, int key);
  // Collective over the listed global ranks; nullptr if this rank is not one.
  std::unique_ptr<Comm> create_group(const std::vector<int>& global_ranks);

  int rank() const { return rank_; }
  int size() const { return static_cast<int>(global_ranks_.size()); }
  int global_rank(int local_rank) const { return global_ranks_.at(local_rank); }
  const std::string& name() const { return name_; }
  const CommOptions& options() const { return shared_->options; }

  HostSide& host() { return *host_side_; }
  GlooBackend& host_backend() { return *host_backend_; }
  // The side for tensors on `device`; throws kUnsupported if there is none.
  Side& side_for(const Device& device);
  Side* device_side() { return device_side_.get(); }

  Stats stats;
  // Point-to-point operations recorded since group_start.
  bool in_group = false;
  std::vector<PendingP2P> pending;

  // After a transport failure the communicator refuses further work.
  void mark_broken(const std::string& reason) { broken_ = reason; }
  void ensure_usable(const char* operation) const;

 private:
  // What a world and every group made from it share.
  struct Shared {
    Rendezvous rendezvous;
    std::shared_ptr<gloo::transport::Device> device;
    CommOptions options;
  };

  Comm(std::shared_ptr<Shared> shared, std::string prefix, std::string name, int rank,
       std::vector<int> global_ranks);
  static std::shared_ptr<Shared> open(const std::string& rendezvous, const CommOptions& options);
  // Connects the host side to the other ranks of the same `prefix`.
  void connect_host();
  // A fresh NCCL communicator for the device side, if options ask for one.
  void connect_device();

  std::shared_ptr<Shared> shared_;
  std::string prefix_;  // store keys of this communicator
  std::string name_;    // for messages: "world", "split(color=1)", "group[3,1,2]"
  int rank_;
  std::vector<int> global_ranks_;
  std::unique_ptr<GlooBackend> host_backend_;
  std::unique_ptr<HostSide> host_side_;
  std::unique_ptr<Side> device_side_;
  uint64_t splits_ = 0;
  std::map<std::vector<int>, uint64_t> groups_made_;
  std::string broken_;
};

}  // namespace diffcoll
