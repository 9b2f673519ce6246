// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The CFG combine on CUDA tensors (label gpu; every test skips without a GPU).
// One GPU: the device serial and parallel (degree 1) combines equal the host
// combines BITWISE for every formula, post-process, dtype and layout (the
// CUDA math follows the host's rounding points and reduction order), the
// device parallel combine equals the device serial one where the header
// promises it, both survive CUDA-graph capture and replay, and bad input is
// refused. Several GPUs (CfgMultiGpu.*): degrees 2..4 as one process per GPU,
// against the serial combine and the double-precision reference.
#include <cuda_runtime.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "cfg_test_support.h"
#include "gpu_test_support.h"


namespace {

using namespace cfgt;

// A host test tensor mirrored in device memory: the whole parent buffer,
// poison included, so that gaps can be checked after a download.
class DeviceMirror {
 public:
  explicit DeviceMirror(Tensor& host, int device = 0) : host_(host), device_(device) {
    cudaSetDevice(device_);
    EXPECT_EQ(cudaMalloc(&data_, host_.storage().size()), cudaSuccess);
    upload();
  }
  ~DeviceMirror() { cudaFree(data_); }
  DeviceMirror(const DeviceMirror&) = delete;
  DeviceMirror& operator=(const DeviceMirror&) = delete;

