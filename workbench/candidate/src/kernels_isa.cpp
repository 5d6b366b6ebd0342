// One source, compiled once per ISA of the list (CMake passes WB_KNS, the ISA's name, and its -m
// flags). The code is written against a tiny vector type V of W float lanes; the three
// definitions of V below are the only ISA-specific lines. Tails shorter than W go through a
// W-wide stack buffer, so every element sees the same arithmetic whatever its position.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels.h"

#ifndef WB_KNS
#error "WB_KNS (the ISA namespace) must be defined by the build"
#endif

namespace wb::cand::WB_KNS {
namespace {

#if defined(__AVX512F__)
constexpr int W = 16;
struct V {
  __m512 v;
};
inline V load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void store(float* p, V a) { _mm512_storeu_ps(p, a.v); }
inline V set1(float x) { return {_mm512_set1_ps(x)}; }
inline V add(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
inline V sub(V a, V b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline V mul(V a, V b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline V div(V a, V b) { return {_mm512_div_ps(a.v, b.v)}; }
inline V fma(V a, V b, V c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }  // a*b + c
inline V vmax(V a, V b) { return {_mm512_max_ps(a.v, b.v)}; }
inline V vmin(V a, V b) { return {_mm512_min_ps(a.v, b.v)}; }
inline float hsum(V a) { return _mm512_reduce_add_ps(a.v); }
inline float hmax(V a) { return _mm512_reduce_max_ps(a.v); }
inline V round_even(V a) {
  return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
// 2^n for integral n in [-126, 127].
inline V pow2i(V n) {
  __m512i i = _mm512_cvtps_epi32(n.v);
  i = _mm512_slli_epi32(_mm512_add_epi32(i, _mm512_set1_epi32(127)), 23);
  return {_mm512_castsi512_ps(i)};
}
inline V round_bf16v(V a) {
  __m512i b = _mm512_castps_si512(a.v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  b = _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  b = _mm512_and_si512(b, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
  return {_mm512_castsi512_ps(b)};
}
inline V round_f16v(V a) {
  return {_mm512_cvtph_ps(_mm512_cvtps_ph(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))};
}
inline V load_bf16(const uint16_t* p) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
}
inline V load_f16(const uint16_t* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
// The high halves of a (bfloat16 bits when a is already rounded by round_bf16v) stored at p.
inline void store_bf16(uint16_t* p, V a) {
  const __m512i hi = _mm512_srli_epi32(_mm512_castps_si512(a.v), 16);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(hi));
}
#elif defined(__AVX2__)
constexpr int W = 8;
struct V {
  __m256 v;
};
inline V load(const float* p) { return {_mm256_loadu_ps(p)}; }
inline void store(float* p, V a) { _mm256_storeu_ps(p, a.v); }
inline V set1(float x) { return {_mm256_set1_ps(x)}; }
inline V add(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
inline V sub(V a, V b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline V mul(V a, V b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline V div(V a, V b) { return {_mm256_div_ps(a.v, b.v)}; }
inline V fma(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline V vmax(V a, V b) { return {_mm256_max_ps(a.v, b.v)}; }
inline V vmin(V a, V b) { return {_mm256_min_ps(a.v, b.v)}; }
inline float hsum(V a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(V a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline V round_even(V a) {
  return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
inline V pow2i(V n) {
  __m256i i = _mm256_cvtps_epi32(n.v);
  i = _mm256_slli_epi32(_mm256_add_epi32(i, _mm256_set1_epi32(127)), 23);
  return {_mm256_castsi256_ps(i)};
}
inline V round_bf16v(V a) {
  __m256i b = _mm256_castps_si256(a.v);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
  b = _mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
  b = _mm256_and_si256(b, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)));
  return {_mm256_castsi256_ps(b)};
}
inline V round_f16v(V a) {
  return {_mm256_cvtph_ps(_mm256_cvtps_ph(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))};
}
inline V load_bf16(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
}
inline V load_f16(const uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
inline void store_bf16(uint16_t* p, V a) {
  const __m256i hi = _mm256_srli_epi32(_mm256_castps_si256(a.v), 16);
  const __m128i h = _mm_packus_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
}
#else
constexpr int W = 1;
struct V {
  float v;
};
inline V load(const float* p) { return {*p}; }
inline void store(float* p, V a) { *p = a.v; }
inline V set1(float x) { return {x}; }
inline V add(V a, V b) { return {a.v + b.v}; }
inline V sub(V a, V b) { return {a.v - b.v}; }
inline V mul(V a, V b) { return {a.v * b.v}; }
inline V div(V a, V b) { return {a.v / b.v}; }
inline V fma(V a, V b, V c) { return {std::fma(a.v, b.v, c.v)}; }
inline V vmax(V a, V b) { return {a.v > b.v ? a.v : b.v}; }
inline V vmin(V a, V b) { return {a.v < b.v ? a.v : b.v}; }
inline float hsum(V a) { return a.v; }
inline float hmax(V a) { return a.v; }
inline V round_even(V a) { return {std::nearbyint(a.v)}; }
inline V pow2i(V n) {
  const auto i = static_cast<uint32_t>(static_cast<int32_t>(n.v) + 127) << 23;
  return {std::bit_cast<float>(i)};
}
inline V round_bf16v(V a) { return {bf16_bits_to_f32(f32_to_bf16_bits(a.v))}; }
inline V round_f16v(V a) { return {f16_bits_to_f32(f32_to_f16_bits(a.v))}; }
inline V load_bf16(const uint16_t* p) { return {bf16_bits_to_f32(*p)}; }
inline V load_f16(const uint16_t* p) { return {f16_bits_to_f32(*p)}; }
inline void store_bf16(uint16_t* p, V a) {
  *p = static_cast<uint16_t>(std::bit_cast<uint32_t>(a.v) >> 16);
}
#endif

// exp(x), Cephes expf scheme: x = n ln2 + r, |r| <= ln2/2, degree-7 polynomial for e^r,
// scaled by 2^n. Inputs are clamped to [-87, 88.3] so 2^n stays a normal float; about 1 ulp.
inline V vexp(V x) {
  x = vmin(vmax(x, set1(-87.0f)), set1(88.3f));
  V n = round_even(mul(x, set1(1.44269504088896341f)));
  x = fma(n, set1(-0.693359375f), x);
  x = fma(n, set1(2.12194440e-4f), x);
  V z = mul(x, x);
  V y = set1(1.9875691500e-4f);
  y = fma(y, x, set1(1.3981999507e-3f));
  y = fma(y, x, set1(8.3334519073e-3f));
  y = fma(y, x, set1(4.1665795894e-2f));
  y = fma(y, x, set1(1.6666665459e-1f));
  y = fma(y, x, set1(5.0000001201e-1f));
  y = fma(y, z, add(x, set1(1.0f)));
  return mul(y, pow2i(n));
}

// erf(x): odd/even rational approximation on [-4, 4] (as in Eigen / XLA), erf = +-1 outside
// in float32; a few ulp.
inline V verf(V a) {
  const V x = vmin(vmax(a, set1(-4.0f)), set1(4.0f));
  const V x2 = mul(x, x);
  V p = fma(x2, set1(-2.72614225801306e-10f), set1(2.77068142495902e-08f));
  p = fma(x2, p, set1(-2.10102402082508e-06f));
  p = fma(x2, p, set1(-5.69250639462346e-05f));
  p = fma(x2, p, set1(-7.34990630326855e-04f));
  p = fma(x2, p, set1(-2.95459980854025e-03f));
  p = fma(x2, p, set1(-1.60960333262415e-02f));
  p = mul(x, p);
  V q = fma(x2, set1(-1.45660718464996e-05f), set1(-2.13374055278905e-04f));
  q = fma(x2, q, set1(-1.68282697438203e-03f));
  q = fma(x2, q, set1(-7.37332916720468e-03f));
  q = fma(x2, q, set1(-1.42647390514189e-02f));
  return div(p, q);
}

inline V gelu_erf(V x) {
  const V e = verf(mul(x, set1(0.70710678118654752f)));
  return mul(mul(set1(0.5f), x), add(set1(1.0f), e));
}

// tanh(u) = 1 - 2 / (exp(2u) + 1); saturates correctly through the clamped exp.
inline V gelu_tanh(V x) {
  const V u = mul(set1(0.7978845608028654f), fma(mul(set1(0.044715f), x), mul(x, x), x));
  const V t = sub(set1(1.0f), div(set1(2.0f), add(vexp(add(u, u)), set1(1.0f))));
  return mul(mul(set1(0.5f), x), add(set1(1.0f), t));
}

// Applies f to n elements: full vectors, then the tail through a W-wide buffer.
template <class F>
inline void map1(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, f(load(x + i)));
  if (i < n) {
    float buf[W] = {};
    const auto rem = static_cast<std::size_t>(n - i);
    std::memcpy(buf, x + i, rem * sizeof(float));
    store(buf, f(load(buf)));
    std::memcpy(y + i, buf, rem * sizeof(float));
  }
}

// Applies f(x, b) over n elements of x with a per-element second operand b (e.g. a bias row).
template <class F>
inline void map2(const float* x, const float* b, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, f(load(x + i), load(b + i)));
  if (i < n) {
    float bx[W] = {};
    float bb[W] = {};
    const auto rem = static_cast<std::size_t>(n - i);
    std::memcpy(bx, x + i, rem * sizeof(float));
    std::memcpy(bb, b + i, rem * sizeof(float));
    store(bx, f(load(bx), load(bb)));
    std::memcpy(y + i, bx, rem * sizeof(float));
  }
}

inline float row_sum(const float* x, int n) {
  V acc0 = set1(0.0f), acc1 = set1(0.0f);
  int i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    acc0 = add(acc0, load(x + i));
    acc1 = add(acc1, load(x + i + W));
  }
  for (; i + W <= n; i += W) acc0 = add(acc0, load(x + i));
  float s = hsum(add(acc0, acc1));
  for (; i < n; ++i) s += x[i];
  return s;
}

inline float row_sq_dev(const float* x, int n, float mean) {
  const V m = set1(mean);
  V acc0 = set1(0.0f), acc1 = set1(0.0f);
  int i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const V d0 = sub(load(x + i), m);
    const V d1 = sub(load(x + i + W), m);
    acc0 = fma(d0, d0, acc0);
    acc1 = fma(d1, d1, acc1);
  }
  for (; i + W <= n; i += W) {
    const V d = sub(load(x + i), m);
    acc0 = fma(d, d, acc0);
  }
  float s = hsum(add(acc0, acc1));
  for (; i < n; ++i) {
    const float d = x[i] - mean;
    s += d * d;
  }
  return s;
}

void layer_norm(const float* x, float* y, int64_t rows, int cols, const float* g, const float* b,
                float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float mean = row_sum(xr, cols) / static_cast<float>(cols);
    const float var = row_sq_dev(xr, cols, mean) / static_cast<float>(cols);
    const float rstd = 1.0f / std::sqrt(var + eps);
    const V vm = set1(mean), vr = set1(rstd);
    int c = 0;
    for (; c + W <= cols; c += W)
      store(yr + c, fma(mul(sub(load(xr + c), vm), vr), load(g + c), load(b + c)));
    for (; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd * g[c] + b[c];
  }
}

void bias_gelu(float* x, int64_t rows, int cols, const float* bias, bool tanh_approx) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    if (bias != nullptr) {
      if (tanh_approx)
        map2(xr, bias, xr, cols, [](V a, V bb) { return gelu_tanh(add(a, bb)); });
      else
        map2(xr, bias, xr, cols, [](V a, V bb) { return gelu_erf(add(a, bb)); });
    } else {
      if (tanh_approx)
        map1(xr, xr, cols, [](V a) { return gelu_tanh(a); });
      else
        map1(xr, xr, cols, [](V a) { return gelu_erf(a); });
    }
  }
}

void bias_add(float* x, int64_t rows, int cols, const float* bias) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    map2(xr, bias, xr, cols, [](V a, V bb) { return add(a, bb); });
  }
}

void residual_add(const float* a, const float* x, float* y, int64_t rows, int cols,
                  const float* bias) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = a + r * cols;
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    int c = 0;
    if (bias != nullptr) {
      for (; c + W <= cols; c += W)
        store(yr + c, add(load(ar + c), add(load(xr + c), load(bias + c))));
      for (; c < cols; ++c) yr[c] = ar[c] + (xr[c] + bias[c]);
    } else {
      for (; c + W <= cols; c += W) store(yr + c, add(load(ar + c), load(xr + c)));
      for (; c < cols; ++c) yr[c] = ar[c] + xr[c];
    }
  }
}

// The largest of xr[0, cols): vector lanes, then the tail.
float row_max(const float* xr, int cols) {
  V vm = set1(-std::numeric_limits<float>::infinity());
  int c = 0;
  for (; c + W <= cols; c += W) vm = vmax(vm, load(xr + c));
  float m = hmax(vm);
  for (; c < cols; ++c) m = std::max(m, xr[c]);
  return m;
}

void softmax_rows(float* x, int64_t rows, int cols, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    const V mv = set1(row_max(xr, cols));
    // exp(x - m) in place, then the sum of what was stored.
    map1(xr, xr, cols, [mv](V a) { return vexp(sub(a, mv)); });
    const float inv = 1.0f / row_sum(xr, cols);
    const V iv = set1(inv);
    map1(xr, xr, cols, [iv](V a) { return mul(a, iv); });
  }
}

void exp_rows(float* x, int64_t rows, int cols, int64_t ld, float* inv_sum) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    const V mv = set1(row_max(xr, cols));
    V acc = set1(0.0f);
    int c = 0;
    for (; c + W <= cols; c += W) {
      const V e = vexp(sub(load(xr + c), mv));
      store(xr + c, e);
      acc = add(acc, e);
    }
    float s = hsum(acc);
    if (c < cols) {
      float buf[W] = {};
      const auto rem = static_cast<std::size_t>(cols - c);
      std::memcpy(buf, xr + c, rem * sizeof(float));
      store(buf, vexp(sub(load(buf), mv)));
      for (std::size_t i = 0; i < rem; ++i) s += buf[i];
      std::memcpy(xr + c, buf, rem * sizeof(float));
    }
    inv_sum[r] = 1.0f / s;
  }
}

