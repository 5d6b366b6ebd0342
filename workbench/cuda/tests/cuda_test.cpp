// wb_cuda kernels against float64 CPU computations on odd shapes. Without a usable GPU the binary
// prints why and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE), never as passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "attention_cudnn.h"
#include "device.h"
#include "gemm_gelu_cudnn.h"
#include "kernels.h"
#include "wb/core/faults.h"
#include "wb/core/numerics.h"
#include "wb/core/taps.h"
#include "wb/core/tensor.h"
#include "wb/cuda/cuda_encoder.h"
#include "wb/testing/reference_math.h"

namespace {

using wb::cuda::Act;
using wb::cuda::Buf;
using wb::cuda::ck;

constexpr uint32_t kSeed = 20261127;

std::vector<float> randn(std::size_t n, uint32_t seed, float scale = 1.0f, float offset = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = offset + scale * nd(rng);
  return v;
}

Buf up(const std::vector<float>& h) {
  Buf b(h.size() * 4);
  ck(cudaMemcpy(b.get(), h.data(), h.size() * 4, cudaMemcpyHostToDevice), "upload");
  return b;
}
std::vector<float> down(const Buf& b, std::size_t n) {
  std::vector<float> h(n);
  ck(cudaDeviceSynchronize(), "sync");
  ck(cudaMemcpy(h.data(), b.get(), n * 4, cudaMemcpyDeviceToHost), "download");
  return h;
}
// Order of checks as everywhere (STYLE.md 7): NaN, Inf, then relative L2 against float64.
double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    REQUIRE_FALSE(std::isnan(got[i]));
    REQUIRE_FALSE(std::isinf(got[i]));
    const double d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}
float round_bf16(float x) { return wb::bf16_to_float(wb::float_to_bf16(x)); }

}  // namespace

// The ln-fp16 fault's kernel against the shared definition (wb/core/numerics.h) run on the host,
// as the CPU candidate runs it. Every operation is rounded to float16 except the last multiply-add
// (y = h(h(d * rstd) * g + b)), which nvcc may fuse: so at most one float16 unit apart.
TEST_CASE("layer_norm_f16_stats: the shared float16-statistics definition, on the device") {
  for (const auto [rows, cols] : {std::pair{37, 389}, std::pair{3, 1280}}) {
    const std::string id = "ln-f16 rows=" + std::to_string(rows) + " cols=" + std::to_string(cols);
    const auto x = randn(static_cast<std::size_t>(rows) * cols, kSeed + rows, 3.0f, 5.0f);
    const auto g = randn(cols, kSeed + 1, 0.2f, 1.0f), b = randn(cols, kSeed + 2, 0.1f);
    Buf dx = up(x), dg = up(g), db = up(b), dy(x.size() * 4);
    wb::cuda::launch_layer_norm_f16_stats(dx.f(), dg.f(), db.f(), dy.f(), nullptr, Act::f32, rows,
                                          cols, wb::kLayerNormEps, nullptr);
    const auto y = down(dy, x.size());
    std::vector<float> want(x.size());
    auto h = [](float v) { return wb::half_to_float(wb::float_to_half(v)); };
    for (int r = 0; r < rows; ++r)
      wb::layer_norm_f16_stats_row(x.data() + r * cols, cols, g.data(), b.data(), wb::kLayerNormEps,
                                   h, [&](int c, float v) { want[r * cols + c] = v; });
    int same = 0, over = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      REQUIRE_FALSE(std::isnan(y[i]));
      REQUIRE_FALSE(std::isinf(y[i]));
      const float unit = std::ldexp(1.0f, std::ilogb(std::max(std::fabs(want[i]), 6.1e-5f)) - 10);
      same += y[i] == want[i];
      over += std::fabs(y[i] - want[i]) > unit;
    }
    MESSAGE(id << ": " << same << "/" << y.size() << " bit-identical to the host, " << over
               << " more than one float16 unit apart");
    CHECK(over == 0);
  }
}

TEST_CASE("layer_norm: float32 statistics vs float64, odd widths") {
  // Every kernel of launch_layer_norm: 389 columns the block-per-row kernel; 1280 the warp
  // kernel, with gamma and beta preloaded (5 rows) and not (2100 rows, over kLnPreloadRows); up
  // to 768 the one- or two-warp row kernel, 70000 rows more than its grid (a block takes several).
  for (const auto [rows, cols] :
       {std::pair{37, 389}, std::pair{5, 1280}, std::pair{2100, 1280}, std::pair{1, 64},
        std::pair{2100, 384}, std::pair{3, 512}, std::pair{70000, 768}}) {
    const std::string id = "ln rows=" + std::to_string(rows) + " cols=" + std::to_string(cols);
    const auto x = randn(static_cast<std::size_t>(rows) * cols, kSeed + rows, 3.0f, 5.0f);
    const auto g = randn(cols, kSeed + 1, 0.2f, 1.0f), b = randn(cols, kSeed + 2, 0.1f);
    Buf dx = up(x), dg = up(g), db = up(b), dy(x.size() * 4);
    wb::cuda::launch_layer_norm(dx.f(), dg.f(), db.f(), dy.f(), nullptr, Act::f32, rows, cols,
                                wb::kLayerNormEps, nullptr);
    const auto y = down(dy, x.size());
    std::vector<double> want(x.size());
    for (int r = 0; r < rows; ++r) {
      double m = 0, v = 0;
      for (int c = 0; c < cols; ++c) m += x[r * cols + c];
      m /= cols;
      for (int c = 0; c < cols; ++c) v += (x[r * cols + c] - m) * (x[r * cols + c] - m);
      v /= cols;
      for (int c = 0; c < cols; ++c)
        want[r * cols + c] = (x[r * cols + c] - m) / std::sqrt(v + wb::kLayerNormEps) * g[c] + b[c];
    }
    const double e = rel_l2(y, want);
    // float32 epsilon x a few x log2(cols) for the reductions
    const double tol = 1.2e-7 * 8 * std::log2(cols + 1.0);
    MESSAGE(id << " seed " << kSeed << ": rel L2 " << e << " (tol " << tol << ")");
    CHECK(e < tol);
  }
}

// The stem's data movement is exact, and its fused passes (conv1's GELU inside conv2's im2col,
// conv2's GELU with the positions) give the bits of the separate kernels they replace.
TEST_CASE("stem: im2col exact; GELU fused into im2col and into the positions' add, same bits") {
  // 12 channels: four a thread in conv2's im2col; 10: one a thread
  for (const int c : {12, 10}) {
    const int nm = 5, t1 = 37, t2 = 2 * t1, nb = 2;
    const auto mel = randn(static_cast<std::size_t>(nb) * nm * t2, kSeed);
    const auto h = randn(static_cast<std::size_t>(nb) * t2 * c, kSeed + 1, 2.0f);
    const auto pos = randn(static_cast<std::size_t>(t1) * c, kSeed + 2);
    Buf dmel = up(mel), dh = up(h), dpos = up(pos);
    for (const int pad : {1, 0}) {  // 1: Whisper's; 0: the conv-pad fault's
      Buf col1(static_cast<std::size_t>(nb) * t2 * 3 * nm * 4);
      wb::cuda::launch_im2col_conv1(dmel.f(), col1.get(), Act::f32, nm, t2, pad, nullptr, nb);
      const auto g1 = down(col1, static_cast<std::size_t>(nb) * t2 * 3 * nm);
      int bad = 0;
      for (int b = 0; b < nb; ++b)
        for (int t = 0; t < t2; ++t)
          for (int ci = 0; ci < nm; ++ci)
            for (int k = 0; k < 3; ++k) {
              const int src = t + k - pad;
              const float want = src >= 0 && src < t2 ? mel[(b * nm + ci) * t2 + src] : 0.0f;
              bad += g1[((b * t2 + t) * nm + ci) * 3 + k] != want;
            }
      CHECK_MESSAGE(bad == 0, "im2col conv1 pad " << pad << ": " << bad << " wrong");
      const std::size_t n2 = static_cast<std::size_t>(nb) * t1 * 3 * c;
      Buf col2(n2 * 4);
      wb::cuda::launch_im2col_conv2(dh.f(), col2.get(), Act::f32, c, t2, t1, pad, nullptr, nb);
      const auto g2 = down(col2, n2);
      bad = 0;
      for (int b = 0; b < nb; ++b)
        for (int t = 0; t < t1; ++t)
          for (int k = 0; k < 3; ++k)
            for (int ci = 0; ci < c; ++ci) {
              const int src = 2 * t + k - pad;
              const float want = src >= 0 && src < t2 ? h[(b * t2 + src) * c + ci] : 0.0f;
              bad += g2[((b * t1 + t) * 3 + k) * c + ci] != want;
            }
      CHECK_MESSAGE(bad == 0, "im2col conv2 C " << c << " pad " << pad << ": " << bad << " wrong");
      // GELU on the way == GELU first, then im2col: float32 and 16-bit outputs, both GELUs
      for (const Act a : {Act::f32, Act::bf16, Act::f16})
        for (const bool tanh : {false, true}) {
          const std::size_t bytes = n2 * (a == Act::f32 ? 4 : 2);
          Buf g(h.size() * 4), two(bytes), one(bytes);
          wb::cuda::launch_gelu(dh.f(), g.f(), nullptr, Act::f32, h.size(), tanh, nullptr);
          wb::cuda::launch_im2col_conv2(g.f(), two.get(), a, c, t2, t1, pad, nullptr, nb);
          wb::cuda::launch_im2col_conv2(dh.f(), one.get(), a, c, t2, t1, pad, nullptr, nb, true,
                                        tanh);
          std::vector<unsigned char> h2(bytes), h1(bytes);
          ck(cudaDeviceSynchronize(), "sync");
          ck(cudaMemcpy(h2.data(), two.get(), bytes, cudaMemcpyDeviceToHost), "download");
          ck(cudaMemcpy(h1.data(), one.get(), bytes, cudaMemcpyDeviceToHost), "download");
          CHECK_MESSAGE(h1 == h2, "im2col conv2 + GELU, act " << static_cast<int>(a) << " tanh "
                                                              << tanh << " pad " << pad);
        }
    }
    // GELU + positions (each clip's) == GELU, then the add: four a thread (the stem's shapes) and
    // one a thread (a clip of 111 values)
    for (const int per : {t1 * c, 111}) {
      const std::size_t n = static_cast<std::size_t>(nb) * per;
      const auto x = randn(n, kSeed + 3, 2.0f);
      for (const bool tanh : {false, true}) {
        Buf dx = up(x), two(n * 4), one = up(x);
        wb::cuda::launch_gelu(dx.f(), two.f(), nullptr, Act::f32, n, tanh, nullptr);
        wb::cuda::launch_add(two.f(), dpos.f(), two.f(), n, nullptr, per);
        wb::cuda::launch_gelu_add(one.f(), dpos.f(), one.f(), n, per, tanh, nullptr);
        const auto a = down(two, n), b = down(one, n);
        int bad = 0;
        for (std::size_t i = 0; i < n; ++i) bad += std::memcmp(&a[i], &b[i], 4) != 0;
        CHECK_MESSAGE(bad == 0, "GELU + positions, " << per << " a clip, tanh " << tanh << ": "
                                                     << bad << " differ");
      }
    }
  }
}

