// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Package diffcoll is the Go binding of diffcoll, the communication layer of
// multi-GPU diffusion inference.
//
// It is a small idiomatic layer over the SWIG-generated package
// diffcoll.dev/diffcoll/capi (every C function, one to one): communicators
// with Close, errors as *Error values carrying the status and the library's
// message (errors.Is(err, diffcoll.ErrTimeout) works), and Tensor views of Go
// slices with any shape and strides, used in place with no copy.
//
// Building needs the C header and library: set CGO_CFLAGS=-I<dir with
// diffcoll/diffcoll.h> and CGO_LDFLAGS=-L<dir with libdiffcoll.so> unless they
// are installed system-wide, and LD_LIBRARY_PATH to run.
//
// Like the C API, a Comm is used by one goroutine at a time; distinct Comms
// are independent. Ranks that are goroutines of one process meet through a
// "local://NAME" rendezvous.
package diffcoll

import (
	"runtime"
	"time"

	"diffcoll.dev/diffcoll/capi"
)

// Version returns the version of the loaded library as (major, minor, patch).
func Version() (major, minor, patch int) {
	v := int(capi.Diffcoll_version())
	return v / 10000, v / 100 % 100, v % 100
}

// ReduceOp is a reduction: Sum, Prod, Min, Max, Avg or PremulSum(scalar).
type ReduceOp struct {
	op     int
	scalar float64
}

// The reductions.
var (
	Sum  = ReduceOp{op: 0}
	Prod = ReduceOp{op: 1}
	Min  = ReduceOp{op: 2}
	Max  = ReduceOp{op: 3}
	// Avg is the sum divided by the group size (integer division for integer dtypes).
	Avg = ReduceOp{op: 4}
)

// PremulSum multiplies this rank's input by scalar, then sums over ranks.
func PremulSum(scalar float64) ReduceOp { return ReduceOp{op: 5, scalar: scalar} }

// SplitNoColor is the colour that makes Split return no communicator.
const SplitNoColor = -1 // DIFFCOLL_SPLIT_NOCOLOR

// Check says whether collectives verify that all ranks agree.
type Check int

// Check modes.
const (
	CheckFromEnv Check = -1 // read the DIFFCOLL_CHECK environment variable
	CheckOff     Check = 0
	CheckOn      Check = 1
)

// Options configure a world communicator (diffcoll_config_t). The zero value
// is not valid: start from DefaultOptions().
type Options struct {
	// Timeout bounds every blocking call (rendezvous, collectives, waits).
	Timeout time.Duration
	// DeviceID is the CUDA device of the device side, -1 for host only
	// (-2 with NewCommFromEnv: LOCAL_RANK).
	DeviceID int
	// Check: verify on every collective that all ranks agree.
	Check Check
	// Host is the address this rank listens on; "" for the default
	// (DIFFCOLL_HOST, else 127.0.0.1 for local://, else the host name's).
	Host string
}

// DefaultOptions returns DIFFCOLL_CONFIG_INIT: 30 s, host only, check from
// the environment.
func DefaultOptions() Options {
	return Options{Timeout: 30 * time.Second, DeviceID: -1, Check: CheckFromEnv}
}

func (o *Options) toC() capi.Diffcoll_config_t {
	cfg := capi.NewDiffcoll_config_t() // starts as DIFFCOLL_CONFIG_INIT
	if o != nil {
		cfg.SetTimeout_ms(int(o.Timeout / time.Millisecond))
		cfg.SetDevice_id(o.DeviceID)
		cfg.SetCheck(int(o.Check))
		if o.Host != "" {
			cfg.SetHost(o.Host)
		}
	}
	return cfg
}

// Comm is a communicator. Create the world with NewComm or NewCommFromEnv,
// groups with Split and Group, and release it with Close.
type Comm struct {
	h          capi.SwigcptrStruct_SS_diffcoll_comm
	rank, size int
	// Inside P2PGroup: the tensors recorded so far, kept alive until
	// diffcoll_group_end has used them.
	inGroup bool
	pending []*Tensor
	// The CUDA stream operations on CUDA tensors are enqueued on (SetStream).
	stream uintptr
}

func wrapComm(h capi.SwigcptrStruct_SS_diffcoll_comm) (*Comm, error) {
	if h == 0 {
		return nil, nil
	}
	c := &Comm{h: h}
	var v int32
	if err := call("diffcoll_comm_rank", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_rank(h, &v)
	}); err != nil {
		capi.Diffcoll_comm_destroy(h)
		return nil, err
	}
	c.rank = int(v)
	if err := call("diffcoll_comm_size", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_size(h, &v)
	}); err != nil {
		capi.Diffcoll_comm_destroy(h)
		return nil, err
	}
	c.size = int(v)
	// A Comm that is dropped without Close is destroyed by the collector
	// (destroying is not collective, so this is safe at any time).
	runtime.SetFinalizer(c, func(c *Comm) { _ = c.Close() })
	return c, nil
}

