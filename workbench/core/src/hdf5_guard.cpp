#include "hdf5_guard.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <tuple>
#include <vector>

namespace wb::detail {

void abandon_failed_hdf5_file(std::initializer_list<hid_t> ids) {
  for (const hid_t id : ids)
    if (id > 0 && H5Iis_valid(id) > 0) H5Iinc_ref(id);
  static std::once_flag once;
  std::call_once(once, [] {
    // Registered after HDF5's own exit handlers, so it runs before them (and before static
    // destructors registered earlier); the outputs were written or removed by then.
    ::on_exit(
        [](int status, void*) {
          std::fflush(nullptr);
          std::_Exit(status);
        },
        nullptr);
  });
}

namespace {

constexpr uint64_t kUndef = std::numeric_limits<uint64_t>::max();
constexpr std::size_t kMaxChunks = 4096;  // continuation chunks of one header (HDF5 writes a few)

uint64_t le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// HDF5's metadata checksum: Bob Jenkins' lookup3 hashlittle with initial value 0 (H5checksum.c).
// HDF5 verifies it on the fractal heaps' and version-2 B-trees' blocks, but when a block fails
// while HDF5 1.10 builds a group's link table from dense storage, it frees the table's unfilled
// entries: so the guard verifies those checksums first.
uint32_t lookup3(const unsigned char* k, std::size_t length) {
  const auto rot = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  uint32_t a, b, c;
  a = b = c = 0xdeadbeefu + static_cast<uint32_t>(length);
  const auto word = [&](const unsigned char* p, std::size_t n) {
    uint32_t v = 0;
    for (std::size_t i = 0; i < n && i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
    return v;
  };
  while (length > 12) {
    a += word(k, 4);
    b += word(k + 4, 4);
    c += word(k + 8, 4);
    a -= c, a ^= rot(c, 4), c += b;
    b -= a, b ^= rot(a, 6), a += c;
    c -= b, c ^= rot(b, 8), b += a;
    a -= c, a ^= rot(c, 16), c += b;
    b -= a, b ^= rot(a, 19), a += c;
    c -= b, c ^= rot(b, 4), b += a;
    length -= 12;
    k += 12;
  }
  if (length == 0) return c;
  a += word(k, std::min<std::size_t>(length, 4));
  if (length > 4) b += word(k + 4, std::min<std::size_t>(length - 4, 4));
  if (length > 8) c += word(k + 8, length - 8);
  c ^= b, c -= rot(b, 14);
  a ^= c, a -= rot(c, 11);
  b ^= a, b -= rot(a, 25);
  c ^= b, c -= rot(b, 16);
  a ^= c, a -= rot(c, 4);
  b ^= a, b -= rot(a, 14);
  c ^= b, c -= rot(b, 24);
  return c;
}

// Whether the u32 at `at` is the checksum of the `at` bytes before it.
bool checksum_ok(const unsigned char* p, std::size_t at) { return lookup3(p, at) == le(p + at, 4); }

// a * b, or kUndef when it overflows.
uint64_t mul_sat(uint64_t a, uint64_t b) { return b != 0 && a > kUndef / b ? kUndef : a * b; }

}  // namespace

Hdf5Guard::File::File(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
Hdf5Guard::File& Hdf5Guard::File::operator=(File&& o) noexcept {
  if (this != &o) {
    if (fd >= 0) ::close(fd);
    fd = o.fd;
    o.fd = -1;
  }
  return *this;
}
Hdf5Guard::File::~File() {
  if (fd >= 0) ::close(fd);
}

bool Hdf5Guard::read_at(uint64_t off, void* dst, std::size_t n) const {
  if (off > file_size_ || n > file_size_ - off) return false;
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(file_.fd, p, n, static_cast<off_t>(off));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;  // an error, or the file ends early (shrunk since)
    p += got;
    off += static_cast<uint64_t>(got);
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

// A global heap collection ("GCOL", version 1, then its size; objects of a 16-byte header {u16
// index, u16 refs, u32 reserved, size} and data padded to 8 bytes, index 0 being the free space
// that ends it), checked the first time a reference names its address: HDF5 1.10 reads a
// collection only through such a reference, and copies an object as long as the collection says.
// nullptr where no collection starts at `addr`; throws where one starts there but does not add up.
const std::map<uint64_t, uint64_t>* Hdf5Guard::collection(uint64_t addr) const {
  if (const auto it = heaps_.find(addr); it != heaps_.end())
    return it->second ? &*it->second : nullptr;
  constexpr std::size_t kHdr = 16;
  unsigned char h[kHdr];
  if (!read_at(addr, h, kHdr) || std::memcmp(h, "GCOL", 4) != 0 || h[4] != 1) {
    heaps_.emplace(addr, std::nullopt);
    return nullptr;
  }
  const auto corrupt = [&](const std::string& why) {
    return std::runtime_error(
        fmt::format("corrupt global heap collection at offset {}: {}", addr, why));
  };
  const uint64_t size = le(h + 8, 8);
  if (size < kHdr || size > file_size_ - addr)
    throw corrupt(fmt::format("size {} past the end of the file", size));
  std::vector<unsigned char> coll(static_cast<std::size_t>(size));
  if (!read_at(addr, coll.data(), coll.size())) throw corrupt("unreadable");
  std::map<uint64_t, uint64_t> present;
  // As HDF5 walks it: a free-space object (index 0) spans `size` bytes, header included
  // (0 would make HDF5 loop for ever); any other spans its header plus its padded data.
  for (uint64_t q = kHdr; q + kHdr <= size;) {
    const unsigned idx = coll[q] | (coll[q + 1] << 8);
    const uint64_t obj = le(coll.data() + q + 8, 8);
    const uint64_t step = idx == 0     ? obj
                          : obj > size ? size + 1
                                       : kHdr + ((obj + 7) & ~uint64_t{7});
    if (step < kHdr || step > size - q)
      throw corrupt(fmt::format("object {} of {} bytes at {} does not fit the {}-byte collection",
                                idx, obj, q, size));
    if (idx != 0) present[idx] = obj;
    q += step;
  }
  return &*heaps_.emplace(addr, std::move(present)).first->second;
}

Hdf5Guard::Hdf5Guard(std::string path) : path_(std::move(path)), file_(path_) {
  if (file_.fd < 0) throw std::runtime_error("cannot be read");
  file_size_ = std::filesystem::file_size(path_);

  // Superblock. Versions 0/1: {signature, versions, sizes of offsets and lengths, B-tree ranks,
  // flags, [v1: 4 bytes]} then base, free-space, end-of-file and driver-info addresses and the
  // root group's symbol table entry {name offset, header address, cache type, reserved, scratch:
  // B-tree and local heap addresses}. Versions 2/3: {signature, version, sizes, flags} then base,
  // extension, end-of-file and root header addresses, checksum.
  unsigned char sb[128] = {};
  const std::size_t got = static_cast<std::size_t>(std::min<uint64_t>(sizeof sb, file_size_));
  if (got < 16 || !read_at(0, sb, got) || std::memcmp(sb, "\211HDF\r\n\032\n", 8) != 0)
    throw std::runtime_error(
        "no HDF5 superblock at offset 0 (a user block before it is not supported in a dump)");
  const unsigned version = sb[8];
  if (version > 3)
    throw std::runtime_error(fmt::format("HDF5 superblock version {} is not supported", version));
  const std::size_t fixed = version == 0 ? 24 : version == 1 ? 28 : 12;
  const std::size_t need = version <= 1 ? fixed + 72 : fixed + 36;
  if (got < need)
    throw std::runtime_error(
        fmt::format("superblock version {} cut short by the end of the file", version));
  const unsigned offsets = version <= 1 ? sb[13] : sb[9], lengths = version <= 1 ? sb[14] : sb[10];
  if (offsets != 8 || lengths != 8)
    throw std::runtime_error(fmt::format(
        "HDF5 with {}-byte offsets and {}-byte lengths is not supported in a dump (8 and 8 are)",
        offsets, lengths));
  const unsigned char* a = sb + fixed;
  if (const uint64_t eof = le(a + 16, 8); eof > file_size_)
    throw std::runtime_error(fmt::format(
        "truncated: the superblock says the file ends at {} bytes, it has {}", eof, file_size_));
  if (le(a, 8) != 0)
    throw std::runtime_error(
        fmt::format("HDF5 base address {} is not supported in a dump (0 is)", le(a, 8)));

  if (version <= 1) {
    const uint64_t driver = le(a + 24, 8);
    if (driver != kUndef) {  // driver-info block {version, 3 reserved, u32 size, 8-byte name, info}
      unsigned char d[16];
      if (!read_at(driver, d, sizeof d) || le(d + 4, 4) > file_size_ - driver - sizeof d)
        throw std::runtime_error(
            fmt::format("driver-info block at offset {} runs past the end of the {}-byte file",
                        driver, file_size_));
    }
    vet_header(le(a + 40, 8), "root group");
    if (le(a + 48, 4) == 1) vet_local_heap(le(a + 64, 8), "root group (superblock's cached entry)");
  } else {
    if (le(a + 8, 8) != kUndef) vet_header(le(a + 8, 8), "superblock extension");
    vet_header(le(a + 24, 8), "root group");
  }
}

void Hdf5Guard::vet_link(hid_t loc, const std::string& name, const std::string& what) {
  H5L_info_t li;
  if (H5Lget_info(loc, name.c_str(), &li, H5P_DEFAULT) < 0)
    throw std::runtime_error(fmt::format("{}: link unreadable", what));
  if (li.type != H5L_TYPE_HARD)
    throw std::runtime_error(
        fmt::format("{}: a soft or external link (a dump holds its own objects)", what));
  vet_header(li.u.address, what);
}

// Object header, version 1: {version 1, reserved, u16 messages, u32 refs, u32 chunk size, pad to
// 16} then messages {u16 type, u16 size, u8 flags, 3 reserved, data}. Version 2: {"OHDR", 2,
// flags, [4 times if flags & 0x20], [2 attribute limits if flags & 0x10], chunk size of
// 1 << (flags & 3) bytes} then messages {u8 type, u16 size, u8 flags, [u16 order if flags & 4],
// data}, then a checksum. Continuation messages (type 0x10: address, length) lead to further
// chunks (version 2: "OCHK", messages, checksum).
void Hdf5Guard::vet_header(uint64_t addr, const std::string& what) {
  if (!vetted_.insert(addr).second) return;
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: object header at offset {}: {}", what, addr, why));
  };
  if (addr >= file_size_) throw fail(fmt::format("past the end of the {}-byte file", file_size_));
  unsigned char pre[40] = {};
  const std::size_t got =
      static_cast<std::size_t>(std::min<uint64_t>(sizeof pre, file_size_ - addr));
  if (!read_at(addr, pre, got)) throw fail("unreadable");
  bool v2 = false;
  std::size_t msg_hdr = 8;
  uint64_t at = 0, size = 0;
  if (got >= 16 && pre[0] == 1) {
    at = addr + 16;
    size = le(pre + 8, 4);
  } else if (got >= 7 && std::memcmp(pre, "OHDR", 4) == 0 && pre[4] == 2) {
    v2 = true;
    const unsigned flags = pre[5];
    const std::size_t pos = 6 + (flags & 0x20 ? 16 : 0) + (flags & 0x10 ? 4 : 0),
                      width = std::size_t{1} << (flags & 3);
    if (got < pos + width) throw fail("cut short by the end of the file");
    at = addr + pos + width;
    size = le(pre + pos, static_cast<int>(width));
    msg_hdr = flags & 0x04 ? 6 : 4;
  } else {
    throw fail("not an object header (version 1, or \"OHDR\" version 2)");
  }
  const uint64_t trailer = v2 ? 4 : 0;  // checksum after the messages of chunk 0
  if (at > file_size_ || size > file_size_ - at || trailer > file_size_ - at - size)
    throw fail(
        fmt::format("its {}-byte chunk runs past the end of the {}-byte file", size, file_size_));

  std::vector<std::pair<uint64_t, uint64_t>> chunks = {{at, size}};
  std::set<uint64_t> seen = {at};
  std::vector<unsigned char> chunk;
  bool vlen_type = false;  // the object's datatype (message 0x03) is variable-length
  std::vector<std::vector<unsigned char>> fills;  // fill-value messages
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    if (c >= kMaxChunks) throw fail(fmt::format("more than {} continuation chunks", kMaxChunks));
    chunk.resize(static_cast<std::size_t>(chunks[c].second));
    if (!read_at(chunks[c].first, chunk.data(), chunk.size())) throw fail("a chunk is unreadable");
    std::size_t pos = 0, end = chunk.size();
    if (v2 && c > 0) {
      if (end < 8 || std::memcmp(chunk.data(), "OCHK", 4) != 0)
        throw fail(fmt::format("continuation chunk at offset {} is not an \"OCHK\" block",
                               chunks[c].first));
      pos = 4;
      end -= 4;
    }
    while (pos + msg_hdr <= end) {
      const uint64_t type = v2 ? chunk[pos] : le(&chunk[pos], 2);
      const uint64_t msize = v2 ? le(&chunk[pos + 1], 2) : le(&chunk[pos + 2], 2);
      const bool shared = ((v2 ? chunk[pos + 3] : chunk[pos + 4]) & 0x02) != 0;
      if (msize > end - pos - msg_hdr)
        throw fail(fmt::format("message of type {} and {} bytes at {} runs past its {}-byte chunk",
                               type, msize, pos, end));
      const unsigned char* m = &chunk[pos + msg_hdr];
      if (type == 0x10) {
        if (msize < 16) throw fail("continuation message too short");
        const uint64_t ca = le(m, 8), cl = le(m + 8, 8);
        if (ca >= file_size_ || cl > file_size_ - ca)
          throw fail(fmt::format(
              "continuation chunk of {} bytes at offset {} runs past the end of the {}-byte file",
              cl, ca, file_size_));
        if (!seen.insert(ca).second)
          throw fail(fmt::format("continuation chunks loop back to offset {}", ca));
        chunks.emplace_back(ca, cl);
      } else if (type == 0x11 && !shared && msize >= 16) {
        vet_local_heap(le(m + 8, 8), what);
      } else if (type == 0x0c && !shared) {
        vet_attribute(m, static_cast<std::size_t>(msize), what);
      } else if ((type == 0x15 || type == 0x02) && !shared) {
        vet_dense(m, static_cast<std::size_t>(msize), type == 0x02, what);
      }
      if (type == 0x03 && !shared) {
        vet_datatype(m, static_cast<std::size_t>(msize), what);
        vlen_type = (m[0] & 0x0f) == 9;
      }
      if ((type == 0x04 || type == 0x05) && !shared) fills.emplace_back(m, m + msize);
      pos += msg_hdr + static_cast<std::size_t>(msize);
    }
  }
  // A variable-length fill value is a heap reference too: any {collection address, index} in it
  // must name an object (its layout is not parsed: the value is the only place one can be).
  if (vlen_type)
    for (const auto& f : fills) scan_heap_refs(f.data(), f.size(), what);
}

// Local heap of a symbol table (group member names): {"HEAP", version 0, 3 reserved, data size,
// free-list offset, data address}. HDF5 allocates the data size before it reads.
void Hdf5Guard::vet_local_heap(uint64_t addr, const std::string& what) const {
  unsigned char h[32];
  if (!read_at(addr, h, sizeof h))
    throw std::runtime_error(
        fmt::format("{}: local heap at offset {} runs past the end of the {}-byte file", what, addr,
                    file_size_));
  if (std::memcmp(h, "HEAP", 4) != 0 || h[4] != 0)
    throw std::runtime_error(
        fmt::format("{}: no local heap (\"HEAP\" version 0) at offset {}", what, addr));
  const uint64_t size = le(h + 8, 8), data = le(h + 24, 8);
  if (data >= file_size_ || size > file_size_ - data)
    throw std::runtime_error(fmt::format(
        "{}: local heap at offset {}: its {}-byte data segment at offset {} runs past the end of "
        "the {}-byte file",
        what, addr, size, data, file_size_));
}

// Attribute message (versions 1-3): {version, flags, u16 name size, u16 datatype size, u16
// dataspace size, [v3: encoding]}, then the three parts (padded to 8 bytes in version 1), then
// the data, which HDF5 1.10 allocates and copies as (elements x datatype size) bytes without
// looking at the message's size.
void Hdf5Guard::vet_attribute(const unsigned char* m, std::size_t size,
                              const std::string& what) const {
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: attribute message: {}", what, why));
  };
  if (size < 8 || m[0] < 1 || m[0] > 3)
    throw fail(
        fmt::format("version {} of {} bytes is not an attribute", size < 1 ? 0 : m[0], size));
  if (m[0] > 1 && (m[1] & 0x03) != 0) return;  // shared datatype or dataspace: sizes live elsewhere
  const auto pad = [&](uint64_t n) { return m[0] == 1 ? (n + 7) & ~uint64_t{7} : n; };
  const uint64_t name = le(m + 2, 2), dt = le(m + 4, 2), ds = le(m + 6, 2);
  const uint64_t type_at = (m[0] == 3 ? 9 : 8) + pad(name), space_at = type_at + pad(dt),
                 data_at = space_at + pad(ds);
  if (dt < 8 || ds < 4 || data_at > size)
    throw fail(fmt::format("its parts ({} bytes) run past its {} bytes", data_at, size));
  const unsigned char* t = m + type_at;
  const unsigned char* s = m + space_at;
  // Dataspace: version 1 {version, rank, flags, 5 reserved, dims}; version 2 {version, rank,
  // flags, type (0 scalar, 1 simple, 2 null), dims}; 8-byte dims.
  const unsigned rank = s[1];
  const uint64_t dims_at = s[0] == 1 ? 8 : 4;
  if ((s[0] != 1 && s[0] != 2) || rank > 32 || dims_at + 8 * uint64_t{rank} > ds)
    throw fail(
        fmt::format("dataspace version {} of rank {} does not fit its {} bytes", s[0], rank, ds));
  uint64_t elements = s[0] == 2 && s[3] == 2 ? 0 : 1;
  for (unsigned k = 0; k < rank; ++k) elements = mul_sat(elements, le(s + dims_at + 8 * k, 8));
  const uint64_t bytes = mul_sat(elements, le(t + 4, 4));
  if (bytes > size - data_at)
    throw fail(fmt::format("{} elements of {} bytes run past its {} bytes of data", elements,
                           le(t + 4, 4), size - data_at));
  vet_datatype(t, static_cast<std::size_t>(dt), what);
  const bool vlen_string = (t[0] & 0x0f) == 9 && (t[1] & 0x0f) == 1;
  if (vlen_string) vet_string_refs(m + data_at, static_cast<std::size_t>(bytes), what);
}

// Datatype {class and version, 3 bytes of class bits, u32 size, properties}. HDF5 1.10 converts
// with whatever the fields say, so they must agree with the size, and numbers are at most 16
// bytes (the largest native type; HDF5 allocates elements x size to convert): integers {bit offset,
// precision} and floats {bit offset, precision, exponent and mantissa positions and sizes, sign
// bit} inside the element; a variable-length type (class 9) is 16 bytes in the file ({u32 length,
// heap address, u32 index}), and a variable-length string's base type is a 1-byte character (HDF5
// allocates a string's length times the base size).
void Hdf5Guard::vet_datatype(const unsigned char* t, std::size_t size, const std::string& what,
                             int depth) const {
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: datatype: {}", what, why));
  };
  if (size < 8) throw fail(fmt::format("message of {} bytes", size));
  const unsigned cls = t[0] & 0x0f;
  const uint64_t bytes = le(t + 4, 4), bits = 8 * bytes;
  if ((cls == 0 || cls == 1) && bytes > 16)  // HDF5 allocates elements x size to convert them
    throw fail(fmt::format("{} of {} bytes (16 at most)", cls == 0 ? "integer" : "float", bytes));
  if (cls == 0 && size >= 12) {
    const uint64_t offset = le(t + 8, 2), precision = le(t + 10, 2);
    if (bytes == 0 || precision == 0 || offset + precision > bits)
      throw fail(
          fmt::format("integer of {} bytes with {} bits at bit {}", bytes, precision, offset));
  } else if (cls == 1 && size >= 20) {
    const uint64_t offset = le(t + 8, 2), precision = le(t + 10, 2), sign = t[2];
    const uint64_t exp_at = t[12], exp_bits = t[13], man_at = t[14], man_bits = t[15];
    if (bytes == 0 || precision == 0 || offset + precision > bits || sign >= bits ||
        exp_bits == 0 || exp_at + exp_bits > bits || man_at + man_bits > bits)
      throw fail(
          fmt::format("float of {} bytes with inconsistent fields (precision {} at bit {}, sign "
                      "bit {}, exponent {} "
                      "at {}, mantissa {} at {})",
                      bytes, precision, offset, sign, exp_bits, exp_at, man_bits, man_at));
  } else if (cls == 9) {
    if (bytes != 16)
      throw fail(fmt::format("variable-length type of {} bytes in the file (16 expected)", bytes));
    if (size < 16 || depth > 8) throw fail("variable-length type without a base type");
    const bool string = (t[1] & 0x0f) == 1;
    if (string && le(t + 12, 4) != 1)
      throw fail(fmt::format("a variable-length string of {}-byte characters", le(t + 12, 4)));
    vet_datatype(t + 8, size - 8, what, depth + 1);
  }
}

