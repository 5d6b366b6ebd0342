// wb run: transcribe a folder of clips against an expect file and report the word error rate.
//   wb run --model M --audio-dir D --expect-file F [--impl reference|candidate] [--fault ...]
//          [--report out.json] [--max-wer X] [--min-agreement Y] [--limit N] [--max-tokens N]
//          [--reference-report ref.json]
// The expect file has one line per clip, "<file>\t<text>" (file relative to --audio-dir; blank
// lines and lines starting with '#' are skipped). With --impl candidate the reference encoder
// also runs on every clip, and the report gives transcript agreement (identical token
// sequences) and the encoder-output statistics of both sides (encoder.ln_post: mean, std,
// cosine similarity). Agreement means an identical transcript text. --reference-report takes the
// reference transcripts from an earlier `wb run --impl reference --report` of the same model
// instead of decoding them again (the reference encoder still runs, for the statistics).
// Exit status 1 when --max-wer or --min-agreement is not met.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "command.h"
#include "pipeline.h"
#include "wb/compare/metrics.h"
#include "wb/compare/transcript.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"
#include "wb/core/wer.h"

namespace wb::cli {
namespace {

// Longest run of one token repeated back to back: the "decoder repeats one token" symptom.
int longest_run(const std::vector<int>& t) {
  int best = 0, cur = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    cur = (i > 0 && t[i] == t[i - 1]) ? cur + 1 : 1;
    best = std::max(best, cur);
  }
  return best;
}

nlohmann::json counts_json(const WerCounts& c) {
  return {{"substitutions", c.substitutions}, {"deletions", c.deletions},
          {"insertions", c.insertions},       {"errors", c.errors()},
          {"ref_words", c.ref_words},         {"wer", c.wer()}};
}

struct RunOpts {
  EncoderChoice enc;
  std::string model, audio_dir, expect, report;
  double max_wer = -1, min_agreement = -1;
  int limit = 0, max_tokens = 0;
  std::string reference_report;
  bool quiet = false;
};

// One `wb run`: the clips, the encoders, the running totals, and the pieces of the report.
class CorpusRun {
 public:
  explicit CorpusRun(const RunOpts& o) : o_(o) {}

  int run() {
    const auto t_start = std::chrono::steady_clock::now();
    clips_ = read_expect(o_.expect);
    if (o_.limit > 0 && static_cast<std::size_t>(o_.limit) < clips_.size())
      clips_.resize(static_cast<std::size_t>(o_.limit));
    with_ref_ = o_.enc.impl != Impl::reference;
    // Refused before any clip runs.
    if (o_.min_agreement >= 0 && !with_ref_)
      throw UsageError("--min-agreement needs --impl candidate");
    if (!o_.reference_report.empty() && !with_ref_)
      throw UsageError("--reference-report applies to --impl candidate only");
    model_ = load_model(o_.model);
    enc_ = make_encoder(model_, o_.enc);
    dec_ = std::make_unique<ReferenceDecoder>(model_, decoder_dtype(o_.enc));
    if (with_ref_) {
      ref_enc_ = make_encoder(model_, o_.enc.reference_twin());
    }
    if (!o_.reference_report.empty()) load_reference_report();
    dopts_.max_tokens = o_.max_tokens;
    for (const auto& c : clips_) run_clip(c);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const nlohmann::json summary = summarize(secs);
    if (!o_.report.empty()) write_report(summary);
    return gate();
  }

 private:
  // Timed as a whole: a clip's `seconds` are its mel + encoder + decode.
  RunResult transcribe(Encoder& e, const Audio& audio) {
    return run_pipeline(e, dec_.get(), audio, nullptr, true, dopts_);
  }

  void load_reference_report() {
    const auto j = nlohmann::json::parse(read_file(o_.reference_report));
    if (j.value("impl", "") != "reference" ||
        j.value("faults", nlohmann::json::array()).size() != 0)
      throw UsageError(o_.reference_report + ": not a report of 'wb run --impl reference'");
    if (j.value("model_sha256", "") != model_->sha256)
      throw UsageError(o_.reference_report + ": made with another model (model_sha256 differs)");
    for (const auto& c : j.at("clips")) {
      ref_texts_[c.at("file").get<std::string>()] = c.at("text").get<std::string>();
      if (c.contains("token_ids"))
        ref_tokens_[c.at("file").get<std::string>()] = c.at("token_ids").get<std::vector<int>>();
    }
  }