// NewComm creates the world communicator of size ranks; every rank calls it
// with its own rank and the same rendezvous: "local://NAME" (goroutines of
// one process), "file:///DIR" (processes sharing a directory) or
// "redis://HOST:PORT[/PREFIX]". opts may be nil for DefaultOptions().
func NewComm(rendezvous string, rank, size int, opts *Options) (*Comm, error) {
	cfg := opts.toC()
	defer capi.DeleteDiffcoll_config_t(cfg)
	var h capi.SwigcptrStruct_SS_diffcoll_comm
	if err := call("diffcoll_comm_create", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_create(rendezvous, rank, size, cfg, &h)
	}); err != nil {
		return nil, err
	}
	return wrapComm(h)
}

// NewCommFromEnv creates the world from torchrun-style variables RANK,
// WORLD_SIZE and DIFFCOLL_STORE. opts may be nil.
func NewCommFromEnv(opts *Options) (*Comm, error) {
	cfg := opts.toC()
	defer capi.DeleteDiffcoll_config_t(cfg)
	var h capi.SwigcptrStruct_SS_diffcoll_comm
	if err := call("diffcoll_comm_create_from_env", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_create_from_env(cfg, &h)
	}); err != nil {
		return nil, err
	}
	return wrapComm(h)
}

// WrapNCCL creates a world communicator around an existing NCCL
// communicator (an ncclComm_t given by address): rank, size and CUDA device
// come from it, and the host sides meet at rendezvous. diffcoll never
// destroys the NCCL communicator; it must outlive the result. Fails with
// ErrUnsupported in a build without CUDA.
func WrapNCCL(ncclComm uintptr, rendezvous string, opts *Options) (*Comm, error) {
	cfg := opts.toC()
	defer capi.DeleteDiffcoll_config_t(cfg)
	var h capi.SwigcptrStruct_SS_diffcoll_comm
	if err := call("diffcoll_comm_wrap_nccl", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_wrap_nccl(ncclComm, rendezvous, cfg, &h)
	}); err != nil {
		return nil, err
	}
	return wrapComm(h)
}

// Split splits c into groups by colour, ordered by key (ties by rank).
// Collective over every rank of c. Returns nil, nil for SplitNoColor.
func (c *Comm) Split(color, key int) (*Comm, error) {
	var h capi.SwigcptrStruct_SS_diffcoll_comm
	if err := call("diffcoll_comm_split", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_split(c.h, color, key, &h)
	}); err != nil {
		return nil, err
	}
	return wrapComm(h)
}

// Group creates a communicator of the listed global ranks (local rank i is
// ranks[i]). Collective over the listed ranks only; other ranks get nil, nil.
func (c *Comm) Group(ranks []int) (*Comm, error) {
	r32 := make([]int32, len(ranks))
	for i, r := range ranks {
		r32[i] = int32(r)
	}
	var h capi.SwigcptrStruct_SS_diffcoll_comm
	if err := call("diffcoll_comm_create_group", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_create_group(c.h, r32, &h)
	}); err != nil {
		return nil, err
	}
	return wrapComm(h)
}

// Close destroys the communicator. Not collective; peers still using it see
// ErrRemote. Closing twice is a no-op; other methods then fail with
// ErrInvalidHandle.
func (c *Comm) Close() error {
	if c == nil || c.h == 0 {
		return nil
	}
	h := c.h
	c.h = 0
	runtime.SetFinalizer(c, nil)
	return call("diffcoll_comm_destroy", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_destroy(h)
	})
}

// Rank is this rank's local rank.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks.
func (c *Comm) Size() int { return c.size }

// GlobalRank is the world rank of localRank.
func (c *Comm) GlobalRank(localRank int) (int, error) {
	var g int32
	err := call("diffcoll_comm_global_rank", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_global_rank(c.h, localRank, &g)
	})
	return int(g), err
}

// Reserve grows the staging arena to at least bytes now.
func (c *Comm) Reserve(bytes int) error {
	return call("diffcoll_comm_reserve", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_reserve(c.h, int64(bytes))
	})
}

// Stats are the traffic counters of a communicator.
type Stats struct {
	BytesPacked   uint64 // gathered from strided tensors into staging buffers
	BytesUnpacked uint64 // scattered from staging buffers back into strided tensors
	Ops           uint64 // operations completed
}

// Stats reads the traffic counters.
func (c *Comm) Stats() (Stats, error) {
	s := capi.NewDiffcoll_stats_t() // struct_size set (DIFFCOLL_STATS_INIT)
	defer capi.DeleteDiffcoll_stats_t(s)
	if err := call("diffcoll_comm_get_stats", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_get_stats(c.h, s)
	}); err != nil {
		return Stats{}, err
	}
	return Stats{s.GetBytes_packed(), s.GetBytes_unpacked(), s.GetOps()}, nil
}

// ResetStats sets the traffic counters back to zero.
func (c *Comm) ResetStats() error {
	return call("diffcoll_comm_reset_stats", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_comm_reset_stats(c.h)
	})
}

// SetStream sets the CUDA stream (a cudaStream_t as a uintptr) on which c's
// operations on CUDA tensors, and those of its halo plans, are enqueued; 0
// (the default) is the legacy default stream. On CUDA tensors a call returns
// once its work is enqueued: results are ready when the stream reaches it.
// Host tensors ignore the stream.
func (c *Comm) SetStream(stream uintptr) { c.stream = stream }

