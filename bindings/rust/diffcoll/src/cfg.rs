// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Classifier-free guidance (CFG) policies (docs/CFG.md).
use std::ffi::{c_void, CStr, CString};
use std::ptr::{self, NonNull};

use diffcoll_sys as sys;

use crate::comm::Comm;
use crate::error::{check, Error, Result, Status};
use crate::tensor::{TensorMut, TensorRef};

/// What a guidance branch is (`diffcoll_cfg_role_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CfgRole {
    /// Conditional prediction (the prompt). Post-processing needs exactly one.
    Cond,
    /// Unconditional / negative-prompt prediction. CFG-zero* needs exactly one.
    Uncond,
    /// Perturbed prediction, e.g. spatio-temporal guidance skipping layers.
    Perturbed,
    /// Prediction with one modality dropped (image-only, audio-only, ...).
    Modality,
    /// Any other branch.
    Other,
}

impl CfgRole {
    /// The C value.
    pub fn code(self) -> i32 {
        (match self {
            CfgRole::Cond => sys::DIFFCOLL_CFG_COND,
            CfgRole::Uncond => sys::DIFFCOLL_CFG_UNCOND,
            CfgRole::Perturbed => sys::DIFFCOLL_CFG_PERTURBED,
            CfgRole::Modality => sys::DIFFCOLL_CFG_MODALITY,
            CfgRole::Other => sys::DIFFCOLL_CFG_OTHER,
        }) as i32
    }

    /// The role of a C value (None if unknown).
    pub fn from_code(code: i32) -> Option<CfgRole> {
        Some(match code as u32 {
            sys::DIFFCOLL_CFG_COND => CfgRole::Cond,
            sys::DIFFCOLL_CFG_UNCOND => CfgRole::Uncond,
            sys::DIFFCOLL_CFG_PERTURBED => CfgRole::Perturbed,
            sys::DIFFCOLL_CFG_MODALITY => CfgRole::Modality,
            sys::DIFFCOLL_CFG_OTHER => CfgRole::Other,
            _ => return None,
        })
    }
}

/// Arithmetic order of a combine (`diffcoll_cfg_order_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CfgOrder {
    /// As written, in f32, rounded once to the dtype.
    #[default]
    Serial,
    /// A weighted sum rounded after every operation, in branch order: what the
    /// parallel combine computes, so that serial and parallel results agree
    /// bit for bit (e.g. two ranks with one branch each).
    Parallel,
    /// What PyTorch eager computes for the formula written in Python: every
    /// operation in f32 and rounded to the dtype, post-processing as the
    /// engines' code (docs/CFG.md); bitwise equal across ranks.
    Torch,
}

/// Options of a policy (`diffcoll_cfg_options_t`); the default is SERIAL
/// order without post-processing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CfgOptions {
    /// Arithmetic order.
    pub order: CfgOrder,
    /// CFG-zero* (needs one COND and one UNCOND branch).
    pub zero_star: bool,
    /// Guidance rescale strength in [0, 1]; 0: off.
    pub rescale_phi: f64,
    /// CFG normalization bound; 0: off.
    pub norm_k: f64,
    /// CFG normalization per sample instead of over the whole tensor.
    pub norm_per_sample: bool,
    /// The output is zeros while the step is below this.
    pub zero_init_steps: u32,
}

impl CfgOptions {
    fn raw(&self) -> sys::diffcoll_cfg_options_t {
        let mut o = sys::diffcoll_cfg_options_init();
        o.order = match self.order {
            CfgOrder::Serial => sys::DIFFCOLL_CFG_ORDER_SERIAL,
            CfgOrder::Parallel => sys::DIFFCOLL_CFG_ORDER_PARALLEL,
            CfgOrder::Torch => sys::DIFFCOLL_CFG_ORDER_TORCH,
        } as i32;
        o.zero_star = self.zero_star as i32;
        o.rescale_phi = self.rescale_phi;
        o.norm_k = self.norm_k;
        o.norm_per_sample = self.norm_per_sample as i32;
        o.zero_init_steps = i32::try_from(self.zero_init_steps).unwrap_or(i32::MAX);
        o
    }
}

