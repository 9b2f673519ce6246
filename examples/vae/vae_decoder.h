// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// A small VAE-decoder-shaped network, written plainly, that runs either on
// the whole latent on one rank or split over the ranks of a communicator
// (spatially parallel decoding). Shared by examples/vae/parallel_decode.cc
// and tests/group_norm/split_decoder_test.cc.
//
//   h = conv_in(z)                                   latent channels -> C
//   repeat `stages` times:  h = resblock(h); h = upsample_nearest_2x(h)  (H, W)
//   h = resblock(h); h = silu(norm_out(h)); out = conv_out(h)            C -> 3
//   resblock(h) = h + conv2(silu(groupnorm(conv1(h))))
//
// 2-D variant: activations [B, C, H, W], 3x3 convolutions with zero padding.
// 3-D variant: activations [B, C, T, H, W], 3x3x3 convolutions, causal along
// T (two frames of the past, none of the future: a one-sided halo), zero
// padding along H and W; T is not upsampled.
//
// Every convolution reads a padded copy of its input and every GroupNorm
// needs statistics of the whole activation; the two are the only places a
// split decoder talks to other ranks, so the network takes them from a
// `Neighbours`: WholeNeighbours pads with zeros and normalises plainly (the
// reference), SplitNeighbours fills the halo with diffcoll_halo_exchange and
// normalises with diffcoll_group_norm. Everything else is local, and the
// convolutions accumulate in the same order in both, so split and whole
// agree up to the f32 rounding of the GroupNorm statistics.
#pragma once

#include <diffcoll/diffcoll.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace vae {

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// A contiguous f32 activation [B, C, H, W] or [B, C, T, H, W].
struct Act {
  std::vector<int64_t> shape;
  std::vector<float> v;

  Act() = default;
  explicit Act(std::vector<int64_t> s) : shape(std::move(s)) { v.assign(numel(), 0.f); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  bool video() const { return shape.size() == 5; }
  // [B, C, T, H, W] with T = 1 for a 2-D activation.
  void dims(int64_t d[5]) const {
    d[0] = shape[0];
    d[1] = shape[1];
    d[2] = video() ? shape[2] : 1;
    d[3] = shape[shape.size() - 2];
    d[4] = shape[shape.size() - 1];
  }
  diffcoll_tensor_t desc() {
    diffcoll_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = v.data();
    t.dtype = DIFFCOLL_FLOAT32;
    t.device_type = DIFFCOLL_DEVICE_CPU;
    t.ndim = static_cast<int32_t>(shape.size());
    int64_t s = 1;
    for (int d = t.ndim - 1; d >= 0; --d) {
      t.shape[d] = shape[d];
      t.strides[d] = s;
      s *= shape[d];
    }
    return t;
  }
};

// Halo widths of every convolution along T, H, W: causal in time.
struct Halo {
  int64_t before[3], after[3];
};
inline Halo halo_of(bool video) {
  return video ? Halo{{2, 1, 1}, {0, 1, 1}} : Halo{{0, 1, 1}, {0, 1, 1}};
}

// x inside a zero buffer with the halo around it (T, H, W).
inline Act zero_padded(const Act& x) {
  const Halo h = halo_of(x.video());
  int64_t d[5], pd[5];
  x.dims(d);
  for (int k = 0; k < 5; ++k) pd[k] = d[k] + (k >= 2 ? h.before[k - 2] + h.after[k - 2] : 0);
  Act p(x.video() ? std::vector<int64_t>{pd[0], pd[1], pd[2], pd[3], pd[4]}
                  : std::vector<int64_t>{pd[0], pd[1], pd[3], pd[4]});
  for (int64_t bc = 0; bc < d[0] * d[1]; ++bc)
    for (int64_t t = 0; t < d[2]; ++t)
      for (int64_t y = 0; y < d[3]; ++y)
        std::memcpy(&p.v[((bc * pd[2] + t + h.before[0]) * pd[3] + y + h.before[1]) * pd[4] +
                         h.before[2]],
                    &x.v[((bc * d[2] + t) * d[3] + y) * d[4]], sizeof(float) * d[4]);
  return p;
}

struct Conv {
  int64_t cin = 0, cout = 0, kt = 1;  // kt: taps along T (1 for 2-D)
  std::vector<float> w, b;            // w[co][ci][kt][3][3]

