// Where `rat train` (and the Python module's rat.train) gets its experiment: a plain
// experiment file, a file with a Hydra defaults list, or `experiment=NAME` composed from a
// config tree laid out as the authors' (train/compose.h). Every form ends in the same strict
// reader (train/experiment.h).
#pragma once

#include <string>
#include <vector>

#include "train/experiment.h"

namespace rat {

// The config tree for `experiment=NAME` when none is given: ./configs when it
// holds config.yaml (rat run from its checkout), else `fallback` (the tree of
// the checkout rat was built from).
std::string default_config_dir(const std::string& fallback);

// `config` is an experiment file, or empty (or itself `key=value`, then the
// first override, as in `rat train experiment=NAME`). A plain file loads as it
// is; a file with a defaults list, or `experiment=NAME` without a file,
// composes first (with the overrides, Hydra's way) in `config_dir`, then
// loads through the same strict reader. Throws rat::Error naming the file,
// key or override.
Experiment load_train_experiment(std::string config, std::vector<std::string> overrides,
                                 const std::string& config_dir);

}  // namespace rat
