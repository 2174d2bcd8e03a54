#include "train/interpolate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <vector>

#include "util/error.h"

namespace rat {

namespace {

using Path = std::vector<std::string>;

std::string join(const Path& p, size_t n = std::string::npos) {
  std::string s;
  for (size_t i = 0; i < p.size() && i < n; ++i) s += (i ? "." : "") + p[i];
  return s;
}

Path split_dots(const std::string& s) {
  Path p;
  size_t start = 0;
  for (size_t dot; (dot = s.find('.', start)) != std::string::npos; start = dot + 1)
    p.push_back(s.substr(start, dot - start));
  p.push_back(s.substr(start));
  return p;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

bool has_interp(const YAML::Node& n) {
  return n.IsScalar() && n.Scalar().find("${") != std::string::npos;
}

// Python's repr of a number, as OmegaConf passes eval's result on: integers
// as digits, floats in the shortest form that reads back (with ".0").
std::string format_double(double v) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // n: nan, inf
  return s;
}

// The authors' `eval` resolver is Python's eval; their configs use it for
// integer arithmetic on sizes ("4 * 2048", "4096 // 16", "110*10**9"). This
// evaluates exactly that subset with Python's meaning of each operator.
class Arithmetic {
 public:
  struct Num {
    bool integer;
    int64_t i;
    double d;
    double real() const { return integer ? double(i) : d; }
  };
  explicit Arithmetic(const std::string& s) : s_(s) {}

  Num run() {
    Num v = sum();
    skip();
    if (i_ != s_.size()) bad("unexpected '" + s_.substr(i_) + "'");
    return v;
  }

 private:
  [[noreturn]] void bad(const std::string& what) {
    throw Error("'" + s_ + "' is not arithmetic on numbers (" + what + ")");
  }
  void skip() {
    while (i_ < s_.size() && std::isspace((unsigned char)s_[i_])) ++i_;
  }
  bool eat(const char* op) {
    skip();
    size_t n = std::char_traits<char>::length(op);
    if (s_.compare(i_, n, op) != 0) return false;
    // `*` must not take the first half of `**`, nor `/` of `//`.
    if (n == 1 && (op[0] == '*' || op[0] == '/') && i_ + 1 < s_.size() && s_[i_ + 1] == op[0])
      return false;
    i_ += n;
    return true;
  }
  static Num make_int(int64_t v) { return {true, v, 0}; }
  static Num make_real(double v) { return {false, 0, v}; }

