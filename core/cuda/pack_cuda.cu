// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// CUDA pack/unpack kernels. Each piece is planned on the host into a
// description in "units" (1, 2, 4, 8 or 16 bytes moved by one access); the
// pieces of a batch go to one launch, each owning a range of its blocks.
// Four copy loops, in three kernels (plane tiles, vector tiles, the rest):
//  - strided: each thread moves units i, i + threads, ... of the dense
//    buffer, finding their place in the view by division over the coalesced
//    shape (a multiply and a shift). Contiguous rows move as 16-byte vectors
//    when their length and the pointers allow (rows with gaps).
//  - vector tiles: when the view's innermost dimension is strided and
//    another has stride +1 (a transpose, channels-last), tiles pass through
//    shared memory and both global sides move 16- or 8-byte vectors: the
//    view along its stride-1 dimension, the dense buffer along its rows
//    (one contiguous run per tile when a tile spans whole rows). Shared
//    memory is read and written a unit at a time on the transposed side.
//  - plane tiles, the common case of vector tiles: the view's last two
//    dimensions are a contiguous plane with its two dimensions swapped (H
//    and W of a latent; channels-last with few pixels), its rows whole
//    16-byte vectors, its pointers aligned. A tile is whole dense rows, so
//    both global sides move aligned 16-byte vectors and nothing else: the
//    dense side one flat run, the view side one run per dense column, with
//    no partial vectors and no division per unit. Shared memory holds the
//    tile in dense order, padded so that the view side's unit accesses
//    spread over the banks; 2-byte units of two view runs move there as
//    one 4-byte word. Each block moves one tile, and the SMs whose blocks
//    finish first take the next tiles.
//  - tiled: the same with one unit per access, for what vectors cannot do
//    (stride -1, strides that are not a multiple of a vector).
// All loops are limited by the bytes each SM keeps in flight, not by the
// width of one access: a thread issues all its loads (10 units of the
// strided loop, 16 units of a unit tile, 4 vectors of a vector or plane
// tile) before the first store. Unit tiles are 64 x 64 units for units
// of up to 4 bytes (32 x 32 of 8-byte units, and for dimensions too short to
// fill 64), so a warp access is a run of 32 units.
// Launches ask for programmatic dependent launch on sm_90 and later (on
// the caller's own streams, outside graph capture): the kernel waits for the
// work before it in the stream (griddepcontrol.wait) before touching
// memory, so its launch overlaps that work's tail.
// All index math on the device is 32-bit: the host cuts pieces into parts of
// fewer than 2^31 units.
#include "pack_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>

#include "../error.h"
#include "dependent_launch.cuh"
#include "per_device.cuh"

