// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// pack_cuda / unpack_cuda (core/cuda/pack_cuda.h) against the host reference
// pack_host / unpack_host (core/pack.h), byte for byte, on random data and
// layouts. Every test skips when no CUDA device is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda/pack_cuda.h"
#include "core/error.h"
#include "core/pack.h"
#include "pack_test_layouts.h"

namespace diffcoll {
namespace {

using namespace pack_test;

constexpr unsigned char kPoison = 0xAB;
constexpr size_t kGuard = 64;  // poisoned bytes on each side of a dense buffer

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}
#define CHECK_CUDA(call) check((call), #call)

bool haveDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) {
    CHECK_CUDA(cudaMalloc(&ptr_, std::max<size_t>(bytes, 1)));
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

// ------------------------------------------------------------------ batches

std::string firstMismatch(const std::vector<unsigned char>& got,
                          const std::vector<unsigned char>& want, size_t from = 0) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[from + i] != want[i]) {
      char text[96];
      std::snprintf(text, sizeof text, "byte %zu: got 0x%02x, want 0x%02x", i, got[from + i],
                    want[i]);
      return text;
    }
  }
  return "";
}

// The pieces of one pack_cuda or unpack_cuda call, with host and device
// copies of every storage and dense buffer and the host reference result.
class Batch {
 public:
  Batch(std::vector<Layout> layouts, bool pack, uint64_t seed, size_t denseShift = 0)
      : pack_(pack), layouts_(std::move(layouts)) {
    for (const Layout& l : layouts_) {
      Piece p;
      p.denseBytes = l.view().nbytes();
      p.storage = std::make_unique<DeviceBuffer>(l.storageBytes);
      p.dense = std::make_unique<DeviceBuffer>(p.denseBytes + 2 * kGuard + denseShift);
      p.denseAt = kGuard + denseShift;
      pieces_.push_back({l.view(p.storage->get(), Device{DeviceType::kCuda, 0}),
                         p.dense->get() + p.denseAt});
      state_.push_back(std::move(p));
    }
    refill(seed);
  }

  const PackPiece* pieces() const { return pieces_.data(); }
  int count() const { return static_cast<int>(pieces_.size()); }
  void run(cudaStream_t stream) const {
    if (pack_) pack_cuda(pieces(), count(), stream);
    else unpack_cuda(pieces(), count(), stream);
  }

  // New random input; outputs poisoned; the expected result recomputed.
  void refill(uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto random = [&](size_t n) {
      std::vector<unsigned char> bytes(n);
      for (auto& b : bytes) b = static_cast<unsigned char>(rng());
      return bytes;
    };
    for (size_t i = 0; i < layouts_.size(); ++i) {
      const Layout& l = layouts_[i];
      Piece& p = state_[i];
      CHECK_CUDA(cudaMemset(p.dense->get(), kPoison, p.denseBytes + p.denseAt + kGuard));
      if (pack_) {
        std::vector<unsigned char> storage = random(l.storageBytes);
        p.expected.assign(p.denseBytes, 0);
        pack_host(l.view(reinterpret_cast<char*>(storage.data()), Device{}), p.expected.data());
        CHECK_CUDA(cudaMemcpy(p.storage->get(), storage.data(), storage.size(),
                              cudaMemcpyHostToDevice));
      } else {
        std::vector<unsigned char> dense = random(p.denseBytes);
        p.expected.assign(l.storageBytes, kPoison);
        unpack_host(dense.data(), l.view(reinterpret_cast<char*>(p.expected.data()), Device{}));
        CHECK_CUDA(cudaMemset(p.storage->get(), kPoison, l.storageBytes));
        CHECK_CUDA(cudaMemcpy(p.dense->get() + p.denseAt, dense.data(), dense.size(),
                              cudaMemcpyHostToDevice));
      }
    }
    // cudaMemset is asynchronous, on the legacy stream, which a non-blocking
    // stream does not wait for; cudaMemcpy from pageable memory may return
    // before its last DMA lands. Without this the kernel raced the set-up of
    // its own input and output (FloatLayoutsOfTheHarnessRace below).
    CHECK_CUDA(cudaDeviceSynchronize());
  }

