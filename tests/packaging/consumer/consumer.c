// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

/* A downstream program built against an installed diffcoll: two ranks as two
 * threads all-reduce a small tensor through rendezvous "local://consumer". */
#include <diffcoll/diffcoll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { kCount = 8 };

typedef struct {
  int32_t rank;
  diffcoll_status_t status;
  double data[kCount];
  char error[256];
} rank_state;

static void* run_rank(void* arg) {
  rank_state* st = (rank_state*)arg;
  diffcoll_comm_t* comm = NULL;
  diffcoll_tensor_t t;
  int i;
  for (i = 0; i < kCount; ++i) st->data[i] = st->rank == 0 ? i : 100.0 * i;
  st->status = diffcoll_comm_create("local://consumer", st->rank, 2, NULL, &comm);
  if (st->status == DIFFCOLL_SUCCESS) {
    memset(&t, 0, sizeof t);
    t.data = st->data;
    t.dtype = DIFFCOLL_FLOAT64;
    t.device_type = DIFFCOLL_DEVICE_CPU;
    t.ndim = 1;
    t.shape[0] = kCount;
    t.strides[0] = 1;
    st->status = diffcoll_all_reduce(comm, &t, DIFFCOLL_SUM, 0.0, NULL);
  }
  if (st->status != DIFFCOLL_SUCCESS)
    snprintf(st->error, sizeof st->error, "%s: %s", diffcoll_status_string(st->status),
             diffcoll_last_error());
  diffcoll_comm_destroy(comm);
  return NULL;
}

int main(void) {
  rank_state ranks[2];
  pthread_t threads[2];
  int r, i, bad = 0;
  if (diffcoll_version() != DIFFCOLL_VERSION) {
    fprintf(stderr, "library version %u, header %u\n", (unsigned)diffcoll_version(),
            (unsigned)DIFFCOLL_VERSION);
    return 1;
  }
  for (r = 0; r < 2; ++r) {
    memset(&ranks[r], 0, sizeof ranks[r]);
    ranks[r].rank = r;
    pthread_create(&threads[r], NULL, run_rank, &ranks[r]);
  }
  for (r = 0; r < 2; ++r) pthread_join(threads[r], NULL);
  for (r = 0; r < 2; ++r) {
    if (ranks[r].status != DIFFCOLL_SUCCESS) {
      fprintf(stderr, "rank %d failed: %s\n", r, ranks[r].error);
      return 1;
    }
    for (i = 0; i < kCount; ++i)
      if (ranks[r].data[i] != 101.0 * i) {
        fprintf(stderr, "rank %d element %d: %g, want %g\n", r, i, ranks[r].data[i],
                101.0 * i);
        bad = 1;
      }
  }
  if (bad) return 1;
  printf("consumer: 2-rank all_reduce OK (diffcoll %u)\n", (unsigned)diffcoll_version());
  return 0;
}
