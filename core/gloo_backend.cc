// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "gloo_backend.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/context.h>
#include <gloo/gather.h>
#include <gloo/reduce.h>
#include <gloo/scatter.h>
#include <gloo/transport/unbound_buffer.h>

#include <cstring>

#include "error.h"

namespace diffcoll {
namespace {

// Top byte of the slots diffcoll's own transfers use; Gloo's collectives use
// small prefixes, so these never meet theirs.
constexpr uint64_t kP2PSlotPrefix = 0xD0ull << 56;
constexpr uint64_t kReduceScatterSlotPrefix = 0xD1ull << 56;

// Gloo sizes chunks by the element type it is given, so hand it an unsigned
// type of the element's width and do the arithmetic in the reduce function.
template <typename Fn>
void with_carrier(size_t element_size, Fn&& fn) {
  switch (element_size) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    case 8: fn(uint64_t{}); break;
    default: fail(Status::kInternal, "no carrier type of ", element_size, " bytes");
  }
}

gloo::AllreduceOptions::Func reduce_function(DType dtype, RedOp op) {
  return [dtype, op](void* out, const void* a, const void* b, size_t n) {
    reduce_host(dtype, op, out, a, b, n);
  };
}

void wait(gloo::transport::UnboundBuffer& buffer, bool is_send, int peer,
          std::chrono::milliseconds timeout) {
  bool done = is_send ? buffer.waitSend(timeout) : buffer.waitRecv(timeout);
  DIFFCOLL_REQUIRE(done, Status::kRemote, (is_send ? "send to" : "receive from"),
                   " rank ", peer, " was aborted");
}

}  // namespace

GlooBackend::GlooBackend(std::shared_ptr<gloo::Context> context,
                         std::chrono::milliseconds timeout)
    : context_(std::move(context)), timeout_(timeout) {}

int GlooBackend::rank() const { return context_->rank; }
int GlooBackend::size() const { return context_->size; }

void GlooBackend::all_reduce(void* buffer, size_t count, DType dtype, Reduction red, void*) {
  prescale_host(dtype, red, size(), buffer, count);
  if (size() > 1 && count > 0) {
    gloo::AllreduceOptions opts(context_);
    with_carrier(dtype_size(dtype), [&](auto carrier) {
      opts.setOutput(static_cast<decltype(carrier)*>(buffer), count);
    });
    opts.setReduceFunction(reduce_function(dtype, red.op));
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::allreduce(opts);
  }
  finalize_host(dtype, red, size(), buffer, count);
}

void GlooBackend::broadcast(void* buffer, size_t bytes, int root, void*) {
  if (size() == 1 || bytes == 0) return;
  gloo::BroadcastOptions opts(context_);
  opts.setOutput(static_cast<uint8_t*>(buffer), bytes);
  opts.setRoot(root);
  opts.setTag(next_tag());
  opts.setTimeout(timeout_);
  gloo::broadcast(opts);
}

void GlooBackend::reduce(const void* input, void* output, size_t count, DType dtype,
                         Reduction red, int root, void*) {
  if (count == 0) return;
  const size_t bytes = count * dtype_size(dtype);
  // Gloo accumulates into the output on every rank and the prescale writes
  // its buffer: work on a copy so that no caller memory but root's changes.
  scratch_.resize(bytes);
  std::memcpy(scratch_.data(), input, bytes);
  prescale_host(dtype, red, size(), scratch_.data(), count);
  if (size() > 1) {
    gloo::ReduceOptions opts(context_);
    with_carrier(dtype_size(dtype), [&](auto carrier) {
      using T = decltype(carrier);
      opts.setOutput(reinterpret_cast<T*>(scratch_.data()), count);
    });
    opts.setReduceFunction(reduce_function(dtype, red.op));
    opts.setRoot(root);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::reduce(opts);
  }
  if (rank() == root) {
    finalize_host(dtype, red, size(), scratch_.data(), count);
    std::memcpy(output, scratch_.data(), bytes);
  }
}

void GlooBackend::all_gather(const void* input, void* output, size_t bytes, void*) {
  if (bytes == 0) return;
  char* mine = static_cast<char*>(output) + static_cast<size_t>(rank()) * bytes;
  if (size() == 1) {
    if (mine != input) std::memmove(mine, input, bytes);
    return;
  }
  gloo::AllgatherOptions opts(context_);
  opts.setInput(const_cast<uint8_t*>(static_cast<const uint8_t*>(input)), bytes);
  opts.setOutput(static_cast<uint8_t*>(output), bytes * size());
  opts.setTag(next_tag());
  opts.setTimeout(timeout_);
  gloo::allgather(opts);
}

