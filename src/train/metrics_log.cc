#include "train/metrics_log.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "util/timer.h"

namespace rat {

void LogWindow::restart() { *this = LogWindow{now_seconds()}; }

MetricsLog::MetricsLog(std::filesystem::path run, bool lead, bool quiet, bool json,
                       int64_t total_steps, std::function<void(const std::string&)> on_record)
    : run_(std::move(run)),
      lead_(lead),
      quiet_(quiet),
      json_(json),
      total_(total_steps),
      start_s_(now_seconds()),
      on_record_(std::move(on_record)),
      bar_("train", total_steps, "steps", lead) {}

void MetricsLog::begin(int64_t first_step) {
  if (lead_) file_.open(run_ / "metrics.jsonl", std::ios::app);
  if (first_step > 0) {
    const std::string record = write({{"resumed_at", first_step}});
    if (json_ && !quiet_ && lead_) std::printf("%s\n", record.c_str());
  }
  bar_.update(first_step);
}

std::string MetricsLog::write(nlohmann::json j) {
  const double unix_s =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  j["time"] = std::round(unix_s * 1e3) / 1e3;  // ms: enough to order and space records
  j["elapsed"] = std::round((now_seconds() - start_s_) * 1e3) / 1e3;
  std::string record = j.dump();
  if (lead_) {
    file_ << record << "\n" << std::flush;
    if (on_record_) on_record_(record);
  }
  return record;
}

void MetricsLog::step(const StepRecord& r) {
  nlohmann::json j = {{"step", r.step},
                      {"loss", r.loss},
                      {"lr", r.lr},
                      {"grad_norm", r.grad_norm},
                      {"tokens_per_s", r.tokens_per_s},
                      {"mfu", r.mfu},
                      {"data_fraction", r.data_fraction}};
  if (r.distributed) {
    j["comm_wait_s"] = r.comm_wait_s;
    j["comm_fraction"] = r.comm_fraction;
  }
  const std::string record = write(std::move(j));
  if (quiet_ || !lead_) return;
  bar_.finish();
  if (json_)
    std::printf("%s\n", record.c_str());
  else
    std::printf("step %lld/%lld loss %.4f lr %.3g grad_norm %.3f %.0f tok/s MFU %.1f%%\n",
                (long long)r.step, (long long)total_, r.loss, r.lr, r.grad_norm, r.tokens_per_s,
                100.0 * r.mfu);
  std::fflush(stdout);
}

void MetricsLog::validation(int64_t step, const EvalResult& r) {
  nlohmann::json j = {
      {"step", step}, {"val_loss", r.loss}, {"val_ppl", r.ppl}, {"val_tokens", r.tokens}};
  const std::string record = write(std::move(j));
  if (quiet_ || !lead_) return;
  bar_.finish();
  if (json_)
    std::printf("%s\n", record.c_str());
  else
    std::printf("step %lld: val_loss %.4f val_ppl %.2f (%lld tokens)\n", (long long)step, r.loss,
                r.ppl, (long long)r.tokens);
  std::fflush(stdout);
}

void MetricsLog::progress(int64_t step, double loss) {
  char extra[64];
  std::snprintf(extra, sizeof extra, "loss %.3f", loss);
  bar_.update(step, extra);
}

}  // namespace rat
