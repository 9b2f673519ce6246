// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Bad input to the fused-norm workspace and operation: a clear status and
// message, never a crash, and nothing written.
#include <gtest/gtest.h>

#include <string>

#include "fused_norm_support.h"

namespace {

using fn_test::Rows;

::testing::AssertionResult fails_with(diffcoll_status_t got, diffcoll_status_t want,
                                      const char* needle) {
  const std::string message = diffcoll_last_error();
  if (got != want)
    return ::testing::AssertionFailure() << "status " << diffcoll_status_string(got)
                                         << ", wanted " << diffcoll_status_string(want)
                                         << " (" << message << ")";
  if (message.find(needle) == std::string::npos)
    return ::testing::AssertionFailure() << "message \"" << message << "\" lacks \"" << needle
                                         << "\"";
  return ::testing::AssertionSuccess();
}

// A one-rank world with a workspace of 8 tokens x 64 in bf16, and tensors of
// `tokens` x 64 for one call.
struct OneRank : ::testing::Test {
  diffcoll_comm_t* comm = nullptr;
  diffcoll_fused_norm_workspace_t* ws = nullptr;
  Rows x{DIFFCOLL_BFLOAT16, 8, 64}, res{DIFFCOLL_BFLOAT16, 8, 64}, y{DIFFCOLL_BFLOAT16, 8, 64};
  Rows w{DIFFCOLL_BFLOAT16, 1, 64};
  diffcoll_tensor_t xd{}, rd{}, yd{}, wd{};

  void SetUp() override {
    diffcoll_config_t cfg = dct::test_config();
    const std::string rendezvous = "local://" + dct::unique_name("fn_errors");
    DC_ASSERT_OK(diffcoll_comm_create(rendezvous.c_str(), 0, 1, &cfg, &comm));
    DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(comm, 8, 64, DIFFCOLL_BFLOAT16, &ws));
    y.fill([](int64_t) { return 99.0; });
    xd = x.desc();
    rd = res.desc();
    yd = y.desc();
    wd = w.desc_1d();
  }
  void TearDown() override {
    if (ws) EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
    if (comm) EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS);
  }
  diffcoll_status_t call(const diffcoll_fused_norm_options_t* options = nullptr,
                         float eps = 1e-6f) {
    return diffcoll_fused_norm(ws, &xd, &rd, &wd, eps, &yd, &rd, options, nullptr);
  }
  bool y_untouched() const { return y.get(0) == 99.0 && y.get(y.size() - 1) == 99.0; }
};

TEST_F(OneRank, WorkspaceTooSmall) {
  Rows big_x(DIFFCOLL_BFLOAT16, 9, 64), big_y(DIFFCOLL_BFLOAT16, 9, 64);
  diffcoll_tensor_t bx = big_x.desc(), by = big_y.desc();
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &bx, nullptr, nullptr, 1e-6f, &by, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "workspace is too small"));
  Rows wide_x(DIFFCOLL_BFLOAT16, 1, 65), wide_y(DIFFCOLL_BFLOAT16, 1, 65);
  bx = wide_x.desc();
  by = wide_y.desc();
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &bx, nullptr, nullptr, 1e-6f, &by, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "hidden size 64"));
  Rows f32_x(DIFFCOLL_FLOAT32, 8, 64), f32_y(DIFFCOLL_FLOAT32, 8, 64);
  bx = f32_x.desc();
  by = f32_y.desc();
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &bx, nullptr, nullptr, 1e-6f, &by, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "in bfloat16"));
}

