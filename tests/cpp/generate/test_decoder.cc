// Decoding (src/generate/decoder.h): prefill(prompt) + one-token steps, and
// extends in any pieces, must give the logits of one full forward over the
// same tokens (SPEC.md "Generation state"), for every mixer and the hybrid, at
// every prompt length around the chunk boundaries, and for a batch of prompts
// of different lengths decoding together; a slot truncated where its state
// allows and extended with another continuation gives that continuation's.
//
// Tolerance: the full forward and the decoder run the same maths in float32
// but in different orders (tiled online softmax vs one softmax per query; GEMM
// blocking over T rows vs over the batch rows; FMA contraction). With O(1)
// activations (weights scaled to std 1/sqrt(fan_in)) over 2-3 layers the
// differences are a few float32 ulps of the largest logit, ~1e-6 relative; we
// accept max|a - b| <= 2e-5 * max|full logits| (the bound the golden cases use
// against the float64 oracle). A state bug (a chunk's final state taken one
// token late, a ring slot off by one, a wrong rotation index) changes logits
// by O(1e-2..1) relative, far above this.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "generate/decoder.h"
#include "kernels/decode_attention.h"
#include "kernels/gemm.h"
#include "model/model.h"
#include "test_util.h"
#include "util/error.h"

namespace rat {
namespace {
using rat::testing::max_or_nan;

constexpr double kRelTol = 2e-5;

MixerConfig mixer(MixerKind kind, int64_t P, int64_t G = 1, int64_t L = 4, int64_t W = 0) {
  MixerConfig m;
  m.kind = kind;
  m.d_head = P;
  m.ngroups = G;
  m.chunk_size = L;
  m.window_size = W;
  return m;
}

ModelConfig make_config(const MixerConfig& cell, int64_t layers = 2, int64_t D = 32,
                        const MixerConfig* cell1 = nullptr) {
  ModelConfig c;
  c.seq_len = 64;
  c.vocab_size = 61;
  c.num_layers = layers;
  c.d_model = D;
  c.seq_cell = cell;
  if (cell1) {
    c.backbone = "sequence_interleave";
    c.interleave_step = 2;
    c.seq_cell1 = *cell1;
  }
  c.ffn.d_ffn = 2 * D;
  c.ffn.act = Activation::kGelu;
  c.pe = PosEnc::kRopeInterRope;  // accepted for every mixer kind
  c.resolve("test");
  return c;
}

// SPEC init, then weights rescaled so every layer moves the logits by O(1)
// (as tests/python/make_case.py does): linear std 1/sqrt(fan_in), embedding
// 0.25, norms 1 + 0.2 n, gate biases + 0.5 n.
std::unique_ptr<Model> make_model(const ModelConfig& cfg, uint32_t seed) {
  auto m = std::make_unique<Model>(cfg);
  m->init(seed);
  std::mt19937 rng(seed + 7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const ParamSpec& s : m->layout().specs()) {
    float* p = m->params() + s.offset;
    const std::string& n = s.name;
    auto ends = [&](const std::string& suf) {
      return n.size() >= suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
    };
    for (int64_t i = 0; i < s.numel; ++i) {
      if (n == "embedding.wte.weight")
        p[i] *= 0.25f / 0.02f;
      else if (s.shape.size() == 2)
        p[i] *= (1.f / std::sqrt(float(s.shape[1]))) / 0.02f;
      else if (ends("norm.weight") || ends("ln.weight"))
        p[i] *= 1.f + 0.2f * nd(rng);
      else if (ends("gate_bias"))
        p[i] += 0.5f * nd(rng);
    }
  }
  return m;
}

using rat::testing::random_ids;

// Max |got - want| relative to max |want| over one row of V logits.
double rel_err(const float* got, const float* want, int64_t V) {
  double e = 0, m = 0;
  for (int64_t v = 0; v < V; ++v) {
    e = max_or_nan(e, std::fabs(double(got[v]) - double(want[v])));
    m = max_or_nan(m, std::fabs(double(want[v])));
  }
  return e / m;
}

// For every prompt length p in [1, T): prefill p tokens, then step through the
// rest; each position's logits against the full forward's.
// overlap_heads > 0: every RAT step takes the overlapped path (compute and
// sweep tasks, Decoder::set_overlap) with that many heads per block.
double check_prefill_steps(const ModelConfig& cfg, int64_t T, const std::string& what,
                           bool bf16_cache = false, double tol = kRelTol,
                           int64_t overlap_heads = 0) {
  auto model = make_model(cfg, 11);
  const int64_t V = cfg.vocab_size;
  const auto ids = random_ids(T, V, 5);
  std::vector<float> full(static_cast<size_t>(T * V)), got(static_cast<size_t>(V));
  model->logits(ids.data(), 1, T, full.data());
  Decoder dec(*model, 1, T, bf16_cache);
  if (overlap_heads > 0) dec.set_overlap(0, 0, overlap_heads);
  const int64_t slot = 0;
  double worst = 0;
  for (int64_t p = 1; p < T; ++p) {
    dec.prefill(slot, ids.data(), p, got.data());
    double e = rel_err(got.data(), full.data() + (p - 1) * V, V);
    EXPECT_LE(e, tol) << what << ": prefill of " << p << " tokens";
    if (e > tol) return e;
    worst = max_or_nan(worst, e);
    for (int64_t t = p; t < T; ++t) {
      dec.step(&slot, &ids[size_t(t)], 1, got.data());
      e = rel_err(got.data(), full.data() + t * V, V);
      EXPECT_LE(e, tol) << what << ": prompt " << p << ", step at position " << t;
      if (e > tol) return e;
      worst = max_or_nan(worst, e);
    }
    EXPECT_EQ(dec.length(slot), T);
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", worst);
  ::testing::Test::RecordProperty(what + "_worst_rel_err", buf);
  return worst;
}

TEST(Generate, RatG1PrefillStepsEqualForward) {
  // L = 4, T = 21: prompts end at every offset of a chunk, boundaries +-1 included.
  check_prefill_steps(make_config(mixer(MixerKind::kRat, 8, 1, 4)), 21, "rat G1 L4");
}

TEST(Generate, RatG2RaggedPrefillStepsEqualForward) {
  // L = 5, T = 23: the last chunk is partial; G = 2 groups over H = 4 heads.
  check_prefill_steps(make_config(mixer(MixerKind::kRat, 8, 2, 5)), 23, "rat G2 L5");
}

TEST(Generate, RatL1AndLongChunk) {
  check_prefill_steps(make_config(mixer(MixerKind::kRat, 8, 2, 1)), 13, "rat L1");
  // L > T: one unfinished chunk, like the rnn.
  check_prefill_steps(make_config(mixer(MixerKind::kRat, 8, 1, 32)), 13, "rat L32");
}

TEST(Generate, AttentionPrefillStepsEqualForward) {
  check_prefill_steps(make_config(mixer(MixerKind::kAttention, 8)), 19, "attention");
}

TEST(Generate, LocalAttentionRingEqualsForward) {
  // Window smaller than T (the ring wraps many times), 0 (only itself) and
  // larger than T (never wraps: the ring is capped at max_len rows).
  check_prefill_steps(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 3)), 19, "local w3");
  check_prefill_steps(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 0)), 9, "local w0");
  check_prefill_steps(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 40)), 19, "local w40");
}

