// The authors' SFT layout: one padded row per example (sft_padded_row, hand-
// computed from tokenize/sft.py's slicing), their templates and dataset fields
// (data/sft_tasks.h), and test.jsonl as `rat eval --task gen` reads it. The
// whole files against a Python rebuild: tests/cli/sft_data_check.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "data/sft_padded.h"
#include "data/sft_tasks.h"
#include "data/tokenizer.h"
#include "eval/gen_task.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace rat;
using rat::testing::error_of;
using rat::testing::TempDir;

namespace {

constexpr int32_t kEos = 2, kIgn = -100;

struct Row {
  std::vector<int32_t> x, y;
  bool cut;
};

Row make_row(const std::vector<int32_t>& prompt, const std::vector<int32_t>* answer, int64_t m,
             int64_t len) {
  Row r{std::vector<int32_t>(size_t(len), 7777), std::vector<int32_t>(size_t(len), 7777), false};
  r.cut = sft_padded_row(prompt, answer, m, len, kEos, r.x.data(), r.y.data());
  return r;
}

}  // namespace

// prompt [10 11 12] + answer [20 21]: 5 ids, labels [-100 -100 20 21].
TEST(SftPaddedRow, FitsWithOnePadAndEosLabel) {
  const std::vector<int32_t> a{20, 21};
  Row r = make_row({10, 11, 12}, &a, 6, 6);
  EXPECT_FALSE(r.cut);
  EXPECT_EQ(r.x, (std::vector<int32_t>{10, 11, 12, 20, 21, kEos}));
  EXPECT_EQ(r.y, (std::vector<int32_t>{kIgn, kIgn, 20, 21, kEos, kIgn}));
}

// Exactly seq_len ids: their rule cuts at >= seq_len (to seq_len - 1, room for the end):
// h = 2, s = 2: ids [10 11] + [20 21], labels [:2] + the last 1.
TEST(SftPaddedRow, ExactlySeqLenIsCut) {
  const std::vector<int32_t> a{20, 21};
  Row r = make_row({10, 11, 12}, &a, 5, 5);
  EXPECT_TRUE(r.cut);
  EXPECT_EQ(r.x, (std::vector<int32_t>{10, 11, 20, 21, kEos}));
  EXPECT_EQ(r.y, (std::vector<int32_t>{kIgn, kIgn, 21, kEos, kIgn}));
}

// One over: h = 1, s = 2.
TEST(SftPaddedRow, OneOver) {
  const std::vector<int32_t> a{20, 21};
  Row r = make_row({10, 11, 12}, &a, 4, 4);
  EXPECT_TRUE(r.cut);
  EXPECT_EQ(r.x, (std::vector<int32_t>{10, 20, 21, kEos}));
  EXPECT_EQ(r.y, (std::vector<int32_t>{kIgn, 21, kEos, kIgn}));
}

// An answer longer than the row: the head keeps the prompt's start (and, as their
// slicing does, the label of its last kept id is the answer's first id), the
// tail the answer's end.
TEST(SftPaddedRow, AnswerLongerThanSeqLen) {
  const std::vector<int32_t> a{20, 21, 22, 23, 24, 25, 26, 27, 28, 29};
  Row r = make_row({10, 11}, &a, 6, 6);
  EXPECT_TRUE(r.cut);
  EXPECT_EQ(r.x, (std::vector<int32_t>{10, 11, 27, 28, 29, kEos}));
  EXPECT_EQ(r.y, (std::vector<int32_t>{kIgn, 20, 28, 29, kEos, kIgn}));
}

// A test row: the prompt only, cut to the prefill budget P - 1, padded to seq_len.
TEST(SftPaddedRow, TestRowPromptOnly) {
  Row r = make_row({10, 11, 12, 13, 14, 15, 16, 17}, nullptr, 5, 8);
  EXPECT_TRUE(r.cut);
  EXPECT_EQ(r.x, (std::vector<int32_t>{10, 11, 16, 17, kEos, kEos, kEos, kEos}));
  EXPECT_EQ(r.y, (std::vector<int32_t>{kIgn, kIgn, kIgn, kEos, kIgn, kIgn, kIgn, kIgn}));
  Row s = make_row({10, 11}, nullptr, 5, 8);
  EXPECT_FALSE(s.cut);
  EXPECT_EQ(s.x, (std::vector<int32_t>{10, 11, kEos, kEos, kEos, kEos, kEos, kEos}));
  EXPECT_EQ(s.y, (std::vector<int32_t>{kIgn, kEos, kIgn, kIgn, kIgn, kIgn, kIgn, kIgn}));
}

TEST(SftPaddedRow, RefusesWhatTheirSlicingCannotDo) {
  const std::vector<int32_t> a{20};
  std::vector<int32_t> x(8), y(8);
  EXPECT_NE(
      error_of([&] { sft_padded_row({}, &a, 8, 8, kEos, x.data(), y.data()); }).find("no tokens"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              sft_padded_row({1}, &a, 3, 8, kEos, x.data(), y.data());
            }).find("outside [4, 8]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              sft_padded_row({1}, &a, 9, 8, kEos, x.data(), y.data());
            }).find("outside [4, 8]"),
            std::string::npos);
}

