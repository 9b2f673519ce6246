// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Soak: many mixed operations over several ranks (threads of this process on
// an in-process store), with group creations and destructions among them.
// Every operation's result is checked, and the process must end with as many
// open files and threads as it had once the world existed: a leaked socket,
// thread or communicator shows up as growth. Run under heaptrack or valgrind
// for leaks:
//
//   soak [--ranks P] [--ops N]
//   heaptrack soak --ops 100000 && heaptrack_print -l heaptrack.soak.*.zst
//   valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 soak --ops 2000
//
// Exit status 0: every result right and no growth; 1: otherwise (printed).
#include <diffcoll/diffcoll.h>

#include <dirent.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "example_support.h"

namespace {

constexpr int64_t kN = 256;  // elements per rank and block
std::atomic<bool> failed{false};

void fail(int rank, long op, const std::string& what) {
  if (!failed.exchange(true)) std::fprintf(stderr, "rank %d, op %ld: %s\n", rank, op, what.c_str());
}

int count_entries(const char* dir) {
  int n = 0;
  if (DIR* d = opendir(dir)) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

diffcoll_tensor_t f32(std::vector<float>& v) {
  return host_tensor_1d(v.data(), DIFFCOLL_FLOAT32, static_cast<int64_t>(v.size()));
}

// One rank's part of operation `op`; every rank runs the same sequence.
// Returns false (after reporting) when a call fails or a result is wrong.
bool step(diffcoll_comm_t* world, int rank, int size, long op) {
  auto ok = [&](diffcoll_status_t s, const char* call) {
    if (s != DIFFCOLL_SUCCESS) fail(rank, op, std::string(call) + ": " + diffcoll_last_error());
    return s == DIFFCOLL_SUCCESS;
  };
  auto expect = [&](bool good, const char* what) {
    if (!good) fail(rank, op, std::string("wrong result of ") + what);
    return good;
  };
  const float base = static_cast<float>(op % 64);
  std::vector<float> mine(kN, base + rank), all(kN * size), block(kN);
  diffcoll_tensor_t tm = f32(mine), ta = f32(all), tb = f32(block);
  switch (op % 8) {
    case 0: {
      if (!ok(diffcoll_all_reduce(world, &tm, DIFFCOLL_SUM, 1.0, nullptr), "all_reduce")) return false;
      return expect(mine[kN - 1] == base * size + size * (size - 1) / 2.0f, "all_reduce");
    }
    case 1: {
      const int root = static_cast<int>(op / 8 % size);
      if (!ok(diffcoll_broadcast(world, &tm, root, nullptr), "broadcast")) return false;
      return expect(mine[0] == base + root, "broadcast");
    }
    case 2: {
      if (!ok(diffcoll_all_gather(world, &tm, &ta, 0, nullptr), "all_gather")) return false;
      return expect(all[kN * (size - 1)] == base + size - 1, "all_gather");
    }
    case 3: {
      for (int q = 0; q < size; ++q)
        for (int64_t i = 0; i < kN; ++i) all[q * kN + i] = base + q;
      if (!ok(diffcoll_reduce_scatter(world, &ta, &tb, 0, DIFFCOLL_SUM, 1.0, nullptr),
              "reduce_scatter"))
        return false;
      return expect(block[0] == (base + rank) * size, "reduce_scatter");
    }
    case 4: {
      std::vector<float> out(kN * size);
      for (int q = 0; q < size; ++q)
        for (int64_t i = 0; i < kN; ++i) all[q * kN + i] = static_cast<float>(rank * size + q);
      diffcoll_tensor_t to = f32(out);
      if (!ok(diffcoll_all_to_all(world, &ta, &to, 0, 0, nullptr), "all_to_all")) return false;
      return expect(out[kN * (size - 1)] == static_cast<float>((size - 1) * size + rank),
                    "all_to_all");
    }
    case 5: {
      if (!ok(diffcoll_group_start(world), "group_start")) return false;
      ok(diffcoll_send(world, &tm, (rank + 1) % size, nullptr), "send");
      ok(diffcoll_recv(world, &tb, (rank + size - 1) % size, nullptr), "recv");
      if (!ok(diffcoll_group_end(world), "group_end")) return false;
      return expect(block[0] == base + (rank + size - 1) % size, "send/recv");
    }
    case 6: {
      if (op % 64 != 6) return ok(diffcoll_barrier(world, nullptr), "barrier");
      // Now and then a group: a split or a listed subset, used once, destroyed.
      diffcoll_comm_t* group = nullptr;
      if (op % 128 == 6) {
        if (!ok(diffcoll_comm_split(world, rank % 2, 0, &group), "comm_split")) return false;
      } else {
        std::vector<int32_t> ranks;
        for (int q = size - 1; q >= 0; q -= 2) ranks.push_back(q);  // every other rank, reversed
        if (!ok(diffcoll_comm_create_group(world, ranks.data(), static_cast<int32_t>(ranks.size()),
                                           &group),
                "comm_create_group"))
          return false;
      }
      bool good = true;
      if (group) {
        good = ok(diffcoll_all_reduce(group, &tm, DIFFCOLL_MAX, 1.0, nullptr), "group all_reduce");
        good = ok(diffcoll_comm_destroy(group), "comm_destroy") && good;
      }
      return good;
    }
    default: {
      std::vector<float> x(kN, 1.0f);
      diffcoll_tensor_t tx = f32(x);
      if (!ok(diffcoll_reduce(world, &tx, DIFFCOLL_SUM, 1.0, 0, nullptr), "reduce")) return false;
      return expect(rank != 0 || x[0] == static_cast<float>(size), "reduce");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int ranks = 4;
  long ops = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--ranks") == 0) ranks = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--ops") == 0) ops = std::atol(argv[i + 1]);
  }
  if (ranks < 2 || ops < 1) {
    std::fprintf(stderr, "usage: %s [--ranks P>=2] [--ops N>=1]\n", argv[0]);
    return 2;
  }
  std::vector<diffcoll_comm_t*> worlds(ranks, nullptr);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
      config.timeout_ms = 60000;  // generous: valgrind slows everything down
      if (diffcoll_comm_create("local://soak", r, ranks, &config, &worlds[r]) != DIFFCOLL_SUCCESS)
        fail(r, -1, std::string("comm_create: ") + diffcoll_last_error());
    });
  for (auto& t : threads) t.join();
  threads.clear();
  if (failed) return 1;
  // The world's sockets and Gloo's threads exist now; nothing may be added.
  const int files_before = count_entries("/proc/self/fd");
  const int threads_before = count_entries("/proc/self/task");
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      for (long op = 0; op < ops && !failed; ++op)
        if (!step(worlds[r], r, ranks, op)) break;
    });
  for (auto& t : threads) t.join();
  const int files_after = count_entries("/proc/self/fd");
  const int threads_after = count_entries("/proc/self/task");
  for (diffcoll_comm_t* w : worlds) diffcoll_comm_destroy(w);
  std::printf("%ld ops on %d ranks: open files %d -> %d, threads %d -> %d\n", ops, ranks,
              files_before, files_after, threads_before, threads_after);
  if (failed) return 1;
  if (files_after > files_before || threads_after > threads_before) {
    std::fprintf(stderr, "open files or threads grew\n");
    return 1;
  }
  return 0;
}
