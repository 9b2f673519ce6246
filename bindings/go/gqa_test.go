// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll_test

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"diffcoll.dev/diffcoll"
)

// part of a [1, S, H, D] row-major whole: tokens [s0, s0+ns), heads [h0, h0+nh).
func part(whole []float32, H, D, s0, ns, h0, nh int) []float32 {
	out := make([]float32, 0, ns*nh*D)
	for s := s0; s < s0+ns; s++ {
		out = append(out, whole[(s*H+h0)*D:(s*H+h0+nh)*D]...)
	}
	return out
}

// bshd views data as [1, S, H, D].
func bshd(data []float32, S, H, D int) *diffcoll.Tensor {
	return must(diffcoll.NewTensor(data, 1, S, H, D))
}

// attend writes o[:, i] = softmax(q_i k_j^T / sqrt(D)) v_j, j = kvOf(i), for
// [1, S, H, D] row-major q, k, v, o of qh, kh, kh, qh heads; float32, fixed order.
func attend(q, k, v, o []float32, S, qh, kh, D int, kvOf func(int) int) {
	scale := float32(1 / math.Sqrt(float64(D)))
	logits := make([]float32, S)
	for i := 0; i < qh; i++ {
		j := kvOf(i)
		for s := 0; s < S; s++ {
			top := float32(math.Inf(-1))
			for t := 0; t < S; t++ {
				var dot float32
				for d := 0; d < D; d++ {
					dot += q[(s*qh+i)*D+d] * k[(t*kh+j)*D+d]
				}
				logits[t] = dot * scale
				top = float32(math.Max(float64(top), float64(logits[t])))
			}
			var sum float32
			for t := range logits {
				logits[t] = float32(math.Exp(float64(logits[t] - top)))
				sum += logits[t]
			}
			for d := 0; d < D; d++ {
				var acc float32
				for t := 0; t < S; t++ {
					acc += logits[t] * v[(t*kh+j)*D+d]
				}
				o[(s*qh+i)*D+d] = acc / sum
			}
		}
	}
}

