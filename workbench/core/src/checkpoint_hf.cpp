// Hugging Face Whisper directories: config.json + model.safetensors (+ vocab.json /
// tokenizer.json). safetensors: u64 little-endian header length N, N bytes of JSON
//   {name: {dtype: F32|F16|BF16, shape: [...], data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data block the offsets point into.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "checkpoint_io.h"
#include "wb/core/util.h"

namespace wb::detail {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Canonical (OpenAI) name -> HF module path (without the "model." prefix).
std::string to_hf_name(const std::string& n) {
  static const std::pair<const char*, const char*> kWhole[] = {
      {"encoder.positional_embedding", "encoder.embed_positions.weight"},
      {"decoder.positional_embedding", "decoder.embed_positions.weight"},
      {"decoder.token_embedding.weight", "decoder.embed_tokens.weight"},
      {"encoder.ln_post.weight", "encoder.layer_norm.weight"},
      {"encoder.ln_post.bias", "encoder.layer_norm.bias"},
      {"decoder.ln.weight", "decoder.layer_norm.weight"},
      {"decoder.ln.bias", "decoder.layer_norm.bias"}};
  for (const auto& [a, b] : kWhole)
    if (n == a) return b;
  static const std::pair<const char*, const char*> kParts[] = {
      {".cross_attn_ln.", ".encoder_attn_layer_norm."},
      {".cross_attn.query.", ".encoder_attn.q_proj."},
      {".cross_attn.key.", ".encoder_attn.k_proj."},
      {".cross_attn.value.", ".encoder_attn.v_proj."},
      {".cross_attn.out.", ".encoder_attn.out_proj."},
      {".attn_ln.", ".self_attn_layer_norm."},
      {".attn.query.", ".self_attn.q_proj."},
      {".attn.key.", ".self_attn.k_proj."},
      {".attn.value.", ".self_attn.v_proj."},
      {".attn.out.", ".self_attn.out_proj."},
      {".mlp.0.", ".fc1."},
      {".mlp.2.", ".fc2."},
      {".mlp_ln.", ".final_layer_norm."}};
  std::string h = n;
  if (auto p = h.find(".blocks."); p != std::string::npos) h.replace(p, 8, ".layers.");
  for (const auto& [a, b] : kParts)
    if (auto p = h.find(a); p != std::string::npos) {
      h.replace(p, std::strlen(a), b);
      break;
    }
  return h;
}

int cfg_int(const json& cfg, const std::string& file, const char* key) {
  if (!cfg.contains(key) || !cfg[key].is_number_integer())
    throw std::runtime_error(fmt::format("{}: missing integer field '{}'", file, key));
  const auto v = cfg[key].get<int64_t>();
  if (v <= 0 || v > (1 << 20))
    throw std::runtime_error(fmt::format("{}: {} = {} out of range", file, key, v));
  return static_cast<int>(v);
}

json parse_json_file(const std::string& file) {
  try {
    return json::parse(read_file(file));
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: malformed JSON ({})", file, e.what()));
  }
}

ModelDims dims_from_config(const std::string& file) {
  const json cfg = parse_json_file(file);
  if (!cfg.is_object()) throw std::runtime_error(fmt::format("{}: not a JSON object", file));
  ModelDims d;
  d.n_mels = cfg_int(cfg, file, "num_mel_bins");
  d.n_audio_ctx = cfg_int(cfg, file, "max_source_positions");
  d.n_audio_state = d.n_text_state = cfg_int(cfg, file, "d_model");
  d.n_audio_head = cfg_int(cfg, file, "encoder_attention_heads");
  d.n_audio_layer = cfg_int(cfg, file, "encoder_layers");
  d.n_vocab = cfg_int(cfg, file, "vocab_size");
  d.n_text_ctx = cfg_int(cfg, file, "max_target_positions");
  d.n_text_head = cfg_int(cfg, file, "decoder_attention_heads");
  d.n_text_layer = cfg_int(cfg, file, "decoder_layers");
  for (const char* k : {"encoder_ffn_dim", "decoder_ffn_dim"})
    if (cfg.contains(k) && cfg_int(cfg, file, k) != 4 * d.n_audio_state)
      throw std::runtime_error(fmt::format("{}: {} = {} (Whisper uses 4 * d_model = {})", file, k,
                                           cfg[k].dump(), 4 * d.n_audio_state));
  try {
    d.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(fmt::format("{}: {}", file, e.what()));
  }
  return d;
}

Vocabulary vocab_from_dir(const fs::path& dir, const ModelDims& d) {
  std::map<std::string, int64_t> ids;
  int64_t eot = -1;
  auto take = [&](const json& v, const std::string& file) {
    if (!v.is_object())
      throw std::runtime_error(fmt::format("{}: vocabulary is not an object", file));
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!it.value().is_number_integer())
        throw std::runtime_error(fmt::format("{}: token '{}' has no integer id", file, it.key()));
      ids[it.key()] = it.value().get<int64_t>();
    }
  };
  if (fs::exists(dir / "vocab.json")) {
    take(parse_json_file((dir / "vocab.json").string()), (dir / "vocab.json").string());
  } else if (fs::exists(dir / "tokenizer.json")) {
    const std::string f = (dir / "tokenizer.json").string();
    const json tj = parse_json_file(f);
    if (!tj.contains("model") || !tj["model"].contains("vocab"))
      throw std::runtime_error(fmt::format("{}: no model.vocab", f));
    take(tj["model"]["vocab"], f);
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
      for (const auto& a : tj["added_tokens"])
        if (a.value("content", "") == "<|endoftext|>" && a.contains("id"))
          eot = a["id"].get<int64_t>();
  } else if (d.n_vocab >= 51865) {
    // No tokenizer files: Whisper's own layout (50257 base tokens, 50256 for English-only).
    std::vector<std::string> base(d.n_vocab == 51864 ? 50256 : 50257);
    for (std::size_t i = 0; i < base.size(); ++i) base[i] = fmt::format("<tok{}>", i);
    return Vocabulary(std::move(base), d.n_vocab);
  } else {
    throw std::runtime_error(fmt::format("{}: no vocab.json or tokenizer.json", dir.string()));
  }
  if (auto it = ids.find("<|endoftext|>"); it != ids.end()) eot = it->second;
  if (eot <= 0 || eot >= d.n_vocab)
    throw std::runtime_error(
        fmt::format("{}: vocabulary has no usable <|endoftext|> token", dir.string()));
  std::vector<std::string> base(static_cast<std::size_t>(eot));
  std::vector<bool> seen(base.size(), false);
  for (const auto& [tok, id] : ids) {
    if (id < 0 || id >= eot) continue;
    try {
      base[static_cast<std::size_t>(id)] = gpt2_unicode_to_bytes(tok);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(fmt::format("{}: {}", dir.string(), e.what()));
    }
    seen[static_cast<std::size_t>(id)] = true;
  }
  for (std::size_t i = 0; i < seen.size(); ++i)
    if (!seen[i])
      throw std::runtime_error(
          fmt::format("{}: vocabulary lacks base token id {}", dir.string(), i));
  try {
    return Vocabulary(std::move(base), d.n_vocab);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(fmt::format("{}: {}", dir.string(), e.what()));
  }
}

}  // namespace

