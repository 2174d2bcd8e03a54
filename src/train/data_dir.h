// Where an experiment's data files are: `data.dir` (the output directory of
// `rat tokenize`) and the rule for relative paths.
//
// data.dir=DIR fills every key the data decides from DIR/tokenize.json:
// data.train.tokenized_file_path (DIR/train.bin), data.val.tokenized_file_path
// (DIR/val.bin; removed when tokenize held out no documents), data.vocab_size
// and model.embedding.vocab_size, data.num_bytes, data.ignore_input_index (the
// end-of-document id). It replaces the config file's values for them; a key
// also given on the command line (key=value) wins over data.dir (the two
// vocab sizes are one: giving either sets both).
//
// A relative data path (data.dir, data.{train,val}.tokenized_*_path) is looked
// up in the current directory, then in the config file's folder, then in the
// project root of the config (the folder holding the `configs/` folder it lies
// in, e.g. the checkout for configs/experiment/pydoc/rat-small.yaml). The first
// place holding it wins, and the resolved config then names it absolutely. A
// path found nowhere is an error naming the key, the path and every place tried.
#pragma once

#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

namespace rat {

struct ConfigOrigin {
  std::string config_file;                  // empty: none (only the current directory)
  std::set<std::string> command_line_keys;  // dotted keys given as key=value
};

// The dotted keys of "key=value" overrides ("+key=v", "++key=v" too; group
// choices without a dot such as experiment=NAME are kept, harmlessly).
std::set<std::string> override_keys(const std::vector<std::string>& overrides);

// The folders a relative data path is looked up in, in order (see above).
std::vector<std::string> path_bases(const std::string& config_file);

// Applies data.dir (when set) to `root`, then resolves its relative data
// paths. Throws rat::Error for a bad data.dir (missing, no tokenize.json, or
// a value there that is not what `rat tokenize` writes). Returns the error
// message for the first data file that does not exist ("" when all do): the
// caller decides when a missing file matters (check_data_files).
std::string resolve_data_paths(YAML::Node root, const ConfigOrigin& origin);

}  // namespace rat