  void upload() {
    EXPECT_EQ(cudaMemcpy(data_, host_.storage().data(), host_.storage().size(),
                         cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  void download() {
    EXPECT_EQ(cudaMemcpy(host_.storage().data(), data_, host_.storage().size(),
                         cudaMemcpyDeviceToHost),
              cudaSuccess);
  }
  diffcoll_tensor_t desc() const {
    diffcoll_tensor_t d = host_.desc();
    d.data = static_cast<uint8_t*>(data_) + host_.data_offset();
    d.device_type = DIFFCOLL_DEVICE_CUDA;
    d.device_id = device_;
    return d;
  }

 private:
  Tensor& host_;
  int device_;
  void* data_ = nullptr;
};

// Device mirrors of host tensors (predictions), and their descriptors.
struct DeviceMirrors {
  std::vector<std::unique_ptr<DeviceMirror>> tensors;
  std::vector<diffcoll_tensor_t> descs;
  explicit DeviceMirrors(std::vector<Tensor>& hosts) {
    for (Tensor& t : hosts) {
      tensors.push_back(std::make_unique<DeviceMirror>(t));
      descs.push_back(tensors.back()->desc());
    }
  }
};

// The sweep configurations of the host tests, plus serial-order ones with
// every post-process, so that both arithmetic orders meet every statistic.
std::vector<Config> gpu_configs() {
  std::vector<Config> v = configs();
  v.push_back({"serial+rescale+norm/sample", DIFFCOLL_CFG_ORDER_SERIAL, false, 0.7, 0.7, true});
  v.push_back({"serial+zero*+rescale+norm", DIFFCOLL_CFG_ORDER_SERIAL, true, 0.5, 0.8, false});
  return v;
}

// The configuration of configs() called `name` (a test's typo throws, which
// fails that test).
const Config& config_named(const std::string& name) {
  const auto it = std::find_if(configs().begin(), configs().end(),
                               [&](const Config& c) { return name == c.name; });
  if (it == configs().end()) throw std::invalid_argument("no CFG test configuration " + name);
  return *it;
}

// Batch 3, 8580 elements per sample: three chunks of the reduction order.
const Shape kShape = {3, 4, 33, 65};

Layout pred_layout(int i) {
  static const Layout l[] = {Layout::kTransposed, Layout::kContiguous, Layout::kGapped,
                             Layout::kChannelsLast, Layout::kFlipped};
  return l[i % 5];
}

// One case of the sweeps: a policy, its predictions on the host (values as stored).
struct Case {
  PolicySpec spec;
  std::vector<Tensor> preds;
  std::vector<std::vector<double>> values;
  std::string where;

  Case(int n, const Config& cfg, int dtype, const Shape& shape, uint32_t seed) {
    spec = policy_of(n);
    configure(spec, cfg);
    const auto raw = make_preds(n, numel(shape), seed);
    preds.reserve(n);
    for (int i = 0; i < n; ++i) {
      preds.emplace_back(dtype, shape, pred_layout(i));
      values.push_back(preds.back().fill(raw[i]));
    }
    set_norm_bound(spec, cfg, values, shape[0]);
    where = std::string(cfg.name) + " " + dtype_str(dtype) + " n=" + std::to_string(n);
  }
};

void expect_same_bits(const Tensor& got, const Tensor& want, const std::string& where) {
  ASSERT_EQ(got.size(), want.size());
  for (int64_t j = 0; j < got.size(); ++j)
    ASSERT_EQ(got.bits(j), want.bits(j)) << where << ": element " << j << " is " << got.get(j)
                                         << ", expected " << want.get(j);
}

// As expect_same_bits, except that a NaN matches any NaN.
void expect_same_bits_or_nan(const Tensor& got, const Tensor& want, const std::string& where) {
  ASSERT_EQ(got.size(), want.size());
  for (int64_t j = 0; j < got.size(); ++j) {
    if (std::isnan(got.get(j)) && std::isnan(want.get(j))) continue;
    ASSERT_EQ(got.bits(j), want.bits(j)) << where << ": element " << j << " is " << got.get(j)
                                         << ", expected " << want.get(j);
  }
}

class CfgGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU(1);
    ASSERT_CUDA(cudaSetDevice(0));
    ASSERT_CUDA(cudaStreamCreate(&stream_));
  }
  void TearDown() override {
    if (comm_) EXPECT_EQ(diffcoll_comm_destroy(comm_), DIFFCOLL_SUCCESS);
    if (stream_) cudaStreamDestroy(stream_);
  }
  // A world of one rank with a device side on GPU 0.
  void make_comm() {
    diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
    config.device_id = 0;
    config.timeout_ms = 20000;
    const std::string name = "local://cfg-gpu-" + std::to_string(getpid()) + "-" +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_OK(diffcoll_comm_create(name.c_str(), 0, 1, &config, &comm_));
  }
  void sync() { ASSERT_CUDA(cudaStreamSynchronize(stream_)); }
  // The serial combine of c's predictions on the host into host_out, and of
  // device mirrors of them into a mirror of dev_out (downloaded).
  void combine_serial_on_both(Case& c, Tensor& host_out, Tensor& dev_out) {
    Policy policy(c.spec);
    const int n = c.spec.n();
    std::vector<diffcoll_tensor_t> host_d;
    for (const Tensor& t : c.preds) host_d.push_back(t.desc());
    diffcoll_tensor_t hod = host_out.desc();
    ASSERT_OK(diffcoll_cfg_combine_serial(policy.p, host_d.data(), n, &hod, 0, nullptr));
    DeviceMirrors dev(c.preds);
    DeviceMirror dev_out_mirror(dev_out);
    diffcoll_tensor_t dod = dev_out_mirror.desc();
    ASSERT_OK(diffcoll_cfg_combine_serial(policy.p, dev.descs.data(), n, &dod, 0, stream_));
    sync();
    dev_out_mirror.download();
  }
  void capture_and_replay(const Config& cfg);

  cudaStream_t stream_ = nullptr;
  diffcoll_comm_t* comm_ = nullptr;
};

// Every formula (1..5 branches), every post-process, both orders, every
// dtype, strided predictions and output: device == host, bit for bit, and
// both within the tolerance of the double-precision reference.
TEST_F(CfgGpu, SerialCombineEqualsHostBitwise) {
  uint32_t seed = 1;
  for (int n = 1; n <= 5; ++n)
    for (const Config& cfg : gpu_configs())
      for (int dtype : float_dtypes()) {
        if (cfg.zero_star && n < 2) continue;
        Case c(n, cfg, dtype, kShape, seed++);
        const Layout out_layout = n % 2 ? Layout::kGapped : Layout::kContiguous;
        Tensor host_out(dtype, kShape, out_layout), dev_out(dtype, kShape, out_layout);
        ASSERT_NO_FATAL_FAILURE(combine_serial_on_both(c, host_out, dev_out));
        EXPECT_TRUE(dev_out.gaps_intact()) << c.where;
        expect_same_bits(dev_out, host_out, "serial " + c.where);
        EXPECT_MATCHES_REFERENCE(dtype, dev_out.values(), reference(c.spec, c.values, kShape[0], 0),
                                 n, "device serial " + c.where);
      }
}

// Samples of 301 chunks of the reduction order: more chunk partials than a
// block has lanes, so that the last block merges several partials per lane
// (unequal counts) and the statistics passes run many blocks per sample.
// Device == host bitwise, every order and post-process.
TEST_F(CfgGpu, LargeSamplesEqualHostBitwise) {
  const Shape shape = {2, 16, 151, 509};  // 1229744 elements per sample
  uint32_t seed = 500;
  for (int n = 2; n <= 3; ++n)
    for (const Config& cfg : gpu_configs())
      for (int dtype : {DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT32}) {
        Case c(n, cfg, dtype, shape, seed++);
        Tensor host_out(dtype, shape), dev_out(dtype, shape);
        ASSERT_NO_FATAL_FAILURE(combine_serial_on_both(c, host_out, dev_out));
        expect_same_bits(dev_out, host_out, "large samples " + c.where);
      }
}

// Constant samples (every prediction holds one constant per sample): the
// combined sample is constant, its deviation exactly 0 in the reduction
// order's sums, so SERIAL and PARALLEL guidance rescale leave it alone (the
// output is the plain combine) and TORCH gives PyTorch's inf/NaN; on the
// device as on the host, bit for bit.
TEST_F(CfgGpu, ConstantSamplesKeepZeroDeviation) {
  const Shape shape = {2, 16, 21, 90};  // 30240 elements per sample: 8 chunks
  for (int order : {DIFFCOLL_CFG_ORDER_SERIAL, DIFFCOLL_CFG_ORDER_PARALLEL, DIFFCOLL_CFG_ORDER_TORCH})
    for (int dtype : float_dtypes()) {
      const Config cfg = {"constant+rescale", order, false, 0.7, 0, false};
      Case c(2, cfg, dtype, shape, 900);
      const int64_t per = numel(shape) / shape[0];
      for (size_t i = 0; i < c.preds.size(); ++i) {
        std::vector<double> v(numel(shape));
        for (int64_t j = 0; j < numel(shape); ++j) v[j] = 1.25 + 0.5 * i - 3.0 * (j / per);
        c.values[i] = c.preds[i].fill(v);
      }
      Tensor host_out(dtype, shape), dev_out(dtype, shape);
      ASSERT_NO_FATAL_FAILURE(combine_serial_on_both(c, host_out, dev_out));
      if (order == DIFFCOLL_CFG_ORDER_TORCH) {
        // 0 / 0: a NaN's sign is the processor's (x86 sets it, CUDA does not).
        expect_same_bits_or_nan(dev_out, host_out, "constant samples " + c.where);
        continue;
      }
      expect_same_bits(dev_out, host_out, "constant samples " + c.where);
      Case plain = c;
      plain.spec.options.rescale_phi = 0;
      Tensor plain_host(dtype, shape), plain_dev(dtype, shape);
      ASSERT_NO_FATAL_FAILURE(combine_serial_on_both(plain, plain_host, plain_dev));
      expect_same_bits(dev_out, plain_dev, "constant samples, rescale off " + c.where);
    }
}

// out = one of the predictions (in place), on a strided prediction.
TEST_F(CfgGpu, SerialCombineInPlaceEqualsHostBitwise) {
  const Config cfg = gpu_configs().back();  // serial + zero* + rescale + norm
  for (int dtype : float_dtypes()) {
    Case host(3, cfg, dtype, kShape, 77);
    Case device(3, cfg, dtype, kShape, 77);
    Policy policy(host.spec);
    std::vector<diffcoll_tensor_t> host_d;
    for (const Tensor& t : host.preds) host_d.push_back(t.desc());
    ASSERT_OK(diffcoll_cfg_combine_serial(policy.p, host_d.data(), 3, &host_d[2], 0, nullptr));

    DeviceMirrors dev(device.preds);
    ASSERT_OK(
        diffcoll_cfg_combine_serial(policy.p, dev.descs.data(), 3, &dev.descs[2], 0, stream_));
    sync();
    dev.tensors[2]->download();
    EXPECT_TRUE(device.preds[2].gaps_intact());
    expect_same_bits(device.preds[2], host.preds[2], "in place " + host.where);
  }
}

// zero_init_steps: zeros (and nothing else touched) while step < n, the
// combine afterwards.
TEST_F(CfgGpu, ZeroInitSteps) {
  Case c(2, configs()[1], DIFFCOLL_BFLOAT16, kShape, 5);
  c.spec.options.zero_init_steps = 2;
  Policy policy(c.spec);
  DeviceMirrors dev(c.preds);
  for (int step = 0; step < 3; ++step) {
    Tensor out(DIFFCOLL_BFLOAT16, kShape, Layout::kGapped);
    DeviceMirror mirror(out);
    diffcoll_tensor_t od = mirror.desc();
    ASSERT_OK(diffcoll_cfg_combine_serial(policy.p, dev.descs.data(), 2, &od, step, stream_));
    sync();
    mirror.download();
    EXPECT_TRUE(out.gaps_intact());
    EXPECT_MATCHES_REFERENCE(DIFFCOLL_BFLOAT16, out.values(),
                             reference(c.spec, c.values, kShape[0], step), 2,
                             "step " + std::to_string(step));
  }
}

// Degree 1 on a device communicator: the device parallel combine equals the
// host parallel combine (same communicator, host tensors) bitwise, and the
// device serial combine bitwise where the header promises it.
TEST_F(CfgGpu, ParallelCombineEqualsHostAndSerial) {
  make_comm();
  uint32_t seed = 100;
  for (int n = 1; n <= 5; ++n)
    for (const Config& cfg : gpu_configs())
      for (int dtype : float_dtypes()) {
        if (cfg.zero_star && n < 2) continue;
        Case c(n, cfg, dtype, kShape, seed++);
        Policy policy(c.spec);
        std::vector<diffcoll_tensor_t> host_d;
        for (const Tensor& t : c.preds) host_d.push_back(t.desc());
        Tensor host_out(dtype, kShape, Layout::kChannelsLast);
        diffcoll_tensor_t hod = host_out.desc();
        ASSERT_OK(diffcoll_cfg_combine_parallel(comm_, policy.p, host_d.data(), n, &hod, 0,
                                                nullptr));

        DeviceMirrors dev(c.preds);
        Tensor par(dtype, kShape, Layout::kChannelsLast);
        DeviceMirror par_mirror(par);
        diffcoll_tensor_t pd = par_mirror.desc();
        ASSERT_OK(
            diffcoll_cfg_combine_parallel(comm_, policy.p, dev.descs.data(), n, &pd, 0, stream_));
        Tensor ser(dtype, kShape);
        DeviceMirror ser_mirror(ser);
        diffcoll_tensor_t sd = ser_mirror.desc();
        ASSERT_OK(diffcoll_cfg_combine_serial(policy.p, dev.descs.data(), n, &sd, 0, stream_));
        sync();
        par_mirror.download();
        ser_mirror.download();
        EXPECT_TRUE(par.gaps_intact()) << c.where;
        expect_same_bits(par, host_out, "parallel, device vs host " + c.where);
        const Reference ref = reference(c.spec, c.values, kShape[0], 0);
        EXPECT_MATCHES_REFERENCE(dtype, par.values(), ref, n, "device parallel " + c.where);
        if (promised_bitwise(c.spec, {dispatch(policy.p, 1, 0)}))
          expect_same_bits(par, ser, "device parallel vs device serial " + c.where);
      }
}

// Both combines captured into CUDA graphs and replayed on fresh inputs
// written into the same device buffers: every replay equals the host combine
// of those inputs, bit for bit; PARALLEL and TORCH order, every post-process.
TEST_F(CfgGpu, GraphCaptureAndReplay) {
  make_comm();
  for (const char* name : {"parallel+zero*+rescale+norm/sample", "torch+zero*+rescale+norm"})
    capture_and_replay(config_named(name));
}

void CfgGpu::capture_and_replay(const Config& cfg) {
  SCOPED_TRACE(cfg.name);
  const int dtype = DIFFCOLL_BFLOAT16;
  Case c(3, cfg, dtype, kShape, 900);
  Policy policy(c.spec);
  DeviceMirrors dev(c.preds);
  Tensor par(dtype, kShape, Layout::kGapped), ser(dtype, kShape, Layout::kTransposed);
  DeviceMirror par_mirror(par), ser_mirror(ser);
  const diffcoll_tensor_t pd = par_mirror.desc(), sd = ser_mirror.desc();
  // A first call outside the capture grows the staging arena.
  ASSERT_OK(diffcoll_cfg_combine_parallel(comm_, policy.p, dev.descs.data(), 3, &pd, 0, stream_));
  sync();

  cudaGraph_t graph = nullptr;
  ASSERT_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  const diffcoll_status_t parallel =
      diffcoll_cfg_combine_parallel(comm_, policy.p, dev.descs.data(), 3, &pd, 0, stream_);
  const diffcoll_status_t serial = diffcoll_cfg_combine_serial(policy.p, dev.descs.data(), 3, &sd, 0, stream_);
  ASSERT_CUDA(cudaStreamEndCapture(stream_, &graph));
  ASSERT_EQ(parallel, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  ASSERT_EQ(serial, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaGraphExec_t exec = nullptr;
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));

  for (int replay = 0; replay < 3; ++replay) {
    const auto raw = make_preds(3, numel(kShape), 1000u + replay);
    for (int i = 0; i < 3; ++i) {
      c.values[i] = c.preds[i].fill(raw[i]);
      dev.tensors[i]->upload();
    }
    ASSERT_CUDA(cudaGraphLaunch(exec, stream_));
    sync();
    par_mirror.download();
    ser_mirror.download();
    std::vector<diffcoll_tensor_t> host_d;
    for (const Tensor& t : c.preds) host_d.push_back(t.desc());
    Tensor host_par(dtype, kShape), host_ser(dtype, kShape);
    diffcoll_tensor_t hpd = host_par.desc(), hsd = host_ser.desc();
    ASSERT_OK(diffcoll_cfg_combine_parallel(comm_, policy.p, host_d.data(), 3, &hpd, 0, nullptr));
    ASSERT_OK(diffcoll_cfg_combine_serial(policy.p, host_d.data(), 3, &hsd, 0, nullptr));
    const std::string where = "replay " + std::to_string(replay);
    EXPECT_TRUE(par.gaps_intact()) << where;
    expect_same_bits(par, host_par, "captured parallel, " + where);
    expect_same_bits(ser, host_ser, "captured serial, " + where);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// The statistics passes elect their last block with counters the
// communicator keeps and the passes leave at zero: a call enqueues kernels
// only, no memset to zero them (GraphCaptureAndReplay checks that replays
// stay right).
TEST_F(CfgGpu, ParallelCombineEnqueuesNoMemset) {
  make_comm();
  Case c(2, config_named("parallel+zero*+rescale+norm/sample"), DIFFCOLL_BFLOAT16, kShape, 950);
  Policy policy(c.spec);
  DeviceMirrors dev(c.preds);
  Tensor out(DIFFCOLL_BFLOAT16, kShape);
  DeviceMirror out_mirror(out);
  const diffcoll_tensor_t od = out_mirror.desc();
  ASSERT_OK(diffcoll_cfg_combine_parallel(comm_, policy.p, dev.descs.data(), 2, &od, 0, stream_));
  sync();  // the arena has grown

  cudaGraph_t graph = nullptr;
  ASSERT_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  const diffcoll_status_t status =
      diffcoll_cfg_combine_parallel(comm_, policy.p, dev.descs.data(), 2, &od, 0, stream_);
  ASSERT_CUDA(cudaStreamEndCapture(stream_, &graph));
  ASSERT_EQ(status, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  size_t count = 0;
  ASSERT_CUDA(cudaGraphGetNodes(graph, nullptr, &count));
  std::vector<cudaGraphNode_t> nodes(count);
  ASSERT_CUDA(cudaGraphGetNodes(graph, nodes.data(), &count));
  int kernels = 0;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    ASSERT_CUDA(cudaGraphNodeGetType(node, &type));
    EXPECT_EQ(type, cudaGraphNodeTypeKernel) << "node type " << static_cast<int>(type);
    kernels += type == cudaGraphNodeTypeKernel;
  }
  EXPECT_GE(kernels, 3);  // CFG-zero* statistics, combine, post-processing
  cudaGraphDestroy(graph);
}

TEST_F(CfgGpu, BadInput) {
  Case c(2, configs()[0], DIFFCOLL_FLOAT32, {2, 8}, 3);
  Policy policy(c.spec);
  DeviceMirror cond(c.preds[0]), uncond(c.preds[1]);
  Tensor out(DIFFCOLL_FLOAT32, {2, 8});
  DeviceMirror out_mirror(out);
  const diffcoll_tensor_t od = out_mirror.desc();
  // A host prediction with a device output.
  diffcoll_tensor_t mixed[2] = {c.preds[0].desc(), uncond.desc()};
  EXPECT_EQ(diffcoll_cfg_combine_serial(policy.p, mixed, 2, &od, 0, stream_),
            DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(diffcoll_last_error()).find("different devices"), std::string::npos)
      << diffcoll_last_error();
  // Host memory labelled CUDA: refused before a kernel could fault on it.
  diffcoll_tensor_t fake = c.preds[0].desc();
  fake.device_type = DIFFCOLL_DEVICE_CUDA;
  diffcoll_tensor_t faked[2] = {fake, uncond.desc()};
  EXPECT_EQ(diffcoll_cfg_combine_serial(policy.p, faked, 2, &od, 0, stream_),
            DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(diffcoll_last_error()).find("does not point to memory of CUDA device 0"),
            std::string::npos)
      << diffcoll_last_error();
  // A device that does not exist.
  diffcoll_tensor_t far = od;
  far.device_id = 1000;
  diffcoll_tensor_t far_preds[2] = {cond.desc(), uncond.desc()};
  for (auto& t : far_preds) t.device_id = 1000;
  EXPECT_NE(diffcoll_cfg_combine_serial(policy.p, far_preds, 2, &far, 0, stream_),
            DIFFCOLL_SUCCESS);
  // A device tensor on a communicator without a device side.
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  const std::string name = "local://cfg-gpu-host-only-" + std::to_string(getpid());
  diffcoll_comm_t* host_only = nullptr;
  ASSERT_OK(diffcoll_comm_create(name.c_str(), 0, 1, &config, &host_only));
  diffcoll_tensor_t both[2] = {cond.desc(), uncond.desc()};
  EXPECT_EQ(diffcoll_cfg_combine_parallel(host_only, policy.p, both, 2, &od, 0, stream_),
            DIFFCOLL_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(diffcoll_last_error()).find("device side"), std::string::npos)
      << diffcoll_last_error();
  EXPECT_EQ(diffcoll_comm_destroy(host_only), DIFFCOLL_SUCCESS);
  // Shapes that differ between branches, on the device too.
  Tensor wide(DIFFCOLL_FLOAT32, {2, 9});
  DeviceMirror wide_mirror(wide);
  diffcoll_tensor_t shapes[2] = {cond.desc(), wide_mirror.desc()};
  EXPECT_EQ(diffcoll_cfg_combine_serial(policy.p, shapes, 2, &od, 0, stream_),
            DIFFCOLL_ERR_INVALID_ARGUMENT);
}

// ---- several ranks, one process each (sharing GPUs where there are fewer) -------------------

class CfgMultiGpu : public ::testing::TestWithParam<int> {};

TEST_P(CfgMultiGpu, ParallelCombineAcrossProcesses) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a CUDA device";
  run_worker_processes(GetParam(), "CfgMultiGpuWorker.DISABLED_Run");  // sharing GPUs where there are fewer
}

INSTANTIATE_TEST_SUITE_P(Degrees, CfgMultiGpu, ::testing::Range(2, 5),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return "d" + std::to_string(i.param);
                         });

// One rank of CfgMultiGpu: 1..5 branches (d > n, d == n, d < n), every
// configuration and dtype; each rank's share on its GPU in strided layouts.
TEST(CfgMultiGpuWorker, DISABLED_Run) {
  const char* rank_env = std::getenv("DIFFCOLL_TEST_RANK");
  if (!rank_env) GTEST_SKIP() << "runs only as a rank of CfgMultiGpu.ParallelCombineAcrossProcesses";
  const int rank = std::atoi(rank_env), degree = std::atoi(std::getenv("DIFFCOLL_TEST_SIZE"));
  const int device = test_device();
  ASSERT_CUDA(cudaSetDevice(device));
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.device_id = device;
  config.timeout_ms = 60000;
  config.check = 1;
  diffcoll_comm_t* comm = nullptr;
  ASSERT_OK(diffcoll_comm_create(std::getenv("DIFFCOLL_TEST_STORE"), rank, degree, &config, &comm));
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreate(&stream));
  uint32_t seed = 5000;
  for (int n = 1; n <= 5; ++n)
    for (const Config& cfg : gpu_configs())
      for (int dtype : float_dtypes()) {
        if (cfg.zero_star && n < 2) continue;
        Case c(n, cfg, dtype, kShape, seed++);  // the same on every rank
        Policy policy(c.spec);
        const std::string where = c.where + " d=" + std::to_string(degree) + " rank=" +
                                  std::to_string(rank);
        std::vector<diffcoll_tensor_t> host_d;
        for (const Tensor& t : c.preds) host_d.push_back(t.desc());
        Tensor serial(dtype, kShape);
        diffcoll_tensor_t sd = serial.desc();
        ASSERT_OK(diffcoll_cfg_combine_serial(policy.p, host_d.data(), n, &sd, 0, nullptr));

        std::vector<std::vector<int32_t>> shares;
        for (int r = 0; r < degree; ++r) shares.push_back(dispatch(policy.p, degree, r));
        std::vector<std::unique_ptr<DeviceMirror>> dev;
        std::vector<diffcoll_tensor_t> local_d;
        for (int32_t b : shares[rank]) {
          dev.push_back(std::make_unique<DeviceMirror>(c.preds[b], device));
          local_d.push_back(dev.back()->desc());
        }
        Tensor out(dtype, kShape, rank % 2 ? Layout::kGapped : Layout::kContiguous);
        DeviceMirror out_mirror(out, device);
        diffcoll_tensor_t od = out_mirror.desc();
        ASSERT_EQ(diffcoll_cfg_combine_parallel(comm, policy.p,
                                                local_d.empty() ? nullptr : local_d.data(),
                                                static_cast<int32_t>(local_d.size()), &od, 0, stream),
                  DIFFCOLL_SUCCESS)
            << where << ": " << diffcoll_last_error();
        ASSERT_CUDA(cudaStreamSynchronize(stream));
        out_mirror.download();
        EXPECT_TRUE(out.gaps_intact()) << where;
        const Reference ref = reference(c.spec, c.values, kShape[0], 0);
        EXPECT_MATCHES_REFERENCE(dtype, out.values(), ref, n, "parallel " + where);
        if (promised_bitwise(c.spec, shares)) {
          expect_same_bits(out, serial, "bitwise " + where);
        } else {
          Reference around_serial = ref;
          around_serial.out = serial.values();
          for (double& m : around_serial.mag) m *= 2;
          EXPECT_MATCHES_REFERENCE(dtype, out.values(), around_serial, n, "parallel vs serial " + where);
        }
      }
  cudaStreamDestroy(stream);
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS);
}

}  // namespace
