// A run's metrics.jsonl as `rat plot` reads it (train/plot.h read_metric).
// Input: the file, NUL, the metric's name (default loss).
#include "fuzz_util.h"
#include "train/plot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto p = rat::fuzz::parts(data, size, 2);
  const std::string dir = rat::fuzz::dir("run");
  rat::fuzz::put("run/metrics.jsonl", p[0]);
  const std::string metric = p[1].empty() ? "loss" : std::string(p[1]);
  rat::fuzz::accept_rat_errors([&] { rat::read_metric(dir, metric); });
  return 0;
}
