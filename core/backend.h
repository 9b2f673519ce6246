// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The dense-buffer interface every transport implements. Buffers here are
// plain spans of bytes or elements; layouts are the planner's business.
#pragma once

#include <cstddef>
#include <vector>

#include "dtype.h"
#include "reduction.h"

namespace diffcoll {

// One point-to-point transfer of a grouped exchange.
struct P2POp {
  bool is_send;
  int peer;
  void* buffer;
  size_t bytes;
};

// One in-place all-reduce of a batch (see Backend::all_reduce_batch).
struct AllReduceOp {
  void* buffer;
  size_t count;
  DType dtype;
  Reduction red;
};

// `stream` is a cudaStream_t for device backends and ignored by host ones.
// Ranks are the backend's own (the group's local ranks).
class Backend {
 public:
  virtual ~Backend() = default;

  virtual void all_reduce(void* buffer, size_t count, DType dtype, Reduction red,
                          void* stream) = 0;
  // `count` all-reduces, each as all_reduce. A transport that can fuse them
  // into one launch (NCCL: one group) overrides this, which saves the
  // latency of the small ones; by default they run one after the other.
  virtual void all_reduce_batch(const AllReduceOp* ops, int count, void* stream) {
    for (int i = 0; i < count; ++i)
      all_reduce(ops[i].buffer, ops[i].count, ops[i].dtype, ops[i].red, stream);
  }
  virtual void broadcast(void* buffer, size_t bytes, int root, void* stream) = 0;
  // `input` is left unchanged; `output` is written on the root only.
  virtual void reduce(const void* input, void* output, size_t count, DType dtype,
                      Reduction red, int root, void* stream) = 0;
  // output holds size() blocks of `bytes`, block r from rank r.
  virtual void all_gather(const void* input, void* output, size_t bytes, void* stream) = 0;
  // input holds size() blocks of `count` elements; output gets this rank's
  // block reduced. `input` is left unchanged.
  virtual void reduce_scatter(const void* input, void* output, size_t count, DType dtype,
                              Reduction red, void* stream) = 0;
  // input and output hold size() blocks of `bytes`: input block j goes to
  // rank j, output block i comes from rank i.
  virtual void all_to_all(const void* input, void* output, size_t bytes, void* stream) = 0;
  virtual void gather(const void* input, void* output, size_t bytes, int root, void* stream) = 0;
  virtual void scatter(const void* input, void* output, size_t bytes, int root, void* stream) = 0;
  // Posts every transfer, then waits for all of them.
  virtual void exchange(const std::vector<P2POp>& ops, void* stream) = 0;

  // A posted exchange (ring attention): post_exchange starts the transfers,
  // ordered after the work on `stream`, and returns without waiting;
  // complete_exchange finishes them (a host backend waits; a device backend
  // orders the work queued on its `stream` afterwards after the transfers,
  // which ran beside `stream`). At most one posted exchange per backend; the
  // buffers stay untouched until it completes. The defaults run the exchange
  // at once (correct, without overlap). prepare_posted_exchanges acquires
  // what posting needs (a device backend's stream), e.g. before a capture.
  virtual void prepare_posted_exchanges() {}
  virtual void post_exchange(const std::vector<P2POp>& ops, void* stream) { exchange(ops, stream); }
  virtual void complete_exchange(void* stream) { (void)stream; }
  virtual void barrier(void* stream) = 0;
};

}  // namespace diffcoll
