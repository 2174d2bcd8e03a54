#include "train/compose.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "train/interpolate.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> p;
  if (s.empty()) return p;
  size_t start = 0;
  for (size_t dot; (dot = s.find('.', start)) != std::string::npos; start = dot + 1)
    p.push_back(s.substr(start, dot - start));
  p.push_back(s.substr(start));
  return p;
}

std::string dotted_join(const std::string& a, const std::string& b) {
  return a.empty() ? b : b.empty() ? a : a + "." + b;
}

std::string line_of(const std::string& file, const YAML::Node& at) {
  const YAML::Mark m = at.Mark();
  return m.is_null() ? file : file + ":" + std::to_string(m.line + 1);
}

std::string join_list(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "(none)" : s;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open, expected a YAML config");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Override {
  std::string text;        // as typed
  std::string key, value;  // around '='; key without +, ++ or ~
  enum Kind { kSet, kAdd, kForce, kDelete } kind = kSet;
  bool group = false, used = false;
};

// A `group=option` override's option as YAML: one that does not parse (`model=[`) is the
// override's error, not yaml-cpp's (found by fuzz/compose.cc).
YAML::Node option_of(const Override& o) {
  try {
    return YAML::Load(o.value);
  } catch (const YAML::Exception&) {
    throw Error("override '" + o.text + "': '" + o.value +
                "' is not valid YAML, expected an option name");
  }
}

// One entry of a defaults list, as written.
struct Entry {
  bool self = false, optional = false;
  bool plain = false;   // `- name`: a config of the including file's folder and package
  std::string group;    // absolute, '/'-separated ("model/backbone/layer")
  std::string package;  // explicit `@pkg` as written ("" when none)
  YAML::Node option;    // scalar, or null
  std::string where;    // FILE:LINE of the entry
};

class Composer {
 public:
  Composer(fs::path root, const std::vector<std::string>& overrides,
           const std::vector<std::string>& addable)
      : root_(std::move(root)), addable_(addable) {
    for (const std::string& ov : overrides) parse_override(ov);
  }

  ComposedConfig run() {
    ComposedConfig c;
    tree_ = YAML::Node(YAML::NodeType::Map);
    load("config", "", "");
    for (const Override& o : ovs_)
      if (o.group && !o.used)
        throw Error("override '" + o.text + "': no entry of the defaults tree has group '" + o.key +
                    "', expected one of: " + join_list(groups_seen_));
    for (const Override& o : ovs_)
      if (!o.group) apply_key_override(o);
    resolve_interpolations(tree_, [this](const std::string& d) { return origin_of(d); });
    if (static_cast<const YAML::Node&>(tree_)["hydra"].IsDefined()) tree_.remove("hydra");
    c.tree = tree_;
    c.origin = origin_;
    c.source = (root_ / "config.yaml").string();
    for (const Override& o : ovs_)
      if (o.group) c.source += " " + o.text;
    return c;
  }

  std::string origin_of(const std::string& dotted) const {
    std::string d = dotted;
    for (;;) {
      auto it = origin_.find(d);
      if (it != origin_.end()) return it->second;
      size_t dot = d.rfind('.');
      if (dot == std::string::npos) return (root_ / "config.yaml").string();
      d.resize(dot);
    }
  }

 private:
  bool is_group_dir(const std::string& key) const {
    if (key.empty() || key.find('.') != std::string::npos) return false;
    std::error_code ec;
    return fs::is_directory(root_ / key, ec);
  }

  void parse_override(const std::string& ov) {
    Override o;
    o.text = ov;
    std::string s = ov;
    if (s.rfind("++", 0) == 0)
      o.kind = Override::kForce, s = s.substr(2);
    else if (s.rfind("+", 0) == 0)
      o.kind = Override::kAdd, s = s.substr(1);
    else if (s.rfind("~", 0) == 0)
      o.kind = Override::kDelete, s = s.substr(1);
    size_t eq = s.find('=');
    if (eq == 0 || (eq == std::string::npos && o.kind != Override::kDelete))
      throw Error("override '" + ov + "': expected key=value, group=option, +key=value or ~key");
    o.key = s.substr(0, eq);
    if (eq != std::string::npos) o.value = s.substr(eq + 1);
    if (!o.key.empty() && o.key[0] == '/') o.key = o.key.substr(1);
    const std::string group_part = o.key.substr(0, o.key.find('@'));
    o.group = o.key.find('@') != std::string::npos || o.key.find('/') != std::string::npos ||
              is_group_dir(group_part);
    if (o.group && o.kind != Override::kSet && o.kind != Override::kAdd)
      throw Error("override '" + ov + "': a group takes group=option or +group=option");
    for (const Override& x : ovs_)
      if (x.key == o.key)
        throw Error("override '" + ov + "': '" + o.key + "' is already overridden by '" + x.text +
                    "', expected each key once");
    ovs_.push_back(o);
  }

