// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Ring exchange for ring attention: a double buffer of (k, v, ...) blocks;
// each step sends the current block to the next rank of the ring and receives
// the previous rank's block into the other half, posted without waiting so
// that attention on the current block overlaps the transfer. After P - 1
// steps on a ring of P ranks, every rank has held every rank's block once
// (its own first, then rank - 1, rank - 2, ... modulo P).
#pragma once

#include <vector>

#include "../comm.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

class RingExchange {
 public:
  // Validates the buffers (local, not collective): `count` tensors per half,
  // half 0 and half 1 equal in shape and dtype tensor by tensor, contiguous,
  // on one device, no two sharing memory. Acquires what posting needs (a
  // device backend's stream), so create rings outside a graph capture.
  RingExchange(Comm& comm, const TensorView* half0, const TensorView* half1, int count);

  // Posts the send of the current half to rank + 1 and the receive of the
  // other half from rank - 1. Collective over the ring's communicator.
  void start(Comm& comm, void* stream);
  // Completes the posted step; the other half becomes the current one.
  void wait(Comm& comm, void* stream);

  int current() const { return current_; }
  bool pending() const { return pending_; }

 private:
  std::vector<TensorView> halves_[2];
  int current_ = 0;
  bool pending_ = false;
};

}  // namespace ops
}  // namespace diffcoll
