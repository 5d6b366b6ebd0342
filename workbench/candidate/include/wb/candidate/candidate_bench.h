// Benchmark helpers of the candidate (used by `wb bench`): the machine's measured float32 GEMM
// peak and the encoder's analytic FLOP count. Additive; the encoder contract is candidate.h.
#pragma once
#include <cstdint>

#include "wb/core/dims.h"

namespace wb {

struct GemmPeak {
  int n = 0;  // square problem n x n x n
  int threads = 1;
  double openblas_gflops = 0;   // OpenBLAS with its own threading (threads)
  double row_split_gflops = 0;  // the candidate's scheme: rows split over threads, OpenBLAS 1 each
  double onednn_gflops = 0;     // the candidate's default: oneDNN matmul, packed weights, row tiles
  double peak() const {
    const double p = openblas_gflops > row_split_gflops ? openblas_gflops : row_split_gflops;
    return p > onednn_gflops ? p : onednn_gflops;
  }
};

// Best of `repeats` float32 C = A B^T of n x n x n, each way.
GemmPeak measure_gemm_peak(int threads, int n = 2048, int repeats = 5);

// Multiply-adds x 2 of the encoder from mel to ln_post (convs, projections, attention matmuls);
// element-wise ops are not counted.
double encoder_flops(const ModelDims& d);

}  // namespace wb
