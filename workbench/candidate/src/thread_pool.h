// A small persistent thread pool. parallel_for partitions statically; parallel_items hands out
// items dynamically. Either way an item's arithmetic does not depend on the thread that runs it,
// so results are bit-identical run to run for a given thread count.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wb::cand {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1, the calling thread included
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }
  // Runs fn(tid) for tid in [0, size()) and waits; tid 0 runs on the caller.
  void run(const std::function<void(int)>& fn);
  // Splits [0, n) into size() contiguous ranges (balanced; empty ranges skipped):
  // fn(begin, end, tid). Ranges are multiples of `align` except the last.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                    int64_t align = 1);
  // Work items 0..n-1 claimed dynamically by the threads: fn(item, tid).
  void parallel_items(int64_t n, const std::function<void(int64_t, int)>& fn);

 private:
  void worker(int tid);
  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace wb::cand