TEST(Generate, RnnPrefillStepsEqualForward) {
  check_prefill_steps(make_config(mixer(MixerKind::kRnn, 8)), 17, "rnn");
}

TEST(Generate, HybridPrefillStepsEqualForward) {
  // The paper's hybrid: rat on layers 0, 2; local attention on layer 1.
  MixerConfig rat = mixer(MixerKind::kRat, 8, 2, 4);
  check_prefill_steps(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 5), 3, 32, &rat), 22,
                      "hybrid");
}

// Prompts of different lengths in one batch; each sequence stepped together
// with the others must match its own full forward. Slots are stepped in a
// permuted order, and one slot drops out half-way (rows need not be slots 0..n-1).
void check_batch(const ModelConfig& cfg, const std::string& what, int64_t overlap_heads = 0) {
  auto model = make_model(cfg, 3);
  const int64_t V = cfg.vocab_size, S = 4, T = 20;
  const std::vector<int64_t> prompt = {1, 4, 5, 9};
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<float>> full;
  for (int64_t s = 0; s < S; ++s) {
    ids.push_back(random_ids(T, V, uint32_t(100 + s)));
    full.emplace_back(size_t(T * V));
    model->logits(ids.back().data(), 1, T, full.back().data());
  }
  Decoder dec(*model, S, T);
  if (overlap_heads > 0) dec.set_overlap(0, 0, overlap_heads);
  std::vector<float> got(size_t(S * V));
  for (int64_t s = 0; s < S; ++s) {
    dec.prefill(s, ids[size_t(s)].data(), prompt[size_t(s)], got.data());
    ASSERT_LE(rel_err(got.data(), full[size_t(s)].data() + (prompt[size_t(s)] - 1) * V, V), kRelTol)
        << what << ": prefill of slot " << s;
  }
  for (int64_t k = 0; k < T - prompt[0] - 1; ++k) {
    std::vector<int64_t> slots;
    std::vector<int32_t> next;
    for (int64_t s : {2, 0, 3, 1}) {
      if (dec.length(s) >= T) continue;
      if (s == 3 && k >= 6) continue;  // slot 3 finished early
      slots.push_back(s);
      next.push_back(ids[size_t(s)][size_t(dec.length(s))]);
    }
    if (slots.empty()) break;
    std::vector<int64_t> pos;
    for (int64_t s : slots) pos.push_back(dec.length(s));
    dec.step(slots.data(), next.data(), int64_t(slots.size()), got.data());
    for (size_t i = 0; i < slots.size(); ++i)
      ASSERT_LE(rel_err(got.data() + i * V, full[size_t(slots[i])].data() + pos[i] * V, V), kRelTol)
          << what << ": slot " << slots[i] << " at position " << pos[i];
  }
}

