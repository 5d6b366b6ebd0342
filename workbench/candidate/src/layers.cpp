#include "layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "wb/core/numerics.h"

namespace wb::cand {

void linear_tapped(RunState& rs, const float* a, int64_t m, int64_t lda, const WeightMatrix& w,
                   float* y, int64_t ldy, const Epilogue2& e, TapSink* taps, std::string_view tap,
                   const Shape& tap_shape) {
  if (wanted(taps, tap)) {
    linear(rs.ctx, a, m, lda, w, y, ldy, [&](int64_t r0, int64_t r1, int) {
      if (e.pre) e.pre(r0, r1);
    });
    report(taps, tap, tap_shape, DType::f32, y);
    if (e.post) rs.pool->parallel_for(m, [&](int64_t r0, int64_t r1, int) { e.post(r0, r1); });
    return;
  }
  linear(rs.ctx, a, m, lda, w, y, ldy, [&](int64_t r0, int64_t r1, int) {
    if (e.fused) {
      e.fused(r0, r1);
      return;
    }
    if (e.pre) e.pre(r0, r1);
    if (e.post) e.post(r0, r1);
  });
}

void layer_norm(RunState& rs, const Faults& f, const float* x, float* y, int64_t rows, int cols,
                const LayerNormW& w) {
  const float eps = f.ln_eps.value_or(kLayerNormEps);
  const bool f16 = f.ln_fp16;
  const KernelTable& k = *rs.k;
  rs.pool->parallel_for(rows, [&](int64_t r0, int64_t r1, int) {
    if (f16)
      layer_norm_f16_stats(x + r0 * cols, y + r0 * cols, r1 - r0, cols, w.g.data(), w.b.data(),
                           eps);
    else
      k.layer_norm(x + r0 * cols, y + r0 * cols, r1 - r0, cols, w.g.data(), w.b.data(), eps);
  });
}

namespace {
// After a GEMM into a [rows, c]: a += bias (pre, the tap point), then y = x + a (post); fused,
// y = x + (a + bias) in one pass: the same two sums per element, so a tap cannot change y.
Epilogue2 bias_residual(const KernelTable& k, const float* bias, const float* x, float* a, float* y,
                        int c) {
  Epilogue2 e;
  e.pre = [&k, bias, a, c](int64_t r0, int64_t r1) { k.bias_add(a + r0 * c, r1 - r0, c, bias); };
  e.post = [&k, x, a, y, c](int64_t r0, int64_t r1) {
    k.residual_add(x + r0 * c, a + r0 * c, y + r0 * c, r1 - r0, c, nullptr);
  };
  e.fused = [&k, bias, x, a, y, c](int64_t r0, int64_t r1) {
    k.residual_add(x + r0 * c, a + r0 * c, y + r0 * c, r1 - r0, c, bias);
  };
  return e;
}
}  // namespace

void conv_stem(RunState& rs, const Model& m, const Faults& f, const float* mel, float* xp,
               TapSink* taps) {
  const ModelDims& d = m.d;
  const int c = d.n_audio_state, nm = d.n_mels, t = d.n_audio_ctx, t2 = 2 * t;
  const int pad = f.conv_pad;
  const bool tanh = f.gelu_tanh;
  const KernelTable& k = *rs.k;
  // conv1 (k3, stride 1, pad 1) as im2col: X1[t, ci*3 + k] = mel[ci, t + k - pad], zero outside.
  // The fault conv-pad=P shifts the window (t + k - P) and keeps the output length.
  std::vector<float>& x1 = rs.ws.col;
  x1.resize(static_cast<std::size_t>(t2) * nm * 3);
  rs.pool->parallel_for(t2, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = x1.data() + r * nm * 3;
      for (int ci = 0; ci < nm; ++ci)
        for (int kk = 0; kk < 3; ++kk) {
          const int64_t s = r + kk - pad;
          row[ci * 3 + kk] = (s >= 0 && s < t2) ? mel[static_cast<int64_t>(ci) * t2 + s] : 0.0f;
        }
    }
  });
  std::vector<float>& h1 = rs.ws.h1;
  h1.resize(static_cast<std::size_t>(t2) * c);
  // Fault conv-bias-drop: conv1's bias of channel 0 is not added (a copy of the bias, zeroed).
  std::vector<float> bias1;
  const float* b1 = m.conv1_b.data();
  if (f.conv_bias_drop) {
    bias1.assign(m.conv1_b.data(), m.conv1_b.data() + c);
    bias1[0] = 0.0f;
    b1 = bias1.data();
  }
  linear(rs.ctx, x1.data(), t2, nm * 3, m.conv1, h1.data(), c, [&](int64_t r0, int64_t r1, int) {
    k.bias_gelu(h1.data() + r0 * c, r1 - r0, c, b1, tanh);
  });
  report(taps, kConv1, {t2, c}, DType::f32, h1.data());
  // conv2 (k3, stride 2, pad 1): X2[t, k*C + ci] = h1[2t + k - pad, ci] (row copies).
  std::vector<float>& x2 = rs.ws.col;
  x2.resize(static_cast<std::size_t>(t) * 3 * c);
  rs.pool->parallel_for(t, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      for (int kk = 0; kk < 3; ++kk) {
        const int64_t s = 2 * r + kk - pad;
        float* dst = x2.data() + (r * 3 + kk) * c;
        if (s >= 0 && s < t2)
          std::memcpy(dst, h1.data() + s * c, sizeof(float) * static_cast<std::size_t>(c));
        else
          std::fill(dst, dst + c, 0.0f);
      }
  });
  // + positional embedding after conv2's GELU (fault no-pos-embed: nothing added, and x is
  // reported unchanged under encoder.pos_embed).
  Epilogue2 e;
  e.pre = [&](int64_t r0, int64_t r1) {
    k.bias_gelu(xp + r0 * c, r1 - r0, c, m.conv2_b.data(), tanh);
  };
  if (!f.no_pos_embed)
    e.post = [&](int64_t r0, int64_t r1) {
      k.residual_add(m.pos.data() + r0 * c, xp + r0 * c, xp + r0 * c, r1 - r0, c, nullptr);
    };
  linear_tapped(rs, x2.data(), t, 3 * c, m.conv2, xp, c, e, taps, kConv2, {t, c});
  report(taps, kPosEmbed, {t, c}, DType::f32, xp);
}

