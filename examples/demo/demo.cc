// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll demo: ranks as processes, on the CUDA backend where there are GPUs
// (and diffcoll was built with CUDA: one rank per GPU by default; with more
// ranks than GPUs, rank r on GPU r % gpus, each rank its own NCCL host joined
// over loopback sockets), else 4 on the host backend, run every collective, a CFG-parallel combine, a halo exchange and a distributed
// GroupNorm on a bf16 video latent [2,16,21,90,160] in three layouts
// (contiguous, transposed = dense, sliced = with gaps), the Ulysses
// all-to-all of q, k, v [1,378,12,64] in those layouts, a parallel VAE decode
// (examples/vae/vae_decoder.h), a ring-attention exchange, a USP mesh and a
// fused all-reduce + residual + RMSNorm on bf16 rows [128, 5120], check each
// result against a single-process reference, and print a table. (The VAE
// decode's convolutions run on the host in both cases.)
//
//   diffcoll_demo [--ranks N] [--store file:///DIR] [--host]
#include <diffcoll/diffcoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "example_support.h"
#include "latent.h"
#include "vae_decoder.h"

namespace {

const std::vector<int64_t> kShape = {2, 16, 21, 90, 160};  // [B, C, F, H, W]
// Attention activations [B, S, heads, head dim]: 378 tokens split unevenly
// over 4 ranks (95, 95, 94, 94).
const std::vector<int64_t> kAttn = {1, 378, 12, 64};


// Index arithmetic along one axis of a row-major shape: an index is
// (outer, a, inner) with `a` the coordinate on the axis.
struct Axis {
  int64_t extent, inner;
  Axis(const std::vector<int64_t>& shape, int axis) : extent(shape[axis]), inner(1) {
    for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  }
  int64_t outer(int64_t i) const { return i / (extent * inner); }
  int64_t at(int64_t i) const { return (i / inner) % extent; }
  int64_t rest(int64_t i) const { return i % inner; }
  int64_t compose(int64_t outer, int64_t a, int64_t rest) const {
    return (outer * extent + a) * inner + rest;
  }
};

std::vector<int64_t> scaled(std::vector<int64_t> shape, int axis, int64_t mul, int64_t div) {
  shape[axis] = shape[axis] * mul / div;
  return shape;
}

struct Row {
  std::string op;
  Layout layout;
  uint64_t bytes;
  double ms;
  uint64_t packed;
  bool ok;
};

class Demo {
 public:
  Demo(diffcoll_comm_t* comm, int rank, int size, int gpus)
      : comm_(comm), rank_(rank), size_(size), on_gpus_(gpus > 0), gpus_(gpus) {}

  void run_all() {
    for (Layout layout : {Layout::kContiguous, Layout::kTransposed, Layout::kSliced}) {
      all_reduce(layout);
      broadcast(layout);
      reduce(layout);
      all_gather(layout);
      reduce_scatter(layout);
      all_to_all(layout);
      gather(layout);
      scatter(layout);
      send_recv(layout);
      cfg_combine(layout);
      halo_exchange(layout);
      group_norm(layout);
      ulysses(layout);
    }
    vae_decode();
    fused_norm();  // whole rows: contiguous only
    ring_exchange();
    usp_mesh();
    ulysses_gqa(DIFFCOLL_WIRE_NATIVE);
    ulysses_gqa(DIFFCOLL_WIRE_FP8_E4M3);
  }

  // Reduces every rank's verdicts and timings; true if all rows passed.
  bool report() {
    bool all_ok = true;
    if (rank_ == 0) {
      const unsigned v = diffcoll_version();
      const std::string backend =
          !on_gpus_ ? "host backend"
          : size_ <= gpus_
              ? "CUDA backend (NCCL), one GPU per rank"
              : "CUDA backend (NCCL), " + std::to_string(size_) + " ranks sharing " +
                    std::to_string(gpus_) + " GPU(s) over sockets: times are not meaningful";
      std::printf("\ndiffcoll %u.%u.%u demo: %d ranks (processes), %s, bf16 latent [2,16,21,90,160]\n",
                  v / 10000, v / 100 % 100, v % 100, size_, backend.c_str());
      std::printf("%-15s %-11s %12s %10s %14s  %s\n", "operation", "layout", "bytes", "time ms",
                  "bytes packed", "OK");
    }
    for (Row& row : rows_) {
      double ms = row.ms;
      int32_t ok = row.ok ? 1 : 0;
      int64_t packed = static_cast<int64_t>(row.packed);
      reduce_scalar(&ms, DIFFCOLL_FLOAT64, DIFFCOLL_MAX);
      reduce_scalar(&ok, DIFFCOLL_INT32, DIFFCOLL_MIN);
      reduce_scalar(&packed, DIFFCOLL_INT64, DIFFCOLL_MAX);
      all_ok = all_ok && ok;
      if (rank_ == 0)
        std::printf("%-15s %-11s %12llu %10.2f %14lld  %s\n", row.op.c_str(),
                    layout_name(row.layout), static_cast<unsigned long long>(row.bytes), ms,
                    static_cast<long long>(packed), ok ? "OK" : "FAILED");
    }
    if (rank_ == 0)
      std::printf("time: slowest rank; bytes packed: most on any rank (0 = used in place)\n%s\n",
                  all_ok ? "all results match the single-process reference" : "MISMATCH");
    return all_ok;
  }