void exp_rows_bf16(const float* x, int64_t rows, int cols, int64_t ld, uint16_t* p, int64_t ldp,
                   float* inv_sum) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
    uint16_t* pr = p + r * ldp;
    const V mv = set1(row_max(xr, cols));
    V acc = set1(0.0f);
    int c = 0;
    for (; c + W <= cols; c += W) {
      const V e = round_bf16v(vexp(sub(load(xr + c), mv)));
      store_bf16(pr + c, e);
      acc = add(acc, e);
    }
    float s = hsum(acc);
    if (c < cols) {
      float buf[W] = {};
      uint16_t bits[W] = {};
      const auto rem = static_cast<std::size_t>(cols - c);
      std::memcpy(buf, xr + c, rem * sizeof(float));
      const V e = round_bf16v(vexp(sub(load(buf), mv)));
      store(buf, e);
      store_bf16(bits, e);
      for (std::size_t i = 0; i < rem; ++i) s += buf[i];
      std::memcpy(pr + c, bits, rem * sizeof(uint16_t));
    }
    inv_sum[r] = 1.0f / s;
  }
}

void scale_rows(float* x, int64_t rows, int cols, int64_t ld, const float* sc) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    const V v = set1(sc[r]);
    map1(xr, xr, cols, [v](V a) { return mul(a, v); });
  }
}

