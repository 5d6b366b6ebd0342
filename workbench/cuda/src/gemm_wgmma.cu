// fc1 + bias + GELU on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a): Y[M, N] = gelu(X[M, K]
// W[N, K]^T + b[N]), X and W 16-bit (both K-major: row-major X, W as stored), b float32, float32
// accumulation starting at the bias, the sum rounded to 16 bits, the GELU (gelu_16,
// flash_common.cuh) of that, rounded to 16 bits: the numbers of the encoder's other path,
// cuBLASLt's GEMM writing 16-bit pre-activations and the GELU kernel in place on them with the
// same gelu_16 (only the sum's order differs), in one kernel (cuBLASLt's GELU epilogue is the tanh
// approximation).
//
// Persistent: a grid of at most one block per SM walks the 128 x 256 tiles of Y (tile i, i +
// blocks, ...; the M tiles of one N column are consecutive). A block has three warpgroups (384
// threads): a producer (one thread issues the loads; warps 1-3 are the epilogue's) and two
// consumers, consumer w owning rows [64 w, 64 w + 64) of the tile. Per 64-wide k-step the
// producer has the tensor memory accelerator copy X's 128 x 64 and W's 256 x 64 tiles into one
// of three shared-memory stages (128-byte swizzle, the layout wgmma reads; rows past M arrive as
// zeros), completing that stage's "full" barrier; each consumer waits on it, runs four wgmma
// m64n256k16 from shared memory, and once those have completed (one step later) arrives on the
// stage's "empty" barrier, which the producer waits on before refilling. The producer runs on
// across tiles. Each M pair's sum starts at its own k-step (first_step below).
//
// The epilogue is staged: at a tile's end the consumers round their sums into a 128 x 256 tile
// of 16-bit values in shared memory (16-byte chunks swizzled by row, so that neither side's
// accesses conflict) and go on to the next tile's MMAs at once, while warps 1-3 apply the GELU
// to the staged tile a row a warp at a time and store it (16 bytes a lane). A block's last tile
// has no MMAs left to hide behind: its 8 consumer warps join the 3 on it. Two barriers hand the
// tile over ("staged full": 256 consumer arrivals; "staged empty": 96 epilogue arrivals). The
// GELU in the MMA warps instead (on the float32 sum, four stages) measured slower at every shape
// (docs/gpu.md): with 8 warps per SM its latency could not be hidden and no MMA ran meanwhile.
//
// With kCl = 2 the blocks run in clusters of two that take the two M tiles of one pair and share
// W's tile: each block loads half of it and the tensor memory accelerator multicasts that half
// into both blocks' shared memory (X 16 KiB + W 16 KiB read from L2 a block and step instead of
// 16 + 32). A stage is then free only when the consumers of both blocks have released it (each
// consumer arrives on both blocks' "empty" barrier). Measured no faster at the encoder's shapes,
// so not the default. No block-wide barrier in the main loop. N % 256 == 0 and K % 64 == 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "flash_common.cuh"
#include "kernels.h"
#include "wgmma_common.cuh"