// Variable-length string data: references {u32 length, address, u32 index}; each must name a
// collection's object of that length (HDF5 allocates the length before it looks at the heap, and
// 1.10 reads whatever index a reference names).
void Hdf5Guard::vet_string_refs(const unsigned char* data, std::size_t size,
                                const std::string& what) const {
  for (std::size_t i = 0; i + 16 <= size; i += 16) {
    const uint64_t len = le(data + i, 4), addr = le(data + i + 4, 8), idx = le(data + i + 12, 4);
    if (len == 0 && addr == 0) continue;  // empty string
    const auto* h = collection(addr);
    const auto obj = h == nullptr ? decltype(h->end()){} : h->find(idx);
    if (h == nullptr || obj == h->end() || obj->second != len)
      throw std::runtime_error(fmt::format(
          "{}: a string of {} bytes refers to object {} at offset {}, which is not a global "
          "heap object of that size",
          what, len, idx, addr));
  }
}

// Any {collection address, u32 index} pair in `data` must name an object that collection holds.
void Hdf5Guard::scan_heap_refs(const unsigned char* data, std::size_t size,
                               const std::string& what) const {
  for (std::size_t i = 0; i + 12 <= size; ++i)
    if (const auto* h = collection(le(data + i, 8)); h != nullptr) {
      const uint64_t idx = le(data + i + 8, 4);
      const auto obj = h->find(idx);
      if (obj == h->end())
        throw std::runtime_error(fmt::format(
            "{}: a string refers to object {} of the global heap collection at offset {}, "
            "which holds no such object",
            what, idx, le(data + i, 8)));
      if (i >= 4 && le(data + i - 4, 4) != obj->second)
        throw std::runtime_error(
            fmt::format("{}: a string of {} bytes refers to an object of {} bytes", what,
                        le(data + i - 4, 4), obj->second));
    }
}

