#pragma once
// Scratch folders for the test binaries: made under the system's temporary folder, named after
// the process, and removed with everything in them when their owner goes (for scratch_dir(): at
// the process's normal exit). A run that crashes leaves them for inspection.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>

namespace wb::testing {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& stem)
      : path_(std::filesystem::temp_directory_path() /
              (stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(next()))) {
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  static int next() {
    static std::atomic<int> n{0};
    return n++;
  }
  std::filesystem::path path_;
};

// The process's own scratch folder, made on first use.
inline const std::filesystem::path& scratch_dir() {
  static const ScratchDir d("wb-test");
  return d.path();
}

}  // namespace wb::testing
