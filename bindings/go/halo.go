// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll

import (
	"fmt"
	"runtime"

	"diffcoll.dev/diffcoll/capi"
)

// HaloBoundary is how the halo beyond an end of the rank grid is filled
// (diffcoll_halo_boundary_t).
type HaloBoundary int32

// Boundary modes (values fixed by the header).
const (
	HaloZeros     HaloBoundary = 0 // zeros (a convolution's zero padding)
	HaloReplicate HaloBoundary = 1 // copies of the edge row (torch's 'replicate')
	HaloReflect   HaloBoundary = 2 // mirrored rows, edge not repeated (torch's 'reflect')
	HaloCircular  HaloBoundary = 3 // wrap around (torch's 'circular'); at both ends of an axis
	HaloUntouched HaloBoundary = 4 // leave the halo memory as it is
)

// String is the mode's name ("zeros", "replicate", ...).
func (b HaloBoundary) String() string {
	switch b {
	case HaloZeros:
		return "zeros"
	case HaloReplicate:
		return "replicate"
	case HaloReflect:
		return "reflect"
	case HaloCircular:
		return "circular"
	case HaloUntouched:
		return "untouched"
	}
	return fmt.Sprintf("HaloBoundary(%d)", int32(b))
}

// HaloConfig is the geometry of a halo exchange (diffcoll_halo_config_t).
// Start from DefaultHaloConfig(): the zero value is not the default.
type HaloConfig struct {
	// GridRows x GridCols ranks, row-major over the communicator (rank = row *
	// GridCols + col); GridRows 0: the size divided by GridCols.
	GridRows, GridCols int
	// RowAxis / ColAxis: tensor dimensions split by the rows / cols
	// (negative counts from the end).
	RowAxis, ColAxis int
	// Halo widths on each side of the interior (>= 0).
	RowBefore, RowAfter, ColBefore, ColAfter int
	// Boundary modes at the ends of the grid.
	RowBoundaryBefore, RowBoundaryAfter, ColBoundaryBefore, ColBoundaryAfter HaloBoundary
	// ExchangeCorners fills the corner blocks of a 2-D halo.
	ExchangeCorners bool
}

// DefaultHaloConfig returns DIFFCOLL_HALO_CONFIG_INIT: a 1-D chain over all
// ranks along dimension -2, one halo row on each side, zero boundaries.
func DefaultHaloConfig() HaloConfig {
	return HaloConfig{GridRows: 0, GridCols: 1, RowAxis: -2, ColAxis: -1, RowBefore: 1, RowAfter: 1,
		ExchangeCorners: true}
}

// HaloPlan is a halo exchange plan over a communicator: the rank grid, split
// axes, halo widths and boundary modes. One plan serves every tensor of the
// same halo geometry. Like its Comm, it is used by one goroutine at a time,
// and the Comm must stay open while the plan is used. Release it with Close.
type HaloPlan struct {
	h    capi.SwigcptrStruct_SS_diffcoll_halo_plan
	comm *Comm
}

// NewHaloPlan creates a halo plan on c (local, no communication); every rank
// of c creates one with the same config. cfg may be nil for
// DefaultHaloConfig(). An invalid config gives ErrInvalidArgument.
func (c *Comm) NewHaloPlan(cfg *HaloConfig) (*HaloPlan, error) {
	conf := DefaultHaloConfig()
	if cfg != nil {
		conf = *cfg
	}
	cc := capi.NewDiffcoll_halo_config_t() // DIFFCOLL_HALO_CONFIG_INIT
	defer capi.DeleteDiffcoll_halo_config_t(cc)
	cc.SetGrid_rows(conf.GridRows)
	cc.SetGrid_cols(conf.GridCols)
	cc.SetRow_axis(conf.RowAxis)
	cc.SetCol_axis(conf.ColAxis)
	cc.SetRow_before(conf.RowBefore)
	cc.SetRow_after(conf.RowAfter)
	cc.SetCol_before(conf.ColBefore)
	cc.SetCol_after(conf.ColAfter)
	cc.SetRow_boundary_before(int(conf.RowBoundaryBefore))
	cc.SetRow_boundary_after(int(conf.RowBoundaryAfter))
	cc.SetCol_boundary_before(int(conf.ColBoundaryBefore))
	cc.SetCol_boundary_after(int(conf.ColBoundaryAfter))
	cc.SetExchange_corners(boolInt(conf.ExchangeCorners))
	var h capi.SwigcptrStruct_SS_diffcoll_halo_plan
	if err := call("diffcoll_halo_plan_create", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_halo_plan_create(c.h, cc, &h)
	}); err != nil {
		return nil, err
	}
	p := &HaloPlan{h: h, comm: c}
	runtime.SetFinalizer(p, func(p *HaloPlan) { _ = p.Close() })
	return p, nil
}

// Close destroys the plan (local). Closing twice is a no-op; Exchange then
// fails with ErrInvalidHandle.
func (p *HaloPlan) Close() error {
	if p == nil || p.h == 0 {
		return nil
	}
	h := p.h
	p.h = 0
	runtime.SetFinalizer(p, nil)
	return call("diffcoll_halo_plan_destroy", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_halo_plan_destroy(h)
	})
}

// Comm is the communicator the plan exchanges over.
func (p *HaloPlan) Comm() *Comm { return p.comm }

// Exchange fills the halo of padded (this rank's slab with its halo) from the
// neighbouring ranks, in place. Collective over the plan's communicator; the
// interior is only read.
func (p *HaloPlan) Exchange(padded *Tensor) error {
	ct := padded.toC()
	defer ct.free()
	err := call("diffcoll_halo_exchange", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_halo_exchange(p.h, ct.c, p.comm.stream)
	})
	runtime.KeepAlive(p)
	return err
}

// ExchangeInto copies in (this rank's unpadded slab) into the interior of
// paddedOut, then exchanges as Exchange.
func (p *HaloPlan) ExchangeInto(in, paddedOut *Tensor) error {
	ci, co := in.toC(), paddedOut.toC()
	defer ci.free()
	defer co.free()
	err := call("diffcoll_halo_exchange_into", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_halo_exchange_into(p.h, ci.c, co.c, p.comm.stream)
	})
	runtime.KeepAlive(p)
	return err
}

// SplitExtent returns the first row and the number of rows of slab index of
// parts nearly equal slabs of extent rows (torch.tensor_split's rule: the
// first extent % parts slabs have one row more).
func SplitExtent(extent, parts, index int) (start, length int, err error) {
	var s, l int64
	err = call("diffcoll_split_extent", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_split_extent(int64(extent), parts, index, &s, &l)
	})
	return int(s), int(l), err
}

// GatherSlabs reassembles the slabs of all ranks along axis: rank r's slab
// holds rows SplitExtent(whole extent, Size(), r) of the whole. root >= 0
// writes only root's whole (nil elsewhere is fine); root -1 every rank's.
// Collective; any strides.
func (c *Comm) GatherSlabs(slab, whole *Tensor, axis, root int) error {
	cs, cw := slab.toC(), whole.toC()
	defer cs.free()
	defer cw.free()
	return call("diffcoll_gather_slabs", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_gather_slabs(c.h, cs.c, cw.c, axis, root, c.stream)
	})
}