TEST_CASE("gelu: exact erf vs float64; the tanh fault differs") {
  for (const int n : {4099, 4096}) {  // scalar and float4 paths
    std::vector<float> x(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = -8.0f + 16.0f * i / (x.size() - 1);
    Buf dx = up(x), dy(x.size() * 4), dt(x.size() * 4);
    wb::cuda::launch_gelu(dx.f(), dy.f(), nullptr, Act::f32, x.size(), false, nullptr);
    wb::cuda::launch_gelu(dx.f(), dt.f(), nullptr, Act::f32, x.size(), true, nullptr);
    const auto y = down(dy, x.size()), yt = down(dt, x.size());
    double max_abs = 0, max_tanh = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double w = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
      max_abs = std::max(max_abs, std::abs(y[i] - w));
      max_tanh = std::max(max_tanh, std::abs(yt[i] - w));
    }
    MESSAGE("gelu n=" << n << ": erf max abs " << max_abs << ", tanh approximation max abs "
                      << max_tanh);
    CHECK(max_abs < 4e-6);
    CHECK(max_tanh > 1e-4);  // the gelu-tanh fault must be visible
  }
}

// The 16-bit modes' GELU (gelu_16: the GELU kernel in place on 16-bit pre-activations, and the
// fused wgmma kernel) on every finite bfloat16 and float16 value with |x| <= 13 against float64
// (x erfc(-x / sqrt 2) / 2: the 1 + erf form cancels in float64 too below x = -8): its float32
// result is within 2.7e-6 relative of the GELU for x > -6 and 8.0e-6 down to -13 (its float32
// operations emulated against float64, flash_common.cuh; the rounding of x^2 / 2 in the
// exponential dominates there), far below a 16-bit unit roundoff, so
// rounded to 16 bits it is the float64 value's rounding or, next to a rounding midpoint, the value
// beside it: within one 16-bit spacing of the float64 GELU (two spacings would need a relative
// error of half a spacing, 2^-9 / 2^-12).
// Beyond |x| = 13.2 the flushed exponential gives x or 0 (checked too). The tanh form (the
// gelu-tanh fault) cancels in float32 for x < -4 (1 + tanh), so it is only required to differ
// from the erf GELU at 16 bits: the fault stays visible.
TEST_CASE(
    "gelu16: every 16-bit value with |x| <= 13 within one spacing of float64; beyond, x or 0") {
  for (Act a : {Act::bf16, Act::f16}) {
    auto value = [a](uint16_t v) -> float {
      return a == Act::bf16 ? wb::bf16_to_float(v) : wb::half_to_float(v);
    };
    std::vector<uint16_t> in;
    std::vector<float> xs;
    for (uint32_t b = 0; b < 65536; ++b) {
      const float x = value(static_cast<uint16_t>(b));
      if (!std::isfinite(x)) continue;
      in.push_back(static_cast<uint16_t>(b));
      xs.push_back(x);
    }
    while (in.size() % 8 != 0) {  // the kernel takes 8 values a thread
      in.push_back(0);
      xs.push_back(0.0f);
    }
    auto run = [&](bool tanh) {
      Buf d(in.size() * 2);
      ck(cudaMemcpy(d.get(), in.data(), in.size() * 2, cudaMemcpyHostToDevice), "upload");
      wb::cuda::launch_gelu16(d.get(), a, static_cast<int64_t>(in.size()), tanh, nullptr);
      std::vector<uint16_t> out(in.size());
      ck(cudaMemcpy(out.data(), d.get(), out.size() * 2, cudaMemcpyDeviceToHost), "download");
      return out;
    };
    const std::vector<uint16_t> out = run(false), out_tanh = run(true);
    const int mant = a == Act::bf16 ? 7 : 10;                 // explicit mantissa bits
    const double tiny = a == Act::bf16 ? 0x1p-133 : 0x1p-24;  // the smallest spacing
    std::size_t checked = 0, exact = 0, bad = 0, bad_far = 0, tanh_differs = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const double x = xs[i], got = value(out[i]);
      tanh_differs += out_tanh[i] != out[i] ? 1 : 0;
      if (std::abs(x) > 13.0) {  // x, or 0 for large negative x
        const bool ok = x > 0 ? got == x : std::abs(got) <= 1e-30;
        bad_far += ok ? 0 : 1;
        continue;
      }
      const double want = 0.5 * x * std::erfc(-x / std::sqrt(2.0));
      const double mag = std::max(std::abs(want), std::abs(got));
      const double spacing =
          mag > 0 ? std::max(tiny, std::ldexp(1.0, std::ilogb(mag) - mant)) : tiny;
      ++checked;
      exact += std::abs(got - want) <= 0.5 * spacing ? 1 : 0;
      bad += std::abs(got - want) <= spacing ? 0 : 1;
    }
    MESSAGE("gelu16 " << wb::cuda::act_name(a) << ": " << checked << " values with |x| <= 13, "
                      << exact << " the float64 value's rounding, " << bad
                      << " further than one spacing; " << bad_far
                      << " beyond not x or 0; the tanh form differs on " << tanh_differs);
    CHECK(checked > 20000);
    CHECK(bad == 0);
    CHECK(bad_far == 0);
    CHECK(tanh_differs > 100);
  }
}

TEST_CASE("gemm (cuBLASLt): bias and residual epilogue vs float64, odd shapes") {
  for (Act a : {Act::f32, Act::bf16}) {
    const int m = 77, n = 131, k = 203;
    const std::string id = "gemm " + std::string(wb::cuda::act_name(a)) + " M=77 N=131 K=203";
    auto x = randn(static_cast<std::size_t>(m) * k, kSeed + 3);
    auto w = randn(static_cast<std::size_t>(n) * k, kSeed + 4, 0.1f);
    const auto bias = randn(n, kSeed + 5), r = randn(static_cast<std::size_t>(m) * n, kSeed + 6);
    if (a == Act::bf16) {
      for (auto& v : x) v = round_bf16(v);
      for (auto& v : w) v = round_bf16(v);
    }
    Buf dx(x.size() * wb::cuda::act_size(a)), dw(w.size() * wb::cuda::act_size(a));
    {
      Buf tx = up(x), tw = up(w);
      wb::cuda::launch_convert(tx.f(), dx.get(), a, x.size(), nullptr);
      wb::cuda::launch_convert(tw.f(), dw.get(), a, w.size(), nullptr);
      ck(cudaDeviceSynchronize(), "convert");
    }
    Buf db = up(bias), dr = up(r), dy(static_cast<std::size_t>(m) * n * 4);
    wb::cuda::Gemm gemm(a, nullptr);
    gemm.run(dx.get(), dw.get(), db.f(), dr.f(), dy.f(), m, n, k);
    const auto y = down(dy, static_cast<std::size_t>(m) * n);
    std::vector<double> want(y.size());
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double s = bias[j] + r[i * n + j];
        for (int l = 0; l < k; ++l) s += static_cast<double>(x[i * k + l]) * w[j * k + l];
        want[i * n + j] = s;
      }
    const double e = rel_l2(y, want);
    const double tol = 1.2e-7 * 4 * std::sqrt(static_cast<double>(k));  // float32 accumulation
    MESSAGE(id << " seed " << kSeed << ": rel L2 " << e << " (tol " << tol << ")");
    CHECK(e < tol);
  }
}

