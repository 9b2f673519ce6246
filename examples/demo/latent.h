// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// A bf16 diffusion latent in one of the layouts engines hand us, with a
// reference value for every element that any rank can compute. It lives in
// host memory, or on a CUDA device with a host mirror for filling and
// checking (demos built with CUDA).
#pragma once

#include <diffcoll/diffcoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

// Where the Latents made from now on live: host memory (-1, the default) or
// CUDA device `device`.
void set_latent_device(int device);
// Waits for the device work queued so far on the default stream (nothing
// for host Latents), so that a timing covers the work, not its enqueueing.
void wait_for_latent_device();
// The CUDA devices a process could use, counted in a child process so that
// this one can still fork ranks that use CUDA; 0 in demos built without CUDA.
int count_latent_devices();

enum class Layout { kContiguous, kTransposed, kSliced };
const char* layout_name(Layout layout);

// The value rank `rank` puts at logical element `index` of its input: a
// quarter-integer in [-4, 4], so sums of a few ranks are exact in bf16.
float input_value(int rank, int64_t index);

class Latent {
 public:
  // `shape` is logical; the memory under it follows `layout`:
  //  contiguous: row-major; transposed: the last two dimensions swapped in
  //  memory (a dense view); sliced: each innermost row padded by 32 elements
  //  (a view with gaps). Padding is filled with a sentinel.
  Latent(std::vector<int64_t> shape, Layout layout);

  const diffcoll_tensor_t& desc() const { return desc_; }
  int64_t numel() const;
  uint64_t bytes() const { return static_cast<uint64_t>(numel()) * 2; }
  // fn(logical index) gives the value stored at each element.
  void fill(const std::function<float(int64_t)>& fn);

  // Every element's value, in logical row-major order.
  std::vector<float> values() const;
  // The first logical index whose value differs from fn's, or -1; also -1
  // only if the padding still holds the sentinel.
  int64_t first_mismatch(const std::function<float(int64_t)>& fn) const;

 private:
  // The device memory, when there is one, made equal to the host mirror
  // (upload) or the other way round (download).
  void upload();
  void download() const;
  // Calls visit(logical index, storage offset) for every element.
  void for_each(const std::function<void(int64_t, int64_t)>& visit) const;

  std::vector<int64_t> shape_;
  mutable std::vector<uint16_t> storage_;  // the host memory, or the device's mirror
  std::shared_ptr<void> device_;           // the device memory; null for host Latents
  std::vector<bool> covered_;  // storage elements the view reaches
  diffcoll_tensor_t desc_;
};

// Splits a logical row-major index of `shape` into coordinates, and back.
std::vector<int64_t> unravel(int64_t index, const std::vector<int64_t>& shape);
int64_t ravel(const std::vector<int64_t>& coords, const std::vector<int64_t>& shape);
