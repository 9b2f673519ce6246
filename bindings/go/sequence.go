// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll

import (
	"fmt"
	"runtime"

	"diffcoll.dev/diffcoll/capi"
)

// UlyssesDirection is the direction of a Ulysses all-to-all
// (diffcoll_ulysses_direction_t).
type UlyssesDirection int32

// Directions (values fixed by the header).
const (
	// SeqToHead: sequence-sharded to head-sharded (before attention).
	SeqToHead UlyssesDirection = 0
	// HeadToSeq: head-sharded to sequence-sharded (after attention).
	HeadToSeq UlyssesDirection = 1
)

// String is the direction's name ("seq_to_head", "head_to_seq").
func (d UlyssesDirection) String() string {
	switch d {
	case SeqToHead:
		return "seq_to_head"
	case HeadToSeq:
		return "head_to_seq"
	}
	return fmt.Sprintf("UlyssesDirection(%d)", int32(d))
}

// nonNil returns an argError naming the first nil tensor of ts.
func nonNil(op, name string, ts []*Tensor) error {
	for i, t := range ts {
		if t == nil {
			return argError(op, "%s[%d] is nil", name, i)
		}
	}
	return nil
}

// UlyssesAllToAll exchanges several tensors (e.g. q, k and v) in one Ulysses
// all-to-all (diffcoll_ulysses_all_to_all). Collective over c, the Ulysses
// group of P ranks: every rank passes the same number of tensors, axes,
// direction, dtype and global shapes. With S and H a tensor's global sequence
// length and head count, rank r holds SplitExtent(S, P, r) tokens /
// SplitExtent(H, P, r) heads (no padding):
//
//   - SeqToHead (before attention): inputs[t] has S_r along seqAxis and H
//     along headAxis; outputs[t] has S and H_r.
//   - HeadToSeq (after attention): the inverse; the round trip returns the
//     input bit for bit.
//
// Tensors have any strides; outputs overlap neither the inputs nor each
// other. Axes may be negative. CUDA tensors are enqueued on Stream().
func (c *Comm) UlyssesAllToAll(inputs, outputs []*Tensor, seqAxis, headAxis int, dir UlyssesDirection) error {
	const op = "diffcoll_ulysses_all_to_all"
	if len(inputs) != len(outputs) {
		return argError(op, "%d inputs but %d outputs", len(inputs), len(outputs))
	}
	if err := nonNil(op, "inputs", inputs); err != nil {
		return err
	}
	if err := nonNil(op, "outputs", outputs); err != nil {
		return err
	}
	ins, outs := newTensorArray(inputs), newTensorArray(outputs)
	defer ins.free()
	defer outs.free()
	return call(op, func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ulysses_all_to_all(c.h, ins.arr, outs.arr, len(inputs), seqAxis, headAxis, int(dir), c.stream)
	})
}

// WireFormat is how an all-to-all or all-gather moves values between ranks
// (diffcoll_wire_format_t).
type WireFormat int32

// Wire formats (values fixed by the header).
const (
	// WireNative: the tensors' own dtype, bit for bit (the default).
	WireNative WireFormat = 0
	// WireFP8E4M3: FP8 e4m3 with one float scale per token block and head;
	// |x' - x| <= 2^-4 |x| + 2^-10 scale + the rounding to the dtype.
	WireFP8E4M3 WireFormat = 1
	// WireFP8E5M2: FP8 e5m2 (more range, less precision);
	// |x' - x| <= 2^-3 |x| + 2^-17 scale + the rounding to the dtype.
	WireFP8E5M2 WireFormat = 2
)

// String is the format's name ("native", "fp8_e4m3", "fp8_e5m2").
func (w WireFormat) String() string {
	switch w {
	case WireNative:
		return "native"
	case WireFP8E4M3:
		return "fp8_e4m3"
	case WireFP8E5M2:
		return "fp8_e5m2"
	}
	return fmt.Sprintf("WireFormat(%d)", int32(w))
}

// UlyssesOptions are the options of UlyssesAllToAllWithOptions
// (diffcoll_ulysses_options_t). The zero value is the default.
type UlyssesOptions struct {
	// QueryHeads, if > 0, is the query head count Q of grouped-query
	// attention: a tensor with K != Q heads (K divides Q) is k/v, and rank r
	// receives exactly the k/v heads UlyssesKVHeads(Q, K, P, r) its query
	// heads attend to, each sent once to each rank that needs it.
	QueryHeads int
	// Wire selects FP8 transport (WireNative by default).
	Wire WireFormat
	// ScaleBlock is the number of tokens per FP8 scale; 0 means 32.
	ScaleBlock int
}