// softmax(alpha q k^T) v of one clip's q | k | v rows ([T, 3C]) in float64: [T, C] (the shared
// float64 attention probabilities, wb/testing/reference_math.h).
std::vector<double> attention_f64(const std::vector<float>& qkv, int t, int c, int heads,
                                  float alpha) {
  const int dh = c / heads;
  std::vector<double> want(static_cast<std::size_t>(t) * c), p;
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < t; ++i) {
      wb::testing::attention_probs_f64(qkv, t, c, dh, h, i, alpha, p);
      for (int e = 0; e < dh; ++e) {
        double acc = 0;
        for (int j = 0; j < t; ++j) acc += p[j] * qkv[j * 3 * c + 2 * c + h * dh + e];
        want[i * c + h * dh + e] = acc;
      }
    }
  return want;
}

// The first tap at which two runs' taps differ bit for bit ("" if none).
template <class K>
std::string first_diff(const K& x, const K& y) {
  for (std::size_t i = 0; i < x.names.size(); ++i)
    if (x.data[i] != y.data[i]) return x.names[i];
  return {};
}

// ||x - y|| / ||y|| in float64.
double rel(const std::vector<float>& x, const std::vector<float>& y) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    den += static_cast<double>(y[i]) * y[i];
  }
  return std::sqrt(num / den);
}

TEST_CASE("attention: flash-style online softmax vs float64 softmax, odd T") {
  for (const auto [t, heads, dh] :
       {std::tuple{97, 3, 64}, std::tuple{131, 2, 32}, std::tuple{70, 1, 128}}) {
    const int c = heads * dh;
    const std::string id = "attn T=" + std::to_string(t) + " heads=" + std::to_string(heads) +
                           " d_head=" + std::to_string(dh);
    const auto qkv = randn(static_cast<std::size_t>(t) * 3 * c, kSeed + t, 1.5f);
    const float alpha = 1.0f / std::sqrt(static_cast<float>(dh));
    Buf dq = up(qkv), dout(static_cast<std::size_t>(t) * c * 4);
    wb::cuda::launch_attention(dq.f(), dout.get(), Act::f32, t, c, heads, alpha, false, nullptr);
    const auto o = down(dout, static_cast<std::size_t>(t) * c);
    const std::vector<double> want = attention_f64(qkv, t, c, heads, alpha);
    const double e = rel_l2(o, want);
    const double tol = 1.2e-7 * 8 * std::sqrt(static_cast<double>(t + dh));
    MESSAGE(id << " seed " << kSeed << ": rel L2 " << e << " (tol " << tol << ")");
    CHECK(e < tol);
  }
}

TEST_CASE(
    "attention on tensor cores (bf16/fp16 inputs, d_head 64) vs float64, T of one to 24 key "
    "tiles") {
  for (Act a : {Act::bf16, Act::f16})
    for (const auto [t, heads] :
         {std::pair{40, 2}, std::pair{97, 3}, std::pair{300, 2}, std::pair{1500, 2}}) {
      const int dh = 64, c = heads * dh;
      const std::string id = "flash " + std::string(wb::cuda::act_name(a)) +
                             " T=" + std::to_string(t) + " heads=" + std::to_string(heads);
      auto qkv = randn(static_cast<std::size_t>(t) * 3 * c, kSeed + 7 + t, 1.5f);
      const float alpha = 0.125f;
      // 16-bit input, rows padded to whole tiles with zeros (the kernel's contract)
      std::vector<uint16_t> in(static_cast<std::size_t>(wb::cuda::flash_rows(t)) * 3 * c, 0);
      for (std::size_t i = 0; i < qkv.size(); ++i) {
        in[i] = a == Act::bf16 ? wb::float_to_bf16(qkv[i]) : wb::float_to_half(qkv[i]);
        qkv[i] = a == Act::bf16 ? wb::bf16_to_float(in[i]) : wb::half_to_float(in[i]);
      }
      Buf dq(in.size() * 2), dout(static_cast<std::size_t>(t) * c * 2);
      ck(cudaMemcpy(dq.get(), in.data(), in.size() * 2, cudaMemcpyHostToDevice), "upload");
      // without a workspace: one pass over the keys; with one: keys split over blocks + combine
      Buf ws(wb::cuda::flash_workspace_bytes(t, c)), dout2(static_cast<std::size_t>(t) * c * 2);
      wb::cuda::launch_flash_attention(dq.get(), dout.get(), a, t, c, heads, alpha, nullptr,
                                       nullptr, 1, wb::cuda::FlashKernel::mma);
      wb::cuda::launch_flash_attention(dq.get(), dout2.get(), a, t, c, heads, alpha, ws.f(),
                                       nullptr, 1, wb::cuda::FlashKernel::mma);
      // an output's 16-bit values (bits) and as floats
      auto download = [&](const Buf& d, std::vector<uint16_t>& bits) {
        bits.resize(static_cast<std::size_t>(t) * c);
        ck(cudaDeviceSynchronize(), "sync");
        ck(cudaMemcpy(bits.data(), d.get(), bits.size() * 2, cudaMemcpyDeviceToHost), "download");
        std::vector<float> f(bits.size());
        for (std::size_t i = 0; i < bits.size(); ++i)
          f[i] = a == Act::bf16 ? wb::bf16_to_float(bits[i]) : wb::half_to_float(bits[i]);
        return f;
      };
      std::vector<uint16_t> raw, raw2;
      const std::vector<float> o = download(dout, raw), o2 = download(dout2, raw2);
      const std::vector<double> want = attention_f64(qkv, t, c, heads, alpha);
      // the wgmma kernel (Hopper), same contract, where this device runs it
      double e3 = 0;
      if (wb::cuda::wgmma_attention_available()) {
        wb::cuda::launch_flash_attention_wgmma(dq.get(), dout2.get(), a, t, c, heads, alpha,
                                               nullptr);
        const std::vector<float> o3 = download(dout2, raw2);
        std::size_t differ = 0;  // from the mma.sync kernel's single pass (raw)
        for (std::size_t i = 0; i < raw.size(); ++i) differ += raw2[i] != raw[i];
        e3 = rel_l2(o3, want);
        // Same products in the same order (one k16 step at a time, float32 accumulation), the
        // same softmax code: the same bits.
        CHECK_MESSAGE(differ == 0,
                      id << ": wgmma differs from mma.sync in " << differ << " values");
      } else {
        MESSAGE(id << ": no wgmma attention on this device (not a compute capability 9.0 GPU)");
      }
      // the default choice with a workspace: on Hopper the wgmma kernel, keys split where the
      // grid is small (here every T but 40: 24 or fewer blocks)
      wb::cuda::launch_flash_attention(dq.get(), dout2.get(), a, t, c, heads, alpha, ws.f(),
                                       nullptr);
      const double e4 = rel_l2(download(dout2, raw2), want);
      const double e = rel_l2(o, want), e2 = rel_l2(o2, want);
      // P and the output rounded to the 16-bit type: a few units of its epsilon
      const double tol = a == Act::bf16 ? 4 * 7.8e-3 / 2 : 4 * 9.8e-4 / 2;
      MESSAGE(id << " seed " << kSeed << ": rel L2 " << e << ", key-split " << e2 << ", wgmma "
                 << e3 << ", default with a workspace " << e4 << " (tol " << tol << ")");
      CHECK(e < tol);
      CHECK(e2 < tol);
      CHECK(e3 < tol);
      CHECK(e4 < tol);
    }
}

