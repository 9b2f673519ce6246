// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// diffcoll's own kernels alone, on one GPU, against the limit of memory-
// bound code: the device-to-device copy bandwidth measured in the same run
// (cudaMemcpyAsync of 256 MiB, bytes read + bytes written). Issue 16's
// one-rank, kernel-only timing mode; no communicator, no NCCL, no host path
// around the kernels (the program links the core's objects).
//
//   kernels_bench [--iters N] [--json FILE]      (--ranks is accepted and ignored)
//
// Cases (bf16):
//   pack / unpack  the latent [2,16,21,90,160] with gaps (rows of 160 in 192)
//                  and transposed (H and W swapped), and contiguous (the
//                  copy loop's own baseline); moves 2 x the latent's bytes.
//                  And cudaMemcpy of the latent's bytes, timed like them:
//                  what the limit's own copy reaches at this size.
//   group_norm     [1,512,90,160] 32 groups, contiguous and channels-last, and
//                  a video [1,256,5,90,160] contiguous and channels-last-3d,
//                  in place with an f32 affine: the whole one-rank GroupNorm
//                  (one kernel for these layouts: held in shared memory,
//                  one read, where every cluster fits at once, else the
//                  cooperative kernel, two reads), counted as issue 16
//                  counts it, the tensor read twice and written once, the
//                  moments alone (one read), and the apply with one rank's
//                  records (the multi-rank path's last step: one read, one
//                  write).
//   epilogue       the fused norm's NCCL-path epilogue on 1024 and 8192
//                  tokens x 5120, residual in place: y and residual read,
//                  residual_out and y written (4 x the rows' bytes).
// Each case is checked once against the host implementation on the same
// data, then timed: the median of 5 runs of N back-to-back calls, rotating
// over enough copies of its buffers to exceed 4 x the L2 (so the numbers are
// HBM's, like the copy's), and again on one buffer ("hot": what a tensor that
// fits in L2 sees). The table gives each case's time, its bandwidth (bytes it
// must move / time), that bandwidth over the copy's, and the median host time
// to issue one call (a row whose time is near it measures the host).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.h"
#include "core/cuda/fused_norm_epilogue.h"
#include "core/cuda/pack_cuda.h"
#include "core/error.h"
#include "core/ops/group_norm.h"
#include "core/pack.h"

namespace {

using namespace diffcoll;

constexpr DType kBf16 = DType::kBFloat16;
constexpr int kDevice = 0;

struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Buffer(size_t n) : bytes(n) { CUDA(cudaMalloc(&ptr, std::max<size_t>(n, 1))); }
  ~Buffer() { cudaFree(ptr); }
  Buffer(const Buffer&) = delete;
  char* get() const { return static_cast<char*>(ptr); }
};

