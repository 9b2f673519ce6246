// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "ring.h"

#include <algorithm>
#include <string>

#include "../error.h"
#include "agreement.h"
#include "run.h"
#include "slabs.h"

namespace diffcoll {
namespace ops {

RingExchange::RingExchange(Comm& comm, const TensorView* half0, const TensorView* half1,
                           int count) {
  DIFFCOLL_REQUIRE(count >= 1, Status::kInvalidArgument, "ring: count ", count, " must be >= 1");
  DIFFCOLL_REQUIRE(half0 != nullptr && half1 != nullptr, Status::kInvalidArgument,
                   "ring: both halves of the double buffer are needed");
  for (int t = 0; t < count; ++t) {
    const std::string n = std::to_string(t);
    half0[t].validate(("ring buffer0[" + n + "]").c_str());
    half1[t].validate(("ring buffer1[" + n + "]").c_str());
    const TensorView& a = half0[t];
    const TensorView& b = half1[t];
    DIFFCOLL_REQUIRE(a.dtype == b.dtype && a.ndim == b.ndim &&
                         std::equal(a.shape, a.shape + a.ndim, b.shape),
                     Status::kInvalidArgument, "ring: buffer0[", t, "] ", a.describe(),
                     " and buffer1[", t, "] ", b.describe(), " differ in shape or dtype");
    for (const TensorView* v : {&a, &b}) {
      // Blocks travel straight from and into the buffers: no staging that
      // another operation could reuse while a step is in flight.
      DIFFCOLL_REQUIRE(v->is_contiguous(), Status::kInvalidArgument, "ring: buffer ",
                       v->describe(), " must be contiguous (allocate the double buffer dense)");
      DIFFCOLL_REQUIRE(v->device.type == half0[0].device.type &&
                           (!v->device.is_cuda() || v->device.id == half0[0].device.id),
                       Status::kInvalidArgument, "ring: every buffer is on one device; ",
                       v->describe(), " is not where ", half0[0].describe(), " is");
    }
    halves_[0].push_back(a);
    halves_[1].push_back(b);
  }
  for (size_t i = 0; i < 2 * halves_[0].size(); ++i)
    for (size_t j = i + 1; j < 2 * halves_[0].size(); ++j) {
      const TensorView& x = halves_[i % 2][i / 2];
      const TensorView& y = halves_[j % 2][j / 2];
      DIFFCOLL_REQUIRE(!detail::spans_overlap(x, y), Status::kInvalidArgument, "ring: buffer",
                       i % 2, "[", i / 2, "] and buffer", j % 2, "[", j / 2,
                       "] share memory");
    }
  comm.side_for(half0[0].device).backend().prepare_posted_exchanges();
}

void RingExchange::start(Comm& comm, void* stream) {
  DIFFCOLL_REQUIRE(!pending_, Status::kInvalidArgument,
                   "ring_start: the previous step was not waited for (call ring_wait first)");
  run(comm, "ring_start", [&] {
    verify_agreement(comm, signature("ring_start", halves_[0][0],
                                     static_cast<int64_t>(halves_[0].size())));
    Side& side = comm.side_for(halves_[0][0].device);
    const std::vector<TensorView>& send = halves_[current_];
    const std::vector<TensorView>& recv = halves_[1 - current_];
    const int p = comm.size();
    if (p == 1) {  // the previous rank is this one: its block is the current one
      for (size_t t = 0; t < send.size(); ++t)
        side.copy(recv[t].data, send[t].data, send[t].nbytes(), stream);
    } else {
      const int next = (comm.rank() + 1) % p, prev = (comm.rank() + p - 1) % p;
      std::vector<P2POp> transfers;
      for (size_t t = 0; t < send.size(); ++t) {
        transfers.push_back({false, prev, recv[t].data, recv[t].nbytes()});
        transfers.push_back({true, next, send[t].data, send[t].nbytes()});
      }
      side.backend().post_exchange(transfers, stream);
    }
    pending_ = true;
  });
}

void RingExchange::wait(Comm& comm, void* stream) {
  DIFFCOLL_REQUIRE(pending_, Status::kInvalidArgument,
                   "ring_wait: no step is in flight (call ring_start first)");
  run(comm, "ring_wait", [&] {
    pending_ = false;  // a failed completion leaves the communicator broken anyway
    if (comm.size() > 1) comm.side_for(halves_[0][0].device).backend().complete_exchange(stream);
    current_ = 1 - current_;
  });
}

}  // namespace ops
}  // namespace diffcoll
