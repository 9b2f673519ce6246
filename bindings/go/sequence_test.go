// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"diffcoll.dev/diffcoll"
)

// wantError checks that err is an *Error of status from op whose message
// contains text and is part of err.Error().
func wantError(err error, status diffcoll.Status, op, text string) error {
	var de *diffcoll.Error
	if !errors.As(err, &de) || de.Status != status || de.Op != op || de.Message == "" ||
		!strings.Contains(de.Message, text) || !strings.Contains(err.Error(), de.Message) {
		return fmt.Errorf("want %v from %s with %q, got %v", status, op, text, err)
	}
	return nil
}

// Ulysses forward of q (5 heads) and k (2 heads), [B, S, H, D] with S = 7,
// over 1-3 ranks (uneven splits, ranks with no k head): each rank's output,
// written through a transposed [B, H, S, D] buffer, is its head slice of the
// whole; HeadToSeq returns the input slabs bit for bit.
func TestUlyssesForwardAndRoundTrip(t *testing.T) {
	const B, S, D = 2, 7, 3
	heads := []int{5, 2}
	wholes := [][]float32{waves(B*S*heads[0]*D, 0.4), waves(B*S*heads[1]*D, 1.3)}
	for size := 1; size <= 3; size++ {
		size := size
		t.Run(fmt.Sprintf("size%d", size), func(t *testing.T) {
			runRanks(t, size, nil, func(comm *diffcoll.Comm) error {
				s0, sr, err := diffcoll.SplitExtent(S, comm.Size(), comm.Rank())
				if err != nil {
					return err
				}
				var ins, outs, backs []*diffcoll.Tensor
				slabs, headBufs, backBufs := make([][]float32, 2), make([][]float32, 2), make([][]float32, 2)
				h0s, hrs := make([]int, 2), make([]int, 2)
				for i, H := range heads {
					if h0s[i], hrs[i], err = diffcoll.SplitExtent(H, comm.Size(), comm.Rank()); err != nil {
						return err
					}
					slabs[i] = append([]float32(nil), wholes[i][s0*H*D:(s0+sr)*H*D]...) // B = 0 part
					slabs[i] = append(slabs[i], wholes[i][(S+s0)*H*D:(S+s0+sr)*H*D]...)
					ins = append(ins, must(diffcoll.NewTensor(slabs[i], B, sr, H, D)))
					headBufs[i] = make([]float32, B*hrs[i]*S*D) // [B, H_r, S, D]
					outs = append(outs, must(must(diffcoll.NewTensor(headBufs[i], B, hrs[i], S, D)).Permute(0, 2, 1, 3)))
					backBufs[i] = make([]float32, len(slabs[i]))
					backs = append(backs, must(diffcoll.NewTensor(backBufs[i], B, sr, H, D)))
				}
				if err := comm.UlyssesAllToAll(ins, outs, 1, -2, diffcoll.SeqToHead); err != nil {
					return err
				}
				for i, H := range heads {
					for b := 0; b < B; b++ {
						for h := 0; h < hrs[i]; h++ {
							for s := 0; s < S; s++ {
								for d := 0; d < D; d++ {
									got := headBufs[i][((b*hrs[i]+h)*S+s)*D+d]
									want := wholes[i][((b*S+s)*H+h0s[i]+h)*D+d]
									if got != want {
										return fmt.Errorf("tensor %d [%d,%d,%d,%d] = %v, want %v", i, b, s, h, d, got, want)
									}
								}
							}
						}
					}
				}
				if err := comm.UlyssesAllToAll(outs, backs, 1, 2, diffcoll.HeadToSeq); err != nil {
					return err
				}
				for i := range heads {
					for j := range slabs[i] {
						if backBufs[i][j] != slabs[i][j] {
							return fmt.Errorf("round trip: tensor %d element %d = %v, want %v", i, j, backBufs[i][j], slabs[i][j])
						}
					}
				}
				return nil
			})
		})
	}
	if fmt.Sprint(diffcoll.HeadToSeq) != "head_to_seq" {
		t.Fatalf("HeadToSeq prints as %v", diffcoll.HeadToSeq)
	}
}

