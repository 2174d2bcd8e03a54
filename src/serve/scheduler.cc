#include "serve/scheduler.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>

#include "generate/decoder.h"
#include "generate/stop_filter.h"
#include "serve/slot_file.h"
#include "util/error.h"
#include "util/timer.h"

namespace rat::serve {

// A job while it holds a slot.
struct Scheduler::Running {
  std::shared_ptr<Job> job;
  int64_t slot = 0;
  TokenSampler sampler;
  std::vector<int32_t> history;        // prompt + generated: the repetition penalty's ids
  std::vector<int32_t> counts;         // [V] times each id was generated (OpenAI penalties)
  std::vector<int32_t> generated_ids;  // distinct ids with counts > 0
  std::unique_ptr<StreamDecoder> text;
  StopFilter stops;
  int32_t last = -1;  // the token the next step feeds
  // job->prompt[next..] is not in the slot yet: the job is being prefilled
  // (a piece per loop turn, the oldest job first) and does not step.
  size_t next = 0;
  int64_t order = 0;  // admission order
  bool prefilling() const { return next < job->prompt.size(); }

  Running(std::shared_ptr<Job> j, int64_t s, int64_t V, const Tokenizer* tok)
      : job(std::move(j)),
        slot(s),
        sampler(job->sampling, V, job->seed),
        history(job->prompt),
        stops(job->stop) {
    if (job->presence_penalty != 0.f || job->frequency_penalty != 0.f) counts.assign(size_t(V), 0);
    if (tok) {
      text = std::make_unique<StreamDecoder>(*tok);
      // The prompt goes through the decoder first (its text is not returned)
      // so that the first new word keeps its leading space, as in generate.
      for (int32_t id : job->prompt)
        if (id < tok->vocab_size()) text->push(id);
    }
  }
};

namespace {

// log_softmax(row)[id] and, with k > 0, the k largest entries of it.
void log_probs(const float* row, int64_t V, int32_t id, int k, float* lp_id,
               std::vector<std::pair<int32_t, float>>* top, std::vector<int32_t>& order) {
  float mx = row[0];
  for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v] - mx));
  const float lse = mx + float(std::log(sum));
  *lp_id = row[id] - lse;
  top->clear();
  if (k <= 0) return;
  k = int(std::min<int64_t>(k, V));
  order.resize(size_t(V));
  for (int64_t v = 0; v < V; ++v) order[size_t(v)] = int32_t(v);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  });
  for (int i = 0; i < k; ++i) top->emplace_back(order[size_t(i)], row[order[size_t(i)]] - lse);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Scheduler::Scheduler(Model& model, const Tokenizer* tok, const SchedulerOptions& opt)
    : model_(model), tok_(tok), opt_(opt) {
  if (opt.parallel <= 0) throw Error("--parallel must be >= 1");
  if (opt.ctx < 2) throw Error("--ctx must be >= 2");
  if (opt.max_queue < 0) throw Error("--max-queue must be >= 0");
  if (opt.ubatch < 1) throw Error("--ubatch must be >= 1");
}

Scheduler::~Scheduler() {
  if (thread_.joinable()) drain(0);
}

void Scheduler::start() {
  thread_ = std::thread([this] { loop(); });
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return warm_ || !warm_error_.empty(); });
  if (!warm_error_.empty()) {
    lk.unlock();
    thread_.join();
    throw Error(warm_error_);
  }
}

bool Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (draining_ || int64_t(queue_.size()) >= opt_.max_queue) return false;
    queue_.push_back(job);
  }
  cv_.notify_all();
  return true;
}

void Scheduler::drain(double grace_s) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!draining_) cancel_at_ = now_s() + std::max(0.0, grace_s);
    draining_ = stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard<std::mutex> lk(mu_);
    s.queued = int64_t(queue_.size());
  }
  s.busy = busy_, s.slots = opt_.parallel, s.reused_tokens = reused_tokens_;
  s.prompt_tokens = prompt_tokens_, s.completion_tokens = completion_tokens_;
  s.jobs_done = jobs_done_, s.jobs_cancelled = jobs_cancelled_;
  s.cache_bytes = cache_bytes_, s.steps = steps_, s.prefills = prefills_;
  s.prefill_pieces = prefill_pieces_;
  s.reuse_bytes = reuse_bytes_, s.reuse_evictions = reuse_evictions_;
  return s;
}