// Deterministic pseudo-random 64-bit words (xorshift).
struct Random {
  uint64_t x;
  explicit Random(uint64_t seed) : x(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  Random random(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(random.next());
  return v;
}

// bf16 values in [-2, 2) + offset.
std::vector<uint16_t> random_bf16(size_t n, uint64_t seed, float offset = 0) {
  Random random(seed);
  std::vector<uint16_t> v(n);
  for (auto& e : v)
    e = float_to_bf16(offset + static_cast<float>(random.next() >> 40) /
                                   static_cast<float>(1 << 24) * 4 - 2);
  return v;
}

struct Row {
  std::string name;
  double moved;                // bytes the case must move
  double us = 0, hot_us = 0;  // per call: rotating buffers, one buffer
  double host_us = 0;          // median host time to issue one call
};

class Bench {
 public:
  Bench(int iters, cudaStream_t stream) : iters_(iters), stream_(stream) {
    cudaDeviceProp prop;
    CUDA(cudaGetDeviceProperties(&prop, kDevice));
    l2_ = static_cast<size_t>(prop.l2CacheSize);
    gpu_ = prop.name;
  }

  // Copies of a case's buffers (of `footprint` bytes each) that exceed 4 x L2.
  int sets_for(size_t footprint) const {
    return static_cast<int>(std::max<size_t>(1, (4 * l2_ + footprint - 1) / footprint));
  }

  // Median microseconds per call of run(set) over iters calls, set = call % sets.
  double time_us(const std::function<void(int)>& run, int sets) {
    cudaEvent_t start, stop;
    CUDA(cudaEventCreate(&start));
    CUDA(cudaEventCreate(&stop));
    for (int i = 0; i < std::max(3, sets); ++i) run(i % sets);
    std::vector<float> ms(5);
    for (float& m : ms) {
      CUDA(cudaEventRecord(start, stream_));
      for (int i = 0; i < iters_; ++i) run(i % sets);
      CUDA(cudaEventRecord(stop, stream_));
      CUDA(cudaEventSynchronize(stop));
      CUDA(cudaEventElapsedTime(&m, start, stop));
    }
    CUDA(cudaEventDestroy(start));
    CUDA(cudaEventDestroy(stop));
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[2] / iters_;
  }

  // Median host microseconds to issue one call of run(set), calls back to
  // back: where a row's time per call is not much above it, the row measures
  // the host, not the kernel.
  double host_us(const std::function<void(int)>& run, int sets) {
    std::vector<double> us(iters_);
    for (int i = 0; i < iters_; ++i) {
      const auto start = std::chrono::steady_clock::now();
      run(i % sets);
      us[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                  .count();
    }
    CUDA(cudaStreamSynchronize(stream_));
    std::sort(us.begin(), us.end());
    return us[iters_ / 2];
  }

  void add(const std::string& name, double moved, const std::function<void(int)>& run, int sets) {
    Row row{name, moved};
    row.us = time_us(run, sets);
    row.hot_us = time_us(run, 1);
    row.host_us = host_us(run, sets);
    rows_.push_back(row);
  }

  bool check(bool ok, const std::string& what) {
    if (!ok) {
      std::fprintf(stderr, "kernels_bench: %s: the device result differs from the host's\n",
                   what.c_str());
      failed_ = true;
    }
    return ok;
  }

  void pack_cases();
  void group_norm_cases();
  void epilogue_cases();
  int report(const std::string& json, double copy) const;

 private:
  int iters_;
  cudaStream_t stream_;
  size_t l2_ = 0;
  std::string gpu_;
  std::vector<Row> rows_;
  bool failed_ = false;
};

// ------------------------------------------------------------------ pack

TensorView latent_view(char* storage, int which) {
  // 0: contiguous, 1: rows of 160 in a buffer 192 wide, 2: H and W swapped.
  const int64_t B = 2, C = 16, T = 21, H = 90, W = 160, Wp = 192;
  TensorView v;
  v.data = storage;
  v.dtype = kBf16;
  v.device = {DeviceType::kCuda, kDevice};
  v.ndim = 5;
  const int64_t shape[3][5] = {{B, C, T, H, W}, {B, C, T, H, W}, {B, C, T, W, H}};
  const int64_t strides[3][5] = {{C * T * H * W, T * H * W, H * W, W, 1},
                                 {C * T * H * Wp, T * H * Wp, H * Wp, Wp, 1},
                                 {C * T * H * W, T * H * W, H * W, 1, W}};
  for (int d = 0; d < 5; ++d) {
    v.shape[d] = shape[which][d];
    v.strides[d] = strides[which][d];
  }
  return v;
}

void Bench::pack_cases() {
  const char* names[] = {"contiguous", "gapped", "transposed"};
  for (int which : {1, 2, 0}) {
    const TensorView shape_only = latent_view(nullptr, which);
    const size_t dense = shape_only.nbytes();
    const size_t storage = which == 1 ? dense / 160 * 192 : dense;
    const int sets = sets_for(storage + dense);
    std::vector<std::unique_ptr<Buffer>> views, denses;
    for (int s = 0; s < sets; ++s) {
      views.push_back(std::make_unique<Buffer>(storage));
      denses.push_back(std::make_unique<Buffer>(dense));
    }
    auto piece = [&](int s) { return PackPiece{latent_view(views[s]->get(), which), denses[s]->get()}; };
    // Checked: pack against pack_host, unpack into a poisoned storage against unpack_host.
    const std::vector<uint8_t> input = random_bytes(storage, 7 + which);
    CUDA(cudaMemcpy(views[0]->get(), input.data(), storage, cudaMemcpyHostToDevice));
    const PackPiece p0 = piece(0);
    pack_cuda(&p0, 1, stream_);
    std::vector<uint8_t> got(dense), want(dense);
    CUDA(cudaStreamSynchronize(stream_));
    CUDA(cudaMemcpy(got.data(), denses[0]->get(), dense, cudaMemcpyDeviceToHost));
    TensorView host_view = latent_view(reinterpret_cast<char*>(const_cast<uint8_t*>(input.data())), which);
    host_view.device = {};
    pack_host(host_view, want.data());
    check(got == want, std::string("pack ") + names[which]);
    std::vector<uint8_t> poisoned(storage, 0xAB), back(storage);
    CUDA(cudaMemcpy(views[0]->get(), poisoned.data(), storage, cudaMemcpyHostToDevice));
    unpack_cuda(&p0, 1, stream_);
    CUDA(cudaStreamSynchronize(stream_));
    CUDA(cudaMemcpy(back.data(), views[0]->get(), storage, cudaMemcpyDeviceToHost));
    TensorView poisoned_view = latent_view(reinterpret_cast<char*>(poisoned.data()), which);
    poisoned_view.device = {};
    unpack_host(want.data(), poisoned_view);
    check(back == poisoned, std::string("unpack ") + names[which]);

    add(std::string("pack ") + names[which], 2.0 * dense, [&](int s) {
      const PackPiece p = piece(s);
      pack_cuda(&p, 1, stream_);
    }, sets);
    add(std::string("unpack ") + names[which], 2.0 * dense, [&](int s) {
      const PackPiece p = piece(s);
      unpack_cuda(&p, 1, stream_);
    }, sets);
    if (which == 0)  // what the limit's own copy makes of these bytes, timed the same way
      add("cudaMemcpy of the latent", 2.0 * dense, [&](int s) {
        CUDA(cudaMemcpyAsync(denses[s]->get(), views[s]->get(), dense, cudaMemcpyDeviceToDevice,
                             stream_));
      }, sets);
  }
}

// ------------------------------------------------------------- GroupNorm

struct GnCase {
  std::string name;
  std::vector<int64_t> shape;  // [N, C, spatial...]
  bool channels_last;
};

TensorView gn_view(void* data, const GnCase& c) {
  TensorView v;
  v.data = data;
  v.dtype = kBf16;
  v.device = {DeviceType::kCuda, kDevice};
  v.ndim = static_cast<int>(c.shape.size());
  for (int d = 0; d < v.ndim; ++d) v.shape[d] = c.shape[d];
  if (!c.channels_last) {
    contiguous_strides(v.ndim, v.shape, v.strides);
    return v;
  }
  int64_t step = c.shape[1];
  v.strides[1] = 1;
  for (int d = v.ndim - 1; d >= 2; --d) {
    v.strides[d] = step;
    step *= c.shape[d];
  }
  v.strides[0] = step;
  return v;
}

void Bench::group_norm_cases() {
  const std::vector<GnCase> cases = {
      {"contiguous [1,512,90,160]", {1, 512, 90, 160}, false},
      {"channels_last [1,512,90,160]", {1, 512, 90, 160}, true},
      {"contiguous [1,256,5,90,160]", {1, 256, 5, 90, 160}, false},
      {"channels_last_3d [1,256,5,90,160]", {1, 256, 5, 90, 160}, true},
  };
  const int groups = 32;
  const ops::GroupNormMath& math = ops::cuda_group_norm_math();
  for (const GnCase& c : cases) {
    const TensorView shape_only = gn_view(nullptr, c);
    const size_t bytes = shape_only.nbytes();
    const int64_t C = c.shape[1];
    const ops::GroupNormGeometry g = ops::group_norm_geometry(shape_only, shape_only, groups);
    const int sets = sets_for(bytes);
    std::vector<std::unique_ptr<Buffer>> data;
    for (int s = 0; s < sets; ++s) data.push_back(std::make_unique<Buffer>(bytes));
    Buffer work(math.workspace_bytes(g)), mine(g.pairs() * sizeof(ops::GroupMoments));
    std::vector<float> params(2 * C);
    for (int64_t ch = 0; ch < C; ++ch) {
      params[ch] = 1.f + static_cast<float>(ch % 7) / 8.f;
      params[C + ch] = static_cast<float>(ch % 5) / 4.f - 0.5f;
    }
    Buffer dparams(params.size() * sizeof(float));
    CUDA(cudaMemcpy(dparams.get(), params.data(), params.size() * sizeof(float),
                    cudaMemcpyHostToDevice));
    ops::GroupNormAffine affine;
    affine.weight = dparams.get();
    affine.bias = dparams.get() + C * sizeof(float);
    const float eps = 1e-6f;

    // Checked: the whole GroupNorm against the host math on the same data.
    std::vector<uint16_t> host = random_bf16(bytes / 2, 3, 1.5f), got(bytes / 2);
    const std::vector<uint16_t> original = host;  // host is normalised in place below
    CUDA(cudaMemcpy(data[0]->get(), host.data(), bytes, cudaMemcpyHostToDevice));
    math.normalise_alone(g, kBf16, data[0]->get(), data[0]->get(), affine, eps,
                         static_cast<ops::GroupMoments*>(mine.ptr), work.ptr, stream_);
    CUDA(cudaStreamSynchronize(stream_));
    CUDA(cudaMemcpy(got.data(), data[0]->get(), bytes, cudaMemcpyDeviceToHost));
    ops::GroupNormAffine host_affine;
    host_affine.weight = params.data();
    host_affine.bias = params.data() + C;
    std::vector<ops::GroupMoments> host_mine(g.pairs());
    ops::host_group_norm_math().normalise_alone(g, kBf16, host.data(), host.data(), host_affine,
                                                eps, host_mine.data(), nullptr, nullptr);
    size_t bad = 0;
    for (size_t i = 0; i < host.size(); ++i) {
      const float want = bf16_to_float(host[i]), have = bf16_to_float(got[i]);
      bad += !(std::fabs(have - want) <= 1e-2f * std::fabs(want) + 2e-2f);
    }
    check(bad == 0, "group_norm " + c.name);
    // Checked too: the apply of the multi-rank path (normalise with this one
    // rank's records, as gathered) on the original data gives the very bits of
    // the whole GroupNorm above (the same records, the same factors).
    const std::vector<uint16_t> whole = got;
    CUDA(cudaMemcpy(data[0]->get(), original.data(), bytes, cudaMemcpyHostToDevice));
    const auto* records = static_cast<const ops::GroupMoments*>(mine.ptr);
    math.normalise(g, kBf16, data[0]->get(), data[0]->get(), affine, records, 1, eps, work.ptr,
                   stream_);
    CUDA(cudaStreamSynchronize(stream_));
    CUDA(cudaMemcpy(got.data(), data[0]->get(), bytes, cudaMemcpyDeviceToHost));
    size_t bad_apply = 0;
    for (size_t i = 0; i < whole.size(); ++i) bad_apply += got[i] != whole[i];
    check(bad_apply == 0, "apply with records " + c.name);

    add("group_norm " + c.name, 3.0 * bytes, [&](int s) {
      math.normalise_alone(g, kBf16, data[s]->get(), data[s]->get(), affine, eps,
                           static_cast<ops::GroupMoments*>(mine.ptr), work.ptr, stream_);
    }, sets);
    add("moments " + c.name, 1.0 * bytes, [&](int s) {
      math.local_moments(g, kBf16, data[s]->get(), static_cast<ops::GroupMoments*>(mine.ptr),
                         work.ptr, stream_);
    }, sets);
    // Out of place, so that the inputs stay as they are call after call.
    std::vector<std::unique_ptr<Buffer>> outs;
    for (int s = 0; s < sets; ++s) outs.push_back(std::make_unique<Buffer>(bytes));
    add("apply with records " + c.name, 2.0 * bytes, [&](int s) {
      math.normalise(g, kBf16, data[s]->get(), outs[s]->get(), affine, records, 1, eps, work.ptr,
                     stream_);
    }, sets);
  }
}

// ------------------------------------------------------- fused-norm epilogue

void Bench::epilogue_cases() {
  const int64_t hidden = 5120;
  const float eps = 1e-6f;
  for (int64_t tokens : {int64_t{1024}, int64_t{8192}}) {
    const size_t n = static_cast<size_t>(tokens * hidden), bytes = n * 2;
    const int sets = sets_for(2 * bytes);
    std::vector<std::unique_ptr<Buffer>> y, res;
    for (int s = 0; s < sets; ++s) {
      y.push_back(std::make_unique<Buffer>(bytes));
      res.push_back(std::make_unique<Buffer>(bytes));
    }
    Buffer w(hidden * 2);
    const std::vector<uint16_t> hy = random_bf16(n, 11), hres = random_bf16(n, 12),
                                hw = random_bf16(hidden, 13);
    CUDA(cudaMemcpy(y[0]->get(), hy.data(), bytes, cudaMemcpyHostToDevice));
    CUDA(cudaMemcpy(res[0]->get(), hres.data(), bytes, cudaMemcpyHostToDevice));
    CUDA(cudaMemcpy(w.get(), hw.data(), hidden * 2, cudaMemcpyHostToDevice));
    auto call = [&](int s) {
      ops::FusedNormCall c;
      c.x = c.y = y[s]->get();
      c.residual = c.residual_out = res[s]->get();
      c.weight = w.get();
      c.tokens = tokens;
      c.hidden = hidden;
      c.dtype = kBf16;
      c.eps = eps;
      return c;
    };
    // Checked against the host arithmetic (docs/FUSED_NORM.md's rounding).
    launch_fused_norm_epilogue(call(0), stream_);
    std::vector<uint16_t> got_y(n), got_res(n);
    CUDA(cudaStreamSynchronize(stream_));
    CUDA(cudaMemcpy(got_y.data(), y[0]->get(), bytes, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(got_res.data(), res[0]->get(), bytes, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    std::vector<float> row(hidden);
    for (int64_t t = 0; t < tokens; ++t) {
      float squares = 0;
      for (int64_t j = 0; j < hidden; ++j) {
        const size_t i = static_cast<size_t>(t * hidden + j);
        const uint16_t r = float_to_bf16(bf16_to_float(hy[i]) + bf16_to_float(hres[i]));
        bad += got_res[i] != r;
        row[j] = bf16_to_float(r);
        squares += row[j] * row[j];
      }
      const float scale = 1.0f / std::sqrt(squares / static_cast<float>(hidden) + eps);
      for (int64_t j = 0; j < hidden; ++j) {
        const float want = row[j] * scale * bf16_to_float(hw[j]);
        const float have = bf16_to_float(got_y[static_cast<size_t>(t * hidden + j)]);
        bad += !(std::fabs(have - want) <= 1e-2f * std::fabs(want) + 1e-3f);
      }
    }
    check(bad == 0, "epilogue " + std::to_string(tokens) + " tokens");
    add("epilogue " + std::to_string(tokens) + " x 5120", 4.0 * bytes,
        [&](int s) { launch_fused_norm_epilogue(call(s), stream_); }, sets);
  }
}

int Bench::report(const std::string& json, double copy) const {
  std::printf("diffcoll kernels alone on one %s; limit: cudaMemcpy D2D of 256 MiB at %.0f GB/s "
              "(read + write); rotating over > 4 x L2 of buffers (HBM), and hot (one buffer)\n",
              gpu_.c_str(), copy);
  std::printf("%-40s %9s %9s %9s %9s %9s %9s\n", "case (bf16)", "MB moved", "us", "GB/s",
              "of copy", "hot us", "host us");
  for (const Row& r : rows_) {
    const double gbps = r.moved / (r.us * 1e-6) / 1e9;
    std::printf("%-40s %9.1f %9.2f %9.0f %9.2f %9.2f %9.2f\n", r.name.c_str(), r.moved / 1e6,
                r.us, gbps, gbps / copy, r.hot_us, r.host_us);
  }
  if (!json.empty()) {
    FILE* f = std::fopen(json.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "kernels_bench: cannot write %s\n", json.c_str());
      return 1;
    }
    std::fprintf(f, "{\"gpu\": \"%s\", \"copy_gbps\": %.1f, \"rows\": [\n", gpu_.c_str(), copy);
    for (size_t i = 0; i < rows_.size(); ++i) {
      const Row& r = rows_[i];
      const double gbps = r.moved / (r.us * 1e-6) / 1e9;
      std::fprintf(f,
                   "  {\"case\": \"%s\", \"bytes_moved\": %.0f, \"us\": %.2f, \"gbps\": %.1f, "
                   "\"fraction_of_copy\": %.3f, \"hot_us\": %.2f, \"host_us\": %.2f}%s\n",
                   r.name.c_str(), r.moved, r.us, gbps, gbps / copy, r.hot_us, r.host_us,
                   i + 1 < rows_.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
    std::printf("wrote %s\n", json.c_str());
  }
  if (failed_) std::fprintf(stderr, "kernels_bench: some results were wrong (see above)\n");
  return failed_ ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  BenchArgs args;
  args.iters = 50;
  args.json = "kernels_bench.json";
  args.share_gpus = true;
  if (int status = parse_bench_args(argc, argv, "kernels_bench", &args); status >= 0) return status;
  if (args.ranks > 1)
    std::printf("kernels_bench: one rank on GPU %d (--ranks %d ignored: no communication here)\n",
                kDevice, args.ranks);
  try {
    CUDA(cudaSetDevice(kDevice));
    cudaStream_t stream;
    CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const double copy = copy_gbps(stream);
    Bench bench(args.iters, stream);
    bench.pack_cases();
    bench.group_norm_cases();
    bench.epilogue_cases();
    const int status = bench.report(args.json, copy);
    CUDA(cudaStreamDestroy(stream));
    return status;
  } catch (const diffcoll::Error& e) {
    std::fprintf(stderr, "kernels_bench: %s\n", e.what());
    return 1;
  }
}
