#include "eval/niah.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include "data/tokenizer.h"
#include "eval/rng.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace {

constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
// RULER's niah template and answer prefix, plural form; singular_form() below
// applies RULER's own word replacements when one value is asked for.
constexpr const char* kRulerTemplate =
    "Some special magic {type} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type} afterwards.\n{context}\nWhat are all the special magic "
    "{type} for {query} mentioned in the provided text? The special magic {type} for {query} "
    "mentioned in the provided text are";
constexpr const char* kPasskeyTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
    "them. I will quiz you about the important information there.";
constexpr const char* kPasskeyQuestion = "What is the pass key? The pass key is";

// Keys are "adjective-noun" (RULER draws them from the wonderwords lists).
constexpr const char* kAdjectives[] = {
    "ancient", "bitter", "brave",  "bright", "calm",   "clever", "cold",   "crisp",  "curious",
    "damp",    "dark",   "eager",  "early",  "faint",  "fancy",  "fierce", "gentle", "glossy",
    "golden",  "grand",  "hollow", "humble", "icy",    "jolly",  "keen",   "lively", "lonely",
    "loud",    "lucky",  "mellow", "misty",  "narrow", "noble",  "odd",    "pale",   "plain",
    "proud",   "quick",  "quiet",  "rapid",  "rough",  "rusty",  "shiny",  "silent", "silver",
    "sleepy",  "smooth", "solid",  "sour",   "steady", "sticky", "sturdy", "swift",  "tidy",
    "tiny",    "vast",   "warm",   "wild",   "wise",   "young"};
constexpr const char* kNouns[] = {
    "anchor",  "apple",  "badge",   "basket",  "beacon",  "bridge", "candle",  "canyon", "castle",
    "cellar",  "comet",  "compass", "cradle",  "crystal", "desert", "dragon",  "engine", "falcon",
    "feather", "forest", "garden",  "glacier", "hammer",  "harbor", "helmet",  "island", "jacket",
    "kettle",  "ladder", "lantern", "meadow",  "mirror",  "needle", "orchard", "pebble", "pepper",
    "pillow",  "planet", "pocket",  "puzzle",  "quarry",  "rabbit", "ribbon",  "saddle", "shadow",
    "signal",  "spiral", "statue",  "teapot",  "thistle", "ticket", "tunnel",  "valley", "violin",
    "wagon",   "walnut", "window",  "wizard",  "yarn",    "zephyr"};

struct Spec {  // what a kind asks: keys, values per key, keys asked for
  int keys = 1, values = 1, queries = 1;
};

