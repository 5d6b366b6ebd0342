// wb dump: run one implementation on one audio file and write every selected tap to HDF5.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "command.h"
#include "pipeline.h"
#include "wb/core/dump.h"
#include "wb/core/ref_cache.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"

namespace wb::cli {

void add_dump(CLI::App& app, Registry& reg) {
  struct Opts {
    EncoderChoice enc;
    std::string model, audio, out, taps = "all", store = "float32", teacher, ref_cache;
    int compress = 0;
    bool no_decode = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "dump", "run an encoder (and the reference decoder) and dump taps to HDF5");
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  sub->add_option("--audio", o->audio, "audio file (WAV, FLAC, OGG); first 30 s window")
      ->required();
  sub->add_option("-o,--output", o->out, "output .h5 (written atomically)")->required();
  sub->add_option(
      "--taps", o->taps,
      "taps: globs or levels (all, encoder, decoder, blocks, minimal), comma-separated");
  sub->add_option("--store", o->store, "storage dtype of tap datasets")
      ->check(CLI::IsMember({"float32", "float16", "float64"}));
  sub->add_option("--compress", o->compress, "gzip level for tap datasets")
      ->check(CLI::Range(0, 9));
  sub->add_flag("--no-decode", o->no_decode, "skip greedy decoding (encoder taps only)");
  sub->add_option("--teacher-tokens", o->teacher,
                  "REF.h5: decoder taps (and logits) teacher-forced on that dump's tokens instead "
                  "of this run's own, so wb compare can measure KL per step; the own transcript "
                  "is still decoded and stored");
  sub->add_option("--ref-cache", o->ref_cache,
                  "--impl reference: take the dump from this reference cache folder when it holds "
                  "one made with the same settings, else make it and store it there "
                  "(wb/core/ref_cache.h; wb sweep and bisect-layers share it)");
  add_encoder_options(sub, o->enc);
  reg.add(sub, [o]() {
    TapSelector sel(o->taps);
    auto model = load_model(o->model);
    sel.check_against(model->dims, !o->no_decode);
    std::optional<std::vector<int>> teacher;
    if (!o->teacher.empty()) {
      if (o->no_decode) throw UsageError("--teacher-tokens needs decoding (drop --no-decode)");
      const DumpReader tr(o->teacher);
      if (!tr.meta().model_sha256.empty() && tr.meta().model_sha256 != model->sha256)
        throw std::runtime_error(o->teacher + ": a dump of another model (model_sha256 differs)");
      teacher = tr.tokens();
      if (!teacher) throw std::runtime_error(o->teacher + ": holds no /decode/tokens to force");
    }
    std::optional<RefCache> cache;
    nlohmann::json key;
    if (!o->ref_cache.empty()) {
      if (o->enc.impl != Impl::reference)
        throw UsageError("--ref-cache holds reference dumps: it goes with --impl reference");
      cache.emplace(o->ref_cache);
      nlohmann::json decode = {{"decode", !o->no_decode}};
      if (teacher) decode["teacher_tokens"] = *teacher;
      key = reference_cache_key(*model, sha256_file(o->audio), o->enc, o->store, o->taps, decode);
      if (auto hit = cache->find(key)) {
        copy_file_atomic(*hit, o->out);
        fmt::print("wrote {} (from the reference cache {})\n", o->out, cache->dir());
        return 0;
      }
    }
    const Audio audio = load_audio(o->audio);
    auto enc = make_encoder(model, o->enc);
    // The decoder only when this dump decodes: a dump without (a candidate's, --no-decode) then
    // never opens the LibTorch reference.
    std::optional<ReferenceDecoder> dec;
    if (!o->no_decode) dec.emplace(model, decoder_dtype(o->enc));
    DumpMeta m;
    m.implementation = enc->implementation();
    const nlohmann::json info = enc->run_info();
    m.precision = info.value("precision", o->enc.precision_name());
    m.device = info.value("device", "cpu");
    m.model_sha256 = model->sha256;
    m.dims = model->dims;
    m.audio_sha256 = sha256_file(o->audio);
    m.audio_name = std::filesystem::path(o->audio).filename().string();
    m.tool_version = tool_version();
    m.created = utc_now_iso8601();
    m.threads = info.value("threads", o->enc.threads);
    m.run_info = info;
    m.run_info["model_format"] = model->format;
    m.run_info["model_stored_dtype"] = model->stored_dtype;
    m.run_info["audio_seconds"] = audio.total_seconds;
    DumpWriter w(o->out, m, sel, DumpOptions{dtype_from_name(o->store), o->compress});
    // With --teacher-tokens the greedy decode is untapped and a teacher-forced pass over the
    // other dump's tokens reports the decoder taps.
    RunResult r = run_pipeline(*enc, dec ? &*dec : nullptr, audio, &w, !o->no_decode && !teacher);
    if (teacher) {
      const auto t0 = std::chrono::steady_clock::now();
      r.decoded = dec->greedy(r.encoder_out, nullptr);
      std::vector<int> forced = model->vocab.initial_prompt();
      forced.insert(forced.end(), teacher->begin(), teacher->end());
      dec->teacher_forced(r.encoder_out, forced, &w);
      r.seconds_decode =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      w.set_teacher_tokens(*teacher);
    }
    if (!o->no_decode) w.set_decode(r.decoded.tokens, r.decoded.text);
    w.set_timing("mel", r.seconds_mel);
    w.set_timing("encoder", r.seconds_encoder);
    w.set_timing("decode", r.seconds_decode);
    w.finish();
    print_port_timing(*enc, o->enc);
    if (cache)
      cache->put(key, [&](const std::string& p) { std::filesystem::copy_file(o->out, p); });
    fmt::print("wrote {} ({} taps, {} {}, encoder {:.3f} s)\n", o->out, w.taps_written(),
               m.implementation, m.precision, r.seconds_encoder);
    if (audio.total_seconds > kChunkSeconds)
      fmt::print(stderr,
                 "wb: note: {} is {:.1f} s long; only the first 30 s window was processed\n",
                 o->audio, audio.total_seconds);
    if (!o->no_decode) fmt::print("text: {}\n", r.decoded.text);
    return 0;
  });
}

}  // namespace wb::cli
