// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll

import (
	"fmt"
	"runtime"
	"unsafe"

	"diffcoll.dev/diffcoll/capi"
)

// DType is a diffcoll_dtype_t.
type DType int32

// Element types (values fixed by the header).
const (
	Float16Type  DType = 1
	BFloat16Type DType = 2
	Float32Type  DType = 3
	Float64Type  DType = 4
	Int8Type     DType = 5
	Uint8Type    DType = 6
	Int32Type    DType = 7
	Int64Type    DType = 8
)

// DeviceType is a diffcoll_device_type_t (DLPack's device codes).
type DeviceType int32

// Where a tensor lives.
const (
	CPU  DeviceType = 1
	CUDA DeviceType = 2
)

// Float16 holds the bits of an IEEE 754 binary16 value.
type Float16 uint16

// BFloat16 holds the bits of a bfloat16 value.
type BFloat16 uint16

// Element is a Go type a Tensor can be made of.
type Element interface {
	float32 | float64 | int8 | uint8 | int32 | int64 | Float16 | BFloat16
}

func dtypeOf[T Element]() DType {
	var zero T
	switch any(zero).(type) {
	case float32:
		return Float32Type
	case float64:
		return Float64Type
	case int8:
		return Int8Type
	case uint8:
		return Uint8Type
	case int32:
		return Int32Type
	case int64:
		return Int64Type
	case Float16:
		return Float16Type
	default: // BFloat16
		return BFloat16Type
	}
}

// MaxDims is the most dimensions a tensor can have.
const MaxDims = capi.DIFFCOLL_MAX_DIMS

// Tensor describes an n-dimensional view of memory: a Go slice (NewTensor,
// NewStridedTensor) or raw memory (TensorFromPointer). Strides are in
// elements and may be anything the library accepts (transposed, sliced,
// negative); operations write their results into the memory in place.
//
// A Tensor made from a slice keeps the slice alive. Go's garbage collector
// does not move heap memory, and the library only uses the memory during the
// call (host tensors), so passing its address to C is safe.
type Tensor struct {
	keep     unsafe.Pointer // the Go memory (nil for TensorFromPointer)
	data     uintptr        // address of element (0, ..., 0)
	dtype    DType
	device   DeviceType
	deviceID int
	shape    []int64
	strides  []int64
}

func contiguousStrides(shape []int) []int {
	strides := make([]int, len(shape))
	step := 1
	for d := len(shape) - 1; d >= 0; d-- {
		strides[d] = step
		if shape[d] > 1 {
			step *= shape[d]
		}
	}
	return strides
}

// NewTensor views data as a C-contiguous (row-major) tensor of the given
// shape; the shape's product must be len(data). No shape means 1-D.
func NewTensor[T Element](data []T, shape ...int) (*Tensor, error) {
	if len(shape) == 0 {
		shape = []int{len(data)}
	}
	n := 1
	for _, s := range shape {
		n *= s
	}
	if n != len(data) {
		return nil, argError("diffcoll.NewTensor", "shape %v holds %d elements but the slice has %d", shape, n, len(data))
	}
	return NewStridedTensor(data, 0, shape, contiguousStrides(shape))
}

// NewStridedTensor views data as a tensor whose element (i0, ..., in) is
// data[offset + i0*strides[0] + ... + in*strides[n]]. Every element must lie
// inside data.
func NewStridedTensor[T Element](data []T, offset int, shape, strides []int) (*Tensor, error) {
	const op = "diffcoll.NewStridedTensor"
	if len(shape) != len(strides) {
		return nil, argError(op, "%d dimensions but %d strides", len(shape), len(strides))
	}
	if len(shape) > MaxDims {
		return nil, argError(op, "%d dimensions, at most %d are supported", len(shape), MaxDims)
	}
	lo, hi, empty := offset, offset, false
	for d, s := range shape {
		if s < 0 {
			return nil, argError(op, "negative extent %d in shape %v", s, shape)
		}
		if s == 0 {
			empty = true
		}
		span := (s - 1) * strides[d]
		if span < 0 {
			lo += span
		} else {
			hi += span
		}
	}
	if !empty && (lo < 0 || hi >= len(data)) {
		return nil, argError(op, "shape %v, strides %v and offset %d reach elements %d..%d of a slice of %d",
			shape, strides, offset, lo, hi, len(data))
	}
	t := &Tensor{dtype: dtypeOf[T](), device: CPU}
	if len(data) > 0 {
		t.keep = unsafe.Pointer(&data[0])
		t.data = uintptr(t.keep) + uintptr(offset)*unsafe.Sizeof(data[0])
	}
	t.shape = toInt64(shape)
	t.strides = toInt64(strides)
	return t, nil
}