  // The command-line choice for an entry, if any.
  Override* choice_for(const Entry& e) {
    const std::string key = e.package.empty() ? e.group : e.group + "@" + e.package;
    for (Override& o : ovs_)
      if (o.group && o.kind == Override::kSet && o.key == key) return &o;
    return nullptr;
  }

  Entry parse_entry(const YAML::Node& item, const std::string& file, const std::string& folder) {
    Entry e;
    e.where = line_of(file, item);
    auto bad = [&](const std::string& what) {
      throw Error(e.where + ": defaults: " + what +
                  ", expected _self_, `group: option`, `/group@pkg: option` or a config name");
    };
    if (item.IsScalar()) {
      if (item.Scalar() == "_self_") {
        e.self = true;
        return e;
      }
      e.plain = true;
      e.option = YAML::Node(item.Scalar());
      e.group = folder;
      return e;
    }
    if (!item.IsMap() || item.size() != 1) bad("got " + describe_yaml(item));
    std::string key = item.begin()->first.Scalar();
    e.option = item.begin()->second;
    if (!e.option.IsNull() && !e.option.IsScalar())
      bad("option of '" + key + "' is " + describe_yaml(e.option) +
          " (lists of options are not supported)");
    if (key.rfind("optional ", 0) == 0) e.optional = true, key = key.substr(9);
    if (key.rfind("override ", 0) == 0)
      bad("'" + key +
          "': `override` entries are not supported by rat; use group=option on the command line");
    size_t at = key.find('@');
    if (at != std::string::npos) e.package = key.substr(at + 1), key = key.substr(0, at);
    if (key.empty()) bad("empty group");
    e.group = key[0] == '/' ? key.substr(1) : folder.empty() ? key : folder + "/" + key;
    return e;
  }

  // The package an entry's config lands at, below `parent` (the including file's).
  static std::string package_of(const Entry& e, const std::string& parent) {
    if (e.plain) return parent;
    if (e.package.empty()) {
      std::string p = e.group;
      std::replace(p.begin(), p.end(), '/', '.');
      return p;
    }
    if (e.package == "_global_") return "";
    if (e.package.rfind("_global_.", 0) == 0) return e.package.substr(9);
    return dotted_join(parent, e.package);
  }

