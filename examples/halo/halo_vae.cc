// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll halo example: a spatially parallel 3x3 convolution, the building
// block of parallel VAE decoding.
//
// Each rank takes its slab of a channels-last latent [1, C, H, W] along H
// (diffcoll_split_extent: uneven slabs are fine), writes it into the interior
// of a padded buffer with one halo row above and below, lets
// diffcoll_halo_exchange fill the halo rows from its neighbours (reflect
// padding at the top and bottom of the image), convolves its padded slab, and
// the slabs of the result are gathered on rank 0 (diffcoll_gather_slabs) and
// compared with the convolution of the whole latent on one rank.
//
//   diffcoll_halo_example [--ranks N] [--height H] [--reflect|--zeros]
//
// The ranks run as threads of this process (local:// rendezvous). With
// torchrun-style variables (RANK, WORLD_SIZE, DIFFCOLL_STORE=file:///dir) it
// runs as one rank of a multi-process job instead.
#include <diffcoll/diffcoll.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "example_support.h"

namespace {

constexpr int64_t C = 8, W = 40;  // channels and width of the latent

// A channels-last (NHWC in memory) float tensor [1, C, h, W] described for diffcoll.
diffcoll_tensor_t nhwc(float* data, int64_t h) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = DIFFCOLL_FLOAT32;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = 4;
  const int64_t shape[4] = {1, C, h, W}, strides[4] = {h * W * C, 1, W * C, C};
  for (int d = 0; d < 4; ++d) {
    t.shape[d] = shape[d];
    t.strides[d] = strides[d];
  }
  return t;
}

float latent(int64_t c, int64_t y, int64_t x) {
  return std::sin(0.37f * c + 0.11f * y) + std::cos(0.05f * x * (c + 1));
}

float weight(int64_t c, int64_t dy, int64_t dx) {
  return 0.1f * ((c + 3 * dy + 7 * dx) % 5) - 0.2f;
}

// out[y, x] = sum_c sum_{dy,dx} w * in[y + dy, x + dx - 1], for `rows` output
// rows of an NHWC input that has one padded row above and below; W is padded
// with zeros here (only H is split).
void conv3x3(const float* in, int64_t rows, float* out) {
  for (int64_t y = 0; y < rows; ++y)
    for (int64_t x = 0; x < W; ++x) {
      float acc = 0;
      for (int64_t dy = 0; dy < 3; ++dy)
        for (int64_t dx = 0; dx < 3; ++dx) {
          const int64_t xx = x + dx - 1;
          if (xx < 0 || xx >= W) continue;
          for (int64_t c = 0; c < C; ++c)
            acc += weight(c, dy, dx) * in[((y + dy) * W + xx) * C + c];
        }
      out[y * W + x] = acc;  // one output channel
    }
}

// The output [1, 1, rows, W] (contiguous) described for diffcoll.
diffcoll_tensor_t image(float* data, int64_t rows) {
  diffcoll_tensor_t t = nhwc(data, rows);
  t.shape[1] = 1;
  t.strides[0] = rows * W;
  t.strides[1] = rows * W;
  t.strides[2] = W;
  t.strides[3] = 1;
  return t;
}

