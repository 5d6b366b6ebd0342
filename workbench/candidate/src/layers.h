// Candidate layers (kernels -> ops -> layers -> model, as in CTranslate2): the conv stem, the
// attention half and the MLP half of a block, layer norm. Each reads the immutable Model, works
// in the per-run RunState and reports its taps. Layouts: activations [T, C] row-major float32.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernels.h"
#include "model.h"
#include "ops.h"
#include "profiler.h"
#include "thread_pool.h"
#include "wb/core/faults.h"
#include "wb/core/taps.h"
#include "wb/core/tensor.h"

namespace wb::cand {

// Per-run scratch, separate from the model: one per encoder, reused across calls.
struct RunState {
  const KernelTable* k = nullptr;
  ThreadPool* pool = nullptr;
  OpContext ctx;
  int attn_block_rows = 96;  // queries per attention block
  struct Buffers {
    std::vector<float> col, h1, h, qkv, o, a, f, tap;
  } ws;
  Profile prof;
};

// A row-range step of a GEMM's epilogue: rows [r0, r1) of the output.
using RowOp = std::function<void(int64_t r0, int64_t r1)>;

// The one helper for "fuse the epilogue unless the tap is wanted": y = A W^T, then `pre` on each
// row range in the GEMM's epilogue; then, if `tap` is wanted, the rows after `pre` are reported
// under it and `post` runs as a second pass; otherwise `post` (or `fused`, which must apply the
// same per-element operations in the same order as pre then post) runs in the epilogue too.
// Either way each element sees the same float operations, so selecting a tap cannot change the
// numbers (tested: --taps minimal vs all give a bit-identical encoder.ln_post).
struct Epilogue2 {
  RowOp pre;    // always fused (may be empty)
  RowOp post;   // after the tap point (may be empty)
  RowOp fused;  // pre+post in one pass when the tap is not wanted (empty: pre then post)
};
void linear_tapped(RunState& rs, const float* a, int64_t m, int64_t lda, const WeightMatrix& w,
                   float* y, int64_t ldy, const Epilogue2& e, TapSink* taps, std::string_view tap,
                   const Shape& tap_shape);

// LayerNorm over the rows of [rows, cols]: eps 1e-5 unless the ln-eps fault sets it; the ln-fp16
// fault takes float16 statistics.
void layer_norm(RunState& rs, const Faults& f, const float* x, float* y, int64_t rows, int cols,
                const LayerNormW& w);

// conv1 (k3 s1) + GELU, conv2 (k3 s2) + GELU, + positions: mel [n_mels, 2T] -> x [T, C].
// Taps encoder.conv1, encoder.conv2, encoder.pos_embed.
void conv_stem(RunState& rs, const Model& m, const Faults& f, const float* mel, float* x,
               TapSink* taps);

// Block i's attention half: y = x + attn(LN(x)). Taps attn_ln, attn.q/k/v, attn.out, resid_attn.
void attention_layer(RunState& rs, const Model& m, const Faults& f, int i, const float* x, float* y,
                     TapSink* taps);

// Block i's MLP half, in place: y = y + fc2(gelu(fc1(LN(y)))). Taps mlp_ln, mlp.fc1, mlp.gelu,
// mlp.fc2, out.
void mlp_layer(RunState& rs, const Model& m, const Faults& f, int i, float* y, TapSink* taps);

}  // namespace wb::cand
