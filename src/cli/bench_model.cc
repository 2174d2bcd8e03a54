// `rat bench model`: whole-model generation speed, the paper's "maximum
// generation throughput" experiment scaled to this machine. A decode step at
// position T-1 with full caches is timed for a batch (mode decode), or for the
// largest batch whose weights, caches and step buffers fit a memory budget
// (mode throughput). Every figure is printed beside its ceiling measured in
// the same run: read bandwidth for the bytes a step must stream (weights +
// caches) and the GEMM rate for its FLOPs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "generate/decoder.h"
#include "kernels/ceilings.h"
#include "model/config.h"
#include "model/enum_names.h"
#include "model/mixer_kinds.h"
#include "model/model.h"
#include "model/params.h"
#include "nlohmann/json.hpp"
#include "train/compose.h"
#include "util/error.h"
#include "util/machine.h"
#include "util/timer.h"

namespace rat::cli {

namespace {

struct ModelBenchOpts {
  std::vector<std::string> configs;  // model config files
  std::vector<std::string> mixers;   // or presets built from the shape flags below
  int64_t layers = 0;                // 0: as the config says (presets: 4)
  int64_t d_model = 2048, d_head = 128, chunk = 16, window = 1024, ngroups = 2, vocab = 32000;
  std::string mode = "decode", dtype = "f32", cache_dtype = "f32";
  int64_t seq = 4096, batch = 64, max_batch = 1 << 16;
  double memory_gib = 16;
  int repeats = 5, warmup = 1;
  bool json = false, batch_invariant = false;
};

// Cache bytes one sequence's step reads at position `pos` (0-based), per
// SPEC.md "Generation state": what the mixer must stream, not what it holds.
double cache_read_bytes(const ModelConfig& cfg, int64_t pos, bool bf16_cache) {
  double b = 0;
  for (const MixerConfig& m : cfg.layers) b += mixer_decode_cache_bytes(cfg, m, pos, bf16_cache);
  return b;
}

// FLOPs of one token's step: 2 per weight of every matrix (head included,
// the embedding lookup is not a product) plus 4*P per scored key per head;
// the mixers' share is their descriptors' decode count.
double step_flops_per_token(const Model& model, int64_t pos) {
  const ModelConfig& cfg = model.config();
  double f = 2.0 * model.matmul_weights();
  for (const MixerConfig& m : cfg.layers)
    f += mixer_decode_flops(cfg, m, pos) - 2.0 * mixer_matmul_weights(cfg, m);
  return f;
}

std::string describe(const ModelConfig& cfg) {
  std::string s;
  for (size_t i = 0; i < cfg.layers.size(); ++i) s += (i ? "," : "") + mixer_label(cfg.layers[i]);
  return s;
}

struct Row {
  std::string config, layers;
  int64_t batch = 0;
  double ms = 0, tokens_per_s = 0, cache_mib_per_seq = 0, weights_mib = 0, rss_mib = 0;
  double read_bytes = 0, flops = 0, bound_ms = 0;
};

// The paper's shapes as presets (xl width by default): `hybrid` is its
// RAT + local attention interleave (rat on even layers).
ModelConfig preset_config(const std::string& mixer, const ModelBenchOpts& o) {
  ModelConfig c;
  c.vocab_size = o.vocab;
  c.num_bytes = o.vocab > 65536 ? 4 : 2;
  c.num_layers = o.layers > 0 ? o.layers : 4;
  c.d_model = o.d_model;
  c.ffn.d_ffn = 4 * o.d_model;
  c.pe = PosEnc::kRopeInterRope;
  auto cell = [&](MixerKind k) {
    MixerConfig m;
    m.kind = k;
    m.d_head = o.d_head;
    m.ngroups = o.ngroups;
    m.chunk_size = o.chunk;
    m.window_size = o.window;
    return m;
  };
  if (mixer == "hybrid") {
    c.backbone = "sequence_interleave";
    c.interleave_step = 2;
    c.seq_cell1 = cell(MixerKind::kRat);
    c.seq_cell = cell(MixerKind::kLocalAttention);
  } else if (const MixerKindInfo* k = find_mixer_kind(mixer)) {
    c.seq_cell = cell(k->kind);
  } else {
    throw Error("--mixer: '" + mixer + "', expected hybrid or one of " + mixer_kind_names());
  }
  c.resolve("--mixer " + mixer);
  return c;
}

Row run_one(const std::string& name, bool preset, const ModelBenchOpts& o, double bw_gbps,
            double gemm_gflops) {
  const std::string path = name;
  ModelConfig cfg = preset                     ? preset_config(name, o)
                    : !has_defaults_list(path) ? load_model_config(path)
                                               : [&] {  // an experiment of the authors' tree
                                                   ComposedConfig c = compose_file(path, {});
                                                   check_composed_keys(c, config_file_schema());
                                                   return model_config_from_yaml(c.tree, c.source);
                                                 }();
  if (!preset && o.layers > 0) {
    cfg.num_layers = o.layers;
    cfg.resolve(path);
  }
  const bool bf16_cache =
      parse_flag(precision_names(), "--cache-dtype", o.cache_dtype) == Precision::kBF16;
  cfg.seq_len = std::max(cfg.seq_len, o.seq);
  Model model(cfg);
  model.init(1);
  model.set_frozen_weight_cache(true);
  const Precision prec = parse_flag(precision_names(), "--dtype", o.dtype);
  model.set_precision(prec);
  const int64_t pos = o.seq - 1;                         // position of the timed step
  const int64_t max_len = o.seq + o.warmup + o.repeats;  // room for every timed step
  const double weights = double(model.layout().total()) * sizeof(float);
  // With bf16 products a step reads the frozen bf16 copies of the matrices
  // (Bf16WeightCache), held beside the f32 parameters: the budget counts both.
  const bool bf16_w = prec == Precision::kBF16;
  const double weights_read = bf16_w ? weights / 2 : weights;
  const double weights_held = bf16_w ? weights * 1.5 : weights;

  int64_t batch = o.batch;
  if (o.mode == "throughput") {
    // Bytes per sequence and fixed bytes of the decoder, by differencing two
    // small decoders; plus the step's logits row and FFN/mixer activations,
    // which grow with the batch inside the blocks.
    const int64_t b1 = Decoder(model, 1, max_len, bf16_cache).total_bytes();
    const int64_t b2 = Decoder(model, 2, max_len, bf16_cache).total_bytes();
    const double per_seq =
        double(b2 - b1) +
        sizeof(float) * double(cfg.vocab_size + 8 * cfg.d_model + 3 * cfg.ffn.d_ffn);
    const double fixed = double(b1) - double(b2 - b1) + weights_held;  // params (grads aside)
    const double budget = o.memory_gib * double(1ull << 30);
    if (budget <= fixed + per_seq)
      throw Error("--memory-gib " + std::to_string(o.memory_gib) + ": " + path +
                  " needs more than that for its weights and one sequence (" +
                  std::to_string((fixed + per_seq) / double(1ull << 30)) + " GiB)");
    batch = std::min<int64_t>(o.max_batch, int64_t((budget - fixed) / per_seq));
  }
  Decoder dec(model, batch, max_len, bf16_cache);
  dec.set_batch_invariant(o.batch_invariant);
  dec.fill_random(pos, 7);
  std::vector<int64_t> slots(static_cast<size_t>(batch));
  std::vector<int32_t> ids(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i)
    slots[size_t(i)] = i, ids[size_t(i)] = int32_t(i % cfg.vocab_size);
  std::vector<float> logits(size_t(batch * cfg.vocab_size));
  const double secs = median_seconds(
      [&] { dec.step(slots.data(), ids.data(), batch, logits.data()); }, o.warmup, o.repeats);
  Row row;
  row.config = path;
  row.layers = describe(cfg);
  row.batch = batch;
  row.ms = secs * 1e3;
  row.tokens_per_s = double(batch) / (row.ms * 1e-3);
  row.cache_mib_per_seq = double(dec.cache_bytes_per_sequence()) / double(1 << 20);
  row.weights_mib = weights_held / double(1 << 20);
  row.rss_mib = max_rss_mib();
  // The step at position `pos` (plus warm-up positions: the last timed step
  // reads slightly more; the median step is close to pos + warmup + repeats/2).
  const int64_t mid = pos + o.warmup + o.repeats / 2;
  row.read_bytes = weights_read + double(batch) * cache_read_bytes(cfg, mid, bf16_cache);
  row.flops = double(batch) * step_flops_per_token(model, mid);
  row.bound_ms = 1e3 * std::max(row.read_bytes / (bw_gbps * 1e9), row.flops / (gemm_gflops * 1e9));
  return row;
}

int run_model_bench(const ModelBenchOpts& o) {
  if (o.configs.empty() && o.mixers.empty())
    throw Error("give --mixer PRESET or --config FILE (at least one; several are compared)");
  parse_flag(precision_names(), "--cache-dtype", o.cache_dtype);  // fail before measuring
  if (o.mode != "decode" && o.mode != "throughput")
    throw Error("--mode: '" + o.mode + "', expected decode or throughput");
  if (o.seq < 2 || o.batch <= 0 || o.repeats <= 0)
    throw Error("--seq must be >= 2, --batch and --repeats positive");
  const double bw = measure_read_bandwidth();
  const double gemm = measure_gemm_rate(1024, parse_flag(precision_names(), "--dtype", o.dtype), 3);
  if (!o.json) {
    std::printf("machine: %s\n", machine_description().c_str());
    std::printf("ceilings (same run): read %.1f GB/s, GEMM %s 1024^3 %.1f GFLOP/s\n", bw,
                o.dtype.c_str(), gemm);
    std::printf("mode %s, step at position %lld, cache %s, matmul %s%s%s\n", o.mode.c_str(),
                (long long)(o.seq - 1), o.cache_dtype.c_str(), o.dtype.c_str(),
                o.batch_invariant ? ", batch-invariant steps" : "",
                o.mode == "throughput"
                    ? (", budget " + std::to_string(o.memory_gib) + " GiB").c_str()
                    : "");
  }
  std::vector<Row> rows;
  std::vector<std::pair<std::string, bool>> todo;
  for (const std::string& m : o.mixers) todo.emplace_back(m, true);
  for (const std::string& c : o.configs) todo.emplace_back(c, false);
  for (const auto& [name, preset] : todo) {
    Row r = run_one(name, preset, o, bw, gemm);
    rows.push_back(r);
    const double vs =
        rows.front().tokens_per_s > 0 ? r.tokens_per_s / rows.front().tokens_per_s : 0;
    if (o.json) {
      nlohmann::json j = {
          {"mixer", r.config},
          {"layers", r.layers},
          {"mode", o.mode},
          {"seq", o.seq},
          {"batch", r.batch},
          {"batch_invariant", o.batch_invariant},
          {"dtype", canonical_name(precision_names(), "--dtype", o.dtype)},
          {"cache_dtype", canonical_name(precision_names(), "--cache-dtype", o.cache_dtype)},
          {"memory_gib", o.mode == "throughput" ? o.memory_gib : 0.0},
          {"step_ms", r.ms},
          {"tokens_per_s", r.tokens_per_s},
          {"cache_mib_per_seq", r.cache_mib_per_seq},
          {"cache_bytes_per_sequence", int64_t(r.cache_mib_per_seq * (1 << 20))},
          {"weights_mib", r.weights_mib},
          {"bytes_read_per_step", r.read_bytes},
          {"flops_per_step", r.flops},
          {"bound_ms", r.bound_ms},
          {"fraction_of_bound", r.bound_ms / r.ms},
          {"read_gbps", bw},
          {"gemm_gflops", gemm},
          {"max_rss_mib", r.rss_mib},
          {"vs_first", vs},
          {"machine", machine_description()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\n  layers %s\n", r.config.c_str(), r.layers.c_str());
      std::printf("  batch %lld: %.2f ms/step, %.1f tokens/s (%.2fx the first config)\n",
                  (long long)r.batch, r.ms, r.tokens_per_s, vs);
      std::printf("  cache %.2f MiB/sequence, weights %.0f MiB, peak RSS %.0f MiB\n",
                  r.cache_mib_per_seq, r.weights_mib, r.rss_mib);
      std::printf("  step reads %.1f MB, %.3g FLOPs: bound %.2f ms -> %.0f%% of the bound\n",
                  r.read_bytes / 1e6, r.flops, r.bound_ms, 100.0 * r.bound_ms / r.ms);
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

void register_bench_model(CLI::App& bench, Runner& run) {
  static ModelBenchOpts o;
  auto* m = bench.add_subcommand(
      "model",
      "Time whole-model decode steps at position T-1 with full caches (random weights and\n"
      "cache contents: the cost does not depend on them). --mode decode uses --batch;\n"
      "--mode throughput uses the largest batch that fits --memory-gib (the paper's maximum\n"
      "generation throughput). Models come from --mixer presets (the xl width by default) or\n"
      "--config files; several run in one process and are compared with the first.\n"
      "Examples (attention vs the RAT hybrid, 4 layers of the xl width, 16 GiB):\n"
      "  rat bench model --mode throughput --memory-gib 16 --seq 4096 --mixer attention --mixer "
      "hybrid\n"
      "  rat bench model --mode throughput --memory-gib 16 --seq 4096 --layers 4 \\\n"
      "    --config configs/experiment/fineweb_edu/attention-xl.yaml \\\n"
      "    --config configs/experiment/fineweb_edu/rat_localattention_interleave-xl.yaml");
  m->add_option("--mixer", o.mixers, "preset: " + mixer_kind_names() + " or hybrid; repeatable");
  m->add_option("--config", o.configs, "model config (config.yaml or experiment yaml); repeatable");
  m->add_option("--d-model", o.d_model, "preset width D (FFN 4D)")->capture_default_str();
  m->add_option("--d-head", o.d_head, "preset head width P")->capture_default_str();
  m->add_option("--vocab", o.vocab, "preset vocabulary")->capture_default_str();
  m->add_option("--chunk", o.chunk, "preset RAT chunk size L")->capture_default_str();
  m->add_option("--ngroups", o.ngroups, "preset RAT groups G")->capture_default_str();
  m->add_option("--window", o.window, "preset local attention window")->capture_default_str();
  m->add_option("--cache-dtype", o.cache_dtype, "f32 | bf16 cache storage")->capture_default_str();
  m->add_option("--layers", o.layers, "num_layers (0: the config's; presets 4)")
      ->capture_default_str();
  m->add_option("--mode", o.mode, "decode | throughput")->capture_default_str();
  m->add_option("--seq", o.seq, "T: the step runs at position T-1 with T-1 cached tokens")
      ->capture_default_str();
  m->add_option("--batch", o.batch, "sequences per step (decode mode)")->capture_default_str();
  m->add_option("--memory-gib", o.memory_gib, "budget for weights + caches (throughput mode)")
      ->capture_default_str();
  m->add_option("--max-batch", o.max_batch, "cap on the throughput batch")->capture_default_str();
  m->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  m->add_option("--repeats", o.repeats, "timed steps (median reported)")->capture_default_str();
  m->add_option("--warmup", o.warmup, "untimed steps first")->capture_default_str();
  m->add_flag("--batch-invariant", o.batch_invariant,
              "steps whose rows do not depend on the batch (rat generate/serve "
              "--batch-invariant): what that costs");
  m->add_flag("--json", o.json, "one JSON object per config");
  m->callback([&run] { run = [] { return run_model_bench(o); }; });
}

}  // namespace rat::cli
