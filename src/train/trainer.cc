#include "train/trainer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "kernels/ceilings.h"
#include "kernels/gemm.h"
#include "model/checkpoint.h"
#include "model/enum_names.h"
#include "model/mixer_kinds.h"
#include "model/model.h"
#include "train/checkpointing.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/run_dir.h"
#include "train/sampler.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/timer.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop{false};

// Model FLOPs of one token's forward + backward: 6 per weight of every matrix
// product (FFN, head) plus each mixer's count at this T (model/mixer_kinds.h).
double flops_per_token(const Model& m, int64_t T) {
  const ModelConfig& c = m.config();
  double f = 6.0 * m.matmul_weights();
  for (const MixerConfig& mc : c.layers)
    f += mixer_train_flops(c, mc, T) / double(T) - 6.0 * mixer_matmul_weights(c, mc);
  return f;
}

// Model FLOPs utilisation: the model FLOP/s achieved against the job's GEMM
// ceiling. Every rank's ceiling is taken as equal, so the job's is ranks
// times one, measured at the start (a loaded machine shows in the plan line).
struct MfuReference {
  double flops_per_token = 0, gemm_flops_per_s = 0;
  double mfu(double tokens_per_s) const {
    return tokens_per_s * flops_per_token / gemm_flops_per_s;
  }
};

MfuReference mfu_reference(const Model& m, int ranks) {
  return {flops_per_token(m, m.config().seq_len),
          measure_gemm_rate(1024, m.precision(), 3) * 1e9 * double(ranks)};
}

// The run directory (--run-dir, else trainer.save_dir) with config.yaml, the
// resolved experiment that reproduces the run. Only rank 0 (`lead`) writes it.
// A new run needs it empty (train/run_dir.h).
fs::path prepare_run_dir(const Experiment& e, const TrainOptions& opt, bool lead) {
  const fs::path run = opt.run_dir.empty() ? fs::path(e.save_dir) : fs::path(opt.run_dir);
  if (!lead) return run;
  std::error_code ec;
  claim_run_dir(run, e.load_checkpoint && fs::exists(run / "latest", ec), opt.overwrite);
  fs::create_directories(run, ec);
  if (ec || !fs::is_directory(run))
    throw Error(run.string() + ": cannot create the run directory" +
                (ec ? " (" + ec.message() + ")" : ""));
  YAML::Emitter out;
  out << e.resolved;
  write_file_atomic((run / "config.yaml").string(), std::string(out.c_str()) + "\n");
  return run;
}

// The rank count whose sample order this run follows (TrainState::data_world):
// its own, or on a resume the checkpoint's. A resume on another rank count
// reads the same micro-batches, shared out anew (Trainer::forward_backward),
// which needs the step's micro-batches (global batch / micro-batch) to divide
// among this run's ranks.
int sample_world(const Experiment& e, const fs::path& run, bool lead, const World& w) {
  int64_t dw = w.size;
  if (lead && e.load_checkpoint && fs::exists(run / "latest"))
    dw = checkpoint_sample_world(fs::canonical(run / "latest"));
  if (w.size > 1) broadcast(&dw, 1);
  if (dw != w.size && e.global_batch_size % (e.batch_size * w.size) != 0)
    throw Error((run / "latest").string() + ": checkpoint's run reads its samples as " +
                std::to_string(dw) + " ranks do, but this run has " + std::to_string(w.size) +
                ", which do not divide its " + std::to_string(e.global_batch_size / e.batch_size) +
                " micro-batches per step (data.global_batch_size / data.batch_size); resume on " +
                "a rank count that divides them");
  return int(dw);
}

// The model to train, built from the experiment's config; with
// trainer.pretrained_path the checkpoint only brings weights, by name and
// shape-checked, as in the authors' trainer: its own config.yaml is not read,
// so data.seq_len, batch and the rest stay the experiment's.
std::unique_ptr<Model> make_model(const Experiment& e) {
  auto model = std::make_unique<Model>(e.model);
  if (!e.pretrained_path.empty())
    load_weights_by_name(*model, weights_file_of(e.pretrained_path), "the experiment's model");
  else
    model->init(e.seed);
  model->set_precision(e.precision);
  model->set_recompute(e.recompute);
  return model;
}

