// The encoder a subcommand runs, as typed options parsed once: the one struct and the one CLI11
// registration (names, help texts, validation) shared by wb dump, transcribe, run, bench, replay,
// bisect-layers and sweep. A bad value is refused while parsing (exit 2, one line listing the
// valid values); each value is printed back by one to_string.
#pragma once
#include <CLI/CLI.hpp>
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "wb/core/enum_names.h"
#include "wb/core/faults.h"
#include "wb/core/precision.h"  // Precision, to_string, parse_precision: one table
#include "wb/core/tensor.h"

namespace wb::cli {

// reference: the LibTorch oracle; candidate: the CPU candidate; cuda: the CUDA candidate (only
// where this build has it); port: an external port (--port CMD, docs/ports.md).
enum class Impl { reference, candidate, cuda, port };
// Where the reference computes: cpu, or cuda where LibTorch has CUDA (Debian's has not).
enum class Device { cpu, cuda };

inline constexpr std::array<NameEntry<Impl>, 4> kImplNames{{
    {Impl::reference, "reference"},
    {Impl::candidate, "candidate"},
    {Impl::cuda, "cuda"},
    {Impl::port, "port"},
}};
inline constexpr std::array<NameEntry<Device>, 2> kDeviceNames{{
    {Device::cpu, "cpu"},
    {Device::cuda, "cuda"},
}};

std::string_view to_string(Impl i);
std::string_view to_string(Device d);
// Throw wb::UsageError naming the value and listing the valid ones.
Impl parse_impl(std::string_view s);
Device parse_device(std::string_view s);

struct EncoderChoice {
  Impl impl = Impl::reference;
  DType dtype = DType::f32;  // the reference's compute dtype: f32, or f64 (the noise floor)
  Precision precision = Precision::float32;  // candidate, cuda
  Faults faults;                             // candidate, cuda; parsed against the fault table
  int threads = 0;                           // 0: all cores
  Device device = Device::cpu;               // reference only
  // An external port (docs/ports.md): its command (sets impl = port), the per-request timeout,
  // whether a port running another checkpoint is compared anyway, and --timing.
  std::string port;
  double port_timeout = 300;
  bool allow_model_mismatch = false;
  bool port_timing = false;
  // --impl cuda: who runs the attention and fc1 + GELU (wb::cuda::Backend by name: own, cudnn;
  // checked where the CUDA candidate is made). Builds with CUDA only.
  std::string attention = "own";
  std::string fc1_gelu = "own";

  int resolved_threads() const;  // threads, 0 resolved to the hardware's concurrency
  // The reference encoder with the same threads: what a candidate is measured against.
  EncoderChoice reference_twin() const;
  // The compute precision a dump records when the encoder does not say: dtype for the
  // reference, precision for the candidates.
  std::string precision_name() const;
  // {impl, dtype, precision, faults}: how reports and settings hashes record the choice.
  nlohmann::json to_json() const;
};

// Which of the options a subcommand takes.
enum EncoderOption : unsigned {
  kImplOption = 1u << 0,       // --impl
  kDtypeOption = 1u << 1,      // --dtype
  kPrecisionOption = 1u << 2,  // --precision
  kFaultOption = 1u << 3,      // --fault (repeatable)
  kThreadsOption = 1u << 4,    // --threads
  kDeviceOption = 1u << 5,     // --device (the reference's)
  kPortOption = 1u << 6,       // --port, --port-timeout, --allow-model-mismatch, --timing
  kAllEncoderOptions = 0x7fu,
};

// Registers the options (defaults: c's values at the time of the call).
void add_encoder_options(CLI::App* sub, EncoderChoice& c, unsigned which = kAllEncoderOptions);

}  // namespace wb::cli
