// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// Grouped-query attention in a Ulysses group: which k/v heads each rank
// needs for the query heads it holds.
//
// With Q query heads and K k/v heads (K divides Q), query head h attends k/v
// head h / G, G = Q / K (the rule of PyTorch's enable_gqa and of
// flash-attention: k/v head j serves query heads j*G .. j*G + G - 1). Rank r
// of P holds query heads [qs, qs + qn) by split_extent(Q, P, r); it needs
// ("holds") the k/v heads [qs / G, ceil((qs + qn) / G)), none when qn = 0.
// Neighbouring ranks may both hold a k/v head whose group straddles their
// boundary. Each k/v head is "owned" by the rank that holds its group's
// first query head: rank r owns [ceil(qs / G), ceil((qs + qn) / G)), a
// sub-range of what it holds; the owned ranges partition [0, K).
#pragma once

#include <cstdint>

namespace diffcoll {
namespace ops {

// Throws Error(kInvalidArgument) unless query_heads >= 1, kv_heads >= 1,
// kv_heads divides query_heads, parts >= 1 and 0 <= index < parts.
void kv_heads_held(int64_t query_heads, int64_t kv_heads, int parts, int index, int64_t* start,
                   int64_t* length);
void kv_heads_owned(int64_t query_heads, int64_t kv_heads, int parts, int index, int64_t* start,
                    int64_t* length);

}  // namespace ops
}  // namespace diffcoll
