// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll

import (
	"fmt"

	"diffcoll.dev/diffcoll/capi"
)

// GroupNorm normalises this rank's slab of one activation with the statistics
// of the whole (diffcoll_group_norm): per (sample, group) mean and biased
// variance over every rank's slab, then
//
//	out = (input - mean) / sqrt(var + eps) * weight[c] + bias[c]
//
// Collective: every rank passes its slab of an activation of logical layout
// [N, C, spatial...] (float16, bfloat16 or float32, any strides), split along
// any spatial dimension (a slab may be empty), with the same N, C, dtype,
// numGroups (>= 1, dividing C), eps (finite, >= 0) and the same presence
// and dtypes of weight and bias. The result equals GroupNorm of the whole
// within float32 rounding; the statistics are bit-identical on every rank.
//
// output nil (or input itself) normalises in place; otherwise it has input's
// shape, dtype and device, any non-overlapping strides, and does not overlap
// input. weight and bias are nil (1 and 0) or [C] tensors of input's dtype
// or float32. CUDA tensors are enqueued on Stream().
func (c *Comm) GroupNorm(input, output, weight, bias *Tensor, numGroups int, eps float64) error {
	ci, co, cw, cb := input.toC(), output.toC(), weight.toC(), bias.toC()
	defer ci.free()
	defer co.free()
	defer cw.free()
	defer cb.free()
	return call("diffcoll_group_norm", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_group_norm(c.h, ci.c, co.c, cw.c, cb.c, numGroups, eps, c.stream)
	})
}

// FusedNormPath is how FusedNormWorkspace.Apply runs on CUDA tensors
// (diffcoll_fused_norm_path_t). Host tensors always take the host path.
type FusedNormPath int32

// Fused-norm paths (values fixed by the header).
const (
	// FusedNormAuto chooses by message size, NCCL + kernel whenever the
	// one-kernel paths are not available.
	FusedNormAuto FusedNormPath = 0
	// FusedNormOneShot: one kernel reading every peer's x through NCCL
	// symmetric windows (NVLink load/store).
	FusedNormOneShot FusedNormPath = 1
	// FusedNormTwoShot: one kernel, reduce-scatter + all-gather of the rows.
	FusedNormTwoShot FusedNormPath = 2
	// FusedNormNCCL: an NCCL all-reduce, then one residual + RMSNorm kernel.
	FusedNormNCCL FusedNormPath = 3
)

// String is the path's name ("auto", "one_shot", "two_shot", "nccl").
func (p FusedNormPath) String() string {
	switch p {
	case FusedNormAuto:
		return "auto"
	case FusedNormOneShot:
		return "one_shot"
	case FusedNormTwoShot:
		return "two_shot"
	case FusedNormNCCL:
		return "nccl"
	}
	return fmt.Sprintf("FusedNormPath(%d)", int32(p))
}

// FusedNormOptions are the options of one Apply call
// (diffcoll_fused_norm_options_t). The zero value is the default.
type FusedNormOptions struct {
	Path FusedNormPath // ignored for host tensors
}

// FusedNormWorkspace holds everything the fused all-reduce + residual add +
// RMSNorm of a tensor-parallel group needs, set up once
// (diffcoll_fused_norm_workspace_create), so that Apply allocates and
// exchanges nothing (and can be captured into a CUDA graph).
//
// Close it before closing its Comm. It has no finalizer: on a communicator
// with a device side destroying is collective, which a finalizer cannot do,
// so a workspace that is never closed leaks. Like its Comm, it is used by one
// goroutine at a time.
type FusedNormWorkspace struct {
	h    capi.SwigcptrStruct_SS_diffcoll_fused_norm_workspace
	comm *Comm
}

// NewFusedNormWorkspace creates a workspace on c for calls of at most
// maxTokens rows of at most maxHidden elements, of dtype (Float16Type,
// BFloat16Type or Float32Type) or narrower. Collective over c: every rank
// passes the same limits (ErrMismatch otherwise). With a device side it
// allocates and registers NCCL symmetric windows, so create it before any
// CUDA-graph capture. c must outlive the workspace.
func (c *Comm) NewFusedNormWorkspace(maxTokens, maxHidden int, dtype DType) (*FusedNormWorkspace, error) {
	var h uintptr
	if err := call("diffcoll_fused_norm_workspace_create", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_fused_norm_workspace_create(c.h, int64(maxTokens), int64(maxHidden), int(dtype), &h)
	}); err != nil {
		return nil, err
	}
	return &FusedNormWorkspace{h: capi.SwigcptrStruct_SS_diffcoll_fused_norm_workspace(h), comm: c}, nil
}

// Close destroys the workspace: collective on a communicator with a device
// side, local on a host-only one. Closing twice is a no-op; Apply then fails
// with ErrInvalidHandle.
func (w *FusedNormWorkspace) Close() error {
	if w == nil || w.h == 0 {
		return nil
	}
	h := w.h
	w.h = 0
	return call("diffcoll_fused_norm_workspace_destroy", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_fused_norm_workspace_destroy(h)
	})
}

// Comm is the communicator the workspace reduces over.
func (w *FusedNormWorkspace) Comm() *Comm { return w.comm }

// Apply computes (diffcoll_fused_norm)
//
//	residualOut = allreduce_sum(x) + residual
//	y = residualOut / sqrt(mean(residualOut^2 over the row) + eps) * weight
//
// Collective over the workspace's communicator. x, residual, y and
// residualOut are contiguous tensors of one shape [..., hidden], one dtype
// (float16, bfloat16 or float32) and one device; weight is a contiguous
// [hidden] tensor of that dtype. Arithmetic is in float32 with the roundings
// of a separate all-reduce, add and RMSNorm. residual nil adds nothing,
// weight nil scales by 1, residualOut nil does not store it; y may be x and
// residualOut may be residual (in place). opts may be nil for the defaults.
// CUDA tensors are enqueued on the communicator's Stream().
func (w *FusedNormWorkspace) Apply(x, residual, weight *Tensor, eps float32, y, residualOut *Tensor, opts *FusedNormOptions) error {
	cx, cr, cw, cy, co := x.toC(), residual.toC(), weight.toC(), y.toC(), residualOut.toC()
	defer cx.free()
	defer cr.free()
	defer cw.free()
	defer cy.free()
	defer co.free()
	o := capi.NewDiffcoll_fused_norm_options_t() // DIFFCOLL_FUSED_NORM_OPTIONS_INIT
	defer capi.DeleteDiffcoll_fused_norm_options_t(o)
	if opts != nil {
		o.SetPath(int(opts.Path))
	}
	return call("diffcoll_fused_norm", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_fused_norm(w.h, cx.c, cr.c, cw.c, eps, cy.c, co.c, o, w.comm.stream)
	})
}
