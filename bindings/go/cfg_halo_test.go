// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"diffcoll.dev/diffcoll"
)

// pseudo-random but deterministic float32 values.
func waves(n int, seed float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(math.Sin(float64(i)*0.37+seed) * (3 + seed))
	}
	return out
}

func TestCfgPolicyQueriesAndErrors(t *testing.T) {
	p, err := diffcoll.NewCfgPolicy(
		[]diffcoll.CfgBranch{{"cond", diffcoll.CfgCond}, {"uncond", diffcoll.CfgUncond}, {"stg", diffcoll.CfgPerturbed}},
		0, []diffcoll.CfgTerm{{Scale: 4, Plus: 0, Minus: 1}, {Scale: 1.5, Plus: 0, Minus: 2}},
		&diffcoll.CfgOptions{RescalePhi: 0.7, ZeroInitSteps: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if w, err := p.Weights(); err != nil || fmt.Sprint(w) != "[6.5 -4 -1.5]" {
		t.Fatalf("weights %v %v", w, err)
	}
	if b, err := p.Branch(2); err != nil || b != (diffcoll.CfgBranch{Name: "stg", Role: diffcoll.CfgPerturbed}) {
		t.Fatalf("branch 2: %v %v", b, err)
	}
	if i, err := p.Index("uncond"); err != nil || i != 1 {
		t.Fatalf("index: %d %v", i, err)
	}
	if _, err := p.Index("nope"); !errors.Is(err, diffcoll.ErrInvalidArgument) {
		t.Fatalf("unknown name: %v", err)
	}
	if o, err := p.Options(); err != nil || o != (diffcoll.CfgOptions{RescalePhi: 0.7, ZeroInitSteps: 1}) {
		t.Fatalf("options %+v %v", o, err)
	}
	if d, err := p.Dispatch(2, 1); err != nil || fmt.Sprint(d) != "[1 2]" {
		t.Fatalf("dispatch %v %v", d, err)
	}
	if _, err := p.Dispatch(0, 0); !errors.Is(err, diffcoll.ErrInvalidArgument) {
		t.Fatalf("degree 0: %v", err)
	}
	// The library's checks come back as *Error values.
	_, err = diffcoll.NewCfgPolicy([]diffcoll.CfgBranch{{"a", diffcoll.CfgCond}}, 0,
		[]diffcoll.CfgTerm{{Scale: 1, Plus: 0, Minus: 0}}, nil)
	var de *diffcoll.Error
	if !errors.As(err, &de) || de.Status != diffcoll.ErrInvalidArgument || de.Op != "diffcoll_cfg_policy_create" {
		t.Fatalf("plus == minus: %v", err)
	}
	if _, err := diffcoll.NewCfgPolicy([]diffcoll.CfgBranch{{"p", diffcoll.CfgPerturbed}}, 0, nil,
		&diffcoll.CfgOptions{RescalePhi: 0.5}); !errors.Is(err, diffcoll.ErrInvalidArgument) {
		t.Fatalf("rescale without cond: %v", err)
	}
	// A wrong number of predictions; a closed policy.
	x := must(diffcoll.NewTensor(make([]float32, 4), 4))
	if err := p.CombineSerial([]*diffcoll.Tensor{x}, x, 0); !errors.Is(err, diffcoll.ErrInvalidArgument) {
		t.Fatalf("one prediction for three branches: %v", err)
	}
	p.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Weights(); !errors.Is(err, diffcoll.ErrInvalidHandle) {
		t.Fatalf("closed policy: %v", err)
	}
}

// Standard CFG on 2 ranks in PARALLEL order: the parallel combine equals the
// serial one and a float32 reference bit for bit.
func TestCfgCombineTwoRanksBitwise(t *testing.T) {
	const b, c, n = 2, 3, 5
	preds := [][]float32{waves(b*c*n, 0.5), waves(b*c*n, 1.7)}
	runRanks(t, 2, nil, func(comm *diffcoll.Comm) error {
		p, err := diffcoll.NewStandardCfgPolicy(7.5, &diffcoll.CfgOptions{Order: diffcoll.CfgOrderParallel})
		if err != nil {
			return err
		}
		defer p.Close()
		mine, err := p.Dispatch(comm.Size(), comm.Rank())
		if err != nil {
			return err
		}
		if len(mine) != 1 || mine[0] != comm.Rank() {
			return fmt.Errorf("dispatch %v", mine)
		}
		local := []*diffcoll.Tensor{must(diffcoll.NewTensor(preds[mine[0]], b, c, n))}
		// Rank 1 writes into a transposed output (layouts may differ per rank).
		outMem := make([]float32, b*c*n)
		var out *diffcoll.Tensor
		if comm.Rank() == 0 {
			out = must(diffcoll.NewTensor(outMem, b, c, n))
		} else {
			out = must(must(diffcoll.NewTensor(outMem, n, c, b)).Permute(2, 1, 0))
		}
		if err := comm.CfgCombine(p, local, out, 0); err != nil {
			return err
		}
		serialMem := make([]float32, b*c*n)
		all := []*diffcoll.Tensor{must(diffcoll.NewTensor(preds[0], b, c, n)), must(diffcoll.NewTensor(preds[1], b, c, n))}
		if err := p.CombineSerial(all, must(diffcoll.NewTensor(serialMem, b, c, n)), 0); err != nil {
			return err
		}
		w, err := p.Weights()
		if err != nil {
			return err
		}
		w0, w1 := float32(w[0]), float32(w[1])
		for i := 0; i < b; i++ {
			for j := 0; j < c; j++ {
				for k := 0; k < n; k++ {
					lin := (i*c+j)*n + k
					got := outMem[lin]
					if comm.Rank() == 1 {
						got = outMem[(k*c+j)*b+i]
					}
					// PARALLEL order; the conversions keep Go from fusing.
					want := float32(float32(w0*preds[0][lin]) + float32(w1*preds[1][lin]))
					if math.Float32bits(got) != math.Float32bits(serialMem[lin]) || math.Float32bits(got) != math.Float32bits(want) {
						return fmt.Errorf("element %d: parallel %v serial %v reference %v", lin, got, serialMem[lin], want)
					}
				}
			}
		}
		return nil
	})
}

// TORCH order: the option round-trips, and on float32 tensors the combine is
// PyTorch's chain uncond + g*(cond - uncond), every step rounded to float32.
func TestCfgTorchOrder(t *testing.T) {
	const b, n = 2, 7
	cond, uncond := waves(b*n, 0.3), waves(b*n, 2.1)
	p, err := diffcoll.NewStandardCfgPolicy(5.3, &diffcoll.CfgOptions{Order: diffcoll.CfgOrderTorch})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if o, err := p.Options(); err != nil || o.Order != diffcoll.CfgOrderTorch {
		t.Fatalf("options %+v, %v", o, err)
	}
	out := make([]float32, b*n)
	preds := []*diffcoll.Tensor{must(diffcoll.NewTensor(cond, b, n)), must(diffcoll.NewTensor(uncond, b, n))}
	if err := p.CombineSerial(preds, must(diffcoll.NewTensor(out, b, n)), 0); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		// The conversions keep Go from fusing.
		want := float32(uncond[i] + float32(float32(5.3)*float32(cond[i]-uncond[i])))
		if math.Float32bits(out[i]) != math.Float32bits(want) {
			t.Fatalf("element %d: %v, want %v", i, out[i], want)
		}
	}
}

// A chain of 3 ranks along H of an [N, H, W] tensor: every padded slab equals
// the matching rows of the whole tensor padded once; GatherSlabs reassembles it.
func TestHaloChainThreeRanks(t *testing.T) {
	const N, H, W = 2, 10, 3
	whole := waves(N*H*W, 0.1)
	for _, mode := range []diffcoll.HaloBoundary{diffcoll.HaloZeros, diffcoll.HaloReplicate} {
		mode := mode
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			runRanks(t, 3, nil, func(comm *diffcoll.Comm) error {
				start, rows, err := diffcoll.SplitExtent(H, comm.Size(), comm.Rank())
				if err != nil {
					return err
				}
				cfg := diffcoll.DefaultHaloConfig()
				cfg.RowBefore, cfg.RowAfter = 2, 1
				cfg.RowBoundaryBefore, cfg.RowBoundaryAfter = mode, mode
				plan, err := comm.NewHaloPlan(&cfg)
				if err != nil {
					return err
				}
				defer plan.Close()
				prows := rows + 3
				padded := make([]float32, N*prows*W)
				for i := range padded {
					padded[i] = float32(math.NaN())
				}
				for n := 0; n < N; n++ {
					copy(padded[(n*prows+2)*W:(n*prows+2+rows)*W], whole[(n*H+start)*W:(n*H+start+rows)*W])
				}
				if err := plan.Exchange(must(diffcoll.NewTensor(padded, N, prows, W))); err != nil {
					return err
				}
				for n := 0; n < N; n++ {
					for r := 0; r < prows; r++ {
						h := start + r - 2 // row of the whole tensor
						for w := 0; w < W; w++ {
							var want float32
							switch {
							case h >= 0 && h < H:
								want = whole[(n*H+h)*W+w]
							case mode == diffcoll.HaloReplicate && h < 0:
								want = whole[(n*H)*W+w]
							case mode == diffcoll.HaloReplicate:
								want = whole[(n*H+H-1)*W+w]
							}
							if got := padded[(n*prows+r)*W+w]; got != want {
								return fmt.Errorf("padded[%d,%d,%d] = %v, want %v", n, r, w, got, want)
							}
						}
					}
				}
				// Reassemble the interiors (strided views of the padded slabs).
				interior := must(must(diffcoll.NewTensor(padded, N, prows, W)).Slice(1, 2, 2+rows, 1))
				gathered := make([]float32, N*H*W)
				if err := comm.GatherSlabs(interior, must(diffcoll.NewTensor(gathered, N, H, W)), 1, -1); err != nil {
					return err
				}
				for i := range whole {
					if gathered[i] != whole[i] {
						return fmt.Errorf("gathered[%d] = %v, want %v", i, gathered[i], whole[i])
					}
				}
				// Errors: a grid that does not match the size, a closed plan.
				bad := diffcoll.DefaultHaloConfig()
				bad.GridRows, bad.GridCols = 2, 2
				if _, err := comm.NewHaloPlan(&bad); !errors.Is(err, diffcoll.ErrInvalidArgument) {
					return fmt.Errorf("2x2 grid on 3 ranks: %v", err)
				}
				plan.Close()
				if err := plan.Exchange(must(diffcoll.NewTensor(padded, N, prows, W))); !errors.Is(err, diffcoll.ErrInvalidHandle) {
					return fmt.Errorf("closed plan: %v", err)
				}
				return nil
			})
		})
	}
	if _, _, err := diffcoll.SplitExtent(10, 0, 0); !errors.Is(err, diffcoll.ErrInvalidArgument) {
		t.Fatalf("SplitExtent with 0 parts: %v", err)
	}
}
