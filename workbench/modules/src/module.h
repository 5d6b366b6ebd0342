// The engine's modules: parts of wb-engine built as shared objects (wb-reference.so: the LibTorch
// reference; wb-cuda.so: the CUDA candidate) that the engine opens with dlopen the first time a
// command calls them, so a command that never does (a candidate dump without decoding) does not
// load their libraries at start (LibTorch brings about 300; CUDA: cudart, cuBLASLt, cuFFT).
//
// A module holds its own code only: it takes wb_core's symbols from the engine, which exports them
// (one copy of wb_core and of its state in the process), and exports one extern "C" entry point,
// which returns its table of function pointers; every other symbol of the module is local to it
// (module.map), so nothing in it takes the place of the engine's loader functions of the same
// names. The engine links a loader that implements the library's public API (reference.h,
// cuda_encoder.h) by calling through that table.
#pragma once
#include <cstddef>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace wb::modules {

// The first member of every module's table. The tables pass C++ objects (std::string, Tensor,
// Checkpoint, Encoder) between the engine and the module, which is safe only between the same
// sources built the same way: `build` names the build (version, compiler, build type, sanitizers,
// and an identity drawn once per build tree), and a module whose build or table size differs
// from the engine's is refused.
struct Stamp {
  const char* build;
  std::size_t table_size;
};

// The build of this engine (and of the modules built with it).
const char* this_build();

// A module that cannot be used: not found, not loadable (a library it needs is missing), not a
// module of this kind, or from another build. Not a std::runtime_error: the CLI reports it as an
// internal error (exit 3; docs/architecture.md), an incomplete installation, not bad input.
class ModuleError : public std::exception {
 public:
  explicit ModuleError(std::string what) : what_(std::move(what)) {}
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::string what_;
};

struct ModuleSpec {
  const char* what;   // what it holds, for messages ("the LibTorch reference")
  const char* file;   // its file name beside wb-engine ("wb-reference.so")
  const char* env;    // the environment variable that overrides its path ("WB_REFERENCE_MODULE")
  const char* entry;  // its entry point ("wb_reference_module_v1")
};

// Opens the module and returns its table after checking the stamp. It is never closed: objects
// it made may live until the process ends (the loaders open each module once and keep the
// table). Throws ModuleError naming the path and the reason.
const Stamp& open_module(const ModuleSpec& spec);

// The table of type T (whose first member is its Stamp) of the module.
template <class T>
const T& open_module_table(const ModuleSpec& spec) {
  static_assert(std::is_standard_layout_v<T>, "a module table starts with its Stamp");
  const Stamp& s = open_module(spec);
  if (s.table_size != sizeof(T))
    throw ModuleError(std::string(spec.what) + " module: its table has another size than this " +
                      "engine's (a module from another build; rebuild)");
  return reinterpret_cast<const T&>(s);
}

}  // namespace wb::modules
