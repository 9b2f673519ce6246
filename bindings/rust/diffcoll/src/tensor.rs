// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Tensor views of Rust slices (or raw device memory) with any shape and
//! element strides, used by the collectives in place with no copy.
use std::marker::PhantomData;

use diffcoll_sys as sys;

use crate::error::{Error, Result, Status};

/// Most dimensions a tensor can have.
pub const MAX_DIMS: usize = sys::DIFFCOLL_MAX_DIMS as usize;

/// Element types (`diffcoll_dtype_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// IEEE 754 binary16 ([`F16`]).
    Float16,
    /// bfloat16 ([`BF16`]).
    BFloat16,
    /// `f32`.
    Float32,
    /// `f64`.
    Float64,
    /// `i8`.
    Int8,
    /// `u8`.
    Uint8,
    /// `i32`.
    Int32,
    /// `i64`.
    Int64,
}

impl DType {
    /// The C value.
    pub fn code(self) -> i32 {
        (match self {
            DType::Float16 => sys::DIFFCOLL_FLOAT16,
            DType::BFloat16 => sys::DIFFCOLL_BFLOAT16,
            DType::Float32 => sys::DIFFCOLL_FLOAT32,
            DType::Float64 => sys::DIFFCOLL_FLOAT64,
            DType::Int8 => sys::DIFFCOLL_INT8,
            DType::Uint8 => sys::DIFFCOLL_UINT8,
            DType::Int32 => sys::DIFFCOLL_INT32,
            DType::Int64 => sys::DIFFCOLL_INT64,
        }) as i32
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Int8 | DType::Uint8 => 1,
            DType::Float16 | DType::BFloat16 => 2,
            DType::Float32 | DType::Int32 => 4,
            DType::Float64 | DType::Int64 => 8,
        }
    }
}

/// The bits of an IEEE 754 binary16 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct F16(pub u16);

/// The bits of a bfloat16 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct BF16(pub u16);

impl BF16 {
    /// Rounds an f32 to the nearest bfloat16 (ties to even; NaN stays NaN).
    pub fn from_f32(x: f32) -> BF16 {
        let bits = x.to_bits();
        if x.is_nan() {
            return BF16(((bits >> 16) as u16) | 0x40);
        }
        let round = 0x7fff + ((bits >> 16) & 1);
        BF16((bits.wrapping_add(round) >> 16) as u16)
    }

    /// The exact f32 value.
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

impl F16 {
    /// The exact f32 value.
    pub fn to_f32(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1f;
        let frac = h & 0x3ff;
        let bits = match (exp, frac) {
            (0, 0) => sign,
            (0, _) => {
                // subnormal: normalise
                let shift = frac.leading_zeros() - 21;
                sign | ((113 - shift) << 23) | (((frac << shift) & 0x3ff) << 13)
            }
            (31, 0) => sign | 0x7f80_0000,
            (31, _) => sign | 0x7fc0_0000 | (frac << 13),
            _ => sign | ((exp + 112) << 23) | (frac << 13),
        };
        f32::from_bits(bits)
    }

    /// Rounds an f32 to the nearest binary16 (ties to even).
    pub fn from_f32(x: f32) -> F16 {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        if x.is_nan() {
            return F16(sign | 0x7e00);
        }
        let a = x.abs();
        if a >= 65520.0 {
            return F16(sign | 0x7c00); // overflow to infinity
        }
        if a < 6.103_515_6e-5 {
            // subnormal (or zero): multiples of 2^-24
            let q = round_ties_even(a * 16_777_216.0);
            return F16(sign | q as u16);
        }
        let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
        let mant = bits & 0x7f_ffff;
        let mut h = ((exp as u32) << 10) | (mant >> 13);
        let rest = mant & 0x1fff;
        if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) {
            h += 1;
        }
        F16(sign | h as u16)
    }
}

/// `f32::round_ties_even` (Rust 1.77) for older toolchains.
fn round_ties_even(x: f32) -> f32 {
    let r = x.round(); // ties away from zero
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// A Rust type a tensor can be made of.
///
/// # Safety
/// `DTYPE` must describe the type's in-memory representation exactly.
pub unsafe trait Element: Copy + 'static {
    /// The matching element type.
    const DTYPE: DType;
}

unsafe impl Element for f32 {
    const DTYPE: DType = DType::Float32;
}
unsafe impl Element for f64 {
    const DTYPE: DType = DType::Float64;
}
unsafe impl Element for i8 {
    const DTYPE: DType = DType::Int8;
}
unsafe impl Element for u8 {
    const DTYPE: DType = DType::Uint8;
}
unsafe impl Element for i32 {
    const DTYPE: DType = DType::Int32;
}
unsafe impl Element for i64 {
    const DTYPE: DType = DType::Int64;
}
unsafe impl Element for F16 {
    const DTYPE: DType = DType::Float16;
}
unsafe impl Element for BF16 {
    const DTYPE: DType = DType::BFloat16;
}