void validate_weights(const std::string& file, const ModelDims& dims,
                      const std::map<std::string, Tensor>& w) {
  const auto table = weight_table(dims);
  for (const WeightSpec& s : table) {
    auto it = w.find(s.name);
    if (it == w.end())
      throw std::runtime_error(
          fmt::format("{}: missing tensor '{}' (expected {})", file, s.name, shape_str(s.shape)));
    if (it->second.shape() != s.shape)
      throw std::runtime_error(fmt::format("{}: tensor '{}': got {}, expected {}", file, s.name,
                                           shape_str(it->second.shape()), shape_str(s.shape)));
  }
  if (w.size() != table.size())
    for (const auto& [name, t] : w) {
      bool known = false;
      for (const auto& s : table) known = known || s.name == name;
      if (!known) throw std::runtime_error(fmt::format("{}: unknown tensor '{}'", file, name));
    }
  // NaN or Inf in a weight is a broken checkpoint (a bad conversion or an overflowed float16
  // export), never a model: refuse it naming the tensor rather than dump taps that are NaN from
  // that layer on. NaN/Inf in *activations* is the comparator's business (it counts them).
  for (const WeightSpec& s : table) {
    const Tensor& t = w.at(s.name);
    const float* p = t.f32();
    int64_t nan = 0, inf = 0, first = -1;
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(p[i])) {
        (std::isnan(p[i]) ? nan : inf) += 1;
        if (first < 0) first = i;
      }
    if (first >= 0)
      throw std::runtime_error(fmt::format(
          "{}: tensor '{}' has non-finite weights ({} NaN, {} Inf; first at flat index {})", file,
          s.name, nan, inf, first));
  }
}