  // Compares every output with the host reference: for pack the dense
  // buffer and its guards, for unpack the whole storage (bytes outside the
  // view stay poisoned).
  void verify() const {
    for (size_t i = 0; i < layouts_.size(); ++i) {
      const Piece& p = state_[i];
      SCOPED_TRACE(layouts_[i].describe());
      if (pack_) {
        std::vector<unsigned char> got(p.denseAt + p.denseBytes + kGuard);
        CHECK_CUDA(cudaMemcpy(got.data(), p.dense->get(), got.size(), cudaMemcpyDeviceToHost));
        EXPECT_EQ("", firstMismatch(got, p.expected, p.denseAt));
        const std::vector<unsigned char> guard(p.denseAt, kPoison), tail(kGuard, kPoison);
        EXPECT_EQ("", firstMismatch(got, guard)) << "before the dense buffer";
        EXPECT_EQ("", firstMismatch(got, tail, p.denseAt + p.denseBytes)) << "after it";
      } else {
        std::vector<unsigned char> got(layouts_[i].storageBytes);
        CHECK_CUDA(cudaMemcpy(got.data(), p.storage->get(), got.size(), cudaMemcpyDeviceToHost));
        EXPECT_EQ("", firstMismatch(got, p.expected));
      }
    }
  }

 private:
  struct Piece {
    std::unique_ptr<DeviceBuffer> storage, dense;
    size_t denseBytes = 0, denseAt = 0;
    std::vector<unsigned char> expected;
  };
  bool pack_;
  std::vector<Layout> layouts_;
  std::vector<Piece> state_;
  std::vector<PackPiece> pieces_;
};

class PackCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!haveDevice()) GTEST_SKIP() << "no CUDA device";
    CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream_) cudaStreamDestroy(stream_);
  }

  // One call over `layouts`, in both directions, checked.
  void roundTrip(const std::vector<Layout>& layouts, uint64_t seed, size_t denseShift = 0) {
    for (bool pack : {true, false}) {
      SCOPED_TRACE(pack ? "pack_cuda" : "unpack_cuda");
      Batch batch(layouts, pack, seed, denseShift);
      batch.run(stream_);
      CHECK_CUDA(cudaStreamSynchronize(stream_));
      batch.verify();
    }
  }

  cudaStream_t stream_ = nullptr;
};

// ------------------------------------------------------------------ tests

TEST_F(PackCudaTest, RandomLayoutsEveryDtypeAndRank) {
  std::mt19937_64 rng(1234);
  for (DType dtype : kDtypes)
    for (int ndim = 1; ndim <= kMaxDims; ++ndim)
      for (Shape shape : {Shape::kContiguous, Shape::kPermuted, Shape::kSliced, Shape::kNegative,
                          Shape::kMixed})
        for (int rep = 0; rep < 3; ++rep) roundTrip({randomLayout(rng, dtype, ndim, shape)}, rng());
}

// The float64 layouts (~1 MB each, 8- and 16-byte units, strided and tiled)
// that failed RandomLayoutsEveryDtypeAndRank on an H100 when Batch::refill
// did not synchronise: the kernel, on a non-blocking stream, ran before the
// legacy-stream cudaMemset / pageable cudaMemcpy of its buffers had landed
// (pack read 0x00 from the unwritten storage; unpack copied the poisoned
// dense tail, or the late memset re-poisoned the storage). The failures
// moved between layouts and runs; the kernel was not at fault. These
// layouts alone did not bring the race back on an H100 without the
// synchronisation (it needed the load of the whole random test), so this
// checks the kernel on them rather than the harness: each layout alone,
// then all in one launch and over two launches.
Layout explicitLayout(std::string name, std::vector<int64_t> shape, std::vector<int64_t> strides,
                      int64_t offsetBytes) {
  Layout l;
  l.name = std::move(name);
  l.dtype = DType::kFloat64;
  l.offset = offsetBytes;
  l.ndim = static_cast<int>(shape.size());
  int64_t lo = offsetBytes / 8, hi = offsetBytes / 8;
  for (int j = 0; j < l.ndim; ++j) {
    l.shape[j] = shape[j];
    l.strides[j] = strides[j];
    (strides[j] < 0 ? lo : hi) += (shape[j] - 1) * strides[j];
  }
  if (lo < 0) throw std::logic_error("view starts before its storage: " + l.name);
  l.storageBytes = static_cast<size_t>((hi + 1) * 8);
  return l;
}

