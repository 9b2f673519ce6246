// The split VAE decoder (examples/vae/vae_decoder.h) against the whole one:
// a latent decoded whole on one rank, then split over 2, 3 and 4 ranks (a
// 1-D chain) and a 2x2 grid, ranks as threads, each rank decoding its slab
// with diffcoll_halo_exchange before every convolution and
// diffcoll_group_norm for every GroupNorm. Every element of every rank's
// output (seams included) must equal the matching element of the whole
// output up to the f32 rounding of the GroupNorm statistics. 2-D ([B, C, H, W],
// split along H, and H x W) and 3-D ([B, C, T, H, W] with a causal time axis,
// split along T, and T x H).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "halo_support.h"
#include "vae_decoder.h"

namespace {

struct Split {
  int rows, cols;
};

// A rank's window of the latent: rows split axis 2, cols axis 3.
void slab_of(const vae::Act& whole, const Split& s, int rank, std::vector<int64_t>* start,
             std::vector<int64_t>* extent) {
  *start = std::vector<int64_t>(whole.shape.size(), 0);
  *extent = whole.shape;
  const int coord[2] = {rank / s.cols, rank % s.cols};
  const int parts[2] = {s.rows, s.cols};
  for (int a = 0; a < 2; ++a)
    ASSERT_EQ(diffcoll_split_extent(whole.shape[2 + a], parts[a], coord[a], &(*start)[2 + a],
                                    &(*extent)[2 + a]),
              DIFFCOLL_SUCCESS);
}

// Largest |a - b| / max(1, |b|) over the elements.
double worst(const vae::Act& a, const vae::Act& b) {
  double w = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    w = std::fmax(w, std::fabs(a.v[i] - b.v[i]) / std::fmax(1.0, std::fabs(b.v[i])));
  return w;
}

void check_split(const vae::Config& cfg, const vae::Act& z, const Split& s) {
  SCOPED_TRACE(std::string(cfg.video ? "3-D" : "2-D") + " split " + std::to_string(s.rows) +
               "x" + std::to_string(s.cols));
  const vae::Decoder decoder(cfg);
  vae::WholeNeighbours plain;
  const vae::Act whole = decoder.decode(z, plain);
  const int64_t up = int64_t{1} << cfg.stages;
  halo_test::run_ranks(s.rows * s.cols, [&](int rank, diffcoll_comm_t* comm) {
    std::vector<int64_t> start, extent;
    slab_of(z, s, rank, &start, &extent);
    const vae::Act slab = vae::window(z, start, extent);
    vae::SplitNeighbours split(comm, cfg.video, s.rows, s.cols);
    const vae::Act out = decoder.decode(slab, split);

    // The rank's window of the whole output: H and W scaled by the upsampling.
    std::vector<int64_t> out_start = start, out_extent = extent;
    out_extent[1] = cfg.out_channels;
    for (size_t d = 2; d < start.size(); ++d) {
      const bool upsampled = !cfg.video || d >= 3;
      out_start[d] *= upsampled ? up : 1;
      out_extent[d] *= upsampled ? up : 1;
    }
    ASSERT_EQ(out.shape, out_extent) << "rank " << rank;
    const vae::Act expected = vae::window(whole, out_start, out_extent);
    EXPECT_LE(worst(out, expected), 2e-5) << "rank " << rank << ": split and whole differ";

    // The check has teeth: the same slab decoded alone (zero padding at the
    // seams, GroupNorm of the slab only) is visibly wrong.
    vae::WholeNeighbours alone;
    EXPECT_GT(worst(decoder.decode(slab, alone), expected), 1e-2) << "rank " << rank;
  });
}

class SplitDecoder2d : public ::testing::TestWithParam<Split> {};
class SplitDecoder3d : public ::testing::TestWithParam<Split> {};

TEST_P(SplitDecoder2d, EqualsTheWholeDecoder) {
  vae::Config cfg;  // 16 channels, 8 groups, 2 upsamplings
  check_split(cfg, vae::make_latent(cfg, 2, 1, 7, 5), GetParam());
}

TEST_P(SplitDecoder3d, EqualsTheWholeDecoderWithACausalTimeAxis) {
  vae::Config cfg;
  cfg.video = true;
  check_split(cfg, vae::make_latent(cfg, 1, 9, 4, 4), GetParam());
}

const Split kSplits[] = {{2, 1}, {3, 1}, {4, 1}, {2, 2}};

std::string split_name(const ::testing::TestParamInfo<Split>& i) {
  return i.param.cols == 1 ? "chain" + std::to_string(i.param.rows)
                           : "grid" + std::to_string(i.param.rows) + "x" +
                                 std::to_string(i.param.cols);
}

INSTANTIATE_TEST_SUITE_P(Splits, SplitDecoder2d, ::testing::ValuesIn(kSplits), split_name);
INSTANTIATE_TEST_SUITE_P(Splits, SplitDecoder3d, ::testing::ValuesIn(kSplits), split_name);

}  // namespace
