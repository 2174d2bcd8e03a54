// Tokenizer wrapper, streaming decode and `rat tokenize`'s library half
// (tokenize_corpus), on a tiny BPE model trained here in well under a second.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "data/corpus.h"
#include "data/tokenizer.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using rat::Error;
using rat::StreamDecoder;
using rat::Tokenizer;
using rat::testing::slurp;

namespace {

constexpr int kVocab = 320;  // 256 byte pieces + 3 control + characters + a few merges

void spit(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

// A small reproducible "document": lines of words, some indented, some with
// non-ASCII words (rare enough that they need byte fallback).
std::string make_document(int seed) {
  static const char* words[] = {"the",   "model", "chunk", "state", "token", "gate",
                                "query", "key",   "value", "layer", "rat",   "of",
                                "and",   "a",     "is",    "to",    "in",    "for"};
  std::mt19937 rng{uint32_t(seed)};
  std::string doc;
  const int lines = 3 + int(rng() % 6);
  for (int l = 0; l < lines; ++l) {
    if (rng() % 3 == 0) doc += "    ";
    const int n = 4 + int(rng() % 8);
    for (int w = 0; w < n; ++w) {
      if (w) doc += ' ';
      doc += words[rng() % (sizeof words / sizeof *words)];
      if (rng() % 40 == 0) doc += " caf\xc3\xa9";  // "café"
    }
    doc += ".\n";
  }
  return doc;
}

template <class T>
std::vector<int32_t> read_ids(const fs::path& p) {
  std::string bytes = slurp(p);
  EXPECT_EQ(bytes.size() % sizeof(T), 0u);
  std::vector<int32_t> ids(bytes.size() / sizeof(T));
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t v = 0;
    for (size_t b = 0; b < sizeof(T); ++b)
      v |= uint32_t(uint8_t(bytes[i * sizeof(T) + b])) << (8 * b);
    ids[i] = int32_t(v);
  }
  return ids;
}

std::vector<std::vector<int32_t>> split_at(const std::vector<int32_t>& ids, int32_t eos) {
  std::vector<std::vector<int32_t>> docs;
  std::vector<int32_t> cur;
  for (int32_t id : ids) {
    if (id == eos) {
      docs.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(id);
    }
  }
  EXPECT_TRUE(cur.empty()) << "token file does not end with eos";
  return docs;
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() /
                         ("rat_test_tokenizer_" + std::to_string(getpid())));
    fs::remove_all(*root_);
    std::vector<std::string> files;
    for (int i = 0; i < 12; ++i) {
      fs::path p = *root_ / "train_text" / ("doc" + std::to_string(i) + ".txt");
      spit(p, make_document(i));
      files.push_back(p.string());
    }
    model_ = new std::string(rat::train_tokenizer(files, (*root_ / "tiny").string(), kVocab));
    tok_ = new Tokenizer(Tokenizer::load(*model_));
  }
  static void TearDownTestSuite() {
    delete tok_;
    fs::remove_all(*root_);
    delete root_;
    delete model_;
  }
  static fs::path* root_;
  static std::string* model_;
  static Tokenizer* tok_;
};
fs::path* TokenizerTest::root_ = nullptr;
std::string* TokenizerTest::model_ = nullptr;
Tokenizer* TokenizerTest::tok_ = nullptr;

TEST_F(TokenizerTest, SpecialIdsAndVocab) {
  EXPECT_EQ(tok_->vocab_size(), kVocab);
  EXPECT_EQ(tok_->unk_id(), 0);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  auto ids = tok_->encode("the model");
  ASSERT_FALSE(ids.empty());
  for (int32_t id : ids) EXPECT_TRUE(id != tok_->bos_id() && id != tok_->eos_id());
}

TEST_F(TokenizerTest, RoundTripIncludingNonAscii) {
  const std::string texts[] = {
      "",
      "the model",
      "  leading spaces and  double  spaces ",
      "line one\nline two\n\n    indented\ttab\n",
      "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82 \xe2\x80\x94 "
      "end",
      "UPPER case, digits 0123456789 and symbols {}[]<>|~`@#$%^&*",
  };
  for (const auto& t : texts) {
    auto ids = tok_->encode(t);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < kVocab);
    EXPECT_EQ(tok_->decode(ids), t);
  }
  // Characters the model never saw go through byte pieces.
  auto ids = tok_->encode("\xe6\x97\xa5");
  int bytes = 0;
  for (int32_t id : ids) bytes += tok_->is_byte(id);
  EXPECT_EQ(bytes, 3);
}