  void run_clip(const ExpectLine& c) {
    const Audio audio = load_audio(o_.audio_dir + "/" + c.file);
    const RunResult r = transcribe(*enc_, audio);
    const WerCounts wc = word_errors(c.text, r.decoded.text);
    total_ += wc;
    exact_ += wc.errors() == 0;
    const cmp::SideStats st = cmp::stats(r.encoder_out);
    sum_mean_ += st.mean;
    sum_std_ += st.std;
    const int run = longest_run(r.decoded.tokens);
    worst_run_ = std::max(worst_run_, run);
    nlohmann::json row = {{"file", c.file},
                          {"expected", c.text},
                          {"text", r.decoded.text},
                          {"tokens", r.decoded.tokens.size()},
                          {"token_ids", r.decoded.tokens},
                          {"longest_token_run", run},
                          {"encoder_out", {{"mean", st.mean}, {"std", st.std}}},
                          {"seconds", r.seconds_mel + r.seconds_encoder + r.seconds_decode},
                          {"seconds_decode", r.seconds_decode}};
    row.update(counts_json(wc));
    std::string mark = wc.errors() == 0 ? "ok " : fmt::format("{:>3}", wc.errors());
    if (with_ref_ && !against_reference(c, audio, r, row)) mark += " (differs from reference)";
    rows_.push_back(std::move(row));
    if (!o_.quiet) {
      fmt::print("{} [{}] {}\n", c.file, mark, r.decoded.text);
      if (wc.errors() != 0) fmt::print("    expected: {}\n", c.text);
    }
  }

  // The reference on the same clip: its transcript, encoder statistics and the transcript
  // impact of the candidate. Returns whether both transcripts agree.
  bool against_reference(const ExpectLine& c, const Audio& audio, const RunResult& r,
                         nlohmann::json& row) {
    const auto known = ref_texts_.find(c.file);
    const bool reuse = known != ref_texts_.end();
    RunResult rr = reuse ? run_pipeline(*ref_enc_, dec_.get(), audio, nullptr, false)
                         : transcribe(*ref_enc_, audio);
    if (reuse) {
      rr.decoded.text = known->second;
      const auto t = ref_tokens_.find(c.file);
      if (t != ref_tokens_.end()) rr.decoded.tokens = t->second;
    }
    const WerCounts rw = word_errors(c.text, rr.decoded.text);
    total_ref_ += rw;
    const bool same = rr.decoded.text == r.decoded.text;
    agree_ += same;
    const cmp::DiffMetrics dm = cmp::diff(rr.encoder_out, r.encoder_out);
    sum_ref_mean_ += dm.ref.mean;
    sum_ref_std_ += dm.ref.std;
    sum_cos_ += dm.cosine;
    row["reference"] = {{"text", rr.decoded.text},
                        {"text_from_report", reuse},
                        {"errors", rw.errors()},
                        {"agrees", same},
                        {"encoder_out", {{"mean", dm.ref.mean}, {"std", dm.ref.std}}},
                        {"encoder_out_cosine", dm.cosine}};
    if (!reuse || ref_tokens_.count(c.file) != 0) row["transcript_impact"] = impact(rr, r);
    return same;
  }

  // Both encoders' outputs teacher-forced on the reference's tokens.
  nlohmann::json impact(const RunResult& rr, const RunResult& r) {
    std::vector<int> forced = model_->vocab.initial_prompt();
    forced.insert(forced.end(), rr.decoded.tokens.begin(), rr.decoded.tokens.end());
    const cmp::TranscriptImpact x = cmp::transcript_impact(
        rr.decoded.tokens, r.decoded.tokens, dec_->teacher_forced(rr.encoder_out, forced),
        dec_->teacher_forced(r.encoder_out, forced), true);
    kl_max_ = std::max(kl_max_, x.kl_max);
    kl_sum_ += x.kl_mean;
    ++kl_clips_;
    loops_ += x.cand_rep.flagged ? 1 : 0;
    return {{"token_agreement", x.agreement()},
            {"first_diff", x.first_diff >= 0 ? nlohmann::json(x.first_diff) : nlohmann::json()},
            {"candidate_loops", x.cand_rep.flagged},
            {"teacher_forced_kl_mean", x.kl_mean},
            {"teacher_forced_kl_max", x.kl_max},
            {"teacher_forced_kl_max_step", x.kl_max_step}};
  }

