// A model's config.yaml (model/config.h load_model_config): YAML syntax, the strict key
// schema, every option's type and range, and resolve()'s cross-field checks.
#include "fuzz_util.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      rat::fuzz::put("config.yaml", {reinterpret_cast<const char*>(data), size});
  rat::fuzz::accept_rat_errors([&] { rat::load_model_config(path); });
  return 0;
}