void Hdf5Guard::vet_string_data(hid_t dataset, const std::string& what) const {
  const haddr_t off = H5Dget_offset(dataset);
  unsigned char ref[16];
  if (off != HADDR_UNDEF && read_at(off, ref, sizeof ref)) vet_string_refs(ref, sizeof ref, what);
}

// ---------------------------------------------------------------------------------------------
// Dense storage: attributes past an object's compact limit (attribute info message 0x15) and
// the links of a new-style group past its compact limit (link info message 0x02) live in a
// fractal heap, indexed by name (and optionally creation order) in version-2 B-trees. HDF5 1.10
// allocates a heap block or a B-tree node as large as their headers say before it reads one,
// and decodes the attribute (link) messages it finds in the heap as it does compact ones: every
// size is checked here, and every message the B-trees name is vetted like a compact one.

// Info message (0x15 attributes, 0x02 links): {version 0, flags, [max creation index: u16 for
// attributes, u64 for links, if flags & 1], fractal heap address, name index B-tree address,
// [creation order index B-tree address if flags & 2]}.
void Hdf5Guard::vet_dense(const unsigned char* m, std::size_t size, bool links,
                          const std::string& what) {
  const std::string kind = links ? "link info" : "attribute info";
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: {} message: {}", what, kind, why));
  };
  if (size < 2 || m[0] != 0) throw fail(fmt::format("version {} is not 0", size < 1 ? 0 : m[0]));
  const unsigned flags = m[1];
  std::size_t pos = 2 + (flags & 1 ? (links ? 8 : 2) : 0);
  if (pos + 16 + (flags & 2 ? 8 : 0) > size)
    throw fail(fmt::format("{} bytes are too short for its addresses", size));
  const uint64_t heap = le(m + pos, 8), names = le(m + pos + 8, 8),
                 order = flags & 2 ? le(m + pos + 16, 8) : kUndef;
  if (heap == kUndef) {  // compact storage: nothing in a heap
    if (names != kUndef || order != kUndef) throw fail("B-trees without a heap");
    return;
  }
  const FractalHeap h = vet_fractal_heap(heap, what + " (" + kind + " heap)");
  for (const uint64_t tree : {names, order})
    if (tree != kUndef) vet_btree2(tree, h, links, what + " (" + kind + " index)");
}

