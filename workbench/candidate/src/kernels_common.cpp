// ISA selection (cpuid + $WB_ISA), the dispatch table, scalar float16/bfloat16 conversions and
// the float16-statistics layer norm used by the "ln-fp16" fault.
#include <bit>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels.h"
#include "wb/core/numerics.h"
#include "wb/core/util.h"

namespace wb::cand {

#define WB_CAND_ISA_TABLE(name, cpu) \
  namespace name {                   \
  const KernelTable& table();        \
  }
WB_CAND_ISA_LIST(WB_CAND_ISA_TABLE)
#undef WB_CAND_ISA_TABLE

std::string_view isa_name(Isa isa) { return name_of(kIsaNames, isa); }

Isa isa_from_name(std::string_view name) {
  if (auto v = find_value(kIsaNames, name)) return *v;
  throw UsageError("unknown ISA '" + std::string(name) + "' (valid: " + names_of(kIsaNames) + ")");
}

bool isa_supported(Isa isa) {
  // libgcc's checks of AVX-512 features also ask whether the OS saves their state (XCR0).
  __builtin_cpu_init();
  switch (isa) {
#define WB_CAND_ISA_CHECK(name, cpu) \
  case Isa::name:                    \
    return cpu;
    WB_CAND_ISA_LIST(WB_CAND_ISA_CHECK)
#undef WB_CAND_ISA_CHECK
  }
  return false;
}

Isa best_isa() {
  const std::vector<Isa> all = supported_isas();
  return all.back();  // narrowest first; the first, the portable path, is always supported
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (const auto& entry : kIsaNames)
    if (isa_supported(entry.first)) out.push_back(entry.first);
  return out;
}

Isa select_isa() {
  const char* env = std::getenv("WB_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  const Isa want = isa_from_name(env);
  if (!isa_supported(want))
    throw std::runtime_error("WB_ISA=" + std::string(env) + ": this CPU cannot run that path");
  return want;
}

const KernelTable& kernels(Isa isa) {
  if (!isa_supported(isa))
    throw std::runtime_error("kernels for ISA " + std::string(isa_name(isa)) +
                             " are not available on this CPU");
  switch (isa) {
#define WB_CAND_ISA_DISPATCH(name, cpu) \
  case Isa::name:                       \
    return name::table();
    WB_CAND_ISA_LIST(WB_CAND_ISA_DISPATCH)
#undef WB_CAND_ISA_DISPATCH
  }
  throw std::logic_error("kernels: an ISA outside the list");
}

uint16_t f32_to_bf16_bits(float f) {
  const auto u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  const uint32_t lsb = (u >> 16) & 1u;
  return static_cast<uint16_t>((u + 0x7FFFu + lsb) >> 16);
}
float bf16_bits_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// Round to nearest even, with subnormals, overflow to infinity and NaN kept quiet.
uint16_t f32_to_f16_bits(float f) {
  constexpr uint32_t f32_inf = 255u << 23;
  constexpr uint32_t f16_max = (127u + 16u) << 23;  // 65536: everything above rounds to inf
  constexpr uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t sign = u & 0x80000000u;
  u ^= sign;
  uint32_t o;
  if (u >= f16_max) {
    o = u > f32_inf ? 0x7E00u : 0x7C00u;
  } else if (u < (113u << 23)) {  // result is a half subnormal or zero
    const float v = std::bit_cast<float>(u) + std::bit_cast<float>(denorm_magic);
    o = std::bit_cast<uint32_t>(v) - denorm_magic;
  } else {
    const uint32_t mant_odd = (u >> 13) & 1u;
    u += (static_cast<uint32_t>(15 - 127) << 23) + 0xFFFu;
    u += mant_odd;
    o = u >> 13;
  }
  return static_cast<uint16_t>(o | (sign >> 16));
}

float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  if (e == 0) {
    const float v = std::ldexp(static_cast<float>(m), -24);
    return sign ? -v : v;
  }
  if (e == 31) return std::bit_cast<float>(sign | 0x7F800000u | (m << 13));
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

namespace {
inline float h(float x) { return f16_bits_to_f32(f32_to_f16_bits(x)); }
}  // namespace

void layer_norm_f16_stats(const float* x, float* y, int64_t rows, int cols, const float* g,
                          const float* b, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * cols;
    layer_norm_f16_stats_row(x + r * cols, cols, g, b, eps, h, [yr](int c, float v) { yr[c] = v; });
  }
}

}  // namespace wb::cand
