// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The split VAE decoder (examples/vae/vae_decoder.h) against the whole one
// on host memory: a latent decoded whole on one rank, then split over 2, 3
// and 4 ranks (a 1-D chain) and a 2x2 grid, ranks as threads, each rank
// decoding its slab with diffcoll_halo_exchange before every convolution and
// diffcoll_group_norm for every GroupNorm (split_decoder_check.h). 2-D
// ([B, C, H, W], split along H, and H x W) and 3-D ([B, C, T, H, W] with a
// causal time axis, split along T, and T x H).
#include <gtest/gtest.h>

#include "halo_support.h"
#include "split_decoder_check.h"

namespace {

using split_decoder::Split;

void check_split(bool video, const Split& s) {
  const vae::Config cfg = split_decoder::config(video);
  const vae::Decoder decoder(cfg);
  const vae::Act z = split_decoder::latent(cfg);
  vae::WholeNeighbours plain;
  const vae::Act whole = decoder.decode(z, plain);
  halo_test::run_ranks(s.rows * s.cols, [&](int rank, diffcoll_comm_t* comm) {
    vae::SplitNeighbours split(comm, video, s.rows, s.cols);
    split_decoder::check_rank(decoder, z, whole, s, rank, split);
  });
}

class SplitDecoder2d : public ::testing::TestWithParam<Split> {};
class SplitDecoder3d : public ::testing::TestWithParam<Split> {};

TEST_P(SplitDecoder2d, EqualsTheWholeDecoder) { check_split(false, GetParam()); }

TEST_P(SplitDecoder3d, EqualsTheWholeDecoderWithACausalTimeAxis) {
  check_split(true, GetParam());
}

const Split kSplits[] = {{2, 1}, {3, 1}, {4, 1}, {2, 2}};

INSTANTIATE_TEST_SUITE_P(Splits, SplitDecoder2d, ::testing::ValuesIn(kSplits),
                         split_decoder::split_name);
INSTANTIATE_TEST_SUITE_P(Splits, SplitDecoder3d, ::testing::ValuesIn(kSplits),
                         split_decoder::split_name);

}  // namespace