TEST(Generate, BatchOfDifferentLengthsEqualsForward) {
  MixerConfig rat = mixer(MixerKind::kRat, 8, 2, 4);
  check_batch(make_config(rat), "rat");
  check_batch(make_config(mixer(MixerKind::kAttention, 8)), "attention");
  check_batch(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 3)), "local");
  check_batch(make_config(mixer(MixerKind::kRnn, 8)), "rnn");
  check_batch(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 6), 3, 32, &rat), "hybrid");
}

// Large RAT steps cut in_proj/out_proj into single-thread GEMM slices and the
// attends into (head block, row range) sweeps run by OverlapTasks; small ones
// (these tests' sizes) run whole-batch. Forced here for every step, with head
// blocks that divide H (4 heads: 1, 2, 4) and one that does not (3), at 2 and
// 3 threads (an odd thread prefers sweeps, an even one compute). Same maths,
// other summation order: the same tolerance as the whole-batch path.
TEST(Generate, OverlappedRatStepsEqualForward) {
  const int saved = omp_get_max_threads();
  MixerConfig rat = mixer(MixerKind::kRat, 8, 2, 4);
  for (int threads : {2, 3}) {
    omp_set_num_threads(threads);  // before the decoders: their scratch is per thread
    for (int64_t hb : {1, 2, 3, 4}) {
      const std::string tag =
          " (" + std::to_string(threads) + " threads, " + std::to_string(hb) + " heads per block)";
      check_prefill_steps(make_config(rat), 21, "rat overlapped" + tag, false, kRelTol, hb);
      check_batch(make_config(rat), "rat overlapped" + tag, hb);
    }
    check_prefill_steps(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 5), 3, 32, &rat), 22,
                        "hybrid overlapped", false, kRelTol, 3);
    check_batch(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 6), 3, 32, &rat),
                "hybrid overlapped", 2);
  }
  omp_set_num_threads(saved);
}