  Num sum() {
    Num a = product();
    for (;;) {
      if (eat("+"))
        a = add(a, product(), +1);
      else if (eat("-"))
        a = add(a, product(), -1);
      else
        return a;
    }
  }
  Num add(Num a, Num b, int sign) {
    if (a.integer && b.integer) {
      int64_t r;
      if (sign > 0 ? __builtin_add_overflow(a.i, b.i, &r) : __builtin_sub_overflow(a.i, b.i, &r))
        bad("integer overflow");
      return make_int(r);
    }
    return make_real(a.real() + sign * b.real());
  }
  Num product() {
    Num a = unary();
    for (;;) {
      if (eat("*")) {
        Num b = unary();
        int64_t r;
        if (a.integer && b.integer) {
          if (__builtin_mul_overflow(a.i, b.i, &r)) bad("integer overflow");
          a = make_int(r);
        } else {
          a = make_real(a.real() * b.real());
        }
      } else if (eat("//") || eat("%")) {
        const bool floor_div = s_[i_ - 1] == '/';
        Num b = unary();
        if (b.real() == 0) bad("division by zero");
        if (a.integer && b.integer) {
          int64_t q = a.i / b.i, m = a.i % b.i;
          if (m != 0 && ((m < 0) != (b.i < 0))) --q, m += b.i;  // Python floors
          a = make_int(floor_div ? q : m);
        } else {
          double q = std::floor(a.real() / b.real());
          a = make_real(floor_div ? q : a.real() - q * b.real());
        }
      } else if (eat("/")) {
        Num b = unary();
        if (b.real() == 0) bad("division by zero");
        a = make_real(a.real() / b.real());
      } else {
        return a;
      }
    }
  }
  Num unary() {
    if (eat("-")) {
      Num v = unary();
      return v.integer ? make_int(-v.i) : make_real(-v.d);
    }
    if (eat("+")) return unary();
    return power();
  }
  Num power() {
    Num base = atom();
    if (!eat("**")) return base;
    Num e = unary();  // right-associative, binds tighter than a unary minus on its left
    if (base.integer && e.integer && e.i >= 0) {
      int64_t r = 1;
      for (int64_t k = 0; k < e.i; ++k)
        if (__builtin_mul_overflow(r, base.i, &r)) bad("integer overflow");
      return make_int(r);
    }
    return make_real(std::pow(base.real(), e.real()));
  }
  Num atom() {
    skip();
    if (eat("(")) {
      Num v = sum();
      if (!eat(")")) bad("missing ')'");
      return v;
    }
    size_t start = i_;
    bool real = false;
    while (i_ < s_.size() && (std::isdigit((unsigned char)s_[i_]) || s_[i_] == '.' ||
                              s_[i_] == '_' || ((s_[i_] == 'e' || s_[i_] == 'E') && i_ > start) ||
                              ((s_[i_] == '-' || s_[i_] == '+') && i_ > start &&
                               (s_[i_ - 1] == 'e' || s_[i_ - 1] == 'E')))) {
      real |= !std::isdigit((unsigned char)s_[i_]) && s_[i_] != '_';
      ++i_;
    }
    std::string tok = s_.substr(start, i_ - start);
    tok.erase(std::remove(tok.begin(), tok.end(), '_'), tok.end());
    if (tok.empty()) bad(i_ < s_.size() ? "unexpected '" + s_.substr(i_) + "'" : "ends early");
    char* end = nullptr;
    if (!real) {
      errno = 0;
      long long v = std::strtoll(tok.c_str(), &end, 10);
      if (errno == ERANGE) bad("integer overflow");
      return make_int(v);
    }
    double v = std::strtod(tok.c_str(), &end);
    if (*end) bad("bad number '" + tok + "'");
    return make_real(v);
  }

  const std::string& s_;
  size_t i_ = 0;
};

// One `${...}` or a run of plain text in a scalar.
struct Piece {
  bool interp;
  std::string text;  // the body between `${` and `}`, or the text
};

class Resolver {
 public:
  Resolver(YAML::Node root, const OriginOf& origin) : root_(root), origin_(origin) {}

  void resolve_subtree(const Path& at) {
    std::optional<YAML::Node> n = get(at);
    if (!n) return;
    if (n->IsMap()) {
      std::vector<std::string> keys;
      for (const auto& kv : *n) keys.push_back(kv.first.Scalar());
      for (const std::string& k : keys) {
        Path child = at;
        child.push_back(k);
        resolve_subtree(child);
      }
    } else if (n->IsSequence()) {
      for (size_t i = 0; i < n->size(); ++i) {
        Path child = at;
        child.push_back(std::to_string(i));
        resolve_subtree(child);
      }
    }
  }

 private:
  [[noreturn]] void fail(const Path& at, const std::string& what) const {
    throw Error(origin_(join(at)) + ": " + join(at) + ": " + what);
  }

  static std::optional<YAML::Node> child(const YAML::Node& n, const std::string& k) {
    if (n.IsMap()) {
      YAML::Node c = n[k];  // const: never inserts
      if (c.IsDefined()) return c;
    } else if (n.IsSequence() && !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
                 return std::isdigit((unsigned char)c);
               })) {
      size_t i = std::stoul(k);
      if (i < n.size()) return n[i];
    }
    return std::nullopt;
  }

  // The node at `p`, with the interpolations met on the way (and at `p`)
  // resolved; nullopt when the tree has no such key.
  std::optional<YAML::Node> get(const Path& p) {
    YAML::Node n = root_;
    Path cur;
    for (const std::string& k : p) {
      if (has_interp(n)) n.reset(resolve_value(cur));
      std::optional<YAML::Node> c = child(n, k);
      if (!c) return std::nullopt;
      n.reset(*c);
      cur.push_back(k);
    }
    if (has_interp(n)) n.reset(resolve_value(cur));
    return n;
  }

