// whisper.cpp ggml files (convert-pt-to-ggml.py layout), all little-endian:
//   u32 magic 0x67676d6c ("ggml")
//   i32 x 11 hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
//                     n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
//   i32 n_mel, i32 n_fft, f32[n_mel * n_fft] mel filters
//   i32 n_tokens, then per token: u32 length, bytes            (base tokens only)
//   tensors until EOF: i32 n_dims, i32 name_len, i32 type (0 f32, 1 f16),
//                      i32 ne[n_dims] (innermost first: reversed PyTorch shape), name, data
// Conv biases are stored as [C, 1]; OpenAI names are used as they are.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "checkpoint_io.h"
#include "wb/core/audio.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"

namespace wb::detail {

namespace {
constexpr uint32_t kMagic = 0x67676d6c;

class Reader {
 public:
  Reader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw std::runtime_error(fmt::format("{}: cannot open", path));
    size_ = std::filesystem::file_size(path);
  }
  template <class T>
  T get(const char* what) {
    T v;
    if (!in_.read(reinterpret_cast<char*>(&v), sizeof v))
      throw std::runtime_error(fmt::format("{}: truncated while reading {}", path_, what));
    return v;
  }
  void bytes(char* dst, uint64_t n, const std::string& what) {
    if (n > remaining())
      throw std::runtime_error(
          fmt::format("{}: {} needs {} bytes, only {} left", path_, what, n, remaining()));
    if (!in_.read(dst, static_cast<std::streamsize>(n)))
      throw std::runtime_error(fmt::format("{}: truncated while reading {}", path_, what));
  }
  void skip(uint64_t n, const std::string& what) {
    if (n > remaining())
      throw std::runtime_error(
          fmt::format("{}: {} needs {} bytes, only {} left", path_, what, n, remaining()));
    in_.seekg(static_cast<std::streamoff>(n), std::ios::cur);
  }
  uint64_t remaining() { return size_ - static_cast<uint64_t>(in_.tellg()); }
  bool at_end() { return in_.peek() == std::char_traits<char>::eof(); }

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t size_ = 0;
};
}  // namespace