  Conv() = default;
  Conv(int64_t in, int64_t out, bool video, uint32_t seed) : cin(in), cout(out), kt(video ? 3 : 1) {
    const int64_t taps = kt * 9;
    w.resize(cout * cin * taps);
    b.resize(cout);
    const float scale = 1.5f / std::sqrt(static_cast<float>(cin * taps));
    uint32_t s = seed * 2654435761u + 12345u;
    auto next = [&] {
      s = s * 1664525u + 1013904223u;
      return static_cast<float>(s >> 8) / static_cast<float>(1u << 24) * 2.f - 1.f;
    };
    for (float& x : w) x = scale * next();
    for (float& x : b) x = 0.1f * next();
  }

  // "Valid" convolution of a padded activation: out extents are padded - (k - 1).
  Act operator()(const Act& padded) const {
    int64_t p[5];
    padded.dims(p);
    std::vector<int64_t> shape = padded.shape;
    shape[1] = cout;
    if (padded.video()) shape[2] -= kt - 1;
    shape[shape.size() - 2] -= 2;
    shape[shape.size() - 1] -= 2;
    Act out(shape);
    int64_t o[5];
    out.dims(o);
    const int64_t plane = p[3] * p[4], frame_in = p[2] * plane;
    for (int64_t bi = 0; bi < o[0]; ++bi)
      for (int64_t co = 0; co < cout; ++co) {
        float* dst = &out.v[(bi * cout + co) * o[2] * o[3] * o[4]];
        for (int64_t i = 0; i < o[2] * o[3] * o[4]; ++i) dst[i] = b[co];
        for (int64_t ci = 0; ci < cin; ++ci) {
          const float* src = &padded.v[(bi * cin + ci) * frame_in];
          const float* wk = &w[(co * cin + ci) * kt * 9];
          for (int64_t t = 0; t < o[2]; ++t)
            for (int64_t y = 0; y < o[3]; ++y) {
              float* row = dst + (t * o[3] + y) * o[4];
              for (int64_t dt = 0; dt < kt; ++dt)
                for (int64_t dy = 0; dy < 3; ++dy) {
                  const float* in = src + (t + dt) * plane + (y + dy) * p[4];
                  const float* k = wk + (dt * 3 + dy) * 3;
                  for (int64_t x = 0; x < o[4]; ++x)
                    row[x] += k[0] * in[x] + k[1] * in[x + 1] + k[2] * in[x + 2];
                }
            }
        }
      }
    return out;
  }
};

struct Norm {
  int64_t groups = 1;
  float eps = 1e-6f;
  std::vector<float> weight, bias;
  Norm() = default;
  Norm(int64_t channels, int64_t g, uint32_t seed) : groups(g) {
    weight.resize(channels);
    bias.resize(channels);
    for (int64_t c = 0; c < channels; ++c) {
      weight[c] = 1.f + 0.25f * std::sin(0.7f * (c + seed));
      bias[c] = 0.1f * std::cos(1.3f * (c + seed));
    }
  }
};

// The two things a decoder needs from outside its own slab.
class Neighbours {
 public:
  virtual ~Neighbours() = default;
  // x with every convolution's halo around it.
  virtual Act pad(const Act& x) = 0;
  // GroupNorm of x (in place) with statistics of the whole activation.
  virtual void group_norm(Act& x, const Norm& n) = 0;
};

// The whole activation on one rank: zero padding and GroupNorm written plainly.
class WholeNeighbours : public Neighbours {
 public:
  Act pad(const Act& x) override { return zero_padded(x); }
  void group_norm(Act& x, const Norm& n) override {
    const int64_t B = x.shape[0], C = x.shape[1], S = x.numel() / (B * C), cpg = C / n.groups;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < n.groups; ++g) {
        float* p = &x.v[(b * C + g * cpg) * S];
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < cpg * S; ++i) sum += p[i];
        const double mean = sum / static_cast<double>(cpg * S);
        for (int64_t i = 0; i < cpg * S; ++i) sq += (p[i] - mean) * (p[i] - mean);
        const double rstd = 1 / std::sqrt(sq / static_cast<double>(cpg * S) + n.eps);
        for (int64_t i = 0; i < cpg * S; ++i) {
          const int64_t c = g * cpg + i / S;
          p[i] = static_cast<float>((p[i] - mean) * rstd * n.weight[c] + n.bias[c]);
        }
      }
  }
};

