// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! The communicator.
use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};
use std::time::Duration;

use diffcoll_sys as sys;

use crate::error::{check, Error, Result, Status};
use crate::tensor::{TensorMut, TensorRef};

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReduceOp {
    /// Elementwise sum.
    Sum,
    /// Elementwise product.
    Prod,
    /// Elementwise minimum.
    Min,
    /// Elementwise maximum.
    Max,
    /// Sum divided by the group size (integer division for integer dtypes).
    Avg,
    /// This rank's input multiplied by the factor, then summed over ranks.
    PremulSum(f64),
}

impl ReduceOp {
    fn raw(self) -> (i32, f64) {
        match self {
            ReduceOp::Sum => (sys::DIFFCOLL_SUM as i32, 1.0),
            ReduceOp::Prod => (sys::DIFFCOLL_PROD as i32, 1.0),
            ReduceOp::Min => (sys::DIFFCOLL_MIN as i32, 1.0),
            ReduceOp::Max => (sys::DIFFCOLL_MAX as i32, 1.0),
            ReduceOp::Avg => (sys::DIFFCOLL_AVG as i32, 1.0),
            ReduceOp::PremulSum(s) => (sys::DIFFCOLL_PREMUL_SUM as i32, s),
        }
    }
}

/// Colour that makes [`Comm::split`] return no communicator.
pub const SPLIT_NOCOLOR: i32 = sys::DIFFCOLL_SPLIT_NOCOLOR;

/// Options of a world communicator (`diffcoll_config_t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bound on every blocking call (rendezvous, collectives, waits).
    pub timeout: Duration,
    /// CUDA device of the device side; None for a host-only communicator.
    pub device_id: Option<i32>,
    /// Verify on every collective that all ranks agree; None reads
    /// `DIFFCOLL_CHECK`.
    pub check: Option<bool>,
    /// Address this rank listens on; None for the default (`DIFFCOLL_HOST`,
    /// else 127.0.0.1 for `local://`, else the host name's address).
    pub host: Option<String>,
}

impl Default for Config {
    /// `DIFFCOLL_CONFIG_INIT`: 30 s, host only, check from the environment.
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(30),
            device_id: None,
            check: None,
            host: None,
        }
    }
}

fn c_string(op: &'static str, what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::new(
            Status::InvalidArgument,
            op,
            format!("{what} contains a NUL byte"),
        )
    })
}

pub(crate) fn to_i32(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::new(
            Status::InvalidArgument,
            op,
            format!("{what} {v} is too large"),
        )
    })
}

impl Config {
    /// The C struct; `host` keeps the host string alive while it is used.
    fn raw(&self, op: &'static str, host: &mut Option<CString>) -> Result<sys::diffcoll_config_t> {
        let mut cfg = sys::diffcoll_config_init();
        cfg.timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        cfg.device_id = self.device_id.unwrap_or(-1);
        cfg.check = match self.check {
            None => -1,
            Some(false) => 0,
            Some(true) => 1,
        };
        if let Some(h) = &self.host {
            cfg.host = host.insert(c_string(op, "host", h)?).as_ptr();
        }
        Ok(cfg)
    }
}

/// Traffic counters of a communicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Bytes gathered from strided tensors into staging buffers.
    pub bytes_packed: u64,
    /// Bytes scattered from staging buffers back into strided tensors.
    pub bytes_unpacked: u64,
    /// Operations completed.
    pub ops: u64,
}

/// A communicator: destroyed when dropped (not collective).
///
/// Like the C API, a communicator is used by one thread at a time: `Comm` is
/// `Send` but not `Sync`. Host operations return when complete; tensors are
/// used in place with any strides.
#[derive(Debug)]
pub struct Comm {
    raw: NonNull<sys::diffcoll_comm_t>,
    rank: usize,
    size: usize,
    // The CUDA stream operations on CUDA tensors are enqueued on (set_stream).
    stream: *mut c_void,
}

// A communicator may move to another thread; it is never shared (not Sync).
unsafe impl Send for Comm {}

