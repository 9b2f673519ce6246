// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Sequence parallelism: the Ulysses all-to-all (with grouped-query k/v
//! heads sent once and FP8 transport), the ring exchange of ring attention
//! and USP process meshes.
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::{self, NonNull};

use diffcoll_sys as sys;

use crate::comm::{to_i32, Comm};
use crate::error::{check, Error, Result, Status};
use crate::tensor::{Element, TensorMut, TensorRef};

/// Direction of a Ulysses all-to-all (`diffcoll_ulysses_direction_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UlyssesDirection {
    /// Sequence-sharded to head-sharded (before attention).
    #[default]
    SeqToHead,
    /// Head-sharded to sequence-sharded (after attention).
    HeadToSeq,
}

impl UlyssesDirection {
    /// The C value.
    pub fn code(self) -> i32 {
        (match self {
            UlyssesDirection::SeqToHead => sys::DIFFCOLL_ULYSSES_SEQ_TO_HEAD,
            UlyssesDirection::HeadToSeq => sys::DIFFCOLL_ULYSSES_HEAD_TO_SEQ,
        }) as i32
    }
}

/// How an all-to-all or all-gather moves values between ranks
/// (`diffcoll_wire_format_t`). FP8 formats quantise in the pack with one
/// float scale per token block and head and dequantise in the unpack; with
/// `s` a group's largest magnitude over the format's largest value, e4m3
/// keeps `|x' - x| <= 2^-4 |x| + 2^-10 s`, e5m2 `2^-3 |x| + 2^-17 s` (plus
/// the rounding of `x'` to the tensor's dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WireFormat {
    /// The tensors' own dtype, bit for bit.
    #[default]
    Native,
    /// FP8 e4m3 (max 448, 3 mantissa bits).
    Fp8E4m3,
    /// FP8 e5m2 (max 57344, 2 mantissa bits).
    Fp8E5m2,
}

impl WireFormat {
    /// The C value.
    pub fn code(self) -> i32 {
        (match self {
            WireFormat::Native => sys::DIFFCOLL_WIRE_NATIVE,
            WireFormat::Fp8E4m3 => sys::DIFFCOLL_WIRE_FP8_E4M3,
            WireFormat::Fp8E5m2 => sys::DIFFCOLL_WIRE_FP8_E5M2,
        }) as i32
    }
}

/// Options of [`Comm::ulysses_all_to_all_with`] (`diffcoll_ulysses_options_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UlyssesOptions {
    /// Grouped-query attention: the query head count Q; a tensor with
    /// K != Q heads (K divides Q) is k/v, and rank r receives exactly the
    /// k/v heads [`ulysses_kv_heads`]`(Q, K, P, r)` its query heads attend
    /// to. 0: every tensor's heads are split on their own.
    pub query_heads: usize,
    /// How the messages travel.
    pub wire_format: WireFormat,
    /// FP8: tokens per scale, >= 1.
    pub scale_block: usize,
}

impl Default for UlyssesOptions {
    /// `DIFFCOLL_ULYSSES_OPTIONS_INIT`.
    fn default() -> Self {
        let init = sys::diffcoll_ulysses_options_init();
        UlyssesOptions {
            query_heads: 0,
            wire_format: WireFormat::Native,
            scale_block: init.scale_block as usize,
        }
    }
}

/// Options of [`Comm::all_gather_with`] (`diffcoll_all_gather_options_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllGatherOptions {
    /// How each rank's block travels.
    pub wire_format: WireFormat,
    /// FP8: rows along the gather axis per scale, >= 1.
    pub scale_block: usize,
}

impl Default for AllGatherOptions {
    /// `DIFFCOLL_ALL_GATHER_OPTIONS_INIT`.
    fn default() -> Self {
        let init = sys::diffcoll_all_gather_options_init();
        AllGatherOptions {
            wire_format: WireFormat::Native,
            scale_block: init.scale_block as usize,
        }
    }
}

