// HDF5 activation dumps, schema "whisper-fidelity/1" (docs/dump-format.md).
//   root attributes: schema, implementation, precision, device, model_sha256, model_dims (JSON),
//     audio_sha256, audio_name, tool_version, created, threads, run_info (JSON), complete (last)
//   /taps/<name>   one dataset per tap, row-major, float32/float16/float64, chunked by rows;
//                  attributes order (int), layout, compute_dtype
//   /decode/tokens (int32), /decode/text (string);  /timing/<name> (float64 seconds)
// A dump is written to "<out>.partial-<pid>" and renamed to <out> once complete.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wb/core/dims.h"
#include "wb/core/taps.h"
#include "wb/core/tensor.h"

namespace wb {

inline constexpr const char* kDumpSchema = "whisper-fidelity/1";
// Bounds on a tap's extent that DumpReader enforces (an extent is a header field and may lie).
// The largest real taps are far below: large-v3 logits over 448 tokens are 23 M elements with
// rows of 51 866; mlp.fc1 is 1500 x 5120.
inline constexpr int64_t kMaxTapElements = int64_t{1} << 31;
inline constexpr int64_t kMaxTapRowElements = int64_t{1} << 22;

struct DumpMeta {
  std::string implementation;
  std::string precision;  // compute precision: float32, float64, bfloat16, float16
  std::string device = "cpu";
  std::string model_sha256;
  ModelDims dims;
  std::string audio_sha256;
  std::string audio_name;
  std::string tool_version;
  std::string created;  // ISO-8601 UTC
  int threads = 1;
  nlohmann::json run_info = nlohmann::json::object();
};

struct DumpOptions {
  DType store = DType::f32;  // f32, f16 or f64
  int compression = 0;       // gzip level 0..9
};

// Writes taps as they are reported. Nothing is visible at `path` until finish() succeeds;
// destroying an unfinished writer deletes its temporary file.
class DumpWriter : public TapSink {
 public:
  DumpWriter(std::string path, DumpMeta meta, TapSelector selector, DumpOptions opts = {});
  ~DumpWriter() override;
  DumpWriter(const DumpWriter&) = delete;
  DumpWriter& operator=(const DumpWriter&) = delete;

  bool wants(std::string_view name) const override;
  void put(std::string_view name, const TapView& view) override;
  void set_decode(const std::vector<int>& tokens, const std::string& text);
  // The decoder taps (and logits) follow these tokens instead of the dump's own: a teacher-
  // forced pass over another run's transcript (wb dump --teacher-tokens REF.h5), so both dumps'
  // logits cover the same tokens and the comparator can measure KL per step.
  void set_teacher_tokens(const std::vector<int>& tokens);
  void set_timing(const std::string& name, double seconds);
  void finish();  // writes `complete`, closes, renames into place
  int taps_written() const { return n_taps_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  TapSelector selector_;
  int n_taps_ = 0;
};

struct TapInfo {
  std::string name;
  Shape shape;
  DType stored = DType::f32;
  int order = 0;
  std::string layout;
  std::string compute_dtype;
};

// Opens and validates a dump: refuses (std::runtime_error, one line naming the file) a file that
// is not HDF5, of another schema, without `complete`, whose taps disagree with its dims, exceed
// kMaxTapElements / kMaxTapRowElements, or were declared but never (fully) written.
class DumpReader {
 public:
  explicit DumpReader(const std::string& path);
  // A tensor file (wb/core/tensor_file.h, docs/ports.md): `/taps` only, no root attributes; its
  // taps are checked as a dump's are, against the given dims.
  DumpReader(const std::string& path, const ModelDims& tensor_file_dims);
  ~DumpReader();
  DumpReader(DumpReader&&) noexcept;

  const DumpMeta& meta() const { return meta_; }
  const std::string& path() const { return path_; }
  // Taps in execution order.
  const std::vector<TapInfo>& taps() const { return taps_; }
  const TapInfo* find(const std::string& name) const;

  Tensor read(const std::string& name, DType as = DType::f32) const;
  // Where a tap's values lie in the file when they can be read in place (mmap): a contiguous,
  // unfiltered, little-endian float32 dataset whose extent lies inside the file; else nullopt.
  std::optional<uint64_t> contiguous_f32_offset(const std::string& name) const;
  uint64_t file_size() const;  // as checked when opened
  // Rows [row0, row0 + n) of a tap (first dimension), as float64, into out (resized). Safe to
  // call from several threads at once (HDF5 serialises its part).
  void read_rows(const std::string& name, int64_t row0, int64_t n, std::vector<double>& out) const;

  std::optional<std::vector<int>> tokens() const;          // /decode/tokens: its own decode
  std::optional<std::vector<int>> teacher_tokens() const;  // /decode/teacher_tokens, if forced
  std::optional<std::string> text() const;
  std::map<std::string, double> timings() const;

 private:
  DumpReader(const std::string& path, const ModelDims* tensor_file_dims);
  std::optional<std::vector<int>> token_dataset(const std::string& name) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  DumpMeta meta_;
  std::vector<TapInfo> taps_;
};

}  // namespace wb
