#include "cudnn_backend.h"

#if WB_HAVE_CUDNN
#include <dlfcn.h>
#include <fmt/format.h>

#include <stdexcept>
#include <type_traits>

namespace wb::cuda::cudnn {

namespace {

// The cuDNN entry points used here, from libcudnn.so.9 opened at first use (never closed: cuDNN's
// own libraries stay loaded for the process).
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
          "cuDNN not found: {} (put the folder with libcudnn.so.9, e.g. PyTorch's "
          "nvidia/cudnn/lib, on LD_LIBRARY_PATH)",
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
      r.missing = fmt::format("cuDNN {} is too old (the backends here need {} or later)",
                              r.version(), kMinVersion);
    return r;
  }();
  return a;
}

}  // namespace

const std::string& unavailable_reason() { return api().missing; }
std::size_t version() { return api().version(); }

void ok(cudnnStatus_t st, const char* what) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  const Api& a = api();
  char msg[512] = {0};
  a.last_error(msg, sizeof msg);
  throw std::runtime_error(
      fmt::format("cuDNN {}: {}{}{}", what, a.error_string(st), msg[0] != 0 ? ": " : "", msg));
}

Desc::Desc(cudnnBackendDescriptorType_t type) { ok(api().create_desc(type, &d_), "create"); }
Desc::~Desc() {
  if (d_ != nullptr) api().destroy_desc(d_);
}
Desc& Desc::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n,
                const void* v, const char* what) {
  ok(api().set(d_, name, type, n, v), what);
  return *this;
}
Desc& Desc::set_desc(cudnnBackendAttributeName_t name, const Desc& v, const char* what) {
  const cudnnBackendDescriptor_t p = v.get();
  return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p, what);
}
Desc& Desc::finalize(const char* what) {
  ok(api().finalize(d_), what);
  return *this;
}

Desc tensor(int64_t uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
            const std::vector<int64_t>& strides, bool virtual_, bool by_value) {
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t align = 16;
  const auto n = static_cast<int64_t>(dims.size());
  t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor id")
      .set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor type")
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, n, dims.data(), "tensor dims")
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, n, strides.data(), "tensor strides")
      .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
  if (virtual_) t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virtual_, "virtual");
  if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "by value");
  t.finalize("tensor");
  return t;
}

Handle::Handle(cudaStream_t s) {
  if (const std::string& why = api().missing; !why.empty()) throw std::runtime_error(why);
  ok(api().create(&h_), "create handle");
  ok(api().set_stream(h_, s), "set stream");
}
Handle::~Handle() {
  if (h_ != nullptr) api().destroy(h_);
}

Plan make_plan(const Handle& h, const std::vector<const Desc*>& ops, const std::string& what) {
  const Api& a = api();
  std::vector<cudnnBackendDescriptor_t> raw_ops;
  for (const Desc* d : ops) raw_ops.push_back(d->get());
  const cudnnHandle_t handle = h.get();
  Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "graph handle")
      .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
           static_cast<int64_t>(raw_ops.size()), raw_ops.data(), "graph ops")
      .finalize("operation graph");
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristic graph")
      .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristic mode")
      .finalize("heuristic");
  int64_t n = 0;
  ok(a.get(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n,
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
    ok(a.get(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got,
             raw.data()),
       "heuristic results");
  // The heuristic's order: the first configuration cuDNN can make a plan of.
  std::string why = "the heuristic offered no engine";
  for (int64_t i = 0; i < got; ++i) {
    Plan p;
    if (a.set(p.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle) !=
            CUDNN_STATUS_SUCCESS ||
        a.set(p.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR,
              1, &raw[i]) != CUDNN_STATUS_SUCCESS)
      continue;
    if (const cudnnStatus_t st = a.finalize(p.plan.get()); st != CUDNN_STATUS_SUCCESS) {
      why = fmt::format("no engine of {} made a plan (last: {})", got, a.error_string(st));
      continue;
    }
    int64_t ws = 0, cnt = 0;
    ok(a.get(p.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt,
             &ws),
       "workspace size");
    p.workspace = Buf(static_cast<std::size_t>(ws));
    Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    cudnnBackendDescriptor_t e = engine.get();
    if (a.get(raw[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt, &e) ==
        CUDNN_STATUS_SUCCESS)
      a.get(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &cnt, &p.engine);
    return p;
  }
  throw std::runtime_error(fmt::format("cuDNN {}: {}", what, why));
}

void execute(const Handle& h, Plan& p, const std::vector<int64_t>& uids,
             const std::vector<void*>& ptrs) {
  void* ws = p.workspace.get();
  const auto n = static_cast<int64_t>(uids.size());
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids.data(), "variant ids")
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs.data(),
           "variant pointers")
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, "variant workspace")
      .finalize("variant pack");
  ok(api().execute(h.get(), p.plan.get(), pack.get()), "execute");
}

}  // namespace wb::cuda::cudnn
#endif