int run_rank(diffcoll_comm_t* comm, int64_t height, int boundary) {
  int32_t rank, size;
  CHECK(diffcoll_comm_rank(comm, &rank));
  CHECK(diffcoll_comm_size(comm, &size));

  // 1. My slab of the latent, inside a buffer with one halo row on each side.
  int64_t start, rows;
  CHECK(diffcoll_split_extent(height, size, rank, &start, &rows));
  std::vector<float> padded((rows + 2) * W * C, NAN);
  for (int64_t y = 0; y < rows; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) padded[((y + 1) * W + x) * C + c] = latent(c, start + y, x);

  // 2. The halo rows from the neighbours (channels-last rows of batch 1 are
  //    contiguous: they travel straight from and into these buffers).
  diffcoll_halo_config_t config = DIFFCOLL_HALO_CONFIG_INIT;  // H split, 1 row each side
  config.row_boundary_before = config.row_boundary_after = boundary;
  diffcoll_halo_plan_t* plan;
  CHECK(diffcoll_halo_plan_create(comm, &config, &plan));
  diffcoll_tensor_t t = nhwc(padded.data(), rows + 2);
  CHECK(diffcoll_comm_reset_stats(comm));
  CHECK(diffcoll_halo_exchange(plan, &t, nullptr));
  diffcoll_stats_t stats = DIFFCOLL_STATS_INIT;
  CHECK(diffcoll_comm_get_stats(comm, &stats));

  // 3. My rows of the convolution, then all rows on rank 0.
  std::vector<float> out(rows * W);
  conv3x3(padded.data(), rows, out.data());
  std::vector<float> whole(rank == 0 ? height * W : 0);
  diffcoll_tensor_t slab = image(out.data(), rows), all = image(whole.data(), height);
  CHECK(diffcoll_gather_slabs(comm, &slab, rank == 0 ? &all : nullptr, 2, 0, nullptr));
  std::printf("rank %d: rows %lld..%lld, halo exchange packed %llu bytes\n", rank,
              static_cast<long long>(start), static_cast<long long>(start + rows - 1),
              static_cast<unsigned long long>(stats.bytes_packed));
  CHECK(diffcoll_halo_plan_destroy(plan));
  if (rank != 0) return 0;

  // 4. The same convolution of the whole latent, padded once, on one rank.
  std::vector<float> ref_in((height + 2) * W * C);
  for (int64_t y = -1; y <= height; ++y) {
    int64_t src = y;
    if (boundary == DIFFCOLL_HALO_REFLECT) src = y < 0 ? 1 : y == height ? height - 2 : y;
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c)
        ref_in[((y + 1) * W + x) * C + c] = src < 0 || src >= height ? 0.f : latent(c, src, x);
  }
  std::vector<float> ref(height * W);
  conv3x3(ref_in.data(), height, ref.data());
  double worst = 0;
  for (int64_t i = 0; i < height * W; ++i) worst = std::fmax(worst, std::fabs(ref[i] - whole[i]));
  std::printf(
      "%d ranks, latent [1,%lld,%lld,%lld] channels-last, %s padding: max |parallel - "
      "whole| = %g\n",
      size, static_cast<long long>(C), static_cast<long long>(height), static_cast<long long>(W),
      boundary == DIFFCOLL_HALO_REFLECT ? "reflect" : "zero", worst);
  return worst == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int ranks = 4;
  int64_t height = 30;
  int boundary = DIFFCOLL_HALO_REFLECT;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ranks" && i + 1 < argc)
      ranks = std::atoi(argv[++i]);
    else if (a == "--height" && i + 1 < argc)
      height = std::atoll(argv[++i]);
    else if (a == "--zeros")
      boundary = DIFFCOLL_HALO_ZEROS;
    else if (a == "--reflect")
      boundary = DIFFCOLL_HALO_REFLECT;
    else {
      std::fprintf(stderr, "usage: %s [--ranks N] [--height H] [--reflect|--zeros]\n", argv[0]);
      return 2;
    }
  }
  if (std::getenv("DIFFCOLL_STORE")) {  // one rank of a multi-process job
    diffcoll_comm_t* comm;
    CHECK(diffcoll_comm_create_from_env(nullptr, &comm));
    const int rc = run_rank(comm, height, boundary);
    CHECK(diffcoll_barrier(comm, nullptr));
    CHECK(diffcoll_comm_destroy(comm));
    return rc;
  }
  const std::string rendezvous = "local://halo-example";
  std::vector<std::thread> threads;
  std::vector<int> result(ranks, 0);
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      diffcoll_comm_t* comm;
      CHECK(diffcoll_comm_create(rendezvous.c_str(), r, ranks, nullptr, &comm));
      result[r] = run_rank(comm, height, boundary);
      CHECK(diffcoll_barrier(comm, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
    });
  for (auto& t : threads) t.join();
  for (int rc : result)
    if (rc) return rc;
  return 0;
}