namespace wb::cuda {
namespace {

constexpr int kGM = 128, kGN = 256, kGK = 64;
constexpr int kGATile = kGM * kGK * 2;            // 16 KiB
constexpr int kGStage = kGATile + kGN * kGK * 2;  // + 32 KiB of W
constexpr int kGStages = 3;
// Warps of a block: the producer's warpgroup (warp 0 issues the loads, the other 3 are the staged
// epilogue's) and two consumer warpgroups of 4 (256 threads); a block's last tile is finished by
// the epilogue's and the consumers' warps together.
constexpr int kGEpiWarps = 3, kGConsumerThreads = 256;
constexpr int kGLastTileWarps = kGEpiWarps + kGConsumerThreads / 32;
constexpr int kGStaged = kGM * kGN * 2;                    // the staged tile: 64 KiB
constexpr int kGBarriers = kGStages * kGStage + kGStaged;  // offset of the first barrier
// the stages, the staged tile, a "full" and an "empty" barrier a stage and the staged tile's two,
// and room to align the start to 1024 bytes
constexpr int kGSmem = kGBarriers + 8 * (2 * kGStages + 2) + 1024;

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WB_HAVE_WGMMA 1

#define WB_ACC128                                                                                  \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "    \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "     \
  "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "     \
  "%56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, "     \
  "%74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, "     \
  "%92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, " \
  "%109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, "     \
  "%124, %125, %126, %127}"
#define WB_ACC128_OPS(d)                                                                          \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),       \
      "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),   \
      "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),   \
      "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),   \
      "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),   \
      "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),   \
      "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), \
      "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]),             \
      "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),             \
      "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]),             \
      "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]),             \
      "+f"(d[15][2]), "+f"(d[15][3]), "+f"(d[16][0]), "+f"(d[16][1]), "+f"(d[16][2]),             \
      "+f"(d[16][3]), "+f"(d[17][0]), "+f"(d[17][1]), "+f"(d[17][2]), "+f"(d[17][3]),             \
      "+f"(d[18][0]), "+f"(d[18][1]), "+f"(d[18][2]), "+f"(d[18][3]), "+f"(d[19][0]),             \
      "+f"(d[19][1]), "+f"(d[19][2]), "+f"(d[19][3]), "+f"(d[20][0]), "+f"(d[20][1]),             \
      "+f"(d[20][2]), "+f"(d[20][3]), "+f"(d[21][0]), "+f"(d[21][1]), "+f"(d[21][2]),             \
      "+f"(d[21][3]), "+f"(d[22][0]), "+f"(d[22][1]), "+f"(d[22][2]), "+f"(d[22][3]),             \
      "+f"(d[23][0]), "+f"(d[23][1]), "+f"(d[23][2]), "+f"(d[23][3]), "+f"(d[24][0]),             \
      "+f"(d[24][1]), "+f"(d[24][2]), "+f"(d[24][3]), "+f"(d[25][0]), "+f"(d[25][1]),             \
      "+f"(d[25][2]), "+f"(d[25][3]), "+f"(d[26][0]), "+f"(d[26][1]), "+f"(d[26][2]),             \
      "+f"(d[26][3]), "+f"(d[27][0]), "+f"(d[27][1]), "+f"(d[27][2]), "+f"(d[27][3]),             \
      "+f"(d[28][0]), "+f"(d[28][1]), "+f"(d[28][2]), "+f"(d[28][3]), "+f"(d[29][0]),             \
      "+f"(d[29][1]), "+f"(d[29][2]), "+f"(d[29][3]), "+f"(d[30][0]), "+f"(d[30][1]),             \
      "+f"(d[30][2]), "+f"(d[30][3]), "+f"(d[31][0]), "+f"(d[31][1]), "+f"(d[31][2]),             \
      "+f"(d[31][3])

// D[64 x 256] (+)= A[64 x 16] B[16 x 256], A and B K-major in shared memory; scale_d 0: D = A B.
template <class T>
__device__ __forceinline__ void wgmma_n256(float (&d)[kGN / 8][4], uint64_t da, uint64_t db,
                                           int scale_d) {
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 " WB_ACC128
        ", %128, %129, p, 1, 1, 0, 0;\n}\n"
        : WB_ACC128_OPS(d)
        : "l"(da), "l"(db), "r"(scale_d));
  else
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 " WB_ACC128
        ", %128, %129, p, 1, 1, 0, 0;\n}\n"
        : WB_ACC128_OPS(d)
        : "l"(da), "l"(db), "r"(scale_d));
}
#endif

// The staged epilogue: rows first, first + step, ... (< rows) of the staged 16-bit tile, a row a
// warp at a time (lane: the row's 16-byte chunk `lane`, at chunk lane ^ (row & 7)), the GELU
// applied and stored to y's tile at (m0, n0). Not inlined: the epilogue warps and, on a block's
// last tile, the consumers share the code.
template <class T, bool kTanh>
__device__ __noinline__ void staged_gelu_rows(uint32_t staging, T* y, int m0, int n0, int n,
                                              int rows, int first, int step) {
  const int lane = threadIdx.x & 31;
#pragma unroll 2
  for (int rr = first; rr < rows; rr += step) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(staging + rr * (kGN * 2) + ((lane ^ (rr & 7)) << 4))
                 : "memory");
    T* e = reinterpret_cast<T*>(&v);
#pragma unroll
    for (int j = 0; j < 8; ++j) e[j] = from_f<T>(gelu_16<kTanh>(to_f(e[j])));
    *reinterpret_cast<uint4*>(y + static_cast<int64_t>(m0 + rr) * n + n0 + lane * 8) = v;
  }
}

