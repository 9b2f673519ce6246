// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll USP example: sequence-parallel attention (Ulysses x ring) of a
// diffusion transformer block, checked against attention on one rank.
//
// The ranks form a USP mesh (diffcoll_usp_mesh_create, xDiT's rank order).
// The sequence of S tokens is cut into R equal ring blocks, and each ring
// block over the U ranks of a Ulysses group (diffcoll_split_extent: uneven
// shares are fine). Each rank holds q, k, v [1, its tokens, H, D] and:
//  1. turns them head-sharded with ONE diffcoll_ulysses_all_to_all over its
//     Ulysses group: [1, S/R, its heads, D] (uneven heads are fine too);
//  2. runs ring attention over its ring group: the (k, v) blocks of the
//     other ring ranks arrive through diffcoll_ring_start / _wait while
//     attention with an online softmax runs on the block at hand;
//  3. turns the output back to sequence-sharded [1, its tokens, H, D] with
//     diffcoll_ulysses_all_to_all (HEAD_TO_SEQ),
// and compares its tokens with softmax(q k^T / sqrt(D)) v of the whole tensors.
//
//   diffcoll_usp_example [--ulysses U] [--ring R] [--tokens S] [--heads H]
//
// The ranks run as threads of this process (local:// rendezvous).
#include <diffcoll/diffcoll.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "example_support.h"

namespace {

constexpr int64_t D = 16;  // head dimension

struct Problem {
  int u = 2, r = 2;
  int64_t tokens = 52, heads = 5;
};

// Element (token s, head h, channel d) of q (t = 0), k (1) or v (2).
float whole(int t, int64_t s, int64_t h, int64_t d) {
  return std::sin(0.3f * (t + 1) * s + 0.7f * h + 0.13f * d) * (t == 2 ? 2.0f : 0.5f);
}

// A contiguous float tensor [1, s, h, D] described for diffcoll.
struct Tensor {
  int64_t s, h;
  std::vector<float> data;
  Tensor(int64_t s_, int64_t h_) : s(s_), h(h_), data(static_cast<size_t>(s_ * h_ * D)) {}
  float& at(int64_t i, int64_t j, int64_t d) { return data[(i * h + j) * D + d]; }
  diffcoll_tensor_t desc() {
    diffcoll_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = data.data();
    t.dtype = DIFFCOLL_FLOAT32;
    t.device_type = DIFFCOLL_DEVICE_CPU;
    t.ndim = 4;
    const int64_t shape[4] = {1, s, h, D}, strides[4] = {s * h * D, h * D, D, 1};
    for (int i = 0; i < 4; ++i) {
      t.shape[i] = shape[i];
      t.strides[i] = strides[i];
    }
    return t;
  }
};

// softmax(q k^T / sqrt(D)) v for token s, head h, over the whole sequence.
void reference(int64_t s, int64_t h, int64_t tokens, float* out) {
  std::vector<double> score(tokens);
  double top = -1e30;
  for (int64_t j = 0; j < tokens; ++j) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += whole(0, s, h, d) * whole(1, j, h, d);
    score[j] = dot / std::sqrt(static_cast<double>(D));
    top = std::max(top, score[j]);
  }
  double sum = 0, acc[D] = {};
  for (int64_t j = 0; j < tokens; ++j) {
    const double w = std::exp(score[j] - top);
    sum += w;
    for (int64_t d = 0; d < D; ++d) acc[d] += w * whole(2, j, h, d);
  }
  for (int64_t d = 0; d < D; ++d) out[d] = static_cast<float>(acc[d] / sum);
}

// Online-softmax attention state of the head-sharded queries.
struct Attention {
  Tensor q;
  std::vector<float> top, sum, acc;
  explicit Attention(Tensor q_) : q(std::move(q_)) {
    const size_t rows = static_cast<size_t>(q.s * q.h);
    top.assign(rows, -1e30f);
    sum.assign(rows, 0.0f);
    acc.assign(rows * D, 0.0f);
  }
  // Folds the keys and values of one block into every query's state.
  void add_block(Tensor& k, Tensor& v) {
    for (int64_t i = 0; i < q.s; ++i)
      for (int64_t h = 0; h < q.h; ++h) {
        const size_t row = static_cast<size_t>(i * q.h + h);
        for (int64_t j = 0; j < k.s; ++j) {
          float dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += q.at(i, h, d) * k.at(j, h, d);
          const float score = dot / std::sqrt(static_cast<float>(D));
          const float new_top = std::max(top[row], score);
          const float rescale = std::exp(top[row] - new_top), w = std::exp(score - new_top);
          sum[row] = sum[row] * rescale + w;
          for (int64_t d = 0; d < D; ++d)
            acc[row * D + d] = acc[row * D + d] * rescale + w * v.at(j, h, d);
          top[row] = new_top;
        }
      }
  }
  Tensor output() {
    Tensor o(q.s, q.h);
    for (int64_t i = 0; i < q.s; ++i)
      for (int64_t h = 0; h < q.h; ++h)
        for (int64_t d = 0; d < D; ++d) {
          const size_t row = static_cast<size_t>(i * q.h + h);
          o.at(i, h, d) = acc[row * D + d] / sum[row];
        }
    return o;
  }
};