// With bf16 products (frozen bf16 weights, as `rat generate --dtype bf16`) the
// overlapped path (which regroups in_proj's bf16 rows by head block, once per
// weight version) rounds the same operands as the whole-batch one; its
// float32 sums differ in order, and a last-ulp difference before a bf16
// rounding (of u or z * o) can move that element by 2^-9 relative. Over 2
// layers that stays below 1e-3 of the largest logit (seen: ~1e-5); a slice
// taken from the wrong rows or a stale block would move logits by O(1).
TEST(Generate, OverlappedBf16ProductsMatchWholeBatch) {
  MixerConfig rat = mixer(MixerKind::kRat, 16, 2, 4);
  const ModelConfig cfg = make_config(rat, 2, 64);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(std::max(2, saved));  // the overlapped path needs two threads
  auto model = make_model(cfg, 5);
  const int64_t V = cfg.vocab_size, S = 3, T = 24;
  Decoder late(*model, S, T);  // made while products were still float32
  late.set_overlap(0, 0, 1);
  model->set_precision(Precision::kBF16);
  model->set_frozen_weight_cache(true);
  Decoder whole(*model, S, T), over(*model, S, T);
  over.set_overlap(0, 0, 1);
  std::vector<float> a(size_t(S * V)), b(a.size()), c(a.size());
  double worst = 0;
  std::vector<int64_t> slots = {0, 1, 2};
  for (int64_t s = 0; s < S; ++s) {
    const auto ids = random_ids(3 + s, V, uint32_t(40 + s));
    whole.prefill(s, ids.data(), int64_t(ids.size()), a.data());
    over.prefill(s, ids.data(), int64_t(ids.size()), b.data());
    late.prefill(s, ids.data(), int64_t(ids.size()), c.data());
  }
  for (int64_t k = 0; k < 12; ++k) {
    const auto next = random_ids(S, V, uint32_t(90 + k));
    whole.step(slots.data(), next.data(), S, a.data());
    over.step(slots.data(), next.data(), S, b.data());
    late.step(slots.data(), next.data(), S, c.data());
    for (int64_t i = 0; i < S; ++i) {
      const double e = rel_err(b.data() + i * V, a.data() + i * V, V);
      EXPECT_LE(e, 1e-3) << "step " << k << ", row " << i;
      EXPECT_LE(rel_err(c.data() + i * V, a.data() + i * V, V), 1e-3)
          << "decoder made before bf16 was set: step " << k << ", row " << i;
      worst = max_or_nan(worst, e);
    }
  }
  // New weights (as after training steps): the overlapped path's regrouped
  // in_proj copy must follow them, not keep the old ones.
  const int64_t n = model->layout().total();
  for (int64_t i = 0; i < n; ++i) model->params()[i] *= (i % 3 == 0) ? -1.25f : 1.1f;
  model->weights_changed();
  for (int64_t s = 0; s < S; ++s) {
    const auto ids = random_ids(4, V, uint32_t(70 + s));
    whole.prefill(s, ids.data(), 4, a.data());
    over.prefill(s, ids.data(), 4, b.data());
  }
  for (int64_t k = 0; k < 4; ++k) {
    const auto next = random_ids(S, V, uint32_t(120 + k));
    whole.step(slots.data(), next.data(), S, a.data());
    over.step(slots.data(), next.data(), S, b.data());
    for (int64_t i = 0; i < S; ++i)
      EXPECT_LE(rel_err(b.data() + i * V, a.data() + i * V, V), 1e-3)
          << "after new weights: step " << k << ", row " << i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", worst);
  ::testing::Test::RecordProperty("bf16_overlapped_worst_rel_err", buf);
  omp_set_num_threads(saved);
}

// The unrolled attends (P 64 and 128, float32 and bf16 rows) against a
// float64 softmax-attention, at row counts around the 16-row blocks (0 rows
// with the extra term: RAT's first chunk) and with/without the extra term.
// float32 sums of <= 257 terms of O(1) products: 1e-5 relative to max|o|.
TEST(Generate, DecodeAttendUnrolledMatchesFloat64) {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t P : {64, 128})
    for (int64_t n : {0, 1, 15, 16, 17, 40, 256})
      for (bool extra : {false, true}) {
        if (n == 0 && !extra) continue;
        const size_t p = static_cast<size_t>(P), np = static_cast<size_t>(n * P);
        std::vector<float> q(p), k(np), v(np), ke(p), ve(p), o(p), sc(np / p + 1);
        for (auto* x : {&q, &k, &v, &ke, &ve})
          for (float& f : *x) f = nd(rng);
        std::vector<uint16_t> k16(k.size()), v16(v.size());
        to_bf16(k.data(), k16.data(), int64_t(k.size()));
        to_bf16(v.data(), v16.data(), int64_t(v.size()));
        for (bool bf16 : {false, true}) {
          std::vector<float> kk = k, vv = v;  // the values the kernel sees
          if (bf16) {
            round_bf16(kk.data(), int64_t(kk.size()));
            round_bf16(vv.data(), int64_t(vv.size()));
          }
          const float scale = 1.f / std::sqrt(float(P));
          std::vector<double> s(static_cast<size_t>(n + 1));
          double mx = -1e300;
          for (int64_t j = 0; j <= n; ++j) {
            if (j == n && !extra) break;
            const float* row = j < n ? &kk[size_t(j * P)] : ke.data();
            double d = 0;
            for (int64_t i = 0; i < P; ++i) d += double(q[size_t(i)]) * row[i];
            s[size_t(j)] = d * scale;
            mx = std::max(mx, s[size_t(j)]);
          }
          const int64_t m = n + (extra ? 1 : 0);
          double z = 0;
          for (int64_t j = 0; j < m; ++j) z += std::exp(s[size_t(j)] - mx);
          if (bf16)
            decode_attend(q.data(), k16.data(), v16.data(), n, extra ? ke.data() : nullptr,
                          extra ? ve.data() : nullptr, P, scale, sc.data(), o.data());
          else
            decode_attend(q.data(), k.data(), v.data(), n, extra ? ke.data() : nullptr,
                          extra ? ve.data() : nullptr, P, scale, sc.data(), o.data());
          double err = 0, big = 0;
          for (int64_t i = 0; i < P; ++i) {
            double want = 0;
            for (int64_t j = 0; j < m; ++j) {
              const float* row = j < n ? &vv[size_t(j * P)] : ve.data();
              want += std::exp(s[size_t(j)] - mx) / z * row[i];
            }
            err = max_or_nan(err, std::fabs(want - o[size_t(i)]));
            big = max_or_nan(big, std::fabs(want));
          }
          EXPECT_LE(err, 1e-5 * big)
              << "P " << P << " n " << n << " extra " << extra << " bf16 " << bf16;
        }
      }
}

