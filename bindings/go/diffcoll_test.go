// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"diffcoll.dev/diffcoll"
	"diffcoll.dev/diffcoll/capi"
)

var rendezvousCounter int64

// runRanks runs fn on size ranks (goroutines, local:// rendezvous) and fails
// the test with every rank's error.
func runRanks(t *testing.T, size int, opts *diffcoll.Options, fn func(c *diffcoll.Comm) error) {
	t.Helper()
	name := fmt.Sprintf("local://go-%s-%d-%d", t.Name(), time.Now().UnixNano(), atomic.AddInt64(&rendezvousCounter, 1))
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := 0; r < size; r++ {
		wg.Add(1)
		go func(rank int) {
			defer wg.Done()
			c, err := diffcoll.NewComm(name, rank, size, opts)
			if err != nil {
				errs[rank] = err
				return
			}
			defer c.Close()
			// Every rank finishes creating the communicator before any can
			// close it (closing right after creating can fail a peer still
			// inside diffcoll_comm_create; core issue, reported).
			if err := c.Barrier(); err != nil {
				errs[rank] = err
				return
			}
			errs[rank] = fn(c)
		}(r)
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

// iota2 is an r x c row-major matrix with element (i, j) = scale*(i*c+j) + shift.
func iota2(r, c int, scale, shift float32) []float32 {
	out := make([]float32, r*c)
	for i := range out {
		out[i] = scale*float32(i) + shift
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestVersionAndConstants(t *testing.T) {
	major, minor, patch := diffcoll.Version()
	if major*10000+minor*100+patch != int(capi.Diffcoll_version()) || capi.DIFFCOLL_VERSION != int(capi.Diffcoll_version()) {
		t.Fatalf("version %d.%d.%d vs header %d", major, minor, patch, capi.DIFFCOLL_VERSION)
	}
	if diffcoll.SplitNoColor != capi.DIFFCOLL_SPLIT_NOCOLOR || diffcoll.MaxDims != capi.DIFFCOLL_MAX_DIMS {
		t.Fatal("constants drifted from the header")
	}
	if int(diffcoll.ErrInternal) != int(capi.DIFFCOLL_ERR_INTERNAL) || int(diffcoll.ErrTimeout) != int(capi.DIFFCOLL_ERR_TIMEOUT) ||
		int(diffcoll.BFloat16Type) != int(capi.DIFFCOLL_BFLOAT16) || int(diffcoll.Int64Type) != int(capi.DIFFCOLL_INT64) ||
		int(diffcoll.CUDA) != int(capi.DIFFCOLL_DEVICE_CUDA) {
		t.Fatal("enums drifted from the header")
	}
	var table capi.SwigcptrDiffcoll_api_t
	if st := capi.Diffcoll_get_api(uint(capi.DIFFCOLL_API_VERSION_1), &table); st != 0 || table == 0 || table.GetVersion() != uint(capi.DIFFCOLL_API_VERSION_1) {
		t.Fatalf("diffcoll_get_api: status %d, table %x", st, table)
	}
	if diffcoll.ErrTimeout.Error() != "timed out" {
		t.Fatalf("status string %q", diffcoll.ErrTimeout.Error())
	}
}

func TestAllReduceViews(t *testing.T) {
	const size = 3
	runRanks(t, size, nil, func(c *diffcoll.Comm) error {
		r := float32(c.Rank())
		// Contiguous sum, with a stream set: host tensors ignore it.
		c.SetStream(0x1234)
		if c.Stream() != 0x1234 {
			return fmt.Errorf("Stream() = %#x after SetStream(0x1234)", c.Stream())
		}
		a := iota2(4, 6, 1, r)
		if err := c.AllReduce(must(diffcoll.NewTensor(a, 4, 6)), diffcoll.Sum); err != nil {
			return err
		}
		c.SetStream(0)
		for i, v := range a {
			if want := 3*float32(i) + 0 + 1 + 2; v != want {
				return fmt.Errorf("sum[%d] = %v, want %v", i, v, want)
			}
		}
		// Transposed (dense): in place, no packing.
		if err := c.ResetStats(); err != nil {
			return err
		}
		b := iota2(4, 6, r+1, 0)
		bt := must(must(diffcoll.NewTensor(b, 4, 6)).Permute(1, 0))
		if err := c.AllReduce(bt, diffcoll.Avg); err != nil {
			return err
		}
		st, err := c.Stats()
		if err != nil {
			return err
		}
		if st.BytesPacked != 0 || st.Ops != 1 {
			return fmt.Errorf("transposed view: stats %+v, want no packing", st)
		}
		for i, v := range b {
			if want := 2 * float32(i); math.Abs(float64(v-want)) > 1e-5*float64(want+1) { // (1+2+3)/3 = 2
				return fmt.Errorf("avg[%d] = %v, want %v", i, v, want)
			}
		}
		// Every other column (gaps): packed, gaps untouched, premul sum.
		d := iota2(4, 6, 1, 0)
		view := must(must(diffcoll.NewTensor(d, 4, 6)).Slice(1, 0, 6, 2))
		if err := c.AllReduce(view, diffcoll.PremulSum(float64(r+1))); err != nil {
			return err
		}
		if st, _ = c.Stats(); st.BytesPacked == 0 {
			return fmt.Errorf("strided view: stats %+v, want packing", st)
		}
		for i, v := range d {
			want := float32(i)
			if i%2 == 0 {
				want *= 1 + 2 + 3
			}
			if v != want {
				return fmt.Errorf("premul[%d] = %v, want %v", i, v, want)
			}
		}
		return nil
	})
}

func TestDTypes(t *testing.T) {
	runRanks(t, 2, nil, func(c *diffcoll.Comm) error {
		i64 := []int64{int64(c.Rank()) + 1, 10}
		u8 := []uint8{uint8(c.Rank()) + 1, 7}
		f64 := []float64{0.5, float64(c.Rank())}
		for _, tt := range []*diffcoll.Tensor{must(diffcoll.NewTensor(i64)), must(diffcoll.NewTensor(u8)), must(diffcoll.NewTensor(f64))} {
			if err := c.AllReduce(tt, diffcoll.Max); err != nil {
				return err
			}
		}
		if i64[0] != 2 || u8[0] != 2 || f64[1] != 1 || i64[1] != 10 {
			return fmt.Errorf("max: %v %v %v", i64, u8, f64)
		}
		return nil
	})
}

func TestAllGatherAllToAllBroadcast(t *testing.T) {
	const size = 2
	runRanks(t, size, nil, func(c *diffcoll.Comm) error {
		r := c.Rank()
		in := iota2(2, 3, 1, float32(10*r))
		out := make([]float32, 2*3*size)
		// Gather along axis 1 into a transposed (6x2 storage) output.
		outT := must(must(diffcoll.NewTensor(out, 3*size, 2)).Permute(1, 0))
		if err := c.AllGather(must(diffcoll.NewTensor(in, 2, 3)), outT, 1); err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			for j := 0; j < 3*size; j++ {
				src, jj := j/3, j%3
				if got, want := out[j*2+i], float32(10*src+i*3+jj); got != want {
					return fmt.Errorf("all_gather (%d,%d) = %v, want %v", i, j, got, want)
				}
			}
		}
		// all_to_all: 4x3 input, rows scattered, gathered along columns -> 2x6.
		a := iota2(4, 3, 1, float32(100*r))
		b := make([]float32, 2*3*size)
		if err := c.AllToAll(must(diffcoll.NewTensor(a, 4, 3)), must(diffcoll.NewTensor(b, 2, 3*size)), 0, 1); err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			for j := 0; j < 3*size; j++ {
				src, jj := j/3, j%3
				if got, want := b[i*3*size+j], float32(100*src+(2*r+i)*3+jj); got != want {
					return fmt.Errorf("all_to_all (%d,%d) = %v, want %v", i, j, got, want)
				}
			}
		}
		// Broadcast of a strided view from rank 1.
		x := iota2(3, 4, float32(r+1), 0)
		if err := c.Broadcast(must(must(diffcoll.NewTensor(x, 3, 4)).Slice(0, 0, 3, 2)), 1); err != nil {
			return err
		}
		for i, v := range x {
			want := float32(i) * float32(r+1)
			if row := i / 4; row != 1 {
				want = float32(i) * 2
			}
			if v != want {
				return fmt.Errorf("broadcast[%d] = %v, want %v", i, v, want)
			}
		}
		return nil
	})
}

func TestReduceScatterGatherScatter(t *testing.T) {
	const size = 2
	runRanks(t, size, nil, func(c *diffcoll.Comm) error {
		r := c.Rank()
		in := iota2(2, 4, 1, float32(r))
		out := make([]float32, 2*2)
		if err := c.ReduceScatter(must(diffcoll.NewTensor(in, 2, 4)), must(diffcoll.NewTensor(out, 2, 2)), 1, diffcoll.Sum); err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			for j := 0; j < 2; j++ {
				if got, want := out[i*2+j], 2*float32(i*4+2*r+j)+1; got != want {
					return fmt.Errorf("reduce_scatter (%d,%d) = %v, want %v", i, j, got, want)
				}
			}
		}
		var gathered *diffcoll.Tensor
		g := make([]int32, 2*size)
		if r == 0 {
			gathered = must(diffcoll.NewTensor(g))
		}
		if err := c.Gather(must(diffcoll.NewTensor([]int32{int32(r), int32(r + 10)})), gathered, 0, 0); err != nil {
			return err
		}
		if r == 0 && fmt.Sprint(g) != "[0 10 1 11]" {
			return fmt.Errorf("gather: %v", g)
		}
		var src *diffcoll.Tensor
		if r == 1 {
			src = must(diffcoll.NewTensor([]int32{5, 6, 7, 8}))
		}
		part := make([]int32, 2)
		if err := c.Scatter(src, must(diffcoll.NewTensor(part)), 0, 1); err != nil {
			return err
		}
		if part[0] != int32(5+2*r) || part[1] != int32(6+2*r) {
			return fmt.Errorf("scatter: %v", part)
		}
		red := []int64{int64(r) + 1}
		if err := c.Reduce(must(diffcoll.NewTensor(red)), diffcoll.Prod, 1); err != nil {
			return err
		}
		if want := []int64{1, 2}[r]; red[0] != want {
			return fmt.Errorf("reduce: %v", red)
		}
		return nil
	})
}

func TestSendRecvAndP2PGroup(t *testing.T) {
	const size = 3
	runRanks(t, size, nil, func(c *diffcoll.Comm) error {
		r := c.Rank()
		next, prev := (r+1)%size, (r+size-1)%size
		send := must(must(diffcoll.NewTensor(iota2(2, 3, 1, float32(10*r)), 2, 3)).Permute(1, 0)) // 3x2 view
		buf := make([]float32, 3*4)
		for i := range buf {
			buf[i] = -1
		}
		recv := must(must(diffcoll.NewTensor(buf, 3, 4)).Slice(1, 0, 4, 2)) // 3x2, every other column
		if err := c.P2PGroup(func() error {
			if err := c.Send(send, next); err != nil {
				return err
			}
			return c.Recv(recv, prev)
		}); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			for j := 0; j < 4; j++ {
				want := float32(-1)
				if j%2 == 0 {
					want = float32(10*prev + (j/2)*3 + i) // element (i, j/2) of the transposed 2x3
				}
				if got := buf[i*4+j]; got != want {
					return fmt.Errorf("p2p (%d,%d) = %v, want %v", i, j, got, want)
				}
			}
		}
		// Blocking send/recv between ranks 0 and 1.
		v := []float64{float64(r)}
		switch r {
		case 0:
			return c.Send(must(diffcoll.NewTensor(v)), 1)
		case 1:
			if err := c.Recv(must(diffcoll.NewTensor(v)), 0); err != nil {
				return err
			}
			if v[0] != 0 {
				return fmt.Errorf("recv %v", v)
			}
		}
		return nil
	})
}