func TestUlyssesErrors(t *testing.T) {
	const op = "diffcoll_ulysses_all_to_all"
	runRanks(t, 2, nil, func(comm *diffcoll.Comm) error {
		x := must(diffcoll.NewTensor(make([]float32, 2*4*4*2), 2, 4, 4, 2)) // S = 8 over 2 ranks
		good := must(diffcoll.NewTensor(make([]float32, 2*8*2*2), 2, 8, 2, 2))
		bad := must(diffcoll.NewTensor(make([]float32, 2*8*3*2), 2, 8, 3, 2))
		one := func(t *diffcoll.Tensor) []*diffcoll.Tensor { return []*diffcoll.Tensor{t} }
		for _, c := range []struct {
			err  error
			text string
		}{
			{comm.UlyssesAllToAll(one(x), one(bad), 1, 2, diffcoll.SeqToHead), "2 heads along dimension 2"},
			{comm.UlyssesAllToAll(one(x), one(good), 1, 1, diffcoll.SeqToHead), "both dimension 1"},
			{comm.UlyssesAllToAll(nil, nil, 1, 2, diffcoll.SeqToHead), "count 0"},
			{comm.UlyssesAllToAll(one(x), one(good), 1, 2, diffcoll.UlyssesDirection(5)), ""},
			{comm.UlyssesAllToAll([]*diffcoll.Tensor{x, x}, one(good), 1, 2, diffcoll.SeqToHead), "2 inputs but 1 outputs"},
			{comm.UlyssesAllToAll(one(x), one(nil), 1, 2, diffcoll.SeqToHead), "outputs[0] is nil"},
		} {
			if err := wantError(c.err, diffcoll.ErrInvalidArgument, op, c.text); err != nil {
				return err
			}
		}
		return nil
	})
}

// The ring over 1-4 ranks, by hand and with Steps: at step s rank n holds
// the block of rank (n - s) mod P (k: a [2, 3] tensor full of n; v: a [4]
// tensor 100 n + i), so every block is seen exactly once.
func TestRingVisitsEveryBlockOnce(t *testing.T) {
	for size := 1; size <= 4; size++ {
		for _, manual := range []bool{true, false} {
			size, manual := size, manual
			t.Run(fmt.Sprintf("size%d/manual=%v", size, manual), func(t *testing.T) {
				runRanks(t, size, nil, func(comm *diffcoll.Comm) error {
					p, n := comm.Size(), comm.Rank()
					k0, v0, k1, v1 := make([]float32, 6), make([]float32, 4), make([]float32, 6), make([]float32, 4)
					for i := range k0 {
						k0[i] = float32(n)
					}
					for i := range v0 {
						v0[i] = float32(100*n + i)
					}
					bufs := [2][]*diffcoll.Tensor{
						{must(diffcoll.NewTensor(k0, 2, 3)), must(diffcoll.NewTensor(v0))},
						{must(diffcoll.NewTensor(k1, 2, 3)), must(diffcoll.NewTensor(v1))},
					}
					data := [2][2][]float32{{k0, v0}, {k1, v1}}
					ring, err := comm.NewRing(bufs[0], bufs[1])
					if err != nil {
						return err
					}
					defer ring.Close()
					if ring.Current() != 0 || ring.Halves()[1][0] != bufs[1][0] || ring.Comm() != comm {
						return fmt.Errorf("new ring: current %d, halves %v", ring.Current(), ring.Halves())
					}
					var seen []int
					visit := func(step int, half []*diffcoll.Tensor) error {
						cur := ring.Current()
						if half[0] != bufs[cur][0] || half[1] != bufs[cur][1] {
							return fmt.Errorf("step %d: the half given is not half %d", step, cur)
						}
						k, v := data[cur][0], data[cur][1]
						owner := int(k[0])
						for i := range k {
							if k[i] != float32(owner) || i < len(v) && v[i] != float32(100*owner+i) {
								return fmt.Errorf("step %d: block of rank %d is torn: k %v v %v", step, owner, k, v)
							}
						}
						seen = append(seen, owner)
						return nil
					}
					if manual {
						for step := 0; step < p; step++ {
							if step < p-1 {
								if err := ring.Start(); err != nil {
									return err
								}
							}
							if err := visit(step, ring.CurrentHalf()); err != nil {
								return err
							}
							if step < p-1 {
								if cur, err := ring.Wait(); err != nil || cur != (step+1)%2 || cur != ring.Current() {
									return fmt.Errorf("wait at step %d: %d %v", step, cur, err)
								}
							}
						}
					} else if err := ring.Steps(visit); err != nil {
						return err
					}
					for s, owner := range seen {
						if owner != ((n-s)%p+p)%p {
							return fmt.Errorf("blocks seen %v", seen)
						}
					}
					if len(seen) != p {
						return fmt.Errorf("blocks seen %v", seen)
					}
					return nil
				})
			})
		}
	}
}