TEST(Generate, DecodeAttendBf16EqualsRoundedFloat) {
  // The bf16 rows are widened exactly, so attending over them equals attending
  // over float rows holding the same rounded values (up to summation order:
  // 1e-6 relative).
  const int64_t P = 40, n = 13;  // P not a multiple of 16: the scalar tail too
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> q(P), k(n * P), v(n * P), ke(P), ve(P), o1(P), o2(P), sc(n + 1);
  for (auto* x : {&q, &k, &v, &ke, &ve})
    for (float& f : *x) f = nd(rng);
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  to_bf16(k.data(), k16.data(), int64_t(k.size()));
  to_bf16(v.data(), v16.data(), int64_t(v.size()));
  round_bf16(k.data(), int64_t(k.size()));
  round_bf16(v.data(), int64_t(v.size()));
  decode_attend(q.data(), k.data(), v.data(), n, ke.data(), ve.data(), P, 0.3f, sc.data(),
                o1.data());
  decode_attend(q.data(), k16.data(), v16.data(), n, ke.data(), ve.data(), P, 0.3f, sc.data(),
                o2.data());
  for (int64_t i = 0; i < P; ++i) EXPECT_NEAR(o2[size_t(i)], o1[size_t(i)], 1e-6 * 4) << i;
}

TEST(Generate, Bf16CacheStaysClose) {
  // bf16 keeps 8 significant bits: each cached element moves by <= 2^-9
  // relative, the attention outputs (convex combinations) and scores by about
  // as much, so after 2-3 layers with O(1) weights the logits move by ~1e-2
  // of their largest value at most (measured: 1e-3 .. 4e-3); 1e-2 is
  // accepted. The error must also be
  // visibly above float32 rounding, or the bf16 path was not taken.
  MixerConfig rat = mixer(MixerKind::kRat, 8, 2, 4);
  const ModelConfig hybrid =
      make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 5), 3, 32, &rat);
  const double e1 = check_prefill_steps(make_config(rat), 21, "rat bf16", true, 1e-2);
  const double e2 = check_prefill_steps(make_config(mixer(MixerKind::kAttention, 8)), 19,
                                        "attention bf16", true, 1e-2);
  const double e3 = check_prefill_steps(hybrid, 22, "hybrid bf16", true, 1e-2);
  EXPECT_GT(std::max({e1, e2, e3}), 1e-4);
}