void attention_layer(RunState& rs, const Model& m, const Faults& f, int i, const float* x, float* y,
                     TapSink* taps) {
  const ModelDims& d = m.d;
  const int c = d.n_audio_state, t = d.n_audio_ctx, heads = d.n_audio_head;
  const BlockW& b = m.blocks[static_cast<std::size_t>(i)];
  const KernelTable& k = *rs.k;
  auto tn = [i](std::string_view part) { return block_tap(TapSide::encoder, i, part); };
  const Shape tc{t, c};
  Lap lap{rs.prof};
  auto& h = rs.ws.h;
  h.resize(static_cast<std::size_t>(t) * c);
  // attn_ln: h = LN(x)
  layer_norm(rs, f, x, h.data(), t, c, b.attn_ln);
  report(taps, tn("attn_ln"), tc, DType::f32, h.data());
  lap("layer_norm");
  // q | k | v = h Wqkv^T + [bq, 0, bv]   -> [T, 3C]
  auto& qkv = rs.ws.qkv;
  qkv.resize(static_cast<std::size_t>(t) * 3 * c);
  linear(rs.ctx, h.data(), t, c, b.qkv, qkv.data(), 3 * c, [&](int64_t r0, int64_t r1, int) {
    k.bias_add(qkv.data() + r0 * 3 * c, r1 - r0, 3 * c, b.qkv_b.data());
  });
  const char* names[3] = {"attn.q", "attn.k", "attn.v"};
  for (int j = 0; j < 3; ++j) {
    if (!wanted(taps, tn(names[j]))) continue;
    auto& tmp = rs.ws.tap;
    tmp.resize(static_cast<std::size_t>(t) * c);
    for (int64_t r = 0; r < t; ++r)
      std::memcpy(tmp.data() + r * c, qkv.data() + r * 3 * c + j * c, sizeof(float) * c);
    report(taps, tn(names[j]), tc, DType::f32, tmp.data());
  }
  // Reduced precision: q, k, v enter the attention matmuls rounded to the weight type.
  round_to_precision(rs.ctx, qkv.data(), static_cast<int64_t>(qkv.size()));
  // softmax(q k^T * s^2) v with s = d_head^-0.25 applied to q and k each (Whisper), and the
  // attn-scale fault's change of it: wb/core/numerics.h.
  const float alpha = attention_logit_scale(c / heads, f.attn_scale);
  auto& o = rs.ws.o;
  o.resize(static_cast<std::size_t>(t) * c);
  lap("qkv");
  attention(rs.ctx, qkv.data(), t, c, heads, alpha, o.data(), rs.attn_block_rows, rs.ctx.attn);
  lap("attention");
  // attn.out = o Wo^T + bo;  resid_attn = x + attn.out
  auto& a = rs.ws.a;
  a.resize(static_cast<std::size_t>(t) * c);
  linear_tapped(rs, o.data(), t, c, b.out, a.data(), c,
                bias_residual(k, b.out_b.data(), x, a.data(), y, c), taps, tn("attn.out"), tc);
  report(taps, tn("resid_attn"), tc, DType::f32, y);
  lap("attn_out");
}

