// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

/* Throwaway library of packaging.abi_compatible_addition: the real library
 * plus one new exported function (and, in its test header, a pointer
 * appended to diffcoll_api_t). check-abi.sh must accept it. */
#include "diffcoll/diffcoll.h"

diffcoll_status_t diffcoll_abi_test_added(diffcoll_comm_t* comm) {
  (void)comm;
  return DIFFCOLL_ERR_UNSUPPORTED;
}