// UlyssesAllToAllWithOptions is UlyssesAllToAll with grouped-query k/v heads
// and FP8 transport (diffcoll_ulysses_all_to_all_ex). A k/v tensor of a GQA
// call holds UlyssesKVHeads(Q, K, P, r)'s length of heads on the head-sharded
// side; on rank r, local query head i attends local k/v head
// (qs+i)/(Q/K) - start, qs being its first query head and start its first
// k/v head. opts nil is UlyssesAllToAll, bit for bit.
func (c *Comm) UlyssesAllToAllWithOptions(inputs, outputs []*Tensor, seqAxis, headAxis int, dir UlyssesDirection, opts *UlyssesOptions) error {
	const op = "diffcoll_ulysses_all_to_all_ex"
	if len(inputs) != len(outputs) {
		return argError(op, "%d inputs but %d outputs", len(inputs), len(outputs))
	}
	if err := nonNil(op, "inputs", inputs); err != nil {
		return err
	}
	if err := nonNil(op, "outputs", outputs); err != nil {
		return err
	}
	o := capi.NewDiffcoll_ulysses_options_t() // DIFFCOLL_ULYSSES_OPTIONS_INIT
	defer capi.DeleteDiffcoll_ulysses_options_t(o)
	if opts != nil {
		o.SetQuery_heads(int64(opts.QueryHeads))
		o.SetWire_format(int(opts.Wire))
		if opts.ScaleBlock != 0 {
			o.SetScale_block(opts.ScaleBlock)
		}
	}
	ins, outs := newTensorArray(inputs), newTensorArray(outputs)
	defer ins.free()
	defer outs.free()
	return call(op, func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ulysses_all_to_all_ex(c.h, ins.arr, outs.arr, len(inputs), seqAxis, headAxis, int(dir), o, c.stream)
	})
}

// UlyssesKVHeads returns the k/v heads [start, start+length) that rank index
// of parts holds after a grouped-query Ulysses all-to-all with queryHeads
// query and kvHeads k/v heads (diffcoll_ulysses_kv_heads): those its query
// heads SplitExtent(queryHeads, parts, index) attend to.
func UlyssesKVHeads(queryHeads, kvHeads, parts, index int) (start, length int, err error) {
	var s, l int64
	err = call("diffcoll_ulysses_kv_heads", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ulysses_kv_heads(int64(queryHeads), int64(kvHeads), parts, index, &s, &l)
	})
	return int(s), int(l), err
}

// AllGatherOptions are the options of AllGatherWithOptions
// (diffcoll_all_gather_options_t). The zero value is the default.
type AllGatherOptions struct {
	// Wire selects FP8 transport (WireNative by default).
	Wire WireFormat
	// ScaleBlock is the number of rows along the gather axis per FP8 scale;
	// 0 means 32.
	ScaleBlock int
}

// AllGatherWithOptions is AllGather with FP8 transport
// (diffcoll_all_gather_ex): each rank's block travels as FP8 and every rank,
// the sender too, gets the dequantised values, so all outputs agree. opts nil
// is AllGather, bit for bit.
func (c *Comm) AllGatherWithOptions(in, out *Tensor, axis int, opts *AllGatherOptions) error {
	o := capi.NewDiffcoll_all_gather_options_t() // DIFFCOLL_ALL_GATHER_OPTIONS_INIT
	defer capi.DeleteDiffcoll_all_gather_options_t(o)
	if opts != nil {
		o.SetWire_format(int(opts.Wire))
		if opts.ScaleBlock != 0 {
			o.SetScale_block(opts.ScaleBlock)
		}
	}
	ci, co := in.toC(), out.toC()
	defer ci.free()
	defer co.free()
	return call("diffcoll_all_gather_ex", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_all_gather_ex(c.h, ci.c, co.c, axis, o, c.stream)
	})
}

