#include "model/yaml_reader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace rat {

namespace {

// yaml-cpp gives nodes built in code (command-line overrides, keys they
// create) the default mark 0:0, which only the very first node of a file can
// also have; the top level is never reported by line, so 0:0 means "no line".
bool has_line(const YAML::Node& n) {
  if (!n.IsDefined()) return false;
  const YAML::Mark m = n.Mark();
  return !m.is_null() && (m.pos > 0 || m.line > 0 || m.column > 0);
}

}  // namespace

std::string yaml_where(const std::string& file, const YAML::Node* at) {
  if (at && has_line(*at)) return file + ":" + std::to_string(at->Mark().line + 1);
  return file;
}

void yaml_fail(const std::string& file, const YAML::Node* at, const std::string& key,
               const std::string& what) {
  throw Error(yaml_where(file, at) + ": " + key + ": " + what);
}

std::string describe_yaml(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      std::string out = "'";
      for (unsigned char c : n.Scalar()) {
        if (out.size() > 60) return out + "...'";
        if (c == '\n')
          out += "\\n";
        else if (c < 0x20 || c == 0x7f)
          out += '?';
        else
          out += char(c);
      }
      return out + "'";
    }
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

YAML::Node yaml_without_marks(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: return YAML::Node(n.Scalar());
    case YAML::NodeType::Sequence: {
      YAML::Node out(YAML::NodeType::Sequence);
      for (const YAML::Node& x : n) out.push_back(yaml_without_marks(x));
      return out;
    }
    case YAML::NodeType::Map: {
      YAML::Node out(YAML::NodeType::Map);
      for (const auto& kv : n) out[kv.first.Scalar()] = yaml_without_marks(kv.second);
      return out;
    }
    default: return YAML::Node(YAML::NodeType::Null);
  }
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_key(const std::string& key, const std::vector<std::string>& valid) {
  // Ties go to the longer common prefix: `chunk` is closer to `chunk_size`
  // than to `d_head`, though both are five edits away.
  auto common = [&](const std::string& k) {
    size_t n = 0;
    while (n < k.size() && n < key.size() && k[n] == key[n]) ++n;
    return n;
  };
  // Far from every key, the abbreviation of the key's last word is meant
  // (optim.optimizer.learning_rate is optim.optimizer.lr, not _name_).
  const size_t dot = key.rfind('.');
  const std::string parent = dot == std::string::npos ? "" : key.substr(0, dot + 1);
  const std::string leaf = key.substr(parent.size());
  std::string initials;
  for (size_t i = 0; i < leaf.size(); ++i)
    if (std::isalpha(static_cast<unsigned char>(leaf[i])) && (i == 0 || leaf[i - 1] == '_'))
      initials += leaf[i];
  std::string best;
  // A key cut short (`chunk` for `chunk_size`) is closest to what it begins,
  // whatever short keys (`ln`) are fewer edits away.
  for (const std::string& k : valid)
    if (k.size() > key.size() && k.compare(0, key.size(), key) == 0 &&
        (best.empty() || k.size() < best.size()))
      best = k;
  if (!best.empty()) return best;
  size_t bd = SIZE_MAX, bc = 0;
  for (const std::string& k : valid) {
    const size_t d = edit_distance(key, k), c = common(k);
    if (d < bd || (d == bd && c > bc)) bd = d, bc = c, best = k;
  }
  // A typo (two edits or fewer: max_step) is still a typo.
  if (bd > 2 && initials.size() >= 2 && initials.size() < leaf.size())
    for (const std::string& k : valid)
      if (k == parent + initials) return k;
  return best;
}

