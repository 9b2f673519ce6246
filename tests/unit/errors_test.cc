// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Bad input and failures through the public API: every error returns its
// status and diffcoll_last_error() names the problem.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The call returns `status` and the thread's last error contains every needle.
#define EXPECT_FAILS(call, status, ...)                                                   \
  do {                                                                                    \
    diffcoll_status_t st_ = (call);                                                       \
    EXPECT_EQ(st_, status) << #call << " returned " << diffcoll_status_string(st_) << ": " \
                           << diffcoll_last_error();                                      \
    const std::string msg_ = diffcoll_last_error();                                       \
    for (const char* needle_ : {__VA_ARGS__})                                             \
      EXPECT_NE(msg_.find(needle_), std::string::npos)                                    \
          << #call << ": message \"" << msg_ << "\" does not mention \"" << needle_ << "\""; \
  } while (0)

diffcoll_tensor_t host_tensor(void* data, int dtype, std::vector<int64_t> shape,
                              std::vector<int64_t> strides = {}) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = static_cast<int32_t>(shape.size());
  int64_t s = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.shape[d] = shape[d];
    t.strides[d] = strides.empty() ? s : strides[d];
    s *= shape[d];
  }
  return t;
}

// A one-rank world for argument checks.
class Errors : public ::testing::Test {
 protected:
  void SetUp() override {
    diffcoll_config_t cfg = dct::test_config(3000);
    const std::string name = "local://" + dct::unique_name("errors");
    ASSERT_EQ(diffcoll_comm_create(name.c_str(), 0, 1, &cfg, &comm_), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    buf_.assign(256, 1.0f);
    out_.assign(256, 0.0f);
  }
  void TearDown() override {
    if (comm_) EXPECT_EQ(diffcoll_comm_destroy(comm_), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  }
  // float32 [2,3,4] over buf_.
  diffcoll_tensor_t t() { return host_tensor(buf_.data(), DIFFCOLL_FLOAT32, {2, 3, 4}); }
  diffcoll_tensor_t o(std::vector<int64_t> shape) {
    return host_tensor(out_.data(), DIFFCOLL_FLOAT32, std::move(shape));
  }
  void expect_still_usable() {
    diffcoll_tensor_t good = t();
    EXPECT_EQ(diffcoll_all_reduce(comm_, &good, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_SUCCESS)
        << "the communicator must stay usable after an argument error: " << diffcoll_last_error();
  }

  diffcoll_comm_t* comm_ = nullptr;
  std::vector<float> buf_, out_;
};

// ---- library ---------------------------------------------------------------------------

TEST(Library, VersionAndStatusStrings) {
  EXPECT_EQ(diffcoll_version(), static_cast<uint32_t>(DIFFCOLL_VERSION));
  EXPECT_EQ(DIFFCOLL_VERSION, DIFFCOLL_VERSION_MAJOR * 10000 + DIFFCOLL_VERSION_MINOR * 100 +
                                  DIFFCOLL_VERSION_PATCH);
  for (int s = DIFFCOLL_SUCCESS; s <= DIFFCOLL_ERR_INTERNAL; ++s) {
    const char* str = diffcoll_status_string(static_cast<diffcoll_status_t>(s));
    ASSERT_NE(str, nullptr) << s;
    EXPECT_GT(std::strlen(str), 0u) << s;
    for (int u = DIFFCOLL_SUCCESS; u < s; ++u)
      EXPECT_STRNE(str, diffcoll_status_string(static_cast<diffcoll_status_t>(u)))
          << "statuses " << u << " and " << s << " read the same";
  }
  const char* unknown = diffcoll_status_string(static_cast<diffcoll_status_t>(99));
  ASSERT_NE(unknown, nullptr);
  EXPECT_GT(std::strlen(unknown), 0u);
}

TEST(Library, LastErrorIsThreadLocal) {
  std::string fresh = "unset", other = "unset";
  std::thread([&] { fresh = diffcoll_last_error(); }).join();
  EXPECT_EQ(fresh, "") << "no call failed on a new thread yet";
  EXPECT_FAILS(diffcoll_barrier(nullptr, nullptr), DIFFCOLL_ERR_INVALID_HANDLE, "NULL");
  std::thread([&] { other = diffcoll_last_error(); }).join();
  EXPECT_EQ(other, "") << "another thread's error leaked";
  EXPECT_NE(std::string(diffcoll_last_error()), "");
}

// ---- handles ----------------------------------------------------------------------------

TEST(Handles, NullCommEverywhere) {
  float x = 0;
  diffcoll_tensor_t t = host_tensor(&x, DIFFCOLL_FLOAT32, {1});
  diffcoll_comm_t* out = nullptr;
  int32_t i = 0;
  diffcoll_stats_t stats = DIFFCOLL_STATS_INIT;
  const int32_t ranks[1] = {0};
  const diffcoll_status_t H = DIFFCOLL_ERR_INVALID_HANDLE;
  EXPECT_FAILS(diffcoll_all_reduce(nullptr, &t, DIFFCOLL_SUM, 0, nullptr), H, "comm", "NULL");
  EXPECT_FAILS(diffcoll_broadcast(nullptr, &t, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_reduce(nullptr, &t, DIFFCOLL_SUM, 0, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_all_gather(nullptr, &t, &t, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_reduce_scatter(nullptr, &t, &t, 0, DIFFCOLL_SUM, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_all_to_all(nullptr, &t, &t, 0, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_gather(nullptr, &t, &t, 0, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_scatter(nullptr, &t, &t, 0, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_send(nullptr, &t, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_recv(nullptr, &t, 0, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_group_start(nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_group_end(nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_barrier(nullptr, nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_comm_size(nullptr, &i), H, "NULL");
  EXPECT_FAILS(diffcoll_comm_rank(nullptr, &i), H, "NULL");
  EXPECT_FAILS(diffcoll_comm_global_rank(nullptr, 0, &i), H, "NULL");
  EXPECT_FAILS(diffcoll_comm_reserve(nullptr, 16), H, "NULL");
  EXPECT_FAILS(diffcoll_comm_get_stats(nullptr, &stats), H, "NULL");
  EXPECT_FAILS(diffcoll_comm_reset_stats(nullptr), H, "NULL");
  EXPECT_FAILS(diffcoll_comm_split(nullptr, 0, 0, &out), H, "parent", "NULL");
  EXPECT_FAILS(diffcoll_comm_create_group(nullptr, ranks, 1, &out), H, "parent", "NULL");
  EXPECT_EQ(diffcoll_comm_destroy(nullptr), DIFFCOLL_SUCCESS) << "destroy(NULL) is a no-op";
}

TEST(Handles, DestroyedAndForeignComm) {
  diffcoll_config_t cfg = dct::test_config(3000);
  const std::string name = "local://" + dct::unique_name("destroyed");
  diffcoll_comm_t* comm = nullptr;
  ASSERT_EQ(diffcoll_comm_create(name.c_str(), 0, 1, &cfg, &comm), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  ASSERT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS);
  float x = 1;
  diffcoll_tensor_t t = host_tensor(&x, DIFFCOLL_FLOAT32, {1});
  int32_t size = 0;
  EXPECT_FAILS(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_HANDLE, "not a live");
  EXPECT_FAILS(diffcoll_comm_size(comm, &size), DIFFCOLL_ERR_INVALID_HANDLE, "not a live");
  EXPECT_FAILS(diffcoll_barrier(comm, nullptr), DIFFCOLL_ERR_INVALID_HANDLE, "not a live");
  EXPECT_FAILS(diffcoll_comm_destroy(comm), DIFFCOLL_ERR_INVALID_HANDLE, "not a live");
  int not_a_comm = 0;
  EXPECT_FAILS(diffcoll_barrier(reinterpret_cast<diffcoll_comm_t*>(&not_a_comm), nullptr),
               DIFFCOLL_ERR_INVALID_HANDLE, "not a live");
}

// ---- tensor descriptors -------------------------------------------------------------------

TEST_F(Errors, NullTensor) {
  diffcoll_tensor_t in = t();
  EXPECT_FAILS(diffcoll_all_reduce(comm_, nullptr, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "tensor is NULL");
  EXPECT_FAILS(diffcoll_broadcast(comm_, nullptr, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "tensor is NULL");
  EXPECT_FAILS(diffcoll_all_gather(comm_, nullptr, &in, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "input is NULL");
  EXPECT_FAILS(diffcoll_all_gather(comm_, &in, nullptr, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "output is NULL");
  EXPECT_FAILS(diffcoll_send(comm_, nullptr, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "tensor is NULL");
  // The root of gather needs an output, the root of scatter an input.
  EXPECT_FAILS(diffcoll_gather(comm_, &in, nullptr, 0, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "output");
  diffcoll_tensor_t out = o({2, 3, 4});
  EXPECT_FAILS(diffcoll_scatter(comm_, nullptr, &out, 0, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "input");
  expect_still_usable();
}

TEST_F(Errors, BadDtypeDeviceNdimShapeData) {
  diffcoll_tensor_t bad = t();
  bad.dtype = 99;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bad, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "dtype 99");
  bad.dtype = 0;
  EXPECT_FAILS(diffcoll_broadcast(comm_, &bad, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "dtype 0");
  bad = t();
  bad.device_type = 7;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bad, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "device_type 7");
  bad = t();
  bad.ndim = 9;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bad, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "ndim 9");
  bad.ndim = -1;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bad, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "ndim -1");
  bad = t();
  bad.shape[1] = -3;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bad, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "negative");
  bad = t();
  bad.shape[0] = int64_t{1} << 40;
  bad.shape[1] = int64_t{1} << 40;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bad, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "overflow");
  bad = t();
  bad.data = nullptr;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bad, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "data is NULL");
  // Error messages name the argument.
  diffcoll_tensor_t in = t(), out = o({2, 3, 4});
  out.dtype = 42;
  EXPECT_FAILS(diffcoll_all_gather(comm_, &in, &out, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "output", "dtype 42");
  expect_still_usable();
}

TEST_F(Errors, OverlappingTensorsCannotBeWritten) {
  diffcoll_tensor_t bcast = host_tensor(buf_.data(), DIFFCOLL_FLOAT32, {4, 3}, {0, 1});
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &bcast, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "overlapping");
  diffcoll_tensor_t interleaved = host_tensor(buf_.data(), DIFFCOLL_FLOAT32, {2, 3}, {2, 1});
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &interleaved, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "overlapping");
  EXPECT_FAILS(diffcoll_reduce(comm_, &interleaved, DIFFCOLL_SUM, 0, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "overlapping");
  diffcoll_tensor_t in = host_tensor(out_.data(), DIFFCOLL_FLOAT32, {2, 3});
  EXPECT_FAILS(diffcoll_all_gather(comm_, &in, &interleaved, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "overlapping");
  EXPECT_FAILS(diffcoll_recv(comm_, &interleaved, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "overlapping");
  expect_still_usable();
}

TEST_F(Errors, OverlappingTensorsMayBeRead) {
  // A stride-0 input is only read: all_gather and the root of broadcast take it.
  buf_[0] = 7;
  diffcoll_tensor_t in = host_tensor(buf_.data(), DIFFCOLL_FLOAT32, {3}, {0});
  diffcoll_tensor_t out = o({3});
  EXPECT_EQ(diffcoll_all_gather(comm_, &in, &out, 0, nullptr), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  EXPECT_EQ(out_[0], 7);
  EXPECT_EQ(out_[1], 7);
  EXPECT_EQ(out_[2], 7);
  EXPECT_EQ(diffcoll_broadcast(comm_, &in, 0, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
}

TEST_F(Errors, BadOp) {
  diffcoll_tensor_t x = t();
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &x, 6, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "op 6");
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &x, -1, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "op -1");
  EXPECT_FAILS(diffcoll_reduce(comm_, &x, 17, 0, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "op 17");
  diffcoll_tensor_t out = o({2, 3, 4});
  EXPECT_FAILS(diffcoll_reduce_scatter(comm_, &x, &out, 0, 99, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "op 99");
  expect_still_usable();
}

TEST_F(Errors, RootOutOfRange) {
  diffcoll_tensor_t x = t(), out = o({2, 3, 4});
  EXPECT_FAILS(diffcoll_broadcast(comm_, &x, 1, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "root 1");
  EXPECT_FAILS(diffcoll_broadcast(comm_, &x, -1, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "root -1");
  EXPECT_FAILS(diffcoll_reduce(comm_, &x, DIFFCOLL_SUM, 0, 5, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "root 5");
  EXPECT_FAILS(diffcoll_gather(comm_, &x, &out, 0, 2, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "root 2");
  EXPECT_FAILS(diffcoll_scatter(comm_, &x, &out, 0, 3, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "root 3");
  expect_still_usable();
}

TEST_F(Errors, PeerOutOfRange) {
  diffcoll_tensor_t x = t();
  EXPECT_FAILS(diffcoll_send(comm_, &x, 1, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "peer 1");
  EXPECT_FAILS(diffcoll_recv(comm_, &x, -1, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "peer -1");
  ASSERT_EQ(diffcoll_group_start(comm_), DIFFCOLL_SUCCESS);
  EXPECT_FAILS(diffcoll_send(comm_, &x, 4, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "peer 4");
  EXPECT_EQ(diffcoll_group_end(comm_), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  expect_still_usable();
}

TEST_F(Errors, AxisOutOfRange) {
  diffcoll_tensor_t x = t(), out = o({2, 3, 4});
  EXPECT_FAILS(diffcoll_all_gather(comm_, &x, &out, 3, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "axis 3");
  EXPECT_FAILS(diffcoll_all_gather(comm_, &x, &out, -1, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "axis -1");
  EXPECT_FAILS(diffcoll_reduce_scatter(comm_, &x, &out, 7, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "axis 7");
  EXPECT_FAILS(diffcoll_all_to_all(comm_, &x, &out, 5, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "scatter_axis 5");
  EXPECT_FAILS(diffcoll_all_to_all(comm_, &x, &out, 0, 3, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "gather_axis 3");
  EXPECT_FAILS(diffcoll_gather(comm_, &x, &out, 4, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "axis 4");
  EXPECT_FAILS(diffcoll_scatter(comm_, &x, &out, 4, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "axis 4");
  diffcoll_tensor_t scalar = host_tensor(buf_.data(), DIFFCOLL_FLOAT32, {});
  EXPECT_FAILS(diffcoll_all_gather(comm_, &scalar, &scalar, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "axis 0");
  expect_still_usable();
}

TEST_F(Errors, OutputShapeWrong) {
  diffcoll_tensor_t x = t();
  diffcoll_tensor_t wrong = o({4, 3, 4});  // one rank: the output must equal the input shape
  EXPECT_FAILS(diffcoll_all_gather(comm_, &x, &wrong, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "does not fit");
  diffcoll_tensor_t fewer_dims = o({6, 4});
  EXPECT_FAILS(diffcoll_all_gather(comm_, &x, &fewer_dims, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "does not fit");
  EXPECT_FAILS(diffcoll_reduce_scatter(comm_, &x, &wrong, 0, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "does not fit");
  EXPECT_FAILS(diffcoll_all_to_all(comm_, &x, &wrong, 0, 1, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "does not fit");
  EXPECT_FAILS(diffcoll_gather(comm_, &x, &wrong, 0, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "does not fit");
  EXPECT_FAILS(diffcoll_scatter(comm_, &wrong, &x, 0, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "does not fit");
  diffcoll_tensor_t ints = host_tensor(out_.data(), DIFFCOLL_INT32, {2, 3, 4});
  EXPECT_FAILS(diffcoll_all_gather(comm_, &x, &ints, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "float32", "int32");
  expect_still_usable();
}

TEST_F(Errors, CudaTensorOnHostOnlyComm) {
  diffcoll_tensor_t cuda = t();
  cuda.device_type = DIFFCOLL_DEVICE_CUDA;
  cuda.device_id = 0;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &cuda, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_UNSUPPORTED, "device side");
  EXPECT_FAILS(diffcoll_broadcast(comm_, &cuda, 0, nullptr), DIFFCOLL_ERR_UNSUPPORTED,
               "device side");
  diffcoll_tensor_t cuda_out = o({2, 3, 4});
  cuda_out.device_type = DIFFCOLL_DEVICE_CUDA;
  EXPECT_FAILS(diffcoll_all_gather(comm_, &cuda, &cuda_out, 0, nullptr),
               DIFFCOLL_ERR_UNSUPPORTED, "device side");
  diffcoll_tensor_t host = t();
  EXPECT_FAILS(diffcoll_all_gather(comm_, &host, &cuda_out, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "different devices");
  EXPECT_FAILS(diffcoll_reduce(comm_, &cuda, DIFFCOLL_SUM, 0, 0, nullptr),
               DIFFCOLL_ERR_UNSUPPORTED, "device side");
  EXPECT_FAILS(diffcoll_reduce_scatter(comm_, &cuda, &cuda_out, 0, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_UNSUPPORTED, "device side");
  EXPECT_FAILS(diffcoll_all_to_all(comm_, &cuda, &cuda_out, 0, 0, nullptr),
               DIFFCOLL_ERR_UNSUPPORTED, "device side");
  EXPECT_FAILS(diffcoll_gather(comm_, &cuda, &cuda_out, 0, 0, nullptr), DIFFCOLL_ERR_UNSUPPORTED,
               "device side");
  EXPECT_FAILS(diffcoll_scatter(comm_, &cuda, &cuda_out, 0, 0, nullptr), DIFFCOLL_ERR_UNSUPPORTED,
               "device side");
  // Point-to-point: a group of CUDA transfers, and a group mixing both kinds.
  ASSERT_EQ(diffcoll_group_start(comm_), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_send(comm_, &cuda, 0, nullptr), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_recv(comm_, &cuda_out, 0, nullptr), DIFFCOLL_SUCCESS);
  EXPECT_FAILS(diffcoll_group_end(comm_), DIFFCOLL_ERR_UNSUPPORTED, "device side");
  diffcoll_tensor_t host_out = o({2, 3, 4});
  ASSERT_EQ(diffcoll_group_start(comm_), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_send(comm_, &host, 0, nullptr), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_recv(comm_, &cuda_out, 0, nullptr), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_recv(comm_, &host_out, 0, nullptr), DIFFCOLL_SUCCESS);
  diffcoll_status_t mixed = diffcoll_group_end(comm_);
  EXPECT_TRUE(mixed == DIFFCOLL_ERR_INVALID_ARGUMENT || mixed == DIFFCOLL_ERR_UNSUPPORTED)
      << diffcoll_status_string(mixed) << ": " << diffcoll_last_error();
  cuda.device_id = -1;
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &cuda, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "device_id -1");
  expect_still_usable();
}

// ---- groups of point-to-point operations ---------------------------------------------------

TEST_F(Errors, GroupMisuse) {
  diffcoll_tensor_t x = t(), y = o({2, 3, 4});
  EXPECT_FAILS(diffcoll_group_end(comm_), DIFFCOLL_ERR_INVALID_ARGUMENT, "without group_start");
  ASSERT_EQ(diffcoll_group_start(comm_), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  EXPECT_FAILS(diffcoll_group_start(comm_), DIFFCOLL_ERR_INVALID_ARGUMENT, "already open");
  EXPECT_FAILS(diffcoll_all_reduce(comm_, &x, DIFFCOLL_SUM, 0, nullptr),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "group_start");
  EXPECT_FAILS(diffcoll_broadcast(comm_, &x, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "group_start");
  EXPECT_FAILS(diffcoll_all_gather(comm_, &x, &y, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "group_start");
  EXPECT_FAILS(diffcoll_barrier(comm_, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "group_start");
  // send/recv are recorded; a matched pair to oneself works.
  EXPECT_EQ(diffcoll_send(comm_, &x, 0, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  EXPECT_EQ(diffcoll_recv(comm_, &y, 0, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  ASSERT_EQ(diffcoll_group_end(comm_), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  EXPECT_EQ(out_[0], 1.0f);
  EXPECT_FAILS(diffcoll_group_end(comm_), DIFFCOLL_ERR_INVALID_ARGUMENT, "without group_start");
  expect_still_usable();
}

TEST_F(Errors, SelfSendsOutsideOrUnmatchedInGroup) {
  diffcoll_tensor_t x = t(), y = o({2, 3, 4});
  EXPECT_FAILS(diffcoll_send(comm_, &x, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "group_start");
  EXPECT_FAILS(diffcoll_recv(comm_, &y, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "group_start");
  ASSERT_EQ(diffcoll_group_start(comm_), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_send(comm_, &x, 0, nullptr), DIFFCOLL_SUCCESS);
  EXPECT_FAILS(diffcoll_group_end(comm_), DIFFCOLL_ERR_INVALID_ARGUMENT, "oneself");
  ASSERT_EQ(diffcoll_group_start(comm_), DIFFCOLL_SUCCESS) << "group_end closes the group";
  diffcoll_tensor_t small = o({2, 3});
  ASSERT_EQ(diffcoll_send(comm_, &x, 0, nullptr), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_recv(comm_, &small, 0, nullptr), DIFFCOLL_SUCCESS);
  EXPECT_FAILS(diffcoll_group_end(comm_), DIFFCOLL_ERR_INVALID_ARGUMENT, "bytes");
  expect_still_usable();
}

// ---- communicators ------------------------------------------------------------------------

TEST(Create, BadArguments) {
  diffcoll_config_t cfg = dct::test_config(2000);
  diffcoll_comm_t* out = reinterpret_cast<diffcoll_comm_t*>(0x1);
  const diffcoll_status_t A = DIFFCOLL_ERR_INVALID_ARGUMENT;
  EXPECT_FAILS(diffcoll_comm_create("nope://x", 0, 1, &cfg, &out), A, "nope://x");
  EXPECT_EQ(out, nullptr) << "*out is NULL after a failure";
  EXPECT_FAILS(diffcoll_comm_create("file://relative/dir", 0, 1, &cfg, &out), A, "absolute");
  EXPECT_FAILS(diffcoll_comm_create("local://", 0, 1, &cfg, &out), A, "name");
  EXPECT_FAILS(diffcoll_comm_create("redis://no-port", 0, 1, &cfg, &out), A, "HOST:PORT");
  EXPECT_FAILS(diffcoll_comm_create("redis://host:99999", 0, 1, &cfg, &out), A, "port");
  EXPECT_FAILS(diffcoll_comm_create("redis://host:0", 0, 1, &cfg, &out), A, "port");
  EXPECT_FAILS(diffcoll_comm_create("redis://host:+80", 0, 1, &cfg, &out), A, "port");
  EXPECT_FAILS(diffcoll_comm_create("redis://host: 80", 0, 1, &cfg, &out), A, "port");
  EXPECT_FAILS(diffcoll_comm_create("redis://host:80x/p", 0, 1, &cfg, &out), A, "port");
  EXPECT_FAILS(diffcoll_comm_create(nullptr, 0, 1, &cfg, &out), A, "rendezvous");
  const std::string name = "local://" + dct::unique_name("bad");
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 2, 2, &cfg, &out), A, "rank 2");
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), -1, 2, &cfg, &out), A, "rank -1");
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 0, &cfg, &out), A, "size 0");
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &cfg, nullptr), A, "out");
  diffcoll_config_t zero = dct::test_config(0);
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &zero, &out), A, "timeout");
  diffcoll_config_t negative = dct::test_config(-5);
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &negative, &out), A, "timeout");
  diffcoll_config_t device = dct::test_config(2000);
  device.device_id = -3;
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &device, &out), A, "device_id");
  diffcoll_config_t tiny = dct::test_config(2000);
  tiny.struct_size = 4;
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &tiny, &out), DIFFCOLL_ERR_VERSION,
               "struct_size");
  EXPECT_EQ(out, nullptr);
  // A struct_size that cuts through a field leaves that field at its default:
  // here half of `host`, which would otherwise be read as a wild pointer (a
  // fuzz finding); the other fields are read.
  diffcoll_config_t partial = dct::test_config(2000);
  partial.host = reinterpret_cast<const char*>(uintptr_t{0xdeadbeefdeadbeef});
  partial.struct_size = offsetof(diffcoll_config_t, host) + sizeof(partial.host) / 2;
  partial.device_id = -3;
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &partial, &out), A, "device_id");
  partial.device_id = -1;
  ASSERT_EQ(diffcoll_comm_create(name.c_str(), 0, 1, &partial, &out), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  EXPECT_EQ(diffcoll_comm_destroy(out), DIFFCOLL_SUCCESS);
  // A NULL config means the defaults.
  ASSERT_EQ(diffcoll_comm_create(name.c_str(), 0, 1, nullptr, &out), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  EXPECT_NE(out, nullptr);
  EXPECT_EQ(diffcoll_comm_destroy(out), DIFFCOLL_SUCCESS);
}

TEST(Create, FromEnvironment) {
  diffcoll_comm_t* out = nullptr;
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  unsetenv("DIFFCOLL_STORE");
  EXPECT_FAILS(diffcoll_comm_create_from_env(nullptr, &out), DIFFCOLL_ERR_INVALID_ARGUMENT, "RANK");
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "x1", 1);
  EXPECT_FAILS(diffcoll_comm_create_from_env(nullptr, &out), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "WORLD_SIZE");
  setenv("WORLD_SIZE", "1", 1);
  EXPECT_FAILS(diffcoll_comm_create_from_env(nullptr, &out), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "DIFFCOLL_STORE");
  const std::string store = "local://" + dct::unique_name("env");
  setenv("DIFFCOLL_STORE", store.c_str(), 1);
  ASSERT_EQ(diffcoll_comm_create_from_env(nullptr, &out), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  int32_t size = 0, rank = -1;
  EXPECT_EQ(diffcoll_comm_size(out, &size), DIFFCOLL_SUCCESS);
  EXPECT_EQ(diffcoll_comm_rank(out, &rank), DIFFCOLL_SUCCESS);
  EXPECT_EQ(size, 1);
  EXPECT_EQ(rank, 0);
  EXPECT_EQ(diffcoll_comm_destroy(out), DIFFCOLL_SUCCESS);
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");
  unsetenv("DIFFCOLL_STORE");
}

TEST_F(Errors, CommQueriesAndGroups) {
  int32_t v = 0;
  EXPECT_FAILS(diffcoll_comm_global_rank(comm_, 1, &v), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "local rank 1");
  EXPECT_FAILS(diffcoll_comm_size(comm_, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "size");
  EXPECT_FAILS(diffcoll_comm_rank(comm_, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "rank");
  diffcoll_stats_t tiny = DIFFCOLL_STATS_INIT;
  tiny.struct_size = 8;
  EXPECT_FAILS(diffcoll_comm_get_stats(comm_, &tiny), DIFFCOLL_ERR_VERSION, "struct_size");
  EXPECT_FAILS(diffcoll_comm_get_stats(comm_, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "stats");
  diffcoll_comm_t* out = reinterpret_cast<diffcoll_comm_t*>(0x1);
  const int32_t outsider[1] = {5}, twice[2] = {0, 0};
  EXPECT_FAILS(diffcoll_comm_create_group(comm_, outsider, 1, &out),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "5", "not a member");
  EXPECT_EQ(out, nullptr);
  EXPECT_FAILS(diffcoll_comm_create_group(comm_, twice, 2, &out), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "twice");
  EXPECT_FAILS(diffcoll_comm_create_group(comm_, twice, 0, &out), DIFFCOLL_ERR_INVALID_ARGUMENT,
               "non-empty");
  EXPECT_FAILS(diffcoll_comm_create_group(comm_, nullptr, 1, &out),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "non-empty");
  EXPECT_FAILS(diffcoll_comm_split(comm_, -2, 0, &out), DIFFCOLL_ERR_INVALID_ARGUMENT, "-2");
  EXPECT_FAILS(diffcoll_comm_split(comm_, 0, 0, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT, "out");
  EXPECT_EQ(diffcoll_comm_reserve(comm_, 1 << 20), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  expect_still_usable();
}

// ---- several ranks --------------------------------------------------------------------------

TEST(MultiRank, ShapeChecksNeedingTwoRanks) {
  dct::run_ranks(2, [](int, diffcoll_comm_t* comm) {
    std::vector<float> a(24, 1), b(24, 0);
    diffcoll_tensor_t in = host_tensor(a.data(), DIFFCOLL_FLOAT32, {3, 8});
    diffcoll_tensor_t out = host_tensor(b.data(), DIFFCOLL_FLOAT32, {1, 8});
    EXPECT_FAILS(diffcoll_reduce_scatter(comm, &in, &out, 0, DIFFCOLL_SUM, 0, nullptr),
                 DIFFCOLL_ERR_INVALID_ARGUMENT, "not divisible");
    diffcoll_tensor_t out2 = host_tensor(b.data(), DIFFCOLL_FLOAT32, {1, 16});
    EXPECT_FAILS(diffcoll_all_to_all(comm, &in, &out2, 0, 1, nullptr),
                 DIFFCOLL_ERR_INVALID_ARGUMENT, "not divisible");
    diffcoll_tensor_t gathered = host_tensor(b.data(), DIFFCOLL_FLOAT32, {3, 8});
    EXPECT_FAILS(diffcoll_all_gather(comm, &in, &gathered, 0, nullptr),
                 DIFFCOLL_ERR_INVALID_ARGUMENT, "does not fit");
  });
}

TEST(MultiRank, CheckModeNamesTheFirstDifferingRank) {
  dct::run_ranks(3, [](int r, diffcoll_comm_t* comm) {
    std::vector<float> a(12, 1.0f);
    // Rank 1 passes a different shape (same element count).
    diffcoll_tensor_t t = host_tensor(a.data(), DIFFCOLL_FLOAT32, r == 1 ? std::vector<int64_t>{4, 3}
                                                                         : std::vector<int64_t>{3, 4});
    EXPECT_FAILS(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_ERR_MISMATCH,
                 "rank 1", "all_reduce");
    // A different op.
    diffcoll_tensor_t u = host_tensor(a.data(), DIFFCOLL_FLOAT32, {3, 4});
    EXPECT_FAILS(diffcoll_all_reduce(comm, &u, r == 2 ? DIFFCOLL_MAX : DIFFCOLL_SUM, 0, nullptr),
                 DIFFCOLL_ERR_MISMATCH, "rank 2");
    // A different root.
    EXPECT_FAILS(diffcoll_broadcast(comm, &u, r == 1 ? 1 : 0, nullptr), DIFFCOLL_ERR_MISMATCH,
                 "rank 1");
    // A different dtype (same byte count).
    diffcoll_tensor_t v = host_tensor(a.data(), r == 2 ? DIFFCOLL_INT32 : DIFFCOLL_FLOAT32, {3, 4});
    EXPECT_FAILS(diffcoll_all_reduce(comm, &v, DIFFCOLL_MAX, 0, nullptr), DIFFCOLL_ERR_MISMATCH,
                 "rank 2");
    // A mismatch does not break the communicator.
    EXPECT_EQ(diffcoll_all_reduce(comm, &u, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    EXPECT_EQ(a[0], 3.0f);
  }, 10000, /*check=*/1);
}

TEST(MultiRank, CheckModeFromEnvironment) {
  setenv("DIFFCOLL_CHECK", "1", 1);
  dct::run_ranks(2, [](int r, diffcoll_comm_t* comm) {
    std::vector<float> a(12, 1.0f);
    diffcoll_tensor_t t = host_tensor(a.data(), DIFFCOLL_FLOAT32, {12}, {r == 1 ? -1 : 1});
    if (r == 1) t.data = a.data() + 11;
    EXPECT_FAILS(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_ERR_MISMATCH,
                 "rank 1");
  }, 10000, /*check=*/-1);
  unsetenv("DIFFCOLL_CHECK");
}

TEST(MultiRank, CollectiveTimesOutWhenAPeerDoesNotCall) {
  std::atomic<bool> done{false};
  dct::run_ranks(2, [&](int r, diffcoll_comm_t* comm) {
    if (r == 1) {  // alive, but never joins the all_reduce
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    std::vector<float> a(1000, 1.0f);
    diffcoll_tensor_t t = host_tensor(a.data(), DIFFCOLL_FLOAT32, {1000});
    const auto start = Clock::now();
    EXPECT_FAILS(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_ERR_TIMEOUT,
                 "all_reduce");
    const double elapsed = seconds_since(start);
    EXPECT_GE(elapsed, 0.9);
    EXPECT_LT(elapsed, 6.0);
    // The communicator is broken now, and says so.
    EXPECT_FAILS(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_ERR_REMOTE,
                 "failed earlier");
    EXPECT_FAILS(diffcoll_barrier(comm, nullptr), DIFFCOLL_ERR_REMOTE, "failed earlier");
    done = true;
  }, 1000, 0, /*final_barrier=*/false);
}

TEST(MultiRank, RendezvousTimesOutWhenARankNeverJoins) {
  diffcoll_config_t cfg = dct::test_config(1500);
  const std::string name = "local://" + dct::unique_name("alone");
  diffcoll_comm_t* comm = reinterpret_cast<diffcoll_comm_t*>(0x1);
  const auto start = Clock::now();
  diffcoll_status_t st = diffcoll_comm_create(name.c_str(), 0, 2, &cfg, &comm);
  const double elapsed = seconds_since(start);
  EXPECT_EQ(st, DIFFCOLL_ERR_TIMEOUT) << diffcoll_status_string(st) << ": " << diffcoll_last_error();
  EXPECT_EQ(comm, nullptr);
  EXPECT_GE(elapsed, 1.0);
  EXPECT_LT(elapsed, 6.0) << "must fail within about the timeout";
  const std::string msg = diffcoll_last_error();
  EXPECT_TRUE(msg.find("imeout") != std::string::npos || msg.find("imed out") != std::string::npos)
      << msg;
}

// Communicator creation from a parent blocks on the peers too and must fail
// with TIMEOUT (not INTERNAL) when one of them never calls.
TEST(MultiRank, SplitTimesOutWhenAPeerDoesNotCall) {
  std::atomic<bool> done{false};
  dct::run_ranks(2, [&](int r, diffcoll_comm_t* world) {
    if (r == 1) {
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    diffcoll_comm_t* out = reinterpret_cast<diffcoll_comm_t*>(0x1);
    const auto start = Clock::now();
    diffcoll_status_t st = diffcoll_comm_split(world, 0, 0, &out);
    EXPECT_EQ(st, DIFFCOLL_ERR_TIMEOUT) << diffcoll_status_string(st) << ": " << diffcoll_last_error();
    EXPECT_EQ(out, nullptr);
    EXPECT_LT(seconds_since(start), 6.0);
    // The world's exchange was cut short: it must refuse further work.
    EXPECT_FAILS(diffcoll_barrier(world, nullptr), DIFFCOLL_ERR_REMOTE, "failed earlier");
    done = true;
  }, 1000, 0, /*final_barrier=*/false);
}

TEST(MultiRank, CreateGroupTimesOutWhenAMemberDoesNotCall) {
  std::atomic<bool> done{false};
  dct::run_ranks(2, [&](int r, diffcoll_comm_t* world) {
    if (r == 1) {
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    const int32_t members[2] = {0, 1};
    diffcoll_comm_t* out = reinterpret_cast<diffcoll_comm_t*>(0x1);
    const auto start = Clock::now();
    diffcoll_status_t st = diffcoll_comm_create_group(world, members, 2, &out);
    EXPECT_EQ(st, DIFFCOLL_ERR_TIMEOUT) << diffcoll_status_string(st) << ": " << diffcoll_last_error();
    EXPECT_EQ(out, nullptr);
    EXPECT_LT(seconds_since(start), 6.0);
    done = true;
  }, 1000, 0, /*final_barrier=*/false);
}

// diffcoll.h: destroy is not collective; "peers still using it see
// DIFFCOLL_ERR_REMOTE".
TEST(MultiRank, PeerDestroyedCommGivesRemote) {
  diffcoll_config_t cfg = dct::test_config(3000);
  const std::string name = "local://" + dct::unique_name("gone");
  std::atomic<bool> destroyed{false};
  std::thread peer([&] {
    diffcoll_comm_t* comm = nullptr;
    if (diffcoll_comm_create(name.c_str(), 1, 2, &cfg, &comm) != DIFFCOLL_SUCCESS) {
      ADD_FAILURE() << "rank 1: " << diffcoll_last_error();
      destroyed = true;
      return;
    }
    EXPECT_EQ(diffcoll_barrier(comm, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS);
    destroyed = true;
  });
  diffcoll_comm_t* comm = nullptr;
  ASSERT_EQ(diffcoll_comm_create(name.c_str(), 0, 2, &cfg, &comm), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  EXPECT_EQ(diffcoll_barrier(comm, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  while (!destroyed) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::vector<float> a(256, 1.0f);
  diffcoll_tensor_t t = host_tensor(a.data(), DIFFCOLL_FLOAT32, {256});
  const auto start = Clock::now();
  EXPECT_FAILS(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_ERR_REMOTE,
               "all_reduce");
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_FAILS(diffcoll_barrier(comm, nullptr), DIFFCOLL_ERR_REMOTE, "failed earlier");
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  peer.join();
}

TEST(Create, UnusableHostAddressIsASystemError) {
  diffcoll_config_t cfg = dct::test_config(2000);
  cfg.host = "203.0.113.1";  // TEST-NET-3: not an address of this machine
  const std::string name = "local://" + dct::unique_name("host");
  diffcoll_comm_t* out = reinterpret_cast<diffcoll_comm_t*>(0x1);
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &cfg, &out), DIFFCOLL_ERR_SYSTEM,
               "203.0.113.1");
  EXPECT_EQ(out, nullptr);
  // With config.host NULL the variable DIFFCOLL_HOST decides; config.host wins over it.
  setenv("DIFFCOLL_HOST", "203.0.113.2", 1);
  cfg.host = nullptr;
  EXPECT_FAILS(diffcoll_comm_create(name.c_str(), 0, 1, &cfg, &out), DIFFCOLL_ERR_SYSTEM,
               "203.0.113.2");
  cfg.host = "127.0.0.1";
  EXPECT_EQ(diffcoll_comm_create(name.c_str(), 0, 1, &cfg, &out), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  unsetenv("DIFFCOLL_HOST");
  EXPECT_EQ(diffcoll_comm_destroy(out), DIFFCOLL_SUCCESS);
}

// Two ranks as processes: the child joins the world and dies without taking
// part; the parent's collective must fail within the timeout, not hang.
TEST(MultiProcess, DeadPeerFailsWithinTimeout) {
  char dir_template[] = "/tmp/diffcoll-dead-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string rendezvous = "file://" + dir;
  const int timeout_ms = 3000;
  fflush(nullptr);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    diffcoll_config_t cfg = dct::test_config(timeout_ms);
    cfg.host = "127.0.0.1";
    diffcoll_comm_t* comm = nullptr;
    diffcoll_status_t st = diffcoll_comm_create(rendezvous.c_str(), 1, 2, &cfg, &comm);
    if (st != DIFFCOLL_SUCCESS) {
      std::fprintf(stderr, "child: create: %s\n", diffcoll_last_error());
      _exit(2);
    }
    // Let the parent finish connecting, then vanish without a word.
    usleep(500 * 1000);
    _exit(0);
  }
  diffcoll_config_t cfg = dct::test_config(timeout_ms);
  cfg.host = "127.0.0.1";
  diffcoll_comm_t* comm = nullptr;
  diffcoll_status_t st = diffcoll_comm_create(rendezvous.c_str(), 0, 2, &cfg, &comm);
  EXPECT_EQ(st, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  if (st == DIFFCOLL_SUCCESS) {
    std::vector<float> a(4096, 1.0f);
    diffcoll_tensor_t t = host_tensor(a.data(), DIFFCOLL_FLOAT32, {4096});
    const auto start = Clock::now();
    st = diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr);
    const double elapsed = seconds_since(start);
    EXPECT_TRUE(st == DIFFCOLL_ERR_TIMEOUT || st == DIFFCOLL_ERR_REMOTE)
        << diffcoll_status_string(st) << ": " << diffcoll_last_error();
    EXPECT_GT(std::strlen(diffcoll_last_error()), 0u);
    EXPECT_LT(elapsed, timeout_ms / 1000.0 + 3.0) << "must fail within the timeout";
    EXPECT_FAILS(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0, nullptr), DIFFCOLL_ERR_REMOTE,
                 "failed earlier");
    EXPECT_FAILS(diffcoll_broadcast(comm, &t, 0, nullptr), DIFFCOLL_ERR_REMOTE, "failed earlier");
    EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  }
  int status = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  pid_t done = 0;
  while ((done = waitpid(child, &status, WNOHANG)) == 0 && Clock::now() < deadline)
    usleep(10 * 1000);
  if (done == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    ADD_FAILURE() << "the child did not exit";
  } else {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
