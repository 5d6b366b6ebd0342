// A module of another build, for module_test.cpp: an entry point whose stamp names another build.
#include "module.h"

namespace {
const wb::modules::Stamp kStamp{"another build", sizeof(wb::modules::Stamp)};
}  // namespace

extern "C" const void* wb_test_module_v1() { return &kStamp; }