/// Where a tensor lives (`diffcoll_device_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// Memory of the CUDA device with this ordinal.
    Cuda(i32),
}

fn contiguous(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut step = 1isize;
    for d in (0..shape.len()).rev() {
        strides[d] = step;
        step *= shape[d].max(1) as isize;
    }
    strides
}

/// Builds the descriptor of a view of `len` elements at `base`, checking that
/// every element lies inside the slice.
fn describe<T: Element>(
    op: &'static str,
    base: *const T,
    len: usize,
    offset: usize,
    shape: &[usize],
    strides: &[isize],
) -> Result<sys::diffcoll_tensor_t> {
    let bad = |msg: String| Error::new(Status::InvalidArgument, op, msg);
    if shape.len() != strides.len() {
        return Err(bad(format!(
            "{} dimensions but {} strides",
            shape.len(),
            strides.len()
        )));
    }
    if shape.len() > MAX_DIMS {
        return Err(bad(format!(
            "{} dimensions, at most {MAX_DIMS} are supported",
            shape.len()
        )));
    }
    let (mut lo, mut hi) = (offset as i128, offset as i128);
    let empty = shape.contains(&0);
    for (&n, &s) in shape.iter().zip(strides) {
        let span = (n as i128 - 1) * s as i128;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    if !empty && (lo < 0 || hi >= len as i128) {
        return Err(bad(format!(
            "shape {shape:?}, strides {strides:?} and offset {offset} reach elements {lo}..={hi} of a slice of {len}"
        )));
    }
    let mut raw = sys::diffcoll_tensor_t {
        data: std::ptr::null_mut(),
        dtype: T::DTYPE.code(),
        device_type: sys::DIFFCOLL_DEVICE_CPU as i32,
        device_id: 0,
        ndim: shape.len() as i32,
        shape: [0; MAX_DIMS],
        strides: [0; MAX_DIMS],
    };
    if len > 0 {
        // SAFETY: offset < len (checked above unless the view is empty, where
        // offset is only used as an address and must not exceed len).
        raw.data = unsafe { base.add(offset.min(len)) } as *mut std::ffi::c_void;
    }
    for d in 0..shape.len() {
        raw.shape[d] = shape[d] as i64;
        raw.strides[d] = strides[d] as i64;
    }
    Ok(raw)
}

fn permuted(raw: &sys::diffcoll_tensor_t, axes: &[usize]) -> Result<sys::diffcoll_tensor_t> {
    let n = raw.ndim as usize;
    let mut seen = [false; MAX_DIMS];
    if axes.len() != n
        || axes
            .iter()
            .any(|&a| a >= n || std::mem::replace(&mut seen[a], true))
    {
        return Err(Error::new(
            Status::InvalidArgument,
            "diffcoll::Tensor::permute",
            format!("{axes:?} is not a permutation of {n} axes"),
        ));
    }
    let mut out = *raw;
    for (i, &a) in axes.iter().enumerate() {
        out.shape[i] = raw.shape[a];
        out.strides[i] = raw.strides[a];
    }
    Ok(out)
}

fn sliced(
    raw: &sys::diffcoll_tensor_t,
    elem: usize,
    axis: usize,
    start: usize,
    stop: usize,
    step: usize,
) -> Result<sys::diffcoll_tensor_t> {
    let n = raw.ndim as usize;
    if axis >= n || step == 0 || start > stop || stop as i64 > raw.shape[axis] {
        return Err(Error::new(
            Status::InvalidArgument,
            "diffcoll::Tensor::slice",
            format!(
                "bad slice {start}..{stop} step {step} of axis {axis} of shape {:?}",
                &raw.shape[..n]
            ),
        ));
    }
    let mut out = *raw;
    if stop > start {
        let delta = start as isize * raw.strides[axis] as isize * elem as isize;
        out.data = (raw.data as *mut u8).wrapping_offset(delta) as *mut std::ffi::c_void;
    }
    let n = (stop - start + step - 1) / step; // usize::div_ceil needs Rust 1.73
    out.shape[axis] = n as i64;
    out.strides[axis] = raw.strides[axis] * step as i64;
    Ok(out)
}

fn elem_size(raw: &sys::diffcoll_tensor_t) -> usize {
    match raw.dtype as u32 {
        sys::DIFFCOLL_INT8 | sys::DIFFCOLL_UINT8 => 1,
        sys::DIFFCOLL_FLOAT16 | sys::DIFFCOLL_BFLOAT16 => 2,
        sys::DIFFCOLL_FLOAT32 | sys::DIFFCOLL_INT32 => 4,
        _ => 8,
    }
}

macro_rules! common_methods {
    () => {
        /// Extent of each dimension.
        pub fn shape(&self) -> Vec<usize> {
            self.raw.shape[..self.raw.ndim as usize]
                .iter()
                .map(|&s| s as usize)
                .collect()
        }

        /// Stride of each dimension, in elements.
        pub fn strides(&self) -> Vec<isize> {
            self.raw.strides[..self.raw.ndim as usize]
                .iter()
                .map(|&s| s as isize)
                .collect()
        }

        /// The C descriptor.
        pub fn as_raw(&self) -> &sys::diffcoll_tensor_t {
            &self.raw
        }

        /// The view with its dimensions reordered: dimension i of the result is
        /// dimension `axes[i]` (`permute(&[1, 0])` transposes a matrix).
        pub fn permute(self, axes: &[usize]) -> Result<Self> {
            Ok(Self {
                raw: permuted(&self.raw, axes)?,
                _data: PhantomData,
            })
        }

        /// The view of elements `start, start + step, ...` (before `stop`)
        /// along `axis`, like Python's `t[..., start:stop:step, ...]`.
        pub fn slice(self, axis: usize, start: usize, stop: usize, step: usize) -> Result<Self> {
            let elem = elem_size(&self.raw);
            Ok(Self {
                raw: sliced(&self.raw, elem, axis, start, stop, step)?,
                _data: PhantomData,
            })
        }
    };
}

/// A read-only tensor view (inputs: sends, gather inputs, ...).
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    raw: sys::diffcoll_tensor_t,
    _data: PhantomData<&'a [u8]>,
}

