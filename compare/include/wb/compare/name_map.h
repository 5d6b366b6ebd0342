// Renames foreign tap names (Hugging Face module paths, another port's names) onto the registry's
// names before alignment (fixtures/maps/hf.json).
//
// Accepted JSON: an object of "stored name" -> "registry name" pairs, either at the top level or
// under "map" / "names" / "taps"; keys "description", "comment", "name", "version", "$schema" are
// metadata. "{i}" in both names stands for a layer index:
//   {"model.encoder.layers.{i}.self_attn_layer_norm": "encoder.blocks.{i}.attn_ln"}
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "wb/core/dims.h"

namespace wb::cmp {

class NameMap {
 public:
  NameMap() = default;
  // Throws std::runtime_error("<origin>: ...") on malformed content.
  static NameMap parse(const nlohmann::json& j, const std::string& origin);
  static NameMap load(const std::string& path);

  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  // The registry name for a stored name; the name itself when no entry matches.
  std::string canonical(std::string_view stored) const;
  // Every target must be a registry tap for these dims; throws std::runtime_error naming the
  // first that is not ("<origin>: maps 'x' to unknown tap 'y'").
  void validate(const ModelDims& d) const;
  const std::string& origin() const { return origin_; }

 private:
  struct Entry {
    std::string from, to;
    bool indexed = false;  // contains {i}
  };
  std::vector<Entry> entries_;
  std::string origin_;
};

}  // namespace wb::cmp