/// One guidance term: `scale * (pred[plus] - pred[minus])`, branches by index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CfgTerm {
    /// Guidance scale.
    pub scale: f64,
    /// Index of the branch added.
    pub plus: usize,
    /// Index of the branch subtracted.
    pub minus: usize,
}

fn to_i32(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::new(
            Status::InvalidArgument,
            op,
            format!("{what} {v} is too large"),
        )
    })
}

/// A CFG policy: branches, a base branch and guidance terms,
/// `out = pred[base] + sum_k scale_k * (pred[plus_k] - pred[minus_k])`,
/// with optional post-processing. Destroyed when dropped.
///
/// A policy is immutable: it is `Send` and `Sync`, and may serve several
/// threads (e.g. the ranks of a CFG group that are threads of one process).
///
/// ```no_run
/// use diffcoll::{CfgOptions, CfgOrder, CfgPolicy};
/// let policy = CfgPolicy::standard(7.5, &CfgOptions { order: CfgOrder::Parallel, ..Default::default() })?;
/// assert_eq!(policy.weights()?, vec![7.5, -6.5]);
/// # Ok::<(), diffcoll::Error>(())
/// ```
#[derive(Debug)]
pub struct CfgPolicy {
    raw: NonNull<sys::diffcoll_cfg_policy_t>,
    n: usize,
}

// SAFETY: the library documents policies as immutable and thread-safe.
unsafe impl Send for CfgPolicy {}
unsafe impl Sync for CfgPolicy {}

