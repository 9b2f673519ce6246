# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Writes a TEST COPY of the public header with a deliberate ABI change, for
# the throwaway libraries of the packaging.abi_* tests.
#   cmake -DIN=diffcoll.h -DOUT=copy/diffcoll/diffcoll.h -DMODE=break|added -P abi_variant.cmake
#   break: a field inserted in the middle of diffcoll_tensor_t (incompatible);
#   added: a new function, its pointer appended to diffcoll_api_t (compatible).
cmake_minimum_required(VERSION 3.16)
file(READ "${IN}" text)

macro(insert_before anchor what)
  string(FIND "${text}" "${anchor}" _at)
  if(_at LESS 0)
    message(FATAL_ERROR "abi_variant.cmake: '${anchor}' not found in ${IN}")
  endif()
  string(SUBSTRING "${text}" 0 ${_at} _head)
  string(SUBSTRING "${text}" ${_at} -1 _tail)
  set(text "${_head}${what}${_tail}")
endmacro()

if(MODE STREQUAL "break")
  # After the first member (data), before dtype: every later offset moves.
  string(REGEX MATCH "typedef struct diffcoll_tensor_t {\n[^\n]*\n" first "${text}")
  if(NOT first)
    message(FATAL_ERROR "abi_variant.cmake: diffcoll_tensor_t not found in ${IN}")
  endif()
  string(REPLACE "${first}" "${first}  int32_t abi_break_test_field;\n" text "${text}")
elseif(MODE STREQUAL "added")
  insert_before("} diffcoll_api_t;"
    "  /** Test only. */\n  diffcoll_status_t (*diffcoll_abi_test_added)(diffcoll_comm_t* comm);\n")
  insert_before("/* @@section-end@@"
    "/** Test only. */\nDIFFCOLL_API diffcoll_status_t diffcoll_abi_test_added(diffcoll_comm_t* comm);\n\n")
else()
  message(FATAL_ERROR "abi_variant.cmake: MODE must be break or added")
endif()
file(WRITE "${OUT}" "${text}")