TEST_F(TokenizerTest, DecodePiece) {
  auto ids = tok_->encode("the model");
  std::string joined;
  for (int32_t id : ids) joined += tok_->decode_piece(id);
  EXPECT_EQ(joined, " the model");  // the word-boundary marker is a space mid-text
  EXPECT_EQ(tok_->decode_piece(tok_->eos_id()), "");
  for (int32_t id = 0; id < kVocab; ++id) {
    if (!tok_->is_byte(id)) continue;
    EXPECT_EQ(tok_->decode_piece(id), std::string(1, char(tok_->byte_value(id))));
  }
  EXPECT_THROW(tok_->decode_piece(kVocab), Error);
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamDecoder sd(tok);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  return out + sd.flush();
}

TEST_F(TokenizerTest, StreamDecoderEqualsDecode) {
  // Real text: ids from encode, non-ASCII included.
  const std::string text = " the caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\n  gate \xf0\x9f\x99\x82";
  EXPECT_EQ(stream(*tok_, tok_->encode(text)), text);

  // Random id lists: any ids, and lists rich in byte pieces (split, invalid,
  // overlong and truncated UTF-8) and control ids at the start.
  std::vector<int32_t> bytes_ids, other_ids, byte_piece(256, -1);
  for (int32_t id = 0; id < kVocab; ++id) {
    (tok_->is_byte(id) ? bytes_ids : other_ids).push_back(id);
    if (tok_->is_byte(id)) byte_piece[size_t(tok_->byte_value(id))] = id;
  }
  ASSERT_EQ(bytes_ids.size(), 256u);
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 3000; ++trial) {
    const int n = int(rng() % 24);
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) {
      const uint32_t r = rng() % 10;
      if (trial % 3 == 0 || r < 3)
        ids.push_back(int32_t(rng() % kVocab));
      else if (r < 5)
        ids.push_back(int32_t(rng() % 3));  // unk / bos / eos
      else if (r < 8)
        ids.push_back(bytes_ids[rng() % bytes_ids.size()]);
      else
        ids.push_back(other_ids[rng() % other_ids.size()]);
    }
    // Valid multi-byte characters spelled in byte pieces, sometimes cut.
    if (trial % 5 == 0) {
      const std::string s = "\xe6\x97\xa5\xf0\x9f\x99\x82\xc3\xa9";
      const size_t cut = rng() % (s.size() + 1);
      for (size_t i = 0; i < cut; ++i)
        ids.insert(ids.begin() + std::ptrdiff_t(rng() % (ids.size() + 1)),
                   byte_piece[uint8_t(s[i])]);
    }
    ASSERT_EQ(stream(*tok_, ids), tok_->decode(ids)) << "trial " << trial;
  }
}

TEST_F(TokenizerTest, StreamDecoderHoldsIncompleteCharacters) {
  // "日" as three byte pieces: nothing is printed until the character is whole.
  auto ids = tok_->encode("\xe6\x97\xa5");
  ASSERT_EQ(ids.size(), 4u);  // "▁" (the dropped leading space), then three bytes
  StreamDecoder sd(*tok_);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += sd.push(ids[i]);
  EXPECT_EQ(out, "");
  out += sd.push(ids.back());
  EXPECT_EQ(out, "\xe6\x97\xa5");
  EXPECT_EQ(sd.flush(), "");
}