namespace diffcoll {
namespace {

constexpr int kDims = kMaxViewDims + 1;  // the view's dimensions + the bytes of one element
constexpr int kThreads = 256;
constexpr uint64_t kMaxUnits = (uint64_t{1} << 31) - 1;  // per part, for 32-bit index math
constexpr int kTileRows = kThreads / 32;  // warps of a block: rows of a tile moved at once
constexpr int kSmallTile = 32;            // edge of a tile of 8-byte units or short dimensions
constexpr int kLargeTile = 64;            // edge of a tile of units of up to 4 bytes
constexpr int kTileMinEdge = 16;  // a smaller tile wastes more threads than it saves
constexpr int kTileMaxUnit = 8;   // bytes; bounds the static shared memory
constexpr int kVecTileBytes = 16 * 1024;  // the units of a vector tile, at most
constexpr int kVecSlots = 4;              // vectors a thread has in flight per tile side
constexpr int kVecMinRun = 64;            // bytes: a shorter run of the view wastes its sectors
// Vector and plane tiles launch up to this many resident blocks' worth, a
// block a tile, so that the SMs whose blocks finish early take the next
// ones: a latent's 1344 plane tiles on 528 resident blocks left a quarter
// of the SMs one tile more than the rest when each block strode over its
// share (docs/PERFORMANCE.md). The strided loop launches one resident set
// and strides over the work, which keeps every thread's share equal.
constexpr int kVecMaxWaves = 4;
constexpr int kPlaneMaxWaves = 32;
// Plane tiles: each thread holds kPlaneSlots 16-byte vectors of a tile in
// flight, so a tile is at most kPlaneTileBytes and one pass of the block
// moves it.
constexpr int kPlaneSlots = 4;
constexpr int kPlaneTileBytes = kThreads * kPlaneSlots * 16;

// Units a thread of the strided loop has in flight: 160 bytes of 16-byte
// units (rows with gaps), 80 of 8-byte units; index math bounds the useful
// depth of smaller ones. The grid is one resident set, so a tensor of up to
// 10 units a thread moves in one round of loads: a latent of 19 MB on an
// H200 has 9, and at 8 units its last round of one unit cost a whole load
// latency (pack with gaps 79% of copy bandwidth at 8, 82% at 10; 16 units
// at 2 blocks an SM: 77%; docs/PERFORMANCE.md). 64 registers hold 10
// without spills.
constexpr int kUnitsInFlight = 10;

// Resident blocks per SM asked of the register allocator: 4 (64 registers,
// 1024 threads) holds 160 KB of loads in flight per SM, which HBM's latency
// asks for, without spills.
constexpr int kMinBlocksPerSm = 4;
// The vector tiles' kernel keeps 4 vectors a thread in flight in 80
// registers (3 blocks, 768 threads, 48 KB of loads per SM): at 64 it spills.
constexpr int kMinVecBlocksPerSm = 3;
// The plane tiles' kernel holds one tile's 4 vectors a thread in 40
// registers: 6 blocks an SM (1536 threads, up to 6 tiles in flight). The
// transposed latent's pack / unpack on an H200 at 4 to 8 blocks an SM:
// 12.45-12.59 / 11.24, 12.60 / 11.25, 12.22-12.25 / 11.36-11.40,
// 12.28-12.32 / 11.47-11.56 and 12.28-12.31 / 11.53-11.55 us; with runs
// in pairs (planePairs) at 5, 6 and 8: 12.90-12.93, 11.85-12.00 and 12.21-12.27
// us pack (docs/PERFORMANCE.md).
constexpr int kMinPlaneBlocksPerSm = 6;

// The copy loops are __host__ __device__, so that they can be checked on a
// machine without a GPU; the host compiler does not know `#pragma unroll`.
#ifdef __CUDA_ARCH__
#define PACK_UNROLL _Pragma("unroll")
#else
#define PACK_UNROLL
#endif

enum Kind : int32_t { kStrided, kTiled, kVecTiled, kPlaneTiled };

// The kernels: one for the strided and unit-tiled loops, one for each kind
// of vector tiles, so that each keeps its registers and occupancy to itself.
enum Loop : int { kLoopGeneral, kLoopVec, kLoopPlane };

__host__ __device__ inline uint32_t mulhi(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

// Division by a divisor fixed at plan time, as a multiply-high and a shift
// (Granlund & Montgomery; the form of PyTorch's IntDivider). Exact for
// divisor and dividend below 2^31.
struct FastDiv {
  uint32_t divisor, magic, shift;

  void init(uint32_t d) {
    divisor = d;
    shift = 0;
    while ((uint64_t{1} << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  // n becomes n / divisor; returns n % divisor.
  __host__ __device__ uint32_t divmod(uint32_t& n) const {
    const uint32_t q = (mulhi(n, magic) + n) >> shift;
    const uint32_t r = n - q * divisor;
    n = q;
    return r;
  }
};

// A piece (or part of one), reduced to the fewest dimensions, in units. The
// innermost dimension is last; the dense buffer is row-major over `shape`.
struct PackDesc {
  char* strided;            // the view's element (0, ..., 0)
  char* dense;
  uint32_t items;           // units (kStrided) or tiles (kTiled)
  int32_t ndim;
  int32_t unit;             // bytes
  int32_t kind;
  int32_t tileDim;          // kTiled: the dimension of stride +-1
  int32_t tileEdge;         // kTiled: kSmallTile or kLargeTile
  int32_t vecBytes;         // kVecTiled: bytes of one vector (8 or 16)
  int32_t edgeT, edgeI;     // kVecTiled: units of a tile along tileDim and the innermost dim
                            // kPlaneTiled: dense rows of a tile, and the units of a dense row
  int32_t pitch;            // kVecTiled: shared-memory units from one index of tileDim to the next
                            // kPlaneTiled: shared-memory chunks from one row of V dense rows to the next
  int32_t wholeRows;        // kVecTiled: a tile spans whole dense rows (one contiguous run)
  int32_t swizzle;          // kVecTiled: rows of shared memory rotated by vectors (below)
  int64_t shape[kDims];
  int64_t stride[kDims];    // in units, any sign
  FastDiv div[kDims];       // shape[k] (kTiled: of the dimensions other than in and t)
  FastDiv tilesIn, tilesT;  // tiles along the innermost dimension and tileDim
  FastDiv planeRow;         // kPlaneTiled: edgeI
  FastDiv runVectors[2];    // kPlaneTiled: vectors of a view run, in a whole and the last tile
};

// The kernel parameter, passed by value: a launch needs no staging memory and
// graph capture records it with the node.
struct PackArgs {
  PackDesc piece[kPackCudaMaxPieces];
  int32_t blockEnd[kPackCudaMaxPieces];  // piece p owns blocks [blockEnd[p-1], blockEnd[p])
};
static_assert(sizeof(PackArgs) <= 4096, "kernel parameters of up to 4 KB launch everywhere");

// ---------------------------------------------------------------- device side

// Offset in the view, in units, of the element at dense index i.
__host__ __device__ inline int64_t stridedOffset(const PackDesc& d, uint32_t i) {
  int64_t offset = 0;
  for (int k = d.ndim - 1; k > 0; --k) offset += static_cast<int64_t>(d.div[k].divmod(i)) * d.stride[k];
  return offset + static_cast<int64_t>(i) * d.stride[0];
}

// Thread `thread` of `threads` moves units thread, thread + threads, ...;
// its loads all issue before their stores, to keep memory busy.
template <bool kPack, typename U>
__host__ __device__ void copyStrided(const PackDesc& d, uint32_t thread, uint32_t threads) {
  constexpr int kUnits = kUnitsInFlight;
  U* strided = reinterpret_cast<U*>(d.strided);
  U* dense = reinterpret_cast<U*>(d.dense);
  // i + threads * kUnits stays below 2^32: items < 2^31, threads (one
  // resident set) < 2^27.
  for (uint32_t base = thread; base < d.items; base += threads * kUnits) {
    // The view's offsets are worked out where they are used: unpack keeps
    // none across its loads, which leaves the registers to the values.
    U value[kUnits];
    PACK_UNROLL
    for (int u = 0; u < kUnits; ++u) {
      const uint32_t i = base + u * threads;
      if (i < d.items) value[u] = kPack ? strided[stridedOffset(d, i)] : dense[i];
    }
    PACK_UNROLL
    for (int u = 0; u < kUnits; ++u) {
      const uint32_t i = base + u * threads;
      if (i < d.items) {
        if (kPack) dense[i] = value[u];
        else strided[stridedOffset(d, i)] = value[u];
      }
    }
  }
}

// A tile covers up to `edge` indices of the innermost dimension ("in",
// from i0) and of dimension tileDim ("t", from t0), at one index of every
// other dimension. In the view t has stride +-1; in the dense buffer in does.
struct Tile {
  int64_t strided;  // units to element (t0, i0) in the view
  int64_t dense;    // ... and in the dense buffer
  int64_t tDense;   // dense stride of t
  int tCount, iCount;
};

// Tile k, the tiles numbered row-major over (other dimensions, t, in), of
// edgeT x edgeI units.
__host__ __device__ inline Tile tileAt(const PackDesc& d, uint32_t k, int64_t edgeT, int64_t edgeI) {
  const int in = d.ndim - 1, t = d.tileDim;
  const int64_t i0 = static_cast<int64_t>(d.tilesIn.divmod(k)) * edgeI;
  const int64_t t0 = static_cast<int64_t>(d.tilesT.divmod(k)) * edgeT;
  Tile tile = {0, 0, 0, 0, 0};
  int64_t denseStride = 1;
  for (int j = in; j >= 0; --j) {
    if (j == t) {
      tile.tDense = denseStride;
    } else if (j != in) {
      const int64_t c = d.div[j].divmod(k);
      tile.strided += c * d.stride[j];
      tile.dense += c * denseStride;
    }
    denseStride *= d.shape[j];
  }
  tile.strided += t0 * d.stride[t] + i0 * d.stride[in];
  tile.dense += t0 * tile.tDense + i0;
  tile.tCount = static_cast<int>(d.shape[t] - t0 < edgeT ? d.shape[t] - t0 : edgeT);
  tile.iCount = static_cast<int>(d.shape[in] - i0 < edgeI ? d.shape[in] - i0 : edgeI);
  return tile;
}

// buf[i][t] holds element (t0 + t, i0 + i). Each row of buf is padded by one
// 4-byte word (one unit for 8-byte units), so that a warp reading a column
// (32 rows) touches 32 different banks: the transposed accesses are as fast
// as the straight ones.
template <typename U>
constexpr int kTilePad = sizeof(U) >= 4 ? 1 : 4 / static_cast<int>(sizeof(U));
template <typename U, int kEdge>
using TileBuf = U (*)[kEdge + kTilePad<U>];
template <typename U, int kEdge>
constexpr int kTileBytes = kEdge * (kEdge + kTilePad<U>) * static_cast<int>(sizeof(U));

// Moves `rows` x `cols` of a kEdge x kEdge tile, row-major in buf when
// kRowMajor: buf[r][c] <-> mem[c * colStride + r * rowStride] for c < cols,
// r < rows. Thread (lane, warp) takes columns lane, lane + 32, ... and rows
// warp, warp + kTileRows, ...: each warp access is a run of 32 consecutive
// units of the side's stride-1 dimension. A thread's loads all issue before
// their results are used.
template <bool kLoad, bool kRowMajor, typename U, int kEdge>
__host__ __device__ inline void tileRows(U* mem, int64_t colStride, int64_t rowStride, int rows,
                                         int cols, TileBuf<U, kEdge> buf, int lane, int warp) {
  constexpr int kCols = kEdge / 32, kRows = kEdge / kTileRows;
  const int64_t rowStep = rowStride * kTileRows;
  U value[kCols][kRows];
  PACK_UNROLL
  for (int j = 0; j < kCols; ++j) {
    const int c = lane + 32 * j;
    if (c >= cols) break;
    const U* p = mem + c * colStride + warp * rowStride;
    PACK_UNROLL
    for (int k = 0; k < kRows; ++k) {
      const int r = warp + k * kTileRows;
      if (r < rows) value[j][k] = kLoad ? p[k * rowStep] : kRowMajor ? buf[r][c] : buf[c][r];
    }
  }
  PACK_UNROLL
  for (int j = 0; j < kCols; ++j) {
    const int c = lane + 32 * j;
    if (c >= cols) break;
    U* p = mem + c * colStride + warp * rowStride;
    PACK_UNROLL
    for (int k = 0; k < kRows; ++k) {
      const int r = warp + k * kTileRows;
      if (r >= rows) break;
      if (!kLoad) p[k * rowStep] = value[j][k];
      else if (kRowMajor) buf[r][c] = value[j][k];
      else buf[c][r] = value[j][k];
    }
  }
}

// One side of a tile into (kLoad) or out of buf: the view (rows along in,
// columns along t) or the dense buffer (rows along t, columns along in).
template <bool kLoad, typename U, int kEdge>
__host__ __device__ inline void tileSide(const PackDesc& d, const Tile& tile, bool view,
                                         TileBuf<U, kEdge> buf, int lane, int warp) {
  if (view)
    tileRows<kLoad, true, U, kEdge>(reinterpret_cast<U*>(d.strided) + tile.strided,
                                    d.stride[d.tileDim], d.stride[d.ndim - 1], tile.iCount,
                                    tile.tCount, buf, lane, warp);
  else
    tileRows<kLoad, false, U, kEdge>(reinterpret_cast<U*>(d.dense) + tile.dense, int64_t{1},
                                     tile.tDense, tile.tCount, tile.iCount, buf, lane, warp);
}

// Block `block` of `blocks` moves tiles block, block + blocks, ...: each
// thread reads its share of the source side into buf, the block meets, each
// thread writes its share of the other side. The trip count depends on the
// block only: every thread reaches the barriers.
template <bool kPack, typename U, int kEdge>
__device__ __forceinline__ void copyTiles(const PackDesc& d, uint32_t block, uint32_t blocks, void* smem) {
  TileBuf<U, kEdge> buf = reinterpret_cast<TileBuf<U, kEdge>>(smem);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (uint32_t k = block; k < d.items; k += blocks) {
    const Tile tile = tileAt(d, k, d.tileEdge, d.tileEdge);
    tileSide<true, U, kEdge>(d, tile, kPack, buf, lane, warp);  // in from the source side
    __syncthreads();
    tileSide<false, U, kEdge>(d, tile, !kPack, buf, lane, warp);
    __syncthreads();
  }
}

// ------------------------------------------------------------ vector tiles
// A vector tile holds element (t0 + t, i0 + i) at buf[t * pitch + i + shift]:
// row-major along the dense side, so that the dense side moves whole vectors
// between global and shared memory. `shift` (under one vector) puts every
// unit at the same offset within a vector in both memories, and the plan
// makes the pitch a multiple of a vector unless the tile is one run.
// The view side writes (or reads) buf a unit at a time down a column, the
// lanes of a warp at t, t + v, t + 2v, ... (v units a vector): with a pitch
// of whole vectors those fall in one bank. So tiles of rows apart rotate
// row t by (t / v) % 8 vectors (`swizzle`; rows hold the shifted row and
// the rotation wraps within it), which spreads such lanes over 8 vectors'
// banks; dense-side vectors stay whole and aligned.

// One side of a vector tile in global memory: `runs` runs of `length`
// contiguous units, `runStride` units apart, cut into `slots` vectors per
// run at vector-aligned addresses (the first from `base`, the run's first
// unit `phase` units into it). Every run has the same phase.
template <typename U>
struct VecSide {
  U* base;
  int64_t runStride;
  int32_t runs, slots, phase, length;
};

template <typename U>
struct VecTile {
  VecSide<U> view;   // runs along t, one for each i
  VecSide<U> dense;  // runs along i, one for each t, or one run of the whole tile
  int32_t shift;
};

// Units from the last vector-aligned address up to p.
template <typename U, typename W>
__host__ __device__ inline int32_t vecPhase(const U* p) {
  return static_cast<int32_t>(reinterpret_cast<uintptr_t>(p) % sizeof(W) / sizeof(U));
}

template <typename U, typename W>
__host__ __device__ inline VecSide<U> vecSide(U* first, int64_t runStride, int32_t runs,
                                              int32_t length) {
  constexpr int32_t kV = sizeof(W) / sizeof(U);
  const int32_t phase = vecPhase<U, W>(first);
  return {first - phase, runStride, runs, (phase + length + kV - 1) / kV, phase, length};
}

template <typename U, typename W>
__host__ __device__ inline VecTile<U> vecTileAt(const PackDesc& d, uint32_t k) {
  const Tile tile = tileAt(d, k, d.edgeT, d.edgeI);
  U* view = reinterpret_cast<U*>(d.strided) + tile.strided;
  U* dense = reinterpret_cast<U*>(d.dense) + tile.dense;
  VecTile<U> v;
  v.view = vecSide<U, W>(view, d.stride[d.ndim - 1], tile.iCount, tile.tCount);
  v.dense = d.wholeRows ? vecSide<U, W>(dense, 0, 1, tile.tCount * tile.iCount)
                        : vecSide<U, W>(dense, tile.tDense, tile.tCount, tile.iCount);
  v.shift = v.dense.phase;
  return v;
}

// Index in buf of element (t, i) of a vector tile of kV-unit vectors.
template <int32_t kV>
__host__ __device__ inline int32_t vecTileIndex(const PackDesc& d, int32_t shift, int32_t t,
                                                int32_t i) {
  if (!d.swizzle) return t * d.pitch + i + shift;
  const int32_t x = i + shift, columns = d.pitch / kV;
  int32_t column = x / kV + (t / kV) % 8;  // columns >= 8: one wrap at most
  if (column >= columns) column -= columns;
  return t * d.pitch + column * kV + x % kV;
}

// Moves one side of a vector tile between global memory and buf (kToSmem:
// into buf): thread `thread` takes slots thread, thread + kThreads, ...,
// kVecSlots of them loaded before the first is stored. Consecutive threads
// take consecutive slots of a run: a warp access is a run of whole vectors.
// Unit j of run r is element (r, j) on the dense side (kDense; in a tile of
// whole rows the one run is the tile, buf[j + shift]), where a whole slot is
// one aligned vector in buf too, and element (j, r) on the view side. The
// few slots that a run covers only in part (at its ends) move at once, unit
// by unit.
template <bool kToSmem, bool kDense, typename U, typename W>
__host__ __device__ inline void vecSideCopy(const PackDesc& d, const VecSide<U>& s, U* buf,
                                            int32_t shift, int thread) {
  constexpr int32_t kV = sizeof(W) / sizeof(U);
  auto at = [&](int32_t run, int32_t j) {
    return kDense ? vecTileIndex<kV>(d, shift, run, j) : vecTileIndex<kV>(d, shift, j, run);
  };
  union Vec {
    W w;
    U u[kV];
  };
  const int32_t total = s.runs * s.slots;
  for (int32_t q0 = thread; q0 < total; q0 += kThreads * kVecSlots) {
    Vec v[kVecSlots];
    U* global[kVecSlots];
    int32_t run[kVecSlots];  // -1: no slot, or moved already
    int32_t first[kVecSlots];  // j of the slot's unit 0 (may be < 0)
    PACK_UNROLL
    for (int k = 0; k < kVecSlots; ++k) run[k] = -1;
    PACK_UNROLL
    for (int k = 0; k < kVecSlots; ++k) {
      const int32_t q = q0 + k * kThreads;
      if (q >= total) break;
      const int32_t r = s.runs == 1 ? 0 : q / s.slots;
      const int32_t slot = q - r * s.slots;
      const int32_t j0 = slot * kV - s.phase;
      global[k] = s.base + r * s.runStride + slot * kV;
      if (j0 >= 0 && j0 + kV <= s.length) {
        run[k] = r;
        first[k] = j0;
        if (kToSmem) v[k].w = *reinterpret_cast<const W*>(global[k]);
        else if (kDense) v[k].w = *reinterpret_cast<const W*>(buf + at(r, j0));
        else
          PACK_UNROLL
          for (int e = 0; e < kV; ++e) v[k].u[e] = buf[at(r, j0 + e)];
      } else {
        for (int e = 0; e < kV; ++e) {
          const int32_t j = j0 + e;
          if (j < 0 || j >= s.length) continue;
          if (kToSmem) buf[at(r, j)] = global[k][e];
          else global[k][e] = buf[at(r, j)];
        }
      }
    }
    PACK_UNROLL
    for (int k = 0; k < kVecSlots; ++k) {
      if (run[k] < 0) continue;
      if (!kToSmem) *reinterpret_cast<W*>(global[k]) = v[k].w;
      else if (kDense) *reinterpret_cast<W*>(buf + at(run[k], first[k])) = v[k].w;
      else
        PACK_UNROLL
        for (int e = 0; e < kV; ++e) buf[at(run[k], first[k] + e)] = v[k].u[e];
    }
  }
}

// Both sides of vector tile k: the source side into buf, then, after every
// thread's part is in, buf out to the other side.
template <bool kPack, typename U, typename W>
__host__ __device__ inline void vecTileIn(const PackDesc& d, const VecTile<U>& tile, U* buf,
                                          int thread) {
  if (kPack) vecSideCopy<true, false, U, W>(d, tile.view, buf, tile.shift, thread);
  else vecSideCopy<true, true, U, W>(d, tile.dense, buf, tile.shift, thread);
}
template <bool kPack, typename U, typename W>
__host__ __device__ inline void vecTileOut(const PackDesc& d, const VecTile<U>& tile, U* buf,
                                           int thread) {
  if (kPack) vecSideCopy<false, true, U, W>(d, tile.dense, buf, tile.shift, thread);
  else vecSideCopy<false, false, U, W>(d, tile.view, buf, tile.shift, thread);
}

// Block `block` of `blocks` moves vector tiles block, block + blocks, ...;
// the trip count depends on the block only: every thread reaches the barriers.
template <bool kPack, typename U, typename W>
__device__ __forceinline__ void copyVecTiles(const PackDesc& d, uint32_t block, uint32_t blocks,
                                             void* smem) {
  U* buf = static_cast<U*>(smem);
  for (uint32_t k = block; k < d.items; k += blocks) {
    const VecTile<U> tile = vecTileAt<U, W>(d, k);
    vecTileIn<kPack, U, W>(d, tile, buf, threadIdx.x);
    __syncthreads();
    vecTileOut<kPack, U, W>(d, tile, buf, threadIdx.x);
    __syncthreads();
  }
}

// ------------------------------------------------------------- plane tiles
// The view's last two dimensions are a contiguous plane of I rows (in) of
// T units (t), T a whole number of 16-byte vectors; the dense buffer holds
// the plane transposed, T rows of I units. A tile is dense rows t0 ...
// t0 + rows - 1: in the dense buffer one flat run of rows * I units, in the
// view I runs of `rows` units, T units apart; each side is whole vectors,
// aligned (the plan checks the pointers and strides).
// Shared memory holds the tile in dense order, unit t * I + i of the tile
// (t counted from t0), in rows of V dense rows (V units a vector): I
// 16-byte chunks a row, rows `pitch` chunks apart. The view side moves
// vector s of run i, units t = s * V + e, which all lie in row s: unit
// s * V * pitch + e * I + i. The lanes of a warp take consecutive vectors s
// of a run, one row apart: an odd pitch puts 8 such lanes in 8 chunks'
// different banks, where a pitch of I chunks (I a multiple of 8) would put
// them all in one. Dense chunk q lies at q + q / I * (pitch - I): whole
// and aligned, so the dense side moves vectors in shared memory too.

template <typename U>
constexpr int32_t kPlaneVector = 16 / static_cast<int32_t>(sizeof(U));  // units of a vector

template <typename U>
struct PlaneTile {
  U* view;          // unit (t0, 0) of the tile in the view; run i starts i * T units on
  uint4* dense;     // the tile's flat run in the dense buffer
  int32_t vectors;  // of either side
  FastDiv run;      // vectors of a view run
};

// Tile k is tile k % tilesT of plane k / tilesT, the planes numbered
// row-major over the dimensions before t (tileAt's order, with one tile
// along the innermost dimension); in the dense buffer the planes lie one
// after another. Every thread of a block works this out for each of its
// tiles, so it is tileAt cut to what a plane needs: a division per
// dimension before t and 32-bit dense offsets (a part's units are below
// 2^31).
template <typename U>
__host__ __device__ inline PlaneTile<U> planeTileAt(const PackDesc& d, uint32_t k) {
  const int t = d.tileDim;
  const uint32_t T = static_cast<uint32_t>(d.shape[t]), I = static_cast<uint32_t>(d.edgeI);
  uint32_t plane = k;
  const uint32_t t0 = d.tilesT.divmod(plane) * static_cast<uint32_t>(d.edgeT);
  const uint32_t rows = T - t0 < static_cast<uint32_t>(d.edgeT) ? T - t0 : d.edgeT;
  int64_t view = t0;  // t has stride 1
  uint32_t rest = plane;
  for (int j = t - 1; j > 0; --j) view += static_cast<int64_t>(d.div[j].divmod(rest)) * d.stride[j];
  if (t > 0) view += static_cast<int64_t>(rest) * d.stride[0];
  PlaneTile<U> p;
  p.view = reinterpret_cast<U*>(d.strided) + view;
  p.dense = reinterpret_cast<uint4*>(reinterpret_cast<U*>(d.dense) + (plane * T + t0) * I);
  p.vectors = static_cast<int32_t>(rows / kPlaneVector<U> * I);
  p.run = d.runVectors[rows == static_cast<uint32_t>(d.edgeT) ? 0 : 1];
  return p;
}

// Vector s of view run i, for vector q of the view side (consecutive q:
// consecutive vectors of a run).
struct PlaneVector {
  int32_t i, s;
};
template <typename U>
__host__ __device__ inline PlaneVector planeVectorAt(const PlaneTile<U>& tile, int32_t q) {
  uint32_t i = static_cast<uint32_t>(q);
  const uint32_t s = tile.run.divmod(i);
  return {static_cast<int32_t>(i), static_cast<int32_t>(s)};
}
template <typename U>
__host__ __device__ inline uint4* planeViewVector(const PackDesc& d, const PlaneTile<U>& tile,
                                                  PlaneVector v) {
  const int32_t T = static_cast<int32_t>(d.stride[d.ndim - 1]);
  return reinterpret_cast<uint4*>(tile.view + v.i * T + v.s * kPlaneVector<U>);
}
// Where dense chunk q of the tile lies in shared memory.
__host__ __device__ inline int32_t planeChunk(const PackDesc& d, int32_t q) {
  uint32_t row = static_cast<uint32_t>(q);
  d.planeRow.divmod(row);
  return q + static_cast<int32_t>(row) * (d.pitch - d.edgeI);
}
// Where unit e of view vector v lies in shared memory.
template <typename U>
__host__ __device__ inline int32_t planeUnit(const PackDesc& d, PlaneVector v, int32_t e) {
  return v.s * kPlaneVector<U> * d.pitch + e * d.edgeI + v.i;
}

template <typename U>
union PlaneUnits {
  uint4 w;
  U u[kPlaneVector<U>];
};

// Runs in pairs: where a unit is 2 bytes and the plane has an even number
// of rows I, the view side moves vector s of runs 2i and 2i + 1 together,
// for pair (i, s) (consecutive pairs: consecutive vectors of two runs).
// Each dense row of the two vectors then has its two units side by side in
// shared memory (units 2i and 2i + 1 of the row), so they move as one
// 4-byte word: half the shared-memory accesses of a unit at a time. The
// transposed latent's pack went from 12.42 to 11.85-11.97 us on an H200
// (docs/PERFORMANCE.md).
template <typename U>
__host__ __device__ inline bool planePairs(const PackDesc& d) {
  return sizeof(U) == 2 && d.edgeI % 2 == 0;
}

// The 2 x 2 transpose of the 2-byte halves of x and y: x becomes their low
// halves (x's lowest), y their high halves. The same both ways: two units
// e, e + 1 of two vectors, or the two runs' units of rows e and e + 1.
__host__ __device__ inline void transposeHalves(uint32_t& x, uint32_t& y) {
  const uint32_t low = (x & 0xffffu) | (y << 16), high = (x >> 16) | (y & 0xffff0000u);
  x = low;
  y = high;
}

// Pair n of thread `thread` (pair thread + n * kThreads): false past the
// tile's last, else *even is its vector of run 2i (run 2i + 1's has i one
// more). Every phase maps pairs here, so that the loads and the
// shared-memory words agree.
template <typename U>
__host__ __device__ inline bool planePairAt(const PlaneTile<U>& tile, int thread, int n,
                                            PlaneVector* even) {
  const int32_t pair = thread + n * kThreads;
  if (2 * pair >= tile.vectors) return false;
  const PlaneVector v = planeVectorAt(tile, pair);
  *even = {2 * v.i, v.s};
  return true;
}

// Thread `thread` takes vectors thread + m * kThreads of each side, m <
// kPlaneSlots: the whole tile; with runs in pairs, the view side's pairs n
// < kPlaneSlots / 2 (planePairAt), into regs[2n] (run 2i) and regs[2n + 1]
// (run 2i + 1).
// The source side into regs (kPack: the view; else the dense run).
template <bool kPack, typename U>
__host__ __device__ inline void planeLoad(const PackDesc& d, const PlaneTile<U>& tile, uint4* regs,
                                          int thread) {
  if (kPack && planePairs<U>(d)) {
    PACK_UNROLL
    for (int n = 0; n < kPlaneSlots / 2; ++n) {
      PlaneVector even;
      if (!planePairAt(tile, thread, n, &even)) break;
      regs[2 * n] = *planeViewVector(d, tile, even);
      regs[2 * n + 1] = *planeViewVector(d, tile, PlaneVector{even.i + 1, even.s});
    }
    return;
  }
  PACK_UNROLL
  for (int m = 0; m < kPlaneSlots; ++m) {
    const int32_t q = thread + m * kThreads;
    if (q < tile.vectors)
      regs[m] = kPack ? *planeViewVector(d, tile, planeVectorAt(tile, q)) : tile.dense[q];
  }
}

// regs into shared memory: view vectors a unit (runs in pairs: a word) at a
// time, dense chunks whole.
template <bool kPack, typename U>
__host__ __device__ inline void planePut(const PackDesc& d, const PlaneTile<U>& tile,
                                         const uint4* regs, U* buf, int thread) {
  if (kPack && planePairs<U>(d)) {
    const int32_t next = d.edgeI / 2;  // words from a unit's row to the next
    PACK_UNROLL
    for (int n = 0; n < kPlaneSlots / 2; ++n) {
      PlaneVector even;
      if (!planePairAt(tile, thread, n, &even)) break;
      uint32_t* row = reinterpret_cast<uint32_t*>(buf + planeUnit<U>(d, even, 0));
      uint32_t x[4] = {regs[2 * n].x, regs[2 * n].y, regs[2 * n].z, regs[2 * n].w};
      uint32_t y[4] = {regs[2 * n + 1].x, regs[2 * n + 1].y, regs[2 * n + 1].z, regs[2 * n + 1].w};
      PACK_UNROLL
      for (int k = 0; k < 4; ++k) {  // units 2k, 2k + 1 of both into rows 2k, 2k + 1
        transposeHalves(x[k], y[k]);
        row[2 * k * next] = x[k];
        row[(2 * k + 1) * next] = y[k];
      }
    }
    return;
  }
  PACK_UNROLL
  for (int m = 0; m < kPlaneSlots; ++m) {
    const int32_t q = thread + m * kThreads;
    if (q >= tile.vectors) break;
    if (kPack) {
      const PlaneVector v = planeVectorAt(tile, q);
      PlaneUnits<U> units;
      units.w = regs[m];
      PACK_UNROLL
      for (int e = 0; e < kPlaneVector<U>; ++e) buf[planeUnit<U>(d, v, e)] = units.u[e];
    } else {
      reinterpret_cast<uint4*>(buf)[planeChunk(d, q)] = regs[m];
    }
  }
}

// Shared memory out to the destination side (kPack: the dense run; else the
// view), a vector (runs in pairs: two) at a time: shared memory answers
// fast, and the registers a whole slot set would take are more resident
// blocks' (kMinPlaneBlocksPerSm).
template <bool kPack, typename U>
__host__ __device__ inline void planeOut(const PackDesc& d, const PlaneTile<U>& tile,
                                         const U* buf, int thread) {
  if (!kPack && planePairs<U>(d)) {
    const int32_t next = d.edgeI / 2;
    PACK_UNROLL
    for (int n = 0; n < kPlaneSlots / 2; ++n) {
      PlaneVector even;
      if (!planePairAt(tile, thread, n, &even)) break;
      const PlaneVector odd{even.i + 1, even.s};
      const uint32_t* row = reinterpret_cast<const uint32_t*>(buf + planeUnit<U>(d, even, 0));
      uint32_t x[4], y[4];
      PACK_UNROLL
      for (int k = 0; k < 4; ++k) {  // rows 2k, 2k + 1 into units 2k, 2k + 1 of both
        x[k] = row[2 * k * next];
        y[k] = row[(2 * k + 1) * next];
        transposeHalves(x[k], y[k]);
      }
      *planeViewVector(d, tile, even) = make_uint4(x[0], x[1], x[2], x[3]);
      *planeViewVector(d, tile, odd) = make_uint4(y[0], y[1], y[2], y[3]);
    }
    return;
  }
  PACK_UNROLL
  for (int m = 0; m < kPlaneSlots; ++m) {
    const int32_t q = thread + m * kThreads;
    if (q >= tile.vectors) break;
    if (kPack) {
      tile.dense[q] = reinterpret_cast<const uint4*>(buf)[planeChunk(d, q)];
    } else {
      const PlaneVector v = planeVectorAt(tile, q);
      PlaneUnits<U> out;
      PACK_UNROLL
      for (int e = 0; e < kPlaneVector<U>; ++e) out.u[e] = buf[planeUnit<U>(d, v, e)];
      *planeViewVector(d, tile, v) = out.w;
    }
  }
}

// Waits for the block on the device; the host emulation runs each phase
// for every thread of the block before the next, so it has nothing to wait for.
__host__ __device__ inline void blockBarrier() {
#ifdef __CUDA_ARCH__
  __syncthreads();
#endif
}

// The tiles of block `block` of `blocks`: block, block + blocks, ... (the
// launch gives each tile its own block up to kPlaneMaxWaves resident sets,
// so most blocks move one). Each tile's source goes into shared memory, and
// after a barrier each thread writes out its part. Runs threads first ...
// first + count - 1 of the block, regs[j] holding the vectors in flight of
// thread first + j: on the device each thread itself (count 1), on the host
// the whole block phase by phase. The trip count depends on the block only:
// every thread reaches the barriers.
template <bool kPack, typename U>
__host__ __device__ inline void planeTiles(const PackDesc& d, uint32_t block, uint32_t blocks,
                                           U* buf, int first, int count,
                                           uint4 (*regs)[kPlaneSlots]) {
  for (uint32_t k = block; k < d.items; k += blocks) {  // items and blocks are below 2^31
    if (k != block) blockBarrier();  // every thread is done reading the last tile from buf
    const PlaneTile<U> tile = planeTileAt<U>(d, k);
    for (int j = 0; j < count; ++j) planeLoad<kPack>(d, tile, regs[j], first + j);
    for (int j = 0; j < count; ++j) planePut<kPack>(d, tile, regs[j], buf, first + j);
    blockBarrier();
    for (int j = 0; j < count; ++j) planeOut<kPack>(d, tile, buf, first + j);
  }
}

template <bool kPack, typename U>
__device__ __forceinline__ void copyPlaneTiles(const PackDesc& d, uint32_t block, uint32_t blocks,
                                               void* smem) {
  uint4 regs[1][kPlaneSlots];
  planeTiles<kPack>(d, block, blocks, static_cast<U*>(smem), static_cast<int>(threadIdx.x), 1,
                    regs);
}

// Shared memory of a vector tile: its units, and the shift (under a vector).
constexpr int kVecSmemBytes = kVecTileBytes + 16;

// The largest tile buffer of any unit and edge.
constexpr int kTileSmemBytes = kTileBytes<uint32_t, kLargeTile>;
static_assert(kTileBytes<uint8_t, kLargeTile> <= kTileSmemBytes &&
                  kTileBytes<uint16_t, kLargeTile> <= kTileSmemBytes &&
                  kTileBytes<uint64_t, kSmallTile> <= kTileSmemBytes,
              "the shared tile buffer holds every tile");

// The shared memory a launch gives each block: room for any tile.
constexpr int kSmemBytes = std::max({kTileSmemBytes, kVecSmemBytes, kPlaneTileBytes});

// kLoop: which kernel; the vector tiles' kernels move their kind of piece
// and nothing else.
template <bool kPack, int kLoop, typename U>
__device__ void runPiece(const PackDesc& d, uint32_t block, uint32_t blocks, void* smem) {
  if constexpr (kLoop == kLoopPlane) {
    if constexpr (sizeof(U) <= kTileMaxUnit) return copyPlaneTiles<kPack, U>(d, block, blocks, smem);
    return;  // planned for units of at most kTileMaxUnit bytes only
  }
  if constexpr (kLoop == kLoopVec) {
    if constexpr (sizeof(U) <= kTileMaxUnit) {
      if constexpr (sizeof(U) < 8)
        if (d.vecBytes == 8) return copyVecTiles<kPack, U, uint2>(d, block, blocks, smem);
      return copyVecTiles<kPack, U, uint4>(d, block, blocks, smem);
    }
    return;  // planned for units of at most kTileMaxUnit bytes only
  }
  if constexpr (sizeof(U) <= kTileMaxUnit) {
    if (d.kind == kTiled) {
      if constexpr (sizeof(U) < 8)
        if (d.tileEdge == kLargeTile) return copyTiles<kPack, U, kLargeTile>(d, block, blocks, smem);
      return copyTiles<kPack, U, kSmallTile>(d, block, blocks, smem);
    }
  }
  copyStrided<kPack, U>(d, block * kThreads + threadIdx.x, blocks * kThreads);
}

template <bool kPack, int kLoop>
__global__ void __launch_bounds__(kThreads,
                                  kLoop == kLoopGeneral ? kMinBlocksPerSm
                                  : kLoop == kLoopPlane ? kMinPlaneBlocksPerSm
                                                        : kMinVecBlocksPerSm)
    packKernel(const __grid_constant__ PackArgs args) {
  extern __shared__ uint4 smem[];  // kSmemBytes when the launch has tiles, else none
  wait_for_previous_kernel();
  int p = 0;
  while (blockIdx.x >= static_cast<uint32_t>(args.blockEnd[p])) ++p;
  const uint32_t first = p ? args.blockEnd[p - 1] : 0;
  const uint32_t block = blockIdx.x - first, blocks = args.blockEnd[p] - first;
  const PackDesc& d = args.piece[p];
  switch (d.unit) {
    case 1: runPiece<kPack, kLoop, uint8_t>(d, block, blocks, smem); break;
    case 2: runPiece<kPack, kLoop, uint16_t>(d, block, blocks, smem); break;
    case 4: runPiece<kPack, kLoop, uint32_t>(d, block, blocks, smem); break;
    case 8: runPiece<kPack, kLoop, uint64_t>(d, block, blocks, smem); break;
    default: runPiece<kPack, kLoop, uint4>(d, block, blocks, smem); break;
  }
}

// ------------------------------------------------------------------ host side

void checkCuda(cudaError_t err, const char* op, const char* what) {
  if (err != cudaSuccess)
    fail(Status::kCuda, op, ": ", what, " failed: ", cudaGetErrorName(err), " (",
         cudaGetErrorString(err), ")");
}

// Rejects a piece the kernel cannot move. Every piece is checked before the
// first launch, so that a bad one leaves no partial result.
void checkPiece(const PackPiece& piece, const char* op) {
  const TensorView& v = piece.view;
  DIFFCOLL_REQUIRE(v.ndim >= 0 && v.ndim <= kMaxViewDims, Status::kInvalidArgument, op, ": ndim ",
                   v.ndim, " is outside 0..", kMaxViewDims);
  for (int k = 0; k < v.ndim; ++k)
    DIFFCOLL_REQUIRE(v.shape[k] >= 0, Status::kInvalidArgument, op, ": negative shape in ",
                     v.describe());
  if (v.numel() == 0) return;
  DIFFCOLL_REQUIRE(v.element_size() > 0, Status::kInvalidArgument, op, ": invalid dtype ",
                   static_cast<int>(v.dtype));
  DIFFCOLL_REQUIRE(v.data != nullptr && piece.dense != nullptr, Status::kInvalidArgument, op,
                   ": null data or dense pointer for ", v.describe());
}

uint64_t magnitude(int64_t x) { return x < 0 ? 0 - static_cast<uint64_t>(x) : x; }

// Reduces a checked, non-empty piece to units: fills the pointers, unit,
// ndim, shape and stride of d and returns its number of units.
uint64_t reduce(const PackPiece& piece, PackDesc* d) {
  const TensorView& v = piece.view;
  const int64_t es = static_cast<int64_t>(v.element_size());

  // Coalesce in bytes as pack.cc does, with one more innermost dimension for
  // the bytes of an element: contiguous rows merge with it into one run of
  // stride 1, so an innermost stride of 1 byte means "contiguous rows".
  int64_t shape[kDims] = {}, stride[kDims] = {};
  int n = 0;
  auto push = [&](int64_t size, int64_t step) {
    if (size == 1) return;
    if (n > 0 && stride[n - 1] == step * size) {
      shape[n - 1] *= size;
      stride[n - 1] = step;
    } else {
      shape[n] = size;
      stride[n] = step;
      ++n;
    }
  };
  for (int k = 0; k < v.ndim; ++k) push(v.shape[k], v.strides[k] * es);
  push(es, 1);

  // The unit: the largest power of two up to 16 dividing both pointers,
  // every stride and the length of a contiguous row (the element size when
  // rows are single elements).
  uint64_t bits = 16 | reinterpret_cast<uintptr_t>(v.data) | reinterpret_cast<uintptr_t>(piece.dense);
  for (int k = 0; k < n; ++k)
    bits |= k == n - 1 && stride[k] == 1 ? static_cast<uint64_t>(shape[k]) : magnitude(stride[k]);
  if (n == 0 || stride[n - 1] != 1) bits |= static_cast<uint64_t>(es);
  const int64_t unit = static_cast<int64_t>(bits & (~bits + 1));

  d->strided = static_cast<char*>(v.data);
  d->dense = static_cast<char*>(piece.dense);
  d->unit = static_cast<int32_t>(unit);
  d->ndim = 0;
  uint64_t units = 1;
  for (int k = 0; k < n; ++k) {
    int64_t size = shape[k], step = stride[k];
    if (k == n - 1 && step == 1) size /= unit;
    else step /= unit;
    if (size == 1) continue;  // only the innermost run can shrink to one unit
    d->shape[d->ndim] = size;
    d->stride[d->ndim] = step;
    ++d->ndim;
    units *= static_cast<uint64_t>(size);
  }
  if (d->ndim == 0) {  // a single unit
    d->shape[0] = 1;
    d->stride[0] = 1;
    d->ndim = 1;
  }
  return units;
}

// Edge of the tiles along a dimension of `size` units, at most `most` (a
// multiple of v): as many tiles as `most` asks for, of equal size rounded up
// to v, so that the last tile is not a sliver.
int64_t evenEdge(int64_t size, int64_t most, int64_t v) {
  const int64_t tiles = (size + most - 1) / most;
  return ((size + tiles - 1) / tiles + v - 1) / v * v;
}

// Plans vector tiles for a part whose tile dimension has stride +1, with
// the widest vector (16 or 8 bytes, two units at least) that divides the
// view's innermost stride. A tile spans whole dense rows (one run) when the
// tile dimension is next to the innermost, enough rows fit in kVecTileBytes
// and the row's pitch spreads the view side's column accesses over at least
// 4 banks' groups; otherwise rows lie apart, up to 64 units (32 of 8 bytes)
// of the innermost dimension each, which asks the dense stride of the tile
// dimension to be a multiple of a vector (every run of a side then starts at
// the same offset within a vector). A tile of whole rows whose pitch
// conflicts is the last resort. Returns false when no vector fits: unit
// tiles move the part.
bool planVecTiles(PackDesc* d) {
  const int in = d->ndim - 1, t = d->tileDim;
  if (d->stride[t] != 1) return false;
  const int64_t unit = d->unit;
  int64_t tDense = 1;  // the dense stride of t
  for (int k = t + 1; k <= in; ++k) tDense *= d->shape[k];
  auto vector = [&](int64_t bytes) { return bytes > unit && d->stride[in] % (bytes / unit) == 0; };
  // Whether lanes of a warp at t, t + v, t + 2v, ... of one column of a
  // tile of `pitch` units a row (bytes * pitch bytes apart) fall in at
  // least 4 different banks.
  auto spread = [&](int64_t bytes, int64_t pitch) {
    return 32 / std::gcd<int64_t>(bytes / 4 * pitch, 32) >= 4;
  };
  auto wholeRows = [&](int64_t bytes, bool anyPitch) {
    const int64_t v = bytes / unit;
    const int64_t rowsMost = kVecTileBytes / (d->shape[in] * unit) / v * v;
    if (t != in - 1 || rowsMost == 0 || (rowsMost * unit < kVecMinRun && rowsMost < d->shape[t]))
      return false;
    if (!anyPitch && !spread(bytes, d->shape[in])) return false;
    d->wholeRows = 1;
    d->swizzle = 0;
    d->edgeI = static_cast<int32_t>(d->shape[in]);
    d->pitch = d->edgeI;
    d->edgeT = static_cast<int32_t>(evenEdge(d->shape[t], rowsMost, v));
    return true;
  };
  auto rowsApart = [&](int64_t bytes) {
    const int64_t v = bytes / unit;
    if (tDense % v != 0) return false;
    d->wholeRows = 0;
    d->edgeI = static_cast<int32_t>(std::min<int64_t>(d->shape[in], unit < 8 ? kLargeTile : kSmallTile));
    const int64_t pitch = (d->edgeI + 2 * v - 2) / v * v;  // the row and its shift
    d->pitch = static_cast<int32_t>(pitch);
    d->swizzle = pitch / v >= 8;
    const int64_t most = std::min<int64_t>(kVecTileBytes / (pitch * unit) / v * v, 128);
    d->edgeT = static_cast<int32_t>(evenEdge(d->shape[t], most, v));
    return true;
  };
  for (bool anyPitch : {false, true})
    for (int64_t bytes : {16, 8}) {
      if (!vector(bytes)) continue;
      if (wholeRows(bytes, anyPitch) || (!anyPitch && rowsApart(bytes))) {
        d->vecBytes = static_cast<int32_t>(bytes);
        return true;
      }
    }
  return false;
}

// Plans plane tiles (above) for a part whose last two dimensions are a
// contiguous plane of the view with t next to the innermost: its rows (t)
// and the dense rows' starts a whole number of aligned 16-byte vectors, a
// tile as many dense rows as kPlaneTileBytes holds with rows of V dense rows
// an odd number of chunks apart, in tiles of equal size where the plane
// needs several and that keeps the view's runs kVecMinRun long (a shorter
// run wastes its sectors), else in tiles as large as they can be. Planes
// whose runs are short all the same (several tiles of dense rows over 256
// units) are left to the vector tiles, whose tiles are not whole rows.
// Returns false when the part is no such plane.
bool planPlaneTiles(PackDesc* d) {
  const int in = d->ndim - 1, t = d->tileDim;
  const int64_t unit = d->unit, v = 16 / unit;
  const int64_t rows = d->shape[t], row = d->shape[in];
  if (t != in - 1 || d->stride[t] != 1 || d->stride[in] != rows || rows % v != 0) return false;
  if (reinterpret_cast<uintptr_t>(d->strided) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(d->dense) % 16 != 0)
    return false;
  for (int k = 0; k < t; ++k)
    if (d->stride[k] % v != 0) return false;
  const int64_t pitch = row | 1;  // chunks
  const int64_t most = kPlaneTileBytes / 16 / pitch * v;
  if (most == 0) return false;
  int64_t edge = evenEdge(rows, most, v);
  if (edge < rows && edge * unit < kVecMinRun) edge = most;  // long runs, the last tile shorter
  if (edge < rows && edge * unit < kVecMinRun) return false;
  const int64_t last = rows - (rows - 1) / edge * edge;
  d->edgeT = static_cast<int32_t>(edge);
  d->edgeI = static_cast<int32_t>(row);
  d->pitch = static_cast<int32_t>(pitch);
  d->planeRow.init(static_cast<uint32_t>(row));
  d->runVectors[0].init(static_cast<uint32_t>(edge / v));
  d->runVectors[1].init(static_cast<uint32_t>(last / v));
  return true;
}

// Picks the copy loop of a part of at most kMaxUnits units and sets up its
// divisors. Tiled when the innermost dimension is strided and another has
// stride +-1 (-1 still gives each warp consecutive units).
void finish(PackDesc* d, uint64_t units) {
  const int in = d->ndim - 1;
  d->tileDim = -1;
  if (d->unit <= kTileMaxUnit && magnitude(d->stride[in]) != 1 && d->shape[in] >= kTileMinEdge)
    for (int k = 0; k < in; ++k)
      if (magnitude(d->stride[k]) == 1 && d->shape[k] >= kTileMinEdge) d->tileDim = k;
  const int t = d->tileDim;
  if (t >= 0) {
    int64_t edgeT, edgeI;
    if (planPlaneTiles(d)) {
      d->kind = kPlaneTiled;
      edgeT = d->edgeT;
      edgeI = d->edgeI;
    } else if (planVecTiles(d)) {
      d->kind = kVecTiled;
      edgeT = d->edgeT;
      edgeI = d->edgeI;
    } else {
      // 64 x 64 where both dimensions fill most of such a tile; 8-byte units
      // already move 256 bytes per warp access on a 32 x 32 tile.
      d->kind = kTiled;
      d->tileEdge = d->unit < 8 && std::min(d->shape[in], d->shape[t]) >= 48 ? kLargeTile
                                                                              : kSmallTile;
      edgeT = edgeI = d->tileEdge;
    }
    const uint64_t tilesIn = (d->shape[in] + edgeI - 1) / edgeI;
    const uint64_t tilesT = (d->shape[t] + edgeT - 1) / edgeT;
    d->items = static_cast<uint32_t>(units / (d->shape[t] * d->shape[in]) * tilesT * tilesIn);
    d->tilesIn.init(static_cast<uint32_t>(tilesIn));
    d->tilesT.init(static_cast<uint32_t>(tilesT));
    for (int k = 0; k < in; ++k)
      if (k != t) d->div[k].init(static_cast<uint32_t>(d->shape[k]));
  } else {
    d->kind = kStrided;
    d->items = static_cast<uint32_t>(units);
    for (int k = 0; k < d->ndim; ++k) d->div[k].init(static_cast<uint32_t>(d->shape[k]));
  }
}

// Calls emit(part) for parts of d of at most kMaxUnits units each, cut along
// the outermost dimension; a part is d itself unless d is that large.
template <typename Emit>
void split(const PackDesc& d, uint64_t units, Emit&& emit) {
  if (units <= kMaxUnits) {
    PackDesc part = d;
    finish(&part, units);
    emit(part);
    return;
  }
  const int64_t outer = d.shape[0];
  const uint64_t inner = units / static_cast<uint64_t>(outer);
  PackDesc part = d;
  if (inner <= kMaxUnits) {  // slabs of whole rows of dimension 0
    const int64_t slab = static_cast<int64_t>(kMaxUnits / inner);
    for (int64_t start = 0; start < outer; start += slab) {
      part.shape[0] = std::min(slab, outer - start);
      part.strided = d.strided + start * d.stride[0] * d.unit;
      part.dense = d.dense + start * static_cast<int64_t>(inner) * d.unit;
      split(part, static_cast<uint64_t>(part.shape[0]) * inner, emit);
    }
    return;
  }
  part.ndim = d.ndim - 1;  // one index of dimension 0 at a time
  std::copy(d.shape + 1, d.shape + d.ndim, part.shape);
  std::copy(d.stride + 1, d.stride + d.ndim, part.stride);
  for (int64_t i = 0; i < outer; ++i) {
    part.strided = d.strided + i * d.stride[0] * d.unit;
    part.dense = d.dense + i * static_cast<int64_t>(inner) * d.unit;
    split(part, inner, emit);
  }
}

// Plans the pieces into batches of up to kPackCudaMaxPieces parts and calls
// launch(args, n) for each.
template <typename Launch>
void forEachBatch(const PackPiece* pieces, int count, const char* op, Launch&& launch) {
  DIFFCOLL_REQUIRE(count >= 0 && (count == 0 || pieces != nullptr), Status::kInvalidArgument, op,
                   ": ", count, " pieces at ", static_cast<const void*>(pieces));
  for (int i = 0; i < count; ++i) checkPiece(pieces[i], op);
  PackArgs args{};
  int n = 0;
  for (int i = 0; i < count; ++i) {
    if (pieces[i].view.numel() == 0) continue;
    PackDesc d{};
    const uint64_t units = reduce(pieces[i], &d);
    split(d, units, [&](const PackDesc& part) {
      args.piece[n++] = part;
      if (n == kPackCudaMaxPieces) {
        launch(args, n);
        n = 0;
      }
    });
  }
  if (n > 0) launch(args, n);
}

// Splits the grid among the first n pieces of args in proportion to their
// work, at least one block each; returns the grid size.
int assignBlocks(PackArgs* args, int n, uint64_t maxBlocks) {
  uint64_t want[kPackCudaMaxPieces], total = 0;
  for (int p = 0; p < n; ++p) {
    const PackDesc& d = args->piece[p];
    // 4 units a thread; a tile.
    const uint64_t perBlock = d.kind == kStrided ? kThreads * 4 : 1;
    want[p] = (d.items + perBlock - 1) / perBlock;
    total += want[p];
  }
  int32_t end = 0;
  for (int p = 0; p < kPackCudaMaxPieces; ++p) {
    if (p < n) {
      uint64_t blocks = want[p];
      if (total > maxBlocks)
        blocks = static_cast<uint64_t>(static_cast<double>(want[p]) * static_cast<double>(maxBlocks) /
                                       static_cast<double>(total));
      end += static_cast<int32_t>(std::max<uint64_t>(blocks, 1));
    }
    args->blockEnd[p] = end;
  }
  return end;
}

// How packKernel<kPack, kLoop> is launched on the current device: the
// blocks resident at once with tile memory, and whether to ask for
// programmatic dependent launch (dependent_launch.cuh).
struct LaunchShape {
  uint64_t residentBlocks;
  bool dependentLaunch;
};

template <bool kPack, int kLoop>
LaunchShape launchShape() {
  constexpr auto kernel = packKernel<kPack, kLoop>;
  // Both answers as one (2 x blocks + dependentLaunch): one lookup a launch.
  static std::atomic<int> cache[kMaxCachedDevices];
  const int answer = once_per_device(cache, [](int device) {
    int perSm = 0;
    DIFFCOLL_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kThreads, kSmemBytes));
    return 2 * sm_count(device) * std::max(1, perSm) + (waits_for_previous<kernel>(device) ? 1 : 0);
  });
  return {static_cast<uint64_t>(answer / 2), (answer & 1) != 0};
}

// One launch of packKernel<kPack, kLoop> for the first n pieces of args.
template <bool kPack, int kLoop>
void launch(PackArgs& args, int n, void* stream, const char* op) {
  const LaunchShape shape = launchShape<kPack, kLoop>();
  const int waves = kLoop == kLoopVec ? kVecMaxWaves : kLoop == kLoopPlane ? kPlaneMaxWaves : 1;
  const int grid = assignBlocks(&args, n, shape.residentBlocks * waves);
  bool tiles = kLoop != kLoopGeneral;
  for (int p = 0; p < n; ++p) tiles |= args.piece[p].kind == kTiled;
  cudaLaunchAttribute dependent = early_launch_attribute();
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = tiles ? kSmemBytes : 0;
  config.stream = static_cast<cudaStream_t>(stream);
  config.attrs = &dependent;
  bool early = false;
  if (shape.dependentLaunch)
    checkCuda(stream_allows_early_launch(config.stream, &early), op, "cudaStreamIsCapturing");
  config.numAttrs = early ? 1 : 0;
  void* params[] = {&args};
  checkCuda(cudaLaunchKernelExC(&config, reinterpret_cast<const void*>(packKernel<kPack, kLoop>),
                                params),
            op, "kernel launch");
}

int loopOf(const PackDesc& d) {
  return d.kind == kPlaneTiled ? kLoopPlane : d.kind == kVecTiled ? kLoopVec : kLoopGeneral;
}

// Each batch in up to three launches, one for the pieces of each kernel.
template <bool kPack>
void transfer(const PackPiece* pieces, int count, void* stream, const char* op) {
  forEachBatch(pieces, count, op, [&](PackArgs& args, int n) {
    PackArgs byLoop[3] = {};
    int counts[3] = {};
    for (int p = 0; p < n; ++p) {
      const int loop = loopOf(args.piece[p]);
      byLoop[loop].piece[counts[loop]++] = args.piece[p];
    }
    if (counts[kLoopGeneral] > 0)
      launch<kPack, kLoopGeneral>(byLoop[kLoopGeneral], counts[kLoopGeneral], stream, op);
    if (counts[kLoopVec] > 0) launch<kPack, kLoopVec>(byLoop[kLoopVec], counts[kLoopVec], stream, op);
    if (counts[kLoopPlane] > 0)
      launch<kPack, kLoopPlane>(byLoop[kLoopPlane], counts[kLoopPlane], stream, op);
  });
}

}  // namespace

void pack_cuda(const PackPiece* pieces, int count, void* stream) {
  transfer<true>(pieces, count, stream, "pack_cuda");
}

void unpack_cuda(const PackPiece* pieces, int count, void* stream) {
  transfer<false>(pieces, count, stream, "unpack_cuda");
}

}  // namespace diffcoll
