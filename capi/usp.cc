// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// USP process meshes.
#include "../core/usp_mesh.h"

#include <cstddef>
#include <string>
#include <utility>

#include "extensible.h"
#include "handles.h"

using diffcoll::Comm;
using diffcoll::Status;
using diffcoll::UspDegrees;
using diffcoll::UspMesh;
using namespace diffcoll::capi;

namespace {

// The communicator fields of the mesh struct, in order.
diffcoll_comm_t* diffcoll_usp_mesh_t::*const kGroups[] = {
    &diffcoll_usp_mesh_t::ulysses, &diffcoll_usp_mesh_t::ring, &diffcoll_usp_mesh_t::sp,
    &diffcoll_usp_mesh_t::cfg, &diffcoll_usp_mesh_t::data};

constexpr size_t kMeshMinSize = offsetof(diffcoll_usp_mesh_t, data) + sizeof(diffcoll_comm_t*);

UspDegrees read_degrees(const diffcoll_usp_degrees_t* degrees) {
  DIFFCOLL_REQUIRE(degrees != nullptr, Status::kInvalidArgument, "degrees is NULL");
  DIFFCOLL_REQUIRE(degrees->struct_size >= offsetof(diffcoll_usp_degrees_t, data) + sizeof(int32_t),
                   Status::kVersion, "degrees->struct_size ", degrees->struct_size,
                   " is too small: initialise the degrees with DIFFCOLL_USP_DEGREES_INIT");
  using D = diffcoll_usp_degrees_t;
  D d = DIFFCOLL_USP_DEGREES_INIT;
  d = read_extensible(*degrees, d, &D::ulysses, &D::ring, &D::cfg, &D::data);
  UspDegrees g;
  g.ulysses = d.ulysses;
  g.ring = d.ring;
  g.cfg = d.cfg;
  g.data = d.data;
  return g;
}

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_usp_mesh_create(diffcoll_comm_t* parent,
                                           const diffcoll_usp_degrees_t* degrees,
                                           diffcoll_usp_mesh_t* mesh) {
  return guarded([&] {
    require_out(mesh, "mesh");
    DIFFCOLL_REQUIRE(mesh->struct_size >= kMeshMinSize, Status::kVersion, "mesh->struct_size ",
                     mesh->struct_size,
                     " is too small: initialise the mesh with DIFFCOLL_USP_MESH_INIT");
    for (auto field : kGroups) mesh->*field = nullptr;
    Comm& p = live_comm(parent, "parent");
    UspMesh made = diffcoll::make_usp_mesh(p, read_degrees(degrees));
    mesh->ulysses = publish(std::move(made.ulysses));
    mesh->ring = publish(std::move(made.ring));
    mesh->sp = publish(std::move(made.sp));
    mesh->cfg = publish(std::move(made.cfg));
    mesh->data = publish(std::move(made.data));
  });
}

diffcoll_status_t diffcoll_usp_mesh_destroy(diffcoll_usp_mesh_t* mesh) {
  if (mesh == nullptr) return DIFFCOLL_SUCCESS;
  diffcoll_status_t first = DIFFCOLL_SUCCESS;
  std::string message;
  for (auto field : kGroups) {
    const diffcoll_status_t st = diffcoll_comm_destroy(mesh->*field);
    if (st == DIFFCOLL_SUCCESS) {
      mesh->*field = nullptr;
    } else if (first == DIFFCOLL_SUCCESS) {
      first = st;
      message = diffcoll_last_error();
    }
  }
  if (first != DIFFCOLL_SUCCESS) set_last_error(message);
  return first;
}

}  // extern "C"
