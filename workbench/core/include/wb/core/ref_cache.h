// The reference cache: one content-addressed store of reference dumps that every command making
// a reference reuses (wb sweep, wb bisect-layers, wb dump --ref-cache, the CI recipe). An entry
// is keyed by everything the dump depends on (a JSON object: model and audio sha256, dtype,
// storage dtype, taps, threads, device, decode options, the LibTorch and workbench versions) and
// is trusted only after checks: its index names the same key, the dump's checksum matches the one
// recorded, the dump opens (structure guard) and names the same model and audio. Anything else
// is a corrupt or foreign entry: one warning line, removed, recomputed.
//
// Layout of DIR: <key hash>.json (the index: schema, key, file, checksum, bytes) and
// <key hash>-<checksum prefix>.h5 (the dump). A writer writes its dump under a name of its own,
// moves it to its content-named file and then publishes the index with one rename, so two shards
// storing the same entry at once leave one good entry (the last index wins; the other dump is an
// orphan the next trim removes). Least recently used entries (index mtime, touched on each hit)
// are removed beyond the size cap.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace wb {

class RefCache {
 public:
  static constexpr int64_t kDefaultMaxBytes = int64_t{10} << 30;
  // $XDG_CACHE_HOME/whisper-fidelity/references, else ~/.cache/whisper-fidelity/references.
  static std::string default_dir();

  // dir "" means default_dir(). Creates the folder; throws std::runtime_error when it cannot.
  explicit RefCache(std::string dir = "", int64_t max_bytes = kDefaultMaxBytes);
  const std::string& dir() const { return dir_; }

  // The path of a verified entry for key, or nullopt (a miss; a corrupt or foreign entry is
  // warned about on stderr, removed and reported as a miss).
  std::optional<std::string> find(const nlohmann::json& key);
  // Makes the entry: write(path) writes a complete dump at path; it is moved in atomically and
  // the cache trimmed to its cap. Returns the entry's dump path.
  std::string put(const nlohmann::json& key, const std::function<void(const std::string&)>& write);

  int hits() const { return hits_; }
  int misses() const { return misses_; }
  int rejected() const { return rejected_; }  // corrupt or foreign entries met

 private:
  std::string hash(const nlohmann::json& key) const;
  void reject(const std::string& index, const std::string& data, const std::string& why);
  void trim();
  std::string dir_;
  int64_t max_bytes_;
  int hits_ = 0, misses_ = 0, rejected_ = 0;
};

}  // namespace wb