 private:
  template <typename T>
  void reduce_scalar(T* value, int32_t dtype, int32_t op) {
    diffcoll_tensor_t t = {value, dtype, DIFFCOLL_DEVICE_CPU, 0, 0, {0}, {0}};
    CHECK(diffcoll_all_reduce(comm_, &t, op, 1.0, nullptr));
  }

  // Times `call` (all ranks start together) and records the row.
  template <typename Call>
  void measure(const char* op, Layout layout, uint64_t bytes, Call call,
               const std::function<bool()>& verify) {
    CHECK(diffcoll_barrier(comm_, nullptr));
    CHECK(diffcoll_comm_reset_stats(comm_));
    auto start = std::chrono::steady_clock::now();
    call();
    wait_for_latent_device();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    diffcoll_stats_t stats = DIFFCOLL_STATS_INIT;
    CHECK(diffcoll_comm_get_stats(comm_, &stats));
    rows_.push_back({op, layout, bytes, ms, stats.bytes_packed + stats.bytes_unpacked, verify()});
  }

  Latent mine(const std::vector<int64_t>& shape, Layout layout, int as_rank) {
    Latent t(shape, layout);
    t.fill([as_rank](int64_t i) { return input_value(as_rank, i); });
    return t;
  }

  void all_reduce(Layout layout) {
    Latent t = mine(kShape, layout, rank_);
    measure("all_reduce", layout, t.bytes(),
            [&] { CHECK(diffcoll_all_reduce(comm_, &t.desc(), DIFFCOLL_SUM, 1.0, nullptr)); },
            [&] {
              return t.first_mismatch([&](int64_t i) {
                float sum = 0;
                for (int r = 0; r < size_; ++r) sum += input_value(r, i);
                return sum;
              }) < 0;
            });
  }

  void broadcast(Layout layout) {
    const int root = size_ - 1;
    Latent t = mine(kShape, layout, rank_);
    measure("broadcast", layout, t.bytes(),
            [&] { CHECK(diffcoll_broadcast(comm_, &t.desc(), root, nullptr)); },
            [&] { return t.first_mismatch([&](int64_t i) { return input_value(root, i); }) < 0; });
  }

  void reduce(Layout layout) {
    const int root = 1 % size_;
    Latent t = mine(kShape, layout, rank_);
    measure("reduce(max)", layout, t.bytes(),
            [&] { CHECK(diffcoll_reduce(comm_, &t.desc(), DIFFCOLL_MAX, 1.0, root, nullptr)); },
            [&] {
              return t.first_mismatch([&](int64_t i) {
                if (rank_ != root) return input_value(rank_, i);  // left unchanged
                float best = input_value(0, i);
                for (int r = 1; r < size_; ++r) best = std::max(best, input_value(r, i));
                return best;
              }) < 0;
            });
  }

  void all_gather(Layout layout) {
    const int axis = 2;  // frames
    Latent in = mine(kShape, layout, rank_);
    Latent out(scaled(kShape, axis, size_, 1), layout);
    Axis a(scaled(kShape, axis, size_, 1), axis), src(kShape, axis);
    measure("all_gather", layout, out.bytes(),
            [&] { CHECK(diffcoll_all_gather(comm_, &in.desc(), &out.desc(), axis, nullptr)); },
            [&] {
              return out.first_mismatch([&](int64_t i) {
                int64_t f = a.at(i);
                return input_value(static_cast<int>(f / kShape[axis]),
                                   src.compose(a.outer(i), f % kShape[axis], a.rest(i)));
              }) < 0;
            });
  }

  void reduce_scatter(Layout layout) {
    const int axis = 1;  // channels
    Latent in = mine(kShape, layout, rank_);
    Latent out(scaled(kShape, axis, 1, size_), layout);
    Axis a(scaled(kShape, axis, 1, size_), axis), src(kShape, axis);
    measure("reduce_scatter", layout, in.bytes(),
            [&] {
              CHECK(diffcoll_reduce_scatter(comm_, &in.desc(), &out.desc(), axis, DIFFCOLL_SUM,
                                            1.0, nullptr));
            },
            [&] {
              return out.first_mismatch([&](int64_t i) {
                int64_t j = src.compose(a.outer(i), rank_ * a.extent + a.at(i), a.rest(i));
                float sum = 0;
                for (int r = 0; r < size_; ++r) sum += input_value(r, j);
                return sum;
              }) < 0;
            });
  }