// Ring is a ring exchange (diffcoll_ring_create), the double buffer of ring
// attention: half 0 (buffer0, current at first) and half 1 (buffer1) each
// hold the same number of contiguous tensors (e.g. k and v), buffer0[t] and
// buffer1[t] of one shape and dtype. At each step a rank sends its current
// half to local rank Rank()+1 and receives Rank()-1's block into the other
// half, so at step s rank n holds the block of rank (n - s) mod P:
//
//	copy own k, v into buffer0
//	ring, _ := group.NewRing([]*Tensor{k0, v0}, []*Tensor{k1, v1})
//	defer ring.Close()
//	ring.Steps(func(step int, half []*Tensor) error {
//		return attention(q, half[0], half[1]) // overlaps the next transfer
//	})
//
// or by hand with Start, CurrentHalf and Wait. The ring borrows the buffers:
// the library reads and writes them (in the background on the host) until
// Close, and the Ring keeps them, and the Go memory they view, alive until
// then. The Comm must outlive the ring; like it, a ring is used by one
// goroutine at a time.
type Ring struct {
	h       capi.SwigcptrStruct_SS_diffcoll_ring
	comm    *Comm
	halves  [2][]*Tensor
	current int
}

// NewRing creates a ring exchange over c (local: no communication).
// Halves that differ in shape or dtype, non-contiguous or overlapping buffers
// give ErrInvalidArgument.
func (c *Comm) NewRing(buffer0, buffer1 []*Tensor) (*Ring, error) {
	const op = "diffcoll_ring_create"
	if len(buffer0) != len(buffer1) {
		return nil, argError(op, "buffer0 has %d tensors but buffer1 %d", len(buffer0), len(buffer1))
	}
	if err := nonNil(op, "buffer0", buffer0); err != nil {
		return nil, err
	}
	if err := nonNil(op, "buffer1", buffer1); err != nil {
		return nil, err
	}
	b0, b1 := newTensorArray(buffer0), newTensorArray(buffer1)
	defer b0.free()
	defer b1.free()
	var h uintptr
	if err := call(op, func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ring_create(c.h, b0.arr, b1.arr, len(buffer0), &h)
	}); err != nil {
		return nil, err
	}
	r := &Ring{h: capi.SwigcptrStruct_SS_diffcoll_ring(h), comm: c,
		halves: [2][]*Tensor{append([]*Tensor(nil), buffer0...), append([]*Tensor(nil), buffer1...)}}
	runtime.SetFinalizer(r, func(r *Ring) { _ = r.Close() })
	return r, nil
}

// Close destroys the ring (a step in flight is completed first on the host)
// and lets go of the buffers. Closing twice is a no-op; Start and Wait then
// fail with ErrInvalidHandle.
func (r *Ring) Close() error {
	if r == nil || r.h == 0 {
		return nil
	}
	h := r.h
	r.h = 0
	runtime.SetFinalizer(r, nil)
	err := call("diffcoll_ring_destroy", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ring_destroy(h)
	})
	r.halves = [2][]*Tensor{}
	return err
}

// Comm is the ring group.
func (r *Ring) Comm() *Comm { return r.comm }

// Halves returns (buffer0, buffer1) as given (empty once closed).
func (r *Ring) Halves() [2][]*Tensor { return r.halves }

// Current is the index (0 or 1) of the half holding the current block.
func (r *Ring) Current() int { return r.current }

// CurrentHalf returns the tensors of the current half.
func (r *Ring) CurrentHalf() []*Tensor { return r.halves[r.current] }

// Start posts one step (diffcoll_ring_start): the current half goes to local
// rank Rank()+1, the other half receives from Rank()-1. Collective; returns
// without waiting. Until Wait, the current half may be read but not written
// and the other half not touched. CUDA buffers: the transfer starts after the
// work already on the Comm's Stream() and overlaps the work queued there
// afterwards. Host buffers: it proceeds in the background. A step already in
// flight gives ErrInvalidArgument.
func (r *Ring) Start() error {
	err := call("diffcoll_ring_start", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ring_start(r.h, r.comm.stream)
	})
	runtime.KeepAlive(r)
	return err
}

// Wait completes the step in flight (diffcoll_ring_wait) and makes the
// received half current; it returns its index (also Current()). Host buffers:
// returns when the transfer is done; CUDA: work queued on the Comm's Stream()
// afterwards runs after the transfer. No step in flight gives
// ErrInvalidArgument.
func (r *Ring) Wait() (int, error) {
	var cur int32
	err := call("diffcoll_ring_wait", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ring_wait(r.h, r.comm.stream, &cur)
	})
	runtime.KeepAlive(r)
	if err != nil {
		return r.current, err
	}
	r.current = int(cur)
	return r.current, nil
}