#define VAE_CHECK(call)                                                                  \
  do {                                                                                   \
    diffcoll_status_t s_ = (call);                                                       \
    if (s_ != DIFFCOLL_SUCCESS) {                                                        \
      std::fprintf(stderr, "%s failed: %s: %s\n", #call, diffcoll_status_string(s_),     \
                   diffcoll_last_error());                                               \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// A host float vector (GroupNorm weight or bias) described for diffcoll.
inline diffcoll_tensor_t vector_desc(const std::vector<float>& v) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = const_cast<float*>(v.data());
  t.dtype = DIFFCOLL_FLOAT32;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = 1;
  t.shape[0] = static_cast<int64_t>(v.size());
  t.strides[0] = 1;
  return t;
}

// The halo plan of a split decoder on a grid rows x cols (row-major over the
// communicator): rows split H (2-D) or T (3-D), cols split W (2-D) or H
// (3-D); zeros past the ends. Along an axis that is not split, the zeros are
// already in the padded buffer (zero_padded), so the plan leaves it alone.
inline diffcoll_halo_config_t halo_config(bool video, int rows, int cols) {
  const Halo h = halo_of(video);
  diffcoll_halo_config_t c = DIFFCOLL_HALO_CONFIG_INIT;
  c.grid_rows = rows;
  c.grid_cols = cols;
  c.row_axis = 2;
  c.col_axis = 3;
  const int r = video ? 0 : 1;  // T/H/W index of the row axis
  c.row_before = static_cast<int32_t>(h.before[r]);
  c.row_after = static_cast<int32_t>(h.after[r]);
  c.col_before = cols > 1 ? static_cast<int32_t>(h.before[r + 1]) : 0;
  c.col_after = cols > 1 ? static_cast<int32_t>(h.after[r + 1]) : 0;
  return c;
}

// This rank's slab of a split activation: the halo from the neighbours
// (diffcoll_halo_exchange) and whole-activation GroupNorm
// (diffcoll_group_norm), on host memory.
class SplitNeighbours : public Neighbours {
 public:
  SplitNeighbours(diffcoll_comm_t* comm, bool video, int rows, int cols) : comm_(comm) {
    const diffcoll_halo_config_t c = halo_config(video, rows, cols);
    VAE_CHECK(diffcoll_halo_plan_create(comm, &c, &plan_));
  }
  ~SplitNeighbours() override { diffcoll_halo_plan_destroy(plan_); }
  SplitNeighbours(const SplitNeighbours&) = delete;
  SplitNeighbours& operator=(const SplitNeighbours&) = delete;

  Act pad(const Act& x) override {
    Act p = zero_padded(x);
    diffcoll_tensor_t t = p.desc();
    VAE_CHECK(diffcoll_halo_exchange(plan_, &t, nullptr));
    return p;
  }
  void group_norm(Act& x, const Norm& n) override {
    diffcoll_tensor_t t = x.desc(), w = vector_desc(n.weight), b = vector_desc(n.bias);
    VAE_CHECK(diffcoll_group_norm(comm_, &t, nullptr, &w, &b, static_cast<int32_t>(n.groups),
                                  n.eps, nullptr));
  }

 private:
  diffcoll_comm_t* comm_;
  diffcoll_halo_plan_t* plan_ = nullptr;
};

inline void silu(Act& x) {
  for (float& v : x.v) v = v / (1.f + std::exp(-v));
}

// Nearest-neighbour upsampling x2 along H and W (a slab's rows double too).
inline Act upsample2x(const Act& x) {
  std::vector<int64_t> shape = x.shape;
  shape[shape.size() - 2] *= 2;
  shape[shape.size() - 1] *= 2;
  Act out(shape);
  int64_t d[5];
  x.dims(d);
  const int64_t H = d[3], W = d[4];
  for (int64_t f = 0; f < d[0] * d[1] * d[2]; ++f)
    for (int64_t y = 0; y < 2 * H; ++y)
      for (int64_t xx = 0; xx < 2 * W; ++xx)
        out.v[(f * 2 * H + y) * 2 * W + xx] = x.v[(f * H + y / 2) * W + xx / 2];
  return out;
}

struct Config {
  bool video = false;
  int64_t latent_channels = 4, channels = 16, groups = 8, out_channels = 3;
  int stages = 2;  // upsamplings: the output is 2^stages times the latent in H and W
};

class Decoder {
 public:
  explicit Decoder(const Config& c) : c_(c) {
    uint32_t seed = 1;
    conv_in_ = Conv(c.latent_channels, c.channels, c.video, seed++);
    for (int s = 0; s <= c.stages; ++s) {
      Block b;
      b.conv1 = Conv(c.channels, c.channels, c.video, seed++);
      b.norm = Norm(c.channels, c.groups, seed++);
      b.conv2 = Conv(c.channels, c.channels, c.video, seed++);
      blocks_.push_back(b);
    }
    norm_out_ = Norm(c.channels, c.groups, seed++);
    conv_out_ = Conv(c.channels, c.out_channels, c.video, seed++);
  }

  const Config& config() const { return c_; }

  Act decode(const Act& z, Neighbours& n) const {
    Act h = conv_in_(n.pad(z));
    for (int s = 0; s <= c_.stages; ++s) {
      const Block& b = blocks_[s];
      Act r = b.conv1(n.pad(h));
      n.group_norm(r, b.norm);
      silu(r);
      r = b.conv2(n.pad(r));
      for (int64_t i = 0; i < h.numel(); ++i) h.v[i] += r.v[i];
      if (s < c_.stages) h = upsample2x(h);
    }
    n.group_norm(h, norm_out_);
    silu(h);
    return conv_out_(n.pad(h));
  }

 private:
  struct Block {
    Conv conv1, conv2;
    Norm norm;
  };
  Config c_;
  Conv conv_in_, conv_out_;
  std::vector<Block> blocks_;
  Norm norm_out_;
};

// A deterministic latent [B, latent_channels, (T,) H, W].
inline Act make_latent(const Config& c, int64_t batch, int64_t frames, int64_t height,
                       int64_t width) {
  std::vector<int64_t> shape = {batch, c.latent_channels};
  if (c.video) shape.push_back(frames);
  shape.push_back(height);
  shape.push_back(width);
  Act z(shape);
  for (int64_t i = 0; i < z.numel(); ++i)
    z.v[i] = std::sin(0.013f * static_cast<float>(i % 977) + 0.5f * static_cast<float>(i % 7)) +
             0.3f * std::cos(0.17f * static_cast<float>(i));
  return z;
}

// The window [start, start + extent) of `whole` along tensor axes (every other
// axis whole): a rank's slab of a split activation.
inline Act window(const Act& whole, const std::vector<int64_t>& start,
                  const std::vector<int64_t>& extent) {
  Act out(extent);
  const size_t nd = whole.shape.size();
  std::vector<int64_t> idx(nd, 0);
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rest = i, off = 0;
    for (int d = static_cast<int>(nd) - 1; d >= 0; --d) {
      idx[d] = rest % extent[d];
      rest /= extent[d];
    }
    for (size_t d = 0; d < nd; ++d) off = off * whole.shape[d] + idx[d] + start[d];
    out.v[i] = whole.v[off];
  }
  return out;
}

}  // namespace vae