std::vector<Layout> harnessRaceLayouts() {
  return {
      explicitLayout("negative 5d", {29, 3, 16, 46, 2}, {-4416, -1472, 92, -2, 1}, 1013456),
      explicitLayout("permuted 6d (tiled)", {44, 1, 2, 51, 1, 29}, {2958, 102, 51, 1, 130152, 102},
                     0),
      explicitLayout("contiguous 7d", {9, 8, 9, 7, 5, 5, 1}, {12600, 1575, 175, 25, 5, 1, 1}, 0),
      explicitLayout("contiguous 8d", {7, 7, 5, 1, 2, 3, 9, 9},
                     {17010, 2430, 486, 486, 243, 81, 9, 1}, 0),
      explicitLayout("permuted 8d", {1, 5, 53, 3, 1, 1, 3, 54},
                     {45, 3, 45, 1, 15, 2385, 15, 2385}, 0),
      explicitLayout("sliced 7d", {2, 2, 10, 1, 1, 2, 11}, {49280, 12320, 1232, 1232, 264, 33, 1},
                     396000),
      explicitLayout("negative 8d", {5, 3, 1, 7, 5, 7, 7, 5},
                     {25725, 8575, -8575, 1225, -245, 35, -5, 1}, 8080),
  };
}

TEST_F(PackCudaTest, FloatLayoutsOfTheHarnessRace) {
  const std::vector<Layout> layouts = harnessRaceLayouts();
  uint64_t seed = 100;
  for (const Layout& l : layouts)
    for (int rep = 0; rep < 2; ++rep) roundTrip({l}, seed++);
  for (int rep = 0; rep < 2; ++rep) roundTrip(layouts, seed++);  // one launch
  std::vector<Layout> twice = layouts;
  twice.insert(twice.end(), layouts.begin(), layouts.end());
  roundTrip(twice, seed++);  // two launches
}

TEST_F(PackCudaTest, Transposes) {
  for (DType dtype : kDtypes) {
    roundTrip({build("2d^T", dtype, {45, 77}, {}, {1, 0})}, 1);
    roundTrip({build("3d^T odd tiles", dtype, {3, 37, 41}, {}, {0, 2, 1})}, 2);
    roundTrip({build("3d outer^T", dtype, {33, 5, 19}, {}, {2, 1, 0})}, 3);
    roundTrip({build("3d^T reversed", dtype, {4, 40, 50}, {{}, {0, 1, -1, true}}, {0, 2, 1})}, 4);
    roundTrip({build("4d^T sliced", dtype, {2, 70, 3, 64}, {{}, {1, 2}, {}, {3, 1, 50}},
                     {0, 3, 2, 1})},
              5);
  }
  roundTrip({transposedLatent()}, 6);
}

// Sides around the 64-unit tile edge in every unit, channels-last with
// enough channels for 64-wide tiles, and the benchmark's latent with gaps.
TEST_F(PackCudaTest, LargeTilesAndRowsWithGaps) {
  for (DType dtype : kDtypes)
    for (int64_t rows : {47, 64, 65, 129})
      for (int64_t cols : {48, 64, 70})
        roundTrip({build("2d^T", dtype, {rows, cols}, {}, {1, 0})}, rows * 131 + cols);
  for (DType dtype : kDtypes) roundTrip({channelsLast(dtype, {2, 96, 9, 11})}, 8);
  roundTrip({slicedLatent()}, 9);
}

