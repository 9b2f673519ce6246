// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device side: NCCL, the CUDA pack kernels and a device staging arena.
#pragma once

#include <memory>

#include "../side.h"
#include "nccl_backend.h"

namespace diffcoll {

class CudaSide : public Side {
 public:
  explicit CudaSide(std::unique_ptr<NcclBackend> backend);
  ~CudaSide() override;

  Backend& backend() override { return *backend_; }
  NcclBackend& nccl() { return *backend_; }
  void pack(const TensorView& view, void* dense, void* stream) override;
  void unpack(const void* dense, const TensorView& view, void* stream) override;
  void pack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream) override;
  void unpack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream) override;
  // Grows the arena outside a graph capture only: inside one it fails with
  // kInCapture and says how much to reserve beforehand.
  void* staging(size_t bytes, void* stream) override;
  void reserve(size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes, void* stream) override;
  // cudaMemsetAsync on `stream`: stream-ordered, capturable.
  void fill_zero(void* dense, size_t bytes, void* stream) override;
  uint32_t* tickets() override { return tickets_; }

 private:
  std::unique_ptr<NcclBackend> backend_;
  uint32_t* tickets_ = nullptr;  // kSideTickets, zeroed once here
  void* arena_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace diffcoll
