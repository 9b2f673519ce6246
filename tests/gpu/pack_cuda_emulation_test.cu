// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The pack_cuda kernels' copy loops run on the host, thread by thread, on
// the plan pack_cuda makes (core/cuda/pack_cuda.cu is compiled into this
// test): every unit and tile a launch would move, compared byte for byte
// with pack_host / unpack_host. This checks the index math of the strided
// and tiled loops (tile edges, partial tiles, grid-stride loops over few
// blocks) on a machine without a GPU; pack_cuda_test.cu checks the kernels
// themselves on one. Also checks that the benchmark's views take the fast
// loops: a transpose the 64-wide tiles, rows with gaps 16-byte units.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/cuda/pack_cuda.cu"
#include "core/pack.h"
#include "pack_test_layouts.h"

namespace diffcoll {
namespace {

using namespace pack_test;

// One block of packKernel, its threads run phase by phase between barriers.
template <bool kPack, typename U>
void runBlock(const PackDesc& d, uint32_t block, uint32_t blocks) {
  if constexpr (sizeof(U) <= kTileMaxUnit) {
    if (d.kind == kTiled) {
      std::vector<unsigned char> smem(kTileSmemBytes);
      auto tiles = [&](auto edge) {
        constexpr int kEdge = decltype(edge)::value;
        auto buf = reinterpret_cast<TileBuf<U, kEdge>>(smem.data());
        for (uint32_t k = block; k < d.items; k += blocks) {
          const Tile tile = tileAt(d, k);
          for (int t = 0; t < kThreads; ++t)
            tileSide<true, U, kEdge>(d, tile, kPack, buf, t % 32, t / 32);
          for (int t = 0; t < kThreads; ++t)
            tileSide<false, U, kEdge>(d, tile, !kPack, buf, t % 32, t / 32);
        }
      };
      if (d.tileEdge == kLargeTile) {
        ASSERT_LT(sizeof(U), 8u) << "64-wide tiles of 8-byte units do not fit the buffer";
        tiles(std::integral_constant<int, kLargeTile>());
      } else {
        ASSERT_EQ(d.tileEdge, kSmallTile);
        tiles(std::integral_constant<int, kSmallTile>());
      }
      return;
    }
  }
  for (int t = 0; t < kThreads; ++t) copyStrided<kPack, U>(d, block * kThreads + t, blocks * kThreads);
}

// pack_cuda / unpack_cuda on host memory, with at most `maxBlocks` blocks a
// launch (few blocks: every loop strides over the grid).
template <bool kPack>
void emulate(const PackPiece* pieces, int count, uint64_t maxBlocks) {
  forEachBatch(pieces, count, "emulate", [&](PackArgs& args, int n) {
    assignBlocks(&args, n, maxBlocks);
    for (int p = 0; p < n; ++p) {
      const uint32_t first = p ? args.blockEnd[p - 1] : 0, blocks = args.blockEnd[p] - first;
      const PackDesc& d = args.piece[p];
      for (uint32_t b = 0; b < blocks; ++b) {
        switch (d.unit) {
          case 1: runBlock<kPack, uint8_t>(d, b, blocks); break;
          case 2: runBlock<kPack, uint16_t>(d, b, blocks); break;
          case 4: runBlock<kPack, uint32_t>(d, b, blocks); break;
          case 8: runBlock<kPack, uint64_t>(d, b, blocks); break;
          default: runBlock<kPack, uint4>(d, b, blocks); break;
        }
      }
    }
  });
}

// Storage with 16-byte alignment to spare (the layouts' shifts misalign it).
struct HostBuffer {
  std::vector<uint4> words;
  explicit HostBuffer(size_t bytes) : words(bytes / sizeof(uint4) + 2) {}
  char* get() { return reinterpret_cast<char*>(words.data()); }
};

// Both directions of one call over `layouts`, against the host reference.
void roundTrip(const std::vector<Layout>& layouts, uint64_t seed, uint64_t maxBlocks,
               size_t denseShift = 0) {
  std::mt19937_64 rng(seed);
  std::vector<HostBuffer> storage, dense;
  std::vector<PackPiece> pieces;
  for (const Layout& l : layouts) {
    storage.emplace_back(l.storageBytes);
    dense.emplace_back(l.view().nbytes() + denseShift);
  }
  for (size_t i = 0; i < layouts.size(); ++i)
    pieces.push_back({layouts[i].view(storage[i].get()), dense[i].get() + denseShift});
  for (bool pack : {true, false}) {
    SCOPED_TRACE(pack ? "pack" : "unpack");
    std::vector<std::vector<unsigned char>> expected;
    for (size_t i = 0; i < layouts.size(); ++i) {
      const size_t n = layouts[i].view().nbytes();
      unsigned char* src = reinterpret_cast<unsigned char*>(pack ? storage[i].get() : pieces[i].dense);
      const size_t srcBytes = pack ? layouts[i].storageBytes : n;
      for (size_t b = 0; b < srcBytes; ++b) src[b] = static_cast<unsigned char>(rng());
      unsigned char* dst = reinterpret_cast<unsigned char*>(pack ? pieces[i].dense : storage[i].get());
      const size_t dstBytes = pack ? n : layouts[i].storageBytes;
      std::memset(dst, 0xAB, dstBytes);
      std::vector<unsigned char> want(dst, dst + dstBytes);
      if (pack) pack_host(pieces[i].view, want.data());
      else unpack_host(pieces[i].dense, layouts[i].view(reinterpret_cast<char*>(want.data())));
      expected.push_back(std::move(want));
    }
    if (pack) emulate<true>(pieces.data(), static_cast<int>(pieces.size()), maxBlocks);
    else emulate<false>(pieces.data(), static_cast<int>(pieces.size()), maxBlocks);
    for (size_t i = 0; i < layouts.size(); ++i) {
      SCOPED_TRACE(layouts[i].describe());
      const unsigned char* got =
          reinterpret_cast<unsigned char*>(pack ? pieces[i].dense : storage[i].get());
      const std::vector<unsigned char>& want = expected[i];
      size_t bad = 0;
      for (size_t b = 0; b < want.size(); ++b)
        if (got[b] != want[b] && bad++ < 3) ADD_FAILURE() << "byte " << b;
      EXPECT_EQ(bad, 0u);
    }
  }
}

// The plan of one piece (a single part).
PackDesc planOf(const Layout& l) {
  HostBuffer storage(l.storageBytes), dense(l.view().nbytes());
  const PackPiece piece = {l.view(storage.get()), dense.get()};
  PackDesc plan{};
  int parts = 0;
  forEachBatch(&piece, 1, "plan", [&](PackArgs& args, int n) {
    parts += n;
    plan = args.piece[0];
  });
  EXPECT_EQ(parts, 1);
  return plan;
}

TEST(PackCudaEmulation, RandomLayoutsEveryDtypeAndRank) {
  std::mt19937_64 rng(4321);
  for (DType dtype : kDtypes)
    for (int ndim = 1; ndim <= kMaxDims; ++ndim)
      for (Shape shape : {Shape::kContiguous, Shape::kPermuted, Shape::kSliced, Shape::kNegative,
                          Shape::kMixed})
        roundTrip({randomLayout(rng, dtype, ndim, shape)}, rng(), 1 + rng() % 5);
}

// Transposes whose sides are shorter than, equal to and just longer than
// either tile edge, in every unit.
TEST(PackCudaEmulation, TransposesAroundTheTileEdges) {
  for (DType dtype : kDtypes)
    for (int64_t rows : {17, 47, 48, 63, 64, 65, 129})
      for (int64_t cols : {16, 33, 64, 70}) {
        roundTrip({build("2d^T", dtype, {rows, cols}, {}, {1, 0})}, rows * 131 + cols, 3);
        roundTrip({build("3d^T", dtype, {2, rows, cols}, {}, {0, 2, 1})}, rows * 7 + cols, 4);
      }
  for (DType dtype : kDtypes) {
    roundTrip({channelsLast(dtype, {2, 64, 9, 11})}, 1, 5);
    roundTrip({channelsLast(dtype, {1, 80, 3, 5, 7})}, 2, 2);
    roundTrip({build("reversed^T", dtype, {3, 70, 66}, {{}, {0, 1, -1, true}}, {0, 2, 1})}, 3, 3);
  }
}

TEST(PackCudaEmulation, MisalignedAndSeveralPieces) {
  std::mt19937_64 rng(8);
  for (DType dtype : kDtypes) {
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    for (int64_t shift : {int64_t{1}, es, 8 + es}) {
      roundTrip({build("transpose shifted", dtype, {70, 65}, {}, {1, 0}, shift)}, rng(), 3,
                static_cast<size_t>(shift));
      roundTrip({build("rows shifted", dtype, {9, 40}, {{}, {0, 1, 36}}, {}, shift)}, rng(), 2);
    }
  }
  std::vector<Layout> layouts;
  for (int i = 0; i < kPackCudaMaxPieces + 3; ++i)
    layouts.push_back(randomLayout(rng, kDtypes[i % 4], 1 + i % kMaxDims, static_cast<Shape>(i % 5)));
  roundTrip(layouts, 9, 20);
}

TEST(PackCudaEmulation, BenchmarkViewsTakeTheFastLoops) {
  const PackDesc transposed = planOf(transposedLatent());
  EXPECT_EQ(transposed.kind, kTiled);
  EXPECT_EQ(transposed.unit, 2);
  EXPECT_EQ(transposed.tileEdge, kLargeTile);
  const PackDesc sliced = planOf(slicedLatent());
  EXPECT_EQ(sliced.kind, kStrided);
  EXPECT_EQ(sliced.unit, 16);
  const PackDesc cl = planOf(channelsLast(DType::kFloat32, {1, 512, 90, 160}));
  EXPECT_EQ(cl.kind, kTiled);
  EXPECT_EQ(cl.tileEdge, kLargeTile);
}

}  // namespace
}  // namespace diffcoll
