// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Ranks as processes: the parent forks P children (before creating any
// diffcoll object), each joins a world through a file store in a fresh
// directory, runs the checks and reports through its exit code.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "test_support.h"

namespace {

using dct::Layout;
using dct::Shape;
using dct::Strided;

// What a child does; returns the number of failed checks.
using ChildFn = std::function<int(int rank, int size, diffcoll_comm_t* comm)>;

int child_main(const std::string& rendezvous, int rank, int size, const ChildFn& fn) {
  diffcoll_config_t cfg = dct::test_config(20000);
  cfg.host = "127.0.0.1";  // hermetic: do not depend on what the host name resolves to
  diffcoll_comm_t* comm = nullptr;
  diffcoll_status_t st = diffcoll_comm_create(rendezvous.c_str(), rank, size, &cfg, &comm);
  if (st != DIFFCOLL_SUCCESS) {
    std::fprintf(stderr, "rank %d: create: %s: %s\n", rank, diffcoll_status_string(st),
                 diffcoll_last_error());
    return 100;
  }
  int failures = fn(rank, size, comm);
  // Nobody leaves before everyone is done (see Lifecycle tests).
  if ((st = diffcoll_barrier(comm, nullptr)) != DIFFCOLL_SUCCESS) {
    std::fprintf(stderr, "rank %d: final barrier: %s\n", rank, diffcoll_last_error());
    ++failures;
  }
  if ((st = diffcoll_comm_destroy(comm)) != DIFFCOLL_SUCCESS) {
    std::fprintf(stderr, "rank %d: destroy: %s\n", rank, diffcoll_last_error());
    ++failures;
  }
  return failures;
}

// Forks `size` ranks and waits for them with a deadline; a rank that is still
// running at the deadline is killed.
void run_processes(int size, const ChildFn& fn, int deadline_s = 90) {
  char dir_template[] = "/tmp/diffcoll-proc-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string rendezvous = "file://" + dir;
  std::fflush(nullptr);
  std::vector<pid_t> children;
  for (int r = 0; r < size; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      int failures = child_main(rendezvous, r, size, fn);
      std::fflush(nullptr);
      _exit(failures > 100 ? 100 : failures);
    }
    if (pid < 0) {
      ADD_FAILURE() << "fork failed";
      break;
    }
    children.push_back(pid);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(deadline_s);
  std::vector<bool> done(children.size(), false);
  size_t remaining = children.size();
  while (remaining > 0 && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < children.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      pid_t got = waitpid(children[i], &status, WNOHANG);
      if (got == 0) continue;
      done[i] = true;
      --remaining;
      if (got < 0) {
        ADD_FAILURE() << "waitpid failed for rank " << i;
      } else if (WIFSIGNALED(status)) {
        ADD_FAILURE() << "rank " << i << " died of signal " << WTERMSIG(status);
      } else if (WEXITSTATUS(status) != 0) {
        ADD_FAILURE() << "rank " << i << " reported " << WEXITSTATUS(status)
                      << " failed checks (see its stderr above)";
      }
    }
    if (remaining > 0) usleep(20 * 1000);
  }
  for (size_t i = 0; i < children.size(); ++i) {
    if (done[i]) continue;
    kill(children[i], SIGKILL);
    waitpid(children[i], nullptr, 0);
    ADD_FAILURE() << "rank " << i << " did not finish within " << deadline_s << " s; killed";
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// Failure counting for children (no gtest there).
struct Checker {
  int rank;
  int failures = 0;
  void ok(diffcoll_status_t st, const char* what) {
    if (st != DIFFCOLL_SUCCESS) {
      std::fprintf(stderr, "rank %d: %s: %s: %s\n", rank, what, diffcoll_status_string(st),
                   diffcoll_last_error());
      ++failures;
    }
  }
  void same(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
    std::string diff = dct::compare(got, want);
    if (!diff.empty()) {
      std::fprintf(stderr, "rank %d: %s: %s\n", rank, what, diff.c_str());
      ++failures;
    }
  }
  void expect(bool cond, const char* what) {
    if (!cond) {
      std::fprintf(stderr, "rank %d: %s\n", rank, what);
      ++failures;
    }
  }
};

constexpr int kBf16 = DIFFCOLL_BFLOAT16;

int bf16_checks(int r, int p, diffcoll_comm_t* comm) {
  Checker c{r};
  const Shape shape = {4, 6, 5};
  const int64_t n = dct::numel(shape);

  // all_reduce, a dense transposed view (no packing) and a gapped slice.
  for (Layout layout : {Layout::kTransposed, Layout::kGapped}) {
    Strided t(kBf16, shape, layout);
    t.fill(dct::random_values(r, 1, n, kBf16));
    diffcoll_tensor_t d = t.desc();
    c.ok(diffcoll_comm_reset_stats(comm), "reset_stats");
    c.ok(diffcoll_all_reduce(comm, &d, DIFFCOLL_SUM, 0, nullptr), "all_reduce");
    std::vector<double> want(n, 0.0);
    for (int q = 0; q < p; ++q) {
      std::vector<double> v = dct::random_values(q, 1, n, kBf16);
      for (int64_t i = 0; i < n; ++i) want[i] += v[i];
    }
    c.same(t.read(), want, layout == Layout::kGapped ? "all_reduce gapped" : "all_reduce transposed");
    c.expect(t.gap_bytes_changed() == 0, "all_reduce wrote into the gaps");
    diffcoll_stats_t s = DIFFCOLL_STATS_INIT;
    c.ok(diffcoll_comm_get_stats(comm, &s), "get_stats");
    if (layout == Layout::kTransposed)
      c.expect(s.bytes_packed == 0 && s.bytes_unpacked == 0, "a transposed all_reduce packed");
    else
      c.expect(s.bytes_packed == t.nbytes() && s.bytes_unpacked == t.nbytes(),
               "a gapped all_reduce did not pack exactly once");
  }

  // all_gather along axis 1: transposed input into a gapped output.
  {
    Strided in(kBf16, shape, Layout::kTransposed);
    Shape out_shape = shape;
    out_shape[1] *= p;
    Strided out(kBf16, out_shape, Layout::kGapped);
    in.fill(dct::random_values(r, 2, n, kBf16, -100, 100));
    diffcoll_tensor_t di = in.desc(), dout = out.desc();
    c.ok(diffcoll_all_gather(comm, &di, &dout, 1, nullptr), "all_gather");
    std::vector<double> want(dct::numel(out_shape));
    for (int64_t i = 0; i < dct::numel(out_shape); ++i) {
      std::vector<int64_t> idx = dct::unflatten(i, out_shape);
      const int q = static_cast<int>(idx[1] / shape[1]);
      idx[1] %= shape[1];
      want[i] = dct::random_values(q, 2, n, kBf16, -100, 100)[dct::flatten(idx, shape)];
    }
    c.same(out.read(), want, "all_gather");
    c.expect(out.gap_bytes_changed() == 0, "all_gather wrote into the gaps");
  }

  // all_to_all: scatter along 0, gather along 2; gapped in, transposed out.
  {
    const Shape in_shape = {static_cast<int64_t>(2 * p), 3, 5};
    Shape block = in_shape;
    block[0] /= p;
    Shape out_shape = block;
    out_shape[2] *= p;
    const int64_t n_in = dct::numel(in_shape);
    Strided in(kBf16, in_shape, Layout::kGapped), out(kBf16, out_shape, Layout::kTransposed);
    in.fill(dct::random_values(r, 3, n_in, kBf16, -100, 100));
    diffcoll_tensor_t di = in.desc(), dout = out.desc();
    c.ok(diffcoll_all_to_all(comm, &di, &dout, 0, 2, nullptr), "all_to_all");
    std::vector<double> want(dct::numel(out_shape));
    for (int64_t i = 0; i < dct::numel(out_shape); ++i) {
      std::vector<int64_t> idx = dct::unflatten(i, out_shape);
      const int q = static_cast<int>(idx[2] / block[2]);
      idx[2] %= block[2];
      idx[0] += r * block[0];
      want[i] = dct::random_values(q, 3, n_in, kBf16, -100, 100)[dct::flatten(idx, in_shape)];
    }
    c.same(out.read(), want, "all_to_all");
  }

  // reduce_scatter along axis 2 (max), gapped in, contiguous out.
  {
    Shape in_shape = shape;
    in_shape[2] *= p;
    const int64_t n_in = dct::numel(in_shape);
    Strided in(kBf16, in_shape, Layout::kGapped), out(kBf16, shape, Layout::kContiguous);
    in.fill(dct::random_values(r, 4, n_in, kBf16, -100, 100));
    diffcoll_tensor_t di = in.desc(), dout = out.desc();
    c.ok(diffcoll_reduce_scatter(comm, &di, &dout, 2, DIFFCOLL_MAX, 0, nullptr), "reduce_scatter");
    std::vector<double> want(n, -1e9);
    for (int q = 0; q < p; ++q) {
      std::vector<double> v = dct::random_values(q, 4, n_in, kBf16, -100, 100);
      for (int64_t i = 0; i < n; ++i) {
        std::vector<int64_t> idx = dct::unflatten(i, shape);
        idx[2] += r * shape[2];
        want[i] = std::max(want[i], v[dct::flatten(idx, in_shape)]);
      }
    }
    c.same(out.read(), want, "reduce_scatter");
  }

  // send/recv ring in a group: transposed out to the right, into a gapped
  // view from the left; plus a blocking chain.
  {
    const int right = (r + 1) % p, left = (r - 1 + p) % p;
    Strided out(kBf16, shape, Layout::kTransposed), in(kBf16, shape, Layout::kGapped);
    out.fill(dct::random_values(r, 5, n, kBf16, -100, 100));
    diffcoll_tensor_t ds = out.desc(), dr = in.desc();
    c.ok(diffcoll_group_start(comm), "group_start");
    c.ok(diffcoll_send(comm, &ds, right, nullptr), "send");
    c.ok(diffcoll_recv(comm, &dr, left, nullptr), "recv");
    c.ok(diffcoll_group_end(comm), "group_end");
    c.same(in.read(), dct::random_values(left, 5, n, kBf16, -100, 100), "grouped ring");
    c.expect(in.gap_bytes_changed() == 0, "recv wrote into the gaps");

    Strided in2(kBf16, shape, Layout::kChannelsLast);
    diffcoll_tensor_t dr2 = in2.desc();
    if (r == 0) {
      c.ok(diffcoll_send(comm, &ds, right, nullptr), "chain send");
      c.ok(diffcoll_recv(comm, &dr2, left, nullptr), "chain recv");
    } else {
      c.ok(diffcoll_recv(comm, &dr2, left, nullptr), "chain recv");
      c.ok(diffcoll_send(comm, &ds, right, nullptr), "chain send");
    }
    c.same(in2.read(), dct::random_values(left, 5, n, kBf16, -100, 100), "blocking ring");
  }

  // broadcast from the last rank into a flipped view.
  {
    Strided t(kBf16, shape, Layout::kFlipped);
    t.fill(dct::random_values(r, 6, n, kBf16, -100, 100));
    diffcoll_tensor_t d = t.desc();
    c.ok(diffcoll_broadcast(comm, &d, p - 1, nullptr), "broadcast");
    c.same(t.read(), dct::random_values(p - 1, 6, n, kBf16, -100, 100), "broadcast");
  }
  return c.failures;
}

TEST(Processes, FourRanksBf16Collectives) { run_processes(4, bf16_checks); }

TEST(Processes, TwoRanksBf16Collectives) { run_processes(2, bf16_checks); }

// A process world split into two groups by parity.
TEST(Processes, SplitAcrossProcesses) {
  run_processes(4, [](int r, int, diffcoll_comm_t* world) {
    Checker c{r};
    diffcoll_comm_t* half = nullptr;
    c.ok(diffcoll_comm_split(world, r % 2, r, &half), "split");
    if (!half) return c.failures + 1;
    int64_t x = r;
    diffcoll_tensor_t d{};
    d.data = &x;
    d.dtype = DIFFCOLL_INT64;
    d.device_type = DIFFCOLL_DEVICE_CPU;
    c.ok(diffcoll_all_reduce(half, &d, DIFFCOLL_SUM, 0, nullptr), "all_reduce");
    c.expect(x == (r % 2 == 0 ? 0 + 2 : 1 + 3), "split all_reduce");
    c.ok(diffcoll_barrier(half, nullptr), "barrier");
    c.ok(diffcoll_comm_destroy(half), "destroy");
    return c.failures;
  });
}

}  // namespace
