// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll_test

import (
	"fmt"
	"math"
	"testing"

	"diffcoll.dev/diffcoll"
)

// groupNormRef is GroupNorm of a whole [N, C, rest] activation, in float64.
func groupNormRef(x []float32, n, c, rest, groups int, eps float64, weight, bias []float32) []float64 {
	out := make([]float64, len(x))
	per := c / groups * rest // elements of one (sample, group)
	for s := 0; s < n; s++ {
		for g := 0; g < groups; g++ {
			base := (s*groups + g) * per
			var mean, sq float64
			for i := 0; i < per; i++ {
				mean += float64(x[base+i])
			}
			mean /= float64(per)
			for i := 0; i < per; i++ {
				d := float64(x[base+i]) - mean
				sq += d * d
			}
			inv := 1 / math.Sqrt(sq/float64(per)+eps)
			for i := 0; i < per; i++ {
				ch := (base + i) / rest % c
				v := (float64(x[base+i]) - mean) * inv
				if weight != nil {
					v = v*float64(weight[ch]) + float64(bias[ch])
				}
				out[base+i] = v
			}
		}
	}
	return out
}

func closeTo(got float32, want float64, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol*(1+math.Abs(want))
}

// GroupNorm of an NCHW activation whose H is split over the ranks (8 ranks >
// 7 rows: one slab is empty) equals GroupNorm of the whole, in place and into
// a channels-last output written through a permuted view.
func TestGroupNormOfSplitActivation(t *testing.T) {
	const N, C, H, W, G, eps = 2, 6, 7, 5, 3, 1e-5
	whole := waves(N*C*H*W, 0.3)
	gamma, beta := waves(C, 1.1), waves(C, 2.3)
	for _, size := range []int{1, 3, 8} {
		for _, affine := range []bool{false, true} {
			for _, inPlace := range []bool{true, false} {
				size, affine, inPlace := size, affine, inPlace
				t.Run(fmt.Sprintf("size%d/affine=%v/inPlace=%v", size, affine, inPlace), func(t *testing.T) {
					var w, b []float32
					if affine {
						w, b = gamma, beta
					}
					want := groupNormRef(whole, N, C, H*W, G, eps, w, b)
					runRanks(t, size, nil, func(comm *diffcoll.Comm) error {
						start, rows, err := diffcoll.SplitExtent(H, comm.Size(), comm.Rank())
						if err != nil {
							return err
						}
						slab := make([]float32, N*C*rows*W)
						for i := range slab {
							n, c, h, x := i/(C*rows*W), i/(rows*W)%C, i/W%rows, i%W
							slab[i] = whole[((n*C+c)*H+start+h)*W+x]
						}
						in := must(diffcoll.NewTensor(slab, N, C, rows, W))
						var wt, bt *diffcoll.Tensor
						if affine {
							wt, bt = must(diffcoll.NewTensor(gamma)), must(diffcoll.NewTensor(beta))
						}
						got := func(n, c, h, x int) float32 { return slab[((n*C+c)*rows+h)*W+x] }
						if inPlace {
							if err := comm.GroupNorm(in, nil, wt, bt, G, eps); err != nil {
								return err
							}
						} else {
							cl := make([]float32, N*rows*W*C) // [N, rows, W, C]
							for i := range cl {
								cl[i] = float32(math.NaN())
							}
							out := must(must(diffcoll.NewTensor(cl, N, rows, W, C)).Permute(0, 3, 1, 2))
							if err := comm.GroupNorm(in, out, wt, bt, G, eps); err != nil {
								return err
							}
							orig := append([]float32(nil), slab...)
							got = func(n, c, h, x int) float32 { return cl[((n*rows+h)*W+x)*C+c] }
							for i := range slab { // input only read
								if slab[i] != orig[i] {
									return fmt.Errorf("input[%d] changed", i)
								}
							}
						}
						for n := 0; n < N; n++ {
							for c := 0; c < C; c++ {
								for h := 0; h < rows; h++ {
									for x := 0; x < W; x++ {
										ref := want[((n*C+c)*H+start+h)*W+x]
										if g := got(n, c, h, x); !closeTo(g, ref, 1e-5) {
											return fmt.Errorf("out[%d,%d,%d,%d] = %v, want %v", n, c, start+h, x, g, ref)
										}
									}
								}
							}
						}
						return nil
					})
				})
			}
		}
	}
}

