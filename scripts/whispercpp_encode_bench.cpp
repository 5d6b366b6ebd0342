// Encoder-only timing against whisper.cpp's library, for scripts/bench-whispercpp.sh (compiled
// there against the user's checkout; not part of the workbench build).
//
//   whispercpp_encode_bench MODEL THREADS
//
// The same calls as whisper.cpp's examples/bench/bench.cpp (context with flash attention on,
// whisper_set_mel with an empty mel, warm-up encodes, then one timed whisper_encode), without
// whisper-bench's 600+ decoder calls, which take about a minute per process on a 2-core machine
// and do not enter its encode time. Prints "encode_s SECONDS" (wall) and "encode_cpu_s SECONDS"
// (process CPU, all threads: on a loaded machine, wall time includes waiting for a core).
#include <sys/resource.h>
#include <whisper.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

static double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL THREADS\n", argv[0]);
    return 2;
  }
  const int threads = std::atoi(argv[2]);
  whisper_context_params cp = whisper_context_default_params();
  cp.use_gpu = false;
  cp.flash_attn = true;  // whisper-bench's default
  whisper_context* ctx = whisper_init_from_file_with_params(argv[1], cp);
  if (ctx == nullptr) {
    std::fprintf(stderr, "error: %s: failed to initialize whisper context\n", argv[1]);
    return 3;
  }
  if (whisper_set_mel(ctx, nullptr, 0, whisper_model_n_mels(ctx)) != 0) {
    std::fprintf(stderr, "error: failed to set mel\n");
    return 3;
  }
  for (int h = 0; h < 2; ++h)  // warm-up, as whisper-bench's "heat encoder" (twice)
    if (whisper_encode(ctx, 0, threads) != 0) {
      std::fprintf(stderr, "error: failed to encode\n");
      return 4;
    }
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  if (whisper_encode(ctx, 0, threads) != 0) {
    std::fprintf(stderr, "error: failed to encode\n");
    return 4;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double c = cpu_seconds() - c0;
  std::printf("encode_s %.6f\nencode_cpu_s %.6f\n", s, c);
  whisper_free(ctx);
  return 0;
}
