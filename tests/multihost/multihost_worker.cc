// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// One rank of the many-host test (run_multihost.sh runs one per network
// namespace). The rank, world size, store and listening address come from the
// environment (RANK, WORLD_SIZE, DIFFCOLL_STORE, DIFFCOLL_HOST), exactly as on
// separate machines.
//
//   multihost_worker all         every collective on host tensors, checked
//   multihost_worker cut         all-reduces until one fails (the script cuts a
//                                link); the failure must come within the timeout
//   multihost_worker store-gone  a split after the store was killed must fail
//                                within the timeout
// DC_SIGNAL_DIR is a directory shared with the script: the worker creates
// files there to say where it is, and waits for the script's files.
// Exit status 0: as expected; 1: anything else (printed).
#include <diffcoll/diffcoll.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "example_support.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kTimeoutMs = 3000;
constexpr int64_t kN = 4096;  // elements per block

int32_t rank_ = 0, size_ = 1;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rank %d: %s\n", rank_, what.c_str());
  std::exit(1);
}

void check(diffcoll_status_t s, const char* call) {
  if (s != DIFFCOLL_SUCCESS)
    die(std::string(call) + ": " + diffcoll_status_string(s) + ": " + diffcoll_last_error());
}
#define MUST(call) check((call), #call)

diffcoll_tensor_t f32(std::vector<float>& v) {
  return host_tensor_1d(v.data(), DIFFCOLL_FLOAT32, static_cast<int64_t>(v.size()));
}

// The value rank `r` holds at index `i` of block `b`: small integers, so
// every sum is exact in f32.
float value(int r, int b, int64_t i) { return static_cast<float>(r * 100 + b * 7 + i % 13); }

std::vector<float> block_of(int r, int b) {
  std::vector<float> v(kN);
  for (int64_t i = 0; i < kN; ++i) v[i] = value(r, b, i);
  return v;
}

void expect_equal(const std::vector<float>& got, const std::vector<float>& want, const char* op) {
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i])
      die(std::string(op) + ": element " + std::to_string(i) + " is " + std::to_string(got[i]) +
          ", expected " + std::to_string(want[i]));
}

std::string signal_path(const std::string& name) {
  const char* dir = std::getenv("DC_SIGNAL_DIR");
  if (!dir) die("DC_SIGNAL_DIR is not set");
  return std::string(dir) + "/" + name;
}

void signal(const std::string& name) {
  if (FILE* f = std::fopen(signal_path(name).c_str(), "w")) std::fclose(f);
}

void wait_for(const std::string& name) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    if (FILE* f = std::fopen(signal_path(name).c_str(), "r")) {
      std::fclose(f);
      return;
    }
    if (Clock::now() > deadline) die("the script never signalled " + name);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int run_all(diffcoll_comm_t* comm) {
  const int P = size_, r = rank_;
  int done = 0;
  {  // all_reduce
    std::vector<float> x = block_of(r, 0), want(kN, 0);
    for (int q = 0; q < P; ++q)
      for (int64_t i = 0; i < kN; ++i) want[i] += value(q, 0, i);
    diffcoll_tensor_t t = f32(x);
    MUST(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 1.0, nullptr));
    expect_equal(x, want, "all_reduce");
    ++done;
  }
  {  // broadcast from the last rank
    std::vector<float> x = block_of(r, 1);
    diffcoll_tensor_t t = f32(x);
    MUST(diffcoll_broadcast(comm, &t, P - 1, nullptr));
    expect_equal(x, block_of(P - 1, 1), "broadcast");
    ++done;
  }
  {  // reduce (max) to rank 0
    std::vector<float> x = block_of(r, 2);
    diffcoll_tensor_t t = f32(x);
    MUST(diffcoll_reduce(comm, &t, DIFFCOLL_MAX, 1.0, 0, nullptr));
    if (r == 0) expect_equal(x, block_of(P - 1, 2), "reduce");
    ++done;
  }
  // Gather-like ops on P blocks of kN elements along axis 0.
  std::vector<float> mine = block_of(r, 3), all(P * kN), want(P * kN), block(kN);
  for (int q = 0; q < P; ++q) {
    std::vector<float> b = block_of(q, 3);
    std::copy(b.begin(), b.end(), want.begin() + q * kN);
  }
  diffcoll_tensor_t tm = f32(mine), ta = f32(all), tb = f32(block);
  MUST(diffcoll_all_gather(comm, &tm, &ta, 0, nullptr));
  expect_equal(all, want, "all_gather");
  ++done;
  std::fill(all.begin(), all.end(), -1.0f);
  MUST(diffcoll_gather(comm, &tm, &ta, 0, 0, nullptr));
  if (r == 0) expect_equal(all, want, "gather");
  ++done;
  {  // scatter from rank 0: block q of rank 0's buffer goes to rank q
    std::vector<float> src(P * kN);
    for (int q = 0; q < P; ++q)
      for (int64_t i = 0; i < kN; ++i) src[q * kN + i] = value(0, 10 + q, i);
    diffcoll_tensor_t ts = f32(src);
    MUST(diffcoll_scatter(comm, &ts, &tb, 0, 0, nullptr));
    expect_equal(block, block_of(0, 10 + r), "scatter");
    ++done;
  }
  {  // reduce_scatter: rank q gets the sum over ranks of their block q
    std::vector<float> src(P * kN), sum(kN, 0);
    for (int q = 0; q < P; ++q)
      for (int64_t i = 0; i < kN; ++i) src[q * kN + i] = value(r, 20 + q, i);
    for (int q = 0; q < P; ++q)
      for (int64_t i = 0; i < kN; ++i) sum[i] += value(q, 20 + r, i);
    diffcoll_tensor_t ts = f32(src);
    MUST(diffcoll_reduce_scatter(comm, &ts, &tb, 0, DIFFCOLL_SUM, 1.0, nullptr));
    expect_equal(block, sum, "reduce_scatter");
    ++done;
  }
  {  // all_to_all: block q of rank r goes to rank q as its block r
    std::vector<float> src(P * kN), got(P * kN), expect(P * kN);
    for (int q = 0; q < P; ++q)
      for (int64_t i = 0; i < kN; ++i) {
        src[q * kN + i] = value(r, 30 + q, i);
        expect[q * kN + i] = value(q, 30 + r, i);
      }
    diffcoll_tensor_t ts = f32(src), tg = f32(got);
    MUST(diffcoll_all_to_all(comm, &ts, &tg, 0, 0, nullptr));
    expect_equal(got, expect, "all_to_all");
    ++done;
  }
  {  // a ring of send/recv in one group
    std::vector<float> out = block_of(r, 40), in(kN);
    diffcoll_tensor_t to = f32(out), ti = f32(in);
    MUST(diffcoll_group_start(comm));
    MUST(diffcoll_send(comm, &to, (r + 1) % P, nullptr));
    MUST(diffcoll_recv(comm, &ti, (r + P - 1) % P, nullptr));
    MUST(diffcoll_group_end(comm));
    expect_equal(in, block_of((r + P - 1) % P, 40), "send/recv");
    ++done;
  }
  {  // a split by parity, and an all-reduce inside it
    diffcoll_comm_t* half = nullptr;
    MUST(diffcoll_comm_split(comm, r % 2, r, &half));
    std::vector<float> x = block_of(r, 50), want_half(kN, 0);
    for (int q = r % 2; q < P; q += 2)
      for (int64_t i = 0; i < kN; ++i) want_half[i] += value(q, 50, i);
    diffcoll_tensor_t t = f32(x);
    MUST(diffcoll_all_reduce(half, &t, DIFFCOLL_SUM, 1.0, nullptr));
    expect_equal(x, want_half, "split all_reduce");
    ++done;
    MUST(diffcoll_comm_destroy(half));
  }
  MUST(diffcoll_barrier(comm, nullptr));
  std::printf("rank %d of %d: %d collectives correct\n", r, P, done + 1);
  return 0;
}

