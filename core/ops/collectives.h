// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Collectives on strided tensors: validate, plan on layout (in place when the
// tensor is dense, one pack and one unpack when it has gaps), run on the side
// the tensors live on.
#pragma once

#include "../comm.h"
#include "../fp8_wire.h"
#include "../reduction.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

void all_reduce(Comm& comm, const TensorView& tensor, Reduction red, void* stream);
void broadcast(Comm& comm, const TensorView& tensor, int root, void* stream);
void reduce(Comm& comm, const TensorView& tensor, Reduction red, int root, void* stream);
// With `fp8` the blocks travel in FP8 form (fp8_wire.h; tokens = `axis`),
// every rank's block, its own included, dequantised into the output.
void all_gather(Comm& comm, const TensorView& input, const TensorView& output, int axis,
                void* stream, const Fp8Wire* fp8 = nullptr);
void reduce_scatter(Comm& comm, const TensorView& input, const TensorView& output, int axis,
                    Reduction red, void* stream);
void all_to_all(Comm& comm, const TensorView& input, const TensorView& output,
                int scatter_axis, int gather_axis, void* stream);
// `output` is read on the root only (nullptr elsewhere is fine).
void gather(Comm& comm, const TensorView& input, const TensorView* output, int axis, int root,
            void* stream);
// `input` is read on the root only (nullptr elsewhere is fine).
void scatter(Comm& comm, const TensorView* input, const TensorView& output, int axis, int root,
             void* stream);
void send(Comm& comm, const TensorView& tensor, int peer, void* stream);
void recv(Comm& comm, const TensorView& tensor, int peer, void* stream);
void group_start(Comm& comm);
void group_end(Comm& comm);
void barrier(Comm& comm, void* stream);

}  // namespace ops
}  // namespace diffcoll
