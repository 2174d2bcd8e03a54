// TokenFile::view: ids already in memory (the Python module's numpy arrays) read by the same
// sample and vocabulary rules as a file, without a copy, and its bad input.
#include <gtest/gtest.h>

#include <vector>

#include "data/tokens.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::error_of;

TEST(TokenView, SamplesReadTheMemoryInPlace) {
  std::vector<uint16_t> ids = {5, 6, 7, 0, 9, 10, 11};
  TokenFile v = TokenFile::view(ids.data(), int64_t(ids.size()), 2, "data");
  EXPECT_EQ(v.num_tokens(), 7);
  EXPECT_EQ(v.num_samples(3), 2);  // (7 - 1) / 3
  int32_t in[3], lab[3];
  v.sample(1, 3, 0, in, lab);  // hand-worked: inputs 0 9 10, the label after id 0 masked
  EXPECT_EQ(std::vector<int32_t>(in, in + 3), (std::vector<int32_t>{0, 9, 10}));
  EXPECT_EQ(std::vector<int32_t>(lab, lab + 3), (std::vector<int32_t>{-100, 10, 11}));
  ids[6] = 42;  // a view, not a copy: the change shows
  v.sample(1, 3, 0, in, lab);
  EXPECT_EQ(lab[2], 42);
  TokenFile moved = std::move(v);  // moving a view neither frees nor unmaps the memory
  EXPECT_EQ(moved.token(0), 5u);
}

TEST(TokenView, Uint32AndVocabCheck) {
  std::vector<uint32_t> ids = {1, 70000, 3};
  TokenFile v = TokenFile::view(ids.data(), 3, 4, "data");
  EXPECT_EQ(v.token(1), 70000u);
  EXPECT_EQ(error_of([&] { v.check_vocab(100); }),
            "data: token 70000 at position 1 is not below vocab_size 100, expected ids in "
            "[0, 100) (wrong tokenizer or num_bytes?)");
}

TEST(TokenView, BadArguments) {
  uint16_t one = 1;
  EXPECT_EQ(error_of([&] { TokenFile::view(&one, 1, 3, "data"); }),
            "data: num_bytes 3 is not supported, expected 2 or 4");
  EXPECT_EQ(error_of([&] { TokenFile::view(&one, 0, 2, "data"); }),
            "data: no tokens, expected at least one token id");
}

}  // namespace
}  // namespace rat
