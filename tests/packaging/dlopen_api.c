// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

/*
 * A program that uses diffcoll only through dlopen(): one dlsym() of
 * diffcoll_get_api, then everything through the function table. It is not
 * linked against libdiffcoll (the header is used for the types only).
 *
 *   dlopen_api_test /path/to/libdiffcoll.so.0
 *
 * Checks: a 2-rank all_reduce (two threads, rendezvous "local://dlopen_api")
 * gives the right sums; unknown table versions fail with DIFFCOLL_ERR_VERSION
 * and a message; every field of the table is the function it is named after.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffcoll/diffcoll.h"

typedef diffcoll_status_t (*get_api_fn)(uint32_t, const diffcoll_api_t**);

static const diffcoll_api_t* api;
static int failures;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fprintf(stderr, "\n");                                          \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

enum { kCount = 6 };

typedef struct {
  int32_t rank;
  diffcoll_status_t status;
  float data[kCount];
  char error[256];
} rank_state;

static void* run_rank(void* arg) {
  rank_state* st = (rank_state*)arg;
  diffcoll_comm_t* comm = NULL;
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  int i;
  config.timeout_ms = 20000;
  for (i = 0; i < kCount; ++i) st->data[i] = (float)((st->rank + 1) * (i + 1));
  st->status = api->diffcoll_comm_create("local://dlopen_api", st->rank, 2, &config, &comm);
  if (st->status == DIFFCOLL_SUCCESS) {
    diffcoll_tensor_t t;
    memset(&t, 0, sizeof t);
    t.data = st->data;
    t.dtype = DIFFCOLL_FLOAT32;
    t.device_type = DIFFCOLL_DEVICE_CPU;
    t.ndim = 2;
    t.shape[0] = 2;
    t.shape[1] = 3;
    t.strides[0] = 3;
    t.strides[1] = 1;
    st->status = api->diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0.0, NULL);
  }
  if (st->status != DIFFCOLL_SUCCESS)
    snprintf(st->error, sizeof st->error, "%s", api->diffcoll_last_error());
  if (comm) api->diffcoll_comm_destroy(comm);
  return NULL;
}

int main(int argc, char** argv) {
  void* lib;
  get_api_fn get_api;
  void* sym;
  const diffcoll_api_t* table = NULL;
  diffcoll_status_t s;
  rank_state ranks[2];
  pthread_t threads[2];
  int r, i;

  if (argc != 2) {
    fprintf(stderr, "usage: %s /path/to/libdiffcoll.so.0\n", argv[0]);
    return 2;
  }
  lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen(%s): %s\n", argv[1], dlerror());
    return 1;
  }
  sym = dlsym(lib, "diffcoll_get_api");
  if (!sym) {
    fprintf(stderr, "dlsym(diffcoll_get_api): %s\n", dlerror());
    return 1;
  }
  memcpy(&get_api, &sym, sizeof get_api); /* object -> function pointer, portably */

  /* The table. */
  s = get_api(DIFFCOLL_API_VERSION_1, &api);
  CHECK(s == DIFFCOLL_SUCCESS && api != NULL, "diffcoll_get_api(1) returned %d", (int)s);
  if (!api) return 1;
  CHECK(api->version == DIFFCOLL_API_VERSION_1, "table version %u", (unsigned)api->version);
  CHECK(api->struct_size == sizeof(diffcoll_api_t), "struct_size %zu, header says %zu",
        api->struct_size, sizeof(diffcoll_api_t));
  CHECK(DIFFCOLL_API_HAS(api, diffcoll_barrier), "DIFFCOLL_API_HAS(diffcoll_barrier)");
  CHECK(api->diffcoll_version() == DIFFCOLL_VERSION, "version %u, header %u",
        (unsigned)api->diffcoll_version(), (unsigned)DIFFCOLL_VERSION);
  s = get_api(DIFFCOLL_API_VERSION_1, &table);
  CHECK(s == DIFFCOLL_SUCCESS && table == api, "a second call returns the same table");

  /* Every field is the function it is named after (dlsym only to verify). */
#define DIFFCOLL_API_FIELD(name)                                                   \
  {                                                                                \
    void* field;                                                                   \
    void* want = dlsym(lib, #name);                                                \
    memcpy(&field, &api->name, sizeof field);                                      \
    CHECK(want != NULL && field == want, "field " #name " is %p, dlsym says %p",   \
          field, want);                                                            \
  }
#include "api_fields.inc"
#undef DIFFCOLL_API_FIELD

  /* Unknown versions fail cleanly. */
  table = api;
  s = get_api(DIFFCOLL_API_VERSION_1 + 1000, &table);
  CHECK(s == DIFFCOLL_ERR_VERSION, "version 1001 returned %d", (int)s);
  CHECK(table == NULL, "table not reset to NULL on failure");
  CHECK(strstr(api->diffcoll_last_error(), "version") != NULL, "last error: \"%s\"",
        api->diffcoll_last_error());
  printf("unknown version -> %s: %s\n", api->diffcoll_status_string(s),
         api->diffcoll_last_error());
  s = get_api(0, &table);
  CHECK(s == DIFFCOLL_ERR_VERSION, "version 0 returned %d", (int)s);
  s = get_api(DIFFCOLL_API_VERSION_1, NULL);
  CHECK(s == DIFFCOLL_ERR_INVALID_ARGUMENT, "NULL table returned %d", (int)s);

  /* A 2-rank all_reduce through the table. */
  for (r = 0; r < 2; ++r) {
    memset(&ranks[r], 0, sizeof ranks[r]);
    ranks[r].rank = r;
    if (pthread_create(&threads[r], NULL, run_rank, &ranks[r]) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
  }
  for (r = 0; r < 2; ++r) pthread_join(threads[r], NULL);
  for (r = 0; r < 2; ++r) {
    CHECK(ranks[r].status == DIFFCOLL_SUCCESS, "rank %d: %s", r, ranks[r].error);
    for (i = 0; i < kCount; ++i) {
      float want = (float)(3 * (i + 1)); /* (1 + 2) * (i + 1) */
      CHECK(ranks[r].data[i] == want, "rank %d element %d: %g, want %g", r, i,
            (double)ranks[r].data[i], (double)want);
    }
  }

  dlclose(lib);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("dlopen + diffcoll_get_api: OK\n");
  return 0;
}