  void all_to_all(Layout layout) {
    // Ulysses-style: scatter channels, gather frames.
    const int scatter_axis = 1, gather_axis = 2;
    Latent in = mine(kShape, layout, rank_);
    std::vector<int64_t> out_shape = scaled(scaled(kShape, scatter_axis, 1, size_), gather_axis, size_, 1);
    Latent out(out_shape, layout);
    measure("all_to_all", layout, in.bytes(),
            [&] {
              CHECK(diffcoll_all_to_all(comm_, &in.desc(), &out.desc(), scatter_axis, gather_axis,
                                        nullptr));
            },
            [&] {
              return out.first_mismatch([&](int64_t i) {
                std::vector<int64_t> c = unravel(i, out_shape);
                int from = static_cast<int>(c[gather_axis] / kShape[gather_axis]);
                c[gather_axis] %= kShape[gather_axis];
                c[scatter_axis] += rank_ * out_shape[scatter_axis];
                return input_value(from, ravel(c, kShape));
              }) < 0;
            });
  }

  void gather(Layout layout) {
    const int axis = 0, root = 0;
    Latent in = mine(kShape, layout, rank_);
    Latent out(rank_ == root ? scaled(kShape, axis, size_, 1) : kShape, layout);
    Axis a(scaled(kShape, axis, size_, 1), axis), src(kShape, axis);
    measure("gather", layout, out.bytes(),
            [&] {
              CHECK(diffcoll_gather(comm_, &in.desc(), rank_ == root ? &out.desc() : nullptr, axis,
                                    root, nullptr));
            },
            [&] {
              if (rank_ != root) return true;
              return out.first_mismatch([&](int64_t i) {
                int64_t b = a.at(i);
                return input_value(static_cast<int>(b / kShape[axis]),
                                   src.compose(0, b % kShape[axis], a.rest(i)));
              }) < 0;
            });
  }

  void scatter(Layout layout) {
    const int axis = 0, root = size_ - 1;
    const std::vector<int64_t> whole = scaled(kShape, axis, size_, 1);
    Latent in = mine(rank_ == root ? whole : kShape, layout, rank_);
    Latent out(kShape, layout);
    Axis a(kShape, axis), src(whole, axis);
    measure("scatter", layout, out.bytes(),
            [&] {
              CHECK(diffcoll_scatter(comm_, rank_ == root ? &in.desc() : nullptr, &out.desc(), axis,
                                     root, nullptr));
            },
            [&] {
              return out.first_mismatch([&](int64_t i) {
                return input_value(root, src.compose(0, rank_ * kShape[axis] + a.at(i), a.rest(i)));
              }) < 0;
            });
  }

  void send_recv(Layout layout) {
    const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
    Latent out = mine(kShape, layout, rank_);
    Latent in(kShape, layout);
    measure("send/recv ring", layout, out.bytes(),
            [&] {
              CHECK(diffcoll_group_start(comm_));
              CHECK(diffcoll_send(comm_, &out.desc(), next, nullptr));
              CHECK(diffcoll_recv(comm_, &in.desc(), prev, nullptr));
              CHECK(diffcoll_group_end(comm_));
            },
            [&] { return in.first_mismatch([&](int64_t i) { return input_value(prev, i); }) < 0; });
  }

  // Standard CFG (g = 5, guidance rescale 0.7) over every rank of the world:
  // the ranks the dispatch gives no branch contribute nothing and run no
  // forward. Checked bit for bit against the serial combine of both
  // predictions on this process, which the PARALLEL order makes identical.
  void cfg_combine(Layout layout) {
    diffcoll_cfg_branch_t branches[2] = {{"cond", DIFFCOLL_CFG_COND}, {"uncond", DIFFCOLL_CFG_UNCOND}};
    diffcoll_cfg_term_t guidance = {5.0, 0, 1};  // uncond + 5 * (cond - uncond)
    diffcoll_cfg_options_t options = DIFFCOLL_CFG_OPTIONS_INIT;
    options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
    options.rescale_phi = 0.7;
    diffcoll_cfg_policy_t* policy = nullptr;
    CHECK(diffcoll_cfg_policy_create(branches, 2, 1, &guidance, 1, &options, &policy));
    int32_t held[2], count = 0;
    CHECK(diffcoll_cfg_dispatch(policy, size_, rank_, held, 2, &count));
    std::vector<Latent> preds;  // this rank's predictions: branch b is "rank" 100 + b
    std::vector<diffcoll_tensor_t> descs;
    for (int k = 0; k < count; ++k) preds.push_back(mine(kShape, layout, 100 + held[k]));
    for (const Latent& p : preds) descs.push_back(p.desc());
    Latent out(kShape, layout);
    measure("cfg_combine", layout, out.bytes(),
            [&] {
              CHECK(diffcoll_cfg_combine_parallel(comm_, policy, descs.data(), count, &out.desc(),
                                                  0, nullptr));
            },
            [&] {
              Latent cond = mine(kShape, Layout::kContiguous, 100);
              Latent uncond = mine(kShape, Layout::kContiguous, 101);
              Latent serial(kShape, Layout::kContiguous);
              diffcoll_tensor_t both[2] = {cond.desc(), uncond.desc()};
              CHECK(diffcoll_cfg_combine_serial(policy, both, 2, &serial.desc(), 0, nullptr));
              const std::vector<float> reference = serial.values();
              return out.first_mismatch([&](int64_t i) { return reference[i]; }) < 0;
            });
    CHECK(diffcoll_cfg_policy_destroy(policy));
  }

