// generate/prompts: `rat generate`'s --prompt-ids and --batch-file rules.
#include <gtest/gtest.h>

#include "generate/prompts.h"
#include "test_util.h"

using rat::testing::error_of;

using Ids = std::vector<std::vector<int32_t>>;

TEST(PromptIds, BatchesAndSeparators) {
  EXPECT_EQ(rat::parse_prompt_ids("1 2 3; 4 5"), (Ids{{1, 2, 3}, {4, 5}}));
  EXPECT_EQ(rat::parse_prompt_ids("  7,8\t9\n10  "), (Ids{{7, 8, 9, 10}}));
  EXPECT_EQ(rat::parse_prompt_ids("1;2;3"), (Ids{{1}, {2}, {3}}));
  EXPECT_EQ(rat::parse_prompt_ids("0 2147483647"), (Ids{{0, 2147483647}}));
}

TEST(PromptIds, NotANumberIsNamed) {
  for (const char* bad : {"x", "1.5", "12abc", "0x10", "+3", "--1"}) {
    const std::string msg =
        error_of([&] { rat::parse_prompt_ids(std::string("4 ") + bad + "; 5"); });
    EXPECT_EQ(msg, std::string("--prompt-ids: '") + bad +
                       "' is not a token id, expected non-negative integers separated by spaces "
                       "(';' between prompts)");
  }
}

TEST(PromptIds, OutOfRangeIsNamed) {
  for (const char* bad : {"-1", "2147483648", "99999999999999999999999"}) {
    const std::string msg = error_of([&] { rat::parse_prompt_ids(std::string("4 ") + bad); });
    EXPECT_EQ(msg, std::string("--prompt-ids: '") + bad +
                       "' is out of range, expected ids from 0 to 2147483647");
  }
}

TEST(PromptIds, EmptyPromptIsNamed) {
  EXPECT_EQ(error_of([] { rat::parse_prompt_ids("1 2;; 3"); }),
            "--prompt-ids: prompt 2 of 3 has no ids, expected at least one id before, between "
            "and after ';'");
  EXPECT_NE(error_of([] { rat::parse_prompt_ids("1 2;"); }).find("prompt 2 of 2 has no ids"),
            std::string::npos);
  EXPECT_NE(error_of([] { rat::parse_prompt_ids(" "); }).find("prompt 1 of 1 has no ids"),
            std::string::npos);
}

TEST(PromptIds, IdsMustBeBelowTheVocabulary) {
  EXPECT_NO_THROW(rat::check_prompt_ids({{0, 63}, {5}}, 64, "m/config.yaml"));
  EXPECT_EQ(error_of([] {
              rat::check_prompt_ids({{1}, {3, 64}}, 64, "m/config.yaml");
            }),
            "prompt token id 64 is not below the model's vocab_size 64 (m/config.yaml)");
}

TEST(BatchFile, OnePromptPerLine) {
  EXPECT_EQ(rat::parse_batch_prompts("first\n\nsecond prompt\r\n  third\n", "p.txt"),
            (std::vector<std::string>{"first", "second prompt", "  third"}));
  EXPECT_EQ(rat::parse_batch_prompts("no newline at the end", "p.txt"),
            (std::vector<std::string>{"no newline at the end"}));
  EXPECT_EQ(error_of([] { rat::parse_batch_prompts("\n\r\n\n", "dir/p.txt"); }),
            "--batch-file: dir/p.txt has no prompt line, expected one prompt per line");
  EXPECT_NE(error_of([] { rat::parse_batch_prompts("", "p.txt"); }).find("p.txt"),
            std::string::npos);
}