// Fractal heap header: {"FRHP", version 0, u16 heap ID length, u16 I/O filter length, flags,
// u32 max managed object size, next huge ID, huge-object B-tree address, free space, free-space
// manager address, managed space, allocated managed space, iterator offset, managed objects,
// huge size, huge objects, tiny size, tiny objects (8 bytes each), u16 table width, starting
// block size, max direct block size, u16 max heap size (bits), u16 starting rows, root block
// address, u16 current rows of the root indirect block, [filter info], checksum}.
Hdf5Guard::FractalHeap Hdf5Guard::vet_fractal_heap(uint64_t addr, const std::string& what) {
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: fractal heap at offset {}: {}", what, addr, why));
  };
  unsigned char b[146];
  if (!read_at(addr, b, sizeof b)) throw fail("runs past the end of the file");
  if (std::memcmp(b, "FRHP", 4) != 0 || b[4] != 0)
    throw fail("not a version-0 \"FRHP\" fractal heap header");
  if (le(b + 7, 2) == 0 && !checksum_ok(b, 142)) throw fail("checksum mismatch");
  FractalHeap h;
  h.id_len = le(b + 5, 2);
  const uint64_t filters = le(b + 7, 2), max_obj = le(b + 10, 4), huge = le(b + 86, 8);
  h.width = le(b + 110, 2);
  h.start = le(b + 112, 8);
  h.max_direct = le(b + 120, 8);
  const uint64_t heap_bits = le(b + 128, 2), root = le(b + 132, 8), rows = le(b + 140, 2);
  const auto pow2 = [](uint64_t v) { return v != 0 && (v & (v - 1)) == 0; };
  // Filtered heaps and huge objects (stored outside the heap, found through a third B-tree) are
  // never written for attributes and links of a dump: refused rather than trusted.
  if (filters != 0) throw fail("I/O filters on a fractal heap are not supported");
  if (huge != 0) throw fail(fmt::format("{} huge objects are not supported", huge));
  // The largest direct block is a parameter (HDF5 caps it at 2^31 bytes); the blocks the heap
  // has are checked against the file one by one below.
  if (!pow2(h.width) || h.width > 65536 || !pow2(h.start) || !pow2(h.max_direct) ||
      h.start > h.max_direct || h.max_direct > (uint64_t{1} << 31) || h.start < 64)
    throw fail(fmt::format(
        "a doubling table of width {}, starting block {} and largest direct block {} bytes (powers "
        "of 2, the start no larger than the largest, at most 2^31)",
        h.width, h.start, h.max_direct));
  if (heap_bits < 8 || heap_bits > 64 || max_obj > h.max_direct || h.id_len < 1 || h.id_len > 64)
    throw fail(fmt::format("heap of {} bits, objects up to {} bytes, IDs of {} bytes", heap_bits,
                           max_obj, h.id_len));
  h.off_bytes = (heap_bits + 7) / 8;
  const auto log2 = [](uint64_t v) {
    unsigned n = 0;
    while (v >>= 1) ++n;
    return n;
  };
  h.len_bytes = std::min<uint64_t>((log2(h.max_direct) + 7) / 8, log2(max_obj) / 8 + 1);
  h.checksummed = (b[9] & 0x02) != 0;
  if (root == kUndef) {
    if (rows != 0) throw fail("rows of a root block that does not exist");
  } else if (rows == 0) {  // the root is a direct block of the starting size
    vet_heap_block(h, root, 0, h.start, what);
  } else {
    vet_heap_indirect(h, root, 0, rows, 0, what);
  }
  return h;
}

