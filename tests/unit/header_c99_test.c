// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

/* The public header as strict C99 (-std=c99 -pedantic -Werror): it must
 * compile, its initialisers must be valid C, and the library it describes
 * must be the one loaded. Returns non-zero on failure. */
#include "diffcoll/diffcoll.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,     \
              __LINE__, #cond);                                  \
      ++failures;                                                \
    }                                                            \
  } while (0)

int main(void) {
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  diffcoll_stats_t stats = DIFFCOLL_STATS_INIT;
  diffcoll_comm_t* comm = NULL;
  diffcoll_tensor_t tensor;
  float values[6] = {1, 2, 3, 4, 5, 6};
  diffcoll_status_t status;
  int32_t size = 0;

  CHECK(diffcoll_version() == DIFFCOLL_VERSION);
  CHECK(diffcoll_status_string(DIFFCOLL_ERR_INTERNAL) != NULL);
  CHECK(config.struct_size == sizeof(diffcoll_config_t));
  CHECK(config.timeout_ms == 30000 && config.device_id == -1 && config.check == -1 &&
        config.host == NULL);
  CHECK(stats.struct_size == sizeof(diffcoll_stats_t) && stats.ops == 0);

  /* The descriptor's layout is part of the ABI. */
  CHECK(offsetof(diffcoll_tensor_t, data) == 0);
  CHECK(offsetof(diffcoll_tensor_t, dtype) == sizeof(void*));
  CHECK(offsetof(diffcoll_tensor_t, ndim) == sizeof(void*) + 12);
  CHECK(offsetof(diffcoll_tensor_t, shape) == sizeof(void*) + 16);
  CHECK(offsetof(diffcoll_tensor_t, strides) == sizeof(void*) + 16 + 8 * DIFFCOLL_MAX_DIMS);
  CHECK(DIFFCOLL_MAX_DIMS == 8);

  config.timeout_ms = 5000;
  config.check = 0;
  status = diffcoll_comm_create("local://header_c99_test", 0, 1, &config, &comm);
  CHECK(status == DIFFCOLL_SUCCESS);
  if (status != DIFFCOLL_SUCCESS) {
    fprintf(stderr, "create: %s\n", diffcoll_last_error());
    return 1;
  }
  CHECK(diffcoll_comm_size(comm, &size) == DIFFCOLL_SUCCESS && size == 1);

  memset(&tensor, 0, sizeof tensor);
  tensor.data = values;
  tensor.dtype = DIFFCOLL_FLOAT32;
  tensor.device_type = DIFFCOLL_DEVICE_CPU;
  tensor.ndim = 2;
  tensor.shape[0] = 2;
  tensor.shape[1] = 3;
  tensor.strides[0] = 3;
  tensor.strides[1] = 1;
  CHECK(diffcoll_all_reduce(comm, &tensor, DIFFCOLL_SUM, 0.0, NULL) == DIFFCOLL_SUCCESS);
  CHECK(values[0] == 1 && values[5] == 6);
  CHECK(diffcoll_comm_get_stats(comm, &stats) == DIFFCOLL_SUCCESS && stats.ops == 1);
  CHECK(diffcoll_all_reduce(NULL, &tensor, DIFFCOLL_SUM, 0.0, NULL) ==
        DIFFCOLL_ERR_INVALID_HANDLE);
  CHECK(strlen(diffcoll_last_error()) > 0);
  CHECK(diffcoll_comm_destroy(comm) == DIFFCOLL_SUCCESS);

  if (failures == 0) printf("header_c99_test: ok\n");
  return failures == 0 ? 0 : 1;
}
