#include "wb/dump.h"

#include <H5Cpp.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

namespace wb {

namespace {

const H5::StrType& vlen_str() {
  static const H5::StrType t = [] {
    H5::StrType s(H5::PredType::C_S1, H5T_VARIABLE);
    s.setCset(H5T_CSET_UTF8);
    return s;
  }();
  return t;
}

// IEEE binary16, little-endian: what h5py reads as numpy.float16.
const H5::FloatType& half_type() {
  static const H5::FloatType t = [] {
    H5::FloatType f(H5::PredType::IEEE_F32LE);
    f.setFields(15, 10, 5, 0, 10);
    f.setOffset(0);
    f.setPrecision(16);
    f.setSize(2);
    f.setEbias(15);
    return f;
  }();
  return t;
}

void set_str(H5::H5Object& o, const std::string& name, const std::string& v) {
  H5::Attribute a = o.createAttribute(name, vlen_str(), H5::DataSpace(H5S_SCALAR));
  a.write(vlen_str(), v);
}
void set_int(H5::H5Object& o, const std::string& name, int64_t v) {
  H5::Attribute a = o.createAttribute(name, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR));
  a.write(H5::PredType::NATIVE_INT64, &v);
}
std::string get_str(const H5::H5Object& o, const std::string& name) {
  H5::Attribute a = o.openAttribute(name);
  if (a.getTypeClass() != H5T_STRING) throw std::runtime_error(fmt::format("attribute '{}' is not a string", name));
  std::string v;
  const H5::StrType t = a.getStrType();
  if (!t.isVariableStr()) {
    a.read(t, v);
    return v;
  }
  // A variable-length string may be null (no heap object); the C++ wrapper would strlen(NULL).
  char* c = nullptr;
  if (H5Aread(a.getId(), t.getId(), &c) < 0) throw std::runtime_error(fmt::format("attribute '{}' unreadable", name));
  if (c != nullptr) v = c;
  H5free_memory(c);
  return v;
}
int64_t get_int(const H5::H5Object& o, const std::string& name) {
  H5::Attribute a = o.openAttribute(name);
  if (a.getTypeClass() != H5T_INTEGER) throw std::runtime_error(fmt::format("attribute '{}' is not an integer", name));
  int64_t v = 0;
  a.read(H5::PredType::NATIVE_INT64, &v);
  return v;
}

// HDF5 1.10 trusts the object sizes inside a global heap collection (where variable-length
// strings live) and copies that many bytes when a string is read: a corrupt collection makes
// H5Aread read past its buffer or crash. Every collection in the file ("GCOL", version 1, then
// its size; objects of a 16-byte header {u16 index, u16 refs, u32 reserved, size} and data padded
// to 8 bytes, index 0 being the free space that ends it) must therefore add up before any string
// is read. Throws std::runtime_error naming the offset of the first that does not.
// HDF5 1.10 does not check a string's object index against its collection either (an index past
// the collection's table reads wild memory; index 0, the free space, reads past the buffer), so
// the collections found are kept (address -> index -> size) and check_strings() verifies the
// string references in an object's header before its string attributes are read. The length a
// reference gives is what HDF5 allocates, so it must be the object's size too.
struct GlobalHeaps {
  std::string path;
  uint64_t file_size = 0;
  bool walkable = false;  // superblock at 0 with 8-byte offsets and lengths: headers can be walked
  std::map<uint64_t, std::map<uint64_t, uint64_t>> objects;
};

GlobalHeaps check_global_heaps(const std::string& path) {
  GlobalHeaps heaps;
  heaps.path = path;
  std::ifstream in(path, std::ios::binary);
  const uint64_t file_size = heaps.file_size = std::filesystem::file_size(path);
  auto read_at = [&](uint64_t off, void* dst, std::size_t n) {
    in.clear();
    in.seekg(static_cast<std::streamoff>(off));
    return static_cast<bool>(in.read(static_cast<char*>(dst), static_cast<std::streamsize>(n)));
  };
  auto u64 = [](const unsigned char* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  };
  // Size of lengths from the superblock at offset 0 (8 unless a writer chose otherwise).
  int len_size = 8;
  unsigned char sb[16];
  if (read_at(0, sb, sizeof sb) && std::memcmp(sb, "\211HDF\r\n\032\n", 8) == 0) {
    len_size = sb[8] <= 1 ? sb[14] : sb[10];
    heaps.walkable = len_size == 8 && (sb[8] <= 1 ? sb[13] : sb[9]) == 8;
  }
  if (len_size != 2 && len_size != 4 && len_size != 8) throw std::runtime_error(fmt::format("size of lengths {}", len_size));
  auto corrupt = [&](uint64_t at, const std::string& why) {
    return std::runtime_error(fmt::format("corrupt global heap collection at offset {}: {}", at, why));
  };
  constexpr std::size_t kBlock = 1 << 22, kHdr = 16;
  std::vector<char> buf(kBlock + 3);
  std::vector<unsigned char> coll;
  for (uint64_t base = 0; base < file_size; base += kBlock) {
    const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(kBlock + 3, file_size - base));
    if (!read_at(base, buf.data(), n)) throw std::runtime_error("read error");
    for (const char* p = buf.data(); (p = static_cast<const char*>(memmem(p, n - (p - buf.data()), "GCOL", 4))) != nullptr; ++p) {
      const uint64_t at = base + static_cast<uint64_t>(p - buf.data());
      if (p - buf.data() >= static_cast<std::ptrdiff_t>(kBlock)) break;  // the next block sees it
      unsigned char h[kHdr];
      if (!read_at(at, h, kHdr) || h[4] != 1) continue;  // not a collection header (signature in data)
      const uint64_t size = u64(h + 8, len_size);
      if (size < kHdr || size > file_size - at) throw corrupt(at, fmt::format("size {} past the end of the file", size));
      auto& present = heaps.objects[at];
      coll.resize(static_cast<std::size_t>(size));
      if (!read_at(at, coll.data(), coll.size())) throw corrupt(at, "unreadable");
      // As HDF5 walks it: a free-space object (index 0) spans `size` bytes, header included
      // (0 would make HDF5 loop for ever); any other spans its header plus its padded data.
      for (uint64_t q = kHdr; q + kHdr <= size;) {
        const unsigned idx = coll[q] | (coll[q + 1] << 8);
        const uint64_t obj = u64(coll.data() + q + 8, len_size);
        const uint64_t need = idx == 0 ? obj : obj > size ? size + 1 : kHdr + ((obj + 7) & ~uint64_t{7});
        if (need < kHdr || need > size - q)
          throw corrupt(at, fmt::format("object {} of {} bytes at {} does not fit the {}-byte collection", idx, obj, q, size));
        if (idx != 0) present[idx] = obj;
        q += need;
      }
    }
  }
  return heaps;
}

