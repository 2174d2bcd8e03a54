// Token choice (src/generate/sampling.h): greedy is argmax; top-k, top-p and
// min-p restrict the support exactly as defined; a seed reproduces a run; the
// repetition penalty follows CTRL (positive logits divided, negative multiplied).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "generate/sampling.h"
#include "util/error.h"

namespace rat {
namespace {

// log-probabilities of a known distribution: p = [0.4, 0.3, 0.15, 0.1, 0.05] over ids
// 3, 0, 4, 1, 2 (shuffled so that order is by value, not by id).
std::vector<float> known_logits() {
  std::vector<float> l(5);
  l[3] = std::log(0.4f), l[0] = std::log(0.3f), l[4] = std::log(0.15f), l[1] = std::log(0.1f),
  l[2] = std::log(0.05f);
  return l;
}

std::set<int32_t> support(SamplingOptions o, std::vector<float> logits) {
  TokenSampler s(o, int64_t(logits.size()), 1);
  std::set<int32_t> ids;
  for (const auto& [id, p] : s.candidates(logits.data())) ids.insert(id);
  return ids;
}

TEST(Sampling, GreedyIsArgmax) {
  std::vector<float> l = {0.5f, -1.f, 2.5f, 2.4f, 2.5f};
  EXPECT_EQ(argmax(l.data(), 5), 2);  // the lower id among equal maxima
  SamplingOptions o;
  o.greedy = true;
  TokenSampler s(o, 5, 7);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sample(l.data(), {}), 2);
  o.greedy = false;
  o.temperature = 0.f;  // temperature 0 means greedy too
  TokenSampler t(o, 5, 7);
  EXPECT_EQ(t.sample(l.data(), {}), 2);
}

TEST(Sampling, FiltersRestrictSupport) {
  SamplingOptions o;
  EXPECT_EQ(support(o, known_logits()), (std::set<int32_t>{0, 1, 2, 3, 4}));
  o.top_k = 2;
  EXPECT_EQ(support(o, known_logits()), (std::set<int32_t>{3, 0}));
  o.top_k = 0;
  // Nucleus: the smallest most-likely set with mass >= p: 0.4 + 0.3 = 0.7 >= 0.6.
  o.top_p = 0.6f;
  EXPECT_EQ(support(o, known_logits()), (std::set<int32_t>{3, 0}));
  o.top_p = 0.71f;  // needs the third token (0.85)
  EXPECT_EQ(support(o, known_logits()), (std::set<int32_t>{3, 0, 4}));
  o.top_p = 1.f;
  // min-p 0.3: keep p >= 0.12 (0.3 x 0.4): ids 3, 0, 4.
  o.min_p = 0.3f;
  EXPECT_EQ(support(o, known_logits()), (std::set<int32_t>{3, 0, 4}));
  // Renormalised over the survivors.
  TokenSampler s(o, 5, 1);
  const auto& c = s.candidates(known_logits().data());
  double sum = 0;
  for (const auto& [id, p] : c) sum += p;
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(c[0].second, 0.4 / 0.85, 1e-6);
  // Temperature sharpens before the filters: at T = 0.5, p ~ q^2.
  o.min_p = 0.f;
  o.temperature = 0.5f;
  TokenSampler t(o, 5, 1);
  // sum q^2 = 0.16 + 0.09 + 0.0225 + 0.01 + 0.0025 = 0.285.
  EXPECT_NEAR(t.candidates(known_logits().data())[0].second, 0.16 / 0.285, 1e-5);
}

TEST(Sampling, DrawsFollowTheDistribution) {
  SamplingOptions o;
  o.top_k = 3;  // 0.4, 0.3, 0.15 renormalised over 0.85
  TokenSampler s(o, 5, 123);
  std::map<int32_t, int> n;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    auto l = known_logits();
    n[s.sample(l.data(), {})]++;
  }
  EXPECT_EQ(n.count(1) + n.count(2), 0u);
  // Binomial standard deviation <= sqrt(0.25 / 20000) = 0.0035: 5 sigma = 0.018.
  EXPECT_NEAR(n[3] / double(draws), 0.4 / 0.85, 0.018);
  EXPECT_NEAR(n[0] / double(draws), 0.3 / 0.85, 0.018);
  EXPECT_NEAR(n[4] / double(draws), 0.15 / 0.85, 0.018);
}

