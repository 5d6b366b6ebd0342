// Launchers of the CUDA candidate's kernels (kernels.cu). Plain C++ declarations over device
// pointers, so host code compiled by the C++ compiler calls them. Layouts are row-major; every
// launcher enqueues on `s` and returns without synchronising.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace wb::cuda {

// Element type of the activations that feed GEMMs: float32 mode keeps float, the reduced modes
// round them to the weights' type (tensor-core inputs). The residual stream is always float.
enum class Act { f32, bf16, f16 };
inline int act_size(Act a) { return a == Act::f32 ? 4 : 2; }

// Where a launcher enqueues: a stream, and whether its kernels may start as programmatic
// dependents of the kernel before them on it (Hopper's programmatic dependent launch, compute
// capability 9.0 and later). Such a kernel's blocks may be scheduled as soon as the kernel before
// it has let them (at the latest when its last block exits) rather than after it has completed
// and its writes have been flushed, and each waits at its start (griddepcontrol.wait) until it
// has: the launch and the kernel's start overlap the other's end, and what is computed is the
// same. Every launcher below that takes a Queue launches only kernels that wait so. A plain
// stream converts to a Queue without it.
struct Queue {
  Queue(cudaStream_t stream, bool dep = false) : s(stream), dependent(dep) {}  // implicit
  cudaStream_t s;
  bool dependent;
};
// Whether the current device can launch this file's kernels as programmatic dependents: compute
// capability 9.0 on, and kernels built with their wait (code for sm_90 on; PTX of an older
// architecture, compiled for the device when loaded, has none, and its kernels would read early).
bool dependent_launch_available();

// ---- log-mel front end (frontend numbers from whisper/audio.py) ----
// frames[f, i] = window[i] * x_pad[(f + first) * hop + i], x_pad = x padded by n_fft/2 on both
// sides by reflection (zeros when !reflect). frames: [n_frames, n_fft].
void launch_frame_window(const float* pcm, int64_t n, const float* window, float* frames,
                         int n_frames, int n_fft, int hop, int first, bool reflect, cudaStream_t s);
// out[m, f] = sum_b filters[m, b] * |spec[f, b]|^2; spec: [n_frames, bins] complex (re, im).
void launch_mel_power(const float* spec, const float* filters, float* out, int n_mels, int n_frames,
                      int bins, cudaStream_t s);
// Whisper: L = log10(max(M, 1e-10)); L = max(L, max(L) - 8); (L + 4) / 4.
// db (fault mel-db): 10 log10(max(M, 1e-10)) floored at max - 80, no rescaling.
// scratch: one uint32 of device memory.
void launch_log_mel(float* mel, int64_t n, bool db, uint32_t* scratch, cudaStream_t s);

// ---- stem ----
// conv1 im2col: col[t, ci*3 + k] = mel[ci, t + k - pad] (0 outside), t in [0, t2). batch: clips
// one after the other (mel [batch][n_mels, t2] -> col [batch * t2, 3 n_mels]).
void launch_im2col_conv1(const float* mel, void* col, Act a, int n_mels, int t2, int pad, Queue s,
                         int batch = 1);
// conv2 im2col (stride 2): col[t, k*C + ci] = h[2t + k - pad, ci] (0 outside), t in [0, t1).
// batch: h [batch * t2, C] -> col [batch * t1, 3C]. gelu: h is taken through
// launch_gelu's GELU on the way (h itself unchanged; the same values as that kernel first).
void launch_im2col_conv2(const float* h, void* col, Act a, int c, int t2, int t1, int pad, Queue s,
                         int batch = 1, bool gelu = false, bool tanh_approx = false);

// ---- elementwise ----
// y = GELU(x) (exact erf, or the tanh approximation for the gelu-tanh fault); writes y_f32
// (may alias x; may be null) and y_act (may be null).
void launch_gelu(const float* x, float* y_f32, void* y_act, Act a, int64_t n, bool tanh_approx,
                 Queue s);
// In place on 16-bit values of type `a` (bf16/f16), n % 8 == 0; computed in float32 by gelu_16
// (flash_common.cuh: an erfc fit within 1.1e-5 relative, the fused fc1 kernel's GELU too).
void launch_gelu16(void* x, Act a, int64_t n, bool tanh_approx, Queue s);
// out[i] = a[i] + b[i % nb] (nb 0: n; the positions added to each clip of a batch: nb = T C).
void launch_add(const float* a, const float* b, float* out, int64_t n, Queue s, int64_t nb = 0);
// out[i] = GELU(x[i]) + b[i % nb] (x and out may alias): launch_gelu then launch_add, one pass.
void launch_gelu_add(const float* x, const float* b, float* out, int64_t n, int64_t nb,
                     bool tanh_approx, Queue s);
void launch_convert(const float* x, void* y, Act a, int64_t n, Queue s);
void launch_to_f32(const void* x, Act a, float* y, int64_t n, Queue s);

// ---- layer norm over rows of [rows, cols]; statistics in float32 (two-pass) ----
// Writes y_f32 and/or y_act (either may be null).
void launch_layer_norm(const float* x, const float* gamma, const float* beta, float* y_f32,
                       void* y_act, Act a, int rows, int cols, float eps, Queue s);
// The fault ln-fp16: the statistics accumulated in float16, each sum, difference, product and
// quotient rounded to float16 in sequence, as the CPU candidate does (one thread per row).
void launch_layer_norm_f16_stats(const float* x, const float* gamma, const float* beta,
                                 float* y_f32, void* y_act, Act a, int rows, int cols, float eps,
                                 Queue s);

