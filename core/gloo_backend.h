// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The host backend: Gloo's TCP transport on host memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "backend.h"

namespace gloo {
class Context;
namespace transport {
class UnboundBuffer;
}
}

namespace diffcoll {

class GlooBackend : public Backend {
 public:
  GlooBackend(std::shared_ptr<gloo::Context> context, std::chrono::milliseconds timeout);
  ~GlooBackend() override;

  int rank() const;
  int size() const;
  const std::shared_ptr<gloo::Context>& context() const { return context_; }

  void all_reduce(void* buffer, size_t count, DType dtype, Reduction red, void* stream) override;
  void broadcast(void* buffer, size_t bytes, int root, void* stream) override;
  void reduce(const void* input, void* output, size_t count, DType dtype, Reduction red,
              int root, void* stream) override;
  void all_gather(const void* input, void* output, size_t bytes, void* stream) override;
  void reduce_scatter(const void* input, void* output, size_t count, DType dtype,
                      Reduction red, void* stream) override;
  void all_to_all(const void* input, void* output, size_t bytes, void* stream) override;
  void gather(const void* input, void* output, size_t bytes, int root, void* stream) override;
  void scatter(const void* input, void* output, size_t bytes, int root, void* stream) override;
  void exchange(const std::vector<P2POp>& ops, void* stream) override;
  void post_exchange(const std::vector<P2POp>& ops, void* stream) override;
  void complete_exchange(void* stream) override;
  void barrier(void* stream) override;

 private:
  uint32_t next_tag() { return tag_++; }
  // Creates and posts one unbound buffer per transfer.
  std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> post(const std::vector<P2POp>& ops);
  void await(const std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>>& buffers,
             const std::vector<P2POp>& ops);
  // Slot of the n-th message between this rank and `peer` in one direction.
  uint64_t p2p_slot(std::map<int, uint64_t>& counters, int peer);

  std::shared_ptr<gloo::Context> context_;
  std::chrono::milliseconds timeout_;
  uint32_t tag_ = 0;
  std::map<int, uint64_t> sends_;
  std::map<int, uint64_t> recvs_;
  std::vector<char> scratch_;
  // The posted exchange, until complete_exchange.
  std::vector<P2POp> posted_ops_;
  std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> posted_;
};

}  // namespace diffcoll