// Stream is the CUDA stream set by SetStream.
func (c *Comm) Stream() uintptr { return c.stream }

// The collectives below operate on host tensors in place and return when
// complete; on CUDA tensors (TensorFromPointer) they are enqueued on Stream().

// AllReduce reduces t across ranks in place.
func (c *Comm) AllReduce(t *Tensor, op ReduceOp) error {
	ct := t.toC()
	defer ct.free()
	return call("diffcoll_all_reduce", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_all_reduce(c.h, ct.c, op.op, op.scalar, c.stream)
	})
}

// Broadcast copies t from root to every rank, in place.
func (c *Comm) Broadcast(t *Tensor, root int) error {
	ct := t.toC()
	defer ct.free()
	return call("diffcoll_broadcast", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_broadcast(c.h, ct.c, root, c.stream)
	})
}

// Reduce reduces t across ranks into root's t (the others are unchanged).
func (c *Comm) Reduce(t *Tensor, op ReduceOp, root int) error {
	ct := t.toC()
	defer ct.free()
	return call("diffcoll_reduce", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_reduce(c.h, ct.c, op.op, op.scalar, root, c.stream)
	})
}

// AllGather concatenates every rank's in along axis into out.
func (c *Comm) AllGather(in, out *Tensor, axis int) error {
	ci, co := in.toC(), out.toC()
	defer ci.free()
	defer co.free()
	return call("diffcoll_all_gather", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_all_gather(c.h, ci.c, co.c, axis, c.stream)
	})
}

// ReduceScatter reduces in across ranks and leaves block r (of Size() blocks
// along axis) in rank r's out.
func (c *Comm) ReduceScatter(in, out *Tensor, axis int, op ReduceOp) error {
	ci, co := in.toC(), out.toC()
	defer ci.free()
	defer co.free()
	return call("diffcoll_reduce_scatter", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_reduce_scatter(c.h, ci.c, co.c, axis, op.op, op.scalar, c.stream)
	})
}

// AllToAll sends block j of in (along scatterAxis) to rank j and concatenates
// the blocks received along gatherAxis of out.
func (c *Comm) AllToAll(in, out *Tensor, scatterAxis, gatherAxis int) error {
	ci, co := in.toC(), out.toC()
	defer ci.free()
	defer co.free()
	return call("diffcoll_all_to_all", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_all_to_all(c.h, ci.c, co.c, scatterAxis, gatherAxis, c.stream)
	})
}

// Gather concatenates every rank's in along axis into root's out (out may be
// nil on the other ranks).
func (c *Comm) Gather(in, out *Tensor, axis, root int) error {
	ci, co := in.toC(), out.toC()
	defer ci.free()
	defer co.free()
	return call("diffcoll_gather", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_gather(c.h, ci.c, co.c, axis, root, c.stream)
	})
}

// Scatter splits root's in (may be nil elsewhere) along axis; rank r
// receives block r in out.
func (c *Comm) Scatter(in, out *Tensor, axis, root int) error {
	ci, co := in.toC(), out.toC()
	defer ci.free()
	defer co.free()
	return call("diffcoll_scatter", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_scatter(c.h, ci.c, co.c, axis, root, c.stream)
	})
}

// Send sends t to local rank peer, which calls Recv with the same shape and
// dtype (strides may differ). Blocking, unless inside P2PGroup.
func (c *Comm) Send(t *Tensor, peer int) error {
	c.record(t)
	ct := t.toC()
	defer ct.free()
	return call("diffcoll_send", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_send(c.h, ct.c, peer, c.stream)
	})
}

func (c *Comm) record(t *Tensor) {
	if c.inGroup && t != nil {
		c.pending = append(c.pending, t)
	}
}

// Recv receives into t from local rank peer.
func (c *Comm) Recv(t *Tensor, peer int) error {
	c.record(t)
	ct := t.toC()
	defer ct.free()
	return call("diffcoll_recv", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_recv(c.h, ct.c, peer, c.stream)
	})
}

// P2PGroup runs fn between diffcoll_group_start and diffcoll_group_end: the
// Send and Recv calls fn makes are recorded, then posted together, so
// exchanges in both directions cannot deadlock. The tensors must stay
// untouched until P2PGroup returns (they are kept alive until then). If fn
// fails, the group is still ended and fn's error returned.
func (c *Comm) P2PGroup(fn func() error) error {
	if err := call("diffcoll_group_start", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_group_start(c.h)
	}); err != nil {
		return err
	}
	c.inGroup = true
	defer func() {
		c.inGroup = false
		c.pending = nil
	}()
	ferr := fn()
	err := call("diffcoll_group_end", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_group_end(c.h)
	})
	runtime.KeepAlive(c.pending)
	if ferr != nil {
		return ferr
	}
	return err
}

// Barrier returns once every rank has entered it.
func (c *Comm) Barrier() error {
	return call("diffcoll_barrier", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_barrier(c.h, c.stream)
	})
}
