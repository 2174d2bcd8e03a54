// Continuous batching for `rat serve`: one thread owns the Model and a
// Decoder of --parallel slots. Requests (Jobs) wait in a bounded queue; at
// every step boundary the loop gives waiting jobs the free slots, runs ONE
// piece of at most --ubatch prompt tokens of the oldest job still being
// prefilled (Decoder::prefill, then Decoder::extend for the next pieces),
// then advances every job past its prompt by one token in a single
// Model::step. Jobs join and leave the batch between steps, and a long
// prompt delays the running streams by one piece per token, not by its
// whole prefill.
// Prefix reuse: a slot keeps its state when its sequence ends. A new prompt
// continues the free slot whose held tokens it shares the longest usable
// prefix with: the slot is cut back to the longest point k <= the common
// prefix (and < the prompt's length) its state allows, per layer
// (DecodeState::can_truncate): attention anywhere; RAT at a chunk boundary
// (its finished chunks' rows; the partial chunk is recomputed); local
// attention while its ring still holds the window (one token back once it
// has wrapped); the RNN only where a snapshot of the running states exists;
// the hybrid where all its layers allow. The running states (RNN h, RAT
// running kt, vt) are snapshotted at the end of every prompt, so
// RNN and mid-chunk RAT layers are reusable at prompt ends (a request sent
// again, another answer to the same conversation). The rest of the prompt is
// then prefilled in pieces as above. Exact for every mixer: extend continues
// each state as steps would.
// What free slots keep for reuse is bounded by reuse_cache_bytes (--cache-mib:
// least recently used free slots forget theirs first); a free slot's tokens
// and state can be saved to and restored from a file (slot_file.h) between
// two steps.
// Each job samples with its own TokenSampler, seeded as `rat generate` seeds
// sequence i, so its tokens do not depend on its batch mates (greedy rows are
// argmax of logits that Model::step computes per row).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/tokenizer.h"
#include "generate/sampling.h"
#include "model/model.h"

namespace rat {
class Decoder;
}

namespace rat::serve {

// One generated token as a client sees it.
struct TokenEvent {
  int32_t id = 0;       // -1: no token, only the text held back until the end (a last event)
  std::string text;     // newly visible text (StreamDecoder + stop strings); may be empty
  float logprob = 0.f;  // log p(id) under the model's raw distribution
  std::vector<std::pair<int32_t, float>> top;  // top_logprobs (id, log p), most likely first
};

// Where the scheduler tells a client side that a job has news: the jobs of
// one request share one, so its handler waits on one condition for all.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
};

// One sequence to generate (a choice of a request). The HTTP thread fills the
// inputs, submits it, then reads events until done; the scheduler thread
// writes the outputs under ch->mu and notifies ch->cv.
struct Job {
  // Inputs.
  std::vector<int32_t> prompt;
  SamplingOptions sampling;
  float presence_penalty = 0.f, frequency_penalty = 0.f;  // OpenAI's, over generated ids
  uint64_t seed = 0;                                      // the TokenSampler seed (see seed_for)
  int64_t max_tokens = 16;                                // generated tokens at most
  int32_t eos_id = -1;    // ends the sequence with finish "stop"; -1: never
  int top_logprobs = -1;  // -1: no logprobs; k >= 0: the k most likely with each token
  std::vector<std::string> stop;
  // Set by the client side to end it early (a disconnected stream).
  std::atomic<bool> cancel{false};

  // Outputs.
  std::shared_ptr<Channel> ch = std::make_shared<Channel>();
  std::deque<TokenEvent> events;  // not yet taken by the client side
  bool done = false;
  std::string finish;  // "stop", "length", "cancelled" or "error"
  std::string error;   // when finish == "error"
  int64_t generated = 0;
};

// What `rat generate` seeds sequence i of a batch with (generate.cc), so a
// request's choice i samples as `rat generate --seed S` does.
inline uint64_t seed_for(uint64_t seed, int64_t i) {
  return seed * 0x9E3779B97F4A7C15ull + uint64_t(i) + 1;
}

struct SchedulerOptions {
  int64_t parallel = 4;  // slots: sequences decoded together
  int64_t ctx = 2048;    // tokens a slot holds (prompt + generated)
  bool bf16_cache = false;
  // A request's decode steps bit for bit the same whatever else is in the
  // batch (Decoder::set_batch_invariant). Its prefill is its own already;
  // a reused prefix was prefilled by an earlier request, with products of
  // that prompt's length, so --cache-mib 0 too for outputs that depend on
  // nothing but the request.
  bool batch_invariant = false;
  int threads = 0;          // OpenMP threads of the model's work; 0: OpenMP's default
  int64_t max_queue = 256;  // waiting jobs beyond which submit() refuses
  // Bytes that free slots may keep for prefix reuse (their held tokens'
  // state, slot_state_bytes); beyond, the least recently used free slots
  // forget theirs. -1: no bound.
  int64_t reuse_cache_bytes = -1;
  // Prompt tokens prefilled per loop turn at most (--ubatch): between two
  // decode steps of the running jobs, one piece of one prompt.
  int64_t ubatch = 512;
  // Slot files (slot_file.h): the model's key; "" dir: save/restore refused.
  std::string slot_dir;
  uint64_t model_key = 0;
};

