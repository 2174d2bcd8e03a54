// `rat eval --task gen|niah FILE`: greedy answers to the file's prompts
// (eval/gen_task.h), scored per line and on average; gen with a text metric
// (eval/metrics.h), niah with RULER's string_match_all, reported per length
// and per (length, depth), and optionally drawn (eval/heatmap.h).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "cli/eval_tasks.h"
#include "data/tokenizer.h"
#include "eval/gen_task.h"
#include "eval/heatmap.h"
#include "eval/metrics.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/gnuplot.h"
#include "util/progress.h"
#include "util/timer.h"

namespace rat::cli {

namespace {

struct Mean {
  double sum = 0;
  int64_t n = 0;
  void add(double x) { sum += x, ++n; }
  double value() const { return n ? sum / double(n) : 0.0; }
};

}  // namespace

int run_eval_gen(const EvalOpts& o) {
  const bool niah = o.task == "niah";
  if (niah && !o.metric.empty())
    throw Error(
        "--metric: niah is scored with RULER's string_match_all; --metric is for --task gen");
  if (!niah && !o.heatmap.empty()) throw Error("--heatmap is for --task niah");
  const Metric metric = parse_metric(o.metric.empty() ? "qa_f1" : o.metric);
  if (o.max_prompt_tokens == 0 || o.max_prompt_tokens < -1)
    throw Error("--max-prompt-tokens " + std::to_string(o.max_prompt_tokens) +
                ": expected a token count >= 1");
  if (o.max_new_tokens < -1)
    throw Error("--max-new-tokens " + std::to_string(o.max_new_tokens) + ": expected a count >= 0");
  if (o.batch_size <= 0) throw Error("--batch-size must be positive");
  // Everything that can fail fast does so before the model is loaded.
  const std::vector<GenCase> cases = read_gen_cases(o.file, o.limit, niah);
  if (!o.heatmap.empty()) require_gnuplot(o.heatmap);

  auto model = load_model_dir(o.model);
  model->set_frozen_weight_cache(true);  // weights are fixed from here on
  model->set_precision(parse_flag(precision_names(), "--dtype", o.dtype));
  const ModelConfig& cfg = model->config();
  const std::string tok_path = (std::filesystem::path(o.model) / "tokenizer.model").string();
  std::optional<Tokenizer> tok;
  if (std::filesystem::exists(tok_path)) tok.emplace(Tokenizer::load(tok_path));

  GenTaskOptions g;
  g.batch_size = o.batch_size;
  g.batch_invariant = o.batch_invariant;
  g.max_new_tokens = o.max_new_tokens;
  // gen cuts prompts to fit the context (the authors' LongBench rule); niah
  // never cuts unless asked, since a cut could remove the needle.
  g.max_prompt_tokens = o.max_prompt_tokens > 0 ? o.max_prompt_tokens : niah ? -1 : 0;
  g.context = o.seq_len > 0 ? o.seq_len : cfg.seq_len;
  g.eos_id = tok ? tok->eos_id() : int32_t(cfg.ignore_input_index);
  g.bf16_cache = parse_flag(precision_names(), "--cache-dtype", o.cache_dtype) == Precision::kBF16;

  Progress bar(o.task, int64_t(cases.size()), "cases");
  const double t0 = now_seconds();
  const std::vector<GenOutput> outs = run_gen_cases(*model, tok ? &*tok : nullptr, cases, g, o.file,
                                                    [&](int64_t n) { bar.update(n); });
  bar.finish();
  const double secs = now_seconds() - t0;

  const int64_t N = int64_t(cases.size());
  std::vector<double> scores(static_cast<size_t>(N));
  Mean all;
  int64_t truncated = 0, over = 0, longest = 0, new_tokens = 0;
  for (int64_t i = 0; i < N; ++i) {
    const GenCase& c = cases[size_t(i)];
    const GenOutput& r = outs[size_t(i)];
    scores[size_t(i)] = niah ? string_match_all(r.prediction, c.answers)
                             : best_score(metric, r.prediction, c.answers);
    all.add(scores[size_t(i)]);
    truncated += r.prompt_tokens < r.prompt_tokens_in;
    new_tokens += int64_t(r.ids.size());
    const int64_t total = r.prompt_tokens + r.new_tokens;
    if (total > g.context) ++over, longest = std::max(longest, total);
  }
  // Past the training length a model extrapolates (RoPE runs at any
  // position): evaluated, as users test exactly that, but said.
  if (over > 0)
    std::fprintf(stderr,
                 "warning: %lld of %lld cases need more than the model's context of %lld tokens "
                 "(up to %lld with the new tokens): evaluated anyway, beyond the training length\n",
                 (long long)over, (long long)N, (long long)g.context, (long long)longest);
  if (!o.out.empty()) write_predictions(o.out, cases, outs, scores);

  const char* name = niah ? "string_match_all" : metric_name(metric);
  nlohmann::json j = {{"task", o.task},         {"metric", name},
                      {"score", all.value()},   {"n", N},
                      {"truncated", truncated}, {"over_context", over},
                      {"context", g.context},   {"new_tokens", new_tokens},
                      {"seconds", secs},        {"model", o.model},
                      {"file", o.file}};
  if (!o.out.empty()) j["predictions"] = o.out;
  if (niah) {
    std::map<int64_t, Mean> by_length;
    std::map<std::pair<int64_t, double>, Mean> by_cell;
    std::set<std::string> kinds;
    for (int64_t i = 0; i < N; ++i) {
      const GenCase& c = cases[size_t(i)];
      by_length[c.length].add(scores[size_t(i)]);
      by_cell[{c.length, c.depth}].add(scores[size_t(i)]);
      const auto k = c.fields.find("kind");
      if (k != c.fields.end() && k->is_string()) kinds.insert(k->get<std::string>());
    }
    std::vector<HeatCell> cells;
    for (const auto& [key, m] : by_cell) cells.push_back({key.first, key.second, m.value(), m.n});
    if (!o.heatmap.empty()) {
      std::string title = "needle retrieval (string_match_all)";
      if (!kinds.empty()) {
        title += ":";
        for (const auto& k : kinds) title += " " + k;
      }
      write_heatmap(o.heatmap, cells, title + ", " + std::filesystem::path(o.model).string());
      j["heatmap"] = o.heatmap;
    }
    nlohmann::json jl = nlohmann::json::array(), jc = nlohmann::json::array();
    for (const auto& [l, m] : by_length)
      jl.push_back({{"length", l}, {"score", m.value()}, {"n", m.n}});
    for (const HeatCell& c : cells)
      jc.push_back({{"length", c.length}, {"depth", c.depth}, {"score", c.score}, {"n", c.n}});
    j["by_length"] = jl;
    j["by_cell"] = jc;
    j["kinds"] = kinds;
    if (!o.json) {
      std::printf("model %s, niah %s: %lld cases, %lld new tokens in %.1f s\n", o.model.c_str(),
                  o.file.c_str(), (long long)N, (long long)new_tokens, secs);
      std::printf("%8s %6s %7s %5s\n", "length", "depth", "score", "n");
      for (const HeatCell& c : cells)
        std::printf("%8lld %6.3f %7.4f %5lld\n", (long long)c.length, c.depth, c.score,
                    (long long)c.n);
      for (const auto& [l, m] : by_length)
        std::printf("length %lld: string_match_all=%.6f n=%lld\n", (long long)l, m.value(),
                    (long long)m.n);
    }
  } else if (!o.json) {
    std::printf(
        "model %s, gen %s: %lld cases (%lld prompts cut in the middle), %lld new tokens in "
        "%.1f s\n",
        o.model.c_str(), o.file.c_str(), (long long)N, (long long)truncated, (long long)new_tokens,
        secs);
  }
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    if (!o.out.empty()) std::printf("predictions: %s\n", o.out.c_str());
    if (!o.heatmap.empty()) std::printf("heatmap: %s\n", o.heatmap.c_str());
    std::printf("%s=%.6f n=%lld\n", name, all.value(), (long long)N);
  }
  return 0;
}

}  // namespace rat::cli
