// Tensor-core attention on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a), d_head 64, bfloat16
// or float16 q, k, v: the arithmetic contract of flash_tc_k (kernels.cu) — float32 softmax
// statistics and accumulation, P rounded to the input type — with the products on wgmma and the
// loads on the tensor memory accelerator (TMA), FlashAttention-3's way.
//
// A block is 128 queries of one head (of one clip) and two warpgroups (256 threads), warpgroup w
// owning query rows [64 w, 64 w + 64); two blocks share an SM. Thread 0 has the TMA copy Q (128 x
// 64) once and each key tile's K and V (64 keys x 64) into one of kWStages shared-memory stages,
// in the 128-byte-swizzled layout wgmma reads, two tiles ahead of its own warpgroup. Barriers
// (mbarrier): Q's, and per stage K's and V's "full" (the TMA completes them with the bytes) and an
// "empty" one each warpgroup arrives on once done with the stage, which thread 0 waits on before
// refilling it. No block-wide barrier after the start: the two warpgroups run apart. (A producer
// warp of its own, FlashAttention-3's layout, leaves 96 registers a thread at two blocks an SM, too
// few; at one block an SM it measured slower: docs/gpu.md.)
//
// A warpgroup overlaps a tile's softmax with the products of its neighbours: it issues S_j = Q
// K_j^T and O += P_{j-1} V_{j-1}, waits for S_j only, computes P_j (flash_softmax_p) while the P V
// products run, then waits for those and rescales O. The operations on O, m and l and their order
// are the mma.sync kernel's, so the outputs are bit-identical to it (wb_cuda_tests).
//   S = Q K^T   4 x wgmma m64n64k16, A and B from shared memory (both K-major: d contiguous);
//   O += P V    4 x wgmma m64n64k16, A = P from registers (S's fragments packed to 16 bits: the
//               accumulator layout of m64nNk16 is mma.sync's per warp), B = V from shared memory,
//               N-major (keys x d with d contiguous: imm-trans-b 1).
// Grids under a round of blocks split the keys over blockIdx.z (partial O, m and l, combined by
// launch_flash_attention's kernel in kernels.cu). Shared-memory descriptors: wgmma_common.cuh. A
// k-step of 16 advances the start address by 32 bytes along a K-major row, by 16 rows (2048 bytes)
// along the N-major V.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "flash_common.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "wgmma_common.cuh"

namespace wb::cuda {
namespace {

constexpr int kWM = 128;               // queries per block (two warpgroups of 64)
constexpr int kWStages = 4;            // K/V stages
constexpr int kWTile = kFK * kFD * 2;  // bytes of one 64 x 64 16-bit tile
// Q (128 rows), K[stages], V[stages], then the barriers: Q's, K's and V's "full" and the "empty"
// one per stage; room to align the start to 1024 bytes
constexpr int kWBarriers = 2 * kWTile + 2 * kWStages * kWTile;
constexpr int kWSmem = kWBarriers + 8 * (1 + 3 * kWStages) + 1024;  // 81 KiB: two blocks an SM

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WB_HAVE_WGMMA 1

#define WB_ACC32                                                                                \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define WB_ACC_OPS(d)                                                                           \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),     \
      "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
      "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), \
      "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
      "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), \
      "+f"(d[7][2]), "+f"(d[7][3])

// D[64 x 64] (+)= A[64 x 16] B[16 x 64], A and B K-major in shared memory; scale_d 0: D = A B.
template <class T>
__device__ __forceinline__ void wgmma_ss(float (&d)[kFK / 8][4], uint64_t da, uint64_t db,
                                         int scale_d) {
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " WB_ACC32
        ", %32, %33, p, 1, 1, 0, 0;\n}\n"
        : WB_ACC_OPS(d)
        : "l"(da), "l"(db), "r"(scale_d));
  else
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WB_ACC32
        ", %32, %33, p, 1, 1, 0, 0;\n}\n"
        : WB_ACC_OPS(d)
        : "l"(da), "l"(db), "r"(scale_d));
}
// D[64 x 64] += A[64 x 16] B[16 x 64], A in registers (mma.sync's A fragments per warp), B
// N-major in shared memory.
template <class T>
__device__ __forceinline__ void wgmma_rs(float (&d)[kFK / 8][4], const uint32_t (&a)[4],
                                         uint64_t db) {
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " WB_ACC32
        ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : WB_ACC_OPS(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(1));
  else
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WB_ACC32
        ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : WB_ACC_OPS(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(1));
}
#endif

