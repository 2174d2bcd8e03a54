// Hydra composition of a config tree laid out as the authors' (CLAIRE-Labo/RAT
// configs/): config.yaml with a defaults list, config groups as folders
// (data/, model/backbone/, optim/optimizer/, experiment/, ...), each option a
// YAML file. What it implements of Hydra 1.1+:
//  - defaults entries, in order: `_self_` (the file's own keys; appended last
//    when absent), `group: option` (relative to the file's folder) and
//    `/group: option` (from the root), `group@pkg: option` (placed at pkg,
//    below the including file's package; `_global_.x` is absolute),
//    `optional group: option`, `group: null` (nothing), and a plain `- name`
//    (an option of the file's own folder);
//  - `# @package _global_` (or `# @package a.b`) headers; otherwise a group
//    option lands at its group's path (data/sft/llama.yaml under `data`);
//  - merging as OmegaConf: mappings merge key by key, anything else replaces;
//  - command-line overrides: `group=option` or `group@pkg=option` (a folder
//    of the root: it changes that entry of the defaults tree, wherever it
//    is), `+group=option` (a new entry of config.yaml's list), and
//    `key=value`, `+key=value`, `++key=value`, `~key` on the composed tree;
//  - then interpolations resolve (train/interpolate.h), and the `hydra` key
//    (Hydra's own settings, never part of the job's config) is dropped.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

#include "model/yaml_reader.h"  // KeySchema

namespace rat {

struct ComposedConfig {
  YAML::Node tree;  // resolved: no defaults, no interpolations
  // Where each dotted key's value came from: "FILE:LINE" or "override 'k=v'".
  std::map<std::string, std::string> origin;
  std::string source;  // names the composition in messages: "DIR/config.yaml experiment=NAME"
  // The "FILE:LINE" of `dotted` or of its closest ancestor that has one.
  std::string origin_of(const std::string& dotted) const;
};

// Composes `config_dir`/config.yaml with `overrides`. `addable` are keys a
// plain `key=value` may set although the tree lacks them (rat's own keys,
// such as trainer.max_steps); any other missing key needs `+key=value`.
ComposedConfig compose(const std::string& config_dir, const std::vector<std::string>& overrides,
                       const std::vector<std::string>& addable = {});

// True when the YAML file at `path` is a mapping with a top-level `defaults`
// list (a Hydra config). Unreadable or invalid files give false: their
// ordinary reader reports them.
bool has_defaults_list(const std::string& path);

// Composes a config file that has a defaults list: its root is the nearest
// folder above it holding config.yaml, and the file is selected as the option
// of the config.yaml group it lies in (configs/experiment/sft/rat-xl.yaml:
// `experiment=sft/rat-xl`); config.yaml itself composes as is.
ComposedConfig compose_file(const std::string& path, const std::vector<std::string>& overrides,
                            const std::vector<std::string>& addable = {});

// The options of group `group` under `config_dir` ("fineweb_edu/llama", ...), sorted.
std::vector<std::string> group_options(const std::string& config_dir, const std::string& group);

// The strict key check of rat's files (model/yaml_reader.h check_known_keys)
// for a composed tree: an unknown key names the file and line it came from.
void check_composed_keys(const ComposedConfig& c, const KeySchema& schema);

}  // namespace rat
