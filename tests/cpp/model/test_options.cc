// The authors' model options (issue 12 point 4): `ln`, `bias`, `dropout` and
// `init` in config files (defaults from the backbone, per-cell values, round
// trips, errors), the tensors each adds (state_dict names), the init schemes'
// statistics, the default init drawing exactly what it drew before the
// schemes, and dropout's counter-based masks (fraction, scaling, same mask in
// backward, resume bit for bit). The forward / backward / decode of every
// option against the PyTorch oracle: tests/python/cases/{act,ln,dropout}_*.yaml.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kernels/dropout.h"
#include "model/config.h"
#include "model/model.h"
#include "model/params.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "train/experiment.h"
#include "train/trainer.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

// The authors' resolved shape: backbone-wide options, one cell overriding.
constexpr const char* kOptions = R"(
data: {seq_len: 16, vocab_size: 50}
model:
  backbone:
    _name_: sequence_interleave
    num_layers: 3
    d_model: 32
    interleave_step: 2
    ln: layernorm
    bias: false
    dropout: 0.1
    init: {_name_: xavier, initializer_range: 0.02}
    seq_cell: {_name_: rat, d_head: 8, chunk_size: 4, ln: layernorm, dropout: 0.1,
               init: {_name_: fixed}}
    seq_cell1: {_name_: attention, d_head: 8, bias: true}
    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: relusquared}
  embedding:
    dropout: 0.3
    vocab_size: 50
    pe: {_name_: rope_interrope, base: 10000}
  head: {init: {_name_: torch}}
task: {tie_embedding: false}
)";

TEST(ModelOptions, KeysTakeTheBackboneDefaultsAndCellValues) {
  TempDir dir;
  const ModelConfig c = load_model_config(dir.write("c.yaml", kOptions));
  EXPECT_EQ(c.ln, NormKind::kLayerNorm);
  EXPECT_EQ(c.ffn.ln, NormKind::kLayerNorm);  // from the backbone
  EXPECT_FALSE(c.ffn.bias);
  EXPECT_DOUBLE_EQ(c.ffn.dropout, 0.1);
  EXPECT_EQ(c.ffn.act, Activation::kReluSquared);
  EXPECT_EQ(c.layers[0].kind, MixerKind::kAttention);
  EXPECT_TRUE(c.layers[0].bias);  // the cell's own value
  EXPECT_EQ(c.layers[0].ln, NormKind::kLayerNorm);
  EXPECT_EQ(c.layers[1].kind, MixerKind::kRat);
  EXPECT_FALSE(c.layers[1].bias);
  EXPECT_EQ(c.init.scheme, InitScheme::kXavier);
  EXPECT_EQ(c.embedding_init.scheme, InitScheme::kXavier);
  EXPECT_EQ(c.head_init.scheme, InitScheme::kTorch);
}

TEST(ModelOptions, DefaultsAreTheAuthors) {
  TempDir dir;
  const ModelConfig c = load_model_config(dir.write("c.yaml", R"(
data: {vocab_size: 50}
model:
  backbone:
    num_layers: 1
    d_model: 16
    seq_cell: {_name_: attention, d_head: 8}
    hidden_cell: {d_ffn: 32}
  embedding: {pe: {_name_: rope}}
)"));
  EXPECT_EQ(c.ln, NormKind::kRmsNorm);
  EXPECT_EQ(c.ffn.ln, NormKind::kRmsNorm);
  EXPECT_EQ(c.layers[0].ln, NormKind::kRmsNorm);
  EXPECT_FALSE(c.layers[0].bias);
  EXPECT_FALSE(c.ffn.bias);
  EXPECT_EQ(c.ffn.dropout, 0.0);
  EXPECT_EQ(c.ffn.act, Activation::kGelu);
  EXPECT_EQ(c.init.scheme, InitScheme::kFixed);
  EXPECT_EQ(c.init.initializer_range, 0.02);
}

TEST(ModelOptions, SaveThenLoadKeepsEveryOption) {
  TempDir dir;
  const ModelConfig a = load_model_config(dir.write("c.yaml", kOptions));
  const std::string p1 = dir.file("s1.yaml"), p2 = dir.file("s2.yaml");
  save_model_config(a, p1);
  const ModelConfig b = load_model_config(p1);
  EXPECT_EQ(b.ln, a.ln);
  EXPECT_EQ(b.ffn.ln, a.ffn.ln);
  EXPECT_EQ(b.ffn.bias, a.ffn.bias);
  EXPECT_EQ(b.ffn.dropout, a.ffn.dropout);
  EXPECT_EQ(b.ffn.act, a.ffn.act);
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(b.layers[i].ln, a.layers[i].ln) << i;
    EXPECT_EQ(b.layers[i].bias, a.layers[i].bias) << i;
  }
  for (auto [x, y] : {std::pair{a.init, b.init}, std::pair{a.embedding_init, b.embedding_init},
                      std::pair{a.head_init, b.head_init}}) {
    EXPECT_EQ(x.scheme, y.scheme);
    EXPECT_EQ(x.initializer_range, y.initializer_range);
  }
  save_model_config(b, p2);
  EXPECT_EQ(slurp(p1), slurp(p2));
}

