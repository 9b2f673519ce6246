// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// A Side is everything an operation needs on one kind of memory: the
// transport, the packer and the staging arena. A communicator has a host side
// and, with CUDA, a device side; ops pick one by the tensors' device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backend.h"
#include "fp8_wire.h"
#include "tensor.h"

namespace diffcoll {

constexpr int kSideTickets = 8;

struct Stats {
  uint64_t bytes_packed = 0;
  uint64_t bytes_unpacked = 0;
  uint64_t ops = 0;
};

class Side {
 public:
  virtual ~Side() = default;
  virtual Backend& backend() = 0;
  // Gather `view` into the dense buffer `dense` / scatter it back.
  virtual void pack(const TensorView& view, void* dense, void* stream) = 0;
  virtual void unpack(const void* dense, const TensorView& view, void* stream) = 0;
  // Quantise each piece's view into its FP8 wire buffer / dequantise it back
  // (fp8_wire.h); a device side moves a batch in one kernel launch.
  virtual void pack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire,
                        void* stream) = 0;
  virtual void unpack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire,
                          void* stream) = 0;
  // Staging memory of at least `bytes`, valid until the next call. May grow
  // the arena; a device side refuses to grow inside a graph capture.
  virtual void* staging(size_t bytes, void* stream) = 0;
  virtual void reserve(size_t bytes) = 0;
  // Copy between two buffers of this side's memory.
  virtual void copy(void* dst, const void* src, size_t bytes, void* stream) = 0;
  // Set `bytes` bytes of this side's memory at `dense` to zero (stream-ordered
  // on a device side; never synchronises the host).
  virtual void fill_zero(void* dense, size_t bytes, void* stream) = 0;
  // kSideTickets counters in this side's memory that start at zero and that
  // every kernel using one leaves at zero again (the last-block elections of
  // the CFG passes), so that no call spends a memset on them. Null where no
  // kernel elects (the host side). A communicator's calls run in stream
  // order, so one set serves them all.
  virtual uint32_t* tickets() { return nullptr; }
};

// Host memory: Gloo, memcpy-based packing and a growable vector.
class HostSide : public Side {
 public:
  explicit HostSide(Backend& backend) : backend_(backend) {}
  Backend& backend() override { return backend_; }
  void pack(const TensorView& view, void* dense, void* stream) override;
  void unpack(const void* dense, const TensorView& view, void* stream) override;
  void pack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream) override;
  void unpack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream) override;
  void* staging(size_t bytes, void* stream) override;
  void reserve(size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes, void* stream) override;
  void fill_zero(void* dense, size_t bytes, void* stream) override;

 private:
  Backend& backend_;
  std::unique_ptr<char[]> storage_;
  size_t capacity_ = 0;
};

}  // namespace diffcoll
