// Tensor-core attention on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a), d_head 64, bfloat16
// or float16 q, k, v: the arithmetic contract of flash_tc_k (kernels.cu) — float32 softmax
// statistics and accumulation, P rounded to the input type — with the products on wgmma.
//
// A block is two warpgroups (256 threads) and 128 queries of one head (of one clip); warpgroup w
// owns query rows [64 w, 64 w + 64). Q (128 x 64) and double-buffered K and V tiles (64 keys x 64)
// live in shared memory in the 128-byte-swizzled layout wgmma reads (each 128-byte row's sixteen-
// byte chunks permuted by XOR with the row index mod 8), written by cp.async. Per key tile:
//   S = Q K^T   4 x wgmma m64n64k16, A and B from shared memory (both K-major: d contiguous);
//   the online softmax of flash_common.cuh on S (its fragments are mma.sync's, per warp);
//   O += P V    4 x wgmma m64n64k16, A = P from registers (re-packed from S, as flash_tc_k does),
//               B = V from shared memory, N-major (keys x d with d contiguous: imm-trans-b 1).
// Shared-memory descriptors (PTX ISA, "Matrix Descriptor Format"): start address >> 4, leading
// byte offset 1 (unused: a wgmma's K extent stays inside one 128-byte row), stride byte offset
// 1024 (eight 128-byte rows), swizzle mode 1 (128 B); tiles 1024-byte aligned (base offset 0).
// A k-step of 16 advances the start address by 32 bytes along a K-major row, by 16 rows (2048
// bytes) along the N-major V.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "flash_common.cuh"
#include "kernels.h"
#include "wgmma_common.cuh"

namespace wb::cuda {
namespace {

constexpr int kWM = 128;                         // queries per block (two warpgroups of 64)
constexpr int kWTile = kFK * kFD * 2;            // bytes of one 64 x 64 16-bit tile
constexpr int kWSmem = 2 * kWTile + 4 * kWTile;  // Q (128 rows), K[2], V[2]: 48 KiB

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
    flash_wgmma_k(const T* qkv, T* out, int t, int c, float scale_log2, int clip_rows) {
#ifdef WB_HAVE_WGMMA
  __shared__ __align__(1024) unsigned char smem[kWSmem];
  unsigned char* const qs = smem;               // 128 rows x 128 B
  unsigned char* const ks = smem + 2 * kWTile;  // [stage]: 64 rows x 128 B
  unsigned char* const vs = smem + 4 * kWTile;  // [stage]
  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int heads = c / kFD;
  const int h = blockIdx.y % heads, clip = blockIdx.y / heads;
  const int q0 = blockIdx.x * kWM;
  qkv += static_cast<int64_t>(clip) * clip_rows * 3 * c;
  out += static_cast<int64_t>(clip) * t * c;
  const int64_t ld = 3 * static_cast<int64_t>(c);
  // 16-byte chunks: 8 per 128-byte row; 256 threads
  for (int i = threadIdx.x; i < kWM * 8; i += 256) {
    const int r = i >> 3, j = i & 7;
    cp_async16(qs + sw128(r, j), qkv + (q0 + r) * ld + h * kFD + j * 8);
  }
  auto load_tile = [&](int k0, int stage) {
    for (int i = threadIdx.x; i < kFK * 8; i += 256) {
      const int r = i >> 3, j = i & 7;
      const T* src = qkv + (k0 + r) * ld + c + h * kFD + j * 8;
      cp_async16(ks + stage * kWTile + sw128(r, j), src);
      cp_async16(vs + stage * kWTile + sw128(r, j), src + c);
    }
    cp_async_commit();
  };
  load_tile(0, 0);  // (Q's copies join this first group)
  const uint32_t q_addr =
      static_cast<uint32_t>(__cvta_generic_to_shared(qs)) + static_cast<uint32_t>(wg * 64 * 128);
  const uint32_t k_addr = static_cast<uint32_t>(__cvta_generic_to_shared(ks));
  const uint32_t v_addr = static_cast<uint32_t>(__cvta_generic_to_shared(vs));

  float o[1][kFD / 8][4], sa[1][kFK / 8][4];
  float m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};
#pragma unroll
  for (int i = 0; i < kFD / 8; ++i) o[0][i][0] = o[0][i][1] = o[0][i][2] = o[0][i][3] = 0.0f;
  const int n_tiles = (t + kFK - 1) / kFK;
  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = it * kFK, stage = it & 1;
    if (it + 1 < n_tiles) {
      load_tile(k0 + kFK, stage ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    fence_proxy_async();
    __syncthreads();
    // S = Q K^T
    fence_acc(sa[0]);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < kFD / 16; ++kk)
      wgmma_ss<T>(sa[0], sw128_desc(q_addr + kk * 32),
                  sw128_desc(k_addr + stage * kWTile + kk * 32), kk);
    wg_commit();
    wg_wait0();
    fence_acc(sa[0]);
    if (k0 + kFK <= t)  // no key of the tile past t: no masking
      flash_softmax<1, false>(sa, o, m, l, k0, t, t4, scale_log2);
    else
      flash_softmax<1, true>(sa, o, m, l, k0, t, t4, scale_log2);
    // O += P V, P re-packed from S into A fragments (16 keys a k-step)
    uint32_t pa[kFK / 16][4];
#pragma unroll
    for (int kt = 0; kt < kFK / 16; ++kt) {
      pa[kt][0] = pack2<T>(sa[0][2 * kt][0], sa[0][2 * kt][1]);
      pa[kt][1] = pack2<T>(sa[0][2 * kt][2], sa[0][2 * kt][3]);
      pa[kt][2] = pack2<T>(sa[0][2 * kt + 1][0], sa[0][2 * kt + 1][1]);
      pa[kt][3] = pack2<T>(sa[0][2 * kt + 1][2], sa[0][2 * kt + 1][3]);
    }
    fence_acc(o[0]);
    wg_fence();
#pragma unroll
    for (int kt = 0; kt < kFK / 16; ++kt)
      wgmma_rs<T>(o[0], pa[kt], sw128_desc(v_addr + stage * kWTile + kt * 16 * 128));
    wg_commit();
    wg_wait0();
    fence_acc(o[0]);
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  flash_store<T, 1>(o, m, l, out, nullptr, nullptr, q0 + wg * 64 + warp * 16, h, t, c, g, t4);
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
                                  float alpha, cudaStream_t s, int batch, int clip_rows) {
  if (a == Act::f32) throw std::invalid_argument("wgmma attention: 16-bit inputs only");
  if (c != heads * kFD)
    throw std::invalid_argument("wgmma attention: d_head " + std::to_string(c / heads) +
                                " (supported: 64)");
  if (clip_rows == 0) clip_rows = flash_rows(t);
  const dim3 grid((t + kWM - 1) / kWM, heads * batch);
  const float sl2 = alpha * 1.4426950408889634f;
  if (a == Act::bf16)
    flash_wgmma_k<__nv_bfloat16><<<grid, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(qkv),
                                                      static_cast<__nv_bfloat16*>(out), t, c, sl2,
                                                      clip_rows);
  else
    flash_wgmma_k<__half><<<grid, 256, 0, s>>>(static_cast<const __half*>(qkv),
                                               static_cast<__half*>(out), t, c, sl2, clip_rows);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA launch wgmma attention: ") + cudaGetErrorString(e));
}

}  // namespace wb::cuda
