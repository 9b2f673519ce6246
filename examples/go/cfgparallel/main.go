// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Command cfgparallel runs classifier-free guidance in parallel from Go: 2
// ranks (goroutines, local:// rendezvous) each run one guidance branch of
// standard CFG, uncond + 7.5 * (cond - uncond), and CfgCombine leaves the
// combined prediction on both. In PARALLEL order the result equals the serial
// combine of all branches bit for bit, and a float32 reference computed here.
//
//	cd examples/go
//	CGO_CFLAGS=-I<src>/capi/include CGO_LDFLAGS=-L<build> LD_LIBRARY_PATH=<build> go run ./cfgparallel
package main

import (
	"fmt"
	"log"
	"math"
	"sync"

	"diffcoll.dev/diffcoll"
)

const batch, channels, pixels = 2, 4, 16

// denoise stands in for a forward pass of the model on one guidance branch.
func denoise(branch int) []float32 {
	out := make([]float32, batch*channels*pixels)
	for i := range out {
		out[i] = float32(math.Sin(float64(i)*0.21+float64(branch)) * float64(2+branch))
	}
	return out
}

func rankMain(c *diffcoll.Comm) error {
	policy, err := diffcoll.NewStandardCfgPolicy(7.5, &diffcoll.CfgOptions{Order: diffcoll.CfgOrderParallel})
	if err != nil {
		return err
	}
	defer policy.Close()

	// This rank runs only the branches the policy assigns to it.
	mine, err := policy.Dispatch(c.Size(), c.Rank())
	if err != nil {
		return err
	}
	var local []*diffcoll.Tensor
	for _, b := range mine {
		t, err := diffcoll.NewTensor(denoise(b), batch, channels, pixels)
		if err != nil {
			return err
		}
		local = append(local, t)
	}
	out := make([]float32, batch*channels*pixels)
	outT, _ := diffcoll.NewTensor(out, batch, channels, pixels)
	if err := c.CfgCombine(policy, local, outT, 0); err != nil {
		return err
	}

	// Check: the serial combine of every branch, and the PARALLEL-order
	// formula in float32 (explicit conversions keep Go from fusing).
	cond, uncond := denoise(0), denoise(1)
	ct, _ := diffcoll.NewTensor(cond, batch, channels, pixels)
	ut, _ := diffcoll.NewTensor(uncond, batch, channels, pixels)
	serial := make([]float32, len(out))
	st, _ := diffcoll.NewTensor(serial, batch, channels, pixels)
	if err := policy.CombineSerial([]*diffcoll.Tensor{ct, ut}, st, 0); err != nil {
		return err
	}
	w, err := policy.Weights()
	if err != nil {
		return err
	}
	for i := range out {
		want := float32(float32(float32(w[0])*cond[i]) + float32(float32(w[1])*uncond[i]))
		if math.Float32bits(out[i]) != math.Float32bits(serial[i]) || math.Float32bits(out[i]) != math.Float32bits(want) {
			return fmt.Errorf("rank %d: element %d: parallel %v, serial %v, reference %v", c.Rank(), i, out[i], serial[i], want)
		}
	}
	if c.Rank() == 0 {
		fmt.Printf("cfgparallel: %d ranks, weights %v, rank 0 ran branches %v; bitwise equal to the serial combine: OK\n",
			c.Size(), w, mine)
	}
	return c.Barrier() // nobody closes while a peer may still be communicating
}

func main() {
	const size = 2
	var wg sync.WaitGroup
	errs := make([]error, size)
	for r := 0; r < size; r++ {
		wg.Add(1)
		go func(rank int) {
			defer wg.Done()
			c, err := diffcoll.NewComm("local://go-cfgparallel-example", rank, size, nil)
			if err != nil {
				errs[rank] = err
				return
			}
			defer c.Close()
			errs[rank] = rankMain(c)
		}(r)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			log.Fatal(err)
		}
	}
}