func TestRingErrors(t *testing.T) {
	const create = "diffcoll_ring_create"
	runRanks(t, 2, nil, func(comm *diffcoll.Comm) error {
		mat := func(r, c int) *diffcoll.Tensor { return must(diffcoll.NewTensor(make([]float32, r*c), r, c)) }
		one := func(t *diffcoll.Tensor) []*diffcoll.Tensor { return []*diffcoll.Tensor{t} }
		_, err := comm.NewRing(one(mat(2, 3)), one(mat(3, 2)))
		if err := wantError(err, diffcoll.ErrInvalidArgument, create, "differ in shape"); err != nil {
			return err
		}
		_, err = comm.NewRing(one(must(mat(3, 2).Permute(1, 0))), one(must(mat(3, 2).Permute(1, 0))))
		if err := wantError(err, diffcoll.ErrInvalidArgument, create, "contiguous"); err != nil {
			return err
		}
		_, err = comm.NewRing(one(mat(2, 3)), nil)
		if err := wantError(err, diffcoll.ErrInvalidArgument, create, "buffer0 has 1 tensors but buffer1 0"); err != nil {
			return err
		}
		ring, err := comm.NewRing(one(mat(2, 3)), one(mat(2, 3)))
		if err != nil {
			return err
		}
		_, err = ring.Wait()
		if err := wantError(err, diffcoll.ErrInvalidArgument, "diffcoll_ring_wait", "no step is in flight"); err != nil {
			return err
		}
		if err := ring.Start(); err != nil {
			return err
		}
		if err := wantError(ring.Start(), diffcoll.ErrInvalidArgument, "diffcoll_ring_start", "not waited for"); err != nil {
			return err
		}
		if _, err := ring.Wait(); err != nil {
			return err
		}
		if err := ring.Close(); err != nil {
			return err
		}
		if err := ring.Close(); err != nil { // idempotent
			return err
		}
		return wantError(ring.Start(), diffcoll.ErrInvalidHandle, "diffcoll_ring_start", "")
	})
}