SlotResult Scheduler::slot_action(int64_t slot, bool save, const std::string& path) {
  if (slot < 0 || slot >= opt_.parallel)
    return {400, "slot id " + std::to_string(slot) + " out of range [0, " +
                     std::to_string(opt_.parallel) + ") (--parallel)"};
  auto t = std::make_unique<SlotTask>();
  t->slot = slot, t->save = save, t->path = path;
  std::future<SlotResult> done = t->done.get_future();
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ || !thread_.joinable()) return {503, "the server is shutting down"};
    slot_tasks_.push_back(std::move(t));
  }
  cv_.notify_all();
  return done.get();
}

// On the loop thread, between steps: the slot is free (no sequence runs in it).
SlotResult Scheduler::run_slot_task(SlotTask& t) {
  const size_t s = size_t(t.slot);
  const std::string id = "slot " + std::to_string(t.slot);
  if (slots_[s]) return {409, id + " is running a request; save or restore it once it is free"};
  SlotResult res;
  if (t.save) {
    const auto& h = held_[s];
    if (h.empty()) return {400, id + " holds no tokens (nothing to save)"};
    try {
      res.bytes = save_slot(t.path, dec_->state(), t.slot, h, opt_.model_key);
    } catch (const std::exception& e) {
      return {500, std::string("saving ") + id + ": " + e.what()};
    }
    res.tokens = int64_t(h.size());
    return res;
  }
  std::vector<int32_t> tokens;
  try {
    tokens = restore_slot(t.path, dec_->state(), t.slot, opt_.model_key);
  } catch (const std::exception& e) {
    return {400, e.what()};
  }
  // The state is the file's now: whatever the slot held before is gone.
  forget(s);
  const int64_t V = model_.config().vocab_size;
  for (int32_t v : tokens)
    if (v < 0 || v >= V)
      return {400, t.path + ": token id " + std::to_string(v) + " outside the vocabulary"};
  dec_->set_length(t.slot, int64_t(tokens.size()));
  res.tokens = int64_t(tokens.size());
  held_[s] = std::move(tokens);
  last_used_[s] = ++clock_;
  bound_reuse_cache();
  return res;
}

void Scheduler::forget(size_t s) {
  held_[s].clear();
  snaps_[s].clear();
}

void Scheduler::bound_reuse_cache() {
  // The held tokens' state as a slot file holds it (the running-state
  // snapshots, at most kMaxSnapshots x recurrent_floats() floats per slot,
  // are not counted: a few D-float rows per layer).
  DecodeState& st = dec_->state();
  const auto bytes = [&](size_t s) {
    return slots_[s] || held_[s].empty() ? 0 : slot_state_bytes(st, int64_t(held_[s].size()));
  };
  int64_t total = 0;
  for (size_t s = 0; s < slots_.size(); ++s) total += bytes(s);
  while (opt_.reuse_cache_bytes >= 0 && total > opt_.reuse_cache_bytes) {
    int64_t lru = -1;
    for (size_t s = 0; s < slots_.size(); ++s)
      if (bytes(s) > 0 && (lru < 0 || last_used_[s] < last_used_[size_t(lru)])) lru = int64_t(s);
    if (lru < 0) break;
    total -= bytes(size_t(lru));
    forget(size_t(lru));
    ++reuse_evictions_;
  }
  reuse_bytes_ = total;
}

