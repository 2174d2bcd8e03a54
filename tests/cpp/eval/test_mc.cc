// Multiple choice (src/eval/mc.h): acc, acc_norm and their standard errors on
// a hand-computed case, the four line forms, and every malformed line.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "eval/mc.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;
using Ids = std::vector<int32_t>;

TEST(Mc, AccAccNormAndStderrByHand) {
  // item 0: lls [-1, -2], lengths [10, 1]: acc picks 0; per length [-0.1, -2] picks 0; gold 0.
  // item 1: lls [-3, -4], lengths [1, 10]: acc picks 0; per length [-3, -0.4] picks 1; gold 1.
  // item 2: lls [-2, -2, -5] (a tie: the first wins), lengths [4, 2, 5]: per length
  //         [-0.5, -1, -1] picks 0; gold 2: both wrong.
  McTask t;
  t.items = {{0, {10, 1}, 0}, {2, {1, 10}, 1}, {4, {4, 2, 5}, 2}};
  std::vector<ScoreResult> res(7);
  const double lls[] = {-1, -2, -3, -4, -2, -2, -5};
  for (int i = 0; i < 7; ++i) res[size_t(i)].loglikelihood = lls[i];
  const McReport r = mc_report(t, res);
  EXPECT_EQ(r.pred, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(r.pred_norm, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_DOUBLE_EQ(r.acc, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.acc_norm, 2.0 / 3);
  // acc hits [1, 0, 0]: mean 1/3, squares (2/3)^2 + 2 (1/3)^2 = 2/3, sample variance 1/3,
  // stderr sqrt(1/3) / sqrt(3) = 1/3. acc_norm hits [1, 1, 0]: the same by symmetry.
  EXPECT_DOUBLE_EQ(r.acc_stderr, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.acc_norm_stderr, 1.0 / 3);
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(std::isnan(mean_stderr({1.0})));
  EXPECT_DOUBLE_EQ(mean_stderr({1, 1, 1, 1}), 0.0);
}

ScoreVocab vocab(bool with_tokenizer) {
  ScoreVocab v;
  v.vocab_size = 300;
  v.eod = 2;
  v.no_tokenizer = "m/tokenizer.model does not exist";
  if (with_tokenizer)
    v.encode = [](std::string_view s) {
      Ids out;
      for (char c : s) out.push_back(int32_t(uint8_t(c)));
      return out;
    };
  return v;
}

TEST(Mc, ReadsTheFourFormsAndLimit) {
  TempDir d;
  const std::string p =
      d.write("mc.jsonl",
              "{\"context\": \"Q:\", \"choices\": [\"ab\", \"caf\\u00e9\"], \"gold\": 1, "
              "\"target_delimiter\": \" \"}\n"
              "\n"
              "{\"context_ids\": [5, 6], \"choices_ids\": [[7], [8, 9, 10]], \"gold\": 0}\n"
              "{\"contexts\": [\"x\", \"yy\"], \"continuation\": \" z\", \"gold\": 1}\n"
              "{\"contexts_ids\": [[], [4]], \"continuation_ids\": [11, 12], \"gold\": 0}\n");
  const McTask t = read_mc_task(p, vocab(true), 16);
  ASSERT_EQ(t.items.size(), 4u);
  ASSERT_EQ(t.requests.size(), 8u);
  // The delimiter is scored but not counted: "café" is 5 UTF-8 bytes.
  EXPECT_EQ(t.items[0].lengths, (std::vector<double>{2, 5}));
  EXPECT_EQ(t.requests[0].context, (Ids{'Q', ':'}));
  EXPECT_EQ(t.requests[0].continuation, (Ids{' ', 'a', 'b'}));
  EXPECT_EQ(t.items[0].gold, 1);
  EXPECT_EQ(t.items[1].first, 2);
  EXPECT_EQ(t.items[1].lengths, (std::vector<double>{1, 3}));  // token counts
  EXPECT_EQ(t.requests[3].continuation, (Ids{8, 9, 10}));
  EXPECT_EQ(t.requests[4].context, (Ids{'x'}));
  EXPECT_EQ(t.requests[5].context, (Ids{'y', 'y'}));
  EXPECT_EQ(t.requests[5].continuation, (Ids{' ', 'z'}));
  EXPECT_EQ(t.items[2].lengths, (std::vector<double>{2, 2}));
  EXPECT_EQ(t.requests[6].context, (Ids{2}));  // empty context: the end-of-document id
  EXPECT_EQ(t.items[3].lengths, (std::vector<double>{2, 2}));
  EXPECT_EQ(read_mc_task(p, vocab(true), 16, 2).items.size(), 2u);
}

TEST(Mc, MalformedLinesNameFileLineAndWhatWasExpected) {
  TempDir d;
  struct Bad {
    std::string line, want;
  };
  const std::vector<Bad> bad = {
      {"{\"context_ids\": [1], \"choices_ids\": [[2], [3]]", "not valid JSON"},
      {"3", "not a JSON object"},
      {"{\"context_ids\": [1], \"gold\": 0}", "has none of \"choices\""},
      {"{\"context_ids\": [1], \"choices_ids\": [[2], [3]]}", "\"gold\" is missing"},
      {"{\"context_ids\": [1], \"choices_ids\": [[2], [3]], \"gold\": 2}",
       "\"gold\" = 2 is not a choice index in [0, 2)"},
      {"{\"context_ids\": [1], \"choices_ids\": [[2], [3]], \"gold\": \"0\"}",
       "\"gold\" = \"0\" is not a choice index"},
      {"{\"context_ids\": [1], \"choices_ids\": [[2]], \"gold\": 0}", "needs at least two"},
      {"{\"context_ids\": [1], \"choices_ids\": [2, 3], \"gold\": 0}",
       "\"choices_ids[0]\" is not a list"},
      {"{\"context_ids\": [1], \"choices_ids\": [[2], [300]], \"gold\": 0}",
       "\"choices_ids[1]\"[0] = 300 is outside the model's vocabulary [0, 300)"},
      {"{\"context_ids\": [1], \"choices_ids\": [[2], []], \"gold\": 0}",
       "choice 1: the continuation is empty"},
      {"{\"context_ids\": [1], \"choices_ids\": [[2], [1,2,3,4,5,6,7,8,9]], \"gold\": 0}",
       "choice 1: the continuation has 9 tokens, more than the context of 8"},
      {"{\"choices_ids\": [[2], [3]], \"gold\": 0}", "\"context_ids\" is missing"},
      {"{\"contexts_ids\": [[1], [2]], \"gold\": 0}", "\"continuation_ids\" is missing"},
      {"{\"contexts_ids\": [[1], [2]], \"continuation_ids\": 5, \"gold\": 0}",
       "\"continuation_ids\" is not a list"},
      {"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 0}",
       "needs the model's tokenizer, but m/tokenizer.model does not exist"},
      {"{\"contexts\": [\"a\", \"b\"], \"continuation\": \"c\", \"gold\": 0}",
       "needs the model's tokenizer"},
  };
  for (const Bad& b : bad) {
    const std::string p = d.write("bad.jsonl", "\n" + b.line + "\n");
    const std::string msg = error_of([&] { read_mc_task(p, vocab(false), 8); });
    EXPECT_NE(msg.find(p + ":2: "), std::string::npos) << b.line << " -> " << msg;
    EXPECT_NE(msg.find(b.want), std::string::npos) << b.line << " -> " << msg;
  }
  const std::vector<Bad> bad_text = {
      {"{\"choices\": [\"b\", \"c\"], \"gold\": 0}", "\"context\" is not a string"},
      {"{\"context\": \"a\", \"choices\": [\"b\", 3], \"gold\": 0}",
       "\"choices\"[1] is not a string"},
      {"{\"context\": \"a\", \"choices\": [\"b\", \"\"], \"gold\": 0}", "\"choices\"[1] is empty"},
      {"{\"context\": \"a\", \"choices\": \"b\", \"gold\": 0}", "\"choices\" is not a list"},
      {"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 0, \"target_delimiter\": 1}",
       "\"target_delimiter\" is not a string"},
      {"{\"contexts\": [\"a\", \"b\"], \"gold\": 0}", "\"continuation\" is not a string"},
      {"{\"contexts\": [\"a\", 1], \"continuation\": \"c\", \"gold\": 0}",
       "\"contexts\"[1] is not a string"},
  };
  for (const Bad& b : bad_text) {
    const std::string p = d.write("bad.jsonl", b.line + "\n");
    const std::string msg = error_of([&] { read_mc_task(p, vocab(true), 8); });
    EXPECT_NE(msg.find(p + ":1: "), std::string::npos) << b.line << " -> " << msg;
    EXPECT_NE(msg.find(b.want), std::string::npos) << b.line << " -> " << msg;
  }
  EXPECT_NE(
      error_of([&] { read_mc_task(d.write("e.jsonl", "\n"), vocab(true), 8); }).find("no items"),
      std::string::npos);
  EXPECT_NE(
      error_of([&] { read_mc_task(d.file("none.jsonl"), vocab(true), 8); }).find("cannot read"),
      std::string::npos);
}

}  // namespace
}  // namespace rat
