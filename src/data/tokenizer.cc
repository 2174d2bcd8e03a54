#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw Error(path + ": tokenizer model not found (expected a sentencepiece .model file)");
  Tokenizer t;
  t.path_ = path;
  sentencepiece::util::Status st;
  try {
    st = t.sp_->Load(path);
  } catch (const std::exception& e) {
    // sentencepiece reports most faults as a Status, but building a piece trie throws
    // (Darts: an empty or NUL-led piece, found by fuzz/tokenizer.cc).
    throw Error(path + ": not a sentencepiece model (" + e.what() + ")");
  }
  if (!st.ok()) throw Error(path + ": not a sentencepiece model (" + st.ToString() + ")");
  // The context piece for decode_continuation: any ordinary piece whose text
  // is not empty (in practice an early single character).
  for (int id = 0; id < t.sp_->GetPieceSize(); ++id) {
    if (t.sp_->IsControl(id) || t.sp_->IsUnknown(id) || t.sp_->IsUnused(id) || t.sp_->IsByte(id))
      continue;
    std::string s = t.sp_->DecodeIds(std::vector<int>{id});
    if (!s.empty()) {
      t.context_id_ = id;
      t.context_text_ = std::move(s);
      break;
    }
  }
  if (t.context_id_ < 0) throw Error(path + ": the model has no ordinary (text) pieces");
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto st = sp_->Encode(text, &ids);
  if (!st.ok()) throw Error(path_ + ": encode failed (" + st.ToString() + ")");
  return std::vector<int32_t>(ids.begin(), ids.end());
}

void Tokenizer::check_ids(std::span<const int32_t> ids) const {
  const int64_t v = vocab_size();
  for (int32_t id : ids)
    if (id < 0 || id >= v)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + path_ +
                  " (" + std::to_string(v) + " ids)");
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  check_ids(ids);
  std::vector<int> v(ids.begin(), ids.end());
  std::string out;
  auto st = sp_->Decode(v, &out);
  if (!st.ok()) throw Error(path_ + ": decode failed (" + st.ToString() + ")");
  return out;
}

std::string Tokenizer::decode_continuation(std::span<const int32_t> ids) const {
  std::vector<int> v;
  v.reserve(ids.size() + 1);
  v.push_back(context_id_);
  v.insert(v.end(), ids.begin(), ids.end());
  std::string out;
  auto st = sp_->Decode(v, &out);
  if (!st.ok()) throw Error(path_ + ": decode failed (" + st.ToString() + ")");
  // Pieces decode left to right, so the context's text is a prefix.
  if (out.compare(0, context_text_.size(), context_text_) != 0)
    throw Error(path_ + ": unexpected decode of the context piece");
  return out.substr(context_text_.size());
}