// A batch of clips in one call: each clip's output bit-identical to that clip alone (the same
// blocks do the same arithmetic; only blockIdx.y's clip index and the base pointers differ).
TEST_CASE("attention on tensor cores, batched: each clip bit-identical to its own call") {
  const int t = 1500, heads = 3, c = heads * 64, batch = 3, rows = wb::cuda::flash_rows(t);
  for (Act a : {Act::bf16, Act::f16}) {
    std::vector<uint16_t> in(static_cast<std::size_t>(batch) * rows * 3 * c, 0);
    for (int b = 0; b < batch; ++b) {
      const auto v = randn(static_cast<std::size_t>(t) * 3 * c, kSeed + 11 + b, 1.5f);
      for (std::size_t i = 0; i < v.size(); ++i)
        in[static_cast<std::size_t>(b) * rows * 3 * c + i] =
            a == Act::bf16 ? wb::float_to_bf16(v[i]) : wb::float_to_half(v[i]);
    }
    Buf dq(in.size() * 2), dall(static_cast<std::size_t>(batch) * t * c * 2),
        done(static_cast<std::size_t>(t) * c * 2), ws(wb::cuda::flash_workspace_bytes(t, c));
    ck(cudaMemcpy(dq.get(), in.data(), in.size() * 2, cudaMemcpyHostToDevice), "upload");
    wb::cuda::launch_flash_attention(dq.get(), dall.get(), a, t, c, heads, 0.125f, ws.f(), nullptr,
                                     batch, wb::cuda::FlashKernel::mma);
    std::vector<uint16_t> all(static_cast<std::size_t>(batch) * t * c),
        one(static_cast<std::size_t>(t) * c);
    ck(cudaDeviceSynchronize(), "sync");
    ck(cudaMemcpy(all.data(), dall.get(), all.size() * 2, cudaMemcpyDeviceToHost), "download");
    for (int b = 0; b < batch; ++b) {
      const auto* q =
          static_cast<const char*>(dq.get()) + static_cast<std::size_t>(b) * rows * 3 * c * 2;
      // batch 1 without the key split (a batch never splits; both grids take 2 row tiles a warp)
      wb::cuda::launch_flash_attention(q, done.get(), a, t, c, heads, 0.125f, nullptr, nullptr, 1,
                                       wb::cuda::FlashKernel::mma);
      ck(cudaDeviceSynchronize(), "sync");
      ck(cudaMemcpy(one.data(), done.get(), one.size() * 2, cudaMemcpyDeviceToHost), "download");
      std::size_t differ = 0;
      for (std::size_t i = 0; i < one.size(); ++i)
        differ += one[i] != all[static_cast<std::size_t>(b) * t * c + i];
      INFO(wb::cuda::act_name(a) << " clip " << b);
      CHECK(differ == 0);
    }
    if (!wb::cuda::wgmma_attention_available()) continue;
    wb::cuda::launch_flash_attention_wgmma(dq.get(), dall.get(), a, t, c, heads, 0.125f, nullptr,
                                           batch);
    ck(cudaDeviceSynchronize(), "sync");
    ck(cudaMemcpy(all.data(), dall.get(), all.size() * 2, cudaMemcpyDeviceToHost), "download");
    for (int b = 0; b < batch; ++b) {
      const auto* q =
          static_cast<const char*>(dq.get()) + static_cast<std::size_t>(b) * rows * 3 * c * 2;
      wb::cuda::launch_flash_attention_wgmma(q, done.get(), a, t, c, heads, 0.125f, nullptr);
      ck(cudaDeviceSynchronize(), "sync");
      ck(cudaMemcpy(one.data(), done.get(), one.size() * 2, cudaMemcpyDeviceToHost), "download");
      std::size_t differ = 0;
      for (std::size_t i = 0; i < one.size(); ++i)
        differ += one[i] != all[static_cast<std::size_t>(b) * t * c + i];
      INFO("wgmma " << wb::cuda::act_name(a) << " clip " << b);
      CHECK(differ == 0);
    }
  }
}

// cuDNN's fused attention (the --attention cudnn backend) on the same contract: each clip of a
// batch against float64, to the same bound as the own kernels (P and the output rounded to the
// 16-bit type; cuDNN sums in another order, so no bit identity), d_head 64 and 32. The cuDNN
// cases ("*cuDNN*") are left out, and counted as skipped, where libcudnn.so.9 cannot be used.
TEST_CASE("attention by cuDNN (bf16/fp16, d_head 64 and 32, batched) vs float64") {
  for (Act a : {Act::bf16, Act::f16})
    for (const auto [t, heads, dh] :
         {std::array{97, 3, 64}, std::array{1500, 2, 64}, std::array{97, 4, 32}}) {
      const int c = heads * dh, batch = 2, rows = wb::cuda::flash_rows(t);
      const float alpha = 1.0f / std::sqrt(static_cast<float>(dh));
      std::vector<std::vector<float>> clip(batch);
      // rows past T hold values (not zero): cuDNN must read exactly T rows of each clip
      std::vector<uint16_t> in(static_cast<std::size_t>(batch) * rows * 3 * c, 0x3c00);
      for (int b = 0; b < batch; ++b) {
        clip[b] = randn(static_cast<std::size_t>(t) * 3 * c, kSeed + 29 + b + t, 1.5f);
        for (std::size_t i = 0; i < clip[b].size(); ++i) {
          uint16_t& v = in[static_cast<std::size_t>(b) * rows * 3 * c + i];
          v = a == Act::bf16 ? wb::float_to_bf16(clip[b][i]) : wb::float_to_half(clip[b][i]);
          clip[b][i] = a == Act::bf16 ? wb::bf16_to_float(v) : wb::half_to_float(v);
        }
      }
      Buf dq(in.size() * 2), dout(static_cast<std::size_t>(batch) * t * c * 2);
      ck(cudaMemcpy(dq.get(), in.data(), in.size() * 2, cudaMemcpyHostToDevice), "upload");
      cudaStream_t s = nullptr;
      ck(cudaStreamCreate(&s), "stream");
      {
        wb::cuda::CudnnAttention att(a, t, c, heads, rows, s);
        att.run(dq.get(), dout.get(), alpha, batch);
        ck(cudaStreamSynchronize(s), "sync");
        MESSAGE(att.describe());
      }
      ck(cudaStreamDestroy(s), "stream");
      std::vector<uint16_t> raw(static_cast<std::size_t>(batch) * t * c);
      ck(cudaMemcpy(raw.data(), dout.get(), raw.size() * 2, cudaMemcpyDeviceToHost), "download");
      const double tol = a == Act::bf16 ? 4 * 7.8e-3 / 2 : 4 * 9.8e-4 / 2;
      for (int b = 0; b < batch; ++b) {
        std::vector<float> o(static_cast<std::size_t>(t) * c);
        for (std::size_t i = 0; i < o.size(); ++i) {
          const uint16_t v = raw[static_cast<std::size_t>(b) * t * c + i];
          o[i] = a == Act::bf16 ? wb::bf16_to_float(v) : wb::half_to_float(v);
        }
        const double e = rel_l2(o, attention_f64(clip[b], t, c, heads, alpha));
        MESSAGE("cudnn " << wb::cuda::act_name(a) << " T=" << t << " heads=" << heads << " d_head="
                         << dh << " clip " << b << ": rel L2 " << e << " (tol " << tol << ")");
        CHECK(e < tol);
      }
    }
}

// A fused fc1 + GELU (cuDNN's graph, --fc1-gelu cudnn; the wgmma kernel): gelu(x W^T + b)
// against float64 on the same 16-bit inputs. cuDNN applies the GELU to the float32 accumulator
// and rounds once to the 16-bit type, so each value is within its unit roundoff u (2^-8 bf16,
// 2^-11 fp16) and the rel L2 too; the wgmma kernel rounds the sum to 16 bits first (as the
// encoder's two-kernel path), a second error of at most u relative, which the GELU's slope
// enlarges only where it is small (x < 0), so the rel L2 stays under 2u too (measured on an H200:
// 1.7e-3 / 2.1e-4 rounded once, 2.6e-3 / 3.2e-4 twice, bf16 / fp16). The bound is 2u (float32
// accumulation adds ~1e-6). Exact erf, and tanh for the gelu-tanh fault. run(a, m, n, k, tanh, x,
// w, bias, y) writes y on the device.
template <class Run>
void check_fused_fc1(const char* what, int m, int n, int k, Run&& run) {
  for (Act a : {Act::bf16, Act::f16})
    for (bool tanh : {false, true}) {
      auto x = randn(static_cast<std::size_t>(m) * k, kSeed + 41, 1.0f);
      auto w = randn(static_cast<std::size_t>(n) * k, kSeed + 42,
                     1.0f / std::sqrt(static_cast<float>(k)));
      const auto bias = randn(n, kSeed + 43, 0.5f);
      std::vector<uint16_t> x16(x.size()), w16(w.size());
      auto round16 = [a](std::vector<float>& v, std::vector<uint16_t>& out) {
        for (std::size_t i = 0; i < v.size(); ++i) {
          out[i] = a == Act::bf16 ? wb::float_to_bf16(v[i]) : wb::float_to_half(v[i]);
          v[i] = a == Act::bf16 ? wb::bf16_to_float(out[i]) : wb::half_to_float(out[i]);
        }
      };
      round16(x, x16);
      round16(w, w16);
      Buf dx(x16.size() * 2), dw(w16.size() * 2), db = up(bias),
                                                  dy(static_cast<std::size_t>(m) * n * 2);
      ck(cudaMemcpy(dx.get(), x16.data(), x16.size() * 2, cudaMemcpyHostToDevice), "upload");
      ck(cudaMemcpy(dw.get(), w16.data(), w16.size() * 2, cudaMemcpyHostToDevice), "upload");
      run(a, m, n, k, tanh, dx.get(), dw.get(), db.f(), dy.get());
      ck(cudaDeviceSynchronize(), "sync");
      std::vector<uint16_t> raw(static_cast<std::size_t>(m) * n);
      ck(cudaMemcpy(raw.data(), dy.get(), raw.size() * 2, cudaMemcpyDeviceToHost), "download");
      std::vector<float> got(raw.size());
      std::vector<double> want(raw.size());
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double s = bias[j];
          for (int e = 0; e < k; ++e) s += static_cast<double>(x[i * k + e]) * w[j * k + e];
          want[i * n + j] = tanh ? 0.5 * s *
                                       (1 + std::tanh(std::sqrt(2 / 3.141592653589793) *
                                                      (s + 0.044715 * s * s * s)))
                                 : 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
          const uint16_t v = raw[static_cast<std::size_t>(i) * n + j];
          got[i * n + j] = a == Act::bf16 ? wb::bf16_to_float(v) : wb::half_to_float(v);
        }
      const double e = rel_l2(got, want), tol = 2 * (a == Act::bf16 ? 0x1p-8 : 0x1p-11);
      const std::string id = std::string(what) + " " + std::string(wb::cuda::act_name(a)) +
                             (tanh ? " tanh" : " erf") + " M " + std::to_string(m) + " N " +
                             std::to_string(n) + " K " + std::to_string(k);
      MESSAGE(id << ": rel L2 " << e << " (tol " << tol << ")");
      CHECK(e < tol);
    }
}