// ---- attention micro-kernels: MR x NR register tiles, NR = 2 vectors ----
constexpr int MR = kAttnMR;
constexpr int NR = 2 * W;

void attn_pack_k(const float* k, int64_t ldk, int t, int dh, float* kp) {
  const int panels = (t + NR - 1) / NR;
  for (int p = 0; p < panels; ++p) {
    float* dst = kp + static_cast<int64_t>(p) * dh * NR;
    for (int j = 0; j < NR; ++j) {
      const int row = p * NR + j;
      if (row < t) {
        const float* src = k + row * ldk;
        for (int d = 0; d < dh; ++d) dst[d * NR + j] = src[d];
      } else {
        for (int d = 0; d < dh; ++d) dst[d * NR + j] = 0.0f;
      }
    }
  }
}

void attn_pack_v(const float* v, int64_t ldv, int t, int dh, float* vp) {
  // Column panels [dhp / NR][t][NR]: each panel is one contiguous stream for attn_pv.
  const int np = (dh + NR - 1) / NR;
  for (int p = 0; p < np; ++p) {
    float* dst = vp + static_cast<int64_t>(p) * t * NR;
    const int cols = std::min(NR, dh - p * NR);
    for (int r = 0; r < t; ++r) {
      const float* src = v + r * ldv + p * NR;
      float* d = dst + static_cast<int64_t>(r) * NR;
      for (int c = 0; c < cols; ++c) d[c] = src[c];
      for (int c = cols; c < NR; ++c) d[c] = 0.0f;
    }
  }
}

