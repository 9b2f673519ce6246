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