template <class T>
__global__ void __launch_bounds__(256, 2)
    flash_wgmma_k(const __grid_constant__ CUtensorMap map, T* out, int t, int c, float scale_log2,
                  int clip_rows, float* part_o, float* part_ml) {
#ifdef WB_HAVE_WGMMA
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base =
      (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) + 1023) & ~uint32_t{1023};
  const uint32_t q_addr = base, k_addr = base + 2 * kWTile, v_addr = k_addr + kWStages * kWTile;
  const uint32_t q_full = base + kWBarriers, k_full = q_full + 8;
  const uint32_t v_full = k_full + 8 * kWStages, empty = v_full + 8 * kWStages;
  const int heads = c / kFD;
  const int h = blockIdx.y % heads, clip = blockIdx.y / heads;
  const int q0 = blockIdx.x * kWM;
  // Keys split over gridDim.z blocks (flash-decoding style, for grids under a round; batch 1):
  // this block takes key tiles [tb, tb + n_tiles) and leaves unnormalised O, m and l to the
  // combine kernel, the key tiles partitioned as flash_tc_k partitions them.
  const int n_all = (t + kFK - 1) / kFK, per = (n_all + gridDim.z - 1) / gridDim.z;
  const int tb = min(n_all, static_cast<int>(blockIdx.z) * per);
  const int n_tiles = min(n_all, tb + per) - tb;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row0 = clip * clip_rows;  // the clip's first row of q | k | v
  auto load_q = [&] {
    mbar_expect_tx(q_full, 2 * kWTile);
    tma_load(q_addr, &map, h * kFD, row0 + q0, q_full);
    tma_load(q_addr + kWTile, &map, h * kFD, row0 + q0 + 64, q_full);
  };
  auto load_kv = [&](int j) {
    const int st = j % kWStages;
    // the stage's previous use (tile j - kWStages) released by both warpgroups
    if (j >= kWStages) mbar_wait(empty + 8 * st, (j / kWStages - 1) & 1);
    mbar_expect_tx(k_full + 8 * st, kWTile);
    tma_load(k_addr + st * kWTile, &map, c + h * kFD, row0 + (tb + j) * kFK, k_full + 8 * st);
    mbar_expect_tx(v_full + 8 * st, kWTile);
    tma_load(v_addr + st * kWTile, &map, 2 * c + h * kFD, row0 + (tb + j) * kFK, v_full + 8 * st);
  };
  const bool loader = threadIdx.x == 0;
  if (loader) {
    // the tensor map is a kernel parameter: fetched before the wait for the kernel before
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&map)));
    mbar_init(q_full, 1);
    for (int i = 0; i < kWStages; ++i) {
      mbar_init(k_full + 8 * i, 1);  // thread 0's arrival (with the bytes to expect)
      mbar_init(v_full + 8 * i, 1);
      mbar_init(empty + 8 * i, 2);  // one arrival per warpgroup
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  pdl_wait();  // q | k | v from the kernel before (the barriers' set-up overlaps its end)
  if (loader && n_tiles > 0) {  // the first kWStages - 1 tiles now, the rest in the loop
    load_q();
    for (int j = 0; j < kWStages - 1 && j < n_tiles; ++j) load_kv(j);
  }
  const int wg = warp >> 2, g = lane >> 2, t4 = lane & 3;
  const uint32_t qa = q_addr + wg * kWTile;  // this warpgroup's 64 query rows
  float o[1][kFD / 8][4], sa[1][kFK / 8][4], corr[1][2];
  float m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};
  uint32_t pa[kFK / 16][4];  // P in 16 bits: A fragments of 16 keys a k-step
