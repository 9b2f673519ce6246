# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# CPACK_PROJECT_CONFIG_FILE of diffcoll: cpack reads it once per generator,
# after CPackConfig.cmake. For DEB it sets the Depends of libdiffcoll0 from
# dpkg-shlibdeps on the built library.
#
# Why not CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS: when CPack scans a package
# for shared objects it also gives every one that ships a library under
# /usr/lib a postinst and a postrm calling ldconfig, where Debian wants the
# ldconfig trigger that libdiffcoll0 has (lintian: maintscript-calls-ldconfig).
#
# Inputs (set by diffcoll_setup_cpack in packaging/CMakeLists.txt):
#   CPACK_DIFFCOLL_DPKG_SHLIBDEPS     dpkg-shlibdeps; empty: Depends as spelled out
#   CPACK_DIFFCOLL_RUNTIME_LIBRARY    libdiffcoll.so.0 in the build tree (its
#                                     build RPATH leads to CUDA's and NCCL's)
#   CPACK_DIFFCOLL_SHLIBDEPS_DIR      a scratch directory
#   CPACK_DIFFCOLL_RUNTIME_EXTRA_DEPENDS  what dpkg-shlibdeps cannot know (CUDA, NCCL)

if(NOT CPACK_GENERATOR STREQUAL "DEB" OR NOT CPACK_DIFFCOLL_DPKG_SHLIBDEPS)
  return()
endif()

set(_work "${CPACK_DIFFCOLL_SHLIBDEPS_DIR}")
file(REMOVE_RECURSE "${_work}")
file(MAKE_DIRECTORY "${_work}/debian")
file(TOUCH "${_work}/debian/control")  # dpkg-shlibdeps wants one; nothing in it is used
set(_private_dirs)
foreach(_dir IN LISTS CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS)
  list(APPEND _private_dirs "-l${_dir}")
endforeach()
# --ignore-missing-info: libraries no dpkg database knows (CUDA's and NCCL's
# from /usr/local/cuda) give nothing rather than an error, as with CPack's call.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C "${CPACK_DIFFCOLL_DPKG_SHLIBDEPS}"
          --ignore-missing-info ${_private_dirs} -O -e "${CPACK_DIFFCOLL_RUNTIME_LIBRARY}"
  WORKING_DIRECTORY "${_work}"
  OUTPUT_VARIABLE _out ERROR_VARIABLE _err RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0 OR NOT _out MATCHES "shlibs:Depends=([^\n]+)")
  message(FATAL_ERROR "dpkg-shlibdeps on ${CPACK_DIFFCOLL_RUNTIME_LIBRARY} failed (${_rc}):\n${_out}${_err}")
endif()
set(_depends "${CMAKE_MATCH_1}")
if(CPACK_DIFFCOLL_RUNTIME_EXTRA_DEPENDS)
  string(APPEND _depends ", ${CPACK_DIFFCOLL_RUNTIME_EXTRA_DEPENDS}")
endif()
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "${_depends}")