  // The latent split along H over a chain of all ranks, one halo row each
  // side, zeros past the ends: every rank's padded slab must equal the rows
  // of the whole latent padded once.
  void halo_exchange(Layout layout) {
    const int h_axis = 3;
    int64_t start = 0, rows = 0;
    CHECK(diffcoll_split_extent(kShape[h_axis], size_, rank_, &start, &rows));
    std::vector<int64_t> padded_shape = kShape;
    padded_shape[h_axis] = rows + 2;
    Axis padded_h(padded_shape, h_axis), whole_h(kShape, h_axis);
    auto whole_value = [&](int64_t i) {  // whole latent zero-padded, at padded index i
      const int64_t h = start + padded_h.at(i) - 1;
      if (h < 0 || h >= kShape[h_axis]) return 0.0f;
      return input_value(0, whole_h.compose(padded_h.outer(i), h, padded_h.rest(i)));
    };
    Latent padded(padded_shape, layout);
    padded.fill([&](int64_t i) {  // interior from the whole latent, halo rows poisoned
      const int64_t h = padded_h.at(i);
      return h == 0 || h == rows + 1 ? 99.0f : whole_value(i);
    });
    diffcoll_halo_config_t config = DIFFCOLL_HALO_CONFIG_INIT;  // H, 1 row each side, zeros
    diffcoll_halo_plan_t* plan = nullptr;
    CHECK(diffcoll_halo_plan_create(comm_, &config, &plan));
    measure("halo_exchange", layout, padded.bytes(),
            [&] { CHECK(diffcoll_halo_exchange(plan, &padded.desc(), nullptr)); },
            [&] { return padded.first_mismatch(whole_value) < 0; });
    CHECK(diffcoll_halo_plan_destroy(plan));
  }

  // The latent split along H over a chain of all ranks, normalised in place
  // (8 groups, affine) with statistics of the whole latent: every element
  // must equal GroupNorm of the whole latent (computed here in double) to
  // within bf16 rounding.
  void group_norm(Layout layout) {
    const int h_axis = 3, groups = 8;
    const int64_t C = kShape[1], cpg = C / groups;
    int64_t start = 0, rows = 0;
    CHECK(diffcoll_split_extent(kShape[h_axis], size_, rank_, &start, &rows));
    std::vector<int64_t> slab_shape = kShape;
    slab_shape[h_axis] = rows;
    Axis slab_h(slab_shape, h_axis), whole_h(kShape, h_axis);
    auto whole_index = [&](int64_t i) {
      return whole_h.compose(slab_h.outer(i), start + slab_h.at(i), slab_h.rest(i));
    };
    Latent slab(slab_shape, layout);
    slab.fill([&](int64_t i) { return input_value(0, whole_index(i)); });
    // Affine parameters exact in bf16, where the latent lives.
    std::vector<float> weight(C), bias(C);
    for (int64_t c = 0; c < C; ++c) {
      weight[c] = 1.0f + 0.125f * static_cast<float>(c % 4);
      bias[c] = 0.25f * static_cast<float>(c % 3) - 0.25f;
    }
    Latent w({C}, Layout::kContiguous), b({C}, Layout::kContiguous);
    w.fill([&](int64_t c) { return weight[c]; });
    b.fill([&](int64_t c) { return bias[c]; });
    measure("group_norm", layout, slab.bytes(),
            [&] {
              CHECK(diffcoll_group_norm(comm_, &slab.desc(), nullptr, &w.desc(), &b.desc(), groups, 1e-6,
                                        nullptr));
            },
            [&] {
              // Whole-latent statistics per (sample, group), in double.
              const int64_t per_sample = C * (kShape[2] * kShape[3] * kShape[4]);
              const int64_t per_channel = per_sample / C;
              std::vector<double> mean(kShape[0] * groups), rstd(kShape[0] * groups);
              for (int64_t g = 0; g < kShape[0] * groups; ++g) {
                const int64_t begin = g * cpg * per_channel, end = begin + cpg * per_channel;
                double sum = 0, sq = 0;
                for (int64_t i = begin; i < end; ++i) sum += input_value(0, i);
                mean[g] = sum / static_cast<double>(end - begin);
                for (int64_t i = begin; i < end; ++i)
                  sq += (input_value(0, i) - mean[g]) * (input_value(0, i) - mean[g]);
                rstd[g] = 1 / std::sqrt(sq / static_cast<double>(end - begin) + 1e-6);
              }
              const std::vector<float> got = slab.values();
              for (int64_t i = 0; i < static_cast<int64_t>(got.size()); ++i) {
                const int64_t wi = whole_index(i), c = (wi / per_channel) % C;
                const int64_t g = (wi / per_sample) * groups + c / cpg;
                const double want =
                    (input_value(0, wi) - mean[g]) * rstd[g] * weight[c] + bias[c];
                if (!(std::fabs(got[i] - want) <= 1e-2 * std::fabs(want) + 1e-2)) return false;
              }
              return true;
            });
  }