// A failure must be an error status, within twice the timeout, that names
// the operation.
int expect_failure(diffcoll_status_t s, Clock::time_point started, const char* op) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  const std::string message = diffcoll_last_error();
  std::printf("rank %d: %s failed after %lld ms: %s: %s\n", rank_, op,
              static_cast<long long>(ms.count()), diffcoll_status_string(s), message.c_str());
  if (s == DIFFCOLL_SUCCESS) die(std::string(op) + " succeeded");
  if (ms.count() > 2 * kTimeoutMs + 1000) die("the failure took longer than twice the timeout");
  if (message.find(op) == std::string::npos) die("the message does not name the operation");
  return 0;
}

int run_cut(diffcoll_comm_t* comm) {
  std::vector<float> x(kN, 1.0f);
  diffcoll_tensor_t t = f32(x);
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  for (int i = 0; Clock::now() < give_up; ++i) {
    if (i == 20) signal("ready-" + std::to_string(rank_));
    const auto started = Clock::now();
    diffcoll_status_t s = diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 1.0, nullptr);
    if (s != DIFFCOLL_SUCCESS) return expect_failure(s, started, "all_reduce");
    std::fill(x.begin(), x.end(), 1.0f);
  }
  die("no all_reduce failed within 60 s of a cut link");
}

int run_store_gone(diffcoll_comm_t* comm) {
  MUST(diffcoll_barrier(comm, nullptr));
  signal("ready-" + std::to_string(rank_));
  wait_for("store-killed");
  diffcoll_comm_t* child = nullptr;
  const auto started = Clock::now();
  diffcoll_status_t s = diffcoll_comm_split(comm, 0, rank_, &child);
  if (child) MUST(diffcoll_comm_destroy(child));
  return expect_failure(s, started, "split");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "all" && mode != "cut" && mode != "store-gone") {
    std::fprintf(stderr, "usage: %s all|cut|store-gone\n", argv[0]);
    return 2;
  }
  if (const char* r = std::getenv("RANK")) rank_ = std::atoi(r);  // for messages before create
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.timeout_ms = kTimeoutMs;
  diffcoll_comm_t* comm = nullptr;
  MUST(diffcoll_comm_create_from_env(&config, &comm));
  MUST(diffcoll_comm_rank(comm, &rank_));
  MUST(diffcoll_comm_size(comm, &size_));
  const int rc = mode == "all" ? run_all(comm) : mode == "cut" ? run_cut(comm) : run_store_gone(comm);
  MUST(diffcoll_comm_destroy(comm));  // also after a failure: no hang, no crash
  return rc;
}