// Steps runs the P steps of the ring: fn gets the step and the current half,
// with the transfer of the next block in flight meanwhile (Start before and
// Wait after each of the first P - 1). If fn fails, the step in flight is
// still completed and fn's error returned; the peers then wait for steps this
// rank does not take, until the communicator's timeout.
func (r *Ring) Steps(fn func(step int, half []*Tensor) error) error {
	p := r.comm.Size()
	for step := 0; step < p; step++ {
		last := step == p-1
		if !last {
			if err := r.Start(); err != nil {
				return err
			}
		}
		ferr := fn(step, r.CurrentHalf())
		if !last {
			if _, err := r.Wait(); err != nil && ferr == nil {
				return err
			}
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// UspDegrees are the degrees of a USP mesh (diffcoll_usp_degrees_t); their
// product is the parent's size. A zero field takes its default: 1 for
// Ulysses, Ring and Cfg; for Data, the rest (the parent's size divided by
// Ulysses * Ring * Cfg).
type UspDegrees struct {
	Ulysses, Ring, Cfg, Data int
}

// UspMesh is this rank's groups of a USP (Unified Sequence Parallelism) mesh
// (diffcoll_usp_mesh_create), each an ordinary Comm. Ranks are ordered as
// xDiT / yunchang order them: parent rank n has the coordinates u = n % U,
// r = (n / U) % R, c = (n / (U*R)) % C, d = n / (U*R*C), and each group holds
// the ranks that share the other coordinates, its local rank being the
// rank's own coordinate.
//
// The mesh owns its five communicators: Close closes them all (local). Each
// may also be closed on its own (closing twice is a no-op); a group used
// after its mesh is closed fails with ErrInvalidHandle. The parent is not
// owned and may be closed before or after the mesh.
type UspMesh struct {
	Ulysses *Comm // U consecutive ranks, local rank u
	Ring    *Comm // R ranks U apart, local rank r
	SP      *Comm // the U*R consecutive ranks of one (c, d), local rank u + U*r
	Cfg     *Comm // C ranks U*R apart, local rank c
	Data    *Comm // D ranks U*R*C apart, local rank d
	// Degrees are the degrees the mesh was built with (defaults filled in).
	Degrees UspDegrees
}

// NewUspMesh builds this rank's groups of a USP mesh over c. Collective over
// c: every rank passes the same degrees. A degree < 1 or degrees whose
// product is not c.Size() give ErrInvalidArgument before any communication.
func (c *Comm) NewUspMesh(degrees UspDegrees) (*UspMesh, error) {
	d := degrees
	for _, f := range []*int{&d.Ulysses, &d.Ring, &d.Cfg} {
		if *f == 0 {
			*f = 1
		}
	}
	if p := d.Ulysses * d.Ring * d.Cfg; d.Data == 0 && p > 0 {
		d.Data = c.size / p
	}
	cd := capi.NewDiffcoll_usp_degrees_t() // DIFFCOLL_USP_DEGREES_INIT
	defer capi.DeleteDiffcoll_usp_degrees_t(cd)
	cd.SetUlysses(d.Ulysses)
	cd.SetRing(d.Ring)
	cd.SetCfg(d.Cfg)
	cd.SetData(d.Data)
	cm := capi.NewDiffcoll_usp_mesh_t() // DIFFCOLL_USP_MESH_INIT
	defer capi.DeleteDiffcoll_usp_mesh_t(cm)
	if err := call("diffcoll_usp_mesh_create", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_usp_mesh_create(c.h, cd, cm)
	}); err != nil {
		return nil, err
	}
	// Each Comm takes over one handle (destroyed with diffcoll_comm_destroy,
	// which the header allows instead of diffcoll_usp_mesh_destroy).
	handles := []capi.Struct_SS_diffcoll_comm{cm.GetUlysses(), cm.GetRing(), cm.GetSp(), cm.GetCfg(), cm.GetData()}
	comms := make([]*Comm, len(handles))
	for i, h := range handles {
		comm, err := wrapComm(capi.SwigcptrStruct_SS_diffcoll_comm(h.Swigcptr()))
		if err != nil { // wrapComm destroyed handle i; release the others
			for _, done := range comms[:i] {
				_ = done.Close()
			}
			for _, rest := range handles[i+1:] {
				capi.Diffcoll_comm_destroy(rest)
			}
			return nil, err
		}
		comms[i] = comm
	}
	return &UspMesh{Ulysses: comms[0], Ring: comms[1], SP: comms[2], Cfg: comms[3], Data: comms[4], Degrees: d}, nil
}

// Close closes every group (local). Closing twice is a no-op. It returns the
// first error.
func (m *UspMesh) Close() error {
	if m == nil {
		return nil
	}
	var first error
	for _, comm := range []*Comm{m.Ulysses, m.Ring, m.SP, m.Cfg, m.Data} {
		if err := comm.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
