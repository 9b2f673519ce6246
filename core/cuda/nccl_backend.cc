// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "nccl_backend.h"

#include <thread>

#include "cuda_error.h"

namespace diffcoll {
namespace {

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

ncclRedOp_t builtin_op(RedOp op) {
  switch (op) {
    case RedOp::kSum: return ncclSum;
    case RedOp::kProd: return ncclProd;
    case RedOp::kMin: return ncclMin;
    case RedOp::kMax: return ncclMax;
    case RedOp::kAvg: return ncclAvg;
    case RedOp::kPreMulSum: break;
  }
  fail(Status::kInternal, "no built-in NCCL op for ", red_op_name(op));
}

// Settles `result` of a call on `comm`: a call may return ncclSuccess while
// a non-blocking communicator still finishes it in the background (seen with
// the symmetric-window set-up), so the communicator's state is asked too, and
// polled until no longer in progress. A blocking communicator's state is
// final at once: one ncclCommGetAsyncError, and the clock is never read.
ncclResult_t await(ncclComm_t comm, ncclResult_t result, std::chrono::milliseconds timeout,
                   bool* timed_out) {
  *timed_out = false;
  if (result == ncclSuccess) ncclCommGetAsyncError(comm, &result);
  if (result != ncclInProgress) return result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (result == ncclInProgress) {
    if (std::chrono::steady_clock::now() > deadline) {
      *timed_out = true;
      return result;
    }
    std::this_thread::yield();
    ncclCommGetAsyncError(comm, &result);
  }
  return result;
}

ncclConfig_t comm_config(bool blocking, const std::string& name) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = blocking ? 1 : 0;
  config.commName = name.c_str();
  return config;
}

// ncclCommSplit of the non-blocking `parent`, bounded by `timeout`; nullptr
// for NCCL_SPLIT_NOCOLOR. NCCL runs a split as an asynchronous job in the
// *parent's* mode whatever the child's config says, so the split stays
// bounded, and the child gets the mode `blocking` asks for. Throws kTimeout
// or kNccl; leaves `parent` to the caller (a timed-out split is stopped by
// aborting it: the child's initialisation watches the parent's abort flag).
ncclComm_t split_comm(ncclComm_t parent, int color, int key, bool blocking,
                      const std::string& name, std::chrono::milliseconds timeout) {
  ncclConfig_t config = comm_config(blocking, name);
  ncclComm_t child = nullptr;
  bool timed_out = false;
  ncclResult_t r =
      await(parent, ncclCommSplit(parent, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child,
                                  &config),
            timeout, &timed_out);
  if (timed_out || r != ncclSuccess)
    fail(timed_out ? Status::kTimeout : Status::kNccl, "ncclCommSplit for ", name, " ",
         timed_out ? "did not settle" : "failed", ": ", ncclGetErrorString(r), " ",
         ncclGetLastError(parent));
  if (color < 0) return nullptr;
  // NCCL writes the child only when the split job, which polling the parent
  // drives to completion, is done.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (__atomic_load_n(&child, __ATOMIC_ACQUIRE) == nullptr) {
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(parent, &state);
    if (state != ncclSuccess && state != ncclInProgress)
      fail(Status::kNccl, "ncclCommSplit for ", name, ": ", ncclGetErrorString(state), " ",
           ncclGetLastError(parent));
    if (std::chrono::steady_clock::now() > deadline)
      fail(Status::kTimeout, "ncclCommSplit for ", name, " did not finish within ",
           timeout.count(), " ms");
    std::this_thread::yield();
  }
  r = await(child, ncclInProgress, timeout, &timed_out);
  if (timed_out || r != ncclSuccess) {
    ncclCommAbort(child);
    fail(timed_out ? Status::kTimeout : Status::kNccl, "ncclCommSplit for ", name, ": ",
         ncclGetErrorString(r));
  }
  return child;
}

}  // namespace