OptimConfig optim_config(const Experiment& e) {
  return {.name = e.optimizer,
          .lr = e.lr,
          .weight_decay = e.weight_decay,
          .beta1 = e.beta1,
          .beta2 = e.beta2,
          .eps = e.eps,
          .alpha = e.alpha,
          .momentum = e.momentum,
          .centered = e.centered,
          .scheduler = e.scheduler,
          .warmup_iter = e.warmup_iter,
          .eta_min = e.eta_min,
          .step_size = e.step_size,
          .gamma = e.gamma};
}

// The validation data, if the experiment has any: a token file (lm_*), or an
// inputs and a labels file (sft_*) of equal length.
struct ValData {
  std::unique_ptr<TokenFile> inputs, labels;
  explicit operator bool() const { return inputs != nullptr; }
  int64_t num_samples(int64_t T) const {
    return labels ? inputs->num_tokens() / T : inputs->num_samples(T);
  }
};

ValData open_validation(const DataSplit& val, const ModelConfig& cfg) {
  ValData v;
  const std::string& in = val.sft() ? val.tokenized_input_path : val.tokenized_file_path;
  if (in.empty()) return v;
  v.inputs = std::make_unique<TokenFile>(in, int(cfg.num_bytes));
  v.inputs->check_vocab(cfg.vocab_size);
  if (val.sft()) {
    if (val.tokenized_label_path.empty())
      throw Error(
          "data.val.tokenized_label_path: missing, expected the labels file of the SFT "
          "validation split " +
          in);
    v.labels = std::make_unique<TokenFile>(val.tokenized_label_path, int(cfg.num_bytes));
    if (v.labels->num_tokens() != v.inputs->num_tokens())
      throw Error(val.tokenized_label_path + ": " + std::to_string(v.labels->num_tokens()) +
                  " labels but " + in + " has " + std::to_string(v.inputs->num_tokens()) +
                  " inputs; SFT files must be of equal length");
  }
  return v;
}

// The tokenizer that sits beside the training data, copied into checkpoints
// so that they generate text.
std::string tokenizer_beside_data(const DataSplit& train) {
  const std::string data = train.sft() ? train.tokenized_input_path : train.tokenized_file_path;
  return (fs::path(data).parent_path() / "tokenizer.model").string();
}

// One optimiser step's figures, filled in as the loop's steps run.
struct Step {
  double loss = 0;  // mean over the global batch (after reduce)
  double grad_norm = 0, lr = 0;
  bool stop_requested = false;  // SIGINT or SIGUSR1 on any rank (after reduce)
};

// What the steps of one run share: model, data, optimiser, counters. Each
// public method is one named step of the loop in train().
class Trainer {
 public:
  Trainer(const Experiment& e, const TrainOptions& opt);
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  int64_t steps_done() const { return st_.step; }
  int64_t total_steps() const { return total_; }

  Step forward_backward();
  void reduce(Step& step);
  double grad_norm() const;
  void stop_if_non_finite(const Step& step) const;
  void clip(const Step& step);
  void update(Step& step);
  void log(const Step& step);
  bool validation_due() const { return eval_every_ > 0 && st_.step % eval_every_ == 0; }
  void validate();
  bool stop_after_reached() const;
  bool checkpoint_due(bool stop) const;
  void checkpoint();
  TrainSummary finish(bool interrupted);

 private:
  void resume_or_start();
  void broadcast_state();
  void print_plan() const;

  const Experiment& e_;
  const TrainOptions& opt_;
  const World w_;
  const bool lead_;  // rank 0: the one that writes and prints
  const fs::path run_;
  const int data_world_;  // the sample order followed (sample_world)
  std::unique_ptr<Model> model_;
  Sampler sampler_;
  ValData val_;
  const std::string tokenizer_;
  const int64_t total_, accum_, B_, T_, n_;
  // ZeRO-1 (trainer.fsdp.sharding_strategy: ZERO1) over more than one rank:
  // this rank keeps and updates the optimiser state of its shard of the flat
  // parameters only, then the updated shards are all-gathered. Otherwise the
  // shard is everything. SHARD_GRAD_OP (grads_sharded_) also reduce-scatters
  // the gradients, every micro-step, into the shard (GradReducer with
  // scatter); the rest of the gradient buffer stays zero and released.
  const bool sharded_, grads_sharded_;
  const Shard shard_;
  const OptimConfig oc_;
  Optimizer optim_;
  TrainState st_;
  int64_t first_step_ = 0;  // where this process started (--stop-after counts from here)
  GradReducer reducer_;
  const GradsReadyFn on_grads_;
  const int64_t save_every_, eval_every_;
  MfuReference mfu_;
  MetricsLog log_;
  LogWindow window_;
  std::vector<int32_t> ids_, labels_;
  TrainSummary sum_;
};