#pragma unroll
  for (int i = 0; i < kFD / 8; ++i) o[0][i][0] = o[0][i][1] = o[0][i][2] = o[0][i][3] = 0.0f;
  auto issue_qk = [&](int j) {  // S = Q K_j^T
    const int st = j % kWStages;
    mbar_wait(k_full + 8 * st, (j / kWStages) & 1);
    fence_acc(sa[0]);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < kFD / 16; ++kk)
      wgmma_ss<T>(sa[0], sw128_desc(qa + kk * 32), sw128_desc(k_addr + st * kWTile + kk * 32), kk);
    wg_commit();
  };
  auto issue_pv = [&](int j) {  // O += P V_j
    const int st = j % kWStages;
    mbar_wait(v_full + 8 * st, (j / kWStages) & 1);
    fence_acc(o[0]);
    wg_fence();
#pragma unroll
    for (int kt = 0; kt < kFK / 16; ++kt)
      wgmma_rs<T>(o[0], pa[kt], sw128_desc(v_addr + st * kWTile + kt * 16 * 128));
    wg_commit();
  };
  auto softmax = [&](int j) {  // P_j, m, l and corr from S_j (O untouched)
    const int k0 = (tb + j) * kFK;
    if (k0 + kFK <= t)  // no key of the tile past t: no masking
      flash_softmax_p<1, false>(sa, m, l, corr, k0, t, t4, scale_log2);
    else
      flash_softmax_p<1, true>(sa, m, l, corr, k0, t, t4, scale_log2);
  };
  auto pack = [&] {
#pragma unroll
    for (int kt = 0; kt < kFK / 16; ++kt) {
      pa[kt][0] = pack2<T>(sa[0][2 * kt][0], sa[0][2 * kt][1]);
      pa[kt][1] = pack2<T>(sa[0][2 * kt][2], sa[0][2 * kt][3]);
      pa[kt][2] = pack2<T>(sa[0][2 * kt + 1][0], sa[0][2 * kt + 1][1]);
      pa[kt][3] = pack2<T>(sa[0][2 * kt + 1][2], sa[0][2 * kt + 1][3]);
    }
  };
  auto release = [&](int j) {  // this warpgroup is done with tile j's stage
    if ((threadIdx.x & 127) == 0) mbar_arrive(empty + 8 * (j % kWStages));
  };
  if (n_tiles > 0) {  // (a split block past the last key tile has none: O 0, l 0, m -inf)
    mbar_wait(q_full, 0);
    issue_qk(0);
    wg_wait0();
    fence_acc(sa[0]);
    softmax(0);
    flash_rescale<1>(o, corr);
    pack();
    for (int j = 1; j < n_tiles; ++j) {
      issue_qk(j);      // S_j (S_{j-1} is in pa by now)
      issue_pv(j - 1);  // O += P_{j-1} V_{j-1}
      // tile j + kWStages - 2 into the stage of tile j - 2, which the other warpgroup released an
      // iteration ago (so that this one seldom waits for it), while the products run
      if (loader && j + kWStages - 2 < n_tiles) load_kv(j + kWStages - 2);
      wg_wait<1>();  // S_j done
      fence_acc(sa[0]);
      softmax(j);
      wg_wait0();  // P_{j-1} V_{j-1} done: O may be rescaled, pa refilled, the stage released
      fence_acc(o[0]);
      release(j - 1);
      flash_rescale<1>(o, corr);
      pack();
    }
    issue_pv(n_tiles - 1);
    wg_wait0();
    fence_acc(o[0]);
  }
  flash_store<T, 1>(o, m, l, out + static_cast<int64_t>(clip) * t * c, part_o, part_ml,
                    q0 + wg * 64 + (warp & 3) * 16, h, t, c, g, t4);
#else
  __trap();  // built without sm_90a code: wgmma_attention_available() says false first
#endif
}

}  // namespace

bool wgmma_attention_available() {
  static const bool ok = [] {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    cudaFuncAttributes fa{};
    // the sm_90a binary is the one loaded on a 9.0 device; anything else has no wgmma code
    return major == 9 && minor == 0 &&
           cudaFuncGetAttributes(&fa, flash_wgmma_k<__nv_bfloat16>) == cudaSuccess &&
           fa.binaryVersion == 90;
  }();
  return ok;
}

void launch_flash_attention_wgmma(const void* qkv, void* out, Act a, int t, int c, int heads,
                                  float alpha, Queue s, int batch, int clip_rows, int nsplit,
                                  float* part_o, float* part_ml) {
  if (a == Act::f32) throw std::invalid_argument("wgmma attention: 16-bit inputs only");
  if (c != heads * kFD)
    throw std::invalid_argument("wgmma attention: d_head " + std::to_string(c / heads) +
                                " (supported: 64)");
  if (nsplit < 1 || (nsplit > 1 && (batch != 1 || part_o == nullptr || part_ml == nullptr)))
    throw std::invalid_argument("wgmma attention: a key split needs batch 1 and the partials");
  if (clip_rows == 0) clip_rows = flash_rows(t);
  const float sl2 = alpha * 1.4426950408889634f;
  // q | k | v of every clip as one [batch x clip_rows, 3 c] matrix, tiles of 64 rows x 64 columns
  const CUtensorMap map = tensor_map(qkv, a, batch * clip_rows, 3 * c, kFK, "wgmma attention");
  auto go = [&](auto kernel, auto* o) {
    static const cudaError_t attr =  // once per kernel
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kWSmem);
    if (attr != cudaSuccess)
      throw std::runtime_error(std::string("wgmma attention: shared memory: ") +
                               cudaGetErrorString(attr));
    launch_k("wgmma attention", kernel, dim3((t + kWM - 1) / kWM, heads * batch, nsplit), 256,
             kWSmem, s, map, o, t, c, sl2, clip_rows, part_o, part_ml);
  };
  if (a == Act::bf16)
    go(flash_wgmma_k<__nv_bfloat16>, static_cast<__nv_bfloat16*>(out));
  else
    go(flash_wgmma_k<__half>, static_cast<__half*>(out));
}

}  // namespace wb::cuda