/// A writable tensor view (results are written into it in place).
#[derive(Debug)]
pub struct TensorMut<'a> {
    raw: sys::diffcoll_tensor_t,
    _data: PhantomData<&'a mut [u8]>,
}

// The views only carry the address of memory they borrow like & / &mut.
unsafe impl Send for TensorRef<'_> {}
unsafe impl Sync for TensorRef<'_> {}
unsafe impl Send for TensorMut<'_> {}

impl<'a> TensorRef<'a> {
    /// `data` as a C-contiguous (row-major) tensor of `shape`, whose product
    /// must be `data.len()`.
    pub fn new<T: Element>(data: &'a [T], shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::new(
                Status::InvalidArgument,
                "diffcoll::TensorRef::new",
                format!(
                    "shape {shape:?} does not hold the {} elements of the slice",
                    data.len()
                ),
            ));
        }
        Self::strided(data, 0, shape, &contiguous(shape))
    }

    /// `data` as a 1-D tensor.
    pub fn from_slice<T: Element>(data: &'a [T]) -> Self {
        Self::new(data, &[data.len()]).expect("a 1-D view of a whole slice is always valid")
    }

    /// The view whose element (i0, ..., in) is
    /// `data[offset + i0 * strides[0] + ... + in * strides[n]]`; every element
    /// must lie inside `data`.
    pub fn strided<T: Element>(
        data: &'a [T],
        offset: usize,
        shape: &[usize],
        strides: &[isize],
    ) -> Result<Self> {
        let raw = describe(
            "diffcoll::TensorRef::strided",
            data.as_ptr(),
            data.len(),
            offset,
            shape,
            strides,
        )?;
        Ok(TensorRef {
            raw,
            _data: PhantomData,
        })
    }

    /// A descriptor of memory the caller manages (e.g. CUDA device memory).
    ///
    /// # Safety
    /// The memory the descriptor reaches must be valid for reads for `'a`
    /// (until the stream reaches the operation, for CUDA memory).
    pub unsafe fn from_raw(raw: sys::diffcoll_tensor_t) -> Self {
        TensorRef {
            raw,
            _data: PhantomData,
        }
    }

    common_methods!();
}