// Ring reduce-scatter: P-1 steps, each sending one block to the right
// neighbour and folding the block received from the left into the work copy;
// after the last step block `rank` holds the full reduction.
void GlooBackend::reduce_scatter(const void* input, void* output, size_t count, DType dtype,
                                 Reduction red, void*) {
  if (count == 0) return;
  const int p = size(), r = rank();
  const size_t block = count * dtype_size(dtype);
  std::vector<char> work(block * p), incoming(block);
  std::memcpy(work.data(), input, work.size());
  prescale_host(dtype, red, p, work.data(), count * p);
  const uint64_t tag = next_tag();
  for (int step = 0; step < p - 1; ++step) {
    const int send_block = (r - step - 1 + 2 * p) % p;
    const int recv_block = (r - step - 2 + 2 * p) % p;
    const uint64_t slot = kReduceScatterSlotPrefix | (tag << 16) | static_cast<uint64_t>(step);
    auto out = context_->createUnboundBuffer(work.data() + send_block * block, block);
    auto in = context_->createUnboundBuffer(incoming.data(), block);
    in->recv((r - 1 + p) % p, slot);
    out->send((r + 1) % p, slot);
    wait(*in, false, (r - 1 + p) % p, timeout_);
    wait(*out, true, (r + 1) % p, timeout_);
    char* target = work.data() + recv_block * block;
    reduce_host(dtype, red.op, target, target, incoming.data(), count);
  }
  char* mine = work.data() + static_cast<size_t>(r) * block;
  finalize_host(dtype, red, p, mine, count);
  std::memcpy(output, mine, block);
}

void GlooBackend::all_to_all(const void* input, void* output, size_t bytes, void*) {
  if (bytes == 0) return;
  if (size() == 1) {
    if (output != input) std::memmove(output, input, bytes);
    return;
  }
  gloo::AlltoallOptions opts(context_);
  opts.setInput(const_cast<uint8_t*>(static_cast<const uint8_t*>(input)), bytes * size());
  opts.setOutput(static_cast<uint8_t*>(output), bytes * size());
  opts.setTag(next_tag());
  opts.setTimeout(timeout_);
  gloo::alltoall(opts);
}

void GlooBackend::gather(const void* input, void* output, size_t bytes, int root, void*) {
  if (bytes == 0) return;
  if (size() == 1) {
    if (output != input) std::memmove(output, input, bytes);
    return;
  }
  gloo::GatherOptions opts(context_);
  opts.setInput(const_cast<uint8_t*>(static_cast<const uint8_t*>(input)), bytes);
  if (rank() == root) opts.setOutput(static_cast<uint8_t*>(output), bytes * size());
  opts.setRoot(root);
  opts.setTag(next_tag());
  opts.setTimeout(timeout_);
  gloo::gather(opts);
}

void GlooBackend::scatter(const void* input, void* output, size_t bytes, int root, void*) {
  if (bytes == 0) return;
  if (size() == 1) {
    if (output != input) std::memmove(output, input, bytes);
    return;
  }
  gloo::ScatterOptions opts(context_);
  if (rank() == root) {
    std::vector<uint8_t*> blocks(size());
    for (int i = 0; i < size(); ++i)
      blocks[i] = const_cast<uint8_t*>(static_cast<const uint8_t*>(input)) + i * bytes;
    opts.setInputs(blocks, bytes);
  }
  opts.setOutput(static_cast<uint8_t*>(output), bytes);
  opts.setRoot(root);
  opts.setTag(next_tag());
  opts.setTimeout(timeout_);
  gloo::scatter(opts);
}

uint64_t GlooBackend::p2p_slot(std::map<int, uint64_t>& counters, int peer) {
  return kP2PSlotPrefix | (counters[peer]++ & ((1ull << 56) - 1));
}

GlooBackend::~GlooBackend() = default;

std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> GlooBackend::post(
    const std::vector<P2POp>& ops) {
  std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> buffers;
  buffers.reserve(ops.size());
  for (const P2POp& op : ops) {
    // A message to oneself is a copy, matched by the receive of the same group.
    buffers.push_back(context_->createUnboundBuffer(op.buffer, op.bytes));
    if (op.is_send) buffers.back()->send(op.peer, p2p_slot(sends_, op.peer));
    else buffers.back()->recv(op.peer, p2p_slot(recvs_, op.peer));
  }
  return buffers;
}

void GlooBackend::await(const std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>>& buffers,
                        const std::vector<P2POp>& ops) {
  for (size_t i = 0; i < ops.size(); ++i) wait(*buffers[i], ops[i].is_send, ops[i].peer, timeout_);
}

void GlooBackend::exchange(const std::vector<P2POp>& ops, void*) { await(post(ops), ops); }

void GlooBackend::post_exchange(const std::vector<P2POp>& ops, void*) {
  DIFFCOLL_REQUIRE(posted_.empty(), Status::kInternal, "a posted exchange is still pending");
  posted_ = post(ops);
  posted_ops_ = ops;
}

void GlooBackend::complete_exchange(void*) {
  // Taken out first: after a failure the next post starts clean.
  auto buffers = std::move(posted_);
  auto ops = std::move(posted_ops_);
  posted_.clear();
  posted_ops_.clear();
  await(buffers, ops);
}

void GlooBackend::barrier(void*) {
  if (size() == 1) return;
  gloo::BarrierOptions opts(context_);
  opts.setTag(next_tag());
  opts.setTimeout(timeout_);
  gloo::barrier(opts);
}

}  // namespace diffcoll
