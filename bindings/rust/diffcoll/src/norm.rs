// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! GroupNorm of spatially split activations and the fused all-reduce +
//! residual add + RMSNorm of tensor-parallel blocks.
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use diffcoll_sys as sys;

use crate::comm::{to_i32, Comm};
use crate::error::{check, Error, Result, Status};
use crate::tensor::{DType, TensorMut, TensorRef};

/// The input and output of an operation that may also run in place, or
/// leave either out where the C function accepts NULL (the residual and
/// `residual_out` of [`FusedNormWorkspace::apply`]).
#[derive(Debug)]
pub enum InOut<'a> {
    /// Neither.
    None,
    /// Only the input (read).
    In(TensorRef<'a>),
    /// Only the output (written).
    Out(TensorMut<'a>),
    /// Read the input, write the output (which must not overlap it).
    Both(TensorRef<'a>, TensorMut<'a>),
    /// Read and overwrite one tensor.
    InPlace(TensorMut<'a>),
}

impl InOut<'_> {
    /// The (input, output) descriptors, NULL where absent.
    fn raw(&self) -> (*const sys::diffcoll_tensor_t, *const sys::diffcoll_tensor_t) {
        match self {
            InOut::None => (ptr::null(), ptr::null()),
            InOut::In(i) => (i.as_raw(), ptr::null()),
            InOut::Out(o) => (ptr::null(), o.as_raw()),
            InOut::Both(i, o) => (i.as_raw(), o.as_raw()),
            InOut::InPlace(t) => (t.as_raw(), t.as_raw()),
        }
    }
}

fn opt(t: Option<&TensorRef<'_>>) -> *const sys::diffcoll_tensor_t {
    t.map_or(ptr::null(), |t| t.as_raw() as *const _)
}

impl Comm {
    /// GroupNorm of an activation split over the ranks along any dimension
    /// but the channels (dimension 1 of `[N, C, ...]`): the statistics of each
    /// (sample, group) are those of the whole activation. `tensors` is
    /// [`InOut::Both`]`(input, output)` or [`InOut::InPlace`]; `weight` and
    /// `bias` are `[C]` (of the input's dtype or f32) or `None` (1 and 0);
    /// `num_groups` divides C. Collective.
    pub fn group_norm(
        &self,
        tensors: InOut<'_>,
        weight: Option<&TensorRef<'_>>,
        bias: Option<&TensorRef<'_>>,
        num_groups: usize,
        eps: f64,
    ) -> Result<()> {
        const OP: &str = "diffcoll_group_norm";
        let (input, output) = tensors.raw();
        // SAFETY: self is live; the descriptors borrow their memory for the call.
        check(OP, unsafe {
            sys::diffcoll_group_norm(
                self.as_raw(),
                input,
                output,
                opt(weight),
                opt(bias),
                to_i32(OP, "num_groups", num_groups)?,
                eps,
                self.stream(),
            )
        })
    }
}

/// How [`FusedNormWorkspace::apply`] runs on CUDA tensors
/// (`diffcoll_fused_norm_path_t`); host tensors always take the host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FusedNormPath {
    /// Chosen by message size.
    #[default]
    Auto,
    /// One kernel reading every peer's x through NVLink.
    OneShot,
    /// One kernel: reduce-scatter + all-gather.
    TwoShot,
    /// NCCL all-reduce, then one residual + RMSNorm kernel.
    Nccl,
}

impl FusedNormPath {
    /// The C value.
    pub fn code(self) -> i32 {
        (match self {
            FusedNormPath::Auto => sys::DIFFCOLL_FUSED_NORM_AUTO,
            FusedNormPath::OneShot => sys::DIFFCOLL_FUSED_NORM_ONE_SHOT,
            FusedNormPath::TwoShot => sys::DIFFCOLL_FUSED_NORM_TWO_SHOT,
            FusedNormPath::Nccl => sys::DIFFCOLL_FUSED_NORM_NCCL,
        }) as i32
    }
}

/// The resources of the fused all-reduce + residual add + RMSNorm on one
/// communicator, which it borrows. Destroyed when dropped (collective on a
/// communicator with a device side).
#[derive(Debug)]
pub struct FusedNormWorkspace<'c> {
    raw: NonNull<sys::diffcoll_fused_norm_workspace_t>,
    comm: &'c Comm,
    // Like its communicator, a workspace is used by one thread at a time.
    _not_sync: PhantomData<*mut ()>,
}

impl<'c> FusedNormWorkspace<'c> {
    /// Creates a workspace for calls of at most `max_tokens` rows of at most
    /// `max_hidden` elements of `dtype` (F16, BF16 or F32) or narrower.
    /// Collective over `comm`, with the same limits on every rank.
    pub fn new(comm: &'c Comm, max_tokens: usize, max_hidden: usize, dtype: DType) -> Result<Self> {
        const OP: &str = "diffcoll_fused_norm_workspace_create";
        let limit = |what: &str, v: usize| {
            i64::try_from(v).map_err(|_| {
                Error::new(
                    Status::InvalidArgument,
                    OP,
                    format!("{what} {v} is too large"),
                )
            })
        };
        let mut out = ptr::null_mut();
        // SAFETY: comm is live; out is valid.
        check(OP, unsafe {
            sys::diffcoll_fused_norm_workspace_create(
                comm.as_raw(),
                limit("max_tokens", max_tokens)?,
                limit("max_hidden", max_hidden)?,
                dtype.code(),
                &mut out,
            )
        })?;
        let raw = NonNull::new(out)
            .ok_or_else(|| Error::new(Status::Internal, OP, "the library returned no workspace"))?;
        Ok(FusedNormWorkspace {
            raw,
            comm,
            _not_sync: PhantomData,
        })
    }

    /// The communicator the workspace reduces over.
    pub fn comm(&self) -> &Comm {
        self.comm
    }

    /// `residual_out = allreduce_sum(x) + residual`,
    /// `y = residual_out / sqrt(mean(residual_out^2) + eps) * weight`, rows
    /// of the last dimension, arithmetic in f32. Collective.
    ///
    /// * `x_y`: [`InOut::Both`]`(x, y)` or [`InOut::InPlace`] (y over x);
    /// * `residual`: [`InOut::None`] (adds nothing, stores nothing),
    ///   `In(residual)`, `Out(residual_out)`, `Both(residual, residual_out)`
    ///   or `InPlace` (the residual stream updated);
    /// * `weight`: `[hidden]` or `None` (1).
    ///
    /// Every tensor is contiguous, of one dtype and device. On CUDA tensors
    /// the call is enqueued on the communicator's stream.
    pub fn apply(
        &mut self,
        x_y: InOut<'_>,
        residual: InOut<'_>,
        weight: Option<&TensorRef<'_>>,
        eps: f32,
        path: FusedNormPath,
    ) -> Result<()> {
        let (x, y) = x_y.raw();
        let (res, res_out) = residual.raw();
        let mut options = sys::diffcoll_fused_norm_options_init();
        options.path = path.code();
        // SAFETY: the workspace is live; the descriptors borrow their memory
        // for the call.
        check("diffcoll_fused_norm", unsafe {
            sys::diffcoll_fused_norm(
                self.raw.as_ptr(),
                x,
                res,
                opt(weight),
                eps,
                y,
                res_out,
                &options,
                self.comm.stream(),
            )
        })
    }
}

impl Drop for FusedNormWorkspace<'_> {
    fn drop(&mut self) {
        // SAFETY: self.raw is live and owned; the communicator is still alive
        // (borrowed by the workspace).
        unsafe {
            sys::diffcoll_fused_norm_workspace_destroy(self.raw.as_ptr());
        }
    }
}
