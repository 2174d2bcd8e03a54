// Runs two ordered task lists on the threads of one OpenMP parallel region so
// that compute-bound work (GEMM slices, "compute" tasks) overlaps memory-bound
// work (cache sweeps, "sweep" tasks) on different cores.
//
// Why: a large-batch RAT decode step is half GEMM (compute-bound at batch 64)
// and half cache sweep (bandwidth-bound). Run one after the other, both cores
// first wait on the FMA units, then both wait on memory; one core alone
// already draws most of the machine's read bandwidth. Interleaved, one core
// sweeps while the other multiplies, and the step approaches max(compute,
// memory) rather than their sum.
//
// Dependencies go both ways, each within the order tasks are claimed in:
// sweep a may start once sweep_ready(a) holds (it names compute tasks, via
// compute_done), and compute task j once compute_ready(j) holds (it may name
// sweeps, via sweep_done, and earlier compute tasks). Even threads prefer
// compute tasks, odd threads prefer sweeps; either takes the other kind when
// its own kind's next task is not ready, so with two threads a core idles
// only when nothing at all is ready. Tasks are claimed in order and only once
// ready, so no thread ever holds a task it cannot run: no deadlock, whatever
// the thread count, provided every sweep depends only on compute tasks that
// themselves depend on no sweep (one thread then runs everything).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace rat {

// A spin-wait hint: pause on x86-64, yield on arm64.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class OverlapTasks {
 public:
  // Outside the parallel region, before each use: n_compute and n_sweep tasks.
  void reset(int n_compute, int n_sweep) {
    grow(compute_done_, compute_capacity_, n_compute);
    grow(sweep_done_, sweep_capacity_, n_sweep);
    for (int i = 0; i < n_compute; ++i) compute_done_[i].store(0, std::memory_order_relaxed);
    for (int i = 0; i < n_sweep; ++i) sweep_done_[i].store(0, std::memory_order_relaxed);
    n_compute_ = n_compute, n_sweep_ = n_sweep;
    next_compute_.store(0, std::memory_order_relaxed);
    next_sweep_.store(0, std::memory_order_relaxed);
  }

  // Whether a task has finished (its outputs are then visible to the caller).
  bool compute_done(int j) const { return compute_done_[j].load(std::memory_order_acquire) != 0; }
  bool sweep_done(int a) const { return sweep_done_[a].load(std::memory_order_acquire) != 0; }

  // Called by every thread of the region; returns when no task is left to
  // claim (others may still be running theirs: follow with a barrier).
  template <class Compute, class Sweep, class ComputeReady, class SweepReady>
  void run(int tid, Compute&& compute, Sweep&& sweep, ComputeReady&& compute_ready,
           SweepReady&& sweep_ready) {
    const bool prefer_sweep = tid % 2 == 1;
    auto try_sweep = [&] {  // runs the next sweep if it is ready
      int a = next_sweep_.load(std::memory_order_relaxed);
      if (a >= n_sweep_ || !sweep_ready(a)) return false;
      if (next_sweep_.compare_exchange_strong(a, a + 1)) {
        sweep(a);
        sweep_done_[a].store(1, std::memory_order_release);
      }
      return true;
    };
    auto try_compute = [&] {  // runs the next compute task if it is ready
      int j = next_compute_.load(std::memory_order_relaxed);
      if (j >= n_compute_ || !compute_ready(j)) return false;
      if (next_compute_.compare_exchange_strong(j, j + 1)) {
        compute(j);
        compute_done_[j].store(1, std::memory_order_release);
      }
      return true;
    };
    for (;;) {
      if (prefer_sweep ? try_sweep() || try_compute() : try_compute() || try_sweep()) continue;
      if (next_compute_.load(std::memory_order_relaxed) >= n_compute_ &&
          next_sweep_.load(std::memory_order_relaxed) >= n_sweep_)
        return;
      cpu_relax();  // what is left waits on tasks other threads are running
    }
  }

 private:
  static void grow(std::unique_ptr<std::atomic<int>[]>& flags, int& capacity, int n) {
    if (n <= capacity) return;
    flags = std::make_unique<std::atomic<int>[]>(size_t(n));
    capacity = n;
  }

  std::unique_ptr<std::atomic<int>[]> compute_done_, sweep_done_;
  int compute_capacity_ = 0, sweep_capacity_ = 0, n_compute_ = 0, n_sweep_ = 0;
  std::atomic<int> next_compute_{0}, next_sweep_{0};
};

}  // namespace rat
