#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <stdexcept>

namespace wb::cand {

ThreadPool::ThreadPool(int threads) : n_(std::max(1, threads)) {
  for (int t = 1; t < n_; ++t) workers_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker(int tid) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_start_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(tid);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_ == 1) {
    fn(0);
    return;
  }
  std::exception_ptr err;
  std::mutex err_mu;
  const std::function<void(int)> guarded = [&](int tid) {
    try {
      fn(tid);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu);
      if (!err) err = std::current_exception();
    }
  };
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &guarded;
    pending_ = n_ - 1;
    ++generation_;
  }
  cv_start_.notify_all();
  guarded(0);
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                              int64_t align) {
  if (n <= 0) return;
  align = std::max<int64_t>(1, align);
  const int64_t units = (n + align - 1) / align;
  const int parts = static_cast<int>(std::min<int64_t>(n_, units));
  if (parts <= 1) {
    fn(0, n, 0);
    return;
  }
  run([&](int tid) {
    if (tid >= parts) return;
    const int64_t u0 = units * tid / parts, u1 = units * (tid + 1) / parts;
    const int64_t b = u0 * align, e = std::min(n, u1 * align);
    if (b < e) fn(b, e, tid);
  });
}

void ThreadPool::parallel_items(int64_t n, const std::function<void(int64_t, int)>& fn) {
  if (n <= 0) return;
  if (n_ == 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  // Items are claimed dynamically (a busy core does not hold the others up); an item's result does
  // not depend on which thread runs it, so outputs stay bit-identical.
  std::atomic<int64_t> next{0};
  run([&](int tid) {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i, tid);
  });
}

}  // namespace wb::cand