TEST(ModelOptions, BadValuesNameKeyAndChoices) {
  TempDir dir;
  auto with = [&](const std::string& backbone_extra, const std::string& cell = "attention") {
    return dir.write("bad.yaml",
                     "data: {vocab_size: 50}\nmodel:\n  backbone:\n"
                     "    num_layers: 1\n    d_model: 16\n" +
                         backbone_extra + "    seq_cell: {_name_: " + cell +
                         ", d_head: 8}\n    hidden_cell: {d_ffn: 32}\n"
                         "  embedding: {pe: {_name_: interrope}}\n");
  };
  std::string msg = error_of([&] { load_model_config(with("    ln: batchnorm\n")); });
  EXPECT_HAS(msg, "bad.yaml:6: model.backbone.ln: unknown norm 'batchnorm'");
  EXPECT_HAS(msg, "rmsnorm, layernorm, identity");
  msg = error_of([&] { load_model_config(with("    bias: true\n", "rat")); });
  EXPECT_HAS(msg, "model.backbone.seq_cell.bias");
  EXPECT_HAS(msg, "assert bias is False");
  msg = error_of([&] { load_model_config(with("    dropout: 1.0\n", "rat")); });
  EXPECT_HAS(msg, "model.backbone.dropout: got 1, expected a probability in [0, 1)");
  msg = error_of([&] { load_model_config(with("    init: {_name_: kaiming}\n", "rat")); });
  EXPECT_HAS(msg, "model.backbone.init._name_: unknown init scheme 'kaiming'");
  EXPECT_HAS(msg, "fixed, xavier, uniform, torch_uniform, torch");
  msg = error_of([&] { load_model_config(with("    init: {_name_: fixed, range: 1}\n", "rat")); });
  EXPECT_HAS(msg, "unknown key 'model.backbone.init.range'");
  msg = error_of([&] { load_model_config(with("    act: tanh\n", "rat")); });
  EXPECT_HAS(msg, "unknown key 'model.backbone.act'");
}

