#include "train/trainer.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "kernels/ceilings.h"
#include "kernels/gemm.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/sampler.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/timer.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop{false};

// Model FLOPs of one token's forward + backward: 6 per weight of every matrix
// product (projections, FFN, head) plus the softmax products at this T.
double flops_per_token(const Model& m, int64_t T) {
  const ModelConfig& c = m.config();
  double f = 6.0 * m.matmul_weights();
  for (const MixerConfig& mc : c.layers) {
    // Average keys scored per query.
    f += 3.0 * 4.0 * double(c.d_model) * keys_scored_total(mc, T) / double(T);
  }
  return f;
}

struct TrainState {
  int64_t step = 0;  // optimiser steps completed
  int world = 1;
};

void write_text_atomic(const fs::path& p, const std::string& text) {
  fs::path tmp = p;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw Error(tmp.string() + ": write failed (disk full or not writable?)");
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) throw Error(p.string() + ": cannot rename into place: " + ec.message());
}

// Checkpoint = a model directory plus optimiser moments and trainer state,
// written under a temporary name and renamed; `latest` is then repointed.
// A failure at any point leaves the previous checkpoint and `latest` intact.
std::string save_checkpoint(const fs::path& run, Model& model, Optimizer& opt,
                            const TrainState& st, const std::string& tokenizer) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", (long long)st.step);
  const fs::path ckdir = run / "checkpoints";
  const fs::path final_dir = ckdir / name;
  fs::path tmp = final_dir;
  tmp += ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp);
    save_model_dir(model, tmp.string());
    std::vector<TensorToWrite> ts;
    for (const ParamSpec& s : model.layout().specs()) {
      ts.push_back({"exp_avg." + s.name, s.shape, opt.exp_avg().data() + s.offset});
      ts.push_back({"exp_avg_sq." + s.name, s.shape, opt.exp_avg_sq().data() + s.offset});
    }
    write_safetensors((tmp / "optimizer.safetensors").string(), ts, DType::kF32);
    nlohmann::json j = {{"step", st.step}, {"optimizer_steps", opt.steps()}, {"world", st.world}};
    write_text_atomic(tmp / "trainer_state.json", j.dump(2) + "\n");
    if (!tokenizer.empty() && fs::exists(tokenizer))
      fs::copy_file(tokenizer, tmp / "tokenizer.model", fs::copy_options::overwrite_existing);
    fs::remove_all(final_dir, ec);
    fs::rename(tmp, final_dir);
    const fs::path link_tmp = run / "latest.tmp";
    fs::remove(link_tmp, ec);
    fs::create_directory_symlink(fs::path("checkpoints") / name, link_tmp);
    fs::rename(link_tmp, run / "latest");
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw Error(run.string() + ": saving checkpoint failed (" + e.code().message() +
                "); the previous checkpoint is unchanged");
  } catch (const Error& e) {
    fs::remove_all(tmp, ec);
    throw Error(run.string() + ": saving checkpoint " + name + " failed: " + e.what() +
                "; the previous checkpoint is unchanged");
  }
  // Keep the two newest checkpoints.
  std::vector<fs::path> old;
  for (const auto& d : fs::directory_iterator(ckdir))
    if (d.is_directory() && d.path().extension() != ".tmp") old.push_back(d.path());
  std::sort(old.begin(), old.end());
  for (size_t i = 0; i + 2 < old.size(); ++i) fs::remove_all(old[i], ec);
  return (run / "latest").string();
}

void load_checkpoint(const fs::path& dir, Model& model, Optimizer& opt, TrainState& st) {
  SafetensorsReader w((dir / "model.safetensors").string());
  for (const ParamSpec& s : model.layout().specs())
    w.read_f32(s.name, s.shape, model.params() + s.offset);
  SafetensorsReader o((dir / "optimizer.safetensors").string());
  for (const ParamSpec& s : model.layout().specs()) {
    o.read_f32("exp_avg." + s.name, s.shape, opt.exp_avg().data() + s.offset);
    o.read_f32("exp_avg_sq." + s.name, s.shape, opt.exp_avg_sq().data() + s.offset);
  }
  std::ifstream f(dir / "trainer_state.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception&) {
    throw Error((dir / "trainer_state.json").string() + ": unreadable trainer state");
  }
  const int world = j.value("world", 1);
  if (world != st.world)
    throw Error((dir / "trainer_state.json").string() + ": checkpoint was written by " +
                std::to_string(world) + " ranks but this run has " + std::to_string(st.world) +
                "; resume with the same number of ranks");
  st.step = j.at("step").get<int64_t>();
  opt.set_steps(j.at("optimizer_steps").get<int64_t>());
}

}  // namespace