TEST_F(TokenizerTest, LoadErrorsNameTheFile) {
  try {
    Tokenizer::load((*root_ / "nope.model").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.model"), std::string::npos);
  }
  spit(*root_ / "garbage.model", "not a model");
  try {
    Tokenizer::load((*root_ / "garbage.model").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.model"), std::string::npos);
  }
}

// A corpus: 10 .txt documents in nested directories (one empty) plus files
// the glob must skip.
fs::path make_corpus(const fs::path& dir, std::vector<std::string>* texts) {
  std::vector<std::pair<std::string, std::string>> files;
  for (int i = 0; i < 10; ++i) {
    std::string name = (i < 5 ? "a/" : "b/c/") + std::string("d") + std::to_string(i) + ".txt";
    files.push_back({name, i == 7 ? std::string() : make_document(100 + i)});
  }
  for (auto& [name, text] : files) spit(dir / name, text);
  spit(dir / "a" / "notes.md", "skipped by the glob");
  spit(dir / "README", "skipped by the glob");
  std::sort(files.begin(), files.end());  // the order tokenize uses: by path
  texts->clear();
  for (auto& f : files) texts->push_back(f.second);
  return dir;
}

TEST_F(TokenizerTest, TokenizeDirectoryWithGivenTokenizer) {
  std::vector<std::string> texts;
  fs::path corpus = make_corpus(*root_ / "corpus1", &texts);
  rat::TokenizeOptions o;
  o.inputs = {corpus.string()};
  o.out_dir = (*root_ / "out1").string();
  o.tokenizer = *model_;
  o.val_fraction = 0.25;
  o.glob = "*.txt";
  int64_t last_done = -1, total = -1;
  o.progress = [&](int64_t d, int64_t t) {
    last_done = d;
    total = t;
  };
  rat::TokenizeReport r = rat::tokenize_corpus(o);
  EXPECT_EQ(last_done, 10);
  EXPECT_EQ(total, 10);
  EXPECT_FALSE(r.trained_tokenizer);
  EXPECT_EQ(r.eos_id, 2);
  EXPECT_EQ(r.vocab_size, kVocab);

  // ceil(10 * 0.25) = 3 val documents, evenly spaced: indices 0, 4, 8.
  std::vector<std::vector<int32_t>> want_train, want_val;
  for (size_t i = 0; i < texts.size(); ++i)
    (i == 0 || i == 4 || i == 8 ? want_val : want_train).push_back(tok_->encode(texts[i]));
  EXPECT_EQ(r.train_documents, 7);
  EXPECT_EQ(r.val_documents, 3);

  auto train = read_ids<uint16_t>(o.out_dir + "/train.bin");
  auto val = read_ids<uint16_t>(o.out_dir + "/val.bin");
  EXPECT_EQ(int64_t(train.size()), r.train_tokens);
  EXPECT_EQ(int64_t(val.size()), r.val_tokens);
  EXPECT_EQ(split_at(train, r.eos_id), want_train);  // eos after every document
  EXPECT_EQ(split_at(val, r.eos_id), want_val);
  EXPECT_EQ(fs::file_size(o.out_dir + "/train.bin"), 2 * train.size());
  EXPECT_FALSE(fs::exists(o.out_dir + "/train.bin.tmp"));
  EXPECT_EQ(slurp(o.out_dir + "/tokenizer.model"), slurp(*model_));

  auto j = nlohmann::json::parse(slurp(o.out_dir + "/tokenize.json"));
  EXPECT_EQ(j["vocab_size"], kVocab);
  EXPECT_EQ(j["eos_id"], 2);
  EXPECT_EQ(j["ignore_input_index"], 2);
  EXPECT_EQ(j["num_bytes"], 2);
  EXPECT_EQ(j["train_tokens"], r.train_tokens);
  EXPECT_EQ(j["val_documents"], 3);
  EXPECT_GT(j["val_unigram_ppl"].get<double>(), 1.0);
  EXPECT_LT(j["val_unigram_ppl"].get<double>(), double(kVocab));
}

TEST_F(TokenizerTest, TokenizeTrainsTokenizerAndWritesUint32) {
  std::vector<std::string> texts;
  fs::path corpus = make_corpus(*root_ / "corpus2", &texts);
  rat::TokenizeOptions o;
  o.inputs = {(corpus / "a").string(), (corpus / "b").string()};
  o.out_dir = (*root_ / "out2" / "nested").string();  // created
  o.vocab_size = kVocab;
  o.num_bytes = 4;
  o.val_fraction = 0.1;
  o.glob = "*.txt";
  rat::TokenizeReport r = rat::tokenize_corpus(o);
  EXPECT_TRUE(r.trained_tokenizer);
  EXPECT_EQ(r.vocab_size, kVocab);
  EXPECT_EQ(r.train_documents + r.val_documents, 10);
  EXPECT_EQ(r.val_documents, 1);
  Tokenizer t = Tokenizer::load(o.out_dir + "/tokenizer.model");
  auto train = read_ids<uint32_t>(o.out_dir + "/train.bin");
  auto docs = split_at(train, t.eos_id());
  ASSERT_EQ(docs.size(), 9u);
  EXPECT_EQ(t.decode(docs[0]), texts[1]);  // document 0 is the val one
  EXPECT_EQ(fs::file_size(o.out_dir + "/train.bin"), 4 * train.size());
}

TEST_F(TokenizerTest, ValSplitIsDeterministic) {
  int64_t n_val = 0;
  for (int64_t i = 0; i < 100; ++i) n_val += rat::is_val_document(i, 0.05);
  EXPECT_EQ(n_val, 5);
  EXPECT_TRUE(rat::is_val_document(0, 0.05));
  EXPECT_TRUE(rat::is_val_document(20, 0.05));
  EXPECT_FALSE(rat::is_val_document(19, 0.05));
  for (int64_t i = 0; i < 100; ++i) EXPECT_FALSE(rat::is_val_document(i, 0.0));

  std::vector<std::string> texts;
  fs::path corpus = make_corpus(*root_ / "corpus3", &texts);
  std::string first_val, first_train;
  for (int run = 0; run < 2; ++run) {
    rat::TokenizeOptions o;
    o.inputs = {corpus.string()};
    o.out_dir = (*root_ / ("out3_" + std::to_string(run))).string();
    o.tokenizer = *model_;
    o.val_fraction = 0.3;
    o.glob = "*.txt";
    rat::tokenize_corpus(o);
    if (run == 0) {
      first_val = slurp(o.out_dir + "/val.bin");
      first_train = slurp(o.out_dir + "/train.bin");
    } else {
      EXPECT_EQ(slurp(o.out_dir + "/val.bin"), first_val);
      EXPECT_EQ(slurp(o.out_dir + "/train.bin"), first_train);
    }
  }
}

TEST_F(TokenizerTest, UnigramPerplexity) {
  // Train counts {3, 1, 0} over V = 3: p = {4, 2, 1} / 7. Val: one id 0, one id 2.
  const double ppl = rat::unigram_perplexity({3, 1, 0}, {1, 0, 1});
  EXPECT_NEAR(ppl, std::exp(-(std::log(4.0 / 7) + std::log(1.0 / 7)) / 2), 1e-12);
  EXPECT_EQ(rat::unigram_perplexity({3, 1, 0}, {0, 0, 0}), 0.0);
}

// error_of fails the test unless f throws a one-line rat::Error.
void expect_error(const std::function<void()>& f, const std::string& needle) {
  EXPECT_HAS(rat::testing::error_of(f), needle);
}

TEST_F(TokenizerTest, Errors) {
  rat::TokenizeOptions o;
  o.tokenizer = *model_;
  o.out_dir = (*root_ / "out_err").string();

  o.inputs = {(*root_ / "missing_dir").string()};
  expect_error([&] { rat::tokenize_corpus(o); }, "missing_dir");

  fs::create_directories(*root_ / "empty_dir" / "sub");
  o.inputs = {(*root_ / "empty_dir").string()};
  expect_error([&] { rat::tokenize_corpus(o); }, "empty corpus");
  spit(*root_ / "empty_dir" / "sub" / "e.txt", "");
  expect_error([&] { rat::tokenize_corpus(o); }, "empty corpus");

  std::vector<std::string> texts;
  o.inputs = {make_corpus(*root_ / "corpus4", &texts).string()};
  spit(*root_ / "a_file", "x");
  o.out_dir = (*root_ / "a_file" / "out").string();
  expect_error([&] { rat::tokenize_corpus(o); }, "a_file");

  o.out_dir = (*root_ / "out_err").string();
  o.num_bytes = 3;
  expect_error([&] { rat::tokenize_corpus(o); }, "--num-bytes 3");

  // A vocabulary that does not fit uint16: refused before anything is
  // trained or written; for a given model, checked directly (no 70k model).
  o.num_bytes = 2;
  o.tokenizer.clear();
  o.vocab_size = 70000;
  o.out_dir = (*root_ / "out_never_created").string();
  expect_error([&] { rat::tokenize_corpus(o); }, "--vocab-size 70000");
  EXPECT_FALSE(fs::exists(o.out_dir));
  expect_error([] { rat::check_vocab_fits(70000, 2, "big.model"); }, "big.model");
  expect_error([] { rat::check_vocab_fits(70000, 2, "big.model"); }, "--num-bytes 4");
  EXPECT_NO_THROW(rat::check_vocab_fits(65536, 2, "x"));
  EXPECT_NO_THROW(rat::check_vocab_fits(70000, 4, "x"));
  EXPECT_NO_THROW(rat::check_vocab_fits(32000, 2, "llama"));
}

// Issue 14: one big text file is many documents (at blank lines), not one
// that --val-fraction sends wholly to val.bin.
TEST_F(TokenizerTest, SingleFileIsSplitAtBlankLines) {
  std::string book;
  std::vector<std::string> paragraphs;
  for (int i = 0; i < 20; ++i) {
    std::string p = make_document(100 + i);
    p.pop_back();  // a document ends before its paragraph break
    paragraphs.push_back(p);
    book += p + "\n\n";
  }
  spit(*root_ / "book.txt", book);
  rat::TokenizeOptions o;
  o.inputs = {(*root_ / "book.txt").string()};
  o.out_dir = (*root_ / "out_book").string();
  o.tokenizer = *model_;
  rat::TokenizeReport r = rat::tokenize_corpus(o);
  EXPECT_EQ(r.train_documents, 19);
  EXPECT_EQ(r.val_documents, 1);  // ceil(20 * 0.05), document 0
  auto val = split_at(read_ids<uint16_t>(o.out_dir + "/val.bin"), 2);
  ASSERT_EQ(val.size(), 1u);
  EXPECT_EQ(val[0], tok_->encode(paragraphs[0]));
  auto train = split_at(read_ids<uint16_t>(o.out_dir + "/train.bin"), 2);
  ASSERT_EQ(train.size(), 19u);
  EXPECT_EQ(train[18], tok_->encode(paragraphs[19]));

  // Kept whole (--split file) it is one document: the error says how to get more.
  o.split = rat::DocSplit::kFile;
  o.out_dir = (*root_ / "out_book_whole").string();
  expect_error([&] { rat::tokenize_corpus(o); },
               "--val-fraction 0.05 holds out all 1 document for validation, leaving none for "
               "training: give more documents; a file named as an input is split into "
               "documents at blank lines (--split blank) or at --doc-separator STR, or lower "
               "--val-fraction (0: no validation split)");
  EXPECT_FALSE(fs::exists(o.out_dir));
}

// Issue 14: a JSON-lines file is records, not text with its JSON syntax.
TEST_F(TokenizerTest, JsonLinesAreRecords) {
  spit(*root_ / "hf.jsonl",
       "{\"text\": \"the model is a rat\", \"meta\": 1}\n"
       "{\"text\": \"the key and the value\\nof a layer\"}\n"
       "{\"text\": \"a gate\"}\n");
  rat::TokenizeOptions o;
  o.inputs = {(*root_ / "hf.jsonl").string()};
  o.out_dir = (*root_ / "out_jsonl").string();
  o.tokenizer = *model_;
  o.val_fraction = 0.3;
  rat::TokenizeReport r = rat::tokenize_corpus(o);
  EXPECT_EQ(r.val_documents, 1);
  auto train = split_at(read_ids<uint16_t>(o.out_dir + "/train.bin"), 2);
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(tok_->decode(train[0]), "the key and the value\nof a layer");
  EXPECT_EQ(tok_->decode(train[1]), "a gate");
  // A record without the key names FILE:LINE and --text-key; nothing is written.
  o.text_key = "content";
  o.out_dir = (*root_ / "out_jsonl_bad").string();
  expect_error([&] { rat::tokenize_corpus(o); }, (*root_ / "hf.jsonl").string() +
                                                     ":1: no \"content\" field (the record has "
                                                     "\"meta\", \"text\"); name the field holding "
                                                     "the text with --text-key");
  EXPECT_FALSE(fs::exists(o.out_dir));
}

// Issue 14: sentencepiece's "--character_coverage option" message (a flag rat
// lacks) becomes rat's flags and the size that works. The text's characters
// are 'a', 'b' and the word-boundary piece: 3, plus unk/bos/eos and 256 byte
// pieces = 262 at least.
TEST_F(TokenizerTest, TooSmallVocabNamesRatFlags) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "ab ba abab\n";
  spit(*root_ / "ab" / "t.txt", text);
  rat::TokenizeOptions o;
  o.inputs = {(*root_ / "ab").string()};
  o.out_dir = (*root_ / "out_ab").string();
  o.vocab_size = 20;
  o.val_fraction = 0;
  const std::string msg = rat::testing::error_of([&] { rat::tokenize_corpus(o); });
  EXPECT_EQ(msg,
            "--vocab-size 20 is too small for this text: it needs at least 262 pieces (unk, bos, "
            "eos, 256 byte pieces and every character covering --character-coverage 0.9995 of "
            "the text); use --vocab-size 262 or more, or a lower --character-coverage");
  EXPECT_FALSE(fs::exists(o.out_dir + "/tokenize.json"));
  EXPECT_FALSE(fs::exists(o.out_dir + "/train.bin"));
  // Too many pieces for so little text: the bound sentencepiece found.
  o.vocab_size = 5000;
  EXPECT_HAS(rat::testing::error_of([&] { rat::tokenize_corpus(o); }),
             "--vocab-size 5000 is more than this text yields: at most ");
  // Without byte pieces 3 + 3 suffice.
  o.vocab_size = 5;
  o.train.byte_fallback = false;
  EXPECT_HAS(rat::testing::error_of([&] { rat::tokenize_corpus(o); }),
             "it needs at least 6 pieces (unk, bos, eos and every character");
}

}  // namespace