// ---- attention ----
// qkv: [T, 3C] float (q | k | v, heads of d_head = C / heads contiguous within each); out: [T, C]
// of type `a`. softmax(alpha q k^T) v per head, flash-style: online softmax, no [T, T] matrix.
// round_inputs: q, k, v rounded to `a` as they are loaded (reduced modes: tensor-core inputs).
// Float32 on CUDA cores, one query per thread. Supported d_head: 32, 64, 128 (throws
// std::invalid_argument otherwise).
void launch_attention(const float* qkv, void* out, Act a, int t, int c, int heads, float alpha,
                      bool round_inputs, Queue s);
// Tensor cores (mma.sync), d_head 64, `a` bf16 or f16: qkv [flash_rows(t), 3C] of type `a` with
// rows >= t zero; out [T, C] of type `a`. Softmax statistics and accumulation in float32, P
// rounded to `a` (as FlashAttention does). workspace (flash_workspace_bytes(t, c) bytes, or null)
// lets grids too small to fill the GPU split the keys over up to 4 blocks per query tile
// (partial O, m, l), combined by a second kernel. batch: clips one after the other (qkv blocks of
// flash_rows(t) rows, out blocks of t rows; no key split).
int flash_rows(int t);
std::size_t flash_workspace_bytes(int t, int c);
// kernel: best = the wgmma kernel below where the device runs it ($WB_CUDA_ATTENTION=mma: never;
// its key split: fewer blocks, 128 queries each, at most 2 an SM), mma = always this mma.sync
// kernel.
enum class FlashKernel { best, mma };
bool flash_wgmma_enabled();  // whether `best` may take the wgmma kernel (device, environment)
void launch_flash_attention(const void* qkv, void* out, Act a, int t, int c, int heads, float alpha,
                            float* workspace, Queue s, int batch = 1,
                            FlashKernel kernel = FlashKernel::best);

// The same contract on Hopper's warpgroup MMA (wgmma, sm_90a code: attention_wgmma.cu), batch
// clips of clip_rows rows each in qkv (0: flash_rows(t)). Only where
// wgmma_attention_available() (a compute capability 9.0 device and the sm_90a code built).
bool wgmma_attention_available();
// nsplit > 1 (batch 1): the keys split over that many blocks a query tile, each writing its
// unnormalised O to part_o [nsplit, t, c] and m, l to part_ml [nsplit, t, heads, 2] (the layout of
// launch_flash_attention's workspace) for launch_flash_attention's combine kernel.
void launch_flash_attention_wgmma(const void* qkv, void* out, Act a, int t, int c, int heads,
                                  float alpha, Queue s, int batch = 1, int clip_rows = 0,
                                  int nsplit = 1, float* part_o = nullptr,
                                  float* part_ml = nullptr);

// fc1 + bias + GELU in one kernel on Hopper's warpgroup MMA (gemm_wgmma.cu, sm_90a code): y[M, N]
// = gelu(x[M, K] w[N, K]^T + bias[N]), x, w and y of the 16-bit type `a` (y 16-byte aligned),
// bias float32, float32 accumulation, the sum rounded to `a`, the GELU (erf, or tanh for the
// gelu-tanh fault) of that, rounded to `a`: the numbers of a 16-bit GEMM output + launch_gelu16
// (the same GELU, gelu_16; only the sum's order differs). Only where gemm_gelu_wgmma_available()
// (as the wgmma attention) and gemm_gelu_wgmma_supported(m, n, k) (N a multiple of 256, K of
// 64). cluster:
// blocks sharing W's tile by TMA multicast (1 or 2); max_clusters > 0 caps the persistent grid
// (tests: one cluster walking every tile), -1 launches a cluster a tile (timing comparisons).
// Every choice gives the same bits (the same products in the same order).
bool gemm_gelu_wgmma_available();
bool gemm_gelu_wgmma_supported(int m, int n, int k);
void launch_gemm_gelu_wgmma(const void* x, const void* w, const float* bias, void* y, Act a, int m,
                            int n, int k, bool tanh_approx, cudaStream_t s, int cluster = 1,
                            int max_clusters = 0);

// ---- checks of the dependent launch (wb_cuda_tests, wb-cuda-dump --probe-pdl) ----
// One kernel that lets the kernel after it on the stream start at once
// (griddepcontrol.launch_dependents) and only `delay_ns` later (the GPU's global timer) copies
// `bytes` from src to dst: a dependent launched after it that does not wait reads dst as it was.
void launch_late_copy(const void* src, void* dst, std::size_t bytes, uint64_t delay_ns,
                      cudaStream_t s);
// Copies `bytes` from src to dst without waiting for the kernel before it (the control that
// shows a dependent launch overlapping: after launch_late_copy, it reads the old bytes).
void launch_copy_nowait(const void* src, void* dst, std::size_t bytes, Queue s);
// The GPU's global timer (ns) into *t (one thread).
void launch_stamp(uint64_t* t, cudaStream_t s);
// `blocks` blocks: the earliest block start into t[0] and the earliest return from the wait for
// the kernel before (pdl_wait) into t[1], by atomicMin (set both to ~0 first).
void launch_stamp_wait(uint64_t* t, int blocks, Queue s);

// ---- random weights (timing runs): uniform in [offset - scale, offset + scale] ----
void launch_fill_uniform(void* p, Act a, int64_t n, uint64_t seed, float scale, float offset,
                         cudaStream_t s);

}  // namespace wb::cuda
