package diffcoll

import (
	"fmt"

	"diffcoll.dev/diffcoll/capi"
)

// UlyssesDirection is the direction of a Ulysses all-to-all
// (diffcoll_ulysses_direction_t).
type UlyssesDirection int32

// Directions (values fixed by the header).
const (
	// SeqToHead: sequence-sharded to head-sharded (before attention).
	SeqToHead UlyssesDirection = 0
	// HeadToSeq: head-sharded to sequence-sharded (after attention).
	HeadToSeq UlyssesDirection = 1
)

// String is the direction's name ("seq_to_head", "head_to_seq").
func (d UlyssesDirection) String() string {
	switch d {
	case SeqToHead:
		return "seq_to_head"
	case HeadToSeq:
		return "head_to_seq"
	}
	return fmt.Sprintf("UlyssesDirection(%d)", int32(d))
}

// nonNil returns an argError naming the first nil tensor of ts.
func nonNil(op, name string, ts []*Tensor) error {
	for i, t := range ts {
		if t == nil {
			return argError(op, "%s[%d] is nil", name, i)
		}
	}
	return nil
}

// UlyssesAllToAll exchanges several tensors (e.g. q, k and v) in one Ulysses
// all-to-all (diffcoll_ulysses_all_to_all). Collective over c, the Ulysses
// group of P ranks: every rank passes the same number of tensors, axes,
// direction, dtype and global shapes. With S and H a tensor's global sequence
// length and head count, rank r holds SplitExtent(S, P, r) tokens /
// SplitExtent(H, P, r) heads (no padding):
//
//   - SeqToHead (before attention): inputs[t] has S_r along seqAxis and H
//     along headAxis; outputs[t] has S and H_r.
//   - HeadToSeq (after attention): the inverse; the round trip returns the
//     input bit for bit.
//
// Tensors have any strides; outputs overlap neither the inputs nor each
// other. Axes may be negative. CUDA tensors are enqueued on Stream().
func (c *Comm) UlyssesAllToAll(inputs, outputs []*Tensor, seqAxis, headAxis int, dir UlyssesDirection) error {
	const op = "diffcoll_ulysses_all_to_all"
	if len(inputs) != len(outputs) {
		return argError(op, "%d inputs but %d outputs", len(inputs), len(outputs))
	}
	if err := nonNil(op, "inputs", inputs); err != nil {
		return err
	}
	if err := nonNil(op, "outputs", outputs); err != nil {
		return err
	}
	ins, outs := newTensorArray(inputs), newTensorArray(outputs)
	defer ins.free()
	defer outs.free()
	return call(op, func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_ulysses_all_to_all(c.h, ins.arr, outs.arr, len(inputs), seqAxis, headAxis, int(dir), c.stream)
	})
}