// Grouped-query attention, 8 query heads and 2 k/v heads over 1-5 ranks:
// each rank receives exactly the k/v heads UlyssesKVHeads names (checked
// against the whole), and attention through the GQA-aware exchange equals the
// path that copies k/v up to 8 heads first, bit for bit.
func TestGQAUlyssesSendsEachRankTheKVHeadsItAttends(t *testing.T) {
	const S, Q, K, D, G = 9, 8, 2, 4, 4
	wq, wk, wv := waves(S*Q*D, 0.2), waves(S*K*D, 0.9), waves(S*K*D, 1.7)
	wkUp, wvUp := make([]float32, S*Q*D), make([]float32, S*Q*D)
	for s := 0; s < S; s++ {
		for h := 0; h < Q; h++ {
			copy(wkUp[(s*Q+h)*D:(s*Q+h+1)*D], wk[(s*K+h/G)*D:])
			copy(wvUp[(s*Q+h)*D:(s*Q+h+1)*D], wv[(s*K+h/G)*D:])
		}
	}
	for size := 1; size <= 5; size++ {
		size := size
		t.Run(fmt.Sprintf("size%d", size), func(t *testing.T) {
			runRanks(t, size, nil, func(comm *diffcoll.Comm) error {
				p, r := comm.Size(), comm.Rank()
				s0, ns := must2(diffcoll.SplitExtent(S, p, r))
				q0, nq := must2(diffcoll.SplitExtent(Q, p, r))
				k0, nk := must2(diffcoll.UlyssesKVHeads(Q, K, p, r))
				qh, kh, vh := make([]float32, S*nq*D), make([]float32, S*nk*D), make([]float32, S*nk*D)
				ins := []*diffcoll.Tensor{bshd(part(wq, Q, D, s0, ns, 0, Q), ns, Q, D),
					bshd(part(wk, K, D, s0, ns, 0, K), ns, K, D), bshd(part(wv, K, D, s0, ns, 0, K), ns, K, D)}
				outs := []*diffcoll.Tensor{bshd(qh, S, nq, D), bshd(kh, S, nk, D), bshd(vh, S, nk, D)}
				opts := &diffcoll.UlyssesOptions{QueryHeads: Q}
				if err := comm.UlyssesAllToAllWithOptions(ins, outs, 1, 2, diffcoll.SeqToHead, opts); err != nil {
					return err
				}
				for i, c := range []struct {
					got, whole []float32
					H, h0, n   int
				}{{qh, wq, Q, q0, nq}, {kh, wk, K, k0, nk}, {vh, wv, K, k0, nk}} {
					want := part(c.whole, c.H, D, 0, S, c.h0, c.n)
					for j := range want {
						if c.got[j] != want[j] {
							return fmt.Errorf("tensor %d element %d = %v, want %v", i, j, c.got[j], want[j])
						}
					}
				}
				run := func(q, k, v []float32, kvHeads int, kvOf func(int) int) ([]float32, error) {
					oh, o := make([]float32, S*nq*D), make([]float32, ns*Q*D)
					attend(q, k, v, oh, S, nq, kvHeads, D, kvOf)
					err := comm.UlyssesAllToAll([]*diffcoll.Tensor{bshd(oh, S, nq, D)}, []*diffcoll.Tensor{bshd(o, ns, Q, D)}, 1, 2, diffcoll.HeadToSeq)
					return o, err
				}
				gqa, err := run(qh, kh, vh, nk, func(i int) int { return (q0+i)/G - k0 })
				if err != nil {
					return err
				}
				ku, vu := make([]float32, S*nq*D), make([]float32, S*nq*D)
				up := []*diffcoll.Tensor{bshd(part(wkUp, Q, D, s0, ns, 0, Q), ns, Q, D), bshd(part(wvUp, Q, D, s0, ns, 0, Q), ns, Q, D)}
				if err := comm.UlyssesAllToAll(up, []*diffcoll.Tensor{bshd(ku, S, nq, D), bshd(vu, S, nq, D)}, 1, 2, diffcoll.SeqToHead); err != nil {
					return err
				}
				copied, err := run(qh, ku, vu, nq, func(i int) int { return i })
				if err != nil {
					return err
				}
				for j := range gqa {
					if gqa[j] != copied[j] {
						return fmt.Errorf("attention element %d: GQA-aware %v, copy-up %v", j, gqa[j], copied[j])
					}
				}
				return nil
			})
		})
	}
}

