// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// USP meshes through the public API, ranks as threads: for several degree
// combinations of 1..8 ranks, every group a rank gets holds exactly the ranks
// that xDiT's RankGenerator ("tp-sp-pp-cfg-dp", tp = pp = 1) and yunchang's
// set_seq_parallel_pg(use_ulysses_low=True) put together, in their order,
// and works (a sum over it). The expected groups are enumerated here the way
// those libraries build them, not from diffcoll's coordinate formula.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "../halo/halo_support.h"

namespace {

using halo_test::run_ranks;
using Groups = std::vector<std::vector<int>>;

struct Degrees {
  int u, r, c, d;
  int size() const { return u * r * c * d; }
  std::string str() const {
    return "ulysses " + std::to_string(u) + ", ring " + std::to_string(r) + ", cfg " +
           std::to_string(c) + ", data " + std::to_string(d);
  }
};

std::vector<int> range(int begin, int end, int step = 1) {
  std::vector<int> v;
  for (int i = begin; i < end; i += step) v.push_back(i);
  return v;
}

// yunchang: inside each block of sp = u * r consecutive ranks, Ulysses groups
// are runs of u consecutive ranks and ring groups take every u-th rank.
Groups yunchang_ulysses(const Degrees& g) {
  const int sp = g.u * g.r;
  Groups out;
  for (int offset = 0; offset < g.size(); offset += sp)
    for (int i = 0; i < g.r; ++i) out.push_back(range(i * g.u + offset, (i + 1) * g.u + offset));
  return out;
}

Groups yunchang_ring(const Degrees& g) {
  const int sp = g.u * g.r;
  Groups out;
  for (int offset = 0; offset < g.size(); offset += sp)
    for (int i = 0; i < g.u; ++i) out.push_back(range(i + offset, sp + offset, g.u));
  return out;
}

// xDiT's RankGenerator with the order tp-sp-pp-cfg-dp, tp = pp = 1: sp is the
// fastest-varying index, then cfg, then dp.
Groups xdit_sp(const Degrees& g) {
  const int sp = g.u * g.r;
  Groups out;
  for (int block = 0; block < g.c * g.d; ++block)
    out.push_back(range(block * sp, (block + 1) * sp));
  return out;
}

Groups xdit_cfg(const Degrees& g) {
  const int sp = g.u * g.r;
  Groups out;
  for (int dp = 0; dp < g.d; ++dp)
    for (int s = 0; s < sp; ++s) {
      std::vector<int> group;
      for (int c = 0; c < g.c; ++c) group.push_back(s + sp * c + sp * g.c * dp);
      out.push_back(group);
    }
  return out;
}

Groups xdit_dp(const Degrees& g) {
  const int sp = g.u * g.r;
  Groups out;
  for (int c = 0; c < g.c; ++c)
    for (int s = 0; s < sp; ++s) {
      std::vector<int> group;
      for (int dp = 0; dp < g.d; ++dp) group.push_back(s + sp * c + sp * g.c * dp);
      out.push_back(group);
    }
  return out;
}

// `comm` is the group of `groups` that holds `rank`, in that order, and a
// sum over it adds up its members.
void expect_group(diffcoll_comm_t* comm, const Groups& groups, int rank, const char* what) {
  SCOPED_TRACE(std::string(what) + " group of rank " + std::to_string(rank));
  ASSERT_NE(comm, nullptr);
  const std::vector<int>* mine = nullptr;
  for (const auto& group : groups)
    for (int member : group)
      if (member == rank) mine = &group;
  ASSERT_NE(mine, nullptr) << "no expected group holds the rank";
  int32_t size = -1, local = -1;
  ASSERT_EQ(diffcoll_comm_size(comm, &size), DIFFCOLL_SUCCESS);
  ASSERT_EQ(diffcoll_comm_rank(comm, &local), DIFFCOLL_SUCCESS);
  ASSERT_EQ(size, static_cast<int32_t>(mine->size()));
  int64_t expected_sum = 0;
  for (int32_t i = 0; i < size; ++i) {
    int32_t global = -1;
    ASSERT_EQ(diffcoll_comm_global_rank(comm, i, &global), DIFFCOLL_SUCCESS);
    EXPECT_EQ(global, (*mine)[i]) << "local rank " << i;
    if (global == rank) EXPECT_EQ(local, i);
    expected_sum += (*mine)[i];
  }
  int64_t value = rank;
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = &value;
  t.dtype = DIFFCOLL_INT64;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = 1;
  t.shape[0] = 1;
  t.strides[0] = 1;
  ASSERT_EQ(diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 1.0, nullptr), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  EXPECT_EQ(value, expected_sum);
}

class UspMesh : public ::testing::TestWithParam<Degrees> {};

TEST_P(UspMesh, GroupsMatchXditAndYunchang) {
  const Degrees g = GetParam();
  run_ranks(g.size(), [&](int rank, diffcoll_comm_t* world) {
    diffcoll_usp_degrees_t degrees = DIFFCOLL_USP_DEGREES_INIT;
    degrees.ulysses = g.u;
    degrees.ring = g.r;
    degrees.cfg = g.c;
    degrees.data = g.d;
    diffcoll_usp_mesh_t mesh = DIFFCOLL_USP_MESH_INIT;
    ASSERT_EQ(diffcoll_usp_mesh_create(world, &degrees, &mesh), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    expect_group(mesh.ulysses, yunchang_ulysses(g), rank, "ulysses");
    expect_group(mesh.ring, yunchang_ring(g), rank, "ring");
    expect_group(mesh.sp, xdit_sp(g), rank, "sp");
    expect_group(mesh.cfg, xdit_cfg(g), rank, "cfg");
    expect_group(mesh.data, xdit_dp(g), rank, "data");
    EXPECT_EQ(diffcoll_usp_mesh_destroy(&mesh), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    EXPECT_EQ(mesh.ulysses, nullptr);
    EXPECT_EQ(mesh.data, nullptr);
  });
}

INSTANTIATE_TEST_SUITE_P(
    Degrees, UspMesh,
    ::testing::Values(Degrees{1, 1, 1, 1}, Degrees{2, 1, 1, 1}, Degrees{1, 2, 1, 1},
                      Degrees{1, 1, 2, 1}, Degrees{1, 1, 1, 2}, Degrees{2, 2, 1, 1},
                      Degrees{3, 1, 2, 1}, Degrees{3, 2, 1, 1}, Degrees{2, 2, 2, 1},
                      Degrees{4, 2, 1, 1}, Degrees{2, 1, 2, 2}, Degrees{1, 2, 2, 2},
                      Degrees{2, 2, 1, 2}, Degrees{8, 1, 1, 1}, Degrees{1, 8, 1, 1}),
    [](const ::testing::TestParamInfo<Degrees>& info) {
      const Degrees& g = info.param;
      return "u" + std::to_string(g.u) + "r" + std::to_string(g.r) + "c" + std::to_string(g.c) +
             "d" + std::to_string(g.d);
    });

TEST(UspMeshErrors, BadDegreesAreRefusedBeforeAnyCommunication) {
  run_ranks(4, [&](int, diffcoll_comm_t* world) {
    diffcoll_usp_degrees_t degrees = DIFFCOLL_USP_DEGREES_INIT;
    diffcoll_usp_mesh_t mesh = DIFFCOLL_USP_MESH_INIT;
    degrees.ulysses = 2;  // 2 x 1 x 1 x 1 != 4
    EXPECT_EQ(diffcoll_usp_mesh_create(world, &degrees, &mesh), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find("must equal the communicator's size 4"),
              std::string::npos)
        << diffcoll_last_error();
    EXPECT_EQ(mesh.ulysses, nullptr);
    degrees.ring = 0;
    EXPECT_EQ(diffcoll_usp_mesh_create(world, &degrees, &mesh), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find(">= 1"), std::string::npos);
    degrees = DIFFCOLL_USP_DEGREES_INIT;
    degrees.cfg = 4;
    EXPECT_EQ(diffcoll_usp_mesh_create(world, nullptr, &mesh), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(diffcoll_usp_mesh_create(world, &degrees, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(diffcoll_usp_mesh_create(nullptr, &degrees, &mesh), DIFFCOLL_ERR_INVALID_HANDLE);
    diffcoll_usp_mesh_t old = DIFFCOLL_USP_MESH_INIT;
    old.struct_size = sizeof(size_t);
    EXPECT_EQ(diffcoll_usp_mesh_create(world, &degrees, &old), DIFFCOLL_ERR_VERSION);
    // The world still works after the refusals: a valid mesh of CFG groups.
    ASSERT_EQ(diffcoll_usp_mesh_create(world, &degrees, &mesh), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    int32_t size = 0;
    EXPECT_EQ(diffcoll_comm_size(mesh.cfg, &size), DIFFCOLL_SUCCESS);
    EXPECT_EQ(size, 4);
    EXPECT_EQ(diffcoll_usp_mesh_destroy(&mesh), DIFFCOLL_SUCCESS);
    EXPECT_EQ(diffcoll_usp_mesh_destroy(nullptr), DIFFCOLL_SUCCESS);
  });
}

}  // namespace
