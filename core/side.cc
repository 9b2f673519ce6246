// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "side.h"

#include <cstring>
#include <new>

#include "error.h"
#include "pack.h"

namespace diffcoll {

void HostSide::pack(const TensorView& view, void* dense, void*) { pack_host(view, dense); }

void HostSide::unpack(const void* dense, const TensorView& view, void*) {
  unpack_host(dense, view);
}

void HostSide::pack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void*) {
  for (int i = 0; i < count; ++i) fp8_pack_host(pieces[i].view, pieces[i].wire, wire);
}

void HostSide::unpack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void*) {
  for (int i = 0; i < count; ++i) fp8_unpack_host(pieces[i].wire, pieces[i].view, wire);
}

void* HostSide::staging(size_t bytes, void*) {
  reserve(bytes);
  return storage_.get();
}

void HostSide::reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  std::unique_ptr<char[]> grown(new (std::nothrow) char[bytes]);
  DIFFCOLL_REQUIRE(grown != nullptr, Status::kOutOfMemory, "cannot allocate ", bytes,
                   " bytes of host staging memory");
  storage_ = std::move(grown);
  capacity_ = bytes;
}

void HostSide::copy(void* dst, const void* src, size_t bytes, void*) {
  if (bytes) std::memmove(dst, src, bytes);  // empty tensors may have NULL data
}

void HostSide::fill_zero(void* dense, size_t bytes, void*) {
  if (bytes) std::memset(dense, 0, bytes);
}

}  // namespace diffcoll
