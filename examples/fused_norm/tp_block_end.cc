// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll fused-norm example: the end of tensor-parallel transformer blocks
// on a sub-group.
//
// The world's ranks form CFG-parallel x tensor-parallel groups: a split puts
// ranks {0, 2, ...} and {1, 3, ...} in two TP groups (with one rank, one
// group of one). In every TP group, each rank holds a partial sum of the
// block's output projection (as after a row-parallel linear layer); one
// diffcoll_fused_norm per layer all-reduces it over the group, adds it to the
// residual stream in place and normalises it. The workspace is created once,
// before the layer loop, for the largest call. After the layers every rank's
// residual stream and normalised output are compared with the same layers
// computed on one rank in double precision.
//
//   diffcoll_fused_norm_example [--ranks N] [--tokens T] [--hidden H] [--layers L]
//
// The ranks run as threads of this process (local:// rendezvous).
#include <diffcoll/diffcoll.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "example_support.h"

namespace {

struct Options {
  int ranks = 4;
  int64_t tokens = 16, hidden = 1024;
  int layers = 3;
};

// What TP rank `tp_rank` of group `group` contributes at layer `layer`.
float partial(int group, int tp_rank, int layer, int64_t i) {
  return static_cast<float>((i * 7 + tp_rank * 13 + layer * 5 + group * 3) % 23 - 11) / 16.0f;
}
float weight_of(int64_t j) { return 0.5f + static_cast<float>(j % 9) / 8.0f; }
float initial_residual(int64_t i) { return static_cast<float>(i % 5) - 2.0f; }

diffcoll_tensor_t rows(float* data, int64_t tokens, int64_t hidden) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = DIFFCOLL_FLOAT32;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = 2;
  t.shape[0] = tokens;
  t.shape[1] = hidden;
  t.strides[0] = hidden;
  t.strides[1] = 1;
  return t;
}

// The layers of one TP group on one rank, in double: returns the residual
// stream and the last layer's normalised output.
void reference(const Options& o, int group, int tp_size, std::vector<double>* residual,
               std::vector<double>* y) {
  const int64_t n = o.tokens * o.hidden;
  residual->resize(n);
  y->resize(n);
  for (int64_t i = 0; i < n; ++i) (*residual)[i] = initial_residual(i);
  for (int layer = 0; layer < o.layers; ++layer) {
    for (int64_t t = 0; t < o.tokens; ++t) {
      double squares = 0;
      for (int64_t j = 0; j < o.hidden; ++j) {
        const int64_t i = t * o.hidden + j;
        for (int r = 0; r < tp_size; ++r) (*residual)[i] += partial(group, r, layer, i);
        squares += (*residual)[i] * (*residual)[i];
      }
      const double scale = 1 / std::sqrt(squares / o.hidden + 1e-6);
      for (int64_t j = 0; j < o.hidden; ++j)
        (*y)[t * o.hidden + j] = (*residual)[t * o.hidden + j] * scale * weight_of(j);
    }
  }
}

// One rank: split the world into TP groups, run the layers, check.
bool run_rank(const std::string& rendezvous, int rank, const Options& o) {
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  diffcoll_comm_t* world = nullptr;
  CHECK(diffcoll_comm_create(rendezvous.c_str(), rank, o.ranks, &config, &world));
  const int groups = o.ranks >= 2 ? 2 : 1;
  const int group = rank % groups;
  diffcoll_comm_t* tp = nullptr;
  CHECK(diffcoll_comm_split(world, group, rank, &tp));
  int32_t tp_rank = 0, tp_size = 0;
  CHECK(diffcoll_comm_rank(tp, &tp_rank));
  CHECK(diffcoll_comm_size(tp, &tp_size));

  // Set-up, once, before the hot loop (and before any CUDA graph capture).
  diffcoll_fused_norm_workspace_t* ws = nullptr;
  CHECK(diffcoll_fused_norm_workspace_create(tp, o.tokens, o.hidden, DIFFCOLL_FLOAT32, &ws));

  const int64_t n = o.tokens * o.hidden;
  std::vector<float> x(n), residual(n), y(n), weight(o.hidden);
  for (int64_t i = 0; i < n; ++i) residual[i] = initial_residual(i);
  for (int64_t j = 0; j < o.hidden; ++j) weight[j] = weight_of(j);
  diffcoll_tensor_t xd = rows(x.data(), o.tokens, o.hidden);
  diffcoll_tensor_t rd = rows(residual.data(), o.tokens, o.hidden);
  diffcoll_tensor_t yd = rows(y.data(), o.tokens, o.hidden);
  diffcoll_tensor_t wd = rows(weight.data(), 1, o.hidden);
  wd.ndim = 1;
  wd.shape[0] = o.hidden;
  wd.strides[0] = 1;
  for (int layer = 0; layer < o.layers; ++layer) {
    for (int64_t i = 0; i < n; ++i) x[i] = partial(group, tp_rank, layer, i);  // the block's output
    CHECK(diffcoll_fused_norm(ws, &xd, &rd, &wd, 1e-6f, &yd, &rd, nullptr, nullptr));
  }
  CHECK(diffcoll_fused_norm_workspace_destroy(ws));

  std::vector<double> want_residual, want_y;
  reference(o, group, tp_size, &want_residual, &want_y);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (auto [got, want] : {std::pair<double, double>{residual[i], want_residual[i]},
                             std::pair<double, double>{y[i], want_y[i]}})
      worst = std::max(worst, std::fabs(got - want) / (1 + std::fabs(want)));
  }
  const bool ok = worst < 1e-5;
  std::printf("rank %d (TP group %d, TP rank %d of %d): %d layers of [%lld, %lld]: "
              "largest error %.2g %s\n",
              rank, group, tp_rank, tp_size, o.layers, static_cast<long long>(o.tokens),
              static_cast<long long>(o.hidden), worst, ok ? "OK" : "MISMATCH");
  CHECK(diffcoll_barrier(world, nullptr));  // no rank leaves while a peer still needs it
  CHECK(diffcoll_comm_destroy(tp));
  CHECK(diffcoll_comm_destroy(world));
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--ranks")) o.ranks = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--tokens")) o.tokens = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--hidden")) o.hidden = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--layers")) o.layers = std::atoi(argv[i + 1]);
  }
  if (o.ranks < 1 || o.tokens < 1 || o.hidden < 1 || o.layers < 1) {
    std::fprintf(stderr, "usage: %s [--ranks N] [--tokens T] [--hidden H] [--layers L]\n", argv[0]);
    return 2;
  }
  const std::string rendezvous = "local://fused_norm_example." + std::to_string(getpid());
  std::vector<std::thread> threads;
  std::vector<char> ok(o.ranks, 0);
  for (int r = 0; r < o.ranks; ++r)
    threads.emplace_back([&, r] { ok[r] = run_rank(rendezvous, r, o); });
  for (auto& t : threads) t.join();
  const bool all = std::all_of(ok.begin(), ok.end(), [](char v) { return v != 0; });
  std::printf("%s\n", all ? "every rank matches the single-rank reference" : "MISMATCH");
  return all ? 0 : 1;
}
