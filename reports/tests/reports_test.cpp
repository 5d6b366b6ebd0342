// Renderers on a comparison of in-memory dumps with a fault at encoder.blocks.0.attn.out and a
// NaN downstream; and atomic writes.
#include "wb/reports/reports.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "wb/core/tempfile.h"
#include "wb/core/util.h"
#include "wb/testing/scratch.h"

using namespace wb;
namespace fs = std::filesystem;

namespace {

cmp::CompareResult make_result(bool fault) {
  DumpMeta meta;
  meta.implementation = "reference";
  meta.precision = "float32";
  meta.model_sha256 = std::string(64, 'e');
  meta.dims = ModelDims::preset("nano");
  meta.dims.n_audio_ctx = 50;
  cmp::MemorySource ref("ref <1>.h5", meta), cand("cand&2.h5", meta);
  std::mt19937 rng(9);
  std::normal_distribution<double> nd(0, 1);
  bool after = false;
  for (const auto& t : encoder_taps(meta.dims)) {
    std::vector<double> a(static_cast<std::size_t>(shape_numel(t.shape)));
    for (double& x : a) x = static_cast<float>(nd(rng));
    auto b = a;
    for (double& y : b) y += 1e-8 * nd(rng);
    if (fault && (t.name == "encoder.blocks.0.attn.out" || after)) {
      for (std::size_t i = 0; i < b.size(); ++i) b[i] *= 1.5;
      after = true;
    }
    if (fault && t.name == "encoder.blocks.1.mlp.fc1")
      b[7] = std::numeric_limits<double>::infinity();
    ref.add(t.name, t.shape, a, t.layout);
    if (t.name != "encoder.blocks.1.mlp.gelu") cand.add(t.name, t.shape, b, t.layout);
  }
  cmp::CompareOptions o;
  return cmp::compare(ref, cand, nullptr, o);
}

}  // namespace

TEST_CASE("JSON report: schema, every tap, non-finite numbers as strings") {
  const auto r = make_result(true);
  const auto j = nlohmann::json::parse(rep::render_json(r));
  CHECK(j["schema"] == rep::kReportSchema);
  CHECK(j["verdict"] == "fail");
  CHECK(j["exit_status"] == 1);
  CHECK(j["first_divergence"]["tap"] == "encoder.blocks.0.attn.out");
  CHECK(j["taps"].size() == r.taps.size());
  CHECK(j["only_reference"][0] == "encoder.blocks.1.mlp.gelu");
  const auto& t0 = j["taps"][0];
  CHECK(t0["name"] == "mel");
  CHECK(t0["frame_axis"] == "column");
  CHECK(t0["frames"]["rel_l2"].size() == 100);
  for (const char* k :
       {"rel_l2", "max_abs", "mean_abs", "cosine", "pearson", "snr_db", "share_beyond",
        "nan_mismatch", "inf_mismatch", "numel", "compared", "beyond"})
    CHECK(t0["metrics"].contains(k));
  bool found_inf = false;
  for (const auto& t : j["taps"]) {
    if (t["name"] == "encoder.blocks.1.mlp.fc1") {
      CHECK(t["metrics"]["inf_mismatch"] == 1);
      CHECK(t["candidate"]["pos_inf"] == 1);
      CHECK(t["worst"][0]["kind"] == "inf");
      CHECK(t["worst"][0]["cand"] == "inf");
      found_inf = true;
    }
    if (t["name"] == "encoder.blocks.0.attn.q") CHECK(t["heads"]["rel_l2"].size() == 2);
  }
  CHECK(found_inf);
  const auto self = nlohmann::json::parse(rep::render_json(make_result(false)));
  CHECK(self["verdict"] == "pass");
  CHECK(self["first_divergence"].is_null());
}

TEST_CASE("Markdown report fits a PR comment") {
  const auto r = make_result(true);
  const std::string md = rep::render_markdown(r);
  MESSAGE(md);
  CHECK(md.find("FAIL") != std::string::npos);
  CHECK(md.find("`encoder.blocks.0.attn.out`") != std::string::npos);
  CHECK(md.find("Diagnosis") != std::string::npos);
  CHECK(std::count(md.begin(), md.end(), '\n') < 60);
  CHECK(md.size() < 8000);
  // Worst first: the first table row is the first divergent tap.
  const auto row = md.find("| ❌ |");
  REQUIRE(row != std::string::npos);
  CHECK(md.substr(row, 60).find("encoder.blocks.0.attn.out") != std::string::npos);
}

