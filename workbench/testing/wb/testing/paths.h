#pragma once
// Where the tests find the source tree (fixtures/, scripts/) and the build tree. Defined in one
// unit the build generates (wb_test_paths.cpp), not as compile definitions of every test unit:
// absolute paths on the command line made every test unit a compiler-cache miss in each new
// clone of the repository.
namespace wb::testing {
const char* source_dir();
const char* binary_dir();
}  // namespace wb::testing