// The k-step a tile's sum starts at: the M-tile pair's index (mod steps). The blocks of one N
// column then read different k-slices of W at once, so that a weight matrix streamed from DRAM
// (the encoder: each layer's W is read once a pass) has that many times more distinct bytes in
// flight than with every block at the same slice. A function of the rows only, so every launch
// choice (clusters or not, grid size) sums in the same order.
__device__ __forceinline__ int first_step(int m0, int steps) { return (m0 / (2 * kGM)) % steps; }

// kTanh: the gelu-tanh fault's GELU, a kernel of its own so that the erf kernel's code holds no
// tanh (code fetched cold once a layer in the encoder).
template <class T, int kCl, bool kTanh>
__global__ void __launch_bounds__(384, 1)
    gemm_gelu_wgmma_k(const __grid_constant__ CUtensorMap xmap,
                      const __grid_constant__ CUtensorMap wmap, const float* bias, T* y, int m,
                      int n, int k) {
#ifdef WB_HAVE_WGMMA
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const smem = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~static_cast<uintptr_t>(1023));
  const uint32_t smem_addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t full = smem_addr + kGBarriers, empty = full + 8 * kGStages;
  const uint32_t staged_full = empty + 8 * kGStages, staged_empty = staged_full + 8;
  const uint32_t staging = smem_addr + kGStages * kGStage;  // the staged tile (shared address)
  const int wg = threadIdx.x >> 7;
  const int steps = k / kGK;
  // tiles of this cluster: i, i + clusters, ...; tile = (M pair or single, N column), M fastest
  const int m_groups = (m + kCl * kGM - 1) / (kCl * kGM), tiles = m_groups * (n / kGN);
  const int rank = kCl > 1 ? static_cast<int>(cluster_rank()) : 0;
  const int first = static_cast<int>(blockIdx.x) / kCl, clusters = gridDim.x / kCl;
  if (threadIdx.x == 0) {
    for (int i = 0; i < kGStages; ++i) {
      mbar_init(full + 8 * i, 1);         // the producer's arrival (with the bytes to expect)
      mbar_init(empty + 8 * i, 2 * kCl);  // one arrival per consumer warpgroup of the cluster
    }
    mbar_init(staged_full, kGConsumerThreads);  // every consumer thread
    mbar_init(staged_empty, 32 * kGEpiWarps);   // every epilogue thread
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if constexpr (kCl > 1)
    cluster_sync();  // the peer's barriers exist before anything arrives on them
  else
    __syncthreads();
  if (wg == 0) {  // producer
    if (threadIdx.x == 0) {
      asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&xmap)));
      asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&wmap)));
      int it = 0;  // k-steps issued by this block, across its tiles
      for (int tile = first; tile < tiles; tile += clusters) {
        const int m0 = ((tile % m_groups) * kCl + rank) * kGM, n0 = (tile / m_groups) * kGN;
        const int k0 = first_step(m0, steps);
        for (int s = 0; s < steps; ++s, ++it) {
          const int ks = (k0 + s) % steps;
          const int slot = it % kGStages;
          // the stage's previous use (it - kGStages) released by every consumer of the cluster
          if (it >= kGStages) mbar_wait(empty + 8 * slot, ((it / kGStages) - 1) & 1);
          const uint32_t st = smem_addr + slot * kGStage;
          mbar_expect_tx(full + 8 * slot, kGStage);
          tma_load(st, &xmap, ks * kGK, m0, full + 8 * slot);
          if constexpr (kCl == 1)
            tma_load(st + kGATile, &wmap, ks * kGK, n0, full + 8 * slot);
          else  // this block's 256 / kCl rows of W's tile, into every block of the cluster
            tma_load_multicast(st + kGATile + rank * (kGN / kCl) * 128, &wmap, ks * kGK,
                               n0 + rank * (kGN / kCl), full + 8 * slot,
                               static_cast<uint16_t>((1 << kCl) - 1));
        }
      }
    } else if (threadIdx.x >= 32) {  // the staged tiles' epilogue: warps 1-3
      const int ew = (threadIdx.x >> 5) - 1;
      int tl = 0;  // tiles of this block
      for (int tile = first; tile < tiles; tile += clusters, ++tl) {
        const int m0 = ((tile % m_groups) * kCl + rank) * kGM, n0 = (tile / m_groups) * kGN;
        const bool last_tile = tile + clusters >= tiles;  // the consumers help with it
        mbar_wait(staged_full, tl & 1);
        staged_gelu_rows<T, kTanh>(staging, y, m0, n0, n, min(kGM, m - m0), ew,
                                   last_tile ? kGLastTileWarps : kGEpiWarps);
        if (!last_tile) mbar_arrive(staged_empty);
      }
    }
  } else {
    const int cw = wg - 1;  // consumer warpgroup: rows [64 cw, 64 cw + 64)
    const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const bool leader = (threadIdx.x & 127) == 0;
    auto release = [&](int slot) {
      if (!leader) return;
      if constexpr (kCl == 1)
        mbar_arrive(empty + 8 * slot);
      else
        for (int r = 0; r < kCl; ++r) mbar_arrive_cluster(empty + 8 * slot, r);
    };
    float d[kGN / 8][4];
    // the stage of the next k-step and its phase parity, across tiles (the producer's order)
    int slot = 0, phase = 0, last = 0;  // last: the stage of the step before
    int tl = 0;                         // tiles of this block
    for (int tile = first; tile < tiles; tile += clusters, ++tl) {
      const int m0 = ((tile % m_groups) * kCl + rank) * kGM, n0 = (tile / m_groups) * kGN;
      // The accumulator starts at the bias (d[j]: rows g and g + 8 of this warp's 16, columns
      // 8 j + 2 t4 and + 1, mma.sync's layout), so the epilogue has no loads. (Copies of the bias
      // fetched into shared memory a tile ahead measured slower: docs/gpu.md.)
#pragma unroll
      for (int j = 0; j < kGN / 8; ++j) {
        const float2 bv = *reinterpret_cast<const float2*>(bias + n0 + j * 8 + 2 * t4);
        d[j][0] = d[j][2] = bv.x;
        d[j][1] = d[j][3] = bv.y;
      }
      for (int s = 0; s < steps; ++s) {
        mbar_wait(full + 8 * slot, phase);
        const uint32_t a = smem_addr + slot * kGStage + cw * 64 * 128;
        const uint32_t b = smem_addr + slot * kGStage + kGATile;
        fence_acc(d);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < kGK / 16; ++kk)
          wgmma_n256<T>(d, sw128_desc(a + kk * 32), sw128_desc(b + kk * 32), 1);
        wg_commit();
        wg_wait<1>();  // the step before's wgmmas are done: its stage may be refilled
        fence_acc(d);
        if (s > 0) release(last);
        last = slot;
        if (++slot == kGStages) {
          slot = 0;
          phase ^= 1;
        }
      }
      wg_wait<0>();
      fence_acc(d);
      release(last);  // the tile's last stage: the producer loads the next tile
      // the epilogue warps have read the previous tile out of the staged tile; then row rr = 64 cw
      // + 16 warp + g + 8 h (rr & 7 == g), column group j, goes to chunk j ^ g
      if (tl > 0) mbar_wait(staged_empty, (tl - 1) & 1);
#pragma unroll
      for (int j = 0; j < kGN / 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int rr = cw * 64 + warp * 16 + g + 8 * h;
          asm volatile(
              "st.shared.u32 [%0], %1;\n" ::"r"(staging + rr * (kGN * 2) + ((j ^ g) << 4) + t4 * 4),
              "r"(pack2<T>(d[j][2 * h], d[j][2 * h + 1]))
              : "memory");
        }
      mbar_arrive(staged_full);
      if (tile + clusters >= tiles) {  // the block's last tile: no MMAs left to hide behind, so
        // its 8 consumer warps join the 3 epilogue warps on it (every staged row is read after
        // the barrier's phase completes: all 256 consumer threads have written theirs)
        mbar_wait(staged_full, tl & 1);
        staged_gelu_rows<T, kTanh>(staging, y, m0, n0, n, min(kGM, m - m0),
                                   kGEpiWarps + cw * 4 + warp, kGLastTileWarps);
      }
    }
  }
  if constexpr (kCl > 1)
    cluster_sync();  // the peer may still multicast into, or arrive on, this block's memory
