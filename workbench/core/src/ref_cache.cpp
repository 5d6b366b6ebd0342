#include "wb/core/ref_cache.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "wb/core/dump.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"

namespace wb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
constexpr const char* kSchema = "whisper-fidelity-ref-cache/1";
// An orphan dump (its writer's index lost the race, or the writer died before publishing) older
// than this is removed by trim(); a writer between its two renames is far younger.
constexpr auto kOrphanAge = std::chrono::minutes(10);

// A fast content checksum (four 64-bit lanes of multiply-add over the file's 8-byte words, its
// length mixed in): detects a truncated or bit-flipped entry at memory speed; sha256 of a
// 100 MB reference dump took 0.7 s, more than the comparison it saves. Not a defence against
// someone forging entries: the cache is the user's own folder.
std::string content_checksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read");
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t lane[4] = {1, 2, 3, 4};
  std::vector<char> buf(std::size_t{1} << 20);
  uint64_t total = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    if (n % 8 != 0) std::memset(buf.data() + n, 0, 8 - n % 8);  // n < the buffer's size here
    const std::size_t words = (n + 7) / 8;
    for (std::size_t i = 0; i < words; ++i) {
      uint64_t w;
      std::memcpy(&w, buf.data() + 8 * i, 8);
      uint64_t& l = lane[i & 3];
      l = (l ^ w) * kMul;
      l ^= l >> 29;
    }
    total += n;
  }
  uint64_t h = total * kMul;
  for (uint64_t l : lane) h = ((h ^ l) * kMul) ^ (h >> 31);
  return fmt::format("{:016x}{:016x}{:016x}{:016x}{:016x}", h, lane[0], lane[1], lane[2], lane[3]);
}

std::optional<json> read_index(const std::string& path, std::string& why) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    json j = json::parse(ss.str());
    if (!j.is_object() || j.value("schema", "") != kSchema) {
      why = "not an index of this cache";
      return json();
    }
    return j;
  } catch (const json::exception&) {
    why = "unreadable index";
    return json();
  }
}
}  // namespace

std::string RefCache::default_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string base = xdg != nullptr && *xdg != '\0'     ? std::string(xdg)
                           : home != nullptr && *home != '\0' ? std::string(home) + "/.cache"
                                                              : fs::temp_directory_path().string();
  return base + "/whisper-fidelity/references";
}

RefCache::RefCache(std::string dir, int64_t max_bytes)
    : dir_(dir.empty() ? default_dir() : std::move(dir)), max_bytes_(max_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (!fs::is_directory(dir_))
    throw std::runtime_error(fmt::format("{}: cannot create the reference cache folder", dir_));
}

std::string RefCache::hash(const json& key) const {
  const std::string text = key.dump();
  return sha256_bytes(text.data(), text.size());
}

void RefCache::reject(const std::string& index, const std::string& data, const std::string& why) {
  ++rejected_;
  fmt::print(stderr, "wb: warning: reference cache entry {}: {}; recomputing it\n", index, why);
  std::error_code ec;
  fs::remove(index, ec);
  if (!data.empty()) fs::remove(data, ec);
}

std::optional<std::string> RefCache::find(const json& key) {
  const std::string h = hash(key);
  const std::string index = dir_ + "/" + h + ".json";
  std::string why;
  const std::optional<json> j = read_index(index, why);
  if (!j) {
    ++misses_;
    return std::nullopt;
  }
  auto miss = [&](const std::string& data, const std::string& problem) {
    reject(index, data, problem);
    ++misses_;
    return std::nullopt;
  };
  if (!why.empty()) return miss("", why);
  if (j->value("key", json()) != key) return miss("", "a foreign entry (its key differs)");
  const std::string file = j->value("file", "");
  if (file.empty() || file.find('/') != std::string::npos || file.rfind(h, 0) != 0)
    return miss("", "a foreign entry (bad file name)");
  const std::string data = dir_ + "/" + file;
  std::error_code ec;
  const auto size = fs::file_size(data, ec);
  if (ec) return miss("", "its dump is missing");
  if (static_cast<int64_t>(size) != j->value("bytes", int64_t{-1}))
    return miss(data, fmt::format("its dump has {} bytes, {} recorded (truncated?)", size,
                                  j->value("bytes", int64_t{-1})));
  std::string sum;
  try {
    sum = content_checksum(data);
  } catch (const std::exception& e) {
    return miss(data, e.what());
  }
  if (sum != j->value("checksum", ""))
    return miss(data, "its dump's checksum differs from the one recorded (corrupt)");
  try {
    const DumpReader r(data);
    if (r.meta().model_sha256 != key.value("model_sha256", "") ||
        r.meta().audio_sha256 != key.value("audio_sha256", ""))
      return miss(data, "a foreign entry (another model or audio)");
  } catch (const std::exception& e) {
    return miss(data, e.what());
  }
  fs::last_write_time(index, fs::file_time_type::clock::now(), ec);  // least recently used
  ++hits_;
  return data;
}

std::string RefCache::put(const json& key, const std::function<void(const std::string&)>& write) {
  const std::string h = hash(key);
  static int counter = 0;
  const std::string tmp = fmt::format("{}/.{}-{}-{}.h5", dir_, h, ::getpid(), counter++);
  TempFile guard(tmp);
  std::error_code ec;
  try {
    write(tmp);
    const std::string sum = content_checksum(tmp);
    const auto bytes = static_cast<int64_t>(fs::file_size(tmp));
    const std::string file = h + "-" + sum.substr(0, 16) + ".h5";
    fs::rename(tmp, dir_ + "/" + file);
    json index = {{"schema", kSchema}, {"key", key},     {"file", file},
                  {"checksum", sum},   {"bytes", bytes}, {"created", utc_now_iso8601()}};
    write_file_atomic(dir_ + "/" + h + ".json", index.dump(1));
    trim();
    return dir_ + "/" + file;
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

void RefCache::trim() {
  struct Entry {
    fs::file_time_type used;
    std::string index, data;
    int64_t bytes;
  };
  std::vector<Entry> entries;
  std::vector<std::string> referenced;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string p = e.path().string();
    if (e.path().extension() != ".json") continue;
    std::string why;
    const std::optional<json> j = read_index(p, why);
    if (!j || !why.empty()) continue;
    const std::string data = dir_ + "/" + j->value("file", "");
    referenced.push_back(data);
    entries.push_back({e.last_write_time(ec), p, data,
                       j->value("bytes", int64_t{0}) + static_cast<int64_t>(e.file_size(ec))});
  }
  const auto now = fs::file_time_type::clock::now();
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() == ".json") continue;
    const std::string p = e.path().string();
    // A writer's own file (".<hash>-<pid>-<n>.h5" and its ".partial-<pid>") lives as long as
    // its dump takes to write: removed only when a day old (its writer died).
    const bool writing = e.path().filename().string().rfind('.', 0) == 0;
    if (std::find(referenced.begin(), referenced.end(), p) == referenced.end() &&
        now - e.last_write_time(ec) > (writing ? std::chrono::hours(24) : kOrphanAge))
      fs::remove(p, ec);
  }
  int64_t total = 0;
  for (const auto& e : entries) total += e.bytes;
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (std::size_t i = 0; total > max_bytes_ && i + 1 < entries.size(); ++i) {
    fs::remove(entries[i].index, ec);
    fs::remove(entries[i].data, ec);
    total -= entries[i].bytes;
  }
}

}  // namespace wb
