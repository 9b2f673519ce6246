// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "cuda_side.h"

#include <gloo/rendezvous/store.h>

#include <cstring>

#include "../device_side.h"
#include "cuda_error.h"
#include "fp8_wire_cuda.h"
#include "pack_cuda.h"

namespace diffcoll {

CudaSide::CudaSide(std::unique_ptr<NcclBackend> backend) : backend_(std::move(backend)) {
  DeviceGuard guard(backend_->device());
  const size_t bytes = kSideTickets * sizeof(uint32_t);
  DIFFCOLL_CUDA_CHECK(cudaMalloc(&tickets_, bytes));
  // Synchronously: the first kernel may run on any stream, blocking or not.
  const cudaError_t err = cudaMemset(tickets_, 0, bytes);
  const cudaError_t done = err == cudaSuccess ? cudaDeviceSynchronize() : err;
  if (done != cudaSuccess) {
    cudaFree(tickets_);
    DIFFCOLL_CUDA_CHECK(done);
  }
}

CudaSide::~CudaSide() {
  DeviceGuard guard(backend_->device());
  cudaFree(tickets_);
  if (arena_) cudaFree(arena_);
}

void CudaSide::pack(const TensorView& view, void* dense, void* stream) {
  DeviceGuard guard(backend_->device());
  PackPiece piece{view, dense};
  pack_cuda(&piece, 1, stream);
}

void CudaSide::unpack(const void* dense, const TensorView& view, void* stream) {
  DeviceGuard guard(backend_->device());
  PackPiece piece{view, const_cast<void*>(dense)};
  unpack_cuda(&piece, 1, stream);
}

void CudaSide::pack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream) {
  DeviceGuard guard(backend_->device());
  fp8_pack_cuda(pieces, count, wire, stream);
}

void CudaSide::unpack_fp8(const Fp8Piece* pieces, int count, const Fp8Wire& wire,
                          void* stream) {
  DeviceGuard guard(backend_->device());
  fp8_unpack_cuda(pieces, count, wire, stream);
}

void* CudaSide::staging(size_t bytes, void* stream) {
  if (bytes > capacity_) {
    DIFFCOLL_REQUIRE(!is_capturing(stream), Status::kInCapture, "the operation needs ", bytes,
                     " bytes of device staging but the arena holds ", capacity_,
                     " and cannot grow inside a CUDA graph capture: call "
                     "diffcoll_comm_reserve(comm, ", bytes, ") before capturing");
    reserve(bytes);
  }
  return arena_;
}

void CudaSide::reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  DeviceGuard guard(backend_->device());
  // Work queued on the old arena must finish before it is freed.
  DIFFCOLL_CUDA_CHECK(cudaDeviceSynchronize());
  if (arena_) DIFFCOLL_CUDA_CHECK(cudaFree(arena_));
  arena_ = nullptr;
  capacity_ = 0;
  cudaError_t err = cudaMalloc(&arena_, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail(Status::kOutOfMemory, "cannot allocate ", bytes, " bytes of device staging memory");
  }
  DIFFCOLL_CUDA_CHECK(err);
  capacity_ = bytes;
}

void CudaSide::copy(void* dst, const void* src, size_t bytes, void* stream) {
  DIFFCOLL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                      static_cast<cudaStream_t>(stream)));
}

void CudaSide::fill_zero(void* dense, size_t bytes, void* stream) {
  if (!bytes) return;
  DeviceGuard guard(backend_->device());
  DIFFCOLL_CUDA_CHECK(cudaMemsetAsync(dense, 0, bytes, static_cast<cudaStream_t>(stream)));
}

std::unique_ptr<Side> make_device_side(const DeviceSideSpec& spec) {
  int devices = 0;
  DIFFCOLL_CUDA_CHECK(cudaGetDeviceCount(&devices));
  DIFFCOLL_REQUIRE(spec.device >= 0 && spec.device < devices, Status::kInvalidArgument,
                   "device_id ", spec.device, " is outside the ", devices,
                   " CUDA devices of this process");
  ncclUniqueId id;
  if (spec.rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    DIFFCOLL_REQUIRE(r == ncclSuccess, Status::kNccl, "ncclGetUniqueId: ", ncclGetErrorString(r));
    spec.store->set(spec.store_key, std::vector<char>(id.internal, id.internal + sizeof id.internal));
  } else {
    spec.store->wait({spec.store_key}, spec.timeout);
    std::vector<char> bytes = spec.store->get(spec.store_key);
    DIFFCOLL_REQUIRE(bytes.size() == sizeof id.internal, Status::kSystem,
                     "the NCCL unique id in the store has ", bytes.size(), " bytes");
    std::memcpy(id.internal, bytes.data(), bytes.size());
  }
  ncclComm_t setup = NcclBackend::init(id, spec.rank, spec.size, spec.device, spec.timeout,
                                       spec.name);
  return std::make_unique<CudaSide>(
      NcclBackend::own(setup, spec.device, spec.timeout, spec.name));
}

std::unique_ptr<Side> split_device_side(Side& parent, int color, int key,
                                        const std::string& name) {
  NcclBackend& nccl = static_cast<CudaSide&>(parent).nccl();
  ncclComm_t child = nccl.split(color, key, name);
  if (!child) return nullptr;
  return std::make_unique<CudaSide>(NcclBackend::own(child, nccl.device(), nccl.timeout(), name));
}

std::unique_ptr<Side> wrap_device_side(void* nccl_comm, std::chrono::milliseconds timeout,
                                       const std::string& name) {
  int rank, size, device;
  describe_nccl_comm(nccl_comm, &rank, &size, &device);
  return std::make_unique<CudaSide>(
      NcclBackend::borrow(static_cast<ncclComm_t>(nccl_comm), device, timeout, name));
}

void describe_nccl_comm(void* nccl_comm, int* rank, int* size, int* device) {
  DIFFCOLL_REQUIRE(nccl_comm != nullptr, Status::kInvalidArgument, "the NCCL communicator is NULL");
  auto comm = static_cast<ncclComm_t>(nccl_comm);
  ncclResult_t r = ncclCommUserRank(comm, rank);
  if (r == ncclSuccess) r = ncclCommCount(comm, size);
  if (r == ncclSuccess) r = ncclCommCuDevice(comm, device);
  DIFFCOLL_REQUIRE(r == ncclSuccess, Status::kInvalidArgument,
                   "not a usable NCCL communicator: ", ncclGetErrorString(r));
}

}  // namespace diffcoll
