// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Multi-rank tests: ranks are threads of this process meeting at a
//! `local://` rendezvous.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use diffcoll::{
    raw_descriptor, Comm, Config, DType, Device, Error, ReduceOp, Status, TensorMut, TensorRef,
    BF16, SPLIT_NOCOLOR,
};
use diffcoll::{
    split_extent, FusedNormPath, FusedNormWorkspace, InOut, Ring, UlyssesDirection, UspDegrees,
    UspMesh,
};
use diffcoll::{ulysses_kv_heads, AllGatherOptions, UlyssesOptions, WireFormat};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on `size` ranks and returns their results in rank order; panics
/// with every rank's error if one failed.
fn run_ranks<T, F>(size: usize, config: Config, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&mut Comm) -> Result<T, Error> + Sync,
{
    let name = format!(
        "local://rust-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let results: Vec<Result<T, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let (name, config, f) = (&name, &config, &f);
                s.spawn(move || {
                    let mut comm = Comm::create(name, rank, size, config)?;
                    // Every rank finishes creating the communicator before any
                    // can drop it (dropping right after creating can fail a
                    // peer still inside diffcoll_comm_create; core issue).
                    comm.barrier()?;
                    f(&mut comm)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rank panicked"))
            .collect()
    });
    let errors: Vec<String> = results
        .iter()
        .enumerate()
        .filter_map(|(r, res)| res.as_ref().err().map(|e| format!("rank {r}: {e}")))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    results.into_iter().map(|r| r.ok().unwrap()).collect()
}

fn iota(n: usize, scale: f32, shift: f32) -> Vec<f32> {
    (0..n).map(|i| i as f32 * scale + shift).collect()
}

#[test]
fn all_reduce_views_and_ops() {
    let size = 3;
    let out = run_ranks(size, Config::default(), |comm| {
        let r = comm.rank() as f32;
        // Transposed view of a 4x6 matrix: dense, no packing. A stream is
        // set, which host tensors ignore.
        let stream = 0x1234usize as *mut std::ffi::c_void;
        // SAFETY: the stream is never used: every tensor here is on the host.
        unsafe { comm.set_stream(stream) };
        assert_eq!(comm.stream(), stream);
        let mut a = iota(24, 1.0, r);
        comm.reset_stats()?;
        comm.all_reduce(
            &mut TensorMut::new(&mut a, &[4, 6])?.permute(&[1, 0])?,
            ReduceOp::Sum,
        )?;
        // SAFETY: null is the legacy default stream.
        unsafe { comm.set_stream(std::ptr::null_mut()) };
        let s1 = comm.stats()?;
        // Every other column: packed, gaps untouched.
        let mut b = iota(24, 1.0, 0.0);
        comm.all_reduce(
            &mut TensorMut::new(&mut b, &[4, 6])?.slice(1, 0, 6, 2)?,
            ReduceOp::PremulSum(r as f64 + 1.0),
        )?;
        let s2 = comm.stats()?;
        // Avg on reversed rows (negative strides) of an int tensor.
        let mut c: Vec<i32> = (0..6).map(|i| i * 10 + comm.rank() as i32).collect();
        comm.all_reduce(
            &mut TensorMut::strided(&mut c, 5, &[6], &[-1])?,
            ReduceOp::Avg,
        )?;
        // Max on bfloat16.
        let mut h = vec![BF16::from_f32(r); 3];
        comm.all_reduce(&mut TensorMut::from_slice(&mut h), ReduceOp::Max)?;
        Ok((a, s1, b, s2, c, h))
    });
    for (a, s1, b, s2, c, h) in out {
        for (i, v) in a.iter().enumerate() {
            assert_eq!(*v, 3.0 * i as f32 + 3.0);
        }
        assert_eq!((s1.bytes_packed, s1.bytes_unpacked, s1.ops), (0, 0, 1));
        for (i, v) in b.iter().enumerate() {
            let want = if i % 2 == 0 { 6.0 * i as f32 } else { i as f32 };
            assert_eq!(*v, want, "b[{i}]");
        }
        assert!(s2.bytes_packed > 0 && s2.bytes_unpacked > 0);
        assert_eq!(c, vec![1, 11, 21, 31, 41, 51]);
        assert!(h.iter().all(|x| x.to_f32() == 2.0));
    }
}

#[test]
fn all_gather_all_to_all_broadcast() {
    let size = 2;
    let out = run_ranks(size, Config::default(), |comm| {
        let r = comm.rank();
        let input = iota(6, 1.0, 10.0 * r as f32); // 2x3
                                                   // Gather along axis 1 into a transposed output (storage 6x2).
        let mut out = vec![0f32; 6 * size];
        comm.all_gather(
            &TensorRef::new(&input, &[2, 3])?,
            &mut TensorMut::new(&mut out, &[3 * size, 2])?.permute(&[1, 0])?,
            1,
        )?;
        // all_to_all: 4x3 -> 2x6 (rows scattered, columns gathered).
        let a = iota(12, 1.0, 100.0 * r as f32);
        let mut b = vec![0f32; 12];
        comm.all_to_all(
            &TensorRef::new(&a, &[4, 3])?,
            &mut TensorMut::new(&mut b, &[2, 6])?,
            0,
            1,
        )?;
        // Broadcast of every other row from rank 1.
        let mut x = iota(12, r as f32 + 1.0, 0.0);
        comm.broadcast(&mut TensorMut::new(&mut x, &[3, 4])?.slice(0, 0, 3, 2)?, 1)?;
        Ok((r, out, b, x))
    });
    for (r, out, b, x) in out {
        for i in 0..2 {
            for j in 0..6 {
                let (src, jj) = (j / 3, j % 3);
                assert_eq!(out[j * 2 + i], (10 * src + i * 3 + jj) as f32);
                assert_eq!(b[i * 6 + j], (100 * src + (2 * r + i) * 3 + jj) as f32);
            }
        }
        for (i, v) in x.iter().enumerate() {
            let want = if i / 4 == 1 {
                (r + 1) as f32 * i as f32
            } else {
                2.0 * i as f32
            };
            assert_eq!(*v, want);
        }
    }
}

#[test]
fn reduce_gather_scatter_reduce_scatter() {
    let size = 2;
    let out = run_ranks(size, Config::default(), |comm| {
        let r = comm.rank();
        let mut red = vec![r as i64 + 1; 2];
        comm.reduce(&mut TensorMut::from_slice(&mut red), ReduceOp::Prod, 1)?;
        let mut g = vec![0i32; 2 * size];
        let mine = [r as i32, r as i32 + 10];
        {
            let mut out = if r == 0 {
                Some(TensorMut::from_slice(&mut g))
            } else {
                None
            };
            comm.gather(&TensorRef::from_slice(&mine), out.as_mut(), 0, 0)?;
        }
        let src = [5i32, 6, 7, 8];
        let mut part = [0i32; 2];
        let src_t = TensorRef::from_slice(&src);
        comm.scatter(
            if r == 1 { Some(&src_t) } else { None },
            &mut TensorMut::from_slice(&mut part),
            0,
            1,
        )?;
        let input = iota(8, 1.0, r as f32); // 2x4
        let mut rs = vec![0f32; 4];
        comm.reduce_scatter(
            &TensorRef::new(&input, &[2, 4])?,
            &mut TensorMut::new(&mut rs, &[2, 2])?,
            1,
            ReduceOp::Sum,
        )?;
        Ok((r, red, g, part, rs))
    });
    for (r, red, g, part, rs) in out {
        assert_eq!(red, if r == 1 { vec![2, 2] } else { vec![1, 1] });
        if r == 0 {
            assert_eq!(g, vec![0, 10, 1, 11]);
        }
        assert_eq!(part, [5 + 2 * r as i32, 6 + 2 * r as i32]);
        for i in 0..2 {
            for j in 0..2 {
                assert_eq!(rs[i * 2 + j], 2.0 * (i * 4 + 2 * r + j) as f32 + 1.0);
            }
        }
    }
}

#[test]
fn send_recv_and_p2p_ring() {
    let size = 3;
    let out = run_ranks(size, Config::default(), |comm| {
        let r = comm.rank();
        let (next, prev) = ((r + 1) % size, (r + size - 1) % size);
        let data = iota(6, 1.0, 10.0 * r as f32); // 2x3, sent transposed (3x2)
        let mut buf = vec![-1f32; 12]; // 3x4, received into every other column
        comm.p2p_group(|g| {
            g.send(TensorRef::new(&data, &[2, 3])?.permute(&[1, 0])?, next)?;
            g.recv(TensorMut::new(&mut buf, &[3, 4])?.slice(1, 0, 4, 2)?, prev)
        })?;
        // Blocking pair between ranks 0 and 1.
        let mut v = [r as f64];
        match r {
            0 => comm.send(&TensorRef::from_slice(&v), 1)?,
            1 => comm.recv(&mut TensorMut::from_slice(&mut v), 0)?,
            _ => {}
        }
        Ok((prev, buf, v[0]))
    });
    for (rank, (prev, buf, v)) in out.into_iter().enumerate() {
        for i in 0..3 {
            for j in 0..4 {
                let want = if j % 2 == 0 {
                    (10 * prev + (j / 2) * 3 + i) as f32
                } else {
                    -1.0
                };
                assert_eq!(buf[i * 4 + j], want);
            }
        }
        assert_eq!(v, if rank == 1 { 0.0 } else { rank as f64 });
    }
}

#[test]
fn split_group_and_queries() {
    let size = 4;
    let out = run_ranks(size, Config::default(), |comm| {
        comm.barrier()?;
        comm.reserve(1 << 16)?;
        let r = comm.rank();
        let sub = comm
            .split((r % 2) as i32, -(r as i32))?
            .expect("a colour gives a communicator");
        let mut x = [r as i32];
        sub.all_reduce(&mut TensorMut::from_slice(&mut x), ReduceOp::Sum)?;
        let info = (sub.size(), sub.rank(), sub.global_rank(0)?);
        drop(sub);
        let grp = comm.group(&[3, 1])?;
        let grp_info = match &grp {
            Some(g) => {
                g.barrier()?; // used once before it is dropped (see the Python tests)
                Some((g.size(), g.rank(), g.global_rank(g.rank())?))
            }
            None => None,
        };
        drop(grp);
        let none = comm.split(if r == 0 { SPLIT_NOCOLOR } else { 7 }, 0)?;
        if let Some(n) = &none {
            n.barrier()?;
        }
        let none_is_none = none.is_none();
        drop(none);
        comm.barrier()?;
        Ok((r, x[0], info, grp_info, none_is_none))
    });
    for (r, sum, info, grp_info, none_is_none) in out {
        assert_eq!(sum, if r % 2 == 0 { 2 } else { 4 });
        assert_eq!(info, (2, if r >= 2 { 0 } else { 1 }, 2 + r % 2));
        assert_eq!(
            grp_info,
            if r % 2 == 1 {
                Some((2, if r == 3 { 0 } else { 1 }, r))
            } else {
                None
            }
        );
        assert_eq!(none_is_none, r == 0);
    }
}

#[test]
fn errors_carry_status_and_message() {
    let out = run_ranks(2, Config::default(), |comm| {
        let mut x = [1f32, 2.0];
        let bad_root = comm
            .broadcast(&mut TensorMut::from_slice(&mut x), 9)
            .unwrap_err();
        // A CUDA tensor on a host-only communicator (never dereferenced).
        let raw = raw_descriptor(
            0x7f00_0000_0000 as *mut _,
            DType::Float32,
            Device::Cuda(0),
            &[4],
            None,
        )?;
        let cuda = comm
            .all_reduce(&mut unsafe { TensorMut::from_raw(raw) }, ReduceOp::Sum)
            .unwrap_err();
        // A failure inside a group is returned, and the group still ends.
        let y = [0f32; 2];
        let in_group = comm
            .p2p_group(|g| g.send(TensorRef::from_slice(&y), 9))
            .unwrap_err();
        comm.barrier()?;
        Ok((bad_root, cuda, in_group))
    });
    for (bad_root, cuda, in_group) in out {
        assert_eq!(bad_root.status(), Status::InvalidArgument);
        assert_eq!(bad_root.op(), "diffcoll_broadcast");
        assert!(bad_root.message().contains("root 9"), "{bad_root}");
        assert!(bad_root.to_string().contains(bad_root.message()));
        assert_eq!(cuda.status(), Status::Unsupported);
        assert!(!cuda.message().is_empty());
        assert_eq!(in_group.status(), Status::InvalidArgument, "{in_group}");
        assert_eq!(in_group.op(), "diffcoll_send");
    }
}

#[test]
fn timeout() {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let config = Config {
        timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let out = run_ranks(2, config, |comm| {
        if comm.rank() == 1 {
            // Stays connected but never joins the all_reduce.
            let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            return Ok(None);
        }
        let mut x = [0f32; 2];
        let e = comm
            .all_reduce(&mut TensorMut::from_slice(&mut x), ReduceOp::Sum)
            .unwrap_err();
        tx.send(()).unwrap();
        Ok(Some(e))
    });
    let e = out[0].as_ref().unwrap();
    assert_eq!(e.status(), Status::Timeout, "{e}");
}

#[test]
fn version_and_statuses() {
    let (major, minor, patch) = diffcoll::version();
    assert_eq!(
        major * 10000 + minor * 100 + patch,
        diffcoll::sys::DIFFCOLL_VERSION
    );
    for code in 1..=13 {
        let s = Status::from_code(code).unwrap();
        assert!(!matches!(s, Status::Unknown(_)));
        assert_eq!(s.code(), code);
    }
    assert_eq!(Status::from_code(0), None);
    assert_eq!(Status::Timeout.to_string(), "timed out");
}

#[test]
fn wrap_nccl_without_cuda() {
    let probe = Comm::create(
        &format!("local://rust-probe-{}", std::process::id()),
        0,
        1,
        &Config {
            device_id: Some(0),
            ..Config::default()
        },
    );
    if !matches!(&probe, Err(e) if e.status() == Status::Unsupported) {
        eprintln!(
            "skipped: needs a diffcoll built without CUDA (the fake ncclComm_t would be used)"
        );
        return;
    }
    let rdv = format!("local://rust-nccl-{}", std::process::id());
    // SAFETY: a build without CUDA never dereferences the fake pointer.
    let e = unsafe { Comm::wrap_nccl(0x10 as *mut _, &rdv, &Config::default()) }.unwrap_err();
    assert_eq!(
        (e.status(), e.op()),
        (Status::Unsupported, "diffcoll_comm_wrap_nccl")
    );
    assert!(e.message().contains("without CUDA"), "{e}");
}

/// The rows `range` of `whole` (row-major `shape`) along `axis`, contiguous.
fn take(whole: &[f32], shape: &[usize], axis: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut out = Vec::with_capacity(outer * range.len() * inner);
    for o in 0..outer {
        let base = o * shape[axis];
        out.extend_from_slice(&whole[(base + range.start) * inner..(base + range.end) * inner]);
    }
    out
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// GroupNorm of the whole [N, C, H, W] activation, in f64.
fn group_norm_ref(
    x: &[f32],
    shape: [usize; 4],
    groups: usize,
    w: &[f32],
    b: &[f32],
    eps: f64,
) -> Vec<f32> {
    let [n, c, h, wd] = shape;
    let per = c / groups * h * wd;
    let mut out = vec![0f32; x.len()];
    for s in 0..n {
        for g in 0..groups {
            let base = (s * c + g * (c / groups)) * h * wd;
            let xs = &x[base..base + per];
            let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / per as f64;
            let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / per as f64;
            for (i, &v) in xs.iter().enumerate() {
                let ch = g * (c / groups) + i / (h * wd);
                out[base + i] =
                    (((v as f64 - mean) / (var + eps).sqrt()) * w[ch] as f64 + b[ch] as f64) as f32;
            }
        }
    }
    out
}

#[test]
fn group_norm_of_split_activation() {
    // Heights 7 and 2 over 3 ranks (the second leaves rank 2 an empty slab).
    for h in [7usize, 2] {
        let shape = [2usize, 4, h, 3];
        let whole = iota(shape.iter().product(), 0.37, -3.0)
            .iter()
            .map(|v| (v * 1.7).sin() * 4.0 + v * 0.1)
            .collect::<Vec<f32>>();
        let (w, b) = (iota(4, 0.5, 0.75), iota(4, -0.25, 0.5));
        let want = group_norm_ref(&whole, shape, 2, &w, &b, 1e-6);
        run_ranks(3, Config::default(), |comm| {
            let rows = split_extent(h, comm.size(), comm.rank())?;
            let slab_shape = [2, 4, rows.len(), 3];
            let mut slab = take(&whole, &shape, 2, rows.clone());
            let expected = take(&want, &shape, 2, rows.clone());
            let (wt, bt) = (TensorRef::from_slice(&w), TensorRef::from_slice(&b));
            // Into a channels-last output ([N, H, W, C] memory viewed as [N, C, H, W]).
            let mut nhwc = vec![0f32; slab.len()];
            comm.group_norm(
                InOut::Both(
                    TensorRef::new(&slab, &slab_shape)?,
                    TensorMut::new(&mut nhwc, &[2, rows.len(), 3, 4])?.permute(&[0, 3, 1, 2])?,
                ),
                Some(&wt),
                Some(&bt),
                2,
                1e-6,
            )?;
            let mut back = vec![0f32; slab.len()];
            for (i, v) in back.iter_mut().enumerate() {
                let (n, rest) = (i / (4 * rows.len() * 3), i % (4 * rows.len() * 3));
                let (c, hw) = (rest / (rows.len() * 3), rest % (rows.len() * 3));
                *v = nhwc[(n * rows.len() * 3 + hw) * 4 + c];
            }
            assert_close(&back, &expected, 1e-5, "channels-last");
            // In place.
            comm.group_norm(
                InOut::InPlace(TensorMut::new(&mut slab, &slab_shape)?),
                Some(&wt),
                Some(&bt),
                2,
                1e-6,
            )?;
            assert_close(&slab, &expected, 1e-5, "in place");
            Ok(())
        });
    }
    // Bad input on every rank (so that none waits): 3 groups of 4 channels.
    let errs = run_ranks(2, Config::default(), |comm| {
        let mut x = vec![1f32; 2 * 4 * 3];
        Ok(comm
            .group_norm(
                InOut::InPlace(TensorMut::new(&mut x, &[2, 4, 3])?),
                None,
                None,
                3,
                1e-6,
            )
            .unwrap_err())
    });
    for e in errs {
        assert_eq!(
            (e.status(), e.op()),
            (Status::InvalidArgument, "diffcoll_group_norm")
        );
        assert!(!e.message().is_empty());
    }
}

/// residual_out and y of the fused norm in plain f32.
fn fused_norm_ref(
    xs: &[Vec<f32>],
    res: Option<&[f32]>,
    w: Option<&[f32]>,
    hidden: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut ro: Vec<f32> = (0..xs[0].len())
        .map(|i| xs.iter().map(|x| x[i]).sum::<f32>())
        .collect();
    if let Some(r) = res {
        ro.iter_mut().zip(r).for_each(|(o, r)| *o += r);
    }
    let mut y = vec![0f32; ro.len()];
    for (row, yrow) in ro.chunks(hidden).zip(y.chunks_mut(hidden)) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / hidden as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for (j, (yv, v)) in yrow.iter_mut().zip(row).enumerate() {
            *yv = v * inv * w.map_or(1.0, |w| w[j]);
        }
    }
    (ro, y)
}

#[test]
fn fused_norm_against_f32_reference() {
    let (tokens, hidden, eps) = (5usize, 8usize, 1e-6f32);
    for size in [1usize, 3] {
        let xs: Vec<Vec<f32>> = (0..size)
            .map(|r| iota(tokens * hidden, 0.13, r as f32 - 2.0))
            .collect();
        let residual = iota(tokens * hidden, -0.05, 1.0);
        let weight = iota(hidden, 0.25, 0.5);
        let (ro_want, y_want) = fused_norm_ref(&xs, Some(&residual), Some(&weight), hidden, eps);
        let (plain_ro, plain_y) = fused_norm_ref(&xs, None, None, hidden, eps);
        run_ranks(size, Config::default(), |comm| {
            let shape = [tokens, hidden];
            let mut ws = FusedNormWorkspace::new(comm, tokens, hidden, DType::Float32)?;
            let x = &xs[comm.rank()];
            let wt = TensorRef::from_slice(&weight);
            // Out of place, residual and weight.
            let (mut y, mut ro) = (vec![0f32; x.len()], vec![0f32; x.len()]);
            ws.apply(
                InOut::Both(TensorRef::new(x, &shape)?, TensorMut::new(&mut y, &shape)?),
                InOut::Both(
                    TensorRef::new(&residual, &shape)?,
                    TensorMut::new(&mut ro, &shape)?,
                ),
                Some(&wt),
                eps,
                FusedNormPath::Auto,
            )?;
            assert_close(&ro, &ro_want, 1e-6, "residual_out");
            assert_close(&y, &y_want, 1e-5, "y");
            // In place: y over x, the residual stream updated.
            let (mut xi, mut ri) = (x.clone(), residual.clone());
            ws.apply(
                InOut::InPlace(TensorMut::new(&mut xi, &shape)?),
                InOut::InPlace(TensorMut::new(&mut ri, &shape)?),
                Some(&wt),
                eps,
                FusedNormPath::Auto,
            )?;
            assert_close(&ri, &ro_want, 1e-6, "residual in place");
            assert_close(&xi, &y_want, 1e-5, "y in place");
            // No residual, no weight; residual_out only stored.
            ws.apply(
                InOut::Both(TensorRef::new(x, &shape)?, TensorMut::new(&mut y, &shape)?),
                InOut::Out(TensorMut::new(&mut ro, &shape)?),
                None,
                eps,
                FusedNormPath::Auto,
            )?;
            assert_close(&ro, &plain_ro, 1e-6, "allreduce");
            assert_close(&y, &plain_y, 1e-5, "y without residual");
            // Larger than the workspace serves: refused before communicating.
            let mut big = vec![0f32; (tokens + 1) * hidden];
            let e = ws
                .apply(
                    InOut::InPlace(TensorMut::new(&mut big, &[tokens + 1, hidden])?),
                    InOut::None,
                    None,
                    eps,
                    FusedNormPath::Auto,
                )
                .unwrap_err();
            assert_eq!(
                (e.status(), e.op()),
                (Status::InvalidArgument, "diffcoll_fused_norm")
            );
            assert!(!e.message().is_empty());
            Ok(())
        });
    }
    let e = run_ranks(1, Config::default(), |comm| {
        Ok(FusedNormWorkspace::new(comm, 0, 8, DType::Float32).unwrap_err())
    })
    .remove(0);
    assert_eq!(
        (e.status(), e.op()),
        (
            Status::InvalidArgument,
            "diffcoll_fused_norm_workspace_create"
        )
    );
    assert!(!e.message().is_empty());
}

#[test]
fn ulysses_forward_against_slices_and_back_bit_for_bit() {
    // q with 5 heads and k with 2 (fewer than 3 ranks: one rank gets none),
    // [B, S, H, D] = [2, 7, H, 3].
    let (b, s, d) = (2usize, 7usize, 3usize);
    for size in [1usize, 2, 3] {
        let q = iota(b * s * 5 * d, 0.5, -1.0);
        let k = iota(b * s * 2 * d, -0.25, 3.0);
        run_ranks(size, Config::default(), |comm| {
            let (p, r) = (comm.size(), comm.rank());
            let rows = split_extent(s, p, r)?;
            let (hq, hk) = (split_extent(5, p, r)?, split_extent(2, p, r)?);
            let q_in = take(&q, &[b, s, 5, d], 1, rows.clone());
            let k_in = take(&k, &[b, s, 2, d], 1, rows.clone());
            // q's output lives as [B, H_r, S, D] (viewed as [B, S, H_r, D]).
            let (mut q_bhsd, mut k_out) = (
                vec![0f32; b * s * hq.len() * d],
                vec![0f32; b * s * hk.len() * d],
            );
            comm.ulysses_all_to_all(
                &[
                    TensorRef::new(&q_in, &[b, rows.len(), 5, d])?,
                    TensorRef::new(&k_in, &[b, rows.len(), 2, d])?,
                ],
                &mut [
                    TensorMut::new(&mut q_bhsd, &[b, hq.len(), s, d])?.permute(&[0, 2, 1, 3])?,
                    TensorMut::new(&mut k_out, &[b, s, hk.len(), d])?,
                ],
                1,
                -2,
                UlyssesDirection::SeqToHead,
            )?;
            let q_heads = take(&q, &[b, s, 5, d], 2, hq.clone());
            let mut q_out = vec![0f32; q_bhsd.len()];
            for bi in 0..b {
                for si in 0..s {
                    for h in 0..hq.len() {
                        let dst = ((bi * s + si) * hq.len() + h) * d;
                        let src = ((bi * hq.len() + h) * s + si) * d;
                        q_out[dst..dst + d].copy_from_slice(&q_bhsd[src..src + d]);
                    }
                }
            }
            assert_eq!(q_out, q_heads, "q of rank {r}");
            assert_eq!(
                k_out,
                take(&k, &[b, s, 2, d], 2, hk.clone()),
                "k of rank {r}"
            );
            // And back.
            let (mut q_back, mut k_back) = (vec![0f32; q_in.len()], vec![0f32; k_in.len()]);
            comm.ulysses_all_to_all(
                &[
                    TensorRef::new(&q_bhsd, &[b, hq.len(), s, d])?.permute(&[0, 2, 1, 3])?,
                    TensorRef::new(&k_out, &[b, s, hk.len(), d])?,
                ],
                &mut [
                    TensorMut::new(&mut q_back, &[b, rows.len(), 5, d])?,
                    TensorMut::new(&mut k_back, &[b, rows.len(), 2, d])?,
                ],
                1,
                2,
                UlyssesDirection::HeadToSeq,
            )?;
            assert_eq!((q_back, k_back), (q_in.clone(), k_in));
            // The same axis twice: refused on every rank before communicating.
            let e = comm
                .ulysses_all_to_all(
                    &[TensorRef::new(&q_in, &[b, rows.len(), 5, d])?],
                    &mut [TensorMut::new(&mut q_out, &[b, s, hq.len(), d])?],
                    1,
                    1,
                    UlyssesDirection::SeqToHead,
                )
                .unwrap_err();
            assert_eq!(
                (e.status(), e.op()),
                (Status::InvalidArgument, "diffcoll_ulysses_all_to_all")
            );
            assert!(!e.message().is_empty());
            Ok(())
        });
    }
}

#[test]
fn ring_visits_every_block_once() {
    for size in 1..=4usize {
        run_ranks(size, Config::default(), |comm| {
            let (p, n) = (comm.size(), comm.rank());
            let block = |owner: usize| {
                (
                    iota(4, 1.0, 10.0 * owner as f32),
                    iota(3, -1.0, 100.0 * owner as f32),
                )
            };
            let (mut k0, mut v0) = block(n);
            let (mut k1, mut v1) = (vec![0f32; 4], vec![0f32; 3]);
            {
                let mut ring = Ring::new(comm, vec![&mut k0, &mut v0], vec![&mut k1, &mut v1])?;
                let mut seen = Vec::new();
                ring.for_each_step(|s, kv| {
                    let owner = (n + p - s) % p;
                    let (k, v) = block(owner);
                    assert_eq!((kv[0], kv[1]), (&k[..], &v[..]), "rank {n} step {s}");
                    seen.push(owner);
                    Ok(())
                })?;
                seen.sort_unstable();
                assert_eq!(seen, (0..p).collect::<Vec<_>>());
                // By hand: one more step, then errors of a misused ring.
                let before = ring.current();
                ring.start()?;
                assert_eq!(
                    ring.start().unwrap_err().status(),
                    Status::InvalidArgument,
                    "a second start while in flight"
                );
                assert_eq!(
                    ring.half_mut(0).unwrap_err().status(),
                    Status::InvalidArgument
                );
                assert_eq!(ring.wait()?, 1 - before);
                let e = ring.wait().unwrap_err();
                assert_eq!(
                    (e.status(), e.op()),
                    (Status::InvalidArgument, "diffcoll_ring_wait")
                );
                assert!(!e.message().is_empty());
                ring.half_mut(ring.current())?[0][0] = -1.0;
                assert_eq!(ring.current_half()[0][0], -1.0);
            }
            // Halves of different lengths.
            let (mut a, mut c) = (vec![0f32; 4], vec![0f32; 5]);
            let e = Ring::new(comm, vec![&mut a], vec![&mut c]).unwrap_err();
            assert_eq!(
                (e.status(), e.op()),
                (Status::InvalidArgument, "diffcoll_ring_create")
            );
            assert!(!e.message().is_empty());
            Ok(())
        });
    }
}

#[test]
fn usp_mesh_groups_follow_the_documented_order() {
    for (u, r, c, d) in [(2usize, 2usize, 2usize, 1usize), (2, 1, 2, 2)] {
        run_ranks(8, Config::default(), |world| {
            let degrees = UspDegrees {
                ulysses: u,
                ring: r,
                cfg: c,
                data: None,
            };
            let mesh = UspMesh::new(world, &degrees)?;
            assert_eq!(
                mesh.degrees,
                UspDegrees {
                    data: Some(d),
                    ..degrees
                }
            );
            let n = world.rank();
            let (cu, cr, cc, cd) = (n % u, (n / u) % r, (n / (u * r)) % c, n / (u * r * c));
            let at = |u_: usize, r_: usize, c_: usize, d_: usize| u_ + u * (r_ + r * (c_ + c * d_));
            let cases: [(&Comm, Vec<usize>, usize); 5] = [
                (
                    &mesh.ulysses,
                    (0..u).map(|i| at(i, cr, cc, cd)).collect(),
                    cu,
                ),
                (&mesh.ring, (0..r).map(|i| at(cu, i, cc, cd)).collect(), cr),
                (
                    &mesh.sp,
                    (0..u * r).map(|i| at(i % u, i / u, cc, cd)).collect(),
                    cu + u * cr,
                ),
                (&mesh.cfg, (0..c).map(|i| at(cu, cr, i, cd)).collect(), cc),
                (&mesh.data, (0..d).map(|i| at(cu, cr, cc, i)).collect(), cd),
            ];
            for (i, (g, members, rank)) in cases.iter().enumerate() {
                assert_eq!(
                    (g.size(), g.rank()),
                    (members.len(), *rank),
                    "group {i} of rank {n}"
                );
                let got = (0..g.size())
                    .map(|l| g.global_rank(l))
                    .collect::<Result<Vec<_>, _>>()?;
                assert_eq!(&got, members, "group {i} of rank {n}");
            }
            // Each group is an ordinary, owned communicator.
            let UspMesh { ulysses, sp, .. } = mesh;
            let mut x = vec![1f32; 2];
            sp.all_reduce(&mut TensorMut::from_slice(&mut x), ReduceOp::Sum)?;
            assert_eq!(x, [(u * r) as f32; 2]);
            drop(ulysses);
            // Degrees whose product is not the size: refused before communicating.
            let bad = UspDegrees {
                ulysses: 3,
                data: Some(1),
                ..Default::default()
            };
            let e = UspMesh::new(world, &bad).unwrap_err();
            assert_eq!(
                (e.status(), e.op()),
                (Status::InvalidArgument, "diffcoll_usp_mesh_create")
            );
            assert!(!e.message().is_empty());
            Ok(())
        });
    }
}

// ---- grouped-query attention and FP8 transport ----------------------------

fn waves(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.37 + seed).sin() * (2.0 + seed))
        .collect()
}