impl Comm {
    pub(crate) fn wrap(raw: *mut sys::diffcoll_comm_t) -> Result<Option<Comm>> {
        let raw = match NonNull::new(raw) {
            Some(raw) => raw,
            None => return Ok(None),
        };
        // Own it first, so that it is destroyed if the queries below fail.
        let mut comm = Comm {
            raw,
            rank: 0,
            size: 0,
            stream: ptr::null_mut(),
        };
        let (mut rank, mut size) = (0i32, 0i32);
        // SAFETY: raw is a live handle; the out-pointers are valid.
        unsafe {
            check(
                "diffcoll_comm_rank",
                sys::diffcoll_comm_rank(raw.as_ptr(), &mut rank),
            )?;
            check(
                "diffcoll_comm_size",
                sys::diffcoll_comm_size(raw.as_ptr(), &mut size),
            )?;
        }
        comm.rank = rank as usize;
        comm.size = size as usize;
        Ok(Some(comm))
    }

    /// Sets the CUDA stream (a `cudaStream_t`) on which this communicator's
    /// operations on CUDA tensors, and those of its halo plans, are enqueued;
    /// null (the default) is the legacy default stream. On CUDA tensors an
    /// operation returns once enqueued: results are ready when the stream
    /// reaches it. Host tensors ignore the stream.
    ///
    /// # Safety
    /// `stream` must be null or a stream of the communicator's CUDA device
    /// that outlives every operation enqueued on it.
    pub unsafe fn set_stream(&mut self, stream: *mut c_void) {
        self.stream = stream;
    }

    /// The CUDA stream set by [`Comm::set_stream`] (null by default).
    pub fn stream(&self) -> *mut c_void {
        self.stream
    }

    fn expect(op: &'static str, comm: Option<Comm>) -> Result<Comm> {
        comm.ok_or_else(|| Error::new(Status::Internal, op, "the library returned no communicator"))
    }

    /// Creates the world communicator of `size` ranks; every rank calls it
    /// with its own `rank` and the same `rendezvous`: `"local://NAME"`
    /// (threads of one process), `"file:///DIR"` (processes sharing a
    /// directory) or `"redis://HOST:PORT[/PREFIX]"`.
    pub fn create(rendezvous: &str, rank: usize, size: usize, config: &Config) -> Result<Comm> {
        const OP: &str = "diffcoll_comm_create";
        let rdv = c_string(OP, "rendezvous", rendezvous)?;
        let mut host = None;
        let cfg = config.raw(OP, &mut host)?;
        let mut out = ptr::null_mut();
        // SAFETY: all pointers are valid for the call.
        check(OP, unsafe {
            sys::diffcoll_comm_create(
                rdv.as_ptr(),
                to_i32(OP, "rank", rank)?,
                to_i32(OP, "size", size)?,
                &cfg,
                &mut out,
            )
        })?;
        Self::expect(OP, Self::wrap(out)?)
    }

    /// Creates the world from torchrun-style variables `RANK`, `WORLD_SIZE`
    /// and `DIFFCOLL_STORE`.
    pub fn from_env(config: &Config) -> Result<Comm> {
        const OP: &str = "diffcoll_comm_create_from_env";
        let mut host = None;
        let cfg = config.raw(OP, &mut host)?;
        let mut out = ptr::null_mut();
        // SAFETY: all pointers are valid for the call.
        check(OP, unsafe {
            sys::diffcoll_comm_create_from_env(&cfg, &mut out)
        })?;
        Self::expect(OP, Self::wrap(out)?)
    }

    /// Creates a world communicator around an existing NCCL communicator
    /// (`ncclComm_t`), whose ranks meet at `rendezvous` for the host side.
    /// Fails with [`Status::Unsupported`] in a build without CUDA.
    ///
    /// # Safety
    /// `nccl_comm` must be a valid `ncclComm_t` that outlives the result.
    pub unsafe fn wrap_nccl(
        nccl_comm: *mut c_void,
        rendezvous: &str,
        config: &Config,
    ) -> Result<Comm> {
        const OP: &str = "diffcoll_comm_wrap_nccl";
        let rdv = c_string(OP, "rendezvous", rendezvous)?;
        let mut host = None;
        let cfg = config.raw(OP, &mut host)?;
        let mut out = ptr::null_mut();
        check(
            OP,
            sys::diffcoll_comm_wrap_nccl(nccl_comm, rdv.as_ptr(), &cfg, &mut out),
        )?;
        Self::expect(OP, Self::wrap(out)?)
    }