// Direct block: {"FHDB", version 0, heap header address, block offset (heap offset bytes),
// [checksum if the heap checksums blocks], objects}. Its objects are at heap offsets
// [offset, offset + size).
void Hdf5Guard::vet_heap_block(FractalHeap& h, uint64_t addr, uint64_t offset, uint64_t size,
                               const std::string& what) {
  if (addr == kUndef) return;  // not allocated yet
  auto fail = [&](const std::string& why) {
    return std::runtime_error(
        fmt::format("{}: fractal heap direct block at offset {}: {}", what, addr, why));
  };
  if (addr >= file_size_ || size > file_size_ - addr)
    throw fail(fmt::format("its {} bytes run past the end of the {}-byte file", size, file_size_));
  const uint64_t header = 4 + 1 + 8 + h.off_bytes + (h.checksummed ? 4 : 0);
  if (size < header) throw fail(fmt::format("{} bytes hold no block header", size));
  std::vector<unsigned char> b(static_cast<std::size_t>(h.checksummed ? size : header));
  if (!read_at(addr, b.data(), b.size()) || std::memcmp(b.data(), "FHDB", 4) != 0 || b[4] != 0)
    throw fail("not a version-0 \"FHDB\" block");
  if (h.checksummed) {  // over the whole block, its checksum field read as 0
    const std::size_t at = static_cast<std::size_t>(header - 4);
    const uint64_t stored = le(&b[at], 4);
    std::fill(b.begin() + static_cast<std::ptrdiff_t>(at),
              b.begin() + static_cast<std::ptrdiff_t>(at + 4), 0);
    if (lookup3(b.data(), b.size()) != stored) throw fail("checksum mismatch");
  }
  if (h.blocks.size() >= kMaxHeapBlocks)
    throw fail(fmt::format("more than {} blocks", kMaxHeapBlocks));
  h.blocks.push_back({offset, size, addr});
}