// TensorFromPointer describes memory the caller manages (for example CUDA
// device memory); the caller keeps it valid while diffcoll uses it.
func TensorFromPointer(ptr uintptr, dtype DType, device DeviceType, deviceID int, shape, strides []int) (*Tensor, error) {
	const op = "diffcoll.TensorFromPointer"
	if strides == nil {
		strides = contiguousStrides(shape)
	}
	if len(shape) != len(strides) || len(shape) > MaxDims {
		return nil, argError(op, "shape %v and strides %v: bad number of dimensions", shape, strides)
	}
	return &Tensor{data: ptr, dtype: dtype, device: device, deviceID: deviceID,
		shape: toInt64(shape), strides: toInt64(strides)}, nil
}

func toInt64(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func toInt(v []int64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// Shape returns the extents of the dimensions.
func (t *Tensor) Shape() []int { return toInt(t.shape) }

// Strides returns the strides in elements.
func (t *Tensor) Strides() []int { return toInt(t.strides) }

// DType returns the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Permute returns a view with the dimensions reordered: dimension i of the
// result is dimension axes[i] of t (Permute(1, 0) transposes a matrix).
func (t *Tensor) Permute(axes ...int) (*Tensor, error) {
	if len(axes) != len(t.shape) {
		return nil, argError("diffcoll.Tensor.Permute", "%d axes for %d dimensions", len(axes), len(t.shape))
	}
	v := *t
	v.shape = make([]int64, len(axes))
	v.strides = make([]int64, len(axes))
	seen := make([]bool, len(axes))
	for i, a := range axes {
		if a < 0 || a >= len(axes) || seen[a] {
			return nil, argError("diffcoll.Tensor.Permute", "axes %v are not a permutation", axes)
		}
		seen[a] = true
		v.shape[i], v.strides[i] = t.shape[a], t.strides[a]
	}
	return &v, nil
}

// Slice returns the view of elements start, start+step, ... (before stop)
// along axis, like Python's t[..., start:stop:step, ...]; step > 0.
func (t *Tensor) Slice(axis, start, stop, step int) (*Tensor, error) {
	const op = "diffcoll.Tensor.Slice"
	if axis < 0 || axis >= len(t.shape) || step <= 0 || start < 0 || stop > int(t.shape[axis]) || start > stop {
		return nil, argError(op, "bad slice %d:%d:%d of axis %d of shape %v", start, stop, step, axis, t.shape)
	}
	v := *t
	v.shape = append([]int64(nil), t.shape...)
	v.strides = append([]int64(nil), t.strides...)
	v.data = t.data + uintptr(int64(start)*t.strides[axis]*t.itemSize())
	v.shape[axis] = int64((stop - start + step - 1) / step)
	v.strides[axis] = t.strides[axis] * int64(step)
	return &v, nil
}

func (t *Tensor) itemSize() int64 {
	switch t.dtype {
	case Float16Type, BFloat16Type:
		return 2
	case Float32Type, Int32Type:
		return 4
	case Float64Type, Int64Type:
		return 8
	default:
		return 1
	}
}

func (t *Tensor) String() string {
	return fmt.Sprintf("Tensor(dtype=%d, shape=%v, strides=%v, device=%d:%d)", t.dtype, t.shape, t.strides, t.device, t.deviceID)
}

// cTensor is a diffcoll_tensor_t in C memory for the duration of one call.
type cTensor struct {
	c capi.Diffcoll_tensor_t
	t *Tensor
}

func (t *Tensor) toC() cTensor {
	if t == nil {
		return cTensor{c: capi.SwigcptrDiffcoll_tensor_t(0)}
	}
	c := capi.NewDiffcoll_tensor_t()
	c.SetData(t.data)
	c.SetDtype(int(t.dtype))
	c.SetDevice_type(int(t.device))
	c.SetDevice_id(t.deviceID)
	c.SetNdim(len(t.shape))
	c.SetShape(t.shape)
	c.SetStrides(t.strides)
	return cTensor{c: c, t: t}
}

// free releases the descriptor and keeps the Go memory alive until here.
func (c cTensor) free() {
	if c.t != nil {
		capi.DeleteDiffcoll_tensor_t(c.c)
		runtime.KeepAlive(c.t)
		runtime.KeepAlive(c.t.keep)
	}
}