namespace {

bool is_prefix_of_any(const std::string& section, const std::vector<std::string>& keys) {
  const std::string head = section + ".";
  for (const std::string& k : keys)
    if (k.compare(0, head.size(), head) == 0) return true;
  return false;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::optional<double> scalar_double(const YAML::Node& v);
std::optional<bool> scalar_bool(const YAML::Node& v);

// `got` says what `rat` says: equal scalars (numbers as numbers, YAML 1.1
// booleans as booleans), or a mapping whose every key says what rat's does.
bool same_value(const YAML::Node& got, const YAML::Node& rat) {
  if (got.IsScalar() && rat.IsScalar()) {
    if (got.Scalar() == rat.Scalar()) return true;
    auto a = scalar_double(got), b = scalar_double(rat);
    if (a && b) return *a == *b;
    auto x = scalar_bool(got), y = scalar_bool(rat);
    return x && y && *x == *y;
  }
  if (got.IsMap() && rat.IsMap()) {
    for (const auto& kv : got) {
      const YAML::Node& r = rat;  // const: never inserts
      YAML::Node want = r[kv.first.Scalar()];
      if (!want.IsDefined() || !same_value(kv.second, want)) return false;
    }
    return true;
  }
  return false;
}

void check_mapping(const YAML::Node& map, const std::string& prefix, const std::string& file,
                   const KeySchema& schema) {
  for (const auto& kv : map) {
    const YAML::Node& at = kv.first;
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : describe_yaml(kv.first);
    const std::string dotted = prefix.empty() ? name : prefix + "." + name;
    if (contains(schema.keys, dotted) || contains(schema.ignored, dotted)) continue;
    if (is_prefix_of_any(dotted, schema.keys) || is_prefix_of_any(dotted, schema.ignored) ||
        std::any_of(schema.unsupported.begin(), schema.unsupported.end(),
                    [&](const auto& u) { return u.first.rfind(dotted + ".", 0) == 0; })) {
      // A section: its keys are checked; any other value is the reader's
      // "expected a mapping" error, which names it better.
      if (kv.second.IsMap()) check_mapping(kv.second, dotted, file, schema);
      continue;
    }
    const std::pair<std::string, std::string>* option = nullptr;
    for (const auto& u : schema.unsupported)
      if (u.first == dotted) option = &u;
    if (!option)
      throw Error(yaml_where(file, &at) + ": unknown key '" + dotted + "', did you mean '" +
                  closest_key(dotted, schema.keys) + "'?");
    if (kv.second.IsNull() || same_value(kv.second, YAML::Load(option->second))) continue;
    yaml_fail(file, &at, dotted,
              describe_yaml(kv.second) + " is not supported by rat, expected it absent, null or " +
                  option->second);
  }
}

}  // namespace

void check_known_keys(const YAML::Node& root, const std::string& file, const KeySchema& schema) {
  if (root.IsMap()) check_mapping(root, "", file, schema);
}

namespace {

// Line `line` (0-based) of text, trimmed and cut to stay one short line.
std::string line_text(const std::string& text, int line) {
  size_t b = 0;
  for (int i = 0; i < line && b != std::string::npos; ++i) {
    b = text.find('\n', b);
    if (b != std::string::npos) ++b;
  }
  if (b == std::string::npos || b >= text.size()) return "";
  std::string s = text.substr(b, text.find('\n', b) - b);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return describe_yaml(YAML::Node(s));
}

// "; is README.md a YAML file?" for a file not named .yaml or .yml.
std::string not_yaml_hint(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".yaml" || ext == ".yml") return "";
  return "; is " + std::filesystem::path(path).filename().string() + " a YAML file?";
}

}  // namespace

// yaml-cpp's words ("the referenced anchor is not defined" for a README's
// `* item`) describe YAML's grammar, not the user's mistake: the usual ones
// are said in plain words, with the line's text, and a file not named .yaml
// or .yml gets asked whether it is YAML at all.
std::string explain_yaml_error(const YAML::Exception& e, const std::string& text,
                               const std::string& path) {
  static const std::pair<const char*, const char*> kPlain[] = {
      {"the referenced anchor is not defined",
       "a '*' starts a YAML alias, and no '&' anchor defines it"},
      {"alias not found after *", "a '*' starts a YAML alias, and no alias name follows it"},
      {"illegal map value", "a ':' where no 'key: value' can be (quote the value?)"},
      {"end of map flow not found", "a '{' is never closed by '}'"},
      {"end of sequence flow not found", "a '[' is never closed by ']'"},
      {"end of map not found", "a mapping is never closed (indentation or a missing '}')"},
      {"end of sequence not found", "a list is never closed (indentation or a missing ']')"},
      {"block sequence entries are not allowed in this context",
       "a '- item' where a 'key: value' was expected (indentation?)"},
      {"unknown escape character", "an unknown '\\' escape in a double-quoted string"},
      {"end of string not found", "a quoted string is never closed"},
  };
  std::string what = "YAML syntax: " + e.msg;
  for (const auto& [yaml, plain] : kPlain)
    if (e.msg == yaml) what = plain;
  what += " at line " + std::to_string(e.mark.line + 1) + ", column " +
          std::to_string(e.mark.column + 1);
  if (const std::string l = line_text(text, e.mark.line); l.size() > 2) what += ": " + l;
  return what + not_yaml_hint(path);
}

YAML::Node parse_yaml_mapping(const std::string& text, const std::string& path,
                              const std::string& expected) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(path + ":" + std::to_string(e.mark.line + 1) + ": not a YAML mapping (" +
                explain_yaml_error(e, text, path) + "), expected " + expected);
  }
  if (!root.IsDefined() || root.IsNull())
    throw Error(path + ": not a YAML mapping (empty file), expected " + expected);
  if (!root.IsMap())
    throw Error(path + ":" + std::to_string(root.Mark().line + 1) + ": not a YAML mapping (got " +
                describe_yaml(root) + not_yaml_hint(path) + "), expected " + expected);
  return root;
}

