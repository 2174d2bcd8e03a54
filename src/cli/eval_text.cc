// `rat eval --text FILE`: rolling-window perplexity and bits per byte of raw
// text (eval/rolling.h), tokenized with the model directory's tokenizer.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "cli/commands.h"
#include "cli/eval_tasks.h"
#include "data/tokenizer.h"
#include "eval/rolling.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/progress.h"
#include "util/timer.h"

namespace rat::cli {

namespace {

// Offset of the first byte that does not belong to a well-formed UTF-8
// sequence (no overlongs, surrogates or code points above U+10FFFF), or npos.
size_t first_invalid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c < 0x80)
      len = 1;
    else if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
      return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      const unsigned b = p[i + k];
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return i;
    }
    i += len;
  }
  return std::string::npos;
}

// Whitespace-separated words (lm-eval's word_perplexity divides by these).
int64_t count_words(const std::string& s) {
  int64_t words = 0;
  bool in_word = false;
  for (char ch : s) {
    const bool space =
        ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
    words += !space && !in_word;
    in_word = !space;
  }
  return words;
}

}  // namespace

int run_eval_text(const EvalOpts& o) {
  // Cheap checks first: the file, then the flags, then the model and its tokenizer.
  std::error_code ec;
  std::ostringstream buf;
  if (o.text == "-") {  // `-f -`: standard input, as llama.cpp
    buf << std::cin.rdbuf();
  } else {
    if (!std::filesystem::is_regular_file(o.text, ec))
      throw Error("--text " + o.text + ": not a readable file");
    std::ifstream in(o.text, std::ios::binary);
    buf << in.rdbuf();
    if (!in || in.bad()) throw Error("--text " + o.text + ": cannot read the file");
  }
  const std::string text = buf.str();
  if (text.empty())
    throw Error("--text " + o.text + ": the file is empty, there is nothing to score");
  if (const size_t bad = first_invalid_utf8(text); bad != std::string::npos) {
    const size_t line_start = text.rfind('\n', bad == 0 ? 0 : bad - 1);
    const size_t line = size_t(std::count(text.begin(), text.begin() + long(bad), '\n')) + 1;
    const size_t col = bad - (line_start == std::string::npos || bad == 0 ? 0 : line_start + 1) + 1;
    throw Error(o.text + ":" + std::to_string(line) + ": byte " + std::to_string(col) +
                " of the line is not UTF-8, expected UTF-8 text (bits per byte counts its bytes)");
  }
  if (o.seq_len < 0) throw Error("--seq-len " + std::to_string(o.seq_len) + ": expected >= 1");
  if (o.stride < 0) throw Error("--stride " + std::to_string(o.stride) + ": expected >= 1");
  if (o.batch_size <= 0)
    throw Error("--batch-size " + std::to_string(o.batch_size) + ": expected at least 1");

  auto model = load_model_dir(o.model);
  model->set_frozen_weight_cache(true);  // weights are fixed from here on
  model->set_precision(parse_flag(precision_names(), "--dtype", o.dtype));
  const ModelConfig& cfg = model->config();
  const int64_t T = o.seq_len > 0 ? o.seq_len : cfg.seq_len;
  const int64_t S = o.stride > 0 ? o.stride : std::max<int64_t>(1, T / 2);
  rolling_windows(1, T, S);  // the flags' checks, before the text is encoded

  const std::string tok_path = (std::filesystem::path(o.model) / "tokenizer.model").string();
  if (!std::filesystem::exists(tok_path))
    throw Error("rat eval --text needs the model's tokenizer, but " + tok_path +
                " does not exist: copy the tokenizer.model the model was trained with into " +
                o.model);
  const Tokenizer tok = Tokenizer::load(tok_path);
  if (tok.vocab_size() > cfg.vocab_size)
    throw Error(tok_path + ": " + std::to_string(tok.vocab_size()) +
                " pieces, but the model's vocab_size is " + std::to_string(cfg.vocab_size) +
                ": not the tokenizer this model was trained with");
  // The end-of-document id goes first (lm-eval's EOT prefix), so the first
  // token is scored as the start of a document.
  int32_t eod = int32_t(cfg.ignore_input_index);
  if (eod < 0) eod = tok.eos_id();
  if (eod < 0) eod = tok.bos_id();
  if (eod < 0)
    throw Error(tok_path + ": defines no eos or bos and the model no data.ignore_input_index, " +
                "expected an end-of-document id to put before the first token");

  double t0 = now_seconds();
  const std::vector<int32_t> ids = tok.encode(text);
  if (ids.empty()) throw Error("--text " + o.text + ": the text encodes to no tokens");
  const double encode_secs = now_seconds() - t0;
  const int64_t n_windows = int64_t(rolling_windows(int64_t(ids.size()), T, S).size());
  Progress bar("eval", n_windows, "windows");
  t0 = now_seconds();
  const RollingResult r =
      rolling_perplexity(*model, ids, eod, int64_t(text.size()), T, S, o.forward_batch(),
                         [&](int64_t done) { bar.update(done); });
  bar.finish();
  const double secs = now_seconds() - t0;
  const int64_t words = count_words(text);
  const double word_ppl = words > 0 ? std::exp(r.nll / double(words)) : NAN;

  if (o.json) {
    // NaN (stderr of one token, word_ppl of no word) is written as null.
    nlohmann::json j = {{"ppl", r.ppl()},
                        {"ppl_stderr", r.ppl_stderr()},
                        {"bpb", r.bpb()},
                        {"bpb_stderr", r.bpb_stderr()},
                        {"nll", r.nll},
                        {"mean_nll", r.mean_nll()},
                        {"mean_nll_stderr", r.mean_nll_stderr()},
                        {"word_ppl", word_ppl},
                        {"words", words},
                        {"tokens", r.tokens},
                        {"bytes", r.bytes},
                        {"windows", r.windows},
                        {"seq_len", T},
                        {"window_len", r.window_len},  // min(T, tokens)
                        {"stride", S},
                        {"eod_id", eod},
                        {"stderr_method",
                         "mean_nll_stderr: sample stddev of the token NLLs / sqrt(tokens); "
                         "ppl and bpb by the delta method"},
                        {"encode_seconds", encode_secs},
                        {"seconds", secs},
                        {"model", o.model},
                        {"text", o.text}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "model %s, text %s: %lld bytes, %lld tokens (%.2f bytes/token), %lld windows of %lld "
        "tokens every %lld, %.1f s (%.0f tokens/s)\n",
        o.model.c_str(), o.text.c_str(), (long long)r.bytes, (long long)r.tokens,
        double(r.bytes) / double(r.tokens), (long long)r.windows, (long long)r.window_len,
        (long long)S, secs, double(r.windows * r.window_len) / std::max(secs, 1e-9));
    std::printf(
        "nll/token %.6f +- %.6f (stderr of the mean token NLL), ppl %.4f +- %.4f, bpb %.6f +- "
        "%.6f (delta method), word ppl %.4f (%lld words)\n",
        r.mean_nll(), r.mean_nll_stderr(), r.ppl(), r.ppl_stderr(), r.bpb(), r.bpb_stderr(),
        word_ppl, (long long)words);
    std::printf("ppl=%.6f bpb=%.6f tokens=%lld\n", r.ppl(), r.bpb(), (long long)r.tokens);
  }
  return 0;
}

}  // namespace rat::cli
