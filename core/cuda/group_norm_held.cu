// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The GroupNorm of a rank alone held in shared memory: one read of the
// tensor and one write, by thread block clusters (sm_90 and later).
#include "group_norm_held.h"

#include <cooperative_groups.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "float_vectors.cuh"
#include "group_norm_device.cuh"

namespace diffcoll {
namespace ops {
namespace {

using elementwise::from_float;
using elementwise::Pack;
using elementwise::to_float;

constexpr int kThreads = kGroupNormThreads;

// The kernel (group_norm_layout.h, HeldPlan): cluster c of the grid takes
// unit c, one (sample, group) pair or plan.unit_groups of them side by
// side. Each block copies its share of the unit's loads into shared memory
// with cp.async (no registers held), kHeldAhead of kHeldStages commit
// groups in flight while the thread adds the oldest to its shifted sums.
// The block adds its threads' sums in a fixed tree into one partial per
// group; after a cluster barrier every warp merges the cluster's partials
// of each group through distributed shared memory in a fixed tree (the
// same bits everywhere), and each thread normalises the loads it holds. A
// second cluster barrier, waited for at the very end, keeps every block's
// partials in place until the cluster has read them.
// Two of four stages in flight, as measured on [1,512,90,160] bf16
// (docs/PERFORMANCE.md). Clusters of 8 (three 57.6 KB blocks an SM): of 1
// to 8 stages ahead of 8, 2 ended the call soonest. Clusters of 6 (76.8 KB
// blocks, two an SM: held_shape_order): 4 stages of 2 ahead, contiguous /
// channels-last 13.49-13.56 / 16.26-16.39 us, against 13.56-13.61 /
// 16.59-16.65 with 8 stages, 13.62 / 16.84-17.09 with 8 of 3 ahead, 13.78 /
// 16.52 with 3 of 2 and 13.84 / 17.15 with 4 of 3.
constexpr int kHeldStages = 4;  // commit groups a block's copies are cut into
constexpr int kHeldAhead = 2;   // of them in flight at once

struct HeldArgs {
  HeldPlan plan;
  int64_t spatial;               // of the geometry
  int64_t channels;              // of a unit: a group's times unit_groups
  int64_t step;                  // held_step
  GroupNormAffine affine;
  float eps;
  GroupMoments* records;         // records[pair], pair = unit * unit_groups + group
};

// 16 bytes from global memory into shared memory, the whole 128-byte line
// fetched into L2: a channel row of a unit is 32 or 64 bytes of a line
// whose rest other clusters read about the same time, and sector by sector
// from memory the reads cost 1.9 us more than the same bytes read in
// whole lines ([1,512,90,160] channels-last, 16.4 -> 15.7 us one group a
// unit; docs/PERFORMANCE.md).
__device__ __forceinline__ void copy_async_16(void* smem, const void* global) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;" ::"r"(dst), "l"(global)
               : "memory");
#endif
}

__device__ __forceinline__ void commit_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Waits until at most kPending of the thread's commit groups are in flight.
template <int kPending>
__device__ __forceinline__ void wait_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
#endif
}

// Arrives at the cluster barrier with release semantics: the thread's
// writes before it are seen by the blocks that wait. It compiles to a
// GPU-wide memory barrier, which waits for every write the thread has in
// flight, global ones included.
__device__ __forceinline__ void cluster_arrive() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
#endif
}

// Arrives ordering nothing: for a thread that only says it is done reading
// (its reads have returned once their values are used).
__device__ __forceinline__ void cluster_arrive_relaxed() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ void cluster_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}

// A held thread's sums about its own first element, one pair of sums per
// element of a load (V independent chains rather than one), added in a
// fixed tree at the end.
template <int V>
struct LaneSums {
  float shift = 0.f, s[V], ss[V];
  __device__ LaneSums() {
#pragma unroll
    for (int k = 0; k < V; ++k) s[k] = ss[k] = 0.f;
  }
  template <typename T>
  __device__ __forceinline__ void add(const Pack<T, V>& x) {
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float d = to_float(x.get(k)) - shift;
      s[k] += d;
      ss[k] += d * d;
    }
  }
  // The sums of the thread's n elements about `ref` rather than its own
  // shift (move_sums).
  __device__ float2 total(int64_t n, float ref) {
#pragma unroll
    for (int w = V / 2; w > 0; w /= 2)
#pragma unroll
      for (int k = 0; k < w; ++k) {
        s[k] += s[k + w];
        ss[k] += ss[k + w];
      }
    move_sums(n, shift, ref, &s[0], &ss[0]);
    return make_float2(s[0], ss[0]);
  }
};

