#include "wb/budget/measure.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <thread>

#include "wb/compare/transcript.h"
#include "wb/core/taps.h"
#include "wb/core/util.h"

namespace wb::budget {

using nlohmann::json;

int Criterion::allowed(int n_clips) const {
  return std::max(min_changed_allowed,
                  static_cast<int>(std::floor(max_changed_fraction * n_clips + 1e-9)));
}

json Criterion::to_json(int n_clips) const {
  return {{"max_changed_fraction", max_changed_fraction},
          {"min_changed_allowed", min_changed_allowed},
          {"changed_allowed", allowed(n_clips)},
          {"kl_bound_nats", kl_bound},
          {"kl_statistic",
           "mean over the clips of each clip's mean per-step teacher-forced KL(p_ref || "
           "p_perturbed), nats"},
          {"tokens", "a clip keeps its transcript when its greedy token sequence is identical"}};
}

json SearchOptions::to_json() const {
  return {{"ladder", ladder},
          {"refine_steps", refine},
          {"stop_changed_fraction", stop_changed_fraction}};
}

json Level::to_json() const {
  return {{"epsilon", epsilon},
          {"clips", clips},
          {"kept", kept},
          {"changed", changed},
          {"changed_clips", changed_clips},
          {"kl_mean", kl_mean},
          {"kl_max", kl_max},
          {"pass", pass}};
}

Level Level::from_json(const json& j) {
  Level l;
  l.epsilon = j.at("epsilon").get<double>();
  l.clips = j.at("clips").get<int>();
  l.kept = j.at("kept").get<int>();
  l.changed = j.at("changed").get<int>();
  l.changed_clips = j.at("changed_clips").get<std::vector<std::string>>();
  l.kl_mean = j.at("kl_mean").get<double>();
  l.kl_max = j.at("kl_max").get<double>();
  l.pass = j.at("pass").get<bool>();
  return l;
}

void SearchOptions::check() const {
  if (ladder.empty()) throw UsageError("--ladder: no epsilon");
  for (std::size_t i = 0; i < ladder.size(); ++i)
    if (!(ladder[i] > 0) || (i > 0 && !(ladder[i] > ladder[i - 1])))
      throw UsageError("--ladder: epsilons must be positive and ascending");
  if (refine < 0 || refine > 8) throw UsageError("--refine: 0 to 8 steps");
}

SearchResult search_budget(const SearchOptions& o, const Criterion& c, int n_clips,
                           const std::function<Level(double)>& evaluate) {
  o.check();
  SearchResult r;
  double lo = -1, hi = -1;  // the last passing epsilon below the first failing one
  const int stop = static_cast<int>(std::ceil(o.stop_changed_fraction * n_clips));
  for (double eps : o.ladder) {
    const Level l = evaluate(eps);
    r.levels.push_back(l);
    if (hi < 0) {
      if (l.pass)
        lo = eps;
      else
        hi = eps;
    }
    if (hi > 0 && l.changed >= stop) break;
  }
  for (int i = 0; i < o.refine && hi > 0 && lo > 0; ++i) {
    const double mid = std::sqrt(lo * hi);
    const Level l = evaluate(mid);
    r.levels.push_back(l);
    (l.pass ? lo : hi) = mid;
  }
  std::sort(r.levels.begin(), r.levels.end(),
            [](const Level& a, const Level& b) { return a.epsilon < b.epsilon; });
  if (hi < 0) {
    r.budget = o.ladder.back();
    r.bound = cmp::BudgetBound::at_least;
  } else if (lo < 0) {
    r.budget = 0;
    r.bound = cmp::BudgetBound::below;
  } else {
    r.budget = lo;
    r.bound = cmp::BudgetBound::exact;
  }
  for (std::size_t i = 1; i < r.levels.size(); ++i)
    r.max_rise = std::max(r.max_rise, r.levels[i].kept - r.levels[i - 1].kept);
  return r;
}

void parallel_for(std::size_t n, int jobs, const std::function<void(std::size_t)>& fn) {
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::atomic<bool> failed{false};
  auto work = [&]() {
    try {
      for (std::size_t i; !failed && (i = next++) < n;) fn(i);
    } catch (...) {
      if (!failed.exchange(true)) failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int j = 1; j < jobs && static_cast<std::size_t>(j) < n; ++j) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

BudgetRunner::BudgetRunner(std::shared_ptr<const Checkpoint> model, int jobs)
    : jobs_(std::max(1, jobs)),
      model_(std::move(model)),
      enc_(make_reference_encoder(model_, DType::f32, "cpu")),
      dec_(std::make_unique<ReferenceDecoder>(model_, DType::f32)) {
  taps_.emplace_back(kMel);
  taps_.emplace_back(kPosEmbed);
  for (int i = 0; i < model_->dims.n_audio_layer; ++i)
    taps_.push_back(block_tap(TapSide::encoder, i, "out"));
  taps_.emplace_back(kLnPost);
}

BudgetRunner::~BudgetRunner() = default;

int BudgetRunner::tap_index(const std::string& name) const {
  for (std::size_t i = 0; i < taps_.size(); ++i)
    if (taps_[i] == name) return static_cast<int>(i);
  return -1;
}

ClipRun BudgetRunner::prepare(const std::string& clip, const std::vector<float>& pcm16k) {
  ClipRun c;
  c.clip = clip;
  Tensor x = enc_->log_mel(pcm16k, nullptr);
  c.stage_out.push_back(x);
  x = enc_->stem(x, nullptr);
  c.stage_out.push_back(x);
  for (int i = 0; i < model_->dims.n_audio_layer; ++i) {
    x = enc_->block(i, x, nullptr);
    c.stage_out.push_back(x);
  }
  x = enc_->ln_post(x, nullptr);
  c.stage_out.push_back(x);
  DecodeOptions o;
  const DecodeResult d = dec_->greedy(x, nullptr, o);
  ++counts_.decodes;
  c.tokens = d.tokens;
  c.forced = model_->vocab.initial_prompt();
  c.forced.insert(c.forced.end(), d.tokens.begin(), d.tokens.end());
  const int limit =
      std::min(model_->dims.n_text_ctx / 2, model_->dims.n_text_ctx - dec_->prompt_length());
  c.at_limit = static_cast<int>(d.tokens.size()) >= limit;
  c.logits = dec_->teacher_forced(x, c.forced);
  ++counts_.decodes;
  // The one-pass judgement must reproduce the decode it stands for.
  if (!judge(c, x).first)
    throw std::runtime_error(fmt::format(
        "{}: the teacher-forced pass does not reproduce the greedy decode's tokens", clip));
  return c;
}

std::pair<bool, double> BudgetRunner::judge(const ClipRun& clip, const Tensor& encoder_out) {
  const Tensor logits = dec_->teacher_forced(encoder_out, clip.forced, nullptr, false);
  ++counts_.decodes;
  const std::vector<int> choice = dec_->greedy_choices(logits);
  bool same = true;
  for (std::size_t s = 0; s < clip.tokens.size() && same; ++s) same = choice[s] == clip.tokens[s];
  if (same && !clip.at_limit) same = choice[clip.tokens.size()] == dec_->eot();
  const cmp::TranscriptImpact t =
      cmp::transcript_impact(clip.tokens, clip.tokens, clip.logits, logits, true);
  return {same, t.kl_mean};
}

Tensor BudgetRunner::tail(int tap, const Tensor& x) {
  const int n_layer = model_->dims.n_audio_layer;
  if (tap < 0 || tap > n_layer + 2) throw std::invalid_argument("budget: no such stage tap");
  ++counts_.tails;
  Tensor h = x;
  if (tap == 0) h = enc_->stem(h, nullptr);
  if (tap == n_layer + 2) return h;  // encoder.ln_post: the decoder reads it directly
  for (int i = std::max(0, tap - 1); i < n_layer; ++i) {
    h = enc_->block(i, h, nullptr);
    ++counts_.blocks;
  }
  return enc_->ln_post(h, nullptr);
}

Level BudgetRunner::evaluate(const std::vector<ClipRun>& clips, int tap, Perturbation shape,
                             double epsilon, uint64_t seed, const Criterion& c) {
  Level l;
  l.epsilon = epsilon;
  l.clips = static_cast<int>(clips.size());
  const std::string& tap_name = taps_.at(static_cast<std::size_t>(tap));
  const int channel_axis = tap == 0 ? 0 : 1;  // mel is [n_mels, frames]
  // Clips run on `jobs_` threads (each LibTorch op on one thread); results kept in clip order.
  std::vector<std::pair<bool, double>> res(clips.size());
  parallel_for(clips.size(), jobs_, [&](std::size_t i) {
    const ClipRun& clip = clips[i];
    const Tensor x = perturb(
        clip.stage_out.at(static_cast<std::size_t>(tap)), shape, epsilon,
        derive_seed(seed, clip.clip, tap_name, name_of(kPerturbationNames, shape)), channel_axis);
    res[i] = judge(clip, tail(tap, x));
  });
  double kl_sum = 0;
  for (std::size_t i = 0; i < clips.size(); ++i) {
    const auto [same, kl] = res[i];
    if (same) {
      ++l.kept;
    } else {
      ++l.changed;
      l.changed_clips.push_back(clips[i].clip);
    }
    kl_sum += kl;
    l.kl_max = std::max(l.kl_max, kl);
  }
  l.kl_mean = clips.empty() ? 0.0 : kl_sum / static_cast<double>(clips.size());
  l.pass = l.changed <= c.allowed(l.clips) && l.kl_mean <= c.kl_bound;
  return l;
}

}  // namespace wb::budget
