// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll

import (
	"runtime"

	"diffcoll.dev/diffcoll/capi"
)

// CfgRole is what a guidance branch is (diffcoll_cfg_role_t).
type CfgRole int32

// Branch roles (values fixed by the header; 0 is not a role).
const (
	CfgCond      CfgRole = 1 // conditional prediction (the prompt); post-processing needs exactly one
	CfgUncond    CfgRole = 2 // unconditional / negative prompt; CFG-zero* needs exactly one
	CfgPerturbed CfgRole = 3 // perturbed prediction, e.g. spatio-temporal guidance
	CfgModality  CfgRole = 4 // prediction with one modality dropped
	CfgOther     CfgRole = 5 // any other branch
)

// CfgOrder is the arithmetic order of a combine (diffcoll_cfg_order_t).
type CfgOrder int32

// Arithmetic orders (docs/CFG.md).
const (
	// CfgOrderSerial evaluates the formula as written, in float32, rounding once.
	CfgOrderSerial CfgOrder = 0
	// CfgOrderParallel is a weighted sum rounded after every operation, in
	// branch order: what the parallel combine computes, so serial and
	// parallel combines agree bit for bit (e.g. two ranks, one branch each).
	CfgOrderParallel CfgOrder = 1
	// CfgOrderTorch is what PyTorch eager computes for the formula written in
	// Python: every operation in float32, rounded to the dtype, and the
	// engines' post-processing (docs/CFG.md); bitwise equal across ranks.
	CfgOrderTorch CfgOrder = 2
)

// CfgBranch is one guidance branch: a unique, non-empty name and a role.
type CfgBranch struct {
	Name string
	Role CfgRole
}

// CfgTerm is one guidance term: Scale * (pred[Plus] - pred[Minus]), branches
// by index.
type CfgTerm struct {
	Scale       float64
	Plus, Minus int
}

// CfgOptions are the options of a policy (diffcoll_cfg_options_t). The zero
// value is the default: SERIAL order, no post-processing.
type CfgOptions struct {
	Order         CfgOrder
	ZeroStar      bool    // CFG-zero* (needs one COND and one UNCOND branch)
	RescalePhi    float64 // guidance rescale strength in [0, 1]; 0: off
	NormK         float64 // CFG normalization bound; 0: off
	NormPerSample bool    // CFG normalization per sample
	ZeroInitSteps int     // output zeroed while step < ZeroInitSteps
}

// CfgPolicy is a classifier-free guidance policy: branches, a base branch and
// guidance terms,
//
//	out = pred[base] + sum_k scale_k * (pred[plus_k] - pred[minus_k])
//
// with optional post-processing. It is immutable: several goroutines may use
// it at once, but it must not be closed while in use. Release it with Close.
type CfgPolicy struct {
	h capi.SwigcptrStruct_SS_diffcoll_cfg_policy
	n int
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// NewCfgPolicy creates a policy (local, not collective). terms may be empty;
// opts may be nil for the defaults. Bad indices, duplicate names, options out
// of range or post-processing without its branch give ErrInvalidArgument.
func NewCfgPolicy(branches []CfgBranch, base int, terms []CfgTerm, opts *CfgOptions) (*CfgPolicy, error) {
	const op = "diffcoll_cfg_policy_create"
	if len(branches) == 0 {
		return nil, argError(op, "a policy needs at least one branch")
	}
	barr := capi.New_cfg_branch_array(len(branches))
	defer capi.Delete_cfg_branch_array(barr)
	for i, b := range branches {
		cb := capi.NewDiffcoll_cfg_branch_t()
		// The array holds a copy of the struct (and so of the name pointer):
		// the branch, which owns the name, is freed after the call.
		defer capi.DeleteDiffcoll_cfg_branch_t(cb)
		cb.SetName(b.Name)
		cb.SetRole(int(b.Role))
		capi.Cfg_branch_array_setitem(barr, i, cb)
	}
	var tarr capi.Diffcoll_cfg_term_t = capi.SwigcptrDiffcoll_cfg_term_t(0)
	if len(terms) > 0 {
		tarr = capi.New_cfg_term_array(len(terms))
		defer capi.Delete_cfg_term_array(tarr)
		for k, t := range terms {
			ct := capi.NewDiffcoll_cfg_term_t()
			ct.SetScale(t.Scale)
			ct.SetPlus(t.Plus)
			ct.SetMinus(t.Minus)
			capi.Cfg_term_array_setitem(tarr, k, ct)
			capi.DeleteDiffcoll_cfg_term_t(ct)
		}
	}
	o := capi.NewDiffcoll_cfg_options_t() // DIFFCOLL_CFG_OPTIONS_INIT
	defer capi.DeleteDiffcoll_cfg_options_t(o)
	if opts != nil {
		o.SetOrder(int(opts.Order))
		o.SetZero_star(boolInt(opts.ZeroStar))
		o.SetRescale_phi(opts.RescalePhi)
		o.SetNorm_k(opts.NormK)
		o.SetNorm_per_sample(boolInt(opts.NormPerSample))
		o.SetZero_init_steps(opts.ZeroInitSteps)
	}
	var h capi.SwigcptrStruct_SS_diffcoll_cfg_policy
	if err := call(op, func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_policy_create(barr, len(branches), base, tarr, len(terms), o, &h)
	}); err != nil {
		return nil, err
	}
	p := &CfgPolicy{h: h, n: len(branches)}
	runtime.SetFinalizer(p, func(p *CfgPolicy) { _ = p.Close() })
	return p, nil
}