// Copies the thread's loads of stage `stage` (slots t + m * kThreads, m in
// [stage * per_stage, (stage + 1) * per_stage) and below `mine`) into
// `held`, as one commit group (empty past the last stage, so that every
// thread commits alike).
template <typename T, int V>
__device__ __forceinline__ void copy_stage(Pack<T, V>* held, const T* from, uint32_t step,
                                           int stage, int mine, int per_stage) {
  const int last = min(mine, (stage + 1) * per_stage);
  for (int m = stage * per_stage; m < last; ++m)
    copy_async_16(&held[threadIdx.x + m * kThreads], from + m * step);
  commit_copies();
}

// Load i of `held` as one 16-byte shared-memory read. Element by element
// (what the compiler makes of a Pack read through a reference), a warp's
// 2-byte reads 16 bytes apart conflict four ways: 32 wavefronts a load
// instead of 4, which bounded the sums of SMs holding three blocks.
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> held_load(const Pack<T, V>* held, int i) {
  return elementwise::load_pack<T, V>(reinterpret_cast<const T*>(held + i));
}

// Adds the thread's loads of `stage` (as copy_stage).
template <typename T, int V>
__device__ __forceinline__ void sum_stage(const Pack<T, V>* held, int stage, int mine,
                                          int per_stage, LaneSums<V>* acc) {
  const int last = min(mine, (stage + 1) * per_stage);
#pragma unroll 2
  for (int m = stage * per_stage; m < last; ++m)
    acc->add(held_load(held, threadIdx.x + m * kThreads));
}

// The cluster's partials merged, in every lane of the calling warp: lane r
// reads rank r's (distributed shared memory) and moves it to rank 0's mean
// as CentredSums, then a fixed shuffle tree adds them (lanes 0 + 1, 2 + 3,
// ..., then pairs of those), so every warp of every block of the cluster
// gets the same bits.
__device__ GroupMoments cluster_merge(GroupMoments* partial, int cluster) {
  const int lane = threadIdx.x % 32;
  GroupMoments mine{0, 0.f, 0.f};  // count 0 adds nothing
  if (lane < cluster) mine = *cooperative_groups::this_cluster().map_shared_rank(partial, lane);
  const float ref = __shfl_sync(0xffffffffu, mine.mean, 0);
  CentredSums c;
  c.add(mine, ref);
  for (int width = 1; width < cluster; width *= 2) {
    const long long n = __shfl_xor_sync(0xffffffffu, static_cast<long long>(c.n), width);
    const double s = __shfl_xor_sync(0xffffffffu, c.s, width);
    const double ss = __shfl_xor_sync(0xffffffffu, c.ss, width);
    // The lower lane's sums first, in both lanes of the pair: the same bits.
    const bool lower = (lane & width) == 0;
    c.n = lower ? c.n + n : n + c.n;
    c.s = lower ? c.s + s : s + c.s;
    c.ss = lower ? c.ss + ss : ss + c.ss;
  }
  c.n = __shfl_sync(0xffffffffu, static_cast<long long>(c.n), 0);
  c.s = __shfl_sync(0xffffffffu, c.s, 0);
  c.ss = __shfl_sync(0xffffffffu, c.ss, 0);
  return c.moments(ref);
}

