// Needle-in-a-haystack cases (eval/niah.h) with a small tokenizer trained
// here: lengths fit their target, the needle sits at its depth in tokens, each
// answer occurs once per needle, and the prompts are RULER's and the passkey's.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "data/tokenizer.h"
#include "eval/niah.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace rat;
using rat::testing::error_of;
using rat::testing::TempDir;

namespace {

constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

class NiahTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    std::string text;
    const char* words[] = {"special",    "magic",    "numbers",  "hidden",   "within",
                           "following",  "text",     "memorize", "quiz",     "afterwards",
                           "mentioned",  "provided", "pass",     "key",      "important",
                           "irrelevant", "remember", "river",    "mountain", "letter"};
    for (int i = 0; i < 400; ++i) {
      text += std::string(kNoise) + " One of the " + words[i % 20] + " " + words[(i * 7) % 20] +
              " is: " + std::to_string(1000000 + i * 7919) + ".\n";
    }
    const std::string corpus = dir_->write("corpus.txt", text);
    model_ = new std::string(train_tokenizer({corpus}, dir_->file("tok"), 400));
    tok_ = new Tokenizer(Tokenizer::load(*model_));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete model_;
    delete dir_;
  }
  static int64_t ntok(const std::string& s) { return int64_t(tok_->encode(s).size()); }

  // The checks every case must pass; `unit` is the largest haystack sentence
  // in tokens (with its separator).
  static void check_case(const NiahCase& c, int64_t unit) {
    SCOPED_TRACE(std::string(niah_kind_name(c.kind)) + " length " + std::to_string(c.length) +
                 " depth " + std::to_string(c.depth));
    const std::string& p = c.prompt;
    // Length: the prompt and the answer's room fit, and the haystack fills
    // the target to within one more sentence.
    EXPECT_EQ(c.tokens, ntok(p));
    EXPECT_LE(c.tokens + c.max_new_tokens, c.length);
    EXPECT_GT(c.tokens + c.max_new_tokens + unit + 2, c.length) << "haystack not filled";
    // Each answer occurs once per needle that carries it (the passkey is
    // written twice in its one needle).
    const bool passkey = c.kind == NiahKind::kPasskey;
    for (const auto& a : c.answers) {
      int64_t n = 0;
      for (size_t at = p.find(a); at != std::string::npos; at = p.find(a, at + 1)) ++n;
      EXPECT_EQ(n, passkey ? 2 : 1) << a;
    }
    // Depth, found from the text: the first answer's needle, and the context
    // between the first line of the template and its question.
    const std::string needle =
        passkey ? "The pass key is " + c.answers[0] + "." : " is: " + c.answers[0] + ".";
    size_t at = p.find(needle);
    ASSERT_NE(at, std::string::npos);
    if (!passkey) at = p.rfind("One of the special magic numbers for ", at);
    const size_t end_at = p.find("\n", at);
    const size_t needle_end = passkey ? end_at : p.find(".", p.find(" is: ", at)) + 1;
    const int64_t needle_tok = ntok(p.substr(0, at));
    EXPECT_EQ(needle_tok, c.needle_token);
    const int64_t begin = ntok(p.substr(0, p.find('\n') + 1));
    const int64_t end = ntok(p.substr(0, p.rfind(passkey ? "\nWhat is the pass key?" : "\nWhat ")));
    const int64_t needle_len = ntok(p.substr(at, needle_end - at));
    // The other needles of a case sit anywhere, so each may shift the first;
    // sentences are whole, so the first needle is at most half a sentence off
    // its depth, plus a token or two where the tokenizer joins across a boundary.
    const int64_t others = int64_t(c.kind == NiahKind::kSingle || passkey ? 0 : 3) * needle_len;
    const double want = double(begin) + c.depth * double(end - begin - needle_len - others);
    const double tol = double(unit) / 2 + 3 + double(others);
    EXPECT_NEAR(double(needle_tok), want, tol)
        << "needle at token " << needle_tok << " of [" << begin << ", " << end << ")";
  }

  static TempDir* dir_;
  static std::string* model_;
  static Tokenizer* tok_;
};

TempDir* NiahTest::dir_ = nullptr;
std::string* NiahTest::model_ = nullptr;
Tokenizer* NiahTest::tok_ = nullptr;

TEST_F(NiahTest, EveryKindAtEveryDepth) {
  const int64_t unit = ntok(std::string(kNoise) + "\n");
  for (NiahKind k : {NiahKind::kSingle, NiahKind::kMultiKey, NiahKind::kMultiValue,
                     NiahKind::kMultiQuery, NiahKind::kPasskey}) {
    NiahOptions o;
    o.kind = k;
    o.lengths = {800, 2000};
    o.depths = {0, 0.25, 0.5, 0.75, 1};
    o.max_new_tokens = 16;
    const auto cases = make_niah(o, *tok_);
    ASSERT_EQ(cases.size(), 10u);
    for (const auto& c : cases) {
      EXPECT_EQ(c.kind, k);
      check_case(c, unit + 1);
      const size_t want_answers = k == NiahKind::kMultiValue || k == NiahKind::kMultiQuery ? 4 : 1;
      EXPECT_EQ(c.answers.size(), want_answers);
    }
  }
}