void request_stop() { g_stop = true; }

TrainSummary train(const Experiment& e, const TrainOptions& opt) {
  const fs::path run = opt.run_dir.empty() ? fs::path(e.save_dir) : fs::path(opt.run_dir);
  // Under MPI every rank trains; only rank 0 (`lead`) writes the run directory.
  const World w = world();
  const bool lead = w.rank == 0;
  std::error_code ec;
  if (lead) fs::create_directories(run, ec);
  if (lead && (ec || !fs::is_directory(run)))
    throw Error(run.string() + ": cannot create the run directory" +
                (ec ? " (" + ec.message() + ")" : ""));
  if (lead) {
    YAML::Emitter out;
    out << e.resolved;
    write_text_atomic(run / "config.yaml", std::string(out.c_str()) + "\n");
  }

  std::unique_ptr<Model> model;
  if (!e.pretrained_path.empty()) {
    model = load_model_dir(e.pretrained_path);
  } else {
    model = std::make_unique<Model>(e.model);
    model->init(e.seed);
  }
  const ModelConfig& cfg = model->config();
  const Precision prec = e.dtype == "bfloat16" ? Precision::kBF16 : Precision::kF32;
  model->set_precision(prec);

  Sampler sampler(e.train, cfg, e.batch_size, e.global_batch_size, w.rank, w.size, e.seed);
  std::unique_ptr<TokenFile> val;
  if (!e.val.tokenized_file_path.empty()) {
    val = std::make_unique<TokenFile>(e.val.tokenized_file_path, int(cfg.num_bytes));
    val->check_vocab(cfg.vocab_size);
  }
  const std::string data_path =
      e.train.sft() ? e.train.tokenized_input_path : e.train.tokenized_file_path;
  const std::string tokenizer = (fs::path(data_path).parent_path() / "tokenizer.model").string();

  const int64_t total = e.max_steps > 0 ? e.max_steps : e.max_epoch * sampler.steps_per_epoch();
  const int64_t accum = sampler.accumulation(), B = e.batch_size, T = cfg.seq_len;
  const int64_t n = model->layout().total();
  OptimConfig oc{e.optimizer, e.lr, e.weight_decay, e.beta1, e.beta2, e.eps, e.scheduler,
                 e.warmup_iter, e.eta_min};
  Optimizer optim(oc, n);
  TrainState st;
  st.world = w.size;
  if (lead && e.load_checkpoint && fs::exists(run / "latest")) {
    load_checkpoint(fs::canonical(run / "latest"), *model, optim, st);
    std::printf("resumed from %s at step %lld\n", fs::canonical(run / "latest").c_str(),
                (long long)st.step);
  }
  set_comm_failure_hint("the last checkpoint is " + (run / "latest").string() +
                        "; resume with the same number of ranks and trainer.load_checkpoint=true");
  if (w.size > 1) {
    // Every rank starts from rank 0's state, whether fresh or resumed (the
    // checkpoint need only be readable on rank 0's machine).
    int64_t counts[2] = {st.step, optim.steps()};
    broadcast(counts, 2);
    st.step = counts[0], optim.set_steps(counts[1]);
    broadcast(model->params(), n);
    broadcast(optim.exp_avg().data(), n);
    broadcast(optim.exp_avg_sq().data(), n);
  }
  GradReducer reducer(model->grads(), n, std::max<int64_t>(1, int64_t(opt.bucket_mb * 262144.0)));
  const GradsReadyFn on_grads = [&](int64_t b, int64_t en) { reducer.ready(b, en); };
  const int64_t first_step = st.step;
  const int64_t save_every =
      e.save_checkpoint ? std::max<int64_t>(1, int64_t(e.save_interval * double(total))) : 0;
  const int64_t eval_every = e.eval_interval > 0 ? e.eval_interval
                             : e.eval_when_log  ? e.log_interval
                                                : 0;
  // Every rank's GEMM ceiling, assumed equal: the job's is w.size times one.
  const double gemm_rate = measure_gemm_rate(1024, prec, 3) * 1e9 * double(w.size);
  const double fpt = flops_per_token(*model, T);
  if (lead && !opt.quiet && !opt.json) {
    // What the run is, before the first step: size, work per step, and the
    // ceiling MFU is measured against (taken now, so a loaded machine shows here).
    std::printf("model: %.2fM parameters, %lld layers, d_model %lld; %lld steps of %lld x %lld "
                "tokens (micro-batch %lld x %lld accumulation x %d ranks), %s\n",
                double(model->num_params()) / 1e6, (long long)cfg.num_layers,
                (long long)cfg.d_model, (long long)total, (long long)e.global_batch_size,
                (long long)T, (long long)B, (long long)accum, w.size, e.dtype.c_str());
    std::printf("MFU reference: %.1f GFLOP/s GEMM (%s, measured now), %.3g FLOPs per token\n",
                gemm_rate / 1e9, prec == Precision::kBF16 ? "bf16" : "f32", fpt);
    std::fflush(stdout);
  }

  std::ofstream metrics;
  if (lead) metrics.open(run / "metrics.jsonl", std::ios::app);
  std::vector<int32_t> ids(size_t(B * T)), labels(size_t(B * T));
  TrainSummary sum;
  Progress bar("train", total, "steps", lead);
  bar.update(st.step);
  double t_log = now_seconds(), data_time = 0, comm_time = 0;
  int64_t steps_since_log = 0;
  int64_t tokens_since_log = 0;

  auto run_validation = [&](int64_t step) {
    if (!val) return;
    const int64_t nval = val->num_samples(T);
    const int64_t cnt = e.val_samples >= 0 ? std::min(nval, e.val_samples) : nval;
    if (cnt == 0) return;  // data.val_samples: 0 turns validation off (same on every rank)
    // Each rank scores its share of the samples; NLL and counts are summed.
    const int64_t first = cnt * w.rank / w.size, mine = cnt * (w.rank + 1) / w.size - first;
    EvalResult r = evaluate(*model, *val, T, B, first, mine);
    double tot[3] = {r.loss * double(r.tokens), double(r.tokens), double(r.samples)};
    allreduce_sum(tot, 3);
    r.tokens = int64_t(tot[1]), r.samples = int64_t(tot[2]);
    r.loss = r.tokens ? tot[0] / tot[1] : 0.0, r.ppl = std::exp(r.loss);
    sum.val_loss = r.loss, sum.val_ppl = r.ppl;
    if (!lead) return;
    nlohmann::json j = {{"step", step}, {"val_loss", r.loss}, {"val_ppl", r.ppl},
                        {"val_tokens", r.tokens}};
    metrics << j.dump() << "\n" << std::flush;
    if (!opt.quiet) {
      bar.finish();
      std::printf("step %lld: val_loss %.4f val_ppl %.2f (%lld tokens)\n", (long long)step,
                  r.loss, r.ppl, (long long)r.tokens);
      std::fflush(stdout);
    }
  };

  for (; st.step < total; ++st.step) {
    const int64_t s = st.step;
    maybe_abort_for_test(s, model->params());
    model->zero_grads();
    double step_loss = 0;
    for (int64_t m = 0; m < accum; ++m) {
      double t0 = now_seconds();
      sampler.micro_batch(s, m, ids.data(), labels.data());
      data_time += now_seconds() - t0;
      int64_t cnt = 0;
      for (int32_t y : labels) cnt += y != cfg.ignore_index;
      // Each micro-batch's mean over all accum x ranks micro-batches of the
      // step: the all-reduce's sum is then the average (as DDP's).
      const int64_t micro_total = accum * w.size;
      const float scale = cnt ? 1.0f / (float(cnt) * float(micro_total)) : 0.f;
      // Only the micro-step that ends the optimiser step reduces (DDP no_sync).
      const bool sync = m + 1 == accum && w.size > 1 && opt.overlap;
      CeResult r = model->forward_backward(ids.data(), labels.data(), B, T, true, scale,
                                           sync ? on_grads : GradsReadyFn());
      step_loss += cnt ? r.loss_sum / double(cnt) / double(micro_total) : 0.0;
      tokens_since_log += B * T * w.size;
    }
    bool stop_requested = g_stop.load();
    if (w.size > 1) {
      const double t0 = now_seconds();
      opt.overlap ? reducer.wait() : reducer.reduce_all();
      // The logged loss is the step's over all ranks; a stop asked of any rank
      // (SIGUSR1, which mpirun forwards to all) stops them all at the same step.
      double v[2] = {step_loss, stop_requested ? 1.0 : 0.0};
      allreduce_sum(v, 2);
      step_loss = v[0], stop_requested = v[1] > 0;
      comm_time += now_seconds() - t0;
    }
    const double norm = global_norm(model->grads(), n);
    // Stop before the update: nothing non-finite reaches the weights or a
    // checkpoint, so `latest` stays the last good one. Steps count from 1 as
    // in metrics.jsonl.
    if (!std::isfinite(step_loss) || !std::isfinite(norm)) {
      char what[128];
      std::snprintf(what, sizeof what, "non-finite training %s at step %lld (loss %g, grad_norm %g)",
                    std::isfinite(step_loss) ? "gradient" : "loss", (long long)(s + 1), step_loss,
                    norm);
      throw Error(std::string(what) + "; stopped before updating; the last good checkpoint is " +
                  (fs::exists(run / "latest") ? fs::canonical(run / "latest").string()
                                              : std::string("(none saved yet)")));
    }
    if (e.gradient_clipping > 0) clip_by_norm(model->grads(), n, norm, e.gradient_clipping);
    const double lr = lr_at(oc, s, total);
    optim.step(model->params(), model->grads(), lr);
    sum.last_loss = step_loss;
    ++steps_since_log;

    const bool last = st.step + 1 == total;
    if ((s + 1) % e.log_interval == 0 || last || s == 0) {
      const double el = now_seconds() - t_log;
      const double tps = double(tokens_since_log) / el;
      const double mfu = tps * fpt / gemm_rate;
      nlohmann::json j = {{"step", s + 1},         {"loss", step_loss},  {"lr", lr},
                          {"grad_norm", norm},     {"tokens_per_s", tps}, {"mfu", mfu},
                          {"data_fraction", data_time / el}};
      if (w.size > 1) {
        // Communication not hidden behind backward: per step, and its share of the time.
        j["comm_wait_s"] = comm_time / double(steps_since_log);
        j["comm_fraction"] = comm_time / el;
      }
      if (lead) metrics << j.dump() << "\n" << std::flush;
      sum.tokens_per_s = tps, sum.mfu = mfu;
      if (!opt.quiet && lead) {
        bar.finish();
        if (opt.json)
          std::printf("%s\n", j.dump().c_str());
        else
          std::printf("step %lld/%lld loss %.4f lr %.3g grad_norm %.3f %.0f tok/s MFU %.1f%%\n",
                      (long long)(s + 1), (long long)total, step_loss, lr, norm, tps,
                      100.0 * mfu);
        std::fflush(stdout);
      }
      t_log = now_seconds(), tokens_since_log = 0, data_time = 0, comm_time = 0;
      steps_since_log = 0;
    }
    char extra[64];
    std::snprintf(extra, sizeof extra, "loss %.3f", step_loss);
    bar.update(s + 1, extra);
    if (eval_every > 0 && ((s + 1) % eval_every == 0)) run_validation(s + 1);
    const bool stop = stop_requested || (opt.stop_after > 0 && st.step + 1 - first_step >= opt.stop_after);
    if (save_every > 0 && ((s + 1) % save_every == 0 || last || stop)) {
      if (!same_as_rank0(model->params(), n)) {
        if (lead)
          std::fprintf(stderr, "warning: after step %lld the ranks' parameters differ from rank "
                               "0's (ranks computing differently, e.g. binaries built for "
                               "different CPUs?); re-synchronised from rank 0\n",
                       (long long)(s + 1));
        broadcast(model->params(), n);
        broadcast(optim.exp_avg().data(), n);
        broadcast(optim.exp_avg_sq().data(), n);
      }
      TrainState cur = st;
      cur.step = s + 1;
      if (lead) sum.latest_dir = save_checkpoint(run, *model, optim, cur, tokenizer);
    }
    if (stop) {
      sum.interrupted = true;
      ++st.step;
      break;
    }
  }
  bar.finish();
  sum.steps_done = st.step;
  if (!sum.interrupted && (eval_every == 0 || total % eval_every != 0)) run_validation(st.step);
  return sum;
}

}  // namespace rat
