// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Halo exchange from Rust: a [C, H, W] activation is split along H over 3
//! ranks (uneven slabs, `split_extent`), each rank fills one halo row on
//! each side of its slab from its neighbours (replicate padding at the image
//! edges), runs a vertical 3-tap filter on its padded slab, and
//! `Comm::gather_slabs` reassembles the result on rank 0, which checks it
//! against the filter of the whole, replicate-padded activation.
use diffcoll::{
    split_extent, Comm, Config, HaloBoundary, HaloConfig, Result, TensorMut, TensorRef,
};

const C: usize = 2;
const H: usize = 11;
const W: usize = 5;
const TAPS: [f32; 3] = [0.25, 0.5, 0.25];

fn activation() -> Vec<f32> {
    (0..C * H * W)
        .map(|i| ((i * 37) % 23) as f32 - 11.0)
        .collect()
}

/// The 3 taps along H of a [C, rows + 2, W] padded buffer.
fn filter(padded: &[f32], rows: usize) -> Vec<f32> {
    let mut out = vec![0f32; C * rows * W];
    for c in 0..C {
        for h in 0..rows {
            for w in 0..W {
                let mut acc = 0f32;
                for (k, tap) in TAPS.iter().enumerate() {
                    acc += tap * padded[(c * (rows + 2) + h + k) * W + w];
                }
                out[(c * rows + h) * W + w] = acc;
            }
        }
    }
    out
}

fn rank_main(comm: &Comm, whole: &[f32]) -> Result<()> {
    let rows = split_extent(H, comm.size(), comm.rank())?;
    let len = rows.len();
    // 1-D chain along dimension -2 (H), one halo row on each side.
    let mut plan = comm.halo_plan(&HaloConfig::default().row_boundary(HaloBoundary::Replicate))?;
    let mut padded = vec![0f32; C * (len + 2) * W];
    // This rank's slab is a strided view of rows `rows` of the whole.
    let slab = TensorRef::new(whole, &[C, H, W])?.slice(1, rows.start, rows.end, 1)?;
    plan.exchange_into(&slab, &mut TensorMut::new(&mut padded, &[C, len + 2, W])?)?;

    let local = filter(&padded, len);
    let mut result = vec![0f32; C * H * W];
    {
        let mut result_t = TensorMut::new(&mut result, &[C, H, W])?;
        let root_whole = if comm.rank() == 0 {
            Some(&mut result_t)
        } else {
            None
        };
        comm.gather_slabs(
            &TensorRef::new(&local, &[C, len, W])?,
            root_whole,
            1,
            Some(0),
        )?;
    }
    if comm.rank() == 0 {
        // Reference: the whole activation, replicate-padded along H, filtered.
        let mut whole_padded = vec![0f32; C * (H + 2) * W];
        for c in 0..C {
            for h in 0..H + 2 {
                let src = h.saturating_sub(1).min(H - 1);
                whole_padded[(c * (H + 2) + h) * W..(c * (H + 2) + h + 1) * W]
                    .copy_from_slice(&whole[(c * H + src) * W..(c * H + src + 1) * W]);
            }
        }
        assert_eq!(result, filter(&whole_padded, H), "parallel filter differs");
        let slabs: Vec<usize> = (0..comm.size())
            .map(|r| split_extent(H, comm.size(), r).map(|s| s.len()))
            .collect::<Result<_>>()?;
        println!("halo_exchange: {} ranks with {slabs:?} rows; the parallel filter equals the whole one bit for bit: OK", comm.size());
    }
    drop(plan);
    comm.barrier()
}

fn main() -> Result<()> {
    let whole = activation();
    let size = 3;
    std::thread::scope(|s| {
        let ranks: Vec<_> = (0..size)
            .map(|rank| {
                let whole = &whole;
                s.spawn(move || {
                    let comm =
                        Comm::create("local://rust-halo-example", rank, size, &Config::default())?;
                    rank_main(&comm, whole)
                })
            })
            .collect();
        ranks
            .into_iter()
            .try_for_each(|h| h.join().expect("a rank panicked"))
    })
}