// The vector tiles (16- and 8-byte vectors on both global sides) on edge
// tiles, odd sizes and every unit, then storage and dense buffers off a
// vector by every unit, and the latent transpose with its dense buffer off
// a vector, one launch with other pieces.
TEST_F(PackCudaTest, VectorTiles) {
  uint64_t seed = 1;
  for (DType dtype : kDtypes)
    for (const Layout& l : vectorTileLayouts(dtype)) roundTrip({l}, seed++);
  for (DType dtype : kDtypes) {
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    for (int64_t shift = es; shift < 16; shift += es)
      for (const Layout& l : misalignedVectorTileLayouts(dtype, shift))
        roundTrip({l}, seed++, static_cast<size_t>((shift * 5) % 16));
  }
  roundTrip({transposedLatent()}, seed++, 2);
  std::vector<Layout> mixed = vectorTileLayouts(DType::kBFloat16);
  mixed.resize(kPackCudaMaxPieces - 2);
  mixed.push_back(slicedLatent());
  mixed.push_back(build("reversed^T", DType::kFloat32, {3, 70, 64}, {{}, {}, {0, 1, -1, true}},
                        {0, 2, 1}));
  roundTrip(mixed, seed++);  // vector tiles and other loops from one call: two launches
}

// Plane tiles (a contiguous plane with its two dimensions swapped, rows of
// whole 16-byte vectors) in every dtype: odd and even rows, planes of one
// and several tiles (the last shorter), batches with gaps, reversed and over
// two dimensions; the latent in both directions; storage or dense buffers
// off 16 bytes by every unit (other tiles then, the same bytes); rows that
// are not whole vectors; plane tiles with other pieces in one call.
TEST_F(PackCudaTest, PlaneTiles) {
  uint64_t seed = 1;
  for (DType dtype : kDtypes)
    for (const Layout& l : planeTileLayouts(dtype)) roundTrip({l}, seed++);
  roundTrip({transposedLatent()}, seed++);
  for (DType dtype : kDtypes) {
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    for (int64_t shift = es; shift < 16; shift += es) {
      roundTrip({build("plane^T shifted", dtype, {2, 90, 160}, {}, {0, 2, 1}, shift)}, seed++);
      roundTrip({build("plane^T", dtype, {2, 90, 160}, {}, {0, 2, 1})}, seed++,
                static_cast<size_t>(shift));
    }
    roundTrip({build("rows not whole vectors^T", dtype, {2, 90, 168 - 8 / es}, {}, {0, 2, 1})},
              seed++);
  }
  std::vector<Layout> mixed = planeTileLayouts(DType::kFloat32);
  mixed.resize(kPackCudaMaxPieces - 3);
  mixed.push_back(transposedLatent());
  mixed.push_back(slicedLatent());
  mixed.push_back(channelsLast(DType::kFloat32, {1, 40, 90, 160}));  // vector tiles, rows apart
  roundTrip(mixed, seed++);  // plane tiles, vector tiles and the strided loop: three launches
}

TEST_F(PackCudaTest, ChannelsLast) {
  for (DType dtype : kDtypes) {
    roundTrip({channelsLast(dtype, {2, 3, 17, 19})}, 1);     // few channels: elementwise
    roundTrip({channelsLast(dtype, {2, 40, 9, 11})}, 2);     // tiled over C x HW
    roundTrip({channelsLast(dtype, {1, 19, 5, 7, 9})}, 3);   // channels_last_3d
  }
}

TEST_F(PackCudaTest, ScalarsAndSizeOneDims) {
  for (DType dtype : kDtypes) {
    roundTrip({build("0d", dtype, {})}, 1);
    roundTrip({build("1-element 4d", dtype, {1, 1, 1, 1})}, 2);
    roundTrip({build("size-1 dims", dtype, {1, 7, 1, 5, 1}, {}, {4, 3, 2, 1, 0})}, 3);
  }
}

