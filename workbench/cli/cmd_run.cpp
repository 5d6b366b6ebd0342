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

struct ExpectLine {
  std::string file, text;
};

std::vector<ExpectLine> read_expect(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open expect file");
  std::vector<ExpectLine> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    if (tab == std::string::npos || tab == 0)
      throw std::runtime_error(fmt::format("{}:{}: expected '<file>\\t<text>'", path, lineno));
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  if (out.empty()) throw std::runtime_error(path + ": no clips listed");
  return out;
}

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

}  // namespace

void add_run(CLI::App& app, Registry& reg) {
  struct Opts {
    EncoderChoice enc;
    std::string model, audio_dir, expect, report;
    double max_wer = -1, min_agreement = -1;
    int limit = 0, max_tokens = 0;
    std::string reference_report;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
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
  reg.add(sub, [o]() {
    using clock = std::chrono::steady_clock;
    const auto t_start = clock::now();
    auto clips = read_expect(o->expect);
    if (o->limit > 0 && static_cast<std::size_t>(o->limit) < clips.size()) clips.resize(o->limit);
    auto model = load_model(o->model);
    auto enc = make_encoder(model, o->enc);
    ReferenceDecoder dec(model, decoder_dtype(o->enc));
    const bool with_ref = o->enc.impl != "reference";
    std::unique_ptr<Encoder> ref_enc;
    if (with_ref) {
      EncoderChoice rc;
      rc.threads = o->enc.threads;
      ref_enc = make_encoder(model, rc);
    }
    std::map<std::string, std::string> ref_texts;
    std::map<std::string, std::vector<int>> ref_tokens;
    if (!o->reference_report.empty()) {
      if (!with_ref) throw UsageError("--reference-report applies to --impl candidate only");
      const auto j = nlohmann::json::parse(read_file(o->reference_report));
      if (j.value("impl", "") != "reference" ||
          j.value("faults", nlohmann::json::array()).size() != 0)
        throw UsageError(o->reference_report + ": not a report of 'wb run --impl reference'");
      if (j.value("model_sha256", "") != model->sha256)
        throw UsageError(o->reference_report + ": made with another model (model_sha256 differs)");
      for (const auto& c : j.at("clips")) {
        ref_texts[c.at("file").get<std::string>()] = c.at("text").get<std::string>();
        if (c.contains("token_ids"))
          ref_tokens[c.at("file").get<std::string>()] = c.at("token_ids").get<std::vector<int>>();
      }
    }
    DecodeOptions dopts;
    dopts.max_tokens = o->max_tokens;
    // Timed as a whole: a clip's `seconds` are its mel + encoder + decode.
    auto transcribe = [&](Encoder& e, const Audio& audio) {
      return run_pipeline(e, dec, audio, nullptr, true, dopts);
    };

    WerCounts total, total_ref;
    std::size_t agree = 0, exact = 0;
    double sum_mean = 0, sum_std = 0, sum_ref_mean = 0, sum_ref_std = 0, sum_cos = 0;
    int worst_run = 0;
    double kl_max = 0.0, kl_sum = 0.0;  // teacher-forced KL over the clips (with --impl candidate)
    int kl_clips = 0, loops = 0;
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& c : clips) {
      const Audio audio = load_audio(o->audio_dir + "/" + c.file);
      const RunResult r = transcribe(*enc, audio);
      const WerCounts wc = word_errors(c.text, r.decoded.text);
      total += wc;
      exact += wc.errors() == 0;
      const cmp::SideStats st = cmp::stats(r.encoder_out);
      sum_mean += st.mean;
      sum_std += st.std;
      const int run = longest_run(r.decoded.tokens);
      worst_run = std::max(worst_run, run);
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
      if (with_ref) {
        const auto known = ref_texts.find(c.file);
        const bool reuse = known != ref_texts.end();
        RunResult rr = reuse ? run_pipeline(*ref_enc, dec, audio, nullptr, false)
                             : transcribe(*ref_enc, audio);
        if (reuse) {
          rr.decoded.text = known->second;
          const auto t = ref_tokens.find(c.file);
          if (t != ref_tokens.end()) rr.decoded.tokens = t->second;
        }
        const WerCounts rw = word_errors(c.text, rr.decoded.text);
        total_ref += rw;
        const bool same = rr.decoded.text == r.decoded.text;
        agree += same;
        const cmp::DiffMetrics dm = cmp::diff(rr.encoder_out, r.encoder_out);
        const cmp::SideStats& rs = dm.ref;
        const double cs = dm.cosine;
        sum_ref_mean += rs.mean;
        sum_ref_std += rs.std;
        sum_cos += cs;
        row["reference"] = {{"text", rr.decoded.text},
                            {"text_from_report", reuse},
                            {"errors", rw.errors()},
                            {"agrees", same},
                            {"encoder_out", {{"mean", rs.mean}, {"std", rs.std}}},
                            {"encoder_out_cosine", cs}};
        if (!reuse || ref_tokens.count(c.file) != 0) {
          // Transcript impact: both encoders' outputs teacher-forced on the reference's tokens.
          std::vector<int> forced = model->vocab.initial_prompt();
          forced.insert(forced.end(), rr.decoded.tokens.begin(), rr.decoded.tokens.end());
          const cmp::TranscriptImpact x = cmp::transcript_impact(
              rr.decoded.tokens, r.decoded.tokens, dec.teacher_forced(rr.encoder_out, forced),
              dec.teacher_forced(r.encoder_out, forced), true);
          kl_max = std::max(kl_max, x.kl_max);
          kl_sum += x.kl_mean;
          ++kl_clips;
          loops += x.cand_rep.flagged ? 1 : 0;
          row["transcript_impact"] = {
              {"token_agreement", x.agreement()},
              {"first_diff", x.first_diff >= 0 ? nlohmann::json(x.first_diff) : nlohmann::json()},
              {"candidate_loops", x.cand_rep.flagged},
              {"teacher_forced_kl_mean", x.kl_mean},
              {"teacher_forced_kl_max", x.kl_max},
              {"teacher_forced_kl_max_step", x.kl_max_step}};
        }
        if (!same) mark += " (differs from reference)";
      }
      rows.push_back(std::move(row));
      if (!o->quiet) {
        fmt::print("{} [{}] {}\n", c.file, mark, r.decoded.text);
        if (wc.errors() != 0) fmt::print("    expected: {}\n", c.text);
      }
    }
    const double n = static_cast<double>(clips.size());
    const double secs = std::chrono::duration<double>(clock::now() - t_start).count();
    nlohmann::json summary = {{"clips", clips.size()},
                              {"exact_clips", exact},
                              {"longest_token_run", worst_run},
                              {"encoder_out", {{"mean", sum_mean / n}, {"std", sum_std / n}}},
                              {"seconds", secs}};
    summary.update(counts_json(total));
    fmt::print("{}: {} clips, {} words, {} errors (S {} D {} I {}), WER {:.2f}%, {} clips exact\n",
               o->enc.impl, clips.size(), total.ref_words, total.errors(), total.substitutions,
               total.deletions, total.insertions, 100.0 * total.wer(), exact);
    fmt::print("encoder output (encoder.ln_post) mean {:.4f} std {:.4f} (averaged over clips)\n",
               sum_mean / n, sum_std / n);
    if (with_ref) {
      summary["reference"] = counts_json(total_ref);
      summary["reference"]["encoder_out"] = {{"mean", sum_ref_mean / n}, {"std", sum_ref_std / n}};
      summary["agreement"] = static_cast<double>(agree) / n;
      summary["agreeing_clips"] = agree;
      summary["encoder_out_cosine"] = sum_cos / n;
      if (kl_clips > 0) {
        summary["teacher_forced_kl_mean"] = kl_sum / kl_clips;
        summary["teacher_forced_kl_max"] = kl_max;
        summary["candidate_looping_clips"] = loops;
        fmt::print(
            "teacher-forced KL(ref||cand) per step: mean over clips {:.3g}, max {:.3g}; "
            "candidate transcripts that loop: {}\n",
            kl_sum / kl_clips, kl_max, loops);
      }
      fmt::print(
          "reference: WER {:.2f}%, encoder output mean {:.4f} std {:.4f}; agreement {}/{} clips "
          "({:.1f}%), "
          "encoder output cosine {:.6f}\n",
          100.0 * total_ref.wer(), sum_ref_mean / n, sum_ref_std / n, agree, clips.size(),
          100.0 * static_cast<double>(agree) / n, sum_cos / n);
    }
    if (!o->report.empty()) {
      nlohmann::json rep = {{"tool_version", tool_version()},
                            {"created", utc_now_iso8601()},
                            {"model", o->model},
                            {"model_sha256", model->sha256},
                            {"audio_dir", o->audio_dir},
                            {"expect_file", o->expect},
                            {"impl", o->enc.impl},
                            {"dtype", o->enc.dtype},
                            {"precision", o->enc.precision},
                            {"faults", o->enc.faults},
                            {"summary", summary},
                            {"clips", rows}};
      // transcripts may be invalid UTF-8
      write_file_atomic(o->report,
                        rep.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    }
    int status = 0;
    if (o->max_wer >= 0 && total.wer() > o->max_wer) {
      fmt::print(stderr, "wb run: WER {:.2f}% is above --max-wer {:.2f}%\n", 100.0 * total.wer(),
                 100.0 * o->max_wer);
      status = 1;
    }
    if (o->min_agreement >= 0) {
      if (!with_ref) throw UsageError("--min-agreement needs --impl candidate");
      const double a = static_cast<double>(agree) / n;
      if (a < o->min_agreement) {
        fmt::print(stderr, "wb run: agreement {:.1f}% is below --min-agreement {:.1f}%\n",
                   100.0 * a, 100.0 * o->min_agreement);
        status = 1;
      }
    }
    return status;
  });
}

}  // namespace wb::cli
