// MQAR task files (eval/mqar.h): every answer is the value paired with the
// queried key, labels are masked elsewhere, the layout and the query-distance
// law are Zoology's, and a seed fixes the files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "data/tokens.h"
#include "eval/mqar.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace rat;
using rat::testing::error_of;
using rat::testing::TempDir;

namespace {

// Checks one example against the task's definition; returns the query gaps.
std::vector<int64_t> check_example(const MqarOptions& o, const int32_t* x, const int32_t* y) {
  const int64_t K = o.pairs, T = o.seq_len, half = o.vocab / 2;
  std::map<int32_t, int32_t> value_of;
  std::set<int32_t> values;
  for (int64_t j = 0; j < K; ++j) {
    const int32_t k = x[2 * j], v = x[2 * j + 1];
    EXPECT_GE(k, 1);
    EXPECT_LT(k, half);
    EXPECT_GE(v, half);
    EXPECT_LT(v, o.vocab);
    EXPECT_TRUE(value_of.emplace(k, v).second) << "key " << k << " repeated";
    EXPECT_TRUE(values.insert(v).second) << "value " << v << " repeated";
    EXPECT_EQ(y[2 * j], -100);
    EXPECT_EQ(y[2 * j + 1], -100);
  }
  std::vector<int64_t> gaps;
  std::set<int32_t> queried;
  for (int64_t t = 2 * K; t < T; ++t) {
    EXPECT_GE(x[t], 0);
    EXPECT_LT(x[t], o.vocab);
    if (y[t] == -100) {
      if (!o.random_fill) {
        EXPECT_EQ(x[t], 0) << "t " << t;
      }
      continue;
    }
    EXPECT_EQ((t - 2 * K) % 2, 0) << "answer at an odd offset " << t;
    auto it = value_of.find(x[t]);
    if (it == value_of.end()) {
      ADD_FAILURE() << "answer position " << t << " holds " << x[t] << ", not a key of the example";
      continue;
    }
    EXPECT_EQ(y[t], it->second) << "the label at a query is the value paired with its key";
    EXPECT_TRUE(queried.insert(x[t]).second) << "key queried twice";
    gaps.push_back((t - 2 * K) / 2);
  }
  EXPECT_EQ(int64_t(queried.size()), K) << "every key is queried once";
  return gaps;
}

TEST(Mqar, AnswersAreThePairedValues) {
  for (bool fill : {true, false}) {
    MqarOptions o;
    o.vocab = 100, o.pairs = 6, o.seq_len = 40, o.random_fill = fill;
    const int64_t n = 200;
    const MqarSplit s = make_mqar(o, n, 7, 0);
    ASSERT_EQ(int64_t(s.inputs.size()), n * o.seq_len);
    ASSERT_EQ(int64_t(s.labels.size()), n * o.seq_len);
    int64_t answers = 0;
    for (int64_t e = 0; e < n; ++e) {
      check_example(o, &s.inputs[size_t(e * o.seq_len)], &s.labels[size_t(e * o.seq_len)]);
      for (int64_t t = 0; t < o.seq_len; ++t)
        answers += s.labels[size_t(e * o.seq_len + t)] != -100;
    }
    EXPECT_EQ(answers, n * o.pairs) << "labels are -100 everywhere but the K answers";
  }
}

TEST(Mqar, TightestLayoutUsesEverySlot) {
  MqarOptions o;
  o.vocab = 12, o.pairs = 5, o.seq_len = 20;  // space == K: all slots queried; V/2 - 1 == K keys
  const MqarSplit s = make_mqar(o, 50, 1, 0);
  for (int64_t e = 0; e < 50; ++e) {
    auto gaps = check_example(o, &s.inputs[size_t(e * 20)], &s.labels[size_t(e * 20)]);
    std::sort(gaps.begin(), gaps.end());
    EXPECT_EQ(gaps, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  }
}

TEST(Mqar, QueryDistancesFollowThePowerLaw) {
  // One query in 10 slots: P(g) = (g+1)^(a-1) / sum, Zoology's law; 20000
  // examples put each frequency within 5 standard deviations.
  for (double a : {0.01, 1.0}) {
    MqarOptions o;
    o.vocab = 64, o.pairs = 1, o.seq_len = 22, o.power_a = a;
    const int64_t n = 20000, space = 10;
    const MqarSplit s = make_mqar(o, n, 3, 0);
    std::vector<int64_t> count(space, 0);
    for (int64_t e = 0; e < n; ++e)
      for (int64_t t = 2; t < o.seq_len; ++t)
        if (s.labels[size_t(e * o.seq_len + t)] != -100) ++count[size_t((t - 2) / 2)];
    double z = 0;
    for (int64_t g = 0; g < space; ++g) z += std::pow(double(g + 1), a - 1);
    for (int64_t g = 0; g < space; ++g) {
      const double p = std::pow(double(g + 1), a - 1) / z;
      const double sd = std::sqrt(double(n) * p * (1 - p));
      EXPECT_NEAR(double(count[size_t(g)]), double(n) * p, 5 * sd) << "a " << a << " gap " << g;
    }
  }
}

TEST(Mqar, DeterministicBySeed) {
  MqarOptions o;
  o.vocab = 256, o.pairs = 8, o.seq_len = 64;
  const MqarSplit a = make_mqar(o, 30, 11, 0), b = make_mqar(o, 30, 11, 0);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.inputs, make_mqar(o, 30, 12, 0).inputs) << "another seed";
  EXPECT_NE(a.inputs, make_mqar(o, 30, 11, 1).inputs) << "the test stream";
}

TEST(Mqar, WritesSftFiles) {
  TempDir d;
  MqarOptions o;
  o.vocab = 70000, o.pairs = 4, o.seq_len = 16;  // past uint16 beside -100: 4-byte ids
  const std::string prefix = d.path() + "/sub/k4";
  const MqarReport r = write_mqar(o, 5, 3, 9, prefix);
  EXPECT_EQ(r.num_bytes, 4);
  const MqarSplit train = make_mqar(o, 5, 9, 0), test = make_mqar(o, 3, 9, 1);
  struct F {
    std::string path;
    const std::vector<int32_t>& ids;
  };
  for (const F& f :
       {F{prefix + ".train.inputs.bin", train.inputs},
        F{prefix + ".train.labels.bin", train.labels}, F{prefix + ".test.inputs.bin", test.inputs},
        F{prefix + ".test.labels.bin", test.labels}}) {
    TokenFile tf(f.path, 4);
    ASSERT_EQ(tf.num_tokens(), int64_t(f.ids.size())) << f.path;
    for (int64_t i = 0; i < tf.num_tokens(); ++i)
      ASSERT_EQ(tf.token(i), uint32_t(f.ids[size_t(i)]))
          << f.path << " at " << i;  // -100 as 0xFFFFFF9C
  }
  EXPECT_EQ(TokenFile(prefix + ".train.labels.bin", 4).token(0), 0xFFFFFF9Cu);
  const auto j = nlohmann::json::parse(rat::testing::slurp(prefix + ".json"));
  EXPECT_EQ(j["seq_len"], 16);
  EXPECT_EQ(j["vocab"], 70000);
  EXPECT_EQ(j["train"]["examples"], 5);
  EXPECT_EQ(j["num_bytes"], 4);

  o.vocab = 64;
  EXPECT_EQ(write_mqar(o, 1, 1, 0, d.path() + "/small").num_bytes, 2);
}

TEST(Mqar, BadOptionsNamed) {
  auto err = [](int64_t V, int64_t K, int64_t T, double a) {
    MqarOptions o;
    o.vocab = V, o.pairs = K, o.seq_len = T, o.power_a = a;
    return error_of([&] { check_mqar(o); });
  };
  EXPECT_NE(err(64, 0, 32, 0.01).find("--pairs"), std::string::npos);
  EXPECT_NE(err(10, 5, 40, 0.01).find("--vocab 10"), std::string::npos);  // 4 keys in [1, 5)
  EXPECT_NE(err(64, 4, 15, 0.01).find("--seq-len 15"), std::string::npos);
  EXPECT_NE(err(64, 4, 14, 0.01).find(">= 4 x --pairs = 16"), std::string::npos);
  EXPECT_NE(err(64, 4, 16, 0).find("--power-a"), std::string::npos);
  MqarOptions o;
  TempDir d;
  EXPECT_NE(error_of([&] { write_mqar(o, 0, 1, 0, d.path() + "/x"); }).find("--train"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(d.path() + "/x.json"));
}

}  // namespace
