// External ports (docs/ports.md): a process in any language that speaks the port protocol, seen
// by the workbench as one more encoder behind the seam (wb/core/encoder.h). `run` serves dumps,
// runs and sweeps; `stage`, when the port implements it, serves replay and layer bisection.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "wb/core/dims.h"
#include "wb/core/encoder.h"
#include "wb/core/precision.h"

namespace wb::port {

constexpr int kProtocolVersion = 1;

// A port that misbehaved: one line naming the port, the request and what was wrong. Exit 2 (a
// std::runtime_error, as for any bad input). stderr_tail: the last lines the port printed there.
class PortError : public std::runtime_error {
 public:
  PortError(const std::string& line, std::string stderr_tail)
      : std::runtime_error(line), stderr_tail_(std::move(stderr_tail)) {}
  const std::string& stderr_tail() const { return stderr_tail_; }

 private:
  std::string stderr_tail_;
};

struct PortOptions {
  std::string command;       // run with `sh -c`
  double timeout_s = 300;    // per request
  std::string model_path;    // handed to the port in hello
  std::string model_sha256;  // the workbench's model: the port must run the same file
  ModelDims dims;            // ... of the same dims
  bool allow_model_mismatch = false;
};

// What a port said of itself in hello.
struct PortInfo {
  std::string name;
  ModelDims dims;
  std::string model_sha256;
  Precision precision = Precision::float32;
  std::string device;  // optional in hello; "" when not said
  std::set<std::string> requests;
  std::set<std::string> stages;  // registry stage names
};

// Per request kind ("run", "stage"): what the port computed and what the workbench spent around
// it (writing the inputs, the round trip beyond the port's compute, reading the answer).
struct RequestTiming {
  int count = 0;
  double compute = 0;     // the port's own compute_seconds
  double write = 0;       // workbench: input tensor file
  double round_trip = 0;  // request sent -> answer line read (includes compute)
  double read = 0;        // workbench: answer tensor file, checks, taps to the sink
  double overhead() const { return write + (round_trip - compute) + read; }
};

class PortEncoder : public Encoder {
 public:
  // Starts the port and says hello; throws PortError (and UsageError for a model mismatch).
  static std::unique_ptr<PortEncoder> start(const PortOptions& o);
  ~PortEncoder() override;  // bye, then the scratch folder is removed

  const PortInfo& info() const;
  bool implements(const std::string& request) const;
  // Throws UsageError "port 'NAME' does not implement 'stage' (COMMAND needs it)" unless the
  // port serves every stage.
  void require_stages(const std::string& command) const;
  const std::map<std::string, RequestTiming>& timing() const;
  std::string timing_table() const;  // the --timing printout

  std::string implementation() const override;
  nlohmann::json run_info() const override;
  int n_layers() const override;
  Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) override;
  Tensor stem(const Tensor& mel, TapSink* taps) override;
  Tensor block(int i, const Tensor& x, TapSink* taps) override;
  Tensor ln_post(const Tensor& x, TapSink* taps) override;
  bool runs_whole() const override { return true; }
  Tensor encode(const std::vector<float>& pcm16k, TapSink* taps) override;

  struct Impl;

 private:
  explicit PortEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wb::port
