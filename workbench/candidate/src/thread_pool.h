// A small persistent thread pool with static partitioning: work item i always runs on the same
// thread for a given thread count, so results are bit-identical run to run.
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
  // Work items 0..n-1 assigned round-robin: item i runs on thread i % size().
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
