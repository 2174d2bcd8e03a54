// The MPI implementation of distributed.h (-DRAT_MPI=ON, the default);
// distributed_single.cc is the one-process build's.
#if defined(RAT_WITH_MPI)

#include "train/distributed.h"

#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>

#include "util/error.h"
#include "util/huge_pages.h"
#include "util/timer.h"

namespace rat {

namespace {

bool g_active = false;
World g_world;
double g_timeout = 900;
std::string g_hint;

// MPI counts are int: long buffers go in pieces of 2^30 elements.
constexpr int64_t kPiece = int64_t(1) << 30;

// Written by the SIGTERM handler: mpirun ends the surviving ranks with SIGTERM
// when one rank dies, and each should say so (with where to resume from).
char g_term_msg[1024] = "";

void on_sigterm(int sig) {
  if (g_term_msg[0]) {
    ssize_t w = write(2, g_term_msg, strlen(g_term_msg));
    (void)w;
  }
  _exit(128 + sig);
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string(what) + " failed (" + std::string(msg, size_t(len)) +
              "): another rank died or the connection was lost" +
              (g_hint.empty() ? "" : "; " + g_hint));
}

std::string seconds_text(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", s);
  return buf;
}

// One look at the requests: calls done(i) for each that has completed since
// the last look (MPI sets it to MPI_REQUEST_NULL); returns whether all have.
bool test_some(std::vector<MPI_Request>& reqs, const char* what,
               const std::function<void(int)>& done) {
  if (reqs.empty()) return true;
  std::vector<int> idx(reqs.size());
  int count = 0;
  check(MPI_Testsome(int(reqs.size()), reqs.data(), &count, idx.data(), MPI_STATUSES_IGNORE), what);
  if (count == MPI_UNDEFINED) return true;  // every request was already null
  for (int k = 0; k < count; ++k)
    if (done) done(idx[size_t(k)]);
  for (const MPI_Request& r : reqs)
    if (r != MPI_REQUEST_NULL) return false;
  return true;
}

// Drives the requests to completion from this (the main) thread, giving up
// after the deadline: MPI's own blocking waits have none, and a rank that hangs
// (rather than dies) would otherwise hold every other rank forever. done(i),
// if given, runs as request i completes.
// Throws the deadline's error once a wait that began at t0 has run past it.
void check_deadline(double t0, const char* what) {
  if (now_seconds() - t0 > g_timeout)
    throw Error(std::string("no answer from the other ranks for ") + seconds_text(g_timeout) +
                " s in " + what +
                " (a rank died or hangs, or the network is down; raise --comm-timeout for "
                "very slow steps)" +
                (g_hint.empty() ? "" : "; " + g_hint));
}

void wait_all(std::vector<MPI_Request>& reqs, const char* what,
              const std::function<void(int)>& done = {}) {
  if (reqs.empty()) return;
  const double t0 = now_seconds();
  while (!test_some(reqs, what, done)) {
    check_deadline(t0, what);
    // Under oversubscription (more ranks than cores) the rank we wait for may
    // need this core.
    sched_yield();
  }
  reqs.clear();
}

template <class T>
void allreduce_impl(T* x, int64_t n, MPI_Datatype type, const char* what) {
  if (!g_active || g_world.size == 1) return;
  std::vector<MPI_Request> reqs;
  for (int64_t i = 0; i < n; i += kPiece) {
    reqs.emplace_back();
    check(MPI_Iallreduce(MPI_IN_PLACE, x + i, int(std::min(kPiece, n - i)), type, MPI_SUM,
                         MPI_COMM_WORLD, &reqs.back()),
          what);
  }
  wait_all(reqs, what);
}

template <class T>
void broadcast_impl(T* x, int64_t n, MPI_Datatype type) {
  if (!g_active || g_world.size == 1) return;
  std::vector<MPI_Request> reqs;
  for (int64_t i = 0; i < n; i += kPiece) {
    reqs.emplace_back();
    check(MPI_Ibcast(x + i, int(std::min(kPiece, n - i)), type, 0, MPI_COMM_WORLD, &reqs.back()),
          "the broadcast from rank 0");
  }
  wait_all(reqs, "the broadcast from rank 0");
}

}  // namespace

