// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll VAE example: spatially parallel decoding of a latent.
//
// The decoder of vae_decoder.h (conv -> GroupNorm -> SiLU -> conv residual
// blocks and nearest 2x upsamplings) runs whole on one rank and split over
// the ranks: each rank decodes its slab of the latent, with
// diffcoll_halo_exchange filling every convolution's halo from the
// neighbouring slabs and diffcoll_group_norm normalising with statistics of
// the whole activation. Every rank compares its slab of the output with the
// same window of the whole output and the program prints the worst
// difference (seams included) and the timings.
//
//   diffcoll_vae_example [--ranks N | --grid RxC] [--video] [--batch B]
//                        [--frames T] [--height H] [--width W] [--channels C]
//
// 2-D: latent [B, 4, H, W], split along H (and W on a grid). --video: latent
// [B, 4, T, H, W], causal along T, split along T (and H on a grid). Ranks run
// as threads of this process (local:// rendezvous); with torchrun-style
// variables (RANK, WORLD_SIZE, DIFFCOLL_STORE=file:///dir) and --grid RxC
// with R * C = WORLD_SIZE, it runs as one rank of a multi-process job.
#include <diffcoll/diffcoll.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "example_support.h"
#include "vae_decoder.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct Options {
  int rows = 4, cols = 1;
  vae::Config config;
  int64_t batch = 1, frames = 9, height = 24, width = 24;
};

// Times what the split decoder spends talking to its neighbours.
class TimedNeighbours : public vae::Neighbours {
 public:
  explicit TimedNeighbours(vae::Neighbours& inner) : inner_(inner) {}
  vae::Act pad(const vae::Act& x) override {
    const auto t = Clock::now();
    vae::Act p = inner_.pad(x);
    halo_ms += ms_since(t);
    return p;
  }
  void group_norm(vae::Act& x, const vae::Norm& n) override {
    const auto t = Clock::now();
    inner_.group_norm(x, n);
    norm_ms += ms_since(t);
  }
  double halo_ms = 0, norm_ms = 0;

 private:
  vae::Neighbours& inner_;
};

double all_max(diffcoll_comm_t* comm, double v) {
  diffcoll_tensor_t t = {&v, DIFFCOLL_FLOAT64, DIFFCOLL_DEVICE_CPU, 0, 0, {0}, {0}};
  CHECK(diffcoll_all_reduce(comm, &t, DIFFCOLL_MAX, 1.0, nullptr));
  return v;
}

