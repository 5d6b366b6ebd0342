#include "wb/compare/culprit.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "wb/compare/metrics.h"
#include "wb/core/taps.h"

namespace wb::cmp {

namespace {
std::string stage_display(TapStage st, int block) {
  return st == TapStage::block ? fmt::format("block {}", block) : std::string(tap_stage_name(st));
}

// The stage named `display` ("block 3", "ln_post", ...), as stage_display writes it.
void parse_stage_display(const std::string& display, Stage& s) {
  int block = -1;
  if (std::sscanf(display.c_str(), "block %d", &block) == 1) {
    s.stage = TapStage::block;
    s.block = block;
  } else {
    s.stage = find_value(kTapStageNames, display).value_or(TapStage::frontend);
  }
}
}  // namespace

std::vector<Stage> encoder_stages(const ModelDims& d) {
  std::vector<Stage> s;
  std::string in;
  for (const TapSpec& t : encoder_taps(d)) {
    if (s.empty() || s.back().stage != t.stage || s.back().block != t.block) {
      if (!s.empty()) in = s.back().output_tap;
      s.push_back({stage_display(t.stage, t.block), in, t.name, t.block, t.stage});
    }
    s.back().output_tap = t.name;
  }
  return s;
}

Tensor run_stage(Encoder& enc, const Stage& s, const Tensor& x, const std::vector<float>& pcm,
                 TapSink* taps) {
  switch (s.stage) {
    case TapStage::frontend:
      return enc.log_mel(pcm, taps);
    case TapStage::stem:
      return enc.stem(x, taps);
    case TapStage::block:
      return enc.block(s.block, x, taps);
    default:
      return enc.ln_post(x, taps);
  }
}

namespace {

double rel(const Tensor& ref, const Tensor& x) { return diff(ref, x).rel_l2; }

// Why the dump cannot feed or judge this stage ("" when it can).
std::string refusal(const DumpReader& ref, const Stage& s) {
  std::vector<std::string> missing;
  for (const std::string& tap : {s.input_tap, s.output_tap}) {
    if (tap.empty()) continue;
    const TapInfo* t = ref.find(tap);
    if (t == nullptr)
      missing.push_back(tap + " (not in the dump)");
    else if (t->stored == DType::f16)
      missing.push_back(tap + " (stored as float16: too coarse to replay)");
  }
  if (missing.empty()) return {};
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  return fmt::format("needs {}; dump it with --taps blocks (or all) and --store float32", list);
}

}  // namespace

ReplayResult replay(Encoder& cand, const DumpReader& ref, const std::vector<float>& pcm,
                    const ToleranceProfile& profile, TapSink* chain_taps) {
  ReplayResult r;
  r.implementation = cand.implementation();
  r.run_info = cand.run_info();
  const std::vector<Stage> stages = encoder_stages(ref.meta().dims);
  if (cand.n_layers() != ref.meta().dims.n_audio_layer)
    throw std::invalid_argument(
        fmt::format("replay: the encoder has {} blocks, the dump's model {}", cand.n_layers(),
                    ref.meta().dims.n_audio_layer));
  Tensor chain;  // the candidate's own chain: what it hands the next stage
  for (const Stage& s : stages) {
    StageReplay sr;
    sr.stage = s;
    sr.limit = profile.rel_l2_fail_limit(s.output_tap);
    const Tensor chain_in = chain;
    chain = run_stage(cand, s, chain_in, pcm, chain_taps);  // the chain goes on regardless
    sr.refused = refusal(ref, s);
    if (!sr.refused.empty()) {
      r.stages.push_back(std::move(sr));
      continue;
    }
    const Tensor ref_out = ref.read(s.output_tap, DType::f64);
    sr.out = rel(ref_out, chain);
    if (s.input_tap.empty()) {
      sr.own = sr.out;  // the front end's input is the audio itself: nothing is inherited
      sr.received = 0.0;
    } else {
      const Tensor ref_in = ref.read(s.input_tap, DType::f64);
      const Tensor on_ref = run_stage(cand, s, ref_in, pcm, nullptr);
      sr.own = rel(ref_out, on_ref);
      sr.received = rel(ref_in, chain_in);
      if (sr.received > 0) sr.amplification = rel(on_ref, chain) / sr.received;
    }
    sr.own_fails = !(sr.own <= sr.limit);
    if (sr.own_fails && r.culprit < 0) r.culprit = static_cast<int>(r.stages.size());
    r.stages.push_back(std::move(sr));
  }
  return r;
}

namespace {
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
double from(const nlohmann::json& j, const char* k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : kNoValue;
}
}  // namespace

nlohmann::json replay_json(const ReplayResult& r) {
  nlohmann::json st = nlohmann::json::array();
  for (const auto& s : r.stages)
    st.push_back({{"stage", s.stage.name},
                  {"input_tap", s.stage.input_tap},
                  {"output_tap", s.stage.output_tap},
                  {"refused", s.refused},
                  {"own_rel_l2", num(s.own)},
                  {"received_rel_l2", num(s.received)},
                  {"out_rel_l2", num(s.out)},
                  {"amplification", num(s.amplification)},
                  {"limit", num(s.limit)},
                  {"own_fails", s.own_fails}});
  return {{"implementation", r.implementation},
          {"run_info", r.run_info},
          {"culprit",
           r.culprit >= 0 ? nlohmann::json(r.stages[r.culprit].stage.name) : nlohmann::json()},
          {"stages", st}};
}

ReplayResult replay_from_json(const nlohmann::json& j) {
  try {
    ReplayResult r;
    r.implementation = j.at("implementation").get<std::string>();
    r.run_info = j.value("run_info", nlohmann::json::object());
    for (const auto& s : j.at("stages")) {
      StageReplay sr;
      sr.stage.name = s.at("stage").get<std::string>();
      parse_stage_display(sr.stage.name, sr.stage);
      sr.stage.input_tap = s.value("input_tap", "");
      sr.stage.output_tap = s.at("output_tap").get<std::string>();
      sr.refused = s.value("refused", "");
      sr.own = from(s, "own_rel_l2");
      sr.received = from(s, "received_rel_l2");
      sr.out = from(s, "out_rel_l2");
      sr.amplification = from(s, "amplification");
      sr.limit = from(s, "limit");
      sr.own_fails = s.value("own_fails", false);
      if (sr.own_fails && r.culprit < 0) r.culprit = static_cast<int>(r.stages.size());
      r.stages.push_back(std::move(sr));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("replay JSON: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------------

namespace {
// Stage s from cand where use_cand(s), else from ref. cand_chain[s]: the candidate's output of
// stage s after candidate stages 0..s-1 (filled as computed; reused by every later hybrid).
Tensor run_hybrid(Encoder& cand, Encoder& ref, const std::vector<Stage>& stages,
                  const std::vector<float>& pcm, const std::function<bool(int)>& use_cand,
                  const KnownOutputs& known, std::vector<std::optional<Tensor>>& cand_chain,
                  std::string& mix) {
  Tensor x;
  mix.clear();
  bool all_cand = true, all_ref = true;  // every stage so far from one side
  for (std::size_t s = 0; s < stages.size(); ++s) {
    const bool c = use_cand(static_cast<int>(s));
    mix += (s ? " " : "") + std::string(c ? "C" : "R");
    all_cand = all_cand && c;
    all_ref = all_ref && !c;
    if (all_cand && cand_chain[s]) {
      x = *cand_chain[s];
      continue;
    }
    if (all_ref && known) {
      if (std::optional<Tensor> k = known(stages[s])) {
        x = std::move(*k);
        continue;
      }
      all_ref = false;
    }
    x = run_stage(c ? cand : ref, stages[s], x, pcm, nullptr);
    if (all_cand) cand_chain[s] = x;
  }
  return x;
}
}  // namespace

LayerBisection bisect_layers(Encoder& cand, Encoder& ref, const std::vector<float>& pcm,
                             const HybridCriterion& fails, const KnownOutputs& known) {
  LayerBisection b;
  if (cand.n_layers() != ref.n_layers())
    throw std::invalid_argument("bisect-layers: the encoders have different block counts");
  // Stage list from the block count (dims beyond it are not needed here).
  ModelDims d;
  d.n_audio_layer = ref.n_layers();
  b.stages = encoder_stages(d);
  const int n = static_cast<int>(b.stages.size());
  std::vector<std::optional<Tensor>> cand_chain(b.stages.size());
  auto run = [&](int k, const std::function<bool(int)>& use_cand) {
    HybridRun h;
    h.k = k;
    const Tensor out = run_hybrid(cand, ref, b.stages, pcm, use_cand, known, cand_chain, h.mix);
    h.fails = fails(out, &h.score);
    b.runs.push_back(h);
    return h.fails;
  };
  // H_k: candidate for stages < k. H_0 is the reference (passes by definition); H_n the candidate.
  if (!run(n, [](int) { return true; })) return b;  // the candidate passes: nothing to find
  int lo = 0, hi = n;                               // H_lo passes, H_hi fails
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (run(mid, [mid](int s) { return s < mid; }))
      hi = mid;
    else
      lo = mid;
  }
  b.culprit = hi - 1;
  const int c = b.culprit;
  b.confirmed = run(-1, [c](int s) { return s == c; });
  return b;
}

}  // namespace wb::cmp