// The groups of a USP mesh hold the ranks the header's formula gives, in its
// order, and work (an all-reduce over the sp group).
func TestUspMeshGroupsFollowTheDocumentedOrder(t *testing.T) {
	for _, tc := range []struct {
		size int
		deg  diffcoll.UspDegrees
		want diffcoll.UspDegrees
	}{
		{8, diffcoll.UspDegrees{Ulysses: 2, Ring: 2, Cfg: 2}, diffcoll.UspDegrees{Ulysses: 2, Ring: 2, Cfg: 2, Data: 1}}, // the header's example
		{8, diffcoll.UspDegrees{Ulysses: 2, Ring: 1, Cfg: 2, Data: 2}, diffcoll.UspDegrees{Ulysses: 2, Ring: 1, Cfg: 2, Data: 2}},
		{6, diffcoll.UspDegrees{Ulysses: 3, Ring: 2}, diffcoll.UspDegrees{Ulysses: 3, Ring: 2, Cfg: 1, Data: 1}},
		{4, diffcoll.UspDegrees{Ring: 2, Data: 2}, diffcoll.UspDegrees{Ulysses: 1, Ring: 2, Cfg: 1, Data: 2}},
	} {
		tc := tc
		t.Run(fmt.Sprintf("%d/%+v", tc.size, tc.deg), func(t *testing.T) {
			U, R, C, D := tc.want.Ulysses, tc.want.Ring, tc.want.Cfg, tc.want.Data
			runRanks(t, tc.size, nil, func(comm *diffcoll.Comm) error {
				mesh, err := comm.NewUspMesh(tc.deg)
				if err != nil {
					return err
				}
				defer mesh.Close()
				if mesh.Degrees != tc.want {
					return fmt.Errorf("degrees %+v, want %+v", mesh.Degrees, tc.want)
				}
				n := comm.Rank()
				u, r, c, d := n%U, n/U%R, n/(U*R)%C, n/(U*R*C)
				rankOf := func(u, r, c, d int) int { return u + U*(r+R*(c+C*d)) }
				groups := []struct {
					name  string
					comm  *diffcoll.Comm
					local int
					rank  func(i int) int
					size  int
				}{
					{"ulysses", mesh.Ulysses, u, func(i int) int { return rankOf(i, r, c, d) }, U},
					{"ring", mesh.Ring, r, func(i int) int { return rankOf(u, i, c, d) }, R},
					{"sp", mesh.SP, u + U*r, func(i int) int { return rankOf(i%U, i/U, c, d) }, U * R},
					{"cfg", mesh.Cfg, c, func(i int) int { return rankOf(u, r, i, d) }, C},
					{"data", mesh.Data, d, func(i int) int { return rankOf(u, r, c, i) }, D},
				}
				for _, g := range groups {
					if g.comm.Size() != g.size || g.comm.Rank() != g.local {
						return fmt.Errorf("%s: rank %d of %d, want %d of %d", g.name, g.comm.Rank(), g.comm.Size(), g.local, g.size)
					}
					for i := 0; i < g.size; i++ {
						if gr, err := g.comm.GlobalRank(i); err != nil || gr != g.rank(i) {
							return fmt.Errorf("%s: local rank %d is world rank %d (%v), want %d", g.name, i, gr, err, g.rank(i))
						}
					}
				}
				x := []int64{int64(n)}
				if err := mesh.SP.AllReduce(must(diffcoll.NewTensor(x)), diffcoll.Sum); err != nil {
					return err
				}
				want := 0
				for i := 0; i < U*R; i++ {
					want += groups[2].rank(i)
				}
				if x[0] != int64(want) {
					return fmt.Errorf("sum over sp = %d, want %d", x[0], want)
				}
				return nil
			})
		})
	}
}

func TestUspMeshOwnershipAndErrors(t *testing.T) {
	const create = "diffcoll_usp_mesh_create"
	runRanks(t, 2, nil, func(comm *diffcoll.Comm) error {
		_, err := comm.NewUspMesh(diffcoll.UspDegrees{Ulysses: 3, Data: 1})
		if err := wantError(err, diffcoll.ErrInvalidArgument, create, "= 3 must equal the communicator's size 2"); err != nil {
			return err
		}
		_, err = comm.NewUspMesh(diffcoll.UspDegrees{Ulysses: -1, Data: 2})
		if err := wantError(err, diffcoll.ErrInvalidArgument, create, "ulysses -1"); err != nil {
			return err
		}
		mesh, err := comm.NewUspMesh(diffcoll.UspDegrees{Ulysses: 2})
		if err != nil {
			return err
		}
		if err := mesh.Ring.Close(); err != nil { // a group may be closed on its own ...
			return err
		}
		if err := mesh.Close(); err != nil { // ... and the mesh closes the rest
			return err
		}
		if err := mesh.Close(); err != nil {
			return err
		}
		if err := wantError(mesh.Ulysses.Barrier(), diffcoll.ErrInvalidHandle, "diffcoll_barrier", ""); err != nil {
			return err
		}
		return comm.Barrier() // the parent is not the mesh's
	})
}
