// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "usp_mesh.h"

#include <cstdint>

#include "error.h"

namespace diffcoll {

void check_usp_degrees(const UspDegrees& g, int size) {
  DIFFCOLL_REQUIRE(g.ulysses >= 1 && g.ring >= 1 && g.cfg >= 1 && g.data >= 1,
                   Status::kInvalidArgument, "USP degrees (ulysses ", g.ulysses, ", ring ", g.ring,
                   ", cfg ", g.cfg, ", data ", g.data, ") must all be >= 1");
  const int64_t product = int64_t{g.ulysses} * g.ring * g.cfg * g.data;
  DIFFCOLL_REQUIRE(product == size, Status::kInvalidArgument, "USP degrees ulysses ", g.ulysses,
                   " x ring ", g.ring, " x cfg ", g.cfg, " x data ", g.data, " = ", product,
                   " must equal the communicator's size ", size);
}

UspCoords usp_coords(const UspDegrees& g, int rank) {
  UspCoords c;
  c.ulysses = rank % g.ulysses;
  rank /= g.ulysses;
  c.ring = rank % g.ring;
  rank /= g.ring;
  c.cfg = rank % g.cfg;
  c.data = rank / g.cfg;
  return c;
}

UspMesh make_usp_mesh(Comm& parent, const UspDegrees& g) {
  check_usp_degrees(g, parent.size());
  const UspCoords c = usp_coords(g, parent.rank());
  // Colours number the groups of one kind by the digits their members share;
  // keys order the members by the group's own digit.
  const int sp_index = c.ulysses + g.ulysses * c.ring;
  const int sp_group = c.cfg + g.cfg * c.data;
  UspMesh mesh;
  mesh.ulysses = parent.split(c.ring + g.ring * sp_group, c.ulysses);
  mesh.ring = parent.split(c.ulysses + g.ulysses * sp_group, c.ring);
  mesh.sp = parent.split(sp_group, sp_index);
  mesh.cfg = parent.split(sp_index + g.ulysses * g.ring * c.data, c.cfg);
  mesh.data = parent.split(sp_index + g.ulysses * g.ring * c.cfg, c.data);
  return mesh;
}

}  // namespace diffcoll
