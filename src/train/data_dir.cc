#include "train/data_dir.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "nlohmann/json.hpp"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

const char* const kRule =
    "relative data paths are looked up in the current directory, then the config file's "
    "folder, then the project root holding its configs/ folder";

// The node at data.<a>.<b> ... as a handle (Undefined when a level is missing).
YAML::Node at(YAML::Node root, const std::vector<std::string>& parts) {
  YAML::Node n = root;
  for (const auto& p : parts) {
    if (!n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& cn = n;
    YAML::Node next = cn[p];
    if (!next.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
    n.reset(next);
  }
  return n;
}

std::vector<std::string> parts_of(const std::string& dotted) {
  std::vector<std::string> parts;
  std::stringstream ss(dotted);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  return parts;
}

std::string get_str(YAML::Node root, const std::string& dotted) {
  YAML::Node n = at(root, parts_of(dotted));
  return n.IsDefined() && n.IsScalar() ? n.Scalar() : std::string();
}

void set(YAML::Node root, const std::string& dotted, const YAML::Node& value) {
  const auto parts = parts_of(dotted);
  YAML::Node n = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!n[parts[i]].IsMap()) n[parts[i]] = YAML::Node(YAML::NodeType::Map);
    n.reset(n[parts[i]]);
  }
  n[parts.back()] = value;
}

void erase(YAML::Node root, const std::string& dotted) {
  auto parts = parts_of(dotted);
  const std::string last = parts.back();
  parts.pop_back();
  YAML::Node parent = at(root, parts);
  if (parent.IsDefined() && parent.IsMap()) parent.remove(last);
}

// A relative path: the first base holding it ("" when none does).
std::string find(const std::string& path, const std::vector<std::string>& bases) {
  std::error_code ec;
  if (fs::path(path).is_absolute()) return fs::exists(path, ec) ? path : "";
  for (size_t i = 0; i < bases.size(); ++i) {
    const fs::path p = fs::path(bases[i]) / path;
    if (fs::exists(p, ec)) return i == 0 ? path : fs::weakly_canonical(p, ec).string();
  }
  return "";
}

std::string not_found(const std::string& key, const std::string& path,
                      const std::vector<std::string>& bases, const std::string& what) {
  if (fs::path(path).is_absolute()) return key + ": " + path + " does not exist, expected " + what;
  std::string tried;
  for (const auto& b : bases) tried += (tried.empty() ? "" : ", ") + (fs::path(b) / path).string();
  return key + ": " + path + " not found, expected " + what + " (tried " + tried + "; " + kRule +
         ")";
}

int64_t json_int(const nlohmann::json& j, const char* key, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer())
    throw Error(file + ": \"" + key + "\" " + (it == j.end() ? "missing" : "not an integer") +
                ", expected the tokenize.json that `rat tokenize` writes");
  return it->get<int64_t>();
}

