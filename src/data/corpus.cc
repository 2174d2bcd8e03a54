#include "data/corpus.h"

#include <fnmatch.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/timer.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

std::string read_document(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return ss.str();
}

// Ids as flat little-endian uint16 / uint32 (SPEC.md "Data"), whatever the
// host byte order.
class TokenWriter {
 public:
  TokenWriter(const std::string& path, int num_bytes) : file_(path), nb_(num_bytes) {}
  void append(const std::vector<int32_t>& ids) {
    buf_.resize(ids.size() * size_t(nb_));
    unsigned char* p = buf_.data();
    for (int32_t id : ids) {
      const uint32_t u = uint32_t(id);
      for (int b = 0; b < nb_; ++b) *p++ = (unsigned char)(u >> (8 * b));
    }
    file_.write(buf_.data(), buf_.size());
  }
  void commit() { file_.commit(); }

 private:
  AtomicFile file_;  // streamed: the whole corpus never sits in memory
  int nb_;
  std::vector<unsigned char> buf_;
};

}  // namespace

std::vector<std::string> list_documents(const std::vector<std::string>& inputs,
                                        const std::string& glob) {
  std::set<std::string> docs;  // sorted by path, no duplicates
  for (const auto& in : inputs) {
    std::error_code ec;
    auto st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw Error("--input " + in + ": no such file or directory");
    if (fs::is_directory(st)) {
      fs::recursive_directory_iterator it(in, ec), end;
      if (ec) throw Error("--input " + in + ": cannot list (" + ec.message() + ")");
      for (; it != end; it.increment(ec)) {
        if (ec) throw Error("--input " + in + ": cannot list (" + ec.message() + ")");
        if (!it->is_regular_file(ec)) continue;
        const std::string name = it->path().filename().string();
        if (fnmatch(glob.c_str(), name.c_str(), 0) == 0) docs.insert(it->path().string());
      }
      if (ec) throw Error("--input " + in + ": cannot list (" + ec.message() + ")");
    } else {
      docs.insert(in);  // a file named explicitly is always a document
    }
  }
  return {docs.begin(), docs.end()};
}

bool is_val_document(int64_t index, double val_fraction) {
  if (val_fraction <= 0) return false;
  return std::ceil(double(index + 1) * val_fraction) > std::ceil(double(index) * val_fraction);
}

void check_vocab_fits(int64_t vocab_size, int num_bytes, const std::string& tokenizer_name) {
  if (num_bytes != 2 && num_bytes != 4)
    throw Error("--num-bytes " + std::to_string(num_bytes) + ": expected 2 (uint16) or 4 (uint32)");
  const int64_t limit = num_bytes == 2 ? (int64_t(1) << 16) : (int64_t(1) << 32);
  if (vocab_size <= limit) return;
  const std::string what = tokenizer_name.empty() ? "--vocab-size " + std::to_string(vocab_size)
                                                  : "tokenizer " + tokenizer_name + " (" +
                                                        std::to_string(vocab_size) + " ids)";
  throw Error(what + " does not fit --num-bytes " + std::to_string(num_bytes) + " (ids below " +
              std::to_string(limit) + "); use --num-bytes 4");
}

double unigram_perplexity(const std::vector<int64_t>& train_counts,
                          const std::vector<int64_t>& val_counts) {
  const double V = double(train_counts.size());
  double n_train = 0, n_val = 0, nll = 0;
  for (int64_t c : train_counts) n_train += double(c);
  for (size_t t = 0; t < val_counts.size(); ++t) {
    if (!val_counts[t]) continue;
    const double c_train = t < train_counts.size() ? double(train_counts[t]) : 0.0;
    nll -= double(val_counts[t]) * std::log((c_train + 1.0) / (n_train + V));
    n_val += double(val_counts[t]);
  }
  return n_val > 0 ? std::exp(nll / n_val) : 0.0;
}