// Indirect block of `rows` rows: {"FHIB", version 0, heap header address, block offset, child
// addresses: `width` per row, direct blocks for the rows whose block size is at most the largest
// direct block, indirect blocks after; checksum}. Row 0 and 1 blocks are the starting size, each
// later row twice the one before; a child indirect block of block size s has log2(s) -
// log2(start x width) + 1 rows.
void Hdf5Guard::vet_heap_indirect(FractalHeap& h, uint64_t addr, uint64_t offset, uint64_t rows,
                                  int depth, const std::string& what) {
  if (addr == kUndef) return;
  auto fail = [&](const std::string& why) {
    return std::runtime_error(
        fmt::format("{}: fractal heap indirect block at offset {}: {}", what, addr, why));
  };
  if (depth > 8 || rows > 64) throw fail(fmt::format("{} rows at depth {}", rows, depth));
  if (!h.indirect.insert(addr).second) throw fail("indirect blocks loop back to it");
  const uint64_t entries = rows * h.width, prefix = 4 + 1 + 8 + h.off_bytes;
  const uint64_t bytes = prefix + entries * 8 + 4;
  if (addr >= file_size_ || bytes > file_size_ - addr)
    throw fail(
        fmt::format("its {} entries run past the end of the {}-byte file", entries, file_size_));
  std::vector<unsigned char> b(static_cast<std::size_t>(bytes));
  if (!read_at(addr, b.data(), b.size())) throw fail("unreadable");
  if (std::memcmp(b.data(), "FHIB", 4) != 0 || b[4] != 0)
    throw fail("not a version-0 \"FHIB\" block");
  if (!checksum_ok(b.data(), b.size() - 4)) throw fail("checksum mismatch");
  uint64_t at = offset;
  for (uint64_t r = 0; r < rows; ++r) {
    const uint64_t block = r < 2 ? h.start : h.start << std::min<uint64_t>(r - 1, 63);
    if (block == 0) throw fail(fmt::format("row {} of blocks of 0 bytes", r));
    for (uint64_t c = 0; c < h.width; ++c) {
      const uint64_t child = le(&b[static_cast<std::size_t>(prefix + (r * h.width + c) * 8)], 8);
      if (block <= h.max_direct) {
        vet_heap_block(h, child, at, block, what);
      } else {
        unsigned n = 0;
        for (uint64_t v = block / (h.start * h.width); v > 1; v >>= 1) ++n;
        vet_heap_indirect(h, child, at, n + 1, depth + 1, what);
      }
      at += block;
    }
  }
}

