#include "module.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "wb_module_build.h"

namespace wb::modules {

const char* this_build() { return WB_MODULE_BUILD; }

namespace {

// The folder of the running executable (wb-engine's, also when wb handed it a command).
std::string exe_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec)
    throw ModuleError(
        fmt::format("cannot find the engine's folder (/proc/self/exe: {})", ec.message()));
  return exe.parent_path().string();
}

}  // namespace

const Stamp& open_module(const ModuleSpec& spec) {
  const char* env = std::getenv(spec.env);
  const bool overridden = env != nullptr && *env != '\0';
  const std::string path = overridden ? std::string(env) : exe_dir() + "/" + spec.file;
  const std::string where =
      overridden ? fmt::format("{} from {}", spec.file, spec.env)
                 : fmt::format("{} beside wb-engine; {} overrides its path", spec.file, spec.env);
  // RTLD_NOW: a symbol the module needs and the engine lacks is an error here, not a crash later.
  // RTLD_LOCAL: the module's libraries do not join the global scope (nothing else needs them).
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr)
    throw ModuleError(fmt::format("cannot load {} module: {} ({})", spec.what, dlerror(), where));
  using Entry = const void* (*)();
  auto* entry = reinterpret_cast<Entry>(dlsym(handle, spec.entry));
  if (entry == nullptr)
    throw ModuleError(fmt::format("{}: not {} module (no entry point {}; {})", path, spec.what,
                                  spec.entry, where));
  const auto* stamp = static_cast<const Stamp*>(entry());
  if (stamp == nullptr || stamp->build == nullptr || std::strcmp(stamp->build, this_build()) != 0)
    throw ModuleError(
        fmt::format("{}: {} module of another build ('{}', this engine is '{}'); "
                    "rebuild, or point {} at this build's {}",
                    path, spec.what, stamp && stamp->build ? stamp->build : "", this_build(),
                    spec.env, spec.file));
  return *stamp;
}

}  // namespace wb::modules
