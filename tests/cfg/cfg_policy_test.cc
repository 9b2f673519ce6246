// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// CFG policy objects and dispatch through the C API: creation, queries,
// weights of every formula, the dispatch rule for degrees 1..8 and 1..5
// branches, and every kind of bad input.
#include <algorithm>
#include <set>
#include <string>

#include "cfg_test_support.h"

namespace {

using namespace cfgt;

struct PolicyHolder {
  diffcoll_cfg_policy_t* p = nullptr;
  ~PolicyHolder() { diffcoll_cfg_policy_destroy(p); }
};

TEST(CfgPolicy, StandardCfgWeightsAndQueries) {
  PolicyHolder h;
  CFG_OK(standard_cfg(7.5).create(&h.p));
  int32_t n = 0;
  CFG_OK(diffcoll_cfg_policy_num_branches(h.p, &n));
  EXPECT_EQ(n, 2);
  const char* name = nullptr;
  int32_t role = 0;
  CFG_OK(diffcoll_cfg_policy_branch(h.p, 1, &name, &role));
  EXPECT_STREQ(name, "uncond");
  EXPECT_EQ(role, DIFFCOLL_CFG_UNCOND);
  CFG_OK(diffcoll_cfg_policy_branch(h.p, 0, &name, nullptr));
  EXPECT_STREQ(name, "cond");
  int32_t index = -5;
  CFG_OK(diffcoll_cfg_policy_find_branch(h.p, "uncond", &index));
  EXPECT_EQ(index, 1);
  double w[2];
  CFG_OK(diffcoll_cfg_policy_weights(h.p, w, 2));
  EXPECT_EQ(w[0], 7.5);   // g * cond
  EXPECT_EQ(w[1], -6.5);  // (1 - g) * uncond
  diffcoll_cfg_options_t o = DIFFCOLL_CFG_OPTIONS_INIT;
  o.zero_init_steps = 99;
  CFG_OK(diffcoll_cfg_policy_get_options(h.p, &o));
  EXPECT_EQ(o.order, DIFFCOLL_CFG_ORDER_SERIAL);
  EXPECT_EQ(o.zero_init_steps, 0);
  EXPECT_EQ(o.struct_size, sizeof o);
}

TEST(CfgPolicy, MultiTermWeights) {
  // cond + (g-1)(cond - uncond) + s_stg (cond - perturbed) + s_mod (cond - modality)
  PolicyHolder h;
  PolicySpec s = policy_of(4);
  s.options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
  s.options.rescale_phi = 0.7;
  CFG_OK(s.create(&h.p));
  double w[4];
  CFG_OK(diffcoll_cfg_policy_weights(h.p, w, 4));
  EXPECT_DOUBLE_EQ(w[0], 1 + 4 + 1.5 + 0.75);
  EXPECT_DOUBLE_EQ(w[1], -4);
  EXPECT_DOUBLE_EQ(w[2], -1.5);
  EXPECT_DOUBLE_EQ(w[3], -0.75);
  diffcoll_cfg_options_t o = DIFFCOLL_CFG_OPTIONS_INIT;
  CFG_OK(diffcoll_cfg_policy_get_options(h.p, &o));
  EXPECT_EQ(o.order, DIFFCOLL_CFG_ORDER_PARALLEL);
  EXPECT_EQ(o.rescale_phi, 0.7);
  // The weights of every test policy sum to 1 (a guidance formula is affine).
  for (int n = 1; n <= 5; ++n) {
    PolicyHolder q;
    CFG_OK(policy_of(n).create(&q.p));
    std::vector<double> wn(n);
    CFG_OK(diffcoll_cfg_policy_weights(q.p, wn.data(), n));
    double sum = 0;
    for (double x : wn) sum += x;
    EXPECT_NEAR(sum, 1.0, 1e-12) << n;
    EXPECT_EQ(wn, policy_of(n).weights()) << n;
  }
}

TEST(CfgPolicy, NamesAreCopied) {
  std::string a = "cond", b = "uncond";
  diffcoll_cfg_branch_t br[2] = {{a.c_str(), DIFFCOLL_CFG_COND}, {b.c_str(), DIFFCOLL_CFG_UNCOND}};
  diffcoll_cfg_term_t t = {3.0, 0, 1};
  PolicyHolder h;
  CFG_OK(diffcoll_cfg_policy_create(br, 2, 1, &t, 1, nullptr, &h.p));
  a = "XXXX";
  b = "YYYYYY";
  int32_t index = -1;
  CFG_OK(diffcoll_cfg_policy_find_branch(h.p, "uncond", &index));
  EXPECT_EQ(index, 1);
}

TEST(CfgPolicy, UnknownBranchName) {
  PolicyHolder h;
  CFG_OK(standard_cfg(5).create(&h.p));
  int32_t index = 7;
  EXPECT_EQ(diffcoll_cfg_policy_find_branch(h.p, "perturbed", &index),
            DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(index, -1);
  const std::string msg = diffcoll_last_error();
  EXPECT_NE(msg.find("'perturbed'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'cond', 'uncond'"), std::string::npos) << msg;
  EXPECT_EQ(diffcoll_cfg_policy_find_branch(h.p, nullptr, &index), DIFFCOLL_ERR_INVALID_ARGUMENT);
}

TEST(CfgPolicy, BadQueries) {
  PolicyHolder h;
  CFG_OK(standard_cfg(5).create(&h.p));
  double w[3];
  EXPECT_EQ(diffcoll_cfg_policy_weights(h.p, w, 3), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(diffcoll_last_error()).find("weights count 3"), std::string::npos);
  EXPECT_EQ(diffcoll_cfg_policy_weights(h.p, w, 1), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_weights(h.p, nullptr, 2), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_branch(h.p, 2, nullptr, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_branch(h.p, -1, nullptr, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_num_branches(h.p, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
  diffcoll_cfg_options_t o = DIFFCOLL_CFG_OPTIONS_INIT;
  o.struct_size = 4;
  EXPECT_EQ(diffcoll_cfg_policy_get_options(h.p, &o), DIFFCOLL_ERR_VERSION);
}

// Creation failures: each case names what is wrong.
TEST(CfgPolicy, BadCreation) {
  auto fails = [](PolicySpec s, diffcoll_status_t want, const char* fragment) {
    diffcoll_cfg_policy_t* p = reinterpret_cast<diffcoll_cfg_policy_t*>(0x1);
    EXPECT_EQ(s.create(&p), want) << fragment;
    EXPECT_EQ(p, nullptr);
    const std::string msg = diffcoll_last_error();
    EXPECT_NE(msg.find(fragment), std::string::npos) << "message: " << msg;
  };
  PolicySpec s = standard_cfg(5);
  { auto t = s; t.terms[0].plus = 2; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "plus branch 2"); }
  { auto t = s; t.terms[0].minus = -1; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "minus branch -1"); }
  { auto t = s; t.terms[0].minus = 0; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "both branch 0"); }
  { auto t = s; t.terms[0].scale = NAN; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "not finite"); }
  { auto t = s; t.base = 2; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "base branch 2"); }
  { auto t = s; t.base = -1; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "base branch -1"); }
  { auto t = s; t.names[1] = "cond"; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "used twice"); }
  { auto t = s; t.names[1] = ""; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "empty name"); }
  { auto t = s; t.roles[1] = 0; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "role 0"); }
  { auto t = s; t.roles[0] = 6; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "role 6"); }
  { auto t = s; t.options.order = 3; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "order 3"); }
  { auto t = s; t.options.rescale_phi = 1.5; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "rescale_phi"); }
  { auto t = s; t.options.rescale_phi = -0.1; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "rescale_phi"); }
  { auto t = s; t.options.norm_k = -1; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "norm_k"); }
  { auto t = s; t.options.norm_k = INFINITY; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "norm_k"); }
  { auto t = s; t.options.zero_init_steps = -2; fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "zero_init_steps"); }
  { auto t = s; t.options.struct_size = 4; fails(t, DIFFCOLL_ERR_VERSION, "DIFFCOLL_CFG_OPTIONS_INIT"); }
  // Post-processing without the branch it needs.
  { auto t = s; t.roles = {DIFFCOLL_CFG_OTHER, DIFFCOLL_CFG_UNCOND}; t.options.rescale_phi = 0.5;
    fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "role COND"); }
  { auto t = s; t.roles = {DIFFCOLL_CFG_COND, DIFFCOLL_CFG_COND}; t.options.norm_k = 2;
    fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "role COND"); }
  { auto t = s; t.roles = {DIFFCOLL_CFG_COND, DIFFCOLL_CFG_OTHER}; t.options.zero_star = 1;
    fails(t, DIFFCOLL_ERR_INVALID_ARGUMENT, "CFG-zero*"); }

  diffcoll_cfg_policy_t* p = nullptr;
  diffcoll_cfg_branch_t br[1] = {{"cond", DIFFCOLL_CFG_COND}};
  EXPECT_EQ(diffcoll_cfg_policy_create(br, 0, 0, nullptr, 0, nullptr, &p), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_create(nullptr, 1, 0, nullptr, 0, nullptr, &p), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_create(br, 1, 0, nullptr, 1, nullptr, &p), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_create(br, 1, 0, nullptr, -1, nullptr, &p), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_policy_create(br, 1, 0, nullptr, 0, nullptr, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
  diffcoll_cfg_branch_t null_name[1] = {{nullptr, DIFFCOLL_CFG_COND}};
  EXPECT_EQ(diffcoll_cfg_policy_create(null_name, 1, 0, nullptr, 0, nullptr, &p), DIFFCOLL_ERR_INVALID_ARGUMENT);
  // A policy without terms is fine: out = pred[base].
  CFG_OK(diffcoll_cfg_policy_create(br, 1, 0, nullptr, 0, nullptr, &p));
  CFG_OK(diffcoll_cfg_policy_destroy(p));
}

TEST(CfgPolicy, OlderOptionsStructGetsDefaults) {
  // A caller compiled when the struct ended after `order`: the rest defaults.
  struct {
    diffcoll_cfg_options_t o;
  } old;
  std::memset(&old, 0xff, sizeof old);
  old.o.struct_size = offsetof(diffcoll_cfg_options_t, order) + sizeof(int32_t);
  old.o.order = DIFFCOLL_CFG_ORDER_PARALLEL;
  PolicySpec s = standard_cfg(4);
  std::vector<diffcoll_cfg_branch_t> b = {{"cond", DIFFCOLL_CFG_COND}, {"uncond", DIFFCOLL_CFG_UNCOND}};
  PolicyHolder h;
  CFG_OK(diffcoll_cfg_policy_create(b.data(), 2, 1, s.terms.data(), 1, &old.o, &h.p));
  diffcoll_cfg_options_t o = DIFFCOLL_CFG_OPTIONS_INIT;
  CFG_OK(diffcoll_cfg_policy_get_options(h.p, &o));
  EXPECT_EQ(o.order, DIFFCOLL_CFG_ORDER_PARALLEL);
  EXPECT_EQ(o.zero_star, 0);
  EXPECT_EQ(o.rescale_phi, 0.0);
  EXPECT_EQ(o.zero_init_steps, 0);
}

TEST(CfgPolicy, DestroyedNullAndForeignHandles) {
  diffcoll_cfg_policy_t* p = nullptr;
  CFG_OK(standard_cfg(5).create(&p));
  CFG_OK(diffcoll_cfg_policy_destroy(p));
  int32_t n = 0;
  EXPECT_EQ(diffcoll_cfg_policy_num_branches(p, &n), DIFFCOLL_ERR_INVALID_HANDLE);
  EXPECT_NE(std::string(diffcoll_last_error()).find("already destroyed"), std::string::npos);
  EXPECT_EQ(diffcoll_cfg_policy_destroy(p), DIFFCOLL_ERR_INVALID_HANDLE);
  int32_t count = 0;
  EXPECT_EQ(diffcoll_cfg_dispatch(p, 2, 0, nullptr, 0, &count), DIFFCOLL_ERR_INVALID_HANDLE);
  EXPECT_EQ(diffcoll_cfg_policy_num_branches(nullptr, &n), DIFFCOLL_ERR_INVALID_HANDLE);
  EXPECT_EQ(diffcoll_cfg_policy_destroy(nullptr), DIFFCOLL_SUCCESS);

  // A communicator is not a policy, and a policy is not a communicator.
  run_ranks(1, [](int, diffcoll_comm_t* comm) {
    int32_t k = 0;
    EXPECT_EQ(diffcoll_cfg_policy_num_branches(reinterpret_cast<diffcoll_cfg_policy_t*>(comm), &k),
              DIFFCOLL_ERR_INVALID_HANDLE);
    diffcoll_cfg_policy_t* q = nullptr;
    ASSERT_EQ(standard_cfg(5).create(&q), DIFFCOLL_SUCCESS);
    int32_t size = 0;
    EXPECT_EQ(diffcoll_comm_size(reinterpret_cast<diffcoll_comm_t*>(q), &size),
              DIFFCOLL_ERR_INVALID_HANDLE);
    diffcoll_cfg_policy_destroy(q);
  });
}

// ---- dispatch ---------------------------------------------------------------------------

TEST(CfgDispatch, BalancedContiguousBlocks) {
  for (int n = 1; n <= 5; ++n) {
    PolicyHolder h;
    CFG_OK(policy_of(n).create(&h.p));
    for (int d = 1; d <= 8; ++d) {
      std::vector<int> seen(n, 0);
      size_t lo = 1000, hi = 0;
      for (int r = 0; r < d; ++r) {
        std::vector<int32_t> mine = dispatch(h.p, d, r);
        std::vector<int32_t> expected;
        for (int i = r * n / d; i < (r + 1) * n / d; ++i) expected.push_back(i);
        EXPECT_EQ(mine, expected) << "n=" << n << " d=" << d << " r=" << r;
        EXPECT_EQ(mine, dispatch(h.p, d, r)) << "deterministic";
        for (int32_t b : mine) ++seen[b];
        lo = std::min(lo, mine.size());
        hi = std::max(hi, mine.size());
      }
      for (int i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1) << "n=" << n << " d=" << d << " branch " << i;
      EXPECT_LE(hi - lo, 1u) << "n=" << n << " d=" << d;
      if (d > n) {
        EXPECT_EQ(lo, 0u) << "idle ranks when d > n";
      }
      if (d < n) {
        EXPECT_GE(hi, 2u) << "several branches per rank when d < n";
      }
    }
  }
}

TEST(CfgDispatch, ZeroStarKeepsCondAndUncondTogether) {
  for (int n = 2; n <= 5; ++n) {
    PolicySpec s = policy_of(n);
    s.options.zero_star = 1;
    PolicyHolder h;
    CFG_OK(s.create(&h.p));
    const int c = s.index_of_role(DIFFCOLL_CFG_COND), u = s.index_of_role(DIFFCOLL_CFG_UNCOND);
    for (int d = 1; d <= 8; ++d) {
      std::vector<int> owner(n, -1);
      size_t hi = 0, lo = 1000;
      for (int r = 0; r < d; ++r) {
        std::vector<int32_t> mine = dispatch(h.p, d, r);
        EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
        for (int32_t b : mine) {
          EXPECT_EQ(owner[b], -1) << "branch " << b << " dispatched twice";
          owner[b] = r;
        }
        hi = std::max(hi, mine.size());
        lo = std::min(lo, mine.size());
      }
      for (int i = 0; i < n; ++i) EXPECT_GE(owner[i], 0) << "n=" << n << " d=" << d;
      if (d < n) {
        EXPECT_EQ(owner[c], owner[u]) << "n=" << n << " d=" << d;
        EXPECT_LE(hi, static_cast<size_t>((n + d - 1) / d)) << "max load is ceil(n/d)";
        EXPECT_GE(lo, 1u) << "no idle rank when d < n";
      } else {
        // One branch per rank, as without CFG-zero*.
        for (int i = 0; i < n; ++i) EXPECT_EQ(owner[i], [&] {
            for (int r = 0; r < d; ++r)
              if (r * n / d <= i && i < (r + 1) * n / d) return r;
            return -1;
          }()) << "n=" << n << " d=" << d;
      }
    }
  }
  // The documented example: 5 branches on 4 ranks, cond = 1 and uncond = 0.
  PolicySpec s = policy_of(5);
  s.options.zero_star = 1;
  PolicyHolder h;
  CFG_OK(s.create(&h.p));
  EXPECT_EQ(dispatch(h.p, 4, 0), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(dispatch(h.p, 4, 1), (std::vector<int32_t>{2}));
  EXPECT_EQ(dispatch(h.p, 4, 2), (std::vector<int32_t>{3}));
  EXPECT_EQ(dispatch(h.p, 4, 3), (std::vector<int32_t>{4}));
  EXPECT_EQ(dispatch(h.p, 2, 0), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(dispatch(h.p, 2, 1), (std::vector<int32_t>{3, 4}));
}

TEST(CfgDispatch, BadInput) {
  PolicyHolder h;
  CFG_OK(policy_of(3).create(&h.p));
  int32_t buf[4], count = 0;
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, 0, 0, buf, 4, &count), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(diffcoll_last_error()).find("degree 0"), std::string::npos);
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, -3, 0, buf, 4, &count), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, 2, 2, buf, 4, &count), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, 2, -1, buf, 4, &count), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, 1, 0, buf, 2, &count), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(count, 3) << "count tells the room needed";
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, 1, 0, nullptr, 2, &count), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, 1, 0, buf, -1, &count), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_cfg_dispatch(h.p, 1, 0, buf, 4, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
  // 3 branches on 8 ranks: rank 0 runs [0, 0), nothing; rank 7 runs [2, 3).
  CFG_OK(diffcoll_cfg_dispatch(h.p, 8, 0, nullptr, 0, &count));
  EXPECT_EQ(count, 0);
  CFG_OK(diffcoll_cfg_dispatch(h.p, 8, 0, buf, 0, &count));
  EXPECT_EQ(count, 0);
  CFG_OK(diffcoll_cfg_dispatch(h.p, 8, 7, buf, 1, &count));
  EXPECT_EQ(count, 1);
  EXPECT_EQ(buf[0], 2);
}

}  // namespace