// NewStandardCfgPolicy is standard CFG, uncond + scale * (cond - uncond):
// branch 0 is "cond" (CfgCond), branch 1 "uncond" (CfgUncond). opts may be nil.
func NewStandardCfgPolicy(scale float64, opts *CfgOptions) (*CfgPolicy, error) {
	return NewCfgPolicy([]CfgBranch{{"cond", CfgCond}, {"uncond", CfgUncond}}, 1,
		[]CfgTerm{{Scale: scale, Plus: 0, Minus: 1}}, opts)
}

// Close destroys the policy. Closing twice is a no-op; other methods then
// fail with ErrInvalidHandle.
func (p *CfgPolicy) Close() error {
	if p == nil || p.h == 0 {
		return nil
	}
	h := p.h
	p.h = 0
	runtime.SetFinalizer(p, nil)
	return call("diffcoll_cfg_policy_destroy", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_policy_destroy(h)
	})
}

// NumBranches is the number of branches.
func (p *CfgPolicy) NumBranches() int { return p.n }

// Branch returns the name and role of branch index.
func (p *CfgPolicy) Branch(index int) (CfgBranch, error) {
	var name string
	var role int32
	err := call("diffcoll_cfg_policy_branch", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_policy_branch(p.h, index, &name, &role)
	})
	runtime.KeepAlive(p)
	return CfgBranch{Name: name, Role: CfgRole(role)}, err
}

// Index returns the index of the branch called name (ErrInvalidArgument,
// whose message lists the branches, if there is none).
func (p *CfgPolicy) Index(name string) (int, error) {
	var i int32
	err := call("diffcoll_cfg_policy_find_branch", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_policy_find_branch(p.h, name, &i)
	})
	runtime.KeepAlive(p)
	return int(i), err
}

// Weights returns the linear weights w_i of out = sum_i w_i * pred_i (before
// CFG-zero*).
func (p *CfgPolicy) Weights() ([]float64, error) {
	w := make([]float64, p.n)
	err := call("diffcoll_cfg_policy_weights", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_policy_weights(p.h, w)
	})
	runtime.KeepAlive(p)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Options returns the policy's options.
func (p *CfgPolicy) Options() (CfgOptions, error) {
	o := capi.NewDiffcoll_cfg_options_t() // struct_size set
	defer capi.DeleteDiffcoll_cfg_options_t(o)
	if err := call("diffcoll_cfg_policy_get_options", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_policy_get_options(p.h, o)
	}); err != nil {
		return CfgOptions{}, err
	}
	runtime.KeepAlive(p)
	return CfgOptions{
		Order:         CfgOrder(o.GetOrder()),
		ZeroStar:      o.GetZero_star() != 0,
		RescalePhi:    o.GetRescale_phi(),
		NormK:         o.GetNorm_k(),
		NormPerSample: o.GetNorm_per_sample() != 0,
		ZeroInitSteps: o.GetZero_init_steps(),
	}, nil
}

