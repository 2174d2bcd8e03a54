// The mixer descriptors (src/model/mixer_kinds.h): their formulas against
// values worked out by hand below, name lookup and its message, the parameter
// registry they drive, and the authors' identity cell end to end (train,
// eval, generate).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "data/tokens.h"
#include "generate/generate.h"
#include "model/layers.h"
#include "model/mixer_kinds.h"
#include "model/model.h"
#include "model/params.h"
#include "test_util.h"
#include "train/evaluate.h"
#include "train/experiment.h"
#include "train/trainer.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace rat {
namespace {

// D 32; rat P 8, G 2, L 4; attention P 8; local_attention P 8, window 3.
ModelConfig small(MixerConfig cell) {
  ModelConfig c;
  c.vocab_size = 50;
  c.d_model = 32;
  c.num_layers = 1;
  c.seq_len = 10;
  c.ffn.d_ffn = 16;
  c.pe = PosEnc::kRopeInterRope;
  c.seq_cell = cell;
  c.resolve("test");
  return c;
}
MixerConfig cell(MixerKind k) { return {k, 8, 2, 4, 3}; }

TEST(MixerKinds, EveryKindHasItsDescriptorInEnumOrder) {
  const auto& all = mixer_kinds();
  ASSERT_EQ(all.size(), 5u);
  const char* names[] = {"rat", "attention", "local_attention", "rnn", "identity"};
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(int(all[i]->kind), int(i));
    EXPECT_STREQ(all[i]->name, names[i]);
    EXPECT_EQ(&mixer_kind_info(MixerKind(i)), all[i]);
    EXPECT_EQ(mixer_kind_from_name(names[i], "test"), MixerKind(i));
  }
  EXPECT_EQ(mixer_kind_names(), "rat, attention, local_attention, rnn, identity");
}

