// `rat generate`: text (or ids) from a model directory, streamed as it is
// produced; several prompts of different lengths decode together.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/sampling_flags.h"
#include "data/tokenizer.h"
#include "generate/generate.h"
#include "generate/prompts.h"
#include "generate/stop_filter.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/timer.h"

namespace rat::cli {

namespace {

struct GenOpts {
  std::string model, prompt, prompt_file, prompt_ids, batch_file, dtype = "f32";
  std::vector<std::string> stop;
  std::string cache_dtype = "f32";
  int64_t max_new_tokens = 64;
  int64_t ctx = 0;  // prompt + generated tokens at most; 0: no limit
  bool greedy = false, json = false, ignore_eos = false, timings = false;
  bool batch_invariant = false;
  SamplingOptions s = interactive_sampling();
  int64_t seed = -1;  // -1 (llama.cpp's): a random one, printed
  int64_t batch = 0;  // prompt tokens per prefill pass; 0: all at once
};

// `-` reads standard input (`-f -`, as llama.cpp).
std::string read_text_file(const std::string& path, const char* flag) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(std::string(flag) + ": cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Attention and RAT place keys by position (RoPE on the token or chunk index):
// positions past the trained length were never seen, and quality usually falls
// there. Local attention (relative, within its window), RNN and identity
// layers are not limited.
void warn_past_trained_length(const ModelConfig& cfg, int64_t total) {
  if (total <= cfg.seq_len) return;
  for (const MixerConfig& m : cfg.layers)
    if (m.kind == MixerKind::kAttention || m.kind == MixerKind::kRat) {
      std::fprintf(stderr,
                   "warning: prompt + new tokens reach %lld positions, past the %lld the model "
                   "was trained on (data.seq_len); its %s layers have not seen those "
                   "positions, and the text may degrade (-n or -c to stay within)\n",
                   (long long)total, (long long)cfg.seq_len, mixer_name(m.kind));
      return;
    }
}

// --timings: where the time before the first token and between tokens went.
void print_timings(const GenerateResult& r, double load_s, int64_t load_minflt, double gemm_warm_s,
                   double prep_s, int64_t B) {
  const GenerateTimings& t = r.t;
  const double first_token = load_s + prep_s + t.setup_s + r.prefill_s + t.first_token_s;
  std::fprintf(stderr,
               "timings: load %.3f s (%lld minor faults; oneDNN warm-up %.3f s beside it); "
               "tokenizer and prompts %.3f s; caches "
               "%.3f s (%lld faults); prefill %.3f s (%lld tokens, %lld faults); first token "
               "%.4f s; first token at %.3f s from start\n",
               load_s, (long long)load_minflt, gemm_warm_s, prep_s, t.setup_s,
               (long long)t.minflt_setup, r.prefill_s, (long long)r.prefill_tokens,
               (long long)t.minflt_prefill, t.first_token_s, first_token);
  if (B > 1) {
    std::string each;
    for (double s : t.prefill_each_s) each += " " + std::to_string(s).substr(0, 6);
    std::fprintf(stderr, "timings: prefill per prompt (s):%s\n", each.c_str());
  }
  if (r.decode_steps == 0) return;
  // Steady rate: the steps after the first (which builds its batch's plans),
  // counting full batches (B rows) as decode_tokens does at the start.
  const double rest = t.steps_s - t.first_step_s;
  const int64_t rest_tokens = r.decode_tokens - std::min<int64_t>(B, r.decode_tokens);
  std::fprintf(stderr,
               "timings: decode %lld steps in %.3f s: first step %.4f s, later steps %.2f "
               "tokens/s, median step %.4f s (batch %lld: %.2f tokens/s), sampling and output "
               "%.3f ms per token (%.3f s), %lld faults\n",
               (long long)r.decode_steps, r.decode_s, t.first_step_s,
               rest > 0 ? double(rest_tokens) / rest : 0.0, t.step_median_s, (long long)B,
               t.step_median_s > 0 ? double(B) / t.step_median_s : 0.0,
               r.decode_tokens ? 1e3 * t.choose_s / double(r.decode_tokens) : 0.0, t.choose_s,
               (long long)t.minflt_decode);
}

int run_generate(const GenOpts& o) {
  const int given =
      !o.prompt.empty() + !o.prompt_file.empty() + !o.prompt_ids.empty() + !o.batch_file.empty();
  if (given != 1)
    throw Error(
        "give exactly one of --prompt (-p), --prompt-file (-f), --prompt-ids, --batch-file");
  // Every flag is checked before anything is loaded or printed.
  if (o.max_new_tokens < 0) throw Error("--max-new-tokens (-n) must be >= 0");
  if (o.ctx < 0) throw Error("--ctx (-c) must be >= 0 (0: no limit)");
  if (o.batch < 0) throw Error("--batch-size (-b) must be >= 0 (0: the whole prompt at once)");
  check_sampling_flags(o.s, o.greedy, o.seed);
  const Precision prec = parse_flag(precision_names(), "--dtype", o.dtype);
  const bool bf16_cache =
      parse_flag(precision_names(), "--cache-dtype", o.cache_dtype) == Precision::kBF16;
  const double t_start = now_seconds();
  const int64_t f_start = minor_faults();
  // oneDNN's one-time kernel generation runs beside the weights' loading
  // instead of inside the first prefill (warm_up_gemm).
  double gemm_warm_s = 0;
  std::thread gemm_warm([&gemm_warm_s] {
    const double t0 = now_seconds();
    warm_up_gemm();
    gemm_warm_s = now_seconds() - t0;
  });
  std::unique_ptr<Model> model;
  try {
    model = load_model_dir(o.model);
  } catch (...) {
    gemm_warm.join();
    throw;
  }
  gemm_warm.join();
  const double load_s = now_seconds() - t_start;
  const int64_t load_minflt = minor_faults() - f_start;
  model->set_frozen_weight_cache(true);  // weights are fixed from here on
  model->set_precision(prec);

  const std::string tok_path = (std::filesystem::path(o.model) / "tokenizer.model").string();
  std::optional<Tokenizer> tok;
  if (std::filesystem::exists(tok_path)) tok.emplace(Tokenizer::load(tok_path));
  auto need_tok = [&](const char* why) {
    if (!tok)
      throw Error(std::string(why) + " needs the model's tokenizer, but " + tok_path +
                  " does not exist: use --prompt-ids, or copy the tokenizer.model the model was "
                  "trained with into " +
                  o.model);
  };

  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> prompt_text;
  const bool ids_mode = !o.prompt_ids.empty();
  if (ids_mode) {
    prompts = parse_prompt_ids(o.prompt_ids);
  } else {
    if (!o.prompt.empty()) {
      need_tok("--prompt");
      prompt_text.push_back(o.prompt);
    } else if (!o.prompt_file.empty()) {
      need_tok("--prompt-file");
      prompt_text.push_back(read_text_file(o.prompt_file, "--prompt-file"));
    } else {
      need_tok("--batch-file");
      prompt_text = parse_batch_prompts(read_text_file(o.batch_file, "--batch-file"), o.batch_file);
    }
    for (const auto& t : prompt_text) {
      prompts.push_back(tok->encode(t));
      if (prompts.back().empty()) throw Error("the prompt encodes to no tokens");
    }
  }
  check_prompt_ids(prompts, model->config().vocab_size, o.model + "/config.yaml");
  for (const std::string& s : o.stop)
    if (!s.empty()) need_tok("--stop");

  GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, int64_t(p.size()));
  if (o.ctx > 0) {
    if (longest >= o.ctx)
      throw Error("--ctx " + std::to_string(o.ctx) + ": the prompt has " + std::to_string(longest) +
                  " tokens, expected fewer than the context");
    g.max_new_tokens = std::min(g.max_new_tokens, o.ctx - longest);
  }
  warn_past_trained_length(model->config(), longest + g.max_new_tokens);
  g.sampling = o.s;
  g.sampling.greedy = o.greedy;
  g.seed = o.seed >= 0 ? uint64_t(o.seed) : std::random_device{}();
  if (o.seed < 0 && !o.greedy) std::fprintf(stderr, "seed: %llu\n", (unsigned long long)g.seed);
  g.bf16_cache = bf16_cache;
  g.prefill_batch = o.batch;
  g.batch_invariant = o.batch_invariant;
  if (!o.ignore_eos) g.eos_id = tok ? tok->eos_id() : int32_t(model->config().ignore_input_index);

  const int64_t B = int64_t(prompts.size());
  const bool stream = B == 1 && !o.json && tok;
  std::vector<std::unique_ptr<StreamDecoder>> dec;
  std::vector<StopFilter> stops;
  std::vector<std::string> texts(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    stops.emplace_back(o.stop);
    if (!tok) continue;
    dec.push_back(std::make_unique<StreamDecoder>(*tok));
    // The prompt goes through the stream decoder first (its text is not
    // printed again) so the first new word keeps its leading space.
    for (int32_t id : prompts[size_t(i)])
      if (id < tok->vocab_size()) dec.back()->push(id);
  }
  if (stream) {
    std::fputs(ids_mode ? "" : prompt_text[0].c_str(), stdout);
    std::fflush(stdout);
  }
  auto emit = [&](int64_t i, const std::string& text) {
    texts[size_t(i)] += text;
    if (stream) {
      std::fputs(text.c_str(), stdout);
      std::fflush(stdout);
    }
  };
  auto on_token = [&](int64_t i, int32_t id) {
    if (!tok) return true;
    if (id == g.eos_id) return true;           // the loop ends it; eos has no text
    if (id >= tok->vocab_size()) return true;  // the model's vocab may be padded
    emit(i, stops[size_t(i)].feed(dec[size_t(i)]->push(id)));
    return !stops[size_t(i)].hit();
  };
  const double t_gen = now_seconds();
  GenerateResult r = generate(*model, prompts, g, on_token);
  if (tok)
    for (int64_t i = 0; i < B; ++i) {
      if (!stops[size_t(i)].hit()) emit(i, stops[size_t(i)].feed(dec[size_t(i)]->flush()));
      emit(i, stops[size_t(i)].finish());
    }

  const double decode_tps = r.decode_s > 0 ? double(r.decode_tokens) / r.decode_s : 0;
  const double prefill_tps = r.prefill_s > 0 ? double(r.prefill_tokens) / r.prefill_s : 0;
  if (o.json) {
    nlohmann::json out = nlohmann::json::array();
    for (int64_t i = 0; i < B; ++i) {
      nlohmann::json j = {{"prompt_ids", prompts[size_t(i)]},
                          {"ids", r.ids[size_t(i)]},
                          {"finish", r.finish[size_t(i)]}};
      if (!prompt_text.empty()) j["prompt"] = prompt_text[size_t(i)];
      if (tok) j["text"] = texts[size_t(i)];
      out.push_back(j);
    }
    nlohmann::json j = {{"outputs", out},
                        {"prefill_tokens", r.prefill_tokens},
                        {"prefill_s", r.prefill_s},
                        {"decode_tokens", r.decode_tokens},
                        {"decode_steps", r.decode_steps},
                        {"decode_s", r.decode_s},
                        {"decode_tokens_per_s", decode_tps},
                        {"cache_bytes_per_sequence", r.cache_bytes_per_sequence},
                        {"model", o.model}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (stream) std::printf("\n");
  for (int64_t i = 0; i < B; ++i) {
    if (B > 1) {
      std::printf("--- %lld (%s)\n", (long long)i, r.finish[size_t(i)].c_str());
      if (tok)
        std::printf("%s%s\n", ids_mode ? "" : prompt_text[size_t(i)].c_str(),
                    texts[size_t(i)].c_str());
    }
    if (ids_mode) {
      std::string line = "ids:";
      for (int32_t id : r.ids[size_t(i)]) line += " " + std::to_string(id);
      std::printf("%s\n", line.c_str());
    }
  }
  std::fflush(stdout);
  if (o.timings) print_timings(r, load_s, load_minflt, gemm_warm_s, t_gen - t_start - load_s, B);
  std::fprintf(stderr,
               "prefill: %lld tokens in %.1f ms (%.0f tokens/s); decode: %lld tokens in %.2f s "
               "(%.1f tokens/s, %lld steps, batch %lld); cache %.1f KiB per sequence\n",
               (long long)r.prefill_tokens, r.prefill_s * 1e3, prefill_tps,
               (long long)r.decode_tokens, r.decode_s, decode_tps, (long long)r.decode_steps,
               (long long)B, double(r.cache_bytes_per_sequence) / 1024.0);
  return 0;
}

}  // namespace

void register_generate(CLI::App& app, Runner& run) {
  static GenOpts o;
  auto* c = app.add_subcommand(
      "generate",
      "Continue a prompt with a model directory (config.yaml + model.safetensors, and\n"
      "tokenizer.model for text). The prompt is read in one forward pass, then tokens are\n"
      "produced one by one from the layers' caches (RAT keeps one state per chunk) and printed\n"
      "as they come. Several prompts (--batch-file, or ';' in --prompt-ids) decode together.\n"
      "Examples:\n"
      "  rat generate --model runs/rat-small/latest --prompt \"The Python interpreter\"\n"
      "  rat generate --model DIR --prompt-ids \"5 17 9\" --greedy --max-new-tokens 8\n"
      "  rat generate --model DIR --batch-file prompts.txt --temp 0.8 --top-p 0.95\n"
      "llama.cpp's short flags work: rat generate -m DIR -p \"def f(\" -n 32 -s 1; -f - reads\n"
      "the prompt from stdin. Sampling defaults are llama.cpp's (temperature 0.8, top-k 40,\n"
      "top-p 0.95, min-p 0.05) with a random seed printed to stderr; --greedy for argmax.");
  c->add_option("-m,--model", o.model, "model directory")->required();
  c->add_option("-p,--prompt", o.prompt,
                "prompt text (needs tokenizer.model in the model directory)");
  c->add_option("-f,--prompt-file", o.prompt_file, "read the prompt text from a file (- : stdin)");
  c->add_option("--prompt-ids", o.prompt_ids,
                "prompt as token ids, e.g. \"1 2 3\" (';' separates prompts); the last output "
                "line is `ids: ` and the generated ids");
  c->add_option("--batch-file", o.batch_file, "one text prompt per line, generated together");
  c->add_option("-b,--batch-size", o.batch,
                "prompt tokens per prefill pass, as llama.cpp's -b: a longer prompt goes in "
                "pieces that continue its state (0: the whole prompt in one pass)")
      ->capture_default_str();
  c->add_option("-n,--max-new-tokens,--n-predict", o.max_new_tokens,
                "tokens to generate per prompt")
      ->capture_default_str();
  c->add_option("-c,--ctx", o.ctx,
                "prompt + generated tokens at most (0: no limit; a warning past the trained "
                "data.seq_len for attention and RAT models)")
      ->capture_default_str();
  add_sampling_flags(c, o.s, o.greedy, o.seed, "sequence");
  c->add_option("--stop", o.stop,
                "end a sequence when this text appears (not printed); repeat the flag for "
                "several stop strings")
      ->allow_extra_args(false);
  c->add_flag("--ignore-eos", o.ignore_eos, "keep going after the end-of-document id");
  c->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  c->add_option("--cache-dtype", o.cache_dtype,
                "f32 | bf16 storage of the layers' caches (bf16: half the memory, logits differ "
                "from a full forward by bf16 rounding)")
      ->capture_default_str();
  c->add_flag("--batch-invariant", o.batch_invariant,
              "each prompt's tokens bit for bit as if it were generated alone, whatever the "
              "other prompts of the batch (slower from 3 prompts on; docs/reliability.md)");
  c->add_flag("--timings", o.timings,
              "print on stderr where the time went: load, caches, prefill, first token, first "
              "decode step, later steps' rate, sampling and output, page faults");
  c->add_flag("--json", o.json, "one JSON object (outputs and timings) instead of text");
  c->callback([&run] { run = [] { return run_generate(o); }; });
}

}  // namespace rat::cli