// Misaligned storage or dense pointers: no vector wider than they allow.
TEST_F(PackCudaTest, Alignment) {
  std::mt19937_64 rng(99);
  for (DType dtype : kDtypes) {
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    for (int64_t shift : {int64_t{1}, es, 8 + es}) {
      const size_t dense = static_cast<size_t>(shift);
      roundTrip({build("contiguous, storage shifted", dtype, {3, 5, 64}, {}, {}, shift)}, rng());
      roundTrip({build("contiguous, dense shifted", dtype, {3, 5, 64})}, rng(), dense);
      roundTrip({build("contiguous, both shifted", dtype, {3, 5, 64}, {}, {}, shift)}, rng(), dense);
      roundTrip({build("rows, storage shifted", dtype, {9, 40}, {{}, {0, 1, 36}}, {}, shift)}, rng());
      roundTrip({build("rows, dense shifted", dtype, {9, 40}, {{}, {0, 1, 36}})}, rng(), dense);
      roundTrip({build("transpose shifted", dtype, {20, 33}, {}, {1, 0}, shift)}, rng(), dense);
      std::vector<Slice> everyOther(kMaxDims, Slice{0, 2});
      roundTrip({build("8d gapped shifted", dtype, std::vector<int64_t>(kMaxDims, 3), everyOther,
                       {}, shift)},
                rng());
    }
  }
}

TEST_F(PackCudaTest, EmptyPiecesAndCalls) {
  EXPECT_NO_THROW(pack_cuda(nullptr, 0, stream_));
  EXPECT_NO_THROW(unpack_cuda(nullptr, 0, stream_));
  std::mt19937_64 rng(5);
  std::vector<Layout> layouts = {
      build("empty", DType::kFloat32, {3, 0, 5}),
      randomLayout(rng, DType::kBFloat16, 3, Shape::kMixed),
      build("empty slice", DType::kInt8, {4, 6}, {{}, {2, 1, 0}}),
  };
  roundTrip(layouts, 7);
  roundTrip({build("only empty", DType::kFloat64, {0})}, 8);
}

TEST_F(PackCudaTest, SeveralPiecesInOneCall) {
  std::mt19937_64 rng(77);
  std::vector<Layout> layouts;
  for (int i = 0; i < kPackCudaMaxPieces; ++i)
    layouts.push_back(randomLayout(rng, kDtypes[i % 4], 1 + i % kMaxDims,
                                   static_cast<Shape>(i % 5)));
  layouts[3] = transposedLatent();  // a large piece beside small ones
  roundTrip(layouts, 9);
}

TEST_F(PackCudaTest, BatchLargerThanOneLaunch) {
  std::mt19937_64 rng(78);
  std::vector<Layout> layouts;
  for (int i = 0; i < 3 * kPackCudaMaxPieces + 3; ++i) {
    if (i % 7 == 3) layouts.push_back(build("empty", DType::kFloat32, {2, 0}));
    else layouts.push_back(randomLayout(rng, kDtypes[rng() % 4], 1 + static_cast<int>(rng() % 5),
                                        static_cast<Shape>(rng() % 5)));
  }
  roundTrip(layouts, 10);
}