// The outcome of a slot save or restore, as HTTP sees it.
struct SlotResult {
  int status = 200;  // 200, or 4xx/5xx with message
  std::string message;
  int64_t tokens = 0, bytes = 0;
};

struct SchedulerStats {
  int64_t queued = 0, busy = 0, slots = 0;
  int64_t reused_tokens = 0;  // prompt tokens whose state a free slot still held (not prefilled)
  int64_t prompt_tokens = 0, completion_tokens = 0, jobs_done = 0, jobs_cancelled = 0;
  int64_t cache_bytes = 0, steps = 0, prefills = 0;
  int64_t prefill_pieces = 0;  // prefill / extend calls of at most --ubatch tokens
  int64_t reuse_bytes = 0;     // state kept by free slots for prefix reuse (--cache-mib bounds it)
  int64_t reuse_evictions = 0;
};

class Scheduler {
 public:
  // Running-state snapshots kept per slot (prompt ends, newest kept).
  static constexpr size_t kMaxSnapshots = 8;
  // tok may be null (ids only: no text, no stop strings).
  Scheduler(Model& model, const Tokenizer* tok, const SchedulerOptions& opt);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the loop thread; returns once the model is warm (a prefill and a
  // step of every batch size done) or throws what the warm-up threw.
  void start();
  // Queues a job; false when the queue is full or the scheduler is draining.
  bool submit(const std::shared_ptr<Job>& job);
  // Stops admitting; lets running and queued jobs finish for up to grace_s
  // seconds, cancels what is left, and joins the loop.
  void drain(double grace_s);
  SchedulerStats stats() const;
  // Saves slot `slot` (free, holding tokens) to path, or restores it from
  // path, between two steps; waits for the loop to do it.
  SlotResult slot_action(int64_t slot, bool save, const std::string& path);
  const SchedulerOptions& options() const { return opt_; }

 private:
  struct Running;
  void loop();
  void warm_up();
  // Picks the next id from logits [V] (modified), records it and its event;
  // returns whether the job goes on.
  bool advance(Running& r, float* logits);
  void finish(Running& r, const std::string& why);
  struct SlotTask {
    int64_t slot;
    bool save;
    std::string path;
    std::promise<SlotResult> done;
  };
  SlotResult run_slot_task(SlotTask& t);
  // Free slots' reuse bytes; evicts least recently used ones beyond the bound.
  void bound_reuse_cache();
  // Gives a waiting job a free slot: the one whose held tokens it can reuse
  // the most of (cut back to that point), else an empty or the least
  // recently used one.
  void admit(const std::shared_ptr<Job>& job);
  // The longest prefix of prompt (shorter than it) free slot s can continue
  // from; 0 when none. *snap: the snapshot to restore there, or null.
  struct Snapshot;
  int64_t reuse_point(size_t s, const std::vector<int32_t>& prompt, const Snapshot** snap) const;
  // One piece of the oldest prompt still being prefilled, if any.
  void prefill_piece(float* logits);
  void forget(size_t s);  // slot s keeps nothing for reuse

  Model& model_;
  const Tokenizer* tok_;
  SchedulerOptions opt_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::deque<std::unique_ptr<SlotTask>> slot_tasks_;
  bool draining_ = false, stop_ = false;
  double cancel_at_ = 0;  // drain: monotonic time after which running jobs are cancelled
  // Warm-up outcome, handed from the loop thread to start().
  bool warm_ = false;
  std::string warm_error_;
  // Owned by the loop thread.
  std::unique_ptr<Decoder> dec_;
  std::vector<float> raw_;      // a logits row before sampling edits it (logprobs)
  std::vector<int32_t> order_;  // top_logprobs' partial sort
  std::vector<std::unique_ptr<Running>> slots_;
  // Prefix reuse: the tokens whose state each slot holds (its last sequence's
  // prompt and every token fed after it), kept when the sequence ends, and
  // when the slot was last used (least recently used slots are taken first).
  std::vector<std::vector<int32_t>> held_;
  // The running states of slot s after its first pos tokens (pos <= held).
  struct Snapshot {
    int64_t pos = 0;
    std::vector<float> rec;  // DecodeState::save_recurrent
  };
  std::vector<std::vector<Snapshot>> snaps_;
  std::vector<int64_t> last_used_;
  int64_t clock_ = 0, admitted_ = 0;
  std::atomic<int64_t> prefill_pieces_{0}, busy_{0}, reused_tokens_{0}, prompt_tokens_{0},
      completion_tokens_{0}, jobs_done_{0}, jobs_cancelled_{0}, cache_bytes_{0}, steps_{0},
      prefills_{0}, reuse_bytes_{0}, reuse_evictions_{0};
};

}  // namespace rat::serve
