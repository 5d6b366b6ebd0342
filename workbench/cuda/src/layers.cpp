#include "layers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "wb/core/audio.h"
#include "wb/core/numerics.h"
#include "wb/core/taps.h"

namespace wb::cuda {

RunState::RunState(const ModelDims& dims, Act gemm_act, cudaStream_t stream,
                   std::unique_ptr<Gemm> gemms, int clips, bool cudnn_attention,
                   bool cudnn_fc1_gelu)
    : d(dims), act(gemm_act), s(stream), gemm(std::move(gemms)), max_batch(clips) {
  if (max_batch < 1)
    throw std::invalid_argument(fmt::format("cuda: batch {} (must be >= 1)", max_batch));
  if (cudnn_fc1_gelu)
    fc1_gelu[{d.n_audio_ctx, false}] = std::make_unique<CudnnGemmGelu>(
        act, d.n_audio_ctx, 4 * d.n_audio_state, d.n_audio_state, s);
  if (cudnn_attention)
    cudnn = std::make_unique<CudnnAttention>(act, d.n_audio_ctx, d.n_audio_state, d.n_audio_head,
                                             flash_rows(d.n_audio_ctx), s);
  flash = cudnn != nullptr || (act != Act::f32 && d.n_audio_state == 64 * d.n_audio_head);
  const int64_t c = d.n_audio_state, t = d.n_audio_ctx, t2 = 2 * t, nm = d.n_mels;
  const int64_t nb = max_batch, bt = nb * t;
  const int as = act_size(act);
  pcm = Buf(static_cast<std::size_t>(nb * kNSamples) * 4);
  frames = Buf(static_cast<std::size_t>(kNFrames) * kNFft * 4);
  spec = Buf(static_cast<std::size_t>(kNFrames) * (kNFft / 2 + 1) * 8);
  mel = Buf(static_cast<std::size_t>(nb * nm * t2) * 4);
  scratch = Buf(64);
  col = Buf(static_cast<std::size_t>(nb * std::max(t2 * nm * 3, t * 3 * c) * as));
  h1 = Buf(static_cast<std::size_t>(nb * t2 * c) * 4);
  x = Buf(static_cast<std::size_t>(bt * c) * 4);
  y = Buf(static_cast<std::size_t>(bt * c) * 4);
  a = Buf(static_cast<std::size_t>(bt * c) * 4);
  ln32 = Buf(static_cast<std::size_t>(bt * c) * 4);
  lnact = Buf(static_cast<std::size_t>(bt * c) * as);
  qkv = Buf(static_cast<std::size_t>(bt * 3 * c) * 4);
  // 16-bit q | k | v for the tensor-core attention: each clip's rows padded to whole tiles, the
  // padding kept zero.
  if (flash) {
    const std::size_t bytes = static_cast<std::size_t>(nb * flash_rows(d.n_audio_ctx)) * 3 * c * 2;
    qkv16 = Buf(bytes);
    ck(cudaMemset(qkv16.get(), 0, bytes), "memset");
    flash_ws = Buf(flash_workspace_bytes(d.n_audio_ctx, d.n_audio_state));
    qkv16_direct = gemm->supported(d.n_audio_ctx, 3 * d.n_audio_state, d.n_audio_state, true, act);
  }
  fc1_16_direct = act != Act::f32 && (4 * c) % 8 == 0 &&
                  gemm->supported(d.n_audio_ctx, 4 * d.n_audio_state, d.n_audio_state, true, act);
  // $WB_CUDA_FC1=wgmma: fc1 + bias + GELU by the own Hopper kernel (16-bit, where supported).
  static const bool fc1_own = [] {
    const char* e = std::getenv("WB_CUDA_FC1");
    return e != nullptr && std::string(e) == "wgmma";
  }();
  fc1_wgmma = fc1_own && act != Act::f32 && !cudnn_fc1() && gemm_gelu_wgmma_available() &&
              gemm_gelu_wgmma_supported(d.n_audio_ctx, 4 * d.n_audio_state, d.n_audio_state);
  o = Buf(static_cast<std::size_t>(bt * c) * as);
  f = Buf(static_cast<std::size_t>(bt * 4 * c) * 4);
  g = Buf(static_cast<std::size_t>(bt * 4 * c) * as);
  int n = kNFft;
  ck(cufftPlanMany(&fft, 1, &n, nullptr, 1, kNFft, nullptr, 1, kNFft / 2 + 1, CUFFT_R2C, kNFrames),
     "plan");
  ck(cufftSetStream(fft, s), "set stream");
}

RunState::~RunState() {
  if (fft != 0) cufftDestroy(fft);
}

namespace {

// A GEMM through the pinned plans (device.h), marked as one op.
void gemm(RunState& rs, Observer& obs, const void* x, const void* w, const void* bias,
          const float* r, void* y, int m, int n, int k, Act out = Act::f32) {
  if (!obs.skipped("gemm")) rs.gemm->run(x, w, bias, r, y, m, n, k, out);
  obs.mark("gemm");
}

// Clip b's block of a buffer whose clips are `stride` elements of `bytes` bytes apart.
void* clip_at(void* p, int b, int64_t stride, int bytes) {
  return static_cast<char*>(p) + b * stride * bytes;
}
const void* clip_at(const void* p, int b, int64_t stride, int bytes) {
  return static_cast<const char*>(p) + b * stride * bytes;
}

// The same GEMM on each clip of the run, M = T each, one strided-batched call: X_b at
// x + b x_stride, Y_b at y + b y_stride (elements); one clip: gemm() above. No residual.
// $WB_CUDA_QKV_GEMM=per-clip: one GEMM a clip instead (timing comparisons).
void gemm_clips(RunState& rs, Observer& obs, const void* x, int64_t x_stride, const void* w,
                const void* bias, void* y, int64_t y_stride, int m, int n, int k, Act out) {
  static const bool per_clip = [] {
    const char* e = std::getenv("WB_CUDA_QKV_GEMM");
    return e != nullptr && std::string(e) == "per-clip";
  }();
  if (obs.skipped("gemm"))
    ;
  else if (per_clip)
    for (int b = 0; b < rs.batch; ++b)
      rs.gemm->run(clip_at(x, b, x_stride, act_size(rs.act)), w, bias, nullptr,
                   clip_at(y, b, y_stride, act_size(out)), m, n, k, out);
  else
    rs.gemm->run_batched(x, x_stride, w, bias, y, y_stride, m, n, k, rs.batch, out);
  obs.mark("gemm");
}

// LN(x) -> rs.lnact (GEMM input); the float32 values go to the tap when it is wanted. eps and
// the ln-fp16 fault's float16 statistics as f says (wb/core/numerics.h).
void layer_norm(RunState& rs, const float* x, const LnW& w, const Faults& f, Observer& obs,
                const std::string& name) {
  const int c = rs.d.n_audio_state, t = rs.d.n_audio_ctx, rows = rs.rows();
  const float eps = f.ln_eps.value_or(kLayerNormEps);
  const bool want = obs.wanted(name);
  float* y32 = rs.act == Act::f32 ? nullptr : (want ? rs.ln32.f() : nullptr);
  if (obs.skipped("layer_norm"))
    ;
  else if (f.ln_fp16)
    launch_layer_norm_f16_stats(x, w.g.f(), w.b.f(), y32, rs.lnact.get(), rs.act, rows, c, eps,
                                rs.q());
  else
    launch_layer_norm(x, w.g.f(), w.b.f(), y32, rs.lnact.get(), rs.act, rows, c, eps, rs.q());
  obs.mark("layer_norm");
  if (want) obs.tap(name, rs.act == Act::f32 ? rs.lnact.f() : rs.ln32.f(), t, c);
}

}  // namespace

void log_mel(RunState& rs, const Model& m, const Faults& f, int clip) {
  float* mel = rs.mel.f() + clip * rs.mel_numel();
  // Fault stft-keep-last-frame: frames 1..3000 instead of 0..2999; stft-no-reflect: zeros.
  launch_frame_window(rs.pcm.f() + static_cast<int64_t>(clip) * kNSamples, kNSamples, m.window.f(),
                      rs.frames.f(), kNFrames, kNFft, kHop, f.stft_keep_last ? 1 : 0,
                      !f.stft_no_reflect, rs.s);
  ck(cufftExecR2C(rs.fft, rs.frames.f(), static_cast<cufftComplex*>(rs.spec.get())), "R2C");
  launch_mel_power(rs.spec.f(), m.filters.f(), mel, rs.d.n_mels, kNFrames, kNFft / 2 + 1, rs.s);
  launch_log_mel(mel, rs.mel_numel(), f.mel_db, static_cast<uint32_t*>(rs.scratch.get()), rs.s);
}

void conv_stem(RunState& rs, const Model& m, const Faults& f, Observer& obs) {
  const int c = rs.d.n_audio_state, nm = rs.d.n_mels, t = rs.d.n_audio_ctx, t2 = 2 * t;
  const int nb = rs.batch, bt = rs.rows();
  const int pad = f.conv_pad;
  const bool tanh = f.gelu_tanh;
  // conv1 (k3, s1, p1): im2col [B 2T, 3 n_mels] x W1^T + b1, GELU
  launch_im2col_conv1(rs.mel.f(), rs.col.get(), rs.act, nm, t2, pad, rs.q(), nb);
  obs.mark("im2col");
  gemm(rs, obs, rs.col.get(), m.conv1.get(), m.conv1_b.f(), nullptr, rs.h1.f(), nb * t2, c, nm * 3);
  // Untapped, conv1's GELU is applied by conv2's im2col as it reads h1 (the same values, one
  // pass over [B 2T, C] float32 less); tapped, h1 gets it in place first, as the tap shows it.
  const bool gelu_in_im2col = !obs.wanted(std::string(kConv1));
  if (!gelu_in_im2col) {
    launch_gelu(rs.h1.f(), rs.h1.f(), nullptr, Act::f32, static_cast<int64_t>(nb) * t2 * c, tanh,
                rs.q());
    obs.mark("gelu");
    obs.tap(std::string(kConv1), rs.h1.f(), t2, c);
  }
  // conv2 (k3, s2, p1): im2col [B T, 3C] x W2^T + b2, GELU, + positions (each clip's)
  launch_im2col_conv2(rs.h1.f(), rs.col.get(), rs.act, c, t2, t, pad, rs.q(), nb, gelu_in_im2col,
                      tanh);
  obs.mark("im2col");
  gemm(rs, obs, rs.col.get(), m.conv2.get(), m.conv2_b.f(), nullptr, rs.x.f(), bt, c, 3 * c);
  // Fault no-pos-embed: x reported unchanged under encoder.pos_embed.
  const int64_t n = static_cast<int64_t>(bt) * c, per_clip = static_cast<int64_t>(t) * c;
  if (obs.wanted(std::string(kConv2)) || f.no_pos_embed) {
    launch_gelu(rs.x.f(), rs.x.f(), nullptr, Act::f32, n, tanh, rs.q());
    obs.mark("gelu");
    obs.tap(std::string(kConv2), rs.x.f(), t, c);
    if (!f.no_pos_embed) launch_add(rs.x.f(), m.pos.f(), rs.x.f(), n, rs.q(), per_clip);
  } else {  // GELU and the positions in one pass (the same values)
    launch_gelu_add(rs.x.f(), m.pos.f(), rs.x.f(), n, per_clip, tanh, rs.q());
  }
  obs.mark("add");
  obs.tap(std::string(kPosEmbed), rs.x.f(), t, c);
}

void attention_layer(RunState& rs, const Model& m, const Faults& f, int i, Observer& obs) {
  const int c = rs.d.n_audio_state, t = rs.d.n_audio_ctx, heads = rs.d.n_audio_head;
  const int nb = rs.batch, bt = rs.rows();
  const int64_t tc3 = static_cast<int64_t>(t) * 3 * c;  // one clip's q | k | v elements
  const int64_t rows16 = flash_rows(t) * static_cast<int64_t>(3) * c;  // ... in qkv16
  const int as = act_size(rs.act);
  const BlockW& b = m.blocks[static_cast<std::size_t>(i)];
  auto tn = [i](std::string_view part) { return block_tap(TapSide::encoder, i, part); };
  // attn_ln
  layer_norm(rs, rs.x.f(), b.attn_ln, f, obs, tn("attn_ln"));
  // q | k | v = h Wqkv^T + [bq, 0, bv]   [B T, 3C]: float32, or straight into the 16-bit buffer
  // of the tensor-core attention when no q/k/v tap is wanted
  const char* names[3] = {"attn.q", "attn.k", "attn.v"};
  bool want_qkv = false;
  for (const char* n : names) want_qkv = want_qkv || obs.wanted(tn(n));
  const bool direct =
      rs.flash && rs.qkv16_direct &&
      (nb == 1 || rs.gemm->supported(GemmShape{t, 3 * c, c, true, rs.act, nb,
                                               static_cast<int64_t>(t) * c, rows16}));
  if (direct) {
    // Each clip's rows into its block of the attention's padded layout ([B][flash_rows(T), 3C]):
    // one strided-batched GEMM, M = T a clip (rather than B GEMMs, or one of M = B T and a
    // padded copy after it: an extra pass over B T 3C 16-bit values each way). Taps show the
    // 16-bit values the attention reads.
    gemm_clips(rs, obs, rs.lnact.get(), static_cast<int64_t>(t) * c, b.qkv.get(), b.qkv_b16.get(),
               rs.qkv16.get(), rows16, t, 3 * c, c, rs.act);
    if (want_qkv) {
      for (int k = 0; k < nb; ++k)
        launch_to_f32(clip_at(rs.qkv16.get(), k, rows16, 2), rs.act, rs.qkv.f() + k * tc3, tc3,
                      rs.q());
      for (int j = 0; j < 3; ++j) obs.tap(tn(names[j]), rs.qkv.f() + j * c, t, c, 3 * c);
    }
  } else {
    gemm(rs, obs, rs.lnact.get(), b.qkv.get(), b.qkv_b.f(), nullptr, rs.qkv.f(), bt, 3 * c, c);
    for (int j = 0; j < 3; ++j) obs.tap(tn(names[j]), rs.qkv.f() + j * c, t, c, 3 * c);
    if (rs.flash) {
      for (int k = 0; k < nb; ++k)
        launch_convert(rs.qkv.f() + k * tc3, clip_at(rs.qkv16.get(), k, rows16, 2), rs.act, tc3,
                       rs.q());
      obs.mark("convert");
    }
  }
  // softmax(q k^T * s^2) v with s = d_head^-0.25 applied to q and k each (Whisper), and the
  // attn-scale fault's change of it: wb/core/numerics.h. The tensor-core kernels take the clips
  // in one launch; the float32 one goes clip by clip.
  const float alpha = attention_logit_scale(c / heads, f.attn_scale);
  if (obs.skipped("attention"))
    ;
  else if (rs.cudnn)
    rs.cudnn->run(rs.qkv16.get(), rs.o.get(), alpha, nb);
  else if (rs.flash)
    launch_flash_attention(rs.qkv16.get(), rs.o.get(), rs.act, t, c, heads, alpha, rs.flash_ws.f(),
                           rs.q(), nb);
  else
    for (int k = 0; k < nb; ++k)
      launch_attention(rs.qkv.f() + k * tc3,
                       clip_at(rs.o.get(), k, static_cast<int64_t>(t) * c, as), rs.act, t, c, heads,
                       alpha, rs.act != Act::f32, rs.q());
  obs.mark("attention");
  // y = x + (o Wo^T + bo), the residual in the GEMM's epilogue. The attn.out tap is a second
  // GEMM without the residual, so that selecting it leaves y as it is without taps.
  gemm(rs, obs, rs.o.get(), b.out.get(), b.out_b.f(), rs.x.f(), rs.y.f(), bt, c, c);
  if (obs.wanted(tn("attn.out"))) {
    gemm(rs, obs, rs.o.get(), b.out.get(), b.out_b.f(), nullptr, rs.a.f(), bt, c, c);
    obs.tap(tn("attn.out"), rs.a.f(), t, c);
  }
  obs.tap(tn("resid_attn"), rs.y.f(), t, c);
}

void mlp_layer(RunState& rs, const Model& m, const Faults& f, int i, Observer& obs) {
  const int c = rs.d.n_audio_state, t = rs.d.n_audio_ctx, c4 = 4 * c, bt = rs.rows();
  const int64_t n4 = static_cast<int64_t>(bt) * c4;
  const BlockW& b = m.blocks[static_cast<std::size_t>(i)];
  auto tn = [i](std::string_view part) { return block_tap(TapSide::encoder, i, part); };
  // mlp_ln, fc1 + bias (epilogue), exact GELU (own kernel: cuBLASLt's GELU is tanh)
  layer_norm(rs, rs.y.f(), b.mlp_ln, f, obs, tn("mlp_ln"));
  if (rs.cudnn_fc1() || rs.fc1_wgmma) {
    // One kernel of our own (Hopper wgmma: the GELU of the sum rounded to 16 bits, as the path
    // below) or one cuDNN graph (the GELU on the float32 accumulator): 16-bit g. The mlp.fc1 tap
    // is a second GEMM (float32 out, what the GELU took up to summation order and, for the own
    // kernel, the 16-bit rounding), so that selecting it changes nothing.
    if (obs.wanted(tn("mlp.fc1"))) {
      gemm(rs, obs, rs.lnact.get(), b.fc1.get(), b.fc1_b.f(), nullptr, rs.f.f(), bt, c4, c);
      obs.tap(tn("mlp.fc1"), rs.f.f(), t, c4);
    }
    if (rs.fc1_wgmma) {
      if (!obs.skipped("gemm"))
        launch_gemm_gelu_wgmma(rs.lnact.get(), b.fc1.get(), b.fc1_b.f(), rs.g.get(), rs.act, bt, c4,
                               c, f.gelu_tanh, rs.s);
    } else {
      auto& fused = rs.fc1_gelu[{bt, f.gelu_tanh}];
      if (!fused) fused = std::make_unique<CudnnGemmGelu>(rs.act, bt, c4, c, rs.s, f.gelu_tanh);
      if (!obs.skipped("gemm")) fused->run(rs.lnact.get(), b.fc1.get(), b.fc1_b.f(), rs.g.get());
    }
    obs.mark("gemm");
    if (obs.wanted(tn("mlp.gelu"))) {
      launch_to_f32(rs.g.get(), rs.act, rs.f.f(), n4, rs.q());
      obs.tap(tn("mlp.gelu"), rs.f.f(), t, c4);
    }
  } else if (rs.fc1_16_direct && (rs.batch == 1 || rs.gemm->supported(bt, c4, c, true, rs.act))) {
    // Reduced modes: fc1 writes 16-bit pre-activations (float32 accumulation), GELU in place;
    // taps show those 16-bit values, so observing changes nothing.
    gemm(rs, obs, rs.lnact.get(), b.fc1.get(), b.fc1_b16.get(), nullptr, rs.g.get(), bt, c4, c,
         rs.act);
    if (obs.wanted(tn("mlp.fc1"))) {
      launch_to_f32(rs.g.get(), rs.act, rs.f.f(), n4, rs.q());
      obs.tap(tn("mlp.fc1"), rs.f.f(), t, c4);
    }
    if (!obs.skipped("gelu")) launch_gelu16(rs.g.get(), rs.act, n4, f.gelu_tanh, rs.q());
    obs.mark("gelu");
    if (obs.wanted(tn("mlp.gelu"))) {
      launch_to_f32(rs.g.get(), rs.act, rs.f.f(), n4, rs.q());
      obs.tap(tn("mlp.gelu"), rs.f.f(), t, c4);
    }
  } else {
    gemm(rs, obs, rs.lnact.get(), b.fc1.get(), b.fc1_b.f(), nullptr, rs.f.f(), bt, c4, c);
    obs.tap(tn("mlp.fc1"), rs.f.f(), t, c4);
    const bool want_gelu = obs.wanted(tn("mlp.gelu"));
    if (rs.act == Act::f32) {
      launch_gelu(rs.f.f(), rs.f.f(), nullptr, Act::f32, n4, f.gelu_tanh, rs.q());
      obs.mark("gelu");
      obs.tap(tn("mlp.gelu"), rs.f.f(), t, c4);
    } else if (!obs.skipped("gelu")) {
      launch_gelu(rs.f.f(), want_gelu ? rs.f.f() : nullptr, rs.g.get(), rs.act, n4, f.gelu_tanh,
                  rs.q());
      obs.mark("gelu");
      if (want_gelu) obs.tap(tn("mlp.gelu"), rs.f.f(), t, c4);
    }
  }
  const void* g = rs.act == Act::f32 ? rs.f.get() : rs.g.get();
  // x = y + (g W2^T + b2), likewise (the mlp.fc2 tap a second GEMM)
  gemm(rs, obs, g, b.fc2.get(), b.fc2_b.f(), rs.y.f(), rs.x.f(), bt, c, c4);
  if (obs.wanted(tn("mlp.fc2"))) {
    gemm(rs, obs, g, b.fc2.get(), b.fc2_b.f(), nullptr, rs.a.f(), bt, c, c4);
    obs.tap(tn("mlp.fc2"), rs.a.f(), t, c);
  }
  obs.tap(tn("out"), rs.x.f(), t, c);
}

void final_layer_norm(RunState& rs, const Model& m, const Faults& f, Observer& obs) {
  const int c = rs.d.n_audio_state, t = rs.d.n_audio_ctx, bt = rs.rows();
  const float eps = f.ln_eps.value_or(kLayerNormEps);
  if (f.no_ln_post)  // fault: the output is the last block's, unnormalised
    ck(cudaMemcpyAsync(rs.y.get(), rs.x.get(), static_cast<std::size_t>(bt) * c * 4,
                       cudaMemcpyDeviceToDevice, rs.s),
       "copy");
  else if (f.ln_fp16)  // as the CPU candidate: an unlimited ln-fp16 reaches ln_post too
    launch_layer_norm_f16_stats(rs.x.f(), m.ln_post.g.f(), m.ln_post.b.f(), rs.y.f(), nullptr,
                                Act::f32, bt, c, eps, rs.q());
  else
    launch_layer_norm(rs.x.f(), m.ln_post.g.f(), m.ln_post.b.f(), rs.y.f(), nullptr, Act::f32, bt,
                      c, eps, rs.q());
  obs.mark("layer_norm");
  obs.tap(std::string(kLnPost), rs.y.f(), t, c);
}

}  // namespace wb::cuda
