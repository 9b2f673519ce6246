// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// libFuzzer target: everything a caller configures diffcoll with, through the
// public C ABI: rendezvous names (parsed; only local:// ones are opened, so the
// fuzzer touches no file system and no network), communicator configs with
// any struct_size, comm_split / comm_create_group arguments, halo configs
// (and an exchange with each accepted one) and CFG policies with every query.
// Every call must return a status; a crash, a sanitizer report, a hang or a
// broken invariant (checked with abort) is a finding.
#include <diffcoll/diffcoll.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/store.h"
#include "fuzz_support.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

// A struct_size a caller might pass: too small, exact, or larger (a newer
// caller); the struct itself is always `actual` bytes, so reading past the
// fields the library knows is an out-of-bounds read the sanitizers report.
size_t struct_size(dcfuzz::Reader& in, size_t actual) {
  switch (in.take<uint8_t>() % 4) {
    case 0: return actual;
    case 1: return in.take<uint8_t>() % (actual + 1);
    case 2: return actual + in.take<uint8_t>();
    default: return in.take<uint64_t>();
  }
}

// Mostly small values, sometimes anything.
int32_t small_int(dcfuzz::Reader& in, int range) {
  const uint8_t kind = in.take<uint8_t>();
  return kind & 1 ? in.take<int32_t>() : static_cast<int8_t>(kind) / 2 % range;
}

void fuzz_rendezvous(dcfuzz::Reader& in) {
  const std::string name = in.rest();
  diffcoll::RendezvousAddress a;
  try {
    a = diffcoll::parse_rendezvous(name);
  } catch (const diffcoll::Error& e) {
    require(e.status() == diffcoll::Status::kInvalidArgument);
    return;
  }
  using Kind = diffcoll::RendezvousAddress::Kind;
  require(!a.location.empty());
  if (a.kind == Kind::kFile) require(a.location[0] == '/');
  if (a.kind == Kind::kRedis) require(a.port > 0 && a.port < 65536);
  if (a.kind != Kind::kLocal || name.find('\0') != std::string::npos) return;
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.timeout_ms = 2000;
  diffcoll_comm_t* comm = nullptr;
  if (diffcoll_comm_create(name.c_str(), 0, 1, &config, &comm) == DIFFCOLL_SUCCESS)
    require(diffcoll_comm_destroy(comm) == DIFFCOLL_SUCCESS);
}

void fuzz_comm_config(dcfuzz::Reader& in) {
  auto storage = std::make_unique<diffcoll_config_t>();
  diffcoll_config_t& c = *storage;
  c = DIFFCOLL_CONFIG_INIT;
  c.struct_size = struct_size(in, sizeof c);
  c.timeout_ms = small_int(in, 3000);
  c.device_id = small_int(in, 4);
  c.check = small_int(in, 3);
  c.host = in.take<uint8_t>() & 1 ? "127.0.0.1" : nullptr;  // never a name to resolve
  // Rank 0 of 1 connects to nobody; other pairs must be refused before any
  // rendezvous (a valid rank of a larger world would wait for its peers).
  int32_t rank = 0, size = 1;
  if (in.take<uint8_t>() & 1) {
    size = small_int(in, 9);
    rank = small_int(in, 9);
    if (size > 0 && rank >= 0 && rank < size) rank = size;
  }
  diffcoll_comm_t* comm = nullptr;
  const diffcoll_status_t status = diffcoll_comm_create("local://fuzz-config", rank, size, &c, &comm);
  require((status == DIFFCOLL_SUCCESS) == (comm != nullptr));
  if (comm) require(diffcoll_comm_destroy(comm) == DIFFCOLL_SUCCESS);
}

void fuzz_groups(dcfuzz::Reader& in) {
  diffcoll_comm_t* out = nullptr;
  if (diffcoll_comm_split(dcfuzz::world(), small_int(in, 4), small_int(in, 4), &out) ==
          DIFFCOLL_SUCCESS &&
      out)
    require(diffcoll_comm_destroy(out) == DIFFCOLL_SUCCESS);
  const int32_t count = small_int(in, 10);
  std::vector<int32_t> ranks(count > 0 && count <= 64 ? count : 0);
  for (int32_t& r : ranks) r = small_int(in, 3);
  out = nullptr;
  if (diffcoll_comm_create_group(dcfuzz::world(), ranks.empty() ? nullptr : ranks.data(), count,
                                 &out) == DIFFCOLL_SUCCESS &&
      out)
    require(diffcoll_comm_destroy(out) == DIFFCOLL_SUCCESS);
}

void fuzz_halo(dcfuzz::Reader& in) {
  auto storage = std::make_unique<diffcoll_halo_config_t>();
  diffcoll_halo_config_t& c = *storage;
  c = DIFFCOLL_HALO_CONFIG_INIT;
  c.struct_size = struct_size(in, sizeof c);
  for (int32_t* field : {&c.grid_rows, &c.grid_cols, &c.row_axis, &c.col_axis, &c.row_before,
                         &c.row_after, &c.col_before, &c.col_after, &c.row_boundary_before,
                         &c.row_boundary_after, &c.col_boundary_before, &c.col_boundary_after,
                         &c.exchange_corners})
    if (in.take<uint8_t>() & 1) *field = small_int(in, 6);
  diffcoll_halo_plan_t* plan = nullptr;
  if (diffcoll_halo_plan_create(dcfuzz::world(), &c, &plan) != DIFFCOLL_SUCCESS) {
    require(plan == nullptr);
    return;
  }
  // An exchange on a small padded f32 tensor [2, 3, H, W] of the input's extents.
  static float data[2 * 3 * 12 * 12];
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = DIFFCOLL_FLOAT32;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = 4;
  const int64_t shape[4] = {2, 3, in.take<uint8_t>() % 13, in.take<uint8_t>() % 13};
  int64_t stride = 1;
  for (int d = 3; d >= 0; --d) {
    t.shape[d] = shape[d];
    t.strides[d] = stride;
    stride *= shape[d];
  }
  diffcoll_halo_exchange(plan, &t, nullptr);
  require(diffcoll_halo_plan_destroy(plan) == DIFFCOLL_SUCCESS);
}

