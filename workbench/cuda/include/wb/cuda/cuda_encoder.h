// The CUDA candidate: the encoder seam on an NVIDIA GPU (cuFFT log-mel, cuBLASLt GEMMs, fused
// layer norm, flash-style attention). Plain C++: nothing here needs the CUDA headers.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wb/core/dims.h"
#include "wb/core/encoder.h"
#include "wb/core/faults.h"
#include "wb/core/precision.h"
#include "wb/core/weights.h"

namespace wb::cuda {

// Who runs an op of the 16-bit encoder: own = the workbench's kernels; cudnn = cuDNN (opened at
// run time: libcudnn.so.9 on the loader path; bfloat16/float16 only). Two implementations to hold
// against each other tap by tap.
enum class Backend { own, cudnn };
std::string_view backend_name(Backend b);
// "own" / "cudnn"; std::nullopt for anything else.
std::optional<Backend> backend_of(std::string_view name);

struct Options {
  // float32: float32 GEMMs with TF32 off (CUBLAS_COMPUTE_32F). bfloat16 / float16: weights and
  // GEMM inputs in that type on tensor cores, float32 accumulation, float32 residual stream and
  // layer-norm statistics.
  Precision precision = Precision::float32;
  Faults faults;  // parsed switches of the shared table (wb/core/faults.h); all are implemented
  int device = 0;
  // Taps copied synchronously (copy, wait, report, one at a time) instead of through the copy
  // stream: the path the asynchronous one is checked against (bit-identical dumps).
  bool sync_taps = false;
  // Clips encode_batch takes at most (the device buffers are sized for this many). The seam's
  // own stages run one clip whatever it is.
  int batch = 1;
  // The attention: own = wgmma / mma.sync on tensor cores for d_head 64, the float32 kernel on
  // rounded inputs otherwise; cudnn = cuDNN's fused attention (d_head a multiple of 8 up to 128).
  Backend attention = Backend::own;
  // fc1 and the GELU: own = cuBLASLt's GEMM writing 16-bit pre-activations, then the GELU kernel;
  // cudnn = one cuDNN graph, matmul + bias + GELU on the float32 accumulator (GELU exact erf, or
  // tanh under the gelu-tanh fault).
  Backend fc1_gelu = Backend::own;
  // The own kernels (layer norms, GELU, attention, the stem's) launched as programmatic
  // dependents of the kernel before them, where the device has it (compute capability 9.0 on,
  // kernels built for sm_90 on; ignored elsewhere): their launch and start overlap that kernel's
  // end, and they wait for it before they touch its outputs, so every output is bit for bit the
  // same; each lets a dependent after it start once all its blocks have passed that wait.
  // cuBLASLt's and cuDNN's kernels are launched as ever. Off by default.
  bool dependent_launch = false;
  // With dependent_launch, in CUDA graphs (timing runs) cuBLASLt's GEMMs too: each GEMM whose
  // pinned kernel is found to wait for the kernel before it (a check at capture, per shape: run
  // behind a kernel that lets it start at once and writes its input late, it must compute on the
  // written input) is captured as that kernel's programmatic dependent; the others as ever. Off
  // by default.
  bool dependent_gemms = false;
};

// Device-to-host copies an encoder made so far. A run with no taps wanted makes no tap copies;
// result_copies are the seam's own outputs (mel, the stem's, each block's, ln_post's [T, C]; an
// encode_batch run: each clip's mel and ln_post).
struct CopyCounts {
  int64_t tap_copies = 0;
  int64_t tap_bytes = 0;
  int64_t result_copies = 0;
};
// Throws std::invalid_argument when enc is not made by make_encoder.
CopyCounts copy_counts(const Encoder& enc);

// Empty when CUDA device `device` can be used, else why not ("no CUDA device: ...").
std::string device_unavailable_reason(int device = 0);

// Throws std::invalid_argument for dims or a checkpoint that do not fit (named, with shapes);
// std::runtime_error("no CUDA device: ...") where no GPU can be used.
std::unique_ptr<Encoder> make_encoder(std::shared_ptr<const Checkpoint> model, const Options& o);
// Faults of the shared table this backend implements.
std::vector<std::string> supported_faults();

// Encodes pcm.size() clips (1 to Options::batch; 16 kHz mono, each padded or trimmed to 30 s) in
// one pass: the log-mel clip by clip, then the stem, every block and ln_post once over all clips
// (row-wise ops and GEMMs on the clips' rows together, M = B T; the attention per clip). sinks:
// empty, or one per clip (null: none for that clip), each given the taps, in the order,
// log_mel + run_encoder give for that clip alone. Returns each clip's ln_post [T, C]. Per clip
// the same values as a run of that clip alone where the same GEMM algorithms run (cuBLASLt picks
// per M; wb_cuda_tests measures the difference otherwise). Throws std::invalid_argument when enc
// is not made by make_encoder or the counts do not fit.
std::vector<Tensor> encode_batch(Encoder& enc, const std::vector<std::vector<float>>& pcm,
                                 const std::vector<TapSink*>& sinks = {});

struct Timing {
  std::vector<double> ms;  // one per timed run (CUDA events around stem + blocks + ln_post)
  double median_ms = 0;
  bool graph = false;  // runs replayed one CUDA graph of the whole encoder
  int batch = 1;       // clips per run
  std::string device;
  double gflop = 0;  // encoder FLOPs per run, all clips (GEMMs, convolutions, attention), 1e9
  // Per op kind (gemm, attention, layer_norm, gelu, im2col, add): median ms over 5 stream runs
  // with an event after every op (so they include launch gaps the graph removes).
  std::map<std::string, double> breakdown_ms;
  // Graph runs only: per op kind (gemm, attention, layer_norm, gelu), the median graph time
  // minus the median time of the same graph captured without that kind's kernels: what the
  // kind costs inside the graph (its launch gaps included, overlap with neighbours not).
  std::map<std::string, double> graph_share_ms;
  // sha256 of the timed runs' output (ln_post of every clip, float32 bytes): the same for runs
  // of the same dims, precision, batch and backends however launched (graph or stream, with
  // dependent launches or without). A graph's output is also held against a stream run's, bit
  // for bit (time_encoder throws std::runtime_error where they differ).
  std::string output_sha256;
  // dependent_gemms: GEMM shapes captured as dependents (their kernels wait), of those checked.
  int dependent_gemm_shapes = 0, checked_gemm_shapes = 0;
};

// Times the encoder from mel to ln_post on random weights of `dims` (generated on the device),
// o.batch clips per run (each its own random mel) with o's precision and backends: `warmup`
// untimed runs, then `iters` timed ones, no taps and no host copies.
Timing time_encoder(const ModelDims& dims, const Options& o, int iters, int warmup, bool graph,
                    uint64_t seed = 1);

struct AttentionTiming {
  std::vector<double> ms;  // per call: each sample is 10 calls back to back, divided by 10
  double median_ms = 0;
  int batch = 1;
  std::string device;
  double gflop = 0;     // 4 B H T^2 d_head per call, 1e9
  std::string backend;  // what ran it (cuDNN: version and engine)
};
// Times one attention alone on random q, k, v of `dims` (T, heads), `batch` clips per call,
// bfloat16 or float16 (UsageError otherwise): own = the tensor-core kernel (d_head 64), cudnn =
// cuDNN's fused attention (std::runtime_error where it cannot run).
AttentionTiming time_attention(const ModelDims& dims, Precision precision, int batch, int iters,
                               int warmup, uint64_t seed = 1, Backend attention = Backend::own);

// fc1 (x [B T, C] W^T, W [4C, C], + bias) then the exact GELU, 16-bit, on random data of `dims`:
// cuBLASLt's GEMM writing 16-bit pre-activations and the GELU kernel in place (the encoder's
// path) against cuDNN's matmul + bias + GELU graph (left out where libcudnn cannot run it) and
// the own Hopper kernel (where the device has wgmma).
struct GemmGeluTiming {
  double cublaslt_gelu_ms = 0;  // median ms a call: GEMM + GELU kernel
  double cublaslt_ms = 0;       // the GEMM alone
  double cudnn_ms = 0;          // cuDNN's fused graph (0: not run; `cudnn` says why)
  double gflop = 0;             // 2 M N K, 1e9
  double rel_l2 = 0;            // cuDNN's output against the two-kernel one
  double wgmma_ms = 0;          // the Hopper kernel (0: not run: no wgmma, or shape)
  double wgmma_rel_l2 = 0;      // its output against the two-kernel one
  // Its other launch choices: clusters of two sharing W's tile (TMA multicast), a grid of a
  // cluster or block a tile instead of the persistent one; median ms a call each, and whether
  // all gave the same output bits.
  std::vector<std::pair<std::string, double>> wgmma_variants;
  bool wgmma_same_bits = false;
  // The encoder's own fc1 paths with W read from DRAM (a new copy of W each call, 8 copies: more
  // than the L2 cache; the lines above reuse one W, which stays in L2).
  std::vector<std::pair<std::string, double>> cold;
  std::string device, cudnn;
};
GemmGeluTiming time_gemm_gelu(const ModelDims& dims, Precision precision, int batch, int iters,
                              int warmup, uint64_t seed = 1);

// The encoder's four GEMMs of a block (qkv, attention out + residual, fc1, fc2 + residual) at
// `dims` and `batch` clips (M = B T), 16-bit inputs, each run with every algorithm cuBLASLt's
// heuristic offers (at most `max_algos`; its first is the one the encoder pins): what the pinned
// algorithm leaves against cuBLASLt's best measured for that shape. Random inputs; each sample 10
// calls back to back, median of `iters`. Where programmatic dependent launch is available, each
// algorithm is also checked for waiting as a dependent (probe_dependent_gemms' check (1)): an
// algorithm that does could be captured as one (--pdl-gemms captures the pinned one only).
struct GemmAlgoTiming {
  std::string config;  // tile, stages, split-K, cluster (cuBLASLt's enums)
  double median_ms = 0;
  std::optional<bool> waits;  // waits as a dependent; unset: not checked (no dependent launch)
};
struct GemmShapeTiming {
  std::string name;  // attn.qkv, attn.out, mlp.fc1, mlp.fc2
  int m = 0, n = 0, k = 0;
  double gflop = 0;                   // 2 M N K, 1e9
  std::vector<GemmAlgoTiming> algos;  // the heuristic's order: algos[0] is the pinned one
};
std::vector<GemmShapeTiming> time_gemms(const ModelDims& dims, Precision precision, int batch,
                                        int iters, int max_algos, std::string* device = nullptr,
                                        uint64_t seed = 1);

// What programmatic dependent launch can do around each of a block's four GEMMs (as time_gemms,
// the pinned algorithm): (1) made a programmatic dependent of a kernel that lets it start at
// once and writes its input 2 ms later, whether cuBLASLt's kernel still computed on the written
// input (it waits for the kernel before it: such a GEMM may be launched as a dependent); (2) a
// kernel after it whose blocks each wait: when its first block starts and when the wait releases,
// launched as a dependent and ordinarily, in microseconds from a stamp right before the GEMM
// (medians of 7 graph launches). A dependent start well before the ordinary one means the GEMM
// lets its dependents start before it ends. Throws std::runtime_error where dependent launch is
// not available (a device before compute capability 9.0, kernels built without sm_90 code).
struct DependentGemmProbe {
  std::string name;  // attn.qkv, attn.out, mlp.fc1, mlp.fc2
  int m = 0, n = 0, k = 0;
  std::string config;  // the pinned algorithm (Gemm::describe)
  bool waits = false;  // (1); false also where the runtime refuses such a capture
  double dependent_start_us = 0, dependent_release_us = 0;
  double ordinary_start_us = 0;  // (an ordinary launch's blocks start released)
};
std::vector<DependentGemmProbe> probe_dependent_gemms(const ModelDims& dims, Precision precision,
                                                      int batch, std::string* device = nullptr);

}  // namespace wb::cuda