  // A latent decoded by the small VAE decoder of examples/vae, split along H
  // over a chain of all ranks (halo exchange before every convolution,
  // distributed GroupNorm): every rank's slab of the output must equal the
  // same window of the whole decoder's output (f32).
  void vae_decode() {
    vae::Config config;
    const vae::Decoder decoder(config);
    const vae::Act z = vae::make_latent(config, 1, 1, 32, 40);
    std::vector<int64_t> start(4, 0), extent = z.shape;
    CHECK(diffcoll_split_extent(z.shape[2], size_, rank_, &start[2], &extent[2]));
    const vae::Act slab = vae::window(z, start, extent);
    vae::SplitNeighbours split(comm_, false, size_, 1);
    vae::Act out;
    measure("vae_decode", Layout::kContiguous, static_cast<uint64_t>(slab.numel()) * 4,
            [&] { out = decoder.decode(slab, split); },
            [&] {
              vae::WholeNeighbours plain;
              const vae::Act whole = decoder.decode(z, plain);
              const int64_t up = int64_t{1} << config.stages;
              const vae::Act want = vae::window(
                  whole, {0, 0, start[2] * up, 0},
                  {1, config.out_channels, extent[2] * up, z.shape[3] * up});
              if (want.shape != out.shape) return false;
              for (int64_t i = 0; i < out.numel(); ++i)
                if (!(std::fabs(out.v[i] - want.v[i]) <= 2e-5 * std::fmax(1.0, std::fabs(want.v[i]))))
                  return false;
              return true;
            });
  }

  // The end of a tensor-parallel block, 128 tokens of hidden size 5120:
  // residual_out = allreduce(x) + residual (in place over the residual),
  // y = rmsnorm(residual_out) * weight. Checked bit for bit against the same
  // float arithmetic on every rank's data in this process.
  void fused_norm() {
    const int64_t tokens = 128, hidden = 5120;
    const std::vector<int64_t> shape = {tokens, hidden};
    const float eps = 1e-6f;
    Latent x = mine(shape, Layout::kContiguous, rank_);
    Latent residual = mine(shape, Layout::kContiguous, 200);
    Latent weight = mine({hidden}, Layout::kContiguous, 300);
    Latent y(shape, Layout::kContiguous);
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    CHECK(diffcoll_fused_norm_workspace_create(comm_, tokens, hidden, DIFFCOLL_BFLOAT16, &ws));
    measure("fused_norm", Layout::kContiguous, x.bytes(),
            [&] {
              CHECK(diffcoll_fused_norm(ws, &x.desc(), &residual.desc(), &weight.desc(), eps,
                                        &y.desc(), &residual.desc(), nullptr, nullptr));
            },
            [&] {
              std::vector<float> sums(static_cast<size_t>(tokens * hidden)), expected(sums.size());
              for (int64_t t = 0; t < tokens; ++t) {
                float squares = 0;
                for (int64_t j = 0; j < hidden; ++j) {
                  const int64_t i = t * hidden + j;
                  float v = input_value(200, i);  // quarter-integers: every sum is exact
                  for (int r = 0; r < size_; ++r) v += input_value(r, i);
                  sums[i] = v;
                  squares += v * v;
                }
                const float scale = 1.0f / std::sqrt(squares / static_cast<float>(hidden) + eps);
                for (int64_t j = 0; j < hidden; ++j)
                  expected[t * hidden + j] =
                      from_bf16(to_bf16(sums[t * hidden + j] * scale * input_value(300, j)));
              }
              return residual.first_mismatch([&](int64_t i) { return sums[i]; }) < 0 &&
                     y.first_mismatch([&](int64_t i) { return expected[i]; }) < 0;
            });
    CHECK(diffcoll_fused_norm_workspace_destroy(ws));
  }