// Version-2 B-tree header: {"BTHD", version 0, type, u32 node size, u16 record size, u16 depth,
// split and merge percentages, root node address, u16 records in the root, u64 records in all,
// checksum}. Leaves {"BTLF", 0, type, records, checksum}; internal nodes {"BTIN", 0, type,
// records, children {address, records in it (as few bytes as its level's most needs), [records
// below it, if depth > 1]}, checksum}. Records name a heap object by its heap ID: link name
// index (type 5) {u32 hash, ID}, link creation order (6) {u64 order, ID}, attribute name (8)
// and creation order (9) {ID, flags, u32 order, [u32 hash]}.
void Hdf5Guard::vet_btree2(uint64_t addr, const FractalHeap& h, bool links,
                           const std::string& what) {
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: v2 B-tree at offset {}: {}", what, addr, why));
  };
  unsigned char b[38];
  if (!read_at(addr, b, sizeof b)) throw fail("runs past the end of the file");
  if (std::memcmp(b, "BTHD", 4) != 0 || b[4] != 0)
    throw fail("not a version-0 \"BTHD\" B-tree header");
  if (!checksum_ok(b, 34)) throw fail("checksum mismatch");
  const unsigned type = b[5];
  const uint64_t node = le(b + 6, 4), rec = le(b + 10, 2), depth = le(b + 12, 2),
                 root = le(b + 16, 8), root_n = le(b + 24, 2);
  const uint64_t id_at = type == 5 ? 4 : type == 6 ? 8 : 0;
  const bool known = links ? (type == 5 || type == 6) : (type == 8 || type == 9);
  if (!known)
    throw fail(fmt::format("type {} does not index {}", type, links ? "links" : "attributes"));
  if (node < 64 || node > file_size_ || rec < id_at + h.id_len || rec > node - 10 || depth > 16)
    throw fail(
        fmt::format("nodes of {} bytes, records of {} bytes, depth {} do not fit the "
                    "{}-byte file",
                    node, rec, depth, file_size_));
  // Per level: the most records a node holds, the most below it, and their encoded widths.
  const auto enc = [](uint64_t v) {
    unsigned n = 0;
    while (v >>= 1) ++n;
    return uint64_t{n / 8 + 1};
  };
  std::vector<uint64_t> max_n(depth + 1), cum(depth + 1), cum_bytes(depth + 1, 0);
  max_n[0] = (node - 10) / rec;
  cum[0] = max_n[0];
  const uint64_t n_bytes = enc(max_n[0]);
  for (uint64_t u = 1; u <= depth; ++u) {
    const uint64_t ptr = 8 + n_bytes + (u > 1 ? cum_bytes[u - 1] : 0);
    if (node < 10 + ptr + rec + ptr) throw fail("nodes too small for an internal level");
    max_n[u] = (node - (10 + ptr)) / (rec + ptr);
    cum[u] = mul_sat(max_n[u] + 1, cum[u - 1]);
    cum[u] = cum[u] > kUndef - max_n[u] ? kUndef : cum[u] + max_n[u];
    cum_bytes[u] = enc(cum[u]);
  }
  if (root == kUndef) return;
  std::size_t nodes = 0;
  std::set<uint64_t> seen;
  std::vector<unsigned char> buf(static_cast<std::size_t>(node));
  // (address, records, level); level 0 a leaf.
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> todo = {{root, root_n, depth}};
  while (!todo.empty()) {
    const auto [at, n, level] = todo.back();
    todo.pop_back();
    if (++nodes > kMaxTreeNodes) throw fail(fmt::format("more than {} nodes", kMaxTreeNodes));
    if (!seen.insert(at).second) throw fail(fmt::format("nodes loop back to offset {}", at));
    if (at >= file_size_ || node > file_size_ - at)
      throw fail(
          fmt::format("a {}-byte node at offset {} runs past the end of the file", node, at));
    if (n > max_n[level])
      throw fail(fmt::format("a node at offset {} claims {} records, at most {} fit", at, n,
                             max_n[level]));
    if (!read_at(at, buf.data(), buf.size())) throw fail("a node is unreadable");
    const char* sig = level == 0 ? "BTLF" : "BTIN";
    if (std::memcmp(buf.data(), sig, 4) != 0 || buf[4] != 0 || buf[5] != type)
      throw fail(
          fmt::format("the node at offset {} is not a \"{}\" node of type {}", at, sig, type));
    // The checksum follows the records (a leaf) or the child pointers (an internal node).
    const uint64_t ptr = 8 + n_bytes + (level > 1 ? cum_bytes[level - 1] : 0);
    const uint64_t sum_at = 6 + n * rec + (level == 0 ? 0 : (n + 1) * ptr);
    if (sum_at + 4 > node) throw fail("child pointers run past the node");
    if (!checksum_ok(buf.data(), static_cast<std::size_t>(sum_at)))
      throw fail(fmt::format("the node at offset {}: checksum mismatch", at));
    for (uint64_t k = 0; k < n; ++k)
      vet_heap_object(h, &buf[static_cast<std::size_t>(6 + k * rec + id_at)], links, what);
    if (level == 0) continue;
    std::size_t p = static_cast<std::size_t>(6 + n * rec);
    for (uint64_t k = 0; k <= n; ++k, p += static_cast<std::size_t>(ptr))
      todo.emplace_back(le(&buf[p], 8), le(&buf[p + 8], static_cast<int>(n_bytes)), level - 1);
  }
}