// Walks the version-1 header of `o` (prefix {version 1, reserved, u16 messages, u32 refs, u32 size},
// messages {u16 type, u16 size, u8 flags, 3 reserved, data}, continuation messages (type 0x10:
// address, length) leading to further chunks) and checks every {collection address, u32 index}
// pair in message data names an object that collection holds. Version-2 headers ("OHDR", written
// by newer library settings, not by wb or h5py's defaults) are left to HDF5.
void check_strings(const GlobalHeaps& heaps, const H5::H5Object& o, const std::string& what, bool contiguous_data = false) {
  if (!heaps.walkable || heaps.objects.empty()) return;
  H5O_info_t info;
  if (H5Oget_info2(o.getId(), &info, H5O_INFO_BASIC) < 0)
    throw std::runtime_error(fmt::format("{}: {}: object header unreadable", heaps.path, what));
  std::ifstream in(heaps.path, std::ios::binary);
  auto read_at = [&](uint64_t off, std::vector<unsigned char>& dst) {
    in.clear();
    in.seekg(static_cast<std::streamoff>(off));
    return off <= heaps.file_size && dst.size() <= heaps.file_size - off &&
           static_cast<bool>(in.read(reinterpret_cast<char*>(dst.data()), static_cast<std::streamsize>(dst.size())));
  };
  auto le = [](const unsigned char* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  };
  auto scan = [&](const unsigned char* data, std::size_t size) {
    for (std::size_t i = 0; i + 12 <= size; ++i)
      if (auto h = heaps.objects.find(le(data + i, 8)); h != heaps.objects.end()) {
        const uint64_t idx = le(data + i + 8, 4);
        const auto obj = h->second.find(idx);
        if (obj == h->second.end())
          throw std::runtime_error(fmt::format("{}: {}: a string refers to object {} of the global heap collection at "
                                               "offset {}, which holds no such object", heaps.path, what, idx, h->first));
        if (i >= 4 && le(data + i - 4, 4) != obj->second)
          throw std::runtime_error(fmt::format("{}: {}: a string of {} bytes refers to an object of {} bytes", heaps.path,
                                               what, le(data + i - 4, 4), obj->second));
      }
  };
  // Variable-length string data: references {u32 length, address, u32 index}; each must name a
  // collection's object of that length (HDF5 allocates the length before it looks at the heap).
  auto refs = [&](const unsigned char* data, std::size_t size) {
    for (std::size_t i = 0; i + 16 <= size; i += 16) {
      const uint64_t len = le(data + i, 4), addr = le(data + i + 4, 8), idx = le(data + i + 12, 4);
      if (len == 0 && addr == 0) continue;  // empty string
      const auto h = heaps.objects.find(addr);
      const auto obj = h == heaps.objects.end() ? decltype(h->second.end()){} : h->second.find(idx);
      if (h == heaps.objects.end() || obj == h->second.end() || obj->second != len)
        throw std::runtime_error(fmt::format("{}: {}: a string of {} bytes refers to object {} at offset {}, which is "
                                             "not a global heap object of that size", heaps.path, what, len, idx, addr));
    }
  };
  // Attribute message (versions 1-3): {version, flags, u16 name, datatype, dataspace sizes,
  // [v3: encoding]}, then the three parts (padded to 8 bytes in version 1), then the data.
  auto attribute = [&](const unsigned char* m, std::size_t size) {
    if (size < 8 || m[0] < 1 || m[0] > 3) return;
    const auto pad = [&](uint64_t n) { return m[0] == 1 ? (n + 7) & ~uint64_t{7} : n; };
    const uint64_t name = le(m + 2, 2), dt = le(m + 4, 2), ds = le(m + 6, 2);
    const uint64_t type_at = (m[0] == 3 ? 9 : 8) + pad(name), data_at = type_at + pad(dt) + pad(ds);
    if (dt < 8 || data_at > size) return;  // HDF5 refuses it when decoding
    const bool vlen_string = (m[type_at] & 0x0f) == 9 && (m[type_at + 1] & 0x0f) == 1;
    if (vlen_string) refs(m + data_at, size - data_at);
  };
  if (contiguous_data) {  // a string dataset's own data: one reference {u32 length, address, u32 index}
    const haddr_t off = H5Dget_offset(o.getId());
    std::vector<unsigned char> ref(16);
    if (off != HADDR_UNDEF && read_at(off, ref)) refs(ref.data(), ref.size());
  }
  std::vector<unsigned char> prefix(16);
  if (!read_at(info.addr, prefix) || prefix[0] != 1) return;
  std::vector<std::pair<uint64_t, uint64_t>> chunks = {{info.addr + 16, le(prefix.data() + 8, 4)}};
  for (std::size_t c = 0; c < chunks.size() && c < 64; ++c) {
    std::vector<unsigned char> chunk(static_cast<std::size_t>(std::min<uint64_t>(chunks[c].second, 1 << 20)));
    if (!read_at(chunks[c].first, chunk)) return;  // HDF5 refuses a header it cannot read
    for (std::size_t pos = 0; pos + 8 <= chunk.size();) {
      const uint64_t type = le(&chunk[pos], 2), size = le(&chunk[pos + 2], 2);
      if (size > chunk.size() - pos - 8) break;
      if (type == 0x10 && size >= 16) chunks.emplace_back(le(&chunk[pos + 8], 8), le(&chunk[pos + 16], 8));
      scan(&chunk[pos + 8], static_cast<std::size_t>(size));
      if (type == 0x0c) attribute(&chunk[pos + 8], static_cast<std::size_t>(size));
      pos += 8 + static_cast<std::size_t>(size);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct DumpWriter::Impl {
  std::string path, tmp;
  DumpMeta meta;
  DumpOptions opts;
  H5::H5File file;
  H5::Group taps, decode, timing;
  bool finished = false;
  int order_fallback = 100000;
};

DumpWriter::DumpWriter(std::string path, DumpMeta meta, TapSelector selector, DumpOptions opts)
    : impl_(std::make_unique<Impl>()), selector_(std::move(selector)) {
  H5::Exception::dontPrint();
  if (opts.store != DType::f32 && opts.store != DType::f16 && opts.store != DType::f64)
    throw std::invalid_argument("dump storage type must be float32, float16 or float64");
  impl_->path = std::move(path);
  impl_->tmp = fmt::format("{}.partial-{}", impl_->path, ::getpid());
  impl_->meta = std::move(meta);
  impl_->opts = opts;
  try {
    impl_->file = H5::H5File(impl_->tmp, H5F_ACC_TRUNC);
    auto& f = impl_->file;
    const DumpMeta& m = impl_->meta;
    set_str(f, "schema", kDumpSchema);
    set_str(f, "implementation", m.implementation);
    set_str(f, "precision", m.precision);
    set_str(f, "device", m.device);
    set_str(f, "model_sha256", m.model_sha256);
    set_str(f, "model_dims", m.dims.to_json().dump());
    set_str(f, "audio_sha256", m.audio_sha256);
    set_str(f, "audio_name", m.audio_name);
    set_str(f, "tool_version", m.tool_version);
    set_str(f, "created", m.created);
    set_int(f, "threads", m.threads);
    set_str(f, "run_info", m.run_info.dump());
    set_str(f, "storage", std::string(dtype_name(opts.store)));
    impl_->taps = f.createGroup("/taps");
    impl_->decode = f.createGroup("/decode");
    impl_->timing = f.createGroup("/timing");
  } catch (const H5::Exception& e) {
    std::filesystem::remove(impl_->tmp);
    throw std::runtime_error(fmt::format("{}: cannot create dump ({})", impl_->path, e.getDetailMsg()));
  }
}

DumpWriter::~DumpWriter() {
  if (impl_ && !impl_->finished) {
    try {
      impl_->file.close();
    } catch (...) {
    }
    std::error_code ec;
    std::filesystem::remove(impl_->tmp, ec);
  }
}

bool DumpWriter::wants(std::string_view name) const { return selector_.selected(name); }

void DumpWriter::put(std::string_view name_sv, const TapView& v) {
  const std::string name(name_sv);
  const int64_t n = shape_numel(v.shape);
  std::vector<hsize_t> dims(v.shape.begin(), v.shape.end());
  if (dims.empty()) dims.push_back(1);
  try {
    H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
    H5::DSetCreatPropList plist;
    if (n > 0) {
      // Chunks of whole rows, about 256 KiB: the comparator streams a tap row-chunk by row-chunk.
      std::vector<hsize_t> chunk = dims;
      hsize_t row = 1;
      for (std::size_t i = 1; i < dims.size(); ++i) row *= dims[i];
      chunk[0] = std::clamp<hsize_t>((1u << 16) / std::max<hsize_t>(row, 1), 1, dims[0]);
      plist.setChunk(static_cast<int>(chunk.size()), chunk.data());
      if (impl_->opts.compression > 0) plist.setDeflate(static_cast<unsigned>(impl_->opts.compression));
    }
    const DType st = impl_->opts.store;
    const H5::DataType& ftype = st == DType::f16 ? static_cast<const H5::DataType&>(half_type())
                                : st == DType::f64 ? static_cast<const H5::DataType&>(H5::PredType::IEEE_F64LE)
                                                   : static_cast<const H5::DataType&>(H5::PredType::IEEE_F32LE);
    H5::DataSet ds = impl_->taps.createDataSet(name, ftype, space, plist);
    // Convert here (round to nearest even) so the stored values do not depend on HDF5's converters.
    if (st == DType::f16) {
      std::vector<uint16_t> h(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        h[i] = float_to_half(v.dtype == DType::f32 ? static_cast<const float*>(v.data)[i]
                                                   : static_cast<float>(static_cast<const double*>(v.data)[i]));
      ds.write(h.data(), half_type());
    } else if (st == DType::f64) {
      std::vector<double> d(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        d[i] = v.dtype == DType::f32 ? static_cast<const float*>(v.data)[i] : static_cast<const double*>(v.data)[i];
      ds.write(d.data(), H5::PredType::NATIVE_DOUBLE);
    } else if (v.dtype == DType::f32) {
      ds.write(v.data, H5::PredType::NATIVE_FLOAT);
    } else {
      std::vector<float> f(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(static_cast<const double*>(v.data)[i]);
      ds.write(f.data(), H5::PredType::NATIVE_FLOAT);
    }
    int order = tap_order(impl_->meta.dims, name);
    set_int(ds, "order", order >= 0 ? order : impl_->order_fallback++);
    std::string layout = "frame,channel";
    if (name == "mel") layout = "mel,frame";
    else if (name == "logits") layout = "token,vocab";
    else if (name.rfind("decoder.", 0) == 0) layout = "token,channel";
    set_str(ds, "layout", layout);
    set_str(ds, "compute_dtype", std::string(dtype_name(v.dtype)));
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot write tap '{}' ({})", impl_->path, name, e.getDetailMsg()));
  }
  ++n_taps_;
}

void DumpWriter::set_decode(const std::vector<int>& tokens, const std::string& text) {
  hsize_t n = tokens.size();
  H5::DataSpace space(1, &n);
  std::vector<int32_t> t(tokens.begin(), tokens.end());
  H5::DataSet ds = impl_->decode.createDataSet("tokens", H5::PredType::STD_I32LE, space);
  if (n > 0) ds.write(t.data(), H5::PredType::NATIVE_INT32);
  H5::DataSet tx = impl_->decode.createDataSet("text", vlen_str(), H5::DataSpace(H5S_SCALAR));
  tx.write(text, vlen_str());
}

void DumpWriter::set_timing(const std::string& name, double seconds) {
  H5::DataSet ds = impl_->timing.createDataSet(name, H5::PredType::IEEE_F64LE, H5::DataSpace(H5S_SCALAR));
  ds.write(&seconds, H5::PredType::NATIVE_DOUBLE);
}

void DumpWriter::finish() {
  try {
    set_int(impl_->file, "complete", 1);
    impl_->taps.close();
    impl_->decode.close();
    impl_->timing.close();
    impl_->file.close();
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot finish dump ({})", impl_->path, e.getDetailMsg()));
  }
  std::filesystem::rename(impl_->tmp, impl_->path);
  impl_->finished = true;
}

// ---------------------------------------------------------------------------------------------
struct DumpReader::Impl {
  H5::H5File file;
  GlobalHeaps heaps;
};

DumpReader::DumpReader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  H5::Exception::dontPrint();
  auto fail = [&](const std::string& why) { return std::runtime_error(fmt::format("{}: {}", path, why)); };
  if (!std::filesystem::exists(path)) throw fail("no such file");
  try {
    if (!H5::H5File::isHdf5(path)) throw fail("not an HDF5 file");
  } catch (const H5::Exception&) {
    throw fail("not an HDF5 file");
  }
  try {
    impl_->heaps = check_global_heaps(path);
  } catch (const std::exception& e) {
    throw fail(fmt::format("unreadable dump ({})", e.what()));
  }
  try {
    impl_->file = H5::H5File(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    throw fail(fmt::format("cannot open: truncated, corrupt or still being written ({})", e.getDetailMsg()));
  }
  try {
    auto& f = impl_->file;
    if (!f.attrExists("schema")) throw fail("not a whisper-fidelity dump (no 'schema' attribute)");
    check_strings(impl_->heaps, f, "root attributes");
    const std::string schema = get_str(f, "schema");
    if (schema != kDumpSchema) throw fail(fmt::format("schema '{}' is not supported (expected '{}')", schema, kDumpSchema));
    if (!f.attrExists("complete") || get_int(f, "complete") != 1)
      throw fail("dump is incomplete (no 'complete' attribute: still being written, or its writer died)");
    for (const char* k : {"implementation", "precision", "model_sha256", "model_dims"})
      if (!f.attrExists(k)) throw fail(fmt::format("missing root attribute '{}'", k));
    meta_.implementation = get_str(f, "implementation");
    meta_.precision = get_str(f, "precision");
    meta_.model_sha256 = get_str(f, "model_sha256");
    auto opt_str = [&](const char* k) { return f.attrExists(k) ? get_str(f, k) : std::string(); };
    meta_.device = opt_str("device");
    meta_.audio_sha256 = opt_str("audio_sha256");
    meta_.audio_name = opt_str("audio_name");
    meta_.tool_version = opt_str("tool_version");
    meta_.created = opt_str("created");
    meta_.threads = f.attrExists("threads") ? static_cast<int>(get_int(f, "threads")) : 0;
    try {
      meta_.dims = ModelDims::from_json(nlohmann::json::parse(get_str(f, "model_dims")));
      const std::string ri = opt_str("run_info");
      meta_.run_info = ri.empty() ? nlohmann::json::object() : nlohmann::json::parse(ri);
    } catch (const std::exception& e) {
      throw fail(fmt::format("bad model_dims/run_info attribute ({})", e.what()));
    }
    if (!f.nameExists("taps")) throw fail("no /taps group");
    H5::Group g = f.openGroup("taps");
    std::map<std::string, Shape> expect;
    for (const auto& t : encoder_taps(meta_.dims)) expect[t.name] = t.shape;
    for (const auto& t : decoder_taps(meta_.dims, 1)) expect[t.name] = t.shape;
    for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
      const std::string name = g.getObjnameByIdx(i);
      if (g.childObjType(name) != H5O_TYPE_DATASET) throw fail(fmt::format("/taps/{} is not a dataset", name));
      H5::DataSet ds = g.openDataSet(name);
      TapInfo info;
      info.name = name;
      H5::DataSpace sp = ds.getSpace();
      const int nd = sp.getSimpleExtentNdims();
      if (nd < 1 || nd > 4) throw fail(fmt::format("tap '{}' has {} dimensions", name, nd));
      std::vector<hsize_t> dims(static_cast<std::size_t>(nd));
      sp.getSimpleExtentDims(dims.data());
      // The extent is only a header: bound it before anything is read or allocated. Readers
      // hold one row (all dims but the first) at a time, so a row is bounded too.
      int64_t numel = 1, row = 1;
      for (std::size_t k = 0; k < dims.size(); ++k) {
        if (dims[k] > static_cast<hsize_t>(kMaxTapElements))
          throw fail(fmt::format("tap '{}': dimension {} of {} is past any real tap", name, k, dims[k]));
        info.shape.push_back(static_cast<int64_t>(dims[k]));
        numel *= static_cast<int64_t>(dims[k]);  // each factor <= 2^31, checked as it grows
        if (k > 0) row *= static_cast<int64_t>(dims[k]);
        if (numel > kMaxTapElements || row > kMaxTapRowElements)
          throw fail(fmt::format("tap '{}': shape {} exceeds the limits of {} elements, {} per row", name,
                                 shape_str(Shape(dims.begin(), dims.end())), kMaxTapElements, kMaxTapRowElements));
      }
      if (ds.getTypeClass() != H5T_FLOAT) throw fail(fmt::format("tap '{}' is not floating point", name));
      // Storage never written (or written in part) reads back as fill values: a writer that
      // declared the extent and died, or a header lying about the size. Refuse, don't make up
      // data. Chunked: every chunk the extent spans must exist (H5Dget_space_status is not used:
      // HDF5 1.10 calls datasets with partial edge chunks "part allocated" when they are whole).
      if (numel > 0) {
        const H5::DSetCreatPropList cp = ds.getCreatePlist();
        hsize_t have = 0, need = 1;
        if (cp.getLayout() == H5D_CHUNKED) {
          std::vector<hsize_t> chunk(dims.size());
          cp.getChunk(nd, chunk.data());
          for (std::size_t k = 0; k < dims.size(); ++k) need *= (dims[k] + chunk[k] - 1) / std::max<hsize_t>(chunk[k], 1);
          if (H5Dget_num_chunks(ds.getId(), sp.getId(), &have) < 0) throw fail(fmt::format("tap '{}': chunk index unreadable", name));
        } else {
          have = cp.getLayout() == H5D_COMPACT || ds.getStorageSize() > 0 ? 1 : 0;
        }
        if (have < need)
          throw fail(fmt::format("tap '{}' {}: data never written for {} its extent", name, shape_str(info.shape),
                                 have > 0 ? "part of" : "any of"));
      }
      const std::size_t sz = ds.getFloatType().getSize();
      info.stored = sz == 2 ? DType::f16 : sz == 4 ? DType::f32 : sz == 8 ? DType::f64 : throw fail(fmt::format("tap '{}' has {}-byte floats", name, sz));
      info.order = ds.attrExists("order") ? static_cast<int>(get_int(ds, "order")) : tap_order(meta_.dims, name);
      if (info.order < 0) info.order = 1 << 30;
      check_strings(impl_->heaps, ds, fmt::format("tap '{}'", name));
      info.layout = ds.attrExists("layout") ? get_str(ds, "layout") : "";
      info.compute_dtype = ds.attrExists("compute_dtype") ? get_str(ds, "compute_dtype") : "";
      if (auto e = expect.find(name); e != expect.end()) {
        const bool decoder = name.rfind("decoder.", 0) == 0 || name == "logits";
        const bool ok = decoder ? (info.shape.size() == 2 && info.shape[1] == e->second[1]) : info.shape == e->second;
        if (!ok)
          throw fail(fmt::format("tap '{}': got {}, expected {} for its model_dims", name, shape_str(info.shape), shape_str(e->second)));
      }
      taps_.push_back(std::move(info));
    }
    std::stable_sort(taps_.begin(), taps_.end(), [](const TapInfo& a, const TapInfo& b) {
      return a.order != b.order ? a.order < b.order : a.name < b.name;
    });
  } catch (const H5::Exception& e) {
    throw fail(fmt::format("unreadable dump ({})", e.getDetailMsg()));
  }
}

DumpReader::~DumpReader() = default;
DumpReader::DumpReader(DumpReader&&) noexcept = default;

const TapInfo* DumpReader::find(const std::string& name) const {
  for (const auto& t : taps_)
    if (t.name == name) return &t;
  return nullptr;
}

Tensor DumpReader::read(const std::string& name, DType as) const {
  const TapInfo* info = find(name);
  if (info == nullptr) throw std::runtime_error(fmt::format("{}: no tap '{}'", path_, name));
  Tensor t(as, info->shape);
  try {
    H5::DataSet ds = impl_->file.openDataSet("/taps/" + name);
    ds.read(t.raw(), as == DType::f64 ? H5::PredType::NATIVE_DOUBLE : H5::PredType::NATIVE_FLOAT);
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot read tap '{}' ({})", path_, name, e.getDetailMsg()));
  }
  return t;
}

void DumpReader::read_rows(const std::string& name, int64_t row0, int64_t n, std::vector<double>& out) const {
  const TapInfo* info = find(name);
  if (info == nullptr) throw std::runtime_error(fmt::format("{}: no tap '{}'", path_, name));
  if (row0 < 0 || n < 0 || row0 + n > info->shape[0])
    throw std::invalid_argument(fmt::format("{}: rows [{}, {}) outside tap '{}' {}", path_, row0, row0 + n, name, shape_str(info->shape)));
  int64_t row = 1;
  for (std::size_t i = 1; i < info->shape.size(); ++i) row *= info->shape[i];
  out.resize(static_cast<std::size_t>(n * row));
  if (n == 0) return;
  try {
    H5::DataSet ds = impl_->file.openDataSet("/taps/" + name);
    H5::DataSpace fs = ds.getSpace();
    std::vector<hsize_t> start(info->shape.size(), 0), count(info->shape.begin(), info->shape.end());
    start[0] = static_cast<hsize_t>(row0);
    count[0] = static_cast<hsize_t>(n);
    fs.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
    H5::DataSpace ms(static_cast<int>(count.size()), count.data());
    ds.read(out.data(), H5::PredType::NATIVE_DOUBLE, ms, fs);
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot read tap '{}' ({})", path_, name, e.getDetailMsg()));
  }
}

std::optional<std::vector<int>> DumpReader::tokens() const {
  try {
    if (!impl_->file.nameExists("decode") || !impl_->file.openGroup("decode").nameExists("tokens")) return std::nullopt;
    H5::DataSet ds = impl_->file.openDataSet("/decode/tokens");
    hsize_t n = 0;
    ds.getSpace().getSimpleExtentDims(&n);
    std::vector<int32_t> v(n);
    if (n > 0) ds.read(v.data(), H5::PredType::NATIVE_INT32);
    return std::vector<int>(v.begin(), v.end());
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot read /decode/tokens ({})", path_, e.getDetailMsg()));
  }
}

std::optional<std::string> DumpReader::text() const {
  try {
    if (!impl_->file.nameExists("decode") || !impl_->file.openGroup("decode").nameExists("text")) return std::nullopt;
    H5::DataSet ds = impl_->file.openDataSet("/decode/text");
    check_strings(impl_->heaps, ds, "/decode/text", /*contiguous_data=*/true);
    std::string s;
    const H5::StrType t = ds.getStrType();
    if (t.isVariableStr()) {  // may be null: read through the C API (the wrapper would strlen(NULL))
      char* c = nullptr;
      if (H5Dread(ds.getId(), t.getId(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &c) < 0)
        throw std::runtime_error(fmt::format("{}: cannot read /decode/text", path_));
      if (c != nullptr) s = c;
      H5free_memory(c);
    } else {
      ds.read(s, t);
    }
    return s;
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot read /decode/text ({})", path_, e.getDetailMsg()));
  }
}

std::map<std::string, double> DumpReader::timings() const {
  std::map<std::string, double> out;
  try {
    if (!impl_->file.nameExists("timing")) return out;
    H5::Group g = impl_->file.openGroup("timing");
    for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
      const std::string n = g.getObjnameByIdx(i);
      double v = 0;
      g.openDataSet(n).read(&v, H5::PredType::NATIVE_DOUBLE);
      out[n] = v;
    }
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot read /timing ({})", path_, e.getDetailMsg()));
  }
  return out;
}

}  // namespace wb
