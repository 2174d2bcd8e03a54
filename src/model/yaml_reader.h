// The one reader of rat's YAML files: model config.yaml and experiment
// configs. Every error is one line naming the file, the line where yaml-cpp
// knows it, the dotted key, the problem and what was expected:
//   FILE:LINE: dotted.key: <problem>, expected <what>
// (`FILE: dotted.key: ...` for a missing key or a value set on the command
// line, which have no line in the file).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/enum_names.h"

namespace rat {

// Reads `path` and parses it as a YAML mapping. A file that cannot be read
// gives `FILE: cannot open (<errno text>), expected <expected>`; a YAML syntax
// error or a top level that is no mapping gives
// `FILE:LINE: not a YAML mapping (<what is wrong, in plain words>), expected <expected>`.
YAML::Node load_yaml_mapping(const std::string& path, const std::string& expected);
// The same for text already read; `path` only names it in messages.
YAML::Node parse_yaml_mapping(const std::string& text, const std::string& path,
                              const std::string& expected);

// A YAML syntax error in plain words: the problem (yaml-cpp's message
// translated where it is a usual one), line, column and the line's text.
std::string explain_yaml_error(const YAML::Exception& e, const std::string& text,
                               const std::string& path);

// "FILE:LINE" when `at` was parsed from the file, else "FILE".
std::string yaml_where(const std::string& file, const YAML::Node* at);
// Throws rat::Error `yaml_where(file, at): key: what`.
[[noreturn]] void yaml_fail(const std::string& file, const YAML::Node* at, const std::string& key,
                            const std::string& what);
// How a node looks in a message: the scalar quoted (control characters
// escaped, long text cut, so the message stays one line), or its kind.
std::string describe_yaml(const YAML::Node& n);

// A copy of a node without the marks (line, column) yaml-cpp gave it while
// parsing a command-line override's text, so that messages do not cite
// "line 1" of a file for a value that came from the command line.
YAML::Node yaml_without_marks(const YAML::Node& n);

// Levenshtein distance, for "did you mean".
size_t edit_distance(const std::string& a, const std::string& b);
// The entry of `valid` closest to `key` ("" if none): the initials of its last
// word in the same section (learning_rate -> lr), else by edit distance.
std::string closest_key(const std::string& key, const std::vector<std::string>& valid);

// The keys a file may hold, as dotted paths. `keys` are the leaves rat reads.
// `ignored` are the authors' keys that do not change the model or the run
// in rat (wandb, hydra, sizes rat derives): any value. `unsupported` are the
// authors' options rat does not implement, each with the value (YAML text)
// rat's fixed behaviour amounts to: accepted when null or equal to it.
struct KeySchema {
  std::vector<std::string> keys;
  std::vector<std::string> ignored;
  std::vector<std::pair<std::string, std::string>> unsupported;
};

// Strict files: every key of `root` is a schema key, a section that holds
// some (a mapping, or null), an ignored key, or an unsupported one at rat's
// value. Otherwise one line, at the key's line when it has one:
//   FILE:LINE: unknown key 'a.b.c', did you mean 'a.b.d'?
//   FILE:LINE: a.b.ln: 'layernorm' is not supported by rat, expected it absent, null or rmsnorm
// (the same words as for an unknown command-line override).
void check_known_keys(const YAML::Node& root, const std::string& file, const KeySchema& schema);

// A mapping in the file and its dotted path. A missing section is an empty
// section (node undefined or null), so its keys all read as absent. Null
// values (`key: null`, `key:`) count as absent, as the authors' resolved
// configs write null for unused options.
class YamlSection {
 public:
  YamlSection(std::string file, YAML::Node node, std::string path);

  std::string key(const char* name) const { return path_.empty() ? name : path_ + "." + name; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  bool present() const { return node_.IsDefined() && node_.IsMap(); }

  std::optional<YAML::Node> find(const char* name) const;
  bool has(const char* name) const { return find(name).has_value(); }
  // A nested mapping; `got 'x', expected a mapping` if the value is not one.
  YamlSection section(const char* name) const;

  std::optional<int64_t> opt_int(const char* name) const;
  int64_t req_int(const char* name, const char* why = nullptr) const;
  std::optional<double> opt_double(const char* name) const;
  std::optional<bool> opt_bool(const char* name) const;  // YAML 1.1 words, as PyYAML
  std::optional<std::string> opt_str(const char* name) const;
  std::optional<std::vector<double>> opt_double_list(const char* name) const;

  // A name from `names`; `unknown <what> 'x', expected one of ...` otherwise.
  template <class E>
  std::optional<E> opt_enum(const char* name, const EnumNames<E>& names) const {
    auto v = opt_str(name);
    if (!v) return std::nullopt;
    if (auto e = names.parse(*v)) return e;
    fail(name,
         std::string("unknown ") + names.what() + " '" + *v + "', expected " + names.choices());
  }

  // `key(name): missing[ (why)], expected <expected>`.
  [[noreturn]] void missing(const char* name, const std::string& expected,
                            const char* why = nullptr) const;
  // `key(name): <what>`, at the value's line when it has one.
  [[noreturn]] void fail(const char* name, const std::string& what) const;
  // `path(): <what>`, at this mapping's line.
  [[noreturn]] void fail_here(const std::string& what) const;

 private:
  std::string file_;
  YAML::Node node_;
  std::string path_;
};

}  // namespace rat