  // Loads root/rel.yaml into the tree at `package` (its own header wins).
  void load(const std::string& rel, std::string package, const std::string& via) {
    const fs::path path = root_ / (rel + ".yaml");
    const std::string file = path.string();
    if (std::find(loading_.begin(), loading_.end(), rel) != loading_.end())
      throw Error(via + ": defaults cycle: " + join_list(loading_) + ", " + rel +
                  ", expected configs that do not include themselves");
    const std::string text = read_text(path);
    // `# @package X` in the header (Hydra reads it before the first key).
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("# @package", 0) == 0) {
        std::string p = line.substr(10);
        p.erase(0, p.find_first_not_of(" \t"));
        p.erase(p.find_last_not_of(" \t\r") + 1);
        package = p == "_global_" ? "" : p.rfind("_global_.", 0) == 0 ? p.substr(9) : p;
      } else if (!line.empty() && line[0] != '#') {
        break;
      }
    }
    // Only comments (or `null`): an empty option. Anything else, a syntax error included, goes
    // to parse_yaml_mapping, which names FILE:LINE (found by fuzz/compose.cc).
    bool empty = text.find_first_not_of(" \t\r\n") == std::string::npos;
    if (!empty) {
      try {
        empty = YAML::Load(text).IsNull();
      } catch (const YAML::Exception&) {
      }
    }
    YAML::Node node;
    if (!empty)
      node = parse_yaml_mapping(text, file, "a config mapping");
    else
      node = YAML::Node(YAML::NodeType::Map);
    loading_.push_back(rel);

    const std::string folder = fs::path(rel).parent_path().string();
    std::vector<Entry> entries;
    const YAML::Node& cnode = node;
    if (YAML::Node defaults = cnode["defaults"]; defaults.IsDefined()) {
      if (!defaults.IsSequence() && !defaults.IsNull())
        throw Error(line_of(file, defaults) + ": defaults: got " + describe_yaml(defaults) +
                    ", expected a list");
      for (const YAML::Node& item : defaults) entries.push_back(parse_entry(item, file, folder));
    }
    if (std::none_of(entries.begin(), entries.end(), [](const Entry& e) { return e.self; })) {
      Entry self;
      self.self = true;
      entries.push_back(self);
    }
    if (rel == "config")  // `+group=option`: new entries of the primary list
      for (Override& o : ovs_)
        if (o.group && o.kind == Override::kAdd) {
          Entry e;
          e.group = o.key.substr(0, o.key.find('@'));
          if (o.key.find('@') != std::string::npos) e.package = o.key.substr(o.key.find('@') + 1);
          e.option = option_of(o);
          e.where = "override '" + o.text + "'";
          o.used = true;
          entries.push_back(e);
        }

    for (const Entry& e : entries) {
      if (e.self) {
        merge_at(package, node, file);
        continue;
      }
      const std::string shown = e.package.empty() ? e.group : e.group + "@" + e.package;
      if (std::find(groups_seen_.begin(), groups_seen_.end(), shown) == groups_seen_.end())
        groups_seen_.push_back(shown);
      YAML::Node option = e.option;
      std::string where = e.where;
      if (Override* o = e.plain ? nullptr : choice_for(e)) {
        o->used = true;
        option = yaml_without_marks(option_of(*o));
        where = "override '" + o->text + "'";
      }
      if (option.IsNull()) continue;
      const std::string name = option.Scalar();
      const std::string child = e.group.empty() ? name : e.group + "/" + name;
      std::error_code ec;
      if (!fs::is_regular_file(root_ / (child + ".yaml"), ec)) {
        if (e.optional) continue;
        throw Error(where + ": group '" + e.group + "' has no option '" + name + "' (" +
                    (root_ / (child + ".yaml")).string() +
                    "), expected one of: " + join_list(group_options(root_.string(), e.group)));
      }
      load(child, package_of(e, package), where);
    }
    loading_.pop_back();
  }

  // Merges `body` (minus `defaults`) into the tree at `package`.
  void merge_at(const std::string& package, const YAML::Node& body, const std::string& file) {
    YAML::Node dst = tree_;
    std::string path;
    for (const std::string& k : split_dots(package)) {
      path = dotted_join(path, k);
      if (!dst[k].IsMap()) dst[k] = YAML::Node(YAML::NodeType::Map);
      dst.reset(dst[k]);
    }
    for (const auto& kv : body) {
      const std::string k = kv.first.Scalar();
      if (package.empty() && k == "defaults") continue;
      if (k == "defaults" && kv.second.IsSequence()) continue;
      merge(dst, kv.first, kv.second, dotted_join(path, k), file);
    }
  }

  void merge(YAML::Node dst, const YAML::Node& key, const YAML::Node& v, const std::string& path,
             const std::string& file) {
    const std::string k = key.Scalar();
    origin_[path] = line_of(file, key);
    if (v.IsMap() && dst[k].IsMap()) {
      YAML::Node sub = dst[k];
      for (const auto& kv : v)
        merge(sub, kv.first, kv.second, path + "." + kv.first.Scalar(), file);
      return;
    }
    dst[k] = YAML::Clone(v);
    record(v, path, file);
  }

  void record(const YAML::Node& v, const std::string& path, const std::string& file) {
    if (!v.IsMap()) return;
    for (const auto& kv : v) {
      const std::string p = path + "." + kv.first.Scalar();
      origin_[p] = line_of(file, kv.first);
      record(kv.second, p, file);
    }
  }

  // All dotted keys of the tree (for suggestions).
  void keys_of(const YAML::Node& n, const std::string& path, std::vector<std::string>& out) const {
    if (!n.IsMap()) return;
    for (const auto& kv : n) {
      const std::string p = dotted_join(path, kv.first.Scalar());
      out.push_back(p);
      keys_of(kv.second, p, out);
    }
  }

  void apply_key_override(const Override& o) {
    const std::vector<std::string> parts = split_dots(o.key);
    if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); }))
      throw Error("override '" + o.text + "': '" + o.key + "' is not a dotted key, expected a.b.c");
    YAML::Node n = tree_;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const YAML::Node& cn = n;
      YAML::Node next = cn[parts[i]];
      if (!next.IsDefined() || !next.IsMap()) {
        if (next.IsDefined() || o.kind == Override::kSet || o.kind == Override::kDelete) {
          n.reset(YAML::Node(YAML::NodeType::Undefined));
          break;
        }
        n[parts[i]] = YAML::Node(YAML::NodeType::Map);
        YAML::Node created = n[parts[i]];
        n.reset(created);
        continue;
      }
      n.reset(next);
    }
    const bool parent_ok = n.IsMap();
    const bool exists = parent_ok && static_cast<const YAML::Node&>(n)[parts.back()].IsDefined();
    const bool addable = std::find(addable_.begin(), addable_.end(), o.key) != addable_.end();
    if (o.kind == Override::kAdd && exists)
      throw Error("override '" + o.text + "': '" + o.key + "' is already in the config, expected " +
                  o.key + "=VALUE to change it");
    if (!exists && (o.kind == Override::kDelete || (o.kind == Override::kSet && !addable))) {
      std::vector<std::string> keys;
      keys_of(tree_, "", keys);
      keys.insert(keys.end(), addable_.begin(), addable_.end());
      throw Error("override '" + o.text + "': the composed config has no key '" + o.key +
                  "', did you mean '" + closest_key(o.key, keys) + "'?" +
                  (o.kind == Override::kSet ? " (+" + o.key + "=VALUE adds a new key)" : ""));
    }
    if (!parent_ok) {  // an addable key below sections the tree lacks
      n.reset(tree_);
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        if (!n[parts[i]].IsMap()) n[parts[i]] = YAML::Node(YAML::NodeType::Map);
        n.reset(n[parts[i]]);
      }
    }
    if (o.kind == Override::kDelete) {
      n.remove(parts.back());
      return;
    }
    YAML::Node v;
    try {
      v = yaml_without_marks(YAML::Load(o.value));
    } catch (const YAML::Exception&) {
      v = YAML::Node(o.value);  // not YAML (e.g. "a: b: c"): the text as a string
    }
    n[parts.back()] = v;
    for (size_t dot = o.key.find('.'); dot != std::string::npos; dot = o.key.find('.', dot + 1))
      origin_.emplace(o.key.substr(0, dot), "override '" + o.text + "'");  // sections it created
    origin_[o.key] = "override '" + o.text + "'";
    for (auto it = origin_.lower_bound(o.key + ".");
         it != origin_.end() && it->first.rfind(o.key + ".", 0) == 0;)
      it = origin_.erase(it);
  }

  fs::path root_;
  std::vector<std::string> addable_;
  std::vector<Override> ovs_;
  YAML::Node tree_;
  std::map<std::string, std::string> origin_;
  std::vector<std::string> loading_, groups_seen_;
};

}  // namespace

