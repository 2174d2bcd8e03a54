// Token files (SPEC.md "Data"): a flat little-endian array of uint16
// (num_bytes 2) or uint32 (num_bytes 4) ids, documents concatenated. The file
// is memory-mapped read-only; samples are cut from it on demand.
#pragma once

#include <cstdint>
#include <string>

namespace rat {

class TokenFile {
 public:
  // Throws rat::Error naming the file if it is missing, empty, not a regular
  // file, or its size is not a multiple of num_bytes (2 or 4).
  TokenFile(const std::string& path, int num_bytes);
  // The same reader over n_tokens >= 1 ids already in memory (num_bytes each,
  // aligned), not owned: `data` must outlive the view. `name` stands for the
  // path in messages. The Python module evaluates numpy arrays through it
  // without copying them.
  static TokenFile view(const void* data, int64_t n_tokens, int num_bytes, std::string name);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  TokenFile(TokenFile&& o) noexcept;
  TokenFile& operator=(TokenFile&& o) noexcept;

  const std::string& path() const { return path_; }
  int num_bytes() const { return num_bytes_; }
  int64_t num_tokens() const { return n_tokens_; }
  uint32_t token(int64_t i) const;  // 0 <= i < num_tokens(), unchecked

  // Whole samples of length T: sample r needs tok[rT .. rT+T] (T+1 tokens,
  // the last one only as a label), so (num_tokens - 1) / T; the trailing
  // partial sample is dropped.
  int64_t num_samples(int64_t T) const;
  // inputs[t] = tok[rT + t], labels[t] = tok[rT + t + 1] for t in [0, T), and
  // labels[t] = -100 where inputs[t] == ignore_input_index (-1: none), so that
  // nothing is predicted across a document boundary. Throws if r is out of range.
  void sample(int64_t r, int64_t T, int64_t ignore_input_index, int32_t* inputs,
              int32_t* labels) const;
  // One scan; throws naming the file, the first position and id >= vocab.
  void check_vocab(int64_t vocab) const;

 private:
  TokenFile() = default;
  void release();
  std::string path_;
  int num_bytes_ = 2;
  int64_t n_tokens_ = 0;
  const uint8_t* base_ = nullptr;  // the mapping
  size_t map_size_ = 0;
  bool owned_ = true;  // base_ is our mapping (false: a view)
};

}  // namespace rat