  nlohmann::json summarize(double secs) const {
    const double n = static_cast<double>(clips_.size());
    nlohmann::json summary = {{"clips", clips_.size()},
                              {"exact_clips", exact_},
                              {"longest_token_run", worst_run_},
                              {"encoder_out", {{"mean", sum_mean_ / n}, {"std", sum_std_ / n}}},
                              {"seconds", secs}};
    summary.update(counts_json(total_));
    fmt::print("{}: {} clips, {} words, {} errors (S {} D {} I {}), WER {:.2f}%, {} clips exact\n",
               to_string(o_.enc.impl), clips_.size(), total_.ref_words, total_.errors(),
               total_.substitutions, total_.deletions, total_.insertions, 100.0 * total_.wer(),
               exact_);
    fmt::print("encoder output (encoder.ln_post) mean {:.4f} std {:.4f} (averaged over clips)\n",
               sum_mean_ / n, sum_std_ / n);
    if (!with_ref_) return summary;
    summary["reference"] = counts_json(total_ref_);
    summary["reference"]["encoder_out"] = {{"mean", sum_ref_mean_ / n}, {"std", sum_ref_std_ / n}};
    summary["agreement"] = static_cast<double>(agree_) / n;
    summary["agreeing_clips"] = agree_;
    summary["encoder_out_cosine"] = sum_cos_ / n;
    if (kl_clips_ > 0) {
      summary["teacher_forced_kl_mean"] = kl_sum_ / kl_clips_;
      summary["teacher_forced_kl_max"] = kl_max_;
      summary["candidate_looping_clips"] = loops_;
      fmt::print(
          "teacher-forced KL(ref||cand) per step: mean over clips {:.3g}, max {:.3g}; "
          "candidate transcripts that loop: {}\n",
          kl_sum_ / kl_clips_, kl_max_, loops_);
    }
    fmt::print(
        "reference: WER {:.2f}%, encoder output mean {:.4f} std {:.4f}; agreement {}/{} clips "
        "({:.1f}%), encoder output cosine {:.6f}\n",
        100.0 * total_ref_.wer(), sum_ref_mean_ / n, sum_ref_std_ / n, agree_, clips_.size(),
        100.0 * static_cast<double>(agree_) / n, sum_cos_ / n);
    return summary;
  }

  void write_report(const nlohmann::json& summary) const {
    nlohmann::json rep = {{"tool_version", tool_version()},
                          {"created", utc_now_iso8601()},
                          {"model", o_.model},
                          {"model_sha256", model_->sha256},
                          {"audio_dir", o_.audio_dir},
                          {"expect_file", o_.expect},
                          {"summary", summary},
                          {"clips", rows_}};
    rep.update(o_.enc.to_json());  // impl, dtype, precision, faults
    // transcripts may be invalid UTF-8
    write_file_atomic(o_.report,
                      rep.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }

  int gate() const {
    int status = 0;
    if (o_.max_wer >= 0 && total_.wer() > o_.max_wer) {
      fmt::print(stderr, "wb run: WER {:.2f}% is above --max-wer {:.2f}%\n", 100.0 * total_.wer(),
                 100.0 * o_.max_wer);
      status = 1;
    }
    if (o_.min_agreement >= 0) {
      const double a = static_cast<double>(agree_) / static_cast<double>(clips_.size());
      if (a < o_.min_agreement) {
        fmt::print(stderr, "wb run: agreement {:.1f}% is below --min-agreement {:.1f}%\n",
                   100.0 * a, 100.0 * o_.min_agreement);
        status = 1;
      }
    }
    return status;
  }

  const RunOpts& o_;
  std::vector<ExpectLine> clips_;
  bool with_ref_ = false;
  std::shared_ptr<const Checkpoint> model_;
  std::unique_ptr<Encoder> enc_, ref_enc_;
  std::unique_ptr<ReferenceDecoder> dec_;
  DecodeOptions dopts_;
  std::map<std::string, std::string> ref_texts_;
  std::map<std::string, std::vector<int>> ref_tokens_;
  WerCounts total_, total_ref_;
  std::size_t agree_ = 0, exact_ = 0;
  double sum_mean_ = 0, sum_std_ = 0, sum_ref_mean_ = 0, sum_ref_std_ = 0, sum_cos_ = 0;
  int worst_run_ = 0;
  double kl_max_ = 0.0, kl_sum_ = 0.0;  // teacher-forced KL over the clips (--impl candidate)
  int kl_clips_ = 0, loops_ = 0;
  nlohmann::json rows_ = nlohmann::json::array();
};

}  // namespace

void add_run(CLI::App& app, Registry& reg) {
  auto o = std::make_shared<RunOpts>();
  CLI::App* sub = app.add_subcommand("run",
                                     "transcribe every clip of an expect file and report the word "
                                     "error rate (and, for the candidate, "
                                     "agreement with the reference)");
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  sub->add_option("--audio-dir", o->audio_dir,
                  "folder the expect file's clip names are relative to")
      ->required();
  sub->add_option("--expect-file", o->expect, "lines '<file>\\t<expected text>'")->required();
  sub->add_option("--report", o->report, "write per-clip results and the summary as JSON");
  sub->add_option("--max-wer", o->max_wer, "exit 1 when the overall WER is above this (e.g. 0.10)");
  sub->add_option(
      "--min-agreement", o->min_agreement,
      "exit 1 when the share of clips transcribed exactly like the reference is below this "
      "(--impl candidate)");
  sub->add_option("--limit", o->limit, "only the first N clips")->check(CLI::NonNegativeNumber);
  sub->add_option("--max-tokens", o->max_tokens,
                  "stop each decode after N tokens (0: the decoder's own limit)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option(
      "--reference-report", o->reference_report,
      "reuse the transcripts of an earlier 'wb run --impl reference --report' (same model)");
  sub->add_flag("--quiet", o->quiet, "print the summary only");
  add_encoder_options(sub, o->enc);
  reg.add(sub, [o]() { return CorpusRun(*o).run(); });
}

}  // namespace wb::cli