// Every shape the loop will run, once, so that the first requests do not pay
// for oneDNN's plans, the bf16 weight copies and first-touch page faults: a
// prefill in every slot (the first of up to 512 tokens, so the model's
// forward buffers are grown for ordinary prompts), then a step of every batch
// size 1..parallel.
void Scheduler::warm_up() {
  const int64_t V = model_.config().vocab_size, P = opt_.parallel;
  std::vector<float> logits(size_t(P * V));
  // Room left for the P steps in slot 0 (its length is n, then n + 1, ...).
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(opt_.ctx - 1 - P, 512));
  std::vector<int32_t> ids(size_t(n), 0);
  for (int64_t s = 0; s < P; ++s) dec_->prefill(s, ids.data(), s == 0 ? n : 1, logits.data());
  std::vector<int64_t> slots;
  for (int64_t b = 1; b <= P; ++b) {
    slots.clear();
    for (int64_t s = 0; s < b; ++s)
      if (dec_->length(s) < opt_.ctx) slots.push_back(s);
    dec_->step(slots.data(), ids.data(), int64_t(slots.size()), logits.data());
  }
}

void Scheduler::finish(Running& r, const std::string& why) {
  const std::shared_ptr<Job> job = r.job;
  Job& j = *job;
  TokenEvent tail;
  tail.id = -1;
  if (r.text && why != "cancelled") {
    if (!r.stops.hit()) tail.text = r.stops.feed(r.text->flush());
    tail.text += r.stops.finish();
  }
  // The slot and the counters are settled before the client hears it is
  // done, so /metrics read after an answer already shows its effects.
  ++jobs_done_;
  if (why == "cancelled") ++jobs_cancelled_;
  const int64_t s = r.slot;
  slots_[size_t(s)].reset();  // r is gone from here on
  --busy_;
  bound_reuse_cache();
  {
    std::lock_guard<std::mutex> lk(j.ch->mu);
    if (!tail.text.empty()) j.events.push_back(std::move(tail));
    j.done = true;
    j.finish = why;
  }
  j.ch->cv.notify_all();
}

int64_t Scheduler::reuse_point(size_t s, const std::vector<int32_t>& prompt,
                               const Snapshot** snap) const {
  *snap = nullptr;
  const auto& h = held_[s];
  if (slots_[s] || h.empty()) return 0;
  // At least the prompt's last token is fed again: its logits start the answer.
  const size_t m = std::min(h.size(), prompt.size() - 1);
  const size_t common =
      size_t(std::mismatch(h.begin(), h.begin() + int64_t(m), prompt.begin()).first - h.begin());
  const DecodeState& st = dec_->state();
  for (int64_t k = int64_t(common); k > 0; --k) {
    const Snapshot* sn = nullptr;
    for (const Snapshot& x : snaps_[s])
      if (x.pos == k) sn = &x;
    if (st.can_truncate(int64_t(h.size()), k, sn != nullptr)) {
      *snap = sn;
      return k;
    }
  }
  return 0;
}

void Scheduler::admit(const std::shared_ptr<Job>& job) {
  const int64_t V = model_.config().vocab_size, P = opt_.parallel;
  const auto& pr = job->prompt;
  int64_t slot = -1, k = 0;
  const Snapshot* snap = nullptr;
  if (!pr.empty())
    for (int64_t s = 0; s < P; ++s) {
      const Snapshot* sn = nullptr;
      const int64_t ks = reuse_point(size_t(s), pr, &sn);
      if (ks > k) slot = s, k = ks, snap = sn;
    }
  if (slot < 0)  // a free slot holding nothing, else the least recently used one
    for (int64_t s = 0; s < P; ++s) {
      if (slots_[size_t(s)]) continue;
      const auto key = [&](int64_t x) {
        return std::make_pair(!held_[size_t(x)].empty(), last_used_[size_t(x)]);
      };
      if (slot < 0 || key(s) < key(slot)) slot = s;
    }
  const size_t s = size_t(slot);
  last_used_[s] = ++clock_;
  ++busy_;
  slots_[s] = std::make_unique<Running>(job, slot, V, tok_);
  Running& r = *slots_[s];
  r.order = ++admitted_;
  if (job->cancel) {
    finish(r, "cancelled");
    return;
  }
  if (job->max_tokens <= 0) {
    finish(r, "length");
    return;
  }
  if (pr.empty()) {
    {
      std::lock_guard<std::mutex> lk(job->ch->mu);
      job->error = "the prompt is empty (at least one token is needed)";
    }
    finish(r, "error");
    return;
  }
  prompt_tokens_ += int64_t(pr.size());
  if (k > 0) {
    // Cut back to k: the held tokens past it (and snapshots past it) are gone.
    if (k < int64_t(held_[s].size())) {
      if (snap) dec_->state().load_recurrent(slot, snap->rec.data());
      dec_->set_length(slot, k);
      held_[s].resize(size_t(k));
      auto& v = snaps_[s];
      v.erase(std::remove_if(v.begin(), v.end(), [&](const Snapshot& x) { return x.pos > k; }),
              v.end());
    }
    reused_tokens_ += k;
    r.next = size_t(k);
  } else {
    forget(s);
    dec_->set_length(slot, 0);  // the first piece prefills it afresh
  }
  bound_reuse_cache();  // the slot taken is no longer a free slot's cache
}