TEST(MixerKinds, UnknownNameListsKindsAndTheClosest) {
  auto message = [](const std::string& name) {
    try {
      mixer_kind_from_name(name, "cfg.yaml: model.backbone.seq_cell._name_");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("ratt"),
            "cfg.yaml: model.backbone.seq_cell._name_: unknown mixer 'ratt', expected one of rat, "
            "attention, local_attention, rnn, identity (closest: 'rat')");
  EXPECT_NE(message("idenity").find("(closest: 'identity')"), std::string::npos);
  EXPECT_NE(message("local_atention").find("(closest: 'local_attention')"), std::string::npos);
  EXPECT_NE(message("RNN").find("(closest: 'rnn')"), std::string::npos);
  EXPECT_EQ(find_mixer_kind("Identity"), nullptr);
}

TEST(MixerKinds, ProjectionWidthsAndTensors) {
  EXPECT_EQ(in_proj_width(small(cell(MixerKind::kRat)), cell(MixerKind::kRat)), 96 + 32);
  EXPECT_EQ(in_proj_width(small(cell(MixerKind::kAttention)), cell(MixerKind::kAttention)), 96);
  EXPECT_EQ(in_proj_width(small(cell(MixerKind::kRnn)), cell(MixerKind::kRnn)), 96);
  EXPECT_EQ(in_proj_width(small(cell(MixerKind::kIdentity)), cell(MixerKind::kIdentity)), 0);

  const ModelConfig rc = small(cell(MixerKind::kRat));
  auto t = mixer_kind_info(MixerKind::kRat).tensors(rc, rc.layers[0]);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].name, "input_norm.weight");
  EXPECT_EQ(t[1].name, "in_proj.weight");
  EXPECT_EQ(t[1].shape, (std::vector<int64_t>{128, 32}));
  EXPECT_EQ(t[2].shape, (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(t[3].name, "gate_bias");
  EXPECT_EQ(t[3].init, Init::kGateBiasChunk);
  const ModelConfig nc = small(cell(MixerKind::kRnn));
  EXPECT_EQ(mixer_kind_info(MixerKind::kRnn).tensors(nc, nc.layers[0]).back().init,
            Init::kGateBiasSeq);
  EXPECT_EQ(mixer_kind_info(MixerKind::kAttention).tensors(rc, cell(MixerKind::kAttention)).size(),
            3u);
  EXPECT_TRUE(
      mixer_kind_info(MixerKind::kIdentity).tensors(rc, cell(MixerKind::kIdentity)).empty());
}

TEST(MixerKinds, KeysScored) {
  const MixerConfig r = cell(MixerKind::kRat), a = cell(MixerKind::kAttention),
                    l = cell(MixerKind::kLocalAttention);
  // rat L 4: the t div 4 finished chunks plus the running state.
  EXPECT_EQ(keys_scored(r, 0), 1);
  EXPECT_EQ(keys_scored(r, 3), 1);
  EXPECT_EQ(keys_scored(r, 4), 2);
  EXPECT_EQ(keys_scored(r, 9), 3);
  EXPECT_EQ(keys_scored(a, 9), 10);
  EXPECT_EQ(keys_scored(l, 1), 2);
  EXPECT_EQ(keys_scored(l, 9), 4);  // window 3: keys 6..9
  EXPECT_EQ(keys_scored(cell(MixerKind::kRnn), 9), 0);
  EXPECT_EQ(keys_scored(cell(MixerKind::kIdentity), 9), 0);
  // T 10: rat 4*1 + 4*2 + 2*3; attention 1 + ... + 10; local 1 + 2 + 3 + 7*4.
  EXPECT_EQ(keys_scored_total(r, 10), 18.0);
  EXPECT_EQ(keys_scored_total(a, 10), 55.0);
  EXPECT_EQ(keys_scored_total(l, 10), 34.0);
}

TEST(MixerKinds, FlopsByHand) {
  const ModelConfig rc = small(cell(MixerKind::kRat)), ac = small(cell(MixerKind::kAttention));
  const MixerConfig &r = rc.layers[0], &a = ac.layers[0];
  // rat: matrices 128*32 + 32*32 = 5120 weights; 18 keys over T 10, 4*D = 128 per key.
  EXPECT_EQ(mixer_matmul_weights(rc, r), 5120.0);
  EXPECT_EQ(mixer_prefill_flops(rc, r, 10), 2.0 * 10 * 5120 + 128.0 * 18);  // 104704
  EXPECT_EQ(mixer_train_flops(rc, r, 10), 3.0 * 104704);
  // attention: 96*32 + 32*32 = 4096 weights, 55 keys.
  EXPECT_EQ(mixer_prefill_flops(ac, a, 10), 2.0 * 10 * 4096 + 128.0 * 55);  // 88960
  // One decode step at position 9: rat 3 keys, local_attention 4, attention 10.
  EXPECT_EQ(mixer_decode_flops(rc, r, 9), 10240.0 + 384.0);
  EXPECT_EQ(mixer_decode_flops(ac, cell(MixerKind::kLocalAttention), 9), 8192.0 + 512.0);
  EXPECT_EQ(mixer_decode_flops(ac, a, 9), 8192.0 + 1280.0);
  EXPECT_EQ(mixer_decode_flops(ac, cell(MixerKind::kRnn), 9), 8192.0);
  const ModelConfig ic = small(cell(MixerKind::kIdentity));
  EXPECT_EQ(mixer_train_flops(ic, ic.layers[0], 10), 0.0);
  EXPECT_EQ(mixer_decode_flops(ic, ic.layers[0], 9), 0.0);
}

TEST(MixerKinds, DecodeBytesByHand) {
  const ModelConfig rc = small(cell(MixerKind::kRat));
  const MixerConfig& r = rc.layers[0];
  // rat at position 9: chunks 0 and 1 finished (K and V: 4 rows of D 32),
  // plus the float32 running kt, vt (2 rows).
  EXPECT_EQ(mixer_decode_cache_bytes(rc, r, 9, false), (4 * 4 + 2 * 4) * 32.0);  // 768
  EXPECT_EQ(mixer_decode_cache_bytes(rc, r, 9, true), (4 * 2 + 2 * 4) * 32.0);   // 512
  EXPECT_EQ(mixer_decode_cache_bytes(rc, cell(MixerKind::kAttention), 9, false), 20 * 4 * 32.0);
  EXPECT_EQ(mixer_decode_cache_bytes(rc, cell(MixerKind::kLocalAttention), 9, false), 8 * 4 * 32.0);
  EXPECT_EQ(mixer_decode_cache_bytes(rc, cell(MixerKind::kLocalAttention), 1, true), 4 * 2 * 32.0);
  EXPECT_EQ(mixer_decode_cache_bytes(rc, cell(MixerKind::kRnn), 9, true), 4 * 32.0);
  EXPECT_EQ(mixer_decode_cache_bytes(rc, cell(MixerKind::kIdentity), 9, false), 0.0);
  // Weights: rat 5120 matrix weights + norm and gate bias (64 floats).
  EXPECT_EQ(mixer_weight_bytes(rc, r, false), 5120 * 4.0 + 64 * 4.0);
  EXPECT_EQ(mixer_weight_bytes(rc, r, true), 5120 * 2.0 + 64 * 4.0);
  EXPECT_EQ(mixer_weight_bytes(rc, cell(MixerKind::kAttention), false), 4096 * 4.0 + 32 * 4.0);
  EXPECT_EQ(mixer_weight_bytes(rc, cell(MixerKind::kIdentity), true), 0.0);
}

TEST(MixerKinds, Labels) {
  EXPECT_EQ(mixer_label(cell(MixerKind::kRat)), "rat(L4)");
  EXPECT_EQ(mixer_label(cell(MixerKind::kLocalAttention)), "local_attention(W3)");
  EXPECT_EQ(mixer_label(cell(MixerKind::kIdentity)), "identity");
}

// rat, identity, rat, identity: identity layers own FFN tensors only.
ModelConfig interleave(int64_t layers = 4) {
  ModelConfig c;
  c.vocab_size = 64;
  c.d_model = 16;
  c.num_layers = layers;
  c.seq_len = 16;
  c.ffn.d_ffn = 24;
  c.pe = PosEnc::kInterRope;
  c.backbone = "sequence_interleave";
  c.interleave_step = 2;
  c.seq_cell1 = {MixerKind::kRat, 8, 1, 4, 0};
  c.seq_cell = {MixerKind::kIdentity, 64, 1, 16, 0};
  c.resolve("test");
  return c;
}

TEST(MixerKinds, RegistryHasNoTensorsForIdentity) {
  const ModelConfig c = interleave();
  ParamLayout layout(c);
  for (const ParamSpec& s : layout.specs())
    EXPECT_EQ(s.name.find("layers.1.seq_layer"), std::string::npos) << s.name;
  EXPECT_NE(layout.find("backbone.layers.0.seq_layer.gate_bias"), nullptr);
  EXPECT_NE(layout.find("backbone.layers.1.hidden_layer.fc1.weight"), nullptr);
  EXPECT_EQ(layout.layer_begin(1), layout.find("backbone.layers.1.hidden_layer.ln.weight")->offset);
  EXPECT_EQ(layout.layer_begin(2),
            layout.find("backbone.layers.2.seq_layer.input_norm.weight")->offset);
  EXPECT_THROW(layout.layer_begin(4), Error);
}

TEST(MixerKinds, IdentityBlockPassesThrough) {
  const ModelConfig c = interleave();
  BlockEnv env;
  env.cfg = &c;
  auto b = make_mixer(&env, c.layers[1]);
  std::vector<float> x(3 * 5 * 16), y(x.size(), -1.f), dx(x.size());
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  for (float& v : dx) v = nd(rng);
  const std::vector<float> dy = dx;
  b->forward(x.data(), y.data(), 3, 5, true);
  EXPECT_EQ(y, x);
  b->backward(x.data(), dx.data(), 3, 5);
  EXPECT_EQ(dx, dy);
  DecodeState st;
  st.max_batch = 2, st.max_len = 8;
  b->init_state(st);
  EXPECT_EQ(st.cache_bytes(), 0);
  std::fill(y.begin(), y.end(), -1.f);
  const int64_t slot[2] = {1, 0}, pos[2] = {4, 0};
  b->step(x.data(), y.data(), slot, pos, 2, st);
  EXPECT_TRUE(std::equal(x.begin(), x.begin() + 32, y.begin()));
  EXPECT_EQ(y[32], -1.f);  // only n rows written
}

// With every mixer identity, position t's logits are those of token t alone
// (a mixer that let earlier tokens in would change them by O(1)).
TEST(MixerKinds, AllIdentityModelIsPerToken) {
  ModelConfig c = interleave(2);
  c.backbone = "sequence";
  c.seq_cell = {MixerKind::kIdentity, 64, 1, 16, 0};
  c.pe = PosEnc::kEmpty;
  c.resolve("test");
  Model m(c);
  m.init(3);
  const int64_t T = 7, V = c.vocab_size;
  std::vector<int32_t> ids = {5, 9, 5, 63, 0, 9, 12};
  std::vector<float> all(static_cast<size_t>(T * V)), one(static_cast<size_t>(V));
  m.logits(ids.data(), 1, T, all.data());
  for (int64_t t = 0; t < T; ++t) {
    m.logits(&ids[size_t(t)], 1, 1, one.data());
    // Equal up to the GEMMs' blocking over 7 rows vs 1 (float32 rounding).
    for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(all[size_t(t * V + v)], one[size_t(v)], 1e-5) << t;
  }
  EXPECT_NE(all[0], all[size_t(V)]);  // tokens 5 and 9 differ
}

void write_tokens(const fs::path& p, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> pat(23), t(static_cast<size_t>(n));
  for (auto& x : pat) x = uint16_t(3 + rng() % 60u);
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = pat[size_t(i % 23)];
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(t.data()), std::streamsize(t.size() * 2));
}

