// CaptureSource: a TapSink that keeps the taps of a run in memory and serves them to the
// comparator as a TapSource: a dump that never touches the disk (wb sweep's both sides, wb
// replay's candidate chain). Values are kept as reported (float32 or float64) and read back as
// double, as DumpReader does; layout and order come from the tap registry.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wb/compare/compare.h"
#include "wb/core/dump.h"
#include "wb/core/taps.h"

namespace wb::cmp {

class CaptureSource : public TapSink, public TapSource {
 public:
  using Wants = std::function<bool(std::string_view)>;  // which taps to keep
  CaptureSource(std::string label, DumpMeta meta, Wants wants)
      : label_(std::move(label)), meta_(std::move(meta)), wants_(std::move(wants)) {}

  bool wants(std::string_view name) const override { return wants_(name); }
  void put(std::string_view name, const TapView& v) override;
  void set_decode(std::vector<int> tokens, std::string text);

  std::string label() const override { return label_; }
  const DumpMeta& meta() const override { return meta_; }
  const std::vector<TapInfo>& taps() const override;  // in registry order
  void read_rows(const std::string& name, int64_t row0, int64_t n,
                 std::vector<double>& out) const override;
  std::optional<std::string> text() const override { return text_; }
  // The decode's tokens once set_decode() was called: the transcript impact (token agreement)
  // of an in-memory comparison, as of two dumps.
  std::optional<std::vector<int>> tokens() const override {
    if (!text_) return std::nullopt;
    return tokens_;
  }

  int64_t bytes() const { return bytes_; }  // as float32 datasets
  // The same taps as an HDF5 dump (wb dump's format), written atomically.
  void write_dump(const std::string& path, const TapSelector& sel) const;

 private:
  struct Tap {
    TapInfo info;
    std::vector<float> f32;
    std::vector<double> f64;
  };
  std::string label_;
  DumpMeta meta_;
  Wants wants_;
  std::vector<Tap> data_;
  std::map<std::string, std::size_t> index_;
  mutable std::vector<TapInfo> infos_;
  std::optional<std::string> text_;
  std::vector<int> tokens_;
  int64_t bytes_ = 0;
};

}  // namespace wb::cmp
