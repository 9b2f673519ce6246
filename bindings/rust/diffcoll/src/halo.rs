// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Halo exchange and slabs for spatially parallel decoding (docs/HALO.md).
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::{self, NonNull};

use diffcoll_sys as sys;

use crate::comm::Comm;
use crate::error::{check, Error, Result, Status};
use crate::tensor::{TensorMut, TensorRef};

/// How the halo beyond an end of the rank grid is filled
/// (`diffcoll_halo_boundary_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HaloBoundary {
    /// Zeros (a convolution's zero padding).
    #[default]
    Zeros,
    /// Copies of the edge row (torch's 'replicate').
    Replicate,
    /// Rows next to the edge, mirrored, the edge not repeated (torch's 'reflect').
    Reflect,
    /// Wrap around (torch's 'circular'); must be set at both ends of an axis.
    Circular,
    /// Leave the halo memory as it is.
    Untouched,
}

impl HaloBoundary {
    /// The C value.
    pub fn code(self) -> i32 {
        (match self {
            HaloBoundary::Zeros => sys::DIFFCOLL_HALO_ZEROS,
            HaloBoundary::Replicate => sys::DIFFCOLL_HALO_REPLICATE,
            HaloBoundary::Reflect => sys::DIFFCOLL_HALO_REFLECT,
            HaloBoundary::Circular => sys::DIFFCOLL_HALO_CIRCULAR,
            HaloBoundary::Untouched => sys::DIFFCOLL_HALO_UNTOUCHED,
        }) as i32
    }
}

/// Geometry of a halo exchange (`diffcoll_halo_config_t`). The default is
/// `DIFFCOLL_HALO_CONFIG_INIT`: a 1-D chain over all ranks along dimension
/// -2, one halo row on each side, zero boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaloConfig {
    /// Ranks along the row axis; 0: the communicator's size / `grid_cols`.
    pub grid_rows: usize,
    /// Ranks along the col axis (1 for a 1-D chain). The grid is row-major
    /// over the ranks: rank = row * grid_cols + col.
    pub grid_cols: usize,
    /// Tensor dimension split by the rows; negative counts from the end.
    pub row_axis: i32,
    /// Tensor dimension split by the cols; negative counts from the end.
    pub col_axis: i32,
    /// Halo rows before the interior along the row axis.
    pub row_before: usize,
    /// Halo rows after the interior along the row axis.
    pub row_after: usize,
    /// Halo rows before the interior along the col axis.
    pub col_before: usize,
    /// Halo rows after the interior along the col axis.
    pub col_after: usize,
    /// Boundary before the first grid row.
    pub row_boundary_before: HaloBoundary,
    /// Boundary after the last grid row.
    pub row_boundary_after: HaloBoundary,
    /// Boundary before the first grid column.
    pub col_boundary_before: HaloBoundary,
    /// Boundary after the last grid column.
    pub col_boundary_after: HaloBoundary,
    /// Fill the corner blocks of a 2-D halo.
    pub exchange_corners: bool,
}

impl Default for HaloConfig {
    fn default() -> Self {
        HaloConfig {
            grid_rows: 0,
            grid_cols: 1,
            row_axis: -2,
            col_axis: -1,
            row_before: 1,
            row_after: 1,
            col_before: 0,
            col_after: 0,
            row_boundary_before: HaloBoundary::Zeros,
            row_boundary_after: HaloBoundary::Zeros,
            col_boundary_before: HaloBoundary::Zeros,
            col_boundary_after: HaloBoundary::Zeros,
            exchange_corners: true,
        }
    }
}

impl HaloConfig {
    /// This config with halo widths `before` and `after` along the row axis.
    pub fn rows(mut self, before: usize, after: usize) -> Self {
        self.row_before = before;
        self.row_after = after;
        self
    }

    /// This config with `boundary` at both ends of the row axis.
    pub fn row_boundary(mut self, boundary: HaloBoundary) -> Self {
        self.row_boundary_before = boundary;
        self.row_boundary_after = boundary;
        self
    }

    /// This config with `boundary` at both ends of the col axis.
    pub fn col_boundary(mut self, boundary: HaloBoundary) -> Self {
        self.col_boundary_before = boundary;
        self.col_boundary_after = boundary;
        self
    }

    fn raw(&self, op: &'static str) -> Result<sys::diffcoll_halo_config_t> {
        let int = |what: &str, v: usize| {
            i32::try_from(v).map_err(|_| {
                Error::new(
                    Status::InvalidArgument,
                    op,
                    format!("{what} {v} is too large"),
                )
            })
        };
        let mut c = sys::diffcoll_halo_config_init();
        c.grid_rows = int("grid_rows", self.grid_rows)?;
        c.grid_cols = int("grid_cols", self.grid_cols)?;
        c.row_axis = self.row_axis;
        c.col_axis = self.col_axis;
        c.row_before = int("row_before", self.row_before)?;
        c.row_after = int("row_after", self.row_after)?;
        c.col_before = int("col_before", self.col_before)?;
        c.col_after = int("col_after", self.col_after)?;
        c.row_boundary_before = self.row_boundary_before.code();
        c.row_boundary_after = self.row_boundary_after.code();
        c.col_boundary_before = self.col_boundary_before.code();
        c.col_boundary_after = self.col_boundary_after.code();
        c.exchange_corners = self.exchange_corners as i32;
        Ok(c)
    }
}

