// CaptureSource: a run's taps in memory, read like a dump.
#include "wb/compare/capture.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace wb::cmp {

void CaptureSource::put(std::string_view name_sv, const TapView& v) {
  const std::string name(name_sv);
  const int64_t n = shape_numel(v.shape);
  Tap t;
  t.info.name = name;
  t.info.shape = v.shape;
  t.info.stored = v.dtype;
  const TapRegistry& reg = TapRegistry::of(meta_.dims);
  const TapSpec* spec = reg.find(name);
  t.info.order = spec ? reg.order(name) : 100000 + static_cast<int>(data_.size());
  t.info.layout = spec ? spec->layout : std::string("frame,channel");
  t.info.compute_dtype = std::string(dtype_name(v.dtype));
  if (v.dtype == DType::f64) {
    const auto* p = static_cast<const double*>(v.data);
    t.f64.assign(p, p + n);
  } else {
    const auto* p = static_cast<const float*>(v.data);
    t.f32.assign(p, p + n);
  }
  bytes_ += n * static_cast<int64_t>(sizeof(float));
  index_[name] = data_.size();
  data_.push_back(std::move(t));
  infos_.clear();
}

void CaptureSource::set_decode(std::vector<int> tokens, std::string text) {
  tokens_ = std::move(tokens);
  text_ = std::move(text);
}

const std::vector<TapInfo>& CaptureSource::taps() const {
  if (infos_.empty()) {
    for (const auto& t : data_) infos_.push_back(t.info);
    std::stable_sort(infos_.begin(), infos_.end(), [](const TapInfo& a, const TapInfo& b) {
      return a.order != b.order ? a.order < b.order : a.name < b.name;
    });
  }
  return infos_;
}

void CaptureSource::read_rows(const std::string& name, int64_t row0, int64_t n,
                              std::vector<double>& out) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw std::runtime_error(fmt::format("{}: no tap '{}'", label_, name));
  const Tap& t = data_[it->second];
  const Shape& s = t.info.shape;
  int64_t row_len = 1;
  for (std::size_t k = 1; k < s.size(); ++k) row_len *= s[k];
  const int64_t rows = s.empty() ? 1 : s[0];
  if (row0 < 0 || n < 0 || row0 + n > rows)
    throw std::runtime_error(fmt::format("{}: tap '{}': rows [{}, {}) outside {}", label_, name,
                                         row0, row0 + n, shape_str(s)));
  const auto b = static_cast<std::size_t>(row0 * row_len);
  const auto e = static_cast<std::size_t>((row0 + n) * row_len);
  if (t.info.stored == DType::f64)
    out.assign(t.f64.begin() + b, t.f64.begin() + e);
  else
    out.assign(t.f32.begin() + b, t.f32.begin() + e);
}

void CaptureSource::write_dump(const std::string& path, const TapSelector& sel) const {
  DumpWriter w(path, meta_, sel);
  for (const auto& t : data_) {
    const void* p = t.info.stored == DType::f64 ? static_cast<const void*>(t.f64.data())
                                                : static_cast<const void*>(t.f32.data());
    w.put(t.info.name, TapView{t.info.shape, t.info.stored, p});
  }
  if (text_) w.set_decode(tokens_, *text_);
  w.finish();
}

}  // namespace wb::cmp