int run_rank(diffcoll_comm_t* world, const Problem& pb) {
  int32_t rank = 0;
  CHECK(diffcoll_comm_rank(world, &rank));
  diffcoll_usp_degrees_t degrees = DIFFCOLL_USP_DEGREES_INIT;
  degrees.ulysses = pb.u;
  degrees.ring = pb.r;
  diffcoll_usp_mesh_t mesh = DIFFCOLL_USP_MESH_INIT;
  CHECK(diffcoll_usp_mesh_create(world, &degrees, &mesh));
  int32_t u = 0, r = 0;
  CHECK(diffcoll_comm_rank(mesh.ulysses, &u));
  CHECK(diffcoll_comm_rank(mesh.ring, &r));

  // My tokens: share u of ring block r. My heads after the all-to-all.
  const int64_t block = pb.tokens / pb.r;
  int64_t s0 = 0, s_len = 0, h0 = 0, h_len = 0;
  CHECK(diffcoll_split_extent(block, pb.u, u, &s0, &s_len));
  CHECK(diffcoll_split_extent(pb.heads, pb.u, u, &h0, &h_len));
  s0 += r * block;

  std::vector<Tensor> seq_sharded, head_sharded;
  for (int t = 0; t < 3; ++t) {
    seq_sharded.emplace_back(s_len, pb.heads);
    for (int64_t i = 0; i < s_len; ++i)
      for (int64_t h = 0; h < pb.heads; ++h)
        for (int64_t d = 0; d < D; ++d) seq_sharded[t].at(i, h, d) = whole(t, s0 + i, h, d);
  }
  // The ring's double buffer: half 0 receives k and v from the all-to-all.
  for (int t = 0; t < 3; ++t) head_sharded.emplace_back(block, h_len);
  Tensor k1(block, h_len), v1(block, h_len);

  // 1. q, k, v: sequence-sharded -> head-sharded, one exchange.
  std::vector<diffcoll_tensor_t> in, out;
  for (int t = 0; t < 3; ++t) {
    in.push_back(seq_sharded[t].desc());
    out.push_back(head_sharded[t].desc());
  }
  CHECK(diffcoll_ulysses_all_to_all(mesh.ulysses, in.data(), out.data(), 3, 1, 2,
                                    DIFFCOLL_ULYSSES_SEQ_TO_HEAD, nullptr));

  // 2. Ring attention: k, v blocks travel while the current one is used.
  diffcoll_tensor_t half0[2] = {head_sharded[1].desc(), head_sharded[2].desc()};
  diffcoll_tensor_t half1[2] = {k1.desc(), v1.desc()};
  diffcoll_ring_t* ring = nullptr;
  CHECK(diffcoll_ring_create(mesh.ring, half0, half1, 2, &ring));
  Attention attention(head_sharded[0]);
  int32_t current = 0;
  for (int step = 0; step < pb.r; ++step) {
    const bool more = step + 1 < pb.r;
    if (more) CHECK(diffcoll_ring_start(ring, nullptr));
    if (current == 0) attention.add_block(head_sharded[1], head_sharded[2]);
    else attention.add_block(k1, v1);
    if (more) CHECK(diffcoll_ring_wait(ring, nullptr, &current));
  }
  CHECK(diffcoll_ring_destroy(ring));

  // 3. The output: head-sharded -> sequence-sharded.
  Tensor o_heads = attention.output(), o(s_len, pb.heads);
  diffcoll_tensor_t o_in = o_heads.desc(), o_out = o.desc();
  CHECK(diffcoll_ulysses_all_to_all(mesh.ulysses, &o_in, &o_out, 1, 1, 2,
                                    DIFFCOLL_ULYSSES_HEAD_TO_SEQ, nullptr));

  double worst = 0;
  for (int64_t i = 0; i < s_len; ++i)
    for (int64_t h = 0; h < pb.heads; ++h) {
      float want[D];
      reference(s0 + i, h, pb.tokens, want);
      for (int64_t d = 0; d < D; ++d)
        worst = std::max(worst, static_cast<double>(std::fabs(o.at(i, h, d) - want[d])));
    }
  const bool ok = worst < 1e-4;
  std::printf("rank %d (ulysses %d, ring %d): tokens %lld..%lld, heads %lld..%lld in attention, "
              "max error %.2e %s\n",
              rank, u, r, static_cast<long long>(s0), static_cast<long long>(s0 + s_len - 1),
              static_cast<long long>(h0), static_cast<long long>(h0 + h_len - 1), worst,
              ok ? "OK" : "MISMATCH");
  CHECK(diffcoll_usp_mesh_destroy(&mesh));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Problem pb;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ulysses" && i + 1 < argc)
      pb.u = std::atoi(argv[++i]);
    else if (a == "--ring" && i + 1 < argc)
      pb.r = std::atoi(argv[++i]);
    else if (a == "--tokens" && i + 1 < argc)
      pb.tokens = std::atoll(argv[++i]);
    else if (a == "--heads" && i + 1 < argc)
      pb.heads = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--ulysses U] [--ring R] [--tokens S] [--heads H]\n",
                   argv[0]);
      return 2;
    }
  }
  if (pb.u < 1 || pb.r < 1 || pb.tokens < 1 || pb.heads < 1 || pb.tokens % pb.r != 0) {
    std::fprintf(stderr, "need U, R, S, H >= 1 and S divisible by R (equal ring blocks)\n");
    return 2;
  }
  const int ranks = pb.u * pb.r;
  const std::string rendezvous = "local://usp-example";
  std::vector<std::thread> threads;
  std::vector<int> result(ranks, 0);
  for (int n = 0; n < ranks; ++n)
    threads.emplace_back([&, n] {
      diffcoll_comm_t* comm;
      CHECK(diffcoll_comm_create(rendezvous.c_str(), n, ranks, nullptr, &comm));
      result[n] = run_rank(comm, pb);
      CHECK(diffcoll_barrier(comm, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
    });
  for (auto& t : threads) t.join();
  for (int rc : result)
    if (rc) return rc;
  std::printf("USP attention (ulysses %d x ring %d) matches attention on one rank\n", pb.u, pb.r);
  return 0;
}