bool launched_under_mpi() {
  // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMIx/PMI launchers (srun) the others.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

void mpi_init(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw Error("MPI_Init_thread failed");
  g_active = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &g_world.local_size);
  MPI_Comm_free(&local);
  set_comm_failure_hint("");
  std::signal(SIGTERM, on_sigterm);
  if (provided < MPI_THREAD_FUNNELED)
    throw Error(
        "this MPI library does not support MPI_THREAD_FUNNELED (OpenMP threads beside "
        "MPI); use Open MPI from Debian's openmpi-bin/libopenmpi-dev");
}

void mpi_finalize() {
  if (!g_active) return;
  MPI_Finalize();
  g_active = false;
}

void mpi_abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (g_active) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

bool mpi_active() { return g_active; }
World world() { return g_world; }
void set_comm_timeout(double seconds) { g_timeout = seconds; }
void set_comm_failure_hint(const std::string& hint) {
  g_hint = hint;
  std::snprintf(g_term_msg, sizeof g_term_msg,
                "rank %d: terminated by the launcher (another rank failed or the job was "
                "cancelled)%s%s\n",
                g_world.rank, hint.empty() ? "" : "; ", hint.c_str());
}

void allreduce_sum(double* x, int64_t n) { allreduce_impl(x, n, MPI_DOUBLE, "an all-reduce"); }
void allreduce_sum(float* x, int64_t n) { allreduce_impl(x, n, MPI_FLOAT, "an all-reduce"); }
void broadcast(float* x, int64_t n) { broadcast_impl(x, n, MPI_FLOAT); }
void broadcast(int64_t* x, int64_t n) { broadcast_impl(x, n, MPI_INT64_T); }

Shard shard_of(int64_t n, int rank, int size) { return {n * rank / size, n * (rank + 1) / size}; }

void allgather_shards(float* x, int64_t n) {
  if (!g_active || g_world.size == 1) return;
  const char* what = "the all-gather of the updated parameter shards";
  std::vector<MPI_Request> reqs;
  for (int r = 0; r < g_world.size; ++r) {
    const Shard sh = shard_of(n, r, g_world.size);
    for (int64_t i = sh.begin; i < sh.end; i += kPiece) {
      reqs.emplace_back();
      check(MPI_Ibcast(x + i, int(std::min(kPiece, sh.end - i)), MPI_FLOAT, r, MPI_COMM_WORLD,
                       &reqs.back()),
            what);
    }
  }
  wait_all(reqs, what);
}

namespace {

// Rank 0 <-> every other rank's shard, in pieces (tag: the piece's index).
void shards_to_or_from_rank0(float* full, float* mine, int64_t n, bool to_rank0, const char* what) {
  if (!g_active || g_world.size == 1) {
    if (to_rank0)
      std::copy(mine, mine + n, full);
    else
      std::copy(full, full + n, mine);
    return;
  }
  std::vector<MPI_Request> reqs;
  const auto piece = [&](float* p, int64_t count, int peer, int tag, bool send) {
    reqs.emplace_back();
    check(send ? MPI_Isend(p, int(count), MPI_FLOAT, peer, tag, MPI_COMM_WORLD, &reqs.back())
               : MPI_Irecv(p, int(count), MPI_FLOAT, peer, tag, MPI_COMM_WORLD, &reqs.back()),
          what);
  };
  const Shard own = shard_of(n, g_world.rank, g_world.size);
  if (g_world.rank == 0) {
    if (to_rank0)
      std::copy(mine, mine + own.size(), full);
    else
      std::copy(full, full + own.size(), mine);
    for (int r = 1; r < g_world.size; ++r) {
      const Shard sh = shard_of(n, r, g_world.size);
      for (int64_t i = sh.begin, k = 0; i < sh.end; i += kPiece, ++k)
        piece(full + i, std::min(kPiece, sh.end - i), r, int(k), !to_rank0);
    }
  } else {
    for (int64_t i = 0, k = 0; i < own.size(); i += kPiece, ++k)
      piece(mine + i, std::min(kPiece, own.size() - i), 0, int(k), to_rank0);
  }
  wait_all(reqs, what);
}

}  // namespace

void gather_shards(const float* mine, float* full, int64_t n) {
  shards_to_or_from_rank0(full, const_cast<float*>(mine), n, true,
                          "the gather of the optimiser state shards to rank 0");
}