TEST_CASE("fc1 + GELU by cuDNN (bf16/fp16, erf and tanh) vs float64") {
  check_fused_fc1("cudnn fc1+gelu", 97, 256, 72,
                  [](Act a, int m, int n, int k, bool tanh, const void* x, const void* w,
                     const float* b, void* y) {
                    wb::cuda::CudnnGemmGelu fused(a, m, n, k, nullptr, tanh);
                    fused.run(x, w, b, y);
                    ck(cudaDeviceSynchronize(), "sync");
                    MESSAGE(fused.describe());
                  });
}

// The Hopper kernel: several 128-row tiles with a partial last one (M 300: with clusters of two
// the second pair's second block has no row below M), two 256-column tiles, K of several 64-wide
// steps (more than the pipeline's stages). Each call also runs the kernel with clusters of two
// (W multicast), and with a persistent grid of one cluster or one block (it walks every tile, its
// stages' phases running on across tiles), and requires the same bits from all four.
// Left out (and counted as skipped) where the device has no wgmma (wb_cuda_self_test).
TEST_CASE("fc1 + GELU by the Hopper wgmma kernel (bf16/fp16, erf and tanh) vs float64") {
  for (int m : {300, 1}) {
    check_fused_fc1("wgmma fc1+gelu", m, 512, 384,
                    [](Act a, int m, int n, int k, bool tanh, const void* x, const void* w,
                       const float* b, void* y) {
                      const std::size_t bytes = static_cast<std::size_t>(m) * n * 2;
                      wb::cuda::launch_gemm_gelu_wgmma(x, w, b, y, a, m, n, k, tanh, nullptr);
                      ck(cudaDeviceSynchronize(), "sync");
                      std::vector<unsigned char> h0(bytes), h(bytes);
                      ck(cudaMemcpy(h0.data(), y, bytes, cudaMemcpyDeviceToHost), "download");
                      // (what, cluster, max_clusters) of the other launch choices
                      const std::tuple<const char*, int, int> others[] = {
                          {"clusters of two", 2, 0},
                          {"one persistent cluster of two", 2, 1},
                          {"one persistent block", 1, 1}};
                      for (const auto& [what, cluster, max_clusters] : others) {
                        Buf y1(bytes);
                        wb::cuda::launch_gemm_gelu_wgmma(x, w, b, y1.get(), a, m, n, k, tanh,
                                                         nullptr, cluster, max_clusters);
                        ck(cudaMemcpy(h.data(), y1.get(), bytes, cudaMemcpyDeviceToHost),
                           "download");
                        CHECK_MESSAGE(h == h0, what << ": other bits");
                      }
                    });
  }
}

// Keeps a copy of every tap it is given (those the selector wants), in order.
class Keep final : public wb::TapSink {
 public:
  explicit Keep(const std::string& spec) : sel_(spec) {}
  bool wants(std::string_view name) const override { return sel_.selected(name); }
  void put(std::string_view name, const wb::TapView& v) override {
    const auto* p = static_cast<const float*>(v.data);
    names.emplace_back(name);
    data.emplace_back(p, p + wb::shape_numel(v.shape));
  }
  std::vector<std::string> names;
  std::vector<std::vector<float>> data;

 private:
  wb::TapSelector sel_;
};

std::vector<float> tone_pcm() {
  std::vector<float> pcm(16000 * 3);
  for (std::size_t i = 0; i < pcm.size(); ++i)
    pcm[i] = 0.3f * std::sin(0.07f * static_cast<float>(i)) + 0.05f * std::sin(0.9f * i);
  return pcm;
}

// One run of the encoder (log-mel to ln_post) into `sink` (may be null); returns ln_post.
std::vector<float> run_all(wb::Encoder& enc, wb::TapSink* sink) {
  const wb::Tensor mel = enc.log_mel(tone_pcm(), sink);
  const wb::Tensor y = wb::run_encoder(enc, mel, sink);
  return std::vector<float>(y.f32(), y.f32() + y.numel());
}

TEST_CASE("encoder taps: asynchronous copies bit-identical to the synchronous path; none, none") {
  auto model = std::make_shared<const wb::Checkpoint>(
      wb::random_checkpoint(wb::ModelDims::preset("nano"), 3));
  for (const char* precision : {"float32", "bfloat16"}) {
    wb::cuda::Options o;
    o.precision = wb::parse_precision(precision);
    auto async_enc = wb::cuda::make_encoder(model, o);
    o.sync_taps = true;
    auto sync_enc = wb::cuda::make_encoder(model, o);
    Keep a("all"), s("all");
    const auto ya = run_all(*async_enc, &a), ys = run_all(*sync_enc, &s);
    const auto ca = wb::cuda::copy_counts(*async_enc), cs = wb::cuda::copy_counts(*sync_enc);
    MESSAGE(std::string(precision)
            << ": " << a.names.size() << " taps; async " << ca.tap_copies << " tap copies ("
            << ca.tap_bytes << " B), " << ca.result_copies << " result copies");
    REQUIRE(a.names == s.names);
    CHECK(a.names.size() > 20);
    for (std::size_t i = 0; i < a.names.size(); ++i) {
      INFO("tap " << a.names[i]);
      CHECK(a.data[i] == s.data[i]);  // bit for bit (float ==; no NaN in these runs)
    }
    CHECK(ya == ys);
    // the mel is the seam's own result (log_mel returns it), every other tap one copy
    CHECK(ca.tap_copies == static_cast<int64_t>(a.names.size()) - 1);
    CHECK(cs.tap_copies == ca.tap_copies);
    // no taps wanted (no sink, or a sink that wants none): no tap copies at all, same output
    o.sync_taps = false;
    auto quiet = wb::cuda::make_encoder(model, o);
    Keep none("none");
    CHECK(run_all(*quiet, nullptr) == ya);
    CHECK(run_all(*quiet, &none) == ya);
    CHECK(none.names.empty());
    const auto cq = wb::cuda::copy_counts(*quiet);
    CHECK(cq.tap_copies == 0);
    CHECK(cq.tap_bytes == 0);
    // mel, stem, 2 blocks, ln_post per run
    CHECK(cq.result_copies == 2 * (3 + model->dims.n_audio_layer));
  }
}

// The shared fault table on this backend: against the fault-free run, every tap before the
// case's first_tap is bit-identical and first_tap is not (nano random weights, float32).
TEST_CASE("encoder faults: every case of the shared table first shows at its first_tap") {
  auto model = std::make_shared<const wb::Checkpoint>(
      wb::random_checkpoint(wb::ModelDims::preset("nano"), 5));
  wb::cuda::Options o;
  auto clean = wb::cuda::make_encoder(model, o);
  Keep want("all");
  run_all(*clean, &want);
  for (const wb::FaultCase& c : wb::fault_cases()) {
    INFO("fault " << c.spec << ", expected first tap " << c.first_tap);
    o.faults = wb::parse_faults({c.spec});
    auto enc = wb::cuda::make_encoder(model, o);
    Keep got("all");
    run_all(*enc, &got);
    REQUIRE(got.names == want.names);
    std::string first;
    for (std::size_t i = 0; i < got.names.size() && first.empty(); ++i)
      if (got.data[i] != want.data[i]) first = got.names[i];
    MESSAGE(c.spec << ": first differing tap " << first);
    CHECK(first == c.first_tap);
  }
}