void fuzz_cfg_policy(dcfuzz::Reader& in) {
  const int32_t num_branches = small_int(in, 9);
  const size_t nb = num_branches > 0 && num_branches <= 16 ? num_branches : 0;
  std::vector<std::string> names(nb);
  std::vector<diffcoll_cfg_branch_t> branches(nb);
  for (size_t i = 0; i < nb; ++i) {
    names[i] = in.text(6);
    branches[i].name = in.take<uint8_t>() % 8 ? names[i].c_str() : nullptr;
    branches[i].role = small_int(in, 7);
  }
  const int32_t base = small_int(in, 9);
  const int32_t num_terms = small_int(in, 6);
  std::vector<diffcoll_cfg_term_t> terms(num_terms > 0 && num_terms <= 16 ? num_terms : 0);
  for (diffcoll_cfg_term_t& t : terms) {
    t.scale = in.take<uint8_t>() & 1 ? in.take<double>() : in.take<int8_t>() / 4.0;
    t.plus = small_int(in, 9);
    t.minus = small_int(in, 9);
  }
  auto options = std::make_unique<diffcoll_cfg_options_t>();
  *options = DIFFCOLL_CFG_OPTIONS_INIT;
  options->struct_size = struct_size(in, sizeof *options);
  options->order = small_int(in, 3);
  options->zero_star = small_int(in, 3);
  options->rescale_phi = in.take<uint8_t>() & 1 ? in.take<double>() : 0.0;
  options->norm_k = in.take<uint8_t>() & 1 ? in.take<double>() : 0.0;
  options->norm_per_sample = small_int(in, 3);
  options->zero_init_steps = small_int(in, 4);
  const bool no_options = in.take<uint8_t>() % 4 == 0;

  diffcoll_cfg_policy_t* policy = nullptr;
  if (diffcoll_cfg_policy_create(nb ? branches.data() : nullptr, num_branches, base,
                                 terms.empty() ? nullptr : terms.data(), num_terms,
                                 no_options ? nullptr : options.get(), &policy) != DIFFCOLL_SUCCESS) {
    require(policy == nullptr);
    return;
  }
  int32_t n = -1;
  require(diffcoll_cfg_policy_num_branches(policy, &n) == DIFFCOLL_SUCCESS);
  require(n == num_branches);
  const char* name = nullptr;
  int32_t role = 0, index = -1;
  diffcoll_cfg_policy_branch(policy, small_int(in, 10), &name, &role);
  const std::string wanted = in.text(6);
  if (diffcoll_cfg_policy_find_branch(policy, wanted.c_str(), &index) == DIFFCOLL_SUCCESS) {
    require(index >= 0 && index < n);
    require(diffcoll_cfg_policy_branch(policy, index, &name, &role) == DIFFCOLL_SUCCESS);
    require(name && std::strcmp(name, wanted.c_str()) == 0);
  }
  std::vector<double> weights(n);
  require(diffcoll_cfg_policy_weights(policy, weights.data(), n) == DIFFCOLL_SUCCESS);
  diffcoll_cfg_policy_weights(policy, weights.data(), small_int(in, 10) % (n + 1));
  auto got = std::make_unique<diffcoll_cfg_options_t>();
  got->struct_size = struct_size(in, sizeof *got);
  diffcoll_cfg_policy_get_options(policy, got.get());
  const int32_t degree = small_int(in, 10), cfg_rank = small_int(in, 10);
  const int32_t capacity = small_int(in, 10);
  std::vector<int32_t> mine(capacity > 0 && capacity <= 64 ? capacity : 0);
  int32_t count = -1;
  if (diffcoll_cfg_dispatch(policy, degree, cfg_rank, mine.empty() ? nullptr : mine.data(),
                            capacity, &count) == DIFFCOLL_SUCCESS) {
    require(count >= 0 && count <= n);
    if (!mine.empty()) {  // else only the count was asked for
      require(count <= capacity);
      for (int32_t i = 0; i < count; ++i)
        require(mine[i] >= 0 && mine[i] < n && (i == 0 || mine[i - 1] < mine[i]));
    }
  }
  require(diffcoll_cfg_policy_destroy(policy) == DIFFCOLL_SUCCESS);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcfuzz::Reader in(data, size);
  switch (in.take<uint8_t>() % 5) {
    case 0: fuzz_rendezvous(in); break;
    case 1: fuzz_comm_config(in); break;
    case 2: fuzz_groups(in); break;
    case 3: fuzz_halo(in); break;
    default: fuzz_cfg_policy(in); break;
  }
  return 0;
}
