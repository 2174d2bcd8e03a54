// Token files (SPEC.md "Data"): sample slicing, document-boundary masking,
// both widths, and every way a file can be wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "data/tokens.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

template <typename T>
std::string write_tokens(const TempDir& dir, const std::string& name, const std::vector<T>& ids) {
  std::string bytes(ids.size() * sizeof(T), '\0');
  if (!ids.empty()) std::memcpy(bytes.data(), ids.data(), bytes.size());
  return dir.write(name, bytes);
}

TEST(TokensFile, Uint16SamplesAndLabels) {
  TempDir dir;
  // Two documents separated by the id 0 (an end-of-text marker).
  std::vector<uint16_t> ids = {5, 6, 7, 0, 9, 10, 11, 12, 13, 14};
  TokenFile f(write_tokens(dir, "train.bin", ids), 2);
  EXPECT_EQ(f.num_tokens(), 10);
  EXPECT_EQ(f.num_bytes(), 2);
  EXPECT_EQ(f.num_samples(3), 3);  // (10 - 1) / 3
  EXPECT_EQ(f.num_samples(4), 2);  // trailing partial sample dropped
  EXPECT_EQ(f.num_samples(9), 1);  // needs T + 1 = 10 tokens
  EXPECT_EQ(f.num_samples(10), 0);
  int32_t in[3], lab[3];
  f.sample(0, 3, -1, in, lab);
  EXPECT_EQ(std::vector<int32_t>(in, in + 3), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(std::vector<int32_t>(lab, lab + 3), (std::vector<int32_t>{6, 7, 0}));
  f.sample(1, 3, -1, in, lab);
  EXPECT_EQ(std::vector<int32_t>(in, in + 3), (std::vector<int32_t>{0, 9, 10}));
  EXPECT_EQ(std::vector<int32_t>(lab, lab + 3), (std::vector<int32_t>{9, 10, 11}));
  // With ignore_input_index 0 the label after the boundary is masked.
  f.sample(1, 3, 0, in, lab);
  EXPECT_EQ(std::vector<int32_t>(in, in + 3), (std::vector<int32_t>{0, 9, 10}));
  EXPECT_EQ(std::vector<int32_t>(lab, lab + 3), (std::vector<int32_t>{-100, 10, 11}));
  f.sample(2, 3, 0, in, lab);  // the last whole sample uses the last token as a label
  EXPECT_EQ(std::vector<int32_t>(in, in + 3), (std::vector<int32_t>{11, 12, 13}));
  EXPECT_EQ(std::vector<int32_t>(lab, lab + 3), (std::vector<int32_t>{12, 13, 14}));
}

TEST(TokensFile, Uint32LargeIds) {
  TempDir dir;
  std::vector<uint32_t> ids = {70000, 1, 123456, 65536, 2};
  TokenFile f(write_tokens(dir, "train.bin", ids), 4);
  EXPECT_EQ(f.num_tokens(), 5);
  EXPECT_EQ(f.token(2), 123456u);
  int32_t in[2], lab[2];
  f.sample(1, 2, 65536, in, lab);
  EXPECT_EQ(in[0], 123456);
  EXPECT_EQ(in[1], 65536);
  EXPECT_EQ(lab[0], 65536);
  EXPECT_EQ(lab[1], -100);
  EXPECT_NO_THROW(f.check_vocab(123457));
}

TEST(TokensFile, SameBytesReadAsEitherWidth) {
  TempDir dir;
  std::vector<uint16_t> ids = {1, 2, 3, 4};
  std::string p = write_tokens(dir, "t.bin", ids);
  TokenFile a(p, 2), b(p, 4);
  EXPECT_EQ(a.num_tokens(), 4);
  EXPECT_EQ(b.num_tokens(), 2);
  EXPECT_EQ(b.token(0), 1u | (2u << 16));  // little-endian
}

TEST(TokensFile, MoveKeepsMapping) {
  TempDir dir;
  TokenFile a(write_tokens<uint16_t>(dir, "t.bin", {3, 4, 5}), 2);
  TokenFile b(std::move(a));
  EXPECT_EQ(b.num_tokens(), 3);
  EXPECT_EQ(b.token(2), 5u);
  TokenFile c(write_tokens<uint16_t>(dir, "u.bin", {7}), 2);
  c = std::move(b);
  EXPECT_EQ(c.token(0), 3u);
}

TEST(TokensErrors, MissingEmptyOrNotAFile) {
  std::string msg = error_of([] { TokenFile f("/nonexistent_rat_dir/train.bin", 2); });
  EXPECT_HAS(msg,
             "/nonexistent_rat_dir/train.bin: cannot open token file (No such file or "
             "directory), expected a file of uint16 token ids");
  TempDir dir;
  std::string p = dir.write("empty.bin", "");
  EXPECT_HAS(error_of([&] { TokenFile f(p, 4); }),
             p + ": token file is empty, expected at least one uint32 token id");
  EXPECT_HAS(error_of([&] { TokenFile f(dir.path(), 2); }),
             dir.path() + ": not a regular file, expected a token file");
}

TEST(TokensErrors, SizeNotMultipleOfNumBytes) {
  TempDir dir;
  std::string p = dir.write("odd.bin", std::string(7, '\1'));
  EXPECT_HAS(error_of([&] { TokenFile f(p, 2); }),
             p + ": size 7 bytes is not a multiple of num_bytes 2, expected whole uint16 tokens");
  p = dir.write("six.bin", std::string(6, '\1'));
  EXPECT_HAS(error_of([&] { TokenFile f(p, 4); }),
             p + ": size 6 bytes is not a multiple of num_bytes 4, expected whole uint32 tokens");
  EXPECT_HAS(error_of([&] { TokenFile f(p, 3); }),
             p + ": num_bytes 3 is not supported, expected 2 or 4");
}

TEST(TokensErrors, CheckVocabNamesFirstOffender) {
  TempDir dir;
  std::string p = write_tokens<uint16_t>(dir, "train.bin", {1, 2, 31999, 32000, 40000, 5});
  TokenFile f(p, 2);
  EXPECT_NO_THROW(f.check_vocab(40001));
  EXPECT_EQ(error_of([&] { f.check_vocab(32000); }),
            p + ": token 32000 at position 3 is not below vocab_size 32000, expected ids in "
                "[0, 32000) (wrong tokenizer or num_bytes?)");
}

TEST(TokensErrors, SampleOutOfRangeOrBadLength) {
  TempDir dir;
  std::string p = write_tokens<uint16_t>(dir, "train.bin", {1, 2, 3, 4, 5});
  TokenFile f(p, 2);
  int32_t in[4], lab[4];
  EXPECT_HAS(error_of([&] { f.sample(1, 4, -1, in, lab); }),
             p + ": sample 1 of length 4 is out of range, expected 0 <= r < 1 (5 tokens)");
  EXPECT_HAS(error_of([&] { f.sample(-1, 2, -1, in, lab); }),
             "sample -1 of length 2 is out of range");
  EXPECT_HAS(error_of([&] { f.num_samples(0); }), p + ": sample length 0, expected T >= 1");
  TokenFile one(write_tokens<uint16_t>(dir, "one.bin", {7}), 2);
  EXPECT_EQ(one.num_samples(1), 0);
}

}  // namespace
}  // namespace rat
