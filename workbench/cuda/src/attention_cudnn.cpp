#include "attention_cudnn.h"

#include <fmt/format.h>

#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

#include "device.h"

#if WB_HAVE_CUDNN
#include <cudnn.h>
#include <dlfcn.h>
#endif

namespace wb::cuda {

#if WB_HAVE_CUDNN

namespace {

// The cuDNN entry points this backend calls, from libcudnn.so.9 opened at first use (never
// closed: cuDNN's own libraries stay loaded for the process).
struct Api {
  decltype(&cudnnGetVersion) version = nullptr;
  decltype(&cudnnGetErrorString) error_string = nullptr;
  decltype(&cudnnGetLastErrorString) last_error = nullptr;
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnDestroy) destroy = nullptr;
  decltype(&cudnnSetStream) set_stream = nullptr;
  decltype(&cudnnBackendCreateDescriptor) create_desc = nullptr;
  decltype(&cudnnBackendDestroyDescriptor) destroy_desc = nullptr;
  decltype(&cudnnBackendSetAttribute) set = nullptr;
  decltype(&cudnnBackendGetAttribute) get = nullptr;
  decltype(&cudnnBackendFinalize) finalize = nullptr;
  decltype(&cudnnBackendExecute) execute = nullptr;
  std::string missing;  // why it cannot be used; empty when every entry point was found
};

// The fused scaled dot product attention operation is in cuDNN from 9.10 on (its backend
// descriptor); older libraries refuse it.
constexpr std::size_t kMinVersion = 91000;

const Api& api() {
  static const Api a = [] {
    Api r;
    void* lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      r.missing = fmt::format(
          "cuDNN not found: {} (put the folder with libcudnn.so.9, e.g. "
          "PyTorch's nvidia/cudnn/lib, on LD_LIBRARY_PATH)",
          e != nullptr ? e : "libcudnn.so.9 did not load");
      return r;
    }
    auto sym = [&](auto& f, const char* name) {
      f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(lib, name));
      if (f == nullptr && r.missing.empty())
        r.missing = fmt::format("cuDNN: libcudnn.so.9 has no {}", name);
    };
    sym(r.version, "cudnnGetVersion");
    sym(r.error_string, "cudnnGetErrorString");
    sym(r.last_error, "cudnnGetLastErrorString");
    sym(r.create, "cudnnCreate");
    sym(r.destroy, "cudnnDestroy");
    sym(r.set_stream, "cudnnSetStream");
    sym(r.create_desc, "cudnnBackendCreateDescriptor");
    sym(r.destroy_desc, "cudnnBackendDestroyDescriptor");
    sym(r.set, "cudnnBackendSetAttribute");
    sym(r.get, "cudnnBackendGetAttribute");
    sym(r.finalize, "cudnnBackendFinalize");
    sym(r.execute, "cudnnBackendExecute");
    if (r.missing.empty() && r.version() < kMinVersion)
      r.missing = fmt::format("cuDNN {} has no fused attention operation (needs {} or later)",
                              r.version(), kMinVersion);
    return r;
  }();
  return a;
}

void ok(cudnnStatus_t st, const char* what) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  const Api& a = api();
  char msg[512] = {0};
  a.last_error(msg, sizeof msg);
  throw std::runtime_error(
      fmt::format("cuDNN {}: {}{}{}", what, a.error_string(st), msg[0] != 0 ? ": " : "", msg));
}

// An owned backend descriptor.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type) { ok(api().create_desc(type, &d_), "create"); }
  ~Desc() {
    if (d_ != nullptr) api().destroy_desc(d_);
  }
  Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Desc& operator=(Desc&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }

  template <class T>
  Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n,
            const T* v, const char* what) {
    ok(api().set(d_, name, type, n, v), what);
    return *this;
  }
  Desc& set_desc(cudnnBackendAttributeName_t name, const Desc& v, const char* what) {
    const cudnnBackendDescriptor_t p = v.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p, what);
  }
  Desc& finalize(const char* what) {
    ok(api().finalize(d_), what);
    return *this;
  }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

enum Uid : int64_t { kQ = 1, kK = 2, kV = 3, kO = 4, kScale = 5 };

Desc tensor(Uid uid, cudnnDataType_t type, std::vector<int64_t> dims, std::vector<int64_t> strides,
            bool by_value = false) {
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t id = uid, align = 16;
  const bool yes = by_value;
  t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &id, "tensor id")
      .set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor type")
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, static_cast<int64_t>(dims.size()),
           dims.data(), "tensor dims")
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, static_cast<int64_t>(strides.size()),
           strides.data(), "tensor strides")
      .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
  if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes, "by value");
  t.finalize("tensor");
  return t;
}

struct Plan {
  Desc plan{CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR};
  Buf workspace;
  int64_t engine = -1;  // cuDNN's global engine index
};

}  // namespace

struct CudnnAttention::Impl {
  Act act = Act::bf16;
  int t = 0, c = 0, heads = 0;
  int64_t clip_rows = 0;
  cudaStream_t s = nullptr;
  cudnnHandle_t handle = nullptr;
  float alpha = 0;  // the by-value scale's host copy (read by cudnnBackendExecute)
  std::map<int, Plan> plans;

  ~Impl() {
    if (handle != nullptr) api().destroy(handle);
  }

