// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Ulysses (DeepSpeed-Ulysses / USP) all-to-all: sequence-sharded tensors
// become head-sharded ones before attention, and back after it, with the
// layout change done by the pack and unpack instead of permute().contiguous().
//
// Splits are uneven where they must be, by split_extent's rule (the
// torch.tensor_split rule): of an extent E over P ranks, rank r holds
// E / P + 1 rows if r < E % P, else E / P. No padding: every rank moves only
// real rows, and attention runs on real heads and real tokens.
#pragma once

#include <cstdint>

#include "../comm.h"
#include "../fp8_wire.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

// Values equal diffcoll_ulysses_direction_t.
enum class UlyssesDirection : int32_t {
  kSeqToHead = 0,  // [.., S_r, .., H, ..] -> [.., S, .., H_r, ..] (before attention)
  kHeadToSeq = 1,  // [.., S, .., H_r, ..] -> [.., S_r, .., H, ..] (after attention)
};

bool ulysses_direction_valid(int32_t value);

// What diffcoll_ulysses_options_t selects (defaults: neither).
struct UlyssesOptions {
  // Grouped-query attention: > 0 names the query head count Q; a tensor of
  // the call with K != Q heads (K divides Q) is k/v: each rank receives the
  // k/v heads its query heads attend to (gqa_heads.h), and HEAD_TO_SEQ
  // returns each k/v head from the rank that owns it. 0: every tensor's
  // heads are split on their own.
  int64_t query_heads = 0;
  // Messages between ranks as FP8 (fp8_wire.h) with the tokens of each
  // message in blocks of fp8.block; the slab a rank keeps is copied exactly.
  bool use_fp8 = false;
  Fp8Wire fp8;
};

// One Ulysses all-to-all of `count` tensors (q, k, v, ...) as one exchange:
// one batched pack into one staging buffer, one backend all-to-all (one
// tensor, extents divisible by the group size, no option) or one grouped
// send/recv of one message per tensor and peer (otherwise), one batched
// unpack; slabs that are contiguous in the caller's memory skip the pack or
// unpack (not with FP8, where every message is packed and unpacked).
// `seq_axis` and `head_axis` name the dimensions of every tensor (negative:
// from the end). inputs[t] and outputs[t] have the same rank and agree in
// every other dimension; see diffcoll_ulysses_all_to_all for the shapes.
// Collective over `comm`.
void ulysses_all_to_all(Comm& comm, const TensorView* inputs, const TensorView* outputs,
                        int count, int seq_axis, int head_axis, UlyssesDirection direction,
                        const UlyssesOptions& options, void* stream);

}  // namespace ops
}  // namespace diffcoll