TEST_F(OneRank, BadTensors) {
  diffcoll_tensor_t bad = yd;
  bad.shape[0] = 7;
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &xd, &rd, &wd, 1e-6f, &bad, nullptr, nullptr,
                                             nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "must have the shape of x"));
  bad = wd;
  bad.shape[0] = 32;
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &xd, &rd, &bad, 1e-6f, &yd, nullptr, nullptr,
                                             nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "weight"));
  bad = xd;
  bad.dtype = DIFFCOLL_FLOAT32;
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &bad, nullptr, nullptr, 1e-6f, &yd, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "y is bfloat16 but x is float32"));
  bad = xd;  // a column-major view: not whole rows
  bad.strides[0] = 1;
  bad.strides[1] = 8;
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &bad, nullptr, nullptr, 1e-6f, &yd, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "contiguous"));
  Rows ints(DIFFCOLL_INT32, 8, 64);
  bad = ints.desc();
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &bad, nullptr, nullptr, 1e-6f, &bad, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "supports float16, bfloat16"));
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, nullptr, nullptr, nullptr, 1e-6f, &yd, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "x"));
  bad = xd;
  bad.device_type = DIFFCOLL_DEVICE_CUDA;
  diffcoll_tensor_t bad_y = yd;
  bad_y.device_type = DIFFCOLL_DEVICE_CUDA;
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &bad, nullptr, nullptr, 1e-6f, &bad_y, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_UNSUPPORTED, "device side"));
  EXPECT_TRUE(y_untouched());
}

TEST_F(OneRank, Overlaps) {
  // y over residual, residual_out over x, y half over x: all refused.
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &xd, &rd, nullptr, 1e-6f, &rd, nullptr, nullptr,
                                             nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "y overlaps residual"));
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &xd, &rd, nullptr, 1e-6f, &yd, &xd, nullptr,
                                             nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "residual_out overlaps x"));
  Rows wide(DIFFCOLL_BFLOAT16, 16, 64);
  diffcoll_tensor_t a = wide.desc(), b = wide.desc();
  a.shape[0] = b.shape[0] = 8;
  b.data = wide.bytes.data() + 4 * 64 * 2;  // rows 4..11 against rows 0..7
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &a, nullptr, nullptr, 1e-6f, &b, nullptr,
                                             nullptr, nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "without being exactly it"));
}

TEST_F(OneRank, BadEpsAndOptions) {
  EXPECT_TRUE(fails_with(call(nullptr, -1.0f), DIFFCOLL_ERR_INVALID_ARGUMENT, "eps"));
  EXPECT_TRUE(fails_with(call(nullptr, NAN), DIFFCOLL_ERR_INVALID_ARGUMENT, "eps"));
  diffcoll_fused_norm_options_t o = DIFFCOLL_FUSED_NORM_OPTIONS_INIT;
  o.path = 7;
  EXPECT_TRUE(fails_with(call(&o), DIFFCOLL_ERR_INVALID_ARGUMENT, "options->path 7"));
  o = DIFFCOLL_FUSED_NORM_OPTIONS_INIT;
  o.struct_size = 4;
  EXPECT_TRUE(fails_with(call(&o), DIFFCOLL_ERR_VERSION, "struct_size"));
  EXPECT_TRUE(y_untouched());
  // A path is ignored for host tensors: they always take the host path.
  o = DIFFCOLL_FUSED_NORM_OPTIONS_INIT;
  o.path = DIFFCOLL_FUSED_NORM_ONE_SHOT;
  DC_EXPECT_OK(call(&o));
}

