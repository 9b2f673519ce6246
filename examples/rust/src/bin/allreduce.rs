// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! diffcoll from Rust: 4 ranks as threads (`local://` rendezvous) run an
//! all_reduce and an all_gather on host tensors made from slices, and check
//! the results. Started once per rank with torchrun-style variables (RANK,
//! WORLD_SIZE, DIFFCOLL_STORE=file:///shared/dir) it runs that rank instead.
use diffcoll::{Comm, Config, ReduceOp, Result, TensorMut, TensorRef};

fn rank_main(comm: &Comm) -> Result<()> {
    let (rank, size) = (comm.rank(), comm.size());

    // all_reduce (sum) in place on a transposed view of a 3x4 matrix: no copy.
    let mut x: Vec<f32> = (0..12).map(|i| (i + rank) as f32).collect();
    comm.all_reduce(
        &mut TensorMut::new(&mut x, &[3, 4])?.permute(&[1, 0])?,
        ReduceOp::Sum,
    )?;
    for (i, v) in x.iter().enumerate() {
        assert_eq!(*v, (size * i + size * (size - 1) / 2) as f32, "all_reduce");
    }

    // all_gather: every rank's two values, concatenated.
    let mine = [rank as i32, 10 * rank as i32];
    let mut gathered = vec![0i32; 2 * size];
    comm.all_gather(
        &TensorRef::from_slice(&mine),
        &mut TensorMut::from_slice(&mut gathered),
        0,
    )?;
    for r in 0..size {
        assert_eq!(
            &gathered[2 * r..2 * r + 2],
            &[r as i32, 10 * r as i32],
            "all_gather"
        );
    }

    if rank == 0 {
        let (major, minor, patch) = diffcoll::version();
        println!("diffcoll {major}.{minor}.{patch}: {size} ranks OK; x[..4] = {:?}, gathered = {gathered:?}", &x[..4]);
    }
    Ok(())
}

fn main() -> Result<()> {
    let config = Config::default();
    if std::env::var_os("DIFFCOLL_STORE").is_some() {
        return rank_main(&Comm::from_env(&config)?);
    }
    let size = 4;
    std::thread::scope(|s| {
        let ranks: Vec<_> = (0..size)
            .map(|rank| {
                let config = &config;
                s.spawn(move || {
                    rank_main(&Comm::create(
                        "local://rust-allreduce-example",
                        rank,
                        size,
                        config,
                    )?)
                })
            })
            .collect();
        ranks
            .into_iter()
            .try_for_each(|h| h.join().expect("a rank panicked"))
    })
}