TEST_F(PackCudaTest, CudaGraphCaptureAndReplay) {
  std::mt19937_64 rng(3);
  std::vector<Layout> layouts = {transposedLatent(), channelsLast(DType::kFloat32, {2, 32, 7, 9}),
                                 randomLayout(rng, DType::kUInt8, 4, Shape::kMixed)};
  for (int i = 0; i < kPackCudaMaxPieces; ++i)  // two launches per call
    layouts.push_back(randomLayout(rng, DType::kFloat64, 3, Shape::kSliced));
  Batch pack(layouts, true, 11), unpack(layouts, false, 12);

  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  CHECK_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
  pack.run(stream_);
  unpack.run(stream_);
  CHECK_CUDA(cudaStreamEndCapture(stream_, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (uint64_t replay = 0; replay < 2; ++replay) {
    SCOPED_TRACE("replay " + std::to_string(replay));
    if (replay) {  // the graph reads the buffers afresh
      pack.refill(21);
      unpack.refill(22);
    }
    CHECK_CUDA(cudaGraphLaunch(exec, stream_));
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    pack.verify();
    unpack.verify();
  }
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaGraphDestroy(graph));
}

TEST_F(PackCudaTest, InvalidPiecesThrowBeforeLaunching) {
  Batch batch({build("ok", DType::kFloat32, {4, 4}, {}, {1, 0})}, true, 13);
  std::vector<PackPiece> pieces(batch.pieces(), batch.pieces() + 1);
  pieces.push_back(pieces[0]);
  pieces[1].dense = nullptr;
  try {
    pack_cuda(pieces.data(), 2, stream_);
    FAIL() << "no error for a null dense pointer";
  } catch (const Error& e) {
    EXPECT_EQ(Status::kInvalidArgument, e.status()) << e.what();
  }
  pieces[1] = pieces[0];
  pieces[1].view.ndim = kMaxViewDims + 1;
  EXPECT_THROW(unpack_cuda(pieces.data(), 2, stream_), Error);
  EXPECT_THROW(pack_cuda(pieces.data(), -1, stream_), Error);
  // Nothing was launched: the first piece's output is still poisoned.
  CHECK_CUDA(cudaStreamSynchronize(stream_));
  std::vector<unsigned char> dense(16 * 4);
  CHECK_CUDA(cudaMemcpy(dense.data(), pieces[0].dense, dense.size(), cudaMemcpyDeviceToHost));
  EXPECT_EQ("", firstMismatch(dense, std::vector<unsigned char>(dense.size(), kPoison)));
}

// Not a pass/fail check: prints bandwidths for the design's reference cases
// (the latent contiguous, with gaps and transposed), against
// cudaMemcpyAsync of the latent's bytes. kernels_bench is the benchmark.
TEST_F(PackCudaTest, PrintsBandwidth) {
  const Layout dense = build("contiguous", DType::kBFloat16, {2, 16, 21, 90, 160});
  const Layout gapped = slicedLatent();
  const Layout transposed = transposedLatent();
  const size_t bytes = dense.storageBytes;  // the view's bytes, in every case
  DeviceBuffer src(gapped.storageBytes), dst(bytes);
  CHECK_CUDA(cudaMemset(src.get(), 1, gapped.storageBytes));
  CHECK_CUDA(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  auto measure = [&](const char* what, auto&& op) {
    const int kIters = 20;
    op();
    CHECK_CUDA(cudaEventRecord(start, stream_));
    for (int i = 0; i < kIters; ++i) op();
    CHECK_CUDA(cudaEventRecord(stop, stream_));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    const double us = 1000.0 * ms / kIters;
    std::printf("  %-28s %8.1f us  %7.1f GB/s (read + write)\n", what, us, 2e-3 * bytes / us);
    return us;
  };
  std::printf("bf16 [2,16,21,90,160], %zu bytes\n", bytes);
  const double copy = measure("cudaMemcpyAsync", [&] {
    CHECK_CUDA(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream_));
  });
  for (const Layout* l : {&dense, &gapped, &transposed}) {
    const PackPiece piece = {l->view(src.get(), Device{DeviceType::kCuda, 0}), dst.get()};
    const double p = measure(("pack " + l->name).c_str(), [&] { pack_cuda(&piece, 1, stream_); });
    const double u = measure(("unpack " + l->name).c_str(), [&] { unpack_cuda(&piece, 1, stream_); });
    std::printf("  %-28s pack %.2fx, unpack %.2fx the copy's time\n", l->name.c_str(), p / copy,
                u / copy);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
}

}  // namespace
}  // namespace diffcoll