// Members are built in declaration order, each from those above it.
Trainer::Trainer(const Experiment& e, const TrainOptions& opt)
    : e_(e),
      opt_(opt),
      w_(world()),
      lead_(w_.rank == 0),
      run_(prepare_run_dir(e, opt, lead_)),
      data_world_(sample_world(e, run_, lead_, w_)),
      model_(make_model(e)),
      // Rank 0 of data_world_: forward_backward names the rank of each micro-batch.
      sampler_(e.train, model_->config(), e.batch_size, e.global_batch_size, 0, data_world_,
               e.seed),
      val_(open_validation(e.val, model_->config())),
      tokenizer_(tokenizer_beside_data(e.train)),
      total_(e.max_steps > 0 ? e.max_steps : e.max_epoch * sampler_.steps_per_epoch()),
      accum_(e.global_batch_size / (e.batch_size * w_.size)),
      B_(e.batch_size),
      T_(model_->config().seq_len),
      n_(model_->layout().total()),
      sharded_(e.shard_optimizer && w_.size > 1),
      grads_sharded_(e.shard_gradients && w_.size > 1),
      shard_(sharded_ ? shard_of(n_, w_.rank, w_.size) : Shard{0, n_}),
      oc_(optim_config(e)),
      optim_(oc_, shard_.size()),
      // Buckets in floats: 2^20 / 4 per MiB.
      reducer_(model_->grads(), n_, std::max<int64_t>(1, int64_t(opt.bucket_mb * 262144.0)),
               grads_sharded_),
      on_grads_([this](int64_t b, int64_t en) { reducer_.ready(b, en); }),
      save_every_(
          e.save_checkpoint ? std::max<int64_t>(1, int64_t(e.save_interval * double(total_))) : 0),
      eval_every_(e.eval_interval > 0 ? e.eval_interval
                  : e.eval_when_log   ? e.log_interval
                                      : 0),
      log_(run_, lead_, opt.quiet, opt.json, total_, opt.on_record),
      ids_(size_t(B_ * T_)),
      labels_(size_t(B_ * T_)) {
  if (grads_sharded_) {  // the other ranks' slices: zeros, and no memory until written
    // Each backward writes them again into fresh pages: in 2 MiB pages that is
    // one fault per 2 MiB, not 512 (util/huge_pages.h; the buffer is calloc'd
    // and untouched until now).
    advise_huge_pages(model_->grads(), size_t(n_) * sizeof(float));
    zero_and_release(model_->grads(), shard_.begin);
    zero_and_release(model_->grads() + shard_.end, n_ - shard_.end);
  }
  resume_or_start();
  mfu_ = mfu_reference(*model_, w_.size);
  print_plan();
  log_.begin(st_.step);
  window_.restart();
}

// Rank 0 resumes from run/latest when trainer.load_checkpoint asks and one
// exists; then every rank takes rank 0's state, fresh or resumed (the
// checkpoint need only be readable on rank 0's machine).
void Trainer::resume_or_start() {
  st_.world = w_.size;
  st_.data_world = data_world_;
  // Sharded, rank 0 reads the checkpoint's whole optimiser state (as the
  // authors' FSDP trainer loads a full state dict) and scatters it.
  std::unique_ptr<Optimizer> whole;
  int64_t resumed = 0;
  if (lead_ && e_.load_checkpoint && fs::exists(run_ / "latest")) {
    const fs::path dir = fs::canonical(run_ / "latest");
    if (sharded_) whole = std::make_unique<Optimizer>(oc_, n_);
    load_checkpoint(dir, *model_, whole ? *whole : optim_, st_);
    if (whole) optim_.set_steps(whole->steps());
    resumed = 1;
    // Even with --quiet (scripts check it); with --json on stderr: stdout holds JSON only.
    std::fprintf(opt_.json ? stderr : stdout, "resumed from %s at step %lld\n", dir.c_str(),
                 (long long)st_.step);
    if (data_world_ != w_.size)
      std::fprintf(opt_.json ? stderr : stdout,
                   "the checkpoint follows the sample order of %d ranks, this run has %d: each "
                   "step reads the same micro-batches, shared out anew\n",
                   data_world_, w_.size);
  }
  set_comm_failure_hint("the last checkpoint is " + (run_ / "latest").string() +
                        "; resume with trainer.load_checkpoint=true");
  if (w_.size > 1) {
    int64_t counts[3] = {st_.step, optim_.steps(), resumed};
    broadcast(counts, 3);
    st_.step = counts[0], optim_.set_steps(counts[1]);
    broadcast_state();
    if (sharded_ && counts[2])  // a fresh start's state is zeros everywhere
      for (size_t i = 0; i < optim_.state().size(); ++i)
        scatter_shards(whole ? whole->state()[i].data.data() : nullptr,
                       optim_.state()[i].data.data(), n_);
  }
  first_step_ = st_.step;
}