template <typename T, int V, bool kRows>
__global__ void __launch_bounds__(kThreads, 2)
    held_kernel(HeldArgs a, const T* input, T* output) {
  // The block's loads, then (kRuns) the pair's affine, from a 128-byte
  // boundary: dynamic shared memory follows the static (176 bytes), and a
  // warp's 512 contiguous bytes off that boundary span five 128-byte rows
  // of banks instead of four, for every copy in and every read back
  // ([1,512,90,160] 14.3-14.5 -> 13.1-13.2 us contiguous, 15.6 -> 15.0
  // channels-last; docs/PERFORMANCE.md).
  extern __shared__ __align__(128) uint4 held_memory[];
  __shared__ float block_shift[kHeldMaxUnitGroups];     // per group: its first thread's shift
  __shared__ GroupMoments partial[kHeldMaxUnitGroups];  // the block's, per group
  const HeldPlan& p = a.plan;
  Pack<T, V>* held = reinterpret_cast<Pack<T, V>*>(held_memory);
  float* weight_of = reinterpret_cast<float*>(held + p.slots);  // kRuns: the pair's weights,
  float* bias_of = weight_of + a.channels;                      // then its biases
  // The index math, 32-bit (fused_walk's tensors have fewer than 2^31
  // elements), before waiting for the kernel before.
  const int t = threadIdx.x;
  const uint32_t unit = blockIdx.x / p.cluster;
  int64_t share_begin, share_end;
  held_share(p, a.spatial, blockIdx.x % p.cluster, &share_begin, &share_end);
  const uint32_t begin = static_cast<uint32_t>(share_begin);
  const int count = static_cast<int>(share_end - share_begin);
  const int mine = count > t ? (count - 1 - t) / kThreads + 1 : 0;
  const int per_stage = ((count + kThreads - 1) / kThreads + kHeldStages - 1) / kHeldStages;
  const uint32_t first = held_offset<uint32_t>(p, unit, begin + t), step = a.step;
  // The thread's group in the unit (kRows: its column of the rows; shares
  // are whole positions) and whether it is the group's first thread, whose
  // first element is the group's shift in the block.
  const int per_group = kRows ? static_cast<int>(p.per_position) / p.unit_groups : 1;
  const int group = kRows ? t % static_cast<int>(p.per_position) / per_group : 0;
  const bool lead = t == group * per_group;
  wait_for_previous_kernel();

  // kHeldAhead stages in flight while the thread adds the oldest (fewer
  // than all: see kHeldAhead).
  for (int stage = 0; stage < kHeldAhead; ++stage)
    copy_stage(held, input + first, step, stage, mine, per_stage);
  // Each thread sums about its own first element (no wait for a shift
  // common to the block), moved to thread 0's before the block adds them.
  LaneSums<V> acc;
  for (int stage = 0; stage < kHeldStages; ++stage) {
    wait_copies<kHeldAhead - 1>();  // `stage` has arrived
    if (stage == 0 && mine > 0) {
      acc.shift = to_float(held[t].get(0));
      if (lead) block_shift[group] = acc.shift;
    }
    sum_stage(held, stage, mine, per_stage, &acc);
    copy_stage(held, input + first, step, stage + kHeldAhead, mine, per_stage);
  }
  // The affine parameters this thread applies, loaded while the cluster
  // meets: kRows its V channels, kRuns channels t, t + kThreads, ... of the
  // pair (at most kGroupNormFusedChannels).
  constexpr int kAffine = kRows ? V : kGroupNormFusedChannels / kThreads;
  const int64_t c0 = unit % p.sample_units * a.channels;  // the unit's first channel
  const int64_t c_first = kRows ? c0 + t % p.per_position * V : c0 + t;
  const int64_t c_step = kRows ? 1 : kThreads;
  float weight[kAffine], bias[kAffine];
#pragma unroll
  for (int k = 0; k < kAffine; ++k) {
    const int64_t c = c_first + k * c_step;
    weight[k] = c < c0 + a.channels ? channel_weight(a.affine, c) : 0.f;
    bias[k] = c < c0 + a.channels ? channel_bias(a.affine, c) : 0.f;
  }
  __syncthreads();  // block_shift written
  const float2 sums =
      block_sums(acc.total(int64_t{mine} * V, block_shift[group]), per_group, p.unit_groups);
  if (lead)
    partial[group] = moments_of_sums(int64_t{count} / p.unit_groups * V, block_shift[group],
                                     sums.x, sums.y);
  if constexpr (!kRows) {
    // The pair's weights and biases, after its loads, for every thread.
#pragma unroll
    for (int k = 0; k < kAffine; ++k)
      if (t + k * kThreads < a.channels) {
        weight_of[t + k * kThreads] = weight[k];
        bias_of[t + k * kThreads] = bias[k];
      }
  }
  cluster_arrive();
  cluster_wait();  // every block's partial (and this block's shared memory) written
  // Every warp merges the cluster's partials of each group (those of a
  // warp's rows): no block barrier after.
  GroupStats st;
  for (int g = 0; g < p.unit_groups; ++g) {
    const GroupMoments merged = cluster_merge(&partial[g], p.cluster);
    if (g == group) st = stats_of(merged, a.eps);
    if (blockIdx.x % p.cluster == 0 && t == 0) a.records[unit * p.unit_groups + g] = merged;
  }
  // Done with the other blocks' partials: the merged values are in
  // registers, so nothing needs ordering (a release here waited on the
  // records store, Nsight Compute's top stall of the channel-rows kernel).
  cluster_arrive_relaxed();
  // scale = rstd * weight, as in the table of the other paths: the same bits.
  if constexpr (kRows) {
    // The thread's V channels.
    float scale[V];
#pragma unroll
    for (int k = 0; k < V; ++k) scale[k] = st.rstd * weight[k];
#pragma unroll 4
    for (int m = 0; m < mine; ++m) {
      Pack<T, V> x = held_load(held, t + m * kThreads);
#pragma unroll
      for (int k = 0; k < V; ++k)
        x.set(k, from_float<T>((to_float(x.get(k)) - st.mean) * scale[k] + bias[k]));
      elementwise::store_pack<T, V>(output + first + m * step, x);
    }
  } else {
    // Load j's channel within the pair: j * V / S (one run of the whole group).
    const uint32_t S = static_cast<uint32_t>(a.spatial);
#pragma unroll 4
    for (int m = 0; m < mine; ++m) {
      Pack<T, V> x = held_load(held, t + m * kThreads);
      const uint32_t k = a.channels == 1 ? 0 : (begin + t + m * kThreads) * V / S;
      const float sc = st.rstd * weight_of[k], b = bias_of[k];
#pragma unroll
      for (int e = 0; e < V; ++e) x.set(e, from_float<T>((to_float(x.get(e)) - st.mean) * sc + b));
      elementwise::store_pack<T, V>(output + first + m * step, x);
    }
  }
  cluster_wait();  // no block leaves while its partial may still be read
}