  Plan make_plan(int batch) {
    const cudnnDataType_t type = act == Act::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    const int64_t b = batch, h = heads, tt = t, dh = c / heads;
    // [B, H, T, d]: a clip's block of clip_rows rows of q | k | v, heads side by side in a row
    const std::vector<int64_t> dims{b, h, tt, dh}, in_strides{clip_rows * 3 * c, dh, 3 * c, 1},
        out_strides{tt * c, dh, c, 1};
    Desc q = tensor(kQ, type, dims, in_strides), k = tensor(kK, type, dims, in_strides),
         v = tensor(kV, type, dims, in_strides), o = tensor(kO, type, dims, out_strides),
         scale = tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, true);
    Desc op(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, q, "sdpa q")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, k, "sdpa k")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, v, "sdpa v")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, o, "sdpa o")
        .set_desc(CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, scale, "sdpa scale")
        .finalize("sdpa operation");
    Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    const cudnnBackendDescriptor_t ops = op.get();
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "graph handle")
        .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ops, "graph ops")
        .finalize("operation graph");
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristic graph")
        .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristic mode")
        .finalize("heuristic");
    int64_t n = 0;
    ok(api().get(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n,
                 nullptr),
       "heuristic results");
    std::vector<Desc> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < n; ++i) {
      cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
      raw.push_back(cfgs.back().get());
    }
    int64_t got = 0;
    if (n > 0)
      ok(api().get(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n,
                   &got, raw.data()),
         "heuristic results");
    // The heuristic's order: the first configuration cuDNN can make a plan of.
    std::string why = "the heuristic offered no engine";
    for (int64_t i = 0; i < got; ++i) {
      Plan p;
      if (api().set(p.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1,
                    &handle) != CUDNN_STATUS_SUCCESS ||
          api().set(p.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw[i]) != CUDNN_STATUS_SUCCESS)
        continue;
      const cudnnStatus_t st = api().finalize(p.plan.get());
      if (st != CUDNN_STATUS_SUCCESS) {
        why = fmt::format("no engine of {} made a plan (last: {})", got, api().error_string(st));
        continue;
      }
      int64_t ws = 0, cnt = 0;
      ok(api().get(p.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                   &cnt, &ws),
         "workspace size");
      p.workspace = Buf(static_cast<std::size_t>(ws));
      Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
      cudnnBackendDescriptor_t e = engine.get();
      if (api().get(raw[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt,
                    &e) == CUDNN_STATUS_SUCCESS)
        api().get(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &cnt, &p.engine);
      return p;
    }
    throw std::runtime_error(
        fmt::format("cuDNN attention: {} for {} clips x {} heads, T {}, d_head {}, {}", why, batch,
                    heads, t, dh, act_name(act)));
  }
};

std::string cudnn_attention_unavailable_reason() { return api().missing; }

CudnnAttention::CudnnAttention(Act a, int t, int c, int heads, int64_t clip_rows, cudaStream_t s)
    : impl_(std::make_unique<Impl>()) {
  const int dh = heads > 0 ? c / heads : 0;
  if (a == Act::f32 || heads < 1 || c % heads != 0 || dh % 8 != 0 || dh > 128 || t < 1 ||
      clip_rows < t)
    throw std::invalid_argument(fmt::format(
        "cuDNN attention: 16-bit inputs, d_head a multiple of 8 up to 128 and clip rows >= T "
        "({}, C {}, {} heads, T {}, clip rows {})",
        act_name(a), c, heads, t, clip_rows));
  if (const std::string& why = api().missing; !why.empty()) throw std::runtime_error(why);
  Impl& m = *impl_;
  m.act = a;
  m.t = t;
  m.c = c;
  m.heads = heads;
  m.clip_rows = clip_rows;
  m.s = s;
  ok(api().create(&impl_->handle), "create handle");
  ok(api().set_stream(impl_->handle, s), "set stream");
}

CudnnAttention::~CudnnAttention() = default;

void CudnnAttention::run(const void* qkv, void* out, float alpha, int batch) {
  Impl& m = *impl_;
  auto it = m.plans.find(batch);
  if (it == m.plans.end()) it = m.plans.emplace(batch, m.make_plan(batch)).first;
  Plan& p = it->second;
  m.alpha = alpha;
  const auto* base = static_cast<const char*>(qkv);
  const std::size_t cb = static_cast<std::size_t>(m.c) * 2;  // one of q, k, v in a row, bytes
  void* ptrs[5] = {const_cast<char*>(base), const_cast<char*>(base + cb),
                   const_cast<char*>(base + 2 * cb), out, &m.alpha};
  const int64_t uids[5] = {kQ, kK, kV, kO, kScale};
  void* ws = p.workspace.get();
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids, "variant ids")
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs, "variant pointers")
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, "variant workspace")
      .finalize("variant pack");
  ok(api().execute(m.handle, p.plan.get(), pack.get()), "execute attention");
}

std::string CudnnAttention::describe() const {
  std::string engines;
  for (const auto& [b, p] : impl_->plans)
    engines += fmt::format("{}batch {}: engine {}", engines.empty() ? "" : ", ", b, p.engine);
  return fmt::format("cuDNN {} fused attention (scaled dot product attention operation{}{})",
                     api().version(), engines.empty() ? "" : "; ", engines);
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