func TestGroupNormErrors(t *testing.T) {
	runRanks(t, 2, nil, func(comm *diffcoll.Comm) error {
		x := must(diffcoll.NewTensor(make([]float32, 2*6*4), 2, 6, 4))
		checks := []struct {
			err  error
			want string
		}{
			{comm.GroupNorm(x, nil, nil, nil, 4, 1e-6), "num_groups 4"},
			{comm.GroupNorm(x, must(diffcoll.NewTensor(make([]float32, 2*6*3), 2, 6, 3)), nil, nil, 3, 1e-6), "shape"},
			{comm.GroupNorm(x, nil, must(diffcoll.NewTensor(make([]float32, 5))), nil, 3, 1e-6), "weight"},
			{comm.GroupNorm(must(diffcoll.NewTensor(make([]float64, 2*6*4), 2, 6, 4)), nil, nil, nil, 3, 1e-6), "float64"},
		}
		for _, c := range checks {
			if err := wantError(c.err, diffcoll.ErrInvalidArgument, "diffcoll_group_norm", c.want); err != nil {
				return err
			}
		}
		return nil
	})
}

// fusedNormRef: residual_out = sum(xs) + residual (float32), y = rmsnorm(residual_out) * weight.
func fusedNormRef(xs [][]float32, residual, weight []float32, hidden int, eps float64) (y []float64, res []float32) {
	res = make([]float32, len(xs[0]))
	for i := range res {
		var s float32
		for _, x := range xs {
			s += x[i]
		}
		if residual != nil {
			s += residual[i]
		}
		res[i] = s
	}
	y = make([]float64, len(res))
	for row := 0; row < len(res)/hidden; row++ {
		var ms float64
		for j := 0; j < hidden; j++ {
			v := float64(res[row*hidden+j])
			ms += v * v
		}
		inv := 1 / math.Sqrt(ms/float64(hidden)+eps)
		for j := 0; j < hidden; j++ {
			v := float64(res[row*hidden+j]) * inv
			if weight != nil {
				v *= float64(weight[j])
			}
			y[row*hidden+j] = v
		}
	}
	return y, res
}

