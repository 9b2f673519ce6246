// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Command haloexchange runs a halo exchange from Go: a [C, H, W] activation is
// split along H over 3 ranks (uneven slabs, SplitExtent), each rank fills one
// halo row on each side of its slab from its neighbours (replicate padding at
// the image edges), runs a vertical 3-tap filter on its padded slab, and
// GatherSlabs reassembles the result, which is checked against the filter of
// the whole, replicate-padded activation computed here.
//
//	cd examples/go
//	CGO_CFLAGS=-I<src>/capi/include CGO_LDFLAGS=-L<build> LD_LIBRARY_PATH=<build> go run ./haloexchange
package main

import (
	"fmt"
	"log"
	"sync"

	"diffcoll.dev/diffcoll"
)

const C, H, W, ranks = 2, 11, 5, 3

var taps = [3]float32{0.25, 0.5, 0.25}

func activation() []float32 {
	a := make([]float32, C*H*W)
	for i := range a {
		a[i] = float32((i*37)%23) - 11
	}
	return a
}

// filter applies the 3 taps along H to a [C, rows+2, W] padded buffer.
func filter(padded []float32, rows int) []float32 {
	out := make([]float32, C*rows*W)
	for c := 0; c < C; c++ {
		for h := 0; h < rows; h++ {
			for w := 0; w < W; w++ {
				var acc float32
				for k := 0; k < 3; k++ {
					acc = float32(acc + float32(taps[k]*padded[(c*(rows+2)+h+k)*W+w]))
				}
				out[(c*rows+h)*W+w] = acc
			}
		}
	}
	return out
}

func rankMain(c *diffcoll.Comm, whole []float32, result []float32) error {
	start, rows, err := diffcoll.SplitExtent(H, c.Size(), c.Rank())
	if err != nil {
		return err
	}
	cfg := diffcoll.DefaultHaloConfig() // 1-D chain along dimension -2 (H), 1 row each side
	cfg.RowBoundaryBefore, cfg.RowBoundaryAfter = diffcoll.HaloReplicate, diffcoll.HaloReplicate
	plan, err := c.NewHaloPlan(&cfg)
	if err != nil {
		return err
	}
	defer plan.Close()

	// This rank's slab: a strided view of rows [start, start+rows) of the whole.
	wholeT, _ := diffcoll.NewTensor(whole, C, H, W)
	slab, err := wholeT.Slice(1, start, start+rows, 1)
	if err != nil {
		return err
	}
	padded := make([]float32, C*(rows+2)*W)
	paddedT, _ := diffcoll.NewTensor(padded, C, rows+2, W)
	if err := plan.ExchangeInto(slab, paddedT); err != nil { // copy in, then fill the halo
		return err
	}

	local := filter(padded, rows)
	localT, _ := diffcoll.NewTensor(local, C, rows, W)
	var resultT *diffcoll.Tensor
	if c.Rank() == 0 {
		resultT, _ = diffcoll.NewTensor(result, C, H, W)
	}
	if err := c.GatherSlabs(localT, resultT, 1, 0); err != nil {
		return err
	}
	return c.Barrier()
}

func main() {
	whole := activation()
	result := make([]float32, C*H*W)
	var wg sync.WaitGroup
	errs := make([]error, ranks)
	for r := 0; r < ranks; r++ {
		wg.Add(1)
		go func(rank int) {
			defer wg.Done()
			c, err := diffcoll.NewComm("local://go-haloexchange-example", rank, ranks, nil)
			if err != nil {
				errs[rank] = err
				return
			}
			defer c.Close()
			errs[rank] = rankMain(c, whole, result)
		}(r)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			log.Fatal(err)
		}
	}

	// Reference: the whole activation, replicate-padded along H, filtered.
	padded := make([]float32, C*(H+2)*W)
	for c := 0; c < C; c++ {
		for h := -1; h <= H; h++ {
			src := h
			if src < 0 {
				src = 0
			} else if src >= H {
				src = H - 1
			}
			copy(padded[(c*(H+2)+h+1)*W:(c*(H+2)+h+2)*W], whole[(c*H+src)*W:(c*H+src+1)*W])
		}
	}
	want := filter(padded, H)
	for i := range want {
		if result[i] != want[i] {
			log.Fatalf("element %d: parallel %v, whole %v", i, result[i], want[i])
		}
	}
	var slabs []int
	for r := 0; r < ranks; r++ {
		_, rows, _ := diffcoll.SplitExtent(H, ranks, r)
		slabs = append(slabs, rows)
	}
	fmt.Printf("haloexchange: %d ranks with %v rows; the parallel filter equals the whole one bit for bit: OK\n", ranks, slabs)
}