TEST(SftTasks, TemplatesAreTheAuthors) {
  ASSERT_NE(find_sft_task("qmsum"), nullptr);
  EXPECT_EQ(find_sft_task("qmsum")->prompt_template,
            "Transcript: {context}\n\nQuestion: {input}\n\nAnswer:");
  EXPECT_EQ(find_sft_task("wikisum")->prompt_template,
            "Article: {context}\n\nQuestion: {input}\n\nAnswer:");
  for (const char* t : {"narrativeqa_summary", "narrativeqa_text", "narrativeqa_full"})
    EXPECT_EQ(find_sft_task(t)->prompt_template,
              "Story: {context}\n\nQuestion: {input}\n\nAnswer:");
  EXPECT_EQ(find_sft_task("narrativeqa"), nullptr);
  EXPECT_EQ(find_sft_task("qmsum")->max_new_tokens, 384);
  SftRecord r{"C {x}", "I", {"a"}};
  EXPECT_EQ(format_sft_prompt("{{lit}} {context}|{input}}}", r), "{lit} C {x}|I}");
  for (const char* bad : {"{answer}", "{context", "a } b"})
    EXPECT_NE(error_of([&] { check_sft_template(bad); }).find("prompt template"), std::string::npos)
        << bad;
}

TEST(SftTasks, DatasetFields) {
  const std::string w = "f.jsonl:3: ";
  SftRecord r =
      read_sft_record("narrativeqa_full",
                      nlohmann::json::parse(R"({"document": {"summary": {"text": "S"}, "text": "T"},
                              "question": {"text": "Q"}, "answers": [{"text": "a1"}, {"text": "a2"}]})"),
                      w);
  EXPECT_EQ(r.context, "S\n\nT");
  EXPECT_EQ(r.input, "Q");
  EXPECT_EQ(r.answers, (std::vector<std::string>{"a1", "a2"}));
  r = read_sft_record("qmsum",
                      nlohmann::json::parse(R"({"prompt": "Q", "input": "T", "output": "A"})"), w);
  EXPECT_EQ(r.context, "T");
  EXPECT_EQ(r.input, "Q");
  EXPECT_EQ(r.answers, (std::vector<std::string>{"A"}));
  r = read_sft_record(
      "qmsum", nlohmann::json::parse(R"({"input": "Q", "context": "T", "answers": ["A", "B"]})"),
      w);
  EXPECT_EQ(r.context, "T");
  EXPECT_EQ(r.input, "Q");
  EXPECT_EQ(r.answers.size(), 2u);
  r = read_sft_record(
      "wikisum", nlohmann::json::parse(R"({"title": "Q", "article": "T", "summary": "A"})"), w);
  EXPECT_EQ(r.context, "T");
  EXPECT_EQ(r.input, "Q");
  // The missing field of the closest form, with FILE:LINE.
  std::string m = error_of([&] {
    read_sft_record("wikisum", nlohmann::json::parse(R"({"title": "Q", "article": "T"})"), w);
  });
  EXPECT_NE(m.find("f.jsonl:3: missing field \"summary\""), std::string::npos) << m;
  m = error_of([&] {
    read_sft_record("narrativeqa_summary",
                    nlohmann::json::parse(R"({"question": "Q", "summary": "S"})"), w);
  });
  EXPECT_NE(m.find("missing field \"answer\""), std::string::npos) << m;
  m = error_of([&] {
    read_sft_record("wikisum",
                    nlohmann::json::parse(R"({"title": "Q", "article": "T", "summary": []})"), w);
  });
  EXPECT_NE(m.find("field \"summary\" is []"), std::string::npos) << m;
}

// test.jsonl is a `rat eval --task gen` file: the templated prompt, the references, the budgets.
TEST(SftPadded, TestJsonlReadsAsGenCases) {
  TempDir d;
  std::string text;
  for (int i = 0; i < 50; ++i) text += "How to sort a list. Call sorted on it. Use sorted.\n";
  const std::string tok = train_tokenizer({d.write("text.txt", text)}, d.file("tok"), 300);
  SftPaddedOptions o;
  o.task = "wikisum";
  o.test = d.write(
      "t.jsonl", R"({"title": "How to sort", "article": "Call sorted.", "summary": "Use sorted."})"
                 "\n");
  o.tokenizer = tok;
  o.out_dir = d.file("out");
  o.seq_len = 4096;
  SftPaddedReport r = build_sft_padded(o);
  EXPECT_EQ(r.prefill_tokens, 3840);
  std::vector<GenCase> c = read_gen_cases(r.test_jsonl, -1, false);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].prompt, "Article: Call sorted.\n\nQuestion: How to sort\n\nAnswer:");
  EXPECT_EQ(c[0].answers, (std::vector<std::string>{"Use sorted."}));
  EXPECT_EQ(c[0].max_new_tokens, 257);      // gen.py's 256 and the first token before its loop
  EXPECT_EQ(c[0].max_prompt_tokens, 3839);  // prompts of >= 3840 tokens are cut to 3839
  EXPECT_TRUE(fs::exists(d.file("out/wikisum/llama-test-4096-inputs.bin")));
  EXPECT_EQ(fs::file_size(d.file("out/wikisum/llama-test-4096-inputs.bin")), 2u * 4096u);
  const std::string bad =
      d.write("b.jsonl", R"({"prompt": "p", "answers": ["a"], "max_prompt_tokens": 0})"
                         "\n");
  EXPECT_NE(
      error_of([&] { read_gen_cases(bad, -1, false); }).find("b.jsonl:1: \"max_prompt_tokens\""),
      std::string::npos);
}
