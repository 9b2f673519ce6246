// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
// Ranks of the multi-rank GPU tests as processes, on any number of GPUs.
//
// Rank r runs on GPU r % gpus. With at least as many GPUs as ranks that is
// one rank per GPU. With fewer (the shared-GPU mode, e.g. 4 ranks on one
// GPU) NCCL would refuse two ranks of one communicator on one GPU of one
// host ("Duplicate GPU detected"), so every rank process gets its own NCCL
// host identity and NCCL joins the ranks through its socket transport over
// loopback: the topology of multi-node jobs and of GPUs without peer access.
// Correct results count there; timings do not.
//
// Nothing here initialises CUDA in the calling process: a parent that forks
// rank processes must not hold a CUDA context.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace gpu_ranks {

// The number of NVIDIA GPUs, read once from nvidia-smi (not from CUDA).
inline int gpu_count() {
  static const int count = [] {
    FILE* p = popen("nvidia-smi -L 2>/dev/null | grep -c '^GPU'", "r");
    if (!p) return 0;
    int n = 0;
    if (fscanf(p, "%d", &n) != 1) n = 0;
    pclose(p);
    return n;
  }();
  return count;
}

// The GPU of rank `rank`.
inline int rank_device(int rank) { return gpu_count() > 0 ? rank % gpu_count() : 0; }

// Whether `ranks` ranks have to share GPUs.
inline bool shares_gpus(int ranks) { return ranks > gpu_count(); }

// The environment of rank `rank` of `ranks`: its rank, size and device, and
// in the shared-GPU mode its own NCCL host on loopback.
inline std::vector<std::string> rank_environment(int rank, int ranks) {
  std::vector<std::string> vars = {"DIFFCOLL_TEST_RANK=" + std::to_string(rank),
                                   "DIFFCOLL_TEST_SIZE=" + std::to_string(ranks),
                                   "DIFFCOLL_TEST_DEVICE=" + std::to_string(rank_device(rank))};
  if (shares_gpus(ranks)) {
    vars.push_back("NCCL_HOSTID=diffcoll-rank-" + std::to_string(rank));
    vars.push_back("NCCL_SOCKET_IFNAME=lo");
    vars.push_back("NCCL_IB_DISABLE=1");
  }
  return vars;
}

// In a rank process: the device its parent chose (0 when run by hand).
inline int test_device() {
  const char* d = std::getenv("DIFFCOLL_TEST_DEVICE");
  return d ? std::atoi(d) : 0;
}

// A fresh directory for a file:// rendezvous store.
inline std::string fresh_store_dir() {
  char dir[] = "/tmp/diffcoll-gpu-XXXXXX";
  if (!mkdtemp(dir)) return "/tmp";
  return dir;
}

// Waits for `children` (pid per rank) for at most `timeout`; kills and
// reports the ones still running then, and reports every rank that failed.
inline void wait_for_ranks(std::vector<pid_t> children, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t running = children.size();
  while (running > 0) {
    for (size_t r = 0; r < children.size(); ++r) {
      if (children[r] <= 0) continue;
      int status = 0;
      const pid_t done = waitpid(children[r], &status, WNOHANG);
      if (done == 0) continue;
      EXPECT_TRUE(done == children[r] && WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "rank " << r << " failed ("
          << (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                  : "exit " + std::to_string(WEXITSTATUS(status)))
          << ")";
      children[r] = 0;
      --running;
    }
    if (running == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (size_t r = 0; r < children.size(); ++r) {
        if (children[r] <= 0) continue;
        kill(children[r], SIGKILL);
        waitpid(children[r], nullptr, 0);
        ADD_FAILURE() << "rank " << r << " did not finish within " << timeout.count() << " s";
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Runs fn(rank) in `ranks` forked processes of this test, each with
// rank_environment(rank, ranks) set, and expects each to pass. A rank process
// exits 1 when fn recorded a failure (gtest prints it there).
inline void run_forked_ranks(int ranks, const std::function<void(int)>& fn,
                             std::chrono::seconds timeout = std::chrono::seconds(240)) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> children;
  for (int r = 0; r < ranks; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a parent that gave up
      for (const std::string& v : rank_environment(r, ranks)) {
        const size_t eq = v.find('=');
        setenv(v.substr(0, eq).c_str(), v.substr(eq + 1).c_str(), 1);
      }
      const testing::TestResult& result =
          *testing::UnitTest::GetInstance()->current_test_info()->result();
      const int before = result.total_part_count();
      fn(r);
      bool failed = false;
      for (int i = before; i < result.total_part_count(); ++i)
        failed = failed || result.GetTestPartResult(i).failed();
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(failed ? 1 : 0);
    }
    ASSERT_GT(pid, 0) << "fork failed";
    children.push_back(pid);
  }
  wait_for_ranks(children, timeout);
}

}  // namespace gpu_ranks