std::vector<std::string> names_of(const ModelConfig& c) {
  std::vector<std::string> n;
  const ParamLayout layout(c);  // the specs belong to it: no temporary in the loop
  for (const ParamSpec& s : layout.specs()) n.push_back(s.name);
  return n;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

ModelConfig attention_model(NormKind ln, bool bias) {
  ModelConfig c;
  c.vocab_size = 2048, c.seq_len = 16, c.num_layers = 1, c.d_model = 256;
  c.seq_cell.kind = MixerKind::kAttention, c.seq_cell.d_head = 64;
  c.seq_cell.ln = ln, c.seq_cell.bias = bias;
  c.ffn = {768, Activation::kGelu, bias, ln};
  c.ln = ln;
  c.tie_embedding = false;
  c.resolve("attention_model");
  return c;
}

// The state_dict names the authors' modules give (torch.nn.LayerNorm's .bias,
// nn.Linear's .bias; nn.Identity owns none).
TEST(ModelOptions, TensorNamesPerOption) {
  const auto ln = names_of(attention_model(NormKind::kLayerNorm, true));
  for (const char* n :
       {"backbone.ln.weight", "backbone.ln.bias", "backbone.layers.0.seq_layer.input_norm.weight",
        "backbone.layers.0.seq_layer.input_norm.bias", "backbone.layers.0.seq_layer.in_proj.bias",
        "backbone.layers.0.seq_layer.out_proj.bias", "backbone.layers.0.hidden_layer.ln.weight",
        "backbone.layers.0.hidden_layer.ln.bias", "backbone.layers.0.hidden_layer.fc1.bias",
        "backbone.layers.0.hidden_layer.fc2.bias"})
    EXPECT_TRUE(has(ln, n)) << n;
  const auto id = names_of(attention_model(NormKind::kIdentity, false));
  for (const auto& n : id) {
    EXPECT_EQ(n.find("norm"), std::string::npos) << n;
    EXPECT_EQ(n.find("ln."), std::string::npos) << n;
    EXPECT_EQ(n.find(".bias"), std::string::npos) << n;
  }
  const auto rms = names_of(attention_model(NormKind::kRmsNorm, false));
  EXPECT_TRUE(has(rms, "backbone.ln.weight"));
  EXPECT_FALSE(has(rms, "backbone.ln.bias"));
}

struct Stats {
  double mean = 0, sd = 0, max_abs = 0;
  int64_t n = 0;
};
Stats stats(const float* p, int64_t n) {
  Stats s;
  s.n = n;
  for (int64_t i = 0; i < n; ++i) s.mean += p[i];
  s.mean /= double(n);
  for (int64_t i = 0; i < n; ++i) {
    s.sd += (p[i] - s.mean) * (p[i] - s.mean);
    s.max_abs = std::max(s.max_abs, std::fabs(double(p[i])));
  }
  s.sd = std::sqrt(s.sd / double(n));
  return s;
}

// One tensor against its distribution: N(0, sd) or U(-r, r) (sd = r / sqrt 3).
// Tolerances are 6 standard errors (the seed is fixed, so this is a bound on
// a wrong scheme, not a flaky draw): the mean's SE is sd / sqrt(n); the sample
// sd's relative SE is sqrt(1 / (2n)) for a normal and sqrt(1 / (5n)) for a
// uniform (Var(x^2) = 4 r^4 / 45 against E x^2 = r^2 / 3).
void expect_dist(const std::string& name, const float* p, int64_t n, bool uniform, double scale) {
  SCOPED_TRACE(name);
  const Stats s = stats(p, n);
  const double sd = uniform ? scale / std::sqrt(3.0) : scale;
  EXPECT_LT(std::fabs(s.mean), 6 * sd / std::sqrt(double(n)));
  EXPECT_NEAR(s.sd / sd, 1.0, 6 * std::sqrt(uniform ? 0.2 / double(n) : 0.5 / double(n)));
  if (uniform) {
    EXPECT_LE(s.max_abs, scale);
    EXPECT_GT(s.max_abs, scale * (1 - 20.0 / double(n)));  // the range is covered
  }
}

TEST(ModelOptions, InitSchemesDrawTheAuthorsDistributions) {
  for (InitScheme scheme : {InitScheme::kFixed, InitScheme::kXavier, InitScheme::kUniform,
                            InitScheme::kTorchUniform, InitScheme::kTorch}) {
    SCOPED_TRACE(init_name(scheme));
    ModelConfig c = attention_model(NormKind::kLayerNorm, true);
    c.init = c.embedding_init = c.head_init = {scheme, 0.05};
    const ParamLayout layout(c);
    std::vector<float> w(size_t(layout.total()), std::nanf(""));
    layout.init(w.data(), 17);
    for (const ParamSpec& s : layout.specs()) {
      const float* p = w.data() + s.offset;
      const bool bias = s.name.size() > 5 && s.name.substr(s.name.size() - 5) == ".bias";
      const bool norm =
          s.name.find("norm") != std::string::npos || s.name.find("ln.") != std::string::npos;
      const double r = 1.0 / std::sqrt(double(s.shape.back()));
      if (norm) {  // weights 1, biases 0 whatever the scheme (the authors' Base._init_weights)
        for (int64_t i = 0; i < s.numel; ++i) ASSERT_EQ(p[i], bias ? 0.f : 1.f) << s.name;
        continue;
      }
      if (bias) {
        if (scheme == InitScheme::kTorchUniform || scheme == InitScheme::kTorch) {
          // U(+-1/sqrt(fan_in)), fan_in the weight's input width (in_proj, out_proj, fc1: 256; fc2:
          // 768)
          const double fan_in = s.name.find("fc2") != std::string::npos ? 768 : 256;
          expect_dist(s.name, p, s.numel, true, 1.0 / std::sqrt(fan_in));
        } else {
          for (int64_t i = 0; i < s.numel; ++i) ASSERT_EQ(p[i], 0.f) << s.name;
        }
        continue;
      }
      const bool emb = s.name == "embedding.wte.weight";
      switch (scheme) {
        case InitScheme::kFixed: expect_dist(s.name, p, s.numel, false, 0.05); break;
        case InitScheme::kXavier: expect_dist(s.name, p, s.numel, false, r); break;
        case InitScheme::kUniform:
        case InitScheme::kTorchUniform: expect_dist(s.name, p, s.numel, true, r); break;
        case InitScheme::kTorch:
          if (emb)
            expect_dist(s.name, p, s.numel, false, 1.0);  // nn.Embedding: N(0, 1)
          else
            expect_dist(s.name, p, s.numel, true, r);  // nn.Linear: kaiming_uniform(a = sqrt 5)
          break;
      }
    }
  }
}

// The default (fixed 0.02) draws bit for bit what rat drew before the schemes
// existed: one mt19937_64, one std::normal_distribution<float>(0, 0.02) over
// the weights in registry order, zero biases, unit norms, log U(1, M - 1) gate biases.
TEST(ModelOptions, DefaultInitIsUnchanged) {
  TempDir dir;
  const ModelConfig c = load_model_config(dir.write("c.yaml", R"(
data: {seq_len: 12, vocab_size: 60}
model:
  backbone:
    _name_: sequence_interleave
    num_layers: 3
    d_model: 16
    seq_cell: {_name_: rnn}
    seq_cell1: {_name_: rat, d_head: 8, chunk_size: 5}
    hidden_cell: {_name_: ffn, d_ffn: 24, bias: true}
  embedding: {pe: {_name_: interrope}}
task: {tie_embedding: false}
)"));
  const ParamLayout layout(c);
  std::vector<float> got(size_t(layout.total()), 0.f), want(got.size(), 0.f);
  layout.init(got.data(), 5);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.f, 0.02f);
  for (const ParamSpec& s : layout.specs()) {
    float* p = want.data() + s.offset;
    const bool bias = s.name.substr(s.name.size() - 5) == ".bias";
    if (s.name.find("gate_bias") != std::string::npos) {
      const int64_t M =
          s.init == Init::kGateBiasSeq ? c.seq_len : c.layers[size_t(s.layer)].chunk_size;
      std::uniform_real_distribution<float> u(1.f, float(M - 1));
      for (int64_t i = 0; i < s.numel; ++i) p[i] = std::log(u(rng));
    } else if (s.name.find("ln.") != std::string::npos ||
               s.name.find("norm") != std::string::npos) {
      for (int64_t i = 0; i < s.numel; ++i) p[i] = 1.f;
    } else if (!bias) {
      for (int64_t i = 0; i < s.numel; ++i) p[i] = normal(rng);
    }
  }
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(float)), 0) << "float " << i;
}

