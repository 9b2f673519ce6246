// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The Redis rendezvous store: ranks as threads and as processes meet at a
// Redis server the CTest fixture started on loopback (DIFFCOLL_TEST_REDIS).
#include <diffcoll/diffcoll.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

// A fresh key prefix per world: Redis keeps keys across runs.
std::string fresh_store() {
  static std::atomic<int> counter{0};
  const char* address = std::getenv("DIFFCOLL_TEST_REDIS");
  return std::string("redis://") + (address ? address : "127.0.0.1:16399") + "/t" +
         std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" +
         std::to_string(counter++);
}

// Sum of 1..size on every rank, through a world made at `store`; 0 if fine.
int all_reduce_rank_sum(diffcoll_comm_t* comm, int size) {
  int32_t rank;
  if (diffcoll_comm_rank(comm, &rank)) return 1;
  float value[3] = {rank + 1.0f, 2.0f * (rank + 1), 0.0f};
  diffcoll_tensor_t t = {value, DIFFCOLL_FLOAT32, DIFFCOLL_DEVICE_CPU, 0, 1, {3}, {1}};
  if (diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 1.0, nullptr)) return 2;
  const float expected = size * (size + 1) / 2.0f;
  return value[0] == expected && value[1] == 2 * expected && value[2] == 0 ? 0 : 3;
}

TEST(RedisStore, ThreadsFormAWorldAndGroups) {
  const int size = 3;
  const std::string store = fresh_store();
  std::vector<int> results(size, -1);
  std::vector<std::thread> ranks;
  for (int r = 0; r < size; ++r) {
    ranks.emplace_back([&, r] {
      diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
      config.timeout_ms = 10000;
      config.host = "127.0.0.1";
      diffcoll_comm_t* world = nullptr;
      if (diffcoll_comm_create(store.c_str(), r, size, &config, &world)) {
        ADD_FAILURE() << "rank " << r << ": " << diffcoll_last_error();
        return;
      }
      int result = all_reduce_rank_sum(world, size);
      diffcoll_comm_t* pair = nullptr;
      if (!result && diffcoll_comm_split(world, r == 2 ? DIFFCOLL_SPLIT_NOCOLOR : 0, r, &pair))
        result = 10;
      if (!result && pair) result = all_reduce_rank_sum(pair, 2);
      diffcoll_comm_destroy(pair);
      diffcoll_comm_destroy(world);
      results[r] = result;
    });
  }
  for (auto& t : ranks) t.join();
  for (int r = 0; r < size; ++r) EXPECT_EQ(results[r], 0) << "rank " << r;
}

TEST(RedisStore, ProcessesCreateFromTorchrunStyleEnvironment) {
  const int size = 4;
  const std::string store = fresh_store();
  std::vector<pid_t> children;
  for (int r = 0; r < size; ++r) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // child: nothing of diffcoll exists yet in this process
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(size).c_str(), 1);
      setenv("DIFFCOLL_STORE", store.c_str(), 1);
      setenv("DIFFCOLL_HOST", "127.0.0.1", 1);
      diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
      config.timeout_ms = 15000;
      diffcoll_comm_t* world = nullptr;
      if (diffcoll_comm_create_from_env(&config, &world)) _exit(20);
      int result = all_reduce_rank_sum(world, size);
      diffcoll_comm_destroy(world);
      _exit(result);
    }
    children.push_back(pid);
  }
  for (int r = 0; r < size; ++r) {
    int status = 0;
    waitpid(children[r], &status, 0);
    EXPECT_TRUE(WIFEXITED(status)) << "rank " << r;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "rank " << r;
  }
}

TEST(RedisStore, MissingEnvironmentIsAClearError) {
  unsetenv("DIFFCOLL_STORE");
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  diffcoll_comm_t* world = nullptr;
  EXPECT_EQ(diffcoll_comm_create_from_env(nullptr, &world), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(diffcoll_last_error()).find("DIFFCOLL_STORE"), std::string::npos);
  EXPECT_EQ(world, nullptr);
}

TEST(RedisStore, UnreachableServerIsASystemError) {
  diffcoll_comm_t* world = nullptr;
  EXPECT_EQ(diffcoll_comm_create("redis://127.0.0.1:1/none", 0, 1, nullptr, &world),
            DIFFCOLL_ERR_SYSTEM);
  EXPECT_NE(std::string(diffcoll_last_error()).find("Redis"), std::string::npos)
      << diffcoll_last_error();
}

}  // namespace
