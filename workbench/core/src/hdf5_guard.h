// Checks on an HDF5 file's own structure, made before HDF5 1.10 reads it (private to wb_core).
//
// HDF5 1.10 trusts sizes written in the file: it allocates an object header chunk, a local heap,
// a driver-info block or an attribute's data as large as the file says, and only then finds the
// read runs past the end; it copies a global heap object as long as its collection says and
// reads a string through whatever heap index a reference names. A dump is other people's output,
// so every such size is checked against the file before HDF5 sees it:
//   * open: the superblock (at offset 0, 8-byte offsets and lengths, base address 0: what every
//     HDF5 writer produces unless told otherwise), its driver-info block and extension, and the
//     root group's object header;
//   * before each object is opened (vet_link): that object's header, version 1 or 2, all its
//     chunks, its symbol table's local heap, each attribute's data size and string references;
//     and where its attributes or links are in dense storage (attribute / link info messages),
//     the fractal heap holding them (header, doubling table, every direct and indirect block),
//     the version-2 B-trees indexing them (every node), each of those blocks' checksum (HDF5 1.10
//     frees unfilled entries of a group's link table when one fails while it builds the table),
//     and every attribute or link message the B-trees name, vetted as a compact one would be;
//   * each global heap collection a string reference names, the first time one names it (HDF5
//     reads a collection only through a reference); a collection nothing names is never read,
//     by HDF5 or here (tap data that happens to hold the signature "GCOL" is just data).
// Every failure is a std::runtime_error naming what and where ("object header at offset N: ...").
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace wb::detail {

// After an HDF5 write failed (a full disk, a file size limit): HDF5 1.10 closing such a file, or
// terminating at exit with it still open, dereferences freed state (seen: a segfault in
// H5F__close_cb during H5close). Keeps each valid id of `ids` (the failing file's open objects)
// open for good, so that no destructor closes it, and has the process's exit skip HDF5's
// termination (an on_exit handler, registered once, that flushes stdio and _exits with the
// status). The caller removes the file.
void abandon_failed_hdf5_file(std::initializer_list<hid_t> ids);

class Hdf5Guard {
 public:
  Hdf5Guard() = default;
  explicit Hdf5Guard(std::string path);  // checks the superblock and the root group

  // The hard link `name` under `loc`: refuses soft and external links and checks the header it
  // points to (each header once per guard). `what` names it in messages.
  void vet_link(hid_t loc, const std::string& name, const std::string& what);
  // A contiguous dataset holding one variable-length string: its reference must name a heap object.
  void vet_string_data(hid_t dataset, const std::string& what) const;
  uint64_t file_size() const { return file_size_; }
  // Exactly n bytes at off (pread, safe from several threads); false past the end of the file
  // or on a read error.
  bool read_at(uint64_t off, void* dst, std::size_t n) const;

 private:
  void vet_header(uint64_t addr, const std::string& what);
  // Dense attribute and link storage (hdf5_guard.cpp, "Dense storage").
  struct HeapBlock {
    uint64_t offset, size, addr;  // heap offsets [offset, offset + size) at file offset addr
  };
  struct FractalHeap {
    uint64_t id_len = 0, width = 0, start = 0, max_direct = 0, off_bytes = 0, len_bytes = 0;
    bool checksummed = false;
    std::vector<HeapBlock> blocks;
    std::set<uint64_t> indirect;
  };
  static constexpr std::size_t kMaxHeapBlocks = 1 << 16;
  static constexpr std::size_t kMaxTreeNodes = 1 << 16;
  void vet_dense(const unsigned char* m, std::size_t size, bool links, const std::string& what);
  FractalHeap vet_fractal_heap(uint64_t addr, const std::string& what);
  void vet_heap_block(FractalHeap& h, uint64_t addr, uint64_t offset, uint64_t size,
                      const std::string& what);
  void vet_heap_indirect(FractalHeap& h, uint64_t addr, uint64_t offset, uint64_t rows, int depth,
                         const std::string& what);
  void vet_btree2(uint64_t addr, const FractalHeap& h, bool links, const std::string& what);
  void vet_heap_object(const FractalHeap& h, const unsigned char* id, bool links,
                       const std::string& what);
  void vet_local_heap(uint64_t addr, const std::string& what) const;
  void vet_datatype(const unsigned char* t, std::size_t size, const std::string& what,
                    int depth = 0) const;
  void vet_attribute(const unsigned char* m, std::size_t size, const std::string& what) const;
  void vet_string_refs(const unsigned char* data, std::size_t size, const std::string& what) const;
  void scan_heap_refs(const unsigned char* data, std::size_t size, const std::string& what) const;

  // The file, read with pread: a header check reads a few bytes here and there, which a stream
  // would turn into a seek and a buffer refill each.
  struct File {
    int fd = -1;
    File() = default;
    explicit File(const std::string& path);
    File(File&& o) noexcept : fd(o.fd) { o.fd = -1; }
    File& operator=(File&& o) noexcept;
    ~File();
  };

  std::string path_;
  File file_;
  uint64_t file_size_ = 0;
  const std::map<uint64_t, uint64_t>* collection(uint64_t addr) const;
  // Global heap collections, checked when first named: address -> object index -> object size
  // (nullopt: no collection starts there).
  mutable std::map<uint64_t, std::optional<std::map<uint64_t, uint64_t>>> heaps_;
  std::set<uint64_t> vetted_;
};

}  // namespace wb::detail
