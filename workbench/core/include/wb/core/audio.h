// Audio input: decode (libsndfile: WAV/FLAC/OGG), downmix, resample to 16 kHz (libsamplerate).
#pragma once
#include <string>
#include <vector>

namespace wb {

inline constexpr int kSampleRate = 16000;
inline constexpr int kNFft = 400;
inline constexpr int kHop = 160;
inline constexpr int kChunkSeconds = 30;
inline constexpr int kNSamples = kSampleRate * kChunkSeconds;  // 480000
inline constexpr int kNFrames = kNSamples / kHop;              // 3000

struct Audio {
  std::vector<float> pcm;    // mono, 16 kHz, [-1, 1]; at most the first 30 s window
  double seconds = 0;        // length of pcm
  double total_seconds = 0;  // length of the whole file (only the first window is decoded)
  int source_rate = 0;
  int source_channels = 0;
};

// Decodes the first 30 s window (time and memory bounded whatever the file's length); throws
// std::runtime_error("<path>: <problem>") for unreadable or malformed files.
Audio load_audio(const std::string& path);
std::vector<float> resample(const std::vector<float>& mono, int from_rate, int to_rate);
// Whisper's pad_or_trim: zero-pad or cut to exactly kNSamples.
std::vector<float> pad_or_trim(const std::vector<float>& pcm, std::size_t length = kNSamples);

// Slaney-style mel filterbank (librosa.filters.mel(sr, n_fft, n_mels), norm="slaney", htk=False),
// computed in float64: [n_mels, n_fft/2 + 1] row-major.
std::vector<double> mel_filters(int n_mels, int n_fft = kNFft, int sample_rate = kSampleRate);

}  // namespace wb