// The encoder with cuDNN's attention (tiny dims: d_head 64, so both attentions read the same
// 16-bit q | k | v; bfloat16): against the own attention every tap before the first attention
// output is bit-identical and that one is not (nothing else changes); the attention scale reaches
// cuDNN (the attn-scale fault first shows there too); and the two attentions differ at ln_post
// by far less than that fault moves it.
TEST_CASE("encoder with cuDNN's attention: same taps up to the attention, faults localised") {
  auto model = std::make_shared<const wb::Checkpoint>(
      wb::random_checkpoint(wb::ModelDims::preset("tiny"), 7));
  wb::cuda::Options o;
  o.precision = wb::Precision::bfloat16;
  auto own = wb::cuda::make_encoder(model, o);
  o.attention = wb::cuda::Backend::cudnn;
  auto cudnn = wb::cuda::make_encoder(model, o);
  o.faults = wb::parse_faults({"attn-scale=double"});
  auto faulty = wb::cuda::make_encoder(model, o);
  Keep a("all"), b("all"), f("all");
  const auto ya = run_all(*own, &a), yb = run_all(*cudnn, &b), yf = run_all(*faulty, &f);
  REQUIRE(a.names == b.names);
  REQUIRE(a.names == f.names);
  const std::string attn_out = wb::block_tap(wb::TapSide::encoder, 0, "attn.out");
  const std::string own_cudnn = first_diff(a, b), cudnn_fault = first_diff(b, f);
  MESSAGE("first differing tap: own vs cuDNN " << own_cudnn << ", cuDNN vs its attn-scale fault "
                                               << cudnn_fault);
  CHECK(own_cudnn == attn_out);
  CHECK(cudnn_fault == attn_out);
  const double own_vs_cudnn = rel(yb, ya), fault = rel(yf, yb);
  MESSAGE("ln_post rel L2: cuDNN vs own attention " << own_vs_cudnn << ", attn-scale=double "
                                                    << fault << "; "
                                                    << cudnn->run_info()["attention"].dump());
  CHECK(own_vs_cudnn < 0.1 * fault);
}

// The encoder with cuDNN's fc1 + GELU graph (tiny dims, bfloat16): against the own path the first
// tap that differs is blocks.0.mlp.fc1 (a float32 second GEMM there, the 16-bit pre-activation in
// the own path), nothing before it; the gelu-tanh fault of block 1 reaches the graph (first shows
// at blocks.1.mlp.gelu); ln_post moves far less than the attn-scale fault moves it.
TEST_CASE("encoder with cuDNN's fc1 + GELU: same taps up to fc1, faults localised") {
  auto model = std::make_shared<const wb::Checkpoint>(
      wb::random_checkpoint(wb::ModelDims::preset("tiny"), 9));
  wb::cuda::Options o;
  o.precision = wb::Precision::bfloat16;
  auto own = wb::cuda::make_encoder(model, o);
  o.fc1_gelu = wb::cuda::Backend::cudnn;
  auto fused = wb::cuda::make_encoder(model, o);
  o.faults = wb::parse_faults({"gelu-tanh@1"});
  auto tanh1 = wb::cuda::make_encoder(model, o);
  o.faults = wb::parse_faults({"attn-scale=double"});
  auto scale = wb::cuda::make_encoder(model, o);
  Keep a("all"), b("all"), c("all"), d("all");
  const auto ya = run_all(*own, &a), yb = run_all(*fused, &b);
  run_all(*tanh1, &c);
  const auto yd = run_all(*scale, &d);
  REQUIRE(a.names == b.names);
  const std::string own_fused = first_diff(a, b), fused_tanh = first_diff(b, c);
  const double diff = rel(yb, ya), fault = rel(yd, yb);
  MESSAGE("first differing tap: own vs cuDNN fc1 "
          << own_fused << ", gelu-tanh@1 " << fused_tanh << "; ln_post rel L2 " << diff
          << ", attn-scale=double " << fault << "; " << fused->run_info()["fc1_gelu"].dump());
  CHECK(own_fused == wb::block_tap(wb::TapSide::encoder, 0, "mlp.fc1"));
  CHECK(fused_tanh == wb::block_tap(wb::TapSide::encoder, 1, "mlp.gelu"));
  CHECK(diff < 0.1 * fault);
}

TEST_CASE(
    "encoder: every fault of the shared table accepted, unknown ones and precisions refused") {
  auto ck = std::make_shared<const wb::Checkpoint>(
      wb::random_checkpoint(wb::ModelDims::preset("nano"), 1));
  CHECK(wb::cuda::supported_faults().size() == wb::fault_table().size());
  wb::cuda::Options o;
  o.faults = wb::parse_faults({"ln-fp16", "conv-bias-drop"});
  CHECK_NOTHROW(wb::cuda::make_encoder(ck, o));
  // the backend names round-trip; anything else is no backend
  for (auto b : {wb::cuda::Backend::own, wb::cuda::Backend::cudnn})
    CHECK(wb::cuda::backend_of(wb::cuda::backend_name(b)) == b);
  CHECK_FALSE(wb::cuda::backend_of("cuDNN").has_value());
  // cuDNN's attention has no float32 path: refused whether or not cuDNN is here
  wb::cuda::Options f32 = o;
  f32.attention = wb::cuda::Backend::cudnn;
  CHECK_THROWS_AS(wb::cuda::make_encoder(ck, f32), std::invalid_argument);
  f32.attention = wb::cuda::Backend::own;
  f32.fc1_gelu = wb::cuda::Backend::cudnn;
  CHECK_THROWS_AS(wb::cuda::make_encoder(ck, f32), std::invalid_argument);
  // Faults are parsed once, above the backend (the CLI, wb-cuda-dump): unknown names stop there.
  CHECK_THROWS_AS(wb::parse_faults({"no-such-fault"}), std::invalid_argument);
  CHECK_THROWS_AS(wb::parse_precision("tf32"), std::invalid_argument);  // the one name table
  // each precision's GEMM input type, named as the precision
  for (wb::Precision p : {wb::Precision::float32, wb::Precision::bfloat16, wb::Precision::float16})
    CHECK(wb::cuda::act_name(wb::cuda::act_of(p)) == wb::to_string(p));
}

// Clip b of a batch test: a different tone mixture, amplitude and length per clip, so that a
// clip index mixed up anywhere (mel, positions, attention, the qkv layout) shows.
std::vector<float> clip_pcm(int b) {
  std::vector<float> pcm(static_cast<std::size_t>(16000 * (2 + 3 * b)));
  const float f1 = 0.05f + 0.03f * b, f2 = 0.6f + 0.25f * b, amp = 0.2f + 0.15f * b;
  for (std::size_t i = 0; i < pcm.size(); ++i)
    pcm[i] = amp * std::sin(f1 * static_cast<float>(i)) + 0.05f * std::sin(f2 * i);
  return pcm;
}

// The GEMMs of one encoder run over `clips` clips (as layers.cpp issues them), with the
// algorithm each is pinned to: a run of B clips and one of a single clip round the same way
// only where every pair is the same algorithm.
std::vector<std::array<uint64_t, 8>> encoder_gemm_algorithms(const wb::ModelDims& d, Act a,
                                                             int clips) {
  wb::cuda::Gemm g(a, nullptr);
  const int t = d.n_audio_ctx, c = d.n_audio_state, bt = clips * t;
  const bool flash = a != Act::f32 && c == 64 * d.n_audio_head;
  using wb::cuda::GemmShape;
  std::vector<GemmShape> shapes = {{2 * bt, c, 3 * d.n_mels, true},
                                   {bt, c, 3 * c, true},
                                   {bt, c, c, true},
                                   {bt, c, 4 * c, true}};
  const GemmShape qkv16{t, 3 * c, c, true, a};
  if (flash && g.supported(qkv16)) {
    GemmShape q = qkv16;
    if (clips > 1) {
      q.batch = clips;
      q.x_stride = static_cast<int64_t>(t) * c;
      q.y_stride = static_cast<int64_t>(wb::cuda::flash_rows(t)) * 3 * c;
    }
    shapes.push_back(q);
  } else {
    shapes.push_back({bt, 3 * c, c, true});
  }
  const GemmShape fc1_16{bt, 4 * c, c, true, a};
  shapes.push_back(a != Act::f32 && g.supported(fc1_16) ? fc1_16 : GemmShape{bt, 4 * c, c, true});
  std::vector<std::array<uint64_t, 8>> out;
  for (const GemmShape& s : shapes) out.push_back(g.algorithm(s));
  return out;
}

// rel L2 of got against want, NaN and Inf counted first (STYLE.md 7), without an assertion per
// element (taps of [T, 4C] values).
double rel_l2_tap(const std::vector<float>& got, const std::vector<float>& want) {
  int64_t nan = 0, inf = 0;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    nan += std::isnan(got[i]);
    inf += std::isinf(got[i]);
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  CHECK(nan == 0);
  CHECK(inf == 0);
  return std::sqrt(num / std::max(den, 1e-300));
}