impl CfgPolicy {
    /// Creates a policy from `(name, role)` branches, the index of the base
    /// branch and the guidance terms (local, not collective). Bad indices,
    /// duplicate or empty names, options out of range and post-processing
    /// without its branch give [`Status::InvalidArgument`].
    pub fn new(
        branches: &[(&str, CfgRole)],
        base: usize,
        terms: &[CfgTerm],
        options: &CfgOptions,
    ) -> Result<CfgPolicy> {
        const OP: &str = "diffcoll_cfg_policy_create";
        let names = branches
            .iter()
            .map(|(name, _)| {
                CString::new(*name).map_err(|_| {
                    Error::new(
                        Status::InvalidArgument,
                        OP,
                        format!("branch name {name:?} contains a NUL byte"),
                    )
                })
            })
            .collect::<Result<Vec<CString>>>()?;
        let raw_branches: Vec<sys::diffcoll_cfg_branch_t> = names
            .iter()
            .zip(branches)
            .map(|(name, (_, role))| sys::diffcoll_cfg_branch_t {
                name: name.as_ptr(),
                role: role.code(),
            })
            .collect();
        let raw_terms = terms
            .iter()
            .map(|t| {
                Ok(sys::diffcoll_cfg_term_t {
                    scale: t.scale,
                    plus: to_i32(OP, "plus", t.plus)?,
                    minus: to_i32(OP, "minus", t.minus)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = options.raw();
        let mut out = ptr::null_mut();
        // SAFETY: the arrays hold their counts of valid structs; the names
        // live in `names` until after the call (the policy copies them).
        check(OP, unsafe {
            sys::diffcoll_cfg_policy_create(
                raw_branches.as_ptr(),
                to_i32(OP, "branch count", raw_branches.len())?,
                to_i32(OP, "base", base)?,
                if raw_terms.is_empty() {
                    ptr::null()
                } else {
                    raw_terms.as_ptr()
                },
                to_i32(OP, "term count", raw_terms.len())?,
                &opts,
                &mut out,
            )
        })?;
        let raw = NonNull::new(out)
            .ok_or_else(|| Error::new(Status::Internal, OP, "the library returned no policy"))?;
        Ok(CfgPolicy {
            raw,
            n: branches.len(),
        })
    }

    /// Standard CFG, `uncond + scale * (cond - uncond)`: branch 0 is `"cond"`
    /// ([`CfgRole::Cond`]), branch 1 `"uncond"` ([`CfgRole::Uncond`]).
    pub fn standard(scale: f64, options: &CfgOptions) -> Result<CfgPolicy> {
        CfgPolicy::new(
            &[("cond", CfgRole::Cond), ("uncond", CfgRole::Uncond)],
            1,
            &[CfgTerm {
                scale,
                plus: 0,
                minus: 1,
            }],
            options,
        )
    }

    /// The raw handle (still owned by this policy).
    pub fn as_raw(&self) -> *const sys::diffcoll_cfg_policy_t {
        self.raw.as_ptr()
    }

    /// Number of branches.
    pub fn num_branches(&self) -> usize {
        self.n
    }

    /// Name and role of branch `index`.
    pub fn branch(&self, index: usize) -> Result<(String, CfgRole)> {
        const OP: &str = "diffcoll_cfg_policy_branch";
        let mut name: *const std::os::raw::c_char = ptr::null();
        let mut role = 0i32;
        // SAFETY: self.raw is live; the out-pointers are valid.
        check(OP, unsafe {
            sys::diffcoll_cfg_policy_branch(
                self.raw.as_ptr(),
                to_i32(OP, "index", index)?,
                &mut name,
                &mut role,
            )
        })?;
        // SAFETY: the name is owned by the policy, which outlives this copy.
        let name = if name.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        };
        let role = CfgRole::from_code(role)
            .ok_or_else(|| Error::new(Status::Internal, OP, format!("unknown role {role}")))?;
        Ok((name, role))
    }

    /// Index of the branch called `name` ([`Status::InvalidArgument`], with a
    /// message listing the branches, if there is none).
    pub fn index(&self, name: &str) -> Result<usize> {
        const OP: &str = "diffcoll_cfg_policy_find_branch";
        let c = CString::new(name)
            .map_err(|_| Error::new(Status::InvalidArgument, OP, "the name contains a NUL byte"))?;
        let mut index = -1i32;
        // SAFETY: self.raw is live; c and index are valid.
        check(OP, unsafe {
            sys::diffcoll_cfg_policy_find_branch(self.raw.as_ptr(), c.as_ptr(), &mut index)
        })?;
        Ok(index as usize)
    }

    /// The linear weights `w_i` of `out = sum_i w_i * pred_i` (before CFG-zero*).
    pub fn weights(&self) -> Result<Vec<f64>> {
        const OP: &str = "diffcoll_cfg_policy_weights";
        let mut w = vec![0f64; self.n];
        // SAFETY: w holds n doubles.
        check(OP, unsafe {
            sys::diffcoll_cfg_policy_weights(
                self.raw.as_ptr(),
                w.as_mut_ptr(),
                to_i32(OP, "count", self.n)?,
            )
        })?;
        Ok(w)
    }

    /// The policy's options.
    pub fn options(&self) -> Result<CfgOptions> {
        let mut o = sys::diffcoll_cfg_options_init();
        // SAFETY: o is valid with struct_size set.
        check("diffcoll_cfg_policy_get_options", unsafe {
            sys::diffcoll_cfg_policy_get_options(self.raw.as_ptr(), &mut o)
        })?;
        Ok(CfgOptions {
            order: if o.order == sys::DIFFCOLL_CFG_ORDER_PARALLEL as i32 {
                CfgOrder::Parallel
            } else if o.order == sys::DIFFCOLL_CFG_ORDER_TORCH as i32 {
                CfgOrder::Torch
            } else {
                CfgOrder::Serial
            },
            zero_star: o.zero_star != 0,
            rescale_phi: o.rescale_phi,
            norm_k: o.norm_k,
            norm_per_sample: o.norm_per_sample != 0,
            zero_init_steps: o.zero_init_steps.max(0) as u32,
        })
    }

    /// The branch indices (ascending) that CFG rank `rank` of a CFG group of
    /// `degree` ranks runs. May be empty: that rank still joins
    /// [`Comm::cfg_combine`], with no predictions.
    pub fn dispatch(&self, degree: usize, rank: usize) -> Result<Vec<usize>> {
        const OP: &str = "diffcoll_cfg_dispatch";
        let mut idx = vec![0i32; self.n];
        let mut count = 0i32;
        // SAFETY: idx has room for n indices (a rank never runs more).
        check(OP, unsafe {
            sys::diffcoll_cfg_dispatch(
                self.raw.as_ptr(),
                to_i32(OP, "degree", degree)?,
                to_i32(OP, "rank", rank)?,
                idx.as_mut_ptr(),
                to_i32(OP, "capacity", self.n)?,
                &mut count,
            )
        })?;
        Ok(idx[..count as usize].iter().map(|&i| i as usize).collect())
    }

    /// Combines every branch's prediction (`preds`, in branch order: f16,
    /// bf16 or f32, the shape and dtype of `out`, any strides) into `out` on
    /// this thread. `step` is the denoising step (for `zero_init_steps`).
    /// CUDA tensors use the legacy default stream (see
    /// [`CfgPolicy::combine_serial_on_stream`]).
    pub fn combine_serial(
        &self,
        preds: &[TensorRef<'_>],
        out: &mut TensorMut<'_>,
        step: u32,
    ) -> Result<()> {
        // SAFETY: the null stream is the legacy default stream.
        unsafe { self.combine_serial_on_stream(preds, out, step, ptr::null_mut()) }
    }

    /// [`CfgPolicy::combine_serial`] with CUDA tensors enqueued on `stream`
    /// (ignored for host tensors).
    ///
    /// # Safety
    /// `stream` must be null or a stream of the tensors' CUDA device that
    /// outlives the operation.
    pub unsafe fn combine_serial_on_stream(
        &self,
        preds: &[TensorRef<'_>],
        out: &mut TensorMut<'_>,
        step: u32,
        stream: *mut c_void,
    ) -> Result<()> {
        const OP: &str = "diffcoll_cfg_combine_serial";
        let raw: Vec<sys::diffcoll_tensor_t> = preds.iter().map(|t| *t.as_raw()).collect();
        // SAFETY: the descriptors borrow their memory (shared, exclusive for
        // out) for the duration of the call.
        check(OP, unsafe {
            sys::diffcoll_cfg_combine_serial(
                self.raw.as_ptr(),
                if raw.is_empty() {
                    ptr::null()
                } else {
                    raw.as_ptr()
                },
                to_i32(OP, "count", raw.len())?,
                out.as_raw(),
                i32::try_from(step).unwrap_or(i32::MAX),
                stream,
            )
        })
    }
}

impl Drop for CfgPolicy {
    fn drop(&mut self) {
        // SAFETY: self.raw is live and owned; nothing borrows it any more.
        unsafe {
            sys::diffcoll_cfg_policy_destroy(self.raw.as_ptr());
        }
    }
}

impl Comm {
    /// Combines CFG predictions spread over the ranks of this communicator
    /// (the CFG group: its size is the CFG degree, its rank the CFG rank)
    /// into every rank's `out`. `local` holds this rank's predictions for the
    /// branches `policy.dispatch(self.size(), self.rank())` lists, in that
    /// order (empty for a rank without branches). Collective: every rank
    /// passes the same policy, shape, dtype and step. With
    /// [`CfgOrder::Parallel`] the result equals
    /// [`CfgPolicy::combine_serial`] bit for bit in the cases docs/CFG.md
    /// lists (e.g. two ranks with one branch each).
    pub fn cfg_combine(
        &self,
        policy: &CfgPolicy,
        local: &[TensorRef<'_>],
        out: &mut TensorMut<'_>,
        step: u32,
    ) -> Result<()> {
        const OP: &str = "diffcoll_cfg_combine_parallel";
        let raw: Vec<sys::diffcoll_tensor_t> = local.iter().map(|t| *t.as_raw()).collect();
        // SAFETY: self and the policy are live; the descriptors borrow their
        // memory for the duration of the call.
        check(OP, unsafe {
            sys::diffcoll_cfg_combine_parallel(
                self.as_raw(),
                policy.as_raw(),
                if raw.is_empty() {
                    ptr::null()
                } else {
                    raw.as_ptr()
                },
                to_i32(OP, "count", raw.len())?,
                out.as_raw(),
                i32::try_from(step).unwrap_or(i32::MAX),
                self.stream(),
            )
        })
    }
}