// Rank 0's weights and optimiser moments to every rank (sharded, each rank's
// moments are the only copy of its shard: nothing to copy).
void Trainer::broadcast_state() {
  broadcast(model_->params(), n_);
  if (!sharded_)
    for (OptimState& b : optim_.state()) broadcast(b.data.data(), n_);
}

// What the run is, before the first step: size, work per step, and the
// ceiling MFU is measured against.
void Trainer::print_plan() const {
  if (!lead_ || opt_.quiet || opt_.json) return;
  const ModelConfig& cfg = model_->config();
  std::printf(
      "model: %.2fM parameters, %lld layers, d_model %lld; %lld steps of %lld x %lld "
      "tokens (micro-batch %lld x %lld accumulation x %d ranks), %s\n",
      double(model_->num_params()) / 1e6, (long long)cfg.num_layers, (long long)cfg.d_model,
      (long long)total_, (long long)e_.global_batch_size, (long long)T_, (long long)B_,
      (long long)accum_, w_.size, precision_name(model_->precision()));
  if (sharded_) {
    const double buffers = double(const_cast<Optimizer&>(optim_).state().size());
    std::printf(
        "optimizer state sharded over %d ranks (%s): %.4g MiB on rank 0, %.4g MiB "
        "unsharded\n",
        w_.size, grads_sharded_ ? "SHARD_GRAD_OP" : "ZeRO-1",
        buffers * double(shard_.size()) * 4 / 1048576, buffers * double(n_) * 4 / 1048576);
  }
  if (grads_sharded_)
    std::printf(
        "gradients reduce-scattered every micro-step (%lld per step): %.4g MiB kept on rank 0, "
        "%.4g MiB unsharded\n",
        (long long)accum_, double(reducer_.kept_bytes()) / 1048576, double(n_) * 4 / 1048576);
  std::printf("MFU reference: %.1f GFLOP/s GEMM (%s, measured now), %.3g FLOPs per token\n",
              mfu_.gemm_flops_per_s / 1e9, model_->precision() == Precision::kBF16 ? "bf16" : "f32",
              mfu_.flops_per_token);
  std::fflush(stdout);
}

// The step's micro-batches, forward and backward, gradients accumulated.
// Returns this rank's share of the step's loss.
Step Trainer::forward_backward() {
  const int64_t s = st_.step;
  maybe_abort_for_test(s, model_->params());
  if (grads_sharded_)  // the rest is zeros already (released after each reduce-scatter)
    std::fill(model_->grads() + shard_.begin, model_->grads() + shard_.end, 0.f);
  else
    model_->zero_grads();
  Step step;
  // Each micro-batch's mean over all accum x ranks micro-batches of the
  // step: the all-reduce's sum is then the average (as DDP's).
  const int64_t micro_total = accum_ * w_.size;
  const int64_t ignore = model_->config().ignore_index;
  // Micro-batch k of the step's accum x ranks is micro-batch k % a of rank
  // k / a in the sample order followed (a: its accumulation); the same as
  // (rank, m) unless resumed on another rank count.
  const int64_t data_accum = sampler_.accumulation();
  for (int64_t m = 0; m < accum_; ++m) {
    const double t0 = now_seconds();
    const int64_t k = w_.rank * accum_ + m, dr = k / data_accum, dm = k % data_accum;
    sampler_.micro_batch_of(int(dr), s, dm, ids_.data(), labels_.data());
    window_.data_s += now_seconds() - t0;
    int64_t cnt = 0;
    for (int32_t y : labels_) cnt += y != ignore;
    const float scale = cnt ? 1.0f / (float(cnt) * float(micro_total)) : 0.f;
    // Only the micro-step that ends the optimiser step reduces (DDP no_sync),
    // except with sharded gradients: each micro-step's are reduce-scattered
    // into the shard, so no rank keeps a whole gradient between them.
    const bool sync = (m + 1 == accum_ || grads_sharded_) && w_.size > 1 && opt_.overlap;
    // Dropout masks numbered by (step, micro-batch, rank) of the sample order:
    // resumes draw the same.
    model_->set_dropout_stream(uint64_t(e_.seed),
                               uint64_t((s * data_accum + dm) * int64_t(data_world_) + dr));
    const CeResult r = model_->forward_backward(ids_.data(), labels_.data(), B_, T_, true, scale,
                                                sync ? on_grads_ : GradsReadyFn());
    if (grads_sharded_) {
      const double t1 = now_seconds();
      opt_.overlap ? reducer_.wait() : reducer_.reduce_all();
      window_.comm_s += now_seconds() - t1;
    }
    step.loss += cnt ? r.loss_sum / double(cnt) / double(micro_total) : 0.0;
    window_.tokens += B_ * T_ * w_.size;
  }
  step.stop_requested = g_stop.load();
  return step;
}