ncclDataType_t nccl_dtype(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return ncclFloat16;
    case DType::kBFloat16: return ncclBfloat16;
    case DType::kFloat32: return ncclFloat32;
    case DType::kFloat64: return ncclFloat64;
    case DType::kInt8: return ncclInt8;
    case DType::kUInt8: return ncclUint8;
    case DType::kInt32: return ncclInt32;
    case DType::kInt64: return ncclInt64;
  }
  fail(Status::kInternal, "no NCCL type for dtype ", static_cast<int>(dtype));
}

NcclBackend::NcclBackend(ncclComm_t setup, ncclComm_t data, bool owned, int device,
                         std::chrono::milliseconds timeout, std::string name)
    : setup_(setup), data_(data), owned_(owned), device_(device), timeout_(timeout),
      name_(std::move(name)) {
  if (owned_) watchdog_ = std::make_unique<Watchdog>(device_, timeout_, [this] { revoke_data(); });
}

std::unique_ptr<NcclBackend> NcclBackend::own(ncclComm_t setup, int device,
                                              std::chrono::milliseconds timeout,
                                              const std::string& name) {
  DeviceGuard guard(device);
  ncclComm_t data = nullptr;
  try {
    int rank = 0;
    ncclCommUserRank(setup, &rank);
    data = split_comm(setup, 0, rank, true, name + " (data)", timeout);
  } catch (const Error&) {
    ncclCommAbort(setup);
    throw;
  }
  try {
    return std::unique_ptr<NcclBackend>(
        new NcclBackend(setup, data, true, device, timeout, name));
  } catch (const Error&) {  // the watchdog's event or thread
    ncclCommAbort(data);
    ncclCommAbort(setup);
    throw;
  }
}

std::unique_ptr<NcclBackend> NcclBackend::borrow(ncclComm_t comm, int device,
                                                 std::chrono::milliseconds timeout,
                                                 const std::string& name) {
  return std::unique_ptr<NcclBackend>(new NcclBackend(comm, comm, false, device, timeout, name));
}

// The watchdog's action, on its thread, while the caller's thread may be
// inside a call on the data communicator (blocked on the host for a peer, or
// just enqueuing). ncclCommRevoke (NCCL 2.27.7 and later), not ncclCommAbort:
// both first set the communicator's abort flags, which NCCL's kernels and its
// host-side waits (bootstrap and proxy connection set-up) poll, so the blocked
// call returns an error and hung kernels exit; but ncclCommAbort then frees
// the communicator under that call, while a revoked one stays allocated (and
// refuses new work) until the caller's thread aborts it (the destructor).
// NCCL documents neither as safe against a concurrent call on the same
// communicator; this relies on what its source does: revoke sets the flags,
// waits for NCCL's own streams and proxy thread and clears the flags again,
// touching nothing a caller frees, and a blocked call polls the flag often
// enough to see it before revoke's clean-up clears it. The set-up
// communicator is left alone: on the caller's thread its calls are bounded
// by settle().
void NcclBackend::revoke_data() { ncclCommRevoke(data_, NCCL_REVOKE_DEFAULT); }

void NcclBackend::abort_communicators() {
  watchdog_.reset();  // no revoke may run on a communicator being freed
  aborted_ = true;
  ncclCommAbort(data_);
  if (setup_ != data_) ncclCommAbort(setup_);
}

void NcclBackend::release() {
  // Blocking: finalize returns once NCCL's streams and proxy are flushed,
  // which takes no peer now that the tracked device work is done.
  if (ncclCommFinalize(data_) == ncclSuccess) ncclCommDestroy(data_);
  else ncclCommAbort(data_);
  // Non-blocking: bounded by the timeout, an abort after it.
  bool timed_out = false;
  ncclResult_t r = await(setup_, ncclCommFinalize(setup_), timeout_, &timed_out);
  if (timed_out || r != ncclSuccess) ncclCommAbort(setup_);
  else ncclCommDestroy(setup_);
}