// --- dropout ----------------------------------------------------------------

TEST(Dropout, MaskFractionScalingAndBackwardMask) {
  const int64_t n = 1 << 20;
  std::vector<float> z(static_cast<size_t>(n)), r(z.size()), y(z.size()), dz(z.size());
  for (int64_t i = 0; i < n; ++i) z[size_t(i)] = 1.f + float(i % 7), r[size_t(i)] = -0.5f;
  for (double p : {0.0, 0.1, 0.5, 0.9}) {
    SCOPED_TRACE(p);
    const uint64_t key = dropout_key(3, 11, 2);
    dropout_add(z.data(), r.data(), y.data(), n, p, key);
    dropout_backward(z.data(), dz.data(), n, p, key);
    int64_t dropped = 0;
    const float scale = float(1.0 / (1.0 - p));
    for (int64_t i = 0; i < n; ++i) {
      const bool drop = y[size_t(i)] == -0.5f;
      dropped += drop;
      ASSERT_EQ(y[size_t(i)], drop ? -0.5f : -0.5f + z[size_t(i)] * scale) << i;
      ASSERT_EQ(dz[size_t(i)], drop ? 0.f : z[size_t(i)] * scale) << i;  // the same mask
    }
    // 6 binomial standard errors.
    EXPECT_NEAR(double(dropped) / double(n), p, 6 * std::sqrt(p * (1 - p) / double(n)) + 1e-12);
  }
  // Different streams and sites draw different masks; the same key the same.
  std::vector<float> y2(z.size());
  dropout_add(z.data(), r.data(), y.data(), n, 0.5, dropout_key(3, 11, 2));
  dropout_add(z.data(), r.data(), y2.data(), n, 0.5, dropout_key(3, 12, 2));
  EXPECT_NE(y, y2);
  dropout_add(z.data(), r.data(), y2.data(), n, 0.5, dropout_key(3, 11, 3));
  EXPECT_NE(y, y2);
  dropout_add(z.data(), r.data(), y2.data(), n, 0.5, dropout_key(3, 11, 2));
  EXPECT_EQ(y, y2);
}

// splitmix64 is the published function: its first outputs from state 0.
TEST(Dropout, SplitMix64KnownValues) {
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(splitmix64(0x9E3779B97F4A7C15ull), 0x6E789E6AA1B965F4ull);
}

