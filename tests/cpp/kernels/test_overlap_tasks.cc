// OverlapTasks (src/kernels/overlap_tasks.h): every task runs exactly once,
// never before the tasks it depends on, and the run ends (no deadlock) for
// any thread count, with dependencies shaped as a RAT decode step uses them
// (sweeps after "early" compute tasks, "late" compute tasks after sweeps)
// and drawn at random.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <random>
#include <vector>

#include "kernels/overlap_tasks.h"

namespace rat {
namespace {

struct Graph {
  int n_early, n_late, n_sweep;
  std::vector<std::vector<int>> sweep_needs;  // early compute tasks
  std::vector<std::vector<int>> late_needs;   // sweeps
};

Graph random_graph(std::mt19937& rng) {
  Graph g;
  g.n_early = 1 + int(rng() % 8);
  g.n_late = int(rng() % 4);
  g.n_sweep = int(rng() % 30);
  for (int a = 0; a < g.n_sweep; ++a) {
    std::vector<int> need;
    for (int j = 0; j < g.n_early; ++j)
      if (rng() % 3 == 0) need.push_back(j);
    g.sweep_needs.push_back(need);
  }
  for (int j = 0; j < g.n_late; ++j) {
    std::vector<int> need;
    for (int a = 0; a < g.n_sweep; ++a)
      if (rng() % 2 == 0) need.push_back(a);
    g.late_needs.push_back(need);
  }
  return g;
}

TEST(OverlapTasks, EachTaskOnceAfterItsInputsAnyThreadCount) {
  std::mt19937 rng(17);
  OverlapTasks tasks;  // reused across runs, as a decode state reuses it
  for (int trial = 0; trial < 200; ++trial) {
    const Graph g = random_graph(rng);
    const int n_compute = g.n_early + g.n_late;
    std::vector<std::atomic<int>> ran_c(static_cast<size_t>(n_compute)),
        ran_s(static_cast<size_t>(g.n_sweep));
    for (auto& r : ran_c) r = 0;
    for (auto& r : ran_s) r = 0;
    std::atomic<int> order_errors{0};
    const int threads = 1 + trial % 4;
    tasks.reset(n_compute, g.n_sweep);
#pragma omp parallel num_threads(threads)
    tasks.run(
        omp_get_thread_num(),
        [&](int j) {
          if (j >= g.n_early)
            for (int a : g.late_needs[size_t(j - g.n_early)])
              if (!ran_s[size_t(a)]) ++order_errors;
          ++ran_c[size_t(j)];
        },
        [&](int a) {
          for (int j : g.sweep_needs[size_t(a)])
            if (!ran_c[size_t(j)]) ++order_errors;
          ++ran_s[size_t(a)];
        },
        [&](int j) {
          if (j < g.n_early) return true;
          for (int a : g.late_needs[size_t(j - g.n_early)])
            if (!tasks.sweep_done(a)) return false;
          return true;
        },
        [&](int a) {
          for (int j : g.sweep_needs[size_t(a)])
            if (!tasks.compute_done(j)) return false;
          return true;
        });
    EXPECT_EQ(order_errors.load(), 0) << "trial " << trial;
    for (int j = 0; j < n_compute; ++j) EXPECT_EQ(ran_c[size_t(j)].load(), 1) << trial << " c" << j;
    for (int a = 0; a < g.n_sweep; ++a) EXPECT_EQ(ran_s[size_t(a)].load(), 1) << trial << " s" << a;
    for (int j = 0; j < n_compute; ++j) EXPECT_TRUE(tasks.compute_done(j));
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace rat
