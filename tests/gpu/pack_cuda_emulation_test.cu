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
// loops (the transposed latent plane tiles, rows with gaps 16-byte units)
// and which loop, vector and tile each kind of view is planned for. The
// plane tiles run their own block loop phase by phase.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "core/cuda/pack_cuda.cu"
#include "core/pack.h"
#include "pack_test_layouts.h"

namespace diffcoll {
namespace {

using namespace pack_test;

// One block of packKernel, its threads run phase by phase between barriers.
// Shared memory of one emulated block, with poisoned guard bytes behind it
// that no thread may write.
class SharedMemory {
 public:
  static constexpr size_t kGuardBytes = 1024;
  SharedMemory() : words_((kSmemBytes + kGuardBytes) / sizeof(uint4) + 1) {
    std::memset(guard(), kGuardByte, kGuardBytes);
  }
  template <typename U>
  U* get() { return reinterpret_cast<U*>(words_.data()); }
  bool guardIntact() {
    const unsigned char* g = guard();
    return std::all_of(g, g + kGuardBytes, [](unsigned char b) { return b == kGuardByte; });
  }

 private:
  static constexpr unsigned char kGuardByte = 0xCD;
  unsigned char* guard() { return reinterpret_cast<unsigned char*>(words_.data()) + kSmemBytes; }
  std::vector<uint4> words_;
};

// What the device needs of a vector tile and the host would not notice: every
// whole slot's vector aligned in global and shared memory (the host does
// misaligned loads as well as aligned ones), which holds when each side's
// runs start a whole number of vectors apart.
template <typename U, typename W>
void expectAligned(const PackDesc& d, const VecTile<U>& tile) {
  constexpr int64_t kV = sizeof(W) / sizeof(U);
  for (const VecSide<U>* side : {&tile.view, &tile.dense}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(side->base) % sizeof(W), 0u);
    EXPECT_TRUE(side->runs == 1 || side->runStride % kV == 0) << side->runStride;
    EXPECT_LT(side->phase, kV);
  }
  EXPECT_EQ(tile.shift, tile.dense.phase);
  EXPECT_TRUE(tile.dense.runs == 1 || d.pitch % kV == 0) << d.pitch;
}

// What the device needs of a plane tile: both sides' vectors aligned, a
// whole number of vectors in each view run.
template <typename U>
void expectAligned(const PlaneTile<U>& tile) {
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tile.view) % 16, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tile.dense) % 16, 0u);
  EXPECT_GT(tile.vectors, 0);
  EXPECT_LE(tile.vectors, kThreads * kPlaneSlots);
  EXPECT_EQ(tile.vectors % static_cast<int32_t>(tile.run.divisor), 0);
}

// planeTileAt is tileAt cut to planes: the same tile k, found with less
// index math.
template <typename U>
void expectTileAtsAgree(const PackDesc& d, uint32_t k) {
  const Tile tile = tileAt(d, k, d.edgeT, d.edgeI);
  const PlaneTile<U> plane = planeTileAt<U>(d, k);
  EXPECT_EQ(plane.view, reinterpret_cast<U*>(d.strided) + tile.strided) << "tile " << k;
  EXPECT_EQ(reinterpret_cast<U*>(plane.dense), reinterpret_cast<U*>(d.dense) + tile.dense)
      << "tile " << k;
  EXPECT_EQ(plane.vectors, tile.tCount / kPlaneVector<U> * tile.iCount) << "tile " << k;
  EXPECT_EQ(plane.run.divisor, d.runVectors[tile.tCount == d.edgeT ? 0 : 1].divisor);
}

// The plane tiles' own loop, every thread of the block in each phase.
template <bool kPack, typename U>
void planeBlock(const PackDesc& d, uint32_t block, uint32_t blocks, SharedMemory& smem) {
  std::vector<std::array<uint4, kPlaneSlots>> regs(kThreads);
  for (uint32_t k = block; k < d.items; k += blocks) {
    expectAligned(planeTileAt<U>(d, k));
    expectTileAtsAgree<U>(d, k);
  }
  planeTiles<kPack>(d, block, blocks, smem.get<U>(), 0, kThreads,
                    reinterpret_cast<uint4(*)[kPlaneSlots]>(regs.data()));
}

