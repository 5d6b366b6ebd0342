// Alignment, the streaming pass, verdicts, first divergence, changepoint and attribution.
// Diagnosis hints live in diagnose.cpp, MemorySource in memory_source.cpp.
#include "wb/compare/compare.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "diagnose.h"
#include "wb/core/util.h"

namespace wb::cmp {

// ---------------------------------------------------------------------------------------------
// The streaming pass

namespace {

struct Job {
  std::string ref_name, cand_name, floor_name;  // floor_name empty: no floor for this tap
  Shape shape;
  int64_t rows = 1, row_len = 1, chunk_rows = 1;
};

// The chunk buffers of one worker, reused from tap to tap.
struct Chunk {
  std::vector<double> a, b, f;
};

// Every row of job j, chunk by chunk, into the tap's accumulators (and the floor's), in row order:
// the same sums in the same order whichever thread runs it.
void measure_job(const TapSource& ref, const TapSource& cand, const TapSource* floor, const Job& j,
                 TapResult& t, const CompareOptions& opts, Chunk& c) {
  AccumulatorOptions ao;
  ao.atol = t.tolerance.atol;
  ao.rtol = t.tolerance.rtol;
  ao.top_k = opts.top_k;
  ao.heads = t.spec->heads;
  const bool mel_layout = t.spec->layout == "mel,frame";
  ao.frame_axis = mel_layout ? 1 : (t.shape.size() == 2 ? 0 : -1);
  t.frame_axis = ao.frame_axis == 1 ? "column" : (ao.frame_axis == 0 ? "row" : "");
  MetricAccumulator acc(t.shape, ao);
  std::optional<MetricAccumulator> facc;
  if (floor != nullptr && !j.floor_name.empty()) {
    AccumulatorOptions fo;
    fo.atol = ao.atol;
    fo.rtol = ao.rtol;
    fo.top_k = 0;
    facc.emplace(t.shape, fo);
  }
  for (int64_t row = 0; row < j.rows;) {
    const int64_t n = std::min(j.chunk_rows, j.rows - row);
    ref.read_rows(j.ref_name, row, n, c.a);
    cand.read_rows(j.cand_name, row, n, c.b);
    if (facc) floor->read_rows(j.floor_name, row, n, c.f);
    const auto want = static_cast<std::size_t>(n * j.row_len);
    if (c.a.size() != want || c.b.size() != want || (facc && c.f.size() != want)) {
      throw std::runtime_error(fmt::format("tap '{}': reader returned {} values for {} rows of {}",
                                           j.ref_name, c.a.size(), n, shape_str(j.shape)));
    }
    acc.add_rows(c.a.data(), c.b.data(), n);
    if (facc) facc->add_rows(c.f.data(), c.a.data(), n);  // float32 ref against float64
    row += n;
  }
  t.m = acc.finish();
  if (facc) {
    t.floor = facc->finish();
    if (t.floor->rel_l2 > 0) t.floor_x = t.m.rel_l2 / t.floor->rel_l2;
  }
}

int64_t row_len_of(const Shape& s) {
  int64_t n = 1;
  for (std::size_t i = 1; i < s.size(); ++i) n *= s[i];
  return n;
}

std::string dims_brief(const ModelDims& d) {
  return fmt::format("n_mels {} n_audio_ctx {} n_audio_state {} n_audio_head {} n_audio_layer {}",
                     d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer);
}

void check_same_model(const TapSource& a, const TapSource& b, bool allow_sha, const char* what) {
  const DumpMeta& ma = a.meta();
  const DumpMeta& mb = b.meta();
  if (!(ma.dims == mb.dims)) {
    throw std::runtime_error(
        fmt::format("{} and {} ({}) are dumps of different models: dims ({}) vs ({})", a.label(),
                    b.label(), what, dims_brief(ma.dims), dims_brief(mb.dims)));
  }
  if (!allow_sha && !ma.model_sha256.empty() && !mb.model_sha256.empty() &&
      ma.model_sha256 != mb.model_sha256) {
    throw std::runtime_error(fmt::format(
        "{} and {} ({}) are dumps of different models: model_sha256 {} vs {} "
        "(--allow-model-mismatch compares them anyway)",
        a.label(), b.label(), what, ma.model_sha256.substr(0, 12), mb.model_sha256.substr(0, 12)));
  }
}

// Registry name -> stored tap, refusing two stored names that map onto one.
// Tap names after --map; a name still outside the registry is bad input (a typo in a port's
// writer would otherwise pass as "present on one side only").
std::map<std::string, const TapInfo*> canonical_taps(const TapSource& s, const NameMap& map,
                                                     const ModelDims& dims) {
  std::map<std::string, const TapInfo*> out;
  for (const TapInfo& t : s.taps()) {
    const std::string c = map.canonical(t.name);
    if (wb::tap_order(dims, c) < 0) {
      throw std::invalid_argument(
          c == t.name
              ? fmt::format(
                    "{}: tap '{}' is not in the registry for these dims (foreign names need --map)",
                    s.label(), t.name)
              : fmt::format(
                    "{}: tap '{}' maps to '{}', which is not in the registry for these dims",
                    s.label(), t.name, c));
    }
    auto [it, fresh] = out.emplace(c, &t);
    if (!fresh) {
      throw std::runtime_error(fmt::format("{}: taps '{}' and '{}' both map to '{}'", s.label(),
                                           it->second->name, t.name, c));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The phases of compare(): align -> stream metrics -> judge -> attribute -> changepoint ->
// histogram -> diagnosis and transcripts. Each reads and fills the one CompareResult.

// Registry names of the taps of each side (and the floor), after --map.
struct Aligned {
  std::map<std::string, const TapInfo*> ref, cand, floor;
  std::vector<Job> jobs;  // one per common tap, in execution order
  // (ref tokens, cand tokens) -> number of per-token taps cut to the common tokens
  std::map<std::pair<int64_t, int64_t>, int> token_cuts;
};

// The common taps in the registry's execution order (canonical_taps admits registry names only,
// so the order is total), one job and one TapResult each; the one-sided taps listed.
std::vector<std::string> common_taps(const Aligned& al, CompareResult& r, const ModelDims& dims) {
  auto by_order = [&](const std::string& a, const std::string& b) {
    return wb::tap_order(dims, a) < wb::tap_order(dims, b);
  };
  std::vector<std::string> names;
  for (const auto& [name, info] : al.ref) {
    if (al.cand.count(name) != 0)
      names.push_back(name);
    else
      r.only_ref.push_back(name);
  }
  for (const auto& [name, info] : al.cand)
    if (al.ref.count(name) == 0) r.only_cand.push_back(name);
  std::sort(names.begin(), names.end(), by_order);
  std::stable_sort(r.only_ref.begin(), r.only_ref.end(), by_order);
  std::stable_sort(r.only_cand.begin(), r.only_cand.end(), by_order);
  return names;
}

// The job of one common tap: shapes checked (decoder taps may differ in token count: that is
// data, not a shape error, and the tokens both have are compared), the floor's tap found.
Job make_job(const std::string& name, const TapSpec& spec, Aligned& al, CompareResult& r,
             const TapSource* floor, const CompareOptions& opts) {
  const TapInfo& a = *al.ref.at(name);
  const TapInfo& b = *al.cand.at(name);
  Shape shape = a.shape;
  const bool per_token = spec.per_token;
  if (per_token && a.shape.size() == 2 && b.shape.size() == 2 && a.shape[1] == b.shape[1] &&
      a.shape[0] != b.shape[0]) {
    shape[0] = std::min(a.shape[0], b.shape[0]);
    ++al.token_cuts[{a.shape[0], b.shape[0]}];
  } else if (a.shape != b.shape) {
    throw std::runtime_error(fmt::format("tap '{}': shape mismatch: {} {} vs {} {}", name,
                                         r.ref_path, shape_str(a.shape), r.cand_path,
                                         shape_str(b.shape)));
  }
  Job j;
  j.ref_name = a.name;
  j.cand_name = b.name;
  j.shape = shape;
  j.rows = shape.empty() ? 1 : shape[0];
  j.row_len = row_len_of(shape);
  j.chunk_rows = std::max<int64_t>(1, opts.chunk_elements / std::max<int64_t>(1, j.row_len));
  if (floor != nullptr) {
    auto it = al.floor.find(name);
    if (it == al.floor.end()) {
      r.missing_floor.push_back(name);
    } else if (it->second->shape != a.shape &&
               !(per_token && it->second->shape.size() == 2 && it->second->shape[0] >= shape[0])) {
      throw std::runtime_error(fmt::format("tap '{}': shape mismatch: {} {} vs {} {}", name,
                                           r.ref_path, shape_str(a.shape), floor->label(),
                                           shape_str(it->second->shape)));
    } else {
      j.floor_name = it->second->name;
    }
  }
  return j;
}

Aligned align(const TapSource& ref, const TapSource& cand, const TapSource* floor,
              const CompareOptions& opts, const ToleranceProfile& profile, CompareResult& r) {
  const ModelDims& dims = ref.meta().dims;
  Aligned al;
  al.ref = canonical_taps(ref, opts.map, dims);
  al.cand = canonical_taps(cand, opts.map, dims);
  if (floor != nullptr) al.floor = canonical_taps(*floor, opts.map, dims);
  const std::vector<std::string> names = common_taps(al, r, dims);
  if (names.empty()) {
    throw std::runtime_error(
        fmt::format("{} ({} taps) and {} ({} taps) have no tap in common{}", r.ref_path,
                    ref.taps().size(), r.cand_path, cand.taps().size(),
                    opts.map.empty() ? " (foreign names? --map renames them)" : " after --map"));
  }
  const TapRegistry& registry = TapRegistry::of(dims);
  for (const std::string& name : names) {
    const TapSpec* spec = registry.find(name);
    if (spec == nullptr)  // canonical_taps refuses names outside the registry; a guard
      throw std::runtime_error(fmt::format("tap '{}' is not in the tap registry", name));
    al.jobs.push_back(make_job(name, *spec, al, r, floor, opts));
    const TapInfo& a = *al.ref.at(name);
    const TapInfo& b = *al.cand.at(name);
    TapResult t;
    t.name = name;
    t.spec = spec;
    t.ref_name = a.name;
    t.cand_name = b.name;
    t.shape = al.jobs.back().shape;
    t.layout = !a.layout.empty() ? a.layout : b.layout;
    t.ref_dtype = std::string(dtype_name(a.stored));
    t.cand_dtype = std::string(dtype_name(b.stored));
    t.order = static_cast<int>(r.taps.size());
    t.tolerance = profile.for_tap(name);
    r.taps.push_back(std::move(t));
  }
  return al;
}

// One streaming pass over every job: metrics of candidate vs reference, and of the reference vs
// its float64 run where a floor is given. Two workers take the taps in order, a whole tap each
// (their HDF5 reads serialise on HDF5's lock; widening and metrics overlap). An error is the one
// of the first failing tap in order, as one worker would report it: a worker stops taking taps
// once any has failed, and every tap before a failed one was taken before it.
void stream_metrics(const TapSource& ref, const TapSource& cand, const TapSource* floor,
                    const std::vector<Job>& jobs, const CompareOptions& opts, CompareResult& r) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors(jobs.size());
  auto work = [&] {
    Chunk c;
    for (std::size_t k; !failed.load() && (k = next.fetch_add(1)) < jobs.size();) {
      try {
        measure_job(ref, cand, floor, jobs[k], r.taps[k], opts, c);
      } catch (...) {
        errors[k] = std::current_exception();
        failed = true;
      }
    }
  };
  std::thread second;
  if (opts.background_read && jobs.size() > 1) {
    try {
      second = std::thread(work);
    } catch (const std::system_error&) {  // no thread to be had: one worker
    }
  }
  work();
  if (second.joinable()) second.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  for (std::size_t k = 0; k < jobs.size(); ++k) r.elements += jobs[k].rows * jobs[k].row_len;
}

// The tolerance with every rel_l2 limit widened by w: the absolute limit (max, or ceiling for a
// floor multiple) plus w, floor multiples dropped (w dwarfs any float32 floor).
TapTolerance widen_rel_l2(TapTolerance t, double w) {
  for (auto* list : {&t.warn, &t.fail})
    for (Threshold& th : *list) {
      if (th.metric != "rel_l2") continue;
      const std::optional<double> abs = th.ceiling ? th.ceiling : th.max;
      th.max_floor.reset();
      th.ceiling.reset();
      if (abs) th.max = *abs + w;
    }
  return t;
}

// Narrower float types a port may round a tensor to: significand bits after the point, the
// smallest normal exponent, the largest finite value.
struct NarrowType {
  std::string_view name;
  int mant_bits;
  int emin;
  double max;
};
// float16 first: its rounding is the tighter, and a float16 cast is also within one bfloat16 unit.
constexpr NarrowType kNarrowTypes[] = {{"float16", 10, -14, 65504.0},
                                       {"bfloat16", 7, -126, 3.3895313892515355e38}};

const NarrowType& narrow_type(std::string_view name) {
  for (const NarrowType& t : kNarrowTypes)
    if (t.name == name) return t;
  throw std::invalid_argument(
      fmt::format("'{}' is not a narrower float type (bfloat16, float16)", name));
}

// The spacing of t's values at magnitude |r| (subnormals: the smallest spacing).
double spacing(double r, const NarrowType& t) {
  const int e = r == 0 ? t.emin : std::max(std::ilogb(r), t.emin);
  return std::ldexp(1.0, e - t.mant_bits);
}

double round_narrow(double x, const NarrowType& t) {
  if (!std::isfinite(x) || x == 0) return x;
  const double q = spacing(x, t);
  const double r = std::nearbyint(x / q) * q;  // the default rounding mode: to nearest, ties even
  return std::fabs(r) > t.max ? std::copysign(std::numeric_limits<double>::infinity(), r) : r;
}

// Whether the candidate's tap is the reference's rounded to a narrower type: every element equal
// to the rounded reference value (exact) or within one unit of it; non-finite values must match.
// Re-reads the tap; stops at the first element that is neither.
struct Cast {
  const NarrowType* type = nullptr;
  bool exact = true;
};
Cast find_cast(const TapSource& ref, const TapSource& cand, const Job& j, double rel_l2) {
  std::vector<const NarrowType*> open;
  std::vector<bool> exact;
  for (const NarrowType& t : kNarrowTypes)  // rel L2 of a rounding within one unit: <= 3u
    if (rel_l2 <= 3 * std::ldexp(1.0, -(t.mant_bits + 1)))
      open.push_back(&t), exact.push_back(true);
  std::vector<double> a, b;
  for (int64_t row = 0; row < j.rows && !open.empty(); row += j.chunk_rows) {
    const int64_t n = std::min(j.chunk_rows, j.rows - row);
    ref.read_rows(j.ref_name, row, n, a);
    cand.read_rows(j.cand_name, row, n, b);
    for (std::size_t k = 0; k < open.size();) {
      const NarrowType& t = *open[k];
      bool ok = true;
      bool same = exact[k];
      for (std::size_t i = 0; i < a.size() && ok; ++i) {
        if (std::isnan(a[i]) || std::isnan(b[i])) {
          ok = std::isnan(a[i]) && std::isnan(b[i]);
          continue;
        }
        const double r = round_narrow(a[i], t);
        if (b[i] == r) continue;
        same = false;
        ok = std::isfinite(r) && std::isfinite(b[i]) && std::fabs(b[i] - r) <= spacing(r, t);
      }
      if (ok) {
        exact[k] = same;
        ++k;
      } else {
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(k));
        exact.erase(exact.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
  }
  if (open.empty()) return {};
  return Cast{open.front(), exact.front()};
}

// Each tap against the profile; the verdict, the first fail and the first warning.
// Storage precision: a side stored as float16 (bfloat16) carries its storage's rounding, up to
// u = 2^-11 (2^-8) relative per element, so up to u in rel L2, whatever the port computed. When a
// tap exceeds the profile as written but passes with its rel_l2 limits widened by that floor (u
// per reduced-precision side), it is storage-limited: a warning, never a fail. A real bug (rel
// L2 of 1e-2 for a 1 % scale error) stays far above the float32 limit + 2 x 4.9e-4 and still fails.
// Input casts: a failing tap of two wider-stored sides whose candidate values are the reference's
// rounded to bfloat16 or float16 (the cast of a port's input to its compute type) carries that
// rounding and nothing else; it is judged with its rel_l2 limits widened by the rounding's bound
// and passes with a note. Anything that is not that rounding (a dB mel cast to bfloat16) is
// judged as written.
void judge(const ToleranceProfile& profile, const TapSource& ref, const TapSource& cand,
           const std::vector<Job>& jobs, CompareResult& r) {
  for (std::size_t i = 0; i < r.taps.size(); ++i) {
    TapResult& t = r.taps[i];
    const DiffMetrics* floor = t.floor ? &*t.floor : nullptr;
    t.violations = profile.evaluate(t.tolerance, t.m, floor);
    t.storage_floor = storage_rounding(t.ref_dtype) + storage_rounding(t.cand_dtype);
    const bool fails = std::any_of(t.violations.begin(), t.violations.end(),
                                   [](const Violation& v) { return v.level == Level::fail; });
    if (t.storage_floor == 0 && fails) {
      if (const Cast c = find_cast(ref, cand, jobs[i], t.m.rel_l2); c.type != nullptr) {
        t.rounded_to = std::string(c.type->name);
        t.rounded_exactly = c.exact;
        t.cast_rounding = (c.exact ? 1 : 3) * std::ldexp(1.0, -(c.type->mant_bits + 1));
        t.violations = profile.evaluate(widen_rel_l2(t.tolerance, t.cast_rounding), t.m, floor);
      }
    }
    if (t.storage_floor > 0 && !t.violations.empty()) {
      const auto widened = profile.evaluate(widen_rel_l2(t.tolerance, t.storage_floor), t.m, floor);
      const bool worse = std::any_of(t.violations.begin(), t.violations.end(),
                                     [](const Violation& v) { return v.level == Level::fail; });
      const bool still = std::any_of(widened.begin(), widened.end(),
                                     [](const Violation& v) { return v.level == Level::fail; });
      if (worse && !still) {
        t.storage_limited = true;
        for (Violation& v : t.violations) v.level = Level::warn;  // reported, not failed
        r.storage_limited = true;
      }
    }
    t.status = Level::pass;
    for (const Violation& v : t.violations) t.status = std::max(t.status, v.level);
    r.verdict = std::max(r.verdict, t.status);
    if (t.status == Level::fail && r.first_divergence < 0) r.first_divergence = static_cast<int>(i);
    if (t.status != Level::pass && r.first_warning < 0) r.first_warning = static_cast<int>(i);
  }
}

// The dumped taps nearest upstream of t (walking the registry's dataflow through taps that
// were not dumped).
std::vector<std::string> dumped_upstream(const TapSpec& t, const TapRegistry& reg,
                                         const std::map<std::string, std::size_t>& index) {
  std::vector<std::string> found;
  std::set<std::string> seen;
  std::vector<std::string> todo = t.upstream;
  while (!todo.empty()) {
    const std::string u = todo.back();
    todo.pop_back();
    if (!seen.insert(u).second) continue;
    if (index.count(u) != 0) {
      found.push_back(u);
    } else if (const TapSpec* us = reg.find(u)) {
      for (const auto& uu : us->upstream) todo.push_back(uu);
    }
  }
  return found;
}

// Own vs inherited: a tap's error relative to the largest error among the dumped taps feeding it.
void attribute(const ToleranceProfile& profile, const ModelDims& dims, CompareResult& r) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < r.taps.size(); ++i) index[r.taps[i].name] = i;
  const double noise = profile.changepoint_min_rel_l2();
  const TapRegistry& reg = TapRegistry::of(dims);
  for (TapResult& t : r.taps) {
    const std::vector<std::string> found = dumped_upstream(*t.spec, reg, index);
    const bool input = t.spec->upstream.empty();
    double up = 0.0;
    for (const std::string& u : found) {
      const double e = r.taps[index[u]].m.rel_l2;
      if (t.upstream.empty() || e > up) {
        up = e;
        t.upstream = u;
      }
    }
    const double e = t.m.rel_l2;
    if (!found.empty())
      t.jump = up > 0 ? e / up : (e > 0 ? std::numeric_limits<double>::infinity() : 1.0);
    const bool bad = t.m.nan_mismatch > 0 || t.m.inf_mismatch > 0;
    if (!(e > noise) && !bad && t.status == Level::pass) {
      t.attribution = "";
    } else if (input) {
      t.attribution = "input";
    } else if (found.empty()) {
      t.attribution = "local";  // nothing upstream was dumped: cannot tell, assume its own
    } else if (bad) {
      const auto& u = r.taps[index[t.upstream]].m;
      t.attribution = (u.nan_mismatch > 0 || u.inf_mismatch > 0) ? "inherited" : "local";
    } else {
      t.attribution = (*t.jump >= profile.local_ratio() || up <= noise) ? "local" : "inherited";
    }
  }
}

// Changepoint: first tap whose rel_l2 exceeds every earlier tap's (and the noise level) by the
// profile's ratio. Error grows with depth; a fixed threshold alone points too late or too early.
void find_changepoint(const ToleranceProfile& profile, CompareResult& r) {
  const double noise = profile.changepoint_min_rel_l2();
  double running = 0.0;
  for (std::size_t i = 0; i < r.taps.size(); ++i) {
    const auto& m = r.taps[i].m;
    double e = m.rel_l2;
    if (m.nan_mismatch > 0 || m.inf_mismatch > 0) e = std::numeric_limits<double>::infinity();
    const double base = std::max(running, noise);
    if (e > noise && e / base >= profile.changepoint_ratio()) {
      r.changepoint = static_cast<int>(i);
      r.changepoint_jump = e / base;
      break;
    }
    if (std::isfinite(e)) running = std::max(running, e);
  }
}

// Histogram of the differences of the first divergent tap (else the worst tap): a second,
// single-tap pass, now that its range is known.
void histogram(const TapSource& ref, const TapSource& cand, const std::vector<Job>& jobs, int bins,
               CompareResult& r) {
  int hist_tap = r.first_divergence;
  if (hist_tap < 0) {
    double worst = -1;
    for (std::size_t i = 0; i < r.taps.size(); ++i) {
      if (r.taps[i].m.rel_l2 > worst && std::isfinite(r.taps[i].m.rel_l2)) {
        worst = r.taps[i].m.rel_l2;
        hist_tap = static_cast<int>(i);
      }
    }
  }
  if (hist_tap < 0 || bins <= 0) return;
  const TapResult& t = r.taps[static_cast<std::size_t>(hist_tap)];
  const Job& j = jobs[static_cast<std::size_t>(hist_tap)];
  Histogram h;
  h.tap = t.name;
  const double span = t.m.max_abs > 0 && std::isfinite(t.m.max_abs) ? t.m.max_abs : 1.0;
  h.lo = -span;
  h.hi = span;
  h.counts.assign(static_cast<std::size_t>(bins), 0);
  std::vector<double> a, b;
  const double scale = static_cast<double>(bins) / (h.hi - h.lo);
  for (int64_t row = 0; row < j.rows; row += j.chunk_rows) {
    const int64_t n = std::min(j.chunk_rows, j.rows - row);
    ref.read_rows(j.ref_name, row, n, a);
    cand.read_rows(j.cand_name, row, n, b);
    for (std::size_t k = 0; k < a.size(); ++k) {
      const double d = b[k] - a[k];
      if (!std::isfinite(d)) continue;
      auto bin = static_cast<int64_t>((d - h.lo) * scale);
      bin = std::clamp<int64_t>(bin, 0, bins - 1);
      ++h.counts[static_cast<std::size_t>(bin)];
    }
  }
  r.histogram = std::move(h);
}

// The whole `logits` tap of a source as float64 [rows, vocab] (empty when absent).
Tensor read_logits(const TapSource& s, const std::map<std::string, const TapInfo*>& taps) {
  const auto it = taps.find(std::string(kLogits));
  if (it == taps.end() || it->second->shape.size() != 2) return {};
  std::vector<double> v;
  s.read_rows(it->second->name, 0, it->second->shape[0], v);
  Tensor t(DType::f64, it->second->shape);
  std::copy(v.begin(), v.end(), t.f64());
  return t;
}

// Decoder taps cut to common tokens, both transcripts with the word errors between them, and the
// transcript impact when both sides hold their tokens.
void transcripts(const TapSource& ref, const TapSource& cand, const Aligned& al,
                 const CompareOptions& opts, CompareResult& r) {
  for (const auto& [n, taps] : al.token_cuts) {
    r.hints.push_back(
        fmt::format("{} decoder tap(s): the sides decoded {} vs {} tokens, the first {} compared "
                    "(teacher-forced on each side's own tokens)",
                    taps, n.first, n.second, std::min(n.first, n.second)));
  }
  const auto a = ref.text(), b = cand.text();
  if (a && b) r.transcripts = CompareResult::Transcripts{*a, *b, wb::word_errors(*a, *b)};
  const auto rt = ref.tokens(), ct = cand.tokens();
  if (!rt || !ct) return;
  const auto teacher = cand.teacher_tokens();
  const bool follows_ref = teacher && *teacher == *rt;
  if (teacher && !follows_ref)
    r.hints.push_back(
        "the candidate's decoder taps were teacher-forced on other tokens than this reference's "
        "transcript: no teacher-forced KL (dump it with --teacher-tokens of this reference)");
  Tensor rl = read_logits(ref, al.ref), cl = read_logits(cand, al.cand);
  if (ref.teacher_tokens()) rl = Tensor();  // the reference's logits must follow its own tokens
  try {
    r.impact = transcript_impact(*rt, *ct, rl, cl, follows_ref);
  } catch (const std::invalid_argument& e) {  // logits of some other shape: tokens only
    r.hints.push_back(std::string("transcript impact without logits: ") + e.what());
    r.impact = transcript_impact(*rt, *ct, Tensor(), Tensor(), false);
  }
  if (opts.expected_text && a && b) {
    r.impact->ref_vs_expected = wb::word_errors(*opts.expected_text, *a);
    r.impact->cand_vs_expected = wb::word_errors(*opts.expected_text, *b);
  }
  const TranscriptImpact& x = *r.impact;
  if (x.cand_rep.flagged && !x.ref_rep.flagged)
    r.hints.insert(r.hints.begin(),
                   fmt::format("the candidate's transcript loops: a {}-token sequence repeated {} "
                               "times from token {} (the reference's does not) — the classic "
                               "symptom of a broken encoder output",
                               x.cand_rep.ngram, x.cand_rep.repeats, x.cand_rep.start));
}

}  // namespace

CompareResult compare(const TapSource& ref, const TapSource& cand, const TapSource* floor,
                      const CompareOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  check_same_model(ref, cand, opts.allow_model_mismatch, "reference vs candidate");
  if (floor != nullptr)
    check_same_model(ref, *floor, opts.allow_model_mismatch, "reference vs floor");
  const ModelDims& dims = ref.meta().dims;
  if (!opts.map.empty()) opts.map.validate(dims);

  CompareResult r;
  r.ref_path = ref.label();
  r.cand_path = cand.label();
  r.floor_path = floor != nullptr ? floor->label() : "";
  r.ref_meta = ref.meta();
  r.cand_meta = cand.meta();
  const ToleranceProfile profile =
      opts.profile ? *opts.profile : default_profile_for(cand.meta(), cand.label());
  r.profile_name = profile.name();
  r.map_origin = opts.map.origin();
  r.tool_version = wb::tool_version();
  r.created = wb::utc_now_iso8601();

  const Aligned al = align(ref, cand, floor, opts, profile, r);
  stream_metrics(ref, cand, floor, al.jobs, opts, r);
  judge(profile, ref, cand, al.jobs, r);
  attribute(profile, dims, r);
  find_changepoint(profile, r);
  histogram(ref, cand, al.jobs, opts.histogram_bins, r);
  diagnose(r, dims, profile);
  transcripts(ref, cand, al, opts, r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

CompareResult compare_files(const std::string& ref, const std::string& cand,
                            const std::string& floor, const CompareOptions& opts) {
  DumpSource a(ref);
  DumpSource b(cand);
  if (floor.empty()) return compare(a, b, nullptr, opts);
  DumpSource f(floor);
  if (f.meta().precision != "float64") {
    throw std::runtime_error(fmt::format(
        "{}: --floor expects a float64 run of the reference, this dump's precision is '{}'", floor,
        f.meta().precision));
  }
  return compare(a, b, &f, opts);
}

int exit_status(const CompareResult& r) {
  if (r.gate == Gate::budget && r.budget) return r.budget->level == BudgetLevel::breaks ? 1 : 0;
  return r.verdict == Level::fail ? 1 : 0;
}

std::string verdict_name(const CompareResult& r) {
  if (r.verdict == Level::warn && r.storage_limited) return "storage-limited";
  return std::string(level_name(r.verdict));
}

double storage_rounding(std::string_view dtype) {
  if (dtype == "float16") return std::ldexp(1.0, -11);  // 4.88e-4
  if (dtype == "bfloat16") return std::ldexp(1.0, -8);  // 3.91e-3
  return 0.0;
}

double round_to_type(double x, std::string_view type) { return round_narrow(x, narrow_type(type)); }

double unit_in_last_place(double r, std::string_view type) { return spacing(r, narrow_type(type)); }

}  // namespace wb::cmp
