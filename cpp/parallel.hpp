// A minimal fork-join helper: run tasks 0..n_tasks-1 on up to `threads`
// std::threads, each worker pulling the next task index from an atomic
// counter. Each task's result must depend only on its index (never on the
// worker that ran it), which makes results independent of the thread count.
// The first exception thrown by any task (lowest task index wins) is
// re-thrown in the calling thread after all workers have joined. The calling
// thread's interrupt check (interrupt.hpp) is polled between its tasks; when
// it fires, no new task starts and Interrupted is thrown.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <mutex>
#include <algorithm>
#include <thread>
#include <vector>

#include "interrupt.hpp"

namespace cryocore {

// fn(task_index, worker_index); worker_index < number of workers used.
template <class Fn>
void parallel_for(std::size_t n_tasks, int threads, Fn&& fn) {
  if (n_tasks == 0) return;
  std::size_t n_workers = threads < 1 ? 1 : static_cast<std::size_t>(threads);
  if (n_workers > n_tasks) n_workers = n_tasks;
  const InterruptCheck check = current_interrupt_check();
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> interrupted{false};
  std::mutex err_mutex;
  std::exception_ptr err;
  std::size_t err_task = n_tasks;
  auto last_poll = std::chrono::steady_clock::now();
  auto work = [&](std::size_t worker) {
    for (;;) {
      if (worker == 0 && check) {  // only the calling thread polls
        const auto now = std::chrono::steady_clock::now();
        if (now - last_poll >= kInterruptPeriod) {
          last_poll = now;
          if (check()) {
            interrupted.store(true, std::memory_order_relaxed);
            failed.store(true, std::memory_order_relaxed);
            return;
          }
        }
      }
      const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_tasks || failed.load(std::memory_order_relaxed)) return;
      try {
        fn(i, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(err_mutex);
        if (i < err_task) {
          err_task = i;
          err = std::current_exception();
        }
        failed.store(true, std::memory_order_relaxed);
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(n_workers - 1);
  try {
    for (std::size_t w = 1; w < n_workers; ++w) pool.emplace_back(work, w);
  } catch (...) {
    // Could not start a thread: finish with the ones we have.
  }
  work(0);
  for (auto& t : pool) t.join();
  if (err) std::rethrow_exception(err);
  if (interrupted.load()) throw Interrupted();
}

// Splits n items into contiguous chunks of at most `chunk` items.
inline std::size_t n_chunks(std::size_t n, std::size_t chunk) { return (n + chunk - 1) / chunk; }

// Sums add_image(i, worker, partial) over images 0..n-1 into `total`
// (`width` values of type T), deterministically: images are grouped in fixed
// chunks, each chunk sums into its own zeroed partial (type P: the chunk's
// few images may be summed in single precision), and partials are added to
// the total in chunk order. Chunks run in waves (each wave one fork-join; the
// calling thread reduces between waves) of up to 16 per thread, fewer when
// their partials would pass about 16 MiB.
template <class P, class T, class AddImage>
void chunked_sum(std::size_t n, std::size_t chunk, int threads, std::size_t width, T* total,
                 AddImage&& add_image) {
  const std::size_t chunks = n_chunks(n, chunk);
  const std::size_t t = static_cast<std::size_t>(threads < 1 ? 1 : threads);
  const std::size_t fit = (std::size_t{16} << 20) / std::max<std::size_t>(1, width * sizeof(P));
  const std::size_t wave = std::min(chunks, std::max(2 * t, std::min(16 * t, fit)));
  std::vector<P> partial(wave * width);
  for (std::size_t first = 0; first < chunks; first += wave) {
    const std::size_t count = std::min(wave, chunks - first);
    parallel_for(count, threads, [&](std::size_t task, std::size_t worker) {
      P* ps = &partial[task * width];
      std::fill(ps, ps + width, P(0));
      const std::size_t c = first + task;
      for (std::size_t i = c * chunk, end = std::min(n, (c + 1) * chunk); i < end; ++i)
        add_image(i, worker, ps);
    });
    for (std::size_t task = 0; task < count; ++task) {
      const P* ps = &partial[task * width];
      for (std::size_t k = 0; k < width; ++k) total[k] += T(ps[k]);
    }
  }
}


}  // namespace cryocore