std::string ComposedConfig::origin_of(const std::string& dotted) const {
  std::string d = dotted;
  for (;;) {
    auto it = origin.find(d);
    if (it != origin.end()) return it->second;
    size_t dot = d.rfind('.');
    if (dot == std::string::npos) return source;
    d.resize(dot);
  }
}

std::vector<std::string> group_options(const std::string& config_dir, const std::string& group) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(config_dir) / group;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_regular_file() && it->path().extension() == ".yaml")
      out.push_back(fs::relative(it->path(), dir).replace_extension().string());
  std::sort(out.begin(), out.end());
  return out;
}

ComposedConfig compose(const std::string& config_dir, const std::vector<std::string>& overrides,
                       const std::vector<std::string>& addable) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(config_dir) / "config.yaml", ec))
    throw Error(config_dir +
                ": no config.yaml, expected a config folder laid out as the authors' "
                "(config.yaml with a defaults list, data/, model/, optim/, experiment/)");
  return Composer(config_dir, overrides, addable).run();
}

bool has_defaults_list(const std::string& path) {
  try {
    YAML::Node n = YAML::LoadFile(path);
    return n.IsMap() && static_cast<const YAML::Node&>(n)["defaults"].IsSequence();
  } catch (const YAML::Exception&) {
    return false;
  }
}