void Scheduler::prefill_piece(float* logits) {
  Running* r = nullptr;
  for (auto& x : slots_)
    if (x && x->prefilling() && !x->job->cancel && (!r || x->order < r->order)) r = x.get();
  if (!r) return;
  const auto& pr = r->job->prompt;
  const size_t s = size_t(r->slot);
  DecodeState& st = dec_->state();
  const bool running_states = st.recurrent_floats() > 0;
  const int64_t left = int64_t(pr.size() - r->next);
  int64_t n = std::min<int64_t>(opt_.ubatch, left);
  // With running states (RNN, RAT), the last pass stops one token short: the
  // snapshot there lets the same prompt sent again reuse all but its last
  // token (whose logits must be recomputed).
  if (running_states && n == left && n >= 2) --n;
  try {
    if (dec_->length(r->slot) == 0)
      dec_->prefill(r->slot, pr.data(), n, logits);
    else
      dec_->extend(r->slot, pr.data() + r->next, n, logits);
  } catch (const std::exception& e) {
    forget(s);  // its state is unknown now
    {
      std::lock_guard<std::mutex> lk(r->job->ch->mu);
      r->job->error = e.what();
    }
    finish(*r, "error");
    return;
  }
  held_[s].insert(held_[s].end(), pr.begin() + int64_t(r->next), pr.begin() + int64_t(r->next) + n);
  r->next += size_t(n);
  ++prefill_pieces_;
  if (running_states && r->next + 1 >= pr.size()) {  // the prompt's end, or one before
    auto& v = snaps_[s];
    const int64_t pos = int64_t(r->next);
    v.erase(std::remove_if(v.begin(), v.end(), [&](const Snapshot& x) { return x.pos == pos; }),
            v.end());
    if (v.size() >= kMaxSnapshots) v.erase(v.begin());
    v.push_back({pos, std::vector<float>(size_t(st.recurrent_floats()))});
    st.save_recurrent(r->slot, v.back().rec.data());
  }
  if (r->prefilling()) return;
  ++prefills_;
  advance(*r, logits);  // its first token; it steps with the others from now on
}

bool Scheduler::advance(Running& r, float* logits) {
  Job& j = *r.job;
  const int64_t V = model_.config().vocab_size;
  if (!r.counts.empty())
    for (int32_t id : r.generated_ids)
      logits[id] -= j.presence_penalty + j.frequency_penalty * float(r.counts[size_t(id)]);
  TokenEvent ev;
  // Log-probabilities are of the distribution the request's penalties leave
  // (before temperature, filters and the repetition penalty of sample(), as
  // OpenAI's are before temperature); the row is kept before sample() edits it.
  float lp = 0.f;
  int32_t id;
  if (j.top_logprobs >= 0) {
    raw_.assign(logits, logits + V);
    id = r.sampler.sample(logits, r.history);
    log_probs(raw_.data(), V, id, j.top_logprobs, &lp, &ev.top, order_);
  } else {
    id = r.sampler.sample(logits, r.history);
  }
  r.history.push_back(id);
  r.last = id;
  ++completion_tokens_;
  ++j.generated;
  if (id == j.eos_id) {
    finish(r, "stop");
    return false;
  }
  if (!r.counts.empty() && r.counts[size_t(id)]++ == 0) r.generated_ids.push_back(id);
  ev.id = id;
  ev.logprob = lp;
  if (r.text && id < tok_->vocab_size()) ev.text = r.stops.feed(r.text->push(id));
  const bool hit = r.stops.hit();
  {
    std::lock_guard<std::mutex> lk(j.ch->mu);
    j.events.push_back(std::move(ev));
  }
  j.ch->cv.notify_all();
  if (hit) {
    finish(r, "stop");
    return false;
  }
  if (j.generated >= j.max_tokens || dec_->length(r.slot) >= opt_.ctx) {
    finish(r, "length");
    return false;
  }
  return true;
}