YAML::Node load_yaml_mapping(const std::string& path, const std::string& expected) {
  // Read here, so a missing file gets errno's words, not yaml-cpp's.
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    throw Error(path + ": cannot open (" + std::strerror(err) + "), expected " + expected);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed, expected " + expected);
  return parse_yaml_mapping(ss.str(), path, expected);
}

YamlSection::YamlSection(std::string file, YAML::Node node, std::string path)
    : file_(std::move(file)), node_(std::move(node)), path_(std::move(path)) {}

std::optional<YAML::Node> YamlSection::find(const char* name) const {
  if (!present()) return std::nullopt;
  const YAML::Node& self = node_;  // const operator[] never inserts
  YAML::Node v = self[name];
  if (!v.IsDefined() || v.IsNull()) return std::nullopt;
  return v;
}

void YamlSection::fail(const char* name, const std::string& what) const {
  auto v = find(name);
  yaml_fail(file_, v ? &*v : nullptr, key(name), what);
}

void YamlSection::fail_here(const std::string& what) const {
  yaml_fail(file_, node_.IsDefined() ? &node_ : nullptr, path_.empty() ? "(top level)" : path_,
            what);
}

void YamlSection::missing(const char* name, const std::string& expected, const char* why) const {
  std::string what = "missing";
  if (why) what += std::string(" (") + why + ")";
  yaml_fail(file_, nullptr, key(name), what + ", expected " + expected);
}

YamlSection YamlSection::section(const char* name) const {
  auto v = find(name);
  if (v && !v->IsMap()) fail(name, "got " + describe_yaml(*v) + ", expected a mapping");
  return YamlSection(file_, v ? *v : YAML::Node(YAML::NodeType::Undefined), key(name));
}

std::optional<int64_t> YamlSection::opt_int(const char* name) const {
  auto v = find(name);
  if (!v) return std::nullopt;
  if (v->IsScalar()) {
    const std::string& s = v->Scalar();
    const char* b = s.data();
    const char* e = b + s.size();
    if (b != e && *b == '+') ++b;
    int64_t out = 0;
    auto r = std::from_chars(b, e, out);
    if (r.ec == std::errc() && r.ptr == e && b != e) return out;
    if (r.ec == std::errc::result_out_of_range)
      fail(name, "got " + describe_yaml(*v) + " (out of range), expected a 64-bit integer");
  }
  fail(name, "got " + describe_yaml(*v) + ", expected an integer");
}

int64_t YamlSection::req_int(const char* name, const char* why) const {
  auto v = opt_int(name);
  if (!v) missing(name, "an integer", why);
  return *v;
}

namespace {

std::optional<bool> scalar_bool(const YAML::Node& v) {
  if (!v.IsScalar()) return std::nullopt;
  std::string s = v.Scalar();
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  // YAML 1.1 booleans, as PyYAML reads them.
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return std::nullopt;
}

std::optional<double> scalar_double(const YAML::Node& v) {
  if (!v.IsScalar() || v.Scalar().empty()) return std::nullopt;
  const std::string& s = v.Scalar();
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end == s.c_str() + s.size() && errno == 0) return d;
  return std::nullopt;
}

}  // namespace

std::optional<double> YamlSection::opt_double(const char* name) const {
  auto v = find(name);
  if (!v) return std::nullopt;
  if (auto d = scalar_double(*v)) return d;
  fail(name, "got " + describe_yaml(*v) + ", expected a number");
}

std::optional<std::vector<double>> YamlSection::opt_double_list(const char* name) const {
  auto v = find(name);
  if (!v) return std::nullopt;
  std::vector<double> out;
  if (v->IsSequence()) {
    for (const YAML::Node& x : *v) {
      auto d = scalar_double(x);
      if (!d)
        fail(name, "item " + describe_yaml(x) + " is not a number, expected a list of numbers");
      out.push_back(*d);
    }
    return out;
  }
  fail(name, "got " + describe_yaml(*v) + ", expected a list of numbers");
}

std::optional<bool> YamlSection::opt_bool(const char* name) const {
  auto v = find(name);
  if (!v) return std::nullopt;
  if (v->IsScalar()) {
    std::string s = v->Scalar();
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    // YAML 1.1 booleans, as PyYAML reads them.
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
  }
  fail(name, "got " + describe_yaml(*v) + ", expected true or false");
}

std::optional<std::string> YamlSection::opt_str(const char* name) const {
  auto v = find(name);
  if (!v) return std::nullopt;
  if (!v->IsScalar()) fail(name, "got " + describe_yaml(*v) + ", expected a string");
  return v->Scalar();
}

}  // namespace rat