void scatter_shards(const float* full, float* mine, int64_t n) {
  shards_to_or_from_rank0(const_cast<float*>(full), mine, n, false,
                          "the scatter of the optimiser state from rank 0");
}

void maybe_abort_for_test(int64_t step, float* params) {
  static const char* spec = std::getenv("RAT_TEST_ABORT_RANK_AT");
  if (!spec) return;
  int rank = -1;
  long long at = -1;
  char mode[8] = "";
  const int got = std::sscanf(spec, "%d:%lld:%7s", &rank, &at, mode);
  if (got < 2 || rank != g_world.rank || at != step) return;
  if (std::string(mode) == "perturb") {
    params[0] += 1e-3f;
    return;
  }
  const bool hang = std::string(mode) == "hang";
  std::fprintf(stderr, "rank %d: RAT_TEST_ABORT_RANK_AT=%s: %s at step %lld (test)\n", rank, spec,
               hang ? "hanging" : "aborting", at);
  std::fflush(stderr);
  if (!hang) std::abort();
  for (;;) pause();  // alive but silent, as a stuck machine or a cut cable looks
}

bool same_as_rank0(const float* x, int64_t n) {
  if (!g_active || g_world.size == 1) return true;
  // Order-independent sum of mixed (index, bits) pairs: parallel, and any
  // single changed bit changes it.
  uint64_t h = 0;
#pragma omp parallel for reduction(+ : h) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    uint64_t z = (uint64_t(i) << 32 | bits) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    h += z ^ (z >> 31);
  }
  int64_t h0 = int64_t(h);
  broadcast(&h0, 1);
  double differ = uint64_t(h0) != h ? 1.0 : 0.0;
  allreduce_sum(&differ, 1);
  return differ == 0;
}

int default_threads_per_rank() {
  // All online CPUs, not this process's affinity mask: mpirun binds each of
  // up to two ranks to one core by default, which would read as 1.
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, g_world.local_size));
}

int bound_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return CPU_COUNT(&set);
}

// The requests in flight and, with `scatter`, what each one's completion
// must do: its bucket part [lo, hi) and the counts it was started with (MPI
// reads them until it completes).
struct GradReducer::Requests {
  std::vector<MPI_Request> r;
  struct Part {
    int64_t lo, hi;
    std::vector<int> counts;
  };
  std::vector<Part> parts;
};

namespace {
const char* reduce_what(bool scatter) {
  return scatter ? "the gradient reduce-scatter" : "the gradient all-reduce";
}
}  // namespace

GradReducer::GradReducer(float* grads, int64_t n, int64_t bucket_floats, bool scatter)
    : g_(grads),
      n_(n),
      bucket_(std::max<int64_t>(1, bucket_floats)),
      scatter_(scatter && g_active && g_world.size > 1),
      reqs_(std::make_unique<Requests>()) {}

GradReducer::~GradReducer() = default;

int64_t GradReducer::kept_bytes() const {
  return (scatter_ ? shard_of(n_, g_world.rank, g_world.size).size() : n_) * int64_t(sizeof(float));
}

void GradReducer::launch(int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += kPiece) {
    const int64_t hi = std::min(i + kPiece, end);
    reqs_->r.emplace_back();
    if (!scatter_) {
      check(MPI_Iallreduce(MPI_IN_PLACE, g_ + i, int(hi - i), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                           &reqs_->r.back()),
            reduce_what(false));
    } else {
      Requests::Part p{i, hi, std::vector<int>(size_t(g_world.size))};
      for (int r = 0; r < g_world.size; ++r) {
        const Shard sh = shard_of(n_, r, g_world.size);
        p.counts[size_t(r)] =
            int(std::max<int64_t>(0, std::min(hi, sh.end) - std::max(i, sh.begin)));
      }
      reqs_->parts.push_back(std::move(p));
      // In place: the bucket is the input, and this rank's sum comes back at
      // its start (finish_part moves it where it belongs). A separate receive
      // buffer would double the memory of a bucket this rank owns (rank 0
      // owns the embedding: 262 MB at rat-xl size).
      check(MPI_Ireduce_scatter(MPI_IN_PLACE, g_ + i, reqs_->parts.back().counts.data(), MPI_FLOAT,
                                MPI_SUM, MPI_COMM_WORLD, &reqs_->r.back()),
            reduce_what(true));
    }
    ++started_;
  }
}