// A batch of 3 clips through encode_batch against each clip run alone through the seam, tiny dims
// (d_head 64: bfloat16 takes the tensor-core attention, one launch for the clips), random weights.
// Bit-identical where the same GEMM algorithms and the same attention path run. Otherwise the
// two differ by round-off alone, bounded per tap as follows (printed with the measured value):
//  - float32: the same products summed in another order by another GEMM kernel: a dot product of
//    length K differs by about eps32 sqrt(K) relative; over the run's 4L + 2 GEMMs, adding up
//    (not in quadrature: an upper estimate), rel L2 <= eps32 sqrt(4C) (4L + 2).
//  - bfloat16: such a float32 difference flips the rounding of some values to bfloat16, and the
//    flipped roundings propagate as bfloat16 round-off does. The two runs can then be no further
//    apart than two runs with independent round-off: sqrt(2) x the clip's own bfloat16 error
//    (its bfloat16 tap against its float32 tap, both alone). The attention also differs at tiny
//    dims: one clip's grid is under one block per SM and splits the keys (float32 partial sums
//    combined), a batch does not: a reordering of the same kind.
TEST_CASE("encoder batch: each clip of a batch run as that clip alone (block outputs, ln_post)") {
  const wb::ModelDims d = wb::ModelDims::preset("tiny");
  constexpr int kB = 3;
  constexpr uint64_t kModelSeed = 7;
  auto model = std::make_shared<const wb::Checkpoint>(wb::random_checkpoint(d, kModelSeed));
  std::vector<std::vector<float>> pcm;
  for (int b = 0; b < kB; ++b) pcm.push_back(clip_pcm(b));
  const std::string sel =
      "mel,encoder.pos_embed,encoder.blocks.*.attn.k,encoder.blocks.*.out,encoder.ln_post";
  const double eps32 = 1.2e-7;
  const int n_gemm = 4 * d.n_audio_layer + 2;
  const double tol32 = eps32 * std::sqrt(4.0 * d.n_audio_state) * n_gemm;
  std::vector<std::unique_ptr<Keep>> f32_one;  // the float32 runs of each clip alone
  for (const char* precision : {"float32", "bfloat16"}) {
    wb::cuda::Options o;
    o.precision = wb::parse_precision(precision);
    o.batch = kB;
    const Act a = wb::cuda::act_of(o.precision);
    auto enc = wb::cuda::make_encoder(model, o);
    std::vector<std::unique_ptr<Keep>> one, all, again;
    std::vector<wb::TapSink*> sinks, sinks_again;
    for (int b = 0; b < kB; ++b) {
      one.push_back(std::make_unique<Keep>(sel));
      all.push_back(std::make_unique<Keep>(sel));
      again.push_back(std::make_unique<Keep>(sel));
      sinks.push_back(all.back().get());
      sinks_again.push_back(again.back().get());
      const wb::Tensor mel = enc->log_mel(pcm[static_cast<std::size_t>(b)], one.back().get());
      wb::run_encoder(*enc, mel, one.back().get());
    }
    const auto ys = wb::cuda::encode_batch(*enc, pcm, sinks);
    wb::cuda::encode_batch(*enc, pcm, sinks_again);
    // one clip through encode_batch: the plans of a single clip, so the seam's bits
    Keep first(sel);
    wb::cuda::encode_batch(*enc, {pcm[0]}, {&first});
    REQUIRE(first.names == one[0]->names);
    const bool first_same = first.data == one[0]->data;
    CHECK(first_same);

    const bool same_gemms = encoder_gemm_algorithms(d, a, 1) == encoder_gemm_algorithms(d, a, kB);
    const bool same_attention = a == Act::f32;  // see above: tiny splits the keys at batch 1
    REQUIRE(ys.size() == static_cast<std::size_t>(kB));
    for (int b = 0; b < kB; ++b) {
      const auto bi = static_cast<std::size_t>(b);
      const Keep& x = *one[bi];
      const Keep& y = *all[bi];
      REQUIRE(y.names == x.names);
      const bool again_same = again[bi]->data == y.data;  // two batch runs: the same bits
      CHECK(again_same);
      // the returned ln_post is the tap's
      const bool ret_same =
          std::vector<float>(ys[bi].f32(), ys[bi].f32() + ys[bi].numel()) == y.data.back();
      CHECK(ret_same);
      std::size_t identical = 0;
      double worst = 0, worst_tol = 0;
      std::string worst_name = "-";
      for (std::size_t i = 0; i < x.names.size(); ++i) {
        INFO(std::string(precision) << " clip " << b << " tap " << x.names[i]);
        if (x.data[i] == y.data[i]) {
          ++identical;
          continue;
        }
        const double e = rel_l2_tap(y.data[i], x.data[i]);
        const double tol =
            a == Act::f32 ? tol32 : std::sqrt(2.0) * rel_l2_tap(x.data[i], f32_one[bi]->data[i]);
        if (e / tol > worst / std::max(worst_tol, 1e-300))
          worst = e, worst_tol = tol, worst_name = x.names[i];
        CHECK(e < tol);
      }
      MESSAGE("encoder batch " << std::string(precision) << " tiny seed " << kModelSeed << " clip "
                               << b << ": " << identical << "/" << x.names.size()
                               << " taps bit-identical to the clip alone; GEMM algorithms "
                               << std::string(same_gemms ? "all the same" : "not all the same")
                               << "; closest to its bound: " << worst_name << " rel L2 " << worst
                               << " (tol " << worst_tol << ")");
      if (same_gemms && same_attention) CHECK(identical == x.names.size());
    }
    if (a == Act::f32) f32_one = std::move(one);
  }
}

// ---- programmatic dependent launch (Options::dependent_launch, kernels.h Queue) ----

// What `run` (launches reading `in`, writing `out`; they may be the same buffer) leaves in out:
// `plain` with in = src copied before it and an ordinary launch; `dependent` with in zero until
// launch_late_copy, right before `run`, writes src into it 2 ms after letting `run` start, `run`
// launched as its programmatic dependent. The same bytes where every kernel of `run` waits for
// the kernel before it; a kernel that read early would have read zeros.
struct PlainAndLate {
  std::vector<unsigned char> plain, dependent;
};
template <class F>
PlainAndLate plain_and_late(const Buf& src, const Buf& in, std::size_t bytes, const Buf& out,
                            std::size_t out_bytes, cudaStream_t s, F run) {
  constexpr uint64_t kLateNs = 2'000'000;
  auto get = [&] {
    std::vector<unsigned char> h(out_bytes);
    ck(cudaStreamSynchronize(s), "sync");
    ck(cudaMemcpy(h.data(), out.get(), out_bytes, cudaMemcpyDeviceToHost), "download");
    return h;
  };
  PlainAndLate r;
  ck(cudaMemsetAsync(out.get(), 0, out_bytes, s), "memset");
  ck(cudaMemcpyAsync(in.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, s), "copy");
  run(wb::cuda::Queue(s));
  r.plain = get();
  ck(cudaMemsetAsync(out.get(), 0, out_bytes, s), "memset");
  ck(cudaMemsetAsync(in.get(), 0, bytes, s), "memset");
  wb::cuda::launch_late_copy(src.get(), in.get(), bytes, kLateNs, s);
  run(wb::cuda::Queue(s, true));
  r.dependent = get();
  return r;
}