std::string Tokenizer::decode_piece(int32_t id) const {
  int32_t one[1] = {id};
  check_ids(one);
  if (sp_->IsControl(id)) return "";
  if (sp_->IsUnknown(id)) return decode(one);  // the unknown surface, " ⁇ "
  if (int b = byte_value(id); b >= 0) return std::string(1, char(b));
  static const std::string kSpace = "\xe2\x96\x81";  // U+2581 "▁"
  const std::string& piece = sp_->IdToPiece(id);
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t Tokenizer::eos_id() const { return sp_->eos_id(); }
int32_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int32_t Tokenizer::unk_id() const { return sp_->unk_id(); }

bool Tokenizer::is_byte(int32_t id) const {
  return id >= 0 && id < vocab_size() && sp_->IsByte(id);
}

int Tokenizer::byte_value(int32_t id) const {
  if (!is_byte(id)) return -1;
  const std::string& p = sp_->IdToPiece(id);  // "<0xAB>"
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  return int(std::strtol(p.substr(3, 2).c_str(), nullptr, 16));
}

// ---------------------------------------------------------------------------
// StreamDecoder

// sentencepiece turns a run of byte pieces into text one UTF-8 character at a
// time from the start of the run: a lead byte and its continuation bytes when
// they form a valid character, else one U+FFFD per byte. A boundary is final
// once the character starting there cannot change with later bytes. Given a
// lead that announces n bytes and n bytes present, the scan lands n bytes on
// whether the character is valid or not (continuation bytes that stand alone
// are invalid one by one), so only a lead whose n bytes are not all here yet,
// with every byte so far a continuation byte, must wait.
size_t StreamDecoder::stable_end() const {
  const size_t end = ids_.size();
  size_t run = end;
  while (run > 0 && tok_.is_byte(ids_[run - 1])) --run;
  size_t p = run;
  while (p < end) {
    const int b = tok_.byte_value(ids_[p]);
    const size_t need = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF8 ? 4 : 1;
    if (need == 1) {
      ++p;
      continue;
    }
    size_t q = p + 1;
    while (q < end && q < p + need && (tok_.byte_value(ids_[q]) & 0xC0) == 0x80) ++q;
    if (q == p + need) {
      p += need;  // complete (valid or not): the scan resumes after it
    } else if (q == end) {
      return p;  // may still become a valid character
    } else {
      ++p;  // a non-continuation byte came too early: the lead is invalid alone
    }
  }
  return end;
}

std::string StreamDecoder::decode_window(size_t end) const {
  std::span<const int32_t> w(ids_.data(), end);
  return started_ ? tok_.decode_continuation(w) : tok_.decode(w);
}

std::string StreamDecoder::push(int32_t id) {
  int32_t one[1] = {id};
  tok_.check_ids(one);
  ids_.push_back(id);
  const size_t end = stable_end();
  if (end == 0) return "";
  std::string text = decode_window(end);
  std::string out = text.substr(std::min(emitted_, text.size()));
  emitted_ = text.size();
  if (!text.empty()) {
    // From here on every piece decodes as in mid-text, so the window can
    // restart at `end`.
    started_ = true;
    ids_.erase(ids_.begin(), ids_.begin() + std::ptrdiff_t(end));
    emitted_ = 0;
  }
  return out;
}

std::string StreamDecoder::flush() {
  std::string text = decode_window(ids_.size());
  std::string out = text.substr(std::min(emitted_, text.size()));
  ids_.clear();
  emitted_ = 0;
  started_ = false;
  return out;
}

// ---------------------------------------------------------------------------
// Training

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <class F>
void for_each_line(const std::string& text, F&& f) {
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    if (j > i) f(std::string_view(text).substr(i, j - i));
    i = j + 1;
  }
}

// Feeds every `stride`-th non-empty line of the files to the trainer.
class LineSampler : public sentencepiece::SentenceIterator {
 public:
  LineSampler(const std::vector<std::string>& files, int64_t stride)
      : files_(files), stride_(stride) {
    Next();
  }
  bool done() const override { return done_; }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }
  void Next() override {
    for (;;) {
      while (pos_ >= text_.size()) {
        if (file_ == files_.size()) {
          done_ = true;
          return;
        }
        text_ = read_file(files_[file_++]);
        pos_ = 0;
      }
      size_t j = text_.find('\n', pos_);
      if (j == std::string::npos) j = text_.size();
      const size_t i = pos_;
      pos_ = j + 1;
      if (j == i) continue;
      if (index_++ % stride_ != 0) continue;
      value_.assign(text_, i, j - i);
      return;
    }
  }

 private:
  const std::vector<std::string>& files_;
  int64_t stride_, index_ = 0;
  size_t file_ = 0, pos_ = 0;
  std::string text_, value_;
  bool done_ = false;
};

// Feeds lines held in memory to the trainer.
class VectorLines : public sentencepiece::SentenceIterator {
 public:
  explicit VectorLines(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return i_ >= lines_.size(); }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }
  void Next() override { ++i_; }

 private:
  const std::vector<std::string>& lines_;
  size_t i_ = 0;
};

// The first integer after `after` in `s`, or -1.
long long number_after(const std::string& s, const std::string& after) {
  const size_t p = s.find(after);
  if (p == std::string::npos) return -1;
  size_t i = p + after.size();
  while (i < s.size() && !std::isdigit((unsigned char)s[i])) ++i;
  if (i == s.size()) return -1;
  return std::atoll(s.c_str() + i);
}