Checkpoint load_ggml(const std::string& path) {
  Reader r(path);
  const auto magic = r.get<uint32_t>("magic");
  if (magic != kMagic)
    throw std::runtime_error(
        fmt::format("{}: not a whisper.cpp ggml file (magic {:#010x}, expected {:#010x})", path,
                    magic, kMagic));
  int32_t hp[11];
  for (int i = 0; i < 11; ++i) hp[i] = r.get<int32_t>("hparams");
  Checkpoint ck;
  ModelDims& d = ck.dims;
  d.n_vocab = hp[0];
  d.n_audio_ctx = hp[1];
  d.n_audio_state = hp[2];
  d.n_audio_head = hp[3];
  d.n_audio_layer = hp[4];
  d.n_text_ctx = hp[5];
  d.n_text_state = hp[6];
  d.n_text_head = hp[7];
  d.n_text_layer = hp[8];
  d.n_mels = hp[9];
  const int32_t ftype = hp[10] % 1000;
  try {
    d.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  // Weights take at least 2 bytes each (f16): dims the file cannot hold are a lying header.
  if (const int64_t n = weight_numel(d); static_cast<uint64_t>(n) * 2 > r.remaining())
    throw std::runtime_error(
        fmt::format("{}: hparams describe {} weights, more than the {} bytes left in the file hold",
                    path, n, r.remaining()));
  const auto n_mel = r.get<int32_t>("mel filter rows"),
             n_fft = r.get<int32_t>("mel filter columns");
  if (n_mel < 0 || n_fft < 0 || n_mel > 1024 || n_fft > 4096)
    throw std::runtime_error(
        fmt::format("{}: mel filters [{}, {}] out of range", path, n_mel, n_fft));
  r.skip(static_cast<uint64_t>(n_mel) * n_fft * 4,
         "mel filters");  // we compute Slaney filters in code
  const auto n_tokens = r.get<int32_t>("vocabulary size");
  if (n_tokens <= 0 || n_tokens >= d.n_vocab)
    throw std::runtime_error(
        fmt::format("{}: vocabulary of {} base tokens for n_vocab {}", path, n_tokens, d.n_vocab));
  std::vector<std::string> base(static_cast<std::size_t>(n_tokens));
  for (auto& t : base) {
    const auto len = r.get<uint32_t>("token length");
    if (len > 1024)
      throw std::runtime_error(fmt::format("{}: token length {} out of range", path, len));
    t.resize(len);
    r.bytes(t.data(), len, "token");
  }
  try {
    ck.vocab = Vocabulary(std::move(base), d.n_vocab);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  std::map<std::string, Shape> expect;
  for (const auto& s : weight_table(d)) expect[s.name] = s.shape;
  bool any_f16 = false;
  while (!r.at_end()) {
    const auto n_dims = r.get<int32_t>("tensor header");
    const auto name_len = r.get<int32_t>("tensor header");
    const auto type = r.get<int32_t>("tensor header");
    if (n_dims < 1 || n_dims > 4 || name_len <= 0 || name_len > 256)
      throw std::runtime_error(fmt::format("{}: corrupt tensor header (n_dims {}, name length {})",
                                           path, n_dims, name_len));
    Shape shape(static_cast<std::size_t>(n_dims));
    for (int i = 0; i < n_dims; ++i) {
      const auto ne = r.get<int32_t>("tensor dims");
      if (ne < 0)
        throw std::runtime_error(fmt::format("{}: negative tensor dimension {}", path, ne));
      shape[static_cast<std::size_t>(n_dims - 1 - i)] = ne;
    }
    std::string name(static_cast<std::size_t>(name_len), '\0');
    r.bytes(name.data(), static_cast<uint64_t>(name_len), "tensor name");
    if (type != 0 && type != 1)
      throw std::runtime_error(fmt::format(
          "{}: tensor '{}': type {} not supported (0 f32, 1 f16; quantized files are not)", path,
          name, type));
    auto it = expect.find(name);
    if (it == expect.end())
      throw std::runtime_error(fmt::format("{}: unknown tensor '{}'", path, name));
    if ((name == "encoder.conv1.bias" || name == "encoder.conv2.bias") && shape.size() == 2 &&
        shape[1] == 1)
      shape.pop_back();
    if (shape != it->second)
      throw std::runtime_error(fmt::format("{}: tensor '{}': got {}, expected {}", path, name,
                                           shape_str(shape), shape_str(it->second)));
    const int64_t numel = shape_numel(shape);
    const std::size_t esz = type == 0 ? 4 : 2;
    std::vector<char> raw(static_cast<std::size_t>(numel) * esz);
    r.bytes(raw.data(), raw.size(), fmt::format("tensor '{}' data", name));
    Tensor t(DType::f32, shape);
    float* p = t.f32();
    for (int64_t i = 0; i < numel; ++i) {
      if (type == 0) {
        std::memcpy(p + i, raw.data() + 4 * i, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, raw.data() + 2 * i, 2);
        p[i] = half_to_float(h);
      }
    }
    any_f16 = any_f16 || type == 1;
    if (!ck.weights.emplace(name, std::move(t)).second)
      throw std::runtime_error(fmt::format("{}: tensor '{}' given twice", path, name));
  }
  validate_weights(path, d, ck.weights);
  ck.format = "ggml";
  ck.stored_dtype = any_f16 ? "float16" : "float32";
  (void)ftype;
  ck.path = path;
  ck.sha256 = sha256_file(path);
  return ck;
}

}  // namespace wb::detail

namespace wb {

void save_ggml(const Checkpoint& ck, const std::string& file, DType stored) {
  if (stored != DType::f32 && stored != DType::f16)
    throw std::invalid_argument("save_ggml: stored dtype must be float32 or float16");
  const ModelDims& d = ck.dims;
  const std::string tmp = file + ".partial";
  const TempFile interrupt_cleanup(tmp);  // an interrupt removes it (wb/tempfile.h)
  std::ofstream out(tmp, std::ios::binary);
  if (!out) throw std::runtime_error(fmt::format("{}: cannot create", tmp));
  auto put = [&out](auto v) { out.write(reinterpret_cast<const char*>(&v), sizeof v); };
  put(detail::kMagic);
  const int32_t hp[11] = {d.n_vocab,
                          d.n_audio_ctx,
                          d.n_audio_state,
                          d.n_audio_head,
                          d.n_audio_layer,
                          d.n_text_ctx,
                          d.n_text_state,
                          d.n_text_head,
                          d.n_text_layer,
                          d.n_mels,
                          stored == DType::f16 ? 1 : 0};
  for (int32_t v : hp) put(v);
  const auto filters = mel_filters(d.n_mels);
  put(static_cast<int32_t>(d.n_mels));
  put(static_cast<int32_t>(kNFft / 2 + 1));
  for (double f : filters) put(static_cast<float>(f));
  put(static_cast<int32_t>(ck.vocab.n_base()));
  for (const auto& t : ck.vocab.base_tokens()) {
    put(static_cast<uint32_t>(t.size()));
    out.write(t.data(), static_cast<std::streamsize>(t.size()));
  }
  for (const auto& s : weight_table(d)) {
    const Tensor& t = ck.at(s.name);
    Shape shape = t.shape();
    if (s.name == "encoder.conv1.bias" || s.name == "encoder.conv2.bias") shape.push_back(1);
    // convert-pt-to-ggml.py keeps 1-D tensors, conv biases and positional embeddings in f32.
    const bool keep32 = stored == DType::f32 || t.ndim() < 2 ||
                        s.name == "encoder.positional_embedding" ||
                        s.name == "decoder.positional_embedding";
    put(static_cast<int32_t>(shape.size()));
    put(static_cast<int32_t>(s.name.size()));
    put(static_cast<int32_t>(keep32 ? 0 : 1));
    for (auto it = shape.rbegin(); it != shape.rend(); ++it) put(static_cast<int32_t>(*it));
    out.write(s.name.data(), static_cast<std::streamsize>(s.name.size()));
    const float* p = t.f32();
    if (keep32) {
      out.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(t.numel() * 4));
    } else {
      std::vector<uint16_t> h(static_cast<std::size_t>(t.numel()));
      for (std::size_t i = 0; i < h.size(); ++i) h[i] = float_to_half(p[i]);
      out.write(reinterpret_cast<const char*>(h.data()),
                static_cast<std::streamsize>(h.size() * 2));
    }
  }
  out.close();
  if (!out) throw std::runtime_error(fmt::format("{}: write failed", tmp));
  std::filesystem::rename(tmp, file);
}

}  // namespace wb
