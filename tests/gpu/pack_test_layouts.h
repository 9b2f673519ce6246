// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// Views for the pack_cuda tests (pack_cuda_test.cu on a GPU,
// pack_cuda_emulation_test.cu on the host): a Layout is a view into a block
// of storage bytes, built by slicing, flipping and permuting a contiguous
// block; random ones cover every rank, dtype and kind of stride.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace diffcoll {
namespace pack_test {

// A view into a block of storage bytes; applied alike to a host and a device
// copy of the storage.
struct Layout {
  std::string name;
  DType dtype = DType::kFloat32;
  size_t storageBytes = 0;
  int64_t offset = 0;  // bytes from the storage start to element (0, ..., 0)
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  // The view on `storage`; without storage, for its shape alone.
  TensorView view(char* storage = nullptr, Device device = {}) const {
    TensorView v;
    v.data = storage ? storage + offset : nullptr;
    v.dtype = dtype;
    v.device = device;
    v.ndim = ndim;
    std::copy(shape, shape + ndim, v.shape);
    std::copy(strides, strides + ndim, v.strides);
    return v;
  }
  std::string describe() const {
    return name + ": " + view().describe() + " at byte " + std::to_string(offset);
  }
};

// How one storage dimension is sliced: elements start, start + step, ...,
// `length` of them (-1: as many as fit), reversed when flip.
struct Slice {
  int64_t start = 0, step = 1, length = -1;
  bool flip = false;
};

// A view of a contiguous `storage` block: dimension d sliced by slices[d]
// (none: whole), then permuted so that view dimension j is storage dimension
// perm[j] (none: identity). `shift` extra bytes precede the storage, to
// misalign it.
inline Layout build(std::string name, DType dtype, const std::vector<int64_t>& storage,
             std::vector<Slice> slices = {}, std::vector<int> perm = {}, int64_t shift = 0) {
  const int n = static_cast<int>(storage.size());
  slices.resize(n);
  if (perm.empty()) {
    perm.resize(n);
    std::iota(perm.begin(), perm.end(), 0);
  }
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  int64_t count = 1, offset = 0;
  std::vector<int64_t> stride(n), length(n), step(n);
  for (int d = n - 1; d >= 0; --d) {
    stride[d] = count;
    count *= storage[d];
  }
  for (int d = 0; d < n; ++d) {
    const Slice& s = slices[d];
    length[d] = s.length >= 0 ? s.length : (storage[d] - s.start + s.step - 1) / s.step;
    if (length[d] > 0 && s.start + (length[d] - 1) * s.step >= storage[d])
      throw std::logic_error("slice out of range in " + name);
    step[d] = s.step * stride[d];
    offset += s.start * stride[d];
    if (s.flip && length[d] > 0) {
      offset += (length[d] - 1) * step[d];
      step[d] = -step[d];
    }
  }
  Layout l;
  l.name = std::move(name);
  l.dtype = dtype;
  l.storageBytes = static_cast<size_t>(count * es + shift);
  l.offset = offset * es + shift;
  l.ndim = n;
  for (int j = 0; j < n; ++j) {
    l.shape[j] = length[perm[j]];
    l.strides[j] = step[perm[j]];
  }
  return l;
}

enum class Shape { kContiguous, kPermuted, kSliced, kNegative, kMixed };
inline const char* shapeName(Shape s) {
  static const char* names[] = {"contiguous", "permuted", "sliced", "negative", "mixed"};
  return names[static_cast<int>(s)];
}

// Odd sizes mostly, some large enough for the tiled (transposing) path.
inline std::vector<int64_t> randomSizes(std::mt19937_64& rng, int ndim, int64_t budget) {
  static const int64_t kSmall[] = {1, 2, 3, 5, 7, 9};
  std::vector<int64_t> sizes(ndim);
  for (auto& s : sizes)
    s = rng() % 4 == 0 ? 16 + static_cast<int64_t>(rng() % 40) : kSmall[rng() % 6];
  for (;;) {
    int64_t total = 1;
    for (int64_t s : sizes) total *= s;
    if (total <= budget) return sizes;
    auto largest = std::max_element(sizes.begin(), sizes.end());
    *largest = (*largest + 1) / 2;
  }
}

inline Layout randomLayout(std::mt19937_64& rng, DType dtype, int ndim, Shape shape) {
  std::vector<int64_t> storage = randomSizes(rng, ndim, 1 << 17);
  std::vector<Slice> slices(ndim);
  std::vector<int> perm(ndim);
  std::iota(perm.begin(), perm.end(), 0);
  const bool permute = shape == Shape::kPermuted || shape == Shape::kMixed;
  const bool slice = shape == Shape::kSliced || shape == Shape::kMixed;
  const bool flip = shape == Shape::kNegative || shape == Shape::kMixed;
  if (permute) std::shuffle(perm.begin(), perm.end(), rng);
  for (int d = 0; d < ndim; ++d) {
    Slice& s = slices[d];
    if (slice && storage[d] > 1 && rng() % 3 != 0) {
      s.start = static_cast<int64_t>(rng() % (storage[d] / 2 + 1));
      s.step = 1 + static_cast<int64_t>(rng() % 3);
      const int64_t fit = (storage[d] - s.start + s.step - 1) / s.step;
      s.length = 1 + static_cast<int64_t>(rng() % fit);
    }
    s.flip = flip && rng() % 2 == 0;
  }
  if (flip && ndim > 0) slices[rng() % ndim].flip = true;
  return build(std::string(shapeName(shape)) + " " + std::to_string(ndim) + "d", dtype, storage,
               slices, perm);
}

// NCHW (or NCDHW) logical order over NHWC (NDHWC) storage.
inline Layout channelsLast(DType dtype, std::vector<int64_t> nchw) {
  std::vector<int64_t> storage = {nchw[0]};
  storage.insert(storage.end(), nchw.begin() + 2, nchw.end());
  storage.push_back(nchw[1]);
  std::vector<int> perm = {0, static_cast<int>(nchw.size()) - 1};
  for (int d = 1; d + 1 < static_cast<int>(nchw.size()); ++d) perm.push_back(d);
  return build("channels_last", dtype, storage, {}, perm);
}

// The Ulysses latent case: bf16 [2, 16, 21, 90, 160] with the last two
// dimensions swapped.
inline Layout transposedLatent() {
  return build("latent^T", DType::kBFloat16, {2, 16, 21, 90, 160}, {}, {0, 1, 2, 4, 3});
}

// The collectives benchmark's latent with gaps: bf16 [2, 16, 21, 90, 160],
// a slice of rows 192 wide (every row starts 16-byte aligned).
inline Layout slicedLatent() {
  return build("latent[..., :160]", DType::kBFloat16, {2, 16, 21, 90, 192},
               {{}, {}, {}, {}, {0, 1, 160}});
}

// Views for the vector tiles, in `dtype`: a transpose next to the innermost
// dimension (tiles of whole dense rows) around the tile sizes, the tile
// dimension and the innermost apart (3 between them) in one and two tiles
// along the innermost, rows too long for whole-row tiles, channels-last, and
// a sliced transpose whose runs start off a vector.
inline std::vector<Layout> vectorTileLayouts(DType dtype) {
  std::vector<Layout> layouts;
  for (int64_t rows : {16, 40, 90, 129})
    for (int64_t cols : {16, 48, 64, 160, 200})
      layouts.push_back(build("3d^T", dtype, {2, cols, rows}, {}, {0, 2, 1}));
  layouts.push_back(build("rows apart", dtype, {40, 3, 48}, {}, {2, 1, 0}));
  layouts.push_back(build("rows apart, 2 tiles", dtype, {72, 3, 48}, {}, {2, 1, 0}));
  layouts.push_back(build("long rows", dtype, {3, 1504, 24}, {}, {0, 2, 1}));
  layouts.push_back(channelsLast(dtype, {2, 72, 9, 16}));
  layouts.push_back(build("sliced^T", dtype, {2, 64, 96}, {{}, {1, 1, 50}, {8, 1, 80}}, {0, 2, 1}));
  return layouts;
}

// The vector tiles' views with storage `shift` bytes off a vector.
inline std::vector<Layout> misalignedVectorTileLayouts(DType dtype, int64_t shift) {
  return {build("3d^T shifted", dtype, {2, 70, 48}, {}, {0, 2, 1}, shift),
          build("rows apart shifted", dtype, {72, 3, 48}, {}, {2, 1, 0}, shift)};
}

// Views for the plane tiles, in `dtype`: batches of contiguous planes of I
// rows of T elements with the two swapped, T a multiple of 16 (whole
// vectors of any dtype): I odd and even (a shared-memory pitch of I or
// I + 1 chunks), a multiple of 8, and so long that a plane takes several
// tiles, the last one shorter; batches of one, several, with gaps, reversed
// and over two dimensions that do not merge.
inline std::vector<Layout> planeTileLayouts(DType dtype) {
  std::vector<Layout> layouts;
  for (int64_t rows : {16, 17, 90, 128, 255})
    for (int64_t cols : {16, 48, 160, 336})
      layouts.push_back(build("plane^T", dtype, {2, rows, cols}, {}, {0, 2, 1}));
  layouts.push_back(build("one plane^T", dtype, {91, 64}, {}, {1, 0}));
  layouts.push_back(build("planes with gaps^T", dtype, {5, 90, 32}, {{0, 2}}, {0, 2, 1}));
  layouts.push_back(build("planes reversed^T", dtype, {3, 33, 48}, {{0, 1, -1, true}}, {0, 2, 1}));
  layouts.push_back(build("4d planes^T", dtype, {3, 2, 21, 64}, {{0, 1, 2}}, {1, 0, 3, 2}));
  return layouts;
}

inline const DType kDtypes[] = {DType::kUInt8, DType::kBFloat16, DType::kFloat32, DType::kFloat64};

}  // namespace pack_test
}  // namespace diffcoll