  // q, k, v of the whole attention input: tensor t's value at a whole index.
  static float qkv_value(int t, const std::vector<int64_t>& whole_coords) {
    return input_value(200 + t, ravel(whole_coords, kAttn));
  }

  // q, k and v sequence-sharded -> head-sharded in one call (rank r gets
  // heads split_extent(12, P, r) of every token), then back.
  void ulysses(Layout layout) {
    int64_t s0 = 0, s_len = 0, h0 = 0, h_len = 0;
    CHECK(diffcoll_split_extent(kAttn[1], size_, rank_, &s0, &s_len));
    CHECK(diffcoll_split_extent(kAttn[2], size_, rank_, &h0, &h_len));
    const std::vector<int64_t> seq_shard = {1, s_len, kAttn[2], kAttn[3]};
    const std::vector<int64_t> head_shard = {1, kAttn[1], h_len, kAttn[3]};
    std::vector<Latent> in, out, back;
    std::vector<diffcoll_tensor_t> din, dout, dback;
    for (int t = 0; t < 3; ++t) {
      in.emplace_back(seq_shard, layout);
      in.back().fill([&](int64_t i) {
        std::vector<int64_t> c = unravel(i, seq_shard);
        c[1] += s0;
        return qkv_value(t, c);
      });
      out.emplace_back(head_shard, layout);
      back.emplace_back(seq_shard, layout);
    }
    for (int t = 0; t < 3; ++t) {
      din.push_back(in[t].desc());
      dout.push_back(out[t].desc());
      dback.push_back(back[t].desc());
    }
    uint64_t bytes = 0;
    for (const Latent& t : in) bytes += t.bytes();
    measure("ulysses(q,k,v)", layout, bytes,
            [&] {
              CHECK(diffcoll_ulysses_all_to_all(comm_, din.data(), dout.data(), 3, 1, 2,
                                                DIFFCOLL_ULYSSES_SEQ_TO_HEAD, nullptr));
            },
            [&] {
              bool ok = true;
              for (int t = 0; t < 3; ++t)
                ok = ok && out[t].first_mismatch([&](int64_t i) {
                  std::vector<int64_t> c = unravel(i, head_shard);
                  c[2] += h0;
                  return qkv_value(t, c);
                }) < 0;
              return ok;
            });
    measure("ulysses back", layout, bytes,
            [&] {
              CHECK(diffcoll_ulysses_all_to_all(comm_, dout.data(), dback.data(), 3, 1, 2,
                                                DIFFCOLL_ULYSSES_HEAD_TO_SEQ, nullptr));
            },
            [&] {
              bool ok = true;
              for (int t = 0; t < 3; ++t) {
                const std::vector<float> sent = in[t].values();
                ok = ok && back[t].first_mismatch([&](int64_t i) { return sent[i]; }) < 0;
              }
              return ok;
            });
  }

