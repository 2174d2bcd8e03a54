#include "eval/metrics.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "nlohmann/json.hpp"
#include "util/error.h"

namespace rat {

namespace {

// ---- UTF-8 <-> code points ------------------------------------------------
// Lenient: a malformed byte becomes U+FFFD (JSON input is validated by the
// parser already; the library functions may see any bytes).
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = uint8_t(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    char32_t c = len == 1 ? b : len == 2 ? b & 0x1F : len == 3 ? b & 0x0F : b & 0x07;
    bool ok = len > 0 && i + size_t(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto t = uint8_t(s[i + size_t(k)]);
      ok = (t >> 6) == 2;
      c = (c << 6) | (t & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(c);
    i += size_t(len);
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

// ---- Python's character classes ---------------------------------------------
// Unicode case and letter classes come from glibc's C.UTF-8 tables (simple
// case mapping); without that locale only ASCII is classified.
locale_t utf8_locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
  return loc;
}

bool is_word(char32_t c) {  // Python re's \w on str: alphanumeric or '_'
  if (c < 0x80)
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  const locale_t loc = utf8_locale();
  return loc && iswalnum_l(wint_t(c), loc);
}

bool is_cased(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  const locale_t loc = utf8_locale();
  return loc && (iswupper_l(wint_t(c), loc) || iswlower_l(wint_t(c), loc));
}

bool is_space(char32_t c) {  // Python's str.isspace(), which str.split() uses
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool is_ascii_punct(char32_t c) {  // Python's string.punctuation
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}

// Python's str.lower(): simple mappings plus its two special cases, U+0130
// (I with dot) -> "i" + U+0307 and capital sigma -> final sigma at the end of
// a word (preceded by a cased letter, not followed by one).
std::u32string lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  const locale_t loc = utf8_locale();
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (c == 0x3A3) {
      const bool final = i > 0 && is_cased(s[i - 1]) && !(i + 1 < s.size() && is_cased(s[i + 1]));
      out.push_back(final ? 0x3C2 : 0x3C3);
    } else {
      out.push_back(loc ? char32_t(towlower_l(wint_t(c), loc)) : c);
    }
  }
  return out;
}

std::vector<std::u32string> split_ws(const std::u32string& s) {
  std::vector<std::u32string> out;
  std::u32string cur;
  for (char32_t c : s) {
    if (is_space(c)) {
      if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// normalize_answer as code points, before the final whitespace collapse.
std::u32string strip_punct_and_articles(const std::u32string& text) {
  std::u32string s;
  for (char32_t c : lower(text))
    if (!is_ascii_punct(c)) s.push_back(c);
  // re.sub(r"\b(a|an|the)\b", " ", s): alternatives tried in order at each
  // position; \b compares the word class of the neighbours in s itself.
  std::u32string out;
  static const std::u32string kArticles[] = {U"a", U"an", U"the"};
  for (size_t i = 0; i < s.size();) {
    bool matched = false;
    if (i == 0 || !is_word(s[i - 1])) {
      for (const auto& w : kArticles) {
        if (s.compare(i, w.size(), w) == 0 &&
            (i + w.size() == s.size() || !is_word(s[i + w.size()]))) {
          out.push_back(U' ');
          i += w.size();
          matched = true;
          break;
        }
      }
    }
    if (!matched) out.push_back(s[i++]);
  }
  return out;
}

std::vector<std::u32string> qa_tokens(std::string_view text) {
  return split_ws(strip_punct_and_articles(decode_utf8(text)));
}

// F1 of two token multisets (LongBench's f1_score over Counters).
template <typename Tok>
double multiset_f1(const std::vector<Tok>& pred, const std::vector<Tok>& ref) {
  std::map<Tok, int64_t> count;
  for (const auto& t : ref) ++count[t];
  int64_t same = 0;
  for (const auto& t : pred) {
    auto it = count.find(t);
    if (it != count.end() && it->second > 0) --it->second, ++same;
  }
  if (same == 0) return 0.0;
  const double p = double(same) / double(pred.size()), r = double(same) / double(ref.size());
  return 2 * p * r / (p + r);
}

int64_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<int64_t> row(b.size() + 1, 0);  // row[j]: LCS of a[0..i) and b[0..j)
  for (size_t i = 0; i < a.size(); ++i) {
    int64_t diag = 0;  // previous row's row[j - 1]
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t up = row[j];
      row[j] = a[i] == b[j - 1] ? diag + 1 : std::max(row[j], row[j - 1]);
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

Metric parse_metric(const std::string& name, const std::string& what) {
  for (Metric m : {Metric::kQaF1, Metric::kRougeL, Metric::kExactMatch, Metric::kEditSim})
    if (name == metric_name(m)) return m;
  throw Error(what + " '" + name + "': expected qa_f1, rouge_l, exact_match or edit_sim");
}

const char* metric_name(Metric m) {
  switch (m) {
    case Metric::kQaF1: return "qa_f1";
    case Metric::kRougeL: return "rouge_l";
    case Metric::kExactMatch: return "exact_match";
    case Metric::kEditSim: return "edit_sim";
  }
  return "?";
}

std::string normalize_qa(std::string_view text) {
  std::string out;
  for (const auto& tok : qa_tokens(text)) {
    if (!out.empty()) out.push_back(' ');
    for (char32_t c : tok) append_utf8(out, c);
  }
  return out;
}

std::vector<std::string> rouge_tokens(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (char32_t c : lower(decode_utf8(text))) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur.push_back(char(c));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

double qa_f1(std::string_view prediction, std::string_view answer) {
  return multiset_f1(qa_tokens(prediction), qa_tokens(answer));
}

double rouge_l(std::string_view prediction, std::string_view answer) {
  const auto p = rouge_tokens(prediction), r = rouge_tokens(answer);
  if (p.empty() || r.empty()) return 0.0;
  const int64_t l = lcs_length(r, p);
  if (l == 0) return 0.0;
  const double prec = double(l) / double(p.size()), rec = double(l) / double(r.size());
  return 2 * prec * rec / (prec + rec);
}

double exact_match(std::string_view prediction, std::string_view answer) {
  return normalize_qa(prediction) == normalize_qa(answer) ? 1.0 : 0.0;
}

double edit_sim(std::string_view prediction, std::string_view answer) {
  const std::u32string a = decode_utf8(prediction), b = decode_utf8(answer);
  if (a.empty() && b.empty()) return 1.0;
  std::vector<size_t> row(b.size() + 1);  // row[j]: distance of a[0..i) to b[0..j)
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return 1.0 - double(row[b.size()]) / double(std::max(a.size(), b.size()));
}

double score(Metric m, std::string_view prediction, std::string_view answer) {
  switch (m) {
    case Metric::kQaF1: return qa_f1(prediction, answer);
    case Metric::kRougeL: return rouge_l(prediction, answer);
    case Metric::kExactMatch: return exact_match(prediction, answer);
    case Metric::kEditSim: return edit_sim(prediction, answer);
  }
  return 0.0;
}

double best_score(Metric m, std::string_view prediction, const std::vector<std::string>& answers) {
  double best = 0.0;
  for (const auto& a : answers) best = std::max(best, score(m, prediction, a));
  return best;
}

MetricReport score_predictions(const std::string& path, Metric m) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the predictions file");
  MetricReport r;
  r.metric = m;
  std::string line;
  int64_t lineno = 0;
  const std::string expected = "expected {\"prediction\": TEXT, \"answers\": [TEXT, ...]}";
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + "not valid JSON (" + std::string(e.what()) + "); " + expected);
    }
    if (!j.is_object()) throw Error(where + expected);
    if (!j.contains("prediction") || !j["prediction"].is_string())
      throw Error(where + "\"prediction\" " +
                  (j.contains("prediction") ? "is not a string" : "is missing") + "; " + expected);
    const auto a = j.find("answers");
    if (a == j.end() || !a->is_array() || a->empty())
      throw Error(where + "\"answers\" " +
                  (a == j.end()    ? "is missing"
                   : a->is_array() ? "is empty"
                                   : "is not a list") +
                  "; " + expected);
    std::vector<std::string> answers;
    for (const auto& x : *a) {
      if (!x.is_string())
        throw Error(where + "\"answers\" holds a non-string " + x.dump() + "; " + expected);
      answers.push_back(x.get<std::string>());
    }
    r.scores.push_back(best_score(m, j["prediction"].get<std::string>(), answers));
  }
  if (r.scores.empty()) throw Error(path + ": no predictions (" + expected + " per line)");
  double sum = 0;
  for (double s : r.scores) sum += s;
  r.mean = sum / double(r.scores.size());
  return r;
}

}  // namespace rat