NcclBackend::~NcclBackend() {
  // A revoked communicator, or one whose device work is still pending after
  // the timeout, is aborted; a healthy one released. (drain() is false once
  // the watchdog has fired.)
  bool healthy = !aborted_;
  if (watchdog_) {
    healthy = healthy && watchdog_->drain();
    watchdog_.reset();  // no revoke runs after this
  }
  DeviceGuard guard(device_);
  if (barrier_word_) cudaFree(barrier_word_);
  if (post_ready_) cudaEventDestroy(post_ready_);
  if (post_done_) cudaEventDestroy(post_done_);
  if (post_stream_) cudaStreamDestroy(post_stream_);
  if (healthy)
    for (auto& entry : premul_ops_) ncclRedOpDestroy(entry.second, data_);
  if (!owned_ || aborted_) return;  // borrowed, or ncclCommAbort already released it
  if (healthy) {
    release();
  } else {
    ncclCommAbort(data_);
    ncclCommAbort(setup_);
  }
}

ncclComm_t NcclBackend::init(const ncclUniqueId& id, int rank, int size, int device,
                             std::chrono::milliseconds timeout, const std::string& name) {
  DeviceGuard guard(device);
  ncclConfig_t config = comm_config(false, name);
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  bool timed_out = false;
  if (comm) r = await(comm, r, timeout, &timed_out);
  if (timed_out || r != ncclSuccess) {
    std::string detail = comm ? ncclGetLastError(comm) : "";
    if (comm) ncclCommAbort(comm);
    fail(timed_out ? Status::kTimeout : Status::kNccl, "NCCL init of ", name, " (rank ", rank,
         " of ", size, ", device ", device, ") ", timed_out ? "timed out" : "failed", ": ",
         ncclGetErrorString(r), " ", detail);
  }
  return comm;
}

ncclComm_t NcclBackend::split(int color, int key, const std::string& name) {
  refuse_if_stopped("ncclCommSplit");
  DeviceGuard guard(device_);
  try {
    return split_comm(setup_, color, key, false, name, timeout_);
  } catch (const Error& e) {
    if (e.status() == Status::kTimeout) abort_communicators();
    throw;
  }
}

int NcclBackend::rank() const {
  int r = 0;
  ncclCommUserRank(data_, &r);
  return r;
}

int NcclBackend::size() const {
  int n = 0;
  ncclCommCount(data_, &n);
  return n;
}

void NcclBackend::settle(ncclResult_t result, const char* what) {
  settle_on(setup_, result, what);
}

void NcclBackend::settle_on(ncclComm_t comm, ncclResult_t result, const char* what) {
  bool timed_out = false;
  result = await(comm, result, timeout_, &timed_out);
  if (timed_out) {
    abort_communicators();
    fail(Status::kTimeout, what, " on ", name_, " did not settle within ", timeout_.count(),
         " ms; the NCCL communicator was aborted");
  }
  if (result != ncclSuccess) {
    const bool remote = result == ncclRemoteError || result == ncclSystemError;
    fail(remote ? Status::kRemote : Status::kNccl, what, " on ", name_, " failed: ",
         ncclGetErrorString(result), " ", ncclGetLastError(comm));
  }
}

void NcclBackend::refuse_if_stopped(const char* what) const {
  if (aborted_)
    fail(Status::kRemote, what, " on ", name_,
         ": the NCCL communicator was aborted earlier (a call timed out)");
  if (watchdog_ && watchdog_->fired())
    fail(Status::kRemote, what, " on ", name_, ": the NCCL communicator was revoked earlier (",
         watchdog_->reason(), ")");
}

