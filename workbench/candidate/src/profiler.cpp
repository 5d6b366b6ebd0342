#include "profiler.h"

#include <cstdio>
#include <ctime>

namespace wb::cand {

double process_cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Profile::~Profile() {
  if (!on) return;
  double total = 0;
  for (const auto& [k, v] : secs) total += v.second;
  for (const auto& [k, v] : secs)
    std::fprintf(stderr, "candidate profile: %-12s wall %8.4f s  cpu %8.4f s  %5.1f%% of cpu\n",
                 k.c_str(), v.first, v.second, 100 * v.second / total);
}

Timer::~Timer() {
  if (!p.on) return;
  auto& e = p.secs[name];
  e.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  e.second += process_cpu_now() - c0;
}

void Lap::operator()(const char* name) {
  if (!p.on) return;
  const auto t1 = std::chrono::steady_clock::now();
  const double c1 = process_cpu_now();
  auto& e = p.secs[name];
  e.first += std::chrono::duration<double>(t1 - t0).count();
  e.second += c1 - c0;
  t0 = t1;
  c0 = c1;
}

}  // namespace wb::cand
