// `rat eval`: mean loss and perplexity of a model directory over a token file.
#include <cstdio>

#include "cli/commands.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "train/evaluate.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/timer.h"

namespace rat::cli {

namespace {
struct EvalOpts {
  std::string model, data, dtype = "f32";
  int64_t seq_len = 0, batch_size = 4, max_samples = -1;
  bool json = false;
};
}  // namespace

void register_eval(CLI::App& app, Runner& run) {
  static EvalOpts o;
  auto* c = app.add_subcommand(
      "eval",
      "Mean loss and perplexity of a model over a token file.\n"
      "Samples are cut as SPEC.md says: sample r is tokens [rT, rT+T) predicting [rT+1, rT+T];\n"
      "a label after data.ignore_input_index (the end-of-document id) is not counted.\n"
      "Example: rat eval --model runs/small/latest --data data/val.bin");
  c->add_option("--model", o.model, "model directory (config.yaml + model.safetensors)")
      ->required();
  c->add_option("--data", o.data, "token file (uint16/uint32 per data.num_bytes)")->required();
  c->add_option("--seq-len", o.seq_len, "sample length T (default: the model's data.seq_len)");
  c->add_option("--batch-size", o.batch_size, "samples per forward pass")->capture_default_str();
  c->add_option("--max-samples", o.max_samples, "evaluate only the first N samples");
  c->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  c->add_flag("--json", o.json, "print one JSON object instead of text");
  c->callback([&run] {
    run = [] {
      auto model = load_model_dir(o.model);
      model->set_frozen_weight_cache(true);  // weights are fixed from here on
      model->set_precision(parse_flag(precision_names(), "--dtype", o.dtype));
      const ModelConfig& cfg = model->config();
      const int64_t T = o.seq_len > 0 ? o.seq_len : cfg.seq_len;
      if (o.batch_size <= 0) throw Error("--batch-size must be positive");
      TokenFile data(o.data, int(cfg.num_bytes));
      data.check_vocab(cfg.vocab_size);
      int64_t n = data.num_samples(T);
      if (n <= 0)
        throw Error(o.data + ": " + std::to_string(data.num_tokens()) +
                    " tokens hold no sample of length " + std::to_string(T) + " (+1 label)");
      if (o.max_samples >= 0) n = std::min(n, o.max_samples);
      Progress bar("eval", n, "samples");
      double t0 = now_seconds();
      EvalResult r =
          evaluate(*model, data, T, o.batch_size, 0, n, [&](int64_t done) { bar.update(done); });
      bar.finish();
      double secs = now_seconds() - t0;
      if (o.json) {
        nlohmann::json j = {{"loss", r.loss},
                            {"ppl", r.ppl},
                            {"tokens", r.tokens},
                            {"samples", r.samples},
                            {"seq_len", T},
                            {"seconds", secs},
                            {"model", o.model},
                            {"data", o.data},
                            // one layer's activations (kScore), for memory budgets
                            {"activation_bytes", model->activation_bytes()}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("model %s, data %s: %lld samples of %lld tokens in %.1f s (%.0f tokens/s)\n",
                    o.model.c_str(), o.data.c_str(), (long long)r.samples, (long long)T, secs,
                    double(r.samples * T) / secs);
        std::printf("loss=%.6f ppl=%.4f tokens=%lld\n", r.loss, r.ppl, (long long)r.tokens);
      }
      return 0;
    };
  });
}

}  // namespace rat::cli
