// Text metrics (eval/metrics.h) against hand-computed values; the same
// definitions are checked against Python's own string handling by
// tests/cli/metrics_check.py.
#include <gtest/gtest.h>

#include "eval/metrics.h"
#include "test_util.h"

using namespace rat;
using rat::testing::error_of;
using rat::testing::TempDir;

namespace {

TEST(QaNormalize, FollowsLongBench) {
  // lower, ASCII punctuation dropped, a/an/the -> space, whitespace collapsed
  EXPECT_EQ(normalize_qa("The cat sat on the mat."), "cat sat on mat");
  EXPECT_EQ(normalize_qa("  An  apple,\ta pear\n"), "apple pear");
  EXPECT_EQ(normalize_qa("theater, an answer"), "theater answer");  // not the "the" of "theater"
  EXPECT_EQ(normalize_qa("an-swer"), "answer");  // punctuation is deleted, not a separator
  EXPECT_EQ(normalize_qa("?!...\"'"), "");
  // \b is Unicode-aware: 'a' after a letter is inside a word; after a dash it is not.
  EXPECT_EQ(normalize_qa("\xC3\xA9"
                         "a b"),
            "\xC3\xA9"
            "a b");  // "éa b"
  EXPECT_EQ(normalize_qa("x \xE2\x80\x93"
                         "a y"),
            "x \xE2\x80\x93 y");                                              // "x –a y"
  EXPECT_EQ(normalize_qa("\xC2\xABHello\xC2\xBB"), "\xC2\xABhello\xC2\xBB");  // «» are not ASCII
  EXPECT_EQ(normalize_qa("x\xC2\xA0y"), "x y");  // no-break space splits, as in str.split()
  EXPECT_EQ(normalize_qa("CAF\xC3\x89"), "caf\xC3\xA9");  // É -> é
}

TEST(QaF1, HandComputed) {
  // pred tokens cat sat on mat, answer cat on mat: P 3/4, R 1
  EXPECT_NEAR(qa_f1("The cat sat on the mat.", "a cat on a mat"), 6.0 / 7.0, 1e-12);
  EXPECT_NEAR(qa_f1("paris paris", "Paris"), 2.0 / 3.0, 1e-12);  // multiset: one match
  EXPECT_EQ(qa_f1("", "Paris"), 0.0);
  EXPECT_EQ(qa_f1("", ""), 0.0);  // LongBench: nothing shared -> 0
  EXPECT_EQ(qa_f1("?!", "..."), 0.0);
  EXPECT_EQ(qa_f1("\xC3\x9Cn\xC3\xAF"
                  "code caf\xC3\xA9",
                  "\xC3\xBCn\xC3\xAF"
                  "code CAF\xC3\x89"),
            1.0);
  EXPECT_EQ(qa_f1("london", "paris"), 0.0);
}

TEST(ExactMatch, NormalisedEquality) {
  EXPECT_EQ(exact_match("The Answer!", "answer"), 1.0);
  EXPECT_EQ(exact_match("answers", "answer"), 0.0);
  EXPECT_EQ(exact_match("", ""), 1.0);
  EXPECT_EQ(exact_match("?!", "..."), 1.0);  // both normalise to ""
  EXPECT_EQ(exact_match("", "x"), 0.0);
}

TEST(RougeL, HandComputed) {
  EXPECT_EQ(rouge_tokens("Don't stop-me now!"),
            (std::vector<std::string>{"don", "t", "stop", "me", "now"}));
  // 6 and 5 tokens, LCS 5: P 5/6, R 1
  EXPECT_NEAR(rouge_l("the cat sat on the mat", "The cat on the mat."), 10.0 / 11.0, 1e-12);
  EXPECT_NEAR(rouge_l("b a", "a b"), 0.5, 1e-12);
  // "café" splits at é: caf|au|lait against cafe|au|lait, LCS 2 of 3
  EXPECT_NEAR(rouge_l("caf\xC3\xA9 au lait", "cafe au lait"), 2.0 / 3.0, 1e-12);
  // U+212A KELVIN SIGN lowercases to ASCII k in Python, so it is kept
  EXPECT_EQ(rouge_l("\xE2\x84\xAA"
                    "elvin",
                    "kelvin"),
            1.0);
  EXPECT_EQ(rouge_l("", "a b"), 0.0);
  EXPECT_EQ(rouge_l("...", "..."), 0.0);  // no tokens on either side
}

TEST(EditSim, CodePoints) {
  EXPECT_NEAR(edit_sim("kitten", "sitting"), 1.0 - 3.0 / 7.0, 1e-12);
  EXPECT_EQ(edit_sim("", ""), 1.0);
  EXPECT_EQ(edit_sim("", "abc"), 0.0);
  EXPECT_NEAR(edit_sim("h\xC3\xA9llo", "hello"), 0.8, 1e-12);  // é is one character
  EXPECT_NEAR(edit_sim("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xE6\x97\xA5\xE6\x9C\xAC"),
              2.0 / 3.0, 1e-12);
  EXPECT_EQ(edit_sim("abc", "abc"), 1.0);
}

TEST(BestScore, MaxOverAnswers) {
  // "paris" vs "Paris, France": P 1, R 1/2
  EXPECT_NEAR(best_score(Metric::kQaF1, "paris", {"london", "Paris, France"}), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(best_score(Metric::kExactMatch, "Paris", {"london", "paris"}), 1.0);
}

TEST(ScorePredictions, MeanOverLines) {
  TempDir d;
  const std::string p =
      d.write("p.jsonl",
              "{\"prediction\": \"paris\", \"answers\": [\"london\", \"Paris, France\"]}\n"
              "\n"
              "{\"prediction\": \"\", \"answers\": [\"x\"]}\n"
              "{\"prediction\": \"The Cat\", \"answers\": [\"cat\"], \"extra\": 1}\n");
  const MetricReport r = score_predictions(p, Metric::kQaF1);
  ASSERT_EQ(r.n(), 3);
  EXPECT_NEAR(r.scores[0], 2.0 / 3.0, 1e-12);
  EXPECT_EQ(r.scores[1], 0.0);
  EXPECT_EQ(r.scores[2], 1.0);
  EXPECT_NEAR(r.mean, (2.0 / 3.0 + 1.0) / 3.0, 1e-12);
}

TEST(ScorePredictions, BadLinesNamed) {
  TempDir d;
  const std::string good = "{\"prediction\": \"a\", \"answers\": [\"a\"]}\n";
  struct Bad {
    std::string line, says;
  };
  for (const Bad& b :
       {Bad{"{not json", "not valid JSON"}, Bad{"[1, 2]", "expected {\"prediction\""},
        Bad{"{\"answers\": [\"a\"]}", "\"prediction\" is missing"},
        Bad{"{\"prediction\": 3, \"answers\": [\"a\"]}", "\"prediction\" is not a string"},
        Bad{"{\"prediction\": \"a\"}", "\"answers\" is missing"},
        Bad{"{\"prediction\": \"a\", \"answers\": []}", "\"answers\" is empty"},
        Bad{"{\"prediction\": \"a\", \"answers\": \"a\"}", "\"answers\" is not a list"},
        Bad{"{\"prediction\": \"a\", \"answers\": [\"a\", 2]}", "non-string 2"}}) {
    const std::string p = d.write("bad.jsonl", good + b.line + "\n");
    const std::string msg = error_of([&] { score_predictions(p, Metric::kQaF1); });
    EXPECT_NE(msg.find(p + ":2: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(b.says), std::string::npos) << msg;
  }
  const std::string empty = d.write("empty.jsonl", "\n\n");
  EXPECT_NE(error_of([&] { score_predictions(empty, Metric::kRougeL); }).find("no predictions"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              score_predictions(d.file("missing.jsonl"), Metric::kRougeL);
            }).find("missing.jsonl"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_metric("bleu"); }).find("expected qa_f1, rouge_l"),
            std::string::npos);
}

}  // namespace
