// `rat bench`: the paper's single-layer efficiency protocol (SPEC.md) on this
// machine, with the GEMM rate and read bandwidth measured in the same run so
// every figure comes with the ceiling it should be compared against.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <vector>

#include <omp.h>

#include "cli/commands.h"
#include "kernels/ceilings.h"
#include "kernels/gemm.h"
#include "model/enum_names.h"
#include "model/layers.h"
#include "model/mixer_kinds.h"
#include "model/params.h"
#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/machine.h"
#include "util/timer.h"

namespace rat::cli {

namespace {

struct BenchOpts {
  std::string layer = "rat", mode = "train", dtype = "f32", cache_dtype = "f32";
  int64_t chunk = 16, window = 1024, d_model = 1024, d_head = 64, seq = 4096, batch = 1;
  int64_t ngroups = 2;  // the authors' default (configs/model/backbone/layer/rat.yaml)
  int repeats = 5, warmup = 1;
  int64_t gemm_n = 2048;
  bool json = false;
};

// SPEC.md "efficiency protocol", decode: one step of B sequences at position
// T-1 with a full cache. A step reads every weight once (one GEMM over the
// batch) and each sequence's cache once, so its floor is bytes / bandwidth.
int run_layer_decode(const BenchOpts& o, const ModelConfig& cfg, Block& block, const MixerConfig& m,
                     Precision prec) {
  const int64_t B = o.batch, T = o.seq, D = o.d_model, pos = T - 1;
  DecodeState st;
  st.max_batch = B, st.max_len = T;
  st.bf16 = parse_flag(precision_names(), "--cache-dtype", o.cache_dtype) == Precision::kBF16;
  block.init_state(st);
  // A full cache of random values (what a prefill of T-1 tokens would leave:
  // the values do not change the work).
  st.fill_random(3);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(size_t(B * D)), y(size_t(B * D));
  for (float& f : x) f = nd(rng);
  std::vector<int64_t> slots(static_cast<size_t>(B)), positions(static_cast<size_t>(B), pos);
  for (int64_t b = 0; b < B; ++b) slots[size_t(b)] = b;
  auto step = [&] { block.step(x.data(), y.data(), slots.data(), positions.data(), B, st); };
  const double ms = median_seconds(step, std::max(o.warmup, 1), o.repeats) * 1e3;
  // Bytes a step must read: the layer's weights (f32, or their bf16 copies
  // with --dtype bf16: decode reads those, see Bf16WeightCache; the norm and
  // gate-bias vectors stay f32) and, per sequence, the cache rows its query
  // sees (K and V) plus running states (model/mixer_kinds.h).
  const double weights = mixer_weight_bytes(cfg, m, prec == Precision::kBF16);
  const double cache = mixer_decode_cache_bytes(cfg, m, pos, st.bf16) * double(B);
  const double bytes = weights + cache;
  const double bw = measure_read_bandwidth();
  const double floor_ms = bytes / (bw * 1e9) * 1e3;
  // The other floor: the step's products (projections over the batch, and
  // the query-key and weight-value dot products) at this run's GEMM rate. At
  // batch 64 the projections alone take longer than the bytes on 2 cores.
  const double flops = mixer_decode_flops(cfg, m, pos) * double(B);
  const double gemm_gflops = measure_gemm_rate(2048, prec, 3);
  const double compute_ms = flops / (gemm_gflops * 1e9) * 1e3;
  const double roofline_ms = std::max(floor_ms, compute_ms);
  const double tps = double(B) / (ms * 1e-3);
  const double rss = max_rss_mib();
  if (o.json) {
    nlohmann::json j = {
        {"layer", o.layer},
        {"mode", "decode"},
        {"position", pos},
        {"batch", B},
        {"d_model", D},
        {"d_head", o.d_head},
        {"chunk", m.kind == MixerKind::kRat ? o.chunk : 0},
        {"window", m.kind == MixerKind::kLocalAttention ? o.window : 0},
        {"ngroups", o.ngroups},
        {"dtype", canonical_name(precision_names(), "--dtype", o.dtype)},
        {"cache_dtype", canonical_name(precision_names(), "--cache-dtype", o.cache_dtype)},
        {"ms", ms},
        {"tokens_per_s", tps},
        {"weight_bytes", weights},
        {"cache_bytes_read", cache},
        {"cache_bytes_per_sequence", st.cache_bytes() / B},
        {"read_gbps", bw},
        {"achieved_gbps", bytes / (ms * 1e-3) / 1e9},
        {"bound_ms", floor_ms},
        {"bandwidth_fraction", floor_ms / ms},
        {"flops", flops},
        {"gemm_gflops", gemm_gflops},
        {"compute_bound_ms", compute_ms},
        {"roofline_ms", roofline_ms},
        {"max_rss_mib", rss},
        {"repeats", o.repeats},
        {"machine", machine_description()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("machine: %s\n", machine_description().c_str());
    std::printf(
        "layer %s (L=%lld W=%lld G=%lld) decode at position %lld, B=%lld D=%lld P=%lld "
        "%s, %s cache\n",
        o.layer.c_str(), (long long)o.chunk, (long long)o.window, (long long)o.ngroups,
        (long long)pos, (long long)B, (long long)D, (long long)o.d_head, o.dtype.c_str(),
        o.cache_dtype.c_str());
    std::printf("  %.3f ms per step (median of %d), %.0f tokens/s\n", ms, o.repeats, tps);
    std::printf("  read per step: weights %.2f MB + cache %.2f MB (%.1f KiB per sequence held)\n",
                weights / 1e6, cache / 1e6, double(st.cache_bytes() / B) / 1024.0);
    std::printf("  read bandwidth (same run): %.1f GB/s -> bound %.3f ms; step at %.0f%% of it\n",
                bw, floor_ms, 100.0 * floor_ms / ms);
    std::printf(
        "  products per step: %.2f GFLOP -> %.3f ms at this run's %s GEMM rate (%.0f "
        "GFLOP/s); max of the two bounds %.3f ms, step at %.0f%% of it\n",
        flops / 1e9, compute_ms, precision_name(prec), gemm_gflops, roofline_ms,
        100.0 * roofline_ms / ms);
    std::printf("  peak resident memory %.0f MiB\n", rss);
  }
  return 0;
}

int run_layer(const BenchOpts& o) {
  if (o.d_model <= 0 || o.d_head <= 0 || o.d_model % o.d_head)
    throw Error("--d-model must be a positive multiple of --d-head");
  if (o.seq <= 0 || o.batch <= 0) throw Error("--seq and --batch must be positive");
  if (o.mode != "train" && o.mode != "prefill" && o.mode != "decode")
    throw Error("--mode: '" + o.mode + "', expected train, prefill or decode");
  Precision prec = parse_flag(precision_names(), "--dtype", o.dtype);
  ModelConfig cfg;
  cfg.vocab_size = 16;
  cfg.d_model = o.d_model;
  cfg.num_layers = 1;
  cfg.seq_len = o.seq;
  cfg.ffn.d_ffn = 16;
  cfg.pe = PosEnc::kRopeInterRope;
  MixerConfig m;
  m.kind = mixer_kind_from_name(o.layer, "--layer");
  m.d_head = o.d_head;
  m.chunk_size = o.chunk;
  m.window_size = o.window;
  m.ngroups = o.ngroups;
  cfg.seq_cell = m;
  cfg.resolve("bench");
  ParamLayout layout(cfg);
  std::vector<float> params(size_t(layout.total())), grads(size_t(layout.total()), 0.f);
  layout.init(params.data(), 1);
  BlockEnv env;
  env.cfg = &cfg;
  env.prec = prec;
  // Inference modes: frozen weights rounded to bf16 once, not per step. Train
  // mode pays the per-call rounding a real training step pays.
  Bf16WeightCache w16cache;
  if (o.mode != "train") env.w16cache = &w16cache;
  auto block = make_mixer(&env, cfg.layers[0]);
  block->bind(layout.view(params.data()).layers[0], layout.view(grads.data()).layers[0]);

  if (o.mode == "decode") return run_layer_decode(o, cfg, *block, m, prec);

  const int64_t N = o.batch * o.seq, D = o.d_model;
  std::vector<float> x(size_t(N * D)), y(size_t(N * D)), dy(size_t(N * D)), dx(size_t(N * D));
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : x) v = nd(rng);
  for (auto& v : dy) v = nd(rng) * 1e-3f;
  const bool train = o.mode == "train";
  auto step = [&] {
    block->forward(x.data(), y.data(), o.batch, o.seq, train);
    if (train) {
      std::copy(dy.begin(), dy.end(), dx.begin());
      block->backward(x.data(), dx.data(), o.batch, o.seq);
    }
  };
  const double ms = median_seconds(step, o.warmup, o.repeats) * 1e3;
  // FLOPs: projections 2*N*D*(W_in + D) forward; softmax products 4*P per
  // scored pair per head (q.k and p*v) forward. Backward counts 2x forward
  // (input and weight gradients; the attention recompute is not counted).
  const double flops = double(o.batch) * (train ? mixer_train_flops(cfg, m, o.seq)
                                                : mixer_prefill_flops(cfg, m, o.seq));
  const double gflops = flops / (ms * 1e-3) / 1e9;
  const double gemm_rate = measure_gemm_rate(o.gemm_n, prec);
  const double rss = max_rss_mib();
  if (o.json) {
    nlohmann::json j = {{"layer", o.layer},
                        {"mode", o.mode},
                        {"seq", o.seq},
                        {"batch", o.batch},
                        {"d_model", o.d_model},
                        {"d_head", o.d_head},
                        {"chunk", m.kind == MixerKind::kRat ? o.chunk : 0},
                        {"window", m.kind == MixerKind::kLocalAttention ? o.window : 0},
                        {"ngroups", o.ngroups},
                        {"dtype", canonical_name(precision_names(), "--dtype", o.dtype)},
                        {"ms", ms},
                        {"flops", flops},
                        {"gflops", gflops},
                        {"gemm_gflops", gemm_rate},
                        {"gemm_fraction", gflops / gemm_rate},
                        {"max_rss_mib", rss},
                        {"repeats", o.repeats},
                        {"machine", machine_description()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("machine: %s\n", machine_description().c_str());
    std::printf("layer %s (L=%lld W=%lld G=%lld) %s, T=%lld B=%lld D=%lld P=%lld %s\n",
                o.layer.c_str(), (long long)o.chunk, (long long)o.window, (long long)o.ngroups,
                o.mode.c_str(), (long long)o.seq, (long long)o.batch, (long long)o.d_model,
                (long long)o.d_head, o.dtype.c_str());
    std::printf("  %.2f ms (median of %d), %.3g FLOPs, %.1f GFLOP/s\n", ms, o.repeats, flops,
                gflops);
    std::printf("  GEMM rate (%s, %lld^3, same run): %.1f GFLOP/s -> %.1f%% of GEMM\n",
                o.dtype.c_str(), (long long)o.gemm_n, gemm_rate, 100.0 * gflops / gemm_rate);
    std::printf("  peak resident memory %.0f MiB\n", rss);
  }
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, Runner& run) {
  auto* bench = app.add_subcommand("bench", "Measure speed: layers, GEMM rate, memory bandwidth");
  bench->require_subcommand(1);
  static BenchOpts o;

  auto* layer = bench->add_subcommand(
      "layer",
      "Time one layer (norm + projections + mixer) in the paper's protocol.\n"
      "Example: rat bench layer --layer rat --chunk 16 --d-model 1024 --d-head 64 --seq 4096");
  layer->add_option("--layer", o.layer, mixer_kind_names())->capture_default_str();
  layer->add_option("--chunk", o.chunk, "RAT chunk size L")->capture_default_str();
  layer->add_option("--window", o.window, "local attention window")->capture_default_str();
  layer->add_option("--ngroups", o.ngroups, "RAT query/key groups")->capture_default_str();
  layer->add_option("--d-model", o.d_model, "model width D")->capture_default_str();
  layer->add_option("--d-head", o.d_head, "head width P")->capture_default_str();
  layer->add_option("--seq", o.seq, "sequence length T")->capture_default_str();
  layer->add_option("--batch", o.batch, "batch size B")->capture_default_str();
  layer->add_option("--dtype", o.dtype, "f32 | bf16 (GEMM inputs; fp32 accumulation)")
      ->capture_default_str();
  layer
      ->add_option("--mode", o.mode,
                   "train (forward+backward) | prefill (forward) | decode (one step of --batch "
                   "sequences at position --seq - 1 with a full cache)")
      ->capture_default_str();
  layer
      ->add_option("--cache-dtype", o.cache_dtype,
                   "decode: f32 | bf16 storage of K/V and chunk states")
      ->capture_default_str();
  layer->add_option("--repeats", o.repeats, "timed repeats (median reported)")
      ->capture_default_str();
  layer->add_option("--warmup", o.warmup, "untimed repeats first")->capture_default_str();
  layer->add_flag("--json", o.json, "one JSON object per line");
  layer->callback([&run] { run = [] { return run_layer(o); }; });

  auto* g = bench->add_subcommand("gemm", "Print this machine's GEMM rate (oneDNN, all threads)");
  g->add_option("--n", o.gemm_n, "square size")->capture_default_str();
  g->add_option("--dtype", o.dtype, "f32 | bf16")->capture_default_str();
  g->add_flag("--json", o.json, "JSON output");
  g->callback([&run] {
    run = [] {
      double r = measure_gemm_rate(o.gemm_n, parse_flag(precision_names(), "--dtype", o.dtype));
      if (o.json)
        std::printf("%s\n",
                    nlohmann::json{{"n", o.gemm_n},
                                   {"dtype", canonical_name(precision_names(), "--dtype", o.dtype)},
                                   {"gflops", r},
                                   {"machine", machine_description()}}
                        .dump()
                        .c_str());
      else
        std::printf("GEMM %s %lld^3: %.1f GFLOP/s (%s)\n", o.dtype.c_str(), (long long)o.gemm_n, r,
                    machine_description().c_str());
      return 0;
    };
  });

  auto* mem = bench->add_subcommand("memory", "Print this machine's memory read bandwidth");
  mem->add_flag("--json", o.json, "JSON output");
  mem->callback([&run] {
    run = [] {
      double bw = measure_read_bandwidth();
      if (o.json)
        std::printf(
            "%s\n",
            nlohmann::json{{"read_gbps", bw}, {"machine", machine_description()}}.dump().c_str());
      else
        std::printf("memory read bandwidth: %.1f GB/s (%s)\n", bw, machine_description().c_str());
      return 0;
    };
  });
}

}  // namespace rat::cli
