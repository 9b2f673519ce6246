// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// USP process meshes: the groups a rank of a sequence-parallel diffusion run
// needs (Ulysses, ring, their product, CFG, data), in xDiT's rank order so
// that diffcoll groups line up with xDiT / yunchang ones.
//
// The order is xDiT's RankGenerator "tp-sp-pp-cfg-dp" with tp = pp = 1, and
// inside each sequence-parallel group yunchang's set_seq_parallel_pg with
// use_ulysses_low=True: a rank's coordinates are mixed-radix digits of its
// rank in the parent, fastest first,
//   rank = u + U * (r + R * (c + C * d)),
// u the Ulysses index, r the ring index, c the CFG index, d the data index.
// Each group holds the ranks that share every other digit, ordered by its own
// digit (which is the rank's local rank in it); the SP group holds the ranks
// that share (c, d), ordered by u + U * r.
#pragma once

#include <memory>

#include "comm.h"

namespace diffcoll {

struct UspDegrees {
  int ulysses = 1;
  int ring = 1;
  int cfg = 1;
  int data = 1;
};

struct UspCoords {
  int ulysses, ring, cfg, data;
};

// Throws kInvalidArgument unless every degree is >= 1 and their product is
// `size`.
void check_usp_degrees(const UspDegrees& degrees, int size);
// The coordinates of parent rank `rank` (see the file comment).
UspCoords usp_coords(const UspDegrees& degrees, int rank);

struct UspMesh {
  std::unique_ptr<Comm> ulysses, ring, sp, cfg, data;
};

// Every group of the mesh for this rank of `parent`. Collective over
// `parent` (five splits).
UspMesh make_usp_mesh(Comm& parent, const UspDegrees& degrees);

}  // namespace diffcoll
