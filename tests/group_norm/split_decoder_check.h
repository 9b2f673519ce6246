// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The check of the split VAE decoder (examples/vae/vae_decoder.h), shared by
// the host test (split_decoder_test.cc) and the CUDA one
// (split_decoder_gpu_test.cc): one rank decodes its slab of the latent
// through a Neighbours (halo exchange + distributed GroupNorm) and every
// element of its output, seams included, must equal the same window of the
// whole decoder's output up to the f32 rounding of the GroupNorm statistics.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "vae_decoder.h"

namespace split_decoder {

// Ranks as a grid rows x cols: rows split axis 2, cols axis 3.
struct Split {
  int rows, cols;
};

inline std::string split_name(const ::testing::TestParamInfo<Split>& i) {
  return i.param.cols == 1 ? "chain" + std::to_string(i.param.rows)
                           : "grid" + std::to_string(i.param.rows) + "x" +
                                 std::to_string(i.param.cols);
}

// The latents of the tests: 2-D [2, 4, 7, 5] (uneven slabs for 2, 3, 4
// ranks), 3-D [1, 4, 9, 4, 4] (T = 9: every slab at least 2 frames, the
// causal halo, for up to 4 ranks).
inline vae::Config config(bool video) {
  vae::Config c;  // 16 channels, 8 groups, 2 upsamplings
  c.video = video;
  return c;
}
inline vae::Act latent(const vae::Config& c) {
  return c.video ? vae::make_latent(c, 1, 9, 4, 4) : vae::make_latent(c, 2, 1, 7, 5);
}

// Largest |a - b| / max(1, |b|) over the elements.
inline double worst(const vae::Act& a, const vae::Act& b) {
  double w = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    w = std::fmax(w, std::fabs(a.v[i] - b.v[i]) / std::fmax(1.0, std::fabs(b.v[i])));
  return w;
}

// Rank `rank`'s slab decoded through `n` against the whole output `whole`.
inline void check_rank(const vae::Decoder& decoder, const vae::Act& z, const vae::Act& whole,
                       const Split& s, int rank, vae::Neighbours& n) {
  const vae::Config& cfg = decoder.config();
  std::vector<int64_t> start(z.shape.size(), 0), extent = z.shape;
  const int coord[2] = {rank / s.cols, rank % s.cols}, parts[2] = {s.rows, s.cols};
  for (int a = 0; a < 2; ++a)
    ASSERT_EQ(diffcoll_split_extent(z.shape[2 + a], parts[a], coord[a], &start[2 + a],
                                    &extent[2 + a]),
              DIFFCOLL_SUCCESS);
  const vae::Act slab = vae::window(z, start, extent);
  const vae::Act out = decoder.decode(slab, n);

  // The rank's window of the whole output: H and W scaled by the upsampling.
  const int64_t up = int64_t{1} << cfg.stages;
  std::vector<int64_t> out_start = start, out_extent = extent;
  out_extent[1] = cfg.out_channels;
  for (size_t d = 2; d < start.size(); ++d)
    if (!cfg.video || d >= 3) {
      out_start[d] *= up;
      out_extent[d] *= up;
    }
  ASSERT_EQ(out.shape, out_extent) << "rank " << rank;
  const vae::Act expected = vae::window(whole, out_start, out_extent);
  EXPECT_LE(worst(out, expected), 2e-5) << "rank " << rank << ": split and whole differ";

  // The check has teeth: the same slab decoded alone (zero padding at the
  // seams, GroupNorm of the slab only) is visibly wrong.
  if (s.rows * s.cols > 1) {
    vae::WholeNeighbours alone;
    EXPECT_GT(worst(decoder.decode(slab, alone), expected), 1e-2) << "rank " << rank;
  }
}

}  // namespace split_decoder
