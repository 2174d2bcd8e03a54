#include "data/tokens.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

#include "util/error.h"

namespace rat {

static_assert(std::endian::native == std::endian::little,
              "token files are little-endian; this reader assumes a little-endian host");

TokenFile::TokenFile(const std::string& path, int num_bytes) : path_(path), num_bytes_(num_bytes) {
  if (num_bytes != 2 && num_bytes != 4)
    throw Error(path + ": num_bytes " + std::to_string(num_bytes) +
                " is not supported, expected 2 or 4");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw Error(path + ": cannot open token file (" + std::strerror(err) +
                "), expected a file of uint" + std::to_string(8 * num_bytes) + " token ids");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file, expected a token file");
  }
  const uint64_t size = uint64_t(st.st_size);
  if (size == 0) {
    ::close(fd);
    throw Error(path + ": token file is empty, expected at least one uint" +
                std::to_string(8 * num_bytes) + " token id");
  }
  if (size % uint64_t(num_bytes) != 0) {
    ::close(fd);
    throw Error(path + ": size " + std::to_string(size) + " bytes is not a multiple of num_bytes " +
                std::to_string(num_bytes) + ", expected whole uint" +
                std::to_string(8 * num_bytes) + " tokens (wrong num_bytes?)");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) throw Error(path + ": cannot map token file (" + std::strerror(err) + ")");
  base_ = static_cast<const uint8_t*>(p);
  map_size_ = size;
  n_tokens_ = int64_t(size / uint64_t(num_bytes));
}

TokenFile TokenFile::view(const void* data, int64_t n_tokens, int num_bytes, std::string name) {
  if (num_bytes != 2 && num_bytes != 4)
    throw Error(name + ": num_bytes " + std::to_string(num_bytes) +
                " is not supported, expected 2 or 4");
  if (n_tokens <= 0) throw Error(name + ": no tokens, expected at least one token id");
  TokenFile f;
  f.path_ = std::move(name);
  f.num_bytes_ = num_bytes;
  f.n_tokens_ = n_tokens;
  f.base_ = static_cast<const uint8_t*>(data);
  f.map_size_ = size_t(n_tokens) * size_t(num_bytes);
  f.owned_ = false;
  return f;
}

void TokenFile::release() {
  if (base_ && owned_) ::munmap(const_cast<uint8_t*>(base_), map_size_);
  base_ = nullptr;
  map_size_ = 0;
}

TokenFile::~TokenFile() { release(); }

TokenFile::TokenFile(TokenFile&& o) noexcept
    : path_(std::move(o.path_)),
      num_bytes_(o.num_bytes_),
      n_tokens_(std::exchange(o.n_tokens_, 0)),
      base_(std::exchange(o.base_, nullptr)),
      map_size_(std::exchange(o.map_size_, 0)),
      owned_(o.owned_) {}

TokenFile& TokenFile::operator=(TokenFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    num_bytes_ = o.num_bytes_;
    n_tokens_ = std::exchange(o.n_tokens_, 0);
    base_ = std::exchange(o.base_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    owned_ = o.owned_;
  }
  return *this;
}

uint32_t TokenFile::token(int64_t i) const {
  // The mapping is page-aligned, so these loads are naturally aligned.
  if (num_bytes_ == 2) return reinterpret_cast<const uint16_t*>(base_)[i];
  return reinterpret_cast<const uint32_t*>(base_)[i];
}

int64_t TokenFile::num_samples(int64_t T) const {
  if (T <= 0) throw Error(path_ + ": sample length " + std::to_string(T) + ", expected T >= 1");
  return (n_tokens_ - 1) / T;
}

void TokenFile::sample(int64_t r, int64_t T, int64_t ignore_input_index, int32_t* inputs,
                       int32_t* labels) const {
  const int64_t n = num_samples(T);
  if (r < 0 || r >= n)
    throw Error(path_ + ": sample " + std::to_string(r) + " of length " + std::to_string(T) +
                " is out of range, expected 0 <= r < " + std::to_string(n) + " (" +
                std::to_string(n_tokens_) + " tokens)");
  const int64_t start = r * T;
  for (int64_t t = 0; t < T; ++t) {
    const uint32_t in = token(start + t);
    inputs[t] = int32_t(in);
    labels[t] = int64_t(in) == ignore_input_index ? -100 : int32_t(token(start + t + 1));
  }
}

void TokenFile::check_vocab(int64_t vocab) const {
  // One front-to-back pass: read ahead (our own mapping only, not a view's memory).
  void* p = owned_ ? const_cast<uint8_t*>(base_) : nullptr;
  const size_t n = owned_ ? map_size_ : 0;
  ::madvise(p, n, MADV_SEQUENTIAL);
  struct Restore {
    void* p;
    size_t n;
    ~Restore() { ::madvise(p, n, MADV_NORMAL); }
  } restore{p, n};
  // Typed loops: this scans whole training sets (billions of ids).
  auto first_bad = [&](auto* ids) {
    for (int64_t i = 0; i < n_tokens_; ++i)
      if (int64_t(ids[i]) >= vocab) return i;
    return n_tokens_;
  };
  const int64_t i = num_bytes_ == 2 ? first_bad(reinterpret_cast<const uint16_t*>(base_))
                                    : first_bad(reinterpret_cast<const uint32_t*>(base_));
  if (i < n_tokens_) {
    const uint32_t id = token(i);
    throw Error(path_ + ": token " + std::to_string(id) + " at position " + std::to_string(i) +
                " is not below vocab_size " + std::to_string(vocab) + ", expected ids in [0, " +
                std::to_string(vocab) + ") (wrong tokenizer or num_bytes?)");
  }
}

}  // namespace rat
