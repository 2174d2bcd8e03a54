// A thin wrapper over a sentencepiece model (ours, trained by `rat tokenize`,
// or LLaMA-2's tokenizer.model): text <-> ids, the ids the data format needs
// (eos is data.ignore_input_index), streaming decode for generation, and
// training a BPE model with byte fallback.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace rat {

class Tokenizer {
 public:
  // Throws rat::Error naming `path` when it is missing or not a model.
  static Tokenizer load(const std::string& path);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // No bos/eos are added: callers place them (tokenize puts eos after each
  // document).
  std::vector<int32_t> encode(std::string_view text) const;
  // The text of a whole id list, as sentencepiece decodes it: the leading
  // word-boundary space of the first word is dropped, byte pieces are joined
  // into UTF-8 (invalid bytes become U+FFFD), control ids are invisible.
  // Throws rat::Error for an id outside [0, vocab_size).
  std::string decode(std::span<const int32_t> ids) const;
  // The raw text of one id in the middle of a text: "▁" becomes a space,
  // a byte piece is that single byte (possibly part of a UTF-8 character),
  // control ids are empty. Concatenating these is NOT decode(); for
  // streaming use StreamDecoder, which is.
  std::string decode_piece(int32_t id) const;

  int64_t vocab_size() const;
  int32_t eos_id() const;  // -1 when the model defines none
  int32_t bos_id() const;  // -1 when the model defines none
  int32_t unk_id() const;
  bool is_byte(int32_t id) const;
  // The byte a byte piece ("<0x41>") stands for, or -1 when id is not one.
  int byte_value(int32_t id) const;
  const std::string& path() const { return path_; }

 private:
  friend class StreamDecoder;
  Tokenizer();
  void check_ids(std::span<const int32_t> ids) const;
  // decode(ids) as it reads after some visible text: the first word keeps its
  // leading space. Done by decoding [context_id_] + ids and cutting off the
  // context's text.
  std::string decode_continuation(std::span<const int32_t> ids) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  int32_t context_id_ = -1;   // an ordinary piece with non-empty text
  std::string context_text_;  // decode({context_id_})
};

// Incremental decoding for generation: push() ids one at a time, print what
// it returns; the concatenation of every push() and the final flush() equals
// tok.decode(all ids). Text is held back only while the trailing byte pieces
// may still be an incomplete UTF-8 character, and while nothing visible has
// been produced yet (sentencepiece drops the leading space of the first word
// only, so the first word must be decoded from the start of the stream).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  // Returns whatever is held back (an incomplete character decodes to U+FFFD,
  // as in decode()) and starts a new stream.
  std::string flush();

 private:
  // Index in ids_ up to which the decoded text can no longer change.
  size_t stable_end() const;
  std::string decode_window(size_t end) const;

  const Tokenizer& tok_;
  std::vector<int32_t> ids_;  // not yet dropped; all of them until started_
  size_t emitted_ = 0;        // bytes of decode_window(committed) already returned
  bool started_ = false;      // some visible text was returned
};

struct TokenizerTrainOptions {
  // At most this many non-empty lines are used, spread evenly over the input
  // (deterministic; sentencepiece's own sampler is randomly seeded).
  int64_t max_sentences = 300000;
  std::string model_type = "bpe";  // sentencepiece's: bpe | unigram | char | word
  // Characters rarer than this share of the text get no piece of their own
  // (with byte_fallback they are spelt as UTF-8 bytes, else they become unk).
  double character_coverage = 0.9995;
  bool byte_fallback = true;  // 256 byte pieces: any text encodes without unk
  int num_threads = 2;
  bool quiet = true;  // silence sentencepiece's training log
};

// Trains a sentencepiece model (BPE by default) on the lines of `input_files`
// and writes `model_prefix + ".model"` (via a temporary file, then rename);
// returns that path. LLaMA-style settings so any text round-trips exactly:
// byte fallback, identity normalisation, whitespace kept (indentation runs
// become pieces), digits split, newlines as the byte piece <0x0A>. Ids: unk 0,
// bos 1, eos 2. Sentencepiece's failures are reworded in rat's flags
// (--vocab-size, --character-coverage), with the size that would work.
std::string train_tokenizer(const std::vector<std::string>& input_files,
                            const std::string& model_prefix, int vocab_size,
                            const TokenizerTrainOptions& opt = {});
// The same on lines already in memory (each one sentence for the trainer;
// the caller has sampled them).
std::string train_tokenizer_on_lines(const std::vector<std::string>& lines,
                                     const std::string& model_prefix, int vocab_size,
                                     const TokenizerTrainOptions& opt = {});

// Sentencepiece's training error `message` in rat's words: "vocab too small"
// and "vocab too high" name --vocab-size and the bound sentencepiece found;
// other messages pass through after a prefix.
std::string explain_tokenizer_error(const std::string& message, int vocab_size,
                                    const TokenizerTrainOptions& opt);

}  // namespace rat
