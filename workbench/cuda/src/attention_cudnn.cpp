#include "attention_cudnn.h"

#include <fmt/format.h>

#include <map>
#include <stdexcept>
#include <vector>

#include "cudnn_backend.h"
#include "device.h"

namespace wb::cuda {

#if WB_HAVE_CUDNN

namespace {
enum Uid : int64_t { kQ = 1, kK = 2, kV = 3, kO = 4, kScale = 5 };
}  // namespace

struct CudnnAttention::Impl {
  Impl(Act a, int t_, int c_, int heads_, int64_t clip_rows_, cudaStream_t s)
      : act(a), t(t_), c(c_), heads(heads_), clip_rows(clip_rows_), handle(s) {}
  Act act;
  int t, c, heads;
  int64_t clip_rows;
  cudnn::Handle handle;
  float alpha = 0;  // the by-value scale's host copy (read by cudnnBackendExecute)
  std::map<int, cudnn::Plan> plans;

  // cuDNN's scaled dot product attention operation on [B, H, T, d] views of the buffers.
  cudnn::Plan make_plan(int batch) const {
    using cudnn::tensor;
    const cudnnDataType_t type = act == Act::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    const int64_t b = batch, h = heads, tt = t, dh = c / heads;
    // a clip's block of clip_rows rows of q | k | v, heads side by side in a row
    const std::vector<int64_t> dims{b, h, tt, dh}, in_strides{clip_rows * 3 * c, dh, 3 * c, 1},
        out_strides{tt * c, dh, c, 1};
    cudnn::Desc q = tensor(kQ, type, dims, in_strides), k = tensor(kK, type, dims, in_strides),
                v = tensor(kV, type, dims, in_strides), o = tensor(kO, type, dims, out_strides),
                scale = tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    cudnn::Desc op(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, q, "sdpa q")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, k, "sdpa k")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, v, "sdpa v")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, o, "sdpa o")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, scale, "sdpa scale")
        .finalize("sdpa operation");
    return cudnn::make_plan(handle, {&op},
                            fmt::format("attention ({} clips x {} heads, T {}, d_head {}, {})",
                                        batch, heads, t, dh, act_name(act)));
  }
};

std::string cudnn_attention_unavailable_reason() { return cudnn::unavailable_reason(); }

CudnnAttention::CudnnAttention(Act a, int t, int c, int heads, int64_t clip_rows, cudaStream_t s) {
  const int dh = heads > 0 ? c / heads : 0;
  if (a == Act::f32 || heads < 1 || c % heads != 0 || dh % 8 != 0 || dh > 128 || t < 1 ||
      clip_rows < t)
    throw std::invalid_argument(fmt::format(
        "cuDNN attention: 16-bit inputs, d_head a multiple of 8 up to 128 and clip rows >= T "
        "({}, C {}, {} heads, T {}, clip rows {})",
        act_name(a), c, heads, t, clip_rows));
  impl_ = std::make_unique<Impl>(a, t, c, heads, clip_rows, s);  // throws where cuDNN is missing
}

CudnnAttention::~CudnnAttention() = default;

void CudnnAttention::run(const void* qkv, void* out, float alpha, int batch) {
  Impl& m = *impl_;
  auto it = m.plans.find(batch);
  if (it == m.plans.end()) it = m.plans.emplace(batch, m.make_plan(batch)).first;
  m.alpha = alpha;
  auto* base = static_cast<char*>(const_cast<void*>(qkv));
  const std::size_t cb = static_cast<std::size_t>(m.c) * 2;  // one of q, k, v in a row, bytes
  cudnn::execute(m.handle, it->second, {kQ, kK, kV, kO, kScale},
                 {base, base + cb, base + 2 * cb, out, &m.alpha});
}

std::string CudnnAttention::describe() const {
  std::string engines;
  for (const auto& [b, p] : impl_->plans)
    engines += fmt::format("{}batch {}: engine {}", engines.empty() ? "" : ", ", b, p.engine);
  return fmt::format("cuDNN {} fused attention (scaled dot product attention operation{}{})",
                     cudnn::version(), engines.empty() ? "" : "; ", engines);
}

#else  // built without cuDNN's headers

std::string cudnn_attention_unavailable_reason() {
  return "this build has no cuDNN attention (cuDNN's headers were not found at configure time)";
}

struct CudnnAttention::Impl {};

CudnnAttention::CudnnAttention(Act, int, int, int, int64_t, cudaStream_t) {
  throw std::runtime_error(cudnn_attention_unavailable_reason());
}
CudnnAttention::~CudnnAttention() = default;
void CudnnAttention::run(const void*, void*, float, int) {}
std::string CudnnAttention::describe() const { return {}; }

#endif

}  // namespace wb::cuda