// data.dir: the keys it decides, unless the command line gave them.
void apply_data_dir(YAML::Node root, const std::string& dir, const ConfigOrigin& origin) {
  const std::string report = (fs::path(dir) / "tokenize.json").string();
  std::ifstream in(report, std::ios::binary);
  if (!in)
    throw Error("data.dir: " + dir +
                " has no tokenize.json, expected the --out-dir of a finished `rat tokenize` "
                "(it writes tokenize.json last)");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(report + ": not JSON (at byte " + std::to_string(e.byte) +
                "), expected what `rat tokenize` writes");
  }
  if (!j.is_object()) throw Error(report + ": expected a JSON object (what `rat tokenize` writes)");
  const int64_t vocab = json_int(j, "vocab_size", report);
  const int64_t num_bytes = json_int(j, "num_bytes", report);
  const int64_t eos = json_int(j, "eos_id", report);
  const int64_t n_val = json_int(j, "val_documents", report);
  if (vocab <= 0 || (num_bytes != 2 && num_bytes != 4))
    throw Error(report + ": vocab_size " + std::to_string(vocab) + ", num_bytes " +
                std::to_string(num_bytes) + ", expected a positive vocab and 2 or 4 bytes");

  for (const char* split : {"train", "val"}) {
    const std::string name = get_str(root, std::string("data.") + split + "._name_");
    if (name.rfind("sft", 0) == 0)
      throw Error(std::string("data.dir: ") + dir + " holds language-model token files, but data." +
                  split + "._name_ is " + name + "; expected lm_ordered or lm_random");
  }
  const auto& given = origin.command_line_keys;
  auto fill = [&](const std::string& key, const YAML::Node& v) {
    if (!given.count(key)) set(root, key, v);
  };
  fill("data.train.tokenized_file_path", YAML::Node((fs::path(dir) / "train.bin").string()));
  if (n_val > 0)
    fill("data.val.tokenized_file_path", YAML::Node((fs::path(dir) / "val.bin").string()));
  else if (!given.count("data.val.tokenized_file_path"))
    erase(root, "data.val.tokenized_file_path");  // no validation data, not another corpus's
  fill("data.num_bytes", YAML::Node(num_bytes));
  fill("data.ignore_input_index", YAML::Node(eos));
  // The two vocab sizes are one value: one given on the command line sets both.
  const bool d = given.count("data.vocab_size"), m = given.count("model.embedding.vocab_size");
  if (d && !m)
    set(root, "model.embedding.vocab_size", YAML::Node(get_str(root, "data.vocab_size")));
  else if (m && !d)
    set(root, "data.vocab_size", YAML::Node(get_str(root, "model.embedding.vocab_size")));
  else if (!d && !m) {
    set(root, "data.vocab_size", YAML::Node(vocab));
    set(root, "model.embedding.vocab_size", YAML::Node(vocab));
  }
}

}  // namespace

std::set<std::string> override_keys(const std::vector<std::string>& overrides) {
  std::set<std::string> keys;
  for (const auto& ov : overrides) {
    const size_t eq = ov.find('=');
    if (eq == std::string::npos) continue;
    std::string k = ov.substr(0, eq);
    while (!k.empty() && k[0] == '+') k.erase(0, 1);
    keys.insert(k);
  }
  return keys;
}

std::vector<std::string> path_bases(const std::string& config_file) {
  std::vector<std::string> bases = {fs::current_path().string()};
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    const std::string s = fs::weakly_canonical(p, ec).string();
    for (const auto& b : bases) {
      std::error_code ec2;
      if (fs::equivalent(b, s, ec2)) return;
    }
    bases.push_back(s);
  };
  if (config_file.empty()) return bases;
  const fs::path dir = fs::absolute(config_file).parent_path();
  add(dir);
  for (fs::path p = dir; p.has_relative_path(); p = p.parent_path())
    if (p.filename() == "configs") {
      add(p.parent_path());
      break;
    }
  return bases;
}

std::string resolve_data_paths(YAML::Node root, const ConfigOrigin& origin) {
  const std::vector<std::string> bases = path_bases(origin.config_file);
  const std::string dir = get_str(root, "data.dir");
  if (!dir.empty()) {
    const std::string found = find(dir, bases);
    std::error_code ec;
    if (found.empty() || !fs::is_directory(found, ec))
      throw Error(not_found("data.dir", dir, bases, "the --out-dir of `rat tokenize`"));
    set(root, "data.dir", YAML::Node(found));
    apply_data_dir(root, found, origin);
  }
  std::string problem;
  for (const char* split : {"train", "val"})
    for (const char* key :
         {"tokenized_file_path", "tokenized_input_path", "tokenized_label_path"}) {
      const std::string dotted = std::string("data.") + split + "." + key;
      const std::string path = get_str(root, dotted);
      if (path.empty() || path == "null" || path == "~") continue;
      const std::string found = find(path, bases);
      if (found.empty()) {
        if (problem.empty()) problem = not_found(dotted, path, bases, "a token file");
      } else if (found != path) {
        set(root, dotted, YAML::Node(found));
      }
    }
  return problem;
}

}  // namespace rat
