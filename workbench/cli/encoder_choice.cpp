#include "encoder_choice.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <thread>

#include "wb/core/util.h"

namespace wb::cli {

namespace {

// The reference's compute dtypes, named as every DType is.
constexpr std::array<NameEntry<DType>, 2> kReferenceDtypes{{
    {DType::f32, name_of(kDTypeNames, DType::f32)},
    {DType::f64, name_of(kDTypeNames, DType::f64)},
}};

#ifdef WB_HAVE_CUDA
constexpr bool kHaveCuda = true;
#else
constexpr bool kHaveCuda = false;
#endif

DType parse_reference_dtype(std::string_view s) {
  return parse_value(kReferenceDtypes, s, "--dtype");
}

// A value parsed by `parse` while CLI11 reads the command line: its errors become CLI11's, so
// that main() reports them as usage errors (exit 2) like CLI11's own.
template <class F>
auto while_parsing(const char* option, F&& parse) {
  try {
    return parse();
  } catch (const std::invalid_argument& e) {
    const std::string_view what = e.what();
    throw CLI::ValidationError(what.substr(0, std::string_view(option).size()) == option
                                   ? std::string(what)
                                   : fmt::format("{}: {}", option, what));
  }
}

// An option stored typed in `field`: `parse` turns the text into the value (or throws).
template <class T, class Parse>
void add_typed_option(CLI::App* sub, const char* name, T& field, Parse parse,
                      const std::string& help, std::string_view default_value) {
  sub->add_option_function<std::string>(
         name,
         [name, &field, parse](const std::string& s) {
           field = while_parsing(name, [&] { return parse(s); });
         },
         help)
      ->default_str(std::string(default_value));
}

}  // namespace

std::string_view to_string(Impl i) { return name_of(kImplNames, i); }
std::string_view to_string(Device d) { return name_of(kDeviceNames, d); }

Impl parse_impl(std::string_view s) {
  const Impl i = parse_value(kImplNames, s, "--impl");
  if (i == Impl::cuda && !kHaveCuda)
    throw UsageError(
        "--impl cuda: this build has no CUDA candidate (configure where nvcc is found)");
  return i;
}

Device parse_device(std::string_view s) { return parse_value(kDeviceNames, s, "--device"); }

int EncoderChoice::resolved_threads() const {
  return threads > 0 ? threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

EncoderChoice EncoderChoice::reference_twin() const {
  EncoderChoice r;
  r.threads = threads;
  r.device = device;
  return r;
}

std::string EncoderChoice::precision_name() const {
  return std::string(impl == Impl::reference ? dtype_name(dtype) : to_string(precision));
}

nlohmann::json EncoderChoice::to_json() const {
  nlohmann::json j = {{"impl", to_string(impl)},
                      {"dtype", dtype_name(dtype)},
                      {"precision", to_string(precision)},
                      {"faults", faults.specs}};
  if (impl == Impl::port) j["port"] = port;
  // the CUDA candidate's non-default backends (absent by default: earlier settings keep their
  // hashes)
  if (impl == Impl::cuda && attention != "own") j["attention"] = attention;
  if (impl == Impl::cuda && fc1_gelu != "own") j["fc1_gelu"] = fc1_gelu;
  return j;
}

void add_encoder_options(CLI::App* sub, EncoderChoice& c, unsigned which) {
  if (which & kImplOption)
    add_typed_option(sub, "--impl", c.impl, parse_impl,
                     "encoder implementation: " + names_of(kImplNames) +
                         " (reference: LibTorch; candidate: CPU; cuda: builds with nvcc; port: "
                         "an external port, --port)",
                     to_string(c.impl));
  if (which & kDtypeOption)
    add_typed_option(
        sub, "--dtype", c.dtype, parse_reference_dtype,
        "reference compute dtype: " + names_of(kReferenceDtypes) + " (float64: the noise floor)",
        dtype_name(c.dtype));
  if (which & kPrecisionOption)
    add_typed_option(sub, "--precision", c.precision, parse_precision,
                     "candidate weight precision: " + precision_names(), to_string(c.precision));
  if (which & kFaultOption)
    sub->add_option_function<std::vector<std::string>>(
        "--fault",
        [&c](const std::vector<std::string>& specs) {
          c.faults = while_parsing("--fault", [&] { return parse_faults(specs); });
        },
        "candidate fault switch NAME[=VALUE] (repeatable; `wb faults` lists them): " +
            fault_usage());
  if (which & kThreadsOption)
    sub->add_option("--threads", c.threads, "threads (0: all cores)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
  if (which & kPortOption) {
    sub->add_option_function<std::string>(
        "--port",
        [&c](const std::string& cmd) {
          if (cmd.empty()) throw CLI::ValidationError("--port: an empty command");
          c.port = cmd;
          c.impl = Impl::port;
        },
        "an external port's command, run with sh -c, speaking the port protocol "
        "(docs/ports.md); instead of --impl");
    sub->add_option("--port-timeout", c.port_timeout, "seconds a port may take per request")
        ->check(CLI::Range(0.001, 1e6))
        ->capture_default_str();
    sub->add_flag("--allow-model-mismatch", c.allow_model_mismatch,
                  "let a port run another checkpoint than --model (its model_sha256 differs)");
    sub->add_flag("--timing", c.port_timing,
                  "print the port's compute time and the workbench's overhead per request kind "
                  "(stderr)");
  }
  if (kHaveCuda && (which & kImplOption)) {
    sub->add_option("--attention", c.attention,
                    "--impl cuda: own (the workbench's attention kernels) or cudnn (cuDNN's fused "
                    "attention; bfloat16/float16, libcudnn.so.9 on the loader path)")
        ->capture_default_str();
    sub->add_option("--fc1-gelu", c.fc1_gelu,
                    "--impl cuda: own (cuBLASLt fc1, then the GELU kernel) or cudnn (one cuDNN "
                    "graph: matmul + bias + GELU on the float32 accumulator)")
        ->capture_default_str();
  }
  if (which & kDeviceOption)
    add_typed_option(sub, "--device", c.device, parse_device,
                     "reference: " + names_of(kDeviceNames) +
                         " (cuda where LibTorch has CUDA; Debian's has not; --impl cuda is the GPU "
                         "candidate)",
                     to_string(c.device));
}

}  // namespace wb::cli