// The fused all-reduce + residual + RMSNorm of 1 and 3 ranks against a plain
// float32 reference: out of place (explicit NCCL path, ignored on the host),
// in place, and without residual, weight and residual_out.
func TestFusedNormMatchesReference(t *testing.T) {
	const T, S, hidden, eps = 3, 5, 16, 1e-6
	xs := [][]float32{waves(T*S*hidden, 0.2), waves(T*S*hidden, 0.9), waves(T*S*hidden, 1.6)}
	residual, weight := waves(T*S*hidden, 2.2), waves(hidden, 3.1)
	for _, size := range []int{1, 3} {
		for _, mode := range []string{"out_of_place", "in_place", "plain"} {
			size, mode := size, mode
			t.Run(fmt.Sprintf("size%d/%s", size, mode), func(t *testing.T) {
				r, w := residual, weight
				if mode == "plain" {
					r, w = nil, nil
				}
				yRef, resRef := fusedNormRef(xs[:size], r, w, hidden, eps)
				runRanks(t, size, nil, func(comm *diffcoll.Comm) error {
					ws, err := comm.NewFusedNormWorkspace(16, hidden, diffcoll.Float32Type)
					if err != nil {
						return err
					}
					defer ws.Close()
					if ws.Comm() != comm {
						return fmt.Errorf("workspace's Comm is not comm")
					}
					x := append([]float32(nil), xs[comm.Rank()]...)
					res := append([]float32(nil), residual...)
					xt, rt := must(diffcoll.NewTensor(x, T, S, hidden)), must(diffcoll.NewTensor(res, T, S, hidden))
					wt := must(diffcoll.NewTensor(weight))
					y, resOut := x, res
					switch mode {
					case "in_place":
						err = ws.Apply(xt, rt, wt, eps, xt, rt, nil)
					case "out_of_place":
						y, resOut = make([]float32, len(x)), make([]float32, len(x))
						err = ws.Apply(xt, rt, wt, eps, must(diffcoll.NewTensor(y, T, S, hidden)),
							must(diffcoll.NewTensor(resOut, T, S, hidden)), &diffcoll.FusedNormOptions{Path: diffcoll.FusedNormNCCL})
					default:
						y, resOut = make([]float32, len(x)), nil
						err = ws.Apply(xt, nil, nil, eps, must(diffcoll.NewTensor(y, T, S, hidden)), nil, nil)
					}
					if err != nil {
						return err
					}
					for i := range y {
						if resOut != nil && !closeTo(resOut[i], float64(resRef[i]), 1e-6) {
							return fmt.Errorf("residual_out[%d] = %v, want %v", i, resOut[i], resRef[i])
						}
						if !closeTo(y[i], yRef[i], 1e-5) {
							return fmt.Errorf("y[%d] = %v, want %v", i, y[i], yRef[i])
						}
					}
					if mode == "out_of_place" && x[0] != xs[comm.Rank()][0] {
						return fmt.Errorf("x was written")
					}
					return nil
				})
			})
		}
	}
	if fmt.Sprint(diffcoll.FusedNormTwoShot) != "two_shot" {
		t.Fatalf("FusedNormTwoShot prints as %v", diffcoll.FusedNormTwoShot)
	}
}

func TestFusedNormErrors(t *testing.T) {
	const hidden = 16
	runRanks(t, 2, nil, func(comm *diffcoll.Comm) error {
		const create = "diffcoll_fused_norm_workspace_create"
		_, err := comm.NewFusedNormWorkspace(0, hidden, diffcoll.Float32Type)
		if err := wantError(err, diffcoll.ErrInvalidArgument, create, "max_tokens 0"); err != nil {
			return err
		}
		_, err = comm.NewFusedNormWorkspace(4, hidden, diffcoll.Float64Type)
		if err := wantError(err, diffcoll.ErrInvalidArgument, create, "dtype"); err != nil {
			return err
		}
		ws, err := comm.NewFusedNormWorkspace(4, hidden, diffcoll.Float32Type)
		if err != nil {
			return err
		}
		x5 := must(diffcoll.NewTensor(make([]float32, 5*hidden), 5, hidden))
		y5 := must(diffcoll.NewTensor(make([]float32, 5*hidden), 5, hidden))
		if err := wantError(ws.Apply(x5, nil, nil, 1e-6, y5, nil, nil), diffcoll.ErrInvalidArgument, "diffcoll_fused_norm", "up to 4 tokens"); err != nil {
			return err
		}
		x4 := must(x5.Slice(0, 0, 4, 1))
		y4 := must(y5.Slice(0, 0, 4, 1))
		if err := wantError(ws.Apply(x4, nil, nil, 1e-6, y4, nil, &diffcoll.FusedNormOptions{Path: 7}), diffcoll.ErrInvalidArgument, "diffcoll_fused_norm", ""); err != nil {
			return err
		}
		if err := ws.Close(); err != nil {
			return err
		}
		if err := ws.Close(); err != nil { // idempotent
			return err
		}
		return wantError(ws.Apply(x4, nil, nil, 1e-6, y4, nil, nil), diffcoll.ErrInvalidHandle, "diffcoll_fused_norm", "")
	})
}