// Dispatch returns the branch indices (ascending) that CFG rank rank of a CFG
// group of degree ranks runs. It may be empty: that rank still calls
// Comm.CfgCombine, with no predictions.
func (p *CfgPolicy) Dispatch(degree, rank int) ([]int, error) {
	idx := make([]int32, p.n)
	var count int32
	err := call("diffcoll_cfg_dispatch", func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_dispatch(p.h, degree, rank, idx, &count)
	})
	runtime.KeepAlive(p)
	if err != nil {
		return nil, err
	}
	out := make([]int, count)
	for i := range out {
		out[i] = int(idx[i])
	}
	return out, nil
}

// tensorArray is a C array of descriptors for the duration of one call.
type tensorArray struct {
	arr capi.Diffcoll_tensor_t
	ts  []cTensor
}

func newTensorArray(ts []*Tensor) tensorArray {
	a := tensorArray{arr: capi.SwigcptrDiffcoll_tensor_t(0)}
	if len(ts) == 0 {
		return a
	}
	a.arr = capi.New_tensor_array(len(ts))
	for i, t := range ts {
		ct := t.toC()
		a.ts = append(a.ts, ct)
		if ct.t != nil {
			capi.Tensor_array_setitem(a.arr, i, ct.c)
		}
	}
	return a
}

func (a tensorArray) free() {
	if a.arr.Swigcptr() != 0 {
		capi.Delete_tensor_array(a.arr)
	}
	for _, ct := range a.ts {
		ct.free()
	}
}

// CombineSerial combines every branch's prediction (preds, in branch order:
// float16, bfloat16 or float32, the shape and dtype of out, any strides) into
// out on this process. out may be one of preds. step is the denoising step
// (for ZeroInitSteps). Not collective. CUDA tensors use the legacy default
// stream (see CombineSerialOnStream).
func (p *CfgPolicy) CombineSerial(preds []*Tensor, out *Tensor, step int) error {
	return p.CombineSerialOnStream(preds, out, step, 0)
}

// CombineSerialOnStream is CombineSerial with CUDA tensors enqueued on stream
// (a cudaStream_t as a uintptr; ignored for host tensors).
func (p *CfgPolicy) CombineSerialOnStream(preds []*Tensor, out *Tensor, step int, stream uintptr) error {
	const op = "diffcoll_cfg_combine_serial"
	if err := nonNil(op, "preds", preds); err != nil {
		return err
	}
	arr := newTensorArray(preds)
	defer arr.free()
	co := out.toC()
	defer co.free()
	err := call(op, func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_combine_serial(p.h, arr.arr, len(preds), co.c, step, stream)
	})
	runtime.KeepAlive(p)
	return err
}

// CfgCombine combines CFG predictions spread over the ranks of c (the CFG
// group: its size is the CFG degree, its rank the CFG rank) into every rank's
// out. local holds this rank's predictions for the branches
// policy.Dispatch(c.Size(), c.Rank()) lists, in that order (empty for a rank
// without branches). Collective: every rank passes the same policy, shape,
// dtype and step. With CfgOrderParallel the result equals CombineSerial bit
// for bit in the cases docs/CFG.md lists (e.g. two ranks, one branch each).
func (c *Comm) CfgCombine(policy *CfgPolicy, local []*Tensor, out *Tensor, step int) error {
	const op = "diffcoll_cfg_combine_parallel"
	if policy == nil {
		return &Error{Status: ErrInvalidHandle, Message: "policy is nil", Op: op}
	}
	if err := nonNil(op, "local", local); err != nil {
		return err
	}
	arr := newTensorArray(local)
	defer arr.free()
	co := out.toC()
	defer co.free()
	err := call(op, func() capi.Enum_SS_diffcoll_status_t {
		return capi.Diffcoll_cfg_combine_parallel(c.h, policy.h, arr.arr, len(local), co.c, step, c.stream)
	})
	runtime.KeepAlive(policy)
	return err
}