// The dynamic shared memory a block of Kernel may take on `device` (the
// device's opt-in limit less the kernel's static shared memory), which the
// kernel is granted here, once. `device` is the current device.
template <auto Kernel>
int held_block_bytes(int device) {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, device, [](int d) {
    int optin = 0;
    DIFFCOLL_CUDA_CHECK(
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, d));
    cudaFuncAttributes attr{};
    DIFFCOLL_CUDA_CHECK(cudaFuncGetAttributes(&attr, Kernel));
    const int bytes = std::max(1, optin - static_cast<int>(attr.sharedSizeBytes));
    DIFFCOLL_CUDA_CHECK(
        cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return bytes;
  });
}

// An SM of `device`, the current one, as Kernel's blocks fill it
// (HeldSm), its figures asked of the runtime once.
template <auto Kernel>
HeldSm held_sm(int device) {
  static std::atomic<int> sm_bytes[kMaxCachedDevices], per_block[kMaxCachedDevices],
      max_blocks[kMaxCachedDevices];
  HeldSm sm;
  sm.block_bytes = held_block_bytes<Kernel>(device);
  sm.sm_bytes = once_per_device(sm_bytes, device, [](int d) {
    int bytes = 0;
    DIFFCOLL_CUDA_CHECK(
        cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerMultiprocessor, d));
    return bytes;
  });
  // The runtime's reserve and the kernel's static shared memory.
  sm.per_block = once_per_device(per_block, device, [](int d) {
    int reserved = 0;
    DIFFCOLL_CUDA_CHECK(
        cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, d));
    cudaFuncAttributes attr{};
    DIFFCOLL_CUDA_CHECK(cudaFuncGetAttributes(&attr, Kernel));
    return reserved + static_cast<int>(attr.sharedSizeBytes);
  });
  sm.max_blocks = once_per_device(max_blocks, device, [](int) {  // of the current device
    int blocks = 0;
    DIFFCOLL_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, Kernel, kThreads, 0));
    return blocks;
  });
  sm.sms = sm_count(device);
  return sm;
}

// cudaOccupancyMaxActiveClusters of Kernel launched as `config` (whose
// attributes give the cluster size `cluster`) on `device`, the current one.
// The runtime's answer costs microseconds, more than the rest of the launch,
// and a pipeline asks the same few shapes every step, so answers are kept in
// a small table: each entry is one word holding the whole key (device,
// cluster, shared memory) and its answer, so a lookup takes no lock and two
// keys sharing an entry only cost a query again.
template <auto Kernel>
int max_active_clusters(const cudaLaunchConfig_t& config, int cluster, int device) {
  constexpr int kEntryBits = 6;
  static std::atomic<uint64_t> table[1 << kEntryBits];
  // An entry: device (16 bits), cluster (8), shared memory bytes (24), answer (16).
  const uint64_t smem = config.dynamicSmemBytes;
  const bool keyed = device < (1 << 16) && cluster < (1 << 8) && smem < (uint64_t{1} << 24);
  const uint64_t key = (uint64_t(device) << 32 | uint64_t(cluster) << 24 | smem) << 16;
  std::atomic<uint64_t>& entry = table[(key * 0x9E3779B97F4A7C15ull) >> (64 - kEntryBits)];
  // An empty entry (0) matches no key: every key has a cluster of 1 or more.
  const uint64_t held = entry.load(std::memory_order_relaxed);
  if (keyed && held >> 16 == key >> 16) return static_cast<int>(held & 0xFFFF);
  int clusters = 0;
  DIFFCOLL_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, Kernel, &config));
  if (keyed && clusters > 0 && clusters < (1 << 16))
    entry.store(key | static_cast<uint64_t>(clusters), std::memory_order_relaxed);
  return clusters;
}