func TestSplitGroupQueries(t *testing.T) {
	const size = 4
	runRanks(t, size, nil, func(c *diffcoll.Comm) error {
		if err := c.Barrier(); err != nil {
			return err
		}
		if err := c.Reserve(1 << 16); err != nil {
			return err
		}
		sub, err := c.Split(c.Rank()%2, -c.Rank())
		if err != nil {
			return err
		}
		defer sub.Close()
		x := []int32{int32(c.Rank())}
		if err := sub.AllReduce(must(diffcoll.NewTensor(x)), diffcoll.Sum); err != nil {
			return err
		}
		g0, err := sub.GlobalRank(0)
		if err != nil {
			return err
		}
		if sub.Size() != 2 || x[0] != int32(map[int]int{0: 2, 1: 4}[c.Rank()%2]) || g0 != 2+c.Rank()%2 {
			return fmt.Errorf("split: size %d sum %d global(0) %d", sub.Size(), x[0], g0)
		}
		grp, err := c.Group([]int{3, 1})
		if err != nil {
			return err
		}
		if (grp == nil) != (c.Rank()%2 == 0) {
			return fmt.Errorf("group membership of rank %d: %v", c.Rank(), grp)
		}
		if grp != nil {
			// Use it once before closing (a peer closing a communicator right
			// after creating it can fail the other's creation; core issue).
			if err := grp.Barrier(); err != nil {
				return err
			}
			if grp.Rank() != map[int]int{3: 0, 1: 1}[c.Rank()] {
				return fmt.Errorf("group rank %d", grp.Rank())
			}
			grp.Close()
		}
		none, err := c.Split(map[bool]int{true: diffcoll.SplitNoColor, false: 7}[c.Rank() == 0], 0)
		if err != nil {
			return err
		}
		if (none == nil) != (c.Rank() == 0) {
			return fmt.Errorf("split with no colour: %v", none)
		}
		if none != nil {
			if err := none.Barrier(); err != nil {
				return err
			}
			none.Close()
		}
		return c.Barrier()
	})
}

