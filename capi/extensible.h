// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Reading a caller's extensible struct (one that starts with struct_size).
#pragma once

#include <cstddef>

namespace diffcoll {
namespace capi {

// `defaults` with every listed field of `in` that ends within in.struct_size
// copied over. A field past struct_size (an older caller) keeps its default;
// so does one that struct_size cuts through, which is never read: half a
// pointer or half a double is not a value. Fields are named by pointers to
// members, e.g. read_extensible(*config, defaults, &T::a, &T::b).
template <typename T, typename... Types>
T read_extensible(const T& in, T defaults, Types T::*... fields) {
  const char* base = reinterpret_cast<const char*>(&in);
  auto copy = [&](auto T::*field) {
    const size_t end = static_cast<size_t>(reinterpret_cast<const char*>(&(in.*field)) - base) +
                       sizeof(in.*field);
    if (end <= in.struct_size) defaults.*field = in.*field;
  };
  (copy(fields), ...);
  defaults.struct_size = sizeof(T);
  return defaults;
}

}  // namespace capi
}  // namespace diffcoll