Spec spec_of(NiahKind k) {
  switch (k) {
    case NiahKind::kSingle: return {1, 1, 1};
    case NiahKind::kMultiKey: return {4, 1, 1};
    case NiahKind::kMultiValue: return {1, 4, 1};
    case NiahKind::kMultiQuery: return {4, 1, 4};
    case NiahKind::kPasskey: return {1, 1, 1};
  }
  return {};
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

int64_t count_of(const std::string& s, const std::string& what) {
  int64_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

std::vector<std::string> read_haystack(const std::string& spec) {
  if (spec == "noise") return {kNoise};
  std::ifstream in(spec, std::ios::binary);
  if (!in)
    throw Error("--haystack " + spec + ": cannot read the file (expected 'noise' or a text file)");
  const std::string raw((std::istreambuf_iterator<char>(in)), {});
  // RULER collapses every whitespace run of the essay into one space, then
  // cuts sentences; ours end at . ! or ? followed by a space.
  std::string text;
  for (char c : raw) {
    const bool ws = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
    if (!ws)
      text.push_back(c);
    else if (!text.empty() && text.back() != ' ')
      text.push_back(' ');
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool end = (text[i] == '.' || text[i] == '!' || text[i] == '?') &&
                     (i + 1 == text.size() || text[i + 1] == ' ');
    if (end || i + 1 == text.size()) {
      out.push_back(text.substr(begin, i + 1 - begin));
      begin = i + 2;
      ++i;
    }
  }
  if (out.empty())
    throw Error("--haystack " + spec + ": no text (expected sentences to hide needles in)");
  return out;
}

// One case before its haystack size is chosen: the needles (needles[0] is the
// first answer's) and where the others go, as fractions of the haystack.
struct Draft {
  std::string head, tail;  // text before and after the context
  std::vector<std::string> needles;
  std::vector<double> other_frac;  // needles[1..]
  std::vector<std::string> answers;
  std::vector<int64_t> expected_count;  // occurrences of each answer in the prompt
};

struct Built {
  std::string prompt;
  size_t needle_at = 0, context_begin = 0, context_end = 0;
};

class Builder {
 public:
  Builder(const NiahOptions& o, const Tokenizer& tok)
      : o_(o), tok_(tok), units_(read_haystack(o.haystack)) {
    // Token cost of each distinct sentence with its separator, to place the
    // needle at a depth measured in tokens.
    for (const auto& u : units_) unit_tokens_.push_back(int64_t(tok.encode(u + sep()).size()));
  }

  bool passkey() const { return o_.kind == NiahKind::kPasskey; }
  std::string sep() const { return o_.haystack == "noise" && !passkey() ? "\n" : " "; }
  int64_t max_unit_tokens() const {
    return *std::max_element(unit_tokens_.begin(), unit_tokens_.end());
  }

  Draft draft(TaskRng& rng) const {
    Draft d;
    if (passkey()) {
      const std::string key = std::to_string(10000 + rng.below(90000));
      d.head = std::string(kPasskeyTask) + "\n";
      d.tail = std::string("\n") + kPasskeyQuestion;
      d.needles = {"The pass key is " + key + ". Remember it. " + key + " is the pass key."};
      d.answers = {key};
      d.expected_count = {2};
      return d;
    }
    const Spec s = spec_of(o_.kind);
    const int64_t nwords = int64_t(std::size(kAdjectives) * std::size(kNouns));
    std::vector<std::string> keys;
    while (int(keys.size()) < s.keys) {
      const int64_t w = int64_t(rng.below(uint64_t(nwords)));
      std::string k = std::string(kAdjectives[w / int64_t(std::size(kNouns))]) + "-" +
                      kNouns[w % int64_t(std::size(kNouns))];
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
    std::vector<std::vector<std::string>> values(size_t(s.keys));
    std::vector<std::string> all;
    for (auto& v : values)
      while (int(v.size()) < s.values) {
        std::string x = std::to_string(1000000 + rng.below(9000000));
        if (std::find(all.begin(), all.end(), x) == all.end()) v.push_back(x), all.push_back(x);
      }
    // The queried keys: the first `queries` keys (keys are in random order).
    std::string query;
    for (int q = 0; q < s.queries; ++q) {
      if (q > 0) query += q + 1 == s.queries ? ", and " : ", ";  // RULER's join
      query += keys[size_t(q)];
      for (const auto& v : values[size_t(q)]) d.answers.push_back(v), d.expected_count.push_back(1);
    }
    for (int k = 0; k < s.keys; ++k)
      for (const auto& v : values[size_t(k)])
        d.needles.push_back("One of the special magic numbers for " + keys[size_t(k)] +
                            " is: " + v + ".");
    for (size_t i = 1; i < d.needles.size(); ++i) d.other_frac.push_back(rng.uniform());
    std::string t = kRulerTemplate, type = "numbers";
    if (s.queries * s.values == 1) {  // RULER's singular replacements, in its order
      replace_all(t, "Some", "A");
      replace_all(t, "are all", "is");
      replace_all(t, "are", "is");
      replace_all(t, "answers", "answer");
      type = "number";
    }
    replace_all(t, "{type}", type);
    replace_all(t, "{query}", query);
    const size_t at = t.find("{context}");
    d.head = t.substr(0, at);
    d.tail = t.substr(at + 9);
    return d;
  }

  // Sentences before the first needle so that their tokens are closest to
  // depth x the tokens of all n sentences.
  int64_t depth_index(int64_t n, double depth) const {
    std::vector<int64_t> cum(size_t(n) + 1, 0);
    for (int64_t i = 0; i < n; ++i)
      cum[size_t(i) + 1] = cum[size_t(i)] + unit_tokens_[size_t(i) % unit_tokens_.size()];
    const double want = depth * double(cum[size_t(n)]);
    int64_t best = 0;
    for (int64_t i = 1; i <= n; ++i)
      if (std::abs(double(cum[size_t(i)]) - want) < std::abs(double(cum[size_t(best)]) - want))
        best = i;
    return best;
  }

  Built build(const Draft& d, int64_t n, double depth) const {
    // (boundary index, needle) in context order; the first needle goes first
    // among needles at its boundary.
    std::vector<std::pair<int64_t, size_t>> at;
    at.push_back({depth_index(n, depth), 0});
    for (size_t i = 1; i < d.needles.size(); ++i)
      at.push_back({std::min<int64_t>(n, int64_t(d.other_frac[i - 1] * double(n + 1))), i});
    std::stable_sort(at.begin(), at.end(), [](auto& a, auto& b) { return a.first < b.first; });
    struct Item {
      bool needle;
      size_t index;
    };
    std::vector<Item> items;
    size_t next = 0;
    for (int64_t i = 0; i <= n; ++i) {
      for (; next < at.size() && at[next].first == i; ++next)
        items.push_back({true, at[next].second});
      if (i < n) items.push_back({false, size_t(i) % units_.size()});
    }
    Built b;
    b.prompt = d.head;
    b.context_begin = b.prompt.size();
    for (size_t k = 0; k < items.size(); ++k) {
      // The passkey line stands on its own line between the noise runs: the
      // landmark prompt is "\n".join([task, noise, needle, noise, question]),
      // so an empty noise run still leaves its line.
      const bool line = passkey() && (items[k].needle || (k > 0 && items[k - 1].needle));
      if (k > 0 || (passkey() && items[k].needle)) b.prompt += line ? "\n" : sep();
      if (items[k].needle && items[k].index == 0) b.needle_at = b.prompt.size();
      b.prompt += items[k].needle ? d.needles[items[k].index] : units_[items[k].index];
    }
    if (passkey() && items.back().needle) b.prompt += "\n";
    b.context_end = b.prompt.size();
    b.prompt += d.tail;
    return b;
  }

  int64_t tokens(const std::string& text) const { return int64_t(tok_.encode(text).size()); }

 private:
  const NiahOptions& o_;
  const Tokenizer& tok_;
  std::vector<std::string> units_;
  std::vector<int64_t> unit_tokens_;
};

}  // namespace

NiahKind parse_niah_kind(const std::string& name) {
  for (NiahKind k : {NiahKind::kSingle, NiahKind::kMultiKey, NiahKind::kMultiValue,
                     NiahKind::kMultiQuery, NiahKind::kPasskey})
    if (name == niah_kind_name(k)) return k;
  throw Error("--kind '" + name +
              "': expected single, multikey, multivalue, multiquery or passkey");
}

const char* niah_kind_name(NiahKind k) {
  switch (k) {
    case NiahKind::kSingle: return "single";
    case NiahKind::kMultiKey: return "multikey";
    case NiahKind::kMultiValue: return "multivalue";
    case NiahKind::kMultiQuery: return "multiquery";
    case NiahKind::kPasskey: return "passkey";
  }
  return "?";
}

nlohmann::json NiahCase::to_json() const {
  return {{"prompt", prompt},
          {"answers", answers},
          {"length", length},
          {"depth", depth},
          {"kind", niah_kind_name(kind)},
          {"tokens", tokens},
          {"needle_token", needle_token},
          {"haystack_tokens", {haystack_begin, haystack_end}},
          {"max_new_tokens", max_new_tokens}};
}

std::vector<NiahCase> make_niah(const NiahOptions& o, const Tokenizer& tok) {
  if (o.lengths.empty()) throw Error("--lengths: expected at least one length in tokens");
  for (int64_t l : o.lengths)
    if (l <= 0) throw Error("--lengths " + std::to_string(l) + ": expected positive token counts");
  if (o.depths.empty()) throw Error("--depths: expected at least one depth in [0, 1]");
  for (double d : o.depths)
    if (!(d >= 0 && d <= 1))
      throw Error("--depths " + std::to_string(d) + ": expected values in [0, 1]");
  if (o.samples < 1)
    throw Error("--samples " + std::to_string(o.samples) + ": expected at least 1");
  if (o.max_new_tokens < 0) throw Error("--max-new-tokens: expected a count >= 0");
  const Builder builder(o, tok);
  std::vector<NiahCase> out;
  for (int64_t L : o.lengths) {
    for (double depth : o.depths) {
      for (int64_t s = 0; s < o.samples; ++s) {
        TaskRng rng(o.seed, uint64_t(out.size()));
        Draft d;
        Built b;
        int64_t n = 0;
        bool unique = false;
        for (int attempt = 0; attempt < 100 && !unique; ++attempt) {
          d = builder.draft(rng);
          auto fits = [&](int64_t m) {
            return builder.tokens(builder.build(d, m, depth).prompt) + o.max_new_tokens <= L;
          };
          if (!fits(0))
            throw Error("--lengths " + std::to_string(L) + ": the " + niah_kind_name(o.kind) +
                        " prompt alone takes " +
                        std::to_string(builder.tokens(builder.build(d, 0, depth).prompt)) +
                        " tokens plus " + std::to_string(o.max_new_tokens) +
                        " to generate; expected a larger length");
          // The largest fitting haystack: grow an upper bound, then bisect.
          int64_t lo = 0, hi = 1;
          while (fits(hi)) lo = hi, hi *= 2;
          while (hi - lo > 1) {
            const int64_t mid = lo + (hi - lo) / 2;
            (fits(mid) ? lo : hi) = mid;
          }
          n = lo;
          b = builder.build(d, n, depth);
          unique = true;  // a value that also occurs in the haystack text is drawn again
          for (size_t i = 0; i < d.answers.size(); ++i)
            unique = unique && count_of(b.prompt, d.answers[i]) == d.expected_count[i];
        }
        if (!unique)
          throw Error("--haystack " + o.haystack +
                      ": no needle value unique in the text after 100 draws");
        NiahCase c;
        c.length = L;
        c.depth = depth;
        c.kind = o.kind;
        c.answers = d.answers;
        c.tokens = builder.tokens(b.prompt);
        c.needle_token = builder.tokens(b.prompt.substr(0, b.needle_at));
        c.haystack_begin = builder.tokens(b.prompt.substr(0, b.context_begin));
        c.haystack_end = builder.tokens(b.prompt.substr(0, b.context_end));
        c.max_new_tokens = o.max_new_tokens;
        c.units = n;
        c.prompt = std::move(b.prompt);
        out.push_back(std::move(c));
      }
    }
  }
  return out;
}

std::vector<NiahCase> write_niah(const NiahOptions& o, const Tokenizer& tok,
                                 const std::string& path) {
  std::vector<NiahCase> cases = make_niah(o, tok);
  std::string text;
  for (const auto& c : cases) text += c.to_json().dump() + "\n";
  make_parent_directories(path, "--out");
  write_file_atomic(path, text);
  return cases;
}

}  // namespace rat