ncclRedOp_t NcclBackend::red_op(DType dtype, Reduction red) {
  if (red.op != RedOp::kPreMulSum) return builtin_op(red.op);
  auto key = std::make_pair(dtype, red.scalar);
  auto it = premul_ops_.find(key);
  if (it != premul_ops_.end()) return it->second;
  // The scalar is read in the reduction's own type.
  union {
    uint16_t half;
    float f32;
    double f64;
    int8_t i8;
    uint8_t u8;
    int32_t i32;
    int64_t i64;
  } scalar;
  switch (dtype) {
    case DType::kFloat16: scalar.half = float_to_f16(static_cast<float>(red.scalar)); break;
    case DType::kBFloat16: scalar.half = float_to_bf16(static_cast<float>(red.scalar)); break;
    case DType::kFloat32: scalar.f32 = static_cast<float>(red.scalar); break;
    case DType::kFloat64: scalar.f64 = red.scalar; break;
    case DType::kInt8: scalar.i8 = static_cast<int8_t>(red.scalar); break;
    case DType::kUInt8: scalar.u8 = static_cast<uint8_t>(red.scalar); break;
    case DType::kInt32: scalar.i32 = static_cast<int32_t>(red.scalar); break;
    case DType::kInt64: scalar.i64 = static_cast<int64_t>(red.scalar); break;
  }
  DeviceGuard guard(device_);
  ncclRedOp_t op;
  settle_on(data_,
            ncclRedOpCreatePreMulSum(&op, &scalar, nccl_dtype(dtype), ncclScalarHostImmediate,
                                     data_),
            "ncclRedOpCreatePreMulSum");
  premul_ops_.emplace(key, op);
  return op;
}

template <typename Call>
void NcclBackend::enqueue(const char* what, void* stream, Call&& call) {
  refuse_if_stopped(what);
  DeviceGuard guard(device_);
  ncclResult_t result;
  {
    InsideCall inside(watchdog_ ? watchdog_->host_deadline() : nullptr);
    result = call();
  }
  if (watchdog_ && watchdog_->fired())  // while the call was inside NCCL
    fail(Status::kTimeout, what, " on ", name_, ": ", watchdog_->reason());
  settle_on(data_, result, what);
  if (watchdog_) watchdog_->track(as_stream(stream));
}

void NcclBackend::all_reduce(void* buffer, size_t count, DType dtype, Reduction red,
                             void* stream) {
  ncclRedOp_t op = red_op(dtype, red);
  enqueue("ncclAllReduce", stream, [&] {
    return ncclAllReduce(buffer, buffer, count, nccl_dtype(dtype), op, data_, as_stream(stream));
  });
}

void NcclBackend::all_reduce_batch(const AllReduceOp* ops, int count, void* stream) {
  if (count <= 0) return;
  DIFFCOLL_REQUIRE(count <= kMaxAllReduceBatch, Status::kInternal, "all_reduce_batch of ", count,
                   " operations; at most ", kMaxAllReduceBatch);
  // The operators first: creating one may fail, and must not inside the group.
  ncclRedOp_t red[kMaxAllReduceBatch];
  for (int i = 0; i < count; ++i) red[i] = red_op(ops[i].dtype, ops[i].red);
  enqueue("ncclGroupEnd(all_reduce)", stream, [&] {
    ncclGroupStart();
    for (int i = 0; i < count; ++i) {
      const ncclResult_t r = ncclAllReduce(ops[i].buffer, ops[i].buffer, ops[i].count,
                                           nccl_dtype(ops[i].dtype), red[i], data_,
                                           as_stream(stream));
      if (r != ncclSuccess && r != ncclInProgress) {
        ncclGroupEnd();
        return r;
      }
    }
    return ncclGroupEnd();
  });
}

void NcclBackend::all_reduce_into(const void* input, void* output, size_t count, DType dtype,
                                  Reduction red, void* stream) {
  ncclRedOp_t op = red_op(dtype, red);
  enqueue("ncclAllReduce", stream, [&] {
    return ncclAllReduce(input, output, count, nccl_dtype(dtype), op, data_, as_stream(stream));
  });
}

void NcclBackend::broadcast(void* buffer, size_t bytes, int root, void* stream) {
  enqueue("ncclBroadcast", stream, [&] {
    return ncclBroadcast(buffer, buffer, bytes, ncclUint8, root, data_, as_stream(stream));
  });
}

void NcclBackend::reduce(const void* input, void* output, size_t count, DType dtype,
                         Reduction red, int root, void* stream) {
  ncclRedOp_t op = red_op(dtype, red);
  enqueue("ncclReduce", stream, [&] {
    return ncclReduce(input, output, count, nccl_dtype(dtype), op, root, data_, as_stream(stream));
  });
}