TEST_F(OneRank, BadWorkspaces) {
  diffcoll_fused_norm_workspace_t* other = nullptr;
  EXPECT_TRUE(fails_with(diffcoll_fused_norm_workspace_create(comm, 0, 64, DIFFCOLL_BFLOAT16,
                                                              &other),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "must be >= 1"));
  EXPECT_TRUE(fails_with(diffcoll_fused_norm_workspace_create(comm, 8, 64, DIFFCOLL_FLOAT64,
                                                              &other),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "DIFFCOLL_BFLOAT16"));
  EXPECT_TRUE(fails_with(diffcoll_fused_norm_workspace_create(comm, 8, 64, DIFFCOLL_BFLOAT16,
                                                              nullptr),
                         DIFFCOLL_ERR_INVALID_ARGUMENT, "out"));
  EXPECT_TRUE(fails_with(diffcoll_fused_norm_workspace_create(nullptr, 8, 64, DIFFCOLL_BFLOAT16,
                                                              &other),
                         DIFFCOLL_ERR_INVALID_HANDLE, "comm"));
  EXPECT_EQ(other, nullptr);
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(nullptr, &xd, &rd, &wd, 1e-6f, &yd, &rd, nullptr,
                                             nullptr),
                         DIFFCOLL_ERR_INVALID_HANDLE, "workspace is NULL"));
  // A destroyed workspace, and a communicator pointer passed as one.
  DC_ASSERT_OK(diffcoll_fused_norm_workspace_destroy(ws));
  diffcoll_fused_norm_workspace_t* gone = ws;
  ws = nullptr;
  EXPECT_TRUE(fails_with(call(), DIFFCOLL_ERR_INVALID_HANDLE, "workspace is NULL"));
  EXPECT_TRUE(fails_with(diffcoll_fused_norm(gone, &xd, &rd, &wd, 1e-6f, &yd, &rd, nullptr,
                                             nullptr),
                         DIFFCOLL_ERR_INVALID_HANDLE, "already destroyed"));
  EXPECT_TRUE(fails_with(diffcoll_fused_norm_workspace_destroy(gone), DIFFCOLL_ERR_INVALID_HANDLE,
                         "already destroyed"));
  EXPECT_TRUE(fails_with(
      diffcoll_fused_norm(reinterpret_cast<diffcoll_fused_norm_workspace_t*>(comm), &xd, &rd,
                          &wd, 1e-6f, &yd, &rd, nullptr, nullptr),
      DIFFCOLL_ERR_INVALID_HANDLE, "not a live"));
  DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(nullptr));
}

TEST_F(OneRank, DestroyedCommunicator) {
  DC_ASSERT_OK(diffcoll_comm_destroy(comm));
  comm = nullptr;
  EXPECT_TRUE(fails_with(call(), DIFFCOLL_ERR_INVALID_HANDLE, "destroy the workspace first"));
}

// Ranks that ask for different limits all fail, naming the rank.
TEST(FusedNormErrors, LimitsDifferAcrossRanks) {
  dct::run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    EXPECT_TRUE(fails_with(
        diffcoll_fused_norm_workspace_create(comm, rank == 0 ? 8 : 16, 64, DIFFCOLL_BFLOAT16, &ws),
        DIFFCOLL_ERR_MISMATCH, "rank 1 asked for (16 tokens"));
    EXPECT_EQ(ws, nullptr);
  });
}

// With DIFFCOLL_CHECK (config.check), ranks that call with different
// arguments all fail before any data moves.
TEST(FusedNormErrors, CheckModeCatchesDifferentEps) {
  dct::run_ranks(
      2,
      [&](int rank, diffcoll_comm_t* comm) {
        diffcoll_fused_norm_workspace_t* ws = nullptr;
        DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(comm, 4, 64, DIFFCOLL_FLOAT32, &ws));
        Rows x(DIFFCOLL_FLOAT32, 4, 64), y(DIFFCOLL_FLOAT32, 4, 64);
        diffcoll_tensor_t xd = x.desc(), yd = y.desc();
        const float eps = rank == 0 ? 1e-6f : 1e-5f;
        EXPECT_TRUE(fails_with(diffcoll_fused_norm(ws, &xd, nullptr, nullptr, eps, &yd, nullptr,
                                                   nullptr, nullptr),
                               DIFFCOLL_ERR_MISMATCH, "rank 1 called fused_norm"));
        DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(ws));
      },
      10000, /*check=*/1);
}

TEST(FusedNormErrors, ApiTable) {
  const diffcoll_api_t* api = nullptr;
  DC_ASSERT_OK(diffcoll_get_api(DIFFCOLL_API_VERSION_1, &api));
  ASSERT_TRUE(DIFFCOLL_API_HAS(api, diffcoll_fused_norm));
  EXPECT_EQ(api->diffcoll_fused_norm_workspace_create, &diffcoll_fused_norm_workspace_create);
  EXPECT_EQ(api->diffcoll_fused_norm_workspace_destroy, &diffcoll_fused_norm_workspace_destroy);
  EXPECT_EQ(api->diffcoll_fused_norm, &diffcoll_fused_norm);
}

}  // namespace
