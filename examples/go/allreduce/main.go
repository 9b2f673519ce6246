// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Command allreduce runs a small diffcoll job from Go: 4 ranks as goroutines
// (local:// rendezvous) do an all_reduce and an all_gather on host tensors
// made from Go slices, and check the results.
//
// Started once per rank with torchrun-style variables (RANK, WORLD_SIZE,
// DIFFCOLL_STORE=file:///shared/dir) it runs that one rank instead.
//
//	cd examples/go
//	CGO_CFLAGS=-I<src>/capi/include CGO_LDFLAGS=-L<build> LD_LIBRARY_PATH=<build> go run ./allreduce
package main

import (
	"fmt"
	"log"
	"os"
	"sync"

	"diffcoll.dev/diffcoll"
)

func rankMain(c *diffcoll.Comm) error {
	rank, size := c.Rank(), c.Size()

	// all_reduce (sum) in place on a transposed view of a 3x4 matrix: no copy.
	x := make([]float32, 12)
	for i := range x {
		x[i] = float32(i + rank)
	}
	xt, err := diffcoll.NewTensor(x, 3, 4)
	if err != nil {
		return err
	}
	if xt, err = xt.Permute(1, 0); err != nil {
		return err
	}
	if err := c.AllReduce(xt, diffcoll.Sum); err != nil {
		return err
	}
	for i, v := range x {
		if want := float32(size*i + size*(size-1)/2); v != want {
			return fmt.Errorf("rank %d: x[%d] = %v, want %v", rank, i, v, want)
		}
	}

	// all_gather: every rank's 2 values, concatenated.
	in, _ := diffcoll.NewTensor([]int32{int32(rank), int32(10 * rank)})
	gathered := make([]int32, 2*size)
	out, _ := diffcoll.NewTensor(gathered)
	if err := c.AllGather(in, out, 0); err != nil {
		return err
	}
	for r := 0; r < size; r++ {
		if gathered[2*r] != int32(r) || gathered[2*r+1] != int32(10*r) {
			return fmt.Errorf("rank %d: gathered %v", rank, gathered)
		}
	}
	if rank == 0 {
		major, minor, patch := diffcoll.Version()
		fmt.Printf("diffcoll %d.%d.%d: %d ranks OK; x[:4] = %v, gathered = %v\n", major, minor, patch, size, x[:4], gathered)
	}
	return nil
}

func main() {
	if os.Getenv("DIFFCOLL_STORE") != "" {
		c, err := diffcoll.NewCommFromEnv(nil)
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		if err := rankMain(c); err != nil {
			log.Fatal(err)
		}
		return
	}
	const size = 4
	var wg sync.WaitGroup
	errs := make([]error, size)
	for r := 0; r < size; r++ {
		wg.Add(1)
		go func(rank int) {
			defer wg.Done()
			c, err := diffcoll.NewComm("local://go-allreduce-example", rank, size, nil)
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
