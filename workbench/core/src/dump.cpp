#include "wb/core/dump.h"

#include <H5Cpp.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "hdf5_guard.h"
#include "wb/core/tempfile.h"

namespace wb {

namespace {

// /decode/tokens beyond this is a lying header (a 30 s window decodes at most 448 tokens).
constexpr hsize_t kMaxTokens = hsize_t{1} << 24;

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
  if (a.getTypeClass() != H5T_STRING)
    throw std::runtime_error(fmt::format("attribute '{}' is not a string", name));
  std::string v;
  const H5::StrType t = a.getStrType();
  if (!t.isVariableStr()) {
    a.read(t, v);
    return v;
  }
  // A variable-length string may be null (no heap object); the C++ wrapper would strlen(NULL).
  char* c = nullptr;
  if (H5Aread(a.getId(), t.getId(), &c) < 0)
    throw std::runtime_error(fmt::format("attribute '{}' unreadable", name));
  if (c != nullptr) v = c;
  H5free_memory(c);
  return v;
}
// A compact dataset keeps its data inside its header with a size of its own; HDF5 1.10 copies
// (elements x element size) bytes out of it whatever that size is.
void check_compact(const H5::DataSet& ds, H5D_layout_t layout, const std::string& what) {
  if (layout != H5D_COMPACT) return;
  const hsize_t need =
      static_cast<hsize_t>(ds.getSpace().getSimpleExtentNpoints()) * ds.getDataType().getSize();
  if (ds.getStorageSize() != need)
    throw std::runtime_error(fmt::format("{}: compact storage of {} bytes for {} bytes of data",
                                         what, ds.getStorageSize(), need));
}
void check_compact(const H5::DataSet& ds, const std::string& what) {
  check_compact(ds, ds.getCreatePlist().getLayout(), what);
}

// Every chunk of a chunked tap, from its index: inside the file, and unfiltered chunks exactly
// one chunk of elements (HDF5 1.10 copies a chunk's elements out of whatever the index says it
// read). The chunk shape itself is a header: it may exceed the tap (an extendible dataset sized
// for growth) but not past 2^20 elements, since HDF5 allocates a whole chunk to read one.
// A writer's temporary name: "<out>" + kPartialMark + "<pid>" (DumpWriter writes it, the reader
// recognises it).
constexpr std::string_view kPartialMark = ".partial-";

struct MissingChunk : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Returns each chunk's file offset, in the order visited (last dimension fastest). A chunk of the
// extent that the index lacks: MissingChunk.
std::vector<uint64_t> check_chunks(const H5::DataSet& ds, const H5::DSetCreatPropList& cp,
                                   const std::vector<hsize_t>& dims, hsize_t count,
                                   const std::string& what, uint64_t file_size) {
  constexpr hsize_t kMaxChunks = hsize_t{1} << 20, kMaxOversizedChunk = hsize_t{1} << 20;
  const int nd = static_cast<int>(dims.size());
  std::vector<hsize_t> chunk(dims.size());
  cp.getChunk(nd, chunk.data());
  hsize_t elements = 1, numel = 1;
  for (int k = 0; k < nd; ++k) {
    if (chunk[k] == 0 || chunk[k] > (hsize_t{1} << 32))
      throw std::runtime_error(fmt::format("{}: chunk dimension {}", what, chunk[k]));
    elements = elements > (hsize_t{1} << 40) ? elements : elements * chunk[k];
    numel *= dims[k];
  }
  if (elements > std::max(numel, kMaxOversizedChunk))
    throw std::runtime_error(
        fmt::format("{}: chunks of {} elements for {} elements of data", what, elements, numel));
  if (count > kMaxChunks)
    throw std::runtime_error(fmt::format("{}: {} chunks (more than {})", what, count, kMaxChunks));
  const hsize_t chunk_bytes = elements * ds.getDataType().getSize();
  const bool filtered = cp.getNfilters() > 0;
  std::vector<hsize_t> at(dims.size(), 0);
  std::vector<uint64_t> offsets;
  offsets.reserve(static_cast<std::size_t>(count));
  for (hsize_t c = 0; c < count; ++c) {
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t bytes = 0;
    if (H5Dget_chunk_info_by_coord(ds.getId(), at.data(), &mask, &addr, &bytes) < 0 ||
        addr == HADDR_UNDEF)
      throw MissingChunk(fmt::format("{}: chunk at {} missing from its index", what,
                                     shape_str(Shape(at.begin(), at.end()))));
    if (bytes > file_size || addr > file_size - bytes)
      throw std::runtime_error(
          fmt::format("{}: chunk of {} bytes at offset {} runs past the end of the {}-byte file",
                      what, bytes, addr, file_size));
    if (!filtered && bytes != chunk_bytes)
      throw std::runtime_error(fmt::format(
          "{}: unfiltered chunk of {} bytes where a chunk holds {}", what, bytes, chunk_bytes));
    offsets.push_back(static_cast<uint64_t>(addr));
    for (int k = nd - 1; k >= 0; --k) {  // next chunk, last dimension fastest
      at[k] += chunk[k];
      if (at[k] < dims[k]) break;
      at[k] = 0;
    }
  }
  return offsets;
}

int64_t get_int(const H5::H5Object& o, const std::string& name) {
  H5::Attribute a = o.openAttribute(name);
  if (a.getTypeClass() != H5T_INTEGER)
    throw std::runtime_error(fmt::format("attribute '{}' is not an integer", name));
  int64_t v = 0;
  a.read(H5::PredType::NATIVE_INT64, &v);
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct DumpWriter::Impl {
  std::string path, tmp;
  std::unique_ptr<TempFile> interrupt_cleanup;  // an interrupt removes tmp (see wb/tempfile.h)
  DumpMeta meta;
  DumpOptions opts;
  // The open file and groups, on the heap: a file whose write failed is abandoned by releasing
  // this without destroying it (their destructors would close the file: see
  // detail::abandon_failed_hdf5_file).
  struct Handles {
    H5::H5File file;
    H5::Group taps, decode, timing;
  };
  std::unique_ptr<Handles> h = std::make_unique<Handles>();
  bool finished = false;
  // A write failed (a full disk, say): the file is abandoned, never closed, only removed
  // (detail::abandon_failed_hdf5_file says why).
  bool write_failed = false;
  int order_fallback = 100000;

  // A write of `what` failed: the file is abandoned (with the open datasets `ids`) and the
  // error names the dump and what was being written.
  [[noreturn]] void write_failure(const H5::Exception& e, std::initializer_list<hid_t> ids,
                                  const std::string& what) {
    write_failed = true;
    detail::abandon_failed_hdf5_file(ids);
    throw std::runtime_error(fmt::format("{}: cannot write {} ({})", path, what, e.getDetailMsg()));
  }
  // The int32 dataset /decode/<name> holding tokens.
  void write_tokens(const char* name, const std::vector<int>& tokens, const std::string& what) {
    const hsize_t n = tokens.size();
    const std::vector<int32_t> t(tokens.begin(), tokens.end());
    H5::DataSet ds;
    try {
      ds = h->decode.createDataSet(name, H5::PredType::STD_I32LE, H5::DataSpace(1, &n));
      if (n > 0) ds.write(t.data(), H5::PredType::NATIVE_INT32);
      ds.close();
    } catch (const H5::Exception& e) {
      write_failure(e, {ds.getId()}, what);
    }
  }
};

DumpWriter::DumpWriter(std::string path, DumpMeta meta, TapSelector selector, DumpOptions opts)
    : impl_(std::make_unique<Impl>()), selector_(std::move(selector)) {
  H5::Exception::dontPrint();
  if (opts.store != DType::f32 && opts.store != DType::f16 && opts.store != DType::f64)
    throw std::invalid_argument("dump storage type must be float32, float16 or float64");
  impl_->path = std::move(path);
  impl_->tmp = fmt::format("{}{}{}", impl_->path, kPartialMark, ::getpid());
  impl_->interrupt_cleanup = std::make_unique<TempFile>(impl_->tmp);
  impl_->meta = std::move(meta);
  impl_->opts = opts;
  try {
    impl_->h->file = H5::H5File(impl_->tmp, H5F_ACC_TRUNC);
    auto& f = impl_->h->file;
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
    impl_->h->taps = f.createGroup("/taps");
    impl_->h->decode = f.createGroup("/decode");
    impl_->h->timing = f.createGroup("/timing");
  } catch (const H5::Exception& e) {
    detail::abandon_failed_hdf5_file({});
    (void)impl_->h.release();
    std::error_code ec;
    std::filesystem::remove(impl_->tmp, ec);
    throw std::runtime_error(
        fmt::format("{}: cannot create dump ({})", impl_->path, e.getDetailMsg()));
  }
}

DumpWriter::~DumpWriter() {
  if (impl_ && !impl_->finished) {
    try {
      if (impl_->write_failed) {
        detail::abandon_failed_hdf5_file({});
        (void)impl_->h.release();
      } else
        impl_->h->file.close();
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
  const std::vector<hsize_t> dims = v.shape.empty()
                                        ? std::vector<hsize_t>{1}
                                        : std::vector<hsize_t>(v.shape.begin(), v.shape.end());
  H5::DataSet ds;
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
      // Byte shuffle before gzip: the sign/exponent bytes of floats compress, the low mantissa
      // bytes hardly do; grouped, gzip finds the former (a float32 ln_post: 0.94 -> 0.82 of raw).
      if (impl_->opts.compression > 0) {
        plist.setShuffle();
        plist.setDeflate(static_cast<unsigned>(impl_->opts.compression));
      }
    }
    const DType st = impl_->opts.store;
    const H5::DataType& ftype = st == DType::f16 ? static_cast<const H5::DataType&>(half_type())
                                : st == DType::f64
                                    ? static_cast<const H5::DataType&>(H5::PredType::IEEE_F64LE)
                                    : static_cast<const H5::DataType&>(H5::PredType::IEEE_F32LE);
    ds = impl_->h->taps.createDataSet(name, ftype, space, plist);
    // Convert here (round to nearest even) so the stored values do not depend on HDF5's converters.
    if (st == DType::f16) {
      std::vector<uint16_t> h(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        h[i] = float_to_half(v.dtype == DType::f32
                                 ? static_cast<const float*>(v.data)[i]
                                 : static_cast<float>(static_cast<const double*>(v.data)[i]));
      ds.write(h.data(), half_type());
    } else if (st == DType::f64) {
      std::vector<double> d(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        d[i] = v.dtype == DType::f32 ? static_cast<const float*>(v.data)[i]
                                     : static_cast<const double*>(v.data)[i];
      ds.write(d.data(), H5::PredType::NATIVE_DOUBLE);
    } else if (v.dtype == DType::f32) {
      ds.write(v.data, H5::PredType::NATIVE_FLOAT);
    } else {
      std::vector<float> f(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        f[i] = static_cast<float>(static_cast<const double*>(v.data)[i]);
      ds.write(f.data(), H5::PredType::NATIVE_FLOAT);
    }
    const TapRegistry& reg = TapRegistry::of(impl_->meta.dims);
    const TapSpec* spec = reg.find(name);
    set_int(ds, "order", spec ? reg.order(name) : impl_->order_fallback++);
    set_str(ds, "layout", spec ? spec->layout : std::string("frame,channel"));
    set_str(ds, "compute_dtype", std::string(dtype_name(v.dtype)));
    ds.close();  // its chunks reach the file here: a failure to write them is this tap's error
  } catch (const H5::Exception& e) {
    impl_->write_failure(e, {ds.getId()}, fmt::format("tap '{}'", name));
  }
  ++n_taps_;
}

void DumpWriter::set_decode(const std::vector<int>& tokens, const std::string& text) {
  impl_->write_tokens("tokens", tokens, "the transcript");
  H5::DataSet tx;
  try {
    tx = impl_->h->decode.createDataSet("text", vlen_str(), H5::DataSpace(H5S_SCALAR));
    tx.write(text, vlen_str());
    tx.close();
  } catch (const H5::Exception& e) {
    impl_->write_failure(e, {tx.getId()}, "the transcript");
  }
}

void DumpWriter::set_teacher_tokens(const std::vector<int>& tokens) {
  impl_->write_tokens("teacher_tokens", tokens, "the teacher tokens");
}

void DumpWriter::set_timing(const std::string& name, double seconds) {
  H5::DataSet ds;
  try {
    ds = impl_->h->timing.createDataSet(name, H5::PredType::IEEE_F64LE, H5::DataSpace(H5S_SCALAR));
    ds.write(&seconds, H5::PredType::NATIVE_DOUBLE);
    ds.close();
  } catch (const H5::Exception& e) {
    impl_->write_failure(e, {ds.getId()}, fmt::format("timing '{}'", name));
  }
}

void DumpWriter::finish() {
  try {
    // Every tap reaches the file before the mark that says the file is whole: a writer killed
    // while HDF5 flushes at close can then leave the mark only beside complete data.
    impl_->h->file.flush(H5F_SCOPE_GLOBAL);
    set_int(impl_->h->file, "complete", 1);
    impl_->h->taps.close();
    impl_->h->decode.close();
    impl_->h->timing.close();
    impl_->h->file.close();
  } catch (const H5::Exception& e) {
    impl_->write_failed = true;
    throw std::runtime_error(
        fmt::format("{}: cannot finish dump ({})", impl_->path, e.getDetailMsg()));
  }
  std::filesystem::rename(impl_->tmp, impl_->path);
  impl_->finished = true;
  impl_->interrupt_cleanup.reset();
}

// ---------------------------------------------------------------------------------------------
struct DumpReader::Impl {
  std::string path;
  H5::H5File file;
  detail::Hdf5Guard guard;  // HDF5 1.10 trusts sizes in the file: each object is checked first
  // Each tap's dataset, opened once (when it is checked) with HDF5's chunk cache off: a tap is
  // read front to back in whole rows, so a cache would only copy each chunk once more (and keep
  // up to 1 MiB per open tap). `f32le`: stored as IEEE float32 little-endian, read as float
  // without HDF5's type conversion (which clears a 1 MiB buffer on every read) and widened here.
  struct OpenTap {
    H5::DataSet ds;
    bool f32le = false;
    // Unfiltered float32 chunks of whole rows (what DumpWriter writes): their file offsets, as
    // checked at open, and rows per chunk. read_rows reads these bytes itself (pread), outside
    // HDF5 and its lock. Empty: HDF5 reads the tap.
    std::vector<uint64_t> chunk_offsets;
    int64_t chunk_rows = 0;
  };
  std::map<std::string, OpenTap> taps;
  H5::DSetAccPropList no_chunk_cache = [] {
    H5::DSetAccPropList a;
    a.setChunkCache(0, 0, 1.0);
    return a;
  }();
  OpenTap& tap(const std::string& name) {
    auto it = taps.find(name);
    if (it == taps.end()) throw std::runtime_error(fmt::format("{}: no tap '{}'", path, name));
    return it->second;
  }
  // Checks the header behind link `name` under `loc` before HDF5 opens it (see hdf5_guard.h).
  void vet(const H5::H5Location& loc, const std::string& name, const std::string& what) {
    try {
      guard.vet_link(loc.getId(), name, what);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("{}: unreadable dump ({})", path, e.what()));
    }
  }
  // /decode/<name>, checked, or nothing when the dump has none.
  std::optional<H5::DataSet> decode_dataset(const std::string& name) {
    if (!file.nameExists("decode")) return std::nullopt;
    vet(file, "decode", "/decode");
    const H5::Group g = file.openGroup("decode");
    if (!g.nameExists(name)) return std::nullopt;
    vet(g, name, "/decode/" + name);
    H5::DataSet ds = g.openDataSet(name);
    check_compact(ds, fmt::format("{}: /decode/{}", path, name));
    return ds;
  }
};

namespace {
// The root attributes of a dump (docs/dump-format.md); a tensor file has none.
template <class Fail>
void read_root_attributes(const H5::H5File& f, DumpMeta& meta_, const Fail& fail) {
  if (!f.attrExists("schema")) throw fail("not a whisper-fidelity dump (no 'schema' attribute)");
  const std::string schema = get_str(f, "schema");
  if (schema != kDumpSchema)
    throw fail(fmt::format("schema '{}' is not supported (expected '{}')", schema, kDumpSchema));
  if (!f.attrExists("complete") || get_int(f, "complete") != 1)
    throw fail(
        "dump is incomplete (no 'complete' attribute: still being written, or its writer died)");
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
}
}  // namespace

DumpReader::DumpReader(const std::string& path) : DumpReader(path, nullptr) {}

DumpReader::DumpReader(const std::string& path, const ModelDims& tensor_file_dims)
    : DumpReader(path, &tensor_file_dims) {}

DumpReader::DumpReader(const std::string& path, const ModelDims* tensor_file_dims)
    : impl_(std::make_unique<Impl>()), path_(path) {
  H5::Exception::dontPrint();
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: {}", path, why));
  };
  // Runs a check whose errors do not name the file, and names it.
  auto with_path = [&](auto&& check) {
    try {
      check();
    } catch (const std::runtime_error& e) {
      throw fail(e.what());
    }
  };
  if (!std::filesystem::exists(path)) throw fail("no such file");
  // A writer's temporary name ("<out>.partial-<pid>", DumpWriter): killed early, it holds no
  // HDF5 superblock yet; say what the name says rather than "not an HDF5 file".
  const std::string fname = std::filesystem::path(path).filename().string();
  const std::size_t mark = fname.rfind(kPartialMark);
  const std::size_t pid_at = mark + kPartialMark.size();
  const bool partial_name = mark != std::string::npos && pid_at < fname.size() &&
                            fname.find_first_not_of("0123456789", pid_at) == std::string::npos;
  const char* not_hdf5 = partial_name ? "not an HDF5 file yet: a dump still being written (its "
                                        "writer's temporary name), or left by a writer that died"
                                      : "not an HDF5 file";
  try {
    if (!H5::H5File::isHdf5(path)) throw fail(not_hdf5);
  } catch (const H5::Exception&) {
    throw fail(not_hdf5);
  }
  impl_->path = path;
  try {
    impl_->guard = detail::Hdf5Guard(path);
  } catch (const std::exception& e) {
    throw fail(
        fmt::format("cannot open: truncated, corrupt or still being written ({})", e.what()));
  }
  try {
    impl_->file = H5::H5File(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    throw fail(fmt::format("cannot open: truncated, corrupt or still being written ({})",
                           e.getDetailMsg()));
  }
  try {
    auto& f = impl_->file;
    if (tensor_file_dims != nullptr)
      meta_.dims = *tensor_file_dims;
    else
      read_root_attributes(f, meta_, fail);
    if (!f.nameExists("taps")) throw fail("no /taps group");
    impl_->vet(f, "taps", "/taps");
    H5::Group g = f.openGroup("taps");
    std::map<std::string, Shape> expect;
    for (const auto& t : encoder_taps(meta_.dims)) expect[t.name] = t.shape;
    for (const auto& t : decoder_taps(meta_.dims, 1)) expect[t.name] = t.shape;
    const hsize_t n_objs = g.getNumObjs();
    for (hsize_t i = 0; i < n_objs; ++i) {
      const std::string name = g.getObjnameByIdx(i);
      impl_->vet(g, name, fmt::format("tap '{}'", name));
      if (g.childObjType(name) != H5O_TYPE_DATASET)
        throw fail(fmt::format("/taps/{} is not a dataset", name));
      H5::DataSet ds = g.openDataSet(name, impl_->no_chunk_cache);
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
          throw fail(
              fmt::format("tap '{}': dimension {} of {} is past any real tap", name, k, dims[k]));
        info.shape.push_back(static_cast<int64_t>(dims[k]));
        numel *= static_cast<int64_t>(dims[k]);  // each factor <= 2^31, checked as it grows
        if (k > 0) row *= static_cast<int64_t>(dims[k]);
        if (numel > kMaxTapElements || row > kMaxTapRowElements)
          throw fail(fmt::format("tap '{}': shape {} exceeds the limits of {} elements, {} per row",
                                 name, shape_str(Shape(dims.begin(), dims.end())), kMaxTapElements,
                                 kMaxTapRowElements));
      }
      if (ds.getTypeClass() != H5T_FLOAT)
        throw fail(fmt::format("tap '{}' is not floating point", name));
      // Storage never written (or written in part) reads back as fill values: a writer that
      // declared the extent and died, or a header lying about the size. Refuse, don't make up
      // data. Chunked: every chunk the extent spans must exist (H5Dget_space_status is not used:
      // HDF5 1.10 calls datasets with partial edge chunks "part allocated" when they are whole).
      const H5::DSetCreatPropList cp = ds.getCreatePlist();  // a copy: taken once
      const H5D_layout_t layout = cp.getLayout();
      with_path([&] { check_compact(ds, layout, fmt::format("tap '{}'", name)); });
      std::vector<uint64_t> chunk_offsets;
      int64_t chunk_rows = 0;
      if (numel > 0) {
        const auto never_written = [&](hsize_t have) {
          return fail(fmt::format("tap '{}' {}: data never written for {} its extent", name,
                                  shape_str(info.shape), have > 0 ? "part of" : "any of"));
        };
        if (layout != H5D_CHUNKED && layout != H5D_COMPACT && ds.getStorageSize() == 0)
          throw never_written(0);
        if (layout == H5D_CHUNKED) {
          hsize_t need = 1;
          std::vector<hsize_t> chunk(dims.size());
          cp.getChunk(nd, chunk.data());
          for (std::size_t k = 0; k < dims.size(); ++k)
            need *= (dims[k] + chunk[k] - 1) / std::max<hsize_t>(chunk[k], 1);
          // Every chunk the extent spans is looked up (check_chunks); only when one is missing
          // are the allocated chunks counted, to say whether any of the data was written.
          try {
            chunk_offsets = check_chunks(ds, cp, dims, need, fmt::format("tap '{}'", name),
                                         impl_->guard.file_size());
          } catch (const MissingChunk& e) {
            hsize_t have = 0;
            if (H5Dget_num_chunks(ds.getId(), sp.getId(), &have) < 0)
              throw fail(fmt::format("tap '{}': chunk index unreadable", name));
            if (have < need) throw never_written(have);
            throw fail(e.what());
          } catch (const std::runtime_error& e) {
            throw fail(e.what());
          }
          bool whole_rows = cp.getNfilters() == 0;
          for (std::size_t k = 1; k < dims.size(); ++k)
            whole_rows = whole_rows && chunk[k] == dims[k];
          if (whole_rows) chunk_rows = static_cast<int64_t>(chunk[0]);
        }
      }
      const H5::FloatType ft = ds.getFloatType();
      const std::size_t sz = ft.getSize();
      info.stored = sz == 2   ? DType::f16
                    : sz == 4 ? DType::f32
                    : sz == 8 ? DType::f64
                              : throw fail(fmt::format("tap '{}' has {}-byte floats", name, sz));
      info.order = ds.attrExists("order") ? static_cast<int>(get_int(ds, "order"))
                                          : tap_order(meta_.dims, name);
      if (info.order < 0) info.order = 1 << 30;
      info.layout = ds.attrExists("layout") ? get_str(ds, "layout") : "";
      info.compute_dtype = ds.attrExists("compute_dtype") ? get_str(ds, "compute_dtype") : "";
      if (auto e = expect.find(name); e != expect.end()) {
        const TapSpec* spec = TapRegistry::of(meta_.dims).find(name);
        const bool ok = spec != nullptr && spec->per_token
                            ? (info.shape.size() == 2 && info.shape[1] == e->second[1])
                            : info.shape == e->second;
        if (!ok)
          throw fail(fmt::format("tap '{}': got {}, expected {} for its model_dims", name,
                                 shape_str(info.shape), shape_str(e->second)));
      }
      const bool f32le = ft == H5::PredType::IEEE_F32LE;
      if (!f32le || chunk_rows == 0 || std::endian::native != std::endian::little) {
        chunk_offsets.clear();
        chunk_rows = 0;
      }
      impl_->taps.insert_or_assign(
          name, Impl::OpenTap{std::move(ds), f32le, std::move(chunk_offsets), chunk_rows});
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
    throw std::runtime_error(
        fmt::format("{}: cannot read tap '{}' ({})", path_, name, e.getDetailMsg()));
  }
  return t;
}

uint64_t DumpReader::file_size() const { return impl_->guard.file_size(); }

std::optional<uint64_t> DumpReader::contiguous_f32_offset(const std::string& name) const {
  const TapInfo* info = find(name);
  if (info == nullptr || info->stored != DType::f32) return std::nullopt;
  try {
    H5::DataSet ds = impl_->file.openDataSet("/taps/" + name);
    const H5::DSetCreatPropList cp = ds.getCreatePlist();
    if (cp.getLayout() != H5D_CONTIGUOUS || cp.getNfilters() != 0) return std::nullopt;
    const H5::FloatType ft = ds.getFloatType();
    if (ft.getOrder() != H5T_ORDER_LE || !(ft == H5::PredType::IEEE_F32LE)) return std::nullopt;
    const haddr_t off = H5Dget_offset(ds.getId());
    const uint64_t bytes = static_cast<uint64_t>(shape_numel(info->shape)) * 4;
    if (off == HADDR_UNDEF || ds.getStorageSize() != bytes || off > impl_->guard.file_size() ||
        bytes > impl_->guard.file_size() - off)
      return std::nullopt;
    return static_cast<uint64_t>(off);
  } catch (const H5::Exception&) {
    return std::nullopt;
  }
}

namespace {
// float32 -> float64, a loop the compiler vectorizes (vector::insert of floats into doubles was
// an element at a time: 30% of the comparator's reader thread).
void widen(const float* __restrict src, double* __restrict dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
}
}  // namespace

void DumpReader::read_rows(const std::string& name, int64_t row0, int64_t n,
                           std::vector<double>& out) const {
  const TapInfo* info = find(name);
  if (info == nullptr) throw std::runtime_error(fmt::format("{}: no tap '{}'", path_, name));
  if (row0 < 0 || n < 0 || row0 + n > info->shape[0])
    throw std::invalid_argument(fmt::format("{}: rows [{}, {}) outside tap '{}' {}", path_, row0,
                                            row0 + n, name, shape_str(info->shape)));
  int64_t row = 1;
  for (std::size_t i = 1; i < info->shape.size(); ++i) row *= info->shape[i];
  const Impl::OpenTap& t = impl_->tap(name);
  // Sized once: a caller that passes the same vector again (the comparator recycles its chunk
  // buffers) pays no zero-fill, only a larger size fills its growth (a fill of every chunk was
  // 7% of a `wb compare` of two nano dumps).
  out.resize(static_cast<std::size_t>(n * row));
  if (n == 0) return;
  if (t.chunk_rows > 0) {
    // The chunks' bytes read here: float32 little-endian, a row after the other within a chunk.
    // In pieces of about 256 KiB, each widened while it is still in the cache.
    thread_local std::vector<float> f;
    const int64_t step = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(row, 1));
    for (int64_t r = 0; r < n;) {
      const int64_t at = row0 + r;
      const int64_t in_chunk = at % t.chunk_rows;
      const int64_t m = std::min({step, n - r, t.chunk_rows - in_chunk});
      const uint64_t off = t.chunk_offsets[static_cast<std::size_t>(at / t.chunk_rows)] +
                           static_cast<uint64_t>(in_chunk * row) * sizeof(float);
      f.resize(static_cast<std::size_t>(m * row));
      if (!impl_->guard.read_at(off, f.data(), f.size() * sizeof(float)))
        throw std::runtime_error(fmt::format(
            "{}: cannot read tap '{}' (rows {}..{}: the file is shorter than when it was opened)",
            path_, name, at, at + m));
      widen(f.data(), out.data() + r * row, f.size());
      r += m;
    }
    return;
  }
  try {
    H5::DataSpace fs = t.ds.getSpace();
    std::vector<hsize_t> start(info->shape.size(), 0),
        count(info->shape.begin(), info->shape.end());
    const int nd = static_cast<int>(count.size());
    if (t.f32le) {
      // float32 -> float64 is exact: the values HDF5's conversion gives. In pieces of about
      // 256 KiB (the writers' chunks), each widened while it is still in the cache.
      const int64_t step = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(row, 1));
      // The float32 rows before widening: one buffer a thread (the comparator reads a dump
      // from two threads at once; HDF5 serialises its own calls).
      thread_local std::vector<float> f;
      for (int64_t r = 0; r < n; r += step) {
        const int64_t m = std::min(step, n - r);
        start[0] = static_cast<hsize_t>(row0 + r);
        count[0] = static_cast<hsize_t>(m);
        fs.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
        f.resize(static_cast<std::size_t>(m * row));
        t.ds.read(f.data(), H5::PredType::NATIVE_FLOAT, H5::DataSpace(nd, count.data()), fs);
        widen(f.data(), out.data() + r * row, f.size());
      }
    } else {
      start[0] = static_cast<hsize_t>(row0);
      count[0] = static_cast<hsize_t>(n);
      fs.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
      t.ds.read(out.data(), H5::PredType::NATIVE_DOUBLE, H5::DataSpace(nd, count.data()), fs);
    }
  } catch (const H5::Exception& e) {
    throw std::runtime_error(
        fmt::format("{}: cannot read tap '{}' ({})", path_, name, e.getDetailMsg()));
  }
}

std::optional<std::vector<int>> DumpReader::token_dataset(const std::string& name) const {
  try {
    const std::optional<H5::DataSet> d = impl_->decode_dataset(name);
    if (!d) return std::nullopt;
    const H5::DataSet& ds = *d;
    const H5::DataSpace sp = ds.getSpace();
    hsize_t n = 0;
    if (sp.getSimpleExtentNdims() != 1)
      throw std::runtime_error(fmt::format("{}: /decode/{} is not one-dimensional", path_, name));
    sp.getSimpleExtentDims(&n);
    if (n > kMaxTokens)
      throw std::runtime_error(
          fmt::format("{}: /decode/{} holds {} tokens (more than {})", path_, name, n, kMaxTokens));
    std::vector<int32_t> v(n);
    if (n > 0) ds.read(v.data(), H5::PredType::NATIVE_INT32);
    return std::vector<int>(v.begin(), v.end());
  } catch (const H5::Exception& e) {
    throw std::runtime_error(
        fmt::format("{}: cannot read /decode/{} ({})", path_, name, e.getDetailMsg()));
  }
}

std::optional<std::vector<int>> DumpReader::tokens() const { return token_dataset("tokens"); }

std::optional<std::vector<int>> DumpReader::teacher_tokens() const {
  return token_dataset("teacher_tokens");
}

std::optional<std::string> DumpReader::text() const {
  try {
    const std::optional<H5::DataSet> d = impl_->decode_dataset("text");
    if (!d) return std::nullopt;
    const H5::DataSet& ds = *d;
    try {
      impl_->guard.vet_string_data(ds.getId(), "/decode/text");
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("{}: unreadable dump ({})", path_, e.what()));
    }
    if (ds.getSpace().getSimpleExtentNpoints() != 1)
      throw std::runtime_error(fmt::format("{}: /decode/text holds {} strings, not one", path_,
                                           ds.getSpace().getSimpleExtentNpoints()));
    std::string s;
    const H5::StrType t = ds.getStrType();
    if (!t.isVariableStr() && t.getSize() > impl_->guard.file_size())
      throw std::runtime_error(
          fmt::format("{}: /decode/text declares a {}-byte string in a {}-byte file", path_,
                      t.getSize(), impl_->guard.file_size()));
    if (t.isVariableStr()) {  // may be null: read through the C API (the wrapper would
                              // strlen(NULL))
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
    throw std::runtime_error(
        fmt::format("{}: cannot read /decode/text ({})", path_, e.getDetailMsg()));
  }
}

std::map<std::string, double> DumpReader::timings() const {
  std::map<std::string, double> out;
  try {
    if (!impl_->file.nameExists("timing")) return out;
    impl_->vet(impl_->file, "timing", "/timing");
    H5::Group g = impl_->file.openGroup("timing");
    for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
      const std::string n = g.getObjnameByIdx(i);
      impl_->vet(g, n, "/timing/" + n);
      double v = 0;
      const H5::DataSet ds = g.openDataSet(n);
      check_compact(ds, fmt::format("{}: /timing/{}", path_, n));
      if (ds.getSpace().getSimpleExtentNpoints() != 1)
        throw std::runtime_error(fmt::format("{}: /timing/{} holds {} values, not one", path_, n,
                                             ds.getSpace().getSimpleExtentNpoints()));
      ds.read(&v, H5::PredType::NATIVE_DOUBLE);
      out[n] = v;
    }
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot read /timing ({})", path_, e.getDetailMsg()));
  }
  return out;
}

}  // namespace wb