/// o[:, i] = softmax(q_i k_j^T / sqrt(D)) v_j with j = kv_of(i), for
/// [1, S, H, D] row-major q, k, v, o of qh, kh, kh, qh heads; f32, fixed order.
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (s, qh, kh, d): (usize, usize, usize, usize),
    kv_of: impl Fn(usize) -> usize,
) -> Vec<f32> {
    let mut o = vec![0f32; s * qh * d];
    let scale = 1.0 / (d as f32).sqrt();
    for i in 0..qh {
        let j = kv_of(i);
        for si in 0..s {
            let mut logits: Vec<f32> = (0..s)
                .map(|t| {
                    (0..d).fold(0f32, |acc, e| {
                        acc + q[(si * qh + i) * d + e] * k[(t * kh + j) * d + e]
                    }) * scale
                })
                .collect();
            let top = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for l in logits.iter_mut() {
                *l = (*l - top).exp();
                sum += *l;
            }
            for e in 0..d {
                let acc = (0..s).fold(0f32, |acc, t| acc + logits[t] * v[(t * kh + j) * d + e]);
                o[(si * qh + i) * d + e] = acc / sum;
            }
        }
    }
    o
}

#[test]
fn gqa_ulysses_sends_the_attended_kv_heads_and_matches_the_copy_up_path() {
    // [1, S, H, D]: 8 query heads, 2 k/v heads (groups of 4).
    let (s, nq_all, nk_all, d, g) = (9usize, 8usize, 2usize, 4usize, 4usize);
    let (wq, wk, wv) = (
        waves(s * nq_all * d, 0.2),
        waves(s * nk_all * d, 0.9),
        waves(s * nk_all * d, 1.7),
    );
    let copy_up = |w: &[f32]| -> Vec<f32> {
        (0..s * nq_all)
            .flat_map(|sh| w[((sh / nq_all) * nk_all + sh % nq_all / g) * d..][..d].to_vec())
            .collect()
    };
    let (wk_up, wv_up) = (copy_up(&wk), copy_up(&wv));
    for size in 1..=5usize {
        run_ranks(size, Config::default(), |comm| {
            let (p, r) = (comm.size(), comm.rank());
            let (rows, qh) = (split_extent(s, p, r)?, split_extent(nq_all, p, r)?);
            let kv = ulysses_kv_heads(nq_all, nk_all, p, r)?;
            assert_eq!(
                kv.len(),
                qh.clone()
                    .map(|h| h / g)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            );
            let ins = [
                take(&wq, &[1, s, nq_all, d], 1, rows.clone()),
                take(&wk, &[1, s, nk_all, d], 1, rows.clone()),
                take(&wv, &[1, s, nk_all, d], 1, rows.clone()),
            ];
            let (mut q_h, mut k_h, mut v_h) = (
                vec![0f32; s * qh.len() * d],
                vec![0f32; s * kv.len() * d],
                vec![0f32; s * kv.len() * d],
            );
            let options = UlyssesOptions {
                query_heads: nq_all,
                ..Default::default()
            };
            comm.ulysses_all_to_all_with(
                &[
                    TensorRef::new(&ins[0], &[1, rows.len(), nq_all, d])?,
                    TensorRef::new(&ins[1], &[1, rows.len(), nk_all, d])?,
                    TensorRef::new(&ins[2], &[1, rows.len(), nk_all, d])?,
                ],
                &mut [
                    TensorMut::new(&mut q_h, &[1, s, qh.len(), d])?,
                    TensorMut::new(&mut k_h, &[1, s, kv.len(), d])?,
                    TensorMut::new(&mut v_h, &[1, s, kv.len(), d])?,
                ],
                1,
                2,
                UlyssesDirection::SeqToHead,
                &options,
            )?;
            assert_eq!(
                q_h,
                take(&wq, &[1, s, nq_all, d], 2, qh.clone()),
                "q of rank {r}"
            );
            assert_eq!(
                k_h,
                take(&wk, &[1, s, nk_all, d], 2, kv.clone()),
                "k of rank {r}"
            );
            assert_eq!(
                v_h,
                take(&wv, &[1, s, nk_all, d], 2, kv.clone()),
                "v of rank {r}"
            );
            // Attention on this rank's heads, then back to tokens; against
            // the same with k/v copied up to 8 heads first.
            let back = |o_h: Vec<f32>| -> Result<Vec<f32>, Error> {
                let mut o = vec![0f32; rows.len() * nq_all * d];
                comm.ulysses_all_to_all(
                    &[TensorRef::new(&o_h, &[1, s, qh.len(), d])?],
                    &mut [TensorMut::new(&mut o, &[1, rows.len(), nq_all, d])?],
                    1,
                    2,
                    UlyssesDirection::HeadToSeq,
                )?;
                Ok(o)
            };
            let gqa = back(attend(&q_h, &k_h, &v_h, (s, qh.len(), kv.len(), d), |i| {
                (qh.start + i) / g - kv.start
            }))?;
            let (ku_in, vu_in) = (
                take(&wk_up, &[1, s, nq_all, d], 1, rows.clone()),
                take(&wv_up, &[1, s, nq_all, d], 1, rows.clone()),
            );
            let (mut ku, mut vu) = (vec![0f32; s * qh.len() * d], vec![0f32; s * qh.len() * d]);
            comm.ulysses_all_to_all(
                &[
                    TensorRef::new(&ku_in, &[1, rows.len(), nq_all, d])?,
                    TensorRef::new(&vu_in, &[1, rows.len(), nq_all, d])?,
                ],
                &mut [
                    TensorMut::new(&mut ku, &[1, s, qh.len(), d])?,
                    TensorMut::new(&mut vu, &[1, s, qh.len(), d])?,
                ],
                1,
                2,
                UlyssesDirection::SeqToHead,
            )?;
            let copied = back(attend(&q_h, &ku, &vu, (s, qh.len(), qh.len(), d), |i| i))?;
            assert!(
                gqa.iter()
                    .zip(&copied)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "rank {r}: GQA-aware vs copy-up"
            );
            Ok(())
        });
    }
}

