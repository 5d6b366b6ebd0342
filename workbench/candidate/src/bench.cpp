#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "ops.h"
#include "thread_pool.h"
#include "wb/candidate/candidate_bench.h"

namespace wb {

GemmPeak measure_gemm_peak(int threads, int n, int repeats) {
  using clock = std::chrono::steady_clock;
  GemmPeak g;
  g.n = n;
  g.threads = threads;
  const auto nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  std::vector<float> a(nn), b(nn), c(nn);
  for (std::size_t i = 0; i < nn; ++i) {
    a[i] = static_cast<float>(i % 13) * 0.01f - 0.06f;
    b[i] = static_cast<float>(i % 7) * 0.02f - 0.05f;
  }
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  auto best = [&](auto&& fn) {
    double t = 1e30;
    fn();  // warm-up
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = clock::now();
      fn();
      t = std::min(t, std::chrono::duration<double>(clock::now() - t0).count());
    }
    return flops / t * 1e-9;
  };
  const int prev = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  g.openblas_gflops = best([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  });
  openblas_set_num_threads(1);
  {
    cand::ThreadPool pool(threads);
    g.row_split_gflops = best([&] {
      pool.parallel_for(
          n,
          [&](int64_t r0, int64_t r1, int) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(r1 - r0), n, n,
                        1.0f, a.data() + r0 * n, n, b.data(), n, 0.0f, c.data() + r0 * n, n);
          },
          8);
    });
    cand::OpContext ctx;
    ctx.k = &cand::kernels(cand::select_isa());
    ctx.pool = &pool;
    const cand::WeightMatrix w(b.data(), n, n, cand::Precision::f32, cand::GemmBackend::onednn);
    g.onednn_gflops = best([&] { cand::linear(ctx, a.data(), n, n, w, c.data(), n, {}); });
  }
  openblas_set_num_threads(prev);
  return g;
}

double encoder_flops(const ModelDims& d) {
  const double t = d.n_audio_ctx, c = d.n_audio_state, m = d.n_mels;
  double f = 2 * (2 * t) * c * (3 * m);            // conv1
  f += 2 * t * c * (3 * c);                        // conv2
  const double block = 2 * t * c * (3 * c)         // q, k, v
                       + 2 * (2 * t * t * c)       // q k^T and P v over all heads
                       + 2 * t * c * c             // out projection
                       + 2 * (2 * t * c * 4 * c);  // fc1, fc2
  return f + d.n_audio_layer * block;
}

}  // namespace wb
