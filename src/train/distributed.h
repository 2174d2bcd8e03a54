// Data parallelism across processes with MPI (Open MPI), as the authors' DDP
// runs: every rank holds the whole model, reads its own shard of samples, and
// the gradients are averaged by all-reduce before the identical optimiser step.
//
// Without an MPI launcher nothing here touches MPI: world() is {rank 0 of 1},
// every collective is a no-op, so a plain `rat train` and the in-process tests
// need no mpirun. Every wait on the network has a deadline (comm_timeout), so a
// rank that dies or a lost connection ends the job with a message on the
// surviving ranks instead of hanging them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rat {

struct World {
  int rank = 0, size = 1;
  int local_size = 1;  // ranks on this machine (threads per rank = cores / local_size)
};

// Whether a launcher (mpirun, srun with PMIx) started this process as an MPI rank.
bool launched_under_mpi();
// MPI_Init_thread(MPI_THREAD_FUNNELED): only the main thread calls MPI; the
// OpenMP workers never do. Errors on the world communicator are returned to us
// (and thrown as rat::Error naming the operation) rather than aborting inside MPI.
void mpi_init(int* argc, char*** argv);
void mpi_finalize();
// Ends every rank of the job (after this rank printed why).
[[noreturn]] void mpi_abort(int code);
bool mpi_active();
World world();

// Seconds a rank waits in one collective before it gives up and throws
// (default 900: longer than rank 0 takes to write a 1.3B checkpoint).
void set_comm_timeout(double seconds);
// Appended to communication errors (the trainer sets "resume from ...").
void set_comm_failure_hint(const std::string& hint);

// In-place sums over all ranks (no-ops for one rank); wait under the deadline.
void allreduce_sum(double* x, int64_t n);
void allreduce_sum(float* x, int64_t n);
// Copies rank 0's values to every rank.
void broadcast(float* x, int64_t n);
void broadcast(int64_t* x, int64_t n);

// Sharded state (ZeRO-1, train/trainer.cc): rank r of `size` owns the
// contiguous part [begin, end) = [n*r/size, n*(r+1)/size) of an n-element buffer.
struct Shard {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Shard shard_of(int64_t n, int rank, int size);
// In place: every rank's own shard of x[0, n) to every other rank, so all hold
// the whole buffer (a broadcast from each owner: the bytes of an all-gather).
void allgather_shards(float* x, int64_t n);
// Rank 0 collects the whole buffer full[0, n) from every rank's shard `mine`
// (full is only written, and only needed, on rank 0).
void gather_shards(const float* mine, float* full, int64_t n);
// The reverse: rank 0's full[0, n) cut into shards, rank r's into its `mine`.
void scatter_shards(const float* full, float* mine, int64_t n);

// Whether every rank's copy of x[0, n) is bitwise rank 0's (a 64-bit hash
// compared across ranks; true on one rank). Every rank applies the same update
// to the same averaged gradient, so copies stay equal unless the ranks compute
// differently (binaries built for different CPUs, say); the trainer checks at
// each checkpoint and re-synchronises from rank 0.
bool same_as_rank0(const float* x, int64_t n);

// Test-only fault injection (tests/mpi/mpi_tests.py): with
// RAT_TEST_ABORT_RANK_AT="RANK:STEP" in the environment, rank RANK calls
// abort() as optimiser step STEP begins, as a crashed machine would;
// "RANK:STEP:hang" hangs there instead; "RANK:STEP:perturb" changes one of
// its parameters (a rank drifting from the others). Unset: does nothing.
void maybe_abort_for_test(int64_t step, float* params);

// Default OpenMP threads per rank: this machine's cores shared by its ranks.
int default_threads_per_rank();
// CPUs this process may run on (mpirun binds ranks to cores unless told
// --bind-to none), to warn when threads outnumber them.
int bound_cpus();

// The gradient all-reduce, overlapped with backward. Model::forward_backward
// announces stretches [begin, end) of the flat gradient buffer as they become
// final, from the top of the network down (head, last block, ..., embedding,
// which ends with begin == 0). Consecutive stretches are gathered into buckets
// of at least bucket_floats and each bucket is started with MPI_Iallreduce at
// once, so the reduction of the upper layers runs while the lower layers are
// still computing their backward. wait() finishes them before clipping.
// Gradients arrive pre-scaled by 1/ranks (through the loss scale), so the sum
// is the average.
//
// With `scatter` (SHARD_GRAD_OP, train/trainer.cc) each bucket is
// reduce-scattered instead (MPI_Ireduce_scatter): this rank receives the sum of
// its shard_of() part only, written back into the buffer, and as each bucket
// completes the rest of it is zeroed and its pages released to the kernel
// (util/huge_pages.h zero_and_release), so the next backward finds zeros
// there and resident gradient memory stays near the shard plus the buckets in
// flight. A rank's own part may hold its sum over earlier micro-steps: the
// others contribute zeros plus this micro-step's gradient, so the result
// accumulates.
class GradReducer {
 public:
  GradReducer(float* grads, int64_t n, int64_t bucket_floats, bool scatter = false);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // The hook for Model::forward_backward on the micro-step that ends an
  // optimiser step (every micro-step with `scatter`). Also lets MPI progress
  // the buckets already in flight (MPI_Testsome from the main thread between
  // blocks: Open MPI moves data only inside MPI calls).
  void ready(int64_t begin, int64_t end);
  // Waits for every bucket; returns the seconds spent waiting (communication
  // not hidden behind backward).
  double wait();
  // The whole buffer in one blocking collective (no overlap); returns seconds.
  double reduce_all();
  int64_t buckets_started() const { return started_; }
  // Bytes of gradient this rank keeps between micro-steps: the shard with
  // `scatter`, else the whole buffer.
  int64_t kept_bytes() const;

 private:
  void launch(int64_t begin, int64_t end);
  void launch_capped(int64_t begin, int64_t end);
  void finished(int i);
  float* g_;
  int64_t n_, bucket_, pending_begin_ = -1, pending_end_ = -1, started_ = 0;
  const bool scatter_;
  struct Requests;  // the MPI_Requests in flight (kept out of this header: callers need no mpi.h)
  std::unique_ptr<Requests> reqs_;
};

}  // namespace rat
