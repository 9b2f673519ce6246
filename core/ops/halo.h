// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Halo exchange for spatially parallel convolutions (parallel VAE decoding):
// ranks hold consecutive slabs of one activation along one axis (a 1-D chain)
// or two axes (a 2-D grid, row-major over the communicator's ranks) inside a
// padded buffer; an exchange fills the halo around each rank's interior from
// its neighbours (and, at the ends of the chain, by a boundary rule) so that
// every rank's padded buffer equals the matching window of the whole tensor
// padded once.
#pragma once

#include <cstdint>
#include <string>

#include "../comm.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

// Values equal diffcoll_halo_boundary_t.
enum class HaloBoundary : int32_t {
  kZeros = 0,
  kReplicate = 1,
  kReflect = 2,
  kCircular = 3,
  kUntouched = 4,
};

bool halo_boundary_valid(int32_t value);
const char* halo_boundary_name(HaloBoundary b);

// Grid axis 0 is "rows", grid axis 1 "cols" (1 for a 1-D chain).
struct HaloConfig {
  int grid[2] = {0, 1};        // ranks along each grid axis; grid[0] == 0: comm size / grid[1]
  int axis[2] = {-2, -1};      // tensor dimension of each grid axis; < 0 counts from the end
  int64_t before[2] = {1, 0};  // halo rows before the interior along each axis
  int64_t after[2] = {1, 0};   // halo rows after it
  HaloBoundary boundary_before[2] = {HaloBoundary::kZeros, HaloBoundary::kZeros};
  HaloBoundary boundary_after[2] = {HaloBoundary::kZeros, HaloBoundary::kZeros};
  bool corners = true;  // fill the corner blocks (2-D)
};

class HaloPlan {
 public:
  // Validates `config` for `comm` (local, not collective).
  HaloPlan(const Comm& comm, const HaloConfig& config);

  // Fills the halo of `padded` (see diffcoll_halo_exchange). Collective over
  // the plan's communicator, which `comm` must be.
  void exchange(Comm& comm, const TensorView& padded, void* stream) const;
  // Copies `input` into the interior of `padded`, then exchanges.
  void exchange_into(Comm& comm, const TensorView& input, const TensorView& padded,
                     void* stream) const;

  const HaloConfig& config() const { return config_; }
  // This rank's coordinate along grid axis g.
  int coord(int g) const { return coord_[g]; }

 private:
  void run(Comm& comm, const TensorView* input, const TensorView& padded, void* stream) const;

  HaloConfig config_;
  int size_;
  int rank_;
  int coord_[2];
};

}  // namespace ops
}  // namespace diffcoll