// A heap ID: {version 0 and type in its first byte (0 managed, 1 huge, 2 tiny), then for a
// managed object its heap offset and length, for a tiny one its length - 1 in the low nibble and
// the object itself}. The object is an attribute message (attributes) or a link message (links).
void Hdf5Guard::vet_heap_object(const FractalHeap& h, const unsigned char* id, bool links,
                                const std::string& what) {
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("{}: fractal heap object: {}", what, why));
  };
  const unsigned type = (id[0] >> 4) & 0x03;
  if ((id[0] & 0xc0) != 0) throw fail(fmt::format("heap ID version {}", id[0] >> 6));
  std::vector<unsigned char> obj;
  if (type == 2) {
    const uint64_t len = (id[0] & 0x0f) + 1;
    if (1 + len > h.id_len)
      throw fail(fmt::format("tiny object of {} bytes in a {}-byte ID", len, h.id_len));
    obj.assign(id + 1, id + 1 + len);
  } else if (type == 0) {
    if (1 + h.off_bytes + h.len_bytes > h.id_len) throw fail("heap ID too short");
    const uint64_t off = le(id + 1, static_cast<int>(h.off_bytes)),
                   len = le(id + 1 + h.off_bytes, static_cast<int>(h.len_bytes));
    const auto blk = std::find_if(h.blocks.begin(), h.blocks.end(), [&](const HeapBlock& b) {
      return off >= b.offset && off - b.offset < b.size;
    });
    if (blk == h.blocks.end())
      throw fail(fmt::format("offset {} is in no direct block of the heap", off));
    const uint64_t header = 4 + 1 + 8 + h.off_bytes + (h.checksummed ? 4 : 0);
    if (off - blk->offset < header || len == 0 || len > blk->size - (off - blk->offset))
      throw fail(
          fmt::format("{} bytes at offset {} do not fit its {}-byte block", len, off, blk->size));
    obj.resize(static_cast<std::size_t>(len));
    if (!read_at(blk->addr + (off - blk->offset), obj.data(), obj.size())) throw fail("unreadable");
  } else {
    throw fail(fmt::format("heap ID type {} (huge objects are not supported)", type));
  }
  if (!links) {
    vet_attribute(obj.data(), obj.size(), what);
    return;
  }
  // Link message: {version 1, flags, [u8 type if flags & 8], [u64 order if flags & 4], [u8
  // charset if flags & 0x10], name length (1 << (flags & 3) bytes), name, then a hard link's
  // address or another link's u16 length and value}.
  const std::size_t n = obj.size();
  if (n < 2 || obj[0] != 1) throw fail("not a version-1 link message");
  const unsigned flags = obj[1];
  std::size_t p = 2;
  const std::size_t w = std::size_t{1} << (flags & 3);
  const std::size_t opt = (flags & 0x08 ? 1 : 0) + (flags & 0x04 ? 8 : 0) + (flags & 0x10 ? 1 : 0);
  if (p + opt + w > n) throw fail("link message cut short");
  const unsigned ltype = flags & 0x08 ? obj[p] : 0;
  p += opt;
  const uint64_t name = le(&obj[p], static_cast<int>(w));
  p += w;
  if (name == 0 || name > n - p)
    throw fail(fmt::format("a {}-byte link name runs past its {}-byte message", name, n));
  p += static_cast<std::size_t>(name);
  const uint64_t rest = ltype == 0 ? 8 : (p + 2 <= n ? 2 + le(&obj[p], 2) : kUndef);
  if (rest > n - p) throw fail("the link's target runs past its message");
  if (ltype == 0 && le(&obj[p], 8) >= file_size_)
    throw fail(fmt::format("hard link to offset {} past the end of the {}-byte file",
                           le(&obj[p], 8), file_size_));
}

}  // namespace wb::detail
