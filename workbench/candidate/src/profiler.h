// The candidate's profiler ($WB_CAND_PROFILE=1, read once into the options): wall and process
// CPU time per op, accumulated over the encoder's life and printed to stderr when it is destroyed.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <utility>

namespace wb::cand {

double process_cpu_now();  // seconds of CPU used by the process

struct Profile {
  bool on = false;
  std::map<std::string, std::pair<double, double>> secs;  // op -> (wall, cpu)
  ~Profile();
};

// Times its scope under `name`.
struct Timer {
  Profile& p;
  const char* name;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double c0 = p.on ? process_cpu_now() : 0.0;
  ~Timer();
};

// Attributes the time since the previous lap to `name`.
struct Lap {
  Profile& p;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double c0 = p.on ? process_cpu_now() : 0.0;
  void operator()(const char* name);
};

}  // namespace wb::cand
