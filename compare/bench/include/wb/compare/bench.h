// The comparator benchmark (`wb compare-bench`): writes two synthetic dumps of a large model's
// encoder dims (large-v3 by default, >= 1 GB each), then in one run measures
//   - raw sequential read of both files (read(2), 4 MiB buffers),
//   - sequential read of every tap of both files through DumpReader::read_rows (the reader the
//     comparator uses, same chunking),
//   - the full comparison (compare_files),
// and the peak resident memory of the comparison alone (VmHWM, reset before it starts).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wb::cmp {

struct BenchOptions {
  std::string dir;  // where the two dumps go (created; files removed unless keep)
  std::string dims = "large-v3";
  double gigabytes = 1.0;  // minimum size of each dump's tap data
  bool keep = false;
  bool reuse = false;  // reuse existing bench dumps in dir
  bool cold = false;   // evict the files from the page cache before each measurement
  int repeat = 1;      // take the best of `repeat` runs of each measurement
};

struct BenchResult {
  std::vector<std::string> taps;
  int64_t tap_bytes_per_file = 0;  // float32 tap data in one dump
  int64_t file_bytes = 0;          // both files on disk
  double generate_s = 0;
  double raw_read_s = 0;
  double reader_read_s = 0;
  double compare_s = 0;
  double rss_before_mb = 0;        // resident before the comparison (the wb binary + LibTorch)
  double peak_rss_mb = 0;          // of the comparison (process peak while it ran)
  double process_peak_rss_mb = 0;  // whole process (generation included)
  int exit_status = 0;
  std::string summary() const;  // a few lines: sizes, times, throughputs, ratios, memory
};

BenchResult run_compare_bench(const BenchOptions& opts);

}  // namespace wb::cmp
