// The comparator on real HDF5 dumps written by wb::DumpWriter.
#include "wb/core/dump.h"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include "wb/compare/compare.h"
#include "wb/testing/paths.h"
#include "wb/testing/scratch.h"

using namespace wb::cmp;
namespace fs = std::filesystem;

namespace {

// Writes every encoder tap of shrunk nano dims; `edit(name, values)` may change a tap.
template <class Edit>
std::string write_dump(const fs::path& dir, const std::string& file, wb::DType store, Edit edit,
                       const std::string& precision = "float32") {
  wb::DumpMeta meta;
  meta.implementation = "test";
  meta.precision = precision;
  meta.model_sha256 = std::string(64, 'c');
  meta.dims = wb::ModelDims::preset("nano");
  meta.dims.n_audio_ctx = 30;
  const std::string path = (dir / file).string();
  wb::DumpOptions opts;
  opts.store = store;
  wb::DumpWriter w(path, meta, wb::TapSelector("all"), opts);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& t : wb::encoder_taps(meta.dims)) {
    std::vector<float> v(static_cast<std::size_t>(wb::shape_numel(t.shape)));
    for (float& x : v) x = nd(rng);
    edit(t.name, v);
    w.put(t.name, wb::TapView{t.shape, wb::DType::f32, v.data()});
  }
  w.finish();
  return path;
}

}  // namespace

TEST_CASE("dump files: self-compare, NaN/Inf, float16 storage") {
  const wb::testing::ScratchDir tmp("wb-compare-test");
  const auto ref = write_dump(tmp.path(), "ref.h5", wb::DType::f32,
                              [](const std::string&, std::vector<float>&) {});
  CompareOptions o;
  auto r = compare_files(ref, ref, "", o);
  CHECK(exit_status(r) == 0);
  for (const auto& t : r.taps) CHECK(t.m.rel_l2 == 0.0);

  const auto bad = write_dump(tmp.path(), "nan.h5", wb::DType::f32,
                              [](const std::string& n, std::vector<float>& v) {
                                if (n == "encoder.blocks.1.mlp.fc1") {
                                  v[5] = std::numeric_limits<float>::quiet_NaN();
                                  v[6] = std::numeric_limits<float>::infinity();
                                }
                              });
  r = compare_files(ref, bad, "", o);
  CHECK(exit_status(r) == 1);
  REQUIRE(r.first_divergence >= 0);
  const auto& t = r.taps[static_cast<std::size_t>(r.first_divergence)];
  CHECK(t.name == "encoder.blocks.1.mlp.fc1");
  CHECK(t.m.nan_mismatch == 1);
  CHECK(t.m.inf_mismatch == 1);
  CHECK(t.m.cand.nan == 1);
  CHECK(t.m.cand.pos_inf == 1);
  const auto swapped = compare_files(bad, ref, "", o);
  CHECK(exit_status(swapped) == 1);
  CHECK(swapped.taps[static_cast<std::size_t>(swapped.first_divergence)].name == t.name);

  // float16 storage of the same values: judged by the bfloat16 profile, it passes.
  const auto half = write_dump(tmp.path(), "half.h5", wb::DType::f16,
                               [](const std::string&, std::vector<float>&) {});
  o.profile = ToleranceProfile::load(std::string(wb::testing::source_dir()) +
                                     "/fixtures/profiles/bfloat16.json");
  r = compare_files(ref, half, "", o);
  CHECK(exit_status(r) == 0);
  CHECK(r.taps.front().cand_dtype == "float16");
  CHECK(r.taps.front().m.rel_l2 > 1e-5);
  CHECK(r.taps.front().m.rel_l2 < 1e-3);

  // --floor must be a float64 run.
  CHECK_THROWS_AS(compare_files(ref, ref, ref, o), std::runtime_error);
  const auto f64 = write_dump(
      tmp.path(), "f64.h5", wb::DType::f64, [](const std::string&, std::vector<float>&) {},
      "float64");
  r = compare_files(ref, half, f64, o);
  CHECK(r.taps.front().floor.has_value());
}
