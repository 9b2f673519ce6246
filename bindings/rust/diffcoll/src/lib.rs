// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Safe Rust API of diffcoll, the communication layer of multi-GPU diffusion
//! inference (over the raw declarations of `diffcoll-sys`).
//!
//! * [`Comm`]: communicators, destroyed on drop, with every collective;
//! * [`TensorRef`] / [`TensorMut`]: views of slices with any shape and element
//!   strides (transposed, sliced, reversed), used in place with no copy;
//! * [`CfgPolicy`]: classifier-free guidance policies, with serial and
//!   CFG-parallel ([`Comm::cfg_combine`]) combines;
//! * [`HaloPlan`]: halo exchange of spatially split activations, with
//!   [`split_extent`] and [`Comm::gather_slabs`];
//! * [`Comm::group_norm`] and [`FusedNormWorkspace`]: GroupNorm of split
//!   activations, fused all-reduce + residual add + RMSNorm;
//! * [`Comm::ulysses_all_to_all`], [`Ring`] and [`UspMesh`]: sequence
//!   parallelism (Ulysses, ring attention, USP process meshes), with
//!   [`Comm::ulysses_all_to_all_with`] for grouped-query k/v heads sent once
//!   ([`ulysses_kv_heads`]) and FP8 transport ([`WireFormat`], also
//!   [`Comm::all_gather_with`]);
//! * [`Error`]: the status and the library's message of a failed call.
//!
//! ```no_run
//! use diffcoll::{Comm, Config, ReduceOp, TensorMut};
//!
//! std::thread::scope(|s| {
//!     for rank in 0..2 {
//!         s.spawn(move || -> diffcoll::Result<()> {
//!             let comm = Comm::create("local://doc", rank, 2, &Config::default())?;
//!             let mut x = vec![rank as f32 + 1.0; 4];
//!             comm.all_reduce(&mut TensorMut::from_slice(&mut x), ReduceOp::Sum)?;
//!             assert_eq!(x, [3.0; 4]);
//!             Ok(())
//!         });
//!     }
//! });
//! ```
//!
//! Linking needs libdiffcoll: set `DIFFCOLL_LIB_DIR` to its directory unless
//! it is installed system-wide (and `LD_LIBRARY_PATH` to run).
#![warn(missing_docs)]

mod cfg;
mod comm;
mod error;
mod halo;
mod norm;
mod sp;
mod tensor;

pub use cfg::{CfgOptions, CfgOrder, CfgPolicy, CfgRole, CfgTerm};
pub use comm::{Comm, Config, P2pGroup, ReduceOp, Stats, SPLIT_NOCOLOR};
pub use error::{Error, Result, Status};
pub use halo::{split_extent, HaloBoundary, HaloConfig, HaloPlan};
pub use norm::{FusedNormPath, FusedNormWorkspace, InOut};
pub use sp::{
    ulysses_kv_heads, AllGatherOptions, Ring, UlyssesDirection, UlyssesOptions, UspDegrees,
    UspMesh, WireFormat,
};
pub use tensor::{
    raw_descriptor, DType, Device, Element, TensorMut, TensorRef, BF16, F16, MAX_DIMS,
};

/// The raw declarations (`diffcoll-sys`).
pub use diffcoll_sys as sys;

/// The version of the loaded library as (major, minor, patch).
pub fn version() -> (u32, u32, u32) {
    // SAFETY: no arguments; thread-safe.
    let v = unsafe { sys::diffcoll_version() };
    (v / 10000, v / 100 % 100, v % 100)
}