// One rank: decode its slab; `whole` is the whole decoder's output (computed
// here if null) and `whole_ms` the time it took.
int run_rank(diffcoll_comm_t* comm, const Options& o, const vae::Act* whole, double whole_ms) {
  int32_t rank, size;
  CHECK(diffcoll_comm_rank(comm, &rank));
  CHECK(diffcoll_comm_size(comm, &size));
  const vae::Decoder decoder(o.config);
  const vae::Act z = vae::make_latent(o.config, o.batch, o.frames, o.height, o.width);
  vae::Act computed;
  if (!whole) {
    vae::WholeNeighbours plain;
    const auto t = Clock::now();
    computed = decoder.decode(z, plain);
    whole_ms = ms_since(t);
    whole = &computed;
  }

  // My slab of the latent: grid rows split axis 2, grid cols axis 3.
  std::vector<int64_t> start(z.shape.size(), 0), extent = z.shape;
  const int coord[2] = {rank / o.cols, rank % o.cols}, parts[2] = {o.rows, o.cols};
  for (int a = 0; a < 2; ++a)
    CHECK(diffcoll_split_extent(z.shape[2 + a], parts[a], coord[a], &start[2 + a],
                                &extent[2 + a]));
  const vae::Act slab = vae::window(z, start, extent);

  vae::SplitNeighbours split(comm, o.config.video, o.rows, o.cols);
  TimedNeighbours timed(split);
  CHECK(diffcoll_barrier(comm, nullptr));
  const auto t = Clock::now();
  const vae::Act out = decoder.decode(slab, timed);
  const double split_ms = ms_since(t);

  // The same window of the whole output (H and W were upsampled).
  const int64_t up = int64_t{1} << o.config.stages;
  std::vector<int64_t> out_start = start, out_extent = extent;
  out_extent[1] = o.config.out_channels;
  for (size_t d = 2; d < start.size(); ++d)
    if (!o.config.video || d >= 3) {
      out_start[d] *= up;
      out_extent[d] *= up;
    }
  const vae::Act expected = vae::window(*whole, out_start, out_extent);
  double worst = 0;
  for (int64_t i = 0; i < out.numel(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(out.v[i]) - expected.v[i]) /
                                std::max(1.0, std::abs(static_cast<double>(expected.v[i]))));

  worst = all_max(comm, worst);
  const double slowest = all_max(comm, split_ms), halo = all_max(comm, timed.halo_ms),
               norm = all_max(comm, timed.norm_ms);
  const bool ok = worst <= 2e-5;
  if (rank == 0) {
    std::printf("latent %s%s -> output %s, %d ranks as a %dx%d grid\n",
                o.config.video ? "[B,C,T,H,W] " : "[B,C,H,W] ",
                vae::shape_str(z.shape).c_str(), vae::shape_str(whole->shape).c_str(), size,
                o.rows, o.cols);
    std::printf("whole decode on one rank     %9.2f ms\n", whole_ms);
    std::printf("split decode (slowest rank)  %9.2f ms  (halo padding + exchange %.2f ms, "
                "distributed GroupNorm %.2f ms)\n",
                slowest, halo, norm);
    std::printf("max |split - whole| / max(1, |whole|) = %.3g  %s\n", worst,
                ok ? "OK" : "MISMATCH");
  }
  return ok ? 0 : 1;
}

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--ranks" && has) {
      o->rows = std::atoi(argv[++i]);
      o->cols = 1;
    } else if (a == "--grid" && has) {
      if (std::sscanf(argv[++i], "%dx%d", &o->rows, &o->cols) != 2) return false;
    } else if (a == "--video") {
      o->config.video = true;
    } else if (a == "--batch" && has) {
      o->batch = std::atoll(argv[++i]);
    } else if (a == "--frames" && has) {
      o->frames = std::atoll(argv[++i]);
    } else if (a == "--height" && has) {
      o->height = std::atoll(argv[++i]);
    } else if (a == "--width" && has) {
      o->width = std::atoll(argv[++i]);
    } else if (a == "--channels" && has) {
      o->config.channels = std::atoll(argv[++i]);
    } else {
      return false;
    }
  }
  return o->rows >= 1 && o->cols >= 1 && o->batch >= 1 && o->config.channels % o->config.groups == 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: %s [--ranks N | --grid RxC] [--video] [--batch B] [--frames T] "
                 "[--height H] [--width W] [--channels C (a multiple of 8)]\n",
                 argv[0]);
    return 2;
  }
  if (std::getenv("DIFFCOLL_STORE")) {  // one rank of a multi-process job
    diffcoll_comm_t* comm;
    CHECK(diffcoll_comm_create_from_env(nullptr, &comm));
    const int rc = run_rank(comm, o, nullptr, 0);
    CHECK(diffcoll_barrier(comm, nullptr));
    CHECK(diffcoll_comm_destroy(comm));
    return rc;
  }
  // Threads: the whole decode once, shared by every rank's check.
  const vae::Decoder decoder(o.config);
  vae::WholeNeighbours plain;
  const auto t = Clock::now();
  const vae::Act whole =
      decoder.decode(vae::make_latent(o.config, o.batch, o.frames, o.height, o.width), plain);
  const double whole_ms = ms_since(t);
  const int ranks = o.rows * o.cols;
  const std::string rendezvous = "local://vae-example";
  std::vector<std::thread> threads;
  std::vector<int> result(ranks, 0);
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      diffcoll_comm_t* comm;
      CHECK(diffcoll_comm_create(rendezvous.c_str(), r, ranks, nullptr, &comm));
      result[r] = run_rank(comm, o, &whole, whole_ms);
      CHECK(diffcoll_barrier(comm, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
    });
  for (auto& th : threads) th.join();
  for (int rc : result)
    if (rc) return rc;
  return 0;
}