// Finishes the gradient all-reduce. The logged loss is the step's over all
// ranks; a stop asked of any rank (SIGUSR1, which mpirun forwards to all)
// stops them all at the same step.
void Trainer::reduce(Step& step) {
  if (w_.size == 1) return;
  const double t0 = now_seconds();
  if (!grads_sharded_) opt_.overlap ? reducer_.wait() : reducer_.reduce_all();
  double v[2] = {step.loss, step.stop_requested ? 1.0 : 0.0};
  allreduce_sum(v, 2);
  step.loss = v[0], step.stop_requested = v[1] > 0;
  window_.comm_s += now_seconds() - t0;
}

// Stops before the update: nothing non-finite reaches the weights or a
// checkpoint, so `latest` stays the last good one. Steps count from 1 as in
// metrics.jsonl.
void Trainer::stop_if_non_finite(const Step& step) const {
  if (std::isfinite(step.loss) && std::isfinite(step.grad_norm)) return;
  char what[128];
  std::snprintf(what, sizeof what, "non-finite training %s at step %lld (loss %g, grad_norm %g)",
                std::isfinite(step.loss) ? "gradient" : "loss", (long long)(st_.step + 1),
                step.loss, step.grad_norm);
  const std::string latest = latest_checkpoint(run_);
  throw Error(std::string(what) + "; stopped before updating; the last good checkpoint is " +
              (latest.empty() ? std::string("(none saved yet)") : latest));
}

// With sharded gradients each rank sums the squares of its shard; the ranks'
// sums are exchanged (slot r holds rank r's, the others add exact zeros) and
// added in rank order on every rank, so the norm, and the clipping, are the
// same everywhere and from run to run, whatever order messages arrive in.
// Not the bits of NO_SHARD's one-pass sum, but within rounding of it.
double Trainer::grad_norm() const {
  if (!grads_sharded_) return global_norm(model_->grads(), n_);
  std::vector<double> parts(size_t(w_.size), 0.0);
  parts[size_t(w_.rank)] = sum_squares(model_->grads() + shard_.begin, shard_.size());
  allreduce_sum(parts.data(), int64_t(parts.size()));
  double sum = 0;
  for (double p : parts) sum += p;
  return std::sqrt(sum);
}

void Trainer::clip(const Step& step) {
  if (e_.gradient_clipping > 0)
    clip_by_norm(model_->grads() + (grads_sharded_ ? shard_.begin : 0),
                 grads_sharded_ ? shard_.size() : n_, step.grad_norm, e_.gradient_clipping);
}

void Trainer::update(Step& step) {
  step.lr = lr_at(oc_, st_.step, total_);
  // Elementwise updates: a shard's are bit for bit those of the whole buffer.
  optim_.step(model_->params() + shard_.begin, model_->grads() + shard_.begin, step.lr);
  if (sharded_) {
    const double t0 = now_seconds();
    allgather_shards(model_->params(), n_);
    window_.comm_s += now_seconds() - t0;
  }
  ++st_.step;
  sum_.last_loss = step.loss;
}