ModelConfig dropout_model(double p) {
  ModelConfig c = attention_model(NormKind::kRmsNorm, false);
  c.vocab_size = 64, c.d_model = 32, c.num_layers = 2;
  c.seq_cell.d_head = 8;
  c.ffn = {48, Activation::kGelu, true, NormKind::kRmsNorm, p};
  c.resolve("dropout_model");
  return c;
}

TEST(Dropout, TrainingOnlyAndNumberedByStream) {
  const int64_t B = 2, T = 8;
  const std::vector<int32_t> ids = rat::testing::random_ids(B * T, 64, 1);
  const std::vector<int32_t> labels = rat::testing::random_ids(B * T, 64, 2);
  Model off(dropout_model(0.0)), on(dropout_model(0.3));
  off.init(4), on.init(4);
  // Scoring (no training) never drops: the two models agree bit for bit.
  std::vector<float> la(size_t(B * T * 64)), lb(la.size());
  off.logits(ids.data(), B, T, la.data());
  on.logits(ids.data(), B, T, lb.data());
  EXPECT_EQ(la, lb);
  auto train_loss = [&](Model& m, uint64_t stream) {
    m.zero_grads();
    m.set_dropout_stream(9, stream);
    const CeResult r = m.forward_backward(ids.data(), labels.data(), B, T, true);
    return std::pair{r.loss_sum, std::vector<float>(m.grads(), m.grads() + m.layout().total())};
  };
  const auto a = train_loss(on, 1), b = train_loss(on, 1), c = train_loss(on, 2);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);  // the same stream: the same masks
  EXPECT_NE(a.first, c.first);
  const auto o = train_loss(off, 1);
  EXPECT_NE(a.first, o.first);  // dropout did something
}

// A run with dropout stopped and resumed from its checkpoint logs the losses
// of the straight run bit for bit: the masks are a function of the step.
TEST(Dropout, ResumeEqualsStraightRun) {
  TempDir dir;
  namespace fs = std::filesystem;
  std::vector<uint16_t> tok(6000);
  std::mt19937 rng(1);
  for (auto& t : tok) t = uint16_t(3 + rng() % 61);
  std::ofstream(dir.file("train.bin"), std::ios::binary)
      .write(reinterpret_cast<const char*>(tok.data()), std::streamsize(tok.size() * 2));
  const std::string cfg = dir.write("exp.yaml", R"(
data: {seq_len: 16, vocab_size: 64, num_bytes: 2, batch_size: 2, global_batch_size: 4,
       train: {_name_: lm_ordered, tokenized_file_path: )" +
                                                    dir.file("train.bin") + R"(}}
model:
  backbone: {_name_: sequence, num_layers: 2, d_model: 32, dropout: 0.3,
    seq_cell: {_name_: rat, d_head: 8, chunk_size: 4},
    hidden_cell: {_name_: ffn, d_ffn: 48, bias: true}}
  embedding: {vocab_size: 64, pe: {_name_: interrope}}
optim:
  optimizer: {_name_: adamw, lr: 3.0e-3}
  lr_scheduler: {_name_: cosine, warmup_iter: 0.2}
trainer: {seed: 7, max_steps: 6, log_interval: 1, save_checkpoint: true, save_interval: 0.3,
  save_dir: )" + dir.file("run") + "}\n");
  auto losses = [](const std::string& metrics) {
    std::vector<double> out;
    std::ifstream f(metrics);
    for (std::string line; std::getline(f, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) out.push_back(j["loss"].get<double>());
    }
    return out;
  };
  TrainOptions quiet;
  quiet.quiet = true;
  quiet.run_dir = dir.file("straight");
  train(load_experiment(cfg, {}), quiet);
  const std::vector<double> la = losses(dir.file("straight/metrics.jsonl"));
  ASSERT_EQ(la.size(), 6u);
  TrainOptions part = quiet;
  part.run_dir = dir.file("resumed");
  part.stop_after = 2;
  train(load_experiment(cfg, {}), part);
  part.stop_after = -1;
  train(load_experiment(cfg, {"trainer.load_checkpoint=true"}), part);
  const std::vector<double> lb = losses(dir.file("resumed/metrics.jsonl"));
  ASSERT_EQ(lb.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(la[i], lb[i]) << "step " << i + 1;
  // Without dropout the same run logs other losses (the masks mattered).
  quiet.run_dir = dir.file("nodrop");
  train(load_experiment(cfg, {"model.backbone.dropout=0"}), quiet);
  const std::vector<double> lc = losses(dir.file("nodrop/metrics.jsonl"));
  ASSERT_EQ(lc.size(), 6u);
  EXPECT_NE(la[0], lc[0]);
}

}  // namespace
}  // namespace rat
