// `rat bench model`: whole-model decoding in the paper's protocol (SPEC.md
// "efficiency protocol"): tokens/s of one decode step of B sequences at
// position T-1 with full caches, and the paper's "maximum throughput": the
// largest batch whose weights + caches fit a memory budget, and its tokens/s.
// Caches hold random values (filling them by prefill would dominate the run
// and does not change the work of a step).
#include <cstdio>
#include <random>
#include <vector>

#include "cli/commands.h"
#include "generate/decoder.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/machine.h"
#include "util/timer.h"

namespace rat::cli {

namespace {

struct ModelBenchOpts {
  std::string mixer = "rat", mode = "decode", dtype = "f32", cache_dtype = "bf16";
  int64_t layers = 4, d_model = 2048, d_head = 128, chunk = 16, window = 1024, ngroups = 2;
  int64_t vocab = 32000, seq = 4096, batch = 8, max_batch = 1 << 16;
  double memory_gib = 16;
  int repeats = 3;
  bool json = false;
};

ModelConfig bench_config(const ModelBenchOpts& o) {
  ModelConfig c;
  c.seq_len = o.seq;
  c.vocab_size = o.vocab;
  c.num_bytes = o.vocab > 65536 ? 4 : 2;
  c.num_layers = o.layers;
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
  if (o.mixer == "hybrid") {  // the paper's: rat on even layers, local attention on odd
    c.backbone = "sequence_interleave";
    c.interleave_step = 2;
    c.seq_cell1 = cell(MixerKind::kRat);
    c.seq_cell = cell(MixerKind::kLocalAttention);
  } else if (o.mixer == "rat") {
    c.seq_cell = cell(MixerKind::kRat);
  } else if (o.mixer == "attention") {
    c.seq_cell = cell(MixerKind::kAttention);
  } else if (o.mixer == "local_attention") {
    c.seq_cell = cell(MixerKind::kLocalAttention);
  } else if (o.mixer == "rnn") {
    c.seq_cell = cell(MixerKind::kRnn);
  } else {
    throw Error("--mixer: '" + o.mixer + "', expected rat, attention, local_attention, rnn or hybrid");
  }
  c.resolve("bench model");
  return c;
}

// Median seconds of one step of B sequences at position T-1.
double time_decode(Model& model, int64_t B, int64_t T, bool bf16, int repeats,
                   int64_t* cache_per_seq) {
  Decoder dec(model, B, T, bf16);
  *cache_per_seq = dec.cache_bytes_per_sequence();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (MixerState& st : dec.states()) {
    for (auto* v : {&st.k, &st.v, &st.run_k, &st.run_v})
      for (float& f : *v) f = nd(rng);
    for (auto* v : {&st.k16, &st.v16})
      for (uint16_t& h : *v) h = uint16_t(0x3f80 + (rng() & 0x7f));
  }
  std::vector<int64_t> slots(static_cast<size_t>(B));
  std::vector<int32_t> ids(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) slots[size_t(b)] = b, ids[size_t(b)] = int32_t(rng() % 1000);
  std::vector<float> logits(static_cast<size_t>(B * model.config().vocab_size));
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {  // the first is a warm-up
    for (int64_t b = 0; b < B; ++b) dec.assume_length(b, T - 1);
    double t0 = now_seconds();
    dec.step(slots.data(), ids.data(), B, logits.data());
    if (r > 0) times.push_back(now_seconds() - t0);
  }
  return median(times);
}

int run_bench_model(const ModelBenchOpts& o) {
  if (o.mode != "decode" && o.mode != "throughput")
    throw Error("--mode: '" + o.mode + "', expected decode or throughput");
  if (o.cache_dtype != "f32" && o.cache_dtype != "bf16")
    throw Error("--cache-dtype: '" + o.cache_dtype + "', expected f32 or bf16");
  if (o.seq < 2 || o.batch <= 0) throw Error("--seq must be >= 2 and --batch positive");
  const bool bf16 = o.cache_dtype == "bf16";
  ModelConfig cfg = bench_config(o);
  Model model(cfg);
  model.init(1);
  if (o.dtype == "bf16")
    model.set_precision(Precision::kBF16);
  else if (o.dtype != "f32")
    throw Error("--dtype: '" + o.dtype + "', expected f32 or bf16");
  const double weight_bytes = double(model.num_params()) * 4.0;

  int64_t B = o.batch;
  int64_t per_seq = 0;
  if (o.mode == "throughput") {
    {
      Decoder one(model, 1, o.seq, bf16);
      per_seq = one.cache_bytes_per_sequence();
    }
    // Besides its cache, a sequence in a step costs its logits row and a few
    // rows of activations per layer (small next to the cache).
    const double per_row = double(per_seq) + 4.0 * double(cfg.vocab_size + 16 * cfg.d_model);
    // The model keeps a gradient buffer as large as its parameters (training
    // layout): it counts against the budget too.
    const double free = o.memory_gib * double(int64_t(1) << 30) - 2.0 * weight_bytes;
    B = std::min<int64_t>(o.max_batch, int64_t(free / per_row));
    if (B < 1)
      throw Error("--memory-gib " + std::to_string(o.memory_gib) +
                  " does not hold the weights and one sequence's cache");
  }
  const double secs = time_decode(model, B, o.seq, bf16, o.repeats, &per_seq);
  const double tps = double(B) / secs;
  const double rss = max_rss_mib();
  if (o.json) {
    nlohmann::json j = {{"mixer", o.mixer},         {"mode", o.mode},
                        {"layers", o.layers},       {"d_model", o.d_model},
                        {"d_head", o.d_head},       {"vocab", o.vocab},
                        {"chunk", o.chunk},         {"window", o.window},
                        {"ngroups", o.ngroups},     {"position", o.seq - 1},
                        {"batch", B},               {"dtype", o.dtype},
                        {"cache_dtype", o.cache_dtype},
                        {"memory_gib", o.mode == "throughput" ? o.memory_gib : 0.0},
                        {"step_ms", secs * 1e3},    {"tokens_per_s", tps},
                        {"cache_bytes_per_sequence", per_seq},
                        {"weight_bytes", weight_bytes},
                        {"max_rss_mib", rss},       {"machine", machine_description()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("machine: %s\n", machine_description().c_str());
    std::printf("model %s: %lld layers, D=%lld P=%lld V=%lld (L=%lld G=%lld W=%lld), %.0fM "
                "parameters, %s cache\n",
                o.mixer.c_str(), (long long)o.layers, (long long)o.d_model, (long long)o.d_head,
                (long long)o.vocab, (long long)o.chunk, (long long)o.ngroups, (long long)o.window,
                double(model.num_params()) / 1e6, o.cache_dtype.c_str());
    if (o.mode == "throughput")
      std::printf("  memory budget %.1f GiB: largest batch %lld (cache %.2f MiB per sequence)\n",
                  o.memory_gib, (long long)B, double(per_seq) / (1 << 20));
    std::printf("  decode step at position %lld, batch %lld: %.1f ms, %.1f tokens/s "
                "(cache %.2f MiB per sequence)\n",
                (long long)(o.seq - 1), (long long)B, secs * 1e3, tps,
                double(per_seq) / (1 << 20));
    std::printf("  peak resident memory %.0f MiB\n", rss);
  }
  return 0;
}

}  // namespace

void register_bench_model(CLI::App* bench, Runner& run) {
  static ModelBenchOpts o;
  auto* c = bench->add_subcommand(
      "model",
      "Whole-model decoding: one step of --batch sequences at position --seq - 1 with full\n"
      "caches (--mode decode), or the largest batch whose weights and caches fit --memory-gib\n"
      "and its tokens/s (--mode throughput: the paper's maximum generation throughput).\n"
      "Weights are random (SPEC init); caches hold random values.\n"
      "Example: rat bench model --mixer hybrid --layers 4 --mode throughput --memory-gib 16");
  c->add_option("--mixer", o.mixer, "rat | attention | local_attention | rnn | hybrid")
      ->capture_default_str();
  c->add_option("--mode", o.mode, "decode | throughput")->capture_default_str();
  c->add_option("--layers", o.layers, "number of blocks")->capture_default_str();
  c->add_option("--d-model", o.d_model, "model width D (FFN 4D)")->capture_default_str();
  c->add_option("--d-head", o.d_head, "head width P")->capture_default_str();
  c->add_option("--vocab", o.vocab, "vocabulary size")->capture_default_str();
  c->add_option("--chunk", o.chunk, "RAT chunk size L")->capture_default_str();
  c->add_option("--ngroups", o.ngroups, "RAT query/key groups")->capture_default_str();
  c->add_option("--window", o.window, "local attention window")->capture_default_str();
  c->add_option("--seq", o.seq, "sequence length T (the step is at position T-1)")
      ->capture_default_str();
  c->add_option("--batch", o.batch, "batch size (decode mode)")->capture_default_str();
  c->add_option("--memory-gib", o.memory_gib, "memory budget (throughput mode)")
      ->capture_default_str();
  c->add_option("--max-batch", o.max_batch, "cap on the batch (throughput mode)")
      ->capture_default_str();
  c->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  c->add_option("--cache-dtype", o.cache_dtype, "f32 | bf16 cache storage")->capture_default_str();
  c->add_option("--repeats", o.repeats, "timed steps (median reported)")->capture_default_str();
  c->add_flag("--json", o.json, "one JSON object");
  c->callback([&run] { run = [] { return run_bench_model(o); }; });
}

}  // namespace rat::cli