/// A halo exchange plan over a communicator, which it borrows (the
/// communicator must outlive it). Destroyed when dropped. One plan serves
/// every tensor with the same halo geometry.
#[derive(Debug)]
pub struct HaloPlan<'c> {
    raw: NonNull<sys::diffcoll_halo_plan_t>,
    comm: &'c Comm,
    // Like its communicator, a plan is used by one thread at a time.
    _not_sync: PhantomData<*mut ()>,
}

impl Comm {
    /// Creates a halo plan on this communicator (local, no communication);
    /// every rank creates one with the same config. An invalid config (grid
    /// not matching the size, CIRCULAR at one end only, the same axis twice,
    /// ...) gives [`Status::InvalidArgument`].
    pub fn halo_plan(&self, config: &HaloConfig) -> Result<HaloPlan<'_>> {
        const OP: &str = "diffcoll_halo_plan_create";
        let cfg = config.raw(OP)?;
        let mut out = ptr::null_mut();
        // SAFETY: self is live; cfg and out are valid.
        check(OP, unsafe {
            sys::diffcoll_halo_plan_create(self.as_raw(), &cfg, &mut out)
        })?;
        let raw = NonNull::new(out)
            .ok_or_else(|| Error::new(Status::Internal, OP, "the library returned no plan"))?;
        Ok(HaloPlan {
            raw,
            comm: self,
            _not_sync: PhantomData,
        })
    }

    /// Reassembles every rank's `slab` along `axis` into `whole`: rank r's
    /// slab holds the rows [`split_extent`]`(whole extent, size, r)` of the
    /// whole. `root`: `Some(r)` writes only rank r's `whole` (`None` is fine
    /// elsewhere), `None` every rank's. Collective; any strides.
    pub fn gather_slabs(
        &self,
        slab: &TensorRef<'_>,
        whole: Option<&mut TensorMut<'_>>,
        axis: usize,
        root: Option<usize>,
    ) -> Result<()> {
        const OP: &str = "diffcoll_gather_slabs";
        let int = |what: &str, v: usize| {
            i32::try_from(v).map_err(|_| {
                Error::new(
                    Status::InvalidArgument,
                    OP,
                    format!("{what} {v} is too large"),
                )
            })
        };
        let root = match root {
            Some(r) => int("root", r)?,
            None => -1,
        };
        let whole = whole.map_or(ptr::null(), |w| w.as_raw() as *const _);
        // SAFETY: self is live; the descriptors borrow their memory for the call.
        check(OP, unsafe {
            sys::diffcoll_gather_slabs(
                self.as_raw(),
                slab.as_raw(),
                whole,
                int("axis", axis)?,
                root,
                self.stream(),
            )
        })
    }
}

impl HaloPlan<'_> {
    /// The communicator the plan exchanges over.
    pub fn comm(&self) -> &Comm {
        self.comm
    }

    /// Fills the halo of `padded` (this rank's slab with its halo) from the
    /// neighbouring ranks, in place. Collective over the plan's communicator;
    /// the interior is only read.
    pub fn exchange(&mut self, padded: &mut TensorMut<'_>) -> Result<()> {
        // SAFETY: the plan is live; padded is borrowed exclusively for the call.
        check("diffcoll_halo_exchange", unsafe {
            sys::diffcoll_halo_exchange(self.raw.as_ptr(), padded.as_raw(), self.comm.stream())
        })
    }

    /// Copies `input` (this rank's unpadded slab) into the interior of
    /// `padded_output`, then exchanges as [`HaloPlan::exchange`].
    pub fn exchange_into(
        &mut self,
        input: &TensorRef<'_>,
        padded_output: &mut TensorMut<'_>,
    ) -> Result<()> {
        // SAFETY: as for exchange; input is borrowed shared.
        check("diffcoll_halo_exchange_into", unsafe {
            sys::diffcoll_halo_exchange_into(
                self.raw.as_ptr(),
                input.as_raw(),
                padded_output.as_raw(),
                self.comm.stream(),
            )
        })
    }
}

impl Drop for HaloPlan<'_> {
    fn drop(&mut self) {
        // SAFETY: self.raw is live and owned; the communicator is still alive
        // (borrowed by the plan).
        unsafe {
            sys::diffcoll_halo_plan_destroy(self.raw.as_ptr());
        }
    }
}

/// The rows of slab `index` of `parts` nearly equal slabs of `extent` rows
/// (torch.tensor_split's rule: the first `extent % parts` slabs have one row
/// more).
pub fn split_extent(extent: usize, parts: usize, index: usize) -> Result<Range<usize>> {
    const OP: &str = "diffcoll_split_extent";
    let bad = |what: &str, v: usize| {
        Error::new(
            Status::InvalidArgument,
            OP,
            format!("{what} {v} is too large"),
        )
    };
    let extent64 = i64::try_from(extent).map_err(|_| bad("extent", extent))?;
    let parts32 = i32::try_from(parts).map_err(|_| bad("parts", parts))?;
    let index32 = i32::try_from(index).map_err(|_| bad("index", index))?;
    let (mut start, mut length) = (0i64, 0i64);
    // SAFETY: the out-pointers are valid.
    check(OP, unsafe {
        sys::diffcoll_split_extent(extent64, parts32, index32, &mut start, &mut length)
    })?;
    Ok(start as usize..(start + length) as usize)
}
