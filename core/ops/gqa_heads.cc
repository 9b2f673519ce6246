// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
#include "gqa_heads.h"

#include "../error.h"
#include "slabs.h"

namespace diffcoll {
namespace ops {
namespace {

// Rank `index`'s query heads [*first, *end) and the group size.
int64_t query_part(int64_t query_heads, int64_t kv_heads, int parts, int index, int64_t* first,
                   int64_t* end) {
  DIFFCOLL_REQUIRE(kv_heads >= 1 && query_heads >= 1 && query_heads % kv_heads == 0,
                   Status::kInvalidArgument, "grouped-query attention: ", kv_heads,
                   " k/v heads must be >= 1 and divide the ", query_heads, " query heads");
  int64_t length;
  split_extent(query_heads, parts, index, first, &length);
  *end = *first + length;
  return query_heads / kv_heads;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void kv_heads_held(int64_t query_heads, int64_t kv_heads, int parts, int index, int64_t* start,
                   int64_t* length) {
  int64_t first, end;
  const int64_t group = query_part(query_heads, kv_heads, parts, index, &first, &end);
  *start = first / group;
  *length = end > first ? ceil_div(end, group) - *start : 0;
}

void kv_heads_owned(int64_t query_heads, int64_t kv_heads, int parts, int index, int64_t* start,
                    int64_t* length) {
  int64_t first, end;
  const int64_t group = query_part(query_heads, kv_heads, parts, index, &first, &end);
  *start = ceil_div(first, group);
  *length = ceil_div(end, group) - *start;
}

}  // namespace ops
}  // namespace diffcoll