Checkpoint load_hf(const std::string& dir_str) {
  const fs::path dir(dir_str);
  const std::string cfg_file = (dir / "config.json").string();
  const std::string st_file = (dir / "model.safetensors").string();
  if (!fs::exists(cfg_file))
    throw std::runtime_error(
        fmt::format("{}: not an HF Whisper directory (no config.json)", dir_str));
  if (!fs::exists(st_file))
    throw std::runtime_error(fmt::format("{}: no model.safetensors", dir_str));
  Checkpoint ck;
  ck.dims = dims_from_config(cfg_file);
  ck.format = "hf";
  ck.path = dir_str;

  std::ifstream in(st_file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", st_file));
  const auto file_size = static_cast<uint64_t>(fs::file_size(st_file));
  uint64_t hlen = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&hlen), 8))
    throw std::runtime_error(fmt::format("{}: truncated (no header length)", st_file));
  if (hlen < 2 || hlen > file_size - 8 || hlen > (100u << 20))
    throw std::runtime_error(
        fmt::format("{}: header length {} does not fit a {}-byte file", st_file, hlen, file_size));
  std::string hdr(hlen, '\0');
  in.read(hdr.data(), static_cast<std::streamsize>(hlen));
  json h;
  try {
    h = json::parse(hdr);
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: malformed header JSON ({})", st_file, e.what()));
  }
  if (!h.is_object())
    throw std::runtime_error(fmt::format("{}: header is not a JSON object", st_file));
  const uint64_t data_start = 8 + hlen, data_size = file_size - data_start;

  // Weights take at least 2 bytes each (F16/BF16): dims the data block cannot hold are a config
  // lying about the model (checked before building tables of its names).
  if (const int64_t n = weight_numel(ck.dims); static_cast<uint64_t>(n) * 2 > data_size)
    throw std::runtime_error(
        fmt::format("{}: {} describes {} weights, more than the {}-byte data block holds", st_file,
                    cfg_file, n, data_size));
  const std::vector<WeightSpec> table = weight_table(ck.dims);
  std::map<std::string, const WeightSpec*> from_hf;
  for (const auto& s : table) from_hf[to_hf_name(s.name)] = &s;
  std::map<std::string, std::string> dtypes;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& key = it.key();
    if (key == "__metadata__") continue;
    std::string name = key.rfind("model.", 0) == 0 ? key.substr(6) : key;
    if (name == "proj_out.weight") continue;  // tied to decoder.embed_tokens in Whisper
    auto canon = from_hf.find(name);
    if (canon == from_hf.end())
      throw std::runtime_error(fmt::format("{}: unknown tensor '{}'", st_file, key));
    const json& e = it.value();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets") || !e["dtype"].is_string() || !e["shape"].is_array() ||
        !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      throw std::runtime_error(fmt::format("{}: tensor '{}': malformed entry", st_file, key));
    const std::string dt = e["dtype"].get<std::string>();
    DType dtype;
    if (dt == "F32")
      dtype = DType::f32;
    else if (dt == "F16")
      dtype = DType::f16;
    else if (dt == "BF16")
      dtype = DType::bf16;
    else
      throw std::runtime_error(
          fmt::format("{}: tensor '{}': unsupported dtype {} (F32, F16, BF16)", st_file, key, dt));
    Shape shape;
    for (const auto& v : e["shape"]) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t{1} << 32))
        throw std::runtime_error(
            fmt::format("{}: tensor '{}': bad shape {}", st_file, key, e["shape"].dump()));
      shape.push_back(v.get<int64_t>());
    }
    const auto& off = e["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw std::runtime_error(fmt::format("{}: tensor '{}': bad data_offsets", st_file, key));
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    int64_t numel;
    try {
      numel = shape_numel(shape);
    } catch (const std::invalid_argument& ex) {
      throw std::runtime_error(fmt::format("{}: tensor '{}': {}", st_file, key, ex.what()));
    }
    // numel * element size is compared without multiplying: 2^62 elements of 4 bytes wrap to 0.
    if (b > en || en > data_size || (en - b) % dtype_size(dtype) != 0 ||
        (en - b) / dtype_size(dtype) != static_cast<uint64_t>(numel))
      throw std::runtime_error(fmt::format(
          "{}: tensor '{}': data_offsets [{}, {}] do not match shape {} {} in a {}-byte data block",
          st_file, key, b, en, shape_str(shape), dt, data_size));
    // Validate the shape before allocating (a lying header must not make us allocate).
    const std::string& spec_name = canon->second->name;
    const Shape& expect = canon->second->shape;
    if (shape != expect)
      throw std::runtime_error(fmt::format("{}: tensor '{}': got {}, expected {}", st_file, key,
                                           shape_str(shape), shape_str(expect)));
    std::vector<char> raw(en - b);
    in.seekg(static_cast<std::streamoff>(data_start + b));
    if (!in.read(raw.data(), static_cast<std::streamsize>(raw.size())))
      throw std::runtime_error(fmt::format("{}: truncated inside tensor '{}'", st_file, key));
    Tensor t(DType::f32, shape);
    float* p = t.f32();
    for (int64_t i = 0; i < numel; ++i) {
      if (dtype == DType::f32) {
        std::memcpy(p + i, raw.data() + 4 * i, 4);
      } else {
        uint16_t v;
        std::memcpy(&v, raw.data() + 2 * i, 2);
        p[i] = dtype == DType::f16 ? half_to_float(v) : bf16_to_float(v);
      }
    }
    if (ck.weights.count(spec_name))
      throw std::runtime_error(fmt::format("{}: tensor '{}' given twice", st_file, key));
    ck.weights.emplace(spec_name, std::move(t));
    if (shape.size() >= 2) dtypes[std::string(dtype_name(dtype))] = key;
  }
  validate_weights(st_file, ck.dims, ck.weights);
  ck.stored_dtype = dtypes.empty() ? "float32" : dtypes.begin()->first;
  if (dtypes.size() > 1) ck.stored_dtype = "mixed";
  ck.vocab = vocab_from_dir(dir, ck.dims);
  ck.sha256 = sha256_file(st_file);
  return ck;
}

}  // namespace wb::detail