TEST(Generate, CacheSizesFollowSpec) {
  // SPEC.md: rat keeps one (kt, vt) pair per finished chunk (+ the running
  // pair): L times less than attention's K, V per token.
  const int64_t D = 32, T = 64, L = 8;
  auto rat = make_model(make_config(mixer(MixerKind::kRat, 8, 1, L), 1, D), 1);
  auto att = make_model(make_config(mixer(MixerKind::kAttention, 8), 1, D), 1);
  auto loc = make_model(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 5), 1, D), 1);
  auto rnn = make_model(make_config(mixer(MixerKind::kRnn, 8), 1, D), 1);
  const int64_t f = sizeof(float);
  EXPECT_EQ(Decoder(*rat, 2, T).cache_bytes_per_sequence(), (2 * (T / L) * D + 2 * D) * f);
  EXPECT_EQ(Decoder(*att, 2, T).cache_bytes_per_sequence(), 2 * T * D * f);
  EXPECT_EQ(Decoder(*loc, 2, T).cache_bytes_per_sequence(), 2 * 6 * D * f);
  EXPECT_EQ(Decoder(*rnn, 2, T).cache_bytes_per_sequence(), D * f);
  // bf16: the K/V rows take half; the running states stay float32.
  EXPECT_EQ(Decoder(*rat, 2, T, true).cache_bytes_per_sequence(), (T / L) * D * 4 + 2 * D * f);
  EXPECT_EQ(Decoder(*att, 2, T, true).cache_bytes_per_sequence(), T * D * 4);
}

// ---- Decoder::extend: a slot continued with several tokens in one pass ----
//
// Extend runs the norms and projections as GEMMs over the new rows and the
// mixing with the step's per-token kernels, so against the full forward it
// differs by the same kinds of rounding as prefill + steps: the same
// tolerance (kRelTol) holds. A piece that starts or ends at the wrong offset
// of a RAT chunk, a ring row written late, a rotation at the wrong position
// or an RNN state not carried over moves logits by O(1e-2..1).

// Random schedules over T tokens: prefill, extend or step pieces (the first
// a prefill or an extend of a slot holding nothing), each piece's last logits
// against the full forward's at its last position.
void check_extend(const ModelConfig& cfg, int64_t T, const std::string& what) {
  auto model = make_model(cfg, 13);
  const int64_t V = cfg.vocab_size;
  const auto ids = random_ids(T, V, 17);
  std::vector<float> full(static_cast<size_t>(T * V)), got(static_cast<size_t>(V));
  model->logits(ids.data(), 1, T, full.data());
  std::mt19937 rng(23);
  for (int schedule = 0; schedule < 8; ++schedule) {
    Decoder dec(*model, 2, T);
    const int64_t slot = schedule % 2;  // the other slot stays empty: rows must not mix
    std::string ops;
    for (int64_t at = 0; at < T;) {
      // Schedule 0 is one extend of everything; 1 is all one-token extends.
      int64_t n = schedule == 0 ? T : schedule == 1 ? 1 : 1 + int64_t(rng() % 9);
      n = std::min(n, T - at);
      const int kind = at == 0 ? int(rng() % 2) : schedule < 2 ? 1 : int(rng() % 3);
      if (kind == 0 && at == 0) {
        dec.prefill(slot, ids.data(), n, got.data());
        ops += "p" + std::to_string(n) + " ";
      } else if (kind == 2) {
        n = 1;
        dec.step(&slot, &ids[size_t(at)], 1, got.data());
        ops += "s ";
      } else {
        dec.extend(slot, &ids[size_t(at)], n, got.data());
        // Appended piece by piece: GCC 12's -Wrestrict misfires on "e" + std::string&&.
        ops += 'e';
        ops += std::to_string(n);
        ops += ' ';
      }
      at += n;
      ASSERT_EQ(dec.length(slot), at);
      const double e = rel_err(got.data(), full.data() + (at - 1) * V, V);
      ASSERT_LE(e, kRelTol) << what << ": schedule " << ops << "(" << at << " tokens)";
    }
  }
}