func TestErrors(t *testing.T) {
	runRanks(t, 2, nil, func(c *diffcoll.Comm) error {
		err := c.Broadcast(must(diffcoll.NewTensor([]float32{1, 2})), 9)
		var de *diffcoll.Error
		if !errors.As(err, &de) || !errors.Is(err, diffcoll.ErrInvalidArgument) {
			return fmt.Errorf("bad root: got %v", err)
		}
		if de.Op != "diffcoll_broadcast" || !strings.Contains(de.Message, "root 9") {
			return fmt.Errorf("bad root: op %q message %q", de.Op, de.Message)
		}
		// A CUDA tensor on a host-only communicator.
		fake, _ := diffcoll.TensorFromPointer(0x7f0000000000, diffcoll.Float32Type, diffcoll.CUDA, 0, []int{4}, nil)
		if err := c.AllReduce(fake, diffcoll.Sum); !errors.Is(err, diffcoll.ErrUnsupported) {
			return fmt.Errorf("CUDA tensor on host comm: got %v", err)
		}
		// Operations other than send/recv inside a group.
		err = c.P2PGroup(func() error { return c.Barrier() })
		if !errors.Is(err, diffcoll.ErrInvalidArgument) {
			return fmt.Errorf("barrier in group: got %v", err)
		}
		return c.Barrier()
	})
}