  // Grouped-query attention: q with 12 heads, k and v with 3 (4 q heads per
  // k/v head), sequence-sharded -> head-sharded in one call that sends each
  // k/v head only to the ranks whose q heads attend it (rank r's k/v output
  // holds diffcoll_ulysses_kv_heads(12, 3, P, r) heads; no copy of k/v up
  // to 12 heads). Natively checked bit for bit against the whole tensors;
  // with FP8 e4m3 on the wire, each element that crossed between ranks
  // within the documented bound 2^-4 |x| + 2^-10 amax/448 + bf16 rounding
  // (amax: the largest magnitude of its block of 32 tokens of one head),
  // the rank's own tokens exactly.
  void ulysses_gqa(int32_t wire) {
    const int64_t kv_heads = 3, block = 32;
    const std::vector<int64_t> whole[3] = {kAttn, {1, kAttn[1], kv_heads, kAttn[3]},
                                           {1, kAttn[1], kv_heads, kAttn[3]}};
    int64_t s0, s_len, h0[3], h_len[3];
    CHECK(diffcoll_split_extent(kAttn[1], size_, rank_, &s0, &s_len));
    CHECK(diffcoll_split_extent(kAttn[2], size_, rank_, &h0[0], &h_len[0]));
    CHECK(diffcoll_ulysses_kv_heads(kAttn[2], kv_heads, size_, rank_, &h0[1], &h_len[1]));
    h0[2] = h0[1];
    h_len[2] = h_len[1];
    auto value = [&](int t, const std::vector<int64_t>& c) {
      return input_value(400 + t, ravel(c, whole[t]));
    };
    std::vector<Latent> in, out;
    std::vector<diffcoll_tensor_t> din, dout;
    uint64_t bytes = 0;
    for (int t = 0; t < 3; ++t) {
      in.emplace_back(std::vector<int64_t>{1, s_len, whole[t][2], kAttn[3]}, Layout::kContiguous);
      in.back().fill([&](int64_t i) {
        std::vector<int64_t> c = unravel(i, {1, s_len, whole[t][2], kAttn[3]});
        c[1] += s0;
        return value(t, c);
      });
      out.emplace_back(std::vector<int64_t>{1, kAttn[1], h_len[t], kAttn[3]}, Layout::kContiguous);
      bytes += in.back().bytes();
    }
    for (int t = 0; t < 3; ++t) {
      din.push_back(in[t].desc());
      dout.push_back(out[t].desc());
    }
    diffcoll_ulysses_options_t options = DIFFCOLL_ULYSSES_OPTIONS_INIT;
    options.query_heads = kAttn[2];
    options.wire_format = wire;
    options.scale_block = static_cast<int32_t>(block);
    // The tokens [first, end) of the rank that held token s (FP8 blocks start
    // at first).
    auto shard_of = [&](int64_t s, int64_t* first, int64_t* end) {
      for (int r = 0; r < size_; ++r) {
        int64_t length;
        CHECK(diffcoll_split_extent(kAttn[1], size_, r, first, &length));
        *end = *first + length;
        if (s < *end) return;
      }
    };
    measure(wire == DIFFCOLL_WIRE_NATIVE ? "ulysses gqa" : "ulysses gqa fp8", Layout::kContiguous,
            bytes,
            [&] {
              CHECK(diffcoll_ulysses_all_to_all_ex(comm_, din.data(), dout.data(), 3, 1, 2,
                                                   DIFFCOLL_ULYSSES_SEQ_TO_HEAD, &options,
                                                   nullptr));
            },
            [&] {
              bool ok = true;
              for (int t = 0; t < 3; ++t) {
                const std::vector<int64_t> shape = {1, kAttn[1], h_len[t], kAttn[3]};
                const std::vector<float> got = out[t].values();
                std::vector<float> amax(static_cast<size_t>(kAttn[1] * h_len[t]), -1.0f);
                for (int64_t i = 0; ok && i < static_cast<int64_t>(got.size()); ++i) {
                  std::vector<int64_t> c = unravel(i, shape);
                  c[2] += h0[t];
                  const float want = value(t, c);
                  int64_t first, end;
                  shard_of(c[1], &first, &end);
                  if (wire == DIFFCOLL_WIRE_NATIVE || first == s0) {
                    ok = got[i] == want;
                    continue;
                  }
                  const int64_t lo = first + (c[1] - first) / block * block;
                  float& a = amax[static_cast<size_t>(lo * h_len[t] + c[2] - h0[t])];
                  if (a < 0) {  // this group's largest magnitude, once
                    a = 0;
                    for (int64_t s = lo; s < std::min(lo + block, end); ++s)
                      for (int64_t d = 0; d < kAttn[3]; ++d)
                        a = std::max(a, std::fabs(value(t, {0, s, c[2], d})));
                  }
                  const float bound = std::fabs(want) / 16 + a / 448 / 1024 +
                                      std::fabs(got[i]) / 256 + 1e-6f * std::fabs(want);
                  ok = std::fabs(got[i] - want) <= bound;
                }
                ok = ok && out[t].first_mismatch([&](int64_t i) { return got[i]; }) < 0;
              }
              return ok;
            });
  }

  // Ring attention's k/v rotation over all ranks: at step s every rank holds
  // rank (r - s) mod P's block, so after P - 1 steps it has seen them all.
  void ring_exchange() {
    const std::vector<int64_t> block = {1, 96, kAttn[2], kAttn[3]};
    std::vector<Latent> halves;
    for (int i = 0; i < 4; ++i) halves.emplace_back(block, Layout::kContiguous);
    for (int t = 0; t < 2; ++t)
      halves[t].fill([&](int64_t i) { return input_value(300 + 10 * rank_ + t, i); });
    diffcoll_tensor_t half0[2] = {halves[0].desc(), halves[1].desc()};
    diffcoll_tensor_t half1[2] = {halves[2].desc(), halves[3].desc()};
    diffcoll_ring_t* ring = nullptr;
    CHECK(diffcoll_ring_create(comm_, half0, half1, 2, &ring));
    bool every_step_ok = true;
    auto holds = [&](int current, int origin) {
      bool ok = true;
      for (int t = 0; t < 2; ++t)
        ok = ok && halves[2 * current + t].first_mismatch([&](int64_t i) {
          return input_value(300 + 10 * origin + t, i);
        }) < 0;
      return ok;
    };
    measure("ring(k,v)", Layout::kContiguous, 2 * halves[0].bytes() * (size_ - 1),
            [&] {
              int32_t current = 0;
              for (int step = 0; step < size_; ++step) {
                if (step + 1 < size_) CHECK(diffcoll_ring_start(ring, nullptr));
                every_step_ok = every_step_ok && holds(current, (rank_ - step + size_) % size_);
                if (step + 1 < size_) CHECK(diffcoll_ring_wait(ring, nullptr, &current));
              }
            },
            [&] { return every_step_ok; });
    CHECK(diffcoll_ring_destroy(ring));
  }

