// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The wire_format and scale_block fields of an options struct, turned into
// the core's FP8 wire.
#pragma once

#include "../core/error.h"
#include "../core/fp8_wire.h"
#include "diffcoll/diffcoll.h"

namespace diffcoll {
namespace capi {

// False for DIFFCOLL_WIRE_NATIVE; true with *fp8 set for an FP8 format.
// Throws kInvalidArgument naming `what` for an unknown format or a block < 1.
inline bool read_wire_format(int32_t wire_format, int32_t scale_block, const char* what,
                             Fp8Wire* fp8) {
  DIFFCOLL_REQUIRE(wire_format == DIFFCOLL_WIRE_NATIVE || wire_format == DIFFCOLL_WIRE_FP8_E4M3 ||
                       wire_format == DIFFCOLL_WIRE_FP8_E5M2,
                   Status::kInvalidArgument, what, "->wire_format ", wire_format,
                   " is not a diffcoll_wire_format_t");
  if (wire_format == DIFFCOLL_WIRE_NATIVE) return false;
  DIFFCOLL_REQUIRE(scale_block >= 1, Status::kInvalidArgument, what, "->scale_block ",
                   scale_block, " must be >= 1 (tokens per FP8 scale)");
  fp8->format = wire_format == DIFFCOLL_WIRE_FP8_E4M3 ? Fp8Format::kE4M3 : Fp8Format::kE5M2;
  fp8->block = scale_block;
  return true;
}

}  // namespace capi
}  // namespace diffcoll