TEST(Generate, ExtendEqualsForwardForEveryMixer) {
  check_extend(make_config(mixer(MixerKind::kRat, 8, 1, 4)), 21, "rat G1 L4");
  check_extend(make_config(mixer(MixerKind::kRat, 8, 2, 5)), 23, "rat G2 L5");
  check_extend(make_config(mixer(MixerKind::kRat, 8, 2, 1)), 13, "rat L1");
  check_extend(make_config(mixer(MixerKind::kRat, 8, 1, 32)), 13, "rat L32");
  check_extend(make_config(mixer(MixerKind::kAttention, 8)), 19, "attention");
  // Pieces longer than the ring wrap it within one pass.
  check_extend(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 3)), 19, "local w3");
  check_extend(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 0)), 9, "local w0");
  check_extend(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 40)), 19, "local w40");
  check_extend(make_config(mixer(MixerKind::kRnn, 8)), 17, "rnn");
  check_extend(make_config(mixer(MixerKind::kIdentity, 8)), 7, "identity");
  MixerConfig rat = mixer(MixerKind::kRat, 8, 2, 4);
  check_extend(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 5), 3, 32, &rat), 22,
               "hybrid");
}

// Prefix reuse at the decoder's level (what serve does): a slot holding
// A's first `held` tokens continues, from a point k its state allows
// (DecodeState::can_truncate), with sequence B that shares A's first m
// tokens; B's logits after the extend and after a step equal B's own
// forward. With a snapshot of the running states taken at s <= m
// (save_recurrent after a prefill of A's first s tokens), k = s is allowed
// for RAT mid-chunk and the RNN too.
void check_reuse(const ModelConfig& cfg, const std::string& what, int64_t m = 15,
                 int64_t held = 24) {
  auto model = make_model(cfg, 29);
  const int64_t V = cfg.vocab_size, T = 24, s = 11;
  const auto a = random_ids(T, V, 31);
  auto b = random_ids(T, V, 37);
  std::copy(a.begin(), a.begin() + m, b.begin());
  std::vector<float> full(static_cast<size_t>(T * V)), got(static_cast<size_t>(V));
  model->logits(b.data(), 1, T, full.data());
  Decoder dec(*model, 1, T);
  std::vector<float> snap(size_t(dec.state().recurrent_floats()));
  int64_t tried = 0;
  for (int64_t k = 1; k <= m; ++k)
    for (bool from_snap : {false, true}) {
      if (from_snap && k != s) continue;
      if (!dec.state().can_truncate(held, k, from_snap)) continue;
      ++tried;
      dec.prefill(0, a.data(), s, got.data());
      dec.state().save_recurrent(0, snap.data());
      dec.extend(0, &a[size_t(s)], held - s, got.data());
      if (from_snap) dec.state().load_recurrent(0, snap.data());
      dec.set_length(0, k);
      dec.extend(0, &b[size_t(k)], T - 1 - k, got.data());
      ASSERT_LE(rel_err(got.data(), full.data() + (T - 2) * V, V), kRelTol)
          << what << ": reused " << k << (from_snap ? " (snapshot)" : "");
      const int64_t slot = 0;
      dec.step(&slot, &b[size_t(T - 1)], 1, got.data());
      ASSERT_LE(rel_err(got.data(), full.data() + (T - 1) * V, V), kRelTol)
          << what << ": step after reusing " << k;
    }
  EXPECT_GT(tried, 0) << what;
}

TEST(Generate, ExtendAfterTruncationEqualsForward) {
  MixerConfig rat = mixer(MixerKind::kRat, 8, 2, 4);
  check_reuse(make_config(rat), "rat");
  check_reuse(make_config(mixer(MixerKind::kAttention, 8)), "attention");
  // A wrapped ring goes back one token at most (16 held, 15 reused); one
  // longer than the sequence never wraps (any point).
  check_reuse(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 3)), "local w3", 15, 16);
  check_reuse(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 30)), "local w30");
  check_reuse(make_config(mixer(MixerKind::kRnn, 8)), "rnn");
  // The hybrids: the ring's one token back at a RAT chunk boundary (16 of
  // 17); attention + rat at boundaries and the snapshot.
  check_reuse(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 5), 3, 32, &rat), "hybrid", 16,
              17);
  check_reuse(make_config(mixer(MixerKind::kAttention, 8), 3, 32, &rat), "attention + rat");
}

