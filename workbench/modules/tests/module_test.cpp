// Opening a module (src/module.cpp): every refusal is a ModuleError naming the path and the
// reason, never a crash. The engine's own modules are checked end to end by cli_test.sh.
#include "module.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

using wb::modules::ModuleError;
using wb::modules::ModuleSpec;
using wb::modules::open_module;

namespace {

// The error of opening `spec` with its environment variable set to `path`.
std::string error_of(const ModuleSpec& spec, const std::string& path) {
  setenv(spec.env, path.c_str(), 1);
  try {
    open_module(spec);
  } catch (const ModuleError& e) {
    unsetenv(spec.env);
    return e.what();
  }
  unsetenv(spec.env);
  return "(no error)";
}

const ModuleSpec kSpec{"the test", "wb-test.so", "WB_TEST_MODULE", "wb_test_module_v1"};

}  // namespace

TEST_CASE("a missing module: its path, and where the path came from") {
  const std::string e = error_of(kSpec, "no-such-folder/wb-test.so");
  INFO(e);
  CHECK(e.find("cannot load the test module") != std::string::npos);
  CHECK(e.find("no-such-folder/wb-test.so") != std::string::npos);
  CHECK(e.find("WB_TEST_MODULE") != std::string::npos);
}

TEST_CASE("a shared object without the entry point is not the module") {
  const ModuleSpec other{"the other", "wb-other.so", "WB_TEST_MODULE", "wb_other_module_v1"};
  const std::string e = error_of(other, WB_TEST_FOREIGN_MODULE);
  INFO(e);
  CHECK(e.find("not the other module (no entry point wb_other_module_v1") != std::string::npos);
}

TEST_CASE("a module of another build is refused, both builds named") {
  const std::string e = error_of(kSpec, WB_TEST_FOREIGN_MODULE);
  INFO(e);
  CHECK(e.find("module of another build ('another build', this engine is '" +
               std::string(wb::modules::this_build())) != std::string::npos);
}
