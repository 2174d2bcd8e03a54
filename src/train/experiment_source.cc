#include "train/experiment_source.h"

#include <algorithm>
#include <filesystem>

#include "train/compose.h"
#include "train/data_dir.h"
#include "util/error.h"

namespace rat {

std::string default_config_dir(const std::string& fallback) {
  std::error_code ec;
  if (std::filesystem::is_regular_file("configs/config.yaml", ec)) return "configs";
  return fallback;
}

Experiment load_train_experiment(std::string config, std::vector<std::string> overrides,
                                 const std::string& config_dir) {
  std::error_code ec;
  if (config.find('=') != std::string::npos && !std::filesystem::exists(config, ec)) {
    overrides.insert(overrides.begin(), config);  // `rat train experiment=NAME ...`
    config.clear();
  }
  ComposedConfig c;
  if (!config.empty()) {
    if (!std::filesystem::is_regular_file(config, ec))
      throw Error(config + ": no such file, expected an experiment config (or experiment=NAME)");
    if (!has_defaults_list(config)) return load_experiment(config, overrides);
    c = compose_file(config, overrides, experiment_keys());
  } else {
    if (std::none_of(overrides.begin(), overrides.end(), [](const std::string& ov) {
          return ov.rfind("experiment=", 0) == 0 || ov.rfind("+experiment=", 0) == 0;
        })) {
      std::string names;
      for (const std::string& n : group_options(config_dir, "experiment")) names += " " + n;
      throw Error("no experiment: give a config file or experiment=NAME, expected NAME one of" +
                  (names.empty() ? " the options of " + config_dir + "/experiment/" : names));
    }
    c = compose(config_dir, overrides, experiment_keys());
  }
  check_composed_keys(c, config_file_schema());
  // Relative data paths may lie next to the composed file (or its project);
  // keys set on the command line win over data.dir.
  ConfigOrigin origin{config.empty() ? config_dir + "/config.yaml" : config,
                      override_keys(overrides)};
  return load_experiment(c.tree, c.source, {}, origin);
}

}  // namespace rat
