// Shared by the libFuzzer targets (fuzz/*.cc): scratch files for the parsers that read paths,
// splitting one input into several files, and the one rule every target checks: bad input
// throws rat::Error (the CLI's one-line message), never anything else, never a crash.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"
#include "util/error.h"

namespace rat::fuzz {

// This process's scratch folder: tmpfs (/dev/shm) when there is one, so the atomic writers'
// fsyncs cost nothing. Removed at a normal exit; a crash leaves it for the post-mortem.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    const char* env = std::getenv("RAT_FUZZ_TMP");
    fs::path base = env ? env : (fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
    fs::path d = base / ("rat-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch(), ec);
    });
    return d;
  }();
  return dir;
}

// Writes `bytes` to scratch()/name (creating its folders) and returns the path.
inline std::string put(const std::string& name, std::string_view bytes) {
  const std::filesystem::path p = scratch() / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), std::streamsize(bytes.size()));
  return p.string();
}

// The folder scratch()/name, created once. Not emptied between inputs: every target rewrites
// all the files it reads, and a remove_all per input would cost more than the parsing.
inline std::string dir(const std::string& name) {
  const std::filesystem::path p = scratch() / name;
  std::filesystem::create_directories(p);
  return p.string();
}

// The input's parts, separated by NUL bytes (text formats never need one; binary parts take
// the last slot, where the rest of the input, NULs included, goes). At most `n` parts; missing
// ones are empty.
inline std::vector<std::string_view> parts(const uint8_t* data, size_t size, size_t n) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const size_t nul = s.find('\0');
    if (nul == std::string_view::npos) break;
    out.push_back(s.substr(0, nul));
    s.remove_prefix(nul + 1);
  }
  out.push_back(s);
  out.resize(n);
  return out;
}

// Non-empty lines of a text part (overrides, one per line).
inline std::vector<std::string> lines(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string_view::npos) nl = s.size();
    if (nl > start) out.emplace_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// Runs f; rat::Error is the accepted outcome of bad input. Anything else escaping (a
// std::out_of_range, a JSON or YAML library exception) terminates: libFuzzer reports it.
template <class F>
void accept_rat_errors(F&& f) {
  try {
    f();
  } catch (const rat::Error&) {
  }
}

// The tiny sentencepiece model fuzz/corpus/tokenizer/tiny.model (BPE, byte fallback, 340
// pieces), for targets whose parser needs a tokenizer. Loaded once.
inline const std::string& tiny_tokenizer_path() {
  static const std::string p = std::string(RAT_FUZZ_DIR) + "/corpus/tokenizer/tiny.model";
  return p;
}
inline const Tokenizer& tiny_tokenizer() {
  static const Tokenizer* tok = new Tokenizer(Tokenizer::load(tiny_tokenizer_path()));
  return *tok;
}

}  // namespace rat::fuzz
