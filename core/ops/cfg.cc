// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "cfg.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <unordered_set>

#include "../error.h"
#include "agreement.h"
#include "run.h"

namespace diffcoll {
namespace ops {

bool cfg_role_valid(int32_t value) { return value >= 1 && value <= 5; }

const char* cfg_role_name(CfgRole role) {
  switch (role) {
    case CfgRole::kCond: return "COND";
    case CfgRole::kUncond: return "UNCOND";
    case CfgRole::kPerturbed: return "PERTURBED";
    case CfgRole::kModality: return "MODALITY";
    case CfgRole::kOther: return "OTHER";
  }
  return "?";
}

namespace {

// ---- policy helpers -----------------------------------------------------------

uint64_t fnv(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
template <typename T>
uint64_t fnv(uint64_t h, T value) {
  return fnv(h, &value, sizeof value);
}

// The unique branch of `role`, -1 if none; `count` receives how many there are.
int unique_role(const std::vector<CfgBranch>& branches, CfgRole role, int* count) {
  int found = -1;
  *count = 0;
  for (size_t i = 0; i < branches.size(); ++i)
    if (branches[i].role == role) {
      found = static_cast<int>(i);
      ++*count;
    }
  return *count == 1 ? found : -1;
}

// Rank owning unit u of m units split into d contiguous balanced blocks.
int block_owner(int64_t u, int64_t m, int64_t d) {
  // rank r holds [floor(r*m/d), floor((r+1)*m/d)): the largest r with floor(r*m/d) <= u.
  int64_t r = ((u + 1) * d - 1) / m;
  while (r > 0 && (r * m) / d > u) --r;
  while (r + 1 < d && ((r + 1) * m) / d <= u) ++r;
  return static_cast<int>(r);
}

// ---- tensor checks --------------------------------------------------------------

bool dtype_supported(DType dtype) {
  return dtype == DType::kFloat16 || dtype == DType::kBFloat16 || dtype == DType::kFloat32;
}

void check_out(const TensorView& out, const std::string& what) {
  out.validate(what.c_str());
  DIFFCOLL_REQUIRE(dtype_supported(out.dtype), Status::kInvalidArgument, what, " ",
                   out.describe(), ": the CFG combine takes float16, bfloat16 or float32");
  DIFFCOLL_REQUIRE(!out.may_overlap(), Status::kInvalidArgument, what, " ", out.describe(),
                   " has overlapping elements (a zero or aliasing stride) and cannot be written");
}

void check_pred(const TensorView& pred, const TensorView& out, const std::string& what) {
  pred.validate(what.c_str());
  DIFFCOLL_REQUIRE(pred.dtype == out.dtype, Status::kInvalidArgument, what, " is ",
                   dtype_name(pred.dtype), " but out is ", dtype_name(out.dtype));
  DIFFCOLL_REQUIRE(pred.device.type == out.device.type &&
                       (!pred.device.is_cuda() || pred.device.id == out.device.id),
                   Status::kInvalidArgument, what, " ", pred.describe(), " and out ",
                   out.describe(), " are on different devices");
  bool same = pred.ndim == out.ndim;
  for (int d = 0; same && d < pred.ndim; ++d) same = pred.shape[d] == out.shape[d];
  DIFFCOLL_REQUIRE(same, Status::kInvalidArgument, what, " ", pred.describe(),
                   " does not have the shape of out ", out.describe(),
                   " (every branch must have the same shape)");
}

// What error messages call prediction `index` of a call (built once per call:
// the success path is host time per combine).
std::string pred_name(const CfgPolicy& policy, int branch, const char* kind, size_t index) {
  return std::string(kind) + "[" + std::to_string(index) + "] (branch " + std::to_string(branch) +
         " '" + policy.branch(branch).name + "')";
}

CfgExtent extent_of(const TensorView& t) {
  CfgExtent e;
  e.batch = t.ndim > 0 ? t.shape[0] : 1;
  e.per_sample = 1;
  for (int d = 1; d < t.ndim; ++d) e.per_sample *= t.shape[d];
  return e;
}

void check_step_and_extent(const CfgPolicy& policy, int step, const TensorView& out,
                           const char* op) {
  DIFFCOLL_REQUIRE(step >= 0, Status::kInvalidArgument, op, ": step ", step, " is negative");
  const CfgExtent e = extent_of(out);
  DIFFCOLL_REQUIRE(policy.options().rescale_phi == 0 || e.numel() == 0 || e.per_sample >= 2,
                   Status::kInvalidArgument, op, ": guidance rescale needs a standard deviation "
                   "over at least 2 elements per sample, but out ", out.describe(), " has ",
                   e.per_sample);
}

// The arithmetic for the memory the tensors live in.
const CfgMath& math_for(const Device& device) {
  return device.is_cuda() ? cuda_cfg_math(device.id) : host_cfg_math();
}

bool spans_overlap(const TensorView& a, const TensorView& b) {
  if (a.numel() == 0 || b.numel() == 0) return false;
  auto lo = [](const TensorView& t) { return static_cast<const char*>(t.span_begin()); };
  auto hi = [](const TensorView& t) {
    int64_t reach = 0;
    for (int d = 0; d < t.ndim; ++d) reach += std::llabs(t.strides[d]) * (t.shape[d] - 1);
    return static_cast<const char*>(t.span_begin()) + (reach + 1) * t.element_size();
  };
  return lo(a) < hi(b) && lo(b) < hi(a);
}

// A prediction can be read in place when it is row-major contiguous and does
// not partly overlap the output it is read together with (exact aliasing,
// the in-place combine, is fine: every element is read before it is written).
bool readable_in_place(const TensorView& pred, const TensorView& out, bool out_in_place) {
  if (!pred.is_contiguous()) return false;
  if (!out_in_place || !spans_overlap(pred, out)) return true;
  return pred.data == out.data;
}

// ---- staging --------------------------------------------------------------------

size_t room(size_t bytes) { return (bytes + 255) & ~size_t{255}; }

// Carves consecutive 256-byte aligned regions out of one allocation.
class Carve {
 public:
  explicit Carve(void* base) : base_(static_cast<char*>(base)) {}
  void* take(size_t bytes) {
    void* p = base_ + used_;
    used_ += room(bytes);
    return p;
  }

 private:
  char* base_;
  size_t used_ = 0;
};

// Memory from CfgMath::allocate, given back when the scope ends.
class Allocation {
 public:
  Allocation(const CfgMath& math, size_t bytes, void* stream)
      : math_(math), memory_(math.allocate(bytes, stream)), stream_(stream) {}
  ~Allocation() { math_.release(memory_, stream_); }
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
  void* get() const { return memory_; }

 private:
  const CfgMath& math_;
  void* memory_;
  void* stream_;
};

// The scalars of a call on a communicator, carved from its staging. Their
// tickets are the side's own, which the passes leave at zero, so the call
// spends no memset on them; a side without any zeroes the carved ones.
CfgScalars side_scalars(Side& side, const CfgMath& math, Carve& carve, CfgExtent extent,
                        void* stream) {
  static_assert(kCfgTickets <= kSideTickets, "side.h holds the CFG passes' tickets");
  CfgScalars scalars(carve.take(CfgScalars::bytes(extent)), extent);
  if (uint32_t* tickets = side.tickets())
    scalars.tickets = tickets;
  else
    math.begin(scalars, stream);
  return scalars;
}

// The whole combine on images of all n branches, in the policy's order:
// the CFG-zero* pass when it is on (with cond's statistics), the combine
// with the statistics post-processing needs, then the post-processing pass.
// Shared by the serial combine, the all-gather path of the parallel one and
// a CFG group of one rank, which therefore agree bit for bit. `scalars` are
// ready (their tickets at zero).
void combine_all(const CfgMath& math, const CfgPolicy& policy, DType dtype,
                 const std::vector<const void*>& preds, void* out, CfgExtent extent,
                 const CfgScalars& scalars, void* stream) {
  const CfgOptions& o = policy.options();
  const CfgPost post = policy.post();
  CfgCombine c;
  c.order = o.order;
  c.inputs = preds.data();
  c.count = policy.num_branches();
  c.weights = policy.weights().data();
  c.base = policy.base();
  c.terms = policy.terms().data();
  c.num_terms = static_cast<int>(policy.terms().size());
  c.final_output = true;
  c.post = post;
  if (o.zero_star) {
    math.input_stats(dtype, preds[policy.cond()], preds[policy.uncond()], post.any(), o.order,
                     extent, scalars, stream);
    c.scaled = policy.uncond();
  } else if (post.any()) {
    c.cond = policy.cond();
  }
  math.combine(dtype, c, extent, out, scalars, stream);
  math.post_process(dtype, out, o.order, post, extent, scalars, stream);
}

bool zero_init(const CfgPolicy& policy, int step) {
  return step < policy.options().zero_init_steps;
}


}  // namespace

// ---- policy -----------------------------------------------------------------------

CfgPolicy::CfgPolicy(std::vector<CfgBranch> branches, int base, std::vector<CfgTerm> terms,
                     CfgOptions options)
    : branches_(std::move(branches)), base_(base), terms_(std::move(terms)), options_(options) {
  const int n = num_branches();
  DIFFCOLL_REQUIRE(n >= 1, Status::kInvalidArgument, "a CFG policy needs at least one branch");
  std::unordered_set<std::string> names;
  for (int i = 0; i < n; ++i) {
    const CfgBranch& b = branches_[i];
    DIFFCOLL_REQUIRE(!b.name.empty(), Status::kInvalidArgument, "branch ", i,
                     " has an empty name");
    DIFFCOLL_REQUIRE(cfg_role_valid(static_cast<int32_t>(b.role)), Status::kInvalidArgument,
                     "branch ", i, " ('", b.name, "'): role ", static_cast<int32_t>(b.role),
                     " is not a diffcoll_cfg_role_t");
    DIFFCOLL_REQUIRE(names.insert(b.name).second, Status::kInvalidArgument, "branch ", i,
                     ": the name '", b.name, "' is used twice");
  }
  DIFFCOLL_REQUIRE(base_ >= 0 && base_ < n, Status::kInvalidArgument, "base branch ", base_,
                   " is outside 0..", n - 1);
  weights_.assign(n, 0.0);
  weights_[base_] += 1.0;
  for (size_t k = 0; k < terms_.size(); ++k) {
    const CfgTerm& t = terms_[k];
    DIFFCOLL_REQUIRE(t.plus >= 0 && t.plus < n, Status::kInvalidArgument, "term ", k,
                     ": plus branch ", t.plus, " is outside 0..", n - 1);
    DIFFCOLL_REQUIRE(t.minus >= 0 && t.minus < n, Status::kInvalidArgument, "term ", k,
                     ": minus branch ", t.minus, " is outside 0..", n - 1);
    DIFFCOLL_REQUIRE(t.plus != t.minus, Status::kInvalidArgument, "term ", k,
                     ": plus and minus are both branch ", t.plus, " (the term would be zero)");
    DIFFCOLL_REQUIRE(std::isfinite(t.scale), Status::kInvalidArgument, "term ", k,
                     ": scale ", t.scale, " is not finite");
    weights_[t.plus] += t.scale;
    weights_[t.minus] -= t.scale;
  }
  DIFFCOLL_REQUIRE(options_.order == CfgOrder::kSerial || options_.order == CfgOrder::kParallel ||
                       options_.order == CfgOrder::kTorch,
                   Status::kInvalidArgument, "options.order ",
                   static_cast<int32_t>(options_.order), " is not a diffcoll_cfg_order_t");
  DIFFCOLL_REQUIRE(std::isfinite(options_.rescale_phi) && options_.rescale_phi >= 0 &&
                       options_.rescale_phi <= 1,
                   Status::kInvalidArgument, "options.rescale_phi ", options_.rescale_phi,
                   " is outside [0, 1]");
  DIFFCOLL_REQUIRE(std::isfinite(options_.norm_k) && options_.norm_k >= 0,
                   Status::kInvalidArgument, "options.norm_k ", options_.norm_k,
                   " must be finite and >= 0 (0: off)");
  DIFFCOLL_REQUIRE(options_.zero_init_steps >= 0, Status::kInvalidArgument,
                   "options.zero_init_steps ", options_.zero_init_steps, " is negative");
  int conds = 0, unconds = 0;
  cond_ = unique_role(branches_, CfgRole::kCond, &conds);
  uncond_ = unique_role(branches_, CfgRole::kUncond, &unconds);
  DIFFCOLL_REQUIRE(!post().any() || cond_ >= 0, Status::kInvalidArgument,
                   "guidance rescale and CFG normalization need exactly one branch of role "
                   "COND, the policy has ", conds);
  DIFFCOLL_REQUIRE(!options_.zero_star || (cond_ >= 0 && uncond_ >= 0),
                   Status::kInvalidArgument, "CFG-zero* needs exactly one branch of role COND "
                   "and one of role UNCOND, the policy has ", conds, " and ", unconds);
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv(h, n);
  h = fnv(h, base_);
  for (double w : weights_) h = fnv(h, w);
  for (const CfgTerm& t : terms_) h = fnv(fnv(fnv(h, t.scale), t.plus), t.minus);
  h = fnv(fnv(fnv(h, static_cast<int32_t>(options_.order)), options_.rescale_phi), options_.norm_k);
  h = fnv(fnv(fnv(h, options_.norm_per_sample), options_.zero_star), options_.zero_init_steps);
  h = fnv(fnv(h, cond_), uncond_);
  fingerprint_ = h;
}

const CfgBranch& CfgPolicy::branch(int index) const {
  DIFFCOLL_REQUIRE(index >= 0 && index < num_branches(), Status::kInvalidArgument,
                   "branch index ", index, " is outside 0..", num_branches() - 1);
  return branches_[index];
}

int CfgPolicy::find(const std::string& name) const {
  for (int i = 0; i < num_branches(); ++i)
    if (branches_[i].name == name) return i;
  std::ostringstream known;
  for (int i = 0; i < num_branches(); ++i) known << (i ? ", " : "") << "'" << branches_[i].name << "'";
  fail(Status::kInvalidArgument, "the CFG policy has no branch named '", name,
       "' (its branches: ", known.str(), ")");
}

CfgPost CfgPolicy::post() const {
  CfgPost p;
  p.rescale_phi = options_.rescale_phi;
  p.norm_k = options_.norm_k;
  p.norm_per_sample = options_.norm_per_sample;
  return p;
}

std::vector<int> CfgPolicy::owners(int degree) const {
  DIFFCOLL_REQUIRE(degree >= 1, Status::kInvalidArgument, "CFG degree ", degree,
                   " must be >= 1");
  const int n = num_branches();
  std::vector<int> owner(n);
  if (options_.zero_star && degree < n) {
    // Units: {cond, uncond} first, then the other branches in index order.
    const int m = n - 1;
    owner[cond_] = owner[uncond_] = block_owner(0, m, degree);
    int u = 1;
    for (int i = 0; i < n; ++i)
      if (i != cond_ && i != uncond_) owner[i] = block_owner(u++, m, degree);
  } else {
    for (int i = 0; i < n; ++i) owner[i] = block_owner(i, n, degree);
  }
  return owner;
}

std::vector<int> CfgPolicy::dispatch(int degree, int rank) const {
  const std::vector<int> owner = owners(degree);
  DIFFCOLL_REQUIRE(rank >= 0 && rank < degree, Status::kInvalidArgument, "CFG rank ", rank,
                   " is outside 0..", degree - 1);
  std::vector<int> mine;
  for (int i = 0; i < num_branches(); ++i)
    if (owner[i] == rank) mine.push_back(i);
  return mine;
}

// ---- serial combine ---------------------------------------------------------------

void cfg_combine_serial(const CfgPolicy& policy, const std::vector<TensorView>& preds,
                        const TensorView& out, int step, void* stream) {
  const char* op = "cfg_combine_serial";
  const int n = policy.num_branches();
  DIFFCOLL_REQUIRE(preds.size() == static_cast<size_t>(n), Status::kInvalidArgument, op,
                   ": the policy has ", n, " branches but ", preds.size(),
                   " predictions were passed");
  const std::string out_name = std::string(op) + " out";
  check_out(out, out_name);
  std::vector<std::string> names(n);
  for (int i = 0; i < n; ++i) {
    names[i] = pred_name(policy, i, "preds", i);
    check_pred(preds[i], out, names[i]);
  }
  check_step_and_extent(policy, step, out, op);
  const CfgMath& math = math_for(out.device);
  math.check_memory(out, out_name);
  for (int i = 0; i < n; ++i) math.check_memory(preds[i], names[i]);
  const DType dt = out.dtype;
  const CfgExtent extent = extent_of(out);
  const size_t bytes = out.nbytes();
  const bool out_in_place = out.is_contiguous();
  std::vector<bool> direct(n);
  size_t total = room(CfgScalars::bytes(extent)) + (out_in_place ? 0 : room(bytes));
  for (int i = 0; i < n; ++i) {
    direct[i] = readable_in_place(preds[i], out, out_in_place);
    if (!direct[i]) total += room(bytes);
  }
  // No communicator, hence no arena: staging comes from the memory's own
  // allocator (stream-ordered on a device, so the combine stays capturable).
  Allocation storage(math, total, stream);
  Carve carve(storage.get());
  CfgScalars scalars(carve.take(CfgScalars::bytes(extent)), extent);
  void* image = out_in_place ? out.data : carve.take(bytes);
  if (zero_init(policy, step) || extent.numel() == 0) {
    math.fill_zero(dt, image, extent.numel(), false, stream);
  } else {
    std::vector<const void*> images(n);
    for (int i = 0; i < n; ++i) {
      if (direct[i]) {
        images[i] = preds[i].data;
      } else {
        void* packed = carve.take(bytes);
        math.pack(preds[i], packed, stream);
        images[i] = packed;
      }
    }
    math.begin(scalars, stream);  // fresh memory: its tickets zeroed
    combine_all(math, policy, dt, images, image, extent, scalars, stream);
  }
  if (!out_in_place) math.unpack(image, out, stream);
}

// ---- parallel combine -------------------------------------------------------------

void cfg_combine_parallel(Comm& comm, const CfgPolicy& policy,
                          const std::vector<TensorView>& local, const TensorView& out, int step,
                          void* stream) {
  const char* op = "cfg_combine_parallel";
  const int degree = comm.size(), rank = comm.rank();
  const int n = policy.num_branches();
  const std::vector<int> mine = policy.dispatch(degree, rank);
  if (local.size() != mine.size()) {
    std::ostringstream list;
    for (size_t k = 0; k < mine.size(); ++k)
      list << (k ? ", " : "") << mine[k] << " '" << policy.branch(mine[k]).name << "'";
    fail(Status::kInvalidArgument, op, ": CFG rank ", rank, " of ", degree, " (", comm.name(),
         ") runs ", mine.size(), " branch(es) [", list.str(),
         "] (see diffcoll_cfg_dispatch) but local_count is ", local.size());
  }
  const std::string out_name = std::string(op) + " out";
  check_out(out, out_name);
  std::vector<std::string> names(local.size());
  for (size_t k = 0; k < local.size(); ++k) {
    names[k] = pred_name(policy, mine[k], "local_preds", k);
    check_pred(local[k], out, names[k]);
  }
  check_step_and_extent(policy, step, out, op);
  comm.side_for(out.device);  // refuses CUDA tensors on a communicator without a device side
  const CfgMath& math = math_for(out.device);
  math.check_memory(out, out_name);
  for (size_t k = 0; k < local.size(); ++k) math.check_memory(local[k], names[k]);

  run(comm, op, [&] {
    TensorView shape_only = out;  // ranks may use different strides
    contiguous_strides(shape_only.ndim, shape_only.shape, shape_only.strides);
    verify_agreement(comm, signature("cfg_combine_parallel", shape_only, step, n,
                                     static_cast<int64_t>(policy.fingerprint())));
    Side& side = comm.side_for(out.device);
    const DType dt = out.dtype;
    const CfgExtent extent = extent_of(out);
    const size_t bytes = out.nbytes();
    const bool out_in_place = out.is_contiguous();
    auto pack = [&](const TensorView& view, void* dense) {
      side.pack(view, dense, stream);
      comm.stats.bytes_packed += view.nbytes();
    };
    auto finish = [&](void* image) {
      if (out_in_place) return;
      side.unpack(image, out, stream);
      comm.stats.bytes_unpacked += out.nbytes();
    };

    if (zero_init(policy, step) || extent.numel() == 0) {
      // Every rank knows the answer: nothing to communicate.
      void* image = out_in_place ? out.data : side.staging(bytes, stream);
      math.fill_zero(dt, image, extent.numel(), false, stream);
      finish(image);
      return;
    }

    const std::vector<int> owner = policy.owners(degree);
    const CfgOptions& o = policy.options();
    const bool several_holders =
        std::any_of(owner.begin(), owner.end(), [&](int r) { return r != owner[0]; });
    if ((o.zero_star && owner[policy.cond()] != owner[policy.uncond()]) ||
        (o.order == CfgOrder::kTorch && several_holders)) {
      // CFG-zero* needs <cond, uncond> per sample, and no scalar summary of
      // cond on one rank and of uncond on another gives it; the TORCH order
      // rounds after every operation of the serial chain, which no sum of
      // per-rank partials reproduces: every rank gathers all predictions and
      // runs the serial combine locally.
      std::vector<int> held(degree, 0), slot(n);
      for (int i = 0; i < n; ++i) slot[i] = held[owner[i]]++;
      const int slots = *std::max_element(held.begin(), held.end());
      const size_t block = static_cast<size_t>(slots) * bytes;
      const bool send_direct = local.size() == 1 && slots == 1 && local[0].is_contiguous();
      Carve carve(side.staging(room(CfgScalars::bytes(extent)) +
                                   (send_direct ? 0 : room(block)) +
                                   room(block * degree) + (out_in_place ? 0 : room(bytes)),
                               stream));
      const CfgScalars scalars = side_scalars(side, math, carve, extent, stream);
      const void* send = send_direct ? local[0].data : nullptr;
      if (!send_direct) {
        char* buffer = static_cast<char*>(carve.take(block));
        for (size_t k = 0; k < local.size(); ++k) {
          char* dst = buffer + k * bytes;
          if (local[k].is_contiguous()) side.copy(dst, local[k].data, bytes, stream);
          else pack(local[k], dst);
        }
        // Unused slots travel too: zero them rather than send stale memory.
        math.fill_zero(DType::kUInt8, buffer + local.size() * bytes,
                       static_cast<int64_t>(block - local.size() * bytes), false, stream);
        send = buffer;
      }
      char* gathered = static_cast<char*>(carve.take(block * degree));
      side.backend().all_gather(send, gathered, block, stream);
      void* image = out_in_place ? out.data : carve.take(bytes);
      std::vector<const void*> images(n);
      for (int i = 0; i < n; ++i)
        images[i] = gathered + (static_cast<size_t>(owner[i]) * slots + slot[i]) * bytes;
      combine_all(math, policy, dt, images, image, extent, scalars, stream);
      finish(image);
      return;
    }

    // The local images: read in place where they can be, packed otherwise.
    const int count = static_cast<int>(local.size());
    std::vector<bool> direct(count);
    size_t total = room(CfgScalars::bytes(extent)) + (out_in_place ? 0 : room(bytes));
    for (int k = 0; k < count; ++k) {
      direct[k] = readable_in_place(local[k], out, out_in_place);
      if (!direct[k]) total += room(bytes);
    }
    Carve carve(side.staging(total, stream));
    const CfgScalars scalars = side_scalars(side, math, carve, extent, stream);
    void* image = out_in_place ? out.data : carve.take(bytes);
    std::vector<const void*> images(count);
    for (int k = 0; k < count; ++k) {
      if (direct[k]) {
        images[k] = local[k].data;
      } else {
        void* packed = carve.take(bytes);
        pack(local[k], packed);
        images[k] = packed;
      }
    }
    if (degree == 1) {  // every branch is here, in branch order: the serial combine
      combine_all(math, policy, dt, images, image, extent, scalars, stream);
      finish(image);
      return;
    }

    // The weighted all-reduce: each rank's PARALLEL-order partial, one sum.
    std::vector<double> weights(count);
    int local_cond = -1, local_uncond = -1;
    for (int k = 0; k < count; ++k) {
      weights[k] = policy.weights()[mine[k]];
      if (mine[k] == policy.cond()) local_cond = k;
      if (mine[k] == policy.uncond()) local_uncond = k;
    }
    const CfgPost post = policy.post();
    CfgCombine c;
    c.order = CfgOrder::kParallel;
    c.inputs = images.data();
    c.count = count;
    c.weights = weights.data();
    c.post = post;  // which of cond's statistics to collect
    if (o.zero_star && local_uncond >= 0) {  // cond is here too (checked above)
      math.input_stats(dt, images[local_cond], images[local_uncond], post.any(), o.order, extent,
                       scalars, stream);
      c.scaled = local_uncond;
    } else if (post.any() && local_cond >= 0) {
      c.cond = local_cond;  // its statistics before the partial is written: out may alias it
    }
    if (post.any() && local_cond < 0)
      math.fill_zero(DType::kFloat64, scalars.cond_stats, extent.batch * kCfgStatColumns, false,
                     stream);
    math.combine(dt, c, extent, image, scalars, stream);
    // The partials and, for post-processing, the cond statistics (the rank
    // holding cond contributes them, the others zeros) in one batch: NCCL
    // runs both in one launch, so the few doubles add no latency of their own.
    const AllReduceOp sums[2] = {
        {image, static_cast<size_t>(extent.numel()), dt, Reduction{RedOp::kSum, 1.0}},
        {scalars.cond_stats, static_cast<size_t>(extent.batch * kCfgStatColumns),
         DType::kFloat64, Reduction{RedOp::kSum, 1.0}}};
    side.backend().all_reduce_batch(sums, post.any() ? 2 : 1, stream);
    if (post.any()) {
      math.output_stats(dt, image, o.order, post, extent, scalars, stream);
      math.post_process(dt, image, o.order, post, extent, scalars, stream);
    }
    finish(image);
  });
}

}  // namespace ops
}  // namespace diffcoll