// can_truncate's rule per kind, on hand-worked cases (a slot of `held` tokens).
TEST(Generate, TruncationPointsFollowEachState) {
  auto state_of = [](const ModelConfig& cfg) {
    auto model = make_model(cfg, 1);
    return model->make_decode_state(1, 32);
  };
  auto rat = state_of(make_config(mixer(MixerKind::kRat, 8, 1, 4)));
  EXPECT_TRUE(rat->can_truncate(21, 8, false));   // a chunk boundary
  EXPECT_FALSE(rat->can_truncate(21, 9, false));  // mid-chunk: running state of 9 unknown
  EXPECT_TRUE(rat->can_truncate(21, 9, true));    // ... unless a snapshot has it
  EXPECT_TRUE(rat->can_truncate(21, 21, false));
  EXPECT_FALSE(rat->can_truncate(21, 22, false));
  auto rnn = state_of(make_config(mixer(MixerKind::kRnn, 8)));
  EXPECT_FALSE(rnn->can_truncate(21, 20, false));
  EXPECT_TRUE(rnn->can_truncate(21, 20, true));
  EXPECT_TRUE(rnn->can_truncate(21, 21, false));
  auto att = state_of(make_config(mixer(MixerKind::kAttention, 8)));
  EXPECT_TRUE(att->can_truncate(21, 1, false));
  // Window 3: a ring of 4 rows. Holding 19 tokens it has positions 15..18;
  // query 18 reads 15..17 (kept), query 17 would read 14 (overwritten by 18).
  auto loc = state_of(make_config(mixer(MixerKind::kLocalAttention, 8, 1, 4, 3)));
  EXPECT_TRUE(loc->can_truncate(19, 18, false));
  EXPECT_FALSE(loc->can_truncate(19, 17, true));
  EXPECT_TRUE(loc->can_truncate(4, 1, false));  // not wrapped yet: every row is its own
  EXPECT_FALSE(loc->can_truncate(5, 1, false));
  MixerConfig r = mixer(MixerKind::kRat, 8, 2, 4);
  auto hyb = state_of(make_config(mixer(MixerKind::kAttention, 8), 3, 32, &r));
  EXPECT_TRUE(hyb->can_truncate(21, 12, false));
  EXPECT_FALSE(hyb->can_truncate(21, 13, false));  // the rat layers need a chunk boundary
}

TEST(Generate, BadInputIsNamed) {
  auto model = make_model(make_config(mixer(MixerKind::kRat, 8)), 1);
  Decoder dec(*model, 1, 4);
  std::vector<float> logits(size_t(model->config().vocab_size));
  const int32_t bad[] = {3, 61};
  try {
    dec.prefill(0, bad, 2, logits.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 61"), std::string::npos) << e.what();
  }
  const int32_t ok[] = {1, 2, 3, 4, 5};
  EXPECT_THROW(dec.prefill(0, ok, 5, logits.data()), Error);  // longer than max_len
  dec.prefill(0, ok, 4, logits.data());
  const int64_t slot = 0;
  EXPECT_THROW(dec.step(&slot, ok, 1, logits.data()), Error);  // full
  Decoder two(*model, 2, 8);
  two.prefill(0, ok, 2, logits.data());
  const int64_t same[] = {0, 0}, unfilled[] = {0, 1};
  std::vector<float> two_rows(2 * logits.size());
  EXPECT_THROW(two.step(same, ok, 2, two_rows.data()), Error);
  EXPECT_THROW(two.step(unfilled, ok, 2, two_rows.data()), Error);
  two.step(&slot, ok, 1, logits.data());  // still usable after the refusals
  EXPECT_EQ(two.length(0), 3);
  EXPECT_THROW(two.extend(0, ok, 0, logits.data()), Error);  // nothing to extend with
  EXPECT_THROW(two.extend(0, ok, 6, logits.data()), Error);  // 3 + 6 > 8
  EXPECT_THROW(two.extend(0, bad, 2, logits.data()), Error);
  EXPECT_THROW(two.extend(2, ok, 1, logits.data()), Error);
  EXPECT_EQ(two.length(0), 3);
  two.extend(0, ok, 5, logits.data());
  EXPECT_EQ(two.length(0), 8);
}

}  // namespace
}  // namespace rat