#[test]
fn fp8_all_gather_is_within_the_bound_and_equal_on_every_rank() {
    // [1, rows, H, D] per rank, e4m3, 4 rows per scale.
    let (p, rows, h, d) = (3usize, 8usize, 2usize, 16usize);
    let whole = waves(p * rows * h * d, 0.5);
    let outs = run_ranks(p, Config::default(), |comm| {
        let r = comm.rank();
        let input = take(&whole, &[1, p * rows, h, d], 1, r * rows..(r + 1) * rows);
        let mut out = vec![0f32; whole.len()];
        let options = AllGatherOptions {
            wire_format: WireFormat::Fp8E4m3,
            scale_block: 4,
        };
        comm.all_gather_with(
            &TensorRef::new(&input, &[1, rows, h, d])?,
            &mut TensorMut::new(&mut out, &[1, p * rows, h, d])?,
            1,
            &options,
        )?;
        Ok(out)
    });
    let mut changed = 0;
    for (i, &x) in whole.iter().enumerate() {
        let (tok, head) = (i / (h * d), i / d % h);
        let first = tok / 4 * 4;
        let w = &whole;
        let amax = (first..first + 4)
            .flat_map(|t| (0..d).map(move |e| w[(t * h + head) * d + e].abs()))
            .fold(0f32, f32::max);
        let bound = x.abs() / 16.0 + amax / 448.0 / 1024.0 + 1e-6 * x.abs();
        assert!(
            outs.iter().all(|o| o[i].to_bits() == outs[0][i].to_bits()),
            "element {i} differs between ranks"
        );
        assert!(
            (outs[0][i] - x).abs() <= bound,
            "element {i} = {}, want {x} within {bound}",
            outs[0][i]
        );
        changed += (outs[0][i] != x) as usize;
    }
    assert!(
        changed > whole.len() / 3,
        "FP8 changed only {changed} values"
    );
}