    /// Splits into groups by `color`, ordered by `key` (ties by rank).
    /// Collective over every rank; `Ok(None)` for [`SPLIT_NOCOLOR`].
    pub fn split(&self, color: i32, key: i32) -> Result<Option<Comm>> {
        let mut out = ptr::null_mut();
        // SAFETY: self.raw is live; out is valid.
        check("diffcoll_comm_split", unsafe {
            sys::diffcoll_comm_split(self.raw.as_ptr(), color, key, &mut out)
        })?;
        Self::wrap(out)
    }

    /// A communicator of the listed global ranks (local rank i is
    /// `ranks[i]`). Collective over the listed ranks only; the others get
    /// `Ok(None)` at once.
    pub fn group(&self, ranks: &[usize]) -> Result<Option<Comm>> {
        const OP: &str = "diffcoll_comm_create_group";
        let r32 = ranks
            .iter()
            .map(|&r| to_i32(OP, "rank", r))
            .collect::<Result<Vec<i32>>>()?;
        let mut out = ptr::null_mut();
        // SAFETY: r32 holds count ranks; out is valid.
        check(OP, unsafe {
            sys::diffcoll_comm_create_group(
                self.raw.as_ptr(),
                r32.as_ptr(),
                to_i32(OP, "count", r32.len())?,
                &mut out,
            )
        })?;
        Self::wrap(out)
    }

    /// This rank's local rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The world rank of `local_rank`.
    pub fn global_rank(&self, local_rank: usize) -> Result<usize> {
        const OP: &str = "diffcoll_comm_global_rank";
        let mut g = 0i32;
        // SAFETY: self.raw is live; g is valid.
        check(OP, unsafe {
            sys::diffcoll_comm_global_rank(
                self.raw.as_ptr(),
                to_i32(OP, "rank", local_rank)?,
                &mut g,
            )
        })?;
        Ok(g as usize)
    }

    /// Grows the staging arena to at least `bytes` now.
    pub fn reserve(&self, bytes: usize) -> Result<()> {
        // SAFETY: self.raw is live.
        check("diffcoll_comm_reserve", unsafe {
            sys::diffcoll_comm_reserve(self.raw.as_ptr(), bytes)
        })
    }

