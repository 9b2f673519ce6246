# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Reads the public header and compares the public functions with the fields
# of the function table diffcoll_api_t.
#   cmake -DHEADER=.../diffcoll.h -DMODE=check -P api_table.cmake
#     fails unless the table has one pointer per public function (except
#     diffcoll_get_api), named after it, in the order the header declares them.
#   cmake -DHEADER=... -DMODE=fields -DOUT=file -P api_table.cmake
#     writes DIFFCOLL_API_FIELD(name) for every field of the table (for the
#     dlopen test, which checks each pointer against dlsym(name)).
cmake_minimum_required(VERSION 3.16)
file(READ "${HEADER}" text)

string(FIND "${text}" "typedef struct diffcoll_api_t {" t0)
string(FIND "${text}" "} diffcoll_api_t;" t1)
if(t0 LESS 0 OR t1 LESS t0)
  message(FATAL_ERROR "${HEADER}: no 'typedef struct diffcoll_api_t { ... } diffcoll_api_t;'")
endif()
math(EXPR len "${t1} - ${t0}")
string(SUBSTRING "${text}" ${t0} ${len} table)
string(REGEX MATCHALL "\\(\\*diffcoll_[a-z0-9_]+\\)\\(" raw "${table}")
set(fields)
foreach(f IN LISTS raw)
  string(REGEX REPLACE "^\\(\\*([a-z0-9_]+)\\)\\($" "\\1" f "${f}")
  list(APPEND fields ${f})
endforeach()

if(MODE STREQUAL "fields")
  set(out "/* Generated from diffcoll.h by tests/packaging/api_table.cmake. */\n")
  foreach(f IN LISTS fields)
    string(APPEND out "DIFFCOLL_API_FIELD(${f})\n")
  endforeach()
  file(WRITE "${OUT}" "${out}")
  return()
endif()

# Public functions: every line starting "DIFFCOLL_API <type> diffcoll_x(".
file(STRINGS "${HEADER}" decls REGEX "^DIFFCOLL_API .*diffcoll_[a-z0-9_]+\\(")
set(funcs)
foreach(d IN LISTS decls)
  string(REGEX MATCH "(diffcoll_[a-z0-9_]+)\\(" m "${d}")
  set(name "${CMAKE_MATCH_1}")
  if(NOT name STREQUAL "diffcoll_get_api")
    list(APPEND funcs ${name})
  endif()
endforeach()

list(LENGTH funcs nfuncs)
list(LENGTH fields nfields)
message(STATUS "${nfuncs} public functions (diffcoll_get_api aside), ${nfields} table fields")
if(NOT funcs STREQUAL fields)
  set(missing ${funcs})
  list(REMOVE_ITEM missing ${fields})
  set(extra ${fields})
  list(REMOVE_ITEM extra ${funcs})
  string(REPLACE ";" "\n  " f "${funcs}")
  string(REPLACE ";" "\n  " t "${fields}")
  message(FATAL_ERROR
    "diffcoll_api_t does not list the public functions in header order.\n"
    "Missing from the table: ${missing}\nIn the table but not declared: ${extra}\n"
    "Rule: declare a new function after the existing ones (above the "
    "@@section-end@@ line), append its pointer at the end of diffcoll_api_t "
    "and set it in capi/api_table.cc. Existing fields never move.\n"
    "Header order:\n  ${f}\nTable order:\n  ${t}")
endif()
message(STATUS "diffcoll_api_t matches the header")
