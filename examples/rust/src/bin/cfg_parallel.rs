// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! CFG-parallel from Rust: 2 ranks (threads, `local://` rendezvous) each run
//! one guidance branch of standard CFG, `uncond + 7.5 * (cond - uncond)`, and
//! `Comm::cfg_combine` leaves the combined prediction on both. In PARALLEL
//! order the result equals the serial combine of all branches bit for bit,
//! and an f32 reference computed here.
use diffcoll::{CfgOptions, CfgOrder, CfgPolicy, Comm, Config, Result, TensorMut, TensorRef};

const SHAPE: [usize; 3] = [2, 4, 16]; // batch, channels, pixels

/// Stands in for a forward pass of the model on one guidance branch.
fn denoise(branch: usize) -> Vec<f32> {
    let n: usize = SHAPE.iter().product();
    (0..n)
        .map(|i| (i as f32 * 0.21 + branch as f32).sin() * (2 + branch) as f32)
        .collect()
}

fn rank_main(comm: &Comm, policy: &CfgPolicy) -> Result<()> {
    // This rank runs only the branches the policy assigns to it.
    let mine = policy.dispatch(comm.size(), comm.rank())?;
    let preds: Vec<Vec<f32>> = mine.iter().map(|&b| denoise(b)).collect();
    let local = preds
        .iter()
        .map(|p| TensorRef::new(p, &SHAPE))
        .collect::<Result<Vec<_>>>()?;
    let mut out = vec![0f32; SHAPE.iter().product()];
    comm.cfg_combine(policy, &local, &mut TensorMut::new(&mut out, &SHAPE)?, 0)?;

    // Check: the serial combine of every branch, and the PARALLEL-order
    // formula in f32 (Rust never fuses a * b + c into an FMA by itself).
    let (cond, uncond) = (denoise(0), denoise(1));
    let mut serial = vec![0f32; out.len()];
    policy.combine_serial(
        &[
            TensorRef::new(&cond, &SHAPE)?,
            TensorRef::new(&uncond, &SHAPE)?,
        ],
        &mut TensorMut::new(&mut serial, &SHAPE)?,
        0,
    )?;
    let w = policy.weights()?;
    for i in 0..out.len() {
        let want = w[0] as f32 * cond[i] + w[1] as f32 * uncond[i];
        assert_eq!(
            out[i].to_bits(),
            serial[i].to_bits(),
            "parallel != serial at {i}"
        );
        assert_eq!(
            out[i].to_bits(),
            want.to_bits(),
            "parallel != reference at {i}"
        );
    }
    if comm.rank() == 0 {
        println!(
            "cfg_parallel: {} ranks, weights {w:?}, rank 0 ran branches {mine:?}; bitwise equal to the serial combine: OK",
            comm.size()
        );
    }
    comm.barrier() // nobody drops the communicator while a peer may still use it
}

fn main() -> Result<()> {
    let options = CfgOptions {
        order: CfgOrder::Parallel,
        ..Default::default()
    };
    // One policy serves both ranks (it is immutable, Send and Sync).
    let policy = CfgPolicy::standard(7.5, &options)?;
    let size = 2;
    std::thread::scope(|s| {
        let ranks: Vec<_> = (0..size)
            .map(|rank| {
                let policy = &policy;
                s.spawn(move || {
                    let comm =
                        Comm::create("local://rust-cfg-example", rank, size, &Config::default())?;
                    rank_main(&comm, policy)
                })
            })
            .collect();
        ranks
            .into_iter()
            .try_for_each(|h| h.join().expect("a rank panicked"))
    })
}
