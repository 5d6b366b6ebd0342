#include "wb/core/audio.h"

#include <fmt/format.h>
#include <samplerate.h>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
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

std::vector<float> resample(const std::vector<float>& in, int from, int to) {
  if (from == to) return in;
  const double ratio = static_cast<double>(to) / from;
  std::vector<float> out(static_cast<std::size_t>(std::ceil(in.size() * ratio)) + 16);
  SRC_DATA d{};
  d.data_in = in.data();
  d.input_frames = static_cast<long>(in.size());
  d.data_out = out.data();
  d.output_frames = static_cast<long>(out.size());
  d.src_ratio = ratio;
  d.end_of_input = 1;
  if (int err = src_simple(&d, SRC_SINC_BEST_QUALITY, 1); err != 0)
    throw std::runtime_error(fmt::format("resample {} -> {} Hz: {}", from, to, src_strerror(err)));
  out.resize(static_cast<std::size_t>(d.output_frames_gen));
  return out;
}

std::vector<float> pad_or_trim(const std::vector<float>& pcm, std::size_t length) {
  std::vector<float> out(length, 0.0f);
  std::copy_n(pcm.begin(), std::min(length, pcm.size()), out.begin());
  return out;
}

// librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney"):
// Slaney's mel scale (linear below 1 kHz, log above), triangles on the FFT bin frequencies,
// each normalised to unit area (2 / (f_hi - f_lo)).
std::vector<double> mel_filters(int n_mels, int n_fft, int sr) {
  if (n_mels <= 0 || n_fft <= 0)
    throw std::invalid_argument("mel_filters: n_mels and n_fft must be positive");
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  auto hz_to_mel = [&](double f) {
    return f >= min_log_hz ? min_log_mel + std::log(f / min_log_hz) / logstep : f / f_sp;
  };
  auto mel_to_hz = [&](double m) {
    return m >= min_log_mel ? min_log_hz * std::exp(logstep * (m - min_log_mel)) : f_sp * m;
  };
  const int n_bins = n_fft / 2 + 1;
  std::vector<double> fft_freqs(n_bins);
  for (int k = 0; k < n_bins; ++k) fft_freqs[k] = k * static_cast<double>(sr) / n_fft;
  const double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(sr / 2.0);
  std::vector<double> pts(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i)
    pts[i] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (n_mels + 1));
  std::vector<double> w(static_cast<std::size_t>(n_mels) * n_bins, 0.0);
  for (int m = 0; m < n_mels; ++m) {
    const double lo = pts[m], c = pts[m + 1], hi = pts[m + 2];
    const double enorm = 2.0 / (hi - lo);
    for (int k = 0; k < n_bins; ++k) {
      const double up = (fft_freqs[k] - lo) / (c - lo), down = (hi - fft_freqs[k]) / (hi - c);
      w[static_cast<std::size_t>(m) * n_bins + k] = std::max(0.0, std::min(up, down)) * enorm;
    }
  }
  return w;
}

}  // namespace wb
