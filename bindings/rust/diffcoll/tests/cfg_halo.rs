// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! CFG policies and halo exchange on several ranks (threads of this process
//! meeting at a `local://` rendezvous), checked against references computed
//! here.
use std::sync::atomic::{AtomicUsize, Ordering};

use diffcoll::{
    split_extent, CfgOptions, CfgOrder, CfgPolicy, CfgRole, CfgTerm, Comm, Config, Error,
    HaloBoundary, HaloConfig, Status, TensorMut, TensorRef,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn run_ranks<T, F>(size: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&mut Comm) -> Result<T, Error> + Sync,
{
    let name = format!(
        "local://rust-cfg-halo-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let results: Vec<Result<T, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let (name, f) = (&name, &f);
                s.spawn(move || {
                    let mut comm = Comm::create(name, rank, size, &Config::default())?;
                    comm.barrier()?;
                    let out = f(&mut comm)?;
                    comm.barrier()?; // nobody drops while a peer may still communicate
                    Ok(out)
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

fn waves(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.37 + seed).sin() * (3.0 + seed))
        .collect()
}

#[test]
fn cfg_policy_queries_and_errors() {
    let p = CfgPolicy::new(
        &[
            ("cond", CfgRole::Cond),
            ("uncond", CfgRole::Uncond),
            ("stg", CfgRole::Perturbed),
        ],
        0,
        &[
            CfgTerm {
                scale: 4.0,
                plus: 0,
                minus: 1,
            },
            CfgTerm {
                scale: 1.5,
                plus: 0,
                minus: 2,
            },
        ],
        &CfgOptions {
            rescale_phi: 0.7,
            zero_init_steps: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(p.num_branches(), 3);
    assert_eq!(p.weights().unwrap(), vec![6.5, -4.0, -1.5]);
    assert_eq!(
        p.branch(2).unwrap(),
        ("stg".to_string(), CfgRole::Perturbed)
    );
    assert_eq!(p.index("uncond").unwrap(), 1);
    let e = p.index("nope").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("cond"), "{e}");
    let o = p.options().unwrap();
    assert_eq!(
        (o.order, o.rescale_phi, o.zero_init_steps),
        (CfgOrder::Serial, 0.7, 1)
    );
    assert_eq!(p.dispatch(2, 1).unwrap(), vec![1, 2]);
    assert_eq!(
        p.dispatch(0, 0).unwrap_err().status(),
        Status::InvalidArgument
    );
    // The library's checks.
    let e = CfgPolicy::new(
        &[("a", CfgRole::Cond)],
        0,
        &[CfgTerm {
            scale: 1.0,
            plus: 0,
            minus: 0,
        }],
        &CfgOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        (e.status(), e.op()),
        (Status::InvalidArgument, "diffcoll_cfg_policy_create")
    );
    let e = CfgPolicy::new(
        &[("p", CfgRole::Perturbed)],
        0,
        &[],
        &CfgOptions {
            rescale_phi: 0.5,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    let mut x = vec![0f32; 4];
    let e = p
        .combine_serial(
            &[TensorRef::from_slice(&[1f32; 4])],
            &mut TensorMut::from_slice(&mut x),
            0,
        )
        .unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
}

/// Standard CFG on 2 ranks in PARALLEL order: the parallel combine equals the
/// serial one and an f32 reference bit for bit, with a transposed output on
/// rank 1; one policy shared by both ranks.
#[test]
fn cfg_combine_two_ranks_bitwise() {
    let (b, c, n) = (2usize, 3usize, 5usize);
    let preds = [waves(b * c * n, 0.5), waves(b * c * n, 1.7)];
    let policy = CfgPolicy::standard(
        7.5,
        &CfgOptions {
            order: CfgOrder::Parallel,
            ..Default::default()
        },
    )
    .unwrap();
    let results = run_ranks(2, |comm| {
        let mine = policy.dispatch(comm.size(), comm.rank())?;
        assert_eq!(mine, vec![comm.rank()]);
        let local: Vec<TensorRef<'_>> = mine
            .iter()
            .map(|&i| TensorRef::new(&preds[i], &[b, c, n]))
            .collect::<Result<_, _>>()?;
        let mut out = vec![0f32; b * c * n];
        if comm.rank() == 0 {
            comm.cfg_combine(
                &policy,
                &local,
                &mut TensorMut::new(&mut out, &[b, c, n])?,
                0,
            )?;
        } else {
            let mut view = TensorMut::new(&mut out, &[n, c, b])?.permute(&[2, 1, 0])?;
            comm.cfg_combine(&policy, &local, &mut view, 0)?;
            // Back to row-major [b, c, n] for the comparison.
            let t = out.clone();
            for i in 0..b {
                for j in 0..c {
                    for k in 0..n {
                        out[(i * c + j) * n + k] = t[(k * c + j) * b + i];
                    }
                }
            }
        }
        let mut serial = vec![0f32; b * c * n];
        policy.combine_serial(
            &[
                TensorRef::new(&preds[0], &[b, c, n])?,
                TensorRef::new(&preds[1], &[b, c, n])?,
            ],
            &mut TensorMut::new(&mut serial, &[b, c, n])?,
            0,
        )?;
        Ok((out, serial))
    });
    let w = policy.weights().unwrap();
    let (w0, w1) = (w[0] as f32, w[1] as f32);
    for (out, serial) in results {
        for i in 0..out.len() {
            let want = w0 * preds[0][i] + w1 * preds[1][i]; // f32, rounded after each step (no FMA in Rust)
            assert_eq!(out[i].to_bits(), serial[i].to_bits(), "element {i}");
            assert_eq!(out[i].to_bits(), want.to_bits(), "element {i}");
        }
    }
}

/// TORCH order: the option round-trips, and on f32 tensors the combine is
/// PyTorch's chain `uncond + g * (cond - uncond)`, every step rounded to f32.
#[test]
fn cfg_torch_order() {
    let (b, n) = (2usize, 7usize);
    let (cond, uncond) = (waves(b * n, 0.3), waves(b * n, 2.1));
    let policy = CfgPolicy::standard(
        5.3,
        &CfgOptions {
            order: CfgOrder::Torch,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(policy.options().unwrap().order, CfgOrder::Torch);
    let mut out = vec![0f32; b * n];
    policy
        .combine_serial(
            &[
                TensorRef::new(&cond, &[b, n]).unwrap(),
                TensorRef::new(&uncond, &[b, n]).unwrap(),
            ],
            &mut TensorMut::new(&mut out, &[b, n]).unwrap(),
            0,
        )
        .unwrap();
    for i in 0..out.len() {
        let want = uncond[i] + 5.3f32 * (cond[i] - uncond[i]); // no FMA in Rust
        assert_eq!(out[i].to_bits(), want.to_bits(), "element {i}");
    }
}

/// A chain of 3 ranks along H of an [N, H, W] tensor, zeros and replicate
/// boundaries: every padded slab equals the matching rows of the whole tensor
/// padded once; gather_slabs reassembles the whole.
#[test]
fn halo_chain_of_three_ranks() {
    let (nb, h, w) = (2usize, 10usize, 3usize);
    let whole = waves(nb * h * w, 0.1);
    for mode in [HaloBoundary::Zeros, HaloBoundary::Replicate] {
        let (before, after) = (2usize, 1usize);
        let results = run_ranks(3, |comm| {
            let rows = split_extent(h, comm.size(), comm.rank())?;
            let len = rows.len();
            let prows = before + len + after;
            let mut padded = vec![f32::NAN; nb * prows * w];
            let mut plan =
                comm.halo_plan(&HaloConfig::default().rows(before, after).row_boundary(mode))?;
            {
                let slab =
                    TensorRef::new(&whole, &[nb, h, w])?.slice(1, rows.start, rows.end, 1)?;
                plan.exchange_into(&slab, &mut TensorMut::new(&mut padded, &[nb, prows, w])?)?;
            }
            // Errors: a grid that does not match the size.
            let bad = HaloConfig {
                grid_rows: 2,
                grid_cols: 2,
                ..Default::default()
            };
            assert_eq!(
                comm.halo_plan(&bad).unwrap_err().status(),
                Status::InvalidArgument
            );
            drop(plan);
            // Reassemble the interiors on rank 0.
            let mut gathered = vec![0f32; nb * h * w];
            {
                let interior =
                    TensorRef::new(&padded, &[nb, prows, w])?.slice(1, before, before + len, 1)?;
                let mut g = TensorMut::new(&mut gathered, &[nb, h, w])?;
                let root_whole = if comm.rank() == 0 { Some(&mut g) } else { None };
                comm.gather_slabs(&interior, root_whole, 1, Some(0))?;
            }
            Ok((rows, padded, gathered))
        });
        for (rank, (rows, padded, gathered)) in results.into_iter().enumerate() {
            let prows = before + rows.len() + after;
            for n in 0..nb {
                for r in 0..prows {
                    let hh = rows.start as isize + r as isize - before as isize;
                    for x in 0..w {
                        let src = match mode {
                            _ if hh >= 0 && (hh as usize) < h => Some(hh as usize),
                            HaloBoundary::Replicate => Some(if hh < 0 { 0 } else { h - 1 }),
                            _ => None,
                        };
                        let want = src.map_or(0.0, |s| whole[(n * h + s) * w + x]);
                        assert_eq!(
                            padded[(n * prows + r) * w + x],
                            want,
                            "{mode:?} rank {rank} [{n},{r},{x}]"
                        );
                    }
                }
            }
            if rank == 0 {
                assert_eq!(gathered, whole);
            } else {
                assert!(gathered.iter().all(|&v| v == 0.0));
            }
        }
    }
    assert_eq!(split_extent(10, 3, 2).unwrap(), 7..10);
    assert_eq!(
        split_extent(10, 0, 0).unwrap_err().status(),
        Status::InvalidArgument
    );
}