// What a completed request leaves behind: with `scatter`, this rank's summed
// part, received at the bucket's start, moves to its place in the buffer, and
// the rest of the bucket (the other ranks' parts, whose contents the
// reduction left undefined) is zeroed and its pages released: no longer
// needed here, and zeros for the next micro-step.
namespace {
void finish_part(float* g, int64_t n, int64_t lo, int64_t hi) {
  const Shard own = shard_of(n, g_world.rank, g_world.size);
  const int64_t a = std::max(lo, own.begin), b = std::min(hi, own.end);
  if (a < b) {
    if (a != lo) std::memmove(g + a, g + lo, size_t(b - a) * sizeof(float));
    zero_and_release(g + lo, a - lo);
    zero_and_release(g + b, hi - b);
  } else {
    zero_and_release(g + lo, hi - lo);
  }
}
}  // namespace

void GradReducer::finished(int i) {
  if (!scatter_) return;
  const Requests::Part& p = reqs_->parts[size_t(i)];
  finish_part(g_, n_, p.lo, p.hi);
}

// The last stretch (begin == 0: the embedding's, with a tied head its
// gradient is the largest tensor, 262 MB at rat-xl size) is followed only by
// wait(): nothing is left to overlap with it. With `scatter` it goes out in
// bucket-sized pieces, at most kInFlight buckets' worth at a time, so that
// the temporaries MPI keeps for the reductions in flight stay a few buckets
// (Open MPI's reduce-scatter receives whole buckets on rank 0).
void GradReducer::launch_capped(int64_t begin, int64_t end) {
  constexpr int64_t kInFlight = 4;
  Requests& q = *reqs_;
  const char* what = reduce_what(scatter_);
  for (int64_t hi = end; hi > begin;) {
    const int64_t lo = std::max(begin, hi - bucket_);
    const double t0 = now_seconds();
    for (;;) {
      int64_t flying = 0;
      for (size_t k = 0; k < q.r.size(); ++k)
        if (q.r[k] != MPI_REQUEST_NULL) flying += q.parts[k].hi - q.parts[k].lo;
      if (flying == 0 || flying + (hi - lo) <= kInFlight * bucket_) break;
      test_some(q.r, what, [&](int i) { finished(i); });
      check_deadline(t0, what);
      sched_yield();
    }
    launch(lo, hi);
    hi = lo;
  }
}

void GradReducer::ready(int64_t begin, int64_t end) {
  if (!g_active || g_world.size == 1) return;
  // Stretches come top-down and adjoin: grow the pending bucket downwards.
  if (pending_begin_ < 0) {
    pending_begin_ = begin, pending_end_ = end;
  } else {
    if (end != pending_begin_) throw Error("internal: gradient stretches announced out of order");
    pending_begin_ = begin;
  }
  if (begin == 0 && scatter_) {
    launch_capped(pending_begin_, pending_end_);
    pending_begin_ = pending_end_ = -1;
  } else if (pending_end_ - pending_begin_ >= bucket_ || begin == 0) {
    launch(pending_begin_, pending_end_);
    pending_begin_ = pending_end_ = -1;
  }
  Requests& q = *reqs_;
  if (test_some(q.r, reduce_what(scatter_), [&](int i) { finished(i); })) {
    q.r.clear();
    q.parts.clear();
  }
}

double GradReducer::wait() {
  const double t0 = now_seconds();
  if (pending_begin_ >= 0) {  // a backward that never reached the embedding
    launch(pending_begin_, pending_end_);
    pending_begin_ = pending_end_ = -1;
  }
  Requests& q = *reqs_;
  wait_all(q.r, reduce_what(scatter_), [&](int i) { finished(i); });
  q.parts.clear();
  return now_seconds() - t0;
}

double GradReducer::reduce_all() {
  const double t0 = now_seconds();
  if (g_active && g_world.size > 1) {
    scatter_ ? launch_capped(0, n_) : launch(0, n_);
    wait();
  }
  return now_seconds() - t0;
}

}  // namespace rat

#endif  // RAT_WITH_MPI