// The whole GroupNorm of a rank alone held in shared memory (held_kernel)
// for the layouts held_plan covers, where the device runs every cluster of
// the grid at once: true if launched; false, with nothing launched,
// otherwise.
template <typename T, bool kRows>
bool launch_held(const GroupNormGeometry& g, FusedWalk walk, const T* in, T* out,
                 const GroupNormAffine& affine, float eps, GroupMoments* records,
                 cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr auto kernel = &held_kernel<T, kVec, kRows>;
  // Clusters and cp.async: an sm_90 binary on an sm_90 device, as for early launches.
  const int device = g.device;  // current (held_group_norm)
  if (!waits_for_previous<kernel>(device)) return false;
  // kRuns: the pair's weights and biases share the block's dynamic memory.
  const int64_t table =
      kRows ? 0 : 2 * g.channels_per_group() * static_cast<int64_t>(sizeof(float));
  const HeldPlan plan = held_plan(g, walk, in, sizeof(T));
  if (plan.loads == 0) return false;
  HeldSm sm = held_sm<kernel>(device);
  sm.block_bytes -= table;
  sm.per_block += table;
  HeldShape order[kHeldShapes];
  const int shapes = held_shape_order(plan, g.spatial, sm, order);
  cudaLaunchAttribute attrs[2];
  attrs[0].id = cudaLaunchAttributeClusterDimension;
  attrs[0].val.clusterDim.y = 1;
  attrs[0].val.clusterDim.z = 1;
  cudaLaunchConfig_t config = {};
  config.blockDim = dim3(kThreads);
  config.stream = stream;
  config.attrs = attrs;
  config.numAttrs = 1;
  // The best shape whose clusters all run at once. One wave: a unit
  // waiting for a cluster to finish would hold its reads and writes apart
  // (measured slower, docs/PERFORMANCE.md).
  HeldArgs a;
  bool fits = false;
  for (int i = 0; i < shapes && !fits; ++i) {
    a.plan = held_shaped(plan, g.spatial, order[i]);
    attrs[0].val.clusterDim.x = static_cast<unsigned>(a.plan.cluster);
    config.gridDim = dim3(static_cast<unsigned>(a.plan.blocks()));
    config.dynamicSmemBytes = static_cast<size_t>(a.plan.slots * 16 + table);
    fits = max_active_clusters<kernel>(config, a.plan.cluster, device) >= a.plan.units;
  }
  if (!fits) return false;
  a.spatial = g.spatial;
  a.channels = g.channels_per_group() * a.plan.unit_groups;
  a.step = held_step(a.plan);
  a.affine = affine;
  a.eps = eps;
  a.records = records;
  bool early = false;
  DIFFCOLL_CUDA_CHECK(stream_allows_early_launch(stream, &early));
  if (early) {
    attrs[1] = early_launch_attribute();
    config.numAttrs = 2;
  }
  DIFFCOLL_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, a, in, out));
  return true;
}

}  // namespace

bool held_group_norm(const GroupNormGeometry& g, FusedWalk walk, DType dtype, const void* input,
                     void* output, const GroupNormAffine& affine, float eps,
                     GroupMoments* records, cudaStream_t stream) {
  if (walk == FusedWalk::kNone || !records) return false;
  bool launched = false;
  by_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const T* in = static_cast<const T*>(input);
    T* out = static_cast<T*>(output);
    launched = walk == FusedWalk::kRows
                   ? launch_held<T, true>(g, walk, in, out, affine, eps, records, stream)
                   : launch_held<T, false>(g, walk, in, out, affine, eps, records, stream);
  });
  return launched;
}

}  // namespace ops
}  // namespace diffcoll