std::string train_from(sentencepiece::SentenceIterator& it, const std::string& model_prefix,
                       int vocab_size, const TokenizerTrainOptions& opt) {
  if (opt.model_type != "bpe" && opt.model_type != "unigram" && opt.model_type != "char" &&
      opt.model_type != "word")
    throw Error("--model-type " + opt.model_type + ": expected bpe, unigram, char or word");
  if (!(opt.character_coverage > 0 && opt.character_coverage <= 1))
    throw Error("--character-coverage " + std::to_string(opt.character_coverage) +
                ": expected a fraction in (0, 1]");
  // Pieces that start with a space are words; whitespace-only pieces let
  // indentation be a few tokens; identity normalisation and kept whitespace
  // make decode(encode(text)) == text for any UTF-8 text.
  std::unordered_map<std::string, std::string> args = {
      {"model_type", opt.model_type},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", opt.byte_fallback ? "true" : "false"},
      {"character_coverage", std::to_string(opt.character_coverage)},
      {"num_threads", std::to_string(opt.num_threads)},
      {"input_sentence_size", "0"},  // the caller already bounds it
      {"shuffle_input_sentence", "false"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"minloglevel", opt.quiet ? "2" : "0"},
  };
  std::string proto;  // no model_prefix: the trainer hands back the model
  auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  if (!st.ok()) throw Error(explain_tokenizer_error(st.ToString(), vocab_size, opt));

  const std::string path = model_prefix + ".model";
  write_file_atomic(path, proto);
  return path;
}

}  // namespace

std::string explain_tokenizer_error(const std::string& message, int vocab_size,
                                    const TokenizerTrainOptions& opt) {
  const std::string vs = "--vocab-size " + std::to_string(vocab_size);
  // "Vocabulary size is smaller than required_chars. 20 vs 275. Increase
  // vocab_size or decrease character_coverage with --character_coverage option."
  if (message.find("smaller than required_chars") != std::string::npos) {
    const long long need = number_after(message, std::to_string(vocab_size) + " vs");
    std::ostringstream s;
    s << vs << " is too small for this text: it needs at least "
      << (need > 0 ? std::to_string(need) : std::string("more")) << " pieces (unk, bos, eos"
      << (opt.byte_fallback ? ", 256 byte pieces" : "")
      << " and every character covering --character-coverage " << opt.character_coverage
      << " of the text); use --vocab-size " << (need > 0 ? std::to_string(need) : "N")
      << " or more, or a lower --character-coverage";
    return s.str();
  }
  // "Vocabulary size too high (5000). Please set it to a value <= 341."
  if (message.find("Vocabulary size too high") != std::string::npos) {
    const long long most = number_after(message, "value <=");
    return vs + " is more than this text yields: at most " +
           (most > 0 ? std::to_string(most) : std::string("fewer")) + " " + opt.model_type +
           " pieces; use --vocab-size " + (most > 0 ? std::to_string(most) : std::string("N")) +
           " or less, or give more text";
  }
  return "training a " + std::to_string(vocab_size) + "-piece " + opt.model_type +
         " tokenizer failed (sentencepiece: " + message + ")";
}

std::string train_tokenizer(const std::vector<std::string>& input_files,
                            const std::string& model_prefix, int vocab_size,
                            const TokenizerTrainOptions& opt) {
  if (input_files.empty()) throw Error("train_tokenizer: no input files");
  int64_t lines = 0;
  for (const auto& f : input_files) for_each_line(read_file(f), [&](std::string_view) { ++lines; });
  if (lines == 0) throw Error("train_tokenizer: the input files hold no text");
  const int64_t stride =
      opt.max_sentences > 0 ? (lines + opt.max_sentences - 1) / opt.max_sentences : 1;
  LineSampler it(input_files, stride);
  return train_from(it, model_prefix, vocab_size, opt);
}

std::string train_tokenizer_on_lines(const std::vector<std::string>& lines,
                                     const std::string& model_prefix, int vocab_size,
                                     const TokenizerTrainOptions& opt) {
  if (lines.empty()) throw Error("training a tokenizer: the training documents hold no text");
  VectorLines it(lines);
  return train_from(it, model_prefix, vocab_size, opt);
}

}  // namespace rat