// Every launcher that takes a Queue, on shapes that take each of its kernels: the outputs of a
// dependent launch behind a late writer equal those of an ordinary launch. The control, a copy
// that does not wait, reads the zeros: the dependent launch does start before the writer ends,
// so the checks above it can fail.
TEST_CASE(
    "dependent launch (Hopper): every own launcher's kernels wait for the kernel before them") {
  using wb::cuda::Queue;
  cudaStream_t s = nullptr;
  ck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  const std::size_t n = 3000 * 1600;  // floats: the largest input below
  const Buf src = up(randn(n, kSeed + 71, 1.5f, 0.25f));
  Buf src16(n * 2), in(n * 4), out(n * 4);
  // the 16-bit inputs: src rounded to bfloat16
  wb::cuda::launch_convert(src.f(), src16.get(), Act::bf16, n, nullptr);
  ck(cudaDeviceSynchronize(), "sync");
  // `result`: where `run` writes (`out`; `in` for a launcher that works in place)
  auto check_case = [&](const std::string& id, const Buf& from, std::size_t in_bytes,
                        std::size_t out_bytes, auto run, const Buf* result = nullptr) {
    const PlainAndLate r =
        plain_and_late(from, in, in_bytes, result != nullptr ? *result : out, out_bytes, s, run);
    std::size_t differ = 0, nonzero = 0;
    for (std::size_t i = 0; i < out_bytes; ++i) {
      differ += r.plain[i] != r.dependent[i];
      nonzero += r.plain[i] != 0;
    }
    INFO(id);
    CHECK(nonzero > out_bytes / 4);  // the case computes something
    CHECK_MESSAGE(differ == 0, id << ": " << differ << " of " << out_bytes
                                  << " bytes differ from an ordinary launch");
  };
  {  // the control: no wait, so it copies the zeros the late copy has not yet overwritten
    const std::size_t bytes = 1 << 20;
    const PlainAndLate r = plain_and_late(src, in, bytes, out, bytes, s, [&](Queue q) {
      wb::cuda::launch_copy_nowait(in.get(), out.get(), bytes, q);
    });
    std::size_t zero = 0;
    for (unsigned char b : r.dependent) zero += b == 0;
    CHECK(r.plain != r.dependent);
    MESSAGE("control (no wait): " << zero << " of " << bytes << " bytes still zero");
  }
  const float* x = in.f();
  const Buf g = up(randn(1600, kSeed + 72, 0.2f, 1.0f)), b = up(randn(1600, kSeed + 73, 0.1f));
  // layer norms: the row kernel (256), the warp kernel with gamma and beta preloaded (1280, K4
  // 10; 1536, K4 12) and without (3000 rows), the block kernel (1600), float32 and bfloat16 out
  for (const auto [rows, cols, a] : {std::tuple{1500, 256, Act::bf16},
                                     {1500, 1280, Act::bf16},
                                     {700, 1536, Act::f16},
                                     {3000, 1280, Act::bf16},
                                     {300, 1600, Act::bf16},
                                     {1500, 1280, Act::f32}}) {
    const std::size_t m = static_cast<std::size_t>(rows) * cols;
    check_case("layer_norm " + std::to_string(rows) + "x" + std::to_string(cols) + " " +
                   std::string(wb::cuda::act_name(a)),
               src, m * 4, m * wb::cuda::act_size(a), [&](Queue q) {
                 wb::cuda::launch_layer_norm(x, g.f(), b.f(), a == Act::f32 ? out.f() : nullptr,
                                             a == Act::f32 ? nullptr : out.get(), a, rows, cols,
                                             1e-5f, q);
               });
  }
  check_case("layer_norm_f16_stats", src, 300 * 256 * 4, 300 * 256 * 4, [&](Queue q) {
    wb::cuda::launch_layer_norm_f16_stats(x, g.f(), b.f(), out.f(), nullptr, Act::f32, 300, 256,
                                          1e-5f, q);
  });
  // elementwise: GELU in place on 16 bits; float32 GELU (four a thread and one), + positions
  const std::size_t ne = 1 << 20;
  check_case(
      "gelu16 in place", src16, ne * 2, ne * 2,
      [&](Queue q) { wb::cuda::launch_gelu16(in.get(), Act::bf16, ne, false, q); }, &in);
  for (const std::size_t m : {ne, ne - 1})
    check_case("gelu " + std::to_string(m), src, m * 4, m * 2, [&](Queue q) {
      wb::cuda::launch_gelu(x, nullptr, out.get(), Act::bf16, m, false, q);
    });
  for (const int64_t nb : {int64_t{4096}, int64_t{4095}})
    check_case("gelu_add nb " + std::to_string(nb), src, nb * 4 * 4, nb * 4 * 4, [&](Queue q) {
      wb::cuda::launch_gelu_add(x, src.f(), out.f(), 4 * nb, nb, false, q);
    });
  check_case("add", src, ne * 4, ne * 4,
             [&](Queue q) { wb::cuda::launch_add(x, src.f(), out.f(), ne, q, 1024); });
  check_case("convert", src, ne * 4, ne * 2,
             [&](Queue q) { wb::cuda::launch_convert(x, out.get(), Act::f16, ne, q); });
  check_case("to_f32", src16, ne * 2, ne * 4,
             [&](Queue q) { wb::cuda::launch_to_f32(in.get(), Act::bf16, out.f(), ne, q); });
  // the stem's im2col (conv2 with conv1's GELU on the way)
  check_case("im2col_conv1", src, 80 * 3000 * 4, 3000 * 240 * 2, [&](Queue q) {
    wb::cuda::launch_im2col_conv1(x, out.get(), Act::bf16, 80, 3000, 1, q);
  });
  check_case("im2col_conv2 + GELU", src, 3000 * 384 * 4, 1500 * 1152 * 2, [&](Queue q) {
    wb::cuda::launch_im2col_conv2(x, out.get(), Act::bf16, 384, 3000, 1500, 1, q, 1, true);
  });
  // attention: the float32 kernel (d_head 32), the tensor-core ones (d_head 64) with the keys
  // split and combined, whole, batched, and the mma.sync kernel (16-bit q | k | v: src16).
  check_case("attention float32 d_head 32", src, 300 * 3 * 128 * 4, 300 * 128 * 2, [&](Queue q) {
    wb::cuda::launch_attention(x, out.get(), Act::bf16, 300, 128, 4, 0.125f, true, q);
  });
  const int t = 300, c = 384, heads = 6;
  const std::size_t q16 = static_cast<std::size_t>(wb::cuda::flash_rows(t)) * 3 * c * 2;
  Buf ws(wb::cuda::flash_workspace_bytes(t, c));
  check_case("flash attention, keys split", src16, 2 * q16, t * c * 2, [&](Queue q) {
    wb::cuda::launch_flash_attention(in.get(), out.get(), Act::bf16, t, c, heads, 0.125f, ws.f(),
                                     q);
  });
  check_case("flash attention, batch 2", src16, 2 * q16, 2 * t * c * 2, [&](Queue q) {
    wb::cuda::launch_flash_attention(in.get(), out.get(), Act::bf16, t, c, heads, 0.125f, nullptr,
                                     q, 2);
  });
  check_case("flash attention mma.sync, keys split", src16, 2 * q16, t * c * 2, [&](Queue q) {
    wb::cuda::launch_flash_attention(in.get(), out.get(), Act::bf16, t, c, heads, 0.125f, ws.f(), q,
                                     1, wb::cuda::FlashKernel::mma);
  });
  ck(cudaStreamDestroy(s), "stream");
}

// The encoder with its own kernels launched as dependents: every tap and the output bit for bit
// as without (nano: the float32 attention kernel; tiny bfloat16: the tensor-core attention with
// the keys split), and a timing run's output (a CUDA graph, held against a stream run inside)
// the same as without, also with the GEMMs that wait captured as dependents.
TEST_CASE("encoder with dependent launches: the taps and outputs of ordinary launches") {
  for (const auto& [dims, precision] :
       {std::pair{"nano", "float32"}, {"nano", "bfloat16"}, {"tiny", "bfloat16"}}) {
    auto model = std::make_shared<const wb::Checkpoint>(
        wb::random_checkpoint(wb::ModelDims::preset(dims), 3));
    wb::cuda::Options o;
    o.precision = wb::parse_precision(precision);
    auto plain = wb::cuda::make_encoder(model, o);
    o.dependent_launch = true;
    auto dep = wb::cuda::make_encoder(model, o);
    CHECK(dep->run_info()["dependent_launch"] == wb::cuda::dependent_launch_available());
    Keep a("all"), d("all");
    const auto ya = run_all(*plain, &a), yd = run_all(*dep, &d);
    REQUIRE(a.names == d.names);
    std::size_t identical = 0;
    for (std::size_t i = 0; i < a.names.size(); ++i) identical += a.data[i] == d.data[i];
    MESSAGE(dims << " " << precision << ": " << identical << "/" << a.names.size()
                 << " taps bit-identical");
    CHECK(identical == a.names.size());
    CHECK(ya == yd);
    wb::cuda::Options t = o;
    t.dependent_launch = false;
    const auto tp = wb::cuda::time_encoder(wb::ModelDims::preset(dims), t, 3, 1, true);
    const auto td = wb::cuda::time_encoder(wb::ModelDims::preset(dims), o, 3, 1, true);
    CHECK(tp.output_sha256.size() == 64);
    CHECK(tp.output_sha256 == td.output_sha256);
    // and the GEMMs whose kernels wait captured as dependents too (graphs only)
    t.dependent_launch = t.dependent_gemms = true;
    const auto tg = wb::cuda::time_encoder(wb::ModelDims::preset(dims), t, 3, 1, true);
    MESSAGE(dims << " " << precision << ": GEMM shapes captured as dependents "
                 << tg.dependent_gemm_shapes << " of " << tg.checked_gemm_shapes);
    CHECK((tg.checked_gemm_shapes > 0) == wb::cuda::dependent_launch_available());
    CHECK(tp.output_sha256 == tg.output_sha256);
  }
}

// `wb-cuda-dump --self-test [doctest options]` (CTest wb_cuda_tests): the tests live in the tool
// they test, so a GPU host needs one executable, and the kernels and wb_core are in it once.
int wb_cuda_self_test(int argc, char** argv) {
  const std::string why = wb::cuda::device_unavailable_reason();
  if (!why.empty()) {
    std::printf("SKIPPED: %s\n", why.c_str());
    return 77;
  }
  doctest::Context ctx(argc, argv);
  if (const std::string no = wb::cuda::cudnn_attention_unavailable_reason(); !no.empty()) {
    std::printf("SKIPPED: the cuDNN attention cases: %s\n", no.c_str());
    ctx.addFilter("test-case-exclude", "*cuDNN*");
  }
  if (!wb::cuda::dependent_launch_available()) {
    std::printf(
        "SKIPPED: the dependent-launch mechanism case: not a compute capability 9.0 device, or "
        "kernels not built for sm_90\n");
    ctx.addFilter("test-case-exclude", "*dependent launch (Hopper)*");
  }
  if (!wb::cuda::gemm_gelu_wgmma_available()) {
    std::printf("SKIPPED: the Hopper wgmma cases: not a compute capability 9.0 device\n");
    ctx.addFilter("test-case-exclude", "*Hopper wgmma*");
  }
  return ctx.run();
}
