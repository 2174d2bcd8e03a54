// An experiment YAML file plus command-line overrides (train/experiment.h load_experiment).
// Input: the file's text, NUL, then one override ("dotted.key=value") per line.
#include "train/experiment.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto p = rat::fuzz::parts(data, size, 2);
  const std::string path = rat::fuzz::put("experiment.yaml", p[0]);
  const std::vector<std::string> overrides = rat::fuzz::lines(p[1]);
  rat::fuzz::accept_rat_errors([&] { rat::load_experiment(path, overrides); });
  return 0;
}