// Stores acc * scale into up to `rows` x `cols` of dst (tile rows ld apart).
inline void store_tile(V (&acc)[MR][2], float* dst, int64_t ld, int rows, int cols,
                       const float* scale) {
  for (int r = 0; r < rows; ++r) {
    const V sv = set1(scale[r]);
    float* d = dst + r * ld;
    if (cols == NR) {
      store(d, mul(acc[r][0], sv));
      store(d + W, mul(acc[r][1], sv));
    } else {
      float buf[NR];
      store(buf, mul(acc[r][0], sv));
      store(buf + W, mul(acc[r][1], sv));
      for (int c = 0; c < cols; ++c) d[c] = buf[c];
    }
  }
}

void attn_qk(const float* q, int64_t ldq, int m, const float* kp, int t, int dh, float alpha,
             float* s, int64_t lds) {
  const int panels = (t + NR - 1) / NR;
  float scale[MR];
  for (float& x : scale) x = alpha;
  // Panel-outer: one packed K^T panel ([dh][NR], a few KB) stays in L1 across all row tiles.
  for (int p = 0; p < panels; ++p) {
    const float* b = kp + static_cast<int64_t>(p) * dh * NR;
    const int cols = std::min(NR, t - p * NR);
    for (int i0 = 0; i0 < m; i0 += MR) {
      const int mr = std::min(MR, m - i0);
      const float* qr[MR];
      for (int r = 0; r < MR; ++r) qr[r] = q + static_cast<int64_t>(i0 + std::min(r, mr - 1)) * ldq;
      V acc[MR][2];
      for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = set1(0.0f);
      for (int d = 0; d < dh; ++d) {
        const V b0 = load(b + d * NR), b1 = load(b + d * NR + W);
        for (int r = 0; r < MR; ++r) {
          const V a = set1(qr[r][d]);
          acc[r][0] = fma(a, b0, acc[r][0]);
          acc[r][1] = fma(a, b1, acc[r][1]);
        }
      }
      store_tile(acc, s + i0 * lds + p * NR, lds, mr, cols, scale);
    }
  }
}

