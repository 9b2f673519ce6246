// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll CFG example: multi-term guidance on a bf16 video latent, combined
// across a CFG-parallel group of ranks (threads of this process, host
// tensors), checked against the serial combine of all branches.
//
//   out = cond + (g-1)(cond - uncond) + s_stg (cond - perturbed) + s_mod (cond - modality)
//   with guidance rescale phi = 0.7
//
// For each CFG degree d the branches are dispatched with
// diffcoll_cfg_dispatch (d = 4: one branch per rank; d = 2: two per rank;
// d = 6: two ranks idle, running no forward), each rank "predicts" its
// branches and calls diffcoll_cfg_combine_parallel; rank 0 compares the
// result with diffcoll_cfg_combine_serial. A second run uses standard CFG in
// PARALLEL order on 2 ranks, where the results are bitwise equal.
//
//   diffcoll_cfg_example [--shape B,C,F,H,W]
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

diffcoll_tensor_t describe(std::vector<uint16_t>& data, const std::vector<int64_t>& shape) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data.data();
  t.dtype = DIFFCOLL_BFLOAT16;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = static_cast<int32_t>(shape.size());
  int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.shape[d] = shape[d];
    t.strides[d] = stride;
    stride *= shape[d];
  }
  return t;
}

// Stand-in for the denoiser: branch b's prediction, the same on every rank.
std::vector<uint16_t> predict(int branch, int64_t count) {
  std::vector<uint16_t> v(count);
  uint64_t state = 0x9E3779B97F4A7C15ull * (branch + 1);
  for (int64_t i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float noise = static_cast<float>((state >> 40) & 0xffff) / 65536.0f - 0.5f;
    const float signal = std::sin(0.001f * static_cast<float>(i));
    v[i] = to_bf16((0.7f + 0.1f * branch) * signal + 0.4f * noise);
  }
  return v;
}