namespace wb {

void save_hf(const Checkpoint& ck, const std::string& dir_str, DType stored) {
  using detail::to_hf_name;
  namespace fs = std::filesystem;
  using nlohmann::json;
  if (stored != DType::f32 && stored != DType::f16 && stored != DType::bf16)
    throw std::invalid_argument("save_hf: stored dtype must be float32, float16 or bfloat16");
  const ModelDims& d = ck.dims;
  if (d.n_audio_state != d.n_text_state)
    throw std::invalid_argument("save_hf: HF Whisper needs equal encoder and decoder widths");
  const fs::path dir(dir_str);
  const fs::path tmp = dir.string() + ".partial";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const Vocabulary& v = ck.vocab;
  json cfg = {{"model_type", "whisper"},
              {"architectures", {"WhisperForConditionalGeneration"}},
              {"num_mel_bins", d.n_mels},
              {"max_source_positions", d.n_audio_ctx},
              {"d_model", d.n_audio_state},
              {"encoder_attention_heads", d.n_audio_head},
              {"encoder_layers", d.n_audio_layer},
              {"encoder_ffn_dim", 4 * d.n_audio_state},
              {"vocab_size", d.n_vocab},
              {"max_target_positions", d.n_text_ctx},
              {"decoder_attention_heads", d.n_text_head},
              {"decoder_layers", d.n_text_layer},
              {"decoder_ffn_dim", 4 * d.n_text_state},
              {"activation_function", "gelu"},
              {"scale_embedding", false},
              {"tie_word_embeddings", true},
              {"decoder_start_token_id", v.sot()},
              {"bos_token_id", v.eot()},
              {"eos_token_id", v.eot()},
              {"pad_token_id", v.eot()},
              {"torch_dtype", std::string(dtype_name(stored))}};
  std::ofstream(tmp / "config.json") << cfg.dump(2) << "\n";
  json vocab = json::object();
  for (int i = 0; i < v.n_base(); ++i)
    vocab[bytes_to_gpt2_unicode(v.base_tokens()[static_cast<std::size_t>(i)])] = i;
  for (int i = v.eot(); i < v.timestamp_begin(); ++i) {
    std::string t = v.token_text(i);
    if (i == v.sot() + 1) t = "<|en|>";
    vocab[t] = i;
  }
  std::ofstream(tmp / "vocab.json") << vocab.dump() << "\n";

  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}, {"writer", tool_version()}};
  uint64_t off = 0;
  const auto table = weight_table(d);
  for (const auto& s : table) {
    const Tensor& t = ck.at(s.name);
    // HF stores every tensor in the chosen dtype (save_pretrained with torch_dtype); so do we.
    const uint64_t n = static_cast<uint64_t>(t.numel()) * dtype_size(stored);
    json shape = json::array();
    for (auto x : t.shape()) shape.push_back(x);
    header["model." + to_hf_name(s.name)] = {{"dtype", stored == DType::f32   ? "F32"
                                                       : stored == DType::f16 ? "F16"
                                                                              : "BF16"},
                                             {"shape", shape},
                                             {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string hs = header.dump();
  while ((hs.size() + 8) % 8 != 0) hs += ' ';
  std::ofstream out(tmp / "model.safetensors", std::ios::binary);
  const uint64_t hl = hs.size();
  out.write(reinterpret_cast<const char*>(&hl), 8);
  out.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  for (const auto& s : table) {
    const Tensor& t = ck.at(s.name);
    const float* p = t.f32();
    if (stored == DType::f32) {
      out.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(t.numel() * 4));
    } else {
      std::vector<uint16_t> h(static_cast<std::size_t>(t.numel()));
      for (std::size_t i = 0; i < h.size(); ++i)
        h[i] = stored == DType::f16 ? float_to_half(p[i]) : float_to_bf16(p[i]);
      out.write(reinterpret_cast<const char*>(h.data()),
                static_cast<std::streamsize>(h.size() * 2));
    }
  }
  out.close();
  if (!out)
    throw std::runtime_error(fmt::format("{}: write failed", (tmp / "model.safetensors").string()));
  fs::remove_all(dir);
  fs::rename(tmp, dir);
}

}  // namespace wb