// `rat train`, `rat eval` and `rat generate` on rat / identity interleaved:
// training lowers the loss, the checkpoint reloads, and cached greedy decoding
// picks the argmax of a full forward at every step.
TEST(MixerKinds, IdentityInterleaveTrainsEvaluatesGenerates) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  const fs::path dir = tmp_dir.path();
  write_tokens(dir / "train.bin", 4000, 1);
  write_tokens(dir / "val.bin", 600, 1);
  {
    std::ofstream f(dir / "exp.yaml");
    f << "data: {seq_len: 16, vocab_size: 64, num_bytes: 2, batch_size: 4, global_batch_size: 4,\n"
      << "  train: {_name_: lm_ordered, tokenized_file_path: " << (dir / "train.bin").string()
      << "},\n  val: {_name_: lm_ordered, tokenized_file_path: " << (dir / "val.bin").string()
      << "}, val_samples: 8}\n"
      << "model:\n  backbone: {_name_: sequence_interleave, num_layers: 4, d_model: 16,\n"
      << "    interleave_step: 2, seq_cell: {_name_: identity},\n"
      << "    seq_cell1: {_name_: rat, d_head: 8, ngroups: 1, chunk_size: 4},\n"
      << "    hidden_cell: {_name_: ffn, d_ffn: 24, act_fn: gelu, bias: false}}\n"
      << "  embedding: {vocab_size: 64, pe: {_name_: interrope, base: 10000}}\n"
      << "task: {tie_embedding: true, ignore_index: -100}\n"
      << "optim:\n  optimizer: {_name_: adamw, lr: 1.0e-2, weight_decay: 0.0, betas: [0.9, 0.95], "
         "eps: 1.0e-8}\n"
      << "  lr_scheduler: {_name_: cosine, warmup_iter: 0.1, eta_min: 1.0e-4}\n"
      << "trainer: {seed: 1, dtype: float32, max_steps: 30, gradient_clipping: 1.0, "
         "log_interval: 10,\n  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, "
         "save_interval: 1.0,\n  save_dir: "
      << (dir / "run").string() << "}\n";
  }
  const Experiment e = load_experiment((dir / "exp.yaml").string(), {});
  TrainOptions opt;
  opt.quiet = true;
  opt.run_dir = (dir / "run").string();
  TrainSummary s = train(e, opt);
  EXPECT_EQ(s.steps_done, 30);
  ASSERT_TRUE(std::isfinite(s.last_loss));

  auto model = load_model_dir(s.latest_dir);
  ASSERT_EQ(model->config().layers[1].kind, MixerKind::kIdentity);
  TokenFile val((dir / "val.bin").string(), 2);
  const EvalResult trained = evaluate(*model, val, 16, 4);
  Model fresh(model->config());
  fresh.init(1);
  const EvalResult initial = evaluate(fresh, val, 16, 4);
  EXPECT_GT(trained.tokens, 0);
  // A random init scores about ln 64 = 4.16; the repeated pattern is learnt.
  EXPECT_GT(initial.loss, 3.5);
  EXPECT_LT(trained.loss, initial.loss - 1.0);

  const std::vector<int32_t> prompt = {7, 20, 33, 7, 41, 12};
  GenerateOptions g;
  g.max_new_tokens = 10;
  g.sampling.greedy = true;
  GenerateResult r = generate(*model, {prompt}, g);
  ASSERT_EQ(r.ids.size(), 1u);
  ASSERT_EQ(r.ids[0].size(), 10u);
  std::vector<int32_t> seq = prompt;
  const int64_t V = 64;
  for (int32_t got : r.ids[0]) {
    const int64_t T = int64_t(seq.size());
    std::vector<float> lg(size_t(T * V));
    model->logits(seq.data(), 1, T, lg.data());
    const float* last = lg.data() + (T - 1) * V;
    EXPECT_EQ(got, int32_t(std::max_element(last, last + V) - last)) << "at length " << T;
    seq.push_back(got);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rat