  // Replaces the interpolated scalar at `at` by its value; returns it.
  YAML::Node resolve_value(const Path& at) {
    const std::string dotted = join(at);
    auto seen = std::find(stack_.begin(), stack_.end(), dotted);
    if (seen != stack_.end()) {
      std::string cycle;
      for (auto it = seen; it != stack_.end(); ++it) cycle += *it + " -> ";
      fail(at, "interpolation cycle " + cycle + dotted + ", expected values that end somewhere");
    }
    // The raw scalar (the walk to it is already resolved by the caller).
    YAML::Node parent = root_;
    for (size_t i = 0; i + 1 < at.size(); ++i) parent.reset(*child(parent, at[i]));
    YAML::Node raw = *child(parent, at.back());
    const std::string text = raw.Scalar();
    stack_.push_back(dotted);
    YAML::Node value = evaluate(text, at);
    stack_.pop_back();
    if (parent.IsMap())
      parent[at.back()] = value;
    else
      parent[std::stoul(at.back())] = value;
    return *child(parent, at.back());
  }

  std::vector<Piece> split(const std::string& s, const Path& at) const {
    std::vector<Piece> out;
    std::string text;
    for (size_t i = 0; i < s.size();) {
      if (s.compare(i, 3, "\\${") == 0) {  // escaped: a literal "${"
        text += "${";
        i += 3;
      } else if (s.compare(i, 2, "${") == 0) {
        int depth = 1;
        size_t j = i + 2;
        for (; j < s.size() && depth > 0; ++j) {
          if (s[j] == '{') ++depth;
          if (s[j] == '}') --depth;
        }
        if (depth > 0)
          fail(at, "unterminated interpolation in '" + s + "', expected a closing '}'");
        if (!text.empty()) out.push_back({false, text});
        text.clear();
        out.push_back({true, s.substr(i + 2, j - 1 - (i + 2))});
        i = j;
      } else {
        text += s[i++];
      }
    }
    if (!text.empty()) out.push_back({false, text});
    return out;
  }

  // A scalar's value: a lone `${...}` keeps its target's type; anything
  // else is the concatenated text.
  YAML::Node evaluate(const std::string& s, const Path& at) {
    std::vector<Piece> pieces = split(s, at);
    if (pieces.size() == 1 && pieces[0].interp) return body(pieces[0].text, at);
    return YAML::Node(text_of(pieces, at));
  }

  std::string text_of(const std::vector<Piece>& pieces, const Path& at) {
    std::string out;
    for (const Piece& p : pieces) {
      if (!p.interp) {
        out += p.text;
        continue;
      }
      YAML::Node v = body(p.text, at);
      if (v.IsNull())
        out += "None";  // Python's str(None), as OmegaConf writes it
      else if (v.IsScalar())
        out += v.Scalar();
      else
        fail(at, "interpolation '${" + p.text + "}' inside text is a " +
                     (v.IsMap() ? "mapping" : "list") + ", expected a scalar");
    }
    return out;
  }

  std::string text_of(const std::string& s, const Path& at) { return text_of(split(s, at), at); }

  // What `${body}` stands for at `at`.
  YAML::Node body(const std::string& raw, const Path& at) {
    const std::string b = trim(raw);
    size_t colon = b.find(':');
    bool resolver = colon != std::string::npos && colon > 0 &&
                    (std::isalpha((unsigned char)b[0]) || b[0] == '_');
    for (size_t i = 0; resolver && i < colon; ++i)
      resolver = std::isalnum((unsigned char)b[i]) || b[i] == '_' || b[i] == '.';
    if (resolver) return call(b.substr(0, colon), b.substr(colon + 1), at);
    const std::string key = text_of(b, at);  // `${a.${b}}`: the inner one first
    std::optional<YAML::Node> v = select(key, at);
    if (!v)
      fail(at, "interpolation '${" + raw + "}' names '" + absolute(key, at) +
                   "', which the config does not have, expected an existing key");
    return *v;
  }

  // The dotted path `key` names from `at` (relative keys start with '.').
  std::string absolute(const std::string& key, const Path& at) const {
    size_t dots = 0;
    while (dots < key.size() && key[dots] == '.') ++dots;
    if (dots == 0) return key;
    if (dots > at.size()) fail(at, "interpolation '" + key + "' climbs above the top level");
    Path p(at.begin(), at.end() - dots);
    std::string rest = key.substr(dots);
    if (!rest.empty())
      for (const std::string& k : split_dots(rest)) p.push_back(k);
    return join(p);
  }