ComposedConfig compose_file(const std::string& path, const std::vector<std::string>& overrides,
                            const std::vector<std::string>& addable) {
  std::error_code ec;
  const fs::path file = fs::absolute(path, ec);
  fs::path root = file.parent_path();
  while (!fs::is_regular_file(root / "config.yaml", ec)) {
    if (root == root.root_path() || root.empty())
      throw Error(path +
                  ": has a defaults list but no folder above it holds config.yaml, "
                  "expected it inside a config tree laid out as the authors'");
    root = root.parent_path();
  }
  const fs::path rel = fs::relative(file, root).replace_extension();
  if (rel == "config") return compose(root.string(), overrides, addable);
  // The group of config.yaml's defaults list that the file is an option of.
  const YAML::Node top =
      load_yaml_mapping((root / "config.yaml").string(), "a config mapping");  // FILE:LINE errors
  std::vector<std::string> groups;
  // Iterating a mapping as a list throws YAML::InvalidNode (found by fuzz/compose.cc).
  const YAML::Node defaults = static_cast<const YAML::Node&>(top)["defaults"];
  if (defaults.IsDefined() && !defaults.IsNull() && !defaults.IsSequence())
    throw Error(yaml_where((root / "config.yaml").string(), &defaults) + ": defaults: got " +
                describe_yaml(defaults) + ", expected a list");
  // (an absent key is an invalid node: IsSequence() would throw, IsDefined() does not)
  for (const YAML::Node& item :
       defaults.IsDefined() && defaults.IsSequence() ? defaults : YAML::Node()) {
    if (!item.IsMap() || item.size() != 1) continue;
    std::string g = item.begin()->first.Scalar();
    if (g.rfind("optional ", 0) == 0) g = g.substr(9);
    if (!g.empty() && g[0] == '/') g = g.substr(1);
    if (g.find('@') != std::string::npos) continue;
    groups.push_back(g);
    const std::string r = rel.string();
    if (r.rfind(g + "/", 0) != 0) continue;
    std::vector<std::string> all{g + "=" + r.substr(g.size() + 1)};
    for (const std::string& ov : overrides) {
      if (ov.rfind(g + "=", 0) == 0 || ov.rfind("/" + g + "=", 0) == 0)
        throw Error("override '" + ov + "': " + path + " already selects " + all[0] +
                    ", expected the file or " + g + "=..., not both");
      all.push_back(ov);
    }
    return compose(root.string(), all, addable);
  }
  throw Error(path + ": has a defaults list, but " + (root / "config.yaml").string() +
              " selects no group it lies in, expected a file under one of: " + join_list(groups));
}

namespace {

bool is_section(const std::string& dotted, const KeySchema& s) {
  const std::string head = dotted + ".";
  auto under = [&](const std::string& k) { return k.rfind(head, 0) == 0; };
  return std::any_of(s.keys.begin(), s.keys.end(), under) ||
         std::any_of(s.ignored.begin(), s.ignored.end(), under) ||
         std::any_of(s.unsupported.begin(), s.unsupported.end(),
                     [&](const auto& u) { return under(u.first); });
}

void check_under(const ComposedConfig& c, const YAML::Node& map,
                 const std::vector<std::string>& path, const KeySchema& schema) {
  for (const auto& kv : map) {
    std::vector<std::string> p = path;
    p.push_back(kv.first.Scalar());
    std::string dotted;
    for (const std::string& k : p) dotted = dotted_join(dotted, k);
    if (kv.second.IsMap() && is_section(dotted, schema)) {
      check_under(c, kv.second, p, schema);
      continue;
    }
    // This key alone, in a tree of its own, checked as rat checks files,
    // with its origin ("FILE:LINE") standing for the file.
    YAML::Node mini(YAML::NodeType::Map), at = mini;
    for (size_t i = 0; i + 1 < p.size(); ++i) {
      at[p[i]] = YAML::Node(YAML::NodeType::Map);
      at.reset(at[p[i]]);
    }
    at[p.back()] = kv.second;
    check_known_keys(mini, c.origin_of(dotted), schema);
  }
}

}  // namespace

void check_composed_keys(const ComposedConfig& c, const KeySchema& schema) {
  if (c.tree.IsMap()) check_under(c, c.tree, {}, schema);
}

}  // namespace rat