/// The k/v heads rank `index` of `parts` holds after a grouped-query
/// [`Comm::ulysses_all_to_all_with`] with `query_heads` query and `kv_heads`
/// k/v heads (`diffcoll_ulysses_kv_heads`): those its query heads
/// [`split_extent`](crate::split_extent)`(query_heads, parts, index)` attend
/// to. Local query head i of the rank (global `qs + i`) attends local k/v
/// head `(qs + i) / (query_heads / kv_heads) - start`.
pub fn ulysses_kv_heads(
    query_heads: usize,
    kv_heads: usize,
    parts: usize,
    index: usize,
) -> Result<Range<usize>> {
    const OP: &str = "diffcoll_ulysses_kv_heads";
    let (mut start, mut length) = (0i64, 0i64);
    // SAFETY: the out-pointers are valid.
    check(OP, unsafe {
        sys::diffcoll_ulysses_kv_heads(
            to_i64(OP, "query_heads", query_heads)?,
            to_i64(OP, "kv_heads", kv_heads)?,
            to_i32(OP, "parts", parts)?,
            to_i32(OP, "index", index)?,
            &mut start,
            &mut length,
        )
    })?;
    Ok(start as usize..(start + length) as usize)
}

fn to_i64(op: &'static str, what: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        Error::new(
            Status::InvalidArgument,
            op,
            format!("{what} {v} is too large"),
        )
    })
}