template <bool kPack, typename U>
void runBlock(const PackDesc& d, uint32_t block, uint32_t blocks) {
  if constexpr (sizeof(U) <= kTileMaxUnit) {
    if (d.kind == kPlaneTiled) {
      SharedMemory smem;
      planeBlock<kPack, U>(d, block, blocks, smem);
      EXPECT_TRUE(smem.guardIntact()) << "a plane tile wrote past the shared memory";
      return;
    }
    if (d.kind == kVecTiled) {
      SharedMemory smem;
      auto tiles = [&](auto vector) {
        using W = decltype(vector);
        U* buf = smem.get<U>();
        for (uint32_t k = block; k < d.items; k += blocks) {
          const VecTile<U> tile = vecTileAt<U, W>(d, k);
          expectAligned<U, W>(d, tile);
          for (int t = 0; t < kThreads; ++t) vecTileIn<kPack, U, W>(d, tile, buf, t);
          for (int t = 0; t < kThreads; ++t) vecTileOut<kPack, U, W>(d, tile, buf, t);
        }
      };
      if (d.vecBytes == 8) {
        if constexpr (sizeof(U) < 8) tiles(uint2{});
        else FAIL() << "8-byte vectors of 8-byte units";
      } else {
        ASSERT_EQ(d.vecBytes, 16);
        tiles(uint4{});
      }
      EXPECT_TRUE(smem.guardIntact()) << "a vector tile wrote past the shared memory";
      return;
    }
    if (d.kind == kTiled) {
      std::vector<unsigned char> smem(kTileSmemBytes);
      auto tiles = [&](auto edge) {
        constexpr int kEdge = decltype(edge)::value;
        auto buf = reinterpret_cast<TileBuf<U, kEdge>>(smem.data());
        for (uint32_t k = block; k < d.items; k += blocks) {
          const Tile tile = tileAt(d, k, d.tileEdge, d.tileEdge);
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

// Vector tiles: whole dense rows in one run (t next to the innermost
// dimension) and rows apart (a dimension between them), with the sides'
// runs cut at the tile edges and partial vectors at the ends of the runs.
// (Those whose rows are whole aligned vectors take plane tiles: each dtype
// keeps vector tiles of both kinds.)
TEST(PackCudaEmulation, VectorTiles) {
  uint64_t seed = 1;
  for (DType dtype : kDtypes) {
    int wholeRows = 0, rowsApart = 0;
    for (const Layout& l : vectorTileLayouts(dtype)) {
      const PackDesc plan = planOf(l);
      if (plan.kind == kVecTiled) ++(plan.wholeRows ? wholeRows : rowsApart);
      roundTrip({l}, seed, 1 + seed % 7);  // 1 to 7 blocks: blocks loop over tiles
      ++seed;
    }
    EXPECT_GT(wholeRows, 0) << dtype_name(dtype);
    EXPECT_GT(rowsApart, 0) << dtype_name(dtype);
  }
  roundTrip({transposedLatent()}, seed, 40);
}

// Storage and dense pointers off a vector by every unit: the runs start at
// an offset within a vector that differs between the view and the dense
// buffer, tile by tile.
TEST(PackCudaEmulation, VectorTilesMisaligned) {
  std::mt19937_64 rng(11);
  for (DType dtype : kDtypes) {
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    for (int64_t shift = es; shift < 16; shift += es)
      for (const Layout& l : misalignedVectorTileLayouts(dtype, shift))
        roundTrip({l}, rng(), 3 + rng() % 3, static_cast<size_t>((shift * 5) % 16));
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

// A vector tile's largest shared-memory index (unit (edgeT - 1, edgeI - 1)
// plus the largest shift) lies inside the launch's shared memory.
void expectVecTileFits(const PackDesc& d) {
  const int64_t v = d.vecBytes / d.unit;
  const int64_t last = int64_t{d.edgeT - 1} * d.pitch + d.edgeI - 1 + v - 1;
  EXPECT_LT(last * d.unit + d.unit, int64_t{kSmemBytes});
  EXPECT_GE(d.pitch, d.edgeI);
  EXPECT_EQ(d.edgeT % v, 0);
  if (!d.wholeRows) EXPECT_EQ(d.pitch % v, 0);
  if (!d.wholeRows) EXPECT_GE(d.pitch, d.edgeI + v - 1) << "a row and its shift";
  if (d.swizzle) EXPECT_GE(d.pitch / v, 8) << "rotations of up to 7 vectors wrap once";
  EXPECT_FALSE(d.swizzle && d.wholeRows);
}

// A plane tile's rows of shared memory fit the launch's shared memory, its
// vectors the threads' slots, and its tiles along t are whole vectors.
void expectPlaneTileFits(const PackDesc& d) {
  const int64_t v = 16 / d.unit;
  EXPECT_EQ(d.pitch % 2, 1) << "an odd pitch spreads a warp's view accesses";
  EXPECT_GE(d.pitch, d.edgeI);
  EXPECT_LE(int64_t{d.edgeT} / v * d.pitch * 16, int64_t{kPlaneTileBytes});
  EXPECT_LE(kPlaneTileBytes, kSmemBytes);
  EXPECT_LE(int64_t{d.edgeT} / v * d.edgeI, int64_t{kThreads} * kPlaneSlots);
  EXPECT_EQ(d.edgeT % v, 0);
  EXPECT_EQ(int64_t{d.runVectors[0].divisor} * v, d.edgeT);
  EXPECT_GE(d.runVectors[1].divisor, 1u);
  EXPECT_LE(d.runVectors[1].divisor, d.runVectors[0].divisor);
  EXPECT_EQ(d.planeRow.divisor, static_cast<uint32_t>(d.edgeI));
}

TEST(PackCudaEmulation, BenchmarkViewsTakeTheFastLoops) {
  // bf16 [2,16,21,160,90]: plane tiles of 80 x 90 (whole dense rows of 90),
  // rows of 8 dense rows 91 chunks apart, view runs in pairs.
  const PackDesc transposed = planOf(transposedLatent());
  EXPECT_EQ(transposed.kind, kPlaneTiled);
  EXPECT_EQ(transposed.unit, 2);
  EXPECT_EQ(transposed.edgeI, 90);
  EXPECT_TRUE(planePairs<uint16_t>(transposed));
  EXPECT_EQ(transposed.edgeT, 80);
  EXPECT_EQ(transposed.pitch, 91);
  EXPECT_EQ(transposed.items, 2u * 16 * 21 * 2);
  expectPlaneTileFits(transposed);
  EXPECT_EQ(transposed.runVectors[1].divisor, 10u) << "both tiles of a plane are whole";
  // Each tile its own block (an H200 holds 132 x 6 plane blocks at once),
  // and a grid capped below the tiles: blocks stride over them.
  PackArgs args{};
  args.piece[0] = transposed;
  EXPECT_EQ(assignBlocks(&args, 1, uint64_t{132} * kMinPlaneBlocksPerSm * kPlaneMaxWaves),
            static_cast<int>(transposed.items));
  EXPECT_EQ(assignBlocks(&args, 1, 528), 528);
  const PackDesc sliced = planOf(slicedLatent());
  EXPECT_EQ(sliced.kind, kStrided);
  EXPECT_EQ(sliced.unit, 16);
  // Channels-last: C against H * W = 14400, rows apart, 64 wide.
  const PackDesc cl = planOf(channelsLast(DType::kFloat32, {1, 512, 90, 160}));
  EXPECT_EQ(cl.kind, kVecTiled);
  EXPECT_EQ(cl.vecBytes, 16);
  EXPECT_EQ(cl.wholeRows, 0);
  EXPECT_EQ(cl.edgeI, kLargeTile);
  expectVecTileFits(cl);
}

// Which loop and vector each kind of view gets.
TEST(PackCudaEmulation, TilePlans) {
  for (DType dtype : kDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    // Innermost stride 48 elements: a multiple of any vector, and a
    // contiguous plane: plane tiles, one per plane.
    const PackDesc plane = planOf(build("2d^T", dtype, {64, 48}, {}, {1, 0}));
    EXPECT_EQ(plane.kind, kPlaneTiled);
    EXPECT_EQ(plane.pitch, 65);
    EXPECT_EQ(plane.edgeT, es == 8 ? 24 : 48) << "rows of 64 x 8 bytes: 30 in 16 KB";
    EXPECT_EQ(plane.items, es == 8 ? 2u : 1u);
    expectPlaneTileFits(plane);
    // The same off 16-byte alignment: vector tiles. A pitch of 64 units
    // would put a column in one bank: rows apart, and rotated where a row
    // holds 8 vectors or more.
    const PackDesc even = planOf(build("2d^T shifted", dtype, {64, 48}, {}, {1, 0}, 8));
    EXPECT_EQ(even.kind, kVecTiled);
    EXPECT_EQ(even.vecBytes, 16);
    EXPECT_EQ(even.wholeRows, 0);
    EXPECT_EQ(even.swizzle, es > 1 ? 1 : 0);
    expectVecTileFits(even);
    // Innermost stride 70 elements: plane tiles where 70 is whole vectors,
    // 8-byte vectors where 70 units are a multiple of one, else unit tiles.
    const PackDesc seventy = planOf(build("2d^T", dtype, {64, 70}, {}, {1, 0}));
    if (es == 8) {
      EXPECT_EQ(seventy.kind, kPlaneTiled);
      expectPlaneTileFits(seventy);
    } else if (es == 4) {
      EXPECT_EQ(seventy.kind, kVecTiled);
      EXPECT_EQ(seventy.vecBytes, 8);
      expectVecTileFits(seventy);
    } else {
      EXPECT_EQ(seventy.kind, kTiled);
    }
    // Stride -1 along the tile dimension: unit tiles.
    EXPECT_EQ(planOf(build("reversed^T", dtype, {3, 70, 64}, {{}, {}, {0, 1, -1, true}},
                           {0, 2, 1})).kind,
              kTiled);
    // Planes with gaps between the rows (t sliced): vector tiles.
    EXPECT_EQ(planOf(build("sliced plane^T", dtype, {2, 40, 64}, {{}, {}, {0, 1, 48}}, {0, 2, 1}))
                  .kind,
              kVecTiled);
    // Rows too long for a tile of whole rows: 64 wide.
    const PackDesc longRows = planOf(build("long rows", dtype, {3, 1504, 24}, {}, {0, 2, 1}));
    EXPECT_EQ(longRows.kind, kVecTiled);
    EXPECT_EQ(longRows.wholeRows, 0);
    expectVecTileFits(longRows);
  }
}

// Plane tiles on every dtype, planes in one and several tiles (the last
// shorter), odd and even rows, batches with gaps and reversed, with 1 to 7
// blocks (each looping over tiles) and with more blocks than tiles.
TEST(PackCudaEmulation, PlaneTiles) {
  uint64_t seed = 100;
  for (DType dtype : kDtypes)
    for (const Layout& l : planeTileLayouts(dtype)) {
      SCOPED_TRACE(l.describe());
      EXPECT_EQ(planOf(l).kind, kPlaneTiled);
      expectPlaneTileFits(planOf(l));
      roundTrip({l}, seed, 1 + seed % 7);
      ++seed;
    }
  for (DType dtype : kDtypes) roundTrip({build("plane^T", dtype, {3, 90, 160}, {}, {0, 2, 1})}, 7, 1000);
  roundTrip({transposedLatent()}, seed, 200);
  // pack_cuda_test's batch of three kernels: plane tiles, vector tiles and
  // the strided loop.
  std::vector<Layout> mixed = planeTileLayouts(DType::kFloat32);
  mixed.resize(kPackCudaMaxPieces - 3);
  mixed.push_back(transposedLatent());
  mixed.push_back(slicedLatent());
  mixed.push_back(channelsLast(DType::kFloat32, {1, 40, 90, 160}));
  EXPECT_EQ(planOf(mixed.back()).kind, kVecTiled);
  roundTrip(mixed, seed, 50);
}

// Which planes take several tiles, and how many rows each.
TEST(PackCudaEmulation, PlaneTileEdges) {
  // bf16, rows of 255 (pitch 255): 4 rows of 8 = 32 dense rows a tile at
  // most; 336 in 11 tiles of 32, the last 16.
  const PackDesc bf16 = planOf(build("plane^T", DType::kBFloat16, {2, 255, 336}, {}, {0, 2, 1}));
  EXPECT_EQ(bf16.kind, kPlaneTiled);
  EXPECT_EQ(bf16.edgeT, 32);
  EXPECT_EQ(bf16.items, 2u * 11);
  EXPECT_EQ(bf16.runVectors[1].divisor, 2u);
  // uint8, rows of 128 (pitch 129): 7 rows of 16 = 112 at most; 336 in 3.
  const PackDesc u8 = planOf(build("plane^T", DType::kUInt8, {1, 128, 336}, {}, {0, 2, 1}));
  EXPECT_EQ(u8.kind, kPlaneTiled);
  EXPECT_EQ(u8.pitch, 129);
  EXPECT_EQ(u8.edgeT, 112);
  EXPECT_EQ(u8.items, 3u);
  // Rows of 1500 bf16: a row of 8 dense rows does not fit: vector tiles.
  EXPECT_EQ(planOf(build("long plane^T", DType::kBFloat16, {1, 1500, 64}, {}, {0, 2, 1})).kind,
            kVecTiled);
  // bf16 rows of 255, planes of 48 rows: two even tiles would have runs of
  // 48 bytes: a tile of 32 and one of 16.
  const PackDesc uneven = planOf(build("plane^T", DType::kBFloat16, {1, 255, 48}, {}, {0, 2, 1}));
  EXPECT_EQ(uneven.kind, kPlaneTiled);
  EXPECT_EQ(uneven.edgeT, 32);
  EXPECT_EQ(uneven.items, 2u);
  EXPECT_EQ(uneven.runVectors[1].divisor, 2u);
  // f32 rows of 255: 16 dense rows a tile, runs of 64 bytes: plane tiles;
  // rows of 257: 12 rows, 48 bytes: other tiles.
  EXPECT_EQ(planOf(build("plane^T", DType::kFloat32, {1, 255, 64}, {}, {0, 2, 1})).kind,
            kPlaneTiled);
  EXPECT_NE(planOf(build("plane^T", DType::kFloat32, {1, 257, 64}, {}, {0, 2, 1})).kind,
            kPlaneTiled);
  // Storage or dense pointers off 16 bytes, rows (t) not whole vectors: not
  // plane tiles, moved all the same.
  for (DType dtype : kDtypes) {
    const int64_t es = static_cast<int64_t>(dtype_size(dtype));
    for (int64_t shift = es; shift < 16; shift += es) {
      const Layout l = build("plane^T shifted", dtype, {2, 90, 160}, {}, {0, 2, 1}, shift);
      EXPECT_NE(planOf(l).kind, kPlaneTiled);
      roundTrip({l}, static_cast<uint64_t>(shift), 5);
      roundTrip({build("plane^T", dtype, {2, 90, 160}, {}, {0, 2, 1})}, 3, 5,
                static_cast<size_t>(shift));
    }
    roundTrip({build("odd rows^T", dtype, {2, 90, 168 - 8 / es}, {}, {0, 2, 1})}, 4, 5);
  }
}

}  // namespace
}  // namespace diffcoll