    /// The traffic counters.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = sys::diffcoll_stats_init();
        // SAFETY: self.raw is live; s is valid with struct_size set.
        check("diffcoll_comm_get_stats", unsafe {
            sys::diffcoll_comm_get_stats(self.raw.as_ptr(), &mut s)
        })?;
        Ok(Stats {
            bytes_packed: s.bytes_packed,
            bytes_unpacked: s.bytes_unpacked,
            ops: s.ops,
        })
    }

    /// Sets the traffic counters back to zero.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: self.raw is live.
        check("diffcoll_comm_reset_stats", unsafe {
            sys::diffcoll_comm_reset_stats(self.raw.as_ptr())
        })
    }

    /// The raw handle (still owned by this `Comm`).
    pub fn as_raw(&self) -> *mut sys::diffcoll_comm_t {
        self.raw.as_ptr()
    }

    // -------------------------------------------------------------- collectives
    //
    // SAFETY of every call below: self.raw is live, and the descriptors point
    // to memory borrowed (shared for inputs, exclusively for outputs) for the
    // duration of the call, which is when the library uses host memory.

    /// Reduces `tensor` across ranks in place.
    pub fn all_reduce(&self, tensor: &mut TensorMut<'_>, op: ReduceOp) -> Result<()> {
        let (op, scalar) = op.raw();
        check("diffcoll_all_reduce", unsafe {
            sys::diffcoll_all_reduce(
                self.raw.as_ptr(),
                tensor.as_raw(),
                op,
                scalar,
                self.stream,
            )
        })
    }

    /// Copies `tensor` from `root` to every rank, in place.
    pub fn broadcast(&self, tensor: &mut TensorMut<'_>, root: usize) -> Result<()> {
        const OP: &str = "diffcoll_broadcast";
        let root = to_i32(OP, "root", root)?;
        check(OP, unsafe {
            sys::diffcoll_broadcast(self.raw.as_ptr(), tensor.as_raw(), root, self.stream)
        })
    }

    /// Reduces `tensor` into root's `tensor` (the others are left unchanged).
    pub fn reduce(&self, tensor: &mut TensorMut<'_>, op: ReduceOp, root: usize) -> Result<()> {
        const OP: &str = "diffcoll_reduce";
        let root = to_i32(OP, "root", root)?;
        let (op, scalar) = op.raw();
        check(OP, unsafe {
            sys::diffcoll_reduce(
                self.raw.as_ptr(),
                tensor.as_raw(),
                op,
                scalar,
                root,
                self.stream,
            )
        })
    }

    /// Concatenates every rank's `input` along `axis` into `output`.
    pub fn all_gather(
        &self,
        input: &TensorRef<'_>,
        output: &mut TensorMut<'_>,
        axis: usize,
    ) -> Result<()> {
        const OP: &str = "diffcoll_all_gather";
        let axis = to_i32(OP, "axis", axis)?;
        check(OP, unsafe {
            sys::diffcoll_all_gather(
                self.raw.as_ptr(),
                input.as_raw(),
                output.as_raw(),
                axis,
                self.stream,
            )
        })
    }

    /// Reduces `input` across ranks and leaves block r (of `size()` blocks
    /// along `axis`) in rank r's `output`.
    pub fn reduce_scatter(
        &self,
        input: &TensorRef<'_>,
        output: &mut TensorMut<'_>,
        axis: usize,
        op: ReduceOp,
    ) -> Result<()> {
        const OP: &str = "diffcoll_reduce_scatter";
        let axis = to_i32(OP, "axis", axis)?;
        let (op, scalar) = op.raw();
        check(OP, unsafe {
            sys::diffcoll_reduce_scatter(
                self.raw.as_ptr(),
                input.as_raw(),
                output.as_raw(),
                axis,
                op,
                scalar,
                self.stream,
            )
        })
    }

    /// Sends block j of `input` (along `scatter_axis`) to rank j and
    /// concatenates the blocks received along `gather_axis` of `output`.
    pub fn all_to_all(
        &self,
        input: &TensorRef<'_>,
        output: &mut TensorMut<'_>,
        scatter_axis: usize,
        gather_axis: usize,
    ) -> Result<()> {
        const OP: &str = "diffcoll_all_to_all";
        let (s, g) = (
            to_i32(OP, "scatter_axis", scatter_axis)?,
            to_i32(OP, "gather_axis", gather_axis)?,
        );
        check(OP, unsafe {
            sys::diffcoll_all_to_all(
                self.raw.as_ptr(),
                input.as_raw(),
                output.as_raw(),
                s,
                g,
                self.stream,
            )
        })
    }

    /// Concatenates every rank's `input` along `axis` into root's `output`
    /// (`None` on the other ranks).
    pub fn gather(
        &self,
        input: &TensorRef<'_>,
        output: Option<&mut TensorMut<'_>>,
        axis: usize,
        root: usize,
    ) -> Result<()> {
        const OP: &str = "diffcoll_gather";
        let (axis, root) = (to_i32(OP, "axis", axis)?, to_i32(OP, "root", root)?);
        let out = output.map_or(ptr::null(), |o| o.as_raw() as *const _);
        check(OP, unsafe {
            sys::diffcoll_gather(
                self.raw.as_ptr(),
                input.as_raw(),
                out,
                axis,
                root,
                self.stream,
            )
        })
    }

    /// Splits root's `input` (`None` on the other ranks) along `axis`; rank r
    /// receives block r in `output`.
    pub fn scatter(
        &self,
        input: Option<&TensorRef<'_>>,
        output: &mut TensorMut<'_>,
        axis: usize,
        root: usize,
    ) -> Result<()> {
        const OP: &str = "diffcoll_scatter";
        let (axis, root) = (to_i32(OP, "axis", axis)?, to_i32(OP, "root", root)?);
        let inp = input.map_or(ptr::null(), |i| i.as_raw() as *const _);
        check(OP, unsafe {
            sys::diffcoll_scatter(
                self.raw.as_ptr(),
                inp,
                output.as_raw(),
                axis,
                root,
                self.stream,
            )
        })
    }

    /// Sends `tensor` to local rank `peer`, which receives it with the same
    /// shape and dtype (strides may differ). Blocking.
    pub fn send(&self, tensor: &TensorRef<'_>, peer: usize) -> Result<()> {
        const OP: &str = "diffcoll_send";
        let peer = to_i32(OP, "peer", peer)?;
        check(OP, unsafe {
            sys::diffcoll_send(self.raw.as_ptr(), tensor.as_raw(), peer, self.stream)
        })
    }

    /// Receives into `tensor` from local rank `peer`. Blocking.
    pub fn recv(&self, tensor: &mut TensorMut<'_>, peer: usize) -> Result<()> {
        const OP: &str = "diffcoll_recv";
        let peer = to_i32(OP, "peer", peer)?;
        check(OP, unsafe {
            sys::diffcoll_recv(self.raw.as_ptr(), tensor.as_raw(), peer, self.stream)
        })
    }

    /// Runs `f` inside `diffcoll_group_start`/`diffcoll_group_end`: the sends
    /// and receives it records are posted together when it returns, so
    /// exchanges in both directions cannot deadlock. The tensors are moved
    /// into the group, so their memory stays borrowed until the group ends.
    /// If `f` fails the group is still ended and `f`'s error returned.
    ///
    /// ```no_run
    /// # fn demo(comm: &mut diffcoll::Comm, a: &[f32], b: &mut [f32]) -> diffcoll::Result<()> {
    /// let (next, prev) = ((comm.rank() + 1) % comm.size(), (comm.rank() + comm.size() - 1) % comm.size());
    /// comm.p2p_group(|g| {
    ///     g.send(diffcoll::TensorRef::from_slice(a), next)?;
    ///     g.recv(diffcoll::TensorMut::from_slice(b), prev)
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn p2p_group<'t, F>(&mut self, f: F) -> Result<()>
    where
        F: FnOnce(&mut P2pGroup<'_, 't>) -> Result<()>,
    {
        // SAFETY: self.raw is live.
        check("diffcoll_group_start", unsafe {
            sys::diffcoll_group_start(self.raw.as_ptr())
        })?;
        let mut group = P2pGroup {
            comm: self,
            refs: Vec::new(),
            muts: Vec::new(),
        };
        let result = f(&mut group);
        // SAFETY: the recorded tensors are still borrowed by `group`.
        let end = check("diffcoll_group_end", unsafe {
            sys::diffcoll_group_end(group.comm.raw.as_ptr())
        });
        drop(group);
        result.and(end)
    }

    /// Returns once every rank has entered the barrier.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: self.raw is live.
        check("diffcoll_barrier", unsafe {
            sys::diffcoll_barrier(self.raw.as_ptr(), self.stream)
        })
    }
}

