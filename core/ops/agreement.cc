// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "agreement.h"

#include <cstring>
#include <sstream>
#include <vector>

#include "../error.h"

namespace diffcoll {
namespace ops {
namespace {

std::string render(const CallSignature& s) {
  std::ostringstream os;
  os << s.operation << "(" << dtype_name(static_cast<DType>(s.dtype)) << "[";
  for (int d = 0; d < s.ndim && d < kMaxDims; ++d) os << (d ? "," : "") << s.shape[d];
  os << "] strides [";
  for (int d = 0; d < s.ndim && d < kMaxDims; ++d) os << (d ? "," : "") << s.strides[d];
  os << "] args [" << s.arguments[0] << "," << s.arguments[1] << "," << s.arguments[2] << ","
     << s.arguments[3] << "])";
  return os.str();
}

}  // namespace

CallSignature signature(const char* operation, const TensorView& tensor, int64_t a0,
                        int64_t a1, int64_t a2, int64_t a3) {
  CallSignature s;
  std::strncpy(s.operation, operation, sizeof s.operation - 1);
  s.dtype = static_cast<int32_t>(tensor.dtype);
  s.ndim = tensor.ndim;
  for (int d = 0; d < tensor.ndim; ++d) {
    s.shape[d] = tensor.shape[d];
    s.strides[d] = tensor.strides[d];
  }
  s.arguments[0] = a0;
  s.arguments[1] = a1;
  s.arguments[2] = a2;
  s.arguments[3] = a3;
  return s;
}

void verify_agreement(Comm& comm, const CallSignature& mine) {
  if (!comm.options().check || comm.size() == 1) return;
  std::vector<CallSignature> all(comm.size());
  comm.host_backend().all_gather(&mine, all.data(), sizeof mine, nullptr);
  for (int r = 1; r < comm.size(); ++r) {
    if (std::memcmp(&all[r], &all[0], sizeof mine) != 0)
      fail(Status::kMismatch, "DIFFCOLL_CHECK: on ", comm.name(), " rank ", r, " called ",
           render(all[r]), " but rank 0 called ", render(all[0]));
  }
}

}  // namespace ops
}  // namespace diffcoll