// Runs one CFG-parallel combine on `degree` ranks; returns the largest
// difference from the serial combine and whether the bits are equal.
void run(const char* title, const std::vector<diffcoll_cfg_branch_t>& branches, int base,
         const std::vector<diffcoll_cfg_term_t>& terms, const diffcoll_cfg_options_t& options,
         int degree, const std::vector<int64_t>& shape, bool must_be_bitwise, bool* failed) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  const int n = static_cast<int>(branches.size());
  diffcoll_cfg_policy_t* policy = nullptr;
  CHECK(diffcoll_cfg_policy_create(branches.data(), n, base, terms.data(),
                                   static_cast<int32_t>(terms.size()), &options, &policy));
  const std::string rendezvous = "local://cfg-example-" + std::to_string(degree) + "-" + title;
  std::vector<std::vector<uint16_t>> results(degree);
  std::vector<std::string> shares(degree);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < degree; ++rank)
    ranks.emplace_back([&, rank] {
      diffcoll_comm_t* comm = nullptr;
      CHECK(diffcoll_comm_create(rendezvous.c_str(), rank, degree, nullptr, &comm));
      // Which branches this rank runs; idle ranks run no forward at all.
      std::vector<int32_t> mine(n);
      int32_t k = 0;
      CHECK(diffcoll_cfg_dispatch(policy, degree, rank, mine.data(), n, &k));
      mine.resize(k);
      std::vector<std::vector<uint16_t>> preds;
      std::vector<diffcoll_tensor_t> local;
      for (int32_t b : mine) {
        preds.push_back(predict(b, count));
        shares[rank] += std::string(shares[rank].empty() ? "" : ",") + branches[b].name;
      }
      for (auto& p : preds) local.push_back(describe(p, shape));
      results[rank].assign(count, 0);
      diffcoll_tensor_t out = describe(results[rank], shape);
      CHECK(diffcoll_cfg_combine_parallel(comm, policy, local.empty() ? nullptr : local.data(), k,
                                          &out, /*step=*/10, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
    });
  for (auto& t : ranks) t.join();

  // The serial reference: all branches on one process.
  std::vector<std::vector<uint16_t>> all;
  std::vector<diffcoll_tensor_t> all_d;
  for (int b = 0; b < n; ++b) all.push_back(predict(b, count));
  for (auto& p : all) all_d.push_back(describe(p, shape));
  std::vector<uint16_t> serial(count);
  diffcoll_tensor_t sd = describe(serial, shape);
  CHECK(diffcoll_cfg_combine_serial(policy, all_d.data(), n, &sd, 10, nullptr));

  // Tolerance: n + 2 roundings of bf16 (2^-8 relative) of terms as large as
  // sum_i |w_i| * max |pred|.
  std::vector<double> w(n);
  CHECK(diffcoll_cfg_policy_weights(policy, w.data(), n));
  double w_sum = 0, p_max = 0;
  for (double x : w) w_sum += std::fabs(x);
  for (auto& p : all)
    for (uint16_t v : p) p_max = std::fmax(p_max, std::fabs(from_bf16(v)));
  const double tolerance = (n + 2) * std::ldexp(1.0, -8) * w_sum * p_max;
  double max_diff = 0, max_abs = 0;
  bool bitwise = true, ranks_agree = true;
  for (int64_t i = 0; i < count; ++i) {
    const double a = from_bf16(results[0][i]), s = from_bf16(serial[i]);
    max_diff = std::fmax(max_diff, std::fabs(a - s));
    max_abs = std::fmax(max_abs, std::fabs(s));
    bitwise = bitwise && results[0][i] == serial[i];
    for (int r = 1; r < degree; ++r) ranks_agree = ranks_agree && results[r][i] == results[0][i];
  }
  std::printf("%-34s d=%d ", title, degree);
  for (int r = 0; r < degree; ++r) std::printf("[%s]", shares[r].empty() ? "-" : shares[r].c_str());
  const bool ok = ranks_agree && max_diff <= tolerance && (bitwise || !must_be_bitwise);
  std::printf("  max|par-ser| %.3g (max|out| %.3g, tolerance %.3g)  %s%s\n", max_diff, max_abs,
              tolerance, bitwise ? "bitwise equal" : "not bitwise",
              ok ? "" : "  <-- FAILED");
  if (!ok) *failed = true;
  CHECK(diffcoll_cfg_policy_destroy(policy));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> shape = {1, 16, 5, 30, 40};  // [B, C, F, H, W], small enough for CI
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::strcmp(argv[i], "--shape") == 0) {
      shape.clear();
      for (char* p = argv[i + 1]; *p;) {
        shape.push_back(std::strtoll(p, &p, 10));
        if (*p == ',') ++p;
      }
    }
  bool failed = false;

  // Multi-term guidance (cond base), guidance rescale on.
  const double g = 6.0, s_stg = 1.0, s_mod = 0.5;
  std::vector<diffcoll_cfg_branch_t> multi = {{"cond", DIFFCOLL_CFG_COND},
                                              {"uncond", DIFFCOLL_CFG_UNCOND},
                                              {"perturbed", DIFFCOLL_CFG_PERTURBED},
                                              {"modality", DIFFCOLL_CFG_MODALITY}};
  std::vector<diffcoll_cfg_term_t> terms = {{g - 1, 0, 1}, {s_stg, 0, 2}, {s_mod, 0, 3}};
  diffcoll_cfg_options_t options = DIFFCOLL_CFG_OPTIONS_INIT;
  options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
  options.rescale_phi = 0.7;
  for (int degree : {4, 2, 6})
    run("multi-term + rescale", multi, 0, terms, options, degree, shape, false, &failed);

  // Standard CFG, uncond + g (cond - uncond), PARALLEL order on 2 ranks: bitwise.
  std::vector<diffcoll_cfg_branch_t> standard = {{"cond", DIFFCOLL_CFG_COND},
                                                 {"uncond", DIFFCOLL_CFG_UNCOND}};
  std::vector<diffcoll_cfg_term_t> cfg = {{g, 0, 1}};
  run("standard CFG", standard, 1, cfg, options, 2, shape, true, &failed);
  // With CFG-zero*: cond and uncond on different ranks, the ranks all-gather.
  options.zero_star = 1;
  run("standard CFG + CFG-zero*", standard, 1, cfg, options, 2, shape, true, &failed);

  std::printf(failed ? "FAILED\n" : "OK\n");
  return failed ? 1 : 0;
}
