// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device backend: NCCL on CUDA memory, stream-ordered on the caller's
// stream, with a non-blocking communicator so that a stuck or failed peer
// becomes an error (and an abort) instead of a hang.
#pragma once

#include <nccl.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "../backend.h"
#include "watchdog.h"

namespace diffcoll {

class NcclBackend : public Backend {
 public:
  // Takes `comm` (owned: destroyed with the backend, and watched: aborted
  // when an operation hangs past the timeout; borrowed: never destroyed nor
  // aborted, its owner watches it).
  NcclBackend(ncclComm_t comm, bool owned, int device, std::chrono::milliseconds timeout,
              std::string name);
  ~NcclBackend() override;

  // A new communicator of `size` ranks from a unique id every rank shares.
  static ncclComm_t init(const ncclUniqueId& id, int rank, int size, int device,
                         std::chrono::milliseconds timeout, const std::string& name);
  // ncclCommSplit of this backend's communicator; nullptr for NCCL_SPLIT_NOCOLOR.
  ncclComm_t split(int color, int key, const std::string& name);

  ncclComm_t comm() const { return comm_; }
  int device() const { return device_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  int rank() const;
  int size() const;

  void all_reduce(void* buffer, size_t count, DType dtype, Reduction red, void* stream) override;
  // One NCCL group: a single launch for the whole batch (at most
  // kMaxAllReduceBatch operations).
  void all_reduce_batch(const AllReduceOp* ops, int count, void* stream) override;
  static constexpr int kMaxAllReduceBatch = 8;
  // Out of place: `input` is left unchanged (may equal `output`).
  void all_reduce_into(const void* input, void* output, size_t count, DType dtype,
                       Reduction red, void* stream);
  void broadcast(void* buffer, size_t bytes, int root, void* stream) override;
  void reduce(const void* input, void* output, size_t count, DType dtype, Reduction red,
              int root, void* stream) override;
  void all_gather(const void* input, void* output, size_t bytes, void* stream) override;
  void reduce_scatter(const void* input, void* output, size_t count, DType dtype,
                      Reduction red, void* stream) override;
  void all_to_all(const void* input, void* output, size_t bytes, void* stream) override;
  void gather(const void* input, void* output, size_t bytes, int root, void* stream) override;
  void scatter(const void* input, void* output, size_t bytes, int root, void* stream) override;
  void exchange(const std::vector<P2POp>& ops, void* stream) override;
  // Posted exchanges run on the backend's own stream, forked from the
  // caller's stream by an event and joined back by another: stream-ordered,
  // capturable (post and complete inside one capture), never host-blocking.
  void prepare_posted_exchanges() override;
  void post_exchange(const std::vector<P2POp>& ops, void* stream) override;
  void complete_exchange(void* stream) override;
  void barrier(void* stream) override;

  // Waits (bounded by the timeout) for a non-blocking call to settle and
  // turns failures into errors; aborts the communicator on timeout.
  void settle(ncclResult_t result, const char* what);

 private:
  // Runs one NCCL call on `stream`: refuses an aborted communicator, settles
  // the call and hands the stream to the watchdog. (Defined in the .cc, its
  // only user; a template so that the hot path allocates nothing.)
  template <typename Call>
  void enqueue(const char* what, void* stream, Call&& call);
  ncclRedOp_t red_op(DType dtype, Reduction red);
  // ncclCommAbort, once, whichever of a timed-out call or the watchdog asks.
  void abort_once();

  ncclComm_t comm_;
  bool owned_;
  int device_;
  std::chrono::milliseconds timeout_;
  std::string name_;
  bool aborted_ = false;
  void* barrier_word_ = nullptr;  // device scratch of barrier()
  // Posted exchanges: their stream, the fork event (caller's stream ready)
  // and the join event (transfers done).
  cudaStream_t post_stream_ = nullptr;
  cudaEvent_t post_ready_ = nullptr;
  cudaEvent_t post_done_ = nullptr;
  std::once_flag abort_flag_;
  std::unique_ptr<Watchdog> watchdog_;  // owned communicators only
  // Pre-multiplied-sum operators, one per (dtype, scalar), kept for the
  // communicator's life: a captured graph may still refer to them.
  std::map<std::pair<DType, double>, ncclRedOp_t> premul_ops_;
};

ncclDataType_t nccl_dtype(DType dtype);

}  // namespace diffcoll