void mlp_layer(RunState& rs, const Model& m, const Faults& f, int i, float* y, TapSink* taps) {
  const ModelDims& d = m.d;
  const int c = d.n_audio_state, t = d.n_audio_ctx, c4 = 4 * c;
  const BlockW& b = m.blocks[static_cast<std::size_t>(i)];
  const KernelTable& k = *rs.k;
  auto tn = [i](std::string_view part) { return block_tap(TapSide::encoder, i, part); };
  const Shape tc{t, c};
  Lap lap{rs.prof};
  auto& h = rs.ws.h;
  h.resize(static_cast<std::size_t>(t) * c);
  // mlp_ln: h = LN(y)
  layer_norm(rs, f, y, h.data(), t, c, b.mlp_ln);
  report(taps, tn("mlp_ln"), tc, DType::f32, h.data());
  lap("layer_norm");
  // fc1 + exact GELU (gelu(h W1^T + b1)), fused unless the pre-GELU tap is wanted
  auto& fb = rs.ws.f;
  fb.resize(static_cast<std::size_t>(t) * c4);
  const bool tanh = f.gelu_tanh;
  Epilogue2 e1;
  e1.pre = [&](int64_t r0, int64_t r1) {
    k.bias_add(fb.data() + r0 * c4, r1 - r0, c4, b.fc1_b.data());
  };
  e1.post = [&](int64_t r0, int64_t r1) {
    k.bias_gelu(fb.data() + r0 * c4, r1 - r0, c4, nullptr, tanh);
  };
  e1.fused = [&](int64_t r0, int64_t r1) {  // gelu(x + b1): the same as pre then post
    k.bias_gelu(fb.data() + r0 * c4, r1 - r0, c4, b.fc1_b.data(), tanh);
  };
  linear_tapped(rs, h.data(), t, c, b.fc1, fb.data(), c4, e1, taps, tn("mlp.fc1"), {t, c4});
  report(taps, tn("mlp.gelu"), {t, c4}, DType::f32, fb.data());
  lap("fc1+gelu");
  // fc2, then out = y + fc2 (y updated in place)
  auto& a = rs.ws.a;
  a.resize(static_cast<std::size_t>(t) * c);
  linear_tapped(rs, fb.data(), t, c4, b.fc2, a.data(), c,
                bias_residual(k, b.fc2_b.data(), y, a.data(), y, c), taps, tn("mlp.fc2"), tc);
  report(taps, tn("out"), tc, DType::f32, y);
  lap("fc2+residual");
}

}  // namespace wb::cand
