//! Multi-rank tests: ranks are threads of this process meeting at a
//! `local://` rendezvous.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use diffcoll::{
    raw_descriptor, Comm, Config, DType, Device, Error, ReduceOp, Status, TensorMut, TensorRef,
    BF16, SPLIT_NOCOLOR,
};

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
