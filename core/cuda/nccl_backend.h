// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device backend: NCCL on CUDA memory, stream-ordered on the caller's
// stream. An owned backend holds two communicators of the same ranks:
// - the set-up communicator, non-blocking: creation, splits and the other
//   management calls (symmetric windows, device communicators) poll it, so
//   that a peer that never arrives becomes a timeout instead of a hang;
// - the data communicator, blocking, split from the set-up one: collectives
//   return as soon as NCCL has enqueued them, as raw NCCL's do (a
//   non-blocking communicator runs each one through an asynchronous job that
//   costs tens of microseconds of host time). A call that blocks on the host
//   for a missing peer is bounded by the watchdog's host deadline instead.
#pragma once

#include <nccl.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "../backend.h"
#include "watchdog.h"

namespace diffcoll {

class NcclBackend : public Backend {
 public:
  // Owns `setup` (from init or split): splits the blocking data
  // communicator from it (bounded by the timeout; on failure `setup` is
  // aborted and the error thrown), destroys both with the backend and has
  // the watchdog revoke the data one when an operation hangs.
  static std::unique_ptr<NcclBackend> own(ncclComm_t setup, int device,
                                          std::chrono::milliseconds timeout,
                                          const std::string& name);
  // Borrows `comm` (the caller's) for both roles: never destroyed, not
  // watched (its owner watches it).
  static std::unique_ptr<NcclBackend> borrow(ncclComm_t comm, int device,
                                             std::chrono::milliseconds timeout,
                                             const std::string& name);
  ~NcclBackend() override;

  // A new non-blocking set-up communicator of `size` ranks from a unique id
  // every rank shares.
  static ncclComm_t init(const ncclUniqueId& id, int rank, int size, int device,
                         std::chrono::milliseconds timeout, const std::string& name);
  // A non-blocking set-up communicator split from this backend's (for own());
  // nullptr for NCCL_SPLIT_NOCOLOR.
  ncclComm_t split(int color, int key, const std::string& name);

  // The communicator of management calls (settle() bounds them).
  ncclComm_t setup_comm() const { return setup_; }
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

  // Waits (bounded by the timeout) for a management call on the set-up
  // communicator to settle and turns failures into errors; aborts the
  // communicators on timeout.
  void settle(ncclResult_t result, const char* what);

 private:
  NcclBackend(ncclComm_t setup, ncclComm_t data, bool owned, int device,
              std::chrono::milliseconds timeout, std::string name);
  // settle() on `comm`.
  void settle_on(ncclComm_t comm, ncclResult_t result, const char* what);
  // Runs one NCCL call on the data communicator on `stream`: refuses a
  // revoked or aborted communicator, brackets the call with the host
  // deadline, checks its result and hands the stream to the watchdog. (Defined
  // in the .cc, its only user; a template so that the hot path allocates
  // nothing.)
  template <typename Call>
  void enqueue(const char* what, void* stream, Call&& call);
  void refuse_if_stopped(const char* what) const;
  ncclRedOp_t red_op(DType dtype, Reduction red);
  // ncclCommAbort of both communicators, on the caller's thread, once.
  void abort_communicators();
  // The watchdog's action (on its thread): see the .cc.
  void revoke_data();
  // Finalizes and destroys the communicators of a healthy owned backend.
  void release();

  ncclComm_t setup_;  // non-blocking (owned), or the borrowed communicator
  ncclComm_t data_;   // blocking (owned), or the borrowed communicator
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
  std::unique_ptr<Watchdog> watchdog_;  // owned communicators only
  // Pre-multiplied-sum operators, one per (dtype, scalar), kept for the
  // communicator's life: a captured graph may still refer to them.
  std::map<std::pair<DType, double>, ncclRedOp_t> premul_ops_;
};

ncclDataType_t nccl_dtype(DType dtype);

}  // namespace diffcoll
