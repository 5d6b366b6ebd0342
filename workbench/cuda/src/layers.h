// CUDA candidate layers (kernels -> layers -> the seam, as in the CPU candidate): the log-mel
// front end, the conv stem, the attention half and the MLP half of a block, ln_post. Each reads
// the immutable Model, works in the per-run RunState's device buffers on its stream, and reports
// its taps to an Observer (the seam stages them to the host). Activations are [T, C] row-major;
// a run over B clips keeps them one after the other ([B T, C]), and every row-wise op and GEMM
// runs once over all B T rows.
#pragma once
#include <cufft.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "attention_cudnn.h"
#include "device.h"
#include "gemm_gelu_cudnn.h"
#include "kernels.h"
#include "model.h"
#include "wb/core/faults.h"

namespace wb::cuda {

// Where a layer's taps and per-op profiling marks go. Layers ask whether a tap is wanted before
// any extra work for it (a second GEMM, a conversion), hand wanted ones over as device pointers,
// and mark the end of each op (the seam's profiling runs time the ops between marks).
class Observer {
 public:
  virtual ~Observer() = default;
  virtual bool wanted(const std::string& name) const = 0;
  // A [rows, cols] float32 tap of each clip of the run at `dev` (row stride ld; 0: cols): clip
  // b's rows start at dev + b rows ld. Read before the next op that overwrites it is enqueued.
  // Does nothing when the tap is not wanted.
  virtual void tap(const std::string& name, const float* dev, int64_t rows, int64_t cols,
                   int64_t ld = 0) = 0;
  virtual void mark(const char* op) = 0;
  // Timing only (the graphed per-op profile): ops of a skipped kind are not launched at all, so
  // the encoder's time without them can be measured. The results are then meaningless.
  virtual bool skipped(const char* /*op*/) const { return false; }
};

// Per-run device state, separate from the model: buffers sized for the dims and up to max_batch
// clips, the stream the layers enqueue on, the GEMM plans (made by the caller, before the weights
// are loaded), the FFT plan and which 16-bit paths are taken.
struct RunState {
  // cudnn: the attention is cuDNN's; cudnn_fc1: fc1 + GELU is one cuDNN graph (16-bit precisions;
  // throws where cuDNN cannot run).
  RunState(const ModelDims& d, Act act, cudaStream_t s, std::unique_ptr<Gemm> gemm,
           int max_batch = 1, bool cudnn = false, bool cudnn_fc1 = false);
  ~RunState();
  RunState(const RunState&) = delete;
  RunState& operator=(const RunState&) = delete;

  ModelDims d;
  Act act;
  cudaStream_t s;
  std::unique_ptr<Gemm> gemm;
  cufftHandle fft = 0;
  int max_batch = 1;  // clips the buffers hold
  int batch = 1;      // clips the layers run over now (1..max_batch), set by the caller
  // Per clip, the clips one after the other (B = max_batch): pcm [B][N_SAMPLES], frames
  // [N_FRAMES, N_FFT] and spec [N_FRAMES, N_FFT/2 + 1] complex (one clip at a time), mel
  // [B][n_mels, 2T]; col: im2col of either conv (GEMM input type); h1 [B 2T, C] conv1's output;
  // x, y [B T, C] the residual stream (x -> y -> x through a block); a [B T, C] a GEMM's output
  // without the residual (attn.out, mlp.fc2 taps); ln32 / lnact [B T, C] a layer norm's output
  // (float32 for taps / GEMM input type); qkv [B T, 3C] float32; o [B T, C] attention output
  // (GEMM input type); f [B T, 4C] float32 fc1 / GELU; g [B T, 4C] GELU output in the GEMM
  // input type.
  Buf pcm, frames, spec, mel, scratch, col, h1, x, y, a, ln32, lnact, qkv, o, f, g;
  Buf flash_ws;        // partial O, m, l of the key-split attention (one clip)
  Buf qkv16;           // [B][flash_rows(T), 3C] 16-bit, for the tensor-core attention
  bool flash = false;  // 16-bit q | k | v in qkv16 for a tensor-core attention (own: d_head 64)
  std::unique_ptr<CudnnAttention> cudnn;  // set: cuDNN's attention instead of the own kernels
  // fc1 + bias + GELU as one cuDNN graph: its plans per (rows, tanh GELU), the one-clip erf plan
  // made with the state (so an impossible graph fails at once), the others on first use; empty:
  // the own path.
  std::map<std::pair<int, bool>, std::unique_ptr<CudnnGemmGelu>> fc1_gelu;
  bool cudnn_fc1() const { return !fc1_gelu.empty(); }
  bool qkv16_direct = false;   // the qkv GEMM writes the 16-bit q | k | v itself
  bool fc1_16_direct = false;  // fc1 writes 16-bit pre-activations, GELU in place on them
  bool fc1_wgmma = false;      // fc1 + bias + GELU in one own Hopper kernel (gemm_wgmma.cu)
  // The own kernels launched as programmatic dependents of the kernel before them (kernels.h,
  // Queue): set by the caller where Options::dependent_launch asks and the device has it.
  bool pdl = false;
  Queue q() const { return {s, pdl}; }  // where the layers' own kernels are launched

  int64_t mel_numel() const { return static_cast<int64_t>(d.n_mels) * 2 * d.n_audio_ctx; }
  int rows() const { return batch * d.n_audio_ctx; }  // B T: the rows of a row-wise op
};

// Clip `clip`'s pcm (N_SAMPLES on the device) -> its mel [n_mels, 2T]: Hann-windowed frames,
// cuFFT R2C, mel power, log10 and Whisper's clamp (faults stft-keep-last-frame, stft-no-reflect,
// mel-db).
void log_mel(RunState& rs, const Model& m, const Faults& f, int clip = 0);

// conv1 (k3 s1) + GELU, conv2 (k3 s2) + GELU, + positions: mel -> x. f: faults.at(-1).
// Taps encoder.conv1, encoder.conv2, encoder.pos_embed.
void conv_stem(RunState& rs, const Model& m, const Faults& f, Observer& obs);

// Block i's attention half: y = x + attn(LN(x)). f: faults.at(i).
// Taps attn_ln, attn.q/k/v, attn.out, resid_attn.
void attention_layer(RunState& rs, const Model& m, const Faults& f, int i, Observer& obs);

// Block i's MLP half: x = y + fc2(gelu(fc1(LN(y)))). f: faults.at(i).
// Taps mlp_ln, mlp.fc1, mlp.gelu, mlp.fc2, out.
void mlp_layer(RunState& rs, const Model& m, const Faults& f, int i, Observer& obs);

// y = LN(x) with ln_post's weights (fault no-ln-post: y = x). f: faults.at(-1). Tap
// encoder.ln_post.
void final_layer_norm(RunState& rs, const Model& m, const Faults& f, Observer& obs);

}  // namespace wb::cuda
