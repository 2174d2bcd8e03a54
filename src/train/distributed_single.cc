// distributed.h for a rat built without MPI (-DRAT_MPI=OFF, README "Build"):
// one process, rank 0 of 1; every collective is a no-op, as it is in an MPI
// build run without a launcher. A launch under mpirun/srun is refused at
// mpi_init with one line, rather than running N independent copies that
// would each believe they are the whole job.
#if !defined(RAT_WITH_MPI)

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "train/distributed.h"
#include "util/error.h"

namespace rat {

bool launched_under_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

void mpi_init(int*, char***) {
  throw Error(
      "this rat was built without MPI (-DRAT_MPI=OFF) and runs as one process; run it without "
      "mpirun, or rebuild with -DRAT_MPI=ON for data parallelism");
}

void mpi_finalize() {}

void mpi_abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(code);
}

bool mpi_active() { return false; }
World world() { return World{}; }
void set_comm_timeout(double) {}
void set_comm_failure_hint(const std::string&) {}

void allreduce_sum(double*, int64_t) {}
void allreduce_sum(float*, int64_t) {}
void broadcast(float*, int64_t) {}
void broadcast(int64_t*, int64_t) {}

Shard shard_of(int64_t n, int, int) { return {0, n}; }
void allgather_shards(float*, int64_t) {}
void gather_shards(const float* mine, float* full, int64_t n) { std::copy(mine, mine + n, full); }
void scatter_shards(const float* full, float* mine, int64_t n) { std::copy(full, full + n, mine); }

// The fault injection acts on ranks of an MPI job (tests/mpi); there are none.
void maybe_abort_for_test(int64_t, float*) {}

bool same_as_rank0(const float*, int64_t) { return true; }

int default_threads_per_rank() { return int(std::max(1u, std::thread::hardware_concurrency())); }

int bound_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return CPU_COUNT(&set);
}

struct GradReducer::Requests {};

GradReducer::GradReducer(float* grads, int64_t n, int64_t bucket_floats, bool)
    : g_(grads),
      n_(n),
      bucket_(std::max<int64_t>(1, bucket_floats)),
      scatter_(false),
      reqs_(std::make_unique<Requests>()) {}
int64_t GradReducer::kept_bytes() const { return n_ * int64_t(sizeof(float)); }

GradReducer::~GradReducer() = default;
void GradReducer::launch(int64_t, int64_t) {}
void GradReducer::launch_capped(int64_t, int64_t) {}
void GradReducer::finished(int) {}
void GradReducer::ready(int64_t, int64_t) {}
double GradReducer::wait() { return 0; }
double GradReducer::reduce_all() { return 0; }

}  // namespace rat

#endif  // !RAT_WITH_MPI