impl Drop for Comm {
    fn drop(&mut self) {
        // SAFETY: self.raw is live and owned; destroying is not collective.
        unsafe {
            sys::diffcoll_comm_destroy(self.raw.as_ptr());
        }
    }
}

/// The point-to-point operations of one [`Comm::p2p_group`].
pub struct P2pGroup<'c, 't> {
    comm: &'c mut Comm,
    refs: Vec<TensorRef<'t>>,
    muts: Vec<TensorMut<'t>>,
}

impl<'t> P2pGroup<'_, 't> {
    /// Records a send of `tensor` to local rank `peer`.
    pub fn send(&mut self, tensor: TensorRef<'t>, peer: usize) -> Result<()> {
        const OP: &str = "diffcoll_send";
        let peer = to_i32(OP, "peer", peer)?;
        // SAFETY: the tensor is kept (and its memory borrowed) until the group ends.
        check(OP, unsafe {
            sys::diffcoll_send(self.comm.raw.as_ptr(), tensor.as_raw(), peer, self.comm.stream)
        })?;
        self.refs.push(tensor);
        Ok(())
    }

    /// Records a receive into `tensor` from local rank `peer`.
    pub fn recv(&mut self, tensor: TensorMut<'t>, peer: usize) -> Result<()> {
        const OP: &str = "diffcoll_recv";
        let peer = to_i32(OP, "peer", peer)?;
        // SAFETY: the tensor is kept (and its memory borrowed) until the group ends.
        check(OP, unsafe {
            sys::diffcoll_recv(self.comm.raw.as_ptr(), tensor.as_raw(), peer, self.comm.stream)
        })?;
        self.muts.push(tensor);
        Ok(())
    }

    /// The communicator's rank and size.
    pub fn rank(&self) -> usize {
        self.comm.rank
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size
    }
}
