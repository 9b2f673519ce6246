// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "latent.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#ifdef DIFFCOLL_DEMO_CUDA
#include <cuda_runtime.h>
#endif

#include "example_support.h"

namespace {

constexpr int64_t kPad = 32;
constexpr uint16_t kSentinel = 0x7fc1;  // a NaN no computation produces
int latent_device = -1;

}  // namespace

void set_latent_device(int device) {
  latent_device = device;
#ifdef DIFFCOLL_DEMO_CUDA
  if (device >= 0) CUDA(cudaSetDevice(device));
#endif
}

void wait_for_latent_device() {
#ifdef DIFFCOLL_DEMO_CUDA
  if (latent_device >= 0) CUDA(cudaDeviceSynchronize());
#endif
}

int count_latent_devices() {
#ifdef DIFFCOLL_DEMO_CUDA
  pid_t pid = fork();
  if (pid == 0) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
    _exit(n < 100 ? n : 100);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 0;
  return WEXITSTATUS(status);
#else
  return 0;
#endif
}

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::kContiguous: return "contiguous";
    case Layout::kTransposed: return "transposed";
    case Layout::kSliced: return "sliced";
  }
  return "?";
}

float input_value(int rank, int64_t index) {
  uint64_t x = static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ull + rank * 0xD1B54A32D192ED03ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<float>(static_cast<int>(x % 33) - 16) / 4.0f;
}

Latent::Latent(std::vector<int64_t> shape, Layout layout) : shape_(std::move(shape)) {
  const int n = static_cast<int>(shape_.size());
  std::vector<int64_t> physical = shape_;
  if (layout == Layout::kTransposed) std::swap(physical[n - 1], physical[n - 2]);
  if (layout == Layout::kSliced) physical[n - 1] += kPad;
  std::vector<int64_t> physical_strides(n);
  int64_t s = 1;
  for (int d = n - 1; d >= 0; --d) {
    physical_strides[d] = s;
    s *= physical[d];
  }
  storage_.assign(static_cast<size_t>(s), kSentinel);
  std::memset(&desc_, 0, sizeof desc_);
  desc_.data = storage_.data();
  desc_.dtype = DIFFCOLL_BFLOAT16;
  desc_.device_type = DIFFCOLL_DEVICE_CPU;
  desc_.ndim = n;
  for (int d = 0; d < n; ++d) {
    desc_.shape[d] = shape_[d];
    desc_.strides[d] = physical_strides[d];
  }
  if (layout == Layout::kTransposed) std::swap(desc_.strides[n - 1], desc_.strides[n - 2]);
  covered_.assign(storage_.size(), false);
  for_each([&](int64_t, int64_t offset) { covered_[offset] = true; });
#ifdef DIFFCOLL_DEMO_CUDA
  if (latent_device >= 0) {
    void* memory = nullptr;
    CUDA(cudaMalloc(&memory, storage_.size() * sizeof(uint16_t)));
    device_.reset(memory, [](void* p) { cudaFree(p); });
    desc_.data = memory;
    desc_.device_type = DIFFCOLL_DEVICE_CUDA;
    desc_.device_id = latent_device;
    upload();  // the padding's sentinels too
  }
#endif
}

void Latent::upload() {
#ifdef DIFFCOLL_DEMO_CUDA
  if (device_)
    CUDA(cudaMemcpy(device_.get(), storage_.data(), storage_.size() * sizeof(uint16_t),
                          cudaMemcpyHostToDevice));
#endif
}

void Latent::download() const {
#ifdef DIFFCOLL_DEMO_CUDA
  if (device_)
    CUDA(cudaMemcpy(storage_.data(), device_.get(), storage_.size() * sizeof(uint16_t),
                          cudaMemcpyDeviceToHost));
#endif
}

int64_t Latent::numel() const {
  int64_t n = 1;
  for (int64_t e : shape_) n *= e;
  return n;
}

void Latent::for_each(const std::function<void(int64_t, int64_t)>& visit) const {
  const int n = desc_.ndim;
  std::vector<int64_t> coords(n, 0);
  int64_t offset = 0;
  for (int64_t index = 0, total = numel(); index < total; ++index) {
    visit(index, offset);
    for (int d = n - 1; d >= 0; --d) {
      offset += desc_.strides[d];
      if (++coords[d] < shape_[d]) break;
      offset -= desc_.strides[d] * shape_[d];
      coords[d] = 0;
    }
  }
}

void Latent::fill(const std::function<float(int64_t)>& fn) {
  for_each([&](int64_t index, int64_t offset) { storage_[offset] = to_bf16(fn(index)); });
  upload();
}

std::vector<float> Latent::values() const {
  download();
  std::vector<float> out(static_cast<size_t>(numel()));
  for_each([&](int64_t index, int64_t offset) { out[index] = from_bf16(storage_[offset]); });
  return out;
}

int64_t Latent::first_mismatch(const std::function<float(int64_t)>& fn) const {
  download();
  int64_t bad = -1;
  for_each([&](int64_t index, int64_t offset) {
    if (bad < 0 && from_bf16(storage_[offset]) != fn(index)) bad = index;
  });
  if (bad >= 0) return bad;
  for (size_t i = 0; i < storage_.size(); ++i)
    if (!covered_[i] && storage_[i] != kSentinel) return 0;
  return -1;
}

std::vector<int64_t> unravel(int64_t index, const std::vector<int64_t>& shape) {
  std::vector<int64_t> coords(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    coords[d] = index % shape[d];
    index /= shape[d];
  }
  return coords;
}

int64_t ravel(const std::vector<int64_t>& coords, const std::vector<int64_t>& shape) {
  int64_t index = 0;
  for (size_t d = 0; d < shape.size(); ++d) index = index * shape[d] + coords[d];
  return index;
}