#[test]
fn gqa_and_fp8_errors() {
    let e = ulysses_kv_heads(8, 3, 2, 0).unwrap_err();
    assert_eq!(
        (e.status(), e.op()),
        (Status::InvalidArgument, "diffcoll_ulysses_kv_heads")
    );
    run_ranks(2, Config::default(), |comm| {
        let x = vec![0f32; 4 * 2 * 2]; // k/v [1, S_r, 2, D], S = 8 over 2 ranks
        let mut y = vec![0f32; 8 * 2];
        let options = UlyssesOptions {
            query_heads: 3,
            ..Default::default()
        };
        let e = comm
            .ulysses_all_to_all_with(
                &[TensorRef::new(&x, &[1, 4, 2, 2])?],
                &mut [TensorMut::new(&mut y, &[1, 8, 1, 2])?],
                1,
                2,
                UlyssesDirection::SeqToHead,
                &options,
            )
            .unwrap_err();
        assert_eq!(
            (e.status(), e.op()),
            (Status::InvalidArgument, "diffcoll_ulysses_all_to_all_ex")
        );
        assert!(
            e.message().contains("neither the 3 query heads"),
            "{}",
            e.message()
        );
        let mut whole = vec![0f32; 8 * 2 * 2];
        let options = AllGatherOptions {
            wire_format: WireFormat::Fp8E5m2,
            scale_block: 0,
        };
        let e = comm
            .all_gather_with(
                &TensorRef::new(&x, &[1, 4, 2, 2])?,
                &mut TensorMut::new(&mut whole, &[1, 8, 2, 2])?,
                1,
                &options,
            )
            .unwrap_err();
        assert!(e.message().contains("scale_block 0"), "{}", e.message());
        Ok(())
    });
}
