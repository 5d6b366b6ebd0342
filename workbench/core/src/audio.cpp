#include "wb/core/audio.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <samplerate.h>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace wb {

namespace {
// Source audio decoded beyond the first 30 s window: enough for the resampler's filter to see
// the same neighbourhood it would in the whole file, so the window's samples do not depend on
// where we stopped. Only the first window is ever used; a 2-hour file costs what 31 s cost.
constexpr double kMarginSeconds = 1.0;

uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// libsndfile clamps a RIFF/WAVE data chunk to the bytes present, so a file cut short (an
// interrupted copy or download) would decode as shorter audio without a word. Refuse it: the
// data chunk must fit in the file. Sizes 0 and 0xFFFFFFFF are what streaming writers put before
// they know the length; those, and every other format, are left to libsndfile.
void check_wav_data_chunk(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char head[12];
  if (!in.read(reinterpret_cast<char*>(head), 12) || std::memcmp(head, "RIFF", 4) != 0 ||
      std::memcmp(head + 8, "WAVE", 4) != 0)
    return;
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  uint64_t pos = 12;
  for (int chunks = 0; chunks < 4096 && pos + 8 <= size; ++chunks) {
    unsigned char ch[8];
    in.seekg(static_cast<std::streamoff>(pos));
    if (!in.read(reinterpret_cast<char*>(ch), 8)) return;
    const uint64_t len = le32(ch + 4);
    if (std::memcmp(ch, "data", 4) == 0) {
      if (len != 0 && len != 0xFFFFFFFFu && len > size - pos - 8)
        throw std::runtime_error(
            fmt::format("{}: truncated WAV (its data chunk declares {} bytes, the file holds {})",
                        path, len, size - pos - 8));
      return;
    }
    pos += 8 + len + (len & 1);
  }
}
}  // namespace

Audio load_audio(const std::string& path) {
  check_wav_data_chunk(path);
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (f == nullptr)
    throw std::runtime_error(
        fmt::format("{}: not a readable audio file ({})", path, sf_strerror(nullptr)));
  std::unique_ptr<SNDFILE, decltype(&sf_close)> guard(f, &sf_close);
  if (info.channels <= 0 || info.channels > 64 || info.samplerate < 1000 ||
      info.samplerate > 768000)
    throw std::runtime_error(fmt::format("{}: implausible header ({} channels, {} Hz)", path,
                                         info.channels, info.samplerate));
  if (info.frames < 0)
    throw std::runtime_error(fmt::format("{}: negative frame count {}", path, info.frames));
  // Read in blocks rather than trusting info.frames (a truncated file yields fewer frames, a
  // lying header more than the file holds), and stop after the first window plus a margin.
  const auto want =
      static_cast<sf_count_t>(std::ceil((kChunkSeconds + kMarginSeconds) * info.samplerate));
  std::vector<float> mono;
  std::vector<float> block(static_cast<std::size_t>(4096 * info.channels));
  while (static_cast<sf_count_t>(mono.size()) < want) {
    const sf_count_t got = sf_readf_float(
        f, block.data(), std::min<sf_count_t>(4096, want - static_cast<sf_count_t>(mono.size())));
    if (got <= 0) break;
    for (sf_count_t i = 0; i < got; ++i) {
      double s = 0;
      for (int c = 0; c < info.channels; ++c)
        s += block[static_cast<std::size_t>(i * info.channels + c)];
      mono.push_back(static_cast<float>(s / info.channels));
    }
  }
  if (sf_error(f) != SF_ERR_NO_ERROR)
    throw std::runtime_error(fmt::format("{}: decode error ({})", path, sf_strerror(f)));
  if (mono.empty()) throw std::runtime_error(fmt::format("{}: no audio samples", path));
  for (float v : mono)
    if (!std::isfinite(v))
      throw std::runtime_error(fmt::format("{}: non-finite sample values", path));
  Audio a;
  a.source_rate = info.samplerate;
  a.source_channels = info.channels;
  a.pcm = resample(mono, info.samplerate, kSampleRate);
  if (a.pcm.empty())
    throw std::runtime_error(
        fmt::format("{}: {} samples at {} Hz are too short to resample to {} Hz", path, mono.size(),
                    info.samplerate, kSampleRate));
  if (a.pcm.size() > static_cast<std::size_t>(kNSamples)) a.pcm.resize(kNSamples);
  a.seconds = static_cast<double>(a.pcm.size()) / kSampleRate;
  // What the file holds past the decoded part: libsndfile's frame count (for WAV it is clamped
  // to the bytes present, so a header claiming hours over a short body does not count).
  a.total_seconds = static_cast<sf_count_t>(mono.size()) < want
                        ? static_cast<double>(mono.size()) / info.samplerate
                        : static_cast<double>(info.frames) / info.samplerate;
  return a;
}

namespace {
// libsamplerate is loaded when a clip first needs resampling, not linked: most runs read 16 kHz
// audio, and its best-quality sinc tables are 1.5 MB that a packed tool (scripts/pack-cuda.sh)
// need not carry. WB_SAMPLERATE_LIB names another file to load (tests use a missing one).
struct SampleRateLib {
  decltype(&src_simple) simple = nullptr;
  decltype(&src_strerror) strerror = nullptr;
  std::string error;
};

const SampleRateLib& samplerate_lib() {
  static const SampleRateLib lib = [] {
    SampleRateLib l;
    const char* env = std::getenv("WB_SAMPLERATE_LIB");
    const std::string name = env != nullptr && *env != '\0' ? env : "libsamplerate.so.0";
    void* h = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) {
      l.simple = reinterpret_cast<decltype(&src_simple)>(::dlsym(h, "src_simple"));
      l.strerror = reinterpret_cast<decltype(&src_strerror)>(::dlsym(h, "src_strerror"));
    }
    if (l.simple == nullptr || l.strerror == nullptr) {
      const char* why = ::dlerror();
      l.simple = nullptr;
      l.error = fmt::format("cannot load {} ({}): install libsamplerate, or give 16 kHz audio",
                            name, why != nullptr ? why : "no src_simple in it");
    }
    return l;
  }();
  return lib;
}
}  // namespace

std::vector<float> resample(const std::vector<float>& in, int from, int to) {
  if (from == to) return in;
  const SampleRateLib& lib = samplerate_lib();
  if (lib.simple == nullptr)
    throw std::runtime_error(fmt::format("resample {} -> {} Hz: {}", from, to, lib.error));
  const double ratio = static_cast<double>(to) / from;
  std::vector<float> out(static_cast<std::size_t>(std::ceil(in.size() * ratio)) + 16);
  SRC_DATA d{};
  d.data_in = in.data();
  d.input_frames = static_cast<long>(in.size());
  d.data_out = out.data();
  d.output_frames = static_cast<long>(out.size());
  d.src_ratio = ratio;
  d.end_of_input = 1;
  if (int err = lib.simple(&d, SRC_SINC_BEST_QUALITY, 1); err != 0)
    throw std::runtime_error(fmt::format("resample {} -> {} Hz: {}", from, to, lib.strerror(err)));
  out.resize(static_cast<std::size_t>(d.output_frames_gen));
  return out;
}

std::vector<float> pad_or_trim(const std::vector<float>& pcm, std::size_t length) {
  std::vector<float> out(length, 0.0f);
  std::copy_n(pcm.begin(), std::min(length, pcm.size()), out.begin());
  return out;
}

}  // namespace wb
