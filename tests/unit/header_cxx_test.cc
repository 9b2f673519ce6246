// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The public header in a C++ translation unit built with -Wall -Wextra
// -Wpedantic -Werror: it must compile cleanly and its initialisers must work.
#include "diffcoll/diffcoll.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(std::is_standard_layout<diffcoll_tensor_t>::value, "ABI struct");
static_assert(std::is_trivially_copyable<diffcoll_config_t>::value, "ABI struct");
static_assert(DIFFCOLL_MAX_DIMS == 8, "ABI constant");
static_assert(DIFFCOLL_SPLIT_NOCOLOR == -1, "ABI constant");

int main() {
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  diffcoll_stats_t stats = DIFFCOLL_STATS_INIT;
  int failures = 0;
  if (diffcoll_version() != DIFFCOLL_VERSION) ++failures;
  if (config.struct_size != sizeof config || config.timeout_ms != 30000) ++failures;
  if (stats.struct_size != sizeof stats) ++failures;
  if (std::strlen(diffcoll_status_string(DIFFCOLL_SUCCESS)) == 0) ++failures;
  int32_t size = 0;
  if (diffcoll_comm_size(nullptr, &size) != DIFFCOLL_ERR_INVALID_HANDLE) ++failures;
  if (failures) std::fprintf(stderr, "header_cxx_test: %d failures\n", failures);
  return failures ? 1 : 0;
}