TEST_F(NiahTest, PromptsAreRulersAndThePasskeys) {
  NiahOptions o;
  o.lengths = {700};
  o.depths = {0.5};
  auto one = [&](NiahKind k) {
    o.kind = k;
    return make_niah(o, *tok_)[0].prompt;
  };
  const std::string single = one(NiahKind::kSingle);
  EXPECT_EQ(
      single.rfind(
          "A special magic number is hidden within the following text. Make sure to memorize it. "
          "I will quiz you about the number afterwards.\n",
          0),
      0u)
      << single;
  EXPECT_NE(single.find("\nWhat is the special magic number for "), std::string::npos);
  EXPECT_TRUE(single.ends_with(" mentioned in the provided text is")) << single;
  EXPECT_NE(single.find(std::string("\n") + kNoise + "\n"), std::string::npos)
      << "noise: one sentence a line";

  const std::string multivalue = one(NiahKind::kMultiValue);
  EXPECT_EQ(multivalue.rfind("Some special magic numbers are hidden", 0), 0u);
  EXPECT_NE(multivalue.find("\nWhat are all the special magic numbers for "), std::string::npos);
  EXPECT_TRUE(multivalue.ends_with(" mentioned in the provided text are"));

  const std::string multiquery = one(NiahKind::kMultiQuery);
  EXPECT_NE(multiquery.find(", and "), std::string::npos)
      << "RULER joins four keys as 'a, b, c, and d'";

  const std::string passkey = one(NiahKind::kPasskey);
  EXPECT_EQ(passkey.rfind(
                "There is an important info hidden inside a lot of irrelevant text. Find it and "
                "memorize them. I will quiz you about the important information there.\n",
                0),
            0u);
  EXPECT_TRUE(passkey.ends_with("\nWhat is the pass key? The pass key is"));
  EXPECT_NE(passkey.find(std::string(kNoise) + " " + kNoise), std::string::npos)
      << "noise joined by spaces";
}

TEST_F(NiahTest, EssayHaystack) {
  std::string essay;
  for (int i = 0; i < 30; ++i)
    essay += "The river ran past the mountain   for " + std::string(size_t(i % 4 + 1), 'x') +
             " days.\n\nA letter came! ";
  NiahOptions o;
  o.haystack = dir_->write("essay.txt", essay);
  o.lengths = {700};
  o.depths = {0, 0.3, 1};
  o.samples = 2;
  const auto cases = make_niah(o, *tok_);
  ASSERT_EQ(cases.size(), 6u);
  const int64_t unit = ntok("The river ran past the mountain for xxxx days. ");
  for (const auto& c : cases) {
    check_case(c, unit + 1);
    EXPECT_EQ(c.prompt.find("  "), std::string::npos) << "whitespace runs collapse";
    EXPECT_NE(c.prompt.find("days. A letter came! The river"), std::string::npos);
  }
  EXPECT_NE(cases[0].answers, cases[1].answers) << "samples differ";
}

TEST_F(NiahTest, DeterministicBySeed) {
  NiahOptions o;
  o.kind = NiahKind::kMultiKey;
  o.lengths = {700};
  o.depths = {0.5};
  const auto a = make_niah(o, *tok_), b = make_niah(o, *tok_);
  EXPECT_EQ(a[0].prompt, b[0].prompt);
  o.seed = 1;
  EXPECT_NE(a[0].prompt, make_niah(o, *tok_)[0].prompt);
}

TEST_F(NiahTest, WritesJsonl) {
  NiahOptions o;
  o.lengths = {700, 800};
  o.depths = {0, 1};
  const std::string out = dir_->file("cases.jsonl");
  write_niah(o, *tok_, out);
  std::istringstream in(rat::testing::slurp(out));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j["prompt"].is_string());
    EXPECT_EQ(j["answers"].size(), 1u);
    EXPECT_EQ(j["kind"], "single");
    EXPECT_EQ(j["length"], n < 2 ? 700 : 800);
    EXPECT_EQ(j["depth"], n % 2 ? 1.0 : 0.0);
    ++n;
  }
  EXPECT_EQ(n, 4);
}

TEST_F(NiahTest, BadOptionsNamed) {
  NiahOptions o;
  o.lengths = {700};
  o.depths = {0.5};
  auto err = [&](auto change) {
    NiahOptions x = o;
    change(x);
    return error_of([&] { make_niah(x, *tok_); });
  };
  EXPECT_NE(err([](NiahOptions& x) { x.lengths = {100}; }).find("--lengths 100"),
            std::string::npos);
  EXPECT_NE(err([](NiahOptions& x) { x.lengths = {}; }).find("--lengths"), std::string::npos);
  EXPECT_NE(err([](NiahOptions& x) { x.depths = {1.5}; }).find("--depths"), std::string::npos);
  EXPECT_NE(err([](NiahOptions& x) {
              x.haystack = "/nonexistent/essay.txt";
            }).find("/nonexistent/essay.txt"),
            std::string::npos);
  EXPECT_NE(
      err([&](NiahOptions& x) { x.haystack = dir_->write("blank.txt", " \n\n "); }).find("no text"),
      std::string::npos);
  EXPECT_NE(error_of([] { parse_niah_kind("needle"); }).find("expected single, multikey"),
            std::string::npos);
}

}  // namespace
