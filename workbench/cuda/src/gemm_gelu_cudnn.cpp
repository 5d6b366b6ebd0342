#include "gemm_gelu_cudnn.h"

#include <fmt/format.h>

#include <stdexcept>
#include <vector>

#include "cudnn_backend.h"
#include "device.h"

namespace wb::cuda {

#if WB_HAVE_CUDNN

namespace {
enum Uid : int64_t { kX = 1, kW = 2, kBias = 3, kY = 4, kAcc = 101, kBiased = 102 };

// A pointwise operation y = mode(x [, b]) in float32.
cudnn::Desc pointwise(cudnnPointwiseMode_t mode, const cudnn::Desc& x, const cudnn::Desc* b,
                      const cudnn::Desc& y, const char* what) {
  cudnn::Desc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what)
      .set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, what)
      .finalize(what);
  cudnn::Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  const float one = 1.0f;
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, what)
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, what)
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, what)
      .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, what);
  if (b != nullptr)
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b, what)
        .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, what);
  op.finalize(what);
  return op;
}
}  // namespace

struct CudnnGemmGelu::Impl {
  explicit Impl(cudaStream_t s) : handle(s) {}
  cudnn::Handle handle;
  cudnn::Plan plan;
};

CudnnGemmGelu::CudnnGemmGelu(Act a, int64_t m, int64_t n, int64_t k, cudaStream_t s, bool tanh) {
  if (a == Act::f32 || m < 1 || n % 8 != 0 || k % 8 != 0)
    throw std::invalid_argument(fmt::format(
        "cuDNN GEMM + GELU: 16-bit inputs, N and K multiples of 8 ({}, M {}, N {}, K {})",
        act_name(a), m, n, k));
  impl_ = std::make_unique<Impl>(s);  // throws where cuDNN is missing
  using cudnn::tensor;
  const cudnnDataType_t type = a == Act::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
  const std::vector<int64_t> mn{1, m, n}, mn_strides{m * n, n, 1};
  cudnn::Desc x = tensor(kX, type, {1, m, k}, {m * k, k, 1}),
              wt = tensor(kW, type, {1, k, n}, {n * k, 1, k}),  // W [N, K] read as W^T [K, N]
      bias = tensor(kBias, CUDNN_DATA_FLOAT, {1, 1, n}, {n, n, 1}),
              acc = tensor(kAcc, CUDNN_DATA_FLOAT, mn, mn_strides, true),
              biased = tensor(kBiased, CUDNN_DATA_FLOAT, mn, mn_strides, true),
              y = tensor(kY, type, mn, mn_strides);
  cudnn::Desc mm(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  mm.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, "matmul type")
      .finalize("matmul");
  cudnn::Desc mm_op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
  mm_op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, x, "matmul a")
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, wt, "matmul b")
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, acc, "matmul c")
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, mm, "matmul desc")
      .finalize("matmul operation");
  const cudnn::Desc add = pointwise(CUDNN_POINTWISE_ADD, acc, &bias, biased, "bias add"),
                    gelu = pointwise(
                        tanh ? CUDNN_POINTWISE_GELU_APPROX_TANH_FWD : CUDNN_POINTWISE_GELU_FWD,
                        biased, nullptr, y, "gelu");
  impl_->plan = cudnn::make_plan(
      impl_->handle, {&mm_op, &add, &gelu},
      fmt::format("GEMM + bias + GELU (M {}, N {}, K {}, {})", m, n, k, act_name(a)));
}

CudnnGemmGelu::~CudnnGemmGelu() = default;

void CudnnGemmGelu::run(const void* x, const void* w, const float* bias, void* y) {
  cudnn::execute(impl_->handle, impl_->plan, {kX, kW, kBias, kY},
                 {const_cast<void*>(x), const_cast<void*>(w), const_cast<float*>(bias), y});
}

std::string CudnnGemmGelu::describe() const {
  return fmt::format("cuDNN {} matmul + bias + GELU (erf) graph, engine {}", cudnn::version(),
                     impl_->plan.engine);
}

#else  // built without cuDNN's headers

struct CudnnGemmGelu::Impl {};
CudnnGemmGelu::CudnnGemmGelu(Act, int64_t, int64_t, int64_t, cudaStream_t, bool) {
  throw std::runtime_error(
      "this build has no cuDNN backends (cuDNN's headers were not found at configure time)");
}
CudnnGemmGelu::~CudnnGemmGelu() = default;
void CudnnGemmGelu::run(const void*, const void*, const float*, void*) {}
std::string CudnnGemmGelu::describe() const { return {}; }

#endif

}  // namespace wb::cuda
