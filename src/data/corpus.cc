#include "data/corpus.h"

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

std::string number(double v) { return (std::ostringstream() << v).str(); }

}  // namespace

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
      {"model_type", model_type},
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

namespace {

// "1 document" / "2 documents".
std::string documents(int64_t n) {
  return std::to_string(n) + (n == 1 ? " document" : " documents");
}

}  // namespace

TokenizeReport tokenize_corpus(const TokenizeOptions& opt) {
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  if (opt.num_bytes != 2 && opt.num_bytes != 4)
    throw Error("--num-bytes " + std::to_string(opt.num_bytes) +
                ": expected 2 (uint16) or 4 (uint32)");
  if (!(opt.val_fraction >= 0 && opt.val_fraction < 1))
    throw Error("--val-fraction " + std::to_string(opt.val_fraction) + ": expected [0, 1)");
  if (opt.out_dir.empty()) throw Error("--out-dir: no output directory given");
  if (opt.text_key.empty()) throw Error("--text-key: expected the name of a JSON field");

  DocumentOptions dopt;
  dopt.inputs = opt.inputs;
  dopt.glob = opt.glob;
  dopt.format = opt.format;
  dopt.text_key = opt.text_key;
  dopt.split = opt.split;
  dopt.separator = opt.separator;
  const DocumentReader reader(dopt);

  // Pass 1: how many documents, bytes and training lines (the split and the
  // tokenizer's line sample need them before anything is written).
  int64_t n_docs = 0, total_bytes = 0, train_lines = 0;
  bool any_split = false;
  for (const auto& f : reader.files()) any_split |= f.split || f.jsonl;
  reader.for_each([&](std::string_view text, const std::string&) {
    total_bytes += int64_t(text.size());
    if (!is_val_document(n_docs, opt.val_fraction))
      for (size_t i = 0; i < text.size();) {
        size_t j = std::min(text.find('\n', i), text.size());
        train_lines += j > i;
        i = j + 1;
      }
    ++n_docs;
  });
  if (n_docs == 0)
    throw Error("empty corpus: no documents in the inputs" +
                (opt.glob.empty() ? std::string() : " (files matching '" + opt.glob + "')"));
  if (total_bytes == 0) throw Error("empty corpus: the " + documents(n_docs) + " hold no text");
  int64_t n_val = 0;
  for (int64_t i = 0; i < n_docs; ++i) n_val += is_val_document(i, opt.val_fraction);
  if (n_val == n_docs) {
    std::string how = any_split ? ""
                                : "; a file named as an input is split into documents at "
                                  "blank lines (--split blank) or at --doc-separator STR";
    throw Error("--val-fraction " + number(opt.val_fraction) + " holds out all " +
                documents(n_docs) +
                " for validation, leaving none for training: give more "
                "documents" +
                how + ", or lower --val-fraction (0: no validation split)");
  }

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
  // tokenize.json marks a complete directory and goes last: a previous run's
  // goes first (and durably), so that a run killed half-way over an old output
  // (new tokenizer, old train.bin) is never taken for complete.
  {
    std::error_code ec;
    if (fs::remove(r.report_path, ec)) sync_directory(opt.out_dir);
  }
  TokenWriter train_w(r.train_path, opt.num_bytes), val_w(r.val_path, opt.num_bytes);

  // The tokenizer: trained on the training documents only (every stride-th
  // non-empty line, at most max_sentences), or copied in so the data
  // directory names the tokenizer its ids belong to.
  double t0 = now_seconds();
  if (opt.tokenizer.empty()) {
    const int64_t cap = opt.train.max_sentences;
    const int64_t stride = cap > 0 ? std::max<int64_t>(1, (train_lines + cap - 1) / cap) : 1;
    std::vector<std::string> lines;
    int64_t doc = 0, line = 0;
    reader.for_each([&](std::string_view text, const std::string&) {
      if (!is_val_document(doc++, opt.val_fraction))
        for (size_t i = 0; i < text.size();) {
          size_t j = std::min(text.find('\n', i), text.size());
          if (j > i && line++ % stride == 0) lines.emplace_back(text.substr(i, j - i));
          i = j + 1;
        }
    });
    log("training a " + std::to_string(opt.vocab_size) + "-piece " + opt.train.model_type +
        " tokenizer on " + std::to_string(lines.size()) + " lines of " + documents(n_docs - n_val));
    train_tokenizer_on_lines(lines, (out / "tokenizer").string(), opt.vocab_size, opt.train);
    r.trained_tokenizer = true;
    r.model_type = opt.train.model_type;
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
  const size_t batch_bytes = size_t(8) << 20;
  int64_t done = 0;
  std::vector<std::string> batch;
  size_t bytes = 0;
  auto flush = [&] {
    const int64_t nb = int64_t(batch.size());
    std::vector<std::vector<int32_t>> ids(batch.size());
    std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t k = 0; k < nb; ++k) {
      try {
        ids[size_t(k)] = tok.encode(batch[size_t(k)]);
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
      (val ? r.val_text_bytes : r.train_text_bytes) += int64_t(batch[size_t(k)].size());
    }
    done += nb;
    batch.clear();
    bytes = 0;
    if (opt.progress) opt.progress(done, n_docs);
  };
  if (opt.progress) opt.progress(0, n_docs);
  reader.for_each([&](std::string_view text, const std::string&) {
    batch.emplace_back(text);
    bytes += text.size();
    if (bytes >= batch_bytes || batch.size() >= 256) flush();
  });
  if (!batch.empty()) flush();
  r.encode_seconds = now_seconds() - t0;
  r.val_unigram_ppl = unigram_perplexity(train_counts, val_counts);

  // tokenize.json goes last: its presence means the directory is complete.
  val_w.commit();
  train_w.commit();
  write_file_atomic(r.report_path, r.to_json().dump(2) + "\n");
  return r;
}

}  // namespace rat
