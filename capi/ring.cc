// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Ring exchange objects for ring attention.
#include "../core/ops/ring.h"

#include <memory>
#include <string>
#include <vector>

#include "handles.h"
#include "tensor.h"

using diffcoll::Comm;
using diffcoll::Status;
using diffcoll::TensorView;
using diffcoll::ops::RingExchange;
using namespace diffcoll::capi;

// The opaque diffcoll_ring_t: the core ring and the communicator handle it
// runs on (checked to be live on every call).
struct diffcoll_ring {
  diffcoll_comm_t* comm;
  std::unique_ptr<RingExchange> ring;
};

namespace {

// Rings have their own registry, so that a ring is never taken for another
// kind of handle.
HandleRegistry& rings() {
  static HandleRegistry* registry = new HandleRegistry;  // never destroyed: used at exit
  return *registry;
}

diffcoll_ring& live_ring(const diffcoll_ring_t* handle) {
  DIFFCOLL_REQUIRE(handle != nullptr, Status::kInvalidHandle, "ring is NULL");
  DIFFCOLL_REQUIRE(rings().contains(handle), Status::kInvalidHandle,
                   "ring is not a live diffcoll ring (already destroyed?)");
  return *const_cast<diffcoll_ring_t*>(handle);
}

Comm& ring_comm(const diffcoll_ring& ring) {
  DIFFCOLL_REQUIRE(handles().contains(ring.comm), Status::kInvalidHandle,
                   "the ring's communicator was destroyed; destroy the ring first");
  return live_comm(ring.comm, "the ring's communicator");
}

std::vector<TensorView> views(const diffcoll_tensor_t* tensors, int32_t count, const char* what) {
  DIFFCOLL_REQUIRE(tensors != nullptr, Status::kInvalidArgument, what, " is NULL");
  std::vector<TensorView> out;
  for (int32_t i = 0; i < count; ++i)
    out.push_back(
        to_view(&tensors[i], (std::string(what) + "[" + std::to_string(i) + "]").c_str()));
  return out;
}

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_ring_create(diffcoll_comm_t* comm, const diffcoll_tensor_t* buffer0,
                                       const diffcoll_tensor_t* buffer1, int32_t count,
                                       diffcoll_ring_t** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    require_out(out, "out");
    Comm& c = live_comm(comm, "comm");
    DIFFCOLL_REQUIRE(count >= 1, Status::kInvalidArgument, "diffcoll_ring_create: count ", count,
                     " must be >= 1");
    const std::vector<TensorView> half0 = views(buffer0, count, "buffer0");
    const std::vector<TensorView> half1 = views(buffer1, count, "buffer1");
    std::unique_ptr<diffcoll_ring> ring(new diffcoll_ring{comm, nullptr});
    ring->ring.reset(new RingExchange(c, half0.data(), half1.data(), count));
    rings().add(ring.get());
    *out = ring.release();
  });
}

diffcoll_status_t diffcoll_ring_destroy(diffcoll_ring_t* ring) {
  return guarded([&] {
    if (ring == nullptr) return;
    diffcoll_ring* r = &live_ring(ring);
    rings().remove(ring);
    std::unique_ptr<diffcoll_ring> owned(r);
    if (r->ring->pending() && handles().contains(r->comm)) {
      try {
        r->ring->wait(live_comm(r->comm, "the ring's communicator"), nullptr);
      } catch (const diffcoll::Error&) {
        // The communicator is broken; the ring goes away all the same.
      }
    }
  });
}

diffcoll_status_t diffcoll_ring_start(diffcoll_ring_t* ring, void* stream) {
  return guarded([&] {
    diffcoll_ring& r = live_ring(ring);
    r.ring->start(ring_comm(r), stream);
  });
}

diffcoll_status_t diffcoll_ring_wait(diffcoll_ring_t* ring, void* stream, int32_t* current) {
  return guarded([&] {
    diffcoll_ring& r = live_ring(ring);
    r.ring->wait(ring_comm(r), stream);
    if (current) *current = r.ring->current();
  });
}

}  // extern "C"
