// Hydra-style composition of a config tree (train/compose.h) and the experiment read from the
// result, as `rat train experiment=NAME` does: defaults lists, packages, overrides and
// interpolations (train/interpolate.h), then the strict key check.
// Input, NUL-separated: config.yaml, model/a.yaml, model/b.yaml, experiment/x.yaml,
// data/d.yaml, then one override per line.
#include "train/compose.h"
#include "fuzz_util.h"
#include "model/config.h"
#include "train/experiment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto p = rat::fuzz::parts(data, size, 6);
  const std::string dir = rat::fuzz::dir("configs");
  rat::fuzz::put("configs/config.yaml", p[0]);
  rat::fuzz::put("configs/model/a.yaml", p[1]);
  rat::fuzz::put("configs/model/b.yaml", p[2]);
  rat::fuzz::put("configs/experiment/x.yaml", p[3]);
  rat::fuzz::put("configs/data/d.yaml", p[4]);
  const std::vector<std::string> overrides = rat::fuzz::lines(p[5]);
  rat::fuzz::accept_rat_errors([&] {
    rat::ComposedConfig c = rat::compose(dir, overrides, rat::experiment_keys());
    c.origin_of("model.a");
    rat::check_composed_keys(c, rat::config_file_schema());
    rat::load_experiment(c.tree, c.source, {});
  });
  rat::fuzz::accept_rat_errors(
      [&] { rat::compose_file(dir + "/experiment/x.yaml", overrides, rat::experiment_keys()); });
  return 0;
}
