// Shared pieces of the libFuzzer harnesses (one per reader, fuzz_<reader>.cpp).
//
// A harness feeds the bytes to a reader exactly as `wb` would meet them: written to a file in a
// private scratch folder (the readers take paths), then opened through the public entry point.
// The documented error path is fine: std::invalid_argument (wb::UsageError) and
// std::runtime_error are what the CLI turns into "exit 2, one line". Anything else is a finding:
// a crash or sanitizer report, any other exception (libFuzzer reports it as a deadly signal after
// std::terminate), a hang (-timeout) or an allocation beyond -malloc_limit_mb.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wb::fuzz {

// Per-process scratch folder: $TMPDIR, else /dev/shm (no disk traffic), else /tmp.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    fs::path base = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0')
      base = t;
    else if (fs::is_directory("/dev/shm"))
      base = "/dev/shm";
    fs::path d = base / ("wb-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  // Removed at normal exit (a crashing run leaves it for inspection).
  static const struct Cleanup {
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup;
  return dir;
}

inline void write_bytes(const std::filesystem::path& p, const void* data, std::size_t n) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  if (!out) std::abort();  // the harness itself failed, not the reader
}

// Splits the input at each occurrence of `sep` (for harnesses that feed several files).
inline std::vector<std::string_view> split(const uint8_t* data, std::size_t size,
                                           std::string_view sep) {
  std::vector<std::string_view> parts;
  std::string_view s(reinterpret_cast<const char*>(data), size);
  for (;;) {
    const auto p = s.find(sep);
    if (p == std::string_view::npos) break;
    parts.push_back(s.substr(0, p));
    s.remove_prefix(p + sep.size());
  }
  parts.push_back(s);
  return parts;
}

// Runs one reader call; the exceptions `wb` maps to exit status 2 are the expected outcome.
template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument&) {
  } catch (const std::runtime_error&) {
  }
}

}  // namespace wb::fuzz