void NcclBackend::all_gather(const void* input, void* output, size_t bytes, void* stream) {
  enqueue("ncclAllGather", stream, [&] {
    return ncclAllGather(input, output, bytes, ncclUint8, data_, as_stream(stream));
  });
}

void NcclBackend::reduce_scatter(const void* input, void* output, size_t count, DType dtype,
                                 Reduction red, void* stream) {
  ncclRedOp_t op = red_op(dtype, red);
  enqueue("ncclReduceScatter", stream, [&] {
    return ncclReduceScatter(input, output, count, nccl_dtype(dtype), op, data_, as_stream(stream));
  });
}

void NcclBackend::all_to_all(const void* input, void* output, size_t bytes, void* stream) {
  enqueue("ncclAlltoAll", stream, [&] {
    return ncclAlltoAll(input, output, bytes, ncclUint8, data_, as_stream(stream));
  });
}

void NcclBackend::gather(const void* input, void* output, size_t bytes, int root, void* stream) {
  enqueue("ncclGather", stream, [&] {
    return ncclGather(input, output, bytes, ncclUint8, root, data_, as_stream(stream));
  });
}

void NcclBackend::scatter(const void* input, void* output, size_t bytes, int root,
                          void* stream) {
  enqueue("ncclScatter", stream, [&] {
    return ncclScatter(input, output, bytes, ncclUint8, root, data_, as_stream(stream));
  });
}

void NcclBackend::exchange(const std::vector<P2POp>& ops, void* stream) {
  if (ops.empty()) return;
  enqueue("ncclGroupEnd(send/recv)", stream, [&] {
    ncclGroupStart();
    for (const P2POp& op : ops) {
      ncclResult_t r = op.is_send ? ncclSend(op.buffer, op.bytes, ncclUint8, op.peer, data_,
                                             as_stream(stream))
                                  : ncclRecv(op.buffer, op.bytes, ncclUint8, op.peer, data_,
                                             as_stream(stream));
      if (r != ncclSuccess && r != ncclInProgress) {
        ncclGroupEnd();
        return r;
      }
    }
    return ncclGroupEnd();
  });
}

void NcclBackend::prepare_posted_exchanges() {
  if (post_stream_) return;
  DeviceGuard guard(device_);
  DIFFCOLL_CUDA_CHECK(cudaStreamCreateWithFlags(&post_stream_, cudaStreamNonBlocking));
  DIFFCOLL_CUDA_CHECK(cudaEventCreateWithFlags(&post_ready_, cudaEventDisableTiming));
  DIFFCOLL_CUDA_CHECK(cudaEventCreateWithFlags(&post_done_, cudaEventDisableTiming));
}

void NcclBackend::post_exchange(const std::vector<P2POp>& ops, void* stream) {
  prepare_posted_exchanges();
  DeviceGuard guard(device_);
  DIFFCOLL_CUDA_CHECK(cudaEventRecord(post_ready_, as_stream(stream)));
  DIFFCOLL_CUDA_CHECK(cudaStreamWaitEvent(post_stream_, post_ready_, 0));
  exchange(ops, post_stream_);
  DIFFCOLL_CUDA_CHECK(cudaEventRecord(post_done_, post_stream_));
}

void NcclBackend::complete_exchange(void* stream) {
  DIFFCOLL_REQUIRE(post_stream_ != nullptr, Status::kInternal, "no exchange was posted on ",
                   name_);
  DeviceGuard guard(device_);
  DIFFCOLL_CUDA_CHECK(cudaStreamWaitEvent(as_stream(stream), post_done_, 0));
}

void NcclBackend::barrier(void* stream) {
  // Stream-ordered: an all-reduce of one element completes on no rank before
  // every rank has reached it. (NCCL skips a zero-element one entirely.)
  if (!barrier_word_) {
    DeviceGuard guard(device_);
    DIFFCOLL_CUDA_CHECK(cudaMalloc(&barrier_word_, sizeof(int32_t)));
  }
  enqueue("ncclAllReduce(barrier)", stream, [&] {
    return ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, data_,
                         as_stream(stream));
  });
}

}  // namespace diffcoll