// A record every log_interval steps, and at the first and the last step;
// the progress bar after every step.
void Trainer::log(const Step& step) {
  const int64_t done = st_.step;
  ++window_.steps;
  if (done % e_.log_interval == 0 || done == total_ || done == 1) {
    const double el = now_seconds() - window_.start_s;
    StepRecord r;
    r.step = done, r.loss = step.loss, r.lr = step.lr, r.grad_norm = step.grad_norm;
    r.tokens_per_s = double(window_.tokens) / el;
    r.mfu = mfu_.mfu(r.tokens_per_s);
    r.data_fraction = window_.data_s / el;
    r.distributed = w_.size > 1;
    r.comm_wait_s = window_.comm_s / double(window_.steps);
    r.comm_fraction = window_.comm_s / el;
    log_.step(r);
    sum_.tokens_per_s = r.tokens_per_s, sum_.mfu = r.mfu;
    window_.restart();
  }
  log_.progress(done, step.loss);
}

// Each rank scores its share of the validation samples; NLL and counts are summed.
void Trainer::validate() {
  if (!val_) return;
  const int64_t nval = val_.num_samples(T_);
  const int64_t cnt = e_.val_samples >= 0 ? std::min(nval, e_.val_samples) : nval;
  if (cnt == 0) return;  // data.val_samples: 0 turns validation off (same on every rank)
  const int64_t first = cnt * w_.rank / w_.size, mine = cnt * (w_.rank + 1) / w_.size - first;
  EvalResult r = val_.labels
                     ? evaluate_sft(*model_, *val_.inputs, *val_.labels, T_, B_, first, mine)
                     : evaluate(*model_, *val_.inputs, T_, B_, first, mine);
  double tot[3] = {r.loss * double(r.tokens), double(r.tokens), double(r.samples)};
  allreduce_sum(tot, 3);
  r.tokens = int64_t(tot[1]), r.samples = int64_t(tot[2]);
  r.loss = r.tokens ? tot[0] / tot[1] : 0.0, r.ppl = std::exp(r.loss);
  sum_.val_loss = r.loss, sum_.val_ppl = r.ppl;
  log_.validation(st_.step, r);
}

bool Trainer::stop_after_reached() const {
  return opt_.stop_after > 0 && st_.step - first_step_ >= opt_.stop_after;
}

// Every save_interval of the run, at its end, and when it stops early.
bool Trainer::checkpoint_due(bool stop) const {
  return save_every_ > 0 && (st_.step % save_every_ == 0 || st_.step == total_ || stop);
}

void Trainer::checkpoint() {
  if (!same_as_rank0(model_->params(), n_)) {
    if (lead_)
      std::fprintf(stderr,
                   "warning: after step %lld the ranks' parameters differ from rank "
                   "0's (ranks computing differently, e.g. binaries built for "
                   "different CPUs?); re-synchronised from rank 0\n",
                   (long long)st_.step);
    broadcast_state();
  }
  if (!sharded_) {
    if (lead_) sum_.latest_dir = save_checkpoint(run_, *model_, optim_, st_, tokenizer_);
    return;
  }
  // One model directory as unsharded runs write: rank 0 gathers the whole
  // optimiser state for the write (the authors' FSDP full state dict).
  std::unique_ptr<Optimizer> whole;
  if (lead_) {
    whole = std::make_unique<Optimizer>(oc_, n_);
    whole->set_steps(optim_.steps());
  }
  for (size_t i = 0; i < optim_.state().size(); ++i)
    gather_shards(optim_.state()[i].data.data(), whole ? whole->state()[i].data.data() : nullptr,
                  n_);
  if (lead_) sum_.latest_dir = save_checkpoint(run_, *model_, *whole, st_, tokenizer_);
}

// The closing validation (unless the last step just ran one) and the summary.
TrainSummary Trainer::finish(bool interrupted) {
  log_.finish();
  sum_.steps_done = st_.step;
  sum_.interrupted = interrupted;
  if (!interrupted && (eval_every_ == 0 || total_ % eval_every_ != 0)) validate();
  return sum_;
}

}  // namespace

void request_stop() { g_stop = true; }

TrainSummary train(const Experiment& e, const TrainOptions& opt) {
  Trainer t(e, opt);  // run directory, model, data, optimiser; resumed if asked
  bool stop = false;
  while (!stop && t.steps_done() < t.total_steps()) {
    Step step = t.forward_backward();
    t.reduce(step);
    step.grad_norm = t.grad_norm();
    t.stop_if_non_finite(step);
    t.clip(step);
    t.update(step);
    t.log(step);
    if (t.validation_due()) t.validate();
    stop = step.stop_requested || t.stop_after_reached();
    if (t.checkpoint_due(stop)) t.checkpoint();
  }
  return t.finish(stop);
}

}  // namespace rat