TEST(Sampling, SeedReproduces) {
  SamplingOptions o;
  o.temperature = 1.3f;
  auto run = [&](uint64_t seed) {
    TokenSampler s(o, 5, seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) {
      auto l = known_logits();
      out.push_back(s.sample(l.data(), {}));
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampling, RepetitionPenaltyIsCtrl) {
  std::vector<float> l = {2.f, -2.f, 1.f, -0.5f, 3.f};
  std::vector<int32_t> seen = {0, 1};
  apply_repetition_penalty(l.data(), 5, seen, 2.f);
  EXPECT_FLOAT_EQ(l[0], 1.f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], -4.f);  // negative: multiplied
  EXPECT_FLOAT_EQ(l[2], 1.f);   // not seen: unchanged
  EXPECT_FLOAT_EQ(l[4], 3.f);
  // Through the sampler, an id repeated in the history is penalised once, and
  // the penalty can change the greedy choice: 3 / 2 < 2.
  SamplingOptions o;
  o.greedy = true;
  o.repetition_penalty = 2.f;
  TokenSampler s(o, 5, 1);
  std::vector<float> m = {2.f, -2.f, 1.f, -0.5f, 3.f};
  std::vector<int32_t> hist = {4, 4, 4};
  EXPECT_EQ(s.sample(m.data(), hist), 0);
  EXPECT_FLOAT_EQ(m[4], 1.5f);
}

TEST(Sampling, BadOptionsNamed) {
  SamplingOptions o;
  o.top_p = 0.f;
  EXPECT_THROW(TokenSampler(o, 5, 1), Error);
  o.top_p = 1.f;
  o.repetition_penalty = 0.f;
  EXPECT_THROW(TokenSampler(o, 5, 1), Error);
}

}  // namespace
}  // namespace rat

namespace rat {
namespace {

// `rat generate`'s defaults are llama.cpp's (issue 14), the API defaults stay plain.
TEST(Sampling, InteractiveDefaultsAreLlamaCpps) {
  const SamplingOptions s = interactive_sampling();
  EXPECT_FALSE(s.greedy);
  EXPECT_FLOAT_EQ(s.temperature, 0.8f);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_FLOAT_EQ(s.top_p, 0.95f);
  EXPECT_FLOAT_EQ(s.min_p, 0.05f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.f);
  EXPECT_FLOAT_EQ(SamplingOptions{}.temperature, 1.f);
}

TEST(Sampling, OutOfRangeOptionsNameTheFlag) {
  auto msg = [](auto set) {
    SamplingOptions s = interactive_sampling();
    set(s);
    try {
      check_sampling(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg([](SamplingOptions&) {}), "");
  EXPECT_EQ(msg([](SamplingOptions& s) { s.top_p = 2; }),
            "--top-p 2: expected a number in (0, 1] (1: off)");
  EXPECT_EQ(msg([](SamplingOptions& s) { s.top_p = 0; }),
            "--top-p 0: expected a number in (0, 1] (1: off)");
  EXPECT_EQ(msg([](SamplingOptions& s) { s.temperature = -0.5f; }),
            "--temp -0.5: expected a number >= 0 (0: greedy)");
  EXPECT_EQ(msg([](SamplingOptions& s) { s.temperature = std::nanf(""); }).rfind("--temp", 0), 0u);
  EXPECT_EQ(msg([](SamplingOptions& s) { s.top_k = -1; }),
            "--top-k -1: expected an integer >= 0 (0: off)");
  EXPECT_EQ(msg([](SamplingOptions& s) { s.min_p = 1.5f; }),
            "--min-p 1.5: expected a number in [0, 1] (0: off)");
  EXPECT_EQ(msg([](SamplingOptions& s) { s.repetition_penalty = 0; }),
            "--repeat-penalty 0: expected a number > 0 (1: off)");
  EXPECT_EQ(msg([](SamplingOptions& s) { s.temperature = 0, s.top_k = 0, s.top_p = 1; }), "");
}

}  // namespace
}  // namespace rat