impl<'a> TensorMut<'a> {
    /// `data` as a C-contiguous (row-major) tensor of `shape`, whose product
    /// must be `data.len()`.
    pub fn new<T: Element>(data: &'a mut [T], shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::new(
                Status::InvalidArgument,
                "diffcoll::TensorMut::new",
                format!(
                    "shape {shape:?} does not hold the {} elements of the slice",
                    data.len()
                ),
            ));
        }
        Self::strided(data, 0, shape, &contiguous(shape))
    }

    /// `data` as a 1-D tensor.
    pub fn from_slice<T: Element>(data: &'a mut [T]) -> Self {
        let n = data.len();
        Self::new(data, &[n]).expect("a 1-D view of a whole slice is always valid")
    }

    /// The view whose element (i0, ..., in) is
    /// `data[offset + i0 * strides[0] + ... + in * strides[n]]`; every element
    /// must lie inside `data`. Overlapping views (e.g. a zero stride) are
    /// rejected by the library when written to.
    pub fn strided<T: Element>(
        data: &'a mut [T],
        offset: usize,
        shape: &[usize],
        strides: &[isize],
    ) -> Result<Self> {
        let raw = describe(
            "diffcoll::TensorMut::strided",
            data.as_mut_ptr(),
            data.len(),
            offset,
            shape,
            strides,
        )?;
        Ok(TensorMut {
            raw,
            _data: PhantomData,
        })
    }

    /// A descriptor of memory the caller manages (e.g. CUDA device memory).
    ///
    /// # Safety
    /// The memory the descriptor reaches must be valid for reads and writes,
    /// and not otherwise accessed, for `'a` (until the stream reaches the
    /// operation, for CUDA memory).
    pub unsafe fn from_raw(raw: sys::diffcoll_tensor_t) -> Self {
        TensorMut {
            raw,
            _data: PhantomData,
        }
    }

    /// A read-only view of the same elements, borrowing this one.
    pub fn as_ref(&self) -> TensorRef<'_> {
        TensorRef {
            raw: self.raw,
            _data: PhantomData,
        }
    }

    /// A shorter-lived writable view of the same elements.
    pub fn reborrow(&mut self) -> TensorMut<'_> {
        TensorMut {
            raw: self.raw,
            _data: PhantomData,
        }
    }

    common_methods!();
}

/// A raw descriptor for [`TensorRef::from_raw`] / [`TensorMut::from_raw`].
pub fn raw_descriptor(
    data: *mut std::ffi::c_void,
    dtype: DType,
    device: Device,
    shape: &[usize],
    strides: Option<&[isize]>,
) -> Result<sys::diffcoll_tensor_t> {
    let strides = strides
        .map(<[isize]>::to_vec)
        .unwrap_or_else(|| contiguous(shape));
    if shape.len() > MAX_DIMS || strides.len() != shape.len() {
        return Err(Error::new(
            Status::InvalidArgument,
            "diffcoll::raw_descriptor",
            format!("shape {shape:?} / strides {strides:?}: bad number of dimensions"),
        ));
    }
    let (device_type, device_id) = match device {
        Device::Cpu => (sys::DIFFCOLL_DEVICE_CPU as i32, 0),
        Device::Cuda(id) => (sys::DIFFCOLL_DEVICE_CUDA as i32, id),
    };
    let mut raw = sys::diffcoll_tensor_t {
        data,
        dtype: dtype.code(),
        device_type,
        device_id,
        ndim: shape.len() as i32,
        shape: [0; MAX_DIMS],
        strides: [0; MAX_DIMS],
    };
    for d in 0..shape.len() {
        raw.shape[d] = shape[d] as i64;
        raw.strides[d] = strides[d] as i64;
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views() {
        let mut v = vec![0f32; 12];
        let t = TensorMut::new(&mut v, &[3, 4]).unwrap();
        assert_eq!(t.strides(), vec![4, 1]);
        let t = t.permute(&[1, 0]).unwrap();
        assert_eq!((t.shape(), t.strides()), (vec![4, 3], vec![1, 4]));
        let s = t.slice(0, 1, 4, 2).unwrap();
        assert_eq!((s.shape(), s.strides()), (vec![2, 3], vec![2, 4]));
        assert_eq!(s.as_raw().data as usize, v.as_ptr() as usize + 4);
    }

    #[test]
    fn bounds_are_checked() {
        let v = vec![0i32; 12];
        assert!(TensorRef::new(&v, &[5, 3]).is_err());
        assert!(TensorRef::strided(&v, 2, &[3, 4], &[4, 1]).is_err());
        assert!(TensorRef::strided(&v, 11, &[3, 4], &[-4, -1]).is_ok());
        assert!(TensorRef::strided(&v, 0, &[1; 9], &[1; 9]).is_err());
        let e = TensorRef::strided(&v, 0, &[0, 4], &[100, 1]).unwrap();
        assert_eq!(e.shape(), vec![0, 4]);
    }

    #[test]
    fn half_conversions() {
        for x in [0.0f32, 1.0, -2.5, 65504.0, 6.1035156e-5, 5.9604645e-8, 0.5] {
            assert_eq!(F16::from_f32(x).to_f32(), x, "{x}");
        }
        assert_eq!(F16::from_f32(1.0).0, 0x3c00);
        assert!(F16::from_f32(f32::NAN).to_f32().is_nan());
        assert_eq!(F16::from_f32(1e6).to_f32(), f32::INFINITY);
        assert_eq!(BF16::from_f32(1.0).0, 0x3f80);
        assert_eq!(BF16::from_f32(3.0).to_f32(), 3.0);
    }
}