func must2(a, b int, err error) (int, int) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// The FP8 all-gather (e4m3, 4 rows per scale) gives every rank the same
// output, each value within 2^-4 |x| + 2^-10 amax/448 (+ float32 rounding)
// of the input, and changes most values; an FP8 Ulysses exchange keeps the
// rank's own slab exactly.
func TestFP8AllGatherAndUlysses(t *testing.T) {
	const P, rows, H, D = 3, 8, 2, 16
	whole := waves(P*rows*H*D, 0.5)
	var mu sync.Mutex
	outs := make([][]float32, P)
	runRanks(t, P, nil, func(comm *diffcoll.Comm) error {
		r := comm.Rank()
		in := bshd(append([]float32(nil), whole[r*rows*H*D:(r+1)*rows*H*D]...), rows, H, D)
		out := make([]float32, len(whole))
		opts := &diffcoll.AllGatherOptions{Wire: diffcoll.WireFP8E4M3, ScaleBlock: 4}
		if err := comm.AllGatherWithOptions(in, bshd(out, P*rows, H, D), 1, opts); err != nil {
			return err
		}
		mu.Lock()
		outs[r] = out
		mu.Unlock()
		// Ulysses, FP8: the slab of this rank's own tokens is copied exactly.
		s0, ns := must2(diffcoll.SplitExtent(P*rows, P, r))
		h0, nh := must2(diffcoll.SplitExtent(H, P, r))
		x := bshd(part(whole, H, D, s0, ns, 0, H), ns, H, D)
		y := make([]float32, P*rows*nh*D)
		if err := comm.UlyssesAllToAllWithOptions([]*diffcoll.Tensor{x}, []*diffcoll.Tensor{bshd(y, P*rows, nh, D)}, 1, 2, diffcoll.SeqToHead, &diffcoll.UlyssesOptions{Wire: diffcoll.WireFP8E5M2}); err != nil {
			return err
		}
		want := part(whole, H, D, 0, P*rows, h0, nh)
		for j := s0 * nh * D; j < (s0+ns)*nh*D; j++ {
			if y[j] != want[j] {
				return fmt.Errorf("own slab element %d = %v, want %v exactly", j, y[j], want[j])
			}
		}
		return nil
	})
	changed := 0
	for i, x := range whole {
		b, s, h := i/(rows*H*D), i/(H*D)%rows, i/D%H
		amax := 0.0
		for t := s / 4 * 4; t < s/4*4+4; t++ {
			for d := 0; d < D; d++ {
				amax = math.Max(amax, math.Abs(float64(whole[((b*rows+t)*H+h)*D+d])))
			}
		}
		bound := math.Abs(float64(x))/16 + amax/448/1024 + 1e-6*math.Abs(float64(x))
		for r := range outs {
			if outs[r][i] != outs[0][i] {
				t.Fatalf("rank %d element %d = %v, rank 0 has %v", r, i, outs[r][i], outs[0][i])
			}
		}
		if d := math.Abs(float64(outs[0][i] - x)); d > bound {
			t.Fatalf("element %d = %v, want %v within %v", i, outs[0][i], x, bound)
		}
		if outs[0][i] != x {
			changed++
		}
	}
	if changed < len(whole)/3 {
		t.Fatalf("FP8 changed only %d of %d values", changed, len(whole))
	}
}

func TestGQAAndFP8Errors(t *testing.T) {
	if _, _, err := diffcoll.UlyssesKVHeads(8, 3, 2, 0); wantError(err, diffcoll.ErrInvalidArgument, "diffcoll_ulysses_kv_heads", "divide") != nil {
		t.Fatal(wantError(err, diffcoll.ErrInvalidArgument, "diffcoll_ulysses_kv_heads", "divide"))
	}
	if fmt.Sprint(diffcoll.WireFP8E4M3) != "fp8_e4m3" {
		t.Fatalf("WireFP8E4M3 prints as %v", diffcoll.WireFP8E4M3)
	}
	runRanks(t, 2, nil, func(comm *diffcoll.Comm) error {
		x := []*diffcoll.Tensor{must(diffcoll.NewTensor(make([]float32, 4*2*2), 1, 4, 2, 2))} // S = 8 over 2 ranks
		y := []*diffcoll.Tensor{must(diffcoll.NewTensor(make([]float32, 8*1*2), 1, 8, 1, 2))}
		const op = "diffcoll_ulysses_all_to_all_ex"
		if err := wantError(comm.UlyssesAllToAllWithOptions(x, y, 1, 2, diffcoll.SeqToHead, &diffcoll.UlyssesOptions{QueryHeads: 3}), diffcoll.ErrInvalidArgument, op, "neither the 3 query heads"); err != nil {
			return err
		}
		if err := wantError(comm.UlyssesAllToAllWithOptions(x, y, 1, 2, diffcoll.SeqToHead, &diffcoll.UlyssesOptions{Wire: 9}), diffcoll.ErrInvalidArgument, op, "wire_format 9"); err != nil {
			return err
		}
		return wantError(comm.AllGatherWithOptions(x[0], must(diffcoll.NewTensor(make([]float32, 8*2*2), 1, 8, 2, 2)), 1, &diffcoll.AllGatherOptions{Wire: diffcoll.WireFP8E5M2, ScaleBlock: -1}), diffcoll.ErrInvalidArgument, "diffcoll_all_gather_ex", "scale_block -1")
	})
}
