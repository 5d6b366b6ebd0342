#include "wb/core/tempfile.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>

namespace wb {

namespace {

constexpr int kSlots = 64;
constexpr std::size_t kMaxPath = 4096;

// A slot is claimed (0 -> 1) by a constructor, filled, then published (1 -> 2); the handler only
// reads published slots. Plain static storage: nothing is allocated in the handler.
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being filled, 2 published
  char path[kMaxPath];
};
Slot g_slots[kSlots];

void on_signal(int sig) {
  for (Slot& s : g_slots)
    if (s.state.load(std::memory_order_acquire) == 2) ::unlink(s.path);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
      struct sigaction sa {};
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      sigaction(sig, &sa, nullptr);
    }
  });
}

}  // namespace

TempFile::TempFile(std::string path) : path_(std::move(path)) {
  install_handlers();
  if (path_.size() >= kMaxPath) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!g_slots[i].state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
    std::memcpy(g_slots[i].path, path_.c_str(), path_.size() + 1);
    g_slots[i].state.store(2, std::memory_order_release);
    slot_ = i;
    return;
  }
}

TempFile::~TempFile() {
  if (slot_ >= 0) g_slots[slot_].state.store(0, std::memory_order_release);
}

std::unique_ptr<TempFile> write_temp(const std::string& path, const std::string& content) {
  auto registered = std::make_unique<TempFile>(fmt::format("{}.tmp-{}", path, ::getpid()));
  const std::string& tmp = registered->path();
  std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(fmt::format("{}: cannot write", tmp));
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  f.flush();
  if (!f) {
    f.close();
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(fmt::format("{}: write failed", tmp));
  }
  return registered;
}

void rename_into_place(const std::string& tmp, const std::string& path) {
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(fmt::format("{}: cannot rename into place", path));
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  rename_into_place(write_temp(path, content)->path(), path);
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  const std::string tmp = fmt::format("{}.tmp-{}", to, ::getpid());
  TempFile guard(tmp);
  std::error_code ec;
  std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(fmt::format("{}: cannot copy to {}: {}", from, to, ec.message()));
  }
  rename_into_place(tmp, to);
}

void append_line_durable(const std::string& path, const std::string& line) {
  if (line.find('\n') != std::string::npos)
    throw std::invalid_argument(fmt::format("{}: a log line may not hold a newline", path));
  const std::string rec = line + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(fmt::format("{}: cannot open to append: {}", path, strerror(errno)));
  ssize_t n = -1;
  do {
    n = ::write(fd, rec.data(), rec.size());
  } while (n < 0 && errno == EINTR);
  const int write_errno = errno;
  const bool synced = n == static_cast<ssize_t>(rec.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(rec.size()))
    throw std::runtime_error(fmt::format("{}: append failed ({} of {} bytes): {}", path,
                                         n < 0 ? 0 : n, rec.size(),
                                         n < 0 ? strerror(write_errno) : "short write"));
  if (!synced) throw std::runtime_error(fmt::format("{}: fsync failed: {}", path, strerror(errno)));
}

}  // namespace wb