TEST_CASE("JUnit XML: a case per tap, failures counted, escaped") {
  const auto r = make_result(true);
  const std::string x = rep::render_junit(r);
  std::size_t cases = 0, failures = 0;
  for (std::size_t p = 0; (p = x.find("<testcase ", p)) != std::string::npos; ++p) ++cases;
  for (std::size_t p = 0; (p = x.find("<failure ", p)) != std::string::npos; ++p) ++failures;
  CHECK(cases == r.taps.size() + 1);
  int want = 0;
  for (const auto& t : r.taps) want += t.status == cmp::Level::fail;
  CHECK(failures == static_cast<std::size_t>(want));
  CHECK(x.find("ref &lt;1&gt;.h5") != std::string::npos);
  CHECK(x.find("cand&amp;2.h5") != std::string::npos);
  CHECK(x.find("<skipped") != std::string::npos);
  CHECK(x.find("classname=\"compare.encoder.blocks.0\" name=\"attn.out\"") != std::string::npos);
}

TEST_CASE("HTML report is self-contained") {
  const auto r = make_result(true);
  const std::string s = rep::render_html(r);
  CHECK(s.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(s.find("<svg") != std::string::npos);
  CHECK(s.find("<script") == std::string::npos);
  CHECK(s.find("https://") == std::string::npos);
  // The only http:// is the SVG namespace.
  std::size_t n = 0;
  for (std::size_t p = 0; (p = s.find("http://", p)) != std::string::npos; ++p)
    if (s.compare(p, 26, "http://www.w3.org/2000/svg") != 0) ++n;
  CHECK(n == 0);
  CHECK(s.find("Error per frame of encoder.blocks.0.attn.out") != std::string::npos);
  CHECK(s.find("Histogram of candidate - reference") != std::string::npos);
  CHECK(s.find("ref &lt;1&gt;.h5") != std::string::npos);
  const std::string pass = rep::render_html(make_result(false));
  CHECK(pass.find("within tolerance") != std::string::npos);
}

TEST_CASE("reports are written atomically; formats are checked") {
  const wb::testing::ScratchDir scratch("wb-reports-test");
  const fs::path dir = scratch.path() / "report";
  const auto r = make_result(true);
  const auto paths = rep::write_reports(r, dir.string(), rep::parse_formats("all"));
  CHECK(paths.size() == 5);
  CHECK(paths.back() == (dir / "manifest.json").string());
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    CHECK(e.path().string().find(".tmp-") == std::string::npos);
  }
  CHECK(files == 5);
  // The manifest, written last, lists the set with each file's hash.
  const auto m = nlohmann::json::parse(wb::read_file((dir / "manifest.json").string()));
  CHECK(m["complete"] == true);
  CHECK(m["files"].size() == 4);
  CHECK(m["files"]["report.md"]["sha256"] == wb::sha256_file((dir / "report.md").string()));
  // A later run with fewer formats removes the others: the set never mixes two comparisons.
  rep::write_reports(r, dir.string(), rep::parse_formats("md"));
  CHECK(!fs::exists(dir / "report.html"));
  CHECK(nlohmann::json::parse(wb::read_file((dir / "manifest.json").string()))["files"].size() ==
        1);
  CHECK(rep::parse_formats("md, json") == std::vector<std::string>{"md", "json"});
  CHECK_THROWS_AS(rep::parse_formats("md,pdf"), std::invalid_argument);
  CHECK_THROWS_AS(wb::write_file_atomic((dir / "no/such/dir/x").string(), "x"), std::runtime_error);
}

TEST_CASE("every format names the profile the verdict used") {
  auto r = make_result(true);
  r.profile_name = "bfloat16";  // as a bfloat16 candidate's default would set it
  CHECK(rep::render_summary(r).find("profile bfloat16") != std::string::npos);
  CHECK(rep::render_markdown(r).find("profile `bfloat16`") != std::string::npos);
  CHECK(rep::render_html(r).find("<code>bfloat16</code>") != std::string::npos);
  CHECK(nlohmann::json::parse(rep::render_json(r)).at("profile") == "bfloat16");
  const std::string x = rep::render_junit(r);
  CHECK(x.find("<property name=\"profile\" value=\"bfloat16\"/>") != std::string::npos);
  CHECK(x.find("(profile bfloat16)\">") != std::string::npos);  // each failure's message
}