#else
  __trap();  // built without sm_90a code: gemm_gelu_wgmma_available() says false first
#endif
}

}  // namespace

bool gemm_gelu_wgmma_available() { return wgmma_attention_available(); }

bool gemm_gelu_wgmma_supported(int m, int n, int k) {
  return m >= 1 && n % kGN == 0 && k % kGK == 0 && k >= kGK;
}

void launch_gemm_gelu_wgmma(const void* x, const void* w, const float* bias, void* y, Act a, int m,
                            int n, int k, bool tanh_approx, cudaStream_t s, int cluster,
                            int max_clusters) {
  if (a == Act::f32) throw std::invalid_argument("wgmma GEMM + GELU: 16-bit inputs only");
  if (!gemm_gelu_wgmma_supported(m, n, k))
    throw std::invalid_argument("wgmma GEMM + GELU: N a multiple of 256 and K of 64 (N " +
                                std::to_string(n) + ", K " + std::to_string(k) + ")");
  if (cluster != 1 && cluster != 2)
    throw std::invalid_argument("wgmma GEMM + GELU: a cluster of 1 or 2 blocks");
  const int tiles = (m + cluster * kGM - 1) / (cluster * kGM) * (n / kGN);
  const CUtensorMap xmap = tensor_map(x, a, m, k, kGM, "wgmma GEMM + GELU"),
                    wmap = tensor_map(w, a, n, k, kGN / cluster, "wgmma GEMM + GELU");
  // tag: (cluster size, tanh) as a type, so that each kernel has its own statics below
  auto go = [&](auto kernel, auto* yt, auto tag) {
    static_assert(decltype(tag)::value >= 0);
    cudaLaunchConfig_t cfg{};
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = static_cast<unsigned>(cluster);
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = 1;
    cfg.blockDim = dim3(384);
    cfg.dynamicSmemBytes = kGSmem;
    cfg.stream = s;
    cfg.attrs = &attr;
    cfg.numAttrs = cluster > 1 ? 1 : 0;
    // Once per kernel: its shared memory, and how many clusters the device holds at once (the
    // persistent grid; the process's device).
    static const int resident = [&] {
      const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kGSmem);
      if (e != cudaSuccess)
        throw std::runtime_error(std::string("wgmma GEMM + GELU: shared memory: ") +
                                 cudaGetErrorString(e));
      int r = 0;
      cudaError_t o;
      if (cluster == 1) {  // blocks an SM times SMs
        int dev = 0, sms = 0;
        o = cudaGetDevice(&dev);
        if (o == cudaSuccess) o = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
        if (o == cudaSuccess)
          o = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&r, kernel, 384, kGSmem);
        r *= sms;
      } else {
        cfg.gridDim = dim3(static_cast<unsigned>(cluster));
        o = cudaOccupancyMaxActiveClusters(&r, kernel, &cfg);
      }
      if (o != cudaSuccess || r < 1)
        throw std::runtime_error(std::string("wgmma GEMM + GELU: no resident cluster: ") +
                                 cudaGetErrorString(o));
      return r;
    }();
    int clusters = max_clusters < 0 ? tiles : std::min(tiles, resident);
    if (max_clusters > 0) clusters = std::min(clusters, max_clusters);
    cfg.gridDim = dim3(static_cast<unsigned>(clusters * cluster));
    cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, xmap, wmap, bias, yt, m, n, k);
    const cudaError_t last = cudaGetLastError();  // consumed here, not by the next launch's check
    if (e == cudaSuccess) e = last;
    if (e != cudaSuccess)
      throw std::runtime_error(std::string("CUDA launch wgmma GEMM + GELU: ") +
                               cudaGetErrorString(e));
  };
  auto pick = [&](auto* yt) {
    using T = std::remove_pointer_t<decltype(yt)>;
    if (cluster == 2) {
      if (tanh_approx)
        go(gemm_gelu_wgmma_k<T, 2, true>, yt, std::integral_constant<int, 3>{});
      else
        go(gemm_gelu_wgmma_k<T, 2, false>, yt, std::integral_constant<int, 2>{});
    } else {
      if (tanh_approx)
        go(gemm_gelu_wgmma_k<T, 1, true>, yt, std::integral_constant<int, 1>{});
      else
        go(gemm_gelu_wgmma_k<T, 1, false>, yt, std::integral_constant<int, 0>{});
    }
  };
  if (a == Act::bf16)
    pick(static_cast<__nv_bfloat16*>(y));
  else
    pick(static_cast<__half*>(y));
}

}  // namespace wb::cuda
