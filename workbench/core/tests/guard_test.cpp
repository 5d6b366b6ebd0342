// The dump reader's own checks and reads: the HDF5 guard's global heap check (a collection is
// checked when a string reference first names it: a corrupt collection that a string names is
// refused with the guard's message; tap data that happens to hold the collection signature,
// "GCOL", version 1, an impossible size, is data and opens, where a scan of the whole file for
// the signature refused it), and read_rows' own reads of the chunks against HDF5's.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "wb/core/dump.h"
#include "wb/core/taps.h"
#include "wb/core/util.h"
#include "wb/testing/scratch.h"

namespace {

namespace fs = std::filesystem;

wb::DumpMeta nano_meta() {
  wb::DumpMeta m;
  m.implementation = "test";
  m.precision = "float32";
  m.model_sha256 = "00";
  m.dims = wb::ModelDims::preset("nano");
  m.tool_version = wb::tool_version();
  m.created = wb::utc_now_iso8601();
  return m;
}

// A dump holding only `encoder.ln_post`, its values given as raw bytes (zero-padded).
std::string write_dump(const fs::path& path, const std::string& bytes) {
  const wb::ModelDims d = wb::ModelDims::preset("nano");
  std::vector<float> v(static_cast<std::size_t>(d.n_audio_ctx * d.n_audio_state), 0.0f);
  std::memcpy(v.data(), bytes.data(), std::min(bytes.size(), v.size() * sizeof(float)));
  wb::DumpWriter w(path.string(), nano_meta(), wb::TapSelector("encoder.ln_post"));
  wb::report(&w, "encoder.ln_post", {d.n_audio_ctx, d.n_audio_state}, wb::DType::f32, v.data());
  w.finish();
  return path.string();
}

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void spit(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

std::string open_error(const std::string& path) {
  try {
    wb::DumpReader r(path);
    (void)r.meta();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE(
    "global heap: tap data holding the signature is data; a named corrupt collection is refused") {
  const wb::testing::ScratchDir tmp("wb-guard-test");
  // "GCOL", version 1, then a size of 2^60 at offset 8: a collection header no file can hold.
  std::string fake("GCOL\x01\0\0\0", 8);
  const uint64_t huge = uint64_t{1} << 60;
  fake.append(reinterpret_cast<const char*>(&huge), 8);
  const std::string data = write_dump(tmp.path() / "data.h5", fake);
  const std::string file = slurp(data);
  const std::size_t planted = file.find(fake);
  REQUIRE(planted != std::string::npos);
  // The file's own collection(s): every other "GCOL" (the attributes' strings live there).
  std::vector<std::size_t> real;
  for (std::size_t at = file.find("GCOL"); at != std::string::npos; at = file.find("GCOL", at + 1))
    if (at != planted) real.push_back(at);
  REQUIRE(!real.empty());

  SUBCASE("the planted signature in tap data opens, values intact") {
    CHECK(open_error(data).empty());
    const wb::Tensor t = wb::DumpReader(data).read("encoder.ln_post");
    CHECK(std::memcmp(t.raw(), fake.data(), fake.size()) == 0);
  }
  SUBCASE("a named collection whose size runs past the file is refused") {
    std::string bad = file;
    std::memcpy(&bad[real.front() + 8], &huge, 8);
    const std::string p = (tmp.path() / "size.h5").string();
    spit(p, bad);
    const std::string e = open_error(p);
    CHECK(e.find("corrupt global heap collection at offset " + std::to_string(real.front())) !=
          std::string::npos);
  }
  SUBCASE("a named collection whose first object does not fit is refused") {
    std::string bad = file;
    const uint64_t obj = uint64_t{1} << 40;
    std::memcpy(&bad[real.front() + 16 + 8], &obj, 8);  // the first object's size
    const std::string p = (tmp.path() / "object.h5").string();
    spit(p, bad);
    const std::string e = open_error(p);
    CHECK(e.find("global heap") != std::string::npos);
    CHECK(e.find(std::to_string(real.front())) != std::string::npos);
  }
  SUBCASE("a reference to where no collection starts is refused") {
    std::string bad = file;
    bad[real.front()] = 'X';  // the signature gone: the strings' references now name nothing
    const std::string p = (tmp.path() / "gone.h5").string();
    spit(p, bad);
    CHECK(open_error(p).find("which is not a global heap object of that size") !=
          std::string::npos);
  }
}

TEST_CASE("read_rows: rows read from the chunks directly equal HDF5's read, at any row range") {
  const wb::testing::ScratchDir tmp("wb-rows-test");
  const wb::ModelDims d = wb::ModelDims::preset("nano");
  const int64_t rows = d.n_audio_ctx, cols = d.n_audio_state;
  std::vector<float> v(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 1e3);  // every bit varies
  std::string bytes(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  const std::string path = write_dump(tmp.path() / "rows.h5", bytes);
  const wb::DumpReader r(path);
  const wb::Tensor whole = r.read("encoder.ln_post", wb::DType::f64);  // through HDF5
  // Row ranges that start and end inside chunks, span chunk edges (DumpWriter's chunks hold
  // 2^16 / 64 = 1024 rows of nano's 64 values) and the ragged last chunk.
  const std::pair<int64_t, int64_t> ranges[] = {{0, 1},    {0, rows},   {1023, 2}, {1000, 500},
                                                {5, 1024}, {1024, 476}, {1499, 1}, {777, 0}};
  std::vector<double> out;
  for (const auto& [row0, n] : ranges) {
    CAPTURE(row0);
    CAPTURE(n);
    r.read_rows("encoder.ln_post", row0, n, out);
    REQUIRE(out.size() == static_cast<std::size_t>(n * cols));
    CHECK(std::memcmp(out.data(), whole.f64() + row0 * cols, out.size() * sizeof(double)) == 0);
  }
  // The file cut short after it was opened: the rows past the cut are an error, not garbage.
  fs::resize_file(path, fs::file_size(path) / 2);
  try {
    r.read_rows("encoder.ln_post", rows - 10, 10, out);
    FAIL("read past the end of a shortened file");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("shorter than when it was opened") != std::string::npos);
  }
}