/// The descriptors of one Ulysses call, which must pair inputs and outputs.
fn descriptors(
    op: &'static str,
    inputs: &[TensorRef<'_>],
    outputs: &[TensorMut<'_>],
) -> Result<(Vec<sys::diffcoll_tensor_t>, Vec<sys::diffcoll_tensor_t>)> {
    if inputs.len() != outputs.len() {
        return Err(Error::new(
            Status::InvalidArgument,
            op,
            format!("{} inputs but {} outputs", inputs.len(), outputs.len()),
        ));
    }
    Ok((
        inputs.iter().map(|t| *t.as_raw()).collect(),
        outputs.iter().map(|t| *t.as_raw()).collect(),
    ))
}

impl Comm {
    /// Ulysses all-to-all of several tensors (e.g. q, k, v) as one exchange
    /// over this communicator (the Ulysses group). `SeqToHead`: `inputs[t]`
    /// holds this rank's [`split_extent`](crate::split_extent) share of the
    /// sequence and every head, `outputs[t]` all of the sequence and this
    /// rank's share of the heads; `HeadToSeq` is the inverse. Axes may be
    /// negative (from the end); tensors have any strides. Collective.
    pub fn ulysses_all_to_all(
        &self,
        inputs: &[TensorRef<'_>],
        outputs: &mut [TensorMut<'_>],
        seq_axis: i32,
        head_axis: i32,
        direction: UlyssesDirection,
    ) -> Result<()> {
        const OP: &str = "diffcoll_ulysses_all_to_all";
        let (ins, outs) = descriptors(OP, inputs, outputs)?;
        // SAFETY: self is live; the descriptors borrow their memory (outputs
        // exclusively) for the call.
        check(OP, unsafe {
            sys::diffcoll_ulysses_all_to_all(
                self.as_raw(),
                ins.as_ptr(),
                outs.as_ptr(),
                to_i32(OP, "count", ins.len())?,
                seq_axis,
                head_axis,
                direction.code(),
                self.stream(),
            )
        })
    }

    /// [`ulysses_all_to_all`](Comm::ulysses_all_to_all) with grouped-query
    /// k/v heads sent once to each rank that needs them and FP8 transport
    /// (`diffcoll_ulysses_all_to_all_ex`). A k/v tensor of a GQA call holds
    /// [`ulysses_kv_heads`]'s heads on the head-sharded side. With default
    /// options it equals `ulysses_all_to_all` bit for bit. Collective.
    pub fn ulysses_all_to_all_with(
        &self,
        inputs: &[TensorRef<'_>],
        outputs: &mut [TensorMut<'_>],
        seq_axis: i32,
        head_axis: i32,
        direction: UlyssesDirection,
        options: &UlyssesOptions,
    ) -> Result<()> {
        const OP: &str = "diffcoll_ulysses_all_to_all_ex";
        let (ins, outs) = descriptors(OP, inputs, outputs)?;
        let mut raw = sys::diffcoll_ulysses_options_init();
        raw.query_heads = to_i64(OP, "query_heads", options.query_heads)?;
        raw.wire_format = options.wire_format.code();
        raw.scale_block = to_i32(OP, "scale_block", options.scale_block)?;
        // SAFETY: as ulysses_all_to_all; `raw` lives through the call.
        check(OP, unsafe {
            sys::diffcoll_ulysses_all_to_all_ex(
                self.as_raw(),
                ins.as_ptr(),
                outs.as_ptr(),
                to_i32(OP, "count", ins.len())?,
                seq_axis,
                head_axis,
                direction.code(),
                &raw,
                self.stream(),
            )
        })
    }

    /// [`all_gather`](Comm::all_gather) with FP8 transport
    /// (`diffcoll_all_gather_ex`): each rank's block travels as FP8 with one
    /// scale per `scale_block` rows along `axis` and index of every other
    /// dimension but the last, and every rank (the sender too) gets the
    /// dequantised values, so all outputs agree. Collective.
    pub fn all_gather_with(
        &self,
        input: &TensorRef<'_>,
        output: &mut TensorMut<'_>,
        axis: usize,
        options: &AllGatherOptions,
    ) -> Result<()> {
        const OP: &str = "diffcoll_all_gather_ex";
        let mut raw = sys::diffcoll_all_gather_options_init();
        raw.wire_format = options.wire_format.code();
        raw.scale_block = to_i32(OP, "scale_block", options.scale_block)?;
        // SAFETY: self is live; the descriptors borrow their memory (output
        // exclusively) and `raw` lives through the call.
        check(OP, unsafe {
            sys::diffcoll_all_gather_ex(
                self.as_raw(),
                input.as_raw(),
                output.as_raw(),
                to_i32(OP, "axis", axis)?,
                &raw,
                self.stream(),
            )
        })
    }
}

/// The double buffer of ring attention over a communicator (the ring
/// group), which it borrows. Half 0 (current at first) and half 1 each hold
/// the same number of blocks (e.g. k and v), half 0's block t of the length
/// of half 1's. The ring keeps the buffers borrowed until it is dropped (=
/// destroyed, a step in flight completed first); it hands out the current
/// half between steps. At step s rank n holds the block of rank
/// `(n - s) mod P`:
///
/// ```no_run
/// # fn demo(comm: &diffcoll::Comm, k0: &mut [f32], v0: &mut [f32], k1: &mut [f32], v1: &mut [f32]) -> diffcoll::Result<()> {
/// // k0, v0 hold this rank's own block.
/// let mut ring = diffcoll::Ring::new(comm, vec![k0, v0], vec![k1, v1])?;
/// ring.for_each_step(|step, kv| {
///     // attention(q, kv[0], kv[1]) while the next block travels
///     Ok(())
/// })?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Ring<'c, 'b, T: Element> {
    raw: NonNull<sys::diffcoll_ring_t>,
    comm: &'c Comm,
    // The library writes the half that is not current while a step is in
    // flight; Rust touches only the current half then (current_half), and
    // writes a half only with nothing in flight (half_mut).
    halves: [Vec<&'b mut [T]>; 2],
    current: usize,
    in_flight: bool,
    // Like its communicator, a ring is used by one thread at a time.
    _not_sync: PhantomData<*mut ()>,
}

impl<'c, 'b, T: Element> Ring<'c, 'b, T> {
    /// Creates a ring over `comm` (local, no communication) with the blocks
    /// of `half0` (current at first: fill it with this rank's blocks) and
    /// `half1`, each a contiguous 1-D tensor.
    pub fn new(comm: &'c Comm, half0: Vec<&'b mut [T]>, half1: Vec<&'b mut [T]>) -> Result<Self> {
        const OP: &str = "diffcoll_ring_create";
        if half0.len() != half1.len() {
            return Err(Error::new(
                Status::InvalidArgument,
                OP,
                format!(
                    "half 0 has {} blocks but half 1 {}",
                    half0.len(),
                    half1.len()
                ),
            ));
        }
        let mut halves = [half0, half1];
        let [d0, d1] = [0, 1].map(|h| {
            halves[h]
                .iter_mut()
                .map(|b| *TensorMut::from_slice(b).as_raw())
                .collect::<Vec<_>>()
        });
        let mut out = ptr::null_mut();
        // SAFETY: comm is live; the descriptors point to memory the ring
        // keeps borrowed until it is destroyed.
        check(OP, unsafe {
            sys::diffcoll_ring_create(
                comm.as_raw(),
                d0.as_ptr(),
                d1.as_ptr(),
                to_i32(OP, "count", d0.len())?,
                &mut out,
            )
        })?;
        let raw = NonNull::new(out)
            .ok_or_else(|| Error::new(Status::Internal, OP, "the library returned no ring"))?;
        Ok(Ring {
            raw,
            comm,
            halves,
            current: 0,
            in_flight: false,
            _not_sync: PhantomData,
        })
    }

    /// The ring group.
    pub fn comm(&self) -> &Comm {
        self.comm
    }

    /// Index (0 or 1) of the half holding the current block.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The blocks of the current half (readable while a step is in flight).
    pub fn current_half(&self) -> Vec<&[T]> {
        self.halves[self.current].iter().map(|b| &**b).collect()
    }

    /// The blocks of half `index`, writable (e.g. to load the next layer's
    /// blocks into the current half). [`Status::InvalidArgument`] while a
    /// step is in flight.
    pub fn half_mut(&mut self, index: usize) -> Result<Vec<&mut [T]>> {
        const OP: &str = "diffcoll::Ring::half_mut";
        if self.in_flight || index > 1 {
            return Err(Error::new(
                Status::InvalidArgument,
                OP,
                format!(
                    "half {index} cannot be written now (a step in flight: {})",
                    self.in_flight
                ),
            ));
        }
        Ok(self.halves[index].iter_mut().map(|b| &mut **b).collect())
    }

    /// Posts one step: the current half goes to local rank `rank + 1`, the
    /// other half receives from `rank - 1`. Collective; returns without
    /// waiting (CUDA buffers: on the communicator's stream).
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: the ring is live; it borrows its buffers.
        check("diffcoll_ring_start", unsafe {
            sys::diffcoll_ring_start(self.raw.as_ptr(), self.comm.stream())
        })?;
        self.in_flight = true;
        Ok(())
    }

    /// Completes the step in flight and makes the received half current;
    /// returns its index.
    pub fn wait(&mut self) -> Result<usize> {
        let mut current = 0i32;
        // SAFETY: the ring is live; current is valid.
        check("diffcoll_ring_wait", unsafe {
            sys::diffcoll_ring_wait(self.raw.as_ptr(), self.comm.stream(), &mut current)
        })?;
        self.in_flight = false;
        self.current = current as usize;
        Ok(self.current)
    }

    /// Runs `f(step, current half)` at each of the P steps, the next block
    /// in flight meanwhile (start before, wait after each of the first
    /// P - 1). If `f` fails, the step in flight is still completed and `f`'s
    /// error returned.
    pub fn for_each_step<F>(&mut self, mut f: F) -> Result<()>
    where
        F: FnMut(usize, &[&[T]]) -> Result<()>,
    {
        let size = self.comm.size();
        for step in 0..size {
            let last = step + 1 == size;
            if !last {
                self.start()?;
            }
            let result = f(step, &self.current_half());
            if !last {
                let waited = self.wait();
                result?;
                waited?;
            } else {
                result?;
            }
        }
        Ok(())
    }
}

impl<T: Element> Drop for Ring<'_, '_, T> {
    fn drop(&mut self) {
        // SAFETY: self.raw is live and owned; the buffers and the
        // communicator are still borrowed.
        unsafe {
            sys::diffcoll_ring_destroy(self.raw.as_ptr());
        }
    }
}

/// Degrees of a USP mesh (`diffcoll_usp_degrees_t`). The default is 1 along
/// every axis, with `data: None`: the rest of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UspDegrees {
    /// Ranks of one Ulysses group.
    pub ulysses: usize,
    /// Ranks of one ring-attention group.
    pub ring: usize,
    /// Ranks of one CFG group.
    pub cfg: usize,
    /// Ranks of one data-parallel group; `None`: the parent's size divided by
    /// the other three.
    pub data: Option<usize>,
}

impl Default for UspDegrees {
    fn default() -> Self {
        UspDegrees {
            ulysses: 1,
            ring: 1,
            cfg: 1,
            data: None,
        }
    }
}

/// This rank's groups of a USP mesh, each an owned [`Comm`] (dropped =
/// destroyed, alone or with the mesh; moving one out of the mesh is fine).
/// Parent rank n has the coordinates `u = n % U`, `r = (n / U) % R`,
/// `c = (n / (U*R)) % C`, `d = n / (U*R*C)` (xDiT / yunchang order); each
/// group holds the ranks that share the other coordinates, its local rank
/// being the rank's own coordinate.
#[derive(Debug)]
pub struct UspMesh {
    /// The Ulysses group: U consecutive ranks, local rank u.
    pub ulysses: Comm,
    /// The ring-attention group: R ranks U apart, local rank r.
    pub ring: Comm,
    /// The sequence-parallel group: U*R consecutive ranks, local rank u + U*r.
    pub sp: Comm,
    /// The CFG group: C ranks U*R apart, local rank c.
    pub cfg: Comm,
    /// The data-parallel group: D ranks U*R*C apart, local rank d.
    pub data: Comm,
    /// The degrees, `data` resolved.
    pub degrees: UspDegrees,
}

impl UspMesh {
    /// Builds every group of this rank (`diffcoll_usp_mesh_create`).
    /// Collective over `parent` with the same degrees, whose product must be
    /// `parent.size()`. `parent` is not owned and may be dropped before the
    /// mesh.
    pub fn new(parent: &Comm, degrees: &UspDegrees) -> Result<UspMesh> {
        const OP: &str = "diffcoll_usp_mesh_create";
        let data = degrees.data.unwrap_or_else(|| {
            parent.size() / (degrees.ulysses * degrees.ring * degrees.cfg).max(1)
        });
        let mut d = sys::diffcoll_usp_degrees_init();
        d.ulysses = to_i32(OP, "ulysses", degrees.ulysses)?;
        d.ring = to_i32(OP, "ring", degrees.ring)?;
        d.cfg = to_i32(OP, "cfg", degrees.cfg)?;
        d.data = to_i32(OP, "data", data)?;
        let mut m = sys::diffcoll_usp_mesh_init();
        // SAFETY: parent is live; d and m are valid and initialised.
        check(OP, unsafe {
            sys::diffcoll_usp_mesh_create(parent.as_raw(), &d, &mut m)
        })?;
        // Own every handle before looking at any result, so that all are
        // destroyed if one fails.
        let [u, r, s, c, dp] = [m.ulysses, m.ring, m.sp, m.cfg, m.data].map(Comm::wrap);
        let group = |g: Result<Option<Comm>>| {
            g?.ok_or_else(|| Error::new(Status::Internal, OP, "the library returned no group"))
        };
        Ok(UspMesh {
            ulysses: group(u)?,
            ring: group(r)?,
            sp: group(s)?,
            cfg: group(c)?,
            data: group(dp)?,
            degrees: UspDegrees {
                data: Some(data),
                ..*degrees
            },
        })
    }
}
