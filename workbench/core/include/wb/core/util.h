// Small shared helpers: hashing, time stamps, version.
#pragma once
#include <stdexcept>
#include <string>

namespace wb {

std::string sha256_file(const std::string& path);  // hex; throws std::runtime_error
std::string sha256_bytes(const void* data, std::size_t n);
std::string utc_now_iso8601();
std::string tool_version();
// Reads a whole file; throws std::runtime_error("<path>: ...") if missing or unreadable.
std::string read_file(const std::string& path);

// Error categories used to pick the CLI's exit status.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace wb
