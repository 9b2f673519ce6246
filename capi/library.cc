// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Library-wide entry points: version, status strings, last error.
#include "handles.h"

extern "C" {

uint32_t diffcoll_version(void) { return DIFFCOLL_VERSION; }

const char* diffcoll_status_string(diffcoll_status_t status) {
  switch (status) {
    case DIFFCOLL_SUCCESS: return "success";
    case DIFFCOLL_ERR_INVALID_ARGUMENT: return "invalid argument";
    case DIFFCOLL_ERR_INVALID_HANDLE: return "invalid handle";
    case DIFFCOLL_ERR_UNSUPPORTED: return "unsupported";
    case DIFFCOLL_ERR_MISMATCH: return "ranks disagree on the call";
    case DIFFCOLL_ERR_TIMEOUT: return "timed out";
    case DIFFCOLL_ERR_REMOTE: return "a peer failed";
    case DIFFCOLL_ERR_SYSTEM: return "system error";
    case DIFFCOLL_ERR_OUT_OF_MEMORY: return "out of memory";
    case DIFFCOLL_ERR_CUDA: return "CUDA error";
    case DIFFCOLL_ERR_NCCL: return "NCCL error";
    case DIFFCOLL_ERR_IN_CAPTURE: return "not allowed inside a CUDA graph capture";
    case DIFFCOLL_ERR_VERSION: return "unknown version";
    case DIFFCOLL_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* diffcoll_last_error(void) { return diffcoll::capi::last_error(); }

}  // extern "C"
