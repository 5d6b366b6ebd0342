// The built-in tolerance profiles (private to wb_compare): one per wb::Precision, generated from
// the enum and fixtures/profiles/<precision>.json (compare/CMakeLists.txt,
// builtin_profile.cpp.in). ToleranceProfile::for_precision reads them.
#pragma once
#include <span>

#include "wb/core/precision.h"

namespace wb::cmp {

struct BuiltinProfile {
  Precision precision;
  const char* file;  // the profile's file, relative to the repository
  const char* text;  // its JSON
};

// In enum order, one per value of wb::Precision.
std::span<const BuiltinProfile> builtin_profiles();

}  // namespace wb::cmp