  // A USP mesh (Ulysses 2 x ring P/2 when P is even, else Ulysses P): its
  // groups hold the ranks of xDiT's order, checked by a sum over each.
  void usp_mesh() {
    diffcoll_usp_degrees_t degrees = DIFFCOLL_USP_DEGREES_INIT;
    degrees.ulysses = size_ % 2 == 0 ? 2 : size_;
    degrees.ring = size_ / degrees.ulysses;
    diffcoll_usp_mesh_t mesh = DIFFCOLL_USP_MESH_INIT;
    const int u = rank_ % degrees.ulysses, r = rank_ / degrees.ulysses;
    int32_t ulysses_sum = rank_, ring_sum = rank_;
    measure("usp_mesh", Layout::kContiguous, 0,
            [&] {
              CHECK(diffcoll_usp_mesh_create(comm_, &degrees, &mesh));
              diffcoll_tensor_t a = {&ulysses_sum, DIFFCOLL_INT32, DIFFCOLL_DEVICE_CPU, 0, 0,
                                     {0}, {0}};
              diffcoll_tensor_t b = {&ring_sum, DIFFCOLL_INT32, DIFFCOLL_DEVICE_CPU, 0, 0,
                                     {0}, {0}};
              CHECK(diffcoll_all_reduce(mesh.ulysses, &a, DIFFCOLL_SUM, 1.0, nullptr));
              CHECK(diffcoll_all_reduce(mesh.ring, &b, DIFFCOLL_SUM, 1.0, nullptr));
            },
            [&] {
              // Ulysses: ranks U*r .. U*r + U-1; ring: ranks u, u + U, ...
              int32_t want_u = 0, want_r = 0;
              for (int i = 0; i < degrees.ulysses; ++i) want_u += degrees.ulysses * r + i;
              for (int i = 0; i < degrees.ring; ++i) want_r += u + degrees.ulysses * i;
              return ulysses_sum == want_u && ring_sum == want_r;
            });
    CHECK(diffcoll_usp_mesh_destroy(&mesh));
  }

  diffcoll_comm_t* comm_;
  int rank_, size_;
  bool on_gpus_;
  int gpus_;
  std::vector<Row> rows_;
};

int run_rank(const std::string& store, int rank, int size, int gpus) {
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.timeout_ms = 120000;
  if (gpus > 0) {
    if (size > gpus) {
      // NCCL refuses two ranks of one communicator on one GPU of one host:
      // each rank is its own host to NCCL, joined through sockets on loopback.
      setenv("NCCL_HOSTID", ("diffcoll-demo-rank-" + std::to_string(rank)).c_str(), 1);
      setenv("NCCL_SOCKET_IFNAME", "lo", 1);
      setenv("NCCL_IB_DISABLE", "1", 1);
    }
    set_latent_device(rank % gpus);
    config.device_id = rank % gpus;
  }
  diffcoll_comm_t* comm = nullptr;
  CHECK(diffcoll_comm_create(store.c_str(), rank, size, &config, &comm));
  Demo demo(comm, rank, size, gpus);
  demo.run_all();
  bool ok = demo.report();
  CHECK(diffcoll_comm_destroy(comm));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int size = 0;
  bool host = false;
  std::string store;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--ranks") && i + 1 < argc) size = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--store") && i + 1 < argc) store = argv[++i];
    else if (!std::strcmp(argv[i], "--host")) host = true;
    else size = -1;
  }
  const int gpus = host ? 0 : count_latent_devices();
  if (size == 0) size = gpus > 0 ? gpus : 4;
  if (size < 1) {
    std::fprintf(stderr, "usage: %s [--ranks N] [--store file:///DIR] [--host]\n", argv[0]);
    return 2;
  }
  char dir[] = "/tmp/diffcoll-demo-XXXXXX";
  if (store.empty()) {
    if (!mkdtemp(dir)) return 2;
    store = std::string("file://") + dir;
  }
  // One process per rank, forked before any diffcoll object exists.
  std::vector<pid_t> children;
  for (int r = 0; r < size; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      int code = run_rank(store, r, size, gpus);
      std::fflush(stdout);  // _exit does not flush stdio
      _exit(code);
    }
    children.push_back(pid);
  }
  int failures = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  }
  if (failures) std::fprintf(stderr, "%d rank(s) failed\n", failures);
  return failures ? 1 : 0;
}