void Scheduler::loop() {
  try {
    if (opt_.threads > 0) omp_set_num_threads(opt_.threads);
    dec_ = std::make_unique<Decoder>(model_, opt_.parallel, opt_.ctx, opt_.bf16_cache);
    dec_->set_batch_invariant(opt_.batch_invariant);
    slots_.resize(size_t(opt_.parallel));
    held_.resize(size_t(opt_.parallel));
    snaps_.resize(size_t(opt_.parallel));
    last_used_.assign(size_t(opt_.parallel), 0);
    cache_bytes_ = dec_->cache_bytes();
    warm_up();
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lk(mu_);
    warm_error_ = std::string("warming the model: ") + e.what();
    cv_.notify_all();
    return;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    warm_ = true;
  }
  cv_.notify_all();

  const int64_t V = model_.config().vocab_size, P = opt_.parallel;
  std::vector<float> logits(size_t(P * V));
  std::vector<int64_t> rows;
  std::vector<int32_t> ids;
  std::vector<Running*> running;
  for (;;) {
    int64_t free_slots = 0;
    for (const auto& r : slots_) free_slots += !r;
    std::vector<std::shared_ptr<Job>> admits, dropped;
    std::deque<std::unique_ptr<SlotTask>> tasks;
    bool quit = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || busy_ > 0 || !queue_.empty() || !slot_tasks_.empty(); });
      tasks.swap(slot_tasks_);
      if (stop_ && now_s() >= cancel_at_) {
        // Drain's grace is over: nothing queued starts, everything running stops.
        dropped.assign(queue_.begin(), queue_.end());
        queue_.clear();
        for (auto& r : slots_)
          if (r) r->job->cancel = true;
      }
      quit = stop_ && busy_ == 0 && queue_.empty() && dropped.empty();
      while (!quit && free_slots-- > 0 && !queue_.empty()) {
        admits.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    for (auto& t : tasks) t->done.set_value(run_slot_task(*t));
    if (quit) break;
    for (auto& j : dropped) {
      {
        std::lock_guard<std::mutex> lk(j->ch->mu);
        j->done = true;
        j->finish = "cancelled";
      }
      j->ch->cv.notify_all();
      ++jobs_done_, ++jobs_cancelled_;
    }
    for (auto& j : admits) admit(j);
    prefill_piece(logits.data());
    // One step for every running job that was not cancelled meanwhile.
    running.clear();
    for (auto& r : slots_) {
      if (!r) continue;
      if (r->job->cancel) {
        finish(*r, "cancelled");
        continue;
      }
      if (!r->prefilling()) running.push_back(r.get());
    }
    // A job whose last piece was prefilled just now already has its first
    // token; it steps with the others (its slot holds the prompt, the token
    // is fed now).
    if (running.empty()) continue;
    rows.clear(), ids.clear();
    for (Running* r : running) rows.push_back(r->slot), ids.push_back(r->last);
    try {
      for (Running* r : running) held_[size_t(r->slot)].push_back(r->last);
      dec_->step(rows.data(), ids.data(), int64_t(rows.size()), logits.data());
      ++steps_;
    } catch (const std::exception& e) {
      for (Running* r : running) {
        forget(size_t(r->slot));  // its state is unknown now
        {
          std::lock_guard<std::mutex> lk(r->job->ch->mu);
          r->job->error = e.what();
        }
        finish(*r, "error");
      }
      continue;
    }
    for (size_t i = 0; i < running.size(); ++i)
      advance(*running[i], logits.data() + int64_t(i) * V);
  }
}

}  // namespace rat::serve