func TestClosedCommAndTimeout(t *testing.T) {
	c, err := diffcoll.NewComm(fmt.Sprintf("local://go-closed-%d", time.Now().UnixNano()), 0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	err = c.AllReduce(must(diffcoll.NewTensor([]float32{1})), diffcoll.Sum)
	var de *diffcoll.Error
	if !errors.As(err, &de) || de.Status != diffcoll.ErrInvalidHandle || de.Message == "" {
		t.Fatalf("closed comm: got %v", err)
	}

	opts := diffcoll.DefaultOptions()
	opts.Timeout = 500 * time.Millisecond
	done := make(chan struct{})
	runRanks(t, 2, &opts, func(c *diffcoll.Comm) error {
		if c.Rank() == 1 {
			<-done // stays connected, never joins the all_reduce
			return nil
		}
		defer close(done)
		err := c.AllReduce(must(diffcoll.NewTensor([]float32{1})), diffcoll.Sum)
		if !errors.Is(err, diffcoll.ErrTimeout) {
			return fmt.Errorf("timeout: got %v", err)
		}
		return nil
	})
}

func TestTensorValidation(t *testing.T) {
	data := make([]float32, 12)
	if _, err := diffcoll.NewTensor(data, 5, 3); !errors.Is(err, diffcoll.ErrInvalidArgument) {
		t.Fatalf("wrong element count: %v", err)
	}
	if _, err := diffcoll.NewStridedTensor(data, 2, []int{3, 4}, []int{4, 1}); err == nil {
		t.Fatal("out-of-bounds view accepted")
	}
	if _, err := diffcoll.NewStridedTensor(data, 11, []int{3, 4}, []int{-4, -1}); err != nil {
		t.Fatal("reversed view rejected:", err)
	}
	if _, err := diffcoll.NewTensor(make([]int8, 1), 1, 1, 1, 1, 1, 1, 1, 1, 1); err == nil {
		t.Fatal("9 dimensions accepted")
	}
	tt := must(diffcoll.NewTensor(data, 3, 4))
	p := must(tt.Permute(1, 0))
	if fmt.Sprint(p.Shape(), p.Strides()) != "[4 3] [1 4]" {
		t.Fatal("permute:", p)
	}
	s := must(tt.Slice(1, 1, 4, 2))
	if fmt.Sprint(s.Shape(), s.Strides()) != "[3 2] [4 2]" {
		t.Fatal("slice:", s)
	}
}

func TestWrapNCCLWithoutCUDA(t *testing.T) {
	opts := diffcoll.DefaultOptions()
	opts.DeviceID = 0
	probe, err := diffcoll.NewComm(fmt.Sprintf("local://go-probe-%d", time.Now().UnixNano()), 0, 1, &opts)
	if err == nil {
		probe.Close()
	}
	if !errors.Is(err, diffcoll.ErrUnsupported) {
		t.Skip("needs a diffcoll built without CUDA (the fake ncclComm_t would be used)")
	}
	_, err = diffcoll.WrapNCCL(0x10, fmt.Sprintf("local://go-nccl-%d", time.Now().UnixNano()), nil)
	var de *diffcoll.Error
	if !errors.As(err, &de) || de.Status != diffcoll.ErrUnsupported || !strings.Contains(de.Message, "without CUDA") {
		t.Fatalf("WrapNCCL on a host-only build: %v", err)
	}
}

// The raw SWIG layer of the CFG policy (CfgPolicy wraps it; the raw layer stays usable).
func TestRawCFGPolicy(t *testing.T) {
	names := []string{"uncond", "cond"}
	roles := []int{int(capi.DIFFCOLL_CFG_UNCOND), int(capi.DIFFCOLL_CFG_COND)}
	branches := capi.New_cfg_branch_array(len(names))
	defer capi.Delete_cfg_branch_array(branches)
	for i := range names {
		b := capi.NewDiffcoll_cfg_branch_t()
		defer capi.DeleteDiffcoll_cfg_branch_t(b) // frees the name after the call
		b.SetName(names[i])
		b.SetRole(roles[i])
		capi.Cfg_branch_array_setitem(branches, i, b)
	}
	terms := capi.New_cfg_term_array(1)
	defer capi.Delete_cfg_term_array(terms)
	term := capi.NewDiffcoll_cfg_term_t()
	defer capi.DeleteDiffcoll_cfg_term_t(term)
	term.SetScale(7.5)
	term.SetPlus(1)
	term.SetMinus(0)
	capi.Cfg_term_array_setitem(terms, 0, term)
	var policy capi.SwigcptrStruct_SS_diffcoll_cfg_policy
	if st := capi.Diffcoll_cfg_policy_create(branches, 2, 0, terms, 1, capi.SwigcptrDiffcoll_cfg_options_t(0), &policy); st != 0 {
		t.Fatalf("create: %d %s", st, capi.Diffcoll_last_error())
	}
	defer capi.Diffcoll_cfg_policy_destroy(policy)
	var name string
	var role int32
	if st := capi.Diffcoll_cfg_policy_branch(policy, 1, &name, &role); st != 0 || name != "cond" || role != int32(capi.DIFFCOLL_CFG_COND) {
		t.Fatalf("branch 1: %d %q %d", st, name, role)
	}
	weights := make([]float64, 2)
	if st := capi.Diffcoll_cfg_policy_weights(policy, weights); st != 0 || weights[0] != -6.5 || weights[1] != 7.5 {
		t.Fatalf("weights: %d %v", st, weights)
	}
	idx := make([]int32, 4)
	var count int32
	if st := capi.Diffcoll_cfg_dispatch(policy, 2, 1, idx, &count); st != 0 || count != 1 || idx[0] != 1 {
		t.Fatalf("dispatch: %d %v %d", st, idx, count)
	}
}