nlohmann::json TokenizeReport::to_json() const {
  return {
      {"out_dir", out_dir},
      {"tokenizer", tokenizer_path},
      {"trained_tokenizer", trained_tokenizer},
      {"vocab_size", vocab_size},
      {"eos_id", eos_id},
      {"bos_id", bos_id},
      {"ignore_input_index", eos_id},
      {"num_bytes", num_bytes},
      {"val_fraction", val_fraction},
      {"train_file", train_path},
      {"val_file", val_path},
      {"train_documents", train_documents},
      {"val_documents", val_documents},
      {"train_tokens", train_tokens},
      {"val_tokens", val_tokens},
      {"train_text_bytes", train_text_bytes},
      {"val_text_bytes", val_text_bytes},
      {"val_unigram_ppl", val_unigram_ppl},
      {"tokenizer_seconds", tokenizer_seconds},
      {"encode_seconds", encode_seconds},
  };
}

TokenizeReport tokenize_corpus(const TokenizeOptions& opt) {
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  if (opt.num_bytes != 2 && opt.num_bytes != 4)
    throw Error("--num-bytes " + std::to_string(opt.num_bytes) +
                ": expected 2 (uint16) or 4 (uint32)");
  if (!(opt.val_fraction >= 0 && opt.val_fraction < 1))
    throw Error("--val-fraction " + std::to_string(opt.val_fraction) + ": expected [0, 1)");
  if (opt.inputs.empty()) throw Error("--input: no input given");
  if (opt.out_dir.empty()) throw Error("--out-dir: no output directory given");

  const std::vector<std::string> docs = list_documents(opt.inputs, opt.glob);
  if (docs.empty())
    throw Error("empty corpus: no files matching '" + opt.glob + "' under the --input paths");
  int64_t total_bytes = 0;
  for (const auto& d : docs) {
    std::error_code ec;
    auto sz = fs::file_size(d, ec);
    if (ec) throw Error(d + ": cannot read (" + ec.message() + ")");
    total_bytes += int64_t(sz);
  }
  if (total_bytes == 0)
    throw Error("empty corpus: all " + std::to_string(docs.size()) + " documents are empty");

  std::vector<std::string> train_docs;
  for (size_t i = 0; i < docs.size(); ++i)
    if (!is_val_document(int64_t(i), opt.val_fraction)) train_docs.push_back(docs[i]);
  if (train_docs.empty())
    throw Error("--val-fraction " + std::to_string(opt.val_fraction) + " leaves none of the " +
                std::to_string(docs.size()) + " documents for training");

  // The tokenizer's fit, checked before anything is written.
  if (opt.tokenizer.empty()) {
    if (opt.vocab_size <= 0)
      throw Error("--vocab-size " + std::to_string(opt.vocab_size) + ": expected > 0");
    check_vocab_fits(opt.vocab_size, opt.num_bytes, "");
  } else {
    const Tokenizer given = Tokenizer::load(opt.tokenizer);
    if (given.eos_id() < 0)
      throw Error("tokenizer " + opt.tokenizer +
                  " defines no end-of-sequence piece, which separates documents");
    check_vocab_fits(given.vocab_size(), opt.num_bytes, opt.tokenizer);
  }

  // The output directory, checked before any long work.
  {
    std::error_code ec;
    fs::create_directories(opt.out_dir, ec);
    if (ec || !fs::is_directory(opt.out_dir))
      throw Error("--out-dir " + opt.out_dir + ": cannot create directory (" +
                  (ec ? ec.message() : std::string("a file is in the way")) + ")");
  }
  const fs::path out(opt.out_dir);
  TokenizeReport r;
  r.out_dir = opt.out_dir;
  r.num_bytes = opt.num_bytes;
  r.val_fraction = opt.val_fraction;
  r.train_path = (out / "train.bin").string();
  r.val_path = (out / "val.bin").string();
  r.report_path = (out / "tokenize.json").string();
  r.tokenizer_path = (out / "tokenizer.model").string();
  // tokenize.json marks a complete directory: a previous run's goes first, so
  // that a run killed half-way over an old output (new tokenizer, old
  // train.bin) is never taken for complete.
  {
    std::error_code ec;
    if (fs::remove(r.report_path, ec)) sync_directory(opt.out_dir);
  }
  TokenWriter train_w(r.train_path, opt.num_bytes), val_w(r.val_path, opt.num_bytes);

  // The tokenizer: trained on the training documents only, or copied in so
  // the data directory names the tokenizer its ids belong to.
  double t0 = now_seconds();
  if (opt.tokenizer.empty()) {
    log("training a " + std::to_string(opt.vocab_size) + "-piece BPE tokenizer on " +
        std::to_string(train_docs.size()) + " documents");
    train_tokenizer(train_docs, (out / "tokenizer").string(), opt.vocab_size, opt.train);
    r.trained_tokenizer = true;
  } else {
    std::error_code ec;
    if (!fs::equivalent(opt.tokenizer, r.tokenizer_path, ec))
      write_file_atomic(r.tokenizer_path, read_document(opt.tokenizer));
  }
  r.tokenizer_seconds = now_seconds() - t0;
  const Tokenizer tok = Tokenizer::load(r.tokenizer_path);
  r.vocab_size = tok.vocab_size();
  r.eos_id = tok.eos_id();
  r.bos_id = tok.bos_id();
  if (r.eos_id < 0) throw Error(r.tokenizer_path + ": the trained tokenizer has no eos piece");

  // Encode in batches of documents (in parallel within a batch), writing in
  // document order so the output does not depend on the thread count.
  std::vector<int64_t> train_counts(size_t(r.vocab_size), 0), val_counts(size_t(r.vocab_size), 0);
  t0 = now_seconds();
  const int64_t n_docs = int64_t(docs.size());
  const size_t batch_bytes = size_t(8) << 20;
  int64_t done = 0;
  if (opt.progress) opt.progress(0, n_docs);
  while (done < n_docs) {
    int64_t end = done;
    size_t bytes = 0;
    while (end < n_docs && (end == done || bytes < batch_bytes) && end - done < 256) {
      std::error_code ec;
      bytes += size_t(fs::file_size(docs[size_t(end)], ec));
      ++end;
    }
    const int64_t nb = end - done;
    const size_t nbs = size_t(nb);
    std::vector<std::vector<int32_t>> ids(nbs);
    std::vector<int64_t> text_bytes(nbs);
    std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t k = 0; k < nb; ++k) {
      try {
        const std::string text = read_document(docs[size_t(done + k)]);
        text_bytes[size_t(k)] = int64_t(text.size());
        ids[size_t(k)] = tok.encode(text);
        ids[size_t(k)].push_back(r.eos_id);
      } catch (...) {
#pragma omp critical(tokenize_error)
        if (!err) err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
    for (int64_t k = 0; k < nb; ++k) {
      const bool val = is_val_document(done + k, opt.val_fraction);
      const auto& v = ids[size_t(k)];
      (val ? val_w : train_w).append(v);
      auto& counts = val ? val_counts : train_counts;
      for (int32_t id : v) ++counts[size_t(id)];
      (val ? r.val_documents : r.train_documents) += 1;
      (val ? r.val_tokens : r.train_tokens) += int64_t(v.size());
      (val ? r.val_text_bytes : r.train_text_bytes) += text_bytes[size_t(k)];
    }
    done = end;
    if (opt.progress) opt.progress(done, n_docs);
  }
  r.encode_seconds = now_seconds() - t0;
  r.val_unigram_ppl = unigram_perplexity(train_counts, val_counts);

  // tokenize.json goes last: its presence means the directory is complete.
  val_w.commit();
  train_w.commit();
  write_file_atomic(r.report_path, r.to_json().dump(2) + "\n");
  return r;
}

}  // namespace rat