  // The resolved value `key` names from `at` (a copy), or nullopt.
  std::optional<YAML::Node> select(const std::string& key, const Path& at) {
    const std::string dotted = absolute(key, at);
    Path p = dotted.empty() ? Path{} : split_dots(dotted);
    std::optional<YAML::Node> n = get(p);
    if (!n) return std::nullopt;
    if (n->IsScalar() && n->Scalar() == "???")
      fail(at, "'" + dotted + "' is '\?\?\?' (a mandatory value nobody set), expected " + dotted +
                   "=VALUE on the command line");
    if (n->IsMap() || n->IsSequence()) {
      resolve_subtree(p);
      return YAML::Clone(*get(p));
    }
    return YAML::Clone(*n);
  }

  std::vector<std::string> split_args(const std::string& s) const {
    std::vector<std::string> args;
    std::string cur;
    int depth = 0;
    char quote = 0;
    for (char c : s) {
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}') {
        --depth;
      } else if (c == ',' && depth == 0) {
        args.push_back(trim(cur));
        cur.clear();
        continue;
      }
      cur += c;
    }
    args.push_back(trim(cur));
    return args;
  }

  // A resolver argument: quoted text (interpolations inside resolve), a lone
  // interpolation (its value), or plain text (null when it says so).
  YAML::Node arg(const std::string& a, const Path& at) {
    if (a.size() >= 2 && (a[0] == '"' || a[0] == '\'') && a.back() == a[0])
      return YAML::Node(text_of(a.substr(1, a.size() - 2), at));
    std::vector<Piece> pieces = split(a, at);
    if (pieces.size() == 1 && pieces[0].interp) return body(pieces[0].text, at);
    const std::string t = text_of(pieces, at);
    if (t == "null" || t == "None") return YAML::Node(YAML::NodeType::Null);
    return YAML::Node(t);
  }

  YAML::Node call(const std::string& name, const std::string& args_text, const Path& at) {
    const std::vector<std::string> raw = split_args(args_text);
    auto need = [&](size_t lo, size_t hi) {
      if (raw.size() < lo || raw.size() > hi)
        fail(
            at,
            "${" + name + ":...} got " + std::to_string(raw.size()) + " argument(s), expected " +
                (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)));
    };
    if (name == "eval") {
      need(1, 1);
      YAML::Node v = arg(raw[0], at);
      const std::string expr = v.IsScalar() ? v.Scalar() : "";
      try {
        Arithmetic::Num n = Arithmetic(expr).run();
        return YAML::Node(n.integer ? std::to_string(n.i) : format_double(n.d));
      } catch (const Error& e) {
        fail(at, "${eval:" + args_text + "}: " + e.what() + ", expected arithmetic on numbers");
      }
    }
    if (name == "oc.select") {
      need(1, 2);
      YAML::Node key = arg(raw[0], at);
      YAML::Node fallback = raw.size() > 1 ? arg(raw[1], at) : YAML::Node(YAML::NodeType::Null);
      std::optional<YAML::Node> v = select(key.IsScalar() ? key.Scalar() : "", at);
      return v && !v->IsNull() ? *v : fallback;
    }
    if (name == "oc.env") {
      need(1, 2);
      YAML::Node var = arg(raw[0], at);
      if (const char* v = std::getenv(var.IsScalar() ? var.Scalar().c_str() : ""))
        return YAML::Node(std::string(v));
      if (raw.size() > 1) return arg(raw[1], at);
      fail(at, "${oc.env:" + args_text +
                   "}: the environment has no such variable, expected it set or a default");
    }
    if (name == "now") {
      need(1, 1);
      YAML::Node fmt = arg(raw[0], at);
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, fmt.IsScalar() ? fmt.Scalar().c_str() : "", &tm);
      return YAML::Node(std::string(buf, n));
    }
    fail(at, "unknown resolver '" + name + "', expected one of eval, oc.select, oc.env, now");
  }

  YAML::Node root_;
  const OriginOf& origin_;
  std::vector<std::string> stack_;  // dotted paths being resolved, outermost first
};

}  // namespace

void resolve_interpolations(YAML::Node root, const OriginOf& origin) {
  Resolver(root, origin).resolve_subtree({});
}

}  // namespace rat