void attn_pv(const float* e, int64_t lde, int m, const float* vp, int t, int dh, const float* scale,
             float* o, int64_t ldo) {
  const int np = (dh + NR - 1) / NR;
  for (int p = 0; p < np; ++p) {
    const float* b = vp + static_cast<int64_t>(p) * t * NR;
    const int cols = std::min(NR, dh - p * NR);
    for (int i0 = 0; i0 < m; i0 += MR) {
      const int mr = std::min(MR, m - i0);
      const float* er[MR];
      for (int r = 0; r < MR; ++r) er[r] = e + static_cast<int64_t>(i0 + std::min(r, mr - 1)) * lde;
      V acc[MR][2];
      for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = set1(0.0f);
      for (int tt = 0; tt < t; ++tt) {
        const V b0 = load(b + static_cast<int64_t>(tt) * NR);
        const V b1 = load(b + static_cast<int64_t>(tt) * NR + W);
        for (int r = 0; r < MR; ++r) {
          const V a = set1(er[r][tt]);
          acc[r][0] = fma(a, b0, acc[r][0]);
          acc[r][1] = fma(a, b1, acc[r][1]);
        }
      }
      store_tile(acc, o + i0 * ldo + p * NR, ldo, mr, cols, scale + i0);
    }
  }
}

void round_bf16(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](V a) { return round_bf16v(a); });
}
void round_f16(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](V a) { return round_f16v(a); });
}
void to_bf16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store_bf16(y + i, round_bf16v(load(x + i)));
  for (; i < n; ++i) y[i] = f32_to_bf16_bits(x[i]);
}
void bf16_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, load_bf16(x + i));
  for (; i < n; ++i) y[i] = bf16_bits_to_f32(x[i]);
}
void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, load_f16(x + i));
  for (; i < n; ++i) y[i] = f16_bits_to_f32(x[i]);
}
void power(const float* z, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = z[2 * i] * z[2 * i] + z[2 * i + 1] * z[2 * i + 1];
}
void erf_k(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](V a) { return verf(a); });
}
void exp_k(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](V a) { return vexp(a); });
}

}  // namespace

const KernelTable& table() {
  static const KernelTable t{.isa = Isa::WB_KNS,
                             .layer_norm = layer_norm,
                             .bias_gelu = bias_gelu,
                             .bias_add = bias_add,
                             .residual_add = residual_add,
                             .softmax_rows = softmax_rows,
                             .exp_rows = exp_rows,
                             .exp_rows_bf16 = exp_rows_bf16,
                             .scale_rows = scale_rows,
                             .attn_nr = NR,
                             .attn_pack_k = attn_pack_k,
                             .attn_pack_v = attn_pack_v,
                             .attn_qk = attn_qk,
                             .attn_pv = attn_pv,
                             .round_bf16 = round_bf16,
                             .round_f16 = round_f16,
                             .to_bf16 = to_bf16,
                             .bf16_to_f32 = bf16_to_f32,
                             .f16_to_f32 = f16_to_f32,
                             .power = power,
                             .erf = erf_k,
                             .exp = exp_k};
  return t;
}

}  // namespace wb::cand::WB_KNS
